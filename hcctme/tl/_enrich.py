"""Preranked GSEA (gseapy) of a patient-level gene comparison, offline, against local gene sets."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from anndata import AnnData

from hcctme import _validate, get
from hcctme._constants import GENE_METHODS, Defaults, Keys, Suffix
from hcctme._logging import logger
from hcctme.tl import _stats

RANK_COLUMNS = ("statistic", "effect")  # signed columns of a genes comparison: positive = higher in the other level
ENRICH_COLUMNS = [
    "term", "group", "contrast", "es", "nes", "pvalue", "fdr", "padj", "n_genes", "set_size", "direction",
    "lead_genes",
]


def enrich(
    adata: AnnData,
    signatures: Any = None,
    *,
    compare_key: str = Keys.COMPARE,
    group: str | None = None,
    contrast: str | None = None,
    rank_by: str = "statistic",
    min_size: int = 5,
    max_size: int = 500,
    permutation_num: int = 1000,
    random_state: int = Defaults.SEED,
    key_added: str = Keys.ENRICH,
    copy: bool = False,
) -> AnnData | None:
    """Preranked GSEA of a genes comparison against the hcctme library or the user's gene sets.

    Genes of each group x contrast of a :func:`hcctme.tl.compare` table (``features="genes"``) are
    ranked by ``rank_by`` (the moderated t of limma-trend or voom, or the Wald statistic of DESeq2, by default: positive
    = higher in the other level) and passed to :func:`gseapy.prerank`. Gene sets are always handed to gseapy as a local
    dict, so nothing is downloaded (no Enrichr library names).

    Parameters
    ----------
    adata
        AnnData holding a :func:`hcctme.tl.compare` result with ``features="genes"`` in ``uns[compare_key]``.
    signatures
        ``None`` for the whole hcctme library, or anything :func:`hcctme.sig.load` accepts: library
        ids, a dict ``{name: [genes]}``, a GMT or YAML path, a decoupler net. Each signature
        contributes its ``genes_up``.
    compare_key
        ``key_added`` of the genes comparison. Its genes (``var_names``) are ranked by the symbols
        :func:`hcctme.pp.harmonize_genes` gave them, where it ran (Ensembl ids read as symbols).
    group, contrast
        Restrict to one group (groupby level) and/or one contrast of the table (default: all).
    rank_by
        Column of the table the genes are ranked by: ``"statistic"``, or ``"effect"`` for log2FC (signed: an
        unsigned column such as a p-value would rank the genes most higher in the other level last).
    min_size, max_size
        Gene sets with fewer / more ranked genes are left out (gseapy semantics, counted after
        matching to the ranked genes).
    permutation_num
        Gene-set permutations for the nominal p-values. A set no permutation reaches gets
        ``1 / (permutation_num + 1)`` (gseapy reports 0). A floor, not the test's resolution: gseapy's p
        counts only the permutations whose score has the observed sign, so its smallest non-zero p is coarser.
        Where no permutation has the observed sign (a few permutations), the set gets the floor and ``nes`` is
        NaN (there is no null score of that sign to normalise by).
    random_state
        Seed of the permutations (results are reproducible for a given seed).
    key_added
        The table goes to ``uns[key_added]`` (read it with :func:`hcctme.get.enrich`), the parameters
        and library version to ``uns[key_added + "_params"]``.
    copy
        Write into a copy of ``adata`` and return it.

    Returns
    -------
    AnnData or None
        ``None``, or the modified copy when ``copy=True``. The table has one row per gene set x group x
        contrast: ``term``, ``group``, ``contrast``, ``es``, ``nes``, ``pvalue`` (nominal), ``fdr``
        (gseapy's GSEA FDR within each ranked list), ``padj`` (Benjamini-Hochberg of the nominal p-values
        over the whole table), ``n_genes`` (genes of the set among the ranked genes), ``set_size`` (genes
        in the set), ``direction`` (``"up"``: enriched among genes higher in the other level; ``"down"``)
        and ``lead_genes`` (";"-separated leading-edge genes). Sorted by p-value then absolute NES.
    """
    from hcctme import sig

    _validate.anndata(adata, writes=True)
    _validate.choice(rank_by, RANK_COLUMNS, name="rank_by")
    table = get.compare(adata, _validate.key_name(compare_key, name="compare_key"))
    params = _check_enrich(table, rank_by=rank_by, min_size=min_size, max_size=max_size,
                           permutation_num=permutation_num, random_state=random_state)
    _validate.key_added(key_added, adata=adata, slots=("uns",), reads=(compare_key,), tool="hcctme.tl.enrich")
    _validate.copy_flag(copy, adata=adata, tool="hcctme.tl.enrich", writes="uns")
    table = _select(table, group=group, contrast=contrast)
    # the genes of tl.compare's table are var_names: ranked by the symbols harmonize_genes gave them
    features = pd.Index(pd.unique(table["feature"].astype(str)))  # each group's genes: a gene can be in several
    symbols = dict(zip(features, _validate.unique_symbols(adata, features), strict=True))
    table = table.assign(feature=table["feature"].astype(str).map(symbols))
    gene_sets = _gene_sets(signatures, sig)
    out = _enrich_table(table, gene_sets, rank_by=rank_by, **params)
    record = {
        "tool": "hcctme.tl.enrich",
        # the sets tested, as a dict (None: the library), so that get.params repeats the call; a set no ranked
        # list could test takes no part in any result, and a large GMT would swell the record
        **_validate.call_record(signatures=None if signatures is None else {
            term: gene_sets[term] for term in pd.unique(out["term"])}, compare_key=compare_key,
                                group=group, contrast=contrast, rank_by=rank_by, **params),
        "library_version": _validate.library_version(),
    }
    adata = adata.copy() if copy else adata  # nothing is written before this line
    adata.uns[key_added] = out
    adata.uns[key_added + Suffix.PARAMS] = record
    logger.info("enrich: %d gene sets, %d with padj < %g -> uns[%r]", out["term"].nunique(),
                int((out["padj"] < Defaults.ALPHA).sum()), Defaults.ALPHA, key_added)
    return adata if copy else None


def _check_enrich(table: pd.DataFrame, *, rank_by: str, min_size: Any, max_size: Any, permutation_num: Any,
                  random_state: Any) -> dict[str, int]:
    """Check the comparison table and the numeric parameters; returns the checked numbers."""
    missing = {"feature", "group", rank_by} - set(table.columns)
    if missing:
        raise KeyError(
            f"the comparison table lacks column(s) {sorted(missing)}; run "
            "hcctme.tl.compare(..., features='genes') and pass its key_added as compare_key"
        )
    if "method" in table.columns and not table["method"].isin(GENE_METHODS).all():
        raise ValueError(
            "tl.enrich ranks genes: pass a comparison made with features='genes' "
            f"(this table was made with method(s) {sorted(pd.unique(table['method']))})"
        )
    params = {
        "min_size": _validate.positive_int(min_size, name="min_size"),
        "max_size": _validate.positive_int(max_size, name="max_size"),
        "permutation_num": _validate.positive_int(permutation_num, name="permutation_num"),
        "random_state": _validate.random_state(random_state),
    }
    if params["max_size"] < params["min_size"]:
        raise ValueError(f"max_size={params['max_size']} is smaller than min_size={params['min_size']}")
    return params


def _select(table: pd.DataFrame, *, group: str | None, contrast: str | None) -> pd.DataFrame:
    """The rows of one group and/or contrast (all when None); a ValueError names the levels."""
    table = table.copy()
    if "contrast" not in table.columns:
        table["contrast"] = ""
    for name, value in (("group", group), ("contrast", contrast)):
        if value is not None:
            levels = pd.unique(table[name].astype(str))
            if str(value) not in set(levels):
                raise ValueError(f"{name}={value!r} is not in the table; {name}s are {list(levels)}")
            table = table[table[name].astype(str) == str(value)]
    return table


def _enrich_table(table: pd.DataFrame, gene_sets: dict[str, list[str]], *, rank_by: str, min_size: int,
                  max_size: int, permutation_num: int, random_state: int) -> pd.DataFrame:
    """GSEA of every group x contrast ranked list of ``table`` (AnnData-free)."""
    rows = []
    for (grp, con), sub in table.groupby(["group", "contrast"], sort=False, observed=True):
        ranking = (sub.dropna(subset=[rank_by]).drop_duplicates("feature")
                   .set_index("feature")[rank_by].astype(float))
        ranking = ranking[np.isfinite(ranking.to_numpy())].sort_values(ascending=False)
        result = _prerank(ranking, gene_sets, min_size=min_size, max_size=max_size,
                          permutation_num=permutation_num, seed=random_state)
        if result is None:
            logger.warning("enrich: group %r, contrast %r: no gene set has %d-%d genes among the %d ranked genes",
                           grp, con, min_size, max_size, len(ranking))
            continue
        result.insert(1, "group", str(grp))
        result.insert(2, "contrast", str(con))
        rows.append(result)
    if not rows:
        raise ValueError(
            f"no gene set has between min_size={min_size} and max_size={max_size} genes among the ranked genes; "
            "check that gene names match (hcctme.pp.harmonize_genes) or lower min_size"
        )
    out = pd.concat(rows, ignore_index=True)
    out["padj"] = _stats.bh(out["pvalue"].to_numpy())
    out = out[ENRICH_COLUMNS]
    out = out.assign(_abs=-out["nes"].abs()).sort_values(["pvalue", "_abs", "term"], kind="mergesort")
    return out.drop(columns="_abs").reset_index(drop=True)


def _gene_sets(signatures: Any, sig: Any) -> dict[str, list[str]]:
    if isinstance(signatures, str) and not signatures.strip():
        raise ValueError("signatures is an empty string; pass a library signature id, a GMT/YAML path, a dict of gene "
                         "lists or None for the library")
    if isinstance(signatures, str) and not signatures.lower().endswith((".gmt", ".yaml", ".yml")) \
            and "/" not in signatures and not Path(signatures).exists() and signatures not in sig.library():
        raise ValueError(
            f"{signatures!r} is neither a library signature id nor a local GMT/YAML file; hcctme never "
            "downloads gene sets (Enrichr names are not accepted): pass a dict or a GMT path"
        )
    sets = sig.load(signatures)
    gene_sets = {s.id: list(dict.fromkeys(s.genes_up)) for s in sets}
    gene_sets = {k: v for k, v in gene_sets.items() if v}
    if not gene_sets:
        raise ValueError("no gene set with genes_up to test")
    return gene_sets


def _prerank(ranking: pd.Series, gene_sets: dict[str, list[str]], *, min_size: int, max_size: int,
             permutation_num: int, seed: int) -> pd.DataFrame | None:
    import gseapy

    ranked = set(ranking.index)
    sizes = {k: sum(g in ranked for g in v) for k, v in gene_sets.items()}
    usable = {k: v for k, v in gene_sets.items() if min_size <= sizes[k] <= max_size}
    if not usable or len(ranking) < 2:
        return None
    res = gseapy.prerank(rnk=ranking, gene_sets=usable, min_size=min_size, max_size=max_size,
                         permutation_num=permutation_num, seed=seed, threads=1, outdir=None, no_plot=True,
                         verbose=False)
    d = res.res2d
    es = pd.to_numeric(d["ES"], errors="coerce").to_numpy(float)
    nes = pd.to_numeric(d["NES"], errors="coerce").to_numpy(float)
    pvalue = pd.to_numeric(d["NOM p-val"], errors="coerce").to_numpy(float)
    # no permutation of the observed sign (few permutations): gseapy reports p 1 and NES +-1, with nothing to
    # normalise by; the set is beyond every permutation of its sign
    unreached = (np.abs(nes) == 1.0) & (es != 0) & (pvalue == 1)
    nes[unreached], pvalue[unreached] = np.nan, 0.0
    return pd.DataFrame({
        "term": d["Term"].astype(str).to_numpy(),
        "es": es,
        "nes": nes,
        # a permutation p-value is never 0 (Phipson & Smyth 2010): gseapy's 0 is "beyond every permutation"
        "pvalue": np.maximum(pvalue, 1.0 / (permutation_num + 1)),
        "fdr": pd.to_numeric(d["FDR q-val"], errors="coerce").to_numpy(float),
        "n_genes": [sizes[t] for t in d["Term"].astype(str)],
        "set_size": [len(gene_sets[t]) for t in d["Term"].astype(str)],
        "direction": _stats.direction(es),  # NES has the sign of ES
        "lead_genes": d["Lead_genes"].astype(str).to_numpy(),
    })
