"""False-positive rate of the composition test per parent population, on the generator's true states.

Null cohorts of the independent evaluation generator (``tests/tl/_state_generator.py``: two arms drawn from one
distribution, with per-patient composition, stress share, batch and depth; 8 patients, 4 vs 4, 200 cells each by
default) are tested with ``tl.compare(features="composition", groupby="state_true", parent_key="cell_type")`` by
each model method (``moderated``, the default; ``wls``, the same weights without the shared empirical-Bayes prior;
``ols``). No state calling is involved: this is the test's own rate, against which the rate on the calls
(``states_eval.py --null``) is read. Prints the rate at p < 0.05 and p < 0.01 per method, with a 95 % bootstrap
interval over cohorts, and per method and parent population, and how many of the tests the arcsine drift check
(``tl/_arcsine_drift.py``) warned of. ``--power N`` adds the methods' power on the demo
simulator's planted state shifts (``datasets.simulate_cohort``: N planted and N null cohorts of ``--power-patients``
per arm): the share of planted shifts at p < 0.05 with the right sign, and at each method's own 5 % null quantile.

    python benchmarks/compare_null_generator.py --cohorts 2000 --jobs 2
    python benchmarks/compare_null_generator.py --cohorts 0 --power 40 --power-patients 4 --power-cells 200
"""

from __future__ import annotations

import argparse
import sys
import warnings
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

METHODS = ("moderated", "wls", "ols")


def cohort_pvalues(seed: int, setting: str, cells: int, patients: int) -> pd.DataFrame:
    """The composition test's p-values of one null cohort, one row per method, parent and state."""
    import hcctme
    from tests.tl._state_generator import generate

    hcctme.settings.progress = False
    adata = generate(setting, seed=seed, n_patients=patients, cells_per_patient=cells)
    tables = []
    for method in METHODS:
        hcctme.tl.compare(adata, condition_key="condition", sample_key="patient", reference="responder",
                          features="composition", groupby="state_true", parent_key="cell_type", method=method)
        table = hcctme.get.compare(adata)[["group", "feature", "pvalue"]]
        drift = hcctme.get.params(adata, "hcctme_compare")["arcsine_drift"]
        warned = set(zip(drift["group"].astype(str), drift["feature"].astype(str), strict=True))
        keys = zip(table["group"].astype(str), table["feature"].astype(str), strict=True)
        table = table.assign(warned=[key in warned for key in keys])
        tables.append(table.assign(seed=seed, method=method))
    return pd.concat(tables, ignore_index=True)


def _chunk(seeds: list[int], setting: str, cells: int, patients: int) -> pd.DataFrame:
    warnings.filterwarnings("ignore")
    return pd.concat([cohort_pvalues(s, setting, cells, patients) for s in seeds], ignore_index=True)


def bootstrap_interval(rejected: pd.Series, seeds: pd.Series, n_boot: int = 2000) -> tuple[float, float]:
    """95 % interval of the rejection rate, resampling cohorts (tests within a cohort are not independent)."""
    frame = pd.DataFrame({"k": rejected.to_numpy(dtype=float), "seed": seeds.to_numpy()})
    per = frame.groupby("seed")["k"].agg(["sum", "size"])
    rng = np.random.default_rng(0)
    draws = rng.integers(0, len(per), (n_boot, len(per)))
    rates = per["sum"].to_numpy()[draws].sum(axis=1) / per["size"].to_numpy()[draws].sum(axis=1)
    return float(np.percentile(rates, 2.5)), float(np.percentile(rates, 97.5))


def summary(pvalues: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Per method (rates, interval, tests) and per method x parent (rate at p < 0.05)."""
    p = pvalues.dropna(subset=["pvalue"])
    rows = []
    for method, group in p.groupby("method", sort=False):
        low, high = bootstrap_interval(group["pvalue"] < 0.05, group["seed"])
        rows.append({"method": method, "tests": len(group), "cohorts": group["seed"].nunique(),
                     "fpr_0.05": (group["pvalue"] < 0.05).mean(), "interval_low": low, "interval_high": high,
                     "fpr_0.01": (group["pvalue"] < 0.01).mean()})
    per_parent = p.assign(rejected=p["pvalue"] < 0.05).pivot_table(index="method", columns="group",
                                                                    values="rejected", aggfunc="mean")
    return pd.DataFrame(rows).set_index("method"), per_parent.loc[list(METHODS)]


def power(reps: int, per_arm: int, cells: int, seed0: int) -> pd.DataFrame:
    """Per method: null FPR, power at p < 0.05 and at the method's own 5 % null quantile, on the demo simulator."""
    import hcctme
    from benchmarks.compare_power import _planted, power_at_fpr
    from hcctme.datasets import simulate_cohort

    hcctme.settings.progress = False
    rows = []
    for rep in range(reps):
        for null in (False, True):
            adata = simulate_cohort(2 * per_arm, cells, n_genes=100, null=null, random_state=seed0 + 2 * rep + null)
            truth = {} if null else _planted(adata)
            for method in METHODS:
                table = hcctme.tl.compare(adata, copy=True, condition_key="response", sample_key="patient",
                                          reference="responder", features="composition", groupby="state_true",
                                          parent_key="cell_type", method=method).uns["hcctme_compare"]
                for feature, group, p, effect in table[["feature", "group", "pvalue", "effect"]].itertuples(False):
                    direction = truth.get((feature, group))
                    right = direction is not None and np.sign(effect) == (1 if direction == "up" else -1)
                    rows.append({"method": method, "null": null, "planted": direction is not None, "p": p,
                                 "right": right})
    tests = pd.DataFrame(rows).dropna(subset=["p"])
    out = []
    for method, group in tests.groupby("method", sort=False):
        nulls = group.loc[group["null"], "p"].to_numpy()
        planted = group[group["planted"]]
        power = power_at_fpr(nulls, planted["p"].to_numpy(), planted["right"].to_numpy(dtype=bool))
        out.append({"method": method, "null_tests": len(nulls), "null_fpr": power["fpr_null"],
                    "planted": len(planted), "power": power["power@0.05"], "power_at_fpr": power["power@FPR"]})
    return pd.DataFrame(out).set_index("method")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cohorts", type=int, default=200)
    parser.add_argument("--first-seed", type=int, default=10_000)
    parser.add_argument("--setting", default="10x")
    parser.add_argument("--cells", type=int, default=200, help="cells per patient")
    parser.add_argument("--patients", type=int, default=8)
    parser.add_argument("--jobs", type=int, default=1)
    parser.add_argument("--save", type=Path, default=None, help="write the p-values to this CSV")
    parser.add_argument("--power", type=int, default=0, help="planted and null demo-simulator cohorts for power")
    parser.add_argument("--power-patients", type=int, default=4, help="patients per arm in the power cohorts")
    parser.add_argument("--power-cells", type=int, default=200, help="cells per patient in the power cohorts")
    parser.add_argument("--power-seed", type=int, default=7000)
    args = parser.parse_args()
    if min(args.cohorts, args.jobs, args.cells, args.patients) < 1:
        parser.error("--cohorts, --jobs, --cells and --patients must be >= 1")
    pd.set_option("display.width", 200)
    if args.power:
        warnings.filterwarnings("ignore")
        print(f"demo simulator, {args.power_patients} vs {args.power_patients} patients x {args.power_cells} cells, "
              f"{args.power} planted and {args.power} null cohorts (seeds from {args.power_seed}):")
        print(power(args.power, args.power_patients, args.power_cells, args.power_seed).round(3).to_string())
    if not args.cohorts:
        return
    seeds = list(range(args.first_seed, args.first_seed + args.cohorts))
    chunks = [seeds[i::args.jobs] for i in range(args.jobs)]
    with ProcessPoolExecutor(args.jobs) as pool:
        parts = list(pool.map(_chunk, chunks, [args.setting] * args.jobs, [args.cells] * args.jobs,
                              [args.patients] * args.jobs))
    pvalues = pd.concat(parts, ignore_index=True)
    if args.save is not None:
        pvalues.to_csv(args.save, index=False)
    overall, per_parent = summary(pvalues)
    print(f"setting {args.setting}, {args.patients} patients x {args.cells} cells, seeds {seeds[0]}-{seeds[-1]}")
    print(overall.round(4).to_string())
    print("\nrate at p < 0.05 per parent population:")
    print(per_parent.round(3).to_string())
    tested = pvalues.dropna(subset=["pvalue"])
    tested = tested[tested["method"] == METHODS[0]]
    print(f"\nwarned of by the arcsine drift check (tl/_arcsine_drift.py): {int(tested['warned'].sum())} of "
          f"{len(tested):,} tests in {tested.loc[tested['warned'], 'seed'].nunique()} of {tested['seed'].nunique()} "
          "cohorts")


if __name__ == "__main__":
    main()
