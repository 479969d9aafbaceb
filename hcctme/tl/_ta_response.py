"""T+A (atezolizumab + bevacizumab) response signatures per patient, and a responder/resistor test."""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import numpy as np
import pandas as pd
import scipy.sparse as sp
from anndata import AnnData

from hcctme import _validate
from hcctme._constants import Defaults, Keys
from hcctme._logging import logger

#: The T+A response signatures of Zhu et al. 2022 Nat Med (PMID 35739268), library collection
#: "ta_response".
TA_SIGNATURES: tuple[str, ...] = (
    "TA_ABRS", "TA_TEFF", "TA_TREG", "TA_ANGIOGENESIS", "TA_MYELOID_INFLAMMATION", "TA_ONCOFETAL",
)
#: Column of the Treg/Teff contrast: mean TA_TREG minus mean TA_TEFF per sample.
TREG_TEFF = "TA_TREG_TEFF"


class TAResponse(NamedTuple):
    """Result of :func:`ta_response`."""

    per_sample: pd.DataFrame
    """Samples x (T+A signatures, TA_TREG_TEFF, n_cells[, condition])."""
    compare: pd.DataFrame | None
    """The :func:`hcctme.tl.compare` table of the per-sample values (None without a condition)."""


def ta_response(
    adata: AnnData,
    *,
    sample_key: str,
    condition_key: str | None = None,
    reference: str | None = None,
    scores_key: str = Keys.SCORES,
    score_method: str = "ucell",
    layer: str | None = None,
    use_raw: bool | None = None,
    min_coverage: float = Defaults.MIN_COVERAGE,
    aggregate: str = "mean",
    min_cells: int = Defaults.MIN_CELLS,
    method: str = "auto",
    covariates: str | Sequence[str] | None = None,
    pair_key: str | None = None,
    key_added: str = Keys.TA_RESPONSE,
    store: bool = True,
) -> TAResponse:
    """Score the T+A response signatures per sample and, with a condition, compare groups.

    The signatures of Zhu et al. 2022 (Nat Med, PMID 35739268; library collection
    ``"ta_response"``): ``TA_ABRS`` (atezolizumab-bevacizumab response signature), ``TA_TEFF``
    (pre-existing effector T cells), ``TA_TREG``, ``TA_ANGIOGENESIS``, ``TA_MYELOID_INFLAMMATION`` and
    ``TA_ONCOFETAL`` (GPC3/AFP). They were defined on bulk tumours, so each sample's value is the mean
    (or median) score over all of its cells, a bulk-like readout.

    The Treg/Teff ratio of the paper is reported as ``TA_TREG_TEFF = TA_TREG - TA_TEFF`` (per-sample
    means): a difference on the score scale, the analogue of the log-ratio of the paper's log-scale
    bulk scores; a plain ratio of rank scores is unstable when the Teff score is near zero. Higher
    means relatively more Treg than effector T cell signal (associated with resistance).

    Parameters
    ----------
    adata
        Cells x genes.
    sample_key
        obs column of the sample (patient) of each cell.
    condition_key, reference
        Optional: compare the per-sample values between condition levels (other minus reference)
        with :func:`hcctme.tl.compare` (``features="scores"``; Mann-Whitney by default).
    scores_key
        obsm key of existing scores. When it holds every T+A signature they are used as they are;
        otherwise the T+A signatures are scored now with :func:`hcctme.tl.score`
        (``score_method``, ``layer``, ``use_raw``, ``min_coverage``) on the side: the new scores are not
        written into ``adata`` (run ``tl.score`` yourself to keep them).
    aggregate
        Per-sample summary: ``"mean"`` or ``"median"`` (TA_TREG_TEFF is always the difference of the
        two per-sample summaries).
    min_cells
        Samples with fewer cells are left out (reported).
    method, covariates, pair_key
        Passed on to :func:`hcctme.tl.compare`.
    key_added
        ``uns[key_added]`` receives ``{"per_sample": ..., "compare": ..., "params": ...}``.
    store
        Write the results into ``adata.uns`` (nothing is written when the call fails).

    Returns
    -------
    TAResponse
        ``per_sample`` (DataFrame indexed by sample) and ``compare`` (the comparison table, or None
        without ``condition_key``).
    """
    from hcctme import sig
    from hcctme.tl._compare import compare

    _validate.anndata(adata)
    key_added = _validate.key_added(key_added)
    _validate.choice(aggregate, ("mean", "median"), name="aggregate")
    min_cells = _validate.positive_int(min_cells, name="min_cells")
    samples = _validate.obs_column(adata, sample_key, purpose="the sample of each cell").astype(str)
    if condition_key is not None:
        _validate.obs_column(adata, condition_key, purpose="the condition to compare")
        if reference is None:
            raise ValueError("condition_key was given without reference= (the baseline condition level)")
        design_cols = [c for c in [condition_key, pair_key,
                                   *([covariates] if isinstance(covariates, str) else (covariates or []))] if c]
        for c in design_cols:
            _validate.obs_column(adata, c)
    elif reference is not None:
        raise ValueError("reference= needs condition_key= (the obs column with the condition)")

    scores, origin = _ta_scores(adata, scores_key=scores_key, method=score_method, layer=layer,
                                use_raw=use_raw, min_coverage=min_coverage, sig=sig)
    have = [s for s in TA_SIGNATURES if s in scores.columns]
    if not have:
        raise ValueError("none of the T+A signatures could be scored (gene coverage too low?)")
    missing = [s for s in TA_SIGNATURES if s not in have]
    if missing:
        logger.warning("ta_response: signature(s) %s not scored (below min_coverage); left out", missing)
    scores = scores[have].astype(float)
    cell_values = scores.copy()
    if "TA_TREG" in have and "TA_TEFF" in have and aggregate == "mean":
        cell_values[TREG_TEFF] = scores["TA_TREG"] - scores["TA_TEFF"]

    grouped = scores.groupby(samples.to_numpy(), observed=True, sort=True)
    per_sample = grouped.mean() if aggregate == "mean" else grouped.median()
    if "TA_TREG" in have and "TA_TEFF" in have:
        per_sample[TREG_TEFF] = per_sample["TA_TREG"] - per_sample["TA_TEFF"]
    n_cells = grouped.size()
    per_sample["n_cells"] = n_cells.astype(int)
    small = n_cells < min_cells
    if small.all():
        raise ValueError(
            f"too few cells: no sample of obs[{sample_key!r}] has >= min_cells={min_cells} cells "
            f"(largest: {int(n_cells.max())})"
        )
    if small.any():
        logger.warning("ta_response: %d sample(s) with fewer than %d cells left out: %s", int(small.sum()),
                       min_cells, list(n_cells.index[small])[:20])
    per_sample = per_sample.loc[~small]
    per_sample.index.name = sample_key

    table = None
    if condition_key is not None:
        # the comparison runs on a light AnnData carrying only the design and the scores
        obs = adata.obs[list(dict.fromkeys(design_cols))].copy()
        obs["_sample"] = samples.to_numpy()
        light = AnnData(X=sp.csr_matrix((adata.n_obs, 1), dtype=np.float32), obs=obs)
        light.obsm["_ta"] = cell_values.set_axis(light.obs_names)
        value_cols = list(per_sample.columns.drop("n_cells"))
        if aggregate == "median" and TREG_TEFF in value_cols:
            value_cols.remove(TREG_TEFF)  # a difference of medians is not a median of cell values
        table = compare(light, condition_key=condition_key, sample_key="_sample", reference=reference,
                        features="scores", scores_key="_ta", signatures=[c for c in value_cols
                                                                         if c in cell_values.columns],
                        covariates=covariates, pair_key=pair_key, method=method, aggregate=aggregate,
                        min_cells=min_cells, store=False)
        cond = obs.groupby("_sample", observed=True)[condition_key].first().astype(str)
        per_sample[condition_key] = cond.reindex(per_sample.index).to_numpy()

    if store:
        entry = {
            "per_sample": per_sample.reset_index(),
            "params": {
                "sample_key": sample_key,
                "condition_key": condition_key or "",
                "reference": "" if reference is None else str(reference),
                "scores": origin,
                "aggregate": aggregate,
                "min_cells": min_cells,
                "signatures": list(have),
                "library_version": _validate.library_version(),
            },
        }
        if table is not None:
            entry["compare"] = table
        adata.uns[key_added] = entry
    logger.info("ta_response: %d T+A signatures over %d samples (%s)%s%s", len(have), per_sample.shape[0],
                origin, ", compared by " + condition_key if condition_key else "",
                f" -> uns[{key_added!r}]" if store else "")
    return TAResponse(per_sample=per_sample, compare=table)


def _ta_scores(adata, *, scores_key, method, layer, use_raw, min_coverage, sig):
    """Existing T+A scores from obsm[scores_key], or new ones scored on a light copy."""
    existing = adata.obsm.get(scores_key)
    if isinstance(existing, pd.DataFrame) and all(s in existing.columns for s in TA_SIGNATURES):
        return existing[list(TA_SIGNATURES)], f"obsm[{scores_key!r}]"
    from hcctme.tl._score import score

    try:
        signatures = sig.load(list(TA_SIGNATURES))
    except KeyError:
        signatures = sig.library().filter(collection="ta_response")
        if len(signatures) == 0:
            raise
    X, var_names = _validate.matrix(adata, layer=layer, use_raw=use_raw)
    light = AnnData(X=X, obs=pd.DataFrame(index=adata.obs_names),
                    var=pd.DataFrame(index=_validate.gene_names(adata, var_names)))  # harmonised symbols
    score(light, signatures, method=method, min_coverage=min_coverage, key_added="_ta")
    where = "layer " + layer if layer else ("raw" if (use_raw or (use_raw is None and adata.raw is not None))
                                             else "X")
    return light.obsm["_ta"], f"tl.score(method={method!r}) on {where}"
