"""Patient-level comparisons of conditions (responders vs resistors): states, signature scores, genes."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Literal

import numpy as np
import pandas as pd
from anndata import AnnData
from tqdm import tqdm

from hcctme import _validate
from hcctme._constants import Defaults, Keys, Suffix
from hcctme._logging import logger
from hcctme._settings import settings
from hcctme.tl import _arcsine_drift, _de, _depth_gap, _design, _stats
from hcctme.tl._pseudobulk import _pseudobulk

FEATURES = ("scores", "composition", "genes")
AGGREGATES = ("mean", "median")
ALL = "all"  # the group label when groupby (or parent_key for composition) is None
_SEP = "\x1f"  # joins a group index and a feature name in one call to the engine
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
    patient_key: str | None = None,
    pair_key: str | None = None,
    method: str = "auto",
    transform: Literal["asin", "logit", "clr"] = "asin",
    scores_key: str = Keys.SCORES,
    signatures: Sequence[str] | None = None,
    layer: str | None = Keys.COUNTS,
    aggregate: Literal["mean", "median"] = "mean",
    min_cells: int = Defaults.MIN_CELLS,
    pseudocount: float = 0.5,
    key_added: str = Keys.COMPARE,
    copy: bool = False,
) -> AnnData | None:
    """Compare conditions (e.g. resistors vs responders) with the patient as the unit of replication.

    Cells are first summarised per unit (the sample; the patient when ``patient_key`` pools a
    patient's samples); only those per-unit values are tested, so thousands of cells from a handful
    of patients count as a handful of observations. Each condition level other than ``reference`` is
    compared with ``reference``. Scores and composition go through one engine
    (:mod:`hcctme.tl._stats`): a precision-weighted linear model per feature on the design
    (condition, covariates, pair / patient blocks), with empirical-Bayes moderated t-tests for
    composition (limma / propeller style); unpaired scores without covariates by Mann-Whitney; genes
    by limma-trend (or limma-voom, PyDESeq2) on pseudobulk counts with the same design.

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
        ``"scores"``: per-unit mean (or median, see ``aggregate``) of each signature score in
        ``obsm[scores_key]`` (written by :func:`hcctme.tl.score`), per ``groupby`` level when given;
        a unit's weight grows with its cells only as far as the within-unit spread of the score
        (variance / cells) matters next to the between-unit variation. Scores move with sequencing
        depth: where the condition levels' samples differ >= 1.5-fold in median counts per cell
        (``layers[layer]``, raw counts), or where their depths separate the levels beyond chance (a permutation
        Kruskal-Wallis p < 0.05, within pairs a signed-rank p for a paired design: every resistor read 1.2x
        deeper put 0.66 of null tests at p < 0.05, sweep 63), a warning names
        :func:`hcctme.pp.equalize_depth` (null cohorts with the resistors read 2x deeper: 0.48-0.71 of the tests
        at p < 0.05 on ``X``, 0.03-0.05 on the equalised layer; sweep 58); ``uns[key_added + "_params"]["depth"]``
        records the medians, the fold and that p.
        ``"composition"``: proportions of each ``groupby`` level (e.g. a state) within each
        ``parent_key`` level (e.g. the cell type; all cells of the unit when ``None``), tested
        propeller-style on ``transform``-ed proportions (Phipson et al. 2022). Every transform is a
        function of the proportions alone, so identical proportions from 12 or 1,200 cells give
        identical values; the number of cells enters only through the weights (binomial sampling
        variance next to the between-unit variance). ``effect`` is on the transformed scale and the
        table adds the mean proportions (``prop_reference``, ``prop_other``, ``prop_diff``). Units
        with fewer than ``min_cells`` cells in a parent level are left out of that parent; parents
        with a single ``groupby`` level are skipped.
        ``"genes"``: pseudobulk (sum of counts in ``layer``) per unit and ``groupby`` level, tested
        with design ``~ [block +] [covariates +] condition`` by ``method``: ``"limma-trend"`` (the
        default: TMM log-CPM, least squares and empirical-Bayes moderated t with an abundance trend,
        every gene at once; 60-200x faster than PyDESeq2 at 20,000 genes, README), ``"voom"``
        (limma-voom: the same with voom's precision weights) or ``"deseq2"`` (PyDESeq2,
        single-threaded, Wald test). ``effect`` is the log2 fold change, ``statistic`` the moderated t
        (limma) or the Wald statistic (deseq2); ``lfcSE`` is added, with ``AveExpr`` (mean log2-CPM,
        limma) or ``baseMean`` (deseq2). The per-sample values kept for plotting are log2-CPM (limma)
        or log2(normalised counts + 1) (deseq2). PyDESeq2 sets the p-value of a gene with an outlying
        sample (Cook's distance; refitted only with >= 7 samples per level) to NaN: its row keeps the effect
        and statistic, with NaN ``pvalue`` / ``padj``, sorted last, and the count is logged. The limma
        methods leave out genes failing edgeR's ``filterByExpr``. voom's false-positive rate at p < 0.05
        rises with the spread of the samples' library sizes (0.052 at equal sizes, 0.062 at a log-scale sd
        of 1 on NB simulations, README), where limma-trend and PyDESeq2 stay at 0.05.
    groupby
        obs column: test within each of its levels (scores, genes) or the levels whose
        proportions are compared (composition, required there).
    parent_key
        Composition only: obs column of the parent population the proportions are taken within.
    covariates
        Sample-level obs column(s) to adjust for (constant within each unit). A numeric covariate is
        centred and scaled, so the condition's test does not depend on its units or offset. A covariate
        that is constant, has an infinite value or is collinear with the condition (to limma's
        tolerance, 1e-7 of a column's norm) is refused, naming the column.
    patient_key
        obs column of the patient of each sample, above ``sample_key``. Patients whose samples are
        all in one condition level (multi-region, tumour + adjacent) are pooled into one unit;
        patients with samples in several levels (pre / on treatment) make a paired design: one unit
        per patient and level, the patient a block (fixed effect). A sample in two patients, or a
        patient in one level while others span several, is refused.
    pair_key
        obs column pairing samples of one patient across conditions (one sample per pair and level);
        the pair is a block as with ``patient_key``. Give one of ``patient_key`` and ``pair_key``.
    method
        ``"auto"`` (``"moderated"`` for composition; for scores ``"mannwhitney"``, or ``"wls"`` with pairs
        or covariates; ``"limma-trend"`` for genes), or one
        of ``"moderated"`` (precision-weighted linear model, empirical-Bayes moderated t), ``"wls"`` (the
        same model without moderation: signature scores differ in spread between signatures and cell
        types, which a shared prior would misread: ``"moderated"`` on scores put 0.059 of null tests at
        p < 0.05 over 160 cohorts where ``"wls"`` put 0.048, sweep 58; with ``parent_key`` the
        composition prior is shared by parents of different sizes, so a small parent's rate can exceed
        the nominal one where ``"wls"`` keeps it, at some power: README, "Statistics"), ``"ols"`` (no
        weights, no moderation),
        ``"mannwhitney"``, ``"welch"`` (unpaired, no covariates), ``"wilcoxon"``, ``"paired_t"``
        (paired, no covariates), ``"limma-trend"``, ``"voom"``, ``"deseq2"`` (genes). Rank tests are
        discrete: with 4 samples per level the smallest two-sided Mann-Whitney p-value is 2/70 = 0.029,
        so with many features nothing passes BH.
    transform
        Composition: ``"asin"`` (arcsine square root of the proportions, the default), ``"logit"``
        or ``"clr"`` (centred log-ratio within the parent, natural log; zeros by multiplicative
        replacement). Note that with 3-4 parts one part's expansion moves every other part's CLR by
        ``-log(f) / D``: CLR effects are not per-part changes. The logit and CLR values do not depend
        on depth, and their weights use each part's proportion pooled over the samples; when the arms
        differ several-fold in cells per sample zeros are commoner in the smaller samples and these tests
        run a little above their nominal false-positive rate (0.060-0.065 at p < 0.05 with 3x the cells,
        README). The arcsine drifts instead for a rare part there: its mean over a sample's binomial count
        moves with the sample's cells (a 2 % state, 60 vs 180 cells per arm: 0.082 at p < 0.05, the logit
        0.052; ``benchmarks/compare_rare_null.py``, sweep 63): use ``"logit"`` for rare states when the arms
        differ in cells per sample. The arcsine test warns where it is so: per parent, state and contrast, the
        gap between the levels that their samples' cells alone predict (each sample's expected arcsine at the
        state's pooled share) is read against the standard error of the observed gap (Welch; within pairs for a
        paired design: unweighted means, covariates not adjusted for, each level against the reference alone, an
        approximation of the model's), and a shift that would put a two-sided test at p < 0.05 at a rate of 0.06 or
        more is
        named in a warning and recorded in ``uns[key_added + "_params"]["arcsine_drift"]`` (``group``,
        ``feature``, ``contrast``, median cells per sample of each level, ``drift``, ``se``, ``shift``,
        ``expected_fpr``; empty where nothing is warned of).
    scores_key
        obsm key of the signature scores (features="scores").
    signatures
        Subset of score columns to compare (default: all).
    layer
        Layer with raw counts for features="genes" (``None``: ``.X``); with features="scores", the counts
        whose depth is checked (see ``features``).
    aggregate
        Per-unit summary of scores: ``"mean"`` or ``"median"``.
    min_cells
        Fewest cells behind a per-unit value (per unit x group, or per unit within a parent);
        smaller ones are left out and reported. Ignored when ``sample_key=None``.
    pseudocount
        ``"logit"`` and ``"clr"``: a zero proportion is replaced by ``pseudocount / m``, ``m`` the
        median number of cells per unit in the parent: one value for every unit of the call, so the
        replacement does not depend on a unit's depth.
    key_added
        ``uns[key_added]``: the table (one row per feature x group x contrast: ``feature``,
        ``group`` (``"all"`` without groupby/parent_key), ``contrast`` (``"<other> vs
        <reference>"``), ``effect``, ``statistic`` (moderated t, t, U, W or Wald), ``pvalue``,
        ``padj`` (Benjamini-Hochberg over the whole table), ``n_reference``, ``n_other`` (units
        tested), ``direction``, ``method``, ``mean_reference``, ``mean_other``, ``df`` (the moderated t's
        total df for limma-trend, voom and ``moderated``, residual plus prior df as limma's ``df.total``; the
        residual df of ``ols``/``wls``, Welch-Satterthwaite's for Welch's t, pairs - 1 for the paired t; NaN for
        the rank tests and DESeq2's Wald test, which have none) plus the feature-specific columns above;
        sorted by p-value). ``uns[key_added + "_values"]``: the
        per-unit values tested (long), for :func:`hcctme.pl.compare`. ``uns[key_added +
        "_params"]``: tool, params, library_version, the design (units), dropped units (each unit left out
        of a group's test for fewer than ``min_cells`` cells, none included: it adds nothing to that test, neither
        a level of its own nor a share of the pooled within-unit variance) and skipped groups.
    copy
        Return a copy of ``adata`` with the results instead of writing into ``adata``.

    Returns
    -------
    None, or the AnnData copy when ``copy=True``. Nothing is written when the call fails.

    Raises
    ------
    KeyError
        A missing obs column, layer or ``obsm[scores_key]`` (run :func:`hcctme.tl.score` first).
    ValueError
        A single condition level, a reference that is not a level, fewer than two units in a
        level, a condition (pair, patient, covariate) that varies within a sample, a sample in two
        patients, a pair with one member, non-count data for genes, a constant, infinite or collinear
        covariate.
        A pseudobulk by sample x group (:func:`hcctme.tl.pseudobulk` with ``groupby``) compared with
        ``sample_key=None`` and without ``groupby``.
    TooFewCellsError
        A ``ValueError``: no group keeps two samples of ``min_cells`` cells in the reference and another level.
    TooFewGenesError
        A ``ValueError``: features="genes" and in no group do two genes pass the expression filter (a small
        targeted panel, or counts too low).
    """
    _validate.anndata(adata, writes=True)
    _validate.choice(features, FEATURES, name="features")
    key_added = _validate.key_added(key_added, adata=adata, slots=("uns",), reads=(scores_key,),
                                    tool="hcctme.tl.compare", outputs=[("uns", Suffix.VALUES)])
    copy = _validate.copy_flag(copy, adata=adata, tool="hcctme.tl.compare", writes="uns")
    table, values, params = _tables(
        adata, condition_key=condition_key, sample_key=sample_key, reference=reference, features=features,
        groupby=groupby, parent_key=parent_key, covariates=covariates, patient_key=patient_key, pair_key=pair_key,
        method=method, transform=transform, scores_key=scores_key, signatures=signatures, layer=layer,
        aggregate=aggregate, min_cells=min_cells, pseudocount=pseudocount)
    target = adata.copy() if copy else adata
    target.uns[key_added] = table
    target.uns[key_added + Suffix.VALUES] = values
    target.uns[key_added + Suffix.PARAMS] = params
    logger.info("compare(%s, %s): %d tests over %d units, %d with padj < %g -> uns[%r]", features,
                params["params"]["method"], len(table), params["n_units"],
                int((table["padj"] < Defaults.ALPHA).sum()), Defaults.ALPHA, key_added)
    return target if copy else None


def _tables(adata: AnnData, *, condition_key, sample_key, reference, features, groupby, parent_key, covariates,
            patient_key, pair_key, method, transform, scores_key, signatures, layer, aggregate, min_cells,
            pseudocount) -> tuple[pd.DataFrame, pd.DataFrame, dict]:
    """Compare's table, per-unit values and params record, computed without writing the result or logging its summary.

    The depth and arcsine-drift checks warn here (:mod:`hcctme.tl._depth_gap`, :mod:`hcctme.tl._arcsine_drift`).
    """
    _validate.choice(aggregate, AGGREGATES, name="aggregate")
    _validate.choice(transform, _stats.TRANSFORMS, name="transform")
    min_cells = _validate.positive_int(min_cells, name="min_cells")
    if isinstance(pseudocount, bool) or not isinstance(pseudocount, int | float) or not 0 < pseudocount < np.inf:
        raise ValueError(f"pseudocount must be a positive number, got {pseudocount!r}")
    covariates = _design.covariate_list(covariates)
    if sample_key is None and features == "composition":
        raise ValueError(
            "features='composition' counts cells per sample: give sample_key (the obs column of the sample "
            "of each cell)"
        )
    for name, key in (("groupby", groupby), ("parent_key", parent_key), ("pair_key", pair_key),
                      ("patient_key", patient_key)):
        if key is not None and key in (condition_key, sample_key):
            raise ValueError(f"{name}={key!r} is also the condition_key or sample_key; pass a different column")

    if features != "composition" and sample_key is None and groupby is None:
        _check_grouped_profiles(adata)
    if sample_key is not None and min_cells > 1:
        _check_cells_not_profiles(adata, sample_key, min_cells)
    units, design = _design.unit_design(adata, condition_key=condition_key, sample_key=sample_key,
                                        reference=reference, patient_key=patient_key, pair_key=pair_key,
                                        covariates=covariates)
    method = _stats.resolve_method(method, features=features, paired="block" in design,
                                   covariates=bool(covariates))
    reference = str(reference)
    dropped: list[pd.DataFrame] = []
    skipped: list[str] = []
    drift: list[pd.DataFrame] = []
    per_cell = sample_key is not None
    if features == "composition":
        table, values = _composition(adata, units, design, reference, groupby=groupby, parent_key=parent_key,
                                     method=method, transform=transform, min_cells=min_cells,
                                     pseudocount=pseudocount, dropped=dropped, skipped=skipped, drift=drift)
    elif features == "scores":
        table, values = _scores(adata, units, design, reference, per_cell=per_cell, groupby=groupby,
                                method=method, scores_key=scores_key, signatures=signatures,
                                aggregate=aggregate, min_cells=min_cells, dropped=dropped, skipped=skipped)
    else:
        table, values = _genes(adata, units, design, reference, per_cell=per_cell, groupby=groupby, layer=layer,
                               method=method, min_cells=min_cells, dropped=dropped, skipped=skipped)
    if table.empty:
        why = _nothing_tested(skipped, min_cells if per_cell else None)
        too_few_genes = skipped and all(r.endswith((_TOO_FEW_GENES, _NO_COUNTS)) for r in skipped)
        raise (_validate.TooFewGenesError if too_few_genes else _validate.TooFewCellsError)(why)
    depth = _depth_gap.condition_depths(adata, units, design, scores_key=scores_key, counts_layer=layer) \
        if features == "scores" and per_cell else None
    table = _finish(table)
    dropped_table = (pd.concat(dropped, ignore_index=True) if dropped
                     else pd.DataFrame(columns=["sample", "group", "n_cells"]))
    params = {
        "tool": "hcctme.tl.compare",
        **_validate.call_record(
            features=features, condition_key=condition_key, sample_key=sample_key, reference=reference,
            groupby=groupby, parent_key=parent_key, covariates=list(covariates) or None, patient_key=patient_key,
            pair_key=pair_key, method=method, transform=transform, min_cells=min_cells, aggregate=aggregate,
            pseudocount=float(pseudocount), scores_key=scores_key,
            signatures=list(signatures) if signatures is not None else None, layer=layer),
        "library_version": _validate.library_version(),
        "paired": "block" in design,
        "n_units": int(design.shape[0]),
        "units": design.reset_index().astype(str),
        "dropped": dropped_table.astype(str),
        "skipped": list(skipped),
        **({"depth": depth} if depth is not None else {}),  # h5ad holds no None
        **({"arcsine_drift": drift[0].astype({"group": str, "feature": str, "contrast": str})} if drift else {}),
    }
    return table, values, params


def _long_values(values: pd.DataFrame, design: pd.DataFrame, group: str, *, reference: str,
                 **extra: pd.DataFrame) -> pd.DataFrame:
    """Units x features -> long (sample, group, feature, value, condition[, pair], extra columns).

    In a paired / blocked design each feature keeps the units its test reads (:func:`_tested_units`): the table
    holds the values tested.
    """
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
    if "block" in design:
        long["pair"] = np.repeat(design["block"].reindex(values.index).to_numpy(), n_f)
    if "block" in design:
        by_pattern: dict[bytes, set[str]] = {}  # features measured in the same units share their tested units
        tested = {}
        for feature in values.columns:
            measured = values[feature].notna().to_numpy()
            if (key := measured.tobytes()) not in by_pattern:
                by_pattern[key] = set(_tested_units(values.index[measured], design, reference).astype(str))
            tested[str(feature)] = by_pattern[key]
        long = long[[s in tested[f] for s, f in zip(long["sample"], long["feature"], strict=True)]]
    long = long[~np.isnan(long["value"].to_numpy())]
    return long.reset_index(drop=True)


def _tested_units(units: pd.Index, design: pd.DataFrame, reference: str) -> pd.Index:
    """The ``units`` a paired / blocked test reads (none when nothing is testable).

    :func:`hcctme.tl._stats.testable_design` drops a pair left with one unit, also after it drops a condition
    level with too few units.
    """
    setup = _stats.testable_design(design.loc[units], design.loc[units, "condition"], reference, 2)
    return units[:0] if isinstance(setup, str) else units[setup[1]]


# --------------------------------------------------------------------------------------------------
# Composition
# --------------------------------------------------------------------------------------------------
def _composition(adata, units, design, reference, *, groupby, parent_key, method, transform, min_cells,
                 pseudocount, dropped, skipped, drift):
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
    counts = pd.crosstab([units.to_numpy(), parents.to_numpy()], levels.to_numpy())
    counts.index.names = ["sample", "parent"]
    blocks = []
    for parent in pd.unique(parents):
        # every unit, those without a cell of this parent too: each one left out is reported in `dropped`
        sub = counts.xs(parent, level="parent").reindex(design.index).fillna(0)
        totals = sub.sum(axis=1)
        small = totals < min_cells
        if small.any():
            dropped.append(pd.DataFrame({"sample": sub.index[small], "group": parent,
                                         "n_cells": totals[small].astype(int).to_numpy()}))
        sub = sub.loc[~small]
        sub = sub.loc[:, sub.sum(axis=0) > 0]  # a level seen only in left-out units is no part of the test
        if sub.shape[0] == 0:
            skipped.append(f"{parent}: no sample with >= {min_cells} cells")
            continue
        if sub.shape[1] < 2:
            skipped.append(f"{parent}: a single level of {groupby}")
            continue
        delta = pseudocount / float(np.median(sub.sum(axis=1)))
        y, v = _stats.transform_proportions(sub.to_numpy(), transform, delta)
        blocks.append((parent, sub, pd.DataFrame(y, index=sub.index, columns=sub.columns),
                       pd.DataFrame(v, index=sub.index, columns=sub.columns)))
    tables, longs, drifts = [], [], []
    for parent, result, (_, sub, y, _) in zip(*_test_blocks(blocks, design, reference, method), blocks, strict=True):
        if result.empty:
            skipped.append(f"{parent}: fewer than 2 samples with >= {min_cells} cells in a condition level")
            continue
        result.insert(1, "group", parent)
        read = sub.loc[_tested_units(sub.index, design, reference)] if "block" in design else sub
        if transform == "asin":
            drifts.append(_arcsine_drift.contrast_drift(read, y.loc[read.index], design, reference, parent))
        props = read.div(read.sum(axis=1), axis=0)
        cond = design.loc[props.index, "condition"]
        prop_means = props.groupby(cond.to_numpy()).mean()
        other = result["contrast"].str.split(" vs ").str[0]
        result["prop_reference"] = prop_means.loc[reference, result["feature"]].to_numpy()
        result["prop_other"] = [prop_means.loc[o, f] for o, f in zip(other, result["feature"], strict=True)]
        result["prop_diff"] = result["prop_other"] - result["prop_reference"]
        tables.append(result)
        longs.append(_long_values(y, design, parent, reference=reference, proportion=props, n_cells=sub))
    if drifts:
        drift.append(_arcsine_drift.warn_of_drift(pd.concat(drifts, ignore_index=True)))
    return _concat(tables), _concat(longs)


def _test_blocks(blocks, design, reference, method):
    """Test the features of every group in one call; return the group names and one table per group.

    With ``method="moderated"`` the empirical-Bayes prior is shared across the groups.
    """
    if not blocks:
        return [], []
    names = [b[0] for b in blocks]
    keyed_values = pd.concat([b[2].add_prefix(f"{i}{_SEP}") for i, b in enumerate(blocks)], axis=1)
    keyed_var = pd.concat([b[3].add_prefix(f"{i}{_SEP}") for i, b in enumerate(blocks)], axis=1)
    result = _stats.compare_samples(keyed_values, design, reference, method=method, variances=keyed_var)
    split = result["feature"].str.split(_SEP, n=1)
    idx, feature = split.str[0].astype(int), split.str[1]
    result = result.assign(feature=feature)
    tables = [result[idx.to_numpy() == i].reset_index(drop=True) for i in range(len(blocks))]
    return names, tables


# --------------------------------------------------------------------------------------------------
# Signature scores
# --------------------------------------------------------------------------------------------------
def _pseudobulk_params(adata: AnnData) -> Mapping:
    """The params tl.pseudobulk recorded where ``adata`` is its output (empty otherwise)."""
    record = adata.uns.get(Keys.PSEUDOBULK + Suffix.PARAMS)
    params = record.get("params", {}) if isinstance(record, Mapping) else {}
    return params if isinstance(params, Mapping) else {}


def _check_grouped_profiles(adata: AnnData) -> None:
    """Refuse testing a pseudobulk by sample x group as if each profile were a sample (no groupby given)."""
    grouped = _pseudobulk_params(adata).get("groupby")
    if grouped is not None and grouped in adata.obs and adata.obs[grouped].nunique() > 1:
        raise ValueError(
            f"this AnnData is a pseudobulk by sample x {grouped!r} (uns[{Keys.PSEUDOBULK + Suffix.PARAMS!r}]): "
            f"without groupby= its profiles of one sample would be tested as independent samples, each sample "
            f"counted once per {grouped!r} level. Pass groupby={grouped!r} (each level tested on its own), or "
            "pseudobulk by sample alone (tl.pseudobulk(..., groupby=None)) to pool them")


def _check_cells_not_profiles(adata: AnnData, sample_key: str, min_cells: int) -> None:
    """Refuse ``sample_key`` on tl.pseudobulk's profiles with ``min_cells`` > 1: each profile would count as one cell.

    With ``min_cells=1`` the profiles are summed again as they are, the result of ``sample_key=None``.
    """
    params = _pseudobulk_params(adata)
    if "sample_key" not in params:
        return
    grouped = params.get("groupby")
    raise ValueError(
        f"this AnnData holds tl.pseudobulk's profiles (uns[{Keys.PSEUDOBULK + Suffix.PARAMS!r}]: one row per sample"
        f"{f' x {grouped!r}' if grouped else ''}), and sample_key={sample_key!r} reads cells: each profile would "
        f"count as one cell, fewer than min_cells={min_cells}. Compare the profiles with sample_key=None"
        f"{f', groupby={grouped!r}' if grouped else ''} (each row is a sample), or compare the cells' AnnData with "
        f"sample_key={sample_key!r}")


def _scores(adata, units, design, reference, *, per_cell, groupby, method, scores_key, signatures, aggregate,
            min_cells, dropped, skipped):
    scores = _validate.scores(adata, scores_key)
    signatures = _validate.names(signatures, name="signatures")
    if signatures is not None:
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
    _validate.finite_scores(scores, scores_key)
    empty = scores.columns[scores.isna().all(axis=0).to_numpy()]
    if len(empty):  # a signature scored in no cell: said, not silently absent from the table
        skipped.extend(f"{name}: no cell has a score (all NaN)" for name in empty)
        scores = scores.drop(columns=empty)
    if groupby is not None:
        groups = _validate.obs_column(adata, groupby, purpose="groups to compare within").astype(str)
    else:
        groups = pd.Series(ALL, index=adata.obs_names)
    blocks = []
    for group in pd.unique(groups):
        mask = (groups == group).to_numpy()
        grouped = scores.loc[mask].groupby(units.to_numpy()[mask], observed=True, sort=True)
        values = grouped.mean() if aggregate == "mean" else grouped.median()
        n = grouped.count()  # per feature: the cells with a score (a NaN score is no cell of that value)
        within = grouped.var(ddof=1)
        if per_cell:
            # a unit without a cell of this group is left out too, and reported (appended: the others keep their order)
            n = n.reindex(n.index.append(design.index.difference(n.index)), fill_value=0)
            values, within = values.reindex(n.index), within.reindex(n.index)
            few = n < min_cells
            small = few.all(axis=1)  # a unit too small for every feature is dropped, and reported
            if small.any():
                dropped.append(pd.DataFrame({"sample": n.index[small], "group": group,
                                             "n_cells": n.loc[small].max(axis=1).astype(int).to_numpy()}))
            # a unit left out of a feature's test adds nothing to its pooled within-unit variance either
            values, within, n = values.mask(few).loc[~small], within.mask(few).loc[~small], n.mask(few, 0).loc[~small]
        variances = _sampling_variances(within, n) * (1.0 if aggregate == "mean" else np.pi / 2)
        if values.empty:
            skipped.append(f"{group}: no sample with >= {min_cells} cells")
            continue
        blocks.append((group, values, values, variances))
    tables, longs = [], []
    for group, result, (_, values, _, _) in zip(*_test_blocks(blocks, design, reference, method), blocks,
                                                strict=True):
        if result.empty:
            skipped.append(f"{group}: fewer than 2 samples with >= {min_cells} cells in a condition level")
            continue
        result.insert(1, "group", group)
        tables.append(result)
        longs.append(_long_values(values, design, group, reference=reference))
    return _concat(tables), _concat(longs)


def _sampling_variances(within: pd.DataFrame, n: pd.DataFrame) -> pd.DataFrame:
    """Sampling variance of each unit's mean.

    The feature's within-unit variance pooled over units, divided by the unit's cells with a value of
    that feature (``n``, units x features; x pi/2 for a median, by the caller); 0 when no unit has 2 cells.
    """
    dof = (n - 1).clip(lower=0).astype(float)
    pooled = within.mul(dof).sum(axis=0, min_count=1) / dof.sum(axis=0).clip(lower=1.0)
    return (1.0 / n.astype(float).where(n > 0)).mul(pooled.fillna(0.0), axis=1)


# --------------------------------------------------------------------------------------------------
# Genes (pseudobulk + limma-trend, limma-voom or PyDESeq2)
# --------------------------------------------------------------------------------------------------
def _genes(adata, units, design, reference, *, per_cell, groupby, layer, method, min_cells, dropped, skipped):
    samples = units
    if not units.duplicated().any():  # every obs is a unit already (bulk or pseudobulk input)
        X, var_names = _validate.matrix(adata, layer=layer, use_raw=False)
        _validate.unique_genes(var_names)
        _validate.counts(X, what="features='genes'", layer=layer)
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
                f"features='genes' needs raw integer counts but {where} looks {kind}; "
                "pass the layer that holds raw counts (layer='counts')"
            )
        shallow = AnnData(X=X, obs=obs, var=pd.DataFrame(index=pd.Index(var_names).astype(str)))
        if layer is not None:
            shallow.layers[layer] = X
        try:
            pdata, small = _pseudobulk(shallow, sample_key="_sample", groupby="_group" if groupby else None,
                                       layer=layer, mode="sum", min_cells=min_cells if per_cell else 1)
        except _validate.TooFewCellsError:  # no profile at all: compare's own refusal, in the user's terms
            skipped.append(f"every {'sample x group' if groupby else 'sample'} profile: fewer than {min_cells} cells")
            return _concat([]), _concat([])
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
    levels = pd.unique(groups)
    for group in tqdm(levels, desc=f"hcctme.tl.compare genes ({method})", unit="group", leave=False,
                      disable=not settings.progress or len(levels) <= 1):
        mask = (groups == group).to_numpy()
        counts = profiles.loc[mask]
        counts = counts.loc[counts.index.isin(design.index)]
        result, long = _genes_group(counts, design, reference, method)
        if result is None:
            skipped.append(f"{group}: {long}")
            continue
        result.insert(1, "group", group)
        long.insert(1, "group", group)
        tables.append(result)
        longs.append(long)
    return _concat(tables), _concat(longs)


def _genes_group(counts: pd.DataFrame, design: pd.DataFrame, reference: str, method: str):
    """A limma method or PyDESeq2 on one group's samples x genes counts; (None, the reason) when it cannot run."""
    empty = counts.index[counts.sum(axis=1).to_numpy() == 0]
    if len(empty):  # no library to normalise by (edgeR's log-CPM of it is 0/0): left out, as a gene of no counts
        logger.warning("compare genes: profile(s) %s have no counts in any gene; left out", list(map(str, empty)))
        counts = counts.drop(index=empty)
    sub = design.loc[counts.index]
    setup = _stats.testable_design(sub, sub["condition"], reference, 2)
    if isinstance(setup, str):
        return None, setup
    X, keep, others = setup
    sub, counts = sub[keep], counts[keep]
    # genes by name: the normalisation and the trend sum over genes, so the statistics do not move (in the last
    # bits, which gseapy's ranking read as different ties) with the order of the var rows
    counts = counts.loc[:, counts.sum(axis=0) > 0].sort_index(axis=1)
    if counts.shape[1] == 0:
        return None, _NO_COUNTS
    if method in ("limma-trend", "voom"):
        res, logn = (_de.run_trend if method == "limma-trend" else _de.run_voom)(counts, X, others)  # log2-CPM
        extra = ("AveExpr", "lfcSE", "df")
        if res[others[0]].empty:
            return None, _TOO_FEW_GENES
    else:
        res, normed = _de.run_deseq2(counts, sub, reference, others)
        logn = np.log2(normed + 1.0)
        extra = ("baseMean", "lfcSE")
    is_ref = (sub["condition"] == reference).to_numpy()
    n_ref = int(is_ref.sum())
    rows = []
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
            "method": method,
            **{col: r[col].to_numpy() for col in extra},
        })
        if "df" not in frame:  # DESeq2's Wald test reads the normal distribution: no t degrees of freedom
            frame["df"] = np.nan
        if method == "deseq2" and (outliers := int((frame["pvalue"].isna() & frame["statistic"].notna()).sum())):
            logger.info("compare genes (deseq2) %s: %d gene(s) with a Cook's-distance outlier sample get p = NaN "
                        "(PyDESeq2 refits them only with >= 7 samples per level)", other, outliers)
        rows.append(frame)
    table = pd.concat(rows, ignore_index=True)
    top = (table.dropna(subset=["pvalue"]).sort_values("pvalue").groupby("contrast").head(N_GENE_VALUES))
    genes = list(dict.fromkeys(top["feature"]))
    long = _long_values(logn[genes], sub, "", reference=reference)
    long = long.drop(columns="group")
    return table, long


_NO_COUNTS = "no counts"
_TOO_FEW_GENES = "fewer than 2 genes pass the expression filter (filterByExpr)"


_MIN_CELLS_REASON = re.compile(r"(with >= \d+ cells|fewer than \d+ cells)")


def _nothing_tested(skipped: list[str], min_cells: int | None) -> str:
    """Why no group was tested: too few samples, or the groups' own reasons.

    Too few samples of ``min_cells`` cells (None: one profile per sample), else what each group reported (a design
    its samples cannot fit, no gene passing the expression filter).
    """
    reasons = f" (skipped: {'; '.join(skipped)[:400]})" if skipped else ""
    # the min_cells reasons by their wording, not " cells" anywhere: a label such as "B cells" is no reason
    too_few = [r for r in skipped if r.endswith(_stats.TOO_FEW_SAMPLES) or _MIN_CELLS_REASON.search(r)]
    if skipped and not too_few:
        return f"no group could be tested{reasons}"
    if min_cells is None:
        return ("too few samples: no group has >= 2 samples in the reference and in another level (check "
                f"condition_key / groupby){reasons}")
    return (f"too few cells: after leaving out samples with fewer than min_cells={min_cells} cells, no group has "
            f">= 2 samples in the reference and in another level (lower min_cells, or check sample_key / "
            f"groupby){reasons}")


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
