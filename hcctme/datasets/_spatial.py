"""Spatial layout of simulated cohorts: tumour nests and, in resistors, a tumour immune barrier.

Each patient is one tissue frame (coordinates in microns), offset on a grid so that frames never
overlap. A frame holds a few circular tumour nests: tumour cells fill the core, hepatocytes the
rim. All other cells lie in the stroma around the nests. In resistors (``barrier`` > 0) a fraction
``barrier`` of the barrier cells (SPP1+ TAMs, ECM myCAFs) sits in a ring just outside the nests
and the same fraction of CD8+ T cells is kept away from them; elsewhere (responders, null
cohorts) barrier cells are scattered in the stroma and half the CD8+ T cells infiltrate the nests.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import pandas as pd
from scipy.spatial import cKDTree

AREA_PER_CELL = 300.0  # um^2 of tissue per cell
RING_WIDTH = 30.0  # um: barrier ring just outside the nest edge
EXCLUSION_GAP = 40.0  # um beyond the ring where excluded T cells start
INFILTRATION = 0.5  # fraction of CD8+ T cells inside nests without a barrier
FRAME_GAP = 500.0  # um between patient frames


def _edge_distance(xy: np.ndarray, centres: np.ndarray, radii: np.ndarray) -> np.ndarray:
    """Signed distance to the nearest nest edge (negative inside a nest)."""
    d = np.sqrt(((xy[:, None, :] - centres[None, :, :]) ** 2).sum(-1)) - radii[None, :]
    return d.min(axis=1)


def _in_nests(rng, m, centres, radii, r_lo, r_hi):
    """Uniform points in annuli [r_lo R, r_hi R] of the nests (nests chosen by area)."""
    k = rng.choice(len(radii), size=m, p=radii**2 / (radii**2).sum())
    r = radii[k] * np.sqrt(rng.uniform(r_lo**2, r_hi**2, m))
    a = rng.uniform(0, 2 * math.pi, m)
    return centres[k] + np.c_[r * np.cos(a), r * np.sin(a)]


def _ring(rng, m, centres, radii, width):
    """Points in a ring of ``width`` just outside the nests (nests chosen by circumference)."""
    k = rng.choice(len(radii), size=m, p=radii / radii.sum())
    r = radii[k] + rng.uniform(0, width, m)
    a = rng.uniform(0, 2 * math.pi, m)
    return centres[k] + np.c_[r * np.cos(a), r * np.sin(a)]


def _stroma(rng, m, centres, radii, side, d_min):
    """Uniform points of the frame at >= d_min from every nest edge (rejection sampling).

    Should the region be too small to fill by rejection, the rest are the candidates farthest
    from the nests.
    """
    if m == 0:
        return np.empty((0, 2))
    out = np.empty((0, 2))
    for _ in range(20):
        cand = rng.uniform(0, side, (max(4 * (m - len(out)), 64), 2))
        cand = cand[_edge_distance(cand, centres, radii) >= d_min]
        out = np.vstack([out, cand])
        if len(out) >= m:
            return out[:m]
    cand = rng.uniform(0, side, (20 * m, 2))
    far = cand[np.argsort(-_edge_distance(cand, centres, radii))[: m - len(out)]]
    return np.vstack([out, far])


def _nests(rng, n_tumour: int, side_hint: float):
    """Nest centres and radii of one frame, and the frame side."""
    k = int(rng.integers(2, 5))
    area = max(n_tumour, 8) * AREA_PER_CELL * 1.1
    radii = np.sqrt(area * rng.dirichlet(np.full(k, 4.0)) / math.pi)
    radii = np.maximum(radii, 35.0)
    margin = RING_WIDTH + EXCLUSION_GAP
    side = max(side_hint, 2 * (radii.max() + margin) + 60)
    centres = np.empty((0, 2))
    kept = []
    for i in range(k):
        r = radii[i]
        for attempt in range(200):
            c = rng.uniform(r + margin, side - r - margin, 2)
            if all(np.hypot(*(c - centres[j])) > r + radii[kept[j]] + 2 * margin for j in range(len(kept))):
                centres = np.vstack([centres, c])
                kept.append(i)
                break
            if attempt % 50 == 49:
                side *= 1.15
    return centres, radii[kept], side


def layout(
    *,
    patient: np.ndarray,
    cell_type: np.ndarray,
    state: np.ndarray,
    resistor: np.ndarray,
    patients: np.ndarray,
    barrier: float,
    rng: np.random.Generator,
    cell_types: Sequence[str],
    state_ids: Sequence[str],
    barrier_states: Sequence[str],
    excluded_types: Sequence[str],
    tumour_types: Sequence[str],
) -> tuple[np.ndarray, pd.DataFrame, pd.DataFrame]:
    """Coordinates (cells x 2, microns) and the barrier truth tables (per patient, per nest)."""
    n_obs = patient.size
    coords = np.zeros((n_obs, 2))
    tumour_t = cell_types.index(tumour_types[0])
    rim_t = [cell_types.index(t) for t in tumour_types[1:]]
    barrier_s = [state_ids.index(s) for s in barrier_states]
    excluded_t = [cell_types.index(t) for t in excluded_types]
    n_col = math.ceil(math.sqrt(len(patients)))
    frames, nest_rows, rows = [], [], []
    for p, name in enumerate(patients):
        idx = np.flatnonzero(patient == p)
        t, s = cell_type[idx], state[idx]
        is_tumour = t == tumour_t
        is_rim = np.isin(t, rim_t)
        is_barrier = np.isin(s, barrier_s)
        is_excl = np.isin(t, excluded_t)
        n_comp = int(is_tumour.sum() + is_rim.sum())
        side_hint = math.sqrt(idx.size * AREA_PER_CELL * 1.6)
        centres, radii, side = _nests(rng, n_comp, side_hint)
        strength = float(barrier) if resistor[p] else 0.0
        xy = np.zeros((idx.size, 2))
        xy[is_tumour] = _in_nests(rng, int(is_tumour.sum()), centres, radii, 0.0, 0.8)
        xy[is_rim] = _in_nests(rng, int(is_rim.sum()), centres, radii, 0.8, 1.0)
        ring = is_barrier & (rng.random(idx.size) < strength)
        xy[ring] = _ring(rng, int(ring.sum()), centres, radii, RING_WIDTH)
        kept_out = is_excl & (rng.random(idx.size) < strength)
        xy[kept_out] = _stroma(rng, int(kept_out.sum()), centres, radii, side, RING_WIDTH + EXCLUSION_GAP)
        infiltrating = is_excl & ~kept_out & (rng.random(idx.size) < INFILTRATION)
        xy[infiltrating] = _in_nests(rng, int(infiltrating.sum()), centres, radii, 0.0, 1.0)
        rest = ~(is_tumour | is_rim | ring | kept_out | infiltrating)
        xy[rest] = _stroma(rng, int(rest.sum()), centres, radii, side, 0.0)
        xy += rng.normal(0.0, 2.0, xy.shape)  # jitter: cells are not on exact circles
        frames.append(side)
        coords[idx] = xy
        # realised truth
        comp = is_tumour | is_rim
        tree = cKDTree(xy[comp]) if comp.any() else None

        def mean_dist(mask, tree=tree, xy=xy):
            if tree is None or not mask.any():
                return float("nan")
            return float(tree.query(xy[mask])[0].mean())

        d_edge = _edge_distance(xy, centres, radii)
        rows.append({
            "patient": str(name), "barrier": bool(strength > 0), "strength": strength,
            "n_nests": len(radii), "ring_width_um": RING_WIDTH,
            "exclusion_um": RING_WIDTH + EXCLUSION_GAP,
            "n_barrier_cells": int(is_barrier.sum()), "n_barrier_in_ring": int(ring.sum()),
            "barrier_dist_to_tumour_um": mean_dist(is_barrier),
            "cd8_dist_to_tumour_um": mean_dist(is_excl),
            "cd8_in_nests_fraction": float((d_edge[is_excl] < 0).mean()) if is_excl.any() else float("nan"),
        })
        for j, (c, r) in enumerate(zip(centres, radii, strict=True)):
            nest_rows.append({"patient": str(name), "nest": j, "x_um": float(c[0]), "y_um": float(c[1]),
                              "radius_um": float(r)})
    # offset frames on a grid
    pitch = max(frames) + FRAME_GAP
    offsets = np.array([[(p % n_col) * pitch, (p // n_col) * pitch] for p in range(len(patients))])
    coords += offsets[patient]
    table = pd.DataFrame(rows)
    table["x_offset_um"] = offsets[:, 0]
    table["y_offset_um"] = offsets[:, 1]
    table["frame_side_um"] = frames
    nests = pd.DataFrame(nest_rows)
    nests["x_um"] += offsets[nests["patient"].map({n: i for i, n in enumerate(patients)}).to_numpy(), 0]
    nests["y_um"] += offsets[nests["patient"].map({n: i for i, n in enumerate(patients)}).to_numpy(), 1]
    return coords, table, nests
