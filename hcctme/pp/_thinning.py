"""Binomial thinning of raw counts drawn by cell and gene name, not by position.

A differential crosstalk run thins each unit's counts to the shallowest unit's median depth. The
draw of one stored count depends only on the seed, the cell's name and the gene's name (a
counter-based uniform: splitmix64 of their 64-bit keys), so another row order, another gene order
or another chunking gives the same thinned matrix. Binomial(n, p) is read from that uniform by its
inverse CDF: summed term by term for the counts scRNA-seq mostly holds, by scipy's ``binom.ppf``
for the few large ones.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
from scipy import stats

#: counts up to this are drawn term by term (the CDF sum); larger ones by scipy's binom.ppf
_TERMWISE_MAX = 200
#: below this log-probability of a zero draw, (1 - p) ** n underflows: binom.ppf instead
_LOG_TINY = -700.0
_GOLDEN = np.uint64(0x9E3779B97F4A7C15)


@dataclass
class Thinning:
    """The kept fraction of each cell, the 64-bit keys of the cells and genes, and the seed of the draws."""

    fraction: np.ndarray  # per cell (rows of the counts matrix)
    cell_keys: np.ndarray  # per cell, :func:`name_keys` of obs_names
    gene_keys: np.ndarray  # per gene (columns of the counts matrix)
    seed: int

    @classmethod
    def named(cls, fraction: np.ndarray, cells: Iterable[object], genes: Iterable[object], *, seed: int) -> Thinning:
        """The thinning of cells and genes of these names (their :func:`name_keys`)."""
        return cls(fraction=fraction, cell_keys=name_keys(cells), gene_keys=name_keys(genes), seed=seed)


def name_keys(names: Iterable[object]) -> np.ndarray:
    """A stable 64-bit key per name (BLAKE2b; Python's ``hash`` changes between runs)."""
    return np.fromiter((int.from_bytes(hashlib.blake2b(str(n).encode(), digest_size=8).digest(), "little")
                        for n in names), dtype=np.uint64)


def _mix(x: np.ndarray) -> np.ndarray:
    """splitmix64's finaliser (uint64 arithmetic wraps, as it should)."""
    x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return x ^ (x >> np.uint64(31))


def uniforms(seed: int, cell_keys: np.ndarray, gene_keys: np.ndarray) -> np.ndarray:
    """One uniform in [0, 1) per (cell key, gene key) pair (arrays of one length), fixed by ``seed``."""
    with np.errstate(over="ignore"):
        start = _mix(np.full(1, np.uint64(seed % 2**64)) * _GOLDEN)
        x = _mix(_mix(start ^ cell_keys.astype(np.uint64)) ^ (gene_keys.astype(np.uint64) * _GOLDEN))
    return (x >> np.uint64(11)).astype(np.float64) * 2.0**-53


def binomial(n: np.ndarray, p: np.ndarray, u: np.ndarray) -> np.ndarray:
    """Binomial(n, p) draws (0 < p < 1) read from the uniforms ``u`` by the inverse CDF."""
    out = np.zeros(n.shape, dtype=np.int64)
    one = n == 1  # most stored counts: a Bernoulli draw
    out[one] = u[one] >= 1.0 - p[one]
    idx = np.flatnonzero(n > 1)
    nn, uu, pp = n[idx], u[idx], p[idx]
    with np.errstate(divide="ignore"):
        log_zero = nn * np.log1p(-pp)
    termwise = (nn <= _TERMWISE_MAX) & (log_zero > _LOG_TINY)
    if not termwise.all():
        rest = ~termwise
        out[idx[rest]] = stats.binom.ppf(uu[rest], nn[rest], pp[rest]).astype(np.int64)
        idx, nn, uu, pp, log_zero = idx[termwise], nn[termwise], uu[termwise], pp[termwise], log_zero[termwise]
    ratio = pp / (1.0 - pp)
    pmf = np.exp(log_zero)  # P(X = 0)
    cdf = pmf.copy()
    drawn = np.zeros(len(idx), dtype=np.int64)
    active = np.flatnonzero(uu >= cdf)
    k = 0
    while active.size:  # X = the smallest k with CDF(k) > u
        pmf[active] *= (nn[active] - k) / (k + 1) * ratio[active]
        cdf[active] += pmf[active]
        drawn[active] = k + 1
        active = active[(uu[active] >= cdf[active]) & (drawn[active] < nn[active])]
        k += 1
    out[idx] = drawn
    return out


def thinned_lognorm(block: sp.csr_matrix, rows: np.ndarray, thinning: Thinning) -> sp.csr_matrix:
    """Counts of the cells ``rows`` (block's rows) thinned to their fraction, then log1p(CP10k) over all genes."""
    lengths = np.diff(block.indptr)
    per_value = np.repeat(thinning.fraction[rows], lengths)
    thin = per_value < 1.0
    values = np.round(block.data).astype(np.int64)
    if thin.any():
        cells = np.repeat(thinning.cell_keys[rows], lengths)[thin]
        u = uniforms(thinning.seed, cells, thinning.gene_keys[block.indices[thin]])
        values[thin] = binomial(values[thin], per_value[thin], u)
    block = sp.csr_matrix((values.astype(np.float64), block.indices.copy(), block.indptr.copy()), shape=block.shape)
    block.eliminate_zeros()
    size = np.asarray(block.sum(axis=1)).ravel()
    block.data *= np.repeat(1e4 / np.where(size > 0, size, 1.0), np.diff(block.indptr))
    np.log1p(block.data, out=block.data)
    return block
