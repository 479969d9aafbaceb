"""False-positive rate and power of ``hcctme.tl.compare`` on simulated cohorts.

For each cohort size (patients per arm) the script simulates ``--reps`` cohorts with the default
planted effects of :func:`hcctme.datasets.simulate_cohort` and ``--reps`` null cohorts (nothing
planted), runs the patient-level comparisons and prints:

* composition: power = fraction of planted state shifts (``effects_table`` rows of kind "state")
  found with padj < 0.1 and the right sign; "all found" = fraction of cohorts where every one was;
  the same with ``method="welch"`` (at 4 vs 4 the exact Mann-Whitney p-value cannot go below
  2/70 = 0.029, so nothing passes BH at 0.1 over the ~25 tests of a cohort);
* scores: the same for the planted states' own signature scores, read in their parent cell type
  (UCell scores of the state signatures, per-patient means);
* genes: the planted ligand-receptor gain (CD44 in fibroblasts, SPP1 in macrophages; PyDESeq2 on
  pseudobulk of those two cell types), found with padj < 0.1 and up;
* FPR: fraction of p < 0.05 on the null cohorts (pooled over features), next to a naive cell-level
  test of the same data (chi-square on pooled cell counts for composition; Mann-Whitney on cells for
  scores; Welch t-test on cells' log-normalised expression for genes).

Usage: ``python benchmarks/compare_power.py [--sizes 4 8 16] [--reps 20] [--cells 600]``.
On a 2-core machine the defaults take about 10 minutes (most of it PyDESeq2); ``--no-genes`` skips
the gene-level part.
"""

from __future__ import annotations

import argparse
import time
import warnings

import numpy as np
import pandas as pd
from scipy import stats

import hcctme as hc
from hcctme.datasets import STATE_IDS, simulate_cohort
from hcctme.datasets._simulate import STATE_PARENT

KW = dict(condition_key="response", sample_key="patient", reference="responder")
GENE_TYPES = ("Fibroblasts", "Macrophages")
PLANTED_GENES = {("CD44", "Fibroblasts"), ("SPP1", "Macrophages")}


def _planted_states(adata) -> dict[str, str]:
    table = adata.uns["hcctme_sim"]["effects_table"]
    table = table[(table["kind"] == "state") & (table["direction_in_resistors"] != "none")]
    return dict(zip(table["name"], table["direction_in_resistors"]))


def _hits(table: pd.DataFrame, truth: dict[tuple[str, str], str], alpha: float = 0.1) -> list[bool]:
    indexed = table.set_index(["feature", "group"])
    out = []
    for key, direction in truth.items():
        if key not in indexed.index:
            out.append(False)
            continue
        row = indexed.loc[key]
        out.append(bool(row["padj"] < alpha and row["direction"] == direction))
    return out


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


def naive_genes(adata, cell_type: str) -> np.ndarray:
    """Welch t-test of log-normalised expression between conditions, cells as replicates."""
    mask = (adata.obs["cell_type"] == cell_type).to_numpy()
    X = adata.X[mask].toarray()
    r = adata.obs["response"].astype(str).to_numpy()[mask]
    keep = X.sum(axis=0) > 0
    with np.errstate(all="ignore"):
        p = stats.ttest_ind(X[r == "resistor"][:, keep], X[r == "responder"][:, keep], equal_var=False).pvalue
    return p[np.isfinite(p)]


def run_size(n_per: int, reps: int, cells: int, n_genes: int, genes: bool, gene_reps: int, seed0: int) -> dict:
    comp_hits, comp_all, score_hits, gene_hits, welch_hits = [], [], [], [], []
    fpr = {"composition": [], "composition_welch": [], "scores": [], "genes": []}
    naive = {"composition": [], "scores": [], "genes": []}
    states = list(STATE_IDS)
    for rep in range(reps):
        for null in (False, True):
            seed = seed0 + 1000 * n_per + 2 * rep + int(null)
            adata = simulate_cohort(2 * n_per, cells, n_genes=n_genes, null=null, seed=seed)
            hc.tl.score(adata, states)
            comp = hc.tl.compare(adata, features="composition", groupby="state_true", parent_key="cell_type",
                                 store=False, **KW)
            welch = hc.tl.compare(adata, features="composition", groupby="state_true", parent_key="cell_type",
                                  method="welch", store=False, **KW)
            scores = hc.tl.compare(adata, features="scores", groupby="cell_type", store=False, **KW)
            # a state's score is read in its parent cell type only
            scores = scores[[STATE_PARENT[f] == g for f, g in zip(scores["feature"], scores["group"])]]
            if null:
                fpr["composition"].append(comp["pvalue"].to_numpy())
                fpr["composition_welch"].append(welch["pvalue"].to_numpy())
                fpr["scores"].append(scores["pvalue"].to_numpy())
                naive["composition"].append(naive_composition(adata))
                naive["scores"].append(naive_scores(adata))
            else:
                planted = _planted_states(adata)
                truth = {(s, STATE_PARENT[s]): d for s, d in planted.items()}
                hits = _hits(comp, truth)
                comp_hits.extend(hits)
                comp_all.append(all(hits))
                welch_hits.extend(_hits(welch, truth))
                score_hits.extend(_hits(scores, truth))
            if genes and rep < gene_reps:
                sub = adata[adata.obs["cell_type"].isin(GENE_TYPES)].copy()
                table = hc.tl.compare(sub, features="genes", groupby="cell_type", store=False, **KW)
                if null:
                    fpr["genes"].append(table["pvalue"].dropna().to_numpy())
                    naive["genes"].append(np.concatenate([naive_genes(sub, t) for t in GENE_TYPES]))
                else:
                    gene_hits.extend(_hits(table, {k: "up" for k in PLANTED_GENES}))
    rate = lambda xs: float(np.mean(np.concatenate(xs) < 0.05)) if xs else float("nan")  # noqa: E731
    return {
        "n_per_arm": n_per,
        "composition_power": float(np.mean(comp_hits)),
        "composition_all_found": float(np.mean(comp_all)),
        "composition_power_welch": float(np.mean(welch_hits)),
        "scores_power": float(np.mean(score_hits)),
        "genes_power": float(np.mean(gene_hits)) if gene_hits else float("nan"),
        "fpr_composition": rate(fpr["composition"]),
        "naive_fpr_composition": rate(naive["composition"]),
        "fpr_composition_welch": rate(fpr["composition_welch"]),
        "fpr_scores": rate(fpr["scores"]),
        "naive_fpr_scores": rate(naive["scores"]),
        "fpr_genes": rate(fpr["genes"]),
        "naive_fpr_genes": rate(naive["genes"]),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[4, 8, 16], help="patients per arm")
    parser.add_argument("--reps", type=int, default=20, help="cohorts per size (planted and null each)")
    parser.add_argument("--gene-reps", type=int, default=3, help="cohorts per size run through PyDESeq2")
    parser.add_argument("--cells", type=int, default=600, help="cells per patient")
    parser.add_argument("--n-genes", type=int, default=600)
    parser.add_argument("--no-genes", action="store_true")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    warnings.simplefilter("ignore")
    hc.settings.progress = False
    rows = []
    for n_per in args.sizes:
        start = time.time()
        row = run_size(n_per, args.reps, args.cells, args.n_genes, not args.no_genes, args.gene_reps, args.seed)
        row["seconds"] = round(time.time() - start, 1)
        rows.append(row)
        print(pd.DataFrame([row]).to_string(index=False), flush=True)
    table = pd.DataFrame(rows).set_index("n_per_arm")
    print(f"\nreps={args.reps} cohorts per size (planted and null), {args.cells} cells/patient, "
          f"{args.n_genes} genes, PyDESeq2 on {args.gene_reps} cohorts per size; padj < 0.1 for power, "
          "p < 0.05 for FPR")
    print(table.round(3).to_string())


if __name__ == "__main__":
    main()
