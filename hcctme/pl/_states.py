"""``pl.states``: state composition per sample and state calls on the UMAP."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
from anndata import AnnData

from hcctme import _validate
from hcctme._constants import Defaults, Keys
from hcctme.pl._utils import finish

UNASSIGNED_COLOUR = "#d9d9d9"
KINDS = ("bar", "umap")


def _palette(states: Sequence[str], palette: Mapping[str, str] | None) -> dict[str, str]:
    import matplotlib as mpl

    cmap = mpl.colormaps["tab20"] if len(states) > 10 else mpl.colormaps["tab10"]
    # greys are reserved for "unassigned"
    hues = [c for c in (mpl.colors.to_hex(cmap(i)) for i in range(cmap.N)) if len({c[1:3], c[3:5], c[5:7]}) > 1]
    colours = {s: hues[i % len(hues)] for i, s in enumerate(states)}
    colours[Defaults.UNASSIGNED] = UNASSIGNED_COLOUR
    if palette:
        colours.update(palette)
    return colours


def composition(adata: AnnData, *, sample_key: str, key: str = Keys.STATE) -> pd.DataFrame:
    """Tidy table: sample, context, state, n, fraction (within the sample's cells of that context)."""
    calls = _validate.state_calls(adata, key).astype(str)
    samples = _validate.obs_column(adata, sample_key, purpose="samples").astype(str)
    ctx_key = f"{key}{Keys.PARENT_SUFFIX}"
    info = adata.uns.get(f"{key}{Keys.PARAMS_SUFFIX}", {})
    if ctx_key in adata.obs:
        contexts = adata.obs[ctx_key].astype(str)
    else:  # calls from elsewhere: one pseudo-context
        contexts = pd.Series("all", index=adata.obs_names)
    called = set(info.get("states", {})) if isinstance(info, Mapping) else set()
    frame = pd.DataFrame({"sample": samples.values, "context": contexts.values, "state": calls.values})
    if called:
        frame = frame[frame["context"].isin(called)]
    else:
        frame = frame[frame["context"] != Defaults.UNASSIGNED]
    table = frame.groupby(["sample", "context", "state"], observed=True).size().rename("n").reset_index()
    table["fraction"] = table["n"] / table.groupby(["sample", "context"])["n"].transform("sum")
    return table


def states(
    adata: AnnData,
    *,
    sample_key: str | None = None,
    condition_key: str | None = None,
    key: str = Keys.STATE,
    kind: str = "bar",
    contexts: Sequence[str] | None = None,
    show_unassigned: bool = True,
    basis: str = "X_umap",
    palette: Mapping[str, str] | None = None,
    figsize: tuple[float, float] | None = None,
    point_size: float | None = None,
    show: bool = False,
    save: str | None = None,
):
    """Plot the state calls of :func:`hcctme.tl.call_states`.

    Parameters
    ----------
    adata
        Annotated data with ``obs[key]`` (and ``obs[key + "_context"]``) from ``tl.call_states``.
    sample_key
        ``obs`` column with the sample (needed for ``kind="bar"``).
    condition_key
        ``obs`` column with one condition per sample (e.g. response): bars are grouped by it.
    key
        ``key_added`` of ``tl.call_states``.
    kind
        ``"bar"``: one panel per parent context, one stacked bar per sample with the fraction of
        that sample's cells of the context in each state (``"unassigned"`` in grey).
        ``"umap"``: cells on ``obsm[basis]`` coloured by state (unassigned grey, drawn first).
    contexts
        Contexts to show (default: every context that had states).
    show_unassigned
        Bars: include the unassigned fraction (otherwise fractions among called cells).
    basis
        Embedding for ``kind="umap"`` (``obsm`` key).
    palette
        ``{state: colour}`` overrides.
    figsize, point_size
        Figure size; marker size of the UMAP.
    show
        Call ``plt.show()``.
    save
        Path to save the figure to.

    Returns
    -------
    The matplotlib Figure.
    """
    import matplotlib.pyplot as plt

    _validate.anndata(adata)
    kind = _validate.choice(kind, KINDS, name="kind")
    calls = _validate.state_calls(adata, key).astype(str)
    info = adata.uns.get(f"{key}{Keys.PARAMS_SUFFIX}", {})
    info = info if isinstance(info, Mapping) else {}
    state_order = [s for ids in info.get("states", {}).values() for s in ids]
    state_order += sorted(set(calls) - set(state_order) - {Defaults.UNASSIGNED})
    colours = _palette(state_order, palette)

    if kind == "umap":
        if basis not in adata.obsm:
            raise KeyError(
                f"adata.obsm has no {basis!r}; compute it first (sc.pp.neighbors(adata); "
                "sc.tl.umap(adata)) or use kind='bar'"
            )
        coords = np.asarray(adata.obsm[basis])[:, :2]
        fig, ax = plt.subplots(figsize=figsize or (6.5, 5))
        size = point_size or max(120000 / max(adata.n_obs, 1), 1.0) ** 0.5 * 2
        mask = (calls == Defaults.UNASSIGNED).to_numpy()
        ax.scatter(coords[mask, 0], coords[mask, 1], s=size, c=UNASSIGNED_COLOUR, lw=0,
                   label=Defaults.UNASSIGNED, rasterized=True)
        for state in state_order:
            sel = (calls == state).to_numpy()
            if sel.any():
                ax.scatter(coords[sel, 0], coords[sel, 1], s=size, c=colours[state], lw=0, label=state,
                           rasterized=True)
        ax.set_xticks([])
        ax.set_yticks([])
        name = basis.removeprefix("X_").upper()
        ax.set_xlabel(f"{name}1")
        ax.set_ylabel(f"{name}2")
        ax.set_title(key)
        ax.legend(frameon=False, loc="center left", bbox_to_anchor=(1.0, 0.5), markerscale=2, fontsize=8)
        fig.tight_layout()
    else:
        if sample_key is None:
            raise ValueError("kind='bar' needs sample_key= (the obs column with the sample/patient)")
        table = composition(adata, sample_key=sample_key, key=key)
        if not show_unassigned:
            table = table[table["state"] != Defaults.UNASSIGNED].copy()
            table["fraction"] = table["n"] / table.groupby(["sample", "context"])["n"].transform("sum")
        present = set(table["context"])
        available = [c for c in info.get("states", {}) if c in present]
        available += sorted(present - set(available))
        if contexts is not None:
            unknown = [c for c in contexts if c not in available]
            if unknown:
                raise ValueError(f"contexts {unknown} have no state calls; available: {available}")
            available = list(contexts)
        if not available:
            raise ValueError(f"no state calls to plot in obs[{key!r}]")
        sample_order = sorted(pd.unique(adata.obs[sample_key].astype(str)))
        conditions = None
        if condition_key is not None:
            conditions = _validate.constant_within(adata, condition_key, sample_key)
            sample_order = sorted(sample_order, key=lambda s: (str(conditions[s]), s))
        n = len(available)
        ncols = min(n, 3)
        nrows = -(-n // ncols)
        fig, axes = plt.subplots(nrows, ncols, squeeze=False, sharey=True,
                                 figsize=figsize or (max(3.0, 0.35 * len(sample_order) + 1.5) * ncols, 5.5 * nrows))
        for ax in axes.ravel()[n:]:
            ax.set_visible(False)
        for ax, context in zip(axes.ravel(), available):
            sub = table[table["context"] == context]
            wide = sub.pivot_table(index="sample", columns="state", values="fraction", fill_value=0.0,
                                   observed=True)
            wide = wide.reindex([s for s in sample_order if s in wide.index])
            order = [s for s in state_order if s in wide.columns]
            if Defaults.UNASSIGNED in wide.columns:
                order.append(Defaults.UNASSIGNED)
            x = np.arange(len(wide))
            bottom = np.zeros(len(wide))
            for state in order:
                ax.bar(x, wide[state].to_numpy(), bottom=bottom, color=colours.get(state, "#999999"),
                       width=0.85, label=state, edgecolor="none")
                bottom += wide[state].to_numpy()
            ax.set_xticks(x)
            ax.set_xticklabels(wide.index, rotation=90, fontsize=7)
            ax.set_title(context)
            ax.set_ylim(0, 1)
            if conditions is not None and len(wide):
                conds = [str(conditions[s]) for s in wide.index]
                edges = [i for i in range(1, len(conds)) if conds[i] != conds[i - 1]]
                for e in edges:
                    ax.axvline(e - 0.5, color="black", lw=0.8)
                starts = [0, *edges]
                ends = [*edges, len(conds)]
                for s0, e0 in zip(starts, ends):
                    ax.text((s0 + e0 - 1) / 2, 1.01, conds[s0], ha="center", va="bottom", fontsize=8,
                            transform=ax.get_xaxis_transform())
                ax.set_title(context, pad=14)
            ax.legend(frameon=False, fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.25), ncol=1)
        for row in axes:
            row[0].set_ylabel("fraction of the context's cells")
        fig.tight_layout()
    return finish(fig, show=show, save=save)
