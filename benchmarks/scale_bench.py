"""Atlas scale: a backed h5ad of up to a million cells scored, states called and pseudobulked.

The script writes a synthetic count matrix to a temporary h5ad chunk by chunk (it is never whole in
memory), opens it backed (``anndata.read_h5ad(path, backed="r")``) and runs

1. ``hcctme.tl.score`` (UCell, the whole curated library) on the backed matrix, ``--chunk-size`` cells
   at a time;
2. ``hcctme.tl.call_states`` on the scores (cells x signatures, in memory: ~0.2 GB per million cells);
3. ``hcctme.tl.pseudobulk`` per patient (and per patient x cell type) on the backed matrix, summed
   chunk by chunk;

printing wall time and peak resident memory (RSS, psutil, sampled every 20 ms in a thread) of each
step, and the size of the file.

Size of the matrix. A real 20,000-gene atlas at ~1,500 detected genes per cell is ~12 GB of CSR per
million cells; this benchmark keeps the shape of the problem at a size a laptop disk and a 2-core CI
machine handle: ``--genes 2000`` (the 1,358 genes of the signature library plus fillers, so every
signature is fully covered) and ``--nnz 300`` gene draws per cell (Poisson mean; repeated draws of a gene
are summed, so about 190 genes are detected per cell: ~1.9e8 nonzeros per million cells; the run prints the
count and the file size). Every step reads the matrix in chunks, so memory does not grow with the
number of cells beyond the per-cell outputs (scores, state calls); time grows linearly (UCell reads
only the nonzeros of each cell).

Usage::

    python benchmarks/scale_bench.py --cells 100000          # a few minutes
    python benchmarks/scale_bench.py --cells 1000000 --n-jobs 2
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import threading
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import anndata as ad
import h5py
import numpy as np
import pandas as pd
import psutil
import scipy.sparse as sp

import hcctme as hc
from hcctme.datasets import CELL_TYPES

# cell-type mix of an HCC atlas (tumour, hepatocytes and immune/stromal compartments)
TYPE_WEIGHTS = np.array([12, 8, 5, 5, 2, 12, 5, 6, 2, 10, 8, 5, 20], dtype=float)


class PeakRSS:
    """Peak resident memory of this process while the ``with`` block runs."""

    def __init__(self, interval: float = 0.02):
        self.interval = interval
        self.process = psutil.Process(os.getpid())
        self.peak = 0
        self._stop = threading.Event()

    def _sample(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self.process.memory_info().rss)
            self._stop.wait(self.interval)

    def __enter__(self) -> PeakRSS:
        self.peak = self.process.memory_info().rss
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self.process.memory_info().rss)


def measure(name: str, fn: Callable[[], Any], results: list[dict[str, Any]]) -> Any:
    before = psutil.Process(os.getpid()).memory_info().rss
    t0 = time.perf_counter()
    with PeakRSS() as rss:
        out = fn()
    seconds = time.perf_counter() - t0
    row = {"step": name, "seconds": round(seconds, 2), "peak_rss_gb": round(rss.peak / 1e9, 3),
           "rss_before_gb": round(before / 1e9, 3)}
    results.append(row)
    print(f"{name:<34} {seconds:9.1f} s   peak RSS {rss.peak / 1e9:6.2f} GB  (before {before / 1e9:5.2f} GB)",
          flush=True)
    return out


def gene_universe(n_genes: int) -> list[str]:
    """The library's genes first (every signature fully covered), then other human symbols."""
    from hcctme.sig import _genes

    library = sorted({g for s in hc.sig.library() for g in (*s.genes_up, *s.genes_down)})
    if n_genes < len(library):
        raise SystemExit(f"--genes must be >= {len(library)} (the genes of the signature library)")
    fillers = sorted(set(_genes.known_human_symbols()) - set(library))
    rng = np.random.default_rng(1)
    return library + list(rng.choice(fillers, n_genes - len(library), replace=False))


def cohort_obs(n_cells: int, n_patients: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    patients = np.array([f"P{i:03d}" for i in range(n_patients)])
    response = np.where(np.arange(n_patients) % 2 == 0, "responder", "resistor")
    patient_idx = np.sort(rng.integers(0, n_patients, n_cells))  # cells stored patient by patient
    types = rng.choice(len(CELL_TYPES), n_cells, p=TYPE_WEIGHTS / TYPE_WEIGHTS.sum())
    return pd.DataFrame({
        "patient": pd.Categorical(patients[patient_idx], categories=patients),
        "response": pd.Categorical(response[patient_idx]),
        "cell_type": pd.Categorical(np.asarray(CELL_TYPES)[types], categories=list(CELL_TYPES)),
    }, index=pd.Index([f"cell{i}" for i in range(n_cells)]))


def type_profiles(n_genes: int, seed: int, resolution: int = 1 << 16) -> np.ndarray:
    """Per cell type, a gene lookup table (inverse CDF on a grid): Zipf-like base, 150 boosted genes."""
    rng = np.random.default_rng(seed)
    base = 1.0 / np.arange(1, n_genes + 1) ** 0.8
    base = base[rng.permutation(n_genes)]
    grid = (np.arange(resolution) + 0.5) / resolution
    tables = []
    for _ in CELL_TYPES:
        p = base.copy()
        p[rng.choice(n_genes, 150, replace=False)] *= 8.0
        tables.append(np.minimum(np.searchsorted(np.cumsum(p / p.sum()), grid), n_genes - 1))
    return np.vstack(tables).astype(np.int32)


def count_chunk(rng: np.random.Generator, types: np.ndarray, tables: np.ndarray, n_genes: int,
                nnz: int) -> sp.csr_matrix:
    """Counts of ``len(types)`` cells: ~``nnz`` gene draws each (repeated draws of a gene are summed)."""
    resolution = tables.shape[1]
    depth = np.maximum(rng.poisson(nnz, len(types)), 1)
    indptr = np.concatenate([[0], np.cumsum(depth)])
    slots = rng.integers(0, resolution, int(indptr[-1]), dtype=np.int32)
    genes = tables.ravel()[np.repeat(types.astype(np.int64) * resolution, depth) + slots]
    values = rng.integers(1, 5, genes.size, dtype=np.int8).astype(np.float32)
    X = sp.csr_matrix((values, genes, indptr), shape=(len(types), n_genes))
    X.sum_duplicates()
    return X


def write_backed(path: Path, n_cells: int, n_genes: int, nnz: int, n_patients: int, chunk: int, seed: int) -> int:
    """Write the h5ad: obs/var first, then X appended chunk by chunk. Returns the number of nonzeros."""
    obs = cohort_obs(n_cells, n_patients, seed)
    var = pd.DataFrame(index=pd.Index(gene_universe(n_genes)))
    ad.AnnData(obs=obs, var=var).write_h5ad(path)
    type_codes = obs["cell_type"].cat.codes.to_numpy()
    tables = type_profiles(n_genes, seed + 1)
    rng = np.random.default_rng(seed + 2)
    total = 0
    with h5py.File(path, "a") as handle:
        for start in range(0, n_cells, chunk):
            block = count_chunk(rng, type_codes[start:start + chunk], tables, n_genes, nnz)
            total += block.nnz
            if start == 0:
                ad.io.write_elem(handle, "X", block)  # anndata makes sparse arrays appendable
            else:
                ad.io.sparse_dataset(handle["X"]).append(block)
    return total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cells", type=int, default=1_000_000)
    parser.add_argument("--genes", type=int, default=2000)
    parser.add_argument("--nnz", type=int, default=300,
                        help="gene draws per cell (mean; repeats are summed: ~0.64x as many detected genes)")
    parser.add_argument("--patients", type=int, default=40)
    parser.add_argument("--chunk-size", type=int, default=20_000, help="cells per chunk (score, pseudobulk)")
    parser.add_argument("--n-jobs", type=int, default=1)
    parser.add_argument("--dir", default=None, help="folder for the h5ad (default: a temporary folder)")
    parser.add_argument("--keep", action="store_true", help="keep the h5ad")
    parser.add_argument("--json", default=None, help="also write the figures to this JSON file")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    hc.settings.progress = False
    warnings.filterwarnings("ignore")
    folder = Path(args.dir or tempfile.mkdtemp(prefix="hcctme_scale_"))
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"scale_{args.cells}.h5ad"
    results: list[dict[str, Any]] = []
    print(f"hcctme {hc.__version__}: {args.cells:,} cells x {args.genes:,} genes, ~{args.nnz} gene draws/cell, "
          f"{args.patients} patients, chunk {args.chunk_size:,}, n_jobs {args.n_jobs}; {os.cpu_count()} CPUs, "
          f"{psutil.virtual_memory().total / 1e9:.0f} GB RAM", flush=True)
    try:
        nnz = measure("write h5ad (chunked)", lambda: write_backed(
            path, args.cells, args.genes, args.nnz, args.patients, max(args.chunk_size, 50_000), args.seed),
            results)
        print(f"  {nnz:,} nonzeros, {path.stat().st_size / 1e9:.2f} GB on disk", flush=True)
        adata = measure("open backed", lambda: ad.read_h5ad(path, backed="r"), results)
        measure("tl.score (UCell, backed)", lambda: hc.tl.score(
            adata, chunk_size=args.chunk_size, n_jobs=args.n_jobs), results)
        n_sigs = adata.obsm["hcctme_scores"].shape[1]
        measure("tl.call_states", lambda: hc.tl.call_states(
            adata, cell_type_key="cell_type", sample_key="patient"), results)
        called = int((adata.obs["hcctme_state"] != "unassigned").sum())
        pb = measure("tl.pseudobulk (patient, backed)", lambda: hc.tl.pseudobulk(
            adata, sample_key="patient", layer=None, chunk_size=args.chunk_size), results)
        pbt = measure("tl.pseudobulk (patient x type)", lambda: hc.tl.pseudobulk(
            adata, sample_key="patient", groupby="cell_type", layer=None, chunk_size=args.chunk_size), results)
        print(f"  {n_sigs} signatures scored; {called:,} cells given a state; pseudobulk {pb.shape} and "
              f"{pbt.shape}; total counts preserved: {bool(np.isclose(pb.X.sum(), pbt.X.sum()))}", flush=True)
        summary = {"cells": args.cells, "genes": args.genes, "nnz": nnz, "file_gb": path.stat().st_size / 1e9,
                   "chunk_size": args.chunk_size, "n_jobs": args.n_jobs, "cpus": os.cpu_count(), "steps": results}
        if args.json:
            Path(args.json).write_text(json.dumps(summary, indent=2))
    finally:
        if not args.keep and path.exists():
            path.unlink()


if __name__ == "__main__":
    main()
