"""``hcctme.get``: read any stored result back by its key (as ``scanpy.get`` does).

Every tool follows one contract (see the package docs): per-cell results in ``obs``/``obsm``, its result
table in ``uns[key_added]`` (a tidy DataFrame), its parameters and provenance in
``uns[key_added + "_params"]`` (a dict with ``tool``, ``params``, ``library_version`` and tool-specific
entries) and a second table, where there is one, under ``uns[key_added + suffix]`` with a suffix of
:class:`hcctme._constants.Suffix`. The functions here are the only place that knows this layout: the
report, the pipeline and the workflow read results through them.

Each function raises a ``KeyError`` naming the tool to run when the result is missing, and a ``TypeError``
when the key holds something else. Results written by hcctme 0.1 (``{"table": ..., "params": ...}`` and
``{"per_sample": ..., "compare": ...}`` dicts in ``uns``) are read too, so that old ``.h5ad`` files stay
readable.

A table describes the cells it was computed on: ``adata[mask].copy()`` keeps ``uns`` as it was, so after
subsetting the tables still read the whole cohort's results (:func:`hcctme.report.build` warns where a
comparison's or crosstalk's samples are no longer all in ``obs``); re-run the tools on the subset.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd
from anndata import AnnData

from hcctme import _validate
from hcctme._constants import Keys, Suffix
from hcctme._labels import maps_as_dicts

__all__ = ["compare", "crosstalk", "enrich", "params", "profile", "scores", "states", "ta_response", "tib"]

# keys of the dicts hcctme 0.1 stored in uns around its tables
_LEGACY_TABLES = ("table", "compare", "per_sample")


def _stored(adata: AnnData, key: str, suffix: str) -> Any:
    """``uns[key + suffix]``, unwrapping the dicts hcctme 0.1 wrote (None when absent)."""
    stored = adata.uns.get(key + suffix)
    if isinstance(stored, Mapping) and any(k in stored for k in _LEGACY_TABLES):  # 0.1's wrappers
        return stored.get("table", stored.get("compare"))
    parent = adata.uns.get(key)
    if stored is None and suffix == Suffix.PER_SAMPLE and isinstance(parent, Mapping):
        return parent.get("per_sample")  # 0.1: ta_response's {"per_sample": ...}
    return stored


def _table(adata: AnnData, key: str, suffix: str, *, tool: str, writers: tuple[str, ...]) -> pd.DataFrame:
    """``uns[key + suffix]`` as a DataFrame; a KeyError naming ``tool`` when it is missing.

    A TypeError when the key's record (``uns[key + "_params"]["tool"]``) names a tool other than ``writers``: the
    table is another tool's result.
    """
    _validate.anndata(adata, allow_empty=True)
    name = _validate.key_name(key, name="key") + suffix
    table = _stored(adata, key, suffix)
    if table is None:
        raise KeyError(
            f"adata.uns has no {name!r}; run {tool} first (or pass the key_added it used as key=); "
            f"uns holds {sorted(map(str, adata.uns))}"
        )
    if not isinstance(table, pd.DataFrame):
        raise TypeError(f"adata.uns[{name!r}] is a {type(table).__name__}, not a results table; re-run {tool}")
    record = adata.uns.get(key + Suffix.PARAMS)
    writer = record.get("tool") if isinstance(record, Mapping) else None
    if isinstance(writer, str) and writer not in writers:
        raise TypeError(f"adata.uns[{name!r}] holds a result of {writer}, not of {writers[0]}; pass the key_added "
                        f"{writers[0]} used (or run it first)")
    return table.copy()


def params(adata: AnnData, key: str) -> dict[str, Any]:
    """Parameters and provenance a tool stored with its result ``key``.

    Parameters
    ----------
    adata
        AnnData a tool has written to.
    key
        The ``key_added`` of the tool (e.g. ``"hcctme_scores"``, ``"hcctme_compare"``).

    Returns
    -------
    A copy of ``uns[key + "_params"]``: at least ``tool``, ``params`` and ``library_version``. ``params`` holds
    the call's arguments as given (None included, a context map as a dict), so that
    ``tool(adata, **get.params(adata, key)["params"])`` repeats the call.
    """
    _validate.anndata(adata, allow_empty=True)
    stored = adata.uns.get(_validate.key_name(key, name="key") + Suffix.PARAMS)
    if stored is None and isinstance(adata.uns.get(key), Mapping):
        stored = _legacy_params(adata, key)
    if stored is None:
        raise KeyError(
            f"adata.uns has no {key + Suffix.PARAMS!r}: no hcctme tool wrote a result under key {key!r}; "
            "run the tool first or pass the key_added it used"
        )
    if not isinstance(stored, Mapping):
        raise TypeError(f"adata.uns[{key + Suffix.PARAMS!r}] is a {type(stored).__name__}, not a dict of parameters")
    record = copy.deepcopy(dict(stored))  # nested lists and tables too: editing the record never edits uns
    if isinstance(record.get("params"), Mapping):  # the call's arguments as given (_validate.call_record)
        call = {name: _as_given(value) for name, value in maps_as_dicts(record["params"]).items()}
        record["params"] = call | dict.fromkeys(map(str, record.pop("params_none", [])))
    return record


def _as_given(value: Any) -> Any:
    """An argument as the call gave it: h5ad files return lists as arrays and numbers as numpy scalars."""
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    return value


def _legacy_params(adata: AnnData, key: str) -> dict[str, Any] | None:
    """The parameters hcctme 0.1 kept inside ``uns[key]``, in the layout of ``uns[key + "_params"]``.

    None where ``uns[key]`` is no 0.1 record (scanpy's ``log1p``, the simulator's truth): another dict.
    """
    legacy = adata.uns[key]
    if not any(part in legacy for part in _LEGACY_TABLES):  # score / call_states: uns[key] was the params dict
        return dict(legacy) if "library_version" in legacy else None
    inner = dict(legacy.get("params") or {})
    out: dict[str, Any] = {"params": inner, "library_version": inner.get("library_version")}
    for wrapper in (legacy, adata.uns.get(key + Suffix.DIFF)):  # crosstalk kept provenance beside both tables
        if isinstance(wrapper, Mapping):
            out.update({name: value for name, value in wrapper.items() if name not in (*_LEGACY_TABLES, "params")})
    return out


def scores(adata: AnnData, key: str = Keys.SCORES) -> pd.DataFrame:
    """Signature scores of :func:`hcctme.tl.score`: cells x signatures (a copy of ``obsm[key]``).

    Parameters
    ----------
    adata
        AnnData :func:`hcctme.tl.score` has written to.
    key
        The ``key_added`` of ``tl.score``: the scores are read from ``obsm[key]`` (a ``KeyError`` when it is
        absent, a ``TypeError`` when it holds something other than a DataFrame).

    Returns
    -------
    DataFrame
        A copy of ``obsm[key]``: one row per cell (``obs_names``), one column per signature.
    """
    _validate.anndata(adata, allow_empty=True)
    return _validate.scores(adata, key, argument="key").copy()


def states(adata: AnnData, key: str = Keys.STATE) -> pd.DataFrame:
    """State calls of :func:`hcctme.tl.call_states`, one row per cell.

    Columns: ``state`` (``obs[key]``) and, where the tool wrote them, ``confidence``, ``context``
    (the cell context each cell was read in) and ``unrefined`` (calls before refinement).

    Parameters
    ----------
    adata
        AnnData :func:`hcctme.tl.call_states` has written to.
    key
        The ``key_added`` of ``tl.call_states``: the calls are ``obs[key]``, the other columns
        ``obs[key + "_confidence"]``, ``obs[key + "_context"]`` and ``obs[key + "_unrefined"]``. A ``KeyError``
        when ``obs`` has no ``key``; a ``TypeError`` when ``uns[key + "_params"]`` names another tool, or when
        there is neither such a record nor a confidence column (the column is not call_states' output).

    Returns
    -------
    DataFrame
        One row per cell (index ``obs_names``), with the columns above that are present.
    """
    _validate.anndata(adata, allow_empty=True)
    _validate.key_name(key, name="key")
    columns = {"state": key, "confidence": key + Suffix.CONFIDENCE, "context": key + Suffix.CONTEXT,
               "unrefined": key + Suffix.UNREFINED}
    _validate.state_calls(adata, key)
    record = adata.uns.get(key + Suffix.PARAMS)
    tool = record.get("tool") if isinstance(record, Mapping) else None
    if (tool is not None and tool != "hcctme.tl.call_states") or (record is None and columns["confidence"]
                                                                  not in adata.obs.columns):
        raise TypeError(f"adata.obs[{key!r}] holds no calls of hcctme.tl.call_states "
                        f"({'its record names ' + tool if tool else 'no call record, no confidence column'}); "
                        "pass the key call_states wrote (key_added), or run it first")
    present = {name: column for name, column in columns.items() if column in adata.obs.columns}
    return pd.DataFrame({name: adata.obs[column] for name, column in present.items()}, index=adata.obs_names)


def compare(adata: AnnData, key: str = Keys.COMPARE, *, values: bool = False) -> pd.DataFrame:
    """Table of :func:`hcctme.tl.compare` (feature, group, effect, statistic, pvalue, padj, ...).

    With ``values=True``, the long per-sample values that were tested (sample, group, feature, value,
    condition), as :func:`hcctme.pl.compare` draws them.

    Parameters
    ----------
    adata
        AnnData :func:`hcctme.tl.compare` has written to.
    key
        The ``key_added`` of ``tl.compare`` (the pipeline's comparisons are under
        ``"hcctme_compare_composition"``, ``"hcctme_compare_scores"`` and ``"hcctme_compare_genes"``). The
        ``key_added`` of :func:`hcctme.tl.ta_response` is read too: its comparison table is a ``tl.compare``
        table. A ``TypeError`` when ``uns[key + "_params"]`` names any other tool.
    values
        Read the per-sample values (``uns[key + "_values"]``) instead of the comparison table (``uns[key]``).
        True or False; other values raise a ``TypeError``.

    Returns
    -------
    DataFrame
        A copy of the stored table.
    """
    values = _validate.boolean(values, name="values")
    return _table(adata, key, Suffix.VALUES if values else "", tool="hcctme.tl.compare",
                  writers=("hcctme.tl.compare", "hcctme.tl.ta_response"))


def enrich(adata: AnnData, key: str = Keys.ENRICH) -> pd.DataFrame:
    """Table of :func:`hcctme.tl.enrich` (term, group, contrast, nes, pvalue, padj, lead_genes, ...).

    Parameters
    ----------
    adata
        AnnData :func:`hcctme.tl.enrich` has written to.
    key
        The ``key_added`` of ``tl.enrich``: the table is ``uns[key]``.

    Returns
    -------
    DataFrame
        A copy of ``uns[key]``.
    """
    return _table(adata, key, "", tool="hcctme.tl.enrich", writers=("hcctme.tl.enrich",))


def ta_response(adata: AnnData, key: str = Keys.TA_RESPONSE, *, per_sample: bool = False) -> pd.DataFrame:
    """Table of :func:`hcctme.tl.ta_response`: the comparison, or the per-sample values (``per_sample=True``).

    Parameters
    ----------
    adata
        AnnData :func:`hcctme.tl.ta_response` has written to.
    key
        The ``key_added`` of ``tl.ta_response``.
    per_sample
        Read the per-sample T+A values (``uns[key + "_per_sample"]``, written by every run) instead of the
        comparison (``uns[key]``, written only by a run with ``condition_key`` and ``reference``). True or
        False; other values raise a ``TypeError``.

    Returns
    -------
    DataFrame
        A copy of the stored table.
    """
    per_sample = _validate.boolean(per_sample, name="per_sample")
    tool = "hcctme.tl.ta_response" + ("" if per_sample else " with condition_key and reference")
    return _table(adata, key, Suffix.PER_SAMPLE if per_sample else "", tool=tool, writers=("hcctme.tl.ta_response",))


def crosstalk(adata: AnnData, key: str = Keys.CROSSTALK, *, differential: bool = False) -> pd.DataFrame:
    """Table of :func:`hcctme.tl.crosstalk`: liana's interactions, or the patient-level differential table.

    Parameters
    ----------
    adata
        AnnData :func:`hcctme.tl.crosstalk` has written to.
    key
        The ``key_added`` of ``tl.crosstalk``.
    differential
        Read the differential table (``uns[key + "_diff"]``, written only by a run with ``condition_key`` and
        ``reference``) instead of the interaction table (``uns[key]``). True or False; other values raise a
        ``TypeError``.

    Returns
    -------
    DataFrame
        A copy of the stored table.
    """
    differential = _validate.boolean(differential, name="differential")
    tool = "hcctme.tl.crosstalk" + (" with condition_key and reference" if differential else "")
    return _table(adata, key, Suffix.DIFF if differential else "", tool=tool, writers=("hcctme.tl.crosstalk",))


def tib(adata: AnnData, key: str = Keys.TIB) -> pd.DataFrame:
    """Table of :func:`hcctme.tl.tib`: one row per sample (tib_score, t_exclusion, p-values, ...).

    Parameters
    ----------
    adata
        AnnData :func:`hcctme.tl.tib` has written to.
    key
        The ``key_added`` of ``tl.tib``: the table is ``uns[key]``.

    Returns
    -------
    DataFrame
        A copy of ``uns[key]``, indexed by sample.
    """
    return _table(adata, key, "", tool="hcctme.tl.tib", writers=("hcctme.tl.tib",))


def profile(adata: AnnData, key: str = Keys.PROFILE, *, summary: bool = False, evidence: bool = False) -> pd.DataFrame:
    """Table of :func:`hcctme.tl.resistance_profile`, its summary or its evidence.

    ``summary=True``: the per-axis summary by condition; ``evidence=True``: the long evidence table behind each
    activity (one row per sample, axis and piece of evidence).

    Parameters
    ----------
    adata
        AnnData :func:`hcctme.tl.resistance_profile` has written to.
    key
        The ``key_added`` of ``tl.resistance_profile``.
    summary
        Read the summary (``uns[key + "_summary"]``, written only by a run with ``condition_key``) instead of
        the per-sample profile (``uns[key]``).
    evidence
        Read the evidence table (``uns[key + "_evidence"]``). ``summary`` and ``evidence`` are True or False
        (other values raise a ``TypeError``), and not both True (a ``ValueError``).

    Returns
    -------
    DataFrame
        A copy of the stored table.
    """
    summary, evidence = _validate.boolean(summary, name="summary"), _validate.boolean(evidence, name="evidence")
    if summary and evidence:
        raise ValueError("give summary=True or evidence=True, not both")
    if evidence:
        return _table(adata, key, Suffix.EVIDENCE, tool="hcctme.tl.resistance_profile",
                      writers=("hcctme.tl.resistance_profile",))
    tool = "hcctme.tl.resistance_profile" + (" with condition_key" if summary else "")
    return _table(adata, key, Suffix.SUMMARY if summary else "", tool=tool, writers=("hcctme.tl.resistance_profile",))
