"""Run time of ``hcctme.tl.crosstalk`` on 100k cells, 15 cell groups, 16 samples.

The cohort is :func:`hcctme.datasets.simulate_cohort` (16 patients x 6,250 cells, 3,000 genes,
log-normalised ``.X``); the 13 simulated cell types plus two states split off as their own groups
(TAM2_SPP1 macrophages, terminally exhausted CD8+ T cells) make 15 groups. Each mode runs LIANA's
``rank_aggregate`` once per sample and the patient-level differential test (resistor vs
responder); the script prints the wall time of each mode and the size of the result.

Modes (``--modes``):

* ``axes``: ``axes_only=True, n_perms=100`` (only the kb resistance-axis interactions);
* ``fast``: full LIANA consensus resource, ``n_perms=None`` (magnitude ranks only);
* ``full``: full resource, ``n_perms=100`` (the tool's defaults; slowest).

Usage: ``python benchmarks/crosstalk_bench.py [--modes axes fast full] [--n-jobs 2]
[--cells 100000] [--samples 16]``.

Measured once (2-CPU x86_64 container shared with other jobs, n_jobs=2, LIANA 1.10, simulation
time excluded): full 228 s (104,914 per-sample LIANA rows, 13,844 interactions, 9,347 tested),
fast 178 s, axes 67 s (1,349 rows, 316 interactions). Time grows linearly with samples and
with (groups^2 x resource size); divide by the cores given to n_jobs.
"""

from __future__ import annotations

import argparse
import os
import platform
import time

import numpy as np

import hcctme as hc
from hcctme.datasets import simulate_cohort

MODES = {
    "axes": dict(axes_only=True, n_perms=100),
    "fast": dict(axes_only=False, n_perms=None),
    "full": dict(axes_only=False, n_perms=100),
}


def cohort(n_cells: int, n_samples: int, seed: int = 0):
    adata = simulate_cohort(n_samples, n_cells // n_samples, random_state=seed)
    group = adata.obs["cell_type"].astype(str).to_numpy().copy()
    state = adata.obs["state_true"].astype(str).to_numpy()
    for split in ("TAM2_SPP1", "CD8_TEX_TERMINAL"):
        group[state == split] = split
    adata.obs["group"] = group
    return adata


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cells", type=int, default=100_000)
    parser.add_argument("--samples", type=int, default=16)
    parser.add_argument("--modes", nargs="+", default=["axes", "fast", "full"], choices=list(MODES))
    parser.add_argument("--n-jobs", type=int, default=os.cpu_count() or 1)
    args = parser.parse_args()
    hc.settings.progress = False

    t0 = time.perf_counter()
    adata = cohort(args.cells, args.samples)
    n_groups = adata.obs["group"].nunique()
    print(f"cohort: {adata.n_obs} cells x {adata.n_vars} genes, {n_groups} groups, "
          f"{adata.obs['patient'].nunique()} samples (simulated in {time.perf_counter() - t0:.0f}s)")
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs; n_jobs={args.n_jobs}")
    for mode in args.modes:
        kwargs = MODES[mode]
        t = time.perf_counter()
        diff = hc.tl.crosstalk(adata, groupby="group", sample_key="patient", condition_key="response",
                               reference="responder", n_jobs=args.n_jobs, **kwargs)
        elapsed = time.perf_counter() - t
        rows = len(adata.uns["hcctme_crosstalk"]["table"])
        print(f"{mode:>5} ({', '.join(f'{k}={v}' for k, v in kwargs.items())}): {elapsed:7.1f} s  "
              f"-> {rows:,} per-sample LIANA rows, {len(diff):,} interactions, {int(diff['tested'].sum()):,} tested, "
              f"{int(np.sum(diff['pvalue'] < 0.05)):,} with p < 0.05")


if __name__ == "__main__":
    main()
