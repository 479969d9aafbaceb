"""The whole hcctme analysis as one call, shared by ``hcctme run``/``hcctme demo`` and the Snakemake rules.

Steps: score -> call_states -> compare (composition, scores, genes) -> T+A response -> crosstalk ->
spatial TIB (when coordinates exist) -> resistance profile -> report. Each step writes its results
into the AnnData under the keys of :class:`hcctme._constants.Keys`; :func:`write_outputs` writes
the results (``hcctme.h5ad``: obs, var, obsm, uns; the matrices only with ``full=True``), one TSV
per table and ``report.html``. On a backed AnnData (``hcctme._files.read_h5ad(path, backed=True)``,
layers on disk too) score, states, compare, ta_response, tib and profile read the matrices in row
chunks, so their memory is set by the chunk size and the number of groups, not by the number of cells.
"""

from __future__ import annotations

import contextlib
import logging
import platform
import time
import warnings
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from functools import partial
from pathlib import Path

import numpy as np
import pandas as pd
from anndata import AnnData

from hcctme import _files, _validate, get, tl
from hcctme._constants import COMPARE_KEYS, GENE_METHODS, Defaults, Files, Keys, Suffix
from hcctme._logging import STEP_LOGGER, logger
from hcctme._version import __version__
from hcctme.tl import _contexts, _design

_step_logger = logging.getLogger(STEP_LOGGER)

__all__ = ["STEPS", "PipelineConfig", "run", "write_outputs"]  # the rest serves the CLI and the workflow rules

STEPS = ("score", "states", "compare", "ta_response", "crosstalk", "tib", "profile")
_NO_CONDITION = "condition_key=None, no conditions to compare"  # the comparisons' skip reason (no warning)
NO_STATES = "no state calls (obs['hcctme_state']): add 'states' to steps, or run tl.call_states first"
# what the data cannot hold (too few cells per sample, too few genes measured): the step is skipped, the run goes on
_DATA_LIMITS = (_validate.TooFewCellsError, _validate.TooFewGenesError)


@dataclass
class PipelineConfig:
    """Parameters of a full run (the CLI flags and the Snakemake config map onto these fields).

    ``layer`` / ``use_raw`` choose the log-normalised matrix every step reads (score, ta_response,
    crosstalk, profile). ``counts_layer`` names the raw counts for gene-level tests: a layer, or
    ``"raw"`` for ``adata.raw.X`` (when no layer is called "raw"); ``None`` uses
    ``layers["counts"]`` when it holds counts and otherwise skips the gene-level tests with a
    warning (recorded in ``uns["hcctme_run"]["skipped"]``). ``signatures`` are the user's gene sets,
    scored in addition to the library's (state calling needs the library); ``method`` and ``min_coverage`` are
    :func:`hcctme.tl.score`'s (a gene panel may need a lower coverage). ``gene_symbols`` /
    ``species`` run :func:`hcctme.pp.harmonize_genes` first. ``context_map`` maps cell-type labels to
    contexts (a dict, or the path of a YAML file holding one). ``de_method`` tests the pseudobulk genes
    per cell type: ``"limma-trend"`` or ``"voom"`` (limma, vectorised: seconds per cell type at 200
    patients x 20,000 genes) or ``"deseq2"`` (PyDESeq2: minutes per cell type at that size).
    ``random_state`` seeds the stochastic steps: the state calls' self-training, crosstalk and the spatial barrier.
    ``steps`` run in their order; the results of steps left out, from an earlier call on the same object, are kept
    and read by the later steps and written with the outputs (to compute the profile again alone, say).
    ``condition_key=None`` describes a cohort without conditions (no outcome labels): the comparisons are skipped,
    the T+A response and crosstalk are per sample only, the profiles are read against the whole cohort, and
    ``reference`` is not used.
    """

    sample_key: str = Defaults.SAMPLE_KEY
    condition_key: str | None = Defaults.CONDITION_KEY
    reference: str | None = Defaults.REFERENCE
    cell_type_key: str = Defaults.CELL_TYPE_KEY
    layer: str | None = None
    use_raw: bool | None = None
    counts_layer: str | None = None
    signatures: list[str] | str | None = None
    method: str = "ucell"
    min_coverage: float = Defaults.MIN_COVERAGE
    context_map: dict[str, str] | str | None = None
    gene_symbols: str | None = None
    species: str | None = None
    genes: bool = True
    genes_groups: list[str] | None = None
    de_method: str = GENE_METHODS[0]
    crosstalk: bool = True
    crosstalk_groupby: str | None = None
    spatial_key: str = Keys.SPATIAL
    n_jobs: int = 1
    random_state: int = Defaults.SEED
    steps: tuple[str, ...] = field(default=STEPS)

    def __post_init__(self) -> None:
        if self.condition_key is None:  # no condition: no reference level either (the tools refuse one alone)
            self.reference = None

    @property
    def condition(self) -> dict[str, str | None]:
        """``condition_key`` and ``reference`` as the tools take them (both None without a condition)."""
        return {"condition_key": self.condition_key, "reference": self.reference}

    def validate(self, adata: AnnData) -> dict[str, str]:
        """Check everything knowable before any step writes anything or runs an expensive computation.

        Returns the steps that will be skipped, with the reason (``{"compare_genes": "..."}``).
        """
        _validate.anndata(adata, writes=True)
        for flag in ("genes", "crosstalk"):
            _validate.boolean(getattr(self, flag), name=flag)
        self.steps = tuple(_validate.names(self.steps, name="steps") or ())  # one name is a list of one
        self.genes_groups = _validate.names(self.genes_groups, name="genes_groups")
        _validate.categorical_levels(adata, self.sample_key, purpose="sample_key", min_levels=2)
        if self.condition_key is not None:
            if self.condition_key not in adata.obs.columns:
                raise KeyError(
                    f"adata.obs has no column {self.condition_key!r} (condition_key, the outcome of each sample); "
                    f"name the outcome column (condition_key= / --condition-key), or describe a cohort without "
                    f"outcome labels with condition_key=None (--no-condition); obs columns: "
                    f"{list(map(str, adata.obs.columns[:20]))}"
                )
            conditions = _validate.categorical_levels(
                adata, self.condition_key, purpose="condition_key", min_levels=2
            )
            _validate.reference_level(conditions, self.reference, key=self.condition_key)
            _validate.constant_within(adata, self.condition_key, self.sample_key)
            _check_samples_per_level(adata, self.sample_key, self.condition_key)
        cell_types = _validate.obs_column(adata, self.cell_type_key, purpose="cell_type_key").astype(str)
        if self.genes_groups:
            _check_genes_groups(self.genes_groups, cell_types, self.cell_type_key)
        _validate.choice(self.de_method, GENE_METHODS, name="de_method")
        unknown = sorted(set(self.steps) - set(STEPS))
        if unknown:
            raise ValueError(f"unknown pipeline step(s) {unknown}; steps are {list(STEPS)}")
        X, var_names = _validate.matrix(adata, layer=self.layer, use_raw=self.use_raw)
        _validate.unique_genes(pd.Index(var_names), raw=_validate.reads_raw(adata, self.layer, self.use_raw))
        if self.crosstalk and "crosstalk" in self.steps:
            _expression_for_crosstalk(X)
        context_map(self)
        extra_signatures(self)
        skipped = {}
        if "compare" in self.steps and self.condition_key is None:
            skipped["compare"] = _NO_CONDITION
        elif "compare" in self.steps:
            reason = "genes=False" if not self.genes else counts_problem(adata, self.counts_layer)
            if reason:
                skipped["compare_genes"] = reason
        if "crosstalk" in self.steps and not self.crosstalk:
            skipped["crosstalk"] = "crosstalk=False"
        if "tib" in self.steps and self.spatial_key not in adata.obsm:
            skipped["tib"] = f"no spatial coordinates in obsm[{self.spatial_key!r}]"
        elif "tib" in self.steps:  # NaN or 3-D coordinates refused now, not after the other steps ran
            _validate.spatial(adata, self.spatial_key, samples=adata.obs[self.sample_key])
        return skipped


def _check_samples_per_level(adata: AnnData, sample_key: str, condition_key: str) -> None:
    pairs = adata.obs[[sample_key, condition_key]].astype(str).drop_duplicates()
    _design.check_levels(pairs.rename(columns={condition_key: "condition"}), condition_key, sample_key)


def _check_genes_groups(genes_groups: list[str], cell_types: pd.Series, cell_type_key: str) -> None:
    labels = set(cell_types)
    unknown = [str(g) for g in genes_groups if str(g) not in labels]
    if unknown:
        raise ValueError(
            f"genes_groups (--genes-groups) names {unknown}, not labels of obs[{cell_type_key!r}]; its labels are "
            f"{_validate._preview(pd.unique(cell_types))}"
        )


def _expression_for_crosstalk(X) -> None:
    kind = _validate.matrix_kind(X)
    if kind in ("counts", "scaled"):
        what = "integer counts" if kind == "counts" else "negative (scaled) values"
        raise ValueError(
            f"the expression matrix the steps read holds {what}, but crosstalk needs log-normalised values; "
            "choose the log-normalised matrix with layer= / use_raw= (--layer / --use-raw), make one (keep the "
            "counts: adata.layers['counts'] = adata.X.copy(); then sc.pp.normalize_total(adata, target_sum=1e4); "
            "sc.pp.log1p(adata)), or turn crosstalk off (crosstalk=False, --no-crosstalk)"
        )


def counts_problem(adata: AnnData, counts_layer: str | None) -> str | None:
    """Why gene-level tests cannot run (None when they can); an explicit bad ``counts_layer`` raises."""
    if counts_layer is None:
        if Keys.COUNTS not in adata.layers:
            return f"no raw counts: adata.layers has no {Keys.COUNTS!r} (pass counts_layer= / --counts-layer)"
        X = adata.layers[Keys.COUNTS]
    elif counts_layer == _RAW and _RAW not in adata.layers:
        if adata.raw is None:
            raise ValueError("counts_layer='raw' takes the counts from adata.raw, but adata.raw is None; "
                             "name the layer holding raw counts instead")
        X = adata.raw.X
    else:
        try:
            X, _ = _validate.matrix(adata, layer=counts_layer, use_raw=False)
        except KeyError:  # its hint names layer=, the log-normalised matrix's argument here
            raise KeyError(f"counts_layer={counts_layer!r} (--counts-layer) is not a layer of adata (layers: "
                           f"{sorted(adata.layers) or 'none'}); name the layer holding raw counts, 'raw' for "
                           "adata.raw, or leave it out / pass genes=False (--no-genes) to skip the gene-level "
                           "tests") from None
    where = "adata.raw.X" if counts_layer == _RAW and _RAW not in adata.layers else \
        f"adata.layers[{counts_layer or Keys.COUNTS!r}]"
    kind = _validate.matrix_kind(X)
    if kind == "counts":
        return None
    if counts_layer is None:
        return f"no raw counts: {where} looks {kind}, not integer counts"
    raise ValueError(f"counts_layer={counts_layer!r}: {where} looks {kind}, not raw integer counts; name the "
                     "layer holding raw counts (or 'raw' for adata.raw), or pass genes=False (--no-genes)")


_RAW = "raw"


def context_map(config: PipelineConfig) -> dict[str, str | None] | None:
    """The run's context map: ``config.context_map`` as given, or read from its YAML path; checked."""
    value = config.context_map
    if isinstance(value, (str, Path)):
        value = _files.read_context_map(value)
    return _contexts.check_context_map(value) if value is not None else None


def extra_signatures(config: PipelineConfig):
    """The signature library plus the user's gene sets (ids must not repeat library ids)."""
    from hcctme import sig

    library = sig.library()
    if config.signatures is None:
        return library
    user = sig.load(config.signatures)
    user = [s for s in user if not (s.id in library and library[s.id] == s)]  # library ids given by name
    clash = sorted(s.id for s in user if s.id in library)
    if clash:
        raise ValueError(
            f"user gene set(s) {clash} have the id of a library signature; rename them (user sets are scored in "
            "addition to the library)"
        )
    return library + sig.SignatureSet(user)


def run(adata: AnnData, config: PipelineConfig | None = None, **params) -> AnnData:
    """Run every step on ``adata`` (modified in place) and return it.

    Parameters
    ----------
    adata
        Cells x genes with log-normalised ``.X`` (or ``layer``/``.raw``), raw counts in
        ``layers[config.counts_layer]`` (or ``.raw``) for gene-level tests, and sample / condition /
        cell-type annotations in ``obs``.
    config
        A :class:`PipelineConfig`; keyword arguments override its fields.
    **params
        Fields of :class:`PipelineConfig` (e.g. ``condition_key=None``, ``steps=("score", "states")``), over
        those of ``config``; an unknown name raises a ``TypeError``.

    Returns
    -------
    AnnData
        ``adata`` itself, with every step's results and ``uns["hcctme_run"]`` (config, timings_s, skipped).

    Notes
    -----
    Everything knowable is checked before the first step; a step that cannot run (no counts, no
    coordinates) is skipped with a warning and recorded in ``uns["hcctme_run"]["skipped"]``, as is a step or
    comparison that raises :class:`hcctme.tl.TooFewCellsError` (too few cells per sample to test anything) or
    :class:`hcctme.tl.TooFewGenesError` (the data measure too few of its signatures' genes), so that a small
    cohort, or a gene panel, still gets what it can hold and its report. When a step fails otherwise, ``adata`` is
    restored to what it was before the call.
    """
    if config is not None and not isinstance(config, PipelineConfig):
        raise TypeError(f"config must be a PipelineConfig, got {type(config).__name__}; pass PipelineConfig(**d) or "
                        "run(adata, **d)")
    config = PipelineConfig(**{**(asdict(config) if config else {}), **params})
    _validate.anndata(adata, writes=True)  # before the snapshot: a backed view cannot even be restored
    with _restored_on_error(adata):
        harmonize(adata, config)
        skipped = config.validate(adata)
        _warn_skipped({step: reason for step, reason in skipped.items()
                       if not reason.endswith("=False") and reason != _NO_CONDITION})
        timings: dict[str, float] = {}
        steps = [name for name in STEPS if name in config.steps and name not in skipped]
        for number, name in enumerate(steps, start=1):
            start = time.perf_counter()
            skipped.update(run_step(adata, config, name))
            timings[name] = round(time.perf_counter() - start, 2)
            _step_logger.info("[%d/%d] %s done (%.1f s)", number, len(steps), name, timings[name])
        _drop_earlier_results(adata, skipped)
        adata.uns[Keys.RUN] = {"config": config_record(config), "timings_s": timings, "skipped": skipped}
    return adata


# uns key of each step's results (a skipped comparison: COMPARE_KEYS); the tools' second tables carry suffixes
_STEP_KEYS = {"ta_response": Keys.TA_RESPONSE, "crosstalk": Keys.CROSSTALK, "tib": Keys.TIB, "profile": Keys.PROFILE}
_RESULT_SUFFIXES = ("", Suffix.PARAMS, Suffix.VALUES, Suffix.DIFF, Suffix.PER_SAMPLE, Suffix.SUMMARY, Suffix.EVIDENCE)


def _drop_earlier_results(adata: AnnData, skipped: dict[str, str]) -> None:
    """Remove an earlier run's results of the parts this run skipped: the report would read them as this run's."""
    for part in skipped:
        if part == "compare":
            keys = list(COMPARE_KEYS.values())
        elif part.startswith("compare_"):
            keys = [COMPARE_KEYS[part.removeprefix("compare_")]]
        else:
            keys = [_STEP_KEYS[part]] if part in _STEP_KEYS else []
        for key in keys:
            for suffix in _RESULT_SUFFIXES:
                adata.uns.pop(key + suffix, None)


def run_step(adata: AnnData, config: PipelineConfig, step: str) -> dict[str, str]:
    """Run one pipeline step (one of :data:`STEPS`) on ``adata``; a step whose input is absent does nothing.

    Returns what was skipped for too few cells or genes (:class:`hcctme.tl.TooFewCellsError`,
    :class:`hcctme.tl.TooFewGenesError`; the scoring's is raised: every later step reads the scores), by step or
    comparison
    (``{"compare_genes": "too few cells: ..."}``), each with a warning; that part wrote nothing.
    The Snakemake rules call this, one step per rule, so that they and :func:`run` run the same code.
    """
    _validate.choice(step, STEPS, name="step")
    try:
        skipped = _STEP_FUNCTIONS[step](adata, config) or {}
    except _DATA_LIMITS as error:
        if step == "score":  # every later step reads the scores: nothing to go on with
            raise
        skipped = {step: str(error)}
    _warn_skipped(skipped)
    return skipped


def _warn_skipped(skipped: dict[str, str]) -> None:
    """One warning per skipped step or comparison, pointing at the code that called the pipeline."""
    for part, reason in skipped.items():
        warnings.warn(f"pipeline: {part} skipped: {reason}", UserWarning, stacklevel=3)


@contextlib.contextmanager
def _restored_on_error(adata: AnnData) -> Iterator[None]:
    """Undo, when the block raises, whatever the steps wrote into obs, var, raw.var, obsm and uns."""
    obs, var, obsm, uns = adata.obs.copy(), adata.var.copy(), dict(adata.obsm), dict(adata.uns)
    raw_var = adata.raw.var.copy() if adata.raw is not None else None  # harmonize_genes writes raw.var too
    try:
        yield
    except BaseException:
        adata.obs, adata.var = obs, var
        if raw_var is not None:
            for column in [c for c in adata.raw.var.columns if c not in raw_var.columns]:
                del adata.raw.var[column]
            for column in raw_var.columns:
                adata.raw.var[column] = raw_var[column]
        for key in [k for k in adata.obsm if k not in obsm]:
            del adata.obsm[key]
        for key, value in obsm.items():
            adata.obsm[key] = value
        adata.uns.clear()
        adata.uns.update(uns)
        raise


def harmonize(adata: AnnData, config: PipelineConfig) -> None:
    """Map ``adata``'s gene names as the config asks (``gene_symbols`` / ``species``); nothing when it asks nothing."""
    if config.gene_symbols is None and config.species is None:
        return
    from hcctme import pp

    pp.harmonize_genes(adata, gene_symbols=config.gene_symbols, species=config.species or "auto")


def config_record(config: PipelineConfig) -> dict:
    """The config as uns stores it, as the tools store their calls (:func:`hcctme._validate.call_record`)."""
    return _validate.call_record(**asdict(config))["params"]


def _score(adata: AnnData, config: PipelineConfig) -> None:
    tl.score(adata, extra_signatures(config), method=config.method, layer=config.layer, use_raw=config.use_raw,
             min_coverage=config.min_coverage, n_jobs=config.n_jobs)


def _states(adata: AnnData, config: PipelineConfig) -> None:
    tl.call_states(adata, cell_type_key=config.cell_type_key, sample_key=config.sample_key,
                   context_map=context_map(config), random_state=config.random_state)


def counts_view(adata: AnnData, config: PipelineConfig) -> tuple[AnnData, str | None]:
    """The AnnData and layer holding the counts: ``adata`` itself, or a light one over ``adata.raw``."""
    if config.counts_layer == _RAW and _RAW not in adata.layers and adata.raw is not None:
        return _light(adata, adata.raw.X, adata.raw.var), None
    return adata, config.counts_layer or Keys.COUNTS


def _light(adata: AnnData, X, var: pd.DataFrame) -> AnnData:
    """An AnnData over another matrix sharing ``adata``'s annotations (the matrix is not copied)."""
    return AnnData(X=X, obs=adata.obs.copy(), var=var.copy(), obsm=dict(adata.obsm), uns=dict(adata.uns))


def _adopt(light: AnnData, adata: AnnData) -> None:
    """Copy the results a tool wrote into ``light`` back to ``adata``."""
    for key, value in light.uns.items():
        if key not in adata.uns or adata.uns[key] is not value:
            adata.uns[key] = value


def _rows(adata: AnnData, layer: str | None, keep: pd.Series) -> tuple[AnnData, None]:
    """The cells ``keep`` of the counts matrix (``layer``) and their obs, in memory; no other matrix is read."""
    X, _ = _validate.matrix(adata, layer=layer, use_raw=False)
    rows = np.flatnonzero(keep.to_numpy())
    return AnnData(X=_validate.rows_in_memory(X, rows), obs=adata.obs.iloc[rows].copy(), var=adata.var.copy()), None


def compare_one(adata: AnnData, config: PipelineConfig, features: str) -> pd.DataFrame:
    """One of the pipeline's comparisons (composition of states, scores or genes per cell type).

    The results are stored under ``COMPARE_KEYS[features]`` (:data:`hcctme._constants.COMPARE_KEYS`)
    and the table is returned (as :func:`hcctme.get.compare` reads it).
    """
    key = COMPARE_KEYS[features]
    common = dict(condition_key=config.condition_key, sample_key=config.sample_key,
                  reference=config.reference, key_added=key)
    if features == "composition":
        tl.compare(adata, features="composition", groupby=Keys.STATE, parent_key=config.cell_type_key, **common)
    elif features == "scores":
        tl.compare(adata, features="scores", groupby=config.cell_type_key, **common)
    else:
        view, layer = counts_view(adata, config)
        if config.genes_groups:  # genes of some cell types: compare a subset, then store its results in adata
            view, layer = _rows(view, layer, view.obs[config.cell_type_key].astype(str).isin(config.genes_groups))
        tl.compare(view, features="genes", groupby=config.cell_type_key, layer=layer, method=config.de_method,
                   **common)
        if view is not adata:
            adata.uns.update({name: value for name, value in view.uns.items() if name.startswith(key)})
    return get.compare(adata, key)


def _compare(adata: AnnData, config: PipelineConfig) -> dict[str, str]:
    """Each comparison; those that find too few cells are skipped (returned with the reason), the others run."""
    features = ("composition", "scores", "genes")
    if not config.genes or counts_problem(adata, config.counts_layer):
        features = ("composition", "scores")
    skipped = {}
    if Keys.STATE not in adata.obs:
        features = tuple(f for f in features if f != "composition")
        skipped["compare_composition"] = NO_STATES
    for feature in features:
        try:
            compare_one(adata, config, feature)
        except _DATA_LIMITS as error:
            skipped[f"compare_{feature}"] = str(error)
    return skipped


def _ta_response(adata: AnnData, config: PipelineConfig) -> None:
    """T+A signatures per patient: pseudobulk log-CPM of the raw counts, or per-cell score means without them."""
    common = dict(sample_key=config.sample_key, **config.condition, use_raw=config.use_raw)
    if counts_problem(adata, config.counts_layer) is not None:
        tl.ta_response(adata, aggregate="mean", **common)
        return
    view, layer = counts_view(adata, config)
    tl.ta_response(view, layer=layer, **common)
    if view is not adata:
        _adopt(view, adata)


def _crosstalk(adata: AnnData, config: PipelineConfig) -> None:
    if not config.crosstalk:
        return
    tl.crosstalk(adata, groupby=config.crosstalk_groupby or config.cell_type_key,
                 sample_key=config.sample_key, **config.condition, layer=config.layer, use_raw=config.use_raw,
                 random_state=config.random_state)


def _tib(adata: AnnData, config: PipelineConfig) -> dict[str, str] | None:
    if config.spatial_key not in adata.obsm:
        return None
    if Keys.STATE not in adata.obs:
        return {"tib": NO_STATES}
    tl.tib(adata, sample_key=config.sample_key, spatial_key=config.spatial_key, random_state=config.random_state)


def _profile(adata: AnnData, config: PipelineConfig) -> None:
    tl.resistance_profile(adata, sample_key=config.sample_key, layer=config.layer, use_raw=config.use_raw,
                          **config.condition)


_STEP_FUNCTIONS: dict[str, Callable[[AnnData, PipelineConfig], dict[str, str] | None]] = {
    "score": _score,
    "states": _states,
    "compare": _compare,
    "ta_response": _ta_response,
    "crosstalk": _crosstalk,
    "tib": _tib,
    "profile": _profile,
}


# file stem -> how the table is read back (the stems are the TSV names write_outputs uses)
_RESULT_TABLES: dict[str, Callable[[AnnData], pd.DataFrame]] = {
    **{f"compare_{features}": partial(get.compare, key=key) for features, key in COMPARE_KEYS.items()},
    "ta_response_compare": get.ta_response,
    "ta_response_per_sample": partial(get.ta_response, per_sample=True),
    "crosstalk": get.crosstalk,
    "crosstalk_diff": partial(get.crosstalk, differential=True),
    "tib": get.tib,
    "resistance_profile": get.profile,
    "resistance_profile_summary": partial(get.profile, summary=True),
    "resistance_profile_evidence": partial(get.profile, evidence=True),
}


def result_tables(adata: AnnData) -> dict[str, pd.DataFrame]:
    """Every results table the pipeline stored, by file stem (steps that did not run are left out)."""
    tables = {}
    for stem, read in _RESULT_TABLES.items():
        try:
            tables[stem] = read(adata)
        except KeyError:
            continue
    return tables


def write_outputs(adata: AnnData, out_dir: str | Path, *, input_path: str | Path | None = None,
                  full: bool = False) -> dict[str, Path]:
    """Write ``hcctme.h5ad``, one TSV per table, ``report.html`` and ``manifest.json`` into ``out_dir``.

    ``hcctme.h5ad`` holds the results (obs, var, obsm, uns: :func:`hcctme._files.results_only`), not
    the matrices, unless ``full``: then X, layers and raw are written too (those of a backed input are
    copied from its file block by block, never loaded).

    The files are written into a fresh temporary folder next to ``out_dir`` that then replaces
    ``out_dir`` as a whole (:func:`hcctme._files.atomic_dir`): the folder holds exactly one run's
    results, never a mix with an earlier run's and never a half-written file. ``manifest.json``,
    written last, lists every file with its size and sha256, the run's parameters, skipped steps,
    the input file and the package versions. ``out_dir`` must be new, empty or an earlier hcctme
    run folder, and must not be or contain ``input_path``.

    Parameters
    ----------
    adata
        AnnData holding the results of :func:`run` (or of the tools, under the pipeline's keys); a table that is
        absent is left out.
    out_dir
        Folder to write into (created, with its parents, if needed). An existing folder must be empty or hold
        an earlier hcctme run (it is then replaced as a whole); otherwise, or when it cannot be written, a
        ``ValueError`` before any work.
    input_path
        The file ``adata`` was read from: recorded in ``manifest.json`` (path, size, sha256; it must exist),
        and refused (``ValueError``) when it is, or lies inside, ``out_dir``. ``None``: no input recorded.
    full
        Write the matrices (X, layers, raw) into ``hcctme.h5ad`` too.

    Returns
    -------
    dict of str to Path
        The files written, under ``out_dir``: one TSV per table present, by stem (``compare_composition``,
        ``compare_scores``, ``compare_genes``, ``ta_response_compare``, ``ta_response_per_sample``, ``crosstalk``,
        ``crosstalk_diff``, ``tib``, ``resistance_profile``, ``resistance_profile_summary``,
        ``resistance_profile_evidence``), then ``report``, ``h5ad`` and ``manifest``.
    """
    from hcctme.report import _build as report_build

    _validate.boolean(full, name="full")
    out_dir = Path(out_dir)
    _files.refuse_overwrite(out_dir, input_path, folder=True)
    _files.check_writable(out_dir, folder=True)
    names: dict[str, str] = {}
    with _files.atomic_dir(out_dir, manifest=_manifest(adata, input_path, full=full)) as tmp:
        for stem, table in result_tables(adata).items():
            keep_index = stem == "tib"  # its samples are the index; the other tables hold them as a column
            names[stem] = _files.write_table(table, tmp / f"{stem}.tsv", index=keep_index).name
        names["report"] = Path(report_build.write(adata, tmp / "report.html", keep_tables=True)).name
        names["h5ad"] = _files.write_results_h5ad(adata, tmp / Files.RESULTS_H5AD, full=full).name
    written = {stem: out_dir / name for stem, name in names.items()}
    written["manifest"] = out_dir / Files.MANIFEST
    logger.info("wrote %d files to %s", len(written), out_dir)
    return written


_VERSIONED = ("anndata", "scanpy", "numpy", "scipy", "pandas", "h5py", "liana", "decoupler", "pydeseq2",
              "statsmodels")


def _manifest(adata: AnnData, input_path: str | Path | None, *, full: bool) -> dict:
    from importlib.metadata import PackageNotFoundError, version

    from hcctme.report import _results

    run = adata.uns.get(Keys.RUN, {})
    versions = {"hcctme": __version__, "signature_library": _validate.library_version(),
                "python": platform.python_version()}
    for name in _VERSIONED:
        with contextlib.suppress(PackageNotFoundError):
            versions[name] = version(name)
    record: dict = {
        "parameters": _results.run_config(adata),
        "skipped": run.get("skipped", {}) if isinstance(run, dict) else {},
        "versions": versions,
        "h5ad_contents": "full" if full else "results",  # results: obs, var, obsm, uns (no X, layers or raw)
    }
    if input_path is not None:
        path = Path(input_path)
        record["input"] = {"path": str(path.resolve()), "bytes": path.stat().st_size, "sha256": _files.sha256(path)}
    return record
