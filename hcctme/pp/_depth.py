"""Sequencing depth equalised across samples: counts thinned to a common depth, then log-normalised."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp
from anndata import AnnData

from hcctme import _validate
from hcctme._constants import Defaults, Keys, Suffix
from hcctme._logging import logger
from hcctme.pp import _thinning


def row_totals(X: Any, *, chunk_size: int = Defaults.CHUNK_SIZE, not_counts: str | None = None) -> np.ndarray:
    """Sum of every row (counts per cell), read ``chunk_size`` rows at a time (in memory, backed or dask).

    ``not_counts``: the message of the ValueError raised when a value is not a non-negative integer (every
    block is checked, not a sample of rows: the counts are then thinned and would be rounded silently).
    """
    if not_counts is not None:
        _validate.numeric_dtype(X)
    totals = np.zeros(X.shape[0])
    for start, stop, block in _validate.row_blocks(X, chunk_size=chunk_size):
        block = sp.csr_matrix(block)
        bad = None if not_counts is None else (
            ~np.isfinite(block.data) | (block.data < 0) | (block.data != np.round(block.data)))
        if bad is not None and bad.any():  # the row named, NaN and infinite values included
            first = int(np.flatnonzero(bad)[0])
            row = start + _validate.row_of_entry(block, first)
            value = block.data[first]
            what = "" if np.isfinite(value) else ", NaN or infinite values are no counts"
            raise ValueError(f"{not_counts} (row {row} holds {value:g}{what})")
        totals[start:stop] = np.asarray(block.sum(axis=1, dtype=np.float64)).ravel()
    return totals


def kept_fractions(medians: pd.Series) -> tuple[float, pd.Series]:
    """The shallowest sample's median counts per cell, and each sample's fraction thinned to it (at most 1)."""
    target = float(medians.min())
    if target <= 0:
        raise ValueError(f"sample {medians.idxmin()!r} has a median of 0 counts per cell; remove empty cells first")
    return target, (target / medians).clip(upper=1.0)


def equalize_depth(
    adata: AnnData,
    sample_key: str,
    *,
    counts_layer: str = Keys.COUNTS,
    key_added: str = Keys.DEPTH_EQUALIZED,
    random_state: int = Defaults.SEED,
    copy: bool = False,
) -> AnnData | None:
    """Log-normalised expression with the samples' sequencing depth equalised, as a new layer.

    Signature scores are not depth-invariant (UCell ranks, means of log values: a cell read half as deep
    detects fewer genes), so where the conditions were sequenced to different depths a per-sample score
    comparison reads the depth as an effect. This thins every sample's raw counts binomially to the
    shallowest sample's median counts per cell, as :func:`hcctme.tl.crosstalk` does before its test, and
    log1p(CP10k)-normalises them. Score that layer (``tl.score(adata, layer=key_added)``) before
    :func:`hcctme.tl.compare` when :func:`hcctme.tl.compare` warns that the conditions differ in depth.
    Each count's draw is fixed by ``random_state``, its cell's name and its gene's name (no row or gene
    order moves it).

    Parameters
    ----------
    adata
        AnnData in memory with raw counts in ``layers[counts_layer]``.
    sample_key
        obs column of the samples (the units whose depth is equalised).
    counts_layer
        Layer of raw integer counts.
    key_added
        ``layers[key_added]``: the thinned, log1p(CP10k) expression (sparse, float32);
        ``uns[key_added + "_params"]``: tool, params, each sample's median counts per cell before and
        its kept fraction, the target depth, library version.
    random_state
        Seed of the thinning draws.
    copy
        Return a copy of ``adata`` with the layer instead of writing into ``adata``.

    Returns
    -------
    The modified copy when ``copy=True``, else ``None``.
    """
    _validate.anndata(adata, writes=True)
    if adata.isbacked:
        raise ValueError("equalize_depth writes a new expression layer, which a backed AnnData cannot hold; load "
                         "the data first (adata.to_memory())")
    _validate.key_name(sample_key, name="sample_key")
    _validate.key_name(counts_layer, name="counts_layer")
    if counts_layer not in adata.layers:
        raise KeyError(f"adata.layers has no {counts_layer!r}; pass counts_layer= naming the layer of raw counts "
                       f"(layers: {list(adata.layers)})")
    key_added = _validate.key_added(key_added, adata=adata, slots=("layers",), reads=(counts_layer,),
                                    tool="hcctme.pp.equalize_depth")
    random_state = _validate.random_state(random_state)
    copy = _validate.copy_flag(copy, adata=adata, tool="hcctme.pp.equalize_depth", writes="layers and uns")
    samples = _validate.categorical_levels(adata, sample_key, purpose="sample_key").to_numpy()
    _validate.unique_cells(adata, tool="hcctme.pp.equalize_depth")
    _validate.unique_genes(adata.var_names)  # a gene's name keys its draws too
    totals = row_totals(adata.layers[counts_layer], not_counts=f"layers[{counts_layer!r}] does not hold raw integer "
                        "counts; pass counts_layer= naming the layer of raw counts")
    medians = pd.Series(totals).groupby(samples).median()
    target, fractions = kept_fractions(medians)
    thinning = _thinning.Thinning.named(fractions.reindex(samples).to_numpy(dtype=float), adata.obs_names,
                                        adata.var_names, seed=random_state)
    blocks = [_thinning.thinned_lognorm(sp.csr_matrix(block), np.arange(start, stop), thinning)
              for start, stop, block in _validate.row_blocks(adata.layers[counts_layer],
                                                             chunk_size=Defaults.CHUNK_SIZE)]
    layer = sp.vstack(blocks, format="csr").astype(np.float32)
    record: dict[str, Any] = {
        "tool": "hcctme.pp.equalize_depth",
        **_validate.call_record(sample_key=sample_key, counts_layer=counts_layer, random_state=random_state),
        "depth": pd.DataFrame({"sample": medians.index.astype(str), "median_counts": medians.to_numpy(),
                               "fraction": fractions.to_numpy()}),
        "target_counts": target,
        "library_version": _validate.library_version(),
    }
    adata = adata.copy() if copy else adata  # nothing written before this line
    adata.layers[key_added] = layer
    adata.uns[key_added + Suffix.PARAMS] = record
    logger.info("equalize_depth: %d samples thinned to %.0f counts per cell (median) -> layers[%r]",
                len(medians), target, key_added)
    return adata if copy else None
