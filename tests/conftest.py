"""Shared fixtures: tiny seeded AnnData and an AnnData digest for 'input untouched' checks."""

from __future__ import annotations

import hashlib
import pickle

import matplotlib
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
from anndata import AnnData

matplotlib.use("Agg")


def _hash_matrix(h: hashlib._Hash, X) -> None:
    if X is None:
        h.update(b"none")
    elif sp.issparse(X):
        X = X.tocsr()
        for part in (X.data, X.indices, X.indptr):
            h.update(np.ascontiguousarray(part).tobytes())
        h.update(str(X.shape).encode())
    else:
        h.update(np.ascontiguousarray(np.asarray(X)).tobytes())


def _hash_uns(h: hashlib._Hash, value) -> None:
    if isinstance(value, dict):
        for key in sorted(value):
            h.update(str(key).encode())
            _hash_uns(h, value[key])
    elif isinstance(value, (pd.DataFrame, pd.Series)):
        h.update(pd.util.hash_pandas_object(value, index=True).values.tobytes())
        h.update(str(list(value.columns) if isinstance(value, pd.DataFrame) else [value.name]).encode())
    elif isinstance(value, np.ndarray):
        h.update(np.ascontiguousarray(value).tobytes())
    else:
        h.update(pickle.dumps(value))


def adata_digest(adata: AnnData) -> str:
    """A digest of X, layers, raw, obs, var, obsm and uns: equal digests = AnnData unchanged."""
    h = hashlib.sha256()
    _hash_matrix(h, adata.X)
    for key in sorted(adata.layers):
        h.update(key.encode())
        _hash_matrix(h, adata.layers[key])
    if adata.raw is not None:
        _hash_matrix(h, adata.raw.X)
    for frame in (adata.obs, adata.var):
        h.update(str(list(frame.columns)).encode())
        h.update(pd.util.hash_pandas_object(frame, index=True).values.tobytes())
        h.update(str(frame.dtypes.tolist()).encode())
    for key in sorted(adata.obsm):
        h.update(key.encode())
        value = adata.obsm[key]
        if isinstance(value, pd.DataFrame):
            h.update(pd.util.hash_pandas_object(value, index=True).values.tobytes())
        else:
            _hash_matrix(h, value)
    _hash_uns(h, dict(adata.uns))
    return h.hexdigest()


@pytest.fixture
def no_progress(monkeypatch):
    """hcctme's progress bars off for one test (restored afterwards)."""
    from hcctme import settings  # here, not at the top: matplotlib's backend is set first

    monkeypatch.setattr(settings, "progress", False)


@pytest.fixture
def digest():
    """``digest(adata)`` -> hex digest; compare before/after a failing call."""
    return adata_digest


@pytest.fixture
def tiny_counts() -> AnnData:
    """60 cells x 40 genes of seeded Poisson counts with two patients per response group."""
    rng = np.random.default_rng(0)
    X = rng.poisson(1.0, size=(60, 40)).astype(np.float32)
    obs = pd.DataFrame(
        {
            "patient": np.repeat(["p1", "p2", "p3", "p4"], 15),
            "response": np.repeat(["responder", "responder", "resistor", "resistor"], 15),
            "cell_type": np.tile(["Macrophages", "CD8+ T cells", "Fibroblasts"], 20),
        },
        index=[f"c{i}" for i in range(60)],
    )
    var = pd.DataFrame(index=[f"G{i}" for i in range(40)])
    adata = AnnData(sp.csr_matrix(X), obs=obs, var=var)
    adata.layers["counts"] = adata.X.copy()
    return adata
