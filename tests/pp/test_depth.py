"""pp.equalize_depth: counts thinned to the shallowest sample's depth, and score comparisons calibrated with it."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
from anndata import AnnData

import hcctme
from benchmarks.compare_depth_null import SIGNATURES, cohort


def sc_normalise(adata: AnnData) -> None:
    """log1p(CP10k) of the counts into X."""
    import scanpy as sc

    sc.pp.normalize_total(adata, target_sum=1e4)
    sc.pp.log1p(adata)

KEY = "hcctme_depth_equalized"


@pytest.fixture(scope="module")
def deep_resistors():
    """A null cohort whose responders were read half as deep."""
    return cohort(0, depth_gap=True)


def test_each_sample_is_thinned_to_the_shallowest_median(deep_resistors):
    adata = deep_resistors.copy()
    hcctme.pp.equalize_depth(adata, "patient")
    record = hcctme.get.params(adata, KEY)
    depth = record["depth"].set_index("sample")
    assert depth["median_counts"].min() == record["target_counts"]
    np.testing.assert_allclose(depth["fraction"], np.minimum(1.0, record["target_counts"] / depth["median_counts"]))
    layer, counts = adata.layers[KEY], adata.layers["counts"]
    assert sp.issparse(layer) and layer.dtype == np.float32
    samples = adata.obs["patient"].astype(str).to_numpy()
    detected = pd.Series(np.diff(sp.csr_matrix(layer).indptr)).groupby(samples).median()
    before = pd.Series(np.diff(sp.csr_matrix(counts).indptr)).groupby(samples).median()
    thinned = depth.index[depth["fraction"] < 0.9]
    assert (detected[thinned] < before[thinned]).all()  # the deep samples lose genes to the thinning
    kept = depth.index[depth["fraction"] == 1.0]  # the shallowest sample is only log-normalised
    rows = np.flatnonzero(np.isin(samples, kept))
    total = np.asarray(counts[rows].sum(axis=1)).ravel()
    expected = np.log1p(counts[rows].toarray() * (1e4 / total[:, None]))
    np.testing.assert_allclose(layer[rows].toarray(), expected, rtol=1e-5, atol=1e-6)


def test_the_layer_does_not_follow_the_rows_order(deep_resistors):
    adata = deep_resistors.copy()
    hcctme.pp.equalize_depth(adata, "patient")
    rows = np.random.default_rng(1).permutation(adata.n_obs)
    shuffled = deep_resistors[rows].copy()
    hcctme.pp.equalize_depth(shuffled, "patient")
    np.testing.assert_array_equal(shuffled.layers[KEY].toarray(), adata.layers[KEY][rows].toarray())


def test_bad_input_is_refused_and_leaves_the_anndata_untouched(deep_resistors, digest):
    adata = deep_resistors.copy()
    before = digest(adata)
    with pytest.raises(KeyError, match="no 'raw'; pass counts_layer="):
        hcctme.pp.equalize_depth(adata, "patient", counts_layer="raw")
    adata.layers["lognorm"] = adata.X.copy()
    before = digest(adata)
    with pytest.raises(ValueError, match="does not hold raw integer counts"):
        hcctme.pp.equalize_depth(adata, "patient", counts_layer="lognorm")
    with pytest.raises(ValueError, match=r"would overwrite adata\.layers\['lognorm'\]"):
        hcctme.pp.equalize_depth(adata, "patient", key_added="lognorm")
    with pytest.raises(KeyError, match="donor"):
        hcctme.pp.equalize_depth(adata, "donor")
    assert digest(adata) == before


@pytest.mark.slow
def test_score_comparisons_are_calibrated_on_the_equalised_layer_and_warned_of_on_x():
    """Twelve null cohorts, responders read half as deep: on X the per-sample UCell means read the depth as an
    effect (benchmarks/compare_depth_null.py, 60 cohorts: 0.47 of the tests at p < 0.05); on the equalised layer
    the rate is nominal, and tl.compare warns of the depth where the levels differ 1.5-fold (the simulator's
    patients differ in depth too, so a 2x thinning does not always reach it), never on the equalised scores."""
    hits: dict[str, list[bool]] = {"X": [], "equalised": []}
    warned = 0
    for seed in range(12):
        adata = cohort(seed, depth_gap=True)
        hcctme.pp.equalize_depth(adata, "patient")
        for scored_on, layer in (("X", None), ("equalised", KEY)):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                hcctme.tl.score(adata, SIGNATURES, layer=layer)
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                hcctme.tl.compare(adata, condition_key="response", sample_key="patient", reference="responder")
            said = bool([w for w in caught if "differ in sequencing depth" in str(w.message)])
            depth = hcctme.get.params(adata, "hcctme_compare")["depth"]
            if scored_on == "X":
                assert said == (depth["fold"] >= 1.5 or depth["pvalue"] < 0.05), depth
                warned += said
            else:
                assert not said and depth == {"scored_on": KEY}
            hits[scored_on].extend((hcctme.get.compare(adata)["pvalue"] < 0.05).tolist())
    assert warned >= 9, warned
    assert np.mean(hits["X"]) > 0.25, np.mean(hits["X"])
    assert np.mean(hits["equalised"]) <= 0.10, np.mean(hits["equalised"])
    control = cohort(0, depth_gap=False)
    hcctme.tl.score(control, SIGNATURES)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        hcctme.tl.compare(control, condition_key="response", sample_key="patient", reference="responder")
    assert not [w for w in caught if "sequencing depth" in str(w.message)]
    assert hcctme.get.params(control, "hcctme_compare")["depth"]["fold"] < 1.5


@pytest.mark.parametrize("tool", ["equalize_depth", "crosstalk"])
@pytest.mark.parametrize("edit,match", [("fraction", r"does not hold raw integer counts.*\(row 2598 holds 0\.5\)"),
                                        ("negative", r"does not hold raw integer counts.*\(row 2598 holds -3\)"),
                                        ("nan", r"counts.*\(row 2598 holds nan, NaN or infinite"),
                                        ("inf", r"counts.*\(row 2598 holds inf, NaN or infinite")])
def test_every_count_is_checked_before_thinning(tool, edit, match, digest):
    """The counts check read a 2,000-row sample: a non-integer count in a cell outside it was rounded silently
    and a NaN reached the thinned layer. One value in a cell outside that sample is now enough to refuse; a
    boolean layer is refused as before."""
    adata = hcctme.datasets.simulate_cohort(4, 650, n_genes=300, random_state=0)
    assert adata.n_obs == 2600
    counts = adata.layers["counts"].toarray().astype(np.float32)
    counts[2598, 0] = {"fraction": 0.5, "negative": -3.0, "nan": np.nan, "inf": np.inf}[edit]  # not sampled
    adata.layers["counts"] = sp.csr_matrix(counts)
    before = digest(adata)
    with pytest.raises(ValueError, match=match):
        if tool == "equalize_depth":
            hcctme.pp.equalize_depth(adata, "patient")
        else:
            hcctme.tl.crosstalk(adata, groupby="cell_type", sample_key="patient", condition_key="response",
                                reference="responder", n_perms=None)
    assert digest(adata) == before


def test_a_boolean_counts_layer_is_refused(digest):
    adata = hcctme.datasets.simulate_cohort(4, 100, n_genes=300, random_state=0)
    adata.layers["counts"] = adata.layers["counts"] > 0
    before = digest(adata)
    with pytest.raises(TypeError, match="dtype bool; expected numbers"):
        hcctme.pp.equalize_depth(adata, "patient")
    assert digest(adata) == before


@pytest.mark.parametrize("tool", ["equalize_depth", "crosstalk"])
def test_cells_of_one_name_are_refused_where_names_key_the_draws(tool, digest):
    """Sweep 63: each count's thinning draw is keyed by its cell's name, so barcodes repeated across samples (a
    concat without index_unique) gave distinct cells the same draws; the names are now refused with the fix."""
    adata = hcctme.datasets.simulate_cohort(6, 300, n_genes=300, random_state=0)
    adata.obs_names = [f"BC{i % 300:03d}" for i in range(adata.n_obs)]
    before = digest(adata)
    with pytest.raises(ValueError, match=r"cell name\(s\) are duplicated.*obs_names_make_unique"):
        if tool == "equalize_depth":
            hcctme.pp.equalize_depth(adata, "patient")
        else:
            hcctme.tl.crosstalk(adata, groupby="cell_type", sample_key="patient", condition_key="response",
                                reference="responder", counts_layer="counts")
    assert digest(adata) == before
    if tool == "equalize_depth":  # a gene's name keys its draws too (review of sweep 63)
        adata.obs_names_make_unique()
        adata.var_names = [*adata.var_names[:-1], adata.var_names[0]]
        before = digest(adata)
        with pytest.raises(ValueError, match=r"gene name\(s\) are duplicated"):
            hcctme.pp.equalize_depth(adata, "patient")
        assert digest(adata) == before


def test_check_input_names_a_fix_that_works_and_a_counts_layer_with_nan():
    """Sweep 63: duplicated genes of .raw were met with adata.var_names_make_unique(), which leaves .raw as it is;
    a counts layer holding NaN was reported as integer counts, which the gene-level tools then refused."""
    adata = hcctme.datasets.simulate_cohort(4, 60, n_genes=300, random_state=0)
    raw = adata.copy()
    raw.var_names = [*raw.var_names[:-1], raw.var_names[0]]
    adata.raw = raw
    [issue] = [i for i in hcctme.pp.check_input(adata)["issues"] if "duplicated gene" in i]
    assert "raw = adata.raw.to_adata(); raw.var_names_make_unique(); adata.raw = raw" in issue
    with pytest.raises(ValueError, match=r"in adata.raw, which is read here: raw = adata.raw.to_adata\(\)"):
        hcctme.tl.score(adata)
    counts = adata.layers["counts"].toarray().astype(np.float32)
    counts[5, 3] = np.nan
    adata.layers["counts"] = sp.csr_matrix(counts)
    report = hcctme.pp.check_input(adata, use_raw=False)
    assert report["counts_layer"] is False
    assert [i for i in report["issues"] if "counts" in i] == [
        "layers['counts'] holds NaN or infinite values besides integer counts; pseudobulk and compare need raw "
        "counts: replace them with the counts they should be"]


def test_a_small_depth_gap_every_resistor_shares_is_warned_of():
    """Sweep 63: the warning needed a 1.5-fold gap, but null cohorts whose resistors were all read 1.1-1.3x deeper
    put 0.25-0.88 of the score tests at p < 0.05 with no warning; a gap that separates the levels' samples beyond
    chance (a permutation Kruskal-Wallis p < 0.05; within pairs for a paired design) is warned of now, and the record
    holds that p; a perfect split of 3 vs 3 (exact p 0.1) is no such gap."""
    rng = np.random.default_rng(0)
    genes = [g for s in ("TREG", "CD8_TEFF", "TAM2_SPP1") for g in hcctme.sig.library()[s].genes_up]
    genes = list(dict.fromkeys(genes)) + [f"FILL{i}" for i in range(200)]
    base = rng.lognormal(0.0, 1.2, len(genes))
    blocks, obs = [], []
    for i in range(12):
        fold = 1.2 if i >= 6 else 1.0  # every resistor read 1.2x deeper
        profile = base * rng.lognormal(0.0, 0.3, len(genes))
        lib = 1500.0 * fold * rng.lognormal(0.0, 0.35, 150)
        blocks.append(rng.poisson(lib[:, None] * (profile / profile.sum())[None, :]))
        obs += [(f"P{i:02d}", "resistor" if i >= 6 else "responder")] * 150
    counts = sp.csr_matrix(np.vstack(blocks).astype(np.float32))
    adata = AnnData(counts, obs=pd.DataFrame(obs, columns=["patient", "response"],
                                             index=[f"c{j}" for j in range(len(obs))]),
                    var=pd.DataFrame(index=genes))
    adata.layers["counts"] = counts.copy()
    sc_normalise(adata)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        hcctme.tl.score(adata, ["TREG", "CD8_TEFF", "TAM2_SPP1"])
    with pytest.warns(UserWarning, match=r"differ in sequencing depth .*1\.[12]\d-fold; the samples' depths by "
                                         r"condition: p = 0\.00"):
        hcctme.tl.compare(adata, condition_key="response", sample_key="patient", reference="responder")
    depth = hcctme.get.params(adata, "hcctme_compare")["depth"]
    assert depth["fold"] < 1.5 and depth["pvalue"] < 0.01
    # the p is read as the comparison reads the samples: exact at 3 vs 3, within pairs for a paired design
    from hcctme.tl._depth_gap import _separation

    levels = pd.Series(["a"] * 3 + ["b"] * 3, index=[f"s{i}" for i in range(6)])
    assert _separation(np.log([1000, 1010, 1020, 1030, 1040, 1050]), levels, None) == pytest.approx(0.1)
    patients = pd.Series(np.repeat([f"p{i}" for i in range(8)], 2), index=[f"u{i}" for i in range(16)])
    paired = pd.Series(["pre", "on"] * 8, index=patients.index)
    depth = np.repeat(np.random.default_rng(1).lognormal(7.5, 0.5, 8), 2) * np.tile([1.0, 1.25], 8)
    assert _separation(np.log(depth), paired, None) > 0.05  # across patients the gap drowns in their spread
    assert _separation(np.log(depth), paired, patients) == pytest.approx(2 / 256)  # every pair: on deeper
