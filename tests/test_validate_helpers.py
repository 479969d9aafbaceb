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
