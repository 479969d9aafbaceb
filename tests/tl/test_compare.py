"""tl.compare: per-sample aggregation, each test against a direct computation, storage, bad input."""

from __future__ import annotations

import itertools

import anndata as ad
import numpy as np
import pandas as pd
import pytest
from scipy import stats

import hcctme as hc
from hcctme import _validate
from hcctme.tl import _stats

from ._compare_data import cohort, lognorm

KW = dict(condition_key="response", sample_key="patient", reference="responder")
COLUMNS = ["feature", "group", "effect", "statistic", "pvalue", "padj", "n_reference", "n_other", "direction",
           "method"]


@pytest.fixture
def adata():
    return cohort(n_per=4, cells=90, n_genes=40, seed=0, state_shift=1.2, gene_fold=3.0, score_shift=0.1)


def run(adata, **kwargs):
    """tl.compare on a copy; the table it stored."""
    out = hc.tl.compare(adata, copy=True, **kwargs)
    return out.uns[kwargs.get("key_added", "hcctme_compare")]


def _sample_means(adata, column, mask=None):
    frame = adata.obsm["hcctme_scores"][[column]].assign(patient=adata.obs["patient"].astype(str).to_numpy())
    if mask is not None:
        frame = frame[mask]
    return frame.groupby("patient")[column].mean()


def _conditions(adata):
    return adata.obs.groupby("patient", observed=True)["response"].first().astype(str)


# --------------------------------------------------------------------------------------------------
# scores
# --------------------------------------------------------------------------------------------------
def test_scores_mannwhitney_on_sample_means(adata):
    table = run(adata, features="scores", method="mannwhitney", **KW)
    assert all(c in table.columns for c in COLUMNS)
    assert set(table["group"]) == {"all"}
    row = table.set_index("feature").loc["SIG_A"]
    means = _sample_means(adata, "SIG_A")
    cond = _conditions(adata)
    ref, oth = means[cond == "responder"], means[cond == "resistor"]
    res = stats.mannwhitneyu(oth, ref, alternative="two-sided")
    assert row["pvalue"] == pytest.approx(res.pvalue)
    assert row["statistic"] == pytest.approx(res.statistic)
    assert row["effect"] == pytest.approx(oth.mean() - ref.mean())
    assert row["n_reference"] == 4 and row["n_other"] == 4
    assert row["direction"] == ("up" if row["effect"] > 0 else "down")
    assert row["method"] == "mannwhitney"
    np.testing.assert_allclose(table["padj"], _stats.bh(table["pvalue"]))
    assert row["contrast"] == "resistor vs responder"


def test_scores_per_group_and_median(adata):
    table = run(adata, features="scores", groupby="cell_type", aggregate="median", method="welch", **KW)
    assert set(table["group"]) == {"A", "B"}
    assert len(table) == 4
    mask = (adata.obs["cell_type"] == "A").to_numpy()
    frame = adata.obsm["hcctme_scores"].loc[mask, ["SIG_B"]].assign(patient=adata.obs["patient"].astype(str)[mask])
    med = frame.groupby("patient")["SIG_B"].median()
    cond = _conditions(adata)
    row = table[(table["feature"] == "SIG_B") & (table["group"] == "A")].iloc[0]
    assert row["effect"] == pytest.approx(med[cond == "resistor"].mean() - med[cond == "responder"].mean())


def test_scores_when_obs_are_samples(adata):
    """sample_key=None: every obs is a sample; same result as aggregating the cells."""
    cell_level = run(adata, features="scores", method="welch", **KW)
    means = adata.obsm["hcctme_scores"].groupby(adata.obs["patient"].astype(str).to_numpy()).mean()
    import anndata as ad

    bulk = ad.AnnData(X=np.zeros((len(means), 1), dtype=np.float32),
                      obs=pd.DataFrame({"response": _conditions(adata)[means.index].to_numpy()}, index=means.index))
    bulk.obsm["hcctme_scores"] = means
    sample_level = run(bulk, condition_key="response", sample_key=None, reference="responder", method="welch")
    pd.testing.assert_frame_equal(cell_level, sample_level)


def test_signatures_subset_and_missing_scores(adata, digest):
    table = run(adata, features="scores", signatures=["SIG_B"], **KW)
    assert list(table["feature"]) == ["SIG_B"]
    before = digest(adata)
    with pytest.raises(KeyError, match="NOPE"):
        hc.tl.compare(adata, features="scores", signatures=["NOPE"], **KW)
    with pytest.raises(KeyError, match=r"tl\.score"):
        hc.tl.compare(adata, features="scores", scores_key="other_scores", **KW)
    assert digest(adata) == before


# --------------------------------------------------------------------------------------------------
# composition
# --------------------------------------------------------------------------------------------------
def _state_counts(adata):
    a = adata.obs[adata.obs["cell_type"] == "A"]
    return pd.crosstab(a["patient"].astype(str), a["state_true"].astype(str))[["s1", "s2", "s3"]]


def test_composition_asin_within_parent(adata):
    table = run(adata, features="composition", groupby="state_true", parent_key="cell_type", method="mannwhitney",
                key_added="cmp", **KW)
    # B has a single level ("unassigned"): skipped and reported
    assert set(table["group"]) == {"A"}
    assert set(table["feature"]) == {"s1", "s2", "s3"}
    counts = _state_counts(adata)
    props = counts.div(counts.sum(axis=1), axis=0)
    y = np.arcsin(np.sqrt(props))
    cond = _conditions(adata)[counts.index]
    row = table.set_index("feature").loc["s1"]
    ref, oth = y.loc[cond == "responder", "s1"], y.loc[cond == "resistor", "s1"]
    assert row["effect"] == pytest.approx(oth.mean() - ref.mean())
    assert row["pvalue"] == pytest.approx(stats.mannwhitneyu(oth, ref).pvalue)
    assert row["prop_reference"] == pytest.approx(props.loc[cond == "responder", "s1"].mean())
    assert row["prop_diff"] == pytest.approx(row["prop_other"] - row["prop_reference"])
    assert row["direction"] == "up"  # planted: s1 expanded in resistors


def test_composition_default_is_moderated_and_finds_the_planted_shift(adata):
    out = hc.tl.compare(adata, features="composition", groupby="state_true", parent_key="cell_type", copy=True, **KW)
    table = out.uns["hcctme_compare"].set_index("feature")
    assert (table["method"] == "moderated").all()
    assert table.loc["s1", "direction"] == "up" and table.loc["s1", "padj"] < 0.05
    assert any("A" not in s and "single level" in s for s in out.uns["hcctme_compare_params"]["skipped"])
    values = out.uns["hcctme_compare_values"]
    assert {"sample", "group", "feature", "value", "condition", "proportion", "n_cells"} <= set(values.columns)
    np.testing.assert_allclose(values["value"], np.arcsin(np.sqrt(values["proportion"])))


def test_composition_clr_multiplicative_replacement(adata):
    table = run(adata, features="composition", groupby="state_true", parent_key="cell_type", transform="clr",
                method="mannwhitney", **KW)
    counts = _state_counts(adata)
    props = counts.div(counts.sum(axis=1), axis=0).to_numpy()
    delta = 0.5 / np.median(counts.sum(axis=1))
    repl = np.where(props == 0, delta, props * (1 - (props == 0).sum(axis=1, keepdims=True) * delta))
    clr = pd.DataFrame(np.log(repl) - np.log(repl).mean(axis=1, keepdims=True), index=counts.index,
                       columns=counts.columns)
    cond = _conditions(adata)[counts.index]
    row = table.set_index("feature").loc["s2"]
    assert row["effect"] == pytest.approx(clr.loc[cond == "resistor", "s2"].mean() - clr.loc[cond == "responder",
                                                                                             "s2"].mean())


@pytest.mark.parametrize("transform", ["asin", "logit", "clr"])
def test_identical_proportions_give_identical_values_at_any_depth(transform):
    """The review's example: (5, 5, 0, 2) and (500, 500, 0, 200) cells are the same composition."""
    rows = {"S1": (5, 5, 0, 2), "S2": (500, 500, 0, 200), "S3": (30, 10, 4, 6), "S4": (20, 25, 1, 2)}
    cells = []
    for sample, counts in rows.items():
        for state, n in zip(("TAM1", "TAM2", "empty", "MDSC"), counts, strict=True):
            cells += [(sample, "r" if sample in ("S1", "S3") else "n", state)] * n
    obs = pd.DataFrame(cells, columns=["sample", "response", "state"])
    obs.index = obs.index.astype(str)
    import anndata as ad

    adata = ad.AnnData(np.zeros((len(obs), 1), dtype=np.float32), obs=obs)
    out = hc.tl.compare(adata, condition_key="response", sample_key="sample", reference="r", features="composition",
                        groupby="state", transform=transform, min_cells=1, copy=True)
    values = out.uns["hcctme_compare_values"].pivot(index="sample", columns="feature", values="value")
    np.testing.assert_allclose(values.loc["S1"], values.loc["S2"], rtol=1e-12)
    direct = _stats.transform_proportions(np.array([rows["S1"], rows["S2"]]), transform, 0.01)[0]
    np.testing.assert_allclose(direct[0], direct[1], rtol=1e-12)
    assert np.isfinite(values.to_numpy()).all()


def test_composition_without_parent(adata):
    table = run(adata, features="composition", groupby="cell_type", transform="clr", method="ols", **KW)
    assert set(table["group"]) == {"all"}
    assert set(table["feature"]) == {"A", "B"}
    # two parts: CLR effects are opposite
    eff = table.set_index("feature")["effect"]
    assert eff["A"] == pytest.approx(-eff["B"])


def test_composition_min_cells_drops_samples(adata):
    n = adata.obs[adata.obs["cell_type"] == "A"].groupby("patient", observed=True).size()
    threshold = int(np.sort(n.to_numpy())[1]) + 1  # drops the two smallest samples
    hc.tl.compare(adata, features="composition", groupby="state_true", parent_key="cell_type", min_cells=threshold,
                  **KW)
    table = adata.uns["hcctme_compare"]
    assert (table["n_reference"] + table["n_other"] == int((n >= threshold).sum())).all()
    dropped = adata.uns["hcctme_compare_params"]["dropped"]
    assert len(dropped[dropped["group"] == "A"]) == int((n < threshold).sum())


# --------------------------------------------------------------------------------------------------
# genes
# --------------------------------------------------------------------------------------------------
def test_genes_equal_direct_pydeseq2(adata):
    from pydeseq2.dds import DeseqDataSet
    from pydeseq2.default_inference import DefaultInference
    from pydeseq2.ds import DeseqStats

    table = run(adata, features="genes", method="deseq2", **KW)
    pdata = hc.tl.pseudobulk(adata, sample_key="patient")
    counts = pd.DataFrame(pdata.X.astype(int), index=pdata.obs_names, columns=pdata.var_names)
    meta = pd.DataFrame({"condition": pdata.obs["response"].astype(str).to_numpy()}, index=pdata.obs_names)
    inf = DefaultInference(n_cpus=1)
    dds = DeseqDataSet(counts=counts, metadata=meta, design="~condition", inference=inf, quiet=True)
    dds.deseq2()
    ds = DeseqStats(dds, contrast=["condition", "resistor", "responder"], inference=inf, quiet=True)
    ds.summary()
    ref = ds.results_df.dropna(subset=["pvalue"])
    got = table.set_index("feature").loc[ref.index]
    # equal up to the IRLS convergence tolerance (the direct run codes the levels alphabetically,
    # tl.compare with the reference as baseline, so the optimiser takes slightly different paths)
    np.testing.assert_allclose(got["effect"], ref["log2FoldChange"], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(got["statistic"], ref["stat"], rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(got["pvalue"], ref["pvalue"], rtol=1e-4, atol=1e-8)
    np.testing.assert_allclose(got["lfcSE"], ref["lfcSE"], rtol=1e-5)
    np.testing.assert_allclose(got["baseMean"], ref["baseMean"], rtol=1e-10)
    assert (table["method"] == "deseq2").all()
    assert table["df"].isna().all()  # every table has df (DESeq2's Wald test has none)
    # the planted 3-fold genes come out on top, up
    top = table.head(4)
    assert set(top["feature"]) == {"G0", "G1", "G2", "G3"}
    assert (top["direction"] == "up").all() and (top["padj"] < 0.1).all()


def test_genes_from_pseudobulk_anndata_equal_cell_level(adata):
    cell_level = run(adata, features="genes", groupby="cell_type", **KW)
    pdata = hc.tl.pseudobulk(adata, sample_key="patient", groupby="cell_type")
    pdata.obs_names = pdata.obs["patient"].astype(str) + "_" + pdata.obs["cell_type"].astype(str)
    table = run(pdata, condition_key="response", sample_key=None, reference="responder",
                          features="genes", groupby="cell_type")
    merged = cell_level.merge(table, on=["feature", "group"], suffixes=("", "_pb"))
    assert len(merged) == len(cell_level)
    np.testing.assert_allclose(merged["pvalue"], merged["pvalue_pb"], rtol=1e-6)
    # sweep 61: without groupby the profiles of one patient were tested as independent samples, silently
    with pytest.raises(ValueError, match=r"pseudobulk by sample x 'cell_type'.*Pass groupby='cell_type'"):
        run(pdata, condition_key="response", sample_key=None, reference="responder", features="genes")
    scored = pdata.copy()  # review 61: per-profile scores tested without groupby pooled the cell types too
    scored.obsm["hcctme_scores"] = pd.DataFrame({"S": np.arange(scored.n_obs, dtype=float)}, index=scored.obs_names)
    with pytest.raises(ValueError, match=r"Pass groupby='cell_type'"):
        run(scored, condition_key="response", sample_key=None, reference="responder", features="scores")
    one_type = pdata[pdata.obs["cell_type"] == pdata.obs["cell_type"].iloc[0]].copy()
    assert len(run(one_type, condition_key="response", sample_key=None, reference="responder", features="genes"))


def test_a_panel_no_gene_of_which_passes_the_filter_is_too_few_genes(adata):
    """Sweep 61: it raised TooFewCellsError, whose fix (lower min_cells) changes nothing."""
    panel = adata[:, :3].copy()
    counts = np.zeros(panel.shape, dtype=np.float32)  # a low-count panel: one count per gene and sample
    first = pd.Series(np.arange(panel.n_obs)).groupby(panel.obs["patient"].to_numpy(), observed=True).first()
    counts[first.to_numpy(), :] = 1
    panel.layers["counts"] = counts
    for min_cells in (10, 1):
        with pytest.raises(hc.tl.TooFewGenesError, match="fewer than 2 genes pass the expression filter"):
            run(panel, features="genes", min_cells=min_cells, **KW)


def test_genes_refuse_lognormalised(adata, digest):
    ln = lognorm(adata)
    before = digest(ln)
    with pytest.raises(ValueError, match="raw integer counts"):
        hc.tl.compare(ln, features="genes", layer=None, **KW)
    assert digest(ln) == before


@pytest.mark.parametrize("method", ["limma-trend", "voom", "deseq2"])
def test_genes_paired_and_covariates_run(adata, method):
    a = adata  # obs['pair'] pairs P00 with P04, P01 with P05, ...
    table = run(a, features="genes", pair_key="pair", method=method, **KW)
    assert (table["n_reference"] == 4).all() and (table["method"] == method).all()
    table = run(adata, features="genes", covariates="age", method=method, **KW)
    assert table["pvalue"].notna().any()


# --------------------------------------------------------------------------------------------------
# covariates, pairs, several levels
# --------------------------------------------------------------------------------------------------
def test_covariates_ols_equals_statsmodels(adata):
    import statsmodels.formula.api as smf

    table = run(adata, features="scores", covariates=["age"], method="ols", **KW)
    assert (table["method"] == "ols").all()
    means = _sample_means(adata, "SIG_A")
    frame = pd.DataFrame({
        "y": means, "cond": _conditions(adata)[means.index],
        "age": adata.obs.groupby("patient", observed=True)["age"].first()[means.index],
    })
    fit = smf.ols("y ~ C(cond, Treatment('responder')) + age", data=frame).fit()
    name = "C(cond, Treatment('responder'))[T.resistor]"
    row = table.set_index("feature").loc["SIG_A"]
    assert row["effect"] == pytest.approx(fit.params[name])
    assert row["statistic"] == pytest.approx(fit.tvalues[name])
    assert row["pvalue"] == pytest.approx(fit.pvalues[name])


def test_paired_wilcoxon(adata):
    a = adata  # obs['pair'] pairs P00 with P04, P01 with P05, ...
    table = run(a, features="scores", pair_key="pair", method="wilcoxon", **KW)
    assert (table["method"] == "wilcoxon").all()
    means = _sample_means(a, "SIG_A")
    pair = a.obs.groupby("patient", observed=True)["pair"].first()
    cond = _conditions(a)
    pre = pd.Series(means[cond == "responder"].to_numpy(), index=pair[cond == "responder"].to_numpy())
    post = pd.Series(means[cond == "resistor"].to_numpy(), index=pair[cond == "resistor"].to_numpy())
    d = post[pre.index] - pre
    row = table.set_index("feature").loc["SIG_A"]
    assert row["pvalue"] == pytest.approx(stats.wilcoxon(d).pvalue)
    assert row["effect"] == pytest.approx(d.mean())
    assert row["n_reference"] == row["n_other"] == 4
    t = run(a, features="scores", pair_key="pair", method="paired_t", **KW)
    assert t.set_index("feature").loc["SIG_A", "pvalue"] == pytest.approx(stats.ttest_rel(post[pre.index], pre).pvalue)


def test_paired_ols_with_covariates(adata):
    a = adata.copy()
    a.obs["batch"] = np.where(a.obs["pair"].isin(["pair0", "pair1"]), "b1", "b2")
    a.obs["dose"] = a.obs["age"] / 10  # sample-level numeric covariate, varies within pairs
    table = run(a, features="scores", pair_key="pair", covariates="dose", **KW)
    assert (table["method"] == "wls").all()
    assert (table["n_reference"] == 4).all() and table["pvalue"].between(0, 1).all()


def test_more_than_two_levels_each_vs_reference():
    a = cohort(n_per=3, cells=60, n_genes=20, seed=3, levels=("responder", "resistor", "stable"))
    table = run(a, features="scores", **KW)
    assert set(table["contrast"]) == {"resistor vs responder", "stable vs responder"}
    assert len(table) == 4
    np.testing.assert_allclose(table["padj"], _stats.bh(table["pvalue"]))
    ols = run(a, features="composition", groupby="state_true", parent_key="cell_type",
                        covariates="age", **KW)
    assert set(ols["contrast"]) == {"resistor vs responder", "stable vs responder"}
    genes = run(a, features="genes", **KW)
    assert set(genes["contrast"]) == {"resistor vs responder", "stable vs responder"}


def test_welch_method(adata):
    table = run(adata, features="scores", method="welch", **KW)
    means = _sample_means(adata, "SIG_A")
    cond = _conditions(adata)
    p = stats.ttest_ind(means[cond == "resistor"], means[cond == "responder"], equal_var=False).pvalue
    assert table.set_index("feature").loc["SIG_A", "pvalue"] == pytest.approx(p)


# --------------------------------------------------------------------------------------------------
# storage
# --------------------------------------------------------------------------------------------------
def test_storage(adata, digest, tmp_path):
    before = digest(adata)
    out = hc.tl.compare(adata, features="scores", copy=True, **KW)
    assert digest(adata) == before and isinstance(out, ad.AnnData)
    assert hc.tl.compare(adata, features="scores", key_added="cmp", **KW) is None
    pd.testing.assert_frame_equal(adata.uns["cmp"], out.uns["hcctme_compare"])
    assert isinstance(adata.uns["cmp_values"], pd.DataFrame)
    params = adata.uns["cmp_params"]
    assert params["tool"] == "hcctme.tl.compare" and params["params"]["method"] == "mannwhitney"
    assert params["library_version"] == _validate.library_version()
    assert params["params"]["features"] == "scores" and not params["paired"]
    # the obs, X and obsm are untouched; uns is writable to h5ad
    adata.write_h5ad(tmp_path / "a.h5ad")


# --------------------------------------------------------------------------------------------------
# bad input: a clear error, the AnnData untouched
# --------------------------------------------------------------------------------------------------
def _bad_cases(adata):
    single = adata.copy()
    single.obs["response"] = "responder"
    one_sample = adata.copy()
    one_sample.obs["response"] = np.where(adata.obs["patient"] == "P00", "resistor", "responder")
    varying = adata.copy()
    varying.obs["response"] = np.where(np.arange(adata.n_obs) % 2, "resistor", "responder")
    var_cov = adata.copy()
    var_cov.obs["cov"] = np.arange(adata.n_obs, dtype=float)
    conf = adata.copy()
    conf.obs["cov"] = adata.obs["response"].astype(str)
    dup_pair = adata.copy()
    dup_pair.obs["pair"] = "same"
    two_patients = adata.copy()
    two_patients.obs["donor"] = np.where(np.arange(adata.n_obs) % 2, "d1", "d2")
    lonely = adata.copy()
    lonely.obs["pair2"] = np.where(adata.obs["patient"] == "P04", "solo", adata.obs["pair"].astype(str))
    mixed = adata.copy()  # P00/P04 pre/on one patient, the others one sample each
    mixed.obs["donor"] = np.where(adata.obs["patient"].isin(["P00", "P04"]), "D0", adata.obs["patient"].astype(str))
    cov = adata.copy()
    cov.obs["site"] = "liver"
    cov.obs["dose"] = np.where(adata.obs["response"] == "resistor", 3.0, 1.0)
    pair_cov = adata.copy()  # a pair-level covariate: the pair blocks absorb it
    pair_cov.obs["sex"] = np.where(adata.obs["pair"].isin(["pair0", "pair1"]), "F", "M")
    infinite = adata.copy()
    infinite.obsm["hcctme_scores"] = adata.obsm["hcctme_scores"].copy()
    infinite.obsm["hcctme_scores"].iloc[0, 0] = np.inf
    return [
        (pair_cov, dict(KW, pair_key="pair", covariates="sex"), ValueError,
         "obs\\['sex'\\] is constant within each pair/patient.*drop 'sex' from covariates"),
        (infinite, KW, ValueError, "hold 1 infinite value"),
        (adata, dict(KW, condition_key="nope"), KeyError, "nope"),
        (adata, dict(KW, sample_key="nope"), KeyError, "nope"),
        (single, KW, ValueError, "single level"),
        (adata, dict(KW, reference="stable"), ValueError, "not a level"),
        (one_sample, KW, ValueError, "one sample per group"),
        (varying, KW, ValueError, "varies within samples"),
        (adata, dict(KW, min_cells=10_000), hc.tl.TooFewCellsError, "too few"),
        (adata, dict(KW, features="genes", min_cells=10_000), hc.tl.TooFewCellsError,
         "too few cells.*every sample profile: fewer than 10000 cells"),
        (adata, dict(KW, features="genes", groupby="cell_type", min_cells=10_000), hc.tl.TooFewCellsError,
         "no group has >= 2 samples.*every sample x group profile"),
        (adata, dict(KW, features="composition", groupby="state_true", min_cells=10_000), hc.tl.TooFewCellsError,
         "too few"),
        (adata, dict(KW, features="composition"), ValueError, "groupby"),
        (adata, dict(KW, features="composition", groupby="state_true", sample_key=None), ValueError, "sample_key"),
        (adata, dict(KW, features="composition", groupby="state_true", parent_key="state_true"), ValueError,
         "same column"),
        (adata, dict(KW, features="cells"), ValueError, "features"),
        (adata, dict(KW, method="magic"), ValueError, "method"),
        (adata, dict(KW, method="mannwhitney", covariates="age"), ValueError, "covariates"),
        (adata, dict(KW, method="mannwhitney", pair_key="pair"), ValueError, "pair"),
        (adata, dict(KW, method="wilcoxon"), ValueError, "pair_key"),
        (adata, dict(KW, features="genes", method="mannwhitney"), ValueError, "PyDESeq2"),
        (adata, dict(KW, method="deseq2"), ValueError, "count"),
        (adata, dict(KW, groupby="response"), ValueError, "condition_key"),
        (adata, dict(KW, covariates="nope"), KeyError, "nope"),
        (var_cov, dict(KW, covariates="cov"), ValueError, "varies within samples"),
        (conf, dict(KW, covariates="cov"), ValueError, "rank deficient"),
        (conf, dict(KW, features="genes", covariates="cov"), ValueError, "rank deficient"),
        (dup_pair, dict(KW, pair_key="pair"), ValueError, "more than one sample"),
        (two_patients, dict(KW, patient_key="donor"), ValueError, "more than one patient of obs\\['donor'\\]"),
        (lonely, dict(KW, pair_key="pair2"), ValueError, "pair with one member.*obs\\['pair2'\\]"),
        (mixed, dict(KW, patient_key="donor"), ValueError, "pair with one member.*obs\\['donor'\\]"),
        (adata, dict(KW, patient_key="pair", pair_key="pair"), ValueError, "not both"),
        (cov, dict(KW, covariates="site"), ValueError, "obs\\['site'\\] is constant"),
        (cov, dict(KW, covariates=["age", "dose"]), ValueError, "rank deficient.*obs\\['dose'\\]"),
        (cov, dict(KW, features="genes", covariates="dose"), ValueError, "obs\\['dose'\\]"),
        (adata, dict(KW, transform="sqrt"), ValueError, "transform"),
        (adata, dict(KW, min_cells=0), ValueError, "min_cells"),
        (adata, dict(KW, pseudocount=0), ValueError, "pseudocount"),
        (adata, dict(KW, key_added=""), TypeError, "key_added"),
    ]


def test_tied_mann_whitney_p_is_the_exact_permutation_p():
    """Sweep 54: scipy's normal approximation with ties gave 0.025 and 0.013 for 4 vs 4, below the exact 2/70."""
    for x, y in (([0, 0, 0, 0.1], [0.2, 0.2, 0.3, 0.3]), ([0.0] * 4, [1.0] * 4), ([0, 1, 1, 2], [1, 2, 2, 3])):
        x, y = np.asarray(x, float), np.asarray(y, float)
        ranks = stats.rankdata(np.concatenate([x, y]))
        sums = np.array([ranks[list(c)].sum() for c in itertools.combinations(range(8), 4)])
        exact = np.mean(np.abs(sums - 18) >= abs(ranks[:4].sum() - 18) - 1e-9)
        assert _stats.mannwhitney(x, y)[1] == pytest.approx(exact)
        assert _stats.mannwhitney(x, y)[1] >= 2 / 70 - 1e-12
    untied = (np.array([1.0, 2, 3, 4]), np.array([5.0, 6, 7, 8]))
    assert _stats.mannwhitney(*untied)[1] == pytest.approx(stats.mannwhitneyu(*untied).pvalue)


def test_logit_and_clr_weights_do_not_depend_on_the_units_own_proportion():
    """Sweep 54: each unit's own (zero-replaced) proportion set its weight, so a unit without a rare part got
    almost none and the weighted tests rejected 9-15 % of true nulls (Lu 2022, random halves)."""
    counts = np.array([[0, 50, 50], [10, 45, 45], [3, 60, 37]], dtype=float)
    for transform in ("logit", "clr"):
        _, var = _stats.transform_proportions(counts, transform, 0.01)
        assert var[0, 0] == pytest.approx(var[1, 0])  # same cells: same variance, whatever the proportion
        assert var[2, 0] == pytest.approx(var[0, 0])


def test_bad_input(adata, digest):
    for data, kwargs, exc, message in _bad_cases(adata):
        before = digest(data)
        with pytest.raises(exc, match=message):
            hc.tl.compare(data, **kwargs)
        assert digest(data) == before, kwargs


def test_not_anndata():
    with pytest.raises(TypeError, match="AnnData"):
        hc.tl.compare(pd.DataFrame(), **KW)


def test_sample_key_none_needs_unique_obs(adata):
    means = adata.obsm["hcctme_scores"].iloc[:4]
    import anndata as ad

    bulk = ad.AnnData(X=np.zeros((4, 1), dtype=np.float32),
                      obs=pd.DataFrame({"response": ["a", "a", "b", "b"]}, index=["s", "s", "t", "u"]))
    bulk.obsm["hcctme_scores"] = means.set_axis(bulk.obs_names)
    with pytest.raises(ValueError, match="unique"):
        hc.tl.compare(bulk, condition_key="response", sample_key=None, reference="a")


# --------------------------------------------------------------------------------------------------
# patients above samples, paired designs, degenerate inputs, the empirical-Bayes prior
# --------------------------------------------------------------------------------------------------
def _regions(adata, n_regions=3):
    """Each patient's cells split into ``n_regions`` samples (multi-region biopsies)."""
    out = adata.copy()
    region = np.arange(out.n_obs) % n_regions
    out.obs["biopsy"] = out.obs["patient"].astype(str) + "_r" + region.astype(str)
    return out


@pytest.mark.parametrize("features, extra", [("scores", {}),
                                             ("composition", dict(groupby="state_true", parent_key="cell_type"))])
def test_patient_key_pools_the_samples_of_a_patient(adata, features, extra):
    multi = _regions(adata)
    pooled = run(multi, condition_key="response", sample_key="biopsy", reference="responder", patient_key="patient",
                 features=features, **extra)
    per_patient = run(adata, features=features, **KW, **extra)
    pd.testing.assert_frame_equal(pooled, per_patient)
    naive = run(multi, condition_key="response", sample_key="biopsy", reference="responder", features=features,
                **extra)
    assert (naive["n_reference"] == 12).all() and (pooled["n_reference"] == 4).all()


def test_patient_key_pools_genes(adata):
    multi = _regions(adata)
    pooled = run(multi, condition_key="response", sample_key="biopsy", reference="responder", patient_key="patient",
                 features="genes")
    per_patient = run(adata, features="genes", **KW)
    pd.testing.assert_frame_equal(pooled, per_patient)


def _pre_on(seed: int, n_patients: int = 6, cells: int = 80, shift: float = 0.12):
    """Pre/on-treatment biopsies: large between-patient spread, a small consistent on-treatment change."""
    rng = np.random.default_rng(seed)
    obs, scores = [], []
    for p in range(n_patients):
        base = rng.normal(0.0, 0.3)
        logit = np.array([0.0, rng.normal(0.0, 0.8), rng.normal(0.0, 0.8)])
        for visit in ("pre", "on"):
            on = visit == "on"
            level = base + rng.normal(0.0, 0.03) + (shift if on else 0.0)
            scores.append(rng.normal(level, 0.1, cells))
            q = np.exp(logit + (np.array([0.6, 0.0, 0.0]) if on else 0.0) + rng.normal(0.0, 0.05, 3))
            states = rng.choice(["s1", "s2", "s3"], size=cells, p=q / q.sum())
            obs += [(f"P{p}", f"P{p}_{visit}", visit, s) for s in states]
    frame = pd.DataFrame(obs, columns=["patient", "sample", "visit", "state"])
    frame.index = frame.index.astype(str)
    adata = ad.AnnData(np.zeros((len(frame), 1), dtype=np.float32), obs=frame)
    adata.obsm["hcctme_scores"] = pd.DataFrame({"SIG": np.concatenate(scores),
                                                "NOISE": rng.normal(0, 0.1, len(frame))}, index=frame.index)
    return adata


def test_paired_design_finds_a_within_patient_change_at_6_pairs():
    """20 cohorts of 6 patients biopsied pre and on treatment: the patient-blocked test finds the
    planted on-treatment change (score +0.12, s1 log-odds +0.6) that the unpaired test, drowned by
    between-patient variation, cannot.
    """
    args = dict(condition_key="visit", sample_key="sample", reference="pre")
    found = {"paired": [], "unpaired": [], "paired_comp": [], "unpaired_comp": []}
    for seed in range(20):
        adata = _pre_on(seed)
        paired = run(adata, patient_key="patient", **args).set_index("feature")
        unpaired = run(adata, **args).set_index("feature")
        assert (paired["n_reference"] == 6).all() and paired["method"].eq("wls").all()
        found["paired"].append(paired.loc["SIG", "pvalue"] < 0.05 and paired.loc["SIG", "effect"] > 0)
        found["unpaired"].append(unpaired.loc["SIG", "pvalue"] < 0.05)
        comp = dict(features="composition", groupby="state")
        paired = run(adata, patient_key="patient", **comp, **args).set_index("feature")
        unpaired = run(adata, **comp, **args).set_index("feature")
        found["paired_comp"].append(paired.loc["s1", "pvalue"] < 0.05 and paired.loc["s1", "effect"] > 0)
        found["unpaired_comp"].append(unpaired.loc["s1", "pvalue"] < 0.05)
    rates = {k: float(np.mean(v)) for k, v in found.items()}
    assert rates["paired"] >= 0.9 and rates["unpaired"] <= 0.25, rates
    assert rates["paired_comp"] >= 0.8 and rates["unpaired_comp"] <= 0.3, rates


def _design(cond):
    return pd.DataFrame({"condition": cond}, index=[f"u{i}" for i in range(len(cond))])


def test_degenerate_inputs_never_give_p_zero():
    design = _design(["r", "r", "r", "o", "o", "o"])
    values = pd.DataFrame({"flat": [1.0] * 6, "split": [1.0, 1.0, 1.0, 2.0, 2.0, 2.0]}, index=design.index)
    with pytest.warns(RuntimeWarning, match="no variance"):
        welch = _stats.compare_samples(values, design, "r", method="welch").set_index("feature")
    assert welch.loc["flat", "pvalue"] == 1.0 and np.isnan(welch.loc["split", "pvalue"])
    mw = _stats.compare_samples(values, design, "r", method="mannwhitney").set_index("feature")
    assert mw.loc["flat", "pvalue"] == 1.0 and mw.loc["split", "pvalue"] > 0.04  # tied: normal approximation
    lm = _stats.compare_samples(values, design, "r", method="moderated").set_index("feature")
    assert lm.loc["flat", "pvalue"] == 1.0 and np.isnan(lm.loc["split", "pvalue"])
    paired = design.assign(block=["a", "b", "c", "a", "b", "c"])
    with pytest.warns(RuntimeWarning, match="identical differences"):
        pt = _stats.compare_samples(values, paired, "r", method="paired_t").set_index("feature")
    assert np.isnan(pt.loc["split", "pvalue"]) and pt.loc["flat", "pvalue"] == 1.0
    # with other features to borrow a variance from, the exact split is finite and tiny, never 0
    rng = np.random.default_rng(0)
    more = pd.concat([values, pd.DataFrame(rng.normal(0, 0.1, (6, 5)), index=design.index).add_prefix("f")], axis=1)
    lm = _stats.compare_samples(more, design, "r", method="moderated").set_index("feature")
    assert 0 < lm.loc["split", "pvalue"] < 1e-3 and lm.loc["flat", "pvalue"] == 1.0


@pytest.mark.parametrize("spread", [0.3, 1.0])  # prior df infinite, finite
def test_squeeze_var_matches_scanpro(spread):
    scanpro_ebayes = pytest.importorskip("scanpro.ebayes")
    rng = np.random.default_rng(1)
    df = np.full(40, 6.0)
    s2 = 0.2 * rng.chisquare(6, 40) / 6 * rng.lognormal(0, spread, 40)
    post, total, d0, s0 = _stats.squeeze_var(s2, df)
    assert np.isinf(d0) == (spread < 0.5)
    var_prior, _, df_prior = scanpro_ebayes.squeeze_var(s2, df)
    assert d0 == pytest.approx(float(np.ravel(df_prior)[0]), rel=1e-6)
    assert s0 == pytest.approx(float(np.ravel(var_prior)[0]), rel=1e-6)
    # limma's posterior (scanpro's own var_post only updates the first entry when d0 is finite)
    expected = np.full(40, s0) if np.isinf(d0) else (d0 * s0 + 6.0 * s2) / (d0 + 6.0)
    np.testing.assert_allclose(post, expected, rtol=1e-12)
    np.testing.assert_allclose(total, np.minimum(6.0 + d0, 240.0))


def test_moderated_without_prior_equals_weighted_least_squares():
    import statsmodels.api as sm

    rng = np.random.default_rng(2)
    design = _design(["r"] * 5 + ["o"] * 5)
    y = pd.DataFrame({"x": rng.normal(0, 1, 10)}, index=design.index)
    v = pd.DataFrame({"x": rng.uniform(0.1, 2.0, 10)}, index=design.index)
    row = _stats.moderated_fit(y, design, "r", variances=v).iloc[0]  # one feature: no prior
    X = np.column_stack([np.ones(10), (design["condition"] == "o").astype(float)])
    ols = sm.OLS(y["x"].to_numpy(), X).fit()
    h = np.einsum("ij,jk,ik->i", X, np.linalg.inv(X.T @ X), X)
    tau2 = max(0.0, (ols.ssr - np.sum((1 - h) * v["x"])) / 8)
    fit = sm.WLS(y["x"].to_numpy(), X, weights=1 / (tau2 + v["x"].to_numpy())).fit()
    assert row["effect"] == pytest.approx(fit.params[1])
    assert row["statistic"] == pytest.approx(fit.tvalues[1])
    assert row["pvalue"] == pytest.approx(fit.pvalues[1])


def _scores_with_unscored_cells(seed: int = 0) -> ad.AnnData:
    """8 samples of 12 cells, one score column; sample S2 has a score in 2 of its 12 cells only."""
    rng = np.random.default_rng(seed)
    rows = [{"sample": f"S{s}", "cond": "R" if s < 4 else "NR"} for s in range(8) for _ in range(12)]
    obs = pd.DataFrame(rows, index=[f"c{i}" for i in range(len(rows))]).astype("category")
    adata = ad.AnnData(X=np.zeros((len(obs), 3), np.float32), obs=obs)
    score = rng.normal(size=adata.n_obs) + (obs["sample"].cat.codes.to_numpy() % 3)
    score[np.flatnonzero((obs["sample"] == "S2").to_numpy())[2:]] = np.nan
    adata.obsm["hcctme_scores"] = pd.DataFrame({"F0": score, "F1": rng.normal(size=adata.n_obs)},
                                               index=adata.obs_names)
    return adata


def test_a_cell_without_a_score_is_no_cell_of_that_samples_value():
    adata = _scores_with_unscored_cells()
    kw = dict(condition_key="cond", sample_key="sample", reference="R")
    table = run(adata, method="welch", min_cells=10, **kw).set_index("feature")
    assert table.loc["F0", "n_reference"] == 3 and table.loc["F1", "n_reference"] == 4  # S2: 2 scored F0 cells
    frame = adata.obsm["hcctme_scores"].assign(sample=adata.obs["sample"].astype(str).to_numpy(),
                                               cond=adata.obs["cond"].astype(str).to_numpy())
    means = frame[frame["sample"] != "S2"].groupby(["cond", "sample"])["F0"].mean()
    expected = stats.ttest_ind(means["NR"], means["R"], equal_var=False)
    assert table.loc["F0", "pvalue"] == pytest.approx(expected.pvalue, rel=1e-10)
    # the weights read the scored cells only: dropping the unscored cells changes nothing
    both = run(adata, method="wls", min_cells=1, **kw).set_index("feature")
    only_f0 = adata[~np.isnan(adata.obsm["hcctme_scores"]["F0"].to_numpy())].copy()
    alone = run(only_f0, method="wls", min_cells=1, signatures=["F0"], **kw).set_index("feature")
    assert both.loc["F0", "pvalue"] == pytest.approx(alone.loc["F0", "pvalue"], rel=1e-9)
    # a sample too small for every feature is dropped and reported; for one feature only, left out of it
    small = _scores_with_unscored_cells()
    small.obsm["hcctme_scores"].loc[(small.obs["sample"] == "S2").to_numpy(), "F1"] = np.nan
    hc.tl.compare(small, min_cells=10, method="welch", **kw)
    dropped = hc.get.params(small, "hcctme_compare")["dropped"]
    assert dropped["sample"].tolist() == ["S2"] and dropped["n_cells"].tolist() == ["2"]  # stored as text


def test_a_condition_level_holding_vs_is_refused_with_the_fix(adata):
    adata.obs["response"] = adata.obs["response"].astype(str).replace({"resistor": "IO vs TKI"})
    before = adata.copy()
    for features in ("scores", "composition"):
        with pytest.raises(ValueError, match=r"holding ' vs '.*rename them"):
            hc.tl.compare(adata, features=features, groupby="cell_type" if features == "composition" else None,
                          **KW)
    assert set(adata.uns) == set(before.uns)


def test_paired_composition_describes_and_lists_only_the_pairs_tested():
    """P01_on keeps 2 macrophages (below min_cells), so the paired model drops P01_pre too; prop_reference /
    prop_other averaged P01_pre with the tested pairs (TAM2_SPP1's prop_diff -0.142 instead of -0.019, the
    unassigned share's sign flipped) and the values table listed P01_pre."""
    a = hc.datasets.simulate_cohort(6, 200, n_genes=600, random_state=0)
    time = np.where(np.random.default_rng(0).random(a.n_obs) < 0.5, "pre", "on")
    a.obs["time"] = pd.Categorical(time)
    a.obs["sample"] = pd.Categorical(a.obs["patient"].astype(str) + "_" + time)
    a.obs["state"] = a.obs["state_true"]
    macrophages = (a.obs["cell_type"] == "Macrophages").to_numpy()
    keep = np.ones(a.n_obs, bool)
    keep[np.flatnonzero((a.obs["sample"] == "P01_on").to_numpy() & macrophages)[2:]] = False
    a = a[keep].copy()
    hc.tl.compare(a, features="composition", groupby="state", parent_key="cell_type", condition_key="time",
                  sample_key="sample", reference="pre", pair_key="patient", method="ols")
    table = hc.get.compare(a).query("group == 'Macrophages'").set_index("feature")
    values = a.uns["hcctme_compare_values"].query("group == 'Macrophages'")
    mac = a.obs[a.obs["cell_type"] == "Macrophages"]
    counts = pd.crosstab(mac["sample"].astype(str), mac["state"].astype(str))
    counts = counts[counts.sum(axis=1) >= 10]
    patients = pd.Series(counts.index.str.split("_").str[0])
    counts = counts[patients.map(patients.value_counts()).to_numpy() == 2]
    assert "P01_pre" not in counts.index and len(counts) == 4  # two complete pairs
    assert set(values["sample"]) == set(counts.index)
    props = counts.div(counts.sum(axis=1), axis=0)
    pre = props.index.str.endswith("_pre")
    for feature, row in table.iterrows():
        assert row["n_reference"] == pre.sum()
        assert row["prop_reference"] == pytest.approx(props.loc[pre, feature].mean(), rel=1e-12)
        assert row["prop_other"] == pytest.approx(props.loc[~pre, feature].mean(), rel=1e-12)


def test_paired_composition_leaves_out_a_pair_orphaned_by_a_dropped_level():
    """P06_post keeps 2 macrophages, so 'post' has one unit there and is dropped, which leaves P07_pre without a
    partner: the test reads P01-P05's pre / on pairs, and prop_reference averaged P07_pre in too (review of
    sweep 60)."""
    a = hc.datasets.simulate_cohort(7, 800, n_genes=300, random_state=0)
    patients = list(a.obs["patient"].cat.categories)
    patient = a.obs["patient"].astype(str).to_numpy()
    half = np.random.default_rng(0).random(a.n_obs) < 0.5
    time = np.where(half, "pre", np.where(np.isin(patient, patients[-2:]), "post", "on"))
    a.obs["time"] = pd.Categorical(time)
    a.obs["sample"] = pd.Categorical(patient + "_" + time)
    a.obs["state"] = a.obs["state_true"]
    macrophages = (a.obs["cell_type"] == "Macrophages").to_numpy()
    keep = np.ones(a.n_obs, bool)
    keep[np.flatnonzero((a.obs["sample"] == f"{patients[-2]}_post").to_numpy() & macrophages)[2:]] = False
    a = a[keep].copy()
    hc.tl.compare(a, features="composition", groupby="state", parent_key="cell_type", condition_key="time",
                  sample_key="sample", reference="pre", pair_key="patient", method="ols")
    table = hc.get.compare(a).query("group == 'Macrophages'").set_index("feature")
    values = a.uns["hcctme_compare_values"].query("group == 'Macrophages'")
    tested = [f"{p}_{t}" for p in patients[:5] for t in ("pre", "on")]
    assert set(values["sample"]) == set(tested)
    mac = a.obs[a.obs["cell_type"] == "Macrophages"]
    counts = pd.crosstab(mac["sample"].astype(str), mac["state"].astype(str)).loc[tested]
    props = counts.div(counts.sum(axis=1), axis=0)
    pre = [s for s in tested if s.endswith("_pre")]
    for feature, row in table.iterrows():
        assert row["n_reference"] == len(pre)
        assert row["prop_reference"] == pytest.approx(props.loc[pre, feature].mean(), rel=1e-12)


def _with_small_sample(scores: bool) -> ad.AnnData:
    """Eight samples of 15-100 cells and 'sX', 5-6 cells (below min_cells=10): a level or noise only it holds."""
    rng = np.random.default_rng(0)
    rows, values = [], []
    sizes = [15, 60, 25, 100, 20, 80, 30, 45]
    for i, size in enumerate(sizes):
        cond = "ref" if i < 4 else "oth"
        p = [.5, .3, .2] if cond == "ref" else [.35, .4, .25]
        offset = rng.normal(0, 0.3)
        for state in rng.choice(["a", "b", "c"], size, p=p):
            rows.append((f"s{i}", cond, state))
            values.append(offset + rng.normal(0, 1) + 0.3 * (cond == "oth"))
    for state in ["a", "r", "r", "b", "r", "a"]:
        rows.append(("sX", "ref", state))
        values.append(rng.normal(0, 30))
    obs = pd.DataFrame(rows, columns=["sample", "cond", "state"], index=[f"c{i}" for i in range(len(rows))])
    adata = ad.AnnData(np.zeros((len(obs), 1), dtype=np.float32), obs=obs)
    if scores:
        adata.obsm["hcctme_scores"] = pd.DataFrame({"S1": values}, index=obs.index)
    return adata


@pytest.mark.parametrize("features, options", [
    ("composition", {"groupby": "state", "transform": "asin"}),
    ("composition", {"groupby": "state", "transform": "logit"}),
    ("composition", {"groupby": "state", "transform": "clr"}),
    ("scores", {"method": "wls"}),
    ("scores", {"method": "moderated"}),
])
def test_a_sample_left_out_for_min_cells_has_no_influence(features, options):
    """Its level stayed a row (0 cells in every tested sample; clr moved every level), its cells weighted the rest."""
    full = _with_small_sample(scores=features == "scores")
    tables = []
    for adata in (full.copy(), full[full.obs["sample"] != "sX"].copy()):
        hc.tl.compare(adata, condition_key="cond", sample_key="sample", reference="ref", features=features,
                      min_cells=10, **options)
        tables.append(hc.get.compare(adata).sort_values("feature", ignore_index=True))
        if adata.n_obs == full.n_obs:
            assert "sX" in set(adata.uns["hcctme_compare_params"]["dropped"]["sample"])
    assert "r" not in set(tables[0]["feature"])
    pd.testing.assert_frame_equal(tables[0], tables[1], check_exact=False, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("features", ["composition", "scores"])
def test_a_sample_without_cells_of_a_group_is_reported_as_dropped(features):
    rng = np.random.default_rng(0)
    rows = []
    for i in range(8):
        cond = "ref" if i < 4 else "oth"
        rows += [(f"s{i}", cond, "T", state) for state in rng.choice(["t1", "t2"], 40)]
        rows += [(f"s{i}", cond, "Mac", state) for state in rng.choice(["m1", "m2"], {0: 0, 1: 5}.get(i, 40))]
    obs = pd.DataFrame(rows, columns=["sample", "cond", "ct", "state"], index=[f"c{i}" for i in range(len(rows))])
    adata = ad.AnnData(np.zeros((len(obs), 1), dtype=np.float32), obs=obs)
    adata.obsm["hcctme_scores"] = pd.DataFrame({"S1": rng.normal(size=len(obs))}, index=obs.index)
    options = {"groupby": "state", "parent_key": "ct"} if features == "composition" else {"groupby": "ct"}
    hc.tl.compare(adata, condition_key="cond", sample_key="sample", reference="ref", features=features,
                  min_cells=10, **options)
    table = hc.get.compare(adata)
    dropped = adata.uns["hcctme_compare_params"]["dropped"]
    assert (table.loc[table["group"] == "Mac", "n_reference"] == 2).all()
    mac = dropped[dropped["group"] == "Mac"].set_index("sample")["n_cells"].astype(int)
    assert mac.to_dict() == {"s0": 0, "s1": 5}


def test_duplicated_score_columns_are_named(digest):
    rng = np.random.default_rng(0)
    obs = pd.DataFrame({"sample": np.repeat([f"s{i}" for i in range(6)], 20),
                        "cond": np.repeat(["a", "b"] * 3, 20)}, index=[f"c{i}" for i in range(120)])
    adata = ad.AnnData(np.zeros((120, 1), dtype=np.float32), obs=obs)
    adata.obsm["hcctme_scores"] = pd.DataFrame(rng.normal(size=(120, 3)), index=obs.index, columns=["X", "X", "Y"])
    before = digest(adata)
    with pytest.raises(ValueError, match="names the score column\\(s\\) 'X' more than once"):
        hc.tl.compare(adata, condition_key="cond", sample_key="sample", reference="a")
    assert digest(adata) == before


def _per_patient(adata, values):
    """A per-patient obs column: ``values`` in the order of the patients P00, P01, ..."""
    patients = sorted(adata.obs["patient"].astype(str).unique())
    return adata.obs["patient"].astype(str).map(dict(zip(patients, values, strict=True))).astype(float).to_numpy()


def test_check_design_rank_does_not_depend_on_column_units_and_uses_limmas_tolerance():
    """Sweep 63: the rank check ran numpy's default tolerance on the raw design: dates as epoch nanoseconds (~1.7e18)
    were refused as collinear, while a dose equal to the condition up to 1e-9 passed and broke the fits."""
    rng = np.random.default_rng(3)
    condition = np.repeat([0.0, 1.0], 6)
    base = pd.DataFrame({"Intercept": 1.0, "condition[B]": condition})
    days = 19_700 + rng.permutation([3.0, 40, 95, 130, 170, 210, 250, 280, 300, 330, 350, 365])
    for dates in (days, pd.to_datetime(days, unit="D").astype("int64").astype(float)):  # days, epoch ns
        _stats.check_design(base.assign(**{"covariate[collected]": dates}))
    noise = rng.normal(size=12)
    _stats.check_design(base.assign(**{"covariate[dose]": condition * (1 + 1e-5 * noise)}))  # estimable in limma
    with pytest.raises(ValueError, match=r"rank deficient: the covariate obs\['dose'\] is constant, duplicated or"):
        _stats.check_design(base.assign(**{"covariate[dose]": condition * (1 + 1e-9 * noise)}))
    # standardising a numeric covariate does not blow rounding noise around a constant up into a covariate
    rounded = pd.DataFrame({"dose": np.tile([0.3, 0.1 * 3], 6)})
    X = _stats.design_matrix(pd.Series(np.repeat(["A", "B"], 6)), "A", ["B"], covariates=rounded)
    with pytest.raises(ValueError, match=r"obs\['dose'\] is constant, duplicated or collinear"):
        _stats.check_design(X)


def test_compare_does_not_depend_on_a_covariates_units(adata, digest):
    """Sweep 63: a date in epoch nanoseconds was refused as collinear and a dose equal to the condition up to 1e-9
    was fitted (limma-trend: every gene significant); now the dates in ns give the table of the dates in days and
    the dose is refused by name."""
    days = 19_700 + np.array([3.0, 95, 170, 250, 40, 300, 130, 365])
    tables = {}
    for unit, dates in (("days", days), ("ns", pd.to_datetime(days, unit="D").astype("int64").astype(float))):
        adata.obs["collected"] = _per_patient(adata, dates)
        for features in ("genes", "scores"):
            tables[unit, features] = run(adata, features=features, covariates="collected", **KW)
    for features in ("genes", "scores"):
        days_table, ns_table = tables["days", features], tables["ns", features]
        assert list(ns_table["feature"]) == list(days_table["feature"]) and len(days_table) >= 2
        for column in ("effect", "statistic", "pvalue"):
            np.testing.assert_allclose(ns_table[column], days_table[column], rtol=1e-9, atol=1e-12)
    is_other = np.repeat([0.0, 1.0], 4)
    adata.obs["dose"] = _per_patient(adata, is_other * (1 + 1e-9 * np.random.default_rng(3).normal(size=8)))
    before = digest(adata)
    for features in ("genes", "scores"):
        with pytest.raises(ValueError, match=r"obs\['dose'\] is constant, duplicated or collinear with the condition"):
            hc.tl.compare(adata, features=features, covariates="dose", **KW)
    assert digest(adata) == before


@pytest.mark.parametrize("features", ["genes", "scores"])
def test_an_infinite_covariate_is_named_as_such(adata, digest, features):
    """Sweep 63: an infinite covariate value reached the rank check's SVD (LAPACK printed DLASCL errors) and was
    reported as a constant, duplicated or collinear covariate; it is refused as a NaN is, naming the column."""
    adata.obs["bmi"] = _per_patient(adata, [22.0, np.inf, 27.5, 24.1, 30.2, 21.7, 25.0, 23.3])
    n_infinite = int(np.isinf(adata.obs["bmi"]).sum())
    before = digest(adata)
    with pytest.raises(ValueError, match=rf"obs\['bmi'\] has {n_infinite} non-finite \(infinite\) values; fill or"):
        hc.tl.compare(adata, features=features, covariates="bmi", **KW)
    assert digest(adata) == before and n_infinite > 0


def test_a_label_ending_in_cells_is_no_reason_of_too_few_cells():
    """Sweep 63 (Kang 2018): "B cells: a single level of state" read as a min_cells reason because the label holds
    " cells", so the error said "too few cells ... lower min_cells" where every sample had enough."""
    from hcctme.tl._compare import _nothing_tested

    assert _nothing_tested(["B cells: a single level of state"], 10).startswith("no group could be tested")
    assert _nothing_tested(["B cells: no sample with >= 10 cells"], 10).startswith("too few cells")
    assert _nothing_tested(["T: fewer than 2 samples with >= 10 cells in a condition level"], 10).startswith(
        "too few cells")
