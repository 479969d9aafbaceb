"""Whether a cluster of a parent population expresses a state's genes, against a matched-gene null.

The self-training (:mod:`hcctme.tl._state_selftrain`) seeds a state in the cluster where its
signature score is highest. A state that is absent from the data has a highest cluster too: a
population split by anything else (a stimulation, a batch, a second programme) gives a cluster
whose score is a little higher, often through two or three of the signature's genes that the other
programme shares (interferon-stimulated genes in a Treg list). A real state raises a real share of
its genes. This module tests that, gene by gene:

1. **Panel.** The signature genes of the population's states and up to
   :data:`~hcctme._constants.STATE_SPECIFICITY_BACKGROUND` other genes (drawn with a fixed seed),
   log-normalised; a gene is measured when it is detected in at least
   :data:`~hcctme._constants.STATE_SPECIFICITY_MIN_DETECTION` of the population's cells.
2. **Up in the cluster.** Per measured gene, the AUROC of the cluster's cells against the rest of
   the population (Mann-Whitney from ranks, computed once per gene for all clusters); a gene is up
   when it reaches :data:`~hcctme._constants.STATE_SPECIFICITY_AUROC`.
3. **Matched null.** The background genes are binned by mean expression (as the control genes of
   scanpy's ``score_genes``); the rate at which background genes of a state gene's bin are up in
   the cluster is that gene's null probability, and the number of the state's genes that are up is
   compared with a binomial of the mean of those rates. A population whose cells differ in many
   genes (two conditions, a large programme) has a high null rate, so a few shared genes do not
   make a state.

A cluster seeds a state only when (:func:`gene_test`, :func:`specific`) the one-sided p-value is at
most :data:`~hcctme._constants.STATE_SPECIFICITY_ALPHA` and at least
:data:`~hcctme._constants.STATE_SPECIFICITY_MIN_UP` of the state's measured genes are up. A state
with fewer than :data:`~hcctme._constants.STATE_SPECIFICITY_MIN_GENES` measured genes (the 2-5 gene
marker panels) cannot reach that p-value through one gene: a cluster seeds it when at least one of
its genes is up there.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import scipy.sparse as sp

from hcctme._constants import (
    STATE_SPECIFICITY_ALPHA,
    STATE_SPECIFICITY_AUROC,
    STATE_SPECIFICITY_BACKGROUND,
    STATE_SPECIFICITY_BINS,
    STATE_SPECIFICITY_MIN_DETECTION,
    STATE_SPECIFICITY_MIN_GENES,
    STATE_SPECIFICITY_MIN_UP,
)


@dataclass
class GenePanel:
    """Log-normalised expression of a population's panel genes and which columns are whose."""

    X: sp.csc_matrix  # cells x panel genes
    state_columns: dict[str, np.ndarray]  # state -> measured columns of its signature genes
    background: np.ndarray  # measured columns of the background genes
    bins: np.ndarray  # expression bin of every panel column


def panel_columns(var_names: Any, signatures: dict[str, list[str]], n_background: int = STATE_SPECIFICITY_BACKGROUND,
                  random_state: int = 0) -> tuple[np.ndarray, dict[str, np.ndarray], np.ndarray]:
    """Matrix columns of the panel: (all columns, state -> positions in them, background positions)."""
    names = list(map(str, var_names))
    position = {g: i for i, g in enumerate(names)}
    own = {s: [position[g] for g in dict.fromkeys(genes) if g in position] for s, genes in signatures.items()}
    taken = {i for cols in own.values() for i in cols}
    pool = np.array([i for i in range(len(names)) if i not in taken], dtype=int)
    rng = np.random.default_rng(random_state)
    background = np.sort(rng.choice(pool, min(n_background, pool.size), replace=False)) if pool.size else pool
    columns = np.array(sorted(taken | set(background.tolist())), dtype=int)
    where = {c: j for j, c in enumerate(columns)}
    return (columns, {s: np.array([where[c] for c in cols], dtype=int) for s, cols in own.items()},
            np.array([where[c] for c in background], dtype=int))


def build_panel(X: sp.csc_matrix, state_positions: dict[str, np.ndarray], background: np.ndarray) -> GenePanel:
    """The panel with its measured columns and the expression bins of every column."""
    n = X.shape[0]
    detected = np.diff(X.indptr) >= max(STATE_SPECIFICITY_MIN_DETECTION * n, 3)
    mean = np.asarray(X.mean(axis=0)).ravel()
    measured_bg = background[detected[background]]
    edges = (np.quantile(mean[measured_bg], np.linspace(0, 1, STATE_SPECIFICITY_BINS + 1)[1:-1])
             if measured_bg.size else np.empty(0))
    bins = np.searchsorted(edges, mean, side="right")
    return GenePanel(X=X, state_columns={s: p[detected[p]] for s, p in state_positions.items()},
                     background=measured_bg, bins=bins)


def cluster_auroc(X: sp.csc_matrix, groups: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """AUROC of every group's cells against the rest, per column of ``X``: (group labels, groups x columns).

    Ranks are computed once per gene (zeros share one tied rank), the rank sums of all groups with
    one sparse product.
    """
    from scipy.stats import rankdata

    n, n_genes = X.shape
    labels, codes = np.unique(groups, return_inverse=True)
    ranks = X.copy().astype(np.float64)
    zero_rank = np.empty(n_genes)
    for j in range(n_genes):
        lo, hi = ranks.indptr[j], ranks.indptr[j + 1]
        zeros = n - (hi - lo)
        zero_rank[j] = (zeros + 1) / 2.0
        if hi > lo:
            ranks.data[lo:hi] = zeros + rankdata(X.data[lo:hi])
    onehot = sp.csr_matrix((np.ones(n), (codes, np.arange(n))), shape=(labels.size, n))
    nonzero = ranks.copy()
    nonzero.data = np.ones_like(nonzero.data)
    size = np.asarray(onehot.sum(axis=1)).ravel()
    rank_sum = np.asarray((onehot @ ranks).todense()) + (size[:, None] - np.asarray((onehot @ nonzero).todense())) \
        * zero_rank[None, :]
    rest = np.maximum(n - size, 1)
    return labels, (rank_sum - size[:, None] * (size[:, None] + 1) / 2.0) / (size[:, None] * rest[:, None])


def gene_test(auroc: np.ndarray, panel: GenePanel, state: str) -> dict[str, float]:
    """The state's genes up in one cluster (``auroc``: that cluster's row) against the matched null.

    Returns ``n_measured``, ``n_up``, ``null_rate`` and ``pvalue`` (one-sided binomial; 1 when no
    gene of the state is measured).
    """
    from scipy.stats import binom

    cols = panel.state_columns.get(state, np.empty(0, dtype=int))
    up = auroc >= STATE_SPECIFICITY_AUROC
    if cols.size == 0:
        return {"n_measured": 0, "n_up": 0, "null_rate": float("nan"), "pvalue": 1.0}
    bg_bins = panel.bins[panel.background]
    bg_up = up[panel.background]
    overall = float(bg_up.mean()) if bg_up.size else 0.0
    rates = []
    for b in panel.bins[cols]:
        in_bin = bg_bins == b
        rates.append(float(bg_up[in_bin].mean()) if in_bin.sum() >= 10 else overall)
    # a rate of 0 (no background gene up) would make any single gene significant: at least one
    # background gene's worth
    rate = float(np.clip(np.mean(rates), 1.0 / max(panel.background.size, 1), 1.0))
    k = int(up[cols].sum())
    return {"n_measured": int(cols.size), "n_up": k, "null_rate": rate,
            "pvalue": float(binom.sf(k - 1, cols.size, rate)) if k > 0 else 1.0}


def params() -> dict[str, float | int]:
    """The test's thresholds, for the provenance."""
    return {"auroc": STATE_SPECIFICITY_AUROC, "alpha": STATE_SPECIFICITY_ALPHA, "min_up": STATE_SPECIFICITY_MIN_UP,
            "background_genes": STATE_SPECIFICITY_BACKGROUND, "bins": STATE_SPECIFICITY_BINS,
            "min_detection": STATE_SPECIFICITY_MIN_DETECTION, "min_genes": STATE_SPECIFICITY_MIN_GENES}


def specific(result: dict[str, float]) -> bool:
    """Whether a :func:`gene_test` result lets the cluster seed the state."""
    if result["n_measured"] < STATE_SPECIFICITY_MIN_GENES:
        # a short panel cannot reach the test's alpha through one gene: one of its genes up is enough
        return result["n_up"] >= 1
    return (result["pvalue"] <= STATE_SPECIFICITY_ALPHA
            and result["n_up"] >= STATE_SPECIFICITY_MIN_UP * result["n_measured"])
