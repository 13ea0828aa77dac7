"""No two modules of synthgen import each other, directly or through others (docs/architecture.md).

The graph is read with the standard library's ``ast``, without importing anything. It counts
every ``import`` statement in a module: at module level, inside functions (a lazy import that
dodges an ImportError hides a cycle, it does not remove it) and under ``if TYPE_CHECKING:``
(a type-only cycle still ties the two modules together for a reader).

An edge goes to the module named: ``from synthgen.a import b`` is an edge to ``synthgen.a.b``
when that is a module, else to ``synthgen.a``. Importing ``synthgen.a.b`` is not counted as
an edge to the package ``synthgen.a`` as well, although Python runs its ``__init__`` first:
a package that re-exports its submodules would otherwise always sit in a cycle with them.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _modules(root: Path) -> dict[str, Path]:
    mods: dict[str, Path] = {}
    for path in sorted((root / "synthgen").rglob("*.py")):
        parts = list(path.relative_to(root).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        mods[".".join(parts)] = path
    return mods


def _targets(module: str, path: Path, node: ast.Import | ast.ImportFrom, mods: dict[str, Path]) -> list[str]:
    if isinstance(node, ast.Import):
        return [a.name for a in node.names]
    base = node.module or ""
    if node.level:  # relative: from the module's package, up level - 1 packages
        package = module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]
        package = package[: len(package) - node.level + 1]
        base = ".".join(package + ([base] if base else []))
    return [f"{base}.{a.name}" if f"{base}.{a.name}" in mods else base for a in node.names]


def import_graph(root: Path = ROOT) -> dict[str, set[str]]:
    """``module -> modules of synthgen it imports``, from every import statement in its file."""
    mods = _modules(root)
    graph: dict[str, set[str]] = {}
    for module, path in mods.items():
        edges: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
            if not isinstance(node, ast.Import | ast.ImportFrom):
                continue
            for target in _targets(module, path, node, mods):
                while target and target not in mods:  # `import synthgen.a.name` -> synthgen.a
                    target = target.rpartition(".")[0]
                if target and target != module:
                    edges.add(target)
        graph[module] = edges
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return sorted(found)


def test_the_checker_finds_a_cycle_through_a_function_level_import(tmp_path: Path) -> None:
    pkg = tmp_path / "synthgen"
    (pkg / "evaluate").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "evaluate" / "__init__.py").write_text("")
    (pkg / "evaluate" / "evaluation.py").write_text("def run():\n    from .html import render\n")
    type_only = "    from synthgen.evaluate.evaluation import run\n"
    (pkg / "evaluate" / "html.py").write_text(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n" + type_only
    )
    (pkg / "other.py").write_text("import synthgen.evaluate.html\n")
    assert cycles(import_graph(tmp_path)) == [["synthgen.evaluate.evaluation", "synthgen.evaluate.html"]]


#: Cycles known and scheduled to be cut, each with the reason it is still here. Keep it empty.
KNOWN: list[list[str]] = []


def test_no_import_cycle_between_synthgen_modules() -> None:
    graph = import_graph()
    assert "synthgen.stages.train" in graph  # the walk saw the package
    found = [c for c in cycles(graph) if c not in KNOWN]
    assert found == [], "import cycles between synthgen modules: " + "; ".join(" <-> ".join(c) for c in found)
