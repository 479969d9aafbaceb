"""A population of two states whose scores read their programmes poorly, for the self-training's tests."""

from __future__ import annotations

import numpy as np

from hcctme.tl import _state_expression as state_expression


def programme_population(seed: int, n: int = 600):
    """Counts of two states (40 programme genes each) and none, with scores that read 2 genes each."""
    import scipy.sparse as sp
    from scipy.special import ndtr

    rng = np.random.default_rng(seed)
    truth = rng.choice(np.array(["A", "B", "none"], dtype=object), size=n, p=[0.4, 0.4, 0.2])
    log_mu = np.tile(rng.normal(0.0, 1.0, 300), (n, 1))
    log_mu[:, :40] += 1.5 * (truth == "A")[:, None]
    log_mu[:, 40:80] += 1.5 * (truth == "B")[:, None]
    mu = np.exp(log_mu) / np.exp(log_mu).sum(axis=1, keepdims=True) * 2000
    X = state_expression.log_expression(sp.csr_matrix(rng.poisson(mu).astype(np.float32)))
    z = np.column_stack([(truth == s) * 1.0 + rng.normal(0, 0.8, n) for s in ("A", "B")])
    z = (z - z.mean(axis=0)) / z.std(axis=0)
    best = z.argmax(axis=1)
    confidence = ndtr(2 * (z.max(axis=1) - z.min(axis=1)) - 1) * ndtr(2 * z.max(axis=1))
    return X, z, best, confidence, truth
