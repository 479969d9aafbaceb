"""State calling on the independent evaluation generator (tests/tl/_state_generator.py).

For each setting (10x-like, Smart-seq-like, noisy shallow 10x, high stress/ambient/doublets) and
seed: draw a cohort, score it with the library (UCell) plus a stand-in dissociation-stress gene
set (used as an artefact column until the library ships an "artefacts" collection), call states,
and print per-parent ARI, per-state recall / precision, the ECE of the calls' confidence and the
share of artefact cells left unassigned. ``--refine leiden`` adds cluster voting.

    python benchmarks/states_eval.py --seeds 3
"""

from __future__ import annotations

import argparse
import sys
import warnings
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import hcctme
from tests.tl._state_generator import SETTINGS, STRESS_STAND_IN, evaluate, generate


def run(setting: str, seed: int, refine: str | None, cells: int, patients: int) -> dict:
    adata = generate(setting, seed=seed, n_patients=patients, cells_per_patient=cells)
    hcctme.tl.score(adata)
    hcctme.tl.score(adata, {"STRESS_STAND_IN": list(STRESS_STAND_IN)}, key_added="stress")
    adata.obsm["hcctme_scores"]["STRESS_STAND_IN"] = adata.obsm["stress"]["STRESS_STAND_IN"]
    hcctme.tl.call_states(adata, cell_type_key="cell_type", sample_key="patient",
                          artefacts=["STRESS_STAND_IN"], refine=refine)
    return evaluate(adata)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--settings", nargs="+", default=list(SETTINGS))
    parser.add_argument("--seeds", type=int, default=2)
    parser.add_argument("--cells", type=int, default=600)
    parser.add_argument("--patients", type=int, default=8)
    parser.add_argument("--refine", default=None, choices=[None, "leiden"])
    args = parser.parse_args()
    warnings.filterwarnings("ignore")
    ari, states, summary = [], [], []
    for setting in args.settings:
        for seed in range(args.seeds):
            res = run(setting, 100 + seed, args.refine, args.cells, args.patients)
            ari.append(res["ari"].rename((setting, seed)))
            states.append(res["states"].assign(setting=setting, seed=seed))
            summary.append({"setting": setting, "seed": seed, "ece": res["ece"], **res["artefacts"].to_dict()})
    pd.set_option("display.width", 160)
    print("per-parent ARI (mean over seeds):")
    print(pd.concat(ari, axis=1).T.groupby(level=0).mean().round(2).to_string())
    table = pd.concat(states).reset_index().groupby(["state", "setting"])[["recall", "precision"]].mean()
    print("\nper-state recall / precision (mean over seeds):")
    print(table.unstack("setting").round(2).to_string())
    print("\nECE of the calls' confidence; share of artefact cells left unassigned:")
    print(pd.DataFrame(summary).groupby("setting").mean(numeric_only=True).drop(columns="seed").round(3).to_string())


if __name__ == "__main__":
    main()
