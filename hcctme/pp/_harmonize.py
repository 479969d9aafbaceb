"""Gene-name harmonisation: aliases, previous symbols, Ensembl ids and mouse orthologs -> human symbols."""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
from anndata import AnnData

from hcctme import _validate
from hcctme._constants import Keys, Suffix
from hcctme._logging import logger
from hcctme.sig import _genes

SPECIES_OPTIONS = ("auto", "human", "mouse")
# how a name was mapped, in the order used to settle collisions (earlier wins)
ROUTES = ("current", "alias", "ensembl", "ortholog")
UNMAPPED = "unmapped"
_N_EXAMPLES = 20


def map_names(names: Sequence[Any], species: str) -> pd.DataFrame:
    """Map gene names to current human symbols (no AnnData involved).

    Parameters
    ----------
    names
        Gene names: symbols, aliases, Ensembl ids or mouse symbols; missing values allowed.
    species
        ``"human"`` or ``"mouse"`` (already resolved from ``"auto"``).

    Returns
    -------
    DataFrame with columns ``name`` (as given), ``symbol`` (current human symbol or NaN) and
    ``route`` (``current``, ``alias``, ``ensembl``, ``ortholog`` or ``unmapped``), one row per name.
    Ensembl ids (ENSG/ENSMUSG, versioned or not) are mapped whatever ``species`` is. Human names
    go through the current symbols, then the alias table (protein/CD names, previous HGNC
    symbols, upper-cased ``orf`` symbols); mouse names through the ortholog table only, matched
    exactly (a mouse symbol is never upper-cased into a human one).
    """
    ensembl = _genes.ensembl_to_symbol()
    known = _genes.known_human_symbols()
    mouse = _genes.mouse_to_human()
    symbols: list[Any] = []
    routes: list[str] = []
    for raw in names:
        name = raw.strip() if isinstance(raw, str) else None
        symbol, route = None, UNMAPPED
        if name:
            base = _genes.ensembl_base(name)
            if base is not None:
                symbol = ensembl.get(base)
                route = "ensembl"
            elif species == "mouse":
                symbol = mouse.get(name)
                route = "ortholog"
            elif name in known:
                symbol, route = name, "current"
            else:
                symbol = _genes.current_symbol(name)
                route = "alias"
        if symbol is None:
            route = UNMAPPED
        symbols.append(symbol if symbol is not None else np.nan)
        routes.append(route)
    return pd.DataFrame({"name": list(names), "symbol": symbols, "route": routes})


def resolve_collisions(table: pd.DataFrame, species: str = "human") -> tuple[pd.DataFrame, dict[str, list[str]]]:
    """Keep one name per symbol; the others become unmapped.

    The kept name is a gene of ``species`` (the data's: a human gene keeps its symbol against a mouse ortholog's
    Ensembl id in a human+mouse reference, whatever the order), then the one with the most direct route (current
    symbol, then alias, Ensembl id, ortholog; among mouse genes, by symbol or Ensembl id, the human gene's preferred
    mouse ortholog, ``_genes.human_to_mouse``: Gzmb for GZMB, not Gzme), then the first in order. Returns the updated
    table (route of the losers: ``collision``) and ``{symbol: [all names that mapped to it, kept one first]}``.
    """
    table = table.copy()
    mapped = table[table["symbol"].notna()]
    dup_mask = mapped["symbol"].duplicated(keep=False)
    collisions: dict[str, list[str]] = {}
    if not dup_mask.any():
        return table, collisions
    rank = mapped["route"].map({r: i for i, r in enumerate(ROUTES)})
    mouse_genes = [_mouse_symbol(name, route) for name, route in zip(mapped["name"], mapped["route"], strict=True)]
    other = [_not_preferred(mouse, symbol) for mouse, symbol in zip(mouse_genes, mapped["symbol"], strict=True)]
    foreign = np.array([(mouse is not None) != (species == "mouse") for mouse in mouse_genes])
    hit = dup_mask.to_numpy()
    ordered = mapped[dup_mask].assign(_foreign=foreign[hit], _rank=rank[dup_mask], _other=np.asarray(other)[hit],
                                      _pos=np.arange(len(mapped))[hit])
    ordered = ordered.sort_values(["symbol", "_foreign", "_rank", "_other", "_pos"], kind="mergesort")
    for symbol, block in ordered.groupby("symbol", sort=True):
        collisions[str(symbol)] = [str(n) for n in block["name"]]
        losers = block.index[1:]
        table.loc[losers, "symbol"] = np.nan
        table.loc[losers, "route"] = "collision"
    return table, collisions


def _not_preferred(mouse: str | None, symbol: str) -> bool:
    """A mouse gene that is not the human gene's preferred ortholog; a gene that is no mouse gene never is."""
    return mouse is not None and _genes.human_to_mouse().get(symbol) != mouse


def _mouse_symbol(name: Any, route: str) -> str | None:
    """The mouse gene a name stands for: a mouse symbol (route ``ortholog``) or a mouse Ensembl id; else None."""
    name = name.strip() if isinstance(name, str) else None
    if not name or route not in ("ortholog", "ensembl"):
        return None
    if route == "ortholog":
        return name
    return _genes.mouse_symbol_of_id().get(_genes.ensembl_base(name) or "")


def _resolve_species(species: str, names: Sequence[Any]) -> tuple[str, dict[str, Any]]:
    detected = _genes.gene_id_type(names)
    if species != "auto":
        return species, detected
    if detected["species"] == "unknown":
        raise ValueError(
            "could not tell the species of the gene names (none is a known human or mouse symbol or an "
            f"Ensembl id; first names: {list(map(str, names[:5]))}); pass species='human' or 'mouse', or "
            "gene_symbols= naming the var column that holds symbols or Ensembl ids"
        )
    return detected["species"], detected


def harmonize_genes(
    adata: AnnData,
    *,
    gene_symbols: str | None = None,
    species: str = "auto",
    copy: bool = False,
) -> AnnData | None:
    """Map gene names to the current human symbols the signature library uses.

    Recognised names: current HGNC symbols; aliases and previous symbols (``CD10``->MME,
    ``PD-L1``->CD274, ``TIM-3``->HAVCR2, ``IL8``->CXCL8, ``SEPT11``->SEPTIN11, upper-cased
    ``C19ORF53``->C19orf53; the shipped ``aliases.tsv`` and HGNC's previous symbols, ``AMICA1``->JAML,
    ``IGJ``->JCHAIN, each kept only where it names one gene; matched case-insensitively); human or
    mouse Ensembl gene ids, versioned or not (``ENSG00000153563.16``->CD8A); and mouse symbols,
    through the shipped BioMart/HCOP ortholog table (``Cd8a``->CD8A, ``H2-Ab1``->HLA-DQB2),
    never by upper-casing.

    Parameters
    ----------
    adata
        Annotated data matrix (genes in ``var``).
    gene_symbols
        Column of ``adata.var`` holding the names to map (e.g. ``"gene_ids"`` with Ensembl ids or
        ``"feature_name"``); ``None`` uses ``adata.var_names``.
    species
        ``"human"``, ``"mouse"`` or ``"auto"``. ``"auto"`` applies the rule of
        :func:`hcctme.sig._genes.gene_id_type`: Ensembl ids when at least half the names are
        ENSG/ENSMUSG ids (species from the majority prefix); otherwise mouse when more names are
        mouse symbols of the ortholog table than current human symbols/aliases, else human.
        Ensembl ids are mapped whatever the species.
    copy
        Return a modified copy instead of writing into ``adata``.

    Returns
    -------
    The modified copy when ``copy=True``, else ``None``. Writes

    ``adata.var["hcctme_symbol"]``
        The current human symbol of each gene, **NaN where unmapped** (and for the genes that lose
        a collision), so mapped and unmapped genes are never confused. Tools read the column
        through :func:`hcctme._validate.gene_names`, which falls back to a gene's own name where
        the column is NaN; where that own name is another gene's symbol (mouse data with ``Apoe`` and
        a human ``APOE`` transgene) they refuse the data, naming both genes.
    ``adata.raw.var["hcctme_symbol"]``
        The same for the genes of ``adata.raw`` (mapped by the same rule and species), which the tools
        read by default where it exists: without it a scanpy layout (all genes in ``.raw``, the variable
        ones in ``.X``) kept its Ensembl ids or mouse names. Not written when ``gene_symbols`` names a
        column ``raw.var`` lacks (a warning says so).
    ``adata.uns["hcctme_symbol_params"]``
        The call (``tool``, ``params``, ``library_version``), as every tool records it (:func:`hcctme.get.params`).
    ``adata.uns["hcctme_symbol"]``
        A report: source, species (given, used and the detection counts), ``routes`` (genes per
        route: current, alias, ensembl, ortholog, unmapped, collision), ``n_unmapped`` with up to
        20 ``unmapped_examples``, ``examples`` of changed names per route (``from``/``to`` lists)
        and ``collisions`` (symbol -> names that mapped to it, the kept one first). When two genes map to the same
        symbol the one with the most direct route (current symbol, then alias, Ensembl id,
        ortholog) is kept, ties going to the first gene; the others are left unmapped.
    """
    _validate.anndata(adata, writes=True)
    _validate.choice(species, SPECIES_OPTIONS, name="species")
    _validate.copy_flag(copy, adata=adata, tool="hcctme.pp.harmonize_genes", writes="var and uns")
    if gene_symbols is None:
        names = pd.Index(adata.var_names)
        source = "var_names"
    else:
        names = pd.Index(_validate.var_column(adata, gene_symbols, purpose="gene_symbols"))
        source = f"var[{gene_symbols!r}]"
    values = list(names.astype(object))
    resolved, detected = _resolve_species(species, values)

    table = map_names(values, resolved)
    if table["symbol"].isna().all():
        raise ValueError(
            f"none of the {len(values)} gene names in {source} maps to a human symbol as species={resolved!r} "
            f"(first names: {list(map(str, values[:5]))}); pass the species the names are from (or 'auto'), "
            "or gene_symbols= naming the var column that holds symbols or Ensembl ids"
        )
    table, collisions = resolve_collisions(table, resolved)
    report = _report(table, collisions, source=source, species=species, resolved=resolved,
                     detected=detected)
    raw_symbols = _raw_symbols(adata, gene_symbols, resolved)

    adata = adata.copy() if copy else adata  # nothing written before this line
    adata.var[Keys.SYMBOL] = pd.Series(table["symbol"].to_numpy(dtype=object), index=adata.var_names,
                                       dtype=object)
    if raw_symbols is not None:
        adata.raw.var[Keys.SYMBOL] = raw_symbols
    adata.uns[Keys.SYMBOL] = report
    adata.uns[Keys.SYMBOL + Suffix.PARAMS] = {"tool": "hcctme.pp.harmonize_genes",
                                              **_validate.call_record(gene_symbols=gene_symbols, species=species),
                                              "library_version": report["library_version"]}
    logger.info(
        "harmonised %d/%d gene names from %s (%s; %s) -> var[%r]; %d unmapped, %d collision(s); "
        "report in uns[%r]",
        report["n_mapped"], report["n_vars"], source, resolved,
        ", ".join(f"{k} {v}" for k, v in report["routes"].items() if v), Keys.SYMBOL,
        report["n_unmapped"], len(collisions), Keys.SYMBOL,
    )
    return adata if copy else None


def _raw_symbols(adata: AnnData, gene_symbols: str | None, species: str) -> pd.Series | None:
    """The symbols of ``adata.raw``'s genes (mapped as ``var``'s), or None without raw or its name column."""
    if adata.raw is None:
        return None
    if gene_symbols is None:
        names = pd.Index(adata.raw.var_names)
    elif gene_symbols in adata.raw.var.columns:
        names = pd.Index(adata.raw.var[gene_symbols])
    else:
        warnings.warn(f"harmonize_genes: adata.raw.var has no column {gene_symbols!r}; the genes of .raw keep their "
                      "names (tools read .raw by default: pass use_raw=False to read the harmonised .X)", UserWarning,
                      stacklevel=3)
        return None
    table, _ = resolve_collisions(map_names(list(names.astype(object)), species), species)
    return pd.Series(table["symbol"].to_numpy(dtype=object), index=adata.raw.var_names, dtype=object)


def _report(table: pd.DataFrame, collisions: dict[str, list[str]], *, source: str, species: str,
            resolved: str, detected: dict[str, Any]) -> dict[str, Any]:
    routes = {route: int((table["route"] == route).sum()) for route in (*ROUTES, UNMAPPED, "collision")}
    unmapped = table[table["route"] == UNMAPPED]
    names = table["name"].map(lambda n: n if isinstance(n, str) else "")
    changed = table["symbol"].notna() & (names != table["symbol"])
    examples: dict[str, dict[str, list[str]]] = {}
    for route in ROUTES[1:]:
        rows = table[changed & (table["route"] == route)].head(_N_EXAMPLES)
        examples[route] = {"from": [str(n) for n in rows["name"]], "to": [str(s) for s in rows["symbol"]]}
    return {
        "source": source,
        "library_version": _validate.library_version(),
        "species": species,
        "species_used": resolved,
        "detected": {k: (int(v) if isinstance(v, (int, np.integer)) else str(v)) for k, v in detected.items()},
        "n_vars": len(table),
        "n_mapped": int(table["symbol"].notna().sum()),
        "n_changed": int(changed.sum()),
        "routes": routes,
        "n_unmapped": len(unmapped),
        "unmapped_examples": [str(n) for n in unmapped["name"].head(_N_EXAMPLES)],
        "examples": examples,
        "n_collisions": len(collisions),
        "collisions": collisions,
    }
