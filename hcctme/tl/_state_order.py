"""The order a tool reads a group's cells in (sorted by cell name, not by row) and breaks gene ties in.

Every step of the state calling that draws at random or sums over cells (k-means seeds, calibration
fold splits, cell subsamples, the mixture's fits, leiden) reads a population's cells in this order, so
that the calls of a cell do not depend on where its row sits in the AnnData (release 2.32; before it, 21 of the
demo simulator's 600 cells changed call when the rows were permuted). Genes tied in a ranking are taken by name.
``tl.tib`` reads each sample's cells in this order for its permutations.
"""

from __future__ import annotations

import numpy as np
import pandas as pd


def rank(names: pd.Index) -> np.ndarray:
    """Each name's position among the names sorted (ties, i.e. repeated names, by position): cells or genes."""
    return np.argsort(np.argsort(np.asarray(names, dtype=str), kind="stable"), kind="stable")


def population(contexts: np.ndarray, context: str, order: np.ndarray | None) -> np.ndarray:
    """The rows of ``context``'s cells, in the order of ``order`` (:func:`rank`); by row where it is None."""
    rows = np.flatnonzero(contexts == context)
    return rows if order is None else rows[np.argsort(order[rows], kind="stable")]
