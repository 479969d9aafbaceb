"""Property-based tests (hypothesis) of the scoring engine and of tl.compare.

Scores: permuting cells permutes scores, permuting genes changes nothing, neither do chunk_size,
n_jobs, the storage format (dense / CSR / CSC) or copy=True; UCell is rank-based, so positive
per-cell rescaling and log1p leave its scores unchanged. Compare: relabelling samples or permuting
cells leaves the table unchanged, swapping the reference flips the effects, p-values are in [0, 1]
and padj >= pvalue.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
from anndata import AnnData
from hypothesis import HealthCheck, given, reject, settings
from hypothesis import strategies as st

import hcctme as hc

SETTINGS = settings(max_examples=25, deadline=None, derandomize=True, database=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


# --------------------------------------------------------------------------------------------------
# strategies
# --------------------------------------------------------------------------------------------------
@st.composite
def expression(draw, integer: bool | None = None, min_genes: int = 12) -> np.ndarray:
    """A small cells x genes matrix (<= 40 x 60), sparse-ish, with ties and empty rows."""
    n_cells = draw(st.integers(2, 40))
    n_genes = draw(st.integers(min_genes, 60))
    density = draw(st.sampled_from([0.1, 0.3, 0.6, 1.0]))
    integer = draw(st.booleans()) if integer is None else integer
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    values = rng.integers(1, 8, (n_cells, n_genes)) if integer else rng.gamma(1.0, 2.0, (n_cells, n_genes))
    X = np.where(rng.random((n_cells, n_genes)) < density, values, 0).astype(np.float32)
    if n_cells > 2 and draw(st.booleans()):
        X[draw(st.integers(0, n_cells - 1))] = 0  # an empty cell
    return X


@st.composite
def gene_sets(draw, n_genes: int) -> dict:
    """1-4 signatures over G0..G{n-1}: >= 3 present genes each, some absent genes, some signed."""
    present = st.lists(st.integers(0, n_genes - 1), min_size=3, max_size=min(12, n_genes), unique=True)
    absent = st.lists(st.sampled_from([f"ABSENT{i}" for i in range(8)]), max_size=3, unique=True)
    sets = {}
    for i in range(draw(st.integers(1, 4))):
        up = [f"G{j}" for j in draw(present)] + draw(absent)
        if draw(st.booleans()):
            down = [f"G{j}" for j in draw(st.lists(st.integers(0, n_genes - 1), min_size=1, max_size=5,
                                                   unique=True))]
            sets[f"S{i}"] = {"up": up, "down": [g for g in down if g not in up] or ["ABSENT_DOWN"]}
        else:
            sets[f"S{i}"] = up
    return sets


def make_adata(X, genes=None) -> AnnData:
    genes = [f"G{j}" for j in range(X.shape[1])] if genes is None else genes
    obs = pd.DataFrame(index=[f"c{i}" for i in range(X.shape[0])])
    return AnnData(X, obs=obs, var=pd.DataFrame(index=genes))


def score(adata, sets, *, method="ucell", **kw) -> AnnData | None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            return hc.tl.score(adata, sets, method=method, min_coverage=0.0, **kw)
        except ValueError as err:
            # scanpy's score_genes semantics: a signature filling all of its expression bins has no
            # control genes; that refusal is tested elsewhere, it is not a property of the scores
            if method == "mean" and "no control genes" in str(err):
                reject()
            raise


def scores(X, sets, *, method="ucell", genes=None, **kw) -> pd.DataFrame:
    adata = make_adata(X, genes)
    score(adata, sets, method=method, **kw)
    return adata.obsm["hcctme_scores"]


case = st.data()


def draw_case(data, integer: bool | None = None, method: str = "ucell"):
    X = data.draw(expression(integer, min_genes=40 if method == "mean" else 12))
    return X, data.draw(gene_sets(X.shape[1]))


# --------------------------------------------------------------------------------------------------
# scoring engine
# --------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("method", ["ucell", "mean"])
@SETTINGS
@given(data=case)
def test_permuting_cells_permutes_scores(method, data):
    X, sets = draw_case(data, method=method)
    perm = data.draw(st.permutations(range(X.shape[0])))
    base = scores(X, sets, method=method)
    moved = scores(X[list(perm)], sets, method=method)
    np.testing.assert_allclose(moved.to_numpy(), base.to_numpy()[list(perm)], rtol=0, atol=1e-6)


@SETTINGS
@given(data=case)
def test_permuting_genes_leaves_ucell_scores_unchanged(data):
    X, sets = draw_case(data)
    perm = list(data.draw(st.permutations(range(X.shape[1]))))
    genes = [f"G{j}" for j in range(X.shape[1])]
    base = scores(X, sets)
    moved = scores(X[:, perm], sets, genes=[genes[j] for j in perm])
    np.testing.assert_array_equal(moved.to_numpy(), base.to_numpy())


@pytest.mark.parametrize("method", ["ucell", "mean"])
@SETTINGS
@given(data=case, chunk=st.integers(1, 45))
def test_chunk_size_does_not_change_scores(method, data, chunk):
    X, sets = draw_case(data, method=method)
    base = scores(sp.csr_matrix(X), sets, method=method)
    chunked = scores(sp.csr_matrix(X), sets, method=method, chunk_size=chunk)
    np.testing.assert_allclose(chunked.to_numpy(), base.to_numpy(), rtol=0, atol=1e-6)


@SETTINGS
@given(data=case)
def test_n_jobs_does_not_change_scores(data):
    X, sets = draw_case(data)
    one = scores(sp.csr_matrix(X), sets, n_jobs=1, chunk_size=7)
    two = scores(sp.csr_matrix(X), sets, n_jobs=2, chunk_size=7)
    np.testing.assert_array_equal(one.to_numpy(), two.to_numpy())


@pytest.mark.parametrize("method", ["ucell", "mean", "aucell"])
@SETTINGS
@given(data=case)
def test_dense_csr_and_csc_agree(method, data):
    X, sets = draw_case(data, method=method)
    dense = scores(X, sets, method=method).to_numpy()
    for fmt in (sp.csr_matrix, sp.csc_matrix):
        np.testing.assert_allclose(scores(fmt(X), sets, method=method).to_numpy(), dense, rtol=0, atol=1e-5)


@SETTINGS
@given(data=case, exponents=st.lists(st.integers(-4, 4), min_size=40, max_size=40))
def test_ucell_ignores_positive_rescaling_of_a_cell(data, exponents):
    X, sets = draw_case(data)
    factors = np.exp2(np.asarray(exponents[: X.shape[0]], dtype=np.float32))[:, None]  # exact in float32
    np.testing.assert_array_equal(scores(X * factors, sets).to_numpy(), scores(X, sets).to_numpy())


@SETTINGS
@given(data=case)
def test_ucell_ignores_log1p(data):
    X, sets = draw_case(data, integer=True)  # distinct small integers stay distinct after log1p
    np.testing.assert_array_equal(scores(np.log1p(X), sets).to_numpy(), scores(X, sets).to_numpy())


@pytest.mark.parametrize("method", ["ucell", "mean"])
@SETTINGS
@given(data=case)
def test_copy_equals_in_place(method, data):
    X, sets = draw_case(data, method=method)
    in_place = make_adata(sp.csr_matrix(X))
    original = make_adata(sp.csr_matrix(X))
    score(in_place, sets, method=method)
    copied = score(original, sets, method=method, copy=True)
    assert "hcctme_scores" not in original.obsm and "hcctme_scores" not in original.uns
    pd.testing.assert_frame_equal(copied.obsm["hcctme_scores"], in_place.obsm["hcctme_scores"])
    assert copied.uns["hcctme_scores_params"]["genes_used"] == in_place.uns["hcctme_scores_params"]["genes_used"]
    recorded, again = (dict(a.uns["hcctme_scores_params"]["params"]) for a in (copied, in_place))
    pd.testing.assert_frame_equal(recorded.pop("signatures"), again.pop("signatures"))  # the sets, as a net
    assert recorded == again


@SETTINGS
@given(data=case)
def test_ucell_scores_are_in_unit_interval(data):
    X, sets = draw_case(data)
    values = scores(X, sets).to_numpy()
    assert np.all(np.isfinite(values)) and values.min() >= 0.0 and values.max() <= 1.0


# --------------------------------------------------------------------------------------------------
# compare
# --------------------------------------------------------------------------------------------------
@st.composite
def cohort(draw) -> AnnData:
    """2-3 condition levels x 2-5 samples, 1-3 score columns, 2-4 cell types (all in every sample)."""
    n_levels = draw(st.integers(2, 3))
    per_level = [draw(st.integers(2, 5)) for _ in range(n_levels)]
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    n_types = draw(st.integers(2, 4))
    shift = draw(st.floats(0.0, 2.0))
    rows = []
    for lv, n_samples in enumerate(per_level):
        for s in range(n_samples):
            n_cells = n_types + int(rng.integers(1, 7))  # every sample holds every cell type
            types = np.r_[np.arange(n_types), rng.integers(0, n_types, n_cells - n_types)]
            rows += [(f"L{lv}", f"L{lv}_s{s}", f"T{t}") for t in types]
    obs = pd.DataFrame(rows, columns=["condition", "sample", "cell_type"])
    obs.index = [f"c{i}" for i in range(len(obs))]
    n_scores = draw(st.integers(1, 3))
    level = obs["condition"].str[1:].astype(int).to_numpy()[:, None]
    values = rng.normal(size=(len(obs), n_scores)) + shift * level
    adata = AnnData(np.zeros((len(obs), 1), dtype=np.float32), obs=obs)
    adata.obsm["hcctme_scores"] = pd.DataFrame(values, index=obs.index, columns=[f"F{j}" for j in range(n_scores)])
    return adata


FEATURE_KW = {
    "scores-mannwhitney": {"features": "scores", "method": "mannwhitney", "min_cells": 1},
    "scores-welch": {"features": "scores", "method": "welch", "min_cells": 1},
    "scores-by-group": {"features": "scores", "groupby": "cell_type", "min_cells": 1},
    "composition": {"features": "composition", "groupby": "cell_type", "min_cells": 1},
}
KEY = ["feature", "group", "contrast"]


def run_compare(adata, reference="L0", **kw) -> pd.DataFrame:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        out = hc.tl.compare(adata, condition_key="condition", sample_key="sample", reference=reference, copy=True,
                            **kw)
    table = out.uns["hcctme_compare"]
    return table.sort_values(KEY).reset_index(drop=True)


@pytest.mark.parametrize("kind", list(FEATURE_KW))
@SETTINGS
@given(adata=cohort(), data=st.data())
def test_compare_ignores_sample_names_and_cell_order(kind, adata, data):
    kw = FEATURE_KW[kind]
    base = run_compare(adata, **kw)
    samples = sorted(adata.obs["sample"].unique())
    names = data.draw(st.permutations([f"patient_{i}" for i in range(len(samples))]))
    relabelled = adata.copy()
    relabelled.obs["sample"] = adata.obs["sample"].map(dict(zip(samples, names, strict=True)))
    pd.testing.assert_frame_equal(run_compare(relabelled, **kw), base, check_exact=False, rtol=1e-10)
    perm = list(data.draw(st.permutations(range(adata.n_obs))))
    pd.testing.assert_frame_equal(run_compare(adata[perm].copy(), **kw), base, check_exact=False, rtol=1e-10)


@pytest.mark.parametrize("kind", list(FEATURE_KW))
@SETTINGS
@given(adata=cohort())
def test_swapping_reference_flips_effects(kind, adata):
    kw = FEATURE_KW[kind]
    forward = run_compare(adata, reference="L0", **kw)
    forward = forward[forward["contrast"] == "L1 vs L0"].set_index(["feature", "group"]).sort_index()
    backward = run_compare(adata, reference="L1", **kw)
    backward = backward[backward["contrast"] == "L0 vs L1"].set_index(["feature", "group"]).sort_index()
    assert forward.index.equals(backward.index)
    np.testing.assert_allclose(backward["effect"], -forward["effect"], atol=1e-12)
    np.testing.assert_allclose(backward["pvalue"], forward["pvalue"], rtol=1e-9, atol=1e-12)
    np.testing.assert_array_equal(backward["n_reference"], forward["n_other"])
    np.testing.assert_allclose(backward["mean_reference"], forward["mean_other"], rtol=1e-12)
    flipped = forward["direction"].map({"up": "down", "down": "up"}).fillna(forward["direction"])
    np.testing.assert_array_equal(backward["direction"], flipped)


@pytest.mark.parametrize("kind", list(FEATURE_KW))
@SETTINGS
@given(adata=cohort())
def test_pvalues_are_probabilities_and_padj_not_smaller(kind, adata):
    table = run_compare(adata, **FEATURE_KW[kind])
    p, q = table["pvalue"].to_numpy(float), table["padj"].to_numpy(float)
    assert np.all(np.isfinite(p)), table
    assert np.all((p >= 0) & (p <= 1))
    assert np.all((q >= p - 1e-12) & (q <= 1))
