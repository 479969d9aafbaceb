"""Atomic output writing and input protection (hcctme._files)."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from anndata import AnnData

from hcctme import _files


def test_atomic_path_leaves_nothing_when_interrupted(tmp_path: Path):
    target = tmp_path / "out.tsv"
    with pytest.raises(RuntimeError):
        with _files.atomic_path(target) as tmp:
            tmp.write_text("half")
            raise RuntimeError("interrupted")
    assert not target.exists()
    assert list(tmp_path.iterdir()) == []


def test_atomic_path_replaces_existing_file_only_on_success(tmp_path: Path):
    target = tmp_path / "out.txt"
    target.write_text("old")
    with pytest.raises(RuntimeError):
        with _files.atomic_path(target) as tmp:
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
