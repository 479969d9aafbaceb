"""False-positive rate of the composition test for a rare state when the arms differ in cells per sample.

Null cohorts written with numpy, not the library's simulator: each patient's share of a rare state is drawn from
one Beta distribution (mean ``--share``, concentration 200: between-patient CV ~0.7), its count binomial among the
patient's cells; responders hold ``--cells-reference`` cells, resistors ``--cells-other`` (3x by default, the
nuisance of ``tests/tl/test_nuisance_null.py``). Nothing differs between the arms but the number of cells. The
rare state's share is tested with ``tl.compare(features="composition")`` (the default, moderated) on the arcsine
transform (the default) and on the logit. Prints each rate at p < 0.05 and 0.01 with its 95 % interval, and the
share of cohorts whose arcsine test warned of the rare state (``hcctme.tl._arcsine_drift``: the expected rate from the
cells alone reaches 0.06). ``--grid`` runs shares of 1, 2, 5 and 10 % against six pairs of cells per sample instead
and prints one row each (README, "Statistics")::

    python benchmarks/compare_rare_null.py --cohorts 500
    python benchmarks/compare_rare_null.py --cohorts 400 --grid
"""

from __future__ import annotations

import argparse
import logging
import warnings

import numpy as np
import pandas as pd
import scipy.sparse as sp
from anndata import AnnData
from scipy import stats

import hcctme

TRANSFORMS = ("asin", "logit")


def null_cohort(seed: int, *, per_arm: int, cells: tuple[int, int], share: float) -> AnnData:
    """Cells of ``2 * per_arm`` patients, obs only (sample, response, state): the arms differ in cells alone."""
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(2 * per_arm):
        level, n = ("responder", cells[0]) if i < per_arm else ("resistor", cells[1])
        k = rng.binomial(n, rng.beta(200.0 * share, 200.0 * (1 - share)))
        rows += [(f"S{i:02d}", level, "rare")] * k + [(f"S{i:02d}", level, "common")] * (n - k)
    obs = pd.DataFrame(rows, columns=["sample", "response", "state"])
    obs.index = obs.index.astype(str)
    return AnnData(X=sp.csr_matrix((len(obs), 1), dtype=np.float32), obs=obs)


GRID_SHARES = (0.01, 0.02, 0.05, 0.10)
GRID_CELLS = ((30, 90), (60, 180), (60, 120), (100, 150), (200, 600), (120, 120))


def run(n_cohorts: int, *, per_arm: int, cells: tuple[int, int], share: float) -> dict[str, np.ndarray]:
    """The rare state's p-values per transform over ``n_cohorts`` null cohorts, and whether the arcsine test warned.

    A cohort with no cell of the rare state (a single level: nothing to test) is left out.
    """
    pvalues: dict[str, list[float]] = {t: [] for t in TRANSFORMS}
    warned = []
    for seed in range(n_cohorts):
        adata = null_cohort(seed, per_arm=per_arm, cells=cells, share=share)
        if adata.obs["state"].nunique() < 2:
            continue
        for transform in TRANSFORMS:
            hcctme.tl.compare(adata, condition_key="response", sample_key="sample", reference="responder",
                              features="composition", groupby="state", transform=transform)
            table = hcctme.get.compare(adata)
            pvalues[transform].append(float(table.loc[table["feature"] == "rare", "pvalue"].iloc[0]))
            if transform == "asin":
                drift = hcctme.get.params(adata, "hcctme_compare")["arcsine_drift"]
                warned.append(bool((drift["feature"] == "rare").any()))
    return {**{t: np.asarray(p) for t, p in pvalues.items()}, "warned": np.asarray(warned)}


def grid(n_cohorts: int, per_arm: int) -> pd.DataFrame:
    """One row per share and pair of cells per sample: each transform's rate at p < 0.05 and the warned share."""
    rows = []
    for share in GRID_SHARES:
        for cells in GRID_CELLS:
            out = run(n_cohorts, per_arm=per_arm, cells=cells, share=share)
            rows.append({"share": share, "cells": f"{cells[0]} vs {cells[1]}", "cohorts": len(out["asin"]),
                         **{f"{t} p<0.05": float(np.mean(out[t] < 0.05)) for t in TRANSFORMS},
                         "asin warned": float(np.mean(out["warned"]))})
    return pd.DataFrame(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cohorts", type=int, default=500)
    parser.add_argument("--per-arm", type=int, default=10)
    parser.add_argument("--cells-reference", type=int, default=60)
    parser.add_argument("--cells-other", type=int, default=180)
    parser.add_argument("--share", type=float, default=0.02)
    parser.add_argument("--grid", action="store_true", help="every share and cells pair of the grid instead")
    args = parser.parse_args()
    warnings.simplefilter("ignore")
    logging.getLogger("hcctme").setLevel(logging.ERROR)
    hcctme.settings.progress = False
    if args.grid:
        print(f"{args.cohorts} null cohorts per row (those with a cell of the rare state: 'cohorts'), "
              f"{args.per_arm} vs {args.per_arm} patients")
        print(grid(args.cohorts, args.per_arm).round(4).to_string(index=False))
        return
    pvalues = run(args.cohorts, per_arm=args.per_arm, cells=(args.cells_reference, args.cells_other),
                  share=args.share)
    print(f"{len(pvalues['asin'])} null cohorts, {args.per_arm} vs {args.per_arm} patients, {args.cells_reference} vs "
          f"{args.cells_other} cells, a {args.share:.0%} state")
    warned = pvalues.pop("warned")
    print(f"arcsine test warned of the rare state in {warned.mean():.3f} of the cohorts")
    for transform, p in pvalues.items():
        for alpha in (0.05, 0.01):
            k = int((p < alpha).sum())
            ci = stats.binomtest(k, len(p)).proportion_ci(0.95)
            print(f"transform={transform}: FPR at p < {alpha}: {k / len(p):.3f} ({ci.low:.3f}-{ci.high:.3f})")


if __name__ == "__main__":
    main()
