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


def test_save_is_checked_before_drawing(tmp_path):
    """Sweep 57: a folder wrote a hidden '.png' in it, a bad extension failed in matplotlib after drawing."""
    import hcctme as ht
    from hcctme.datasets import simulate_cohort

    adata = simulate_cohort(n_patients=4, cells_per_patient=60, random_state=0)
    ht.tl.score(adata, ["TREG", "CD8_TEFF", "TAM2_SPP1"], n_jobs=1)
    (tmp_path / "figures").mkdir()
    open_before = plt.get_fignums()
    for save, error, match in ((tmp_path / "figures", ValueError, "is a folder"),
                               (f"{tmp_path / 'figures'}/", ValueError, "is a folder"),
                               (tmp_path / "plot.xyz", ValueError, "extension matplotlib writes"),
                               (tmp_path / "nowhere" / "plot.png", FileNotFoundError, "does not exist"),
                               ("", ValueError, "is empty")):
        with pytest.raises(error, match=match):
            ht.pl.scores(adata, groupby="cell_type", save=save)
    assert list((tmp_path / "figures").iterdir()) == [] and plt.get_fignums() == open_before
    ht.pl.scores(adata, groupby="cell_type", save=tmp_path / "figures" / "plot.pdf")
    assert (tmp_path / "figures" / "plot.pdf").stat().st_size > 0
    plt.close("all")


def test_finish_closes_a_shown_figure(tmp_path):
    """show=True returns no handle, so the figure is closed (it stayed open: one leaked per call in a loop)."""
    plt.close("all")
    for i in range(3):
        _, ax = plt.subplots()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            assert finish(ax, show=True, save=tmp_path / f"plot{i}.png") is None
        assert (tmp_path / f"plot{i}.png").stat().st_size > 0
    assert plt.get_fignums() == []
