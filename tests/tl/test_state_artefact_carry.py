"""Carried artefact columns of tl.call_states (hcctme/tl/_state_artefact_carry.py)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
from anndata import AnnData

import hcctme
from hcctme.sig import Signature, SignatureSet
from hcctme.tl import _state_artefact_carry as carry
from hcctme.tl import _state_artefacts as artefacts
from hcctme.tl import _state_selftrain as selftrain

GENES = pd.Index([f"G{i}" for i in range(40)])
PROGRAMME = [f"G{i}" for i in range(10, 18)]  # the artefact programme's genes
CAUGHT, ESCAPED = np.arange(0, 30), np.arange(30, 60)  # artefact cells the list reads strongly / weakly


def _population(seed: int = 0, n: int = 300) -> tuple[sp.csr_matrix, np.ndarray, np.ndarray]:
    """Log-normalised expression, the artefact list's score and the samples of one population.

    Cells 0-59 carry the artefact programme (8 genes up 8-fold); the list reads it strongly in
    cells 0-29 (score 6) and weakly in 30-59 (score 1.5; clean cells N(0, 1)).
    """
    rng = np.random.default_rng(seed)
    lam = np.full((n, GENES.size), 5.0)
    lam[np.ix_(np.r_[CAUGHT, ESCAPED], GENES.get_indexer(PROGRAMME))] *= 8.0
    counts = rng.poisson(lam).astype(np.float32)
    values = rng.normal(0.0, 1.0, n)
    values[CAUGHT], values[ESCAPED] = 6.0, 1.5
    return selftrain.log_expression(counts), values, np.arange(n) % 2


def _first_pass(values: np.ndarray) -> np.ndarray:
    flags, _ = artefacts.column_flags(values)
    return np.where(flags, "LIST", "").astype(object)


def test_the_list_alone_misses_the_weakly_read_artefact_cells():
    _, values, _ = _population()
    flagged = _first_pass(values)
    assert (flagged[CAUGHT] == "LIST").all()
    assert (flagged[ESCAPED] == "").all()


def test_carried_column_flags_the_escaped_artefact_cells_and_no_clean_cell():
    X, values, samples = _population()
    flagged = _first_pass(values)
    found = carry.carry(X, values[:, None], ["LIST"], flagged, GENES, [], samples)
    assert (found.flagged[ESCAPED] == "LIST_carried").all()
    assert (found.flagged[CAUGHT] == "").all()  # already flagged: not counted twice
    assert (found.flagged[60:] == "").all()
    assert found.record["LIST_carried"]["genes"] == PROGRAMME
    assert found.record["LIST_carried"]["added"] == ESCAPED.size
    assert found.record["LIST_carried"]["flagged"] == CAUGHT.size + ESCAPED.size
    # the carried column's read replaces the list's for the cells the list left clean: the escaped cells become
    # likely artefacts, the caught ones keep the list's probability, the clean cells stay below one half
    _, p_list = artefacts.column_flags(values)
    final = 1.0 - (1.0 - p_list) * found.not_artefact
    assert (final[ESCAPED] > 0.5).all() and (found.not_artefact[CAUGHT] == 1.0).all()
    assert (final[60:] < 0.5).all()


def test_signature_genes_of_the_states_are_never_carried():
    X, values, samples = _population()
    flagged = _first_pass(values)
    found = carry.carry(X, values[:, None], ["LIST"], flagged, GENES, PROGRAMME[:5], samples)
    assert found.record["LIST_carried"]["genes"] == PROGRAMME[5:]
    # every programme gene is a state's gene (a state that raises the list's genes): nothing is carried
    none = carry.carry(X, values[:, None], ["LIST"], flagged, GENES, PROGRAMME, samples)
    assert none.record == {} and (none.flagged == "").all() and (none.not_artefact == 1).all()


def test_too_few_flagged_cells_are_not_carried():
    X, values, samples = _population()
    flagged = _first_pass(values)
    found = carry.carry(X, values[:, None], ["LIST"], flagged, GENES, [], samples, min_cells=CAUGHT.size + 1)
    assert found.record == {} and (found.flagged == "").all()


def test_eligible_columns_leave_out_markers_flags_and_library_size():
    columns = ["STRESS", "MARKER_X", "predicted_doublet", artefacts.LIBRARY_SIZE, "MY_SCORE"]
    assert carry.eligible(columns, {"MARKER_X": 0.4}, ["predicted_doublet"]) == ["STRESS", "MY_SCORE"]


@pytest.fixture
def library(monkeypatch):
    sigs = [Signature(id=s, genes_up=genes, collection="macrophage_states", cell_context="macrophage", role="state")
            for s, genes in {"TAM_A": ("G0", "G1", "G2"), "TAM_B": ("G3", "G4", "G5")}.items()]
    lib = SignatureSet(sigs, library_version="test+1")
    monkeypatch.setattr(hcctme.sig, "library", lambda: lib)
    return lib


def _cohort(n: int = 400, seed: int = 1) -> AnnData:
    """Macrophages in two states (genes G0-G2 / G3-G5 up), cells 0-59 carrying the artefact programme."""
    rng = np.random.default_rng(seed)
    state = np.where(np.arange(n) % 2 == 0, "TAM_A", "TAM_B")
    lam = np.full((n, GENES.size), 5.0)
    lam[state == "TAM_A", :3] *= 6.0
    lam[state == "TAM_B", 3:6] *= 6.0
    lam[np.ix_(np.r_[CAUGHT, ESCAPED], GENES.get_indexer(PROGRAMME))] *= 8.0
    counts = rng.poisson(lam).astype(np.float32)
    z = np.where(state[:, None] == np.array(["TAM_A", "TAM_B"]), 2.0, 0.0) + rng.normal(0, 0.5, (n, 2))
    stress = rng.normal(0.0, 1.0, n)
    stress[CAUGHT], stress[ESCAPED] = 6.0, 1.5
    obs = pd.DataFrame({"cell_type": "Macrophages", "patient": (np.arange(n) % 3).astype(str)},
                       index=[f"c{i}" for i in range(n)])
    adata = AnnData(sp.csr_matrix(counts), obs=obs, var=pd.DataFrame(index=GENES))
    adata.obsm["hcctme_scores"] = pd.DataFrame({"TAM_A": z[:, 0], "TAM_B": z[:, 1], "MY_STRESS": stress},
                                               index=adata.obs_names)
    return adata


def test_call_states_flags_the_carried_artefact_cells_and_records_them(library):
    adata = _cohort()
    hcctme.tl.call_states(adata, cell_type_key="cell_type", sample_key="patient", artefacts=["MY_STRESS"])
    flagged = adata.obs["hcctme_state_artefact"].astype(str).to_numpy()
    assert (flagged[CAUGHT] == "MY_STRESS").all()
    assert (flagged[ESCAPED] == "MY_STRESS_carried").all()
    assert (flagged[60:] == "").all()
    assert (adata.obs["hcctme_state"].astype(str).to_numpy()[ESCAPED] == "unassigned").all()
    info = adata.uns["hcctme_state_params"]
    record = info["self_train"]["carried_artefacts"]["macrophage"]["MY_STRESS_carried"]
    assert record["genes"] == PROGRAMME and record["added"] == ESCAPED.size
    assert info["diagnostics"]["macrophage"]["unassigned"]["flagged_by"]["MY_STRESS_carried"] == record["flagged"]
    assert info["diagnostics"]["macrophage"]["unassigned"]["artefacts"] == CAUGHT.size + ESCAPED.size


def test_without_self_training_nothing_is_carried(library):
    adata = _cohort()
    hcctme.tl.call_states(adata, cell_type_key="cell_type", sample_key="patient", artefacts=["MY_STRESS"],
                          self_train=False)
    assert (adata.obs["hcctme_state_artefact"].astype(str).to_numpy()[ESCAPED] == "").all()
    assert adata.uns["hcctme_state_params"]["self_train"]["carried_artefacts"] == {}


def test_backed_cohort_carries_the_same_cells(library, tmp_path):
    import anndata as ad

    adata = _cohort()
    adata.write_h5ad(tmp_path / "c.h5ad")
    backed = ad.read_h5ad(tmp_path / "c.h5ad", backed="r")
    hcctme.tl.call_states(adata, cell_type_key="cell_type", sample_key="patient", artefacts=["MY_STRESS"])
    hcctme.tl.call_states(backed, cell_type_key="cell_type", sample_key="patient", artefacts=["MY_STRESS"])
    np.testing.assert_array_equal(backed.obs["hcctme_state_artefact"].astype(str).to_numpy(),
                                  adata.obs["hcctme_state_artefact"].astype(str).to_numpy())
    assert (backed.uns["hcctme_state_params"]["self_train"]["carried_artefacts"]
            == adata.uns["hcctme_state_params"]["self_train"]["carried_artefacts"])
