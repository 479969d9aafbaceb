"""``call_states`` with its seedings' fits on one BLAS thread (release 2.30) against as many as BLAS starts.

A population's self-training fits hundreds of small logistic regressions (every seeding, its refits and calibration
folds); a multi-threaded BLAS starts its threads for each of them. Release 2.30 runs the seedings under
:func:`hcctme.tl._threads.one_blas_thread`. This script times ``call_states`` on scored cohorts both ways (the other
way by replacing that limit with a no-op), checks that the calls and confidences are the same, and prints the
seconds and their ratio:

- ``small``: the demo simulator's cohort of 4 patients x 200 cells (``random_state=3``), whose populations are all
  too small for their states' clusters and partly seeded again (``tests/tl/test_state_seedings.py``);
- ``pipeline``: ``pipeline_bench.write_cohort``'s cohort at ``--cells`` (default 60,000; 64 patients), read into
  memory.

    python benchmarks/states_threads.py
    python benchmarks/states_threads.py --cohorts small --repeats 3
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import hcctme
from hcctme.tl import _state_selftrain


def small_cohort():
    return hcctme.datasets.simulate_cohort(4, 200, random_state=3)


def pipeline_cohort(cells: int):
    import anndata as ad

    from benchmarks.pipeline_bench import write_cohort

    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "cohort.h5ad"
        write_cohort(path, cells, 64, 20_000)
        return ad.read_h5ad(path)


def timed(adata, limited: bool) -> tuple[float, np.ndarray, np.ndarray]:
    """Seconds of one ``call_states`` on a copy of ``adata`` (both cohorts' keys: cell_type, patient), its calls and
    confidences.
    """
    work = adata.copy()
    original = _state_selftrain.one_blas_thread
    if not limited:
        _state_selftrain.one_blas_thread = contextlib.nullcontext
    try:
        start = time.perf_counter()
        hcctme.tl.call_states(work, cell_type_key="cell_type", sample_key="patient")
        seconds = time.perf_counter() - start
    finally:
        _state_selftrain.one_blas_thread = original
    return seconds, work.obs["hcctme_state"].astype(str).to_numpy(), work.obs["hcctme_state_confidence"].to_numpy()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cohorts", nargs="+", default=["small", "pipeline"], choices=["small", "pipeline"])
    parser.add_argument("--cells", type=int, default=60_000, help="cells of the pipeline cohort")
    parser.add_argument("--repeats", type=int, default=1, help="timings per way (alternating), the median kept")
    args = parser.parse_args()
    warnings.filterwarnings("ignore")
    hcctme.settings.progress = False
    for name in args.cohorts:
        adata = small_cohort() if name == "small" else pipeline_cohort(args.cells)
        hcctme.tl.score(adata)
        seconds: dict[bool, list[float]] = {True: [], False: []}
        results = {}
        for _ in range(args.repeats):
            for limited in (True, False):
                s, calls, confidence = timed(adata, limited)
                seconds[limited].append(s)
                results[limited] = (calls, confidence)
        same = (np.array_equal(results[True][0], results[False][0])
                and np.array_equal(results[True][1], results[False][1], equal_nan=True))
        one, many = float(np.median(seconds[True])), float(np.median(seconds[False]))
        print(f"{name}: {adata.n_obs:,} cells; call_states {one:.1f} s with one BLAS thread in the seedings, "
              f"{many:.1f} s without the limit (x{many / one:.2f}); same calls and confidences: {same}")


if __name__ == "__main__":
    main()
