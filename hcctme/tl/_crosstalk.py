"""Ligand-receptor crosstalk with LIANA+, annotated with the kb resistance axes."""

from __future__ import annotations

import time
import warnings
from collections.abc import Iterable, Sequence
from typing import Any, NamedTuple

import numpy as np
import pandas as pd
import scipy.sparse as sp
from anndata import AnnData

from hcctme import _validate
from hcctme._constants import Defaults, Keys, Suffix
from hcctme._logging import logger
from hcctme._settings import settings
from hcctme.kb import _axes as kb_axes
from hcctme.kb._schema import split_complex
from hcctme.pp import _depth, _thinning
from hcctme.tl import _crosstalk_fast as fast
from hcctme.tl import _crosstalk_stats as cstats
from hcctme.tl import _design

ID_COLUMNS = list(cstats.ID_COLUMNS)
POOLED = "all"  # the single "sample" of a run without sample_key
#: how each unit's table is computed: LIANA's lr_means from one chunked pass (default), or LIANA's full rank_aggregate
METHODS = ("lr_means", "rank_aggregate")
_MIN_COVERAGE = 0.02  # LIANA itself refuses a resource with > 98% of its genes missing


# --------------------------------------------------------------------------------------------------
# Resource
# --------------------------------------------------------------------------------------------------
def _resource(resource: str | pd.DataFrame, *, axes_only: bool) -> tuple[pd.DataFrame, dict[str, Any]]:
    """The ligand/receptor table to run (LIANA's bundled CSV, never a download) + kb pairs it lacks."""
    import liana as li

    if isinstance(resource, str):
        try:
            table = li.rs.select_resource(resource)
        except ValueError as err:
            raise ValueError(
                f"resource={resource!r} is not a LIANA resource; choose one of "
                f"{list(li.rs.show_resources())} or pass a DataFrame with 'ligand' and 'receptor' columns"
            ) from err
        name = resource
    elif isinstance(resource, pd.DataFrame):
        missing = [c for c in ("ligand", "receptor") if c not in resource.columns]
        if missing:
            raise ValueError(f"the resource DataFrame lacks column(s) {missing}; it needs 'ligand' and "
                             f"'receptor' (complex subunits joined by '_'), got {list(resource.columns)}")
        table = resource
        name = "user DataFrame"
    else:
        raise TypeError(f"resource must be a LIANA resource name or a DataFrame, got {type(resource).__name__}")
    table = table[["ligand", "receptor"]].dropna().astype(str).drop_duplicates().reset_index(drop=True)
    if table.empty:
        raise ValueError("the ligand-receptor resource is empty")

    # kb pairs the resource does not cover (in either orientation, complex-aware) are appended so
    # every axis can be scored; then optionally keep only axis interactions
    pairs = kb_axes.axis_pairs()[["ligand", "receptor"]].drop_duplicates()
    hit = kb_axes.annotate(table["ligand"], table["receptor"]).notna().to_numpy()
    have = [(set(split_complex(a)), set(split_complex(b)))
            for a, b in zip(table.loc[hit, "ligand"], table.loc[hit, "receptor"], strict=True)]
    added = []
    for lig, rec in zip(pairs["ligand"], pairs["receptor"], strict=True):
        kb_l, kb_r = set(split_complex(lig)), set(split_complex(rec))
        if not any((kb_l <= a and kb_r <= b) or (kb_l <= b and kb_r <= a) for a, b in have):
            added.append((lig, rec))
    if added:
        table = pd.concat([table, pd.DataFrame(added, columns=["ligand", "receptor"])], ignore_index=True)
    if axes_only:
        table = table[kb_axes.annotate(table["ligand"], table["receptor"]).notna().to_numpy()].reset_index(drop=True)
    info = {"resource": name, "n_interactions": len(table), "kb_pairs_added": [f"{a}^{b}" for a, b in added]}
    return table, info


def _resource_genes(table: pd.DataFrame) -> set[str]:
    genes: set[str] = set()
    for col in ("ligand", "receptor"):
        for name in pd.unique(table[col]):
            genes.update(split_complex(name))
    return genes


# --------------------------------------------------------------------------------------------------
# Matrix
# --------------------------------------------------------------------------------------------------
def _rows(X: Any, idx: np.ndarray) -> sp.csr_matrix:
    """Rows ``idx`` of any supported matrix (dense, sparse, backed, dask) as an in-memory CSR."""
    rows = sp.csr_matrix(_validate.rows_in_memory(X, idx), dtype=np.float32)  # idx sorted: read as runs when backed
    rows.eliminate_zeros()  # LIANA counts stored entries as expressing cells, explicit zeros among them
    return rows


def _check_matrix(X: Any) -> str:
    kind = _validate.matrix_kind(X)
    if kind == "counts":
        raise ValueError(
            "crosstalk needs log-normalised expression but the matrix holds integer counts; normalise "
            "first (sc.pp.normalize_total(adata); sc.pp.log1p(adata)) or pass layer= / use_raw= pointing at "
            "log-normalised values (LIANA's scores assume natural-log normalised data)"
        )
    if kind == "scaled":
        raise ValueError(
            "crosstalk needs log-normalised expression but the matrix has negative values (scaled or "
            "centred data); pass layer= or use_raw=True pointing at log-normalised values"
        )
    if kind == "other":
        logger.warning("crosstalk: the matrix has values >= 50 and is not integer; is it log-transformed? "
                       "LIANA expects log1p-normalised expression")
    return kind


# --------------------------------------------------------------------------------------------------
# Depth equalisation (differential runs)
# --------------------------------------------------------------------------------------------------
class _Depth(NamedTuple):
    """Raw counts to thin, their name, the kept fraction per unit, the counts' harmonised gene names (draws' keys)."""

    counts: Any
    where: str
    fractions: dict[str, float]
    genes: pd.Index


def _thinning_of(depth: _Depth, cells: dict[str, np.ndarray], obs_names: pd.Index, seed: int) -> _thinning.Thinning:
    """Each cell's kept fraction and the name keys of its draws."""
    per_cell = np.ones(len(obs_names))
    for sample, idx in cells.items():
        per_cell[idx] = depth.fractions[sample]
    return _thinning.Thinning.named(per_cell, obs_names, depth.genes, seed=seed)


def _depth_fractions(adata: AnnData, counts_layer: str | None, cells: dict[str, np.ndarray],
                     on_var_axis: bool, var_names: pd.Index, chunk_size: int) -> _Depth | None:
    """The counts matrix and, per unit, the thinning fraction to the shallowest unit's median depth.

    None (logged) when there are no usable raw counts. Counts per cell are summed chunk by chunk.
    """
    if counts_layer is None:
        return None
    if counts_layer not in adata.layers or not on_var_axis:
        logger.warning("crosstalk: no layer %r of raw counts matching the expression matrix's genes; sequencing "
                       "depth is not equalised across samples before the differential test", counts_layer)
        return None
    _validate.unique_cells(adata, tool="crosstalk's depth equalisation (counts_layer=None skips it)")
    counts = adata.layers[counts_layer]
    totals = _depth.row_totals(counts, chunk_size=chunk_size, not_counts=(
        f"crosstalk: layers[{counts_layer!r}] does not hold raw integer counts; pass the layer of raw counts as "
        "counts_layer, or counts_layer=None to skip depth equalisation"))
    _, fractions = _depth.kept_fractions(pd.Series({sample: np.median(totals[idx]) for sample, idx in cells.items()}))
    return _Depth(counts, f"adata.layers[{counts_layer!r}]", fractions.to_dict(), var_names)


# --------------------------------------------------------------------------------------------------
# LIANA
# --------------------------------------------------------------------------------------------------
def _run_liana(X: sp.csr_matrix, labels: pd.Series, var_names: pd.Index, resource: pd.DataFrame, *,
               min_cells: int, expr_prop: float, n_perms: int | None, seed: int) -> pd.DataFrame:
    """rank_aggregate on one sample (labels: categorical, only groups to keep)."""
    import liana as li

    obs = pd.DataFrame({"@hcctme_group": pd.Categorical(labels.astype(str))}, index=labels.index.astype(str))
    light = AnnData(X=X, obs=obs, var=pd.DataFrame(index=var_names.astype(str)))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = li.mt.rank_aggregate(
            light, groupby="@hcctme_group", resource=resource, expr_prop=expr_prop, min_cells=min_cells,
            n_perms=n_perms, seed=seed, use_raw=False, layer=None, inplace=False, verbose=False,
        )
    return res.reset_index(drop=True)


def _order(table: pd.DataFrame, sample_col: str | None) -> pd.DataFrame:
    """Resistance-axis interactions first, then by sample and LIANA's magnitude rank (else largest lr_means)."""
    rank = table["magnitude_rank"] if "magnitude_rank" in table.columns else -table["lr_means"]
    keys = ["_no_axis"] + ([sample_col] if sample_col else []) + ["_rank"]
    out = table.assign(_no_axis=table["axis"].isna(), _rank=rank.to_numpy())
    out = out.sort_values(keys, kind="stable").drop(columns=["_no_axis", "_rank"])
    return out.reset_index(drop=True)


def _liana_version() -> str:
    from importlib.metadata import version

    return version("liana")


# --------------------------------------------------------------------------------------------------
# Steps of the tool
# --------------------------------------------------------------------------------------------------
def _check_design(adata: AnnData, groupby: str, sample_key: str | None, condition_key: str | None,
                  reference: str | None, covariates: str | Sequence[str] | None, patient_key: str | None,
                  pair_key: str | None) -> dict[str, Any]:
    """Groups, units (samples or patients) and, with ``condition_key``, the design of the test."""
    labels = _validate.categorical_levels(adata, groupby, purpose="cell groups (groupby)", min_levels=2)
    if sample_key is not None:
        samples_col = _validate.categorical_levels(adata, sample_key, purpose="samples (sample_key)")
        if sample_key == groupby:
            raise ValueError("sample_key and groupby must be different obs columns")
        _check_unit_column(sample_key)
    else:
        samples_col = pd.Series(POOLED, index=adata.obs_names)
    design = None
    covariates = _design.covariate_list(covariates)
    if condition_key is not None:
        if sample_key is None:
            raise ValueError("condition_key needs sample_key: the differential test compares samples "
                             "(patients), never cells")
        _validate.categorical_levels(adata, condition_key, purpose="conditions (condition_key)", min_levels=2)
        cond_col = adata.obs[condition_key].astype(str)
        reference = _validate.reference_level(cond_col, reference, key=condition_key)
        units, design = _design.unit_design(adata, condition_key=condition_key, sample_key=sample_key,
                                            reference=reference, patient_key=patient_key, pair_key=pair_key,
                                            covariates=covariates)
        samples_col = units.astype(str)
    elif reference is not None or patient_key is not None or pair_key is not None or covariates:
        raise ValueError("reference, covariates, patient_key and pair_key are only used with condition_key")
    samples = samples_col.astype(str).to_numpy()
    order = sorted(pd.unique(samples))  # as pandas orders a category's levels: not by the rows' order
    if design is None and sample_key is not None and isinstance(adata.obs[sample_key].dtype, pd.CategoricalDtype):
        seen = set(order)
        order = [str(s) for s in adata.obs[sample_key].cat.categories if str(s) in seen]
    return {"groups": labels.to_numpy(), "samples": samples, "order": order, "design": design,
            "covariates": covariates, "reference": reference}


def _check_kept_levels(design: pd.DataFrame, kept_groups: dict[str, list[str]], reference: str,
                       min_cells: int, min_samples: int) -> None:
    """The differential test needs kept units of the reference level and of another: raise where it has none.

    Where no two levels keep ``min_samples`` units, nothing can be tested: a warning says so (the per-sample
    table, which the resistance profile reads, is still written).
    """
    counts = design.loc[list(kept_groups), "condition"].astype(str).value_counts()
    kept = ", ".join(f"{level!r}: {n}" for level, n in sorted(counts.items()))
    if reference not in counts or len(counts) < 2:
        raise _validate.TooFewCellsError(
            f"too few cells: the samples with two or more groups of >= min_cells={min_cells} cells are all of "
            f"condition level(s) {sorted(counts.index)}; the differential test needs samples of the reference "
            f"{reference!r} and of another level (lower min_cells, or call without condition_key for the "
            "per-sample table)")
    if counts[reference] < min_samples or not (counts.drop(reference) >= min_samples).any():
        logger.warning("crosstalk: the differential test can test nothing: the samples with two or more groups of "
                       ">= min_cells=%d cells are, per condition level, {%s}; it needs >= min_samples=%d of the "
                       "reference %r and of another level (lower min_cells or min_samples)", min_cells, kept,
                       min_samples, reference)


def _check_options(*, method: str | None, axes_only: bool, min_cells: int, expr_prop: float, n_perms: int | None,
                   min_samples: int, random_state: int, n_jobs: int | None, strength: str,
                   chunk_size: int) -> dict[str, Any]:
    """The checked numeric / choice arguments."""
    opts = {
        "axes_only": _validate.boolean(axes_only, name="axes_only"),
        "min_cells": _validate.positive_int(min_cells, name="min_cells"),
        "expr_prop": _validate.fraction(expr_prop, name="expr_prop"),
        "n_perms": _validate.positive_int(n_perms, name="n_perms", allow_none=True),
        "min_samples": _validate.positive_int(min_samples, name="min_samples"),
        "random_state": _validate.random_state(random_state),
        "n_jobs": _validate.positive_int(settings.n_jobs if n_jobs is None else n_jobs, name="n_jobs"),
        "strength": _validate.choice(strength, tuple(cstats.STRENGTHS), name="strength"),
        "chunk_size": _validate.positive_int(chunk_size, name="chunk_size"),
    }
    needs_ranks = opts["n_perms"] is not None or opts["strength"] != "lr_means"
    if method is None:
        method = "rank_aggregate" if needs_ranks else "lr_means"
    opts["method"] = _validate.choice(method, METHODS, name="method")
    if opts["method"] == "lr_means" and needs_ranks:
        raise ValueError(
            f"method='lr_means' computes LIANA's lr_means only (no permutations, no rank aggregation); "
            f"n_perms={opts['n_perms']} and strength={opts['strength']!r} need method='rank_aggregate' "
            "(or leave n_perms=None and strength='lr_means')"
        )
    if opts["strength"] == "specificity_rank" and opts["n_perms"] is None:
        raise ValueError("strength='specificity_rank' needs permutations; set n_perms (e.g. 100)")
    return opts


def _expression(adata: AnnData, layer: str | None, use_raw: bool | None) -> tuple[Any, str, pd.Index, bool]:
    """The log-normalised matrix, its name, its harmonised unique gene symbols, and whether it shares ``adata``'s genes.

    A counts layer can equalise depth only for a matrix on ``adata``'s gene axis (``X``, a layer, or a ``.raw``
    holding the same genes in the same order); the symbols are compared before harmonisation renames them.
    """
    X, source_names = _validate.matrix(adata, layer=layer, use_raw=use_raw)
    on_var_axis = pd.Index(source_names).astype(str).equals(pd.Index(adata.var_names).astype(str))
    raw = _validate.reads_raw(adata, layer, use_raw)
    var_names = _validate.unique_symbols(adata, source_names, raw=raw)
    _check_matrix(X)
    return X, f"adata.layers[{layer!r}]" if layer else ("adata.raw.X" if raw else "adata.X"), var_names, on_var_axis


def _checked_resource(resource: str | pd.DataFrame, axes_only: bool,
                      var_names: pd.Index) -> tuple[pd.DataFrame, dict[str, Any]]:
    """The resource table and its info (with the number of its genes present in the data)."""
    res_table, res_info = _resource(resource, axes_only=bool(axes_only))
    genes = _resource_genes(res_table)
    present = genes & set(var_names)
    coverage = len(present) / max(len(genes), 1)
    if coverage < _MIN_COVERAGE:
        example = ", ".join(list(var_names[:5]))
        raise ValueError(
            f"only {len(present)} of the {len(genes)} genes of the ligand-receptor resource are in the "
            f"data's var names (e.g. {example}); crosstalk needs human gene symbols as var names. Map "
            "Ensembl ids or mouse genes with hcctme.pp.harmonize_genes, or set var_names to a symbol column"
        )
    return res_table, {**res_info, "n_present": len(present)}


def _select_groups(groups: np.ndarray, samples: np.ndarray, order: list[str], *, min_cells: int,
                   groupby: str) -> tuple[dict[str, list[str]], pd.DataFrame]:
    """Groups kept per sample (>= min_cells cells, >= 2 groups) and the skipped groups / samples."""
    frame = pd.DataFrame({"group": groups, "sample": samples})
    counts = frame.groupby(["sample", "group"], observed=True).size()
    skipped_rows = []
    kept_groups: dict[str, list[str]] = {}
    for sample in order:
        sub = counts.loc[sample]
        small = sub[sub < min_cells]
        for group, n in small.items():
            skipped_rows.append({"sample": sample, "group": group, "n_cells": int(n),
                                 "reason": f"fewer than min_cells={min_cells} cells"})
        keep = [g for g in sub.index if sub[g] >= min_cells]
        if len(keep) < 2:
            skipped_rows.append({"sample": sample, "group": "*", "n_cells": int(sub.sum()),
                                 "reason": "fewer than 2 groups with enough cells: sample skipped"})
            continue
        kept_groups[sample] = keep
    skipped = pd.DataFrame(skipped_rows, columns=["sample", "group", "n_cells", "reason"])
    if len(skipped):
        groups_out, samples_out = skipped[skipped["group"] != "*"], skipped[skipped["group"] == "*"]
        if len(groups_out):
            logger.warning("crosstalk: skipped %d group(s) with fewer than min_cells=%d cells: %s", len(groups_out),
                           min_cells, "; ".join(f"{r.sample}/{r.group} ({r.n_cells})" for r in groups_out.itertuples()))
        if len(samples_out):
            logger.warning("crosstalk: skipped %d sample(s) with fewer than 2 groups of >= min_cells=%d cells "
                           "(cells in all): %s", len(samples_out), min_cells,
                           "; ".join(f"{r.sample} ({r.n_cells})" for r in samples_out.itertuples()))
    if not kept_groups:
        raise _validate.TooFewCellsError(f"too few cells: no sample has two or more groups of obs[{groupby!r}] "
                                         f"with >= min_cells={min_cells} cells; lower min_cells or check the "
                                         "annotation")
    return kept_groups, skipped


def _cells(groups: np.ndarray, samples: np.ndarray, kept_groups: dict[str, list[str]]) -> dict[str, np.ndarray]:
    """Per sample, the (sorted) indices of its cells in the kept groups."""
    return {sample: np.flatnonzero((samples == sample) & np.isin(groups, keep))
            for sample, keep in kept_groups.items()}


def _whole_samples(groups: np.ndarray, samples: np.ndarray, kept_groups: dict[str, list[str]]) -> dict[str, np.ndarray]:
    """Per kept sample, the indices of all its labelled cells: LIANA run on a sample sees it whole.

    LIANA leaves out the groups below ``min_cells`` itself (the groups :func:`_select_groups` leaves out), and its
    ``lrscore`` reads the mean of the whole matrix it is given: the sample's, as LIANA run on that sample reads it.
    """
    labelled = pd.notna(groups)
    return {sample: np.flatnonzero((samples == sample) & labelled) for sample in kept_groups}


def _run_rank_aggregate(X: Any, where: str, cells: dict[str, np.ndarray], groups: np.ndarray, obs_names: pd.Index,
                        var_names: pd.Index, res_table: pd.DataFrame, thinning: _Depth | None,
                        opts: dict[str, Any]) -> pd.DataFrame:
    """LIANA's rank_aggregate per sample (in parallel when n_jobs > 1), on depth-thinned counts when given.

    ``where`` names ``X``; the rows read (of ``X`` or the counts) are refused when they hold NaN or infinite values.
    """
    seed = opts["random_state"]
    thin = None if thinning is None else _thinning_of(thinning, cells, obs_names, seed)
    matrix, where = (X, where) if thinning is None else (thinning.counts, thinning.where)

    def jobs():
        for sample, idx in cells.items():
            labels_s = pd.Series(groups[idx], index=obs_names[idx])
            rows = _rows(matrix, idx)
            _validate.finite_rows(rows, idx, where=where)
            yield sample, rows if thin is None else _thinning.thinned_lognorm(rows, idx, thin), labels_s

    run = dict(min_cells=opts["min_cells"], expr_prop=opts["expr_prop"], n_perms=opts["n_perms"], seed=seed)
    progress = settings.progress and len(cells) > 1
    if opts["n_jobs"] > 1 and len(cells) > 1:
        from joblib import Parallel, delayed

        outs = Parallel(n_jobs=min(opts["n_jobs"], len(cells)), backend="loky")(
            delayed(_run_liana)(block, lab, var_names, res_table, **run) for _, block, lab in jobs())
    else:
        from tqdm import tqdm

        outs = [_run_liana(block, lab, var_names, res_table, **run)
                for _, block, lab in tqdm(jobs(), total=len(cells), desc="crosstalk (LIANA per sample)",
                                          disable=not progress)]
    return pd.concat([res.assign(**{fast.UNIT: sample}) for sample, res in zip(cells, outs, strict=True)],
                     ignore_index=True)


def _run_lr_means(X: Any, where: str, whole: dict[str, np.ndarray], groups: np.ndarray,
                  kept_groups: dict[str, list[str]], obs_names: pd.Index, var_names: pd.Index, res_table: pd.DataFrame,
                  thinning: _Depth | None, opts: dict[str, Any]) -> pd.DataFrame:
    """LIANA's lr_means of every unit from the groups' means and fractions, summed in one chunked pass.

    ``where`` names ``X`` (:func:`~hcctme.tl._crosstalk_fast.group_statistics` refuses NaN in the cells it reads).
    ``whole``: each unit's labelled cells (:func:`_whole_samples`). The cells of its groups below ``min_cells``
    are summed under one extra code: they count towards which genes the unit expresses at all, as LIANA drops
    only the genes no cell of the sample expresses before it drops the small groups.
    """
    exploded = fast.explode(res_table)
    position = var_names.get_indexer(pd.unique(pd.concat([exploded["ligand"], exploded["receptor"]])))
    columns = np.sort(position[position >= 0])  # only the resource genes are summed
    codes = np.full(len(groups), -1, dtype=np.int64)  # each cell's unit x group (-1: not scored)
    unit_codes: dict[str, np.ndarray] = {}
    rest_codes: dict[str, int] = {}
    n_codes = 0
    for sample, idx in whole.items():
        keep = pd.Index(kept_groups[sample])
        at = keep.get_indexer(groups[idx])
        codes[idx] = n_codes + np.where(at >= 0, at, len(keep))
        unit_codes[sample] = n_codes + np.arange(len(keep))
        rest_codes[sample] = n_codes + len(keep)
        n_codes += len(keep) + 1
    matrix, how = X, None
    if thinning is not None:
        matrix, where = thinning.counts, thinning.where
        how = _thinning_of(thinning, whole, obs_names, opts["random_state"])
    sums, expressing = fast.group_statistics(matrix, codes, n_codes, columns, chunk_size=opts["chunk_size"],
                                             thinning=how, where=where)
    n_cells = np.bincount(codes[codes >= 0], minlength=n_codes).astype(float)
    units = fast.unit_stats(sums, expressing, n_cells, unit_codes, kept_groups, rest_codes)
    return fast.lr_table(units, exploded, var_names[columns], expr_prop=opts["expr_prop"])


def _check_unit_column(sample_key: str, columns: Iterable[str] = (*fast.COLUMNS, "axis")) -> None:
    """Refuse a sample_key named as a column of the interaction table (it would overwrite or be overwritten)."""
    if sample_key in set(columns):
        raise ValueError(
            f"sample_key={sample_key!r} is also the name of a column of the crosstalk table (columns: "
            f"{_validate._preview(list(columns))}); copy the sample column under another name, e.g. "
            f"adata.obs['sample'] = adata.obs[{sample_key!r}], and pass sample_key='sample'"
        )


def _table(long: pd.DataFrame, sample_key: str | None, order: list[str], expr_prop: float) -> pd.DataFrame:
    """The table of all units (unit column ``fast.UNIT``), annotated with its axes and ordered."""
    if long.empty:
        raise ValueError(
            "LIANA found no ligand-receptor interaction passing expr_prop in any sample; lower expr_prop "
            f"(now {expr_prop}) or check that the resource genes are expressed"
        )
    units = long.pop(fast.UNIT)
    if sample_key is not None:
        _check_unit_column(sample_key, [*long.columns, "axis"])  # rank_aggregate's own score columns
        long.insert(0, sample_key, pd.Categorical(units, categories=order))
    keys = pd.MultiIndex.from_arrays([long["ligand_complex"], long["receptor_complex"]])
    unique = keys.unique()
    axis = pd.Series(kb_axes.annotate(unique.get_level_values(0), unique.get_level_values(1)).to_numpy(),
                     index=unique)
    long["axis"] = pd.Categorical(axis.reindex(keys).to_numpy())
    return _order(long, sample_key)


def _differential(table: pd.DataFrame, design: pd.DataFrame, kept_groups: dict[str, list[str]], *,
                  sample_key: str, reference: str, strength: str, min_samples: int) -> pd.DataFrame:
    """The two-part differential table, axis-annotated and sorted."""
    kept = list(kept_groups)
    matrix, detected, evaluable = cstats.strength_matrix(table, sample_key=sample_key, samples=kept,
                                                         groups=kept_groups, strength=strength)
    diff = cstats.differential(matrix, detected, evaluable, design.loc[kept], reference=reference,
                               min_samples=min_samples)
    diff.insert(4, "axis", pd.Categorical(kb_axes.annotate(diff["ligand_complex"], diff["receptor_complex"])))
    diff = diff.assign(_untested=~diff["tested"], _p=diff["pvalue"].fillna(2.0),
                       _size=-diff["effect"].abs().fillna(0.0), _no_axis=diff["axis"].isna())
    order = ["_untested", "_p", "_size", "_no_axis"]
    return diff.sort_values(order, kind="stable").drop(columns=order).reset_index(drop=True)


def _provenance(call: dict[str, Any], d: dict[str, Any], opts: dict[str, Any], res_info: dict[str, Any],
                kept_groups: dict[str, list[str]], skipped: pd.DataFrame, depth_equalized: bool) -> dict[str, Any]:
    """uns[key_added + "_params"]: the call's parameters and the run's provenance."""
    resource = call["resource"]
    record = _validate.call_record(
        groupby=call["groupby"], sample_key=call["sample_key"], condition_key=call["condition_key"],
        reference=d["reference"], covariates=list(d["covariates"]) or None, patient_key=call["patient_key"],
        pair_key=call["pair_key"], method=opts["method"],
        resource=(resource[["ligand", "receptor"]].dropna().astype(str).reset_index(drop=True)  # as it was read
                  if isinstance(resource, pd.DataFrame) else resource),
        axes_only=bool(opts["axes_only"]), chunk_size=opts["chunk_size"], min_cells=opts["min_cells"],
        expr_prop=opts["expr_prop"], n_perms=opts["n_perms"], strength=opts["strength"],
        min_samples=opts["min_samples"], random_state=opts["random_state"], n_jobs=opts["n_jobs"],
        layer=call["layer"], use_raw=call["use_raw"], counts_layer=call["counts_layer"])
    groups_long = pd.DataFrame([(s_, g) for s_, gs in kept_groups.items() for g in gs], columns=["sample", "group"])
    provenance = {
        "tool": "hcctme.tl.crosstalk", **record, "resource_name": res_info["resource"],
        "library_version": _validate.library_version(),
        "kb_version": kb_axes.get_version(), "method": opts["method"],
        "liana_version": _liana_version(),
        "n_resource_interactions": res_info["n_interactions"], "kb_pairs_added": res_info["kb_pairs_added"],
        "n_samples": len(kept_groups), "genes_in_resource_present": res_info["n_present"], "skipped": skipped,
        "depth_equalized": depth_equalized,
        "groups": groups_long,
    }
    if d["design"] is not None:
        provenance["conditions"] = d["design"].loc[list(kept_groups), "condition"].rename_axis("sample").reset_index()
    return provenance


def _write(adata: AnnData, key_added: str, table: pd.DataFrame, provenance: dict[str, Any],
           diff: pd.DataFrame | None) -> str:
    """Store the tables and provenance; return where they went (for the log line)."""
    adata.uns[key_added] = table
    adata.uns[key_added + Suffix.PARAMS] = provenance
    where = f"uns[{key_added!r}]"
    if diff is not None:
        adata.uns[key_added + Suffix.DIFF] = diff
        where += f" and uns[{key_added + Suffix.DIFF!r}]"
    else:  # a run without a condition replaces an earlier run's differential table too
        adata.uns.pop(key_added + Suffix.DIFF, None)
    return where


def _log(table: pd.DataFrame, diff: pd.DataFrame | None, n_units: int, t0: float, where: str) -> None:
    if diff is not None:
        n_tested = int(diff["tested"].sum())
        n_sig = int((diff["padj"] < Defaults.ALPHA).sum())
        logger.info("crosstalk: %d interactions over %d units, %d tested, %d with padj < %.2f (%.1fs) -> %s",
                    len(diff), n_units, n_tested, n_sig, Defaults.ALPHA, time.perf_counter() - t0, where)
    else:
        logger.info("crosstalk: %d interaction rows over %d sample(s) (%.1fs) -> %s", len(table),
                    n_units, time.perf_counter() - t0, where)


# --------------------------------------------------------------------------------------------------
# Public tool
# --------------------------------------------------------------------------------------------------
def crosstalk(
    adata: AnnData,
    *,
    groupby: str,
    sample_key: str | None = None,
    condition_key: str | None = None,
    reference: str | None = None,
    covariates: str | Sequence[str] | None = None,
    patient_key: str | None = None,
    pair_key: str | None = None,
    method: str | None = None,
    resource: str | pd.DataFrame = "consensus",
    axes_only: bool = False,
    min_cells: int = Defaults.MIN_CELLS,
    expr_prop: float = 0.1,
    n_perms: int | None = None,
    layer: str | None = None,
    use_raw: bool | None = None,
    strength: str = "lr_means",
    min_samples: int = 3,
    counts_layer: str | None = Keys.COUNTS,
    random_state: int = Defaults.SEED,
    n_jobs: int | None = None,
    chunk_size: int = Defaults.CHUNK_SIZE,
    key_added: str = Keys.CROSSTALK,
    copy: bool = False,
) -> AnnData | None:
    """Ligand-receptor crosstalk (LIANA+) annotated with the kb resistance axes.

    Scores every ligand-receptor interaction between the cell groups of each sample when
    ``sample_key`` is given (pooled otherwise) on log-normalised expression. The default
    ``method="lr_means"`` computes only what the outputs use: one pass over the matrix,
    ``chunk_size`` cells at a time (in memory, backed or dask; never read whole: memory is set by
    the chunk and the groups' sums), gives each sample x group's mean and detection fraction of
    the resource genes;
    LIANA's own resource handling, complex rules (every subunit expressed in >= ``expr_prop`` of
    the cells; a complex is its least expressed subunit) and CellPhoneDB's ``lr_means`` then give
    the table ``liana.mt.cellphonedb(n_perms=None)`` (and the ``lr_means`` of
    ``liana.mt.rank_aggregate``) would give for each sample. ``method="rank_aggregate"`` runs
    LIANA's full ``rank_aggregate`` per sample instead (``magnitude_rank``, the per-method scores
    and, with ``n_perms``, ``specificity_rank``). The table gets ``axis``: the :mod:`hcctme.kb`
    resistance axis (';'-joined ids when several; NaN when none). Resistance-axis interactions
    come first. With ``condition_key`` a patient-level differential table is built: a two-part
    test per interaction (see :mod:`hcctme.tl._crosstalk_stats`): whether it is detected (fraction of
    units) and how strong it is where detected, never imputing a strength where LIANA did not
    report it; pairs (pre / on treatment), patients above samples and covariates as in
    :func:`hcctme.tl.compare`.

    Parameters
    ----------
    adata
        Cells x genes with log-normalised expression (``.X``, ``layer`` or ``.raw``) and gene
        symbols as var names. Integer counts or scaled data are refused (normalise first).
    groupby
        obs column of cell groups (cell types or states); sender/receiver of each interaction.
    sample_key
        obs column of samples/patients; each sample is scored on its own.
    condition_key
        obs column of the condition compared (constant within each sample); needs ``sample_key``.
    reference
        Level of ``condition_key`` that effects are measured against (required with it).
    covariates, patient_key, pair_key
        The design of the differential test, as in :func:`hcctme.tl.compare` (sample-level
        covariates; ``patient_key`` pools a patient's samples into one unit, scored once per
        unit, or pairs a patient's samples across levels; ``pair_key`` pairs samples).
    method
        ``"lr_means"`` (LIANA's lr_means from the chunked group statistics; much faster) or
        ``"rank_aggregate"`` (LIANA's full consensus per sample, on each sample's cells in memory;
        needed for ``n_perms`` and for ``strength`` other than ``"lr_means"``). ``None``
        (default): ``"rank_aggregate"`` when ``n_perms`` or ``strength`` asks for it, else
        ``"lr_means"``. The one used is recorded in ``uns[key_added + "_params"]``.
    resource
        A LIANA resource name (``"consensus"``: read from the CSV bundled with LIANA, no network
        access) or a DataFrame with ``ligand`` and ``receptor`` columns (complexes joined by "_").
        Axis pairs of :func:`hcctme.kb.axis_pairs` that the resource lacks are appended (listed in
        ``uns[key_added + "_params"]["kb_pairs_added"]``).
    axes_only
        Score only the interactions that belong to a resistance axis (much faster). ``lr_means`` does
        not change; ``method="rank_aggregate"``'s ``magnitude_rank`` / ``specificity_rank`` are ranks among
        the interactions scored, so they (and a differential test on them) differ from a run on the whole
        resource.
    min_cells
        Groups with fewer cells in a sample are skipped there (reported in
        ``uns[key_added + "_params"]["skipped"]`` and logged); a sample left with < 2 groups is skipped.
    expr_prop
        Minimum fraction of cells of a group expressing the ligand/receptor (LIANA's filter).
    n_perms
        With ``method="rank_aggregate"``: permutations for LIANA's permutation-based specificity
        (CellPhoneDB). ``None`` (default) skips them: only ``magnitude_rank`` is aggregated (no
        ``specificity_rank``). ``method="lr_means"`` takes no permutations.
    layer, use_raw
        Which matrix to read (scanpy semantics: ``use_raw=None`` uses ``.raw`` when present).
    strength
        Per-sample interaction strength for the differential test: ``"lr_means"`` (mean of the
        ligand's mean in the sender and the receptor's mean in the receiver, from LIANA),
        ``"magnitude_rank"`` or ``"specificity_rank"`` (as -log10 of the rank; both need
        ``method="rank_aggregate"``). An interaction not
        reported in a unit whose sender and receiver groups were present (below ``expr_prop``) is
        not detected there (the detection part), with no strength; units lacking either group are
        left out for it.
    min_samples
        Minimum evaluable samples per condition (and samples where the interaction was detected)
        for an interaction to be tested; others are reported with ``tested=False``.
    counts_layer
        With ``condition_key``: layer of raw counts used to equalise sequencing depth before scoring
        (each unit's counts are binomially thinned so that its median counts per cell match the
        shallowest unit's, then log1p(CP10k)-normalised): detection above ``expr_prop`` and
        ``lr_means`` both grow with depth, so a depth difference between conditions would
        otherwise read as a difference in crosstalk. The thinned counts then replace the matrix
        ``layer`` / ``use_raw`` names, which must share ``adata``'s genes: ``None``, a missing layer, or
        a ``.raw`` holding other genes than ``var`` skip it (logged; ``depth_equalized`` in the
        provenance).
    random_state
        Seed of LIANA's permutations and of the depth thinning of a differential run. Each count's
        thinning draw is fixed by the seed and its cell's and gene's names: the same for another row
        or gene order, ``chunk_size`` and ``method`` (both methods thin the same way).
    n_jobs
        With ``method="rank_aggregate"``: samples run in parallel (joblib processes); None uses
        ``hcctme.settings.n_jobs``. Its cost grows with the number of group pairs x resource
        interactions, so many samples with the full resource take minutes.
    chunk_size
        Cells read at a time by ``method="lr_means"`` (and when summing counts per cell).
    key_added
        ``uns[key_added]``: the interaction table (a ``sample_key`` column when run per sample):
        ``source``, ``target``, ``ligand_complex``, ``receptor_complex``, then with
        ``method="lr_means"`` ``ligand_means``, ``ligand_props``, ``receptor_means``,
        ``receptor_props`` (of the least expressed subunit), ``lr_means``; with
        ``"rank_aggregate"`` LIANA's columns; then ``axis``.
        ``uns[key_added + "_params"]``: tool, params, library_version, kb_version, method,
        liana_version, the resource,
        ``skipped`` (groups / samples below ``min_cells``), ``groups`` (unit, group pairs run) and,
        with ``condition_key``, ``conditions`` (unit, condition). With ``condition_key``,
        ``uns[key_added + "_diff"]``: the differential table, one row per interaction: ``source``,
        ``target``, ``ligand_complex``, ``receptor_complex``, ``axis``, ``condition``,
        ``reference``, ``effect`` (strength where detected, linear model coefficient),
        ``mean_reference``, ``mean_other`` (mean strength where detected), ``detection_reference``,
        ``detection_other`` (fractions of evaluable units), ``detection_effect``,
        ``pvalue_detection``, ``pvalue_strength``, ``statistic`` and ``df`` (the parts' chi-square(1)
        statistics summed, over the parts tested), ``pvalue`` (the two parts combined), ``padj``
        (BH over tested interactions), ``n_reference``, ``n_other`` (evaluable units),
        ``n_samples``, ``n_detected``, ``tested``, ``direction`` (of the part with the smaller
        p-value); sorted by tested, p-value, then larger |effect| (axis interactions first among
        remaining ties).
    copy
        Return a copy of ``adata`` with the results instead of writing into ``adata``.

    Returns
    -------
    None, or the AnnData copy when ``copy=True``.
    Nothing is written to ``adata`` unless the whole run succeeds; LIANA itself only ever sees
    group statistics or (``rank_aggregate``) a lightweight copy of one sample.
    """
    t0 = time.perf_counter()
    call = {"groupby": groupby, "sample_key": sample_key, "condition_key": condition_key, "patient_key": patient_key,
            "pair_key": pair_key, "layer": layer, "use_raw": use_raw, "resource": resource,
            "counts_layer": counts_layer}
    adata = _validate.anndata(adata, writes=True)
    key_added = _validate.key_added(key_added, adata=adata, slots=("uns",), tool="hcctme.tl.crosstalk",
                                    outputs=[("uns", Suffix.DIFF)])
    _validate.copy_flag(copy, adata=adata, tool="hcctme.tl.crosstalk", writes="uns")
    d = _check_design(adata, groupby, sample_key, condition_key, reference, covariates, patient_key, pair_key)
    opts = _check_options(method=method, axes_only=axes_only, min_cells=min_cells, expr_prop=expr_prop,
                          n_perms=n_perms, min_samples=min_samples, random_state=random_state, n_jobs=n_jobs,
                          strength=strength, chunk_size=chunk_size)
    X, where, var_names, on_var_axis = _expression(adata, layer, use_raw)
    res_table, res_info = _checked_resource(resource, opts["axes_only"], var_names)
    kept_groups, skipped = _select_groups(d["groups"], d["samples"], d["order"], min_cells=opts["min_cells"],
                                          groupby=groupby)
    if d["design"] is not None:
        _check_kept_levels(d["design"], kept_groups, d["reference"], opts["min_cells"], opts["min_samples"])
    cells = _cells(d["groups"], d["samples"], kept_groups)
    thinning = (_depth_fractions(adata, counts_layer, cells, on_var_axis, var_names, opts["chunk_size"])
                if d["design"] is not None else None)
    whole = _whole_samples(d["groups"], d["samples"], kept_groups)
    if opts["method"] == "lr_means":
        long = _run_lr_means(X, where, whole, d["groups"], kept_groups, adata.obs_names, var_names, res_table,
                             thinning, opts)
    else:
        long = _run_rank_aggregate(X, where, whole, d["groups"], adata.obs_names, var_names, res_table, thinning,
                                   opts)
    table = _table(long, sample_key, list(kept_groups), opts["expr_prop"])
    provenance = _provenance(call, d, opts, res_info, kept_groups, skipped, thinning is not None)
    diff = None if d["design"] is None else _differential(
        table, d["design"], kept_groups, sample_key=sample_key, reference=d["reference"],
        strength=opts["strength"], min_samples=opts["min_samples"])

    adata = adata.copy() if copy else adata  # nothing above touched adata
    where = _write(adata, key_added, table, provenance, diff)
    _log(table, diff, len(kept_groups), t0, where)
    return adata if copy else None
