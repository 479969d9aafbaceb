"""Discriminative self-training of state calls inside one parent population (numpy/scipy/sklearn).

A state signature reads a handful of the genes of a state's programme; the mixture over the
signature scores (:mod:`hcctme.tl._state_model`) separates states only as far as those few genes
do. The programme itself moves many more genes, which the parent population's principal
components carry. This step learns it from the cells the scores call confidently:

1. **Seeds.** Cells whose mixture posterior for one state is at least
   :data:`~hcctme._constants.STATE_SEED_CONFIDENCE` (or the median posterior of that state's
   calls, when lower) are seeds of that state; cells whose every
   state z-score is at most :data:`~hcctme._constants.STATE_NONE_SEED_Z` (low in all of them) are
   seeds of "none of these". Artefact cells are neither seeds nor called.
2. **Features.** The top :data:`~hcctme._constants.STATE_SELFTRAIN_PCS` principal components of
   the :data:`~hcctme._constants.STATE_SELFTRAIN_HVGS` most variable log-normalised genes of the
   population (sparse, implicitly centred PCA: memory bounded by the sparse matrix), scaled to
   the first component's sd, plus the state z-scores.
3. **Classifier.** A multinomial logistic regression with balanced class weights (a rare state
   is not swamped by a frequent one) is fitted on the seeds, predicts every cell, and is refitted
   on its own predictions with probability >= the seed confidence
   (:data:`~hcctme._constants.STATE_SELFTRAIN_ROUNDS` rounds).
4. **Call.** The probability of the best state is the confidence; the call is that state when
   it is the most probable class (states and "none") and reaches ``min_confidence``.

Deterministic (fixed ``random_state``). A population with fewer than
:data:`~hcctme._constants.STATE_SELFTRAIN_MIN_CELLS` cells, or without seeds of at least two
classes (:data:`~hcctme._constants.STATE_SELFTRAIN_MIN_SEEDS` each), keeps the mixture calls.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import scipy.sparse as sp

from hcctme import _validate
from hcctme._constants import (
    STATE_NONE_SEED_Z,
    STATE_SEED_CONFIDENCE,
    STATE_SELFTRAIN_C,
    STATE_SELFTRAIN_HVG_MARGIN,
    STATE_SELFTRAIN_HVGS,
    STATE_SELFTRAIN_MIN_CELLS,
    STATE_SELFTRAIN_MIN_SEEDS,
    STATE_SELFTRAIN_PCS,
    STATE_SELFTRAIN_ROUNDS,
    Defaults,
)

NONE_CLASS = "none of these"


@dataclass(frozen=True)
class SelfTrainParams:
    """Parameters of the self-training step (see the module docstring)."""

    rounds: int = STATE_SELFTRAIN_ROUNDS
    seed_confidence: float = STATE_SEED_CONFIDENCE
    none_seed_z: float = STATE_NONE_SEED_Z
    c: float = STATE_SELFTRAIN_C
    n_pcs: int = STATE_SELFTRAIN_PCS
    n_hvgs: int = STATE_SELFTRAIN_HVGS
    min_cells: int = STATE_SELFTRAIN_MIN_CELLS
    min_seeds: int = STATE_SELFTRAIN_MIN_SEEDS
    random_state: int = 0

    def to_dict(self) -> dict[str, float | int]:
        return dict(self.__dict__)


def log_expression(X) -> sp.csr_matrix:
    """``X`` as sparse log-normalised expression: raw counts (integers) are scaled to 10,000 per cell and log1p'd."""
    X = sp.csr_matrix(X, dtype=np.float32)
    return _normalised(X, _holds_counts(X.data))


def _holds_counts(values: np.ndarray) -> bool:
    """Whether the first stored values of a population (at most ``_COUNTS_PROBE``) are non-negative integers."""
    data = values[:_COUNTS_PROBE]
    return bool(data.size and np.all(data >= 0) and np.allclose(data, np.round(data)))


_COUNTS_PROBE = 100_000


def _normalised(X: sp.csr_matrix, counts: bool) -> sp.csr_matrix:
    if counts:
        total = np.asarray(X.sum(axis=1)).ravel()
        X = sp.csr_matrix(sp.diags((1e4 / np.maximum(total, 1.0)).astype(np.float32)) @ X)
        X.data = np.log1p(X.data)
    return X


def log_expression_chunked(matrix: Any, rows: np.ndarray, params: SelfTrainParams, *,
                           chunk_size: int = Defaults.CHUNK_SIZE) -> sp.csr_matrix:
    """``log_expression(matrix[rows])`` restricted to the genes :func:`principal_components` can choose.

    For matrices on disk: ``rows`` are read ``chunk_size`` at a time, in three passes (the counts
    check on the first values, per-gene mean and variance, then the candidate genes' values), so
    memory is set by one chunk and the population's cells x candidate genes, not by all its genes.
    The candidates are the ``n_hvgs + STATE_SELFTRAIN_HVG_MARGIN`` most variable genes (float64
    sums), columns in their original order, a superset of the genes principal_components then
    takes (it recomputes the variances on these columns exactly as on the whole matrix).
    """
    def blocks():
        for start in range(0, len(rows), chunk_size):
            yield sp.csr_matrix(_validate.in_memory(matrix[rows[start:start + chunk_size]]), dtype=np.float32)

    probe: list[np.ndarray] = []
    for block in blocks():
        probe.append(block.data)
        if sum(p.size for p in probe) >= _COUNTS_PROBE:
            break
    counts = _holds_counts(np.concatenate(probe) if probe else np.empty(0, np.float32))
    sums = np.zeros(matrix.shape[1])
    squares = np.zeros(matrix.shape[1])
    for block in blocks():
        X = _normalised(block, counts)
        sums += np.asarray(X.sum(axis=0, dtype=np.float64)).ravel()
        squares += np.asarray(X.multiply(X).sum(axis=0, dtype=np.float64)).ravel()
    var = squares / max(len(rows), 1) - (sums / max(len(rows), 1)) ** 2
    keep = np.sort(np.argsort(-var, kind="stable")[: params.n_hvgs + STATE_SELFTRAIN_HVG_MARGIN])
    parts = [_normalised(block, counts)[:, keep] for block in blocks()]
    return sp.csr_matrix(sp.vstack(parts, format="csr")) if parts else sp.csr_matrix((0, len(keep)), dtype=np.float32)


def principal_components(X: sp.csr_matrix, params: SelfTrainParams) -> np.ndarray | None:
    """Top PCs of the most variable genes of ``X`` (cells of one population), genes scaled to unit variance.

    None when fewer than 3 genes vary.
    """
    from sklearn.decomposition import PCA

    mean = np.asarray(X.mean(axis=0)).ravel()
    var = np.asarray(X.multiply(X).mean(axis=0)).ravel() - mean ** 2
    genes = np.argsort(-var, kind="stable")[: min(params.n_hvgs, int(np.sum(var > 0)))]
    sub = sp.csr_matrix(X[:, genes] @ sp.diags((1.0 / np.sqrt(var[genes])).astype(np.float32)))
    n_comps = min(params.n_pcs, sub.shape[0] - 2, sub.shape[1] - 1)
    if n_comps < 2:
        return None
    pcs = PCA(n_components=n_comps, svd_solver="arpack", random_state=params.random_state).fit_transform(sub)
    return pcs / max(float(pcs[:, 0].std()), 1e-12)


def seeds(ids: list[str], best: np.ndarray, confidence: np.ndarray, called: np.ndarray, z: np.ndarray,
          params: SelfTrainParams) -> np.ndarray:
    """Seed label per cell: a state id, :data:`NONE_CLASS`, or ``""`` (not a seed).

    A state's seeds are its calls with a posterior of at least the seed confidence, or at least
    the median posterior of its calls when that is lower: a state the mixture calls with little
    confidence keeps its better half as seeds instead of dropping out of the classifier.
    """
    labels = np.full(best.size, "", dtype=object)
    state = np.zeros(best.size, dtype=bool)
    for j, state_id in enumerate(ids):
        mine = called & (best == j)
        if mine.any():
            level = min(params.seed_confidence, float(np.median(confidence[mine])))
            state |= mine & (confidence >= level)
            labels[mine & (confidence >= level)] = state_id
    labels[~state & (z.max(axis=1) <= params.none_seed_z)] = NONE_CLASS
    return labels


def self_train(features: np.ndarray, labels: np.ndarray, params: SelfTrainParams) -> tuple[np.ndarray, np.ndarray]:
    """Fit on the seeds, predict all cells, refit on confident predictions; (classes, probabilities)."""
    from sklearn.linear_model import LogisticRegression

    seeded = labels != ""
    probs = np.empty((features.shape[0], 0))
    classes = np.empty(0, dtype=object)
    for _ in range(max(params.rounds, 1)):
        model = LogisticRegression(C=params.c, class_weight="balanced", max_iter=1000)
        model.fit(features[seeded], labels[seeded].astype(str))
        classes = model.classes_.astype(object)
        probs = model.predict_proba(features)
        labels = classes[probs.argmax(axis=1)]
        seeded = probs.max(axis=1) >= params.seed_confidence
        if len(set(labels[seeded])) < 2:
            break
    return classes, probs


def usable(labels: np.ndarray, params: SelfTrainParams) -> bool:
    """Whether the seeds hold at least two classes with enough cells each."""
    values, counts = np.unique(labels[labels != ""], return_counts=True)
    return values.size >= 2 and int(np.sum(counts >= params.min_seeds)) >= 2


def call_population(X: sp.csr_matrix, z: np.ndarray, ids: list[str], best: np.ndarray, confidence: np.ndarray,
                    called: np.ndarray, params: SelfTrainParams, min_confidence: float
                    ) -> tuple[np.ndarray, np.ndarray, dict[str, int]] | None:
    """Self-trained (calls, confidence, seed counts) for one population's non-artefact cells, or None.

    ``X``: log-normalised expression of those cells; ``z``: their standardised state scores;
    ``best`` / ``confidence`` / ``called``: the mixture's best state index, its posterior and
    whether it was called. None when the population is too small or the seeds too few.
    """
    if X.shape[0] < params.min_cells or X.shape[1] < 3:
        return None
    labels = seeds(ids, best, confidence, called, z, params)
    if not usable(labels, params):
        return None
    values, counts = np.unique(labels[labels != ""], return_counts=True)
    keep = set(values[counts >= params.min_seeds])
    labels = np.where(np.isin(labels, list(keep)), labels, "")
    pcs = principal_components(X, params)
    if pcs is None:
        return None
    features = np.hstack([pcs, z])
    classes, probs = self_train(features, labels, params)
    state_cols = [j for j, c in enumerate(classes) if c != NONE_CLASS]
    top = np.asarray(state_cols)[probs[:, state_cols].argmax(axis=1)]
    conf = probs[np.arange(probs.shape[0]), top]
    winner = probs.argmax(axis=1)
    calls = np.where((winner == top) & (conf >= min_confidence), classes[top], "")
    return calls.astype(object), conf, {str(v): int(c) for v, c in zip(values, counts, strict=True)}
