"""The composition test's own false-positive rate on null cohorts of the independent generator (slow).

Cohorts of ``tests/tl/_state_generator.py`` (4 vs 4 patients, 200 cells each, arms drawn from one distribution,
with per-patient composition, stress share, batch and depth) tested on their true states within each parent
population (``benchmarks/compare_null_generator.py``, 2,000 cohorts in README). A rate is accepted unless a
one-sided binomial test puts it above 0.05 at the 1 % level. A parent with two levels has two mirror-image features
(``arcsin(sqrt(1 - p)) = pi / 2 - arcsin(sqrt(p))``, one p-value): each p-value of a cohort's parent counts once.

The per-parent check can fail: the default's empirical-Bayes prior, shared across parents of different sizes, fails
it in 4 of 8 blocks of 240 cohorts (seeds 10000-11919; CD4 T cells 0.070, endothelial cells 0.066 over 2,000
cohorts), which is why only ``wls`` and ``ols`` are held to it.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

from benchmarks.compare_null_generator import cohort_pvalues

from ._compare_data import fpr_exceedance

pytestmark = pytest.mark.slow

COHORTS = 240


@pytest.fixture(scope="module")
def null_pvalues() -> pd.DataFrame:
    warnings.simplefilter("ignore")
    tables = [cohort_pvalues(12_000 + i, "10x", 200, 8) for i in range(COHORTS)]
    table = pd.concat(tables, ignore_index=True).dropna(subset=["pvalue"])
    return table.assign(rounded=table["pvalue"].round(10)).drop_duplicates(["seed", "method", "group", "rounded"])


def test_default_composition_test_keeps_the_nominal_rate_pooled(null_pvalues):
    moderated = null_pvalues[null_pvalues["method"] == "moderated"]["pvalue"]
    assert len(moderated) > 3000
    rate, p_exceed = fpr_exceedance(moderated)
    assert p_exceed > 0.01, f"moderated composition FPR {rate:.3f} over {len(moderated)} tests"
    # the p-values spread over (0, 1): a test that never rejects would pass the bound above
    assert 0.4 < np.mean(moderated < 0.5) < 0.6


@pytest.mark.parametrize("method", ["wls", "ols"])
def test_tests_without_the_shared_prior_keep_the_rate_in_every_parent(null_pvalues, method):
    """Without the prior shared across parents the rate holds per parent (the default's: 0.033-0.070, README)."""
    table = null_pvalues[null_pvalues["method"] == method]
    assert table["group"].nunique() == 6
    for parent, group in table.groupby("group"):
        assert len(group) >= 0.9 * COHORTS  # a cohort can lack a two-level parent's second level
        rate, p_exceed = fpr_exceedance(group["pvalue"])
        assert p_exceed > 0.01, f"{method} FPR {rate:.3f} in {parent} over {len(group)} tests"


def test_the_arcsine_drift_check_rarely_warns_where_the_cells_are_not_tied_to_the_arm(null_pvalues):
    """The generator's patients hold 200 cells each, split among parents by per-patient composition, the same in both
    arms: the check of tl/_arcsine_drift.py finds a gap from the cells alone in few tests (README: 7 of 4,176 tests in
    5 of 200 cohorts on seeds 10000-10199; here seeds 12000-12239), while on cohorts whose arms differ in cells it
    warns of nearly every one (tests/tl/test_compare_arcsine_drift.py)."""
    moderated = null_pvalues[null_pvalues["method"] == "moderated"]
    assert moderated["warned"].mean() <= 0.005, moderated["warned"].sum()
    assert moderated.loc[moderated["warned"], "seed"].nunique() <= 0.06 * COHORTS
