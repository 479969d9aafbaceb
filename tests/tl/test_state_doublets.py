"""Doublets flagged on library size and another cell type's markers together (hcctme/tl/_state_doublets.py)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
from anndata import AnnData
from scipy.stats import norm

import hcctme
from hcctme.sig import Signature, SignatureSet
from hcctme.tl import _state_artefacts as artefacts
from hcctme.tl import _state_doublets as doublets

N = 600
DOUBLETS = np.arange(0, 8)  # larger library and the other cell type's markers: flagged
LARGE = np.arange(8, 12)  # larger library only (marker score below the median): not flagged
MARKED = np.arange(12, 16)  # marker score high, library at the median: not flagged


def _spread(n: int, seed: int) -> np.ndarray:
    """n values at the normal quantiles (median 0, robust sd 1), in a random order."""
    return np.random.default_rng(seed).permutation(norm.ppf((np.arange(n) + 0.5) / n))


def _evidence() -> tuple[np.ndarray, np.ndarray]:
    """Library-size and marker robust z of one population: clean cells independent N(0, 1) quantiles."""
    size, marker = _spread(N, 0), _spread(N, 1)
    size[DOUBLETS], marker[DOUBLETS] = 2.3, 2.4  # Stouffer (2.3 + 2.4) / sqrt(2) = 3.3
    size[LARGE], marker[LARGE] = 2.9, -0.5
    size[MARKED], marker[MARKED] = 0.0, 4.0  # a marker alone: the artefact rule's business, not this one's
    return size, marker


def test_flags_only_cells_with_both_pieces_of_evidence():
    size, marker = _evidence()
    found, used = doublets.flags(size, marker[:, None], ["MARKER_X"], np.ones(N, dtype=bool))
    assert used
    assert (found[DOUBLETS] == "library_size+MARKER_X").all()
    assert (found[LARGE] == "").all() and (found[MARKED] == "").all()
    z_lib, z_marker = artefacts.robust_z(size), artefacts.robust_z(marker)
    expected = (z_lib > 0) & (z_marker > 0) & ((z_lib + z_marker) / np.sqrt(2) > 3.0)
    np.testing.assert_array_equal(found != "", expected)
    assert expected.sum() == DOUBLETS.size  # no clean cell of these quantiles reaches both


def test_the_best_marker_names_the_flag_and_flagged_cells_are_skipped():
    size, marker = _evidence()
    other = np.zeros(N)
    other[DOUBLETS[:3]] = 5.0
    clean = np.ones(N, dtype=bool)
    clean[DOUBLETS[-1]] = False  # already an artefact of another column
    found, _ = doublets.flags(size, np.column_stack([marker, other]), ["MARKER_X", "MARKER_Y"], clean)
    assert (found[DOUBLETS[:3]] == "library_size+MARKER_Y").all()
    assert (found[DOUBLETS[3:-1]] == "library_size+MARKER_X").all()
    assert found[DOUBLETS[-1]] == ""


def test_not_used_where_it_would_flag_too_many_cells():
    size, marker = _evidence()
    found, used = doublets.flags(size, marker[:, None], ["MARKER_X"], np.ones(N, dtype=bool), max_share=0.005)
    assert not used and (found == "").all()
    empty, used = doublets.flags(size, np.empty((N, 0)), [], np.ones(N, dtype=bool))
    assert not used and (empty == "").all()


def test_markers_of_present_cell_types_other_than_the_population_and_its_parent():
    contexts = np.array(["macrophage"] * 30 + ["neutrophil"] * 30 + ["cd8_t"] * 25 + ["cd4_t"] * 10, dtype=object)
    columns = pd.Index(["MARKER_NEUTROPHIL", "MARKER_MYELOID", "MARKER_CD4_T", "MARKER_CD8_T", "MARKER_MACROPHAGE",
                        "TAM2_SPP1"])
    found = doublets.markers(columns, hcctme.sig.library(), contexts, ["macrophage", "cd8_t"])
    # macrophages: the sibling neutrophils and the CD8 T cells; not their parent (myeloid), nor CD4 T cells (10 cells)
    assert found["macrophage"] == ["MARKER_NEUTROPHIL", "MARKER_CD8_T"]
    # CD8 T cells: the myeloid markers (the myeloid marker reads macrophages and neutrophils, 60 cells)
    assert found["cd8_t"] == ["MARKER_NEUTROPHIL", "MARKER_MYELOID", "MARKER_MACROPHAGE"]


@pytest.fixture
def library(monkeypatch):
    sigs = [Signature(id=s, genes_up=genes, collection="macrophage_states", cell_context="macrophage", role="state")
            for s, genes in {"TAM_A": ("G0", "G1", "G2"), "TAM_B": ("G3", "G4", "G5")}.items()]
    sigs.append(Signature(id="MARKER_NEUTROPHIL", genes_up=("G30", "G31", "G32"), collection="cell_type_markers",
                          cell_context="neutrophil", role="marker"))
    lib = SignatureSet(sigs, library_version="test+1")
    monkeypatch.setattr(hcctme.sig, "library", lambda: lib)
    return lib


def _cohort(n_neutrophils: int = 60) -> AnnData:
    """600 macrophages in two states and some neutrophils; raw counts whose depth carries the library evidence."""
    rng = np.random.default_rng(3)
    size, marker = _evidence()
    n = N + n_neutrophils
    depth = np.exp(0.3 * np.r_[size, _spread(n_neutrophils, 2)])
    state = np.where(np.arange(n) % 2 == 0, "TAM_A", "TAM_B")
    lam = np.full((n, 40), 50.0)
    lam[:N][state[:N] == "TAM_A", :3] *= 6.0
    lam[:N][state[:N] == "TAM_B", 3:6] *= 6.0
    counts = rng.poisson(lam * depth[:, None]).astype(np.float32)
    z = np.where(state[:, None] == np.array(["TAM_A", "TAM_B"]), 2.0, 0.0) + rng.normal(0, 0.5, (n, 2))
    labels = np.r_[np.repeat("Macrophages", N), np.repeat("Neutrophils", n_neutrophils)]
    obs = pd.DataFrame({"cell_type": labels, "patient": "P1"}, index=[f"c{i}" for i in range(n)])
    adata = AnnData(sp.csr_matrix(counts), obs=obs, var=pd.DataFrame(index=[f"G{i}" for i in range(40)]))
    adata.obsm["hcctme_scores"] = pd.DataFrame({"TAM_A": z[:, 0], "TAM_B": z[:, 1],
                                                "MARKER_NEUTROPHIL": np.r_[marker, np.full(n_neutrophils, 8.0)]},
                                               index=adata.obs_names)
    return adata


def test_call_states_flags_the_doublets_and_records_them(library):
    adata = _cohort()
    hcctme.tl.call_states(adata, cell_type_key="cell_type", sample_key="patient")
    flagged = adata.obs["hcctme_state_artefact"].astype(str).to_numpy()
    calls = adata.obs["hcctme_state"].astype(str).to_numpy()
    assert (flagged[DOUBLETS] == "library_size+MARKER_NEUTROPHIL").all()
    assert (calls[DOUBLETS] == "unassigned").all()
    assert (adata.obs["hcctme_state_confidence"].to_numpy()[DOUBLETS] == 0.0).all()
    assert (flagged[LARGE] == "").all() and (flagged[MARKED] == "").all()
    info = adata.uns["hcctme_state_params"]
    by_rule = int(np.sum(pd.Series(flagged[:N]).str.startswith("library_size+")))
    assert info["doublets"] == {"macrophage": {"markers": ["MARKER_NEUTROPHIL"], "used": True, "flagged": by_rule}}
    assert info["diagnostics"]["macrophage"]["unassigned"]["flagged_by"]["doublets"] == by_rule
    assert info["artefact_rule"]["doublet_z"] == 3.0


def test_without_raw_counts_or_the_other_cell_type_nothing_is_flagged(library):
    adata = _cohort()
    adata.X = sp.csr_matrix(np.log1p(adata.X.toarray() / 7.0))  # not counts: no library size
    hcctme.tl.call_states(adata, cell_type_key="cell_type", sample_key="patient")
    assert adata.uns["hcctme_state_params"]["doublets"] == {}
    assert not adata.obs["hcctme_state_artefact"].astype(str).str.startswith("library_size+").any()
    few = _cohort(n_neutrophils=10)  # under STATE_MIN_REFERENCE_CELLS neutrophils: their marker is not read
    hcctme.tl.call_states(few, cell_type_key="cell_type", sample_key="patient")
    assert few.uns["hcctme_state_params"]["doublets"] == {}
    assert not few.obs["hcctme_state_artefact"].astype(str).str.startswith("library_size+").any()
