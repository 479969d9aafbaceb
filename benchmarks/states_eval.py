"""State calling on the independent evaluation generator (tests/tl/_state_generator.py).

For each setting (10x-like, Smart-seq-like, noisy shallow 10x, high stress/ambient/doublets) and
seed: draw a cohort, score it with the library (UCell; its "artefacts" collection included, as a default call reads
it; ``--stand-in`` adds a hand-picked 30-gene dissociation-stress list as an extra artefact column, the setting of
the figures before library 2.3), call states,
and print per-parent ARI, per-state recall / precision (the precision averaged over the seeds that call the state at
all, with the seeds that do not listed: until session 31 such a seed counted as precision 0), the ECE of the calls'
confidence, the share of artefact cells left unassigned and the share of the other cells flagged as artefacts
(``clean_flagged``: the artefact rule's false positives, which lose their call); then the false-positive rate of
``tl.compare(features="composition")`` on the calls of ``--null`` null cohorts (no planted
difference between the two arms), and of the same test on those cohorts' true states (the test's own
rate), with 95 % bootstrap intervals over cohorts (``--jobs`` processes; ``--save-null`` writes the p-values;
``--seeds 0`` runs the null cohorts only). ``--absent`` adds, per setting, a cohort with one state per parent
removed from every sample and prints the share of the parent called that state, and a cohort without the
states of the short panels (:data:`ABSENT_SHORT`, 3-gene marker panels). ``--refine leiden``
adds cluster voting on the state scores, ``--refine graph`` voting on the neighbour graph a
scanpy user has (built here as a user would: normalise_total, log1p, 2,000 highly variable genes,
50-PC PCA, ``sc.pp.neighbors`` with 15 neighbours; also for the absent and null cohorts);
``--no-self-train`` measures the mixture's calls without the self-training step. ``--scrublet score``
/ ``flag`` runs scanpy's doublet detector (``sc.pp.scrublet`` per patient on the counts,
``random_state=0``) before the calls and passes its ``doublet_score`` (read by the artefact rule) or
``predicted_doublet`` (flags its cells) in ``artefacts`` beside the stress stand-in; the summary then
adds scrublet's seconds per cohort and the recall / precision of its ``predicted_doublet`` against the
generator's doublets. ``--held-out`` runs the settings of ``HELD_OUT`` instead (never used while the caller was
developed; with ``--first-seed 200`` on seeds never used either).

    python benchmarks/states_eval.py --seeds 2 --null 16 --absent
    python benchmarks/states_eval.py --seeds 0 --null 192 --jobs 2 --save-null \
        benchmarks/results/composition_null_2.36/pvalues.csv
    python benchmarks/states_eval.py --held-out --first-seed 200 --seeds 2
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd
import scipy.sparse as sp

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import hcctme
from tests.tl._state_generator import (
    HELD_OUT,
    SETTINGS,
    STRESS_STAND_IN,
    called_precision,
    evaluate,
    generate,
)


def with_graph(adata, refine: str | None):
    """``adata`` with ``obsp["connectivities"]`` built the way a scanpy user would, when ``refine`` votes on it."""
    if refine != "graph":
        return adata
    import scanpy as sc

    work = adata.copy()
    values = work.X.data if sp.issparse(work.X) else np.asarray(work.X)
    if np.allclose(values, np.round(values)):  # counts: a user normalises and logs them first
        sc.pp.normalize_total(work, target_sum=1e4)
        sc.pp.log1p(work)
    sc.pp.highly_variable_genes(work, n_top_genes=min(2000, work.n_vars - 1))
    sc.pp.pca(work, n_comps=min(50, work.n_obs - 1, int(work.var["highly_variable"].sum()) - 1),
              mask_var="highly_variable", random_state=0)
    sc.pp.neighbors(work, n_neighbors=15, random_state=0)
    adata.obsp["connectivities"] = work.obsp["connectivities"]
    adata.obsp["distances"] = work.obsp["distances"]
    adata.uns["neighbors"] = work.uns["neighbors"]
    return adata


# the obs column scanpy's scrublet writes that each --scrublet mode passes in artefacts
SCRUBLET_COLUMNS = {"score": "doublet_score", "flag": "predicted_doublet"}


def scrublet(adata) -> dict[str, float]:
    """Run ``sc.pp.scrublet`` per patient on the counts (into ``adata.obs``); its seconds and its calls' quality."""
    import anndata as ad
    import scanpy as sc

    work = ad.AnnData(adata.X.copy(), obs=adata.obs[["patient"]].copy(), var=pd.DataFrame(index=adata.var_names))
    start = time.perf_counter()
    sc.pp.scrublet(work, batch_key="patient", random_state=0)
    seconds = time.perf_counter() - start
    adata.obs["doublet_score"] = work.obs["doublet_score"].to_numpy(dtype=float)
    adata.obs["predicted_doublet"] = work.obs["predicted_doublet"].to_numpy(dtype=bool)
    truth = adata.obs["artefact"].astype(str).to_numpy() == "doublet"
    called = adata.obs["predicted_doublet"].to_numpy()
    return {"scrublet_s": seconds, "scrublet_recall": float(np.mean(called[truth])),
            "scrublet_precision": float(np.mean(truth[called])) if called.any() else float("nan")}


def called_cohort(setting: str, seed: int, cells: int, patients: int, refine: str | None = None,
                  self_train: bool = True, doublets: str | None = None, stand_in: bool = False):
    """A generator cohort scored and called; and the doublet detector's figures.

    By default the library's scores alone (its ``"artefacts"`` collection), as ``tl.score`` and ``tl.call_states``
    read a user's data; ``stand_in=True`` adds :data:`STRESS_STAND_IN` as an extra artefact column.
    """
    adata = with_graph(generate(setting, seed=seed, n_patients=patients, cells_per_patient=cells), refine)
    detector = scrublet(adata) if doublets else {}
    hcctme.tl.score(adata)
    artefacts = [SCRUBLET_COLUMNS[doublets]] if doublets else []
    if stand_in:
        hcctme.tl.score(adata, {"STRESS_STAND_IN": list(STRESS_STAND_IN)}, key_added="stress")
        adata.obsm["hcctme_scores"]["STRESS_STAND_IN"] = adata.obsm["stress"]["STRESS_STAND_IN"]
        artefacts = ["STRESS_STAND_IN", *artefacts]
    hcctme.tl.call_states(adata, cell_type_key="cell_type", sample_key="patient",
                          artefacts=artefacts or None, refine=refine, self_train=self_train)
    return adata, detector


def run(setting: str, seed: int, refine: str | None, cells: int, patients: int, self_train: bool = True,
        doublets: str | None = None, stand_in: bool = False) -> dict:
    adata, detector = called_cohort(setting, seed, cells, patients, refine, self_train, doublets, stand_in)
    return {**evaluate(adata), "clean_flagged": clean_flagged(adata), "detector": detector}


def clean_flagged(adata) -> float:
    """Share of the cells of parents with states that are no artefact but were flagged as one."""
    context = adata.obs["hcctme_state_context"].astype(str).to_numpy()
    with_states = np.isin(context, list(adata.uns["hcctme_state_params"]["states"]))
    clean = (adata.obs["artefact"].astype(str).to_numpy() == "none") & with_states
    return float(np.mean(adata.obs["hcctme_state_artefact"].astype(str).to_numpy()[clean] != ""))


# one state per parent, removed from every sample of an "absent" cohort (all cells expressing its programme)
ABSENT = ("TREG", "TAM2_SPP1", "CD8_TEFF", "PMN_MDSC", "CAF_IL_ICAF")
# the states of the short panels (3 library genes each), removed together from a second cohort
ABSENT_SHORT = ("NEU_CD10_ALPL", "ENDO_ONCOFETAL_PLVAP")


def absent_calls(setting: str, seed: int, cells: int, patients: int, absent: tuple[str, ...] = ABSENT,
                 refine: str | None = None) -> pd.Series:
    """Share of each parent's cells called the state removed from the cohort (``absent``, one state per parent)."""
    adata = generate(setting, seed=seed, n_patients=patients, cells_per_patient=cells)
    adata = with_graph(adata[~adata.obs["programme"].astype(str).isin(absent)].copy(), refine)
    hcctme.tl.score(adata)
    hcctme.tl.call_states(adata, cell_type_key="cell_type", sample_key="patient", refine=refine)
    calls = adata.obs["hcctme_state"].astype(str)
    context = adata.obs["hcctme_state_context"].astype(str)
    return pd.Series({s: float((calls[context == hcctme.sig.get(s).cell_context] == s).mean()) for s in absent})


NULL_FIRST_SEED = 500  # the null cohorts' seeds: 500, 501, ... (never a development or held-out setting's seed)
# the p-values of the null cohorts of the saved run (states_eval.py --seeds 0 --null 192 --jobs 2 --save-null ...)
SAVED_NULL = Path(__file__).resolve().parent / "results" / "composition_null_2.39" / "pvalues.csv"


def null_cohort_pvalues(seed: int, refine: str | None = None) -> pd.DataFrame:
    """The composition test's p-values on one null cohort (8 patients, 4 vs 4, 200 cells each; 10x setting).

    One row per test: ``seed``, ``on`` (``"calls"``: the test on the calls; ``"true states"``: the same test on the
    generator's true states of the cohort, the test's own rate against which the calls' rate is read), ``group``
    (the parent population), ``feature`` and ``pvalue`` (untested features left out).
    """
    warnings.filterwarnings("ignore")
    adata = with_graph(generate("10x", seed=seed, n_patients=8, cells_per_patient=200), refine)
    hcctme.tl.score(adata)
    hcctme.tl.call_states(adata, cell_type_key="cell_type", sample_key="patient", refine=refine)
    tables = []
    for on, key in {"calls": "hcctme_state", "true states": "state_true"}.items():
        hcctme.tl.compare(adata, condition_key="condition", sample_key="patient", reference="responder",
                          features="composition", groupby=key, parent_key="cell_type")
        table = hcctme.get.compare(adata)[["group", "feature", "pvalue"]].dropna(subset=["pvalue"])
        tables.append(table.astype({"group": str, "feature": str}).assign(seed=seed, on=on))
    return pd.concat(tables, ignore_index=True)[["seed", "on", "group", "feature", "pvalue"]]


def null_pvalues(n_cohorts: int, refine: str | None = None, jobs: int = 1) -> pd.DataFrame:
    """:func:`null_cohort_pvalues` of ``n_cohorts`` null cohorts (seeds from :data:`NULL_FIRST_SEED`), in order."""
    seeds = range(NULL_FIRST_SEED, NULL_FIRST_SEED + n_cohorts)
    if jobs == 1:
        return pd.concat([null_cohort_pvalues(s, refine) for s in seeds], ignore_index=True)
    with ProcessPoolExecutor(jobs) as pool:
        return pd.concat(pool.map(null_cohort_pvalues, seeds, [refine] * n_cohorts), ignore_index=True)


def null_summary(pvalues: pd.DataFrame) -> pd.DataFrame:
    """Per ``on`` (calls, true states): tests, cohorts, the rate at p < 0.05 with its 95 % bootstrap interval over
    cohorts (:func:`compare_null_generator.bootstrap_interval`), and the rate at p < 0.01.
    """
    from benchmarks.compare_null_generator import bootstrap_interval

    rows = {}
    for on, group in pvalues.groupby("on", sort=False):
        low, high = bootstrap_interval(group["pvalue"] < 0.05, group["seed"])
        rows[on] = {"tests": len(group), "cohorts": group["seed"].nunique(),
                    "rejected": int((group["pvalue"] < 0.05).sum()), "fpr_0.05": (group["pvalue"] < 0.05).mean(),
                    "interval_low": low, "interval_high": high, "fpr_0.01": (group["pvalue"] < 0.01).mean()}
    return pd.DataFrame(rows).T.astype({"tests": int, "cohorts": int, "rejected": int})


def cohort_parser(description: str) -> argparse.ArgumentParser:
    """The generator benchmarks' arguments: settings, seeds (from ``--first-seed``), cells per patient, patients."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--settings", nargs="+", default=list(SETTINGS), choices=[*SETTINGS, *HELD_OUT],
                        help="generator settings (--held-out: those of HELD_OUT, never used in development)")
    parser.add_argument("--held-out", action="store_true", help="run the held-out settings instead of --settings")
    parser.add_argument("--seeds", type=int, default=2)
    parser.add_argument("--first-seed", type=int, default=100, help="seed of the first cohort (then +1, ...)")
    parser.add_argument("--cells", type=int, default=600)
    parser.add_argument("--patients", type=int, default=8)
    return parser


def parsed(parser: argparse.ArgumentParser) -> argparse.Namespace:
    """The arguments of :func:`cohort_parser`, ``settings`` set to the held-out ones under ``--held-out``."""
    args = parser.parse_args()
    if args.held_out:
        args.settings = list(HELD_OUT)
    return args


def print_settings(args: argparse.Namespace) -> None:
    """Per-parent ARI, per-state recall / precision, ECE and artefact shares of ``args.seeds`` cohorts per setting."""
    ari, states, summary = [], [], []
    for setting in args.settings:
        for seed in range(args.first_seed, args.first_seed + args.seeds):
            res = run(setting, seed, args.refine, args.cells, args.patients, not args.no_self_train,
                      args.scrublet, args.stand_in)
            ari.append(res["ari"].rename((setting, seed)))
            states.append(res["states"].assign(setting=setting, seed=seed))
            summary.append({"setting": setting, "seed": seed, "ece": res["ece"], "ece_clean": res["ece_clean"],
                            **res["artefacts"].to_dict(),
                            "clean_flagged": res["clean_flagged"], **res["detector"]})
    pd.set_option("display.width", 160)
    print("per-parent ARI (mean over seeds):")
    by_setting = pd.concat(ari, axis=1).T.groupby(level=0)
    print(by_setting.mean().round(2).to_string())
    if args.seeds > 1:
        print("\nper-parent ARI, sd over seeds (two seeds cannot tell apart changes of this size):")
        print(by_setting.std(ddof=1).round(2).to_string())
    runs = pd.concat(states).reset_index()
    runs["precision"] = called_precision(runs)
    table = runs.groupby(["state", "setting"])[["recall", "precision"]].mean()
    print("\nper-state recall / precision (mean over seeds; precision over the seeds that call the state):")
    print(table.unstack("setting").round(2).to_string())
    silent = runs.assign(silent=runs["n_called"] == 0).groupby(["state", "setting"])["silent"].sum()
    if silent.any():
        print("\nseeds without a call of the state (recall 0; no precision, left out of the mean above):")
        print(silent[silent > 0].unstack("setting").fillna(0).astype(int).to_string())
    print("\nECE of the calls' confidence (ece_clean: of the calls of cells that are no artefact); share of artefact "
          "cells left unassigned; share of the other cells flagged as artefacts:")
    print(pd.DataFrame(summary).groupby("setting").mean(numeric_only=True).drop(columns="seed").round(3).to_string())


def main() -> None:
    parser = cohort_parser(__doc__.splitlines()[0])
    parser.add_argument("--refine", default=None, choices=[None, "leiden", "graph"])
    parser.add_argument("--no-self-train", action="store_true", help="mixture calls only")
    parser.add_argument("--null", type=int, default=0, help="null cohorts for the composition FPR")
    parser.add_argument("--jobs", type=int, default=1, help="processes for the null cohorts")
    parser.add_argument("--save-null", type=Path, help="CSV to write the null cohorts' p-values to")
    parser.add_argument("--absent", action="store_true", help="over-calls of states removed from a cohort")
    parser.add_argument("--scrublet", default=None, choices=list(SCRUBLET_COLUMNS),
                        help="pass scrublet's doublet score or its calls in artefacts")
    parser.add_argument("--stand-in", action="store_true",
                        help="add the 30-gene stress stand-in as an extra artefact column (the figures before 2.3)")
    args = parsed(parser)
    warnings.filterwarnings("ignore")
    if args.seeds:  # --seeds 0: the null cohorts only
        print_settings(args)
    if args.absent:
        for absent in (ABSENT, ABSENT_SHORT):
            shares = pd.DataFrame({setting: absent_calls(setting, args.first_seed, args.cells, args.patients, absent,
                                                         args.refine) for setting in args.settings}).T
            print(f"\nshare of the parent called a state removed from every sample ({', '.join(absent)}; "
                  f"seed {args.first_seed}):")
            print(shares.round(3).to_string())
    if args.null:
        hcctme.settings.progress = False  # before the worker processes start: they inherit it
        pvalues = null_pvalues(args.null, args.refine, args.jobs)
        if args.save_null:
            args.save_null.parent.mkdir(parents=True, exist_ok=True)
            pvalues.to_csv(args.save_null, index=False)
        print(f"\ncomposition test at p < 0.05 on {args.null} null cohorts (seeds {NULL_FIRST_SEED}-"
              f"{NULL_FIRST_SEED + args.null - 1}), on the calls and on the generator's true states of those cohorts:")
        print(null_summary(pvalues).to_string())


if __name__ == "__main__":
    main()
