"""Whether the conditions of a comparison differ in sequencing depth, which per-cell scores read as an effect.

:func:`hcctme.tl.compare` (scores) and :func:`hcctme.tl.ta_response` (per-cell means) warn of it, naming
:func:`hcctme.pp.equalize_depth`, the remedy.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import pandas as pd
from anndata import AnnData
from scipy import stats

from hcctme import _validate
from hcctme._constants import Suffix
from hcctme._logging import logger
from hcctme.pp import _depth
from hcctme.tl import _stats

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
    totals = _depth.row_totals(adata.layers[counts_layer])
    per_unit = pd.Series(totals).groupby(units.astype(str).to_numpy()).median()
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
