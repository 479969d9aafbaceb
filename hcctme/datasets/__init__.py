"""Simulated HCC cohorts with ground truth, and the demo cohort."""

from hcctme.datasets._simulate import (
    CELL_TYPES,
    DEFAULT_EFFECTS,
    PLANTED_BARRIER_STATES,
    STATE_IDS,
    STATE_PARENT,
    VALID_EFFECTS,
    demo,
    simulate_cohort,
)

__all__ = ["CELL_TYPES", "DEFAULT_EFFECTS", "PLANTED_BARRIER_STATES", "STATE_IDS", "STATE_PARENT", "VALID_EFFECTS",
           "demo", "simulate_cohort"]
