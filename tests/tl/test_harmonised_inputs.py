"""Harmonised gene ids (CELLxGENE-style var_names with symbols in a column) reach every symbol-reading tool."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

from hcctme import datasets, get, pp, tl


def _analysed(adata):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        tl.score(adata)
        tl.call_states(adata, cell_type_key="cell_type", sample_key="patient")
        tl.ta_response(adata, sample_key="patient", condition_key="response", reference="responder")
        tl.resistance_profile(adata, sample_key="patient", condition_key="response", reference="responder")
    return adata


@pytest.fixture(scope="module")
def pair():
    symbols = datasets.simulate_cohort(6, 150, n_genes=1000, random_state=3)
    ids = symbols.copy()
    ids.var["feature_name"] = ids.var_names.to_numpy()
    ids.var_names = [f"ENSG{i:011d}" for i in range(ids.n_vars)]
    pp.harmonize_genes(ids, gene_symbols="feature_name")
    return _analysed(symbols), _analysed(ids)


def test_ta_response_reads_harmonised_symbols(pair):
    symbols, ids = pair
    expected = get.ta_response(symbols, per_sample=True)
    assert {"TA_TREG", "TA_ANGIOGENESIS"} <= set(expected.columns)
    pd.testing.assert_frame_equal(get.ta_response(ids, per_sample=True), expected)
    pd.testing.assert_frame_equal(get.ta_response(ids), get.ta_response(symbols))


def test_resistance_profile_reads_harmonised_symbols(pair):
    symbols, ids = pair
    expected = get.profile(symbols)
    assert np.isfinite(expected["activity"]).any()
    pd.testing.assert_frame_equal(get.profile(ids), expected)
    pd.testing.assert_frame_equal(get.profile(ids, summary=True), get.profile(symbols, summary=True))
