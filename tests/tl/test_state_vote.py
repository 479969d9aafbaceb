"""call_states(refine="graph" / "leiden"): majority vote of the calls in leiden sub-clusters of a neighbour graph."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

import hcctme
from hcctme.tl import _state_vote as vote
from tests.tl.test_call_states import _recall_precision, _scored_adata, fake_library  # noqa: F401

UNASSIGNED = "unassigned"


def test_majority_is_a_strict_majority_of_the_voters():
    labels = np.array(["0", "0", "0", "0", "1", "1", "1", "2", "3", "3"])
    calls = np.array(["A", "A", "A", "B", "B", UNASSIGNED, UNASSIGNED, "C", "A", "B"], dtype=object)
    voters = np.array([True] * 7 + [False] + [True] * 2)
    out, share = vote.majority(labels, calls, voters)
    # cluster 0: A 3 of 4; 1: an unassigned majority removes no call; 2: no voter; 3: a tie
    assert list(out) == ["A"] * 4 + ["B", UNASSIGNED, UNASSIGNED] + ["C", "A", "B"]
    np.testing.assert_allclose(share, [0.75] * 4 + [np.nan] * 6)


def _cliques(n: int = 40, k: int = 3) -> sp.csr_matrix:
    block = np.ones((n, n)) - np.eye(n)
    return sp.csr_matrix(sp.block_diag([block] * k))


def test_vote_on_cliques_artefacts_stay_unassigned_and_do_not_vote():
    pytest.importorskip("igraph")
    calls = np.array(["A"] * 30 + ["B"] * 5 + [UNASSIGNED] * 5        # clique 1: A wins 30 of 35 voters
                     + ["B"] * 12 + [UNASSIGNED] * 28                   # clique 2: 20 of the unassigned are artefacts
                     + ["A"] * 15 + ["B"] * 15 + [UNASSIGNED] * 10, dtype=object)  # clique 3: no majority
    artefact = np.array([""] * 35 + ["stress"] * 5 + [""] * 20 + ["doublet"] * 20 + [""] * 40, dtype=object)
    contexts = np.array(["ctx"] * 120, dtype=object)
    confidence = np.linspace(0.2, 0.9, 120)
    before = calls.copy()
    out, conf, record = vote.vote(calls, confidence, artefact, contexts, {"ctx": ["A", "B"]},
                                  vote.user_graph(_cliques()), resolution=1.0, refine="graph")
    assert list(out[:35]) == ["A"] * 35 and list(out[35:40]) == [UNASSIGNED] * 5
    # clique 2: with the artefact cells' votes "unassigned" would win 28 of 40; without them B wins 12 of 20
    assert list(out[40:60]) == ["B"] * 20 and list(out[60:80]) == [UNASSIGNED] * 20
    assert list(out[80:]) == list(calls[80:])
    np.testing.assert_allclose(conf, [30 / 35] * 35 + [0.0] * 5 + [0.6] * 20 + [0.0] * 20 + list(confidence[80:]))
    assert record == {"ctx": {"clusters": 3, "voted": 2, "changed": 5 + 8}}
    assert list(calls) == list(before)


def test_vote_leaves_small_and_other_contexts_alone():
    pytest.importorskip("igraph")
    calls = np.array(["A", "B"] * 10 + ["X"] * 80, dtype=object)
    contexts = np.array(["small"] * 20 + ["other"] * 80, dtype=object)
    adjacency = sp.csr_matrix(np.ones((100, 100)) - np.eye(100))
    confidence = np.full(100, 0.7)
    out, conf, record = vote.vote(calls, confidence, np.array([""] * 100), contexts, {"small": ["A", "B"]},
                                  vote.user_graph(adjacency), resolution=1.0, refine="graph")
    assert list(out) == list(calls) and (conf == 0.7).all() and record == {}


def test_score_graph_links_cells_of_like_scores_within_the_population():
    rng = np.random.default_rng(0)
    blobs = np.vstack([rng.normal(0, 0.1, (20, 2)), rng.normal(5, 0.1, (20, 2)), rng.normal(0, 0.1, (10, 2))])
    z = pd.DataFrame(blobs, columns=["A", "B"])
    idx = np.arange(40)  # the last 10 cells (another population) are left out
    adjacency = vote.score_graph(z, {"ctx": ["A", "B"]})("ctx", idx)
    assert adjacency.shape == (40, 40)
    dense = adjacency.toarray()
    assert dense[:20, 20:].sum() == 0 and dense[20:, :20].sum() == 0
    assert (dense[:20, :20].sum(axis=1) > 0).all() and (dense[20:, 20:].sum(axis=1) > 0).all()


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
    assert all(v["clusters"] >= v["voted"] >= 1 for v in info["voting"].values())
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


@pytest.mark.parametrize("min_confidence", [0.5, 0.8])
def test_the_vote_removes_no_call_and_records_the_final_changes(fake_library, min_confidence):  # noqa: F811
    """Sweep 61: at min_confidence 0.8 a voting sub-cluster's share (> 0.5) was cut at 0.8, which unassigned its
    cells, confident ones included; "changed" was counted before that cut, and obs["..._unrefined"] held the
    model's calls at 0.5, not the per-cell calls at min_confidence."""
    pytest.importorskip("igraph")
    adata = _with_graph(_scored_adata())
    kwargs = dict(cell_type_key="cell_type", sample_key="patient", min_confidence=min_confidence)
    plain = hcctme.tl.call_states(adata, **kwargs, copy=True)
    refined = hcctme.tl.call_states(adata, **kwargs, refine="graph", copy=True)
    own = plain.obs["hcctme_state"].astype(str).to_numpy()
    final = refined.obs["hcctme_state"].astype(str).to_numpy()
    np.testing.assert_array_equal(refined.obs["hcctme_state_unrefined"].astype(str).to_numpy(), own)
    assert not ((own != UNASSIGNED) & (final == UNASSIGNED)).any()
    called = final != UNASSIGNED
    assert (refined.obs["hcctme_state_confidence"].to_numpy()[called] >= min_confidence).all()
    contexts = refined.obs["hcctme_state_context"].astype(str).to_numpy()
    voting = refined.uns["hcctme_state_params"]["refine"]["voting"]
    assert {c: v["changed"] for c, v in voting.items()} == {c: int(np.sum((contexts == c) & (own != final)))
                                                           for c in voting}
    assert sum(v["changed"] for v in voting.values()) > 0
