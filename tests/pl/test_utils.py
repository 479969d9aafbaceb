"""The scanpy convention every hcctme.pl function shares: ax, show, save, Axes returned."""

from __future__ import annotations

import warnings

import matplotlib.pyplot as plt
import pytest

from hcctme.pl._utils import finish, panels


def test_panels_grid_hides_the_unused_axes():
    axes = panels(5, ncols=3, figsize=(6, 4))
    assert axes.shape == (2, 3)
    assert [ax.get_visible() for ax in axes.ravel()] == [True] * 5 + [False]
    plt.close("all")


def test_panels_uses_the_given_ax_for_one_panel_only():
    _, ax = plt.subplots()
    assert panels(1, ax=ax)[0, 0] is ax
    with pytest.raises(ValueError, match="ax= takes one panel but this plot draws 2"):
        panels(2, ax=ax)
    plt.close("all")


def test_finish_saves_shows_and_returns(tmp_path):
    _, ax = plt.subplots()
    ax.plot([0, 1], [0, 1])
    path = tmp_path / "plot.png"
    assert finish(ax, show=False, save=path) is ax
    assert path.stat().st_size > 0
    axes = [ax, ax]
    assert finish(axes, show=None, save=None) is axes
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Agg cannot show: matplotlib says so
        assert finish(ax, show=True, save=None) is None
    plt.close("all")
