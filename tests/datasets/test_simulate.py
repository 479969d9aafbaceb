"""hcctme.datasets.simulate_cohort / demo: counts, truth, planted effects, null, spatial barrier."""

from __future__ import annotations

import time

import anndata as ad
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
from scipy import stats
from scipy.spatial import cKDTree

import hcctme as ht
from hcctme import _validate
from hcctme._constants import Keys
from hcctme.datasets import (
    CELL_TYPES,
    DEFAULT_EFFECTS,
    STATE_IDS,
    STATE_PARENT,
    VALID_EFFECTS,
    demo,
    simulate_cohort,
)
from hcctme.datasets._simulate import MARKERS

OBS_COLUMNS = ["patient", "response", "cell_type", "state_true", "treatment", "age", "sex", "etiology"]


@pytest.fixture(scope="module")
def cohort():
    """16 patients (8 v 8) x 500 cells, default effects."""
    return simulate_cohort(16, 500, random_state=0)


@pytest.fixture(scope="module")
def spatial_cohort():
    return simulate_cohort(12, 500, spatial=True, random_state=1)


def _state_fraction(adata, state: str) -> tuple[pd.Series, pd.Series]:
    """Per-patient fraction of ``state`` within its parent type, and the patient's response."""
    obs = adata.obs
    sub = obs[obs["cell_type"] == STATE_PARENT[state]]
    frac = (sub["state_true"] == state).groupby(sub["patient"], observed=True).mean()
    response = obs.groupby("patient", observed=True)["response"].first().astype(str)
    return frac, response.loc[frac.index]


def _mwu(values: pd.Series, response: pd.Series, alternative: str) -> float:
    return stats.mannwhitneyu(values[response == "resistor"], values[response == "responder"],
                              alternative=alternative).pvalue


# ------------------------------------------------------------------------------------------------
# Counts, shapes, obs
# ------------------------------------------------------------------------------------------------
def test_counts_are_nonnegative_integers_and_x_is_lognormalised(cohort):
    counts = cohort.layers[Keys.COUNTS]
    assert sp.isspmatrix_csr(counts) or isinstance(counts, sp.csr_array)
    assert np.issubdtype(counts.dtype, np.integer)
    assert counts.data.min() >= 1 and counts.nnz > 0  # explicit zeros are not stored
    assert _validate.matrix_kind(counts) == "counts"
    # .X = log1p(normalize_total(1e4)), float32 CSR
    X = cohort.X
    assert sp.issparse(X) and X.dtype == np.float32
    totals = np.asarray(counts.sum(axis=1)).ravel()
    expected = np.log1p(counts[:50].toarray() / totals[:50, None] * 1e4)
    np.testing.assert_allclose(X[:50].toarray(), expected, rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(cohort.obs["n_counts"].to_numpy(), totals)


def test_sparsity_and_library_sizes_are_realistic(cohort):
    counts = cohort.layers[Keys.COUNTS]
    nonzero_per_cell = np.diff(counts.indptr) / counts.shape[1]
    assert 0.05 <= nonzero_per_cell.mean() <= 0.15
    totals = cohort.obs["n_counts"].to_numpy()
    assert totals.std() / totals.mean() > 0.3  # variable library sizes
    # neutrophils have smaller libraries than hepatocytes
    med = cohort.obs.groupby("cell_type", observed=True)["n_counts"].median()
    assert med["Neutrophils"] < med["Hepatocytes"]


def test_shapes_obs_columns_and_patient_covariates(cohort):
    assert cohort.shape == (16 * 500, 3000)
    assert cohort.obs_names.is_unique and cohort.var_names.is_unique
    for column in OBS_COLUMNS:
        assert column in cohort.obs.columns, column
    assert list(cohort.obs["cell_type"].cat.categories) == list(CELL_TYPES)
    assert set(cohort.obs["cell_type"].astype(str)) == set(CELL_TYPES)
    assert set(cohort.obs["state_true"].astype(str)) <= set(STATE_IDS) | {"unassigned"}
    per_patient = cohort.obs.groupby("patient", observed=True).size()
    assert len(per_patient) == 16 and (per_patient == 500).all()
    response = _validate.constant_within(cohort, "response", "patient")
    assert (response == "resistor").sum() == 8 and (response == "responder").sum() == 8
    for column in ("treatment", "age", "sex", "etiology"):
        _validate.constant_within(cohort, column, "patient")
    assert set(cohort.obs["treatment"].astype(str)) == {"T+A"}


def test_gene_universe_holds_the_library_programmes(cohort):
    genes = set(cohort.var_names)
    for ids in MARKERS.values():
        for sig_id in ids:
            assert set(ht.sig.get(sig_id).genes_up) <= genes, sig_id
    for state in STATE_IDS:
        assert set(ht.sig.get(state).genes_up) <= genes, state
    assert {"SPP1", "CD44"} <= genes
    assert set(cohort.var["sim_gene_kind"]) == {"programme", "library", "filler"}
    # filler genes are current human symbols
    from hcctme.sig import _genes

    fillers = cohort.var_names[cohort.var["sim_gene_kind"] == "filler"]
    assert set(fillers) <= _genes.known_human_symbols()


def test_small_n_genes_keeps_programme_genes():
    for _ in range(2):  # warned at every call (sweep 55: logged once per process, the biology being cached)
        with pytest.warns(UserWarning, match="n_genes=100 is smaller than the"):
            small = simulate_cohort(4, 50, n_genes=100, random_state=0)
    n_programme = int((small.var["sim_gene_kind"] == "programme").sum())
    assert small.n_vars == n_programme >= 100
    assert simulate_cohort(4, 50, n_genes=n_programme + 50, random_state=0).n_vars == n_programme + 50


# ------------------------------------------------------------------------------------------------
# Reproducibility
# ------------------------------------------------------------------------------------------------
def test_seed_is_a_deprecated_alias_of_random_state():
    with pytest.warns(FutureWarning, match="random_state"):
        old = simulate_cohort(4, 50, n_genes=600, seed=3)
    new = simulate_cohort(4, 50, n_genes=600, random_state=3)
    assert (old.layers["counts"] != new.layers["counts"]).nnz == 0
    assert old.uns["hcctme_sim"]["random_state"] == 3


def test_seed_reproduces_and_different_seeds_differ():
    a = simulate_cohort(6, 100, random_state=7, spatial=True)
    b = simulate_cohort(6, 100, random_state=7, spatial=True)
    c = simulate_cohort(6, 100, random_state=8, spatial=True)
    assert (a.layers["counts"] != b.layers["counts"]).nnz == 0
    assert (a.X != b.X).nnz == 0
    pd.testing.assert_frame_equal(a.obs, b.obs)
    np.testing.assert_array_equal(a.obsm["spatial"], b.obsm["spatial"])
    assert a.shape == c.shape
    assert (a.layers["counts"] != c.layers["counts"]).nnz > 0
    assert not a.obs["cell_type"].equals(c.obs["cell_type"])


# ------------------------------------------------------------------------------------------------
# Truth: states, markers, planted effects, LR gain
# ------------------------------------------------------------------------------------------------
def test_states_only_within_their_parent_types(cohort):
    obs = cohort.obs
    states = obs["state_true"].astype(str)
    assigned = states != "unassigned"
    parents = states[assigned].map(STATE_PARENT)
    assert (parents == obs.loc[assigned, "cell_type"].astype(str)).all()
    # types without states carry only "unassigned"; every planted state occurs
    for cell_type in ("NK cells", "B cells", "Plasma cells", "Dendritic cells", "Hepatocytes", "Tumour cells"):
        assert set(states[obs["cell_type"] == cell_type]) == {"unassigned"}
    assert set(states[assigned]) == set(STATE_IDS)
    assert cohort.uns[Keys.SIM]["state_parent"] == STATE_PARENT


def test_marker_genes_are_higher_in_their_cell_type(cohort):
    cell_type = cohort.obs["cell_type"].astype(str).to_numpy()
    for label, ids in MARKERS.items():
        genes = list(dict.fromkeys(g for i in ids for g in ht.sig.get(i).genes_up))
        expr = np.asarray(cohort[:, genes].X.mean(axis=1)).ravel()
        own = expr[cell_type == label].mean()
        others = pd.Series(expr).groupby(cell_type).mean().drop(label)
        assert own > others.max(), (label, own, others.idxmax(), others.max())


def test_state_programmes_are_higher_in_their_state(cohort):
    states = cohort.obs["state_true"].astype(str).to_numpy()
    cell_type = cohort.obs["cell_type"].astype(str).to_numpy()
    for state in STATE_IDS:
        genes = list(ht.sig.get(state).genes_up)
        parent = cell_type == STATE_PARENT[state]
        expr = np.asarray(cohort[:, genes].X.mean(axis=1)).ravel()
        assert expr[parent & (states == state)].mean() > expr[parent & (states != state)].mean() + 0.1, state


def test_state_genes_detected_like_real_state_markers(cohort):
    """Documented in the module docstring: a clear majority of the state's cells detect a state
    gene, at a several-fold higher mean than the parent's other cells, yet not every cell does."""
    counts = cohort.layers[Keys.COUNTS].tocsc()
    states = cohort.obs["state_true"].astype(str).to_numpy()
    cell_type = cohort.obs["cell_type"].astype(str).to_numpy()
    detected_in, detected_out = [], []
    for state in STATE_IDS:
        cols = [cohort.var_names.get_loc(g) for g in ht.sig.get(state).genes_up]
        inside = states == state
        outside = (cell_type == STATE_PARENT[state]) & ~inside
        block = counts[:, cols]
        det_in = np.asarray((block[inside] > 0).mean(axis=0)).ravel()
        det_out = np.asarray((block[outside] > 0).mean(axis=0)).ravel()
        mean_in, mean_out = block[inside].mean(), block[outside].mean()
        assert np.median(det_in) >= 0.6 - 1e-9, (state, np.median(det_in))  # 57 of 95 cells is 0.6
        assert mean_in >= 3 * mean_out, (state, mean_in, mean_out)
        detected_in.append(det_in)
        detected_out.append(det_out)
    det_in, det_out = np.concatenate(detected_in), np.concatenate(detected_out)
    assert 0.65 <= np.median(det_in) <= 0.9  # dropout: one cell in four misses a given gene
    assert np.quantile(det_out, 0.9) >= 0.1  # some state genes leak into sibling cells


@pytest.mark.parametrize("state,alternative", [
    ("TAM2_SPP1", "greater"), ("CD8_TEX_TERMINAL", "greater"), ("NEU_CD10_ALPL", "greater"),
    ("CAF_ECM_MYCAF", "greater"), ("CD8_TEX_PROGENITOR", "less"),
])
def test_planted_state_shifts_visible_at_patient_level(cohort, state, alternative):
    frac, response = _state_fraction(cohort, state)
    assert _mwu(frac, response, alternative) < 0.05


def test_planted_cell_type_shifts_visible_at_patient_level(cohort):
    obs = cohort.obs
    response = obs.groupby("patient", observed=True)["response"].first().astype(str)
    for label, alternative in (("Neutrophils", "greater"), ("CD8+ T cells", "less")):
        frac = (obs["cell_type"] == label).groupby(obs["patient"], observed=True).mean()
        assert _mwu(frac, response, alternative) < 0.05, label


def test_truth_records_effects_and_proportions(cohort):
    truth = cohort.uns[Keys.SIM]
    assert truth["effects"] == DEFAULT_EFFECTS and truth["random_state"] == 0 and truth["null"] is False
    table = truth["effects_table"].set_index("name")
    assert table.loc["TAM2_SPP1", "direction_in_resistors"] == "up"
    assert table.loc["CD8_TEX_PROGENITOR", "direction_in_resistors"] == "down"
    assert table.loc["TAM2_SPP1", "kind"] == "state" and table.loc["Neutrophils", "kind"] == "cell_type"
    props = truth["state_proportions"]
    assert {"patient", "response", "cell_type", "state", "n_cells", "n_parent", "proportion",
            "expected", "group_mean"} <= set(props.columns)
    # observed counts in the truth table match obs
    obs = cohort.obs
    n = obs[obs["state_true"] == "TAM2_SPP1"].groupby("patient", observed=True).size()
    rows = props[props["state"] == "TAM2_SPP1"].set_index("patient")["n_cells"]
    assert (rows.loc[n.index] == n).all()
    types = truth["cell_type_proportions"]
    assert np.allclose(types.groupby("patient")["proportion"].sum(), 1.0)
    assert truth["params"]["n_resistors"] == 8 and truth["params"]["library_version"]


def test_ligand_receptor_gain_in_resistors(cohort):
    obs = cohort.obs
    lr = cohort.uns[Keys.SIM]["lr"].iloc[0]
    assert (lr["ligand"], lr["receptor"], lr["source_state"], lr["target_cell_type"]) == (
        "SPP1", "CD44", "TAM2_SPP1", "Fibroblasts")
    assert lr["fold"] == DEFAULT_EFFECTS["lr_fold"] and lr["planted"]
    response = obs.groupby("patient", observed=True)["response"].first().astype(str)
    # the fold is planted on the mean counts; log1p compresses it for a gene as abundant as SPP1 in TAM2 cells
    for gene, mask in (("SPP1", obs["state_true"] == "TAM2_SPP1"), ("CD44", obs["cell_type"] == "Fibroblasts")):
        counts = np.asarray(cohort[:, gene].layers["counts"].todense()).ravel()
        expr = pd.Series(counts, index=obs.index)[mask.to_numpy()]
        per_patient = expr.groupby(obs.loc[mask.to_numpy(), "patient"], observed=True).mean()
        assert _mwu(per_patient, response.loc[per_patient.index], "greater") < 0.01, gene
        ratio = per_patient[response == "resistor"].mean() / per_patient[response == "responder"].mean()
        assert ratio > 1.3, (gene, ratio)


# ------------------------------------------------------------------------------------------------
# Null cohorts
# ------------------------------------------------------------------------------------------------
def test_null_cohort_plants_nothing():
    significant = 0
    for seed in range(6):
        null = simulate_cohort(16, 500, null=True, n_genes=500, random_state=seed)
        frac, response = _state_fraction(null, "TAM2_SPP1")
        significant += _mwu(frac, response, "two-sided") < 0.05
        truth = null.uns[Keys.SIM]
        assert truth["null"] is True and truth["effects"] == {} and len(truth["effects_table"]) == 0
        assert not truth["lr"]["planted"].any()
        # identical group means: responders and resistors drawn from one distribution
        for table in (truth["state_proportions"], truth["cell_type_proportions"]):
            means = table.groupby(["response", "cell_type", *(["state"] if "state" in table else [])])["group_mean"]
            spread = means.first().unstack(0)
            np.testing.assert_allclose(spread["responder"], spread["resistor"])
    assert significant <= 1


def test_null_refuses_effects():
    with pytest.raises(ValueError, match="null=True"):
        simulate_cohort(4, 50, null=True, effects={"TAM2_SPP1": 1.0})


# ------------------------------------------------------------------------------------------------
# Effects and noise
# ------------------------------------------------------------------------------------------------
def test_effects_merge_over_defaults_and_noise_scales_them():
    adata = simulate_cohort(4, 50, effects={"TAM2_SPP1": 2.0, "Neutrophils": 0}, noise=2.0, spatial=True,
                            random_state=0)
    truth = adata.uns[Keys.SIM]
    assert truth["effects"]["TAM2_SPP1"] == 2.0
    assert truth["effects"]["CD8_TEX_TERMINAL"] == DEFAULT_EFFECTS["CD8_TEX_TERMINAL"]
    assert truth["effects_applied"]["TAM2_SPP1"] == pytest.approx(1.0)
    assert truth["effects_applied"]["barrier"] == pytest.approx(DEFAULT_EFFECTS["barrier"] / 2)
    assert truth["effects_applied"]["lr_fold"] == pytest.approx(DEFAULT_EFFECTS["lr_fold"] ** 0.5)
    table = truth["effects_table"].set_index("name")
    assert table.loc["Neutrophils", "direction_in_resistors"] == "none"
    assert truth["params"]["dispersion_median"] == pytest.approx(2 * 0.3)


def test_bigger_effect_gives_bigger_shift():
    def gap(effects):
        adata = simulate_cohort(16, 400, effects=effects, n_genes=500, random_state=3)
        frac, response = _state_fraction(adata, "TAM2_SPP1")
        return frac[response == "resistor"].mean() - frac[response == "responder"].mean()

    assert gap({"TAM2_SPP1": 2.0}) > gap({"TAM2_SPP1": 0.5}) + 0.1


# ------------------------------------------------------------------------------------------------
# Validation
# ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("kwargs,error,match", [
    (dict(n_patients=3), ValueError, "n_patients must be >= 4"),
    (dict(n_patients=4.5), TypeError, "n_patients must be an integer"),
    (dict(n_patients=True), TypeError, "n_patients"),
    (dict(cells_per_patient=10), ValueError, "cells_per_patient must be >= 50"),
    (dict(n_genes=0), ValueError, "n_genes"),
    (dict(random_state=-1), ValueError, "random_state"),
    (dict(random_state=1.5), TypeError, "random_state"),
    (dict(random_state=2**32), ValueError, r"random_state must be < 2\*\*32"),
    (dict(random_state=5, seed=7), ValueError, "disagree"),
    (dict(noise=0), ValueError, r"noise must be in \[0.1, 10.0\]"),
    (dict(noise=0.001), ValueError, "noise must be in"),
    (dict(n_genes=40_000), ValueError, "n_genes=40000 is more than the"),
    (dict(noise="loud"), TypeError, "noise"),
    (dict(spatial="yes"), TypeError, "spatial"),
    (dict(effects={"TAM9_NOPE": 1.0}), ValueError, "unknown effect name.*TAM9_NOPE.*TAM2_SPP1"),
    (dict(effects={"barrier": 1.5}), ValueError, "barrier"),
    (dict(effects={"lr_fold": 0}), ValueError, "lr_fold"),
    (dict(effects={"TAM2_SPP1": float("nan")}), ValueError, "finite"),
    (dict(effects={"TAM2_SPP1": "big"}), TypeError, "number"),
    (dict(effects=[("TAM2_SPP1", 1.0)]), TypeError, "dict"),
])
def test_bad_input_is_refused_clearly(kwargs, error, match):
    params = dict(n_patients=4, cells_per_patient=50) | kwargs
    with pytest.raises(error, match=match):
        simulate_cohort(**params)


def test_valid_effect_names_are_listed():
    assert set(DEFAULT_EFFECTS) <= set(VALID_EFFECTS)
    assert {"lr_fold", "barrier", *STATE_IDS, *CELL_TYPES} == set(VALID_EFFECTS)


def test_odd_number_of_patients_has_one_more_responder():
    adata = simulate_cohort(5, 60, random_state=0)
    response = _validate.constant_within(adata, "response", "patient")
    assert (response == "resistor").sum() == 2 and (response == "responder").sum() == 3
    assert adata.uns[Keys.SIM]["params"]["n_responders"] == 3


# ------------------------------------------------------------------------------------------------
# Spatial
# ------------------------------------------------------------------------------------------------
def _mean_distance_to_tumour(adata, mask: np.ndarray) -> pd.Series:
    obs, xy = adata.obs, adata.obsm["spatial"]
    tumour = obs["cell_type"].isin(["Tumour cells", "Hepatocytes"]).to_numpy()
    out = {}
    for patient in obs["patient"].cat.categories:
        here = (obs["patient"] == patient).to_numpy()
        tree = cKDTree(xy[here & tumour])
        out[patient] = tree.query(xy[here & mask])[0].mean()
    return pd.Series(out)


def test_spatial_coordinates_and_frames(spatial_cohort):
    xy = spatial_cohort.obsm["spatial"]
    assert xy.shape == (spatial_cohort.n_obs, 2) and np.isfinite(xy).all()
    # patients occupy disjoint frames
    boxes = pd.DataFrame(xy, columns=["x", "y"]).groupby(spatial_cohort.obs["patient"].to_numpy()).agg(["min", "max"])
    for i, a in boxes.iterrows():
        for j, b in boxes.iterrows():
            if i < j:
                overlap_x = a[("x", "min")] < b[("x", "max")] and b[("x", "min")] < a[("x", "max")]
                overlap_y = a[("y", "min")] < b[("y", "max")] and b[("y", "min")] < a[("y", "max")]
                assert not (overlap_x and overlap_y), (i, j)
    truth = spatial_cohort.uns[Keys.SIM]
    assert truth["barrier_states"] == ["TAM2_SPP1", "CAF_ECM_MYCAF"]
    barrier = truth["barrier"].set_index("patient")
    response = _validate.constant_within(spatial_cohort, "response", "patient")
    assert (barrier.loc[response.index, "barrier"] == (response == "resistor")).all()
    assert len(truth["nests"]) >= 2 * 12


def test_barrier_cells_closer_and_cd8_further_in_resistors(spatial_cohort):
    obs = spatial_cohort.obs
    response = _validate.constant_within(spatial_cohort, "response", "patient")
    barrier = obs["state_true"].isin(["TAM2_SPP1", "CAF_ECM_MYCAF"]).to_numpy()
    cd8 = (obs["cell_type"] == "CD8+ T cells").to_numpy()
    d_barrier = _mean_distance_to_tumour(spatial_cohort, barrier)
    d_cd8 = _mean_distance_to_tumour(spatial_cohort, cd8)
    assert _mwu(d_barrier, response.loc[d_barrier.index], "less") < 0.01
    assert _mwu(d_cd8, response.loc[d_cd8.index], "greater") < 0.01
    assert d_barrier[response == "resistor"].max() < d_barrier[response == "responder"].min()


def test_null_spatial_has_the_same_layout_in_both_groups():
    null = simulate_cohort(12, 400, spatial=True, null=True, random_state=2)
    assert not null.uns[Keys.SIM]["barrier"]["barrier"].any()
    response = _validate.constant_within(null, "response", "patient")
    barrier = null.obs["state_true"].isin(["TAM2_SPP1", "CAF_ECM_MYCAF"]).to_numpy()
    d = _mean_distance_to_tumour(null, barrier)
    assert _mwu(d, response.loc[d.index], "two-sided") > 0.05


# ------------------------------------------------------------------------------------------------
# Serialisation, demo, speed
# ------------------------------------------------------------------------------------------------
def test_h5ad_round_trip(tmp_path, spatial_cohort):
    path = tmp_path / "sim.h5ad"
    spatial_cohort.write_h5ad(path)
    back = ad.read_h5ad(path)
    truth = back.uns[Keys.SIM]
    assert set(spatial_cohort.uns[Keys.SIM]) == set(truth)
    pd.testing.assert_frame_equal(truth["barrier"], spatial_cohort.uns[Keys.SIM]["barrier"], check_dtype=False)
    assert (back.layers["counts"] != spatial_cohort.layers["counts"]).nnz == 0
    null = simulate_cohort(4, 50, null=True, random_state=0)
    null.write_h5ad(tmp_path / "null.h5ad")
    assert ad.read_h5ad(tmp_path / "null.h5ad").uns[Keys.SIM]["null"]


def test_demo_is_cached_fast_and_copy_safe():
    first = demo()
    assert 12 <= first.obs["patient"].nunique() <= 16 and "spatial" in first.obsm
    response = _validate.constant_within(first, "response", "patient")
    assert (response == "resistor").sum() == len(response) // 2
    start = time.perf_counter()
    second = demo()
    assert time.perf_counter() - start < 2.0
    assert second is not first
    first.obs["cell_type"] = "changed"
    first.uns[Keys.SIM]["random_state"] = -1
    first.layers["counts"].data[:] = 0
    third = demo()
    assert (third.obs["cell_type"] != "changed").all()
    assert third.uns[Keys.SIM]["random_state"] == 0
    assert third.layers["counts"].data.min() >= 1


def test_small_cohorts_are_fast():
    simulate_cohort(4, 50, random_state=0)  # warm the gene-level cache
    start = time.perf_counter()
    simulate_cohort(12, 400, n_genes=500, null=True, random_state=1)
    assert time.perf_counter() - start < 5.0  # typically ~0.3 s; generous for loaded CI machines


def test_the_barrier_stays_a_fraction_and_is_planted_only_with_coordinates():
    """Sweep 55: noise=0.5 recorded a barrier "fraction" of 1.6; a cohort without coordinates recorded a barrier
    applied (0.8, 'up') that nothing planted."""
    truth = simulate_cohort(4, 60, spatial=True, noise=0.5, random_state=0).uns["hcctme_sim"]
    assert truth["effects_applied"]["barrier"] == 1.0
    assert (truth["barrier"]["strength"] <= 1.0).all()
    flat = simulate_cohort(4, 60, random_state=0).uns["hcctme_sim"]
    row = flat["effects_table"].set_index("name").loc["barrier"]
    assert row["applied"] == 0.0 and row["direction_in_resistors"] == "none"


@pytest.mark.parametrize("effects, noise", [({"lr_fold": 1e40}, 0.1), ({"lr_fold": 1e-40}, 0.1),
                                            ({"TAM2_SPP1": 1e308}, 0.5)])
def test_effects_that_overflow_after_noise_are_refused(effects, noise):
    """Sweep 57: OverflowError, a math domain error or NaN probabilities from deep inside."""
    with pytest.raises(ValueError, match="log-scale effect"):
        ht.datasets.simulate_cohort(n_patients=4, cells_per_patient=60, effects=effects, noise=noise)
