"""Carried artefact scores for ``tl.call_states``: the artefact programme read through the genes it moves.

The library's artefact lists read the data's artefact programmes weakly, the way a 3-gene panel
reads a state's programme (a dissociation-stress list of 140 genes reads a stress programme of
other immediate-early and heat-shock genes; an ambient profile moves the whole hepatocyte
transcriptome, of which the ambient list reads a few genes). The cells the artefact rule
(:mod:`hcctme.tl._state_artefacts`) flags on a column mark the programme; the genes that separate
them from the clean cells carry it to the artefact cells the list scores low:

1. **Columns.** Per context, each artefact column (the library's ``"artefacts"`` collection and
   the user's extra score columns; never the library size, a foreign-lineage marker or a user's
   flag column) that flags at least :data:`~hcctme._constants.STATE_ARTEFACT_CARRY_MIN_CELLS`
   cells.
2. **Genes.** The (at most :data:`~hcctme._constants.STATE_CARRY_GENES`) genes whose AUROC of the
   column's flagged cells against the context's clean cells (flagged by no column) reaches
   :data:`~hcctme._constants.STATE_CARRY_AUROC` (none when fewer than
   :data:`~hcctme._constants.STATE_CARRY_MIN_GENES`), leaving out the signature genes (up and
   down) of the context's states: a gene a state is called on is no evidence of an artefact, so a
   state that raises a few of an artefact list's genes does not make its cells artefacts. As for
   the carried state scores, the genes are chosen twice: the second time against the clean cells
   below the midpoint of the first score (the escaped artefact cells among the clean ones do not
   dilute the AUROC).
3. **Score and rule.** The carried score is the mean log-normalised expression of those genes,
   centred within each sample. It and the column's own score are two reads of one programme: each
   is made a robust z against the clean cells (median / MAD) and their mean is a new artefact
   column ``"<column>_carried"`` read by the same two-component rule
   (:func:`hcctme.tl._state_artefacts.column_flags`): its flags enter the cells' ``artefact`` column
   and ``flagged_by`` counts, and for the cells the lists left clean its probability replaces the
   list's in ``prod(1 - p)``: one programme read twice counts once, by its better read. (Multiplying
   both made the calls underconfident, ECE 0.021 -> 0.039 at 10x over 2 generator seeds; keeping the
   list's probability and adding the carried one only where it flags, 0.033, and 0.050 on the
   Smart-seq cohort of the slow generator test, where the replaced probability gives 0.030.) (The
   carried score alone, on the noisy generator cohort: as many clean cells as stressed ones among the
   cells it adds where it reads 3-5 genes, e.g. KLF2, a naive T-cell gene, in CD8 T cells; averaged
   with the list's own score, a sixth.)

``tl.call_states`` reads each population's expression once for its self-training and carries the
artefact columns after it: the self-training keeps the cells they flag (taking them out flips its
cluster seeding on knife edges), and the flagged cells lose their call afterwards. Backed data:
the genes are those the chunked reader keeps (the population's most variable ones).

Limits: the carried genes are learnt from the cells the list flags, so an artefact the list
flags in too few cells of a context is not carried there; a state programme that shares genes with
an artefact programme beyond the library's signature genes can still be carried into the
artefact score.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp

from hcctme._constants import (
    STATE_ARTEFACT_CARRY_MIN_CELLS,
    STATE_ARTEFACT_Z,
    STATE_CARRY_AUROC,
    STATE_CARRY_GENES,
    STATE_CARRY_MIN_GENES,
)
from hcctme.tl import _state_artefacts as _artefacts
from hcctme.tl import _state_specificity as _specificity

SUFFIX = "_carried"  # name of a carried artefact column: "<column>_carried"


@dataclass
class Carried:
    """The carried artefact columns of one context (arrays over the context's cells)."""

    flagged: np.ndarray  # carried column that flagged the cell, "" when none (or when already flagged)
    not_artefact: np.ndarray  # factor on the cell's probability of not being an artefact (lists' read -> carried)
    record: dict[str, dict[str, Any]] = field(default_factory=dict)  # column -> genes, cells flagged


def eligible(columns: Sequence[str], references: Mapping[str, float], flag_columns: Sequence[str]) -> list[str]:
    """The artefact columns whose flagged cells are carried: not foreign markers, library size or flags."""
    skip = {*references, *flag_columns, _artefacts.LIBRARY_SIZE}
    return [c for c in columns if c not in skip]


def carry(X: sp.csr_matrix, values: np.ndarray, columns: Sequence[str], flagged: np.ndarray, genes: pd.Index,
          excluded: Sequence[str], samples: np.ndarray, *, z_max: float = STATE_ARTEFACT_Z,
          min_cells: int = STATE_ARTEFACT_CARRY_MIN_CELLS, n_genes: int = STATE_CARRY_GENES,
          min_genes: int = STATE_CARRY_MIN_GENES, auroc: float = STATE_CARRY_AUROC,
          random_state: int = 0) -> Carried:
    """The carried artefact flags of one context's cells (module docstring).

    ``X``: the cells' log-normalised expression (cells x ``genes``); ``values``: their scores of the
    artefact ``columns`` (cells x columns, eligible ones only: :func:`eligible`); ``flagged``: the
    first pass's flags (the column that flagged each cell, ``""`` when none); ``excluded``: the
    signature genes of the context's states; ``samples``: each cell's sample.
    """
    n = X.shape[0]
    new = np.full(n, "", dtype=object)
    keep = np.ones(n)
    record: dict[str, dict[str, Any]] = {}
    clean = np.flatnonzero(flagged == "")
    allowed = ~np.isin(np.asarray(genes, dtype=str), list(excluded))
    _, codes = np.unique(np.asarray(samples).astype(str), return_inverse=True)
    for j, column in enumerate(columns):
        listed, p_list = _artefacts.column_flags(values[:, j], z_max)
        mine = np.flatnonzero(listed & (flagged != ""))
        if mine.size < min_cells or clean.size < min_cells:
            continue
        chosen = _genes(X, mine, clean, allowed, n_genes, min_genes, auroc, random_state)
        if chosen is None:
            continue
        first = _score(X, chosen, codes)
        below = clean[first[clean] < _specificity.midpoint(first, mine, clean)]
        second = (_genes(X, mine, below, allowed, n_genes, min_genes, auroc, random_state)
                  if below.size >= min_cells else None)
        chosen = chosen if second is None else second
        score = 0.5 * (_standard(_score(X, chosen, codes), clean) + _standard(values[:, j], clean))
        flags, p = _artefacts.column_flags(score, z_max)
        name = f"{column}{SUFFIX}"
        added = flags & (flagged == "") & (new == "")
        new[added] = name
        # a cell the lists left clean is read on the carried column instead of the list's (one programme, read
        # twice, counts once); its calibrated confidence is otherwise discounted for an artefact it does not carry
        keep *= np.divide(1.0 - p, 1.0 - p_list, out=np.ones(n), where=flagged == "")
        record[name] = {"genes": [str(g) for g in np.asarray(genes)[chosen]], "flagged": int(flags.sum()),
                        "added": int(added.sum())}
    return Carried(flagged=new, not_artefact=keep, record=record)


def _genes(X: sp.csr_matrix, mine: np.ndarray, reference: np.ndarray, allowed: np.ndarray, n_genes: int,
           min_genes: int, threshold: float, random_state: int) -> np.ndarray | None:
    """Columns of the genes that separate ``mine`` from ``reference`` best (AUROC >= threshold), or None."""
    chosen = np.sort(_specificity.separating_genes(X, mine, reference, n_genes=n_genes, threshold=threshold,
                                                   random_state=random_state, allowed=allowed))
    return chosen if chosen.size >= min_genes else None


def _score(X: sp.csr_matrix, chosen: np.ndarray, codes: np.ndarray) -> np.ndarray:
    """Mean expression of the ``chosen`` columns, centred within each sample (``codes``)."""
    return _specificity.sample_centred_mean(X, chosen, codes, np.maximum(np.bincount(codes), 1))


def _standard(x: np.ndarray, clean: np.ndarray) -> np.ndarray:
    """``x`` as a robust z against the ``clean`` cells (median / MAD, the MAD floored at 1 % of the range)."""
    centre = float(np.median(x[clean]))
    return (x - centre) / max(1.4826 * float(np.median(np.abs(x[clean] - centre))), _artefacts._spread(x))
