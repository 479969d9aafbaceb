"""``pl.scores``: mean signature scores per group, as a dotplot or heatmap (scanpy look)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import numpy as np
import pandas as pd
from anndata import AnnData
from matplotlib.axes import Axes

from hcctme import _validate, get
from hcctme._constants import Keys, Suffix
from hcctme.pl._utils import common_arguments, finish, panels

KINDS = ("dotplot", "heatmap")


def score_summary(adata: AnnData, groupby: str, signatures: Sequence[str] | None = None, *,
                  key: str = Keys.SCORES) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Per group: mean score (groups x signatures) and fraction of cells with a score above 0."""
    scores = get.scores(adata, key)
    groups = _validate.obs_column(adata, groupby, purpose="groups to summarise scores by")
    signatures = _validate.names(signatures, name="signatures")
    if signatures is None:
        signatures = list(scores.columns)
    if not signatures:
        raise ValueError("no signatures to plot: pass signature ids or leave signatures=None")
    missing = [s for s in signatures if s not in scores.columns]
    if missing:
        raise KeyError(
            f"signature(s) {missing} are not in adata.obsm[{key!r}]; scored signatures: "
            f"{_validate._preview(scores.columns)} (left-out signatures are listed in "
            f"adata.uns[{key + Suffix.PARAMS!r}]['dropped'])"
        )
    frame = scores[signatures].astype(np.float64)
    order = groups.cat.categories if isinstance(groups.dtype, pd.CategoricalDtype) else pd.unique(groups)
    keys = pd.Categorical(groups.to_numpy(), categories=order)
    grouped = frame.groupby(keys, observed=True)
    means = grouped.mean()
    fraction = (frame > 0).groupby(keys, observed=True).mean()
    means.index = means.index.astype(str)
    fraction.index = fraction.index.astype(str)
    return means, fraction


@common_arguments
def scores(
    adata: AnnData,
    groupby: str,
    signatures: Sequence[str] | None = None,
    *,
    kind: Literal["dotplot", "heatmap"] = "dotplot",
    key: str = Keys.SCORES,
    standard_scale: Literal["var"] | None = None,
    cmap: str = "Reds",
    ax: Axes | None = None,
    show: bool | None = None,
    save: str | None = None,
) -> Axes | None:
    """Mean signature scores per group of cells.

    Parameters
    ----------
    adata
        AnnData scored by :func:`hcctme.tl.score`.
    groupby
        ``obs`` column with the groups (cell types, states, samples ...): one row per group.
    signatures
        Signature ids to show (columns, in this order); default: every scored signature.
    kind
        ``"dotplot"``: colour = mean score, dot size = fraction of the group's cells with a score
        above 0. ``"heatmap"``: colour = mean score.
    key
        ``key_added`` of :func:`hcctme.tl.score`.
    standard_scale
        ``"var"`` rescales each signature's group means to [0, 1] (as scanpy's dotplot does), so
        signatures with different ranges can be compared.
    cmap
        Matplotlib colour map.
    ax
        Axes to draw in (a new figure otherwise).
    show
        ``True`` calls ``plt.show()`` and returns None; otherwise the Axes is returned.
    save
        Path the figure is written to.

    Returns
    -------
    The matplotlib Axes (unless ``show=True``).
    """
    _validate.choice(kind, KINDS, name="kind")
    if standard_scale not in (None, "var"):
        raise ValueError(f"standard_scale={standard_scale!r}; use 'var' or None")
    means, fraction = score_summary(adata, groupby, signatures, key=key)
    colour = means.copy()
    label = "mean score"
    if standard_scale == "var":
        lo, hi = colour.min(axis=0), colour.max(axis=0)
        colour = (colour - lo) / (hi - lo).replace(0, 1)
        label = "mean score\n(scaled per signature)"
    n_groups, n_sigs = colour.shape
    if ax is None:
        width = 1.6 + 0.38 * n_sigs + (1.2 if kind == "dotplot" else 0.6)
        height = 1.4 + 0.34 * n_groups + 0.08 * max(len(s) for s in colour.columns)
        ax = panels(figsize=(max(width, 3.0), max(height, 2.5)))[0, 0]
    fig = ax.figure
    values = colour.to_numpy()
    vmin, vmax = float(np.nanmin(values)), float(np.nanmax(values))
    if kind == "heatmap":
        image = ax.imshow(values, aspect="auto", cmap=cmap, vmin=vmin, vmax=vmax, interpolation="nearest")
        fig.colorbar(image, ax=ax, label=label, shrink=0.8)
    else:
        yy, xx = np.meshgrid(np.arange(n_groups), np.arange(n_sigs), indexing="ij")
        sizes = fraction.to_numpy()
        image = ax.scatter(xx.ravel(), yy.ravel(), s=20 + 230 * sizes.ravel(), c=values.ravel(), cmap=cmap,
                           vmin=vmin, vmax=vmax, edgecolors="0.3", linewidths=0.4)
        fig.colorbar(image, ax=ax, label=label, shrink=0.6)
        for frac in (0.25, 0.5, 1.0):
            ax.scatter([], [], s=20 + 230 * frac, c="0.6", edgecolors="0.3", linewidths=0.4,
                       label=f"{frac:.0%}")
        ax.legend(title="cells > 0", loc="upper left", bbox_to_anchor=(1.25, 1.0), frameon=False,
                  labelspacing=1.1, borderpad=0.6)
        ax.set_xlim(-0.6, n_sigs - 0.4)
        ax.set_ylim(n_groups - 0.4, -0.6)
        ax.grid(False)
    ax.set_xticks(np.arange(n_sigs))
    ax.set_xticklabels(colour.columns, rotation=90)
    ax.set_yticks(np.arange(n_groups))
    ax.set_yticklabels(colour.index)
    ax.set_ylabel(groupby)
    method = get.params(adata, key).get("method", "") if key + Suffix.PARAMS in adata.uns else ""
    ax.set_title(f"{method} scores by {groupby}" if method else f"scores by {groupby}")
    for side in ("top", "right"):
        ax.spines[side].set_visible(kind == "heatmap")
    return finish(ax, show=show, save=save)
