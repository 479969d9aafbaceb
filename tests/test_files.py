"""Atomic output writing and input protection (hcctme._files)."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from anndata import AnnData

from hcctme import _files


def test_atomic_path_leaves_nothing_when_interrupted(tmp_path: Path):
    target = tmp_path / "out.tsv"
    with pytest.raises(RuntimeError), _files.atomic_path(target) as tmp:
        tmp.write_text("half")
        raise RuntimeError("interrupted")
    assert not target.exists()
    assert list(tmp_path.iterdir()) == []


def test_atomic_path_replaces_existing_file_only_on_success(tmp_path: Path):
    target = tmp_path / "out.txt"
    target.write_text("old")
    with pytest.raises(RuntimeError), _files.atomic_path(target) as tmp:
        tmp.write_text("new")
        raise RuntimeError
    assert target.read_text() == "old"
    _files.write_text("new", target)
    assert target.read_text() == "new"


def test_refuse_overwrite_of_input(tmp_path: Path):
    path = tmp_path / "in.h5ad"
    with pytest.raises(ValueError, match="is the input file"):
        _files.refuse_overwrite(path, path)
    _files.refuse_overwrite(tmp_path / "other.h5ad", path)


def test_read_h5ad_errors(tmp_path: Path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        _files.read_h5ad(tmp_path / "missing.h5ad")
    bad = tmp_path / "bad.h5ad"
    bad.write_text("not an h5 file")
    with pytest.raises(ValueError, match="cannot read"):
        _files.read_h5ad(bad)
    with pytest.raises(ValueError, match="is a directory"):
        _files.read_h5ad(tmp_path)


def test_write_h5ad_round_trip_with_tables_in_uns(tmp_path: Path):
    adata = AnnData(np.ones((3, 2), dtype=np.float32))
    adata.uns["table"] = pd.DataFrame({"a": ["x", None, "z"], "b": [1.0, 2.0, np.nan], "ok": [True, False, True]})
    adata.uns["nested"] = {"mapping": {"CD8+ T cells": "cd8_t"}, "none": None}
    path = _files.write_h5ad(adata, tmp_path / "x.h5ad")
    back = _files.read_h5ad(path)
    assert list(back.uns["table"].columns) == ["a", "b", "ok"]
    assert back.uns["nested"]["mapping"]["CD8+ T cells"] == "cd8_t"
    assert "table" in adata.uns and adata.uns["table"]["a"].iloc[1] is None  # the caller's object is untouched
    # a missing text value stays missing (it was written as the text 'nan': crosstalk's axis column)
    assert back.uns["table"]["a"].isna().tolist() == [False, True, False]
    assert back.uns["table"]["a"].astype(object).iloc[[0, 2]].tolist() == ["x", "z"]


def test_atomic_dir_replaces_a_run_as_a_whole_and_keeps_it_when_interrupted(tmp_path: Path):
    out = tmp_path / "run"
    with _files.atomic_dir(out, manifest={"parameters": {"n": 1}}) as tmp:
        (tmp / "a.tsv").write_text("first")
        (tmp / "old.tsv").write_text("stale")
    assert sorted(p.name for p in out.iterdir()) == ["a.tsv", "manifest.json", "old.tsv"]
    with pytest.raises(KeyboardInterrupt), _files.atomic_dir(out) as tmp:
        (tmp / "a.tsv").write_text("second")
        raise KeyboardInterrupt
    assert (out / "a.tsv").read_text() == "first"  # the earlier run, whole
    with _files.atomic_dir(out, manifest={"parameters": {"n": 3}}) as tmp:
        (tmp / "a.tsv").write_text("third")
    assert sorted(p.name for p in out.iterdir()) == ["a.tsv", "manifest.json"]  # no stale file
    manifest = _files.read_manifest(out)
    assert manifest["parameters"] == {"n": 3}
    assert manifest["files"] == [{"name": "a.tsv", "bytes": 5, "sha256": _files.sha256(out / "a.tsv")}]
    assert [p.name for p in tmp_path.iterdir()] == ["run"]


def test_atomic_dir_never_replaces_a_folder_that_is_not_a_run(tmp_path: Path):
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("keep")
    with pytest.raises(ValueError, match="not an hcctme run folder"), _files.atomic_dir(mine):
        pass
    assert (mine / "notes.txt").read_text() == "keep"
    with pytest.raises(FileNotFoundError, match="no complete hcctme run"):
        _files.read_manifest(mine)


def test_refuse_overwrite_through_links_and_containing_folders(tmp_path: Path):
    src = tmp_path / "in.h5ad"
    src.write_text("x")
    (tmp_path / "soft.h5ad").symlink_to(src)
    (tmp_path / "hard.h5ad").hardlink_to(src)
    for out in ("soft.h5ad", "hard.h5ad"):
        with pytest.raises(ValueError, match="is the input file"):
            _files.refuse_overwrite(tmp_path / out, src)
    with pytest.raises(ValueError, match="inside the output folder"):
        _files.refuse_overwrite(tmp_path, src, folder=True)
    _files.refuse_overwrite(tmp_path / "results", src, folder=True)


def test_check_writable_names_the_problem(tmp_path: Path):
    afile = tmp_path / "f"
    afile.write_text("x")
    with pytest.raises(ValueError, match="is a file, not a folder"):
        _files.check_writable(afile / "out.tsv")
    with pytest.raises(ValueError, match="is a folder; give a file name"):
        _files.check_writable(tmp_path)
    with pytest.raises(ValueError, match="exists and is a file"):
        _files.check_writable(afile, folder=True)
    with pytest.raises(ValueError, match=r"names a folder \(it ends with '/'\)"):  # it wrote a file named 'new'
        _files.check_writable(f"{tmp_path}/new/")
    assert _files.check_writable(tmp_path / "new" / "deep" / "out.tsv") == tmp_path / "new" / "deep" / "out.tsv"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["f"]  # the check leaves nothing behind


def test_write_h5ad_keeps_a_tables_index_and_categoricals(tmp_path: Path):
    """The writer made a RangeIndex '0', '1', ... and a categorical without missing values object (crosstalk's
    sample column); plain anndata round-trips both."""
    adata = AnnData(np.ones((3, 2), dtype=np.float32))
    table = pd.DataFrame({"sample": pd.Categorical(["P1", "P2", "P1"]), "value": [1.0, 2.0, 3.0],
                          "code": pd.Categorical([1, 2, 1])})
    adata.uns["table"] = table
    back = _files.read_h5ad(_files.write_h5ad(adata, tmp_path / "x.h5ad")).uns["table"]
    pd.testing.assert_frame_equal(back, table.assign(code=table["code"].cat.rename_categories(["1", "2"])),
                                  check_exact=True)
    assert back.index.tolist() == [0, 1, 2] and isinstance(back["sample"].dtype, pd.CategoricalDtype)


def _backed_file(tmp_path: Path) -> Path:
    import scipy.sparse as sp

    rng = np.random.default_rng(0)
    counts = sp.csr_matrix(rng.poisson(1.0, (40, 12)).astype(np.float32))
    adata = AnnData(counts.copy(), obs=pd.DataFrame({"patient": np.repeat(["P1", "P2"], 20)},
                                                    index=[f"c{i}" for i in range(40)]),
                    var=pd.DataFrame(index=[f"G{i}" for i in range(12)]))
    adata.layers["counts"] = counts
    adata.obsp["connectivities"] = sp.identity(40, format="csr", dtype=np.float32)
    adata.varm["PCs"] = rng.normal(size=(12, 3))
    path = tmp_path / "in.h5ad"
    adata.write_h5ad(path)
    return path


def test_a_backed_anndata_is_written_whole(tmp_path: Path):
    """obsp, varm and a layer added in memory were dropped; a layer replaced in memory was the file's old one."""
    import anndata as ad

    adata = _files.read_h5ad(_backed_file(tmp_path), backed=True)
    adata.layers["doubled"] = np.full((40, 12), 2.0, dtype=np.float32)
    out = ad.read_h5ad(_files.write_h5ad(adata, tmp_path / "out.h5ad"))
    assert sorted(out.layers) == ["counts", "doubled"] and float(out.layers["doubled"][0, 0]) == 2.0
    assert list(out.obsp) == ["connectivities"] and list(out.varm) == ["PCs"]
    source = ad.read_h5ad(tmp_path / "in.h5ad")
    np.testing.assert_array_equal(out.layers["counts"].toarray(), source.layers["counts"].toarray())
    np.testing.assert_array_equal(out.X.toarray(), source.X.toarray())


def test_a_view_of_a_backed_anndata_is_refused_whole(tmp_path: Path):
    """Its file's matrices hold every cell: the written file had 20 cells in obs and 40 rows in X (unreadable)."""
    adata = _files.read_h5ad(_backed_file(tmp_path), backed=True)
    view = adata[adata.obs["patient"] == "P1"]
    with pytest.raises(ValueError, match=r"cannot write a whole view of a backed AnnData.*copy\(filename="):
        _files.write_h5ad(view, tmp_path / "view.h5ad")
    assert not (tmp_path / "view.h5ad").exists()
    assert _files.read_h5ad(_files.write_results_h5ad(view, tmp_path / "results.h5ad")).n_obs == 20


def test_the_backed_reader_leaves_anndata_able_to_write_and_copy(tmp_path: Path):
    """Its on-disk layers read through anndata's handle, which anndata closes when it writes: an h5py error."""
    import anndata as ad

    adata = _files.read_h5ad(_backed_file(tmp_path), backed=True)
    adata.write_h5ad(tmp_path / "whole.h5ad")
    subset = adata[adata.obs["patient"] == "P1"].copy(filename=tmp_path / "subset.h5ad")
    assert subset.n_obs == 20 and list(subset.layers) == ["counts"]
    assert ad.read_h5ad(tmp_path / "whole.h5ad").layers["counts"].shape == (40, 12)
    assert adata.layers["counts"][:5].shape == (5, 12)  # still readable after anndata reopened its file


def test_a_layer_replaced_in_memory_is_written_as_replaced(tmp_path: Path):
    import anndata as ad

    adata = _files.read_h5ad(_backed_file(tmp_path), backed=True)
    adata.layers["counts"] = np.full((40, 12), 3.0, dtype=np.float32)
    out = ad.read_h5ad(_files.write_h5ad(adata, tmp_path / "out.h5ad"))
    assert float(np.asarray(out.layers["counts"]).min()) == 3.0
