"""The shipped resistance-axis table and the public ``kb`` functions."""

from __future__ import annotations

import copy
import hashlib
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml

from hcctme import _validate
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

    Raises :class:`hcctme.kb.AxisSchemaError` naming the file and the axis on any problem in the table (a missing
    file: ``FileNotFoundError``). With
    ``check_genes`` every ligand/receptor subunit must be a current human gene symbol.

    Parameters
    ----------
    path
        An axis table (YAML, the schema of ``hcctme/kb/data/axes.yaml``); a ``FileNotFoundError`` when it is not
        a file. ``None``: the shipped table (read anew; :func:`table` caches it).
    check_genes
        Check every ligand/receptor subunit against the shipped human gene symbols. False skips that check
        only; the rest of the schema is always validated.

    Returns
    -------
    AxisTable
        The schema version, the axes (one dict each), where the table was read from (``origin``) and the first
        ten hex digits of the file's sha256 (``digest``).
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
def _shipped() -> AxisTable:
    """The shipped axis table, validated once per session (shared: never handed out)."""
    return load()


def table() -> AxisTable:
    """The shipped axis table, validated once per session; a copy, so that editing it changes no later call."""
    return copy.deepcopy(_shipped())


def get_version() -> str:
    """Version of the shipped table: ``'<schema version>+<content digest>'``."""
    t = _shipped()
    return f"{t.version}+kb.{t.digest}"


def _ids(axis: str | Sequence[str] | None) -> list[str]:
    t = _shipped()
    if axis is None:
        return t.ids
    given = [axis] if isinstance(axis, str) else list(axis) if isinstance(axis, Iterable) else None  # once: a generator
    if given is None or not all(isinstance(a, str) for a in given):
        raise TypeError(f"axis must be an axis id or a list of them (see hcctme.kb.axes()), got {axis!r}")
    wanted = list(dict.fromkeys(given))  # an id named twice is one axis
    unknown = [a for a in wanted if a not in t.ids]
    if unknown:
        raise KeyError(f"unknown resistance axis/axes {unknown}; known axes: {t.ids}")
    return wanted


def _first(cites: list[dict[str, Any]], field: str) -> Any:
    for cite in cites:
        if cite.get(field):
            return cite[field]
    return None


def _check_setting(setting: str | None) -> None:
    if setting is not None and not isinstance(setting, str):
        raise TypeError(f"setting must be one treatment setting (a string, one of {list(_schema.SETTINGS)}), got "
                        f"{setting!r}")
    if setting is not None and setting not in _schema.SETTINGS:
        raise ValueError(f"unknown treatment setting {setting!r}; use one of {list(_schema.SETTINGS)}")


AXIS_COLUMNS = ["axis", "name", "ligand", "receptor", "interaction", "mediator", "pair_evidence", "pair_citation",
                "sender", "receiver", "direction", "mechanism", "resistance_to", "settings", "therapies",
                "evidence", "evidence_level", "hcc", "citation", "pmid", "doi", "seed"]


def _axis_rows(entry: dict[str, Any]) -> list[dict[str, Any]]:
    by_key = {c["key"]: c for c in entry["citations"]}
    common = {
        "axis": entry["id"], "name": entry["name"], "direction": entry["direction"], "mechanism": entry["mechanism"],
        "resistance_to": _JOIN.join(entry["resistance_to"]), "settings": _JOIN.join(entry["settings"]),
        "therapies": _JOIN.join(th["name"] for th in entry["therapies"]), "evidence": entry["evidence"],
        "evidence_level": entry["evidence_level"], "hcc": entry["hcc"],
        "citation": entry["citations"][0]["citation"], "pmid": _first(entry["citations"], "pmid"),
        "doi": _first(entry["citations"], "doi"), "seed": _JOIN.join(entry["seed"]),
    }
    rows = [{**common, "ligand": p["ligand"], "receptor": p["receptor"], "interaction": p["interaction"],
             "mediator": p["mediator"], "pair_evidence": p["evidence"],
             "pair_citation": by_key[p["citation"]]["citation"] if p["citation"] else None,
             "sender": _JOIN.join(p["sender"]), "receiver": _JOIN.join(p["receiver"])} for p in entry["pairs"]]
    rows += [{**common, "ligand": gene, "receptor": None, "interaction": "marker", "mediator": None,
              "pair_evidence": "paper", "pair_citation": None, "sender": _JOIN.join(entry["receiver"]),
              "receiver": _JOIN.join(entry["receiver"])} for gene in entry["markers"]]
    return rows


def axes(axis: str | Sequence[str] | None = None, *, setting: str | None = None) -> pd.DataFrame:
    """The resistance axes as a tidy table: one row per axis x ligand x receptor (or marker gene).

    Parameters
    ----------
    axis
        One axis id or several; all axes when None.
    setting
        Keep only the axes implicated in resistance to a treatment setting (one of
        ``hcctme.kb._schema.SETTINGS``: systemic_first_line, systemic_second_line, tace, haic,
        conversion, adjuvant).

    Returns
    -------
    Columns: axis, name, ligand, receptor (LIANA complex notation), interaction (protein: a
    ligand-receptor contact; metabolite: the ligand column holds the enzyme/transporter that makes
    ``mediator``, not a contact; marker: a tumour-intrinsic gene in the ligand column, receptor
    empty), mediator, pair_evidence (paper: the cited paper names the pair; resource: pairing taken
    from ligand-receptor resources), pair_citation (the paper for the interaction itself where
    LIANA's consensus lacks it), sender, receiver (';'-joined cell contexts), direction, mechanism,
    resistance_to, settings, therapies (';'-joined names), evidence, evidence_level, hcc, citation,
    pmid, doi (first cited paper), seed.
    """
    _check_setting(setting)
    t = _shipped()
    rows = [row for axis_id in _ids(axis) if setting is None or setting in t[axis_id]["settings"]
            for row in _axis_rows(t[axis_id])]
    return pd.DataFrame(rows, columns=AXIS_COLUMNS)


THERAPY_COLUMNS = ["axis", "axis_name", "therapy", "tier", "status", "fda", "ema", "nmpa", "settings", "trial",
                   "nct", "trial_phase", "trial_outcome", "negative_trials", "drug_class", "target", "checked",
                   "note", "citation_key", "citation", "pmid", "doi"]


def _negative_text(therapy: dict[str, Any]) -> str:
    return "; ".join(f"{n['name']} ({n['nct'] or 'no NCT'}, phase {n['phase']}): negative"
                     + (f" - {n['note']}" if n["note"] else "") for n in therapy["negative_trials"])


_NEGATIVE_NAME = re.compile(r"(?:^|; )([^;]+?) \((?:NCT\d+|no NCT), phase [^)]*\): negative")


def negative_names(text: Any) -> list[str]:
    """The trial names of a :func:`therapies` row's ``negative_trials`` text (the format of ``_negative_text``)."""
    return _NEGATIVE_NAME.findall(text) if isinstance(text, str) else []


def therapy_label(row: Any) -> str:
    """``name [tier, trial or citation key | status | negative: trials]``: a :func:`therapies` row as results print it.

    The status (``approved_hcc``, ``approved_other``, ``trial``, ``preclinical``, ``discontinued``) and the negative
    trials go with every suggestion, so a therapy whose phase 3 trials failed is never shown as plain support
    (tivantinib: ``[III, ... | discontinued | negative: METIV-HCC, JET-HCC]``). Fields a row lacks are left out.
    """
    def text(field: str) -> str:
        value = row.get(field)
        return str(value) if isinstance(value, str) and value else ""

    head = ", ".join(v for v in (text("tier"), text("trial") or text("citation_key")) if v)
    negative = negative_names(row.get("negative_trials"))
    parts = [p for p in (head, text("status"), "negative: " + ", ".join(negative) if negative else "") if p]
    return f"{row['therapy']} [{' | '.join(parts)}]" if parts else str(row["therapy"])


def _therapy_row(entry: dict[str, Any], th: dict[str, Any]) -> dict[str, Any]:
    cite = {c["key"]: c for c in entry["citations"]}[th["citation"]]
    trial = th["trial"] or {}
    return {
        "axis": entry["id"], "axis_name": entry["name"], "therapy": th["name"], "tier": th["tier"],
        "status": th["status"], "fda": th["approval"]["FDA"], "ema": th["approval"]["EMA"],
        "nmpa": th["approval"]["NMPA"], "settings": _JOIN.join(th["settings"]), "trial": trial.get("name"),
        "nct": trial.get("nct"), "trial_phase": trial.get("phase"), "trial_outcome": trial.get("outcome"),
        "negative_trials": _negative_text(th) or None, "drug_class": th["drug_class"], "target": th["target"],
        "checked": th["checked"], "note": th["note"], "citation_key": cite["key"], "citation": cite["citation"],
        "pmid": cite["pmid"],
        "doi": cite["doi"],
    }


def therapies(axis: str | Sequence[str] | None = None, *, setting: str | None = None) -> pd.DataFrame:
    """Therapies linked to the axes, sorted by evidence tier: one row per axis x therapy.

    Tiers (ESCAT / OncoKB spirit): I approved in HCC for this setting; II positive randomised phase 3 trial
    in HCC; III clinical activity in HCC (phase 1/2) or approved in another tumour; IV preclinical only.

    Parameters
    ----------
    axis
        One axis id or several; all axes when None.
    setting
        Keep only therapies used or tested in this treatment setting (see :func:`axes`).

    Returns
    -------
    Columns: axis, axis_name, therapy, tier, status (approved_hcc, approved_other, trial,
    preclinical, discontinued), fda, ema, nmpa (approval for HCC per region: approved, withdrawn,
    not_approved, unverified), settings, trial, nct, trial_phase, trial_outcome (the supporting
    trial), negative_trials (negative trials, recorded as such and never as support), drug_class,
    target, checked (date the status was checked, or unverified), note, citation_key, citation,
    pmid, doi (the paper behind the link; keys are listed in ``hcctme/kb/CITATIONS.md``). Rows are
    ordered by tier, then in the order of the table.
    """
    _check_setting(setting)
    t = _shipped()
    wanted = set(_ids(axis))
    rows = [_therapy_row(t[axis_id], th) for axis_id in t.ids if axis_id in wanted for th in t[axis_id]["therapies"]
            if setting is None or setting in th["settings"]]
    frame = pd.DataFrame(rows, columns=THERAPY_COLUMNS)
    order = frame["tier"].map({tier: i for i, tier in enumerate(_schema.TIERS)})
    return frame.iloc[np.argsort(order.to_numpy(), kind="stable")].reset_index(drop=True)


def axis_pairs(*, include_metabolite: bool = False) -> pd.DataFrame:
    """Ligand-receptor pairs of all axes, for annotating and extending LIANA's resource.

    Columns: ligand, receptor, axis, direction, sender, receiver, interaction. Only protein contacts
    by default: metabolite pairs (an enzyme that makes a small molecule, e.g. NT5E -> adenosine ->
    ADORA2A) are not cell contacts, so crosstalk neither appends nor scores them; pass
    ``include_metabolite=True`` to list them too. Marker genes of tumour-intrinsic axes are never
    pairs. A LIANA interaction belongs to an axis when the axis ligand's subunits are contained in
    ``ligand_complex`` and the receptor's in ``receptor_complex`` (either orientation); see
    :func:`annotate`.

    Parameters
    ----------
    include_metabolite
        List the metabolite pairs too (True or False; other values raise a ``TypeError``).

    Returns
    -------
    DataFrame
        One row per axis x pair of the shipped table, in its order: ligand, receptor (LIANA complex notation),
        axis, direction, sender, receiver (';'-joined cell contexts) and interaction (``protein`` or
        ``metabolite``).
    """
    include_metabolite = _validate.boolean(include_metabolite, name="include_metabolite")
    frame = axes()
    keep = frame["interaction"].eq("protein") | (include_metabolite & frame["interaction"].eq("metabolite"))
    columns = ["ligand", "receptor", "axis", "direction", "sender", "receiver", "interaction"]
    return frame.loc[keep, columns].reset_index(drop=True)


@lru_cache(maxsize=4)
def _pair_index(digest: str) -> tuple[tuple[frozenset[str], frozenset[str], str], ...]:
    del digest  # cache key only
    return tuple((frozenset(split_complex(p["ligand"])), frozenset(split_complex(p["receptor"])), a["id"])
                 for a in _shipped().axes for p in a["pairs"] if p["interaction"] == "protein")


def _match(ligand: str, receptor: str, index) -> list[str]:
    lig, rec = set(split_complex(ligand)), set(split_complex(receptor))
    hits = []
    for kb_lig, kb_rec, axis_id in index:
        matched = (kb_lig <= lig and kb_rec <= rec) or (kb_lig <= rec and kb_rec <= lig)
        if matched and axis_id not in hits:
            hits.append(axis_id)
    return hits


def reversed_only(ligand: str, receptor: str, axis: str) -> bool:
    """Whether an interaction matches ``axis`` only with ligand and receptor swapped.

    LIANA's ``TIGIT -> PVR`` for the kb's PVR -> TIGIT: its source is then the axis's receiver and its target
    the sender.
    """
    return _reversed_only(ligand, receptor, axis, _shipped().digest)


@lru_cache(maxsize=4096)
def _reversed_only(ligand: str, receptor: str, axis: str, digest: str) -> bool:
    lig, rec = set(split_complex(ligand)), set(split_complex(receptor))
    pairs = [(kb_lig, kb_rec) for kb_lig, kb_rec, axis_id in _pair_index(digest) if axis_id == axis]
    forward = any(kb_lig <= lig and kb_rec <= rec for kb_lig, kb_rec in pairs)
    return not forward and any(kb_lig <= rec and kb_rec <= lig for kb_lig, kb_rec in pairs)


def annotate(ligands: Iterable[str], receptors: Iterable[str]) -> pd.Series:
    """Axis ids (';'-joined, NaN when none) for ligand/receptor complex names (LIANA notation).

    Only protein contacts are matched (see :func:`axis_pairs`). An interaction matches an axis pair
    when every subunit of the axis ligand is a subunit of the interaction's ligand complex and every
    subunit of the axis receptor one of its receptor complex (``CSF1`` matches ``CSF1_IL34``,
    ``KLRK1`` matches ``HCST_KLRK1``). The reversed orientation also matches, because resources
    differ on direction (e.g. ``TIGIT -> PVR``).

    Parameters
    ----------
    ligands
        Ligand complex names, one per interaction (a list, array or column such as LIANA's
        ``ligand_complex``); subunits joined by ``_``. Values are read as text. A single string raises a
        ``TypeError``.
    receptors
        Receptor complex names, one per interaction, in the order of ``ligands`` (a ``ValueError`` when the
        lengths differ).

    Returns
    -------
    Series
        Named ``axis``, one value per interaction in the given order (a fresh ``RangeIndex``, not the index of
        the input): the ids of the shipped table's axes it matches, ';'-joined in the table's order, or NaN.
    """
    for name, values in (("ligands", ligands), ("receptors", receptors)):
        if isinstance(values, str) or not isinstance(values, Iterable):
            raise TypeError(f"{name} must be a list (or column) of complex names, one per interaction, got "
                            f"{values!r}")
    ligands = pd.Index(np.asarray(list(ligands), dtype=object).astype(str))
    receptors = pd.Index(np.asarray(list(receptors), dtype=object).astype(str))
    if len(ligands) != len(receptors):
        raise ValueError(f"got {len(ligands)} ligands but {len(receptors)} receptors")
    index = _pair_index(_shipped().digest)
    keys = pd.MultiIndex.from_arrays([ligands, receptors])
    cache: dict[tuple[str, str], Any] = {}
    for key in keys.unique():
        hits = _match(key[0], key[1], index)
        cache[key] = _JOIN.join(hits) if hits else np.nan
    return pd.Series([cache[k] for k in keys], dtype=object, name="axis")


def genes() -> frozenset[str]:
    """Every ligand/receptor subunit and tumour-intrinsic marker gene named by the axes."""
    out: set[str] = set()
    for axis in _shipped().axes:
        out.update(axis["markers"])
        for pair in axis["pairs"]:
            out.update(split_complex(pair["ligand"]))
            out.update(split_complex(pair["receptor"]))
    return frozenset(out)
