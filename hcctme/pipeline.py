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
from pathlib import Path

import pandas as pd
from anndata import AnnData

from hcctme import _files, _validate, tl
from hcctme._constants import Defaults, Keys
from hcctme._logging import STEP_LOGGER, logger

_step_logger = logging.getLogger(STEP_LOGGER)

STEPS = ("score", "states", "compare", "ta_response", "crosstalk", "tib", "profile")

# uns keys of the three comparisons the pipeline runs
COMPARE_KEYS = {
    "composition": f"{Keys.COMPARE}_composition",
    "scores": f"{Keys.COMPARE}_scores",
    "genes": f"{Keys.COMPARE}_genes",
}


@dataclass
class PipelineConfig:
    """Parameters of a full run (the CLI flags and the Snakemake config map onto these fields)."""

    sample_key: str = Defaults.SAMPLE_KEY
    condition_key: str = Defaults.CONDITION_KEY
    reference: str = "responder"
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
    seed: int = Defaults.SEED
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
    steps = [name for name in _STEP_FUNCTIONS if name in config.steps]
    for number, name in enumerate(steps, start=1):
        start = time.perf_counter()
        done = _STEP_FUNCTIONS[name](adata, config)
        timings[name] = round(time.perf_counter() - start, 2)
        _step_logger.info("[%d/%d] %s %s (%.1f s)", number, len(steps), name,
                          "skipped" if done is False else "done", timings[name])
    adata.uns["hcctme_run"] = {"config": _config_record(config), "timings_s": timings}
    return adata


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

    The table is stored in ``adata.uns[COMPARE_KEYS[features]]`` and returned.
    """
    common = dict(condition_key=config.condition_key, sample_key=config.sample_key,
                  reference=config.reference, key_added=COMPARE_KEYS[features])
    if features == "composition":
        return tl.compare(adata, features="composition", groupby=Keys.STATE, parent_key=config.cell_type_key,
                          **common)
    if features == "scores":
        return tl.compare(adata, features="scores", groupby=config.cell_type_key, **common)
    if not config.genes_groups:
        return tl.compare(adata, features="genes", groupby=config.cell_type_key, layer=config.counts_layer,
                          **common)
    subset = adata[adata.obs[config.cell_type_key].astype(str).isin(config.genes_groups)]
    table = tl.compare(subset, features="genes", groupby=config.cell_type_key, layer=config.counts_layer,
                       store=False, **common)
    adata.uns[COMPARE_KEYS["genes"]] = table
    return table


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
                 reference=config.reference, seed=config.seed)
    return True


def _tib(adata: AnnData, config: PipelineConfig) -> bool:
    if config.spatial_key not in adata.obsm:
        return False
    tl.tib(adata, sample_key=config.sample_key, spatial_key=config.spatial_key, seed=config.seed)
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


def result_tables(adata: AnnData) -> dict[str, pd.DataFrame]:
    """Every results table the pipeline stored, by file stem."""
    keys = {
        "compare_composition": COMPARE_KEYS["composition"],
        "compare_scores": COMPARE_KEYS["scores"],
        "compare_genes": COMPARE_KEYS["genes"],
        "ta_response": Keys.TA_RESPONSE,
        "crosstalk": Keys.CROSSTALK,
        "crosstalk_diff": Keys.CROSSTALK_DIFF,
        "tib": Keys.TIB,
        "resistance_profile": Keys.PROFILE,
    }
    tables = {}
    for stem, key in keys.items():
        value = adata.uns.get(key)
        if isinstance(value, pd.DataFrame):
            tables[stem] = value
        elif isinstance(value, dict):  # {"table": ...} or ta_response's {"per_sample": ..., "compare": ...}
            tables.update({stem if part == "table" else f"{stem}_{part}": frame
                           for part, frame in value.items() if isinstance(frame, pd.DataFrame)})
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
