"""Arguments refused by name before any work (sweep 55's fuzz of every public function): wrong types, out-of-range
values, selections that select nothing, and key_added values that would overwrite the user's own data."""

import anndata as ad
import matplotlib
import numpy as np
import pandas as pd
import pytest

import hcctme as ht

matplotlib.use("Agg")


@pytest.fixture(scope="module")
def scored() -> ad.AnnData:
    adata = ht.datasets.simulate_cohort(4, 80, spatial=True, random_state=0)
    ht.tl.score(adata)
    return adata


def test_flags_are_true_or_false_not_any_truthy_value(scored):
    adata = scored.copy()
    adata.raw = adata.copy()
    with pytest.raises(TypeError, match="use_raw must be True, False or None, got 'False'"):
        ht.pp.check_input(adata, use_raw="False")
    with pytest.raises(TypeError, match="copy must be True or False"):
        ht.tl.resistance_profile(scored.copy(), sample_key="patient", copy="False")
    with pytest.raises(TypeError, match="crosstalk must be True or False"):
        ht.pipeline.run(scored.copy(), crosstalk="False")
    with pytest.raises(TypeError, match="include_metabolite must be True or False"):
        ht.kb.axis_pairs(include_metabolite="yes")
    holder = ad.AnnData(np.zeros((1, 1), dtype=np.float32))
    holder.uns["hcctme_compare"] = pd.DataFrame({"feature": ["a"]})
    with pytest.raises(TypeError, match="values must be True or False"):
        ht.get.compare(holder, values="False")


def test_keys_and_lists_are_named_when_they_are_not_names(scored):
    with pytest.raises(TypeError, match="key must be a non-empty string"):
        ht.get.scores(scored, key=["hcctme_scores"])
    with pytest.raises(TypeError, match="scores_key must be a non-empty string"):
        ht.tl.compare(scored.copy(), condition_key="response", sample_key="patient", reference="responder",
                      features="scores", scores_key=["hcctme_scores"])
    with pytest.raises(TypeError, match="covariates"):
        ht.tl.compare(scored.copy(), condition_key="response", sample_key="patient", reference="responder",
                      features="scores", covariates=5)
    with pytest.raises(TypeError, match="signatures must be a name or a list of names"):
        ht.tl.compare(scored.copy(), condition_key="response", sample_key="patient", reference="responder",
                      features="scores", signatures=[["TAM2_SPP1"]])
    with pytest.raises(ValueError, match=r"signatures names \['TAM2_SPP1'\] more than once"):
        ht.tl.compare(scored.copy(), condition_key="response", sample_key="patient", reference="responder",
                      features="scores", signatures=["TAM2_SPP1", "TAM2_SPP1"])
    with pytest.raises(TypeError, match="genes_groups must be a name or a list"):
        ht.pipeline.run(scored.copy(), genes_groups=5)
    with pytest.raises(TypeError, match="sample_key"):
        ht.tl.ta_response(scored.copy(), sample_key=None, condition_key="response", reference="responder")
    with pytest.raises(TypeError, match="ligands must be a list"):
        ht.kb.annotate("SPP1", "CD44")
    assert len(ht.kb.axes(["TIB", "TIB"])) == len(ht.kb.axes("TIB"))


def test_numbers_out_of_range_and_empty_selections(scored):
    with pytest.raises(ValueError, match="pseudocount must be a positive number"):
        ht.tl.compare(scored.copy(), condition_key="response", sample_key="patient", reference="responder",
                      features="composition", groupby="cell_type", pseudocount=np.inf)
    with pytest.raises((TypeError, ValueError), match="min_coverage"):
        ht.tl.ta_response(scored.copy(), sample_key="patient", min_coverage=-1)
    with pytest.raises(ValueError, match="axes=\\[\\] selects no axis"):
        ht.tl.resistance_profile(scored.copy(), sample_key="patient", axes=[])
    with pytest.raises(ValueError, match="must be cells x 2 \\(or 3\\) coordinates"):
        ht.tl.tib(scored.copy(), sample_key="patient", spatial_key="hcctme_scores")
    infinite = scored.copy()
    infinite.obsm["hcctme_scores"].iloc[0, 0] = np.inf
    with pytest.raises(ValueError, match="infinite value"):
        ht.tl.resistance_profile(infinite, sample_key="patient")


def test_a_signature_scored_in_no_cell_is_said_not_dropped_silently(scored):
    adata = scored.copy()
    adata.obsm["hcctme_scores"]["TAM2_SPP1"] = np.nan
    ht.tl.compare(adata, condition_key="response", sample_key="patient", reference="responder", features="scores",
                  min_cells=5)
    assert "TAM2_SPP1" not in set(ht.get.compare(adata)["feature"])
    assert "TAM2_SPP1: no cell has a score (all NaN)" in ht.get.params(adata, "hcctme_compare")["skipped"]


def test_key_added_never_overwrites_the_users_own_data(scored):
    with pytest.raises(ValueError, match=r"would overwrite adata.obsm\['spatial'\]"):
        ht.tl.score(scored.copy(), key_added="spatial")
    with pytest.raises(ValueError, match="which this call reads"):
        ht.tl.call_states(scored.copy(), cell_type_key="cell_type", key_added="cell_type")
    adata = scored.copy()
    adata.uns["log1p"] = {"base": None}
    with pytest.raises(ValueError, match=r"would overwrite adata.uns\['log1p'\]"):
        ht.tl.compare(adata, condition_key="response", sample_key="patient", reference="responder",
                      features="scores", key_added="log1p")
    again = scored.copy()
    ht.tl.score(again, key_added="hcctme_scores")  # a tool's own earlier result is replaced, as before
    # sweep 61: an entry under the params name counted as an hcctme record, whatever it held
    kwargs = dict(condition_key="response", sample_key="patient", reference="responder", features="scores")
    for params in ({"note": "mine"}, "my notes", {"tool": "my_pipeline"}):
        own = scored.copy()
        own.uns["mine"], own.uns["mine_params"] = pd.DataFrame({"a": [1]}), params
        with pytest.raises(ValueError, match=r"would overwrite adata.uns\['mine'\]"):
            ht.tl.compare(own, key_added="mine", **kwargs)
        del own.uns["mine"]
        with pytest.raises(ValueError, match=r"would overwrite adata.uns\['mine_params'\]"):
            ht.tl.compare(own, key_added="mine", **kwargs)
    ht.tl.compare(again, key_added="mine", **kwargs)
    ht.tl.compare(again, key_added="mine", **kwargs)  # its own record: replaced


def test_plots_and_the_report_check_their_arguments(scored):
    with pytest.raises(TypeError, match="ax must be a matplotlib Axes"):
        ht.pl.scores(scored, groupby="cell_type", ax="left")
    with pytest.raises(TypeError, match="save must be a file path"):
        ht.pl.scores(scored, groupby="cell_type", save=5)
    nan_condition = scored.copy()
    ht.tl.call_states(nan_condition, cell_type_key="cell_type", self_train=False)
    column = nan_condition.obs["response"].astype(object)
    column.iloc[5] = np.nan
    nan_condition.obs["response"] = column
    with pytest.raises(ValueError, match=r"obs\['response'\] has 1 missing value"):
        ht.pl.states(nan_condition, sample_key="patient", condition_key="response")
    with pytest.raises(TypeError, match="title must be a string"):
        ht.report.build(scored, title=None)
    duplicated = scored.copy()
    duplicated.obs_names = ["c"] * duplicated.n_obs
    with pytest.raises(ValueError, match="obs_names has duplicates"):
        ht.report.build(duplicated)


def test_signature_files_are_not_written_over_a_folder(tmp_path):
    """sig.to_gmt / to_yaml to a folder: a ValueError naming the fix, not an IsADirectoryError; nothing written."""
    for write in (ht.sig.to_gmt, ht.sig.to_yaml):
        with pytest.raises(ValueError, match="is a folder; give a file name"):
            write(None, tmp_path)
    assert list(tmp_path.iterdir()) == []
    assert ht.sig.to_gmt(None, tmp_path / "library.gmt").startswith(ht.sig.to_gmt().split("\n")[0])


def test_check_input_reads_the_kind_of_the_finite_values():
    """Sweep 61: one NaN in z-scored data made check_input call it "other" and drop the "looks scaled" issue (a NaN
    minimum compares as nothing)."""
    rng = np.random.default_rng(0)
    scaled = rng.normal(size=(60, 30)).astype(np.float32)
    scaled[0, 0] = np.nan
    report = ht.pp.check_input(ad.AnnData(scaled))
    assert report["has_nan"] and report["kind"] == "scaled"
    assert any("scaled" in issue for issue in report["issues"])
    counts = rng.poisson(2.0, size=(60, 30)).astype(np.float32)
    counts[1, 1] = np.inf
    assert ht.pp.check_input(ad.AnnData(counts))["kind"] == "counts"
