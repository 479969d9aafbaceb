"""tl.ta_response: T+A signatures per unit (pseudobulk log-CPM or per-cell scores), Treg/Teff, comparison."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
from anndata import AnnData

import hcctme as hc
from hcctme import sig
from hcctme.tl._ta_response import TA_SIGNATURES, TREG_TEFF

from ._compare_data import cohort

ARGS = dict(sample_key="patient", condition_key="response", reference="responder")


@pytest.fixture
def adata():
    a = cohort(n_per=4, cells=60, n_genes=20, seed=4)
    rng = np.random.default_rng(0)
    frame = pd.DataFrame(rng.random((a.n_obs, len(TA_SIGNATURES))), index=a.obs_names, columns=list(TA_SIGNATURES))
    resist = (a.obs["response"] == "resistor").to_numpy()
    frame.loc[resist, "TA_TREG"] += 0.3
    a.obsm["hcctme_scores"] = frame
    return a


@pytest.fixture(scope="module")
def ta_counts():
    """8 patients, counts over the T+A genes plus background genes; resistors carry 3x the Treg genes in
    their T cells, and half of each patient's cells are T cells or tumour cells at varying ratios.
    """
    genes = list(dict.fromkeys(g for gs in sig.load(list(TA_SIGNATURES)).to_dict().values() for g in gs))
    names = genes + [f"BG{i}" for i in range(200)]
    treg = set(sig.load(["TA_TREG"]).to_dict()["TA_TREG"])
    rng = np.random.default_rng(5)
    base = rng.gamma(2.0, 1.0, len(names))
    blocks, obs = [], []
    for p in range(8):
        resistor = p % 2 == 1
        n = int(rng.integers(80, 200))
        mu = base * rng.lognormal(0, 0.1, len(names))
        if resistor:
            mu = np.where(np.isin(names, list(treg)), mu * 3.0, mu)
        lam = mu[None, :] * rng.gamma(4.0, 0.25 * rng.uniform(0.5, 2.0), (n, 1))
        blocks.append(rng.poisson(lam))
        obs += [(f"p{p}", "resistor" if resistor else "responder")] * n
    counts = np.vstack(blocks).astype(np.float32)
    frame = pd.DataFrame(obs, columns=["patient", "response"], index=[f"c{i}" for i in range(len(obs))])
    adata = AnnData(sp.csr_matrix(counts), obs=frame, var=pd.DataFrame(index=names))
    adata.layers["counts"] = adata.X.copy()
    return adata


def test_pseudobulk_log_cpm_readout(ta_counts):
    out = hc.tl.ta_response(ta_counts, **ARGS, copy=True)
    per_sample = out.uns["hcctme_ta_response_per_sample"].set_index("sample")
    # direct: summed counts -> log2 CPM (+1) -> z per gene across patients -> mean over the signature's genes
    X = ta_counts.layers["counts"].toarray().astype(np.float64)
    sums = pd.DataFrame(X, columns=ta_counts.var_names).groupby(ta_counts.obs["patient"].to_numpy()).sum()
    logcpm = np.log2(sums.div(sums.sum(axis=1), axis=0) * 1e6 + 1)
    z = (logcpm - logcpm.mean()) / logcpm.std(ddof=1)
    teff = sig.load(["TA_TEFF"]).to_dict()["TA_TEFF"]
    np.testing.assert_allclose(per_sample["TA_TEFF"], z[teff].mean(axis=1).loc[per_sample.index])
    np.testing.assert_allclose(per_sample[TREG_TEFF], per_sample["TA_TREG"] - per_sample["TA_TEFF"])
    table = out.uns["hcctme_ta_response"].set_index("feature")
    assert table.loc["TA_TREG", "direction"] == "up" and table.loc["TA_TREG", "pvalue"] < 0.05
    assert table.loc[TREG_TEFF, "direction"] == "up"
    assert (table["method"] == "mannwhitney").all()
    params = out.uns["hcctme_ta_response_params"]
    assert params["tool"] == "hcctme.tl.ta_response" and params["params"]["aggregate"] == "pseudobulk"
    assert set(params["genes_used"]["TA_TEFF"]) == set(teff)


def test_existing_scores_per_sample_mean(adata):
    out = hc.tl.ta_response(adata, **ARGS, aggregate="mean", method="mannwhitney", copy=True)
    per_sample = out.uns["hcctme_ta_response_per_sample"].set_index("sample")
    manual = adata.obsm["hcctme_scores"].groupby(adata.obs["patient"].astype(str).to_numpy()).mean()
    pd.testing.assert_frame_equal(per_sample[list(TA_SIGNATURES)], manual[list(TA_SIGNATURES)], check_names=False)
    np.testing.assert_allclose(per_sample[TREG_TEFF], manual["TA_TREG"] - manual["TA_TEFF"])
    assert (per_sample["n_cells"] == 60).all()
    assert set(per_sample["response"]) == {"responder", "resistor"}
    table = out.uns["hcctme_ta_response"]
    assert set(table["feature"]) == set(TA_SIGNATURES) | {TREG_TEFF}
    row = table.set_index("feature")
    assert row.loc["TA_TREG", "direction"] == "up" and row.loc["TA_TREG", "pvalue"] < 0.05
    means = per_sample.groupby("response")[TREG_TEFF].mean()
    assert row.loc[TREG_TEFF, "effect"] == pytest.approx(means["resistor"] - means["responder"])
    assert "obsm" in out.uns["hcctme_ta_response_params"]["scores"]


def test_without_condition_writes_per_sample_only(adata, digest):
    before = digest(adata)
    assert hc.tl.ta_response(adata, sample_key="patient", aggregate="mean", copy=True) is not None
    assert digest(adata) == before
    assert hc.tl.ta_response(adata, sample_key="patient", aggregate="mean") is None
    assert adata.uns["hcctme_ta_response_per_sample"].shape[0] == 8
    assert "hcctme_ta_response" not in adata.uns


def test_patient_key_pools_biopsies(ta_counts):
    multi = ta_counts.copy()
    multi.obs["biopsy"] = multi.obs["patient"].astype(str) + "_" + (np.arange(multi.n_obs) % 2).astype(str)
    pooled = hc.tl.ta_response(multi, sample_key="biopsy", condition_key="response", reference="responder",
                               patient_key="patient", copy=True)
    direct = hc.tl.ta_response(ta_counts, **ARGS, copy=True)
    pd.testing.assert_frame_equal(pooled.uns["hcctme_ta_response"], direct.uns["hcctme_ta_response"])


def test_scores_on_the_fly_with_the_library():
    from hcctme.datasets import simulate_cohort

    a = simulate_cohort(8, 200, n_genes=1500, random_state=0)
    obsm_before = set(a.obsm)
    hc.tl.ta_response(a, **ARGS, aggregate="mean")
    assert set(a.obsm) == obsm_before  # scores computed on the side, not written
    per_sample = a.uns["hcctme_ta_response_per_sample"]
    assert per_sample.shape[0] == 8
    assert {c for c in per_sample.columns if c.startswith("TA_")} == set(TA_SIGNATURES) | {TREG_TEFF}
    assert a.uns["hcctme_ta_response"]["pvalue"].between(0, 1).all()
    assert "tl.score" in a.uns["hcctme_ta_response_params"]["scores"]


def test_a_level_left_with_one_sample_by_min_cells_is_too_few_cells_in_the_users_terms(adata, digest):
    """It was a ValueError of the inner comparison naming obs['condition'], a column the user does not have."""
    data = adata.copy()
    data.obs["outcome"] = data.obs["response"].astype(str)
    thin = data.obs["patient"].isin(["P05", "P06", "P07"]).to_numpy()  # three of the four resistors
    data = data[~thin | (np.arange(data.n_obs) % 10 == 0)].copy()  # each down to 6 cells
    before = digest(data)
    with pytest.raises(hc.tl.TooFewCellsError, match=r"level\(s\) 'resistor' \(1 sample\) of obs\['outcome'\]"):
        hc.tl.ta_response(data, sample_key="patient", condition_key="outcome", reference="responder",
                          aggregate="mean", min_cells=10)
    assert digest(data) == before
    hc.tl.ta_response(data, sample_key="patient", condition_key="outcome", reference="responder", aggregate="mean",
                      min_cells=5)
    assert len(hc.get.ta_response(data)) > 0


def test_errors(adata, digest):
    before = digest(adata)
    ln = adata.copy()
    ln.layers["counts"] = ln.layers["counts"] * 0.5
    cases = [
        (adata, dict(sample_key="patient", condition_key="response"), ValueError, "reference"),
        (adata, dict(sample_key="patient", reference="responder"), ValueError, "condition_key"),
        (adata, dict(sample_key="patient", patient_key="pair"), ValueError, "condition_key"),
        (adata, dict(sample_key="nope"), KeyError, "nope"),
        (adata, dict(sample_key="patient", min_cells=1000), ValueError,
         r"too few cells.*; lower min_cells \(min_cells=1 for one observation per sample"),
        (adata, dict(ARGS, reference="x"), ValueError, "not a level"),
        (adata, dict(ARGS, aggregate="sum"), ValueError, "aggregate"),
        (ln, dict(ARGS), ValueError, "raw counts"),
        (adata, dict(ARGS), hc.tl.TooFewGenesError, "T\\+A signatures"),  # cohort genes G0.. are not symbols
    ]
    for data, kwargs, exc, message in cases:
        snapshot = digest(data)
        with pytest.raises(exc, match=message):
            hc.tl.ta_response(data, **kwargs)
        assert digest(data) == snapshot, kwargs
    assert digest(adata) == before


def test_samples_min_cells_leaves_out_take_no_part_in_the_others_values(ta_counts):
    """Sweep 54 (Lu 2022): the pseudobulk z-scores were taken over every sample, the small ones included, so a
    left-out sample moved the values of the kept ones (TA_ABRS by up to 0.10)."""
    thin = ta_counts[~((ta_counts.obs["patient"] == "p0").to_numpy() & (np.arange(ta_counts.n_obs) % 10 != 0))].copy()
    assert (thin.obs["patient"] == "p0").sum() < 30
    with_small = hc.tl.ta_response(thin, **ARGS, min_cells=30, copy=True)
    by_hand = hc.tl.ta_response(thin[thin.obs["patient"] != "p0"].copy(), **ARGS, min_cells=30, copy=True)
    a = with_small.uns["hcctme_ta_response_per_sample"].set_index("sample")
    b = by_hand.uns["hcctme_ta_response_per_sample"].set_index("sample")
    assert "p0" not in a.index
    pd.testing.assert_frame_equal(a, b)


def test_a_pair_min_cells_breaks_is_left_out_whole(ta_counts):
    """Sweep 54: a paired run crashed in the inner comparison ('a pair with one member ... obs['_block']')."""
    data = ta_counts.copy()
    data.obs["visit"] = np.where(np.arange(data.n_obs) % 2 == 0, "pre", "on")
    data.obs["biopsy"] = data.obs["patient"].astype(str) + "_" + data.obs["visit"]
    drop = ((data.obs["biopsy"] == "p0_on").to_numpy() & (np.arange(data.n_obs) % 20 != 1))
    data = data[~drop].copy()
    hc.tl.ta_response(data, sample_key="biopsy", condition_key="visit", reference="pre", patient_key="patient",
                      aggregate="pseudobulk", min_cells=20)
    kept = set(hc.get.ta_response(data, per_sample=True)["sample"])
    assert not {"p0_on", "p0_pre"} & kept and len(kept) == 14


def test_a_covariate_named_condition_is_a_covariate():
    """Sweep 58: the unit-level table named its condition column "condition", which the covariate replaced."""
    adata = hc.datasets.simulate_cohort(8, 60, n_genes=300, random_state=1)
    adata.obs["condition"] = adata.obs["age"].astype(float)
    adata.obs["age_copy"] = adata.obs["age"].astype(float)
    kw = dict(sample_key="patient", condition_key="response", reference="responder")
    hc.tl.ta_response(adata, covariates="age_copy", key_added="ta_a", **kw)
    hc.tl.ta_response(adata, covariates="condition", key_added="ta_b", **kw)
    first = hc.get.ta_response(adata, "ta_a").sort_values("feature").reset_index(drop=True)
    second = hc.get.ta_response(adata, "ta_b").sort_values("feature").reset_index(drop=True)
    np.testing.assert_allclose(first["pvalue"], second["pvalue"], rtol=1e-12)


def test_per_cell_score_means_warn_of_a_depth_gap_and_the_pseudobulk_does_not_need_to(tmp_path):
    """Sweep 58: null cohorts with the resistors read 2x deeper put 0.27 of aggregate="mean" tests at p < 0.05
    (the pseudobulk's CPM, 0.03); the mean path now names pp.equalize_depth."""
    from benchmarks.compare_depth_null import cohort

    adata = cohort(0, depth_gap=True)
    kw = dict(sample_key="patient", condition_key="response", reference="responder")
    with pytest.warns(UserWarning, match=r"differ in sequencing depth .*hcctme\.pp\.equalize_depth"):
        hc.tl.ta_response(adata, aggregate="mean", **kw)
    assert hc.get.params(adata, "hcctme_ta_response")["depth"]["fold"] > 1.9
    hc.tl.ta_response(adata, **kw)  # the pseudobulk: depth is normalised by the CPM
    assert "depth" not in hc.get.params(adata, "hcctme_ta_response")
    adata.write_h5ad(tmp_path / "ta.h5ad")  # the record stays writable


def test_the_log_names_both_tables_and_not_the_private_comparison(ta_counts, caplog):
    """The inner comparison logged "-> uns['_ta_compare']", a key never written, and the comparison's own key was
    never named; compare counted padj < 0.1 where every other tool counts padj < Defaults.ALPHA."""
    import logging

    with caplog.at_level(logging.INFO, logger="hcctme"):
        hc.tl.ta_response(ta_counts, **ARGS, copy=True)
    assert "_ta_compare" not in caplog.text
    assert ("-> uns['hcctme_ta_response_per_sample'], compared by response -> uns['hcctme_ta_response']"
            in caplog.text)
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="hcctme"):
        hc.tl.compare(ta_counts, condition_key="response", sample_key="patient", reference="responder",
                      features="genes", copy=True)
    assert "with padj < 0.05 -> uns['hcctme_compare']" in caplog.text


def test_scores_made_on_the_side_read_the_layer_the_stored_scores_read():
    """Sweep 63: after pp.equalize_depth and tl.score(layer=the equalised layer), whose scores lack a T+A signature
    (left out on coverage), aggregate="mean" scored every T+A signature again on .X, while its depth record said the
    scores read the equalised layer (no warning: a depth-confounded test recorded as equalised). The side scores now
    read the stored scores' layer, and the record names the genes each signature read."""
    from benchmarks.compare_depth_null import cohort as depth_cohort

    adata = depth_cohort(0, depth_gap=True)
    hc.pp.equalize_depth(adata, "patient")
    hc.tl.score(adata, list(TA_SIGNATURES)[1:], layer="hcctme_depth_equalized")  # no TA_ABRS stored
    kw = dict(sample_key="patient", condition_key="response", reference="responder", aggregate="mean")
    hc.tl.ta_response(adata, **kw)
    record = hc.get.params(adata, "hcctme_ta_response")
    assert record["depth"] == {"scored_on": "hcctme_depth_equalized"}
    assert record["scores"] == "mean of per-cell tl.score(method='ucell', layer='hcctme_depth_equalized')"
    side = adata.copy()
    hc.tl.score(side, list(TA_SIGNATURES), layer="hcctme_depth_equalized", key_added="all_ta")
    expected = hc.get.scores(side, "all_ta").groupby(adata.obs["patient"].astype(str).to_numpy()).mean()
    got = hc.get.ta_response(adata, per_sample=True).set_index("sample")
    columns = [c for c in TA_SIGNATURES if c in got]
    np.testing.assert_allclose(got[columns].to_numpy(), expected.loc[got.index, columns].to_numpy(), rtol=1e-6)
    assert record["genes_used"]["TA_TREG"] == list(side.uns["all_ta_params"]["genes_used"]["TA_TREG"])
    del adata.layers["hcctme_depth_equalized"]  # the layer the stored scores read is gone: said so, with the fix
    with pytest.raises(KeyError, match=r"hcctme_depth_equalized.*which adata no longer holds.*equalize_depth"):
        hc.tl.ta_response(adata, **kw)


def test_the_pl_compare_box_plots_read_the_t_a_per_sample_table(ta_counts):
    """Sweep 63: pl.compare(adata, key=<ta_response key>) looked only for uns[key + "_values"], which ta_response
    never writes, and told the user to pass it."""
    import matplotlib.pyplot as plt

    adata = ta_counts.copy()
    hc.tl.ta_response(adata, sample_key="patient", condition_key="response", reference="responder")
    axes = hc.pl.compare(adata, key="hcctme_ta_response", features=["TA_TREG"])
    per_sample = hc.get.ta_response(adata, per_sample=True)
    drawn = np.sort(np.concatenate([c.get_offsets()[:, 1] for c in axes[0].collections]))
    np.testing.assert_allclose(drawn, np.sort(per_sample["TA_TREG"].to_numpy()))
    plt.close("all")
