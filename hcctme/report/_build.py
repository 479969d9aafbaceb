"""``hcctme.report.build``: one self-contained HTML file summarising a full run."""

from __future__ import annotations

import datetime as _dt
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from anndata import AnnData
from matplotlib.figure import Figure

from hcctme import _files, _validate
from hcctme._constants import Defaults, Keys
from hcctme._logging import logger
from hcctme.report import _html


def _figure_of(obj: Any) -> Figure | None:
    """The Figure behind whatever a plotting function returned (Figure, Axes, arrays or dicts of Axes)."""
    if obj is None:
        return None
    if isinstance(obj, Figure):
        return obj
    if hasattr(obj, "figure") and isinstance(obj.figure, Figure):
        return obj.figure
    if isinstance(obj, dict):
        return _figure_of(next(iter(obj.values()), None))
    if isinstance(obj, (list, tuple, np.ndarray)):
        flat = np.ravel(np.asarray(obj, dtype=object))
        return _figure_of(flat[0]) if flat.size else None
    return None


def _run_config(adata: AnnData) -> dict[str, Any]:
    run = adata.uns.get("hcctme_run", {})
    return dict(run.get("config", {})) if isinstance(run, dict) else {}


def _table(adata: AnnData, key: str, part: str = "table") -> pd.DataFrame | None:
    value = adata.uns.get(key)
    if isinstance(value, dict):
        value = value.get(part)
    return value if isinstance(value, pd.DataFrame) else None


def _top(table: pd.DataFrame, n: int = 15) -> pd.DataFrame:
    if "padj" in table.columns:
        table = table.sort_values(["padj", "pvalue"] if "pvalue" in table.columns else ["padj"])
    return table.head(n)


def _overview(adata: AnnData, cfg: dict[str, Any]) -> str:
    sample_key = cfg.get("sample_key", Defaults.SAMPLE_KEY)
    condition_key = cfg.get("condition_key", Defaults.CONDITION_KEY)
    cell_type_key = cfg.get("cell_type_key", Defaults.CELL_TYPE_KEY)
    parts = [_html.paragraph(f"{adata.n_obs:,} cells x {adata.n_vars:,} genes.")]
    if sample_key in adata.obs and condition_key in adata.obs:
        samples = adata.obs[[sample_key, condition_key]].astype(str).drop_duplicates()
        per_condition = samples[condition_key].value_counts().rename("samples").to_frame()
        parts.append(_html.table(per_condition, index=True))
    if cell_type_key in adata.obs and condition_key in adata.obs:
        counts = pd.crosstab(adata.obs[cell_type_key].astype(str), adata.obs[condition_key].astype(str))
        parts.append(_html.table(counts, index=True, max_rows=40))
    return "".join(parts)


def _scores_section(adata: AnnData, cfg: dict[str, Any]) -> str:
    from hcctme import pl

    cell_type_key = cfg.get("cell_type_key", Defaults.CELL_TYPE_KEY)
    info = adata.uns.get(Keys.SCORES, {})
    body = _html.paragraph(
        f"Method {info.get('method', '?')}; {adata.obsm[Keys.SCORES].shape[1]} signatures scored; "
        f"library {info.get('library_version', '?')}."
    )
    if cell_type_key in adata.obs:
        states = [c for c in adata.obsm[Keys.SCORES].columns if not str(c).startswith("MARKER_")][:40]
        body += _html.figure(_figure_of(pl.scores(adata, cell_type_key, states, kind="heatmap", show=False)),
                             alt="mean signature score per cell type")
    return body


def _states_section(adata: AnnData, cfg: dict[str, Any]) -> str:
    from hcctme import pl

    sample_key = cfg.get("sample_key", Defaults.SAMPLE_KEY)
    condition_key = cfg.get("condition_key", Defaults.CONDITION_KEY)
    counts = adata.obs[Keys.STATE].astype(str).value_counts().rename("cells").to_frame()
    fig = pl.states(adata, sample_key=sample_key, condition_key=condition_key, show=False)
    return _html.figure(_figure_of(fig), alt="state composition per patient") + _html.table(counts, index=True)


def _compare_section(adata: AnnData) -> str:
    from hcctme.pipeline import COMPARE_KEYS

    body = ""
    titles = {"composition": "States within their cell type (CLR composition)",
              "scores": "Signature scores per cell type", "genes": "Genes (pseudobulk PyDESeq2)"}
    for features, key in COMPARE_KEYS.items():
        table = _table(adata, key)
        if table is None:
            continue
        n_sig = int((table["padj"] < 0.1).sum()) if "padj" in table else 0
        body += f"<h3>{titles[features]}</h3>" + _html.paragraph(
            f"{len(table)} tests; {n_sig} with padj < 0.1 (samples are the unit of replication)."
        ) + _html.table(_top(table))
    ta = _table(adata, Keys.TA_RESPONSE, part="compare")
    if ta is not None:
        body += "<h3>Atezolizumab + bevacizumab (T+A) response signatures</h3>" + _html.table(_top(ta))
    return body or _html.paragraph("No comparison was run.", note=True)


def _crosstalk_section(adata: AnnData) -> str:
    body = ""
    diff = _table(adata, Keys.CROSSTALK_DIFF)
    pooled = _table(adata, Keys.CROSSTALK)
    if diff is not None:
        body += "<h3>Differential crosstalk (patient level)</h3>" + _html.table(_top(diff))
    elif pooled is not None:
        body += "<h3>Top interactions</h3>" + _html.table(pooled.head(20))
    return body or _html.paragraph("Crosstalk was not run.", note=True)


def _tib_section(adata: AnnData) -> str:
    table = _table(adata, Keys.TIB)
    if table is None:
        return _html.paragraph("No spatial coordinates: the tumour immune barrier was not measured.", note=True)
    return _html.table(table, index=True, max_rows=50)


def _profile_section(adata: AnnData) -> str:
    from hcctme import pl

    table = _table(adata, Keys.PROFILE)
    if table is None:
        return _html.paragraph("The resistance profile was not computed.", note=True)
    fig = _figure_of(pl.resistance_profile(adata, show=False))
    active = table[table["active"]] if "active" in table.columns else table
    return _html.figure(fig, alt="resistance profile heatmap") + _html.table(active, max_rows=40)


def _parameters(adata: AnnData) -> str:
    from hcctme import __version__

    run = adata.uns.get("hcctme_run", {})
    rows = [("hcctme version", __version__)]
    info = adata.uns.get(Keys.SCORES, {})
    if isinstance(info, dict) and "library_version" in info:
        rows.append(("signature library", str(info["library_version"])))
    for key, value in _run_config(adata).items():
        rows.append((f"config.{key}", str(value)))
    for key, value in (run.get("skipped", {}) if isinstance(run, dict) else {}).items():
        rows.append((f"skipped.{key}", str(value)))
    for key, value in (run.get("timings_s", {}) if isinstance(run, dict) else {}).items():
        rows.append((f"time.{key} (s)", str(value)))
    return _html.table(pd.DataFrame(rows, columns=["parameter", "value"]), max_rows=200)


def build(adata: AnnData, path: str | Path | None = None, *, title: str = "hcctme resistance report") -> Path | str:
    """Build the HTML report of a run.

    Parameters
    ----------
    adata
        The AnnData after :func:`hcctme.pipeline.run` (or the individual tools); each section is
        shown when its results are present.
    path
        Where to write the report (atomically). When None the HTML text is returned.
    title
        Page title.

    Returns
    -------
    The path written, or the HTML text when ``path`` is None.
    """
    _validate.anndata(adata)
    _validate.scores(adata)
    cfg = _run_config(adata)
    sections = [("overview", "Cohort overview", _overview(adata, cfg)),
                ("scores", "Signature scores per cell type", _scores_section(adata, cfg))]
    if Keys.STATE in adata.obs:
        sections.append(("states", "Resistance cell states per patient", _states_section(adata, cfg)))
    sections += [
        ("compare", "Responders versus resistors", _compare_section(adata)),
        ("crosstalk", "Ligand-receptor crosstalk on resistance axes", _crosstalk_section(adata)),
        ("tib", "Spatial tumour immune barrier", _tib_section(adata)),
        ("profile", "Per-patient resistance profile and therapies", _profile_section(adata)),
        ("parameters", "Parameters and versions", _parameters(adata)),
    ]
    stamp = _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    text = _html.page(title, f"Generated {stamp}", sections)
    if path is None:
        return text
    written = _files.write_text(text, path)
    logger.info("report written to %s", written)
    return written
