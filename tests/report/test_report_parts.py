"""The report's pieces on small hand-made inputs: sentences, cards, tables, figures, the results adapter."""

import json
import re

import numpy as np
import pandas as pd
import pytest
from anndata import AnnData

import hcctme as ht
from hcctme._constants import Keys
from hcctme.report import _build, _cards, _figures, _html, _results, _summary
from hcctme.tl import _profile


def _compare_row(**kw):
    row = {"feature": "TAM2_SPP1", "group": "Macrophages", "contrast": "resistor vs responder", "effect": 0.8,
           "statistic": 60.0, "pvalue": 0.004, "padj": 0.04, "n_reference": 8, "n_other": 8, "direction": "up",
           "method": "mannwhitney", "mean_reference": -0.2, "mean_other": 0.6, "prop_reference": 0.27,
           "prop_other": 0.44}
    row.update(kw)
    return row


def test_composition_sentence_states_proportions_padj_and_patients():
    table = pd.DataFrame([_compare_row(), _compare_row(feature="TAM1_FOLR2", effect=-0.5, pvalue=0.5, padj=0.6)])
    found = _summary.composition(table, fdr=0.1, limit=3, anchors=("table-x", "fig-x"))
    assert [f.text for f in found] == [
        "TAM2_SPP1 make up more of the Macrophages in resistor patients: 0.44 vs 0.27, padj 0.04, 8 vs 8 patients."]
    assert found[0].html() == ("<li>TAM2_SPP1 make up more of the Macrophages in resistor patients: 0.44 vs 0.27, "
                               'padj 0.04, 8 vs 8 patients. (<a href="#table-x">table</a>, '
                               '<a href="#fig-x">figure</a>)</li>')


def test_sentence_says_when_nothing_is_significant():
    table = pd.DataFrame([_compare_row(padj=0.3, pvalue=0.1), _compare_row(feature="B", padj=0.2, pvalue=0.05)])
    found = _summary.composition(table, fdr=0.1, limit=3, anchors=("t", "f"))
    assert [f.text for f in found] == ["No state composition difference reached padj < 0.1; the closest is B in "
                                       "Macrophages (padj 0.2, 8 vs 8 patients)."]


def test_findings_are_limited_and_ordered_by_padj():
    table = pd.DataFrame([_compare_row(feature=f"S{i}", padj=p, pvalue=p / 10)
                          for i, p in enumerate([0.05, 0.01, 0.09, 0.02])])
    found = _summary.scores(table, fdr=0.1, limit=3, anchors=("t", "f"))
    assert [f.text.split(" ")[0] for f in found] == ["S1", "S3", "S0"]
    assert found[0].text.startswith("S1 scores higher in Macrophages of resistor patients: 0.6 vs -0.2, padj 0.01")


def test_axis_sentence_reports_fraction_active_and_activity():
    summary = pd.DataFrame([{"axis": "TIB", "group": "resistor", "reference": "responder",
                             "mean_activity_group": 1.34, "mean_activity_reference": -0.001, "effect": 1.34,
                             "fraction_active_group": 1.0, "fraction_active_reference": 0.125, "statistic": 64.0,
                             "pvalue": 0.0002, "test": "mannwhitneyu", "n_group": 8, "n_reference": 8,
                             "padj": 0.00084}])
    found = _summary.axes(summary, fdr=0.1, limit=3, anchors=("t", "f"))
    assert [f.text for f in found] == ["The TIB resistance axis is active in 100% of resistor vs 12% of responder "
                                       "patients, mean activity 1.34 vs 0.00: padj 0.00084, 8 vs 8 patients."]


def test_axis_sentence_of_a_profile_compared_without_a_reference():
    # tl.resistance_profile without reference=: Kruskal-Wallis over the levels, one column per level
    summary = pd.DataFrame([{"axis": "LAG3", "group": "all", "reference": "", "statistic": 7.4, "pvalue": 0.0065,
                             "test": "kruskal", "mean_activity_resistor": 0.65, "fraction_active_resistor": 0.625,
                             "mean_activity_responder": -0.65, "fraction_active_responder": 0.0, "padj": 0.0074}])
    found = _summary.axes(summary, fdr=0.05, limit=3, anchors=("t", "f"))
    assert [f.text for f in found] == ["The LAG3 resistance axis is active in 62% of resistor, 0% of responder "
                                       "patients, mean activity 0.65 vs -0.65: padj 0.0074, Kruskal-Wallis test over "
                                       "2 conditions."]


def _methods(**kw) -> str:
    params = kw.pop("params", {"scores": {"method": "ucell"}})
    return _summary.methods(params, kw.pop("tests", {}), n_signatures=10, fdr=0.05, library_version="1",
                            kb_version="1", hcctme_version="0", **kw)


def test_methods_describe_only_the_analyses_that_ran():
    text = _methods(params={"scores": {"method": "ucell"}, "crosstalk": {"method": "rank_aggregate"},
                            "profile": {"active_threshold": 0.5}})
    assert "were compared with patients as the unit" not in text and "Benjamini" not in text
    assert "differential crosstalk" not in text and "compared between conditions" not in text
    text = _methods(tests={"scores": ["mannwhitney"], "states": ["moderated"]}, profile_tests=["kruskal"],
                    crosstalk_differential=True, contrasts=["post vs pre"],
                    params={"scores": {"method": "ucell"}, "crosstalk": {"method": "rank_aggregate"},
                            "profile": {"active_threshold": 0.5}})
    # the stored contrast, not "responders and resistors" whatever the condition (sweep 57)
    assert "The conditions (post vs pre) were compared" in text and "scores by Mann-Whitney U test" in text
    # the default composition test by its name, cited (it read "by moderated" before)
    assert "states by precision-weighted linear model with an empirical-Bayes moderated t-test" in text
    assert "Phipson B" in text
    assert ("compared between conditions with a Kruskal-Wallis test (permutation p), BH-adjusted over the distinct "
            "evidence of the axes (axes with identical activities count once)") in text
    assert "differential crosstalk uses a two-part test" in text


def test_figure_labels_are_shown_verbatim_by_plotly():
    fractions = pd.DataFrame({"<b>TREG</b>": [0.5, 0.2]}, index=["p1 & <br>", "p2"])
    fig = _figures.composition(fractions, None)
    assert fig.data[0].name == "&lt;b&gt;TREG&lt;/b&gt;" and list(fig.data[0].x) == ["p1 &amp; &lt;br&gt;", "p2"]
    means = pd.DataFrame([[1.0]], index=['<a href="x">Mac</a>'], columns=["S"])
    assert list(_figures.score_heatmap(means).data[0].y) == ['&lt;a href="x"&gt;Mac&lt;/a&gt;']


def test_barrier_sentence_counts_patients_per_condition():
    tib = pd.DataFrame({"tib_pvalue": [0.01, 0.2, 0.03, np.nan]}, index=["P1", "P2", "P3", "P4"])
    conditions = pd.Series({"P1": "resistor", "P2": "resistor", "P3": "responder", "P4": "responder"})
    found = _summary.barrier(tib, conditions, alpha=0.05, anchor="table-tib")
    assert [f.text for f in found] == ["A spatial tumour immune barrier (TIB p < 0.05) is found in 2 of 3 measured "
                                       "patients: 1 of 2 resistor, 1 of 1 responder."]


def test_therapy_label_shows_tier_and_trial_and_status():
    with_tier = pd.Series({"therapy": "atezolizumab + bevacizumab", "tier": "I", "trial": "IMbrave150",
                           "status": "approved_hcc"})
    assert _cards.therapy_label(with_tier) == "atezolizumab + bevacizumab [I, IMbrave150 | approved_hcc]"
    assert _cards.therapy_label(pd.Series({"therapy": "x", "tier": "III", "trial": None})) == "x [III]"


def test_therapies_carry_their_status_and_negative_trials():
    """Sweep 59a: the kb's discontinued tivantinib (METIV-HCC and JET-HCC negative) was listed as a plain suggestion."""
    from hcctme import kb

    row = kb.therapies("HGF_MET").set_index("therapy").loc["tivantinib"].copy()
    row["therapy"] = "tivantinib"
    label = _cards.therapy_label(row)
    assert label.startswith("tivantinib [III, ") and label.endswith("| discontinued | negative: METIV-HCC, JET-HCC]")
    profile_text = _profile._kb_therapies("HGF_MET")
    assert label in profile_text.split("; ")


def test_state_fractions_are_within_each_states_context():
    states = pd.Series(["TAM2", "TAM2", "TAM1", "unassigned", "TEX", "TEX", "unassigned", "TAM2"])
    contexts = pd.Series(["macrophage"] * 4 + ["cd8_t"] * 3 + ["macrophage"])
    samples = pd.Series(["A"] * 7 + ["B"])
    fractions = _cards.state_fractions(states, samples, contexts, unassigned="unassigned")
    assert fractions.loc["A"].to_dict() == {"TAM1": 0.25, "TAM2": 0.5, "TEX": 2 / 3}
    assert fractions.loc["B", ["TAM1", "TAM2"]].to_dict() == {"TAM1": 0.0, "TAM2": 1.0}
    assert np.isnan(fractions.loc["B", "TEX"])  # B has no CD8 T cells: not measured, not 0


def test_a_patient_with_the_population_but_no_call_counts_zero_in_the_cohort_median():
    """Sweep 61: a patient none of whose cells was called was left out of the counts, so every cohort median was
    taken without its zeros (PMN_MDSC 0.12 instead of 0.06 on a simulated cohort)."""
    states = pd.Series(["TAM2", "TAM2", "unassigned", "TAM2", "unassigned", "unassigned", "TEX", "unassigned"])
    contexts = pd.Series(["macrophage"] * 6 + ["cd8_t"] * 2)
    samples = pd.Series(["A", "A", "A", "B", "C", "C", "A", "C"])
    fractions = _cards.state_fractions(states, samples, contexts, unassigned="unassigned")
    assert fractions.loc["C", "TAM2"] == 0.0 and fractions.loc["C", "TEX"] == 0.0  # C has both populations
    assert np.isnan(fractions.loc["B", "TEX"])  # B has no CD8 T cells
    assert fractions["TAM2"].median() == 2 / 3 and fractions["TEX"].median() == 0.5
    alone = _cards.state_fractions(states, samples, None, unassigned="unassigned")
    assert alone.loc["C"].tolist() == [0.0, 0.0]


def test_the_dropped_note_tells_a_short_list_from_genes_missing_in_the_data():
    """Sweep 61: TAM3_MT1G (2 genes, below the 3-gene minimum, both measured) was "not scored, too few of their
    genes in the data"."""
    record = {"dropped": ["TAM3_MT1G", "MINE", "NEU_N1"], "coverage": {"TAM3_MT1G": 1.0, "MINE": 0.5, "NEU_N1": 0.25},
              "n_genes": {"TAM3_MT1G": 2, "MINE": 2, "NEU_N1": 4}, "method_params": {"min_genes": 3}}
    text = _build._dropped_note(record)
    assert ("Not scored, lists shorter than the 3-gene scoring minimum: your gene set(s) MINE; 1 of the library: "
            "TAM3_MT1G. Not scored, too few of their genes in the data: 1 of the library: NEU_N1.") in text
    adata = AnnData(np.ones((4, 3), np.float32), var=pd.DataFrame(index=["MT1G", "SPP1", "CD8A"]))
    ht.tl.score(adata, {"SHORT": ["MT1G", "MT2A"], "LONG": ["SPP1", "G1", "G2", "G3"], "OK": ["MT1G", "SPP1", "CD8A"]},
                min_coverage=0.1)
    text = _build._dropped_note(ht.get.params(adata, "hcctme_scores"))  # tl.score's own record
    assert ("lists shorter than the 3-gene scoring minimum: your gene set(s) SHORT. Not scored, too few of their "
            "genes in the data: your gene set(s) LONG.") in text


def test_the_methods_name_the_users_gene_sets_apart_from_the_library():
    """Sweep 61: 40 library signatures and 2 of the user's sets read "scored against 42 signatures of the library"."""
    text = _summary.methods({"scores": {"method": "ucell"}}, {}, n_signatures=40, your_sets=["MY_A", "MY_B"],
                            fdr=0.05, library_version="2.4", kb_version="k", hcctme_version="v")
    assert ("Cells were scored against 40 signatures of the hcctme library (version 2.4) and 2 of the user&#x27;s "
            "gene sets (MY_A, MY_B) with ucell.") in text
    only = _summary.methods({"scores": {"method": "ucell"}}, {}, n_signatures=0, your_sets=["MY_A"], fdr=0.05,
                            library_version="2.4", kb_version="k", hcctme_version="v")
    assert "Cells were scored against 1 of the user&#x27;s gene sets (MY_A) with ucell." in only


def test_card_composition_names_states_of_populations_the_patient_lacks():
    fractions = pd.DataFrame({"TAM2": [0.5, 1.0], "TEX": [2 / 3, np.nan]}, index=["A", "B"])
    text = _cards.card("B", condition="resistor", n_cells=1, fractions=fractions, cohort=fractions.median(),
                       profile_rows=None, tib=None, therapies=pd.DataFrame(columns=["axis", "therapy"]),
                       alpha=0.05, max_states=8)
    assert "<td>TAM2</td>" in text and "<td>TEX</td>" not in text and "0.00" not in text
    assert "Not measured (no cells of their population in this patient): TEX." in text


def test_card_lists_active_axes_then_barrier_then_tiered_therapies():
    rows = pd.DataFrame({"sample": ["P1", "P1"], "axis": ["TIB", "PD1"], "axis_name": ["barrier", "PD-1"],
                         "activity": [1.2, 0.1], "active": [True, False], "z_scores": [1.0, 0.1],
                         "z_states": [1.4, np.nan], "z_crosstalk": [np.nan, np.nan], "z_spatial": [2.0, np.nan]})
    tib = pd.DataFrame({"tib_score": [3.1], "tib_pvalue": [0.01], "t_exclusion": [0.4]}, index=["P1"])
    therapies = pd.DataFrame({"axis": ["TIB", "PD1"], "therapy": ["anti-SPP1", "atezolizumab + bevacizumab"],
                              "status": ["preclinical", "approved_hcc"], "tier": ["III", "I"],
                              "trial": [None, "IMbrave150"], "drug_class": ["antibody", "antibody + antibody"]})
    text = _cards.card("P1", condition="resistor", n_cells=120, fractions=None, cohort=None, profile_rows=rows,
                       tib=tib, therapies=therapies, alpha=0.05, max_states=8)
    assert 'id="patient-P1"' in text and 'data-search="p1 resistor"' in text
    assert text.index("Active resistance axes") < text.index("Spatial barrier") < text.index("Therapies linked")
    assert "barrier present: TIB score 3.10 (p 0.01), T-cell exclusion 0.40." in text
    assert "states z=1.40" in text and "spatial z=2.00" in text and "crosstalk z=" not in text
    assert "<td>anti-SPP1 [III | preclinical]</td><td>antibody</td>" in text
    assert "atezolizumab" not in text  # PD1 is not active


def test_table_embeds_escaped_rows_as_json_and_names_the_full_file():
    frame = pd.DataFrame({"name": ["<b>x</b>", "y", "z"], "value": [0.123456, np.nan, 2.0]})
    text = _html.table(frame, anchor="table-t", max_rows=2, full_file="t.tsv")
    data = json.loads(re.search(r'data-for="table-t">(.*?)</script>', text).group(1))
    assert data == [["&lt;b&gt;x&lt;/b&gt;", "0.123"], ["y", ""]]
    assert "Showing the first 2 of 3 rows; the full table is t.tsv beside this report." in text
    assert "<b>x</b>" not in text


def test_volcano_thins_long_tables_keeping_the_smallest_pvalues():
    rng = np.random.default_rng(0)
    table = pd.DataFrame({"feature": [f"g{i}" for i in range(5000)], "effect": rng.normal(size=5000),
                          "pvalue": rng.uniform(size=5000)})
    table["padj"] = table["pvalue"]
    fig = _figures.volcano(table, title="genes", alpha=0.1, max_points=300)
    drawn = set(np.concatenate([trace.text for trace in fig.data]))
    assert len(drawn) == 300
    assert set(table.nsmallest(200, "pvalue")["feature"]) <= drawn
    assert "300 of 5,000 tests drawn" in fig.layout.title.text


def _adata_with(uns):
    adata = AnnData(np.zeros((2, 2), dtype=np.float32))
    adata.uns.update(uns)
    return adata


@pytest.mark.parametrize("layout", ["frame", "dict"])
def test_results_adapter_reads_both_storage_layouts(layout):
    table = pd.DataFrame({"a": [1]})
    stored = table if layout == "frame" else {"table": table, "params": {"method": "m"}}
    adata = _adata_with({Keys.CROSSTALK: stored, f"{Keys.PROFILE}_summary": table})
    pd.testing.assert_frame_equal(_results.crosstalk(adata), table)
    pd.testing.assert_frame_equal(_results.profile(adata, summary=True), table)
    assert _results.profile(adata) is None
    assert _results.crosstalk_params(adata).get("method") == (None if layout == "frame" else "m")


def test_results_adapter_reads_ta_response_parts_and_suffixed_layout():
    compare, per_sample = pd.DataFrame({"a": [1]}), pd.DataFrame({"b": [2]})
    nested = _adata_with({Keys.TA_RESPONSE: {"compare": compare, "per_sample": per_sample}})
    pd.testing.assert_frame_equal(_results.ta_response(nested), compare)
    pd.testing.assert_frame_equal(_results.ta_response(nested, per_sample=True), per_sample)
    flat = _adata_with({Keys.TA_RESPONSE: compare, f"{Keys.TA_RESPONSE}_per_sample": per_sample})
    pd.testing.assert_frame_equal(_results.ta_response(flat), compare)
    pd.testing.assert_frame_equal(_results.ta_response(flat, per_sample=True), per_sample)


def test_states_the_seedings_disagree_on_are_read_and_named_in_a_note():
    record = {"t_cell": {"seedings": 3, "agreement": 0.72, "states": {"CD8_TEX_TERMINAL": 0.84, "TREG": 0.67}},
              "cd4_t": {"seedings": 1, "agreement": float("nan"), "states": {}}}
    adata = _adata_with({f"{Keys.STATE}_params": {"tool": "call_states", "self_train": {"seedings": record}}})
    assert _results.unstable_states(adata, 0.8) == {"t_cell": {"TREG": 0.67}}
    assert _results.unstable_states(adata, 0.5) == {}
    assert _results.unstable_states(_adata_with({}), 0.8) == {}
    note = _build.unstable_states_note({"t_cell": {"TREG": 0.67}})
    assert 'class="note"' in note and "t_cell: TREG (67%)" in note
    assert _build.unstable_states_note({}) == ""


def test_states_whose_mixture_calls_some_seedings_drop_are_read_and_named_in_a_note():
    record = {"cd4_t": {"seedings": 9, "agreement": 0.9, "states": {}, "mixture_kept": {"TREG": 2 / 9}},
              "cd8_t": {"seedings": 3, "agreement": 1.0, "states": {}, "mixture_kept": {"CD8_TEFF": 1.0,
                                                                                      "CD8_TSTR": 0.0}},
              "t_cell": {"seedings": 3, "agreement": 0.72, "states": {"TREG": 0.67}}}
    adata = _adata_with({f"{Keys.STATE}_params": {"tool": "call_states", "self_train": {"seedings": record}}})
    assert _results.split_mixture_states(adata) == {"cd4_t": {"TREG": 2 / 9}}  # all kept or all dropped: no split
    assert _results.split_mixture_states(_adata_with({})) == {}
    note = _build.split_mixture_note({"cd4_t": {"TREG": 2 / 9}})
    assert 'class="note"' in note and "cd4_t: TREG (22%)" in note and "fewer than half" in note
    assert _build.split_mixture_note({}) == ""


def test_small_populations_are_read_and_named_in_a_note():
    small = {"macrophage": {"cells": 69, "needed": 200, "states": 3}}
    adata = _adata_with({f"{Keys.STATE}_params": {"tool": "call_states", "self_train": {"small_populations": small}}})
    assert _results.small_populations(adata) == small
    assert _results.small_populations(_adata_with({})) == {}
    note = _build.small_populations_note(small)
    assert 'class="note"' in note and "macrophage (69 cells for 3 states, 200 needed)" in note
    assert _build.small_populations_note({}) == ""


def test_a_patient_card_prints_an_axis_activity_as_its_z_tags():
    """Two decimals, as the z tags beside it (sweep 57: ``.2g`` printed 1.99487 as "2" next to "scores z=1.99")."""
    rows = pd.DataFrame({"axis": ["HGF_MET", "CXCR2"], "axis_name": ["HGF - MET", "CXCR2"], "active": [True, True],
                         "activity": [1.99487, 12.3456], "z_scores": [1.99487, 12.3456]})
    html = _cards._axes(rows)
    assert "<td>1.99</td>" in html and "scores z=1.99" in html and "<td>12.35</td>" in html


def test_the_comparison_title_is_the_stored_contrast_and_no_file_is_named_without_one(tmp_path):
    """Sweep 57: the section always read "Responders versus resistors", and report.build(adata) without a path said
    the full tables were TSV files "beside this report" that no call wrote."""
    adata = AnnData(np.zeros((4, 2)), obs=pd.DataFrame(index=[f"c{i}" for i in range(4)]))
    table = pd.DataFrame({"feature": [f"f{i}" for i in range(600)], "group": "g", "contrast": "post vs pre",
                          "effect": 0.1, "pvalue": 0.5, "padj": 0.9, "method": "mannwhitney"})
    adata.uns[Keys.COMPARE_SCORES] = table
    adata.uns[Keys.COMPARE_SCORES + "_params"] = {"tool": "hcctme.tl.compare", "params": {"features": "scores"}}
    assert _build._contrast_title(adata) == "Post versus pre"
    ctx = _build._Context(adata, None)
    assert "beside this report" not in ctx.table(table, "compare_scores")
    assert "compare_scores.tsv beside this report" in _build._Context(adata, tmp_path).table(table, "compare_scores")


def test_notes_and_parameters_list_their_entries_in_sorted_order():
    """Sweep 59a: h5py stores dict keys sorted, so a report built from the hcctme.h5ad a run wrote listed the
    populations, states and config in another order than the report the run wrote from memory."""
    small = {"neutrophil": {"cells": 80, "states": 2, "needed": 160}, "cd8_t": {"cells": 90, "states": 4,
                                                                                  "needed": 240}}
    assert _build.small_populations_note(small) == _build.small_populations_note(dict(sorted(small.items())))
    assert _build.small_populations_note(small).index("cd8_t") < _build.small_populations_note(small).index("neutro")
    shares = {"macrophage": {"TAM3": 0.2, "TAM1": 0.4}}
    assert "macrophage: TAM1 (40%), TAM3 (20%)" in _build.unstable_states_note(shares)
    value = {"b": ["x", "y"], "a": {"d": 1, "c": "z"}}
    round_trip = {"a": {"c": "z", "d": 1}, "b": np.array(["x", "y"])}
    assert _build._sorted_text(value) == _build._sorted_text(round_trip) == "{'a': {'c': 'z', 'd': 1}, 'b': ['x', 'y']}"
    assert _build._sorted_text("patient") == "patient"


def test_profile_heatmap_hover_says_whether_the_axis_is_active_and_its_evidence_count():
    profile = pd.DataFrame({"sample": ["P1", "P2"], "axis": ["TIB", "TIB"], "activity": [1.2, -0.3],
                            "active": [True, False], "n_evidence": [3, 2]})
    trace = _figures.profile_heatmap(profile).data[0]
    assert trace.customdata.tolist() == [[["active", 3], ["not active", 2]]]
    assert "%{customdata[0]}" in trace.hovertemplate and "%{customdata[1]}" in trace.hovertemplate


def test_the_small_populations_note_says_which_calls_are_the_mixtures():
    """Sweep 63 (Zilionis 2019): populations no seeding ran on (too few cells for the self-training) were said to be
    called by "the mean of several seedings'"; they are named apart, their calls the mixture model's."""
    small = {"t_cell": {"cells": 65, "needed": 280, "states": 5, "seedings": 3},
             "macrophage": {"cells": 40, "needed": 120, "states": 2, "seedings": 0}}
    note = _build.small_populations_note(small)
    note = note.replace("&#x27;", "'")  # HTML-escaped apostrophes
    assert "clusters need: t_cell (65 cells for 5 states, 280 needed). Which" in note
    assert "too small for the self-training: macrophage (40 cells for 2 states, 120 needed). Their calls are the " \
           "mixture model's alone" in note
    assert "mixture" not in _build.small_populations_note({"t_cell": small["t_cell"]})


def test_a_differential_crosstalk_that_tested_nothing_is_not_described_as_run():
    """Sweep 63 (Kang 2018): every row tested=False, yet the Methods described the two-part test and the section
    showed the table without a word."""
    untested = pd.DataFrame({"ligand": ["SPP1"], "receptor": ["CD44"], "tested": [False]})
    assert not _build._crosstalk_tested(untested)
    assert _build._crosstalk_tested(untested.assign(tested=True))
    assert _build._crosstalk_tested(untested.drop(columns="tested"))  # a table from before the column: it ran
    assert not _build._crosstalk_tested(None)


def test_the_closest_of_tied_rows_is_the_one_of_the_largest_effect_and_the_tie_is_said():
    """Sweep 63 (Kang 2018): 24 of 45 tests tied at p 0.333 and the report named the alphabetically first
    (CD8_TSTR in B cells, effect +0.015) as "the closest", without a word of the tie."""
    table = pd.DataFrame({"feature": ["A_SIG", "B_SIG", "C_SIG"], "group": ["g", "g", "g"],
                          "effect": [0.015, -0.25, 0.1], "pvalue": [0.333, 0.333, 0.5], "padj": [0.6, 0.6, 0.6],
                          "n_reference": [3, 3, 3], "n_other": [3, 3, 3], "contrast": ["r vs s"] * 3})
    [finding] = _summary.scores(table, fdr=0.05, limit=3, anchors=("a", "b"))
    assert "the closest is B_SIG" in finding.text
    assert "2 tests tie at that p-value, this one of the largest effect" in finding.text
    assert _summary.scores(table.assign(padj=np.nan), fdr=0.05, limit=3, anchors=("a", "b")) == []  # none tested
