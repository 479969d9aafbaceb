"""Build hcctme's table of HGNC previous symbols from HGNC's complete set.

A maintainer script, not used at run time; run it after ``python -m hcctme.sig._build_tables`` (it reads the
tables that script writes)::

    python -m hcctme.sig._build_previous path/to/hgnc_complete_set.txt.gz   # writes into hcctme/sig/data/

The source is HGNC's complete set (``hgnc_complete_set.txt``, gzipped or not; HGNC data are CC0), of which
the columns ``symbol``, ``status``, ``prev_symbol`` and ``alias_symbol`` are read. The shipped table was built
from ``data/hgnc_complete_set.txt.gz`` of https://github.com/maximilianh/phenotypes at commit
0236d05ae3c522657167250a4868bcb776f4d04e (sha256 aea1f28b19ca56552a74a28702ebb70dbea3ad134c0e4eafde164cb6e3ef0326;
43,882 approved genes, newest ``date_modified`` 2024-10-18); the file's first line records the source.

``previous_symbols.tsv.gz`` (previous, symbol)
    An HGNC previous symbol of an approved gene -> that gene's approved symbol (AMICA1 -> JAML, IGJ -> JCHAIN),
    one row per previous symbol, sorted. A previous symbol is kept only when

    1. it is the previous symbol of exactly one approved gene, and no other approved gene has it as an alias
       symbol (RAGE, a previous symbol of MOK, is an alias of AGER; PAP names REG3A and ACP3): compared with
       case ignored, since :func:`hcctme.sig._genes.aliases` matches case-insensitively;
    2. it is not, in any case, an approved HGNC symbol, a symbol of ``human_genes.tsv.gz`` (current or
       older: the tables' own older names are :func:`hcctme.sig._genes.previous_symbols` already, or left out
       there as ambiguous) or a symbol of ``symbol_allowlist.tsv``;
    3. its approved symbol is a symbol hcctme knows (:func:`hcctme.sig._genes.known_human_symbols`).

Nothing is ever derived by changing the case of a symbol.
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import io
import sys
from pathlib import Path

import pandas as pd

from hcctme.sig import _genes

OUT = Path(__file__).resolve().parent / "data"
NAME = "previous_symbols.tsv.gz"


def _split(table: pd.DataFrame, column: str) -> pd.DataFrame:
    """(name, symbol) for every '|'-separated name of ``column``."""
    names = table[column].fillna("").str.strip('"').str.split("|")
    pairs = table[["symbol"]].assign(name=names).explode("name")
    pairs["name"] = pairs["name"].str.strip()
    return pairs.loc[pairs["name"].ne("") & pairs["name"].notna(), ["name", "symbol"]].drop_duplicates()


def previous_symbols(hgnc: pd.DataFrame, known: frozenset[str], taken: set[str]) -> pd.DataFrame:
    """(previous, symbol) for approved genes; see the module docstring for the rules.

    ``known``: the approved symbols hcctme accepts; ``taken``: every other symbol of hcctme's tables.
    """
    approved = hgnc[hgnc["status"].eq("Approved")]
    previous = _split(approved, "prev_symbol")
    aliases = _split(approved, "alias_symbol")
    names = pd.concat([previous, aliases], ignore_index=True)
    targets = names.groupby(names["name"].str.upper())["symbol"].nunique()
    unique = targets.index[targets == 1]
    current = {s.upper() for s in (*approved["symbol"], *known, *taken)}
    upper = previous["name"].str.upper()
    keep = upper.isin(unique) & ~upper.isin(current) & previous["symbol"].isin(known)
    table = previous[keep].rename(columns={"name": "previous"})
    return table.sort_values("previous", kind="mergesort").reset_index(drop=True)


def build(source: Path, out: Path = OUT) -> pd.DataFrame:
    columns = ["symbol", "status", "prev_symbol", "alias_symbol", "date_modified"]
    hgnc = pd.read_csv(source, sep="\t", dtype=str, keep_default_na=False, usecols=columns)
    table = previous_symbols(hgnc, _genes.known_human_symbols(), set(_genes.human_genes()["symbol"]))
    digest = hashlib.sha256(source.read_bytes()).hexdigest()
    header = (f"# HGNC previous symbols (HGNC data, CC0), built by python -m hcctme.sig._build_previous from "
              f"{source.name} (sha256 {digest}; {int(hgnc['status'].eq('Approved').sum())} approved genes, newest "
              f"date_modified {hgnc['date_modified'].max()})\n")
    out.mkdir(parents=True, exist_ok=True)
    path = out / NAME
    # mtime=0 (and no file name in the gzip header) keeps the bytes reproducible between builds
    with path.open("wb") as raw, gzip.GzipFile(fileobj=raw, filename="", mode="wb", compresslevel=9, mtime=0) as gz, \
            io.TextIOWrapper(gz, encoding="utf-8", newline="") as text:
        text.write(header)
        table.to_csv(text, sep="\t", index=False, lineterminator="\n")
    print(f"{path}: {len(table)} rows, {path.stat().st_size / 1024:.0f} KB", file=sys.stderr)
    return table


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("source", type=Path, help="HGNC's hgnc_complete_set.txt (gzipped or not)")
    parser.add_argument("--out", type=Path, default=OUT, help="output directory (default: %(default)s)")
    args = parser.parse_args(argv)
    build(args.source, args.out)


if __name__ == "__main__":
    main()
