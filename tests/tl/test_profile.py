"""hcctme.tl.resistance_profile / hcctme.pl.resistance_profile on small simulated cohorts."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from anndata import AnnData

import hcctme as ht
from hcctme.datasets import simulate_cohort
from hcctme.tl import _profile, _stats

# obs as tl.call_states writes it, built from the simulator's truth so these tests do not depend on
# the state caller's accuracy
CONTEXTS = {"CD8+ T cells": "cd8_t", "CD4+ T cells": "cd4_t", "Tumour cells": "tumour", "Hepatocytes": "hepatocyte",
            "Macrophages": "macrophage", "Fibroblasts": "fibroblast", "Neutrophils": "neutrophil",
            "Monocytes": "monocyte", "Endothelial cells": "endothelial", "NK cells": "nk", "B cells": "b_cell",
            "Plasma cells": "plasma", "Dendritic cells": "dendritic"}
TIB_LABELS = dict(barrier_labels={"state_true": ["TAM2_SPP1", "CAF_ECM_MYCAF"]},
                  tumour_labels={"cell_type": ["Tumour cells", "Hepatocytes"]},
                  t_cell_labels={"cell_type": ["CD8+ T cells"]})
COLUMNS = ["sample", "condition", "axis", "axis_name", "activity", "active", "n_evidence", "z_scores", "z_states",
           "z_crosstalk", "z_spatial", "source", "therapies", "evidence"]


def _states(adata: AnnData) -> None:
    adata.obs["hcctme_state"] = pd.Categorical(adata.obs["state_true"].astype(str))
    adata.obs["hcctme_state_context"] = pd.Categorical(adata.obs["cell_type"].astype(str).map(CONTEXTS))


@pytest.fixture(scope="module")
def scored() -> AnnData:
    adata = simulate_cohort(16, 500, spatial=True, random_state=0)
    ht.tl.score(adata)
    return adata


@pytest.fixture(scope="module")
def full(scored) -> AnnData:
    adata = scored.copy()
    _states(adata)
    ht.tl.tib(adata, sample_key="patient", n_perms=49, **TIB_LABELS)
    ht.tl.resistance_profile(adata, sample_key="patient", condition_key="response", reference="responder")
    return adata


def test_table_shape_and_columns(full):
    table = full.uns["hcctme_profile"]
    n_axes = ht.kb.axes()["axis"].nunique()
    assert list(table.columns) == COLUMNS
    assert len(table) == 16 * n_axes
    assert not table.duplicated(["sample", "axis"]).any()
    assert table["active"].dtype == bool
    tib = table[table["axis"] == "TIB"]
    assert tib["n_evidence"].eq(3).all()  # scores, states, spatial (no crosstalk run)
    assert tib["therapies"].str.contains("SPP1").all()
    assert tib["source"].str.contains("hcctme_tib").all()
    evidence = full.uns["hcctme_profile_evidence"]
    assert {"sample", "axis", "evidence", "feature", "value", "z", "source"} <= set(evidence.columns)
    assert set(evidence["evidence"]) <= set(_profile.KINDS)
    absent = full.uns["hcctme_profile_params"]["absent"]
    assert set(absent) == {"crosstalk"} and "tl.crosstalk" in absent["crosstalk"]


def test_tib_and_cxcr2_more_active_in_resistors(full):
    summary = full.uns["hcctme_profile_summary"].set_index("axis")
    for axis in ("TIB", "CXCR2"):
        row = summary.loc[axis]
        assert row["effect"] > 0.5, (axis, row.to_dict())
        assert row["pvalue"] < 0.05, (axis, row.to_dict())
        assert row["fraction_active_group"] > row["fraction_active_reference"]
    table = full.uns["hcctme_profile"]
    tib = table[table["axis"] == "TIB"]
    assert tib.loc[tib["condition"] == "resistor", "z_spatial"].min() > tib.loc[
        tib["condition"] == "responder", "z_spatial"].max()


def test_scores_only_and_absent_evidence(scored):
    adata = scored.copy()
    assert ht.tl.resistance_profile(adata, sample_key="patient") is None
    table = adata.uns["hcctme_profile"]
    absent = adata.uns["hcctme_profile_params"]["absent"]
    assert "call_states" in absent["states"] and "tl.tib" in absent["spatial"]
    assert table["z_states"].isna().all() and table["z_spatial"].isna().all()
    assert table.loc[table["axis"] == "TIB", "z_scores"].notna().all()
    assert "condition" not in table.columns and "hcctme_profile_summary" not in adata.uns
    # an axis with no linked signature reads its ligand/receptor genes
    sources = adata.uns["hcctme_profile_evidence"].query("axis == 'CD47_SIRPA'")["source"]
    assert sources.str.contains("mean expression").all()


def test_crosstalk_evidence_from_a_per_sample_table(full):
    adata = full.copy()
    patients = adata.obs["patient"].cat.categories
    response = adata.obs.groupby("patient", observed=True)["response"].first()
    rows = []
    for i, p in enumerate(patients):
        strong = response[p] == "resistor"
        rows += [
            {"patient": p, "source": "Macrophages", "target": "Fibroblasts", "ligand_complex": "SPP1",
             "receptor_complex": "CD44", "lr_means": 2.0 + strong + 0.01 * i, "magnitude_rank": 0.01, "axis": "TIB"},
            # a TIB pair from a sender the kb does not list: ignored
            {"patient": p, "source": "Tumour cells", "target": "Fibroblasts", "ligand_complex": "SPP1",
             "receptor_complex": "CD44", "lr_means": 9.0 * (not strong), "magnitude_rank": 0.01, "axis": "TIB"},
            {"patient": p, "source": "Tumour cells", "target": "Neutrophils", "ligand_complex": "CXCL8",
             "receptor_complex": "CXCR2", "lr_means": 1.0 + 0.02 * i, "magnitude_rank": 0.2, "axis": np.nan},
        ]
    adata.uns["hcctme_crosstalk"] = pd.DataFrame(rows)
    adata.uns["hcctme_crosstalk_params"] = {"tool": "crosstalk", "params": {"groupby": "cell_type"}}
    ht.tl.resistance_profile(adata, sample_key="patient", condition_key="response", reference="responder")
    table = adata.uns["hcctme_profile"]
    tib = table[table["axis"] == "TIB"]
    assert tib["n_evidence"].eq(4).all()
    assert (tib.loc[tib["condition"] == "resistor", "z_crosstalk"] > 0).all()
    assert (tib.loc[tib["condition"] == "responder", "z_crosstalk"].abs() < 1).all()
    assert "lr_means" in tib["source"].iloc[0]
    # unannotated rows are matched to axes through the kb
    cxcr2 = table[table["axis"] == "CXCR2"]
    assert cxcr2["z_crosstalk"].notna().all()
    # a pooled table (no sample column) is reported as absent, not guessed
    adata.uns["hcctme_crosstalk"] = pd.DataFrame(rows).drop(columns="patient")
    ht.tl.resistance_profile(adata, sample_key="patient")
    assert "sample_key" in adata.uns["hcctme_profile_params"]["absent"]["crosstalk"]


def test_kruskal_summary_without_reference(full):
    adata = full.copy()
    ht.tl.resistance_profile(adata, sample_key="patient", condition_key="response")
    summary = adata.uns["hcctme_profile_summary"]
    assert (summary["test"] == "kruskal").all()
    assert {"mean_activity_resistor", "mean_activity_responder", "pvalue", "padj"} <= set(summary.columns)
    assert summary.set_index("axis").loc["TIB", "pvalue"] < 0.05


def test_prerequisite_errors_leave_input_untouched(scored, digest):
    adata = scored[scored.obs["patient"].isin(scored.obs["patient"].cat.categories[:4])].copy()
    before = digest(adata)
    no_scores = adata.copy()
    del no_scores.obsm["hcctme_scores"]
    with pytest.raises(KeyError, match=r"tl\.score"):
        ht.tl.resistance_profile(no_scores, sample_key="patient")
    with pytest.raises(KeyError, match="donor"):
        ht.tl.resistance_profile(adata, sample_key="donor")
    with pytest.raises(ValueError, match="condition_key"):
        ht.tl.resistance_profile(adata, sample_key="patient", reference="responder")
    with pytest.raises(ValueError, match="not a level"):
        ht.tl.resistance_profile(adata, sample_key="patient", condition_key="response", reference="stable")
    with pytest.raises(ValueError, match="unknown axis"):
        ht.tl.resistance_profile(adata, sample_key="patient", axes=["NOT_AN_AXIS"])
    varying = adata.copy()
    varying.obs["response"] = np.where(np.arange(varying.n_obs) % 2, "responder", "resistor")
    with pytest.raises(ValueError, match="varies within samples"):
        ht.tl.resistance_profile(varying, sample_key="patient", condition_key="response", reference="responder")
    assert digest(adata) == before


def test_copy_and_axes_subset(scored):
    adata = scored[scored.obs["patient"].isin(scored.obs["patient"].cat.categories[:6])].copy()
    out = ht.tl.resistance_profile(adata, sample_key="patient", axes=["TIB", "CXCR2"], copy=True)
    assert isinstance(out, AnnData) and "hcctme_profile" not in adata.uns
    assert set(out.uns["hcctme_profile"]["axis"]) == {"TIB", "CXCR2"}
    ht.tl.resistance_profile(adata, sample_key="patient", axes=["TIB", "CXCR2"])
    pd.testing.assert_frame_equal(adata.uns["hcctme_profile"], out.uns["hcctme_profile"])
    assert out.uns["hcctme_profile_params"]["tool"] == "hcctme.tl.resistance_profile"


def test_links_table_is_curated():
    links = _profile.axis_links()
    axes = set(ht.kb.axes()["axis"])
    assert set(links["axis"]) <= axes
    assert links["citation"].str.len().gt(0).all() and links["pmid_doi"].str.len().gt(0).all()
    library = set(ht.sig.list()["id"])
    features = links.loc[links["kind"] != "population", "feature"]
    assert set(features) <= library
    assert {("TIB", "TAM2_SPP1"), ("CXCR2", "NEU_CD10_ALPL"), ("CXCR2", "PMN_MDSC"), ("PD1", "CD8_TEX_TERMINAL"),
            ("CTLA4", "TREG"), ("CCR4", "TREG")} <= set(zip(links["axis"], links["feature"], strict=True))


def test_pl_resistance_profile(full):
    import matplotlib.pyplot as plt

    ax = ht.pl.resistance_profile(full)
    labels = [t.get_text() for t in ax.get_xticklabels()]
    assert "TIB" in labels and "CXCR2" in labels
    assert any("resistor" in t.get_text() for t in ax.get_yticklabels())
    plt.close("all")
    ax = ht.pl.resistance_profile(full.uns["hcctme_profile"], axes=["TIB", "PD1"], value="z_states")
    assert [t.get_text() for t in ax.get_xticklabels()] == ["TIB", "PD1"]
    plt.close("all")
    with pytest.raises(KeyError, match="resistance_profile"):
        ht.pl.resistance_profile(AnnData(np.zeros((2, 2))))
    with pytest.raises(ValueError, match="unknown axis"):
        ht.pl.resistance_profile(full, axes=["NOPE"])


@pytest.mark.slow
def test_reads_real_crosstalk_output():
    adata = simulate_cohort(6, 300, random_state=2)
    ht.tl.score(adata)
    _states(adata)
    ht.tl.crosstalk(adata, groupby="cell_type", sample_key="patient", axes_only=True, n_perms=None)
    ht.tl.resistance_profile(adata, sample_key="patient")
    table = adata.uns["hcctme_profile"]
    assert "crosstalk" not in adata.uns["hcctme_profile_params"]["absent"]
    assert table.loc[table["axis"] == "TIB", "z_crosstalk"].notna().all()


def test_shared_evidence_axes_get_their_own_genes_and_count_once_in_bh(scored):
    """PD1, TIM3, LAG3 and TIGIT all read CD8_TEX_TERMINAL: each gets its own ligand/receptor genes when the data
    have them; without those genes the axes are identical, flagged, and BH counts them as one test."""
    axes = ["PD1", "TIM3", "LAG3", "TIGIT", "TIB"]
    adata = scored.copy()
    ht.tl.resistance_profile(adata, sample_key="patient", condition_key="response", reference="responder", axes=axes)
    evidence = adata.uns["hcctme_profile_evidence"]
    specific = evidence[evidence["source"].str.contains("axis-specific")]
    assert set(specific["axis"]) == {"PD1", "TIM3", "LAG3", "TIGIT"}  # TIB has evidence of its own
    assert specific.groupby("axis")["feature"].first().nunique() == 4
    summary = adata.uns["hcctme_profile_summary"]
    assert not summary["shared_evidence"].any()
    # the same cohort without the axes' own genes: four identical evidence vectors, one test
    kb_genes = {g for a in axes[:4] for g in _profile._kb_axes().set_index("axis").loc[a, "genes"]}
    no_genes = scored[:, ~scored.var_names.isin(kb_genes)].copy()
    ht.tl.resistance_profile(no_genes, sample_key="patient", condition_key="response", reference="responder",
                             axes=axes)
    summary = no_genes.uns["hcctme_profile_summary"].set_index("axis")
    assert summary.loc[axes[:4], "shared_evidence"].all() and not summary.loc["TIB", "shared_evidence"]
    assert summary.loc[axes[:4], "evidence_group"].nunique() == 1
    assert no_genes.uns["hcctme_profile_params"]["n_distinct_tests"] == 2
    distinct = summary.drop_duplicates("evidence_group")
    expected = pd.Series(_stats.bh(distinct["pvalue"].to_numpy()), index=distinct["evidence_group"])
    np.testing.assert_allclose(summary["padj"], expected.loc[summary["evidence_group"]].to_numpy())


def test_evidence_and_activity_match_a_hand_computation():
    """HGF_MET reads one linked signature (MACRO_M2): per-sample means, z against the reference, activity."""
    obs = pd.DataFrame({"patient": ["S1", "S1", "S2", "S2", "S3", "S3", "S4", "S4"],
                        "response": ["R"] * 4 + ["N"] * 4}, index=[f"c{i}" for i in range(8)])
    adata = AnnData(np.zeros((8, 3), dtype=np.float32), obs=obs)
    adata.obsm["hcctme_scores"] = pd.DataFrame({"MACRO_M2": [0.1, 0.3, 0.2, 0.2, 0.6, 0.4, 0.9, 0.7]},
                                               index=obs.index)
    ht.tl.resistance_profile(adata, sample_key="patient", condition_key="response", reference="R",
                             axes=["HGF_MET"])
    means = np.array([0.2, 0.2, 0.5, 0.8])  # per-sample means of the cells' scores
    sd = np.sqrt(((means - means.mean()) ** 2).sum() / 3)  # over all samples, ddof=1: 0.287228
    z = (means - 0.2) / sd  # centred on the reference samples S1, S2
    direction = ht.kb.axes().set_index("axis").loc["HGF_MET", "direction"]
    z = -z if str(np.atleast_1d(direction)[0]) == "down" else z
    evidence = adata.uns["hcctme_profile_evidence"].set_index("sample").loc[["S1", "S2", "S3", "S4"]]
    np.testing.assert_allclose(evidence["value"], means, rtol=1e-12)
    np.testing.assert_allclose(evidence["z"], z, rtol=1e-12)
    profile = ht.get.profile(adata).set_index("sample").loc[["S1", "S2", "S3", "S4"]]
    np.testing.assert_allclose(profile["z_scores"], z, rtol=1e-12)
    np.testing.assert_allclose(profile["activity"], z, rtol=1e-12)  # the one kind present
    assert (profile["n_evidence"] == 1).all()
    assert profile["active"].tolist() == list(z >= 0.5)  # the default active_threshold


def test_summary_rank_test_matches_compare_and_constant_activity_gives_p_one():
    rng = np.random.default_rng(3)
    rows = []
    for axis, values in {"A": rng.normal(size=8), "B": np.full(8, 0.4)}.items():
        for i, v in enumerate(values):
            rows.append({"axis": axis, "sample": f"s{i}", "condition": "resistor" if i < 4 else "responder",
                         "activity": v, "active": v > 0})
    summary = _profile._summary(pd.DataFrame(rows), "responder").set_index("axis")
    a = pd.DataFrame(rows).query("axis == 'A'")
    stat, p = _stats.mannwhitney(a.loc[a.condition == "resistor", "activity"].to_numpy(),
                                 a.loc[a.condition == "responder", "activity"].to_numpy())
    assert summary.loc["A", "pvalue"] == pytest.approx(p) and summary.loc["A", "statistic"] == stat
    # a constant activity is no evidence of a difference: p = 1, as in tl.compare, not a missing value
    assert summary.loc["B", "pvalue"] == 1.0 and summary.loc["B", "statistic"] == 8.0
    no_ref = _profile._summary(pd.DataFrame(rows).query("axis == 'B'"), None)
    assert no_ref["pvalue"].tolist() == [1.0]


def test_signature_context_reads_the_library_and_any_for_user_sets():
    assert _profile._signature_context("TAM2_SPP1") == "macrophage"
    assert _profile._signature_context("MY_OWN_SET") == "any"


def _crosstalk_rows(adata, rows_of):
    adata.uns["hcctme_crosstalk"] = pd.DataFrame([r for p in adata.obs["patient"].cat.categories for r in rows_of(p)])
    adata.uns["hcctme_crosstalk_params"] = {"tool": "crosstalk", "params": {"groupby": "cell_type"}}


def test_crosstalk_evidence_reads_reversed_pairs_coarse_groups_and_missing_cells(full):
    """Sweep 54: LIANA holds TIGIT -> PVR (the kb PVR -> TIGIT), so its source is the kb receiver: TIGIT read 0
    everywhere. A "Myeloid" group never matched an axis naming macrophages. An axis no row reads (its genes
    absent) and a patient without the axis's sender cells read 0 instead of missing."""
    adata = full.copy()
    first = adata.obs["patient"].cat.categories[0]
    adata.obs["cell_type"] = adata.obs["cell_type"].astype(str).replace({"Macrophages": "Myeloid"}).astype("category")
    adata.obs["hcctme_state_context"] = adata.obs["hcctme_state_context"].astype(str).replace(
        {"macrophage": "myeloid"}).astype("category")

    def rows_of(p):
        rows = [{"patient": p, "source": "CD8+ T cells", "target": "Tumour cells", "ligand_complex": "TIGIT",
                 "receptor_complex": "PVR", "lr_means": 1.5, "axis": "TIGIT"}]
        if p != first:  # the first patient lacks the macrophage (Myeloid) senders of SPP1
            rows.append({"patient": p, "source": "Myeloid", "target": "Fibroblasts", "ligand_complex": "SPP1",
                         "receptor_complex": "CD44", "lr_means": 2.0, "axis": "TIB"})
        return rows

    _crosstalk_rows(adata, rows_of)
    kept = [(p, g) for p in adata.obs["patient"].cat.categories for g in adata.obs["cell_type"].cat.categories
            if not (p == first and g == "Myeloid")]
    adata.uns["hcctme_crosstalk_params"]["groups"] = pd.DataFrame(kept, columns=["sample", "group"])
    ht.tl.resistance_profile(adata, sample_key="patient", axes=["TIGIT", "TIB", "ANGPT2_TEK"])
    values = adata.uns["hcctme_profile_evidence"].query("evidence == 'crosstalk'").pivot(
        index="sample", columns="axis", values="value")
    assert (values["TIGIT"] == 1.5).all()
    assert np.isnan(values.loc[first, "TIB"]) and (values["TIB"].drop(first) == 2.0).all()
    assert "ANGPT2_TEK" not in values.columns  # no row reads it: no crosstalk evidence at all
    profile = adata.uns["hcctme_profile"].set_index(["sample", "axis"])
    assert profile.xs("ANGPT2_TEK", level="axis")["z_crosstalk"].isna().all()


def test_threshold_and_cohort_size_are_checked(full):
    with pytest.raises(ValueError, match="active_threshold must be a finite number"):
        ht.tl.resistance_profile(full.copy(), sample_key="patient", active_threshold=float("nan"))
    one = full[full.obs["patient"] == full.obs["patient"].cat.categories[0]].copy()
    with pytest.raises(ht.tl.TooFewCellsError, match="needs at least 2 samples"):
        ht.tl.resistance_profile(one, sample_key="patient")


def test_genes_are_read_in_the_contexts_of_their_own_kb_pairs():
    """Sweep 59a: OSM_SAA's pairs run hepatocyte -> neutrophil (SAA1 -> FPR2 / TLR2) and neutrophil -> CD8 T cell
    (OSM -> OSMR_IL6ST); pooling the axis's senders and receivers read FPR2 in CD8 T cells and OSM in hepatocytes."""
    from hcctme.tl import _profile

    axes = _profile._kb_axes().set_index("axis")
    roles = dict(_profile.gene_roles(axes.loc["OSM_SAA"]))
    assert roles == {"SAA1": {"hepatocyte"}, "OSM": {"neutrophil"}, "FPR2": {"neutrophil"}, "TLR2": {"neutrophil"},
                     "OSMR": {"cd8_t"}, "IL6ST": {"cd8_t"}}
    pairs = axes.loc["OSM_SAA", "pair_contexts"]
    # LIANA's notation orders a complex's subunits otherwise (IL6ST_OSMR): pairs match by subunits, either way round
    assert _profile._matched_pairs(pairs, "OSM", "IL6ST_OSMR") == [({"neutrophil"}, {"cd8_t"}, False)]
    assert _profile._matched_pairs(pairs, "FPR2", "SAA1") == [({"hepatocyte"}, {"neutrophil"}, True)]  # reversed
    assert _profile._matched_pairs(pairs, "OSM", "LIFR") == []


def test_an_axis_reads_the_same_whichever_other_axes_are_selected(full):
    """Sweep 61: an axis got its axis-specific gene feature only where its other evidence was shared with an axis of
    the selection, so axes=["TIM3"] read TIM3 without HAVCR2 (activity -0.73 -> -0.62 ..., active flipping)."""
    adata = full.copy()
    whole = ht.get.profile(adata).set_index(["sample", "axis"])
    whole_evidence = ht.get.profile(adata, evidence=True)
    for axes in (["TIM3"], ["PD1", "CTLA4"], "TIB"):
        ht.tl.resistance_profile(adata, sample_key="patient", condition_key="response", reference="responder",
                                 axes=axes, key_added="some")
        some = adata.uns["some"].set_index(["sample", "axis"])
        pd.testing.assert_frame_equal(some, whole.loc[some.index], check_exact=True)
        evidence = adata.uns["some_evidence"]
        expected = whole_evidence[whole_evidence["axis"].isin(set(evidence["axis"]))].reset_index(drop=True)
        pd.testing.assert_frame_equal(evidence.reset_index(drop=True), expected, check_exact=True)


def test_coarse_labels_hold_the_evidence_of_their_child_contexts(scored):
    """Sweep 61: with cells labelled "T cells" / "Myeloid cells" (contexts t_cell, myeloid), which call_states
    accepts, CD8_TEX_TERMINAL (cd8_t) and MACRO_M2 (macrophage) were read in no cell: PD1's scores evidence NaN,
    HGF_MET without evidence, and nothing said so. A coarser group holds them, as in the crosstalk reading."""
    adata = scored.copy()
    _states(adata)
    coarse = {"cd8_t": "t_cell", "cd4_t": "t_cell", "macrophage": "myeloid", "monocyte": "myeloid"}
    context = adata.obs["hcctme_state_context"].astype(str)
    adata.obs["hcctme_state_context"] = pd.Categorical(context.map(lambda c: coarse.get(c, c)))
    ht.tl.resistance_profile(adata, sample_key="patient", axes=["PD1", "HGF_MET"])
    table = ht.get.profile(adata).set_index(["sample", "axis"])
    assert table.xs("PD1", level="axis")["z_scores"].notna().all()
    assert table.xs("HGF_MET", level="axis")["n_evidence"].ge(1).all()
    evidence = ht.get.profile(adata, evidence=True)
    row = evidence[(evidence["axis"] == "PD1") & (evidence["feature"] == "CD8_TEX_TERMINAL")].iloc[0]
    assert "(mean in cd8_t cells and the t_cell cells holding them)" in row["source"]
    in_t = ((adata.obs["hcctme_state_context"] == "t_cell").to_numpy()
            & (adata.obs["patient"] == row["sample"]).to_numpy())
    assert row["value"] == pytest.approx(adata.obsm["hcctme_scores"]["CD8_TEX_TERMINAL"].to_numpy()[in_t].mean())


def test_without_contexts_states_of_different_parents_are_kept_apart(scored):
    """Sweep 61: without obs[state_key + "_context"] TIB's TAM2_SPP1 (macrophages) and myCAF states (fibroblasts)
    were pooled into one fraction of all cells."""
    adata = scored.copy()
    ht.tl.resistance_profile(adata, sample_key="patient", state_key="state_true", axes=["TIB"])
    evidence = ht.get.profile(adata, evidence=True)
    states = evidence.loc[evidence["evidence"] == "states", "feature"].unique()
    assert set(states) == {"TAM2_SPP1", "CAF_ECM_MYCAF+CAF_TGFB_MYCAF"}
    tam2 = evidence[(evidence["feature"] == "TAM2_SPP1") & (evidence["evidence"] == "states")]
    tam2 = tam2.set_index("sample")["value"]
    share = (adata.obs["state_true"] == "TAM2_SPP1").groupby(adata.obs["patient"].astype(str), observed=True).mean()
    pd.testing.assert_series_equal(tam2.sort_index(), share.sort_index(), check_names=False)


def test_the_profile_records_the_kb_version_and_reads_tace_s100a9_in_tumour_cells(full):
    """Sweep 61: the kb version was not recorded (the report printed the installed one), and TACE_S100A9, documented
    as read in tumour cells, read only the hypoxia hallmark over all cells."""
    params = ht.get.params(full, "hcctme_profile")
    assert params["kb_version"] == ht.kb.version
    evidence = ht.get.profile(full, evidence=True)
    tace = evidence[(evidence["axis"] == "TACE_S100A9") & (evidence["evidence"] == "scores")]
    assert "obsm['hcctme_scores'].TACE_RESISTANCE (mean in tumour cells)" in set(tace["source"])


def test_a_populations_share_counts_its_own_cells_not_the_coarser_groups(scored):
    """Review 61: the coarse-context rule reached the recruitment axes' population shares, so CXCR2's neutrophil
    share counted the cells labelled only "myeloid" as neutrophils."""
    adata = scored.copy()
    _states(adata)
    context = adata.obs["hcctme_state_context"].astype(str)
    adata.obs["hcctme_state_context"] = pd.Categorical(context.replace({"macrophage": "myeloid"}))
    ht.tl.resistance_profile(adata, sample_key="patient", axes=["CXCR2"])
    evidence = ht.get.profile(adata, evidence=True)
    share = evidence[evidence["feature"] == "neutrophil cells"].set_index("sample")["value"]
    expected = (adata.obs["hcctme_state_context"] == "neutrophil").groupby(adata.obs["patient"].astype(str),
                                                                          observed=True).mean()
    pd.testing.assert_series_equal(share.sort_index(), expected.sort_index(), check_names=False)



def test_evidence_text_reads_a_centred_z_as_0_never_minus_0():
    """A z at the cohort centre is +-1e-17 by summation order: 'z=-0.0' in one run, 'z=0.0' in another."""
    evidence = pd.DataFrame({"sample": ["S1", "S1"], "axis": ["TREG_AXIS"] * 2, "feature": ["TREG", "CCR8"],
                             "z": [-1e-17, 1.234]})
    out = pd.DataFrame({"sample": ["S1"], "axis": ["TREG_AXIS"]})
    assert _profile._evidence_text(evidence, out) == ["TREG z=0.0, CCR8 z=1.23"]
