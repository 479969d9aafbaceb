"""Validation of the signature library on real, labelled single-cell data.

Every dataset lives in ``tests/data/<name>/`` with its subset (``.h5ad``), its ``PROVENANCE.md`` and a
declarative ``mapping.yaml`` that says, in the authors' own labels:

* ``contexts``: which library ``cell_context`` each authors' cell type is (``null``: none);
* ``states``: which authors' cluster matches which library state signature, the sibling clusters of
  the same parent population it must be told apart from, and that parent (a programme can be mapped the
  same way to a labelled contrast, e.g. interferon-stimulated against control cells).

Two checks are computed with :func:`hcctme.tl.score` (UCell) on whatever library is current:

1. state signatures: the AUROC separating the matching cluster's cells from its siblings' cells;
   a signature is validated when it reaches ``AUROC_PASS`` on at least one dataset;
2. cell-context signatures (every signature whose ``cell_context`` is not ``any``): does the mean
   score peak in the signature's own cell context (``PEAK_TARGET`` of them should on HCC data)? The
   authors' labels are pooled by the library context they are mapped to (every T-cell cluster mapped to
   ``cd8_t`` is one ``cd8_t`` group); labels without a library context take part under their own name when
   ``mapping.yaml`` lists them as ``other_types`` (a distinct cell type, e.g. smooth muscle) and are left
   out otherwise (a mixture, e.g. an NK/T or monocyte/DC cluster). A signature whose own context has no
   group of ``PEAK_MIN_CELLS`` cells in a dataset is "not checkable" there and is not counted.

``python -m tests.sig.validation --write`` regenerates ``signatures/VALIDATION.md``; without
``--write`` it exits 1 when the committed table is out of date. ``tests/sig/test_validation.py``
runs the same comparison.
``python -m tests.sig.validation --genes SIGNATURE`` prints, for one signature, each gene's own AUROC in
every comparison a dataset maps it to (with the share of cells detecting it) and each UP gene's mean per
peak-check group: the per-gene figures the library's ``validation`` texts and changelog quote.
"""

from __future__ import annotations

import argparse
import sys
import warnings
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd
import yaml
from scipy.stats import rankdata

import hcctme
from hcctme import _constants, _validate
from hcctme._constants import CONTEXT_PARENTS

ROOT = Path(__file__).resolve().parents[2]
DATA_DIR = ROOT / "tests" / "data"
TABLE_PATH = ROOT / "signatures" / "VALIDATION.md"
REGENERATE = "python -m tests.sig.validation --write"

AUROC_PASS = 0.8  # a state signature is validated at or above this AUROC on one dataset
PEAK_TARGET = 0.9  # fraction of cell-context signatures that should peak in their own cell type
MIN_COVERAGE = 0.2  # score signatures with at least this fraction of their genes measured
WEAK_COVERAGE = 0.5  # a validation on fewer than this fraction of the signature's genes is flagged as weaker
PEAK_MIN_CELLS = 5  # cell types with fewer cells cannot be the peak (their mean is too noisy)
# A state comparison counts only with at least this many cells on each side: with 5 against 5 cells the AUROC
# moves in steps of 0.04 and its 95% interval spans about +-0.3, so it can neither validate nor fail a signature.
STATE_MIN_CELLS = 10
SCORE_KEY = "validation_scores"
STATE_HEADING = "## State signatures: matching cluster against its siblings"


# --------------------------------------------------------------------------------------------------
# Declarative mappings
# --------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class StateMap:
    """An authors' cluster that matches a library state, and what it is told apart from."""

    signature: str
    cluster: tuple[str, ...]
    siblings: tuple[str, ...]
    parent: str


@dataclass(frozen=True)
class Dataset:
    """One real labelled dataset and its mapping to the library."""

    name: str
    path: Path
    title: str
    citation: str
    label_key: str
    contexts: dict[str, str | None]
    states: tuple[StateMap, ...]
    max_rank: int = 1500
    hcc: bool = False
    peak_check: bool = True
    other_types: tuple[str, ...] = ()
    # why this dataset's comparisons are supporting evidence only (shown, never counted), e.g. genes preselected
    # by the authors to separate their clusters; empty when they count
    supporting_only: str = ""


def _as_tuple(value: str | Sequence[str]) -> tuple[str, ...]:
    return (value,) if isinstance(value, str) else tuple(str(v) for v in value)


def load_dataset(directory: Path) -> Dataset:
    """Read ``directory/mapping.yaml``; raise ValueError naming the problem when it is inconsistent."""
    spec = yaml.safe_load((directory / "mapping.yaml").read_text())
    states = tuple(
        StateMap(signature=s["signature"], cluster=_as_tuple(s["cluster"]), siblings=_as_tuple(s["siblings"]),
                 parent=s["parent"])
        for s in spec.get("states") or []
    )
    contexts = {str(k): v for k, v in (spec.get("contexts") or {}).items()}
    for state in states:
        unknown = [c for c in state.cluster + state.siblings if c not in contexts]
        if unknown:
            raise ValueError(f"{directory / 'mapping.yaml'}: state {state.signature} names labels not listed "
                             f"under contexts: {unknown}")
        if set(state.cluster) & set(state.siblings):
            raise ValueError(f"{directory / 'mapping.yaml'}: {state.signature} has a label both as cluster "
                             "and as sibling")
    other_types = tuple(str(v) for v in spec.get("other_types") or [])
    wrong = [lab for lab in other_types if lab not in contexts or contexts[lab] is not None]
    if wrong:
        raise ValueError(f"{directory / 'mapping.yaml'}: other_types must be labels mapped to null under "
                         f"contexts: {wrong}")
    return Dataset(
        name=spec["name"], path=directory / spec["file"], title=spec["title"], citation=spec["citation"],
        label_key=spec["label_key"], contexts=contexts, states=states, max_rank=int(spec.get("max_rank", 1500)),
        hcc=bool(spec.get("hcc", False)), peak_check=bool(spec.get("peak_check", True)), other_types=other_types,
        supporting_only=str(spec.get("supporting_only") or "").strip(),
    )


def expected_states(dataset: Dataset) -> pd.DataFrame:
    """Tabulate the mapping for state-calling evaluations: one row per (authors' cluster, state).

    Columns: cluster, signature, parent, siblings (the clusters the state must be told apart from).
    A cluster may match several library entries (a state and a programme of the same cells).
    """
    rows = [{"cluster": c, "signature": s.signature, "parent": s.parent, "siblings": ", ".join(s.siblings)}
            for s in dataset.states for c in s.cluster]
    return pd.DataFrame(rows, columns=["cluster", "signature", "parent", "siblings"])


def datasets(data_dir: Path = DATA_DIR) -> list[Dataset]:
    """Every dataset under ``data_dir`` that has a ``mapping.yaml``, sorted by name."""
    return [load_dataset(p.parent) for p in sorted(data_dir.glob("*/mapping.yaml"))]


# --------------------------------------------------------------------------------------------------
# Statistics
# --------------------------------------------------------------------------------------------------
def auroc(positive: np.ndarray, negative: np.ndarray) -> float:
    """Area under the ROC curve of ``positive`` vs ``negative`` scores (ties count one half)."""
    positive = np.asarray(positive, dtype=float)
    negative = np.asarray(negative, dtype=float)
    if positive.size == 0 or negative.size == 0:
        raise ValueError("auroc needs at least one positive and one negative score")
    ranks = rankdata(np.concatenate([positive, negative]))
    u = ranks[: positive.size].sum() - positive.size * (positive.size + 1) / 2
    return float(u / (positive.size * negative.size))


def _lineage(context: str) -> set[str]:
    out = {context}
    while context in CONTEXT_PARENTS:
        context = CONTEXT_PARENTS[context]
        out.add(context)
    return out


def own_labels(context: str, label_contexts: dict[str, str | None]) -> list[str]:
    """Labels that are the signature's own cell type.

    A label is its own type when its context is the signature's context or a more specific one
    (a ``t_cell`` marker owns "CD8 T cell"); when no label is that specific, a coarser parent
    label counts (a ``macrophage`` state owns "Myeloid" in a dataset labelled only to that level).
    """
    exact = [lab for lab, ctx in label_contexts.items() if ctx is not None and context in _lineage(ctx)]
    if exact:
        return exact
    return [lab for lab, ctx in label_contexts.items() if ctx is not None and ctx in _lineage(context)]


# --------------------------------------------------------------------------------------------------
# Scoring and tables
# --------------------------------------------------------------------------------------------------
@dataclass
class Scored:
    """A dataset scored with the whole library."""

    dataset: Dataset
    labels: pd.Series
    scores: pd.DataFrame
    n_genes: int
    measured: dict[str, tuple[int, int]]  # signature -> (genes measured, genes in signature)


def score_dataset(dataset: Dataset, library: hcctme.sig.SignatureSet) -> Scored:
    """Score every library signature with UCell on ``dataset``, after mapping its gene names as a user would.

    The datasets keep the symbols of their time (GRASP, SEPT11, WISP2, FAM65B, GPR56 ...); the library uses
    current HGNC symbols (TAMALIN, SEPTIN11, CCN5, RIPOR2, ADGRG1), so the names are mapped with
    :func:`hcctme.pp.harmonize_genes` first, and "genes measured" counts the mapped names.
    """
    adata = read_dataset(dataset)
    genes = set(_validate.gene_names(adata, pd.Index(adata.var_names)))
    measured = {s.id: (sum(g in genes for g in s.genes), len(s.genes)) for s in library}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the low-coverage warning: the table reports coverage itself
        hcctme.tl.score(adata, library, method="ucell", max_rank=dataset.max_rank, min_coverage=MIN_COVERAGE,
                        n_jobs=1, key_added=SCORE_KEY)
    labels = adata.obs[dataset.label_key].astype(str)
    missing = sorted(set(dataset.contexts) - set(labels))
    if missing:
        raise ValueError(f"{dataset.name}: mapping.yaml names labels absent from obs[{dataset.label_key!r}]: "
                         f"{missing}")
    scores = pd.DataFrame(adata.obsm[SCORE_KEY], index=adata.obs_names).astype(float)
    return Scored(dataset=dataset, labels=labels, scores=scores, n_genes=adata.n_vars, measured=measured)


def state_rows(scored: Scored) -> list[dict]:
    """One row per mapped state in the library: AUROC of the matching cluster against its siblings."""
    rows = []
    for state in scored.dataset.states:
        if state.signature not in scored.measured:
            continue
        pos = scored.labels.isin(state.cluster).to_numpy()
        neg = scored.labels.isin(state.siblings).to_numpy()
        n_measured, n_total = scored.measured.get(state.signature, (0, 0))
        value = (auroc(scored.scores.loc[pos, state.signature], scored.scores.loc[neg, state.signature])
                 if state.signature in scored.scores else None)
        n_pos, n_neg = int(pos.sum()), int(neg.sum())
        rows.append({
            "signature": state.signature, "dataset": scored.dataset.name, "auroc": value,
            "measured": n_measured, "n_genes": n_total, "parent": state.parent,
            "cluster": f"{' + '.join(state.cluster)} ({n_pos})",
            "siblings": f"{' + '.join(state.siblings)} ({n_neg})",
            "n_cluster": n_pos, "n_siblings": n_neg, "supporting_only": bool(scored.dataset.supporting_only),
            "counted": min(n_pos, n_neg) >= STATE_MIN_CELLS and not scored.dataset.supporting_only,
        })
    return rows


def peak_groups(dataset: Dataset) -> dict[str, str]:
    """Map each authors' label to its group in the peak check.

    A label mapped to a library context joins that context's group; an ``other_types`` label (a cell type
    the library has no context for) is a group of its own; any other label (null: a mixture) is left out.
    """
    groups = {lab: ctx for lab, ctx in dataset.contexts.items() if ctx is not None}
    groups.update({lab: lab for lab in dataset.other_types})
    return groups


def _group_means(scores: pd.DataFrame, groups: pd.Series) -> pd.DataFrame:
    """Mean score per group, over the groups with at least ``PEAK_MIN_CELLS`` cells."""
    counts = groups.value_counts()
    keep = counts.index[counts >= PEAK_MIN_CELLS]
    return scores.groupby(groups.to_numpy()).mean().loc[keep]


def peak_rows(scored: Scored, library: hcctme.sig.SignatureSet) -> list[dict]:
    """One row per cell-context signature: does its mean score peak in its own cell context?

    ``checkable`` is False when the dataset has no group of the signature's own context (or, for a
    dataset labelled only more coarsely, of a parent context) with ``PEAK_MIN_CELLS`` cells.
    """
    rows: list[dict] = []
    if not scored.dataset.peak_check:
        return rows
    label_group = peak_groups(scored.dataset)
    kept = scored.labels.isin(list(label_group)).to_numpy()
    labels = scored.labels[kept]
    groups = labels.map(label_group)
    scores = scored.scores.loc[kept]
    means = _group_means(scores, groups)
    label_means = _group_means(scores, labels)
    group_context = {g: (None if g in scored.dataset.other_types else g) for g in set(label_group.values())}
    for sig in library:
        if sig.cell_context == "any":
            continue
        own = [g for g in own_labels(sig.cell_context, group_context) if g in means.index]
        row = {"signature": sig.id, "context": sig.cell_context, "dataset": scored.dataset.name,
               "measured": scored.measured[sig.id][0], "n_genes": scored.measured[sig.id][1],
               "own": " + ".join(f"{g} ({int((groups == g).sum())})" for g in sorted(own)), "peak": None,
               "peak_label": None, "auroc": None, "in_own": None, "checkable": bool(own)}
        if own and sig.id in scores:
            is_own = groups.isin(own).to_numpy()
            row["peak"] = str(means[sig.id].idxmax())
            in_peak = [lab for lab in label_means.index if label_group[lab] == row["peak"]]
            row["peak_label"] = str(label_means.loc[in_peak, sig.id].idxmax()) if in_peak else None
            row["in_own"] = row["peak"] in own
            row["auroc"] = auroc(scores.loc[is_own, sig.id], scores.loc[~is_own, sig.id])
        rows.append(row)
    return rows


@dataclass
class Results:
    """Everything VALIDATION.md shows."""

    scored: list[Scored]
    states: pd.DataFrame
    peaks: pd.DataFrame
    library: hcctme.sig.SignatureSet

    def best_auroc(self) -> pd.Series:
        """Best AUROC per state signature over the comparisons that count (NaN when never scored).

        Comparisons with fewer than ``STATE_MIN_CELLS`` cells on a side, and those on a dataset marked
        ``supporting_only``, are shown but do not count.
        """
        counted = self.states[self.states["counted"].astype(bool)]
        if counted.empty:
            return pd.Series(dtype=float)
        return counted.groupby("signature")["auroc"].max()

    def not_in_library(self) -> list[tuple[str, str]]:
        """(dataset, signature) pairs a mapping.yaml names but the library does not (yet) have."""
        ids = set(self.library.ids)
        return sorted({(s.dataset.name, st.signature) for s in self.scored for st in s.dataset.states
                       if st.signature not in ids})

    def validated(self) -> list[str]:
        """State signatures at or above ``AUROC_PASS`` on at least one dataset."""
        best = self.best_auroc()
        return sorted(best.index[best >= AUROC_PASS])

    def peak_datasets(self) -> list[str]:
        """Datasets with a peak check, HCC/liver data first, then by name."""
        checked = [s.dataset for s in self.scored if s.dataset.peak_check]
        return [d.name for d in sorted(checked, key=lambda d: (not d.hcc, d.name))]

    def peak_share(self, dataset: str) -> tuple[int, int]:
        """(signatures that peak in their own context, checkable signatures that were scored) on ``dataset``."""
        rows = self.peaks[(self.peaks["dataset"] == dataset) & self.peaks["in_own"].notna()]
        return int(rows["in_own"].astype(bool).sum()), len(rows)


_STATE_COLUMNS = ["signature", "dataset", "auroc", "measured", "n_genes", "parent", "cluster", "siblings", "n_cluster",
                  "n_siblings", "supporting_only", "counted"]
_PEAK_COLUMNS = ["signature", "context", "dataset", "measured", "n_genes", "own", "peak", "peak_label", "auroc",
                 "in_own", "checkable"]


def run(data_dir: Path = DATA_DIR) -> Results:
    """Score every dataset and build both tables."""
    library = hcctme.sig.library()
    scored = [score_dataset(ds, library) for ds in datasets(data_dir)]
    states = pd.DataFrame([r for s in scored for r in state_rows(s)], columns=_STATE_COLUMNS)
    peaks = pd.DataFrame([r for s in scored for r in peak_rows(s, library)], columns=_PEAK_COLUMNS)
    return Results(scored=scored, states=states, peaks=peaks, library=library)


# --------------------------------------------------------------------------------------------------
# Per-gene diagnosis of one signature (python -m tests.sig.validation --genes SIGNATURE)
# --------------------------------------------------------------------------------------------------
def read_dataset(dataset: Dataset) -> ad.AnnData:
    """The dataset as shipped, with ``var["hcctme_symbol"]`` from :func:`hcctme.pp.harmonize_genes`."""
    adata = ad.read_h5ad(dataset.path)
    hcctme.pp.harmonize_genes(adata)
    return adata


def gene_values(adata: ad.AnnData, genes: Iterable[str]) -> pd.DataFrame:
    """Values as shipped (cells x genes) of the ``genes`` measured in ``adata``, looked up by current symbol.

    A symbol that several columns map to is read from the first of them; genes not measured are left out.
    """
    column: dict[str, int] = {}
    for i, name in enumerate(_validate.gene_names(adata, pd.Index(adata.var_names))):
        column.setdefault(str(name), i)
    keep = [g for g in dict.fromkeys(genes) if g in column]
    block = adata.X[:, [column[g] for g in keep]]
    values = block.toarray() if hasattr(block, "toarray") else np.asarray(block)
    return pd.DataFrame(values, index=adata.obs_names, columns=keep)


def gene_table(adata: ad.AnnData, dataset: Dataset, signature: hcctme.sig.Signature) -> pd.DataFrame:
    """Per measured gene of ``signature`` and per comparison ``dataset`` maps it to: the gene's own AUROC.

    Columns: signature, dataset, cluster, gene, direction ("up"/"down"), auroc (the gene's value as shipped,
    matching cluster against siblings, as the state table does with the score), detected_cluster and
    detected_siblings (share of cells with a value above 0). Empty when the dataset does not map the signature.
    """
    labels = adata.obs[dataset.label_key].astype(str)
    rows = []
    for state in (s for s in dataset.states if s.signature == signature.id):
        pos = labels.isin(state.cluster).to_numpy()
        neg = labels.isin(state.siblings).to_numpy()
        for direction, genes in (("up", signature.genes_up), ("down", signature.genes_down)):
            values = gene_values(adata, genes)
            for gene in values.columns:
                x = values[gene].to_numpy()
                rows.append({"signature": signature.id, "dataset": dataset.name, "cluster": " + ".join(state.cluster),
                             "gene": gene, "direction": direction, "auroc": auroc(x[pos], x[neg]),
                             "detected_cluster": float(np.mean(x[pos] > 0)),
                             "detected_siblings": float(np.mean(x[neg] > 0))})
    return pd.DataFrame(rows, columns=["signature", "dataset", "cluster", "gene", "direction", "auroc",
                                       "detected_cluster", "detected_siblings"])


def gene_context_means(adata: ad.AnnData, dataset: Dataset, signature: hcctme.sig.Signature) -> pd.DataFrame:
    """Mean ``log1p`` of each measured UP gene of ``signature`` (rows) per peak-check group (columns).

    The groups are those of the peak check (:func:`peak_groups`) with at least ``PEAK_MIN_CELLS`` cells; it
    shows which genes carry a score to another cell type. Empty when the dataset has no peak check.
    """
    if not dataset.peak_check:
        return pd.DataFrame()
    labels = adata.obs[dataset.label_key].astype(str)
    groups = labels.map(peak_groups(dataset))
    kept = groups.notna().to_numpy()
    values = np.log1p(gene_values(adata, signature.genes_up).loc[kept])
    return _group_means(values, groups[kept]).T


def print_gene_diagnosis(signature_id: str, data_dir: Path = DATA_DIR) -> None:
    """Print :func:`gene_table` and :func:`gene_context_means` of one library signature on every dataset."""
    library = hcctme.sig.library()
    if signature_id not in library.ids:
        raise KeyError(f"{signature_id!r} is not a library signature; see hcctme.sig.list()")
    signature = library[signature_id]
    with pd.option_context("display.width", 250, "display.max_rows", 500, "display.max_columns", 50):
        for dataset in datasets(data_dir):
            adata = read_dataset(dataset)
            table = gene_table(adata, dataset, signature)
            if not table.empty:
                print(f"## {signature_id} on {dataset.name}: per-gene AUROC, matching cluster vs siblings")
                print(table.drop(columns=["signature", "dataset"]).sort_values(["cluster", "auroc"])
                      .round(3).to_string(index=False), end="\n\n")
            means = gene_context_means(adata, dataset, signature)
            if not means.empty:
                print(f"## {signature_id} on {dataset.name}: mean log1p per peak-check group "
                      f"(own context {signature.cell_context})")
                print(means.round(2).to_string(), end="\n\n")


# --------------------------------------------------------------------------------------------------
# VALIDATION.md
# --------------------------------------------------------------------------------------------------
def _fmt(value: float | None) -> str:
    return "n/a" if value is None or pd.isna(value) else f"{value:.3f}"


def _table(header: Sequence[str], rows: Iterable[Sequence[object]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(str(c).replace("|", "\\|") for c in row) + " |" for row in rows]
    return lines


def _dataset_section(results: Results) -> list[str]:
    rows = []
    for s in results.scored:
        counts = s.labels.value_counts()
        labels = ", ".join(f"{lab} ({counts[lab]})" for lab in sorted(counts.index))
        rows.append((f"`{s.dataset.name}`", s.dataset.title, s.dataset.citation, len(s.labels), s.n_genes,
                     f"`{s.dataset.label_key}`: {labels}", f"tests/data/{s.dataset.name}/PROVENANCE.md"))
    return ["## Datasets", "", *_table(
        ["dataset", "what", "paper", "cells", "genes", "authors' labels (cells)", "provenance"], rows)]


def _untested_reason(sig: hcctme.sig.Signature, results: Results) -> str:
    mapped = results.states[results.states["signature"] == sig.id]
    if mapped.empty:
        return f"no dataset has an authors' cluster for this {sig.cell_context} state"
    if not mapped["counted"].astype(bool).any():
        small = ", ".join(f"{r.dataset}: {r.n_cluster} vs {r.n_siblings} cells, AUROC {_fmt(r.auroc)}"
                          for r in mapped.itertuples())
        return f"only comparisons with fewer than {STATE_MIN_CELLS} cells on a side, not counted ({small})"
    cover = ", ".join(f"{r.dataset}: {r.measured}/{r.n_genes} genes" for r in mapped.itertuples())
    return f"too few genes measured to score (min_coverage {MIN_COVERAGE}; {cover})"


def state_signature_ids(library: hcctme.sig.SignatureSet) -> list[str]:
    """Signatures that claim a cell state: a specific cell_context and a role other than marker/program."""
    return [s.id for s in library if s.cell_context != "any" and s.role not in ("marker", "program")]


def _summary_section(results: Results) -> list[str]:
    best = results.best_auroc()
    validated = results.validated()
    failing = sorted(i for i in best.index if not pd.isna(best[i]) and best[i] < AUROC_PASS)
    lines = ["## Summary for the library", "",
             f"- Validated (AUROC >= {AUROC_PASS} on at least one dataset): "
             + (", ".join(f"{i} ({_fmt(best[i])})" for i in validated) or "none") + ".",
             *_weak_lines(results, validated),
             "- Tested and below the bar on every dataset: "
             + (", ".join(f"{i} ({_fmt(best[i])})" for i in failing) or "none") + "."]
    lines += _supporting_lines(results)
    untested = [s for s in results.library if s.id in state_signature_ids(results.library)
                and (s.id not in best.index or pd.isna(best[s.id]))]
    lines.append(f"- State signatures not testable on these datasets ({len(untested)}):")
    lines += [f"  - {s.id}: {_untested_reason(s, results)}" for s in untested]
    missing = results.not_in_library()
    if missing:
        lines.append("- Mapped in a dataset but not in the library (no row below): "
                     + ", ".join(f"{sig} ({ds})" for ds, sig in missing) + ".")
    if not any(s.dataset.hcc for s in results.scored):
        lines.append(f"- No HCC or liver dataset is shipped yet: the {PEAK_TARGET:.0%} peak target on HCC data "
                     "cannot be checked here; the peak checks below are on other tumours.")
    lines += [line for name in results.peak_datasets() for line in _peak_summary(results, name)]
    return lines


def _peak_summary(results: Results, name: str) -> list[str]:
    """The peak-check lines of one dataset: share, misses, signatures not scored and not checkable there."""
    rows = results.peaks[results.peaks["dataset"] == name]
    dataset = next(s.dataset for s in results.scored if s.dataset.name == name)
    n_pass, n_checked = results.peak_share(name)
    if n_checked == 0:
        return [f"- Peak check on `{name}`: no cell-context signature is checkable."]
    share = n_pass / n_checked
    missed = "; ".join(f"{r.signature} ({r.context}) -> {r.peak} [{r.peak_label}]"
                       for r in rows.itertuples() if r.in_own is False)
    verdict = "reached" if share >= PEAK_TARGET else "not reached"
    where = f" (HCC/liver data: {dataset.title})" if dataset.hcc else ""
    lines = [f"- Peak check on `{name}`{where}: {n_pass} of {n_checked} checkable "
             f"cell-context signatures ({share:.0%}) peak in their own context (target {PEAK_TARGET:.0%}, {verdict})"
             + (f"; elsewhere: {missed}." if missed else ".")]
    unscored = rows[rows["checkable"] & rows["in_own"].isna()]
    if not unscored.empty:
        lines.append(f"  - not scored (fewer than {MIN_COVERAGE:.0%} of their genes measured): "
                     + ", ".join(unscored["signature"]) + ".")
    absent = rows[~rows["checkable"].astype(bool)]
    if not absent.empty:
        by_context = absent.groupby("context", sort=True)["signature"].apply(", ".join)
        lines.append(f"  - not checkable here (fewer than {PEAK_MIN_CELLS} cells of their context): "
                     + "; ".join(f"{ctx}: {sigs}" for ctx, sigs in by_context.items()) + ".")
    return lines


def _supporting_lines(results: Results) -> list[str]:
    """One line per dataset whose comparisons are supporting evidence only: its AUROCs and the reason."""
    lines = []
    for scored in results.scored:
        if not scored.dataset.supporting_only:
            continue
        rows = results.states[results.states["dataset"] == scored.dataset.name].sort_values("signature")
        if rows.empty:
            continue
        aurocs = ", ".join(f"{r.signature} ({_fmt(r.auroc)})" for r in rows.itertuples())
        lines.append(f"- Supporting evidence only, not counted ({scored.dataset.name}: "
                     f"{scored.dataset.supporting_only}): {aurocs}.")
    return lines


def _weak_lines(results: Results, validated: list[str]) -> list[str]:
    """List validated signatures whose passing rows all measured fewer than WEAK_COVERAGE of their genes."""
    weak = []
    for sig_id in validated:
        rows = results.states[(results.states["signature"] == sig_id) & (results.states["auroc"] >= AUROC_PASS)
                              & results.states["counted"].astype(bool)]
        if (rows["measured"] < WEAK_COVERAGE * rows["n_genes"]).all():
            cover = ", ".join(f"{r.measured}/{r.n_genes} genes on {r.dataset}" for r in rows.itertuples())
            weak.append(f"{sig_id} ({cover})")
    if not weak:
        return []
    return [f"- Validated with fewer than {WEAK_COVERAGE:.0%} of their genes measured (weaker evidence): "
            + "; ".join(weak) + "."]


def _state_section(results: Results) -> list[str]:
    rows = [(r.signature, r.dataset, _fmt(r.auroc), f"{r.measured}/{r.n_genes}", r.parent, r.cluster, r.siblings,
             _verdict(r)) for r in results.states.sort_values(["signature", "dataset"]).itertuples()]
    return [STATE_HEADING, "",
            "AUROC of the UCell score separating the cells of the authors' matching cluster from the cells "
            "of its sibling clusters in the same parent population (0.5 = no separation). A comparison with "
            f"fewer than {STATE_MIN_CELLS} cells on a side is shown but does not count (\"too few cells\"), nor "
            "does one on a dataset whose mapping.yaml says why it is supporting evidence only (`supporting_only`: "
            "e.g. genes preselected by the authors to separate their clusters; \"supporting only\").", "",
            *_table(["signature", "dataset", "AUROC", "genes measured", "parent", "matching cluster (cells)",
                     "siblings (cells)", f">= {AUROC_PASS}"], rows)]


def _verdict(row: object) -> str:
    if row.supporting_only:
        return "supporting only"
    if not row.counted:
        return "too few cells"
    return "yes" if row.auroc is not None and not pd.isna(row.auroc) and row.auroc >= AUROC_PASS else "no"


def _peak_section(results: Results) -> list[str]:
    order = {name: i for i, name in enumerate(results.peak_datasets())}
    peaks = results.peaks[results.peaks["checkable"].astype(bool)].copy()
    peaks["order"] = peaks["dataset"].map(order)
    rows = [(r.signature, r.context, r.dataset, f"{r.measured}/{r.n_genes}", r.own, r.peak or "not scored",
             r.peak_label or "n/a", _fmt(r.auroc), "n/a" if r.in_own is None else ("yes" if r.in_own else "no"))
            for r in peaks.sort_values(["order", "signature"]).itertuples()]
    return ["## Cell-context signatures: do they peak in their own cell context?", "",
            "The authors' labels are pooled by the library cell context they are mapped to (tests/data/*/mapping.yaml: "
            "`contexts`); a label without a library context is a group of its own when it is a distinct cell type "
            "(`other_types`) and is left out when it is a mixture. Mean UCell score per group; the peak is the group "
            f"with the highest mean among those with at least {PEAK_MIN_CELLS} cells. Own context: the signature's "
            "`cell_context` and its more specific contexts (a `t_cell` marker owns `cd8_t`), or its parent where the "
            "dataset is labelled only that coarsely. Signatures whose own context has no such group are not "
            "checkable there (listed in the summary). HCC/liver data first. AUROC: own context against every other "
            "cell of the groups.", "",
            *_table(["signature", "cell_context", "dataset", "genes measured", "own context (cells)", "peak",
                     "its authors' label with the highest mean", "AUROC own vs rest", "peaks in own context"], rows)]


def validated_in_table(text: str) -> set[str]:
    """Signatures whose row in the state section of a VALIDATION.md text ends in "yes"."""
    out, inside = set(), False
    for line in text.splitlines():
        if line.startswith("## "):
            inside = line == STATE_HEADING
        elif inside and line.startswith("| ") and line.rstrip().endswith("| yes |"):
            out.add(line.split("|")[1].strip())
    return out


def _library_label() -> str:
    # the library version only: list edits that change no AUROC or gene count leave the table as it is
    return f"version {getattr(_constants, 'SIGNATURE_LIBRARY_VERSION', 'unknown')}"


def render(results: Results) -> str:
    """Render the text of signatures/VALIDATION.md."""
    lines = [
        "# Signature validation on real labelled single-cell data", "",
        f"Generated by `{REGENERATE}` from tests/data/*/mapping.yaml (signature library "
        f"{_library_label()}); do not edit by hand. `tests/sig/test_validation.py` regenerates "
        "it and fails when it differs from this file or when a signature marked `validated: true` in the "
        f"library is below AUROC {AUROC_PASS} on every dataset.", "",
        f"Scores: `hcctme.tl.score(method=\"ucell\", min_coverage={MIN_COVERAGE})` on each dataset as shipped, after "
        "`hcctme.pp.harmonize_genes` (the datasets keep the symbols of their time: GRASP, SEPT11, WISP2, GPR56 ...); "
        "genes measured = signature genes (up and down) present in the dataset under their current symbols.", "",
        *_summary_section(results), "", *_dataset_section(results), "", *_state_section(results), "",
        *_peak_section(results), "",
    ]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    """Command line: ``--write`` regenerates the table; otherwise exit 1 when it is out of date."""
    parser = argparse.ArgumentParser(prog="python -m tests.sig.validation", description=__doc__.splitlines()[0])
    parser.add_argument("--write", action="store_true", help=f"write {TABLE_PATH.relative_to(ROOT)}")
    parser.add_argument("--genes", metavar="SIGNATURE",
                        help="print the per-gene diagnosis of one signature on every dataset instead")
    args = parser.parse_args(argv)
    if args.genes:
        print_gene_diagnosis(args.genes)
        return 0
    text = render(run())
    if args.write:
        TABLE_PATH.write_text(text)
        print(f"wrote {TABLE_PATH}")
        return 0
    current = TABLE_PATH.read_text() if TABLE_PATH.exists() else ""
    if current != text:
        print(f"{TABLE_PATH} is out of date; run `{REGENERATE}`")
        return 1
    print(f"{TABLE_PATH} is up to date")
    return 0


if __name__ == "__main__":
    sys.exit(main())
