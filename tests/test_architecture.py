"""The import rule of ARCHITECTURE.md, enforced by walking every module's imports with ast."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "gateprobe"

BASE = {"arrival", "errors", "console", "redact", "tokenizer", "sse", "findings", "metrics",
        "targets", "specs", "checks", "golden", "yamlfile", "types", "transport"}
RUNNERS = {"__main__", "smoke", "cli", "cases", "probe", "runstate", "conformance_runner",
           "pytest_plugin", "fuzz_guard",
           "compare", "report", "load", "conformance", "pipeline", "gate", "dryrun"}
FORBIDDEN_EVERYWHERE_BUT_LOAD = {"locust", "gevent"}


def module_name(path: Path) -> str:
    parts = path.relative_to(SRC).with_suffix("").parts
    return ".".join(p for p in parts if p != "__init__") or "__init__"


def layer(module: str) -> str:
    top = module.split(".")[0]
    if top == "reference":
        return "reference"
    if top == "protocols":
        return "protocols"
    if top in BASE or top == "__init__":
        return "base"
    if top in RUNNERS:
        return "runner"
    raise AssertionError(f"module {module} is in no layer: add it to ARCHITECTURE.md and here")


ALLOWED = {
    "base": {"base"},
    "protocols": {"base", "protocols"},
    "runner": {"base", "protocols", "runner"},
    "reference": {"base", "reference"},
}


def imports(path: Path) -> list[tuple[str, int]]:
    """Every gateprobe module (and third-party top-level package) a file imports."""
    found: list[tuple[str, int]] = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found += [(alias.name, node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append((node.module, node.lineno))
    return found


MODULES = sorted(SRC.rglob("*.py"))


@pytest.mark.parametrize("path", MODULES, ids=[module_name(p) for p in MODULES])
def test_imports_follow_the_layers(path: Path) -> None:
    me = module_name(path)
    my_layer = layer(me)
    for name, line in imports(path):
        top = name.split(".")[0]
        if top in FORBIDDEN_EVERYWHERE_BUT_LOAD:
            assert me.startswith("load"), f"{me}:{line} imports {name} (gevent monkey-patching)"
        if top != "gateprobe" or name == "gateprobe":
            continue
        target = name.removeprefix("gateprobe.")
        target_layer = layer(target)
        if target_layer == "reference" and my_layer == "runner":
            assert me in {"cli", "conformance_runner", "load.runner", "pipeline"}, \
                f"{me}:{line}: only the CLI's commands may start the reference gateway"
            continue
        assert target_layer in ALLOWED[my_layer], (
            f"{me}:{line} ({my_layer}) imports {name} ({target_layer})"
        )


def test_the_rule_catches_a_violation(tmp_path: Path) -> None:
    """The checker itself can fail: a base module importing a runner is reported."""
    bad = tmp_path / "bad.py"
    bad.write_text("from gateprobe.cli import main\n")
    [(name, _)] = imports(bad)
    assert layer(name.removeprefix("gateprobe.")) not in ALLOWED["base"]
