"""benchmarks/states_size.py: the pooled ECE's interval over cohorts and each context's share of the gap."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from benchmarks.states_size import ece_interval, gap_by_context, pooled
from tests.tl._state_generator import expected_calibration_error


def _population(setting: str, seed: int, context: str, confidence: np.ndarray, right: np.ndarray,
                small: bool = True, size: int = 100) -> dict:
    """A row as :func:`benchmarks.states_size.populations` makes it."""
    return {"setting": setting, "seed": seed, "size": size, "context": context, "states": 2, "cells": right.size,
            "small": small, "calls": int(right.size), "right": int(right.sum()), "ece": np.nan, "ari": 0.5,
            "_confidence": np.asarray(confidence, dtype=float), "_right": np.asarray(right, dtype=bool)}


def _calibrated(n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    confidence = rng.uniform(0.5, 1.0, n)
    return confidence, rng.random(n) < confidence


def test_identical_cohorts_leave_no_spread_and_one_odd_cohort_widens_it():
    rng = np.random.default_rng(1)
    confidence, right = _calibrated(400, rng)
    same = pd.DataFrame([_population(s, 0, "cd8_t", confidence, right) for s in ("a", "b", "c", "d")])
    row = ece_interval(same, draws=200).loc[(100, True)]
    point = expected_calibration_error(confidence, right)
    assert row["cohorts"] == 4 and row["calls"] == 1600
    assert row["ece"] == pytest.approx(point) and row["ece_low"] == pytest.approx(point)
    assert row["ece_high"] == pytest.approx(point)
    # one overconfident cohort (confidence 0.95, a third right): the interval spans cohorts with and without it
    odd = pd.DataFrame([*same.to_dict("records"),
                        _population("e", 0, "cd8_t", np.full(400, 0.95), np.arange(400) % 3 == 0)])
    row = ece_interval(odd, draws=500).loc[(100, True)]
    assert row["ece_low"] < row["ece"] < row["ece_high"]
    assert row["ece_low"] <= point + 0.02 and row["ece_high"] > 0.3


def test_interval_is_per_size_and_listing_and_reproducible():
    rng = np.random.default_rng(2)
    rows = [_population(s, seed, "macrophage", *_calibrated(100, rng), small=small, size=size)
            for s in ("a", "b") for seed in (0, 1) for small in (True, False) for size in (100, 200)]
    table = pd.DataFrame(rows)
    first, again = ece_interval(table, draws=100), ece_interval(table, draws=100)
    pd.testing.assert_frame_equal(first, again)
    assert list(first.index) == [(100, False), (100, True), (200, False), (200, True)]
    assert (first["cohorts"] == 4).all() and (first["calls"] == 400).all()
    assert (first["ece_low"] <= first["ece_high"]).all()
    # over sizes a (setting, seed) pair is one cohort: its sizes are drawn together
    overall = ece_interval(table.assign(size="all"), draws=100)
    assert overall.loc[("all", True), "cohorts"] == 4 and overall.loc[("all", True), "calls"] == 800


def test_groups_without_calls_and_tables_without_listed_populations_keep_their_columns():
    rows = [_population("a", 0, "cd8_t", np.empty(0), np.empty(0, dtype=bool), small=False, size=600)]
    table = pd.DataFrame(rows)
    interval = ece_interval(table, draws=10)
    assert interval.loc[(600, False), "calls"] == 0 and np.isnan(interval.loc[(600, False), "ece"])
    shares = gap_by_context(table)  # nothing listed at 600 cells per patient
    assert shares.empty and list(shares.columns) == ["calls", "accuracy", "confidence", "gap_share"]


def test_context_shares_add_up_to_the_listed_gap_per_call():
    rng = np.random.default_rng(3)
    rows = [_population("a", 0, "cd8_t", np.full(50, 0.9), np.arange(50) % 5 != 0),  # 0.8 right at 0.9: +0.1
            _population("a", 0, "cd4_t", np.full(30, 0.7), np.ones(30, dtype=bool)),  # all right at 0.7: -0.3
            _population("b", 0, "cd8_t", *_calibrated(20, rng)),
            _population("b", 0, "fibroblast", np.full(40, 0.8), np.ones(40, dtype=bool), small=False)]
    table = pd.DataFrame(rows)
    shares = gap_by_context(table)
    assert "fibroblast" not in shares.index.get_level_values("context")  # not listed
    gap = pooled(table).loc[(100, True), "gap_per_call"]
    assert shares["gap_share"].sum() == pytest.approx(gap)
    assert shares.loc[(100, "cd4_t"), "gap_share"] == pytest.approx(30 * (0.7 - 1.0) / 100)
    assert shares.loc[(100, "cd8_t"), "calls"] == 70
