"""Spatial map of one sample with the tumour immune barrier highlighted (:func:`hcctme.tl.tib`)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

import matplotlib.pyplot as plt
import numpy as np
from anndata import AnnData
from matplotlib.axes import Axes

from hcctme import _validate, get
from hcctme._constants import Keys, Suffix
from hcctme.pl._utils import common_arguments, finish, panels

COLOURS = {"other": "#d9d9d9", "tumour": "#f4a582", "t_cell": "#2166ac", "barrier": "#7b3294"}


def _labels_from_params(params: Mapping[str, Any], role: str) -> Any:
    """Turn the label record tl.tib stored back into a ``*_labels`` argument."""
    record = (params.get("labels") or {}).get(role)
    if not record:
        return None
    record = {str(k): [str(x) for x in np.atleast_1d(v)] for k, v in dict(record).items()}
    obsm_keys = [k for k in record if k.startswith("obsm[")]
    if obsm_keys:
        return record[obsm_keys[0]]
    return record


def _barrier_legend(labels: Any) -> str:
    """The barrier layer's legend: the default barrier states, or the labels the call used."""
    if labels is None:
        return "barrier (SPP1+ TAM / myCAF)"
    groups = labels.values() if isinstance(labels, Mapping) else [labels]
    values = [str(v) for group in groups for v in np.atleast_1d(group)]
    return f"barrier ({', '.join(values[:3])}{f' +{len(values) - 3}' if len(values) > 3 else ''})"


@common_arguments
def tib(
    adata: AnnData,
    sample: str,
    *,
    sample_key: str | None = None,
    key: str = Keys.TIB,
    state_key: str | None = None,
    barrier_labels: Any = None,
    tumour_labels: Any = None,
    t_cell_labels: Any = None,
    label_key: str | None = None,
    spatial_key: str | None = None,
    mode: Literal["cells", "spots"] | None = None,
    scores_key: str | None = None,
    size: float | None = None,
    ax: Axes | None = None,
    title: str | None = None,
    show: bool = False,
    save: str | None = None,
) -> Axes | None:
    """Draw one sample's spatial map with the tumour immune barrier highlighted.

    Cells mode: tumour cells (salmon), barrier cells (SPP1+ TAM / myCAF, purple, drawn on top), CD8
    T cells (blue), other cells (grey). Spot mode: spots coloured by the barrier proxy, tumour spots
    outlined in red. The title carries ``tib_score`` and ``t_exclusion`` with their p-values when
    :func:`hcctme.tl.tib` has stored its table under ``uns[key]``.

    Parameters default to those :func:`hcctme.tl.tib` stored in ``uns[key + "_params"]`` (sample key,
    mode, labels, coordinates), so ``pl.tib(adata, "P01")`` after ``tl.tib(...)`` draws what was
    measured. Without a stored run they follow :func:`hcctme.tl.tib`'s defaults.

    ``show=True`` calls ``plt.show()`` (and returns None); ``save`` writes the figure to that path.

    Parameters
    ----------
    adata
        Cells or spots with 2-D coordinates in ``obsm[spatial_key]`` and, usually, the results of
        :func:`hcctme.tl.tib` under ``key``.
    sample
        The sample to draw: a level of ``obs[sample_key]`` (compared as text).
    sample_key
        obs column naming the sample. Default: the one the stored run used, else ``"patient"``.
    key
        ``key_added`` of ``tl.tib``: its parameters (``uns[key + "_params"]``) give the defaults here, its table
        (``uns[key]``) the title's statistics. Neither is required.
    state_key
        obs column of :func:`hcctme.tl.call_states` that tells tumour, barrier and CD8 T cells apart in cells
        mode (as in ``tl.tib``). Default: the stored run's, else ``"hcctme_state"``.
    barrier_labels, tumour_labels, t_cell_labels
        Who is who, as in :func:`hcctme.tl.tib`. When none of them nor ``label_key`` is given, the labels the
        stored run used; giving any of the four drops all the stored labels (those not given take
        ``tl.tib``'s defaults).
    label_key
        obs column the plain label lists refer to (as in ``tl.tib``); it is not taken from the stored run.
    spatial_key
        obsm key of the coordinates. Default: the stored run's, else ``"spatial"``.
    mode
        ``"cells"`` or ``"spots"`` (as in ``tl.tib``). Default: the stored run's, else ``"cells"``.
    scores_key
        obsm key of the signature scores that give the spot proxies (spots mode). Default: the stored run's,
        else ``"hcctme_scores"``.
    size
        Marker size. Default: ``20000 / n`` clipped to [2, 60] for a sample of ``n`` cells or spots; in cells
        mode other cells are drawn at 0.6 x, T cells at 1.3 x and barrier cells at 1.6 x this size.
    ax
        Draw into this Axes (default: a new 5.5 x 5 figure).
    title
        Axes title. Default: the sample and, when ``uns[key]`` holds its row, its TIB score and T-cell
        exclusion with their p-values.
    show, save
        Call ``plt.show()`` (and return None); save the figure to this path.

    Returns
    -------
    Axes or None
        The Axes, unless ``show=True``.
    """
    from hcctme.tl import _tib as tl_tib

    _validate.anndata(adata)
    stored = get.params(adata, key) if key + Suffix.PARAMS in adata.uns else {}
    params = dict(stored.get("params") or {})
    given = any(x is not None for x in (barrier_labels, tumour_labels, t_cell_labels, label_key))
    sample_key = sample_key or params.get("sample_key") or "patient"
    spatial_key = spatial_key or params.get("spatial_key") or Keys.SPATIAL
    mode = mode or params.get("mode") or "cells"
    state_key = state_key or params.get("state_key") or Keys.STATE
    scores_key = scores_key or params.get("scores_key") or Keys.SCORES
    recorded = not given and bool(params)  # the call's labels, read on data that may lack some (a subset)
    if recorded:
        barrier_labels = _labels_from_params(stored, "barrier")
        tumour_labels = _labels_from_params(stored, "tumour")
        t_cell_labels = _labels_from_params(stored, "t_cell")
    samples = _validate.categorical_levels(adata, sample_key, purpose="sample_key")
    sample = _validate.level(samples, sample, key=sample_key, what="sample")
    coords = _validate.spatial(adata, spatial_key, samples=samples)
    mode = _validate.choice(mode, ("cells", "spots"), name="mode")
    if mode == "cells":
        masks, _ = tl_tib._cells_masks(adata, state_key=state_key, label_key=label_key, barrier=barrier_labels,
                                       tumour=tumour_labels, t_cell=t_cell_labels, absent_ok=recorded)
        weights = {k: v.astype(float) for k, v in masks.items()}
    else:
        weights, _ = tl_tib._spots_weights(adata, label_key=label_key, scores_key=scores_key,
                                           barrier=barrier_labels, tumour=tumour_labels, t_cell=t_cell_labels,
                                           absent_ok=recorded)
    sel = (samples == sample).to_numpy()
    xy = coords[sel]
    tumour = np.asarray(weights["tumour"], dtype=bool)[sel]
    barrier = np.asarray(weights["barrier"], float)[sel]
    t_cell = np.asarray(weights["t_cell"], float)[sel]

    ax = panels(ax=ax, figsize=(5.5, 5))[0, 0]
    n = max(int(sel.sum()), 1)
    s = size if size is not None else float(np.clip(20000 / n, 2, 60))
    if mode == "cells":
        other = ~tumour & (barrier == 0) & (t_cell == 0)
        layers = (
            ("other", other, s * 0.6, "other cells"),
            ("tumour", tumour, s, "tumour"),
            ("t_cell", ~tumour & (t_cell > 0) & (barrier == 0), s * 1.3, "CD8 T cells"),
            ("barrier", ~tumour & (barrier > 0), s * 1.6, _barrier_legend(barrier_labels)),
        )
        for name, mask, size_, label in layers:
            if mask.any():
                ax.scatter(xy[mask, 0], xy[mask, 1], s=size_, c=COLOURS[name], label=f"{label} ({int(mask.sum())})",
                           linewidths=0.3 if name == "barrier" else 0,
                           edgecolors="black" if name == "barrier" else "none",
                           rasterized=True)
        ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False, fontsize=8, markerscale=1.5)
    else:
        art = ax.scatter(xy[:, 0], xy[:, 1], s=s, c=barrier, cmap="Purples", vmin=0, vmax=1, rasterized=True)
        if tumour.any():
            ax.scatter(xy[tumour, 0], xy[tumour, 1], s=s, facecolors="none", edgecolors="#d6604d", linewidths=0.8,
                       label="tumour spots")
            ax.legend(loc="upper left", bbox_to_anchor=(1.25, 1.0), frameon=False, fontsize=8)
        plt.colorbar(art, ax=ax, fraction=0.046, pad=0.02, label="barrier proxy")
    ax.set_aspect("equal")
    ax.set_xticks([])
    ax.set_yticks([])
    if title is None:
        title = str(sample)
        table = get.tib(adata, key) if key in adata.uns else None
        if table is not None and sample in table.index.astype(str):
            row = table.loc[table.index.astype(str) == sample].iloc[0]
            title += (f"\nTIB {row['tib_score']:.2f} (p={row['tib_pvalue']:.3g}), "
                      f"T exclusion {row['t_exclusion']:.2f} (p={row['t_exclusion_pvalue']:.3g})")
    ax.set_title(title, fontsize=9)
    return finish(ax, show=show, save=save)
