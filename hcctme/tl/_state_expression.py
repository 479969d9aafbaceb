"""The population's expression for the self-training of state calls (:mod:`hcctme.tl._state_selftrain`).

The classifier's features besides the state z-scores: the top :data:`~hcctme._constants.STATE_SELFTRAIN_PCS`
principal components of the :data:`~hcctme._constants.STATE_SELFTRAIN_HVGS` genes of largest within-sample
variance, log-normalised and centred within each sample on the sample's mean less the part its cells' mean state
scores predict (:func:`score_adjusted_means`: the components follow states, not patients' batch shifts, and keep
the states the samples differ in; ARPACK on the implicitly centred sparse matrix, or from
:data:`~hcctme._constants.STATE_SELFTRAIN_GRAM_CELLS` cells on the centred gene covariance).

The matrix is read in row blocks (backed and dask matrices too): :func:`log_expression_chunked` keeps the
most variable genes of a population's rows, :func:`principal_components` reduces them.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import scipy.sparse as sp

from hcctme import _validate
from hcctme._constants import (
    STATE_SELFTRAIN_HVG_MARGIN,
    STATE_SELFTRAIN_SVD_TOL,
    Defaults,
)
from hcctme.tl._state_params import SelfTrainParams

_GRAM_BLOCK_VALUES = 8_000_000  # values per dense block of rows in the covariance's pass (64 MB)


def log_expression(X) -> sp.csr_matrix:
    """``X`` as sparse log-normalised expression: raw counts (integers) are scaled to 10,000 per cell and log1p'd."""
    X = sp.csr_matrix(X, dtype=np.float32)
    return _normalised(X, _holds_counts(X.data))


def name_ordered(X: sp.csr_matrix, gene_rank: np.ndarray) -> sp.csr_matrix:
    """``X`` (owned by the caller: its values are reordered in place) with column ``j`` the gene of name rank ``j``."""
    out = sp.csr_matrix((X.data, gene_rank[X.indices], X.indptr), shape=X.shape)
    out.has_sorted_indices = False
    out.sort_indices()
    return out


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
    values, the input untouched): the mean squares and sample sums add stored values one by one. Stored zeros
    are dropped: the detection counts and ranks read stored entries, so a zero kept in the matrix read as detected.
    """
    if counts:
        total = np.asarray(X.sum(axis=1)).ravel()
        X = sp.csr_matrix(sp.diags((1e4 / np.maximum(total, 1.0)).astype(np.float32)) @ X)
        X.data = np.log1p(X.data)
        X.eliminate_zeros()
    elif not X.has_canonical_format or (X.data == 0).any():
        X = X.copy()
        X.sum_duplicates()
        X.eliminate_zeros()
    return X


def sample_codes(samples: np.ndarray | None, n: int) -> tuple[np.ndarray, int]:
    """Integer code of each cell's sample (one sample when ``samples`` is None) and the number of samples."""
    if samples is None:
        return np.zeros(n, dtype=int), 1
    _, codes = np.unique(np.asarray(samples).astype(str), return_inverse=True)
    return codes.astype(int), int(codes.max()) + 1


def log_expression_chunked(matrix: Any, rows: np.ndarray, params: SelfTrainParams, samples: np.ndarray | None = None,
                           *, panel_columns: np.ndarray | Callable[[np.ndarray], np.ndarray] | None = None,
                           ranked: np.ndarray | None = None, gene_rank: np.ndarray | None = None,
                           chunk_size: int = Defaults.CHUNK_SIZE
                           ) -> tuple[sp.csr_matrix, sp.csc_matrix | None, np.ndarray]:
    """``log_expression(matrix[rows])`` restricted to the genes :func:`principal_components` can choose.

    For matrices on disk: ``rows`` are read ``chunk_size`` at a time, in three passes (the counts
    check on the first values, per-gene mean and variance, then the candidate genes' values), so
    memory is set by one chunk and the population's cells x candidate genes, not by all its genes.
    The candidates are the ``n_hvgs + STATE_SELFTRAIN_HVG_MARGIN`` genes of largest within-sample
    variance (``samples``: each row's sample, as for principal_components; float64 sums; ties taken in the
    order of ``gene_rank``, each gene's rank, by default its position), columns in that order, a superset of
    the genes principal_components then takes (it recomputes the variances on these columns exactly as on
    the whole matrix). With ``panel_columns``, the same
    pass also returns those columns, log-normalised over whole rows (the specificity test's genes;
    a function of each gene's detection in ``rows``, boolean, gives them from the first pass);
    otherwise the second value is None. The third value: the candidates' column positions in ``matrix``.
    ``ranked`` (boolean over ``rows``): the rows whose variances rank the candidates (all rows are
    returned), so that they are a superset of the genes principal_components takes on those rows.
    """
    codes, n_samples = sample_codes(samples, len(rows))
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
    gene_rank = np.arange(matrix.shape[1]) if gene_rank is None else gene_rank
    keep = np.lexsort((gene_rank, -var))[: params.n_hvgs + STATE_SELFTRAIN_HVG_MARGIN]
    keep = keep[np.argsort(gene_rank[keep], kind="stable")]
    if callable(panel_columns):
        panel_columns = panel_columns(stored > 0)
    kept = _RowStack(len(rows), keep.size, int(stored[keep].sum()))
    panel = None if panel_columns is None else _RowStack(len(rows), len(panel_columns),
                                                         int(stored[panel_columns].sum()))
    for block in blocks():
        X = _normalised(block, counts)
        part = X[:, keep]
        part.sort_indices()  # column selection keeps the stored order: sorted, the same matrix whatever the gene order
        kept.append(part)
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


def principal_components(X: sp.csr_matrix, params: SelfTrainParams, samples: np.ndarray | None = None,
                         z: np.ndarray | None = None) -> np.ndarray | None:
    """Top PCs of the most variable genes of ``X`` (cells of one population), centred within each sample.

    Every gene is centred on its mean in the cell's sample (``samples``; one sample when None), less the part the
    sample's mean state scores ``z`` predict (:func:`score_adjusted_means`; None: the means), so the components
    follow what varies between the cells of a sample (states) rather than between samples (batch, depth), and keep
    the states a sample holds more or less of than the others. The genes are the ``params.n_hvgs`` of largest
    within-sample variance (about the samples' plain means: a gene that moves only between samples ranks low), kept
    on the log scale (programme genes that move several-fold weigh more than noisy genes). Below
    ``params.gram_cells`` cells the components come from ARPACK on the implicitly centred sparse matrix; from it on,
    from the genes' centred covariance (one pass of dense blocks, then its top eigenvectors), which is faster on
    tall matrices; the two agree to ARPACK's tolerance, up to sign. None when fewer than 3 genes vary.
    """
    codes, n_samples = sample_codes(samples, X.shape[0])
    onehot = sp.csr_matrix((np.ones(codes.size), (np.arange(codes.size), codes)), shape=(codes.size, n_samples))
    genes, means = variable_genes(X, codes, n_samples, params.n_hvgs)
    n_comps = min(params.n_pcs, X.shape[0] - 2, genes.size - 1)
    if n_comps < 2:
        return None
    sub = X[:, genes]  # kept in X's precision: every product upcasts it to float64 exactly
    centre = means[:, genes] if z is None else score_adjusted_means(sub, codes, means[:, genes], z)
    if sub.shape[0] >= params.gram_cells:
        pcs = _gram_components(sub, centre, codes, n_comps)
    else:
        pcs = _arpack_components(sp.csr_matrix(sub, dtype=np.float64), centre, codes, onehot, n_comps, params)
    return pcs / max(float(pcs[:, 0].std()), 1e-12)


def score_adjusted_means(X: Any, codes: np.ndarray, means: np.ndarray, z: np.ndarray) -> np.ndarray:
    """Each sample's mean of the columns of ``X`` less the part its mean state scores predict (samples x columns).

    ``means``: the samples' column means; ``z``: the cells' state z-scores. Each column's slopes on the scores
    come from the within-sample regression (the scores centred within each sample, a ridge of 1e-6 per cell), and a
    sample keeps ``slopes`` times its mean scores' distance from the cells' mean: centred on these, the cells lose
    their sample's shift but not the states their scores place more or less of in it. One sample: ``means``. A
    sparse ``X`` is read :data:`_GRAM_BLOCK_VALUES` values of rows at a time (a float32 ``X`` is never copied whole
    to float64).
    """
    n_samples = means.shape[0]
    if n_samples == 1:
        return means
    size = np.maximum(np.bincount(codes, minlength=n_samples), 1).astype(float)
    score_means = np.zeros((n_samples, z.shape[1]))
    np.add.at(score_means, codes, z)
    score_means /= size[:, None]
    within = z - score_means[codes]
    gram = within.T @ within + 1e-6 * z.shape[0] * np.eye(z.shape[1])
    slopes = np.linalg.solve(gram, _cross_product(X, within).T)
    return means - (score_means - z.mean(axis=0)) @ slopes


def _rows_per_block(n_columns: int) -> int:
    """Rows of a block of about :data:`_GRAM_BLOCK_VALUES` values (at least one)."""
    return max(1, _GRAM_BLOCK_VALUES // max(n_columns, 1))


def _cross_product(X: Any, dense: np.ndarray) -> np.ndarray:
    """``X.T @ dense`` (columns of ``X`` x columns of ``dense``), a sparse ``X`` one block of rows at a time."""
    if not sp.issparse(X):
        return np.asarray(X, dtype=np.float64).T @ dense
    step = _rows_per_block(X.shape[1])
    out = np.zeros((X.shape[1], dense.shape[1]))
    for lo in range(0, X.shape[0], step):
        out += np.asarray(X[lo:lo + step].T @ dense[lo:lo + step])
    return out


#: within-sample variance under this share of a gene's mean square is rounding, not variation (:func:`variable_genes`)
VARIANCE_RESIDUE = 1e-5


def variable_genes(X: sp.csr_matrix, codes: np.ndarray, n_samples: int, n_genes: int) -> tuple[np.ndarray, np.ndarray]:
    """The ``n_genes`` columns of ``X`` of largest within-sample variance (of those that vary) and the sample means.

    ``codes``: each row's sample (:func:`sample_codes`); the means are samples x columns.
    """
    size = np.bincount(codes, minlength=n_samples).astype(float)
    means = _sample_sums(X, codes, n_samples) / size[:, None]
    square = _square_means(X)
    var = square - (size[:, None] * means ** 2).sum(axis=0) / codes.size
    # A gene that does not vary within samples reads a rounding residue of its mean square (float32 sums): one
    # cell per sample left ~1e-6 where the variance is 0, and every "varying" gene centred to zeros broke ARPACK.
    varying = var > np.maximum(1e-12, VARIANCE_RESIDUE * square)
    return np.argsort(-np.where(varying, var, -np.inf), kind="stable")[: min(n_genes, int(np.sum(varying)))], means


def _sample_sums(X: sp.csr_matrix, codes: np.ndarray, n_samples: int) -> np.ndarray:
    """Each sample's column sums (float64), ``onehot(codes).T @ X`` without its float64 copy of ``X``.

    The same sums in the same order: each stored value, in storage order (rows ascending), added to
    its sample's and column's total, a block of rows of about :data:`_GRAM_BLOCK_VALUES` values at a time.
    """
    out = np.zeros((n_samples, X.shape[1]))
    step = _rows_per_block(X.shape[1])
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
    step = _rows_per_block(n_genes)
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
    step = _rows_per_block(sub.shape[1])
    product = sub @ v if sub.shape[0] <= step else np.concatenate([sub[lo:lo + step] @ v
                                                                     for lo in range(0, sub.shape[0], step)])
    return product - (centre @ v)[codes]
