"""``tl.call_states``: per-cell resistance state calls inside annotated parent populations."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd
from anndata import AnnData

from hcctme import _validate
from hcctme._constants import Defaults, Keys
from hcctme._logging import logger
from hcctme.tl import _contexts
from hcctme.tl import _state_model as _model

REFINE_METHODS = (None, "leiden")
WEAK_SEPARATION = 1.5


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


def _refine_leiden(
    assignment: _model.Assignment,
    contexts: np.ndarray,
    states: Mapping[str, list[str]],
    *,
    resolution: float,
    n_neighbors: int = 15,
    min_cells: int = 30,
) -> tuple[np.ndarray, np.ndarray]:
    """Majority vote of the calls within leiden sub-clusters of each parent population.

    Returns (calls, confidence).
    """
    import scanpy as sc

    try:
        import igraph  # noqa: F401
    except ImportError as err:  # pragma: no cover - igraph is a dependency of the dev/refine extras
        raise ImportError(
            "refine='leiden' needs the igraph package: pip install igraph"
        ) from err
    calls = assignment.calls.copy()
    conf = assignment.confidence.copy()
    for context, ids in states.items():
        idx = np.flatnonzero(contexts == context)
        if idx.size < min_cells:
            continue
        rep = assignment.z[ids].to_numpy(dtype=float)[idx]
        sub = AnnData(np.ascontiguousarray(rep, dtype=np.float32))
        sc.pp.neighbors(sub, n_neighbors=min(n_neighbors, idx.size - 1), use_rep="X", random_state=0)
        sc.tl.leiden(sub, resolution=resolution, flavor="igraph", n_iterations=2, directed=False,
                     random_state=0, key_added="sub")
        labels = sub.obs["sub"].astype(str).to_numpy()
        votes = pd.crosstab(labels, calls[idx])
        share = votes.div(votes.sum(axis=1), axis=0)
        winner = share.idxmax(axis=1)
        # for unassigned winners, report the share of the most voted state
        state_cols = [c for c in share.columns if c != _model.UNASSIGNED]
        best_state_share = share[state_cols].max(axis=1) if state_cols else pd.Series(0.0, index=share.index)
        win_share = pd.Series(
            [share.loc[k, w] if w != _model.UNASSIGNED else best_state_share[k] for k, w in winner.items()],
            index=winner.index,
        )
        calls[idx] = winner.reindex(labels).to_numpy()
        conf[idx] = win_share.reindex(labels).to_numpy()
    return calls, conf


def call_states(
    adata: AnnData,
    *,
    cell_type_key: str,
    scores_key: str = Keys.SCORES,
    context_map: Mapping[str, str | None] | None = None,
    sample_key: str | None = None,
    min_confidence: float = 0.5,
    refine: str | None = None,
    refine_resolution: float = 1.0,
    key_added: str = Keys.STATE,
    copy: bool = False,
) -> AnnData | None:
    """Call resistance-associated cell states inside each annotated parent population.

    Each cell is read in the ``cell_context`` its label resolves to (a CD8 T cell, a
    macrophage, ...) and can only receive a state of that context's ``"<context>_states"``
    collection in the signature library (a T cell is never a TAM2). The states of one
    collection are mutually exclusive; a cell that none of them fits clearly stays
    ``"unassigned"``.

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
        ``obs`` column with the sample/patient. Scores are standardised within the parent
        population of each sample, so one sample's depth or composition of other cell types does
        not decide its calls. ``None`` standardises within each parent population overall.
    min_confidence
        Cells whose confidence (the posterior probability of their best state, below) is lower
        stay ``"unassigned"``. 0.5 is the Bayes decision between "this state" and "another state
        or none"; raise it for stricter calls.
    refine
        ``"leiden"``: after the per-cell calls, sub-cluster each parent population (scanpy
        neighbours + leiden on the standardised state scores of its collection,
        ``refine_resolution``) and give every cell of a sub-cluster the sub-cluster's majority
        call (``"unassigned"`` can win); the confidence becomes the share of the sub-cluster
        voting for that state. Smooths noisy single-cell calls at the price of cell-level
        resolution. The per-cell calls are kept in ``obs[key_added + "_unrefined"]``.
        Needs the ``igraph`` package.
    refine_resolution
        Leiden resolution of the sub-clustering (small = few, large sub-clusters).
    key_added
        Prefix of the outputs.
    copy
        Return a modified copy instead of writing into ``adata``.

    Returns
    -------
    ``None``, or the copy when ``copy=True``. Writes

    * ``obs[key_added]``: categorical state id or ``"unassigned"``;
    * ``obs[key_added + "_confidence"]``: float in [0, 1] (confidence in the best state of the
      cell's context, also for cells left unassigned below the threshold; 0 outside contexts
      with states);
    * ``obs[key_added + "_context"]``: categorical cell_context each cell was read in;
    * ``uns[key_added]``: ``mapping`` (label -> context), ``mapping_source``, ``states`` (context
      -> state ids competed), ``thresholds``, ``method``, ``library_version``, ``counts``
      (context -> state -> cells), ``ignored_signatures``, ``refine``.

    Notes
    -----
    Method (per parent context with K states; details in :mod:`hcctme.tl._state_model`):

    1. every state score of the context's collection is standardised: a first fit z-scores it
       within the context's cells of each sample (``sample_key``; all cells when None; a sample
       with fewer than 20 cells of the context borrows the context's statistics); the refit
       z-scores it over the context and aligns each sample's *background* (the cells of that
       sample the first fit put outside the state, above the floor) to the pooled background by
       a shift and a scale (clipped to [1/2, 2]), so neither a sample's depth nor its state
       composition moves its calls;
    2. a mixture model is fitted by EM over the context's cells: each cell is in one of the K
       states or in none; in state k its score k is drawn from a "high" normal, every other score
       from that state's background normal. The posterior probability of the best state is the
       confidence: it is high only when the best state beats the runner-up (the states share the
       posterior) *and* the background (the "none" class). A single-state collection (TREG,
       M_MDSC, ENDO_ONCOFETAL_PLVAP) is the same model with K = 1, an absolute rule: the cell's
       score must sit in the high component, not in the background. The refit starts from the
       first fit;
    3. each score is a hurdle: scores at the column's floor (UCell's 0 when no gene of the
       signature ranks) are a point mass with their own probability in each class (in a state at
       most the background's), the rest normal;
    4. the call is the best state when ``confidence >= min_confidence`` and the score lies above
       the state's background mean.

    Contexts with fewer than 30 cells use a rule instead of the mixture: ``min(1 - 2**(-(z_best
    - z_second) / 0.75), Phi(z_best))`` (K >= 2) or ``Phi(z - 1)`` (K = 1). ``uns[key_added]
    ["diagnostics"]`` gives per state the fitted proportion and the separation of the high
    component from the background (sd units).

    Calibration: on :func:`hcctme.datasets.demo` (UCell scores, ``sample_key="patient"``) every
    state is called with recall 0.86-0.98 (mean 0.93) and precision 0.88-1.0 (mean 0.98); the best
    threshold on a state's own score reaches 0.96-1.0 recall at precision 0.85, and the weakest
    states (CAF_TGFB_MYCAF: background with a long tail; M_MDSC: cells that detect an HLA-DR gene
    lose most of their signed score) lose the cells in the overlap. With half the planted effects
    and twice the dispersion and batch sd (``simulate_cohort(12, 800, noise=2, seed=1)``): recall
    0.82-0.99, precision 0.90-1.0. tests/tl/test_call_states.py prints both tables. Pure noise
    scores give no calls (< 2 %); a state absent from the data (its cells removed from the demo)
    takes at most 2.5 % of its parent's cells, 6.5 % for ENDO_ONCOFETAL_PLVAP.

    Limits:

    * the model expects states to be distinct sub-populations. In real data many cells are in
      none of the library's states or in between; a state whose ``separation`` is below ~1.5 has
      no distinct high group and its calls are the upper tail of a continuum;
    * calls are relative to the population they are read in, so a label that mixes cell types
      (e.g. "Myeloid" mapped to ``macrophage``) biases them; map labels carefully;
    * the class proportions are estimated per context over all samples; a sample with fewer
      than 20 background cells of a state above the floor (almost only that state, or a state
      score that is mostly 0) is not aligned and is read on the pooled scale. Compare state
      proportions at the sample level (:func:`hcctme.tl.compare` with
      ``features="composition"``);
    * the components are normal: a state whose scores are bimodal or whose background has a long
      upper tail loses the cells in the overlap, and a zero-inflated score without any state can
      still be split into a background and an upper-tail "state" (check ``separation`` and the
      proportions in ``uns[key_added]["diagnostics"]``);
    * signatures scored from the user's own gene sets (columns that are not library ids) are not
      used for calling (their parent context and mutual exclusivity are unknown); they are
      listed in ``uns[key_added]["ignored_signatures"]``.
    """
    _validate.anndata(adata)
    key_added = _validate.key_added(key_added)
    min_confidence = _validate.fraction(min_confidence, name="min_confidence")
    refine = _validate.choice(refine, REFINE_METHODS, name="refine")
    if isinstance(refine_resolution, bool) or not isinstance(refine_resolution, (int, float)) or refine_resolution <= 0:
        raise ValueError(f"refine_resolution must be a positive number, got {refine_resolution!r}")
    scores = _validate.scores(adata, scores_key)
    labels = _validate.obs_column(adata, cell_type_key, purpose="cell-type labels").astype(str)
    samples = None
    if sample_key is not None:
        samples = _validate.obs_column(adata, sample_key, purpose="samples").astype(str).to_numpy()

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

    from hcctme import sig

    library = sig.library()
    states, ignored, missing = state_signatures(scores.columns, library)
    if not states:
        raise ValueError(
            f"adata.obsm[{scores_key!r}] holds no state signature of the library "
            f"(collections '<context>_states', see hcctme.sig.list()); run "
            "hcctme.tl.score(adata) with the library (the default) before calling states"
        )
    used_cols = [c for ids in states.values() for c in ids]
    values = scores[used_cols]
    if not np.all(np.isfinite(values.to_numpy(dtype=float))):
        bad = [c for c in used_cols if not np.all(np.isfinite(values[c].to_numpy(dtype=float)))]
        raise ValueError(f"state scores {bad} in adata.obsm[{scores_key!r}] contain NaN/inf; re-run tl.score")
    for context, ids in missing.items():
        if context in states:
            logger.warning("%s states not scored (left out of the competition): %s", context, ids)

    contexts = labels.map(lambda x: resolution.mapping[x] or Defaults.UNASSIGNED).to_numpy(dtype=object)
    thresholds = _model.Thresholds(min_confidence=min_confidence)
    result = _model.assign(values, contexts, states, samples=samples, thresholds=thresholds)
    calls, confidence = result.calls, result.confidence
    if refine == "leiden":
        calls, confidence = _refine_leiden(result, contexts, states, resolution=refine_resolution)

    for context, diag in result.diagnostics.items():
        weak = {s: round(v["separation"], 2) for s, v in diag.items()
                if "separation" in v and v["separation"] < WEAK_SEPARATION}
        if weak:
            logger.warning("%s: states without a distinct high sub-population (separation < %.1f sd): %s; "
                           "their calls are the upper tail of a continuum", context, WEAK_SEPARATION, weak)

    counts = {}
    for context, ids in states.items():
        in_ctx = contexts == context
        counts[context] = {s: int(np.sum(calls[in_ctx] == s)) for s in [*ids, Defaults.UNASSIGNED]}

    # ---- nothing written before this line ----
    adata = adata.copy() if copy else adata
    categories = list(dict.fromkeys([*used_cols, Defaults.UNASSIGNED]))
    adata.obs[key_added] = pd.Categorical(calls, categories=categories)
    adata.obs[f"{key_added}{Keys.CONFIDENCE_SUFFIX}"] = np.clip(confidence, 0.0, 1.0).astype(float)
    ctx_categories = list(dict.fromkeys([c for c in _contexts.MAPPABLE_CONTEXTS if c in set(contexts)]
                                        + [Defaults.UNASSIGNED]))
    adata.obs[f"{key_added}{Keys.PARENT_SUFFIX}"] = pd.Categorical(contexts, categories=ctx_categories)
    if refine == "leiden":
        adata.obs[f"{key_added}_unrefined"] = pd.Categorical(result.calls, categories=categories)
    adata.uns[key_added] = {
        "mapping": {k: v or Defaults.UNASSIGNED for k, v in resolution.mapping.items()},
        "mapping_source": dict(resolution.source),
        "states": {k: list(v) for k, v in states.items()},
        "thresholds": thresholds.to_dict(),
        "method": ("z-score within (context, sample); K-states-or-none Gaussian mixture (EM) per context, "
                   "refitted after aligning each sample's background to the pooled background; "
                   "confidence = posterior of the best state"),
        "cell_type_key": cell_type_key,
        "sample_key": sample_key if sample_key is not None else "",
        "scores_key": scores_key,
        "library_version": library.library_version,
        "counts": counts,
        "ignored_signatures": ignored,
        "refine": {"method": refine or "none", "resolution": float(refine_resolution)},
        "diagnostics": result.diagnostics,
        "fitted": dict(result.fitted),
    }
    n_called = int(np.sum(calls != Defaults.UNASSIGNED))
    mapped = {k: v for k, v in resolution.mapping.items() if v is not None}
    logger.info("cell_context mapping used: %s; unassigned labels: %s", mapped, resolution.unmapped)
    logger.info(
        "called %d states in %d cells of %d contexts -> obs[%r], obs[%r], uns[%r]",
        n_called, adata.n_obs, len(states), key_added, f"{key_added}{Keys.CONFIDENCE_SUFFIX}", key_added,
    )
    return adata if copy else None
