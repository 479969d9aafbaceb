"""Patient-level comparisons of conditions (responders vs resistors): states, signature scores, genes."""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Literal

import numpy as np
import pandas as pd
from anndata import AnnData

from hcctme import _validate
from hcctme._constants import Defaults, Keys
from hcctme._logging import logger
from hcctme.tl import _stats
from hcctme.tl._pseudobulk import _pseudobulk

FEATURES = ("scores", "composition", "genes")
AGGREGATES = ("mean", "median")
ALL = "all"  # the group label when groupby (or parent_key for composition) is None
N_GENE_VALUES = 50  # per group and contrast, genes whose per-sample values are kept for plotting

TABLE_COLUMNS = [
    "feature", "group", "contrast", "effect", "statistic", "pvalue", "padj", "n_reference", "n_other",
    "direction", "method", "mean_reference", "mean_other",
]


def compare(
    adata: AnnData,
    *,
    condition_key: str,
    sample_key: str | None,
    reference: str,
    features: Literal["scores", "composition", "genes"] = "scores",
    groupby: str | None = None,
    parent_key: str | None = None,
    covariates: str | Sequence[str] | None = None,
    pair_key: str | None = None,
    method: str = "auto",
    scores_key: str = Keys.SCORES,
    signatures: Sequence[str] | None = None,
    layer: str | None = Keys.COUNTS,
    aggregate: Literal["mean", "median"] = "mean",
    min_cells: int = Defaults.MIN_CELLS,
    pseudocount: float = 0.5,
    key_added: str = Keys.COMPARE,
    store: bool = True,
) -> pd.DataFrame:
    """Compare conditions (e.g. resistors vs responders) with the sample as the unit of replication.

    Cells are first summarised per sample (patient, or patient x timepoint); only those per-sample
    values are tested, so thousands of cells from a handful of patients count as a handful of
    observations. Each condition level other than ``reference`` is compared with ``reference``.

    Parameters
    ----------
    adata
        Cells x genes (or samples x genes when ``sample_key=None``).
    condition_key
        obs column with the condition, constant within each sample (e.g. ``"response"``).
    sample_key
        obs column naming the sample of each cell. ``None``: every obs is already a sample
        (bulk, or the output of :func:`hcctme.tl.pseudobulk`); not allowed for ``"composition"``.
    reference
        The baseline condition level; effects are *other minus reference*.
    features
        ``"scores"``: per-sample mean (or median, see ``aggregate``) of each signature score in
        ``obsm[scores_key]`` (written by :func:`hcctme.tl.score`), per ``groupby`` level when given.
        ``"composition"``: proportions of each ``groupby`` level (e.g. a state) within each
        ``parent_key`` level (e.g. the cell type; all cells of the sample when ``None``). The test
        is on the centred log-ratio (CLR) of the per-sample counts with ``pseudocount``, so one
        population's expansion is not read as the loss of the others; ``effect`` is on the CLR
        scale (natural log) and the table adds the mean proportions (``prop_reference``,
        ``prop_other``, ``prop_diff``). Samples with fewer than ``min_cells`` cells in a parent
        level are left out of that parent; parents with a single ``groupby`` level are skipped.
        ``"genes"``: pseudobulk (sum of counts in ``layer``) per sample and ``groupby`` level,
        PyDESeq2 (single-threaded, Wald test) with design ``~ [pair +] [covariates +] condition``;
        ``effect`` is the log2 fold change, ``statistic`` the Wald statistic; ``baseMean`` and
        ``lfcSE`` are added.
    groupby
        obs column: test within each of its levels (scores, genes) or the levels whose
        proportions are compared (composition, required there).
    parent_key
        Composition only: obs column of the parent population the proportions are taken within.
    covariates
        Sample-level obs column(s) to adjust for (constant within each sample). Scores and
        composition are then fitted by OLS (statsmodels) on ``condition + covariates``; genes add
        them to the DESeq2 design.
    pair_key
        obs column pairing samples of the same patient across conditions (pre/on treatment).
        Scores/composition: Wilcoxon signed-rank test on the within-pair differences
        (``method="auto"``), or OLS with the pair as a fixed effect when covariates are given;
        genes: the pair enters the DESeq2 design. Pairs without a sample in both levels of a
        contrast are left out of it.
    method
        ``"auto"`` (Mann-Whitney U unpaired; Wilcoxon signed-rank paired; OLS with covariates;
        DESeq2 for genes), or one of ``"mannwhitney"``, ``"welch"``, ``"ols"``, ``"wilcoxon"``,
        ``"paired_t"``, ``"deseq2"``. Rank tests make no distributional assumption but are
        discrete: with 4 samples per level the smallest two-sided Mann-Whitney p-value is
        2/70 = 0.029 (0.0625 for the signed-rank test with 5 pairs), so with many features
        nothing passes the BH adjustment; for such cohorts ``"welch"`` (or ``"ols"``) trades that
        for a normality assumption on the per-sample values.
    scores_key
        obsm key of the signature scores (features="scores").
    signatures
        Subset of score columns to compare (default: all).
    layer
        Layer with raw counts for features="genes" (``None``: ``.X``).
    aggregate
        Per-sample summary of scores: ``"mean"`` or ``"median"``.
    min_cells
        Fewest cells behind a per-sample value (per sample x group, or per sample within a parent);
        smaller ones are left out and reported. Ignored when ``sample_key=None``.
    pseudocount
        Added to counts before the CLR (composition).
    key_added
        Where results are stored in ``adata.uns``.
    store
        Write results into ``adata.uns``: ``uns[key_added]`` (the table), ``uns[key_added +
        "_values"]`` (the per-sample values tested, long format, for :func:`hcctme.pl.compare`) and
        ``uns[key_added + "_params"]`` (parameters, dropped samples and skipped groups). Nothing is
        written when the call fails.

    Returns
    -------
    DataFrame with one row per feature x group x contrast: ``feature``, ``group`` (``"all"`` without
    groupby/parent_key), ``contrast`` (``"<other> vs <reference>"``), ``effect`` (other minus
    reference: mean difference of per-sample values; mean within-pair difference for paired tests;
    the condition coefficient for OLS; log2FC for genes), ``statistic`` (U of the other level,
    signed-rank W, t, or Wald), ``pvalue``, ``padj`` (Benjamini-Hochberg over the whole table),
    ``n_reference``, ``n_other`` (samples, or pairs, tested), ``direction`` (``"up"``/``"down"``: higher
    /lower in the other level), ``method``, ``mean_reference``, ``mean_other``, plus the
    feature-specific columns above. Sorted by p-value.

    Raises
    ------
    KeyError
        A missing obs column, layer or ``obsm[scores_key]`` (run :func:`hcctme.tl.score` first).
    ValueError
        A single condition level, a reference that is not a level, fewer than two samples in a
        level, a condition (pair, covariate) that varies within a sample, too few cells, non-count
        data for genes, a rank-deficient covariate design.
    """
    _validate.anndata(adata)
    _validate.choice(features, FEATURES, name="features")
    _validate.choice(aggregate, AGGREGATES, name="aggregate")
    key_added = _validate.key_added(key_added)
    min_cells = _validate.positive_int(min_cells, name="min_cells")
    if isinstance(pseudocount, bool) or not isinstance(pseudocount, (int, float)) or pseudocount <= 0:
        raise ValueError(f"pseudocount must be a positive number, got {pseudocount!r}")
    covariates = _covariate_list(covariates)
    method = _stats.resolve_method(method, features=features, paired=pair_key is not None,
                                   covariates=bool(covariates))
    if sample_key is None and features == "composition":
        raise ValueError(
            "features='composition' counts cells per sample: give sample_key (the obs column of the sample "
            "of each cell)"
        )
    for name, key in (("groupby", groupby), ("parent_key", parent_key), ("pair_key", pair_key)):
        if key is not None and key in (condition_key, sample_key):
            raise ValueError(f"{name}={key!r} is also the condition_key or sample_key; pass a different column")

    samples, design = _sample_design(adata, condition_key=condition_key, sample_key=sample_key,
                                     reference=reference, pair_key=pair_key, covariates=covariates)
    reference = str(reference)
    dropped: list[pd.DataFrame] = []
    skipped: list[str] = []

    if features == "composition":
        table, values = _composition(adata, samples, design, reference, groupby=groupby, parent_key=parent_key,
                                     method=method, min_cells=min_cells, pseudocount=pseudocount,
                                     dropped=dropped, skipped=skipped)
    elif features == "scores":
        table, values = _scores(adata, samples, design, reference, sample_key=sample_key, groupby=groupby,
                                method=method, scores_key=scores_key, signatures=signatures,
                                aggregate=aggregate, min_cells=min_cells, dropped=dropped, skipped=skipped)
    else:
        table, values = _genes(adata, samples, design, reference, sample_key=sample_key, groupby=groupby,
                               layer=layer, min_cells=min_cells, dropped=dropped, skipped=skipped)

    if table.empty:
        raise ValueError(
            f"too few cells: after leaving out samples with fewer than min_cells={min_cells} cells, no "
            "group has >= 2 samples in the reference and in another level (lower min_cells, or check "
            "sample_key / groupby)"
            + (f" (skipped: {'; '.join(skipped)[:400]})" if skipped else "")
        )
    table = _finish(table)
    dropped_table = (pd.concat(dropped, ignore_index=True) if dropped
                     else pd.DataFrame(columns=["sample", "group", "n_cells"]))

    if store:
        adata.uns[key_added] = table
        adata.uns[f"{key_added}_values"] = values
        adata.uns[f"{key_added}_params"] = {
            "features": features,
            "condition_key": condition_key,
            "sample_key": sample_key if sample_key is not None else "",
            "reference": reference,
            "groupby": groupby if groupby is not None else "",
            "parent_key": parent_key if parent_key is not None else "",
            "covariates": list(covariates),
            "pair_key": pair_key if pair_key is not None else "",
            "method": method,
            "min_cells": min_cells,
            "aggregate": aggregate,
            "pseudocount": float(pseudocount),
            "scores_key": scores_key,
            "layer": layer if layer is not None else "X",
            "dropped": dropped_table.astype(str),
            "skipped": list(skipped),
            "library_version": _validate.library_version(),
        }
    n_sig = int((table["padj"] < 0.1).sum())
    logger.info(
        "compare(%s, %s): %d tests over %d samples, %d with padj < 0.1%s",
        features, method, len(table), design.shape[0], n_sig,
        f" -> uns[{key_added!r}]" if store else "",
    )
    return table


# --------------------------------------------------------------------------------------------------
# Validation of the sample-level design
# --------------------------------------------------------------------------------------------------
def _covariate_list(covariates: str | Sequence[str] | None) -> list[str]:
    if covariates is None:
        return []
    if isinstance(covariates, str):
        return [covariates]
    if not all(isinstance(c, str) for c in covariates):
        raise TypeError(f"covariates must be an obs column name or a list of them, got {covariates!r}")
    return list(covariates)


def _sample_design(
    adata: AnnData,
    *,
    condition_key: str,
    sample_key: str | None,
    reference: str,
    pair_key: str | None,
    covariates: list[str],
) -> tuple[pd.Series, pd.DataFrame]:
    """Sample of each obs, and one row per sample: condition, pair, covariates."""
    condition = _validate.obs_column(adata, condition_key, purpose="the condition to compare").astype(str)
    if sample_key is None:
        samples = pd.Series(adata.obs_names.astype(str), index=adata.obs_names, name="sample")
        if not samples.is_unique:
            raise ValueError("sample_key=None needs unique obs names (each obs is a sample)")
    else:
        samples = _validate.obs_column(adata, sample_key, purpose="the sample of each cell").astype(str)
    frame = pd.DataFrame({"sample": samples.to_numpy()}, index=adata.obs_names)
    levels = pd.unique(condition)
    if len(levels) < 2:
        raise ValueError(
            f"adata.obs[{condition_key!r}] has a single level ({levels[0]!r}); a comparison needs at least "
            "two condition levels"
        )
    reference = _validate.level(condition, reference, key=condition_key, what="reference")
    frame["condition"] = condition.to_numpy()
    extra = [("pair", pair_key)] + [(f"covariate:{c}", c) for c in covariates]
    for name, key in extra:
        if key is None:
            continue
        col = _validate.obs_column(adata, key, purpose=name.split(":")[0])
        frame[name] = col.to_numpy()
    if sample_key is not None:
        for name, key in [("condition", condition_key)] + extra:
            if key is None:
                continue
            n_values = frame.groupby("sample", observed=True)[name].nunique()
            bad = n_values[n_values > 1]
            if len(bad):
                what = {"condition": "the condition", "pair": "the pair"}.get(name, "a covariate")
                raise ValueError(
                    f"obs[{key!r}] ({what}) varies within samples of obs[{sample_key!r}] "
                    f"({_validate._preview(bad.index)}); each sample must have one {key} value "
                    "(the sample is the unit of replication)"
                )
    design = frame.groupby("sample", observed=True, sort=True).first()
    for name, key in extra:
        if key is not None and name.startswith("covariate:"):
            original = adata.obs[key]
            if pd.api.types.is_numeric_dtype(original) and not pd.api.types.is_bool_dtype(original):
                design[name] = design[name].astype(float)
            else:
                design[name] = design[name].astype(str)
    if "pair" in design:
        design["pair"] = design["pair"].astype(str)
    per_level = design["condition"].value_counts()
    thin = per_level[per_level < 2]
    if len(thin):
        raise ValueError(
            "one sample per group: condition level(s) "
            + ", ".join(f"{lv!r} ({n} sample)" for lv, n in thin.items())
            + f" of obs[{condition_key!r}]; the sample"
            + (f" (obs[{sample_key!r}])" if sample_key else "")
            + " is the unit of replication and each level needs at least 2 samples"
        )
    if pair_key is not None:
        dup = design.groupby(["pair", "condition"]).size()
        dup = dup[dup > 1]
        if len(dup):
            raise ValueError(
                f"pairs of obs[{pair_key!r}] have more than one sample in one condition level "
                f"({_validate._preview(f'{p}/{c}' for p, c in dup.index)}); a pair is one sample per level"
            )
        ref_pairs = set(design.loc[design["condition"] == reference, "pair"])
        other_pairs = set(design.loc[design["condition"] != reference, "pair"])
        complete = ref_pairs & other_pairs
        if len(complete) < 2:
            raise ValueError(
                f"paired design: only {len(complete)} pair(s) of obs[{pair_key!r}] have a sample in the "
                f"reference {reference!r} and another level; at least 2 are needed"
            )
    return frame["sample"], design


def _covariate_frame(design: pd.DataFrame) -> pd.DataFrame | None:
    cols = [c for c in design.columns if c.startswith("covariate:")]
    if not cols:
        return None
    return design[cols].rename(columns=lambda c: c.split(":", 1)[1])


def _test(values: pd.DataFrame, design: pd.DataFrame, reference: str, method: str) -> pd.DataFrame:
    sub = design.loc[values.index]
    return _stats.compare_samples(
        values, sub["condition"], reference, method=method,
        pairs=sub["pair"] if "pair" in sub else None,
        covariates=_covariate_frame(sub),
    )


def _long_values(values: pd.DataFrame, design: pd.DataFrame, group: str, **extra: pd.DataFrame) -> pd.DataFrame:
    """Samples x features -> long (sample, group, feature, value, condition[, pair], extra columns)."""
    matrix = values.to_numpy(dtype=float)
    n_s, n_f = matrix.shape
    sample = np.repeat(values.index.to_numpy().astype(str), n_f)
    long = pd.DataFrame({
        "sample": sample,
        "group": group,
        "feature": np.tile(values.columns.to_numpy().astype(str), n_s),
        "value": matrix.ravel(),
    })
    for name, frame in extra.items():
        long[name] = frame.reindex(index=values.index, columns=values.columns).to_numpy(dtype=float).ravel()
    cond = design["condition"].reindex(values.index).to_numpy()
    long["condition"] = np.repeat(cond, n_f)
    if "pair" in design:
        long["pair"] = np.repeat(design["pair"].reindex(values.index).to_numpy(), n_f)
    return long[~np.isnan(long["value"].to_numpy())].reset_index(drop=True)


# --------------------------------------------------------------------------------------------------
# Composition
# --------------------------------------------------------------------------------------------------
def _composition(adata, samples, design, reference, *, groupby, parent_key, method, min_cells, pseudocount,
                 dropped, skipped):
    if groupby is None:
        raise ValueError(
            "features='composition' needs groupby (the obs column whose levels' proportions are compared, "
            "e.g. a state or cell type column)"
        )
    if parent_key is not None and parent_key == groupby:
        raise ValueError("parent_key and groupby are the same column; proportions of a column within itself are 1")
    levels = _validate.obs_column(adata, groupby, purpose="levels whose proportions are compared").astype(str)
    if parent_key is not None:
        parents = _validate.obs_column(adata, parent_key, purpose="parent population").astype(str)
    else:
        parents = pd.Series(ALL, index=adata.obs_names)
    counts = pd.crosstab([samples.to_numpy(), parents.to_numpy()], levels.to_numpy())
    counts.index.names = ["sample", "parent"]
    tables, longs = [], []
    for parent in pd.unique(parents):
        sub = counts.xs(parent, level="parent")
        sub = sub.loc[:, sub.sum(axis=0) > 0]
        sub = sub.reindex(design.index).dropna(how="all").fillna(0)
        totals = sub.sum(axis=1)
        small = totals < min_cells
        if small.any():
            dropped.append(pd.DataFrame({"sample": sub.index[small], "group": parent,
                                         "n_cells": totals[small].astype(int).to_numpy()}))
        sub = sub.loc[~small]
        if sub.shape[1] < 2:
            skipped.append(f"{parent}: a single {groupby} level")
            continue
        if sub.shape[0] == 0:
            skipped.append(f"{parent}: no sample with >= {min_cells} cells")
            continue
        clr = pd.DataFrame(_stats.clr(sub.to_numpy(), pseudocount), index=sub.index, columns=sub.columns)
        props = sub.div(sub.sum(axis=1), axis=0)
        result = _test(clr, design, reference, method)
        if result.empty:
            skipped.append(f"{parent}: fewer than 2 samples with >= {min_cells} cells in a condition level")
            continue
        result.insert(1, "group", parent)
        cond = design.loc[props.index, "condition"]
        prop_means = props.groupby(cond.to_numpy()).mean()
        other = result["contrast"].str.split(" vs ").str[0]
        result["prop_reference"] = prop_means.loc[reference, result["feature"]].to_numpy()
        result["prop_other"] = [prop_means.loc[o, f] for o, f in zip(other, result["feature"])]
        result["prop_diff"] = result["prop_other"] - result["prop_reference"]
        tables.append(result)
        longs.append(_long_values(clr, design, parent, proportion=props, n_cells=sub))
    return _concat(tables), _concat(longs)


# --------------------------------------------------------------------------------------------------
# Signature scores
# --------------------------------------------------------------------------------------------------
def _scores(adata, samples, design, reference, *, sample_key, groupby, method, scores_key, signatures,
            aggregate, min_cells, dropped, skipped):
    scores = _validate.scores(adata, scores_key)
    if signatures is not None:
        if isinstance(signatures, str):
            signatures = [signatures]
        missing = [s for s in signatures if s not in scores.columns]
        if missing:
            raise KeyError(
                f"signature(s) {missing} are not in adata.obsm[{scores_key!r}] (columns: "
                f"{_validate._preview(scores.columns)}); score them with hcctme.tl.score first"
            )
        scores = scores[list(signatures)]
    if scores.shape[1] == 0:
        raise ValueError(f"adata.obsm[{scores_key!r}] has no score columns")
    non_numeric = [c for c in scores.columns if not pd.api.types.is_numeric_dtype(scores[c])]
    if non_numeric:
        raise TypeError(f"score columns {non_numeric} of adata.obsm[{scores_key!r}] are not numeric")
    scores = scores.reindex(adata.obs_names).astype(float)
    if groupby is not None:
        groups = _validate.obs_column(adata, groupby, purpose="groups to compare within").astype(str)
    else:
        groups = pd.Series(ALL, index=adata.obs_names)
    tables, longs = [], []
    for group in pd.unique(groups):
        mask = (groups == group).to_numpy()
        sub = scores.loc[mask]
        by = samples.to_numpy()[mask]
        grouped = sub.groupby(by, observed=True, sort=True)
        values = grouped.mean() if aggregate == "mean" else grouped.median()
        if sample_key is not None:
            n = grouped.size()
            small = n < min_cells
            if small.any():
                dropped.append(pd.DataFrame({"sample": n.index[small], "group": group,
                                             "n_cells": n[small].astype(int).to_numpy()}))
            values = values.loc[~small]
        if values.empty:
            skipped.append(f"{group}: no sample with >= {min_cells} cells")
            continue
        result = _test(values, design, reference, method)
        if result.empty:
            skipped.append(f"{group}: fewer than 2 samples with >= {min_cells} cells in a condition level")
            continue
        result.insert(1, "group", group)
        tables.append(result)
        longs.append(_long_values(values, design, group))
    return _concat(tables), _concat(longs)


# --------------------------------------------------------------------------------------------------
# Genes (pseudobulk + PyDESeq2)
# --------------------------------------------------------------------------------------------------
def _genes(adata, samples, design, reference, *, sample_key, groupby, layer, min_cells, dropped, skipped):
    if sample_key is None:
        X, var_names = _validate.matrix(adata, layer=layer, use_raw=False)
        _validate.unique_genes(var_names)
        _validate.counts(X, what="features='genes' (PyDESeq2)", layer=layer)
        X = X.toarray() if hasattr(X, "toarray") else np.asarray(X)
        profiles = pd.DataFrame(X, index=samples.to_numpy(), columns=var_names.astype(str))
        if groupby is not None:
            groups = _validate.obs_column(adata, groupby, purpose="groups to compare within").astype(str)
            groups = pd.Series(groups.to_numpy(), index=samples.to_numpy())
        else:
            groups = pd.Series(ALL, index=samples.to_numpy())
    else:
        # pseudobulk on a shallow AnnData carrying only the sample (and group) columns
        obs = pd.DataFrame({"_sample": samples.to_numpy()}, index=adata.obs_names)
        if groupby is not None:
            obs["_group"] = _validate.obs_column(adata, groupby, purpose="groups to compare within") \
                .astype(str).to_numpy()
        X, var_names = _validate.matrix(adata, layer=layer, use_raw=False)
        try:
            kind = _validate.matrix_kind(X)
        except ValueError as err:
            raise ValueError(f"features='genes': {err}") from None
        if kind != "counts":
            where = f"layer {layer!r}" if layer is not None else ".X"
            raise ValueError(
                f"features='genes' (PyDESeq2) needs raw integer counts but {where} looks {kind}; "
                "pass the layer that holds raw counts (layer='counts')"
            )
        shallow = AnnData(X=X, obs=obs, var=pd.DataFrame(index=pd.Index(var_names).astype(str)))
        if layer is not None:
            shallow.layers[layer] = X
        pdata, small = _pseudobulk(shallow, sample_key="_sample", groupby="_group" if groupby else None,
                                   layer=layer, mode="sum", min_cells=min_cells)
        if len(small):
            dropped.append(pd.DataFrame({
                "sample": small["_sample"].to_numpy(),
                "group": small["_group"].to_numpy() if groupby else ALL,
                "n_cells": small["n_cells"].to_numpy(),
            }))
        idx = pdata.obs["_sample"].astype(str).to_numpy()
        profiles = pd.DataFrame(np.asarray(pdata.X), index=idx, columns=pdata.var_names)
        groups = pd.Series(pdata.obs["_group"].astype(str).to_numpy() if groupby else ALL, index=idx)
    tables, longs = [], []
    for group in pd.unique(groups):
        mask = (groups == group).to_numpy()
        counts = profiles.loc[mask]
        counts = counts.loc[counts.index.isin(design.index)]
        result, long = _deseq2_group(counts, design, reference)
        if result is None:
            skipped.append(f"{group}: fewer than 2 samples in the reference and another level")
            continue
        result.insert(1, "group", group)
        long.insert(1, "group", group)
        tables.append(result)
        longs.append(long)
    return _concat(tables), _concat(longs)


def _deseq2_group(counts: pd.DataFrame, design: pd.DataFrame, reference: str):
    """PyDESeq2 on one group's samples x genes counts; None when too few samples."""
    sub = design.loc[counts.index].copy()
    if "pair" in sub:
        seen = sub["pair"].map(sub["pair"].value_counts())
        sub = sub[seen > 1]
        counts = counts.loc[sub.index]
    n_per = sub["condition"].value_counts()
    if n_per.get(reference, 0) < 2:
        return None, None
    others = [lv for lv in pd.unique(sub["condition"]) if lv != reference and n_per[lv] >= 2]
    if not others:
        return None, None
    keep = sub["condition"].isin([reference, *others]).to_numpy()
    sub, counts = sub[keep], counts[keep]
    counts = counts.loc[:, counts.sum(axis=0) > 0]
    if counts.shape[1] == 0:
        return None, None
    covariates = _covariate_frame(sub)
    if covariates is not None or "pair" in sub:
        X = _stats.design_matrix(sub["condition"], reference, others, covariates=covariates,
                                 pairs=sub["pair"] if "pair" in sub else None)
        _stats.check_design(X, others)
    res, normed = run_deseq2(counts, sub, reference, others)
    is_ref = (sub["condition"] == reference).to_numpy()
    n_ref = int(is_ref.sum())
    rows = []
    logn = np.log2(normed + 1.0)
    for other in others:
        r = res[other]
        is_oth = (sub["condition"] == other).to_numpy()
        n_oth = int(is_oth.sum())
        frame = pd.DataFrame({
            "feature": r.index.astype(str),
            "contrast": f"{other} vs {reference}",
            "effect": r["log2FoldChange"].to_numpy(),
            "statistic": r["stat"].to_numpy(),
            "pvalue": r["pvalue"].to_numpy(),
            "n_reference": n_ref,
            "n_other": n_oth,
            "mean_reference": logn.loc[is_ref].mean(axis=0).reindex(r.index).to_numpy(),
            "mean_other": logn.loc[is_oth].mean(axis=0).reindex(r.index).to_numpy(),
            "method": "deseq2",
            "baseMean": r["baseMean"].to_numpy(),
            "lfcSE": r["lfcSE"].to_numpy(),
        })
        rows.append(frame)
    table = pd.concat(rows, ignore_index=True)
    top = (table.dropna(subset=["pvalue"]).sort_values("pvalue").groupby("contrast").head(N_GENE_VALUES))
    genes = list(dict.fromkeys(top["feature"]))
    long = _long_values(logn[genes], sub, "")
    long = long.drop(columns="group")
    return table, long


def run_deseq2(
    counts: pd.DataFrame, design: pd.DataFrame, reference: str, others: Sequence[str]
) -> tuple[dict[str, pd.DataFrame], pd.DataFrame]:
    """Fit PyDESeq2 (quiet, one thread) and return results per other level and normalised counts.

    ``design`` holds ``condition`` and optionally ``pair`` and ``covariate:<name>`` columns (one
    row per sample of ``counts``). Levels and names are mapped to safe tokens for the formula.
    """
    from pydeseq2.dds import DeseqDataSet
    from pydeseq2.default_inference import DefaultInference
    from pydeseq2.ds import DeseqStats

    level_code = {reference: "L0", **{o: f"L{i + 1}" for i, o in enumerate(others)}}
    meta = pd.DataFrame({"condition": design["condition"].map(level_code).to_numpy()}, index=counts.index)
    terms = []
    if "pair" in design:
        codes = {p: f"P{i}" for i, p in enumerate(pd.unique(design["pair"]))}
        meta["pair"] = design["pair"].map(codes).to_numpy()
        terms.append("pair")
    for i, col in enumerate(c for c in design.columns if c.startswith("covariate:")):
        values = design[col]
        if pd.api.types.is_numeric_dtype(values):
            meta[f"cov{i}"] = values.astype(float).to_numpy()
        else:
            codes = {v: f"V{j}" for j, v in enumerate(sorted(pd.unique(values.astype(str))))}
            meta[f"cov{i}"] = values.astype(str).map(codes).to_numpy()
        terms.append(f"cov{i}")
    formula = "~" + " + ".join([*terms, "condition"])
    counts_int = counts.round().astype(np.int64)
    inference = DefaultInference(n_cpus=1)
    with _one_blas_thread(), warnings.catch_warnings(record=True) as caught:
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


def _one_blas_thread():
    """BLAS limited to one thread: PyDESeq2's many tiny L-BFGS-B fits are several times slower with a
    multi-threaded BLAS (thread start-up per call), the more so on a busy machine."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # pragma: no cover - threadpoolctl comes with scikit-learn (scanpy)
        import contextlib

        return contextlib.nullcontext()
    return threadpool_limits(limits=1, user_api="blas")


# --------------------------------------------------------------------------------------------------
def _concat(frames: list[pd.DataFrame]) -> pd.DataFrame:
    frames = [f for f in frames if f is not None and not f.empty]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def _finish(table: pd.DataFrame) -> pd.DataFrame:
    table = table.copy()
    table["padj"] = _stats.bh(table["pvalue"].to_numpy())
    table["direction"] = _stats.direction(table["effect"].to_numpy())
    table["group"] = table["group"].astype(str)
    table["feature"] = table["feature"].astype(str)
    for col in ("n_reference", "n_other"):
        table[col] = table[col].astype(int)
    extra = [c for c in table.columns if c not in TABLE_COLUMNS]
    table = table[TABLE_COLUMNS + extra]
    table = table.sort_values(["pvalue", "group", "feature"], na_position="last", kind="mergesort")
    return table.reset_index(drop=True)
