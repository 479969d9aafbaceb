"""hcctme.tl.crosstalk: LIANA per sample, kb annotation, patient-level differential crosstalk."""

from __future__ import annotations

import logging
import socket

import numpy as np
import pandas as pd
import pytest
from scipy import stats

import hcctme
from hcctme import kb
from hcctme.tl import _crosstalk_stats as cstats

from ._crosstalk_data import lr_cohort, resource_genes

ARGS = dict(groupby="cell_type", sample_key="patient", condition_key="response", reference="responder",
            n_perms=None)


pytestmark = pytest.mark.usefixtures("no_progress")


@pytest.fixture(scope="module")
def cohort():
    return lr_cohort(8, 25, n_genes=150, seed=0)


def _run(adata, **kwargs):
    """tl.crosstalk on ``adata``; the table it stored (the differential one with condition_key)."""
    key = kwargs.get("key_added", "hcctme_crosstalk")
    assert hcctme.tl.crosstalk(adata, **kwargs) is None
    return adata.uns[key + "_diff"] if kwargs.get("condition_key") else adata.uns[key]


@pytest.fixture(scope="module")
def result(cohort):
    adata = cohort.copy()
    diff = _run(adata, **ARGS)
    return adata, diff


def _resistor_up(diff: pd.DataFrame) -> pd.DataFrame:
    """Tested resistor-up interactions with p < 0.05, ranked by effect (largest first)."""
    up = diff[diff["tested"] & (diff["effect"] > 0) & (diff["pvalue"] < 0.05)]
    return up.sort_values("effect", ascending=False).reset_index(drop=True)


def _is_spp1_cd44(frame: pd.DataFrame, sources=("Macrophages",)) -> pd.Series:
    return (frame["source"].isin(sources) & (frame["target"] == "Fibroblasts")
            & (frame["ligand_complex"] == "SPP1") & (frame["receptor_complex"] == "CD44"))


# ---- output shape and storage -------------------------------------------------------------------------
def test_liana_table_columns_axis_first_and_storage(result):
    adata, diff = result
    table = adata.uns["hcctme_crosstalk"]
    assert list(table.columns) == ["patient", "source", "target", "ligand_complex", "receptor_complex",
                                   "ligand_means", "ligand_props", "receptor_means", "receptor_props", "lr_means",
                                   "axis"]
    has_axis = table["axis"].notna().to_numpy()
    assert has_axis.any() and not has_axis.all()
    assert has_axis[: int(has_axis.sum())].all(), "resistance-axis interactions must come first"
    assert (table.loc[table["ligand_complex"].eq("SPP1") & table["receptor_complex"].eq("CD44"), "axis"]
            == "TIB").all()
    assert set(table["patient"].astype(str)) == set(adata.obs["patient"])
    assert "liana_res" not in adata.uns  # LIANA never wrote into the user's AnnData
    assert set(adata.uns) >= {"hcctme_crosstalk", "hcctme_crosstalk_diff", "hcctme_crosstalk_params"}
    provenance = adata.uns["hcctme_crosstalk_params"]
    assert provenance["tool"] == "hcctme.tl.crosstalk" and provenance["kb_version"] == kb.version
    call = hcctme.get.params(adata, "hcctme_crosstalk")["params"]  # the arguments as given, None included
    assert call["resource"] == "consensus" and call["n_perms"] is None and "n_perms" in provenance["params_none"]
    assert provenance["method"] == provenance["params"]["method"] == "lr_means"
    assert set(provenance["conditions"]["condition"]) == {"responder", "resistor"}
    # differential table
    for col in ("source", "target", "ligand_complex", "receptor_complex", "axis", "effect", "pvalue_detection",
                "pvalue_strength", "detection_reference", "detection_other", "pvalue", "padj", "n_samples", "tested",
                "condition", "reference"):
        assert col in diff.columns
    assert diff is not None and diff["tested"].iloc[0]
    assert (diff["condition"] == "resistor").all() and (diff["reference"] == "responder").all()
    untested = diff[~diff["tested"]]
    assert untested["pvalue"].isna().all()
    tested = diff[diff["tested"]]
    assert (tested["n_reference"] >= 3).all() and (tested["n_other"] >= 3).all()
    assert np.all(np.diff(tested["pvalue"].to_numpy()) >= 0)
    # DESIGN.md's statistic: the two parts' chi-square(1) statistics summed over the parts tested
    parts = tested[["pvalue_detection", "pvalue_strength"]].to_numpy()
    chi = np.nansum(stats.chi2.isf(np.clip(parts, 1e-300, 1.0), 1), axis=1)
    np.testing.assert_allclose(tested["statistic"], chi, rtol=1e-10)
    np.testing.assert_array_equal(tested["df"], np.isfinite(parts).sum(axis=1))
    np.testing.assert_allclose(tested["pvalue"], stats.chi2.sf(chi, tested["df"]), rtol=1e-10)
    assert untested["statistic"].isna().all()


def test_planted_gain_found_in_synthetic_cohort(result):
    _, diff = result
    up = _resistor_up(diff)
    hit = up.index[_is_spp1_cd44(up)]
    assert len(hit) == 1 and hit[0] < 10
    row = up.loc[hit[0]]
    assert row["pvalue"] < 0.05 and row["axis"] == "TIB" and row["direction"] == "up"


def test_pooled_run_without_sample_key(cohort):
    adata = cohort.copy()
    table = _run(adata, groupby="cell_type", n_perms=None, axes_only=True)
    assert "patient" not in table.columns and table["axis"].notna().all()
    assert "hcctme_crosstalk_diff" not in adata.uns
    assert adata.uns["hcctme_crosstalk_params"]["params"]["axes_only"]


def test_copy_returns_new_anndata(cohort, digest):
    before = digest(cohort)
    out = hcctme.tl.crosstalk(cohort, **ARGS, axes_only=True, copy=True, key_added="ct")
    assert digest(cohort) == before
    assert {"ct", "ct_diff", "ct_params"} <= set(out.uns)


def test_permutations_run_rank_aggregate_with_specificity(cohort):
    adata = cohort[cohort.obs["patient"].isin(["p0", "p1"])].copy()
    table = _run(adata, groupby="cell_type", sample_key="patient", n_perms=20, axes_only=True)
    assert "specificity_rank" in table.columns and "cellphone_pvals" in table.columns
    assert "magnitude_rank" in table.columns
    assert adata.uns["hcctme_crosstalk_params"]["params"]["method"] == "rank_aggregate"


def test_user_resource_dataframe(cohort):
    resource = pd.DataFrame({"ligand": ["SPP1", "CXCL12"], "receptor": ["CD44", "CXCR4"]})
    table = _run(cohort.copy(), groupby="cell_type", resource=resource, n_perms=None)
    assert set(table["ligand_complex"]) <= set(kb.axis_pairs()["ligand"]) | {"SPP1", "CXCL12"}
    out = hcctme.tl.crosstalk(cohort.copy(), groupby="cell_type", resource=resource, n_perms=None, copy=True)
    record = hcctme.get.params(out, "hcctme_crosstalk")
    assert record["resource_name"] == "user DataFrame"
    pd.testing.assert_frame_equal(record["params"]["resource"], resource)  # kept, so the call can be repeated


def test_results_survive_h5ad_round_trip(result, tmp_path):
    import anndata

    adata, diff = result
    path = tmp_path / "ct.h5ad"
    adata.write_h5ad(path)
    back = anndata.read_h5ad(path)
    table = back.uns["hcctme_crosstalk"]
    assert len(table) == len(adata.uns["hcctme_crosstalk"])
    assert table["axis"].isna().sum() == adata.uns["hcctme_crosstalk"]["axis"].isna().sum()
    assert len(back.uns["hcctme_crosstalk_diff"]) == len(diff)


def test_kb_pairs_missing_from_resource_are_added(result):
    adata, _ = result
    added = adata.uns["hcctme_crosstalk_params"]["kb_pairs_added"]
    assert "FSTL1^TLR4" in added  # not in LIANA's consensus resource


# ---- statistics -------------------------------------------------------------------------------------------
@pytest.mark.slow
def test_null_cohorts_keep_false_positive_rate():
    hits = total = 0
    for seed in (11, 12, 13):
        adata = lr_cohort(10, 20, n_groups=4, n_genes=120, null=True, seed=seed)
        diff = _run(adata, **ARGS)
        tested = diff[diff["tested"]]
        hits += int((tested["pvalue"] < 0.05).sum())
        total += len(tested)
    assert total > 300
    assert hits / total <= 0.05 + 0.02  # pooled over interactions (correlated) and replicates


def _units(conditions, blocks=None):
    design = pd.DataFrame({"condition": conditions}, index=[f"s{i}" for i in range(len(conditions))])
    if blocks is not None:
        design["block"] = blocks
    return design


def test_differential_two_parts_without_imputation():
    idx = pd.MultiIndex.from_tuples([("A", "B", "L1", "R1"), ("A", "B", "L2", "R2"), ("A", "B", "L3", "R3")],
                                    names=cstats.ID_COLUMNS)
    samples = [f"s{i}" for i in range(8)]
    nan = np.nan
    matrix = pd.DataFrame([[1, 2, 3, 4, 5, 6, 7, 8],  # detected everywhere, stronger in "oth"
                           [nan, nan, nan, 1, 2, 2, 2, 2],  # detection gained in "oth"
                           [nan] * 7 + [1]], index=idx, columns=samples, dtype=float)
    detected = matrix.notna()
    evaluable = pd.DataFrame(True, index=idx, columns=samples)
    design = _units(["ref"] * 4 + ["oth"] * 4)
    out = cstats.differential(matrix, detected, evaluable, design, reference="ref", min_samples=3)
    assert out["tested"].tolist() == [True, True, False]
    first, second = out.iloc[0], out.iloc[1]
    # strength: a weighted/moderated model on detected units only; detection: Fisher on 4/4 vs 4/4 -> 1
    assert first["effect"] == pytest.approx(4.0) and first["pvalue_detection"] == 1.0
    assert first["pvalue"] == pytest.approx(stats.chi2.sf(stats.chi2.isf(first["pvalue_strength"], 1), 2))
    # L2 was never given a strength of 0 where absent: its strength part needs 3 detected reference units
    assert np.isnan(second["pvalue_strength"]) and np.isnan(second["effect"])
    assert second["pvalue_detection"] == pytest.approx(stats.fisher_exact([[4, 0], [1, 3]]).pvalue)
    assert second["pvalue"] == pytest.approx(second["pvalue_detection"])
    assert second["detection_other"] == 1.0 and second["detection_reference"] == 0.25
    assert second["direction"] == "up" and np.isnan(out.loc[2, "pvalue"])
    evaluable.iloc[0, :3] = False  # only 1 evaluable reference sample
    out = cstats.differential(matrix.where(evaluable), detected & evaluable, evaluable, design, reference="ref",
                              min_samples=3)
    assert not out.loc[0, "tested"] and out.loc[0, "n_reference"] == 1


def test_differential_paired_detection_is_mcnemar():
    idx = pd.MultiIndex.from_tuples([("A", "B", "L", "R")], names=cstats.ID_COLUMNS)
    samples = [f"s{i}" for i in range(12)]
    pre = [1.0, np.nan, np.nan, np.nan, np.nan, np.nan]
    on = [1.0, 1.0, 1.0, 1.0, 1.0, 1.0]
    matrix = pd.DataFrame([pre + on], index=idx, columns=samples)
    design = _units(["pre"] * 6 + ["on"] * 6, blocks=[f"p{i}" for i in range(6)] * 2)
    out = cstats.differential(matrix, matrix.notna(), matrix.notna() | True, design, reference="pre", min_samples=1)
    assert out.loc[0, "pvalue_detection"] == pytest.approx(stats.binomtest(5, 5, 0.5).pvalue)


# ---- offline ------------------------------------------------------------------------------------------------
def test_runs_with_network_blocked(cohort, monkeypatch):
    def refuse(*args, **kwargs):
        raise OSError("network access attempted during crosstalk")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    diff = _run(cohort.copy(), **ARGS, axes_only=True)
    assert len(diff) > 0


# ---- bad input -------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("kwargs, error, message", [
    (dict(ARGS, groupby="nope"), KeyError, "no column 'nope'"),
    (dict(ARGS, sample_key="nope"), KeyError, "no column 'nope'"),
    (dict(ARGS, condition_key="nope"), KeyError, "no column 'nope'"),
    (dict(ARGS, reference="partial"), ValueError, "not a level"),
    (dict(ARGS, reference=None), ValueError, "not a level"),
    (dict(ARGS, sample_key=None), ValueError, "needs sample_key"),
    (dict(groupby="cell_type", reference="responder"), ValueError, "only used with condition_key"),
    (dict(groupby="cell_type", sample_key="patient", pair_key="patient"), ValueError, "only used with condition_key"),
    (dict(ARGS, patient_key="donor"), KeyError, "no column 'donor'"),
    (dict(ARGS, resource="not_a_resource"), ValueError, "not a LIANA resource"),
    (dict(ARGS, resource=pd.DataFrame({"a": [1]})), ValueError, "lacks column"),
    (dict(ARGS, n_perms=0), ValueError, "n_perms must be >= 1"),
    (dict(ARGS, expr_prop=2.0), ValueError, "expr_prop must be in"),
    (dict(ARGS, strength="specificity_rank"), ValueError, "needs permutations"),
    (dict(ARGS, method="lr_means", strength="magnitude_rank"), ValueError, "need method='rank_aggregate'"),
    (dict(ARGS, method="lr_means", n_perms=10), ValueError, "need method='rank_aggregate'"),
    (dict(ARGS, method="cellchat"), ValueError, "method='cellchat' is not supported"),
    (dict(ARGS, chunk_size=0), ValueError, "chunk_size must be >= 1"),
    (dict(ARGS, strength="bogus"), ValueError, "strength='bogus' is not supported"),
    (dict(ARGS, layer="counts"), ValueError, "integer counts"),
    (dict(ARGS, layer="missing"), KeyError, "no 'missing'"),
])
def test_bad_input_raises_and_leaves_input_untouched(cohort, digest, kwargs, error, message):
    adata = cohort.copy()
    before = digest(adata)
    with pytest.raises(error, match=message):
        hcctme.tl.crosstalk(adata, **kwargs)
    assert digest(adata) == before


def test_condition_must_be_constant_within_samples(cohort, digest):
    adata = cohort.copy()
    adata.obs["mixed"] = np.where(np.arange(adata.n_obs) % 2, "a", "b")
    before = digest(adata)
    with pytest.raises(ValueError, match="varies within samples"):
        hcctme.tl.crosstalk(adata, groupby="cell_type", sample_key="patient", condition_key="mixed", reference="a")
    assert digest(adata) == before


def test_no_resource_genes_present(digest):
    adata = lr_cohort(4, 15, n_genes=40, seed=2)
    adata.var_names = [f"G{i}" for i in range(adata.n_vars)]
    before = digest(adata)
    with pytest.raises(ValueError, match="human gene symbols"):
        hcctme.tl.crosstalk(adata, groupby="cell_type", n_perms=None)
    assert digest(adata) == before


def test_scaled_matrix_refused(cohort, digest):
    adata = cohort.copy()
    adata.layers["scaled"] = adata.X.toarray() - 1.0
    before = digest(adata)
    with pytest.raises(ValueError, match="negative values"):
        hcctme.tl.crosstalk(adata, groupby="cell_type", layer="scaled", n_perms=None)
    assert digest(adata) == before


def test_small_groups_reported_and_skipped(cohort, caplog):
    adata = cohort.copy()
    small = adata.obs.index[(adata.obs["patient"] == "p0") & (adata.obs["cell_type"] == "Tumour")][:5]
    drop = adata.obs.index[(adata.obs["patient"] == "p0") & (adata.obs["cell_type"] == "Tumour")].difference(small)
    adata = adata[~adata.obs.index.isin(drop)].copy()
    with caplog.at_level(logging.WARNING, logger="hcctme"):
        table = _run(adata, groupby="cell_type", sample_key="patient", n_perms=None, axes_only=True)
    skipped = adata.uns["hcctme_crosstalk_params"]["skipped"]
    assert ((skipped["sample"] == "p0") & (skipped["group"] == "Tumour") & (skipped["n_cells"] == 5)).any()
    p0 = table[table["patient"] == "p0"]
    assert not ((p0["source"] == "Tumour") | (p0["target"] == "Tumour")).any()
    assert "skipped 1 group(s) with fewer than min_cells=10 cells: p0/Tumour (5)" in caplog.text


def test_all_groups_too_small_raises(cohort, digest):
    adata = cohort.copy()
    before = digest(adata)
    with pytest.raises(hcctme.tl.TooFewCellsError, match="no sample has two or more groups"):
        hcctme.tl.crosstalk(adata, groupby="cell_type", sample_key="patient", min_cells=1000, n_perms=None)
    assert digest(adata) == before


def test_samples_left_of_one_condition_level_raise(cohort, digest):
    """Where only the reference level's samples keep two groups of >= min_cells cells the differential test has
    nothing to compare: a clear TooFewCellsError before LIANA runs (it was a KeyError from deep inside pandas)."""
    keep = (cohort.obs["response"] == "responder") | (cohort.obs["cell_type"] == cohort.obs["cell_type"].iloc[0])
    adata = cohort[keep.to_numpy()].copy()
    before = digest(adata)
    with pytest.raises(hcctme.tl.TooFewCellsError, match=r"all of condition level\(s\) \['responder'\]"):
        hcctme.tl.crosstalk(adata, **ARGS)
    assert digest(adata) == before


# ---- the simulator's planted gain (statistical, slower) ---------------------------------------------------------
def _simulated(null: bool, seed: int, n_patients: int = 12, cells: int = 800):
    from hcctme.datasets import simulate_cohort

    adata = simulate_cohort(n_patients, cells, null=null, random_state=seed)
    keep_types = ["Macrophages", "Fibroblasts", "Tumour cells", "Endothelial cells", "CD8+ T cells", "Neutrophils"]
    genes = set(resource_genes()) | kb.genes()
    adata = adata[adata.obs["cell_type"].isin(keep_types), adata.var_names.isin(genes)].copy()
    group = adata.obs["cell_type"].astype(str).to_numpy().copy()
    group[(adata.obs["state_true"].astype(str) == "TAM2_SPP1").to_numpy()] = "TAM2_SPP1"
    adata.obs["group"] = group
    return adata


@pytest.mark.slow
def test_simulator_planted_spp1_cd44_gain_in_top10():
    adata = _simulated(null=False, seed=3)
    diff = _run(adata, groupby="group", sample_key="patient", condition_key="response", reference="responder",
                n_perms=None)
    up = _resistor_up(diff)
    hit = up.index[_is_spp1_cd44(up, sources=("TAM2_SPP1", "Macrophages"))]
    assert len(hit) >= 1 and hit.min() < 10, up.head(12)
    assert up.loc[hit.min(), "pvalue"] < 0.05 and up.loc[hit.min(), "axis"] == "TIB"


@pytest.mark.slow
def test_simulator_null_cohort_false_positive_rate():
    adata = _simulated(null=True, seed=21, n_patients=10, cells=400)
    diff = _run(adata, groupby="group", sample_key="patient", condition_key="response", reference="responder",
                n_perms=None)
    tested = diff[diff["tested"]]
    assert len(tested) > 500
    assert (tested["pvalue"] < 0.05).mean() <= 0.05 + 0.03  # pooled over (correlated) interactions


def test_paired_design_and_covariates_through_the_shared_engine(cohort, digest):
    """Pre/on-style pairs (p0 with p1, ...) and a covariate enter the differential test as in tl.compare."""
    adata = cohort.copy()
    number = adata.obs["patient"].str[1:].astype(int)
    adata.obs["pair"] = "pair" + (number // 2).astype(str)
    adata.obs["site"] = np.where(number % 4 < 2, "a", "b")
    diff = _run(adata, **ARGS, pair_key="pair", axes_only=True)
    hit = diff[_is_spp1_cd44(diff)].iloc[0]
    assert hit["tested"] and hit["pvalue"] < 0.05 and hit["direction"] == "up"
    assert adata.uns["hcctme_crosstalk_params"]["params"]["pair_key"] == "pair"
    assert adata.uns["hcctme_crosstalk_params"]["depth_equalized"]
    diff = _run(adata, **ARGS, covariates="site", axes_only=True)
    assert diff.loc[_is_spp1_cd44(diff), "pvalue"].iloc[0] < 0.05
    lonely = adata.copy()
    lonely.obs["pair"] = np.where(lonely.obs["patient"] == "p1", "solo", lonely.obs["pair"])
    before = digest(lonely)
    with pytest.raises(ValueError, match=r"pair with one member.*obs\['pair'\]"):
        hcctme.tl.crosstalk(lonely, **ARGS, pair_key="pair")
    assert digest(lonely) == before


def test_depth_is_equalised_after_harmonize_genes_renamed_genes(cohort):
    # the counts layer stays on X's gene axis when harmonize_genes maps an alias: depth is still equalised
    kw = dict(groupby="cell_type", sample_key="patient", condition_key="response", reference="responder",
              axes_only=True)
    plain, renamed = cohort.copy(), cohort.copy()
    names = list(renamed.var_names)
    names[names.index("SPP1")] = "OPN"  # an alias harmonize_genes maps back
    renamed.var_names = names
    hcctme.pp.harmonize_genes(renamed)
    first, second = _run(plain, **kw), _run(renamed, **kw)
    assert plain.uns["hcctme_crosstalk_params"]["depth_equalized"]
    assert renamed.uns["hcctme_crosstalk_params"]["depth_equalized"]
    pd.testing.assert_frame_equal(first, second)


def test_tables_do_not_follow_the_rows_order(cohort):
    """Sweep 58: a differential run listed its per-sample table in the order the samples' cells came."""
    kw = dict(groupby="cell_type", sample_key="patient", condition_key="response", reference="responder",
              axes_only=True)
    ordered = cohort.copy()
    ordered.obs["patient"] = ordered.obs["patient"].astype(str)
    shuffled = ordered[np.random.default_rng(1).permutation(ordered.n_obs)].copy()
    first, second = _run(ordered, **kw), _run(shuffled, **kw)
    pd.testing.assert_frame_equal(first, second)
    pd.testing.assert_frame_equal(ordered.uns["hcctme_crosstalk"], shuffled.uns["hcctme_crosstalk"])


@pytest.mark.parametrize("name", ["axis", "source", "lr_means"])
def test_sample_key_named_as_a_table_column_is_refused(cohort, digest, name):
    """The sample column was overwritten by the kb annotation ('axis') or failed after LIANA's run ('source')."""
    adata = cohort.copy()
    adata.obs[name] = adata.obs["patient"]
    before = digest(adata)
    with pytest.raises(ValueError, match=f"sample_key='{name}' is also the name of a column"):
        hcctme.tl.crosstalk(adata, **dict(ARGS, sample_key=name))
    assert digest(adata) == before


def test_sample_key_named_value_tests_as_any_other_name(result):
    """strength_matrix wrote the strength into a column 'value', overwriting a sample_key of that name."""
    adata, diff = result
    renamed = adata.copy()
    renamed.obs["value"] = renamed.obs["patient"]
    again = _run(renamed, **dict(ARGS, sample_key="value"))
    assert int(again["tested"].sum()) == int(diff["tested"].sum()) > 0
    pd.testing.assert_frame_equal(again.reset_index(drop=True), diff.reset_index(drop=True), check_exact=True)


def test_stored_zeros_are_not_expressing_cells_in_either_method():
    """LIANA's rank_aggregate counted a CSR matrix's explicit zeros as expressing cells; lr_means did not."""
    adata = lr_cohort(4, 25, n_genes=150, seed=3)
    adata.X = adata.X.tocsr().astype(np.float32)
    adata.X.data[np.random.default_rng(0).random(adata.X.data.size) < 0.3] = 0.0
    assert (adata.X.data == 0).sum() > 0
    ids = ["source", "target", "ligand_complex", "receptor_complex"]
    tables = {}
    for method in ("lr_means", "rank_aggregate"):
        data = adata.copy()
        hcctme.tl.crosstalk(data, groupby="cell_type", method=method)
        tables[method] = hcctme.get.crosstalk(data).set_index(ids).sort_index()
    assert tables["lr_means"].index.equals(tables["rank_aggregate"].index)
    np.testing.assert_allclose(tables["rank_aggregate"]["lr_means"], tables["lr_means"]["lr_means"], rtol=1e-5)


def test_nan_outside_the_row_sample_is_refused_by_every_method_and_matrix_form(digest):
    """Sweep 63: NaN was looked for only in matrix_kind's sample of 2,000 rows (a dask array's first rows): a NaN
    cell outside it was read silently (its interactions failed the expr_prop filter, the table lost rows)."""
    import dask.array as da
    import scipy.sparse as sp

    adata = lr_cohort(8, 55, n_genes=150, seed=0)  # 2,200 cells, p0's first
    sampled = set(np.random.default_rng(0).choice(adata.n_obs, 2000, replace=False))  # _validate._row_sample's rows
    row = next(i for i in range(adata.n_obs) if i not in sampled)  # a cell of p0: rank_aggregate reads p0 first
    clean = adata.X.toarray()
    X = clean.copy()
    X[row] = np.where(X[row] > 0, np.nan, 0.0)
    adata.X = sp.csr_matrix(X)
    before = digest(adata)
    for method in ("lr_means", "rank_aggregate"):
        with pytest.raises(ValueError, match=rf"adata\.X contains NaN or infinite values \(row {row} holds nan\)"):
            hcctme.tl.crosstalk(adata, groupby="cell_type", sample_key="patient", method=method)
    assert digest(adata) == before
    X = clean.copy()
    X[2100] = np.where(X[2100] > 0, np.inf, 0.0)  # beyond a dask array's sample, its first 2,000 rows
    adata.X = da.from_array(sp.csr_matrix(X), chunks=(500, -1), asarray=False)
    with pytest.raises(ValueError, match=r"adata\.X contains NaN or infinite values \(row 2100 holds inf\)"):
        hcctme.tl.crosstalk(adata, groupby="cell_type", sample_key="patient")
    assert "hcctme_crosstalk" not in adata.uns


def test_the_skip_warning_gives_each_skip_its_own_reason(caplog):
    """Sweep 63 (Sade-Feldman): whole samples of 14-44 cells were listed among groups "with too few cells
    (min_cells=10)"; their reason, fewer than 2 groups of 10 cells, is now the message of their own line."""
    from hcctme.tl._crosstalk import _select_groups

    groups = np.array(["A"] * 12 + ["B"] * 12 + ["A"] * 30 + ["B"] * 3)
    samples = np.array(["s1"] * 24 + ["s2"] * 33)
    with caplog.at_level(logging.WARNING, logger="hcctme"):
        kept, skipped = _select_groups(groups, samples, ["s1", "s2"], min_cells=10, groupby="cell_type")
    assert kept == {"s1": ["A", "B"]} and len(skipped) == 2
    messages = [r.getMessage() for r in caplog.records]
    assert "crosstalk: skipped 1 group(s) with fewer than min_cells=10 cells: s2/B (3)" in messages
    assert "crosstalk: skipped 1 sample(s) with fewer than 2 groups of >= min_cells=10 cells (cells in all): " \
           "s2 (33)" in messages
