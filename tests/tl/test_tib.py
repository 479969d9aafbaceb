"""hcctme.tl.tib / hcctme.pl.tib: the spatial tumour immune barrier on the simulator's spatial cohorts."""

from __future__ import annotations

import sys

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
from anndata import AnnData
from scipy import stats

import hcctme as ht
from hcctme._constants import BARRIER_STATES
from hcctme.datasets import simulate_cohort
from hcctme.tl import _tib_stats

pytest.importorskip("squidpy")

BARRIER = {"state_true": ["TAM2_SPP1", "CAF_ECM_MYCAF"]}
TUMOUR = {"cell_type": ["Tumour cells", "Hepatocytes"]}
T_CELLS = {"cell_type": ["CD8+ T cells"]}
LABELS = dict(barrier_labels=BARRIER, tumour_labels=TUMOUR, t_cell_labels=T_CELLS)
CONTEXTS = {"CD8+ T cells": "cd8_t", "Tumour cells": "tumour", "Hepatocytes": "hepatocyte",
            "Macrophages": "macrophage", "Fibroblasts": "fibroblast"}
N_PERMS = 99


@pytest.fixture(scope="module")
def cohort() -> AnnData:
    return simulate_cohort(12, 500, spatial=True, random_state=0)


@pytest.fixture(scope="module")
def table(cohort) -> pd.DataFrame:
    return _tib(cohort.copy(), sample_key="patient", n_perms=N_PERMS, **LABELS)


def _tib(adata: AnnData, **kwargs) -> pd.DataFrame:
    """Run tl.tib (which returns None) and read its table back through hcctme.get."""
    assert ht.tl.tib(adata, **kwargs) is None
    return ht.get.tib(adata, kwargs.get("key_added", "hcctme_tib"))


def _by_response(adata: AnnData, table: pd.DataFrame, column: str) -> tuple[np.ndarray, np.ndarray]:
    response = adata.obs.groupby("patient", observed=True)["response"].first().astype(str)
    values = table[column].astype(float)
    res = values[response.reindex(values.index) == "resistor"].to_numpy()
    rsp = values[response.reindex(values.index) == "responder"].to_numpy()
    return res, rsp


def _with_states(adata: AnnData) -> AnnData:
    """obs as tl.call_states would write it, from the simulator's truth (no dependency on call_states)."""
    adata = adata.copy()
    adata.obs["hcctme_state"] = pd.Categorical(adata.obs["state_true"].astype(str))
    ctx = adata.obs["cell_type"].astype(str).map(CONTEXTS).fillna("other")
    adata.obs["hcctme_state_context"] = pd.Categorical(ctx)
    return adata


# -- statistics ------------------------------------------------------------------------------------
def test_table_shape_and_columns(cohort, table):
    # one row per sample, in the order the samples first appear in obs
    assert list(table.index) == list(pd.unique(cohort.obs["patient"].astype(str)))
    assert table.index.name == "patient"
    for col in ("tib_score", "tib_pvalue", "t_exclusion", "t_exclusion_pvalue", "n_cells", "colocalisation",
                "coverage", "coverage_expected", "t_cell_distance", "radius", "nhood_z_barrier_tumour"):
        assert col in table.columns
    assert (table["n_cells"] == cohort.obs["patient"].value_counts().reindex(table.index)).all()
    assert table[["tib_pvalue", "t_exclusion_pvalue"]].stack().between(1 / (N_PERMS + 1), 1).all()
    assert (table["radius"] > 0).all()


def test_tib_separates_resistors_from_responders(cohort, table):
    res, rsp = _by_response(cohort, table, "tib_score")
    p = stats.mannwhitneyu(res, rsp, alternative="greater").pvalue
    assert p < 0.05, (res, rsp)
    assert np.median(res) > np.median(rsp)
    res_x, rsp_x = _by_response(cohort, table, "t_exclusion")
    p_x = stats.mannwhitneyu(res_x, rsp_x, alternative="greater").pvalue
    assert p_x < 0.05, (res_x, rsp_x)
    # resistors carry a barrier sample by sample
    res_p, _ = _by_response(cohort, table, "tib_pvalue")
    assert np.mean(res_p < 0.05) >= 0.8


def test_null_cohorts_find_nothing():
    n_tests, n_hits, sample_p = 0, 0, []
    for seed in (11, 12, 13):
        null = simulate_cohort(8, 400, spatial=True, null=True, random_state=seed)
        table = _tib(null, sample_key="patient", n_perms=N_PERMS, random_state=seed, **LABELS)
        for column in ("tib_score", "t_exclusion"):
            res, rsp = _by_response(null, table, column)
            n_tests += 1
            n_hits += stats.mannwhitneyu(res, rsp, alternative="two-sided").pvalue < 0.05
        sample_p.extend(table["tib_pvalue"].dropna())
    assert n_hits <= 1, f"{n_hits} of {n_tests} patient-level tests significant on null cohorts"
    # per-sample permutation p-values: no barrier planted, few samples called
    assert np.mean(np.asarray(sample_p) < 0.05) <= 0.25


def test_defaults_read_state_calls(cohort, table):
    adata = _with_states(cohort)
    default = _tib(adata, sample_key="patient", n_perms=N_PERMS)
    # defaults: TAM2_SPP1 + CAF_ECM_MYCAF + CAF_TGFB_MYCAF, tumour/hepatocyte contexts, CD8 context
    res, rsp = _by_response(cohort, default, "tib_score")
    assert stats.mannwhitneyu(res, rsp, alternative="greater").pvalue < 0.05
    params = adata.uns["hcctme_tib_params"]
    assert "TAM2_SPP1" in params["labels"]["barrier"]["hcctme_state"]
    assert params["labels"]["tumour"]["hcctme_state_context"] == ["tumour", "hepatocyte"]
    np.testing.assert_allclose(default["n_tumour"].to_numpy(), table["n_tumour"].to_numpy())


def test_label_key_defaults(cohort):
    adata = cohort.copy()
    adata.obs["label"] = np.where(adata.obs["state_true"].astype(str) != "unassigned",
                                  adata.obs["state_true"].astype(str), adata.obs["cell_type"].astype(str))
    out = _tib(adata, sample_key="patient", label_key="label", n_perms=9)
    params = adata.uns["hcctme_tib_params"]["labels"]
    assert set(params["tumour"]["label"]) == {"Tumour cells", "Hepatocytes"}
    assert "CD8+ T cells" in params["t_cell"]["label"]
    assert out["tib_score"].notna().all()
    # labels are read as call_states reads them: a tumour-associated macrophage is no tumour cell (substrings
    # 'tumor' / 'cancer' read them as tumour, barrier cells included)
    renamed = {"Macrophages": "Tumor-associated macrophages", "Fibroblasts": "Cancer-associated fibroblasts"}
    adata.obs["label"] = adata.obs["label"].replace(renamed)
    _tib(adata, sample_key="patient", label_key="label", n_perms=9)
    tumour = adata.uns["hcctme_tib_params"]["labels"]["tumour"]["label"]
    assert set(tumour) == {"Tumour cells", "Hepatocytes"}


def test_reproducible_and_copy(cohort):
    sub = cohort[cohort.obs["patient"].isin(cohort.obs["patient"].cat.categories[:3])].copy()
    a = _tib(sub, sample_key="patient", n_perms=19, random_state=3, **LABELS)
    b = _tib(sub, sample_key="patient", n_perms=19, random_state=3, **LABELS)
    pd.testing.assert_frame_equal(a, b)
    fresh = cohort[cohort.obs["patient"].isin(cohort.obs["patient"].cat.categories[:3])].copy()
    copied = ht.tl.tib(fresh, sample_key="patient", n_perms=19, random_state=3, copy=True, **LABELS)
    assert isinstance(copied, AnnData)
    assert "hcctme_tib" not in fresh.uns
    pd.testing.assert_frame_equal(copied.uns["hcctme_tib"], a)
    # a sample's result does not depend on the other samples analysed with it
    one = fresh[fresh.obs["patient"] == a.index[1]].copy()
    alone = _tib(one, sample_key="patient", n_perms=19, random_state=3, **LABELS)
    pd.testing.assert_frame_equal(alone, a.iloc[[1]], check_dtype=False)


def test_stats_exact_on_a_toy_ring():
    # tumour disc, barrier cells exactly on its rim, T cells far away
    g = np.stack(np.meshgrid(np.arange(30), np.arange(30)), -1).reshape(-1, 2).astype(float)
    d = np.linalg.norm(g - 15, axis=1)
    tumour = d < 6
    barrier = (d >= 6) & (d < 7.2)
    t_cell = d > 13
    adj = sp.csr_matrix((np.linalg.norm(g[:, None] - g[None], axis=2) <= 1.5) & ~np.eye(len(g), dtype=bool))
    geom = _tib_stats.geometry(adj, tumour, g)
    out = _tib_stats.sample_stats(geom, barrier.astype(float), t_cell.astype(float), n_perms=50,
                                  rng=np.random.default_rng(0))
    assert out["colocalisation"] == pytest.approx(np.mean(geom.ring[barrier[~tumour]]))
    assert out["coverage"] == pytest.approx(1.0)
    assert out["tib_score"] > 0.5 and out["tib_pvalue"] == pytest.approx(1 / 51)
    assert out["t_exclusion"] > 0 and out["t_exclusion_pvalue"] == pytest.approx(1 / 51)
    # the same labels scattered at random: no barrier
    rng = np.random.default_rng(1)
    shuffled = np.zeros_like(barrier)
    shuffled[rng.choice(np.flatnonzero(~tumour), barrier.sum(), replace=False)] = True
    out = _tib_stats.sample_stats(geom, shuffled.astype(float), t_cell.astype(float), n_perms=50, rng=rng)
    assert abs(out["tib_score"]) < 0.2


def test_without_permutations_the_p_values_are_missing_not_one():
    """Sweep 54: n_perms=0 gave t_exclusion_pvalue 1.0 (an empty null read as never exceeded)."""
    g = np.stack(np.meshgrid(np.arange(12), np.arange(12)), -1).reshape(-1, 2).astype(float)
    d = np.linalg.norm(g - 6, axis=1)
    adj = sp.csr_matrix((np.linalg.norm(g[:, None] - g[None], axis=2) <= 1.5) & ~np.eye(len(g), dtype=bool))
    geom = _tib_stats.geometry(adj, d < 3, g)
    out = _tib_stats.sample_stats(geom, ((d >= 3) & (d < 4.2)).astype(float), (d > 5).astype(float), n_perms=0,
                                  rng=np.random.default_rng(0))
    assert np.isnan(out["t_exclusion_pvalue"]) and np.isnan(out["tib_pvalue"]) and out["t_exclusion"] > 0


def test_helpers():
    assert _tib_stats.median_nn_distance(np.array([[0.0, 0.0], [0.0, 2.0], [0.0, 5.0]])) == pytest.approx(2.0)
    # cells mapped onto shared positions (three per spot) count each position once: the radius was 0
    spots = np.repeat(np.stack(np.meshgrid(np.arange(10), np.arange(10)), -1).reshape(-1, 2) * 100.0, 3, axis=0)
    assert _tib_stats.median_nn_distance(spots) == pytest.approx(100.0)
    values = np.r_[np.random.default_rng(0).normal(0, 1, 200), np.random.default_rng(1).normal(8, 1, 200)]
    assert 2 < _tib_stats.otsu_threshold(values) < 6
    scaled = _tib_stats.robust_unit_scale(values)
    assert scaled.min() == 0 and scaled.max() == 1


# -- spot mode -------------------------------------------------------------------------------------
def _spots(adata: AnnData, cells_per_side: float = 3.0, seed: int = 0) -> AnnData:
    """Visium-like spots: cells binned on a square grid; 'scores' = the cell mix of each spot + noise."""
    rng = np.random.default_rng(seed)
    xy = adata.obsm["spatial"]
    size = cells_per_side * _tib_stats.median_nn_distance(xy)
    obs = adata.obs
    frame = pd.DataFrame({
        "patient": obs["patient"].astype(str).to_numpy(),
        "response": obs["response"].astype(str).to_numpy(),
        "bx": np.floor(xy[:, 0] / size).astype(int), "by": np.floor(xy[:, 1] / size).astype(int),
        "tumour": obs["cell_type"].isin(["Tumour cells", "Hepatocytes"]).to_numpy(),
        "tam2": (obs["state_true"] == "TAM2_SPP1").to_numpy(),
        "ecm": (obs["state_true"] == "CAF_ECM_MYCAF").to_numpy(),
        "cd8": (obs["cell_type"] == "CD8+ T cells").to_numpy(),
    })
    spots = frame.groupby(["patient", "bx", "by"], observed=True).agg(
        response=("response", "first"), tumour=("tumour", "mean"), tam2=("tam2", "mean"), ecm=("ecm", "mean"),
        cd8=("cd8", "mean"), n=("tumour", "size")).reset_index()
    n = len(spots)
    noise = lambda: rng.normal(0, 0.03, n)
    scores = pd.DataFrame({
        "MARKER_TUMOUR": spots["tumour"] + noise(), "TAM2_SPP1": spots["tam2"] + noise(),
        "CAF_ECM_MYCAF": spots["ecm"] + noise(), "CAF_TGFB_MYCAF": noise(), "MARKER_CD8_T": spots["cd8"] + noise(),
    })
    obs = spots[["patient", "response", "n"]].assign(patient=lambda f: f["patient"].astype("category"))
    obs.index = [f"spot{i}" for i in range(n)]
    out = AnnData(sp.csr_matrix((n, 1), dtype=np.float32), obs=obs)
    scores.index = out.obs_names
    out.obsm["hcctme_scores"] = scores
    out.obsm["spatial"] = (spots[["bx", "by"]].to_numpy(float) + 0.5) * size
    out.obs["pathology"] = np.where(spots["tumour"] > 0.5, "tumour", "stroma")
    return out


@pytest.fixture(scope="module")
def spots(cohort) -> AnnData:
    return _spots(cohort)


def test_spot_mode_separates(spots):
    table = _tib(spots, sample_key="patient", mode="spots", n_perms=N_PERMS)
    assert np.isnan(table["nhood_z_barrier_tumour"]).all()
    res, rsp = _by_response(spots, table, "tib_score")
    assert stats.mannwhitneyu(res, rsp, alternative="greater").pvalue < 0.05, (res, rsp)
    res_x, rsp_x = _by_response(spots, table, "t_exclusion")
    assert stats.mannwhitneyu(res_x, rsp_x, alternative="greater").pvalue < 0.05, (res_x, rsp_x)
    params = spots.uns["hcctme_tib_params"]
    assert params["params"]["mode"] == "spots" and np.isfinite(params["tumour_threshold"])
    assert params["tool"] == "hcctme.tl.tib" and params["params"]["n_perms"] == N_PERMS
    assert params["labels"]["barrier"]["obsm['hcctme_scores']"] == ["TAM2_SPP1", "CAF_ECM_MYCAF", "CAF_TGFB_MYCAF"]


def test_spot_mode_on_scored_spots(cohort):
    """Counts of the cells under each spot summed, log-normalised and scored with tl.score."""
    import scanpy as sc

    xy = cohort.obsm["spatial"]
    size = 5 * _tib_stats.median_nn_distance(xy)
    key = (cohort.obs["patient"].astype(str) + ":" + np.floor(xy[:, 0] / size).astype(int).astype(str) + ":"
           + np.floor(xy[:, 1] / size).astype(int).astype(str))
    codes, spots_id = pd.factorize(key)
    agg = sp.csr_matrix((np.ones(cohort.n_obs), (codes, np.arange(cohort.n_obs))), shape=(len(spots_id), cohort.n_obs))
    parts = pd.Series(spots_id).str.split(":", expand=True)
    obs = pd.DataFrame({"patient": pd.Categorical(parts[0].to_numpy())}, index=[f"spot{i}" for i in range(len(parts))])
    obs["response"] = obs["patient"].map(cohort.obs.groupby("patient", observed=True)["response"].first()).astype(str)
    spots = AnnData((agg @ cohort.layers["counts"]).astype(np.float32).tocsr(), obs=obs, var=cohort.var[[]].copy())
    spots.obsm["spatial"] = (parts[[1, 2]].astype(float).to_numpy() + 0.5) * size
    sc.pp.normalize_total(spots, target_sum=1e4)
    sc.pp.log1p(spots)
    ht.tl.score(spots, ["TAM2_SPP1", "CAF_ECM_MYCAF", "CAF_TGFB_MYCAF", "MARKER_TUMOUR", "MARKER_CD8_T"])
    table = _tib(spots, sample_key="patient", mode="spots", n_perms=N_PERMS)
    for column in ("tib_score", "t_exclusion"):
        res, rsp = _by_response(spots, table, column)
        assert stats.mannwhitneyu(res, rsp, alternative="greater").pvalue < 0.05, (column, res, rsp)


def test_spot_mode_annotation_and_columns(spots):
    adata = spots.copy()
    table = _tib(adata, sample_key="patient", mode="spots", n_perms=9,
                      tumour_labels={"pathology": ["tumour"]}, barrier_labels=["TAM2_SPP1"],
                      t_cell_labels=["MARKER_CD8_T"])
    assert table["tib_score"].notna().all()
    with pytest.raises(KeyError, match="not signature scores"):
        ht.tl.tib(adata, sample_key="patient", mode="spots", barrier_labels=["NOT_A_SCORE"])
    del adata.obsm["hcctme_scores"]
    with pytest.raises(KeyError, match=r"tl\.score"):
        ht.tl.tib(adata, sample_key="patient", mode="spots")


# -- errors and input untouched --------------------------------------------------------------------
def test_errors_leave_input_untouched(cohort, digest):
    adata = cohort[cohort.obs["patient"].isin(cohort.obs["patient"].cat.categories[:2])].copy()
    before = digest(adata)
    no_xy = adata.copy()
    del no_xy.obsm["spatial"]
    with pytest.raises(KeyError, match="spatial"):
        ht.tl.tib(no_xy, sample_key="patient", **LABELS)
    with pytest.raises(KeyError, match="call_states"):
        ht.tl.tib(adata, sample_key="patient")
    with pytest.raises(ValueError, match="unknown barrier label"):
        ht.tl.tib(adata, sample_key="patient", barrier_labels={"state_true": ["TAM9_NOPE"]},
                  tumour_labels=TUMOUR, t_cell_labels=T_CELLS)
    with pytest.raises(KeyError, match="no column 'nope'"):
        ht.tl.tib(adata, sample_key="patient", barrier_labels={"nope": ["x"]}, tumour_labels=TUMOUR)
    with pytest.raises(KeyError, match="sample_key"):
        ht.tl.tib(adata, sample_key="donor", **LABELS)
    with pytest.raises(ValueError, match="mode"):
        ht.tl.tib(adata, sample_key="patient", mode="voxels", **LABELS)
    with pytest.raises(ValueError, match="radius"):
        ht.tl.tib(adata, sample_key="patient", radius=-1.0, **LABELS)
    stacked = adata.copy()  # two sections of one sample stacked in z: not one plane
    z = (stacked.obs_names.to_series().str[-1].astype(int) % 2 * 1000.0).to_numpy()
    stacked.obsm["spatial"] = np.c_[stacked.obsm["spatial"][:, :2], z]
    with pytest.raises(ValueError, match=r"third column \(z\) varies within a sample"):
        ht.tl.tib(stacked, sample_key="patient", **LABELS)
    stacked.obsm["spatial"] = np.c_[stacked.obsm["spatial"][:, :2], np.full(stacked.n_obs, 5.0)]  # one section
    ht.tl.tib(stacked, sample_key="patient", n_perms=0, **LABELS)
    with_states = _with_states(adata)
    with pytest.raises(ValueError, match="unknown"):
        ht.tl.tib(with_states, sample_key="patient", barrier_labels=["NOT_A_STATE"])
    no_barrier = with_states[~with_states.obs["hcctme_state"].isin(BARRIER_STATES)].copy()
    with pytest.raises(ht.tl.TooFewCellsError, match="none of the default barrier states"):  # the pipeline skips it
        ht.tl.tib(no_barrier, sample_key="patient")
    assert digest(adata) == before


def test_missing_squidpy_is_explained(cohort, monkeypatch):
    adata = cohort[cohort.obs["patient"].isin(cohort.obs["patient"].cat.categories[:1])].copy()
    monkeypatch.setitem(sys.modules, "squidpy", None)
    with pytest.raises(ImportError, match=r"hcctme\[spatial\]"):
        ht.tl.tib(adata, sample_key="patient", **LABELS)
    assert "hcctme_tib" not in adata.uns


# -- plot ------------------------------------------------------------------------------------------
def test_pl_tib_cells_and_spots(cohort, spots):
    import matplotlib.pyplot as plt

    adata = cohort[cohort.obs["patient"].isin(cohort.obs["patient"].cat.categories[:2])].copy()
    ht.tl.tib(adata, sample_key="patient", n_perms=9, **LABELS)
    sample = str(adata.obs["patient"].cat.categories[0])
    ax = ht.pl.tib(adata, sample)
    assert "TIB" in ax.get_title()
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert any("barrier" in t for t in labels)
    plt.close("all")
    ax = ht.pl.tib(spots.copy(), str(spots.obs["patient"].iloc[0]), mode="spots", sample_key="patient")
    assert ax.get_title()
    plt.close("all")
    with pytest.raises(ValueError, match="not a level"):
        ht.pl.tib(adata, "no-such-sample")


def test_the_table_does_not_follow_the_rows_order(cohort, table):
    """Sweep 58: each sample's permutations ran over its cells in row order (tib_score moved by up to 0.02)."""
    shuffled = cohort[np.random.default_rng(3).permutation(cohort.n_obs)].copy()
    pd.testing.assert_frame_equal(_tib(shuffled, sample_key="patient", n_perms=N_PERMS, **LABELS), table)


def test_a_perfect_barrier_scores_the_documented_maximum_not_one():
    """Sweep 58: the docstring said 1 for a perfect barrier; its maximum is 1 - (E_colocalisation + E_coverage) / 2."""
    xs, ys = np.meshgrid(np.arange(30), np.arange(30))
    xy = np.c_[xs.ravel(), ys.ravel()].astype(float)
    r = np.hypot(xy[:, 0] - 14.5, xy[:, 1] - 14.5)
    label = np.full(len(xy), "Other", dtype=object)
    label[r < 6], label[(r >= 6) & (r < 7.5)] = "Tumour", "TAM2_SPP1"
    label[np.random.default_rng(0).choice(np.flatnonzero(r > 11), 40, replace=False)] = "CD8 T"
    adata = AnnData(np.zeros((len(xy), 1), np.float32),
                    obs=pd.DataFrame({"lab": label, "sample": "S1"}, index=[str(i) for i in range(len(xy))]))
    adata.obsm["spatial"] = xy
    row = _tib(adata, sample_key="sample", label_key="lab", barrier_labels=["TAM2_SPP1"], tumour_labels=["Tumour"],
               t_cell_labels=["CD8 T"], n_perms=99).iloc[0]
    assert row["colocalisation"] == 1 and row["coverage"] == 1
    maximum = 1 - (row["colocalisation_expected"] + row["coverage_expected"]) / 2
    assert row["tib_score"] == pytest.approx(maximum, rel=1e-12) and row["tib_score"] < 0.95


def test_without_permutations_a_sample_without_barrier_has_no_p_value(cohort):
    """Sweep 61: n_perms=0 still gave tib_pvalue 1.0 to a sample with no barrier cell (NaN everywhere else)."""
    adata = cohort[cohort.obs["patient"].isin(cohort.obs["patient"].cat.categories[:3])].copy()
    first = adata.obs["patient"].cat.categories[0]
    barrier = adata.obs["state_true"].isin(BARRIER["state_true"]) & (adata.obs["patient"] == first)
    adata = adata[~barrier.to_numpy()].copy()
    table = _tib(adata, sample_key="patient", n_perms=0, **LABELS)
    assert table.loc[first, "n_barrier"] == 0 and table.loc[first, "tib_score"] == 0
    assert table["tib_pvalue"].isna().all() and table["t_exclusion_pvalue"].isna().all()


def test_spot_mode_refuses_a_label_key_it_would_not_read(spots, digest):
    """Sweep 61: in spot mode label_key without a plain label list was stored in the record and never read (the
    tumour spots came from the tumour score whatever the column said)."""
    adata = spots.copy()
    adata.obs["annot"] = np.where(adata.obs["pathology"] == "tumour", "Tumour cells", "Stroma")
    before = digest(adata)
    with pytest.raises(ValueError, match="label_key='annot' is read in spot mode only by plain label lists"):
        ht.tl.tib(adata, sample_key="patient", mode="spots", label_key="annot", n_perms=0)
    with pytest.raises(ValueError, match="label_key='annot' is read in spot mode only by plain label lists"):
        ht.tl.tib(adata, sample_key="patient", mode="spots", label_key="annot", n_perms=0,
                  tumour_labels={"annot": ["Tumour cells"]})
    assert digest(adata) == before
    table = _tib(adata, sample_key="patient", mode="spots", label_key="annot", tumour_labels=["Tumour cells"],
                 n_perms=0)
    assert table["n_tumour"].sum() == (adata.obs["annot"] == "Tumour cells").sum()


def test_coordinates_that_are_not_a_numeric_array_are_refused_by_name(cohort, digest):
    """Sweep 61: NaN coordinates were refused without saying which cells or how to fix it; sparse or text
    coordinates failed inside numpy ("setting an array element with a sequence")."""
    adata = cohort[cohort.obs["patient"].isin(cohort.obs["patient"].cat.categories[:2])].copy()
    xy = np.asarray(adata.obsm["spatial"], dtype=float)
    cases = {"nan": (xy.copy(), ValueError, r"NaN or infinite coordinates in 1 cell\(s\) .*drop those cells"),
             "sparse": (sp.csr_matrix(xy), TypeError, "numeric coordinates as a dense array"),
             "text": (pd.DataFrame({"x": xy[:, 0], "y": ["row"] * len(xy)}, index=adata.obs_names), TypeError,
                      "numeric coordinates as a dense array")}
    cases["nan"][0][3, 0] = np.nan
    nullable = pd.DataFrame(xy[:, :2], index=adata.obs_names, columns=["x", "y"]).astype("Float64")
    nullable.iloc[3, 0] = pd.NA  # review 61: numpy's "float() argument must be ... NAType"
    cases["nullable"] = (nullable, ValueError, r"NaN or infinite coordinates in 1 cell\(s\)")
    for coords, error, message in cases.values():
        bad = adata.copy()
        bad.obsm["spatial"] = coords
        before = digest(bad)
        with pytest.raises(error, match=message):
            ht.tl.tib(bad, sample_key="patient", n_perms=0, **LABELS)
        assert digest(bad) == before
    frame = adata.copy()  # a numeric DataFrame is coordinates as well
    frame.obsm["spatial"] = pd.DataFrame(xy[:, :2], index=adata.obs_names, columns=["x", "y"])
    pd.testing.assert_frame_equal(_tib(frame, sample_key="patient", n_perms=0, **LABELS),
                                  _tib(adata, sample_key="patient", n_perms=0, **LABELS))


def test_repeated_cell_names_read_in_the_same_order_whatever_the_rows():
    """Repeated obs_names (concatenated samples) were ordered by row: shuffling the rows moved tib_score."""
    adata = simulate_cohort(4, 120, spatial=True, random_state=2)
    names = adata.obs_names.to_numpy().copy()
    names[1::2] = names[0::2]
    adata.obs_names = names
    labels = dict(barrier_labels={"state_true": ["TAM2_SPP1", "CAF_ECM_MYCAF"]},
                  tumour_labels={"cell_type": ["Tumour cells"]}, t_cell_labels={"cell_type": ["CD8+ T cells"]})
    ht.tl.tib(adata, sample_key="patient", n_perms=50, **labels)
    shuffled = adata[np.random.default_rng(0).permutation(adata.n_obs)].copy()
    ht.tl.tib(shuffled, sample_key="patient", n_perms=50, **labels)
    pd.testing.assert_frame_equal(ht.get.tib(shuffled), ht.get.tib(adata), check_exact=True)


def test_pl_tib_draws_the_call_on_data_that_lack_some_recorded_labels(cohort):
    """Sweep 63: tl.tib records its default tumour contexts (tumour, hepatocyte) whether present or not, and pl.tib
    read the record back strictly: a section without hepatocytes (or a subset without one barrier state) raised
    "unknown tumour label(s) ['hepatocyte']" on the documented call."""
    import matplotlib.pyplot as plt

    adata = _with_states(cohort[cohort.obs["patient"].isin(cohort.obs["patient"].cat.categories[:2])
                                & (cohort.obs["cell_type"] != "Hepatocytes")])
    adata.obs["hcctme_state_context"] = adata.obs["hcctme_state_context"].cat.remove_unused_categories()
    ht.tl.tib(adata, sample_key="patient", n_perms=9)
    assert adata.uns["hcctme_tib_params"]["labels"]["tumour"]["hcctme_state_context"] == ["tumour", "hepatocyte"]
    sample = str(adata.obs["patient"].cat.categories[0])
    ax = ht.pl.tib(adata, sample)
    legend = {t.get_text().split(" (")[0]: t.get_text() for t in ax.get_legend().get_texts()}
    n_tumour = int(((adata.obs["patient"] == sample) & (adata.obs["cell_type"] == "Tumour cells")).sum())
    assert legend["tumour"] == f"tumour ({n_tumour})"
    plt.close("all")
    with pytest.raises(ValueError, match="unknown tumour label"):  # labels the user passes are still checked
        ht.pl.tib(adata, sample, tumour_labels={"cell_type": ["Hepatocytes"]})


def test_a_sample_stacked_at_one_position_is_not_measured_whatever_the_radius(cohort):
    """Sweep 63: the "too few distinct positions" rule counted cells, so with radius=30 a patient whose coordinates
    were all zero-filled (scRNA-only in a spatial cohort) read as measured: tib_score 0, p 1, coverage 1."""
    adata = cohort[cohort.obs["patient"].isin(cohort.obs["patient"].cat.categories[:3])].copy()
    stacked = str(adata.obs["patient"].cat.categories[1])
    adata.obsm["spatial"][(adata.obs["patient"] == stacked).to_numpy()] = 0.0
    for radius in (None, 30.0):
        table = _tib(adata.copy(), sample_key="patient", n_perms=9, radius=radius, **LABELS)
        assert "too few distinct positions" in table.loc[stacked, "note"], radius
        assert table.loc[stacked, ["tib_score", "coverage", "colocalisation"]].isna().all(), radius
        assert table.drop(index=stacked)["tib_score"].notna().all(), radius
