"""Each command's dry run is a bound on what it then sends: requests and generated tokens,
measured on the real run (the bound is enforced as the run's cap, not forecast)."""

from __future__ import annotations

import io
import json
import re
from pathlib import Path
from typing import Any

import pytest

from gateprobe.cli import main
from gateprobe.commands.conformance_runner import ConformanceOptions, run_conformance
from gateprobe.commands.load.results import SAMPLES_FILE, read_samples
from gateprobe.core.console import Console
from gateprobe.engine.embedded import Embedded, embedded_target


def gateprobe(*argv: str) -> tuple[int, str]:
    out, err = io.StringIO(), io.StringIO()
    code = main(list(argv), Console(out, err))
    return code, out.getvalue() + err.getvalue()


def number(pattern: str, text: str) -> int:
    found = re.search(pattern, text)
    assert found, text
    return int(found.group(1))


def samples(folder: Path) -> list[dict[str, Any]]:
    return list(read_samples(folder / SAMPLES_FILE))


@pytest.mark.slow
def test_the_latency_dry_run_bounds_its_run(tmp_path: Path) -> None:
    """Paced at 4/s for 3 s: the dry run promises 12 streams, and the run's cap is those 12
    (the pacer's first request is immediate and the run ends a moment after its duration:
    without the cap a run like this starts a few more than the rate times the duration)."""
    flags = ("load", "latency", "--duration", "3", "--users", "4", "--max-rps", "4",
             "--max-tokens", "16")
    code, planned = gateprobe(*flags, "--dry-run")
    assert code == 0, planned
    requests = number(r"at most (\d+) streaming requests", planned)
    tokens = number(r"at most (\d+) generated tokens", planned)
    assert requests == 12
    code, out = gateprobe(*flags, "--report-dir", str(tmp_path))
    assert code in (0, 1), out
    sent = samples(tmp_path)
    assert 0 < len(sent) <= requests
    assert sum(s.get("output_tokens") or 0 for s in sent) <= tokens


@pytest.mark.slow
def test_the_tasks_dry_run_bounds_its_run(tmp_path: Path) -> None:
    flags = ("load", "tasks", "--duration", "3", "--users", "2", "--max-rps", "5")
    code, planned = gateprobe(*flags, "--dry-run")
    assert code == 0, planned
    requests = number(r"at most (\d+) requests", planned)
    code, out = gateprobe(*flags, "--report-dir", str(tmp_path))
    assert code in (0, 1), out
    sent = sum(1 + (s.get("polls") or 0) for s in samples(tmp_path))  # a create, its queries
    assert 0 < sent <= requests


@pytest.mark.slow
def test_the_rate_limit_dry_run_bounds_its_run(tmp_path: Path) -> None:
    flags = ("load", "rate-limits", "--window-s", "4")
    code, planned = gateprobe(*flags, "--dry-run")
    assert code == 0, planned
    requests = number(r"(\d+) requests to /v1/chat/completions", planned)
    code, out = gateprobe(*flags, "--report-dir", str(tmp_path))
    assert code == 0, out
    assert len(samples(tmp_path)) == requests


@pytest.mark.slow
@pytest.mark.parametrize("select", ["errors", "golden"])
def test_the_conformance_dry_run_bounds_its_run(tmp_path: Path, select: str) -> None:
    code, planned = gateprobe("conformance", "--select", select, "--dry-run")
    assert code == 0, planned
    cases = number(r"cases: (\d+) requests", planned)
    tokens = number(r"at most (\d+) generated tokens", planned)
    with embedded_target(Embedded(ttft_ms=5, itl_ms=1)) as target:
        result = run_conformance(target, ConformanceOptions(select=select,
                                                            report_dir=tmp_path),
                                 Console(io.StringIO(), io.StringIO()))
    assert 0 < sum(result.cases_per_endpoint.values()) <= cases
    assert result.tokens_asked <= tokens


@pytest.mark.slow
def test_the_run_dry_run_bounds_its_latency_phase(tmp_path: Path) -> None:
    code, planned = gateprobe("run", "--suites", "latency", "--dry-run")
    assert code == 0, planned
    requests = number(r"at most (\d+) streaming requests", planned)
    tokens = number(r"at most (\d+) generated tokens", planned)
    code, out = gateprobe("run", "--suites", "latency", "--report-dir", str(tmp_path))
    assert code in (0, 1), out
    sent = samples(tmp_path / "latency")
    assert 0 < len(sent) <= requests
    assert sum(s.get("output_tokens") or 0 for s in sent) <= tokens
    assert json.loads((tmp_path / "latency" / "plan.json").read_text())["max_requests"] \
        <= requests
