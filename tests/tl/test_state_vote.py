"""call_states(refine="graph"): majority vote of the calls in leiden sub-clusters of the user's neighbour graph."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

import hcctme
from hcctme.tl import _state_vote as vote
from tests.tl.test_call_states import _recall_precision, _scored_adata, fake_library  # noqa: F401

UNASSIGNED = "unassigned"


def test_majority_is_the_most_frequent_call_of_the_voters():
    labels = np.array(["0", "0", "0", "0", "1", "1", "1", "2"])
    calls = np.array(["A", "A", "B", UNASSIGNED, "B", UNASSIGNED, UNASSIGNED, "C"], dtype=object)
    voters = np.array([True, True, True, True, True, True, True, False])
    out, share = vote.majority(labels, calls, voters)
    # cluster 0: A 2 of 4; cluster 1: unassigned 2 of 3 (share = its best state's, B: 1 of 3); cluster 2: no voter
    assert list(out) == ["A", "A", "A", "A", UNASSIGNED, UNASSIGNED, UNASSIGNED, "C"]
    np.testing.assert_allclose(share, [0.5] * 4 + [1 / 3] * 3 + [1.0])


def _two_cliques(n: int = 40) -> sp.csr_matrix:
    block = np.ones((n, n)) - np.eye(n)
    return sp.csr_matrix(sp.block_diag([block, block]))


def test_vote_on_two_cliques_artefacts_stay_unassigned_and_do_not_vote():
    pytest.importorskip("igraph")
    n = 40
    calls = np.array(["A"] * 30 + ["B"] * 5 + [UNASSIGNED] * 5        # clique 1: A wins 30 of 35 voters
                     + ["B"] * 12 + [UNASSIGNED] * 8 + [UNASSIGNED] * 20, dtype=object)  # clique 2
    artefact = np.array([""] * 35 + ["stress"] * 5 + [""] * 20 + ["doublet"] * 20, dtype=object)
    contexts = np.array(["ctx"] * (2 * n), dtype=object)
    before = calls.copy()
    out, share, record = vote.vote(calls, artefact, contexts, {"ctx": ["A", "B"]}, _two_cliques(n), resolution=1.0)
    assert list(out[:35]) == ["A"] * 35 and list(out[35:40]) == [UNASSIGNED] * 5
    # clique 2: 20 artefact cells would make "unassigned" win; without their votes B wins 12 of 20
    assert list(out[40:60]) == ["B"] * 20 and list(out[60:]) == [UNASSIGNED] * 20
    np.testing.assert_allclose(share, [30 / 35] * 35 + [0.0] * 5 + [0.6] * 20 + [0.0] * 20)
    assert record == {"ctx": {"clusters": 2, "changed": 5 + 8}}
    assert list(calls) == list(before)


def test_vote_leaves_small_and_other_contexts_alone():
    pytest.importorskip("igraph")
    calls = np.array(["A", "B"] * 10 + ["X"] * 80, dtype=object)
    contexts = np.array(["small"] * 20 + ["other"] * 80, dtype=object)
    adjacency = sp.csr_matrix(np.ones((100, 100)) - np.eye(100))
    out, share, record = vote.vote(calls, np.array([""] * 100), contexts, {"small": ["A", "B"]}, adjacency,
                                   resolution=1.0)
    assert list(out) == list(calls) and (share == 1.0).all() and record == {}


def _with_graph(adata):
    import scanpy as sc

    work = adata.copy()
    work.obsm["rep"] = adata.obsm["hcctme_scores"].to_numpy()
    sc.pp.neighbors(work, use_rep="rep", n_neighbors=15, random_state=0)
    adata.obsp["connectivities"] = work.obsp["connectivities"]
    return adata


def test_call_states_graph_vote(fake_library):  # noqa: F811
    pytest.importorskip("igraph")
    adata = _with_graph(_scored_adata())
    hcctme.tl.call_states(adata, cell_type_key="cell_type", sample_key="patient", refine="graph")
    info = adata.uns["hcctme_state_params"]["refine"]
    assert info["method"] == "graph" and info["graph"] == "obsp['connectivities']"
    assert set(info["voting"]) == {"macrophage", "cd4_t"}
    assert all(v["clusters"] >= 2 and v["changed"] >= 0 for v in info["voting"].values())
    assert "hcctme_state_unrefined" in adata.obs
    calls = adata.obs["hcctme_state"].astype(str).to_numpy()
    rp = _recall_precision(calls, adata.obs["truth"].to_numpy(), ["TAM_A", "TAM_B", "TAM_C", "TREG_X"])
    assert all(r >= 0.7 and p >= 0.7 for r, p in rp.values()), rp
    conf = adata.obs["hcctme_state_confidence"]
    assert conf.between(0, 1).all()
    artefact = adata.obs["hcctme_state_artefact"].astype(str).to_numpy() != ""
    assert (calls[artefact] == UNASSIGNED).all() and (conf.to_numpy()[artefact] == 0).all()
    ctx = adata.obs["hcctme_state_context"].astype(str)
    assert set(adata.obs["hcctme_state"][ctx == "cd4_t"].astype(str)) <= {"TREG_X", UNASSIGNED}


def test_graph_missing_is_a_clear_error(fake_library, digest):  # noqa: F811
    adata = _scored_adata()
    before = digest(adata)
    with pytest.raises(KeyError, match=r"sc.pp.neighbors"):
        hcctme.tl.call_states(adata, cell_type_key="cell_type", refine="graph")
    assert digest(adata) == before


def test_graph_of_other_cells_is_a_clear_error(fake_library, digest):  # noqa: F811
    adata = _scored_adata()
    # AnnData refuses such an obsp entry on assignment; one stored by other means is refused naming n_obs x n_obs
    adata.obsp._data["connectivities"] = sp.csr_matrix((10, 10))
    before = digest(adata)
    with pytest.raises(ValueError, match=r"connectivities.*\(1800, 1800\)"):
        hcctme.tl.call_states(adata, cell_type_key="cell_type", refine="graph")
    assert digest(adata) == before
