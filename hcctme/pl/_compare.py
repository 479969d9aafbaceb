"""Plots of :func:`hcctme.tl.compare` results: per-patient box/strip plots and volcano plots."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
from anndata import AnnData
from matplotlib.axes import Axes

from hcctme import _validate, get
from hcctme._constants import GENE_METHODS, Defaults, Keys, Suffix
from hcctme.pl._utils import common_arguments, finish, panels
from hcctme.tl._compare import N_GENE_VALUES


def _tables(data, key: str, values: pd.DataFrame | None) -> tuple[pd.DataFrame, pd.DataFrame | None]:
    if values is not None and not isinstance(values, pd.DataFrame):
        raise TypeError(f"values must be the long per-sample table (a DataFrame) or None, got {type(values).__name__}")
    if isinstance(data, AnnData):
        table = get.compare(data, key)
        if values is None and key + Suffix.VALUES in data.uns:
            values = get.compare(data, key, values=True)
        elif values is None and key + Suffix.PER_SAMPLE in data.uns:  # tl.ta_response: one wide row per sample
            values = _long_values(data, key, table)
        return table, values
    if isinstance(data, pd.DataFrame):
        return data, values
    raise TypeError(
        f"expected an AnnData holding a tl.compare result or the DataFrame hcctme.get.compare reads, got "
        f"{type(data).__name__}"
    )


def _long_values(adata: AnnData, key: str, table: pd.DataFrame) -> pd.DataFrame | None:
    """:func:`hcctme.tl.ta_response`'s per-sample table as the long values tl.compare stores (group ``"all"``)."""
    condition_key = get.params(adata, key)["params"].get("condition_key")
    wide = adata.uns[key + Suffix.PER_SAMPLE]
    if condition_key is None or condition_key not in wide.columns:
        return None
    features = [f for f in pd.unique(table["feature"]) if f in wide.columns]
    long = wide.melt(id_vars=["sample", condition_key], value_vars=features, var_name="feature")
    return long.rename(columns={condition_key: "condition"}).assign(group="all")[
        ["sample", "group", "feature", "value", "condition"]]


@common_arguments
def compare(
    data: AnnData | pd.DataFrame,
    *,
    features: Sequence[str] | None = None,
    group: str | None = None,
    contrast: str | None = None,
    n_top: int = 6,
    values: pd.DataFrame | None = None,
    key: str = Keys.COMPARE,
    proportion: bool = True,
    ncols: int = 3,
    figsize: tuple[float, float] | None = None,
    palette: dict[str, str] | None = None,
    ax: Axes | None = None,
    show: bool = False,
    save: str | None = None,
) -> list[Axes] | None:
    """Per-patient box and strip plots by condition for the top features of a comparison.

    One panel per feature x group: a box per condition level with one dot per sample (patient),
    titled with the effect and the adjusted p-value. Paired designs draw a line per pair.

    Parameters
    ----------
    data
        AnnData with the results of :func:`hcctme.tl.compare` (``uns[key]`` and ``uns[key +
        "_values"]``) or of :func:`hcctme.tl.ta_response` with a condition (``uns[key + "_per_sample"]``), or its
        table as :func:`hcctme.get.compare` reads it (then pass ``values``).
    features
        Features to show (default: the ``n_top`` rows with the smallest p-values).
    group, contrast
        Restrict to one group / one contrast of the table.
    n_top
        How many table rows to show when ``features`` is None.
    values
        Long per-sample table (``uns[key + "_values"]``): sample, group, feature, value, condition.
    key
        ``key_added`` of ``tl.compare``.
    proportion
        Composition: plot the per-sample proportion (True) rather than the transformed value tested.
    ncols, figsize, palette
        Grid width, figure size, ``{condition: colour}``.
    ax
        Draw into this Axes (only when one panel is drawn).
    show, save
        Call ``plt.show()`` (and return None); save the figure to this path.

    Returns
    -------
    list of Axes or None
        One Axes per panel, unless ``show=True``.
    """
    import matplotlib as mpl

    table, values = _tables(data, key, values)
    if values is None:
        raise ValueError(
            "per-sample values are needed for box plots: pass the AnnData tl.compare stored its results in, "
            f"or values=adata.uns[{key + '_values'!r}]"
        )
    n_top = _validate.positive_int(n_top, name="n_top")
    ncols = _validate.positive_int(ncols, name="ncols")
    if palette is not None and not isinstance(palette, Mapping):
        raise TypeError(f"palette must be a dict {{condition level: colour}}, got {palette!r}")
    rows = _select_rows(table, group, contrast)
    if features is not None:
        if isinstance(features, str):
            features = [features]
        unknown = [f for f in features if f not in set(rows["feature"])]
        if unknown:
            raise KeyError(f"feature(s) {unknown} are not in the comparison table")
        rows = rows[rows["feature"].isin(features)]
    rows = rows.sort_values("pvalue", na_position="last")
    several = "contrast" in rows and rows["contrast"].nunique() > 1  # the titles then name each one's contrast
    if "contrast" in rows:
        rows = rows.drop_duplicates(["feature", "group"])
    rows = rows.head(n_top if features is None else len(rows))
    if rows.empty:
        raise ValueError("no feature to plot")
    kept = set(zip(values["feature"].astype(str), values["group"].astype(str), strict=True))
    without = [f"{r.feature} ({r.group})" for r in rows.itertuples(index=False) if (str(r.feature), str(r.group))
               not in kept]
    if without:
        raise ValueError(f"no per-sample values stored for {without}: tl.compare keeps them for the "
                         f"{N_GENE_VALUES} genes of smallest p-value per group and contrast only (a box plot needs "
                         "them); plot those genes, or use pl.volcano for the whole table")

    levels = list(pd.unique(values["condition"].astype(str)))
    ref = None
    if "contrast" in table and len(table):
        ref = str(table["contrast"].iloc[0]).split(" vs ")[-1]
        if ref in levels:
            levels = [ref] + [lv for lv in levels if lv != ref]
    cmap = mpl.colormaps["tab10"]
    colours = {lv: mpl.colors.to_hex(cmap(i)) for i, lv in enumerate(levels)}
    colours.update(palette or {})
    use_prop = proportion and "proportion" in values.columns
    column = "proportion" if use_prop else "value"
    method = str(rows["method"].iloc[0]) if "method" in rows else ""
    if method == "deseq2":
        ylabel = "log2(normalised counts + 1)"
    elif method in ("limma-trend", "voom"):
        ylabel = "log2 CPM"
    elif "proportion" in values.columns:
        ylabel = "proportion" if use_prop else "transformed proportion"
    else:
        ylabel = "per-sample score"

    n = len(rows)
    ncols = min(ncols, n)
    axes = panels(n, ax=ax, ncols=ncols, figsize=figsize or (3.2 * ncols, 3.0 * int(np.ceil(n / ncols))))
    fig = axes.ravel()[0].figure
    rng = np.random.default_rng(0)
    for ax, row in zip(axes.ravel(), rows.itertuples(index=False), strict=False):
        sub = values[(values["feature"].astype(str) == str(row.feature))
                     & (values["group"].astype(str) == str(row.group))]
        data_by = [sub.loc[sub["condition"].astype(str) == lv, column].to_numpy(float) for lv in levels]
        box = ax.boxplot(data_by, positions=range(len(levels)), widths=0.55, patch_artist=True,
                         showfliers=False)
        for patch, lv in zip(box["boxes"], levels, strict=True):
            patch.set_facecolor(mpl.colors.to_rgba(colours[lv], 0.25))
            patch.set_edgecolor(colours[lv])
        for median in box["medians"]:
            median.set_color("black")
        xs = {}
        for i, (lv, vals) in enumerate(zip(levels, data_by, strict=True)):
            x = i + rng.uniform(-0.12, 0.12, len(vals))
            ax.scatter(x, vals, s=18, color=colours[lv], edgecolor="white", linewidth=0.5, zorder=3)
            xs[lv] = pd.Series(x, index=sub.loc[sub["condition"].astype(str) == lv, "sample"].to_numpy())
        if "pair" in sub.columns:
            wide = sub.pivot_table(index="pair", columns="condition", values=column, aggfunc="first")
            sample_of = sub.pivot_table(index="pair", columns="condition", values="sample", aggfunc="first")
            for pair in wide.index:
                pts = [(xs[lv][sample_of.loc[pair, lv]], wide.loc[pair, lv]) for lv in levels
                       if lv in wide.columns and pd.notna(wide.loc[pair, lv])]
                if len(pts) > 1:
                    ax.plot(*zip(*pts, strict=True), color="grey", lw=0.6, alpha=0.6, zorder=2)
        ax.set_xticks(range(len(levels)), levels, rotation=30, ha="right")
        title = str(row.feature) if str(row.group) == "all" else f"{row.feature} ({row.group})"
        padj = getattr(row, "padj", np.nan)
        which = f"{row.contrast}: " if several else ""
        ax.set_title(f"{title}\n{which}effect {row.effect:+.2f}, padj {padj:.2g}", fontsize=9)
        ax.set_ylabel(ylabel, fontsize=8)
        ax.spines[["top", "right"]].set_visible(False)
    fig.tight_layout()
    return finish(list(axes.ravel()[:n]), show=show, save=save)


@common_arguments
def volcano(
    data: AnnData | pd.DataFrame,
    *,
    group: str | None = None,
    contrast: str | None = None,
    key: str = Keys.COMPARE,
    alpha: float = Defaults.ALPHA,
    n_labels: int = 10,
    ax: Axes | None = None,
    figsize: tuple[float, float] = (5.0, 4.5),
    show: bool = False,
    save: str | None = None,
) -> Axes | None:
    """Volcano plot of a comparison: effect (log2FC for genes) against -log10 p-value.

    Points with ``padj < alpha`` are coloured by direction (up red, down blue); the ``n_labels``
    most significant are labelled. With several groups, pass ``group`` (otherwise all groups are
    drawn together).

    Parameters
    ----------
    data
        AnnData with the results of :func:`hcctme.tl.compare` (``uns[key]``), or its table as
        :func:`hcctme.get.compare` reads it (columns feature, effect, pvalue and, for the colours, padj; a
        table without padj draws every point grey).
    group, contrast
        Restrict to one group / one contrast of the table (a ``ValueError`` when absent from it; ``contrast``
        is ignored for a table without a contrast column).
    key
        ``key_added`` of ``tl.compare`` (read only when ``data`` is an AnnData).
    alpha
        Significance level in [0, 1]: points with ``padj < alpha`` are coloured and may be labelled.
    n_labels
        Label the significant points among the ``n_labels`` of smallest p-value (0: no labels).
    ax
        Draw into this Axes.
    figsize
        Figure size when a new figure is made (``ax`` None).
    show, save
        Call ``plt.show()`` (and return None); save the figure to this path.

    Returns
    -------
    Axes or None
        The Axes, unless ``show=True``.
    """
    table, _ = _tables(data, key, None)
    alpha = _validate.fraction(alpha, name="alpha")
    n_labels = _validate.positive_int(n_labels, name="n_labels", minimum=0)
    missing = [c for c in ("feature", "effect", "pvalue") if c not in table.columns]
    if missing:
        raise KeyError(f"the comparison table has no column(s) {missing}; pl.volcano reads feature, effect, pvalue "
                       "and padj (tl.compare's table)")
    rows = _select_rows(table, group, contrast)
    rows = rows.dropna(subset=["effect", "pvalue"])
    if rows.empty:
        raise ValueError("no tested feature to plot")
    if "padj" not in rows.columns:  # no adjusted p-values: every point grey, as pl.compare reads them
        rows = rows.assign(padj=np.nan)
    ax = panels(ax=ax, figsize=figsize)[0, 0]
    y = -np.log10(np.clip(rows["pvalue"].to_numpy(float), 1e-300, 1.0))
    x = rows["effect"].to_numpy(float)
    sig = (rows["padj"] < alpha).to_numpy()
    colour = np.where(~sig, "#bdbdbd", np.where(x > 0, "#d6604d", "#4393c3"))
    ax.scatter(x, y, s=8, c=colour, lw=0, rasterized=len(x) > 5000)
    order = np.argsort(rows["pvalue"].to_numpy(float))[:n_labels]
    for i in order:
        if sig[i]:
            ax.annotate(str(rows["feature"].iloc[i]), (x[i], y[i]), fontsize=7, xytext=(2, 2),
                        textcoords="offset points")
    ax.axvline(0, color="grey", lw=0.5)
    is_genes = "method" in rows and rows["method"].isin(GENE_METHODS).all()
    ax.set_xlabel("log2 fold change" if is_genes else "effect")
    ax.set_ylabel("-log10 p-value")
    # the table's contrast when it holds one (a contrast= given for a table without the column is not one)
    con = str(rows["contrast"].iloc[0]) if "contrast" in rows and rows["contrast"].nunique() == 1 else ""
    ax.set_title(" | ".join(t for t in (con, "" if group is None else str(group)) if t), fontsize=9)
    ax.spines[["top", "right"]].set_visible(False)
    return finish(ax, show=show, save=save)


def _select_rows(table: pd.DataFrame, group: str | None, contrast: str | None) -> pd.DataFrame:
    """Rows of one group and/or contrast, with a clear error when the value is absent."""
    rows = table
    if group is not None:
        rows = rows[rows["group"].astype(str) == str(group)]
        if rows.empty:
            raise ValueError(f"group={group!r} is not in the table; groups are {sorted(pd.unique(table['group']))}")
    if contrast is not None and "contrast" in rows:
        rows = rows[rows["contrast"] == contrast]
        if rows.empty:
            raise ValueError(f"contrast={contrast!r} is not in the table")
    return rows
