"""Doublets that neither their library size nor another lineage's markers flag alone (``tl.call_states``).

A doublet holds two cells' transcripts: its library is larger than its sample's cells' and, when its
second cell is of another cell type, it carries that cell type's profile. The artefact rule
(:mod:`hcctme.tl._state_artefacts`) reads each of the two alone, each at a robust z above
:data:`~hcctme._constants.STATE_ARTEFACT_Z`: a doublet at about twice the median library size sits
near two sd of the library size, and half a second cell's transcripts often raise that cell type's
marker score by two sd, so most doublets escape both tests and are called a state (the largest
single part of the wrong calls in the generator's CAFs and macrophages). Here the two pieces of
evidence are summed: per parent population, with the robust z-scores (median / MAD over the
population, as the artefact rule's) of the log library size relative to the cell's sample
(:data:`~hcctme.tl._state_artefacts.LIBRARY_SIZE`) and of each marker score of another cell type
present in the data, a cell is a doublet when, for some marker, both are positive and their
Stouffer sum ``(z_library + z_marker) / sqrt(2)`` exceeds :data:`~hcctme._constants.STATE_DOUBLET_Z`.

The markers are the library's ``"cell_type_markers"`` of every cell type with at least
:data:`~hcctme._constants.STATE_MIN_REFERENCE_CELLS` cells in the data (its context's cells and its
child contexts', :data:`~hcctme._constants.CONTEXT_PARENTS`), other than the population's own
context, its parent and its children: also a sibling of the same lineage (neutrophils for
macrophages, CD4 for CD8 T cells), which the artefact rule leaves out because a marker alone
there often reads a state; the library size is the second, independent piece of evidence a
doublet must show too. As for the artefact rule's foreign markers, the rule is not used in a
population where it would flag more than :data:`~hcctme._constants.STATE_MAX_FOREIGN_SHARE` of
the cells (a larger cell state that shares a marker's genes). It needs raw counts (the library
size); without them nothing is flagged.

It runs after the self-training (:func:`hcctme.tl._call_states._self_train`), as the carried
artefact columns do: the cells it flags lose their call and get artefact probability 1
(``obs["hcctme_state_artefact"]``: ``"library_size+<marker>"``), and the self-training's seeding
is not moved by them.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from hcctme._constants import (
    CONTEXT_PARENTS,
    MARKER_COLLECTION,
    STATE_DOUBLET_Z,
    STATE_MAX_FOREIGN_SHARE,
    STATE_MIN_REFERENCE_CELLS,
)
from hcctme.tl._state_artefacts import LIBRARY_SIZE, robust_z


def markers(columns: pd.Index, library, contexts: np.ndarray, states: list[str]) -> dict[str, list[str]]:
    """Per context with states, the scored marker columns of the other cell types present (module docstring)."""
    contexts = np.asarray(contexts).astype(str)
    scored = [str(c) for c in columns if str(c) in library and library[str(c)].collection == MARKER_COLLECTION]
    present = [c for c in scored if np.sum(_own_cells(library[c].cell_context, contexts)) >= STATE_MIN_REFERENCE_CELLS]
    return {context: [c for c in present if not _related(library[c].cell_context, context)] for context in states}


def _own_cells(context: str, contexts: np.ndarray) -> np.ndarray:
    """Cells of ``context`` or of one of its child contexts."""
    return np.isin(contexts, [context, *(child for child, parent in CONTEXT_PARENTS.items() if parent == context)])


def _related(marker_context: str, context: str) -> bool:
    """Whether a marker of ``marker_context`` marks the population ``context`` itself (same, parent or child)."""
    return marker_context == context or CONTEXT_PARENTS.get(context) == marker_context \
        or CONTEXT_PARENTS.get(marker_context) == context


def flags(library_size: np.ndarray, scores: np.ndarray, columns: list[str], clean: np.ndarray,
          z_max: float = STATE_DOUBLET_Z, max_share: float = STATE_MAX_FOREIGN_SHARE) -> tuple[np.ndarray, bool]:
    """The doublet flags of one population's cells (``"library_size+<marker>"``, ``""``) and whether the rule was used.

    ``library_size``: each cell's :data:`LIBRARY_SIZE` value; ``scores``: cells x marker ``columns``;
    ``clean``: the cells no artefact column flagged (only those can be flagged here). Not used (no
    flags, False) when it would flag more than ``max_share`` of the cells.
    """
    n = library_size.size
    out = np.full(n, "", dtype=object)
    if n == 0 or not columns:
        return out, False
    z_lib = robust_z(library_size)
    z_marker = np.column_stack([robust_z(scores[:, j]) for j in range(len(columns))])
    both = (z_lib[:, None] > 0) & (z_marker > 0)
    combined = np.where(both, (z_lib[:, None] + z_marker) / np.sqrt(2.0), -np.inf)
    hit = clean & (combined.max(axis=1) > z_max)
    if hit.mean() > max_share:
        return out, False
    best = np.asarray(columns, dtype=object)[combined.argmax(axis=1)]
    out[hit] = [f"{LIBRARY_SIZE}+{c}" for c in best[hit]]
    return out, True


def apply(result: Any, m: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Flag each population's doublets (in place on ``result``: artefact, probability, calls, diagnostics).

    ``m``: call_states' inputs (``contexts``, ``values`` with the :data:`LIBRARY_SIZE` column where
    the expression holds raw counts, ``doublet_markers``). Returns, per context with markers, the
    markers read, whether the rule was used there and the cells it flagged (provenance).
    """
    record: dict[str, dict[str, Any]] = {}
    if LIBRARY_SIZE not in m["values"].columns:
        return record
    contexts = m["contexts"]
    size = m["values"][LIBRARY_SIZE].to_numpy(dtype=float)
    for context, columns in m["doublet_markers"].items():
        rows = np.flatnonzero(contexts == context)
        if rows.size == 0 or not columns:
            continue
        found, used = flags(size[rows], m["values"][columns].to_numpy(dtype=float)[rows], columns,
                            result.artefact[rows] == "")
        added = found != ""
        record[context] = {"markers": list(columns), "used": used, "flagged": int(added.sum())}
        result.artefact_probability[rows[added]] = 1.0
        result.set_aside(context, rows, found, {"doublets": int(added.sum())})
    return record
