"""The report's only reader of stored results: one function per result kind.

Each function returns the table (or parameter dict) of one tool, or None (or ``{}``) when that tool
was not run. Tables may be stored as a DataFrame in ``uns[key]`` or as ``{"table": ...}``; parameters
in ``uns[key + "_params"]`` or in the tool's ``uns[key]`` dict.
"""

from __future__ import annotations

from typing import Any

import pandas as pd
from anndata import AnnData

from hcctme._constants import Keys

COMPARE_FEATURES = ("composition", "scores", "genes")


def _frame(adata: AnnData, key: str, part: str = "table") -> pd.DataFrame | None:
    value = adata.uns.get(key)
    if isinstance(value, dict):
        value = value.get(part)
    return value if isinstance(value, pd.DataFrame) else None


def _params(adata: AnnData, key: str) -> dict[str, Any]:
    value = adata.uns.get(f"{key}_params")
    if isinstance(value, dict):
        return dict(value)
    stored = adata.uns.get(key)
    if not isinstance(stored, dict):
        return {}
    flat = {k: v for k, v in stored.items() if not isinstance(v, pd.DataFrame | dict)}
    return flat | dict(stored.get("params") or {})


def compare_key(features: str) -> str:
    """The uns key of one of the pipeline's comparisons."""
    return f"{Keys.COMPARE}_{features}"


def run_config(adata: AnnData) -> dict[str, Any]:
    """The pipeline configuration of the run (``{}`` outside the pipeline)."""
    run = adata.uns.get("hcctme_run", {})
    return dict(run.get("config", {})) if isinstance(run, dict) else {}


def timings(adata: AnnData) -> dict[str, float]:
    """Seconds per pipeline step."""
    run = adata.uns.get("hcctme_run", {})
    return dict(run.get("timings_s", {})) if isinstance(run, dict) else {}


def scores(adata: AnnData) -> pd.DataFrame:
    """Cells x signatures scores."""
    return adata.obsm[Keys.SCORES]


def scores_params(adata: AnnData) -> dict[str, Any]:
    """Parameters and library version of the scoring."""
    return _params(adata, Keys.SCORES)


def states(adata: AnnData) -> pd.Series | None:
    """The state call of each cell."""
    return adata.obs[Keys.STATE].astype(str) if Keys.STATE in adata.obs else None


def state_contexts(adata: AnnData) -> pd.Series | None:
    """The cell_context each cell was read in when its state was called."""
    key = Keys.STATE + Keys.PARENT_SUFFIX
    return adata.obs[key].astype(str) if key in adata.obs else None


def states_params(adata: AnnData) -> dict[str, Any]:
    """Parameters of the state calling."""
    return _params(adata, Keys.STATE)


def compare(adata: AnnData, features: str) -> pd.DataFrame | None:
    """The pipeline's comparison of ``features`` (composition, scores or genes)."""
    return _frame(adata, compare_key(features))


def ta_response(adata: AnnData, *, per_sample: bool = False) -> pd.DataFrame | None:
    """The T+A response comparison, or its per-sample scores."""
    suffixed = _frame(adata, f"{Keys.TA_RESPONSE}_per_sample") if per_sample else None
    if suffixed is not None:
        return suffixed
    value = adata.uns.get(Keys.TA_RESPONSE)
    if isinstance(value, pd.DataFrame):
        return None if per_sample else value
    return _frame(adata, Keys.TA_RESPONSE, "per_sample" if per_sample else "compare")


def crosstalk(adata: AnnData, *, differential: bool = False) -> pd.DataFrame | None:
    """The LIANA table, or the patient-level differential table."""
    return _frame(adata, Keys.CROSSTALK_DIFF if differential else Keys.CROSSTALK)


def crosstalk_params(adata: AnnData) -> dict[str, Any]:
    """Parameters of the crosstalk inference."""
    return _params(adata, Keys.CROSSTALK)


def tib(adata: AnnData) -> pd.DataFrame | None:
    """The per-sample tumour immune barrier table (index = sample)."""
    return _frame(adata, Keys.TIB)


def tib_params(adata: AnnData) -> dict[str, Any]:
    """Parameters of the barrier measurement."""
    return _params(adata, Keys.TIB)


def profile(adata: AnnData, *, summary: bool = False) -> pd.DataFrame | None:
    """The per-sample x axis resistance profile, or its cohort summary."""
    return _frame(adata, f"{Keys.PROFILE}_summary" if summary else Keys.PROFILE)


def profile_evidence(adata: AnnData) -> pd.DataFrame | None:
    """The long evidence table behind the profile."""
    return _frame(adata, f"{Keys.PROFILE}_evidence")


def profile_params(adata: AnnData) -> dict[str, Any]:
    """Parameters of the resistance profile."""
    return _params(adata, Keys.PROFILE)


def therapies() -> pd.DataFrame:
    """The knowledge base's therapies per axis (with ``tier``/``trial`` when the kb has them)."""
    from hcctme import kb

    return kb.therapies()


def kb_version() -> str:
    """Version of the shipped axis table."""
    from hcctme import kb

    return str(kb.version)
