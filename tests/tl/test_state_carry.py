"""The self-training carries each seeded state to the genes that co-vary with its seeds (``carried``)."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from hcctme.tl import _state_expression as state_expression
from hcctme.tl import _state_params as state_params
from hcctme.tl import _state_seeds as state_seeds
from hcctme.tl import _state_selftrain as selftrain


def _population(seed: int = 0):
    """400 cells in 4 clusters: 0 and 3 in no state, 1 and 2 in state S, whose 20-gene programme (genes 0-19) the
    data carry; S's signature reads gene 0 only, raised in cluster 1 but not in cluster 2 (a cluster of the state
    that its short panel scores low). Two samples with a shift of every gene."""
    rng = np.random.default_rng(seed)
    n, n_genes = 400, 300
    groups = np.repeat([0, 1, 2, 3], 100)
    samples = np.tile(["a", "b"], n // 2)
    log_mu = np.tile(rng.normal(0.0, 0.7, n_genes), (n, 1)) + np.where(samples == "a", 0.3, 0.0)[:, None]
    log_mu[np.isin(groups, [1, 2]), 1:20] += 1.5
    log_mu[groups == 1, 0] += 1.5
    counts = sp.csr_matrix(rng.poisson(np.exp(log_mu)).astype(np.float32))
    z = np.where(groups == 1, 1.0, np.where(groups == 2, -0.1, -0.6))[:, None] + rng.normal(0, 0.3, (n, 1))
    return state_expression.log_expression(counts), groups, samples, z


def test_carried_score_reads_the_programme_where_the_panel_gene_is_low():
    X, groups, samples, z = _population()
    labels = np.where(groups == 1, "S", state_seeds.NONE_CLASS).astype(object)  # cluster 2 seeded "none"
    params = state_params.SelfTrainParams()
    carried = selftrain.carried(X, labels, groups, z, ["S"], samples, params)
    assert list(carried) == ["S"] and carried["S"].shape == (400,)
    scores = carried["S"][:, None]
    # the carried score reads the programme: clusters 1 and 2 far above 0 and 3, cluster 2 although S's one
    # signature gene is not raised there and its cells were seeded "none"
    means = [scores[groups == g, 0].mean() for g in range(4)]
    assert min(means[1], means[2]) > max(means[0], means[3]) + 1.5
    assert means[1] - means[2] < 0.5
    # centred within each sample (on its mean less the part its mean z predicts): the samples' shift of 0.3 on every
    # gene does not move it
    assert abs(scores[samples == "a", 0].mean() - scores[samples == "b", 0].mean()) < 0.02


def test_every_seeded_state_is_carried_and_unseeded_ones_are_not():
    """One column per state with enough seeds, in ``ids`` order, each independent of the others' seeds.

    The centring reads all the states' z-scores (release 2.35), so a column moves (here by ~1e-6) with the columns
    ``z`` holds, not with which states are seeded."""
    X, groups, samples, z = _population()
    labels = np.where(groups == 1, "S", np.where(groups == 2, "T", state_seeds.NONE_CLASS)).astype(object)
    params = state_params.SelfTrainParams()
    z2 = np.column_stack([z[:, 0], np.where(groups == 2, 1.0, -0.5)])
    both = selftrain.carried(X, labels, groups, z2, ["S", "T"], samples, params)
    alone = selftrain.carried(X, labels, groups, z2[:, :1], ["S"], samples, params)
    assert list(both) == ["S", "T"]
    np.testing.assert_allclose(both["S"], alone["S"], atol=1e-4)
    assert both["T"][groups == 2].mean() > both["T"][np.isin(groups, [0, 3])].mean() + 1.5
    labels[groups == 2] = ""  # T without seeds
    without_t = selftrain.carried(X, labels, groups, z2, ["S", "T"], samples, params)
    assert list(without_t) == ["S"]
    np.testing.assert_array_equal(without_t["S"], both["S"])


def test_no_carried_score_without_co_varying_genes():
    """A state whose seeds differ from the reference in no gene (a random cluster) gets no carried score."""
    rng = np.random.default_rng(1)
    n = 300
    counts = sp.csr_matrix(rng.poisson(2.0, (n, 200)).astype(np.float32))
    groups = np.repeat([0, 1, 2], 100)
    z = np.where(groups == 0, 0.5, -0.5)[:, None]
    labels = np.where(groups == 0, "S", state_seeds.NONE_CLASS).astype(object)
    scores = selftrain.carried(state_expression.log_expression(counts), labels, groups, z, ["S"], None,
                               state_params.SelfTrainParams())
    assert scores == {}


def test_none_seeds_placed_with_a_state_by_its_carried_score_are_no_seeds():
    """Cluster 2 holds state-S cells that S's one signature gene scores low; seeded "none", its cells are read on
    S's carried score (the whole programme) and leave the "none" seeds, while clusters 0 and 3 stay."""
    X, groups, samples, z = _population()
    labels = np.where(groups == 1, "S", state_seeds.NONE_CLASS).astype(object)
    carried = selftrain.carried(X, labels, groups, z, ["S"], samples, state_params.SelfTrainParams())
    purified = selftrain.purified_none(labels, carried)
    assert np.mean(purified[groups == 2] == "") > 0.95
    assert np.mean(purified[np.isin(groups, [0, 3])] == state_seeds.NONE_CLASS) > 0.95
    assert np.all(purified[groups == 1] == "S")
    assert labels[groups == 2][0] == state_seeds.NONE_CLASS  # input untouched


def test_purified_none_without_none_seeds_or_carried_scores_changes_nothing():
    labels = np.array(["S", "S", "", "T"], dtype=object)
    np.testing.assert_array_equal(selftrain.purified_none(labels, {"S": np.arange(4.0)}), labels)
    with_none = np.array(["S", state_seeds.NONE_CLASS, ""], dtype=object)
    np.testing.assert_array_equal(selftrain.purified_none(with_none, {}), with_none)
