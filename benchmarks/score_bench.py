"""Signature scoring benchmark: hcctme.tl.score against pyucell, decoupler AUCell and scanpy.

In one process, on the same synthetic CSR matrix (cells x 20,000 genes, ~1,500 nonzeros per cell,
log-normalised negative-binomial counts) and the same 30 signatures of 30 genes, times each
method and records its peak memory, then prints a table with ratios (peer / hcctme).

Memory is measured by sampling RSS with psutil every 5 ms in a background thread, summed over
the process and its children (pyucell's joblib workers run in child processes). "extra" is the
peak during the call minus the RSS just before it (freed memory is handed back to the OS with
glibc's malloc_trim before each call, so one method's garbage does not hide the next one's
allocations); "peak" is the absolute peak RSS of the process tree, which includes the loaded
matrix and every imported library.

Usage::

    python benchmarks/score_bench.py --sizes 10000 50000
    python benchmarks/score_bench.py --million            # 1M cells from a backed h5ad, hcctme only

The exactness check (max |hcctme - pyucell|) is printed for each size, as is
max |hcctme mean - scanpy score_genes|.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import gc
import os
import platform
import shutil
import sys
import tempfile
import threading
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import scipy.sparse as sp

N_GENES = 20_000
N_SIGS = 30
SIG_SIZE = 30
MAX_RANK = 1500


# --------------------------------------------------------------------------------------------------
# data
# --------------------------------------------------------------------------------------------------
SKEW = 0.7


def _gene_popularity(n_genes: int) -> np.ndarray:
    p = 1.0 / np.arange(1, n_genes + 1) ** SKEW
    return p / p.sum()


def _draws_for_depth(p: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Expected number of distinct genes after m draws from p, for a grid of m (to invert)."""
    m = np.arange(200, 8001, 50)
    expected = np.array([np.sum(1.0 - np.exp(-k * p)) for k in m])
    return m, expected


def synthetic_rows(n_cells: int, *, seed: int = 0, start: int = 0, block: int = 10_000):
    """Yield CSR blocks of log-normalised NB counts: ~1,500 detected genes per cell (depth uniform
    in [1,000, 2,000]), gene detection skewed as in real data (gene g drawn with probability
    proportional to 1 / (g + 1) ** 0.7). Block ``b`` depends only on ``(seed, start + b)``."""
    p = _gene_popularity(N_GENES)
    grid_m, grid_unique = _draws_for_depth(p)
    levels = 2**20
    table = np.searchsorted(np.cumsum(p), (np.arange(levels) + 0.5) / levels).astype(np.int32)
    for b0 in range(0, n_cells, block):
        rows = min(block, n_cells - b0)
        rng = np.random.default_rng([seed, start + b0])
        depth = rng.integers(1000, 2001, rows)
        draws = np.interp(depth, grid_unique, grid_m).astype(np.int64)
        width = int(draws.max())
        # inverse-CDF lookup table with 2**20 levels (much faster than searchsorted per draw)
        cols = table[rng.integers(0, table.size, (rows, width), dtype=np.int32)]
        cols[np.arange(width)[None, :] >= draws[:, None]] = N_GENES  # padding
        np.minimum(cols, N_GENES, out=cols)
        cols.sort(axis=1)
        keep = cols < N_GENES
        keep[:, 1:] &= cols[:, 1:] != cols[:, :-1]
        per_row = keep.sum(axis=1)
        indices = cols[keep]
        del cols, keep
        counts = rng.geometric(0.45, indices.size)  # = 1 + NB(1, 0.45)
        row_of = np.repeat(np.arange(rows), per_row)
        lib = np.bincount(row_of, weights=counts, minlength=rows)
        data = np.log1p(counts * (1e4 / lib[row_of])).astype(np.float32)
        indptr = np.zeros(rows + 1, dtype=np.int64)
        np.cumsum(per_row, out=indptr[1:])
        yield sp.csr_matrix((data, indices, indptr), shape=(rows, N_GENES))


def synthetic_matrix(n_cells: int, seed: int = 0) -> sp.csr_matrix:
    return sp.vstack(list(synthetic_rows(n_cells, seed=seed)), format="csr")


def signatures(seed: int = 1) -> dict[str, list[str]]:
    rng = np.random.default_rng(seed)
    genes = np.array([f"G{i}" for i in range(N_GENES)])
    # genes across the detection range: half among the 2,000 most detected, half beyond
    return {f"SIG{s:02d}": list(rng.choice(genes[:2000], SIG_SIZE // 2, replace=False))
            + list(rng.choice(genes[2000:12000], SIG_SIZE - SIG_SIZE // 2, replace=False))
            for s in range(N_SIGS)}


def make_adata(X):
    from anndata import AnnData

    return AnnData(X, obs=pd.DataFrame(index=[f"c{i}" for i in range(X.shape[0])]),
                   var=pd.DataFrame(index=[f"G{i}" for i in range(X.shape[1])]))


def matrix_bytes(X: sp.csr_matrix) -> int:
    return X.data.nbytes + X.indices.nbytes + X.indptr.nbytes


# --------------------------------------------------------------------------------------------------
# measurement
# --------------------------------------------------------------------------------------------------
def _trim() -> None:
    gc.collect()
    with contextlib.suppress(OSError):  # not glibc
        ctypes.CDLL("libc.so.6").malloc_trim(0)


class RSSSampler:
    """Peak RSS of this process and its children, sampled in a thread."""

    def __init__(self, interval: float = 0.005):
        import psutil

        self.proc = psutil.Process(os.getpid())
        self.interval = interval
        self.peak = 0
        self._stop = threading.Event()

    def rss(self) -> int:
        import psutil

        total = self.proc.memory_info().rss
        for child in self.proc.children(recursive=True):
            with contextlib.suppress(psutil.Error):  # child exited meanwhile
                total += child.memory_info().rss
        return total

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self.rss())
            time.sleep(self.interval)

    def __enter__(self):
        self.before = self.rss()
        self.peak = self.before
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self.rss())


def measure(name: str, func, results: list[dict]) -> object:
    _trim()
    with RSSSampler() as mem:
        t0 = time.perf_counter()
        out = func()
        seconds = time.perf_counter() - t0
    results.append({"method": name, "seconds": seconds, "extra_MB": (mem.peak - mem.before) / 2**20,
                    "peak_MB": mem.peak / 2**20})
    print(f"  {name:<34s} {seconds:9.2f} s   extra {results[-1]['extra_MB']:8.0f} MB   "
          f"peak {results[-1]['peak_MB']:8.0f} MB", flush=True)
    return out


def machine() -> str:
    import psutil

    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as handle:
            for line in handle:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return (f"{os.cpu_count()} logical CPUs ({cpu}), {psutil.virtual_memory().total / 2**30:.0f} GB RAM, "
            f"Python {platform.python_version()}, load average at start {os.getloadavg()[0]:.1f}")


# --------------------------------------------------------------------------------------------------
# runs
# --------------------------------------------------------------------------------------------------
def run_size(n_cells: int, *, n_jobs: int, skip: set[str], dc_threads: int) -> list[dict]:
    import decoupler as dc
    import pyucell
    import scanpy as sc

    import hcctme

    hcctme.settings.progress = False
    sigs = signatures()
    print(f"\n== {n_cells:,} cells x {N_GENES:,} genes, {N_SIGS} signatures x {SIG_SIZE} genes ==", flush=True)
    t0 = time.perf_counter()
    X = synthetic_matrix(n_cells)
    print(f"  matrix: {X.nnz / n_cells:.0f} nonzeros per cell, {matrix_bytes(X) / 2**20:.0f} MB in memory "
          f"(built in {time.perf_counter() - t0:.0f} s)", flush=True)
    adata = make_adata(X)
    # compile the kernels outside the timings (numba caches them on disk after the first run)
    warm = make_adata(X[:200].copy())
    hcctme.tl.score(warm, sigs, n_jobs=1)
    hcctme.tl.score(warm, sigs, n_jobs=n_jobs)
    hcctme.tl.score(warm, sigs, method="mean")
    net = pd.DataFrame([(k, g, 1.0) for k, v in sigs.items() for g in v], columns=["source", "target", "weight"])
    dc.mt.aucell(warm, net, tmin=3)

    results: list[dict] = []
    measure("hcctme ucell (n_jobs=1)", lambda: hcctme.tl.score(adata, sigs, n_jobs=1), results)
    ours1 = adata.obsm["hcctme_scores"].copy()
    measure(f"hcctme ucell (n_jobs={n_jobs})", lambda: hcctme.tl.score(adata, sigs, n_jobs=n_jobs), results)
    ours = adata.obsm["hcctme_scores"]
    assert np.array_equal(ours.to_numpy(), ours1.to_numpy()), "n_jobs changed the scores"
    measure("hcctme mean", lambda: hcctme.tl.score(adata, sigs, method="mean"), results)
    ours_mean = adata.obsm["hcctme_scores"].copy()

    exact = {}
    if "pyucell" not in skip:
        def _pyucell():
            tmp = make_adata(adata.X)
            pyucell.compute_ucell_scores(tmp, sigs, max_rank=MAX_RANK, suffix="")
            return tmp.obs[list(sigs)]

        # fresh joblib workers for every call: their start-up and memory are part of pyucell's cost
        from joblib.externals.loky import get_reusable_executor

        get_reusable_executor().shutdown(wait=True)
        ref = measure("pyucell 0.8 (n_jobs=-1)", _pyucell, results)
        exact["max |hcctme ucell - pyucell|"] = float(np.abs(ours.to_numpy() - ref.to_numpy()).max())
    if "aucell" not in skip:
        import numba

        def _aucell():
            tmp = make_adata(adata.X)
            previous = numba.get_num_threads()
            numba.set_num_threads(dc_threads)
            try:
                dc.mt.aucell(tmp, net, tmin=3)
            finally:
                numba.set_num_threads(previous)
            return tmp.obsm["score_aucell"]

        measure(f"decoupler 2 AUCell (numba threads={dc_threads})", _aucell, results)
    if "scanpy" not in skip:
        def _scanpy():
            tmp = make_adata(adata.X)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                for name, genes in sigs.items():
                    sc.tl.score_genes(tmp, genes, score_name=name, random_state=0)
            return tmp.obs[list(sigs)]

        ref = measure("scanpy score_genes (30 calls)", _scanpy, results)
        exact["max |hcctme mean - scanpy|"] = float(np.abs(ours_mean.to_numpy() - ref.to_numpy()).max())
    for key, value in exact.items():
        print(f"  {key}: {value:.2e}")
    for r in results:
        r["cells"] = n_cells
        r["matrix_MB"] = matrix_bytes(X) / 2**20
    return results


def table(results: list[dict]) -> str:
    lines = []
    for n_cells in dict.fromkeys(r["cells"] for r in results):
        rows = [r for r in results if r["cells"] == n_cells]
        ours1 = next(r for r in rows if r["method"] == "hcctme ucell (n_jobs=1)")
        ours = next((r for r in rows if r["method"].startswith("hcctme ucell") and "n_jobs=1" not in r["method"]),
                    ours1)  # --n-jobs 1 runs only the one-thread row
        lines.append(f"\n{n_cells:,} cells (matrix {rows[0]['matrix_MB']:.0f} MB)")
        lines.append("| method | time (s) | extra RSS (MB) | peak RSS (MB) | time / hcctme | time / hcctme 1 thread |")
        lines.append("|---|---:|---:|---:|---:|---:|")
        for r in rows:
            lines.append(f"| {r['method']} | {r['seconds']:.2f} | {r['extra_MB']:.0f} | {r['peak_MB']:.0f} | "
                         f"{r['seconds'] / ours['seconds']:.1f}x | {r['seconds'] / ours1['seconds']:.1f}x |")
    return "\n".join(lines)


def run_million(n_cells: int, *, n_jobs: int, chunk_size: int, workdir: str | None) -> None:
    import anndata as ad
    import h5py
    from anndata.io import sparse_dataset

    import hcctme

    hcctme.settings.progress = False
    sigs = signatures()
    tmp = Path(tempfile.mkdtemp(prefix="hcctme_bench_", dir=workdir))
    path = tmp / "cells.h5ad"
    print(f"\n== {n_cells:,} cells from a backed h5ad ({path}) ==", flush=True)
    try:
        t0 = time.perf_counter()
        blocks = synthetic_rows(n_cells, seed=7, block=10_000)
        first = next(blocks)
        make_adata(first).write_h5ad(path)
        with h5py.File(path, "a") as f:
            X = sparse_dataset(f["X"])
            for block in blocks:
                X.append(block)
            del f["obs"]
        obs = pd.DataFrame(index=[f"c{i}" for i in range(n_cells)])
        with h5py.File(path, "a") as f:
            ad.io.write_elem(f, "obs", obs)
        size = path.stat().st_size
        print(f"  written in chunks in {time.perf_counter() - t0:.0f} s, {size / 2**30:.1f} GB on disk", flush=True)
        _trim()
        backed = ad.read_h5ad(path, backed="r")
        warm = make_adata(backed.X[:200])
        hcctme.tl.score(warm, sigs, n_jobs=n_jobs)
        results: list[dict] = []
        measure(f"hcctme ucell backed (n_jobs={n_jobs}, chunk_size={chunk_size})",
                lambda: hcctme.tl.score(backed, sigs, n_jobs=n_jobs, chunk_size=chunk_size), results)
        scores = backed.obsm["hcctme_scores"]
        print(f"  scored {scores.shape[0]:,} cells x {scores.shape[1]} signatures; "
              f"{n_cells / results[0]['seconds']:,.0f} cells/s; mean score {scores.to_numpy().mean():.4f}")
        backed.file.close()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="*", default=[10_000, 50_000])
    parser.add_argument("--million", action="store_true", help="also score 1M cells from a backed h5ad (hcctme only)")
    parser.add_argument("--million-cells", type=int, default=1_000_000)
    parser.add_argument("--chunk-size", type=int, default=20_000)
    parser.add_argument("--n-jobs", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--dc-threads", type=int, default=1,
                        help="numba threads for decoupler's AUCell kernel (it launches one parallel region per "
                             "cell: on a busy 2-core machine 1 thread was 14x faster than 2)")
    parser.add_argument("--skip", nargs="*", default=[], choices=["pyucell", "aucell", "scanpy"])
    parser.add_argument("--workdir", default=None, help="where the 1M-cell h5ad is written (temporary)")
    args = parser.parse_args(argv)
    print("machine:", machine())
    print("memory: psutil RSS of the process tree sampled every 5 ms (extra = peak - RSS before the call)")
    results: list[dict] = []
    for n in args.sizes:
        results += run_size(n, n_jobs=args.n_jobs, skip=set(args.skip), dc_threads=args.dc_threads)
    if results:
        print(table(results))
    if args.million:
        run_million(args.million_cells, n_jobs=args.n_jobs, chunk_size=args.chunk_size, workdir=args.workdir)
    return 0


if __name__ == "__main__":
    sys.exit(main())
