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


def test_without_the_classifier_a_state_is_listed_where_every_seeding_drops_its_calls():
    """A population no seeding trains the classifier for is called by the mean of its seedings' gated mixture calls
    (release 2.31): its states are listed where every seeding's test drops them (``mixture_kept`` 0), whatever the
    first seeding's test (the record's) read."""
    counts = {"cd4_t": {"TREG": 25, "unassigned": 39}, "cd8_t": {"CD8_TEFF": 12, "CD8_TSTR": 7}}
    tests = {"cd4_t": {"TREG": TESTED},  # the first seeding declines TREG, two of nine keep it
             "cd8_t": {"CD8_TEFF": {"clusters_tested": 0, "clusters_declined": 0, "seeded": False},
                       "CD8_TSTR": TESTED}}
    seedings = {"cd4_t": {"seedings": 9, "mixture_kept": {"TREG": 2 / 9}},
                "cd8_t": {"seedings": 3, "mixture_kept": {"CD8_TEFF": 0.0, "CD8_TSTR": 0.0}}}
    assert declined_states(counts, tests, seedings) == {"cd8_t": {"CD8_TEFF": 12, "CD8_TSTR": 7}}
    assert declined_states(counts, tests) == {"cd4_t": {"TREG": 25}, "cd8_t": {"CD8_TSTR": 7}}  # a trained population


def test_with_the_classifier_a_state_is_listed_where_no_seeding_has_a_class_for_it():
    """Sweep 61: a trained population's record read only the first seeding's test, so a state its calls hold (its
    class in 85 % of the 27 seedings averaged: 28 cells called) was listed as declined, with a warning that its
    calls were dropped."""
    counts = {"cd8_t": {"CD8_TEX_PROGENITOR": 20, "CD8_TSTR": 9, "CD8_TEFF": 30}}
    tests = {"cd8_t": {"CD8_TEX_PROGENITOR": TESTED, "CD8_TSTR": TESTED,
                       "CD8_TEFF": {**TESTED, "clusters_declined": 0, "seeded": True}}}
    seedings = {"cd8_t": {"seedings": 27, "classes": {"CD8_TEX_PROGENITOR": 0.85, "CD8_TSTR": 0.0, "CD8_TEFF": 1.0}}}
    calls = {"cd8_t": {"CD8_TEX_PROGENITOR": 28, "CD8_TEFF": 31, "unassigned": 40}}
    assert declined_states(counts, tests, seedings, calls) == {"cd8_t": {"CD8_TSTR": 9}}
    # a state the first seeding declines that some seedings' classes hold, but the mean calls in no cell: dropped
    assert declined_states(counts, tests, seedings, {"cd8_t": {"CD8_TEFF": 31}}) == {
        "cd8_t": {"CD8_TEX_PROGENITOR": 20, "CD8_TSTR": 9}}
