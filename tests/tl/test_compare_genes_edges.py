"""Gene-level compare at the edges a cohort reaches (sweep 55): one group's design, an orphan pair member after a
thin level is dropped, an empty profile, the documented df column, and what the refusal names."""

import logging

import anndata as ad
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from hcctme import datasets, get, tl


def _bulk(counts: np.ndarray, cond: list[str]) -> ad.AnnData:
    n, g = counts.shape
    return ad.AnnData(X=counts.astype(np.float32), obs=pd.DataFrame({"cond": cond}, index=[f"S{i}" for i in range(n)]),
                      var=pd.DataFrame(index=[f"g{j}" for j in range(g)]))


def _nb(rng: np.random.Generator, n: int, g: int) -> np.ndarray:
    return rng.negative_binomial(5, 5 / (5 + np.exp(rng.normal(3, 1.5, g))[None] * np.ones((n, 1))))


def test_a_group_whose_samples_cannot_fit_the_design_is_skipped_not_the_call():
    """`rare` keeps 4 samples, in which `batch` equals the condition: the whole call failed, the valid T lost."""
    rng = np.random.default_rng(3)
    rows = []
    for s in range(8):
        for ct, n in (("T", 30), ("rare", 30 if s % 2 == 0 else 2)):
            rows += [(f"s{s}", ct, "R" if s < 4 else "NR")] * n
    obs = pd.DataFrame(rows, columns=["sample", "ct", "cond"], index=[f"c{i}" for i in range(len(rows))])
    obs["batch"] = obs["sample"].map(dict(zip([f"s{i}" for i in range(8)], [0., 1, 0, 1, 1, 0, 1, 0], strict=True)))
    adata = ad.AnnData(X=_nb(rng, len(obs), 200).astype(np.float32), obs=obs,
                       var=pd.DataFrame(index=[f"g{j}" for j in range(200)]))
    tl.compare(adata, condition_key="cond", sample_key="sample", reference="R", groupby="ct", covariates="batch",
               features="genes", min_cells=10, layer=None)
    assert set(get.compare(adata)["group"]) == {"T"}
    skipped = get.params(adata, "hcctme_compare")["skipped"]
    assert any(s.startswith("rare: these samples cannot fit the design") and "'batch'" in s for s in skipped)


def test_a_pair_member_left_alone_by_a_dropped_level_leaves_the_fit():
    """p0A and the C samples of X are too small: C is dropped, p0B has no partner and must go (it stayed)."""
    rng = np.random.default_rng(4)
    mu = np.exp(rng.normal(0, 2, 400)) * 0.3
    rows = []
    for p in range(5):
        for level in ("A", "B", "C"):
            sample = f"p{p}{level}"
            nx = 3 if sample == "p0A" or (level == "C" and p > 0) else 30
            for ct, n in (("X", nx), ("Y", 30)):
                rows += [(sample, f"p{p}", level, ct)] * n
    obs = pd.DataFrame(rows, columns=["sample", "pair", "cond", "ct"], index=[f"c{i}" for i in range(len(rows))])
    X = rng.poisson(mu[None] * np.exp(rng.normal(0, 0.3, (len(obs), 1))), size=(len(obs), 400)).astype(np.float32)
    adata = ad.AnnData(X=sp.csr_matrix(X), obs=obs, var=pd.DataFrame(index=[f"g{j}" for j in range(400)]))
    kw = dict(condition_key="cond", sample_key="sample", reference="A", features="genes", groupby="ct",
              pair_key="pair", min_cells=10, layer=None)
    tl.compare(adata, **kw)
    full = get.compare(adata).query("group == 'X'")
    clean = adata[~((adata.obs["sample"] == "p0B") & (adata.obs["ct"] == "X"))].copy()
    tl.compare(clean, **kw)
    by_hand = get.compare(clean).query("group == 'X'")
    assert full[["n_reference", "n_other"]].drop_duplicates().values.tolist() == [[4, 4]]
    merged = full.merge(by_hand, on=["feature", "contrast"], suffixes=("", "_hand"))
    assert len(merged) == len(full) == len(by_hand)
    np.testing.assert_allclose(merged["pvalue"], merged["pvalue_hand"], rtol=1e-10)


@pytest.mark.parametrize("method", ["limma-trend", "voom"])
def test_a_profile_without_counts_is_left_out_not_every_p_value_nan(method: str, caplog):
    """limma-trend's log-CPM of a library of 0 is 0/0: every p-value of the table was NaN, silently."""
    rng = np.random.default_rng(1)
    counts = _nb(rng, 10, 200)
    counts[9] = 0
    adata = _bulk(counts, ["R"] * 5 + ["NR"] * 5)
    tl.compare(adata, condition_key="cond", sample_key=None, reference="R", features="genes", method=method,
               layer=None)
    table = get.compare(adata)
    assert table["pvalue"].notna().all() and (table["n_other"] == 4).all()
    assert "S9" in caplog.text and "no counts" in caplog.text
    reference = _bulk(counts[:9], ["R"] * 5 + ["NR"] * 4)
    tl.compare(reference, condition_key="cond", sample_key=None, reference="R", features="genes", method=method,
               layer=None)
    pd.testing.assert_frame_equal(table, get.compare(reference))


def test_the_limma_tables_carry_the_moderated_df():
    rng = np.random.default_rng(0)
    adata = _bulk(_nb(rng, 8, 200), ["R"] * 4 + ["NR"] * 4)
    for method in ("limma-trend", "voom"):
        tl.compare(adata, condition_key="cond", sample_key=None, reference="R", features="genes", method=method,
                   layer=None)
        df = get.compare(adata)["df"]
        assert ((df >= 6 - 1e-9) & np.isfinite(df)).all()  # the residual df (8 - 2) plus the prior's


def test_an_expression_filter_failure_is_not_blamed_on_min_cells():
    rng = np.random.default_rng(0)
    adata = _bulk(rng.poisson(0.5, size=(8, 3000)), ["R"] * 4 + ["NR"] * 4)
    with pytest.raises(tl.TooFewGenesError, match=r"^no group could be tested .*filterByExpr") as info:  # sweep 61
        tl.compare(adata, condition_key="cond", sample_key=None, reference="R", features="genes", layer=None)
    assert "min_cells" not in str(info.value)


def test_deseq2_cooks_outliers_are_logged(caplog):
    """PyDESeq2 sets the p-value of a gene with a Cook's-distance outlier to NaN (no refit below 7 samples per
    level); the row kept its effect and statistic with nothing saying why."""
    import hcctme

    adata = hcctme.datasets.simulate_cohort(8, 120, n_genes=600, random_state=0)
    with caplog.at_level(logging.INFO, logger="hcctme"):
        hcctme.tl.compare(adata, features="genes", method="deseq2", condition_key="response", sample_key="patient",
                          reference="responder")
    table = hcctme.get.compare(adata)
    outliers = int((table["pvalue"].isna() & table["statistic"].notna()).sum())
    assert outliers >= 1
    assert f"{outliers} gene(s) with a Cook's-distance outlier sample get p = NaN" in caplog.text


@pytest.mark.parametrize("method", ["limma-trend", "voom"])
def test_the_gene_table_does_not_move_with_the_order_of_the_genes(method: str):
    """TMM and the trend summed over genes in var order: the statistics moved in the last bits (enrich read it)."""
    from hcctme.datasets import simulate_cohort

    adata = simulate_cohort(6, 80, n_genes=400, random_state=1)
    shuffled = adata[:, np.random.default_rng(0).permutation(adata.n_vars)].copy()
    tables = []
    for data in (adata, shuffled):
        tl.compare(data, condition_key="response", sample_key="patient", reference="responder", features="genes",
                   method=method)
        tables.append(get.compare(data).sort_values(["feature", "contrast"], ignore_index=True))
    pd.testing.assert_frame_equal(tables[0], tables[1], check_exact=True)


def test_sample_key_on_pseudobulk_profiles_names_the_call_that_works():
    """Sweep 62 observation, mended in 63: tl.compare(features="genes", sample_key=...) on tl.pseudobulk's output read
    each profile as one cell and refused with "fewer than 10 cells", which the profiles are not."""
    adata = datasets.simulate_cohort(6, 150, n_genes=400, random_state=0)
    bulk = tl.pseudobulk(adata, sample_key="patient", groupby="cell_type", layer="counts")
    kw = dict(features="genes", condition_key="response", reference="responder", layer="counts")
    with pytest.raises(ValueError, match=r"holds tl.pseudobulk's profiles .* sample_key=None, groupby='cell_type'"):
        tl.compare(bulk, sample_key="patient", groupby="cell_type", **kw)
    tl.compare(bulk, sample_key=None, groupby="cell_type", **kw)  # the call the message names
    expected = get.compare(bulk)
    assert expected["pvalue"].between(0, 1).all()
    tl.compare(bulk, sample_key="patient", groupby="cell_type", min_cells=1, **kw)  # each profile summed as it is
    pd.testing.assert_frame_equal(get.compare(bulk), expected, check_exact=True)
