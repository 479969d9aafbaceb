"""Crosstalk that computes only what its outputs use: per-unit, per-group gene statistics, then LIANA's rules.

One pass over the matrix, ``chunk_size`` cells at a time (in memory, backed or dask), sums the
expression and counts the expressing cells of every resource gene per unit (sample) x cell group;
memory is bounded by the chunk and the groups' sums: the matrix is never read whole. From these
means and detection fractions, each unit's ligand-receptor table is built with LIANA's own code:
its resource handling (``_explode_complexes``, ``filter_resource``), its complex rules and
``expr_prop`` filter (``_filter_reassemble_complexes``: every subunit expressed in >= ``expr_prop``
of the group's cells, the complex represented by its least expressed subunit) and CellPhoneDB's
``lr_means`` scoring function. The table therefore equals ``liana.mt.cellphonedb(n_perms=None)``
(and the ``lr_means`` of ``liana.mt.rank_aggregate``) run on each unit.

A differential run equalises sequencing depth here too: each chunk of raw counts is binomially
thinned to the shallowest unit's median depth (:mod:`hcctme.pp._thinning`, drawn by cell and gene
name) and log1p(CP10k)-normalised before it is summed.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp

from hcctme import _validate
from hcctme.pp import _thinning

#: LIANA's key of one interaction in one unit (the unit column first)
UNIT = "@unit"
_KEYS = [UNIT, "source", "target", "ligand_complex", "receptor_complex"]
#: columns of the table, after the unit, in this order
COLUMNS = ("source", "target", "ligand_complex", "receptor_complex", "ligand_means", "ligand_props",
           "receptor_means", "receptor_props", "lr_means")


# --------------------------------------------------------------------------------------------------
# One chunked pass over the matrix
# --------------------------------------------------------------------------------------------------
def _blocks(X: Any, chunk_size: int) -> Iterator[tuple[int, int, sp.csr_matrix]]:
    """:func:`hcctme._validate.row_blocks` as CSR (dtype kept)."""
    for start, stop, block in _validate.row_blocks(X, chunk_size=chunk_size):
        yield start, stop, sp.csr_matrix(block)


def group_statistics(X: Any, codes: np.ndarray, n_codes: int, genes: np.ndarray, *, chunk_size: int,
                     thinning: _thinning.Thinning | None = None,
                     where: str = "the expression matrix") -> tuple[np.ndarray, np.ndarray]:
    """Per code (unit x group; -1: cell not used), the sum over cells and the number of expressing cells.

    Only the columns ``genes`` are kept; with ``thinning``, ``X`` holds raw counts, thinned and
    normalised chunk by chunk (all genes count towards a cell's size). The cells used are refused when they hold
    NaN or infinite values (``where`` names ``X`` in the message).
    """
    sums = np.zeros((n_codes, len(genes)))
    expressing = np.zeros((n_codes, len(genes)))
    for start, stop, block in _blocks(X, chunk_size):
        rows = codes[start:stop]
        used = np.flatnonzero(rows >= 0)
        if not len(used):
            continue
        block = block[used]
        _validate.finite_rows(block, start + used, where=where)
        if thinning is not None:
            block = _thinning.thinned_lognorm(block, start + used, thinning)
        block = sp.csr_matrix(block[:, genes], dtype=np.float64)
        member = sp.csr_matrix((np.ones(len(used)), (rows[used], np.arange(len(used)))), shape=(n_codes, len(used)))
        sums += (member @ block).toarray()
        block.data = (block.data != 0).astype(np.float64)
        expressing += (member @ block).toarray()
    return sums, expressing


# --------------------------------------------------------------------------------------------------
# LIANA's resource, complex rules and lr_means on the group statistics
# --------------------------------------------------------------------------------------------------
def explode(resource: pd.DataFrame) -> pd.DataFrame:
    """LIANA's exploded resource: one row per (ligand subunit, receptor subunit) of each interaction."""
    from liana.resource._reassemble_complexes import _explode_complexes

    return _explode_complexes(resource[["ligand", "receptor"]].copy())


@dataclass
class UnitStats:
    """Means and expressing fractions of the resource genes in each cell group of one unit."""

    groups: list[str]
    means: np.ndarray  # groups x genes
    props: np.ndarray  # groups x genes
    present: np.ndarray  # genes expressed in the unit at all (LIANA drops the others)


@dataclass
class _Resource:
    """LIANA's exploded, filtered resource as integer arrays (one entry per exploded row)."""

    interaction: np.ndarray  # interaction of each row (0..n_inter-1)
    ligand: np.ndarray  # gene position of the ligand subunit
    receptor: np.ndarray  # gene position of the receptor subunit
    ligand_complex: np.ndarray  # position in ``complexes``
    receptor_complex: np.ndarray
    is_complex: np.ndarray  # the row's interaction has a multi-subunit side
    complexes: pd.Index

    @classmethod
    def of(cls, exploded: pd.DataFrame, genes: pd.Index) -> _Resource:
        from liana.method._pipe_utils import filter_resource

        res = filter_resource(exploded, genes)  # LIANA: drop interactions with a subunit absent from the data
        complexes = pd.Index(pd.unique(pd.concat([res["ligand_complex"], res["receptor_complex"]])))
        return cls(interaction=pd.factorize(res["interaction"])[0], ligand=genes.get_indexer(res["ligand"]),
                   receptor=genes.get_indexer(res["receptor"]),
                   ligand_complex=complexes.get_indexer(res["ligand_complex"]),
                   receptor_complex=complexes.get_indexer(res["receptor_complex"]),
                   is_complex=res["interaction"].str.contains("_", regex=False).to_numpy(), complexes=complexes)

    @property
    def n_interactions(self) -> int:
        return int(self.interaction.max()) + 1 if len(self.interaction) else 0


def _side_ok(stats: UnitStats, genes: np.ndarray, res: _Resource, expr_prop: float) -> np.ndarray:
    """Groups x interactions: every subunit of one side present in the unit and in >= expr_prop of the group's cells.

    LIANA drops genes that no cell of the unit expresses before filtering the resource, so their
    interactions never pass, even with ``expr_prop=0``.
    """
    failing = (stats.props[:, genes] < expr_prop) | ~stats.present[genes][None, :]
    count = np.zeros((res.n_interactions, stats.props.shape[0]), dtype=np.int64)
    np.add.at(count, res.interaction, failing.T.astype(np.int64))
    return count.T == 0


def _long_rows(unit: int, stats: UnitStats, res: _Resource, group_codes: np.ndarray,
               expr_prop: float) -> dict[str, np.ndarray]:
    """The exploded rows of one unit whose interaction passes ``expr_prop`` (all others LIANA drops anyway)."""
    ok_l = _side_ok(stats, res.ligand, res, expr_prop)
    ok_r = _side_ok(stats, res.receptor, res, expr_prop)
    src, tgt, keep = np.nonzero(ok_l[:, None, :] & ok_r[None, :, :])
    order = np.argsort(res.interaction, kind="stable")  # rows of each interaction, contiguous
    starts = np.searchsorted(res.interaction[order], np.arange(res.n_interactions))
    n_rows = np.bincount(res.interaction, minlength=res.n_interactions)[keep]
    offsets = np.arange(n_rows.sum()) - np.repeat(np.cumsum(n_rows) - n_rows, n_rows)
    rows = order[np.repeat(starts[keep], n_rows) + offsets]
    s, t = np.repeat(src, n_rows), np.repeat(tgt, n_rows)
    lig, rec = res.ligand[rows], res.receptor[rows]
    return {
        UNIT: np.full(len(rows), unit), "source": group_codes[s], "target": group_codes[t],
        "ligand_complex": res.ligand_complex[rows], "receptor_complex": res.receptor_complex[rows],
        "ligand_means": stats.means[s, lig], "ligand_props": stats.props[s, lig],
        "receptor_means": stats.means[t, rec], "receptor_props": stats.props[t, rec],
        "complex": res.is_complex[rows],
    }


def lr_table(units: dict[str, UnitStats], exploded: pd.DataFrame, genes: pd.Index, *,
             expr_prop: float) -> pd.DataFrame:
    """One long table of every unit's interactions passing ``expr_prop``, scored with CellPhoneDB's lr_means.

    ``genes`` names the columns of the units' statistics. Columns: ``UNIT`` and :data:`COLUMNS`;
    rows of a unit sorted by ``lr_means`` (largest first), as LIANA orders them.
    """
    import liana as li
    from liana.resource._reassemble_complexes import _filter_reassemble_complexes

    res = _Resource.of(exploded, genes)
    group_names = pd.Index(pd.unique(np.concatenate([np.asarray(u.groups, dtype=object) for u in units.values()])))
    columns = [*_KEYS, "ligand_means", "ligand_props", "receptor_means", "receptor_props"]
    parts = [_long_rows(unit, stats, res, group_names.get_indexer(stats.groups), expr_prop)
             for unit, stats in enumerate(units.values()) if res.n_interactions]
    if parts:
        long = pd.DataFrame({c: np.concatenate([p[c] for p in parts]) for c in [*columns, "complex"]})
    else:
        long = pd.DataFrame({c: np.zeros(0, dtype=np.int64 if c in _KEYS else float) for c in columns})
        long["complex"] = np.zeros(0, dtype=bool)
    # single-gene interactions have one row per key and pass the filter unchanged: LIANA's complex
    # rules only change the rows of complexes, which are reassembled by LIANA's own function
    complex_rows = long[long["complex"]].drop(columns="complex")
    if len(complex_rows):
        complex_rows = _filter_reassemble_complexes(complex_rows, _key_cols=_KEYS, expr_prop=expr_prop,
                                                    complex_cols=list(li.mt.cellphonedb.complex_cols))
    table = pd.concat([long.loc[~long["complex"], columns], complex_rows[columns]], ignore_index=True)
    table["lr_means"] = li.mt.cellphonedb.fun(x=table, perm_stats=None)[0] if len(table) else np.zeros(0)
    table = table.sort_values([UNIT, "lr_means"], ascending=[True, False], kind="stable").reset_index(drop=True)
    table[UNIT] = np.asarray(list(units), dtype=object)[table[UNIT].to_numpy(int)]
    for side in ("source", "target"):
        table[side] = group_names.to_numpy()[table[side].to_numpy(int)]
    for side in ("ligand_complex", "receptor_complex"):
        table[side] = res.complexes.to_numpy()[table[side].to_numpy(int)]
    return table[[UNIT, *COLUMNS]]


def unit_stats(sums: np.ndarray, expressing: np.ndarray, n_cells: np.ndarray, codes: dict[str, np.ndarray],
               groups: dict[str, list[str]], rest: dict[str, int] | None = None) -> dict[str, UnitStats]:
    """Per unit, the means / fractions of its groups (rows ``codes[unit]`` of the sums).

    ``rest[unit]``: the row summing the unit's other cells (groups too small to score), which count towards the
    genes the unit expresses at all.
    """
    out = {}
    for unit, rows in codes.items():
        n = n_cells[rows][:, None]
        totals = sums[rows].sum(axis=0) + (sums[rest[unit]] if rest is not None else 0.0)
        out[unit] = UnitStats(groups=list(groups[unit]), means=sums[rows] / n, props=expressing[rows] / n,
                              present=totals > 0)
    return out
