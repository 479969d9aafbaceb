"""Readers and writers: YAML, GMT, decoupler nets and plain dicts."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml

from hcctme import _files, _validate
from hcctme.sig._model import Signature, SignatureSet
from hcctme.sig._schema import SignatureSchemaError, to_signature, to_signatures


def read_yaml(path: Path, *, strict: bool = False, known_symbols: frozenset[str] | None = None
              ) -> list[Signature]:
    """Read one signature YAML file (safe loader only; UTF-8, at most ``Files.MAX_GENE_SET_BYTES`` bytes)."""
    text = _validate.small_text_file(path, what="signature YAML file")
    try:
        entries = yaml.safe_load(text)
    except yaml.YAMLError as err:
        raise ValueError(f"{path}: not valid YAML ({err.__class__.__name__}: {err})") from None
    if entries is None:
        raise SignatureSchemaError(f"{path}: the file is empty")
    return to_signatures(entries, where=str(path), strict=strict, known_symbols=known_symbols)


def read_yaml_dir(directory: Path, *, strict: bool = False,
                  known_symbols: frozenset[str] | None = None) -> list[Signature]:
    """Read every ``*.yaml``/``*.yml`` file of a directory, in name order; ids unique across files."""
    files = sorted([*directory.glob("*.yaml"), *directory.glob("*.yml")])
    if not files:
        raise FileNotFoundError(f"{directory}: no *.yaml signature files in this directory")
    sigs: list[Signature] = []
    first_seen: dict[str, Path] = {}
    for path in files:
        for sig in read_yaml(path, strict=strict, known_symbols=known_symbols):
            if sig.id in first_seen:
                raise SignatureSchemaError(
                    f"{path}: signature {sig.id!r}: duplicate id (also in {first_seen[sig.id].name})"
                )
            first_seen[sig.id] = path
            sigs.append(sig)
    return sigs


def read_gmt(path: Path) -> list[Signature]:
    """Read a GMT file (name, description, genes...; tab separated).

    UTF-8 text (a byte-order mark is ignored), at most ``Files.MAX_GENE_SET_BYTES`` bytes.
    """
    sigs = []
    lines = _validate.small_text_file(path, what="GMT file").splitlines()
    for lineno, line in enumerate(lines, start=1):
        line = line.rstrip("\r\n")
        if not line.strip() or line.startswith("#"):
            continue
        fields = line.split("\t")
        if len(fields) < 3:
            raise ValueError(
                f"{path}:{lineno}: malformed GMT line: expected 'name<TAB>description<TAB>gene...' "
                f"with tabs, found {len(fields)} tab-separated field(s)"
            )
        name, description, genes = fields[0].strip(), fields[1].strip(), [g.strip() for g in fields[2:]]
        genes = list(dict.fromkeys(g for g in genes if g))
        spaced = [g for g in genes if any(c.isspace() for c in g)]
        if spaced:
            raise ValueError(f"{path}:{lineno}: gene field {spaced[0]!r} holds a space; GMT separates genes by tabs")
        entry = {"id": _safe_id(name), "name": name, "genes_up": genes,
                 "source": {"where": str(path), "note": description} if description else {}}
        sigs.append(to_signature(entry, where=f"{path}:{lineno}", strict=False))
    if not sigs:
        raise ValueError(f"{path}: no gene sets found in this GMT file")
    return _distinct_ids(sigs, where=str(path))


def _distinct_ids(sigs: list[Signature], *, where: str) -> list[Signature]:
    """Refuse gene sets whose names repeat, or become one id (ids keep ASCII letters, digits and underscores)."""
    names: dict[str, list[str]] = {}
    for signature in sigs:
        names.setdefault(signature.id, []).append(signature.name or signature.id)
    clashes = {i: n for i, n in names.items() if len(n) > 1}
    if not clashes:
        return sigs
    repeated = sorted(n[0] for n in clashes.values() if len(set(n)) == 1)
    if repeated:
        raise SignatureSchemaError(f"{where}: gene set names repeated: {repeated}")
    i, n = next(iter(clashes.items()))
    raise SignatureSchemaError(
        f"{where}: the gene set names {n} all become the id {i!r} (ids keep ASCII letters, digits and "
        "underscores; other characters become '_'); rename them so that they differ in those characters"
    )


def _safe_id(name: str) -> str:
    """An id the schema accepts (ASCII letters, digits, underscores); the name is kept as the signature's name."""
    safe = "".join(c if (c.isascii() and c.isalnum()) or c == "_" else "_" for c in name)
    return safe or "unnamed"


def from_dict(mapping: Mapping[str, Any]) -> list[Signature]:
    """``{id: [genes]}`` or ``{id: {"up": [...], "down": [...]}}`` -> signatures."""
    sigs = []
    for key, value in mapping.items():
        if isinstance(value, Mapping):
            unknown = set(value) - {"up", "down"}
            if unknown:
                raise ValueError(f"signature {key!r}: dict values take keys 'up' and 'down', got {sorted(unknown)}")
            up, down = value.get("up", []), value.get("down", [])
        else:
            up, down = value, []
        sigs.append(to_signature({"id": _safe_id(str(key)), "name": str(key), "genes_up": _gene_list(up, key, "up"),
                                  "genes_down": _gene_list(down, key, "down")}, where="dict", strict=False))
    if not sigs:
        raise ValueError("the signature dict is empty")
    return _distinct_ids(sigs, where="the signature dict")


def _gene_list(genes: Any, key: Any, side: str) -> list[str]:
    """A dict value's genes as a list; a string or a non-list refused (a string would be read letter by letter)."""
    if isinstance(genes, (str, bytes, Mapping)) or not isinstance(genes, Iterable):
        raise TypeError(
            f"signature {key!r}: give the {side} genes as a list of gene symbols, not {type(genes).__name__} "
            f"{genes!r}" + (f" (e.g. [{genes!r}])" if isinstance(genes, str) else "")
        )
    return list(genes)


def from_net(net: pd.DataFrame, *, source: str = "source", target: str = "target",
             weight: str = "weight") -> list[Signature]:
    """Decoupler net (source, target, weight) -> signatures; negative weights are genes_down.

    A weight other than +-1 is kept as the gene's weight, as a magnitude (the sign is its side), so that
    ``to_net`` gives the net back.
    """
    missing = [c for c in (source, target) if c not in net.columns]
    if missing:
        raise KeyError(f"the net has no column(s) {missing}; expected columns {source!r}, {target!r}"
                       f" and optionally {weight!r} (decoupler format)")
    if net.empty:
        raise ValueError("the net is empty")
    sigs = []
    if weight in net.columns:
        weights = pd.to_numeric(net[weight], errors="coerce")
        bad = weights.isna() | ~np.isfinite(weights.fillna(0.0)) | (weights == 0)
        if bad.any():
            raise ValueError(f"the net's {weight!r} column must hold non-zero finite numbers; found "
                             f"{net.loc[bad, weight].head(3).tolist()}")
    else:
        weights = pd.Series(1.0, index=net.index)
    if net[target].isna().any() or net[source].isna().any():
        raise ValueError(f"the net has missing values in {source!r} or {target!r}")
    for name, block in net.assign(_w=weights).groupby(source, sort=False, observed=True):
        up = block.loc[block["_w"] >= 0, target].astype(str).tolist()
        down = block.loc[block["_w"] < 0, target].astype(str).tolist()
        signed = {g: abs(float(w)) for g, w in zip(block[target].astype(str), block["_w"], strict=True)
                  if abs(w) != 1}
        entry = {"id": _safe_id(str(name)), "name": str(name), "genes_up": up, "genes_down": down,
                 "weights": signed}
        sigs.append(to_signature(entry, where="net", strict=False))
    return _distinct_ids(sigs, where="the net")


def to_yaml(sigs: SignatureSet, path: str | Path | None = None) -> str:
    """Signatures -> YAML text in the library schema."""
    text = yaml.safe_dump([s.to_dict() for s in sigs], sort_keys=False, allow_unicode=True)
    if path is not None:
        _files.write_text(text, path)
    return text
