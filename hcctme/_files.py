"""File reading and atomic writing shared by the CLI, the pipeline and the workflow scripts.

Outputs are written to a temporary name in the destination folder and moved into place, so an
interrupted run (an exception, Ctrl-C or SIGTERM) never leaves a half-written file under its final
name; an output folder is written as a whole (:func:`atomic_dir`) with ``manifest.json`` as its
completion marker, so it holds exactly one run's results. An input is never overwritten
(:func:`refuse_overwrite`), and an output that cannot be written is refused before any work
(:func:`check_writable`).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import signal
import tempfile
import threading
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import anndata as ad
import pandas as pd
from anndata import AnnData
from anndata.abc import CSCDataset, CSRDataset

from hcctme import _validate
from hcctme._constants import Files
from hcctme._logging import logger

_HDF5_MAGIC = b"\x89HDF\r\n\x1a\n"
_HDF5_OFFSETS = (0, 512, 1024, 2048)


# --------------------------------------------------------------------------------------------------
# Interruption: SIGTERM runs the same clean-up as an exception
# --------------------------------------------------------------------------------------------------
class Terminated(SystemExit):
    """Raised in the main thread when the process receives SIGTERM while hcctme writes."""


def _raise_terminated(signum: int, frame: Any) -> None:
    raise Terminated(128 + signum)


@contextlib.contextmanager
def sigterm_as_exit() -> Iterator[None]:
    """Within the block, SIGTERM raises :class:`Terminated` so ``finally`` clean-ups run.

    Only the main thread can install a handler; elsewhere the block runs unchanged.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, _raise_terminated)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _usual_mode(path: Path, *, folder: bool) -> None:
    """mkstemp/mkdtemp create 0600/0700; give the output the permissions of a normal file/folder."""
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(path, (0o777 if folder else 0o666) & ~umask)


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; move it into place only if the block succeeds."""
    path = Path(path)
    _not_a_folder(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=Files.PART_SUFFIX, dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        with sigterm_as_exit():
            yield tmp_path
            _usual_mode(tmp_path, folder=False)
            os.replace(tmp_path, path)
    finally:
        tmp_path.unlink(missing_ok=True)


# --------------------------------------------------------------------------------------------------
# Output folders: one run per folder, manifest.json as the completion marker
# --------------------------------------------------------------------------------------------------
def _check_replaceable_dir(path: Path) -> None:
    if not path.exists():
        return
    if not path.is_dir():
        raise ValueError(f"output folder {str(path)!r} exists and is not a folder; choose another --out")
    if any(path.iterdir()) and not (path / Files.MANIFEST).is_file():
        raise ValueError(
            f"output folder {str(path)!r} exists and is not an hcctme run folder (no {Files.MANIFEST}); "
            "hcctme replaces the whole folder with each run, so choose a new or empty folder"
        )


@contextlib.contextmanager
def atomic_dir(path: str | Path, *, manifest: Mapping[str, Any] | None = None) -> Iterator[Path]:
    """Yield a fresh temporary folder next to ``path``; on success it replaces ``path`` as a whole.

    Before the move the folder gets ``manifest.json`` (every file with its size and sha256, plus
    ``manifest``'s entries: parameters, versions...), written last: a folder with a manifest is a
    complete run. An existing ``path`` must be empty or an earlier hcctme run folder (it is replaced,
    never merged: no stale file of an earlier run stays beside the new ones). On an exception,
    Ctrl-C or SIGTERM the temporary folder is removed and ``path`` is left as it was.
    """
    path = Path(path).resolve()  # "." or a trailing "..": the temporary folder must lie beside it, not inside
    _check_replaceable_dir(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=Files.PART_SUFFIX, dir=path.parent))
    try:
        with sigterm_as_exit():
            yield tmp
            write_manifest(tmp, manifest or {})
            _usual_mode(tmp, folder=True)
            _replace_dir(tmp, path)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _replace_dir(new: Path, path: Path) -> None:
    if not path.exists():
        os.rename(new, path)
        return
    old = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".old", dir=path.parent))
    os.rmdir(old)
    os.rename(path, old)
    try:
        os.rename(new, path)
    except BaseException:
        os.rename(old, path)
        raise
    shutil.rmtree(old, ignore_errors=True)


def sha256(path: str | Path) -> str:
    """Hex sha256 of a file, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def write_manifest(folder: Path, extra: Mapping[str, Any]) -> Path:
    """Write ``folder/manifest.json``: every file (name, bytes, sha256), then ``extra``'s entries."""
    files = [
        {"name": p.relative_to(folder).as_posix(), "bytes": p.stat().st_size, "sha256": sha256(p)}
        for p in sorted(folder.rglob("*"))
        if p.is_file() and p.name != Files.MANIFEST
    ]
    record = {"format": Files.MANIFEST_FORMAT, "files": files, **extra}
    text = json.dumps(record, indent=2, sort_keys=False, default=str) + "\n"
    return write_text(text, folder / Files.MANIFEST)


def read_manifest(folder: str | Path) -> dict[str, Any]:
    """The manifest of a run folder; FileNotFoundError when the folder holds no complete run."""
    path = Path(folder) / Files.MANIFEST
    if not path.is_file():
        raise FileNotFoundError(f"{str(folder)!r} holds no complete hcctme run (no {Files.MANIFEST})")
    return json.loads(path.read_text(encoding="utf-8"))


# --------------------------------------------------------------------------------------------------
# Checks before any work
# --------------------------------------------------------------------------------------------------
def _same_file(a: Path, b: Path) -> bool:
    if a.resolve() == b.resolve():
        return True
    try:
        return a.exists() and b.exists() and os.path.samefile(a, b)  # hard links
    except OSError:
        return False


def refuse_overwrite(output: str | Path, *inputs: str | Path | None, folder: bool = False) -> None:
    """Refuse an output path that is, or resolves to (symbolic or hard links), one of the inputs.

    When ``folder``, an output folder that contains one of them is refused too (it is replaced as a whole).
    """
    out = Path(output)
    resolved = out.resolve()
    for inp in inputs:
        if inp is None:
            continue
        inp_path = Path(inp)
        if _same_file(out, inp_path):
            raise ValueError(f"output {str(output)!r} is the input file {str(inp)!r}; choose another output path")
        if folder and resolved in inp_path.resolve().parents:
            raise ValueError(
                f"input {str(inp)!r} is inside the output folder {str(output)!r}, which each run replaces; "
                "choose an output folder that does not contain the input"
            )


def _existing_ancestor(path: Path) -> Path:
    for candidate in (path, *path.parents):
        if candidate.exists():
            return candidate
    return Path.cwd()


def _not_a_folder(path: Path) -> None:
    """Refuse an output file path that names an existing folder."""
    if path.is_dir():
        raise ValueError(f"output {str(path)!r} is a folder; give a file name (e.g. {str(path / 'out')!r})")


def check_writable(path: str | Path, *, folder: bool = False) -> Path:
    """Check, before any work, that ``path`` (a file, or a folder when ``folder``) can be written.

    The nearest existing folder above ``path`` is tested by creating and removing a temporary
    file in it (permission bits alone do not tell: ACLs, read-only mounts, root). Raises
    ValueError naming the path and the reason.
    """
    if not str(path).strip():  # before Path(), which reads "" as "."
        raise ValueError("the output path is empty; give a file or folder name")
    if not folder and str(path).endswith(("/", os.sep)):  # before Path(), which drops the slash
        raise ValueError(f"output {str(path)!r} names a folder (it ends with '/'); give a file name in it")
    path = Path(path)
    if path.exists() and folder and not path.is_dir():
        raise ValueError(f"output folder {str(path)!r} exists and is a file; choose a folder name")
    if not folder:
        _not_a_folder(path)
    if folder:
        _check_replaceable_dir(path)
    base = _existing_ancestor(path.parent)
    if not base.is_dir():
        raise ValueError(f"cannot write {str(path)!r}: {str(base)!r} is a file, not a folder")
    try:
        fd, probe = tempfile.mkstemp(prefix=".hcctme-write-test.", dir=base)
    except OSError as err:
        raise ValueError(
            f"cannot write {str(path)!r}: the folder {str(base)!r} is not writable ({err.strerror}); "
            "choose another output path"
        ) from None
    os.close(fd)
    os.unlink(probe)
    return path


# --------------------------------------------------------------------------------------------------
# Reading
# --------------------------------------------------------------------------------------------------
def _hdf5_kind(path: Path) -> str:
    """``h5ad``, ``10x_h5``, ``loom`` or ``hdf5`` (another HDF5 layout), from the top-level names."""
    import h5py

    try:
        with h5py.File(path, "r") as handle:
            names = set(handle.keys())
            encoding = handle.attrs.get("encoding-type", "")
            groups = [handle[n] for n in names if isinstance(handle[n], h5py.Group)]
            if encoding == "anndata" or {"X", "obs", "var"} <= names or {"obs", "var"} <= names:
                return "h5ad"
            if "matrix" in names and {"row_attrs", "col_attrs"} & names:
                return "loom"
            if any({"barcodes", "data", "indices", "indptr"} <= set(g.keys()) for g in groups):
                return "10x_h5"
            return "hdf5"
    except OSError:
        return "h5ad"  # an HDF5 signature but unreadable metadata: let the reader report the damage


def sniff(path: str | Path) -> str:
    """Tell what a file looks like from its first bytes and, for HDF5, its top-level names.

    One of ``h5ad``, ``10x_h5``, ``loom``, ``hdf5``, ``zarr``, ``mtx``, ``gzip``, ``rds``, ``text`` or ``unknown``.
    """
    path = Path(path)
    if path.is_dir():
        return "zarr" if any((path / n).exists() for n in (".zgroup", ".zattrs", "zarr.json")) else "folder"
    with open(path, "rb") as handle:
        head = handle.read(max(_HDF5_OFFSETS) + len(_HDF5_MAGIC))
    if any(head[o:o + len(_HDF5_MAGIC)] == _HDF5_MAGIC for o in _HDF5_OFFSETS):
        return _hdf5_kind(path)
    if head.startswith(b"%%MatrixMarket"):
        return "mtx"
    if head.startswith(b"\x1f\x8b"):
        return "gzip"
    if head.startswith((b"RDX", b"RDS", b"X\n")):
        return "rds"
    try:
        text = head[:512].decode("utf-8")
    except UnicodeDecodeError:
        return "unknown"
    return "text" if text and ("," in text or "\t" in text) else "unknown"


_SAVE = ", then save it with adata.write_h5ad('data.h5ad') and give that file"
_READER_HINTS = {
    "10x_h5": "it is a Cell Ranger .h5 matrix: read it with scanpy.read_10x_h5(path)" + _SAVE,
    "loom": "it is a loom file: read it with scanpy.read_loom(path)" + _SAVE,
    "hdf5": "it is an HDF5 file but not an AnnData one (no obs/var groups)",
    "zarr": "it is a zarr store: read it with anndata.read_zarr(path)" + _SAVE,
    "folder": "it is a directory: give the .h5ad file inside it (a 10x matrix folder reads with scanpy.read_10x_mtx"
              + _SAVE + ")",
    "mtx": "it is a Matrix Market file: read it with scanpy.read_mtx(path) or scanpy.read_10x_mtx(folder)" + _SAVE,
    "gzip": "it is gzip-compressed: a Seurat .rds must be converted to .h5ad (e.g. SeuratDisk or zellkonverter), "
            "a 10x .mtx.gz folder reads with scanpy.read_10x_mtx",
    "rds": "it looks like an R data file (Seurat .rds): convert it to .h5ad (e.g. SeuratDisk or zellkonverter)",
    "text": "it is a text table: read it with anndata.read_csv(path) or scanpy.read_text(path)" + _SAVE,
    "unknown": "it is not an HDF5 file (an .h5ad file is HDF5 written by anndata/scanpy)",
}


def read_h5ad(path: str | Path, *, backed: bool | None = False) -> AnnData:
    """Read an h5ad file with a clear error for missing, unreadable, corrupt, too large or non-AnnData files.

    Other formats (Cell Ranger .h5, loom, zarr, csv, mtx) are recognised and the right reader is
    named; after reading, the structure of every sparse matrix (X, layers, raw) is checked
    (:func:`hcctme._validate.sparse_structure`), so a corrupt file never reaches a compiled kernel.

    ``backed=True`` opens the file as ``anndata.read_h5ad(path, backed="r")`` does, except that the
    layers stay on disk too (anndata reads them into memory): X, every sparse layer and ``raw.X`` are
    read by the tools in row chunks; obs, var, obsm, obsp and uns are in memory. The on-disk layers read
    through a read-only handle of their own (anndata closes and reopens its own when it writes), released with
    the object (``del adata``), not by ``adata.file.close()``. ``backed=None``
    chooses: backed when the matrices would take more than ``Files.AUTO_BACKED_FRACTION`` of the
    available memory. Before reading, an in-memory read of matrices larger than the available memory
    is refused (the message suggests backed mode), and a backed CSC matrix (slow row access) is
    refused with the commands converting it to CSR.
    """
    path = _validate.existing_file(path, what="input h5ad file")
    kind = sniff(path)
    if kind != "h5ad":
        raise ValueError(f"cannot read {str(path)!r} as h5ad: {_READER_HINTS[kind]}")
    backed = _choose_backed(path, backed)
    try:
        adata = _open_backed(path) if backed else ad.read_h5ad(path)
    except Exception as err:  # h5py and anndata raise many exception types on damaged files
        raise ValueError(
            f"cannot read {str(path)!r} as h5ad ({err.__class__.__name__}: {err}); the file is damaged or "
            "was not written by anndata/scanpy: re-export it (adata.write_h5ad) or restore a good copy"
        ) from None
    for where, matrix in _matrices(adata):
        _validate.sparse_structure(matrix, where=f"{path.name}: {where}")
    return unescape_keys(adata)


def available_memory() -> int:
    """Bytes of memory available to a new allocation now (``psutil.virtual_memory().available``)."""
    import psutil

    return int(psutil.virtual_memory().available)


def _gib(n_bytes: float) -> str:
    return f"{n_bytes / 2**30:.1f} GiB"


def matrix_layout(path: str | Path) -> dict[str, tuple[str, int]]:
    """The matrices of an h5ad file from its header: ``{"X": ("csr_matrix", bytes in memory), ...}``.

    Covers X, every layer and raw/X; the encoding is anndata's ``encoding-type`` (``csr_matrix``,
    ``csc_matrix``, ``array``) and the bytes are those of the arrays once read. Nothing is loaded.
    """
    import h5py

    layout: dict[str, tuple[str, int]] = {}
    with h5py.File(path, "r") as handle:
        names = ["X", "raw/X"] + [f"layers/{n}" for n in handle.get("layers", ())]
        for name in names:
            if name not in handle:
                continue
            node = handle[name]
            encoding = str(node.attrs.get("encoding-type", "array" if isinstance(node, h5py.Dataset) else ""))
            arrays = [node] if isinstance(node, h5py.Dataset) else [node[k] for k in ("data", "indices", "indptr")
                                                                    if k in node]
            layout[name] = (encoding, sum(int(a.size) * a.dtype.itemsize for a in arrays))
    return layout


def _choose_backed(path: Path, backed: bool | None) -> bool:
    """The reading mode, checked against the file's header before anything is read."""
    if backed is not None and not isinstance(backed, bool):
        raise TypeError(f"backed must be True, False or None (choose from the file size), got {backed!r}")
    try:
        layout = matrix_layout(path)
    except (OSError, KeyError):
        return bool(backed)  # damaged header: the reader reports it
    total = sum(size for _, size in layout.values())
    available = available_memory()
    if backed is None:
        backed = total > Files.AUTO_BACKED_FRACTION * available
        if backed:
            logger.info("%s: matrices of %s (%s available): reading backed", path.name, _gib(total),
                                  _gib(available))
    if not backed and total > available:
        raise ValueError(
            f"{str(path)!r} holds {_gib(total)} of matrices (X, layers, raw) but only {_gib(available)} of memory "
            "is available: open it backed (hcctme run --backed; in Python hcctme._files.read_h5ad(path, "
            "backed=True), or anndata.read_h5ad(path, backed='r')) so that the steps read it in chunks"
        )
    if backed:
        _refuse_csc(path, layout)
    return backed


def _refuse_csc(path: Path, layout: dict[str, tuple[str, int]]) -> None:
    csc = [name for name, (encoding, _) in layout.items() if encoding == "csc_matrix"]
    if not csc:
        return
    lines = {"X": "adata.X = adata.X.tocsr()",
             "raw/X": "adata.raw = anndata.AnnData(adata.raw.X.tocsr(), var=adata.raw.var)"}
    steps = "; ".join(lines.get(n, f"adata.layers[{n[len('layers/'):]!r}] = adata.layers[{n[len('layers/'):]!r}]"
                                   ".tocsr()") for n in csc)
    raise ValueError(
        f"{str(path)!r} stores {', '.join(csc)} as CSC (column-compressed) sparse matrices: read backed, every "
        "chunk of cells would read the whole matrix. Convert them to CSR once, on a machine with enough memory: "
        f"import anndata; adata = anndata.read_h5ad({str(path)!r}); {steps}; adata.write_h5ad('csr.h5ad') "
        "(scanpy: the same with sc.read_h5ad); then run on csr.h5ad"
    )


def _open_backed(path: Path) -> AnnData:
    """``anndata.read_h5ad(path, backed="r")`` with the sparse layers on disk too (anndata loads them)."""
    import h5py
    from anndata.io import read_elem, sparse_dataset

    handle = h5py.File(path, "r")
    if "encoding-type" not in handle.attrs:  # written by anndata < 0.7
        handle.close()
        return ad.read_h5ad(path, backed="r")
    parts: dict[str, Any] = {k: read_elem(handle[k]) for k in ("obs", "var", "obsm", "varm", "obsp", "varp", "uns")
                             if k in handle}
    if "layers" in handle:
        # the on-disk layers read through a handle of their own: anndata closes and reopens its file (when it
        # writes or copies a backed object), which would leave them reading through a closed one
        layers = h5py.File(path, "r")["layers"]
        parts["layers"] = {name: sparse_dataset(node) if _is_sparse_group(node) else read_elem(node)
                           for name, node in layers.items()}
    if "raw" in handle:
        parts["raw"] = {k: read_elem(handle[f"raw/{k}"]) for k in ("var", "varm") if f"raw/{k}" in handle}
    return AnnData(filename=handle, **parts)


def _is_sparse_group(node: Any) -> bool:
    return str(node.attrs.get("encoding-type", "")) in ("csr_matrix", "csc_matrix")


def _matrices(adata: AnnData) -> Iterator[tuple[str, Any]]:
    yield "X", adata.X
    for name in adata.layers:
        yield f"layers[{name!r}]", adata.layers[name]
    if adata.raw is not None:
        yield "raw.X", adata.raw.X


def read_context_map(path: str | Path) -> dict[str, str | None]:
    """A YAML mapping ``{cell-type label: cell_context}`` (safe loader; values checked by the caller)."""
    import yaml

    text = _validate.small_text_file(path, what="context map file")
    try:
        mapping = yaml.safe_load(text)
    except yaml.YAMLError as err:
        raise ValueError(f"context map file {str(path)!r} is not valid YAML ({err.__class__.__name__})") from None
    if not isinstance(mapping, Mapping) or not mapping:
        raise ValueError(
            f"context map file {str(path)!r} must hold a YAML mapping of your cell-type labels to cell contexts, "
            "one per line, e.g. 'CD8 TILs: cd8_t'"
        )
    return {str(label): (None if ctx is None else str(ctx)) for label, ctx in mapping.items()}


# --------------------------------------------------------------------------------------------------
# Writing
# --------------------------------------------------------------------------------------------------
def write_h5ad(adata: AnnData, path: str | Path) -> Path:
    """Write an AnnData atomically.

    uns values h5py cannot store (object columns, None) are stringified and keys holding "/" (cell-type
    labels such as "CD4/CD8 T") are escaped, in the file only, never in the caller's object
    (:func:`read_h5ad` restores the keys). A backed AnnData is written whole without loading its
    matrices (:func:`write_results_h5ad` with ``full=True``); a view of one is refused.
    """
    if adata.isbacked:
        return write_results_h5ad(adata, path, full=True)
    path = Path(path)
    with atomic_path(path) as tmp:
        _write_anndata(adata, tmp)
    return path


def _write_anndata(adata: AnnData, tmp: Path) -> None:
    original = adata.uns
    try:
        adata.uns = _safe_value(dict(original))  # swapped for the write only: no copy of the matrices
        adata.write_h5ad(tmp)
    finally:
        adata.uns = original


def results_only(adata: AnnData) -> AnnData:
    """An AnnData sharing ``adata``'s obs, var, obsm and uns, with no matrix (``X=None``, no layers, no raw).

    It keeps the shape (cells x genes) and everything the tools wrote, so :mod:`hcctme.get` and
    :func:`hcctme.report.build` read it as they read the full object.
    """
    return AnnData(obs=adata.obs, var=adata.var, obsm=dict(adata.obsm), uns=adata.uns)


def write_results_h5ad(adata: AnnData, path: str | Path, *, full: bool = False) -> Path:
    """Write ``adata``'s results (obs, var, obsm, uns; :func:`results_only`) as an h5ad file, atomically.

    With ``full``, everything is written: an in-memory AnnData as :func:`write_h5ad` writes it; a backed one
    with its varm, obsp, varp and the layers it holds in memory, and its on-disk matrices (X, raw, the layers
    read from the file) copied from their HDF5 groups into the new file (h5py copies them block by block, in
    bounded memory; nothing is loaded). A view of a backed AnnData is refused with ``full`` (its file holds every
    cell's rows): write its cells to a file of their own first.
    """
    path = Path(path)
    if full and not adata.isbacked:
        return write_h5ad(adata, path)
    if full and adata.is_view:
        raise ValueError(
            "cannot write a whole view of a backed AnnData (its file holds every cell's matrices): write the "
            "cells to their own file first, adata[mask].copy(filename='subset.h5ad'), or write the results only "
            "(full=False)"
        )
    with atomic_path(path) as tmp:
        if not full:
            _write_anndata(results_only(adata), tmp)
        else:
            on_disk = {name: layer for name, layer in adata.layers.items()
                       if isinstance(layer, CSRDataset | CSCDataset)}
            _write_anndata(AnnData(obs=adata.obs, var=adata.var, obsm=dict(adata.obsm), varm=dict(adata.varm),
                                   obsp=dict(adata.obsp), varp=dict(adata.varp), uns=adata.uns,
                                   layers={n: v for n, v in adata.layers.items() if n not in on_disk}), tmp)
            _copy_matrices(Path(adata.filename), tmp, n_vars=adata.n_vars, layers=on_disk)
    return path


def _copy_matrices(source: Path, target: Path, *, n_vars: int, layers: Mapping[str, Any]) -> None:
    """Copy X and raw from the h5ad ``source``, and the on-disk ``layers`` from their groups, into ``target``.

    HDF5 object copies, block by block; the layers held in memory were written with the rest.
    """
    import h5py

    with h5py.File(source, "r") as src, h5py.File(target, "r+") as dst:
        shape = src["X"].attrs.get("shape", getattr(src["X"], "shape", None))
        if shape is not None and int(shape[1]) != n_vars:
            raise ValueError(
                f"cannot write the full copy: the genes changed during the run ({int(shape[1])} in "
                f"{str(source)!r}, {n_vars} now, e.g. after harmonize_genes); write the results only"
            )
        for name in ("X", "raw"):
            if name in src:
                if name in dst:
                    del dst[name]
                dst.copy(src[name], name)
        for name, layer in layers.items():
            dst.require_group("layers").copy(layer.group, name)


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


def escape_key(key: Any) -> str:
    """An HDF5-safe name for a key: "%" -> "%25", "/" -> "%2F" (reversed by :func:`unescape_key`)."""
    return str(key).replace("%", "%25").replace("/", "%2F")


def unescape_key(key: str) -> str:
    """The key :func:`escape_key` escaped."""
    return key.replace("%2F", "/").replace("%25", "%")


def unescape_keys(adata: AnnData) -> AnnData:
    """Restore, in place, the uns keys and uns table columns that :func:`write_h5ad` escaped."""
    adata.uns = _unescape(dict(adata.uns))
    return adata


def _unescape(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {unescape_key(str(k)): _unescape(v) for k, v in value.items()}
    if isinstance(value, pd.DataFrame) and any("%" in str(c) for c in value.columns):
        return value.rename(columns=lambda c: unescape_key(str(c)))
    return value


def _text_column(values: pd.Series) -> pd.Series:
    """A text column h5ad can hold: strings, and a missing value kept missing (a categorical; not the text 'nan').

    A categorical stays one (its categories as text), so the table reads back with the dtype it was written with.
    """
    if isinstance(values.dtype, pd.CategoricalDtype):
        text = values.cat.categories.map(str)
        if text.is_unique:
            return values.cat.rename_categories(text)
    missing = values.isna().to_numpy()
    if not missing.any():
        return values.astype(str)
    return pd.Series(pd.Categorical([None if m else str(v) for v, m in zip(values, missing, strict=True)]),
                     index=values.index, name=values.name)


def _safe_value(value):
    if isinstance(value, dict):
        return {escape_key(k): _safe_value(v) for k, v in value.items() if v is not None}
    if isinstance(value, pd.DataFrame):
        frame = value.copy()
        frame.columns = [escape_key(c) for c in frame.columns]
        if not pd.api.types.is_numeric_dtype(frame.index):  # a numeric index (RangeIndex) h5ad keeps as it is
            frame.index = frame.index.astype(str)
        for col in frame.columns:
            if frame[col].dtype == object or isinstance(frame[col].dtype, pd.CategoricalDtype):
                frame[col] = _text_column(frame[col])
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
