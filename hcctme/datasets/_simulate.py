"""A generative HCC tumour-microenvironment cohort with ground truth.

The simulator draws integer UMI counts from a negative-binomial (gamma-Poisson) model whose mean
is built from

* a gene universe: the genes of the library's cell-type marker signatures (``MARKER_*``) and of
  the ``"<context>_states"`` signatures, then the other library genes, then current human symbols
  chosen deterministically as filler, up to ``n_genes``;
* a long-tailed baseline (log-normal relative abundances) with cell-type specific deviations;
* one marker programme per cell type (``hcctme.sig.get(MARKER_*).genes_up`` switched on);
* states planted inside their parent cell type (``genes_up`` raised, ``genes_down`` lowered);
* patient batch effects (gene-wise log-scale shifts) and per-cell library sizes (log-normal);
* patient-level composition drawn from Dirichlet distributions around base proportions, both
  for cell types and for states within each type;
* planted responder/resistor differences (composition shifts, a ligand-receptor gain and, with
  ``spatial=True``, a tumour immune barrier) described in :data:`DEFAULT_EFFECTS`.

Gene-level parameters (baseline, programmes, dispersions) come from a fixed internal seed, so every
cohort of the same ``n_genes`` shares one "biology"; ``random_state`` drives patients, cells and counts.
Everything that was planted is written to ``adata.uns["hcctme_sim"]``.

State programmes. In real scRNA-seq the genes that define a state are detected in a clear
majority of the state's cells and at a several-fold higher mean than in its sibling states; a
state is recognised from its signature as a whole. The simulator plants them that way:

* each induced ``genes_up`` gene gets a mean of about ``_STATE_TARGET_UMI`` (2.5) UMI per cell at
  the parent type's median depth (log-normal across genes, sd 0.6), so a shallow parent
  (neutrophils) still detects its state genes, and at least ``_STATE_MIN_LOG_FOLD`` (3-fold) more
  than in the parent when the gene is already expressed there (e.g. markers shared with the type);
* about one gene in five of a long list (> 10 genes) is not induced (published lists are
  imperfect); short curated lists (< 10 genes, e.g. NEU_CD10_ALPL = MME, ALPL, NTRK1 and ENDO_ONCOFETAL_PLVAP
  with 3, TAM1_FOLR2 with 4) are all induced, each ``sqrt(10 / n)`` times stronger: such panels
  list the few defining markers, and a state read from 3-4 genes is recognisable only when each
  of them is reliably detected;
* ``genes_down`` (HLA-DR of HLA-DR^-/lo M-MDSC, the GPR183 / MX1 of terminal exhaustion) are lowered
  about 50-fold, to near absence; the programme strength varies between cells of a state (sd 0.2
  on the log-fold; a wider spread made in-state scores flat from background to maximum, unlike
  the unimodal module scores of annotated states).

Measured on :func:`demo` (389 induced (state, gene) pairs over 342 genes; median [10th-90th percentile] over
the pairs, session 55): detected in 75 % [57-90 %] of the state's cells and 2.3 % [0.3-37 %] of the other cells of
the parent type; mean 3.4 [1.3-9.9] UMI in the state, 0.02 UMI outside it. The states are not trivially
separable: one cell in four misses a given state gene, states share genes with their siblings and with the
cell-type markers, and backgrounds have tails (CAF_TGFB_MYCAF genes are detected in 4 % of the other
fibroblasts; 2 % of M-MDSC still detect HLA-DRA). These cells plant the library's own genes, so the state
caller's figures on them measure the method against itself: its evidence is the independent generator of the
test suite and real labelled data (README, "Cell states"). The
out-of-state background is cleaner than in many real data sets (often 10-30 % detection).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp
from anndata import AnnData

from hcctme import _validate
from hcctme._constants import BARRIER_STATES, Defaults, Keys
from hcctme._logging import logger

# --------------------------------------------------------------------------------------------------
# The cohort's biology (fixed; documented in the docstring of simulate_cohort)
# --------------------------------------------------------------------------------------------------
RESPONDER: str = "responder"
RESISTOR: str = "resistor"
TREATMENT: str = "T+A"
UNASSIGNED: str = Defaults.UNASSIGNED

#: Cell-type labels (obs["cell_type"]), their base proportions and the marker signatures whose
#: ``genes_up`` make up each type's programme.
CELL_TYPES: tuple[str, ...] = (
    "CD8+ T cells", "CD4+ T cells", "NK cells", "B cells", "Plasma cells", "Macrophages", "Monocytes",
    "Neutrophils", "Dendritic cells", "Fibroblasts", "Endothelial cells", "Hepatocytes", "Tumour cells",
)
BASE_PROPORTIONS: dict[str, float] = {
    "CD8+ T cells": 0.14, "CD4+ T cells": 0.10, "NK cells": 0.06, "B cells": 0.04, "Plasma cells": 0.02,
    "Macrophages": 0.12, "Monocytes": 0.05, "Neutrophils": 0.06, "Dendritic cells": 0.03,
    "Fibroblasts": 0.08, "Endothelial cells": 0.08, "Hepatocytes": 0.07, "Tumour cells": 0.15,
}
MARKERS: dict[str, tuple[str, ...]] = {
    "CD8+ T cells": ("MARKER_T_CELL", "MARKER_CD8_T"),
    "CD4+ T cells": ("MARKER_T_CELL", "MARKER_CD4_T"),
    "NK cells": ("MARKER_NK",),
    "B cells": ("MARKER_B_CELL",),
    "Plasma cells": ("MARKER_PLASMA",),
    "Macrophages": ("MARKER_MYELOID", "MARKER_MACROPHAGE"),
    "Monocytes": ("MARKER_MYELOID", "MARKER_MONOCYTE"),
    "Neutrophils": ("MARKER_MYELOID", "MARKER_NEUTROPHIL"),
    "Dendritic cells": ("MARKER_MYELOID", "MARKER_DENDRITIC"),
    "Fibroblasts": ("MARKER_FIBROBLAST",),
    "Endothelial cells": ("MARKER_ENDOTHELIAL",),
    "Hepatocytes": ("MARKER_HEPATOCYTE",),
    "Tumour cells": ("MARKER_TUMOUR",),
}
#: Malignant hepatocytes keep part of the hepatocyte programme (switched on 1.5 log-units lower).
_PARTIAL_MARKERS: dict[str, tuple[str, float]] = {"Tumour cells": ("MARKER_HEPATOCYTE", 1.5)}
#: cell_context of each cell-type label (the library's vocabulary).
CONTEXTS: dict[str, str] = {
    "CD8+ T cells": "cd8_t", "CD4+ T cells": "cd4_t", "NK cells": "nk", "B cells": "b_cell",
    "Plasma cells": "plasma", "Macrophages": "macrophage", "Monocytes": "monocyte",
    "Neutrophils": "neutrophil", "Dendritic cells": "dendritic", "Fibroblasts": "fibroblast",
    "Endothelial cells": "endothelial", "Hepatocytes": "hepatocyte", "Tumour cells": "tumour",
}
#: States planted in each parent type, with their base proportion within the parent; the rest of
#: the parent's cells are "unassigned".
STATES: dict[str, dict[str, float]] = {
    "CD8+ T cells": {"CD8_TEX_TERMINAL": 0.22, "CD8_TEX_PROGENITOR": 0.20, "CD8_TEFF": 0.25},
    "CD4+ T cells": {"TREG": 0.30},
    "Macrophages": {"TAM1_FOLR2": 0.28, "TAM2_SPP1": 0.25, "TAM3_MT1G": 0.15},
    "Neutrophils": {"NEU_CD10_ALPL": 0.25, "PMN_MDSC": 0.25},
    "Monocytes": {"M_MDSC": 0.35},
    "Fibroblasts": {"CAF_ECM_MYCAF": 0.18, "CAF_TGFB_MYCAF": 0.14, "CAF_WOUND_MYCAF": 0.14,
                    "CAF_IFNG_ICAF": 0.12, "CAF_IL_ICAF": 0.12, "CAF_DETOX_ICAF": 0.12},
    "Endothelial cells": {"ENDO_ONCOFETAL_PLVAP": 0.35},
}
STATE_PARENT: dict[str, str] = {s: t for t, states in STATES.items() for s in states}
STATE_IDS: tuple[str, ...] = tuple(STATE_PARENT)

#: The planted ligand-receptor gain in resistors: ligand raised in the source state, receptor in
#: the target cell type (fold = effects["lr_fold"]).
LR_TRUTH: dict[str, str] = {"ligand": "SPP1", "receptor": "CD44", "source_cell_type": "Macrophages",
                            "source_state": "TAM2_SPP1", "target_cell_type": "Fibroblasts",
                            "target_state": "any"}
#: States that ring tumour nests in resistors (spatial=True): the SPP1+ TAM and matrix myCAF of the
#: barrier states (:data:`hcctme._constants.BARRIER_STATES`); and the cells kept out.
PLANTED_BARRIER_STATES: tuple[str, ...] = tuple(s for s in BARRIER_STATES if s in ("TAM2_SPP1", "CAF_ECM_MYCAF"))
EXCLUDED_TYPES: tuple[str, ...] = ("CD8+ T cells",)
TUMOUR_TYPES: tuple[str, ...] = ("Tumour cells", "Hepatocytes")

#: Planted responder-vs-resistor differences (resistors relative to responders).
#:
#: * a state id (e.g. ``"TAM2_SPP1"``): shift of the state's log-odds within its parent cell type;
#: * a cell-type label (e.g. ``"Neutrophils"``): shift of the type's logit against the unshifted types (a multinomial
#:   logit over all cell types: the type's realised log-odds among all cells moves by more or less where others move);
#: * ``"lr_fold"``: fold change of SPP1 in TAM2_SPP1 macrophages and of CD44 in fibroblasts;
#: * ``"barrier"``: in [0, 1], the fraction of barrier cells (TAM2_SPP1, CAF_ECM_MYCAF) placed in a
#:   ring around tumour nests and of CD8+ T cells kept out of them (``spatial=True`` only).
DEFAULT_EFFECTS: dict[str, float] = {
    "CD8_TEX_TERMINAL": 1.0,
    "CD8_TEX_PROGENITOR": -1.0,
    "TAM2_SPP1": 1.0,
    "NEU_CD10_ALPL": 1.0,
    "CAF_ECM_MYCAF": 1.0,
    "Neutrophils": 0.7,
    "CD8+ T cells": -0.7,
    "lr_fold": 3.0,
    "barrier": 0.8,
}
_NO_EFFECT: dict[str, float] = {"lr_fold": 1.0, "barrier": 0.0}
VALID_EFFECTS: tuple[str, ...] = STATE_IDS + CELL_TYPES + ("lr_fold", "barrier")

# Model constants --------------------------------------------------------------------------------
_BIO_SEED = 20_240_607  # gene-level parameters: one fixed "biology" for every cohort
_TYPE_CONCENTRATION = 60.0  # Dirichlet concentration of cell-type proportions per patient
_STATE_CONCENTRATION = 30.0  # ... of state proportions within a parent type
_BATCH_SD = 0.2  # patient batch effect, sd of gene-wise log shifts
_DEPTH_SD = 0.2  # patient sequencing-depth factor (log sd)
_LIB_MEDIAN = 1200.0  # median UMIs per cell (before the cell-type factor)
_LIB_SD = 0.45  # log sd of library sizes within a patient and type
_DISPERSION = 0.3  # median negative-binomial dispersion (var = mu + phi mu^2)
_LIB_FACTOR: dict[str, float] = {
    "CD8+ T cells": 0.8, "CD4+ T cells": 0.8, "NK cells": 0.8, "B cells": 0.7, "Plasma cells": 1.6,
    "Macrophages": 1.4, "Monocytes": 1.1, "Neutrophils": 0.5, "Dendritic cells": 1.2,
    "Fibroblasts": 1.2, "Endothelial cells": 1.0, "Hepatocytes": 2.0, "Tumour cells": 1.8,
}
_STATE_GENE_RESPONSIVE = 0.8  # fraction of a state's genes_up that are truly induced
_STATE_TARGET_UMI = 2.5  # median in-state mean UMI of an induced gene at the parent's median depth
_STATE_TARGET_SD = 0.6  # log sd of that mean across the genes of a state
_STATE_MIN_LOG_FOLD = 1.1  # genes already high in the parent are still raised 3-fold
_SHORT_SIGNATURE = 10  # lists of n < 10 genes: all induced, each sqrt(10 / n) times stronger
_STATE_INTENSITY_SD = 0.2  # cell-to-cell variation of the state programme strength
_STATE_DOWN_LOG_FOLD = 4.0  # genes_down of a state: lowered ~50-fold (near absence)
#: Genes that define a state (named in its id or its defining markers): always induced when listed.
_KEY_GENES: dict[str, tuple[str, ...]] = {
    "TAM1_FOLR2": ("FOLR2",), "TAM2_SPP1": ("SPP1",), "TAM3_MT1G": ("MT1G",),
    "NEU_CD10_ALPL": ("MME", "ALPL"), "ENDO_ONCOFETAL_PLVAP": ("PLVAP",), "TREG": ("FOXP3",),
    "CD8_TEX_TERMINAL": ("HAVCR2", "ENTPD1", "LAYN"), "CD8_TEX_PROGENITOR": ("TCF7", "GZMK"),
    "CD8_TEFF": ("GZMB", "PRF1"),
}
_MIN_CELLS_PER_PATIENT = 50
_MIN_PATIENTS = 4
_MIN_NOISE, _MAX_NOISE = 0.1, 10.0  # beyond them lr_fold ** (1 / noise) overflows or every effect vanishes
_MAX_LOG_EFFECT = 50.0  # |log-odds or log-fold| planted after noise: e^50 is already no biology


# --------------------------------------------------------------------------------------------------
# Library access (the only place the simulator reads gene lists)
# --------------------------------------------------------------------------------------------------
def _signature(signature_id: str) -> Any:
    from hcctme import sig

    return sig.get(signature_id)


def _other_library_genes() -> tuple[str, ...]:
    """Genes of every library signature, in library order (scored, not planted)."""
    from hcctme import sig

    return tuple(dict.fromkeys(g for s in sig.library() for g in s.genes))


def _filler_candidates() -> list[str]:
    """Current human symbols usable as filler genes (sorted; a fixed list without the table)."""
    try:
        from hcctme.sig import _genes

        symbols = pd.unique(_genes.human_genes()["symbol"])
    except (FileNotFoundError, ModuleNotFoundError, KeyError):  # pragma: no cover - table missing
        symbols = np.array([f"SIMGENE{i:05d}" for i in range(30_000)])
    keep = [s for s in symbols
            if s.isupper() and s[:1].isalpha() and "." not in s and "_" not in s
            and not s.startswith(("MT-", "LINC", "ENSG", "LOC")) and "-AS" not in s]
    return sorted(set(keep))


def _current_names(genes: np.ndarray, filler: np.ndarray) -> np.ndarray:
    """``genes`` with each filler drawn under a previous symbol named by its current one (TDGF1 -> CRIPTO).

    The gene tables hold a few genes under an older name beside the current one; the draw keeps its list (and so
    every gene's position and parameters), only the label changes, unless the current symbol is drawn too.
    """
    try:
        from hcctme.sig import _genes

        previous = _genes.previous_symbols()
    except (FileNotFoundError, ModuleNotFoundError, KeyError):  # pragma: no cover - table missing
        return genes
    taken = set(genes)
    out = genes.copy()
    for i in np.flatnonzero(filler):
        current = previous.get(str(genes[i]))
        if current is not None and current not in taken:
            out[i] = current
            taken.add(current)
    return out


# --------------------------------------------------------------------------------------------------
# Gene-level parameters
# --------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class _Biology:
    genes: np.ndarray  # (G,) symbols, sorted (but for the few fillers renamed to their current symbol)
    type_levels: np.ndarray  # (T, G) float32 log relative abundance per cell type
    state_delta: np.ndarray  # (S + 1, G) float32 log shift of each state over its parent; last row 0
    phi: np.ndarray  # (G,) float32 NB dispersion
    var: pd.DataFrame  # per-gene annotation
    programmes: dict[str, list[str]]  # cell type or state -> signature ids used
    lr_index: tuple[int, int]  # column of ligand, receptor


def _programme_genes() -> tuple[dict[str, tuple[str, ...]], dict[str, tuple[str, ...]], dict[str, tuple[str, ...]]]:
    marker_ids = sorted({i for ids in MARKERS.values() for i in ids})
    markers = {i: tuple(_signature(i).genes_up) for i in marker_ids}
    ups, downs = {}, {}
    for state in STATE_IDS:
        s = _signature(state)
        ups[state] = tuple(s.genes_up)
        downs[state] = tuple(g for g in s.genes_down if g not in set(s.genes_up))
    return markers, ups, downs


@lru_cache(maxsize=8)
def _biology(n_genes: int, library_version: str) -> _Biology:
    markers, ups, downs = _programme_genes()
    programme = list(dict.fromkeys(
        [g for ids in markers.values() for g in ids]
        + [g for genes in ups.values() for g in genes]
        + [g for genes in downs.values() for g in genes]
        + [LR_TRUTH["ligand"], LR_TRUTH["receptor"]]
    ))
    n_genes = max(n_genes, len(programme))  # simulate_cohort warns
    in_universe = set(programme)
    others = [g for g in _other_library_genes() if g not in in_universe][: n_genes - len(programme)]
    in_universe.update(others)
    n_fill = n_genes - len(programme) - len(others)
    fillers: list[str] = []
    if n_fill > 0:
        candidates = [g for g in _filler_candidates() if g not in in_universe]
        if n_fill > len(candidates):
            most = n_genes - n_fill + len(candidates)
            raise ValueError(f"n_genes={n_genes} is more than the {most} current human symbols the simulator draws "
                             f"from (programme, library and filler genes); pass n_genes <= {most}")
        pick = np.random.default_rng(_BIO_SEED).choice(len(candidates), size=n_fill, replace=False)
        fillers = [candidates[i] for i in np.sort(pick)]
    genes = np.array(sorted(programme + others + fillers), dtype=object)
    col = {g: i for i, g in enumerate(genes)}
    n_types, n_g = len(CELL_TYPES), len(genes)

    rng = np.random.default_rng(_BIO_SEED + 1)
    # Long-tailed baseline; state-only programme genes a little lower than the bulk.
    base = rng.normal(-0.8, 2.3, n_g)
    state_only = np.array([col[g] for g in dict.fromkeys(
        g for genes_ in ups.values() for g in genes_)], dtype=int)
    base[state_only] = rng.normal(-1.0, 1.3, state_only.size)
    levels = np.repeat(base[None, :], n_types, axis=0)
    # Cell-type specific deviations on ~30% of the genes (types differ beyond their markers).
    mask = rng.random((n_types, n_g)) < 0.3
    levels += mask * rng.normal(0.0, 0.6, (n_types, n_g))
    # Marker programmes: off everywhere, on in their types.
    marker_cols = np.array(sorted({col[g] for genes_ in markers.values() for g in genes_}), dtype=int)
    off = rng.normal(-2.0, 0.8, marker_cols.size)
    levels[:, marker_cols] = off[None, :] + rng.normal(0.0, 0.3, (n_types, marker_cols.size))
    on = rng.normal(3.2, 0.6, (n_types, n_g))
    for t, cell_type in enumerate(CELL_TYPES):
        for sig_id in MARKERS[cell_type]:
            cols = [col[g] for g in markers[sig_id]]
            levels[t, cols] = on[t, cols]
        if cell_type in _PARTIAL_MARKERS:
            sig_id, lower = _PARTIAL_MARKERS[cell_type]
            cols = [col[g] for g in markers[sig_id] if g not in set().union(
                *(markers[i] for i in MARKERS[cell_type]))]
            levels[t, cols] = np.maximum(levels[t, cols], on[t, cols] - lower)
    # The receptor of the planted LR pair is expressed (moderately) by its target type.
    tgt = CELL_TYPES.index(LR_TRUTH["target_cell_type"])
    rec = col[LR_TRUTH["receptor"]]
    levels[tgt, rec] = max(levels[tgt, rec], 1.5)

    # States: genes_up raised to a target mean UMI at the parent's median depth (at least
    # _STATE_MIN_LOG_FOLD above the parent), genes_down lowered.
    log_umi_per_level = np.log(_LIB_MEDIAN * np.array([_LIB_FACTOR[c] for c in CELL_TYPES])) - np.log(
        np.exp(levels).sum(axis=1))
    delta = np.zeros((len(STATE_IDS) + 1, n_g))
    for s, state in enumerate(STATE_IDS):
        t = CELL_TYPES.index(STATE_PARENT[state])
        cols = np.array([col[g] for g in ups[state]], dtype=int)
        # Published lists are imperfect: about one gene in five of a long list is not induced in
        # the state; short curated lists (marker panels) are all induced.
        key = np.isin(np.asarray(ups[state], dtype=object), _KEY_GENES.get(state, ()))
        if cols.size > _SHORT_SIGNATURE:
            cols = cols[(rng.random(cols.size) < _STATE_GENE_RESPONSIVE) | key]
        umi = _STATE_TARGET_UMI * math.sqrt(max(1.0, _SHORT_SIGNATURE / cols.size))
        target = rng.normal(math.log(umi), _STATE_TARGET_SD, cols.size) - log_umi_per_level[t]
        delta[s, cols] = np.maximum(_STATE_MIN_LOG_FOLD, target - levels[t, cols])
        if downs[state]:
            dcols = np.array([col[g] for g in downs[state]], dtype=int)
            delta[s, dcols] = -_STATE_DOWN_LOG_FOLD
    phi = np.exp(rng.normal(math.log(_DISPERSION), 0.4, n_g))

    membership: dict[str, list[str]] = {g: [] for g in genes}
    for sig_id, genes_ in markers.items():
        for g in genes_:
            membership[g].append(sig_id)
    for state in STATE_IDS:
        for g in ups[state]:
            membership[g].append(state)
        for g in downs[state]:
            membership[g].append(f"{state}(down)")
    kind = np.where(np.isin(genes, programme), "programme",
                    np.where(np.isin(genes, others), "library", "filler"))
    names = _current_names(genes, kind == "filler")
    var = pd.DataFrame({"sim_programmes": [";".join(membership[g]) for g in genes], "sim_gene_kind": kind},
                       index=pd.Index(names.astype(str), name=None))
    programmes = {t: list(MARKERS[t]) for t in CELL_TYPES}
    programmes.update({s: [s] for s in STATE_IDS})
    return _Biology(
        genes=names.astype(str), type_levels=levels.astype(np.float32), state_delta=delta.astype(np.float32),
        phi=phi.astype(np.float32), var=var, programmes=programmes,
        lr_index=(col[LR_TRUTH["ligand"]], col[LR_TRUTH["receptor"]]),
    )


# --------------------------------------------------------------------------------------------------
# Validation
# --------------------------------------------------------------------------------------------------
def _number(value: Any, *, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise TypeError(f"{name} must be a number, got {type(value).__name__} ({value!r})")
    value = float(value)
    if not math.isfinite(value):
        raise ValueError(f"{name} must be finite, got {value}")
    return value


def _resolve_effects(effects: Mapping[str, Any] | None, *, null: bool) -> dict[str, float]:
    """Merge user effects over the defaults (validated); all-zero effects when ``null``."""
    if null:
        if effects is not None:
            raise ValueError("null=True plants no effect; leave effects=None (or use null=False)")
        return {}
    if effects is None:
        return dict(DEFAULT_EFFECTS)
    if not isinstance(effects, Mapping):
        raise TypeError(f"effects must be a dict {{name: value}}, got {type(effects).__name__}")
    unknown = [k for k in effects if k not in VALID_EFFECTS]
    if unknown:
        raise ValueError(
            f"unknown effect name(s) {unknown}; valid names are the state ids {list(STATE_IDS)}, "
            f"the cell types {list(CELL_TYPES)}, 'lr_fold' and 'barrier'"
        )
    out = dict(DEFAULT_EFFECTS)
    for key, value in effects.items():
        value = _number(value, name=f"effects[{key!r}]")
        if key == "lr_fold" and value <= 0:
            raise ValueError(f"effects['lr_fold'] is a fold change and must be > 0, got {value}")
        if key == "barrier":
            value = _validate.fraction(value, name="effects['barrier']")
        out[key] = value
    return out


def _applied(effects: Mapping[str, float], noise: float) -> dict[str, float]:
    """Effect sizes after ``noise``: log-scale effects and the barrier (a fraction, at most 1) divided by it.

    A log-scale effect (a state's or cell type's log-odds shift, ``log(lr_fold)``) beyond
    :data:`_MAX_LOG_EFFECT` once divided by ``noise`` is refused: the odds and folds it plants overflow.
    """
    out = {}
    for key, value in effects.items():
        if key == "barrier":
            out[key] = min(float(value / noise), 1.0)
            continue
        log_effect = (math.log(value) if key == "lr_fold" else value) / noise
        if abs(log_effect) > _MAX_LOG_EFFECT:
            raise ValueError(
                f"effects[{key!r}]={value!r} with noise={noise!r} plants a log-scale effect of {log_effect:.3g}, "
                f"beyond +-{_MAX_LOG_EFFECT:g} (odds or folds of e^{_MAX_LOG_EFFECT:g}); use a smaller effect or a "
                "larger noise")
        out[key] = float(value ** (1.0 / noise)) if key == "lr_fold" else float(value / noise)
    return out


# --------------------------------------------------------------------------------------------------
# Sampling helpers
# --------------------------------------------------------------------------------------------------
def _dirichlet(rng: np.random.Generator, alpha: np.ndarray) -> np.ndarray:
    """Row-wise Dirichlet draws (vectorised through gamma variables)."""
    g = rng.standard_gamma(np.maximum(alpha, 1e-3))
    g = np.maximum(g, 1e-300)
    return g / g.sum(axis=1, keepdims=True)


def _softmax(logits: np.ndarray) -> np.ndarray:
    z = np.exp(logits - logits.max(axis=1, keepdims=True))
    return z / z.sum(axis=1, keepdims=True)


def _negative_binomial(rng: np.random.Generator, mu: np.ndarray, phi: np.ndarray) -> sp.csr_matrix:
    """Negative-binomial counts (var = mu + phi mu^2) as a CSR matrix; ``mu`` is overwritten.

    Gamma-Poisson mixture lambda = mu * Gamma(1/phi, phi). The Poisson step draws only the nonzero
    entries: with E ~ Exp(1) (the first arrival of a unit-time Poisson process of rate lambda is
    E / lambda), X > 0 exactly when E < lambda, and then X = 1 + Poisson(lambda - E).
    """
    mu *= rng.standard_gamma(1.0 / phi, size=mu.shape, dtype=np.float32)
    mu *= phi[None, :]
    arrival = rng.standard_exponential(size=mu.shape, dtype=np.float32)
    flat = np.flatnonzero(arrival < mu)
    lam = mu.ravel()[flat].astype(np.float64) - arrival.ravel()[flat]
    del arrival
    values = 1 + rng.poisson(np.maximum(lam, 0.0))
    n_rows, n_cols = mu.shape
    rows, cols = np.divmod(flat, n_cols)
    indptr = np.zeros(n_rows + 1, dtype=np.int64)
    np.cumsum(np.bincount(rows, minlength=n_rows), out=indptr[1:])
    return sp.csr_matrix((values.astype(np.int32), cols.astype(np.int32), indptr), shape=mu.shape)


def _multinomial(rng: np.random.Generator, n: np.ndarray, p: np.ndarray) -> np.ndarray:
    p = p / p.sum(axis=1, keepdims=True)
    return rng.multinomial(np.asarray(n, dtype=np.int64), p)


# --------------------------------------------------------------------------------------------------
# Public API
# --------------------------------------------------------------------------------------------------
def simulate_cohort(
    n_patients: int = 12,
    cells_per_patient: int = 800,
    *,
    effects: Mapping[str, float] | None = None,
    spatial: bool = False,
    null: bool = False,
    n_genes: int = 3000,
    noise: float = 1.0,
    random_state: int = Defaults.SEED,
    seed: int | None = None,
) -> AnnData:
    """Simulate an HCC tumour-microenvironment scRNA-seq cohort with ground truth.

    Patients are split into responders and resistors to atezolizumab + bevacizumab ("T+A");
    resistors carry the planted effects.

    Parameters
    ----------
    n_patients
        Number of patients (>= 4). Half are resistors; with an odd number the extra patient is a
        responder.
    cells_per_patient
        Cells per patient (>= 50).
    effects
        Planted resistor-vs-responder differences, merged over :data:`DEFAULT_EFFECTS` (names not
        given keep their default; set a name to 0 to switch it off). Names:

        * a state id of ``STATE_IDS`` (e.g. ``"TAM2_SPP1"``): shift of the state's logit against the
          parent's cells in no state, within its parent cell type in resistors (natural log; a state alone
          in its parent: 1.0 = odds x 2.7). Where sibling states are shifted too (a multinomial logit), the
          state's own log-odds within the parent moves by more or less than its value: with the defaults
          CD8_TEX_TERMINAL +1.0 moves by +1.18 and CD8_TEX_PROGENITOR -1.0 by -1.39 (``state_proportions``'
          ``group_mean`` holds the realised shares);
        * a cell-type label of ``CELL_TYPES`` (e.g. ``"Neutrophils"``): shift of the type's logit
          against the types not shifted, in the multinomial over all cell types, in resistors (natural
          log); where other types are shifted too, the type's own log-odds among all cells moves by more
          or less: with the defaults Neutrophils +0.7 moves by +0.78 and CD8+ T cells -0.7 by -0.77
          (``group_mean`` holds the realised shares);
        * ``"lr_fold"``: fold change (> 0) of SPP1 in TAM2_SPP1 macrophages and of CD44 in
          fibroblasts of resistors (the planted ligand-receptor gain);
        * ``"barrier"``: in [0, 1], strength of the tumour immune barrier in resistors when
          ``spatial=True`` (without coordinates nothing is planted and the truth records 0): the
          fraction of TAM2_SPP1 macrophages and CAF_ECM_MYCAF fibroblasts
          placed in a ring around tumour nests, and of CD8+ T cells kept out of the nests.

        Unknown names raise a ValueError listing the valid ones.
    spatial
        Add ``obsm["spatial"]`` (microns): each patient is a separate tissue frame, offset on a
        grid, with tumour nests (tumour cells, hepatocytes at the rim); see ``effects["barrier"]``.
    null
        Plant nothing: responders and resistors are labelled but drawn from identical
        distributions (same composition, expression and spatial layout). ``effects`` must be None.
    n_genes
        Size of the gene universe. The genes of the cell-type and state programmes (about 500 with
        the current library) are always simulated: a smaller ``n_genes`` gives just those (with a
        warning); the rest are other library genes, then filler human symbols.
    noise
        In [0.1, 10]; 1 is the default cohort. Effects are divided by ``noise`` (log-scale effects and the
        barrier, which stays at most 1; ``lr_fold`` becomes ``lr_fold ** (1 / noise)``) while the NB dispersion and the
        patient batch sd are multiplied by it and the Dirichlet concentrations divided by it. The
        cell-type and state programmes (module docstring) are the same at every ``noise``.
    random_state
        Seed of patients, cells and counts (the gene-level biology is fixed).
    seed
        Deprecated alias of ``random_state`` (a FutureWarning says so). When given it is the seed used; a
        ``random_state`` other than it is refused, except 0, the default, which cannot be told from one not given.

    Returns
    -------
    AnnData
        ``layers["counts"]``: integer UMI counts (CSR); ``.X``: ``log1p(normalize_total(1e4))``
        float32 CSR. ``obs``: ``patient``, ``response`` ("responder"/"resistor"), ``cell_type``,
        ``state_true`` (a state id or "unassigned"), ``treatment``,
        ``age``, ``sex``, ``etiology``, ``n_counts``. ``var``: ``sim_programmes`` (signature ids a
        gene belongs to), ``sim_gene_kind`` (programme / library / filler). ``obsm["spatial"]``
        with ``spatial=True``. ``uns["hcctme_sim"]``: the ground truth, see Notes.

    Notes
    -----
    ``uns["hcctme_sim"]`` holds (all h5ad-serialisable):

    * ``random_state``, ``null``, ``noise``, ``spatial`` and ``params`` (sizes, n_responders/n_resistors,
      concentrations, batch sd, dispersion, library sizes, ``library_version``, ``reference``);
    * ``effects`` (as resolved, before ``noise``; ``{}`` for null cohorts), ``effects_applied``
      (after ``noise``) and ``effects_table`` (DataFrame: name, kind = state | cell_type |
      ligand_receptor | spatial, parent, unit, value, applied, direction_in_resistors = up | down |
      none; no rows for null cohorts);
    * ``patients`` (patient, response, treatment, age, sex, etiology);
    * ``cell_type_proportions`` and ``state_proportions``: tidy DataFrames, one row per patient
      and cell type (resp. state or "unassigned" within its parent type) with n_cells, n_parent,
      proportion (observed), expected (the patient's Dirichlet draw) and group_mean (the mean of
      the patient's group; responders and resistors differ only by the planted shifts, so other
      states of a shifted parent move a little too);
    * ``lr``: DataFrame (ligand, receptor, source_cell_type, source_state, target_cell_type,
      target_state, fold, condition, reference, planted);
    * ``programmes`` (cell type or state -> signature ids), ``state_parent`` (state -> cell type),
      ``cell_contexts`` (cell type -> library cell_context);
    * with ``spatial=True``: ``barrier`` (DataFrame per patient: barrier, strength, n_nests, ring
      and exclusion distances, realised mean distances of barrier cells and CD8+ T cells to the
      nearest tumour/hepatocyte, fraction of CD8+ T cells inside nests, frame offsets), ``nests``
      (patient, nest, x_um, y_um, radius_um), ``barrier_states``, ``excluded_cell_types``,
      ``tumour_cell_types``.
    """
    if seed is not None:
        warnings.warn("simulate_cohort(seed=...) is deprecated; pass random_state=", FutureWarning, stacklevel=2)
        if random_state not in (Defaults.SEED, seed):
            raise ValueError(f"seed={seed!r} (deprecated) and random_state={random_state!r} disagree; pass "
                             "random_state only")
        random_state = seed
    args = _check_cohort(n_patients=n_patients, cells_per_patient=cells_per_patient, n_genes=n_genes,
                         random_state=random_state, spatial=spatial, null=null, noise=noise)
    given = _resolve_effects(effects, null=args["null"])
    applied = _applied(given, args["noise"])
    if not args["spatial"] and "barrier" in applied:
        applied["barrier"] = 0.0  # no coordinates: no barrier planted
    bio = _biology(args["n_genes"], _validate.library_version())
    if bio.genes.size > args["n_genes"]:
        warnings.warn(f"n_genes={args['n_genes']} is smaller than the {bio.genes.size} genes of the cell-type and "
                      f"state programmes; simulating those {bio.genes.size} genes", UserWarning, stacklevel=2)
    rng = np.random.default_rng(args["random_state"])
    cohort = _draw_patients(rng, args["n_patients"])
    cells = _draw_cells(rng, cohort, applied, noise=args["noise"], cells_per_patient=args["cells_per_patient"])
    counts = _draw_counts(rng, bio, cohort, cells, applied, noise=args["noise"])
    adata = _cohort_anndata(counts, bio, cohort, cells)
    truth = _truth(args, cohort, cells, bio, given, applied)
    if args["spatial"]:
        from hcctme.datasets._spatial import layout

        coords, barrier_table, nests = layout(
            patient=cells.patient, cell_type=cells.cell_type, state=cells.state, resistor=cohort.resistor,
            patients=cohort.patients, barrier=applied.get("barrier", 0.0), rng=rng,
            cell_types=CELL_TYPES, state_ids=STATE_IDS, barrier_states=PLANTED_BARRIER_STATES,
            excluded_types=EXCLUDED_TYPES, tumour_types=TUMOUR_TYPES,
        )
        adata.obsm[Keys.SPATIAL] = coords
        truth.update(barrier=barrier_table, nests=nests, barrier_states=list(PLANTED_BARRIER_STATES),
                     excluded_cell_types=list(EXCLUDED_TYPES), tumour_cell_types=list(TUMOUR_TYPES))
    adata.uns[Keys.SIM] = truth
    logger.info("simulated %d patients (%d resistors), %d cells x %d genes%s%s -> layers[%r], uns[%r]",
                args["n_patients"], int(cohort.resistor.sum()), adata.n_obs, adata.n_vars,
                ", spatial" if args["spatial"] else "", ", null" if args["null"] else "", Keys.COUNTS, Keys.SIM)
    return adata


def _check_cohort(*, n_patients: Any, cells_per_patient: Any, n_genes: Any, random_state: Any, spatial: Any,
                  null: Any, noise: Any) -> dict[str, Any]:
    """The checked arguments of :func:`simulate_cohort` (a typed error names the bad one)."""
    args = {
        "n_patients": _validate.positive_int(n_patients, name="n_patients", minimum=_MIN_PATIENTS),
        "cells_per_patient": _validate.positive_int(cells_per_patient, name="cells_per_patient",
                                                    minimum=_MIN_CELLS_PER_PATIENT),
        "n_genes": _validate.positive_int(n_genes, name="n_genes", minimum=1),
        "random_state": _validate.random_state(random_state),
        "spatial": _validate.boolean(spatial, name="spatial"),
        "null": _validate.boolean(null, name="null"),
        "noise": _number(noise, name="noise"),
    }
    if not _MIN_NOISE <= args["noise"] <= _MAX_NOISE:
        raise ValueError(f"noise must be in [{_MIN_NOISE}, {_MAX_NOISE}] (1 = default cohort; effects are divided "
                         f"by it, lr_fold raised to 1/noise), got {args['noise']}")
    return args


@dataclass(frozen=True)
class _Cohort:
    """The patients of a simulated cohort."""

    patients: np.ndarray  # names, P01...
    resistor: np.ndarray  # bool per patient
    response: np.ndarray  # "responder" / "resistor" per patient
    covariates: pd.DataFrame  # patient, response, treatment, age, sex, etiology


@dataclass(frozen=True)
class _Cells:
    """Every simulated cell as indices: its patient, cell type and state (into STATE_IDS, -1 = none)."""

    patient: np.ndarray
    cell_type: np.ndarray
    state: np.ndarray
    n_cells_type: np.ndarray  # (patients, cell types) counts
    prop_type: np.ndarray  # each patient's Dirichlet draw of type proportions
    mean_type: np.ndarray  # the group mean of type proportions
    state_table: pd.DataFrame  # truth: state proportions within their parent type


def _draw_patients(rng: np.random.Generator, n_patients: int) -> _Cohort:
    """Half the patients (rounded down) are resistors; covariates drawn from HCC-like demographics."""
    width = max(2, len(str(n_patients)))
    patients = np.array([f"P{i + 1:0{width}d}" for i in range(n_patients)])
    resistor = np.zeros(n_patients, dtype=bool)
    resistor[rng.permutation(n_patients)[: n_patients // 2]] = True
    response = np.where(resistor, RESISTOR, RESPONDER)
    covariates = pd.DataFrame({
        "patient": patients,
        "response": response,
        "treatment": TREATMENT,
        "age": np.clip(np.round(rng.normal(63, 9, n_patients)), 30, 88).astype(int),
        "sex": np.where(rng.random(n_patients) < 0.78, "male", "female"),
        "etiology": rng.choice(["HBV", "HCV", "alcohol", "MASLD"], size=n_patients, p=[0.4, 0.2, 0.2, 0.2]),
    })
    return _Cohort(patients, resistor, response, covariates)


def _draw_cells(rng: np.random.Generator, cohort: _Cohort, applied: Mapping[str, float], *, noise: float,
                cells_per_patient: int) -> _Cells:
    """Cell types per patient, then states within types; cells ordered by patient, shuffled within."""
    n_patients, resistor = cohort.patients.size, cohort.resistor
    shift_t = np.array([applied.get(t, 0.0) for t in CELL_TYPES])
    logits = np.log([BASE_PROPORTIONS[t] for t in CELL_TYPES])[None, :] + resistor[:, None] * shift_t[None, :]
    mean_t = _softmax(logits)
    prop_t = _dirichlet(rng, mean_t * (_TYPE_CONCENTRATION / noise))
    n_cells_t = _multinomial(rng, np.full(n_patients, cells_per_patient), prop_t)  # (P, T)
    blocks: list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]] = []  # (patient, type, state, n)
    state_rows = []
    for t, cell_type in enumerate(CELL_TYPES):
        states = list(STATES.get(cell_type, {}))
        if not states:
            blocks.append((np.arange(n_patients), np.full(n_patients, t), np.full(n_patients, -1), n_cells_t[:, t]))
            continue
        base = np.array([STATES[cell_type][s] for s in states] + [1.0 - sum(STATES[cell_type].values())])
        shift_s = np.array([applied.get(s, 0.0) for s in states] + [0.0])
        mean_s = _softmax(np.log(base)[None, :] + resistor[:, None] * shift_s[None, :])
        prop_s = _dirichlet(rng, mean_s * (_STATE_CONCENTRATION / noise))
        n_s = _multinomial(rng, n_cells_t[:, t], prop_s)  # (P, K + 1)
        for k, s_idx in enumerate([STATE_IDS.index(s) for s in states] + [-1]):
            blocks.append((np.arange(n_patients), np.full(n_patients, t), np.full(n_patients, s_idx), n_s[:, k]))
        state_rows += _state_rows(cohort, cell_type, [*states, UNASSIGNED], n_s, n_cells_t[:, t], prop_s, mean_s)
    block_p, block_t, block_s, block_n = (np.concatenate(part) for part in zip(*blocks, strict=True))
    cell_p, cell_t, cell_s = (np.repeat(part, block_n) for part in (block_p, block_t, block_s))
    order = np.lexsort((rng.random(cell_p.size), cell_p))  # patients in order, cells shuffled within
    state_table = pd.concat(state_rows, ignore_index=True) if state_rows else pd.DataFrame()
    return _Cells(cell_p[order], cell_t[order], cell_s[order], n_cells_t, prop_t, mean_t, state_table)


def _state_rows(cohort: _Cohort, cell_type: str, labels: list[str], n_s: np.ndarray, parent_n: np.ndarray,
                prop_s: np.ndarray, mean_s: np.ndarray) -> list[pd.DataFrame]:
    """Truth rows of the states (and "unassigned") of one parent type, one frame per state."""
    n_patients = cohort.patients.size
    return [pd.DataFrame({
        "patient": cohort.patients, "response": cohort.response, "cell_type": cell_type, "state": label,
        "n_cells": n_s[:, k], "n_parent": parent_n,
        "proportion": np.divide(n_s[:, k], parent_n, out=np.full(n_patients, np.nan), where=parent_n > 0),
        "expected": prop_s[:, k], "group_mean": mean_s[:, k],
    }) for k, label in enumerate(labels)]


def _draw_counts(rng: np.random.Generator, bio: _Biology, cohort: _Cohort, cells: _Cells,
                 applied: Mapping[str, float], *, noise: float) -> sp.csr_matrix:
    """Negative-binomial UMI counts: type programme + patient batch + state programme, library size."""
    n_patients, n_obs = cohort.patients.size, cells.patient.size
    cell_p, cell_t, cell_s = cells.patient, cells.cell_type, cells.state
    batch = rng.normal(0.0, _BATCH_SD * noise, (n_patients, bio.genes.size)).astype(np.float32)
    log_mu = bio.type_levels[cell_t]
    log_mu += batch[cell_p]
    in_state = np.flatnonzero(cell_s >= 0)
    intensity = np.clip(rng.normal(1.0, _STATE_INTENSITY_SD, in_state.size), 0.2, 1.8).astype(np.float32)
    log_mu[in_state] += intensity[:, None] * bio.state_delta[cell_s[in_state]]
    lr_fold = applied.get("lr_fold", 1.0)
    lig, rec = bio.lr_index
    if lr_fold != 1.0:
        res_cell = cohort.resistor[cell_p]
        src = res_cell & (cell_s == STATE_IDS.index(LR_TRUTH["source_state"]))
        tgt = res_cell & (cell_t == CELL_TYPES.index(LR_TRUTH["target_cell_type"]))
        log_mu[src, lig] += np.float32(math.log(lr_fold))
        log_mu[tgt, rec] += np.float32(math.log(lr_fold))
    log_mu -= log_mu.max(axis=1, keepdims=True)
    np.exp(log_mu, out=log_mu)
    depth = np.exp(rng.normal(0.0, _DEPTH_SD, n_patients))
    lib_factor = np.array([_LIB_FACTOR[t] for t in CELL_TYPES])
    lib = _LIB_MEDIAN * lib_factor[cell_t] * depth[cell_p] * np.exp(rng.normal(0.0, _LIB_SD, n_obs))
    log_mu *= (lib / log_mu.sum(axis=1, dtype=np.float64)).astype(np.float32)[:, None]
    return _negative_binomial(rng, log_mu, bio.phi * np.float32(noise))


def _cohort_anndata(counts: sp.csr_matrix, bio: _Biology, cohort: _Cohort, cells: _Cells) -> AnnData:
    """Counts in ``layers["counts"]``, ``log1p(normalize_total(1e4))`` in X, patient covariates in obs."""
    n_obs, cell_p = cells.patient.size, cells.patient
    patients = cohort.patients
    totals = np.asarray(counts.sum(axis=1)).ravel()
    X = counts.astype(np.float32)
    scale = np.divide(1e4, totals, out=np.zeros(n_obs), where=totals > 0).astype(np.float32)
    X.data *= np.repeat(scale, np.diff(X.indptr))
    np.log1p(X.data, out=X.data)
    cov = cohort.covariates.set_index("patient")
    state_labels = np.array([*list(STATE_IDS), UNASSIGNED], dtype=object)[np.where(cells.state >= 0, cells.state, -1)]
    obs = pd.DataFrame({
        "patient": pd.Categorical(patients[cell_p], categories=patients),
        "response": pd.Categorical(cohort.response[cell_p], categories=[RESPONDER, RESISTOR]),
        "cell_type": pd.Categorical(np.array(CELL_TYPES, dtype=object)[cells.cell_type], categories=list(CELL_TYPES)),
        "state_true": pd.Categorical(state_labels, categories=[*list(STATE_IDS), UNASSIGNED]),
        "treatment": pd.Categorical(np.full(n_obs, TREATMENT)),
        "age": cov["age"].to_numpy()[cell_p],
        "sex": pd.Categorical(cov["sex"].to_numpy()[cell_p], categories=["female", "male"]),
        "etiology": pd.Categorical(cov["etiology"].to_numpy()[cell_p], categories=["HBV", "HCV", "alcohol", "MASLD"]),
        "n_counts": totals.astype(np.int64),
    })
    starts = np.searchsorted(cell_p, np.arange(patients.size))
    counter = np.arange(n_obs) - starts[cell_p]
    obs.index = pd.Index(np.char.add(np.char.add(patients[cell_p].astype(str), "_"), counter.astype(str)), name=None)
    adata = AnnData(X=X, obs=obs, var=bio.var.copy())
    adata.layers[Keys.COUNTS] = counts
    adata.uns["log1p"] = {"base": None}
    return adata


def _truth(args: Mapping[str, Any], cohort: _Cohort, cells: _Cells, bio: _Biology, given: Mapping[str, float],
           applied: Mapping[str, float]) -> dict[str, Any]:
    """The ground truth written to ``uns["hcctme_sim"]`` (without the spatial entries)."""
    n_patients, noise = cohort.patients.size, args["noise"]
    n_types, n_res = len(CELL_TYPES), int(cohort.resistor.sum())
    type_table = pd.DataFrame({
        "patient": np.repeat(cohort.patients, n_types), "response": np.repeat(cohort.response, n_types),
        "cell_type": np.tile(CELL_TYPES, n_patients), "n_cells": cells.n_cells_type.ravel(),
        "n_parent": args["cells_per_patient"], "proportion": cells.n_cells_type.ravel() / args["cells_per_patient"],
        "expected": cells.prop_type.ravel(), "group_mean": cells.mean_type.ravel(),
    })
    return {
        "random_state": int(args["random_state"]),
        "null": bool(args["null"]),
        "noise": float(noise),
        "spatial": bool(args["spatial"]),
        "params": {
            "n_patients": int(n_patients), "cells_per_patient": int(args["cells_per_patient"]),
            "n_genes": int(bio.genes.size), "n_responders": int(n_patients - n_res), "n_resistors": n_res,
            "type_concentration": _TYPE_CONCENTRATION / noise, "state_concentration": _STATE_CONCENTRATION / noise,
            "batch_sd": _BATCH_SD * noise, "dispersion_median": _DISPERSION * noise,
            "library_median": _LIB_MEDIAN, "library_sd": _LIB_SD, "depth_sd": _DEPTH_SD,
            "library_version": _validate.library_version(), "reference": RESPONDER,
        },
        "effects": dict(given),
        "effects_applied": dict(applied),
        "effects_table": _effects_table(given, applied),
        "patients": cohort.covariates,
        "cell_type_proportions": type_table,
        "state_proportions": cells.state_table,
        "programmes": {k: list(v) for k, v in bio.programmes.items()},
        "state_parent": dict(STATE_PARENT),
        "cell_contexts": dict(CONTEXTS),
        "lr": _lr_table(applied),
    }


def _effects_table(given: Mapping[str, float], applied: Mapping[str, float]) -> pd.DataFrame:
    """One row per planted effect (empty for null cohorts)."""
    rows = []
    for name, value in given.items():
        if name in STATE_PARENT:
            kind, parent, unit = "state", STATE_PARENT[name], "log_odds"
        elif name in BASE_PROPORTIONS:
            kind, parent, unit = "cell_type", "all", "log_odds"
        elif name == "lr_fold":
            kind, parent, unit = "ligand_receptor", f"{LR_TRUTH['ligand']}->{LR_TRUTH['receptor']}", "fold"
        else:
            kind, parent, unit = "spatial", "tumour_nests", "fraction"
        neutral = _NO_EFFECT.get(name, 0.0)
        eff = applied[name]
        direction = "none" if eff == neutral else ("up" if eff > neutral else "down")
        rows.append({"name": name, "kind": kind, "parent": parent, "unit": unit, "value": float(value),
                     "applied": float(eff), "direction_in_resistors": direction})
    return pd.DataFrame(rows, columns=["name", "kind", "parent", "unit", "value", "applied",
                                       "direction_in_resistors"])


def _lr_table(applied: Mapping[str, float]) -> pd.DataFrame:
    fold = float(applied.get("lr_fold", 1.0))
    return pd.DataFrame([{**LR_TRUTH, "fold": fold, "condition": RESISTOR, "reference": RESPONDER,
                          "planted": bool(fold != 1.0)}])


@lru_cache(maxsize=1)
def _demo_cached() -> AnnData:
    return simulate_cohort(16, 600, spatial=True, random_state=0)


def demo() -> AnnData:
    """The cohort ``hcctme demo`` runs on: 16 patients (8 resistors) x 600 cells, spatial, random_state 0.

    Built once per process (cached) and returned as a fresh copy, so callers may modify it.
    """
    return _demo_cached().copy()
