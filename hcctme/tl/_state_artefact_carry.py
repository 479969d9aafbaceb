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
   cells; one that flags at least :data:`~hcctme._constants.STATE_ARTEFACT_CARRY_VOTE_CELLS`
   chooses genes too, which count only towards the agreed genes of step 3.
2. **Genes.** The (at most :data:`~hcctme._constants.STATE_CARRY_GENES`) genes whose AUROC of the
   column's flagged cells against the context's clean cells (flagged by no column) reaches
   :data:`~hcctme._constants.STATE_CARRY_AUROC` (none when fewer than
   :data:`~hcctme._constants.STATE_CARRY_MIN_GENES`), leaving out the signature genes (up and
   down) of the context's states: a gene a state is called on is no evidence of an artefact, so a
   state that raises a few of an artefact list's genes does not make its cells artefacts. As for
   the carried state scores, the genes are chosen twice: the second time against the clean cells
   below the midpoint of the first score (the escaped artefact cells among the clean ones do not
   dilute the AUROC).
3. **Agreed genes** (:func:`consensus`, :func:`plan`). An artefact programme (stress, another
   lineage's ambient RNA) moves the same genes in every population; genes only one population
   chooses may be one of its states' (generator, Smart-seq seed 200: the neutrophils' stress list
   flagged PMN-MDSC cells and was carried to 12 genes, 1 of them chosen elsewhere; read alone they
   flagged 62 clean PMN-MDSC cells). The genes of a column that two or more, and at least half, of
   the populations that chose genes for it chose are its agreed genes (noisy 10x seed 701: the
   ambient list flagged 20 or more cells in the macrophages only, 10 and 17 in two more populations).
   A population reads the column alone on those of its own genes that are agreed, when at least
   :data:`~hcctme._constants.STATE_CARRY_ALONE_GENES`; otherwise on its own genes averaged with the
   list. A population where the column flags too few cells to read its own genes reads it alone on
   the agreed genes, its states' genes left out, when at least that many remain. (Doublets 10x seed 701:
   the hepatocyte-ambient list flagged 11 of the macrophages and 2 of the neutrophils, and 56 of 95
   and 22 of 47 ambient cells were called a state at a mean confidence of 0.98. Wu 2021: the
   lipid-associated macrophages alone carried the list, to 3 genes, which read in the CAFs flagged
   128 of them.)
4. **Score and rule.** The carried score is the mean log-normalised expression of those genes,
   centred within each sample, made a robust z against the clean cells (median / MAD), read alone
   or averaged with the column's own robust z (two reads of one programme) as step 3 says. Either
   is a new artefact column ``"<column>_carried"`` read by the same two-component rule
   (:func:`hcctme.tl._state_artefacts.column_flags`): its flags enter the cells' ``artefact`` column
   and ``flagged_by`` counts, and for the cells the lists left clean its probability replaces the
   list's in ``prod(1 - p)``: one programme read twice counts once, by its better read. (Multiplying
   both made the calls underconfident, ECE 0.021 -> 0.039 at 10x over 2 generator seeds; keeping the
   list's probability and adding the carried one only where it flags, 0.033, and 0.050 on the
   Smart-seq cohort of the slow generator test, where the replaced probability gives 0.030.) (The
   carried score alone, on the noisy generator cohort: as many clean cells as stressed ones among the
   cells it adds where it reads 3-5 genes, e.g. KLF2, a naive T-cell gene, in CD8 T cells; averaged
   with the list's own score, a sixth. With 10 or more agreed genes the average lets a weak list hide
   the programme: doublets 10x seed 701, CD8 T cells, 23 hepatocyte genes alone flag 125 of 140 ambient
   cells and 2 of 827 clean ones, averaged with the list 70 and none.)

``tl.call_states`` chooses each population's genes (:func:`choose`) when it reads the population's
expression for its self-training, keeping the expression of the genes chosen, and carries the
artefact columns (:func:`carry`) after every population is self-trained (a population that reads
genes it did not choose is read again): the agreed genes need every population's choice, and the
self-training keeps the cells the columns flag (taking them out flips its cluster seeding on knife
edges); the flagged cells lose their call afterwards. Backed data: the genes are
those the chunked reader keeps (the population's most variable ones).

Limits: the carried genes are learnt from the cells the list flags, so an artefact the list
flags in fewer than 10 cells of every population but one is carried only in that one (averaged
with the list); a state programme that shares genes with an artefact programme beyond the library's
signature genes can still be carried into the artefact score of its own population.
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
    STATE_ARTEFACT_CARRY_VOTE_CELLS,
    STATE_ARTEFACT_Z,
    STATE_CARRY_ALONE_GENES,
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
    record: dict[str, dict[str, Any]] = field(default_factory=dict)  # column -> genes, cells, alone, borrowed


def eligible(columns: Sequence[str], references: Mapping[str, float], flag_columns: Sequence[str]) -> list[str]:
    """The artefact columns whose flagged cells are carried: not foreign markers, library size or flags."""
    skip = {*references, *flag_columns, _artefacts.LIBRARY_SIZE}
    return [c for c in columns if c not in skip]


@dataclass(frozen=True)
class Lists:
    """A context's scores of its eligible artefact columns and their first-pass read (:func:`read_lists`)."""

    columns: list[str]  # the eligible artefact columns (:func:`eligible`)
    values: np.ndarray  # the cells' scores (cells x columns)
    flags: np.ndarray  # the two-component rule's flags (cells x columns, :func:`~._state_artefacts.column_flags`)
    p: np.ndarray  # its artefact probabilities (cells x columns)


def read_lists(values: np.ndarray, columns: Sequence[str], *, z_max: float = STATE_ARTEFACT_Z) -> Lists:
    """The artefact ``columns``' scores (cells x columns) with each column's flags and probabilities, fitted once."""
    values = np.asarray(values, dtype=float)
    flags, p = np.zeros(values.shape, dtype=bool), np.zeros(values.shape)
    for j in range(len(columns)):
        flags[:, j], p[:, j] = _artefacts.column_flags(values[:, j], z_max)
    return Lists(list(columns), values, flags, p)


@dataclass(frozen=True)
class Chosen:
    """The genes one column was carried to in one context, and the cells it flags there."""

    genes: list[str]
    cells: int


@dataclass(frozen=True)
class Read:
    """How one artefact column is carried in one context: its genes, read alone or averaged with the list."""

    genes: tuple[str, ...]
    alone: bool
    borrowed: bool  # the genes other contexts chose (the column flags too few of this context's cells)


def choose(X: sp.csr_matrix, lists: Lists, flagged: np.ndarray, genes: pd.Index, excluded: Sequence[str],
           samples: np.ndarray, *, min_cells: int = STATE_ARTEFACT_CARRY_VOTE_CELLS, n_genes: int = STATE_CARRY_GENES,
           min_genes: int = STATE_CARRY_MIN_GENES, auroc: float = STATE_CARRY_AUROC, random_state: int = 0
           ) -> dict[str, Chosen]:
    """Column -> the genes that separate the cells it flags from the context's clean cells, and those cells' number.

    ``X``: the cells' log-normalised expression (cells x ``genes``); ``lists``: their scores of the
    eligible artefact columns and those columns' flags (:func:`read_lists`); ``flagged``: the
    first pass's flags (the column that flagged each cell, ``""`` when none); ``excluded``: the
    signature genes of the context's states; ``samples``: each cell's sample. Columns flagging fewer
    than ``min_cells`` cells (:data:`~hcctme._constants.STATE_ARTEFACT_CARRY_VOTE_CELLS`: they count
    towards the agreed genes, :func:`plan`), or whose cells fewer than ``min_genes`` genes separate,
    are left out (steps 1-2).
    """
    clean = np.flatnonzero(flagged == "")
    if clean.size < min_cells:
        return {}
    names = np.asarray(genes, dtype=str)
    allowed = ~np.isin(names, list(excluded))
    codes = _codes(samples)
    out: dict[str, Chosen] = {}
    for j, column in enumerate(lists.columns):
        mine = np.flatnonzero(lists.flags[:, j] & (flagged != ""))
        if mine.size < min_cells:
            continue
        chosen = _genes(X, mine, clean, allowed, n_genes, min_genes, auroc, random_state)
        if chosen is None:
            continue
        first = _score(X, chosen, codes)
        below = clean[first[clean] < _specificity.midpoint(first, mine, clean)]
        second = (_genes(X, mine, below, allowed, n_genes, min_genes, auroc, random_state)
                  if below.size >= min_cells else None)
        out[column] = Chosen([str(g) for g in names[chosen if second is None else second]], int(mine.size))
    return out


def consensus(chosen: Mapping[str, Mapping[str, Chosen]], *, n_genes: int = STATE_CARRY_GENES
              ) -> dict[str, list[str]]:
    """Column -> the genes that two or more, and at least half, of the contexts that chose genes for it chose (step 3).

    ``chosen``: context -> column -> its genes (:func:`choose`). Genes chosen by more contexts come
    first, at most ``n_genes``.
    """
    lists: dict[str, list[Sequence[str]]] = {}
    for by_column in chosen.values():
        for column, choice in by_column.items():
            lists.setdefault(column, []).append(choice.genes)
    out: dict[str, list[str]] = {}
    for column, votes in lists.items():
        counts = pd.Series([g for genes in votes for g in genes], dtype=object).value_counts(sort=False)
        agreed = counts[(counts >= 2) & (2 * counts >= len(votes))]
        if agreed.size:
            out[column] = sorted(agreed.index, key=lambda g: (-agreed[g], g))[:n_genes]
    return out


def plan(chosen: Mapping[str, Chosen], agreed: Mapping[str, Sequence[str]], columns: Sequence[str],
         excluded: Sequence[str], *, min_cells: int = STATE_ARTEFACT_CARRY_MIN_CELLS,
         alone_genes: int = STATE_CARRY_ALONE_GENES) -> dict[str, Read]:
    """How each of a context's ``columns`` is carried (steps 3-4).

    ``chosen``: the context's genes per column (:func:`choose`); ``agreed``: the genes the contexts
    agree on (:func:`consensus`); ``excluded``: the signature genes of the context's states. A
    column that flags at least ``min_cells`` cells here (its own genes) is read alone on those of
    its genes the contexts agree on, when at least ``alone_genes``, else on all its own genes
    averaged with the list; any other column (fewer cells: its genes only counted towards the
    agreement) is read alone on the agreed genes, the context's state genes left out, when at least
    ``alone_genes`` remain.
    """
    own = {column: choice.genes for column, choice in chosen.items() if choice.cells >= min_cells}
    left_out = set(excluded)
    out: dict[str, Read] = {}
    for column in columns:
        shared = set(agreed.get(column, ()))
        if column in own:
            both = tuple(g for g in own[column] if g in shared)
            out[column] = (Read(both, True, False) if len(both) >= alone_genes
                           else Read(tuple(own[column]), False, False))
            continue
        lent = tuple(g for g in agreed.get(column, ()) if g not in left_out)
        if len(lent) >= alone_genes:
            out[column] = Read(lent, True, True)
    return out


def carry(X: sp.csr_matrix, lists: Lists, flagged: np.ndarray, genes: pd.Index, samples: np.ndarray,
          reads: Mapping[str, Read], *, z_max: float = STATE_ARTEFACT_Z,
          min_cells: int = STATE_ARTEFACT_CARRY_MIN_CELLS, alone_genes: int = STATE_CARRY_ALONE_GENES) -> Carried:
    """The carried artefact flags of one context's cells (step 4; arguments as for :func:`choose`).

    ``reads``: how each column is carried (:func:`plan`); columns without one are not. A column read
    alone needs ``alone_genes`` of its genes in ``genes`` (backed data keep the most variable ones).
    """
    n = X.shape[0]
    new = np.full(n, "", dtype=object)
    keep = np.ones(n)
    record: dict[str, dict[str, Any]] = {}
    clean = np.flatnonzero(flagged == "")
    names = np.asarray(genes, dtype=str)
    codes = _codes(samples)
    for j, column in enumerate(lists.columns):
        read = reads.get(column)
        if read is None or clean.size < min_cells:
            continue
        chosen = np.flatnonzero(np.isin(names, list(read.genes)))
        if chosen.size == 0 or (read.alone and chosen.size < alone_genes):
            continue
        carried_z = _standard(_score(X, chosen, codes), clean)
        score = carried_z if read.alone else 0.5 * (carried_z + _standard(lists.values[:, j], clean))
        flags, p = _artefacts.column_flags(score, z_max)
        name = f"{column}{SUFFIX}"
        added = flags & (flagged == "") & (new == "")
        new[added] = name
        # a cell the lists left clean is read on the carried column instead of the list's (one programme, read
        # twice, counts once); its calibrated confidence is otherwise discounted for an artefact it does not carry
        keep *= np.divide(1.0 - p, 1.0 - lists.p[:, j], out=np.ones(n), where=flagged == "")
        record[name] = {"genes": [str(g) for g in names[chosen]], "flagged": int(flags.sum()),
                        "added": int(added.sum()), "alone": read.alone, "borrowed": read.borrowed}
    return Carried(flagged=new, not_artefact=keep, record=record)


def _codes(samples: np.ndarray) -> np.ndarray:
    return np.unique(np.asarray(samples).astype(str), return_inverse=True)[1]


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
    centre, scale = _artefacts.robust_centre(x[clean], floor=_artefacts._spread(x))
    return (x - centre) / scale
