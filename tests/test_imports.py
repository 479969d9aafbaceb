"""The package's import graph: no module imports a higher layer, and no two modules import each other.

Layers, bottom to top: _constants -> _validate -> sig -> pp -> tl -> pl -> report -> pipeline -> cli/workflow.
Every ``import``/``from ... import`` in every module counts, including those inside functions (a
function-level import hides a cycle from Python at import time, not from a reader).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import hcctme

ROOT = Path(hcctme.__file__).resolve().parent

# module prefix -> layer; the longest matching prefix wins
LAYERS: dict[str, int] = {
    "hcctme._constants": 0,
    "hcctme._logging": 0,
    "hcctme._settings": 0,
    "hcctme._version": 0,
    "hcctme._labels": 0,
    "hcctme._validate": 1,
    "hcctme._files": 1,
    "hcctme.get": 1,
    "hcctme.sig": 2,
    "hcctme.kb": 3,
    "hcctme.pp": 3,
    "hcctme.datasets": 4,
    "hcctme.tl": 4,
    "hcctme.pl": 5,
    "hcctme.report": 6,
    "hcctme.pipeline": 7,
    "hcctme.cli": 8,
    "hcctme.workflow": 8,
    "hcctme": 9,  # the package's __init__: it imports every subpackage, nothing imports it
}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def modules() -> dict[str, Path]:
    return {module_name(p): p for p in sorted(ROOT.rglob("*.py"))}


def layer(module: str) -> int:
    matches = [prefix for prefix in LAYERS if module == prefix or module.startswith(prefix + ".")]
    return LAYERS[max(matches, key=len)]


def _resolve(node: ast.ImportFrom, module: str, is_package: bool) -> str:
    if not node.level:
        return node.module or ""
    base = module.split(".") if is_package else module.split(".")[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def imports_of(module: str, path: Path, known: set[str]) -> set[str]:
    """hcctme modules ``module`` imports: ``from pkg import sub`` names the submodule when it is one."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names if alias.name.split(".")[0] == "hcctme")
        elif isinstance(node, ast.ImportFrom):
            target = _resolve(node, module, path.name == "__init__.py")
            if target.split(".")[0] != "hcctme":
                continue
            for alias in node.names:
                sub = f"{target}.{alias.name}"
                found.add(sub if sub in known else target)
    return {name for name in found if name != module}


def graph() -> dict[str, set[str]]:
    mods = modules()
    known = set(mods)
    return {name: imports_of(name, path, known) for name, path in mods.items()}


def upward_imports(edges: dict[str, set[str]]) -> list[str]:
    return sorted(f"{a} (layer {layer(a)}) imports {b} (layer {layer(b)})"
                  for a, targets in edges.items() for b in targets if layer(b) > layer(a))


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(edges.get(node, ())):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(edges):
        if node not in index:
            visit(node)
    return found


def test_every_module_has_a_layer():
    assert all(name.startswith("hcctme") for name in modules())
    assert {"hcctme.get", "hcctme.tl._score", "hcctme.workflow._steps", "hcctme.sig._model"} <= set(modules())


def test_no_module_imports_a_higher_layer():
    assert upward_imports(graph()) == []


def test_no_import_cycles():
    assert cycles(graph()) == []


def test_private_names_are_not_imported_across_packages():
    """A private function or constant (``_name``) is only imported inside its own subpackage."""
    known = modules()
    offenders = []
    for name, path in known.items():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if not (isinstance(node, ast.ImportFrom) and (node.module or "").startswith("hcctme.")):
                continue
            if node.module.split(".")[:2] == name.split(".")[:2]:
                continue
            offenders += [f"{name}: from {node.module} import {alias.name}" for alias in node.names
                          if alias.name.startswith("_") and not alias.name.startswith("__")
                          and f"{node.module}.{alias.name}" not in known]
    assert offenders == []


# the checker itself, on hand-built graphs
@pytest.mark.parametrize(("edges", "expected"), [
    ({"a": {"b"}, "b": {"a"}}, [["a", "b"]]),
    ({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}, [["a", "b", "c"]]),
    ({"a": {"b"}, "b": set(), "c": {"b"}}, []),
])
def test_cycle_finder(edges, expected):
    assert cycles(edges) == expected


def test_upward_finder():
    edges = {"hcctme.pipeline": {"hcctme.report._build"}, "hcctme.report._build": {"hcctme.pipeline"}}
    assert upward_imports(edges) == ["hcctme.report._build (layer 6) imports hcctme.pipeline (layer 7)"]


def test_function_level_imports_are_seen(tmp_path):
    source = tmp_path / "mod.py"
    source.write_text("def f():\n    from hcctme.pipeline import run\n    import hcctme.report\n")
    assert imports_of("hcctme.tl._x", source, {"hcctme.pipeline", "hcctme.report"}) == {
        "hcctme.pipeline", "hcctme.report"}


def test_the_packages_warnings_reach_a_script_that_configured_no_logging():
    """A NullHandler on the 'hcctme' logger silenced every 'warned of' (small populations, seedings that disagree)
    in scripts and notebooks; Python's last-resort handler prints them to stderr."""
    import subprocess
    import sys

    code = ("import hcctme; from hcctme._logging import logger; logger.warning('visible warning'); "
            "logger.info('quiet info')")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                          cwd=Path(hcctme.__file__).parents[1])
    assert "visible warning" in done.stderr and "quiet info" not in done.stderr
