"""Other populations' genes learnt from the data: heterotypic doublets for ``tl.call_states``.

A doublet of a cell with a cell of another lineage holds that cell's transcripts: the genes the other
population expresses and the cell's own population does not are detected in it about as often as in
that population's own cells, whatever share of the doublet's counts they make. The library's
``"cell_type_markers"`` read a lineage through fixed lists, which a dataset may express weakly (on the
evaluation generator, whose lineage genes are not the library's, the T-cell marker score is 0.30 in
clean fibroblasts and 0.43 in T cells; 33 of 43 fibroblast-T-cell doublets of one cohort kept a call).
The annotated populations name the genes instead:

1. **Detection.** Each gene's detection rate (share of cells with a non-zero value) in every
   population (a context of :data:`hcctme.tl._contexts.LINEAGES`) with at least
   :data:`~hcctme._constants.STATE_MIN_REFERENCE_CELLS` cells.
2. **Genes.** For a population with states (the host) and a population of another lineage: the genes
   whose detection in the other population exceeds the host's by at least
   :data:`~hcctme._constants.STATE_GENES_OF_GAP`, not a signature gene of the host's states (a
   state's genes are no evidence of another population), the (at most
   :data:`~hcctme._constants.STATE_GENES_OF_MAX`) widest gaps; none when fewer than
   :data:`~hcctme._constants.STATE_GENES_OF_MIN` qualify. Populations of one lineage (CD8 and
   CD4 T cells, macrophages and monocytes) do not read each other: cells between them are states.
3. **Score.** A cell's share of those genes it detects minus its share of matched control genes
   (per chosen gene the five genes detected about as often in the host, and as often in both
   populations), over the same difference in the other population's own cells. A deeper cell
   detects more of every gene; the controls take that out. About 0 in the host's clean cells, 1 in
   the other population's, and in between toward 1 in a doublet of the two (on the generator, whose
   every gene is detected in 20-40 % of every population, about 0.7).
4. **Rule.** Read after the mixture and the self-training, which keep these cells (as the carried
   artefact columns are): among the host's cells no other artefact column flagged, a cell is a
   doublet (``"genes_of_<population>"``, its call dropped) when its score lies more than
   :data:`~hcctme._constants.STATE_GENES_OF_Z` robust sd above the median and at least
   :data:`~hcctme._constants.STATE_GENES_OF_WAY` of the way from it to the other population's own
   level; as for the foreign-lineage markers, a column that would flag more than
   :data:`~hcctme._constants.STATE_MAX_FOREIGN_SHARE` of the cells is not used (a state sharing the
   genes), and together the columns keep at most that share of flags.

Limits: a doublet of two cells of one lineage (two T cells, a macrophage and a neutrophil) is not seen,
nor one with a population of fewer than 20 cells or without genes of its own in the data; a state that
detects many genes of another population (phagocytosed cells' transcripts, cells between two annotated
lineages) reads as a doublet where it is rare, and is left alone where it is common; ambient RNA of
another population is flagged with the doublets where it is detected.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp

from hcctme import _validate
from hcctme._constants import (
    STATE_GENES_OF_GAP,
    STATE_GENES_OF_MAX,
    STATE_GENES_OF_MIN,
    STATE_GENES_OF_WAY,
    STATE_GENES_OF_Z,
    STATE_MIN_REFERENCE_CELLS,
    Defaults,
)
from hcctme.tl import _contexts
from hcctme.tl import _state_artefacts as _artefacts
from hcctme.tl import _state_order as _order

PREFIX = "genes_of_"  # artefact column "genes_of_<population>", e.g. "genes_of_cd8_t"


def detection(matrix: Any, codes: np.ndarray, n_groups: int, *, chunk_size: int = Defaults.CHUNK_SIZE
              ) -> tuple[np.ndarray, np.ndarray]:
    """Share of each group's cells with a non-zero value of each gene (``n_groups`` x genes), and each cell's sum.

    ``codes``: cells x group memberships (bool, a cell may belong to several groups). Read in row
    blocks (backed and dask matrices too); the row sums are the library sizes where ``matrix`` holds
    counts (:func:`hcctme.tl._state_artefacts.totals`), read in the same pass.
    """
    counts = np.zeros((n_groups, matrix.shape[1]), dtype=np.float64)
    sums = np.zeros(matrix.shape[0], dtype=np.float64)
    for start, stop, block in _validate.row_blocks(matrix, chunk_size=chunk_size):
        sums[start:stop] = _artefacts.row_sums(block)
        detected = sp.csr_matrix(block, dtype=np.float64)
        detected.data = (detected.data != 0).astype(np.float64)
        counts += np.asarray((sp.csr_matrix(codes[start:stop].T.astype(np.float64)) @ detected).todense())
    sizes = np.maximum(codes.sum(axis=0), 1)
    return counts / sizes[:, None], sums


@dataclass(frozen=True)
class Read:
    """How a context reads another population: its genes, their matched control genes and the scale."""

    positions: np.ndarray  # the other population's genes (positions in var_names)
    controls: np.ndarray  # genes detected as often in the context as those and no more in the other population
    scale: float  # the other population's own score (detection of the genes minus the controls'): its level 1


def choose(host: np.ndarray, own: np.ndarray, excluded: np.ndarray, name_rank: np.ndarray | None = None
           ) -> np.ndarray:
    """Positions of the genes that mark a population (detection ``own``) in a context (``host``), step 2.

    ``name_rank``: each gene's rank by name, which breaks ties (by position where None), so that the order of the
    matrix's columns does not change the genes chosen.
    """
    gap = own - host
    chosen = np.flatnonzero((gap >= STATE_GENES_OF_GAP) & ~excluded)
    chosen = chosen[_ordered(-gap[chosen], chosen, name_rank)][:STATE_GENES_OF_MAX]
    return np.sort(chosen) if chosen.size >= STATE_GENES_OF_MIN else np.zeros(0, dtype=np.int64)


def controls(host: np.ndarray, own: np.ndarray, chosen: np.ndarray, excluded: np.ndarray,
             name_rank: np.ndarray | None = None) -> np.ndarray:
    """For each chosen gene the genes detected about as often in the context and as often in the other population.

    A deeper cell detects more of every gene; the controls' detection is what a clean cell of its
    depth detects of genes like the chosen ones (step 3). Ties: as in :func:`choose`.
    """
    candidates = np.flatnonzero((np.abs(own - host) < _CONTROL_GAP) & ~excluded)
    candidates = np.setdiff1d(candidates, chosen)
    if candidates.size == 0:
        return candidates
    nearest = [candidates[_ordered(np.abs(host[candidates] - host[g]), candidates, name_rank)[:_CONTROLS]]
               for g in chosen]
    return np.unique(np.concatenate(nearest))


def _ordered(key: np.ndarray, positions: np.ndarray, name_rank: np.ndarray | None) -> np.ndarray:
    """The order of ``key`` (increasing), ties broken by the genes' ``name_rank`` (by position where None)."""
    if name_rank is None:
        return np.argsort(key, kind="stable")
    return np.lexsort((name_rank[positions], key))


_CONTROL_GAP = 0.1  # a control gene's detection differs by less than this between the context and the population
_CONTROLS = 5  # control genes per chosen gene


def plan(matrix: Any, contexts: np.ndarray, states: Mapping[str, Sequence[str]],
         genes: Mapping[str, Sequence[str]], var_names: pd.Index
         ) -> tuple[dict[str, dict[str, Read]], np.ndarray | None]:
    """Context -> other population -> :class:`Read` (steps 1-2), and the row sums of :func:`detection`.

    The row sums are None where no population reads another (the matrix is not read).
    """
    sizes = pd.Series(contexts).value_counts()
    others = sorted(str(c) for c, n in sizes.items()
                    if n >= STATE_MIN_REFERENCE_CELLS and _contexts.LINEAGES.get(c, "") != "")
    hosts = [c for c in states if c in sizes.index and _contexts.LINEAGES.get(c, "") != ""]
    if not others or not hosts:
        return {}, None
    groups = list(dict.fromkeys([*others, *hosts]))
    rates, sums = detection(matrix, np.column_stack([contexts == g for g in groups]), len(groups))
    names = pd.Index(var_names.astype(str))
    name_rank = _order.rank(names)
    out: dict[str, dict[str, Read]] = {}
    for host in hosts:
        excluded = names.isin([g for s in states[host] for g in genes.get(s, ())])
        here = rates[groups.index(host)]
        for other in others:
            if _contexts.LINEAGES[other] == _contexts.LINEAGES[host]:
                continue
            own = rates[groups.index(other)]
            chosen = choose(here, own, excluded, name_rank)
            if chosen.size == 0:
                continue
            matched = controls(here, own, chosen, excluded, name_rank)
            scale = float(own[chosen].mean() - (own[matched].mean() if matched.size else 0.0))
            if scale > 0:
                out.setdefault(host, {})[other] = Read(chosen, matched, scale)
    return out, sums


def _gene_sets(reads: Mapping[str, Read], n_genes: int) -> tuple[sp.csr_matrix, np.ndarray]:
    """Genes x sets (each read's genes, then its controls) counting each gene's occurrences, and each set's size."""
    sets = [cols for read in reads.values() for cols in (read.positions, read.controls)]
    sizes = np.array([len(cols) for cols in sets])
    rows = np.concatenate([np.asarray(cols, dtype=np.int64) for cols in sets])
    which = np.repeat(np.arange(len(sets)), sizes)
    membership = sp.csr_matrix((np.ones(rows.size), (rows, which)), shape=(n_genes, len(sets)))  # duplicates summed
    return membership, sizes.astype(np.float64)


def _shares(block: sp.csr_matrix, membership: sp.csr_matrix, sizes: np.ndarray) -> np.ndarray:
    """Cells x sets: each cell's share of each gene set it detects (non-zero values; 0 for an empty set).

    Counts of detected genes, exact in float64, divided by the set's size: the share of the set's columns of
    ``block`` that are non-zero, for all sets in one sparse product.
    """
    detected = sp.csr_matrix(((block.data != 0).astype(np.float64), block.indices, block.indptr), shape=block.shape)
    counts = (detected @ membership).toarray()
    return np.divide(counts, sizes, out=np.zeros_like(counts), where=sizes > 0)


def scores(matrix: Any, contexts: np.ndarray, reads: Mapping[str, Mapping[str, Read]], *,
           chunk_size: int = Defaults.CHUNK_SIZE) -> pd.DataFrame:
    """Cells x ``"genes_of_<population>"``: detection of its genes minus their controls', over its own (step 3).

    A cell outside every context that reads a population's column scores 0 in it.
    """
    others = sorted({other for per in reads.values() for other in per})
    out = np.zeros((len(contexts), len(others)), dtype=np.float64)
    sets = {context: _gene_sets(per, matrix.shape[1]) for context, per in reads.items()}
    for start, stop, block in _validate.row_blocks(matrix, chunk_size=chunk_size):
        block = sp.csr_matrix(block)
        for context, per in reads.items():
            rows = np.flatnonzero(contexts[start:stop] == context)
            if rows.size == 0:
                continue
            shares = _shares(block[rows], *sets[context])
            for j, (other, read) in enumerate(per.items()):
                value = (shares[:, 2 * j] - shares[:, 2 * j + 1]) / read.scale
                out[start + rows, others.index(other)] = value
    return pd.DataFrame(out, columns=[PREFIX + other for other in others])


def prepare(m: dict[str, Any], matrix: Any, var_names: pd.Index) -> np.ndarray | None:
    """Choose each context's genes of the other populations and score its cells (in place, steps 1-3).

    ``m["genes_of"]``: the scores (cells x ``"genes_of_<population>"``), context -> the columns it
    reads, and context -> population -> genes (provenance). Returns each cell's row sum where the
    matrix was read for the detection rates (None otherwise), for the library sizes.
    """
    chosen, sums = plan(matrix, m["contexts"], m["states"], m["genes"], var_names)
    values = scores(matrix, m["contexts"], chosen) if chosen else pd.DataFrame(index=range(len(m["contexts"])))
    m["genes_of"] = {
        "values": values,
        "columns": {context: [PREFIX + other for other in sorted(per)] for context, per in chosen.items()},
        "genes": {context: {other: [str(var_names[i]) for i in read.positions] for other, read in per.items()}
                  for context, per in chosen.items()},
    }
    return sums


def flags(values: np.ndarray, columns: Sequence[str], *, max_share: float) -> _artefacts.ContextFlags:
    """Flags of a context's cells not yet artefacts (``values``: those cells x ``columns``), step 4.

    The foreign-lineage markers' rule (:func:`hcctme.tl._state_artefacts.context_flags`, each
    column's own level 1) with a robust z above :data:`~hcctme._constants.STATE_GENES_OF_Z` and
    :data:`~hcctme._constants.STATE_GENES_OF_WAY` of the way to that level; a column flagging more
    than ``max_share`` of the cells is not used, and together the columns keep at most that share of
    flags (the cells furthest toward a population's level).
    """
    return _artefacts.context_flags(np.asarray(values, dtype=float), list(columns), dict.fromkeys(columns, 1.0),
                                    z_max=STATE_GENES_OF_Z, max_foreign_share=max_share, way=STATE_GENES_OF_WAY)
