"""Schema validation of signature entries (library YAML files and user YAML)."""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from typing import Any

from hcctme._constants import CELL_CONTEXTS, EVIDENCE, ROLES, SPECIES
from hcctme.sig._model import Signature

REQUIRED = ("id", "genes_up")
LIBRARY_REQUIRED = ("id", "name", "collection", "cell_context", "species", "genes_up", "source",
                    "evidence", "role", "version")
OPTIONAL = ("name", "collection", "cell_context", "species", "genes_down", "weights", "source",
            "evidence", "role", "version", "validated", "validation", "excluded")
SOURCE_FIELDS = ("citation", "pmid", "doi", "where", "url", "license", "note")
_ID = re.compile(r"^[A-Za-z0-9_]+$")


class SignatureSchemaError(ValueError):
    """A signature entry breaks the schema; the message names the file and the entry."""


def _fail(where: str, entry_id: Any, problem: str) -> None:
    raise SignatureSchemaError(f"{where}: signature {entry_id!r}: {problem}")


def _gene_list(value: Any, where: str, entry_id: Any, field: str) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str) or not isinstance(value, (list, tuple)):
        _fail(where, entry_id, f"{field} must be a list of gene symbols, got {type(value).__name__}")
    genes = []
    for gene in value:
        if not isinstance(gene, str) or not gene.strip():
            _fail(where, entry_id, f"{field} holds a non-string or empty gene ({gene!r})")
        genes.append(gene.strip())
    dups = sorted({g for g in genes if genes.count(g) > 1})
    if dups:
        _fail(where, entry_id, f"{field} lists genes twice: {dups}")
    return genes


def to_signature(
    entry: Mapping[str, Any], *, where: str, strict: bool, known_symbols: frozenset[str] | None = None
) -> Signature:
    """Validate one entry and build a :class:`Signature`.

    ``strict`` (library files) requires every field and checks genes against the known human
    symbols; user files need only ``id`` and ``genes_up``.
    """
    if not isinstance(entry, Mapping):
        raise SignatureSchemaError(f"{where}: each entry must be a mapping, got {type(entry).__name__}")
    entry_id = entry.get("id")
    unknown = sorted(set(entry) - set(REQUIRED) - set(OPTIONAL))
    if unknown:
        _fail(where, entry_id, f"unknown field(s) {unknown}; allowed: {list(REQUIRED + OPTIONAL)}")
    for field in LIBRARY_REQUIRED if strict else REQUIRED:
        if field not in entry:
            _fail(where, entry_id, f"missing required field {field!r}")
    if not isinstance(entry_id, str) or not _ID.match(entry_id):
        _fail(where, entry_id, "id must be a non-empty string of letters, digits and underscores")
    up = _gene_list(entry.get("genes_up"), where, entry_id, "genes_up")
    down = _gene_list(entry.get("genes_down"), where, entry_id, "genes_down")
    if not up:
        _fail(where, entry_id, "genes_up is empty")
    both = sorted(set(up) & set(down))
    if both:
        _fail(where, entry_id, f"genes both up and down: {both}")

    context = entry.get("cell_context", "any")
    if context not in CELL_CONTEXTS:
        _fail(where, entry_id, f"unknown cell_context {context!r}; use one of {list(CELL_CONTEXTS)}")
    role = entry.get("role", "program")
    if role not in ROLES:
        _fail(where, entry_id, f"unknown role {role!r}; use one of {list(ROLES)}")
    evidence = entry.get("evidence", "derived")
    if evidence not in EVIDENCE:
        _fail(where, entry_id, f"unknown evidence {evidence!r}; use one of {list(EVIDENCE)}")
    species = entry.get("species", "human")
    if species not in SPECIES:
        _fail(where, entry_id, f"unknown species {species!r}; use one of {list(SPECIES)}")
    version = entry.get("version", 1)
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        _fail(where, entry_id, f"version must be a positive integer, got {version!r}")

    source = entry.get("source") or {}
    if not isinstance(source, Mapping):
        _fail(where, entry_id, "source must be a mapping (citation, pmid, doi, where)")
    bad_source = sorted(set(source) - set(SOURCE_FIELDS))
    if bad_source:
        _fail(where, entry_id, f"unknown source field(s) {bad_source}; allowed: {list(SOURCE_FIELDS)}")
    for field, value in [("name", entry.get("name")), ("collection", entry.get("collection")),
                         *((f"source.{k}", v) for k, v in source.items())]:
        if (value is not None and not isinstance(value, (str, int, float))) or isinstance(value, bool):
            _fail(where, entry_id, f"{field} must be text, got {type(value).__name__} {value!r}")
    if strict:
        if not source.get("citation"):
            _fail(where, entry_id, "source.citation is required")
        if not (source.get("pmid") or source.get("doi") or source.get("url")):
            _fail(where, entry_id, "source needs a pmid, doi or url")
        if not source.get("where"):
            _fail(where, entry_id, "source.where (table/figure or file the list was read from) is required")

    validated, validation = _validation(entry, where, entry_id)
    excluded = _excluded(entry, up + down, where, entry_id)

    weights = entry.get("weights") or {}
    if not isinstance(weights, Mapping):
        _fail(where, entry_id, "weights must be a mapping gene -> number")
    for gene, weight in weights.items():
        if gene not in up and gene not in down:
            _fail(where, entry_id, f"weight given for {gene!r}, which is not in genes_up/genes_down")
        if isinstance(weight, bool) or not isinstance(weight, (int, float)):
            _fail(where, entry_id, f"weight of {gene!r} must be a number, got {weight!r}")
        if not math.isfinite(weight) or weight <= 0:
            _fail(where, entry_id, f"weight of {gene!r} must be a positive finite number (a gene's importance; "
                                   f"the sign comes from genes_up / genes_down), got {weight!r}")

    if known_symbols is not None and species == "human":
        unknown_genes = [g for g in up + down if g not in known_symbols]
        if unknown_genes:
            _fail(
                where,
                entry_id,
                f"genes that are not current human symbols: {unknown_genes}; use current HGNC symbols "
                "(e.g. IL8 -> CXCL8) or add a justified entry to hcctme/sig/data/symbol_allowlist.tsv",
            )

    return Signature(
        id=entry_id,
        genes_up=tuple(up),
        genes_down=tuple(down),
        name=str(entry.get("name") or entry_id),
        collection=str(entry.get("collection", "user")),
        cell_context=context,
        species=species,
        weights={str(k): float(v) for k, v in weights.items()},
        source={str(k): str(v) for k, v in source.items()},
        evidence=evidence,
        role=role,
        version=version,
        validated=validated,
        validation=validation,
        excluded=excluded,
    )


def _excluded(entry: Mapping[str, Any], genes: list[str], where: str, entry_id: Any) -> dict[str, str]:
    """Read the optional ``excluded`` mapping: source genes left out of the lists, each with its reason."""
    excluded = entry.get("excluded") or {}
    if not isinstance(excluded, Mapping):
        _fail(where, entry_id, "excluded must be a mapping gene -> reason it was left out of the source list")
    for gene, reason in excluded.items():
        if not isinstance(gene, str) or not isinstance(reason, str) or not reason.strip():
            _fail(where, entry_id, f"excluded gene {gene!r} needs a gene symbol and a non-empty reason")
    kept = sorted(set(excluded) & set(genes))
    if kept:
        _fail(where, entry_id, f"genes both excluded and listed in genes_up/genes_down: {kept}")
    return {str(k): str(v).strip() for k, v in excluded.items()}


def _validation(entry: Mapping[str, Any], where: str, entry_id: Any) -> tuple[bool | None, str]:
    """Read the optional ``validated`` flag and its ``validation`` text (dataset + AUROC, or why untested)."""
    validated = entry.get("validated")
    if validated is not None and not isinstance(validated, bool):
        _fail(where, entry_id, f"validated must be true or false, got {validated!r}")
    validation = entry.get("validation", "")
    if validation is None:
        validation = ""
    if not isinstance(validation, str):
        _fail(where, entry_id, f"validation must be text (dataset and AUROC, or why it cannot be tested), "
                               f"got {type(validation).__name__}")
    if validated is not None and not validation.strip():
        _fail(where, entry_id, "validated is set but validation is empty; give the dataset and AUROC, "
                               "or the reason the signature cannot be tested")
    return validated, validation.strip()


def to_signatures(
    entries: Iterable[Any], *, where: str, strict: bool, known_symbols: frozenset[str] | None = None
) -> list[Signature]:
    """Validate a list of entries (one YAML file); duplicate ids are an error naming the file."""
    if not isinstance(entries, list):
        raise SignatureSchemaError(f"{where}: a signature file must hold a YAML list of entries")
    sigs = [to_signature(e, where=where, strict=strict, known_symbols=known_symbols) for e in entries]
    seen: set[str] = set()
    for sig in sigs:
        if sig.id in seen:
            _fail(where, sig.id, "duplicate id")
        seen.add(sig.id)
    return sigs
