"""Mean-minus-control scores with the semantics of :func:`scanpy.tl.score_genes`.

Seurat's ``AddModuleScore``, for many signatures in one pass over the matrix.

For each signature scanpy (1.10/1.11):

1. averages every gene over all cells and cuts the genes into ``n_bins`` expression bins
   (``rank(method="min") // round(n_genes / (n_bins - 1))``);
2. re-seeds numpy's global generator with ``random_state`` and, for each bin holding a signature
   gene (in increasing bin order), samples ``ctrl_size`` genes of that bin without replacement
   (all of them when the bin is smaller), then drops the signature's own genes;
3. scores ``mean(signature genes) - mean(control genes)`` per cell.

Here the gene means and bins are computed once, the sampling uses a private
``np.random.RandomState(random_state)`` per signature (the draws equal scanpy's, and the global
numpy state is left alone), and the per-cell means of all signatures and controls come from one
pass of a numba kernel over each row's nonzeros (a float64 sum per set divided by its size, as
scanpy's ``x[:, genes].sum(axis=1, dtype="float64") / len(genes)``). A signed signature scores
``score(genes_up) - score(genes_down)``, each part with its own controls drawn as scanpy would.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import scipy.sparse as sp
from numba import njit


def bins(gene_means: np.ndarray, n_bins: int) -> pd.Series:
    """Expression bin of every gene (index = column position), exactly as scanpy computes it."""
    obs_avg = pd.Series(np.asarray(gene_means).ravel())
    obs_avg = obs_avg[np.isfinite(obs_avg)]
    n_items = int(np.round(len(obs_avg) / (n_bins - 1)))
    return obs_avg.rank(method="min") // n_items


def control_genes(gene_pos: np.ndarray, obs_cut: pd.Series, *, n_genes: int, ctrl_size: int,
                  random_state: int | None) -> np.ndarray:
    """Column positions of the control genes scanpy would draw for ``gene_pos``."""
    rs = np.random.RandomState(random_state)
    gene_pos = np.asarray(gene_pos, dtype=np.int64)
    in_list = np.zeros(n_genes, dtype=bool)
    in_list[gene_pos] = True
    cut_values = obs_cut.to_numpy()
    cut_index = obs_cut.index.to_numpy()
    chosen: list[np.ndarray] = []
    present = obs_cut.reindex(gene_pos).dropna()
    for cut in np.unique(present.to_numpy()):
        r_genes = cut_index[cut_values == cut]
        if ctrl_size < len(r_genes):
            # pandas' Series.sample(n) draws random_state.choice(len, n, replace=False)
            r_genes = r_genes[rs.choice(len(r_genes), size=ctrl_size, replace=False)]
        chosen.append(r_genes[~in_list[r_genes]])
    if not chosen:
        return np.zeros(0, dtype=np.int64)
    return np.unique(np.concatenate(chosen))


@dataclass(frozen=True)
class SetIndex:
    """Gene sets as a gene -> sets map (CSR arrays) for the per-cell sums kernel."""

    gene_map: np.ndarray  # (n_genes,) int64: row of the gene in gs_ptr, -1 when in no set
    gs_ptr: np.ndarray
    gs_sets: np.ndarray
    sizes: np.ndarray  # (n_sets,) float64


def set_index(n_genes: int, sets: list[np.ndarray]) -> SetIndex:
    members = [np.unique(np.asarray(pos, dtype=np.int64)) for pos in sets]
    genes = np.concatenate(members) if members else np.zeros(0, np.int64)
    owner = np.concatenate([np.full(m.size, j, dtype=np.int64) for j, m in enumerate(members)]) \
        if members else np.zeros(0, np.int64)
    union = np.unique(genes)
    gene_map = np.full(n_genes, -1, dtype=np.int64)
    gene_map[union] = np.arange(union.size)
    compact = gene_map[genes]
    order = np.lexsort((owner, compact))
    gs_ptr = np.zeros(union.size + 1, dtype=np.int64)
    np.add.at(gs_ptr, compact + 1, 1)
    return SetIndex(gene_map=gene_map, gs_ptr=np.cumsum(gs_ptr), gs_sets=owner[order],
                    sizes=np.array([m.size for m in members], dtype=np.float64))


@njit(cache=True)
def _set_sums(indptr, indices, data, gene_map, gs_ptr, gs_sets, out):
    for i in range(out.shape[0]):
        for j in range(indptr[i], indptr[i + 1]):
            g = gene_map[indices[j]]
            if g >= 0:
                x = np.float64(data[j])
                for q in range(gs_ptr[g], gs_ptr[g + 1]):
                    out[i, gs_sets[q]] += x


def set_means_csr(indptr: np.ndarray, indices: np.ndarray, data: np.ndarray, index: SetIndex) -> np.ndarray:
    """Per-cell means of each set (float64, cells x sets) for CSR rows.

    ``indptr`` may hold absolute offsets into ``indices``/``data`` (a row range of a larger matrix, read
    in place).
    """
    n_rows = indptr.shape[0] - 1
    out = np.zeros((n_rows, index.sizes.size), dtype=np.float64)
    if n_rows == 0:
        return out
    first, last = int(indptr[0]), int(indptr[-1])
    values = np.ascontiguousarray(data[first:last])
    if values.dtype not in (np.float32, np.float64):
        values = values.astype(np.float64)
    cols = np.ascontiguousarray(indices[first:last])
    if cols.dtype not in (np.int32, np.int64):
        cols = cols.astype(np.int64)
    _set_sums(np.asarray(indptr, dtype=np.int64) - first, cols, values, index.gene_map, index.gs_ptr,
              index.gs_sets, out)
    sizes = np.where(index.sizes > 0, index.sizes, 1.0)
    return out / sizes


def set_means(block, index: SetIndex) -> np.ndarray:
    """Per-cell means of each set for an in-memory block (dense blocks are converted to CSR)."""
    if not sp.issparse(block):
        dense = np.asarray(block)
        block = sp.csr_matrix(dense.astype(np.float32) if dense.dtype == np.float16 else dense)  # no float16 sparse
    elif block.format != "csr":
        block = block.tocsr()
    if not block.has_canonical_format:
        block = block.copy()
        block.sum_duplicates()
    return set_means_csr(block.indptr, block.indices, block.data, index)


def combine(means: np.ndarray, layout: list[tuple[int, int, int, int]]) -> np.ndarray:
    """Scores from set means; ``layout[s] = (up, up_ctrl, down, down_ctrl)`` column numbers (-1: none)."""
    scores = np.zeros((means.shape[0], len(layout)), dtype=np.float64)
    for s, (up, up_ctrl, down, down_ctrl) in enumerate(layout):
        scores[:, s] = means[:, up] - means[:, up_ctrl]
        if down >= 0:
            scores[:, s] -= means[:, down] - means[:, down_ctrl]
    return scores
