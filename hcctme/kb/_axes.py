"""The shipped resistance-axis table and the public ``kb`` functions."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml

from hcctme.kb import _schema
from hcctme.kb._schema import split_complex

_DATA = "hcctme.kb.data"
_FILE = "axes.yaml"
_JOIN = ";"


@dataclass(frozen=True)
class AxisTable:
    """A validated axis document: its version, the axes and where it was read from."""

    version: int
    axes: tuple[dict[str, Any], ...]
    origin: str
    digest: str

    @property
    def ids(self) -> list[str]:
        return [a["id"] for a in self.axes]

    def __getitem__(self, axis_id: str) -> dict[str, Any]:
        for axis in self.axes:
            if axis["id"] == axis_id:
                return axis
        raise KeyError(f"no resistance axis {axis_id!r}; known axes: {self.ids}")


def _known_symbols() -> frozenset[str]:
    from hcctme.sig._genes import known_human_symbols

    return known_human_symbols()


def load(path: str | Path | None = None, *, check_genes: bool = True) -> AxisTable:
    """Read and validate an axis table (the shipped one when ``path`` is None).

    Raises :class:`hcctme.kb.AxisSchemaError` naming the file and the axis on any problem. With
    ``check_genes`` every ligand/receptor subunit must be a current human gene symbol.
    """
    if path is None:
        with resources.files(_DATA).joinpath(_FILE).open("rb") as handle:
            raw = handle.read()
        where = f"hcctme/kb/data/{_FILE}"
    else:
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"axis table {str(path)!r} does not exist; check the path")
        raw = path.read_bytes()
        where = str(path)
    try:
        document = yaml.safe_load(raw)
    except yaml.YAMLError as err:
        raise _schema.AxisSchemaError(f"{where}: not valid YAML ({err})") from err
    version, axes = _schema.validate(document, where=where,
                                     known_symbols=_known_symbols() if check_genes else None)
    return AxisTable(version=version, axes=tuple(axes), origin=where,
                     digest=hashlib.sha256(raw).hexdigest()[:10])


@lru_cache(maxsize=1)
def table() -> AxisTable:
    """The shipped axis table, validated once per session."""
    return load()


def get_version() -> str:
    """Version of the shipped table: ``'<schema version>+<content digest>'``."""
    t = table()
    return f"{t.version}+kb.{t.digest}"


def _ids(axis: str | Sequence[str] | None) -> list[str]:
    t = table()
    if axis is None:
        return t.ids
    wanted = [axis] if isinstance(axis, str) else list(axis)
    unknown = [a for a in wanted if a not in t.ids]
    if unknown:
        raise KeyError(f"unknown resistance axis/axes {unknown}; known axes: {t.ids}")
    return wanted


def _first(cites: list[dict[str, Any]], field: str) -> Any:
    for cite in cites:
        if cite.get(field):
            return cite[field]
    return None


def axes(axis: str | Sequence[str] | None = None) -> pd.DataFrame:
    """The resistance axes as a tidy table: one row per axis x ligand x receptor.

    Columns: axis, name, ligand, receptor (LIANA complex notation), pair_evidence (paper: the
    cited paper names the pair; resource: pairing taken from ligand-receptor resources), sender,
    receiver (';'-joined cell contexts), direction, mechanism, resistance_to, therapies (';'-joined
    drug names), evidence, evidence_level, hcc, citation, pmid, doi (first cited paper), seed.
    """
    rows = []
    t = table()
    for axis_id in _ids(axis):
        entry = t[axis_id]
        for pair in entry["pairs"]:
            rows.append({
                "axis": axis_id, "name": entry["name"], "ligand": pair["ligand"], "receptor": pair["receptor"],
                "pair_evidence": pair["evidence"], "sender": _JOIN.join(pair["sender"]),
                "receiver": _JOIN.join(pair["receiver"]), "direction": entry["direction"],
                "mechanism": entry["mechanism"], "resistance_to": _JOIN.join(entry["resistance_to"]),
                "therapies": _JOIN.join(th["name"] for th in entry["therapies"]),
                "evidence": entry["evidence"], "evidence_level": entry["evidence_level"], "hcc": entry["hcc"],
                "citation": entry["citations"][0]["citation"], "pmid": _first(entry["citations"], "pmid"),
                "doi": _first(entry["citations"], "doi"), "seed": _JOIN.join(entry["seed"]),
            })
    return pd.DataFrame(rows)


def therapies(axis: str | Sequence[str] | None = None) -> pd.DataFrame:
    """Therapies linked to the axes: one row per axis x therapy.

    Columns: axis, axis_name, therapy, drug_class, target, status (approved_hcc, approved_other,
    trial, preclinical, discontinued), note, citation, pmid, doi. ``axis`` selects one or more axes.
    """
    rows = []
    t = table()
    for axis_id in _ids(axis):
        entry = t[axis_id]
        by_key = {c["key"]: c for c in entry["citations"]}
        for th in entry["therapies"]:
            cite = by_key[th["citation"]]
            rows.append({
                "axis": axis_id, "axis_name": entry["name"], "therapy": th["name"], "drug_class": th["drug_class"],
                "target": th["target"], "status": th["status"], "note": th["note"], "citation": cite["citation"],
                "pmid": cite["pmid"], "doi": cite["doi"],
            })
    columns = ["axis", "axis_name", "therapy", "drug_class", "target", "status", "note", "citation",
               "pmid", "doi"]
    return pd.DataFrame(rows, columns=columns)


def axis_pairs() -> pd.DataFrame:
    """Ligand-receptor pairs of all axes, for annotating LIANA output.

    Columns: ligand, receptor, axis, direction, sender, receiver. A LIANA interaction belongs to an
    axis when the axis ligand's subunits are contained in ``ligand_complex`` and the receptor's in
    ``receptor_complex`` (either orientation); see :func:`annotate`.
    """
    frame = axes()
    return frame[["ligand", "receptor", "axis", "direction", "sender", "receiver"]].reset_index(drop=True)


@lru_cache(maxsize=4)
def _pair_index(digest: str) -> tuple[tuple[frozenset[str], frozenset[str], str], ...]:
    del digest  # cache key only
    return tuple((frozenset(split_complex(p["ligand"])), frozenset(split_complex(p["receptor"])), a["id"])
                 for a in table().axes for p in a["pairs"])


def _match(ligand: str, receptor: str, index) -> list[str]:
    lig, rec = set(split_complex(ligand)), set(split_complex(receptor))
    hits = []
    for kb_lig, kb_rec, axis_id in index:
        if (kb_lig <= lig and kb_rec <= rec) or (kb_lig <= rec and kb_rec <= lig):
            if axis_id not in hits:
                hits.append(axis_id)
    return hits


def annotate(ligands: Iterable[str], receptors: Iterable[str]) -> pd.Series:
    """Axis ids (';'-joined, NaN when none) for ligand/receptor complex names (LIANA notation).

    An interaction matches an axis pair when every subunit of the axis ligand is a subunit of the
    interaction's ligand complex and every subunit of the axis receptor one of its receptor
    complex (``CSF1`` matches ``CSF1_IL34``, ``KLRK1`` matches ``HCST_KLRK1``). The reversed
    orientation also matches, because resources differ on direction (e.g. ``TIGIT -> PVR``).
    """
    ligands = pd.Index(np.asarray(list(ligands), dtype=object).astype(str))
    receptors = pd.Index(np.asarray(list(receptors), dtype=object).astype(str))
    if len(ligands) != len(receptors):
        raise ValueError(f"got {len(ligands)} ligands but {len(receptors)} receptors")
    index = _pair_index(table().digest)
    keys = pd.MultiIndex.from_arrays([ligands, receptors])
    cache: dict[tuple[str, str], Any] = {}
    for key in keys.unique():
        hits = _match(key[0], key[1], index)
        cache[key] = _JOIN.join(hits) if hits else np.nan
    return pd.Series([cache[k] for k in keys], dtype=object, name="axis")


def genes() -> frozenset[str]:
    """Every ligand/receptor subunit named by the axes."""
    out: set[str] = set()
    for axis in table().axes:
        for pair in axis["pairs"]:
            out.update(split_complex(pair["ligand"]))
            out.update(split_complex(pair["receptor"]))
    return frozenset(out)
