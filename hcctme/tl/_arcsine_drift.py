"""Whether the arcsine proportions of a rare state move with the samples' cells more than a test can ignore.

The arcsine square root of a proportion is a function of the proportion alone, but a sample's proportion of a rare
state is a binomial count over its cells, and the mean of ``arcsin(sqrt(K / n))`` over that count rises with ``n``
(a 2 % state: 0.116 at 60 cells, 0.136 at 180). Where the condition levels' samples hold different numbers of cells
of a parent population, that gap reads as an effect: on null cohorts of 10 vs 10 patients with 60 vs 180 cells, a
1 % state was called at p < 0.05 in 0.10 of them and a 2 % state in 0.085 (the logit: 0.023 and 0.053;
``benchmarks/compare_rare_null.py --cohorts 400 --grid``). :func:`hcctme.tl.compare` (``features="composition"``,
``transform="asin"``) warns of it, naming ``transform="logit"``. The gap and its standard error are read on unweighted
means, without the model's covariates or precision weights and each level against the reference alone: an
approximation of the test's own scale, which the grid's rows check (README, "Statistics").
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
from scipy import stats

from hcctme._logging import logger

#: a contrast is warned of where the arcsine gap its cells alone predict would put a two-sided test at p < 0.05 this
#: often (normal approximation of a shift of that many standard errors: 0.3 of them gives 0.061)
DRIFT_RATE = 0.06
#: the binomial terms beyond these tail quantiles of a count are left out (at most twice this mass)
_TAIL = 1e-16


def expected_arcsine(n: int, p: float) -> float:
    """The mean of ``arcsin(sqrt(K / n))`` for ``K ~ Binomial(n, p)``."""
    if n <= 0:
        return float("nan")
    k = np.arange(int(stats.binom.ppf(_TAIL, n, p)), int(stats.binom.isf(_TAIL, n, p)) + 1)
    weights = stats.binom.pmf(k, n, p)
    return float(np.sum(weights * np.arcsin(np.sqrt(k / n))) / np.sum(weights))


def false_positive_rate(shift: float) -> float:
    """The rate at which a two-sided normal test at 0.05 rejects when its statistic is shifted by ``shift`` SEs."""
    z = stats.norm.ppf(0.975)
    return float(stats.norm.cdf(-z + abs(shift)) + stats.norm.cdf(-z - abs(shift)))


def contrast_drift(counts: pd.DataFrame, values: pd.DataFrame, design: pd.DataFrame, reference: str,
                   group: str) -> pd.DataFrame:
    """Per feature and contrast of one parent: the arcsine gap the units' cells alone predict, in standard errors.

    ``counts``: units x features cell counts of the parent; ``values``: their arcsine proportions. Each feature's
    share is pooled over the units; a unit's expected value is :func:`expected_arcsine` of its cells at that share.
    The gap is the other level's mean expected value less the reference's (with a ``block`` column, the mean of the
    blocks' within-block gaps), and its standard error that of the difference of the observed values' means (Welch;
    paired: of the blocks' differences). Columns: ``group``, ``feature``, ``contrast``, ``share``, ``cells_reference``,
    ``cells_other`` (median cells per unit), ``drift``, ``se``, ``shift`` (drift / se) and ``expected_fpr``
    (:func:`false_positive_rate`).
    """
    cells = counts.sum(axis=1)
    condition = design.loc[counts.index, "condition"].astype(str)
    blocks = design.loc[counts.index, "block"] if "block" in design else None
    median_cells = cells.groupby(condition.to_numpy()).median()
    rows = []
    for feature in counts.columns:
        share = float(counts[feature].sum() / cells.sum())
        expected = cells.map({n: expected_arcsine(int(n), share) for n in pd.unique(cells)})
        for other in sorted(set(condition) - {reference}):
            gap, se = _gap(expected, values[feature], condition, reference, other, blocks)
            shift = gap / se if se > 0 else 0.0
            rows.append({"group": group, "feature": feature, "contrast": f"{other} vs {reference}", "share": share,
                         "cells_reference": float(median_cells[reference]),
                         "cells_other": float(median_cells[other]), "drift": gap, "se": se,
                         "shift": shift, "expected_fpr": false_positive_rate(shift)})
    return pd.DataFrame(rows, columns=["group", "feature", "contrast", "share", "cells_reference", "cells_other",
                                       "drift", "se", "shift", "expected_fpr"])


def _gap(expected: pd.Series, observed: pd.Series, condition: pd.Series, reference: str, other: str,
         blocks: pd.Series | None) -> tuple[float, float]:
    """The other level's expected value less the reference's and the standard error of the observed difference."""
    if blocks is not None:
        frame = pd.DataFrame({"expected": expected, "observed": observed, "level": condition, "block": blocks})
        wide = frame[frame["level"].isin([reference, other])].pivot_table(
            index="block", columns="level", values=["expected", "observed"], aggfunc="mean").dropna()
        if len(wide) < 2:
            return 0.0, float("nan")
        gaps = wide["expected"][other] - wide["expected"][reference]
        diffs = wide["observed"][other] - wide["observed"][reference]
        return float(gaps.mean()), float(diffs.std(ddof=1) / np.sqrt(len(diffs)))
    mine, theirs = condition == other, condition == reference
    if mine.sum() < 2 or theirs.sum() < 2:
        return 0.0, float("nan")
    se = np.sqrt(observed[mine].var(ddof=1) / mine.sum() + observed[theirs].var(ddof=1) / theirs.sum())
    return float(expected[mine].mean() - expected[theirs].mean()), float(se)


def warn_of_drift(drift: pd.DataFrame) -> pd.DataFrame:
    """The rows of ``drift`` whose expected rate reaches :data:`DRIFT_RATE`, warned of in one message."""
    flagged = drift[drift["expected_fpr"] >= DRIFT_RATE].reset_index(drop=True)
    if flagged.empty:
        return flagged
    shown = "; ".join(
        f"{r.group}/{r.feature} ({r.share:.1%} of its parent; {r.contrast}: {r.cells_other:.0f} vs "
        f"{r.cells_reference:.0f} cells per sample, expected rate at p < 0.05 {r.expected_fpr:.2f})"
        for r in flagged.head(5).itertuples())
    more = f"; and {len(flagged) - 5} more" if len(flagged) > 5 else ""
    message = (
        "the arcsine proportion of a state that is rare in its parent (or holds nearly all of it) moves with a "
        "sample's cells, and the condition levels' samples hold different numbers of cells of that parent: "
        f"{shown}{more}. The cells alone can read as an effect there; "
        "pass transform='logit' (its value does not drift with the cells), or read these rows with care "
        "(uns[key_added + '_params']['arcsine_drift'])")
    warnings.warn(message, UserWarning, stacklevel=5)
    logger.warning("%s", message)
    return flagged
