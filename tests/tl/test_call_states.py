"""tl.call_states: context resolution, the assignment model, AnnData contract, simulator calibration."""

from __future__ import annotations

import logging
from dataclasses import replace

import anndata as ad
import numpy as np
import pandas as pd
import pytest
from anndata import AnnData

import hcctme
from hcctme._labels import map_from_table
from hcctme.sig import Signature, SignatureSet
from hcctme.tl import _contexts
from hcctme.tl import _state_artefacts as artefacts
from hcctme.tl import _state_expression as state_expression
from hcctme.tl import _state_model as model
from hcctme.tl import _state_params as state_params
from hcctme.tl import _state_seeds as state_seeds
from hcctme.tl import _state_selftrain as selftrain
from hcctme.tl._call_states import SELF_TRAIN_RECORD, _averaged_mixture_warning, seeding_record, small_populations
from tests.tl._state_artefact_data import foreign_cohort
from tests.tl._state_populations import programme_population

UNASSIGNED = "unassigned"


# --------------------------------------------------------------------------------------------------
# Context resolution
# --------------------------------------------------------------------------------------------------
RESOLUTION_TABLE = [
    ("CD8+ T cells", "cd8_t"), ("CD8 T", "cd8_t"), ("CD8_T", "cd8_t"), ("cd8t", "cd8_t"), ("Tex", "cd8_t"),
    ("Tpex", "cd8_t"), ("CTL", "cd8_t"), ("CD4+ T cells", "cd4_t"), ("Tregs", "cd4_t"), ("T reg", "cd4_t"),
    ("Th17", "cd4_t"), ("CD4+/CD25 T Reg", "cd4_t"), ("T cells", "t_cell"), ("CD4/CD8 T", "t_cell"),
    ("gdT", "t_cell"), ("NK", "nk"), ("NK cells", "nk"), ("CD56+ NK", "nk"), ("B cells", "b_cell"),
    ("CD19+ B", "b_cell"), ("Plasma", "plasma"), ("Plasmablasts", "plasma"), ("Macrophages", "macrophage"),
    ("TAMs", "macrophage"), ("Kupffer cells", "macrophage"), ("MΦ", "macrophage"),
    ("Monocyte-derived macrophages", "macrophage"), ("Tumour-associated macrophages", "macrophage"),
    ("Mac_SPP1", "macrophage"), ("Monocytes", "monocyte"), ("CD14+ Monocyte", "monocyte"),
    ("M-MDSC", "monocyte"), ("Neutrophils", "neutrophil"), ("TANs", "neutrophil"), ("PMN-MDSC", "neutrophil"),
    ("MDSC", "myeloid"), ("Myeloid", "myeloid"), ("Mono/Mac", "myeloid"), ("DC", "dendritic"),
    ("cDC1", "dendritic"), ("pDC", "dendritic"), ("moDC", "dendritic"), ("Dendritic cells", "dendritic"),
    ("CAFs", "fibroblast"), ("Fibroblasts", "fibroblast"), ("Cancer-associated fibroblasts", "fibroblast"),
    ("HSC", "fibroblast"), ("Hepatic stellate cells", "fibroblast"), ("myCAF", "fibroblast"),
    ("Endothelial cells", "endothelial"), ("LSEC", "endothelial"), ("Tumour endothelial cells", "endothelial"),
    ("Hepatocytes", "hepatocyte"), ("Malignant", "tumour"), ("Tumour", "tumour"), ("Tumor cells", "tumour"),
    ("Malignant hepatocytes", "tumour"), ("HCC", "tumour"),
    # never guessed
    ("T/NK cells", None), ("NKT", None), ("Doublets", None), ("3", None), ("CD34+", None),
    ("Mast cells", None), ("Epithelial", None), ("Cholangiocytes", None), ("unknown", None),
    # sweep 54: Treg spellings read as plain T cells; parts naming two cell types read as one of them
    ("reg. T cell", "cd4_t"), ("T regulatory cells", "cd4_t"), ("Reg T", "cd4_t"),
    ("Macrophage/Tumour", None), ("CAF/Tumour", None), ("Mast/Macrophage", None), ("Epithelial/Macrophage", None),
    ("Exhausted/HS Cd8+ cells", "cd8_t"), ("cDC1/cDC2", "dendritic"), ("Macrophages/x", "macrophage"),
]


@pytest.mark.parametrize(("label", "expected"), RESOLUTION_TABLE)
def test_recognise_table(label, expected):
    context, reason = _contexts.recognise(label)
    assert context == expected, (label, context, reason)


def test_resolve_context_map_overrides_and_none():
    res = _contexts.resolve(["CD8+ T cells", "Cluster 3", "Myeloid", "Tregs"],
                            {"Cluster 3": "macrophage", "Myeloid": None})
    assert res.mapping == {"CD8+ T cells": "cd8_t", "Cluster 3": "macrophage", "Myeloid": None, "Tregs": "cd4_t"}
    assert res.source["Cluster 3"] == "context_map"
    assert res.source["CD8+ T cells"] == "rule"
    assert res.unmapped == ["Myeloid"]


@pytest.mark.parametrize("bad", [{"Macrophages": "TAM"}, {"Macrophages": "any"}, {"Macrophages": 3}])
def test_context_map_values_must_be_vocabulary(bad):
    with pytest.raises(ValueError, match="vocabulary"):
        _contexts.check_context_map(bad)


def test_context_map_must_be_mapping():
    with pytest.raises(TypeError, match="context_map"):
        _contexts.check_context_map([("Macrophages", "macrophage")])


# --------------------------------------------------------------------------------------------------
# The assignment model on synthetic score matrices
# --------------------------------------------------------------------------------------------------
def _synthetic_scores(props, *, n=3000, n_samples=6, separation=4.0, seed=0):
    """Scores of K states (+ none) with a mild sample shift (UCell-like); returns X, truth, samples."""
    rng = np.random.default_rng(seed)
    k = len(props)
    base = np.array([*props, 1.0 - sum(props)])
    samples = rng.integers(0, n_samples, n)
    truth = np.empty(n, dtype=int)
    for s in range(n_samples):
        rows = samples == s
        truth[rows] = rng.choice(k + 1, size=rows.sum(), p=rng.dirichlet(base * 30))
    X = rng.normal(size=(n, k))
    for j in range(k):
        rows = truth == j
        X[rows, j] += separation * np.clip(rng.normal(1, 0.2, rows.sum()), 0.4, 1.6)
    X = X + 0.1 * samples[:, None]
    labels = np.array([f"S{j}" for j in range(k)] + [UNASSIGNED], dtype=object)[truth]
    return pd.DataFrame(X, columns=[f"S{j}" for j in range(k)]), labels, samples


def _recall_precision(calls, truth, states):
    out = {}
    for s in states:
        tp = np.sum((calls == s) & (truth == s))
        out[s] = (tp / max(np.sum(truth == s), 1), tp / max(np.sum(calls == s), 1))
    return out


@pytest.mark.parametrize("props", [(0.22, 0.20, 0.25), (0.3,), (0.28, 0.25, 0.15),
                                   (0.18, 0.14, 0.14, 0.12, 0.12, 0.12)])
def test_model_recovers_synthetic_states(props):
    scores, truth, _ = _synthetic_scores(props)
    result = model.assign(scores, ["ctx"] * len(scores), {"ctx": list(scores.columns)})
    for state, (recall, precision) in _recall_precision(result.calls, truth, scores.columns).items():
        assert recall >= 0.85 and precision >= 0.85, (state, recall, precision)
    assert np.all((result.confidence >= 0) & (result.confidence <= 1))
    assert result.fitted["ctx"] == "mixture"
    assert all(d["separation"] > 2 for s, d in result.diagnostics["ctx"].items() if s != UNASSIGNED)


def test_model_calls_nothing_without_states():
    rng = np.random.default_rng(1)
    scores = pd.DataFrame(rng.normal(size=(3000, 3)), columns=list("abc"))
    multi = model.assign(scores, ["c"] * 3000, {"c": ["a", "b", "c"]})
    single = model.assign(scores, ["c"] * 3000, {"c": ["a"]})
    assert np.mean(multi.calls != UNASSIGNED) < 0.02
    assert np.mean(single.calls != UNASSIGNED) < 0.02


def test_model_small_context_is_not_called_and_other_contexts_untouched():
    """Fewer than min_fit_cells (30) clean cells: no call (session 57 sweep: the rule called the top-ranked cells of
    any small population, a 3-cell CD4 population's highest TREG score at confidence 0.66)."""
    scores, _, _ = _synthetic_scores((0.4, 0.4), n=20)
    contexts = np.array(["ctx"] * 20, dtype=object)
    contexts[:3] = None
    result = model.assign(scores, contexts, {"ctx": ["S0", "S1"]})
    assert result.fitted["ctx"] == model.TOO_FEW_CELLS
    assert np.all(result.calls == UNASSIGNED) and not result.eligible.any()
    assert np.all(result.confidence[:3] == 0)
    bigger, _, _ = _synthetic_scores((0.4, 0.4), n=400)
    called = model.assign(bigger, ["ctx"] * 400, {"ctx": ["S0", "S1"]})
    assert called.fitted["ctx"] == "mixture" and np.any(called.calls != UNASSIGNED)


def test_real_between_sample_shift_is_kept():
    """A sample rich in a state keeps its calls: no per-sample re-centering of the scores."""
    rng = np.random.default_rng(3)
    samples = np.repeat([0, 1], 1000)
    share = np.where(samples == 0, 0.7, 0.1)
    truth = rng.random(2000) < share
    x = rng.normal(size=(2000, 1)) + 4.0 * truth[:, None]
    result = model.assign(pd.DataFrame(x, columns=["S"]), ["c"] * 2000, {"c": ["S"]})
    called = result.calls == "S"
    assert abs(called[samples == 0].mean() - 0.7) < 0.05 and abs(called[samples == 1].mean() - 0.1) < 0.05


def test_model_releases_foreign_flags_beyond_their_joint_share():
    """Two foreign-lineage markers each under the 10 % cap flag 16 % of a context together: the model keeps the
    flags of 10 % (the cells furthest toward the foreign lineage), reports the rest as released, and calls them."""
    markers, refs = foreign_cohort()
    scores, _, _ = _synthetic_scores((0.4, 0.4), n=markers.shape[0])
    # MARKER_C's lineage lies inside the context's spread (0.5 sd above its median): not used, and recorded
    near = np.random.default_rng(8).normal(0.2, 0.03, markers.shape[0])
    scores = scores.assign(MARKER_A=markers[:, 0], MARKER_B=markers[:, 1], MARKER_C=near)
    result = model.assign(scores, ["ctx"] * len(scores), {"ctx": ["S0", "S1"]},
                          artefacts={"ctx": ["MARKER_A", "MARKER_B", "MARKER_C"]},
                          references={**refs, "MARKER_C": 0.215})
    info = result.diagnostics["ctx"][UNASSIGNED]
    assert info["foreign_released"] == 36 and info["markers_not_used"] == [] and info["artefacts"] == 60
    assert info["markers_unreached"] == ["MARKER_C"] and "MARKER_C" not in info["flagged_by"]
    released = np.arange(48, 84)
    assert (result.artefact[released] == "").all() and (result.artefact_probability[released] == 0).all()
    assert (result.calls[released] != UNASSIGNED).mean() > 0.5  # they compete for the states again
    assert (result.calls[:48] == UNASSIGNED).all()


def test_artefact_flags_robust_z_and_reference():
    rng = np.random.default_rng(0)
    x = np.concatenate([rng.normal(0.2, 0.02, 950), rng.normal(0.6, 0.02, 50)])
    flags = artefacts.artefact_flags(x, 3.0)
    assert flags[950:].all() and flags[:950].mean() < 0.01
    # a marker score near zero in the context: the noise tail is not an artefact without the
    # reference level of the lineage it marks being approached
    noise = np.abs(rng.normal(0.0, 0.01, 1000))
    assert artefacts.artefact_flags(noise, 3.0, reference=0.5).sum() == 0
    noise[:30] = 0.3
    assert artefacts.artefact_flags(noise, 3.0, reference=0.5)[:30].all()


# --------------------------------------------------------------------------------------------------
# AnnData contract on synthetic scores (a small fake library)
# --------------------------------------------------------------------------------------------------
FAKE_STATES = {"macrophage": ["TAM_A", "TAM_B", "TAM_C"], "cd4_t": ["TREG_X"]}


@pytest.fixture
def fake_library(monkeypatch):
    sigs = [Signature(id=s, genes_up=("G1", "G2", "G3"), collection=f"{ctx}_states", cell_context=ctx,
                      role="state") for ctx, ids in FAKE_STATES.items() for s in ids]
    sigs.append(Signature(id="MACRO_M2_X", genes_up=("G1", "G2", "G3"), collection="macrophage_polarisation",
                          cell_context="macrophage"))
    sigs.append(Signature(id="NEU_STATE_X", genes_up=("G1", "G2", "G3"), collection="neutrophil_states",
                          cell_context="neutrophil"))
    lib = SignatureSet(sigs, library_version="test+1")
    monkeypatch.setattr(hcctme.sig, "library", lambda: lib)
    return lib


def _scored_adata(seed=0):
    mac, mac_truth, mac_s = _synthetic_scores((0.3, 0.3, 0.2), n=900, n_samples=3, seed=seed)
    cd4, cd4_truth, cd4_s = _synthetic_scores((0.3,), n=600, n_samples=3, seed=seed + 1)
    n_other = 300
    n = len(mac) + len(cd4) + n_other
    rng = np.random.default_rng(seed)
    scores = pd.DataFrame(rng.normal(size=(n, 6)),
                          columns=["TAM_A", "TAM_B", "TAM_C", "TREG_X", "MACRO_M2_X", "MY_OWN_SET"])
    scores.iloc[: len(mac), :3] = mac.to_numpy()
    scores.iloc[len(mac): len(mac) + len(cd4), 3] = cd4.to_numpy()[:, 0]
    mac_names = {"S0": "TAM_A", "S1": "TAM_B", "S2": "TAM_C", UNASSIGNED: UNASSIGNED}
    truth = np.concatenate([[mac_names[t] for t in mac_truth],
                            np.where(cd4_truth == "S0", "TREG_X", UNASSIGNED),
                            [UNASSIGNED] * n_other]).astype(object)
    obs = pd.DataFrame({
        "cell_type": ["TAMs"] * len(mac) + ["Tregs and CD4"] * len(cd4) + ["Hepatocytes"] * 150 + ["Cluster 9"] * 150,
        "patient": np.concatenate([mac_s, cd4_s, rng.integers(0, 3, n_other)]).astype(str),
        "truth": truth,
    }, index=[f"cell{i}" for i in range(n)])
    adata = AnnData(np.zeros((n, 3), dtype=np.float32), obs=obs)
    scores.index = adata.obs_names
    adata.obsm["hcctme_scores"] = scores
    adata.uns["hcctme_scores"] = {"method": "ucell"}
    return adata


def test_call_states_contract(fake_library, caplog):
    adata = _scored_adata()
    with caplog.at_level(logging.INFO, logger="hcctme"):
        assert hcctme.tl.call_states(adata, cell_type_key="cell_type", sample_key="patient") is None
    calls = adata.obs["hcctme_state"]
    assert isinstance(calls.dtype, pd.CategoricalDtype)
    assert set(calls.cat.categories) == {"TAM_A", "TAM_B", "TAM_C", "TREG_X", UNASSIGNED}
    conf = adata.obs["hcctme_state_confidence"]
    assert conf.dtype == float and conf.between(0, 1).all()
    ctx = adata.obs["hcctme_state_context"].astype(str)
    assert set(ctx[adata.obs.cell_type == "TAMs"]) == {"macrophage"}
    assert set(ctx[adata.obs.cell_type == "Tregs and CD4"]) == {"cd4_t"}
    assert set(ctx[adata.obs.cell_type == "Cluster 9"]) == {UNASSIGNED}
    # states only inside their parent context
    mac = (ctx == "macrophage").to_numpy()
    assert set(calls[mac].astype(str)) <= {"TAM_A", "TAM_B", "TAM_C", UNASSIGNED}
    assert set(calls[ctx == "cd4_t"].astype(str)) <= {"TREG_X", UNASSIGNED}
    # a context without state signatures (hepatocyte) and unknown labels stay unassigned
    other = adata.obs.cell_type.isin(["Hepatocytes", "Cluster 9"]).to_numpy()
    assert (calls[other] == UNASSIGNED).all() and (conf[other] == 0).all()
    # accuracy
    rp = _recall_precision(calls.astype(str).to_numpy(), adata.obs["truth"].to_numpy(),
                           ["TAM_A", "TAM_B", "TAM_C", "TREG_X"])
    assert all(r >= 0.8 and p >= 0.8 for r, p in rp.values()), rp
    info = adata.uns["hcctme_state_params"]
    assert info["tool"] == "hcctme.tl.call_states" and info["params"]["sample_key"] == "patient"
    table = adata.uns["hcctme_state"]
    assert list(table.columns) == ["sample", "context", "state", "n_cells", "fraction"]
    tam = table[(table.context == "macrophage") & (table["sample"] == "0")]
    assert tam["n_cells"].sum() == int(((adata.obs.patient == "0") & (adata.obs.cell_type == "TAMs")).sum())
    assert tam["fraction"].sum() == pytest.approx(1.0)
    assert map_from_table(info["mapping"]) == {"TAMs": "macrophage", "Tregs and CD4": "cd4_t",
                                               "Hepatocytes": "hepatocyte", "Cluster 9": UNASSIGNED}
    assert info["states"] == {"macrophage": ["TAM_A", "TAM_B", "TAM_C"], "cd4_t": ["TREG_X"]}
    assert info["library_version"] == "test+1"
    assert info["thresholds"]["model_confidence"] == 0.5 and info["params"]["min_confidence"] == 0.5
    assert set(info["ignored_signatures"]) == {"MY_OWN_SET"}  # user sets are not called
    assert table.loc[table.context == "macrophage", "n_cells"].sum() == int(mac.sum())
    assert "cell_context mapping used" in caplog.text and "obs['hcctme_state']" in caplog.text


def test_expression_the_caller_cannot_read_is_refused_before_any_work(fake_library, digest, tmp_path):
    """Sweep 54: NaN in the matrix was read silently, and a z-scaled .X read while the log data sat in .raw (which
    tl.score read); copy=True on a backed file failed after the work; an artefact column holding "/" came back
    from an h5ad file as nested keys."""
    adata = _scored_adata()
    kwargs = dict(cell_type_key="cell_type", sample_key="patient", self_train=False)
    nan = adata.copy()
    nan.X[0, 0] = np.nan
    scaled = adata.copy()
    scaled.X = scaled.X - 1.0
    slashed = adata.copy()
    slashed.obs["scrublet/predicted_doublet"] = False
    for data, extra, error, message in [
        (nan, {}, ValueError, "NaN or infinite"),
        (adata, {"copy": "no"}, TypeError, "copy must be True or False"),
        (slashed, {"artefacts": ["scrublet/predicted_doublet"]}, ValueError, "hold '/'.*rename"),
    ]:
        before = digest(data)
        with pytest.raises(error, match=message):
            hcctme.tl.call_states(data, **kwargs, **extra)
        assert digest(data) == before
    scaled.raw = adata  # scanpy's layout: the log data in .raw, the scaled data in .X: .raw is read
    hcctme.tl.call_states(scaled, **kwargs)
    hcctme.tl.call_states(adata, **kwargs)
    pd.testing.assert_frame_equal(hcctme.get.states(scaled), hcctme.get.states(adata))
    adata.write_h5ad(tmp_path / "a.h5ad")
    backed = ad.read_h5ad(tmp_path / "a.h5ad", backed="r")
    with pytest.raises(ValueError, match="copy=True would load the whole backed matrix"):
        hcctme.tl.call_states(backed, **kwargs, copy=True)


def test_self_training_learns_the_programme_the_scores_read_poorly():
    X, z, best, confidence, truth = programme_population(seed=4)
    ids = ["A", "B"]
    params = state_params.SelfTrainParams()
    mixture_calls = np.where(confidence >= 0.5, np.asarray(ids, dtype=object)[best], "none")
    out = selftrain.call_population(X, z, ids, best, confidence, confidence >= 0.5, params, 0.5)
    assert out is not None
    calls, conf, seeds, diagnostics = out[:4]
    assert diagnostics["specificity"] == {}  # no gene panel: no specificity test
    assert 0.05 <= diagnostics["temperature"] <= 20.0
    calls = np.where(calls == "", "none", calls)
    assert np.mean(mixture_calls == truth) < 0.7
    assert np.mean(calls == truth) >= 0.8
    assert set(seeds) == {"A", "B", state_seeds.NONE_CLASS} and conf.min() >= 0 and conf.max() <= 1
    # the cells it calls are right (seeds 4-6: 0.92-0.95)
    called = calls != "none"
    assert np.mean(calls[called] == truth[called]) >= 0.9 and (conf[called] >= 0.5).all()
    again = selftrain.call_population(X, z, ids, best, confidence, confidence >= 0.5, params, 0.5)
    assert again is not None and (again[0] == out[0]).all() and np.array_equal(again[1], out[1])


def test_self_training_needs_cells_and_two_seeded_classes():
    X, z, best, confidence, _ = programme_population(seed=5, n=40)
    params = state_params.SelfTrainParams()
    assert selftrain.call_population(X, z, ["A", "B"], best, confidence, confidence >= 0.5, params, 0.5) is None
    X, z, best, confidence, _ = programme_population(seed=5)
    none_only = np.zeros(z.shape[0], dtype=bool)
    assert not state_seeds.usable(state_seeds.seeds(["A", "B"], best, confidence, none_only, z + 5.0, params), params)


def test_principal_components_centre_each_sample():
    """A gene-wise shift between two samples of the same cells moves no cell in PC space."""
    import scipy.sparse as sp

    rng = np.random.default_rng(0)
    base = rng.gamma(2.0, 1.0, (60, 40)) * (rng.random((60, 40)) < 0.6)
    base[:30, :5] += 3.0  # a "state": genes 0-4 high in the first 30 cells
    shift = np.where(rng.random(40) < 0.5, 2.0, 0.0)
    X = sp.csr_matrix(np.vstack([base, base + shift]))
    samples = np.repeat(["s1", "s2"], 60)
    params = state_params.SelfTrainParams(n_pcs=3)
    pcs = state_expression.principal_components(X, params, samples)
    assert pcs.shape == (120, 3)
    np.testing.assert_allclose(pcs[:60], pcs[60:], atol=1e-8)
    assert abs(pcs[:30, 0].mean() - pcs[30:60, 0].mean()) > 1.0  # the first component is the state
    pooled = state_expression.principal_components(X, params)  # one sample: the shift is the first component
    assert abs(pooled[:60, 0].mean() - pooled[60:, 0].mean()) > 1.0


def test_principal_components_of_tall_populations_from_the_covariance_equal_arpack(monkeypatch):
    """From ``gram_cells`` cells on, the components come from the centred gene covariance: the same components as
    ARPACK's up to sign (several samples, more rows than one dense block, a population of a programme and noise)."""
    import scipy.sparse as sp

    rng = np.random.default_rng(4)
    n, n_genes = 9000, 300
    dense = rng.poisson(rng.gamma(0.4, 1.0, n_genes), size=(n, n_genes)).astype(float)
    dense[: n // 3, :12] += rng.poisson(3.0, size=(n // 3, 12))  # a programme in a third of the cells
    X = sp.csr_matrix(np.log1p(dense))
    samples = rng.choice(["s1", "s2", "s3", "s4"], n)
    monkeypatch.setattr(state_expression, "_GRAM_BLOCK_VALUES", 1000 * n_genes)  # 9 blocks of 1,000 rows
    arpack = state_expression.principal_components(X, state_params.SelfTrainParams(gram_cells=10**9), samples)
    gram = state_expression.principal_components(X, state_params.SelfTrainParams(gram_cells=n), samples)
    assert gram.shape == arpack.shape == (n, state_params.SelfTrainParams().n_pcs)
    sign = np.sign((gram * arpack).sum(axis=0))
    np.testing.assert_allclose(gram * sign, arpack, atol=1e-6)
    assert abs(gram[: n // 3, 0].mean() - gram[n // 3:, 0].mean()) > 1.0  # the first component is the programme
    # a float32 population (what log_expression reads) is read in float64 blocks: exactly its float64 copy's result
    single = state_expression.principal_components(sp.csr_matrix(X, dtype=np.float32),
                                                   state_params.SelfTrainParams(gram_cells=n), samples)
    double = state_expression.principal_components(
        sp.csr_matrix(sp.csr_matrix(X, dtype=np.float32), dtype=np.float64), state_params.SelfTrainParams(gram_cells=n),
        samples)
    np.testing.assert_array_equal(single, double)


def test_square_means_and_row_stack_equal_the_sparse_expressions_they_replace(monkeypatch):
    """Memory-bounded sample sums, column mean squares and row stacking: the arrays the whole-matrix expressions give"""
    import scipy.sparse as sp

    rng = np.random.default_rng(8)
    counts = sp.csr_matrix(rng.poisson(0.4, size=(700, 90)).astype(np.float32))
    X = state_expression.log_expression(counts)  # float32, indices unsorted within rows (a matrix product)
    monkeypatch.setattr(state_expression, "_GRAM_BLOCK_VALUES", 1000)  # several chunks of values
    np.testing.assert_array_equal(state_expression._square_means(X), np.asarray(X.multiply(X).mean(axis=0)).ravel())
    codes = rng.integers(0, 3, X.shape[0])
    onehot = sp.csr_matrix((np.ones(codes.size), (np.arange(codes.size), codes)), shape=(codes.size, 3))
    np.testing.assert_array_equal(state_expression._sample_sums(X, codes, 3), (onehot.T @ X).toarray())
    parts = [X[lo:lo + 128] for lo in range(0, X.shape[0], 128)]
    stack = state_expression._RowStack(X.shape[0], X.shape[1], X.nnz)
    for part in parts:
        stack.append(part)
    stacked, expected = stack.matrix(), sp.vstack(parts, format="csr")
    for name in ("data", "indices", "indptr"):
        np.testing.assert_array_equal(getattr(stacked, name), getattr(expected, name))
    # a log matrix holding a gene twice in a cell: the self-training reads their sum (as the counts' matrix product
    # does), so value-by-value sums equal the sparse ones; the user's matrix keeps its entries
    logged = sp.csr_matrix((np.array([0.5, 0.25, 1.0, 2.0], dtype=np.float32), np.array([0, 0, 1, 2]),
                            np.array([0, 3, 4])), shape=(2, 3))
    read = state_expression.log_expression(logged)
    assert read.nnz == 3 and logged.nnz == 4
    np.testing.assert_array_equal(read.toarray(), [[0.75, 1.0, 0.0], [0.0, 0.0, 2.0]])
    expected_squares = np.asarray(logged.multiply(logged).mean(axis=0)).ravel()
    np.testing.assert_array_equal(state_expression._square_means(read), expected_squares)
    short = state_expression._RowStack(X.shape[0], X.shape[1], X.nnz)
    short.append(parts[0])
    with pytest.raises(RuntimeError, match="rows and"):
        short.matrix()


def test_population_of_a_backed_dense_matrix_is_read_in_chunks_as_in_memory(tmp_path):
    """Sweep 63: a backed dense X (an h5py dataset, no ``to_memory``) went down the in-memory branch, which read the
    population's rows unsorted in one go: h5py refused them (TypeError), so call_states failed on such a file."""
    from hcctme._constants import STATE_SELFTRAIN_HVG_MARGIN
    from hcctme.tl._call_states import _population_expression

    rng = np.random.default_rng(63)
    X = rng.poisson(0.8, size=(300, 600)).astype(np.float32)
    ad.AnnData(X=X).write_h5ad(tmp_path / "dense.h5ad")
    backed = ad.read_h5ad(tmp_path / "dense.h5ad", backed="r")
    rows = rng.permutation(300)[:240]  # a population's rows come in the calls' order, not the file's
    samples, clean, gene_rank = np.repeat(["a", "b", "c"], 100), rng.random(240) < 0.9, rng.permutation(600)
    params = state_params.SelfTrainParams(n_hvgs=20)
    chunked, _, kept = _population_expression(backed.X, rows, params, samples, clean, gene_rank)
    whole, _, every = _population_expression(X, rows, params, samples, clean, gene_rank)
    assert kept.size == 20 + STATE_SELFTRAIN_HVG_MARGIN and every.size == 600  # read in chunks: the candidates only
    assert chunked.shape == (240, kept.size) and (chunked != whole[:, gene_rank[kept]]).nnz == 0


def _cluster_seeds(groups, z, ids, mixture, params):
    return state_seeds.cluster_seeds(state_seeds.summarise(groups, z, ids, mixture, params), ids, params)


def _cluster_candidates(groups, z, ids, mixture, params):
    return state_seeds.cluster_candidates(state_seeds.summarise(groups, z, ids, mixture, params), ids, params)


def test_cluster_seeds_rules():
    params = state_params.SelfTrainParams()
    groups = np.repeat([0, 1, 2, 3], 10)
    ids = ["A", "B"]
    # cluster means: 0 -> A high; 1 -> A half as high (a naive-like programme); 2 -> B at z 0.5 with
    # mixture calls; 3 -> low in both
    z = np.repeat(np.array([[1.2, -0.5], [0.5, -0.5], [-0.5, 0.5], [-0.8, -0.8]]), 10, axis=0)
    mixture = np.where(groups == 2, "B", "").astype(object)
    labels = _cluster_seeds(groups, z, ids, mixture, params)
    assert list(labels[::10]) == ["A", state_seeds.NONE_CLASS, "B", state_seeds.NONE_CLASS]
    # without B calls in its cluster (the mixture calls B in cluster 3 only), B's cluster (mean 0.5 < 1) is not
    # seeded; A's (mean 1.2 >= 1) still is
    mixture = np.where(groups == 3, "B", "").astype(object)
    labels = _cluster_seeds(groups, z, ids, mixture, params)
    assert list(labels[::10]) == ["A", state_seeds.NONE_CLASS, state_seeds.NONE_CLASS, state_seeds.NONE_CLASS]


def test_cluster_seeds_bar_is_set_by_clusters_of_min_seeds_cells():
    """A state's bar (half its highest cluster mean) is read over clusters of at least min_seeds cells: a 2-cell
    outlier cluster at 2.0 would put a 20-cell cluster at 0.6 under it (deep_10x generator seed 600)."""
    params = state_params.SelfTrainParams()
    groups = np.repeat([0, 1, 2], [2, 20, 20])
    ids = ["A", "B"]
    z = np.repeat(np.array([[2.0, -0.5], [0.6, -0.5], [-0.5, -0.5]]), [2, 20, 20], axis=0)
    mixture = np.where(groups == 1, "A", "").astype(object)
    assert list(_cluster_seeds(groups, z, ids, mixture, params)[[0, 2, 22]]) == \
        ["A", "A", state_seeds.NONE_CLASS]
    # with the outlier counted, 0.6 < 2.0 / 2: the cluster is no seed (its cells are A's mixture calls)
    tight = state_params.SelfTrainParams(min_seeds=2)
    assert _cluster_seeds(groups, z, ids, mixture, tight)[2] == ""


def test_cluster_seeds_backed_where_the_mixture_calls_no_other_state():
    # one call of a state is the mixture's word on it here (by default it takes min_seeds calls:
    # test_cluster_seeds_back_a_state_the_mixture_calls_in_too_few_cells)
    params = state_params.SelfTrainParams(min_seeds=1)
    groups = np.repeat([0, 1, 2, 3], 20)
    ids = ["A", "B"]
    # cluster 0: A's highest cluster (mean 0.5 < strong z 1), 1 of 20 cells (5 % < 10 %) called A, none other
    # state; cluster 1: B's highest cluster (0.5), 1 cell called B but 4 called A, and A high there too (0.3 >=
    # half of A's top): a sibling's cluster, which is A's candidate (A is high and backed there); 2, 3 low
    z = np.repeat(np.array([[0.5, -0.5], [0.3, 0.5], [-0.5, -0.5], [-0.6, -0.6]]), 20, axis=0)
    mixture = np.full(80, "", dtype=object)
    mixture[0] = "A"
    mixture[20], mixture[21:25] = "B", "A"
    labels = _cluster_seeds(groups, z, ids, mixture, params)
    assert list(labels[::20]) == ["A", "A", state_seeds.NONE_CLASS, state_seeds.NONE_CLASS]
    assert _cluster_candidates(groups, z, ids, mixture, params)[1] == ["A"]
    # the same calls where A is not high in cluster 1 (0.2 < half of 0.5): scattered calls, B's cluster is backed
    low_a = z.copy()
    low_a[20:40, 0] = 0.2
    assert list(_cluster_seeds(groups, low_a, ids, mixture, params)[::20]) == \
        ["A", "B", state_seeds.NONE_CLASS, state_seeds.NONE_CLASS]
    # ... also with no B call in it, B called elsewhere (10x generator seed 200: 1 progenitor call in 920 CD8 T
    # cells; with no B call anywhere the uncalled-state lead would back it instead)
    mixture[20], mixture[60] = "", "B"
    assert _cluster_seeds(groups, low_a, ids, mixture, params)[20] == "B"
    # ... not where the mixture calls a far smaller share of the cluster's cells than of the population's: 4 of 20
    # (0.2) against 45 of 80 (0.56) with clusters 2 and 3 called A is under half; 7 of 20 against 48 of 80 is half
    crowded = mixture.copy()
    crowded[40:80] = "A"
    crowded[60] = "B"
    assert _cluster_seeds(groups, low_a, ids, crowded, params)[20] == state_seeds.NONE_CLASS
    crowded[25:28] = "A"
    assert _cluster_seeds(groups, low_a, ids, crowded, params)[20] == "B"
    # a cluster the mixture calls nothing in gets no backing from this rule (B is called elsewhere)
    mixture[21:25] = ""
    assert _cluster_seeds(groups, low_a, ids, mixture, params)[20] == state_seeds.NONE_CLASS
    mixture[60] = ""
    mixture[0] = "A"
    mixture[20], mixture[21:25] = "B", "A"
    # a tie (1 A and 1 B call in A's cluster) does not back it where B is high there too (0.3), and does where B
    # is low there (-0.5: a scattered call); with the A and B calls in clusters 2 and 3 only, neither cluster 0
    # nor 1 is backed
    mixture[1] = "B"
    high_b = z.copy()
    high_b[:20, 1] = 0.3
    assert _cluster_seeds(groups, high_b, ids, mixture, params)[0] == state_seeds.NONE_CLASS
    assert _cluster_seeds(groups, z, ids, mixture, params)[0] == "A"
    mixture = np.where(groups == 2, "A", np.where(groups == 3, "B", "")).astype(object)
    assert list(_cluster_seeds(groups, z, ids, mixture, params)[::20]) == [state_seeds.NONE_CLASS] * 4


def test_cluster_seeds_back_a_state_the_mixture_calls_in_too_few_cells():
    """A state the mixture calls in fewer than ``min_seeds`` cells of the population is backed where it leads the
    cluster's next state by ``cluster_uncalled_lead``, not where a sibling is nearly as high (noisy generator seed
    103: KUPFFER uncalled, its clusters were "none of these"); ``min_seeds`` calls of it restore the mixture's guard.
    Before release 2.26 one call did (10x generator seed 200: 1 progenitor call in 765 CD8 T cells, and whether the
    progenitor cluster was seeded turned on the k-means cut)."""
    params = state_params.SelfTrainParams()
    assert params.min_seeds == 10
    ids = ["A", "B", "C"]
    groups = np.repeat(np.arange(4), 20)
    z = np.repeat(np.array([
        [1.2, -0.5, -0.5],  # 0: A's cluster, called A
        [0.6, 0.9, 0.2],    # 1: B best, leads A by 0.3 >= 0.25; 5 of 20 cells called A (high there), no B call
        [-0.5, 0.4, 0.5],   # 2: C best (uncalled too) but B nearly as high: leads by 0.1 < 0.25
        [-0.8, -0.8, -0.8],  # 3: low in all
    ]), 20, axis=0)
    mixture = np.full(80, "", dtype=object)
    mixture[:20], mixture[20:25] = "A", "A"
    none = state_seeds.NONE_CLASS
    assert list(_cluster_seeds(groups, z, ids, mixture, params)[::20]) == ["A", "B", none, none]
    lower = state_params.SelfTrainParams(cluster_uncalled_lead=0.05)  # C's lead of 0.1 suffices
    assert list(_cluster_seeds(groups, z, ids, mixture, lower)[::20]) == ["A", "B", "C", none]
    # 9 B calls in cluster 3 (low in all): still too few to say anything of B
    mixture[60:69] = "B"
    assert list(_cluster_seeds(groups, z, ids, mixture, params)[::20]) == ["A", "B", none, none]
    # 10: B's cluster, without B calls, is no longer backed for B; A, high there and backed by its 5 calls, is its
    # next candidate
    mixture[69] = "B"
    assert list(_cluster_seeds(groups, z, ids, mixture, params)[::20]) == ["A", "A", none, none]
    assert _cluster_candidates(groups, z, ids, mixture, params)[1] == ["A"]
    mixture[20:25] = ""  # without them nothing backs a state there
    assert list(_cluster_seeds(groups, z, ids, mixture, params)[::20]) == ["A", none, none, none]
    # a one-state population whose mixture calls nothing: the state's cluster is backed
    one = _cluster_seeds(groups[:40], z[:40, 1:2], ["B"], np.full(40, "", dtype=object), params)
    assert list(one[::20]) == [none, "B"]


def test_cluster_seeds_follow_the_mixture_majority():
    """A cluster whose best state does not seed it is not "none of these" when the mixture calls most of its cells
    one state: it seeds that state where its mean z-score is high, and nothing where it is not (10x seed 101: a
    cluster of progenitor cells highest in an unplanted sibling, terminal cells on the continuum under half of the
    terminal cluster's mean)."""
    params = state_params.SelfTrainParams()
    ids = ["A", "B", "C"]
    groups = np.repeat(np.arange(6), 20)
    z = np.repeat(np.array([
        [1.2, -0.5, -0.5],  # 0: A's cluster
        [-0.5, 0.6, 0.7],   # 1: highest in C, no C calls; 14 of 20 called B, B high (0.6 >= 0.9 / 2)
        [-0.5, 0.9, -0.5],  # 2: B's cluster
        [0.5, -0.5, -0.5],  # 3: A under half of A's top (0.5 < 0.6), 14 of 20 called A
        [0.4, -0.5, -0.5],  # 4: naive-like: A under half, 6 of 20 called A
        [-0.8, -0.8, -0.8],  # 5: low in all
    ]), 20, axis=0)
    mixture = np.full(120, "", dtype=object)
    mixture[:20], mixture[40:60] = "A", "B"
    mixture[20:34], mixture[60:74], mixture[80:86] = "B", "A", "A"
    labels = _cluster_seeds(groups, z, ids, mixture, params)
    none = state_seeds.NONE_CLASS
    assert list(labels[::20]) == ["A", "B", "B", "", none, none]
    # under the majority share (9 of 20) cluster 3 is "none of these"; cluster 1 still seeds B, its next state
    # that is high and backed (9 of 20 calls)
    mixture[29:34], mixture[69:74] = "", ""
    assert list(_cluster_seeds(groups, z, ids, mixture, params)[::20]) == ["A", "B", "B", none, none, none]
    # with no call there (the mixture calls C once elsewhere), neither B nor C is backed: "none of these"
    mixture[20:29], mixture[100] = "", "C"
    assert list(_cluster_seeds(groups, z, ids, mixture, params)[::20]) == ["A", none, "B", none, none, none]


def test_combined_seeds_keep_none_seeds_the_mixture_does_not_call():
    none = state_seeds.NONE_CLASS
    clustered = np.array(["A", "A", "A", none, none, none, none, ""], dtype=object)
    mixture = np.array(["A", "", "B", "", none, "", "A", "A"], dtype=object)  # "" = no confident mixture seed
    called = np.array([True, False, True, True, False, False, True, True])  # any mixture call, confident or not
    labels = state_seeds.combined_seeds(clustered, mixture, called)
    # cell 2: a confident B in A's cluster; cell 3: a low-confidence call in a "none" cluster; cell 6: a confident A
    assert list(labels) == ["A", "A", "", "", none, none, "", ""]
    assert list(clustered) == ["A", "A", "A", none, none, none, none, ""]  # inputs untouched


def test_confirm_seeds_leaves_clusters_without_a_seed_alone():
    groups = np.repeat([0, 1], 10)
    labels = np.where(groups == 0, "", state_seeds.NONE_CLASS).astype(object)
    out, report = state_seeds.confirm_seeds(labels, groups, ["S"], None, np.zeros((20, 1)))  # nothing to test
    assert list(out) == list(labels) and report["S"]["clusters_tested"] == 0


def test_smooth_averages_neighbours():
    pcs = np.array([[0.0], [0.1], [0.2], [10.0]])
    probs = np.array([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0], [0.0, 1.0]])
    params = state_params.SelfTrainParams(n_neighbors=2, smoothing=0.5)
    neighbours = selftrain.nearest(pcs, params)
    assert sorted(neighbours[0]) == [1, 2] and sorted(neighbours[3]) == [1, 2]  # never the cell itself
    out = selftrain.smooth(probs, neighbours, params)
    np.testing.assert_allclose(out[0], [0.5 * 1.0 + 0.5 * 0.5, 0.5 * 0.5])  # neighbours: cells 1 and 2
    np.testing.assert_allclose(out.sum(axis=1), 1.0)
    no_smoothing = state_params.SelfTrainParams(smoothing=0.0)
    assert selftrain.nearest(pcs, no_smoothing) is None
    assert np.array_equal(selftrain.smooth(probs, None, no_smoothing), probs)
    # a large population searches a random pool of cells: with the pool as large as the population the
    # result is the exact one, and with a smaller pool each cell still averages n_neighbors other cells
    rng = np.random.default_rng(1)
    pcs = rng.normal(size=(300, 3))
    probs = rng.dirichlet([1.0, 1.0], 300)
    default = state_params.SelfTrainParams()

    def smoothed(pool: int) -> np.ndarray:
        return selftrain.smooth(probs, selftrain.nearest(pcs, replace(default, neighbour_pool=pool)), default)

    exact = smoothed(300)
    np.testing.assert_allclose(smoothed(10_000), exact)
    pooled = smoothed(100)
    np.testing.assert_allclose(pooled.sum(axis=1), 1.0)
    assert not np.allclose(pooled, exact) and np.abs(pooled - exact).max() < 0.5


def test_call_states_self_train_switch(fake_library):
    adata = _scored_adata()
    off = hcctme.tl.call_states(adata, cell_type_key="cell_type", self_train=False, copy=True)
    on = hcctme.tl.call_states(adata, cell_type_key="cell_type", copy=True)
    # the fake data have no expression (3 genes, all zero): self-training is skipped, calls unchanged
    assert on.uns["hcctme_state_params"]["self_train"]["seeds"] == {}
    assert (on.obs["hcctme_state"] == off.obs["hcctme_state"]).all()
    assert on.uns["hcctme_state_params"]["params"]["self_train"] is True
    assert off.uns["hcctme_state_params"]["params"]["self_train"] is False
    on_record, off_record = on.uns["hcctme_state_params"]["self_train"], off.uns["hcctme_state_params"]["self_train"]
    assert set(on_record) == set(off_record) >= {*SELF_TRAIN_RECORD, "declined"}  # off: the same keys, these empty
    assert all(off_record[key] == {} for key in [*SELF_TRAIN_RECORD, "declined"])


def test_small_populations_are_recorded_and_warned(fake_library, caplog):
    adata = _scored_adata()
    with caplog.at_level(logging.WARNING, logger="hcctme"):
        full = hcctme.tl.call_states(adata, cell_type_key="cell_type", sample_key="patient", copy=True)
    # 900 TAMs for 3 states (200 needed) and 600 CD4 T cells for 1 (120 needed)
    assert full.uns["hcctme_state_params"]["self_train"]["small_populations"] == {}
    assert "self-training's clusters need" not in caplog.text
    small = adata[np.r_[0:150, 900:1500]].copy()  # 150 of the TAMs, all the CD4 T cells
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="hcctme"):
        out = hcctme.tl.call_states(small, cell_type_key="cell_type", sample_key="patient", copy=True)
    context = out.obs["hcctme_state_context"].astype(str)
    clean = int(((context == "macrophage") & (out.obs["hcctme_state_artefact"].astype(str) == "")).sum())
    assert 0 < clean <= 150
    assert out.uns["hcctme_state_params"]["self_train"]["small_populations"] == {
        "macrophage": {"cells": clean, "needed": 200, "states": 3, "seedings": 0}}  # 0: not self-trained here
    assert f"macrophage: {clean} cells (no artefact) for 3 states, fewer than the 200" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="hcctme"):
        off = hcctme.tl.call_states(small, cell_type_key="cell_type", self_train=False, copy=True)
    assert off.uns["hcctme_state_params"]["self_train"]["small_populations"] == {}
    assert "self-training's clusters need" not in caplog.text


def test_seedings_agreement_is_recorded_and_warned(caplog):
    """The record of a population's seedings and the warning of the states they disagree on (the record of a called
    population: ``test_states_real.py::test_seedings_agreement_marks_the_cut_dependent_calls``)."""
    with caplog.at_level(logging.WARNING, logger="hcctme"):
        entry = seeding_record("cd8_t", {"seedings": 3, "agreement": 0.7, "state_agreement": {"A": 0.95, "B": 0.5},
                                         "classes": {"A": 1.0, "B": 2 / 3}})
    assert entry == {"seedings": 3, "agreement": 0.7, "states": {"A": 0.95, "B": 0.5},
                     "classes": {"A": 1.0, "B": 2 / 3}}
    assert "cd8_t: of the calls of ['B'], a single one of the 3 seedings" in caplog.text and "'A'" not in caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="hcctme"):
        seeding_record("cd8_t", {"seedings": 3, "agreement": 0.9, "state_agreement": {"A": 0.8}})
        seeding_record("cd4_t", {"seedings": 1, "agreement": float("nan"), "state_agreement": {}})
    assert "seedings" not in caplog.text  # at the line, and one seeding: no warning
    with caplog.at_level(logging.WARNING, logger="hcctme"):  # no seeding trains the classifier
        entry = seeding_record("cd4_t", {"seedings": 9, "agreement": 0.9, "state_agreement": {},
                                         "mixture_kept": {"TREG": 2 / 9, "CD4_X": 0.0, "CD4_Y": 1.0},
                                         "established": []})
    assert entry == {"seedings": 9, "agreement": 0.9, "states": {}, "mixture_kept": {"TREG": 2 / 9, "CD4_X": 0.0,
                                                                                     "CD4_Y": 1.0}, "established": []}
    assert "only these shares of the 9 seedings' specificity tests keep the mixture's calls of ['TREG']" in caplog.text
    assert "CD4_X" not in caplog.text and "CD4_Y" not in caplog.text  # all drop (declined_states) or all keep
    trained_minority = {"seedings": 27, "agreement": 0.9, "state_agreement": {}, "classes": {"TAM2_SPP1": 0.5},
                        "mixture_kept": {"TAM2_SPP1": 1.0, "KUPFFER": 0.0}}
    for established, split in (([], False), (["TAM2_SPP1"], False), (["TAM2_SPP1"], True)):
        kept = {**trained_minority["mixture_kept"], "TAM1_FOLR2": 0.3} if split else trained_minority["mixture_kept"]
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger="hcctme"):
            seeding_record("macrophage", {**trained_minority, "mixture_kept": kept, "established": established})
        mine = [r.getMessage() for r in caplog.records if "have the seeds to train the classifier" in r.getMessage()]
        assert len(mine) == (1 if established or split else 0)  # nothing split, none established: no warning
        if mine:
            assert mine[0].startswith("macrophage: fewer than half of the 27 seedings have the seeds")
            assert ("only these shares of them keep ['TAM1_FOLR2']" in mine[0]) == split
            assert ("each of ['TAM2_SPP1'] through its list's gene test (established)" in mine[0]) == bool(established)
            assert ("except the cells" in mine[0]) == bool(established)
    # nothing split (all seedings drop the state: declined_states warns of it) and none established: no message
    assert _averaged_mixture_warning("cd4_t", {"seedings": 9, "mixture_kept": {"TREG": 0.0}, "established": []}) is None


def test_small_populations_count_the_cells_without_artefacts():
    params = state_params.SelfTrainParams()
    contexts = np.array(["cd4_t"] * 125 + ["macrophage"] * 250 + ["endothelial"] * 130, dtype=object)
    artefact = np.full(contexts.size, "", dtype=object)
    artefact[:10] = "STRESS"  # 115 clean CD4 T cells of 125
    states = {"cd4_t": ["TREG"], "macrophage": ["A", "B", "C"], "endothelial": ["E"], "neutrophil": ["N"]}
    out = small_populations(contexts, artefact, states, params)
    # 1 state needs 20 x 6 = 120 cells, 3 states 20 x 10 = 200; a context without cells is not listed
    assert out == {"cd4_t": {"cells": 115, "needed": 120, "states": 1}}


@pytest.mark.parametrize("n_states", [1, 3, 7, 20])
def test_cells_for_clusters_is_where_kmeans_gets_all_its_clusters(n_states):
    params = state_params.SelfTrainParams()
    needed = state_seeds.cells_for_clusters(n_states, params)
    rng = np.random.default_rng(0)
    full = state_seeds.clusters(rng.normal(size=(needed, 5)), n_states, params)
    fewer = state_seeds.clusters(rng.normal(size=(needed - 1, 5)), n_states, params)
    assert np.unique(full).size == min(2 * n_states + 4, params.max_clusters)
    assert np.unique(fewer).size == np.unique(full).size - 1


def test_call_states_writes_h5ad(fake_library, tmp_path):
    """Labels holding "/" are table values, not uns keys: anndata's own writer keeps them (it wrote a
    "TAMs/other" key as nested groups, and failed where "TAMs" was a key too)."""
    import anndata

    adata = _scored_adata()
    adata.obs["cell_type"] = adata.obs["cell_type"].astype(str).replace({"Cluster 9": "TAMs/other"})
    hcctme.tl.call_states(adata, cell_type_key="cell_type", sample_key="patient", context_map={"TAMs/other": None})
    path = tmp_path / "x.h5ad"
    adata.write_h5ad(path)
    back = anndata.read_h5ad(path)
    info, written = back.uns["hcctme_state_params"], adata.uns["hcctme_state_params"]
    assert map_from_table(info["mapping"]) == {"TAMs": "macrophage", "Tregs and CD4": "cd4_t",
                                               "Hepatocytes": "hepatocyte", "TAMs/other": UNASSIGNED}
    pd.testing.assert_frame_equal(info["mapping"], written["mapping"], check_dtype=False)
    assert map_from_table(info["params"]["context_map"]) == {"TAMs/other": UNASSIGNED}
    assert (back.obs["hcctme_state"].astype(str) == adata.obs["hcctme_state"].astype(str)).all()


def test_call_states_copy_and_key_added(fake_library, digest):
    adata = _scored_adata()
    before = digest(adata)
    out = hcctme.tl.call_states(adata, cell_type_key="cell_type", key_added="st", copy=True)
    assert digest(adata) == before
    assert {"st", "st_confidence", "st_context", "st_artefact"} <= set(out.obs.columns)
    assert {"st", "st_params"} <= set(out.uns)


def test_min_confidence_is_monotone(fake_library):
    adata = _scored_adata()
    n_called = []
    for threshold in (0.2, 0.5, 0.9, 1.0):
        out = hcctme.tl.call_states(adata, cell_type_key="cell_type", min_confidence=threshold, copy=True)
        n_called.append(int((out.obs["hcctme_state"] != UNASSIGNED).sum()))
    assert n_called == sorted(n_called, reverse=True) and n_called[0] > n_called[2]


def test_context_without_state_signatures_stays_unassigned(fake_library):
    adata = _scored_adata()
    adata.obs["cell_type"] = adata.obs["cell_type"].replace({"TAMs": "Neutrophils"})  # no NEU_STATE_X scored
    hcctme.tl.call_states(adata, cell_type_key="cell_type")
    neu = (adata.obs["cell_type"] == "Neutrophils").to_numpy()
    assert (adata.obs["hcctme_state"][neu] == UNASSIGNED).all()
    assert (adata.obs["hcctme_state_context"][neu] == "neutrophil").all()


def test_context_map_used(fake_library):
    adata = _scored_adata()
    hcctme.tl.call_states(adata, cell_type_key="cell_type", context_map={"Cluster 9": "macrophage",
                                                                         "TAMs": None})
    info = adata.uns["hcctme_state_params"]
    used = info["mapping"].set_index("label")
    assert used.loc["TAMs", "context"] == UNASSIGNED and used.loc["TAMs", "source"] == "context_map"
    assert used.loc["Cluster 9", "source"] == "context_map" and used.loc["Hepatocytes", "source"] == "rule"
    assert map_from_table(info["params"]["context_map"]) == {"Cluster 9": "macrophage", "TAMs": UNASSIGNED}
    assert (adata.obs.loc[adata.obs.cell_type == "TAMs", "hcctme_state"] == UNASSIGNED).all()
    assert (adata.obs.loc[adata.obs.cell_type == "Cluster 9", "hcctme_state_context"] == "macrophage").all()


def test_refine_leiden(fake_library):
    pytest.importorskip("igraph")
    adata = _scored_adata()
    hcctme.tl.call_states(adata, cell_type_key="cell_type", sample_key="patient", refine="leiden")
    assert "hcctme_state_unrefined" in adata.obs
    refine = adata.uns["hcctme_state_params"]["refine"]
    assert refine["method"] == "leiden" and refine["graph"].startswith("kNN graph")
    assert set(refine["voting"]) == {"macrophage", "cd4_t"}
    assert all(v["clusters"] >= v["voted"] >= 1 for v in refine["voting"].values())
    # the strict-majority vote never turns a clean cell's call into "unassigned" (only a confidence < 0.5 does)
    before = adata.obs["hcctme_state_unrefined"].astype(str).to_numpy()
    lost = (before != UNASSIGNED) & (adata.obs["hcctme_state"].astype(str).to_numpy() == UNASSIGNED)
    clean = adata.obs["hcctme_state_artefact"].astype(str).to_numpy() == ""
    assert np.all(adata.obs["hcctme_state_confidence"].to_numpy()[lost & clean] < 0.5)
    calls = adata.obs["hcctme_state"].astype(str).to_numpy()
    rp = _recall_precision(calls, adata.obs["truth"].to_numpy(), ["TAM_A", "TAM_B", "TAM_C"])
    assert all(r >= 0.7 and p >= 0.7 for r, p in rp.values()), rp
    assert adata.obs["hcctme_state_confidence"].between(0, 1).all()
    ctx = adata.obs["hcctme_state_context"].astype(str)
    assert set(adata.obs["hcctme_state"][ctx == "cd4_t"].astype(str)) <= {"TREG_X", UNASSIGNED}


def test_artefact_column_makes_cells_none_of_these(fake_library):
    adata = _scored_adata()
    rng = np.random.default_rng(5)
    stress = rng.normal(0.2, 0.02, adata.n_obs)
    hit = np.zeros(adata.n_obs, dtype=bool)
    hit[rng.choice(900, 60, replace=False)] = True  # TAM cells with a stress programme
    stress[hit] = 0.8
    adata.obsm["hcctme_scores"]["MY_STRESS"] = stress
    hcctme.tl.call_states(adata, cell_type_key="cell_type", sample_key="patient", artefacts=["MY_STRESS"])
    calls = adata.obs["hcctme_state"].astype(str).to_numpy()
    assert (calls[hit] == UNASSIGNED).all()
    assert (adata.obs["hcctme_state_artefact"].astype(str).to_numpy()[hit] == "MY_STRESS").all()
    assert (adata.obs["hcctme_state_confidence"].to_numpy()[hit] == 0).all()
    assert np.mean(adata.obs["hcctme_state_artefact"].astype(str).to_numpy()[~hit] != "") < 0.01
    info = adata.uns["hcctme_state_params"]
    assert info["artefact_signatures"]["macrophage"] == ["MY_STRESS"]
    # the 60 stressed cells, and the clean cells beyond 3 sd of the clean component (normal tail: ~1 of 840)
    assert 60 <= info["diagnostics"]["macrophage"][UNASSIGNED]["artefacts"] <= 63


def test_library_artefact_collection_is_used(fake_library, monkeypatch):
    sigs = [*fake_library, Signature(id="ART_STRESS", genes_up=("G1", "G2", "G3"), collection="artefacts",
                                     role="artefact")]
    lib = SignatureSet(sigs, library_version="test+2")
    monkeypatch.setattr(hcctme.sig, "library", lambda: lib)
    adata = _scored_adata()
    adata.obsm["hcctme_scores"]["ART_STRESS"] = np.where(np.arange(adata.n_obs) < 40, 0.9, 0.1)
    hcctme.tl.call_states(adata, cell_type_key="cell_type")
    assert (adata.obs["hcctme_state"].astype(str).to_numpy()[:40] == UNASSIGNED).all()
    assert adata.uns["hcctme_state_params"]["artefact_signatures"]["cd4_t"] == ["ART_STRESS"]


@pytest.mark.parametrize(("artefacts", "error"), [("MY_OWN_SET", TypeError), (["NOPE"], KeyError)])
def test_bad_artefacts(fake_library, digest, artefacts, error):
    adata = _scored_adata()
    before = digest(adata)
    with pytest.raises(error, match="artefacts"):
        hcctme.tl.call_states(adata, cell_type_key="cell_type", artefacts=artefacts)
    assert digest(adata) == before


# --------------------------------------------------------------------------------------------------
# Bad input: clear errors, input untouched
# --------------------------------------------------------------------------------------------------
def test_missing_scores(fake_library, digest):
    adata = _scored_adata()
    del adata.obsm["hcctme_scores"]
    before = digest(adata)
    with pytest.raises(KeyError, match=r"tl\.score"):
        hcctme.tl.call_states(adata, cell_type_key="cell_type")
    assert digest(adata) == before


def test_unknown_cell_type_key(fake_library, digest):
    adata = _scored_adata()
    before = digest(adata)
    with pytest.raises(KeyError, match="celltype"):
        hcctme.tl.call_states(adata, cell_type_key="celltype")
    with pytest.raises(KeyError, match="sample"):
        hcctme.tl.call_states(adata, cell_type_key="cell_type", sample_key="sample")
    assert digest(adata) == before


def test_all_labels_unmapped(fake_library, digest):
    adata = _scored_adata()
    adata.obs["cluster"] = np.where(np.arange(adata.n_obs) % 2, "c1", "c2")
    before = digest(adata)
    with pytest.raises(ValueError, match="context_map") as err:
        hcctme.tl.call_states(adata, cell_type_key="cluster")
    assert "'c1'" in str(err.value) and "'c2'" in str(err.value)
    assert digest(adata) == before


def test_bad_context_map_values(fake_library, digest):
    adata = _scored_adata()
    before = digest(adata)
    with pytest.raises(ValueError, match="vocabulary"):
        hcctme.tl.call_states(adata, cell_type_key="cell_type", context_map={"TAMs": "TAM2"})
    assert digest(adata) == before


@pytest.mark.parametrize(("kwargs", "error"), [
    ({"min_confidence": 1.5}, ValueError), ({"min_confidence": "high"}, TypeError),
    ({"refine": "louvain"}, ValueError), ({"key_added": ""}, TypeError),
    ({"refine_resolution": 0}, ValueError), ({"self_train": "yes"}, TypeError), ({"layer": "nope"}, KeyError),
])
def test_bad_parameters(fake_library, digest, kwargs, error):
    adata = _scored_adata()
    before = digest(adata)
    with pytest.raises(error):
        hcctme.tl.call_states(adata, cell_type_key="cell_type", **kwargs)
    assert digest(adata) == before


def test_no_state_signatures_scored(fake_library, digest):
    adata = _scored_adata()
    adata.obsm["hcctme_scores"] = adata.obsm["hcctme_scores"][["MACRO_M2_X", "MY_OWN_SET"]]
    before = digest(adata)
    with pytest.raises(ValueError, match="no state signature"):
        hcctme.tl.call_states(adata, cell_type_key="cell_type")
    assert digest(adata) == before


def test_nan_scores_refused(fake_library, digest):
    adata = _scored_adata()
    adata.obsm["hcctme_scores"].iloc[0, 0] = np.nan
    before = digest(adata)
    with pytest.raises(ValueError, match="NaN"):
        hcctme.tl.call_states(adata, cell_type_key="cell_type")
    assert digest(adata) == before


# --------------------------------------------------------------------------------------------------
# The simulator (ground truth) and real data
# --------------------------------------------------------------------------------------------------


def _state_table(adata) -> pd.DataFrame:
    calls = adata.obs["hcctme_state"].astype(str).to_numpy()
    truth = adata.obs["state_true"].astype(str).to_numpy()
    rows = []
    for state in sorted(set(truth) - {UNASSIGNED}):
        tp = int(np.sum((calls == state) & (truth == state)))
        rows.append({"state": state, "n_true": int(np.sum(truth == state)), "n_called": int(np.sum(calls == state)),
                     "recall": tp / max(np.sum(truth == state), 1), "precision": tp / max(np.sum(calls == state), 1)})
    return pd.DataFrame(rows).set_index("state")


def _oracle_recall(adata, precision: float = 0.85) -> pd.Series:
    """Best recall any threshold on the state's own score reaches at ``precision`` (its parent's cells)."""
    scores = adata.obsm["hcctme_scores"]
    truth = adata.obs["state_true"].astype(str)
    parent = adata.uns["hcctme_sim"]["state_parent"]
    out = {}
    for state, cell_type in parent.items():
        if state not in scores:
            continue
        rows = (adata.obs["cell_type"] == cell_type).to_numpy()
        x = scores.loc[rows, state].to_numpy()
        is_state = (truth[rows] == state).to_numpy()
        order = np.argsort(-x, kind="stable")
        tp = np.cumsum(is_state[order])
        prec = tp / np.arange(1, len(x) + 1)
        rec = tp / max(is_state.sum(), 1)
        ok = prec >= precision
        out[state] = float(rec[ok].max()) if ok.any() else 0.0
    return pd.Series(out, name="oracle_recall_at_p85")


@pytest.fixture(scope="module")
def demo_called():
    adata = hcctme.datasets.demo()
    hcctme.tl.score(adata)
    hcctme.tl.call_states(adata, cell_type_key="cell_type", sample_key="patient")
    return adata


@pytest.mark.slow
def test_simulator_demo_recall_precision(demo_called):
    """Calls on datasets.demo(): what they reach with library v2 (not evidence: the demo plants library genes).

    The issue-4 target (recall and precision >= 0.85) held with library v1; with v2 the demo's CD8,
    neutrophil and TREG cells compete with new sibling states (CD8_TSTR, KUPFFER) the demo does not
    plant, and TAM3_MT1G (2 genes in v2) is never called. Library 2.1 + the cluster-seeded self-training
    measured precision 1.0, recall 0.38-0.73 (mean 0.54; M_MDSC 0.04); with the specificity test of the seeds
    and the calibrated (cross-fitted, temperature-scaled) classifier: precision 0.96-1.0, recall 0.59-0.78
    (mean 0.70; M_MDSC 0.76); with every seeded state carried (not only the short panels) recall 0.546-0.738
    (CD8_TEX_PROGENITOR 101 of 185, 0.546; one cell fewer than before). Release 2.7 (the "none of these" seeds
    purified, and "none" left out of a refit that predicts it confidently in under 10 cells): M_MDSC 125 calls
    instead of 121, the 4 more all wrong (precision 0.975 -> 0.944), CAF_IFNG_ICAF 51 -> 53 right calls; every
    other row as before. Release 2.26 (three seedings): M_MDSC 117 of its 125 calls right, not 118 (0.944 ->
    0.936); every other row as before. Floors: precision >= 0.93 (M_MDSC), >= 0.95 for the others, recall >= 0.54,
    mean recall >= 0.65.
    """
    table = _state_table(demo_called).join(_oracle_recall(demo_called))
    text = table.round(3).to_string()
    print("\nstate calls on datasets.demo() (ucell scores):\n" + text)
    logging.getLogger("hcctme").info("demo cohort state calls:\n%s", text)
    assert set(table.index) == set(demo_called.uns["hcctme_sim"]["state_parent"])
    # the states are called only inside their parent type
    parent = demo_called.uns["hcctme_sim"]["state_parent"]
    calls = demo_called.obs["hcctme_state"].astype(str)
    for state, cell_type in parent.items():
        assert (demo_called.obs.loc[calls == state, "cell_type"] == cell_type).all()
    assert table.loc["TAM3_MT1G", "n_called"] == 0
    called = table.drop(index="TAM3_MT1G")
    assert called.loc["M_MDSC", "precision"] >= 0.93, table
    assert (called.drop(index="M_MDSC")["precision"] >= 0.95).all(), table
    assert (called["recall"] >= 0.54).all(), table
    assert called["recall"].mean() >= 0.65, table


CONFUSED_WITH = {"CAF_WOUND_MYCAF": ("CAF_ECM_MYCAF",)}  # siblings the caller cannot tell apart without it


@pytest.mark.slow
@pytest.mark.parametrize("absent", ["TAM1_FOLR2", "M_MDSC", "CD8_TEFF", "PMN_MDSC", "CAF_WOUND_MYCAF", "TREG"])
def test_absent_state_gets_few_calls(demo_called, absent):
    """A state missing from the data (its cells removed) is rarely called in the rest of its parent,
    and the parent's other states are still found (library 2.1 floors; see the demo test above).

    Before the specificity test of the cluster seeds, a cluster of the parent was seeded with the absent
    state whenever its score was highest there (24 % of the CD4 T cells called TREG without Tregs, 15 % of
    monocytes M_MDSC). Measured now: TREG, TAM1_FOLR2, CD8_TEFF, PMN_MDSC, M_MDSC 0 %. Known weakness:
    without wound myCAFs 20 % of the fibroblasts (the cells of its near-identical sibling ECM myCAF, which
    raise the wound list's shared genes) are called wound (recall of ECM 0).
    """
    adata = demo_called[demo_called.obs["state_true"] != absent].copy()
    hcctme.tl.call_states(adata, cell_type_key="cell_type", sample_key="patient")
    parent_type = adata.uns["hcctme_sim"]["state_parent"][absent]
    parent = adata.obs["cell_type"] == parent_type
    share = (adata.obs.loc[parent, "hcctme_state"] == absent).mean()
    assert share < (0.25 if absent in CONFUSED_WITH else 0.05)
    table = _state_table(adata)
    siblings = [s for s, t in adata.uns["hcctme_sim"]["state_parent"].items()
                if t == parent_type and s not in (absent, "TAM3_MT1G", *CONFUSED_WITH.get(absent, ()))]
    assert (table.loc[siblings, "recall"] >= 0.3).all(), table.loc[siblings]


@pytest.mark.slow
def test_simulator_noisy_cohort_reported():
    """Half the planted effects, twice the dispersion and patient batch sd: looser floors.

    The cluster-seeded self-training keeps precision at 0.84-1.0 here but leaves many noisy cells
    unassigned (library 2.1: recall 0.29-0.71, mean 0.53; with the specificity test and the calibrated
    classifier: precision 0.95-1.0, recall 0.53-0.72, mean 0.66).
    """
    adata = hcctme.datasets.simulate_cohort(12, 800, noise=2.0, random_state=1)
    hcctme.tl.score(adata)
    hcctme.tl.call_states(adata, cell_type_key="cell_type", sample_key="patient")
    table = _state_table(adata).join(_oracle_recall(adata))
    text = table.round(3).to_string()
    print("\nstate calls on simulate_cohort(12, 800, noise=2, random_state=1):\n" + text)
    logging.getLogger("hcctme").info("noisy cohort state calls:\n%s", text)
    # library v2 floors (see the demo test above): TAM3_MT1G (2 genes) is never called
    called = table.drop(index="TAM3_MT1G")
    assert (called["precision"] >= 0.9).all(), table
    assert (called["recall"] >= 0.45).all(), table
    assert called["recall"].mean() >= 0.6 and called["precision"].mean() >= 0.95, table


@pytest.mark.slow
def test_mouse_symbols_via_harmonisation(demo_called):
    from hcctme.sig import _genes

    orthologs = _genes.mouse_orthologs()
    to_mouse = dict(zip(orthologs["human_symbol"], orthologs["mouse_symbol"], strict=True))
    mouse = hcctme.datasets.demo()
    names = [to_mouse.get(g, g) for g in mouse.var_names]
    keep = ~pd.Index(names).duplicated()
    mouse = mouse[:, keep].copy()
    mouse.var_names = pd.Index(np.asarray(names)[keep])
    assert sum(n in set(orthologs["mouse_symbol"]) for n in mouse.var_names) > 0.5 * mouse.n_vars
    hcctme.pp.harmonize_genes(mouse, species="mouse")
    hcctme.tl.score(mouse)
    hcctme.tl.call_states(mouse, cell_type_key="cell_type", sample_key="patient")
    human_calls = demo_called.obs["hcctme_state"].astype(str)
    mouse_calls = mouse.obs["hcctme_state"].astype(str)
    assert (mouse_calls != UNASSIGNED).sum() > 0.5 * (human_calls != UNASSIGNED).sum()
    assert (mouse_calls == human_calls).mean() > 0.85
    table = _state_table(mouse)
    assert table["precision"].mean() >= 0.8, table


@pytest.mark.slow
def test_pbmc68k_reduced_treg_calls():
    """Real data (scanpy's bundled pbmc68k_reduced: scaled .X, log data in .raw).

    What the data supports: only 12 of the 50 TREG genes are among its 765 genes (no FOXP3,
    IL2RA, CTLA4) and the "CD4+/CD25 T Reg" bulk label (assigned by correlation to sorted
    populations) does not have higher TREG scores than the other CD4 labels, so no Treg call can
    be asserted honestly. The test checks the real-data path: scores from .raw, a context_map for
    the bulk labels, the 95 CD4 cells one population too small for its clusters (nine seedings),
    and what the caller makes of the mixture's one TREG call there: no seeding's cut keeps it at
    random state 0 (declined), so no cell is called TREG (release 2.32; release 2.31's cuts, the
    rows read as stored, kept the one call, in the T Reg label).
    """
    import scanpy as sc

    adata = sc.datasets.pbmc68k_reduced()
    hcctme.tl.score(adata, ["TREG", "TAM2_SPP1", "CD8_TEFF", "CD8_TEX_TERMINAL", "CD8_TEX_PROGENITOR"],
                    use_raw=True, min_coverage=0.2)
    cd4 = ["CD4+/CD25 T Reg", "CD4+/CD45RO+ Memory", "CD4+/CD45RA+/CD25- Naive T"]
    hcctme.tl.call_states(adata, cell_type_key="bulk_labels", context_map={label: "cd4_t" for label in cd4})
    info = adata.uns["hcctme_state_params"]
    used = map_from_table(info["mapping"])
    assert used["CD4+/CD25 T Reg"] == "cd4_t" and used["CD8+ Cytotoxic T"] == "cd8_t"
    assert used["CD34+"] == UNASSIGNED
    labels = adata.obs["bulk_labels"].astype(str)
    in_cd4 = labels.isin(cd4)
    assert (adata.obs["hcctme_state_context"].astype(str) == "cd4_t").sum() == in_cd4.sum() == 95
    assert info["mixture_counts"]["cd4_t"]["TREG"] == 1  # the mixture's one call
    small = info["self_train"]["small_populations"]["cd4_t"]
    assert small["cells"] == 95 and small["seedings"] == 9
    assert info["self_train"]["seedings"]["cd4_t"]["mixture_kept"] == {"TREG": 0.0}
    assert info["self_train"]["declined"]["cd4_t"] == {"TREG": 1}
    assert not (adata.obs["hcctme_state"].astype(str) == "TREG").any()


def test_cross_fitted_probabilities_are_held_out():
    """A cell's cross-fitted probabilities come from a model that did not see its label."""
    rng = np.random.default_rng(2)
    features = np.vstack([rng.normal(0, 1, (60, 3)), rng.normal(1.5, 1, (60, 3))])
    train = np.repeat(np.array(["A", "B"], dtype=object), 60)
    classes = np.array(["A", "B"], dtype=object)
    params = state_params.SelfTrainParams(folds=5)
    probs = selftrain.cross_fitted(features, train, classes, params)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0)
    flipped = train.copy()
    flipped[0] = "B"
    again = selftrain.cross_fitted(features, flipped, classes, params)
    np.testing.assert_array_equal(again[0], probs[0])
    assert not np.array_equal(again, probs)


def test_temperature_undoes_a_known_sharpening():
    from scipy.special import softmax

    rng = np.random.default_rng(3)
    true = softmax(rng.normal(0, 1.5, (4000, 3)), axis=1)
    classes = np.array(["A", "B", "C"], dtype=object)
    labels = np.array([rng.choice(classes, p=p) for p in true], dtype=object)
    sharpened = selftrain.scaled(true, 1 / 3)  # over-confident: log-probabilities x 3
    t = selftrain.temperature(sharpened, labels, classes)
    assert t == pytest.approx(3.0, rel=0.1)
    np.testing.assert_allclose(selftrain.scaled(sharpened, t), true, atol=0.03)
    assert selftrain.temperature(sharpened, np.full(4000, "", dtype=object), classes) == 1.0
    # labels of a class the model does not have are left out
    other = np.where(np.arange(4000) < 100, "D", labels).astype(object)
    assert selftrain.temperature(sharpened, other, classes) == pytest.approx(3.0, rel=0.1)


def test_temperature_weighs_every_class_the_same():
    """The fit weighs each label by the inverse of its count: as if every class had as many labelled cells."""
    from scipy.special import softmax

    rng = np.random.default_rng(4)
    classes = np.array(["A", "B"], dtype=object)
    # 40 cells labelled A and predicted A; 400 labelled B of which a quarter are predicted A (an impure seed class)
    side = np.r_[np.full(40, 3.0), np.full(300, -3.0), np.full(100, 3.0)]
    probs = softmax(rng.normal(0, 1, (440, 2)) + side[:, None] * [1, -1], axis=1)
    labels = np.repeat(np.array(["A", "B"], dtype=object), [40, 400])
    t = selftrain.temperature(probs, labels, classes)
    # the same fit as on the data with each class's cells replicated to the same count (here A x 10)
    counts = {c: int(np.sum(labels == c)) for c in classes}
    lcm = int(np.lcm(counts["A"], counts["B"]))
    reps = np.array([lcm // counts[c] for c in labels])
    t_replicated = selftrain.temperature(np.repeat(probs, reps, axis=0), np.repeat(labels, reps), classes)
    assert t == pytest.approx(t_replicated, rel=1e-4)
    unweighted = _unweighted_temperature(probs, labels, classes)
    assert abs(t - unweighted) > 0.1  # the large impure class no longer sets T alone
    assert t < unweighted  # its wrong labels pulled the unweighted T up (under-confident)


def _separable_with_none_seeds(rng, n_none=30):
    """Two classes whose 200 labelled cells are all predicted right, and "none of these" seeds near 50/50."""
    from scipy.special import softmax

    top = rng.uniform(0.6, 0.9, 200)  # the labelled class's probability
    p_a = np.r_[top[:100], 1.0 - top[100:]]
    none = softmax(rng.normal(0, 0.1, (n_none, 2)), axis=1)
    probs = np.vstack([np.column_stack([p_a, 1.0 - p_a]), none])
    labels = np.r_[np.repeat(["A", "B"], 100), np.full(n_none, state_seeds.NONE_CLASS)].astype(object)
    return probs, labels


def test_a_separable_fit_sharpens_to_its_bound_without_none_seeds():
    probs, labels = _separable_with_none_seeds(np.random.default_rng(5))
    classes = np.array(["A", "B"], dtype=object)
    assert np.all(probs[:200].argmax(axis=1) == (labels[:200] == "B"))  # every labelled cell predicted right
    without = np.where(labels == state_seeds.NONE_CLASS, "", labels).astype(object)
    assert selftrain.temperature(probs, without, classes) == pytest.approx(0.05, abs=1e-3)


def test_none_seeds_bound_the_sharpening_of_a_separable_fit_with_a_uniform_target():
    """Outlier exposure: the seeds of no class the model has should be none of its classes' confidently."""
    from scipy.optimize import minimize_scalar
    from scipy.special import logsumexp

    probs, labels = _separable_with_none_seeds(np.random.default_rng(5))
    classes = np.array(["A", "B"], dtype=object)
    t = selftrain.temperature(probs, labels, classes)
    assert t > 0.15  # three times the bound
    # the none seeds read 0.63 on average where the bound would read them 0.83; the labelled cells stay sharp
    none_top = {temp: selftrain.scaled(probs[200:], temp).max(axis=1).mean() for temp in (t, 0.05)}
    assert none_top[t] < 0.7 < none_top[0.05]
    assert selftrain.scaled(probs[:200], t).max(axis=1).mean() > 0.95
    # the loss written out: each class's mean log loss, and the none seeds' mean cross-entropy to (1/2, 1/2)
    logp = np.log(probs)

    def loss(temp):
        log_q = logp / temp - logsumexp(logp / temp, axis=1)[:, None]
        a, b = -log_q[:100, 0].mean(), -log_q[100:200, 1].mean()
        return (a + b - log_q[200:].mean()) / 3

    assert t == pytest.approx(minimize_scalar(loss, bounds=(0.05, 20.0), method="bounded").x, rel=1e-3)
    # more none seeds weigh the same (one class)
    more, more_labels = _separable_with_none_seeds(np.random.default_rng(5), n_none=300)
    assert selftrain.temperature(more, more_labels, classes) == pytest.approx(t, rel=0.1)


def test_none_seeds_count_as_a_class_where_the_model_has_one_and_not_where_its_fit_is_finite():
    probs, labels = _separable_with_none_seeds(np.random.default_rng(5))
    with_none = np.array(["A", "B", state_seeds.NONE_CLASS], dtype=object)
    none_rows = labels == state_seeds.NONE_CLASS
    # a three-class model that predicts every seed its label, the none seeds "none of these"
    probs3 = np.column_stack([probs * np.where(none_rows, 0.4, 0.9)[:, None], np.where(none_rows, 0.6, 0.1)])
    assert np.all(with_none[probs3.argmax(axis=1)] == labels)
    # the model has the class: the none seeds are ordinary labels (their own class's log loss), not a uniform target,
    # so the fit, which has no minimum, stops at the bound as it does with the class under another name
    uniform_free = selftrain.temperature(probs3, labels, with_none)
    relabelled = np.where(none_rows, "C", labels).astype(object)
    as_class = selftrain.temperature(probs3, relabelled, np.array(["A", "B", "C"], dtype=object))
    assert uniform_free == pytest.approx(as_class) and as_class == pytest.approx(0.05, abs=1e-3)
    # one labelled cell predicted wrong: the fit has a minimum of its own and the none seeds are left out
    wrong = labels.copy()
    wrong[0] = "B"
    without = np.where(wrong == state_seeds.NONE_CLASS, "", wrong).astype(object)
    classes = np.array(["A", "B"], dtype=object)
    assert selftrain.temperature(probs, wrong, classes) == selftrain.temperature(probs, without, classes)


def _unweighted_temperature(probs, labels, classes):
    from scipy.optimize import minimize_scalar
    from scipy.special import logsumexp

    y = np.array([list(classes).index(c) for c in labels])
    logp = np.log(probs)
    return minimize_scalar(lambda t: -((logp / t)[np.arange(y.size), y] - logsumexp(logp / t, axis=1)).mean(),
                           bounds=(0.05, 20.0), method="bounded").x


def test_cross_fitted_averages_the_held_out_probabilities_of_several_splits():
    rng = np.random.default_rng(5)
    features = np.vstack([rng.normal(0, 1, (50, 3)), rng.normal(1.0, 1, (50, 3))])
    train = np.repeat(np.array(["A", "B"], dtype=object), 50)
    train[::7] = ""  # cells the model was not fitted on are predicted too
    classes = np.array(["A", "B"], dtype=object)
    params = state_params.SelfTrainParams(folds=4, repeats=3, random_state=11)
    singles = [selftrain.cross_fitted(features, train, classes, replace(params, repeats=1, random_state=11 + r))
               for r in range(3)]
    np.testing.assert_allclose(selftrain.cross_fitted(features, train, classes, params), np.mean(singles, axis=0))
    assert not np.allclose(singles[0], singles[1])  # the splits differ
