"""The composition test's warning where a rare state's arcsine proportion drifts with the samples' cells.

Null cohorts of ``benchmarks/compare_rare_null.py`` (numpy, not the simulator): 10 vs 10 patients whose arms differ in
cells per sample alone.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
from anndata import AnnData
from scipy import stats

import hcctme
from benchmarks.compare_rare_null import null_cohort
from hcctme.tl import _arcsine_drift

KW = dict(condition_key="response", sample_key="sample", reference="responder", features="composition",
          groupby="state")


def _drift_warnings(adata, **kwargs) -> list[warnings.WarningMessage]:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        hcctme.tl.compare(adata, **{**KW, **kwargs})
    return [w for w in caught if "arcsine proportion of a state" in str(w.message)]


@pytest.mark.parametrize(("n", "p"), [(1, 0.3), (7, 0.02), (60, 0.02), (180, 0.02), (500, 0.5), (5000, 0.001)])
def test_expected_arcsine_is_the_binomial_mean(n, p):
    k = np.arange(n + 1)
    exact = float(np.sum(stats.binom.pmf(k, n, p) * np.arcsin(np.sqrt(k / n))))
    assert _arcsine_drift.expected_arcsine(n, p) == pytest.approx(exact, rel=1e-10, abs=1e-15)


def test_a_rare_states_arcsine_mean_rises_with_the_cells_and_a_shift_raises_the_rate():
    assert _arcsine_drift.expected_arcsine(60, 0.02) == pytest.approx(0.1156, abs=1e-4)
    assert _arcsine_drift.expected_arcsine(180, 0.02) == pytest.approx(0.1357, abs=1e-4)
    assert _arcsine_drift.false_positive_rate(0.0) == pytest.approx(0.05, abs=1e-12)
    assert _arcsine_drift.false_positive_rate(0.3) == pytest.approx(0.0612, abs=1e-3)
    assert _arcsine_drift.false_positive_rate(-0.3) == _arcsine_drift.false_positive_rate(0.3)


def test_arms_that_differ_in_cells_are_warned_of_and_recorded_where_the_state_is_rare():
    adata = null_cohort(0, per_arm=10, cells=(60, 180), share=0.02)
    caught = _drift_warnings(adata)
    assert len(caught) == 1
    message = str(caught[0].message)
    assert f"all/rare ({rare_share(adata):.1%} of its parent; resistor vs responder: 180 vs 60 cells per" in message
    assert "transform='logit'" in message
    assert caught[0].filename == __file__  # the warning names the user's call
    record = hcctme.get.params(adata, "hcctme_compare")["arcsine_drift"]
    rare = record.set_index("feature").loc["rare"]
    assert rare["share"] == pytest.approx(rare_share(adata))
    assert rare["cells_reference"] == 60 and rare["cells_other"] == 180
    assert rare["drift"] == pytest.approx(_arcsine_drift.expected_arcsine(180, rare_share(adata))
                                          - _arcsine_drift.expected_arcsine(60, rare_share(adata)))
    assert rare["drift"] > 0 and rare["expected_fpr"] >= _arcsine_drift.DRIFT_RATE


def rare_share(adata) -> float:
    return float((adata.obs["state"] == "rare").mean())


def test_equal_cells_a_common_state_and_the_logit_are_not_warned_of():
    assert not _drift_warnings(null_cohort(0, per_arm=10, cells=(120, 120), share=0.02))
    assert not _drift_warnings(null_cohort(0, per_arm=10, cells=(60, 180), share=0.3))
    adata = null_cohort(0, per_arm=10, cells=(60, 180), share=0.02)
    assert not _drift_warnings(adata, transform="logit")
    assert "arcsine_drift" not in hcctme.get.params(adata, "hcctme_compare")
    adata = null_cohort(0, per_arm=10, cells=(120, 120), share=0.02)
    _drift_warnings(adata)
    record = hcctme.get.params(adata, "hcctme_compare")["arcsine_drift"]
    assert isinstance(record, pd.DataFrame) and record.empty


def test_a_paired_design_reads_the_gap_within_each_patient():
    """Ten patients biopsied before (60 cells) and on treatment (180 cells), a 2 % state: the gap is read pairwise."""
    rng = np.random.default_rng(0)
    rows = []
    for i in range(10):
        for level, n in (("pre", 60), ("on", 180)):
            k = rng.binomial(n, rng.beta(4.0, 196.0))
            rows += [(f"P{i}_{level}", f"P{i}", level, "rare")] * k
            rows += [(f"P{i}_{level}", f"P{i}", level, "common")] * (n - k)
    obs = pd.DataFrame(rows, columns=["sample", "patient", "time", "state"])
    obs.index = obs.index.astype(str)
    adata = AnnData(X=sp.csr_matrix((len(obs), 1), dtype=np.float32), obs=obs)
    caught = _drift_warnings(adata, condition_key="time", patient_key="patient", reference="pre")
    assert len(caught) == 1 and "on vs pre: 180 vs 60 cells per sample" in str(caught[0].message)
    params = hcctme.get.params(adata, "hcctme_compare")
    assert params["paired"]
    rare = params["arcsine_drift"].set_index("feature").loc["rare"]
    share = float((obs["state"] == "rare").mean())
    assert rare["drift"] == pytest.approx(_arcsine_drift.expected_arcsine(180, share)
                                          - _arcsine_drift.expected_arcsine(60, share))
    # the standard error is that of the ten patients' differences, not of two independent arms (Welch)
    counts = pd.crosstab([obs["patient"], obs["time"]], obs["state"])
    values = np.arcsin(np.sqrt(counts["rare"] / counts.sum(axis=1))).unstack("time")
    diffs = values["on"] - values["pre"]
    assert rare["se"] == pytest.approx(diffs.std(ddof=1) / np.sqrt(10), rel=1e-9)
    welch = np.sqrt(values["on"].var(ddof=1) / 10 + values["pre"].var(ddof=1) / 10)
    assert abs(rare["se"] - welch) > 0.01 * welch


@pytest.mark.slow
def test_the_warning_follows_the_rate_over_null_cohorts():
    """200 null cohorts each. A 1 % state with 60 vs 180 cells per sample: the arcsine test calls it at p < 0.05 far
    above the nominal rate (0.10 over 400 cohorts in session 65's grid; the logit 0.023) and every cohort is warned of.
    120 cells in both arms: the rate is nominal and no cohort is warned of."""
    for cells, warned_share in (((60, 180), 1.0), ((120, 120), 0.0)):
        warned, pvalues = [], []
        for seed in range(200):
            adata = null_cohort(seed, per_arm=10, cells=cells, share=0.01)
            warned.append(bool(_drift_warnings(adata)))
            table = hcctme.get.compare(adata)
            pvalues.append(float(table.loc[table["feature"] == "rare", "pvalue"].iloc[0]))
        assert np.mean(warned) == warned_share, cells
        rate = np.mean(np.asarray(pvalues) < 0.05)
        assert (rate >= 0.075) if warned_share else (rate <= 0.06), (cells, rate)
