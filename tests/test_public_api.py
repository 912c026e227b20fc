"""The public names of gateprobe and gateprobe.reference, and version consistency."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

import gateprobe
import gateprobe.reference

ROOT = Path(__file__).resolve().parents[1]


def test_top_level_exports() -> None:
    assert gateprobe.__all__ == [
        "Case", "CheckResult", "CompareOptions", "CompareResult", "ConfigError",
        "ConformanceOptions", "ConformanceResult", "Context", "Embedded", "Exchange",
        "Expectation", "Finding", "GateResult", "GateprobeError", "LatencyResult", "LoadOptions",
        "LoadResult", "NOT_APPLICABLE", "Phase", "RateLimitResult",
        "RunOptions", "RunResult", "Severity", "Target", "TargetChoice", "TargetUnreachable",
        "TasksResult", "Timeouts", "UsageError", "check", "embedded_target", "load_gate_config",
        "open_target",
        "resolve_target", "run", "run_compare", "run_conformance", "run_gate", "run_load",
        "__version__"]
    for name in gateprobe.__all__:
        assert getattr(gateprobe, name) is not None, name
    with pytest.raises(AttributeError):
        gateprobe.no_such_name  # noqa: B018


def test_import_gateprobe_is_cheap() -> None:
    """The facade resolves names on use: importing it loads no command, no pytest."""
    code = ("import sys, gateprobe; print(sorted(m for m in ('pytest', 'httpx', "
            "'gateprobe.commands.pipeline', 'gateprobe.commands.conformance_runner') if m in sys.modules))")
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
