"""Sequencing depth equalised across samples: counts thinned to a common depth, then log-normalised."""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp
from anndata import AnnData

from hcctme import _validate
from hcctme._constants import Defaults, Keys, Suffix
from hcctme._logging import logger
from hcctme.pp import _thinning


def row_totals(X: Any, *, chunk_size: int = Defaults.CHUNK_SIZE, not_counts: str | None = None) -> np.ndarray:
    """Sum of every row (counts per cell), read ``chunk_size`` rows at a time (in memory, backed or dask).

    ``not_counts``: the message of the ValueError raised when a value is not a non-negative integer (every
    block is checked, not a sample of rows: the counts are then thinned and would be rounded silently).
    """
    if not_counts is not None:
        _validate.numeric_dtype(X)
    totals = np.zeros(X.shape[0])
    for start, stop, block in _validate.row_blocks(X, chunk_size=chunk_size):
        block = sp.csr_matrix(block)
        bad = None if not_counts is None else (
            ~np.isfinite(block.data) | (block.data < 0) | (block.data != np.round(block.data)))
        if bad is not None and bad.any():  # the row named, NaN and infinite values included
            first = int(np.flatnonzero(bad)[0])
            row = start + int(np.searchsorted(block.indptr, first, side="right")) - 1
            value = block.data[first]
            what = "" if np.isfinite(value) else ", NaN or infinite values are no counts"
            raise ValueError(f"{not_counts} (row {row} holds {value:g}{what})")
        totals[start:stop] = np.asarray(block.sum(axis=1, dtype=np.float64)).ravel()
    return totals


def kept_fractions(medians: pd.Series) -> tuple[float, pd.Series]:
    """The shallowest sample's median counts per cell, and each sample's fraction thinned to it (at most 1)."""
    target = float(medians.min())
    if target <= 0:
        raise ValueError(f"sample {medians.idxmin()!r} has a median of 0 counts per cell; remove empty cells first")
    return target, (target / medians).clip(upper=1.0)


def equalize_depth(
    adata: AnnData,
    sample_key: str,
    *,
    counts_layer: str = Keys.COUNTS,
    key_added: str = Keys.DEPTH_EQUALIZED,
    random_state: int = Defaults.SEED,
    copy: bool = False,
) -> AnnData | None:
    """Log-normalised expression with the samples' sequencing depth equalised, as a new layer.

    Signature scores are not depth-invariant (UCell ranks, means of log values: a cell read half as deep
    detects fewer genes), so where the conditions were sequenced to different depths a per-sample score
    comparison reads the depth as an effect. This thins every sample's raw counts binomially to the
    shallowest sample's median counts per cell, as :func:`hcctme.tl.crosstalk` does before its test, and
    log1p(CP10k)-normalises them. Score that layer (``tl.score(adata, layer=key_added)``) before
    :func:`hcctme.tl.compare` when :func:`hcctme.tl.compare` warns that the conditions differ in depth.
    Each count's draw is fixed by ``random_state``, its cell's name and its gene's name (no row or gene
    order moves it).

    Parameters
    ----------
    adata
        AnnData in memory with raw counts in ``layers[counts_layer]``.
    sample_key
        obs column of the samples (the units whose depth is equalised).
    counts_layer
        Layer of raw integer counts.
    key_added
        ``layers[key_added]``: the thinned, log1p(CP10k) expression (sparse, float32);
        ``uns[key_added + "_params"]``: tool, params, each sample's median counts per cell before and
        its kept fraction, the target depth, library version.
    random_state
        Seed of the thinning draws.
    copy
        Return a copy of ``adata`` with the layer instead of writing into ``adata``.

    Returns
    -------
    The modified copy when ``copy=True``, else ``None``.
    """
    _validate.anndata(adata, writes=True)
    if adata.isbacked:
        raise ValueError("equalize_depth writes a new expression layer, which a backed AnnData cannot hold; load "
                         "the data first (adata.to_memory())")
    _validate.key_name(sample_key, name="sample_key")
    _validate.key_name(counts_layer, name="counts_layer")
    if counts_layer not in adata.layers:
        raise KeyError(f"adata.layers has no {counts_layer!r}; pass counts_layer= naming the layer of raw counts "
                       f"(layers: {list(adata.layers)})")
    key_added = _validate.key_added(key_added, adata=adata, slots=("layers",), reads=(counts_layer,),
                                    tool="hcctme.pp.equalize_depth")
    random_state = _validate.random_state(random_state)
    copy = _validate.copy_flag(copy, adata=adata, tool="hcctme.pp.equalize_depth", writes="layers and uns")
    samples = _validate.categorical_levels(adata, sample_key, purpose="sample_key").to_numpy()
    _validate.unique_cells(adata, tool="hcctme.pp.equalize_depth")
    _validate.unique_genes(adata.var_names)  # a gene's name keys its draws too
    totals = row_totals(adata.layers[counts_layer], not_counts=f"layers[{counts_layer!r}] does not hold raw integer "
                        "counts; pass counts_layer= naming the layer of raw counts")
    medians = pd.Series(totals).groupby(samples).median()
    target, fractions = kept_fractions(medians)
    thinning = _thinning.Thinning.named(fractions.reindex(samples).to_numpy(dtype=float), adata.obs_names,
                                        adata.var_names, seed=random_state)
    blocks = [_thinning.thinned_lognorm(sp.csr_matrix(block), np.arange(start, stop), thinning)
              for start, stop, block in _validate.row_blocks(adata.layers[counts_layer],
                                                             chunk_size=Defaults.CHUNK_SIZE)]
    layer = sp.vstack(blocks, format="csr").astype(np.float32)
    record: dict[str, Any] = {
        "tool": "hcctme.pp.equalize_depth",
        **_validate.call_record(sample_key=sample_key, counts_layer=counts_layer, random_state=random_state),
        "depth": pd.DataFrame({"sample": medians.index.astype(str), "median_counts": medians.to_numpy(),
                               "fraction": fractions.to_numpy()}),
        "target_counts": target,
        "library_version": _validate.library_version(),
    }
    adata = adata.copy() if copy else adata  # nothing written before this line
    adata.layers[key_added] = layer
    adata.uns[key_added + Suffix.PARAMS] = record
    logger.info("equalize_depth: %d samples thinned to %.0f counts per cell (median) -> layers[%r]",
                len(medians), target, key_added)
    return adata if copy else None


#: a condition level whose samples' median counts per cell differ this many fold from another's is warned of
DEPTH_FOLD = 1.5
#: so is a smaller gap that separates the levels' samples beyond chance (:func:`_separation` on their log depth): on
#: null cohorts whose resistors were all read 1.1-1.3x deeper, 0.25-0.88 of the score tests fell under p < 0.05
DEPTH_ALPHA = 0.05


def condition_depths(adata: AnnData, units: pd.Series, design: pd.DataFrame, *, scores_key: str,
                 counts_layer: str | None) -> dict[str, Any] | None:
    """Each condition level's median counts per cell (median over its units), warned of where they differ.

    Warned where the levels' medians differ :data:`DEPTH_FOLD`-fold or more, or where the samples' depths separate
    the levels beyond chance (:data:`DEPTH_ALPHA`, :func:`_separation`; within pairs for a paired design): a small
    gap every resistor shares moves the tests too.

    Scores are not depth-invariant: on null cohorts whose resistors were read 2x deeper, UCell scores compared
    per sample put 0.47-0.71 of the tests at p < 0.05 (sweep 58), and :func:`hcctme.pp.equalize_depth` brings them
    back to the nominal rate. None without a layer of raw counts, or when the scores read the equalised layer.
    """
    record = adata.uns.get(scores_key + Suffix.PARAMS)
    scored_on = record.get("params", {}).get("layer") if isinstance(record, dict) else None
    equalised = adata.uns.get(f"{scored_on}{Suffix.PARAMS}") if isinstance(scored_on, str) else None
    if isinstance(equalised, dict) and equalised.get("tool") == "hcctme.pp.equalize_depth":
        return {"scored_on": scored_on}
    if counts_layer is None or counts_layer not in adata.layers \
            or _validate.matrix_kind(adata.layers[counts_layer]) != "counts":
        return None
    per_unit = pd.Series(row_totals(adata.layers[counts_layer])).groupby(units.astype(str).to_numpy()).median()
    levels = design["condition"].astype(str).reindex(per_unit.index)
    per_level = per_unit.groupby(levels.to_numpy()).median()
    fold = float(per_level.max() / max(per_level.min(), 1.0))
    blocks = design["block"].reindex(per_unit.index) if "block" in design else None
    pvalue = _separation(np.log(np.maximum(per_unit.to_numpy(dtype=float), 1.0)), levels, blocks)
    if fold >= DEPTH_FOLD or pvalue < DEPTH_ALPHA:
        message = ("the conditions differ in sequencing depth (median counts per cell of their samples: "
                   + ", ".join(f"{lv} {v:.0f}" for lv, v in per_level.items())
                   + f"; {fold:.2f}-fold; the samples' depths by condition: p = {pvalue:.2g}): "
                   "signature scores move with depth, so this comparison can read the depth "
                   "as an effect; equalise it first (hcctme.pp.equalize_depth(adata, sample_key), then "
                   "hcctme.tl.score(adata, layer='hcctme_depth_equalized')) or compare features='genes'")
        warnings.warn(message, UserWarning, stacklevel=3)
        logger.warning("%s", message)
    return {"median_counts": {str(k): float(v) for k, v in per_level.items()}, "fold": fold, "pvalue": pvalue}


def _separation(log_depth: np.ndarray, levels: pd.Series, blocks: pd.Series | None) -> float:
    """The p-value of the samples' log depth by condition level, read as the comparison reads them (1: no test).

    Paired or blocked units (``blocks``, two levels): Wilcoxon signed-rank of each block's gap between its two
    levels, since the comparison is within blocks. Otherwise Kruskal-Wallis with a permutation p
    (:func:`hcctme.tl._stats.kruskal`, exact at small n: the chi-square p warned 1 in 10 null cohorts of 3 vs 3).
    """
    from scipy import stats

    from hcctme.tl import _stats

    frame = pd.DataFrame({"depth": log_depth, "level": levels.to_numpy()}, index=levels.index).dropna()
    names = list(pd.unique(frame["level"]))
    if len(names) < 2 or np.ptp(frame["depth"].to_numpy()) == 0:
        return 1.0
    if blocks is not None and len(names) == 2:
        wide = frame.assign(block=blocks.reindex(frame.index).to_numpy()).pivot_table(
            index="block", columns="level", values="depth", aggfunc="mean").dropna()
        gaps = (wide[names[1]] - wide[names[0]]).to_numpy()
        return 1.0 if not np.any(gaps) else float(stats.wilcoxon(gaps).pvalue)
    return _stats.kruskal([frame.loc[frame["level"] == name, "depth"].to_numpy() for name in names])[1]
