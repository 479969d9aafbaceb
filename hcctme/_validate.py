"""Input checks shared by every hcctme tool.

Each check either returns the validated object or raises a ``ValueError``, ``KeyError``,
``TypeError`` or ``FileNotFoundError`` whose message names the problem and the fix. Checks never
modify their input, so a tool that validates first and writes last leaves a user's AnnData as it
was when it fails.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
import scipy.sparse as sp
from anndata import AnnData

from hcctme import _labels, _version
from hcctme._constants import Defaults, Files, Keys, Suffix

MatrixKind = Literal["counts", "lognorm", "scaled", "other"]


class TooFewCellsError(ValueError):
    """The cohort holds too few cells per sample (per sample and group, or too few samples) for a tool's result.

    A property of the data, not of an argument: :func:`hcctme.pipeline.run` skips the step (or the comparison)
    that raises it, records why in ``uns["hcctme_run"]["skipped"]`` and goes on with the other steps. A
    ``ValueError``, so ``except ValueError`` still catches it.
    """


class TooFewGenesError(ValueError):
    """The data measure too few of the genes a step needs: no signature it reads reaches the minimum coverage.

    A targeted panel or a gene subset, say. Like :class:`TooFewCellsError`, a property of the data:
    :func:`hcctme.pipeline.run` skips the step that raises it, records why and goes on. A ``ValueError``.
    """


_PREVIEW = 12
LOGNORM_MAX = 50  # non-integer values all below this read as log-normalised (log1p of normalised counts)


def _preview(values: Iterable[Any]) -> str:
    values = [str(v) for v in values]
    shown = ", ".join(repr(v) for v in values[:_PREVIEW])
    return shown + (f", ... ({len(values)} in all)" if len(values) > _PREVIEW else "")


# --------------------------------------------------------------------------------------------------
# AnnData and keys
# --------------------------------------------------------------------------------------------------
def anndata(adata: Any, *, allow_empty: bool = False, writes: bool = False) -> AnnData:
    """Check that ``adata`` is a non-empty AnnData and, for a tool that ``writes`` results into it, not a backed view.

    anndata cannot write into a view of a backed object (``adata[mask]`` of a file opened with
    ``backed="r"``) nor copy it without a file name: refused here, before any work, not by anndata at the end.
    """
    if not isinstance(adata, AnnData):
        raise TypeError(
            f"expected an AnnData object, got {type(adata).__name__}; "
            "read your data with anndata.read_h5ad or scanpy.read_* first"
        )
    if not allow_empty and (adata.n_obs == 0 or adata.n_vars == 0):
        raise ValueError(
            f"the AnnData is empty ({adata.n_obs} cells x {adata.n_vars} genes); "
            "check the filtering steps that produced it"
        )
    if writes and adata.is_view and adata.isbacked:
        raise ValueError(
            "adata is a view of a backed AnnData (a subset of a file opened with backed='r'), which anndata "
            "cannot write results into; load the subset (subset = adata[mask].to_memory()) or write it to "
            "its own file first (adata[mask].copy(filename='subset.h5ad'), then read that file backed)"
        )
    return adata


def _column(frame: pd.DataFrame, where: str, key: Any, purpose: str) -> pd.Series:
    """``frame[key]`` with a TypeError for non-string keys and a KeyError listing the columns."""
    if not isinstance(key, str):
        article = "an" if where == "obs" else "a"
        raise TypeError(f"{article} {where} column name must be a string, got {type(key).__name__} ({key!r})")
    if key not in frame.columns:
        why = f" ({purpose})" if purpose else ""
        raise KeyError(
            f"adata.{where} has no column {key!r}{why}; available columns: {_preview(frame.columns) or 'none'}"
        )
    return frame[key]


def obs_column(adata: AnnData, key: Any, *, purpose: str = "") -> pd.Series:
    """Return ``adata.obs[key]``, raising a KeyError that lists the columns when it is missing."""
    col = _column(adata.obs, "obs", key, purpose)
    if col.isna().any():
        raise ValueError(
            f"adata.obs[{key!r}] has {int(col.isna().sum())} missing values; "
            "fill or drop those cells before calling this tool"
        )
    return col


def score_or_flag(adata: AnnData, key: str, *, purpose: str) -> tuple[np.ndarray, bool]:
    """``adata.obs[key]`` as a per-cell score (numeric) or flag (boolean): (float values, is_flag).

    A boolean column (``bool``, pandas ``boolean``, or ``object`` holding only True/False) is a flag,
    returned as 0/1; a numeric column is a score and must be finite. Anything else (categories,
    strings), a missing value in a flag or a NaN/inf in a score is refused.
    """
    col = _column(adata.obs, "obs", key, purpose)
    accepted = "a numeric column (a score, e.g. scrublet's 'doublet_score') or a boolean one (cells flagged True)"
    values = col.to_numpy(dtype=object)
    present = values[~pd.isna(col).to_numpy()]
    is_flag = pd.api.types.is_bool_dtype(col.dtype) or (
        col.dtype == object and present.size > 0 and all(isinstance(v, (bool, np.bool_)) for v in present))
    if is_flag:
        if present.size < values.size:
            raise ValueError(f"adata.obs[{key!r}] ({purpose}) is a boolean column with {values.size - present.size} "
                             "missing values; set them to True or False first")
        return present.astype(bool).astype(float), True
    if not pd.api.types.is_numeric_dtype(col.dtype):
        raise TypeError(f"adata.obs[{key!r}] ({purpose}) has dtype {col.dtype}; pass {accepted}")
    numbers = col.to_numpy(dtype=float, na_value=np.nan)
    if not np.all(np.isfinite(numbers)):
        raise ValueError(f"adata.obs[{key!r}] ({purpose}) has {int(np.sum(~np.isfinite(numbers)))} NaN/inf values; "
                         "fill or drop those cells first")
    return numbers, False


def categorical_levels(
    adata: AnnData, key: str, *, purpose: str = "", min_levels: int = 1
) -> pd.Series:
    """Return obs[key] as strings, requiring at least ``min_levels`` distinct values."""
    col = obs_column(adata, key, purpose=purpose).astype(str)
    levels = pd.unique(col)
    if len(levels) < min_levels:
        raise ValueError(
            f"adata.obs[{key!r}] has {len(levels)} level(s) ({_preview(levels)}); "
            f"{purpose or 'this tool'} needs at least {min_levels}"
        )
    return col


def level(values: pd.Series, value: Any, *, key: str, what: str = "reference") -> str:
    """Check that ``value`` is one of the levels of ``values`` (an obs column)."""
    levels = pd.unique(values.astype(str))
    if value is None or str(value) not in set(levels):
        raise ValueError(
            f"{what} {value!r} is not a level of obs[{key!r}]; levels are: {_preview(levels)}"
        )
    return str(value)


def reference_level(values: pd.Series, value: Any, *, key: str) -> str:
    """Check the ``reference`` of a condition column (:func:`level`) and the column's levels.

    Results name a contrast ``"<other> vs <reference>"``; a level holding ``" vs "`` would make that name
    ambiguous, so it is refused.
    """
    reference = level(values, value, key=key, what="reference")
    ambiguous = [lv for lv in pd.unique(values.astype(str)) if " vs " in lv]
    if ambiguous:
        raise ValueError(f"obs[{key!r}] has level(s) {_preview(ambiguous)} holding ' vs ', which hcctme uses to name "
                         "a contrast ('<other> vs <reference>'); rename them (e.g. ' versus ' or '_vs_')")
    return reference


def constant_within(adata: AnnData, key: str, by: str) -> pd.Series:
    """Check that obs[key] takes one value per obs[by] group; return it indexed by group."""
    values = _column(adata.obs, "obs", key, "conditions")
    if values.isna().any():
        raise ValueError(f"obs[{key!r}] has {int(values.isna().sum())} missing value(s); every cell needs one (drop "
                         "or label them)")
    frame = pd.DataFrame({by: _column(adata.obs, "obs", by, "samples").astype(str), key: values.astype(str)})
    n_values = frame.groupby(by, observed=True)[key].nunique()
    bad = n_values[n_values > 1]
    if len(bad):
        raise ValueError(
            f"obs[{key!r}] varies within samples of obs[{by!r}] ({_preview(bad.index)}); "
            f"each sample must have one {key} value (the sample is the unit of replication)"
        )
    return frame.groupby(by, observed=True)[key].first()


def call_record(**arguments: Any) -> dict[str, Any]:
    """A tool's arguments as ``uns[key + "_params"]`` stores them: ``params`` and ``params_none``.

    h5ad files cannot hold None, so ``params`` keeps the arguments that are not None (tuples as lists, a
    ``{label: context}`` map as a table: labels may hold "/") and ``params_none`` names the others;
    :func:`hcctme.get.params` puts them back, so that ``tool(adata, **get.params(adata, key)["params"])``
    repeats the call.
    """
    params = {}
    for name, value in arguments.items():
        if isinstance(value, tuple):
            value = list(value)
        elif isinstance(value, Mapping) and all(v is None or isinstance(v, str) for v in value.values()):
            value = _labels.map_table(value)
        if value is not None:
            params[name] = value
    return {"params": params, "params_none": [name for name, value in arguments.items() if value is None]}


def key_added(key: Any, *, adata: AnnData | None = None, slots: Sequence[str] = (),
              reads: Iterable[Any] = (), tool: str | None = None,
              outputs: Iterable[tuple[str, str]] = ()) -> str:
    """Check a ``key_added`` argument (no "/": anndata writes it as nested groups, which read back elsewhere).

    With ``adata``, the key may not name an entry of ``slots`` (``"obs"``, ``"obsm"``, ``"uns"``) that no hcctme tool
    wrote (no hcctme record in ``uns[key + "_params"]``, a dict whose ``tool`` is ``"hcctme.<tool>"``: the user's own
    data, e.g. ``obsm["spatial"]``; nor a user's own entry under that params name), nor an input the call
    ``reads`` (its cell-type or sample column, the scores it reads). ``outputs``: the call's other writes as
    ``(slot, suffix)`` (``("obs", "_confidence")``: ``obs[key + "_confidence"]``), held to the same rules.
    ``tool``: the calling tool's name (``"hcctme.tl.call_states"``); a key whose record names another tool
    (``uns[key + "_params"]["tool"]``) is refused: writing there would replace that tool's results and provenance.
    """
    if not isinstance(key, str) or not key:
        raise TypeError(f"key_added must be a non-empty string, got {key!r}")
    if "/" in key:
        raise ValueError(f"key_added {key!r} holds '/', which h5ad files read back as nested keys; use '_' instead")
    outputs = [(slot, key + suffix) for slot, suffix in outputs]
    read = {r for r in reads if isinstance(r, str)}
    clash = [name for name in (key, *(name for _, name in outputs)) if name in read]
    if clash:
        raise ValueError(f"key_added={key!r} would write {clash[0]!r}, which this call reads; choose another key_added")
    if adata is None:
        return key
    record = adata.uns.get(key + Suffix.PARAMS)
    if not _hcctme_record(record):  # a user's own entry under the params name is no hcctme provenance
        for slot, name in [*((slot, key) for slot in slots), *outputs, ("uns", key + Suffix.PARAMS)]:
            if name in getattr(adata, slot):
                raise ValueError(f"key_added={key!r} would overwrite adata.{slot}[{name!r}], which no hcctme tool "
                                 "wrote; choose another key_added")
    elif tool is not None and record["tool"] != tool:
        raise ValueError(f"key_added={key!r} holds the results of {record['tool']} (uns[{key + Suffix.PARAMS!r}]); "
                         "writing there would replace them: choose another key_added")
    return key


def _hcctme_record(record: Any) -> bool:
    """Whether an ``uns[key + "_params"]`` entry is the provenance record of an hcctme tool."""
    return isinstance(record, Mapping) and isinstance(record.get("tool"), str) and record["tool"].startswith("hcctme.")


def key_name(value: Any, *, name: str) -> str:
    """Check a key argument naming an entry of the AnnData (a non-empty string)."""
    if not isinstance(value, str) or not value:
        raise TypeError(f"{name} must be a non-empty string (a key of the AnnData), got {value!r}")
    return value


def names(value: Any, *, name: str) -> list[str] | None:
    """A name or a list of names (no repeats) as a list; None stays None."""
    if value is None:
        return None
    if isinstance(value, str):
        return [value]
    if not isinstance(value, list | tuple | pd.Index | np.ndarray) or not all(isinstance(v, str) for v in value):
        raise TypeError(f"{name} must be a name or a list of names, got {value!r}")
    repeated = sorted(pd.Index(value)[pd.Index(value).duplicated()].unique())
    if repeated:
        raise ValueError(f"{name} names {repeated} more than once")
    return list(value)


def choice(value: Any, options: Sequence[str], *, name: str) -> str:
    """Check that ``value`` is one of ``options``."""
    if value not in options:
        raise ValueError(f"{name}={value!r} is not supported; choose one of {list(options)}")
    return value


def boolean(value: Any, *, name: str) -> bool:
    """Check a True/False flag (``0``/``1`` and other truthy values are refused)."""
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be True or False, got {value!r}")
    return bool(value)


def copy_flag(value: Any, *, adata: AnnData, tool: str, writes: str) -> bool:
    """Check ``copy``; a backed AnnData cannot be copied without loading its whole matrix, so it is refused."""
    copy = boolean(value, name="copy")
    if copy and adata.isbacked:
        raise ValueError(
            f"copy=True would load the whole backed matrix into memory; call {tool}(adata) with copy=False "
            f"(it writes only the in-memory {writes}), or load the data first with adata.to_memory()"
        )
    return copy


def positive_int(value: Any, *, name: str, allow_none: bool = False, minimum: int = 1) -> int | None:
    """Check an integer parameter (``bool`` is refused)."""
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name} must be an integer, got {type(value).__name__} ({value!r})")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    return int(value)


def random_state(value: Any, *, name: str = "random_state", allow_none: bool = False) -> int | None:
    """Check a seed: an integer in [0, 2**32), or None when ``allow_none``.

    The range numpy's ``RandomState``, scanpy and scikit-learn take (the mean score draws its control genes as
    scanpy does; call_states' k-means runs through scikit-learn).
    """
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        kind = "an integer or None" if allow_none else "an integer"
        raise TypeError(f"{name} must be {kind}, got {type(value).__name__} ({value!r})")
    if value < 0:
        raise ValueError(f"{name} must be >= 0, got {value}")
    if value >= 2**32:
        raise ValueError(f"{name} must be < 2**32 (numpy's RandomState, scanpy and scikit-learn take no larger "
                         f"seed), got {value}")
    return int(value)


def fraction(value: Any, *, name: str) -> float:
    """Check a number in [0, 1]."""
    if isinstance(value, bool) or not isinstance(value, (int, float, np.floating, np.integer)):
        raise TypeError(f"{name} must be a number in [0, 1], got {value!r}")
    if not 0.0 <= float(value) <= 1.0:
        raise ValueError(f"{name} must be in [0, 1], got {value}")
    return float(value)


def existing_file(path: Any, *, what: str = "file") -> Path:
    """Check that ``path`` names an existing file or directory."""
    if not isinstance(path, (str, Path)):
        raise TypeError(f"expected a path to a {what}, got {type(path).__name__}")
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{what} {str(path)!r} does not exist; check the path")
    return path


def small_text_file(path: str | Path, *, what: str, limit: int | None = None) -> str:
    """Return the UTF-8 text of a small input file (gene sets, context maps).

    A regular file of at most ``limit`` bytes (default ``Files.MAX_GENE_SET_BYTES``; never read past it,
    and devices such as ``/dev/zero`` are refused), byte-order mark removed.
    """
    limit = Files.MAX_GENE_SET_BYTES if limit is None else limit
    path = existing_file(path, what=what)
    if not path.is_file():
        raise ValueError(f"{what} {str(path)!r} is not a regular file; give the path of a text file")
    with open(path, "rb") as handle:
        raw = handle.read(limit + 1)
    if len(raw) > limit:
        raise ValueError(f"{what} {str(path)!r} is larger than the limit of {limit:,} bytes "
                         f"({limit / 2**20:g} MiB) for such files; is it the right file?")
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise ValueError(f"{what} {str(path)!r}: not a UTF-8 text file") from None


# --------------------------------------------------------------------------------------------------
# Expression matrices
# --------------------------------------------------------------------------------------------------
def matrix(
    adata: AnnData, *, layer: str | None = None, use_raw: bool | None = None
) -> tuple[Any, pd.Index]:
    """Resolve the expression matrix a tool reads (``layer`` or ``.raw`` or ``.X``).

    ``use_raw=None`` follows scanpy: ``.raw`` is used when present and no layer is given.
    Returns the matrix (not copied) and its gene names.
    """
    if use_raw is not None and not isinstance(use_raw, bool | np.bool_):
        raise TypeError(f"use_raw must be True, False or None, got {use_raw!r}")
    if layer is not None and use_raw:
        raise ValueError("give either layer= or use_raw=True, not both")
    if layer is not None:
        if not isinstance(layer, str):
            raise TypeError(f"layer must be a string, got {type(layer).__name__}")
        if layer not in adata.layers:
            raise KeyError(
                f"adata.layers has no {layer!r}; available layers: {_preview(adata.layers.keys()) or 'none'}"
                " (pass layer=None to use .X; on the command line, --layer X)"
            )
        return sparse_structure(adata.layers[layer], where=f"adata.layers[{layer!r}]"), adata.var_names
    if use_raw is None:
        use_raw = adata.raw is not None
    if use_raw:
        if adata.raw is None:
            raise ValueError("use_raw=True but adata.raw is None; pass use_raw=False or set adata.raw")
        return sparse_structure(adata.raw.X, where="adata.raw.X"), adata.raw.var_names
    return sparse_structure(adata.X, where="adata.X"), adata.var_names


def sparse_structure(X: Any, *, where: str = "the expression matrix") -> Any:
    """Check the structure of a sparse matrix before any compiled kernel reads it; return ``X``.

    CSR/CSC (in memory, or an anndata backed sparse dataset): ``indptr`` has one entry per row
    (column) plus one, starts at 0, never decreases and ends at the number of stored values;
    ``indices`` and ``data`` have that length and every index lies within the matrix. Backed
    matrices read ``indptr`` whole and ``indices`` in blocks of ``Files.SPARSE_CHUNK``. COO: row and
    column indices within the shape. Dense and dask matrices pass unchanged. A corrupt matrix (a
    damaged file) raises ValueError instead of shifting values silently or crashing the process.
    """
    if sp.issparse(X):
        if X.format in ("csr", "csc"):
            _compressed_structure(X.indptr, X.indices, X.data, X.shape, X.format, where)
        elif X.format == "coo":
            for axis, idx in enumerate((X.row, X.col)):
                _index_range(np.asarray(idx), X.shape[axis], where, "coo", f"{('row', 'column')[axis]} index")
        return X
    group = getattr(X, "group", None)  # anndata's backed CSR/CSC dataset
    if group is not None and getattr(X, "format", None) in ("csr", "csc"):
        stat = Path(group.file.filename).stat()
        key = (group.file.filename, group.name, stat.st_size, stat.st_mtime_ns)
        if key not in _CHECKED_ON_DISK:  # one pass over a file's indices, however many tools read it
            _compressed_structure(group["indptr"], group["indices"], group["data"], X.shape, X.format, where,
                                  chunk=Files.SPARSE_CHUNK)
            _CHECKED_ON_DISK.add(key)
    return X


_CHECKED_ON_DISK: set[tuple[str, str, int, int]] = set()


def _corrupt(where: str, fmt: str, problem: str) -> ValueError:
    return ValueError(
        f"{where} is a corrupt {fmt.upper()} sparse matrix: {problem}. The file or the step that built it is "
        "damaged; re-create the matrix (re-export the file; X.check_format(full_check=True) shows the problem)"
    )


def _index_range(block: np.ndarray, size: int, where: str, fmt: str, what: str) -> None:
    if not np.issubdtype(block.dtype, np.integer):
        raise _corrupt(where, fmt, f"its {what} array has dtype {block.dtype}, not integers")
    if block.size and (block.min() < 0 or block.max() >= size):
        bad = int(np.sum((block < 0) | (block >= size)))
        raise _corrupt(where, fmt, f"{bad} {what}(es) outside 0..{size - 1} (e.g. {int(block.max())})")


def _compressed_structure(indptr: Any, indices: Any, data: Any, shape: tuple[int, int], fmt: str, where: str,
                          *, chunk: int | None = None) -> None:
    major, minor = (shape[0], shape[1]) if fmt == "csr" else (shape[1], shape[0])
    pointers = np.asarray(indptr[...])
    n_indices, n_data = int(indices.shape[0]), int(data.shape[0])
    if pointers.ndim != 1 or len(pointers) != major + 1:
        raise _corrupt(where, fmt, f"indptr has {pointers.size} entries, expected {major + 1}")
    if not np.issubdtype(pointers.dtype, np.integer):
        raise _corrupt(where, fmt, f"indptr has dtype {pointers.dtype}, not integers")
    if pointers[0] != 0 or np.any(np.diff(pointers) < 0):
        raise _corrupt(where, fmt, "indptr does not start at 0 and increase")
    if not int(pointers[-1]) == n_indices == n_data:
        raise _corrupt(where, fmt, f"indptr ends at {int(pointers[-1])} but there are {n_indices} indices "
                                   f"and {n_data} values")
    step = chunk or max(n_indices, 1)
    for start in range(0, n_indices, step):
        _index_range(np.asarray(indices[start:start + step]), minor, where, fmt, "column index" if fmt == "csr"
                     else "row index")


def unique_genes(var_names: pd.Index, *, raw: bool = False) -> pd.Index:
    """Refuse duplicated gene names (a gene would be scored twice).

    ``raw``: the names are ``adata.raw``'s, which ``adata.var_names_make_unique()`` does not touch, so the message
    gives the fix there.
    """
    if not var_names.is_unique:
        dups = var_names[var_names.duplicated()].unique()
        fix = ("in adata.raw, which is read here: raw = adata.raw.to_adata(); raw.var_names_make_unique(); "
               "adata.raw = raw" if raw else "call adata.var_names_make_unique()")
        raise ValueError(
            f"{len(dups)} gene name(s) are duplicated ({_preview(dups)}); {fix} first (harmonising the names does "
            "not remove their duplicates)"
        )
    return var_names


def unique_cells(adata: AnnData, *, tool: str) -> None:
    """Refuse duplicated cell names where they key random draws (binomial thinning).

    Two cells of one name would get the same draws, so their thinned counts would not be independent.
    """
    if not adata.obs_names.is_unique:
        dups = adata.obs_names[adata.obs_names.duplicated()].unique()
        raise ValueError(
            f"{len(dups)} cell name(s) are duplicated ({_preview(dups)}), as concatenating samples without "
            f"index_unique leaves barcodes: {tool} keys each cell's thinning draws by its name, so cells of one name "
            "would share them; call adata.obs_names_make_unique() first"
        )


def reads_raw(adata: AnnData, layer: str | None, use_raw: bool | None) -> bool:
    """Whether :func:`matrix` reads ``adata.raw`` for these arguments (scanpy's rule: by default when present)."""
    return layer is None and (adata.raw is not None if use_raw is None else bool(use_raw))


def unique_symbols(adata: AnnData, var_names: Iterable[Any], *, raw: bool = False) -> pd.Index:
    """The harmonised symbols of the genes ``var_names`` (:func:`gene_names`), refused where two genes share one.

    Unique var names can still share a symbol: a gene left unmapped keeps its own name, which can be another
    gene's harmonised symbol (mouse data holding ``Apoe`` and a human ``APOE`` transgene). ``raw``: the genes are
    those of ``adata.raw`` (:func:`reads_raw`), where the message says to fix them.
    """
    names = pd.Index(var_names)
    unique_genes(names, raw=raw)
    symbols = gene_names(adata, names)
    if symbols.is_unique:
        return symbols
    shared = symbols[symbols.duplicated()].unique()
    clashes = {s: [str(n) for n in names[symbols == s]] for s in shared[:5]}
    shown = "; ".join(f"{s}: {', '.join(map(repr, genes))}" for s, genes in clashes.items())
    fix = ("in adata.raw, which the tool reads: e.g. raw = adata.raw.to_adata(); adata.raw = "
           "raw[:, ~raw.var_names.isin([...])], or set its adata.raw.var" if raw
           else "e.g. adata = adata[:, ~adata.var_names.isin([...])].copy(), or set its var")
    raise ValueError(
        f"{len(shared)} harmonised gene symbol(s) name more than one gene ({shown}): a gene left unmapped by "
        f"harmonize_genes keeps its own name, which is another gene's symbol here; drop or rename one gene of "
        f"each ({fix}[{Keys.SYMBOL!r}] to the symbol it should be read as)"
    )


def _row_sample(X: Any, n_rows: int, max_rows: int = 2000) -> np.ndarray | sp.spmatrix:
    """A deterministic sample of rows, loaded into memory (works for backed and dask matrices)."""
    if n_rows <= max_rows or hasattr(X, "compute"):  # dask: rows spread over the matrix would load every block
        idx = np.arange(min(n_rows, max_rows))
    else:
        idx = np.sort(np.random.default_rng(0).choice(n_rows, max_rows, replace=False))
    return rows_in_memory(X, idx)


def in_memory(block: Any) -> np.ndarray | sp.spmatrix:
    """A block of rows read from any supported matrix, in memory: a scipy sparse matrix or a numpy array.

    The one place that knows how dask arrays (``compute``), anndata's backed sparse datasets
    (``to_memory``) and ``np.matrix`` are brought into memory; every chunked reader goes through it.
    A CSR/CSC block that stores a value as several entries (duplicates: the same matrix to scipy and anndata)
    comes back summed, on a copy, so that counting stored entries counts cells (sweep 59b: crosstalk read
    expressing shares of 2.0); float16 values come back as float32 (scipy.sparse holds no float16).
    """
    if hasattr(block, "compute"):  # dask
        block = block.compute()
    if hasattr(block, "to_memory"):  # anndata backed sparse dataset
        block = block.to_memory()
    if sp.issparse(block):
        if block.format in ("csr", "csc") and not block.has_canonical_format:
            block = block.copy()
            block.sum_duplicates()
        return block
    block = np.asarray(block)
    return block.astype(np.float32) if block.dtype == np.float16 else block


def sliceable(X: Any) -> Any:
    """``X``, a dask array's blocks made sliceable: scipy sparse blocks other than CSR/CSC (COO) become CSR.

    dask slices blocks to take rows or to rechunk, and a COO matrix cannot be indexed; a block's format is known
    only once it is computed (``map_blocks(sp.coo_matrix)`` has a numpy ``_meta``), so every block is passed
    through the conversion (CSR, CSC and numpy blocks unchanged). Other matrices are returned as they are.
    """
    if not hasattr(X, "map_blocks"):
        return X
    return X.map_blocks(_sliceable_block, dtype=X.dtype, meta=X._meta)


def _sliceable_block(block: Any) -> Any:
    return block.tocsr() if sp.issparse(block) and block.format not in ("csr", "csc") else block


def is_sparse(X: Any) -> bool:
    """Whether a matrix stores sparse values: scipy, anndata's backed CSR/CSC datasets, dask arrays of sparse chunks."""
    from anndata.abc import CSCDataset, CSRDataset

    if sp.issparse(X) or isinstance(X, CSRDataset | CSCDataset):
        return True
    return hasattr(X, "compute") and sp.issparse(getattr(X, "_meta", None))


def backed(X: Any) -> bool:
    """Whether ``X`` is read from its file at each access: anndata's backed CSR/CSC dataset or an h5py dataset.

    The backed dense ``X`` of ``read_h5ad(..., backed="r")`` is an h5py dataset (no ``to_memory``), which reads
    only increasing rows and is loaded whole by ``np.asarray``: such matrices are read in row blocks.
    """
    import h5py
    from anndata.abc import CSCDataset, CSRDataset

    return isinstance(X, CSRDataset | CSCDataset | h5py.Dataset)


def rows_in_memory(X: Any, rows: np.ndarray) -> np.ndarray | sp.spmatrix:
    """``X[rows]`` in memory (:func:`in_memory`), for any supported matrix; ``rows``: integer positions.

    A CSR matrix backed by a file (anndata's backed ``X`` or layer) reads a list of rows one row at a
    time (two reads and Python bookkeeping per row: a cell type's rows of an atlas are scattered).
    Increasing ``rows`` of such a matrix are read instead as runs of consecutive rows, a run taking
    in gaps of up to :data:`_ROW_GAP` unwanted rows (reading them costs less than another read), and
    the wanted rows' values are taken from each run as it is read: the same matrix (values, indices,
    dtype), 2-3x faster on a 200,000-cell file, with one run's values in memory beside the result.
    """
    rows = np.asarray(rows)
    if rows.size and _backed_csr(X) and rows.dtype.kind in "iu" and np.all(np.diff(rows) > 0):
        return in_memory(_backed_csr_rows(X, rows.astype(np.int64)))  # duplicate entries summed, as for every read
    return in_memory(sliceable(X)[rows])


_ROW_GAP = 4


def _backed_csr(X: Any) -> bool:
    from anndata.abc import CSRDataset

    return isinstance(X, CSRDataset)


def _backed_csr_rows(X: Any, rows: np.ndarray) -> sp.csr_matrix:
    """The increasing ``rows`` of a backed CSR dataset, read as runs of consecutive rows (:func:`rows_in_memory`)."""
    group = X.group
    data, indices = group["data"], group["indices"]
    first = int(rows[0])
    indptr = np.asarray(group["indptr"][first:int(rows[-1]) + 2], dtype=np.int64)
    local = rows - first
    lengths = indptr[local + 1] - indptr[local]
    breaks = np.flatnonzero(np.diff(local) > _ROW_GAP + 1) + 1
    values, columns = [], []
    for lo, hi in zip(np.r_[0, breaks], np.r_[breaks, local.size], strict=True):
        run = local[lo:hi]
        start, stop = indptr[run[0]], indptr[run[-1] + 1]
        run_values, run_columns = data[start:stop], indices[start:stop]
        if run.size != run[-1] - run[0] + 1:  # the run took in unwanted rows: keep the wanted rows' values
            n = lengths[lo:hi]
            take = np.repeat(indptr[run] - start - np.r_[0, np.cumsum(n)[:-1]], n) + np.arange(int(n.sum()))
            run_values, run_columns = run_values[take], run_columns[take]
        values.append(run_values)
        columns.append(run_columns)
    return sp.csr_matrix((np.concatenate(values), np.concatenate(columns), np.r_[0, np.cumsum(lengths)]),
                         shape=(rows.size, X.shape[1]))


def row_blocks(X: Any, *, chunk_size: int = Defaults.CHUNK_SIZE) -> Iterator[tuple[int, int, Any]]:
    """``(start, stop, block)`` for consecutive blocks of ``chunk_size`` rows, each block in memory.

    Works for in-memory, backed and dask matrices alike; a backed matrix is never read whole, so the
    memory used is that of one block.
    """
    chunk_size = positive_int(chunk_size, name="chunk_size")
    n_rows, X = X.shape[0], sliceable(X)
    for start in range(0, n_rows, chunk_size):
        stop = min(n_rows, start + chunk_size)
        yield start, stop, in_memory(X[start:stop])


def group_sums(X: Any, codes: np.ndarray, n_groups: int, *, columns: Sequence[int] | None = None,
               chunk_size: int = Defaults.CHUNK_SIZE) -> np.ndarray:
    """Per-group column sums (``n_groups`` x genes, float64) of any matrix, read by :func:`row_blocks`.

    ``codes`` gives each row's group (0..n_groups-1; negative: left out); ``columns`` restricts the
    sums to these column positions. Memory: one block plus the result.
    """
    codes = np.asarray(codes)
    n_cols = X.shape[1] if columns is None else len(columns)
    sums = np.zeros((n_groups, n_cols), dtype=np.float64)
    for start, stop, block in row_blocks(X, chunk_size=chunk_size):
        rows = codes[start:stop]
        keep = np.flatnonzero(rows >= 0)
        member = sp.csr_matrix((np.ones(len(keep)), (rows[keep], keep)), shape=(n_groups, stop - start))
        block = sp.csr_matrix(block, dtype=np.float64)
        if columns is not None:
            block = block[:, list(columns)]
        sums += np.asarray((member @ block).todense())
    return sums


def _values(block: Any) -> np.ndarray:
    if sp.issparse(block):
        return np.asarray(block.data)
    return np.asarray(block).ravel()


_NONFINITE_FIX = "replace them (e.g. np.nan_to_num) or fix the normalisation step that produced them"
NONFINITE_MESSAGE = f"the expression matrix contains NaN or infinite values; {_NONFINITE_FIX}"


def row_of_entry(block: sp.csr_matrix, entry: int) -> int:
    """The row (of ``block``) that holds stored entry ``entry`` of its ``data``."""
    return int(np.searchsorted(block.indptr, entry, side="right")) - 1


def finite_rows(block: sp.csr_matrix, rows: Sequence[int], *, where: str) -> None:
    """Refuse a block of rows read into memory (CSR) that holds NaN or infinite values.

    For the chunked readers, which check every block as they read it (:func:`matrix_kind` reads a sample of rows);
    ``rows``: the matrix's row of each of the block's rows, named in the message with the matrix (``where``).
    """
    finite = np.isfinite(block.data)
    if finite.all():
        return
    first = int(np.argmin(finite))
    row = row_of_entry(block, first)
    raise ValueError(f"{where} contains NaN or infinite values (row {rows[row]} holds {block.data[first]:g}); "
                     f"{_NONFINITE_FIX}")


def numeric_dtype(X: Any) -> None:
    """Refuse a matrix whose values are not numbers (booleans, strings, objects)."""
    if not np.issubdtype(np.dtype(X.dtype), np.number) or np.dtype(X.dtype) == np.bool_:
        raise TypeError(f"the expression matrix has dtype {X.dtype}; expected numbers")


def matrix_kind(X: Any, *, n_rows: int | None = None, check_finite: bool = True) -> MatrixKind:
    """Classify a matrix as integer counts, log-normalised, scaled (negative values) or other.

    Reads a deterministic sample of up to 2000 rows. Raises ValueError on NaN or infinite values.
    """
    n_rows = X.shape[0] if n_rows is None else n_rows
    numeric_dtype(X)
    return _kind(_values(_row_sample(X, n_rows)), check_finite=check_finite)


def kind_of_values(values: np.ndarray) -> MatrixKind:
    """:func:`matrix_kind`'s rule applied to every one of ``values`` (NaN or infinite values are refused)."""
    return _kind(np.asarray(values))


def _kind(values: np.ndarray, *, check_finite: bool = True) -> MatrixKind:
    """The one rule telling counts (non-negative integers) from log-normalised, scaled and other values."""
    if values.size == 0:
        return "counts"
    finite = np.isfinite(values)
    if not np.all(finite):
        if check_finite:
            raise ValueError(NONFINITE_MESSAGE)
        values = values[finite]  # unchecked: the kind of the finite values (a NaN compares as nothing)
        if values.size == 0:
            return "other"
    if values.min() < 0:
        return "scaled"
    if np.all(values == np.round(values)):
        return "counts"
    if values.max() < LOGNORM_MAX:
        return "lognorm"
    return "other"


def counts_hint(layer: str | None) -> str:
    """How to point a tool at raw counts, given the layer it read (``None``: ``.X``)."""
    if layer is None:
        return f"pass layer= naming the layer that holds raw counts (e.g. layer={Keys.COUNTS!r})"
    return (f"layers[{layer!r}] does not hold raw counts: pass layer= naming the layer that does, or put the raw "
            f"integer counts in layers[{layer!r}] (e.g. from adata.raw.X when .raw holds them)")


def all_counts(X: Any, *, what: str = "this tool", layer: str | None = None) -> None:
    """Require integer counts in every stored value of an in-memory matrix (block).

    :func:`counts` classifies a sample of rows; this reads all values, for tools that sum them
    (backed and dask matrices are checked block by block by their readers).
    """
    kind = _kind(_values(in_memory(X)))
    if kind != "counts":
        raise ValueError(
            f"{what} needs raw integer counts but the matrix has negative or non-integer values ({kind}); "
            f"{counts_hint(layer)}"
        )


def counts(X: Any, *, what: str = "this tool", layer: str | None = None) -> None:
    """Require integer counts (``layer``: the layer ``X`` was read from, named in the message)."""
    kind = matrix_kind(X)
    if kind != "counts":
        where = f"layers[{layer!r}]" if layer is not None else "the matrix"
        raise ValueError(f"{what} needs raw integer counts but {where} looks {kind}; {counts_hint(layer)}")


# --------------------------------------------------------------------------------------------------
# Results of earlier tools
# --------------------------------------------------------------------------------------------------
def scores(adata: AnnData, key: str = Keys.SCORES, *, argument: str = "scores_key") -> pd.DataFrame:
    """Return signature scores stored by :func:`hcctme.tl.score` (``argument``: the caller's name for ``key``)."""
    key = key_name(key, name=argument)
    if key not in adata.obsm:
        raise KeyError(
            f"no signature scores in adata.obsm[{key!r}]; run hcctme.tl.score(adata) first (on the command line: "
            f"hcctme score input.h5ad --out scored.h5ad), or pass the key_added it wrote as {argument}="
        )
    frame = adata.obsm[key]
    if not isinstance(frame, pd.DataFrame):
        raise TypeError(
            f"adata.obsm[{key!r}] is a {type(frame).__name__}, not a DataFrame of scores; "
            "re-run hcctme.tl.score"
        )
    repeated = frame.columns[frame.columns.duplicated()].unique()
    if len(repeated):
        raise ValueError(
            f"adata.obsm[{key!r}] names the score column(s) {_preview(list(repeated))} more than once; "
            "drop or rename the repeats (each signature is one column)"
        )
    return frame


def finite_scores(scores: pd.DataFrame, key: str) -> None:
    """Refuse infinite scores (no per-sample mean or z-score can hold them)."""
    infinite = np.isinf(scores.to_numpy(dtype=float))
    if infinite.any():
        bad = list(scores.columns[infinite.any(axis=0)])
        raise ValueError(f"score columns {_preview(bad)} of adata.obsm[{key!r}] hold {int(infinite.sum())} infinite "
                         "value(s), which no per-sample mean can hold; re-run hcctme.tl.score or replace them")


def state_calls(adata: AnnData, key: str = Keys.STATE) -> pd.Series:
    """Return state calls stored by :func:`hcctme.tl.call_states`."""
    if key not in adata.obs.columns:
        raise KeyError(
            f"no state calls in adata.obs[{key!r}]; run hcctme.tl.call_states(adata, cell_type_key=...) "
            "first (or pass the key it wrote)"
        )
    return adata.obs[key]


def spatial(adata: AnnData, key: str = Keys.SPATIAL, *, samples: pd.Series | None = None) -> np.ndarray:
    """Return 2-D spatial coordinates from ``obsm[key]``.

    A third column (z) is dropped only where it is constant within each of ``samples`` (one section per
    sample; all cells without ``samples``): cells of two sections at the same x, y are not neighbours.
    """
    if key_name(key, name="spatial_key") not in adata.obsm:
        raise KeyError(
            f"no spatial coordinates in adata.obsm[{key!r}]; this tool needs spatial data "
            "(squidpy/Visium convention obsm['spatial'], or pass spatial_key=)"
        )
    given = adata.obsm[key]
    dtypes = [] if sp.issparse(given) else list(given.dtypes) if isinstance(given, pd.DataFrame) else [
        np.asarray(given).dtype]
    if not dtypes or not all(pd.api.types.is_numeric_dtype(d) and not pd.api.types.is_bool_dtype(d)
                             and not pd.api.types.is_complex_dtype(d) for d in dtypes):
        kinds = f" of {', '.join(sorted(map(str, set(dtypes))))}" if dtypes else ""
        raise TypeError(f"adata.obsm[{key!r}] must hold numeric coordinates as a dense array (cells x 2 or 3), got "
                        f"{type(given).__name__}{kinds}; convert it (e.g. np.asarray(..., dtype=float)) or pass "
                        "spatial_key= naming the coordinates")
    coords = (given.to_numpy(dtype=float, na_value=np.nan) if isinstance(given, pd.DataFrame)
              else np.asarray(given, dtype=float))  # nullable columns: pd.NA read as NaN, refused below
    if coords.ndim != 2 or not 2 <= coords.shape[1] <= 3:
        raise ValueError(f"adata.obsm[{key!r}] must be cells x 2 (or 3) coordinates, got shape {coords.shape}; "
                         "pass spatial_key= naming the coordinates")
    bad = ~np.isfinite(coords).all(axis=1)
    if bad.any():
        raise ValueError(f"adata.obsm[{key!r}] has NaN or infinite coordinates in {int(bad.sum())} cell(s) "
                         f"({_preview(adata.obs_names[bad])}); drop those cells (adata[mask].copy()) or fill their "
                         "coordinates")
    if coords.shape[1] == 3:
        groups = np.zeros(len(coords)) if samples is None else pd.Series(samples).astype(str).to_numpy()
        z_range = pd.Series(coords[:, 2]).groupby(groups).agg(lambda z: z.max() - z.min())
        if (z_range > 0).any():
            raise ValueError(
                f"adata.obsm[{key!r}] holds 3-D coordinates whose third column (z) varies within "
                f"{'a sample' if samples is not None else 'the data'} ({_preview(z_range.index[z_range > 0])}): "
                "the barrier is measured on 2-D sections; give each section its own sample id (sample_key) or "
                "store x, y only"
            )
    return coords[:, :2]


def var_column(adata: AnnData, key: Any, *, purpose: str = "") -> pd.Series:
    """Return ``adata.var[key]``, raising a KeyError that lists the columns when it is missing."""
    return _column(adata.var, "var", key, purpose)


def gene_names(adata: AnnData, var_names: Iterable[Any] | None = None) -> pd.Index:
    """Gene names a tool should match signatures against.

    When :func:`hcctme.pp.harmonize_genes` has written ``var["hcctme_symbol"]``, the harmonised
    symbol of each gene is returned, falling back to the gene's own name where it was left
    unmapped; otherwise ``var_names`` unchanged. ``var_names`` is the gene index of the matrix the
    tool reads (``adata.var_names`` or ``adata.raw.var_names``, as returned by :func:`matrix`);
    genes of ``.raw`` that are not in ``adata.var`` keep their names unless ``raw.var`` carries
    its own ``hcctme_symbol`` column.
    """
    names = pd.Index(adata.var_names if var_names is None else var_names)
    frames = [adata.var]
    if adata.raw is not None:
        frames.append(adata.raw.var)
    for var in frames:
        if Keys.SYMBOL in var.columns and var.index.equals(names):
            return _with_fallback(var[Keys.SYMBOL], names)
    if Keys.SYMBOL in adata.var.columns:
        mapping = adata.var[Keys.SYMBOL]
        mapping = mapping[~mapping.index.duplicated()]
        looked_up = mapping.reindex(names)
        return _with_fallback(pd.Series(looked_up.to_numpy(), index=names), names)
    return names


def _with_fallback(symbols: pd.Series, names: pd.Index) -> pd.Index:
    values = symbols.astype(object).to_numpy()
    missing = pd.isna(values)
    out = np.where(missing, np.asarray(names, dtype=object), values)
    return pd.Index([str(v) for v in out])


# --------------------------------------------------------------------------------------------------
# Provenance
# --------------------------------------------------------------------------------------------------
def library_version() -> str:
    """Return the version every tool records with its result in ``uns``.

    ``"<hcctme version>+sig.<library version>.<digest>"`` (:attr:`hcctme.sig.library().library_version`),
    which changes with the package or the signatures.
    """
    return _version.library_version()
