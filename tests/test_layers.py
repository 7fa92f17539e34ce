"""The package's shape: subpackages by layer, imports that only flow down, no import circles.

Every import in every module counts, lazy ones inside functions and ``TYPE_CHECKING`` blocks
included (read from the ``ast``, nothing is imported). ``docs/architecture.md`` explains the order.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1] / "src" / "scanfit"

# Lowest first. A module may import from its own layer or any layer below, never above.
LAYERS = ("data", "models", "likelihoods", "engine", "results", "show")
TOP = len(LAYERS)  # the entry points: scanfit/__init__.py, api, cli, sklearn, demo, tables


def _modules() -> dict[str, Path]:
    out = {}
    for path in ROOT.rglob("*.py"):
        parts = list(path.relative_to(ROOT.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = path
    return out


MODULES = _modules()


def _package_of(name: str, path: Path) -> str:
    return name if path.name == "__init__.py" else name.rsplit(".", 1)[0]


def _resolve(base: str, level: int, target: str | None) -> str:
    parts = base.split(".")
    if level > 1:
        parts = parts[: len(parts) - (level - 1)]
    return ".".join(parts + ([target] if target else []))


def imports_of(name: str, path: Path) -> set[str]:
    """The scanfit modules that ``name`` imports (a package counts as its ``__init__``)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        targets = []
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = _resolve(_package_of(name, path), node.level, node.module) if node.level else (node.module or "")
            for alias in node.names:
                sub = f"{base}.{alias.name}"
                targets.append(sub if sub in MODULES else base)
        for t in targets:
            while t and t not in MODULES and "." in t:  # `import scanfit.x.y` names a module; trim attributes
                t = t.rsplit(".", 1)[0]
            if t in MODULES and t != name:
                found.add(t)
    return found


def layer(name: str) -> int:
    parts = name.split(".")
    return LAYERS.index(parts[1]) if len(parts) > 1 and parts[1] in LAYERS else TOP


GRAPH = {name: imports_of(name, path) for name, path in MODULES.items()}


def test_resolver_sees_lazy_and_relative_imports():
    assert "scanfit.engine.optimizers" in GRAPH["scanfit.engine.config"]  # from . import optimizers
    assert "scanfit.results.inference" in GRAPH["scanfit.results.result"]
    assert "scanfit.show.painter" in GRAPH["scanfit.tables"]  # an import inside a function
    assert "scanfit.likelihoods" in GRAPH["scanfit.results.persist"]  # a package is its __init__
    assert {"scanfit.data.checks", "scanfit.likelihoods.base"} <= GRAPH["scanfit.engine.loop"]


def test_imports_flow_down_the_layers():
    upward = [f"{a} (layer {LAYERS[layer(a)] if layer(a) < TOP else 'top'}) imports {b} "
              f"(layer {LAYERS[layer(b)] if layer(b) < TOP else 'top'})"
              for a, deps in GRAPH.items() for b in deps if layer(b) > layer(a)]
    assert not upward, "\n".join(upward)


def test_no_import_circles():
    state: dict[str, int] = {}
    stack: list[str] = []
    cycles = []

    def visit(node):
        state[node] = 1
        stack.append(node)
        for dep in sorted(GRAPH[node]):
            if state.get(dep) == 1:
                cycles.append(stack[stack.index(dep):] + [dep])
            elif dep not in state:
                visit(dep)
        stack.pop()
        state[node] = 2

    for node in sorted(GRAPH):
        if node not in state:
            visit(node)
    assert not cycles, "\n".join(" -> ".join(c) for c in cycles)


def test_tree_shape():
    subpackages = [p.name for p in ROOT.iterdir() if p.is_dir() and (p / "__init__.py").exists()]
    assert set(LAYERS) <= set(subpackages)
    top = [p.name for p in ROOT.glob("*.py")]
    assert len(top) <= 6, top
    long = {str(p.relative_to(ROOT)): n for p in ROOT.rglob("*.py") if (n := len(p.read_text().splitlines())) > 500}
    assert not long, long


@pytest.mark.parametrize("bad", ["up", "circle"])
def test_the_checks_can_fail(bad, monkeypatch):
    """The two checks really catch what they are for (on a doctored graph)."""
    graph = {k: set(v) for k, v in GRAPH.items()}
    if bad == "up":
        graph["scanfit.data.checks"].add("scanfit.engine.loop")
        monkeypatch.setitem(globals(), "GRAPH", graph)
        with pytest.raises(AssertionError, match="scanfit.data.checks"):
            test_imports_flow_down_the_layers()
    else:
        graph["scanfit.engine.config"].add("scanfit.engine.loop")
        monkeypatch.setitem(globals(), "GRAPH", graph)
        with pytest.raises(AssertionError, match="scanfit.engine.loop"):
            test_no_import_circles()
