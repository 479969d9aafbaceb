"""``tl.call_states``: per-cell resistance state calls inside annotated parent populations."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp
from anndata import AnnData

from hcctme import _validate
from hcctme._constants import (
    CONTEXT_PARENTS,
    STATE_SEEDING_AGREEMENT,
    Defaults,
    Keys,
    Suffix,
)
from hcctme._logging import logger
from hcctme.tl import _contexts
from hcctme.tl import _state_artefact_carry as _carry
from hcctme.tl import _state_artefacts as _artefacts
from hcctme.tl import _state_coexpression as _coexpression
from hcctme.tl import _state_expression as _expression
from hcctme.tl import _state_genes_of as _genes_of
from hcctme.tl import _state_model as _model
from hcctme.tl import _state_order as _order
from hcctme.tl import _state_params as _params
from hcctme.tl import _state_seeds as _seeds
from hcctme.tl import _state_selftrain as _selftrain
from hcctme.tl import _state_specificity as _specificity
from hcctme.tl import _state_vote as _vote

REFINE_METHODS = (None, "leiden", "graph")
# the keys of the record _self_train returns (each empty with self_train=False)
SELF_TRAIN_RECORD = ("seeds", "specificity", "temperature", "carried_artefacts", "small_populations", "seedings")
WEAK_SEPARATION = 1.5


@dataclass(frozen=True)
class ArtefactInputs:
    """The user's extra artefact columns: their names, which came from ``obs`` (``"score"`` / ``"flag"``), values."""

    names: list[str] = field(default_factory=list)
    from_obs: dict[str, str] = field(default_factory=dict)
    obs_values: dict[str, np.ndarray] = field(default_factory=dict)


def state_signatures(columns: pd.Index, library) -> tuple[dict[str, list[str]], list[str], dict[str, list[str]]]:
    """Which scored columns are callable states, grouped by the context they are called in.

    A column is a state when it is a library id whose collection is ``"<cell_context>_states"``.
    Returns (context -> scored state ids, columns ignored for calling, context -> library states
    of that context that were not scored).
    """
    states: dict[str, list[str]] = {}
    ignored: list[str] = []
    for col in columns:
        col = str(col)
        if col not in library:
            ignored.append(col)
            continue
        sig = library[col]
        if sig.collection == f"{sig.cell_context}_states":
            states.setdefault(sig.cell_context, []).append(col)
    scored = set(map(str, columns))
    missing: dict[str, list[str]] = {}
    for sig in library:
        if sig.collection == f"{sig.cell_context}_states" and sig.id not in scored:
            missing.setdefault(sig.cell_context, []).append(sig.id)
    return states, ignored, missing


def with_parent_contexts(states: dict[str, list[str]], contexts: np.ndarray) -> dict[str, list[str]]:
    """Give each parent context present in ``contexts`` (``t_cell``, ``myeloid``) its child contexts' states.

    A population labelled only "T cells" mixes CD4 and CD8 T cells: it competes TREG and the CD8
    states together (:data:`hcctme._constants.CONTEXT_PARENTS`), instead of getting no call. Contexts
    that have states of their own keep them.
    """
    present = set(contexts.tolist())
    out = dict(states)
    for parent in dict.fromkeys(CONTEXT_PARENTS.values()):
        ids = [s for child, up in CONTEXT_PARENTS.items() if up == parent for s in states.get(child, [])]
        if parent in present and parent not in states and ids:
            out[parent] = ids
    return out


def small_populations(contexts: np.ndarray, artefact: np.ndarray, states: Mapping[str, Sequence[str]],
                      params: _params.SelfTrainParams) -> dict[str, dict[str, int]]:
    """Per context, its cells that are no artefact and the cells its states' seeding needs, where they are fewer.

    ``contexts`` / ``artefact``: each cell's context and the first pass's artefact column (``""`` for none). The
    seeding's k-means makes one cluster per ``params.cluster_cells`` cells at most
    (:func:`hcctme.tl._state_seeds.cells_for_clusters`); a population with fewer cells has fewer clusters than its
    states need, which of its states get seeds turns on the cut, and it is called by the mean of several seedings
    (:func:`hcctme.tl._state_selftrain.seedings`; the figures are beside
    :data:`~hcctme._constants.STATE_SMALL_CLUSTER_CELLS`); ``uns[key_added + "_params"]["self_train"]
    ["small_populations"]`` (``seedings``: how many were averaged, added by the self-training), each also logged
    as a warning.
    """
    out: dict[str, dict[str, int]] = {}
    for context, ids in states.items():
        n = int(np.sum((contexts == context) & (artefact == "")))
        needed = _seeds.cells_for_clusters(len(ids), params)
        if 0 < n < needed:
            out[context] = {"cells": n, "needed": needed, "states": len(ids)}
            consequence = ("which states get seeds turns on the cut, so the calls are the mean of several "
                           "seedings' and fewer cells are called" if n >= params.min_cells else
                           f"under the {params.min_cells} the self-training needs, the calls are the mixture's")
            logger.warning("%s: %d cells (no artefact) for %d states, fewer than the %d the self-training's clusters "
                           "need (one per %d cells): %s; read them with care (docs: Population size)",
                           context, n, len(ids), needed, params.cluster_cells, consequence)
    return out


def declined_states(mixture_counts: Mapping[str, Mapping[str, int]],
                    specificity: Mapping[str, Mapping[str, Mapping[str, Any]]],
                    seedings: Mapping[str, Mapping[str, Any]] | None = None,
                    calls: Mapping[str, Mapping[str, int]] | None = None) -> dict[str, dict[str, int]]:
    """Per context, the states the specificity test declined, with the mixture calls that were dropped.

    Only states the mixture called are listed: their calls are dropped (Villani 2017 pDCs: 120 mixture
    calls, 0 after the test before the majority route; now seeded, 181 of 192);
    ``uns[key_added + "_params"]["self_train"]["declined"]``. A state is declined where the first seeding's test
    (the record's ``specificity``) declined it, or where no seeding averaged kept it (``seedings``:
    no seeding's classifier has its class, ``classes``; or, where seedings without the classifier are averaged, none
    of them keeps it, ``mixture_kept``: one without the classifier keeps it where its test keeps the mixture's calls,
    one with it where its classifier has a class for it; some keeping it being warned of by :func:`seeding_record`),
    and the
    population's final ``calls`` (per context and state; None: not checked) hold none of it: a state the other
    seedings call is not listed (sweep 61: 28 cells called a state listed as dropped).
    """
    out: dict[str, dict[str, int]] = {}
    for context, tests in specificity.items():
        record = (seedings or {}).get(context, {})
        shares = record.get("mixture_kept", record.get("classes"))
        for state, test in tests.items():
            n = int(mixture_counts.get(context, {}).get(state, 0))
            declined = bool(test.get("clusters_tested", 0) and not test.get("seeded", False))
            if shares is not None:
                declined = (declined and "mixture_kept" not in record) or shares.get(state, 1.0) == 0.0
            called = int((calls or {}).get(context, {}).get(state, 0))
            if declined and n and not called:
                out.setdefault(context, {})[state] = n
    return out


def _check_options(min_confidence: float, refine: str | None, refine_resolution: float) -> tuple[float, str | None]:
    """The checked confidence threshold and refinement method."""
    min_confidence = _validate.fraction(min_confidence, name="min_confidence")
    refine = _validate.choice(refine, REFINE_METHODS, name="refine")
    if (isinstance(refine_resolution, bool) or not isinstance(refine_resolution, (int, float))
            or not np.isfinite(refine_resolution) or refine_resolution <= 0):
        raise ValueError(f"refine_resolution must be a positive finite number, got {refine_resolution!r}")
    return min_confidence, refine


def _check_inputs(adata: AnnData, *, scores_key: str, cell_type_key: str, sample_key: str | None,
                  artefacts: list[str] | tuple[str, ...] | None,
                  self_train: bool) -> tuple[pd.DataFrame, pd.Series, pd.Series, ArtefactInputs]:
    """Scores, cell-type labels, samples and the user's extra artefact columns (obsm or obs)."""
    scores = _validate.scores(adata, scores_key)
    labels = _validate.obs_column(adata, cell_type_key, purpose="cell-type labels").astype(str)
    samples = pd.Series("all", index=adata.obs_names)
    if sample_key is not None:
        samples = _validate.obs_column(adata, sample_key, purpose="samples").astype(str)
    extra = _artefact_columns(adata, artefacts, scores, scores_key)
    if not isinstance(self_train, bool):
        raise TypeError(f"self_train must be True or False, got {self_train!r}")
    return scores, labels, samples, extra


def _check_expression(matrix: Any, *, layer: str | None, use_raw: bool | None) -> None:
    """Refuse NaN or infinite values (in full in memory; on a sample of rows when backed or dask); log scaled data.

    Scaled values are read as they are (some published matrices are centred: Zheng 2017's, He 2020's), with a
    warning: where the log data sit in ``.raw`` or a layer, reading them is the better choice.
    """
    values = matrix.data if sp.issparse(matrix) else matrix if isinstance(matrix, np.ndarray) else None
    if values is not None and not np.all(np.isfinite(values)):
        raise ValueError(_validate.NONFINITE_MESSAGE)
    if _validate.matrix_kind(matrix) == "scaled":
        read = f"adata.layers[{layer!r}]" if layer is not None else f"the matrix read (use_raw={use_raw!r})"
        logger.warning("call_states: %s holds negative values (scaled data?); they are read as log-normalised "
                       "expression: pass layer= naming log-normalised data or raw counts, or use_raw=True where "
                       "adata.raw holds them (scanpy keeps the log data there before sc.pp.scale)", read)


def _resolve(labels: pd.Series, context_map: Mapping[str, str | None] | None,
             cell_type_key: str) -> _contexts.Resolution:
    """The label -> cell_context mapping; refused when no label maps."""
    resolution = _contexts.resolve(labels, context_map)
    if all(ctx is None for ctx in resolution.mapping.values()):
        raise ValueError(
            f"none of the labels in obs[{cell_type_key!r}] maps to a cell_context "
            f"({_validate._preview(resolution.mapping)}); {_contexts.usage_hint(resolution.mapping)}"
        )
    if context_map:
        unused = [k for k in context_map if str(k) not in resolution.mapping]
        if unused:
            logger.warning("context_map labels not found in obs[%r]: %s", cell_type_key, unused)
    return resolution


def _model_inputs(scores: pd.DataFrame, labels: pd.Series, resolution: _contexts.Resolution, library,
                  extra: ArtefactInputs, scores_key: str, *, dropped: Sequence[str] = ()) -> dict[str, Any]:
    """States competed per context, each cell's context, artefact columns and the score values read.

    The user's artefact columns taken from ``obs`` (``extra.from_obs``) are read beside the scores; the
    boolean ones (``"flag"``) flag their True cells directly (``m["flag_cols"]``).
    """
    states, ignored, missing = state_signatures(scores.columns, library)
    unscorable = [s for ids in state_signatures(pd.Index(list(map(str, dropped))), library)[0].values() for s in ids]
    if not states and unscorable:
        raise _validate.TooFewGenesError(
            f"no state signature could be scored: the data hold too few genes of each (all {len(unscorable)} the "
            f"scoring tried were left out for coverage, e.g. {', '.join(unscorable[:4])}; coverage per signature "
            f"in uns[{scores_key + Suffix.PARAMS!r}]['coverage']); states need data measuring those genes "
            "(not a targeted panel or a gene subset)"
        )
    if not states:
        raise ValueError(
            f"adata.obsm[{scores_key!r}] holds no state signature of the library "
            f"(collections '<context>_states', see hcctme.sig.list()); run "
            "hcctme.tl.score(adata) with the library (the default) before calling states"
        )
    contexts = labels.map(lambda x: resolution.mapping[x] or Defaults.UNASSIGNED).to_numpy(dtype=object)
    states = with_parent_contexts(states, contexts)
    used_cols = list(dict.fromkeys(c for ids in states.values() for c in ids))
    art_cols, markers = _artefacts.signatures(scores.columns, library, contexts, list(states), extra.names)
    read = list(dict.fromkeys([*used_cols, *(c for cols in art_cols.values() for c in cols)]))
    if extra.obs_values:
        scores = scores.assign(**extra.obs_values)
    values = scores[read]
    if not np.all(np.isfinite(values.to_numpy(dtype=float))):
        bad = [c for c in read if not np.all(np.isfinite(values[c].to_numpy(dtype=float)))]
        raise ValueError(f"scores {bad} in adata.obsm[{scores_key!r}] contain NaN/inf; re-run tl.score")
    present = set(np.unique(contexts))
    for context, ids in missing.items():
        if context in states and context in present:  # no warning of a population the data do not hold
            logger.warning("%s states not scored (left out of the competition): %s", context, ids)
    genes = {s: list(library[s].genes_up) for s in used_cols}
    genes_down = {s: list(library[s].genes_down or ()) for s in used_cols}
    ignored = [c for c in ignored if c not in extra.names]  # the user's gene sets passed as artefacts are used
    return {"states": states, "ignored": ignored, "used_cols": used_cols, "contexts": contexts, "genes": genes,
            "genes_down": genes_down, "flag_cols": [c for c, kind in extra.from_obs.items() if kind == "flag"],
            "art_cols": art_cols, "values": values, "references": _artefacts.references(values, contexts, markers),
            "order": _order.rank(scores.index, ties=None if scores.index.is_unique  # repeated names: by scores
                                 else values.to_numpy(dtype=float))}


def _calls(m: dict[str, Any], matrix: Any, thresholds: _model.Thresholds, samples: np.ndarray, *,
           refine: str | None, refine_resolution: float, self_train: bool,
           var_names: pd.Index, random_state: int, min_confidence: float, adjacency: sp.csr_matrix | None = None,
           ) -> tuple[_model.Assignment, np.ndarray, np.ndarray, dict[str, Any], dict[str, Any], np.ndarray | None]:
    """The mixture's assignment, the final calls and confidence, the records of the self-training and the vote.

    Last, with ``refine``, the per-cell calls of ``refine=None`` (cut at ``min_confidence``, artefacts discounted; else
    None). The model (mixture,
    self-training, flags) calls at ``thresholds.model_confidence`` whatever ``min_confidence``,
    which cuts the final calls (:func:`cut`): a stricter ``min_confidence`` keeps the same confidences and calls a
    subset of the cells. The vote (``refine``) reads the calls at ``min_confidence``.
    """
    contexts, states = m["contexts"], m["states"]
    result = _model.assign(m["values"], contexts, states, artefacts=m["art_cols"], references=m["references"],
                           thresholds=thresholds, flag_columns=m["flag_cols"], support=m.get("art_support"),
                           order=m["order"])
    few = {c: int(np.sum((contexts == c) & (result.artefact == ""))) for c, how in result.fitted.items()
           if how == _model.TOO_FEW_CELLS}
    if few:
        logger.warning("too few cells to call states in (fewer than %d clean cells each): %s; their cells stay "
                       "unassigned (uns[...]['fitted'])", thresholds.min_fit_cells, few)
    record = (_self_train(matrix, result, m, thresholds.model_confidence, samples, var_names, random_state)
              if self_train else
              {key: {} for key in SELF_TRAIN_RECORD})
    _flag_genes_of(result, m, thresholds)
    final = pd.crosstab(contexts, result.calls)
    declined = declined_states(result.counts, record["specificity"], record["seedings"],
                               {c: final.loc[c].to_dict() for c in final.index})
    trained = {**record, "declined": declined}
    for context, dropped in declined.items():
        logger.warning("%s: the specificity test declined %s in every seeding, so the mixture's calls of these "
                       "states (%s) are dropped; see uns[...]['self_train']['specificity']", context,
                       list(dropped), dropped)
    per_cell = cut(result, min_confidence)
    own, own_confidence = _artefacts.discount(per_cell, result.confidence, result.artefact_probability,
                                              min_confidence)
    calls, confidence, voting, unrefined = own, own_confidence, {}, None
    if refine is not None:
        graph_of = _vote.graph_for(refine, adjacency, result.z, states)
        voted, share, voting = _vote.vote(per_cell, result.confidence, result.artefact, contexts,
                                          states, graph_of, resolution=refine_resolution, refine=refine,
                                          order=m["order"])
        voted, share = _artefacts.discount(voted, share, result.artefact_probability, min_confidence)
        kept = (voted == Defaults.UNASSIGNED) & (own != Defaults.UNASSIGNED)  # the vote never removes a call
        calls, confidence = np.where(kept, own, voted).astype(object), np.where(kept, own_confidence, share)
        for context, record in voting.items():  # the final changes, against the per-cell calls
            cells = contexts == context
            record["changed"] = int(np.sum(calls[cells] != own[cells]))
        unrefined = own
    for context, diag in result.diagnostics.items():
        weak = {s: round(v["separation"], 2) for s, v in diag.items()
                if "separation" in v and v["separation"] < WEAK_SEPARATION}
        if weak:
            logger.warning("%s: states without a distinct high sub-population (separation < %.1f sd): %s; "
                           "their calls are the upper tail of a continuum", context, WEAK_SEPARATION, weak)
    return result, calls, confidence, trained, voting, unrefined


def cut(result: _model.Assignment, min_confidence: float) -> np.ndarray:
    """The calls at ``min_confidence``: each clean cell's best state where it may be called and is that confident."""
    keep = result.eligible & (result.artefact == "") & (result.confidence >= min_confidence)
    return np.where(keep, result.best, Defaults.UNASSIGNED).astype(object)


def _provenance(call: dict[str, Any], m: dict[str, Any], resolution: _contexts.Resolution, library_version: str,
                thresholds: _model.Thresholds, result: _model.Assignment,
                trained: dict[str, Any], voting: dict[str, Any]) -> dict[str, Any]:
    """uns[key_added + "_params"]: the call's parameters, the mapping, the model and its diagnostics."""
    self_train, refine = call["self_train"], call["refine"]
    return {
        "tool": "hcctme.tl.call_states",
        **_validate.call_record(
            cell_type_key=call["cell_type_key"], scores_key=call["scores_key"], context_map=call["context_map"],
            sample_key=call["sample_key"], artefacts=call["artefacts_given"], min_confidence=call["min_confidence"],
            refine=refine, refine_resolution=float(call["refine_resolution"]), self_train=self_train,
            random_state=call["random_state"], layer=call["layer"], use_raw=call["use_raw"]),
        "artefacts_used": list(call["artefacts"].names),
        "library_version": library_version,
        "cell_type_key": call["cell_type_key"],
        "mapping": resolution.table(),
        "states": {k: list(v) for k, v in m["states"].items()},
        "artefact_signatures": {k: list(v) for k, v in m["art_cols"].items()},
        "artefacts_from_obs": dict(call["artefacts"].from_obs),
        "marker_references": m["references"],
        "genes_of": m["genes_of"]["genes"],
        "thresholds": thresholds.to_dict(),
        "method": ("artefact cells set aside (artefact scores and the library size relative to the sample: "
                   "two-component fit per context, flagged above the clean component; foreign-lineage markers: "
                   "robust z, at most 10 % of a context together; after the calls, heterotypic doublets on the "
                   "genes other annotated lineages' populations detect: genes_of); state scores z-scored over "
                   "each context (no per-sample re-centering); K-states-or-none mixture (EM) per context; "
                   "confidence = posterior of the best state"
                   + ("; self-training: k-means clusters of the PCs of the context's expression, centred "
                      "within each sample on its mean less the part its mean state scores predict, seed the "
                      "states and 'none of these' (a cluster seeds a state only when a real share of the state's "
                      "signature genes is up in it, more often than expression-matched background genes: "
                      "self_train.specificity; a state whose clusters are all declined is not called), "
                      "each seeded state carried to the genes that separate its seeds (a feature; a 'none of "
                      "these' seed past the midpoint to a state's seeds on its carried score is no seed), "
                      "a logistic regression on the PCs, state z-scores and carried "
                      "scores is fitted on the seeds and refitted on its confident predictions ('none of these' "
                      "only where >= 10 cells of it are confident), its cross-fitted (5-fold, mean of 3 splits) "
                      "probabilities averaged over 15 nearest neighbours and temperature-scaled to the cluster "
                      "seeds (class-balanced log loss; where they are all predicted right and the refit has no "
                      "'none of these' class, the 'none of these' seeds at a uniform target over its classes; "
                      "self_train.temperature; contexts in self_train.seeds); "
                      "then each artefact column flagging >= 20 cells is carried to the genes separating its cells "
                      "from the clean ones "
                      "(AUROC, the states' signature genes left out), read as a robust z alone on those of them "
                      "two or more and half of the populations chose (>= 10; populations where it flags 10-19 "
                      "cells choose genes too), else averaged with the column; where the column flags fewer than "
                      "20 cells, alone on the >= 10 genes the populations agree on; by "
                      "the same two-component rule ('<column>_carried'; self_train.carried_artefacts)"
                      if self_train else "")
                   + "; confidence times the probability that the cell is not an artefact"),
        "artefact_rule": _artefacts.params(),
        "ignored_signatures": m["ignored"],
        "refine": {"method": refine or "none", "resolution": float(call["refine_resolution"]),
                   **({"graph": _vote.GRAPHS[refine], "voting": voting} if refine else {})},
        "self_train": {"params": _params.SelfTrainParams(random_state=call["random_state"]).to_dict(),
                       "specificity_params": _specificity.params(),
                       "coexpression_params": _coexpression.params(), **trained},
        "diagnostics": result.diagnostics,
        "mixture_counts": {c: dict(v) for c, v in result.counts.items()},
        "fitted": dict(result.fitted),
    }


def _write(adata: AnnData, key_added: str, m: dict[str, Any], result: _model.Assignment, calls: np.ndarray,
           confidence: np.ndarray, *, unrefined: np.ndarray | None, table: pd.DataFrame,
           provenance: dict[str, Any]) -> None:
    """Store the per-cell calls in obs, the count table and provenance in uns."""
    contexts = m["contexts"]
    categories = list(dict.fromkeys([*m["used_cols"], Defaults.UNASSIGNED]))
    adata.obs[key_added] = pd.Categorical(calls, categories=categories)
    adata.obs[f"{key_added}{Suffix.CONFIDENCE}"] = np.clip(confidence, 0.0, 1.0).astype(float)
    ctx_categories = list(dict.fromkeys([c for c in _contexts.MAPPABLE_CONTEXTS if c in set(contexts)]
                                        + [Defaults.UNASSIGNED]))
    adata.obs[f"{key_added}{Suffix.CONTEXT}"] = pd.Categorical(contexts, categories=ctx_categories)
    adata.obs[f"{key_added}{Suffix.ARTEFACT}"] = pd.Categorical(result.artefact.astype(str))
    if unrefined is not None:
        adata.obs[f"{key_added}{Suffix.UNREFINED}"] = pd.Categorical(unrefined, categories=categories)
    elif f"{key_added}{Suffix.UNREFINED}" in adata.obs:  # an earlier refined run's: not this call's
        del adata.obs[f"{key_added}{Suffix.UNREFINED}"]
    adata.uns[key_added] = table
    adata.uns[f"{key_added}{Suffix.PARAMS}"] = provenance


def call_states(
    adata: AnnData,
    *,
    cell_type_key: str,
    scores_key: str = Keys.SCORES,
    context_map: Mapping[str, str | None] | None = None,
    sample_key: str | None = None,
    artefacts: list[str] | tuple[str, ...] | None = None,
    min_confidence: float = 0.5,
    refine: str | None = None,
    refine_resolution: float = 1.0,
    self_train: bool = True,
    random_state: int = Defaults.SEED,
    layer: str | None = None,
    use_raw: bool | None = None,
    key_added: str = Keys.STATE,
    copy: bool = False,
) -> AnnData | None:
    """Call resistance-associated cell states inside each annotated parent population.

    Each cell is read in the ``cell_context`` its label resolves to (a CD8 T cell, a
    macrophage, ...) and can only receive a state of that context's ``"<context>_states"``
    collection in the signature library (a T cell is never a TAM2). A parent context without
    states of its own (``t_cell``: "T cells" mixing CD4 and CD8 T cells; ``myeloid``) competes
    the states of its child contexts (:data:`hcctme._constants.CONTEXT_PARENTS`: TREG and the CD8
    states together). The states of one
    collection are mutually exclusive; a cell that none of them fits clearly, or that looks like
    an artefact (dissociation stress, ambient RNA, a doublet), stays ``"unassigned"``.

    Parameters
    ----------
    adata
        Annotated data with state scores from :func:`hcctme.tl.score` in ``obsm[scores_key]``.
    cell_type_key
        ``obs`` column with the user's cell-type labels.
    scores_key
        Where :func:`hcctme.tl.score` wrote the scores.
    context_map
        ``{label: cell_context}`` for labels the built-in rules do not read as intended; values
        come from :data:`hcctme._constants.CELL_CONTEXTS` (not ``"any"``), or ``None`` /
        ``"unassigned"`` to keep a label out. Labels not in the map are read by the built-in
        rules (see :mod:`hcctme.tl._contexts`: "CD8+ T cells", "TAMs", "Kupffer", "CAFs", "HSC",
        "Tregs" -> ``cd4_t``, "PMN-MDSC" -> ``neutrophil``, ...). Unknown or ambiguous labels
        ("T/NK", cluster numbers) stay unassigned; they are never guessed.
    sample_key
        ``obs`` column with the sample/patient, recorded with the call and used for the
        per-sample counts in ``uns[key_added]``. Scores are *not* re-centred per sample: real
        between-sample differences in state composition are kept. The self-training's expression
        features are centred on each sample's mean less the part its cells' mean state scores predict
        (the clusters follow states, not patients' batch shifts, and a patient whose cells score high
        for a state keeps it); the states are then read from the un-centred scores. Until release 2.35
        they were centred on the samples' means, which took away the states patients differ in
        (Sade-Feldman 2018: 0 of 166 exhausted cells called CD8_TEX_TERMINAL with ``sample_key``, 76
        now, 59 without; README, "Samples"). What the scores do not see of a patient's difference
        is still centred away: without ``sample_key`` nothing is, and batch shifts stay in the features.
    artefacts
        Extra artefact columns that make a cell "none of these", looked up in ``obsm[scores_key]``
        first (e.g. your own dissociation-stress or ambient-RNA gene sets scored with ``tl.score``),
        then in ``obs`` (a name in both is the score column). A score column, or a numeric ``obs``
        column (a doublet detector's score, e.g. scrublet's ``"doublet_score"``), is read by the
        artefact rule (its upper outliers in each parent population, step 1 below); a boolean
        ``obs`` column (e.g. scrublet's ``"predicted_doublet"``) flags its True cells directly
        (they are ``"unassigned"`` with confidence 0 and the column's name in
        ``obs[key_added + "_artefact"]``). Other ``obs`` columns (categories, strings, a boolean
        column with missing values, a score with NaN) are refused. The library's ``"artefacts"``
        collection and the cell-type markers of other lineages are used whenever they are scored,
        and the library size where the expression (``layer``) holds raw counts.
    min_confidence
        Cells whose confidence is lower stay ``"unassigned"``. The confidence is the probability of
        the cell's best state (the calibrated classifier's where the population was self-trained,
        the mixture's posterior elsewhere) times the probability that the cell is not an artefact
        (Notes). 0.5 is the Bayes decision between "this state" and "another state or none"; raise
        it for stricter calls. It only cuts the final calls: the model (mixture, self-training) is fitted at 0.5
        whatever its value, so another ``min_confidence`` gives the same confidences, and a higher one a subset of
        the calls (with ``refine``, the vote reads the calls at ``min_confidence``).
    refine
        After the per-cell calls, sub-cluster each parent population with leiden
        (``refine_resolution``) and let each sub-cluster vote: ``"graph"`` on the user's neighbour
        graph ``obsp["connectivities"]`` (``sc.pp.neighbors`` on the expression PCA) restricted
        to the population's cells, ``"leiden"`` on a kNN graph (scanpy, 15 neighbours) of the
        population's standardised state scores. Artefact cells do not vote and stay unassigned;
        a sub-cluster votes only where more than half its voters agree on a state (its cells get
        that state, confidence = the state's share times the cell's probability of not being an
        artefact, where that reaches ``min_confidence``); the cells of the other sub-clusters keep their
        own calls, and so does a called cell whose voted confidence falls below ``min_confidence``: the vote
        removes no call. Smooths noisy single-cell calls at the price of cell-level
        resolution. The per-cell calls (those of ``refine=None``) are kept in ``obs[key_added + "_unrefined"]``;
        per context, the sub-clusters, those that voted and the cells whose final call differs from them are
        recorded in
        ``uns[key_added + "_params"]["refine"]["voting"]``. Needs the ``igraph`` package.
    refine_resolution
        Leiden resolution of the sub-clustering (small = few, large sub-clusters).
    self_train
        Refine the mixture's calls in each parent population with a classifier on the
        population's expression (step 4 below; :mod:`hcctme.tl._state_selftrain`). ``False``
        keeps the mixture's calls.
    random_state
        Seed of the self-training: its k-means cuts, calibration fold splits and the cell subsamples it draws;
        the seedings of a population use ``random_state``, ``random_state + 1``, ... Another seed is another draw
        of the cuts, not another method: ``uns[key_added + "_params"]["self_train"]["seedings"]`` says how far
        one population's draws agree. The draws read each population's cells in the order of their names
        (``obs_names``; cells of one name by their scores) and its genes in the order of their names: the same
        cells in another row order, with their genes in another column order, or with genes no cell expresses added,
        get the same calls and confidences (releases 2.32 and 2.34). Renaming the cells is another draw.
    layer, use_raw
        Expression read by ``self_train`` and the artefact rules: ``adata.layers[layer]``, ``adata.raw``
        (``use_raw=None`` follows scanpy, as :func:`hcctme.tl.score` does: ``.raw`` when present and no layer
        is given) or ``adata.X``. Raw counts are log-normalised on the fly; anything else is taken as
        log-normalised (scaled values with a warning); NaN or infinite values are refused. It is centred within
        each sample of ``sample_key`` (on the score-adjusted means, above) before the principal components.
    key_added
        Prefix of the outputs.
    copy
        Return a modified copy instead of writing into ``adata``.

    Returns
    -------
    ``None``, or the copy when ``copy=True``. Writes

    * ``obs[key_added]``: categorical state id or ``"unassigned"``;
    * ``obs[key_added + "_confidence"]``: float in [0, 1], the posterior probability of the
      cell's best state times the probability that the cell is not an artefact (also for cells
      left unassigned below the threshold; 0 for artefact cells and outside contexts with states);
    * ``obs[key_added + "_context"]``: categorical cell_context each cell was read in;
    * ``obs[key_added + "_artefact"]``: the score column that made the cell "none of these"
      (``""`` for the others);
    * ``uns[key_added]``: tidy table, one row per (sample, context, call): ``sample`` (``"all"``
      without ``sample_key``), ``context``, ``state``, ``n_cells``, ``fraction`` (of the sample's
      cells of that context);
    * ``uns[key_added + "_params"]``: ``tool``, ``params`` (the call's arguments; :func:`hcctme.get.params`
      gives them back as given), ``library_version``, ``mapping`` (a table, one row per label: ``label``,
      ``context``, ``source``: ``"context_map"``, ``"rule"`` or why the label is unresolved; labels are
      values, not dict keys, so that a label holding "/" survives ``adata.write_h5ad``),
      ``states`` (context -> state ids competed),
      ``artefact_signatures`` (context -> columns used), ``artefacts_from_obs`` (the ``artefacts`` read
      from ``obs``: name -> ``"score"`` or ``"flag"``), ``thresholds``, ``method``,
      ``diagnostics`` (per state the fitted proportion and separation; per context the artefact
      cells, ``flagged_by``: the cells each artefact column flags, ``markers_not_used``,
      ``markers_unreached``: the foreign-lineage markers whose lineage's own level lies within the artefact
      robust z of the context's median, not used there, and
      ``foreign_released``: the cells whose foreign-lineage flags the markers' joint share lifted),
      ``mixture_counts`` (per context, the mixture's calls of each state and ``"unassigned"`` before the
      self-training: where a state's cells are lost, in the mixture or in the self-training),
      ``artefact_rule`` (the thresholds of :mod:`hcctme.tl._state_artefacts`; ``library_size``
      is an artefact column where the expression holds raw counts), ``fitted`` (per context ``"mixture"``, or
      ``"too few cells"``: fewer than 30 clean cells, not called, warned of),
      ``ignored_signatures``, ``refine``, ``self_train`` (``params``, ``seeds``
      per context, ``specificity``: per context and state whether a cluster confirmed it, the
      clusters tested and declined, and the test of its best cluster: ``n_measured``, ``n_up``,
      ``null_rate``, ``pvalue``, ``majority_auroc``, ``majority_null_rate``, ``majority_pvalue``,
      ``n_down_measured``, ``n_down``; ``read_through``: the sibling a short panel read in a cluster, where it did,
      :func:`hcctme.tl._state_specificity.read_through`; ``coexpression_pvalue``, ``coexpression_route``,
      ``coexpression_genes``, ``coexpression_declined``: the co-expression route of a short panel,
      :mod:`hcctme.tl._state_coexpression`;
      ``specificity_params``; ``coexpression_params``; ``declined``: per context the states whose
      clusters were declined (:func:`declined_states`) and that no cell is called, with the mixture's calls of each
      that were dropped;
      ``carried_artefacts``: per context and carried artefact column ``"<column>_carried"``, its
      ``genes``, the cells it ``flagged`` and those it ``added`` to the artefact cells, whether it was read
      ``alone`` (else averaged with the column) and whether the genes were ``borrowed`` from the other populations;
      ``small_populations``: per context with fewer cells (no artefact) than its states' seeding needs, ``cells``,
      ``needed``, ``states`` and ``seedings`` (how many seedings' probabilities were averaged, their gated mixture
      calls for those that do not train the classifier: all of them where fewer than half do; 0 where the population
      was not self-trained), also logged as a warning,
      :func:`small_populations`; ``seedings``: per self-trained context, ``seedings`` (how many seedings'
      probabilities were averaged), ``agreement`` (the share of its cells one seeding calls as the mean does) and
      ``states`` (per called state, the share of its calls one seeding makes; NaN and ``{}`` with one seeding),
      logged as a warning for a state under :data:`~hcctme._constants.STATE_SEEDING_AGREEMENT`, ``classes`` (per
      state, the share of the seedings averaged that train the classifier whose classifier has a class for it: the
      ``specificity`` record is the first seeding's), and where seedings that do not train it are averaged (fewer
      than half train it) ``mixture_kept`` (per state the mixture calls or a classifier has a class for, the share
      of all the seedings averaged that keep it: one without the classifier where its specificity test keeps the
      mixture's calls, one with it where its classifier has the class; warned of between 0 and 1) and
      ``established`` (the states whose cells the trained seedings' mean calls keep that mean: at least half of
      those seedings seeded the state through its list's gene test; warned of), :func:`seeding_record`).

    Notes
    -----
    Method (per parent context with K states; details in :mod:`hcctme.tl._state_model`):

    1. artefacts (:mod:`hcctme.tl._state_artefacts`): each artefact programme score (the
       library's ``"artefacts"`` collection, ``artefacts``, a doublet score from ``obs``) and,
       where the expression holds raw counts, the log library size relative to the sample's
       median (doublets) gets a
       two-component normal fit over the context's cells, started from its lower half; when the
       upper component is apart (Ashman's D >= 1.5 and a BIC gain), a cell more likely in it than in the clean one
       and at least 2 clean sd above the clean mean (or 3 sd anywhere) is "none of these" and is
       left out of the fit, and its posterior of the upper component is its artefact
       probability. The reference is the clean cells, so a quarter of the cells stressed does not
       raise it. Without a distinct upper group, and for the cell-type markers of other lineages
       (doublets, ambient RNA: a small minority), the rule is :data:`hcctme._constants.STATE_ARTEFACT_Z`
       robust sd (median / MAD) above the context's median (a foreign marker must also reach a
       third of the way from the context's median to its own lineage's median level, and is not
       used in a context where it would flag more than 10 % of the cells: there it marks a state
       whose genes it shares, not doublets; nor is the library size where it would flag more than
       10 %: there it marks a state of larger cells;
       together the foreign markers keep their flags in at most 10 % of the cells, those furthest
       toward a foreign lineage's own level).
       A boolean ``obs`` column in ``artefacts`` (a doublet detector's calls) flags its True cells
       with artefact probability 1, whatever their share;
    2. every state score is z-scored over the context's cells of all samples (no per-sample
       re-centering);
    3. a mixture model is fitted by EM over the context's other cells: each cell is in one of the
       K states or in none; in state k its score k is drawn from a "high" normal, every other
       score from that state's background normal; scores at the column's floor (UCell 0) are a
       point mass. The posterior probability of the best state is the confidence: it is high only
       when the best state beats the runner-up *and* the background (the "none" class). A
       single-state collection (TREG, M_MDSC, ENDO_ONCOFETAL_PLVAP) is the same model with K = 1;
    4. the call is the best state when ``confidence >= min_confidence`` and the score lies above
       the state's background mean;
    5. self-training (``self_train=True``, populations of at least 50 cells; see
       :mod:`hcctme.tl._state_selftrain`): the population's log-normalised expression, centred
       within each sample (``sample_key``) on the sample's mean less the part its mean state scores
       predict, is reduced to 30 principal components of its 2,000
       most variable genes; k-means clusters of those components seed each state in the cluster
       where its signature is highest (and in clusters at least half as high, backed by the
       mixture's calls: 10 % of the cluster, or more than the calls of all other states there)
       and "none of these" in the others, except a cluster of whose cells half or more are one
       state's mixture calls: it seeds that state where its mean z-score is high as above and is no
       seed where it is not; a cell the mixture calls a state is no "none of these" seed. A cluster
       seeds a state only when the
       state's signature genes are up in it (AUROC against the clusters whose mean z-score of the
       state is at most 0 >= 0.65) more
       often than expression-matched background genes (one-sided binomial p <= 0.01) and at least
       15 % of them are up, or its median gene is up beyond the matched background's order
       statistic (the majority route, p <= 0.01) (:mod:`hcctme.tl._state_specificity`; for a short panel, a state
       with fewer than 8 measured genes, tested against the rest of the population, one gene up
       suffices where at most 15 % of the matched background genes are up in the cluster, and a
       panel with ``genes_down`` needs half of its up genes up and half of its down genes down): a population split by
       something else (a stimulation, a batch) that shares two or
       three genes with a state's list does not make that state, and a state whose clusters are all
       declined gets no call, not even from the mixture (with too few seeds for the classifier, the population
       keeps the mixture's calls, and a state no cluster was a candidate for is tested in its highest-scoring
       cluster of at least 10 cells first). Each seeded state is carried to the (up to
       30) genes that separate its seeds from the cells that do not score for it (AUROC >= 0.7):
       their score is a feature (a signature reads part of its programme; a 3-gene panel one or two
       genes), and a "none of these" seed whose carried score of a state is past the midpoint
       between the medians of that state's seeds and of the "none" seeds is no seed.
       A multinomial logistic regression (balanced classes) on the components, the state z-scores
       and the carried scores is fitted on the seeds and
       refitted once on its own confident predictions ("none of these" only where at least 10 cells
       are confidently predicted "none"); the last model's probabilities are
       cross-fitted (5 folds, each predicted by the model fitted on the others; one random fold split
       per seeding, three per seeding in a small population), averaged with those of each cell's 15
       nearest neighbours (weight 0.5) and temperature-scaled to the cluster seeds' labels (log loss
       with every seed class weighted the same; where every seed is predicted its label and the refit has no
       "none of these" class, the none seeds enter with a uniform target, release 2.38;
       ``uns[key_added + "_params"]["self_train"]["temperature"]``). The
       probability of the best state replaces the confidence and the call is that state when it
       beats "none of these" and reaches ``min_confidence``. It learns the many programme genes a
       short signature does not read; artefact cells stay unassigned. A population with fewer cells
       than 20 x (2 K + 4) (``small_populations``) gets fewer clusters than its states need and which
       states get seeds turns on the cut: its probabilities are the mean over nine seedings (one
       cluster per 20, 14 and 10 cells, three random states each; those without the classifier left out
       where at least half train it; where fewer do, all are averaged, those without it as their gated
       mixture calls, except the cells the trained seedings' mean calls an established state); any
       other population's, the mean over three seedings (``random_state`` and the next two). Where one
       of a population's seedings makes fewer than 0.8 of a state's calls on average, the same seedings
       are drawn at the next random states, three times as many in all, and averaged
       (``uns[key_added + "_params"]["self_train"]["seedings"]``);
    6. carried artefact columns (``self_train=True``; :mod:`hcctme.tl._state_artefact_carry`): an
       artefact list reads its programme weakly (the way a 3-gene panel reads a state's), so each
       artefact column (library ``"artefacts"`` and the user's score columns; not the library size,
       foreign-lineage markers or flag columns) that flags at least 20 cells of a population is
       carried to the (up to 30) genes that separate those cells from the population's clean cells
       (AUROC >= 0.7), leaving out the signature genes of the population's states (populations where
       it flags 10-19 cells choose genes too). The genes two or more, and at least half, of the
       populations that chose genes for a column chose are agreed on (an artefact programme moves the
       same genes in every population). The robust z-score (against the
       clean cells) of the within-sample-centred mean expression of a population's agreed genes, when
       10 or more, else of all its genes averaged with the column's own robust z, and where the column
       flags fewer cells of a population, of the agreed genes (10 or more), is a new artefact column
       ``"<column>_carried"`` read by the
       two-component rule of step 1. The cells it flags lose their call (``artefact`` column); for the
       cells the lists left clean its probability replaces the list's in the product below (one
       programme read twice counts once). It runs after the self-training, which keeps those cells:
       taking them out flips its cluster seeding on knife edges (a state's cluster declined, or an
       absent state's cluster confirmed, on generator cohorts);
    7. the confidence is multiplied by the probability that the cell is not an artefact (steps 1 and 6),
       and a call whose confidence then falls below ``min_confidence`` is dropped.

    A population with fewer than 30 clean cells is not called (``fitted``: "too few cells"; its cells stay
    ``"unassigned"``).

    Evaluation: ``benchmarks/states_eval.py`` calls states on cohorts of an independent generator
    (``tests/tl/_state_generator.py``: state programmes from other papers' lists sharing 30-60 %
    of the library's genes, continua, stress, ambient RNA, doublets, 10x- and Smart-seq-like
    depths); the README gives the figures.

    Limits:

    * the model expects states to be distinct sub-populations of the state scores. In real data
      many cells are in none of the library's states or in between; a state whose
      ``separation`` is below ~1.5 has no distinct high group and its calls are the upper tail of
      a continuum;
    * calls are relative to the population they are read in, so a label that mixes cell types
      (e.g. "Myeloid" mapped to ``macrophage``) biases them; map labels carefully;
    * without an artefact signature for dissociation stress in the scores, stressed cells are
      called by their state scores (heat-shock genes are in some published state lists);
      doublets of two cells of one lineage are recognised only by their library size, and only
      where the expression holds raw counts, unless a doublet detector's output is passed in
      ``artefacts`` (see Examples); a state whose programme raises an artefact
      programme's genes in many cells (a distinct upper group) is flagged as that artefact;
    * signatures scored from the user's own gene sets (columns that are not library ids) are not
      used for calling (their parent context and mutual exclusivity are unknown); they are
      listed in ``uns[key_added + "_params"]["ignored_signatures"]``, unless passed in ``artefacts``.

    Examples
    --------
    A doublet detector's output as an artefact input (scanpy's scrublet, run per sample on the
    raw counts, here ``layers["counts"]``; a boolean ``obs`` column flags its cells, a numeric one is
    read by the artefact rule):

    >>> import scanpy as sc
    >>> counts = sc.AnnData(adata.layers["counts"], obs=adata.obs[["patient"]])  # doctest: +SKIP
    >>> sc.pp.scrublet(counts, batch_key="patient", random_state=0)  # doctest: +SKIP
    >>> adata.obs["predicted_doublet"] = counts.obs["predicted_doublet"]  # doctest: +SKIP
    >>> hcctme.tl.score(adata)  # doctest: +SKIP
    >>> hcctme.tl.call_states(adata, cell_type_key="cell_type", sample_key="patient",
    ...                       artefacts=["predicted_doublet"])  # doctest: +SKIP
    >>> adata.uns["hcctme_state_params"]["artefacts_from_obs"]  # doctest: +SKIP
    {'predicted_doublet': 'flag'}
    """
    _validate.anndata(adata, writes=True)
    _validate.copy_flag(copy, adata=adata, tool="hcctme.tl.call_states", writes="obs and uns")
    key_added = _validate.key_added(
        key_added, adata=adata, slots=("obs", "uns"), reads=(cell_type_key, sample_key, scores_key),
        tool="hcctme.tl.call_states",
        outputs=[("obs", sfx) for sfx in (Suffix.CONFIDENCE, Suffix.CONTEXT, Suffix.ARTEFACT, Suffix.UNREFINED)])
    min_confidence, refine = _check_options(min_confidence, refine, refine_resolution)
    random_state = _validate.random_state(random_state)
    scores, labels, samples, extra = _check_inputs(adata, scores_key=scores_key, cell_type_key=cell_type_key,
                                                   sample_key=sample_key, artefacts=artefacts,
                                                   self_train=self_train)
    matrix, genes = _validate.matrix(adata, layer=layer, use_raw=use_raw)
    _check_expression(matrix, layer=layer, use_raw=use_raw)
    adjacency = _vote.graph(adata) if refine == "graph" else None
    resolution = _resolve(labels, context_map, cell_type_key)
    from hcctme import sig

    library = sig.library()
    dropped = adata.uns.get(scores_key + Suffix.PARAMS, {}).get("dropped", [])
    m = _model_inputs(scores, labels, resolution, library, extra, scores_key, dropped=dropped)
    thresholds = _model.Thresholds()
    var_names = _validate.unique_symbols(adata, genes, raw=_validate.reads_raw(adata, layer, use_raw))
    sums = _genes_of.prepare(m, matrix, var_names)
    _artefacts.add_library_size(m, matrix, samples.to_numpy(), sums=sums)
    _artefacts.add_gene_support(m, matrix, var_names, library)
    result, calls, confidence, trained, voting, unrefined = _calls(
        m, matrix, thresholds, samples.to_numpy(), refine=refine, refine_resolution=refine_resolution,
        self_train=self_train, var_names=var_names, adjacency=adjacency, random_state=random_state,
        min_confidence=min_confidence)
    table = _count_table(calls, m["contexts"], samples.to_numpy(), m["states"])
    call = {"cell_type_key": cell_type_key, "scores_key": scores_key, "sample_key": sample_key,
            "context_map": context_map, "artefacts": extra, "artefacts_given": artefacts,
            "min_confidence": min_confidence, "refine": refine,
            "refine_resolution": refine_resolution, "self_train": self_train, "random_state": random_state,
            "layer": layer, "use_raw": use_raw}
    provenance = _provenance(call, m, resolution, library.library_version, thresholds, result, trained,
                             voting)

    adata = adata.copy() if copy else adata  # nothing written before this line
    _write(adata, key_added, m, result, calls, confidence, unrefined=unrefined, table=table, provenance=provenance)
    mapped = {k: v for k, v in resolution.mapping.items() if v is not None}
    logger.info("cell_context mapping used: %s; unassigned labels: %s", mapped, resolution.unmapped)
    logger.info(
        "called %d states in %d cells of %d contexts (%d artefact cells) -> obs[%r], obs[%r], uns[%r]",
        int(np.sum(calls != Defaults.UNASSIGNED)), adata.n_obs, len(m["states"]), int(np.sum(result.artefact != "")),
        key_added, f"{key_added}{Suffix.CONFIDENCE}", key_added,
    )
    return adata if copy else None

def _self_train(matrix: Any, result: _model.Assignment, m: Mapping[str, Any], model_confidence: float,
                samples: np.ndarray, var_names: pd.Index, random_state: int) -> dict[str, dict[str, Any]]:
    """Replace the mixture's calls by the self-trained ones, then flag on the carried artefact columns (in place).

    Each context's expression is read, all its cells: the cells flagged by no artefact column are
    self-trained and each artefact column's genes are chosen there; once every context is done the
    carried artefact columns (:mod:`hcctme.tl._state_artefact_carry`; the genes the contexts agree on
    need all of them) flag more of each context's cells, whose calls are dropped. The self-training keeps the cells the
    carried columns flag: removing them flips its seeding on knife edges (generator: a cluster's
    share of a state's genes up from 8 to 7 of 48, under the 15 % needed, and the state lost). ``m``:
    call_states' inputs (states, each state's signature genes ``genes`` / ``genes_down`` for the
    specificity test of the cluster seeds and the carried genes, artefact columns and values). Returns the record
    ``uns[...]["self_train"]`` holds: ``seeds`` (context -> seed counts per class for the contexts that were
    self-trained), ``specificity`` (context -> state -> specificity test,
    :func:`hcctme.tl._state_seeds.confirm_seeds`), ``temperature`` (context -> temperature of the calibration; NaN
    where the population kept the mixture's calls), ``carried_artefacts`` (context -> carried artefact column -> its
    genes and cells flagged), ``small_populations`` (the populations too small for the seeding,
    :func:`small_populations`, on the first pass's artefact flags) and ``seedings`` (:func:`seeding_record`).
    """
    params = _params.SelfTrainParams(random_state=random_state)
    contexts, states, genes, genes_down = m["contexts"], m["states"], m["genes"], m["genes_down"]
    fitted = {c: ids for c, ids in states.items() if result.fitted.get(c) != _model.TOO_FEW_CELLS}  # others: none
    small = small_populations(contexts, result.artefact, fitted, params)
    out: dict[str, dict[str, int]] = {}
    tests: dict[str, dict[str, Any]] = {}
    temperatures: dict[str, float] = {}
    agreements: dict[str, dict[str, Any]] = {}
    carrying: dict[str, _Carrying] = {}
    gene_rank = _order.rank(var_names)
    for context, ids in states.items():
        rows = _order.population(contexts, context, m["order"])
        if np.sum(result.artefact[rows] == "") < params.min_cells:
            continue
        draw = _PanelDraw(var_names, {s: genes[s] for s in ids}, {s: genes_down[s] for s in ids if genes_down.get(s)})
        clean = result.artefact[rows] == ""
        expression, panel_x, kept = _population_expression(matrix, rows, params, samples, clean, gene_rank,
                                                           draw.columns)
        columns, positions, background, down = draw.drawn
        idx = rows[clean]
        carrying[context] = _carrying(expression, var_names[kept], m, context, rows, result.artefact[rows],
                                       samples)
        expression = expression[clean]  # computed first, so the self-training holds the clean cells' rows only
        panel = _specificity.build_panel(sp.csc_matrix(panel_x[clean]), positions, background, down,
                                         expression_columns=_located(columns, kept, len(var_names)))
        z = result.z[ids].to_numpy(dtype=float)[idx]
        position = {s: j for j, s in enumerate(ids)}
        best = np.array([position[b] for b in result.best[idx]], dtype=int)
        called = result.calls[idx] != Defaults.UNASSIGNED
        trained = _selftrain.call_population(expression, z, list(ids), best, result.confidence[idx], called,
                                             params, model_confidence, samples[idx], panel)
        if trained is not None:
            calls, confidence, counts, diagnostics = trained[:4]
            result.best[idx], result.eligible[idx] = trained.best, trained.eligible
            tests[context] = diagnostics["specificity"]
            temperatures[context] = diagnostics["temperature"]
            agreements[context] = seeding_record(context, diagnostics)
            if context in small:
                small[context]["seedings"] = diagnostics["seedings"]
            result.calls[idx] = np.where(calls == "", Defaults.UNASSIGNED, calls)
            result.confidence[idx] = confidence
            if counts:
                out[context] = counts
    for entry in small.values():
        entry.setdefault("seedings", 0)  # not self-trained: the mixture's calls
    carried = _carry_artefacts(matrix, result, m, samples, var_names, gene_rank, carrying, params)
    return {"seeds": out, "specificity": tests, "temperature": temperatures, "carried_artefacts": carried,
            "small_populations": small, "seedings": agreements}


def seeding_record(context: str, diagnostics: Mapping[str, Any]) -> dict[str, Any]:
    """A population's ``uns[...]["self_train"]["seedings"]`` entry, logged as a warning where the seedings disagree.

    ``seedings`` (how many seedings' probabilities were averaged), ``agreement`` and ``states`` (per state;
    :func:`hcctme.tl._state_selftrain.agreement`'s ``agreement`` and ``state_agreement``, NaN and ``{}`` with one
    seeding), ``classes`` (:func:`hcctme.tl._state_selftrain.classes`, of the seedings that train the classifier)
    and, where seedings that do not are averaged, ``mixture_kept`` (:func:`hcctme.tl._state_selftrain.mixture_kept`,
    of all the seedings averaged) and ``established`` (:func:`hcctme.tl._state_selftrain.established`: the states
    whose cells keep the mean of the seedings with the classifier). The warnings name the states of whose calls
    one seeding makes fewer than :data:`~hcctme._constants.STATE_SEEDING_AGREEMENT` on average, and, in one
    message (:func:`_averaged_mixture_warning`), the states some seedings keep and others drop (``mixture_kept``; all
    drop: :func:`declined_states`) and the established states.
    """
    record = {"seedings": int(diagnostics["seedings"]), "agreement": diagnostics["agreement"],
              "states": diagnostics["state_agreement"]}
    if "classes" in diagnostics:
        record["classes"] = diagnostics["classes"]
    if "mixture_kept" in diagnostics:
        record["mixture_kept"] = diagnostics["mixture_kept"]
        record["established"] = list(diagnostics["established"])
        message = _averaged_mixture_warning(context, record)
        if message:
            logger.warning("%s", message)
    unstable = {s: round(share, 2) for s, share in _selftrain.unstable(record["states"],
                                                                       STATE_SEEDING_AGREEMENT).items()}
    if unstable:
        logger.warning("%s: of the calls of %s, a single one of the %d seedings (k-means cuts) they average makes "
                       "only %s on average; which cells get these states turns on the cut, read them with care "
                       "(uns[...]['self_train']['seedings']; random_state=... draws other cuts)", context,
                       list(unstable), record["seedings"], unstable)
    return record


def _averaged_mixture_warning(context: str, record: Mapping[str, Any]) -> str | None:
    """The warning of a population whose seedings mostly lack the classifier (:func:`seeding_record`), or None.

    Names the states some of its seedings keep and others drop (``mixture_kept``) and the ``established`` states,
    in one message; None where there are neither.
    """
    split = {s: round(share, 2) for s, share in _selftrain.split(record["mixture_kept"]).items()}
    established = record["established"]
    if not split and not established:
        return None
    n = record["seedings"]
    if "classes" not in record:  # no seeding trains the classifier: nothing is established, so some state is split
        return (f"{context}: no seeding has the seeds to train the classifier, and only these shares of the {n} "
                f"seedings' specificity tests keep the mixture's calls of {list(split)}: {split}; the calls are "
                "their mean (uns[...]['self_train']['seedings'])")
    parts = [f"{context}: fewer than half of the {n} seedings have the seeds to train the classifier"]
    if split:
        parts.append(f", and only these shares of them keep {list(split)} (a classifier's class, or the specificity "
                     f"test keeping the mixture's calls): {split}")
    if established:
        parts.append(f"; at least half of the seedings with the classifier seeded each of {established} through its "
                     "list's gene test (established)")
    parts.append("; the calls are the mean of all the seedings")
    if established:
        parts.append(", except the cells the mean of those with the classifier calls an established state, which keep "
                     "that mean")
    parts.append(" (uns[...]['self_train']['seedings'])")
    return "".join(parts)


def _located(columns: np.ndarray, kept: np.ndarray, n_genes: int) -> np.ndarray:
    """The column of each gene position of ``columns`` among the positions ``kept`` (of ``n_genes``), or -1."""
    where = np.full(n_genes, -1)
    where[kept] = np.arange(kept.size)
    return where[columns]


def _excluded_genes(m: Mapping[str, Any], ids: Sequence[str]) -> set[str]:
    """The signature genes (up and down) of a context's states ``ids``: never carried into an artefact column."""
    return {g for s in ids for g in (*m["genes"][s], *m["genes_down"].get(s, ()))}


@dataclass
class _PanelDraw:
    """A population's specificity panel, drawn once its read knows the genes the population detects."""

    var_names: pd.Index
    signatures: dict[str, list[str]]  # state -> genes (up)
    down: dict[str, list[str]]  # state -> genes down
    drawn: tuple = ()  # :func:`hcctme.tl._state_specificity.panel_columns`'s value

    def columns(self, detected: np.ndarray) -> np.ndarray:
        """The panel's matrix columns, its background drawn among the ``detected`` genes (boolean per gene)."""
        self.drawn = _specificity.panel_columns(self.var_names, self.signatures, down=self.down, detected=detected)
        return self.drawn[0]


def _population_expression(matrix: Any, rows: np.ndarray, params: _params.SelfTrainParams, samples: np.ndarray,
                           clean: np.ndarray, gene_rank: np.ndarray,
                           panel_of: Callable[[np.ndarray], np.ndarray] | None = None
                           ) -> tuple[sp.csr_matrix, Any, np.ndarray]:
    """A population's log expression, its panel's columns and the gene positions kept (all, unless backed).

    The kept genes' columns are in the order of their names (``gene_rank``: each gene position's rank among the
    names): every ranking of genes in the self-training breaks its ties by name, and the principal components
    read the same matrix, whatever the order of the AnnData's genes (release 2.34; before it confidences moved by
    up to 0.0035 with the gene order). ``panel_of``: the panel's columns from each gene's detection in the
    population (boolean per gene position); None: no panel. The rows come back in the order of ``rows``; a
    backed matrix is read in the file's order (consecutive rows are read together) and its population's rows are
    put in that order in memory (a copy of the population's kept genes).
    """
    if _validate.backed(matrix):  # backed: read in chunks, the candidate variable genes (of the clean cells)
        stored = np.argsort(rows, kind="stable")  # read in the file's order (runs of rows), then put in ``rows``'
        expression, panel, kept = _expression.log_expression_chunked(
            matrix, rows[stored], params, samples[rows[stored]], panel_columns=panel_of, ranked=clean[stored],
            gene_rank=gene_rank)
        back = np.argsort(stored, kind="stable")
        return expression[back], (None if panel is None else panel[back]), kept
    expression = _expression.name_ordered(_expression.log_expression(_validate.rows_in_memory(matrix, rows)),
                                          gene_rank)
    kept = np.argsort(gene_rank, kind="stable")
    if panel_of is None:
        return expression, None, kept
    detected = np.zeros(matrix.shape[1], dtype=bool)
    detected[kept] = expression.getnnz(axis=0) > 0
    panel = sp.csc_matrix(expression[:, _located(panel_of(detected), kept, matrix.shape[1])])
    return expression, panel, kept


@dataclass(frozen=True)
class _Carrying:
    """One self-trained population's artefact columns to carry, the genes each chose there, and their expression."""

    lists: _carry.Lists  # its eligible artefact columns' scores and fits (:func:`~._state_artefact_carry.read_lists`)
    excluded: list[str]  # the signature genes of the population's states (never carried)
    chosen: dict[str, _carry.Chosen]  # column -> its genes and cells here (:func:`~._state_artefact_carry.choose`)
    expression: sp.csr_matrix  # the population's expression of the chosen genes (all its cells)
    genes: pd.Index  # those genes


def _carrying(expression: sp.csr_matrix, genes: pd.Index, m: Mapping[str, Any], context: str, rows: np.ndarray,
              flagged: np.ndarray, samples: np.ndarray) -> _Carrying:
    """Choose the carried artefact genes of a context (its ``rows``, all its cells) and keep their expression.

    ``flagged``: the first pass's artefact flags of those cells; ``samples``: every cell's sample.
    """
    columns = _carry.eligible(m["art_cols"].get(context, []), m["references"], m["flag_cols"])
    lists = _carry.read_lists(m["values"][columns].to_numpy(dtype=float)[rows], columns)
    excluded = sorted(_excluded_genes(m, m["states"][context]))
    chosen = _carry.choose(expression, lists, flagged, genes, excluded, samples[rows])
    kept = np.flatnonzero(genes.isin([g for choice in chosen.values() for g in choice.genes]))
    return _Carrying(lists, excluded, chosen, sp.csr_matrix(expression[:, kept]), genes[kept])


def _carry_artefacts(matrix: Any, result: _model.Assignment, m: Mapping[str, Any], samples: np.ndarray,
                     var_names: pd.Index, gene_rank: np.ndarray, carrying: Mapping[str, _Carrying],
                     params: _params.SelfTrainParams
                     ) -> dict[str, Any]:
    """Flag each population's cells on its carried artefact columns (in place); context -> column -> record.

    ``carrying``: per self-trained population the genes each artefact column was carried to there
    (:func:`hcctme.tl._state_artefact_carry.choose`) and their expression, kept from the self-training's
    read. The genes the populations agree on (:func:`~hcctme.tl._state_artefact_carry.consensus`) decide
    how each column is read (:func:`~hcctme.tl._state_artefact_carry.plan`); a population that reads
    other genes (borrowed or agreed genes it did not choose) is read again.
    """
    agreed = _carry.consensus({context: population.chosen for context, population in carrying.items()})
    carried: dict[str, Any] = {}
    for context, population in carrying.items():
        reads = _carry.plan(population.chosen, agreed, population.lists.columns, population.excluded)
        if not reads:
            continue
        rows = _order.population(m["contexts"], context, m["order"])
        expression, genes = population.expression, population.genes
        if not all(set(read.genes) <= set(genes) for read in reads.values()):
            clean = result.artefact[rows] == ""
            expression, _, kept = _population_expression(matrix, rows, params, samples, clean, gene_rank)
            genes = var_names[kept]
        found = _carry.carry(expression, population.lists, result.artefact[rows], genes, samples[rows], reads)
        if found.record:
            _apply_carried(result, context, rows, found)
            carried[context] = found.record
    return carried


def _flag_genes_of(result: _model.Assignment, m: Mapping[str, Any], thresholds: _model.Thresholds) -> None:
    """Flag the cells no artefact column flagged on the other populations' genes (in place).

    :mod:`hcctme.tl._state_genes_of`: a cell flagged there loses its call, as an artefact of
    the column (its probability 1). Read after the mixture and the self-training, which keep these
    cells, as they keep the cells the carried columns flag.
    """
    genes_of = m["genes_of"]
    for context, columns in genes_of["columns"].items():
        cells = _order.population(m["contexts"], context, m["order"])
        rows = cells[result.artefact[cells] == ""]
        if rows.size == 0:
            continue
        found = _genes_of.flags(genes_of["values"][columns].to_numpy()[rows], columns,
                                max_share=thresholds.max_foreign_share)
        result.artefact_probability[rows[found.flagged != ""]] = 1.0
        info = _drop_flagged(result, context, cells, rows, found.flagged, found.flagged_by)
        if info is not None:
            info["genes_of_not_used"] = found.unused
            info["genes_of_unreached"] = found.unreached
            info["genes_of_released"] = found.foreign_released


def _apply_carried(result: _model.Assignment, context: str, rows: np.ndarray, found: _carry.Carried) -> None:
    """Flag a context's cells on its carried artefact columns (in place): artefact, probability, calls, counts."""
    p = result.artefact_probability[rows]
    result.artefact_probability[rows] = np.clip(1.0 - (1.0 - p) * found.not_artefact, 0.0, 1.0)
    _drop_flagged(result, context, rows, rows, found.flagged,
                  {c: r["flagged"] for c, r in found.record.items() if r["flagged"]})


def _drop_flagged(result: _model.Assignment, context: str, cells: np.ndarray, rows: np.ndarray,
                  flagged: np.ndarray, flagged_by: Mapping[str, int]) -> dict[str, Any] | None:
    """Mark the flagged ``rows`` of a context artefacts without a call (in place); its diagnostics, if any.

    ``cells``: the context's cells (its artefact count is updated); ``flagged``: per row the artefact
    column that flagged it, ``""`` for none.
    """
    added = flagged != ""
    result.artefact[rows[added]] = flagged[added]
    result.calls[rows[added]] = Defaults.UNASSIGNED
    result.confidence[rows[added]] = 0.0
    if context not in result.diagnostics:
        return None
    info = result.diagnostics[context][Defaults.UNASSIGNED]
    info["artefacts"] = int(np.sum(result.artefact[cells] != ""))
    info["flagged_by"] = {**info["flagged_by"], **flagged_by}
    return info


def _artefact_columns(adata: AnnData, artefacts, scores: pd.DataFrame, scores_key: str) -> ArtefactInputs:
    """Validate the user's extra artefact columns: columns of ``obsm[scores_key]`` first, then of ``obs``."""
    if artefacts is None:
        return ArtefactInputs()
    if isinstance(artefacts, str) or not isinstance(artefacts, list | tuple | pd.Index | np.ndarray) \
            or not all(isinstance(a, str) for a in artefacts):
        raise TypeError(f"artefacts must be a list of column names (of adata.obsm[{scores_key!r}] or adata.obs), "
                        f"got {artefacts!r}")
    names = list(dict.fromkeys(artefacts))
    if _artefacts.LIBRARY_SIZE in names:
        raise ValueError(f"artefacts may not name {_artefacts.LIBRARY_SIZE!r}: call_states computes that artefact "
                         "column itself from raw counts; rename your column")
    slashed = [a for a in names if "/" in a]
    if slashed:
        raise ValueError(f"artefact column names {slashed} hold '/', which an h5ad file reads back as nested keys "
                         "of the record; rename the column(s) (e.g. adata.obs.rename(columns=...))")
    missing = [a for a in names if a not in scores.columns and a not in adata.obs.columns]
    if missing:
        raise KeyError(f"artefacts {missing} are neither columns of adata.obsm[{scores_key!r}] nor of adata.obs; "
                       "score those gene sets with hcctme.tl.score first, or pass an obs column such as "
                       "scanpy's sc.pp.scrublet 'doublet_score' or 'predicted_doublet'")
    from_obs: dict[str, str] = {}
    obs_values: dict[str, np.ndarray] = {}
    for name in (a for a in names if a not in scores.columns):
        values, is_flag = _validate.score_or_flag(adata, name, purpose="an artefact column")
        from_obs[name] = "flag" if is_flag else "score"
        obs_values[name] = values
    return ArtefactInputs(names=names, from_obs=from_obs, obs_values=obs_values)


def _count_table(calls: np.ndarray, contexts: np.ndarray, samples: np.ndarray,
                 states: Mapping[str, list[str]]) -> pd.DataFrame:
    """Tidy counts of the calls per (sample, context, state), zeros included."""
    frame = pd.DataFrame({"sample": samples, "context": contexts, "state": calls})
    rows = []
    for context, ids in states.items():
        sub = frame[frame["context"] == context]
        for sample, group in sub.groupby("sample", sort=True):
            counts = group["state"].value_counts()
            for state in [*ids, Defaults.UNASSIGNED]:
                rows.append((sample, context, state, int(counts.get(state, 0)), len(group)))
    table = pd.DataFrame(rows, columns=["sample", "context", "state", "n_cells", "total"])
    table["fraction"] = table["n_cells"] / table["total"].where(table["total"] > 0, 1)
    return table.drop(columns="total")
