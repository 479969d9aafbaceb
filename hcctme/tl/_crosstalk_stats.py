"""Patient-level differential crosstalk: per-sample interaction strength, rank test, BH.

Knows nothing of AnnData: it works on the long per-sample LIANA table and on which sender and
receiver groups each sample had (enough cells), so the unit of replication is the sample.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

import numpy as np
import pandas as pd
from scipy import stats

from hcctme.tl import _stats

ID_COLUMNS: tuple[str, ...] = ("source", "target", "ligand_complex", "receptor_complex")

#: Per-sample interaction strength: name -> (LIANA column, transform). Ranks are turned into
#: -log10(rank) so that larger = stronger for every choice; an interaction LIANA did not report in
#: a sample where both groups were present (below ``expr_prop``) gets strength 0, i.e. the floor.
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
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Interactions x samples strength matrix and the matching 'detected' mask.

    ``groups`` maps each sample to the cell groups that were analysed in it. A cell is NaN when the
    sample lacks the sender or the receiver group (not evaluable), 0 when both groups were present
    but LIANA did not report the interaction (not expressed above ``expr_prop``), else the strength.
    """
    ids = list(ID_COLUMNS)
    long = table[ids + [sample_key]].copy()
    long["value"] = strength_values(table, strength).to_numpy()
    long[sample_key] = long[sample_key].astype(str)
    wide = long.pivot_table(index=ids, columns=sample_key, values="value", aggfunc="first", observed=True)
    wide = wide.reindex(columns=list(samples))
    detected = wide.notna()
    index = wide.index.to_frame(index=False)
    values = wide.to_numpy(dtype=float, copy=True)
    for j, sample in enumerate(samples):
        present = set(groups.get(sample, ()))
        evaluable = index["source"].isin(present).to_numpy() & index["target"].isin(present).to_numpy()
        column = values[:, j]
        column[evaluable & np.isnan(column)] = 0.0
        column[~evaluable] = np.nan
    matrix = pd.DataFrame(values, index=wide.index, columns=list(samples))
    return matrix, detected.reindex(columns=list(samples)).fillna(False).astype(bool)


def _mwu_block(other: np.ndarray, ref: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Two-sided Mann-Whitney U (other vs reference) per row: exact without ties when a group has
    <= 8 samples (scipy's rule), else the normal approximation with tie and continuity correction."""
    n_rows = other.shape[0]
    stat = np.full(n_rows, np.nan)
    pval = np.full(n_rows, np.nan)
    both = np.concatenate([other, ref], axis=1)
    constant = np.all(both == both[:, :1], axis=1)
    stat[constant] = other.shape[1] * ref.shape[1] / 2.0
    pval[constant] = 1.0
    todo = ~constant
    if not todo.any():
        return stat, pval
    sorted_rows = np.sort(both[todo], axis=1)
    ties = np.any(sorted_rows[:, 1:] == sorted_rows[:, :-1], axis=1)
    rows = np.flatnonzero(todo)
    # scipy's "auto" rule per row: exact without ties unless both groups exceed 8 samples
    small = min(other.shape[1], ref.shape[1]) <= 8
    for exact in (True, False):
        pick = rows[(~ties & small) == exact]
        if pick.size == 0:
            continue
        method = "exact" if exact else "asymptotic"
        res = stats.mannwhitneyu(other[pick], ref[pick], alternative="two-sided", method=method, axis=1)
        stat[pick] = res.statistic
        pval[pick] = res.pvalue
    return stat, pval


def differential(
    matrix: pd.DataFrame,
    detected: pd.DataFrame,
    conditions: pd.Series,
    *,
    reference: str,
    min_samples: int = 3,
) -> pd.DataFrame:
    """Condition-vs-reference test of each interaction over samples.

    ``conditions`` maps sample -> condition level. For every other level: effect = mean(other) -
    mean(reference) of the per-sample strength, Mann-Whitney U over samples (exact without ties for
    small groups, normal approximation with tie correction otherwise), BH over the tested interactions of that
    comparison. An interaction is tested when each group has >= ``min_samples`` evaluable samples
    and it was detected in >= ``min_samples`` samples in all; otherwise ``tested=False`` and the
    p-values are NaN.
    """
    conditions = conditions.astype(str).reindex(matrix.columns)
    others = [lvl for lvl in pd.unique(conditions) if lvl != reference]
    ref_cols = conditions.index[conditions == reference]
    frames = []
    for other in others:
        oth_cols = conditions.index[conditions == other]
        ref_vals = matrix[ref_cols].to_numpy(dtype=float)
        oth_vals = matrix[oth_cols].to_numpy(dtype=float)
        n_ref = np.sum(~np.isnan(ref_vals), axis=1)
        n_oth = np.sum(~np.isnan(oth_vals), axis=1)
        cols = list(ref_cols) + list(oth_cols)
        n_detected = detected[cols].to_numpy().sum(axis=1)
        with np.errstate(invalid="ignore"), np.testing.suppress_warnings() as sup:
            sup.filter(RuntimeWarning)
            mean_ref = np.nanmean(ref_vals, axis=1) if ref_vals.shape[1] else np.full(len(matrix), np.nan)
            mean_oth = np.nanmean(oth_vals, axis=1) if oth_vals.shape[1] else np.full(len(matrix), np.nan)
        tested = (n_ref >= min_samples) & (n_oth >= min_samples) & (n_detected >= min_samples)
        stat = np.full(len(matrix), np.nan)
        pval = np.full(len(matrix), np.nan)
        if tested.any():
            # rows share a test shape only when their evaluable samples coincide: group by NaN pattern
            mask = ~np.isnan(np.concatenate([oth_vals, ref_vals], axis=1))
            patterns, _ = pd.factorize(pd.Series([row.tobytes() for row in mask], dtype=object))
            for pattern in np.unique(patterns[tested]):
                rows = np.flatnonzero(tested & (patterns == pattern))
                keep = mask[rows[0]]
                keep_oth, keep_ref = keep[: oth_vals.shape[1]], keep[oth_vals.shape[1]:]
                s, p = _mwu_block(oth_vals[np.ix_(rows, keep_oth)], ref_vals[np.ix_(rows, keep_ref)])
                stat[rows], pval[rows] = s, p
        frame = matrix.index.to_frame(index=False)
        frame["condition"] = other
        frame["reference"] = reference
        frame["effect"] = mean_oth - mean_ref
        frame["mean_reference"] = mean_ref
        frame["mean_other"] = mean_oth
        frame["statistic"] = stat
        frame["pvalue"] = pval
        frame["padj"] = _stats.bh(pval)
        frame["n_reference"] = n_ref
        frame["n_other"] = n_oth
        frame["n_samples"] = n_ref + n_oth
        frame["n_detected"] = n_detected
        frame["tested"] = tested
        frame["direction"] = _stats.direction(frame["effect"].to_numpy())
        frames.append(frame)
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
