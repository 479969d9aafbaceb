"""Depth thinning drawn by cell and gene name: its binomial draws, and that no order or chunking moves them."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
from scipy import stats

from hcctme.pp import _thinning
from hcctme.tl import _crosstalk_fast


def _thinning_of(n_cells: int, n_genes: int, fraction: np.ndarray, seed: int = 1) -> _thinning.Thinning:
    return _thinning.Thinning(fraction=fraction, cell_keys=_thinning.name_keys(f"c{i}" for i in range(n_cells)),
                              gene_keys=_thinning.name_keys(f"g{j}" for j in range(n_genes)), seed=seed)


@pytest.mark.parametrize(("n", "p"), [(1, 0.3), (2, 0.5), (7, 0.9), (40, 0.2), (150, 0.97), (900, 0.5),
                                      (5000, 0.999)])
def test_binomial_draws_follow_the_binomial_distribution(n: int, p: float):
    draws = _thinning.binomial(np.full(40_000, n), np.full(40_000, p), np.random.default_rng(n).random(40_000))
    assert draws.min() >= 0 and draws.max() <= n
    support = np.arange(n + 1)
    expected = stats.binom.pmf(support, n, p) * len(draws)
    observed = np.bincount(draws, minlength=n + 1)
    keep = expected >= 5  # pool the tails, as a chi-square test needs
    tail = [observed[~keep].sum()] if (~keep).any() else []
    tail_expected = [expected[~keep].sum()] if (~keep).any() else []
    scale = len(draws) / expected.sum()
    chi2 = stats.chisquare(np.r_[observed[keep], tail], np.r_[expected[keep], tail_expected] * scale)
    assert chi2.pvalue > 1e-4, (n, p, chi2)


def test_uniforms_are_uniform_and_fixed_by_seed_and_names():
    cells = _thinning.name_keys(f"cell{i}" for i in range(20_000))
    genes = _thinning.name_keys(["CD8A"] * 20_000)
    u = _thinning.uniforms(3, cells, genes)
    assert u.min() >= 0.0 and u.max() < 1.0
    assert stats.kstest(u, "uniform").pvalue > 1e-3
    np.testing.assert_array_equal(u, _thinning.uniforms(3, cells, genes))
    assert not np.array_equal(u, _thinning.uniforms(4, cells, genes))
    other_gene = _thinning.uniforms(3, cells, _thinning.name_keys(["CD8B"] * 20_000))
    assert abs(np.corrcoef(u, other_gene)[0, 1]) < 0.05
    assert _thinning.name_keys(["a", "b", "a"]).tolist()[0] == _thinning.name_keys(["a"]).tolist()[0]


def test_thinning_halves_depth_and_keeps_full_depth_rows():
    rng = np.random.default_rng(0)
    counts = sp.csr_matrix(rng.poisson(3.0, size=(400, 50)).astype(np.float64))
    thinning = _thinning_of(400, 50, np.r_[np.full(200, 0.5), np.ones(200)])
    out = _thinning.thinned_lognorm(counts, np.arange(400), thinning)
    kept = np.asarray(counts.sum(axis=1)).ravel()
    reference = np.log1p(counts[200:].toarray() * (1e4 / kept[200:, None]))
    np.testing.assert_allclose(out[200:].toarray(), reference, rtol=1e-12)  # fraction 1: plain log1p(CP10k)
    expressed = (out[:200] > 0).sum() / (counts[:200] > 0).sum()
    assert 0.6 < expressed < 0.95  # zeros appear where counts were thinned away, not everywhere
    first = np.expm1(out[0].toarray().ravel())
    thinned_total = 1e4 / first[first > 0].min()  # one thinned count, in CP10k
    assert abs(thinned_total - kept[0] / 2) < 5 * np.sqrt(kept[0] / 4)


def test_the_draws_do_not_depend_on_row_order_gene_order_or_chunking():
    rng = np.random.default_rng(2)
    counts = sp.csr_matrix(rng.poisson(2.0, size=(120, 30)).astype(np.float64))
    thinning = _thinning_of(120, 30, rng.uniform(0.3, 1.0, 120))
    whole = _thinning.thinned_lognorm(counts, np.arange(120), thinning).toarray()
    rows = rng.permutation(120)
    np.testing.assert_array_equal(_thinning.thinned_lognorm(counts[rows], rows, thinning).toarray(), whole[rows])
    genes = rng.permutation(30)
    by_gene = _thinning.Thinning(fraction=thinning.fraction, cell_keys=thinning.cell_keys,
                                 gene_keys=thinning.gene_keys[genes], seed=thinning.seed)
    np.testing.assert_allclose(_thinning.thinned_lognorm(counts[:, genes], np.arange(120), by_gene).toarray(),
                               whole[:, genes], rtol=1e-12)
    codes = np.arange(120) % 6
    one = _crosstalk_fast.group_statistics(counts, codes, 6, np.arange(30), chunk_size=120, thinning=thinning)
    many = _crosstalk_fast.group_statistics(counts, codes, 6, np.arange(30), chunk_size=7, thinning=thinning)
    np.testing.assert_allclose(one[0], many[0], rtol=1e-12)
    np.testing.assert_array_equal(one[1], many[1])
