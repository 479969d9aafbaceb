"""tl.compare: per-sample aggregation, each test against a direct computation, storage, bad input."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats

import hcctme as hc
from hcctme.tl import _stats

from ._compare_data import cohort, lognorm

KW = dict(condition_key="response", sample_key="patient", reference="responder")
COLUMNS = ["feature", "group", "effect", "statistic", "pvalue", "padj", "n_reference", "n_other", "direction",
           "method"]


@pytest.fixture
def adata():
    return cohort(n_per=4, cells=90, n_genes=40, seed=0, state_shift=1.2, gene_fold=3.0, score_shift=0.1)


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
    table = hc.tl.compare(adata, features="scores", **KW)
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
    table = hc.tl.compare(adata, features="scores", groupby="cell_type", aggregate="median", **KW)
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
    cell_level = hc.tl.compare(adata, features="scores", **KW)
    means = adata.obsm["hcctme_scores"].groupby(adata.obs["patient"].astype(str).to_numpy()).mean()
    import anndata as ad

    bulk = ad.AnnData(X=np.zeros((len(means), 1), dtype=np.float32),
                      obs=pd.DataFrame({"response": _conditions(adata)[means.index].to_numpy()}, index=means.index))
    bulk.obsm["hcctme_scores"] = means
    sample_level = hc.tl.compare(bulk, condition_key="response", sample_key=None, reference="responder")
    pd.testing.assert_frame_equal(cell_level, sample_level)


def test_signatures_subset_and_missing_scores(adata, digest):
    table = hc.tl.compare(adata, features="scores", signatures=["SIG_B"], store=False, **KW)
    assert list(table["feature"]) == ["SIG_B"]
    before = digest(adata)
    with pytest.raises(KeyError, match="NOPE"):
        hc.tl.compare(adata, features="scores", signatures=["NOPE"], **KW)
    with pytest.raises(KeyError, match="tl.score"):
        hc.tl.compare(adata, features="scores", scores_key="other_scores", **KW)
    assert digest(adata) == before


# --------------------------------------------------------------------------------------------------
# composition
# --------------------------------------------------------------------------------------------------
def test_composition_clr_within_parent(adata):
    table = hc.tl.compare(adata, features="composition", groupby="state_true", parent_key="cell_type", **KW)
    # B has a single level ("unassigned"): skipped and reported
    assert set(table["group"]) == {"A"}
    assert set(table["feature"]) == {"s1", "s2", "s3"}
    assert any("B" in s for s in adata.uns["hcctme_compare_params"]["skipped"])
    a = adata.obs[adata.obs["cell_type"] == "A"]
    counts = pd.crosstab(a["patient"].astype(str), a["state_true"].astype(str))[["s1", "s2", "s3"]]
    clr = np.log(counts + 0.5)
    clr = clr.sub(clr.mean(axis=1), axis=0)
    cond = _conditions(adata)[counts.index]
    row = table.set_index("feature").loc["s1"]
    ref, oth = clr.loc[cond == "responder", "s1"], clr.loc[cond == "resistor", "s1"]
    assert row["effect"] == pytest.approx(oth.mean() - ref.mean())
    assert row["pvalue"] == pytest.approx(stats.mannwhitneyu(oth, ref).pvalue)
    props = counts.div(counts.sum(axis=1), axis=0)
    assert row["prop_reference"] == pytest.approx(props.loc[cond == "responder", "s1"].mean())
    assert row["prop_diff"] == pytest.approx(row["prop_other"] - row["prop_reference"])
    assert row["direction"] == "up"  # planted: s1 expanded in resistors
    values = adata.uns["hcctme_compare_values"]
    assert {"sample", "group", "feature", "value", "condition", "proportion"} <= set(values.columns)


def test_composition_without_parent(adata):
    table = hc.tl.compare(adata, features="composition", groupby="cell_type", store=False, **KW)
    assert set(table["group"]) == {"all"}
    assert set(table["feature"]) == {"A", "B"}
    # two parts: CLR effects are opposite
    eff = table.set_index("feature")["effect"]
    assert eff["A"] == pytest.approx(-eff["B"])


def test_composition_min_cells_drops_samples(adata):
    n = adata.obs[adata.obs["cell_type"] == "A"].groupby("patient", observed=True).size()
    threshold = int(np.sort(n.to_numpy())[1]) + 1  # drops the two smallest samples
    table = hc.tl.compare(adata, features="composition", groupby="state_true", parent_key="cell_type",
                          min_cells=threshold, **KW)
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

    table = hc.tl.compare(adata, features="genes", **KW)
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
    # the planted 3-fold genes come out on top, up
    top = table.head(4)
    assert set(top["feature"]) == {"G0", "G1", "G2", "G3"}
    assert (top["direction"] == "up").all() and (top["padj"] < 0.1).all()


def test_genes_from_pseudobulk_anndata_equal_cell_level(adata):
    cell_level = hc.tl.compare(adata, features="genes", groupby="cell_type", store=False, **KW)
    pdata = hc.tl.pseudobulk(adata, sample_key="patient", groupby="cell_type")
    pdata.obs_names = pdata.obs["patient"].astype(str) + "_" + pdata.obs["cell_type"].astype(str)
    table = hc.tl.compare(pdata, condition_key="response", sample_key=None, reference="responder",
                          features="genes", groupby="cell_type", store=False)
    merged = cell_level.merge(table, on=["feature", "group"], suffixes=("", "_pb"))
    assert len(merged) == len(cell_level)
    np.testing.assert_allclose(merged["pvalue"], merged["pvalue_pb"], rtol=1e-6)


def test_genes_refuse_lognormalised(adata, digest):
    ln = lognorm(adata)
    before = digest(ln)
    with pytest.raises(ValueError, match="raw integer counts"):
        hc.tl.compare(ln, features="genes", layer=None, **KW)
    assert digest(ln) == before


def test_genes_paired_and_covariates_run(adata):
    a = adata  # obs['pair'] pairs P00 with P04, P01 with P05, ...
    table = hc.tl.compare(a, features="genes", pair_key="pair", store=False, **KW)
    assert (table["n_reference"] == 4).all()
    table = hc.tl.compare(adata, features="genes", covariates="age", store=False, **KW)
    assert table["pvalue"].notna().any()


# --------------------------------------------------------------------------------------------------
# covariates, pairs, several levels
# --------------------------------------------------------------------------------------------------
def test_covariates_ols_equals_statsmodels(adata):
    import statsmodels.formula.api as smf

    table = hc.tl.compare(adata, features="scores", covariates=["age"], **KW)
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
    table = hc.tl.compare(a, features="scores", pair_key="pair", **KW)
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
    t = hc.tl.compare(a, features="scores", pair_key="pair", method="paired_t", store=False, **KW)
    assert t.set_index("feature").loc["SIG_A", "pvalue"] == pytest.approx(stats.ttest_rel(post[pre.index], pre).pvalue)


def test_paired_ols_with_covariates(adata):
    a = adata.copy()
    a.obs["batch"] = np.where(a.obs["pair"].isin(["pair0", "pair1"]), "b1", "b2")
    a.obs["dose"] = a.obs["age"] / 10  # sample-level numeric covariate, varies within pairs
    table = hc.tl.compare(a, features="scores", pair_key="pair", covariates="dose", store=False, **KW)
    assert (table["method"] == "ols").all()


def test_more_than_two_levels_each_vs_reference():
    a = cohort(n_per=3, cells=60, n_genes=20, seed=3, levels=("responder", "resistor", "stable"))
    table = hc.tl.compare(a, features="scores", **KW)
    assert set(table["contrast"]) == {"resistor vs responder", "stable vs responder"}
    assert len(table) == 4
    np.testing.assert_allclose(table["padj"], _stats.bh(table["pvalue"]))
    ols = hc.tl.compare(a, features="composition", groupby="state_true", parent_key="cell_type",
                        covariates="age", store=False, **KW)
    assert set(ols["contrast"]) == {"resistor vs responder", "stable vs responder"}
    genes = hc.tl.compare(a, features="genes", store=False, **KW)
    assert set(genes["contrast"]) == {"resistor vs responder", "stable vs responder"}


def test_welch_method(adata):
    table = hc.tl.compare(adata, features="scores", method="welch", store=False, **KW)
    means = _sample_means(adata, "SIG_A")
    cond = _conditions(adata)
    p = stats.ttest_ind(means[cond == "resistor"], means[cond == "responder"], equal_var=False).pvalue
    assert table.set_index("feature").loc["SIG_A", "pvalue"] == pytest.approx(p)


# --------------------------------------------------------------------------------------------------
# storage
# --------------------------------------------------------------------------------------------------
def test_storage(adata, digest, tmp_path):
    before = digest(adata)
    table = hc.tl.compare(adata, features="scores", store=False, **KW)
    assert digest(adata) == before
    table2 = hc.tl.compare(adata, features="scores", key_added="cmp", **KW)
    pd.testing.assert_frame_equal(table, table2)
    pd.testing.assert_frame_equal(adata.uns["cmp"], table)
    assert isinstance(adata.uns["cmp_values"], pd.DataFrame)
    assert adata.uns["cmp_params"]["method"] == "mannwhitney"
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
    return [
        (adata, dict(KW, condition_key="nope"), KeyError, "nope"),
        (adata, dict(KW, sample_key="nope"), KeyError, "nope"),
        (single, KW, ValueError, "single level"),
        (adata, dict(KW, reference="stable"), ValueError, "not a level"),
        (one_sample, KW, ValueError, "one sample per group"),
        (varying, KW, ValueError, "varies within samples"),
        (adata, dict(KW, min_cells=10_000), ValueError, "too few"),
        (adata, dict(KW, features="genes", min_cells=10_000), ValueError, "too few cells"),
        (adata, dict(KW, features="composition", groupby="state_true", min_cells=10_000), ValueError, "too few"),
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
        (adata, dict(KW, min_cells=0), ValueError, "min_cells"),
        (adata, dict(KW, pseudocount=0), ValueError, "pseudocount"),
        (adata, dict(KW, key_added=""), TypeError, "key_added"),
    ]


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
