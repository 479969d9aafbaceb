"""The API reference site builds offline with warnings as errors (what ``make docs`` runs)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

import hcctme as ht

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"

pytest.importorskip("sphinx")
pytest.importorskip("myst_nb")


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("docs")
    proc = subprocess.run(
        [sys.executable, "-m", "sphinx", "-W", "--keep-going", "-q", "-b", "html", "-d", str(out / "doctrees"),
         str(DOCS), str(out / "html")],
        capture_output=True, text=True, timeout=600,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return out / "html"


@pytest.mark.slow
def test_contract_and_api_pages(site):
    index = (site / "index.html").read_text(encoding="utf-8")
    assert "The results contract" in index and "key_added" in index
    api = (site / "api.html").read_text(encoding="utf-8")
    for name in ("hcctme.tl.score", "hcctme.get.compare", "hcctme.get.params", "hcctme.pl.tib"):
        assert name in api
    assert (site / "api" / "generated" / "hcctme.get.crosstalk.html").is_file()


@pytest.mark.slow
def test_one_page_per_signature_family_with_citations(site):
    listing = ht.sig.list()
    for collection, members in listing.groupby("collection"):
        page = (site / "generated" / f"signatures_{collection}.html").read_text(encoding="utf-8")
        for sig_id in members["id"]:
            assert sig_id in page
        first = ht.sig.get(members["id"].iloc[0])
        assert (first.source.get("pmid") or first.citation or "")[:20] in page


@pytest.mark.slow
def test_knowledge_base_page_and_tutorials(site):
    page = (site / "generated" / "kb.html").read_text(encoding="utf-8")
    axes = ht.kb.axes()
    for axis in axes["axis"].unique():
        assert f"{axis}:" in page
    assert str(axes["pmid"].iloc[0]) in page
    notebooks = sorted(p.stem for p in (DOCS.parent / "tutorials").glob("*.ipynb"))
    assert notebooks and all((site / "generated" / f"{name}.html").is_file() for name in notebooks)


def test_the_api_reference_lists_every_public_function():
    """docs/api.md left out kb.axis_pairs, kb.load, sig.library_dir and pipeline.write_outputs (sweep 60)."""
    import importlib
    import inspect

    text = (Path(__file__).parents[1] / "docs" / "api.md").read_text()
    missing = []
    for name in ("pp", "tl", "get", "pl", "sig", "kb", "datasets", "report", "pipeline"):
        module = importlib.import_module(f"hcctme.{name}")
        public = getattr(module, "__all__", [n for n in dir(module) if not n.startswith("_")])
        for attr in public:
            obj = getattr(module, attr)
            if inspect.isfunction(obj) and obj.__module__.startswith("hcctme") and f"   {name}.{attr}\n" not in text:
                missing.append(f"{name}.{attr}")
    assert not missing, f"docs/api.md lacks {missing}"


def _documented_parameters(doc: str) -> list[str] | None:
    """The names under a numpydoc "Parameters" header (``a, b`` lines split), or None without one."""
    lines = doc.splitlines()
    for i, line in enumerate(lines[:-1]):
        if line.strip() == "Parameters" and set(lines[i + 1].strip()) == {"-"}:
            names = []
            for entry in lines[i + 2:]:
                if entry.strip() and not entry.startswith(" "):
                    if set(entry.strip()) == {"-"}:  # the next section's underline: its header was no name
                        names.pop()
                        break
                    names += [n.strip() for n in entry.split(" : ")[0].split(",")]
            return names
    return None


def test_every_public_function_documents_exactly_its_parameters():
    """19 of 46 public functions had no Parameters section (sweep 60); each section must match its signature."""
    import importlib
    import inspect

    wrong = []
    for name in ("pp", "tl", "get", "pl", "sig", "kb", "datasets", "report", "pipeline"):
        module = importlib.import_module(f"hcctme.{name}")
        for attr in module.__all__:
            func = getattr(module, attr)
            if not (inspect.isfunction(func) and func.__module__.startswith("hcctme")):
                continue
            params = inspect.signature(func).parameters.values()
            named = [p.name for p in params if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)]
            documented = _documented_parameters(inspect.getdoc(func) or "")
            if (documented is None and named) or (
                    documented is not None and [n for n in documented if not n.startswith("*")] != named):
                wrong.append(f"{name}.{attr}: {documented} vs {named}")
    assert not wrong, wrong


class _ParsedError(Exception):
    """Raised once a benchmark's arguments parsed: the test stops before any work."""


def _documented_benchmark_commands() -> list[str]:
    texts = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
    found = {c for path in texts for c in re.findall(r"`python (benchmarks/\w+\.py[^`]*)`", path.read_text())}
    return sorted(found)


@pytest.mark.parametrize("command", _documented_benchmark_commands())
def test_documented_benchmark_commands_parse(command: str, monkeypatch):
    """Two README pipeline_bench commands lacked the required --out (sweep 62): each documented command's
    arguments must parse (placeholders DIR and FILE stand for paths)."""
    import argparse
    import runpy
    import shlex

    script, *args = shlex.split(command)
    original = argparse.ArgumentParser.parse_args

    def parse_then_stop(self, *a, **kw):
        original(self, *a, **kw)
        raise _ParsedError

    monkeypatch.setattr(argparse.ArgumentParser, "parse_args", parse_then_stop)
    monkeypatch.setattr(sys, "argv", [script, *args])
    module = runpy.run_path(str(ROOT / script), run_name="documented_command")
    with pytest.raises(_ParsedError):
        module["main"]()
