"""Patients x axes heatmap of :func:`hcctme.tl.resistance_profile` with the therapies kb links."""

from __future__ import annotations

import re
from collections.abc import Sequence

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from anndata import AnnData
from matplotlib.axes import Axes
from matplotlib.colors import TwoSlopeNorm

from hcctme import _validate, get
from hcctme._constants import Keys
from hcctme.pl._utils import common_arguments, finish, panels

_REQUIRED = ("sample", "axis", "activity", "active")


def _table(data: AnnData | pd.DataFrame, key: str) -> pd.DataFrame:
    if isinstance(data, pd.DataFrame):
        table = data
    elif isinstance(data, AnnData):
        table = get.profile(data, key)
    else:
        raise TypeError(f"expected an AnnData or the resistance_profile table, got {type(data).__name__}")
    if not isinstance(table, pd.DataFrame):
        raise TypeError(f"{key!r} is not a resistance_profile table; re-run hcctme.tl.resistance_profile")
    missing = [c for c in _REQUIRED if c not in table.columns]
    if missing:
        raise ValueError(f"the table lacks column(s) {missing}; pass the table hcctme.get.profile reads")
    return table


def _short_therapies(text: str, n: int = 2) -> str:
    """The first ``n`` therapies as ``name [tier]``, ``+k`` more.

    The kb's items read ``name (note) [tier, trial | status | ...]``; a discontinued therapy is shown as
    ``name [tier, discontinued]``.
    """
    items = [t.strip() for t in str(text).split(";") if t.strip()]
    if not items:
        return "-"
    short = []
    for item in items:
        name, _, evidence = item.partition(" [")
        name = re.sub(r"\s*\([^)]*\)", "", name).strip() or name.strip()
        tier = evidence.split("|")[0].split(",")[0].rstrip("]").strip()
        if tier and "| discontinued" in evidence:
            tier += ", discontinued"
        short.append(f"{name} [{tier}]" if tier else name)
    return ", ".join(short[:n]) + (f" +{len(short) - n}" if len(short) > n else "")


@common_arguments
def resistance_profile(
    data: AnnData | pd.DataFrame,
    *,
    key: str = Keys.PROFILE,
    value: str = "activity",
    axes: Sequence[str] | None = None,
    samples: Sequence[str] | None = None,
    max_therapies: int = 2,
    vmax: float | None = None,
    cmap: str = "RdBu_r",
    ax: Axes | None = None,
    show: bool = False,
    save: str | None = None,
) -> Axes | None:
    """Heatmap of axis activity per patient, active cells marked, therapies written over each axis.

    Parameters
    ----------
    data
        AnnData with ``uns[key]`` or the table :func:`hcctme.get.profile` reads.
    key
        uns key of the table.
    value
        Column to colour by (``activity`` or one of ``z_scores``, ``z_states``, ``z_crosstalk``, ``z_spatial``).
    axes, samples
        Subsets (default: every axis with evidence in some sample; every sample, grouped by condition).
    max_therapies
        Therapies named per axis (the rest are counted).
    vmax
        Colour limit (symmetric around 0; default the largest absolute value).
    cmap
        Diverging colour map.
    ax
        Axes to draw on.
    show, save
        Call ``plt.show()`` (and return None); save the figure to this path.

    Returns
    -------
    The heatmap's Axes (patients are rows, axes columns; dots mark ``active``; a left strip shows the
    condition when the table has one).
    """
    table = _table(data, key)
    if value not in table.columns:
        raise ValueError(f"value={value!r} is not a column of the table; choose activity or a z_* column")
    max_therapies = _validate.positive_int(max_therapies, name="max_therapies", minimum=0)
    if vmax is not None and (isinstance(vmax, bool) or not isinstance(vmax, int | float | np.integer | np.floating)
                             or not 0 < vmax < np.inf):
        raise TypeError(f"vmax must be a positive number or None, got {vmax!r}")
    if axes is not None:
        axes = _validate.names(axes, name="axes")
        unknown = sorted(set(axes) - set(table["axis"]))
        if unknown:
            raise ValueError(f"unknown axis id(s) {unknown}; the table has {_preview(table['axis'])}")
        table = table[table["axis"].isin(axes)]
    if samples is not None:
        samples = [samples] if isinstance(samples, str) else [str(s) for s in samples]
        unknown = sorted(set(samples) - set(table["sample"].astype(str)))
        if unknown:
            raise ValueError(f"unknown sample(s) {unknown}")
        table = table[table["sample"].astype(str).isin(samples)]
    grid = table.pivot_table(index="sample", columns="axis", values=value, aggfunc="first", dropna=False)
    active = table.pivot_table(index="sample", columns="axis", values="active", aggfunc="first", dropna=False)
    axis_order = [a for a in pd.unique(table["axis"]) if a in grid.columns]
    if axes is None:
        axis_order = [a for a in axis_order if grid[a].notna().any()]
    if not axis_order:
        raise ValueError("no axis has evidence in these samples; nothing to draw")
    sample_order = list(pd.unique(table["sample"]))
    condition = None
    if "condition" in table.columns:
        condition = table.groupby("sample", sort=False)["condition"].first()
        sample_order = sorted(sample_order, key=lambda s: (str(condition[s]), sample_order.index(s)))
    grid = grid.reindex(index=sample_order, columns=axis_order)
    active = active.reindex(index=sample_order, columns=axis_order).fillna(False).astype(bool)
    therapies = table.groupby("axis", sort=False)["therapies"].first() if "therapies" in table.columns else None

    values = grid.to_numpy(dtype=float)
    lim = vmax if vmax is not None else float(np.nanmax(np.abs(values))) if np.isfinite(values).any() else 1.0
    lim = max(lim, 1e-6)
    ax = panels(ax=ax, figsize=(2.5 + 0.45 * len(axis_order), 2.5 + 0.28 * len(sample_order)))[0, 0]
    masked = np.ma.masked_invalid(values)
    cm = plt.get_cmap(cmap).with_extremes(bad="#f0f0f0")
    image = ax.imshow(masked, aspect="auto", cmap=cm, norm=TwoSlopeNorm(vcenter=0.0, vmin=-lim, vmax=lim),
                      interpolation="nearest")
    rows, cols = np.nonzero(active.to_numpy())
    ax.scatter(cols, rows, s=12, c="black", marker="o", label="active")
    ax.set_xticks(range(len(axis_order)))
    ax.set_xticklabels(axis_order, rotation=90, fontsize=8)
    labels = [f"{s} ({condition[s]})" if condition is not None else str(s) for s in sample_order]
    ax.set_yticks(range(len(sample_order)))
    ax.set_yticklabels(labels, fontsize=8)
    if therapies is not None:
        top = ax.secondary_xaxis("top")
        top.set_xticks(range(len(axis_order)))
        top.set_xticklabels([_short_therapies(therapies.get(a, ""), max_therapies) for a in axis_order],
                            rotation=90, fontsize=7)
        top.set_xlabel("therapies (kb)", fontsize=8)
    if condition is not None:
        levels = sorted(set(condition.astype(str)))
        palette = dict(zip(levels, plt.get_cmap("tab10").colors, strict=False))
        for i, s in enumerate(sample_order):
            ax.add_patch(plt.Rectangle((-1.1, i - 0.5), 0.5, 1.0, color=palette[str(condition[s])], clip_on=False))
    plt.colorbar(image, ax=ax, fraction=0.04, pad=0.02, label=value)
    ax.set_xlabel("resistance axis")
    ax.legend(loc="upper left", bbox_to_anchor=(1.12, -0.02), frameon=False, fontsize=7)
    return finish(ax, show=show, save=save)


def _preview(values: pd.Series) -> str:
    vals = list(pd.unique(values.astype(str)))
    return ", ".join(vals[:10]) + (" ..." if len(vals) > 10 else "")
