"""Plots of :func:`hcctme.tl.crosstalk` results: dotplot, sender x receiver axis heatmap, strip plot."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
from anndata import AnnData
from matplotlib.axes import Axes

from hcctme import _validate, get
from hcctme._constants import Defaults, Keys
from hcctme.kb import _axes as kb_axes
from hcctme.pl._utils import common_arguments, finish, panels
from hcctme.tl import _crosstalk_stats as cstats

_ARROW = " \u2192 "
KINDS = ("dotplot", "heatmap", "strip")


def _in_axis_orientation(rows: pd.DataFrame, wanted: list[str] | None) -> pd.DataFrame:
    """Swap source and target of the rows that match every axis read (``wanted``, or all of theirs) only reversed."""
    def reversed_row(ligand: str, receptor: str, axes: str) -> bool:
        ids = [a for a in axes.split(";") if wanted is None or a in wanted]
        return bool(ids) and all(kb_axes.reversed_only(ligand, receptor, a) for a in ids)

    flip = np.array([reversed_row(str(lig), str(rec), str(axes)) for lig, rec, axes in
                     zip(rows["ligand_complex"], rows["receptor_complex"], rows["axis"], strict=True)], dtype=bool)
    if not flip.any():
        return rows
    rows = rows.copy()
    source, target = rows["source"].astype(str).to_numpy(), rows["target"].astype(str).to_numpy()
    rows["source"] = np.where(flip, target, source)
    rows["target"] = np.where(flip, source, target)
    return rows


def _symmetric_limit(effects: np.ndarray) -> float:
    """The colour scale's half-width: the largest finite |effect|, 1 where there is none (or all are 0)."""
    finite = np.abs(effects[np.isfinite(effects)])
    return float(finite.max()) if finite.size and finite.max() > 0 else 1.0


def _interaction_label(row: pd.Series | Any) -> str:
    return f"{row['ligand_complex']}{_ARROW}{row['receptor_complex']}"


def _pair_label(row: pd.Series | Any) -> str:
    return f"{row['source']}{_ARROW}{row['target']}"


def dotplot(adata: AnnData, *, key: str = Keys.CROSSTALK, n_top: int = 20, axes_only: bool = False,
            condition: str | None = None, direction: str | None = None, cmap: str = "RdBu_r",
            figsize: tuple[float, float] | None = None, ax: Axes | None = None) -> Axes:
    """Top differential interactions: sender -> receiver (x) by ligand -> receptor (y).

    Dot size is -log10(p-value), colour the effect (condition minus reference); axis interactions
    are labelled with their kb axis. ``direction`` ("up"/"down") keeps one sign of effect. An
    interaction tested on detection alone (not detected in one condition: no strength effect) is an
    open circle edged in its direction's colour (the scale's middle for "none").
    """
    from matplotlib import colormaps
    from matplotlib.colors import TwoSlopeNorm

    n_top = _validate.positive_int(n_top, name="n_top")
    diff = get.crosstalk(adata, key, differential=True)
    table = diff[diff["tested"]]
    if condition is not None:
        table = table[table["condition"] == condition]
    elif table["condition"].nunique() > 1:
        table = table[table["condition"] == table["condition"].iloc[0]]
    if axes_only:
        table = table[table["axis"].notna()]
    if direction is not None:
        if direction not in ("up", "down"):
            raise ValueError(f"direction must be 'up', 'down' or None, got {direction!r}")
        table = table[table["direction"] == direction]
    if table.empty:
        raise ValueError("no tested interaction to plot (check axes_only/direction/condition)")
    top = table.head(n_top).copy()
    top["y"] = [_interaction_label(r) + (f"  [{r['axis']}]" if isinstance(r["axis"], str) else "")
                for _, r in top.iterrows()]
    top["x"] = [_pair_label(r) for _, r in top.iterrows()]
    ys = list(dict.fromkeys(top["y"]))[::-1]
    xs = list(dict.fromkeys(top["x"]))
    size = -np.log10(top["pvalue"].clip(lower=1e-300)).to_numpy()
    figsize = figsize or (max(4.0, 0.6 * len(xs) + 3.5), max(3.0, 0.32 * len(ys) + 1.5))
    ax = panels(ax=ax, figsize=figsize)[0, 0]
    fig = ax.figure
    x = np.array([xs.index(v) for v in top["x"]])
    y = np.array([ys.index(v) for v in top["y"]])
    measured = top["effect"].notna().to_numpy()
    lim = _symmetric_limit(top["effect"].to_numpy(dtype=float))
    norm = TwoSlopeNorm(0.0, -lim, lim)
    sc = ax.scatter(x[measured], y[measured], s=30 + 60 * size[measured], c=top["effect"][measured], cmap=cmap,
                    norm=norm, edgecolors="0.3", linewidths=0.5)
    if not measured.all():  # detection-only tests: no strength effect to colour by
        side = top["direction"][~measured].map({"down": 0.0, "up": 1.0}).fillna(0.5).to_numpy()  # "none": neutral
        colours = colormaps.get_cmap(cmap)(side)
        ax.scatter(x[~measured], y[~measured], s=30 + 60 * size[~measured], facecolors="none", edgecolors=colours,
                   linewidths=1.5, label="detection only")
    ax.set_xticks(range(len(xs)), xs, rotation=60, ha="right")
    ax.set_yticks(range(len(ys)), ys)
    ax.set_xlim(-0.7, len(xs) - 0.3)
    ax.set_ylim(-0.7, len(ys) - 0.3)
    ax.grid(True, color="0.92", zorder=0)
    ax.set_axisbelow(True)
    ax.set_xlabel(f"sender{_ARROW}receiver")
    ax.set_ylabel(f"ligand{_ARROW}receptor")
    first = top.iloc[0]
    ax.set_title(f"{first['condition']} vs {first['reference']}: top {len(top)} interactions")
    fig.colorbar(sc, ax=ax, shrink=0.6, label="effect")
    for p in (0.05, 0.01):
        ax.scatter([], [], s=30 + 60 * -np.log10(p), c="0.6", label=f"p = {p:g}")
    ax.legend(loc="upper left", bbox_to_anchor=(1.25, 1.0), frameon=False, title="-log10 p")
    fig.tight_layout()
    return ax


def heatmap(adata: AnnData, *, key: str = Keys.CROSSTALK, axis: str | Sequence[str] | None = None,
            value: str = "strength", condition: str | None = None, cmap: str | None = None,
            figsize: tuple[float, float] | None = None, ax: Axes | None = None) -> Axes:
    """Sender x receiver heatmap of resistance-axis activity.

    ``value="strength"``: the summed ``lr_means`` of the axis interactions between each sender and receiver,
    averaged over the samples in which liana reports them (a pair reported in one sample of eight shows that
    sample's strength, not an eighth of it). ``value="effect"`` (needs a differential run): summed effect
    (condition minus reference) of those interactions in one contrast: ``condition``'s, by default that of the
    table's first tested interaction (as :func:`dotplot`; effects of different contrasts are never added).
    ``axis`` restricts to some kb axes. Senders and receivers are the axis's: a resource row that matches its
    axis only reversed (LIANA's TIGIT -> PVR for the kb's PVR -> TIGIT) is drawn from its target to its source.
    """
    from matplotlib.colors import TwoSlopeNorm

    if value not in ("strength", "effect"):
        raise ValueError(f"value must be 'strength' or 'effect', got {value!r}")
    wanted = _validate.names(axis, name="axis")

    def axis_rows(frame: pd.DataFrame) -> pd.DataFrame:
        rows = frame[frame["axis"].notna()]
        if wanted is not None:
            hit = rows["axis"].astype(str).str.split(";").apply(lambda ids: any(a in wanted for a in ids))
            rows = rows[hit.to_numpy()]
        return _in_axis_orientation(rows, wanted)

    if value == "strength":
        table = axis_rows(get.crosstalk(adata, key))
        sample_key = get.params(adata, key)["params"].get("sample_key")
        if table.empty:
            raise ValueError(f"no interaction of axis {wanted or 'any'} in the crosstalk table")
        by = ([sample_key] if sample_key else []) + ["source", "target"]
        summed = table.groupby(by, observed=True)["lr_means"].sum().reset_index()
        mat = summed.groupby(["source", "target"], observed=True)["lr_means"].mean().unstack("target")
        label = "summed lr_means (mean over the samples reporting the pair)"
        norm = None
        cmap = cmap or "viridis"
    else:
        diff = get.crosstalk(adata, key, differential=True)
        if condition is None and len(diff):  # the contrast of the first tested row, as dotplot shows
            condition = str(_tested_or_all(diff)["condition"].iloc[0])
        table = axis_rows(diff)
        table = table[table["condition"].astype(str) == condition]
        if table.empty:
            raise ValueError(f"no interaction of axis {wanted or 'any'} in the differential table"
                             + (f" for condition {condition!r}" if condition is not None else ""))
        # min_count=1: a pair with no measured effect is blank, not a summed 0 ("no difference")
        mat = table.groupby(["source", "target"], observed=True)["effect"].sum(min_count=1).unstack("target")
        label = f"summed effect ({condition} vs {table['reference'].iloc[0]})"
        lim = _symmetric_limit(mat.to_numpy(dtype=float))
        norm = TwoSlopeNorm(0.0, -lim, lim)
        cmap = cmap or "RdBu_r"
    mat = mat.astype(float)
    figsize = figsize or (0.5 * mat.shape[1] + 3.5, 0.45 * mat.shape[0] + 2.0)
    ax = panels(ax=ax, figsize=figsize)[0, 0]
    fig = ax.figure
    im = ax.imshow(mat.to_numpy(), cmap=cmap, norm=norm, aspect="auto")
    ax.set_xticks(range(mat.shape[1]), [str(c) for c in mat.columns], rotation=60, ha="right")
    ax.set_yticks(range(mat.shape[0]), [str(i) for i in mat.index])
    ax.set_xlabel("receiver")
    ax.set_ylabel("sender")
    ax.set_title("axis activity" + (f": {', '.join(wanted)}" if wanted else " (all kb axes)"))
    fig.colorbar(im, ax=ax, shrink=0.7, label=label)
    fig.tight_layout()
    return ax


def _tested_or_all(diff: pd.DataFrame) -> pd.DataFrame:
    """The differential table's tested rows, or all of them where none was tested."""
    return diff[diff["tested"]] if diff["tested"].any() else diff


def _pick(diff: pd.DataFrame, interaction: Any) -> pd.Series:
    ids = list(cstats.ID_COLUMNS)
    tested = _tested_or_all(diff)
    if interaction is None:
        return tested.iloc[0]
    if isinstance(interaction, (int, np.integer)) and not isinstance(interaction, bool):
        if not -len(diff) <= interaction < len(diff):
            raise ValueError(f"interaction={int(interaction)} is not a row of the differential table "
                             f"({len(diff)} rows; read them with hcctme.get.crosstalk(adata, differential=True))")
        return diff.iloc[int(interaction)]
    if isinstance(interaction, dict):
        missing = [c for c in ids if c not in interaction]
        if missing:
            raise KeyError(f"interaction dict lacks {missing}; give all of {ids}")
        interaction = tuple(interaction[c] for c in ids)
    if isinstance(interaction, (tuple, list)) and len(interaction) == 4:
        hit = diff
        for col, val in zip(ids, interaction, strict=False):
            hit = hit[hit[col].astype(str) == str(val)]
        if hit.empty:
            raise KeyError(f"interaction {tuple(interaction)} (source, target, ligand, receptor) is not in the "
                           "differential table")
        return hit.iloc[0]
    raise TypeError("interaction must be None (top tested), a row position, a (source, target, ligand_complex, "
                    f"receptor_complex) tuple or a dict of those, got {interaction!r}")


def strip(adata: AnnData, *, key: str = Keys.CROSSTALK, interaction: Any = None,
          palette: dict[str, str] | None = None, figsize: tuple[float, float] = (3.6, 3.6),
          random_state: int = Defaults.SEED, ax: Axes | None = None) -> Axes:
    """Per-patient strength of one interaction by condition (one dot per sample).

    ``interaction``: None (top tested), a row position of the differential table, or a
    ``(source, target, ligand_complex, receptor_complex)`` tuple.
    """
    provenance = get.params(adata, key)  # groups per sample and sample conditions are crosstalk's provenance
    row = _pick(get.crosstalk(adata, key, differential=True), interaction)
    params = provenance["params"]
    sample_key = params["sample_key"]
    groups_long = provenance["groups"]
    groups = {s: list(g["group"]) for s, g in groups_long.groupby("sample", observed=True)}
    samples = list(dict.fromkeys(groups_long["sample"]))
    table = get.crosstalk(adata, key)
    mask = np.ones(len(table), dtype=bool)
    for col in cstats.ID_COLUMNS:
        mask &= (table[col].astype(str) == str(row[col])).to_numpy()
    matrix, _, _ = cstats.strength_matrix(table[mask], sample_key=sample_key, samples=samples, groups=groups,
                                          strength=params.get("strength", "lr_means"))
    values = pd.Series(dtype=float) if matrix.empty else matrix.iloc[0].dropna()  # strength where detected
    cond = provenance["conditions"].set_index("sample")["condition"].astype(str)
    levels = [row["reference"], row["condition"]]
    rng = np.random.default_rng(_validate.random_state(random_state))
    colours = palette or {levels[0]: "#4477aa", levels[1]: "#cc6677"}
    ax = panels(ax=ax, figsize=figsize)[0, 0]
    fig = ax.figure
    for i, level in enumerate(levels):
        vals = values[cond.reindex(values.index) == level].to_numpy(dtype=float)
        ax.boxplot([vals], positions=[i], widths=0.5, showfliers=False,
                   medianprops={"color": "0.2"}, boxprops={"color": "0.5"}, whiskerprops={"color": "0.5"},
                   capprops={"color": "0.5"})
        ax.scatter(i + rng.uniform(-0.12, 0.12, len(vals)), vals, color=colours.get(level, "0.4"), s=28,
                   zorder=3, edgecolors="white", linewidths=0.5)
    ax.set_xticks([0, 1], levels)
    ax.set_ylabel(f"{params.get('strength', 'lr_means')} per {sample_key}")
    p = row["pvalue"]
    ptxt = f"p = {p:.2g}" if pd.notna(p) else "not tested"
    etxt = (f"effect {row['effect']:.2f}" if pd.notna(row["effect"]) else
            f"detection {row['detection_effect']:+.2f} (no strength effect)" if pd.notna(p) else "no effect")
    ax.set_title(f"{_pair_label(row)}\n{_interaction_label(row)}\n{etxt}, {ptxt}", fontsize=9)
    fig.tight_layout()
    return ax


@common_arguments
def crosstalk(adata: AnnData, *, kind: str = "dotplot", key: str = Keys.CROSSTALK, ax: Axes | None = None,
              show: bool = False, save: str | None = None, **kwargs: Any) -> Axes | None:
    """Plot :func:`hcctme.tl.crosstalk` results.

    Parameters
    ----------
    adata
        AnnData the crosstalk results were written to.
    kind
        ``"dotplot"``: top differential interactions (sender -> receiver by ligand -> receptor;
        size -log10 p, colour effect); ``"heatmap"``: sender x receiver activity of the resistance
        axes; ``"strip"``: per-patient strength of one interaction by condition.
    key
        ``key_added`` of ``tl.crosstalk``.
    ax
        Draw into this Axes.
    show, save
        Call ``plt.show()`` (and return None); save the figure to this path.
    **kwargs
        Passed to :func:`dotplot` (n_top, axes_only, condition, direction, cmap, figsize),
        :func:`heatmap` (axis, value, condition, cmap, figsize) or :func:`strip` (interaction,
        palette, figsize, random_state).

    Returns
    -------
    Axes or None
        The Axes, unless ``show=True``.
    """
    if kind not in KINDS:
        raise ValueError(f"kind={kind!r} is not supported; choose one of {list(KINDS)}")
    fn = {"dotplot": dotplot, "heatmap": heatmap, "strip": strip}[kind]
    return finish(fn(adata, key=key, ax=ax, **kwargs), show=show, save=save)
