"""The specificity test of call_states' cluster seeds (hcctme/tl/_state_specificity.py)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import scipy.sparse as sp
from scipy.stats import binom

from hcctme._constants import STATE_SPECIFICITY_MIN_UP, STATE_SPECIFICITY_SHORT_MAX_NULL
from hcctme.tl import _state_expression as state_expression
from hcctme.tl import _state_params as state_params
from hcctme.tl import _state_seeds as state_seeds
from hcctme.tl import _state_specificity as specificity


def _population(seed: int = 0, n: int = 400, n_genes: int = 600):
    """Counts with a broad programme (20 of the 40 genes of signature S up) in cluster 1 and a narrow one (2 of
    S's genes and 10 other genes up) in cluster 2; cluster 0 has neither."""
    rng = np.random.default_rng(seed)
    groups = np.repeat([0, 1, 2], [n - 120, 60, 60])
    log_mu = np.tile(rng.normal(-1.0, 1.0, n_genes), (n, 1))
    log_mu[groups == 1, :20] += 1.5
    log_mu[groups == 2, 38:50] += 2.0  # genes 38-39 are S's, 40-49 are not
    counts = rng.poisson(np.exp(log_mu)).astype(np.float32)
    names = pd.Index([f"G{i}" for i in range(n_genes)])
    return sp.csr_matrix(counts), groups, names


def _panel(counts, names, signatures, down=None):
    columns, positions, background, down_positions = specificity.panel_columns(names, signatures, n_background=400,
                                                                               down=down)
    X = sp.csc_matrix(state_expression.log_expression(counts)[:, columns])  # as call_states reads a population
    return specificity.build_panel(X, positions, background, down_positions)


def test_cluster_auroc_is_the_mann_whitney_auroc():
    from sklearn.metrics import roc_auc_score

    counts, groups, _ = _population()
    X = sp.csc_matrix(state_expression.log_expression(counts)[:, :30])
    labels, auroc = specificity.cluster_auroc(X, groups)
    assert list(labels) == [0, 1, 2]
    dense = X.toarray()
    for g in labels:
        expected = [roc_auc_score(groups == g, dense[:, j]) for j in range(30)]
        np.testing.assert_allclose(auroc[g], expected, atol=1e-12)


def test_column_ranks_equal_rankdata_per_column():
    """All columns ranked at once: ties (average), negative values, empty columns and unsorted indices."""
    from scipy.stats import rankdata

    rng = np.random.default_rng(3)
    dense = rng.integers(-2, 4, size=(60, 9)).astype(float) * (rng.random((60, 9)) < 0.6)
    dense[:, 4] = 0.0
    X = sp.csc_matrix(dense)
    for j in range(X.shape[1]):  # stored values in a shuffled order within each column
        lo, hi = X.indptr[j], X.indptr[j + 1]
        order = lo + rng.permutation(hi - lo)
        X.indices[lo:hi], X.data[lo:hi] = X.indices[order], X.data[order]
    X.has_sorted_indices = False
    ranks = specificity._column_ranks(X.data, X.indptr)
    for j in range(X.shape[1]):
        lo, hi = X.indptr[j], X.indptr[j + 1]
        np.testing.assert_array_equal(ranks[lo:hi], rankdata(X.data[lo:hi]))
    _, auroc = specificity.cluster_auroc(X, np.repeat([0, 1], 30))
    _, expected = specificity.cluster_auroc(sp.csc_matrix(dense), np.repeat([0, 1], 30))
    np.testing.assert_array_equal(auroc, expected)


def test_panel_columns_are_read_in_the_same_chunked_pass_with_whole_row_normalisation():
    counts, _, names = _population()
    columns, _, _, _ = specificity.panel_columns(names, {"S": [f"G{i}" for i in range(40)]}, n_background=50)
    assert columns.size == 90 and [names[c] for c in columns] == sorted(names[c] for c in columns)  # by name
    rows = np.arange(0, counts.shape[0], 2)
    _, panel, _ = state_expression.log_expression_chunked(counts, rows, state_params.SelfTrainParams(),
                                                          panel_columns=columns, chunk_size=37)
    expected = state_expression.log_expression(counts[rows])[:, columns]
    assert panel.format == "csc"
    np.testing.assert_allclose(panel.toarray(), expected.toarray(), rtol=1e-6)


def test_broad_programme_seeds_and_a_few_shared_genes_do_not():
    counts, groups, names = _population()
    panel = _panel(counts, names, {"S": [f"G{i}" for i in range(40)], "SHORT": ["G38", "G39", "G55"]})
    _, auroc = specificity.cluster_auroc(panel.X, groups)
    broad = specificity.gene_test(auroc[1], panel, "S")
    narrow = specificity.gene_test(auroc[2], panel, "S")
    assert broad["n_measured"] == 40 and broad["n_up"] >= 15 and broad["pvalue"] < 1e-6
    assert specificity.specific(broad)
    # two of S's 40 genes up, as the ten other genes of that programme: up no more often than background
    assert narrow["n_up"] == 2 and narrow["pvalue"] > 0.01 and not specificity.specific(narrow)
    assert not specificity.specific(specificity.gene_test(auroc[0], panel, "S"))
    # a 3-gene panel cannot reach the test's p-value through its genes: one gene up is enough
    short = specificity.gene_test(auroc[2], panel, "SHORT")
    assert short["n_measured"] == 3 and short["n_up"] == 2 and specificity.specific(short)
    assert not specificity.specific(specificity.gene_test(auroc[1], panel, "SHORT"))  # none of its genes up
    assert specificity.gene_test(auroc[1], panel, "UNMEASURED")["pvalue"] == 1.0


def test_significant_genes_below_the_minimum_share_do_not_seed():
    """A p-value under alpha is not enough on its own: the cluster must also raise STATE_SPECIFICITY_MIN_UP of
    the state's measured genes (a cluster can reach the p-value through a few genes where the null rate is tiny)."""
    n_measured = 40
    enough = int(np.ceil(STATE_SPECIFICITY_MIN_UP * n_measured))
    result = {"n_measured": n_measured, "pvalue": 1e-6, "majority_pvalue": 1.0, "null_rate": 1e-4}
    assert specificity.specific({**result, "n_up": enough})
    assert not specificity.specific({**result, "n_up": enough - 1})
    assert not specificity.specific({**result, "n_up": enough, "pvalue": 0.02})
    # the majority route does not need the minimum share
    assert specificity.specific({**result, "n_up": enough - 1, "majority_pvalue": 1e-3})


def test_confirm_seeds_declines_the_narrow_cluster():
    counts, groups, names = _population()
    panel = _panel(counts, names, {"S": [f"G{i}" for i in range(40)]})
    labels = np.where(groups > 0, "S", state_seeds.NONE_CLASS).astype(object)
    z = np.where(groups > 0, 1.0, -0.5)[:, None]  # both clusters score for S, cluster 0 does not
    out, report = state_seeds.confirm_seeds(labels, groups, ["S"], panel, z)
    assert (out[groups == 1] == "S").all() and (out[groups != 1] == state_seeds.NONE_CLASS).all()
    assert report["S"]["seeded"] and report["S"]["clusters_tested"] == 2 and report["S"]["clusters_declined"] == 1
    # only the narrow cluster: the state is declined everywhere
    only_narrow = np.where(groups == 2, "S", state_seeds.NONE_CLASS).astype(object)
    out, report = state_seeds.confirm_seeds(only_narrow, groups, ["S"], panel, z)
    assert (out == state_seeds.NONE_CLASS).all() and not report["S"]["seeded"]


def test_a_declined_cluster_seeds_its_next_candidate():
    """A cluster labelled a state that its test declines (an unplanted sibling it scores highest in) seeds the next
    state it is a candidate for where that state's test passes (deep_10x generator seed 701: clusters of progenitor
    cells highest in the unplanted CD8_TSTR list were "none of these" seeds)."""
    counts, groups, names = _population()
    panel = _panel(counts, names, {"S": [f"G{i}" for i in range(40)], "T": [f"G{i}" for i in range(100, 140)]})
    ids = ["T", "S"]
    labels = np.where(groups == 1, "T", state_seeds.NONE_CLASS).astype(object)
    z = np.column_stack([np.where(groups == 1, 1.0, -0.5), np.where(groups == 1, 0.6, -0.5)])
    alone, report = state_seeds.confirm_seeds(labels, groups, ids, panel, z)
    assert (alone == state_seeds.NONE_CLASS).all() and report["T"]["clusters_declined"] == 1
    out, report = state_seeds.confirm_seeds(labels, groups, ids, panel, z, {0: [], 1: ["T", "S"], 2: []})
    assert (out[groups == 1] == "S").all() and (out[groups != 1] == state_seeds.NONE_CLASS).all()
    assert report["T"]["clusters_declined"] == 1 and not report["T"]["seeded"]
    assert report["S"]["seeded"] and report["S"]["clusters_tested"] == 1
    # a state earlier in the list than the cluster's label is not tested again
    out, report = state_seeds.confirm_seeds(labels, groups, ids, panel, z, {0: [], 1: ["S", "T"], 2: []})
    assert (out == state_seeds.NONE_CLASS).all() and report["S"]["clusters_tested"] == 0


def test_a_short_panel_that_is_not_the_clusters_highest_state_does_not_seed_it_as_a_later_candidate():
    """A short panel passes on one gene: as a later candidate of a cluster higher in another state it may lead to
    the sibling it reads, never seed the cluster itself (doublets_10x generator seed 400: the unplanted
    CAF_ONCOFETAL_POSTN passed a cluster of TGFB-myCAF cells through POSTN)."""
    counts, groups, names = _population()
    panel = _panel(counts, names, {"T": [f"G{i}" for i in range(100, 140)], "SHORT": ["G38", "G39", "G55"]})
    ids = ["T", "SHORT"]
    labels = np.where(groups == 2, "T", state_seeds.NONE_CLASS).astype(object)
    candidates = {0: [], 1: [], 2: ["T", "SHORT"]}
    z = np.column_stack([np.where(groups == 2, 1.0, -0.5), np.where(groups == 2, 0.6, -0.5)])
    out, report = state_seeds.confirm_seeds(labels, groups, ids, panel, z, candidates)
    assert (out == state_seeds.NONE_CLASS).all()
    assert report["SHORT"]["clusters_tested"] == 1 and report["SHORT"]["clusters_declined"] == 1
    assert specificity.specific(report["SHORT"])  # its test passed: only the rule declined it
    # where the panel is the cluster's highest state it seeds the cluster
    z[groups == 2, 1] = 1.2
    out, report = state_seeds.confirm_seeds(labels, groups, ids, panel, z, candidates)
    assert (out[groups == 2] == "SHORT").all() and report["SHORT"]["seeded"]


def test_a_later_short_candidate_leads_only_to_a_sibling_that_is_the_clusters_highest_state():
    """He 2020 liver macrophages: a mixed cluster highest in TAM2_SPP1 read KUPFFER through the later candidate
    TAM1_FOLR2 and its Mac_SPP1 cells were called KUPFFER; where the sibling is the cluster's highest state (high
    stress generator seed 701's Kupffer clusters) the read stands."""
    counts, groups, names = _population()
    panel = _panel(counts, names, {"T": [f"G{i}" for i in range(100, 140)], "SIB": [f"G{i}" for i in range(38, 50)],
                                   "SHORT": ["G38", "G39", "G55"]})
    ids = ["T", "SIB", "SHORT"]
    labels = np.where(groups == 2, "T", state_seeds.NONE_CLASS).astype(object)
    candidates = {0: [], 1: [], 2: ["T", "SHORT"]}
    z = np.full((groups.size, 3), -0.5)
    z[groups == 2] = [1.0, 0.8, 0.6]  # T highest: SHORT reads SIB, which is not the cluster's highest state
    out, report = state_seeds.confirm_seeds(labels, groups, ids, panel, z, candidates)
    assert (out == state_seeds.NONE_CLASS).all() and report["SHORT"]["read_through"] == "SIB"
    assert not report["SIB"]["seeded"] and specificity.specific(report["SIB"])
    z[groups == 2] = [1.0, 1.1, 0.6]  # SIB highest: the read stands
    out, report = state_seeds.confirm_seeds(labels, groups, ids, panel, z, candidates)
    assert (out[groups == 2] == "SIB").all() and report["SIB"]["seeded"]


def test_auroc_against_a_reference_is_the_mann_whitney_auroc_of_the_two_sets():
    from sklearn.metrics import roc_auc_score

    counts, groups, _ = _population()
    X = sp.csr_matrix(state_expression.log_expression(counts)[:, :30])
    rows, reference = np.flatnonzero(groups == 2), np.flatnonzero(groups == 0)
    auroc, detected = specificity.auroc_against(X, rows, reference)
    dense = X.toarray()
    np.testing.assert_allclose(detected, (dense[reference] > 0).mean(axis=0))
    both = np.concatenate([rows, reference])
    truth = np.isin(both, rows)
    np.testing.assert_allclose(auroc, [roc_auc_score(truth, dense[both, j]) for j in range(30)], atol=1e-12)


def test_auroc_of_rows_read_out_of_order_from_a_csc_matrix():
    """Rows taken from the panel's csc matrix in any order (unsorted indices) give the same AUROC as a sorted copy."""
    counts, groups, _ = _population()
    X = sp.csc_matrix(state_expression.log_expression(counts)[:, :30])
    rows, reference = np.flatnonzero(groups == 2)[::-1], np.flatnonzero(groups == 0)
    assert not X[np.concatenate([rows, reference])].has_sorted_indices
    auroc, detected = specificity.auroc_against(X, rows, reference)
    expected, expected_detected = specificity.auroc_against(sp.csr_matrix(X), rows, reference)
    np.testing.assert_allclose(auroc, expected, atol=1e-12)
    np.testing.assert_allclose(detected, expected_detected)



def _separating_by_ranking_every_gene(X, rows, reference, *, n_genes, threshold, random_state=0, allowed=None):
    """separating_genes as it was before the detection bound: every gene's AUROC (auroc_against), then the best."""
    auroc, _ = specificity.auroc_against(X, rows, reference, random_state)
    if allowed is not None:
        auroc = np.where(allowed, auroc, 0.0)
    order = np.argsort(-auroc, kind="stable")[:n_genes]
    return order[auroc[order] >= threshold]


def test_separating_genes_rank_only_the_genes_that_can_reach_the_threshold_with_the_same_result():
    """The detection bound leaves out genes that cannot reach the threshold; the chosen genes and their order are
    those of ranking every gene (ties, subsampled sides over 2,000 cells, csr and csc input, an ``allowed`` mask)."""
    rng = np.random.default_rng(3)
    for trial in range(12):
        n, n_genes = (4600, 80) if trial < 2 else (int(rng.integers(60, 900)), int(rng.integers(20, 200)))
        dense = rng.poisson(rng.gamma(0.3, 1.0, n_genes), size=(n, n_genes)).astype(float)
        X = sp.csr_matrix(np.log1p(dense))  # few count levels: many ties
        rows = np.sort(rng.choice(n, int(rng.integers(10, n // 2)), replace=False))
        rest = np.setdiff1d(np.arange(n), rows)
        reference = np.sort(rng.choice(rest, int(rng.integers(10, rest.size)), replace=False))
        allowed = rng.random(n_genes) > 0.3 if trial % 2 else None
        for threshold in (0.55, 0.65, 0.7, 0.85):
            for matrix in (X, sp.csc_matrix(X)):
                got = specificity.separating_genes(matrix, rows, reference, n_genes=15, threshold=threshold,
                                                   random_state=trial, allowed=allowed)
                want = _separating_by_ranking_every_gene(matrix, rows, reference, n_genes=15, threshold=threshold,
                                                         random_state=trial, allowed=allowed)
                np.testing.assert_array_equal(got, want)
    # the bound is reached: a gene detected in every row and no reference cell has AUROC 1
    X = sp.csr_matrix(np.r_[np.ones((5, 1)), np.zeros((5, 1))])
    np.testing.assert_array_equal(specificity.separating_genes(X, np.arange(5), np.arange(5, 10), n_genes=1,
                                                               threshold=1.0), [0])

def test_reference_is_the_clusters_that_do_not_score_for_the_state():
    groups = np.repeat([0, 1, 2, 3], 10)
    z = np.repeat([-1.0, 1.2, 0.8, -0.2], 10)
    assert set(groups[specificity.reference_rows(groups, z, 1)]) == {0, 3}  # not cluster 2, high for the state too
    assert set(groups[specificity.reference_rows(groups, np.repeat([0.5, 1.0, 2.0, 3.0], 10), 1)]) == {0, 2, 3}


def test_a_state_half_of_the_population_is_tested_against_the_cells_without_it():
    """S up in clusters 1 and 2 (half the cells, a moderate programme): each cluster against the rest, which holds
    the other S cluster, has few S genes up; against the cells without S (cluster 0) it has most."""
    rng = np.random.default_rng(3)
    n, n_genes = 400, 600
    groups = np.repeat([0, 1, 2], [200, 100, 100])
    log_mu = np.tile(rng.normal(-1.0, 1.0, n_genes), (n, 1))
    log_mu[groups > 0, :40] += 0.7
    counts = sp.csr_matrix(rng.poisson(np.exp(log_mu)).astype(np.float32))
    panel = _panel(counts, pd.Index([f"G{i}" for i in range(n_genes)]), {"S": [f"G{i}" for i in range(40)]})
    _, rest = specificity.cluster_auroc(panel.X, groups)
    against_rest = specificity.gene_test(rest[1], panel, "S")
    z = np.where(groups > 0, 1.0, -1.0)
    reference = specificity.reference_rows(groups, z, 1)
    auroc, _ = specificity.auroc_against(sp.csr_matrix(panel.X), np.flatnonzero(groups == 1), reference)
    against_none = specificity.gene_test(auroc, panel, "S")
    assert not specificity.specific(against_rest)
    assert against_none["n_up"] >= 2 * against_rest["n_up"] and specificity.specific(against_none)
    out, report = state_seeds.confirm_seeds(np.where(groups > 0, "S", state_seeds.NONE_CLASS).astype(object), groups,
                                            ["S"], panel, z[:, None])
    assert (out[groups > 0] == "S").all() and report["S"]["clusters_declined"] == 0


def test_short_panel_with_down_genes_needs_them_down():
    """An M-MDSC-like 3-gene panel with two down genes: its up genes up are not enough when the down genes are not
    down in the cluster (CD14-high, HLA-DR-high classical monocytes); a panel defined in both directions needs
    half of its up genes up."""
    rng = np.random.default_rng(5)
    n, n_genes = 400, 600
    groups = np.repeat([0, 1, 2], [200, 100, 100])
    log_mu = np.tile(rng.normal(0.0, 0.7, n_genes), (n, 1))
    log_mu[groups > 0, 0] += 2.0  # the panel's up genes G0 (clusters 1 and 2) and G3 (cluster 2)
    log_mu[groups == 2, 3] += 2.0
    log_mu[:, 1:3] += 2.0
    log_mu[groups == 2, 1:3] -= 2.5  # its down genes G1, G2 down in cluster 2 only
    counts = sp.csr_matrix(rng.poisson(np.exp(log_mu)).astype(np.float32))
    names = pd.Index([f"G{i}" for i in range(n_genes)])
    panel = _panel(counts, names, {"M": ["G0", "G3", "G4"]}, down={"M": ["G1", "G2"]})
    reference = np.flatnonzero(groups == 0)
    X = sp.csr_matrix(panel.X)
    hla_high = _test(X, groups == 1, reference, panel)
    hla_low = _test(X, groups == 2, reference, panel)
    assert hla_high["n_up"] >= 1 and hla_high["n_down_measured"] == 2 and hla_high["n_down"] == 0
    assert not specificity.specific(hla_high)
    assert hla_low["n_up"] == 2 and hla_low["n_down"] == 2 and specificity.specific(hla_low)
    # one of the three up genes up (the binomial p of one gene), the down genes down: not the phenotype
    one_up = dict(hla_low, n_up=1, pvalue=float(binom.sf(0, hla_low["n_measured"], hla_low["null_rate"])))
    assert not specificity.specific(one_up)
    # down genes the reference barely expresses cannot show as down: they are not counted, and one up gene suffices
    rare = np.full(X.shape[1], 0.2)
    auroc, _ = specificity.auroc_against(X, np.flatnonzero(groups == 1), reference)
    untestable = specificity.gene_test(auroc, panel, "M", rare)
    assert untestable["n_down_measured"] == 0 and untestable["n_up"] == 1 and specificity.specific(untestable)


def _test(X, members, reference, panel):
    auroc, detected = specificity.auroc_against(X, np.flatnonzero(members), reference)
    return specificity.gene_test(auroc, panel, "M", detected)


def test_params_are_the_constants():
    from hcctme import _constants as c

    assert specificity.params() == {
        "auroc": c.STATE_SPECIFICITY_AUROC, "alpha": c.STATE_SPECIFICITY_ALPHA, "min_up": c.STATE_SPECIFICITY_MIN_UP,
        "background_genes": c.STATE_SPECIFICITY_BACKGROUND, "bins": c.STATE_SPECIFICITY_BINS,
        "min_detection": c.STATE_SPECIFICITY_MIN_DETECTION, "min_genes": c.STATE_SPECIFICITY_MIN_GENES,
        "reference_z": c.STATE_SPECIFICITY_REFERENCE_Z, "max_cells": c.STATE_SPECIFICITY_MAX_CELLS,
        "short_max_null": c.STATE_SPECIFICITY_SHORT_MAX_NULL, "majority": c.STATE_SPECIFICITY_MAJORITY}


def test_panel_columns_read_from_a_backed_matrix_equal_the_in_memory_ones(tmp_path):
    import anndata as ad

    counts, _, names = _population()
    ad.AnnData(counts, var=pd.DataFrame(index=names)).write_h5ad(tmp_path / "x.h5ad")
    backed = ad.read_h5ad(tmp_path / "x.h5ad", backed="r")
    rows = np.arange(5, counts.shape[0], 3)
    columns = np.array([0, 7, 38, 39, 500])
    assert state_expression.holds_counts(backed.X, rows, chunk_size=40)
    params = state_params.SelfTrainParams()
    _, panel, _ = state_expression.log_expression_chunked(backed.X, rows, params, panel_columns=columns, chunk_size=40)
    _, expected, _ = state_expression.log_expression_chunked(counts, rows, params, panel_columns=columns)
    assert (panel != expected).nnz == 0


def test_short_panel_does_not_seed_a_cluster_where_many_background_genes_are_up():
    # the demo without M-MDSCs: a monocyte cluster with 2 of 4 panel genes up and HLA down, but 29 % of the matched
    # background genes up as well (a cluster that differs from its reference globally) seeded M_MDSC (16 % of the
    # monocytes) until short panels needed a low null rate
    result = {"n_measured": 4, "n_up": 2, "null_rate": 0.29, "pvalue": 0.33, "n_down_measured": 1, "n_down": 1}
    assert not specificity.specific(result)
    assert specificity.specific({**result, "null_rate": 0.05})
    one_gene = {"n_measured": 3, "n_up": 1, "null_rate": 0.02, "pvalue": 0.06, "n_down_measured": 0, "n_down": 0}
    assert specificity.specific(one_gene)
    assert not specificity.specific({**one_gene, "null_rate": STATE_SPECIFICITY_SHORT_MAX_NULL + 0.01})


def test_short_panel_is_one_definition_of_measured_genes():
    """A panel is short by its measured genes, for the panel, the reference cells and the seeding rule alike: a
    long library list of which the data measure few genes is short, a short list fully measured is short."""
    from hcctme._constants import STATE_SPECIFICITY_MIN_GENES

    k = STATE_SPECIFICITY_MIN_GENES
    assert specificity.is_short(k - 1) and not specificity.is_short(k)
    counts, groups, names = _population()
    # LONG: 12 library genes, of which only 3 are in the data (the others are unknown symbols)
    long_list = [f"G{i}" for i in range(3)] + [f"ABSENT{i}" for i in range(9)]
    panel = _panel(counts, names, {"LONG": long_list, "FULL": [f"G{i}" for i in range(40, 40 + k)]})
    assert panel.state_columns["LONG"].size == 3 and panel.state_columns["FULL"].size == k
    assert specificity.short_panel(panel, "LONG") and not specificity.short_panel(panel, "FULL")
    z = np.where(groups == 1, 1.0, np.where(groups == 2, 0.5, -1.0))
    # the short panel's reference is all other cells; the full panel's the clusters that do not score for it
    assert specificity.reference_rows(groups, z, 1, short=specificity.short_panel(panel, "LONG")).size \
        == np.sum(groups != 1)
    assert set(groups[specificity.reference_rows(groups, z, 1, short=specificity.short_panel(panel, "FULL"))]) == {0}
    auroc, detected = specificity.auroc_against(sp.csr_matrix(panel.X), np.flatnonzero(groups == 1),
                                                np.flatnonzero(groups != 1))
    test = specificity.gene_test(auroc, panel, "LONG", detected)
    assert test["n_measured"] == 3 and test["n_up"] == 3 and specificity.specific(test)


def _sibling_population():
    """Cluster 1 expresses a long list K (20 genes, G0 among them); cluster 2 the short panel T (G0-G3: G0 shared
    with K, G1-G3 its own); cluster 3 only G0; cluster 0 none of them."""
    rng = np.random.default_rng(11)
    groups = np.repeat([0, 1, 2, 3], [300, 100, 100, 40])
    log_mu = np.tile(rng.normal(-1.0, 1.0, 600), (540, 1))
    log_mu[groups == 1, 10:30] += 1.5
    log_mu[np.isin(groups, [1, 3]), 0] += 2.5
    log_mu[groups == 2, 0:4] += 1.5
    counts = sp.csr_matrix(rng.poisson(np.exp(log_mu)).astype(np.float32))
    names = pd.Index([f"G{i}" for i in range(600)])
    panel = _panel(counts, names, {"T": ["G0", "G1", "G2", "G3"], "K": ["G0", *(f"G{i}" for i in range(10, 30))]})
    return groups, panel


def auroc_of(panel, groups: np.ndarray, cluster: int) -> np.ndarray:
    """The panel genes' AUROC of a cluster against cluster 0."""
    return specificity.auroc_against(sp.csr_matrix(panel.X), np.flatnonzero(groups == cluster),
                                     np.flatnonzero(groups == 0))[0]


def test_short_panel_read_through_a_sibling_seeds_the_sibling():
    """A short panel whose only up gene in a cluster is a sibling's, where that sibling scores higher, reads the
    sibling (deep_10x seed 401: Kupffer cells, KUPFFER mean z 0.90, seeded the unplanted TAM1_FOLR2 at 0.69 through
    FOLR2): the cluster seeds the sibling where the sibling's genes are up, "none of these" where they are not; a
    cluster where the panel's own genes are up keeps the panel. Where the sibling scores lower, the cluster seeds the
    sibling if the sibling's own test passes there (deep_10x seed 701), and keeps the panel if it does not."""
    groups, panel = _sibling_population()
    ids = ["T", "K"]
    z = np.repeat(np.array([[-0.5, -0.5], [0.7, 0.9], [1.2, 0.1], [0.7, 0.9]]), [300, 100, 100, 40], axis=0)
    labels = np.where(groups > 0, "T", state_seeds.NONE_CLASS).astype(object)
    out, report = state_seeds.confirm_seeds(labels, groups, ids, panel, z)
    assert (out[groups == 1] == "K").all() and (out[groups == 2] == "T").all()
    assert (out[groups == 3] == state_seeds.NONE_CLASS).all()  # only G0 up: K's genes are not up there as a group
    assert report["T"]["read_through"] == "K" and report["T"]["seeded"] and report["K"]["seeded"]
    assert report["T"]["clusters_declined"] == 2 and report["K"]["clusters_tested"] == 2
    # the sibling scoring lower than the panel: its own genes up (cluster 1) take the cluster, only the shared
    # gene up (cluster 3) leaves it to the panel (one gene up suffices)
    lower = z.copy()
    lower[np.isin(groups, [1, 3]), 1] = 0.6
    out, report = state_seeds.confirm_seeds(labels, groups, ids, panel, lower)
    assert (out[groups == 1] == "K").all() and (out[groups == 3] == "T").all()
    assert report["T"]["read_through"] == "K" and report["T"]["clusters_declined"] == 1
    # read_through names the holder whatever its score; the caller compares the scores
    assert specificity.read_through(auroc_of(panel, groups, 1), panel, "T", ids, np.array([0.7, 0.6])) == "K"
    # an up gene of the panel the sibling does not hold: no read-through
    auroc, _ = specificity.auroc_against(sp.csr_matrix(panel.X), np.flatnonzero(groups == 1),
                                         np.flatnonzero(groups == 0))
    assert specificity.read_through(auroc, panel, "T", ids, np.array([0.7, 0.9])) == "K"
    own = auroc.copy()
    own[panel.state_columns["T"]] = 0.8
    assert specificity.read_through(own, panel, "T", ids, np.array([0.7, 0.9])) is None
    assert specificity.read_through(np.full_like(auroc, 0.5), panel, "T", ids, np.array([0.7, 0.9])) is None


def test_a_short_panel_tested_in_its_best_cluster_reads_a_sibling_there():
    """Where the population keeps the mixture's calls, a short panel tested in its best cluster is declined there when
    its only up gene is a sibling's that scores at least as high (the read-through rule of the cluster seeds), and
    kept where its own genes are up."""
    groups, panel = _sibling_population()
    ids = ["T", "K"]
    z = np.repeat(np.array([[-0.5, -0.5], [0.7, 0.9], [0.1, 0.1], [0.2, 0.2]]), [300, 100, 100, 40], axis=0)
    mixture = np.where(groups == 1, "T", "").astype(object)  # T called in K's cluster, where only G0 is up
    report = state_seeds.untested_report(ids)
    state_seeds.tested_where_best(report, mixture, groups, ids, panel, z, min_cells=10)
    assert specificity.specific(report["T"])  # one gene up: the panel's own test passes there
    assert report["T"]["read_through"] == "K" and not report["T"]["seeded"]
    assert report["T"]["clusters_tested"] == 1 and report["T"]["clusters_declined"] == 1
    assert report["K"] == state_seeds.untested_report(ids)["K"]  # the mixture calls no cell K: not tested
    own = z.copy()
    own[groups == 2, 0] = 1.2  # T highest in its own cluster (G0-G3 up)
    kept = state_seeds.untested_report(ids)
    state_seeds.tested_where_best(kept, mixture, groups, ids, panel, own, min_cells=10)
    assert kept["T"]["seeded"] and "read_through" not in kept["T"]


def test_states_no_cluster_was_a_candidate_for_are_tested_in_their_best_cluster():
    """Too few seeds for the classifier: the mixture's calls of a state no cluster was a candidate for are kept only
    where its highest-scoring cluster passes the test (generator 10x seed 200 with ENDO_ONCOFETAL_PLVAP removed: the
    mixture called 35 of the 228 endothelial cells it, no cluster was a candidate, and all 35 calls were kept)."""
    counts, groups, names = _population()
    panel = _panel(counts, names, {"S": [f"G{i}" for i in range(40)], "T": [f"G{i}" for i in range(100, 140)],
                                   "U": [f"G{i}" for i in range(200, 240)]})
    ids = ["S", "T", "U"]
    z = np.zeros((groups.size, 3))
    z[groups == 1, 0] = 1.0  # S highest in the cluster of its programme
    z[groups == 2, 1] = 1.0  # T highest in the narrow cluster, where its genes are not up
    z[groups == 0] = -0.5
    mixture = np.full(groups.size, "", dtype=object)
    mixture[np.flatnonzero(groups == 1)[:20]] = "S"
    mixture[np.flatnonzero(groups == 2)[:20]] = "T"  # U: no call
    report = state_seeds.untested_report(ids)
    state_seeds.tested_where_best(report, mixture, groups, ids, panel, z, min_cells=10)
    assert report["S"]["seeded"] and report["S"]["clusters_tested"] == 1 and report["S"]["n_up"] >= 15
    assert not report["T"]["seeded"] and report["T"]["clusters_declined"] == 1
    assert report["U"] == state_seeds.untested_report(ids)["U"]
    # a state a cluster was already tested for keeps its record
    tested = state_seeds.untested_report(ids)
    tested["T"].update(clusters_tested=1, seeded=True)
    state_seeds.tested_where_best(tested, mixture, groups, ids, panel, z, min_cells=10)
    assert tested["T"]["seeded"] and tested["T"]["clusters_tested"] == 1
    # a one-cell cluster scoring highest (an outlier) is passed over for the best cluster of at least min_cells
    outlier = groups.copy()
    outlier[0] = 3
    z_outlier = z.copy()
    z_outlier[0, 0] = 3.0
    with_outlier = state_seeds.untested_report(ids)
    state_seeds.tested_where_best(with_outlier, mixture, outlier, ids, panel, z_outlier, min_cells=10)
    assert with_outlier["S"]["seeded"] and with_outlier["S"]["n_up"] >= 15
    # a best cluster with fewer reference cells than min_cells is not tested: T highest in the 280-cell cluster 0,
    # whose reference is the 120 cells of clusters 1 and 2
    z_large = np.zeros_like(z)
    z_large[groups == 0, 1] = 1.0
    large = state_seeds.untested_report(ids)
    state_seeds.tested_where_best(large, mixture, groups, ids, panel, z_large, min_cells=121)
    assert large["T"] == state_seeds.untested_report(ids)["T"]
    state_seeds.tested_where_best(large, mixture, groups, ids, panel, z_large, min_cells=120)
    assert large["T"]["clusters_tested"] == 1


def _rank_blind_population(shift: float, second: float):
    """Every cell expresses G0 highly; cluster 1 raises it by ``shift`` (log), cluster 2 by ``second``; G1 and G2
    (the panel's other genes) are noise; cluster 3 raises ten other genes."""
    rng = np.random.default_rng(5)
    groups = np.repeat([0, 1, 2, 3], [240, 80, 40, 80])
    log_mu = np.tile(rng.normal(-1.0, 1.0, 600), (440, 1))
    log_mu[:, 0] = 2.0
    log_mu[groups == 1, 0] += shift
    log_mu[groups == 2, 0] += second
    log_mu[groups == 3, 50:60] += 2.0
    counts = sp.csr_matrix(rng.poisson(np.exp(log_mu)).astype(np.float32))
    names = pd.Index([f"G{i}" for i in range(600)])
    return groups, _panel(counts, names, {"P": ["G0", "G1", "G2"], "L": [f"G{i}" for i in range(100, 140)]})


def test_a_short_panel_no_cluster_seeds_is_looked_for_by_its_genes_expression():
    """A short panel that confirm_seeds left unseeded: the "none of these" clusters high in its genes' mean log
    expression seed it where one gene is up at AUROC >= 0.75 (release 2.16); a high cluster that fails (G0 at 0.70:
    the one-gene rule alone passes it) is left out of the seeds; cells the mixture seeds another state keep their
    seed; where no cluster passes, seeds and report stay as they were."""
    ids = ["P", "L"]
    z = np.zeros((440, 2))  # the rank score does not follow G0
    none = np.full(440, state_seeds.NONE_CLASS, dtype=object)
    params = state_params.SelfTrainParams()
    groups, panel = _rank_blind_population(1.0, 0.5)  # G0 AUROC 0.99 in cluster 1, 0.70 in cluster 2
    mixture = np.full(440, "", dtype=object)
    mixture[np.flatnonzero(groups == 1)[:3]] = "L"
    report = state_seeds.untested_report(ids)
    out = state_seeds.expression_seeds(none.copy(), none, mixture, groups, z, ids, panel, report, params)
    assert report["P"]["seeded"] and report["P"]["expression_route"]
    assert report["P"]["clusters_tested"] == 2 and report["P"]["clusters_declined"] == 1
    assert (out[groups == 1][3:] == "P").all() and (out[groups == 1][:3] == state_seeds.NONE_CLASS).all()
    assert (out[groups == 2] == "").all()  # high, failed: no seed, not "none of these"
    assert (out[np.isin(groups, [0, 3])] == state_seeds.NONE_CLASS).all()
    assert report["L"] == state_seeds.untested_report(ids)["L"]  # a long list: not looked for this way
    # G0 up too little in every cluster (0.72 and 0.57): seeds and report as they were
    groups, weak = _rank_blind_population(0.25, 0.08)
    report = state_seeds.untested_report(ids)
    out = state_seeds.expression_seeds(none.copy(), none, mixture, groups, z, ids, weak, report, params)
    assert (out == none).all() and report == state_seeds.untested_report(ids)
    # a state confirm_seeds seeded is left alone
    report = state_seeds.untested_report(ids)
    report["P"]["seeded"] = True
    out = state_seeds.expression_seeds(none.copy(), none, mixture, groups, z, ids, panel, report, params)
    assert (out == none).all() and "expression_route" not in report["P"]


def test_a_majority_cluster_whose_state_is_declined_seeds_none_with_its_calls():
    """A cluster the majority rule left without a seed (most of its cells the mixture's calls of a state not high
    there) seeds "none of these" where the state's genes are not up, its calls of that state included (10x
    generator seed 100 with CD8_TEFF removed: a cluster of naive T cells called progenitor by the mixture); where
    they are up it stays without a seed (cells on the state's continuum)."""
    counts, groups, names = _population()
    panel = _panel(counts, names, {"S": [f"G{i}" for i in range(40)]})
    none = state_seeds.NONE_CLASS
    z = np.where(groups > 0, 1.0, -0.5)[:, None]
    mixture = np.where((groups > 0) & (np.arange(groups.size) % 4 > 0), "S", "").astype(object)
    labels = np.where(groups == 1, "S", np.where(groups == 2, "", none)).astype(object)
    summary = state_seeds.summarise(groups, z, ["S"], mixture, state_params.SelfTrainParams())
    out, unbacked = state_seeds.unbacked_majorities(labels, summary, ["S"], panel, z, 10)
    assert (out[groups == 2] == none).all() and (out[groups != 2] == labels[groups != 2]).all()
    np.testing.assert_array_equal(unbacked, (groups == 2) & (mixture == "S"))
    # its calls stay "none" seeds, those of other clusters do not
    called = mixture != ""
    seeds = state_seeds.combined_seeds(out, np.where(called, "S", "").astype(object), called, unbacked)
    assert (seeds[groups == 2] == none).all() and (seeds[(groups == 0) & ~called] == none).all()
    assert (seeds[groups == 1] == "S").all()
    assert (state_seeds.combined_seeds(out, mixture, called)[(groups == 2) & called] == "").all()
    # the broad cluster (S's genes up) without a seed stays so; so does a cluster under min_cells
    labels[groups == 1] = ""
    out, unbacked = state_seeds.unbacked_majorities(labels, summary, ["S"], panel, z, 10)
    assert (out[groups == 1] == "").all() and not unbacked[groups == 1].any()
    out, unbacked = state_seeds.unbacked_majorities(labels, summary, ["S"], panel, z, 61)
    assert (out == labels).all() and not unbacked.any()


def test_a_cluster_seeded_by_a_later_candidate_is_not_left_undecided(monkeypatch):
    """A cluster whose first candidate is declined as undecided (median gene up) and whose next candidate passes
    seeds the next candidate, also where the first state is seeded by another cluster (before: no seed)."""
    counts, groups, names = _population()
    panel = _panel(counts, names, {"S": [f"G{i}" for i in range(40)], "T": [f"G{i}" for i in range(100, 140)]})
    ids = ["T", "S"]
    outcomes = {(1, "T"): None, (1, "S"): "S", (2, "T"): "T"}

    def confirmed(state, members, groups, cluster, z, ids, panel, report, only=None):
        outcome = outcomes[(cluster, state)]
        if outcome is not None:
            report[outcome]["seeded"] = True
        return outcome, {"undecided": outcome is None}

    monkeypatch.setattr(state_seeds, "_confirmed", confirmed)
    monkeypatch.setattr(specificity, "undecided", lambda test: test["undecided"])
    labels = np.where(groups == 0, state_seeds.NONE_CLASS, "T").astype(object)
    z = np.zeros((groups.size, 2))
    out, report = state_seeds.confirm_seeds(labels, groups, ids, panel, z, {0: [], 1: ["T", "S"], 2: ["T"]})
    assert (out[groups == 1] == "S").all() and (out[groups == 2] == "T").all()
    assert report["S"]["seeded"] and report["T"]["seeded"]
    # a cluster whose candidates are all declined, the first as undecided, is no seed where that state is seeded
    outcomes[(1, "S")] = None
    out, _ = state_seeds.confirm_seeds(labels, groups, ids, panel, z, {0: [], 1: ["T", "S"], 2: ["T"]})
    assert (out[groups == 1] == "").all() and (out[groups == 2] == "T").all()
