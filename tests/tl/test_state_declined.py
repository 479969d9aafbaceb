"""``declined_states``: the states whose mixture calls the specificity test of the self-training drops."""

from __future__ import annotations

from hcctme.tl._call_states import declined_states

TESTED = {"clusters_tested": 2, "clusters_declined": 2, "seeded": False}


def test_declined_state_with_mixture_calls_is_listed():
    counts = {"dendritic": {"DC_PDC": 120, "DC_CDC2": 69, "unassigned": 195}}
    tests = {"dendritic": {"DC_PDC": TESTED, "DC_CDC2": {**TESTED, "clusters_declined": 0, "seeded": True}}}
    assert declined_states(counts, tests) == {"dendritic": {"DC_PDC": 120}}


def test_untested_or_uncalled_states_are_not_listed():
    counts = {"cd4_t": {"TREG": 0, "unassigned": 90}, "cd8_t": {"CD8_TEFF": 12}}
    tests = {"cd4_t": {"TREG": TESTED},  # declined, but the mixture called no cell TREG: nothing dropped
             "cd8_t": {"CD8_TEFF": {"clusters_tested": 0, "clusters_declined": 0, "seeded": False}}}
    assert declined_states(counts, tests) == {}
