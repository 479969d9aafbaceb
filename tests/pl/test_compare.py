"""pl.compare / pl.volcano render (Agg) for every kind of comparison."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
from anndata import AnnData

import hcctme as hc

KW = dict(condition_key="response", sample_key="patient", reference="responder")


@pytest.fixture
def adata():
    rng = np.random.default_rng(0)
    n_pat, cells, n_genes = 8, 60, 30
    obs = pd.DataFrame({
        "patient": np.repeat([f"P{i}" for i in range(n_pat)], cells),
        "response": np.repeat(["responder"] * 4 + ["resistor"] * 4, cells),
        "pair": np.repeat([f"pair{i % 4}" for i in range(n_pat)], cells),
        "cell_type": rng.choice(["A", "B"], n_pat * cells),
        "state": rng.choice(["s1", "s2", "s3"], n_pat * cells),
    }, index=[f"c{i}" for i in range(n_pat * cells)])
    X = rng.poisson(3.0, (n_pat * cells, n_genes)).astype(np.float32)
    X[obs["response"].to_numpy() == "resistor", :3] *= 3
    a = AnnData(sp.csr_matrix(X), obs=obs, var=pd.DataFrame(index=[f"G{i}" for i in range(n_genes)]))
    a.layers["counts"] = a.X.copy()
    a.obsm["hcctme_scores"] = pd.DataFrame(rng.random((a.n_obs, 3)), index=a.obs_names,
                                           columns=["SIG_A", "SIG_B", "SIG_C"])
    return a


def test_scores_boxplots(adata, tmp_path):
    hc.tl.compare(adata, features="scores", groupby="cell_type", **KW)
    axes = hc.pl.compare(adata, n_top=4, save=str(tmp_path / "scores.png"))
    assert len(axes) == 4 and all(ax.get_visible() for ax in axes)
    fig = axes[0].figure
    assert len([ax for ax in fig.axes if ax.get_visible()]) == 4
    assert (tmp_path / "scores.png").stat().st_size > 1000
    plt.close(fig)


def test_composition_proportions_and_clr(adata):
    hc.tl.compare(adata, features="composition", groupby="state", parent_key="cell_type", **KW)
    (ax,) = hc.pl.compare(adata, features=["s1"], group="A")
    assert ax.get_ylabel() == "proportion"
    plt.close("all")
    axes = hc.pl.compare(adata, proportion=False, n_top=2)
    assert axes[0].get_ylabel() == "transformed proportion"
    plt.close("all")


def test_paired_lines(adata):
    hc.tl.compare(adata, features="scores", pair_key="pair", **KW)
    (ax,) = hc.pl.compare(adata, features="SIG_A")
    pair_lines = [line for line in ax.lines if line.get_color() == "grey"]
    assert len(pair_lines) == 4  # one line per pair, from the reference box (x ~ 0) to the other (x ~ 1)
    for line in pair_lines:
        x = np.asarray(line.get_xdata(), dtype=float)
        assert len(x) == 2 and abs(x[0]) <= 0.12 and abs(x[1] - 1) <= 0.12
    values = hc.get.compare(adata, values=True)
    values = values[values["feature"] == "SIG_A"]
    pairs = adata.obs.groupby("patient", observed=True)["pair"].first()
    expected = {frozenset(np.round(group["value"].to_numpy(float), 6))
                for _, group in values.groupby(values["sample"].map(pairs))}
    drawn = {frozenset(np.round(np.asarray(line.get_ydata(), dtype=float), 6)) for line in pair_lines}
    assert drawn == expected
    plt.close("all")


def test_genes_boxplots_and_volcano(adata):
    hc.tl.compare(adata, features="genes", **KW)
    table = adata.uns["hcctme_compare"]
    axes = hc.pl.compare(adata, n_top=3)
    assert "log2" in axes[0].get_ylabel()
    plt.close("all")
    ax = hc.pl.volcano(adata)
    assert ax.get_xlabel() == "log2 fold change"
    assert len(ax.texts) >= 1  # the planted genes are labelled
    plt.close(ax.figure)
    ax = hc.pl.volcano(table, group="all", n_labels=0)
    assert len(ax.texts) == 0
    plt.close(ax.figure)
    # a table without padj draws every point grey; one without effect names the column (sweep 57: bare KeyErrors)
    ax = hc.pl.volcano(table.drop(columns="padj"), group="all", n_labels=0)
    assert {tuple(c) for c in ax.collections[0].get_facecolors().round(3)} == {(0.741, 0.741, 0.741, 1.0)}
    plt.close(ax.figure)
    with pytest.raises(KeyError, match=r"no column\(s\) \['effect'\]"):
        hc.pl.volcano(table.drop(columns="effect"))
    # a gene whose per-sample values tl.compare did not keep (not among the 50 smallest p-values per group)
    values = adata.uns["hcctme_compare_values"]
    missing = sorted(set(table["feature"]) - set(values["feature"]))
    if missing:
        with pytest.raises(ValueError, match="no per-sample values stored for"):
            hc.pl.compare(adata, features=[missing[0]])


def test_errors(adata):
    hc.tl.compare(adata, features="scores", **KW)
    table = adata.uns["hcctme_compare"]
    with pytest.raises(ValueError, match="per-sample values"):
        hc.pl.compare(table)
    axes = hc.pl.compare(table, values=adata.uns["hcctme_compare_values"])
    assert len(axes) >= 1
    plt.close("all")
    with pytest.raises(KeyError, match="NOPE"):
        hc.pl.compare(adata, features=["NOPE"])
    with pytest.raises(ValueError, match="group"):
        hc.pl.compare(adata, group="nope")
    with pytest.raises(ValueError, match="group"):
        hc.pl.volcano(adata, group="nope")
    with pytest.raises(TypeError):
        hc.pl.compare([1, 2])
    bare = adata.copy()
    del bare.uns["hcctme_compare"]
    with pytest.raises(KeyError, match=r"tl\.compare"):
        hc.pl.volcano(bare)


def test_panel_titles_name_their_contrast_when_there_are_several(adata):
    adata.obs["arm"] = adata.obs["patient"].map({f"P{i}": "ABC"[i % 3] for i in range(8)})
    hc.tl.compare(adata, condition_key="arm", sample_key="patient", reference="A")
    table = hc.get.compare(adata)
    assert table["contrast"].nunique() == 2
    axes = hc.pl.compare(adata, n_top=3)
    for ax in axes:
        feature = ax.get_title().split("\n")[0]
        best = table[table["feature"] == feature].sort_values("pvalue").iloc[0]
        assert f"{best['contrast']}: effect {best['effect']:+.2f}" in ax.get_title()
    one = hc.pl.compare(adata, n_top=1, contrast="B vs A")[0]
    assert "vs" not in one.get_title()
    plt.close("all")


def test_volcano_titles_no_contrast_it_did_not_apply():
    table = pd.DataFrame({"feature": ["a", "b", "c"], "group": "all", "effect": [1.0, -0.5, 0.2],
                          "pvalue": [1e-4, 0.02, 0.5], "padj": [3e-4, 0.03, 0.5]})
    ax = hc.pl.volcano(table, contrast="drug vs placebo")
    assert ax.get_title() == ""
    plt.close("all")
