"""The endpoint-family registry: its records hold, and no module spells a family's route.

A family's route written in a second place is how "adding a family touches 16 files" starts:
the grep below fails on any string literal (docstrings aside) that is, or starts with, a
registered family's route anywhere in ``src/`` but ``gateprobe/core/families.py``. The specs in
``specs/`` are the other place routes live (they are the documents, not code).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from gateprobe.core import families
from gateprobe.core.families import FAMILIES, PATHS, owner, resolve, wire_of
from gateprobe.core.specs import load_spec
from gateprobe.core.targets import ENDPOINTS, profile_endpoints

SRC = Path(__file__).resolve().parents[1] / "src" / "gateprobe"
REGISTRY = SRC / "core" / "families.py"
NOT_IN_A_SPEC = {"realtime"}
"""A WebSocket route: OpenAPI has no way to document it (``protocols/realtime.py`` does)."""


def _docstrings(tree: ast.AST) -> set[int]:
    ids: set[int] = set()
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if not isinstance(body, list):
            continue
        for stmt in body:  # a module's, class's or function's, and attribute docstrings
            if isinstance(stmt, ast.Expr) and isinstance(stmt.value, ast.Constant):
                ids.add(id(stmt.value))
    return ids


def spelled_routes(source: str) -> list[tuple[int, str]]:
    """``(line, literal)`` of every string in ``source`` that is or starts a family route."""
    tree = ast.parse(source)
    skip = _docstrings(tree)
    found: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.JoinedStr) and node.values:
            first = node.values[0]
            if isinstance(first, ast.Constant):
                skip.add(id(first))
                if _is_route(str(first.value), partial=True):
                    found.append((node.lineno, str(first.value)))
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) \
                and id(node) not in skip and _is_route(node.value):
            found.append((node.lineno, node.value))
    return found


def _is_route(text: str, partial: bool = False) -> bool:
    for path in PATHS.values():
        if text == path or (text.startswith(path) and text[len(path)] in "/?{"):
            return True
        if partial and path.startswith(text) and text.count("/") >= 2:
            return True  # f"/v1/{x}": a route cut short before its parameter
    return False


def _defines(reference: str) -> bool:
    module, _, name = reference.partition(":")
    path = SRC.joinpath(*module.split(".")[1:]).with_suffix(".py")
    tree = ast.parse(path.read_text(encoding="utf-8"))
    return any(getattr(node, "name", None) == name for node in tree.body)


SOURCES = sorted(p for p in SRC.rglob("*.py") if p != REGISTRY)


@pytest.mark.parametrize("path", SOURCES, ids=[str(p.relative_to(SRC)) for p in SOURCES])
def test_no_family_route_is_spelled_outside_the_registry(path: Path) -> None:
    spelled = spelled_routes(path.read_text(encoding="utf-8"))
    assert not spelled, f"{path.relative_to(SRC)} spells family routes {spelled}: " \
                        "use gateprobe.core.families.PATHS[name]"


def test_the_grep_catches_a_spelled_route() -> None:
    """The checker itself can fail: a literal, a prefix with a tail, an f-string."""
    bad = 'A = "/v1/messages"\nB = "/v1/responses/{id}"\nC = f"/v1/chat/completions?x={1}"\n'
    assert [line for line, _ in spelled_routes(bad)] == [1, 2, 3]
    good = '"""Docs may name /v1/messages."""\nA = PATHS["messages"]\nB = "/v1/modelsx"\n'
    assert spelled_routes(good) == []


def test_targets_read_the_registry() -> None:
    assert dict(ENDPOINTS) == dict(PATHS)
    assert profile_endpoints("openai") == families.implied_by("openai")
    assert not profile_endpoints("openai") & families.of_wire("anthropic")
    assert not profile_endpoints("ohmygpt") & families.OPT_IN  # opt-in: no profile implies it


@pytest.mark.parametrize("name", list(FAMILIES))
def test_each_family_is_documented_and_its_pieces_exist(name: str) -> None:
    """Every route is in the family's spec, and every lazily named piece imports."""
    family = FAMILIES[name]
    if name not in NOT_IN_A_SPEC:
        documented = {(m.upper(), p) for p, item in load_spec(family.spec)["paths"].items()
                      for m in item if m in ("get", "post", "put", "delete", "patch")}
        for route in family.routes:
            assert (route.method, route.path) in documented, f"{name}: {route} not in spec"
        assert family.operations(), name
    for reference in (family.cases, family.reference):
        if reference:
            assert resolve(reference) is not None
    if family.load_request:  # read, not imported: importing Locust monkey-patches this process
        assert _defines(family.load_request), family.load_request
    assert family.profiles <= set(families.PROFILES)


def test_a_path_belongs_to_the_longest_family_route() -> None:
    assert owner("/v1/chat/completions").name == "chat"  # type: ignore[union-attr]
    assert owner("/v1/chat/completions/abc/messages").name == "chat_store"  # type: ignore[union-attr]
    assert owner("/v1/messages/count_tokens?beta=1").name == "count_tokens"  # type: ignore[union-attr]
    assert owner("/v1/completions").name == "completions"  # type: ignore[union-attr]
    assert owner("/v1/unknown") is None
    assert wire_of("/v1/messages/batches") == "anthropic"
    assert wire_of("/v1/completions") == "openai"  # not Anthropic's /v1/complete
    assert wire_of(PATHS["serper"]) == "gateway"
