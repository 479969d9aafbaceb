"""Discriminative self-training of state calls inside one parent population (numpy/scipy/sklearn).

A state signature reads a handful of the genes of a state's programme; the mixture over the
signature scores (:mod:`hcctme.tl._state_model`) separates states only as far as those few genes
do. The programme itself moves many more genes, which the parent population's expression
carries. This step learns it:

1. **Features.** The top :data:`~hcctme._constants.STATE_SELFTRAIN_PCS` principal components of
   the :data:`~hcctme._constants.STATE_SELFTRAIN_HVGS` genes of largest within-sample variance,
   log-normalised and centred within each sample (the components follow states, not patients'
   batch shifts; ARPACK on the implicitly centred sparse matrix, or from
   :data:`~hcctme._constants.STATE_SELFTRAIN_GRAM_CELLS` cells on the centred gene covariance),
   plus the state z-scores.
2. **Seeds from clusters** (confirmed by :mod:`hcctme.tl._state_specificity`). K-means clusters
   of the cells in PC space (2 K + 4); a cluster is a seed of the state whose mean z-score is
   highest there when that mean reaches :data:`~hcctme._constants.STATE_CLUSTER_SEED_Z`, at least
   :data:`~hcctme._constants.STATE_CLUSTER_SEED_SHARE` of that state's highest cluster mean, and
   :data:`~hcctme._constants.STATE_CLUSTER_SUPPORT` of the cluster's cells are that state's
   mixture calls, or the mean reaches :data:`~hcctme._constants.STATE_CLUSTER_STRONG_Z`, or the
   mixture calls the cluster's cells that state more often than all other states together, or the
   mixture calls the state nowhere in the population and its mean leads the cluster's next state by
   :data:`~hcctme._constants.STATE_CLUSTER_UNCALLED_LEAD`. A cluster
   that its best state does not seed, but of whose cells at least
   :data:`~hcctme._constants.STATE_CLUSTER_MAJORITY` are one state's mixture calls, seeds that state
   where its mean z-score is high as above and nothing where it is not (cells on a continuum, or
   highest in a sibling's list through shared genes, are the state's cells); the other clusters are
   seeds of "none of these" (naive-like or monocyte-like cells that score moderately for a state's
   signature). A cell whose confident mixture call
   (posterior >= :data:`~hcctme._constants.STATE_SEED_CONFIDENCE`, or the median posterior of
   that state's calls when lower) names another class is left out of the seeds, and a cell the
   mixture calls a state at all is no "none of these" seed (:func:`combined_seeds`). A cluster the
   specificity test declines is a seed of "none of these", or of no class when its state's median
   gene is up there and another cluster seeds the state (:func:`confirm_seeds`). A short panel no
   cluster seeds is looked for by its genes' mean log expression, which a within-cell rank score
   does not follow (:func:`expression_seeds`).
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
   :data:`~hcctme._constants.STATE_SELFTRAIN_MIN_STATE_SEEDS`: :func:`with_enough_seeds`),
   predicts every cell, and is refitted on its own predictions with probability >=
   the seed confidence (:data:`~hcctme._constants.STATE_SELFTRAIN_ROUNDS` rounds); "none of
   these" stays in a refit only where at least
   :data:`~hcctme._constants.STATE_SELFTRAIN_MIN_SEEDS` cells are predicted "none" with that
   confidence (:func:`self_train`).
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
   classifier's own confident predictions.
6. **Call.** The probability of the best state is the confidence; the call is that state when
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
    STATE_CALIBRATION_FOLDS,
    STATE_CALIBRATION_REPEATS,
    STATE_CARRY_AUROC,
    STATE_CARRY_GENES,
    STATE_CARRY_MIN_GENES,
    STATE_CLUSTER_MAJORITY,
    STATE_CLUSTER_SCATTERED_CALLED,
    STATE_CLUSTER_SEED_SHARE,
    STATE_CLUSTER_SEED_Z,
    STATE_CLUSTER_STRONG_Z,
    STATE_CLUSTER_SUPPORT,
    STATE_CLUSTER_UNCALLED_LEAD,
    STATE_NONE_SEED_Z,
    STATE_SEED_CONFIDENCE,
    STATE_SELFTRAIN_C,
    STATE_SELFTRAIN_GRAM_CELLS,
    STATE_SELFTRAIN_HVG_MARGIN,
    STATE_SELFTRAIN_HVGS,
    STATE_SELFTRAIN_MAX_CLUSTERS,
    STATE_SELFTRAIN_MIN_CELLS,
    STATE_SELFTRAIN_MIN_SEEDS,
    STATE_SELFTRAIN_MIN_STATE_SEEDS,
    STATE_SELFTRAIN_PCS,
    STATE_SELFTRAIN_ROUNDS,
    STATE_SELFTRAIN_SVD_TOL,
    STATE_SHORT_EXPRESSION_AUROC,
    STATE_SMOOTH_NEIGHBORS,
    STATE_SMOOTH_POOL,
    STATE_SMOOTHING,
    Defaults,
)
from hcctme.tl import _state_specificity as _specificity
from hcctme.tl._state_specificity import GenePanel

NONE_CLASS = "none of these"
_GRAM_BLOCK_VALUES = 8_000_000  # values per dense block of rows in the covariance's pass (64 MB)


@dataclass(frozen=True)
class SelfTrainParams:
    """Parameters of the self-training step (see the module docstring)."""

    rounds: int = STATE_SELFTRAIN_ROUNDS
    seed_confidence: float = STATE_SEED_CONFIDENCE
    none_seed_z: float = STATE_NONE_SEED_Z
    c: float = STATE_SELFTRAIN_C
    n_pcs: int = STATE_SELFTRAIN_PCS
    gram_cells: int = STATE_SELFTRAIN_GRAM_CELLS
    n_hvgs: int = STATE_SELFTRAIN_HVGS
    min_cells: int = STATE_SELFTRAIN_MIN_CELLS
    min_seeds: int = STATE_SELFTRAIN_MIN_SEEDS
    min_state_seeds: int = STATE_SELFTRAIN_MIN_STATE_SEEDS
    max_clusters: int = STATE_SELFTRAIN_MAX_CLUSTERS
    cluster_z: float = STATE_CLUSTER_SEED_Z
    cluster_share: float = STATE_CLUSTER_SEED_SHARE
    cluster_support: float = STATE_CLUSTER_SUPPORT
    cluster_strong_z: float = STATE_CLUSTER_STRONG_Z
    cluster_majority: float = STATE_CLUSTER_MAJORITY
    cluster_uncalled_lead: float = STATE_CLUSTER_UNCALLED_LEAD
    cluster_scattered_called: float = STATE_CLUSTER_SCATTERED_CALLED
    n_neighbors: int = STATE_SMOOTH_NEIGHBORS
    smoothing: float = STATE_SMOOTHING
    neighbour_pool: int = STATE_SMOOTH_POOL
    folds: int = STATE_CALIBRATION_FOLDS
    repeats: int = STATE_CALIBRATION_REPEATS
    carry_genes: int = STATE_CARRY_GENES
    carry_min_genes: int = STATE_CARRY_MIN_GENES
    carry_auroc: float = STATE_CARRY_AUROC
    random_state: int = 0

    def to_dict(self) -> dict[str, float | int]:
        return dict(self.__dict__)


def log_expression(X) -> sp.csr_matrix:
    """``X`` as sparse log-normalised expression: raw counts (integers) are scaled to 10,000 per cell and log1p'd."""
    X = sp.csr_matrix(X, dtype=np.float32)
    return _normalised(X, _holds_counts(X.data))


def holds_counts(matrix: Any, rows: np.ndarray, *, chunk_size: int = Defaults.CHUNK_SIZE) -> bool:
    """Whether the first stored values of ``matrix[rows]`` (at most ``_COUNTS_PROBE``) are raw counts."""
    probe: list[np.ndarray] = []
    step = min(chunk_size, _PROBE_ROWS)  # a few hundred rows hold the probe: reading a whole chunk costs seconds
    for start in range(0, len(rows), step):
        probe.append(sp.csr_matrix(_validate.rows_in_memory(matrix, rows[start:start + step])).data)
        if sum(p.size for p in probe) >= _COUNTS_PROBE:
            break
    return _holds_counts(np.concatenate(probe) if probe else np.empty(0, np.float32))


def _holds_counts(values: np.ndarray) -> bool:
    """Whether the first stored values of a population (at most ``_COUNTS_PROBE``) are non-negative integers."""
    data = values[:_COUNTS_PROBE]
    return bool(data.size and np.all(data >= 0) and np.allclose(data, np.round(data)))


_COUNTS_PROBE = 100_000
_PROBE_ROWS = 512


def _normalised(X: sp.csr_matrix, counts: bool) -> sp.csr_matrix:
    """Counts scaled to 10,000 per cell and log1p'd; other values as they are, duplicate entries summed.

    Each cell holds one value per gene (the matrix product sums duplicates; a copy is summed for other
    values, the input untouched): the mean squares and sample sums add stored values one by one.
    """
    if counts:
        total = np.asarray(X.sum(axis=1)).ravel()
        X = sp.csr_matrix(sp.diags((1e4 / np.maximum(total, 1.0)).astype(np.float32)) @ X)
        X.data = np.log1p(X.data)
    elif not X.has_canonical_format:
        X = X.copy()
        X.sum_duplicates()
    return X


def _sample_codes(samples: np.ndarray | None, n: int) -> tuple[np.ndarray, int]:
    """Integer code of each cell's sample (one sample when ``samples`` is None) and the number of samples."""
    if samples is None:
        return np.zeros(n, dtype=int), 1
    _, codes = np.unique(np.asarray(samples).astype(str), return_inverse=True)
    return codes.astype(int), int(codes.max()) + 1


def log_expression_chunked(matrix: Any, rows: np.ndarray, params: SelfTrainParams, samples: np.ndarray | None = None,
                           *, panel_columns: np.ndarray | None = None, ranked: np.ndarray | None = None,
                           chunk_size: int = Defaults.CHUNK_SIZE
                           ) -> tuple[sp.csr_matrix, sp.csc_matrix | None, np.ndarray]:
    """``log_expression(matrix[rows])`` restricted to the genes :func:`principal_components` can choose.

    For matrices on disk: ``rows`` are read ``chunk_size`` at a time, in three passes (the counts
    check on the first values, per-gene mean and variance, then the candidate genes' values), so
    memory is set by one chunk and the population's cells x candidate genes, not by all its genes.
    The candidates are the ``n_hvgs + STATE_SELFTRAIN_HVG_MARGIN`` genes of largest within-sample
    variance (``samples``: each row's sample, as for principal_components; float64 sums), columns in
    their original order, a superset of the genes principal_components then takes (it recomputes the
    variances on these columns exactly as on the whole matrix). With ``panel_columns``, the same
    pass also returns those columns, log-normalised over whole rows (the specificity test's genes);
    otherwise the second value is None. The third value: the candidates' column positions in ``matrix``.
    ``ranked`` (boolean over ``rows``): the rows whose variances rank the candidates (all rows are
    returned), so that they are a superset of the genes principal_components takes on those rows.
    """
    codes, n_samples = _sample_codes(samples, len(rows))
    weight = np.ones(len(rows)) if ranked is None else np.asarray(ranked, dtype=float)
    def blocks():
        for start in range(0, len(rows), chunk_size):
            yield sp.csr_matrix(_validate.rows_in_memory(matrix, rows[start:start + chunk_size]), dtype=np.float32)

    counts = holds_counts(matrix, rows, chunk_size=chunk_size)
    sums = np.zeros((n_samples, matrix.shape[1]))
    squares = np.zeros(matrix.shape[1])
    stored = np.zeros(matrix.shape[1], dtype=np.int64)  # entries per gene: the size of the matrices returned
    for start, block in zip(range(0, len(rows), chunk_size), blocks(), strict=True):
        X = _normalised(block, counts)
        stored += np.bincount(X.indices, minlength=matrix.shape[1])
        w = weight[start:start + X.shape[0]]
        onehot = sp.csr_matrix((w, (np.arange(X.shape[0]), codes[start:start + X.shape[0]])),
                               shape=(X.shape[0], n_samples))
        sums += np.asarray((onehot.T @ X.astype(np.float64)).todense())
        squares += np.asarray((sp.diags(w) @ X.multiply(X).astype(np.float64)).sum(axis=0)).ravel()
    size = np.maximum(np.bincount(codes, weights=weight, minlength=n_samples), 1).astype(float)
    var = (squares - (sums ** 2 / size[:, None]).sum(axis=0)) / max(weight.sum(), 1.0)
    keep = np.sort(np.argsort(-var, kind="stable")[: params.n_hvgs + STATE_SELFTRAIN_HVG_MARGIN])
    kept = _RowStack(len(rows), keep.size, int(stored[keep].sum()))
    panel = None if panel_columns is None else _RowStack(len(rows), len(panel_columns),
                                                         int(stored[panel_columns].sum()))
    for block in blocks():
        X = _normalised(block, counts)
        kept.append(X[:, keep])
        if panel is not None:
            panel.append(X[:, panel_columns])
    return kept.matrix(), (None if panel is None else sp.csc_matrix(panel.matrix())), keep


class _RowStack:
    """Row blocks of a float32 CSR matrix written into arrays of its final size (``sp.vstack`` holds it twice)."""

    def __init__(self, n_rows: int, n_columns: int, nnz: int) -> None:
        index = np.int32 if max(nnz, n_columns) < np.iinfo(np.int32).max else np.int64
        self.shape = (n_rows, n_columns)
        self.data = np.empty(nnz, dtype=np.float32)
        self.indices = np.empty(nnz, dtype=index)
        self.indptr = np.zeros(n_rows + 1, dtype=index)
        self.rows = self.filled = 0

    def append(self, part: sp.csr_matrix) -> None:
        n, end = part.shape[0], self.filled + part.nnz
        self.data[self.filled:end] = part.data
        self.indices[self.filled:end] = part.indices
        self.indptr[self.rows + 1:self.rows + n + 1] = part.indptr[1:] + self.filled
        self.rows, self.filled = self.rows + n, end

    def matrix(self) -> sp.csr_matrix:
        if (self.rows, self.filled) != (self.shape[0], self.data.size):
            raise RuntimeError(f"internal: {self.rows} rows and {self.filled} values written into a matrix of "
                               f"{self.shape[0]} rows and {self.data.size} values")
        return sp.csr_matrix((self.data, self.indices, self.indptr), shape=self.shape)


def principal_components(X: sp.csr_matrix, params: SelfTrainParams, samples: np.ndarray | None = None
                         ) -> np.ndarray | None:
    """Top PCs of the most variable genes of ``X`` (cells of one population), centred within each sample.

    Every gene is centred on its mean in the cell's sample (``samples``; one sample when None), so
    the components follow what varies between the cells of a sample (states) rather than between
    samples (batch, depth). The genes are the ``params.n_hvgs`` of largest within-sample variance,
    kept on the log scale (programme genes that move several-fold weigh more than noisy genes). Below
    ``params.gram_cells`` cells the components come from ARPACK on the implicitly centred sparse
    matrix; from it on, from the genes' centred covariance (one pass of dense blocks, then its top
    eigenvectors), which is faster on tall matrices; the two agree to ARPACK's tolerance, up to sign.
    None when fewer than 3 genes vary.
    """
    codes, n_samples = _sample_codes(samples, X.shape[0])
    onehot = sp.csr_matrix((np.ones(codes.size), (np.arange(codes.size), codes)), shape=(codes.size, n_samples))
    size = np.asarray(onehot.sum(axis=0)).ravel()
    means = _sample_sums(X, codes, n_samples) / size[:, None]
    sq = _square_means(X)
    var = sq - (size[:, None] * means ** 2).sum(axis=0) / codes.size
    genes = np.argsort(-var, kind="stable")[: min(params.n_hvgs, int(np.sum(var > 1e-12)))]
    n_comps = min(params.n_pcs, X.shape[0] - 2, genes.size - 1)
    if n_comps < 2:
        return None
    sub = X[:, genes]  # kept in X's precision: every product upcasts it to float64 exactly
    centre = means[:, genes]
    if sub.shape[0] >= params.gram_cells:
        pcs = _gram_components(sub, centre, codes, n_comps)
    else:
        pcs = _arpack_components(sp.csr_matrix(sub, dtype=np.float64), centre, codes, onehot, n_comps, params)
    return pcs / max(float(pcs[:, 0].std()), 1e-12)


def _sample_sums(X: sp.csr_matrix, codes: np.ndarray, n_samples: int) -> np.ndarray:
    """Each sample's column sums (float64), ``onehot(codes).T @ X`` without its float64 copy of ``X``.

    The same sums in the same order: each stored value, in storage order (rows ascending), added to
    its sample's and column's total, a block of rows of about :data:`_GRAM_BLOCK_VALUES` values at a time.
    """
    out = np.zeros((n_samples, X.shape[1]))
    step = max(1, _GRAM_BLOCK_VALUES // max(X.shape[1], 1))
    for lo in range(0, X.shape[0], step):
        hi = min(X.shape[0], lo + step)
        first, last = X.indptr[lo], X.indptr[hi]
        cells = np.repeat(codes[lo:hi], np.diff(X.indptr[lo:hi + 1]))
        np.add.at(out.reshape(-1), cells * X.shape[1] + X.indices[first:last],
                  X.data[first:last].astype(np.float64))
    return out


def _square_means(X: sp.csr_matrix) -> np.ndarray:
    """Each column's mean square, ``X.multiply(X).mean(axis=0)`` without its two copies of ``X``.

    The same sums in the same order: each stored value squared and scaled by ``1 / rows`` in ``X``'s
    precision, added to its column's total in storage order (values of a few million at a time; on a
    1M-cell file the sparse expression's copies were the peak of the run).
    """
    if not np.issubdtype(X.dtype, np.floating):
        return np.asarray(X.multiply(X).mean(axis=0)).ravel()
    out = np.zeros(X.shape[1], dtype=X.dtype)
    scale = 1.0 / max(X.shape[0], 1)
    for lo in range(0, X.nnz, _GRAM_BLOCK_VALUES):
        values = X.data[lo:lo + _GRAM_BLOCK_VALUES]
        np.add.at(out, X.indices[lo:lo + _GRAM_BLOCK_VALUES], values * values * scale)
    return out


def _arpack_components(sub: sp.csr_matrix, centre: np.ndarray, codes: np.ndarray, onehot: sp.csr_matrix,
                       n_comps: int, params: SelfTrainParams) -> np.ndarray:
    """The top ``n_comps`` components (scores, ``U S``) of ``sub`` centred by ``centre[codes]``, by ARPACK.

    The centring is a linear operator on the sparse matrix: memory stays that of ``sub``.
    """
    from scipy.sparse.linalg import LinearOperator, svds

    def matmat(v: np.ndarray) -> np.ndarray:
        return _centred_product(sub, centre, codes, v)

    def rmatmat(u: np.ndarray) -> np.ndarray:
        return sub.T @ u - centre.T @ (onehot.T @ u)

    op = LinearOperator(sub.shape, matvec=matmat, rmatvec=rmatmat, matmat=matmat, rmatmat=rmatmat,
                        dtype=np.float64)
    u, s, _ = svds(op, k=n_comps, tol=STATE_SELFTRAIN_SVD_TOL, random_state=params.random_state)
    order = np.argsort(-s, kind="stable")
    return u[:, order] * s[order]


def _gram_components(sub: sp.csr_matrix, centre: np.ndarray, codes: np.ndarray, n_comps: int) -> np.ndarray:
    """The same components from the centred gene covariance (exact; dense blocks of :data:`_GRAM_BLOCK_VALUES`).

    ``sub`` is read one block of rows at a time, also for the scores: a float32 ``sub`` is never
    copied whole to float64 (on a 1M-cell file that copy was the peak of the whole run).
    """
    from scipy.linalg import eigh

    n_genes = sub.shape[1]
    step = max(1, _GRAM_BLOCK_VALUES // n_genes)
    gram = np.zeros((n_genes, n_genes))
    for lo in range(0, sub.shape[0], step):
        block = sub[lo:lo + step].toarray() - centre[codes[lo:lo + step]]
        gram += block.T @ block
    _, vectors = eigh(gram, subset_by_index=[n_genes - n_comps, n_genes - 1])
    return _centred_product(sub, centre, codes, vectors[:, ::-1])


def _centred_product(sub: sp.csr_matrix, centre: np.ndarray, codes: np.ndarray, v: np.ndarray) -> np.ndarray:
    """``(sub - centre[codes]) @ v`` without forming the centred matrix.

    Rows of about :data:`_GRAM_BLOCK_VALUES` values at a time (each row's product is its own, so the
    result is the whole product's): a float32 ``sub`` is upcast one block at a time.
    """
    step = max(1, _GRAM_BLOCK_VALUES // max(sub.shape[1], 1))
    product = sub @ v if sub.shape[0] <= step else np.concatenate([sub[lo:lo + step] @ v
                                                                     for lo in range(0, sub.shape[0], step)])
    return product - (centre @ v)[codes]


def clusters(pcs: np.ndarray, n_states: int, params: SelfTrainParams) -> np.ndarray:
    """K-means clusters of the cells in PC space (``2 K + 4`` clusters, at most one per 20 cells, at most 40)."""
    from sklearn.cluster import KMeans

    n_clusters = int(min(2 * n_states + 4, params.max_clusters, max(pcs.shape[0] // 20, 2)))
    return KMeans(n_clusters=n_clusters, n_init=3, random_state=params.random_state).fit_predict(pcs)


def cluster_seeds(groups: np.ndarray, z: np.ndarray, ids: list[str], mixture: np.ndarray,
                  params: SelfTrainParams) -> np.ndarray:
    """Seed label per cell from its cluster's mean state z-scores: a state id or :data:`NONE_CLASS`.

    A cluster is a seed of the state whose mean z-score is highest there when that mean reaches
    ``params.cluster_z`` and at least ``params.cluster_share`` of the highest mean any cluster has
    for that state (the cluster where the signature is highest marks the state; a cluster only
    half as high in it, such as naive T cells in a progenitor-exhausted score that reads TCF7 and
    SELL, is another programme) and when at least ``params.cluster_support`` of its cells are
    that state's calls in the mixture (``mixture``: each cell's mixture call, ``""`` for none; a
    state absent from the data has a highest cluster too, but few calls there), or its mean
    reaches ``params.cluster_strong_z`` (a state the mixture misses but a cluster clearly
    expresses), or more of its cells are that state's mixture calls than any other state's calls
    together: the mixture backs the cluster wherever it calls its cells at all. A state that is a
    large share of a population cannot reach a high mean z-score (the z-scores are standardised
    over the population, the state included), and a 1-D mixture of a short panel's score at depth
    may call few cells anywhere (a one-state population: 16 calls in 509 cells, 5 % of a 122-cell
    cluster of the state); what the support guards against, a sibling's cluster taken by a state
    through shared genes, shows as the cluster's calls going to the sibling, and that sibling is high there too;
    where the mixture calls cells of the cluster but none of the states it calls there is high in the cluster,
    its calls are scattered over programmes the cluster does not express and back its best state (10x generator
    seed 200: the mixture called 1 of 920 CD8 T cells progenitor; the cluster highest in the progenitor list (53
    of its 59 cells progenitor) had 13 terminal calls at a terminal mean z-score of -0.03 and was "none of
    these", with a second cluster of 90 progenitor cells, and 148 of the 151 clean progenitor cells ended
    unassigned), when the mixture calls at least ``params.cluster_scattered_called`` times the population's share
    of its cells (a cluster it mostly leaves unassigned is no state's: with TAM2_SPP1 removed from the data, a
    cluster of monocyte-like cells highest in the TAM2_SPP1 list had 14-15 % of its cells called against 48-52 %
    of the macrophages, and the specificity test passed it). A state the mixture calls
    in no cell of the population (its component collapsed, or a one-state population whose 1-D
    mixture calls nothing) gets no word from it either way: it is backed where its mean leads the
    cluster's next state by ``params.cluster_uncalled_lead`` (noisy generator seed 103: the mixture
    called no cell KUPFFER and 113 cells the unplanted TAM1_FOLR2, and three clusters holding 201 of
    the 265 KUPFFER cells, KUPFFER 0.56-0.92 and TAM1_FOLR2 0.24-0.33, were "none of these"), not
    where a sibling is nearly as high (a cluster of Kupffer cells at 0.90 in the unplanted TAM1_FOLR2,
    read through the genes it shares with KUPFFER at 0.83); the specificity test is then the guard
    against a state absent from the data. A cluster its best state
    does not seed is not "none of these" when at least ``params.cluster_majority`` of its cells are
    one state's mixture calls: it seeds that state where that state's mean is high as above, and is
    no seed (``""``) where it is not (10x generator seed 101: a cluster of progenitor-exhausted cells
    highest in the unplanted CD8_TSTR list through the heat-shock genes of their programme, and one of
    terminal cells on the continuum at 0.79 against half the terminal cluster's 1.63, were "none of
    these" seeds and taught the classifier to call 47 progenitor cells "none"). Every candidate is
    then tested by :func:`confirm_seeds`. The other clusters are "none of these".
    """
    labels_of = np.unique(groups)
    means = np.vstack([z[groups == g].mean(axis=0) for g in labels_of])
    top = means.max(axis=0)
    uncalled = ~np.isin(np.asarray(ids, dtype=object), mixture)
    population_called = float(np.mean(mixture != ""))
    label = {}
    for g, row in zip(labels_of, means, strict=True):
        calls = mixture[groups == g]
        support = np.array([np.mean(calls == s) for s in ids])
        called = float(np.mean(calls != ""))
        high = row >= _seed_bar(top, params)
        j = int(np.argmax(row))
        rivals = np.delete(high & (support > 0), j)
        backed = (support[j] >= params.cluster_support or row[j] >= params.cluster_strong_z
                  or support[j] > called - support[j]
                  or (uncalled[j] and _lead(row, j) >= params.cluster_uncalled_lead)
                  or (called > 0 and not rivals.any()
                      and called >= params.cluster_scattered_called * population_called))
        majority = int(np.argmax(support))
        if high[j] and backed:
            label[g] = ids[j]
        elif support[majority] >= params.cluster_majority and row[majority] >= params.cluster_z:
            label[g] = ids[majority] if high[majority] else ""
        else:
            label[g] = NONE_CLASS
    return np.array([label[g] for g in groups], dtype=object)


def _seed_bar(top: Any, params: SelfTrainParams) -> Any:
    """The mean a cluster needs to seed a state: ``params.cluster_z`` and ``params.cluster_share`` of ``top``."""
    return np.maximum(params.cluster_z, params.cluster_share * top)


def _lead(row: np.ndarray, j: int) -> float:
    """How far state ``j``'s mean z-score in ``row`` is above the next state's (infinite with one state)."""
    others = np.delete(row, j)
    return float(row[j] - others.max()) if others.size else float("inf")


def untested_report(ids: list[str]) -> dict[str, dict[str, Any]]:
    """A specificity report before any cluster is tested: per state, not seeded, no cluster tested, p-value 1."""
    return {s: {"seeded": False, "clusters_tested": 0, "clusters_declined": 0, "pvalue": 1.0} for s in ids}


def confirm_seeds(labels: np.ndarray, groups: np.ndarray, ids: list[str], panel: GenePanel,
                  z: np.ndarray) -> tuple[np.ndarray, dict[str, dict[str, Any]]]:
    """Decline the state seeds of clusters whose state genes are not up there (:mod:`._state_specificity`).

    Each seeded cluster is compared with the cells of the clusters that do not score for its state
    (``z``: the cells' state z-scores, columns = ``ids``; :func:`._state_specificity.reference_rows`).
    Clusters labelled :data:`NONE_CLASS` or ``""`` (no seed) are not tested. A short panel that reads a sibling
    in its cluster (:func:`._state_specificity.read_through`) is declined there, and the cluster seeds the sibling
    where the sibling's genes pass the test against its own reference, else "none of these" (``read_through`` in
    the panel's report; the sibling's ``clusters_tested`` and ``seeded`` count it). A short panel that passes
    there through genes all a sibling's, where that sibling scores lower but passes its own test, reads the sibling
    too (deep 10x generator seed 701: a cluster of Kupffer cells higher in the 4-gene TAM1_FOLR2 panel than in the
    KUPFFER list passed TAM1_FOLR2 through FOLR2 alone, and 121 of the 350 Kupffer cells were called the unplanted
    state).
    Returns the labels (declined clusters become :data:`NONE_CLASS`; a declined cluster whose state's
    median gene is up there, :func:`._state_specificity.undecided`, becomes ``""``, not a seed, when
    another cluster seeds that state: it expresses the state's genes without significance, and as
    "none of these" it would train the classifier against the state's own cells) and, per state,
    ``seeded`` (a cluster kept it), ``clusters_tested``, ``clusters_declined`` and the test of its
    cluster with the smallest p-value (:func:`._state_specificity.gene_test`).
    """
    out = labels.copy()
    undecided = np.full(labels.size, "", dtype=object)
    report = untested_report(ids)
    for g in np.unique(groups):
        members = np.flatnonzero(groups == g)
        state = labels[members[0]]
        if state in (NONE_CLASS, ""):
            continue
        auroc, test = _cluster_test(state, members, groups, g, z, ids, panel)
        entry = _tested(report[state], test)
        sibling, sibling_test = _sibling_read(state, auroc, test, members, groups, g, z, ids, panel)
        if sibling is not None:
            entry["clusters_declined"] += 1
            entry["read_through"] = sibling
            sibling_entry = _tested(report[sibling], sibling_test)
            if _specificity.specific(sibling_test):
                sibling_entry["seeded"] = True
                out[members] = sibling
            else:
                out[members] = NONE_CLASS
        elif _specificity.specific(test):
            entry["seeded"] = True
        else:
            entry["clusters_declined"] += 1
            out[members] = NONE_CLASS
            if _specificity.undecided(test):
                undecided[members] = state
    seeded = [s for s, entry in report.items() if entry["seeded"]]
    out[np.isin(undecided, seeded)] = ""
    return out, report


def _sibling_read(state: str, auroc: np.ndarray, test: dict[str, float], members: np.ndarray, groups: np.ndarray,
                  cluster: Any, z: np.ndarray, ids: list[str], panel: GenePanel
                  ) -> tuple[str | None, dict[str, float] | None]:
    """The sibling a short panel reads in a cluster and its test there, or (None, None) (:func:`confirm_seeds`).

    ``auroc`` / ``test``: the panel's genes' AUROC in the cluster and the panel's test there. The sibling that
    scores at least as high (:func:`._state_specificity.read_through`), tested whatever the outcome; else, where
    the panel passes, the sibling holding its up genes whatever the scores, where that sibling's test passes too.
    """
    if not _specificity.short_panel(panel, state):
        return None, None
    means = z[members].mean(axis=0)
    sibling = _specificity.read_through(auroc, panel, state, ids, means)
    if sibling is None:
        return None, None
    if means[ids.index(sibling)] >= means[ids.index(state)]:
        return sibling, _cluster_test(sibling, members, groups, cluster, z, ids, panel)[1]
    if not _specificity.specific(test):
        return None, None
    sibling_test = _cluster_test(sibling, members, groups, cluster, z, ids, panel)[1]
    return (sibling, sibling_test) if _specificity.specific(sibling_test) else (None, None)


def tested_where_best(report: dict[str, dict[str, Any]], mixture_calls: np.ndarray, groups: np.ndarray,
                      ids: list[str], panel: GenePanel, z: np.ndarray, min_cells: int) -> None:
    """Test each state the mixture calls but no cluster was a candidate for, in its highest-scoring cluster (in place).

    Used where the seeds are too few for the classifier and the population keeps the mixture's calls: without
    it, the calls of a state no cluster backs were kept untested (generator 10x seed 200 with
    ENDO_ONCOFETAL_PLVAP removed: 35 of 228 endothelial cells called it). ``report``: :func:`confirm_seeds`'s;
    the state's entry counts the test and is ``seeded`` where it passes (:func:`._state_specificity.specific`),
    else the cluster counts as declined. The cluster is the highest-scoring of those with at least ``min_cells``
    cells (k-means leaves one-cell clusters of outliers), and it is not tested where it has fewer than
    ``min_cells`` reference cells (:func:`._state_specificity.reference_rows`): nearly the whole population, it has
    nothing to be compared with (Wu 2021 CD4 T cells: 57 cells in clusters of 51 and 6, the Tregs in the larger one).
    A short panel that reads a sibling there (:func:`_sibling_read`, as in :func:`confirm_seeds`) is declined
    (``read_through`` in its entry); the sibling keeps its own calls, which this test does not add to.
    """
    labels_of, sizes = np.unique(groups, return_counts=True)
    sized = labels_of[sizes >= min_cells]
    if not sized.size:
        return
    means = np.vstack([z[groups == g].mean(axis=0) for g in sized])
    for j, state in enumerate(ids):
        if report[state]["clusters_tested"] or not np.any(mixture_calls == state):
            continue
        best = sized[int(np.argmax(means[:, j]))]
        reference = _specificity.reference_rows(groups, z[:, j], best, short=_specificity.short_panel(panel, state))
        if reference.size < min_cells:
            continue
        members = np.flatnonzero(groups == best)
        auroc, test = _cluster_test(state, members, groups, best, z, ids, panel, reference)
        entry = _tested(report[state], test)
        sibling, _ = _sibling_read(state, auroc, test, members, groups, best, z, ids, panel)
        if sibling is not None:
            entry["read_through"] = sibling
        entry["seeded"] = sibling is None and _specificity.specific(test)
        entry["clusters_declined"] += int(not entry["seeded"])


def _cluster_test(state: str, members: np.ndarray, groups: np.ndarray, cluster: Any, z: np.ndarray,
                  ids: list[str], panel: GenePanel, reference: np.ndarray | None = None
                  ) -> tuple[np.ndarray, dict[str, float]]:
    """The cluster's AUROC row against the state's reference cells and the state's gene test there.

    ``reference``: the state's reference rows (:func:`._state_specificity.reference_rows`) where the caller has them.
    """
    short = _specificity.short_panel(panel, state)
    state_z = z[:, ids.index(state)]
    if reference is None:
        reference = _specificity.reference_rows(groups, state_z, cluster, short=short)
    auroc, detected = _specificity.auroc_against(panel.X, members, reference)
    down = panel.down_columns.get(state, np.empty(0, dtype=int))
    if short and down.size:  # the down genes are read against the cells that do not score for the state
        auroc[down], detected[down] = _specificity.auroc_against(
            panel.X[:, down], members, _specificity.reference_rows(groups, state_z, cluster))
    return auroc, _specificity.gene_test(auroc, panel, state, detected)


def _tested(entry: dict[str, Any], test: dict[str, float]) -> dict[str, Any]:
    """Count one more tested cluster in a state's report, keeping the test with the smallest p-value; the entry."""
    entry["clusters_tested"] += 1
    if test["pvalue"] <= entry["pvalue"]:
        entry.update(test)
    return entry


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
    genes, and a cell's carried score is their mean log-expression, centred within the cell's sample
    and scaled to unit sd. A second pass leaves out of the reference the cells whose first score is
    nearer the seeds' median than the reference's (a cluster of the state that its signature genes
    score low). Returns each carried state's scores, in the order of ``ids`` (states with fewer
    seeds, or without enough separating genes, are left out).
    """
    codes, n_samples = _sample_codes(samples, X.shape[0])
    size = np.maximum(np.bincount(codes, minlength=n_samples), 1)
    columns = {}
    for j, state in enumerate(ids):
        mine = np.flatnonzero(labels == state)
        if mine.size < params.min_state_seeds:
            continue
        reference = _specificity.reference_rows(groups, z[:, j], groups[mine[0]])
        reference = reference[labels[reference] != state]
        first = _carried_score(X, mine, reference, codes, size, params)
        if first is None:
            continue
        below = reference[first[reference] < _specificity.midpoint(first, mine, reference)]
        second = _carried_score(X, mine, below, codes, size, params)
        columns[state] = first if second is None else second
    return columns


def purified_none(labels: np.ndarray, scores: dict[str, np.ndarray]) -> np.ndarray:
    """The seeds without the "none of these" seeds that a seeded state's carried score places with the state.

    A :data:`NONE_CLASS` seed whose carried score of a state (``scores``, :func:`carried`)
    is above the midpoint between the median of that state's seeds and the median of the "none"
    seeds is no seed (``""``). The "none" clusters of shallow data hold state cells that their
    signature scores do not tell apart (noisy generator seed 101 CAFs: their highest z-score has
    median 1.13 in the state cells, 0.81 in the programme-less cells); the carried genes read the
    whole programme.
    """
    none = np.flatnonzero(labels == NONE_CLASS)
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
                   params: SelfTrainParams) -> np.ndarray | None:
    """The carried score of the seeds ``mine`` against the cells ``reference`` (:func:`carried`), or None."""
    if reference.size < params.min_seeds:
        return None
    chosen = _specificity.separating_genes(X, mine, reference, n_genes=params.carry_genes,
                                           threshold=params.carry_auroc, random_state=params.random_state)
    if chosen.size < params.carry_min_genes:
        return None
    score = _specificity.sample_centred_mean(X, chosen, codes, size)
    return score / max(float(score.std()), 1e-12)


def smooth(probs: np.ndarray, pcs: np.ndarray, params: SelfTrainParams) -> np.ndarray:
    """Average each cell's class probabilities with those of its nearest neighbours in PC space.

    ``(1 - a) p_cell + a mean(p_neighbours)`` with ``a = params.smoothing`` over ``params.n_neighbors``
    neighbours: a cell's call leans towards the calls of the cells whose expression it shares. In a
    population of more than ``params.neighbour_pool`` cells the neighbours are searched among that
    many cells drawn at random (exact search costs the square of the population).
    """
    from sklearn.neighbors import NearestNeighbors

    n = pcs.shape[0]
    k = min(params.n_neighbors, n - 1)
    if k < 1 or params.smoothing <= 0:
        return probs
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
    neighbours = found[keep].reshape(n, k)
    return (1.0 - params.smoothing) * probs + params.smoothing * probs[neighbours].mean(axis=1)


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


def combined_seeds(clustered: np.ndarray, mixture: np.ndarray, called: np.ndarray) -> np.ndarray:
    """The classifier's seeds: the cluster seeds the mixture does not contradict (``""``: not a seed).

    Each cell's cluster seed (``clustered``) is kept where the cell's mixture seed (``mixture``,
    :func:`seeds`) is none or the same class, and a :data:`NONE_CLASS` seed only where the mixture
    calls the cell no state (``called``: any call, below the seed confidence too).

    The "none of these" clusters of shallow data are mixed (noisy generator setting: 19 % of the CAFs' and 39 % of
    the neutrophils' "none" seeds were cells in no state); the mixture's calls there, confident or not, are the
    state cells it can see, and as "none" seeds they would teach the classifier to leave their state unassigned.
    """
    labels = np.where((mixture == "") | (mixture == clustered), clustered, "").astype(object)
    labels[(labels == NONE_CLASS) & called] = ""
    return labels


def self_train(features: np.ndarray, labels: np.ndarray,
               params: SelfTrainParams) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Fit on the seeds, predict all cells, refit on confident predictions.

    :data:`NONE_CLASS` is left out of a refit when fewer than ``params.min_seeds`` cells are
    predicted "none" with the seed confidence: under balanced class weights that handful would weigh
    as much as a state's hundreds and carve out an unassigned region (Sade-Feldman 2018 T cells:
    2 cells, which left 28 of 88 cytotoxic cells unassigned). A state keeps its class however few
    cells it has there: dropping it would silence the state (Wu 2021 detox iCAF 17 -> 0 of 130
    calls, noisy generator CAF ARI 0.54 -> 0.47 over two seeds).

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
        labels = classes[probs.argmax(axis=1)]
        seeded = probs.max(axis=1) >= params.seed_confidence
        confident_none = seeded & (labels == NONE_CLASS)
        if confident_none.sum() < params.min_seeds:
            seeded &= ~confident_none
        if len(set(labels[seeded])) < 2:
            break
    return classes, probs, train


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

    ``train``: each cell's label (``""``: none); labels that are not among ``classes`` are left out.
    Each labelled cell weighs the inverse of its label's count (every class weighs the same, as in
    the classifier's balanced fit): a large class of impure seeds does not set ``T`` on its own.
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

    def loss(t: float) -> float:
        scaled = logp / t
        return float(-(weight * (scaled[np.arange(rows.size), y] - logsumexp(scaled, axis=1))).sum() / weight.sum())

    return float(minimize_scalar(loss, bounds=(0.05, 20.0), method="bounded").x)


def scaled(probs: np.ndarray, t: float) -> np.ndarray:
    """``softmax(log p / t)`` row by row."""
    from scipy.special import softmax

    return softmax(np.log(np.clip(probs, 1e-9, 1.0)) / t, axis=1)


def with_enough_seeds(labels: np.ndarray, params: SelfTrainParams, tested: frozenset[str] = frozenset()
                      ) -> np.ndarray:
    """The seeds of the classes with enough of them.

    A state in ``tested`` (its seeds confirmed by the specificity test on a full panel) needs
    ``params.min_state_seeds`` seeds, any other class ``params.min_seeds``. Dropping a tested
    state's few seeds silences it wherever its signature reads little of its programme (deep 10x
    generator seed 200: 8 progenitor-exhausted seeds, 134 more progenitor cells in two clusters
    highest in another state's list, which the test declined: 148 of 151 clean progenitor cells
    ended unassigned). A short panel passes the test on one gene, which a sibling's programme can
    raise (with NEU_CD10_ALPL removed from the data, a few seeds of it grew to 18 % of a Smart-seq
    cohort's neutrophils); "none of these" is no programme, and a handful of its seeds would carve out
    an unassigned region under balanced class weights.
    """
    values, counts = np.unique(labels[labels != ""], return_counts=True)
    floor = np.where(np.isin(values, list(tested)), params.min_state_seeds, params.min_seeds)
    return np.where(np.isin(labels, values[counts >= floor]), labels, "")


def tested_on_full_panels(report: dict[str, dict[str, Any]], panel: GenePanel | None) -> frozenset[str]:
    """The states the specificity test ``report`` seeded whose panel is not short in ``panel``."""
    if panel is None:
        return frozenset()
    return frozenset(s for s, d in report.items() if d["seeded"] and not _specificity.short_panel(panel, s))


def usable(labels: np.ndarray, params: SelfTrainParams) -> bool:
    """Whether the seeds hold at least two classes with enough cells each."""
    values, counts = np.unique(labels[labels != ""], return_counts=True)
    return values.size >= 2 and int(np.sum(counts >= params.min_seeds)) >= 2


def expression_seeds(labels: np.ndarray, clustered: np.ndarray, mixture_seeds: np.ndarray, groups: np.ndarray,
                     z: np.ndarray, ids: list[str], panel: GenePanel, report: dict[str, dict[str, Any]],
                     params: SelfTrainParams) -> np.ndarray:
    """The seeds ``labels`` with the short panels no cluster seeds looked for by their genes' expression.

    A short panel's score (a within-cell rank score such as UCell) follows its genes that the state does not
    raise: a gene the state raises and every cell of the population expresses highly ranks near the top in all
    of them (generator endothelial cells, deep 10x seed 700: PLVAP separates the state from the other clean cells
    at AUROC 0.99 on log expression, the UCell score of PLVAP, ACKR1 and DLL4 at 0.57; the state's clusters had
    mean z-scores of -0.08 to -0.05, a programme-less cluster 0.05, and no cluster seeded it). For each short panel
    that :func:`confirm_seeds` left without a seeded cluster (``report``), the population's cells get the mean log
    expression of its measured genes (standardised); the "none of these" clusters (``clustered``) high in it as in
    :func:`cluster_seeds` (at least ``params.min_seeds`` cells) are tested (:func:`_cluster_test`) and seed the
    state where the test passes, one of its genes is up at
    :data:`~hcctme._constants.STATE_SHORT_EXPRESSION_AUROC` and it reads no sibling (:func:`_sibling_read`):
    their cells become the state's seeds, but those the mixture seeds another state (``mixture_seeds``). Where one
    passes, the high clusters that do not are left out of the seeds (as "none of these" they would train the
    classifier against the state's cells), the state's report counts the tests and ``expression_route`` marks it;
    where none passes, the report and the seeds stay as they were.
    """
    out = labels.copy()
    labels_of, first, sizes = np.unique(groups, return_index=True, return_counts=True)
    candidates = labels_of[(sizes >= params.min_seeds) & (clustered[first] == NONE_CLASS)]
    if not candidates.size:
        return out
    for state in ids:
        cols = panel.state_columns.get(state, np.empty(0, dtype=int))
        if report[state]["seeded"] or not _specificity.short_panel(panel, state) or not cols.size:
            continue
        score = np.asarray(panel.X[:, cols].mean(axis=1), dtype=float).ravel()
        if score.std() == 0:
            continue
        score = (score - score.mean()) / score.std()
        means = np.array([score[groups == g].mean() for g in candidates])
        passed, failed, tests = [], [], []
        for g in candidates[means >= _seed_bar(means.max(), params)]:
            members = np.flatnonzero(groups == g)
            auroc, test = _cluster_test(state, members, groups, g, z, ids, panel)
            tests.append(test)
            # the sibling guard is read only where the cluster would otherwise seed the state
            if (_specificity.specific(test) and float(auroc[cols].max()) >= STATE_SHORT_EXPRESSION_AUROC
                    and _sibling_read(state, auroc, test, members, groups, g, z, ids, panel)[0] is None):
                passed.append(members)
            else:
                failed.append(members)
        if not passed:  # the state stays as confirm_seeds left it (its mixture calls too, where they are kept)
            continue
        entry = report[state]
        for test in tests:
            _tested(entry, test)
        entry.update(seeded=True, expression_route=True, clusters_declined=entry["clusters_declined"] + len(failed))
        for members in passed:
            out[members[np.isin(mixture_seeds[members], ["", NONE_CLASS, state])]] = state
        for members in failed:
            out[members[out[members] == NONE_CLASS]] = ""
    return out


def call_population(X: sp.csr_matrix, z: np.ndarray, ids: list[str], best: np.ndarray, confidence: np.ndarray,
                    called: np.ndarray, params: SelfTrainParams, min_confidence: float,
                    samples: np.ndarray | None = None, panel: GenePanel | None = None
                    ) -> tuple[np.ndarray, np.ndarray, dict[str, int], dict[str, Any]] | None:
    """Self-trained (calls, confidence, seed counts, diagnostics) for one population's non-artefact cells, or None.

    ``X``: log-normalised expression of those cells; ``z``: their standardised state scores;
    ``best`` / ``confidence`` / ``called``: the mixture's best state index, its posterior and
    whether it was called; ``samples``: each cell's sample (expression is centred within it);
    ``panel``: the signature and background genes of those cells (:func:`confirm_seeds`; None
    skips the specificity test). None when the population is too small, or when the seeds are
    too few and there is no ``panel``; with a ``panel`` and too few seeds, the mixture's calls
    except those of the states whose candidate clusters were all declined (their calls are
    dropped, their confidence set to 0); a state the mixture calls but no cluster was a candidate for
    is first tested in its highest-scoring cluster (:func:`tested_where_best`). A short panel no cluster
    seeds is looked for by its genes' expression first (:func:`expression_seeds`).
    The diagnostics: ``specificity`` (:func:`confirm_seeds`) and ``temperature`` (of the calibration;
    NaN without the classifier).
    """
    if X.shape[0] < params.min_cells or X.shape[1] < 3:
        return None
    pcs = principal_components(X, params, samples)
    if pcs is None:
        return None
    mixture_calls = np.where(called, np.asarray(ids, dtype=object)[best], "")
    groups = clusters(pcs, len(ids), params)
    labels = cluster_seeds(groups, z, ids, mixture_calls, params)
    specificity: dict[str, dict[str, Any]] = {}
    if panel is not None:
        labels, specificity = confirm_seeds(labels, groups, ids, panel, z)
    mixture_seeds = seeds(ids, best, confidence, called, z, params)
    combined = combined_seeds(labels, mixture_seeds, called)
    labels = combined if panel is None else expression_seeds(combined, labels, mixture_seeds, groups, z, ids, panel,
                                                             specificity, params)
    if not usable(labels, params):
        if panel is None:
            return None
        # too few seeds for the classifier: the mixture's calls, except those of states whose clusters were
        # all declined by the specificity test (a state no cluster was a candidate for: its best cluster)
        tested_where_best(specificity, mixture_calls, groups, ids, panel, z, params.min_seeds)
        declined = [s for s, d in specificity.items() if d["clusters_tested"] and not d["seeded"]]
        kept = (mixture_calls != "") & ~np.isin(mixture_calls, declined)
        return (np.where(kept, mixture_calls, "").astype(object), np.where(kept | ~called, confidence, 0.0),
                {}, {"specificity": specificity, "temperature": float("nan")})
    scores = carried(X, labels, groups, z, ids, samples, params)
    purified = purified_none(labels, scores)
    if usable(purified, params):
        labels = purified
    values, counts = np.unique(labels[labels != ""], return_counts=True)
    labels = with_enough_seeds(labels, params, tested_on_full_panels(specificity, panel))
    features = np.column_stack([pcs, z, *scores.values()])
    classes, probs, train = self_train(features, labels, params)
    t = 1.0
    if params.folds >= 2:  # calibration: held-out probabilities, smoothed, temperature fitted on the training cells
        probs = smooth(cross_fitted(features, train, classes, params), pcs, params)
        t = temperature(probs, labels, classes)
        probs = scaled(probs, t)
    else:
        probs = smooth(probs, pcs, params)
    state_cols = [j for j, c in enumerate(classes) if c != NONE_CLASS]
    top = np.asarray(state_cols)[probs[:, state_cols].argmax(axis=1)]
    conf = probs[np.arange(probs.shape[0]), top]
    winner = probs.argmax(axis=1)
    calls = np.where((winner == top) & (conf >= min_confidence), classes[top], "")
    seed_counts = {str(v): int(c) for v, c in zip(values, counts, strict=True)}
    return calls.astype(object), conf, seed_counts, {"specificity": specificity, "temperature": t}
