"""The live console: progress lines, the closing findings tree, and what a user sees of a
conformance run and of ``gateprobe run`` (pytest's own report goes to ``pytest.log``)."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from gateprobe.commands.load.results import LiveSamples
from gateprobe.core.console import Console, PlainProgress, progress_text
from gateprobe.core.findings import Finding, Severity
from gateprobe.engine.live import findings_tree, outcome_line
from gateprobe.reference import Timing
from gateway_fixtures import MakeGateway

FAULT = "stream-drop-terminator"


def finding(check: str, endpoint: str, case: str, observed: str = "no [DONE]") -> Finding:
    return Finding(check, endpoint, Severity.HIGH, "the stream ends with data: [DONE]", observed,
                   case=f"{endpoint} {case}")


def test_findings_group_by_check_then_endpoint_with_each_case_once_and_counted() -> None:
    findings = [finding("stream.terminator", "/v1/chat/completions", "chat"),
                finding("stream.terminator", "/v1/chat/completions", "chat"),
                finding("stream.terminator", "/v1/chat/completions", "stream"),
                finding("stream.terminator", "/v1/messages", "messages", "no message_stop"),
                finding("golden.match", "/v1/messages", "stream", "--- golden\n+++ received")]
    lines = findings_tree(findings, width=120)
    assert lines[0] == "  stream.terminator  x4"  # the larger check first
    chat = lines[1]
    assert chat.startswith("    /v1/chat/completions  x3  no [DONE]; expected the stream ends")
    assert chat.endswith(":  chat x2; stream")  # the endpoint is not repeated in the case
    assert lines[3] == "  golden.match  x1"
    assert "differs from the stream ends with data: [DONE]" in lines[4]  # a diff is not inlined
    assert "+++" not in "\n".join(lines)


def test_many_cases_wrap_under_their_endpoint() -> None:
    findings = [finding("stream.terminator", "/v1/complete", f"case number {i}")
                for i in range(12)]
    lines = findings_tree(findings, width=60)
    assert lines[1].startswith("    /v1/complete  x12") and len(lines) > 3
    assert all(len(line) <= 60 for line in lines)
    cases = " ".join(line.strip() for line in lines[2:])
    assert all(f"case number {i};" in cases or cases.endswith(f"case number {i}")
               for i in range(12))


def test_outcome_line_says_only_the_outcomes_that_happened() -> None:
    clean = outcome_line(Counter(passed=95, skipped=1), [], 3.24)
    assert clean == "PASS: 95 passed, 1 skipped in 3.2 s; 0 findings"
    failed = outcome_line(Counter(passed=2, failed=1),
                          [finding("stream.terminator", "/v1/messages", "x")], 1.0)
    assert failed == "FAIL: 2 passed, 1 failed in 1.0 s; 1 finding"


def test_plain_progress_prints_now_and_then_not_every_update() -> None:
    now = [0.0]
    out = io.StringIO()
    progress = PlainProgress(Console(out), "tests", every_s=10, clock=lambda: now[0])
    for second in range(0, 100):
        now[0] = float(second)
        progress.update("stream", second, 100, "findings 0")
    lines = out.getvalue().splitlines()
    # every 10 s, then every quarter of the time so far once that is longer
    assert [line.split()[1] for line in lines] == ["10/100", "20/100", "30/100", "40/100",
                                                    "54/100", "72/100", "96/100"]
    assert lines[0] == "  stream:  10/100 tests  0:10 of ~1:40  findings 0"


def test_the_whole_time_is_projected_only_once_a_tenth_is_done() -> None:
    assert progress_text("endpoint", 3, 292, "tests", 10, "findings 0") == \
        "endpoint:  3/292 tests  0:10  findings 0"
    assert progress_text("fuzz", 221, 292, "tests", 26, "") == "fuzz:  221/292 tests  0:26 of ~0:34"


def test_a_load_progress_line_counts_seconds_not_an_expected_time() -> None:
    assert progress_text("latency", 12, 30, "s", 12.3, "5 requests") == \
        "latency:  12/30 s  5 requests"


def test_live_samples_read_what_is_written_so_far(tmp_path: Path) -> None:
    path = tmp_path / "samples.jsonl"
    live = LiveSamples(path)
    live.poll()  # nothing written yet
    assert live.text() == "0 requests, 0 errors"
    with path.open("w") as file:
        file.write(json.dumps({"ok": True, "ttft_ms": 20.0}) + "\n")
        file.write(json.dumps({"ok": False, "ttft_ms": 40.0}) + "\n")
        file.write('{"ok": true, "ttft')  # a line still being written
    live.poll()
    assert live.text() == "2 requests, 1 errors, TTFT p50 30 ms"
    with path.open("a") as file:
        file.write('_ms": 30.0}\n' + json.dumps({"status": 429, "ok": False}) + "\n")
        file.write(json.dumps({"dropped": True, "ok": False}) + "\n")
    live.poll()
    assert live.text() == "4 requests, 1 errors, 1 refused (429), TTFT p50 30 ms"


def gateprobe(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "GATEPROBE_API_KEY": "gp-vip-0001"}
    return subprocess.run([sys.executable, "-m", "gateprobe", *args], capture_output=True,
                          text=True, env=env, timeout=300)


def assert_each_finding_once(stdout: str, report: Path) -> None:
    """Every (check, endpoint, case) of the run's findings is in the output once, counted."""
    found = json.loads((report / "conformance.json").read_text())["findings"]
    assert found
    for check in {f["check_id"] for f in found}:
        total = sum(1 for f in found if f["check_id"] == check)
        assert stdout.count(f"  {check}  x{total}\n") == 1, check
    for f in found:
        case = f["case"].removeprefix(f["endpoint"]).strip()
        assert case in stdout, case


@pytest.mark.slow
def test_a_run_with_one_stream_fault_reads_in_about_forty_lines(make_gateway: MakeGateway,
                                                                tmp_path: Path) -> None:
    gw = make_gateway(timing=Timing(0, 0), faults=(FAULT,))
    result = gateprobe("conformance", "--base-url", gw.base_url, "--max-examples", "3",
                       "--report-dir", str(tmp_path))
    assert result.returncode == 1, result.stdout[-3000:] + result.stderr[-2000:]
    lines = result.stdout.splitlines()
    assert len(lines) <= 40, result.stdout
    assert "Traceback" not in result.stdout and "judge = " not in result.stdout
    judged = [line for line in lines if not line.startswith(("information (not judged): ",
                                                             "fuzz seed "))]
    assert judged[-1].startswith("  ") and any(line.startswith("FAIL: ") for line in lines)
    assert_each_finding_once(result.stdout, tmp_path)
    log = (tmp_path / "pytest.log").read_text()
    assert "FAILED" in log and "findings per endpoint" in log  # pytest's report, whole


@pytest.mark.slow
def test_verbose_shows_pytests_own_output(make_gateway: MakeGateway, tmp_path: Path) -> None:
    gw = make_gateway(timing=Timing(0, 0), faults=(FAULT,))
    quiet = gateprobe("conformance", "--base-url", gw.base_url, "--select", "stream")
    loud = gateprobe("conformance", "--base-url", gw.base_url, "--select", "stream", "-v",
                     "--report-dir", str(tmp_path))
    assert quiet.returncode == loud.returncode == 1
    assert "test_stream[" not in quiet.stdout
    assert "test_stream[" in loud.stdout and "FAILED" in loud.stdout
    assert "  stream.terminator  x" in loud.stdout  # the closing findings all the same
    assert "test_stream[" in (tmp_path / "pytest.log").read_text()


@pytest.mark.slow
def test_gateprobe_run_with_one_stream_fault(make_gateway: MakeGateway, tmp_path: Path) -> None:
    gw = make_gateway(timing=Timing(0, 0), faults=(FAULT,))
    result = gateprobe("run", "--base-url", gw.base_url, "--suites", "conformance,latency",
                       "--select", "stream or golden", "--report-dir", str(tmp_path))
    assert result.returncode == 1, result.stdout[-3000:] + result.stderr[-2000:]
    # about forty: the run's tables and the findings tree (whose wrapped case lists grow as
    # stream cases are added), never a line per test
    assert len(result.stdout.splitlines()) <= 45, result.stdout
    assert "{'" not in result.stdout  # no Python reprs: "stream.terminator x12"
    assert "stream findings: stream.terminator x" in result.stdout
    assert_each_finding_once(result.stdout, tmp_path)
    assert "FAILED" in (tmp_path / "pytest.log").read_text()


def test_on_a_terminal_the_progress_is_one_line_redrawn_in_place() -> None:
    import pty
    import select

    main_fd, terminal_fd = pty.openpty()
    try:
        with os.fdopen(terminal_fd, "w", closefd=False) as terminal:
            console = Console(terminal)
            assert console.is_terminal
            with console.progress("tests") as progress:
                progress.update("stream", 3, 12, "findings 2")
        seen = b""
        while select.select([main_fd], [], [], 0.5)[0]:
            seen += os.read(main_fd, 65536)
    finally:
        os.close(main_fd)
        os.close(terminal_fd)
    text = seen.decode(errors="replace")
    assert "stream:  3/12 tests" in text and "findings 2" in text
    assert "\x1b[" in text  # drawn with terminal controls, then erased (transient)


def test_verbose_is_a_flag_of_every_command_that_runs_conformance() -> None:
    from gateprobe.cli import build_parser

    parser = build_parser()
    for argv in (["conformance"], ["run"], ["gate", "--config", "gate.yaml"]):
        assert parser.parse_args([*argv, "-v"]).verbose
        assert not parser.parse_args(argv).verbose


@pytest.mark.slow
def test_ctrl_c_in_the_suite_is_passed_on_not_a_configuration_error(
        make_gateway: MakeGateway, tmp_path: Path) -> None:
    """pytest catches Ctrl-C and returns its own exit code 2; the run passes the interrupt on
    (exit 130, one line) instead of calling it a usage error."""
    module = tmp_path / "interrupting.py"
    module.write_text("import gateprobe\n\n\n"
                      "@gateprobe.check('policy.interrupt', gateprobe.Severity.LOW, 'no')\n"
                      "def interrupt(ctx, ex):\n"
                      "    raise KeyboardInterrupt\n")
    gw = make_gateway(timing=Timing(0, 0))
    result = gateprobe("conformance", "--base-url", gw.base_url, "--select", "endpoint",
                       "--checks", str(module))
    assert result.returncode == 130, result.stdout[-2000:] + result.stderr
    assert result.stderr == "gateprobe: interrupted\n"
    assert "Traceback" not in result.stdout


class FakeLocust:
    """A Locust process that is still running for ``polls`` waits, then exits 0."""

    def __init__(self, polls: int) -> None:
        self.polls = polls

    def wait(self, timeout: float | None = None) -> int:
        if self.polls:
            self.polls -= 1
            raise subprocess.TimeoutExpired("locust", timeout or 0)
        return 0


def test_a_load_run_shows_what_its_samples_say_while_it_runs(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from types import SimpleNamespace

    from gateprobe.commands.load import runner
    from gateprobe.commands.load.results import LiveSamples

    monkeypatch.setattr(runner, "WATCH_EVERY_S", 0.0)  # a line at every poll
    (tmp_path / "samples.jsonl").write_text(
        json.dumps({"ok": True, "ttft_ms": 21.0}) + "\n" + json.dumps({"ok": True}) + "\n")
    plan = SimpleNamespace(out=tmp_path, scenario="latency", duration_s=8.0)
    out = io.StringIO()
    live = LiveSamples(tmp_path / "samples.jsonl")
    code = runner._watch(FakeLocust(polls=2), plan, 60, Console(out), 8.0,  # type: ignore[arg-type]
                         live)
    assert code == 0
    lines = out.getvalue().splitlines()
    assert lines and all(line.startswith("  latency:  0/8 s  ") for line in lines)
    assert lines[-1].endswith("2 requests, 0 errors, TTFT p50 21 ms")
