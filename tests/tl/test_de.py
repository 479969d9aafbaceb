"""Gene-level DE of pseudobulk counts (hcctme.tl._de): limma-trend and limma-voom against reference implementations.

* each step against an independent implementation: TMM factors against rnanorm (edgeR's algorithm),
  the batched weighted least squares against statsmodels WLS gene by gene, the empirical-Bayes
  moderated t (plain and with an abundance trend) against inmoose's port of limma;
* the whole method against PyDESeq2 on the same seeded NB counts (benchmarks/de_bench.py's simulator,
  which shares nothing with the library): log2 fold changes, p-value ranks and top genes agree, the
  planted genes are found;
* null cohorts (unequal library sizes, one arm at half the depth; unpaired, paired and with a
  covariate): limma-trend's false-positive rate at p < 0.05 over many small cohorts is <= 0.05 within
  noise, voom's within noise of its measured level (0.052-0.055 at these library sizes: its weights
  are estimated over the library sizes they correct for);
* through tl.compare: the table equals a direct run on the pseudobulk, the method is recorded.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats

import hcctme as hc
from benchmarks.de_bench import agreement, calls, fit_deseq2, fit_trend, fit_voom, simulate_counts
from hcctme.tl import _de, _stats

from ._compare_data import cohort, lognorm

KW = dict(condition_key="response", sample_key="patient", reference="responder")
ALPHA = 0.05
# voom's weights come from the same data they weigh: on this NB generator its FPR at p < 0.05 was 0.052-0.055
# (0.048-0.050 for the same fit without weights; README), so the bound is ALPHA plus that measured excess
VOOM_FPR_BOUND = 0.056


def _null_fpr(per_cohort: list[np.ndarray], minimum: int, bound: float = ALPHA) -> float:
    """Mean FPR at p < ALPHA over null cohorts, the cohort the replicate (genes of one cohort share the
    normalisation, the trend and the prior); fails when it exceeds ``bound`` beyond noise."""
    p = np.concatenate(per_cohort)
    assert np.isfinite(p).all() and len(p) >= minimum
    assert 0.4 < np.mean(p < 0.5) < 0.6  # spread over (0, 1), not piled up at 1
    rates = np.array([np.mean(c < ALPHA) for c in per_cohort])
    exceed = stats.ttest_1samp(rates, bound, alternative="greater").pvalue
    assert exceed > 0.01, f"FPR {rates.mean():.4f} +- {rates.std(ddof=1) / np.sqrt(len(rates)):.4f}"
    return float(rates.mean())


# --------------------------------------------------------------------------------------------------
# the steps against reference implementations
# --------------------------------------------------------------------------------------------------
def test_tmm_factors_equal_rnanorm():
    rnanorm = pytest.importorskip("rnanorm")
    counts, _, _ = simulate_counts(30, 3000, n_de=300, lfc=2.0, seed=4)  # composition differs between arms
    ours = _de.tmm_factors(counts.to_numpy(float))
    ref = np.asarray(rnanorm.TMM().fit(counts).get_norm_factors(counts), dtype=float)
    np.testing.assert_allclose(ours, ref, rtol=1e-12)
    assert np.ptp(ours) > 0.05  # the planted composition change moves the factors


def test_weighted_fit_equals_statsmodels_wls():
    import statsmodels.api as sm

    rng = np.random.default_rng(1)
    n, g = 20, 25
    condition = pd.Series(np.repeat(["A", "B"], n // 2))
    covariates = pd.DataFrame({"age": rng.normal(60, 8, n), "site": rng.choice(["x", "y", "z"], n)})
    X = _stats.design_matrix(condition, "A", ["B"], covariates=covariates).to_numpy(float)
    y = rng.normal(5, 1, (n, g))
    w = rng.uniform(0.2, 3.0, (n, g))
    beta, unscaled, s2, df = _de.weighted_fit(y, w, X, [1, 2])
    assert df == n - X.shape[1]
    for j in range(g):
        fit = sm.WLS(y[:, j], X, weights=w[:, j]).fit()
        np.testing.assert_allclose(beta[j], fit.params[[1, 2]], rtol=1e-9, atol=1e-12)
        np.testing.assert_allclose(unscaled[j], np.sqrt(np.diag(fit.normalized_cov_params))[[1, 2]], rtol=1e-9)
        np.testing.assert_allclose(s2[j], fit.scale, rtol=1e-9)


def test_ebayes_equals_limma_port():
    """Unweighted fit + eBayes against inmoose's limma (whose weighted lmFit ignores the weights in the SEs)."""
    limma = pytest.importorskip("inmoose.limma")
    counts, condition, _ = simulate_counts(16, 800, n_de=40, seed=2)
    y = np.log2(counts.to_numpy(float) + 0.5)
    X = _stats.design_matrix(condition, "A", ["B"]).to_numpy(float)
    beta, unscaled, s2, df = _de.weighted_fit(y, np.ones_like(y), X, [1])
    t, p, se, _ = _de.ebayes(beta, unscaled, s2, df)
    fit = limma.eBayes(limma.lmFit(pd.DataFrame(y.T), design=X))
    np.testing.assert_allclose(t[:, 0], np.asarray(fit.t)[:, 1], rtol=1e-8, atol=1e-12)
    np.testing.assert_allclose(p[:, 0], np.asarray(fit.p_value)[:, 1], rtol=1e-6)
    np.testing.assert_allclose(se[:, 0], np.asarray(fit.stdev_unscaled)[:, 1] * np.sqrt(fit.s2_post), rtol=1e-8)


def test_squeeze_var_trend_equals_limma_port():
    """limma squeezeVar with an abundance covariate (eBayes(trend=TRUE)) against inmoose's port."""
    limma = pytest.importorskip("inmoose.limma")
    rng = np.random.default_rng(3)
    for n, df in ((500, 8.0), (3000, 22.0)):
        covariate = rng.normal(3, 2, n)
        s2 = np.exp(0.4 * np.sin(covariate)) * rng.chisquare(df, n) / df
        post, total, d0 = _de.squeeze_var_trend(s2, df, covariate)
        ref = limma.squeezeVar(s2, np.full(n, df), covariate=covariate)
        np.testing.assert_allclose(post, np.asarray(ref["var_post"]), rtol=1e-10)
        np.testing.assert_allclose(d0, float(np.asarray(ref["df_prior"]).ravel()[0]), rtol=1e-10)
        np.testing.assert_allclose(total, min(df + d0, df * n), rtol=1e-12)


def test_log_cpm_is_edger_cpm():
    """edgeR cpm(log=TRUE, prior.count=2): the prior count scaled by library size / mean library size."""
    counts = np.array([[0.0, 10.0, 90.0], [5.0, 5.0, 390.0]])
    lib = counts.sum(axis=1)
    prior = 2.0 * lib / lib.mean()
    expected = np.log2((counts + prior[:, None]) / (lib + 2 * prior)[:, None] * 1e6)
    np.testing.assert_allclose(_de.log_cpm(counts, lib), expected, rtol=1e-14)
    assert _de.log_cpm(counts, lib)[0, 0] == pytest.approx(np.log2(0.8 / 101.6 * 1e6), rel=1e-14)  # prior 2 x 100/250


def _nb_counts(n: int, g: int, seed: int = 3) -> np.ndarray:
    rng = np.random.default_rng(seed)
    mean = rng.gamma(0.8, 60, g) + 1
    return rng.negative_binomial(5, 5 / (5 + mean[None] * np.exp(rng.normal(0, 0.3, n))[:, None])).astype(float)


def test_filter_by_expr_hat_values_do_not_depend_on_a_covariates_units():
    """Sweep 63: the hat values were X (X'X)^+ X', whose pinv truncated with a covariate of ~3e7 (each sample's
    UMIs): every hat value came out ~1/12, so the smallest group read as 11.4 samples and fewer genes were kept."""
    n = 12
    counts = _nb_counts(n, 500)
    umis = np.round(np.random.default_rng(4).normal(3e7, 6e6, n))
    base = np.column_stack([np.ones(n), np.repeat([0.0, 1.0], n // 2)])
    keep = _de.filter_by_expr(counts, np.column_stack([base, umis]))
    np.testing.assert_array_equal(keep, _de.filter_by_expr(counts, np.column_stack([base, umis / 1e6])))
    # edgeR: the smallest group is 1 / the largest hat value, the projection on X's columns (an SVD's here)
    u = np.linalg.svd(np.column_stack([base, (umis - umis.mean()) / umis.std()]), full_matrices=False)[0]
    min_samples = 1 / np.max(np.sum(u**2, axis=1))
    lib = counts.sum(axis=1)
    often = ((counts / lib[:, None] * 1e6 >= 10 / np.median(lib) * 1e6).sum(axis=0) >= min_samples - 1e-14)
    np.testing.assert_array_equal(keep, often & (counts.sum(axis=0) >= 15))


def test_weighted_fit_refuses_a_numerically_singular_design():
    """Sweep 63: with a covariate equal to the condition up to 1e-9, the inverse of X'X held a negative variance
    that was clamped to 0 (every gene significant), or np.linalg.inv raised LinAlgError; now a ValueError says why."""
    condition = np.repeat([0.0, 1.0], 4)
    for seed, noise in ((3, 1e-10), (0, 1e-9)):  # inv returns a negative variance / raises
        rng = np.random.default_rng(seed)
        X = np.column_stack([np.ones(8), condition, condition * (1 + noise * rng.normal(size=8))])
        y = rng.normal(5, 1, (8, 30))
        with pytest.raises(ValueError, match=r"numerically singular.*collinear with the condition"):
            _de.weighted_fit(y, np.ones_like(y), X, [1])


def test_squeeze_var_trend_of_two_genes_is_limmas_without_the_covariate():
    """Sweep 63: below 3 genes (or one distinct AveExpr) limma's fitFDist drops the covariate and, with no spread
    left for a prior df, takes the mean variance as the prior; the trend's exp(mean adjusted log s2) was 1.78x it."""
    post, total, d0 = _de.squeeze_var_trend(np.array([0.030, 0.034]), 2.0, np.array([5.1, 7.3]))
    assert np.isinf(d0)
    np.testing.assert_allclose(post, [0.032, 0.032], rtol=1e-14)
    np.testing.assert_array_equal(total, [4.0, 4.0])  # the pooled residual df
    post, _, d0 = _de.squeeze_var_trend(np.array([0.030, 0.034, 0.035]), 2.0, np.full(3, 6.0))
    assert np.isinf(d0)
    np.testing.assert_allclose(post, np.full(3, 0.033), rtol=1e-14)


def test_deseq2_standardises_a_numeric_covariate():
    """Sweep 63: a covariate such as the year of diagnosis went into PyDESeq2 as is and its fit raised
    LinAlgError("Singular matrix"); standardised, the year and the year - 2016 give one table."""
    n = 12
    counts = pd.DataFrame(_nb_counts(n, 60), index=[f"s{i}" for i in range(n)]).rename(columns=lambda j: f"g{j}")
    year = np.array([2012, 2015, 2019, 2021, 2013, 2017, 2014, 2020, 2016, 2018, 2012, 2019], dtype=float)
    tables = []
    for x in (year, year - 2016):
        design = pd.DataFrame({"condition": np.repeat(["A", "B"], n // 2), "covariate:year": x}, index=counts.index)
        tables.append(_de.run_deseq2(counts, design, "A", ["B"])[0]["B"])
    for column in ("log2FoldChange", "pvalue"):
        np.testing.assert_allclose(tables[0][column], tables[1][column], rtol=1e-8, atol=1e-12)


# --------------------------------------------------------------------------------------------------
# limma-trend and voom against PyDESeq2, power and the null
# --------------------------------------------------------------------------------------------------
# measured over seeds 0-2 (12 vs 12 samples x 2,000 genes, 100 planted at |log2FC| = 1): Spearman of the log2FC
# and of the p-values with PyDESeq2's, top-100 overlap, power (padj < 0.05; planted genes left out by the
# expression filter count as missed): limma-trend 0.953-0.962 / 0.884-0.901 / 0.89-0.90, power 0.47-0.51;
# voom 0.943-0.952 / 0.869-0.879 / 0.89-0.91, power 0.46-0.51; PyDESeq2 power 0.56-0.62
AGREEMENT = {"limma-trend": (fit_trend, 0.94, 0.87, 0.85), "voom": (fit_voom, 0.92, 0.83, 0.85)}


@pytest.mark.parametrize("seed", [0, 1])
@pytest.mark.parametrize("method", list(AGREEMENT))
def test_agrees_with_pydeseq2_and_finds_planted_genes(method, seed):
    """12 vs 12 samples x 2,000 genes: agreement with PyDESeq2 and power at the measured levels, no sign errors."""
    fit, lfc_min, p_min, top_min = AGREEMENT[method]
    counts, condition, planted = simulate_counts(24, 2000, n_de=100, seed=seed)
    ours, deseq = fit(counts, condition), fit_deseq2(counts, condition)
    agree = agreement(ours, deseq)
    assert agree["lfc_spearman"] > lfc_min and agree["p_spearman"] > p_min and agree["top_overlap"] >= top_min, agree
    result = ours
    ours, theirs = calls(result, planted), calls(deseq, planted)
    assert ours["power"] >= 0.4 and ours["power"] >= 0.75 * theirs["power"], (ours, theirs)
    tested = planted[np.isin(planted, result.index)]
    found = result.loc[tested][_stats.bh(result["pvalue"].to_numpy())[result.index.get_indexer(tested)] < ALPHA]
    true_sign = np.sign(np.log(counts.loc[condition == "B", found.index].mean() + 1)
                        - np.log(counts.loc[condition == "A", found.index].mean() + 1))
    assert (np.sign(found["log2FoldChange"]) == true_sign).all()


def test_trend_null_fpr_spread_libraries_and_unequal_depth():
    """60 null cohorts of 6 vs 6 samples x 1,000 genes, library sizes spread 1.0 on the log scale (a 50-fold
    range) and the second arm at half the depth: limma-trend's FPR at p < 0.05 is <= 0.05 within noise
    (measured 0.046; voom on the same cohorts runs near 0.06, README)."""
    pvalues = []
    for seed in range(60):
        counts, condition, _ = simulate_counts(12, 1000, n_de=0, lib_sd=1.0, depth_ratio=0.5, seed=100 + seed)
        pvalues.append(fit_trend(counts, condition)["pvalue"].to_numpy())
    _null_fpr(pvalues, minimum=20_000)


def test_voom_null_fpr_unequal_depth():
    """60 null cohorts of 6 vs 6 samples x 1,000 genes, library sizes spread 0.5 on the log scale and the
    second arm at half the depth: FPR at p < 0.05 within noise of VOOM_FPR_BOUND."""
    pvalues = []
    for seed in range(60):
        counts, condition, _ = simulate_counts(12, 1000, n_de=0, lib_sd=0.5, depth_ratio=0.5, seed=100 + seed)
        pvalues.append(fit_voom(counts, condition)["pvalue"].to_numpy())
    _null_fpr(pvalues, minimum=30_000, bound=VOOM_FPR_BOUND)


@pytest.mark.parametrize("method", ["limma-trend", "voom"])
def test_null_fpr_paired_and_covariate(method):
    """Paired (patient blocks, each patient's two samples sharing a patient effect) and covariate-adjusted
    (unpaired samples, a random covariate) designs on 40 null cohorts each."""
    run = _de.run_trend if method == "limma-trend" else _de.run_voom
    bound = ALPHA if method == "limma-trend" else VOOM_FPR_BOUND
    paired, adjusted = [], []
    for seed in range(40):
        rng = np.random.default_rng(200 + seed)
        counts, condition, _ = simulate_counts(12, 500, n_de=0, seed=200 + seed)
        age = pd.DataFrame({"age": rng.normal(60, 8, 12)}, index=counts.index)
        kept = counts.loc[:, counts.sum(axis=0) > 0]
        X = _stats.design_matrix(condition, "A", ["B"], covariates=age)
        adjusted.append(run(kept, X, ["B"])[0]["B"]["pvalue"].to_numpy())
        patient = pd.Series([f"p{i % 6}" for i in range(12)], index=counts.index)
        effect = np.exp(rng.normal(0, 0.4, (6, counts.shape[1])))[np.arange(12) % 6]
        counts = pd.DataFrame(rng.poisson(counts.to_numpy() * effect), index=counts.index, columns=counts.columns)
        counts = counts.loc[:, counts.sum(axis=0) > 0]
        X = _stats.design_matrix(condition, "A", ["B"], blocks=patient)
        paired.append(run(counts, X, ["B"])[0]["B"]["pvalue"].to_numpy())
    _null_fpr(paired, minimum=12_000, bound=bound)
    _null_fpr(adjusted, minimum=12_000, bound=bound)


# --------------------------------------------------------------------------------------------------
# through tl.compare
# --------------------------------------------------------------------------------------------------
@pytest.fixture
def adata():
    return cohort(n_per=4, cells=90, n_genes=40, seed=0, gene_fold=3.0)


@pytest.mark.parametrize("method", ["auto", "limma-trend", "voom"])
def test_compare_genes_limma_equal_to_direct(adata, method):
    """The default (auto) is limma-trend; the table equals a direct run on the pseudobulk counts."""
    out = hc.tl.compare(adata, features="genes", copy=True, method=method, **KW)
    table = out.uns["hcctme_compare"]
    name = "limma-trend" if method == "auto" else method
    assert (table["method"] == name).all()
    assert out.uns["hcctme_compare_params"]["params"]["method"] == name
    assert {"AveExpr", "lfcSE"} <= set(table.columns) and "baseMean" not in table.columns
    pdata = hc.tl.pseudobulk(adata, sample_key="patient")
    counts = pd.DataFrame(pdata.X, index=pdata.obs["patient"].astype(str), columns=pdata.var_names)
    condition = pdata.obs["response"].astype(str).set_axis(counts.index)
    X = _stats.design_matrix(condition, "responder", ["resistor"])
    run = _de.run_trend if name == "limma-trend" else _de.run_voom
    direct = run(counts.loc[:, counts.sum() > 0], X, ["resistor"])[0]["resistor"]
    got = table.set_index("feature").loc[direct.index]
    np.testing.assert_allclose(got["effect"], direct["log2FoldChange"], rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(got["statistic"], direct["stat"], rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(got["pvalue"], direct["pvalue"], rtol=1e-10)
    # the planted 3-fold genes come out on top, up
    top = table.head(4)
    assert set(top["feature"]) == {"G0", "G1", "G2", "G3"}
    assert (top["direction"] == "up").all() and (top["padj"] < 0.05).all()
    # the per-sample values kept for plotting are the log2-CPM the test saw
    values = out.uns["hcctme_compare_values"]
    assert set(values["feature"]) >= {"G0", "G1", "G2", "G3"}


def test_compare_limma_skips_a_group_without_expressed_genes(adata):
    """Cell type B keeps one count per cell in one gene: nothing passes filterByExpr, B is skipped and said so."""
    import scipy.sparse as sp

    counts = adata.layers["counts"].toarray()
    is_b = (adata.obs["cell_type"] == "B").to_numpy()
    counts[is_b] = 0
    counts[is_b, 0] = 1
    adata.layers["counts"] = sp.csr_matrix(counts)
    out = hc.tl.compare(adata, features="genes", groupby="cell_type", copy=True, **KW)
    assert set(out.uns["hcctme_compare"]["group"]) == {"A"}
    skipped = out.uns["hcctme_compare_params"]["skipped"]
    assert "B: fewer than 2 genes pass the expression filter (filterByExpr)" in skipped


def test_compare_genes_method_checks(adata, digest):
    before = digest(adata)
    with pytest.raises(ValueError, match="count data"):
        hc.tl.compare(adata, features="scores", method="voom", **KW)
    with pytest.raises(ValueError, match="voom"):
        hc.tl.compare(adata, features="genes", method="wls", **KW)
    ln = lognorm(adata)
    with pytest.raises(ValueError, match="raw integer counts"):
        hc.tl.compare(ln, features="genes", layer=None, method="voom", **KW)
    assert digest(adata) == before


# --------------------------------------------------------------------------------------------------
# the pipeline, the command line and the workflow pass the method on
# --------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("de_method", ["limma-trend", "voom", "deseq2"])
def test_pipeline_compare_genes_uses_de_method(adata, de_method):
    from hcctme import pipeline

    config = pipeline.PipelineConfig(sample_key="patient", condition_key="response", reference="responder",
                                     cell_type_key="cell_type", counts_layer="counts", de_method=de_method)
    table = pipeline.compare_one(adata, config, "genes")
    assert (table["method"] == de_method).all() and set(table["group"]) == {"A", "B"}
    assert adata.uns["hcctme_compare_genes_params"]["params"]["method"] == de_method


def test_pipeline_refuses_unknown_de_method(adata, digest):
    from hcctme import pipeline

    before = digest(adata)
    config = pipeline.PipelineConfig(sample_key="patient", condition_key="response", reference="responder",
                                     cell_type_key="cell_type", de_method="edger")
    with pytest.raises(ValueError, match="de_method"):
        config.validate(adata)
    assert digest(adata) == before


def test_cli_compare_genes_de_method(capsys, tmp_path, adata):
    from hcctme import cli

    src, out = tmp_path / "cohort.h5ad", tmp_path / "genes.tsv"
    adata.write_h5ad(src)
    for de_method in ("limma-trend", "voom", "deseq2"):
        assert cli.main(["compare", str(src), "--out", str(out), "--condition-key", "response", "--sample-key",
                         "patient", "--reference", "responder", "--features", "genes", "--de-method",
                         de_method]) == 0
        assert set(pd.read_csv(out, sep="\t")["method"]) == {de_method}
        out.unlink()
    capsys.readouterr()


def test_workflow_config_exposes_de_method():
    import yaml

    from hcctme.workflow import _steps, config_schema

    with open(config_schema()) as handle:
        schema = yaml.safe_load(handle)["properties"]["de_method"]
    assert schema["enum"] == ["limma-trend", "voom", "deseq2"]
    assert schema["default"] == _steps.DEFAULTS["de_method"] == "limma-trend"
    assert _steps._config({"de_method": "deseq2"}).de_method == "deseq2"
