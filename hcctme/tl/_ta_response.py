"""T+A (atezolizumab + bevacizumab) response signatures per patient, and a responder/resistor test."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
import scipy.sparse as sp
from anndata import AnnData

from hcctme import _validate
from hcctme._constants import Defaults, Keys, Suffix
from hcctme._logging import logger
from hcctme.tl import _compare, _design

#: The T+A response signatures of Zhu et al. 2022 Nat Med (PMID 35739268), library collection
#: "ta_response".
TA_SIGNATURES: tuple[str, ...] = (
    "TA_ABRS", "TA_TEFF", "TA_TREG", "TA_ANGIOGENESIS", "TA_MYELOID_INFLAMMATION", "TA_ONCOFETAL",
)
#: Column of the Treg/Teff contrast: TA_TREG minus TA_TEFF per sample.
TREG_TEFF = "TA_TREG_TEFF"
AGGREGATES = ("pseudobulk", "mean", "median")
PRIOR_COUNT = 1.0  # log2(CPM + PRIOR_COUNT)


def ta_response(
    adata: AnnData,
    *,
    sample_key: str,
    condition_key: str | None = None,
    reference: str | None = None,
    aggregate: str = "pseudobulk",
    layer: str | None = Keys.COUNTS,
    scores_key: str = Keys.SCORES,
    score_method: str = "ucell",
    use_raw: bool | None = None,
    min_coverage: float = Defaults.MIN_COVERAGE,
    min_cells: int = Defaults.MIN_CELLS,
    method: str = "auto",
    covariates: str | Sequence[str] | None = None,
    patient_key: str | None = None,
    pair_key: str | None = None,
    key_added: str = Keys.TA_RESPONSE,
    copy: bool = False,
) -> AnnData | None:
    """Score the T+A response signatures per sample and, with a condition, compare groups.

    The signatures Zhu et al. 2022 (Nat Med, PMID 35739268) read in the atezolizumab + bevacizumab trials
    (library collection ``"ta_response"``): ``TA_ABRS`` and ``TA_ONCOFETAL`` (GPC3, AFP, with SALL4) from that
    paper; ``TA_TEFF``, ``TA_ANGIOGENESIS`` and ``TA_MYELOID_INFLAMMATION``, the IMmotion150 sets (McDermott 2018,
    PMID 29867230) the paper applied; ``TA_TREG``, the 8-gene Treg score Li et al. 2024 (PMID 38168935) applied to
    the same trial data (Zhu 2022's own Treg list is not public). Each signature's source is in its library record
    (``hcctme.sig.library()``). They were defined on bulk tumours, so by
    default (``aggregate="pseudobulk"``) each unit (sample, or patient with ``patient_key``) is read
    as the trial analyses read a bulk sample: the counts of all its cells are summed, turned into
    log2 CPM (prior count 1), each signature gene is z-scored across units and a signature's value
    is the mean z of its genes found in the data (signatures with fewer than ``min_coverage`` of
    their genes are left out). ``"mean"`` / ``"median"`` instead summarise per-cell scores
    (``obsm[scores_key]``, or UCell scores computed on the side): those are weighted by the cell
    composition of each sample, unlike the bulk readout.

    ``TA_TREG_TEFF = TA_TREG - TA_TEFF``, the difference of the two values (mean z of the genes' log CPM for the
    pseudobulk, of per-cell scores otherwise), stands in for Zhu 2022's Treg/Teff ratio (higher = relatively more
    Treg than effector T signal, associated with reduced benefit).

    Parameters
    ----------
    adata
        Cells x genes (raw counts in ``layer`` for the pseudobulk readout).
    sample_key
        obs column of the sample of each cell.
    condition_key, reference
        Optional: compare the per-unit values between condition levels (other minus reference)
        with the engine of :func:`hcctme.tl.compare` on scores (``method="auto"``: Mann-Whitney U, or a
        weighted linear model with pairs or covariates; ``method``, ``covariates``, ``patient_key``,
        ``pair_key`` as there). A sample ``min_cells`` leaves out takes no part in the values of the others
        (the pseudobulk's z-scores are over the kept samples), and its pair partner is left out too.
    aggregate
        ``"pseudobulk"`` (default), ``"mean"`` or ``"median"`` of per-cell scores. Per-cell scores move
        with sequencing depth: with a condition whose samples differ in depth (>= 1.5-fold median counts
        per cell, read from ``layers["counts"]``, or depths that separate the levels beyond chance, as in
        :func:`hcctme.tl.compare`) a warning names :func:`hcctme.pp.equalize_depth`; on null
        cohorts with the resistors read 2x deeper, ``"mean"`` put 0.27 of the tests at p < 0.05 and the
        pseudobulk 0.03 (sweep 58).
    layer
        Layer of raw counts for the pseudobulk (``None``: ``.X``).
    scores_key, score_method, use_raw, min_coverage
        ``"mean"``/``"median"``: existing scores in ``obsm[scores_key]`` when it holds every T+A
        signature, else scored now with :func:`hcctme.tl.score` (``score_method`` on the layer the scores of
        ``obsm[scores_key]`` read, as their record names it: a depth-equalised layer; without one on ``.X``, or
        ``.raw`` per ``use_raw``) on the side (not written into ``adata``). ``min_coverage`` also applies to
        the pseudobulk readout.
    min_cells
        Units with fewer cells are left out (logged).
    method, covariates, patient_key, pair_key
        The design and test, as in :func:`hcctme.tl.compare`. ``patient_key`` pools a patient's
        samples (or pairs pre/on samples of one patient).
    key_added
        ``uns[key_added + "_per_sample"]``: one row per unit (``sample``, the T+A signatures,
        ``TA_TREG_TEFF``, ``n_cells``, the condition). With ``condition_key``, ``uns[key_added]``:
        the comparison table (columns of :func:`hcctme.tl.compare`). ``uns[key_added + "_params"]``:
        tool, params, library_version, the signatures read and their genes found.
    copy
        Return a copy of ``adata`` with the results instead of writing into ``adata``.

    Returns
    -------
    None, or the AnnData copy when ``copy=True``. Nothing is written when the call fails.
    """
    from hcctme.tl import _depth_gap

    _validate.anndata(adata, writes=True)
    key_added = _validate.key_added(key_added, adata=adata, slots=("uns",), reads=(scores_key,),
                                    tool="hcctme.tl.ta_response", outputs=[("uns", Suffix.PER_SAMPLE)])
    copy = _validate.copy_flag(copy, adata=adata, tool="hcctme.tl.ta_response", writes="uns")
    _validate.choice(aggregate, AGGREGATES, name="aggregate")
    min_cells = _validate.positive_int(min_cells, name="min_cells")
    min_coverage = _validate.fraction(min_coverage, name="min_coverage")
    covariates = _design.covariate_list(covariates)
    _validate.key_name(sample_key, name="sample_key (the T+A signatures are read per sample)")
    if condition_key is not None:
        if reference is None:
            raise ValueError("condition_key was given without reference= (the baseline condition level)")
        units, design = _design.unit_design(adata, condition_key=condition_key, sample_key=sample_key,
                                            reference=reference, patient_key=patient_key, pair_key=pair_key,
                                            covariates=covariates)
    else:
        if reference is not None:
            raise ValueError("reference= needs condition_key= (the obs column with the condition)")
        if patient_key is not None or pair_key is not None or covariates:
            raise ValueError("patient_key, pair_key and covariates describe a comparison: give condition_key too")
        units = _validate.obs_column(adata, sample_key, purpose="the sample of each cell").astype(str)
        design = None
    n_cells = units.value_counts()
    small = n_cells[n_cells < min_cells]
    if len(small) == len(n_cells):
        raise _validate.TooFewCellsError(f"too few cells: no sample of obs[{sample_key!r}] has >= "
                                         f"min_cells={min_cells} cells (largest: {int(n_cells.max())}); lower "
                                         "min_cells (min_cells=1 for one observation per sample: bulk or "
                                         "pseudobulk input)")
    if aggregate == "pseudobulk" and len(n_cells) - len(small) < 2:
        raise _validate.TooFewCellsError(
            f"too few samples: the pseudobulk z-scores compare the units of obs[{sample_key!r}] with each other and "
            f"need >= 2 of >= min_cells={min_cells} cells; {len(n_cells) - len(small)} kept (use aggregate='mean' "
            "for per-cell score means of a single sample)")
    if len(small):
        logger.warning("ta_response: %d sample(s) with fewer than %d cells left out: %s", len(small), min_cells,
                       list(small.index)[:20])
    if design is not None and "block" in design and len(small):  # a pair left with one member tests nothing
        blocks = design["block"].drop(index=small.index, errors="ignore")
        alone = blocks.index[blocks.map(blocks.value_counts()).to_numpy() < 2]
        if len(alone):
            logger.warning("ta_response: %d sample(s) left without their pair/patient partner by min_cells=%d and "
                           "left out too: %s", len(alone), min_cells, list(alone)[:20])
            small = pd.concat([small, n_cells.loc[alone]])
    if design is not None:
        _design.check_levels(design.drop(index=small.index, errors="ignore"), condition_key, sample_key,
                             min_cells=min_cells)

    if aggregate == "pseudobulk":
        values, provenance = _pseudobulk_scores(adata, units, layer=layer, min_coverage=min_coverage,
                                                left_out=small.index)
    else:
        values, provenance = _cell_scores(adata, units, aggregate=aggregate, scores_key=scores_key,
                                          method=score_method, use_raw=use_raw, min_coverage=min_coverage)
    values = values.drop(index=small.index, errors="ignore")
    if "TA_TREG" in values and "TA_TEFF" in values:
        values[TREG_TEFF] = values["TA_TREG"] - values["TA_TEFF"]
    table, depth = None, None
    if design is not None and aggregate != "pseudobulk":  # per-cell scores move with depth; the pseudobulk's CPM not
        depth = _depth_gap.condition_depths(adata, units, design, scores_key=scores_key,
                                            counts_layer=layer or Keys.COUNTS)
    if design is not None:
        table = _compare_units(values, design.loc[values.index], reference=str(reference), method=method)
    per_sample = values.copy()
    per_sample.insert(0, "sample", per_sample.index.astype(str))
    per_sample["n_cells"] = n_cells.reindex(values.index).astype(int).to_numpy()
    if design is not None:
        per_sample[condition_key] = design["condition"].reindex(values.index).to_numpy()
    per_sample = per_sample.reset_index(drop=True)

    params = {
        "tool": "hcctme.tl.ta_response",
        **_validate.call_record(
            sample_key=sample_key, condition_key=condition_key, reference=reference, aggregate=aggregate,
            layer=layer, scores_key=scores_key, score_method=score_method, use_raw=use_raw,
            min_coverage=float(min_coverage), min_cells=min_cells, method=method, covariates=list(covariates) or None,
            patient_key=patient_key, pair_key=pair_key),
        "library_version": _validate.library_version(),
        "signatures": [c for c in values.columns if c != TREG_TEFF],
        **({"depth": depth} if depth is not None else {}),  # h5ad holds no None
        **provenance,
    }
    target = adata.copy() if copy else adata
    target.uns[key_added + Suffix.PER_SAMPLE] = per_sample
    if table is not None:
        target.uns[key_added] = table
    else:  # a run without a condition replaces an earlier run's comparison too
        target.uns.pop(key_added, None)
    target.uns[key_added + Suffix.PARAMS] = params
    logger.info("ta_response: %d T+A signatures over %d units (%s) -> uns[%r]%s", len(params["signatures"]),
                len(per_sample), aggregate, key_added + Suffix.PER_SAMPLE,
                f", compared by {condition_key} -> uns[{key_added!r}]" if table is not None else "")
    return target if copy else None


def _signature_genes() -> dict[str, list[str]]:
    from hcctme import sig

    try:
        return sig.load(list(TA_SIGNATURES)).to_dict()
    except KeyError:
        found = sig.library().filter(collection="ta_response")
        if len(found) == 0:
            raise
        return found.to_dict()


def _pseudobulk_scores(adata: AnnData, units: pd.Series, *, layer: str | None, min_coverage: float,
                       left_out: pd.Index) -> tuple[pd.DataFrame, dict]:
    """Units x signatures: mean z (across the units not ``left_out``) of the signature genes' pseudobulk log2 CPM."""
    X, var_names = _validate.matrix(adata, layer=layer, use_raw=False)
    var_names = _validate.unique_symbols(adata, var_names)
    kind = _validate.matrix_kind(X)
    if kind != "counts":
        where = f"layer {layer!r}" if layer is not None else ".X"
        raise ValueError(f"aggregate='pseudobulk' sums raw counts but {where} looks {kind}; pass the layer with raw "
                         "counts (layer='counts') or use aggregate='mean' on per-cell scores")
    codes, order = pd.factorize(units.to_numpy(), sort=True)
    sums = _validate.group_sums(X, codes, len(order))  # chunk by chunk: a backed matrix is never loaded whole
    lib = sums.sum(axis=1, keepdims=True)
    logcpm = np.log2(sums / np.maximum(lib, 1.0) * 1e6 + PRIOR_COUNT)
    frame = pd.DataFrame(logcpm, index=pd.Index(order, name="sample"), columns=var_names)
    frame = frame.drop(index=left_out, errors="ignore")
    sd = frame.std(axis=0, ddof=1)
    z = (frame - frame.mean(axis=0)) / sd.where(sd > 0)
    values, used = {}, {}
    for name, genes in _signature_genes().items():
        present = [g for g in genes if g in z.columns and np.isfinite(sd[g]) and sd[g] > 0]
        if not present or len(present) / len(genes) < min_coverage:  # none varying: nothing to average
            logger.warning("ta_response: %s has %d of its %d genes varying in the pseudobulk (min_coverage=%.2f); "
                           "left out", name, len(present), len(genes), min_coverage)
            continue
        values[name] = z[present].mean(axis=1)
        used[name] = present
    if not values:
        raise _validate.TooFewGenesError(
            f"none of the T+A signatures has enough of its genes varying in the data (min_coverage={min_coverage}); "
            "check that var_names are gene symbols (hcctme.pp.harmonize_genes), or lower min_coverage")
    return pd.DataFrame(values), {"scores": f"pseudobulk log2 CPM of {'layer ' + layer if layer else 'X'}",
                                  "genes_used": used}


def _cell_scores(adata: AnnData, units: pd.Series, *, aggregate: str, scores_key: str, method: str,
                 use_raw: bool | None, min_coverage: float) -> tuple[pd.DataFrame, dict]:
    """Units x signatures: mean or median of per-cell scores, and the genes each signature's scores read.

    Scored on the side, they read the matrix the stored scores read (their record's layer: a depth-equalised one,
    which the depth check reads from that record), else ``.X`` or ``.raw`` per ``use_raw``.
    """
    existing = adata.obsm.get(scores_key)
    record = adata.uns.get(scores_key + Suffix.PARAMS)
    record = record if isinstance(record, dict) else {}
    if isinstance(existing, pd.DataFrame) and all(s in existing.columns for s in TA_SIGNATURES):
        scores, origin, genes = existing[list(TA_SIGNATURES)], f"obsm[{scores_key!r}]", record.get("genes_used", {})
    else:
        from hcctme import sig
        from hcctme.tl._score import score

        layer = (record.get("params") or {}).get("layer")
        if layer is not None and layer not in adata.layers:
            raise KeyError(
                f"the scores of obsm[{scores_key!r}] read layers[{layer!r}] (uns[{scores_key + Suffix.PARAMS!r}]), "
                "which adata no longer holds, and the T+A signatures they lack would be scored on it: make the layer "
                "again (hcctme.pp.equalize_depth for the depth-equalised one), or score the T+A signatures with the "
                "rest (hcctme.tl.score(adata, layer=...)), or use the pseudobulk (aggregate='pseudobulk')")
        use_raw = use_raw if layer is None else False
        X, var_names = _validate.matrix(adata, layer=layer, use_raw=use_raw)
        light = AnnData(X=X, obs=pd.DataFrame(index=adata.obs_names),
                        var=pd.DataFrame(index=_validate.unique_symbols(
                            adata, var_names, raw=_validate.reads_raw(adata, layer, use_raw))))
        signatures = sig.load(list(_signature_genes()))
        score(light, signatures, method=method, min_coverage=min_coverage, key_added="_ta")
        scores, genes = light.obsm["_ta"], light.uns["_ta" + Suffix.PARAMS]["genes_used"]
        origin = f"tl.score(method={method!r}{f', layer={layer!r}' if layer is not None else ''})"
    scores = scores.astype(float)
    grouped = scores.groupby(units.to_numpy(), observed=True, sort=True)
    values = grouped.mean() if aggregate == "mean" else grouped.median()
    values.index.name = "sample"
    used = {name: [str(g) for g in genes[name]] for name in values.columns if name in genes}
    return values, {"scores": f"{aggregate} of per-cell {origin}", "genes_used": used}


def _free_name(name: str, taken: list[str]) -> str:
    """``name``, with underscores in front until it is none of the user's covariate names."""
    while name in taken:
        name = "_" + name
    return name


def _compare_units(values: pd.DataFrame, design: pd.DataFrame, *, reference: str, method: str) -> pd.DataFrame:
    """The comparison table of per-unit values, through tl.compare's engine on a unit-level AnnData."""
    obs = pd.DataFrame(index=pd.Index(values.index.astype(str), name=None))
    covariates = []
    for col in design.columns:
        if col.startswith("covariate:"):
            name = col.split(":", 1)[1]
            obs[name] = design[col].to_numpy()
            covariates.append(name)
    condition, pair = _free_name("_condition", covariates), None
    obs[condition] = design["condition"].astype(str).to_numpy()
    if "block" in design:
        pair = _free_name("_block", [*covariates, condition])
        obs[pair] = design["block"].astype(str).to_numpy()
    light = AnnData(X=sp.csr_matrix((len(obs), 1), dtype=np.float32), obs=obs)
    light.obsm["_ta"] = values.set_axis(light.obs_names)
    table, _, _ = _compare._tables(
        light, condition_key=condition, sample_key=None, reference=reference, features="scores", groupby=None,
        parent_key=None, covariates=covariates or None, patient_key=None, pair_key=pair, method=method,
        transform="asin", scores_key="_ta", signatures=None, layer=None, aggregate="mean",
        min_cells=Defaults.MIN_CELLS, pseudocount=0.5)
    return table
