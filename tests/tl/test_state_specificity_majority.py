"""The majority route of the specificity test and the undecided clusters of confirm_seeds (issue 13, Villani pDC)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import scipy.sparse as sp
from scipy.stats import binom

from hcctme._constants import STATE_SPECIFICITY_ALPHA, STATE_SPECIFICITY_AUROC
from hcctme.tl import _state_expression as state_expression
from hcctme.tl import _state_seeds as state_seeds
from hcctme.tl import _state_specificity as specificity

N_STATE = 16  # genes G0-G15 are the signature S


def _lineages(seed: int = 1, n_genes: int = 600):
    """Counts of a population of two lineages; S's genes G0-G8 up in the second.

    Cluster 0 (160 cells): the reference lineage. Clusters 1 and 2 (60 cells each): a second lineage, half of all
    other genes up (log +1.2); S's genes G0-G8 up strongly in cluster 1 (+3) and as far as the lineage's genes in
    cluster 2 (+1.4). Cluster 3 (60 cells): a narrow programme, G0, G1 and ten genes outside S up (+3).
    """
    rng = np.random.default_rng(seed)
    groups = np.repeat([0, 1, 2, 3], [160, 60, 60, 60])
    log_mu = np.tile(rng.normal(0.0, 1.0, n_genes), (groups.size, 1))
    lineage_genes = rng.permutation(np.arange(N_STATE, n_genes))[: (n_genes - N_STATE) // 2]
    log_mu[np.ix_(np.isin(groups, [1, 2]), lineage_genes)] += 1.2
    log_mu[np.ix_(groups == 1, np.arange(9))] += 3.0
    log_mu[np.ix_(groups == 2, np.arange(9))] += 1.4
    log_mu[np.ix_(groups == 3, np.r_[0, 1, N_STATE:N_STATE + 10])] += 3.0
    counts = sp.csr_matrix(rng.poisson(np.exp(log_mu)).astype(np.float32))
    names = pd.Index([f"G{i}" for i in range(n_genes)])
    columns, positions, background, down = specificity.panel_columns(
        names, {"S": [f"G{i}" for i in range(N_STATE)]}, n_background=400)
    panel = specificity.build_panel(sp.csc_matrix(state_expression.log_expression(counts)[:, columns]), positions,
                                    background, down)
    return panel, groups


def _test(panel, groups, cluster):
    auroc, detected = specificity.auroc_against(panel.X, np.flatnonzero(groups == cluster),
                                                np.flatnonzero(groups == 0))
    return auroc, specificity.gene_test(auroc, panel, "S", detected)


def test_majority_route_seeds_a_lineage_whose_background_is_up_too():
    """Half of the background genes are up in the second lineage: 9 of S's 16 genes up is not significant against
    that rate (binomial), but S's median gene is up far beyond the background genes (AUROC 0.99)."""
    panel, groups = _lineages()
    _, test = _test(panel, groups, 1)
    assert test["n_measured"] == 16 and test["n_up"] == 9
    assert test["null_rate"] > 0.3 and test["pvalue"] > 3 * STATE_SPECIFICITY_ALPHA  # the binomial route declines
    assert test["majority_auroc"] > 0.95 and test["majority_pvalue"] < 1e-12
    assert specificity.specific(test) and not specificity.specific({**test, "majority_pvalue": 1.0})


def test_majority_test_is_the_order_statistic_of_matched_background_genes():
    panel, groups = _lineages()
    auroc, test = _test(panel, groups, 2)
    cols = panel.state_columns["S"]
    level = np.sort(auroc[cols])[::-1][7]  # the 8th highest of 16: the median gene
    bg_bins = panel.bins[panel.background]
    rate = np.mean([np.mean(auroc[panel.background][bg_bins == b] >= level) for b in panel.bins[cols]])
    assert test["majority_auroc"] == level and np.isclose(test["majority_null_rate"], rate)
    assert np.isclose(test["majority_pvalue"], binom.sf(7, 16, rate))
    # cluster 2: S's median gene up, but no further than the lineage's genes: declined by both routes
    assert STATE_SPECIFICITY_AUROC <= level < 0.75 and test["majority_pvalue"] > 3 * STATE_SPECIFICITY_ALPHA
    assert not specificity.specific(test) and specificity.undecided(test)


def test_a_few_shared_genes_leave_the_median_gene_down():
    """The narrow programme (2 of S's 16 genes up at AUROC ~1): the median gene is not up, p is 1, and the cluster is
    "none of these", not undecided."""
    panel, groups = _lineages()
    _, test = _test(panel, groups, 3)
    assert test["n_up"] == 2 and test["majority_auroc"] < 0.5 and test["majority_pvalue"] == 1.0
    assert not specificity.specific(test) and not specificity.undecided(test)
    short = {"n_measured": 3, "n_up": 0, "null_rate": 0.5, "pvalue": 1.0, "majority_auroc": 0.9,
             "majority_null_rate": 0.5, "majority_pvalue": 0.5, "n_down_measured": 0, "n_down": 0}
    assert not specificity.undecided(short)  # a short panel has its own rules


def test_undecided_cluster_of_a_seeded_state_is_left_unlabelled():
    """S is seeded in cluster 1; cluster 2, which expresses S's genes without significance, is neither a seed of S nor
    of "none of these"; the narrow cluster 3 is "none of these". Without a seed of S anywhere, cluster 2 is "none"."""
    panel, groups = _lineages()
    labels = np.where(groups > 0, "S", state_seeds.NONE_CLASS).astype(object)
    z = np.where(groups > 0, 1.0, -0.5)[:, None]
    out, report = state_seeds.confirm_seeds(labels, groups, ["S"], panel, z)
    assert (out[groups == 1] == "S").all() and (out[groups == 2] == "").all()
    assert (out[(groups == 0) | (groups == 3)] == state_seeds.NONE_CLASS).all()
    assert report["S"]["seeded"] and report["S"]["clusters_tested"] == 3 and report["S"]["clusters_declined"] == 2
    without_seed = np.where(groups >= 2, "S", state_seeds.NONE_CLASS).astype(object)
    out, report = state_seeds.confirm_seeds(without_seed, groups, ["S"], panel, z)
    assert (out == state_seeds.NONE_CLASS).all() and not report["S"]["seeded"]
