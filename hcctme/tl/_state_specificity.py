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
2. **Up in the cluster.** Per measured gene, the AUROC of the cluster's cells against its reference
   cells (**Reference cells** below; Mann-Whitney from ranks, all genes in one pass); a gene is up
   when it reaches :data:`~hcctme._constants.STATE_SPECIFICITY_AUROC`.
3. **Matched null.** The background genes are binned by mean expression (as the control genes of
   scanpy's ``score_genes``); the rate at which background genes of a state gene's bin are up in
   the cluster is that gene's null probability, and the number of the state's genes that are up is
   compared with a binomial of the mean of those rates. A population whose cells differ in many
   genes (two conditions, a large programme) has a high null rate, so a few shared genes do not
   make a state.
4. **Majority route** (:func:`majority_test`). In a cluster that differs from its reference in
   many genes (a lineage of its own: pDCs among cDCs), a third of the matched background genes pass
   the fixed threshold and a state whose genes are nearly all up fails the binomial. Such a state's
   own genes are up *strongly* and as a *majority*: the AUROC of the state's median gene (the
   :data:`~hcctme._constants.STATE_SPECIFICITY_MAJORITY`-th share, ranked) is compared with the
   rate at which matched background genes reach it, as an order statistic (at least half of ``n``
   genes at that level: binomial of that rate). The threshold rises with the data: a cluster whose
   background genes are up strongly needs its state's genes higher still.

A cluster seeds a state only when (:func:`gene_test`, :func:`specific`) the one-sided p-value is at
most :data:`~hcctme._constants.STATE_SPECIFICITY_ALPHA` and at least
:data:`~hcctme._constants.STATE_SPECIFICITY_MIN_UP` of the state's measured genes are up, or the
majority route's p-value is at most that alpha and its median gene is up. A **short
panel** (:func:`is_short`: fewer than :data:`~hcctme._constants.STATE_SPECIFICITY_MIN_GENES`
*measured* genes, whatever the library list's length: the 2-5 gene marker panels, and a longer list
of which the data measure few genes) cannot reach that p-value through one gene: a cluster seeds it
when at least one of its genes is up there. A short panel that defines its state in both
directions (``genes_down`` that the reference cells express; M_MDSC: CD14+ and HLA class II down)
needs at least half of its measured up genes up (or two that pass the binomial test) and half of those down
genes down (AUROC <= 1 - the up threshold, against the cells that do not score for the state): a
CD14-high cluster of HLA-DR-high classical monocytes is not M-MDSC. A short panel whose up genes in a
cluster all belong to a sibling state's list, where that sibling scores at least as high, reads the sibling
(:func:`read_through`), and the cluster is tested for the sibling instead.

**Reference cells.** The cluster is compared with the population's cells that do not score for
the state (:func:`reference_rows`: the other clusters whose mean z-score of the state is at most
:data:`~hcctme._constants.STATE_SPECIFICITY_REFERENCE_Z`; a short panel, with its permissive
one-gene rule, against all other cells), not with all other cells: a state that
makes up half of a population spans several clusters, and against a rest that is half the same
state its genes are barely up (Wu 2021 myCAF-like clusters: 1 of 39 ECM-myCAF genes at AUROC 0.65
against the rest). Each side is subsampled to :data:`~hcctme._constants.STATE_SPECIFICITY_MAX_CELLS`
cells (fixed seed), which bounds the cost on large populations.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import scipy.sparse as sp
from numba import njit

from hcctme._constants import (
    STATE_SPECIFICITY_ALPHA,
    STATE_SPECIFICITY_AUROC,
    STATE_SPECIFICITY_BACKGROUND,
    STATE_SPECIFICITY_BINS,
    STATE_SPECIFICITY_MAJORITY,
    STATE_SPECIFICITY_MAX_CELLS,
    STATE_SPECIFICITY_MIN_DETECTION,
    STATE_SPECIFICITY_MIN_GENES,
    STATE_SPECIFICITY_MIN_UP,
    STATE_SPECIFICITY_REFERENCE_Z,
    STATE_SPECIFICITY_SHORT_MAX_NULL,
)
from hcctme.tl import _state_order as _order


@dataclass
class GenePanel:
    """Log-normalised expression of a population's panel genes and which columns are whose."""

    X: sp.csc_matrix  # cells x panel genes
    state_columns: dict[str, np.ndarray]  # state -> measured columns of its signature genes
    background: np.ndarray  # measured columns of the background genes
    bins: np.ndarray  # expression bin of every panel column
    # state -> measured columns of its genes_down, for the short panels (is_short)
    down_columns: dict[str, np.ndarray] = field(default_factory=dict)
    short: frozenset[str] = frozenset()  # the states whose panel is short here (is_short of the measured genes)
    expression_columns: np.ndarray | None = None  # each panel column's column in the population's expression, or -1


def panel_columns(var_names: Any, signatures: dict[str, list[str]], n_background: int = STATE_SPECIFICITY_BACKGROUND,
                  random_state: int = 0, down: dict[str, list[str]] | None = None,
                  detected: np.ndarray | None = None
                  ) -> tuple[np.ndarray, dict[str, np.ndarray], np.ndarray, dict[str, np.ndarray]]:
    """Matrix columns of the panel: (all columns, state -> positions in them, background, state -> down genes).

    The positions of the background genes and of each state's ``down`` genes are in the same columns. The
    background is drawn from the other genes, taken in the order of their names, and only from those
    ``detected`` (boolean per gene) where it is given: the genes no cell of the population detects, and the
    order of the matrix's columns, do not change the draw (release 2.32; before it 24 of 600 simulated cells
    changed call when 300 unexpressed genes were added). The columns and the background are listed in the
    order of the genes' names, so that every ranking of the panel's genes breaks its ties by name (release 2.34).
    """
    names = list(map(str, var_names))
    position = {g: i for i, g in enumerate(names)}

    def located(genes_of: dict[str, list[str]]) -> dict[str, list[int]]:
        return {s: [position[g] for g in dict.fromkeys(genes) if g in position] for s, genes in genes_of.items()}

    own, own_down = located(signatures), located(down or {})
    taken = {i for cols in (*own.values(), *own_down.values()) for i in cols}
    pool = np.array([i for i in range(len(names)) if i not in taken and (detected is None or detected[i])], dtype=int)
    rank = _order.rank(names)
    pool = pool[np.argsort(rank[pool], kind="stable")]
    rng = np.random.default_rng(random_state)
    background = pool[np.sort(rng.choice(pool.size, min(n_background, pool.size), replace=False))]
    columns = np.array(sorted(taken | set(background.tolist()), key=rank.__getitem__), dtype=int)
    where = {c: j for j, c in enumerate(columns)}

    def positions(cols_of: dict[str, list[int]]) -> dict[str, np.ndarray]:
        return {s: np.array([where[c] for c in cols], dtype=int) for s, cols in cols_of.items()}

    return columns, positions(own), np.array([where[c] for c in background], dtype=int), positions(own_down)


def is_short(n_measured: int) -> bool:
    """Whether a state with ``n_measured`` measured genes is a short panel (one definition for every rule).

    Fewer than :data:`~hcctme._constants.STATE_SPECIFICITY_MIN_GENES` measured genes: the binomial
    test cannot reach its alpha through one gene, so the one-gene rule, the reference of all other
    cells (:func:`reference_rows`) and the ``genes_down`` check apply.
    """
    return n_measured < STATE_SPECIFICITY_MIN_GENES


def build_panel(X: sp.csc_matrix, state_positions: dict[str, np.ndarray], background: np.ndarray,
                down_positions: dict[str, np.ndarray] | None = None,
                expression_columns: np.ndarray | None = None) -> GenePanel:
    """The panel with its measured columns and the expression bins of every column.

    A state with few measured genes (:func:`is_short`) is a short panel, whose ``down_positions`` are kept.
    """
    n = X.shape[0]
    detected = np.diff(X.indptr) >= max(STATE_SPECIFICITY_MIN_DETECTION * n, 3)
    mean = np.asarray(X.mean(axis=0)).ravel()
    measured_bg = background[detected[background]]
    edges = (np.quantile(mean[measured_bg], np.linspace(0, 1, STATE_SPECIFICITY_BINS + 1)[1:-1])
             if measured_bg.size else np.empty(0))
    bins = np.searchsorted(edges, mean, side="right")
    measured = {s: p[detected[p]] for s, p in state_positions.items()}
    short = frozenset(s for s, cols in measured.items() if is_short(cols.size))
    return GenePanel(X=X, state_columns=measured,
                     background=measured_bg, bins=bins, short=short, expression_columns=expression_columns,
                     down_columns={s: p[detected[p]] for s, p in (down_positions or {}).items() if s in short})


def cluster_auroc(X: sp.csc_matrix, groups: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """AUROC of every group's cells against the rest, per column of ``X``: (group labels, groups x columns).

    The stored values of all genes are ranked in one compiled pass (:func:`_column_ranks`; a gene's
    zeros share one tied rank), the rank sums of all groups come from one sparse product.
    """
    n = X.shape[0]
    labels, codes = np.unique(groups, return_inverse=True)
    ranks = sp.csc_matrix(X, dtype=np.float64, copy=True)
    stored = np.diff(ranks.indptr)
    zero_rank = (n - stored + 1) / 2.0
    ranks.data = np.repeat((n - stored).astype(np.float64), stored) + _column_ranks(ranks.data, ranks.indptr)
    onehot = sp.csr_matrix((np.ones(n), (codes, np.arange(n))), shape=(labels.size, n))
    nonzero = ranks.copy()
    nonzero.data = np.ones_like(nonzero.data)
    size = np.asarray(onehot.sum(axis=1)).ravel()
    rank_sum = np.asarray((onehot @ ranks).todense()) + (size[:, None] - np.asarray((onehot @ nonzero).todense())) \
        * zero_rank[None, :]
    rest = np.maximum(n - size, 1)
    return labels, (rank_sum - size[:, None] * (size[:, None] + 1) / 2.0) / (size[:, None] * rest[:, None])


def _column_ranks(data: np.ndarray, indptr: np.ndarray) -> np.ndarray:
    """Average ranks (1-based, ties share their mean rank) of the stored values within each column.

    ``data`` / ``indptr``: a CSC matrix's values and column pointers; equals ``scipy.stats.rankdata``
    of each column's stored values, for all columns in one compiled pass.
    """
    out = np.empty(data.size, dtype=np.float64)
    _rank_columns(np.asarray(data, dtype=np.float64), np.asarray(indptr, dtype=np.int64), out)
    return out


@njit(cache=True)
def _rank_columns(data, indptr, out):
    for j in range(indptr.size - 1):
        lo, hi = indptr[j], indptr[j + 1]
        order = np.argsort(data[lo:hi]) + lo
        first = 0
        while first < hi - lo:
            last = first
            while last + 1 < hi - lo and data[order[last + 1]] == data[order[first]]:
                last += 1
            for k in range(first, last + 1):
                out[order[k]] = (first + last + 2) / 2.0
            first = last + 1


def reference_rows(groups: np.ndarray, z: np.ndarray, cluster: Any, short: bool = False) -> np.ndarray:
    """The cells a cluster is compared with: the other clusters that do not score for the state.

    Clusters other than ``cluster`` whose mean of ``z`` (one state's z-scores) is at most
    :data:`~hcctme._constants.STATE_SPECIFICITY_REFERENCE_Z`; all other cells when there are none,
    and for a ``short`` panel (:func:`short_panel`), whose one-gene rule is permissive:
    against the whole rest of the population a gene is up less easily than against the cells low
    in the panel.
    """
    others = groups != cluster
    if short:
        return np.flatnonzero(others)
    low = [g for g in np.unique(groups[others]) if z[groups == g].mean() <= STATE_SPECIFICITY_REFERENCE_Z]
    rows = np.flatnonzero(np.isin(groups, low))
    return rows if rows.size else np.flatnonzero(others)


def short_panel(panel: GenePanel, state: str) -> bool:
    """Whether the state is a short panel in this population (:func:`is_short` of its measured genes)."""
    return state in panel.short


def _subsampled(rows: np.ndarray, reference: np.ndarray, random_state: int) -> tuple[np.ndarray, np.ndarray]:
    """``rows`` and ``reference``, each subsampled to at most :data:`~hcctme._constants.STATE_SPECIFICITY_MAX_CELLS`."""
    rng = np.random.default_rng(random_state)

    def capped(r: np.ndarray) -> np.ndarray:
        if r.size <= STATE_SPECIFICITY_MAX_CELLS:
            return r
        return np.sort(rng.choice(r, STATE_SPECIFICITY_MAX_CELLS, replace=False))

    return capped(rows), capped(reference)


def _stacked_auroc(stacked: sp.spmatrix, n_rows: int) -> np.ndarray:
    """AUROC of the first ``n_rows`` rows of ``stacked`` against its other rows, per column."""
    groups = np.r_[np.zeros(n_rows, dtype=int), np.ones(stacked.shape[0] - n_rows, dtype=int)]
    return cluster_auroc(sp.csc_matrix(stacked), groups)[1][0]


def auroc_against(X: sp.spmatrix, rows: np.ndarray, reference: np.ndarray,
                  random_state: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """AUROC of the cells ``rows`` against the cells ``reference``, and the reference's detection rate.

    Per column of ``X`` (cells x genes, sparse: the panel's csc matrix is read without a copy of
    all its rows). Each side is subsampled to at most
    :data:`~hcctme._constants.STATE_SPECIFICITY_MAX_CELLS` cells.
    """
    rows, reference = _subsampled(rows, reference, random_state)
    sub = sp.csc_matrix(X[np.concatenate([rows, reference])])
    auroc = _stacked_auroc(sub, rows.size)
    detected = np.asarray((sub[rows.size:] > 0).sum(axis=0)).ravel() / max(reference.size, 1)
    return auroc, detected


def separating_genes(X: sp.spmatrix, rows: np.ndarray, reference: np.ndarray, *, n_genes: int, threshold: float,
                     random_state: int = 0, allowed: np.ndarray | None = None) -> np.ndarray:
    """Columns of the (at most ``n_genes``) genes whose AUROC of ``rows`` against ``reference`` reaches ``threshold``.

    Best first (the AUROC of :func:`auroc_against`); ``allowed``: boolean over the columns, the genes
    that may be chosen. ``X`` holds no negative values (log-expression). Only the genes that can reach
    the threshold are ranked: a gene detected in a share ``d`` of ``rows`` and ``f`` of ``reference``
    has AUROC at most ``d + (1 - d) (1 - f) / 2`` (at best its detected cells rank above every
    reference cell, and its zeros tie with the reference's zeros); the result is that of ranking every gene.
    """
    rows, reference = _subsampled(rows, reference, random_state)
    both = sp.csr_matrix(X[np.concatenate([rows, reference])])
    split = both.indptr[rows.size]
    d = np.bincount(both.indices[:split], minlength=X.shape[1]) / max(rows.size, 1)
    f = np.bincount(both.indices[split:], minlength=X.shape[1]) / max(reference.size, 1)
    candidates = d + 0.5 * (1.0 - d) * (1.0 - f) >= threshold - 1e-12
    if allowed is not None:
        candidates &= allowed
    columns = np.flatnonzero(candidates)
    auroc = np.zeros(X.shape[1])
    if columns.size:
        auroc[columns] = _stacked_auroc(both[:, columns], rows.size)
    order = np.argsort(-auroc, kind="stable")[:n_genes]
    return order[auroc[order] >= threshold]


def midpoint(score: np.ndarray, mine: np.ndarray, reference: np.ndarray) -> float:
    """Half-way between the median scores of the cells ``mine`` and of the ``reference`` cells."""
    return 0.5 * float(np.median(score[mine]) + np.median(score[reference]))


def sample_centred_mean(X: sp.spmatrix, columns: np.ndarray, codes: np.ndarray, size: np.ndarray) -> np.ndarray:
    """Each cell's mean of the ``columns`` of ``X``, minus its sample's mean (``codes``; ``size``: cells per code)."""
    score = np.asarray(X[:, columns].mean(axis=1), dtype=float).ravel()
    return score - (np.bincount(codes, weights=score, minlength=size.size) / size)[codes]


def gene_test(auroc: np.ndarray, panel: GenePanel, state: str,
              reference_detection: np.ndarray | None = None) -> dict[str, float]:
    """The state's genes up in one cluster (``auroc``: that cluster's row) against the matched null.

    Returns ``n_measured``, ``n_up``, ``null_rate`` and ``pvalue`` (one-sided binomial; 1 when no
    gene of the state is measured), the majority route's ``majority_auroc``, ``majority_null_rate``
    and ``majority_pvalue`` (:func:`majority_test`), and ``n_down_measured`` / ``n_down``: the state's ``genes_down``
    that can show as down and how many of them are down (AUROC <= 1 - the up threshold). A gene
    absent from the cluster has AUROC ``0.5 - d / 2`` when detected in a share ``d`` of the reference
    cells (``reference_detection``): it can reach the threshold only where ``d >= 2 (threshold - 0.5)``
    (0.3), so the down genes below that detection are not counted (all are, without ``reference_detection``).
    """
    from scipy.stats import binom

    cols = panel.state_columns.get(state, np.empty(0, dtype=int))
    down = panel.down_columns.get(state, np.empty(0, dtype=int))
    if reference_detection is not None:
        down = down[reference_detection[down] >= 2.0 * (STATE_SPECIFICITY_AUROC - 0.5)]
    n_down = int(np.sum(auroc[down] <= 1.0 - STATE_SPECIFICITY_AUROC))
    up = auroc >= STATE_SPECIFICITY_AUROC
    if cols.size == 0:
        return {"n_measured": 0, "n_up": 0, "null_rate": float("nan"), "pvalue": 1.0,
                "majority_auroc": float("nan"), "majority_null_rate": float("nan"), "majority_pvalue": 1.0,
                "n_down_measured": int(down.size), "n_down": n_down}
    rate = matched_rate(up, panel, cols)
    k = int(up[cols].sum())
    level, majority_rate, majority_p = majority_test(auroc, panel, cols)
    return {"n_measured": int(cols.size), "n_up": k, "null_rate": rate,
            "pvalue": float(binom.sf(k - 1, cols.size, rate)) if k > 0 else 1.0,
            "majority_auroc": level, "majority_null_rate": majority_rate, "majority_pvalue": majority_p,
            "n_down_measured": int(down.size), "n_down": n_down}


def matched_rate(up: np.ndarray, panel: GenePanel, cols: np.ndarray) -> float:
    """The share of expression-matched background genes that are ``up``, for the state's genes ``cols``.

    ``up``: per panel column. The mean over ``cols`` of the share of ``up`` among the background
    genes of the column's expression bin (among all background genes when the bin has fewer than 10).
    At least one background gene's worth: a rate of 0 (no background gene up) would make any single
    gene significant.
    """
    bg_bins = panel.bins[panel.background]
    bg_up = up[panel.background]
    overall = float(bg_up.mean()) if bg_up.size else 0.0
    rates = [float(bg_up[bg_bins == b].mean()) if np.sum(bg_bins == b) >= 10 else overall for b in panel.bins[cols]]
    return float(np.clip(np.mean(rates), 1.0 / max(panel.background.size, 1), 1.0))


def majority_test(auroc: np.ndarray, panel: GenePanel, cols: np.ndarray) -> tuple[float, float, float]:
    """Whether a majority of the state's genes ``cols`` is up strongly: (AUROC level, null rate, one-sided p).

    The ``k = ceil(STATE_SPECIFICITY_MAJORITY n)``-th highest AUROC of the ``n`` state genes is the
    level; under the null that the state's genes are drawn like expression-matched background genes,
    at least ``k`` of ``n`` reach it with the binomial probability of the background genes' rate at that
    level (:func:`matched_rate`), which is the p-value of that order statistic. A cluster that differs
    from its reference in many genes raises many background genes past the fixed threshold of the
    binomial route, but few of them as far as the state's own genes; a few shared genes of a long
    list (interferon-stimulated genes in a Treg list) do not make its majority gene up. p is 1 when
    the level is below :data:`~hcctme._constants.STATE_SPECIFICITY_AUROC` (the majority gene is not up).
    """
    from scipy.stats import binom

    k = int(np.ceil(STATE_SPECIFICITY_MAJORITY * cols.size))
    level = float(np.sort(auroc[cols])[::-1][k - 1])
    rate = matched_rate(auroc >= level, panel, cols)
    return level, rate, float(binom.sf(k - 1, cols.size, rate)) if level >= STATE_SPECIFICITY_AUROC else 1.0


def params() -> dict[str, float | int]:
    """The test's thresholds, for the provenance."""
    return {"auroc": STATE_SPECIFICITY_AUROC, "alpha": STATE_SPECIFICITY_ALPHA, "min_up": STATE_SPECIFICITY_MIN_UP,
            "background_genes": STATE_SPECIFICITY_BACKGROUND, "bins": STATE_SPECIFICITY_BINS,
            "min_detection": STATE_SPECIFICITY_MIN_DETECTION, "min_genes": STATE_SPECIFICITY_MIN_GENES,
            "reference_z": STATE_SPECIFICITY_REFERENCE_Z, "max_cells": STATE_SPECIFICITY_MAX_CELLS,
            "short_max_null": STATE_SPECIFICITY_SHORT_MAX_NULL, "majority": STATE_SPECIFICITY_MAJORITY}


def specific(result: dict[str, float]) -> bool:
    """Whether a :func:`gene_test` result lets the cluster seed the state."""
    binomial = (result["pvalue"] <= STATE_SPECIFICITY_ALPHA
                and result["n_up"] >= STATE_SPECIFICITY_MIN_UP * result["n_measured"])
    if not is_short(result["n_measured"]):
        return binomial or result["majority_pvalue"] <= STATE_SPECIFICITY_ALPHA
    # a short panel cannot reach the test's alpha through one gene: one of its genes up is enough; a panel that
    # defines its state in both directions (genes_down testable) needs half of its up genes up (or two up genes
    # that pass the binomial test) and half of its down genes down; neither in a cluster where many matched
    # background genes are up too
    if result["null_rate"] > STATE_SPECIFICITY_SHORT_MAX_NULL:
        return False
    n_down, n_down_measured = result.get("n_down", 0), result.get("n_down_measured", 0)
    if n_down_measured:
        enough_up = 2 * result["n_up"] >= result["n_measured"] or (binomial and result["n_up"] >= 2)
        return enough_up and 2 * n_down >= n_down_measured
    return result["n_up"] >= 1


def read_through(auroc: np.ndarray, panel: GenePanel, state: str, ids: list[str], means: np.ndarray) -> str | None:
    """The sibling a short panel may read in a cluster: the highest-scoring one holding all the panel's up genes.

    ``auroc``: the cluster's row (:func:`auroc_against`); ``means``: the cluster's mean z-score of each
    state of ``ids``. A short panel is specific through one gene up (:func:`specific`), so a cluster of a
    sibling whose list holds that gene passes it (the generator's Kupffer cells, KUPFFER mean z 0.90, passed
    TAM1_FOLR2 at 0.69 through FOLR2, one of the three genes of its four the KUPFFER list holds). Returns the
    highest-scoring state of ``ids`` other than ``state`` whose list holds all the panel's up genes, whatever
    its score (the caller compares it with the panel's), or None (no gene up, or one up gene no sibling holds).
    """
    cols = panel.state_columns.get(state, np.empty(0, dtype=int))
    up = set(cols[auroc[cols] >= STATE_SPECIFICITY_AUROC].tolist())
    if not up:
        return None
    holders = [(means[k], other) for k, other in enumerate(ids)
               if other != state and up <= set(panel.state_columns.get(other, np.empty(0, dtype=int)).tolist())]
    return max(holders)[1] if holders else None


def undecided(result: dict[str, float]) -> bool:
    """Whether a declined cluster expresses the state's genes without significance: neither a seed nor "none".

    A panel that is not short (:func:`is_short`) whose median gene is up in the cluster (the
    majority route's AUROC level reaches :data:`~hcctme._constants.STATE_SPECIFICITY_AUROC`): its
    test failed for want of power against a background that is up as well, not because the state's
    genes stay down there (a few shared genes of another programme leave the median gene at 0.5).
    """
    return not is_short(result["n_measured"]) and bool(result["majority_auroc"] >= STATE_SPECIFICITY_AUROC)
