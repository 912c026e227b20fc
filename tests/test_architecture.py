"""The import rule of ARCHITECTURE.md, enforced by walking every module's imports with ast.

Every import counts, wherever it stands (inside functions too): an import hidden in a function
is still a dependency, and used to hide cycles here. The layers, each importing only from those
below it: base < protocols < engine < commands < cli; ``reference`` sits on base alone, and only
``embedded`` (the one place the embedded gateway starts) and the CLI's ``serve`` import it.
"""

from __future__ import annotations

import ast
from graphlib import CycleError, TopologicalSorter
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "gateprobe"

FOLDERS = {"core": "base", "protocols": "protocols", "engine": "engine",
           "commands": "commands", "cli": "cli", "reference": "reference"}
"""Each layer is a folder of the package: a module's layer is where it sits."""
TOP_LEVEL = {"__init__": "facade", "load": "facade", "__main__": "cli"}
"""The only modules outside a layer folder: the public names (``gateprobe``, the public load
API ``gateprobe.load``) and ``python -m gateprobe``."""
ALLOWED = {
    "base": {"base"},
    "protocols": {"base", "protocols"},
    "reference": {"base", "reference"},
    "engine": {"base", "protocols", "engine"},
    "commands": {"base", "protocols", "engine", "commands"},
    "cli": {"base", "protocols", "engine", "commands", "cli", "reference"},
    "facade": {"base", "protocols", "engine", "commands", "facade"},
}
MAY_START_THE_REFERENCE = {"engine.embedded"}
LOCUST_SIDE = {"commands.load.locustlib"}


def module_name(path: Path) -> str:
    parts = path.relative_to(SRC).with_suffix("").parts
    return ".".join(p for p in parts if p != "__init__") or "__init__"


MODULES = sorted(SRC.rglob("*.py"))
NAMES = {module_name(p) for p in MODULES}


def layer(module: str) -> str:
    if module in TOP_LEVEL:
        return TOP_LEVEL[module]
    top = module.split(".")[0]
    if top in FOLDERS:
        return FOLDERS[top]
    raise AssertionError(f"module {module} is in no layer folder ({', '.join(FOLDERS)}): "
                         "move it into the folder of its layer")


def imports(path: Path) -> list[tuple[str, int]]:
    """Every module a file imports, at any depth: gateprobe modules without the package
    prefix ('__init__' for the package itself), others by their full name."""
    found: list[tuple[str, int]] = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found += [(_ours(alias.name), node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            base = _ours(node.module)
            for alias in node.names:
                sub = f"{base}.{alias.name}" if base != "__init__" else alias.name
                if base != node.module and sub in NAMES:
                    found.append((sub, node.lineno))  # `from gateprobe import transport`
                elif alias.name != "__version__":  # the package's own version is metadata
                    found.append((base, node.lineno))
    return found


def _ours(name: str) -> str:
    if name == "gateprobe":
        return "__init__"
    return name.removeprefix("gateprobe.") if name.startswith("gateprobe.") else name


def _is_ours(name: str) -> bool:
    return name in NAMES or name == "__init__" or any(n.startswith(name + ".") for n in NAMES)


@pytest.mark.parametrize("path", MODULES, ids=[module_name(p) for p in MODULES])
def test_imports_follow_the_layers(path: Path) -> None:
    me = module_name(path)
    mine = layer(me)
    for name, line in imports(path):
        if name.split(".")[0] in ("locust", "gevent"):
            assert me in LOCUST_SIDE, f"{me}:{line} imports {name} (gevent monkey-patching)"
            continue
        if not _is_ours(name):
            continue
        theirs = layer(name)
        if theirs == "reference" and mine != "reference":
            assert me in MAY_START_THE_REFERENCE or mine == "cli", \
                f"{me}:{line}: only gateprobe.engine.embedded may start the reference gateway"
            continue
        # cli is in no other layer's ALLOWED: only the CLI's own modules and __main__ import it
        assert theirs in ALLOWED[mine], f"{me}:{line} ({mine}) imports {name} ({theirs})"


@pytest.mark.slow
def test_no_import_cycle() -> None:
    graph = {module_name(p): {n for n, _ in imports(p) if _is_ours(n) and n in NAMES}
             for p in MODULES}
    try:
        tuple(TopologicalSorter(graph).static_order())
    except CycleError as error:
        raise AssertionError(f"import cycle: {' -> '.join(error.args[1])}") from None


def test_the_rules_catch_a_violation_and_a_cycle(tmp_path: Path) -> None:
    """The checker itself can fail: an upward import inside a function is seen, and a cycle
    is found."""
    bad = tmp_path / "bad.py"
    bad.write_text("def f():\n    from gateprobe.cli import main\n")
    [(name, _)] = imports(bad)
    assert layer(name) not in ALLOWED["base"]
    with pytest.raises(CycleError):
        tuple(TopologicalSorter({"a": {"b"}, "b": {"a"}}).static_order())


ARCHITECTURE = SRC.parents[1] / "ARCHITECTURE.md"


def _documented() -> dict[str, tuple[str, str, set[str]]]:
    """ARCHITECTURE.md's table: layer -> (folder cell, modules cell, the layers it may import)."""
    rows: dict[str, tuple[str, str, set[str]]] = {}
    names = set(ALLOWED)
    for line in ARCHITECTURE.read_text(encoding="utf-8").splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 4 and cells[0] in names:
            may = cells[3]
            allowed = (names - {"facade"} if may.startswith("everything but the facade") else
                       names - {"cli", "reference"} if may.startswith("everything but cli")
                       else {m.strip() for m in may.split(",")})
            rows[cells[0]] = (cells[1], cells[2], allowed)
    return rows


def test_the_folders_are_the_layers_of_architecture_md() -> None:
    """Every layer of the test is a row of ARCHITECTURE.md with its folder and the same
    imports allowed, and every module of a layer's folder is named in its row: the map cannot
    drift from the tree again."""
    documented = _documented()
    assert set(documented) == set(ALLOWED), set(ALLOWED) ^ set(documented)
    for folder, name in FOLDERS.items():
        cell, modules, allowed = documented[name]
        assert cell == f"`{folder}/`", (name, cell)
        allowed |= {name}  # a layer imports its own modules: the table says what else
        assert allowed == ALLOWED[name], (name, allowed ^ ALLOWED[name])
        if name == "reference":
            continue  # its modules are listed in their own section below the table
        for path in sorted((SRC / folder).iterdir()):
            module = path.stem
            if module.startswith("__") or path.suffix not in (".py", "") or \
                    module == "__pycache__" or (path.is_dir() and not (path / "__init__.py")
                                                .exists()):
                continue
            assert f"`{module}`" in modules, f"{folder}/{module} is not in ARCHITECTURE.md"
    for module, name in TOP_LEVEL.items():
        assert f"`{module}`" in documented[name][1], f"{module} is not in ARCHITECTURE.md"
