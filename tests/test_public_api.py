"""The public names of gateprobe and gateprobe.reference, and version consistency."""

from __future__ import annotations

import dataclasses
import inspect
import re
import subprocess
import sys
import typing
from pathlib import Path
from typing import Any

import pytest

import gateprobe
import gateprobe.reference

ROOT = Path(__file__).resolve().parents[1]


def test_top_level_exports() -> None:
    assert gateprobe.__all__ == [
        "Allowance", "Case", "CheckFn", "CheckResult", "CompareOptions", "CompareResult",
        "ConfigError", "ConformanceOptions", "ConformanceResult", "Console", "Context",
        "Decision", "Embedded", "Exchange", "Expectation", "Finding", "GateConfig",
        "GateOptions", "GateResult", "GateprobeError", "Generator", "Golden", "Handler",
        "LatencyResult", "LoadOptions", "LoadResult", "MirrorResult", "NOT_APPLICABLE",
        "NotApplicable", "Note", "Percentiles", "Phase", "PhaseFinished", "PhaseStarted",
        "ProbeResult", "Propagation", "RateLimitResult", "Redactor", "RunFinished",
        "RunOptions", "RunResult", "RunStarted", "SSEEvent", "Severity", "SoakResult",
        "StreamStats", "Target", "TargetChoice", "TargetUnreachable", "TasksResult",
        "TierResult", "Timeouts", "Upstream", "UsageError", "Workload", "check",
        "embedded_target",
        "load_gate_config", "open_target",
        "resolve_target", "run", "run_compare", "run_conformance", "run_gate", "run_load",
        "__version__"]
    for name in gateprobe.__all__:
        assert getattr(gateprobe, name) is not None, name
    with pytest.raises(AttributeError):
        gateprobe.no_such_name  # noqa: B018


def _gateprobe_types(annotation: Any, out: set[type]) -> None:
    """Every class of gateprobe's inside an annotation (aliases are expanded by then)."""
    if isinstance(annotation, list | tuple):  # Callable's argument list
        for arg in annotation:
            _gateprobe_types(arg, out)
        return
    if typing.get_origin(annotation) is not None:
        _gateprobe_types(list(typing.get_args(annotation)), out)
    elif isinstance(annotation, type) and annotation.__module__.startswith("gateprobe"):
        out.add(annotation)


def test_every_type_a_public_function_takes_or_returns_is_exported() -> None:
    """A user can annotate their own code from ``gateprobe`` alone: every gateprobe type in
    the signature of an exported function, and in the fields of every exported dataclass
    reached from one, is itself exported."""
    exported = {id(getattr(gateprobe, n)) for n in gateprobe.__all__ if n != "__version__"}
    todo = [getattr(gateprobe, n) for n in gateprobe.__all__
            if n != "__version__" and inspect.isfunction(getattr(gateprobe, n))]
    assert len(todo) >= 10
    seen: set[int] = set()
    missing: list[str] = []
    while todo:
        item = todo.pop()
        if id(item) in seen:
            continue
        seen.add(id(item))
        found: set[type] = set()
        for hint in typing.get_type_hints(item).values():
            _gateprobe_types(hint, found)
        for kind in found:
            if id(kind) not in exported:
                missing.append(f"{kind.__module__}.{kind.__qualname__} (in {item.__qualname__})")
            elif dataclasses.is_dataclass(kind):
                todo.append(kind)
    assert not missing, missing


def test_the_annotation_walk_finds_an_unexported_type() -> None:
    found: set[type] = set()
    _gateprobe_types(typing.Callable[[gateprobe.Context], "int"], found)
    _gateprobe_types(list[typing.Optional[gateprobe.Target]], found)  # noqa: UP045
    assert found == {gateprobe.Context, gateprobe.Target}


def test_a_target_from_python_without_a_targets_file(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MY_KEY", "sk-test-0001")
    target = gateprobe.Target.openai("http://127.0.0.1:8080/", key_env="MY_KEY",
                                     endpoints={"chat", "models"},
                                     models={"chat": "gpt-4o-mini"})
    assert (target.base_url, target.profile, target.api_key) == \
        ("http://127.0.0.1:8080", "openai", "sk-test-0001")
    assert target.api_key_env == "MY_KEY" and "sk-test-0001" not in repr(target)
    assert target.served == {"chat", "models"} and target.models["chat"] == "gpt-4o-mini"
    assert gateprobe.Target.anthropic("http://127.0.0.1:1", key_env="MY_KEY").profile == \
        "anthropic"
    monkeypatch.delenv("MY_KEY")
    with pytest.raises(gateprobe.ConfigError, match="MY_KEY"):
        gateprobe.Target.ohmygpt("http://127.0.0.1:1", key_env="MY_KEY")
    monkeypatch.setenv("MY_KEY", "k")
    with pytest.raises(gateprobe.UsageError, match="did you mean 'chat'"):
        gateprobe.Target.openai("http://127.0.0.1:1", key_env="MY_KEY", endpoints={"chta"})
    with pytest.raises(gateprobe.UsageError):
        gateprobe.Target.of("ftp://x", "openai", key_env="MY_KEY")


def test_every_command_takes_target_options_and_an_optional_console() -> None:
    """One shape: ``run_x(target, options, console=None) -> XResult``."""
    for name in ("run", "run_conformance", "run_load", "run_compare", "run_gate"):
        params = list(inspect.signature(getattr(gateprobe, name)).parameters.values())
        assert params[1].name == "options", name
        assert params[2].name == "console" and params[2].default is None, name


def test_the_0_1_call_shapes_still_work_with_a_warning(tmp_path: Path) -> None:
    from gateprobe.commands.compare import _compare_args_of_0_1
    from gateprobe.commands.gate import _gate_args_of_0_1

    console = gateprobe.Console()
    with pytest.warns(DeprecationWarning, match="run_compare"):
        options, got = _compare_args_of_0_1({"a": "http://x"}, gateprobe.CompareOptions(),
                                            (console,))
    assert options.mirrors == {"a": "http://x"} and got is console
    with pytest.warns(DeprecationWarning, match="run_gate"):
        gate, got = _gate_args_of_0_1(console, tmp_path, (), {"verbose": True})
    assert gate == gateprobe.GateOptions(tmp_path, None, True) and got is console


def test_import_gateprobe_is_cheap() -> None:
    """The facade resolves names on use: importing it loads no command, no pytest."""
    code = ("import sys, gateprobe; print(sorted(m for m in ('pytest', 'httpx', "
            "'gateprobe.commands.pipeline', 'gateprobe.commands.conformance_runner') "
            "if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout
    assert out.strip() == "[]"


@pytest.mark.slow
def test_the_docs_python_example_runs(tmp_path: Path) -> None:
    """The Python API's example (docs/howto/own-check.md), as a user pastes it: the embedded
    gateway, conformance, findings."""
    readme = (ROOT / "docs" / "howto" / "own-check.md").read_text(encoding="utf-8")
    example = readme.split("<!-- python-example -->", 1)[1].split("```python", 1)[1] \
        .split("```", 1)[0]
    result = subprocess.run([sys.executable, "-c", example], capture_output=True, text=True,
                            cwd=tmp_path, timeout=300)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    assert "exit code 0, 0 findings" in result.stdout


@pytest.mark.slow
def test_the_python_api_pages_example_runs(tmp_path: Path) -> None:
    """docs/reference/python-api.md's example: a target built from Python, no targets file."""
    page = (ROOT / "docs" / "reference" / "python-api.md").read_text(encoding="utf-8")
    example = page.split("<!-- python-example -->", 1)[1].split("```python", 1)[1] \
        .split("```", 1)[0]
    result = subprocess.run([sys.executable, "-c", example], capture_output=True, text=True,
                            cwd=tmp_path, timeout=300)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    assert "exit code 0, 0 findings" in result.stdout


def test_reference_exports() -> None:
    assert sorted(gateprobe.reference.__all__) == [
        "GatewayConfig", "RunningGateway", "Timing", "Tls", "build_app", "running_gateway",
        "serve"]


def test_error_exit_codes() -> None:
    assert gateprobe.ConfigError.exit_code == 2
    assert gateprobe.UsageError.exit_code == 2
    assert gateprobe.TargetUnreachable.exit_code == 3


def test_changelog_has_the_current_version() -> None:
    changelog = (ROOT / "CHANGELOG.md").read_text(encoding="utf-8")
    versions = re.findall(r"^## (\d+\.\d+\.\d+)", changelog, flags=re.MULTILINE)
    assert versions and versions[0] == gateprobe.__version__
