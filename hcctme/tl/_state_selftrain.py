"""Discriminative self-training of state calls inside one parent population (numpy/scipy/sklearn).

A state signature reads a handful of the genes of a state's programme; the mixture over the
signature scores (:mod:`hcctme.tl._state_model`) separates states only as far as those few genes
do. The programme itself moves many more genes, which the parent population's expression
carries. This step learns it:

1. **Features** (:mod:`hcctme.tl._state_expression`). The top
   :data:`~hcctme._constants.STATE_SELFTRAIN_PCS` principal components of the population's
   log-normalised expression, centred within each sample on its mean less the part its mean state scores
   predict, plus the state z-scores.
2. **Seeds** (:mod:`hcctme.tl._state_seeds`). K-means clusters of the cells in component space seed
   the state they score highest for where the mixture backs it and the specificity test
   (:mod:`hcctme.tl._state_specificity`) confirms it, else "none of these" (also where most of a
   cluster's cells are a state's mixture calls that the test declines there); confident mixture calls
   add seeds.
3. **Carried genes of the seeded states.** A signature reads part of its state's programme (a
   3-gene marker panel may read one gene of it; a longer list shares half of its genes with another
   source's list for the same biology), the seeds it gives mark the whole programme. Each state with
   :data:`~hcctme._constants.STATE_SELFTRAIN_MIN_STATE_SEEDS` seeds gets a carried score
   (:func:`carried`): the mean expression of the genes whose AUROC of its seeds against the cells
   of the clusters that do not score for it reaches
   :data:`~hcctme._constants.STATE_CARRY_AUROC` (at most :data:`~hcctme._constants.STATE_CARRY_GENES`),
   a classifier feature that carries the programme to the cells the signature scores low. A
   "none of these" seed whose carried score of a seeded state is past the midpoint between the
   medians of that state's seeds and of the "none" seeds is no seed (:func:`purified_none`).
4. **Classifier.** A multinomial logistic regression with balanced class weights is fitted on
   the seeds (a class needs :data:`~hcctme._constants.STATE_SELFTRAIN_MIN_SEEDS` seeds, a state
   whose cluster the specificity test confirmed on a full panel
   :data:`~hcctme._constants.STATE_SELFTRAIN_MIN_STATE_SEEDS`: :func:`~hcctme.tl._state_seeds.with_enough_seeds`),
   predicts every cell, and is refitted on its own predictions with probability >=
   the seed confidence (:data:`~hcctme._constants.STATE_SELFTRAIN_ROUNDS` rounds); "none of
   these" stays in a refit only where at least
   :data:`~hcctme._constants.STATE_SELFTRAIN_MIN_SEEDS` cells are predicted "none" with that
   confidence, and a state confirmed on a full panel that no cell is predicted with it is refitted on its seeds
   (:func:`self_train`).
5. **Calibration and smoothing.** The last model's probabilities are cross-fitted: the cells are
   split into :data:`~hcctme._constants.STATE_CALIBRATION_FOLDS` folds and each fold is predicted
   by the model fitted on the other folds' training cells, over
   :data:`~hcctme._constants.STATE_CALIBRATION_REPEATS` random splits whose held-out probabilities
   are averaged (an ensemble of models none of which saw the cell's label). Each cell's class
   probabilities are averaged with those of its :data:`~hcctme._constants.STATE_SMOOTH_NEIGHBORS`
   nearest cells in PC space (weight :data:`~hcctme._constants.STATE_SMOOTHING`), then
   temperature-scaled (``softmax(log p / T)``) with the ``T`` that fits the cluster seeds' labels
   best (log loss, each class weighted by the inverse of its seed count as the classifier's classes
   are: the "none of these" seeds, often the largest and least pure class, do not set ``T`` alone):
   the seeds are labelled by their cluster, not by the classifier, so ``T`` is not fitted to the
   classifier's own confident predictions. Where every seed is predicted its label, that loss has no minimum; where
   the refit has also dropped "none of these", its seeds enter with a uniform target (release 2.38,
   :func:`temperature`).
6. **Call.** The probability of the best state is the confidence; the call is that state when
   it is the most probable class (states and "none") and reaches ``min_confidence``.
7. **Small populations.** A population with fewer cells than its states' clusters need
   (:func:`~hcctme.tl._state_seeds.cells_for_clusters`) is seeded nine times (one cluster per 20, 14 and 10 cells,
   three random states each: :func:`seedings`) and called by the mean of the probabilities of the seedings that
   train the classifier (release 2.24): which of its states get seeds turns on the cut, and one cut's classifier
   calls the cells of the states it left unseeded a seeded state with the confidence of seeds they do not resemble.
   Any other population is seeded :data:`~hcctme._constants.STATE_SEEDINGS` times (three random states, one
   calibration fold split each) and called the same way (release 2.26): the cut decides there too. Where the
   first seedings disagree (one of them makes fewer than :data:`~hcctme._constants.STATE_SEEDING_AGREEMENT` of a
   state's calls), the same seedings are drawn again at the next random states, up to
   :data:`~hcctme._constants.STATE_SEEDING_BATCHES` batches in all, and all are averaged (release 2.29): the mean
   of three draws of an unstable cut is itself a draw (Sade-Feldman 2018's terminal-exhausted cells, 30-116 of 166
   over ten random states). Where no seeding trains the classifier, the mean is over every seeding's mixture calls,
   each gated by its own cut's specificity test (release 2.31): the first seeding's alone are one draw (Wu 2021's
   Tregs, 17 of 23 at 2 of 10 random states, 0 at the others). Where fewer than half of the seedings train it, the
   mean is over all of them (release 2.36), except the cells the trained ones call a state that at least half of
   them seeded through its list's gene test (:func:`established`, release 2.37).

Deterministic (fixed ``random_state``). A population with fewer than
:data:`~hcctme._constants.STATE_SELFTRAIN_MIN_CELLS` cells, or without seeds of at least two
classes (:data:`~hcctme._constants.STATE_SELFTRAIN_MIN_SEEDS` each), keeps the mixture calls.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any, NamedTuple

import numpy as np
import scipy.sparse as sp

from hcctme.tl import _state_coexpression as _coexpression
from hcctme.tl import _state_expression as _expression
from hcctme.tl import _state_seeds as _seeds
from hcctme.tl import _state_specificity as _specificity
from hcctme.tl._state_params import SelfTrainParams
from hcctme.tl._state_specificity import GenePanel
from hcctme.tl._threads import one_blas_thread


def carried(X: sp.csr_matrix, labels: np.ndarray, groups: np.ndarray, z: np.ndarray, ids: list[str],
            samples: np.ndarray | None, params: SelfTrainParams) -> dict[str, np.ndarray]:
    """Carried scores: each seeded state's score on the genes that co-vary with its seeds in the data.

    A signature reads part of its state's programme (a 3-gene marker panel, of which the data may
    express one gene; a list that shares half of its genes with the programme); the seeds it gives
    mark the whole programme. Per state of ``ids`` with at least ``params.min_state_seeds`` seeds:
    the genes (columns of ``X``) whose AUROC of its seeds against the cells that do not score for it
    (the clusters ``groups`` whose mean z-score of the state is at most the specificity test's
    reference z, :func:`._state_specificity.reference_rows`) reaches ``params.carry_auroc`` (the
    ``params.carry_genes`` highest; none when fewer than ``params.carry_min_genes``) are its carried
    genes, and a cell's carried score is their mean log-expression, centred within the cell's sample as the
    components are, on the sample's mean less the part its mean z-scores predict
    (:func:`~hcctme.tl._state_expression.score_adjusted_means`)
    and scaled to unit sd. A second pass leaves out of the reference the cells whose first score is
    nearer the seeds' median than the reference's (a cluster of the state that its signature genes
    score low). Returns each carried state's scores, in the order of ``ids`` (states with fewer
    seeds, or without enough separating genes, are left out).
    """
    codes, n_samples = _expression.sample_codes(samples, X.shape[0])
    size = np.maximum(np.bincount(codes, minlength=n_samples), 1)
    columns = {}
    for j, state in enumerate(ids):
        mine = np.flatnonzero(labels == state)
        if mine.size < params.min_state_seeds:
            continue
        reference = _specificity.reference_rows(groups, z[:, j], groups[mine[0]])
        reference = reference[labels[reference] != state]
        first = _carried_score(X, mine, reference, codes, size, params, z)
        if first is None:
            continue
        below = reference[first[reference] < _specificity.midpoint(first, mine, reference)]
        second = _carried_score(X, mine, below, codes, size, params, z)
        columns[state] = first if second is None else second
    return columns


def purified_none(labels: np.ndarray, scores: dict[str, np.ndarray]) -> np.ndarray:
    """The seeds without the "none of these" seeds that a seeded state's carried score places with the state.

    A :data:`~hcctme.tl._state_seeds.NONE_CLASS` seed whose carried score of a state (``scores``, :func:`carried`)
    is above the midpoint between the median of that state's seeds and the median of the "none"
    seeds is no seed (``""``). The "none" clusters of shallow data hold state cells that their
    signature scores do not tell apart (noisy generator seed 101 CAFs: their highest z-score has
    median 1.13 in the state cells, 0.81 in the programme-less cells); the carried genes read the
    whole programme.
    """
    none = np.flatnonzero(labels == _seeds.NONE_CLASS)
    out = labels.copy()
    if not none.size:
        return out
    state_like = np.zeros(none.size, dtype=bool)
    for state, score in scores.items():
        mine = np.flatnonzero(labels == state)
        if mine.size:
            state_like |= score[none] > _specificity.midpoint(score, mine, none)
    out[none[state_like]] = ""
    return out


def _carried_score(X: sp.csr_matrix, mine: np.ndarray, reference: np.ndarray, codes: np.ndarray, size: np.ndarray,
                   params: SelfTrainParams, z: np.ndarray) -> np.ndarray | None:
    """The carried score of the seeds ``mine`` against the cells ``reference`` (:func:`carried`), or None."""
    if reference.size < params.min_seeds:
        return None
    chosen = _specificity.separating_genes(X, mine, reference, n_genes=params.carry_genes,
                                           threshold=params.carry_auroc, random_state=params.random_state)
    if chosen.size < params.carry_min_genes:
        return None
    raw = np.asarray(X[:, chosen].mean(axis=1), dtype=float).ravel()
    means = (np.bincount(codes, weights=raw, minlength=size.size) / size)[:, None]
    score = raw - _expression.score_adjusted_means(raw[:, None], codes, means, z)[codes, 0]
    return score / max(float(score.std()), 1e-12)


def nearest(pcs: np.ndarray, params: SelfTrainParams) -> np.ndarray | None:
    """Each cell's ``params.n_neighbors`` nearest other cells in PC space (rows: cells), or None (no smoothing).

    In a population of more than ``params.neighbour_pool`` cells the neighbours are searched among that
    many cells drawn at random (exact search costs the square of the population). The neighbours depend on the
    components and the pool only, so a population's seedings share them (:func:`call_population`): found once,
    not once per seeding (release 2.28; the k-nearest search was the largest part of the state step in a
    one-million-cell run, 62 of 387 s under cProfile, three times per population).
    """
    from sklearn.neighbors import NearestNeighbors

    n = pcs.shape[0]
    k = min(params.n_neighbors, n - 1)
    if k < 1 or params.smoothing <= 0:
        return None
    pool = np.arange(n)
    if n > params.neighbour_pool:
        pool = np.sort(np.random.default_rng(params.random_state).choice(n, params.neighbour_pool, replace=False))
    _, found = NearestNeighbors(n_neighbors=k + 1).fit(pcs[pool]).kneighbors(pcs)
    found = pool[found]
    is_self = found == np.arange(n)[:, None]
    # drop the cell itself where it was found, else the farthest of the k + 1
    drop = np.where(is_self.any(axis=1), is_self.argmax(axis=1), k)
    keep = np.ones_like(found, dtype=bool)
    keep[np.arange(n), drop] = False
    return found[keep].reshape(n, k)


def smooth(probs: np.ndarray, neighbours: np.ndarray | None, params: SelfTrainParams) -> np.ndarray:
    """Average each cell's class probabilities with those of its nearest neighbours in PC space.

    ``(1 - a) p_cell + a mean(p_neighbours)`` with ``a = params.smoothing`` over the cells ``neighbours``
    (:func:`nearest`; None: ``probs`` unchanged): a cell's call leans towards the calls of the cells whose
    expression it shares.
    """
    if neighbours is None:
        return probs
    return (1.0 - params.smoothing) * probs + params.smoothing * probs[neighbours].mean(axis=1)


def self_train(features: np.ndarray, labels: np.ndarray, params: SelfTrainParams,
               tested: frozenset[str] = frozenset()) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Fit on the seeds, predict all cells, refit on confident predictions.

    :data:`~hcctme.tl._state_seeds.NONE_CLASS` is left out of a refit when fewer than ``params.min_seeds`` cells are
    predicted "none" with the seed confidence: under balanced class weights that handful would weigh
    as much as a state's hundreds and carve out an unassigned region (Sade-Feldman 2018 T cells:
    2 cells, which left 28 of 88 cytotoxic cells unassigned). A state keeps its class however few
    cells it has there: dropping it would silence the state (Wu 2021 detox iCAF 17 -> 0 of 130
    calls, noisy generator CAF ARI 0.54 -> 0.47 over two seeds). A state of ``tested`` (its seeds confirmed
    by the specificity test on a full panel, :func:`~hcctme.tl._state_seeds.tested_on_full_panels`) with no
    cell predicted with the seed confidence is refitted on the cells it was fitted on (release 2.23: a sibling's
    seeds cut from its cells split their probabilities, none reached it, and the class was dropped; generator 10x
    seed 100 without CD10+ALPL+ neutrophils, a 25-cell PMN-MDSC cluster seeded NEU_CD10_ALPL through MME,
    PMN_MDSC's 53 seeds lost their class, and of the 186 PMN-MDSC cells none was called PMN_MDSC and 49
    NEU_CD10_ALPL). A short panel's seeds passed on one gene and may be no state at all: their class is dropped
    as before (held-out shallow_smartseq seed 7, 8 x 500 cells: 22 seeds of the unplanted 3-gene
    CAF_ONCOFETAL_POSTN, none predicted confidently; kept, they drew 89 calls, 58 of them CAFs in no state).

    Returns (classes, probabilities of every cell, the labels the last model was fitted on: ``""``
    for the cells it was not fitted on).
    """
    seeded = labels != ""
    probs = np.empty((features.shape[0], 0))
    classes = np.empty(0, dtype=object)
    train = labels
    for _ in range(max(params.rounds, 1)):
        train = np.where(seeded, labels, "").astype(object)
        model = _model(params).fit(features[seeded], labels[seeded].astype(str))
        classes = model.classes_.astype(object)
        probs = model.predict_proba(features)
        labels, seeded = _refit_cells(classes[probs.argmax(axis=1)], probs.max(axis=1) >= params.seed_confidence,
                                      train, classes, tested, params.min_seeds)
        if len(set(labels[seeded])) < 2:
            break
    return classes, probs, train


def _refit_cells(labels: np.ndarray, seeded: np.ndarray, train: np.ndarray, classes: np.ndarray,
                 tested: frozenset[str], min_seeds: int) -> tuple[np.ndarray, np.ndarray]:
    """The refit's labels and cells, from the predictions ``labels`` and which of them are confident (``seeded``).

    "None of these" is kept only from ``min_seeds`` confident cells on; each ``tested`` state no cell is ``seeded``
    for gets back the cells ``train`` (the labels of the fit) gave it (:func:`self_train`).
    """
    confident_none = seeded & (labels == _seeds.NONE_CLASS)
    if confident_none.sum() < min_seeds:
        seeded = seeded & ~confident_none
    for state in classes:
        if state not in tested or np.any(seeded & (labels == state)):
            continue
        fitted = train == state
        labels = np.where(fitted, state, labels).astype(object)
        seeded = seeded | fitted
    return labels, seeded


def _model(params: SelfTrainParams):
    from sklearn.linear_model import LogisticRegression

    return LogisticRegression(C=params.c, class_weight="balanced", max_iter=1000)


def cross_fitted(features: np.ndarray, train: np.ndarray, classes: np.ndarray, params: SelfTrainParams) -> np.ndarray:
    """Out-of-fold class probabilities (columns = ``classes``), averaged over ``params.repeats`` fold splits.

    In each split (fold assignment drawn with seed ``params.random_state + repeat``) the cells are
    divided into ``params.folds`` folds, each predicted by the model fitted on the training cells
    (``train != ""``) of the other folds; a class missing from a fold's training cells gets
    probability 0 there. Every cell's probabilities thus come from models that did not see its label.
    """
    n = features.shape[0]
    probs = np.zeros((n, classes.size))
    repeats = max(params.repeats, 1)
    for repeat in range(repeats):
        folds = np.random.default_rng(params.random_state + repeat).integers(0, params.folds, size=n)
        probs += _held_out(features, train, classes, folds, params)
    return probs / repeats


def _held_out(features: np.ndarray, train: np.ndarray, classes: np.ndarray, folds: np.ndarray,
              params: SelfTrainParams) -> np.ndarray:
    """Each fold's class probabilities from the model fitted on the other folds' training cells."""
    probs = np.zeros((features.shape[0], classes.size))
    column = {c: j for j, c in enumerate(classes)}
    for fold in range(params.folds):
        rows = folds == fold
        fit = (train != "") & ~rows
        if not rows.any():
            continue
        if len(set(train[fit])) < 2:  # too few training cells outside the fold: the in-sample fit
            fit = train != ""
        model = _model(params).fit(features[fit], train[fit].astype(str))
        probs[np.ix_(rows, [column[c] for c in model.classes_])] = model.predict_proba(features[rows])
    return probs


def temperature(probs: np.ndarray, train: np.ndarray, classes: np.ndarray) -> float:
    """The temperature ``T`` that minimises the class-balanced log loss of ``softmax(log p / T)`` on the labelled cells.

    ``train``: each cell's label (``""``: none); labels that are not among ``classes`` are left out (the "none of
    these" seeds excepted, below). Each labelled cell weighs the inverse of its label's count (every class weighs
    the same, as in the classifier's balanced fit): a large class of impure seeds does not set ``T`` on its own.

    Where every labelled cell's most probable class is its label, that loss falls as ``T`` falls, without a minimum:
    the fit stops at its bound, 0.05, a 20-fold sharpening of the log-probabilities, which the cells between the
    classes take too. Where, besides, the model has no "none of these" class (the refit dropped it,
    :func:`self_train`), the "none of these" seeds are labelled cells of no class it has: they enter the loss with a
    uniform target over ``classes``, together weighing as one class (outlier exposure: Hendrycks, Mazeika and
    Dietterich 2019, ICLR, arXiv:1812.04606), which bounds the sharpening by how far the model tells them apart from
    its classes; without such seeds (or with the class kept) a fit without a minimum still stops at the bound.
    Release 2.38: in the generator's held-out deep_10x seed 200 at 100 cells per patient, the naive-like CD8 T cells
    that the nine seedings' refits read 0.55 effector / 0.45 terminal on average were called at a mean confidence of
    0.93 (``T`` 0.05 in every seeding), 0.65 now.
    """
    from scipy.optimize import minimize_scalar
    from scipy.special import logsumexp

    column = {c: j for j, c in enumerate(classes)}
    rows = np.flatnonzero(np.isin(train, list(column)))  # labelled cells of a class the model has
    if rows.size == 0:
        return 1.0
    y = np.array([column[c] for c in train[rows]])
    weight = 1.0 / np.bincount(y, minlength=classes.size)[y]
    logp = np.log(np.clip(probs[rows], 1e-9, 1.0))
    separated = bool(np.all(probs[rows].argmax(axis=1) == y))
    outside = np.flatnonzero(train == _seeds.NONE_CLASS) if separated and _seeds.NONE_CLASS not in column \
        else np.empty(0, dtype=int)
    logq = np.log(np.clip(probs[outside], 1e-9, 1.0))

    def loss(t: float) -> float:
        scaled = logp / t
        value = -(weight * (scaled[np.arange(rows.size), y] - logsumexp(scaled, axis=1))).sum()
        total = weight.sum()
        if outside.size:  # cross-entropy against the uniform target, the seeds' mean
            uniform = logq / t
            value += -((1.0 / outside.size) * (uniform - logsumexp(uniform, axis=1)[:, None]).mean(axis=1)).sum()
            total += 1.0
        return float(value / total)

    return float(minimize_scalar(loss, bounds=(0.05, 20.0), method="bounded").x)


def scaled(probs: np.ndarray, t: float) -> np.ndarray:
    """``softmax(log p / t)`` row by row."""
    from scipy.special import softmax

    return softmax(np.log(np.clip(probs, 1e-9, 1.0)) / t, axis=1)


class PopulationCalls(NamedTuple):
    """One population's self-trained calls (:func:`call_population`)."""

    calls: np.ndarray  # the state, or "" for none, at the model's confidence
    confidence: np.ndarray  # the best state's probability
    seed_counts: dict[str, int]
    diagnostics: dict[str, Any]
    best: np.ndarray  # the best state of every cell
    eligible: np.ndarray  # whether the best state beats "none of these" (a call at any confidence it reaches)


def call_population(X: sp.csr_matrix, z: np.ndarray, ids: list[str], best: np.ndarray, confidence: np.ndarray,
                    called: np.ndarray, params: SelfTrainParams, min_confidence: float,
                    samples: np.ndarray | None = None, panel: GenePanel | None = None
                    ) -> PopulationCalls | None:
    """Self-trained calls (:class:`PopulationCalls`) for one population's non-artefact cells, or None.

    ``min_confidence`` is the model's (:data:`~hcctme._constants.STATE_MODEL_CONFIDENCE` in ``call_states``): the
    seedings' agreement and whether more are drawn are read on the calls at it; ``best`` and ``eligible`` give the
    calls at any other threshold.

    ``X``: log-normalised expression of those cells; ``z``: their standardised state scores;
    ``best`` / ``confidence`` / ``called``: the mixture's best state index, its posterior and
    whether it was called; ``samples``: each cell's sample (expression is centred within it, on the sample's
    mean less the part its mean z-scores predict);
    ``panel``: the signature and background genes of those cells
    (:func:`~hcctme.tl._state_seeds.confirm_seeds`; None skips the specificity test). None when the population is
    too small, or when the seeds are too few and there is no ``panel``; with a ``panel`` and too few seeds, the
    mixture's calls except those of the states whose candidate clusters were all declined (their calls are
    dropped, their confidence set to 0); a state the mixture calls but no cluster was a candidate for is first
    tested in its highest-scoring cluster (:func:`~hcctme.tl._state_seeds.tested_where_best`). A short panel no
    cluster seeds is looked for by its genes' expression first (:func:`~hcctme.tl._state_seeds.expression_seeds`);
    every short panel, seeded or not, then through the genes it is co-expressed with
    (:func:`~hcctme.tl._state_coexpression.coexpression_seeds`, release 2.39).
    A population is called by the mean of the probabilities of the seedings (:func:`seedings`: nine where it has
    fewer cells than its states' clusters need, else three; where they disagree, :func:`unstable`, up to
    ``params.seeding_batches`` times as many) that train the classifier, where they are at least half of them;
    otherwise by the mean of all the seedings, those without the classifier read as their mixture calls (each
    seeding's mixture calls are gated by its own cut's specificity test, not predicted from its seeds: a call stands
    where most cuts keep it), except the cells the trained seedings' mean calls an :func:`established` state, which
    keep that mean (chosen at ``min_confidence``: at another threshold ``best`` and ``eligible`` read the mean each
    cell was given; :func:`_averaged`). The seed counts and diagnostics are those of the first seeding
    averaged (one that trains the classifier where any does): ``specificity``
    (:func:`~hcctme.tl._state_seeds.confirm_seeds`), ``temperature`` (of the calibration; NaN without the
    classifier), ``seedings`` (how many were averaged), the seedings' :func:`agreement`, ``classes`` (:func:`classes`,
    of the seedings averaged that train the classifier) and, where seedings without it are averaged,
    ``mixture_kept`` (:func:`mixture_kept`, of all the seedings averaged) and ``established`` (:func:`established`).
    """
    if X.shape[0] < params.min_cells or X.shape[1] < 3:
        return None
    pcs = _expression.principal_components(X, params, samples, z)
    if pcs is None:
        return None
    neighbours = nearest(pcs, params)

    def fitted(batch: int) -> list[_Fit]:
        with one_blas_thread():  # hundreds of small logistic regressions
            return [fit for p in seedings(X.shape[0], len(ids), params, batch)
                    if (fit := _fitted(X, pcs, neighbours, z, ids, best, confidence, called, p, samples, panel))
                    is not None]

    fits = fitted(0)
    if not fits:
        return None
    mean = _averaged(fits, ids, min_confidence)
    if unstable(mean.agreed["state_agreement"], params.seeding_agreement):
        fits += [fit for batch in range(1, params.seeding_batches) for fit in fitted(batch)]
        mean = _averaged(fits, ids, min_confidence)
    used = mean.used
    diagnostics = {**used[0].diagnostics, "seedings": len(used), **mean.agreed}
    trained = [fit for fit in used if fit.trained]
    if trained:
        diagnostics["classes"] = classes(trained, ids)
    if len(trained) < len(used):
        diagnostics["mixture_kept"] = mixture_kept(used, ids, best, called)
        diagnostics["established"] = mean.established
    return PopulationCalls(mean.calls, mean.confidence, used[0].seed_counts, diagnostics, mean.best, mean.eligible)


def classes(fits: list[_Fit], ids: list[str]) -> dict[str, float]:
    """Per state, the share of ``fits`` (seedings that train the classifier) whose classifier has a class for it.

    The specificity tests the record keeps are the first seeding's; this says what all the seedings averaged did
    (He 2020's macrophages: TAM2_SPP1 has seeds in some of the cuts only, and its calls turn on which are drawn).
    """
    return {state: float(np.mean([_has_class(fit, j) for fit in fits])) for j, state in enumerate(ids)}


def _has_class(fit: _Fit, j: int) -> bool:
    """Whether ``fit``'s classifier has a class for the ``j``-th state (its probabilities are 0 without one)."""
    return bool(np.any(fit.states[:, j] > 0))


def mixture_kept(fits: list[_Fit], ids: list[str], best: np.ndarray, called: np.ndarray) -> dict[str, float]:
    """Per state the mixture calls or a classifier of ``fits`` has a class for, the share of ``fits`` that keep it.

    A seeding without the classifier keeps a state where its specificity test keeps the mixture's calls of it (the
    test keeps or drops them all, :func:`_mixture_fit`); one with the classifier (where fewer than half of the
    seedings have it, all are averaged: :func:`_averaged`) where its classifier has a class for the state. The mean
    of the seedings calls a state that few of them keep none of these (Wu 2021's TREG, kept by 1 of 9 since release
    2.32), unless it is :func:`established` (the cells the trained seedings call it keep their mean).
    """
    def keeps(fit: _Fit, j: int) -> bool:
        return _has_class(fit, j) if fit.trained else bool(np.any(fit.none[called & (best == j)] == 0))

    listed = set(np.unique(best[called]).tolist())
    listed |= {j for fit in fits if fit.trained for j in range(len(ids)) if _has_class(fit, j)}
    return {ids[j]: float(np.mean([keeps(fit, j) for fit in fits])) for j in sorted(listed)}


class _Averaged(NamedTuple):
    """The mean of a population's seedings (:func:`_averaged`)."""

    calls: np.ndarray  # at min_confidence
    confidence: np.ndarray
    best: np.ndarray  # each cell's best state
    eligible: np.ndarray  # whether it beats "none of these" (a call at any confidence it reaches)
    agreed: dict[str, Any]  # agreement()
    used: list[_Fit]
    established: list[str]  # the states whose cells take the trained seedings' mean where it calls them


def _averaged(fits: list[_Fit], ids: list[str], min_confidence: float) -> _Averaged:
    """The mean of the seedings that train the classifier where they are at least half of them, else of all.

    Returns the calls, best state, :func:`agreement` and the :func:`established` states; the calls are those of the
    mean probabilities of the seedings averaged (:func:`_called`), those that train the classifier first. Where most
    cuts find too few seeds to train it, the one that does may have seeded a state in a cluster the other cuts
    decline: averaged alone, its classifier called 66 of deep_10x seed 201's 94 endothelial cells ENDO_ONCOFETAL_PLVAP
    at a mean confidence of 0.88, 23 of them right (100 cells per patient; release 2.36 averages it with the eight
    cuts that declined the state: no call).
    That cut seeded the 3-gene panel through one gene, which the specificity test lets a short panel do. A state that
    at least half of the training cuts seeded through its whole list's test (:func:`established`) is called by their
    mean (release 2.37): a cell that mean calls such a state (at ``min_confidence``) takes its probabilities, every
    other cell keeps the mean of all (the generator's Tregs and PMN-MDSC at 100 cells per patient, noisy_10x seeds 200
    and 201: 21 of 25 calls right, where the mean of all called none). The agreement is read over all the seedings
    averaged, so an established state's calls, which the seedings without the classifier do not make, read as one
    draw of several and more seedings are drawn (:func:`unstable`): the state is then established over more cuts.
    """
    trained = [fit for fit in fits if fit.trained]
    used = trained if 2 * len(trained) >= len(fits) else trained + [fit for fit in fits if not fit.trained]
    states, none = np.mean([fit.states for fit in used], axis=0), np.mean([fit.none for fit in used], axis=0)
    established_states = established(trained, ids) if len(used) > len(trained) else []
    if established_states:
        own_states = np.mean([fit.states for fit in trained], axis=0)
        own_none = np.mean([fit.none for fit in trained], axis=0)
        rows = np.isin(_called(own_states, own_none, ids, min_confidence)[0], established_states)
        states[rows], none[rows] = own_states[rows], own_none[rows]
    calls, conf = _called(states, none, ids, min_confidence)
    each = [_called(fit.states, fit.none, ids, min_confidence)[0] for fit in used]
    best = np.asarray(ids, dtype=object)[states.argmax(axis=1)]
    return _Averaged(calls, conf, best, conf > none, agreement(calls, each, ids), used, established_states)


def established(fits: list[_Fit], ids: list[str]) -> list[str]:
    """The states that at least half of ``fits`` (seedings that train the classifier) seeded through the full test.

    A cluster seeds a state of eight or more measured genes where the binomial or majority route of its gene test
    passes (:func:`._state_specificity.specific`), and a short panel where one of its genes is up there, which a
    programme's shared gene does in a cluster of another state. Where fewer than half of the seedings train the
    classifier (release 2.36's population-size runs at 100-400 cells per patient, seeds 200-201, and two of the three
    battery cohorts whose endothelial calls it changed), the trained cuts' mean called the 3-gene
    ENDO_ONCOFETAL_PLVAP panel in 19 populations, 287 of 716 calls right (0.40, near the state's share of the
    cells), and TREG or PMN_MDSC, seeded through their lists, in 4, 46 of 59 right (0.78). Read from each fit's
    ``full_panel_seeds`` (:func:`~hcctme.tl._state_seeds.tested_on_full_panels`, the set that also lets such a state
    keep few seeds, :func:`~hcctme.tl._state_seeds.with_enough_seeds`); ``[]`` without the test (no panel) or
    without ``fits``.
    """
    if not fits:
        return []
    return [state for state in ids if 2 * sum(state in fit.full_panel_seeds for fit in fits) >= len(fits)]


def unstable(state_agreement: Mapping[str, float], below: float) -> dict[str, float]:
    """The states of whose calls one seeding makes fewer than ``below`` on average, with that share.

    ``state_agreement``: :func:`agreement`'s. Non-empty where the seedings disagree.
    """
    return {state: float(share) for state, share in state_agreement.items() if share < below}


def split(kept: Mapping[str, float]) -> dict[str, float]:
    """The states whose mixture calls some seedings keep and others drop, with the share keeping them.

    ``kept``: :func:`mixture_kept`'s. A state every seeding drops is declined, not split.
    """
    return {state: float(share) for state, share in kept.items() if 0.0 < share < 1.0}


def _called(state_probs: np.ndarray, none_probs: np.ndarray, ids: list[str], min_confidence: float
            ) -> tuple[np.ndarray, np.ndarray]:
    """Each cell's call (``""`` for none) and its best state's probability (``state_probs``: columns follow ``ids``).

    The best state is the call where its probability beats ``none_probs`` and reaches ``min_confidence``.
    """
    top = state_probs.argmax(axis=1)
    conf = state_probs[np.arange(top.size), top]
    calls = np.where((conf > none_probs) & (conf >= min_confidence), np.asarray(ids, dtype=object)[top], "")
    return calls.astype(object), conf


def agreement(calls: np.ndarray, each: list[np.ndarray], ids: list[str]) -> dict[str, Any]:
    """How far the seedings a population's ``calls`` average agree (``each``: every seeding's own calls).

    ``agreement``: the share of the cells that one seeding calls as the mean does (the state, or none), averaged over
    the seedings; ``state_agreement``: per state the mean calls, the share of them that one seeding calls that state,
    averaged over the seedings. NaN and ``{}`` with one seeding (nothing to compare).

    Which clusters seed a state turns on the cut, more on real data than on the generator (Sade-Feldman 2018's T
    cells, :func:`seedings`): a low share says that the calls of that state are one draw of several.
    """
    if len(each) < 2:
        return {"agreement": float("nan"), "state_agreement": {}}
    same = np.mean([c == calls for c in each], axis=0)  # per cell, the share of the seedings calling it as the mean
    return {"agreement": float(same.mean()),
            "state_agreement": {s: float(np.mean(same[calls == s])) for s in ids if np.any(calls == s)}}


def seedings(n_cells: int, n_states: int, params: SelfTrainParams, batch: int = 0) -> list[SelfTrainParams]:
    """The seedings a population of ``n_cells`` cells is called by (``batch`` 0), or batch ``batch`` of more of them.

    Where its clusters fit, ``params.seedings`` random states (k-means and calibration folds; release 2.26; the
    nearest cells of the smoothing are found once, :func:`nearest`), sharing out ``params.repeats`` fold splits (at
    least one each): which clusters seed a state turns on the cut (10x generator seed 200: CD8 T-cell ARI 0.84-0.86
    at random states 0-5, 0.62-0.63 at 10-12; Sade-Feldman 2018's terminal-exhausted cells 1-142 of 166 called over
    six random states). ``params`` alone with one seeding.

    With fewer cells than its states' clusters need (:func:`~hcctme.tl._state_seeds.cells_for_clusters`), k-means
    cuts fewer clusters than its states and "none of these" need, which states get seeds turns on the cut, and
    one seeding's classifier calls the cells of the unseeded states a seeded state with the confidence of seeds they
    do not resemble (release 2.23: 72-79 % of the calls right at a mean confidence 0.14-0.18 above that). Such a
    population is seeded with one cluster per each of ``params.small_cluster_cells`` cells (so more of its states
    lead a cluster) and ``params.small_seedings`` random states each (k-means and calibration folds), and the mean
    of their probabilities is the call: a call that turns on the cut loses confidence (release 2.24).

    Batch ``b`` is the same seedings at the next random states (``b`` x as many past ``params.random_state``), drawn
    where the first batch disagrees (:func:`call_population`; release 2.29).
    """
    if n_cells >= _seeds.cells_for_clusters(n_states, params):
        n = max(params.seedings, 1)
        return [replace(params, random_state=params.random_state + batch * n + r, repeats=max(1, params.repeats // n))
                for r in range(n)]
    n = params.small_seedings
    return [replace(params, cluster_cells=cells, random_state=params.random_state + batch * n + r)
            for cells in params.small_cluster_cells for r in range(n)]


@dataclass(frozen=True)
class _Fit:
    """One seeding's probabilities, seed counts per class and diagnostics.

    ``states``: each cell's probability of each state (columns follow the state ids; 0 for a state with no class);
    ``none``: of no state.
    """

    states: np.ndarray
    none: np.ndarray
    seed_counts: dict[str, int]
    diagnostics: dict[str, Any]
    trained: bool = True  # False: the mixture's calls (too few seeds for the classifier)
    full_panel_seeds: frozenset[str] = frozenset()  # the states its cut seeded through a list that is no short panel


def _fitted(X: sp.csr_matrix, pcs: np.ndarray, neighbours: np.ndarray | None, z: np.ndarray, ids: list[str],
            best: np.ndarray, confidence: np.ndarray, called: np.ndarray, params: SelfTrainParams,
            samples: np.ndarray | None, panel: GenePanel | None) -> _Fit | None:
    """One seeding's fit (:func:`call_population`, whose arguments these are).

    ``pcs``: the population's components; ``neighbours``: each cell's nearest cells among them (:func:`nearest`).
    """
    mixture_calls = np.where(called, np.asarray(ids, dtype=object)[best], "")
    groups = _seeds.clusters(pcs, len(ids), params)
    summary = _seeds.summarise(groups, z, ids, mixture_calls, params)
    candidates = _seeds.cluster_candidates(summary, ids, params)
    labels = _seeds.cluster_seeds(summary, ids, params, candidates)
    specificity: dict[str, dict[str, Any]] = {}
    unbacked = None
    if panel is not None:
        labels, specificity = _seeds.confirm_seeds(labels, groups, ids, panel, z, candidates)
        labels, unbacked = _seeds.unbacked_majorities(labels, summary, ids, panel, z, params.min_seeds)
    mixture_seeds = _seeds.seeds(ids, best, confidence, called, z, params)
    combined = _seeds.combined_seeds(labels, mixture_seeds, called, unbacked)
    if panel is None:
        labels = combined
    else:
        labels = _seeds.expression_seeds(combined, labels, mixture_seeds, groups, z, ids, panel, specificity, params)
        labels = _coexpression.coexpression_seeds(labels, mixture_seeds, groups, X, samples, z, ids, panel,
                                                  specificity, params)
    if not _seeds.usable(labels, params):
        if panel is None:
            return None
        return _mixture_fit(mixture_calls, best, confidence, called, groups, ids, panel, z, specificity, params)
    scores = carried(X, labels, groups, z, ids, samples, params)
    purified = purified_none(labels, scores)
    if _seeds.usable(purified, params):
        labels = purified
    values, counts = np.unique(labels[labels != ""], return_counts=True)
    tested = _seeds.tested_on_full_panels(specificity, panel)
    labels = _seeds.with_enough_seeds(labels, params, tested)
    features = np.column_stack([pcs, z, *scores.values()])
    classes, probs, train = self_train(features, labels, params, tested)
    t = 1.0
    if params.folds >= 2:  # calibration: held-out probabilities, smoothed, temperature fitted on the training cells
        probs = smooth(cross_fitted(features, train, classes, params), neighbours, params)
        t = temperature(probs, labels, classes)
        probs = scaled(probs, t)
    else:
        probs = smooth(probs, neighbours, params)
    column = {c: j for j, c in enumerate(classes)}
    states = np.column_stack([probs[:, column[s]] if s in column else np.zeros(probs.shape[0]) for s in ids])
    none = probs[:, column[_seeds.NONE_CLASS]] if _seeds.NONE_CLASS in column else np.zeros(probs.shape[0])
    seed_counts = {str(v): int(c) for v, c in zip(values, counts, strict=True)}
    return _Fit(states, none, seed_counts, {"specificity": specificity, "temperature": t}, full_panel_seeds=tested)


def _mixture_fit(mixture_calls: np.ndarray, best: np.ndarray, confidence: np.ndarray, called: np.ndarray,
                 groups: np.ndarray, ids: list[str], panel: GenePanel, z: np.ndarray,
                 specificity: dict[str, dict[str, Any]], params: SelfTrainParams) -> _Fit:
    """Too few seeds for the classifier: the mixture's calls as a :class:`_Fit`.

    Except those of states whose clusters were all declined by the specificity test (a state no cluster was a
    candidate for: its best cluster). A kept call's state gets the mixture's posterior and no state 0; an uncalled
    cell keeps its posterior on its best state and no state gets 1 (it is not called); a declined call gets 0
    everywhere and no state 1.
    """
    _seeds.tested_where_best(specificity, mixture_calls, groups, ids, panel, z, params.min_seeds)
    declined = [s for s, d in specificity.items() if d["clusters_tested"] and not d["seeded"]]
    kept = (mixture_calls != "") & ~np.isin(mixture_calls, declined)
    states = np.zeros((best.size, len(ids)))
    rows = np.flatnonzero(kept | ~called)
    states[rows, best[rows]] = confidence[rows]
    return _Fit(states, np.where(kept, 0.0, 1.0), {}, {"specificity": specificity, "temperature": float("nan")},
                trained=False)
