"""The project's modules import each other one way only: no import cycle in harness/ or plugins/.

A cycle hidden in a function body (one module importing the other lazily) is
still a cycle: it couples the two modules and breaks the moment someone hoists
the import. So the graph counts every ``import`` statement, wherever it is,
except those under ``if TYPE_CHECKING:`` (never executed).
"""
from __future__ import annotations

import ast
import graphlib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("harness", "plugins")


def module_files(root: Path = ROOT) -> dict[str, Path]:
    """Dotted module name -> file, for every module of the project's packages."""
    found = {}
    for package in PACKAGES:
        for path in (root / package).rglob("*.py"):
            parts = list(path.relative_to(root).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            found[".".join(parts)] = path
    return found


def _type_checking_only(node: ast.AST, parents: dict[ast.AST, ast.AST]) -> bool:
    while node in parents:
        node = parents[node]
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            return True
    return False


def imported_modules(name: str, path: Path, modules: set[str]) -> set[str]:
    """The project modules that ``name`` imports anywhere in its source."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    parents = {child: node for node in ast.walk(tree) for child in ast.iter_child_nodes(node)}
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    targets: set[str] = set()
    for node in ast.walk(tree):
        if not isinstance(node, (ast.Import, ast.ImportFrom)) or _type_checking_only(node, parents):
            continue
        if isinstance(node, ast.Import):
            targets.update(alias.name for alias in node.names)
            continue
        base = node.module or ""
        if node.level:  # relative: from . import x, from ..a import b
            anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
            base = ".".join(anchor + ([base] if base else []))
        for alias in node.names:
            child = f"{base}.{alias.name}"
            targets.add(child if child in modules else base)
    return {t for t in targets if t in modules and t != name}


def import_graph(root: Path = ROOT) -> dict[str, set[str]]:
    files = module_files(root)
    names = set(files)
    return {name: imported_modules(name, path, names) for name, path in files.items()}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    try:
        tuple(graphlib.TopologicalSorter(graph).static_order())
    except graphlib.CycleError as exc:
        return list(exc.args[1])
    return None


def test_the_graph_sees_function_level_imports():
    graph = import_graph()
    # plugins.optimizers.algorithms imports the sweep command inside a hook body
    assert "plugins.optimizers.sweep" in graph["plugins.optimizers.algorithms"]


def test_a_cycle_through_a_lazy_import_is_found(tmp_path):
    package = tmp_path / "plugins"
    package.mkdir()
    (tmp_path / "harness").mkdir()
    (package / "__init__.py").write_text("")
    (package / "a.py").write_text("from plugins.b import helper\n")
    (package / "b.py").write_text("def helper():\n    from plugins import a\n")
    cycle = find_cycle(import_graph(tmp_path))
    assert cycle is not None and {"plugins.a", "plugins.b"} <= set(cycle)


def test_no_import_cycles():
    cycle = find_cycle(import_graph())
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])
