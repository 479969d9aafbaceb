"""tl.ta_response: T+A response signatures per sample, Treg/Teff contrast, group comparison."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import hcctme as hc
from hcctme.tl._ta_response import TA_SIGNATURES, TREG_TEFF

from ._compare_data import cohort


@pytest.fixture
def adata():
    a = cohort(n_per=4, cells=60, n_genes=20, seed=4)
    rng = np.random.default_rng(0)
    frame = pd.DataFrame(rng.random((a.n_obs, len(TA_SIGNATURES))), index=a.obs_names, columns=list(TA_SIGNATURES))
    resist = (a.obs["response"] == "resistor").to_numpy()
    frame.loc[resist, "TA_TREG"] += 0.3
    a.obsm["hcctme_scores"] = frame
    return a


def test_existing_scores_per_sample_and_compare(adata):
    res = hc.tl.ta_response(adata, sample_key="patient", condition_key="response", reference="responder")
    per_sample, table = res
    manual = adata.obsm["hcctme_scores"].groupby(adata.obs["patient"].astype(str).to_numpy()).mean()
    pd.testing.assert_frame_equal(per_sample[list(TA_SIGNATURES)], manual[list(TA_SIGNATURES)],
                                  check_names=False)
    np.testing.assert_allclose(per_sample[TREG_TEFF], manual["TA_TREG"] - manual["TA_TEFF"])
    assert (per_sample["n_cells"] == 60).all()
    assert set(per_sample["response"]) == {"responder", "resistor"}
    assert set(table["feature"]) == set(TA_SIGNATURES) | {TREG_TEFF}
    row = table.set_index("feature")
    assert row.loc["TA_TREG", "direction"] == "up" and row.loc["TA_TREG", "pvalue"] < 0.05
    assert row.loc[TREG_TEFF, "effect"] == pytest.approx(
        row.loc["TA_TREG", "effect"] - row.loc["TA_TEFF", "effect"])
    stored = adata.uns["hcctme_ta_response"]
    pd.testing.assert_frame_equal(stored["compare"], table)
    assert "obsm" in stored["params"]["scores"]


def test_without_condition(adata, digest):
    before = digest(adata)
    res = hc.tl.ta_response(adata, sample_key="patient", store=False)
    assert res.compare is None
    assert res.per_sample.shape[0] == 8
    assert digest(adata) == before


def test_scores_on_the_fly_with_the_library():
    try:
        from hcctme.datasets import simulate_cohort

        a = simulate_cohort(8, 200, n_genes=1500, seed=0)
    except FileNotFoundError:  # pragma: no cover - library not installed
        pytest.skip("signature library missing")
    obsm_before = set(a.obsm)
    res = hc.tl.ta_response(a, sample_key="patient", condition_key="response", reference="responder")
    assert set(a.obsm) == obsm_before  # scores computed on the side, not written
    assert res.per_sample.shape[0] == 8
    assert {c for c in res.per_sample.columns if c.startswith("TA_")} == set(TA_SIGNATURES) | {TREG_TEFF}
    assert res.compare["pvalue"].between(0, 1).all()
    assert "tl.score" in a.uns["hcctme_ta_response"]["params"]["scores"]


def test_errors(adata, digest):
    before = digest(adata)
    with pytest.raises(ValueError, match="reference"):
        hc.tl.ta_response(adata, sample_key="patient", condition_key="response")
    with pytest.raises(ValueError, match="condition_key"):
        hc.tl.ta_response(adata, sample_key="patient", reference="responder")
    with pytest.raises(KeyError, match="nope"):
        hc.tl.ta_response(adata, sample_key="nope")
    with pytest.raises(ValueError, match="too few cells"):
        hc.tl.ta_response(adata, sample_key="patient", min_cells=1000)
    with pytest.raises(ValueError, match="not a level"):
        hc.tl.ta_response(adata, sample_key="patient", condition_key="response", reference="x")
    assert digest(adata) == before
