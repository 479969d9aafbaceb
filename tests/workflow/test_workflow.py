"""The shipped Snakemake workflow, end to end on a tiny simulated cohort, and its config schema."""

import json
import subprocess
import sys
import warnings
from pathlib import Path

import anndata as ad
import pandas as pd
import pytest
import yaml

from hcctme import datasets
from hcctme.workflow import config_schema, run_workflow, snakefile

pytestmark = pytest.mark.slow


def _config(tmp_path: Path, *, numeric_ids: bool = False, **extra) -> Path:
    adata = datasets.simulate_cohort(4, 120, n_genes=1000, spatial=True, random_state=4)
    if numeric_ids:  # sample ids a TSV reader takes for numbers
        adata.obs["patient"] = adata.obs["patient"].cat.rename_categories(
            {p: f"{i:03d}" for i, p in enumerate(adata.obs["patient"].cat.categories, start=1)})
    adata.write_h5ad(tmp_path / "cohort.h5ad")
    config = {"input": str(tmp_path / "cohort.h5ad"), "outdir": str(tmp_path / "results"), "genes": False,
              "crosstalk": False, **extra}
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def test_workflow_runs_end_to_end(tmp_path: Path):
    # counts_layer named with crosstalk off: the crosstalk rule's skip reason validated the config against the
    # results-only states file, which holds no layers (KeyError: the workflow failed; review of sweep 60)
    configfile = _config(tmp_path, genes=True, counts_layer="counts")
    assert run_workflow(configfile, cores=2, directory=tmp_path, extra_args=["--quiet", "all"]) == 0
    results = tmp_path / "results"
    assert (results / "report.html").stat().st_size > 10_000
    assert len(list((results / "scored").glob("*.h5ad"))) == 4  # per-sample fan-out
    per_sample = pd.read_csv(results / "ta_response_per_sample.tsv", sep="\t")
    assert len(per_sample) == 4 and "TA_TREG_TEFF" in per_sample.columns
    assert per_sample.columns[0] == "sample"  # as `hcctme run` writes it (an unnamed row-number column before)
    profile = pd.read_csv(results / "resistance_profile.tsv", sep="\t")
    assert {"axis", "activity", "active"} <= set(profile.columns)
    summary = pd.read_csv(results / "resistance_profile_summary.tsv", sep="\t")
    assert {"axis", "pvalue", "padj"} <= set(summary.columns) and len(summary) > 0
    assert len(pd.read_csv(results / "resistance_profile_evidence.tsv", sep="\t")) > 0
    composition = pd.read_csv(results / "compare_composition.tsv", sep="\t")
    assert composition["pvalue"].between(0, 1).all()
    assert not list(results.glob("**/*.part"))
    # what the run left out is recorded as `hcctme run` records it, and the report says so (it said nothing)
    run = ad.read_h5ad(results / "hcctme.h5ad").uns["hcctme_run"]
    assert run["skipped"] == {"crosstalk": "crosstalk=False"}
    assert pd.read_csv(results / "compare_genes.tsv", sep="\t")["pvalue"].between(0, 1).all()
    assert pd.read_csv(results / "crosstalk_diff.tsv", sep="\t")["skipped"].tolist() == ["crosstalk=False"]
    assert run["config"]["sample_key"] == "patient"
    assert "Crosstalk: not run (crosstalk=False)" in (results / "report.html").read_text()
    # each rule's params are the keys it reads: another de_method reruns the gene comparison and what reads it (every
    # rule before), and a default written out is no change
    config = yaml.safe_load(configfile.read_text())
    configfile.write_text(yaml.safe_dump({**config, "de_method": "voom", "method": "ucell"}))
    assert _jobs_to_run(configfile, tmp_path) == {"compare": 1, "profile": 1, "report": 1, "all": 1}


def _jobs_to_run(configfile: Path, directory: Path) -> dict[str, int]:
    """The jobs a dry run of the workflow would run, by rule (snakemake's job stats)."""
    proc = subprocess.run([sys.executable, "-m", "snakemake", "--snakefile", snakefile(), "--configfile",
                           str(configfile), "--directory", str(directory), "--cores", "1", "--dry-run", "all"],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-2000:]
    lines = (proc.stdout + proc.stderr).split("Job stats:")[1].splitlines()[3:]
    rows = [line.split() for line in lines[:lines.index(next(x for x in lines if x.startswith("total")))]]
    return {rule: int(count) for rule, count in rows}


@pytest.mark.parametrize("bad", [{"unknown_key": 1}, {"genes": "yes"}, {"method": "magic"}])
def test_config_schema_refuses_bad_values(tmp_path: Path, bad: dict):
    configfile = _config(tmp_path, **bad)
    proc = subprocess.run([sys.executable, "-m", "snakemake", "--snakefile", snakefile(), "--configfile",
                           str(configfile), "--cores", "1", "--dry-run", "--directory", str(tmp_path)],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode != 0
    assert "validat" in (proc.stdout + proc.stderr).lower()


@pytest.mark.parametrize(("change", "message"), [
    ({"condition_key": "outcome"}, "adata.obs has no column 'outcome' (condition_key, the outcome of each sample)"),
    ({"reference": "partial"}, "reference 'partial' is not a level"),
    ({"input": "table.csv"}, "cannot read 'table.csv' as h5ad: it is a text table"),
    # per-sample scoring would give each sample its own control genes (scores off by up to 0.59, sweep 58)
    ({"method": "mean"}, "method 'mean' cannot be used in the workflow"),
])
def test_the_input_is_checked_against_the_config_before_any_job(tmp_path: Path, change: dict, message: str):
    """As `hcctme run` checks before its first step; a dry run passed these, and a real run failed jobs later
    (after scoring and the state calls) or in h5py's reader."""
    configfile = _config(tmp_path)
    (tmp_path / "table.csv").write_text("gene,c1\nCD8A,1\n")
    config = {**yaml.safe_load(configfile.read_text()), **change}
    configfile.write_text(yaml.safe_dump(config))
    proc = subprocess.run([sys.executable, "-m", "snakemake", "--snakefile", snakefile(), "--configfile",
                           str(configfile), "--cores", "1", "--dry-run", "--directory", str(tmp_path)],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode != 0 and message in proc.stdout + proc.stderr
    assert not (tmp_path / "results").exists()


def test_missing_configfile_is_a_clear_error(tmp_path: Path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        run_workflow(tmp_path / "nope.yaml")


def test_shipped_files_exist():
    assert Path(snakefile()).is_file() and Path(config_schema()).is_file()


@pytest.mark.parametrize(("cores", "extra", "expected"), [
    (None, [], ["--cores", "1"]),
    (4, [], ["--cores", "4"]),
    (None, ["--executor", "slurm", "--jobs", "50"], []),  # the plugin's --jobs decides, not one local core
    (None, ["--executor=slurm"], []),
    (8, ["--executor", "slurm"], ["--cores", "8"]),
])
def test_cores_passed_to_snakemake(tmp_path: Path, monkeypatch, cores, extra, expected):
    configfile = tmp_path / "config.yaml"
    configfile.write_text("input: x.h5ad\n")
    calls = []
    monkeypatch.setattr(subprocess, "call", lambda cmd, env=None: calls.append(cmd) or 0)
    assert run_workflow(configfile, cores=cores, extra_args=extra) == 0
    cmd = calls[0]
    given = cmd[cmd.index("--cores"):cmd.index("--cores") + 2] if "--cores" in cmd else []
    assert given == expected
    assert cmd[len(cmd) - len(extra):] == extra


def _rule_call(tmp_path: Path, adata, config: dict, features: str = "composition", steps=("score", "states")):
    """A rule's ``snakemake`` object on ``adata`` after ``steps`` (results-only states.h5ad beside the cohort)."""
    from types import SimpleNamespace

    from hcctme import _files, pipeline
    from hcctme.workflow import _steps

    adata.write_h5ad(tmp_path / "cohort.h5ad")
    for step in steps:
        pipeline.run_step(adata, _steps._config({**_steps.DEFAULTS, **config}), step)
    _files.write_results_h5ad(adata, tmp_path / "states.h5ad")

    class Inputs(list):
        data = str(tmp_path / "cohort.h5ad")

    class Outputs(list):
        skipped = str(tmp_path / "skipped.json")
        params = str(tmp_path / "params.h5ad")

    return SimpleNamespace(input=Inputs([str(tmp_path / "states.h5ad")]), output=Outputs([str(tmp_path / "out")]),
                           wildcards=SimpleNamespace(features=features), params=SimpleNamespace(config=config))


_KEYS = {"sample_key": "patient", "condition_key": "response", "reference": "responder", "cell_type_key": "cell_type"}


def test_compare_rule_writes_a_skipped_row_where_the_cohort_has_too_few_cells(tmp_path: Path):
    """The compare rule on six patients of 50 cells (no cell type with 10 cells in two samples of each level): a
    warning and a table of one `skipped` row saying why, instead of a failed workflow."""
    from hcctme.workflow import _steps

    smk = _rule_call(tmp_path, datasets.simulate_cohort(6, 50, n_genes=600, random_state=3), _KEYS)
    with pytest.warns(UserWarning, match="compare_composition skipped: too few cells"):
        _steps.compare(smk)
    skipped = json.loads(Path(smk.output.skipped).read_text())  # the profile rule records it for the report
    assert list(skipped) == ["compare_composition"] and skipped["compare_composition"].startswith("too few cells")
    assert pd.read_csv(smk.output[0], sep="\t")["skipped"].tolist() == [skipped["compare_composition"]]


def test_gene_level_rules_run_only_where_the_input_holds_counts(tmp_path: Path):
    """`all` asks for pseudobulk.h5ad and compare_genes.tsv only where `genes` is on and the input holds raw counts
    (layers['counts'] by default, as `hcctme run` reads them); without counts they are left out with a warning
    (the pseudobulk rule failed the whole workflow on Sade-Feldman 2018's log values before)."""
    from hcctme.workflow import _steps

    adata = datasets.simulate_cohort(4, 60, n_genes=300, random_state=4)
    with_counts, without = tmp_path / "counts.h5ad", tmp_path / "log.h5ad"
    adata.write_h5ad(with_counts)
    del adata.layers["counts"]
    adata.write_h5ad(without)
    assert _steps.compare_features({"input": str(with_counts)}) == ["composition", "scores", "genes"]
    assert not _steps.gene_level({"input": str(with_counts), "genes": False})
    with pytest.warns(UserWarning, match="pseudobulk and compare_genes skipped: no raw counts"):
        assert _steps.compare_features({"input": str(without)}) == ["composition", "scores"]


def test_workflow_without_conditions_describes_the_cohort(tmp_path: Path):
    """`condition_key: null` (a cohort without outcome labels, as `hcctme run --no-condition`): no comparison rule,
    the T+A response per sample only, the profile and the report (the schema refused null before)."""
    configfile = _config(tmp_path, condition_key=None)
    assert run_workflow(configfile, cores=2, directory=tmp_path, extra_args=["--quiet", "all"]) == 0
    results = tmp_path / "results"
    assert not list(results.glob("compare_*.tsv")) and (results / "report.html").is_file()
    assert len(pd.read_csv(results / "ta_response_per_sample.tsv", sep="\t")) == 4
    # a table the run has none of says why (it held a lone newline, which pandas reads as no table at all)
    for name in ("ta_response_compare", "resistance_profile_summary"):
        assert pd.read_csv(results / f"{name}.tsv", sep="\t")["skipped"].tolist() == [
            "condition_key is null: no conditions to compare"], name
    assert pd.read_csv(results / "crosstalk_diff.tsv", sep="\t")["skipped"].tolist() == ["crosstalk=False"]
    assert pd.read_csv(results / "resistance_profile.tsv", sep="\t")["sample"].nunique() == 4


def test_the_workflows_profile_and_records_equal_hcctme_runs(tmp_path: Path):
    """Sweep 54: the profile rule put the crosstalk tables back without crosstalk's record, whose groups the
    profile reads: its activities differed from `hcctme run`'s by up to 1.2 on the spatial demo, and the report's
    methods left out crosstalk and the barrier. The cohort rules now pass their records on (params/<rule>.h5ad)."""
    from hcctme import get, pipeline

    configfile = _config(tmp_path, crosstalk=True, min_coverage=0.4, numeric_ids=True)
    assert run_workflow(configfile, cores=2, directory=tmp_path, extra_args=["--quiet", "all"]) == 0
    results = tmp_path / "results"
    adata = ad.read_h5ad(tmp_path / "cohort.h5ad")
    pipeline.run(adata, genes=False, min_coverage=0.4)
    # sweep 60: the profile rule read the other rules' tables back from their TSVs, so floats moved in the last bit
    # and sample ids "001"... became integers that matched no sample (every z_crosstalk and z_spatial NaN)
    workflow = pd.read_csv(results / "resistance_profile.tsv", sep="\t", dtype={"sample": str},
                           float_precision="round_trip")
    expected = get.profile(adata).reset_index(drop=True)
    assert expected["z_crosstalk"].notna().any() and expected["z_spatial"].notna().any()
    columns = ["sample", "axis", "activity", "active", "n_evidence", "z_scores", "z_states", "z_crosstalk", "z_spatial"]
    pd.testing.assert_frame_equal(workflow[columns], expected[columns], check_dtype=False, check_exact=True)
    written = ad.read_h5ad(results / "hcctme.h5ad")
    for key in ("hcctme_crosstalk", "hcctme_tib", "hcctme_ta_response"):
        assert get.params(written, key)["tool"] == get.params(adata, key)["tool"]
    assert get.params(written, "hcctme_scores")["params"]["min_coverage"] == 0.4
    assert "LIANA" in (results / "report.html").read_text()


def test_the_workflow_takes_gene_symbols_context_map_and_genes_groups(tmp_path: Path):
    """Sweep 54 (helper G): the workflow's config had no `gene_symbols`, `species`, `context_map` or `genes_groups`,
    which `hcctme run` takes: a cohort with Ensembl-like ids in var_names or its own cell-type labels could not be
    run. Each rule now maps the names as `hcctme run` does; its calls and profile equal the run's."""
    from hcctme import get, pipeline

    adata = datasets.simulate_cohort(4, 120, n_genes=1000, spatial=True, random_state=4)
    adata.var["feature_name"] = adata.var_names.to_numpy()
    adata.var_names = [f"gene{i:05d}" for i in range(adata.n_vars)]
    adata.obs["cell_type"] = adata.obs["cell_type"].cat.rename_categories({"Macrophages": "cluster 3"})
    adata.write_h5ad(tmp_path / "cohort.h5ad")
    settings = {"gene_symbols": "feature_name", "context_map": {"cluster 3": "macrophage"},
                "genes_groups": ["cluster 3", "CD8+ T cells"], "crosstalk": False}
    config = {"input": str(tmp_path / "cohort.h5ad"), "outdir": str(tmp_path / "results"), **settings}
    configfile = tmp_path / "config.yaml"
    configfile.write_text(yaml.safe_dump(config))
    assert run_workflow(configfile, cores=2, directory=tmp_path, extra_args=["--quiet", "all"]) == 0
    results = tmp_path / "results"
    pipeline.run(adata, **settings)
    written = ad.read_h5ad(results / "hcctme.h5ad")
    assert (written.obs.loc[adata.obs_names, "hcctme_state"].astype(str)
            == adata.obs["hcctme_state"].astype(str)).all()
    assert adata.obs.loc[adata.obs["cell_type"] == "cluster 3", "hcctme_state"].astype(str).str.startswith(
        ("TAM", "KUPFFER")).any()
    genes = pd.read_csv(results / "compare_genes.tsv", sep="\t")
    assert set(genes["group"]) == set(get.compare(adata, "hcctme_compare_genes")["group"])
    assert "cluster 3" in set(genes["group"]) <= set(settings["genes_groups"])
    assert len(genes) == len(get.compare(adata, "hcctme_compare_genes"))
    columns = ["sample", "axis", "activity", "active"]
    pd.testing.assert_frame_equal(pd.read_csv(results / "resistance_profile.tsv", sep="\t")[columns],
                                  get.profile(adata).reset_index(drop=True)[columns], check_dtype=False)


def test_compare_rule_skips_composition_without_state_calls(tmp_path: Path):
    """The states step called nothing (too few genes): hcctme run skips the composition, the rule raised KeyError."""
    from hcctme.pipeline import NO_STATES
    from hcctme.workflow import _steps

    smk = _rule_call(tmp_path, datasets.simulate_cohort(4, 80, n_genes=400, random_state=3), _KEYS, steps=("score",))
    with pytest.warns(UserWarning, match="compare_composition skipped: no state calls"):
        _steps.compare(smk)
    assert json.loads(Path(smk.output.skipped).read_text()) == {"compare_composition": NO_STATES}
    assert pd.read_csv(smk.output[0], sep="\t")["skipped"].tolist() == [NO_STATES]


def test_pseudobulk_rule_writes_no_profile_where_every_group_is_small(tmp_path: Path):
    """hcctme run skips the gene comparison there; the rule raised TooFewCellsError and failed the workflow."""
    from hcctme.workflow import _steps

    adata = datasets.simulate_cohort(4, 100, n_genes=400, random_state=3)
    adata = adata[adata.obs.groupby(["patient", "cell_type"], observed=True).cumcount().to_numpy() < 9].copy()
    smk = _rule_call(tmp_path, adata, _KEYS, steps=())
    smk_genes = adata.n_vars
    with pytest.warns(UserWarning, match="pseudobulk has no profile: too few cells: no sample x cell_type profile"):
        _steps.pseudobulk(smk)
    bulk = ad.read_h5ad(smk.output[0])
    assert bulk.n_obs == 0 and bulk.n_vars == smk_genes and "min_cells" in bulk.uns["skipped"]


def test_the_rules_read_the_states_with_their_categories(tmp_path: Path):
    """with_matrices copied obs columns as arrays: hcctme.h5ad's state column lost its unused categories."""
    from hcctme.workflow import _steps

    smk = _rule_call(tmp_path, datasets.simulate_cohort(4, 80, n_genes=400, random_state=3), _KEYS)
    states = ad.read_h5ad(tmp_path / "states.h5ad").obs["hcctme_state"]
    merged = _steps.with_matrices(smk.input[0], smk.input.data)
    assert list(merged.obs["hcctme_state"].cat.categories) == list(states.cat.categories)
    assert (merged.obs["hcctme_state"].astype(str) == states.reindex(merged.obs_names).astype(str)).all()


def test_no_progress_reaches_the_workflows_jobs(tmp_path: Path, monkeypatch):
    """hcctme --no-progress workflow drew the jobs' bars: each job is a process of its own, with default settings."""
    from hcctme import settings

    configfile = tmp_path / "config.yaml"
    configfile.write_text("input: x.h5ad\n")
    envs = []
    monkeypatch.setattr(subprocess, "call", lambda cmd, env=None: envs.append(env) or 0)
    monkeypatch.setattr(settings, "progress", False)
    run_workflow(configfile)
    assert envs[0]["HCCTME_PROGRESS"] == "0"
    code = "from hcctme import settings; print(settings.progress)"
    shown = subprocess.run([sys.executable, "-c", code], env=envs[0], capture_output=True, text=True, check=True)
    assert shown.stdout.strip() == "False"
    monkeypatch.setattr(settings, "progress", True)
    run_workflow(configfile)
    assert envs[1] is None


def test_each_rule_reads_only_the_config_keys_it_declares(tmp_path: Path, monkeypatch):
    """Every rule took the whole config as its params, so changing any key (de_method, spatial_key) reran every rule,
    the per-sample scoring included. Each rule's params are now the keys it reads (`RULE_KEYS`), and it sees the
    defaults in place of the others: here each rule gets the whole config and must read no key it does not declare."""
    from types import SimpleNamespace

    from hcctme.pipeline import PipelineConfig
    from hcctme.workflow import _steps

    read: set[str] = set()

    class Recorded(PipelineConfig):
        def __getattribute__(self, name):
            if name in _steps.DEFAULTS and object.__getattribute__(self, "__dict__").get("_recording"):
                read.add(name)
            return object.__getattribute__(self, name)

    class RecordedDict(dict):
        def __getitem__(self, key):
            read.add(key)
            return super().__getitem__(key)

        def get(self, key, default=None):
            read.add(key)
            return super().get(key, default)

    def recorded_config(config):
        settings = Recorded(**{k: v for k, v in {**_steps.DEFAULTS, **config}.items() if k not in ("input", "outdir")})
        settings.__dict__["_recording"] = True
        return settings

    monkeypatch.setattr(_steps, "_config", recorded_config)
    monkeypatch.setattr(_steps, "_cfg", lambda smk: RecordedDict({**_steps.DEFAULTS, **smk.params.config}))
    adata = datasets.simulate_cohort(4, 80, n_genes=500, spatial=True, random_state=3)
    config = {**_KEYS, "input": str(tmp_path / "cohort.h5ad"), "counts_layer": "counts", "crosstalk": True,
              "genes_groups": ["Macrophages", "CD8+ T cells"], "de_method": "voom", "min_coverage": 0.4}
    smk = _rule_call(tmp_path, adata, config)
    for name in ("pooled", "diff", "per_sample", "compare"):  # the crosstalk and T+A rules' tables
        setattr(smk.output, name, str(tmp_path / f"{name}.tsv"))
    sample = _steps.sample_names(config)[0]
    split = SimpleNamespace(input=[config["input"]], output=[str(tmp_path / "sample.h5ad")],
                            wildcards=SimpleNamespace(sample=sample), params=smk.params)
    calls = {"split_sample": lambda: _steps.split_sample(split),
             "score_sample": lambda: _steps.score_sample(SimpleNamespace(**{**vars(split), "input": split.output,
                                                                            "output": [str(tmp_path / "s.h5ad")]}))}
    for rule in ("states", "pseudobulk", "crosstalk", "tib", "ta_response"):
        calls[rule] = lambda rule=rule: getattr(_steps, rule)(smk)
    for features in ("composition", "scores", "genes"):
        calls[f"compare_{features}"] = lambda features=features: _steps.compare(
            SimpleNamespace(**{**vars(smk), "wildcards": SimpleNamespace(features=features)}))
    assert set(calls) | {"profile"} == set(_steps.RULE_KEYS)
    for rule, call in calls.items():
        read.clear()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            call()
        assert read, rule  # the recording saw the rule read its config
        assert read <= set(_steps.RULE_KEYS[rule]), (rule, sorted(read - set(_steps.RULE_KEYS[rule])))
    assert set(_steps.RULE_KEYS["profile"]) == set(_steps.DEFAULTS) - {"outdir"}  # it records the whole config


def test_the_tutorials_include_recipe_runs_the_analysis_by_default(tmp_path: Path):
    """Sweep 63: tutorial 06's plain `include:` recipe made nothing the default target (Snakemake keeps the first
    rule of the including Snakefile, and there was none), so `snakemake --cores N` did nothing; its recipe now adds
    a default rule asking for the shipped `all`'s inputs. The recipe is read from the notebook itself."""
    import re

    notebook = Path(__file__).parents[2] / "tutorials" / "06_snakemake.ipynb"
    cells = json.loads(notebook.read_text())["cells"]
    markdown = "".join("".join(c["source"]) for c in cells if c["cell_type"] == "markdown")
    [recipe] = [b for b in re.findall(r"```python\n(.*?)```", markdown, flags=re.S) if "include: snakefile()" in b]
    datasets.simulate_cohort(4, 120, n_genes=1000, random_state=4).write_h5ad(tmp_path / "cohort.h5ad")
    (tmp_path / "Snakefile").write_text(recipe)
    (tmp_path / "config.yaml").write_text("input: cohort.h5ad\noutdir: results\ngenes: false\n")
    proc = subprocess.run([sys.executable, "-m", "snakemake", "--cores", "1", "--dry-run"], cwd=tmp_path,
                          capture_output=True, text=True)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-2000:]
    assert re.search(r"^report\s+1$", out, flags=re.M) and re.search(r"^score_sample\s+4$", out, flags=re.M), out
