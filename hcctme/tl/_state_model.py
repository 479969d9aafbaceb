"""State assignment inside parent populations (numpy/pandas only; no AnnData).

The model, for one parent context (e.g. ``macrophage``) whose state collection has K states
(K = 1 for single-state collections such as TREG among CD4 T cells):

1. **Standardise.** Each state score is z-scored over the parent population's cells of all
   samples together (pooled). No per-sample re-centering: a patient whose macrophages are mostly
   SPP1+ keeps high TAM2 scores (a per-sample z-score would remove exactly the between-sample
   differences that composition tests look for). UCell scores are rank-based within each cell, so
   depth and gene-wise batch shifts move them little. Cells flagged as artefacts (stress, ambient
   RNA, doublets; see :mod:`hcctme.tl._state_artefacts`) are left out of the fit.
2. **Mixture.** Every cell is taken to be in exactly one of K + 1 classes: one of the K states, or
   none of them. In state k its score k is high, ``N(mu1_k, sd1_k)``; every score of a state
   the cell is not in follows that state's background ``N(mu0_k, sd0_k)``.
   The class proportions, means and sds are fitted by EM over the cells of the context in all
   samples; the posterior probability of each class follows from Bayes' rule. This is the
   "margin" of the best state twice over: over the runner-up state (the states compete for the
   same posterior mass) and over the population (the "none" class). The in-state sd is at least
   0.35 (the background's 0.25): the scores of 3-4 gene signatures cluster at a few levels.
3. **Hurdle.** Scores at the column's floor (UCell gives 0 when no gene of the signature ranks)
   are a point mass with a probability of their own in the state (at most the background's) and
   in the background; only the scores above it are normal.
4. **Call.** ``confidence`` = posterior probability of the best state; the call is that state when
   ``confidence >= model_confidence`` (0.5) and the cell's score lies above the floor and above the
   state's background mean (``eligible``), else ``"unassigned"``. These calls start the EM and seed the
   self-training whatever ``call_states``' ``min_confidence``, which only cuts the final calls.

Provisional rule (EM's start): with K >= 2, ``min(1 - 2 ** (-(z_best - z_second) / margin_half),
Phi(z_best - level_z))``; with K = 1, ``Phi(z - single_z)``. A context with fewer than ``min_fit_cells`` clean
cells is not called (its ``fitted`` is ``"too few cells"``): z-scores within a handful of cells rank them whatever
they express, and the rule called the top of any population (a 3-cell CD4 population: TREG at confidence 0.66
for the cell 0.0001 above the other two, all three far below the data's CD4 T cells; session 57).

Diagnostics per state: the fitted proportion and the separation
``(mu1 - mu0) / sqrt((sd1**2 + sd0**2) / 2)`` (in sd units; well below ~1.5 means the score has no
distinct high sub-population and calls are the upper tail of a continuum).

Known limit: the components are normal. A state whose scores are bimodal (e.g. a signed score
that one detected ``genes_down`` gene pulls down) or a background with a long right tail loses
its cells in the overlap (the Bayes decision at posterior 0.5 is stricter there than a threshold
tuned to 85 % precision); and a zero-inflated score without any state (censored noise) can still
be split into a background and a spurious upper-tail "state".
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy.special import logsumexp, ndtr

from hcctme._constants import STATE_ARTEFACT_Z, STATE_MAX_FOREIGN_SHARE, STATE_MODEL_CONFIDENCE, Defaults
from hcctme._logging import logger
from hcctme.tl import _state_artefacts as _artefacts
from hcctme.tl import _state_order as _order

UNASSIGNED = Defaults.UNASSIGNED
_SD_FLOOR = 0.25  # in z units: discrete scores of short signatures must not make a spike
# the scores of 3-4 gene signatures cluster at a few levels (0.25-0.5 apart): a narrower in-state
# component sits on the top level and leaves the lower ones to the background
_SD_FLOOR_STATE = 0.35
TOO_FEW_CELLS = "too few cells"  # Assignment.fitted of a context with fewer than min_fit_cells clean cells
_LOG2PI = float(np.log(2.0 * np.pi))


@dataclass(frozen=True)
class Thresholds:
    """Parameters of the assignment (see the module docstring)."""

    model_confidence: float = STATE_MODEL_CONFIDENCE
    min_fit_cells: int = 30
    artefact_z: float = STATE_ARTEFACT_Z
    max_foreign_share: float = STATE_MAX_FOREIGN_SHARE
    max_iter: int = 200
    tol: float = 1e-6
    margin_half: float = 0.75
    level_z: float = 0.0
    single_z: float = 1.0

    def to_dict(self) -> dict[str, float | int]:
        return dict(self.__dict__)


@dataclass
class Mixture:
    """Fitted mixture of one context (arrays over its K states)."""

    weights: np.ndarray  # K + 1 class proportions (last = none)
    mu0: np.ndarray
    sd0: np.ndarray
    mu1: np.ndarray
    sd1: np.ndarray
    p0_bg: np.ndarray  # probability that a background cell's score sits at the floor (e.g. UCell 0)
    p0_in: np.ndarray  # ... that an in-state cell's score does

    @property
    def separation(self) -> np.ndarray:
        return (self.mu1 - self.mu0) / np.sqrt((self.sd1 ** 2 + self.sd0 ** 2) / 2.0)


@dataclass
class Assignment:
    """Result of :func:`assign` (arrays aligned with the input cells)."""

    calls: np.ndarray  # object array of state ids / "unassigned"
    confidence: np.ndarray  # float in [0, 1]
    best: np.ndarray  # best state per cell (also when below threshold); "" outside called contexts
    z: pd.DataFrame  # standardised state scores (NaN outside the state's context)
    artefact: np.ndarray  # column that flagged the cell as an artefact, "" when none
    artefact_probability: np.ndarray  # probability that the cell is an artefact (hcctme.tl._state_artefacts)
    eligible: np.ndarray  # whether the cell's best state may be called at any confidence (call: eligible and conf)
    counts: dict[str, dict[str, int]] = field(default_factory=dict)
    diagnostics: dict[str, dict[str, dict[str, float]]] = field(default_factory=dict)
    fitted: dict[str, str] = field(default_factory=dict)  # context -> "mixture" | "too few cells"


# --------------------------------------------------------------------------------------------------
# Standardisation
# --------------------------------------------------------------------------------------------------
def _weighted_stats(values: np.ndarray, weights: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Weighted mean, sd and weight sum of each column."""
    wsum = weights.sum(axis=0)
    safe = np.where(wsum > 0, wsum, 1.0)
    mean = (weights * values).sum(axis=0) / safe
    var = (weights * (values - mean) ** 2).sum(axis=0) / safe
    return mean, np.sqrt(var), wsum


# --------------------------------------------------------------------------------------------------
# Provisional rule
# --------------------------------------------------------------------------------------------------
def rule(z: np.ndarray, th: Thresholds) -> tuple[np.ndarray, np.ndarray]:
    """Best column and confidence by the margin/level rule (K >= 2) or the absolute rule (K = 1)."""
    if z.shape[1] == 1:
        return np.zeros(z.shape[0], dtype=int), ndtr(z[:, 0] - th.single_z)
    order = np.argsort(-z, axis=1, kind="stable")
    best = order[:, 0]
    rows = np.arange(z.shape[0])
    z_best = z[rows, best]
    margin = np.maximum(z_best - z[rows, order[:, 1]], 0.0)
    c_margin = 1.0 - np.exp2(-margin / th.margin_half)
    return best, np.minimum(c_margin, ndtr(z_best - th.level_z))


# --------------------------------------------------------------------------------------------------
# Mixture
# --------------------------------------------------------------------------------------------------
def _norm_logpdf(x: np.ndarray, mu: np.ndarray, sd: np.ndarray) -> np.ndarray:
    return -0.5 * ((x - mu) / sd) ** 2 - np.log(sd) - 0.5 * _LOG2PI


def _m_step(z: np.ndarray, floor: np.ndarray, resp: np.ndarray) -> Mixture:
    k = z.shape[1]
    weights = np.maximum(resp.mean(axis=0), 1e-6)
    weights = weights / weights.sum()
    w_in = resp[:, :k]
    w_bg = 1.0 - w_in
    above = ~floor
    p0_in = np.clip((w_in * floor).sum(axis=0) / np.maximum(w_in.sum(axis=0), 1e-12), 1e-4, 1 - 1e-4)
    p0_bg = np.clip((w_bg * floor).sum(axis=0) / np.maximum(w_bg.sum(axis=0), 1e-12), 1e-4, 1 - 1e-4)
    p0_in = np.minimum(p0_in, p0_bg)  # a state raises its score: it is at the floor no more often
    mu1, sd1, w1 = _weighted_stats(z, w_in * above)
    mu0, sd0, w0 = _weighted_stats(z, w_bg * above)
    # a background without cells above the floor: centre it at the floor, unit spread
    floor_z = np.where(floor.any(axis=0), np.where(floor, z, np.inf).min(axis=0), z.min(axis=0))
    mu0 = np.where(w0 < 2.0, floor_z, mu0)
    sd0 = np.where(w0 < 2.0, 1.0, np.maximum(sd0, _SD_FLOOR))
    empty = w1 < 2.0  # a state with (almost) no cells: park its component far in the upper tail
    mu1 = np.where(empty, mu0 + 3.0 * sd0, mu1)
    sd1 = np.where(empty, sd0, np.maximum(sd1, _SD_FLOOR_STATE))
    return Mixture(weights, mu0, sd0, mu1, sd1, p0_bg, p0_in)


def _log_joint(z: np.ndarray, floor: np.ndarray, mix: Mixture) -> np.ndarray:
    """Log p(class, scores) for every cell (n x (K + 1)).

    Each score is a hurdle: at the floor with probability p0, else normal.
    """
    k = z.shape[1]
    l0 = np.where(floor, np.log(mix.p0_bg), np.log1p(-mix.p0_bg) + _norm_logpdf(z, mix.mu0, mix.sd0))
    l1 = np.where(floor, np.log(mix.p0_in), np.log1p(-mix.p0_in) + _norm_logpdf(z, mix.mu1, mix.sd1))
    l1 = np.where(floor | (z > mix.mu0), l1, -np.inf)  # a state's cells lie above its background mean
    base = l0.sum(axis=1, keepdims=True)
    out = np.empty((z.shape[0], k + 1))
    out[:, :k] = base + l1 - l0
    out[:, k] = base[:, 0]
    return out + np.log(mix.weights)


def fit_mixture(
    z: np.ndarray, floor: np.ndarray, init: np.ndarray, th: Thresholds
) -> tuple[Mixture, np.ndarray]:
    """EM for the K-states-or-none mixture; ``init`` = provisional class per cell (K = none)."""
    n, k = z.shape
    resp = np.full((n, k + 1), 0.1 / (k + 1))
    resp[np.arange(n), init] += 0.9
    previous = -np.inf
    mix = _m_step(z, floor, resp)
    for _ in range(th.max_iter):
        log_joint = _log_joint(z, floor, mix)
        norm = logsumexp(log_joint, axis=1, keepdims=True)
        resp = np.exp(log_joint - norm)
        loglik = float(norm.sum())
        mix = _m_step(z, floor, resp)
        if abs(loglik - previous) <= th.tol * max(abs(loglik), 1.0):
            break
        previous = loglik
    else:
        logger.debug("state mixture: EM stopped at max_iter=%d before converging", th.max_iter)
    log_joint = _log_joint(z, floor, mix)
    resp = np.exp(log_joint - logsumexp(log_joint, axis=1, keepdims=True))
    return mix, resp


def _classes(best: np.ndarray, confidence: np.ndarray, k: int, th: Thresholds) -> np.ndarray:
    return np.where(confidence >= th.model_confidence, best, k)


def floor_mask(values: np.ndarray, *, min_fraction: float = 0.01) -> np.ndarray:
    """Cells whose score sits at the column's minimum (e.g. UCell 0), when that is a point mass."""
    values = np.asarray(values, dtype=float)
    low = values.min(axis=0) if values.size else np.zeros(values.shape[1])
    tol = 1e-9 * np.maximum(np.abs(values).max(axis=0, initial=0.0), 1.0) if values.size else 0.0
    mask = values <= low + tol
    return mask & (mask.mean(axis=0) >= min_fraction)


def assign_context(
    values: np.ndarray, th: Thresholds, fit_rows: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray, Mixture | None, np.ndarray]:
    """Assign the cells of one context: (best column, confidence, eligible, mixture, z).

    ``eligible``: the cells whose best state may be called (the score above the floor and the state's background
    mean; no cell where fewer than ``th.min_fit_cells`` cells fit the mixture); a call needs its confidence too.

    The mixture is fitted on ``fit_rows`` (default: all cells) and applied to every cell.
    """
    n, k = values.shape
    fit_rows = np.ones(n, dtype=bool) if fit_rows is None else fit_rows
    ref = values[fit_rows] if fit_rows.sum() >= 2 else values
    mean, sd = ref.mean(axis=0), ref.std(axis=0)
    z = np.nan_to_num((values - mean) / np.where(sd > 1e-12, sd, np.nan), nan=0.0)
    best, conf = rule(z, th)
    if fit_rows.sum() < th.min_fit_cells:  # too few cells to tell a state from the population's own spread
        return best, np.zeros(n), np.zeros(n, dtype=bool), None, z
    floor = floor_mask(values)
    mix, _ = fit_mixture(z[fit_rows], floor[fit_rows], _classes(best, conf, k, th)[fit_rows], th)
    log_joint = _log_joint(z, floor, mix)
    resp = np.exp(log_joint - logsumexp(log_joint, axis=1, keepdims=True))
    rows = np.arange(n)
    best = np.argmax(resp[:, :k], axis=1)
    conf = resp[rows, best]
    above = ~floor[rows, best] & (z[rows, best] > mix.mu0[best])
    return best, conf, above, mix, z


def assign(
    scores: pd.DataFrame,
    contexts: Sequence[str | None] | np.ndarray,
    states: Mapping[str, Sequence[str]],
    *,
    artefacts: Mapping[str, Sequence[str]] | None = None,
    references: Mapping[str, float] | None = None,
    thresholds: Thresholds = Thresholds(),
    flag_columns: Sequence[str] = (),
    support: Mapping[str, np.ndarray] | None = None,
    order: np.ndarray | None = None,
) -> Assignment:
    """Call one state per cell inside its context.

    Parameters
    ----------
    scores
        Cells x signatures (the columns named in ``states`` and ``artefacts`` are used).
    contexts
        The cell_context of each cell (None / "unassigned" = none).
    states
        context -> state ids (columns of ``scores``) that compete in that context.
    artefacts
        context -> columns whose upper outliers (:func:`hcctme.tl._state_artefacts.context_flags`) mark
        a cell as "none of these" (artefact programmes, markers of a foreign lineage, library size).
    references
        column -> the score's median in the lineage it marks (foreign-lineage markers; see
        :func:`hcctme.tl._state_artefacts.column_flags`).
    thresholds
        See :class:`Thresholds`.
    flag_columns
        Artefact columns that are flags (0/1, e.g. a doublet detector's calls): their cells at 1 are
        artefacts directly, without the outlier rule.
    support
        column -> boolean array over all cells: the cells that may be flagged on that column (the
        library's artefact lists: the cells detecting enough of the list's genes,
        :func:`hcctme.tl._state_artefacts.add_gene_support`); columns not named are not gated.
    order
        Each cell's rank in the order a population's cells are fitted in (:func:`hcctme.tl._state_order.rank`);
        None: by row.
    """
    n = scores.shape[0]
    contexts = np.asarray([UNASSIGNED if c is None else c for c in contexts], dtype=object)
    if len(contexts) != n:
        raise ValueError(f"{len(contexts)} contexts for {n} cells")
    artefacts = artefacts or {}
    references = references or {}
    calls = np.full(n, UNASSIGNED, dtype=object)
    best_all = np.full(n, "", dtype=object)
    conf = np.zeros(n, dtype=float)
    flagged = np.full(n, "", dtype=object)
    all_states = list(dict.fromkeys(s for ids in states.values() for s in ids))
    z_frame = pd.DataFrame(np.nan, index=scores.index, columns=all_states)
    result = Assignment(calls=calls, confidence=conf, best=best_all, z=z_frame, artefact=flagged,
                        artefact_probability=np.zeros(n), eligible=np.zeros(n, dtype=bool))
    for context, ids in states.items():
        ids = list(ids)
        idx = _order.population(contexts, context, order)
        if not ids or idx.size == 0:
            continue
        values = scores[ids].to_numpy(dtype=float)[idx]
        cols = [c for c in artefacts.get(context, ()) if c in scores.columns]
        art_values = scores[cols].to_numpy(dtype=float)[idx] if cols else np.zeros((idx.size, 0))
        cell_support = {c: np.asarray(support[c])[idx] for c in cols if c in support} if support else None
        found = _artefacts.context_flags(art_values, cols, dict(references), z_max=thresholds.artefact_z,
                                         max_foreign_share=thresholds.max_foreign_share, flag_columns=flag_columns,
                                         support=cell_support)
        is_artefact = found.flagged != ""
        flagged[idx] = found.flagged
        result.artefact_probability[idx] = found.probability
        best, c, eligible, mix, z = assign_context(values, thresholds, fit_rows=~is_artefact)
        eligible &= ~is_artefact
        result.eligible[idx] = eligible
        called = eligible & (c >= thresholds.model_confidence)
        z_frame.iloc[idx, [z_frame.columns.get_loc(s) for s in ids]] = z
        best_ids = np.asarray(ids, dtype=object)[best]
        conf[idx] = np.where(is_artefact, 0.0, np.clip(c, 0.0, 1.0))
        best_all[idx] = best_ids
        calls[idx[called]] = best_ids[called]
        result.counts[context] = {s: int(np.sum(calls[idx] == s)) for s in ids}
        result.counts[context][UNASSIGNED] = int(np.sum(calls[idx] == UNASSIGNED))
        result.fitted[context] = "mixture" if mix is not None else TOO_FEW_CELLS
        result.diagnostics[context] = {UNASSIGNED: {"artefacts": int(is_artefact.sum()),
                                                    "markers_not_used": found.unused,
                                                    "markers_unreached": found.unreached,
                                                    "foreign_released": found.foreign_released,
                                                    "flagged_by": found.flagged_by}}
        if mix is not None:
            sep = mix.separation
            result.diagnostics[context].update({
                s: {"proportion": float(mix.weights[j]), "separation": float(sep[j])} for j, s in enumerate(ids)
            })
            result.diagnostics[context][UNASSIGNED]["proportion"] = float(mix.weights[-1])
    return result
