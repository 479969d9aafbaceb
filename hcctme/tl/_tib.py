"""Spatial tumour immune barrier (TIB): SPP1+ TAM / myCAF rings around tumour and T-cell exclusion.

Liu Y, Xun Z, Ma K et al. 2023 J Hepatol 78(4):770-782 ("Identification of a tumour immune barrier
in the HCC microenvironment that determines the efficacy of immunotherapy") describe SPP1+
macrophages and cancer-associated fibroblasts forming a barrier at the tumour boundary that keeps
T cells out and blunts anti-PD-1. :func:`tib` measures that structure per sample.
"""

from __future__ import annotations

import logging
import zlib
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any, Literal

import numpy as np
import pandas as pd
import scipy.sparse as sp
from anndata import AnnData

from hcctme import _validate
from hcctme._constants import BARRIER_STATES, Defaults, Keys, Suffix
from hcctme._logging import logger
from hcctme.tl import _contexts, _state_order, _tib_stats

#: default CD8 T-cell states (any CD8 T cell counts: the context ``cd8_t`` is used as well)
CD8_STATES: tuple[str, ...] = ("CD8_TEX_TERMINAL", "CD8_TEX_PROGENITOR", "CD8_TEFF")
#: cell contexts read as tumour (HCC tumour cells are hepatocyte-derived)
TUMOUR_CONTEXTS: tuple[str, ...] = ("tumour", "hepatocyte")
T_CELL_CONTEXTS: tuple[str, ...] = ("cd8_t",)
#: spot mode defaults: signature score columns used as proxies
SPOT_TUMOUR_SIGNATURES: tuple[str, ...] = ("MARKER_TUMOUR",)
SPOT_T_CELL_SIGNATURES: tuple[str, ...] = ("MARKER_CD8_T",)
#: radius=None: this many times the sample's median nearest-neighbour distance
RADIUS_FACTOR: dict[str, float] = {"cells": 2.0, "spots": 1.5}

Labels = Sequence[str] | str | Mapping[str, Sequence[str] | str] | None

_COLUMNS = [
    "n_cells", "n_tumour", "n_barrier", "n_t_cell", "radius", "tib_score", "tib_pvalue", "t_exclusion",
    "t_exclusion_pvalue", "colocalisation", "colocalisation_expected", "coverage", "coverage_expected",
    "t_cell_distance", "t_cell_distance_expected", "t_cell_contact", "t_cell_contact_expected",
    "nhood_z_barrier_tumour", "nhood_z_t_cell_tumour", "n_boundary", "n_ring", "note",
]


# --------------------------------------------------------------------------------------------------
# label resolution
# --------------------------------------------------------------------------------------------------
def _as_list(values: Sequence[str] | str) -> list[str]:
    if isinstance(values, str):
        return [values]
    if not isinstance(values, Sequence | np.ndarray | pd.Index) or isinstance(values, bytes):
        raise TypeError(f"labels must be a string, a list of strings or a {{column: labels}} dict, got {values!r}")
    out = [str(v) for v in values]
    if not out:
        raise ValueError("an empty list of labels was given")
    return out


def _obs_values(adata: AnnData, key: str, values: list[str], *, role: str, absent_ok: bool = False) -> np.ndarray:
    """Cells whose ``obs[key]`` is one of ``values``.

    A value that is no level is an error, unless ``absent_ok`` (labels recorded by an earlier call, read again on
    data that may lack some of them: pl.tib on a subset).
    """
    col = _validate.obs_column(adata, key, purpose=f"{role} labels").astype(str)
    levels = set(pd.unique(col))
    unknown = [v for v in values if v not in levels]
    if unknown and not absent_ok:
        raise ValueError(
            f"unknown {role} label(s) {unknown} in obs[{key!r}]; its levels are: "
            f"{_validate._preview(sorted(levels))}"
        )
    return col.isin(values).to_numpy()


def _mapping_mask(adata: AnnData, labels: Mapping, *, role: str, absent_ok: bool = False) -> np.ndarray:
    mask = np.zeros(adata.n_obs, dtype=bool)
    if not labels:
        raise ValueError(f"{role}_labels is an empty dict")
    for key, values in labels.items():
        mask |= _obs_values(adata, key, _as_list(values), role=role, absent_ok=absent_ok)
    return mask


def _state_column(adata: AnnData, state_key: str) -> pd.Series:
    return _validate.state_calls(adata, state_key).astype(str)


def _context_column(adata: AnnData, state_key: str) -> pd.Series:
    key = state_key + Suffix.CONTEXT
    if key not in adata.obs.columns:
        raise KeyError(
            f"no cell contexts in adata.obs[{key!r}]; run hcctme.tl.call_states(adata, cell_type_key=...) "
            "first, or name the tumour cells yourself (tumour_labels=..., label_key=...)"
        )
    return adata.obs[key].astype(str)


def _levels_of(col: pd.Series, contexts: Sequence[str]) -> list[str]:
    """The labels of ``col`` that call_states' label reader recognises as one of ``contexts``.

    The reader's rules, not substrings: "Tumor-associated macrophages" is a macrophage label, not a tumour one.
    """
    return [lv for lv in pd.unique(col) if _contexts.recognise(lv)[0] in contexts]


def _cells_masks(adata: AnnData, *, state_key: str, label_key: str | None, barrier: Labels,
                 tumour: Labels, t_cell: Labels,
                 absent_ok: bool = False) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """0/1 masks of barrier, tumour and T cells, and a record of how each was defined (``absent_ok``: below)."""
    used: dict[str, Any] = {}
    masks: dict[str, np.ndarray] = {}
    column = label_key if label_key is not None else state_key

    def labels_column() -> pd.Series:
        if label_key is None:
            return _state_column(adata, state_key)
        return _validate.obs_column(adata, label_key, purpose="label_key").astype(str)

    for role, labels in (("barrier", barrier), ("tumour", tumour), ("t_cell", t_cell)):
        if isinstance(labels, Mapping):
            masks[role] = _mapping_mask(adata, labels, role=role, absent_ok=absent_ok)
            used[role] = {str(k): _as_list(v) for k, v in labels.items()}
        elif labels is not None:
            values = _as_list(labels)
            if label_key is None:
                _state_column(adata, state_key)  # KeyError: run call_states
            masks[role] = _obs_values(adata, column, values, role=role, absent_ok=absent_ok)
            used[role] = {column: values}
    # defaults
    if "barrier" not in masks:
        col = labels_column()
        values = [v for v in BARRIER_STATES if v in set(col)]
        if not values:
            raise _validate.TooFewCellsError(
                f"none of the default barrier states {list(BARRIER_STATES)} occur in obs[{column!r}]; "
                "name the barrier cells with barrier_labels=[...] (values of obs[label_key]) or "
                "barrier_labels={column: [...]}"
            )
        masks["barrier"] = col.isin(values).to_numpy()
        used["barrier"] = {column: values}
    if "tumour" not in masks:
        if label_key is None:
            ctx = _context_column(adata, state_key)
            masks["tumour"] = ctx.isin(TUMOUR_CONTEXTS).to_numpy()
            used["tumour"] = {state_key + Suffix.CONTEXT: list(TUMOUR_CONTEXTS)}
        else:
            col = labels_column()
            values = _levels_of(col, TUMOUR_CONTEXTS)
            if not values:
                raise _validate.TooFewCellsError(
                    f"no tumour label recognised in obs[{label_key!r}] (labels read as the contexts "
                    f"{list(TUMOUR_CONTEXTS)}, as call_states reads them: 'Tumour cells', 'Malignant', 'HCC', "
                    "'Hepatocytes' ...); pass tumour_labels=[...] or tumour_labels={column: [...]}"
                )
            masks["tumour"] = col.isin(values).to_numpy()
            used["tumour"] = {label_key: values}
    if "t_cell" not in masks:
        col = labels_column()
        values = [v for v in CD8_STATES if v in set(col)]
        mask = col.isin(values).to_numpy()
        record: dict[str, list[str]] = {column: values}
        if label_key is None:
            ctx_key = state_key + Suffix.CONTEXT
            if ctx_key in adata.obs.columns:
                mask |= adata.obs[ctx_key].astype(str).isin(T_CELL_CONTEXTS).to_numpy()
                record[ctx_key] = list(T_CELL_CONTEXTS)
        else:
            extra = _levels_of(col, T_CELL_CONTEXTS)
            mask |= col.isin(extra).to_numpy()
            record[label_key] = sorted(set(values) | set(extra))
        if not mask.any():
            raise _validate.TooFewCellsError(
                f"no CD8 T cells found by default in obs[{column!r}] (states {list(CD8_STATES)} or the "
                "cd8_t context); pass t_cell_labels=[...] or t_cell_labels={column: [...]}"
            )
        masks["t_cell"] = mask
        used["t_cell"] = {k: v for k, v in record.items() if v}
    return masks, used


def _spot_scores(adata: AnnData, scores_key: str) -> pd.DataFrame:
    scores = _validate.scores(adata, scores_key)
    if not np.all(np.isfinite(scores.to_numpy(dtype=float))):
        raise ValueError(f"adata.obsm[{scores_key!r}] has NaN or infinite scores; re-run hcctme.tl.score")
    return scores


def _spot_proxy(adata: AnnData, labels: Labels, default: Sequence[str], *, role: str, label_key: str | None,
                scores_key: str, absent_ok: bool = False) -> tuple[np.ndarray, dict[str, Any]]:
    """A [0, 1] proxy per spot: obs labels (0/1) or the mean of robust-scaled signature scores."""
    if isinstance(labels, Mapping):
        return _mapping_mask(adata, labels, role=role, absent_ok=absent_ok).astype(float), {
            str(k): _as_list(v) for k, v in labels.items()
        }
    if labels is not None and label_key is not None:
        values = _as_list(labels)
        return _obs_values(adata, label_key, values, role=role, absent_ok=absent_ok).astype(float), {
            label_key: values}
    scores = _spot_scores(adata, scores_key)
    if labels is None:
        columns = [c for c in default if c in scores.columns]
        if not columns:
            raise KeyError(
                f"spot mode reads the {role} proxy from signature scores {list(default)}, none of which is in "
                f"adata.obsm[{scores_key!r}]; run hcctme.tl.score with them, or pass {role}_labels="
            )
    else:
        columns = _as_list(labels)
        missing = [c for c in columns if c not in scores.columns]
        if missing:
            raise KeyError(
                f"{role}_labels {missing} are not signature scores in adata.obsm[{scores_key!r}] "
                f"(spot mode reads proxies from scores); available: {_validate._preview(scores.columns)}"
            )
    values = np.column_stack(
        [_tib_stats.robust_unit_scale(scores[c].to_numpy(dtype=float)) for c in columns]
    ).mean(axis=1)
    return values, {f"obsm[{scores_key!r}]": columns}


def _spots_weights(adata: AnnData, *, label_key: str | None, scores_key: str, barrier: Labels, tumour: Labels,
                   t_cell: Labels, absent_ok: bool = False) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    weights, used = {}, {}
    common = dict(label_key=label_key, scores_key=scores_key, absent_ok=absent_ok)
    weights["barrier"], used["barrier"] = _spot_proxy(adata, barrier, BARRIER_STATES, role="barrier", **common)
    t_default: Sequence[str] = SPOT_T_CELL_SIGNATURES
    if t_cell is None and scores_key in adata.obsm and not any(
        c in getattr(adata.obsm[scores_key], "columns", ()) for c in t_default
    ):
        t_default = CD8_STATES
    weights["t_cell"], used["t_cell"] = _spot_proxy(adata, t_cell, t_default, role="t_cell", **common)
    proxy, used["tumour"] = _spot_proxy(adata, tumour, SPOT_TUMOUR_SIGNATURES, role="tumour", **common)
    if isinstance(tumour, Mapping) or (tumour is not None and label_key is not None):
        weights["tumour"] = proxy > 0.5
    else:
        cut = _tib_stats.otsu_threshold(proxy)
        weights["tumour"] = proxy > cut
        used["tumour_threshold"] = float(cut)
    return weights, used


# --------------------------------------------------------------------------------------------------
# graph and neighbourhood enrichment (squidpy)
# --------------------------------------------------------------------------------------------------
def _squidpy():
    try:
        import squidpy as sq
    except ImportError as err:  # pragma: no cover - exercised by monkeypatching in tests
        raise ImportError(
            "hcctme.tl.tib needs squidpy for the spatial neighbour graph; install it with "
            "pip install hcctme[spatial] (or pip install squidpy)"
        ) from err
    return sq


#: loggers through which squidpy reports one INFO line per graph
_NOISY_LOGGERS = ("spatialdata._logging", "squidpy")


@contextmanager
def _quiet_squidpy() -> Iterator[None]:
    """Keep a loop over samples quiet: squidpy logs one INFO line per graph it builds."""
    saved = [(logging.getLogger(name), logging.getLogger(name).level) for name in _NOISY_LOGGERS]
    for log, level in saved:
        log.setLevel(max(level, logging.WARNING))
    try:
        yield
    finally:
        for log, level in saved:
            log.setLevel(level)


def _radius_graph(sq, coords: np.ndarray, radius: float) -> sp.csr_matrix:
    mini = AnnData(np.zeros((coords.shape[0], 1), dtype=np.float32))
    mini.obsm["spatial"] = coords
    build = getattr(sq.gr, "spatial_neighbors_radius", None)  # squidpy >= 1.8
    if build is not None:
        result = build(mini, radius=float(radius), spatial_key="spatial", copy=True)
    else:
        result = sq.gr.spatial_neighbors(mini, spatial_key="spatial", coord_type="generic", radius=float(radius),
                                         delaunay=False, copy=True)
    return sp.csr_matrix(result.connectivities)


def _nhood_z(sq, coords: np.ndarray, graph: sp.csr_matrix, masks: dict[str, np.ndarray], *, n_perms: int,
             seed: int) -> tuple[float, float]:
    """Squidpy neighbourhood-enrichment z-scores of barrier-tumour and T cell-tumour contacts."""
    labels = np.full(coords.shape[0], "other", dtype=object)
    labels[masks["t_cell"]] = "t_cell"
    labels[masks["barrier"]] = "barrier"
    labels[masks["tumour"]] = "tumour"
    present = pd.unique(labels)
    if len(present) < 2 or "tumour" not in present or n_perms < 1 or graph.nnz == 0:
        return np.nan, np.nan
    mini = AnnData(np.zeros((coords.shape[0], 1), dtype=np.float32))
    mini.obs["tib_label"] = pd.Categorical(labels)
    mini.obsp["tib_connectivities"] = graph
    result = sq.gr.nhood_enrichment(mini, cluster_key="tib_label", connectivity_key="tib", n_perms=n_perms,
                                    seed=seed, copy=True, show_progress_bar=False, n_jobs=1)
    cats = list(mini.obs["tib_label"].cat.categories)
    z = np.asarray(result.zscore if hasattr(result, "zscore") else result[0], dtype=float)

    def get(a: str) -> float:
        if a not in cats:
            return np.nan
        return float(z[cats.index(a), cats.index("tumour")])

    return get("barrier"), get("t_cell")


def _sample_row(sq, sample: str, idx: np.ndarray, coords: np.ndarray, tumour: np.ndarray,
                weights: dict[str, np.ndarray], masks: dict[str, np.ndarray] | None, *, radius: float | None,
                mode: str, n_perms: int, rng: np.random.Generator) -> dict[str, Any]:
    """One sample's row of the TIB table."""
    xy = coords[idx]
    r = float(radius) if radius is not None else RADIUS_FACTOR[mode] * _tib_stats.median_nn_distance(xy)
    row: dict[str, Any] = {"sample": sample, "n_cells": idx.size, "radius": r,
                           "n_barrier": float(weights["barrier"][idx][~tumour[idx]].sum()),
                           "n_t_cell": float(weights["t_cell"][idx][~tumour[idx]].sum())}
    notes = []
    if len(np.unique(xy, axis=0)) < 3 or not r > 0:  # cells stacked at one spot (coordinates zero-filled): no map
        notes.append("too few distinct positions")
        graph = sp.csr_matrix((idx.size, idx.size), dtype=bool)
    else:
        graph = _radius_graph(sq, xy, r)
    geom = _tib_stats.geometry(graph, tumour[idx], xy)
    with np.errstate(divide="ignore", invalid="ignore"):
        stats = _tib_stats.sample_stats(geom, weights["barrier"][idx], weights["t_cell"][idx],
                                        n_perms=n_perms, rng=rng)
    stats.pop("barrier_mass")
    stats.pop("t_cell_mass")
    row.update(stats)
    if masks is not None:
        sub = {k: v[idx] for k, v in masks.items()}
        row["nhood_z_barrier_tumour"], row["nhood_z_t_cell_tumour"] = _nhood_z(
            sq, xy, graph, sub, n_perms=n_perms, seed=int(rng.integers(2**31 - 1))
        )
    else:
        row["nhood_z_barrier_tumour"] = row["nhood_z_t_cell_tumour"] = np.nan
    if geom.tumour.sum() == 0:
        notes.append("no tumour")
    elif geom.n_boundary == 0:
        notes.append("no tumour boundary within radius")
    if row["n_barrier"] == 0:
        notes.append("no barrier cells")
    if row["n_t_cell"] == 0:
        notes.append("no CD8 T cells")
    row["note"] = "; ".join(notes)
    return row


# --------------------------------------------------------------------------------------------------
# public
# --------------------------------------------------------------------------------------------------
def _as_given(labels: Labels) -> Any:
    """A ``*_labels`` argument as the call record keeps it (sequences as lists)."""
    if labels is None or isinstance(labels, str):
        return labels
    if isinstance(labels, Mapping):
        return {str(k): v if isinstance(v, str) else list(v) for k, v in labels.items()}
    return list(labels)


def tib(
    adata: AnnData,
    *,
    sample_key: str,
    state_key: str = Keys.STATE,
    barrier_labels: Labels = None,
    tumour_labels: Labels = None,
    t_cell_labels: Labels = None,
    label_key: str | None = None,
    spatial_key: str = Keys.SPATIAL,
    mode: Literal["cells", "spots"] = "cells",
    scores_key: str = Keys.SCORES,
    radius: float | None = None,
    n_perms: int = 200,
    random_state: int = Defaults.SEED,
    key_added: str = Keys.TIB,
    copy: bool = False,
) -> AnnData | None:
    """Measure the spatial tumour immune barrier (TIB) and CD8 T-cell exclusion in each sample.

    A barrier is SPP1+ TAMs and myCAFs sitting on the tumour boundary (Liu Y et al. 2023 J Hepatol
    78(4):770-782). For each sample this builds a radius neighbour graph (``squidpy.gr.spatial_neighbors``),
    finds the tumour edge (tumour positions with a non-tumour neighbour) and the ring around it
    (non-tumour positions with a tumour neighbour), and measures:

    ``colocalisation``
        share of the barrier that sits in the ring (fraction of barrier cells touching tumour);
    ``coverage``
        fraction of the tumour edge touched by a barrier cell (spots: mean of the largest barrier
        proxy among each edge spot's neighbours);
    ``tib_score``
        ``((colocalisation - expected) + (coverage - expected)) / 2``, expectations under the null;
        0 = barrier cells where chance puts them; all of them ringing the tumour and covering its edge
        reach ``1 - (colocalisation_expected + coverage_expected) / 2``, under 1 and set by the sample's
        geometry (read ``tib_pvalue`` or each part against its expectation when samples differ in shape);
    ``t_exclusion``
        log2 of the mean distance of CD8 T cells to the nearest tumour cell over its expectation
        (> 0: kept further out than chance);
    ``nhood_z_barrier_tumour`` / ``nhood_z_t_cell_tumour``
        squidpy ``nhood_enrichment`` z-scores of those contacts on the same graph (all labels permuted;
        cells mode only), for reference.

    Null and p-values: labels are permuted within each sample among its non-tumour positions
    (``n_perms`` times; tumour architecture kept), one-sided ``tib_pvalue`` and ``t_exclusion_pvalue``.
    Each sample's permutations are seeded from ``random_state`` and the sample name, so in cells mode a
    sample's result does not depend on which other samples are analysed with it. In spot mode it does: the
    score proxies are scaled, and the tumour spots cut (Otsu), over all the spots of the call, so that a slide
    without tumour gets none; analyse the slides of one cohort together, or pass ``tumour_labels`` (a column
    or a Mapping) to fix the tumour spots.
    Neighbouring cells are not independent, so compare groups of patients with samples as replicates
    (e.g. a rank test on ``tib_score``), not by counting significant samples.

    Parameters
    ----------
    adata
        Cells (``mode="cells"``) or spots (``mode="spots"``) with 2-D coordinates in ``obsm[spatial_key]``.
    sample_key
        obs column naming the sample (slide/patient); each sample is analysed on its own.
    state_key
        obs column of :func:`hcctme.tl.call_states`; its ``state_key + "_context"`` column gives tumour
        (``tumour``/``hepatocyte`` contexts) and CD8 T cells (``cd8_t``) by default.
    barrier_labels, tumour_labels, t_cell_labels
        Who is who. ``None``: the library's states (barrier = TAM2_SPP1, CAF_ECM_MYCAF, CAF_TGFB_MYCAF;
        tumour = tumour/hepatocyte context; T cells = CD8 states or the cd8_t context). A list: values of
        ``obs[label_key]`` (or ``obs[state_key]`` when label_key is None; score columns in spot mode).
        A dict ``{obs column: values}`` names labels in any column(s), e.g.
        ``tumour_labels={"cell_type": ["Tumour cells"]}``.
    label_key
        obs column the plain label lists refer to (e.g. a user's annotation). In cells mode, with it and no
        explicit labels, tumour and CD8 T labels are recognised as :func:`hcctme.tl.call_states` reads
        labels (tumour / hepatocyte: "Tumour cells", "Malignant", "HCC", "Hepatocytes" ...; CD8 T: "CD8+
        T cells" ...; "Tumor-associated macrophages" is a macrophage label) and barrier labels must be the
        library state ids. In spot mode only the plain lists read it (spots mix cells: nothing is recognised
        from a spot's label); label_key without one is refused.
    spatial_key
        obsm key of the coordinates.
    mode
        ``"cells"`` for single-cell-resolution data (MERFISH, CosMx, Xenium, segmented Visium HD...):
        each cell is barrier / tumour / T cell or none. ``"spots"`` for Visium-like spots that mix
        cells: signature scores in ``obsm[scores_key]`` (from :func:`hcctme.tl.score`) are used as
        proxies. The barrier proxy is the mean of TAM2_SPP1, CAF_ECM_MYCAF and CAF_TGFB_MYCAF scores,
        the T-cell proxy MARKER_CD8_T (or the CD8 state scores), each scaled to [0, 1] across all spots
        (2nd-98th percentile), and tumour spots are those whose MARKER_TUMOUR proxy is above Otsu's
        threshold (or the spots named by ``tumour_labels={column: values}``, e.g. a pathologist's
        annotation). The same statistics then run with these continuous weights.
    scores_key
        obsm key of signature scores (spot mode).
    radius
        Neighbourhood radius in coordinate units. ``None``: per sample, 2 x (cells) or 1.5 x (spots) the
        median nearest-neighbour distance (first ring of neighbours).
    n_perms
        Permutations per sample. 0 skips them: no p-values, and no ``tib_score`` (the expected
        coverage comes from the permutations; a sample without barrier cells still scores 0); colocalisation,
        coverage and ``t_exclusion`` remain.
    random_state
        Seed of the permutations.
    key_added
        The per-sample table goes to ``uns[key_added]`` (read it with :func:`hcctme.get.tib`), the
        parameters, labels used and library version to ``uns[key_added + "_params"]``.
    copy
        Write into a copy of ``adata`` and return it.

    Returns
    -------
    AnnData or None
        ``None``, or the modified copy when ``copy=True``. The table (index = sample) has the columns
        ``n_cells``, ``n_tumour``, ``n_barrier``, ``n_t_cell``, ``radius``, ``tib_score``, ``tib_pvalue``,
        ``t_exclusion``, ``t_exclusion_pvalue`` and the components above (``note`` says why a value is
        missing). In spot mode ``n_barrier`` / ``n_t_cell`` are the summed proxies.

    Raises
    ------
    TooFewCellsError
        No tumour cells or spots, or none of the default barrier states or CD8 T cells in the data (name
        them with the ``*_labels`` arguments): a property of the data, which :func:`hcctme.pipeline.run`
        skips the step for, with the reason.
    """
    samples, coords = _check_tib(adata, sample_key=sample_key, spatial_key=spatial_key, key_added=key_added,
                                 n_perms=n_perms, radius=radius, label_key=label_key, copy=copy)
    mode = _validate.choice(mode, ("cells", "spots"), name="mode")
    random_state = _validate.random_state(random_state)
    if mode == "cells":
        masks, used = _cells_masks(adata, state_key=state_key, label_key=label_key, barrier=barrier_labels,
                                   tumour=tumour_labels, t_cell=t_cell_labels)
        weights = {k: v.astype(float) for k, v in masks.items()}
        tumour = masks["tumour"]
    else:
        plain = [lab for lab in (barrier_labels, tumour_labels, t_cell_labels)
                 if lab is not None and not isinstance(lab, Mapping)]
        if label_key is not None and not plain:
            raise ValueError(
                f"label_key={label_key!r} is read in spot mode only by plain label lists, and none was given: the "
                "proxies come from signature scores. Pass e.g. tumour_labels=[...] (values of obs[label_key]), or "
                "leave label_key out (a {column: values} dict names its own column)")
        masks = None
        weights, used = _spots_weights(adata, label_key=label_key, scores_key=scores_key, barrier=barrier_labels,
                                       tumour=tumour_labels, t_cell=t_cell_labels)
        tumour = np.asarray(weights.pop("tumour"), dtype=bool)
    _check_tumour(tumour, masks, used, mode=mode)
    table = _tib_table(samples, coords, tumour, weights, masks, radius=radius, mode=mode, n_perms=n_perms,
                       random_state=random_state)
    table.index.name = sample_key
    params = {
        "tool": "hcctme.tl.tib",
        **_validate.call_record(
            sample_key=sample_key, state_key=state_key, barrier_labels=_as_given(barrier_labels),
            tumour_labels=_as_given(tumour_labels), t_cell_labels=_as_given(t_cell_labels), label_key=label_key,
            spatial_key=spatial_key, mode=mode, scores_key=scores_key,
            radius=None if radius is None else float(radius), n_perms=int(n_perms), random_state=random_state),
        "radius_factor": RADIUS_FACTOR[mode],
        "labels": {role: {str(k): list(v) if isinstance(v, list) else v for k, v in rec.items()}
                   for role, rec in used.items() if isinstance(rec, dict)},
        "tumour_threshold": float(used.get("tumour_threshold", np.nan)),
        "library_version": _validate.library_version(),
    }
    adata = adata.copy() if copy else adata  # nothing is written before this line
    adata.uns[key_added] = table
    adata.uns[key_added + Suffix.PARAMS] = params
    logger.info("tib: %d samples (%s mode) -> uns[%r], parameters in uns[%r]", len(table), mode, key_added,
                key_added + Suffix.PARAMS)
    return adata if copy else None


def _check_tib(adata: AnnData, *, sample_key: str, spatial_key: str, key_added: str, n_perms: int,
               radius: float | None, label_key: str | None, copy: bool) -> tuple[pd.Series, np.ndarray]:
    """The checks of :func:`tib` that need no labels; returns the sample column and the coordinates."""
    _validate.anndata(adata, writes=True)
    samples = _validate.categorical_levels(adata, sample_key, purpose="sample_key")
    coords = _validate.spatial(adata, spatial_key, samples=samples)
    _validate.key_added(key_added, adata=adata, slots=("uns",), tool="hcctme.tl.tib")
    _validate.positive_int(n_perms, name="n_perms", minimum=0)
    _validate.copy_flag(copy, adata=adata, tool="hcctme.tl.tib", writes="uns")
    if radius is not None:
        if isinstance(radius, bool) or not isinstance(radius, int | float | np.integer | np.floating):
            raise TypeError(f"radius must be a positive number or None, got {radius!r}")
        if not float(radius) > 0:
            raise ValueError(f"radius must be > 0, got {radius}")
    if label_key is not None:
        _validate.obs_column(adata, label_key, purpose="label_key")
    return samples, coords


def _check_tumour(tumour: np.ndarray, masks: dict[str, np.ndarray] | None, used: dict, *, mode: str) -> None:
    """Refuse data without tumour; warn when cells are labelled tumour and barrier/T cell at once."""
    if not tumour.any():
        raise _validate.TooFewCellsError(
            f"no tumour {'spots' if mode == 'spots' else 'cells'} found ({used.get('tumour')}); "
            "tl.tib measures a barrier around tumour: name the tumour with tumour_labels="
        )
    if masks is not None:
        overlap = int((tumour & (masks["barrier"] | masks["t_cell"])).sum())
        if overlap:
            logger.warning("tib: %d cells are labelled both tumour and barrier/T cell; read as tumour", overlap)


def _tib_table(samples: pd.Series, coords: np.ndarray, tumour: np.ndarray, weights: dict[str, np.ndarray],
               masks: dict[str, np.ndarray] | None, *, radius: float | None, mode: str, n_perms: int,
               random_state: int) -> pd.DataFrame:
    """One row per sample (index = sample name), each sample's permutations seeded by its name.

    A sample's cells are read in the order of their names (repeated names by their coordinates), so the
    permutations (and so ``tib_score``, an excess over their mean) do not depend on where the cells' rows sit
    in the AnnData.
    """
    sq = _squidpy()
    order, labels = _state_order.rank(samples.index, ties=coords), samples.to_numpy()
    with _quiet_squidpy():
        rows = [
            _sample_row(sq, sample, _state_order.population(labels, sample, order), coords, tumour, weights,
                        masks, radius=radius, mode=mode, n_perms=n_perms,
                        rng=np.random.default_rng([random_state, zlib.crc32(str(sample).encode())]))
            for sample in sorted(pd.unique(labels))
        ]
    table = pd.DataFrame(rows).set_index("sample")
    table.index = table.index.astype(str)
    for col in ("n_cells", "n_tumour", "n_boundary", "n_ring"):
        table[col] = table[col].astype(int)
    if mode == "cells":
        for col in ("n_barrier", "n_t_cell"):
            table[col] = table[col].astype(int)
    return table[_COLUMNS]
