"""Dask helpers shared by the chunked tools: row blocks, tree reductions, the active scheduler.

A dask array is computed by whatever scheduler is active when the tool is called: the
``dask.distributed`` client in scope (``with Client(cluster): ...`` or the last client created), or
dask's local threads otherwise. ``distributed`` is imported here only when it is installed and only
to name that client in the log, never at import time of hcctme.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from hcctme import _validate
from hcctme._logging import logger


def is_dask(X: Any) -> bool:
    """Whether ``X`` is a dask collection (a dask array, possibly of sparse chunks)."""
    return type(X).__module__.split(".")[0] == "dask"


def row_blocks(X: Any, chunk_size: int | None) -> Any:
    """``X`` rechunked so that every block holds whole rows, ``chunk_size`` rows each when given.

    Without ``chunk_size`` the array's own row chunks are kept (a file read lazily keeps its reads). Blocks of
    scipy sparse formats dask cannot slice (COO) are read as CSR (:func:`hcctme._validate.sliceable`), so the
    results do not depend on ``chunk_size``.
    """
    X = _validate.sliceable(X)
    if len(X.chunks[1]) > 1:
        X = X.rechunk({1: -1})
    if chunk_size is not None:
        X = X.rechunk({0: chunk_size})
    return X


def scheduler() -> str:
    """A short description of where dask computations run now, for the log."""
    try:
        from distributed import default_client
    except ImportError:  # dask[distributed] not installed: dask's local scheduler
        return "dask's local scheduler"
    try:
        client = default_client()
    except ValueError:  # no client in scope
        return "dask's local scheduler"
    return f"the dask.distributed cluster at {client.scheduler.address}"


def tree_reduce(parts: Sequence[Any], combine: Callable[[Any, Any], Any]) -> Any:
    """Pairwise reduction of (at least one) delayed ``parts`` with ``combine``, ``log2(len(parts))`` deep.

    Each task combines two partial results, so no task holds more than two of them.
    """
    from dask import delayed

    level = list(parts)
    add = delayed(combine, pure=True)
    while len(level) > 1:
        paired = [add(level[i], level[i + 1]) for i in range(0, len(level) - 1, 2)]
        if len(level) % 2:
            paired.append(level[-1])
        level = paired
    return level[0]


def log_compute(tool: str, n_blocks: int) -> None:
    """Say where a dask computation of ``n_blocks`` row blocks is about to run."""
    logger.info("%s: %d row block(s) computed by %s", tool, n_blocks, scheduler())
