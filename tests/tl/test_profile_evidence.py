"""hcctme.tl.resistance_profile: where gene evidence is read, what the summary counts, which keys it may write.

Each test is a defect the session-57 sweep found, on a hand-made cohort whose right answer is known.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
from anndata import AnnData

import hcctme as ht
from hcctme.tl import _profile, _stats

GENES = ["S100A9", "HIF1A", "HGF", "MET", "ALB", "GAPDH", "ACTB"]


def _cohort(neutrophils: dict[str, int], *, tumour: int = 30, seed: int = 0) -> AnnData:
    """Samples of identical tumour cells and a varying number of neutrophils, which make far more S100A9."""
    rng = np.random.default_rng(seed)
    rows, obs = [], []
    for sample, n_neu in neutrophils.items():
        for kind, n, s100a9 in (("tumour", tumour, 5.0), ("neutrophil", n_neu, 200.0)):
            for _ in range(n):
                counts = np.array([s100a9, 5, 2, 2, 50, 40, 60], dtype=float)
                rows.append(rng.poisson(counts))
                obs.append({"patient": sample, "ctx": kind})
    adata = AnnData(sp.csr_matrix(np.array(rows, dtype=np.float32)), obs=pd.DataFrame(obs),
                    var=pd.DataFrame(index=GENES))
    adata.obs_names = [f"c{i}" for i in range(adata.n_obs)]
    adata.obs["hcctme_state_context"] = pd.Categorical(adata.obs["ctx"])
    adata.obs["hcctme_state"] = "unassigned"
    adata.obsm["hcctme_scores"] = pd.DataFrame({"DUMMY": rng.random(adata.n_obs)}, index=adata.obs_names)
    return adata


def test_a_tumour_intrinsic_axis_reads_its_markers_in_tumour_cells_only():
    """TACE_S100A9 is read "as S100A9 / HIF1A expression in tumour cells only" (kb): the sweep found the mean over all
    cells, whose activity followed the neutrophil count (-1.03 to 1.26 for 5-40 neutrophils, same tumour cells)."""
    adata = _cohort({"S0": 5, "S1": 20, "S2": 60, "S3": 150}, tumour=300)
    ht.tl.resistance_profile(adata, sample_key="patient", axes=["TACE_S100A9"])
    evidence = adata.uns["hcctme_profile_evidence"].set_index("sample")
    tumour = adata[adata.obs["ctx"] == "tumour"]
    logged = np.log1p(tumour.X.toarray() / tumour.X.toarray().sum(axis=1, keepdims=True) * 1e4)
    by_hand = pd.DataFrame(logged[:, :2], index=tumour.obs_names).groupby(tumour.obs["patient"].to_numpy()).mean()
    assert np.allclose(evidence["value"], by_hand.mean(axis=1).reindex(evidence.index))
    assert "S100A9, HIF1A in tumour cells" in evidence["source"].iloc[0]
    # the same samples read over all cells rank by their neutrophils: what the axis must not measure
    everyone = _cohort({"S0": 5, "S1": 20, "S2": 60, "S3": 150}, tumour=300)
    del everyone.obs["hcctme_state_context"]
    ht.tl.resistance_profile(everyone, sample_key="patient", axes=["TACE_S100A9"])
    spread = everyone.uns["hcctme_profile_evidence"]["value"]
    assert spread.is_monotonic_increasing and np.ptp(spread) > 5 * np.ptp(evidence["value"])


def test_ligand_genes_are_read_in_senders_and_receptor_genes_in_receivers():
    axis = _profile._kb_axes().set_index("axis").loc["HGF_MET"]
    roles = dict(_profile.gene_roles(axis))
    assert roles["HGF"] == frozenset({"macrophage", "fibroblast"}) and roles["MET"] == frozenset({"tumour"})
    assert dict(_profile.gene_roles(axis, density=True)) == {"HGF": {"any"}, "MET": {"any"}}


def test_a_sample_without_the_axis_cells_has_no_gene_evidence():
    adata = _cohort({"S0": 5, "S1": 10, "S2": 20})
    adata = adata[~((adata.obs["patient"] == "S2") & (adata.obs["ctx"] == "tumour"))].copy()
    ht.tl.resistance_profile(adata, sample_key="patient", axes=["TACE_S100A9"])
    values = adata.uns["hcctme_profile_evidence"].set_index("sample")["value"]
    assert np.isnan(values["S2"]) and values[["S0", "S1"]].notna().all()


def test_gene_evidence_reads_raw_by_default_and_refuses_scaled_data():
    """scanpy's layout (.raw log-normalised, .X scaled): the sweep found means of z-scores (no use_raw)."""
    adata = _cohort({"S0": 5, "S1": 10, "S2": 20})
    logged = adata.X.toarray() / adata.X.toarray().sum(axis=1, keepdims=True) * 1e4
    adata.X = sp.csr_matrix(np.log1p(logged).astype(np.float32))
    adata.raw = adata.copy()
    dense = adata.X.toarray()
    adata.X = (dense - dense.mean(axis=0)) / dense.std(axis=0)
    ht.tl.resistance_profile(adata, sample_key="patient", axes=["TACE_S100A9"])
    from_raw = adata.uns["hcctme_profile_evidence"]["value"].to_numpy()
    assert "raw.X: mean expression" in adata.uns["hcctme_profile_evidence"]["source"].iloc[0]
    assert (from_raw > 1).all()  # log-normalised means, not means of z-scores
    assert ht.get.params(adata, "hcctme_profile")["params"]["axes"] == ["TACE_S100A9"]
    with pytest.raises(ValueError, match="negative values"):
        ht.tl.resistance_profile(adata, sample_key="patient", axes=["TACE_S100A9"], use_raw=False)


def test_summary_fractions_count_the_measured_patients_only():
    """A patient whose axis was not measured (NaN activity) is not an inactive one (sweep: 1 of 2 measured resistors
    active was reported as 33 %)."""
    profile = pd.DataFrame({"sample": list("abcdef"), "axis": "A", "condition": ["r", "r", "r", "s", "s", "s"],
                            "activity": [0.9, 0.2, np.nan, 0.3, 0.25, 0.35]})
    profile["active"] = (profile["activity"] >= 0.5).fillna(False)
    row = _profile._summary(profile, "s").iloc[0]
    assert row["n_group"] == 2 and row["fraction_active_group"] == 0.5
    assert row["fraction_active_reference"] == 0.0


def test_without_a_reference_the_kruskal_p_is_a_permutation_p():
    """3 vs 3 perfectly apart: scipy's chi-square p is 0.0495, no relabelling can give less than 0.1 (1 of 10)."""
    profile = pd.DataFrame({"sample": list("abcdef"), "axis": "A", "condition": ["r", "r", "r", "s", "s", "s"],
                            "activity": [1.0, 1.1, 1.2, 0.0, 0.1, 0.2]})
    profile["active"] = profile["activity"] >= 0.5
    row = _profile._summary(profile, None).iloc[0]
    assert row["test"] == "kruskal" and row["pvalue"] == pytest.approx(0.1)
    # three groups of three: 1,680 relabellings, 6 as extreme as the observed one
    groups = [np.array([1.0, 2, 3]), np.array([4.0, 5, 6]), np.array([7.0, 8, 9])]
    assert _stats.kruskal(groups)[1] == pytest.approx(6 / 1680)
    # larger groups: random relabellings, near scipy's asymptotic p and reproducible
    rng = np.random.default_rng(1)
    larger = [rng.normal(size=20) + shift for shift in (0.0, 0.3, 0.6)]
    from scipy import stats

    assert _stats.kruskal(larger) == _stats.kruskal(larger)
    assert abs(_stats.kruskal(larger)[1] - stats.kruskal(*larger).pvalue) < 0.02
    assert _stats.kruskal([np.ones(3), np.ones(4)]) == (0.0, 1.0)


def test_unmeasured_axes_share_no_evidence_and_are_no_test():
    """Axes measured in no patient were one "evidence group" flagged shared, and counted as a test (sweep)."""
    rows = []
    for sample, cond, level in (("a", "r", 1.0), ("b", "r", 0.8), ("c", "s", 0.1), ("d", "s", 0.0)):
        rows += [{"sample": sample, "condition": cond, "axis": "A", "activity": level},
                 {"sample": sample, "condition": cond, "axis": "B", "activity": np.nan},
                 {"sample": sample, "condition": cond, "axis": "C", "activity": np.nan}]
    profile = pd.DataFrame(rows)
    profile["active"] = (profile["activity"] >= 0.5).fillna(False)
    summary = _profile._summary(profile, "s").set_index("axis")
    assert summary.loc["B", "evidence_group"] == "B" and not summary.loc[["B", "C"], "shared_evidence"].any()
    params = _profile._params({}, pd.DataFrame({"axis": ["A", "B", "C"]}), 0.5, pd.Index(list("abcd")), {},
                              summary.reset_index())
    assert params["n_distinct_tests"] == 1


def test_reference_patients_without_a_feature_give_no_z():
    values = pd.Series([1.0, 2.0, np.nan, np.nan], index=list("abcd"))
    assert _profile._zscore(values, np.array([False, False, True, True]), flip=False).isna().all()
    assert _profile._zscore(values, np.array([True, False, True, True]), flip=False)["a"] == pytest.approx(0.0)


def test_key_added_may_not_replace_an_input_or_another_tools_results():
    adata = _cohort({"S0": 5, "S1": 10, "S2": 20})
    for key in ("hcctme_scores", "hcctme_state", "hcctme_crosstalk", "hcctme_tib"):
        with pytest.raises(ValueError, match="which this call reads"):
            ht.tl.resistance_profile(adata, sample_key="patient", axes=["TACE_S100A9"], key_added=key)
    adata.uns["my_ta"] = pd.DataFrame({"x": [1]})
    adata.uns["my_ta_params"] = {"tool": "hcctme.tl.ta_response"}
    with pytest.raises(ValueError, match=r"holds the results of hcctme\.tl\.ta_response"):
        ht.tl.resistance_profile(adata, sample_key="patient", axes=["TACE_S100A9"], key_added="my_ta")
    adata.uns["mine_evidence"] = pd.DataFrame({"x": [1]})  # the user's own table where an output would go
    with pytest.raises(ValueError, match=r"would overwrite adata.uns\['mine_evidence'\]"):
        ht.tl.resistance_profile(adata, sample_key="patient", axes=["TACE_S100A9"], key_added="mine")
    assert "hcctme_profile" not in adata.uns


def test_crosstalk_run_per_another_sample_column_is_reported_absent():
    adata = _cohort({"S0": 5, "S1": 10, "S2": 20})
    adata.uns["hcctme_crosstalk"] = pd.DataFrame({
        "sample": ["T1", "T2"], "source": "macrophage", "target": "tumour", "ligand_complex": "HGF",
        "receptor_complex": "MET", "lr_means": [1.0, 2.0]})
    ht.tl.resistance_profile(adata, sample_key="patient", axes=["HGF_MET"])
    absent = ht.get.params(adata, "hcctme_profile")["absent"]
    assert "are none of obs['patient']'s" in absent["crosstalk"]
    assert "crosstalk" not in set(adata.uns["hcctme_profile_evidence"]["evidence"])


def test_nan_outside_the_row_sample_is_refused_in_memory_and_dask(digest):
    """Sweep 63: NaN was looked for only in matrix_kind's sample of 2,000 rows (a dask array's first rows): a NaN cell
    outside it gave its sample NaN evidence silently."""
    import dask.array as da

    adata = _cohort({"S0": 300, "S1": 300, "S2": 300, "S3": 300}, tumour=300)  # 2,400 cells
    sampled = set(np.random.default_rng(0).choice(adata.n_obs, 2000, replace=False))  # _validate._row_sample's rows
    row = next(i for i in range(2000, adata.n_obs) if i not in sampled)  # outside either sample
    X = adata.X.toarray()
    X[row, 0] = np.nan
    for form in (sp.csr_matrix(X), da.from_array(sp.csr_matrix(X), chunks=(500, -1), asarray=False)):
        data = adata.copy()
        data.X = form
        before = digest(data) if sp.issparse(form) else None  # the digest reads a dask array of CSR chunks as objects
        with pytest.raises(ValueError, match=rf"adata\.X contains NaN or infinite values \(row {row} holds nan\)"):
            ht.tl.resistance_profile(data, sample_key="patient", axes=["TACE_S100A9"])
        assert "hcctme_profile" not in data.uns and (before is None or digest(data) == before)
