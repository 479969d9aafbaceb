"""The same data stored another way give the same results (sweep 59b): duplicate CSR entries, dask arrays of CSR
chunks, float16 values, and the sparse flag of pp.check_input."""

import logging
import warnings

import anndata as ad
import dask.array as da
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

import hcctme as ht
from hcctme import _validate

KEYS = {"cell_type_key": "cell_type", "sample_key": "patient"}


def _split_entries(X: sp.csr_matrix) -> sp.csr_matrix:
    """The same matrix with every stored value split into two duplicate entries (scipy: equal to ``X``)."""
    coo = X.tocoo()
    rows, cols = np.r_[coo.row, coo.row], np.r_[coo.col, coo.col]
    data = np.r_[coo.data / 2, coo.data - coo.data / 2]
    order = np.lexsort((cols, rows))
    indptr = np.r_[0, np.cumsum(np.bincount(rows, minlength=X.shape[0]))]
    out = sp.csr_matrix((data[order], cols[order], indptr), shape=X.shape)
    assert not out.has_canonical_format and abs(out - X).max() == 0
    return out


@pytest.fixture(scope="module")
def cohort():
    adata = ht.datasets.simulate_cohort(4, 120, n_genes=1200, random_state=1)
    _quiet(lambda: ht.tl.score(adata))
    return adata


def _quiet(call):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        logging.getLogger("hcctme").setLevel(logging.ERROR)
        try:
            return call()
        finally:
            logging.getLogger("hcctme").setLevel(logging.NOTSET)


def test_blocks_in_memory_sum_duplicate_entries_on_a_copy_and_widen_float16():
    X = _split_entries(sp.random(20, 8, density=0.4, format="csr", random_state=0, dtype=np.float32))
    stored = X.data.copy()
    block = _validate.in_memory(X)
    assert block.has_canonical_format and block.nnz == X.nnz // 2
    np.testing.assert_array_equal(X.data, stored)  # the user's matrix is untouched
    assert _validate.in_memory(np.ones((2, 2), dtype=np.float16)).dtype == np.float32


def test_the_sparse_flag_is_the_same_in_memory_backed_and_in_dask(tmp_path, cohort):
    path = tmp_path / "a.h5ad"
    cohort.write_h5ad(path)
    backed = ad.read_h5ad(path, backed="r")
    lazy = cohort.copy()
    lazy.X = da.from_array(cohort.X, chunks=(100, -1), asarray=False)
    flags = [ht.pp.check_input(a)["sparse"] for a in (cohort, backed, lazy)]
    backed.file.close()
    assert flags == [True, True, True]


def test_crosstalk_reads_duplicate_entries_as_one_value(cohort):
    dup = cohort.copy()
    dup.X = _split_entries(cohort.X.tocsr())
    tables = []
    for adata in (cohort.copy(), dup):
        _quiet(lambda a=adata: ht.tl.crosstalk(a, groupby="cell_type", sample_key="patient", axes_only=True))
        tables.append(ht.get.crosstalk(adata))
    assert tables[1]["ligand_props"].max() <= 1.0
    pd.testing.assert_frame_equal(tables[1], tables[0])


def test_equalize_depth_reads_duplicate_entries_as_one_count(cohort):
    dup = cohort.copy()
    dup.layers["counts"] = _split_entries(cohort.layers["counts"].tocsr().astype(np.float32))
    layers = []
    for adata in (cohort.copy(), dup):
        ht.pp.equalize_depth(adata, "patient")
        layers.append(adata.layers["hcctme_depth_equalized"].toarray())
    np.testing.assert_allclose(layers[1], layers[0], atol=1e-6)


def test_call_states_on_dask_csr_chunks_and_duplicate_entries_equal_the_canonical_calls(cohort):
    def calls(adata):
        _quiet(lambda: ht.tl.call_states(adata, **KEYS))
        return adata.obs[["hcctme_state", "hcctme_state_confidence"]].astype({"hcctme_state": str})

    expected = calls(cohort.copy())
    lazy = cohort.copy()
    lazy.X = da.from_array(cohort.X, chunks=(100, -1), asarray=False)
    dup = cohort.copy()
    dup.X = _split_entries(cohort.X.tocsr())
    for adata in (lazy, dup):
        pd.testing.assert_frame_equal(calls(adata), expected)


def test_float16_values_are_read_as_float32(cohort):
    small = cohort.copy()
    small.layers["counts"] = small.layers["counts"].toarray().astype(np.float16)
    ht.pp.equalize_depth(small, "patient")  # scipy.sparse holds no float16: crashed deep in scipy
    assert small.layers["hcctme_depth_equalized"].dtype == np.float32


def test_backed_rows_with_duplicate_entries_are_summed(tmp_path):
    X = _split_entries(sp.random(30, 12, density=0.4, format="csr", random_state=1, dtype=np.float32))
    ad.AnnData(X=X).write_h5ad(tmp_path / "dup.h5ad")
    backed = ad.read_h5ad(tmp_path / "dup.h5ad", backed="r")
    rows = np.array([1, 2, 3, 8, 20])
    block = _validate.rows_in_memory(backed.X, rows)  # runs of consecutive rows of the file
    backed.file.close()
    assert block.has_canonical_format and block.nnz == X[rows].nnz // 2
    np.testing.assert_allclose(block.toarray(), X[rows].toarray(), rtol=1e-6)
