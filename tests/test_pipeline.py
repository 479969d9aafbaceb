"""End to end: the whole pipeline on a small simulated spatial cohort, its outputs and the `hcctme run` command."""

from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd
import pytest

from hcctme import cli, datasets, get, pipeline, report
from hcctme._constants import Keys

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def cohort_file(tmp_path_factory) -> Path:
    adata = datasets.simulate_cohort(8, 150, n_genes=800, spatial=True, random_state=11)
    path = tmp_path_factory.mktemp("cohort") / "cohort.h5ad"
    adata.write_h5ad(path)
    return path


@pytest.fixture(scope="module")
def run_dir(cohort_file: Path, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("run")
    code = cli.main(["run", str(cohort_file), "--out", str(out), "--sample-key", "patient",
                     "--condition-key", "response", "--reference", "responder", "--cell-type-key", "cell_type"])
    assert code == 0
    return out


def test_run_writes_every_output(run_dir: Path):
    names = {p.name for p in run_dir.iterdir()}
    expected = {"hcctme.h5ad", "report.html", "compare_composition.tsv", "compare_scores.tsv",
                "compare_genes.tsv", "crosstalk.tsv", "crosstalk_diff.tsv", "tib.tsv", "resistance_profile.tsv",
                "ta_response_per_sample.tsv", "ta_response_compare.tsv", "resistance_profile_summary.tsv",
                "resistance_profile_evidence.tsv"}
    assert expected <= names
    assert not [n for n in names if n.endswith(".part")]


def test_stored_results_and_provenance(run_dir: Path):
    adata = ad.read_h5ad(run_dir / "hcctme.h5ad")
    assert Keys.SCORES in adata.obsm and Keys.STATE in adata.obs
    for key in (Keys.TIB, Keys.PROFILE, Keys.CROSSTALK):
        assert key in adata.uns
    run = adata.uns["hcctme_run"]
    assert run["config"]["sample_key"] == "patient"
    assert set(run["timings_s"]) == set(pipeline.STEPS)
    assert "library_version" in get.params(adata, Keys.SCORES)


def test_tables_are_tidy(run_dir: Path):
    composition = pd.read_csv(run_dir / "compare_composition.tsv", sep="\t")
    assert {"feature", "group", "effect", "statistic", "pvalue", "padj", "n_reference", "n_other",
            "direction"} <= set(composition.columns)
    assert composition["pvalue"].between(0, 1).all()
    profile = pd.read_csv(run_dir / "resistance_profile.tsv", sep="\t")
    assert {"axis", "activity", "active"} <= set(profile.columns)
    assert profile["patient" if "patient" in profile.columns else profile.columns[0]].nunique() == 8
    # the profile's tests by condition and its evidence are written too (sweep 59a: only the profile was)
    adata = ad.read_h5ad(run_dir / "hcctme.h5ad")
    for name, kwargs in (("summary", {"summary": True}), ("evidence", {"evidence": True})):
        written = pd.read_csv(run_dir / f"resistance_profile_{name}.tsv", sep="\t")
        assert len(written) == len(get.profile(adata, **kwargs)) > 0
    assert {"axis", "pvalue", "padj"} <= set(pd.read_csv(run_dir / "resistance_profile_summary.tsv", sep="\t"))


def test_input_file_is_never_modified(cohort_file: Path, run_dir: Path):
    adata = ad.read_h5ad(cohort_file)
    assert Keys.SCORES not in adata.obsm and Keys.STATE not in adata.obs


def test_run_refuses_bad_keys_before_writing(cohort_file: Path, tmp_path: Path, capsys):
    out = tmp_path / "out"
    code = cli.main(["run", str(cohort_file), "--out", str(out), "--sample-key", "nope"])
    assert code == cli.EXIT_USAGE
    assert "nope" in capsys.readouterr().err
    assert not out.exists()


def test_pipeline_config_validation_names_the_problem():
    adata = datasets.simulate_cohort(4, 60, n_genes=600, random_state=2)
    before = adata.copy()
    with pytest.raises(ValueError, match="reference 'nope' is not a level"):
        pipeline.run(adata, reference="nope")
    with pytest.raises(ValueError, match="unknown pipeline step"):
        pipeline.run(adata, steps=("score", "fly"))
    # one name is a list of one (steps="score" was read letter by letter: "unknown pipeline step(s) ['c', 'e', ...]")
    with pytest.raises(ValueError, match=r"unknown pipeline step\(s\) \['fly'\]"):
        pipeline.run(adata, steps="fly")
    with pytest.raises(ValueError, match=r"genes_groups \(--genes-groups\) names \['Tcells'\]"):
        pipeline.run(adata, genes_groups="Tcells")
    # a condition level of one sample cannot be compared: refused before any step (it failed in the T+A step)
    one = adata.copy()
    one.obs["response"] = one.obs["response"].astype(str).where(one.obs["patient"] != "P01", "partial")
    with pytest.raises(ValueError, match=r"one sample per group: .*'partial' \(1 sample\).* of obs\['response'\]"):
        pipeline.run(one)
    assert list(one.uns) == list(before.uns)
    # a misspelt cell type is refused before any step (it emptied, or silently shrank, the gene-level subset)
    with pytest.raises(ValueError, match=r"genes_groups \(--genes-groups\) names \['Tcells'\].*'Macrophages'"):
        pipeline.run(adata, genes_groups=["Macrophages", "Tcells"])
    assert adata.obsm.keys() == before.obsm.keys() and list(adata.uns) == list(before.uns)
    # a NaN coordinate is refused before any step (the tib step found it after five steps had run)
    spatial = datasets.simulate_cohort(4, 60, n_genes=600, spatial=True, random_state=2)
    spatial.obsm["spatial"][3, 0] = np.nan
    with pytest.raises(ValueError, match="NaN or infinite coordinates"):
        pipeline.run(spatial)
    assert "hcctme_scores" not in spatial.obsm


def test_run_without_counts_records_skipped_steps_in_manifest_and_report(tmp_path: Path, capsys):
    import json

    adata = datasets.simulate_cohort(6, 150, n_genes=600, random_state=3)
    del adata.layers["counts"]
    adata.var["feature_name"] = adata.var_names.astype(str)
    adata.var_names = [f"ENSG{i:011d}" for i in range(adata.n_vars)]
    src, out = tmp_path / "in.h5ad", tmp_path / "out"
    adata.write_h5ad(src)
    before = src.read_bytes()
    with pytest.warns(UserWarning, match="compare_genes skipped"):
        code = cli.main(["run", str(src), "--out", str(out), "--sample-key", "patient", "--no-crosstalk",
                         "--gene-symbols", "feature_name", "--no-progress"])
    assert code == 0, capsys.readouterr().err
    manifest = json.loads((out / "manifest.json").read_text())
    assert set(manifest["skipped"]) == {"compare_genes", "crosstalk", "tib"}
    assert manifest["skipped"]["compare_genes"].startswith("no raw counts")
    assert manifest["input"]["bytes"] == len(before) and manifest["parameters"]["gene_symbols"] == "feature_name"
    assert not (out / "compare_genes.tsv").exists() and (out / "compare_scores.tsv").exists()
    assert "skipped.compare_genes" in (out / "report.html").read_text()
    assert src.read_bytes() == before


def test_the_configs_random_state_seeds_call_states(monkeypatch):
    seen = {}
    monkeypatch.setattr(pipeline.tl, "call_states", lambda adata, **kwargs: seen.update(kwargs))
    config = pipeline.PipelineConfig(cell_type_key="cell_type", sample_key="patient", random_state=11)
    pipeline._states(ad.AnnData(obs=pd.DataFrame(index=["a"])), config)
    assert seen["random_state"] == 11 and seen["cell_type_key"] == "cell_type"


def test_a_cohort_too_small_to_test_is_still_scored_called_and_reported(tmp_path: Path):
    """Six patients of 50 cells: no cell type has 10 cells in two samples of each level, and no resistor keeps two
    cell types of 10 cells for crosstalk. The comparisons and crosstalk are skipped, each with a warning and its
    reason in uns["hcctme_run"]["skipped"] and the report; the scores, states, T+A response and profile are made
    (the whole run raised before)."""
    adata = datasets.simulate_cohort(6, 50, n_genes=600, random_state=3)
    with pytest.warns(UserWarning, match="compare_composition skipped: too few cells"):
        pipeline.run(adata, sample_key="patient", condition_key="response", reference="responder",
                     cell_type_key="cell_type")
    skipped = adata.uns[Keys.RUN]["skipped"]
    too_few = {"compare_composition", "compare_scores", "compare_genes", "crosstalk"}
    assert set(skipped) == too_few | {"tib"}
    assert all(skipped[part].startswith("too few cells") for part in too_few)
    assert Keys.STATE in adata.obs and not get.profile(adata).empty
    assert get.ta_response(adata, per_sample=True).shape[0] == 6
    html = report.build(adata)
    assert "States within their cell type: not run (too few cells" in html
    assert "Crosstalk: not run (too few cells" in html


def test_run_on_a_real_cohort_of_few_cells_per_patient(tmp_path: Path):
    """Sade-Feldman 2018's shipped 550 cells of 19 melanoma patients (tests/data), responders against
    non-responders by the authors' clusters: no cluster has 10 cells in two patients of each response, so the
    state composition is skipped (README, "From the shell"); the rest of the run is written."""
    import json

    import yaml

    folder = Path(__file__).resolve().parent / "data" / "sadefeldman2018_melanoma"
    contexts = yaml.safe_load((folder / "mapping.yaml").read_text())["contexts"]
    (tmp_path / "contexts.yaml").write_text(yaml.safe_dump({k: v for k, v in contexts.items() if v}))
    out = tmp_path / "out"
    with pytest.warns(UserWarning, match="compare_composition skipped: too few cells"):
        code = cli.main(["run", str(folder / "sadefeldman2018_melanoma.h5ad"), "--out", str(out), "--sample-key",
                         "patient", "--condition-key", "response", "--reference", "Non-responder",
                         "--cell-type-key", "cluster", "--context-map", str(tmp_path / "contexts.yaml"),
                         "--no-progress"])
    assert code == 0
    skipped = json.loads((out / "manifest.json").read_text())["skipped"]
    assert set(skipped) == {"compare_composition", "compare_genes", "tib"}
    assert skipped["compare_composition"].startswith("too few cells")
    for name in ("compare_scores", "ta_response_compare", "crosstalk_diff", "resistance_profile"):
        assert not pd.read_csv(out / f"{name}.tsv", sep="\t").empty, name
    assert "States within their cell type: not run (too few cells" in (out / "report.html").read_text()


def test_run_on_a_gene_panel_skips_the_steps_whose_signatures_it_does_not_measure(tmp_path: Path):
    """Villani 2017's 480 blood dendritic cells (tests/data), 859 genes: no state signature and no T+A signature
    reaches its coverage. The states and the T+A response are skipped with the reason in the manifest and the
    report (the run stopped at the states, telling the user to score with the library, which it had just done)."""
    import json

    folder = Path(__file__).resolve().parent / "data" / "villani2017_dc"
    out = tmp_path / "out"
    with pytest.warns(UserWarning, match="states skipped: no state signature could be scored"):
        code = cli.main(["run", str(folder / "villani2017_dc.h5ad"), "--out", str(out), "--sample-key", "plate",
                         "--cell-type-key", "cell_type", "--context-map", "CD141=dendritic", "--context-map",
                         "CD1C=dendritic", "--context-map", "pDC=dendritic", "--no-condition", "--no-progress"])
    assert code == 0
    skipped = json.loads((out / "manifest.json").read_text())["skipped"]
    assert set(skipped) == {"compare", "tib", "states", "ta_response"}
    assert "too few genes of each" in skipped["states"] and "859 gene names are human symbols" in skipped["ta_response"]
    html = (out / "report.html").read_text()
    assert "Cell states: not run (no state signature could be scored" in html
    assert not pd.read_csv(out / "resistance_profile.tsv", sep="\t").empty


def test_run_without_conditions_describes_the_cohort(tmp_path: Path):
    """Lu 2022's 1,000 cells of 10 primary HCC tumours (tests/data; no outcome labels), log-normalised with their
    counts kept: `hcctme run --no-condition` scores, calls and profiles them, with the T+A response and crosstalk
    per sample; the comparisons are skipped without a warning and the report says why (until session 52 the main
    job needed a condition column)."""
    import json
    import warnings

    import scanpy as sc
    import yaml

    folder = Path(__file__).resolve().parent / "data" / "lu2022_hcc"
    adata = ad.read_h5ad(folder / "lu2022_hcc.h5ad")
    adata.layers["counts"] = adata.X.copy()
    sc.pp.normalize_total(adata, target_sum=1e4)
    sc.pp.log1p(adata)
    adata.write_h5ad(tmp_path / "lu.h5ad")
    contexts = yaml.safe_load((folder / "mapping.yaml").read_text())["contexts"]
    (tmp_path / "contexts.yaml").write_text(yaml.safe_dump(contexts))
    out = tmp_path / "out"
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        code = cli.main(["run", str(tmp_path / "lu.h5ad"), "--out", str(out), "--sample-key", "patient",
                         "--cell-type-key", "cell_type", "--context-map", str(tmp_path / "contexts.yaml"),
                         "--no-condition", "--no-progress"])
    assert code == 0
    assert not [w for w in caught if "compare" in str(w.message) and "skipped" in str(w.message)]
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["skipped"]["compare"] == "condition_key=None, no conditions to compare"
    assert "condition_key" not in manifest["parameters"] and "reference" not in manifest["parameters"]  # None
    assert not list(out.glob("compare_*.tsv")) and not (out / "crosstalk_diff.tsv").exists()
    per_sample = pd.read_csv(out / "ta_response_per_sample.tsv", sep="\t")
    assert len(per_sample) == 10 and per_sample.columns[0] == "sample"  # no unnamed row-number column (sweep 57)
    assert pd.read_csv(out / "resistance_profile.tsv", sep="\t")["sample"].nunique() == 10
    assert not pd.read_csv(out / "crosstalk.tsv", sep="\t").empty
    assert "Comparisons: not run (condition_key=None, no conditions to compare)" in (out / "report.html").read_text()


def test_a_second_run_on_the_same_object_leaves_no_result_of_the_first_that_it_did_not_make():
    """Run again without a condition and without crosstalk: the first run's comparisons, differential crosstalk,
    T+A comparison and profile summary go (the report and get.* read them as this run's before)."""
    from hcctme._constants import COMPARE_KEYS, Suffix

    adata = datasets.simulate_cohort(6, 150, n_genes=600, spatial=True, random_state=4)
    keys = dict(sample_key="patient", cell_type_key="cell_type", genes=False)
    pipeline.run(adata, condition_key="response", reference="responder", **keys)
    first = set(adata.uns)
    assert {*COMPARE_KEYS.values(), Keys.CROSSTALK + Suffix.DIFF, Keys.TA_RESPONSE,
            Keys.PROFILE + Suffix.SUMMARY} - {Keys.COMPARE_GENES} <= first
    pipeline.run(adata, condition_key=None, crosstalk=False, **keys)
    left = {key for key in first - set(adata.uns)}
    assert left == {key + suffix for key in (Keys.COMPARE_COMPOSITION, Keys.COMPARE_SCORES)
                    for suffix in ("", Suffix.PARAMS, Suffix.VALUES)} | {
        Keys.CROSSTALK, Keys.CROSSTALK + Suffix.PARAMS, Keys.CROSSTALK + Suffix.DIFF, Keys.TA_RESPONSE,
        Keys.PROFILE + Suffix.SUMMARY}
    assert get.ta_response(adata, per_sample=True).shape[0] == 6 and Keys.TIB in adata.uns
    html = report.build(adata)
    assert "Crosstalk: not run (crosstalk=False)" in html and "Differential crosstalk" not in html


def test_a_panel_no_signature_can_score_stops_the_run_at_the_scores():
    """Every later step reads the scores: a TooFewGenesError there is the run's error, not a skipped step (states
    would then have asked for scores the run could not make)."""
    import numpy as np

    panel = ["CD8A", "CD3E", "PTPRC", "GZMB", "MKI67", "ACTB", "GAPDH", "CD4"]
    values = np.log1p(np.random.default_rng(0).poisson(2, (40, len(panel)))).astype("float32")
    adata = ad.AnnData(values, var=pd.DataFrame(index=panel))
    adata.obs["patient"], adata.obs["cell_type"] = np.repeat(["p1", "p2", "p3", "p4"], 10), "T"
    with pytest.raises(pipeline.tl.TooFewGenesError, match="8 gene names are human symbols"):
        pipeline.run(adata, condition_key=None, cell_type_key="cell_type")
    assert not adata.uns and not adata.obsm


def test_a_missing_outcome_column_and_counts_layer_name_their_options():
    """Sweep 54: a cohort without obs['response'] got "adata.obs has no column 'response'" (no word of
    --no-condition), and a missing --counts-layer got advice about --layer."""
    adata = datasets.simulate_cohort(4, 60, n_genes=300, random_state=1)
    no_outcome = adata.copy()
    del no_outcome.obs["response"]
    with pytest.raises(KeyError, match=r"condition_key=None \(--no-condition\)"):
        pipeline.PipelineConfig().validate(no_outcome)
    with pytest.raises(KeyError, match=r"counts_layer='umi' \(--counts-layer\) is not a layer.*--no-genes"):
        pipeline.counts_problem(adata, "umi")
    assert pipeline.PipelineConfig(min_coverage=0.3).min_coverage == 0.3


def test_steps_that_read_state_calls_left_without_them_are_skipped_with_the_reason():
    """Sweep 55: steps=("score", "compare") without state calls scored, then failed in the composition test (a
    KeyError not naming the states step); a dict config failed inside dataclasses.asdict."""
    adata = datasets.simulate_cohort(6, 150, spatial=True, random_state=0)
    with pytest.warns(UserWarning, match="compare_composition skipped: no state calls"):
        pipeline.run(adata, steps=("score", "compare", "tib"), genes=False)
    skipped = adata.uns["hcctme_run"]["skipped"]
    assert skipped["compare_composition"].startswith("no state calls") and skipped["tib"].startswith("no state")
    assert "hcctme_compare_scores" in adata.uns and "hcctme_state" not in adata.obs
    with pytest.raises(TypeError, match="config must be a PipelineConfig, got dict"):
        pipeline.run(adata, {"genes": False})


def test_a_failed_run_leaves_raw_var_as_it_was():
    """Sweep 61: harmonize writes raw.var's symbol column too, which the restore on failure did not undo."""
    adata = datasets.simulate_cohort(4, 60, n_genes=600, random_state=1)
    adata.raw = adata.copy()
    raw_var, var = adata.raw.var.copy(), adata.var.copy()
    with pytest.raises(ValueError, match="not-a-level"):
        pipeline.run(adata, species="human", reference="not-a-level")
    pd.testing.assert_frame_equal(adata.raw.var, raw_var)
    pd.testing.assert_frame_equal(adata.var, var)


def test_the_report_shows_the_per_sample_ta_response_and_the_patients_without_a_condition():
    """Sweep 61: a run without a condition computed the per-sample T+A response, which the report never showed,
    and its opening line dropped the number of patients."""
    adata = datasets.simulate_cohort(6, 80, n_genes=600, random_state=1)
    pipeline.run(adata, condition_key=None, steps=("score", "ta_response"))
    text = report.build(adata)
    assert 'id="table-ta_response_per_sample"' in text
    assert f"{adata.n_obs:,} cells x {adata.n_vars:,} genes from 6 patients." in text

