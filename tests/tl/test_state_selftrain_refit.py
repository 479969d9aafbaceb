"""The self-training's classes: a refit drops a "none of these" class predicted confidently in too few cells; a state
confirmed on a full panel keeps its class, refitted on its seeds where no cell is predicted confidently; a state is a
class from fewer seeds than "none of these"."""

from __future__ import annotations

from dataclasses import replace
from types import SimpleNamespace

import numpy as np

from hcctme.tl import _state_params as state_params
from hcctme.tl import _state_seeds as state_seeds
from hcctme.tl import _state_selftrain as selftrain

NONE = state_seeds.NONE_CLASS
PARAMS = state_params.SelfTrainParams()


def _blobs(*groups: tuple[str, tuple[float, float], float, int], seed: int = 0):
    """Features and seed labels of Gaussian blobs: (label, centre, sd, cells) per group."""
    rng = np.random.default_rng(seed)
    features = np.vstack([rng.normal(centre, sd, (n, 2)) for _, centre, sd, n in groups])
    labels = np.concatenate([np.array([label] * n, dtype=object) for label, _, _, n in groups])
    return features, labels


def _first_fit_confident(features: np.ndarray, labels: np.ndarray) -> dict[str, int]:
    """Cells per class that the first fit predicts with at least the seed confidence."""
    classes, probs, _ = selftrain.self_train(features, labels, replace(PARAMS, rounds=1))
    predicted = classes[probs.argmax(axis=1)][probs.max(axis=1) >= PARAMS.seed_confidence]
    return {str(c): int(np.sum(predicted == c)) for c in classes}


STATES = (("A", (-6.0, 0.0), 1.0, 120), ("B", (6.0, 0.0), 1.0, 120))


def test_a_none_class_confident_in_few_cells_leaves_the_refit():
    """15 scattered "none" seeds, 8 of them predicted confidently: under balanced class weights those few cells
    would weigh as much as a state's 120 in the refit."""
    features, labels = _blobs(*STATES, (NONE, (0.0, 4.0), 3.0, 15))
    assert 0 < _first_fit_confident(features, labels)[NONE] < PARAMS.min_seeds  # the case under test
    classes, probs, train = selftrain.self_train(features, labels, PARAMS)
    assert list(classes) == ["A", "B"] and NONE not in set(train)
    assert probs.shape == (features.shape[0], 2)


def test_a_none_class_confident_in_enough_cells_stays():
    features, labels = _blobs(*STATES, (NONE, (0.0, 8.0), 1.0, 40))
    assert _first_fit_confident(features, labels)[NONE] >= PARAMS.min_seeds
    classes, _, train = selftrain.self_train(features, labels, PARAMS)
    assert NONE in set(classes) and np.sum(train == NONE) >= PARAMS.min_seeds


def test_a_state_confident_in_few_cells_stays():
    """Only "none of these" is dropped: a state the first fit predicts confidently in few cells keeps its class."""
    features, labels = _blobs(*STATES, ("D", (0.0, 4.0), 3.0, 15), (NONE, (0.0, -8.0), 1.0, 40))
    assert 0 < _first_fit_confident(features, labels)["D"] < PARAMS.min_seeds
    classes, _, train = selftrain.self_train(features, labels, PARAMS)
    assert "D" in set(classes) and 0 < np.sum(train == "D") < PARAMS.min_seeds


def test_a_tested_state_predicted_confidently_nowhere_is_refitted_on_its_seeds():
    """Two states seeded in one blob (a sibling's seeds cut from a state's cells) split its cells' probabilities:
    no cell reaches the seed confidence for either. States confirmed on a full panel (``tested``) keep their classes
    on their seeds (release 2.22 dropped them: the blob's cells lost both classes); untested ones (a short panel's
    one-gene seeds) are still dropped."""
    features, labels = _blobs(("A", (-6.0, 0.0), 1.0, 120), ("B", (6.0, 0.0), 1.0, 60), ("C", (6.0, 0.0), 1.0, 40),
                              (NONE, (0.0, -8.0), 1.0, 40))
    confident = _first_fit_confident(features, labels)
    assert confident["B"] == 0 and confident["C"] == 0 and confident["A"] > 100  # the case under test
    classes, probs, train = selftrain.self_train(features, labels, PARAMS, frozenset({"A", "B", "C"}))
    assert {"A", "B", "C", NONE} <= set(classes)
    assert np.array_equal(train[labels == "B"], labels[labels == "B"])
    assert np.array_equal(train[labels == "C"], labels[labels == "C"])
    blob = probs[120:220][:, [list(classes).index("B"), list(classes).index("C")]].sum(axis=1)
    assert blob.min() > 0.8  # the blob's cells stay in its two states
    untested, _, _ = selftrain.self_train(features, labels, PARAMS, frozenset({"A", "B"}))
    assert "B" in set(untested) and "C" not in set(untested)


def test_unpredicted_tested_states_get_their_fitted_cells_back():
    classes = np.array(["A", "B", NONE], dtype=object)
    train = np.array(["A", "A", "B", "B", NONE, NONE, ""], dtype=object)
    labels = np.array(["A", "A", "A", "A", "A", NONE, NONE], dtype=object)
    seeded = np.array([True, True, False, False, False, False, False])
    tested = frozenset({"A", "B"})
    out, kept = selftrain._refit_cells(labels, seeded, train, classes, tested, PARAMS.min_seeds)
    assert list(out) == ["A", "A", "B", "B", "A", NONE, NONE]
    assert list(kept) == [True, True, True, True, False, False, False]
    assert labels[2] == "A" and not seeded[2]  # inputs untouched
    predicted_b, confident_b = labels.copy(), seeded.copy()
    predicted_b[4], confident_b[4] = "B", True  # B predicted confidently in one cell: nothing changes
    same, kept_b = selftrain._refit_cells(predicted_b, confident_b, train, classes, tested, PARAMS.min_seeds)
    assert np.array_equal(same, predicted_b) and np.array_equal(kept_b, confident_b)
    untested, kept_none = selftrain._refit_cells(labels, seeded, train, classes, frozenset({"A"}), PARAMS.min_seeds)
    assert np.array_equal(untested, labels) and np.array_equal(kept_none, seeded)  # B not tested: not restored


def test_a_state_confirmed_on_a_full_panel_is_a_class_from_fewer_seeds():
    """``min_state_seeds`` seeds make a class of a state the specificity test confirmed on a full panel; any other
    class (an untested or short-panel state, "none of these") needs ``min_seeds``."""
    few, floor = PARAMS.min_state_seeds, PARAMS.min_seeds
    assert few < floor
    labels = np.array(["A"] * 40 + ["B"] * few + ["C"] * (few - 1) + ["D"] * (floor - 1) + [NONE] * (floor - 1)
                      + [""] * 3, dtype=object)
    kept = state_seeds.with_enough_seeds(labels, PARAMS, frozenset({"B", "C"}))
    assert set(kept[kept != ""]) == {"A", "B"}
    assert np.array_equal(kept[labels == "B"], labels[labels == "B"])
    assert set(state_seeds.with_enough_seeds(labels, PARAMS)) == {"A", ""}  # nothing tested: min_seeds for all
    none = np.array([NONE] * floor + ["A"] * 20, dtype=object)
    assert np.array_equal(state_seeds.with_enough_seeds(none, PARAMS, frozenset({"A"})), none)


def test_only_states_seeded_on_full_panels_count_as_tested():
    report = {"LONG": {"seeded": True}, "SHORT": {"seeded": True}, "DECLINED": {"seeded": False}}
    panel = SimpleNamespace(short=frozenset({"SHORT"}))
    assert state_seeds.tested_on_full_panels(report, panel) == frozenset({"LONG"})
    assert state_seeds.tested_on_full_panels(report, None) == frozenset()
