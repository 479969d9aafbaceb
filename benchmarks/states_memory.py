"""Where the state step's memory peaks: RSS sampled every 50 ms with the call stack at each new peak.

Runs the pipeline's ``score`` and ``states`` steps on a backed ``.h5ad`` (for instance one that
``pipeline_bench.py --keep`` wrote) and prints the resident memory before the steps, the peak while hcctme
code ran, the hcctme frames of the main thread when it was reached, and a timeline (every 2 s: seconds, GB,
innermost hcctme frame).

Usage::

    python benchmarks/pipeline_bench.py --sizes 1000000 --no-peers --keep --out /data/pbench
    python benchmarks/states_memory.py /data/pbench/cells_1000000/cohort.h5ad
"""

from __future__ import annotations

import argparse
import sys
import threading
import time
import traceback
import warnings

import psutil

from hcctme import _files, pipeline

SAMPLE_SECONDS = 0.05  # between resident-size samples


def hcctme_frames(thread_id: int) -> list[str]:
    """The hcctme frames of a thread's current stack, outermost first ("module:line function")."""
    frame = sys._current_frames().get(thread_id)
    if frame is None:
        return []
    return [f"{f.filename.split('/hcctme/')[-1]}:{f.lineno} {f.name}" for f in traceback.extract_stack(frame)
            if "/hcctme/" in f.filename]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("h5ad", help="a cohort file with the pipeline's obs columns (pipeline_bench.py --keep)")
    parser.add_argument("--sample-key", default=pipeline.PipelineConfig.sample_key)
    parser.add_argument("--cell-type-key", default=pipeline.PipelineConfig.cell_type_key)
    parser.add_argument("--every", type=float, default=2.0, help="seconds between timeline rows")
    args = parser.parse_args(argv)
    warnings.filterwarnings("ignore")
    process, main_thread = psutil.Process(), threading.get_ident()
    peak = {"rss": 0, "frames": []}
    timeline: list[tuple[float, float, str]] = []
    done = threading.Event()
    start = time.perf_counter()

    def sample() -> None:
        last = 0.0
        while not done.is_set():
            rss, now = process.memory_info().rss, time.perf_counter() - start
            due = now - last >= args.every
            if due or rss > peak["rss"]:
                frames = hcctme_frames(main_thread)  # read only when needed: it holds the GIL the steps run under
                # Only samples taken inside hcctme count: a process that was already larger (a test run, a
                # notebook) would otherwise pin the peak to the first sample, before any step ran, with no stack.
                if frames and rss > peak["rss"]:
                    peak["rss"], peak["frames"] = rss, frames
                if due:
                    timeline.append((now, rss / 1e9, frames[-1] if frames else ""))
                    last = now
            done.wait(SAMPLE_SECONDS)

    adata = _files.read_h5ad(args.h5ad, backed=True)
    config = pipeline.PipelineConfig(sample_key=args.sample_key, cell_type_key=args.cell_type_key)
    print(f"resident before the steps: {process.memory_info().rss / 1e9:.2f} GB", flush=True)
    threading.Thread(target=sample, daemon=True).start()
    for step in ("score", "states"):
        began = time.perf_counter()
        pipeline.run_step(adata, config, step)
        print(f"{step}: {time.perf_counter() - began:.1f} s, peak so far {peak['rss'] / 1e9:.2f} GB", flush=True)
    done.set()
    if peak["frames"]:
        print(f"peak {peak['rss'] / 1e9:.2f} GB in:")
        print("\n".join(f"  {frame}" for frame in peak["frames"]))
    else:  # the steps ended between two samples
        print(f"no sample was taken inside hcctme code (the steps took less than {SAMPLE_SECONDS * 1000:.0f} ms)")
    print("seconds  GB  innermost hcctme frame")
    for seconds, gb, frame in timeline:
        print(f"{seconds:7.1f} {gb:5.2f}  {frame}")


if __name__ == "__main__":
    main()
