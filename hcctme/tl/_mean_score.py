"""Mean-minus-control scores with the semantics of :func:`scanpy.tl.score_genes` (Seurat's
``AddModuleScore``), for many signatures in one pass over the matrix.

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
sparse product ``X @ W`` per chunk. A signed signature scores
``score(genes_up) - score(genes_down)``, each part with its own controls drawn as scanpy would.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import scipy.sparse as sp


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


def weight_matrix(n_genes: int, sets: list[np.ndarray]) -> sp.csc_matrix:
    """genes x sets matrix with ``1 / len(set)`` for members: ``X @ W`` gives per-cell set means."""
    rows, cols, vals = [], [], []
    for j, pos in enumerate(sets):
        pos = np.unique(np.asarray(pos, dtype=np.int64))
        if pos.size == 0:
            continue
        rows.append(pos)
        cols.append(np.full(pos.size, j, dtype=np.int64))
        vals.append(np.full(pos.size, 1.0 / pos.size))
    if not rows:
        return sp.csc_matrix((n_genes, len(sets)), dtype=np.float64)
    return sp.csc_matrix((np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))),
                         shape=(n_genes, len(sets)), dtype=np.float64)


def set_means(block, W: sp.csc_matrix) -> np.ndarray:
    """Per-cell means of each set for one block of rows (float64, cells x sets)."""
    if sp.issparse(block):
        out = block.astype(np.float64, copy=False) @ W
        return np.asarray(out.toarray() if sp.issparse(out) else out)
    block = np.asarray(block, dtype=np.float64)
    return np.asarray(W.T.dot(block.T).T)


def combine(means: np.ndarray, layout: list[tuple[int, int, int, int]]) -> np.ndarray:
    """Scores from set means; ``layout[s] = (up, up_ctrl, down, down_ctrl)`` column numbers (-1: none)."""
    scores = np.zeros((means.shape[0], len(layout)), dtype=np.float64)
    for s, (up, up_ctrl, down, down_ctrl) in enumerate(layout):
        scores[:, s] = means[:, up] - means[:, up_ctrl]
        if down >= 0:
            scores[:, s] -= means[:, down] - means[:, down_ctrl]
    return scores
