"""One card per patient.

A card shows the state composition against the cohort, the active axes and their evidence, the spatial
barrier, and the therapies linked to each active axis with their evidence tier and trial.
"""

from __future__ import annotations

import html

import numpy as np
import pandas as pd

from hcctme.kb._axes import therapy_label
from hcctme.report import _html

KINDS = ("scores", "states", "crosstalk", "spatial")
_BAR_PX = 90


def state_fractions(states: pd.Series, samples: pd.Series, contexts: pd.Series | None, *,
                    unassigned: str) -> pd.DataFrame:
    """Per patient x state, the fraction of the patient's cells of the state's context (or of all cells).

    NaN where the patient has no cell of the state's context: the state was not measured there, which is not a
    fraction of 0 (and the cohort median is taken over the patients who have that population).
    """
    keep = (states != unassigned).to_numpy()
    every = pd.Index(pd.unique(samples.to_numpy())).sort_values()  # a patient none of whose cells is called: 0
    counts = pd.crosstab(samples[keep], states[keep]).reindex(every, fill_value=0)
    if contexts is None:
        totals = samples.value_counts()
        return counts.div(totals.reindex(counts.index), axis=0)
    state_context = (pd.DataFrame({"state": states[keep], "context": contexts[keep]})
                     .groupby("state", observed=True)["context"].agg(lambda s: s.value_counts().index[0]))
    per_context = pd.crosstab(samples, contexts)
    denominators = per_context.reindex(index=counts.index, columns=state_context.reindex(counts.columns).to_numpy())
    denominators.columns = counts.columns
    return counts.div(denominators.replace(0, np.nan))


def _bar(value: float, scale: float, *, cohort: bool = False) -> str:
    width = 0 if scale <= 0 or not np.isfinite(value) else round(_BAR_PX * value / scale)
    cls = "bar cohort" if cohort else "bar"
    return f'<span class="nowrap"><span class="{cls}" style="width:{width}px"></span> {value:.2f}</span>'


def _composition(sample: str, fractions: pd.DataFrame, cohort: pd.Series, max_states: int) -> str:
    own = fractions.loc[sample] if sample in fractions.index else pd.Series(dtype=float)
    measured = own.dropna()
    if measured.empty:
        return '<p class="note">No state calls.</p>'
    order = (measured - cohort[measured.index]).abs().sort_values(ascending=False).index[:max_states]
    scale = float(max(measured.max() if measured.size else 0.0, cohort.max(), 1e-9))
    rows = pd.DataFrame({
        "state": list(order),
        "this patient": [_html.Raw(_bar(float(own[s]), scale)) for s in order],
        "cohort median": [_html.Raw(_bar(float(cohort[s]), scale, cohort=True)) for s in order],
    })
    missing = [str(s) for s in own.index[own.isna()]]
    note = (f'<p class="note">Not measured (no cells of their population in this patient): '
            f'{html.escape(", ".join(missing))}.</p>' if missing else "")
    return _html.static_table(rows) + note


def _axes(rows: pd.DataFrame) -> str:
    active = rows[rows["active"].astype(bool)].sort_values("activity", ascending=False)
    if active.empty:
        return '<p class="note">No resistance axis above the activity threshold.</p>'
    items = []
    for _, row in active.iterrows():
        tags = "".join(f'<span class="tag">{kind} z={row[f"z_{kind}"]:.2f}</span>' for kind in KINDS
                       if f"z_{kind}" in row.index and pd.notna(row[f"z_{kind}"]))
        items.append({"axis": _html.Raw(f"<b>{html.escape(str(row['axis']))}</b> "
                                        f"{html.escape(str(row.get('axis_name', '')))}"),
                      "activity": f"{float(row['activity']):.2f}", "evidence": _html.Raw(tags)})  # as its z tags
    return _html.static_table(pd.DataFrame(items), digits=2)


def _barrier(sample: str, tib: pd.DataFrame | None, alpha: float) -> str:
    if tib is None:
        return ""
    if sample not in tib.index:
        return '<h4>Spatial barrier</h4><p class="note">Not measured for this patient.</p>'
    row = tib.loc[sample]
    score, pval = row.get("tib_score", np.nan), row.get("tib_pvalue", np.nan)
    if pd.isna(score):
        why = row.get("note", "")
        return f'<h4>Spatial barrier</h4><p class="note">Not measured{": " + html.escape(str(why)) if why else ""}.</p>'
    verdict = "barrier present" if pd.notna(pval) and pval < alpha else "no significant barrier"
    excl = row.get("t_exclusion", np.nan)
    extra = f", T-cell exclusion {excl:.2f}" if pd.notna(excl) else ""
    return (f"<h4>Spatial barrier</h4><p>{verdict}: TIB score {score:.2f} (p {pval:.2g}){extra}.</p>")


def _therapies(active_axes: list[str], therapies: pd.DataFrame) -> str:
    if not active_axes:
        return ""
    chosen = therapies[therapies["axis"].isin(active_axes)].copy()
    if chosen.empty:
        return '<h4>Therapies</h4><p class="note">The knowledge base links no therapy to these axes.</p>'
    chosen["rank"] = chosen["axis"].map({axis: i for i, axis in enumerate(active_axes)})
    chosen = chosen.sort_values(["rank", "tier"], kind="stable")  # the kb's schema gives every therapy a tier
    frame = pd.DataFrame({"axis": chosen["axis"].astype(str).to_numpy(),
                          "therapy [tier, trial | status]": [therapy_label(row) for _, row in chosen.iterrows()],
                          "class": chosen["drug_class"].astype(str).to_numpy()})
    return "<h4>Therapies linked to the active axes</h4>" + _html.static_table(frame)


def card(sample: str, *, condition: str, n_cells: int, fractions: pd.DataFrame | None, cohort: pd.Series | None,
         profile_rows: pd.DataFrame | None, tib: pd.DataFrame | None, therapies: pd.DataFrame, alpha: float,
         max_states: int) -> str:
    """The HTML card of one patient."""
    parts = [f'<h3>{html.escape(sample)}</h3><div class="cond">{html.escape(condition)} &middot; '
             f"{n_cells:,} cells</div>"]
    if fractions is not None and cohort is not None:
        parts.append("<h4>State composition against the cohort</h4>"
                     + _composition(sample, fractions, cohort, max_states))
    active_axes: list[str] = []
    if profile_rows is not None:
        parts.append("<h4>Active resistance axes</h4>" + _axes(profile_rows))
        active = profile_rows[profile_rows["active"].astype(bool)].sort_values("activity", ascending=False)
        active_axes = [str(a) for a in active["axis"]]
    parts.append(_barrier(sample, tib, alpha))
    parts.append(_therapies(active_axes, therapies))
    search = html.escape(f"{sample} {condition}".lower())
    anchor = html.escape(f"patient-{sample}")
    return f'<div class="card" id="{anchor}" data-search="{search}">{"".join(parts)}</div>'
