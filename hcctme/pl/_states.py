"""``pl.states``: state composition per sample and state calls on the UMAP."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
from anndata import AnnData
from matplotlib.axes import Axes

from hcctme import _validate, get
from hcctme._constants import Defaults, Keys, Suffix
from hcctme.pl._utils import common_arguments, finish, panels

UNASSIGNED_COLOUR = "#d9d9d9"
KINDS = ("bar", "umap")


def _palette(states: Sequence[str], palette: Mapping[str, str] | None) -> dict[str, str]:
    import matplotlib as mpl

    # the smallest qualitative palette whose hues (greys are reserved for "unassigned") cover the states, so no two
    # share a colour: tab10 (9 hues), tab20 (18), tab20 with tab20b and tab20c; beyond those, turbo's even steps
    for names in (["tab10"], ["tab20"], ["tab20", "tab20b", "tab20c"]):
        colours_of = [mpl.colors.to_hex(cmap(i)) for cmap in map(mpl.colormaps.get_cmap, names) for i in range(cmap.N)]
        hues = list(dict.fromkeys(c for c in colours_of if len({c[1:3], c[3:5], c[5:7]}) > 1))
        if len(states) <= len(hues):
            break
    else:
        hues = [mpl.colors.to_hex(mpl.colormaps["turbo"](x)) for x in np.linspace(0.05, 0.95, len(states))]
    colours = {s: hues[i] for i, s in enumerate(states)}
    colours[Defaults.UNASSIGNED] = UNASSIGNED_COLOUR
    if palette:
        colours.update(palette)
    return colours


def composition(adata: AnnData, *, sample_key: str, key: str = Keys.STATE) -> pd.DataFrame:
    """Tidy table: sample, context, state, n, fraction (within the sample's cells of that context)."""
    calls = _validate.state_calls(adata, key).astype(str)
    samples = _validate.obs_column(adata, sample_key, purpose="samples").astype(str)
    ctx_key = f"{key}{Suffix.CONTEXT}"
    # calls from elsewhere have no context column: one pseudo-context
    contexts = adata.obs[ctx_key].astype(str) if ctx_key in adata.obs else pd.Series("all", index=adata.obs_names)
    called = set(_state_info(adata, key).get("states", {}))
    frame = pd.DataFrame({"sample": samples.values, "context": contexts.values, "state": calls.values})
    frame = frame[frame["context"].isin(called)] if called else frame[frame["context"] != Defaults.UNASSIGNED]
    table = frame.groupby(["sample", "context", "state"], observed=True).size().rename("n").reset_index()
    table["fraction"] = table["n"] / table.groupby(["sample", "context"])["n"].transform("sum")
    return table


def _state_info(adata: AnnData, key: str) -> dict:
    """What :func:`hcctme.tl.call_states` recorded with its calls (empty for calls made elsewhere)."""
    try:
        info = get.params(adata, key)
    except KeyError:
        return {}
    return info if isinstance(info.get("states", {}), Mapping) else {}


@common_arguments
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
    ax: Axes | None = None,
    show: bool = False,
    save: str | None = None,
) -> Axes | list[Axes] | None:
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
    ax
        Draw into this Axes (the UMAP, or bars of a single context).
    show
        Call ``plt.show()`` (and return None).
    save
        Path to save the figure to.

    Returns
    -------
    Axes, list of Axes or None
        The UMAP's Axes, or one Axes per context for the bars, unless ``show=True``.
    """
    _validate.anndata(adata)
    kind = _validate.choice(kind, KINDS, name="kind")
    calls = _validate.state_calls(adata, key).astype(str)
    info = _state_info(adata, key)
    # a state competed in two contexts (TREG under t_cell and cd4_t) is one state: listed once
    state_order = list(dict.fromkeys(s for ids in info.get("states", {}).values() for s in ids))
    state_order += sorted(set(calls) - set(state_order) - {Defaults.UNASSIGNED})
    colours = _palette(state_order, palette)
    if kind == "umap":
        drawn = _umap(adata, calls, state_order, colours, key=key, basis=basis, figsize=figsize,
                      point_size=point_size, ax=ax)
    else:
        if sample_key is None:
            raise ValueError("kind='bar' needs sample_key= (the obs column with the sample/patient)")
        table = composition(adata, sample_key=sample_key, key=key)
        if not show_unassigned:
            table = table[table["state"] != Defaults.UNASSIGNED].copy()
            table["fraction"] = table["n"] / table.groupby(["sample", "context"])["n"].transform("sum")
        available = _contexts(table, info, contexts, key=key)
        sample_order = sorted(pd.unique(adata.obs[sample_key].astype(str)))
        conditions = None
        if condition_key is not None:
            conditions = _validate.constant_within(adata, condition_key, sample_key)
            sample_order = sorted(sample_order, key=lambda s: (str(conditions[s]), s))
        ncols = min(len(available), 3)
        size = figsize or (max(3.0, 0.35 * len(sample_order) + 1.5) * ncols, 5.5 * -(-len(available) // ncols))
        axes = panels(len(available), ax=ax, ncols=ncols, figsize=size, sharey=True)
        for panel, context in zip(axes.ravel(), available, strict=False):
            _bars(panel, table[table["context"] == context], context, sample_order, state_order, colours,
                  conditions)
        for row in axes:
            row[0].set_ylabel("fraction of the context's cells")
        axes.ravel()[0].figure.tight_layout()
        drawn = list(axes.ravel()[: len(available)])
    return finish(drawn, show=show, save=save)


def _contexts(table: pd.DataFrame, info: Mapping, contexts: Sequence[str] | None, *, key: str) -> list[str]:
    """The contexts to draw: the requested ones (checked), or every context with calls, in the tool's order."""
    present = set(table["context"])
    available = [c for c in info.get("states", {}) if c in present]
    available += sorted(present - set(available))
    if contexts is not None:
        contexts = _validate.names(contexts, name="contexts")
        unknown = [c for c in contexts if c not in available]
        if unknown:
            raise ValueError(f"contexts {unknown} have no state calls; available: {available}")
        available = list(contexts)
    if not available:
        raise ValueError(f"no state calls to plot in obs[{key!r}]")
    return available


def _umap(adata: AnnData, calls: pd.Series, state_order: list[str], colours: Mapping[str, str], *, key: str,
          basis: str, figsize: tuple[float, float] | None, point_size: float | None, ax: Axes | None) -> Axes:
    """Cells on the embedding coloured by state, unassigned cells grey and drawn first."""
    if basis not in adata.obsm:
        raise KeyError(
            f"adata.obsm has no {basis!r}; compute it first (sc.pp.neighbors(adata); "
            "sc.tl.umap(adata)) or use kind='bar'"
        )
    coords = np.asarray(adata.obsm[basis])[:, :2]
    ax = panels(ax=ax, figsize=figsize or (6.5, 5))[0, 0]
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
    ax.figure.tight_layout()
    return ax


def _bars(ax: Axes, sub: pd.DataFrame, context: str, sample_order: list[str], state_order: list[str],
          colours: Mapping[str, str], conditions: pd.Series | None) -> None:
    """One context: a stacked bar of state fractions per sample, samples grouped by condition."""
    wide = sub.pivot_table(index="sample", columns="state", values="fraction", fill_value=0.0, observed=True)
    wide = wide.reindex([s for s in sample_order if s in wide.index])
    order = [s for s in state_order if s in wide.columns]
    if Defaults.UNASSIGNED in wide.columns:
        order.append(Defaults.UNASSIGNED)
    x = np.arange(len(wide))
    bottom = np.zeros(len(wide))
    for state in order:
        ax.bar(x, wide[state].to_numpy(), bottom=bottom, color=colours.get(state, "#999999"), width=0.85,
               label=state, edgecolor="none")
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
        for s0, e0 in zip([0, *edges], [*edges, len(conds)], strict=True):
            ax.text((s0 + e0 - 1) / 2, 1.01, conds[s0], ha="center", va="bottom", fontsize=8,
                    transform=ax.get_xaxis_transform())
        ax.set_title(context, pad=14)
    ax.legend(frameon=False, fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.25), ncol=1)
