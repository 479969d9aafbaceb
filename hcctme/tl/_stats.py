"""Sample-level statistics for :func:`hcctme.tl.compare` (no AnnData in here).

Every function takes one value per *sample* (patient, or patient x timepoint): the sample is the unit
of replication, so cells never enter these tests.

Methods
-------
``mannwhitney``
    Two-sided Mann-Whitney U test (exact when there are no ties and a group has <= 8 samples,
    normal approximation with tie and continuity correction otherwise). Default for unpaired designs.
``welch``
    Welch's two-sample t-test.
``ols``
    Ordinary least squares (statsmodels) of the value on the condition (treatment coding, the
    reference level as baseline) plus covariates (numeric as is, categorical as dummies) and, with
    pairs, the pair as a fixed effect. Default when covariates are given.
``wilcoxon``
    Wilcoxon signed-rank test of the within-pair differences (other minus reference). Default for
    paired designs without covariates.
``paired_t``
    Paired t-test of the within-pair differences.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import numpy as np
import pandas as pd
from scipy import stats

UNPAIRED_METHODS = ("mannwhitney", "welch")
PAIRED_METHODS = ("wilcoxon", "paired_t")
MODEL_METHODS = ("ols",)
SAMPLE_METHODS = UNPAIRED_METHODS + PAIRED_METHODS + MODEL_METHODS
GENE_METHODS = ("deseq2",)
METHODS = ("auto",) + SAMPLE_METHODS + GENE_METHODS


def bh(pvalues: Sequence[float] | np.ndarray) -> np.ndarray:
    """Benjamini-Hochberg adjusted p-values; NaN entries stay NaN and do not count as tests."""
    p = np.asarray(pvalues, dtype=float)
    out = np.full(p.shape, np.nan)
    ok = np.isfinite(p)
    if ok.any():
        out[ok] = stats.false_discovery_control(np.clip(p[ok], 0.0, 1.0), method="bh")
    return out


def clr(counts: np.ndarray, pseudocount: float = 0.5) -> np.ndarray:
    """Centred log-ratio of each row of a samples x parts count matrix (natural log).

    ``clr(x)_j = log(x_j + c) - mean_k log(x_k + c)``. A rise of one part by a factor f moves the
    others' CLR by only ``-log(f) / D`` (D parts) instead of the ``-f``-driven drop of their
    proportions, so an expansion of one population is not read as the loss of all the others.
    """
    logs = np.log(np.asarray(counts, dtype=float) + pseudocount)
    return logs - logs.mean(axis=1, keepdims=True)


def direction(effect: np.ndarray) -> np.ndarray:
    """"up" (higher in the other level), "down" (lower) or "none" (zero or undefined)."""
    effect = np.asarray(effect, dtype=float)
    out = np.full(effect.shape, "none", dtype=object)
    out[effect > 0] = "up"
    out[effect < 0] = "down"
    return out


def resolve_method(method: str, *, features: str, paired: bool, covariates: bool) -> str:
    """Pick the test for ``method="auto"`` and refuse combinations that would ignore the design."""
    if method not in METHODS:
        raise ValueError(f"method={method!r} is not supported; choose one of {list(METHODS)}")
    if features == "genes":
        if method not in ("auto", "deseq2"):
            raise ValueError(
                f"features='genes' is tested with PyDESeq2 on pseudobulk counts; method={method!r} "
                "applies to 'scores' and 'composition' (use method='auto' or 'deseq2')"
            )
        return "deseq2"
    if method == "deseq2":
        raise ValueError("method='deseq2' needs count data: use it with features='genes'")
    if method == "auto":
        if covariates:
            return "ols"
        return "wilcoxon" if paired else "mannwhitney"
    if covariates and method != "ols":
        raise ValueError(
            f"covariates are adjusted for only by method='ols' (or 'auto'); method={method!r} would ignore them"
        )
    if paired and method in UNPAIRED_METHODS:
        raise ValueError(
            f"pair_key was given but method={method!r} ignores the pairing; use 'wilcoxon', 'paired_t', "
            "'ols' or 'auto'"
        )
    if not paired and method in PAIRED_METHODS:
        raise ValueError(f"method={method!r} is a paired test and needs pair_key")
    return method


# --------------------------------------------------------------------------------------------------
# Tests on a samples x features table
# --------------------------------------------------------------------------------------------------
def _mannwhitney(x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    if np.ptp(np.concatenate([x, y])) == 0:
        return len(x) * len(y) / 2.0, 1.0
    res = stats.mannwhitneyu(x, y, alternative="two-sided", method="auto")
    return float(res.statistic), float(res.pvalue)


def _welch(x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    if np.ptp(x) == 0 and np.ptp(y) == 0:
        return (0.0, 1.0) if x[0] == y[0] else (np.sign(x[0] - y[0]) * np.inf, 0.0)
    res = stats.ttest_ind(x, y, equal_var=False)
    return float(res.statistic), float(res.pvalue)


def _wilcoxon(d: np.ndarray) -> tuple[float, float]:
    if np.all(d == 0):
        return 0.0, 1.0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        res = stats.wilcoxon(d, zero_method="wilcox", alternative="two-sided", method="auto")
    return float(res.statistic), float(res.pvalue)


def _paired_t(d: np.ndarray) -> tuple[float, float]:
    if np.ptp(d) == 0:
        return (0.0, 1.0) if d[0] == 0 else (np.sign(d[0]) * np.inf, 0.0)
    res = stats.ttest_1samp(d, 0.0)
    return float(res.statistic), float(res.pvalue)


def design_matrix(
    condition: pd.Series,
    reference: str,
    others: Sequence[str],
    *,
    covariates: pd.DataFrame | None = None,
    pairs: pd.Series | None = None,
) -> pd.DataFrame:
    """Intercept, one 0/1 column per other condition level, covariates and pair fixed effects."""
    X = pd.DataFrame({"Intercept": 1.0}, index=condition.index)
    for other in others:
        X[f"condition[{other}]"] = (condition == other).astype(float)
    if covariates is not None:
        for col in covariates.columns:
            values = covariates[col]
            if pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values):
                X[f"covariate[{col}]"] = values.astype(float)
            else:
                dummies = pd.get_dummies(values.astype(str), prefix=f"covariate[{col}]", drop_first=True)
                X = X.join(dummies.astype(float))
    if pairs is not None:
        dummies = pd.get_dummies(pairs.astype(str), prefix="pair", drop_first=True)
        X = X.join(dummies.astype(float))
    return X


def check_design(X: pd.DataFrame, others: Sequence[str]) -> None:
    rank = np.linalg.matrix_rank(X.to_numpy())
    if rank < X.shape[1]:
        raise ValueError(
            "the model matrix (condition + covariates"
            + (" + pairs" if any(c.startswith("pair_") for c in X.columns) else "")
            + f") is rank deficient ({rank} < {X.shape[1]} columns): a covariate is constant, duplicated "
            "or confounded with the condition; drop it from covariates"
        )
    if X.shape[0] - X.shape[1] < 1:
        raise ValueError(
            f"{X.shape[0]} samples cannot fit a model with {X.shape[1]} parameters "
            "(condition + covariates); use fewer covariates"
        )


def compare_samples(
    values: pd.DataFrame,
    condition: pd.Series,
    reference: str,
    *,
    method: str,
    pairs: pd.Series | None = None,
    covariates: pd.DataFrame | None = None,
    min_samples: int = 2,
) -> pd.DataFrame:
    """Compare each other condition level with ``reference``, feature by feature.

    Parameters
    ----------
    values
        Samples x features (one value per sample; NaN = feature not measured in that sample).
    condition
        Condition level of each sample (index = ``values.index``).
    reference
        The baseline level; effects are other minus reference.
    method
        One of :data:`SAMPLE_METHODS`.
    pairs
        Pair (patient) of each sample, for paired methods and the OLS pair fixed effect.
    covariates
        Samples x covariates, for ``method="ols"``.
    min_samples
        Fewest samples (pairs for paired tests) per level for a test; features below it are left out.

    Returns
    -------
    DataFrame with columns feature, contrast, effect, statistic, pvalue, n_reference, n_other,
    mean_reference, mean_other, method (no padj: adjust over the whole table with :func:`bh`).
    """
    condition = condition.astype(str).reindex(values.index)
    levels = [lv for lv in pd.unique(condition) if lv != reference]
    cond = condition.to_numpy()
    pair_arr = pairs.reindex(values.index).astype(str).to_numpy() if pairs is not None else None
    matrix = values.to_numpy(dtype=float)
    rows: list[dict] = []
    for j, feature in enumerate(values.columns):
        col = matrix[:, j]
        keep = ~np.isnan(col)
        if method == "ols":
            y = pd.Series(col[keep], index=values.index[keep])
            rows.extend(_ols_rows(feature, y, condition[keep], reference, levels, pairs, covariates, min_samples))
            continue
        is_ref = keep & (cond == reference)
        for other in levels:
            is_oth = keep & (cond == other)
            row = {"feature": feature, "contrast": f"{other} vs {reference}", "method": method}
            if method in PAIRED_METHODS:
                assert pair_arr is not None
                ref_by_pair = dict(zip(pair_arr[is_ref], col[is_ref]))
                oth_by_pair = dict(zip(pair_arr[is_oth], col[is_oth]))
                common = [p for p in ref_by_pair if p in oth_by_pair]
                if len(common) < min_samples:
                    continue
                r = np.array([ref_by_pair[p] for p in common])
                o = np.array([oth_by_pair[p] for p in common])
                d = o - r
                stat, p = _wilcoxon(d) if method == "wilcoxon" else _paired_t(d)
                row.update(effect=float(d.mean()), statistic=stat, pvalue=p, n_reference=len(common),
                           n_other=len(common), mean_reference=float(r.mean()), mean_other=float(o.mean()))
            else:
                r = col[is_ref]
                o = col[is_oth]
                if len(r) < min_samples or len(o) < min_samples:
                    continue
                stat, p = _mannwhitney(o, r) if method == "mannwhitney" else _welch(o, r)
                row.update(effect=float(o.mean() - r.mean()), statistic=stat, pvalue=p, n_reference=len(r),
                           n_other=len(o), mean_reference=float(r.mean()), mean_other=float(o.mean()))
            rows.append(row)
    columns = ["feature", "contrast", "effect", "statistic", "pvalue", "n_reference", "n_other",
               "mean_reference", "mean_other", "method"]
    return pd.DataFrame(rows, columns=columns)


def _testable_levels(cond: pd.Series, reference: str, levels: list[str], min_samples: int) -> list[str]:
    """Levels with at least ``min_samples`` samples; none when the reference itself has too few."""
    counts = cond.value_counts()
    if counts.get(reference, 0) < min_samples:
        return []
    return [lv for lv in levels if counts.get(lv, 0) >= min_samples]


def _ols_rows(
    feature: str,
    y: pd.Series,
    cond: pd.Series,
    reference: str,
    levels: list[str],
    pairs: pd.Series | None,
    covariates: pd.DataFrame | None,
    min_samples: int,
) -> list[dict]:
    import statsmodels.api as sm

    others = _testable_levels(cond, reference, levels, min_samples)
    if not others:
        return []
    keep = cond.isin([reference, *others])
    y, cond = y[keep], cond[keep]
    p_sub = None
    if pairs is not None:
        p_sub = pairs.reindex(y.index)
        # a pair seen once carries no within-pair information: leave it out
        seen = p_sub.map(p_sub.value_counts())
        y, cond, p_sub = y[seen > 1], cond[seen > 1], p_sub[seen > 1]
        others = _testable_levels(cond, reference, others, min_samples)
        if not others:
            return []
    cov = covariates.reindex(y.index) if covariates is not None else None
    X = design_matrix(cond, reference, others, covariates=cov, pairs=p_sub)
    check_design(X, others)
    if np.ptp(y.to_numpy(float)) == 0:
        fit = None
    else:
        fit = sm.OLS(y.to_numpy(float), X.to_numpy(), hasconst=True).fit()
    rows = []
    for other in others:
        j = X.columns.get_loc(f"condition[{other}]")
        r = y[cond == reference].to_numpy(float)
        o = y[cond == other].to_numpy(float)
        if fit is None:
            effect, stat, p = 0.0, 0.0, 1.0
        else:
            effect, stat, p = float(fit.params[j]), float(fit.tvalues[j]), float(fit.pvalues[j])
        rows.append({"feature": feature, "contrast": f"{other} vs {reference}", "effect": effect,
                     "statistic": stat, "pvalue": p, "n_reference": len(r), "n_other": len(o),
                     "mean_reference": float(r.mean()), "mean_other": float(o.mean()), "method": "ols"})
    return rows
