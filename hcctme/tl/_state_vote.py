"""Cluster voting of state calls after the per-cell calls (``call_states(refine=...)``).

Both methods sub-cluster each parent population with leiden and let a sub-cluster's strict majority
state win (:func:`vote`); they differ in the graph: ``"graph"`` reads the user's neighbour graph
(:func:`user_graph`), ``"leiden"`` a kNN graph of the parent's state z-scores (:func:`score_graph`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp
from anndata import AnnData

from hcctme._constants import Defaults
from hcctme.tl import _state_order as _order

GRAPH_KEY = "connectivities"  # obsp key written by scanpy's sc.pp.neighbors
MIN_CELLS = 30  # parent populations with fewer cells keep their per-cell calls
SCORE_NEIGHBORS = 15  # neighbours of the kNN graph of the state scores (refine="leiden")
MIN_SHARE = 0.5  # a sub-cluster votes only when more than this share of its voters agree (a strict majority)

# the graph among a parent population's cells (given: its context and the cells' row indices)
GraphOf = Callable[[str, np.ndarray], sp.spmatrix]
# what each refine method sub-clusters (recorded in the provenance)
GRAPHS = {"graph": f"obsp[{GRAPH_KEY!r}]", "leiden": f"kNN graph ({SCORE_NEIGHBORS} neighbours) of the state z-scores"}


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


def user_graph(adjacency: sp.csr_matrix) -> GraphOf:
    """The user's neighbour graph restricted to a parent population's cells."""
    return lambda context, idx: adjacency[idx][:, idx]


def score_graph(z: pd.DataFrame, states: Mapping[str, list[str]]) -> GraphOf:
    """A kNN graph (scanpy, :data:`SCORE_NEIGHBORS`) of a parent population's standardised state scores."""
    import scanpy as sc

    def build(context: str, idx: np.ndarray) -> sp.spmatrix:
        rep = np.ascontiguousarray(z[states[context]].to_numpy(dtype=float)[idx], dtype=np.float32)
        sub = AnnData(rep)
        sc.pp.neighbors(sub, n_neighbors=min(SCORE_NEIGHBORS, idx.size - 1), use_rep="X", random_state=0)
        return sub.obsp["connectivities"]

    return build


def graph_for(refine: str, adjacency: sp.csr_matrix | None, z: pd.DataFrame,
              states: Mapping[str, list[str]]) -> GraphOf:
    """The graph a ``refine`` method votes on: the user's (``"graph"``) or the state scores' (``"leiden"``)."""
    return user_graph(adjacency) if refine == "graph" else score_graph(z, states)


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
         states: Mapping[str, list[str]], graph_of: GraphOf, *, resolution: float,
         refine: str, order: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
    """Leiden sub-clusters of each parent population on ``graph_of`` and the majority call of each.

    The artefact cells (``artefact != ""``) do not vote and stay ``"unassigned"`` (confidence 0).
    A cell of a sub-cluster with a strict majority gets the majority call and, as confidence, the
    call's share of the sub-cluster's voters; the other cells keep their call and confidence.
    ``refine`` names the method in the error raised without igraph. Returns (calls, confidence,
    per-context provenance: sub-clusters, those that voted, and cells whose call changed). ``order``: each cell's
    rank in the order a population's cells are clustered in (:func:`hcctme.tl._state_order.rank`; None: by row).
    """
    import scanpy as sc

    _require_igraph(refine)
    calls = np.asarray(calls, dtype=object).copy()
    conf = np.asarray(confidence, dtype=float).copy()
    clean = np.asarray(artefact).astype(str) == ""
    record: dict[str, Any] = {}
    for context in states:
        idx = _order.population(contexts, context, order)
        if idx.size < MIN_CELLS:
            continue
        sub = AnnData(obs=pd.DataFrame(index=[str(i) for i in range(idx.size)]))
        sc.tl.leiden(sub, resolution=resolution, adjacency=graph_of(context, idx), flavor="igraph",
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
