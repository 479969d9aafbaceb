"""The same file scored and pseudobulked in this process (backed) and on a dask.distributed LocalCluster.

The script writes a synthetic CSR count matrix to a temporary h5ad, then

1. opens it backed and runs ``hcctme.tl.score`` (UCell, 30 random signatures of 30 genes)
   and ``hcctme.tl.pseudobulk`` (patient x cell type) in this process, ``--rows`` cells at a time;
2. reads it as dask arrays with ``anndata.experimental.read_elem_lazy`` (``--rows`` cells per task) and
   runs the same two calls with a ``LocalCluster`` of ``--workers`` single-threaded worker processes as
   the active client (the workers import hcctme and load its compiled kernel before the clock starts);

checks that scores and profiles are identical and prints the wall times and their ratios. A
``LocalCluster`` shares the machine's cores with the calling process, so on one small machine it
measures the cost of the dask path (tasks, serialisation, each task opening the file); the gain of a
cluster comes from workers on other machines.

Usage::

    python benchmarks/cluster_bench.py --cells 50000
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd
import scipy.sparse as sp

from hcctme import tl


def _write(path: Path, n_cells: int, n_genes: int, nnz: int, seed: int) -> dict[str, list[str]]:
    rng = np.random.default_rng(seed)
    indptr = np.arange(0, (n_cells + 1) * nnz, nnz, dtype=np.int64)
    indices = np.concatenate([np.sort(rng.choice(n_genes, nnz, replace=False)) for _ in range(n_cells)])
    data = (rng.poisson(2.0, n_cells * nnz) + 1).astype(np.float32)
    X = sp.csr_matrix((data, indices, indptr), shape=(n_cells, n_genes))
    obs = pd.DataFrame({"patient": rng.choice([f"P{i}" for i in range(40)], n_cells),
                        "cell_type": rng.choice(list("ABCDEFGH"), n_cells)},
                       index=[f"c{i}" for i in range(n_cells)])
    ad.AnnData(X, obs=obs, var=pd.DataFrame(index=[f"G{i}" for i in range(n_genes)])).write_h5ad(path)
    return {f"S{k}": [f"G{i}" for i in rng.choice(n_genes, 30, replace=False)] for k in range(30)}


def _timed(fn):
    start = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - start


def _warm_worker() -> None:
    """Import hcctme and load the compiled UCell kernel in a worker, as a first call would."""
    tiny = ad.AnnData(sp.random(20, 50, density=0.3, format="csr", dtype=np.float32, random_state=0),
                      var=pd.DataFrame(index=[f"G{i}" for i in range(50)]))
    tl.score(tiny, {"S": [f"G{i}" for i in range(10)]}, min_coverage=0.0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cells", type=int, default=50_000)
    parser.add_argument("--genes", type=int, default=3_000)
    parser.add_argument("--nnz", type=int, default=300, help="detected genes per cell")
    parser.add_argument("--rows", type=int, default=10_000, help="cells per chunk / task")
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    if min(args.cells, args.genes, args.nnz, args.rows, args.workers) < 1:
        parser.error("--cells, --genes, --nnz, --rows and --workers must be >= 1")

    import distributed
    import h5py
    from anndata.experimental import read_elem_lazy

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "cohort.h5ad"
        sigs = _write(path, args.cells, args.genes, args.nnz, seed=0)
        _warm_worker()
        backed = ad.read_h5ad(path, backed="r")
        _, score_local = _timed(lambda: tl.score(backed, sigs, chunk_size=args.rows))
        bulk_local, bulk_local_s = _timed(lambda: tl.pseudobulk(backed, sample_key="patient", groupby="cell_type",
                                                                layer=None, chunk_size=args.rows))
        with (distributed.LocalCluster(n_workers=args.workers, threads_per_worker=1, processes=True,
                                       dashboard_address=None) as cluster, distributed.Client(cluster) as client):
            client.run(_warm_worker)
            with h5py.File(path, "r") as f:
                lazy = ad.AnnData(read_elem_lazy(f["X"], chunks=(args.rows, -1)), obs=ad.io.read_elem(f["obs"]),
                                  var=ad.io.read_elem(f["var"]))
            _, score_cluster = _timed(lambda: tl.score(lazy, sigs))
            bulk_cluster, bulk_cluster_s = _timed(lambda: tl.pseudobulk(lazy, sample_key="patient",
                                                                        groupby="cell_type", layer=None))
        backed.file.close()
    same_scores = np.array_equal(lazy.obsm["hcctme_scores"].to_numpy(), backed.obsm["hcctme_scores"].to_numpy())
    same_sums = np.array_equal(bulk_cluster.X, bulk_local.X)
    print(f"{args.cells} cells x {args.genes} genes, {args.nnz} per cell; {args.rows} cells per chunk; "
          f"LocalCluster of {args.workers} single-threaded workers")
    print(f"tl.score (UCell, 30 signatures): backed {score_local:.2f} s, cluster {score_cluster:.2f} s "
          f"(cluster / backed {score_cluster / score_local:.2f}); identical scores: {same_scores}")
    print(f"tl.pseudobulk ({bulk_local.n_obs} profiles): backed {bulk_local_s:.2f} s, cluster {bulk_cluster_s:.2f} s "
          f"(cluster / backed {bulk_cluster_s / bulk_local_s:.2f}); identical sums: {same_sums}")


if __name__ == "__main__":
    main()
