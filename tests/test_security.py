"""Security: input files are data, never code.

* YAML is read with safe loading only: a signature file carrying a ``!!python/...`` tag is refused
  with a clear error and nothing it names is executed (library, tool and CLI entry points);
* the package never unpickles, evals or execs anything, nor runs a shell (checked on the syntax
  tree of every module, and on the Snakemake rules);
* the Snakemake config is validated against its schema: unknown keys and wrong types are refused.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
import yaml
from anndata import AnnData

import hcctme
from hcctme import cli, sig

PACKAGE = Path(hcctme.__file__).resolve().parent


# --------------------------------------------------------------------------------------------------
# YAML with python tags
# --------------------------------------------------------------------------------------------------
PAYLOADS = {
    "apply_os_system": '- !!python/object/apply:os.system ["touch {marker}"]\n',
    "new_subprocess": '- !!python/object/new:subprocess.check_call [["touch", "{marker}"]]\n',
    "tag_in_a_field": (
        "- id: EVIL\n  name: evil\n  collection: x\n  cell_context: any\n  species: human\n"
        '  genes_up: !!python/object/apply:os.system ["touch {marker}"]\n'
    ),
    "name_tag": "- id: !!python/name:os.system\n",
}


@pytest.fixture(params=list(PAYLOADS))
def evil_yaml(request, tmp_path: Path) -> tuple[Path, Path]:
    marker = tmp_path / "executed"
    path = tmp_path / "signatures" / "evil.yaml"
    path.parent.mkdir()
    path.write_text(PAYLOADS[request.param].format(marker=marker))
    return path, marker


def test_sig_load_refuses_python_tags(evil_yaml):
    path, marker = evil_yaml
    for source in (path, str(path), path.parent):  # a file, its path as text, its directory
        with pytest.raises(ValueError, match="not valid YAML"):
            sig.load(source)
    assert not marker.exists()


def test_score_and_cli_refuse_python_tags(evil_yaml, tmp_path: Path, capsys):
    path, marker = evil_yaml
    rng = np.random.default_rng(0)
    adata = AnnData(sp.csr_matrix(rng.poisson(1.0, (20, 30)).astype(np.float32)),
                    obs=pd.DataFrame(index=[f"c{i}" for i in range(20)]),
                    var=pd.DataFrame(index=[f"G{i}" for i in range(30)]))
    with pytest.raises(ValueError, match="not valid YAML"):
        hcctme.tl.score(adata, str(path))
    assert "hcctme_scores" not in adata.obsm
    h5ad = tmp_path / "in.h5ad"
    adata.write_h5ad(h5ad)
    code = cli.main(["score", str(h5ad), "--out", str(tmp_path / "out.h5ad"), "--signatures", str(path)])
    assert code != 0 and "not valid YAML" in capsys.readouterr().err
    assert not marker.exists() and not (tmp_path / "out.h5ad").exists()


def test_yaml_readers_only_use_the_safe_loader(tmp_path: Path, monkeypatch):
    """hcctme reads signature YAML with the safe loader and never with an unsafe one."""
    loaders = []
    load = yaml.load

    def spy(stream, Loader):
        loaders.append(Loader)
        return load(stream, Loader)

    monkeypatch.setattr(yaml, "load", spy)
    path = tmp_path / "sig.yaml"
    path.write_text("- id: MY_SIG\n  genes_up: [CD8A, CD8B, GZMB]\n")
    loaded = hcctme.sig.load(str(path))
    assert loaded.ids == ["MY_SIG"] and list(loaded["MY_SIG"].genes_up) == ["CD8A", "CD8B", "GZMB"]
    assert loaders and set(loaders) <= {yaml.SafeLoader, getattr(yaml, "CSafeLoader", yaml.SafeLoader)}


# --------------------------------------------------------------------------------------------------
# no unpickling, eval, exec or shell anywhere in the package
# --------------------------------------------------------------------------------------------------
FORBIDDEN_MODULES = {"pickle", "cPickle", "_pickle", "dill", "cloudpickle", "marshal", "shelve"}
FORBIDDEN_CALLS = {
    "eval", "exec", "__import__", "os.system", "os.popen", "yaml.unsafe_load", "yaml.full_load",
    "yaml.unsafe_load_all", "yaml.full_load_all", "pd.read_pickle", "pandas.read_pickle", "joblib.load",
    "torch.load",
}
SAFE_LOADERS = {"SafeLoader", "CSafeLoader", "yaml.SafeLoader", "yaml.CSafeLoader"}


def _dotted(node: ast.AST) -> str:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return f"{_dotted(node.value)}.{node.attr}"
    return ""


def _keyword(call: ast.Call, name: str) -> ast.AST | None:
    return next((k.value for k in call.keywords if k.arg == name), None)


def _problems(tree: ast.AST) -> list[str]:
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import | ast.ImportFrom):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module or ""]
            found += [f"imports {n}" for n in names if n.split(".")[0] in FORBIDDEN_MODULES]
        if not isinstance(node, ast.Call):
            continue
        name = _dotted(node.func)
        if name in FORBIDDEN_CALLS:
            found.append(f"calls {name}")
        if name.endswith(("yaml.load", "yaml.load_all")):
            loader = _keyword(node, "Loader") or (node.args[1] if len(node.args) > 1 else None)
            if loader is None or _dotted(loader) not in SAFE_LOADERS:
                found.append(f"calls {name} without a safe Loader")
        if name.endswith(("np.load", "numpy.load")):
            allow = _keyword(node, "allow_pickle")
            if isinstance(allow, ast.Constant) and allow.value:
                found.append("calls np.load(allow_pickle=True)")
        if name.startswith("subprocess.") or name in ("Popen", "check_call", "check_output", "call", "run"):
            shell = _keyword(node, "shell")
            if isinstance(shell, ast.Constant) and shell.value:
                found.append(f"calls {name}(shell=True)")
    return found


def test_no_unpickling_eval_exec_or_shell_in_the_package():
    modules = sorted(PACKAGE.rglob("*.py"))
    assert len(modules) > 20
    problems = {}
    for path in modules:
        found = _problems(ast.parse(path.read_text(encoding="utf-8"), filename=str(path)))
        if found:
            problems[str(path.relative_to(PACKAGE))] = found
    assert not problems, problems


def test_the_checker_catches_what_it_looks_for():
    code = ("import pickle\nimport yaml, subprocess\nyaml.load(open('x'))\nyaml.load(s, Loader=yaml.SafeLoader)\n"
            "eval('1')\nsubprocess.run('ls', shell=True)\nnp.load('x.npy', allow_pickle=True)\n")
    assert sorted(_problems(ast.parse(code))) == sorted([
        "imports pickle", "calls yaml.load without a safe Loader", "calls eval", "calls subprocess.run(shell=True)",
        "calls np.load(allow_pickle=True)",
    ])


def test_snakemake_rules_run_scripts_not_shell_commands():
    """Config values are never interpolated into shell commands: every rule runs a Python script."""
    workflow = PACKAGE / "workflow"
    texts = {p.name: p.read_text() for p in [workflow / "Snakefile", *sorted((workflow / "rules").glob("*.smk"))]}
    assert len(texts) >= 2
    for name, text in texts.items():
        assert not re.search(r"^\s*(shell|run)\s*:", text, flags=re.M), f"{name} has a shell:/run: directive"
        assert not re.search(r"\b(eval|exec)\s*\(|pickle|yaml\.load\(", text), name


# --------------------------------------------------------------------------------------------------
# Snakemake config schema
# --------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def validate():
    utils = pytest.importorskip("snakemake.utils")
    from hcctme.workflow import config_schema

    return lambda config: utils.validate(config, config_schema())


def test_example_config_is_valid_and_gets_defaults(validate):
    example = yaml.safe_load((PACKAGE / "workflow" / "config.example.yaml").read_text())
    validate(example)
    assert example["method"] == "ucell" and example["random_state"] == 0


@pytest.mark.parametrize("config, fragment", [
    ({"input": "x.h5ad", "unknwon_key": 1}, "unknwon_key"),
    ({"input": "x.h5ad", "random_state": "zero"}, "'zero' is not of type 'integer'"),
    ({"input": "x.h5ad", "genes": "yes"}, "is not of type 'boolean'"),
    ({"input": "x.h5ad", "method": "gsva"}, "'gsva' is not one of"),
    ({"input": ["a.h5ad"]}, "is not of type 'string'"),
    ({"outdir": "results"}, "'input' is a required property"),
])
def test_config_schema_refuses_bad_configs(validate, config, fragment):
    from snakemake_interface_common.exceptions import WorkflowError

    with pytest.raises(WorkflowError) as info:
        validate(config)
    assert fragment in str(info.value)


def test_schema_declares_the_draft_snakemake_validates_with():
    """snakemake validates with JSON Schema 2020-12 and warns about any other $schema."""
    schema = yaml.safe_load((PACKAGE / "workflow" / "schemas" / "config.schema.yaml").read_text())
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert schema["additionalProperties"] is False
