"""tl.crosstalk's default method: LIANA's lr_means from one chunked pass, checked against LIANA itself."""

from __future__ import annotations

import warnings

import anndata
import numpy as np
import pandas as pd
import pytest

import hcctme
from hcctme.tl import _crosstalk, _crosstalk_fast

from ._crosstalk_data import lr_cohort

KEYS = ["source", "target", "ligand_complex", "receptor_complex"]
LIANA_COLUMNS = ["lr_means", "ligand_means", "receptor_means", "ligand_props", "receptor_props"]


pytestmark = pytest.mark.usefixtures("no_progress")


@pytest.fixture(scope="module")
def cohort():
    """Three patients; values on a 1/64 grid, so LIANA's float32 sums are exact and only its division rounds."""
    adata = lr_cohort(3, 30, n_genes=400, seed=4)
    adata.X.data = np.round(adata.X.data * 64) / 64
    adata.X.eliminate_zeros()
    return adata


@pytest.fixture(scope="module")
def fast_table(cohort):
    adata = cohort.copy()
    hcctme.tl.crosstalk(adata, groupby="cell_type", sample_key="patient")
    return adata.uns["hcctme_crosstalk"]


def _liana(adata, method):
    resource, _ = _crosstalk._resource("consensus", axes_only=False)  # the table tl.crosstalk runs (+ kb pairs)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return method(adata, groupby="cell_type", resource=resource, expr_prop=0.1, min_cells=10, n_perms=None,
                      use_raw=False, inplace=False, verbose=False)


def _merged(ours: pd.DataFrame, theirs: pd.DataFrame) -> pd.DataFrame:
    merged = ours.merge(theirs, on=KEYS, how="outer", suffixes=("", "_liana"), indicator=True)
    assert (merged["_merge"] == "both").all(), merged["_merge"].value_counts()  # the same interactions pass
    return merged


@pytest.mark.parametrize("patient", ["p0", "p2"])
def test_per_sample_lr_means_equal_liana_rank_aggregate_and_cellphonedb(cohort, fast_table, patient):
    import liana as li

    sample = cohort[cohort.obs["patient"] == patient].copy()
    ours = fast_table[fast_table["patient"] == patient]
    assert len(ours) > 500
    assert (ours["ligand_complex"].str.contains("_") | ours["receptor_complex"].str.contains("_")).sum() >= 5
    aggregate = _merged(ours, _liana(sample, li.mt.rank_aggregate))
    assert np.abs(aggregate["lr_means"] - aggregate["lr_means_liana"]).max() < 1e-6
    cellphone = _merged(ours, _liana(sample, li.mt.cellphonedb))  # its table also has LIANA's means and props
    for column in LIANA_COLUMNS:
        assert np.abs(cellphone[column] - cellphone[column + "_liana"]).max() < 1e-6, column
    # within the sample, LIANA's order: largest lr_means first (after the resistance-axis rows)
    for _, part in ours.groupby(ours["axis"].isna(), observed=True):
        assert np.all(np.diff(part["lr_means"].to_numpy()) <= 0)


def test_backed_file_read_in_chunks_gives_the_same_table(cohort, fast_table, tmp_path, monkeypatch):
    path = tmp_path / "cohort.h5ad"
    cohort.write_h5ad(path)
    backed = anndata.read_h5ad(path, backed="r")
    assert backed.isbacked
    shapes = []
    blocks = _crosstalk_fast._blocks

    def recording(X, chunk_size):
        for start, stop, block in blocks(X, chunk_size):
            shapes.append(block.shape)
            yield start, stop, block

    monkeypatch.setattr(_crosstalk_fast, "_blocks", recording)
    hcctme.tl.crosstalk(backed, groupby="cell_type", sample_key="patient", chunk_size=37)
    table = backed.uns["hcctme_crosstalk"]
    assert len(shapes) == -(-cohort.n_obs // 37) and max(s[0] for s in shapes) == 37  # one pass, 37 rows at a time
    pd.testing.assert_frame_equal(table.reset_index(drop=True), fast_table.reset_index(drop=True),
                                  check_exact=False, rtol=0, atol=1e-12)
    with pytest.raises(ValueError, match="copy=True would load the whole backed matrix"):
        hcctme.tl.crosstalk(backed, groupby="cell_type", copy=True)
    backed.file.close()


def test_differential_run_on_a_backed_file(tmp_path):
    """Depth thinning reads the counts chunk by chunk too; the result does not need the matrix in memory."""
    cohort = lr_cohort(4, 20, n_genes=200, seed=5)
    path = tmp_path / "cohort.h5ad"
    cohort.write_h5ad(path)
    backed = anndata.read_h5ad(path, backed="r")
    hcctme.tl.crosstalk(backed, groupby="cell_type", sample_key="patient", condition_key="response",
                        reference="responder", chunk_size=50)
    memory = cohort.copy()
    hcctme.tl.crosstalk(memory, groupby="cell_type", sample_key="patient", condition_key="response",
                        reference="responder", chunk_size=50)
    assert backed.uns["hcctme_crosstalk_params"]["depth_equalized"]
    pd.testing.assert_frame_equal(backed.uns["hcctme_crosstalk"], memory.uns["hcctme_crosstalk"])
    pd.testing.assert_frame_equal(backed.uns["hcctme_crosstalk_diff"], memory.uns["hcctme_crosstalk_diff"])
    backed.file.close()


def test_lr_means_method_equals_the_rank_aggregate_option(cohort, fast_table):
    adata = cohort[cohort.obs["patient"] == "p1"].copy()
    hcctme.tl.crosstalk(adata, groupby="cell_type", sample_key="patient", method="rank_aggregate")
    full = adata.uns["hcctme_crosstalk"]
    assert "magnitude_rank" in full.columns
    merged = _merged(fast_table[fast_table["patient"] == "p1"].drop(columns=["patient", "axis"]),
                     full.drop(columns=["patient", "axis"]))
    assert np.abs(merged["lr_means"] - merged["lr_means_liana"]).max() < 1e-6


def test_expr_prop_filters_whole_complexes():
    """A complex passes only when every subunit reaches expr_prop; its means are its least expressed subunit's."""
    resource = pd.DataFrame({"ligand": ["L1", "L1"], "receptor": ["R1_R2", "R3"]})
    genes = pd.Index(["L1", "R1", "R2", "R3"])
    stats = _crosstalk_fast.UnitStats(
        groups=["a", "b"],
        means=np.array([[2.0, 0.0, 0.0, 0.0], [0.0, 1.5, 0.5, 1.0]]),
        props=np.array([[0.5, 0.0, 0.0, 0.0], [0.0, 0.6, 0.3, 0.08]]),
        present=np.ones(4, dtype=bool),
    )
    table = _crosstalk_fast.lr_table({"u": stats}, _crosstalk_fast.explode(resource), genes, expr_prop=0.2)
    assert table[KEYS].values.tolist() == [["a", "b", "L1", "R1_R2"]]  # R3 below expr_prop in b
    row = table.iloc[0]
    assert row["receptor_means"] == 0.5 and row["receptor_props"] == 0.3  # the min-mean subunit, R2
    assert row["lr_means"] == pytest.approx((2.0 + 0.5) / 2)
    table = _crosstalk_fast.lr_table({"u": stats}, _crosstalk_fast.explode(resource), genes, expr_prop=0.35)
    assert table.empty  # R2 (0.3) now fails, so the whole complex does
    # expr_prop=0: every pair passes, except through a gene no cell of the unit expresses (LIANA drops those genes)
    stats.present = np.array([True, True, True, False])
    table = _crosstalk_fast.lr_table({"u": stats}, _crosstalk_fast.explode(resource), genes, expr_prop=0.0)
    assert len(table) == 4 and set(table["receptor_complex"]) == {"R1_R2"}
    zero = table[(table["source"] == "b") & (table["target"] == "a")]
    assert zero["lr_means"].tolist() == [0.0]  # CellPhoneDB: 0 when the ligand or the receptor mean is 0


def test_chunked_statistics_do_not_depend_on_chunk_size(cohort):
    X = cohort.X
    codes = pd.factorize(cohort.obs["patient"].astype(str) + "/" + cohort.obs["cell_type"].astype(str))[0]
    codes[::7] = -1  # cells outside the kept groups are skipped
    genes = np.array([0, 5, 17, 200, 399])
    one = _crosstalk_fast.group_statistics(X, codes, codes.max() + 1, genes, chunk_size=X.shape[0])
    many = _crosstalk_fast.group_statistics(X.toarray(), codes, codes.max() + 1, genes, chunk_size=11)
    np.testing.assert_allclose(one[0], many[0], rtol=1e-12)
    np.testing.assert_array_equal(one[1], many[1])
    dense = X.toarray()
    first = codes == 0
    np.testing.assert_allclose(one[0][0], dense[first][:, genes].sum(axis=0), rtol=1e-12)
    np.testing.assert_array_equal(one[1][0], (dense[first][:, genes] != 0).sum(axis=0))


def test_dask_matrix_gives_the_same_table(cohort, fast_table):
    da = pytest.importorskip("dask.array")
    adata = cohort.copy()
    adata.X = da.from_array(cohort.X.toarray(), chunks=(64, -1))
    hcctme.tl.crosstalk(adata, groupby="cell_type", sample_key="patient", chunk_size=100)
    pd.testing.assert_frame_equal(adata.uns["hcctme_crosstalk"], fast_table, check_exact=False, rtol=0, atol=1e-12)


def test_a_gene_expressed_only_in_a_group_below_min_cells_counts_as_expressed_as_in_liana():
    """LIANA drops the genes no cell of the sample expresses, then the small groups: with expr_prop=0, L2 (expressed
    by one cell of a 3-cell group) keeps its interactions among the kept groups. The lr_means path read presence
    over the kept groups only: 4 rows instead of LIANA's 8."""
    li = pytest.importorskip("liana")
    rng = np.random.default_rng(1)
    genes = ["L1", "R1", "L2", "R2"] + [f"G{i}" for i in range(40)]
    groups = ["A"] * 20 + ["B"] * 15 + ["C"] * 3
    X = rng.poisson(1.0, (len(groups), len(genes))).astype(float)
    X[:, 2] = 0
    X[-1, 2] = 5
    X = np.log1p(X / X.sum(1, keepdims=True) * 1e4)
    adata = anndata.AnnData(X.astype(np.float32),
                            obs=pd.DataFrame({"grp": pd.Categorical(groups)}, index=[f"c{i}" for i in range(38)]),
                            var=pd.DataFrame(index=genes))
    resource = pd.DataFrame({"ligand": ["L1", "L2"], "receptor": ["R1", "R2"]})
    keys = ["source", "target", "ligand_complex", "receptor_complex"]
    tables = {m: hcctme.tl.crosstalk(adata, groupby="grp", resource=resource, min_cells=10, expr_prop=0.0, method=m,
                                     copy=True).uns["hcctme_crosstalk"] for m in ("lr_means", "rank_aggregate")}
    full = _crosstalk._resource(resource, axes_only=False)[0]
    reference = li.mt.cellphonedb(adata.copy(), groupby="grp", resource=full, expr_prop=0.0, min_cells=10,
                                  n_perms=None, use_raw=False, inplace=False, verbose=False)
    expected = set(map(tuple, reference[keys].astype(str).to_numpy()))
    assert ("A", "B", "L2", "R2") in expected and len(expected) == 8
    for table in tables.values():
        assert set(map(tuple, table[keys].astype(str).to_numpy())) == expected
    merged = tables["lr_means"].merge(reference, on=keys, suffixes=("", "_liana"))
    np.testing.assert_allclose(merged["lr_means"], merged["lr_means_liana"], rtol=1e-5)
