"""The cohort summary in sentences (each linked to its table and figure) and the methods text."""

from __future__ import annotations

import html
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from hcctme.report import _html

CITATIONS = {
    "ucell": "UCell: Andreatta M, Carmona SJ. Comput Struct Biotechnol J 2021;19:3796-3798.",
    "aucell": "AUCell: Aibar S, et al. Nat Methods 2017;14:1083-1086.",
    "decoupler": "decoupler: Badia-i-Mompel P, et al. Bioinform Adv 2022;2:vbac016.",
    "scanpy": "Scanpy: Wolf FA, Angerer P, Theis FJ. Genome Biol 2018;19:15.",
    "pydeseq2": "PyDESeq2: Muzellec B, et al. Bioinformatics 2023;39:btad547.",
    "limma": "limma: Ritchie ME, et al. Nucleic Acids Res 2015;43:e47. limma-trend and voom: Law CW, et al. "
             "Genome Biol 2014;15:R29. TMM: Robinson MD, Oshlack A. Genome Biol 2010;11:R25.",
    "liana": "LIANA: Dimitrov D, et al. Nat Commun 2022;13:3224.",
    "bh": "Benjamini Y, Hochberg Y. J R Stat Soc B 1995;57:289-300.",
    "mannwhitneyu": "Mann HB, Whitney DR. Ann Math Stat 1947;18:50-60.",
    "propeller": "propeller: Phipson B, et al. Bioinformatics 2022;38:4720-4726.",
}

TEST_NAMES = {
    "mannwhitney": "Mann-Whitney U test", "welch": "Welch's t-test", "ols": "linear model on the condition",
    "wilcoxon": "Wilcoxon signed-rank test", "deseq2": "PyDESeq2 Wald test", "propeller": "propeller",
    "voom": "limma-voom (TMM normalisation, empirical-Bayes moderated t-test)",
    "limma-trend": "limma-trend (TMM log-CPM, empirical-Bayes moderated t-test with an abundance trend)",
    "mannwhitneyu": "Mann-Whitney U test", "kruskal": "Kruskal-Wallis test (permutation p)",
    "moderated": "precision-weighted linear model with an empirical-Bayes moderated t-test (propeller / limma style)",
    "wls": "precision-weighted linear model (weighted least squares, each feature its own variance)",
}
CITED_TESTS = {"mannwhitney": "mannwhitneyu", "mannwhitneyu": "mannwhitneyu", "deseq2": "pydeseq2",
               "voom": "limma", "limma-trend": "limma", "propeller": "propeller", "moderated": "propeller"}


@dataclass(frozen=True)
class Finding:
    """One sentence of the cohort summary and where its numbers are shown."""

    text: str
    table: str
    figure: str | None = None

    def html(self) -> str:
        """The sentence with links to its table and figure."""
        links = [_html.link("table", self.table)] + ([_html.link("figure", self.figure)] if self.figure else [])
        return f"<li>{html.escape(self.text)} ({', '.join(links)})</li>"


def _p(value: float) -> str:
    return "n/a" if not np.isfinite(value) else f"{value:.2g}"


def _z(value: float) -> str:
    """Two decimals, without a negative zero."""
    text = f"{value:.2f}"
    return text.lstrip("-") if float(text) == 0 else text


def _n(row: pd.Series) -> str:
    return f"{int(row['n_other'])} vs {int(row['n_reference'])} patients"


def _other_level(row: pd.Series) -> str:
    contrast = str(row.get("contrast", ""))
    return contrast.split(" vs ")[0] if " vs " in contrast else "the other group"


def _ranked(table: pd.DataFrame | None, fdr: float, limit: int) -> tuple[pd.DataFrame, bool]:
    """The rows under ``fdr`` (padj), best first; else the single best row, flagged as not significant.

    Rows of equal padj and p-value are ranked by the size of their effect (not by name); the single best row
    carries ``_tied``, how many rows share its padj and p-value.
    """
    if table is None or "padj" not in table.columns:
        return pd.DataFrame(), False
    tested = table.dropna(subset=["padj"])
    size = tested["effect"].abs() if "effect" in tested.columns else pd.Series(0.0, index=tested.index)
    tested = tested.assign(_size=-size.fillna(0.0)).sort_values(["padj", "pvalue", "_size"], kind="mergesort")
    hits = tested[tested["padj"] < fdr]
    if len(hits) or tested.empty:
        return hits.head(limit), bool(len(hits))
    best = tested.head(1)
    tied = int(((tested["padj"] == best["padj"].iloc[0]) & (tested["pvalue"] == best["pvalue"].iloc[0])).sum())
    return best.assign(_tied=tied), False


def _none_text(what: str, fdr: float, row: pd.Series, label: str) -> str:
    tied = int(row.get("_tied", 1))
    among = f"; {tied} tests tie at that p-value, this one of the largest effect" if tied > 1 else ""
    return (f"No {what} difference reached padj < {fdr:g}; the closest is {label} "
            f"(padj {_p(float(row['padj']))}, {_n(row)}{among}).")


def composition(table: pd.DataFrame | None, *, fdr: float, limit: int, anchors: tuple[str, str]) -> list[Finding]:
    """Sentences about states that make up more (or less) of their cell type in one condition."""
    rows, significant = _ranked(table, fdr, limit)
    out = []
    for _, row in rows.iterrows():
        label = f"{row['feature']} in {row['group']}"
        if not significant:
            out.append(Finding(_none_text("state composition", fdr, row, label), *anchors))
            continue
        more = "more" if row["effect"] > 0 else "less"
        col = "prop" if "prop_other" in row.index and pd.notna(row["prop_other"]) else "mean"
        out.append(Finding(f"{row['feature']} make up {more} of the {row['group']} in {_other_level(row)} patients: "
                           f"{row[col + '_other']:.2f} vs {row[col + '_reference']:.2f}, padj {_p(row['padj'])}, "
                           f"{_n(row)}.", *anchors))
    return out


def scores(table: pd.DataFrame | None, *, fdr: float, limit: int, anchors: tuple[str, str],
           what: str = "signature score") -> list[Finding]:
    """Sentences about signatures scoring higher (or lower) in a cell type of one condition."""
    rows, significant = _ranked(table, fdr, limit)
    out = []
    for _, row in rows.iterrows():
        where = "" if str(row.get("group", "all")) == "all" else f" in {row['group']}"
        if not significant:
            out.append(Finding(_none_text(what, fdr, row, f"{row['feature']}{where}"), *anchors))
            continue
        higher = "higher" if row["effect"] > 0 else "lower"
        out.append(Finding(f"{row['feature']} scores {higher}{where} of {_other_level(row)} patients: "
                           f"{row['mean_other']:.3g} vs {row['mean_reference']:.3g}, padj {_p(row['padj'])}, "
                           f"{_n(row)}.", *anchors))
    return out


def genes(table: pd.DataFrame | None, *, fdr: float, limit: int, anchors: tuple[str, str]) -> list[Finding]:
    """Sentences about differentially expressed genes (pseudobulk)."""
    rows, significant = _ranked(table, fdr, limit)
    out = []
    for _, row in rows.iterrows():
        if not significant:
            out.append(Finding(_none_text("gene expression", fdr, row, f"{row['feature']} in {row['group']}"),
                               *anchors))
            continue
        way = "up" if row["effect"] > 0 else "down"
        out.append(Finding(f"{row['feature']} is {way} in {row['group']} of {_other_level(row)} patients: "
                           f"log2FC {row['effect']:.2f}, padj {_p(row['padj'])}, {_n(row)}.", *anchors))
    return out


def axes(summary: pd.DataFrame | None, *, fdr: float, limit: int, anchors: tuple[str, str]) -> list[Finding]:
    """Sentences about resistance axes active more often in one condition.

    With a reference level each row compares one group with it; without one (Kruskal-Wallis over all levels)
    each row holds ``fraction_active_<level>`` and ``mean_activity_<level>`` for every level.
    """
    if summary is None or "padj" not in summary.columns:
        return []
    levels = [c.removeprefix("fraction_active_") for c in summary.columns
              if c.startswith("fraction_active_") and c not in ("fraction_active_group", "fraction_active_reference")]
    if "fraction_active_group" not in summary.columns and not levels:
        return []
    rows, significant = _ranked(summary, fdr, limit)
    out = []
    for _, row in rows.iterrows():
        if "fraction_active_group" in summary.columns:
            counts = f"{int(row['n_group'])} vs {int(row['n_reference'])} patients"
            numbers = (f"active in {row['fraction_active_group']:.0%} of {row['group']} vs "
                       f"{row['fraction_active_reference']:.0%} of {row['reference']} patients, mean activity "
                       f"{_z(row['mean_activity_group'])} vs {_z(row['mean_activity_reference'])}")
        else:
            counts = f"Kruskal-Wallis test over {len(levels)} conditions"
            numbers = ("active in " + ", ".join(f"{row['fraction_active_' + lv]:.0%} of {lv}" for lv in levels)
                       + " patients, mean activity "
                       + " vs ".join(_z(row["mean_activity_" + lv]) for lv in levels))
        if significant:
            text = f"The {row['axis']} resistance axis is {numbers}: padj {_p(row['padj'])}, {counts}."
        else:
            text = (f"No resistance axis differed at padj < {fdr:g}; the closest is {row['axis']}, {numbers} "
                    f"(padj {_p(row['padj'])}, {counts}).")
        out.append(Finding(text, *anchors))
    return out


def crosstalk(diff: pd.DataFrame | None, *, fdr: float, limit: int, anchor: str) -> list[Finding]:
    """Sentences about ligand-receptor interactions that differ between conditions."""
    if diff is None:
        return []
    if "tested" in diff.columns:
        diff = diff[diff["tested"].astype(bool)]
    rows, significant = _ranked(diff, fdr, limit)
    out = []
    for _, row in rows.iterrows():
        axis = str(row.get("axis", ""))
        on_axis = f" ({axis} axis)" if axis and axis.lower() not in ("nan", "none") else ""
        pair = f"{row['ligand_complex']} -> {row['receptor_complex']} from {row['source']} to {row['target']}{on_axis}"
        counts = f"{int(row['n_other'])} vs {int(row['n_reference'])} patients"
        if significant:
            way = "stronger" if row["effect"] > 0 else "weaker"
            text = (f"{pair} is {way} in {row['condition']} patients: {row['mean_other']:.3g} vs "
                    f"{row['mean_reference']:.3g}, padj {_p(row['padj'])}, {counts}.")
        else:
            text = (f"No ligand-receptor interaction differed at padj < {fdr:g}; the closest is {pair} "
                    f"(padj {_p(row['padj'])}, {counts}).")
        out.append(Finding(text, anchor))
    return out


def barrier(tib: pd.DataFrame | None, conditions: pd.Series, *, alpha: float, anchor: str) -> list[Finding]:
    """How many patients of each condition show a significant tumour immune barrier."""
    if tib is None or "tib_pvalue" not in tib.columns:
        return []
    measured = tib["tib_pvalue"].dropna()
    present = measured[measured < alpha].index
    per = []
    for level in sorted(conditions.unique()):
        members = conditions[conditions == level].index
        n_measured = int(measured.index.isin(members).sum())
        per.append(f"{int(present.isin(members).sum())} of {n_measured} {level}")
    text = (f"A spatial tumour immune barrier (TIB p < {alpha:g}) is found in {len(present)} of {len(measured)} "
            f"measured patients: {', '.join(per)}.")
    return [Finding(text, anchor)]


def methods(params: dict[str, dict[str, Any]], tests: dict[str, list[str]], *, n_signatures: int, fdr: float,
            library_version: str, kb_version: str, hcctme_version: str, profile_tests: Sequence[str] = (),
            crosstalk_differential: bool = False, contrasts: Sequence[str] = (), your_sets: Sequence[str] = ()) -> str:
    """The methods section written from the stored parameters and the tests named in each comparison table.

    Only what ran is described: the comparison sentence needs a comparison table, the profile's test is the
    one its summary table names (``profile_tests``; none without a condition), the differential crosstalk test
    only with its table (``crosstalk_differential``).
    """
    used: list[str] = ["scanpy"]
    score = params.get("scores", {})
    method = str(score.get("method", "ucell"))
    used.append(method if method in CITATIONS else "decoupler")
    scored = [f"{n_signatures} signatures of the hcctme library (version {library_version})"] if n_signatures else []
    if your_sets:
        scored.append(f"{len(your_sets)} of the user's gene sets ({', '.join(map(str, your_sets[:10]))}"
                      f"{' ...' if len(your_sets) > 10 else ''})")
    text = [f"Cells were scored against {' and '.join(scored)} with {method}."]
    states = params.get("states", {})
    if states:
        how = f", method {states['method']}" if "method" in states else ""
        text.append(f"Each cell was assigned a resistance state within its cell context (hcctme.tl.call_states{how}); "
                    "cells below the confidence threshold stay unassigned.")
    described = [f"{what} by {' and '.join(TEST_NAMES.get(t, t) for t in names)}"
                 for what, names in tests.items() if names]
    if described:
        compared = f"The conditions ({'; '.join(contrasts)})" if contrasts else "The conditions"
        text.append(f"{compared} were compared with patients as the unit of replication (per-patient "
                    "means, fractions or pseudobulk counts): " + "; ".join(described)
                    + ". P-values were adjusted with Benjamini-Hochberg over each table.")
        used.append("bh")
    flat = {t for names in tests.values() for t in names}
    used += [CITED_TESTS[t] for t in sorted(flat) if t in CITED_TESTS]
    cross = params.get("crosstalk", {})
    if cross:
        used.append("liana")
        text.append(f"Ligand-receptor crosstalk was inferred per patient with LIANA "
                    f"({cross.get('method', cross.get('resource_name', 'rank aggregate'))}) and interactions were "
                    "mapped to the curated resistance axes"
                    + ("; differential crosstalk uses a two-part test over patients: detection (Fisher's exact "
                       "test, exact McNemar with pairs, or a linear model with covariates) and strength where "
                       "detected (moderated t), combined as in hurdle models." if crosstalk_differential else "."))
    tib = params.get("tib", {})
    if tib:
        perms = f"{tib['n_perms']} label permutations" if "n_perms" in tib else "a permutation null"
        text.append(f"The spatial tumour immune barrier was measured per sample from cell coordinates against {perms} "
                    "(hcctme.tl.tib).")
    prof = params.get("profile", {})
    if prof:
        compared = ""
        if profile_tests:
            compared = ("; axis activity was compared between conditions with a "
                        + " and a ".join(TEST_NAMES.get(t, t) for t in profile_tests)
                        + ", BH-adjusted over the distinct evidence of the axes (axes with identical activities "
                          "count once)")
            used += ["bh", *(CITED_TESTS[t] for t in profile_tests if t in CITED_TESTS)]
        text.append(f"An axis is active in a patient when its mean evidence z-score is at least "
                    f"{prof.get('active_threshold', 0.5)}{compared}.")
    text.append(f"Findings are reported at padj < {fdr:g}. hcctme {hcctme_version}; knowledge base {kb_version}.")
    cites = "".join(f"<li>{html.escape(CITATIONS[k])}</li>" for k in dict.fromkeys(used) if k in CITATIONS)
    return "".join(_html.paragraph(t) for t in text) + f"<h3>Citations</h3><ol>{cites}</ol>"
