"""tl.call_states(artefacts=...): obs columns (a doublet detector's score or calls) as artefact inputs."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import hcctme
from hcctme.sig import Signature, SignatureSet
from tests.tl.test_call_states import FAKE_STATES, _scored_adata

UNASSIGNED = "unassigned"
N_MAC = 900  # the first 900 cells of _scored_adata are TAMs (macrophage context), the next 600 CD4 T cells


@pytest.fixture
def library(monkeypatch):
    sigs = [Signature(id=s, genes_up=("G1", "G2", "G3"), collection=f"{ctx}_states", cell_context=ctx,
                      role="state") for ctx, ids in FAKE_STATES.items() for s in ids]
    lib = SignatureSet(sigs, library_version="test+1")
    monkeypatch.setattr(hcctme.sig, "library", lambda: lib)
    return lib


def _hit(n: int, size: int, seed: int) -> np.ndarray:
    """``size`` TAM cells chosen among the macrophage context, as a boolean mask over ``n`` cells."""
    hit = np.zeros(n, dtype=bool)
    hit[np.random.default_rng(seed).choice(N_MAC, size, replace=False)] = True
    return hit


def _obs(adata, key: str) -> np.ndarray:
    return adata.obs[key].astype(str).to_numpy()


def test_bool_obs_column_flags_its_true_cells(library):
    adata = _scored_adata()
    hit = _hit(adata.n_obs, 200, seed=1)  # 22 % of the TAMs: a flag is not capped like a foreign marker
    adata.obs["predicted_doublet"] = hit
    hcctme.tl.call_states(adata, cell_type_key="cell_type", sample_key="patient", artefacts=["predicted_doublet"])
    assert (_obs(adata, "hcctme_state")[hit] == UNASSIGNED).all()
    assert (_obs(adata, "hcctme_state_artefact")[hit] == "predicted_doublet").all()
    assert (adata.obs["hcctme_state_confidence"].to_numpy()[hit] == 0).all()
    assert (_obs(adata, "hcctme_state_artefact")[~hit] == "").all()  # the clean cells carry no flag
    assert (_obs(adata, "hcctme_state")[~hit][: N_MAC - 200] != UNASSIGNED).sum() > 400  # the others keep calls
    info = adata.uns["hcctme_state_params"]
    assert info["artefacts_from_obs"] == {"predicted_doublet": "flag"}
    assert info["params"]["artefacts"] == ["predicted_doublet"]
    assert info["artefact_signatures"] == {"macrophage": ["predicted_doublet"], "cd4_t": ["predicted_doublet"]}
    assert info["diagnostics"]["macrophage"][UNASSIGNED]["flagged_by"] == {"predicted_doublet": 200}
    assert info["diagnostics"]["macrophage"][UNASSIGNED]["artefacts"] == 200
    assert "predicted_doublet" not in adata.obsm["hcctme_scores"].columns  # the scores are not copied into


@pytest.mark.parametrize("dtype", ["boolean", object])
def test_nullable_and_object_bool_columns_are_flags(library, dtype):
    adata = _scored_adata()
    hit = _hit(adata.n_obs, 50, seed=2)
    adata.obs["flag"] = pd.array(hit, dtype=dtype)
    hcctme.tl.call_states(adata, cell_type_key="cell_type", artefacts=["flag"])
    assert (_obs(adata, "hcctme_state_artefact") == np.where(hit, "flag", "")).all()
    assert adata.uns["hcctme_state_params"]["artefacts_from_obs"] == {"flag": "flag"}


def test_numeric_obs_column_is_read_like_a_score_column(library):
    rng = np.random.default_rng(5)
    adata = _scored_adata()
    score = rng.normal(0.1, 0.02, adata.n_obs)
    hit = _hit(adata.n_obs, 60, seed=3)
    score[hit] = 0.6  # a clear upper group of doublets
    from_obs = adata.copy()
    from_obs.obs["doublet_score"] = score
    from_scores = adata.copy()
    from_scores.obsm["hcctme_scores"]["doublet_score"] = score
    for data in (from_obs, from_scores):
        hcctme.tl.call_states(data, cell_type_key="cell_type", sample_key="patient", artefacts=["doublet_score"])
    flagged = _obs(from_obs, "hcctme_state_artefact") == "doublet_score"
    assert flagged[hit].all()
    assert flagged[:N_MAC][~hit[:N_MAC]].mean() < 0.01
    for key in ("hcctme_state", "hcctme_state_artefact", "hcctme_state_confidence"):
        assert np.array_equal(from_obs.obs[key].to_numpy(), from_scores.obs[key].to_numpy()), key
    obs_info, score_info = from_obs.uns["hcctme_state_params"], from_scores.uns["hcctme_state_params"]
    assert obs_info["artefacts_from_obs"] == {"doublet_score": "score"}
    assert score_info["artefacts_from_obs"] == {}
    assert obs_info["diagnostics"] == score_info["diagnostics"]


def test_integer_obs_column_is_a_score(library):
    adata = _scored_adata()
    adata.obs["n_doublet_markers"] = np.where(_hit(adata.n_obs, 60, seed=4), 9, 0) + (np.arange(adata.n_obs) % 2)
    hcctme.tl.call_states(adata, cell_type_key="cell_type", artefacts=["n_doublet_markers"])
    assert adata.uns["hcctme_state_params"]["artefacts_from_obs"] == {"n_doublet_markers": "score"}
    assert adata.uns["hcctme_state_params"]["diagnostics"]["macrophage"][UNASSIGNED]["flagged_by"] == {
        "n_doublet_markers": 60}


def test_scores_column_wins_over_obs_column_of_the_same_name(library):
    adata = _scored_adata()
    in_scores, in_obs = _hit(adata.n_obs, 60, seed=6), _hit(adata.n_obs, 60, seed=7)
    adata.obsm["hcctme_scores"]["doublets"] = np.where(in_scores, 0.9, 0.1)
    adata.obs["doublets"] = in_obs
    hcctme.tl.call_states(adata, cell_type_key="cell_type", artefacts=["doublets"])
    flagged = _obs(adata, "hcctme_state_artefact") == "doublets"
    assert np.array_equal(flagged, in_scores)
    assert adata.uns["hcctme_state_params"]["artefacts_from_obs"] == {}


def test_default_records_no_obs_artefacts(library):
    adata = _scored_adata()
    adata.obs["predicted_doublet"] = _hit(adata.n_obs, 60, seed=8)
    hcctme.tl.call_states(adata, cell_type_key="cell_type")
    assert adata.uns["hcctme_state_params"]["artefacts_from_obs"] == {}
    assert (_obs(adata, "hcctme_state_artefact") == "").all()


def _with_bad_columns(adata):
    n = adata.n_obs
    adata.obs["doublet_type"] = pd.Categorical(np.where(np.arange(n) % 5 == 0, "heterotypic", "singlet"))
    adata.obs["doublet_label"] = np.where(np.arange(n) % 5 == 0, "doublet", "singlet").astype(object)
    adata.obs["flag_with_nan"] = pd.Series([True, None] * (n // 2), index=adata.obs_names, dtype=object)
    adata.obs["nullable_flag"] = pd.array([True, pd.NA] * (n // 2), dtype="boolean")
    adata.obs["score_with_nan"] = np.where(np.arange(n) == 3, np.nan, 0.1)
    adata.obs["score_with_inf"] = np.where(np.arange(n) == 3, np.inf, 0.1)
    adata.obs["nullable_int"] = pd.array([1, pd.NA] * (n // 2), dtype="Int64")
    adata.obs["library_size"] = np.arange(n, dtype=float)  # the name of call_states' own library-size column
    return adata


@pytest.mark.parametrize(("column", "error", "match"), [
    ("doublet_type", TypeError, r"obs\['doublet_type'\].*category.*numeric column.*boolean"),
    ("doublet_label", TypeError, r"obs\['doublet_label'\].*object.*numeric column.*boolean"),
    ("flag_with_nan", ValueError, r"obs\['flag_with_nan'\].*boolean column with 900 missing values"),
    ("nullable_flag", ValueError, r"obs\['nullable_flag'\].*boolean column with 900 missing values"),
    ("score_with_nan", ValueError, r"obs\['score_with_nan'\].*1 NaN/inf"),
    ("score_with_inf", ValueError, r"obs\['score_with_inf'\].*1 NaN/inf"),
    ("nullable_int", ValueError, r"obs\['nullable_int'\].*900 NaN/inf"),
    ("not_anywhere", KeyError, r"neither columns of adata.obsm\['hcctme_scores'\] nor of adata.obs.*scrublet"),
    ("library_size", ValueError, r"may not name 'library_size'.*computes that artefact column itself"),
])
def test_bad_obs_artefact_columns(library, digest, column, error, match):
    adata = _with_bad_columns(_scored_adata())
    before = digest(adata)
    with pytest.raises(error, match=match):
        hcctme.tl.call_states(adata, cell_type_key="cell_type", artefacts=[column])
    assert digest(adata) == before


def test_bad_column_after_a_good_one_leaves_input_untouched(library, digest):
    adata = _with_bad_columns(_scored_adata())
    adata.obs["predicted_doublet"] = _hit(adata.n_obs, 60, seed=9)
    before = digest(adata)
    with pytest.raises(TypeError, match="doublet_label"):
        hcctme.tl.call_states(adata, cell_type_key="cell_type", artefacts=["predicted_doublet", "doublet_label"])
    assert digest(adata) == before
