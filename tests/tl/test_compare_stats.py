"""Statistical properties of tl.compare on simulated cohorts (slow).

* Null cohorts (``simulate_cohort(null=True)``: responders and resistors drawn from one
  distribution, with patient-level variation in composition and expression): the false-positive
  rate at p < 0.05 of the patient-level tests is <= 0.05 within binomial noise, for composition,
  scores and genes, while a naive test that treats cells as replicates on the same data exceeds it
  badly.
* Cohorts with the default planted effects at 8 vs 8 patients: the planted state shifts and the
  planted ligand-receptor gene gain are found (padj < 0.1) with the right sign.

Power at 4/8/16 patients per arm: ``benchmarks/compare_power.py``.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
from anndata import AnnData
from scipy import stats

import hcctme as hc
from benchmarks.compare_power import naive_composition, naive_scores

from ._compare_data import fpr_exceedance

pytestmark = pytest.mark.slow

datasets = pytest.importorskip("hcctme.datasets")
try:
    from hcctme.datasets import STATE_IDS, simulate_cohort
    from hcctme.datasets._simulate import STATE_PARENT
except ImportError:  # pragma: no cover
    pytest.skip("simulator missing", allow_module_level=True)

KW = dict(condition_key="response", sample_key="patient", reference="responder")
N_NULL = 100  # null cohorts for composition and scores
N_GENE_NULL = 3  # null cohorts through voom and PyDESeq2 (x 2 cell types x ~500 genes)
ALPHA = 0.05


def _table(adata, **kwargs):
    """tl.compare on a copy; the table it stored."""
    return hc.tl.compare(adata, copy=True, **kwargs).uns["hcctme_compare"]


@pytest.fixture(scope="module")
def null_runs():
    """p-values of tl.compare and of naive cell-level tests on N_NULL null cohorts (6 vs 6)."""
    warnings.simplefilter("ignore")
    hc.settings.progress = False
    res = {"composition": [], "scores": [], "ols": [], "naive_composition": [], "naive_scores": []}
    for seed in range(N_NULL):
        adata = simulate_cohort(12, 400, n_genes=500, null=True, random_state=10_000 + seed)
        hc.tl.score(adata, list(STATE_IDS))
        comp = _table(adata, features="composition", groupby="state_true", parent_key="cell_type",
                             **KW)
        scores = _table(adata, features="scores", groupby="cell_type", **KW)
        scores = scores[[STATE_PARENT[f] == g for f, g in zip(scores["feature"], scores["group"], strict=True)]]
        res["composition"].extend(comp["pvalue"])
        res["scores"].extend(scores["pvalue"])
        if seed < 30:  # OLS with a covariate: fewer cohorts, same data
            ols = _table(adata, features="composition", groupby="state_true", parent_key="cell_type",
                                covariates=["age"], **KW)
            res["ols"].extend(ols["pvalue"])
        res["naive_composition"].extend(naive_composition(adata))
        res["naive_scores"].extend(naive_scores(adata))
    return {k: np.asarray(v, dtype=float) for k, v in res.items()}


def test_null_composition_fpr(null_runs):
    fpr, p_exceed = fpr_exceedance(null_runs["composition"])
    naive, _ = fpr_exceedance(null_runs["naive_composition"])
    assert len(null_runs["composition"]) >= 1500
    assert p_exceed > 0.001, f"composition FPR {fpr:.3f} above {ALPHA} beyond noise"
    assert naive > 2 * ALPHA and naive > fpr + 0.05, (fpr, naive)
    # p-values roughly uniform, not just few small ones (MW exact is conservative, not degenerate)
    assert 0.3 < np.mean(null_runs["composition"] < 0.5) < 0.7


def test_null_composition_ols_fpr(null_runs):
    fpr, p_exceed = fpr_exceedance(null_runs["ols"])
    assert p_exceed > 0.001, f"OLS composition FPR {fpr:.3f} above {ALPHA} beyond noise"


def test_null_scores_fpr(null_runs):
    fpr, p_exceed = fpr_exceedance(null_runs["scores"])
    naive, _ = fpr_exceedance(null_runs["naive_scores"])
    assert len(null_runs["scores"]) >= 1500
    assert p_exceed > 0.001, f"scores FPR {fpr:.3f} above {ALPHA} beyond noise"
    assert naive > 2 * ALPHA and naive > fpr + 0.05, (fpr, naive)


@pytest.mark.parametrize("method", ["limma-trend", "voom", "deseq2"])
def test_null_genes_fpr(method):
    """limma-trend / voom / PyDESeq2 on pseudobulk vs a cell-level t-test, pooled over genes of 2 cell types x
    N cohorts."""
    warnings.simplefilter("ignore")
    ours, naive = [], []
    for seed in range(N_GENE_NULL):
        adata = simulate_cohort(16, 500, n_genes=500, null=True, random_state=20_000 + seed)
        sub = adata[adata.obs["cell_type"].isin(["Macrophages", "Tumour cells"])].copy()
        table = _table(sub, features="genes", groupby="cell_type", method=method, **KW)
        ours.extend(table["pvalue"].dropna())
        for cell_type in ("Macrophages", "Tumour cells"):
            mask = (sub.obs["cell_type"] == cell_type).to_numpy()
            X = sub.X[mask].toarray()
            r = sub.obs["response"].astype(str).to_numpy()[mask]
            keep = X.sum(axis=0) > 0
            with np.errstate(all="ignore"):
                p = stats.ttest_ind(X[r == "resistor"][:, keep], X[r == "responder"][:, keep],
                                    equal_var=False).pvalue
            naive.extend(p[np.isfinite(p)])
    ours, naive = np.asarray(ours), np.asarray(naive)
    fpr, p_exceed = fpr_exceedance(ours)
    naive_fpr, _ = fpr_exceedance(naive)
    assert len(ours) >= 2000
    # genes of one cohort share size factors and dispersion trend: allow for that correlation
    assert fpr <= 0.065 and p_exceed > 1e-4, f"genes FPR ({method}) {fpr:.3f}"
    assert naive_fpr > 2 * ALPHA and naive_fpr > fpr + 0.05, (fpr, naive_fpr)


def _planted(adata) -> dict[tuple[str, str], str]:
    table = adata.uns["hcctme_sim"]["effects_table"]
    table = table[(table["kind"] == "state") & (table["direction_in_resistors"] != "none")]
    return {(s, STATE_PARENT[s]): d for s, d in zip(table["name"], table["direction_in_resistors"], strict=True)}


def test_planted_state_shifts_found_8v8():
    """Default planted effects, 8 vs 8 patients: each planted state shift is found with the right sign.

    Between-patient (Dirichlet) variation of the simulator limits per-shift power at 8 vs 8 to ~0.9
    (benchmarks/compare_power.py), so the test runs several cohorts: every shift must be found in
    most of them, >= 85% of all shifts found, and none ever called significant in the wrong direction.
    """
    warnings.simplefilter("ignore")
    hits: dict[tuple[str, str], list[bool]] = {}
    for seed in range(4):
        adata = simulate_cohort(16, 1000, n_genes=500, random_state=30_000 + seed)
        table = _table(adata, features="composition", groupby="state_true", parent_key="cell_type",
                              **KW).set_index(["feature", "group"])
        for key, direction in _planted(adata).items():
            row = table.loc[key]
            if row["padj"] < 0.1:
                assert row["direction"] == direction, (key, row["direction"], direction)
            hits.setdefault(key, []).append(bool(row["padj"] < 0.1 and row["direction"] == direction))
    assert len(hits) == 5
    for key, found in hits.items():
        assert sum(found) >= 3, (key, found)
    assert np.mean([h for found in hits.values() for h in found]) >= 0.85


def test_planted_gene_gain_found_8v8():
    """The planted SPP1 -> CD44 gain: CD44 up in resistors' fibroblasts, SPP1 up in macrophages."""
    warnings.simplefilter("ignore")
    adata = simulate_cohort(16, 400, n_genes=500, random_state=40_000)
    sub = adata[adata.obs["cell_type"].isin(["Fibroblasts", "Macrophages"])].copy()
    table = _table(sub, features="genes", groupby="cell_type", **KW)
    indexed = table.set_index(["feature", "group"])
    for key in (("CD44", "Fibroblasts"), ("SPP1", "Macrophages")):
        assert indexed.loc[key, "padj"] < 0.1 and indexed.loc[key, "direction"] == "up", indexed.loc[key]


def test_a_contrast_reads_the_same_whichever_of_its_levels_is_the_reference():
    """Sweep 55: with three levels, a feature whose reference level kept too few units was left out of the shared
    prior, so B vs A (reference A) and A vs B (reference B) differed in p by up to 0.099 (df 48 vs 11.8)."""
    rng = np.random.default_rng(0)
    rows = []
    for arm in "ABC":
        for k in range(3):
            for group in ("g1", "g2"):
                rows += [(f"{arm}{k}", arm, group)] * (2 if (group == "g2" and arm == "A" and k > 0) else 30)
    obs = pd.DataFrame(rows, columns=["sample", "arm", "group"], index=[f"c{i}" for i in range(len(rows))])
    adata = AnnData(X=np.zeros((len(obs), 1), dtype=np.float32), obs=obs)
    shift = obs["sample"].map({s: rng.normal(0, 0.3) for s in obs["sample"].unique()}).to_numpy()
    adata.obsm["hcctme_scores"] = pd.DataFrame(
        {f"sig{j}": shift * rng.uniform(0.5, 2) + rng.normal(0, 1, len(obs)) for j in range(8)}, index=obs.index)

    def contrast(reference: str, name: str) -> pd.DataFrame:
        out = hc.tl.compare(adata, condition_key="arm", sample_key="sample", reference=reference, groupby="group",
                            method="moderated", min_cells=10, copy=True).uns["hcctme_compare"]
        return out[(out["contrast"] == name) & (out["group"] == "g1")].set_index("feature").sort_index()

    ref_a, ref_b = contrast("A", "B vs A"), contrast("B", "A vs B")
    assert len(ref_a) == 8
    np.testing.assert_allclose(ref_a["effect"], -ref_b["effect"], atol=1e-12)
    np.testing.assert_allclose(ref_a["pvalue"], ref_b["pvalue"], rtol=1e-9)
    np.testing.assert_allclose(ref_a["df"], ref_b["df"], rtol=1e-9)


@pytest.mark.parametrize("method", ["welch", "paired_t", "mannwhitney", "wilcoxon"])
def test_the_t_tests_report_their_degrees_of_freedom(method):
    """df was NaN for every test but the linear models: Welch's t has its Welch-Satterthwaite df, the paired t
    pairs - 1; the rank tests have none."""
    from hcctme.tl import _stats

    rng = np.random.default_rng(4)
    units = [f"{c}{i}" for c in ("r", "o") for i in range(6)]
    design = pd.DataFrame({"condition": ["ref"] * 6 + ["other"] * 6, "block": [f"p{i}" for i in range(6)] * 2},
                          index=units)
    values = pd.DataFrame({"f": np.r_[rng.normal(0, 1, 6), rng.normal(1, 3, 6)]}, index=units)
    row = _stats.compare_samples(values, design, "ref", method=method).iloc[0]
    ref, other = values["f"].to_numpy()[:6], values["f"].to_numpy()[6:]
    if method == "welch":
        expected = stats.ttest_ind(other, ref, equal_var=False)
        assert row["df"] == pytest.approx(expected.df, rel=1e-12)
        assert row["pvalue"] == pytest.approx(expected.pvalue, rel=1e-12)
    elif method == "paired_t":
        assert row["df"] == 5
        assert row["pvalue"] == pytest.approx(stats.ttest_rel(other, ref).pvalue, rel=1e-12)
    else:
        assert np.isnan(row["df"])
