"""README's generator tables in one run: every setting on the fresh seed pairs, aggregated as README reports them.

Runs :func:`benchmarks.states_eval.run` (library scores, stress stand-in, ``call_states``) on each generator setting
(the four development settings and the five of ``HELD_OUT``) and each seed pair (``--pairs``: the first seed of
each pair; by default the seven pairs README quotes, 200-201, 202-203, 300-301, ..., 700-701, never used to choose
a rule), in ``--jobs`` processes, and prints:

- per setting, the per-parent adjusted Rand index (mean over the pairs, each pair the mean of its two seeds) and
  the ECE of the calls' confidence (mean over the pairs, and the highest pair with its first seed);
- per state, over the (setting, pair) runs: mean recall, mean precision over the runs that call the state (a pair's
  precision is the mean over its seeds that call it, as ``states_eval.py`` prints it), the lowest pair's precision,
  the runs with no call in either seed, and the runs that reach recall >= 0.8 and precision >= 0.85 (issue 13);
  then the seeds whose cohort induced none of the genes the state's programme shares with the library's list
  (``shared_induced`` of ``evaluate``: no reader that names the state by its list can find it there; the 3-gene
  panels share one gene) and the mean recall over the other seeds.

``--markdown`` prints the tables as markdown. The whole default grid is 126 cohorts of 8 x 600 cells (about
25 minutes on 2 cores with ``--jobs 2``).

    python benchmarks/states_battery.py --jobs 2
    python benchmarks/states_battery.py --settings 10x --pairs 200 --jobs 1
"""

from __future__ import annotations

import argparse
import sys
import warnings
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.tl._state_generator import HELD_OUT, SETTINGS

PAIRS = (200, 202, 300, 400, 500, 600, 700)
RECALL_TARGET, PRECISION_TARGET = 0.8, 0.85  # the issue-13 per-state targets


def cohort(task: tuple[str, int, int, int]) -> dict:
    """One cohort's evaluation: ``(setting, seed, cells per patient, patients)`` -> ARI, per-state rows and ECE."""
    from benchmarks.states_eval import run

    setting, seed, cells, patients = task
    warnings.filterwarnings("ignore")
    res = run(setting, seed, None, cells, patients)
    return {"setting": setting, "seed": seed, "ari": res["ari"], "states": res["states"], "ece": res["ece"]}


def runs(settings: list[str], pairs: list[int], cells: int, patients: int, jobs: int) -> list[dict]:
    """Every (setting, seed) cohort of the grid (both seeds of each pair), evaluated in ``jobs`` processes."""
    tasks = [(s, first + k, cells, patients) for s in settings for first in pairs for k in (0, 1)]
    if jobs <= 1:
        return [cohort(t) for t in tasks]
    with ProcessPoolExecutor(max_workers=jobs) as pool:
        return list(pool.map(cohort, tasks))


def pair_of(seed: int, pairs: list[int]) -> int:
    """The first seed of the pair that holds ``seed``."""
    return next(first for first in pairs if seed in (first, first + 1))


def parent_table(results: list[dict], pairs: list[int]) -> pd.DataFrame:
    """Per setting: each parent's ARI and the ECE, mean over the pairs; the highest pair's ECE and its first seed."""
    rows = pd.DataFrame([{"setting": r["setting"], "pair": pair_of(r["seed"], pairs), "ECE": r["ece"], **r["ari"]}
                         for r in results])
    by_pair = rows.groupby(["setting", "pair"], sort=False).mean()
    table = by_pair.groupby(level="setting", sort=False).mean()
    ece = by_pair["ECE"].unstack("pair")
    parents = [c for c in table.columns if c != "ECE"]
    return table[parents].assign(ECE=table["ECE"], **{"ECE highest pair": ece.max(axis=1),
                                                      "its pair": ece.idxmax(axis=1)})


def state_table(results: list[dict], pairs: list[int]) -> pd.DataFrame:
    """Per state over the (setting, pair) runs: recall, precision, lowest pair, silent runs, runs on target."""
    rows = pd.concat([r["states"].assign(setting=r["setting"], pair=pair_of(r["seed"], pairs)) for r in results])
    rows = rows.reset_index()
    rows["precision"] = rows["precision"].where(rows["n_called"] > 0)  # a seed without calls has no precision
    per_run = rows.groupby(["state", "setting", "pair"]).agg(recall=("recall", "mean"),
                                                              precision=("precision", "mean"))
    on_target = (per_run["recall"] >= RECALL_TARGET) & (per_run["precision"] >= PRECISION_TARGET)
    grouped = per_run.assign(on_target=on_target, silent=per_run["precision"].isna()).groupby(level="state")
    hidden = rows["shared_induced"] == 0  # the cohort induced none of the genes the library's list shares
    seeds = rows.assign(hidden=hidden).groupby("state")
    return pd.DataFrame({"runs": grouped.size(), "mean recall": grouped["recall"].mean(),
                         "mean precision": grouped["precision"].mean(),
                         "lowest pair precision": grouped["precision"].min(),
                         "runs without a call": grouped["silent"].sum(), "runs on target": grouped["on_target"].sum(),
                         "seeds hidden": seeds["hidden"].sum(),
                         "recall where seen": rows[~hidden].groupby("state")["recall"].mean()})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--settings", nargs="+", default=[*SETTINGS, *HELD_OUT], choices=[*SETTINGS, *HELD_OUT])
    parser.add_argument("--pairs", nargs="+", type=int, default=list(PAIRS),
                        help="first seed of each seed pair (the pair is it and the next seed)")
    parser.add_argument("--cells", type=int, default=600)
    parser.add_argument("--patients", type=int, default=8)
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--markdown", action="store_true")
    args = parser.parse_args()
    overlapping = [p for p in args.pairs if p + 1 in args.pairs]
    if overlapping:
        parser.error(f"--pairs {overlapping[0]} and {overlapping[0] + 1} overlap: each pair is a seed and the next")
    results = runs(args.settings, args.pairs, args.cells, args.patients, args.jobs)
    show = (lambda t: t.to_markdown(floatfmt=".3f")) if args.markdown else (lambda t: t.round(3).to_string())
    pd.set_option("display.width", 200)
    print(f"per-parent ARI and ECE, mean over {len(args.pairs)} seed pairs (first seeds {args.pairs}):")
    print(show(parent_table(results, args.pairs)))
    print(f"\nper state over the {len(args.settings) * len(args.pairs)} (setting, pair) runs:")
    print(show(state_table(results, args.pairs)))


if __name__ == "__main__":
    main()
