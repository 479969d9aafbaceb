"""What each Snakemake rule does, on files, through the public API (one function per rule)."""

from __future__ import annotations

import functools
import json
import re
import warnings
from pathlib import Path
from typing import Any

import anndata as ad
import h5py
import pandas as pd

from hcctme import _files, _validate, get, tl
from hcctme._constants import COMPARE_KEYS, Keys, Suffix
from hcctme.pipeline import (
    NO_STATES,
    PipelineConfig,
    compare_one,
    config_record,
    counts_problem,
    counts_view,
    harmonize,
    run_step,
)
from hcctme.report import _build as report_build

_NO_CONDITION = "condition_key is null: no conditions to compare"  # a comparison table's skip reason

# the config keys of the workflow that are not PipelineConfig fields
_WORKFLOW_ONLY = {"input": None, "outdir": "results"}
# PipelineConfig fields the workflow's config schema exposes (their defaults are PipelineConfig's)
_CONFIG_FIELDS = ("sample_key", "condition_key", "reference", "cell_type_key", "layer", "use_raw", "counts_layer",
                  "signatures", "method", "min_coverage", "genes", "genes_groups", "de_method", "crosstalk",
                  "spatial_key", "context_map", "gene_symbols", "species", "random_state")
DEFAULTS = {"outdir": _WORKFLOW_ONLY["outdir"],
            **{name: getattr(PipelineConfig(), name) for name in _CONFIG_FIELDS}}
_NAMES = ("gene_symbols", "species")  # every rule that reads the input maps its gene names as the config asks
_CONDITION = ("condition_key", "reference")
# the config keys each rule reads: its params, so that changing one key reruns only the rules that read it (and
# what follows them); a rule sees the defaults in place of the others. The profile records the whole config.
RULE_KEYS: dict[str, tuple[str, ...]] = {
    "split_sample": ("input", "sample_key", *_NAMES),  # the sample file names are read from the input
    "score_sample": ("signatures", "method", "layer", "use_raw", "min_coverage"),
    "states": ("sample_key", "cell_type_key", "context_map", "random_state", *_NAMES),
    "pseudobulk": ("sample_key", "cell_type_key", "counts_layer", *_NAMES),
    "compare_composition": ("sample_key", "cell_type_key", *_CONDITION, *_NAMES),
    "compare_scores": ("sample_key", "cell_type_key", *_CONDITION, *_NAMES),
    "compare_genes": ("sample_key", "cell_type_key", "counts_layer", "genes_groups", "de_method", *_CONDITION,
                      *_NAMES),
    "crosstalk": ("crosstalk", "sample_key", "cell_type_key", "layer", "use_raw", "random_state", *_CONDITION,
                  *_NAMES),
    "tib": ("sample_key", "spatial_key", "random_state", *_NAMES),
    "ta_response": ("sample_key", "use_raw", "counts_layer", *_CONDITION, *_NAMES),
    "profile": _CONFIG_FIELDS,
}


def schema_path() -> str:
    from hcctme.workflow import config_schema

    return config_schema()


def _config(config: dict[str, Any]) -> PipelineConfig:
    merged = {**DEFAULTS, **config}
    return PipelineConfig(**{k: v for k, v in merged.items() if k not in _WORKFLOW_ONLY})


def check_input(config: dict[str, Any]) -> None:
    """Check the input against the config before any job, as ``hcctme run`` does before its first step.

    The format (an h5ad file, else what it is and how to read it), the obs columns, the reference level, two
    samples per condition level, the matrices (log-normalised for crosstalk; an explicit ``counts_layer`` holding
    counts), the user's gene-set file: the input is read backed, a sample of at most 2,000 rows looked at. The
    scoring method: the workflow scores each sample on its own, so ``mean`` (control genes drawn from expression
    bins of the matrix scored: other bins in every sample) is refused.
    """
    if config.get("method", DEFAULTS["method"]) == "mean":
        raise ValueError(
            "method 'mean' cannot be used in the workflow: it scores each sample on its own, and the mean method "
            "draws its control genes from expression bins of the cells it scores, so each sample would get other "
            "controls and the scores would not compare between samples; use method ucell, aucell or ulm (per cell, "
            "the same whatever the other cells), or `hcctme run`, which scores the whole cohort at once"
        )
    _checked_input(str(config["input"]), json.dumps(config, sort_keys=True, default=str))


@functools.cache  # the Snakefile is read more than once per process: check once
def _checked_input(path: str, config_json: str) -> None:
    config, adata = _config(json.loads(config_json)), _backed_input(path)
    harmonize(adata, config)  # the names every rule matches (in memory: the file is read only)
    config.validate(adata)


@functools.cache  # one backed read of the input per process, for the checks and the target lists
def _backed_input(path: str) -> ad.AnnData:
    return _files.read_h5ad(_validate.existing_file(path, what="workflow input"), backed=True)


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]", "_", name)


def _sample_table(config: dict[str, Any]) -> dict[str, str]:
    """Safe file name -> sample value, read from the input's obs only (no matrix is loaded)."""
    key = config.get("sample_key", DEFAULTS["sample_key"])
    path = _validate.existing_file(config["input"], what="workflow input")
    with h5py.File(path, "r") as handle:
        obs = ad.io.read_elem(handle["obs"])
    if key not in obs.columns:
        raise KeyError(f"the input's obs has no column {key!r} (config sample_key)")
    values = sorted(obs[key].astype(str).unique())
    names = {_safe(v): v for v in values}
    if len(names) != len(values):
        raise ValueError(f"sample names of {key!r} collide once made file-safe; rename the samples")
    return names


def sample_names(config: dict[str, Any]) -> list[str]:
    return list(_sample_table(config))


def gene_level(config: dict[str, Any]) -> bool:
    """Whether the gene-level rules (pseudobulk, the genes comparison) run: ``genes`` on and raw counts in the input.

    As :func:`hcctme.pipeline.run` decides (the input read backed: a sample of at most 2,000 rows is looked at);
    without counts they are left out of the workflow with a warning, not failed.
    """
    settings = _config(config)
    return settings.genes and _has_counts(str(config["input"]), settings.counts_layer)


@functools.cache  # the Snakefile asks for each target list: read the input and warn once
def _has_counts(path: str, counts_layer: str | None) -> bool:
    problem = counts_problem(_backed_input(path), counts_layer)
    if problem:
        warnings.warn(f"workflow: pseudobulk and compare_genes skipped: {problem}", UserWarning, stacklevel=2)
    return problem is None


def compare_features(config: dict[str, Any]) -> list[str]:
    """The comparisons the workflow runs: none without a condition (``condition_key: null``), genes with counts."""
    if _config(config).condition_key is None:
        return []
    return ["composition", "scores", "genes"] if gene_level(config) else ["composition", "scores"]


def rule_config(config: dict[str, Any], rule: str) -> dict[str, Any]:
    """The keys of ``config`` that ``rule`` reads (:data:`RULE_KEYS`), defaults filled in: the rule's params.

    Snakemake reruns a job whose params changed, so a rule's params hold only what it reads: changing
    ``de_method`` reruns the gene comparison and the profile, not the scoring. A default written out is no change.
    """
    merged = {**DEFAULTS, **config}
    return {key: merged[key] for key in RULE_KEYS[rule]}


def _cfg(smk) -> dict[str, Any]:
    return {**DEFAULTS, **dict(smk.params.config)}


def split_sample(smk) -> None:  # one sample's cells in memory: the per-sample fan-out
    config = _cfg(smk)
    sample = _sample_table(config)[smk.wildcards.sample]
    adata = _files.read_h5ad(smk.input[0], backed=True)
    mask = (adata.obs[config["sample_key"]].astype(str) == sample).to_numpy()
    part = adata[mask].to_memory()
    harmonize(part, _config(config))  # the scoring rule matches the mapped names
    _files.write_h5ad(part, smk.output[0])


def score_sample(smk) -> None:
    adata = _files.read_h5ad(smk.input[0])
    run_step(adata, _config(_cfg(smk)), "score")
    _files.write_results_h5ad(adata, smk.output[0])  # obs and scores: the matrices stay in the input


def merge_scores(smk) -> None:
    parts = [_files.read_h5ad(path) for path in smk.input]
    obs = pd.concat([p.obs for p in parts])
    scores = pd.concat([get.scores(p) for p in parts]).loc[obs.index]
    merged = ad.AnnData(obs=obs, var=parts[0].var, obsm={Keys.SCORES: scores}, uns=parts[0].uns)
    _files.write_results_h5ad(merged, smk.output[0])


def with_matrices(results_path: str, input_path: str, config: PipelineConfig | None = None) -> ad.AnnData:
    """The workflow's input (read backed when its matrices are large) carrying the results of ``results_path``.

    ``results_path`` is a results-only h5ad of earlier rules (its cells in any order); its obs columns,
    obsm entries and uns are added to the input's. With ``config``, its gene names are mapped as the config asks
    (``gene_symbols`` / ``species``), as :func:`hcctme.pipeline.run` maps them before its first step.
    """
    adata = _files.read_h5ad(input_path, backed=None)
    if config is not None:
        harmonize(adata, config)
    results = _files.read_h5ad(results_path)
    order = results.obs_names.get_indexer(adata.obs_names)
    if (order < 0).any() or len(order) != results.n_obs:
        raise ValueError(f"{results_path!r} does not hold the cells of the input {input_path!r}; rerun the workflow")
    for column in results.obs.columns.difference(adata.obs.columns):  # with its dtype: a state's categories kept
        adata.obs[column] = results.obs[column].iloc[order].set_axis(adata.obs_names)
    for key, value in results.obsm.items():
        adata.obsm[key] = value.iloc[order].set_axis(adata.obs_names) if isinstance(value, pd.DataFrame) \
            else value[order]
    adata.uns.update(results.uns)
    return adata


def _run_step(smk, step: str) -> ad.AnnData:
    config = _config(_cfg(smk))
    adata = with_matrices(smk.input[0], smk.input.data, config)
    _write_skipped(run_step(adata, config, step), smk.output.skipped)
    return adata


def _why_not(smk, step: str, default: str) -> str:
    """Why ``step`` wrote no table: the reason its run recorded (too few cells), else ``default``."""
    return json.loads(Path(smk.output.skipped).read_text()).get(step, default)


def _write_params(adata: ad.AnnData, key: str, path: str) -> None:
    """A rule's results as its tool stores them in ``uns``, for the profile rule to put back.

    ``uns[key]``, its ``_diff`` / ``_per_sample`` tables, ``_params`` and ``_values``.
    The report's methods and :func:`hcctme.get.params` read the records, and the profile reads the tables and
    crosstalk's groups: read back from the h5ad they hold the values and types the tool wrote (read from the
    TSVs, floats moved in the last bit and sample ids such as "001" became integers that match no sample).
    """
    suffixes = ("", Suffix.DIFF, Suffix.PER_SAMPLE, Suffix.PARAMS, Suffix.VALUES)
    uns = {key + s: adata.uns[key + s] for s in suffixes if key + s in adata.uns}
    _files.write_h5ad(ad.AnnData(uns=uns), path)


def _write_skipped(skipped: dict[str, str], path: str) -> None:
    """What a rule skipped for too few cells or genes, with the reason: the profile rule records it for the report."""
    _files.write_text(json.dumps(skipped, indent=1) + "\n", path)


def states(smk) -> None:
    _files.write_results_h5ad(_run_step(smk, "states"), smk.output[0])


def pseudobulk(smk) -> None:
    config = _config(_cfg(smk))
    view, layer = counts_view(with_matrices(smk.input[0], smk.input.data, config), config)
    try:
        bulk = tl.pseudobulk(view, sample_key=config.sample_key, groupby=config.cell_type_key, layer=layer)
    except tl.TooFewCellsError as error:  # as hcctme run, which skips the gene comparison for it: no profile
        warnings.warn(f"workflow: pseudobulk has no profile: {error}", UserWarning, stacklevel=2)
        bulk = ad.AnnData(var=pd.DataFrame(index=view.var_names), uns={"skipped": str(error)})
    _files.write_h5ad(bulk, smk.output[0])


def compare(smk) -> None:
    """One comparison's table; an empty one, with a warning, where the cohort has too few cells for it."""
    config = _config(_cfg(smk))
    adata = with_matrices(smk.input[0], smk.input.data, config)
    features = smk.wildcards.features
    why = NO_STATES if features == "composition" and Keys.STATE not in adata.obs else None  # states called none
    if why is None:
        try:
            table = compare_one(adata, config, features)
        except (tl.TooFewCellsError, tl.TooFewGenesError) as error:
            why = str(error)
    skipped = {}
    if why is not None:
        warnings.warn(f"workflow: compare_{features} skipped: {why}", UserWarning, stacklevel=2)
        table, skipped = pd.DataFrame({"skipped": [why]}), {f"compare_{features}": why}
    _files.write_table(table, smk.output[0])
    _write_skipped(skipped, smk.output.skipped)
    _write_params(adata, COMPARE_KEYS[features], smk.output.params)


def _or_skipped(read: Any, adata: ad.AnnData, why: str, **kwargs: Any) -> pd.DataFrame:
    """The table ``read`` (a :mod:`hcctme.get` function) returns, or one ``skipped`` row saying why there is none.

    The rule must write the file, and a file without a header reads as no table at all.
    """
    try:
        return read(adata, **kwargs)
    except KeyError:
        return pd.DataFrame({"skipped": [why]})


def crosstalk(smk) -> None:
    if _cfg(smk)["crosstalk"]:
        adata = _run_step(smk, "crosstalk")
    else:  # the profile rule records crosstalk=False from the config
        adata = _files.read_h5ad(smk.input[0])
        _write_skipped({}, smk.output.skipped)
    why = _why_not(smk, "crosstalk", "crosstalk wrote no table" if _cfg(smk)["crosstalk"] else "crosstalk=False")
    _files.write_table(_or_skipped(get.crosstalk, adata, why), smk.output.pooled)
    if Keys.CROSSTALK in adata.uns:  # it ran: without a condition there is no differential test
        why = _NO_CONDITION
    _files.write_table(_or_skipped(get.crosstalk, adata, why, differential=True), smk.output.diff)
    _write_params(adata, Keys.CROSSTALK, smk.output.params)


def tib(smk) -> None:
    adata = _run_step(smk, "tib")
    spatial_key = _config(_cfg(smk)).spatial_key
    table = _or_skipped(get.tib, adata, _why_not(smk, "tib", "the barrier step wrote no table" if spatial_key
                                                 in adata.obsm else f"no spatial coordinates in obsm[{spatial_key!r}]"))
    _files.write_table(table, smk.output[0], index="skipped" not in table.columns)
    _write_params(adata, Keys.TIB, smk.output.params)


def ta_response(smk) -> None:
    adata = _run_step(smk, "ta_response")
    why = _why_not(smk, "ta_response", "the T+A step wrote no table")
    _files.write_table(_or_skipped(get.ta_response, adata, why, per_sample=True), smk.output.per_sample)
    _files.write_table(_or_skipped(get.ta_response, adata, _NO_CONDITION if Keys.TA_RESPONSE + Suffix.PER_SAMPLE
                                   in adata.uns else why), smk.output.compare)
    _write_params(adata, Keys.TA_RESPONSE, smk.output.params)


def profile(smk) -> None:
    config = _cfg(smk)
    adata = with_matrices(smk.input.states, smk.input.data, _config(config))
    for path in smk.input.params:  # the other rules' results and records (:func:`_write_params`)
        adata.uns.update(_files.read_h5ad(path).uns)
    skipped = _config(config).validate(adata)  # what the config leaves out (no counts, coordinates, condition)
    for path in smk.input.skipped:
        skipped.update(json.loads(Path(path).read_text()))
    skipped.update(run_step(adata, _config(config), "profile"))
    adata.uns[Keys.RUN] = {"config": config_record(_config(config)), "skipped": skipped}
    _files.write_table(get.profile(adata), smk.output.table)
    _files.write_table(_or_skipped(get.profile, adata, _NO_CONDITION, summary=True), smk.output.summary)
    _files.write_table(get.profile(adata, evidence=True), smk.output.evidence)
    _files.write_results_h5ad(adata, smk.output.h5ad)


def report(smk) -> None:
    adata = _files.read_h5ad(smk.input[0])
    report_build.write(adata, smk.output[0], keep_tables=True)
