"""What each Snakemake rule does, on files, through the public API (one function per rule)."""

from __future__ import annotations

import re
from typing import Any

import anndata as ad
import h5py
import pandas as pd

from hcctme import _files, _validate
from hcctme._constants import Keys, Suffix
from hcctme.pipeline import _STEP_FUNCTIONS, COMPARE_KEYS, PipelineConfig, compare_one

DEFAULTS = {
    "outdir": "results",
    "sample_key": "patient",
    "condition_key": "response",
    "reference": "responder",
    "cell_type_key": "cell_type",
    "layer": None,
    "use_raw": None,
    "counts_layer": "counts",
    "signatures": None,
    "method": "ucell",
    "genes": True,
    "crosstalk": True,
    "spatial_key": "spatial",
    "seed": 0,
}


def schema_path() -> str:
    from hcctme.workflow import config_schema

    return config_schema()


def _config(config: dict[str, Any]) -> PipelineConfig:
    merged = {**DEFAULTS, **config}
    fields = {k: v for k, v in merged.items() if k not in ("input", "outdir")}
    return PipelineConfig(**fields)


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


def compare_features(config: dict[str, Any]) -> list[str]:
    genes = config.get("genes", DEFAULTS["genes"])
    return ["composition", "scores", "genes"] if genes else ["composition", "scores"]


def _cfg(smk) -> dict[str, Any]:
    return {**DEFAULTS, **dict(smk.params.config)}


def split_sample(smk) -> None:
    config = _cfg(smk)
    sample = _sample_table(config)[smk.wildcards.sample]
    adata = _files.read_h5ad(smk.input[0], backed=True)
    mask = (adata.obs[config["sample_key"]].astype(str) == sample).to_numpy()
    _files.write_h5ad(adata[mask].to_memory(), smk.output[0])


def score_sample(smk) -> None:
    adata = _files.read_h5ad(smk.input[0])
    _STEP_FUNCTIONS["score"](adata, _config(_cfg(smk)))
    _files.write_h5ad(adata, smk.output[0])


def merge_scores(smk) -> None:
    parts = [_files.read_h5ad(path) for path in smk.input]
    merged = ad.concat(parts, merge="same", uns_merge="first")
    merged.obsm[Keys.SCORES] = pd.concat([p.obsm[Keys.SCORES] for p in parts]).loc[merged.obs_names]
    _files.write_h5ad(merged, smk.output[0])


def _run_step(smk, step: str) -> ad.AnnData:
    adata = _files.read_h5ad(smk.input[0])
    _STEP_FUNCTIONS[step](adata, _config(_cfg(smk)))
    return adata


def states(smk) -> None:
    _files.write_h5ad(_run_step(smk, "states"), smk.output[0])


def pseudobulk(smk) -> None:
    from hcctme import tl

    config = _cfg(smk)
    adata = _files.read_h5ad(smk.input[0])
    bulk = tl.pseudobulk(adata, sample_key=config["sample_key"], groupby=config["cell_type_key"],
                         layer=config["counts_layer"])
    _files.write_h5ad(bulk, smk.output[0])


def compare(smk) -> None:
    adata = _files.read_h5ad(smk.input[0])
    table = compare_one(adata, _config(_cfg(smk)), smk.wildcards.features)
    _files.write_table(table, smk.output[0])


def crosstalk(smk) -> None:
    adata = _run_step(smk, "crosstalk") if _cfg(smk)["crosstalk"] else _files.read_h5ad(smk.input[0])
    for name, key in (("pooled", Keys.CROSSTALK), ("diff", Keys.CROSSTALK_DIFF)):
        table = adata.uns.get(key)
        _files.write_table(table if isinstance(table, pd.DataFrame) else pd.DataFrame(), smk.output[name])


def tib(smk) -> None:
    adata = _run_step(smk, "tib")
    table = adata.uns.get(Keys.TIB, pd.DataFrame())
    _files.write_table(table, smk.output[0], index=True)


def _read_table(path: str, **kwargs) -> pd.DataFrame:
    try:
        return pd.read_csv(path, sep="\t", **kwargs)
    except pd.errors.EmptyDataError:
        return pd.DataFrame()


def ta_response(smk) -> None:
    adata = _run_step(smk, "ta_response")
    _files.write_table(adata.uns[Keys.TA_RESPONSE + Suffix.PER_SAMPLE], smk.output.per_sample)
    compare = adata.uns.get(Keys.TA_RESPONSE)
    _files.write_table(compare if isinstance(compare, pd.DataFrame) else pd.DataFrame(), smk.output.compare)


def profile(smk) -> None:
    config = _cfg(smk)
    adata = _files.read_h5ad(smk.input.states)
    for key, path in ((Keys.CROSSTALK, smk.input.crosstalk), (Keys.CROSSTALK_DIFF, smk.input.crosstalk_diff)):
        table = _read_table(path)
        if not table.empty:
            adata.uns[key] = table
    tib_table = _read_table(smk.input.tib, index_col=0)
    if not tib_table.empty:
        adata.uns[Keys.TIB] = tib_table
    adata.uns[Keys.TA_RESPONSE + Suffix.PER_SAMPLE] = _read_table(smk.input.ta_per_sample)
    adata.uns[Keys.TA_RESPONSE] = _read_table(smk.input.ta_compare)
    for path in smk.input.compare:
        features = re.search(r"compare_(\w+)\.tsv$", path).group(1)
        adata.uns[COMPARE_KEYS[features]] = _read_table(path)
    _STEP_FUNCTIONS["profile"](adata, _config(config))
    _files.write_table(adata.uns[Keys.PROFILE], smk.output.table)
    _files.write_h5ad(adata, smk.output.h5ad)


def report(smk) -> None:
    from hcctme import report as report_module

    adata = _files.read_h5ad(smk.input[0])
    report_module.build(adata, smk.output[0])
