"""Simulated HCC cohorts with ground truth, and the demo cohort."""

from hcctme.datasets._simulate import (
    BARRIER_STATES,
    CELL_TYPES,
    DEFAULT_EFFECTS,
    STATE_IDS,
    STATE_PARENT,
    VALID_EFFECTS,
    demo,
    simulate_cohort,
)

__all__ = ["BARRIER_STATES", "CELL_TYPES", "DEFAULT_EFFECTS", "STATE_IDS", "STATE_PARENT", "VALID_EFFECTS",
           "demo", "simulate_cohort"]
