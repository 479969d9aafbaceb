"""Artefact cells for ``tl.call_states``: dissociation stress, ambient RNA and doublets are "none of these".

A cell is an artefact in a parent population (a context) when one of the context's artefact
scores puts it above the population's *clean* cells:

* **Columns.** The library's ``"artefacts"`` collection (dissociation stress, its 17-gene core,
  hepatocyte ambient RNA), the user's extra columns, the ``"cell_type_markers"`` of lineages other than the
  context's that have at least :data:`~hcctme._constants.STATE_MIN_REFERENCE_CELLS` cells (a
  doublet or ambient RNA carries another lineage's profile), and, where the expression holds raw
  counts, the cell's log library size relative to its sample's median in the context
  (:data:`LIBRARY_SIZE`: a doublet holds two cells' transcripts). Like a foreign-lineage marker, the
  library size is not used in a context where it would flag more than
  :data:`~hcctme._constants.STATE_MAX_FOREIGN_SHARE` of the cells: there it marks a state of larger
  cells (in real tumour data library size differs between states), not doublets.
* **Reference level from the clean cells.** A median / MAD over the whole population is pulled up
  when many cells are artefacts (a quarter of the cells stressed moves the median and widens the
  MAD, and the stressed cells escape). Instead each score gets a two-component normal mixture
  (EM) started from its lower half: the lower component is the clean cells, the upper one the
  artefact cells. When the two are apart (Ashman's D >= :data:`~hcctme._constants.STATE_ARTEFACT_D`,
  BIC better than one normal's by :data:`~hcctme._constants.STATE_ARTEFACT_BIC`, upper share >=
  :data:`~hcctme._constants.STATE_ARTEFACT_MIN_SHARE`), a cell is flagged when its
  posterior of the upper component exceeds 0.5 and it lies at least
  :data:`~hcctme._constants.STATE_ARTEFACT_MIN_Z` sd above the clean mean, or more than
  :data:`~hcctme._constants.STATE_ARTEFACT_Z` sd above it; that posterior is the cell's artefact
  probability. Otherwise (no distinct upper group, e.g. a clean cohort) the rule is the robust z
  (median / MAD) above :data:`~hcctme._constants.STATE_ARTEFACT_Z`, and the probability is 0 or 1.
* **Genes behind a flag.** A column of the library's ``"artefacts"`` collection flags only cells that
  detect at least :data:`~hcctme._constants.STATE_ARTEFACT_MIN_GENES` of its genes (:func:`add_gene_support`):
  in a shallow population a short list's score is zero in most cells, and the cells detecting one or
  two of its genes form an upper component of their own (the demo cohort, with no stress planted: the
  17-gene stress core flagged 158 of 389 neutrophils).
* **Foreign-lineage markers** keep the robust z (median / MAD) above
  :data:`~hcctme._constants.STATE_ARTEFACT_Z` (the doublets and ambient cells they find are a small
  minority; their upper tail is often a state sharing a few of the lineage's genes), must also reach
  a third of the way from the population's median to the marker's median in its own lineage (a
  profile mixed in, not the noise of a score near zero), and are not used in a context where they
  would flag more than
  :data:`~hcctme._constants.STATE_MAX_FOREIGN_SHARE` of the cells (there they mark a state whose
  genes they share), nor in one where the lineage's own median lies within that robust z of the
  population's (:func:`reaches`: there the marker does not tell the lineage's cells from the
  population's, and a flag is the population's upper tail, not a profile mixed in). All of them
  together flag at most that share of a context's cells too: beyond it, the flagged cells furthest
  toward a foreign lineage's own level keep their flags (:func:`strongest_foreign`; in real tumour data
  each of 11-14 markers stayed under the share and together they flagged a fifth to a quarter of some
  populations).

The probability that a cell is not an artefact, ``prod(1 - p_column)`` over the columns used,
multiplies the confidence of its state call (the call can only be right when the cell is not an
artefact); a call whose confidence then falls below ``min_confidence`` is dropped.

Limits: the lower half of a score must be clean cells (with more than about half of a population
stressed, nothing is found); a state whose programme raises an artefact programme's genes in a
distinct group of cells is flagged as that artefact; a doublet of two cells of one lineage is seen
only through its library size, and only where the expression holds raw counts; the detection is only
as good as the artefact signatures (the 140-gene dissociation-stress list dilutes a stress response that raises
only the immediate-early / heat-shock core, which the 17-gene core list reads; a stress programme of other genes
needs your own list through ``artefacts``; with self-training, :mod:`hcctme.tl._state_artefact_carry` carries each
column to the genes its flagged cells raise).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from hcctme import _validate
from hcctme._constants import (
    ARTEFACT_COLLECTION,
    MARKER_COLLECTION,
    STATE_ARTEFACT_BIC,
    STATE_ARTEFACT_D,
    STATE_ARTEFACT_MIN_GENES,
    STATE_ARTEFACT_MIN_SHARE,
    STATE_ARTEFACT_MIN_Z,
    STATE_ARTEFACT_Z,
    STATE_MAX_FOREIGN_SHARE,
    STATE_MIN_REFERENCE_CELLS,
    Defaults,
)
from hcctme.tl import _contexts
from hcctme.tl._state_expression import holds_counts

LIBRARY_SIZE = "library_size"  # the artefact column of the log library size (doublets), where counts exist
FOREIGN_WAY = 1.0 / 3.0  # a foreign-lineage marker's cell lies this share of the way to the lineage's own level
_EM_ITER = 100
_EM_TOL = 1e-6


@dataclass(frozen=True)
class Split:
    """Two-component fit of one artefact score in one context (``distinct``: the upper group is apart)."""

    centre: float
    scale: float
    upper_mean: float
    upper_scale: float
    upper_share: float
    distinct: bool


@dataclass
class ContextFlags:
    """Artefact flags of one context's cells (arrays over those cells)."""

    flagged: np.ndarray  # column that flagged the cell, "" when none
    probability: np.ndarray  # probability that the cell is an artefact
    unused: list[str]  # foreign-lineage markers and the library size not used (they would flag too many cells)
    flagged_by: dict[str, int]  # cells each column flags (a cell can be flagged by several)
    foreign_released: int = 0  # cells whose foreign-lineage flags the joint cap lifted (:func:`strongest_foreign`)
    unreached: list[str] = field(default_factory=list)  # markers not used: lineage level within reach (:func:`reaches`)


def signatures(columns: pd.Index, library, contexts: np.ndarray, states: list[str], extra: list[str]
               ) -> tuple[dict[str, list[str]], dict[str, str]]:
    """Score columns that make a cell "none of these" in each context with states.

    The library's ``"artefacts"`` collection (e.g. dissociation stress, hepatocyte ambient RNA),
    the user's ``extra`` columns, and the ``"cell_type_markers"`` of lineages other than the
    context's (:data:`hcctme.tl._contexts.LINEAGES`) that have at least 20 cells in the data.
    Returns (context -> columns, marker column -> the lineage it marks, for the marker columns used).
    """
    scored = [str(c) for c in columns]
    common = [c for c in scored if c in library and library[c].collection == ARTEFACT_COLLECTION]
    common += [c for c in extra if c not in common]
    lineage_of_cell = np.array([_contexts.LINEAGES.get(c, "") for c in contexts], dtype=object)
    markers = {c: _contexts.LINEAGES[library[c].cell_context] for c in scored
               if c in library and library[c].collection == MARKER_COLLECTION
               and library[c].cell_context in _contexts.LINEAGES}
    present = {lin for lin in set(markers.values()) if np.sum(lineage_of_cell == lin) >= STATE_MIN_REFERENCE_CELLS}
    out = {context: [*common, *(c for c, lin in markers.items()
                                if lin in present and lin != _contexts.LINEAGES.get(context))]
           for context in states}
    needed = sorted({c for cols in out.values() for c in cols if c in markers})
    return out, {c: markers[c] for c in needed}


def references(scores: pd.DataFrame, contexts: np.ndarray, markers: dict[str, str]) -> dict[str, float]:
    """Median of each foreign-lineage marker score in the cells of the lineage it marks."""
    lineage_of_cell = np.array([_contexts.LINEAGES.get(c, "") for c in contexts], dtype=object)
    return {c: float(np.median(scores[c].to_numpy(dtype=float)[lineage_of_cell == lin])) for c, lin in markers.items()}


def library_size(totals: np.ndarray, contexts: np.ndarray, samples: np.ndarray) -> np.ndarray:
    """Log library size minus its median in the cell's (context, sample) group (an empty cell counts as 1)."""
    logs = pd.Series(np.log(np.maximum(np.asarray(totals, dtype=float), 1.0)))
    groups = [np.asarray(contexts).astype(str), np.asarray(samples).astype(str)]
    return (logs - logs.groupby(groups).transform("median")).to_numpy()


def row_sums(block: Any) -> np.ndarray:
    """Each row's sum of an in-memory block (float)."""
    return np.asarray(block.sum(axis=1), dtype=float).ravel()


def totals(matrix: Any, *, sums: np.ndarray | None = None, chunk_size: int = Defaults.CHUNK_SIZE
           ) -> np.ndarray | None:
    """Each cell's total counts when ``matrix`` holds raw counts (non-negative integers), else None.

    ``sums``: the rows' sums where another pass over the matrix read them (:func:`row_sums`); the
    matrix is then only probed for counts.
    """
    n = matrix.shape[0]
    if n == 0 or not holds_counts(matrix, np.arange(n), chunk_size=chunk_size):
        return None
    if sums is not None:
        return np.asarray(sums, dtype=float)
    return np.concatenate([row_sums(block) for _, _, block in _validate.row_blocks(matrix, chunk_size=chunk_size)])


def add_library_size(m: dict[str, Any], matrix: Any, samples: np.ndarray, *, sums: np.ndarray | None = None) -> None:
    """Add the :data:`LIBRARY_SIZE` column to call_states' inputs ``m`` when ``matrix`` holds counts (in place).

    ``m["values"]`` gains the column (:func:`library_size`) and every context's artefact columns
    ``m["art_cols"]`` list it; nothing changes when the expression is not raw counts. ``sums``: the
    rows' sums where a pass over the matrix already read them (:func:`totals`).
    """
    counts = totals(matrix, sums=sums)
    if counts is None:
        return
    m["values"] = m["values"].assign(**{LIBRARY_SIZE: library_size(counts, m["contexts"], samples)})
    m["art_cols"] = {context: [*cols, LIBRARY_SIZE] for context, cols in m["art_cols"].items()}


def detected_genes(matrix: Any, var_names: pd.Index, genes: Mapping[str, Sequence[str]], *,
                   chunk_size: int = Defaults.CHUNK_SIZE) -> dict[str, np.ndarray]:
    """Per column of ``genes``, each cell's number of those genes (present in ``var_names``) with expression > 0."""
    positions = {col: var_names.get_indexer(list(dict.fromkeys(g))) for col, g in genes.items()}
    positions = {col: pos[pos >= 0] for col, pos in positions.items()}
    wanted = np.unique(np.concatenate([*positions.values(), np.zeros(0, dtype=int)])).astype(int)
    where = {col: np.searchsorted(wanted, pos) for col, pos in positions.items()}
    out = {col: np.zeros(matrix.shape[0], dtype=np.int64) for col in genes}
    if wanted.size == 0:
        return out
    for start, stop, block in _validate.row_blocks(matrix, chunk_size=chunk_size):
        nonzero = block[:, wanted] > 0
        for col, cols in where.items():
            out[col][start:stop] = np.asarray(nonzero[:, cols].sum(axis=1)).ravel()
    return out


def add_gene_support(m: dict[str, Any], matrix: Any, var_names: pd.Index, library,
                     min_genes: int = STATE_ARTEFACT_MIN_GENES) -> None:
    """``m["art_support"]``: for each artefact column of the library, the cells that may be flagged on it (in place).

    A cell may be flagged on an artefact list only where it detects at least ``min_genes`` of the
    list's genes (module docstring). A list with fewer than ``min_genes`` of its genes in ``var_names``
    (scores computed on other expression) is not gated, nor are the user's extra columns and the others.
    """
    columns = sorted({c for cols in m["art_cols"].values() for c in cols
                      if c in library and library[c].collection == ARTEFACT_COLLECTION
                      and int(var_names.isin(library[c].genes_up).sum()) >= min_genes})
    counts = detected_genes(matrix, var_names, {c: library[c].genes_up for c in columns})
    m["art_support"] = {c: n >= min_genes for c, n in counts.items()}


def discount(calls: np.ndarray, confidence: np.ndarray, probability: np.ndarray,
             min_confidence: float) -> tuple[np.ndarray, np.ndarray]:
    """Calls and confidence times the probability that the cell is not an artefact.

    A call whose discounted confidence falls below ``min_confidence`` becomes ``"unassigned"``.
    """
    confidence = np.asarray(confidence, dtype=float) * (1.0 - np.asarray(probability, dtype=float))
    return np.where(confidence >= min_confidence, calls, Defaults.UNASSIGNED).astype(object), confidence


def _spread(values: np.ndarray) -> float:
    return max(0.01 * float(np.ptp(values)), 1e-12)


def _normal_logpdf(x: np.ndarray, mu: float, sd: float) -> np.ndarray:
    return -0.5 * ((x - mu) / sd) ** 2 - np.log(sd) - 0.5 * np.log(2.0 * np.pi)


def split(values: np.ndarray) -> Split:
    """Two-component normal mixture of a score, started from its lower half (the clean cells).

    The lower component starts at the median with the lower half's MAD as its sd, the upper one on
    the cells more than 2 such sd above; EM then fits both. ``distinct`` when Ashman's D of the
    fit reaches :data:`STATE_ARTEFACT_D`, the two components improve the BIC of one normal by
    :data:`STATE_ARTEFACT_BIC` (a normal split in two can reach D >= 2), the upper share reaches
    :data:`STATE_ARTEFACT_MIN_SHARE` (the lower component is the clean one even where the artefact cells are
    the majority: artefacts only raise their scores).
    """
    x = np.asarray(values, dtype=float)
    floor = _spread(x)
    med = float(np.median(x))
    low = x[x <= med]
    sd0 = max(1.4826 * float(np.median(med - low)), floor)
    high = x[x > med + 2.0 * sd0]
    if high.size < max(3, STATE_ARTEFACT_MIN_SHARE * x.size):
        return Split(med, sd0, med, sd0, 0.0, False)
    mu = np.array([med, float(high.mean())])
    sd = np.array([sd0, max(float(high.std()), floor)])
    w = np.array([1.0 - high.size / x.size, high.size / x.size])
    previous = -np.inf
    for _ in range(_EM_ITER):
        logp = np.column_stack([np.log(w[j]) + _normal_logpdf(x, mu[j], sd[j]) for j in range(2)])
        top = logp.max(axis=1, keepdims=True)
        total = top[:, 0] + np.log(np.exp(logp - top).sum(axis=1))
        resp = np.exp(logp - total[:, None])
        n_k = resp.sum(axis=0)
        if np.any(n_k < 1.0):
            break
        w = n_k / x.size
        mu = (resp * x[:, None]).sum(axis=0) / n_k
        sd = np.maximum(np.sqrt((resp * (x[:, None] - mu) ** 2).sum(axis=0) / n_k), floor)
        loglik = float(total.sum())
        done = loglik - previous < _EM_TOL * x.size
        previous = loglik
        if done:
            break
    lo, hi = (0, 1) if mu[0] <= mu[1] else (1, 0)
    d = np.sqrt(2.0) * (mu[hi] - mu[lo]) / np.sqrt(sd[lo] ** 2 + sd[hi] ** 2)
    one = float(_normal_logpdf(x, float(x.mean()), max(float(x.std()), floor)).sum())
    gain = 2.0 * (previous - one) - 3.0 * np.log(x.size)  # BIC of two components over one (3 more parameters)
    distinct = bool(d >= STATE_ARTEFACT_D and gain >= STATE_ARTEFACT_BIC and w[hi] >= STATE_ARTEFACT_MIN_SHARE)
    return Split(float(mu[lo]), float(sd[lo]), float(mu[hi]), float(sd[hi]), float(w[hi]), distinct)


def column_flags(values: np.ndarray, z_max: float = STATE_ARTEFACT_Z, reference: float | None = None,
                 way: float = FOREIGN_WAY) -> tuple[np.ndarray, np.ndarray]:
    """(flags, artefact probability) of the cells of one context for one artefact score (module docstring).

    ``reference``: the score's median in the lineage it marks (foreign-lineage markers). Those
    markers keep the robust-z rule (:func:`artefact_flags`): the doublets and ambient cells they
    find are a small minority, and their upper tail in a population is often a state that shares a
    few of the lineage's genes, which a two-component fit would take for an artefact group.
    """
    x = np.asarray(values, dtype=float)
    if x.size == 0:
        return np.zeros(0, dtype=bool), np.zeros(0)
    fit = split(x) if reference is None else None
    if fit is not None and fit.distinct:
        z = (x - fit.centre) / fit.scale
        log_lower = np.log(1.0 - fit.upper_share) + _normal_logpdf(x, fit.centre, fit.scale)
        log_upper = np.log(fit.upper_share) + _normal_logpdf(x, fit.upper_mean, fit.upper_scale)
        posterior = 1.0 / (1.0 + np.exp(np.clip(log_lower - log_upper, -50.0, 50.0)))
        posterior = np.where(x > fit.centre, posterior, 0.0)  # the lower tail is clean, whatever the fit's sds
        flags = (z > z_max) | ((posterior > 0.5) & (z > STATE_ARTEFACT_MIN_Z))
    else:
        flags = artefact_flags(x, z_max, reference, way)
        posterior = flags.astype(float)
    return flags, np.where(flags, np.maximum(posterior, 0.5), np.minimum(posterior, 0.5))


def _near(x: np.ndarray, centre: float, reference: float, way: float = FOREIGN_WAY) -> np.ndarray:
    """Cells ``way`` of the way (a third by default) from ``centre`` to a foreign lineage's own level ``reference``."""
    return (reference > centre) & (x >= centre + way * (reference - centre))


def artefact_flags(values: np.ndarray, z_max: float, reference: float | None = None, way: float = FOREIGN_WAY
                   ) -> np.ndarray:
    """Robust-z rule for a score without a distinct upper group (see :func:`column_flags`).

    ``(x - median) / (1.4826 * MAD)`` over the context's cells above ``z_max`` (the MAD is floored
    at 1 % of the column's range). With ``reference`` (the score's median in the lineage it marks),
    a cell must also be a third of the way from the context's median to that level: a cell of
    another lineage's profile mixed in (a doublet, ambient RNA), not the noise of a score that is
    near zero in the whole context (``way``: that share, a third by default).
    """
    x = np.asarray(values, dtype=float)
    if x.size == 0:
        return np.zeros(0, dtype=bool)
    centre, mad = robust_centre(x)
    flags = (x - centre) / mad > z_max
    return flags & _near(x, centre, reference, way) if reference is not None else flags


def robust_centre(x: np.ndarray, floor: float | None = None) -> tuple[float, float]:
    """Median and 1.4826 x MAD of a score, the MAD floored at ``floor`` (by default 1 % of the score's range)."""
    centre = float(np.median(x))
    return centre, max(1.4826 * float(np.median(np.abs(x - centre))), _spread(x) if floor is None else floor)


def reaches(values: np.ndarray, reference: float, z_max: float) -> bool:
    """Whether a foreign lineage's own level ``reference`` lies more than ``z_max`` robust sd above a context's median.

    Where it does not, the marker does not tell that lineage's cells from the context's (the generator's
    hepatocytes do not raise the library's MARKER_TUMOUR genes: their median lies below the CD8 T cells' 95th
    percentile): a cell it flags is the context's own upper tail, not a profile mixed in, and a doublet with that
    lineage would not stand out. Such a marker is not used in the context (:func:`context_flags`).
    """
    x = np.asarray(values, dtype=float)
    if x.size == 0:
        return False
    centre, mad = robust_centre(x)
    return bool((reference - centre) / mad > z_max)


def context_flags(values: np.ndarray, columns: list[str], references: dict[str, float], *,
                  z_max: float = STATE_ARTEFACT_Z, max_foreign_share: float = STATE_MAX_FOREIGN_SHARE,
                  flag_columns: Sequence[str] = (), way: float = FOREIGN_WAY,
                  support: Mapping[str, np.ndarray] | None = None) -> ContextFlags:
    """Artefact flags and probabilities of one context's cells (``values``: cells x ``columns``).

    ``flag_columns``: the columns that are the user's own artefact calls (0/1, e.g. scrublet's
    ``predicted_doublet``): a cell at 1 is an artefact (probability 1), whatever the share they flag.
    ``way``: how far toward a foreign lineage's own level a cell must lie (:func:`artefact_flags`).
    ``support``: column -> the cells (of this context) that may be flagged on it (:func:`add_gene_support`);
    the other cells get neither a flag nor an artefact probability from that column.
    A column of ``references`` whose level does not lie past ``z_max`` here (:func:`reaches`) is not used
    (``unreached``).
    """
    n = values.shape[0]
    direct = set(flag_columns)
    flags = np.zeros((n, len(columns)), dtype=bool)
    probs = np.zeros((n, len(columns)))
    unreached: list[str] = []
    for j, col in enumerate(columns):
        if col in direct:
            flags[:, j] = values[:, j] > 0.5
            probs[:, j] = flags[:, j].astype(float)
            continue
        if col in references and not reaches(values[:, j], references[col], z_max):
            unreached.append(col)
            continue
        flags[:, j], probs[:, j] = column_flags(values[:, j], z_max, references.get(col), way)
        if support is not None and col in support:
            flags[:, j] &= support[col]
            probs[:, j] = np.where(support[col], probs[:, j], 0.0)
    # a foreign-lineage marker that flags many cells marks a state's sub-population (its genes are
    # shared with that lineage's markers), not doublets or ambient RNA; a library size that flags many
    # cells marks larger cells of a state (real CAFs: 37 % of Wu 2021's), not doublets: neither is used there
    capped = [j for j, col in enumerate(columns) if col in references or col == LIBRARY_SIZE]
    unused = [j for j in capped if flags[:, j].mean() > max_foreign_share]
    flags[:, unused] = False
    probs[:, unused] = 0.0
    foreign = [j for j, col in enumerate(columns) if col in references and j not in unused]
    keep = strongest_foreign(values[:, foreign], [references[columns[j]] for j in foreign], flags[:, foreign],
                             max_foreign_share)
    released = int(np.sum(flags[:, foreign].any(axis=1) & ~keep))
    flags[np.ix_(~keep, foreign)] = False
    probs[np.ix_(~keep, foreign)] = 0.0
    first = np.asarray(columns, dtype=object)[np.argmax(flags, axis=1)] if columns else np.full(n, "", dtype=object)
    flagged = np.where(flags.any(axis=1), first, "").astype(object)
    probability = 1.0 - np.prod(1.0 - probs, axis=1) if columns else np.zeros(n)
    return ContextFlags(flagged=flagged, probability=probability, unused=[columns[j] for j in unused],
                        flagged_by={col: int(flags[:, j].sum()) for j, col in enumerate(columns) if flags[:, j].any()},
                        foreign_released=released, unreached=unreached)


def strongest_foreign(values: np.ndarray, references: Sequence[float], flags: np.ndarray, max_share: float
                      ) -> np.ndarray:
    """Cells that keep their foreign-lineage flags when the markers together flag more than ``max_share``.

    ``values``: the context's cells x foreign-lineage marker scores; ``references``: each marker's
    median in its own lineage; ``flags``: each marker's flags. Doublets with other lineages are a
    small share of a population, each marker's and all together: where more than ``max_share`` of
    the cells carry some foreign profile, the rest is ambient RNA or genes the population's own
    states share with those lineages, read more often in deeper cells (Wu 2021 breast tumour: the
    markers flagged 20-28 % of its T cells, CAFs and endothelial cells, which scrublet scored as
    doublets no more often than the clean cells). The flagged cells furthest from the population's
    median toward a foreign lineage's own level (a doublet holds a large share of the other cell's
    profile), ``max_share`` of the cells, keep their flags.
    """
    n = values.shape[0]
    limit = int(np.floor(max_share * n))
    flagged = flags.any(axis=1)
    if int(flagged.sum()) <= limit:
        return np.ones(n, dtype=bool)
    centre = np.median(values, axis=0)
    way = (values - centre) / np.maximum(np.asarray(references, dtype=float) - centre, 1e-12)
    way = np.where(flags, way, -np.inf).max(axis=1)
    keep = np.zeros(n, dtype=bool)
    keep[np.argsort(-way, kind="stable")[:limit]] = True
    return keep | ~flagged


def params() -> dict[str, Any]:
    """The thresholds of the artefact rule (provenance)."""
    return {"z": STATE_ARTEFACT_Z, "min_z": STATE_ARTEFACT_MIN_Z, "ashman_d": STATE_ARTEFACT_D,
            "bic_gain": STATE_ARTEFACT_BIC, "min_share": STATE_ARTEFACT_MIN_SHARE,
            "max_foreign_share": STATE_MAX_FOREIGN_SHARE, "library_size_column": LIBRARY_SIZE,
            "min_genes": STATE_ARTEFACT_MIN_GENES}
