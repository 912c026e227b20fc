"""The reference gateway's modules import one another in one direction only.

A cycle between two of them used to hide behind imports inside functions; here every import of a
``gateprobe.reference`` module, wherever it stands, counts, and the graph must be acyclic.
"""

from __future__ import annotations

import ast
from graphlib import CycleError, TopologicalSorter
from pathlib import Path

import gateprobe.reference

PACKAGE = "gateprobe.reference"
ROOT = Path(gateprobe.reference.__file__).parent


def _imports(tree: ast.AST) -> set[str]:
    """Every ``gateprobe.reference`` module ``tree`` imports, at any depth."""
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module == PACKAGE:
            found |= {f"{PACKAGE}.{a.name}" for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
    return {name for name in found if name.startswith(PACKAGE + ".")}


def _graph() -> dict[str, set[str]]:
    graph = {}
    for path in sorted(ROOT.glob("*.py")):
        module = PACKAGE if path.stem == "__init__" else f"{PACKAGE}.{path.stem}"
        graph[module] = _imports(ast.parse(path.read_text(), str(path)))
    return graph


def test_reference_modules_import_each_other_without_a_cycle() -> None:
    graph = _graph()
    assert len(graph) > 10
    try:
        tuple(TopologicalSorter(graph).static_order())
    except CycleError as error:
        raise AssertionError(f"import cycle: {' -> '.join(error.args[1])}") from None


def test_no_reference_module_is_imported_inside_a_function() -> None:
    local = []
    for path in sorted(ROOT.glob("*.py")):
        for fn in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(fn, ast.FunctionDef | ast.AsyncFunctionDef):
                local += [f"{path.name}:{fn.name}: {name}" for name in _imports(fn)]
    assert local == []
