"""Other populations' genes learnt from the data (hcctme.tl._state_lineage_genes): heterotypic doublets."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from hcctme._constants import STATE_LINEAGE_GENES, STATE_LINEAGE_GENES_MIN, STATE_MAX_FOREIGN_SHARE
from hcctme.tl import _state_lineage_genes as genes_of


def _detections(seed: int = 0, n_genes: int = 60):
    """Cells of three populations whose first 10 / next 10 genes are detected mostly in the T / fibroblast cells."""
    rng = np.random.default_rng(seed)
    contexts = np.array(["cd8_t"] * 120 + ["cd4_t"] * 80 + ["fibroblast"] * 150 + ["hepatocyte"] * 10, dtype=object)
    rate = np.full((len(contexts), n_genes), 0.2)
    t_cell = np.isin(contexts, ["cd8_t", "cd4_t"])
    rate[np.ix_(t_cell, np.arange(10))] = 0.9
    rate[np.ix_(contexts == "fibroblast", np.arange(10, 20))] = 0.85
    counts = (rng.random(rate.shape) < rate) * rng.integers(1, 6, rate.shape)
    return sp.csr_matrix(counts.astype(np.float32)), contexts


def test_detection_is_each_groups_share_of_cells_with_the_gene():
    X, contexts = _detections()
    groups = np.column_stack([contexts == "cd8_t", np.isin(contexts, ["cd8_t", "cd4_t"]), contexts == "fibroblast"])
    expected = np.vstack([(X.toarray()[g] != 0).mean(axis=0) for g in groups.T])
    np.testing.assert_allclose(genes_of.detection(X, groups, 3, chunk_size=37), expected)
    np.testing.assert_allclose(genes_of.detection(X.toarray(), groups, 3), expected)  # dense input


def test_choose_takes_the_widest_gaps_leaves_out_state_genes_and_needs_enough_genes():
    host = np.full(40, 0.2)
    own = np.full(40, 0.3)
    own[:30] = np.linspace(0.95, 0.61, 30)  # gaps 0.75 .. 0.41, all above 0.4
    excluded = np.zeros(40, dtype=bool)
    excluded[0] = True  # a signature gene of the host's states: never chosen
    chosen = genes_of.choose(host, own, excluded)
    assert chosen.size == STATE_LINEAGE_GENES and 0 not in chosen
    np.testing.assert_array_equal(chosen, np.arange(1, STATE_LINEAGE_GENES + 1))  # the widest gaps after gene 0
    few = own.copy()
    few[STATE_LINEAGE_GENES_MIN - 1:30] = 0.3  # only genes 0..MIN-2 qualify: one fewer than needed
    assert genes_of.choose(host, few, np.zeros(40, dtype=bool)).size == 0


def test_plan_reads_other_lineages_only_and_populations_of_20_cells():
    X, contexts = _detections()
    states = {"cd8_t": ["CD8_STATE"], "fibroblast": ["CAF_STATE"]}
    names = pd.Index([f"G{i}" for i in range(X.shape[1])])
    chosen = genes_of.plan(X, contexts, states, {"CD8_STATE": ["G10"], "CAF_STATE": ["G0", "G1"]}, names)
    # CD8 T cells read the fibroblasts' genes, not the CD4 T cells' (one lineage) nor the 10 hepatocytes'
    assert set(chosen) == {"cd8_t", "fibroblast"} and set(chosen["cd8_t"]) == {"fibroblast"}
    assert set(chosen["fibroblast"]) == {"cd4_t", "cd8_t"}
    positions, level = chosen["cd8_t"]["fibroblast"]
    assert set(positions) == set(range(11, 20))  # G10 is a CD8 state's gene
    assert level == pytest.approx(0.85, abs=0.05)
    assert set(chosen["fibroblast"]["cd8_t"][0]) == set(range(2, 10))  # G0, G1 are a fibroblast state's genes


def test_scores_are_the_share_detected_over_the_other_populations_own():
    X, contexts = _detections()
    positions = np.arange(10, 20)
    level = 0.8
    values = genes_of.scores(X, contexts, {"cd8_t": {"fibroblast": (positions, level)}}, chunk_size=50)
    assert list(values.columns) == ["genes_of_fibroblast"]
    dense = X.toarray()
    expected = np.where(contexts == "cd8_t", (dense[:, positions] != 0).mean(axis=1) / level, 0.0)
    np.testing.assert_allclose(values["genes_of_fibroblast"].to_numpy(), expected)


def test_flags_need_half_the_way_and_the_robust_z_and_keep_the_cap():
    rng = np.random.default_rng(1)
    x = np.clip(rng.normal(0.2, 0.05, (1000, 2)), 0, None)
    x[:30, 0] = 0.95  # doublets with population A: at its own level
    x[30:40, 0] = 0.55  # less than half the way from 0.2 to 1 (0.6): kept
    x[40:50, 1] = 0.7  # past half the way on B
    found = genes_of.flags(x, ["genes_of_a", "genes_of_b"], max_share=STATE_MAX_FOREIGN_SHARE)
    flagged = found.flagged != ""
    assert flagged[:30].all() and not flagged[30:40].any() and flagged[40:50].all()
    assert flagged[50:].mean() < 0.005
    assert found.flagged_by == {"genes_of_a": 30, "genes_of_b": 10 + int(flagged[50:].sum())}
    np.testing.assert_array_equal(found.probability, flagged.astype(float))
    many = x.copy()
    many[:150, 0] = 0.95  # 15 % of the cells: a state of the population, not doublets
    assert "genes_of_a" in genes_of.flags(many, ["genes_of_a", "genes_of_b"], max_share=0.1).unused
    both = x.copy()
    both[50:130, 1] = 0.9  # 30 + 90 cells flagged, each column under the cap, 12 % together
    found = genes_of.flags(both, ["genes_of_a", "genes_of_b"], max_share=0.1)
    assert (found.flagged != "").sum() == 100 and found.foreign_released == 20


def test_call_states_flags_heterotypic_doublets_and_records_the_genes():
    """A generator cohort at 10x depth (seed 1, 5 % doublets): doublets with a cell of another lineage lose their
    call on that population's genes, read after the self-training (measured: 22 of 27 flagged, 5 of 862 clean
    cells)."""
    import hcctme
    from tests.tl._state_generator import LINEAGE_OF, generate

    adata = generate("10x", seed=1, n_patients=4, cells_per_patient=250)
    hcctme.tl.score(adata)
    hcctme.tl.call_states(adata, cell_type_key="cell_type", sample_key="patient")
    obs = adata.obs
    flagged = obs["hcctme_state_artefact"].astype(str)
    by_genes = flagged.str.startswith(genes_of.PREFIX).to_numpy()
    lineage = obs["cell_type"].astype(str).map(LINEAGE_OF)
    other = (obs["artefact"].astype(str) == "doublet") & (obs["doublet_of"].astype(str).map(LINEAGE_OF) != lineage)
    assert by_genes.sum() >= 10 and other[by_genes].mean() >= 0.6
    assert (obs.loc[by_genes, "hcctme_state"] == "unassigned").all()
    assert (obs.loc[by_genes, "hcctme_state_confidence"] == 0).all()
    params = adata.uns["hcctme_state_params"]
    record = params["genes_of"]
    assert set(record["cd8_t"]) >= {"fibroblast", "macrophage"} and "cd4_t" not in record["cd8_t"]
    sizes = [len(g) for per in record.values() for g in per.values()]
    assert min(sizes) >= STATE_LINEAGE_GENES_MIN and max(sizes) <= STATE_LINEAGE_GENES
    assert sum(v for d in params["diagnostics"].values()
               for k, v in d["unassigned"]["flagged_by"].items() if k.startswith(genes_of.PREFIX)) == by_genes.sum()
