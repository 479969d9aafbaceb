"""False-positive rate and power of hcctme's composition test next to scanpro (propeller) and scCODA.

All methods see the same cohorts, per parent cell type (the proportions of each state within its
cell type):

* planted cohorts: :func:`hcctme.datasets.simulate_cohort` with its default planted state shifts
  (effects_table rows of kind "state"); power = fraction of planted shifts called with the right sign;
* null cohorts: ``simulate_cohort(null=True)`` (nothing planted), FPR = fraction of states called;
* nuisance null cohorts (``tests/tl/_compare_data.nuisance_null``): the arms differ only in cells per
  patient (3x) and sequencing depth (2x); FPR as above.

Methods: ``hcctme`` (``tl.compare`` default: arcsine-square-root proportions, precision-weighted linear
model, empirical-Bayes moderated t), ``hcctme_clr`` (CLR with multiplicative replacement, same
engine), ``hcctme_mw`` (the 0.1 default: Mann-Whitney on CLR), ``scanpro`` (propeller: logit
proportions, robust eBayes; ``scanpro.scanpro``), ``sccoda`` (pertpy's scCODA, Bayesian Dirichlet-
multinomial; credible effects at its default FDR 0.05, automatic reference, 1,000 NUTS samples after 300
warm-up; only in the cell types with a planted shift and on few cohorts: about a minute per cell type on
2 shared cores).
For the p-value methods "power@0.05" calls p < 0.05 and "power@FPR" calls p below the 5% quantile of
that method's own null p-values at the same cohort size (matched FPR of 0.05).

Usage: ``python benchmarks/compare_power.py [--sizes 6 10 20] [--reps 20] [--sccoda-reps 2]``.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats

import hcctme as hc
from hcctme.datasets import STATE_IDS, simulate_cohort
from hcctme.datasets._simulate import STATE_PARENT

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tests.tl._compare_data import nuisance_null

KW = dict(condition_key="response", sample_key="patient", reference="responder")
P_METHODS = ("hcctme", "hcctme_clr", "hcctme_mw", "scanpro")


def _table(adata, **kwargs) -> pd.DataFrame:
    return hc.tl.compare(adata, copy=True, **KW, **kwargs).uns["hcctme_compare"]


def naive_composition(adata) -> np.ndarray:
    """Chi-square test of each state's share of its parent, cells pooled over patients."""
    pvals = []
    for _, sub in adata.obs.groupby("cell_type", observed=True):
        states = sub["state_true"].astype(str)
        if states.nunique() < 2:
            continue
        for state in states.unique():
            tab = pd.crosstab(states == state, sub["response"].astype(str))
            if tab.shape == (2, 2):
                pvals.append(stats.chi2_contingency(tab)[1])
    return np.asarray(pvals)


def naive_scores(adata) -> np.ndarray:
    """Mann-Whitney of each state score between conditions, cells as replicates, in the parent type."""
    scores = adata.obsm["hcctme_scores"]
    resp = adata.obs["response"].astype(str).to_numpy()
    cell_type = adata.obs["cell_type"].astype(str).to_numpy()
    pvals = []
    for state in scores.columns:
        mask = cell_type == STATE_PARENT[state]
        x = scores[state].to_numpy()[mask]
        r = resp[mask]
        pvals.append(stats.mannwhitneyu(x[r == "resistor"], x[r == "responder"]).pvalue)
    return np.asarray(pvals)


def _hcctme(adata, **kwargs) -> pd.DataFrame:
    table = _table(adata, features="composition", groupby="state_true", parent_key="cell_type", **kwargs)
    return pd.DataFrame({"state": table["feature"], "parent": table["group"], "pvalue": table["pvalue"],
                         "effect": table["effect"], "called": np.nan})


def _scanpro(adata) -> pd.DataFrame:
    from scanpro import scanpro

    rows = []
    for parent, obs in adata.obs.groupby("cell_type", observed=True):
        obs = obs[["patient", "response", "state_true"]].astype(str)
        if obs["state_true"].nunique() < 2:
            continue
        res = scanpro(obs, clusters_col="state_true", conds_col="response", samples_col="patient",
                      conditions=["responder", "resistor"], verbosity=0).results
        diff = res["mean_props_resistor"] - res["mean_props_responder"]
        rows.append(pd.DataFrame({"state": res.index, "parent": parent, "pvalue": res["p_values"].to_numpy(),
                                  "effect": diff.to_numpy(), "called": np.nan}))
    return pd.concat(rows, ignore_index=True)


def _sccoda(adata, seed: int, parents: set[str]) -> pd.DataFrame:
    import numpyro
    import pertpy as pt

    numpyro.enable_validation(False)  # pertpy 1.0.3 hands numpyro 0.22 float total counts, which it refuses
    rows = []
    for parent, obs in adata.obs.groupby("cell_type", observed=True):
        if parent not in parents or obs["state_true"].nunique() < 2:
            continue
        sub = adata[obs.index].copy()
        model = pt.tl.Sccoda()
        mdata = model.load(sub, type="cell_level", generate_sample_level=True, cell_type_identifier="state_true",
                           sample_identifier="patient", covariate_obs=["response"])
        mdata = model.prepare(mdata, modality_key="coda", formula="C(response, Treatment('responder'))",
                              reference_cell_type="automatic")
        with contextlib.redirect_stderr(io.StringIO()):  # numpyro's progress bar
            model.run_nuts(mdata, modality_key="coda", num_samples=1000, num_warmup=300, rng_key=seed)
        effects = model.get_effect_df(mdata, modality_key="coda").reset_index()
        effect = effects["Final Parameter"].to_numpy(dtype=float)
        rows.append(pd.DataFrame({"state": effects["Cell Type"].astype(str), "parent": parent, "pvalue": np.nan,
                                  "effect": effect, "called": effect != 0}))
    return pd.concat(rows, ignore_index=True)


def _planted(adata) -> dict[tuple[str, str], str]:
    table = adata.uns["hcctme_sim"]["effects_table"]
    table = table[(table["kind"] == "state") & (table["direction_in_resistors"] != "none")]
    return {(s, STATE_PARENT[s]): d for s, d in zip(table["name"], table["direction_in_resistors"], strict=True)}


def run_size(n_per: int, reps: int, sccoda_reps: int, cells: int, seed0: int) -> pd.DataFrame:
    """FPR (null and nuisance-null cohorts) and power (planted cohorts) of every method at one size."""
    planted_states = {s for s, _ in _planted(simulate_cohort(4, 60, n_genes=50, random_state=seed0))}
    null_p = {m: [] for m in P_METHODS}
    nuisance_p = {m: [] for m in P_METHODS}
    null_called = []
    planted = {m: [] for m in (*P_METHODS, "sccoda")}  # (pvalue, right sign, called) per planted shift
    seconds = dict.fromkeys((*P_METHODS, "sccoda"), 0.0)
    for rep in range(reps):
        use_sccoda = rep < sccoda_reps
        for kind in ("planted", "null", "nuisance"):
            seed = seed0 + 1000 * n_per + 3 * rep + ("planted", "null", "nuisance").index(kind)
            if kind == "nuisance":
                adata = nuisance_null(n_per, 80, n_genes=10, seed=seed)
                for m in ("hcctme", "hcctme_clr", "hcctme_mw"):
                    kwargs = {"hcctme": {}, "hcctme_clr": {"transform": "clr"},
                              "hcctme_mw": {"transform": "clr", "method": "mannwhitney"}}[m]
                    nuisance_p[m].extend(_hcctme(adata, **kwargs)["pvalue"])
                nuisance_p["scanpro"].extend(_scanpro(adata)["pvalue"])
                continue
            adata = simulate_cohort(2 * n_per, cells, n_genes=100, null=kind == "null", random_state=seed)
            results = {}
            for m in (*P_METHODS, "sccoda"):
                if m == "sccoda" and not use_sccoda:
                    continue
                start = time.perf_counter()
                parents = set(STATE_PARENT[s] for s in STATE_IDS if s in planted_states)
                results[m] = _sccoda(adata, seed, parents) if m == "sccoda" else _methods_one(m, adata)
                seconds[m] += time.perf_counter() - start
            if kind == "null":
                for m in P_METHODS:
                    null_p[m].extend(results[m]["pvalue"])
                if "sccoda" in results:
                    null_called.extend(results["sccoda"]["called"])
                continue
            truth = _planted(adata)
            for m, table in results.items():
                indexed = table.set_index(["state", "parent"])
                for key, direction in truth.items():
                    row = indexed.loc[key]
                    sign = np.sign(row["effect"]) == (1 if direction == "up" else -1)
                    planted[m].append((row["pvalue"], bool(sign), bool(row["called"]) if m == "sccoda" else None))
    rows = []
    for m in (*P_METHODS, "sccoda"):
        hits = planted[m]
        if not hits:
            continue
        if m == "sccoda":
            rows.append({"method": m, "fpr_null": float(np.mean(null_called)), "fpr_nuisance": np.nan,
                         "power@0.05": float(np.mean([c and s for _, s, c in hits])), "power@FPR": np.nan,
                         "threshold@FPR": np.nan, "n_cohorts": sccoda_reps, "seconds/cohort": seconds[m] / 2 /
                         max(sccoda_reps, 1)})
            continue
        power = power_at_fpr(np.asarray(null_p[m], float), np.array([h[0] for h in hits], float),
                             np.array([h[1] for h in hits]))
        nuis = np.asarray(nuisance_p[m], float)
        rows.append({"method": m, "fpr_null": power["fpr_null"], "fpr_nuisance": float(np.mean(nuis < 0.05)),
                     "power@0.05": power["power@0.05"], "power@FPR": power["power@FPR"],
                     "threshold@FPR": power["threshold@FPR"], "n_cohorts": reps,
                     "seconds/cohort": seconds[m] / 2 / reps})
    table = pd.DataFrame(rows)
    table.insert(0, "n_per_arm", n_per)
    return table


def power_at_fpr(nulls: np.ndarray, planted: np.ndarray, right_sign: np.ndarray) -> dict[str, float]:
    """Null FPR at p < 0.05; power at p < 0.05 and at the method's own 5 % null quantile (right sign only)."""
    threshold = float(np.quantile(nulls[np.isfinite(nulls)], 0.05))
    return {"fpr_null": float(np.mean(nulls < 0.05)), "power@0.05": float(np.mean((planted < 0.05) & right_sign)),
            "power@FPR": float(np.mean((planted <= threshold) & right_sign)), "threshold@FPR": threshold}


def _methods_one(method: str, adata) -> pd.DataFrame:
    """P-values of one of :data:`P_METHODS` on one cohort."""
    if method == "scanpro":
        return _scanpro(adata)
    kwargs = {"hcctme": {}, "hcctme_clr": {"transform": "clr"},
              "hcctme_mw": {"transform": "clr", "method": "mannwhitney"}}[method]
    return _hcctme(adata, **kwargs)


def main() -> None:
    """Run the benchmark and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[6, 10, 20], help="patients per arm")
    parser.add_argument("--reps", type=int, default=20, help="cohorts per size (planted, null and nuisance each)")
    parser.add_argument("--sccoda-reps", type=int, default=2, help="of those, cohorts also run through scCODA")
    parser.add_argument("--cells", type=int, default=500, help="cells per patient")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    if min(args.sizes) < 2 or args.reps < 1:
        parser.error("--sizes must be >= 2 patients per arm each (a cohort needs >= 4) and --reps >= 1")
    warnings.simplefilter("ignore")
    hc.settings.progress = False
    tables = []
    for n_per in args.sizes:
        table = run_size(n_per, args.reps, args.sccoda_reps, args.cells, args.seed)
        print(table.round(3).to_string(index=False), flush=True)
        tables.append(table)
    print(f"\n{args.reps} planted + {args.reps} null + {args.reps} nuisance-null cohorts per size "
          f"({args.cells} cells/patient; scCODA on {args.sccoda_reps} planted + null cohorts per size); "
          "FPR and power@0.05 at p < 0.05, power@FPR at each method's own 5% null quantile")
    print(pd.concat(tables, ignore_index=True).round(3).to_string(index=False))


if __name__ == "__main__":
    main()
