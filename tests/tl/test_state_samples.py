"""The self-training's per-sample centring keeps the states patients differ in (tl/_state_expression.py).

Until release 2.35 the self-training centred each sample's expression on its mean. Where patients differ in their
states (responders and resistors), that took the difference away: on Sade-Feldman 2018 the exhausted clusters got
0 of 166 CD8_TEX_TERMINAL calls with ``sample_key``, 59 without. Each sample is now centred on its mean less the
part its cells' mean state scores predict (README, "Samples").
"""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

import hcctme
from hcctme.tl import _state_expression as state_expression

FIRST_HALF = [f"P{i:02d}" for i in range(4)]


def test_score_adjusted_means_remove_the_shift_and_keep_what_the_scores_explain():
    """Expression = scores x loadings + a per-sample shift: centred, the shift is gone and the states stay."""
    rng = np.random.default_rng(0)
    codes = rng.integers(0, 5, 400)
    z = rng.normal(size=(400, 3)) + rng.normal(0, 1.5, (5, 3))[codes]  # samples differ in their states
    loadings = rng.normal(size=(3, 20))
    shift = rng.normal(0, 2, (5, 20))
    X = z @ loadings + shift[codes]
    means = np.stack([X[codes == s].mean(axis=0) for s in range(5)])
    centre = state_expression.score_adjusted_means(sp.csr_matrix(X), codes, means, z)
    np.testing.assert_allclose(X - centre[codes], (z - z.mean(axis=0)) @ loadings, atol=1e-4)
    plain = X - means[codes]  # the old centring: the samples' states are gone with their shifts
    assert np.abs(plain - (z - z.mean(axis=0)) @ loadings).max() > 1.0


def test_one_sample_is_centred_on_its_mean():
    rng = np.random.default_rng(1)
    X = rng.normal(size=(50, 4))
    means = X.mean(axis=0, keepdims=True)
    centre = state_expression.score_adjusted_means(X, np.zeros(50, dtype=int), means, rng.normal(size=(50, 2)))
    np.testing.assert_array_equal(centre, means)


@pytest.mark.slow
def test_patients_that_differ_in_their_states_keep_their_calls_with_sample_key():
    """A generator cohort whose CD8 T cells of P00-P03 are all terminal-exhausted and P04-P07 have none of them.

    The generator's states are marked by another source's genes than the library's (tests/tl/_state_generator.py),
    with per-patient batch shifts; dropping cells makes the patients differ in their CD8 states as responders and
    non-responders do. CD8_TEX_TERMINAL recall with ``sample_key``: 0.45 centred on the samples' means (release
    2.34), 0.69 now, 0.99 without ``sample_key``.
    """
    from tests.tl._state_generator import generate

    adata = generate("10x", seed=11, n_patients=8, cells_per_patient=600)
    cd8 = (adata.obs["cell_type"] == "CD8+ T cells").to_numpy()
    terminal = (adata.obs["programme"] == "CD8_TEX_TERMINAL").to_numpy()
    first = adata.obs["patient"].isin(FIRST_HALF).to_numpy()
    adata = adata[~(cd8 & (terminal != first))].copy()
    hcctme.tl.score(adata)
    hcctme.tl.call_states(adata, cell_type_key="cell_type", sample_key="patient")
    truth = adata.obs["state_true"].astype(str).to_numpy() == "CD8_TEX_TERMINAL"
    called = adata.obs["hcctme_state"].astype(str).to_numpy() == "CD8_TEX_TERMINAL"
    assert (truth & called).sum() >= 0.6 * truth.sum()
    assert (truth & called).sum() >= 0.8 * called.sum()
