"""Gene-level differential expression of pseudobulk counts: limma-trend, limma-voom (vectorised) and PyDESeq2.

Both take one group's samples x genes counts and a design matrix (intercept, one column per other
condition level, covariates, pair / patient blocks; :func:`hcctme.tl._stats.design_matrix`) and
return, per other level, a table indexed by gene with ``log2FoldChange``, ``stat``, ``pvalue`` and
``lfcSE`` (plus ``baseMean`` for PyDESeq2, ``AveExpr`` for voom), and the samples x genes matrix
the per-sample values are drawn from (normalised counts for PyDESeq2, log2-CPM for limma).

``limma-trend`` (the default of :func:`hcctme.tl.compare`): the genes passing edgeR's ``filterByExpr``,
TMM factors, edgeR's log-CPM (prior count 2), least squares per gene, and moderated t-tests whose prior
variance follows the genes' mean log-CPM (limma ``eBayes(trend=TRUE)``; ``squeezeVar`` with a natural
spline trend). Its false-positive rate stays at the nominal level however much the samples' library sizes
differ, where voom's precision weights, estimated over those sizes, let it rise (README).

``voom`` follows limma (Law et al. 2014; Ritchie et al. 2015) step by step, every gene at once:
edgeR's ``filterByExpr`` gene filter, TMM normalisation factors (edgeR ``calcNormFactors``) of the genes
kept, log2-CPM with a 0.5 offset, an unweighted
fit whose residual standard deviations give the mean-variance trend (lowess of sqrt(sd) on the
mean log count, span 0.5), observation weights ``1 / trend(fitted log count)^4``, a weighted least
squares fit per gene, then empirical-Bayes moderated t-tests (limma ``eBayes``: the residual
variances are squeezed towards a scaled inverse chi-square prior fitted by moments,
:func:`hcctme.tl._stats.squeeze_var`). The weighted fits are batched: ``X' W X`` for all genes is
one matrix product of the weights with the per-sample outer products of the design rows.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import numpy as np
import pandas as pd
from scipy import stats

from hcctme._logging import logger
from hcctme.tl import _stats
from hcctme.tl._threads import one_blas_thread

TMM_LOGRATIO_TRIM = 0.3  # edgeR calcNormFactors defaults
TMM_SUM_TRIM = 0.05
VOOM_SPAN = 0.5  # limma voom's lowess span
PRIOR_COUNT = 2.0  # edgeR cpm(log=TRUE) default: the log-CPM of limma-trend
FILTER_MIN_COUNT = 10  # edgeR filterByExpr defaults
FILTER_MIN_TOTAL = 15
FILTER_LARGE_N = 10
FILTER_MIN_PROP = 0.7
RESULT_COLUMNS = ["log2FoldChange", "stat", "pvalue", "lfcSE"]
LIMMA_COLUMNS = [*RESULT_COLUMNS, "AveExpr", "df"]  # the limma methods' tables: the moderated t's df too
_FIT_BYTES = 256 * 2**20  # memory for the per-gene X'WX blocks of one batch
_SINGULAR = ("the weighted least-squares fit is numerically singular: a covariate or the pair/patient blocks are "
             "(nearly) collinear with the condition; drop that covariate")


# --------------------------------------------------------------------------------------------------
# TMM normalisation (edgeR calcNormFactors, method="TMM")
# --------------------------------------------------------------------------------------------------
def tmm_factors(counts: np.ndarray) -> np.ndarray:
    """TMM normalisation factors of samples x genes counts (edgeR ``calcNormFactors``), geometric mean 1.

    The reference sample is the one whose upper-quartile fraction is closest to the mean; each
    sample's factor is the precision-weighted mean log-ratio to it over the genes left after
    trimming 30% of log-ratios and 5% of abundances at each end.
    """
    counts = np.asarray(counts, dtype=float)
    counts = counts[:, counts.sum(axis=0) > 0]
    lib = counts.sum(axis=1)
    f75 = np.quantile(counts, 0.75, axis=1) / lib
    if np.median(f75) < 1e-20:
        ref = int(np.argmax(np.sqrt(counts).sum(axis=1)))
    else:
        ref = int(np.argmin(np.abs(f75 - f75.mean())))
    factors = np.array([_tmm_one(counts[i], counts[ref], lib[i], lib[ref]) for i in range(counts.shape[0])])
    return factors / np.exp(np.mean(np.log(factors)))


def _tmm_one(obs: np.ndarray, ref: np.ndarray, n_obs: float, n_ref: float) -> float:
    """TMM factor of one sample against the reference sample (edgeR's ``.calcFactorTMM``)."""
    if n_obs <= 0 or n_ref <= 0:
        return 1.0
    with np.errstate(divide="ignore", invalid="ignore"):
        # edgeR's expressions, in its order: integer counts give exact ties that the trimming ranks must keep
        log_r = np.log2((obs / n_obs) / (ref / n_ref))
        abs_e = (np.log2(obs / n_obs) + np.log2(ref / n_ref)) / 2
        v = (n_obs - obs) / n_obs / obs + (n_ref - ref) / n_ref / ref
    fin = np.isfinite(log_r) & np.isfinite(abs_e)
    log_r, abs_e, v = log_r[fin], abs_e[fin], v[fin]
    if log_r.size == 0 or np.max(np.abs(log_r)) < 1e-6:
        return 1.0
    n = log_r.size
    lo_l = np.floor(n * TMM_LOGRATIO_TRIM) + 1
    lo_s = np.floor(n * TMM_SUM_TRIM) + 1
    rank_r, rank_e = stats.rankdata(log_r), stats.rankdata(abs_e)
    keep = (rank_r >= lo_l) & (rank_r <= n + 1 - lo_l) & (rank_e >= lo_s) & (rank_e <= n + 1 - lo_s)
    if not keep.any():
        return 1.0
    f = np.sum(log_r[keep] / v[keep]) / np.sum(1.0 / v[keep])
    return float(2.0 ** f) if np.isfinite(f) else 1.0


# --------------------------------------------------------------------------------------------------
# Expression filter (edgeR filterByExpr)
# --------------------------------------------------------------------------------------------------
def filter_by_expr(counts: np.ndarray, X: np.ndarray) -> np.ndarray:
    """Genes expressed enough to test (edgeR ``filterByExpr`` with its defaults), a boolean mask.

    A gene is kept when it has at least 10 counts per median library size (as CPM) in as many
    samples as the smallest group (``1 / max(hat values)`` of the design; above 10 samples,
    10 + 0.7 x the rest) and at least 15 counts in all. Without it, genes of a handful of counts read
    as differential whenever the arms differ in depth (a zero is a higher log-CPM in a shallower sample).
    The hat values come from a QR decomposition of ``X`` (R's ``hat``), whatever the units of its columns.
    """
    lib = counts.sum(axis=1)
    q, _ = np.linalg.qr(X)
    hat = np.sum(q**2, axis=1)
    min_samples = 1.0 / np.max(hat)
    if min_samples > FILTER_LARGE_N:
        min_samples = FILTER_LARGE_N + (min_samples - FILTER_LARGE_N) * FILTER_MIN_PROP
    cutoff = FILTER_MIN_COUNT / np.median(lib) * 1e6
    cpm = counts / lib[:, None] * 1e6
    tol = 1e-14
    return ((cpm >= cutoff).sum(axis=0) >= min_samples - tol) & (counts.sum(axis=0) >= FILTER_MIN_TOTAL - tol)


# --------------------------------------------------------------------------------------------------
# voom + weighted fit + eBayes
# --------------------------------------------------------------------------------------------------
def voom_weights(counts: np.ndarray, X: np.ndarray, lib: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """log2-CPM and voom precision weights (both samples x genes) of counts on the design ``X``."""
    from statsmodels.nonparametric.smoothers_lowess import lowess

    y = np.log2((counts + 0.5) / (lib[:, None] + 1.0) * 1e6)
    coef, *_ = np.linalg.lstsq(X, y, rcond=None)
    fitted = X @ coef
    df = X.shape[0] - np.linalg.matrix_rank(X)
    sigma = np.sqrt(np.sum((y - fitted) ** 2, axis=0) / df)
    sx = y.mean(axis=0) + np.mean(np.log2(lib + 1.0)) - np.log2(1e6)
    sy = np.sqrt(sigma)
    span = float(np.ptp(sx)) if sx.size else 0.0
    trend = lowess(sy, sx, frac=VOOM_SPAN, it=3, delta=0.01 * span, return_sorted=True)
    tx, idx = np.unique(trend[:, 0], return_inverse=True)
    ty = np.bincount(idx, weights=trend[:, 1]) / np.bincount(idx)  # ties: mean, as limma's approxfun
    fitted_logcount = fitted + np.log2(lib + 1.0)[:, None] - np.log2(1e6)
    scale = np.interp(fitted_logcount, tx, ty)  # constant beyond the ends (approxfun rule=2)
    return y, 1.0 / np.maximum(scale, 1e-12) ** 4


def weighted_fit(y: np.ndarray, w: np.ndarray, X: np.ndarray, coefs: Sequence[int]) -> tuple[np.ndarray, ...]:
    """Weighted least squares of every gene (columns of ``y``, weights ``w``) on the same design ``X``.

    Returns the coefficients ``coefs`` (genes x k), their unscaled standard errors (genes x k), the
    residual variances (genes) and the residual degrees of freedom.
    """
    n, p = X.shape
    g = y.shape[1]
    outer = (X[:, :, None] * X[:, None, :]).reshape(n, p * p)
    beta = np.empty((g, len(coefs)))
    unscaled = np.empty((g, len(coefs)))
    s2 = np.empty(g)
    step = max(1, int(_FIT_BYTES // (8 * p * p * 3)))
    for start in range(0, g, step):
        sl = slice(start, min(g, start + step))
        wb, yb = w[:, sl], y[:, sl]
        xtwx = (wb.T @ outer).reshape(-1, p, p)
        xtwy = (wb * yb).T @ X
        try:
            cov = np.linalg.inv(xtwx)  # positive definite: weights > 0, X of full rank
        except np.linalg.LinAlgError as err:
            raise ValueError(_SINGULAR) from err
        variances = cov[:, coefs, coefs]
        if not np.all(variances > 0):  # a negative variance: X'WX numerically singular, its inverse meaningless
            raise ValueError(_SINGULAR)
        b = np.einsum("gij,gj->gi", cov, xtwy)
        resid = yb - X @ b.T
        s2[sl] = np.sum(wb * resid**2, axis=0)
        beta[sl] = b[:, coefs]
        unscaled[sl] = np.sqrt(variances)
    df = n - int(np.linalg.matrix_rank(X))
    return beta, unscaled, s2 / df, df


def ebayes(beta: np.ndarray, unscaled: np.ndarray, s2: np.ndarray, df: int) -> tuple[np.ndarray, ...]:
    """Moderated t statistics (limma ``eBayes``), two-sided p-values and standard errors, genes x k, and the df.

    The residual variances ``s2`` are squeezed towards a prior fitted across the genes
    (:func:`hcctme.tl._stats.squeeze_var`); the t statistics have the residual plus the prior degrees of
    freedom (at most the pooled residual degrees of freedom), returned last (one per gene).
    """
    post, df_total, d0, s0 = _stats.squeeze_var(s2, np.full(s2.shape, float(df)))
    logger.debug("voom: %d genes, residual df %d, prior df %.3g, prior variance %.3g", len(s2), df, d0, s0)
    se = unscaled * np.sqrt(post)[:, None]
    with np.errstate(divide="ignore", invalid="ignore"):
        t = beta / se
    return t, 2.0 * stats.t.sf(np.abs(t), df_total[:, None]), se, df_total


def ns_basis(x: np.ndarray, df: int) -> np.ndarray:
    """A basis of the natural cubic splines of R's ``splines::ns(x, df, intercept=TRUE)``.

    Knots: the range of ``x`` and ``df - 2`` interior knots at its quantiles, as R places them; the
    truncated-power basis spans the same functions as R's B-spline basis, so least-squares fits equal.
    """
    x = np.asarray(x, dtype=float)
    if df < 2:
        return np.ones((x.size, 1))
    knots = np.concatenate([[x.min()], np.quantile(x, np.linspace(0, 1, df)[1:-1]), [x.max()]])

    def d(k: int) -> np.ndarray:
        return (np.maximum(x - knots[k], 0) ** 3 - np.maximum(x - knots[-1], 0) ** 3) / (knots[-1] - knots[k])

    columns = [np.ones_like(x), x] + [d(k) - d(len(knots) - 2) for k in range(len(knots) - 2)]
    return np.column_stack(columns)


def squeeze_var_trend(s2: np.ndarray, df: float, covariate: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
    """Posterior variances towards a prior that trends with ``covariate`` (limma ``squeezeVar(var, df, covariate)``).

    The prior's location is a natural-spline regression of the log variances on the covariate
    (limma ``fitFDist``: up to 4 degrees of freedom), its degrees of freedom come from the residual
    spread. Returns the posterior variances, the total degrees of freedom per gene and the prior df.
    With fewer than 3 genes or a single covariate value the prior is limma's without a covariate: a constant,
    the mean variance when nothing is left of the spread for a prior df.
    """
    from scipy import special

    s2 = np.asarray(s2, dtype=float)
    n = s2.size
    x = np.maximum(s2, 0.0)
    median = float(np.median(x))
    x = np.maximum(x, 1e-5 * (median if median > 0 else 1.0))
    e = np.log(x) - special.digamma(df / 2) + np.log(df / 2)
    spline_df = min(1 + (n >= 3) + (n >= 6) + (n >= 30), np.unique(covariate).size)
    basis = ns_basis(covariate, int(spline_df))
    coef, *_ = np.linalg.lstsq(basis, e, rcond=None)
    emean = basis @ coef
    rank = np.linalg.matrix_rank(basis)
    d0 = _stats.prior_df(e, emean, int(rank), float(special.polygamma(1, df / 2)))
    if np.isfinite(d0):
        prior = np.exp(emean + special.digamma(d0 / 2) - np.log(d0 / 2))
        post = (d0 * prior + df * s2) / (d0 + df)
    elif spline_df < 2:  # limma's fitFDist without the covariate: the pooled variance is the prior's MLE
        post = np.full(n, x.mean())
    else:
        post = np.exp(emean)
    total = np.minimum(np.full(n, df + d0), df * n)
    return post, total, d0


def log_cpm(counts: np.ndarray, lib: np.ndarray, prior_count: float = PRIOR_COUNT) -> np.ndarray:
    """Log2 counts per million with a prior count scaled by library size (edgeR ``cpm(log=TRUE)``)."""
    prior = prior_count * lib / lib.mean()
    return np.log2((counts + prior[:, None]) / (lib + 2.0 * prior)[:, None] * 1e6)


def _filtered(counts: pd.DataFrame, design: np.ndarray) -> tuple[pd.DataFrame, np.ndarray] | None:
    """Counts of the genes passing :func:`filter_by_expr` and their TMM-scaled library sizes (None: < 2 genes)."""
    keep = filter_by_expr(counts.to_numpy(dtype=float), design)
    if keep.sum() < 2:
        return None
    counts = counts.loc[:, keep]
    values = counts.to_numpy(dtype=float)
    return counts, values.sum(axis=1) * tmm_factors(values)


def _tables(counts: pd.DataFrame, others: Sequence[str], beta: np.ndarray, t: np.ndarray, p: np.ndarray,
            se: np.ndarray, ave: np.ndarray, df: np.ndarray) -> dict[str, pd.DataFrame]:
    return {other: pd.DataFrame({"log2FoldChange": beta[:, k], "stat": t[:, k], "pvalue": p[:, k], "lfcSE": se[:, k],
                                 "AveExpr": ave, "df": df}, index=counts.columns)
            for k, other in enumerate(others)}


def _empty(counts: pd.DataFrame, others: Sequence[str]) -> tuple[dict[str, pd.DataFrame], pd.DataFrame]:
    return ({other: pd.DataFrame(columns=LIMMA_COLUMNS, dtype=float) for other in others},
            pd.DataFrame(index=counts.index, dtype=float))


def run_trend(
    counts: pd.DataFrame, X: pd.DataFrame, others: Sequence[str]
) -> tuple[dict[str, pd.DataFrame], pd.DataFrame]:
    """limma-trend on samples x genes counts with design ``X``; results per other level and log2-CPM.

    The genes passing :func:`filter_by_expr`, TMM, edgeR's log-CPM (prior count 2), an unweighted
    least-squares fit per gene and the moderated t with a prior variance that trends with the
    gene's mean log-CPM (limma ``eBayes(trend=TRUE)``).
    """
    design = X.to_numpy(dtype=float)
    prepared = _filtered(counts, design)
    if prepared is None:
        return _empty(counts, others)
    counts, lib = prepared
    y = log_cpm(counts.to_numpy(dtype=float), lib)
    coefs = [list(X.columns).index(f"condition[{other}]") for other in others]
    beta, unscaled, s2, df = weighted_fit(y, np.ones_like(y), design, coefs)
    ave = y.mean(axis=0)
    post, df_total, d0 = squeeze_var_trend(s2, float(df), ave)
    logger.debug("limma-trend: %d genes, residual df %d, prior df %.3g", len(s2), df, d0)
    se = unscaled * np.sqrt(post)[:, None]
    with np.errstate(divide="ignore", invalid="ignore"):
        t = beta / se
    p = 2.0 * stats.t.sf(np.abs(t), df_total[:, None])
    return (_tables(counts, others, beta, t, p, se, ave, df_total),
            pd.DataFrame(y, index=counts.index, columns=counts.columns))


def run_voom(
    counts: pd.DataFrame, X: pd.DataFrame, others: Sequence[str]
) -> tuple[dict[str, pd.DataFrame], pd.DataFrame]:
    """limma-voom on samples x genes counts with design ``X``; results per other level and log2-CPM.

    ``X`` has a ``condition[<level>]`` column per other level (the reference is the intercept). Genes
    failing :func:`filter_by_expr` are left out (as in edgeR / limma workflows and muscat); the library
    sizes and TMM factors are those of the genes kept. With fewer than two genes kept the tables are empty.
    """
    design = X.to_numpy(dtype=float)
    prepared = _filtered(counts, design)
    if prepared is None:
        return _empty(counts, others)
    counts, lib = prepared
    y, w = voom_weights(counts.to_numpy(dtype=float), design, lib)
    coefs = [list(X.columns).index(f"condition[{other}]") for other in others]
    beta, unscaled, s2, df = weighted_fit(y, w, design, coefs)
    t, p, se, df_total = ebayes(beta, unscaled, s2, df)
    return (_tables(counts, others, beta, t, p, se, y.mean(axis=0), df_total),
            pd.DataFrame(y, index=counts.index, columns=counts.columns))


# --------------------------------------------------------------------------------------------------
# PyDESeq2
# --------------------------------------------------------------------------------------------------
def run_deseq2(
    counts: pd.DataFrame, design: pd.DataFrame, reference: str, others: Sequence[str]
) -> tuple[dict[str, pd.DataFrame], pd.DataFrame]:
    """Fit PyDESeq2 (quiet, one thread) and return results per other level and normalised counts.

    ``design`` holds ``condition`` and optionally ``block`` and ``covariate:<name>`` columns (one
    row per sample of ``counts``). Levels and names are mapped to safe tokens for the formula.
    """
    from pydeseq2.dds import DeseqDataSet
    from pydeseq2.default_inference import DefaultInference
    from pydeseq2.ds import DeseqStats

    level_code = {reference: "L0", **{o: f"L{i + 1}" for i, o in enumerate(others)}}
    meta = pd.DataFrame({"condition": design["condition"].map(level_code).to_numpy()}, index=counts.index)
    terms = []
    if "block" in design:
        codes = {p: f"P{i}" for i, p in enumerate(pd.unique(design["block"]))}
        meta["block"] = design["block"].map(codes).to_numpy()
        terms.append("block")
    for i, col in enumerate(c for c in design.columns if c.startswith("covariate:")):
        values = design[col]
        if pd.api.types.is_numeric_dtype(values):  # standardised: PyDESeq2's IRLS fails on a large offset (a year)
            meta[f"cov{i}"] = _stats.standardised(values.astype(float)).to_numpy()
        else:
            codes = {v: f"V{j}" for j, v in enumerate(sorted(pd.unique(values.astype(str))))}
            meta[f"cov{i}"] = values.astype(str).map(codes).to_numpy()
        terms.append(f"cov{i}")
    formula = "~" + " + ".join([*terms, "condition"])
    counts_int = counts.round().astype(np.int64)
    inference = DefaultInference(n_cpus=1)
    with one_blas_thread(), warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        dds = DeseqDataSet(counts=counts_int, metadata=meta, design=formula, refit_cooks=True,
                           inference=inference, quiet=True, n_cpus=1)
        dds.deseq2()
        results = {}
        for other in others:
            ds = DeseqStats(dds, contrast=["condition", level_code[other], "L0"], inference=inference,
                            quiet=True, n_cpus=1)
            ds.summary()
            results[other] = ds.results_df.copy()
    for w in caught:
        logger.debug("PyDESeq2: %s", w.message)
    normed = pd.DataFrame(np.asarray(dds.layers["normed_counts"]), index=counts.index, columns=counts.columns)
    return results, normed
