"""The sample-level design shared by compare, crosstalk and ta_response (no tests in here).

From the cells' obs it builds one row per *unit of replication* with its condition, its block
(pair or patient, for paired designs) and its covariates, and maps every cell to its unit:

* no ``patient_key`` / ``pair_key``: the unit is the sample;
* ``patient_key`` with every patient in one condition level: the samples of a patient (multi-region,
  tumour + adjacent, ...) are pooled into one unit per patient;
* ``patient_key`` with patients in several levels (pre / on treatment): one unit per patient and
  level (that patient's samples of the level pooled), the patient is the block of a paired design;
* ``pair_key``: the unit is the sample, the pair is the block.

Every inconsistency is refused with an error naming the column: a sample in two patients, a pair
(or patient) with one member, a covariate that varies within a unit, is constant, has an infinite value, or is
collinear with the condition (to limma's tolerance, :func:`hcctme.tl._stats.check_design`).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from anndata import AnnData

from hcctme import _validate
from hcctme.tl import _stats

UNIT_SEP = "|"


def covariate_list(covariates: str | Sequence[str] | None) -> list[str]:
    """``covariates`` as a list of obs column names."""
    return _validate.names(covariates, name="covariates (obs column names)") or []


def _constant_within(frame: pd.DataFrame, by: str, column: str, key: str, where: str) -> None:
    n_values = frame.groupby(by, observed=True)[column].nunique()
    bad = n_values[n_values > 1]
    if len(bad):
        what = {"condition": "the condition", "block": "the pair", "patient": "the patient"}.get(column, "a covariate")
        raise ValueError(
            f"obs[{key!r}] ({what}) varies within {where} ({_validate._preview(bad.index)}); each must have one "
            f"{key} value (the {where.split(' of ')[0].rstrip('s')} is the unit of replication)"
        )


def unit_design(
    adata: AnnData,
    *,
    condition_key: str,
    sample_key: str | None,
    reference: str,
    patient_key: str | None = None,
    pair_key: str | None = None,
    covariates: Sequence[str] = (),
) -> tuple[pd.Series, pd.DataFrame]:
    """The unit of each obs and one design row per unit (``condition``, ``block``, ``covariate:<name>``)."""
    condition = _validate.obs_column(adata, condition_key, purpose="the condition to compare").astype(str)
    if sample_key is None:
        samples = pd.Series(adata.obs_names.astype(str), index=adata.obs_names, name="sample")
        if not samples.is_unique:
            raise ValueError("sample_key=None needs unique obs names (each obs is a sample)")
    else:
        samples = _validate.obs_column(adata, sample_key, purpose="the sample of each cell").astype(str)
    levels = pd.unique(condition)
    if len(levels) < 2:
        raise ValueError(
            f"adata.obs[{condition_key!r}] has a single level ({levels[0]!r}); a comparison needs at least "
            "two condition levels"
        )
    reference = _validate.reference_level(condition, reference, key=condition_key)
    if patient_key is not None and pair_key is not None:
        raise ValueError("give patient_key or pair_key, not both (patient_key covers pairs: a patient with samples "
                         "in several condition levels is a pair)")
    frame = pd.DataFrame({"sample": samples.to_numpy(), "condition": condition.to_numpy()},
                         index=adata.obs_names.rename(None))
    keys = {"condition": condition_key}
    if patient_key is not None:
        frame["patient"] = _validate.obs_column(adata, patient_key, purpose="the patient of each sample") \
            .astype(str).to_numpy()
        keys["patient"] = patient_key
    if pair_key is not None:
        frame["block"] = _validate.obs_column(adata, pair_key, purpose="pair").astype(str).to_numpy()
        keys["block"] = pair_key
    for c in covariates:
        frame[f"covariate:{c}"] = _validate.obs_column(adata, c, purpose="covariate").to_numpy()
        keys[f"covariate:{c}"] = c
    where = f"samples of obs[{sample_key!r}]" if sample_key is not None else "samples"
    if sample_key is not None:
        for column, key in keys.items():
            if column == "patient":
                _check_patients(frame, sample_key, patient_key)
            else:
                _constant_within(frame, "sample", column, key, where)
    per_sample = frame.groupby("sample", observed=True, sort=True).first()
    unit_of_sample = pd.Series(per_sample.index, index=per_sample.index)
    if patient_key is not None:
        n_levels = per_sample.groupby("patient")["condition"].nunique()
        if (n_levels > 1).any():
            single = n_levels.index[n_levels == 1]
            if len(single):
                raise ValueError(
                    f"a pair with one member: patient(s) {_validate._preview(single)} of obs[{patient_key!r}] have "
                    "samples in a single condition level while others span several; a paired design needs every "
                    "patient in the reference and another level (subset the data to complete patients)"
                )
            unit_of_sample = per_sample["patient"] + UNIT_SEP + per_sample["condition"]
            per_sample["block"] = per_sample["patient"]
        else:
            unit_of_sample = per_sample["patient"].copy()
        per_sample["unit"] = unit_of_sample
        for column, key in keys.items():
            if column.startswith("covariate:"):
                _constant_within(per_sample, "unit", column, key, f"patients of obs[{patient_key!r}]")
    design = per_sample.assign(unit=unit_of_sample).groupby("unit", sort=True).first()
    design = design.drop(columns=[c for c in ("patient",) if c in design.columns])
    design.index.name = "unit"
    _covariate_types(adata, design, covariates)
    check_levels(design, condition_key, sample_key)
    if "block" in design:
        _check_blocks(design, reference, patient_key or pair_key)
    others = [lv for lv in pd.unique(design["condition"]) if lv != reference]
    X = _stats.design_matrix(design["condition"], reference, others, covariates=covariate_frame(design),
                             blocks=design.get("block", None))
    _stats.check_design(X)
    units = pd.Series(unit_of_sample.reindex(samples.to_numpy()).to_numpy(), index=adata.obs_names, name="unit")
    return units, design


def _check_patients(frame: pd.DataFrame, sample_key: str, patient_key: str) -> None:
    n_patients = frame.groupby("sample", observed=True)["patient"].nunique()
    bad = n_patients[n_patients > 1]
    if len(bad):
        raise ValueError(
            f"sample(s) {_validate._preview(bad.index)} of obs[{sample_key!r}] belong to more than one patient of "
            f"obs[{patient_key!r}]; a sample comes from one patient: fix obs[{patient_key!r}] or obs[{sample_key!r}]"
        )


def _covariate_types(adata: AnnData, design: pd.DataFrame, covariates: Sequence[str]) -> None:
    for c in covariates:
        name = f"covariate:{c}"
        original = adata.obs[c]
        if pd.api.types.is_numeric_dtype(original) and not pd.api.types.is_bool_dtype(original):
            design[name] = design[name].astype(float)
            n_infinite = int(np.isinf(original.to_numpy(dtype=float)).sum())
            if n_infinite:
                raise ValueError(f"adata.obs[{c!r}] has {n_infinite} non-finite (infinite) values; fill or drop "
                                 "those cells before calling this tool")
        else:
            design[name] = design[name].astype(str)
        if design[name].nunique() < 2:
            raise ValueError(f"the covariate obs[{c!r}] is constant over the samples; drop {c!r} from covariates")
    if "block" in design:
        design["block"] = design["block"].astype(str)


def check_levels(design: pd.DataFrame, condition_key: str, sample_key: str | None, *,
                 min_cells: int | None = None) -> None:
    """Refuse a condition level with fewer than 2 samples (``design``: one row per sample, a ``condition`` column).

    With ``min_cells``, the design holds the samples left after those of fewer cells were left out: a property of
    the data, so :class:`hcctme._validate.TooFewCellsError`.
    """
    per_level = design["condition"].value_counts()
    thin = per_level[per_level < 2]
    if not len(thin):
        return
    levels = ", ".join(f"{lv!r} ({n} sample)" for lv, n in thin.items()) + f" of obs[{condition_key!r}]"
    if min_cells is not None:
        raise _validate.TooFewCellsError(
            f"too few cells: with the samples of fewer than min_cells={min_cells} cells left out, condition level(s) "
            f"{levels} keep fewer than the 2 samples a comparison needs; lower min_cells, or compare without that level"
        )
    raise ValueError(
        f"one sample per group: condition level(s) {levels}; the sample"
        + (f" (obs[{sample_key!r}])" if sample_key else "")
        + " is the unit of replication and each level needs at least 2 samples"
    )


def _check_blocks(design: pd.DataFrame, reference: str, block_key: str) -> None:
    dup = design.groupby(["block", "condition"]).size()
    dup = dup[dup > 1]
    if len(dup):
        raise ValueError(
            f"pairs of obs[{block_key!r}] have more than one sample in one condition level "
            f"({_validate._preview(f'{p}/{c}' for p, c in dup.index)}); a pair is one sample per level "
            "(use patient_key to pool a patient's samples of one level)"
        )
    sizes = design.groupby("block").size()
    single = sizes.index[sizes < 2]
    if len(single):
        raise ValueError(
            f"a pair with one member: {_validate._preview(single)} of obs[{block_key!r}] have a single sample; "
            "every pair needs a sample in the reference and another level (drop the incomplete pairs)"
        )
    complete = set(design.loc[design["condition"] == reference, "block"])
    if len(complete) < 2:
        raise ValueError(
            f"paired design: only {len(complete)} pair(s) of obs[{block_key!r}] have a sample in the reference "
            f"{reference!r} and another level; at least 2 are needed"
        )


def covariate_frame(design: pd.DataFrame) -> pd.DataFrame | None:
    """The ``covariate:<name>`` columns of a design, renamed to ``<name>`` (None when there are none)."""
    cols = [c for c in design.columns if c.startswith("covariate:")]
    if not cols:
        return None
    return design[cols].rename(columns=lambda c: c.split(":", 1)[1])
