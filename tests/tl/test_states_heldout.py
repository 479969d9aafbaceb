"""State calling on generator settings never used in development (tests/tl/_state_generator.py: HELD_OUT).

The caller's rules and thresholds were set on the four SETTINGS (seeds 100-103); the issue-13 ECE target is stated
on held-out settings. These tests read seed 7 (8 patients x 500 cells) of three held-out settings, fixed before their
first run: continua and programme dropout raised (transitional_10x), a shallower Smart-seq with more stress
(shallow_smartseq), and 12 % doublets with 12 % ambient RNA (doublets_10x). README ("Evidence: an independent
generator") gives the benchmark figures over the fresh seeds 200-701.
"""

from __future__ import annotations

from dataclasses import replace

import pytest

from benchmarks.states_eval import called_cohort
from tests.tl._state_generator import HELD_OUT, SETTINGS, evaluate

# issue-13 per-state targets (recall >= 0.8, precision >= 0.85) reached on the development settings
REACHED = ["TREG", "KUPFFER", "TAM2_SPP1", "CD8_TEFF", "CD8_TEX_TERMINAL"]


def test_held_out_settings_are_new():
    for name, setting in HELD_OUT.items():
        assert name not in SETTINGS and setting.name == name
        # a held-out setting differs from every development setting in a parameter, not only in its name
        assert all(replace(setting, name=known.name) != known for known in SETTINGS.values())


@pytest.mark.slow
@pytest.mark.parametrize("setting", ["transitional_10x", "shallow_smartseq"])
def test_calls_and_calibration_hold_on_held_out_settings(setting):
    # measured (seed 7): ECE 0.031 / 0.021; ARI CD8 0.79 / 0.88, CD4 0.86 / 0.93, macrophages 0.80 / 0.84;
    # the REACHED states' recall 0.92-0.98, precision 0.90-0.97
    res = evaluate(called_cohort(setting, 7, 500, 8)[0])
    assert res["ece"] <= 0.05  # the issue-13 target
    assert res["ari"]["CD4+ T cells"] >= 0.8 and res["ari"]["Macrophages"] >= 0.75
    assert res["ari"]["CD8+ T cells"] >= 0.7
    reached = res["states"].loc[REACHED]
    assert (reached["recall"] >= 0.85).all() and (reached["precision"] >= 0.85).all(), reached


@pytest.mark.slow
def test_calls_of_cells_that_are_no_artefact_stay_calibrated_with_many_doublets():
    """12 % doublets: the ECE over all calls is over the target (0.074 on this seed, 0.075 over seeds 200-201),
    because the doublets the artefact rules miss are called with a confidence of about 0.9; over the calls of
    the cells that are no artefact it holds. Measured (seed 7): ECE over those calls 0.017, doublets left
    unassigned 0.77."""
    res = evaluate(called_cohort("doublets_10x", 7, 500, 8)[0])
    assert res["ece_clean"] <= 0.05
    assert res["ece"] > res["ece_clean"]
    assert res["artefacts"]["doublet"] >= 0.7


@pytest.mark.slow
def test_cells_in_no_state_of_a_small_population_are_not_called_with_the_states_confidence():
    """deep_10x seed 200 at 100 cells per patient (119 clean CD8 T cells for 4 states): the refit drops "none of
    these" (27 seeds, 15 of them naive-like cells), its two classes separate their seeds entirely, and release 2.37's
    temperature fit sharpened to its bound (0.05): 16 of the 18 clean naive-like cells called effector or terminal at
    a mean confidence of 0.93. Release 2.38 fits it with the none seeds at a uniform target
    (``_state_selftrain.temperature``): the same calls (two classes: the better reaches 0.5) at 0.65, while the right
    calls keep 0.96."""
    obs = called_cohort("deep_10x", 200, 100, 8)[0].obs
    calls, truth = obs["hcctme_state"].astype(str), obs["state_true"].astype(str)
    called = (obs["hcctme_state_context"].astype(str) == "cd8_t") & (calls != "unassigned")
    naive = called & (obs["programme"].astype(str) == "NAIVE_T") & (obs["artefact"].astype(str) == "none")
    confidence = obs["hcctme_state_confidence"]
    assert naive.sum() == 16
    assert confidence[naive].mean() < 0.75
    assert confidence[called & (calls == truth)].mean() > 0.9
