"""Every conformance run ends: whatever a gateway answers, and however many runs a process makes.

A gateway behind a maintenance page answers every model route 503 with ``Retry-After: 86400``;
the official SDKs would honour that (a day) if left to themselves. Runs here are in-process, as a
user's script or ``gateprobe gate`` makes them, so state left behind by one run would show in
the next.
"""

from __future__ import annotations

import io
import json
import time
from pathlib import Path

import pytest

from gateprobe.cli import main
from gateprobe.console import Console
from gateprobe.reference import Timing
from gateway_fixtures import MakeGateway

FAST = Timing(ttft_ms=5, itl_ms=1)


def conformance(*argv: str) -> tuple[int, str, float]:
    out, err = io.StringIO(), io.StringIO()
    start = time.monotonic()
    code = main(["conformance", "--api-key-env", "GP_BOUNDED_KEY", *argv], Console(out, err))
    return code, out.getvalue() + err.getvalue(), time.monotonic() - start


@pytest.fixture(autouse=True)
def key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GP_BOUNDED_KEY", "gp-vip-0001")


@pytest.mark.slow
def test_a_day_long_retry_after_on_every_route_ends_within_three_totals(
        make_gateway: MakeGateway, tmp_path: Path) -> None:
    total_s = 10.0
    gateway = make_gateway(faults=("retry-after-huge",), timing=FAST)
    code, output, took = conformance(
        "--base-url", gateway.base_url, "--timeout-first-byte-s", "5", "--timeout-idle-s", "5",
        "--timeout-total-s", str(total_s), "--report-dir", str(tmp_path))
    assert code == 1, output[-2000:]
    assert took < 3 * total_s, took
    findings = json.loads((tmp_path / "conformance.json").read_text())["findings"]
    named = [f for f in findings if f["check_id"] == "response.retry_after"]
    assert named and all("86400" in f["observed"] for f in named)
    tests = json.loads((tmp_path / "conformance.json").read_text())["tests"]
    ran = {t["test"].split("::")[0].split("/")[-1] for t in tests if t["outcome"] == "failed"}
    assert {"test_sdk.py", "test_fuzz.py"} <= ran, ran  # every category met the 503


def test_a_second_run_in_the_process_starts_with_its_own_budget(
        make_gateway: MakeGateway, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The first run spends its budget; the second, against a gateway that never answers,
    must fail on its own timeouts rather than inherit a spent clock and skip to exit 0."""
    clean = make_gateway(timing=FAST)
    code, output, _ = conformance("--base-url", clean.base_url, "--select", "endpoint",
                                  "--budget-s", "0.01")
    printed = capsys.readouterr().out  # pytest's own report goes to the process's stdout
    assert code == 1 and "budget of 0.01 s is spent" in printed, output + printed[-2000:]
    hanging = make_gateway(faults=("slow-headers",), timing=FAST)
    code, output, took = conformance(
        "--base-url", hanging.base_url, "--select", "endpoint", "--budget-s", "60",
        "--timeout-first-byte-s", "0.5", "--timeout-total-s", "2",
        "--report-dir", str(tmp_path))
    assert code == 1, output[-2000:]
    found = {f["check_id"] for f in
             json.loads((tmp_path / "conformance.json").read_text())["findings"]}
    assert "transport.first_byte_timeout" in found, found
    assert took < 30
