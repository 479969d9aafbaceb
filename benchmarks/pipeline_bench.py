"""The whole ``hcctme run`` on atlas-size cohorts read backed: wall time and peak memory per step.

For each size of ``--sizes`` the script writes a cohort h5ad ON DISK IN CHUNKS (never whole in
memory), runs ``hcctme run --backed`` on it in a subprocess and prints, per pipeline step, the wall
time (from the ``hcctme [n/N] step done`` lines) and the peak resident memory of the child process
(psutil, sampled every 50 ms, children included). At the sizes up to ``--peers-max-cells`` the same
work is also run through the ecosystem directly, each in its own subprocess: ``scanpy.read_h5ad``
of the whole file (what an in-memory run starts with), ``decoupler.pp.pseudobulk`` per patient x cell
type on the loaded counts, and (``--peers liana``) ``liana.mt.rank_aggregate.by_sample`` without
permutations.

The cohort. A pool of 8 patients x 1,500 cells is simulated by :func:`hcctme.datasets.simulate_cohort`
(``--genes`` genes: the signature library's genes plus fillers; cell types, resistance states, a
planted resistor effect and spatial frames). Each cohort patient (``--patients``, half responders,
half resistors) draws its cells with replacement from one pool patient of its condition, and each
drawn cell's counts are binomially thinned (p = 0.9, so no two cells are identical); ``X`` is the
log1p of the counts normalised to 10,000 per cell, ``layers["counts"]`` the integer counts (both CSR,
float32), ``obsm["spatial"]`` the pool cell's coordinates plus a per-patient offset. The simulator
detects ~650 genes per cell at 20,000 genes (the script prints the measured mean): sparser than a
10x v3 atlas (~1,500-2,500), so the matrices here are ~2-3x smaller on disk than a real atlas of
the same number of cells, and time and memory spent in matrix passes scale with the nonzeros.

Usage::

    python benchmarks/pipeline_bench.py --sizes 100000 --out /tmp/pbench          # ~15 min, 2 cores
    python benchmarks/pipeline_bench.py --sizes 100000 300000 1000000 --out /data/pbench --no-peers
    python benchmarks/pipeline_bench.py --sizes 100000 --out /tmp/pbench -- --no-crosstalk

Arguments after ``--`` are passed to ``hcctme run``.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import anndata as ad
import h5py
import numpy as np
import pandas as pd
import psutil
import scipy.sparse as sp

POOL_PATIENTS, POOL_CELLS = 8, 1500
THINNING = 0.9
STEP_LINE = re.compile(r"hcctme \[(\d+)/(\d+)\] (\w+) done")


# --------------------------------------------------------------------------------------------------
# The cohort, written chunk by chunk
# --------------------------------------------------------------------------------------------------
def pool(n_genes: int, seed: int) -> ad.AnnData:
    from hcctme import datasets

    return datasets.simulate_cohort(POOL_PATIENTS, POOL_CELLS, n_genes=n_genes, spatial=True, random_state=seed)


def plan(source: ad.AnnData, n_cells: int, n_patients: int, seed: int) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    """obs of the cohort, the pool row each cell copies, and the cohort's spatial coordinates."""
    rng = np.random.default_rng(seed)
    pool_patient = source.obs["patient"].astype(str).to_numpy()
    pool_response = source.obs["response"].astype(str).to_numpy()
    by_condition: dict[str, list[str]] = {}
    for patient, response in dict(zip(pool_patient, pool_response, strict=True)).items():
        by_condition.setdefault(response, []).append(patient)
    conditions = sorted(by_condition)
    sizes = np.full(n_patients, n_cells // n_patients)
    sizes[: n_cells % n_patients] += 1
    rows, obs_parts, coords = [], [], []
    spatial = np.asarray(source.obsm["spatial"], dtype=float)
    for i, size in enumerate(sizes):
        response = conditions[i % len(conditions)]
        donor = by_condition[response][(i // len(conditions)) % len(by_condition[response])]
        candidates = np.flatnonzero(pool_patient == donor)
        picked = np.sort(rng.choice(candidates, size, replace=True))
        rows.append(picked)
        coords.append(spatial[picked] + np.array([20_000.0 * i, 0.0]) + rng.normal(0, 2.0, (size, 2)))
        part = source.obs.iloc[picked][["cell_type", "state_true", "response"]].astype(str)
        obs_parts.append(part.assign(patient=f"C{i:03d}"))
    obs = pd.concat(obs_parts, ignore_index=True)
    obs.index = pd.Index([f"cell{i}" for i in range(len(obs))])
    for column in obs.columns:
        obs[column] = pd.Categorical(obs[column])
    return obs, np.concatenate(rows), np.vstack(coords)


def _log_normalised(counts: sp.csr_matrix) -> sp.csr_matrix:
    totals = np.asarray(counts.sum(axis=1)).ravel()
    X = sp.csr_matrix(sp.diags((1e4 / np.maximum(totals, 1)).astype(np.float32)) @ counts.astype(np.float32))
    X.data = np.log1p(X.data)
    return X


def write_cohort(path: Path, n_cells: int, n_patients: int, n_genes: int, *, chunk: int = 50_000,
                 seed: int = 0) -> dict[str, Any]:
    """Write the cohort h5ad (obs/var/obsm first, then X and layers['counts'] appended chunk by chunk)."""
    source = pool(n_genes, seed)
    counts_pool = sp.csr_matrix(source.layers["counts"], dtype=np.float32)
    obs, rows, coords = plan(source, n_cells, n_patients, seed + 1)
    var = pd.DataFrame(index=source.var_names.copy())
    ad.AnnData(obs=obs, var=var, obsm={"spatial": coords}).write_h5ad(path)
    rng = np.random.default_rng(seed + 2)
    nnz = 0
    with h5py.File(path, "a") as handle:
        for start in range(0, n_cells, chunk):
            block = counts_pool[rows[start:start + chunk]].copy()
            block.data = rng.binomial(block.data.astype(np.int64), THINNING).astype(np.float32)
            block.eliminate_zeros()
            nnz += block.nnz
            log = _log_normalised(block)
            if start == 0:
                ad.io.write_elem(handle, "X", log)
                ad.io.write_elem(handle, "layers/counts", block)
            else:
                ad.io.sparse_dataset(handle["X"]).append(log)
                ad.io.sparse_dataset(handle["layers/counts"]).append(block)
    return {"cells": n_cells, "genes": n_genes, "patients": n_patients, "nnz_per_cell": round(nnz / n_cells, 1),
            "matrices_in_memory_gb": round(2 * nnz * 8 / 1e9, 2), "file_gb": round(path.stat().st_size / 1e9, 2)}


# --------------------------------------------------------------------------------------------------
# Running a command with its peak memory
# --------------------------------------------------------------------------------------------------
def _tree_rss(process: psutil.Process) -> int:
    total = 0
    try:
        children = process.children(recursive=True)
    except psutil.Error:  # the command has just exited
        children = []
    for proc in [process, *children]:
        try:
            total += proc.memory_info().rss
        except psutil.Error:
            continue
    return total


def run_measured(command: list[str], *, log: Path) -> dict[str, Any]:
    """Run ``command``; wall time, peak RSS, and per ``hcctme [n/N]`` step its time and peak RSS."""
    start = time.perf_counter()
    child = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1)
    watched = psutil.Process(child.pid)
    state = {"peak": 0, "step_peak": 0}
    done = threading.Event()

    def poll() -> None:
        while not done.is_set():
            rss = _tree_rss(watched)
            state["peak"] = max(state["peak"], rss)
            state["step_peak"] = max(state["step_peak"], rss)
            done.wait(0.05)

    thread = threading.Thread(target=poll, daemon=True)
    thread.start()
    steps, last = [], start
    with open(log, "w") as out:
        for line in child.stdout:
            out.write(line)
            match = STEP_LINE.search(line)
            if match:
                now = time.perf_counter()
                steps.append({"step": match.group(3), "seconds": round(now - last, 1),
                              "peak_rss_gb": round(state["step_peak"] / 1e9, 2)})
                last, state["step_peak"] = now, 0
    code = child.wait()
    done.set()
    thread.join()
    wall = time.perf_counter() - start
    if steps:  # reading, validation before step 1, and writing the outputs after the last step
        steps.append({"step": "write outputs", "seconds": round(wall - sum(s["seconds"] for s in steps), 1),
                      "peak_rss_gb": round(state["step_peak"] / 1e9, 2)})
    return {"returncode": code, "seconds": round(wall, 1), "peak_rss_gb": round(state["peak"] / 1e9, 2),
            "steps": steps}


_PEERS = {
    "scanpy read_h5ad (whole file)": "import scanpy as sc; a = sc.read_h5ad({path!r})",
    "decoupler pseudobulk": (
        "import scanpy as sc, decoupler as dc; a = sc.read_h5ad({path!r}); "
        "dc.pp.pseudobulk(a, sample_col='patient', groups_col='cell_type', layer='counts', mode='sum')"),
    "liana by_sample (no permutations)": (
        "import scanpy as sc, liana as li; a = sc.read_h5ad({path!r}); a.obs['cell_type'] = a.obs['cell_type']"
        ".astype('category'); li.mt.rank_aggregate.by_sample(a, groupby='cell_type', sample_key='patient', "
        "use_raw=False, n_perms=None, verbose=False)"),
}


def run_peers(path: Path, which: list[str], folder: Path) -> list[dict[str, Any]]:
    rows = []
    for name, code in _PEERS.items():
        if name.split()[0] not in which:
            continue
        result = run_measured([sys.executable, "-c", "import warnings; warnings.filterwarnings('ignore'); "
                               + code.format(path=str(path))], log=folder / f"peer_{name.split()[0]}.log")
        rows.append({"what": name, **{k: v for k, v in result.items() if k != "steps"}})
    return rows


# --------------------------------------------------------------------------------------------------
# The benchmark
# --------------------------------------------------------------------------------------------------
def default_patients(n_cells: int) -> int:
    return int(np.clip(n_cells // 1500, 64, 200))


def bench_size(n_cells: int, args: argparse.Namespace, extra: list[str]) -> dict[str, Any]:
    folder = Path(args.out) / f"cells_{n_cells}"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "cohort.h5ad"
    n_patients = args.patients or default_patients(n_cells)
    t0 = time.perf_counter()
    if not (args.reuse and path.exists()):
        info = write_cohort(path, n_cells, n_patients, args.genes, seed=args.seed)
        (folder / "cohort.json").write_text(json.dumps(info))
    info = json.loads((folder / "cohort.json").read_text())
    print(f"\n== {n_cells:,} cells x {info['genes']:,} genes, {info['patients']} patients: {info['nnz_per_cell']} "
          f"genes detected per cell, matrices {info['matrices_in_memory_gb']} GB in memory, file "
          f"{info['file_gb']} GB (written in {time.perf_counter() - t0:.0f} s)", flush=True)
    command = [sys.executable, "-m", "hcctme.cli", "run", str(path), "--out", str(folder / "run"), "--backed",
               "--no-progress", *extra]
    run = run_measured(command, log=folder / "hcctme_run.log")
    print(f"hcctme run --backed: {run['seconds']:.0f} s, peak RSS {run['peak_rss_gb']:.2f} GB "
          f"(exit {run['returncode']}; log {folder / 'hcctme_run.log'})")
    print(pd.DataFrame(run["steps"]).to_string(index=False))
    peers = run_peers(path, args.peers, folder) if n_cells <= args.peers_max_cells else []
    if peers:
        print(pd.DataFrame(peers).to_string(index=False))
    if not args.keep:
        path.unlink()
    return {"cohort": info, "hcctme_run": run, "peers": peers}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[100_000, 300_000, 1_000_000])
    parser.add_argument("--genes", type=int, default=20_000)
    parser.add_argument("--patients", type=int, default=None, help="default: cells/1500 within 64..200")
    parser.add_argument("--out", required=True, help="folder for the cohorts, logs and results.json")
    parser.add_argument("--peers", nargs="*", default=["scanpy", "decoupler"],
                        help="peer runs: scanpy decoupler liana")
    parser.add_argument("--no-peers", dest="peers", action="store_const", const=[])
    parser.add_argument("--peers-max-cells", type=int, default=300_000)
    parser.add_argument("--reuse", action="store_true", help="reuse a cohort file written earlier")
    parser.add_argument("--keep", action="store_true", help="keep the cohort files")
    parser.add_argument("--seed", type=int, default=0)
    argv = sys.argv[1:]
    extra = argv[argv.index("--") + 1:] if "--" in argv else []
    args = parser.parse_args(argv[: argv.index("--")] if "--" in argv else argv)
    if min(args.sizes) < 1000 or args.genes < 1:
        parser.error("--sizes must be >= 1000 cells each and --genes >= 1")
    Path(args.out).mkdir(parents=True, exist_ok=True)
    print(f"{os.cpu_count()} CPUs, {psutil.virtual_memory().total / 2**30:.0f} GiB RAM; hcctme run args: {extra}")
    results = {str(n): bench_size(n, args, extra) for n in args.sizes}
    (Path(args.out) / "results.json").write_text(json.dumps(results, indent=2))
    rows = [{"cells": n, "seconds": r["hcctme_run"]["seconds"], "peak_rss_gb": r["hcctme_run"]["peak_rss_gb"],
             "matrices_gb": r["cohort"]["matrices_in_memory_gb"], "exit": r["hcctme_run"]["returncode"]}
            for n, r in results.items()]
    print("\n" + pd.DataFrame(rows).to_string(index=False))


if __name__ == "__main__":
    main()
