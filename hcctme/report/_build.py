"""``hcctme.report.build``: one self-contained, interactive HTML file summarising a run.

Reading order: the cohort summary in sentences, one card per patient (searchable), then the sections
behind each sentence (states, comparisons, crosstalk, spatial barrier, resistance profile, scores), and
the methods written from the stored parameters. All results are read through :mod:`._results`.
"""

from __future__ import annotations

import datetime as _dt
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from anndata import AnnData

from hcctme import _files, _validate
from hcctme._constants import STATE_SEEDING_AGREEMENT, Defaults, Keys, Report
from hcctme._logging import logger
from hcctme._version import __version__
from hcctme.report import _cards, _figures, _html, _summary
from hcctme.report import _results as results

_COMPARE_TITLES = {"composition": "States within their cell type", "scores": "Signature scores per cell type",
                   "genes": "Genes (pseudobulk)"}


class _Context:
    """What every section needs: keys, the cohort's patients and their conditions, and spilled tables."""

    def __init__(self, adata: AnnData, out_dir: Path | None, *, keep_tables: bool = False):
        # a pipeline run's config; outside one, the keys the tools recorded
        run = results.run_config(adata)
        cfg = run or results.recorded_keys(adata)
        self.adata = adata
        self.sample_key = cfg.get("sample_key", Defaults.SAMPLE_KEY)
        # a pipeline run records no condition_key when it had none (uns holds no None); else the default
        self.condition_key = cfg.get("condition_key", None if run else Defaults.CONDITION_KEY)
        self.cell_type_key = cfg.get("cell_type_key", Defaults.CELL_TYPE_KEY)
        self.out_dir = out_dir
        self.keep_tables = keep_tables
        obs = adata.obs
        self.samples = obs[self.sample_key].astype(str) if self.sample_key in obs else None
        self.conditions = (obs[[self.sample_key, self.condition_key]].astype(str).drop_duplicates(self.sample_key)
                           .set_index(self.sample_key)[self.condition_key]
                           if self.samples is not None and self.condition_key is not None
                           and self.condition_key in obs else None)

    def table(self, frame: pd.DataFrame | None, stem: str, *, index: bool = False, **kwargs: Any) -> str:
        """An interactive table of at most Report.MAX_ROWS rows; the full table goes to ``<stem>.tsv``."""
        if frame is not None and len(frame) > Report.MAX_ROWS and self.out_dir is not None:
            target = self.out_dir / f"{stem}.tsv"
            if not (self.keep_tables and target.exists()):
                _files.write_table(frame, target, index=index)
        return _html.table(frame, anchor=f"table-{stem}", max_rows=Report.MAX_ROWS, index=index,
                           full_file=f"{stem}.tsv" if self.out_dir is not None else None, **kwargs)


def _overview_sentence(ctx: _Context) -> str:
    adata = ctx.adata
    text = f"{adata.n_obs:,} cells x {adata.n_vars:,} genes"
    if ctx.conditions is not None:
        per = ctx.conditions.value_counts().sort_index()
        text += f" from {len(ctx.conditions)} patients (" + ", ".join(f"{n} {lv}" for lv, n in per.items()) + ")"
    elif ctx.samples is not None:
        text += f" from {ctx.samples.nunique()} patients"
    return _html.paragraph(text + ".") + _stale_note(adata)


def _stale_note(adata: AnnData) -> str:
    """A warning where stored results were computed on samples this AnnData no longer holds (a subset's parent)."""
    gone = results.samples_gone(adata)
    if not gone:
        return ""
    listed = "; ".join(f"{key} ({', '.join(samples[:5])}{', ...' if len(samples) > 5 else ''})"
                       for key, samples in gone.items())
    text = (f"Results computed on samples this data no longer holds: {listed}. They describe the cells they were "
            "computed on (subsetting keeps uns as it was): re-run the tools on this data.")
    warnings.warn(f"report: {text}", UserWarning, stacklevel=4)
    return _html.paragraph(text, note=True)


def _findings(ctx: _Context) -> list[_summary.Finding]:
    adata, fdr, limit = ctx.adata, Defaults.ALPHA, Report.FINDINGS_PER_KIND
    found = _summary.axes(results.profile(adata, summary=True), fdr=fdr, limit=limit,
                          anchors=("table-profile_summary", "fig-profile"))
    found += _summary.composition(results.compare(adata, "composition"), fdr=fdr, limit=limit,
                                  anchors=("table-compare_composition", "fig-compare-composition"))
    found += _summary.scores(results.compare(adata, "scores"), fdr=fdr, limit=limit,
                             anchors=("table-compare_scores", "fig-compare-scores"))
    found += _summary.genes(results.compare(adata, "genes"), fdr=fdr, limit=limit,
                            anchors=("table-compare_genes", "fig-compare-genes"))
    found += _summary.scores(results.ta_response(adata), fdr=fdr, limit=limit, what="T+A response signature",
                             anchors=("table-ta_response_compare", "fig-ta-response"))
    found += _summary.crosstalk(results.crosstalk(adata, differential=True), fdr=fdr, limit=limit,
                                anchor="table-crosstalk_diff")
    if ctx.conditions is not None:
        found += _summary.barrier(results.tib(adata), ctx.conditions, alpha=Defaults.ALPHA, anchor="table-tib")
    return found


def _summary_section(ctx: _Context) -> str:
    findings = _findings(ctx)
    items = "".join(f.html() for f in findings)
    body = _overview_sentence(ctx)
    if items:
        body += f'<h3>Main findings</h3><ul class="findings">{items}</ul>'
    return body + _html.paragraph(
        "Patients are the unit of replication throughout; numbers are group means of per-patient values. "
        "Each sentence links to the table and figure it comes from.", note=True)


def _patients_section(ctx: _Context) -> str:
    adata = ctx.adata
    if ctx.samples is None:
        return _html.paragraph("No sample column: no per-patient view.", note=True)
    states = results.states(adata)
    fractions = cohort = None
    if states is not None:
        fractions = _cards.state_fractions(states, ctx.samples, results.state_contexts(adata),
                                           unassigned=Defaults.UNASSIGNED)
        cohort = fractions.median(axis=0)
    profile = results.profile(adata)
    by_sample = dict(iter(profile.groupby("sample", sort=False))) if profile is not None else {}
    n_cells = ctx.samples.value_counts()
    conditions = ctx.conditions if ctx.conditions is not None else pd.Series("", index=n_cells.index)
    therapies, tib = results.therapies(), results.tib(adata)
    order = sorted(n_cells.index, key=lambda s: (conditions.get(s, ""), s))
    cards = "".join(
        _cards.card(s, condition=conditions.get(s, ""), n_cells=int(n_cells[s]), fractions=fractions, cohort=cohort,
                    profile_rows=by_sample.get(s), tib=tib, therapies=therapies, alpha=Defaults.ALPHA,
                    max_states=Report.CARD_STATES)
        for s in order)
    tools = ('<div class="cards-tools"><input id="patient-search" type="search" placeholder="Search patient id '
             'or condition" oninput="hcctmeFilterCards(this.value)" aria-label="search patients">'
             f'<span id="cards-count">{len(order)} shown</span></div>')
    legend = _html.paragraph("Composition: fraction of the patient's cells of each state's cell context (blue) "
                             "against the cohort median (grey), states that differ most first. Axes: activity "
                             "(mean z of the evidence kinds shown). Therapies: kb evidence tier, supporting "
                             "trial (or paper), development status and negative trials.", note=True)
    return tools + legend + f'<div class="cards">{cards}</div>'


def _states_section(ctx: _Context) -> str:
    states = results.states(ctx.adata)
    if states is None or ctx.samples is None:
        return (_not_run_note(ctx.adata, "states", "Cell states")
                or _html.paragraph("Cell states were not called.", note=True))
    # each state's share of all the patient's cells, the unassigned ones last: the bars sum to 1
    fractions = pd.crosstab(ctx.samples, states, normalize="index")
    fractions = fractions[[c for c in fractions.columns if c != Defaults.UNASSIGNED]
                          + [c for c in fractions.columns if c == Defaults.UNASSIGNED]]
    counts = states.value_counts().rename_axis("state").rename("cells").to_frame()
    return (_html.figure(_figures.composition(fractions, ctx.conditions), anchor="fig-states")
            + ctx.table(counts, "state_counts", index=True)
            + small_populations_note(results.small_populations(ctx.adata))
            + unstable_states_note(results.unstable_states(ctx.adata, STATE_SEEDING_AGREEMENT))
            + split_mixture_note(results.split_mixture_states(ctx.adata)))


def small_populations_note(small: dict[str, dict[str, int]]) -> str:
    """A note naming the populations with fewer cells than the state calling's seeding needs (``""`` for none)."""
    if not small:
        return ""

    def listed(contexts: list[str]) -> str:
        return "; ".join(f"{c} ({int(small[c]['cells']):,} cells for {int(small[c]['states'])} states, "
                         f"{int(small[c]['needed']):,} needed)" for c in contexts)

    # no seeding: too few cells for the self-training, the mixture's calls stand
    mixture = sorted(c for c, size in small.items() if "seedings" in size and int(size["seedings"]) == 0)
    seeded = sorted(c for c in small if c not in mixture)
    parts = []
    if seeded:
        parts.append(f"Populations with fewer cells than the state calling's clusters need: {listed(seeded)}. Which "
                     "of their states get seeds turns on how they are cut, so their calls are the mean of several "
                     "seedings' and fewer of their cells are called; read them with care.")
    if mixture:
        parts.append(f"Populations too small for the self-training: {listed(mixture)}. Their calls are the mixture "
                     "model's alone; read them with care.")
    return _html.paragraph(" ".join(parts), note=True)


def unstable_states_note(unstable: dict[str, dict[str, float]]) -> str:
    """A note naming the states whose calls the seedings the calls average disagree on (``""`` for none)."""
    return _state_shares_note(unstable, "States whose calls turn on how their population is cut (the share of their "
                                        "calls a single one of the seedings averaged makes)",
                              "Read them as one draw of several (call_states(random_state=...) draws others); a "
                              "clearer population (more cells, cell types labelled finer) helps.")


def split_mixture_note(split: dict[str, dict[str, float]]) -> str:
    """A note naming the states whose mixture calls only some seedings keep, where few or none train the classifier."""
    return _state_shares_note(split, "States of populations in which no seeding, or fewer than half, had the seeds to "
                                     "train the state classifier, which only some seedings keep (the share that keep "
                                     "them: a specificity test keeping the mixture's calls, or a classifier's class)",
                              "Their calls are the mean of the seedings': a state few of them keep is not "
                              "called, unless at least half of the seedings that train the classifier seeded it "
                              "through its list's gene test (their calls of it stand).")


def _state_shares_note(shares: dict[str, dict[str, float]], lead: str, tail: str) -> str:
    """``lead: context: STATE (share %), ...; ... tail`` as a note (``""`` without shares)."""
    if not shares:
        return ""
    listed = "; ".join(f"{context}: " + ", ".join(f"{state} ({share:.0%})" for state, share in sorted(states.items()))
                       for context, states in sorted(shares.items()))
    return _html.paragraph(f"{lead}: {listed}. {tail}", note=True)


def _not_run_note(adata: AnnData, part: str, title: str) -> str:
    """``title``: not run, and why, where the pipeline skipped ``part`` (``""`` where it did not)."""
    reason = results.skipped(adata).get(part)
    return _html.paragraph(f"{title}: not run ({reason}).", note=True) if reason else ""


def _contrasts(adata: AnnData) -> list[str]:
    """The contrasts the comparison tables hold (``"resistor vs responder"``), in order of first appearance."""
    tables = [results.compare(adata, features) for features in _COMPARE_TITLES] + [results.ta_response(adata)]
    return list(dict.fromkeys(str(c) for t in tables if t is not None and "contrast" in t.columns
                              for c in t["contrast"].dropna()))


def _contrast_title(adata: AnnData) -> str:
    """The comparison section's title from the stored contrast (``"Resistor versus responder"``)."""
    contrasts = _contrasts(adata)
    if len(contrasts) != 1:
        return "Comparisons between conditions"
    title = contrasts[0].replace(" vs ", " versus ", 1)
    return title[:1].upper() + title[1:]  # "CD8-high versus CD8-low" keeps its capitals


def _compare_section(ctx: _Context) -> str:
    body = _not_run_note(ctx.adata, "compare", "Comparisons")
    for features, title in _COMPARE_TITLES.items():
        table = results.compare(ctx.adata, features)
        if table is None:
            body += _not_run_note(ctx.adata, f"compare_{features}", title)
            continue
        n_sig = int((table["padj"] < Defaults.ALPHA).sum()) if "padj" in table else 0
        body += (f"<h3>{title}</h3>"
                 + _html.paragraph(f"{len(table):,} tests; {n_sig} with padj < {Defaults.ALPHA:g}.")
                 + _html.figure(_figures.volcano(table, title=title, alpha=Defaults.ALPHA,
                                                  max_points=Report.MAX_POINTS),
                                anchor=f"fig-compare-{features}")
                 + ctx.table(_sorted(table), f"compare_{features}"))
    return body + _ta_response_part(ctx) or _html.paragraph("No comparison was run.", note=True)


def _ta_response_part(ctx: _Context) -> str:
    """The T+A response signatures: their comparison when a condition was given, and the per-sample values."""
    title = "Atezolizumab + bevacizumab (T+A) response signatures"
    ta, per_sample = results.ta_response(ctx.adata), results.ta_response(ctx.adata, per_sample=True)
    if ta is None and per_sample is None:
        return _not_run_note(ctx.adata, "ta_response", title)
    body = f"<h3>{title}</h3>"
    if ta is not None:
        body += (_html.figure(_figures.volcano(ta, title="T+A response signatures", alpha=Defaults.ALPHA,
                                               max_points=Report.MAX_POINTS), anchor="fig-ta-response")
                 + ctx.table(_sorted(ta), "ta_response_compare"))
    if per_sample is not None:
        body += (_html.paragraph("Per sample: each signature's value (hcctme.tl.ta_response; cells per sample in "
                                 "n_cells).")
                 + ctx.table(per_sample, "ta_response_per_sample"))
    return body


def _sorted(table: pd.DataFrame) -> pd.DataFrame:
    if "padj" in table.columns:
        return table.sort_values(["padj", "pvalue"] if "pvalue" in table.columns else ["padj"])
    return table


def _crosstalk_section(ctx: _Context) -> str:
    diff = results.crosstalk(ctx.adata, differential=True)
    if diff is not None:
        untested = "" if _crosstalk_tested(diff) else _html.paragraph(
            "No interaction could be tested between the conditions (too few samples with both groups of an "
            "interaction in each condition: column tested); the table lists the interactions read.", note=True)
        return ("<h3>Differential crosstalk (patient level)</h3>" + untested
                + ctx.table(diff, "crosstalk_diff"))
    pooled = results.crosstalk(ctx.adata)
    if pooled is not None:
        return "<h3>Interactions</h3>" + ctx.table(pooled, "crosstalk")
    return _not_run_note(ctx.adata, "crosstalk", "Crosstalk") or _html.paragraph("Crosstalk was not run.", note=True)


def _crosstalk_tested(diff: pd.DataFrame | None) -> bool:
    """Whether the differential crosstalk tested any interaction (its ``tested`` column; a table without it did)."""
    return diff is not None and ("tested" not in diff.columns or bool(diff["tested"].astype(bool).any()))


def _tib_section(ctx: _Context) -> str:
    table = results.tib(ctx.adata)
    if table is None:
        return (_not_run_note(ctx.adata, "tib", "Spatial tumour immune barrier")
                or _html.paragraph("The tumour immune barrier was not measured (hcctme.tl.tib, on spatial data).",
                                   note=True))
    return ctx.table(table.rename_axis(ctx.sample_key), "tib", index=True)


def _profile_section(ctx: _Context) -> str:
    profile = results.profile(ctx.adata)
    if profile is None:
        return _html.paragraph("The resistance profile was not computed.", note=True)
    body = _html.figure(_figures.profile_heatmap(profile), anchor="fig-profile")
    summary = results.profile(ctx.adata, summary=True)
    if summary is not None:
        body += "<h3>Axes by condition</h3>" + ctx.table(_sorted(summary), "profile_summary")
    shown = profile.drop(columns=[c for c in ("source", "therapies") if c in profile.columns])
    body += "<h3>Activity per patient and axis</h3>" + ctx.table(shown, "resistance_profile")
    if "source" in profile.columns:
        sources = profile.drop_duplicates("axis")[["axis", "source"]]
        body += "<h3>Where each axis's evidence comes from</h3>" + _html.table(sources, anchor="table-profile_sources")
    return body


def _scores_section(ctx: _Context) -> str:
    scores = results.scores(ctx.adata)
    note = _dropped_note(results.scores_record(ctx.adata))
    if ctx.cell_type_key not in ctx.adata.obs:
        return _html.paragraph(f"{scores.shape[1]} signatures scored.", note=True) + note
    states = [c for c in scores.columns if not str(c).startswith("MARKER_")]
    means = scores[states].groupby(ctx.adata.obs[ctx.cell_type_key].astype(str).to_numpy()).mean()
    return _html.figure(_figures.score_heatmap(means), anchor="fig-scores") + note


def _dropped_note(record: dict) -> str:
    """The signatures left out: lists shorter than the scoring minimum, then too few genes in the data.

    The user's own gene sets are named first in each sentence.
    """
    dropped = [str(d) for d in record.get("dropped", [])]
    if not dropped:
        return ""
    minimum = int(record.get("method_params", {}).get("min_genes", Defaults.MIN_GENES))
    lengths = record.get("n_genes", {})  # tl.score records each list's length
    short = [d for d in dropped if d in lengths and int(lengths[d]) < minimum]
    rest = [d for d in dropped if d not in short]

    def named(ids: list[str]) -> str:
        yours, theirs = _yours_and_library(ids)
        return "; ".join(([f"your gene set(s) {', '.join(yours)}"] if yours else [])
                         + ([f"{len(theirs)} of the library: {', '.join(theirs)}"] if theirs else []))

    sentences = []
    if short:
        sentences.append(f"Not scored, lists shorter than the {minimum}-gene scoring minimum: {named(short)}.")
    if rest:
        sentences.append(f"Not scored, too few of their genes in the data: {named(rest)}.")
    return _html.paragraph(" ".join(sentences), note=True)


def _yours_and_library(ids: list[str]) -> tuple[list[str], list[str]]:
    """``ids`` split into the user's gene sets and the library's signatures, each in the given order."""
    from hcctme import sig

    library = set(sig.library().ids)
    return [i for i in ids if i not in library], [i for i in ids if i in library]


def _methods_section(ctx: _Context) -> str:
    adata = ctx.adata
    params = {"scores": results.scores_params(adata), "states": results.states_params(adata),
              "crosstalk": results.crosstalk_params(adata), "tib": results.tib_params(adata),
              "profile": results.profile_params(adata)}
    tables = {title.lower(): results.compare(adata, f) for f, title in _COMPARE_TITLES.items()}
    tables["T+A response signatures"] = results.ta_response(adata)
    tests = {title: sorted(set(t["method"].astype(str))) for title, t in tables.items()
             if t is not None and "method" in t.columns}
    library = str(params["scores"].get("library_version", "?"))
    kb_version = results.kb_version(adata)
    summary = results.profile(adata, summary=True)
    profile_tests = sorted(set(summary["test"].astype(str))) if summary is not None and "test" in summary else []
    yours, theirs = _yours_and_library([str(c) for c in results.scores(adata).columns])
    body = _summary.methods(params, tests, n_signatures=len(theirs), your_sets=yours,
                            fdr=Defaults.ALPHA,
                            contrasts=_contrasts(adata),
                            library_version=library, kb_version=kb_version, hcctme_version=__version__,
                            profile_tests=profile_tests,
                            crosstalk_differential=_crosstalk_tested(results.crosstalk(adata, differential=True)))
    rows = [("hcctme version", __version__), ("signature library", library), ("knowledge base", kb_version)]
    # keys in sorted order, as h5py stores them: the report of a run equals that of its hcctme.h5ad read back
    rows += [(f"config.{k}", _sorted_text(v)) for k, v in sorted(results.run_config(adata).items())]
    rows += [(f"skipped.{k}", _sorted_text(v)) for k, v in sorted(results.skipped(adata).items())]
    rows += [(f"time.{k} (s)", _sorted_text(v)) for k, v in sorted(results.timings(adata).items())]
    return body + "<h3>Parameters and versions</h3>" + _html.table(
        pd.DataFrame(rows, columns=["parameter", "value"]), anchor="table-parameters", page_length=25)


def _sorted_text(value: Any, *, nested: bool = False) -> str:
    """``value`` as text, every mapping's keys sorted and arrays as lists.

    The same text in memory and read back from h5ad (h5py stores keys sorted and lists as arrays).
    """
    if isinstance(value, Mapping):
        items = sorted(value.items(), key=lambda kv: str(kv[0]))
        return "{" + ", ".join(f"'{k}': {_sorted_text(v, nested=True)}" for k, v in items) + "}"
    if isinstance(value, np.ndarray):
        value = value.tolist()
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_sorted_text(v, nested=True) for v in value) + "]"
    return f"'{value}'" if nested and isinstance(value, str) else str(value)


def build(adata: AnnData, path: str | Path | None = None, *, title: str = "hcctme resistance report") -> Path | str:
    """Build the interactive HTML report of a run.

    Parameters
    ----------
    adata
        The AnnData after :func:`hcctme.pipeline.run` (or the individual tools, with their default
        ``key_added``: the report reads the default keys); each section is shown when its results are present.
    path
        Where to write the report (atomically). Tables longer than ``Report.MAX_ROWS`` are shortened
        in the page and written in full as TSV beside it (``<table>.tsv``, replacing a file of that
        name). When None the HTML text is returned.
    title
        Page title.

    Returns
    -------
    The path written, or the HTML text when ``path`` is None.
    """
    return write(adata, path, title=title)


def write(adata: AnnData, path: str | Path | None, *, title: str = "hcctme resistance report",
          keep_tables: bool = False) -> Path | str:
    """:func:`build`; ``keep_tables``: a run folder's own TSVs beside ``path`` are kept, not rewritten.

    The pipeline and the workflow write every table of the run before the report, which links to them
    (a Snakemake rule's outputs must not be rewritten by a later rule).
    """
    _validate.anndata(adata)
    if not isinstance(title, str):
        raise TypeError(f"title must be a string, got {title!r}")
    if not adata.obs_names.is_unique:
        raise ValueError("adata.obs_names has duplicates, which the report's per-cell tables cannot align; call "
                         "adata.obs_names_make_unique() first")
    try:
        _validate.scores(adata)
    except KeyError:  # its hint names a scores_key, which build does not take
        raise KeyError(
            f"the report reads the tools' default keys and adata.obsm has no {Keys.SCORES!r}; run "
            f"hcctme.tl.score(adata) with the default key_added, or copy yours there "
            f"(adata.obsm[{Keys.SCORES!r}] = adata.obsm['<your key>']); obsm holds {sorted(adata.obsm)}"
        ) from None
    if path is not None:
        _files.check_writable(path)  # before any work or file beside it: a folder, a read-only place
    ctx = _Context(adata, Path(path).parent if path is not None else None, keep_tables=keep_tables)
    if ctx.out_dir is not None:
        ctx.out_dir.mkdir(parents=True, exist_ok=True)
    sections = [("summary", "Cohort summary", _summary_section(ctx)),
                ("patients", "Patients", _patients_section(ctx)),
                ("states", "Resistance cell states per patient", _states_section(ctx)),
                ("compare", _contrast_title(ctx.adata), _compare_section(ctx)),
                ("crosstalk", "Ligand-receptor crosstalk on resistance axes", _crosstalk_section(ctx)),
                ("tib", "Spatial tumour immune barrier", _tib_section(ctx)),
                ("profile", "Resistance profile and therapies", _profile_section(ctx)),
                ("scores", "Signature scores per cell type", _scores_section(ctx)),
                ("methods", "Methods", _methods_section(ctx))]
    stamp = _dt.datetime.now(_dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    text = _html.page(title, f"Generated {stamp}", sections)
    if path is None:
        return text
    written = _files.write_text(text, path)
    logger.info("report written to %s (%.1f MB)", written, len(text.encode()) / 1e6)
    return written
