"""Backed input end to end: the reader, the pipeline reading matrices in chunks, results-only and full outputs."""

from pathlib import Path

import anndata as ad
import h5py
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
from anndata.abc import CSRDataset

from hcctme import _files, cli, datasets, get, pipeline, report
from hcctme._constants import COMPARE_KEYS, Keys
from hcctme.report import _build as report_build

KEYS = dict(sample_key="patient", condition_key="response", reference="responder", cell_type_key="cell_type")
RUN_ARGS = ["--sample-key", "patient", "--condition-key", "response", "--reference", "responder",
            "--cell-type-key", "cell_type", "--no-crosstalk", "--no-progress"]


@pytest.fixture(scope="module")
def cohort_file(tmp_path_factory) -> Path:
    adata = datasets.simulate_cohort(6, 160, n_genes=600, spatial=True, random_state=5)
    path = tmp_path_factory.mktemp("backed") / "cohort.h5ad"
    adata.write_h5ad(path)
    return path


def _whole_matrix_loads(monkeypatch) -> list[tuple[int, int]]:
    """Record every read of a whole backed sparse matrix (``to_memory`` of the dataset itself)."""
    from anndata._core import sparse_dataset as module

    loads: list[tuple[int, int]] = []
    original = module.BaseCompressedSparseDataset.to_memory

    def record(self):
        loads.append(self.shape)
        return original(self)

    monkeypatch.setattr(module.BaseCompressedSparseDataset, "to_memory", record)
    return loads


def test_backed_reader_keeps_the_layers_on_disk(cohort_file: Path):
    adata = _files.read_h5ad(cohort_file, backed=True)
    assert adata.isbacked
    assert isinstance(adata.layers["counts"], CSRDataset)  # anndata's own backed mode loads layers
    assert isinstance(adata.X, CSRDataset)
    memory = ad.read_h5ad(cohort_file)
    pd.testing.assert_frame_equal(adata.obs, memory.obs)
    np.testing.assert_array_equal(adata.obsm["spatial"], memory.obsm["spatial"])


def _run(adata: ad.AnnData) -> ad.AnnData:
    pipeline.run(adata, genes_groups=["Macrophages"], **KEYS)
    return adata


def test_pipeline_on_backed_input_never_loads_a_whole_matrix_and_matches_in_memory(cohort_file: Path, monkeypatch):
    loads = _whole_matrix_loads(monkeypatch)
    backed = _run(_files.read_h5ad(cohort_file, backed=True))
    assert loads == []
    memory = _run(_files.read_h5ad(cohort_file, backed=False))
    pd.testing.assert_frame_equal(backed.obsm[Keys.SCORES], memory.obsm[Keys.SCORES])
    assert (backed.obs[Keys.STATE].astype(str) == memory.obs[Keys.STATE].astype(str)).all()
    for key in COMPARE_KEYS.values():
        pd.testing.assert_frame_equal(get.compare(backed, key), get.compare(memory, key))
    assert set(get.compare(backed, COMPARE_KEYS["genes"])["group"]) == {"Macrophages"}
    pd.testing.assert_frame_equal(get.ta_response(backed, per_sample=True), get.ta_response(memory, per_sample=True))
    pd.testing.assert_frame_equal(get.profile(backed), get.profile(memory), check_exact=False, rtol=1e-9)
    pd.testing.assert_frame_equal(get.crosstalk(backed), get.crosstalk(memory))
    pd.testing.assert_frame_equal(get.tib(backed), get.tib(memory))


def test_cli_run_backed_writes_results_only_by_default(cohort_file: Path, tmp_path: Path):
    out = tmp_path / "run"
    assert cli.main(["run", str(cohort_file), "--out", str(out), "--backed", "--genes-groups", "Macrophages",
                     *RUN_ARGS]) == 0
    results = ad.read_h5ad(out / "hcctme.h5ad")
    assert set(get.compare(results, COMPARE_KEYS["genes"])["group"]) == {"Macrophages"}
    assert results.shape == (960, 600)
    assert results.X is None and len(results.layers) == 0 and results.raw is None
    assert Keys.SCORES in results.obsm and Keys.STATE in results.obs
    assert len(get.compare(results, COMPARE_KEYS["scores"])) > 0
    html = report.build(results, tmp_path / "again.html")
    assert Path(html).stat().st_size > 0
    manifest = _files.read_manifest(out)
    assert manifest["h5ad_contents"] == "results"
    with h5py.File(out / "hcctme.h5ad", "r") as handle:  # no matrix stored at all, not even an empty one
        assert "X" not in handle and "raw" not in handle and len(handle.get("layers", {})) == 0


@pytest.mark.parametrize("backed", [True, False])
def test_write_full_copies_every_matrix(cohort_file: Path, tmp_path: Path, backed: bool):
    adata = _files.read_h5ad(cohort_file, backed=backed)
    adata.obs["mark"] = np.arange(adata.n_obs)
    path = _files.write_results_h5ad(adata, tmp_path / "full.h5ad", full=True)
    full, source = ad.read_h5ad(path), ad.read_h5ad(cohort_file)
    assert (full.X != source.X).nnz == 0
    assert (full.layers["counts"] != source.layers["counts"]).nnz == 0
    assert (full.obs["mark"].to_numpy() == np.arange(adata.n_obs)).all()
    assert list(tmp_path.iterdir()) == [path]


def test_an_interrupted_write_leaves_no_output_under_its_final_name(cohort_file: Path, tmp_path: Path, monkeypatch):
    adata = _files.read_h5ad(cohort_file, backed=True)

    def fail(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(_files, "_copy_matrices", fail)
    with pytest.raises(KeyboardInterrupt):
        _files.write_results_h5ad(adata, tmp_path / "full.h5ad", full=True)
    assert list(tmp_path.iterdir()) == []
    out = tmp_path / "run"
    monkeypatch.setattr(report_build, "write", fail)  # the pipeline writes its report through _build.write
    with pytest.raises(KeyboardInterrupt):
        pipeline.write_outputs(adata, out)
    assert list(tmp_path.iterdir()) == []


def test_a_file_larger_than_memory_is_refused_in_memory_and_read_backed_by_default(cohort_file: Path,
                                                                                   monkeypatch, capsys,
                                                                                   tmp_path: Path):
    sizes = _files.matrix_layout(cohort_file)
    total = sum(size for _, size in sizes.values())
    assert set(sizes) == {"X", "layers/counts"} and sizes["X"][0] == "csr_matrix"
    monkeypatch.setattr(_files, "available_memory", lambda: total // 2)
    with pytest.raises(ValueError, match=r"only 0\.0 GiB of memory is available: open it backed \(hcctme run --backed"):
        _files.read_h5ad(cohort_file, backed=False)
    assert _files.read_h5ad(cohort_file, backed=None).isbacked
    monkeypatch.setattr(_files, "available_memory", lambda: total * 100)
    assert not _files.read_h5ad(cohort_file, backed=None).isbacked
    monkeypatch.setattr(_files, "available_memory", lambda: total // 2)
    out = tmp_path / "run"
    assert cli.main(["run", str(cohort_file), "--out", str(out), "--in-memory", *RUN_ARGS]) == cli.EXIT_USAGE
    assert "open it backed" in capsys.readouterr().err
    assert not out.exists()


def test_a_backed_csc_matrix_is_refused_with_the_conversion(tmp_path: Path, capsys):
    counts = sp.random(50, 20, density=0.3, format="csc", random_state=0, dtype=np.float32)
    path = tmp_path / "csc.h5ad"
    ad.AnnData(X=counts, layers={"counts": counts.tocsr()}).write_h5ad(path)
    with pytest.raises(ValueError, match=r"stores X as CSC .* adata\.X = adata\.X\.tocsr\(\)"):
        _files.read_h5ad(path, backed=True)
    assert sp.issparse(_files.read_h5ad(path, backed=False).X)  # in memory, CSC is fine
    out = tmp_path / "run"
    assert cli.main(["run", str(path), "--out", str(out), "--backed"]) == cli.EXIT_USAGE
    assert "CSC" in capsys.readouterr().err


@pytest.mark.parametrize("layer", [None, "counts"])
def test_self_training_reads_a_backed_population_in_chunks_with_the_same_components(cohort_file: Path, layer):
    from hcctme._constants import STATE_SELFTRAIN_HVG_MARGIN
    from hcctme.tl import _state_expression as state_expression
    from hcctme.tl import _state_params as state_params

    backed, memory = _files.read_h5ad(cohort_file, backed=True), ad.read_h5ad(cohort_file)
    rows = np.flatnonzero(memory.obs["cell_type"].astype(str).isin(["Macrophages", "Monocytes"]).to_numpy())
    params = state_params.SelfTrainParams(n_hvgs=50)  # 50 + the margin < 600 genes: the pre-selection matters
    source = backed.layers[layer] if layer else backed.X
    samples = memory.obs["patient"].astype(str).to_numpy()[rows]  # genes ranked by within-sample variance
    chunked, panel, _ = state_expression.log_expression_chunked(source, rows, params, samples, chunk_size=37)
    assert panel is None
    whole = state_expression.log_expression((memory.layers[layer] if layer else memory.X)[rows])
    whole.sort_indices()  # as call_states reads it (name-ordered, sorted); the chunked read sorts each row too
    assert chunked.shape == (len(rows), 50 + STATE_SELFTRAIN_HVG_MARGIN)
    np.testing.assert_array_equal(state_expression.principal_components(chunked, params, samples),
                                  state_expression.principal_components(whole, params, samples))


def test_chunked_candidates_ranked_on_the_clean_rows_serve_the_self_training_of_those_rows(cohort_file: Path):
    """call_states reads a population's rows, artefact cells included, and self-trains on the clean ones."""
    from hcctme.tl import _state_expression as state_expression
    from hcctme.tl import _state_params as state_params

    backed, memory = _files.read_h5ad(cohort_file, backed=True), ad.read_h5ad(cohort_file)
    rows = np.flatnonzero(memory.obs["cell_type"].astype(str).isin(["Macrophages", "Monocytes"]).to_numpy())
    clean = np.arange(rows.size) % 3 != 0
    params = state_params.SelfTrainParams(n_hvgs=50)
    samples = memory.obs["patient"].astype(str).to_numpy()[rows]
    chunked, _, kept = state_expression.log_expression_chunked(backed.X, rows, params, samples, ranked=clean,
                                                               chunk_size=37)
    whole = state_expression.log_expression(memory.X[rows])
    assert chunked.shape == (rows.size, kept.size) and (chunked != whole[:, kept]).nnz == 0
    np.testing.assert_array_equal(state_expression.principal_components(chunked[clean], params, samples[clean]),
                                  state_expression.principal_components(whole[clean], params, samples[clean]))
    _, _, kept_all = state_expression.log_expression_chunked(backed.X, rows, params, samples, chunk_size=37)
    assert not np.array_equal(kept, kept_all)  # ranked on every row, the candidates differ


def test_cli_score_backed_writes_the_full_file_without_loading_it(cohort_file: Path, tmp_path: Path, monkeypatch):
    loads = _whole_matrix_loads(monkeypatch)
    out = tmp_path / "scored.h5ad"
    assert cli.main(["score", str(cohort_file), "--out", str(out), "--backed", "--no-progress"]) == 0
    assert loads == []
    scored, source = ad.read_h5ad(out), ad.read_h5ad(cohort_file)
    assert Keys.SCORES in scored.obsm and (scored.layers["counts"] != source.layers["counts"]).nnz == 0


def test_cli_states_and_compare_read_backed(cohort_file: Path, tmp_path: Path, monkeypatch):
    scored = tmp_path / "scored.h5ad"
    assert cli.main(["score", str(cohort_file), "--out", str(scored), "--no-progress"]) == 0
    loads = _whole_matrix_loads(monkeypatch)
    states = tmp_path / "states.h5ad"
    assert cli.main(["states", str(scored), "--out", str(states), "--cell-type-key", "cell_type",
                     "--sample-key", "patient", "--backed"]) == 0
    table = tmp_path / "composition.tsv"
    assert cli.main(["compare", str(states), "--out", str(table), "--features", "composition", "--groupby",
                     Keys.STATE, "--parent-key", "cell_type", "--backed"]) == 0
    assert loads == []
    assert Keys.STATE in ad.read_h5ad(states).obs
    assert pd.read_csv(table, sep="\t")["pvalue"].between(0, 1).all()


def test_group_sums_reads_blocks_and_leaves_out_negative_codes():
    from hcctme import _validate

    X = sp.random(23, 7, density=0.4, format="csr", random_state=1, dtype=np.float32)
    codes = np.array([0, 1, 2, -1] * 5 + [2, 2, 0])
    sums = _validate.group_sums(X, codes, 3, columns=[6, 0, 3], chunk_size=4)
    dense = X.toarray().astype(np.float64)[:, [6, 0, 3]]
    expected = np.vstack([dense[codes == g].sum(axis=0) for g in range(3)])
    np.testing.assert_allclose(sums, expected, rtol=1e-12)
    assert [(start, stop) for start, stop, _ in _validate.row_blocks(X, chunk_size=10)] == [(0, 10), (10, 20), (20, 23)]


def _states_memory_module():
    import importlib.util

    path = Path(__file__).resolve().parents[1] / "benchmarks" / "states_memory.py"
    spec = importlib.util.spec_from_file_location("states_memory", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_states_memory_benchmark_reports_the_peak_and_where_it_was(cohort_file: Path, capsys):
    module = _states_memory_module()
    module.main([str(cohort_file), "--sample-key", "patient", "--cell-type-key", "cell_type", "--every", "0.1"])
    out = capsys.readouterr().out
    assert "score: " in out and "states: " in out and "resident before the steps: " in out
    peak = float(out.split("peak ")[-1].split(" GB")[0])
    assert 0.05 < peak < 20.0
    assert "seconds  GB  innermost hcctme frame" in out
    assert "pipeline.py" in out  # the stack names the step that ran


def test_states_memory_benchmark_names_the_step_when_the_process_was_already_larger(cohort_file: Path, capsys,
                                                                                   monkeypatch):
    # A test run or a notebook may hold more memory than the steps add, so the resident size stays flat: the peak
    # must still be one sampled while hcctme code ran (it once was the first sample, taken before any step began).
    module = _states_memory_module()

    class FlatProcess:
        def memory_info(self):
            return type("Info", (), {"rss": 3 * 10**9})()

    monkeypatch.setattr(module.psutil, "Process", FlatProcess)
    module.main([str(cohort_file), "--sample-key", "patient", "--cell-type-key", "cell_type"])
    out = capsys.readouterr().out
    stack = out.split("peak 3.00 GB in:")[1].split("seconds  GB")[0]
    assert "pipeline.py" in stack and "run_step" in stack


def test_states_memory_benchmark_says_when_no_sample_fell_inside_hcctme(cohort_file: Path, capsys, monkeypatch):
    module = _states_memory_module()
    monkeypatch.setattr(module, "hcctme_frames", lambda thread_id: [])
    module.main([str(cohort_file), "--sample-key", "patient", "--cell-type-key", "cell_type"])
    out = capsys.readouterr().out
    assert "no sample was taken inside hcctme code" in out and "peak 0.00 GB in:" not in out


def test_a_view_of_a_backed_anndata_is_refused_before_any_work_with_the_fix(cohort_file: Path, tmp_path: Path):
    """anndata cannot write into (or copy without a file name) a subset of a backed file: every tool that writes
    refuses it up front (it used to compute, then fail in anndata asking for a .copy(filename=) never called)."""
    from hcctme import pp, tl

    backed = ad.read_h5ad(cohort_file, backed="r")
    view = backed[backed.obs["patient"] != backed.obs["patient"].iloc[0]]
    calls = {"score": lambda: tl.score(view), "harmonize_genes": lambda: pp.harmonize_genes(view),
             "call_states": lambda: tl.call_states(view, cell_type_key="cell_type"),
             "crosstalk": lambda: tl.crosstalk(view, groupby="cell_type"),
             "ta_response": lambda: tl.ta_response(view, sample_key="patient"),
             "tib": lambda: tl.tib(view, sample_key="patient"),
             "pipeline": lambda: pipeline.run(view, **KEYS)}
    before = set(view.uns)
    for name, call in calls.items():
        with pytest.raises(ValueError, match=r"view of a backed AnnData.*to_memory\(\)"):
            call()
        assert set(view.uns) == before and view.is_view, name
    subset = view.to_memory()  # the first fix the message names
    tl.score(subset, ["TREG"])
    assert get.scores(subset).shape == (view.n_obs, 1)
    view.copy(filename=tmp_path / "subset.h5ad")  # the second
    on_disk = ad.read_h5ad(tmp_path / "subset.h5ad", backed="r")
    tl.score(on_disk, ["TREG"])
    assert get.scores(on_disk).shape == (view.n_obs, 1)


@pytest.fixture(scope="module")
def analysed_file(cohort_file: Path, tmp_path_factory) -> Path:
    adata = _run(ad.read_h5ad(cohort_file))
    path = tmp_path_factory.mktemp("backed_analysed") / "analysed.h5ad"
    adata.write_h5ad(path)
    return path


def _copy_calls() -> dict:
    from hcctme import pp, tl

    condition = {"sample_key": "patient", "condition_key": "response", "reference": "responder"}
    return {
        "hcctme.pp.harmonize_genes": lambda a: pp.harmonize_genes(a, copy=True),
        "hcctme.tl.score": lambda a: tl.score(a, copy=True),
        "hcctme.tl.call_states": lambda a: tl.call_states(a, cell_type_key="cell_type", sample_key="patient",
                                                          key_added="calls", copy=True),
        "hcctme.tl.compare": lambda a: tl.compare(a, **condition, key_added="cmp", copy=True),
        "hcctme.tl.ta_response": lambda a: tl.ta_response(a, **condition, key_added="ta", copy=True),
        "hcctme.tl.crosstalk": lambda a: tl.crosstalk(a, groupby="cell_type", sample_key="patient", copy=True),
        "hcctme.tl.tib": lambda a: tl.tib(a, sample_key="patient", key_added="tib2", copy=True),
        "hcctme.tl.enrich": lambda a: tl.enrich(a, compare_key=COMPARE_KEYS["genes"], key_added="enr", copy=True),
        "hcctme.tl.resistance_profile": lambda a: tl.resistance_profile(a, **condition, key_added="prof",
                                                                        copy=True),
    }


@pytest.mark.parametrize("tool", list(_copy_calls()))
def test_copy_of_a_backed_anndata_is_refused_by_every_tool_before_any_work(analysed_file: Path, tool: str):
    adata = _files.read_h5ad(analysed_file, backed=True)
    obs, uns_keys, var = adata.obs.copy(), set(adata.uns), adata.var.copy()
    with pytest.raises(ValueError, match=rf"copy=True would load the whole backed matrix.*call {tool}\(adata\)"):
        _copy_calls()[tool](adata)
    pd.testing.assert_frame_equal(adata.obs, obs)
    pd.testing.assert_frame_equal(adata.var, var)
    assert set(adata.uns) == uns_keys
