"""Pseudobulk profiles: one expression profile per sample (x group), via decoupler."""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Literal

import numpy as np
import pandas as pd
import scipy.sparse as sp
from anndata import AnnData

from hcctme import _validate
from hcctme._constants import Defaults, Keys, Suffix
from hcctme._logging import logger
from hcctme.tl import _dask

MODES = ("sum", "mean", "median")


def pseudobulk(
    adata: AnnData,
    *,
    sample_key: str,
    groupby: str | None = None,
    layer: str | None = Keys.COUNTS,
    mode: Literal["sum", "mean", "median"] = "sum",
    min_cells: int = Defaults.MIN_CELLS,
    chunk_size: int | None = None,
) -> AnnData:
    """Aggregate cells into one profile per sample (or per sample x group).

    The sample (patient, or patient x timepoint) is the unit of replication in every patient-level
    comparison; this is the count matrix PyDESeq2 (or edgeR/limma) should see. Aggregation is done by
    :func:`decoupler.pp.pseudobulk`.

    Parameters
    ----------
    adata
        Cells x genes. The matrix may be in memory, backed (``read_h5ad(..., backed="r")``) or a dask
        array (of numpy or scipy sparse chunks, e.g. read lazily with
        :func:`anndata.experimental.read_elem_lazy`): its row blocks are then summed as dask tasks, on
        the ``dask.distributed`` cluster when a client is active, and the partial sums added pairwise.
    sample_key
        obs column naming the sample of each cell.
    groupby
        Optional obs column (cell type, state): one profile per sample and level.
    layer
        Layer holding the matrix to aggregate; ``None`` uses ``.X``. ``mode="sum"`` requires raw
        integer counts (the default layer ``"counts"``).
    mode
        ``"sum"`` (counts, for differential expression), ``"mean"`` or ``"median"``.
    min_cells
        Profiles made of fewer cells are dropped; they are logged and listed in
        ``uns["hcctme_pseudobulk_params"]["dropped"]``. Empty sample x group combinations are not profiles.
    chunk_size
        Backed (``read_h5ad(..., backed="r")``, ``layer=None``) or dask matrices are summed this many
        cells at a time, in bounded memory (``mode="sum"`` or ``"mean"``; the values equal the
        in-memory result). Default: ``Defaults.CHUNK_SIZE`` (10,000) for backed matrices and the
        array's own row chunks for dask arrays.

    Returns
    -------
    AnnData with one obs per profile (named ``"<sample>"`` or ``"<sample>_<group>"``) and the same
    genes. ``obs`` holds the sample (and group) column, every obs column that is constant within each
    profile (condition, patient metadata, ...; with the cells' dtypes, so a numeric covariate stays numeric),
    ``obs["n_cells"]`` and decoupler's ``psbulk_cells`` / ``psbulk_counts``; ``layers["psbulk_props"]`` is the
    fraction of cells expressing each gene. In sum mode the counts are also in ``layers["counts"]``, so the result
    can be passed on to :func:`hcctme.tl.compare` (``features="genes"``, ``sample_key=None``; with the same
    ``groupby`` when the profiles are per sample and group). ``uns["hcctme_pseudobulk_params"]``
    records the tool, its parameters, the library version and the dropped profiles (read it with
    ``hcctme.get.params(pdata, "hcctme_pseudobulk")``).

    Raises
    ------
    KeyError
        Missing obs column or layer.
    ValueError
        Non-count input with ``mode="sum"``, or non-finite values.
    TooFewCellsError
        A ``ValueError``: no profile with ``min_cells`` cells.
    """
    pdata, _ = _pseudobulk(adata, sample_key=sample_key, groupby=groupby, layer=layer, mode=mode,
                           min_cells=min_cells, chunk_size=chunk_size)
    info = pdata.uns[Keys.PSEUDOBULK + Suffix.PARAMS]
    logger.info(
        "pseudobulk: %d profiles (%s%s, %s of %s) from %d cells; %d dropped with < %d cells",
        pdata.n_obs, sample_key, f" x {groupby}" if groupby else "", mode, layer or "X", adata.n_obs,
        len(info["dropped"]), min_cells,
    )
    return pdata


def _pseudobulk(
    adata: AnnData,
    *,
    sample_key: str,
    groupby: str | None,
    layer: str | None,
    mode: str,
    min_cells: int,
    chunk_size: int | None = None,
) -> tuple[AnnData, pd.DataFrame]:
    """Validated pseudobulk; returns the profiles and the table of dropped ones."""
    _validate.anndata(adata)
    _validate.choice(mode, MODES, name="mode")
    min_cells = _validate.positive_int(min_cells, name="min_cells")
    chunk_size = _validate.positive_int(chunk_size, name="chunk_size", allow_none=True)
    samples = _validate.obs_column(adata, sample_key, purpose="sample of each cell").astype(str)
    groups = None
    if groupby is not None:
        if groupby == sample_key:
            raise ValueError(f"groupby and sample_key are both {groupby!r}; give groupby=None or another column")
        groups = _validate.obs_column(adata, groupby, purpose="groups to pseudobulk").astype(str)
        _check_profile_names(samples, groups)
    X, var_names = _validate.matrix(adata, layer=layer, use_raw=False)
    _validate.unique_genes(var_names)
    kind = _validate.matrix_kind(X)  # a dask matrix: its first rows only; every block is checked as it is summed
    if mode == "sum" and kind != "counts":
        raise ValueError(
            f"pseudobulk mode='sum' needs raw integer counts but {'layer ' + repr(layer) if layer else '.X'} "
            f"looks {kind}; {_validate.counts_hint(layer)}, or use mode='mean' for normalised data"
        )
    out_of_core = _validate.backed(X) or _dask.is_dask(X)  # backed X or layer, or a dask array
    if mode == "sum" and not out_of_core:  # backed/dask: every block is checked as it is summed
        _validate.all_counts(X, what="pseudobulk mode='sum'", layer=layer)

    import decoupler as dc

    obs = adata.obs.copy()
    obs[sample_key] = samples.to_numpy()
    if groupby is not None:
        obs[groupby] = groups.to_numpy()
    obs.index = obs.index.astype(str)
    if not obs.index.is_unique:
        obs.index = pd.RangeIndex(len(obs)).astype(str)
    if out_of_core and mode == "median":
        raise ValueError(
            "mode='median' needs every cell of a profile in memory, but the matrix is backed or a dask array; "
            "use mode='sum' or 'mean' (computed chunk by chunk), or load the data with adata.to_memory()"
        )
    if out_of_core:
        # decoupler lays out the profiles and their metadata from one obs row per profile (and a
        # placeholder matrix); the expression is then summed chunk by chunk in bounded memory
        layout = _profile_rows(obs, sample_key, groupby)
        shallow = AnnData(X=sp.csr_matrix((len(layout), 1), dtype=np.float32), obs=layout,
                          var=pd.DataFrame(index=["_placeholder"]))
    else:
        shallow = AnnData(X=X, obs=obs, var=pd.DataFrame(index=pd.Index(var_names).astype(str)))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        pdata = dc.pp.pseudobulk(shallow, sample_col=sample_key, groups_col=groupby, layer=None,
                                 mode="sum" if out_of_core else mode, skip_checks=out_of_core or mode != "sum")
    if out_of_core:
        pdata = _chunked_profiles(pdata, X, obs, var_names, sample_key=sample_key, groupby=groupby, mode=mode,
                                  chunk_size=chunk_size, layer=layer)
    n_cells = pdata.obs["psbulk_cells"].to_numpy().astype(int)
    pdata.obs[Keys.N_CELLS] = n_cells
    small = (n_cells > 0) & (n_cells < min_cells)
    dropped_cols = [sample_key] + ([groupby] if groupby else [])
    dropped = pdata.obs.loc[small, dropped_cols].astype(str).assign(n_cells=n_cells[small])
    dropped = dropped.reset_index(drop=True)
    keep = n_cells >= min_cells
    if not keep.any():
        raise _validate.TooFewCellsError(
            f"too few cells: no {'sample x ' + groupby if groupby else 'sample'} profile has >= "
            f"min_cells={min_cells} cells (largest: {int(n_cells.max())}); lower min_cells or check "
            f"{sample_key!r}" + (f" / {groupby!r}" if groupby else "")
        )
    pdata = pdata[keep].copy()
    if len(dropped):
        logger.warning(
            "pseudobulk: %d profile(s) with fewer than %d cells dropped: %s", len(dropped), min_cells,
            ", ".join(f"{'/'.join(map(str, r[:-1]))} ({r[-1]})" for r in dropped.itertuples(index=False))[:500],
        )
    if mode == "sum":
        pdata.X = np.asarray(pdata.X)
        pdata.layers[Keys.COUNTS] = pdata.X.copy()
    for col in (sample_key, groupby):
        if col is not None:
            pdata.obs[col] = pdata.obs[col].astype(str).astype("category")
    _restore_dtypes(pdata.obs, adata.obs, skip=(sample_key, groupby))
    var = adata.var.copy()
    var.index = pdata.var_names
    pdata.var = var
    pdata.uns[Keys.PSEUDOBULK + Suffix.PARAMS] = {
        "tool": "hcctme.tl.pseudobulk",
        **_validate.call_record(sample_key=sample_key, groupby=groupby, layer=layer, mode=mode, min_cells=min_cells,
                                chunk_size=chunk_size),
        "library_version": _validate.library_version(),
        "dropped": dropped,
    }
    return pdata, dropped


def _restore_dtypes(profiles: pd.DataFrame, cells: pd.DataFrame, *, skip: tuple[str | None, ...]) -> None:
    """Give the carried obs columns their cells' dtypes back (decoupler makes every carried column categorical).

    A numeric covariate (age) that came back categorical would be fitted as one dummy per value downstream.
    """
    for col in profiles.columns.intersection(cells.columns):
        dtype = cells[col].dtype
        # pandas reads two unordered categoricals of the same levels in any order as equal dtypes: compare the order
        same = profiles[col].dtype == dtype and (not isinstance(dtype, pd.CategoricalDtype) or list(
            profiles[col].cat.categories) == list(dtype.categories))
        if col in skip or same:
            continue
        values = pd.Series(profiles[col].astype(object).to_numpy(), index=profiles.index, dtype=object)
        # a categorical keeps its own categories and order (decoupler's hold only the levels present, sorted)
        profiles[col] = pd.Categorical(values, dtype=dtype) if isinstance(dtype, pd.CategoricalDtype) \
            else values.astype(dtype)


def _check_profile_names(samples: pd.Series, groups: pd.Series) -> None:
    """Refuse (sample, group) pairs that decoupler would give one profile name, ``sample + "_" + group``.

    The message names the labels, not the columns: :func:`hcctme.tl.compare` pseudobulks under internal names.
    """
    pairs = pd.DataFrame({"sample": samples.to_numpy(), "group": groups.to_numpy()}).drop_duplicates()
    names = pairs["sample"] + "_" + pairs["group"]
    clash = pairs[names.duplicated(keep=False).to_numpy()]
    if len(clash):
        shown = "; ".join(f"{s!r} + {g!r}" for s, g in clash.head(6).itertuples(index=False))
        raise ValueError(
            f"sample and group labels join with '_' into the same profile name for different pairs ({shown}); "
            "rename the labels so that they join unambiguously (no '_' in the sample labels is enough)"
        )


def _profile_rows(obs: pd.DataFrame, sample_key: str, groupby: str | None) -> pd.DataFrame:
    """The first cell of each profile, with the obs columns constant within every profile.

    decoupler keeps exactly these columns (``nunique(dropna=False) == 1`` within each profile) and
    orders profiles by first appearance (no groupby) or sorted, so its layout of these rows equals
    its layout of all the cells.
    """
    by = [sample_key] + ([groupby] if groupby else [])
    constant = obs.groupby(by, observed=True).nunique(dropna=False).eq(1).all(axis=0)
    return obs[by + list(constant.index[constant])].drop_duplicates(subset=by)


def _chunked_profiles(pdata: AnnData, X, obs: pd.DataFrame, var_names: pd.Index, *, sample_key: str,
                      groupby: str | None, mode: str, chunk_size: int | None, layer: str | None) -> AnnData:
    """Profiles of a backed or dask matrix, summed one block of rows at a time.

    ``pdata`` is decoupler's layout of the profiles (obs metadata); their expression, ``psbulk_cells``,
    ``psbulk_counts`` and ``psbulk_props`` are filled in as decoupler computes them in memory.
    """
    cols = [sample_key] + ([groupby] if groupby else [])
    profiles = pd.MultiIndex.from_frame(pdata.obs[cols].astype(str))
    codes = profiles.get_indexer(pd.MultiIndex.from_frame(obs[cols].astype(str)))
    n_cells = np.bincount(codes, minlength=pdata.n_obs).astype(float)
    check = _BlockCheck(mode=mode, layer=layer)
    if _dask.is_dask(X):
        sums, expressed = _dask_sums(X, codes, pdata.n_obs, check=check, chunk_size=chunk_size)
    else:
        sums, expressed = _backed_sums(X, codes, pdata.n_obs, check=check,
                                       chunk_size=chunk_size or Defaults.CHUNK_SIZE)
    counts = sums.sum(axis=1)
    empty = (n_cells == 0) | (counts == 0)  # decoupler leaves these profiles at zero
    denominator = np.where(empty, 1.0, n_cells)[:, None]
    values = sums / denominator if mode == "mean" else sums
    values[empty] = 0.0
    props = expressed / denominator
    props[empty] = 0.0
    obs_out = pdata.obs.copy()
    obs_out["psbulk_cells"] = n_cells
    obs_out["psbulk_counts"] = counts
    return AnnData(X=values, obs=obs_out, var=pd.DataFrame(index=pd.Index(var_names).astype(str)),
                   layers={"psbulk_props": props})


@dataclass(frozen=True)
class _BlockCheck:
    """What every block of rows must hold: raw counts (``mode="sum"``) or finite values."""

    mode: str
    layer: str | None

    def __call__(self, block: sp.csr_matrix) -> None:
        if self.mode == "sum":
            _validate.all_counts(block, what="pseudobulk mode='sum'", layer=self.layer)
        elif not np.all(np.isfinite(block.data)):
            raise ValueError(_validate.NONFINITE_MESSAGE)


def _block_sums(block, codes: np.ndarray, n_profiles: int, check: _BlockCheck) -> tuple[np.ndarray, np.ndarray]:
    """Per-profile sums and expressing-cell counts (profiles x genes, float64) of one block of rows.

    ``codes[i]`` is the profile of the block's row ``i``. Runs in the caller or in a dask worker.
    """
    block = sp.csr_matrix(_validate.in_memory(block))
    check(block)
    n_rows = block.shape[0]
    member = sp.csr_matrix((np.ones(n_rows), (codes, np.arange(n_rows))), shape=(n_profiles, n_rows))
    sums = np.asarray((member @ block).todense(), dtype=np.float64)
    expressed = np.asarray((member @ (block != 0).astype(np.float64)).todense())
    return sums, expressed


def _add_sums(a: tuple[np.ndarray, np.ndarray], b: tuple[np.ndarray, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    return a[0] + b[0], a[1] + b[1]


def _backed_sums(X, codes: np.ndarray, n_profiles: int, *, check: _BlockCheck,
                 chunk_size: int) -> tuple[np.ndarray, np.ndarray]:
    """Sums of a backed matrix, read ``chunk_size`` rows at a time in this process."""
    from tqdm import tqdm

    from hcctme._settings import settings

    n_rows, n_genes = X.shape
    sums = np.zeros((n_profiles, n_genes))
    expressed = np.zeros((n_profiles, n_genes))
    with tqdm(total=n_rows, unit="cells", desc="hcctme.tl.pseudobulk", leave=False,
              disable=not settings.progress or n_rows <= chunk_size) as bar:
        for start in range(0, n_rows, chunk_size):
            stop = min(n_rows, start + chunk_size)
            block_sums, block_expressed = _block_sums(X[start:stop], codes[start:stop], n_profiles, check)
            sums += block_sums
            expressed += block_expressed
            bar.update(stop - start)
    return sums, expressed


def _dask_sums(X, codes: np.ndarray, n_profiles: int, *, check: _BlockCheck,
               chunk_size: int | None) -> tuple[np.ndarray, np.ndarray]:
    """Sums of a dask matrix: one task per block of rows, the partial sums added pairwise.

    Runs on the active scheduler (a ``dask.distributed`` cluster when a client is in scope); only the
    profiles x genes partial sums travel back, never the rows.
    """
    import dask
    from dask import delayed

    Xd = _dask.row_blocks(X, chunk_size)
    bounds = np.concatenate([[0], np.cumsum(Xd.chunks[0])]).astype(int)
    blocks = Xd.to_delayed().ravel()
    task = delayed(_block_sums, pure=True)
    parts = [task(block, codes[start:stop], n_profiles, check)
             for block, start, stop in zip(blocks, bounds[:-1], bounds[1:], strict=True)]
    _dask.log_compute("hcctme.tl.pseudobulk", len(parts))
    (sums, expressed), = dask.compute(_dask.tree_reduce(parts, _add_sums))
    return sums, expressed
