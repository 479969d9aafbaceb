"""hcctme.pl.crosstalk renders (Agg backend) and refuses bad input clearly."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402

import hcctme  # noqa: E402



def _load_builder():
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "tl" / "_crosstalk_data.py"
    spec = importlib.util.spec_from_file_location("hcctme_tests_crosstalk_data", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.lr_cohort


lr_cohort = _load_builder()


@pytest.fixture(scope="module")
def adata():
    old = hcctme.settings.progress
    hcctme.settings.progress = False
    data = lr_cohort(8, 20, n_genes=80, seed=5)
    hcctme.tl.crosstalk(data, groupby="cell_type", sample_key="patient", condition_key="response",
                        reference="responder", n_perms=None)
    hcctme.settings.progress = old
    return data


@pytest.mark.parametrize("kind, kwargs", [
    ("dotplot", {}),
    ("dotplot", {"axes_only": True, "n_top": 5}),
    ("dotplot", {"direction": "up"}),
    ("heatmap", {}),
    ("heatmap", {"axis": "TIB"}),
    ("heatmap", {"value": "effect"}),
    ("strip", {}),
    ("strip", {"interaction": ("Macrophages", "Fibroblasts", "SPP1", "CD44")}),
    ("strip", {"interaction": 3}),
])
def test_renders(adata, kind, kwargs, tmp_path):
    path = tmp_path / f"{kind}.png"
    fig = hcctme.pl.crosstalk(adata, kind=kind, save=str(path), **kwargs)
    assert isinstance(fig, matplotlib.figure.Figure) and fig.axes
    assert path.stat().st_size > 0
    plt.close(fig)


def test_bad_input(adata):
    with pytest.raises(ValueError, match="kind='bars' is not supported"):
        hcctme.pl.crosstalk(adata, kind="bars")
    with pytest.raises(KeyError, match="run hcctme.tl.crosstalk"):
        hcctme.pl.crosstalk(adata, key="missing")
    with pytest.raises(KeyError, match="not in the differential table"):
        hcctme.pl.crosstalk(adata, kind="strip", interaction=("A", "B", "C", "D"))
    with pytest.raises(ValueError, match="value must be"):
        hcctme.pl.crosstalk(adata, kind="heatmap", value="sum")
    with pytest.raises(ValueError, match="direction must be"):
        hcctme.pl.crosstalk(adata, kind="dotplot", direction="sideways")


def test_pooled_run_has_no_differential_plots():
    data = lr_cohort(4, 15, n_genes=60, seed=6)
    hcctme.tl.crosstalk(data, groupby="cell_type", n_perms=None, axes_only=True)
    fig = hcctme.pl.crosstalk(data, kind="heatmap")
    plt.close(fig)
    with pytest.raises(KeyError, match="with condition_key"):
        hcctme.pl.crosstalk(data, kind="dotplot")
