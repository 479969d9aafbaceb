"""Parameters of the self-training of state calls.

Read by :mod:`hcctme.tl._state_expression` (the components), :mod:`hcctme.tl._state_seeds` (the
clusters and seeds) and :mod:`hcctme.tl._state_selftrain` (the classifier and its calibration).
"""

from __future__ import annotations

from dataclasses import dataclass

from hcctme._constants import (
    STATE_CALIBRATION_FOLDS,
    STATE_CALIBRATION_REPEATS,
    STATE_CARRY_AUROC,
    STATE_CARRY_GENES,
    STATE_CARRY_MIN_GENES,
    STATE_CLUSTER_CELLS,
    STATE_CLUSTER_MAJORITY,
    STATE_CLUSTER_SCATTERED_CALLED,
    STATE_CLUSTER_SEED_SHARE,
    STATE_CLUSTER_SEED_Z,
    STATE_CLUSTER_STRONG_Z,
    STATE_CLUSTER_SUPPORT,
    STATE_CLUSTER_UNCALLED_LEAD,
    STATE_NONE_SEED_Z,
    STATE_SEED_CONFIDENCE,
    STATE_SEEDING_AGREEMENT,
    STATE_SEEDING_BATCHES,
    STATE_SEEDINGS,
    STATE_SELFTRAIN_C,
    STATE_SELFTRAIN_GRAM_CELLS,
    STATE_SELFTRAIN_HVGS,
    STATE_SELFTRAIN_MAX_CLUSTERS,
    STATE_SELFTRAIN_MIN_CELLS,
    STATE_SELFTRAIN_MIN_SEEDS,
    STATE_SELFTRAIN_MIN_STATE_SEEDS,
    STATE_SELFTRAIN_PCS,
    STATE_SELFTRAIN_ROUNDS,
    STATE_SMALL_CLUSTER_CELLS,
    STATE_SMALL_SEEDINGS,
    STATE_SMOOTH_NEIGHBORS,
    STATE_SMOOTH_POOL,
    STATE_SMOOTHING,
)


@dataclass(frozen=True)
class SelfTrainParams:
    """Parameters of the self-training step (see the module docstring)."""

    rounds: int = STATE_SELFTRAIN_ROUNDS
    seed_confidence: float = STATE_SEED_CONFIDENCE
    none_seed_z: float = STATE_NONE_SEED_Z
    c: float = STATE_SELFTRAIN_C
    n_pcs: int = STATE_SELFTRAIN_PCS
    gram_cells: int = STATE_SELFTRAIN_GRAM_CELLS
    n_hvgs: int = STATE_SELFTRAIN_HVGS
    min_cells: int = STATE_SELFTRAIN_MIN_CELLS
    min_seeds: int = STATE_SELFTRAIN_MIN_SEEDS
    min_state_seeds: int = STATE_SELFTRAIN_MIN_STATE_SEEDS
    max_clusters: int = STATE_SELFTRAIN_MAX_CLUSTERS
    cluster_cells: int = STATE_CLUSTER_CELLS
    small_cluster_cells: tuple[int, ...] = STATE_SMALL_CLUSTER_CELLS
    small_seedings: int = STATE_SMALL_SEEDINGS
    seedings: int = STATE_SEEDINGS
    seeding_batches: int = STATE_SEEDING_BATCHES
    seeding_agreement: float = STATE_SEEDING_AGREEMENT
    cluster_z: float = STATE_CLUSTER_SEED_Z
    cluster_share: float = STATE_CLUSTER_SEED_SHARE
    cluster_support: float = STATE_CLUSTER_SUPPORT
    cluster_strong_z: float = STATE_CLUSTER_STRONG_Z
    cluster_majority: float = STATE_CLUSTER_MAJORITY
    cluster_uncalled_lead: float = STATE_CLUSTER_UNCALLED_LEAD
    cluster_scattered_called: float = STATE_CLUSTER_SCATTERED_CALLED
    n_neighbors: int = STATE_SMOOTH_NEIGHBORS
    smoothing: float = STATE_SMOOTHING
    neighbour_pool: int = STATE_SMOOTH_POOL
    folds: int = STATE_CALIBRATION_FOLDS
    repeats: int = STATE_CALIBRATION_REPEATS
    carry_genes: int = STATE_CARRY_GENES
    carry_min_genes: int = STATE_CARRY_MIN_GENES
    carry_auroc: float = STATE_CARRY_AUROC
    random_state: int = 0

    def to_dict(self) -> dict[str, float | int | list[int]]:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in self.__dict__.items()}
