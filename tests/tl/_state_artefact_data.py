"""Seeded foreign-lineage marker scores for the artefact tests (shared by the artefact and model tests)."""

from __future__ import annotations

import numpy as np


def foreign_cohort(n: int = 600, seed: int = 4) -> tuple[np.ndarray, dict[str, float]]:
    """Two foreign-lineage marker scores near 0, each raised in 48 cells (8 %, under the per-marker cap).

    Marker A's cells carry its lineage's profile at 60-90 % of its own level (0.3-0.45 of 0.5), marker
    B's at 34-58 % (0.17-0.29 of 0.5; the rule needs a third): the A cells are further toward a foreign lineage.
    """
    rng = np.random.default_rng(seed)
    x = np.abs(rng.normal(0.0, 0.005, (n, 2)))
    x[:48, 0] = np.linspace(0.3, 0.45, 48)
    x[48:96, 1] = np.linspace(0.17, 0.29, 48)
    return x, {"MARKER_A": 0.5, "MARKER_B": 0.5}
