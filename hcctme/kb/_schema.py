"""Schema validation of the resistance-axis knowledge base (``hcctme/kb/data/axes.yaml``).

Checks every field, so a typo in the shipped table fails at load time (and in the tests) with a
message naming the file, the axis and the problem, never silently at analysis time.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from hcctme._constants import CELL_CONTEXTS, KB_SETTINGS

TOP_FIELDS = ("version", "axes")
AXIS_REQUIRED = ("id", "name", "direction", "mechanism", "sender", "receiver", "pairs", "resistance_to",
                 "settings", "therapies", "evidence", "evidence_level", "hcc", "citations", "seed")
AXIS_FIELDS = (*AXIS_REQUIRED, "markers")
PAIR_REQUIRED = ("ligand", "receptor", "evidence")
PAIR_FIELDS = (*PAIR_REQUIRED, "sender", "receiver", "note", "interaction", "mediator", "citation")
THERAPY_REQUIRED = ("name", "drug_class", "target", "tier", "settings", "status", "approval", "citation", "checked")
THERAPY_FIELDS = (*THERAPY_REQUIRED, "trial", "negative_trials", "note")
TRIAL_REQUIRED = ("name", "phase", "randomised", "outcome")
TRIAL_FIELDS = (*TRIAL_REQUIRED, "nct", "citation", "note")
CITATION_REQUIRED = ("key", "citation", "checked")
CITATION_FIELDS = (*CITATION_REQUIRED, "pmid", "doi", "url", "note")

DIRECTIONS = ("up", "down")
PAIR_EVIDENCE = ("paper", "resource")
# protein: a ligand-receptor contact LIANA can score; metabolite: the "ligand" is the enzyme or
# transporter that makes/exports a small molecule (``mediator``) sensed by the receptor - never
# appended to a ligand-receptor resource nor scored as a contact
INTERACTIONS = ("protein", "metabolite")
EVIDENCE_LEVELS = ("clinical", "human_observational", "preclinical_in_vivo", "in_vitro")
THERAPY_STATUS = ("approved_hcc", "approved_other", "trial", "preclinical", "discontinued")
SETTINGS = KB_SETTINGS  # treatment settings a user can select (kb.axes(setting=...), kb.therapies(setting=...))
# evidence tiers of an axis -> therapy link (ESCAT / OncoKB spirit): I approved in HCC for this setting; II positive
# randomised phase 3 trial in HCC; III clinical activity in HCC (phase 1/2) or approved in another tumour; IV
# preclinical only
TIERS = ("I", "II", "III", "IV")
REGIONS = ("FDA", "EMA", "NMPA")
APPROVAL = ("approved", "withdrawn", "not_approved", "unverified")
TRIAL_OUTCOMES = ("positive", "negative", "activity", "ongoing", "not_reported")
UNVERIFIED = "unverified"
CHECKED = ("pmid", "doi", "title", "url")
SEEDS = {
    "A": "000_bfabf14260e85cc1.txt",
    "B": "001_31bfc3f7daf49d2e.txt",
    "C": "002_0cea7606144a9eeb.txt",
    "D": "003_c865027f1d3f73fd.txt",
    "E": "004_0e90d35f0b480c1e.txt",
}
COMPLEX_SEP = "_"

_ID = re.compile(r"^[A-Za-z0-9_]+$")
_PMID = re.compile(r"^[0-9]{1,9}$")
_DOI = re.compile(r"^10\.[0-9]{4,9}/\S+$")
_NCT = re.compile(r"^NCT[0-9]{8}$")
_DATE = re.compile(r"^20[0-9]{2}-[01][0-9]-[0-3][0-9]$")


class AxisSchemaError(ValueError):
    """An entry of the axis table breaks the schema; the message names the file and the axis."""


def _fail(where: str, axis: Any, problem: str) -> None:
    raise AxisSchemaError(f"{where}: axis {axis!r}: {problem}")


def _check_fields(entry: Any, allowed: tuple[str, ...], required: tuple[str, ...], *, where: str,
                  axis: Any, what: str) -> Mapping[str, Any]:
    if not isinstance(entry, Mapping):
        _fail(where, axis, f"each {what} must be a mapping, got {type(entry).__name__}")
    unknown = sorted(set(entry) - set(allowed))
    if unknown:
        _fail(where, axis, f"unknown {what} field(s) {unknown}; allowed: {list(allowed)}")
    missing = [f for f in required if f not in entry]
    if missing:
        _fail(where, axis, f"{what} is missing required field(s) {missing}")
    return entry


def _text(value: Any, *, where: str, axis: Any, field: str) -> str:
    if not isinstance(value, str) or not value.strip():
        _fail(where, axis, f"{field} must be a non-empty string, got {value!r}")
    return value.strip()


def _str_list(value: Any, *, where: str, axis: Any, field: str, allow_empty: bool = False) -> list[str]:
    if isinstance(value, str) or not isinstance(value, (list, tuple)):
        _fail(where, axis, f"{field} must be a list, got {type(value).__name__}")
    out = [_text(v, where=where, axis=axis, field=f"{field} item") for v in value]
    if not out and not allow_empty:
        _fail(where, axis, f"{field} is empty")
    dups = sorted({v for v in out if out.count(v) > 1})
    if dups:
        _fail(where, axis, f"{field} lists {dups} twice")
    return out


def _contexts(value: Any, *, where: str, axis: Any, field: str) -> list[str]:
    contexts = _str_list(value, where=where, axis=axis, field=field)
    bad = [c for c in contexts if c not in CELL_CONTEXTS]
    if bad:
        _fail(where, axis, f"unknown cell context(s) {bad} in {field}; use {list(CELL_CONTEXTS)}")
    return contexts


def split_complex(name: str) -> list[str]:
    """Subunits of a LIANA-style complex name (``ITGAV_ITGB1`` -> ``['ITGAV', 'ITGB1']``)."""
    return [part for part in str(name).split(COMPLEX_SEP) if part]


def _gene(value: Any, *, where: str, axis: Any, field: str,
          known_symbols: frozenset[str] | None) -> str:
    name = _text(value, where=where, axis=axis, field=field)
    subunits = split_complex(name)
    if not subunits or COMPLEX_SEP.join(subunits) != name:
        _fail(where, axis, f"{field} {name!r} is not a gene symbol or an '_'-joined complex")
    if known_symbols is not None:
        unknown = [g for g in subunits if g not in known_symbols]
        if unknown:
            _fail(where, axis, f"{field} {name!r}: {unknown} not current human gene symbols (use current "
                               "HGNC symbols, e.g. VSIG3 -> IGSF11, PSGL1 -> SELPLG, IL8 -> CXCL8)")
    return name


def _citation(entry: Any, *, where: str, axis: Any) -> dict[str, Any]:
    entry = _check_fields(entry, CITATION_FIELDS, CITATION_REQUIRED, where=where, axis=axis, what="citation")
    key = _text(entry["key"], where=where, axis=axis, field="citation key")
    if not _ID.match(key):
        _fail(where, axis, f"citation key {key!r} must be letters, digits and underscores")
    out: dict[str, Any] = {"key": key, "citation": _text(entry["citation"], where=where, axis=axis,
                                                         field=f"citation {key} text")}
    pmid = entry.get("pmid")
    if pmid is not None:
        pmid = str(pmid).strip()
        if not _PMID.match(pmid):
            _fail(where, axis, f"citation {key}: pmid {pmid!r} is not a PubMed id (digits)")
    doi = entry.get("doi")
    if doi is not None:
        doi = str(doi).strip()
        if not _DOI.match(doi):
            _fail(where, axis, f"citation {key}: doi {doi!r} does not look like a DOI (10.xxxx/...)")
    url = entry.get("url")
    if url is not None:
        url = _text(url, where=where, axis=axis, field=f"citation {key} url")
    checked = entry.get("checked")
    if isinstance(checked, str) or not isinstance(checked, (list, tuple)):
        _fail(where, axis, f"citation {key}: checked must be a list (possibly empty) of {list(CHECKED)}")
    bad = [c for c in checked if c not in CHECKED]
    if bad:
        _fail(where, axis, f"citation {key}: unknown checked value(s) {bad}; use {list(CHECKED)}")
    for ident, value in (("pmid", pmid), ("doi", doi)):
        if ident in checked and value is None:
            _fail(where, axis, f"citation {key}: checked lists {ident} but no {ident} is given")
    if pmid is None and doi is None and url is None and "title" not in checked:
        _fail(where, axis, f"citation {key} is not traceable: give a pmid, doi or url, or confirm the "
                           "title (checked: [title])")
    out.update(pmid=pmid, doi=doi, url=url, checked=list(checked), note=entry.get("note"))
    return out


def _settings(value: Any, *, where: str, axis: Any, field: str, allow_empty: bool) -> list[str]:
    settings = _str_list(value, where=where, axis=axis, field=field, allow_empty=allow_empty)
    bad = [v for v in settings if v not in SETTINGS]
    if bad:
        _fail(where, axis, f"unknown setting(s) {bad} in {field}; use {list(SETTINGS)}")
    return settings


def _pair(pair: Any, *, where: str, axis: Any, keys: list[str], sender: list[str], receiver: list[str],
          known_symbols: frozenset[str] | None) -> dict[str, Any]:
    pair = _check_fields(pair, PAIR_FIELDS, PAIR_REQUIRED, where=where, axis=axis, what="pair")
    ligand = _gene(pair["ligand"], where=where, axis=axis, field="ligand", known_symbols=known_symbols)
    receptor = _gene(pair["receptor"], where=where, axis=axis, field="receptor", known_symbols=known_symbols)
    label = f"pair {ligand}->{receptor}"
    if pair["evidence"] not in PAIR_EVIDENCE:
        _fail(where, axis, f"{label}: evidence must be one of {list(PAIR_EVIDENCE)}")
    interaction = pair.get("interaction", "protein")
    if interaction not in INTERACTIONS:
        _fail(where, axis, f"{label}: interaction must be one of {list(INTERACTIONS)}, got {interaction!r}")
    mediator = pair.get("mediator")
    if interaction == "metabolite":
        mediator = _text(mediator, where=where, axis=axis, field=f"{label} mediator (the small molecule)")
    elif mediator is not None:
        _fail(where, axis, f"{label}: mediator is only for interaction: metabolite")
    citation = pair.get("citation")
    if citation is not None and citation not in keys:
        _fail(where, axis, f"{label} cites {citation!r}, which is not one of this axis' citation keys {keys}")
    return {
        "ligand": ligand, "receptor": receptor, "evidence": pair["evidence"], "interaction": interaction,
        "mediator": mediator, "citation": citation,
        "sender": _contexts(pair["sender"], where=where, axis=axis, field="pair sender")
        if "sender" in pair else sender,
        "receiver": _contexts(pair["receiver"], where=where, axis=axis, field="pair receiver")
        if "receiver" in pair else receiver,
        "note": pair.get("note"),
    }


def _trial(entry: Any, *, where: str, axis: Any, label: str, keys: list[str]) -> dict[str, Any]:
    entry = _check_fields(entry, TRIAL_FIELDS, TRIAL_REQUIRED, where=where, axis=axis, what=f"{label} trial")
    name = _text(entry["name"], where=where, axis=axis, field=f"{label} trial name")
    nct = entry.get("nct")
    if nct is not None and not _NCT.match(str(nct)):
        _fail(where, axis, f"{label}: trial {name} nct {nct!r} is not a ClinicalTrials.gov id (NCT + 8 digits)")
    if not isinstance(entry["randomised"], bool):
        _fail(where, axis, f"{label}: trial {name} randomised must be true or false")
    if entry["outcome"] not in TRIAL_OUTCOMES:
        _fail(where, axis, f"{label}: trial {name} outcome must be one of {list(TRIAL_OUTCOMES)}")
    citation = entry.get("citation")
    if citation is not None and citation not in keys:
        _fail(where, axis, f"{label}: trial {name} cites {citation!r}, not one of this axis' citation keys {keys}")
    return {"name": name, "nct": None if nct is None else str(nct), "phase": str(entry["phase"]),
            "randomised": entry["randomised"], "outcome": entry["outcome"], "citation": citation,
            "note": entry.get("note")}


def _approval(value: Any, *, where: str, axis: Any, label: str) -> dict[str, str]:
    if not isinstance(value, Mapping) or sorted(value) != sorted(REGIONS):
        _fail(where, axis, f"{label}: approval must map exactly {list(REGIONS)} to a status")
    bad = {k: v for k, v in value.items() if v not in APPROVAL}
    if bad:
        _fail(where, axis, f"{label}: approval value(s) {bad} not in {list(APPROVAL)}")
    return {region: value[region] for region in REGIONS}


def _check_tier(t: dict[str, Any], *, where: str, axis: Any, label: str) -> None:
    """The tier must follow from the recorded status, approvals and trial (never from a negative trial).

    I: approved in HCC for this setting (a recorded approval and the registered trial behind it);
    II: a positive randomised phase 3 trial in HCC; III: clinical testing in HCC (a positive randomised phase 2
    included) or approval in another
    tumour; IV: preclinical only.
    """
    tier, trial = t["tier"], t["trial"]
    if tier in ("I", "II"):
        if trial is None or trial["nct"] is None:
            _fail(where, axis, f"{label}: tier {tier} needs its trial with an NCT id")
        if not t["settings"]:
            _fail(where, axis, f"{label}: tier {tier} needs the setting(s) it applies to")
    if tier == "I" and (t["status"] != "approved_hcc" or "approved" not in t["approval"].values()):
        _fail(where, axis, f"{label}: tier I needs status approved_hcc and a recorded approval")
    if tier == "II" and not (trial["outcome"] == "positive" and trial["randomised"] and "3" in trial["phase"]):
        _fail(where, axis, f"{label}: tier II needs a positive randomised phase 3 trial")
    if tier == "III" and trial is None and t["status"] != "approved_other":
        _fail(where, axis, f"{label}: tier III needs a clinical trial in HCC or status approved_other")
    if tier == "IV" and (t["status"] in ("approved_hcc", "approved_other") or trial is not None):
        _fail(where, axis, f"{label}: tier IV is preclinical evidence only (no approval, no HCC trial)")
    if t["status"] == "approved_hcc" and "approved" not in t["approval"].values():
        _fail(where, axis, f"{label}: status approved_hcc but no region records an approval")


def _therapy(therapy: Any, *, where: str, axis: Any, keys: list[str]) -> dict[str, Any]:
    therapy = _check_fields(therapy, THERAPY_FIELDS, THERAPY_REQUIRED, where=where, axis=axis, what="therapy")
    name = _text(therapy["name"], where=where, axis=axis, field="therapy name")
    label = f"therapy {name!r}"
    if therapy["status"] not in THERAPY_STATUS:
        _fail(where, axis, f"{label}: unknown status {therapy['status']!r}; use {list(THERAPY_STATUS)}")
    if therapy["tier"] not in TIERS:
        _fail(where, axis, f"{label}: tier must be one of {list(TIERS)}, got {therapy['tier']!r}")
    if therapy["citation"] not in keys:
        _fail(where, axis, f"{label} cites {therapy['citation']!r}, which is not one of this axis' citation keys "
                           f"{keys}")
    checked = str(therapy["checked"])
    if checked != UNVERIFIED and not _DATE.match(checked):
        _fail(where, axis, f"{label}: checked must be the date the status was checked (YYYY-MM-DD) or "
                           f"{UNVERIFIED!r}, got {checked!r}")
    trial = therapy.get("trial")
    trial = None if trial is None else _trial(trial, where=where, axis=axis, label=label, keys=keys)
    if trial is not None and trial["outcome"] == "negative":
        _fail(where, axis, f"{label}: a negative trial is not support; list it under negative_trials")
    negatives_in = therapy.get("negative_trials", [])
    if not isinstance(negatives_in, list):
        _fail(where, axis, f"{label}: negative_trials must be a list")
    negatives = [_trial(n, where=where, axis=axis, label=label, keys=keys) for n in negatives_in]
    if any(n["outcome"] != "negative" for n in negatives):
        _fail(where, axis, f"{label}: every negative_trials entry must have outcome negative")
    out = {
        "name": name, "drug_class": _text(therapy["drug_class"], where=where, axis=axis, field="drug_class"),
        "target": _text(therapy["target"], where=where, axis=axis, field="target"), "tier": therapy["tier"],
        "settings": _settings(therapy["settings"], where=where, axis=axis, field=f"{label} settings",
                              allow_empty=True),
        "status": therapy["status"], "approval": _approval(therapy["approval"], where=where, axis=axis, label=label),
        "trial": trial, "negative_trials": negatives, "citation": therapy["citation"], "checked": checked,
        "note": therapy.get("note"),
    }
    _check_tier(out, where=where, axis=axis, label=label)
    return out


def _duplicates(values: list[Any]) -> list[Any]:
    return sorted({v for v in values if values.count(v) > 1})


def validate_axis(entry: Any, *, where: str, known_symbols: frozenset[str] | None = None) -> dict[str, Any]:
    """Validate one axis entry and return it normalised (lists, stripped strings, per-pair contexts)."""
    if not isinstance(entry, Mapping):
        raise AxisSchemaError(f"{where}: each axis must be a mapping, got {type(entry).__name__}")
    axis = entry.get("id")
    _check_fields(entry, AXIS_FIELDS, AXIS_REQUIRED, where=where, axis=axis, what="axis")
    if not isinstance(axis, str) or not _ID.match(axis):
        _fail(where, axis, "id must be a non-empty string of letters, digits and underscores")
    name = _text(entry["name"], where=where, axis=axis, field="name")
    direction = entry["direction"]
    if direction not in DIRECTIONS:
        _fail(where, axis, f"direction must be one of {list(DIRECTIONS)}, got {direction!r}")
    level = entry["evidence_level"]
    if level not in EVIDENCE_LEVELS:
        _fail(where, axis, f"unknown evidence_level {level!r}; use one of {list(EVIDENCE_LEVELS)}")
    if not isinstance(entry["hcc"], bool):
        _fail(where, axis, f"hcc must be true or false (shown in HCC?), got {entry['hcc']!r}")
    sender = _contexts(entry["sender"], where=where, axis=axis, field="sender")
    receiver = _contexts(entry["receiver"], where=where, axis=axis, field="receiver")
    seeds = _str_list(entry["seed"], where=where, axis=axis, field="seed")
    bad_seeds = [s for s in seeds if s not in SEEDS]
    if bad_seeds:
        _fail(where, axis, f"unknown seed(s) {bad_seeds}; use {sorted(SEEDS)}")

    citations = entry["citations"]
    if not isinstance(citations, list) or not citations:
        _fail(where, axis, "citations must be a non-empty list (every axis is traceable to a paper)")
    cites = [_citation(c, where=where, axis=axis) for c in citations]
    keys = [c["key"] for c in cites]
    if _duplicates(keys):
        _fail(where, axis, f"duplicate citation key(s) {_duplicates(keys)}")

    markers = [_gene(g, where=where, axis=axis, field="marker", known_symbols=known_symbols)
               for g in _str_list(entry.get("markers", []), where=where, axis=axis, field="markers",
                                  allow_empty=True)]
    pairs_in = entry["pairs"]
    if not isinstance(pairs_in, list) or (not pairs_in and not markers):
        _fail(where, axis, "pairs must be a list of {ligand, receptor, evidence}, non-empty unless the axis "
                           "lists tumour-intrinsic markers")
    pairs = [_pair(p, where=where, axis=axis, keys=keys, sender=sender, receiver=receiver,
                   known_symbols=known_symbols) for p in pairs_in]
    seen = [f"{p['ligand']}->{p['receptor']}" for p in pairs]
    if _duplicates(seen):
        _fail(where, axis, f"duplicate pair(s) {_duplicates(seen)}")

    therapies_in = entry["therapies"]
    if not isinstance(therapies_in, list):
        _fail(where, axis, "therapies must be a list (possibly empty)")
    therapies = [_therapy(t, where=where, axis=axis, keys=keys) for t in therapies_in]
    if _duplicates([t["name"] for t in therapies]):
        _fail(where, axis, f"therapy listed twice: {_duplicates([t['name'] for t in therapies])}")

    return {
        "id": axis, "name": name, "direction": direction,
        "mechanism": _text(entry["mechanism"], where=where, axis=axis, field="mechanism"),
        "sender": sender, "receiver": receiver, "pairs": pairs, "markers": markers,
        "resistance_to": _str_list(entry["resistance_to"], where=where, axis=axis, field="resistance_to",
                                   allow_empty=True),
        "settings": _settings(entry["settings"], where=where, axis=axis, field="settings", allow_empty=False),
        "therapies": therapies,
        "evidence": _text(entry["evidence"], where=where, axis=axis, field="evidence"),
        "evidence_level": level, "hcc": entry["hcc"], "citations": cites, "seed": seeds,
    }


def validate(document: Any, *, where: str, known_symbols: frozenset[str] | None = None
             ) -> tuple[int, list[dict[str, Any]]]:
    """Validate a whole axis document (``{version, axes}``); return ``(version, axes)``."""
    if not isinstance(document, Mapping):
        raise AxisSchemaError(f"{where}: the axis table must be a mapping with 'version' and 'axes'")
    unknown = sorted(set(document) - set(TOP_FIELDS))
    if unknown:
        raise AxisSchemaError(f"{where}: unknown top-level field(s) {unknown}; allowed: {list(TOP_FIELDS)}")
    version = document.get("version")
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise AxisSchemaError(f"{where}: version must be a positive integer, got {version!r}")
    entries = document.get("axes")
    if not isinstance(entries, list) or not entries:
        raise AxisSchemaError(f"{where}: 'axes' must be a non-empty list")
    axes = [validate_axis(e, where=where, known_symbols=known_symbols) for e in entries]
    ids = [a["id"] for a in axes]
    dups = sorted({i for i in ids if ids.count(i) > 1})
    if dups:
        raise AxisSchemaError(f"{where}: duplicate axis id(s) {dups}")
    return version, axes
