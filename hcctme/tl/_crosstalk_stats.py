"""Patient-level differential crosstalk: a two-part test per interaction (detection, then strength).

Knows nothing of AnnData: it works on the long per-unit LIANA table, on which sender and receiver
groups each unit had (enough cells) and on the unit design of :mod:`hcctme.tl._design`, so the unit
of replication is the sample (or patient), and pairs and covariates enter as in ``tl.compare``.

An interaction LIANA did not report in a unit where both groups were present was *not detected*
there (below ``expr_prop``): that is information about detection, not a strength of 0. So the test
has two parts (as hurdle models do):

* detection: the fraction of evaluable units in which the interaction is detected, compared with
  Fisher's exact test (unpaired), an exact McNemar test (paired) or, with covariates, the ordinary
  linear model of :mod:`hcctme.tl._stats` on the 0/1 detection;
* strength: among units where it was detected, the per-unit strength, compared with the ordinary
  linear model (pairs and covariates as in ``tl.compare``). No variance prior is shared over the
  interactions: their strengths lie on different scales, and a shared prior (limma's) let the
  high-variance ones through under random labels (Lu 2022's patients: 7 % of strength tests at p < 0.05,
  one interaction in 31 % of the splits);

and the two p-values are combined by summing their chi-square(1) statistics (2 degrees of freedom;
1 when only one part could be tested).
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable, Mapping, Sequence

import numpy as np
import pandas as pd

from hcctme.tl import _stats

ID_COLUMNS: tuple[str, ...] = ("source", "target", "ligand_complex", "receptor_complex")

#: Per-unit interaction strength: name -> LIANA column. Ranks are turned into -log10(rank) so that
#: larger = stronger for every choice.
STRENGTHS: dict[str, str] = {
    "lr_means": "lr_means",
    "magnitude_rank": "magnitude_rank",
    "specificity_rank": "specificity_rank",
}


def strength_values(table: pd.DataFrame, strength: str) -> pd.Series:
    """Strength of each row of a LIANA table (larger = stronger)."""
    column = STRENGTHS[strength]
    if column not in table.columns:
        raise ValueError(
            f"strength={strength!r} needs the LIANA column {column!r}, which this run did not produce "
            f"(columns: {list(table.columns)}); specificity ranks need n_perms set (not None)"
        )
    values = pd.to_numeric(table[column], errors="coerce").astype(float)
    if column.endswith("_rank"):
        values = -np.log10(np.clip(values, np.finfo(float).tiny, 1.0))
    return values


def strength_matrix(
    table: pd.DataFrame,
    *,
    sample_key: str,
    samples: Sequence[str],
    groups: Mapping[str, Iterable[str]],
    strength: str,
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Interactions x units: strength where detected (NaN elsewhere), detected, evaluable.

    ``groups`` maps each unit to the cell groups analysed in it. An interaction is evaluable in a
    unit that has both its sender and its receiver group, detected where LIANA reported it; its
    strength is never imputed where it was not detected.
    """
    ids = list(ID_COLUMNS)
    # own column names: a sample_key such as "value" must not be overwritten by the strength
    long = table[ids].assign(_unit=table[sample_key].astype(str).to_numpy(),
                             _strength=strength_values(table, strength).to_numpy())
    wide = long.pivot_table(index=ids, columns="_unit", values="_strength", aggfunc="first", observed=True)
    wide = wide.reindex(columns=list(samples))
    index = wide.index.to_frame(index=False)
    evaluable = np.zeros(wide.shape, dtype=bool)
    for j, sample in enumerate(samples):
        present = set(groups.get(sample, ()))
        evaluable[:, j] = index["source"].isin(present).to_numpy() & index["target"].isin(present).to_numpy()
    values = wide.to_numpy(dtype=float, copy=True)
    values[~evaluable] = np.nan
    frame = lambda x: pd.DataFrame(x, index=wide.index, columns=list(samples))
    return frame(values), frame(~np.isnan(values)), frame(evaluable)


def _detection_part(detected: np.ndarray, evaluable: np.ndarray, design: pd.DataFrame, reference: str,
                    other: str, tested: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per interaction: detection-rate difference (other minus reference) and its p-value."""
    cond = design["condition"].to_numpy()
    blocks = design["block"].to_numpy() if "block" in design else None
    covariates = any(c.startswith("covariate:") for c in design.columns)
    effect = np.full(len(detected), np.nan)
    pval = np.full(len(detected), np.nan)
    if covariates:
        values = pd.DataFrame(np.where(evaluable, detected.astype(float), np.nan).T, index=design.index)
        res = _stats.compare_samples(values.loc[:, tested], design, reference, method="ols")
        res = res[res["contrast"] == f"{other} vs {reference}"]
        effect[res["feature"].to_numpy(int)] = res["effect"].to_numpy()
        pval[res["feature"].to_numpy(int)] = res["pvalue"].to_numpy()
        return effect, pval
    rows = np.flatnonzero(tested)
    if blocks is None:  # Fisher's test depends only on the 2 x 2 table: run it once per distinct table
        is_ref, is_oth = cond == reference, cond == other
        det = detected[rows] & evaluable[rows]
        tables = np.stack([det[:, is_oth].sum(axis=1), evaluable[rows][:, is_oth].sum(axis=1),
                           det[:, is_ref].sum(axis=1), evaluable[rows][:, is_ref].sum(axis=1)], axis=1)
        _, first, inverse = np.unique(tables, axis=0, return_index=True, return_inverse=True)
        once = [_stats.detection_test(detected[i, evaluable[i]], cond[evaluable[i]], reference, other)
                for i in rows[first]]
        effect[rows] = np.array([e for e, _ in once])[inverse.ravel()]
        pval[rows] = np.array([p for _, p in once])[inverse.ravel()]
        return effect, pval
    for i in rows:
        ok = evaluable[i]
        effect[i], pval[i] = _stats.detection_test(detected[i, ok], cond[ok], reference, other, blocks[ok])
    return effect, pval


def differential(
    matrix: pd.DataFrame,
    detected: pd.DataFrame,
    evaluable: pd.DataFrame,
    design: pd.DataFrame,
    *,
    reference: str,
    min_samples: int = 3,
) -> pd.DataFrame:
    """Two-part condition-vs-reference test of each interaction over units.

    ``design``: units (the columns of ``matrix``) with ``condition`` and optionally ``block`` and
    ``covariate:<name>`` (see :func:`hcctme.tl._design.unit_design`). An interaction is tested when
    each level has >= ``min_samples`` evaluable units and it was detected in >= ``min_samples``
    units in all; its strength part needs >= ``min_samples`` detected units per level (else only the
    detection part counts). Untested rows have ``tested=False`` and NaN p-values.
    """
    design = design.loc[list(matrix.columns)]
    cond = design["condition"].astype(str).to_numpy()
    det, ev = detected.to_numpy(bool), evaluable.to_numpy(bool)
    values = matrix.to_numpy(float)
    strength_in = pd.DataFrame(values.T, index=design.index)  # units x interaction positions
    others = [lv for lv in pd.unique(cond) if lv != reference]
    strength_all = _stats.compare_samples(strength_in, design, reference, method="ols",
                                          min_samples=min_samples)
    frames = []
    for other in others:
        is_ref, is_oth = cond == reference, cond == other
        n_ref, n_oth = ev[:, is_ref].sum(axis=1), ev[:, is_oth].sum(axis=1)
        n_det = det[:, is_ref | is_oth].sum(axis=1)
        tested = (n_ref >= min_samples) & (n_oth >= min_samples) & (n_det >= min_samples)
        det_effect, det_p = _detection_part(det, ev, design, reference, other, tested)
        part = strength_all[strength_all["contrast"] == f"{other} vs {reference}"]
        rows = part["feature"].to_numpy(int)
        s_effect, s_p = np.full(len(matrix), np.nan), np.full(len(matrix), np.nan)
        s_effect[rows], s_p[rows] = part["effect"].to_numpy(), part["pvalue"].to_numpy()
        s_p[~tested] = np.nan
        with np.errstate(invalid="ignore", divide="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # nanmean of an interaction never detected: NaN
            frac_ref = det[:, is_ref].sum(axis=1) / n_ref
            frac_oth = det[:, is_oth].sum(axis=1) / n_oth
            mean_ref = np.nanmean(np.where(is_ref[None, :], values, np.nan), axis=1) if is_ref.any() else np.nan
            mean_oth = np.nanmean(np.where(is_oth[None, :], values, np.nan), axis=1) if is_oth.any() else np.nan
        chi, dof, pval = _stats.combine_two_part(np.where(tested, det_p, np.nan), np.where(tested, s_p, np.nan))
        frame = matrix.index.to_frame(index=False)
        frame["condition"] = other
        frame["reference"] = reference
        frame["effect"] = s_effect
        frame["mean_reference"] = mean_ref
        frame["mean_other"] = mean_oth
        frame["detection_reference"] = frac_ref
        frame["detection_other"] = frac_oth
        frame["detection_effect"] = det_effect
        frame["pvalue_detection"] = np.where(tested, det_p, np.nan)
        frame["pvalue_strength"] = s_p
        frame["statistic"] = chi  # the two parts' chi-square(1) statistics summed, df parts tested
        frame["df"] = dof
        frame["pvalue"] = pval
        frame["padj"] = _stats.bh(pval)
        frame["n_reference"] = n_ref
        frame["n_other"] = n_oth
        frame["n_samples"] = n_ref + n_oth
        frame["n_detected"] = n_det
        frame["tested"] = tested
        frame["direction"] = _direction(s_effect, det_effect, s_p, det_p)
        frames.append(frame)
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def _direction(s_effect: np.ndarray, det_effect: np.ndarray, s_p: np.ndarray, det_p: np.ndarray) -> np.ndarray:
    """Direction of the part with the smaller p-value (strength when only it was tested)."""
    use_detection = np.isnan(s_p) | (np.nan_to_num(det_p, nan=2.0) < np.nan_to_num(s_p, nan=2.0))
    return _stats.direction(np.where(use_detection, det_effect, s_effect))
