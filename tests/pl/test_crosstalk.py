"""hcctme.pl.crosstalk renders (Agg backend) and refuses bad input clearly."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest

import hcctme


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
    ax = hcctme.pl.crosstalk(adata, kind=kind, save=str(path), **kwargs)
    assert isinstance(ax, matplotlib.axes.Axes) and ax.get_title()
    assert path.stat().st_size > 0
    plt.close("all")


def test_bad_input(adata):
    with pytest.raises(ValueError, match="kind='bars' is not supported"):
        hcctme.pl.crosstalk(adata, kind="bars")
    with pytest.raises(KeyError, match=r"run hcctme\.tl\.crosstalk"):
        hcctme.pl.crosstalk(adata, key="missing")
    with pytest.raises(KeyError, match="not in the differential table"):
        hcctme.pl.crosstalk(adata, kind="strip", interaction=("A", "B", "C", "D"))
    with pytest.raises(ValueError, match="value must be"):
        hcctme.pl.crosstalk(adata, kind="heatmap", value="sum")
    with pytest.raises(ValueError, match="direction must be"):
        hcctme.pl.crosstalk(adata, kind="dotplot", direction="sideways")
    for n_top in (0, -3):
        with pytest.raises(ValueError, match="n_top must be >= 1"):
            hcctme.pl.crosstalk(adata, n_top=n_top)
    with pytest.raises(ValueError, match=r"interaction=1000000 is not a row .* rows; read them with"):
        hcctme.pl.crosstalk(adata, kind="strip", interaction=10**6)
    with pytest.raises(KeyError, match=r"interaction dict lacks \['target', 'ligand_complex', 'receptor_complex'\]"):
        hcctme.pl.crosstalk(adata, kind="strip", interaction={"source": "A"})


def test_pooled_run_has_no_differential_plots():
    data = lr_cohort(4, 15, n_genes=60, seed=6)
    hcctme.tl.crosstalk(data, groupby="cell_type", n_perms=None, axes_only=True)
    ax = hcctme.pl.crosstalk(data, kind="heatmap")
    assert ax.get_title() == "axis activity (all kb axes)"
    plt.close("all")
    with pytest.raises(KeyError, match="with condition_key"):
        hcctme.pl.crosstalk(data, kind="dotplot")


def test_dotplot_draws_the_top_tested_interactions(adata):
    diff = hcctme.get.crosstalk(adata, differential=True)
    tested = diff[diff["tested"]]
    assert tested["condition"].nunique() == 1
    ax = hcctme.pl.crosstalk(adata, kind="dotplot", n_top=5)
    dots = ax.collections[0]
    assert len(dots.get_offsets()) == min(5, len(tested))
    np.testing.assert_allclose(dots.get_array(), tested["effect"].head(5).to_numpy())
    plt.close("all")


def test_effect_heatmap_sums_the_axis_effects(adata):
    diff = hcctme.get.crosstalk(adata, differential=True)
    rows = diff[diff["axis"].notna()]
    expected = rows.groupby(["source", "target"], observed=True)["effect"].sum(min_count=1).unstack("target") \
        .astype(float)
    ax = hcctme.pl.crosstalk(adata, kind="heatmap", value="effect")
    drawn = np.ma.filled(ax.images[0].get_array().astype(float), np.nan)
    np.testing.assert_allclose(drawn, expected.to_numpy(), equal_nan=True)
    assert [t.get_text() for t in ax.get_yticklabels()] == [str(i) for i in expected.index]
    plt.close("all")


def test_strip_shows_one_dot_per_evaluable_sample(adata):
    diff = hcctme.get.crosstalk(adata, differential=True)
    row = diff.iloc[0]
    _, given = plt.subplots()
    ax = hcctme.pl.crosstalk(adata, kind="strip", interaction=0, ax=given)
    assert ax is given
    assert [t.get_text() for t in ax.get_xticklabels()] == [row["reference"], row["condition"]]
    reference_dots, other_dots = (np.asarray(c.get_offsets())[:, 1] for c in ax.collections[:2])
    assert len(reference_dots) + len(other_dots) == int(row["n_samples"])  # one dot per evaluable sample
    assert reference_dots.mean() == pytest.approx(row["mean_reference"])
    assert other_dots.mean() == pytest.approx(row["mean_other"])
    assert f"{row['ligand_complex']}" in ax.get_title() and f"{row['receptor_complex']}" in ax.get_title()
    plt.close("all")


def test_effect_heatmap_shows_one_contrast_of_a_three_level_condition():
    """With x vs ref and y vs ref the heatmap added both contrasts' effects into each cell."""
    adata = hcctme.datasets.simulate_cohort(9, 100, n_genes=600, random_state=4)
    patients = list(adata.obs["patient"].cat.categories)
    adata.obs["cond"] = adata.obs["patient"].astype(str).map(
        {p: ["ref", "x", "y"][i % 3] for i, p in enumerate(patients)}).astype("category")
    hcctme.tl.crosstalk(adata, groupby="cell_type", sample_key="patient", condition_key="cond", reference="ref",
                        axes_only=True, min_samples=2)
    diff = hcctme.get.crosstalk(adata, differential=True)
    shown_by_dotplot = str(diff.loc[diff["tested"], "condition"].iloc[0])
    diff = diff[diff["axis"].notna()]
    for condition in ("x", "y", None):
        ax = hcctme.pl.crosstalk(adata, kind="heatmap", value="effect", condition=condition)
        shown = condition or shown_by_dotplot
        rows = [t.get_text() for t in ax.get_yticklabels()]
        cols = [t.get_text() for t in ax.get_xticklabels()]
        expected = (diff[diff["condition"] == shown].groupby(["source", "target"], observed=True)["effect"]
                    .sum(min_count=1).unstack("target").reindex(index=rows, columns=cols).to_numpy(float))
        drawn = np.ma.filled(ax.get_images()[0].get_array().astype(float), np.nan)
        np.testing.assert_allclose(drawn, expected, equal_nan=True)
        assert f"({shown} vs ref)" in ax.figure.axes[-1].get_ylabel()
        plt.close("all")
    for axis in sorted(set(diff["axis"].astype(str).str.split(";").explode()))[:3]:  # the default: dotplot's contrast
        ax = hcctme.pl.crosstalk(adata, kind="heatmap", value="effect", axis=axis)
        assert f"({shown_by_dotplot} vs ref)" in ax.figure.axes[-1].get_ylabel()
        plt.close("all")


@pytest.fixture(scope="module")
def simulated():
    """A simulated cohort whose top tested interactions mix strength and detection-only tests."""
    old = hcctme.settings.progress
    hcctme.settings.progress = False
    data = hcctme.datasets.simulate_cohort(6, 150, n_genes=800, random_state=1)
    hcctme.tl.crosstalk(data, groupby="cell_type", sample_key="patient", condition_key="response",
                        reference="responder", n_perms=None)
    hcctme.settings.progress = old
    return data


def test_dotplot_draws_detection_only_tests(simulated):
    """A row tested on detection alone (effect NaN) gets an open circle; matplotlib drops NaN-coloured dots."""
    diff = hcctme.get.crosstalk(simulated, differential=True)
    top = diff[diff["tested"]].head(20)
    assert top["effect"].isna().any() and top["effect"].notna().any()
    ax = hcctme.pl.crosstalk(simulated, n_top=20)
    coloured, detection = ax.collections[0], ax.collections[1]
    assert len(coloured.get_offsets()) == int(top["effect"].notna().sum())
    assert not np.isnan(np.asarray(coloured.get_array(), float)).any()
    assert len(detection.get_offsets()) == int(top["effect"].isna().sum())
    plt.close("all")


def test_effect_heatmap_leaves_unmeasured_pairs_blank(simulated):
    """A sender/receiver pair whose axis rows have no effect is NaN (blank), not a summed 0."""
    diff = hcctme.get.crosstalk(simulated, differential=True)
    rows = diff[diff["axis"].notna() & (diff["condition"] == diff[diff["tested"]]["condition"].iloc[0])]
    measured = rows.groupby(["source", "target"], observed=True)["effect"].count()
    ax = hcctme.pl.crosstalk(simulated, kind="heatmap", value="effect")
    shown = np.ma.filled(ax.images[0].get_array().astype(float), np.nan)
    assert (measured == 0).any()
    assert np.isnan(shown).sum() >= int((measured == 0).sum())
    assert np.nansum(np.abs(shown)) > 0
    plt.close("all")


def test_strip_title_of_a_detection_only_row(simulated):
    diff = hcctme.get.crosstalk(simulated, differential=True)
    position = int(np.flatnonzero((diff["tested"] & diff["effect"].isna()).to_numpy())[0])
    ax = hcctme.pl.crosstalk(simulated, kind="strip", interaction=position)
    assert "nan" not in ax.get_title() and "no strength effect" in ax.get_title()
    plt.close("all")


def test_heatmap_draws_a_reversed_resource_row_in_the_axis_orientation():
    """LIANA's TIGIT -> PVR matches the kb's PVR -> TIGIT only reversed: PVR+ tumour cells are the senders."""
    import anndata as ad
    import liana as li
    import pandas as pd
    import scipy.sparse as sp

    resource = li.rs.select_resource("consensus")
    genes = sorted({g for c in pd.concat([resource.ligand, resource.receptor]) for g in c.split("_")})[:300]
    genes = sorted(set(genes) | {"PVR", "TIGIT"})
    rng = np.random.default_rng(0)
    labels = np.array(["Tumour cells"] * 40 + ["CD8+ T cells"] * 40)
    X = rng.poisson(0.05, (len(labels), len(genes))).astype(np.float32)
    X[labels == "Tumour cells", genes.index("PVR")] = rng.poisson(5, 40)
    X[labels == "CD8+ T cells", genes.index("TIGIT")] = rng.poisson(5, 40)
    adata = ad.AnnData(sp.csr_matrix(np.log1p(X)), var=pd.DataFrame(index=genes),
                       obs=pd.DataFrame({"cell_type": pd.Categorical(labels)}, index=[f"c{i}" for i in range(80)]))
    hcctme.tl.crosstalk(adata, groupby="cell_type")
    table = hcctme.get.crosstalk(adata)
    tigit = table[table["axis"].astype(str) == "TIGIT"]
    assert set(zip(tigit["ligand_complex"], tigit["receptor_complex"], strict=True)) == {("TIGIT", "PVR")}
    ax = hcctme.pl.crosstalk(adata, kind="heatmap", axis="TIGIT")
    senders = [t.get_text() for t in ax.get_yticklabels()]
    receivers = [t.get_text() for t in ax.get_xticklabels()]
    drawn = np.ma.filled(ax.images[0].get_array().astype(float), np.nan)
    strength = {(s, r): drawn[i, j] for i, s in enumerate(senders) for j, r in enumerate(receivers)}
    row = tigit[(tigit["source"] == "CD8+ T cells") & (tigit["target"] == "Tumour cells")]
    assert strength[("Tumour cells", "CD8+ T cells")] == pytest.approx(float(row["lr_means"].iloc[0]))
    assert np.isnan(strength.get(("CD8+ T cells", "Tumour cells"), np.nan))
    plt.close("all")


def test_detection_only_circles_of_no_change_are_neutral_and_cmap_objects_work(simulated):
    """'none' rows (detection_effect 0, p 1) were edged in the colour of an increase; a Colormap object raised."""
    from matplotlib import colormaps

    diff = hcctme.get.crosstalk(simulated, differential=True)
    tested = diff[diff["tested"]]
    top = tested[tested["condition"] == tested["condition"].iloc[0]]
    detection_only = top[top["effect"].isna()]
    assert (detection_only["direction"] == "none").any()
    cmap = colormaps["coolwarm"]
    ax = hcctme.pl.crosstalk(simulated, n_top=len(top), cmap=cmap)
    edges = ax.collections[1].get_edgecolors()
    expected = cmap(detection_only["direction"].map({"down": 0.0, "up": 1.0}).fillna(0.5).to_numpy())
    np.testing.assert_allclose(edges, expected)
    plt.close("all")


def test_effect_heatmap_of_an_axis_without_a_measured_effect_warns_nothing(simulated):
    import warnings

    diff = hcctme.get.crosstalk(simulated, differential=True)
    rows = diff[diff["axis"].notna()]
    axes = {a for ids in rows["axis"].astype(str) for a in ids.split(";")}
    measured = {a for ids, e in zip(rows["axis"].astype(str), rows["effect"], strict=True) if pd.notna(e)
                for a in ids.split(";")}
    empty = sorted(axes - measured)
    assert empty
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ax = hcctme.pl.crosstalk(simulated, kind="heatmap", value="effect", axis=empty[0])
    assert np.isnan(np.ma.filled(ax.images[0].get_array().astype(float), np.nan)).all()
    plt.close("all")
