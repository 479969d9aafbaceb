"""State calls by population size on the independent evaluation generator (tests/tl/_state_generator.py).

``tl.call_states`` seeds its self-training from k-means clusters, one per 20 cells at most
(:func:`hcctme.tl._state_seeds.cells_for_clusters`), and lists in
``uns["hcctme_state_params"]["self_train"]["small_populations"]`` (and logs) each population with fewer cells than
its states' clusters need. This benchmark draws cohorts of several sizes (cells per patient), calls them as
``states_eval.py`` does, and prints per population (the cells of one context) whether it was listed, its calls, their
accuracy against the generator's truth (``state_true``: artefact cells should stay unassigned), mean confidence and
ECE, and the ARI over its cells; then the same pooled by size and listing: the calibration gap per call (mean
confidence minus accuracy: positive is overconfident), the ECE of the pooled calls and the mean ARI; the pooled
ECE's 95 % percentile interval over the cohorts (the (setting, seed) pairs resampled with replacement: what these
few cohorts can tell of it); and, for the listed populations, each context's share of that gap.

    python benchmarks/states_size.py --sizes 100 200 400 600 --seeds 2 --first-seed 200
"""

from __future__ import annotations

import sys
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.states_eval import called_cohort, cohort_parser, parsed
from tests.tl._state_generator import SETTINGS, expected_calibration_error

UNASSIGNED = "unassigned"


def populations(adata, setting: str, seed: int, size: int) -> list[dict]:
    """One row per called context: whether call_states listed it as small, its calls and their calibration."""
    from sklearn.metrics import adjusted_rand_score

    params = adata.uns["hcctme_state_params"]
    small = params["self_train"]["small_populations"]
    calls = adata.obs["hcctme_state"].astype(str).to_numpy()
    truth = adata.obs["state_true"].astype(str).to_numpy()
    confidence = adata.obs["hcctme_state_confidence"].to_numpy(dtype=float)
    context = adata.obs["hcctme_state_context"].astype(str).to_numpy()
    rows = []
    for name, ids in params["states"].items():
        mine = context == name
        if not mine.any():
            continue
        called = mine & (calls != UNASSIGNED)
        right = calls[called] == truth[called]
        rows.append({"setting": setting, "seed": seed, "size": size, "context": name, "states": len(ids),
                     "cells": int(mine.sum()), "small": name in small, "calls": int(called.sum()),
                     "right": int(right.sum()),
                     "ece": expected_calibration_error(confidence[called], right) if called.any() else np.nan,
                     "ari": adjusted_rand_score(truth[mine], calls[mine]),
                     "_confidence": confidence[called], "_right": right})
    return rows


def _calls(rows: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """The confidence and rightness of every call of ``rows`` (populations), pooled."""
    return np.concatenate(rows["_confidence"].to_list()), np.concatenate(rows["_right"].to_list())


def pooled(table: pd.DataFrame) -> pd.DataFrame:
    """Per size and listing: populations, calls, accuracy, gap per call, ECE of the pooled calls, mean ARI."""
    out = []
    for (size, small), group in table.groupby(["size", "small"]):
        calls = int(group["calls"].sum())
        confidence, right = _calls(group)
        out.append({"size": size, "small": small, "populations": len(group), "calls": calls,
                    "accuracy": right.mean() if calls else np.nan,
                    "gap_per_call": (confidence.sum() - right.sum()) / calls if calls else np.nan,
                    "ece": expected_calibration_error(confidence, right) if calls else np.nan,
                    "mean_ari": group["ari"].mean()})
    return pd.DataFrame(out).set_index(["size", "small"])


def ece_interval(table: pd.DataFrame, draws: int = 1000, seed: int = 0) -> pd.DataFrame:
    """Per size and listing, the pooled ECE and its 95 % percentile interval over the cohorts.

    The cohorts ((setting, seed) pairs) are drawn with replacement ``draws`` times and the ECE of the drawn cohorts'
    pooled calls read each time: the spread of the figure over cohorts like these, not over cells.
    """
    rng = np.random.default_rng(seed)
    out = []
    for (size, small), group in table.groupby(["size", "small"]):
        cohorts = [_calls(rows) for _, rows in group.groupby(["setting", "seed"])]
        confidence, right = _calls(group)
        if not right.size:
            out.append({"size": size, "small": small, "cohorts": len(cohorts), "calls": 0, "ece": np.nan,
                        "ece_low": np.nan, "ece_high": np.nan})
            continue
        drawn = []
        for _ in range(draws):
            pick = rng.integers(0, len(cohorts), len(cohorts))
            conf = np.concatenate([cohorts[i][0] for i in pick])
            drawn.append(expected_calibration_error(conf, np.concatenate([cohorts[i][1] for i in pick]))
                         if conf.size else np.nan)
        low, high = np.nanquantile(drawn, [0.025, 0.975])
        out.append({"size": size, "small": small, "cohorts": len(cohorts), "calls": int(right.size),
                    "ece": expected_calibration_error(confidence, right), "ece_low": low, "ece_high": high})
    columns = ["size", "small", "cohorts", "calls", "ece", "ece_low", "ece_high"]
    return pd.DataFrame(out, columns=columns).set_index(["size", "small"])


def gap_by_context(table: pd.DataFrame) -> pd.DataFrame:
    """Per size, each context's calls in the listed populations and its share of their calibration gap.

    ``gap_share``: the context's (sum of confidence - right calls) over all the listed calls at that size, so the
    shares add up to the pooled gap per call (:func:`pooled`'s ``gap_per_call``).
    """
    listed = table[table["small"]]
    out = []
    for size, group in listed.groupby("size"):
        total = int(group["calls"].sum())
        for context, mine in group.groupby("context"):
            confidence, right = _calls(mine)
            out.append({"size": size, "context": context, "calls": int(right.size),
                        "accuracy": right.mean() if right.size else np.nan,
                        "confidence": confidence.mean() if right.size else np.nan,
                        "gap_share": (confidence.sum() - right.sum()) / total if total else np.nan})
    columns = ["size", "context", "calls", "accuracy", "confidence", "gap_share"]
    return pd.DataFrame(out, columns=columns).set_index(["size", "context"])


def main() -> None:
    parser = cohort_parser(__doc__.splitlines()[0])
    parser.set_defaults(settings=list(SETTINGS), first_seed=200)
    parser.add_argument("--sizes", type=int, nargs="+", default=[100, 200, 400, 600], help="cells per patient")
    args = parsed(parser)
    warnings.filterwarnings("ignore")
    rows = []
    for size in args.sizes:
        for setting in args.settings:
            for seed in range(args.first_seed, args.first_seed + args.seeds):
                adata, _ = called_cohort(setting, seed, size, args.patients)
                rows.extend(populations(adata, setting, seed, size))
    table = pd.DataFrame(rows)
    pd.set_option("display.width", 200)
    shown = table.drop(columns=["_confidence", "_right"])
    print("per population (small: listed in uns[...]['self_train']['small_populations']):")
    print(shown.round(3).to_string(index=False))
    print("\npooled by cells per patient and listing (gap_per_call: mean confidence - accuracy of the calls):")
    print(pooled(table).round(3).to_string())
    print("\npooled over sizes:")
    print(pooled(table.assign(size="all")).round(3).to_string())
    print("\npooled ECE with its 95 % interval over the cohorts (cohorts resampled, 1,000 draws; over sizes, a"
          " (setting, seed) pair's sizes are drawn together):")
    print(pd.concat([ece_interval(table), ece_interval(table.assign(size="all"))]).round(3).to_string())
    print("\nlisted populations by context (gap_share: the context's part of the gap per call above):")
    print(gap_by_context(table).round(3).to_string())


if __name__ == "__main__":
    main()
