"""hcctme.tl.call_states: its keys, its recorded call, min_confidence as a cut, and inputs at the edges.

Each test is a defect the session-57 sweep found (the demo simulator: an engineering check, not evidence that the
calls are right; that evidence is the independent generator and the real data).
"""

from __future__ import annotations

import logging

import numpy as np
import pytest

import hcctme as ht
from hcctme.datasets import simulate_cohort


@pytest.fixture(scope="module")
def scored():
    adata = simulate_cohort(n_patients=4, cells_per_patient=200, n_genes=2000, random_state=5)
    ht.tl.score(adata, n_jobs=1)
    return adata


def _call(adata, **kwargs):
    return ht.tl.call_states(adata, cell_type_key="cell_type", sample_key="patient", copy=True, **kwargs)


def test_min_confidence_cuts_the_calls_of_one_model(scored):
    """Raising min_confidence retrained the model (its mixture calls seeded the self-training): the sweep's 6 x 250
    cohort at 0.7 changed 34 of the 369 calls 0.5 made at >= 0.7 and made 2 calls 0.5 did not. The model is fitted at
    STATE_MODEL_CONFIDENCE whatever the threshold: the same confidences, and each threshold's calls are the lower
    one's at that confidence."""
    runs = {t: _call(scored, min_confidence=t) for t in (0.3, 0.5, 0.8)}
    calls = {t: r.obs["hcctme_state"].astype(str).to_numpy() for t, r in runs.items()}
    conf = {t: r.obs["hcctme_state_confidence"].to_numpy() for t, r in runs.items()}
    assert np.array_equal(conf[0.3], conf[0.5]) and np.array_equal(conf[0.5], conf[0.8])
    for low, high in ((0.3, 0.5), (0.5, 0.8)):
        expected = np.where(conf[high] >= high, calls[low], "unassigned")
        assert np.array_equal(calls[high], expected)
    n_called = [int(np.sum(calls[t] != "unassigned")) for t in (0.3, 0.5, 0.8)]
    assert n_called[0] > n_called[1] > n_called[2] > 0
    assert runs[0.8].uns["hcctme_state_params"]["thresholds"]["model_confidence"] == 0.5


def test_key_added_refuses_the_users_columns_and_inputs_among_its_outputs(scored):
    adata = scored.copy()
    adata.obs["calls_confidence"] = 7.0  # the user's own column where an output would go
    with pytest.raises(ValueError, match=r"would overwrite adata.obs\['calls_confidence'\]"):
        ht.tl.call_states(adata, cell_type_key="cell_type", key_added="calls")
    adata.obs["calls_context"] = adata.obs["cell_type"]  # the labels the call reads, where it would write
    with pytest.raises(ValueError, match="would write 'calls_context', which this call reads"):
        ht.tl.call_states(adata, cell_type_key="calls_context", key_added="calls")
    with pytest.raises(ValueError, match="which this call reads"):  # the scores it reads (and their record)
        ht.tl.call_states(adata, cell_type_key="cell_type", key_added="hcctme_scores")
    assert (adata.obs["calls_confidence"] == 7.0).all() and "calls" not in adata.obs
    assert ht.get.params(adata, "hcctme_scores")["tool"] == "hcctme.tl.score"


def test_a_key_another_tool_wrote_is_refused(scored):
    adata = scored.copy()
    ht.tl.score(adata, ["TREG", "CD8_TEFF"], key_added="few_scores", n_jobs=1)
    with pytest.raises(ValueError, match=r"holds the results of hcctme\.tl\.score"):
        ht.tl.call_states(adata, cell_type_key="cell_type", key_added="few_scores")
    ht.tl.call_states(adata, cell_type_key="cell_type", key_added="mine", self_train=False)
    ht.tl.call_states(adata, cell_type_key="cell_type", key_added="mine", self_train=False)  # its own: replaced


def test_the_recorded_call_repeats_it_use_raw_included(scored):
    adata = scored.copy()
    adata.raw = adata.copy()
    adata.X = adata.X * 0  # .X no longer the expression .raw holds
    ht.tl.call_states(adata, cell_type_key="cell_type", use_raw=True, self_train=False)
    params = ht.get.params(adata, "hcctme_state")["params"]
    assert params["use_raw"] is True
    again = ht.tl.call_states(adata, **params, copy=True)
    assert np.array_equal(again.obs["hcctme_state"], adata.obs["hcctme_state"])


@pytest.mark.parametrize("resolution", [float("nan"), float("inf"), 0.0, -1.0])
def test_refine_resolution_must_be_positive_and_finite(scored, resolution):
    with pytest.raises(ValueError, match="positive finite number"):
        _call(scored, refine="leiden", refine_resolution=resolution)


def test_one_cell_per_sample_falls_back_to_the_mixture(scored):
    """Per-cell sample ids: the within-sample variance is 0 but float32 sums read ~1e-6, every gene counted as
    varying, and ARPACK failed on the all-zero centred matrix (ArpackError from deep inside)."""
    adata = scored.copy()
    adata.obs["cell_id"] = adata.obs_names.astype(str)
    out = ht.tl.call_states(adata, cell_type_key="cell_type", sample_key="cell_id", copy=True)
    assert out.uns["hcctme_state_params"]["self_train"]["seeds"] == {}  # no population could be self-trained
    mixture = ht.tl.call_states(adata, cell_type_key="cell_type", self_train=False, copy=True)
    assert np.array_equal(out.obs["hcctme_state"], mixture.obs["hcctme_state"])


def test_a_population_of_a_few_cells_is_not_called(scored, caplog):
    """The fallback rule called the top of any small population from within-population z-scores (a 3-cell CD4
    population: TREG at 0.66 for the cell 0.0001 above the other two, all three far below the data's CD4 T cells)."""
    adata = scored.copy()
    cd4 = np.flatnonzero(adata.obs["cell_type"] == "CD4+ T cells")
    keep = np.ones(adata.n_obs, dtype=bool)
    keep[cd4[3:]] = False
    small = adata[keep].copy()
    with caplog.at_level(logging.WARNING, logger="hcctme"):
        out = ht.tl.call_states(small, cell_type_key="cell_type", copy=True)
    cells = out.obs["cell_type"] == "CD4+ T cells"
    assert cells.sum() == 3 and (out.obs.loc[cells, "hcctme_state"] == "unassigned").all()
    assert (out.obs.loc[cells, "hcctme_state_confidence"] == 0).all()  # no model there: no confidence either
    assert out.uns["hcctme_state_params"]["fitted"]["cd4_t"] == "too few cells"
    assert "too few cells to call states in" in caplog.text and "{'cd4_t': " in caplog.text


def test_a_gene_set_passed_as_artefact_is_not_listed_as_ignored(scored):
    adata = scored.copy()
    ht.tl.score(adata, {"MY_STRESS": ["FOS", "JUN", "HSPA1A", "DUSP1"], "MY_OTHER": ["CD3E", "CD3D", "LCK", "CD5"]},
                key_added="mine", n_jobs=1)
    adata.obsm["hcctme_scores"] = adata.obsm["hcctme_scores"].join(adata.obsm["mine"])
    ht.tl.call_states(adata, cell_type_key="cell_type", artefacts=["MY_STRESS"], self_train=False)
    record = adata.uns["hcctme_state_params"]
    assert "MY_STRESS" in record["artefacts_used"] and record["ignored_signatures"] == ["MY_OTHER"]


def test_the_largest_seed_runs_and_a_larger_one_is_refused(scored):
    """The seed check took seeds up to 2**63 while scikit-learn's k-means and scanpy's control-gene draw take them
    below 2**32 (tl.score(method="mean", random_state=2**40) failed inside numpy's mt19937); a population's seedings
    add their index to the seed, wrapped below 2**32 for k-means."""
    out = _call(scored, random_state=2**32 - 1)
    assert out.obs["hcctme_state"].notna().all()
    with pytest.raises(ValueError, match=r"random_state must be < 2\*\*32"):
        _call(scored, random_state=2**32)
    with pytest.raises(ValueError, match=r"random_state must be < 2\*\*32"):
        ht.tl.score(scored.copy(), ["TAM2_SPP1"], method="mean", random_state=2**40)
