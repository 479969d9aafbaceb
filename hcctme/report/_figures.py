"""Interactive plotly figures of the report (hover for values, zoom, toggle legend entries)."""

from __future__ import annotations

import html
from typing import Any

import numpy as np
import pandas as pd

_MAX_TICK_LABELS = 60  # more patients than this: names on hover only
_LAYOUT = {"template": "plotly_white", "margin": {"l": 60, "r": 20, "t": 40, "b": 60}, "font": {"size": 12}}


def _text(value: Any) -> str:
    """A label as plotly.js shows it verbatim: it reads <b>, <br>, <a ...> in text as markup, and entities back."""
    return html.escape(str(value), quote=False)


def composition(fractions: pd.DataFrame, conditions: pd.Series | None):
    """Stacked bars of each patient's state composition (patients x states fractions)."""
    import plotly.graph_objects as go

    order = list(fractions.index)
    if conditions is not None:
        order = sorted(order, key=lambda s: (str(conditions.get(s, "")), str(s)))
    labels = [_text(f"{s} ({conditions.get(s, '')})" if conditions is not None else s) for s in order]
    fig = go.Figure()
    for state in fractions.columns:
        fig.add_bar(x=labels, y=fractions.loc[order, state].to_numpy(), name=_text(state),
                    hovertemplate="%{x}<br>" + _text(state) + ": %{y:.2f}<extra></extra>")
    fig.update_layout(barmode="stack", title="State composition per patient (fraction of the patient's cells)",
                      yaxis_title="fraction of the patient's cells", height=460, legend={"font": {"size": 10}},
                      xaxis={"showticklabels": len(labels) <= _MAX_TICK_LABELS}, **_LAYOUT)
    return fig


def _thin(frame: pd.DataFrame, max_points: int) -> pd.DataFrame:
    """The ``max_points`` rows to draw: the smaller p-values first, then an even sample of the rest."""
    if len(frame) <= max_points:
        return frame
    ranked = frame.sort_values("pvalue")
    top = max_points * 2 // 3
    rest = ranked.iloc[top:]
    step = np.linspace(0, len(rest) - 1, max_points - top).round().astype(int)
    return pd.concat([ranked.iloc[:top], rest.iloc[np.unique(step)]])


def volcano(table: pd.DataFrame, *, title: str, alpha: float, max_points: int):
    """Effect against -log10 p-value of a comparison table; points under ``alpha`` (padj) highlighted.

    Tables longer than ``max_points`` are thinned (smallest p-values kept, the rest evenly sampled).
    """
    import plotly.graph_objects as go

    tested = table.dropna(subset=["effect", "pvalue"])
    frame = _thin(tested, max_points)
    if len(frame) < len(tested):
        title += f" ({len(frame):,} of {len(tested):,} tests drawn: smallest p-values and an even sample)"
    label = frame["feature"].astype(str)
    if "group" in frame.columns:
        label = label + " | " + frame["group"].astype(str)
    label = label.map(_text)
    padj = frame["padj"] if "padj" in frame.columns else pd.Series(np.nan, index=frame.index)
    hit = (padj < alpha).to_numpy()
    effect = frame["effect"].to_numpy(dtype=float).round(4)
    logp = -np.log10(frame["pvalue"].to_numpy(dtype=float).clip(1e-300)).round(3)
    fig = go.Figure()
    for mask, name, color in ((~hit, f"padj >= {alpha}", "#9aa5b1"), (hit, f"padj < {alpha}", "#c0392b")):
        fig.add_scatter(x=effect[mask], y=logp[mask], mode="markers", name=name,
                        marker={"color": color, "size": 7, "opacity": 0.8}, text=label.to_numpy()[mask],
                        customdata=padj.to_numpy(dtype=float)[mask].round(4),
                        hovertemplate="%{text}<br>effect %{x:.3g}<br>padj %{customdata:.3g}<extra></extra>")
    fig.update_layout(title={"text": title, "font": {"size": 14}}, xaxis_title="effect (other minus reference)",
                      yaxis_title="-log10 p-value", height=420, **_LAYOUT)
    return fig


def profile_heatmap(profile: pd.DataFrame):
    """Axis activity (z) per patient; hover shows whether the axis is active and its evidence count."""
    import plotly.graph_objects as go

    wide = profile.pivot_table(index="axis", columns="sample", values="activity", aggfunc="first", sort=False)
    if "condition" in profile.columns:
        cond = profile.drop_duplicates("sample").set_index("sample")["condition"].astype(str)
        columns = sorted(wide.columns, key=lambda s: (cond.get(s, ""), str(s)))
        wide = wide[columns]
        xlabels = [_text(f"{s} ({cond.get(s, '')})") for s in columns]
    else:
        xlabels = [_text(s) for s in wide.columns]
    limit = float(np.nanmax(np.abs(wide.to_numpy()))) if np.isfinite(wide.to_numpy()).any() else 1.0

    def cells(column: str, fill: Any) -> np.ndarray:
        if column not in profile.columns:
            return np.full(wide.shape, fill, dtype=object)
        table = profile.pivot_table(index="axis", columns="sample", values=column, aggfunc="first", sort=False)
        return table.reindex(index=wide.index, columns=wide.columns).to_numpy(dtype=object)

    hover = np.dstack([np.where(cells("active", False) == True, "active", "not active"),  # noqa: E712 (object array)
                       cells("n_evidence", "?")])
    fig = go.Figure(go.Heatmap(z=wide.to_numpy(), x=xlabels, y=[_text(a) for a in wide.index], colorscale="RdBu_r",
                               zmin=-limit, zmax=limit, colorbar={"title": "activity (z)"}, customdata=hover,
                               hovertemplate="%{y}<br>%{x}<br>activity %{z:.2f}, %{customdata[0]}<br>"
                                             "%{customdata[1]} piece(s) of evidence<extra></extra>"))
    fig.update_layout(title="Resistance axis activity per patient", height=max(320, 28 * len(wide) + 140),
                      xaxis={"showticklabels": len(xlabels) <= _MAX_TICK_LABELS}, **_LAYOUT)
    return fig


def score_heatmap(means: pd.DataFrame):
    """Mean signature score per cell type (cell types x signatures)."""
    import plotly.graph_objects as go

    fig = go.Figure(go.Heatmap(z=means.to_numpy(), x=[_text(c) for c in means.columns],
                               y=[_text(i) for i in means.index], colorscale="Viridis",
                               colorbar={"title": "mean score"},
                               hovertemplate="%{y}<br>%{x}<br>mean %{z:.3f}<extra></extra>"))
    fig.update_layout(title="Mean signature score per cell type", height=max(360, 24 * len(means) + 220),
                      xaxis={"tickangle": -45}, **_LAYOUT)
    return fig
