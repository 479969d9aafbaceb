"""The whole hcctme analysis as one call, shared by ``hcctme run``/``hcctme demo`` and the Snakemake rules.

Steps: score -> call_states -> compare (composition, scores, genes) -> T+A response -> crosstalk ->
spatial TIB (when coordinates exist) -> resistance profile -> report. Each step writes its results
into the AnnData under the keys of :class:`hcctme._constants.Keys`; :func:`write_outputs` writes
the AnnData, one TSV per table and ``report.html``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from functools import partial
from pathlib import Path

import pandas as pd
from anndata import AnnData

from hcctme import _files, _validate, get, tl
from hcctme._constants import COMPARE_KEYS, Defaults, Keys
from hcctme._logging import STEP_LOGGER, logger

_step_logger = logging.getLogger(STEP_LOGGER)

STEPS = ("score", "states", "compare", "ta_response", "crosstalk", "tib", "profile")


@dataclass
class PipelineConfig:
    """Parameters of a full run (the CLI flags and the Snakemake config map onto these fields)."""

    sample_key: str = Defaults.SAMPLE_KEY
    condition_key: str = Defaults.CONDITION_KEY
    reference: str = Defaults.REFERENCE
    cell_type_key: str = Defaults.CELL_TYPE_KEY
    layer: str | None = None
    use_raw: bool | None = None
    counts_layer: str = Keys.COUNTS
    signatures: list[str] | str | None = None
    method: str = "ucell"
    context_map: dict[str, str] | None = None
    genes: bool = True
    genes_groups: list[str] | None = None
    crosstalk: bool = True
    crosstalk_groupby: str | None = None
    spatial_key: str = Keys.SPATIAL
    n_jobs: int = 1
    random_state: int = Defaults.SEED
    steps: tuple[str, ...] = field(default=STEPS)

    def validate(self, adata: AnnData) -> None:
        """Check the keys this run needs before any step writes anything."""
        _validate.anndata(adata)
        _validate.categorical_levels(adata, self.sample_key, purpose="sample_key", min_levels=2)
        conditions = _validate.categorical_levels(
            adata, self.condition_key, purpose="condition_key", min_levels=2
        )
        _validate.level(conditions, self.reference, key=self.condition_key)
        _validate.constant_within(adata, self.condition_key, self.sample_key)
        _validate.obs_column(adata, self.cell_type_key, purpose="cell_type_key")
        unknown = sorted(set(self.steps) - set(STEPS))
        if unknown:
            raise ValueError(f"unknown pipeline step(s) {unknown}; steps are {list(STEPS)}")


def run(adata: AnnData, config: PipelineConfig | None = None, **params) -> AnnData:
    """Run every step on ``adata`` (modified in place) and return it.

    Parameters
    ----------
    adata
        Cells x genes with log-normalised ``.X`` (or ``layer``), raw counts in
        ``layers[config.counts_layer]`` for gene-level tests, and sample / condition / cell-type
        annotations in ``obs``.
    config
        A :class:`PipelineConfig`; keyword arguments override its fields.
    """
    config = PipelineConfig(**{**(asdict(config) if config else {}), **params})
    config.validate(adata)
    timings: dict[str, float] = {}
    steps = [name for name in STEPS if name in config.steps]
    for number, name in enumerate(steps, start=1):
        start = time.perf_counter()
        done = run_step(adata, config, name)
        timings[name] = round(time.perf_counter() - start, 2)
        _step_logger.info("[%d/%d] %s %s (%.1f s)", number, len(steps), name, "done" if done else "skipped",
                          timings[name])
    adata.uns[Keys.RUN] = {"config": _config_record(config), "timings_s": timings}
    return adata


def run_step(adata: AnnData, config: PipelineConfig, step: str) -> bool:
    """Run one pipeline step (one of :data:`STEPS`) on ``adata``; False when the step had nothing to do.

    The Snakemake rules call this, one step per rule, so that they and :func:`run` run the same code.
    """
    _validate.choice(step, STEPS, name="step")
    return _STEP_FUNCTIONS[step](adata, config)


def _config_record(config: PipelineConfig) -> dict:
    record = {}
    for key, value in asdict(config).items():
        if value is None:
            continue
        record[key] = list(value) if isinstance(value, tuple) else value
    return record


def _score(adata: AnnData, config: PipelineConfig) -> bool:
    tl.score(adata, config.signatures, method=config.method, layer=config.layer, use_raw=config.use_raw,
             n_jobs=config.n_jobs)
    return True


def _states(adata: AnnData, config: PipelineConfig) -> bool:
    tl.call_states(adata, cell_type_key=config.cell_type_key, sample_key=config.sample_key,
                   context_map=config.context_map)
    return True


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
    elif not config.genes_groups:
        tl.compare(adata, features="genes", groupby=config.cell_type_key, layer=config.counts_layer, **common)
    else:  # genes of some cell types: compare a subset, then store its results in adata
        subset = adata[adata.obs[config.cell_type_key].astype(str).isin(config.genes_groups)].copy()
        tl.compare(subset, features="genes", groupby=config.cell_type_key, layer=config.counts_layer, **common)
        adata.uns.update({name: value for name, value in subset.uns.items() if name.startswith(key)})
    return get.compare(adata, key)


def _compare(adata: AnnData, config: PipelineConfig) -> bool:
    genes = config.genes and config.counts_layer in adata.layers
    for features in ("composition", "scores", "genes") if genes else ("composition", "scores"):
        compare_one(adata, config, features)
    return True


def _ta_response(adata: AnnData, config: PipelineConfig) -> bool:
    tl.ta_response(adata, sample_key=config.sample_key, condition_key=config.condition_key,
                   reference=config.reference)
    return True


def _crosstalk(adata: AnnData, config: PipelineConfig) -> bool:
    if not config.crosstalk:
        return False
    tl.crosstalk(adata, groupby=config.crosstalk_groupby or config.cell_type_key,
                 sample_key=config.sample_key, condition_key=config.condition_key,
                 reference=config.reference, seed=config.random_state)
    return True


def _tib(adata: AnnData, config: PipelineConfig) -> bool:
    if config.spatial_key not in adata.obsm:
        return False
    tl.tib(adata, sample_key=config.sample_key, spatial_key=config.spatial_key, random_state=config.random_state)
    return True


def _profile(adata: AnnData, config: PipelineConfig) -> bool:
    tl.resistance_profile(adata, sample_key=config.sample_key, condition_key=config.condition_key,
                          reference=config.reference)
    return True


_STEP_FUNCTIONS: dict[str, Callable[[AnnData, PipelineConfig], bool]] = {
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


def write_outputs(adata: AnnData, out_dir: str | Path, *, input_path: str | Path | None = None) -> dict[str, Path]:
    """Write ``hcctme.h5ad``, one TSV per table and ``report.html`` into ``out_dir`` (atomically)."""
    from hcctme import report

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    written: dict[str, Path] = {}
    h5ad_path = out_dir / "hcctme.h5ad"
    _files.refuse_overwrite(h5ad_path, input_path)
    for stem, table in result_tables(adata).items():
        keep_index = stem in ("tib", "ta_response_per_sample")
        written[stem] = _files.write_table(table, out_dir / f"{stem}.tsv", index=keep_index)
    written["report"] = report.build(adata, out_dir / "report.html")
    written["h5ad"] = _files.write_h5ad(adata, h5ad_path)
    logger.info("wrote %d files to %s", len(written), out_dir)
    return written
