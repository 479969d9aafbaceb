"""hcctme.pl.scores renders dotplots and heatmaps of mean scores per group."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest
from anndata import AnnData

import hcctme
from hcctme.pl._scores import score_summary


@pytest.fixture
def scored() -> AnnData:
    rng = np.random.default_rng(0)
    n = 90
    adata = AnnData(np.zeros((n, 3), dtype=np.float32),
                    obs=pd.DataFrame({"cell_type": pd.Categorical(np.repeat(["T", "B", "Mac"], 30),
                                                                   categories=["T", "B", "Mac"])},
                                     index=[f"c{i}" for i in range(n)]))
    values = rng.uniform(0, 0.2, (n, 3)).astype(np.float32)
    values[:30, 0] += 0.5  # T cells high on SIG_T
    values[60:, 2] = 0  # Mac: SIG_Z never above 0
    adata.obsm["hcctme_scores"] = pd.DataFrame(values, index=adata.obs_names, columns=["SIG_T", "SIG_B", "SIG_Z"])
    adata.uns["hcctme_scores_params"] = {"method": "ucell"}
    return adata


def test_summary_means_and_fractions(scored):
    means, fraction = score_summary(scored, "cell_type")
    assert list(means.index) == ["T", "B", "Mac"]
    assert means.loc["T", "SIG_T"] > 0.5 > means.loc["B", "SIG_T"]
    assert fraction.loc["Mac", "SIG_Z"] == 0 and fraction.loc["T", "SIG_Z"] == 1


@pytest.mark.parametrize("kind", ["dotplot", "heatmap"])
@pytest.mark.parametrize("standard_scale", [None, "var"])
def test_renders(scored, kind, standard_scale, tmp_path):
    ax = hcctme.pl.scores(scored, "cell_type", kind=kind, standard_scale=standard_scale)
    assert isinstance(ax, matplotlib.axes.Axes)
    assert [t.get_text() for t in ax.get_xticklabels()] == ["SIG_T", "SIG_B", "SIG_Z"]
    assert [t.get_text() for t in ax.get_yticklabels()] == ["T", "B", "Mac"]
    ax.figure.savefig(tmp_path / f"{kind}.png")
    assert (tmp_path / f"{kind}.png").stat().st_size > 1000
    plt.close("all")


def test_subset_and_given_axes(scored):
    _fig, ax = plt.subplots()
    out = hcctme.pl.scores(scored, "cell_type", ["SIG_B", "SIG_T"], kind="heatmap", ax=ax)
    assert out is ax
    assert [t.get_text() for t in ax.get_xticklabels()] == ["SIG_B", "SIG_T"]
    plt.close("all")


def test_errors(scored):
    with pytest.raises(KeyError, match="NOPE"):
        hcctme.pl.scores(scored, "cell_type", ["NOPE"])
    with pytest.raises(KeyError, match="groupby_missing"):
        hcctme.pl.scores(scored, "groupby_missing")
    with pytest.raises(ValueError, match="kind"):
        hcctme.pl.scores(scored, "cell_type", kind="violin")
    del scored.obsm["hcctme_scores"]
    with pytest.raises(KeyError, match=r"tl\.score.*pass the key_added it wrote as key="):
        hcctme.pl.scores(scored, "cell_type")


def test_after_tl_score():
    rng = np.random.default_rng(1)
    X = rng.poisson(1.0, (60, 50)).astype(np.float32)
    adata = AnnData(X, obs=pd.DataFrame({"g": np.repeat(["a", "b"], 30)}, index=[f"c{i}" for i in range(60)]),
                    var=pd.DataFrame(index=[f"G{i}" for i in range(50)]))
    hcctme.tl.score(adata, {"A": [f"G{i}" for i in range(10)], "B": [f"G{i}" for i in range(20, 30)]}, max_rank=20)
    ax = hcctme.pl.scores(adata, "g")
    assert ax.get_title() == "ucell scores by g"
    plt.close("all")
