"""Tumour immune barrier statistics on one sample (pure numpy/scipy; knows nothing of AnnData).

Geometry of one sample
----------------------
``adjacency`` is a symmetric boolean neighbour graph (radius graph, no self loops) over the sample's
positions (cells or spots); ``tumour`` marks tumour positions. From them:

- *boundary*: tumour positions with at least one non-tumour neighbour (the tumour edge);
- *ring*: non-tumour positions with at least one tumour neighbour (where a barrier would sit);
- ``dist``: for each non-tumour position, the distance to the nearest tumour position.

Statistics
----------
``barrier`` and ``t_cell`` are non-negative weights on positions: 0/1 for single cells, a proxy
score scaled to [0, 1] for spots. Only their values on non-tumour positions are used.

- ``colocalisation`` = share of the barrier weight that sits in the ring (fraction of barrier cells
  touching tumour). Under the null its expectation is ``|ring| / |non-tumour|``.
- ``coverage`` = mean over boundary tumour positions of the largest barrier weight among their
  non-tumour neighbours (with 0/1 weights: the fraction of the tumour boundary touched by a barrier
  cell).
- ``tib_score`` = mean of the two excesses over their permutation expectations,
  ``((colocalisation - E) + (coverage - E)) / 2``: 0 when barrier cells sit where chance puts them; when
  they all ring the tumour and cover its whole edge it reaches ``1 - (E_colocalisation + E_coverage) / 2``,
  under 1 and set by the sample's geometry (a sample whose ring is a large share of its non-tumour
  positions can score less for the same perfect barrier).
- ``t_exclusion`` = log2(weighted mean distance of T cells to the nearest tumour position / the same
  under the null); > 0 when T cells are kept further from tumour than chance.

Null: labels are permuted within the sample among its non-tumour positions (the tumour architecture
is kept; which non-tumour position is a barrier cell / T cell is shuffled). Barrier and T-cell
weights are permuted jointly (one permutation of non-tumour positions). One-sided permutation
p-values ``(1 + #{perm >= obs}) / (1 + n_perms)``.

Neighbouring positions are not independent (cells of one niche, overlapping spots), so per-sample
p-values describe a sample; cohort conclusions should be drawn with samples as replicates.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
from scipy.spatial import cKDTree

_PERM_CHUNK = 64


def median_nn_distance(coords: np.ndarray) -> float:
    """Median distance of each distinct position to its nearest other one (0 when < 2 positions).

    Cells that share a position (several cells mapped onto one spot) count once: with every cell beside a
    twin, the nearest other cell is always at distance 0.
    """
    coords = np.unique(np.asarray(coords, dtype=float), axis=0)
    if coords.shape[0] < 2:
        return 0.0
    dist, _ = cKDTree(coords).query(coords, k=2)
    return float(np.median(dist[:, 1]))


def otsu_threshold(values: np.ndarray, n_bins: int = 256) -> float:
    """Otsu's threshold of a 1-D sample (the cut maximising between-class variance)."""
    values = np.asarray(values, dtype=float)
    values = values[np.isfinite(values)]
    if values.size == 0 or values.min() == values.max():
        return float(values.max()) if values.size else 0.0
    hist, edges = np.histogram(values, bins=n_bins)
    centres = (edges[:-1] + edges[1:]) / 2
    weight0 = np.cumsum(hist)
    weight1 = weight0[-1] - weight0
    sum0 = np.cumsum(hist * centres)
    mean0 = sum0 / np.maximum(weight0, 1)
    mean1 = (sum0[-1] - sum0) / np.maximum(weight1, 1)
    between = weight0 * weight1 * (mean0 - mean1) ** 2
    return float(edges[int(np.argmax(between[:-1])) + 1])


def robust_unit_scale(values: np.ndarray, lower_q: float = 0.02, upper_q: float = 0.98) -> np.ndarray:
    """Scale to [0, 1] between two quantiles (clipped); constant input gives zeros."""
    values = np.asarray(values, dtype=float)
    lo, hi = np.quantile(values, [lower_q, upper_q])
    if not hi > lo:
        lo, hi = float(values.min()), float(values.max())
    if not hi > lo:
        return np.zeros_like(values)
    return np.clip((values - lo) / (hi - lo), 0.0, 1.0)


@dataclass
class Geometry:
    """Tumour edge of one sample (see module docstring)."""

    tumour: np.ndarray  # bool, n
    non_tumour: np.ndarray  # int indices into positions
    ring: np.ndarray  # bool over non_tumour
    boundary_rows: sp.csr_matrix  # boundary tumour positions x non_tumour positions (0/1)
    dist: np.ndarray  # distance of each non_tumour position to the nearest tumour position
    n_boundary: int


def geometry(adjacency: sp.spmatrix, tumour: np.ndarray, coords: np.ndarray) -> Geometry:
    """The tumour edge of one sample from its neighbour graph, tumour mask and coordinates."""
    adjacency = sp.csr_matrix(adjacency, dtype=bool)
    adjacency = (adjacency + adjacency.T).astype(bool).tocsr()
    adjacency.setdiag(False)
    adjacency.eliminate_zeros()
    tumour = np.asarray(tumour, dtype=bool)
    non_tumour = np.flatnonzero(~tumour)
    tumour_idx = np.flatnonzero(tumour)
    t_to_n = adjacency[tumour_idx][:, non_tumour].astype(np.int8).tocsr()
    n_tumour_nbrs = np.asarray(t_to_n.sum(axis=0)).ravel()
    ring = n_tumour_nbrs > 0
    has_edge = np.diff(t_to_n.indptr) > 0
    boundary_rows = t_to_n[has_edge]
    if tumour_idx.size and non_tumour.size:
        dist, _ = cKDTree(np.asarray(coords, float)[tumour_idx]).query(np.asarray(coords, float)[non_tumour], k=1)
    else:
        dist = np.full(non_tumour.size, np.nan)
    return Geometry(tumour, non_tumour, ring, boundary_rows, np.asarray(dist, float), int(has_edge.sum()))


def _coverage(rows: sp.csr_matrix, weights: np.ndarray) -> np.ndarray:
    """Mean over rows of the max neighbouring weight; ``weights`` is non_tumour x k."""
    if rows.shape[0] == 0:
        return np.full(weights.shape[1], np.nan)
    values = weights[rows.indices]  # nnz x k (every boundary row has >= 1 neighbour)
    per_row = np.maximum.reduceat(values, rows.indptr[:-1], axis=0)
    return per_row.mean(axis=0)


def _pvalue(null: np.ndarray, observed: float) -> float:
    if not np.isfinite(observed) or null.size == 0:  # no permutations (n_perms=0): no p-value
        return np.nan
    tol = 1e-12 * max(1.0, abs(observed))
    return float((1 + np.sum(null >= observed - tol)) / (1 + null.size))


def sample_stats(
    geom: Geometry,
    barrier: np.ndarray,
    t_cell: np.ndarray,
    *,
    n_perms: int,
    rng: np.random.Generator,
) -> dict[str, float]:
    """Barrier and T-cell exclusion statistics with permutation p-values for one sample.

    ``barrier`` and ``t_cell`` are weights over all positions of the sample (values on tumour
    positions are ignored). Returns a flat dict of floats (NaN where undefined).
    """
    nt = geom.non_tumour
    b = np.asarray(barrier, float)[nt]
    t = np.asarray(t_cell, float)[nt]
    n_nt = nt.size
    out: dict[str, float] = {
        "n_tumour": float(geom.tumour.sum()),
        "n_boundary": float(geom.n_boundary),
        "n_ring": float(geom.ring.sum()),
        "barrier_mass": float(b.sum()),
        "t_cell_mass": float(t.sum()),
    }
    nan_keys = (
        "colocalisation", "colocalisation_expected", "coverage", "coverage_expected", "tib_score",
        "tib_pvalue", "t_cell_distance", "t_cell_distance_expected", "t_exclusion", "t_exclusion_pvalue",
        "t_cell_contact", "t_cell_contact_expected",
    )
    out.update(dict.fromkeys(nan_keys, np.nan))
    if n_nt == 0 or geom.n_boundary == 0:
        return out
    ring_share = float(geom.ring.mean())
    mean_dist = float(geom.dist.mean())

    has_barrier = b.sum() > 0
    has_t = t.sum() > 0

    # observed
    coloc = float(b[geom.ring].sum() / b.sum()) if has_barrier else np.nan
    cover = float(_coverage(geom.boundary_rows, b[:, None])[0])
    t_dist = float(t @ geom.dist / t.sum()) if has_t else np.nan
    t_contact = float(t[geom.ring].sum() / t.sum()) if has_t else np.nan

    # permutations of non-tumour positions (joint for both weight vectors)
    null_coloc, null_cover, null_tdist = [], [], []
    if n_perms > 0 and (has_barrier or has_t):
        remaining = n_perms
        while remaining > 0:
            k = min(_PERM_CHUNK, remaining)
            remaining -= k
            perm = rng.permuted(np.tile(np.arange(n_nt), (k, 1)), axis=1).T  # n_nt x k
            if has_barrier:
                bp = b[perm]
                null_coloc.append(bp[geom.ring].sum(axis=0) / b.sum())
                null_cover.append(_coverage(geom.boundary_rows, bp))
            if has_t:
                tp = t[perm]
                null_tdist.append(geom.dist @ tp / t.sum())

    if has_barrier:
        null_coloc_a = np.concatenate(null_coloc) if null_coloc else np.array([])
        null_cover_a = np.concatenate(null_cover) if null_cover else np.array([])
        cover_expected = float(null_cover_a.mean()) if null_cover_a.size else np.nan
        tib = 0.5 * ((coloc - ring_share) + (cover - cover_expected))
        null_tib = 0.5 * ((null_coloc_a - ring_share) + (null_cover_a - cover_expected))
        out.update(
            colocalisation=coloc, colocalisation_expected=ring_share, coverage=cover,
            coverage_expected=cover_expected, tib_score=float(tib), tib_pvalue=_pvalue(null_tib, tib),
        )
    else:  # no barrier anywhere outside tumour: no barrier
        out.update(colocalisation=np.nan, colocalisation_expected=ring_share, coverage=0.0,
                   coverage_expected=0.0, tib_score=0.0, tib_pvalue=1.0 if n_perms > 0 else np.nan)
    if has_t:
        null_tdist_a = np.concatenate(null_tdist) if null_tdist else np.array([])
        excl = np.log2(t_dist / mean_dist) if mean_dist > 0 else np.nan
        null_excl = np.log2(null_tdist_a / mean_dist) if mean_dist > 0 else np.array([])
        out.update(
            t_cell_distance=t_dist, t_cell_distance_expected=mean_dist, t_exclusion=float(excl),
            t_exclusion_pvalue=_pvalue(null_excl, excl), t_cell_contact=t_contact,
            t_cell_contact_expected=ring_share,
        )
    return out
