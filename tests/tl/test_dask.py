"""tl.score and tl.pseudobulk on a dask.distributed LocalCluster give the in-memory results.

One cluster (two worker processes, one thread each) serves the module; the tasks are checked to have
run on its workers, and its processes to be gone once it is closed.
"""

from __future__ import annotations

import os

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
from anndata import AnnData

from hcctme import tl

distributed = pytest.importorskip("distributed")
da = pytest.importorskip("dask.array")
psutil = pytest.importorskip("psutil")

N_CELLS, N_GENES = 600, 240
SIGNATURES = {
    "A": [f"G{i}" for i in range(0, 25)],
    "B": [f"G{i}" for i in range(40, 70)],
    "SIGNED": {"up": [f"G{i}" for i in range(100, 120)], "down": [f"G{i}" for i in range(200, 215)]},
}


@pytest.fixture(scope="module")
def client():
    """A two-process LocalCluster; on teardown its worker processes must have exited."""
    with (distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None)
          as cluster, distributed.Client(cluster) as c):
        pids = list(c.run(os.getpid).values())
        yield c
    assert cluster.status.name == "closed"
    assert len(pids) == 2
    assert not [pid for pid in pids if psutil.pid_exists(pid) and psutil.Process(pid).status() != "zombie"]


@pytest.fixture(scope="module")
def cohort() -> AnnData:
    """Counts (negative binomial, a gene-specific mean) in ``layers["counts"]``, log1p CPM-like ``X``."""
    rng = np.random.default_rng(7)
    mean = rng.gamma(0.6, 1.5, size=N_GENES)
    counts = rng.negative_binomial(2, 2 / (2 + mean), size=(N_CELLS, N_GENES)).astype(np.float32)
    counts = sp.csr_matrix(counts)
    size = np.asarray(counts.sum(axis=1)).ravel()
    X = sp.csr_matrix(counts.multiply(1e4 / np.maximum(size, 1)[:, None]))
    X.data = np.log1p(X.data).astype(np.float32)
    obs = pd.DataFrame({
        "patient": np.repeat([f"P{i}" for i in range(6)], N_CELLS // 6),
        "cell_type": rng.choice(["T", "B", "Myeloid"], size=N_CELLS),
        "response": np.repeat(["R", "NR"], N_CELLS // 2),
    }, index=[f"c{i}" for i in range(N_CELLS)])
    adata = AnnData(X, obs=obs, var=pd.DataFrame(index=[f"G{i}" for i in range(N_GENES)]))
    adata.layers["counts"] = counts
    return adata


def _lazy(adata: AnnData, X, counts) -> AnnData:
    out = AnnData(X, obs=adata.obs.copy(), var=adata.var.copy())
    out.layers["counts"] = counts
    return out


def _dask_copies(adata: AnnData) -> dict[str, AnnData]:
    """The cohort with dask matrices: CSR row blocks, and dense blocks split along genes too."""
    return {
        "csr": _lazy(adata, da.from_array(adata.X, chunks=(130, -1), asarray=False),
                     da.from_array(adata.layers["counts"], chunks=(130, -1), asarray=False)),
        "dense": _lazy(adata, da.from_array(adata.X.toarray(), chunks=(170, 100)),
                       da.from_array(adata.layers["counts"].toarray(), chunks=(170, 100))),
    }


def _ran_on(client, stream: list[dict], name: str) -> set[str]:
    """Workers of ``client``'s cluster that ran tasks whose key contains ``name``."""
    workers = set(client.scheduler_info()["workers"])
    return {t["worker"] for t in stream if name in str(t["key"]) and t["worker"] in workers}


@pytest.mark.parametrize("method", ["ucell", "mean"])
def test_score_on_cluster_equals_in_memory(client, cohort, method):
    expected = cohort.copy()
    tl.score(expected, SIGNATURES, method=method)
    for kind, lazy in _dask_copies(cohort).items():
        with distributed.get_task_stream(client) as stream:
            tl.score(lazy, SIGNATURES, method=method)
        assert _ran_on(client, stream.data, "_dask_block"), kind
        got = lazy.obsm["hcctme_scores"]
        pd.testing.assert_index_equal(got.index, expected.obs_names)
        np.testing.assert_array_equal(got.to_numpy(), expected.obsm["hcctme_scores"].to_numpy(), err_msg=kind)
        assert lazy.uns["hcctme_scores_params"]["genes_used"] == expected.uns["hcctme_scores_params"]["genes_used"]


def test_score_on_cluster_rejects_nonfinite_and_writes_nothing(client, cohort):
    bad = cohort.X.toarray()
    bad[333, 5] = np.inf
    lazy = AnnData(da.from_array(bad, chunks=(100, -1)), obs=cohort.obs.copy(), var=cohort.var.copy())
    with pytest.raises(ValueError, match="NaN or infinite"):
        tl.score(lazy, SIGNATURES)
    assert "hcctme_scores" not in lazy.obsm
    assert "hcctme_scores_params" not in lazy.uns


@pytest.mark.parametrize(("kw", "exact"), [
    ({}, True),
    ({"groupby": "cell_type"}, True),
    ({"groupby": "cell_type", "mode": "mean", "min_cells": 1}, False),
], ids=["sum", "sum-by-type", "mean-by-type"])
def test_pseudobulk_on_cluster_equals_in_memory(client, cohort, kw, exact):
    expected = tl.pseudobulk(cohort, sample_key="patient", **kw)
    for kind, lazy in _dask_copies(cohort).items():
        with distributed.get_task_stream(client) as stream:
            got = tl.pseudobulk(lazy, sample_key="patient", **kw)
        assert _ran_on(client, stream.data, "_block_sums"), kind
        if exact:  # integer counts: every order of summation gives the same float64 sums
            np.testing.assert_array_equal(got.X, expected.X, err_msg=kind)
            np.testing.assert_array_equal(got.layers["counts"], expected.layers["counts"], err_msg=kind)
        else:
            np.testing.assert_allclose(got.X, expected.X, rtol=1e-12, atol=0, err_msg=kind)
        np.testing.assert_allclose(got.layers["psbulk_props"], expected.layers["psbulk_props"], rtol=1e-12,
                                   atol=0, err_msg=kind)
        pd.testing.assert_frame_equal(got.obs, expected.obs)
        assert got.var_names.equals(expected.var_names)


def test_pseudobulk_row_blocks_do_not_change_sums(client, cohort):
    lazy = _dask_copies(cohort)["csr"]
    base = tl.pseudobulk(lazy, sample_key="patient", groupby="cell_type")
    for chunk_size in (29, 77, 10_000):
        got = tl.pseudobulk(lazy, sample_key="patient", groupby="cell_type", chunk_size=chunk_size)
        np.testing.assert_array_equal(got.X, base.X, err_msg=str(chunk_size))


def test_h5ad_read_lazily_runs_on_cluster(client, cohort, tmp_path):
    """X and the counts layer read with anndata's read_elem_lazy: each worker reads its own rows."""
    import anndata as ad
    import h5py
    from anndata.experimental import read_elem_lazy

    path = tmp_path / "cohort.h5ad"
    cohort.write_h5ad(path)
    expected = cohort.copy()
    tl.score(expected, SIGNATURES)
    expected_bulk = tl.pseudobulk(cohort, sample_key="patient", groupby="cell_type")
    with h5py.File(path, "r") as handle:
        lazy = AnnData(read_elem_lazy(handle["X"], chunks=(150, N_GENES)), obs=ad.io.read_elem(handle["obs"]),
                       var=ad.io.read_elem(handle["var"]))
        lazy.layers["counts"] = read_elem_lazy(handle["layers/counts"], chunks=(150, N_GENES))
        assert isinstance(lazy.X, da.Array)
        with distributed.get_task_stream(client) as stream:
            tl.score(lazy, SIGNATURES)
            bulk = tl.pseudobulk(lazy, sample_key="patient", groupby="cell_type")
    assert len(_ran_on(client, stream.data, "_dask_block")) >= 1
    assert _ran_on(client, stream.data, "_block_sums")
    np.testing.assert_array_equal(lazy.obsm["hcctme_scores"].to_numpy(), expected.obsm["hcctme_scores"].to_numpy())
    np.testing.assert_array_equal(bulk.X, expected_bulk.X)
    pd.testing.assert_frame_equal(bulk.obs, expected_bulk.obs)


class _Reads:
    """A dask matrix whose blocks count how often they are loaded (synchronous scheduler: one process)."""

    def __init__(self, matrix: sp.csr_matrix, rows: int):
        self.loads: list[int] = []
        self.matrix = matrix
        self.array = da.from_array(matrix, chunks=(rows, -1), asarray=False).map_blocks(
            self._load, dtype=matrix.dtype, meta=sp.csr_matrix((0, 0), dtype=matrix.dtype))

    def _load(self, block, block_info=None):
        self.loads.append(block_info[0]["chunk-location"][0])
        return block


def test_each_block_is_read_once():
    """UCell scoring and pseudobulk sums read every block of rows once; pseudobulk's counts check adds
    the first block only (a sample spread over the rows would read them all a second time)."""
    import dask

    rng = np.random.default_rng(3)
    counts = sp.csr_matrix(rng.poisson(0.8, size=(6000, 40)).astype(np.float32))
    reads = _Reads(counts, rows=2500)
    lazy = AnnData(reads.array, obs=pd.DataFrame({"patient": np.repeat(["P1", "P2", "P3"], 2000)}),
                   var=pd.DataFrame(index=[f"G{i}" for i in range(40)]))
    with dask.config.set(scheduler="synchronous"):
        bulk = tl.pseudobulk(lazy, sample_key="patient", layer=None)
        assert sorted(reads.loads) == [0, 0, 1, 2]
        reads.loads.clear()
        tl.score(lazy, {"S": [f"G{i}" for i in range(10)]})
        assert sorted(reads.loads) == [0, 1, 2]
    np.testing.assert_array_equal(bulk.X, np.vstack([counts[i:i + 2000].sum(axis=0) for i in (0, 2000, 4000)]))


def test_coo_chunks_give_the_in_memory_results_whatever_the_chunk_size(cohort):
    """Sweep 63: rows rechunked or sliced (chunk_size, a chunked reader's blocks) made dask index COO blocks, which
    failed inside dask ('coo_matrix' object is not subscriptable); with the array's own chunks the call worked."""
    import dask

    from hcctme import _validate

    def coo(M):
        return da.from_array(M, chunks=(130, -1), asarray=False).map_blocks(sp.coo_matrix, dtype=M.dtype)

    lazy = _lazy(cohort, coo(cohort.X), coo(cohort.layers["counts"]))
    expected = cohort.copy()
    tl.score(expected, SIGNATURES)
    expected_bulk = tl.pseudobulk(cohort, sample_key="patient", groupby="cell_type")
    with dask.config.set(scheduler="synchronous"):
        for chunk_size in (None, 77):
            tl.score(lazy, SIGNATURES, chunk_size=chunk_size)
            np.testing.assert_array_equal(lazy.obsm["hcctme_scores"].to_numpy(),
                                          expected.obsm["hcctme_scores"].to_numpy())
            bulk = tl.pseudobulk(lazy, sample_key="patient", groupby="cell_type", chunk_size=chunk_size)
            np.testing.assert_array_equal(bulk.X, expected_bulk.X)
        blocks = [block for _, _, block in _validate.row_blocks(lazy.X, chunk_size=77)]  # crosstalk's, profile's
        assert (sp.vstack(blocks, format="csr") != cohort.X).nnz == 0
        rows = np.array([5, 140, 141, 599])
        assert (sp.csr_matrix(_validate.rows_in_memory(lazy.X, rows)) != cohort.X[rows]).nnz == 0
