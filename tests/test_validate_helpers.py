"""The shared helpers of hcctme._validate: one seed check, one in-memory reader, one integer-count rule."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from hcctme import _validate


def test_random_state():
    assert _validate.random_state(0) == 0 and _validate.random_state(np.int64(7)) == 7
    assert _validate.random_state(None, allow_none=True) is None
    with pytest.raises(TypeError, match="random_state must be an integer, got NoneType"):
        _validate.random_state(None)
    with pytest.raises(TypeError, match="seed must be an integer or None"):
        _validate.random_state(True, name="seed", allow_none=True)
    with pytest.raises(ValueError, match="random_state must be >= 0, got -1"):
        _validate.random_state(-1)


def test_in_memory_reads_dask_matrix_and_sparse_blocks():
    dense = np.arange(12, dtype=np.float32).reshape(4, 3)
    out = _validate.in_memory(np.asmatrix(dense))
    assert type(out) is np.ndarray and np.array_equal(out, dense)
    csr = sp.csr_matrix(dense)
    assert _validate.in_memory(csr) is csr
    da = pytest.importorskip("dask.array")
    block = _validate.in_memory(da.from_array(dense, chunks=(2, 3))[1:3])
    assert type(block) is np.ndarray and np.array_equal(block, dense[1:3])


def test_all_counts_reads_every_value():
    counts = sp.csr_matrix(np.array([[0, 3, 1], [2, 0, 5]], dtype=np.float32))
    _validate.all_counts(counts)  # integers: no error
    for bad, kind in ((1.5, "lognorm"), (-1.0, "scaled")):
        values = counts.toarray()
        values[1, 2] = bad
        with pytest.raises(ValueError, match=rf"pseudobulk needs raw integer counts .*\({kind}\)"):
            _validate.all_counts(sp.csr_matrix(values), what="pseudobulk")
    with pytest.raises(ValueError, match="NaN or infinite"):
        _validate.all_counts(np.array([[1.0, np.nan]]))


def test_rows_in_memory_reads_a_backed_csr_as_runs_and_equals_the_rows(tmp_path, monkeypatch):
    ad = pytest.importorskip("anndata")
    rng = np.random.default_rng(0)
    X = sp.random(300, 40, density=0.1, format="csr", dtype=np.float32, random_state=1)
    keep = np.ones(300, dtype=np.float32)
    keep[[0, 7, 8, 150, 299]] = 0  # empty rows, first and last among them
    X = sp.csr_matrix(sp.diags(keep) @ X)
    X.eliminate_zeros()
    ad.AnnData(X=X).write_h5ad(tmp_path / "m.h5ad")
    backed = ad.read_h5ad(tmp_path / "m.h5ad", backed="r").X
    runs = []
    read = _validate._backed_csr_rows
    monkeypatch.setattr(_validate, "_backed_csr_rows", lambda m, r: runs.append(r.size) or read(m, r))
    row_sets = [np.arange(300), np.array([0]), np.array([299]), np.array([0, 7, 8, 299]), np.arange(0, 300, 5),
                np.arange(0, 300, 6), np.arange(1, 300, 7), *(np.sort(rng.choice(300, k, replace=False))
                                                                for k in (2, 30, 100, 250))]
    for rows in row_sets:
        out = _validate.rows_in_memory(backed, rows)
        expected = X[rows]
        expected.sum_duplicates()  # reads come back canonical (sorted indices; sp.random's are not)
        assert sp.isspmatrix_csr(out) and out.dtype == np.float32 and out.shape == expected.shape
        np.testing.assert_array_equal(out.indptr, expected.indptr)
        np.testing.assert_array_equal(out.indices, expected.indices)
        np.testing.assert_array_equal(out.data, expected.data)
    assert runs == [r.size for r in row_sets]  # every set above read as runs
    # rows out of order, repeated or as a mask: anndata's own indexing (it refuses what it cannot read)
    mask = np.zeros(300, dtype=bool)
    mask[[3, 9]] = True
    np.testing.assert_array_equal(_validate.rows_in_memory(backed, mask).toarray(), X[[3, 9]].toarray())
    np.testing.assert_array_equal(_validate.rows_in_memory(X, np.array([5, 2, 2])).toarray(), X[[5, 2, 2]].toarray())
    assert len(runs) == len(row_sets)
