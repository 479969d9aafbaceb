"""File reading and atomic writing shared by the CLI, the pipeline and the workflow scripts.

Outputs are written to a temporary name in the destination folder and moved into place, so an
interrupted run never leaves a half-written file; an input is never overwritten.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

import anndata as ad
import pandas as pd
from anndata import AnnData

from hcctme import _validate


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; move it into place only if the block succeeds."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp_path, 0o666 & ~umask)  # mkstemp creates 0600; give the file the usual permissions
        os.replace(tmp_path, path)
    finally:
        tmp_path.unlink(missing_ok=True)


def read_h5ad(path: str | Path, *, backed: bool = False) -> AnnData:
    """Read an h5ad file with a clear error for missing or unreadable files."""
    path = _validate.existing_file(path, what="input h5ad file")
    if path.is_dir():
        raise ValueError(f"{str(path)!r} is a directory; give an .h5ad file")
    try:
        return ad.read_h5ad(path, backed="r" if backed else None)
    except (OSError, KeyError, ValueError) as err:
        raise ValueError(
            f"cannot read {str(path)!r} as h5ad ({err.__class__.__name__}: {err}); "
            "is it an AnnData .h5ad file written by anndata/scanpy?"
        ) from None


def refuse_overwrite(output: str | Path, *inputs: str | Path) -> None:
    """Refuse an output path that is one of the inputs."""
    out = Path(output).resolve()
    for inp in inputs:
        if inp is not None and Path(inp).resolve() == out:
            raise ValueError(f"output {str(output)!r} is the input file; choose another output path")


def write_h5ad(adata: AnnData, path: str | Path) -> Path:
    """Write an AnnData atomically; uns values h5py cannot store (object columns, None) are stringified
    in the file only, never in the caller's object."""
    path = Path(path)
    original = adata.uns
    with atomic_path(path) as tmp:
        try:
            adata.uns = _safe_value(dict(original))  # swapped for the write only: no copy of the matrices
            adata.write_h5ad(tmp)
        finally:
            adata.uns = original
    return path


def write_table(table: pd.DataFrame, path: str | Path, *, index: bool = False) -> Path:
    """Write a tab-separated table atomically."""
    path = Path(path)
    with atomic_path(path) as tmp:
        table.to_csv(tmp, sep="\t", index=index)
    return path


def write_text(text: str, path: str | Path) -> Path:
    """Write a text file atomically."""
    path = Path(path)
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return path


def _safe_value(value):
    if isinstance(value, dict):
        return {str(k): _safe_value(v) for k, v in value.items() if v is not None}
    if isinstance(value, pd.DataFrame):
        frame = value.copy()
        frame.columns = frame.columns.astype(str)
        frame.index = frame.index.astype(str)
        for col in frame.columns:
            if frame[col].dtype == object or isinstance(frame[col].dtype, pd.CategoricalDtype):
                frame[col] = frame[col].astype(str)
            elif frame[col].dtype == bool:
                frame[col] = frame[col].astype(bool)
        return frame
    if isinstance(value, pd.Series):
        return _safe_value(value.to_frame())
    if isinstance(value, (list, tuple)):
        if all(isinstance(v, (str, int, float, bool)) for v in value):
            return list(value)
        return [str(v) for v in value]
    if isinstance(value, (str, int, float, bool)) or hasattr(value, "dtype"):
        return value
    return str(value)
