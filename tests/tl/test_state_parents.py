"""A parent population (``t_cell``, ``myeloid``) competes the states of its child contexts (tl.call_states)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import hcctme
from hcctme.tl._call_states import with_parent_contexts

STATES = {"cd8_t": ["CD8_TEFF", "CD8_TEX_TERMINAL"], "cd4_t": ["TREG"], "macrophage": ["TAM2_SPP1"]}


def test_parent_context_present_gets_its_childrens_states():
    contexts = np.array(["t_cell", "cd8_t", "b_cell"], dtype=object)
    out = with_parent_contexts(STATES, contexts)
    assert out["t_cell"] == ["CD8_TEFF", "CD8_TEX_TERMINAL", "TREG"]
    assert "myeloid" not in out  # no myeloid cells
    assert {k: out[k] for k in STATES} == STATES


def test_parent_context_with_its_own_states_keeps_them():
    contexts = np.array(["myeloid"], dtype=object)
    own = {**STATES, "myeloid": ["X"]}
    assert with_parent_contexts(own, contexts)["myeloid"] == ["X"]
    assert with_parent_contexts(STATES, contexts)["myeloid"] == ["TAM2_SPP1"]


@pytest.fixture(scope="module")
def merged_t_cells():
    adata = hcctme.datasets.demo()
    hcctme.tl.score(adata)
    merged = {"CD8+ T cells": "T cells", "CD4+ T cells": "T cells"}
    adata.obs["label"] = adata.obs["cell_type"].astype(str).replace(merged)
    hcctme.tl.call_states(adata, cell_type_key="label", sample_key="patient")
    return adata


@pytest.mark.slow
def test_t_cells_labelled_only_as_t_cells_get_cd4_and_cd8_states(merged_t_cells):
    """datasets.demo() with its CD4 and CD8 T cells labelled "T cells" (one ``t_cell`` population): TREG and the
    CD8 states compete there. Before, a ``t_cell`` population got no call. Measured (library 2.2): precision 1.0,
    recall CD8_TEFF 0.72, CD8_TEX_TERMINAL 0.70, TREG 0.65, CD8_TEX_PROGENITOR 0.52 (0.70-0.80 before the
    two-component artefact rule: the demo's dissociation-stress score rises with depth, and the fit flags a tenth
    of its T cells, mostly the deepest, as stressed; README "Resistance cell states", Limits); conventional CD4 T
    cells stay unassigned."""
    adata = merged_t_cells
    states = adata.uns["hcctme_state_params"]["states"]["t_cell"]
    assert set(states) == {"CD8_TEX_TERMINAL", "CD8_TEX_PROGENITOR", "CD8_TSTR", "CD8_TEFF", "TREG"}
    t = (adata.obs["label"] == "T cells").to_numpy()
    truth = adata.obs["state_true"].astype(str).to_numpy()[t]
    calls = adata.obs["hcctme_state"].astype(str).to_numpy()[t]
    table = pd.DataFrame({s: {"recall": np.mean(calls[truth == s] == s), "precision": np.mean(truth[calls == s] == s)}
                          for s in ("CD8_TEFF", "CD8_TEX_PROGENITOR", "CD8_TEX_TERMINAL", "TREG")}).T
    assert (table["precision"] >= 0.95).all(), table
    assert (table["recall"] >= 0.5).all(), table
    assert table["recall"].mean() >= 0.6, table
    conventional = (truth == "unassigned") & (adata.obs["cell_type"].astype(str).to_numpy()[t] == "CD4+ T cells")
    assert conventional.sum() > 100 and np.mean(calls[conventional] != "unassigned") <= 0.05
