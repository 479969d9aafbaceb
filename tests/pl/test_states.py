"""pl.states renders composition bars and UMAP colouring (Agg backend)."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest
from anndata import AnnData

import hcctme

STATES = {"macrophage": ["TAM1_FOLR2", "TAM2_SPP1", "TAM3_MT1G"], "cd4_t": ["TREG"]}


@pytest.fixture
def called() -> AnnData:
    rng = np.random.default_rng(0)
    n = 600
    context = rng.choice(["macrophage", "cd4_t", "unassigned"], n)
    calls = np.array(["unassigned"] * n, dtype=object)
    mac = context == "macrophage"
    calls[mac] = rng.choice([*STATES["macrophage"], "unassigned"], mac.sum())
    cd4 = context == "cd4_t"
    calls[cd4] = rng.choice(["TREG", "unassigned"], cd4.sum())
    patient = rng.choice([f"p{i}" for i in range(6)], n)
    obs = pd.DataFrame({
        "patient": patient,
        "response": np.where(np.isin(patient, ["p0", "p1", "p2"]), "responder", "resistor"),
        "hcctme_state": pd.Categorical(calls, categories=[*STATES["macrophage"], "TREG", "unassigned"]),
        "hcctme_state_context": pd.Categorical(context),
        "hcctme_state_confidence": rng.random(n),
    }, index=[f"c{i}" for i in range(n)])
    adata = AnnData(np.zeros((n, 2), dtype=np.float32), obs=obs)
    adata.uns["hcctme_state_params"] = {"states": STATES}
    adata.obsm["X_umap"] = rng.normal(size=(n, 2))
    return adata


def test_bar_renders_grouped_by_condition(called, tmp_path, digest):
    before = digest(called)
    axes = hcctme.pl.states(called, sample_key="patient", condition_key="response", save=tmp_path / "bar.png")
    assert isinstance(axes, list) and all(isinstance(ax, matplotlib.axes.Axes) for ax in axes)
    assert [ax.get_title() for ax in axes] == ["macrophage", "cd4_t"]
    # one stacked bar per sample and state, heights summing to 1 per sample
    heights = np.zeros(6)
    for patch in axes[0].patches:
        heights[round(patch.get_x() + patch.get_width() / 2)] += patch.get_height()
    assert np.allclose(heights, 1.0)
    labels = [t.get_text() for t in axes[0].get_xticklabels()]
    assert labels == ["p3", "p4", "p5", "p0", "p1", "p2"]  # grouped by condition (resistor < responder)
    assert (tmp_path / "bar.png").stat().st_size > 0
    assert digest(called) == before  # plotting never writes into the AnnData
    plt.close("all")


def test_bar_options(called):
    _, given = plt.subplots()
    axes = hcctme.pl.states(called, sample_key="patient", contexts=["cd4_t"], show_unassigned=False, ax=given)
    assert axes == [given] and given.get_title() == "cd4_t"
    plt.close("all")
    with pytest.raises(ValueError, match="ax= takes one panel"):
        hcctme.pl.states(called, sample_key="patient", ax=plt.subplots()[1])
    plt.close("all")
    with pytest.raises(ValueError, match="contexts"):
        hcctme.pl.states(called, sample_key="patient", contexts=["fibroblast"])
    with pytest.raises(ValueError, match="sample_key"):
        hcctme.pl.states(called)


def test_umap_renders(called):
    ax = hcctme.pl.states(called, kind="umap")
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    assert legend[0] == "unassigned" and set(legend[1:]) == {*STATES["macrophage"], "TREG"}
    plt.close("all")


def test_bad_input(called):
    with pytest.raises(KeyError, match="call_states"):
        hcctme.pl.states(called, sample_key="patient", key="other")
    with pytest.raises(ValueError, match="kind"):
        hcctme.pl.states(called, sample_key="patient", kind="pie")
    del called.obsm["X_umap"]
    with pytest.raises(KeyError, match="umap"):
        hcctme.pl.states(called, kind="umap")
    with pytest.raises(KeyError, match="patient_id"):
        hcctme.pl.states(called, sample_key="patient_id")


def test_a_state_of_two_contexts_is_one_bar_layer_and_one_colour(called):
    # call_states lists TREG under both t_cell and cd4_t: one layer, bars still summing to 1
    called.uns["hcctme_state_params"] = {"states": {**STATES, "t_cell": ["TREG"]}}
    axes = hcctme.pl.states(called, sample_key="patient", contexts="cd4_t")  # one context as a string
    labels = [c.get_label() for c in axes[0].containers]
    assert labels == ["TREG", "unassigned"]
    tops = np.max([[p.get_y() + p.get_height() for p in c] for c in axes[0].containers], axis=0)
    assert np.allclose(tops, 1.0)
    plt.close("all")


def test_many_states_get_distinct_colours():
    from hcctme.pl._states import UNASSIGNED_COLOUR, _palette

    for n in (9, 10, 18, 19, 30, 54, 55, 80):  # sweep 57: exactly 10 (and 55 on) shared a colour
        states = [f"S{i}" for i in range(n)]
        colours = _palette(states, None)
        assert len({colours[s] for s in states}) == n and UNASSIGNED_COLOUR not in {colours[s] for s in states}, n


def test_a_missing_condition_column_is_named(called):
    with pytest.raises(KeyError, match=r"adata\.obs has no column 'responce'"):
        hcctme.pl.states(called, sample_key="patient", condition_key="responce")
