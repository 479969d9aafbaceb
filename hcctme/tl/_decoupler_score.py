"""AUCell and ULM through decoupler (``dc.mt.aucell`` / ``dc.mt.ulm``), one block of cells at a time.

Both methods score each cell on its own, so scoring row blocks and stacking the results equals
scoring the whole matrix provided decoupler keeps every gene: ``empty=False`` (with the default
``empty=True`` decoupler drops the genes that are zero in the block, which changes AUCell's
``n_up`` and ULM's regression from block to block). decoupler's ``bsize`` sets how many rows ULM
densifies at once; it is bounded here to about 256 MB of float64.

AUCell ranks each cell's genes with ordinal ranks: tied values (every zero) are ranked by column position.
The genes are handed to decoupler in the order of their names, so the scores do not depend on the data's
gene order (they equal decoupler's on the matrix with its columns sorted by name).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import scipy.sparse as sp
from anndata import AnnData

_DENSE_BUDGET = 2**25  # float64 values densified at once by decoupler's ULM batches (256 MB)


def make_net(ids: list[str], names: pd.Index, up: list[np.ndarray], down: list[np.ndarray],
             weights: list[dict[str, float]], method: str) -> pd.DataFrame:
    """Decoupler net over the genes present in the data.

    AUCell is a set method (membership only): it scores ``genes_up``. ULM uses signed weights
    (+1 up, -1 down, or the signature's weights).
    """
    rows = []
    for sid, pos_up, pos_down, w in zip(ids, up, down, weights, strict=True):
        for p in pos_up:
            rows.append((sid, names[p], float(w.get(names[p], 1.0))))
        if method == "ulm":
            for p in pos_down:
                rows.append((sid, names[p], -abs(float(w.get(names[p], 1.0)))))
    return pd.DataFrame(rows, columns=["source", "target", "weight"])


def batch_size(n_genes: int, chunk_rows: int) -> int:
    """Rows decoupler may densify at once."""
    return int(max(1, min(chunk_rows, _DENSE_BUDGET // max(n_genes, 1))))


def score_block(block, *, method: str, net: pd.DataFrame, ids: list[str], var_names: pd.Index,
                tmin: int, bsize: int, order: np.ndarray | None = None) -> np.ndarray:
    """Scores (float32, cells x ids) of one in-memory block; ``order``: the columns handed to decoupler, in turn."""
    import decoupler as dc

    n_rows = block.shape[0]
    if n_rows == 0:
        return np.zeros((0, len(ids)), dtype=np.float32)
    block = sp.csr_matrix(block) if sp.issparse(block) else np.asarray(block)
    out = np.zeros((n_rows, len(ids)), dtype=np.float32)
    # a cell with one value in every gene (no counts: an empty droplet) has no regression to fit (ULM's t is NaN
    # there and decoupler's p-value correction fails) and nothing to recover (AUCell would rank its ties by column
    # position); it scores 0 (no evidence either way), as UCell scores it
    varies = _varying_rows(block)
    if not varies.any():
        return out
    columns = slice(None) if order is None else order
    tmp = AnnData(X=block[varies][:, columns], obs=pd.DataFrame(index=pd.RangeIndex(int(varies.sum())).astype(str)),
                  var=pd.DataFrame(index=var_names[columns]))
    func = getattr(dc.mt, method)
    func(tmp, net, tmin=tmin, empty=False, bsize=bsize, verbose=False)
    frame = tmp.obsm[f"score_{method}"]
    out[varies] = frame.reindex(columns=ids).to_numpy(dtype=np.float32)
    return out


def _varying_rows(block) -> np.ndarray:
    """Rows whose values are not all equal (a sparse row's min and max count its implicit zeros)."""
    if sp.issparse(block):
        return block.max(axis=1).toarray().ravel() > block.min(axis=1).toarray().ravel()
    return np.max(block, axis=1) > np.min(block, axis=1)  # not np.ptp: it wraps around in a signed integer dtype
