"""A short panel's cells, looked for through the genes its own genes are co-expressed with.

The k-means clusters of a population (:func:`hcctme.tl._state_seeds.clusters`) follow its largest sources of
variation. A state that raises a handful of genes can spread over all of them: generator endothelial cells, 10x
seed 300, the 142 clean cells of a state that raises PLVAP and two partner genes made up 12-52 % of each of the six
clusters, so no cluster was high in the 3-gene panel, the expression route
(:func:`~hcctme.tl._state_seeds.expression_seeds`) had no cluster to test and the state got no call, although PLVAP
alone separated its cells (detected in 88 % of them, in 24 % of the others). A route that seeds a few of them
does not find the rest either: in the same population one k-means cut seeded the state through an 18-cell cluster
(11 of its cells the state's) while 54 of the state's 133 clean cells were "none of these" seeds, and that
seeding's classifier predicted 14 % of them the state. Release 2.39 looks for every short panel this way, seeded
or not (before, only those no other route had seeded), and adds the cells it finds to the state's seeds. A state
is a programme, not one gene: within the samples, its panel gene varies with the programme's other genes.
Choosing the cells by the panel's own genes and then testing those genes would be circular; this route tests only
the partners, and only then chooses cells.

1. **Co-expression test.** For each measured up gene of a short panel, the correlation (Pearson,
   log expression centred within each sample, over the population's clean cells) with each of the population's
   most variable genes, itself excluded; its statistic is the
   :data:`~hcctme._constants.STATE_COEXPRESSION_PARTNERS`-th largest of them (how strongly its second partner
   follows it). The null is the same statistic of the
   :data:`~hcctme._constants.STATE_COEXPRESSION_NULL` measured background genes nearest in mean expression (those
   correlated with the panel gene beyond chance, its own partners, left out); the gene passes at an empirical
   p-value (1 + null genes at least as high) / (1 + null genes) of at most
   :data:`~hcctme._constants.STATE_SPECIFICITY_ALPHA` divided by the panel's measured genes.
2. **Module and seeds.** A passing gene and its partners (the genes it correlates with above the null genes' 99th
   percentile of their highest correlation) form a module, whose mean standardised expression is split by a
   two-component normal mixture. Cells of the high component (posterior >=
   :data:`~hcctme._constants.STATE_COEXPRESSION_POSTERIOR`) that are seeds of "none of these", of the state or of
   nothing, and that the mixture seeds no other state, become the state's seeds; "none of these" seeds between the
   components are dropped; the low component keeps its seeds.
3. **Guards.** A module whose high component holds at least as many seeds of a sibling state as unclaimed
   cells is the sibling's programme (10x seed 401: FOLR2 and CD163 of the unplanted 4-gene TAM1_FOLR2 panel
   co-varied with 21 genes of the Kupffer programme, and 59 of the 265 Kupffer cells were called TAM1_FOLR2): the
   route declines. The seed group is then tested as a cluster would be (:func:`~hcctme.tl._state_seeds.confirm_seeds`'s
   sibling rule): where the panel reads a sibling there, or fails the cluster test against the other cells (its
   genes are not up in the chosen cells at all), the route declines too.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import scipy.sparse as sp

from hcctme._constants import (
    STATE_COEXPRESSION_NULL,
    STATE_COEXPRESSION_PARTNERS,
    STATE_COEXPRESSION_POSTERIOR,
    STATE_SPECIFICITY_ALPHA,
)
from hcctme.tl import _state_expression as _expression
from hcctme.tl import _state_seeds as _seeds
from hcctme.tl import _state_specificity as _specificity
from hcctme.tl._state_params import SelfTrainParams
from hcctme.tl._state_specificity import GenePanel

# label of the chosen cells in the copy of the clusters the sibling and cluster tests read
_CHOSEN = "__coexpression__"


def params() -> dict[str, float | int]:
    """The route's thresholds, for the provenance (its alpha is the specificity test's)."""
    return {"partners": STATE_COEXPRESSION_PARTNERS, "null_genes": STATE_COEXPRESSION_NULL,
            "posterior": STATE_COEXPRESSION_POSTERIOR, "alpha": STATE_SPECIFICITY_ALPHA}


def coexpression_seeds(labels: np.ndarray, mixture_seeds: np.ndarray, groups: np.ndarray, X: sp.csr_matrix,
                       samples: np.ndarray | None, z: np.ndarray, ids: list[str], panel: GenePanel,
                       report: dict[str, dict[str, Any]], params: SelfTrainParams) -> np.ndarray:
    """The seeds ``labels`` with each short panel looked for through its co-expressed genes.

    ``X``: the population's log expression (clean cells); ``panel.expression_columns`` locates the panel's
    columns in it. A state that passes is ``seeded`` in ``report`` with ``coexpression_route`` and the test's
    figures, its seeds (from another route, where one seeded it) joined by the cells the route finds; a state whose
    module fails or is declined keeps its seeds, with its ``coexpression_pvalue`` and, where its module
    was declined, ``coexpression_declined`` (``"sibling seeds"`` or ``"cluster test"``).
    """
    short = [s for s in ids if _specificity.short_panel(panel, s) and panel.state_columns.get(s, np.empty(0)).size]
    if not short or panel.background.size < STATE_COEXPRESSION_NULL // 4:
        return labels
    matrix = _Standardised.of(X, samples, params)
    if matrix is None:
        return labels
    out = labels.copy()
    for state in short:
        module, pvalue = _module(state, panel, matrix)
        report[state]["coexpression_pvalue"] = pvalue
        if module is None:
            continue
        chosen, between = _split(matrix.score(module))
        free = ["", _seeds.NONE_CLASS, state]  # the state's own seeds, where a cluster seeded it, are not claimed
        unclaimed = np.isin(out, free) & np.isin(mixture_seeds, free)
        candidates = chosen & unclaimed
        if np.sum(chosen & ~unclaimed) >= np.sum(candidates):
            report[state]["coexpression_declined"] = "sibling seeds"
            continue
        if not _accepted(state, np.flatnonzero(candidates), groups, z, ids, panel, params):
            report[state]["coexpression_declined"] = "cluster test"
            continue
        out[candidates] = state
        out[between & (out == _seeds.NONE_CLASS)] = ""
        report[state].update(seeded=True, coexpression_route=True, coexpression_genes=int(module.size))
    return out


class _Standardised:
    """The population's most variable genes, centred within each sample and scaled, on at most a few thousand cells."""

    def __init__(self, values: np.ndarray, genes: np.ndarray, codes: np.ndarray, rows: np.ndarray, X: sp.csr_matrix):
        self.values, self.genes, self.codes, self.rows, self.X = values, genes, codes, rows, X

    @classmethod
    def of(cls, X: sp.csr_matrix, samples: np.ndarray | None, params: SelfTrainParams) -> _Standardised | None:
        codes, n_samples = _expression.sample_codes(samples, X.shape[0])
        genes = np.sort(_expression.variable_genes(X, codes, n_samples, params.n_hvgs)[0])
        if genes.size < 3:
            return None
        rng = np.random.default_rng(params.random_state)
        rows = np.sort(rng.choice(X.shape[0], min(X.shape[0], params.gram_cells), replace=False))
        dense = _centred(np.asarray(X[rows][:, genes].toarray(), dtype=np.float64), codes[rows])
        return cls(dense / np.maximum(dense.std(axis=0), 1e-12), genes, codes, rows, X)

    def correlations(self, columns: np.ndarray) -> np.ndarray:
        """Correlation of each of ``columns`` (standardised, cells x genes) with every kept gene: genes x kept."""
        return columns.T @ self.values / self.values.shape[0]

    def score(self, expression_columns: np.ndarray) -> np.ndarray:
        """Every cell's mean standardised, sample-centred expression of ``expression_columns`` of ``X``."""
        dense = _centred(np.asarray(self.X[:, expression_columns].toarray(), dtype=np.float64), self.codes)
        return (dense / np.maximum(dense.std(axis=0), 1e-12)).mean(axis=1)


def _centred(dense: np.ndarray, codes: np.ndarray) -> np.ndarray:
    """``dense`` with every column centred on its mean within each sample (``codes``)."""
    n = np.bincount(codes)
    onehot = sp.csr_matrix((np.ones(codes.size), (codes, np.arange(codes.size))), shape=(n.size, codes.size))
    return dense - (onehot @ dense / np.maximum(n, 1)[:, None])[codes]


def _module(state: str, panel: GenePanel, matrix: _Standardised) -> tuple[np.ndarray | None, float]:
    """The columns of ``X`` of the state's module (a passing gene and its partners) and the smallest p-value."""
    cols = panel.state_columns[state]
    mean = np.asarray(panel.X.mean(axis=0)).ravel()
    rows = sp.csc_matrix(panel.X[matrix.rows])
    best_p, best_module = 1.0, None
    for col in cols:
        null = panel.background[np.argsort(np.abs(mean[panel.background] - mean[col]), kind="stable")]
        query = np.concatenate([[col], null[:STATE_COEXPRESSION_NULL]])
        dense = _centred(np.asarray(rows[:, query].toarray(), dtype=np.float64), matrix.codes[matrix.rows])
        sd = dense.std(axis=0)
        if sd[0] <= 1e-12:
            continue
        dense = dense / np.maximum(sd, 1e-12)
        corr = matrix.correlations(dense)
        corr[sd <= 1e-12] = 0.0
        own = _kept_position(panel, query, matrix)
        has_own = own >= 0
        corr[np.flatnonzero(has_own), own[has_own]] = -np.inf  # a gene is not its own partner
        top = -np.sort(-corr, axis=1)
        # null genes that follow the panel gene beyond chance are its partners, not the null
        unrelated = dense[:, 1:].T @ dense[:, 0] / dense.shape[0] < float(np.median(top[1:, 0]))
        null_stats = top[1:, STATE_COEXPRESSION_PARTNERS - 1][unrelated]
        if null_stats.size < STATE_COEXPRESSION_NULL // 4:
            continue
        p = float((1 + np.sum(null_stats >= top[0, STATE_COEXPRESSION_PARTNERS - 1])) / (1 + null_stats.size))
        if p < best_p:
            best_p = p
            if p <= STATE_SPECIFICITY_ALPHA / cols.size:
                bar = float(np.quantile(top[1:, 0][unrelated], 0.99))
                own_column = panel.expression_columns[col] if panel.expression_columns is not None else -1
                best_module = np.unique(np.concatenate([matrix.genes[np.flatnonzero(corr[0] >= bar)],
                                                        [own_column] if own_column >= 0 else []])).astype(int)
    return best_module, best_p


def _kept_position(panel: GenePanel, query: np.ndarray, matrix: _Standardised) -> np.ndarray:
    """Each panel column's position among ``matrix``'s kept genes, or -1."""
    if panel.expression_columns is None:
        return np.full(query.size, -1)
    position = np.full(matrix.X.shape[1], -1)
    position[matrix.genes] = np.arange(matrix.genes.size)
    columns = panel.expression_columns[query]
    return np.where(columns >= 0, position[np.maximum(columns, 0)], -1)


def _split(score: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(cells of the high component, cells between) of a two-component normal mixture of ``score``."""
    from sklearn.mixture import GaussianMixture

    values = ((score - score.mean()) / max(float(score.std()), 1e-12))[:, None]
    fit = GaussianMixture(2, random_state=0).fit(values)
    high = fit.predict_proba(values)[:, int(np.argmax(fit.means_.ravel()))]
    return high >= STATE_COEXPRESSION_POSTERIOR, (high > 1 - STATE_COEXPRESSION_POSTERIOR) & (
        high < STATE_COEXPRESSION_POSTERIOR)


def _accepted(state: str, members: np.ndarray, groups: np.ndarray, z: np.ndarray, ids: list[str], panel: GenePanel,
              params: SelfTrainParams) -> bool:
    """Whether the chosen cells may seed ``state``: enough of them, its genes up there, no sibling read."""
    if members.size < params.min_seeds or groups.size - members.size < params.min_seeds:
        return False
    chosen = np.asarray(groups, dtype=object).copy()
    chosen[members] = _CHOSEN
    auroc, test = _seeds.cluster_test(state, members, chosen, _CHOSEN, z, ids, panel)
    if not _specificity.specific(test):
        return False
    return _seeds.sibling_read(state, auroc, test, members, chosen, _CHOSEN, z, ids, panel)[0] is None
