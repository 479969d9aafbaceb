"""Sample-level statistics shared by :func:`hcctme.tl.compare` and :func:`hcctme.tl.crosstalk`.

Every function takes one value per *unit* (a sample, or a patient when samples are pooled per
patient): the unit is the replicate, so cells never enter these tests. No AnnData in here.

Methods
-------
``moderated``
    The default for composition (propeller / limma style). Each feature is fitted by
    weighted least squares on the design (intercept, condition, covariates, pair or patient
    blocks); a unit's weight is ``1 / (tau2 + v)``, its known sampling variance ``v`` (e.g.
    ``1 / (4 n)`` for an arcsine-square-root proportion of ``n`` cells) plus the feature's
    between-unit variance ``tau2`` (method of moments), so cells per unit weigh in only as far as
    sampling noise matters next to biological variation. Residual variances are then moderated
    across features by empirical Bayes (limma's ``squeezeVar``: a scaled inverse chi-square prior
    fitted by moments of ``log s2``) and each condition coefficient gets a moderated t-test.
``wls``
    The same precision-weighted model, each feature with its own residual variance (no moderation).
    The default for signature scores with pairs or covariates: their spread differs between
    signatures and cell types (an inactive signature barely varies), so a prior shared across them
    would shrink the variance of exactly the features that vary and inflate the false-positive rate.
``ols``
    Ordinary least squares, no weights, no moderation.
``mannwhitney``, ``welch``
    Two-sided Mann-Whitney U / Welch t-test (unpaired, no covariates). Mann-Whitney is the default
    for scores in unpaired designs without covariates.
``wilcoxon``, ``paired_t``
    Wilcoxon signed-rank / paired t-test of within-pair differences (paired, no covariates).

No test returns a p-value of 0 from a degenerate input: a feature with no variation at all gets
p = 1 (nothing to detect); groups that are each constant but differ, or identical non-zero paired
differences, have no estimable variance and get NaN with a warning.
"""

from __future__ import annotations

import itertools
import math
import warnings
from collections.abc import Sequence
from functools import lru_cache

import numpy as np
import pandas as pd
from scipy import special, stats

from hcctme._constants import GENE_METHODS
from hcctme._logging import logger

UNPAIRED_METHODS = ("mannwhitney", "welch")
PAIRED_METHODS = ("wilcoxon", "paired_t")
MODEL_METHODS = ("moderated", "wls", "ols")
SAMPLE_METHODS = MODEL_METHODS + UNPAIRED_METHODS + PAIRED_METHODS
METHODS = ("auto", *SAMPLE_METHODS, *GENE_METHODS)
TOO_FEW_SAMPLES = "samples in the reference and another level"  # the end of testable_design's reason
RANK_TOL = 1e-7  # limma lmFit's QR tolerance, relative to a column's norm: the design's rank at it
RESULT_COLUMNS = ["feature", "contrast", "effect", "statistic", "pvalue", "n_reference", "n_other",
                  "mean_reference", "mean_other", "method", "df"]


def bh(pvalues: Sequence[float] | np.ndarray) -> np.ndarray:
    """Benjamini-Hochberg adjusted p-values; NaN entries stay NaN and do not count as tests."""
    p = np.asarray(pvalues, dtype=float)
    out = np.full(p.shape, np.nan)
    ok = np.isfinite(p)
    if ok.any():
        out[ok] = stats.false_discovery_control(np.clip(p[ok], 0.0, 1.0), method="bh")
    return out


def direction(effect: np.ndarray) -> np.ndarray:
    """"up" (higher in the other level), "down" (lower) or "none" (zero or undefined)."""
    effect = np.asarray(effect, dtype=float)
    out = np.full(effect.shape, "none", dtype=object)
    out[effect > 0] = "up"
    out[effect < 0] = "down"
    return out


# --------------------------------------------------------------------------------------------------
# Composition transforms (every one a function of the proportions only: depth-independent)
# --------------------------------------------------------------------------------------------------
TRANSFORMS = ("asin", "logit", "clr")


def multiplicative_replacement(props: np.ndarray, delta: float) -> np.ndarray:
    """Multiplicative replacement of the zeros of each row of a proportion matrix.

    Zeros become ``delta``, the other parts shrink by the same factor so that rows still sum to 1
    (Martin-Fernandez et al. 2003). The result depends on the proportions and ``delta`` only, never
    on the number of cells behind them.
    """
    props = np.asarray(props, dtype=float)
    zeros = props <= 0
    k = zeros.sum(axis=1, keepdims=True)
    return np.where(zeros, delta, props * (1.0 - k * delta))


def transform_proportions(counts: np.ndarray, transform: str, delta: float) -> tuple[np.ndarray, np.ndarray]:
    """Transformed proportions of a units x parts count matrix and their binomial sampling variance.

    ``asin``: ``arcsin(sqrt(p))`` of the raw proportions (propeller's default; zeros need no
    replacement), variance ``1 / (4 n)``. ``logit`` and ``clr`` (natural log): after multiplicative
    replacement of zeros by ``delta``; variances by the delta method, ``1 / (n p (1 - p))`` and
    ``(1 - p) / (n p)``, with ``p`` the part's proportion pooled over the units. ``n`` = cells of the unit.

    The unit's own ``p`` in the variance would make a weight depend on the outcome it weighs (a unit
    with no cell of a rare part, replaced by ``delta``, got almost no weight): on random splits of Lu
    2022's patients the weighted logit and clr tests then rejected 9-15 % of true nulls at 0.05.
    """
    counts = np.asarray(counts, dtype=float)
    n = counts.sum(axis=1, keepdims=True)
    props = counts / n
    if transform == "asin":
        return np.arcsin(np.sqrt(props)), np.broadcast_to(1.0 / (4.0 * n), props.shape).copy()
    repl = multiplicative_replacement(props, delta)
    pooled = multiplicative_replacement(counts.sum(axis=0, keepdims=True) / counts.sum(), delta)
    if transform == "logit":
        return np.log(repl / (1.0 - repl)), 1.0 / (n * pooled * (1.0 - pooled))
    logs = np.log(repl)
    return logs - logs.mean(axis=1, keepdims=True), (1.0 - pooled) / (n * pooled)


# --------------------------------------------------------------------------------------------------
# Method choice
# --------------------------------------------------------------------------------------------------
def resolve_method(method: str, *, features: str, paired: bool, covariates: bool) -> str:
    """Pick the test for ``method="auto"`` and refuse combinations that would ignore the design.

    ``auto``: ``limma-trend`` for genes; ``moderated`` for composition; for scores ``mannwhitney`` (unpaired, no
    covariates: the t-type tests ran at 0.06-0.07 on the simulator's null UCell means) or ``wls`` (pairs or
    covariates).
    """
    if method not in METHODS:
        raise ValueError(f"method={method!r} is not supported; choose one of {list(METHODS)}")
    if features == "genes":
        if method not in ("auto", *GENE_METHODS):
            raise ValueError(
                f"features='genes' is tested on pseudobulk counts with limma-trend, limma-voom or PyDESeq2; "
                f"method={method!r} applies to 'scores' and 'composition' (use method='auto', 'limma-trend', 'voom' "
                "or 'deseq2')"
            )
        return GENE_METHODS[0] if method == "auto" else method
    if method in GENE_METHODS:
        raise ValueError(f"method={method!r} needs count data: use it with features='genes'")
    if method == "auto":
        if features == "composition":
            return "moderated"
        return "wls" if covariates or paired else "mannwhitney"
    if covariates and method not in MODEL_METHODS:
        raise ValueError(
            f"covariates are adjusted for only by method='moderated', 'wls' or 'ols' (or 'auto'); method={method!r} "
            "would ignore them"
        )
    if paired and method in UNPAIRED_METHODS:
        raise ValueError(
            f"the design is paired (pair_key, or patient_key with a patient in several condition levels) but "
            f"method={method!r} ignores the pairing; use 'moderated', 'wls', 'ols', 'wilcoxon', 'paired_t' or 'auto'"
        )
    if not paired and method in PAIRED_METHODS:
        raise ValueError(f"method={method!r} is a paired test and needs pair_key (or patient_key with pairs)")
    return method


# --------------------------------------------------------------------------------------------------
# Rank and t tests (degenerate inputs never give p = 0)
# --------------------------------------------------------------------------------------------------
def _no_variance(what: str) -> tuple[float, float]:
    warnings.warn(f"{what}: no variance to test against; p-value set to NaN", RuntimeWarning, stacklevel=3)
    return np.nan, np.nan


# at most this many ways to split the samples: a tied Mann-Whitney p is exact (8 vs 8: 12,870)
_EXACT_TIED_SPLITS = 20_000


def mannwhitney(x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """Two-sided Mann-Whitney U (statistic of ``x``, p); two groups of one constant value give p = 1.

    With ties in small samples the p-value is the exact permutation p of the mid-rank statistic (scipy's
    ``method="auto"`` falls back to the normal approximation there, below what an exact test can give:
    0.025 for 4 vs 4, whose smallest is 2/70); otherwise scipy's (exact without ties at small n).
    """
    pooled = np.concatenate([x, y])
    if np.ptp(pooled) == 0:
        return len(x) * len(y) / 2.0, 1.0
    res = stats.mannwhitneyu(x, y, alternative="two-sided", method="auto")
    if len(np.unique(pooled)) < len(pooled) and math.comb(len(pooled), len(x)) <= _EXACT_TIED_SPLITS:
        return float(res.statistic), _tied_exact_p(pooled, len(x))
    return float(res.statistic), float(res.pvalue)


#: random relabellings of a Kruskal-Wallis permutation p where the distinct ones are more (:func:`kruskal`)
KRUSKAL_PERMUTATIONS = 9999


def kruskal(groups: Sequence[np.ndarray]) -> tuple[float, float]:
    """Kruskal-Wallis H of ``groups`` (one array of unit values each) and its permutation p.

    The chi-square p-value scipy gives is asymptotic and anti-conservative with few units per group (3 vs 3
    perfectly separated: 0.0495, where no relabelling of six values can give less than 0.1). The p here is the
    share of relabellings of the pooled values (group sizes kept) whose H reaches the observed one: exact over every
    distinct relabelling where they are at most :data:`KRUSKAL_PERMUTATIONS`, else over that many random ones
    (seeded, the observed labelling counted). All values equal: H = 0, p = 1.
    """
    arrays = [np.asarray(g, dtype=float) for g in groups]
    if np.ptp(np.concatenate(arrays)) == 0:
        return 0.0, 1.0

    def statistic(*samples: np.ndarray, axis: int = -1) -> np.ndarray:
        return stats.kruskal(*samples, axis=axis).statistic

    res = stats.permutation_test(arrays, statistic, permutation_type="independent", vectorized=True,
                                 n_resamples=KRUSKAL_PERMUTATIONS, alternative="greater", rng=0)
    return float(res.statistic), float(res.pvalue)


def _tied_exact_p(pooled: np.ndarray, n_x: int) -> float:
    """Two-sided exact p of the rank sum of the first ``n_x`` values over every split of ``pooled``."""
    ranks = stats.rankdata(pooled)
    sums = ranks[_splits(len(pooled), n_x)].sum(axis=1)
    centre = n_x * (len(pooled) + 1) / 2.0
    observed = abs(ranks[:n_x].sum() - centre)
    return float(np.mean(np.abs(sums - centre) >= observed - 1e-9))


@lru_cache(maxsize=64)
def _splits(n: int, k: int) -> np.ndarray:
    return np.array(list(itertools.combinations(range(n), k)), dtype=np.intp)


def _welch(x: np.ndarray, y: np.ndarray) -> tuple[float, float, float]:
    """Welch's t, its p-value and its Welch-Satterthwaite degrees of freedom (NaN for two constant groups)."""
    if np.ptp(x) == 0 and np.ptp(y) == 0:
        return (*((0.0, 1.0) if x[0] == y[0] else _no_variance("Welch test with two constant groups")), np.nan)
    res = stats.ttest_ind(x, y, equal_var=False)
    return float(res.statistic), float(res.pvalue), float(res.df)


def _wilcoxon(d: np.ndarray) -> tuple[float, float]:
    if np.all(d == 0):
        return 0.0, 1.0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        res = stats.wilcoxon(d, zero_method="wilcox", alternative="two-sided", method="auto")
    return float(res.statistic), float(res.pvalue)


def _paired_t(d: np.ndarray) -> tuple[float, float, float]:
    """The paired t, its p-value and its degrees of freedom (pairs - 1; NaN for identical differences)."""
    if np.ptp(d) == 0:
        return (*((0.0, 1.0) if d[0] == 0 else _no_variance("paired t-test with identical differences")), np.nan)
    res = stats.ttest_1samp(d, 0.0)
    return float(res.statistic), float(res.pvalue), float(res.df)


# --------------------------------------------------------------------------------------------------
# Design matrix
# --------------------------------------------------------------------------------------------------
def design_matrix(
    condition: pd.Series,
    reference: str,
    others: Sequence[str],
    *,
    covariates: pd.DataFrame | None = None,
    blocks: pd.Series | None = None,
) -> pd.DataFrame:
    """Intercept, one 0/1 column per other condition level, covariates and block (pair) fixed effects.

    A numeric covariate enters :func:`standardised`; a categorical one as 0/1 columns of its levels but the first.
    """
    X = pd.DataFrame({"Intercept": 1.0}, index=condition.index)
    for other in others:
        X[f"condition[{other}]"] = (condition == other).astype(float)
    if covariates is not None:
        for col in covariates.columns:
            values = covariates[col]
            if pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values):
                X[f"covariate[{col}]"] = standardised(values.astype(float))
            else:
                dummies = pd.get_dummies(values.astype(str), prefix=f"covariate[{col}]", drop_first=True)
                X = X.join(dummies.astype(float))
    if blocks is not None:
        dummies = pd.get_dummies(blocks.astype(str), prefix="block", drop_first=True)
        X = X.join(dummies.astype(float))
    return X


def standardised(values: pd.Series) -> pd.Series:
    """A numeric covariate centred and scaled to unit SD (all 0 when constant to ``RANK_TOL`` of its magnitude).

    With an intercept in the model the condition's coefficients do not change, and the fit stays well conditioned
    whatever the covariate's units and offset (a year, a date in nanoseconds).
    """
    centred = values - values.mean()
    sd = float(np.sqrt(np.mean(centred**2)))
    if sd <= RANK_TOL * float(np.sqrt(np.mean(values**2))):  # rounding noise around a constant, not a covariate
        return centred * 0.0
    return centred / sd


def _rank(X: pd.DataFrame) -> int:
    """Rank of ``X`` with its columns scaled to unit norm, singular values below ``RANK_TOL`` of the largest dropped.

    The column scaling makes the rank independent of each column's units; the tolerance is limma's (lmFit's QR):
    a column within 1e-7 of the others' span has no estimable coefficient.
    """
    if not X.shape[1]:
        return 0
    values = X.to_numpy(dtype=float)
    norms = np.linalg.norm(values, axis=0)
    singular = np.linalg.svd(values / np.where(norms > 0, norms, 1.0), compute_uv=False)
    return int(np.sum(singular > RANK_TOL * singular[0]))


def _blocks_absorb(X: pd.DataFrame, base: list[str], groups: dict[str, list[str]]) -> None:
    """Name the covariate the pair/patient blocks absorb (constant within each pair or patient), if one does."""
    blocks = base + groups["block"]
    if _rank(X[blocks]) < len(blocks):
        return
    for name, members in groups.items():
        if name != "block" and _rank(X[blocks + members]) < len(blocks) + len(members):
            raise ValueError(
                f"the model matrix is rank deficient: the covariate obs[{name!r}] is constant within each "
                f"pair/patient, so the pair/patient blocks already account for it; drop {name!r} from covariates"
            )


def check_design(X: pd.DataFrame) -> None:
    """Refuse a rank-deficient design, naming the first covariate (or the blocks) that makes it so.

    The rank is :func:`_rank`'s: whatever the columns' units, at limma's tolerance.
    """
    base = [c for c in X.columns if c == "Intercept" or c.startswith("condition[")]
    cols = list(base)
    if _rank(X[cols]) < len(cols):
        raise ValueError("the condition levels are not estimable from these samples")
    groups: dict[str, list[str]] = {}
    for c in X.columns:
        if c.startswith("covariate["):
            groups.setdefault(c[len("covariate["):].split("]", 1)[0], []).append(c)
        elif c.startswith("block_"):
            groups.setdefault("block", []).append(c)
    for name, members in groups.items():
        trial = cols + members
        if _rank(X[trial]) < len(trial):
            if name == "block":
                _blocks_absorb(X, base, groups)
                raise ValueError("the model matrix is rank deficient: the pair/patient blocks are collinear with the "
                                 "condition (each pair/patient holds one condition level?)")
            raise ValueError(
                f"the model matrix is rank deficient: the covariate obs[{name!r}] is constant, duplicated or "
                f"collinear with the condition (or an earlier covariate); drop {name!r} from covariates"
            )
        cols = trial
    if X.shape[0] - X.shape[1] < 1:
        raise ValueError(
            f"{X.shape[0]} samples cannot fit a model with {X.shape[1]} parameters "
            "(condition + covariates + blocks); use fewer covariates"
        )


# --------------------------------------------------------------------------------------------------
# Moderated weighted linear model (limma-style empirical Bayes)
# --------------------------------------------------------------------------------------------------
def _trigamma_inverse(x: float) -> float:
    """Solve trigamma(y) = x for y > 0 (limma's Newton iteration)."""
    if x > 1e7:
        return 1.0 / np.sqrt(x)
    if x < 1e-6:
        return 1.0 / x
    y = 0.5 + 1.0 / x
    for _ in range(50):
        tri = special.polygamma(1, y)
        dif = tri * (1.0 - tri / x) / special.polygamma(2, y)
        y += dif
        if -dif / y < 1e-8:
            break
    return float(y)


def squeeze_var(s2: np.ndarray, df: np.ndarray) -> tuple[np.ndarray, np.ndarray, float, float]:
    """Empirical-Bayes posterior variances (limma ``squeezeVar``): returns s2_post, df_total, d0, s0^2.

    The prior (``d0``, ``s0^2``) is fitted by moments of ``log s2`` over the features with a positive
    variance; with fewer than three such features there is no moderation (``d0 = 0``).
    """
    s2 = np.asarray(s2, float)
    df = np.asarray(df, float)
    ok = (s2 > 1e-300) & (df > 0) & np.isfinite(s2)
    if ok.sum() < 3:
        return s2.copy(), df.copy(), 0.0, np.nan
    z = np.log(s2[ok])
    d = df[ok]
    e = z - special.digamma(d / 2) + np.log(d / 2)
    emean = float(e.mean())
    d0 = prior_df(e, emean, 1, float(np.mean(special.polygamma(1, d / 2))))
    s0 = float(np.exp(emean + special.digamma(d0 / 2) - np.log(d0 / 2))) if np.isfinite(d0) else float(np.mean(s2[ok]))
    if np.isinf(d0):
        post = np.full_like(s2, s0)
        total = np.full_like(df, float(df[ok].sum()))
    else:
        post = (d0 * s0 + df * np.where(np.isfinite(s2), s2, 0.0)) / (d0 + df)
        total = np.minimum(df + d0, float(df[ok].sum()))
    return post, total, d0, s0


def prior_df(e: np.ndarray, emean: np.ndarray | float, n_params: int, trigamma: float) -> float:
    """Prior degrees of freedom from the spread of ``e`` around its fit (limma ``fitFDist``); inf when none is left.

    ``e``: the log variances adjusted for their degrees of freedom; ``emean``: their fitted location (a mean,
    or a trend over a covariate with ``n_params`` parameters); ``trigamma``: the sampling variance of ``e``.
    """
    evar = float(np.sum((e - emean) ** 2) / (len(e) - n_params)) - trigamma
    return 2.0 * _trigamma_inverse(evar) if evar > 0 else np.inf


def _wls(y: np.ndarray, X: np.ndarray, v: np.ndarray | None) -> tuple[np.ndarray, np.ndarray, float, int]:
    """Coefficients, unscaled covariance diagonal, residual variance and df of one feature."""
    n, p = X.shape
    XtX_inv = np.linalg.pinv(X.T @ X)
    w = np.ones(n)
    if v is not None and np.any(v > 0):
        beta = XtX_inv @ X.T @ y
        resid = y - X @ beta
        h = np.einsum("ij,jk,ik->i", X, XtX_inv, X)
        tau2 = max(0.0, (float(resid @ resid) - float(np.sum((1.0 - h) * v))) / (n - p))
        w = 1.0 / np.maximum(tau2 + v, 1e-12 * max(float(np.mean(v)), 1e-300))
        w = w / w.mean()
    Xw = X * w[:, None]
    cov = np.linalg.pinv(X.T @ Xw)
    beta = cov @ Xw.T @ y
    resid = y - X @ beta
    s2 = float(np.sum(w * resid**2) / (n - p))
    scale = max(float(np.mean(np.abs(y))), 1.0)
    if s2 < 1e-24 * scale**2:
        s2 = 0.0
    return beta, np.diag(cov), s2, n - p


def testable_design(sub: pd.DataFrame, cond_all: pd.Series, reference: str,
                min_samples: int) -> tuple[pd.DataFrame, np.ndarray, list[str]] | str:
    """Design matrix of the units in ``sub``, which of them enter it, and the testable levels; or why none.

    A pair/patient block left with one unit is dropped (it carries no within-block information), before and
    after the levels with fewer than ``min_samples`` units are; the design of what is left must be estimable.
    """
    too_few = f"fewer than {min_samples} {TOO_FEW_SAMPLES}"
    cond = cond_all.loc[sub.index]
    keep = np.ones(len(sub), dtype=bool)
    blocks = sub.get("block")
    if blocks is not None:  # a block seen once carries no within-block information
        keep &= (blocks.map(blocks.value_counts()) > 1).to_numpy()
    counts = cond[keep].value_counts()
    if counts.get(reference, 0) < min_samples:
        return too_few
    others = [lv for lv in pd.unique(cond_all) if lv != reference and counts.get(lv, 0) >= min_samples]
    if not others:
        return too_few
    keep &= cond.isin([reference, *others]).to_numpy()
    if blocks is not None:  # again: dropping levels can leave blocks with one unit
        kept = blocks[keep]
        keep &= blocks.map(kept.value_counts()).fillna(0).to_numpy() > 1
        counts = cond[keep].value_counts()
        others = [lv for lv in others if counts.get(lv, 0) >= min_samples]
        if counts.get(reference, 0) < min_samples or not others:
            return too_few
        keep &= cond.isin([reference, *others]).to_numpy()
    sub = sub[keep]
    cov_cols = [c for c in sub.columns if c.startswith("covariate:")]
    covs = sub[cov_cols].rename(columns=lambda c: c.split(":", 1)[1]) if cov_cols else None
    X = design_matrix(cond[keep], reference, others, covariates=covs, blocks=sub.get("block"))
    try:
        check_design(X)
    except ValueError as err:  # the full design was checked up front: these units alone cannot fit it
        return f"these samples cannot fit the design ({err})"
    return X, keep, others


def _baseline_design(sub: pd.DataFrame, cond_all: pd.Series, reference: str, min_samples: int, *, prior: bool
                     ) -> tuple[str | None, tuple[pd.DataFrame, np.ndarray, list[str]] | None]:
    """The design of ``sub`` with ``reference`` as baseline, or else (``prior``) with the first level that can be one.

    With a shared prior, a feature whose reference level keeps too few units is still fit over the levels that can
    be tested, so its residual variance enters the prior whichever level is the reference: the p-value of a contrast
    then does not depend on which of its two levels is the reference (as in limma).
    """
    for baseline in dict.fromkeys([reference, *(pd.unique(cond_all) if prior else ())]):
        setup = testable_design(sub, cond_all, baseline, min_samples)
        if not isinstance(setup, str):
            return baseline, setup
    return None, None


def moderated_fit(
    values: pd.DataFrame,
    design: pd.DataFrame,
    reference: str,
    *,
    variances: pd.DataFrame | None = None,
    min_samples: int = 2,
    moderate: bool = True,
) -> pd.DataFrame:
    """Weighted linear model per feature + empirical-Bayes moderated t of each condition coefficient.

    ``values`` and ``variances``: units x features (NaN = not measured there). ``design``: units with
    ``condition``, optional ``block`` and ``covariate:<name>`` columns. Returns the rows of
    :data:`RESULT_COLUMNS` (``df`` = moderated degrees of freedom).
    """
    cond_all = design["condition"].astype(str)
    matrix = values.to_numpy(dtype=float)
    var_matrix = variances.reindex(index=values.index, columns=values.columns).to_numpy(dtype=float) \
        if variances is not None else None
    patterns, codes = np.unique(~np.isnan(matrix.T), axis=0, return_inverse=True)
    fits = []
    for k, pattern in enumerate(patterns):  # features measured in the same units share a design
        baseline, setup = _baseline_design(design.loc[values.index[pattern]], cond_all, reference, min_samples,
                                           prior=moderate)
        if setup is None:
            continue
        X, keep, others = setup
        rows = np.flatnonzero(pattern)[keep]
        cond = cond_all.loc[values.index[rows]].to_numpy()
        Xn = X.to_numpy(float)
        is_ref = cond == reference
        for j in np.flatnonzero(codes.ravel() == k):
            y = matrix[rows, j]
            v = var_matrix[rows, j] if var_matrix is not None else None
            beta, unscaled, s2, df = _wls(y, Xn, v)
            if baseline != reference:  # no contrast with the reference here; its variance still informs the prior
                fits.append({"feature": values.columns[j], "s2": s2, "df_resid": df, "prior_only": True})
                continue
            for other in others:
                c = X.columns.get_loc(f"condition[{other}]")
                is_oth = cond == other
                fits.append({"feature": values.columns[j], "contrast": f"{other} vs {reference}",
                             "effect": float(beta[c]), "unscaled": float(unscaled[c]), "s2": s2, "df_resid": df,
                             "n_reference": int(is_ref.sum()), "n_other": int(is_oth.sum()),
                             "mean_reference": float(y[is_ref].mean()), "mean_other": float(y[is_oth].mean()),
                             "constant": bool(np.ptp(y) == 0), "prior_only": False})
    frame = pd.DataFrame(fits)
    if frame.empty or frame["prior_only"].all():
        return pd.DataFrame(columns=RESULT_COLUMNS)
    # one variance per feature (shared by its contrasts) enters the prior
    per_feature = frame.drop_duplicates("feature")
    if moderate:
        post, total, _, _ = squeeze_var(per_feature["s2"].to_numpy(), per_feature["df_resid"].to_numpy(float))
    else:
        post, total = per_feature["s2"].to_numpy(), per_feature["df_resid"].to_numpy(float)
    s2_post = dict(zip(per_feature["feature"], post, strict=True))
    df_post = dict(zip(per_feature["feature"], total, strict=True))
    frame = frame[~frame["prior_only"].astype(bool)].reset_index(drop=True)
    frame["s2_post"] = frame["feature"].map(s2_post)
    frame["df"] = frame["feature"].map(df_post)
    se = np.sqrt(frame["s2_post"] * frame["unscaled"]).to_numpy()
    with np.errstate(divide="ignore", invalid="ignore"):
        t = frame["effect"].to_numpy() / se
    p = 2.0 * stats.t.sf(np.abs(t), frame["df"])
    constant = frame["constant"].to_numpy()
    t = np.where(constant, 0.0, t)
    p = np.where(constant, 1.0, p)
    bad = ~np.isfinite(p) | ((se == 0) & ~constant)
    if bad.any():
        logger.warning("%d feature(s) have no residual variance and no prior to borrow from; p-value set to NaN",
                       int(bad.sum()))
        p[bad], t[bad] = np.nan, np.nan
    frame["statistic"] = t
    frame["pvalue"] = p
    frame["method"] = "moderated" if moderate else "wls"
    return frame[RESULT_COLUMNS]


# --------------------------------------------------------------------------------------------------
# Entry point for a units x features table
# --------------------------------------------------------------------------------------------------
def compare_samples(
    values: pd.DataFrame,
    design: pd.DataFrame,
    reference: str,
    *,
    method: str,
    variances: pd.DataFrame | None = None,
    min_samples: int = 2,
) -> pd.DataFrame:
    """Compare each other condition level with ``reference``, feature by feature.

    Parameters
    ----------
    values
        Units x features (one value per unit; NaN = feature not measured in that unit).
    design
        Units (index, a superset of ``values.index``) with ``condition`` and optionally ``block``
        (pair / patient, for paired designs) and ``covariate:<name>`` columns.
    reference
        The baseline level; effects are other minus reference.
    method
        One of :data:`SAMPLE_METHODS`.
    variances
        Units x features sampling variances of ``values`` (``method="moderated"``: precision weights).
    min_samples
        Fewest units (pairs for paired tests) per level for a test; features below it are left out.

    Returns
    -------
    DataFrame with :data:`RESULT_COLUMNS` (no padj: adjust over the whole table with :func:`bh`).
    """
    design = design.loc[values.index]
    if method in MODEL_METHODS:
        table = moderated_fit(values, design, reference, variances=None if method == "ols" else variances,
                              min_samples=min_samples, moderate=method == "moderated")
        return table.assign(method=method)
    condition = design["condition"].astype(str)
    levels = [lv for lv in pd.unique(condition) if lv != reference]
    cond = condition.to_numpy()
    blocks = design["block"].astype(str).to_numpy() if "block" in design else None
    matrix = values.to_numpy(dtype=float)
    rows: list[dict] = []
    for j, feature in enumerate(values.columns):
        col = matrix[:, j]
        keep = ~np.isnan(col)
        is_ref = keep & (cond == reference)
        for other in levels:
            is_oth = keep & (cond == other)
            if method in PAIRED_METHODS:
                ref_by = dict(zip(blocks[is_ref], col[is_ref], strict=True))
                oth_by = dict(zip(blocks[is_oth], col[is_oth], strict=True))
                common = [b for b in ref_by if b in oth_by]
                if len(common) < min_samples:
                    continue
                r = np.array([ref_by[b] for b in common])
                o = np.array([oth_by[b] for b in common])
                d = o - r
                stat, p, df = (*_wilcoxon(d), np.nan) if method == "wilcoxon" else _paired_t(d)
                effect = float(d.mean())
            else:
                r, o = col[is_ref], col[is_oth]
                if len(r) < min_samples or len(o) < min_samples:
                    continue
                stat, p, df = (*mannwhitney(o, r), np.nan) if method == "mannwhitney" else _welch(o, r)
                effect = float(o.mean() - r.mean())
            rows.append({"feature": feature, "contrast": f"{other} vs {reference}", "effect": effect,
                         "statistic": stat, "pvalue": p, "n_reference": len(r), "n_other": len(o),
                         "mean_reference": float(r.mean()), "mean_other": float(o.mean()), "method": method,
                         "df": df})
    return pd.DataFrame(rows, columns=RESULT_COLUMNS)


# --------------------------------------------------------------------------------------------------
# Detection (presence/absence per unit): the first part of a two-part test
# --------------------------------------------------------------------------------------------------
def detection_test(detected: np.ndarray, condition: np.ndarray, reference: str, other: str,
                   blocks: np.ndarray | None = None) -> tuple[float, float]:
    """Difference in detection rate (other minus reference) and an exact two-sided p-value.

    Unpaired: Fisher's exact test of the 2 x 2 table. Paired (``blocks``): exact McNemar test (a
    binomial test on the discordant pairs). No information (everything detected, or nothing)
    gives p = 1.
    """
    detected = np.asarray(detected, bool)
    is_ref, is_oth = condition == reference, condition == other
    if blocks is None:
        a, b = int(detected[is_oth].sum()), int((~detected[is_oth]).sum())
        c, d = int(detected[is_ref].sum()), int((~detected[is_ref]).sum())
        diff = a / max(a + b, 1) - c / max(c + d, 1)
        if (a + c) == 0 or (b + d) == 0:
            return diff, 1.0
        return diff, float(stats.fisher_exact([[a, b], [c, d]]).pvalue)
    ref = dict(zip(blocks[is_ref], detected[is_ref], strict=True))
    oth = dict(zip(blocks[is_oth], detected[is_oth], strict=True))
    common = [k for k in ref if k in oth]
    gain = sum(oth[k] and not ref[k] for k in common)
    loss = sum(ref[k] and not oth[k] for k in common)
    diff = (gain - loss) / max(len(common), 1)
    if gain + loss == 0:
        return diff, 1.0
    return diff, float(stats.binomtest(gain, gain + loss, 0.5).pvalue)


def combine_two_part(p_detection: np.ndarray, p_strength: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One statistic, its degrees of freedom and one p-value per row from the detection and strength p-values.

    Their chi-square(1) statistics are summed, as in hurdle models; a part that was not tested (NaN)
    is left out; NaN when neither was.
    """
    pd_ = np.asarray(p_detection, float)
    ps = np.asarray(p_strength, float)
    chi = np.zeros(len(pd_))
    dof = np.zeros(len(pd_))
    for p in (pd_, ps):
        ok = np.isfinite(p)
        chi[ok] += stats.chi2.isf(np.clip(p[ok], 1e-300, 1.0), 1)
        dof[ok] += 1
    out = np.full(len(pd_), np.nan)
    has = dof > 0
    out[has] = stats.chi2.sf(chi[has], dof[has])
    return np.where(has, chi, np.nan), np.where(has, dof, np.nan), out
