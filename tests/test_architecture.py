"""The package's import structure: no import circles, and inference, printing and plots
depend on the model contract (mixedmodels.model), never on a concrete model module.

A deferred import inside a function counts as an import."""

from __future__ import annotations

import ast
from pathlib import Path

import mixedmodels

PACKAGE = Path(mixedmodels.__file__).parent
CONCRETE = {"mixedmodels.lmm", "mixedmodels.glmm", "mixedmodels.variance.hetero"}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imports_of(path: Path, modules: set[str]) -> set[str]:
    """Every package module that ``path`` imports, at any depth of the file."""
    name = module_name(path)
    base = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                parts = base.split(".")[: len(base.split(".")) - node.level + 1]
                target = ".".join(parts + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            for a in node.names:
                out.add(f"{target}.{a.name}" if f"{target}.{a.name}" in modules else target)
    return {m for m in out if m in modules and m != name}


def import_graph() -> dict[str, set[str]]:
    files = {module_name(p): p for p in PACKAGE.rglob("*.py")}
    modules = set(files)
    return {name: imports_of(path, modules) for name, path in files.items()}


def strongly_connected(graph: dict[str, set[str]]) -> list[set[str]]:
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[set[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = set()
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.add(w)
                if w == v:
                    break
            out.append(comp)

    for v in graph:
        if v not in index:
            visit(v)
    return out


def test_no_import_circles():
    circles = [sorted(c) for c in strongly_connected(import_graph()) if len(c) > 1]
    assert circles == []


def test_inference_printing_and_plots_use_only_the_contract():
    graph = import_graph()
    users = [
        m
        for m in graph
        if m.startswith("mixedmodels.inference")
        or m in ("mixedmodels.printing", "mixedmodels.plots", "mixedmodels.model")
    ]
    offenders = {m: sorted(graph[m] & CONCRETE) for m in users if graph[m] & CONCRETE}
    assert offenders == {}


def test_the_contract_module_imports_no_model_or_inference_module():
    deps = import_graph()["mixedmodels.model"]
    assert not {d for d in deps if d in CONCRETE or d.startswith("mixedmodels.inference")}
