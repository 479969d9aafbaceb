"""Schema validation of the resistance-axis knowledge base (``hcctme/kb/data/axes.yaml``).

Checks every field, so a typo in the shipped table fails at load time (and in the tests) with a
message naming the file, the axis and the problem, never silently at analysis time.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from hcctme._constants import CELL_CONTEXTS

TOP_FIELDS = ("version", "axes")
AXIS_FIELDS = ("id", "name", "direction", "mechanism", "sender", "receiver", "pairs", "resistance_to",
               "therapies", "evidence", "evidence_level", "hcc", "citations", "seed")
PAIR_REQUIRED = ("ligand", "receptor", "evidence")
PAIR_FIELDS = PAIR_REQUIRED + ("sender", "receiver", "note")
THERAPY_REQUIRED = ("name", "drug_class", "target", "status", "citation")
THERAPY_FIELDS = THERAPY_REQUIRED + ("note",)
CITATION_REQUIRED = ("key", "citation", "checked")
CITATION_FIELDS = CITATION_REQUIRED + ("pmid", "doi", "url", "note")

DIRECTIONS = ("up", "down")
PAIR_EVIDENCE = ("paper", "resource")
EVIDENCE_LEVELS = ("clinical", "human_observational", "preclinical_in_vivo", "in_vitro")
THERAPY_STATUS = ("approved_hcc", "approved_other", "trial", "preclinical", "discontinued")
CHECKED = ("pmid", "doi", "title")
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


def validate_axis(entry: Any, *, where: str, known_symbols: frozenset[str] | None = None) -> dict[str, Any]:
    """Validate one axis entry and return it normalised (lists, stripped strings, per-pair contexts)."""
    if not isinstance(entry, Mapping):
        raise AxisSchemaError(f"{where}: each axis must be a mapping, got {type(entry).__name__}")
    axis = entry.get("id")
    _check_fields(entry, AXIS_FIELDS, AXIS_FIELDS, where=where, axis=axis, what="axis")
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
    dup_keys = sorted({k for k in keys if keys.count(k) > 1})
    if dup_keys:
        _fail(where, axis, f"duplicate citation key(s) {dup_keys}")

    pairs_in = entry["pairs"]
    if not isinstance(pairs_in, list) or not pairs_in:
        _fail(where, axis, "pairs must be a non-empty list of {ligand, receptor, evidence}")
    pairs = []
    for pair in pairs_in:
        pair = _check_fields(pair, PAIR_FIELDS, PAIR_REQUIRED, where=where, axis=axis, what="pair")
        ligand = _gene(pair["ligand"], where=where, axis=axis, field="ligand", known_symbols=known_symbols)
        receptor = _gene(pair["receptor"], where=where, axis=axis, field="receptor",
                         known_symbols=known_symbols)
        if pair["evidence"] not in PAIR_EVIDENCE:
            _fail(where, axis, f"pair {ligand}->{receptor}: evidence must be one of {list(PAIR_EVIDENCE)}")
        pairs.append({
            "ligand": ligand, "receptor": receptor, "evidence": pair["evidence"],
            "sender": _contexts(pair["sender"], where=where, axis=axis, field="pair sender")
            if "sender" in pair else sender,
            "receiver": _contexts(pair["receiver"], where=where, axis=axis, field="pair receiver")
            if "receiver" in pair else receiver,
            "note": pair.get("note"),
        })
    seen = [(p["ligand"], p["receptor"]) for p in pairs]
    dup_pairs = sorted({f"{a}->{b}" for a, b in seen if seen.count((a, b)) > 1})
    if dup_pairs:
        _fail(where, axis, f"duplicate pair(s) {dup_pairs}")

    therapies_in = entry["therapies"]
    if not isinstance(therapies_in, list):
        _fail(where, axis, "therapies must be a list (possibly empty)")
    therapies = []
    for therapy in therapies_in:
        therapy = _check_fields(therapy, THERAPY_FIELDS, THERAPY_REQUIRED, where=where, axis=axis,
                                what="therapy")
        tname = _text(therapy["name"], where=where, axis=axis, field="therapy name")
        if therapy["status"] not in THERAPY_STATUS:
            _fail(where, axis, f"therapy {tname!r}: unknown status {therapy['status']!r}; use "
                               f"{list(THERAPY_STATUS)}")
        if therapy["citation"] not in keys:
            _fail(where, axis, f"therapy {tname!r} cites {therapy['citation']!r}, which is not one of this "
                               f"axis' citation keys {keys}")
        therapies.append({
            "name": tname,
            "drug_class": _text(therapy["drug_class"], where=where, axis=axis, field="drug_class"),
            "target": _text(therapy["target"], where=where, axis=axis, field="target"),
            "status": therapy["status"], "citation": therapy["citation"], "note": therapy.get("note"),
        })
    names = [t["name"] for t in therapies]
    dup_names = sorted({n for n in names if names.count(n) > 1})
    if dup_names:
        _fail(where, axis, f"therapy listed twice: {dup_names}")

    return {
        "id": axis, "name": name, "direction": direction,
        "mechanism": _text(entry["mechanism"], where=where, axis=axis, field="mechanism"),
        "sender": sender, "receiver": receiver, "pairs": pairs,
        "resistance_to": _str_list(entry["resistance_to"], where=where, axis=axis, field="resistance_to",
                                   allow_empty=True),
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
