"""The hcctme command: knowledge commands, single steps, error messages and exit codes."""

from pathlib import Path

import pandas as pd

from hcctme import cli, datasets, sig
from hcctme._labels import map_from_table


def run(capsys, *argv):
    code = cli.main(list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err


def test_signatures_list_show_export(capsys, tmp_path: Path):
    code, out, _ = run(capsys, "signatures", "list")
    assert code == 0 and "TAM2_SPP1" in out and "PMID" in out
    code, out, _ = run(capsys, "signatures", "list", "--context", "macrophage")
    assert code == 0 and "TAM2_SPP1" in out and "CD8_TEX_TERMINAL" not in out
    code, out, _ = run(capsys, "signatures", "show", "TAM2_SPP1")
    assert code == 0 and "SPP1" in out and "genes_up" in out
    gmt = tmp_path / "lib.gmt"
    code, out, _ = run(capsys, "signatures", "export", "--format", "gmt", "--out", str(gmt))
    assert code == 0 and gmt.exists()
    assert sig.load(str(gmt)).ids[:3] == [s if not sig.get(s).genes_down else f"{s}_UP" for s in sig.library().ids[:3]]
    code, out, _ = run(capsys, "signatures", "export", "--format", "net", "TAM2_SPP1")
    net = pd.read_csv(pd.io.common.StringIO(out), sep="\t")
    assert set(net["source"]) == {"TAM2_SPP1"} and "SPP1" in set(net["target"])


def test_signatures_list_refuses_an_unknown_context_and_export_a_data_file_as_out(capsys, tmp_path: Path):
    """An unknown --context printed an empty pandas frame with exit 0; export replaced an .h5ad given as --out."""
    code, _, err = run(capsys, "signatures", "list", "--context", "CD8_T")
    assert code == 2 and "no signature has cell_context='CD8_T'" in err and "cd8_t" in err
    data = tmp_path / "cohort.h5ad"
    datasets.simulate_cohort(4, 50, n_genes=300, random_state=0).write_h5ad(data)
    before = data.read_bytes()
    code, _, err = run(capsys, "signatures", "export", "--out", str(data))
    assert code == 2 and "existing h5ad data file" in err and data.read_bytes() == before
    gmt = tmp_path / "lib.gmt"
    gmt.write_text("old\tcontent\n")
    code, _, _ = run(capsys, "signatures", "export", "--out", str(gmt))  # a text file is replaced, as before
    assert code == 0 and "TAM2_SPP1" in gmt.read_text()


def test_axes_and_therapies(capsys):
    code, out, _ = run(capsys, "axes")
    assert code == 0 and "SPP1" in out and "CD44" in out
    code, out, _ = run(capsys, "axes", "--therapies")
    assert code == 0 and "atezolizumab" in out.lower()
    header = out.splitlines()[0].split()
    assert header[:4] == ["axis", "therapy", "tier", "status"] and {"fda", "ema", "nmpa", "trial", "nct"} <= set(header)
    assert "IMbrave150" in out and "NCT03434379" in out
    code, out, _ = run(capsys, "axes", "--therapies", "--setting", "tace")
    assert code == 0 and "EMERALD-1" in out and "IMbrave150" not in out
    code, out, _ = run(capsys, "axes", "--setting", "haic")
    assert code == 0 and "PRMT3" in out and "SPP1" not in out
    code, out, _ = run(capsys, "axes", "--therapies", "--axis", "TIGIT")
    assert code == 0 and "NCT05904886" in out and "negative" in out
    code, _, err = run(capsys, "axes", "--axis", "NOPE")
    assert code == cli.EXIT_USAGE and "NOPE" in err
    code, out, _ = run(capsys, "axes", "--therapies", "--axis", "TIB", "--setting", "tace")  # sweep 61
    assert code == 0 and out.strip() == "no therapy matches --axis TIB --setting tace"


def test_unknown_signature_is_a_clear_error(capsys):
    code, _, err = run(capsys, "signatures", "show", "NOPE")
    assert code == cli.EXIT_USAGE and "NOPE" in err and "hcctme.sig.list()" in err


def test_missing_input_file(capsys, tmp_path: Path):
    code, _, err = run(capsys, "score", str(tmp_path / "missing.h5ad"), "--out", str(tmp_path / "o.h5ad"))
    assert code == cli.EXIT_USAGE and "does not exist" in err


def test_output_may_not_overwrite_input(capsys, tmp_path: Path):
    path = tmp_path / "in.h5ad"
    path.write_text("x")
    code, _, err = run(capsys, "score", str(path), "--out", str(path))
    assert code == cli.EXIT_USAGE and "is the input file" in err
    assert path.read_text() == "x"


def test_bad_context_map_syntax(capsys, tmp_path: Path):
    adata = datasets.simulate_cohort(4, 60, n_genes=600, random_state=1)
    path = tmp_path / "c.h5ad"
    adata.write_h5ad(path)
    code, _, err = run(capsys, "states", str(path), "--out", str(tmp_path / "s.h5ad"),
                       "--cell-type-key", "cell_type", "--context-map", "Macrophages")
    assert code == cli.EXIT_USAGE and "LABEL=CONTEXT" in err


def test_score_then_states_then_compare_on_files(capsys, tmp_path: Path):
    adata = datasets.simulate_cohort(6, 200, n_genes=800, random_state=2)
    src = tmp_path / "cohort.h5ad"
    adata.write_h5ad(src)
    before = src.read_bytes()
    scored, states, table = tmp_path / "scored.h5ad", tmp_path / "states.h5ad", tmp_path / "cmp.tsv"
    assert run(capsys, "score", str(src), "--out", str(scored))[0] == 0
    assert run(capsys, "states", str(scored), "--out", str(states), "--cell-type-key", "cell_type",
               "--sample-key", "patient")[0] == 0
    assert run(capsys, "compare", str(states), "--out", str(table), "--features", "composition",
               "--groupby", "hcctme_state", "--parent-key", "cell_type", "--min-cells", "5")[0] == 0
    result = pd.read_csv(table, sep="\t")
    assert {"feature", "group", "effect", "pvalue", "padj"} <= set(result.columns)
    assert src.read_bytes() == before


def test_crosstalk_takes_the_options_its_messages_name(capsys, tmp_path: Path):
    adata = datasets.simulate_cohort(4, 50, n_genes=600, random_state=3)
    src, table = tmp_path / "small.h5ad", tmp_path / "ct.tsv"
    adata.write_h5ad(src)
    code, _, err = run(capsys, "crosstalk", str(src), "--out", str(table), "--groupby", "cell_type",
                       "--sample-key", "patient", "--min-cells", "500")
    assert code == 2 and "lower min_cells" in err
    assert run(capsys, "crosstalk", str(src), "--out", str(table), "--groupby", "cell_type", "--sample-key",
               "patient", "--min-cells", "2", "--expr-prop", "0.2", "--axes-only")[0] == 0
    result = pd.read_csv(table, sep="\t")
    assert len(result) and result["axis"].notna().all()  # --axes-only kept the axis interactions only
    # --condition-key alone: the reference defaults to 'responder' as in hcctme run and compare (it was None)
    code, _, _ = run(capsys, "crosstalk", str(src), "--out", str(table), "--groupby", "cell_type", "--sample-key",
                     "patient", "--min-cells", "2", "--axes-only", "--condition-key", "response", "--min-samples", "1")
    assert code == 0
    assert set(pd.read_csv(table, sep="\t")["reference"]) == {"responder"}


def test_crosstalk_reads_its_input_backed_as_the_other_steps_do(capsys, tmp_path: Path, monkeypatch):
    """Sweep 63: `hcctme crosstalk` had no --backed / --in-memory and read the whole file always: a file larger than
    the available memory was refused with a message telling the user to open it backed, which it could not."""
    from hcctme import _files, tl

    src = tmp_path / "small.h5ad"
    datasets.simulate_cohort(4, 50, n_genes=600, random_state=3).write_h5ad(src)
    argv = ["crosstalk", str(src), "--groupby", "cell_type", "--sample-key", "patient", "--min-cells", "2",
            "--axes-only", "--out"]
    backed: list[bool] = []
    crosstalk = tl.crosstalk
    monkeypatch.setattr(tl, "crosstalk", lambda adata, **kw: (backed.append(adata.isbacked), crosstalk(adata, **kw))[1])
    tables = {flag: tmp_path / f"{flag.strip('-')}.tsv" for flag in ("--in-memory", "--backed")}
    for flag, table in tables.items():
        assert run(capsys, *argv, str(table), flag)[0] == 0
    assert backed == [False, True]
    on_disk, in_memory = (pd.read_csv(table, sep="\t") for table in tables.values())
    pd.testing.assert_frame_equal(on_disk, in_memory)
    # memory smaller than the matrices: read backed by default, refused in memory (the message names --backed)
    total = sum(size for _, size in _files.matrix_layout(src).values())
    monkeypatch.setattr(_files, "available_memory", lambda: total // 2)
    assert run(capsys, *argv, str(tmp_path / "auto.tsv"))[0] == 0 and backed[-1]
    code, _, err = run(capsys, *argv, str(tmp_path / "refused.tsv"), "--in-memory")
    assert code == cli.EXIT_USAGE and "open it backed (hcctme run --backed" in err


def test_states_with_a_context_map_file(capsys, tmp_path: Path):
    import anndata as ad

    from hcctme import tl

    adata = datasets.simulate_cohort(4, 60, n_genes=600, random_state=1)
    tl.score(adata)
    adata.obs["cell_type"] = adata.obs["cell_type"].astype(str).replace({"Macrophages": "Cluster 7"})
    src, out, mapping = tmp_path / "in.h5ad", tmp_path / "states.h5ad", tmp_path / "map.yaml"
    adata.write_h5ad(src)
    mapping.write_text("Cluster 7: macrophage\n")
    code, _, err = run(capsys, "states", str(src), "--out", str(out), "--cell-type-key", "cell_type",
                       "--context-map", str(mapping), "--context-map", "Hepatocytes=unassigned")
    assert code == 0, err
    used = map_from_table(ad.read_h5ad(out).uns["hcctme_state_params"]["mapping"])
    assert used["Cluster 7"] == "macrophage" and used["Hepatocytes"] == "unassigned"


def test_score_harmonises_gene_symbols_first(capsys, tmp_path: Path):
    import anndata as ad

    adata = datasets.simulate_cohort(4, 60, n_genes=600, random_state=1)
    adata.var["feature_name"] = adata.var_names.astype(str)
    adata.var_names = [f"ENSG{i:011d}" for i in range(adata.n_vars)]
    src, out = tmp_path / "cellxgene.h5ad", tmp_path / "scored.h5ad"
    adata.write_h5ad(src)
    code, _, err = run(capsys, "score", str(src), "--out", str(out), "--signatures", "TAM2_SPP1,CD8_TEFF")
    assert code == cli.EXIT_USAGE and "harmonize_genes" in err  # without the option: the message names the fix
    code, _, err = run(capsys, "score", str(src), "--out", str(out), "--signatures", "TAM2_SPP1,CD8_TEFF",
                       "--gene-symbols", "feature_name")
    assert code == 0, err
    assert list(ad.read_h5ad(out).obsm["hcctme_scores"].columns) == ["TAM2_SPP1", "CD8_TEFF"]


def test_states_on_an_unscored_file_names_the_command_that_scores_it(capsys, tmp_path: Path):
    adata = datasets.simulate_cohort(4, 60, n_genes=600, random_state=1)
    path = tmp_path / "unscored.h5ad"
    adata.write_h5ad(path)
    code, _, err = run(capsys, "states", str(path), "--out", str(tmp_path / "s.h5ad"), "--cell-type-key", "cell_type")
    assert code == cli.EXIT_USAGE and "hcctme score input.h5ad --out scored.h5ad" in err
    assert not (tmp_path / "s.h5ad").exists()


def test_workflow_passes_what_follows_the_separator_to_snakemake(tmp_path: Path, monkeypatch):
    """Only the leading `--` is the separator (every `--` was dropped, a later one meant for snakemake too)."""
    import hcctme.workflow

    calls = []
    monkeypatch.setattr(hcctme.workflow, "run_workflow", lambda *a, **kw: calls.append(kw["extra_args"]) or 0)
    assert cli.main(["workflow", "--configfile", str(tmp_path / "c.yaml"), "--", "--dry-run", "--", "x"]) == 0
    assert calls == [["--dry-run", "--", "x"]]


def test_a_reader_that_stops_early_ends_the_command_quietly():
    """`hcctme signatures list | head -1` printed "error: [Errno 32] Broken pipe" and exited 1."""
    import subprocess
    import sys

    code = "import sys; from hcctme.cli import main; sys.exit(main(sys.argv[1:]))"
    for argv in (["signatures", "list"], ["axes", "--therapies"]):
        proc = subprocess.Popen([sys.executable, "-c", code, *argv], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        proc.stdout.close()  # a reader gone before the first line (`head -0`), so every write meets a closed pipe
        err = proc.stderr.read().decode()
        proc.stderr.close()
        assert proc.wait() == 0 and "Broken pipe" not in err, (argv, err)


def test_layer_x_names_the_counts_in_x(capsys, tmp_path: Path):
    """`hcctme compare --features genes` on a file whose raw counts are in .X could not run: --layer defaults to
    counts and every value was read as a layer name, while the error advised layer=None, a Python-only fix."""
    adata = datasets.simulate_cohort(4, 60, n_genes=400, random_state=1)
    adata.X = adata.layers.pop("counts")
    path = tmp_path / "counts_in_x.h5ad"
    adata.write_h5ad(path)
    argv = ["compare", str(path), "--condition-key", "response", "--sample-key", "patient", "--reference",
            "responder", "--features", "genes", "--out", str(tmp_path / "genes.tsv")]
    code, _, err = run(capsys, *argv)
    assert code == cli.EXIT_USAGE and "on the command line, --layer X" in err
    code, _, _ = run(capsys, *argv, "--layer", "X")
    assert code == 0 and len(pd.read_csv(tmp_path / "genes.tsv", sep="\t")) > 0
