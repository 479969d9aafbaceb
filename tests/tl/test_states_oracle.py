"""The supervised ceilings of benchmarks/states_oracle.py are honest: cross-validated, and able to separate.

A ceiling from a reader that predicts cells it was fitted on would look high on any labels; these tests
check that the readers find classes that are there and no more than chance where there are none. README's table
of them is the recorded run's (benchmarks/results/states_oracle_2.27).
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
from sklearn.metrics import adjusted_rand_score
from threadpoolctl import threadpool_limits

from benchmarks.states_oracle import readers

RECORDED = Path(__file__).resolve().parents[2] / "benchmarks" / "results" / "states_oracle_2.27"
PARENTS = {"CD8+ T cells": "CD8 T", "CD4+ T cells": "CD4 T", "Macrophages": "macrophages", "Neutrophils": "neutrophils",
           "CAFs": "CAFs", "Endothelial cells": "endothelial"}
SETTINGS = {"10x": "10x", "noisy_10x": "noisy shallow 10x", "smartseq": "Smart-seq",
            "stress_high": "high stress (25 %)"}


@pytest.fixture(autouse=True)
def _one_thread():
    # the tree ensemble's OpenMP threads beside the other pytest worker oversubscribe the cores
    with threadpool_limits(limits=1):
        yield


def _cells(n: int = 240, n_features: int = 6, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Three classes apart in the first two features (the rest noise)."""
    rng = np.random.default_rng(seed)
    classes = np.repeat(np.array(["a", "b", "c"], dtype=object), n // 3)
    centres = {"a": (0.0, 0.0), "b": (6.0, 0.0), "c": (0.0, 6.0)}
    features = rng.normal(size=(classes.size, n_features))
    features[:, :2] += np.array([centres[c] for c in classes])
    return features, classes


def test_readers_find_classes_that_are_there():
    features, classes = _cells()
    for name, predicted in readers(features, features[:, :2], classes).items():
        assert adjusted_rand_score(classes, predicted) > 0.9, name


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_readers_do_not_learn_labels_without_structure(seed):
    # labels drawn independently of 60 features: readers that predicted the cells they were fitted on would fit
    # them (ARI 0.13-0.21 for the smoothed logistic regression, 1.0 for the trees)
    features, _ = _cells(n_features=60, seed=seed)
    labels = np.random.default_rng(seed + 10).choice(np.array(["a", "b", "c"], dtype=object), size=features.shape[0])
    for name, predicted in readers(features, features[:, :2], labels).items():
        assert abs(adjusted_rand_score(labels, predicted)) < 0.05, name



def recorded_means(text: str) -> dict[tuple[str, str], str]:
    """(setting, parent) -> "caller / ceiling / informed" from a states_oracle.py output's all-cells summary."""
    block = text.split("per-parent ARI over the all cells")[1].splitlines()
    settings = block[2].split()[1:]  # "setting" then the settings, once per reader
    out = {}
    n = len(settings) // 3
    for line in block[4:]:
        parent, *values = re.split(r"\s{2,}", line.strip())  # the parents' names hold single spaces
        if len(values) != len(settings):
            continue
        for j, setting in enumerate(settings[:n]):
            out[setting, parent] = " / ".join(values[j + k * n] for k in range(3))
    return out


def test_readme_ceilings_table_is_the_recorded_run():
    """README's supervised-ceilings table is release 2.27's recorded run (seeds 100-101)."""
    means = recorded_means((RECORDED / "development_seeds_100_101.txt").read_text())
    assert len(means) == 24
    readme = (RECORDED.parents[2] / "README.md").read_text()
    for setting, label in SETTINGS.items():
        row = "| " + label + " | " + " | ".join(means[setting, parent] for parent in PARENTS) + " |"
        assert row in readme, row
