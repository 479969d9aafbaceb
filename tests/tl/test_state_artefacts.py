"""Artefact cells of tl.call_states (hcctme.tl._state_artefacts): stress, ambient RNA, doublets."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from hcctme.tl import _state_artefacts as artefacts
from tests.tl._state_artefact_data import foreign_cohort


def _stress_cohort(share: float, seed: int, n: int = 1000) -> tuple[np.ndarray, np.ndarray]:
    """A UCell-like artefact score: clean cells N(0.12, 0.04), a ``share`` of stressed cells N(0.28, 0.06)."""
    rng = np.random.default_rng(seed)
    hit = rng.random(n) < share
    clean, stressed = rng.normal(0.12, 0.04, n), rng.normal(0.28, 0.06, n)
    return np.where(hit, stressed, clean), hit


@pytest.mark.parametrize("share", [0.1, 0.3, 0.45])
def test_many_stressed_cells_are_flagged_where_the_median_mad_rule_misses_them(share):
    # measured over these 20 seeds: the new rule flags >= 0.72 / 0.84 / 0.85 of the stressed cells (10 / 30 / 45 %
    # stressed) and <= 2.7 / 5.9 / 6.3 % of the clean ones; the median / MAD rule flags <= 0.71 / 0.22 / 0.002 of the
    # stressed cells. With 60 % stressed the lower half holds stressed cells and nothing is found (a limit).
    caught, false, old = [], [], []
    for seed in range(20):
        x, hit = _stress_cohort(share, seed)
        flags, prob = artefacts.column_flags(x)
        caught.append(flags[hit].mean())
        false.append(flags[~hit].mean())
        old.append(artefacts.artefact_flags(x, 3.0)[hit].mean())
        # the probability agrees with the flags, and is far higher in the stressed cells
        assert ((prob > 0.5) <= flags).all() and (prob[flags] >= 0.5).all()
        assert prob[hit].mean() > prob[~hit].mean() + 0.5
    assert min(caught) >= (0.7 if share < 0.3 else 0.8) and max(false) <= (0.03 if share < 0.3 else 0.07)
    if share >= 0.3:  # the robust z over the whole population misses most of them
        assert max(old) <= 0.25 and min(caught) - max(old) >= 0.6


def test_clean_cohort_is_not_flagged_beyond_the_normal_tail():
    # one normal score (no artefact group): measured <= 0.4 % flagged over 40 seeds, 0.1 % on average (the tail above
    # 3 sd is 0.13 %); without the BIC condition a normal split in two reached 5.8 % on seed 0
    rates = []
    for seed in range(40):
        x = np.random.default_rng(seed).normal(0.12, 0.04, 1000)
        assert not artefacts.split(x).distinct
        flags, prob = artefacts.column_flags(x)
        rates.append(flags.mean())
        assert set(np.unique(prob)) <= {0.0, 1.0}
    assert max(rates) <= 0.005 and np.mean(rates) <= 0.002


def test_split_finds_the_clean_component_under_heavy_contamination():
    x, hit = _stress_cohort(0.3, seed=1, n=4000)
    fit = artefacts.split(x)
    assert fit.distinct
    assert fit.centre == pytest.approx(0.12, abs=0.01) and fit.scale == pytest.approx(0.04, abs=0.006)
    assert fit.upper_share == pytest.approx(hit.mean(), abs=0.05)


def test_foreign_marker_keeps_the_robust_rule_and_its_reference():
    rng = np.random.default_rng(0)
    x = np.abs(rng.normal(0.0, 0.01, 1000))
    x[:30] = 0.3  # a doublet group at 60 % of the marker's own lineage level
    flags, prob = artefacts.column_flags(x, reference=0.5)
    assert flags[:30].all() and not flags[30:].any()
    assert (prob == flags).all()
    # a reference level below the population's: nothing is a doublet of that lineage
    assert not artefacts.column_flags(x, reference=0.0)[0].any()


def test_context_flags_drop_markers_that_mark_a_state():
    rng = np.random.default_rng(2)
    n = 600
    marker = np.abs(rng.normal(0.0, 0.01, n))
    marker[:120] = 0.3  # 20 % of the population: a state sharing the lineage's genes, not doublets
    stress, hit = _stress_cohort(0.25, seed=3, n=n)
    found = artefacts.context_flags(np.column_stack([stress, marker]), ["STRESS", "MARKER_X"], {"MARKER_X": 0.5})
    assert found.unused == ["MARKER_X"] and found.flagged_by == {"STRESS": int(np.sum(found.flagged == "STRESS"))}
    assert set(found.flagged[found.flagged != ""]) == {"STRESS"}
    assert (found.flagged[hit] == "STRESS").mean() >= 0.75
    # the probability of an artefact combines the columns used: the marker left out adds nothing
    alone = artefacts.context_flags(stress[:, None], ["STRESS"], {})
    np.testing.assert_allclose(found.probability, alone.probability)


def test_a_marker_whose_lineage_is_within_reach_is_not_used():
    # the generator's case: a marker whose own lineage sits inside the population's spread (MARKER_TUMOUR, whose
    # hepatocytes do not raise it, in CD8 T cells: reference at 0.5 robust sd) flags only the population's tail
    rng = np.random.default_rng(6)
    near = rng.normal(0.20, 0.03, 800)
    far = np.abs(rng.normal(0.0, 0.01, 800))
    far[:20] = 0.35  # doublets at 70 % of a lineage far from the population
    assert not artefacts.reaches(near, 0.215, 3.0) and artefacts.reaches(far, 0.5, 3.0)
    # the same reference, 0.215, is past 3 robust sd where the population is tight
    assert artefacts.reaches(np.abs(rng.normal(0.0, 0.01, 800)), 0.215, 3.0)
    alone = artefacts.column_flags(near, reference=0.215)[0]
    assert alone.sum() >= 1  # the tail the rule would flag on its own: cells past 3 sd and a third of the way
    found = artefacts.context_flags(np.column_stack([near, far]), ["MARKER_NEAR", "MARKER_FAR"],
                                    {"MARKER_NEAR": 0.215, "MARKER_FAR": 0.5})
    assert found.unreached == ["MARKER_NEAR"] and found.unused == []
    assert found.flagged_by == {"MARKER_FAR": 20} and (found.flagged[:20] == "MARKER_FAR").all()
    assert (found.probability[20:] == 0).all()
    # an empty context reaches nothing; a column without a reference (an artefact list) is never unreached
    assert not artefacts.reaches(np.zeros(0), 0.5, 3.0)
    stress, _ = _stress_cohort(0.25, seed=7, n=800)
    assert artefacts.context_flags(stress[:, None], ["STRESS"], {}).unreached == []


def test_foreign_markers_together_flag_at_most_the_foreign_share():
    x, refs = foreign_cohort()
    each = [artefacts.column_flags(x[:, j], reference=0.5)[0] for j in range(2)]
    assert each[0][:48].all() and each[1][48:96].all() and not (each[0][48:].any() or each[1][96:].any())
    found = artefacts.context_flags(x, ["MARKER_A", "MARKER_B"], refs)
    # 96 cells (16 %) carry a foreign profile; 60 (10 %) keep their flags: all of A's and B's 12 furthest
    assert found.unused == [] and found.foreign_released == 36
    assert (found.flagged[:48] == "MARKER_A").all()
    assert (found.flagged[84:96] == "MARKER_B").all() and (found.flagged[48:84] == "").all()
    assert (found.flagged[96:] == "").all()
    np.testing.assert_array_equal(found.probability, (found.flagged != "").astype(float))
    assert found.flagged_by == {"MARKER_A": 48, "MARKER_B": 12}
    # with a larger share allowed, nothing is released
    loose = artefacts.context_flags(x, ["MARKER_A", "MARKER_B"], refs, max_foreign_share=0.2)
    assert loose.foreign_released == 0 and loose.flagged_by == {"MARKER_A": 48, "MARKER_B": 48}


def test_the_foreign_share_leaves_other_artefact_columns_alone():
    x, refs = foreign_cohort()
    stress, _ = _stress_cohort(0.25, seed=5, n=x.shape[0])
    found = artefacts.context_flags(np.column_stack([stress, x]), ["STRESS", "MARKER_A", "MARKER_B"], refs)
    alone = artefacts.context_flags(stress[:, None], ["STRESS"], {})
    np.testing.assert_array_equal(found.flagged == "STRESS", alone.flagged == "STRESS")
    # the cap counts the foreign-lineage flags only: 60 cells keep them, stressed or not
    assert found.foreign_released == 36 and found.flagged_by["MARKER_A"] + found.flagged_by["MARKER_B"] == 60


def test_strongest_foreign_keeps_every_flag_under_the_share():
    x, _ = foreign_cohort()
    flags = np.column_stack([artefacts.column_flags(x[:, j], reference=0.5)[0] for j in range(2)])
    assert artefacts.strongest_foreign(x, [0.5, 0.5], flags, 0.2).all()
    keep = artefacts.strongest_foreign(x, [0.5, 0.5], flags, 0.1)
    assert keep.sum() == x.shape[0] - 36 and not keep[48:84].any()
    # no foreign marker at all: every cell keeps its (absent) flags
    assert artefacts.strongest_foreign(np.zeros((5, 0)), [], np.zeros((5, 0), dtype=bool), 0.1).all()


def test_library_size_is_relative_to_the_sample_in_each_context():
    totals = np.array([1000, 2000, 4000, 10_000, 20_000, 40_000, 1000, 2000])
    contexts = np.array(["a", "a", "a", "a", "a", "a", "b", "b"], dtype=object)
    samples = np.array(["s1", "s1", "s1", "s2", "s2", "s2", "s1", "s1"], dtype=object)
    out = artefacts.library_size(totals, contexts, samples)
    np.testing.assert_allclose(out, np.log([0.5, 1, 2, 0.5, 1, 2, 1 / np.sqrt(2), np.sqrt(2)]))


def test_library_size_flags_doublets_only_when_counts_exist():
    rng = np.random.default_rng(4)
    n = 800
    doublet = rng.random(n) < 0.08
    depth = np.exp(rng.normal(np.log(3000), 0.2, n)) * np.where(doublet, 2.0, 1.0)
    counts = sp.csr_matrix(rng.poisson(depth[:, None] / 50, (n, 50)).astype(np.float32))
    np.testing.assert_allclose(artefacts.totals(counts), np.asarray(counts.sum(axis=1)).ravel())
    logged = counts.copy()
    logged.data = np.log1p(logged.data / 3.0)
    assert artefacts.totals(logged) is None
    m = {"values": pd.DataFrame({"S": np.zeros(n)}), "art_cols": {"ctx": ["S"]},
         "contexts": np.full(n, "ctx", dtype=object)}
    artefacts.add_library_size(m, counts, np.full(n, "s1", dtype=object))
    assert m["art_cols"] == {"ctx": ["S", artefacts.LIBRARY_SIZE]}
    given = {"values": pd.DataFrame({"S": np.zeros(n)}), "art_cols": {"ctx": ["S"]}, "contexts": m["contexts"]}
    artefacts.add_library_size(given, counts, np.full(n, "s1", dtype=object),
                               sums=np.asarray(counts.sum(axis=1)).ravel())  # row sums another pass read
    pd.testing.assert_frame_equal(given["values"], m["values"])
    not_counts = {"values": pd.DataFrame({"S": np.zeros(n)}), "art_cols": {"ctx": ["S"]}, "contexts": m["contexts"]}
    artefacts.add_library_size(not_counts, logged, np.full(n, "s1", dtype=object), sums=np.ones(n))
    assert not_counts["art_cols"] == {"ctx": ["S"]}  # sums given, but the matrix holds no counts
    flags, _ = artefacts.column_flags(m["values"][artefacts.LIBRARY_SIZE].to_numpy())
    # measured: 0.69 of the doublets (twice the depth, per-cell sd 0.2 in log) and 0.3 % of the singlets
    assert flags[doublet].mean() >= 0.6 and flags[~doublet].mean() <= 0.01


def test_library_size_that_flags_a_large_share_marks_a_state_and_is_not_used():
    # a population where 40 % of the cells (a state of larger cells) have three times the depth: the two-component
    # fit finds them, but doublets are a small minority, so the column is not used there (as a foreign marker)
    rng = np.random.default_rng(5)
    n = 600
    large = rng.random(n) < 0.4
    size = rng.normal(0.0, 0.2, n) + np.where(large, np.log(3.0), 0.0)
    alone, _ = artefacts.column_flags(size)
    assert alone[large].mean() > 0.9  # the fit alone would call the large cells doublets
    found = artefacts.context_flags(size[:, None], [artefacts.LIBRARY_SIZE], {})
    assert found.unused == [artefacts.LIBRARY_SIZE]
    assert not (found.flagged != "").any() and np.all(found.probability == 0)
    # 5 % doublets at twice the depth: the column is used (measured: a third of the doublets flagged, no singlet)
    doublet = rng.random(n) < 0.05
    size = rng.normal(0.0, 0.2, n) + np.where(doublet, np.log(2.0), 0.0)
    found = artefacts.context_flags(size[:, None], [artefacts.LIBRARY_SIZE], {})
    assert found.unused == []
    assert (found.flagged[doublet] == artefacts.LIBRARY_SIZE).mean() >= 0.25
    assert (found.flagged[~doublet] == artefacts.LIBRARY_SIZE).mean() <= 0.01


def test_discount_lowers_confidence_and_drops_calls_below_the_threshold():
    calls = np.array(["A", "B", "A", "unassigned"], dtype=object)
    conf = np.array([0.9, 0.9, 0.6, 0.4])
    prob = np.array([0.0, 0.3, 0.3, 0.0])
    out, new = artefacts.discount(calls, conf, prob, 0.5)
    np.testing.assert_allclose(new, [0.9, 0.63, 0.42, 0.4])
    assert list(out) == ["A", "B", "unassigned", "unassigned"]


def test_call_states_reads_library_size_only_from_counts():
    import hcctme
    from tests.tl._state_generator import generate

    adata = generate("10x", seed=1, n_patients=4, cells_per_patient=250)
    hcctme.tl.score(adata)
    logged = adata.copy()
    logged.X = logged.X.copy()
    logged.X.data = np.log1p(logged.X.data)
    hcctme.tl.call_states(adata, cell_type_key="cell_type", sample_key="patient")
    hcctme.tl.call_states(logged, cell_type_key="cell_type", sample_key="patient")
    counted, not_counted = adata.uns["hcctme_state_params"], logged.uns["hcctme_state_params"]
    assert all(cols[-1] == artefacts.LIBRARY_SIZE for cols in counted["artefact_signatures"].values())
    assert not any(artefacts.LIBRARY_SIZE in cols for cols in not_counted["artefact_signatures"].values())
    assert counted["artefact_rule"] == artefacts.params()
    flagged = adata.obs["hcctme_state_artefact"].astype(str)
    by_size = flagged == artefacts.LIBRARY_SIZE
    # the cells flagged by their library size (and no other column first) are mostly the generator's doublets
    # (measured: 5 cells, 4 of them doublets)
    assert by_size.sum() >= 3 and (adata.obs.loc[by_size, "artefact"] == "doublet").mean() >= 0.5
    assert (adata.obs.loc[flagged != "", "hcctme_state"] == "unassigned").all()
    assert (adata.obs.loc[flagged != "", "hcctme_state_confidence"] == 0).all()


def test_detected_genes_counts_each_lists_genes_above_zero():
    X = sp.csr_matrix(np.array([[0, 1, 2, 0], [3, 0, 0, 0], [0, 0, 0, 0]], dtype=float))
    names = pd.Index(["A", "B", "C", "D"])
    counts = artefacts.detected_genes(X, names, {"L1": ["A", "B", "C", "MISSING"], "L2": ["D"], "L3": ["MISSING"]},
                                      chunk_size=2)
    assert counts["L1"].tolist() == [2, 1, 0]
    assert counts["L2"].tolist() == [0, 0, 0] and counts["L3"].tolist() == [0, 0, 0]


def test_zero_inflated_short_list_flags_only_cells_detecting_enough_genes():
    """A short list in a shallow population: 70 % of the cells score 0, the rest a little above; the two-component
    rule takes the non-zero cells for an artefact group, and the gene support keeps only those that detect enough
    of the list's genes."""
    rng = np.random.default_rng(0)
    x = np.where(rng.random(400) < 0.7, 0.0, rng.uniform(0.03, 0.08, 400))
    ungated = artefacts.context_flags(x[:, None], ["LIST"], {})
    assert ungated.flagged_by["LIST"] > 80  # every non-zero cell: the fit's clean component is the zeros
    support = np.zeros(400, dtype=bool)
    support[:5] = True
    gated = artefacts.context_flags(x[:, None], ["LIST"], {}, support={"LIST": support})
    assert np.all(gated.flagged[~support] == "") and np.all(gated.probability[~support] == 0.0)
    assert gated.flagged_by.get("LIST", 0) == int(np.sum((ungated.flagged == "LIST") & support))


@pytest.mark.slow
def test_call_states_gates_the_library_artefact_lists_by_detected_genes():
    """datasets.demo() plants no stress: the 17-gene stress core, whose genes its shallow neutrophils detect in
    0-3 per cell, flagged 158 of the 389 NEU_CD10_ALPL cells before the gate (measured after it: 8)."""
    import hcctme

    adata = hcctme.datasets.demo()
    hcctme.tl.score(adata)
    hcctme.tl.call_states(adata, cell_type_key="cell_type", sample_key="patient")
    neutrophil_state = adata.obs["state_true"].astype(str) == "NEU_CD10_ALPL"
    flagged = adata.obs.loc[neutrophil_state, "hcctme_state_artefact"].astype(str)
    assert neutrophil_state.sum() > 300 and (flagged == "ARTEFACT_DISSOCIATION_CORE").mean() <= 0.05


def test_gene_support_gates_only_library_artefact_lists_whose_genes_are_measured():
    from hcctme.sig._model import Signature, SignatureSet

    lib = SignatureSet([Signature(id="ART_MEASURED", genes_up=("A", "B", "C", "D"), collection="artefacts",
                                  role="artefact"),
                        Signature(id="ART_ELSEWHERE", genes_up=("X", "Y", "Z"), collection="artefacts",
                                  role="artefact")])
    X = sp.csr_matrix(np.array([[1, 1, 1, 0], [1, 1, 0, 0], [0, 0, 0, 0]], dtype=float))
    m = {"art_cols": {"ctx": ["ART_MEASURED", "ART_ELSEWHERE", "USER_COLUMN"]}}
    artefacts.add_gene_support(m, X, pd.Index(["A", "B", "C", "D"]), lib)
    assert set(m["art_support"]) == {"ART_MEASURED"}  # X, Y, Z not measured; a user's column is never gated
    assert m["art_support"]["ART_MEASURED"].tolist() == [True, False, False]
