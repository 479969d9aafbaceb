"""The report's only reader of stored results: one function per result kind, all through :mod:`hcctme.get`.

Each function returns the table (or parameter dict) of one tool, or None (or ``{}``) when that tool
was not run.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pandas as pd
from anndata import AnnData

from hcctme import get, kb
from hcctme._constants import COMPARE_KEYS, Keys, Suffix
from hcctme._labels import maps_as_dicts
from hcctme.tl._state_selftrain import split, unstable


def _optional(read: Callable[..., pd.DataFrame], adata: AnnData, *args: Any, **kwargs: Any) -> pd.DataFrame | None:
    try:
        return read(adata, *args, **kwargs)
    except KeyError:
        return None


def _stored(adata: AnnData, key: str) -> dict[str, Any]:
    """A tool's ``uns[key + "_params"]`` as stored (``{}`` when the tool was not run)."""
    try:
        return get.params(adata, key)
    except KeyError:
        return {}


def _params(adata: AnnData, key: str) -> dict[str, Any]:
    """A tool's provenance with its call's parameters flattened in (``{}`` when the tool was not run)."""
    stored = _stored(adata, key)
    flat = {k: v for k, v in stored.items() if not isinstance(v, pd.DataFrame | dict)}
    return flat | dict(stored.get("params") or {})


def samples_gone(adata: AnnData) -> dict[str, list[str]]:
    """Per stored result, the samples it was computed on that ``adata`` no longer holds (results of a subset's parent).

    Read from the records that list their samples: the comparisons' units and crosstalk's conditions.
    """
    gone = {}
    for key, record in adata.uns.items():
        if not (isinstance(key, str) and key.endswith(Suffix.PARAMS) and isinstance(record, dict)):
            continue
        params = record.get("params") if isinstance(record.get("params"), dict) else {}
        column = params.get("patient_key") or params.get("sample_key")
        stored = _recorded_samples(record, pooled=bool(params.get("patient_key")))
        if not isinstance(column, str) or column not in adata.obs or stored is None:
            continue
        missing = sorted(set(stored.astype(str)) - set(adata.obs[column].astype(str)))
        if missing:
            gone[key[: -len(Suffix.PARAMS)]] = missing
    return gone


def _recorded_samples(record: dict[str, Any], *, pooled: bool) -> pd.Series | None:
    """The samples (patients where ``pooled``, a patient_key's) a record lists, or None.

    A paired design pooled by patient names its units "patient|condition": their patient is the ``block`` column.
    Crosstalk's conditions name its units, which are not patients where it pooled them.
    """
    units, conditions = record.get("units"), record.get("conditions")
    if isinstance(units, pd.DataFrame) and "unit" in units:
        return units["block"] if pooled and "block" in units else units["unit"]
    if isinstance(conditions, pd.DataFrame) and "sample" in conditions and not pooled:
        return conditions["sample"]
    return None


def compare_key(features: str) -> str:
    """The uns key of one of the pipeline's comparisons."""
    return COMPARE_KEYS[features]


def run_config(adata: AnnData) -> dict[str, Any]:
    """The pipeline configuration of the run (``{}`` outside the pipeline), its context map as a dict."""
    run = adata.uns.get(Keys.RUN, {})
    return maps_as_dicts(run.get("config", {})) if isinstance(run, dict) else {}


def recorded_keys(adata: AnnData) -> dict[str, str]:
    """``sample_key``, ``condition_key`` and ``cell_type_key`` as the tools recorded them outside a pipeline run.

    The first tool (profile, states, comparisons, crosstalk, T+A, barrier) that recorded a key gives it.
    """
    tools = (Keys.PROFILE, Keys.STATE, Keys.COMPARE, *COMPARE_KEYS.values(), Keys.CROSSTALK, Keys.TA_RESPONSE,
             Keys.TIB)
    found: dict[str, str] = {}
    for key in tools:
        params = _params(adata, key)
        for name in ("sample_key", "condition_key", "cell_type_key"):
            if name not in found and isinstance(params.get(name), str):
                found[name] = params[name]
    return found


def skipped(adata: AnnData) -> dict[str, str]:
    """Pipeline steps that were skipped, with the reason."""
    run = adata.uns.get(Keys.RUN, {})
    return dict(run.get("skipped", {})) if isinstance(run, dict) else {}


def timings(adata: AnnData) -> dict[str, float]:
    """Seconds per pipeline step."""
    run = adata.uns.get(Keys.RUN, {})
    return dict(run.get("timings_s", {})) if isinstance(run, dict) else {}


def scores(adata: AnnData) -> pd.DataFrame:
    """Cells x signatures scores."""
    return get.scores(adata)


def scores_params(adata: AnnData) -> dict[str, Any]:
    """Parameters and library version of the scoring."""
    return _params(adata, Keys.SCORES)


def scores_record(adata: AnnData) -> dict[str, Any]:
    """The scoring's whole record (coverage, genes found, dropped signatures; ``{}`` when it did not run)."""
    return dict(_stored(adata, Keys.SCORES))


def states(adata: AnnData) -> pd.Series | None:
    """The state call of each cell."""
    calls = _optional(get.states, adata)
    return None if calls is None else calls["state"].astype(str)


def state_contexts(adata: AnnData) -> pd.Series | None:
    """The cell_context each cell was read in when its state was called."""
    calls = _optional(get.states, adata)
    return None if calls is None or "context" not in calls else calls["context"].astype(str)


def states_params(adata: AnnData) -> dict[str, Any]:
    """Parameters of the state calling."""
    return _params(adata, Keys.STATE)


def _self_train_entry(adata: AnnData, entry: str) -> dict[str, Any]:
    """``uns[...]["self_train"][entry]`` of the state calling (``{}`` when absent or not run)."""
    return dict((_stored(adata, Keys.STATE).get("self_train") or {}).get(entry) or {})


def small_populations(adata: AnnData) -> dict[str, dict[str, int]]:
    """Per context, its cells and the cells its states' seeding needs, where fewer (``{}`` when none or not run)."""
    return _self_train_entry(adata, "small_populations")


def unstable_states(adata: AnnData, below: float) -> dict[str, dict[str, float]]:
    """Per context, the states of whose calls one seeding makes fewer than ``below`` on average (``{}``: none).

    Read from ``uns[...]["self_train"]["seedings"]`` (:func:`hcctme.tl._call_states.seeding_record`).
    """
    return _seeding_states(adata, "states", lambda shares: unstable(shares, below))


def split_mixture_states(adata: AnnData) -> dict[str, dict[str, float]]:
    """Per context no seeding trained the classifier for, the states whose mixture calls only some seedings keep.

    Each with the share of the seedings whose specificity test keeps them (``uns[...]["self_train"]["seedings"]
    [context]["mixture_kept"]``, :func:`hcctme.tl._state_selftrain.split`; ``{}``: none).
    """
    return _seeding_states(adata, "mixture_kept", split)


def _seeding_states(adata: AnnData, entry: str, select: Callable[[dict[str, float]], dict[str, float]]
                    ) -> dict[str, dict[str, float]]:
    """Per context of ``uns[...]["self_train"]["seedings"]``, ``select`` of its ``entry``, where not empty."""
    out = {context: select(record.get(entry) or {}) for context, record in _self_train_entry(adata, "seedings").items()}
    return {context: states for context, states in out.items() if states}


def compare(adata: AnnData, features: str) -> pd.DataFrame | None:
    """The comparison of ``features`` (composition, scores or genes): the pipeline's, else ``tl.compare``'s own.

    ``tl.compare`` called with its default ``key_added`` (the README's tour) writes ``uns["hcctme_compare"]``.
    """
    table = _optional(get.compare, adata, compare_key(features))
    if table is None and _stored(adata, Keys.COMPARE).get("params", {}).get("features") == features:
        table = _optional(get.compare, adata, Keys.COMPARE)
    return table


def ta_response(adata: AnnData, *, per_sample: bool = False) -> pd.DataFrame | None:
    """The T+A response comparison, or its per-sample scores."""
    return _optional(get.ta_response, adata, per_sample=per_sample)


def crosstalk(adata: AnnData, *, differential: bool = False) -> pd.DataFrame | None:
    """The LIANA table, or the patient-level differential table."""
    return _optional(get.crosstalk, adata, differential=differential)


def crosstalk_params(adata: AnnData) -> dict[str, Any]:
    """Parameters of the crosstalk inference."""
    return _params(adata, Keys.CROSSTALK)


def tib(adata: AnnData) -> pd.DataFrame | None:
    """The per-sample tumour immune barrier table (index = sample)."""
    return _optional(get.tib, adata)


def tib_params(adata: AnnData) -> dict[str, Any]:
    """Parameters of the barrier measurement."""
    return _params(adata, Keys.TIB)


def profile(adata: AnnData, *, summary: bool = False) -> pd.DataFrame | None:
    """The per-sample x axis resistance profile, or its cohort summary."""
    return _optional(get.profile, adata, summary=summary)


def profile_params(adata: AnnData) -> dict[str, Any]:
    """Parameters of the resistance profile."""
    return _params(adata, Keys.PROFILE)


def therapies() -> pd.DataFrame:
    """The knowledge base's therapies per axis (with ``tier``/``trial`` when the kb has them)."""
    return kb.therapies()


def kb_version(adata: AnnData) -> str:
    """Version of the kb the profile (else the crosstalk) read; the installed one when neither recorded it."""
    for key in (Keys.PROFILE, Keys.CROSSTALK):
        recorded = _stored(adata, key).get("kb_version")
        if recorded:
            return str(recorded)
    return str(kb.version)
