"""Pseudobulk gene-level DE: hcctme's vectorised limma-trend and limma-voom next to PyDESeq2, time and agreement.

Each cohort is one cell type's pseudobulk: ``n`` samples (half per condition) x ``g`` genes of negative
binomial counts. Gene means are log-normal, dispersions follow a trend in the mean with log-normal
gene-wise scatter, library sizes vary ``exp(N(0, 0.5))`` between samples, and ``n_de`` genes are planted
at +-``lfc`` log2 fold change (nothing in common with the library's genes or simulator).

For each size the script times ``hcctme.tl._de.run_trend``, ``run_voom`` and PyDESeq2 (as
``tl.compare(method="deseq2")`` runs it: one core, Cooks refit, one BLAS thread) on the same counts
and prints the ratios and the agreement: Spearman correlation of the log2 fold changes and of the
p-values, overlap of the top-100 genes by p-value, and each method's power (planted genes at
padj < 0.05; the limma methods leave genes failing edgeR's filterByExpr out of their tables, and a
planted gene left out counts as missed; the power among the genes tested is printed too) and
false-positive rate (unplanted genes at p < 0.05). PyDESeq2 can be timed on a subset of the genes
(``--deseq2-genes``) and its time scaled up: its cost is linear in the genes (one fit per gene).

``--null-lib-sd 0 0.5 1`` first prints the false-positive rate at p < 0.05 of 20 null cohorts (20 vs 20 samples x
2,000 genes) per library-size spread, limma-trend and voom next to PyDESeq2 (4 cohorts).

Usage: ``python benchmarks/de_bench.py [--samples 200] [--genes 20000] [--deseq2-genes 20000] [--null-lib-sd 0 1]``.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import pandas as pd
from scipy import stats

from hcctme.tl import _de, _stats

REFERENCE, OTHER = "A", "B"


def simulate_counts(n: int = 200, g: int = 20_000, *, n_de: int = 200, lfc: float = 1.0, lib_sd: float = 0.5,
                    depth_ratio: float = 1.0, disp_sd: float = 0.5,
                    seed: int = 0) -> tuple[pd.DataFrame, pd.Series, np.ndarray]:
    """Samples x genes NB counts, the condition of each sample and the names of the planted genes.

    ``depth_ratio`` multiplies the library sizes of the second condition (unequal depth between arms);
    ``disp_sd`` is the gene-wise scatter of the dispersions around their trend (log scale).
    """
    rng = np.random.default_rng(seed)
    mean = np.exp(rng.normal(3.0, 2.0, g))
    disp = (0.05 + 0.5 / np.sqrt(mean)) * np.exp(rng.normal(0.0, disp_sd, g))
    condition = np.array([REFERENCE] * (n // 2) + [OTHER] * (n - n // 2))
    other = condition == OTHER
    lib = np.exp(rng.normal(0.0, lib_sd, n)) * np.where(other, depth_ratio, 1.0)
    beta = np.zeros(g)
    planted = rng.choice(g, n_de, replace=False) if n_de else np.array([], dtype=int)
    beta[planted] = rng.choice([-1.0, 1.0], len(planted)) * lfc
    mu = lib[:, None] * mean[None, :] * np.exp2(beta[None, :] * other[:, None])
    size = 1.0 / disp
    counts = rng.negative_binomial(size[None, :], size[None, :] / (size[None, :] + mu))
    samples = [f"s{i}" for i in range(n)]
    genes = np.array([f"g{i}" for i in range(g)])
    return (pd.DataFrame(counts, index=samples, columns=genes), pd.Series(condition, index=samples),
            genes[planted])


def fit_trend(counts: pd.DataFrame, condition: pd.Series) -> pd.DataFrame:
    """hcctme's limma-trend on all genes with a count; results indexed by gene."""
    counts = counts.loc[:, counts.sum(axis=0) > 0]
    X = _stats.design_matrix(condition, REFERENCE, [OTHER])
    return _de.run_trend(counts, X, [OTHER])[0][OTHER]


def fit_voom(counts: pd.DataFrame, condition: pd.Series) -> pd.DataFrame:
    """hcctme's limma-voom on all genes with a count; results indexed by gene."""
    counts = counts.loc[:, counts.sum(axis=0) > 0]
    X = _stats.design_matrix(condition, REFERENCE, [OTHER])
    return _de.run_voom(counts, X, [OTHER])[0][OTHER]


def fit_deseq2(counts: pd.DataFrame, condition: pd.Series) -> pd.DataFrame:
    """PyDESeq2 as tl.compare(method='deseq2') runs it; results indexed by gene."""
    counts = counts.loc[:, counts.sum(axis=0) > 0]
    return _de.run_deseq2(counts, pd.DataFrame({"condition": condition}), REFERENCE, [OTHER])[0][OTHER]


def agreement(a: pd.DataFrame, b: pd.DataFrame, top: int = 100) -> dict[str, float]:
    """Spearman of log2FC and of p-values, and the overlap of the top genes by p-value, on shared genes."""
    genes = a.index.intersection(b.index)
    a, b = a.loc[genes], b.loc[genes]
    ok = np.isfinite(a["pvalue"]) & np.isfinite(b["pvalue"])
    a, b = a[ok], b[ok]
    top_a, top_b = set(a["pvalue"].nsmallest(top).index), set(b["pvalue"].nsmallest(top).index)
    return {
        "lfc_spearman": float(stats.spearmanr(a["log2FoldChange"], b["log2FoldChange"])[0]),
        "p_spearman": float(stats.spearmanr(a["pvalue"], b["pvalue"])[0]),
        "top_overlap": len(top_a & top_b) / top,
    }


def calls(result: pd.DataFrame, planted: np.ndarray, alpha: float = 0.05) -> dict[str, float]:
    """Power (planted genes at padj < alpha; a planted gene left out of the table counts as missed) and
    false-positive rate (other genes in the table at p < alpha)."""
    p = result["pvalue"].to_numpy(float)
    padj = _stats.bh(p)
    is_de = result.index.isin(planted)
    return {"power": float(np.sum(padj[is_de] < alpha) / len(planted)) if len(planted) else float("nan"),
            "power_tested": float(np.mean(padj[is_de] < alpha)) if is_de.any() else float("nan"),
            "tested": float(np.mean(np.isin(planted, result.index))) if len(planted) else float("nan"),
            "fpr": float(np.nanmean(p[~is_de] < alpha))}


def null_sweep(lib_sds: list[float], *, n: int = 40, g: int = 2000, reps: int = 20, deseq2_reps: int = 4) -> None:
    """False-positive rate at p < 0.05 on null cohorts as the library sizes spread (log-scale sd)."""
    for lib_sd in lib_sds:
        trend, voom, deseq = [], [], []
        for seed in range(reps):
            counts, condition, _ = simulate_counts(n, g, n_de=0, lib_sd=lib_sd, seed=1_000 + seed)
            trend.append(np.mean(fit_trend(counts, condition)["pvalue"] < 0.05))
            voom.append(np.mean(fit_voom(counts, condition)["pvalue"] < 0.05))
            if seed < deseq2_reps:
                deseq.append(np.nanmean(fit_deseq2(counts, condition)["pvalue"].dropna() < 0.05))
        line = (f"null {n // 2} vs {n // 2} x {g} genes, library sizes sd {lib_sd} (log), {reps} cohorts: FPR "
                f"limma-trend {np.mean(trend):.4f} +- {np.std(trend, ddof=1) / np.sqrt(reps):.4f}, voom "
                f"{np.mean(voom):.4f} +- {np.std(voom, ddof=1) / np.sqrt(reps):.4f}")
        if deseq:
            line += f", PyDESeq2 {np.mean(deseq):.4f} ({len(deseq)} cohorts)"
        print(line, flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, nargs="+", default=[200])
    parser.add_argument("--genes", type=int, default=20_000)
    parser.add_argument("--deseq2-genes", type=int, default=None, help="time PyDESeq2 on this many genes")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--null-lib-sd", type=float, nargs="*", default=[],
                        help="also print the null FPR with library sizes spread this much (log-scale sd)")
    args = parser.parse_args()
    if min(args.samples) < 4 or args.genes < 400:
        parser.error("--samples must be >= 4 each (two arms of >= 2) and --genes >= 400 (200 genes are planted)")
    null_sweep(args.null_lib_sd)
    for n in args.samples:
        counts, condition, planted = simulate_counts(n, args.genes, seed=args.seed)
        t0 = time.perf_counter()
        trend = fit_trend(counts, condition)
        t_trend = time.perf_counter() - t0
        t0 = time.perf_counter()
        voom = fit_voom(counts, condition)
        t_voom = time.perf_counter() - t0
        g_deseq = min(args.deseq2_genes or args.genes, args.genes)
        t0 = time.perf_counter()
        deseq = fit_deseq2(counts.iloc[:, :g_deseq], condition)
        t_deseq = (time.perf_counter() - t0) * args.genes / g_deseq
        scaled = "" if g_deseq == args.genes else f" (timed on {g_deseq} genes, scaled)"
        print(f"{n} samples x {args.genes} genes: limma-trend {t_trend:.1f} s, voom {t_voom:.1f} s, PyDESeq2 "
              f"{t_deseq:.1f} s{scaled}: limma-trend {t_deseq / t_trend:.0f}x, voom {t_deseq / t_voom:.0f}x faster")
        for name, result in (("limma-trend", trend), ("voom", voom)):
            agree = agreement(result, deseq)
            print(f"  {name} vs PyDESeq2 (shared genes): " + ", ".join(f"{k} {v:.3f}" for k, v in agree.items()))
        for name, result in (("limma-trend", trend), ("voom", voom), ("deseq2", deseq)):
            scored = calls(result, planted if g_deseq == args.genes or name != "deseq2" else
                           planted[np.isin(planted, counts.columns[:g_deseq])])
            print(f"  {name}: {len(result)} genes tested; power {scored['power']:.3f} (planted genes tested: "
                  f"{scored['tested']:.2f}, power among them {scored['power_tested']:.3f}), FPR {scored['fpr']:.4f}")


if __name__ == "__main__":
    main()
