"""Cluster voting of state calls after the per-cell calls (``call_states(refine=...)``).

``"graph"``: leiden on the user's neighbour graph, strict majority (:func:`vote`); ``"leiden"``: leiden on a
kNN graph of the state scores, plurality (:func:`vote_on_scores`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp
from anndata import AnnData

from hcctme._constants import Defaults

GRAPH_KEY = "connectivities"  # obsp key written by scanpy's sc.pp.neighbors
MIN_CELLS = 30  # parent populations with fewer cells keep their per-cell calls
SCORE_NEIGHBORS = 15  # neighbours of the kNN graph of the state scores (refine="leiden")
MIN_SHARE = 0.5  # a sub-cluster votes only when more than this share of its voters agree (a strict majority)


def _require_igraph(refine: str) -> None:
    """An ImportError naming the fix when the igraph package (leiden's backend) is missing."""
    try:
        import igraph  # noqa: F401
    except ImportError as err:  # pragma: no cover - igraph is a dependency of the dev/refine extras
        raise ImportError(f"refine={refine!r} needs the igraph package: pip install igraph") from err


def graph(adata: AnnData, key: str = GRAPH_KEY) -> sp.csr_matrix:
    """The neighbour graph ``adata.obsp[key]`` as a symmetric-shape CSR matrix, checked against ``n_obs``."""
    if key not in adata.obsp:
        raise KeyError(f"refine='graph' needs a neighbour graph in adata.obsp[{key!r}]; run "
                       "sc.pp.neighbors(adata) on the expression PCA first, or use refine='leiden'")
    matrix = adata.obsp[key]
    if matrix.shape != (adata.n_obs, adata.n_obs):
        raise ValueError(f"adata.obsp[{key!r}] has shape {matrix.shape}, not (n_obs, n_obs) = "
                         f"{(adata.n_obs, adata.n_obs)}; recompute it with sc.pp.neighbors(adata)")
    return sp.csr_matrix(matrix)


def majority(labels: np.ndarray, calls: np.ndarray, voters: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each cell's cluster's majority state among the cluster's voters, and the state's share of the voters.

    Only a state with a strict majority (more than :data:`MIN_SHARE` of the cluster's voters)
    is voted; the cells of a cluster without voters, without a strict majority or with an
    ``"unassigned"`` majority keep their own calls (share NaN): the vote never removes a call.
    """
    out = calls.astype(object).copy()
    share = np.full(calls.size, np.nan)
    votes = pd.crosstab(labels[voters], calls[voters])
    if votes.empty:
        return out, share
    frac = votes.div(votes.sum(axis=1), axis=0)
    winner = frac.idxmax(axis=1)
    win_share = frac.max(axis=1)
    agreed = (win_share > MIN_SHARE) & (winner != Defaults.UNASSIGNED)
    has = np.isin(labels, winner.index[agreed].to_numpy())
    out[has] = winner.reindex(labels[has]).to_numpy()
    share[has] = win_share.reindex(labels[has]).to_numpy(dtype=float)
    return out, share


def vote(calls: np.ndarray, confidence: np.ndarray, artefact: np.ndarray, contexts: np.ndarray,
         states: Mapping[str, list[str]], adjacency: sp.csr_matrix, *,
         resolution: float) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
    """Leiden sub-clusters of each parent population on ``adjacency`` and the majority call of each.

    The graph is restricted to the parent's cells; the artefact cells (``artefact != ""``) do not
    vote and stay ``"unassigned"`` (confidence 0). A cell of a sub-cluster with a strict majority
    gets the majority call and, as confidence, the call's share of the sub-cluster's voters; the
    other cells keep their call and confidence. Returns (calls, confidence, per-context
    provenance: sub-clusters, those that voted, and cells whose call changed).
    """
    import scanpy as sc

    _require_igraph("graph")
    calls = np.asarray(calls, dtype=object).copy()
    conf = np.asarray(confidence, dtype=float).copy()
    clean = np.asarray(artefact).astype(str) == ""
    record: dict[str, Any] = {}
    for context in states:
        idx = np.flatnonzero(contexts == context)
        if idx.size < MIN_CELLS:
            continue
        sub = AnnData(obs=pd.DataFrame(index=[str(i) for i in range(idx.size)]))
        sc.tl.leiden(sub, resolution=resolution, adjacency=adjacency[idx][:, idx], flavor="igraph",
                     n_iterations=2, directed=False, random_state=0, key_added="sub")
        labels = sub.obs["sub"].astype(str).to_numpy()
        voted, frac = majority(labels, calls[idx], clean[idx])
        voted = np.where(clean[idx], voted, Defaults.UNASSIGNED)
        record[context] = {"clusters": int(np.unique(labels).size),
                           "voted": int(np.unique(labels[~np.isnan(frac)]).size),
                           "changed": int(np.sum(voted != calls[idx]))}
        conf[idx] = np.where(clean[idx], np.where(np.isnan(frac), conf[idx], frac), 0.0)
        calls[idx] = voted
    return calls, conf, record


def vote_on_scores(calls: np.ndarray, confidence: np.ndarray, artefact: np.ndarray, contexts: np.ndarray,
                   states: Mapping[str, list[str]], z: pd.DataFrame, *,
                   resolution: float) -> tuple[np.ndarray, np.ndarray]:
    """Plurality vote of the calls within leiden sub-clusters of a kNN graph of each parent's state z-scores.

    Every cell of a sub-cluster gets its most frequent call; the confidence is that call's share of
    the sub-cluster (for an ``"unassigned"`` winner, the share of its most voted state). The
    artefact cells (``artefact != ""``) vote but stay ``"unassigned"`` (confidence 0), as in
    :func:`vote`. Returns (calls, confidence).
    """
    import scanpy as sc

    _require_igraph("leiden")
    calls = np.asarray(calls).copy()
    conf = np.asarray(confidence, dtype=float).copy()
    for context, ids in states.items():
        idx = np.flatnonzero(contexts == context)
        if idx.size < MIN_CELLS:
            continue
        rep = z[ids].to_numpy(dtype=float)[idx]
        sub = AnnData(np.ascontiguousarray(rep, dtype=np.float32))
        sc.pp.neighbors(sub, n_neighbors=min(SCORE_NEIGHBORS, idx.size - 1), use_rep="X", random_state=0)
        sc.tl.leiden(sub, resolution=resolution, flavor="igraph", n_iterations=2, directed=False,
                     random_state=0, key_added="sub")
        labels = sub.obs["sub"].astype(str).to_numpy()
        votes = pd.crosstab(labels, calls[idx])
        share = votes.div(votes.sum(axis=1), axis=0)
        winner = share.idxmax(axis=1)
        state_cols = [c for c in share.columns if c != Defaults.UNASSIGNED]
        best_state_share = share[state_cols].max(axis=1) if state_cols else pd.Series(0.0, index=share.index)
        win_share = pd.Series(
            [share.loc[k, w] if w != Defaults.UNASSIGNED else best_state_share[k] for k, w in winner.items()],
            index=winner.index,
        )
        calls[idx] = winner.reindex(labels).to_numpy()
        conf[idx] = win_share.reindex(labels).to_numpy()
    flagged = np.asarray(artefact).astype(str) != ""
    return np.where(flagged, Defaults.UNASSIGNED, calls), np.where(flagged, 0.0, conf)
