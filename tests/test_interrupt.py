"""Ctrl-C: exit 130, one line on stderr, no pytest banner, and the phases that finished in the
report folder."""

from __future__ import annotations

import io
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from gateprobe.cli import COMMANDS, main
from gateprobe.commands import compare, pipeline
from gateprobe.commands.compare import MirrorResult
from gateprobe.commands.conformance_runner import ConformanceOptions, run_conformance
from gateprobe.core.console import Console
from gateprobe.core.errors import INTERRUPT
from gateprobe.core.events import PASSED, Phase
from gateprobe.core.targets import Target
from gateway_fixtures import MakeGateway, RunningGateway


def interrupt(*_: Any) -> Any:
    raise KeyboardInterrupt


def default_sigint() -> None:
    """A process started in the background inherits SIGINT ignored (and Python then installs
    no KeyboardInterrupt handler): give the child the default, as a terminal would."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def phases_of(folder: Path) -> list[str]:
    summary = json.loads((folder / "summary.json").read_text())
    return [p["name"] for p in summary["phases"]]


@pytest.mark.slow
@pytest.mark.parametrize("command", ["run", "gate"])
def test_ctrl_c_after_a_phase_writes_the_partial_report_and_exits_130(
    command: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(pipeline, "load_phase", interrupt)  # Ctrl-C in the second phase
    report = tmp_path / "report"
    if command == "run":
        argv = ["run", "--suites", "conformance,latency", "--select", "endpoint"]
    else:
        (tmp_path / "gate.yaml").write_text(
            "embedded: true\nsuites: [conformance, latency]\nselect: endpoint\n")
        argv = ["gate", "--config", str(tmp_path / "gate.yaml")]
    out, err = io.StringIO(), io.StringIO()
    assert main([*argv, "--report-dir", str(report)], Console(out, err)) == 130
    assert err.getvalue() == "gateprobe: interrupted\n"
    assert phases_of(report) == ["conformance"]  # the finished phase, not the one under way
    assert (report / "report.html").is_file() and (report / "summary.md").is_file()
    assert "INTERRUPTED" in out.getvalue()


@pytest.mark.slow
def test_ctrl_c_in_the_conformance_suite_is_one_line_and_130(tmp_path: Path) -> None:
    """A real SIGINT to the process while pytest runs the suite: no KeyboardInterrupt banner,
    not pytest's exit 2, and a report folder all the same."""
    env = {k: v for k, v in os.environ.items()  # the suite's lag bound stays (conftest)
           if not k.startswith("GATEPROBE_") or k == "GATEPROBE_LAG_BOUND_MS"}
    report = tmp_path / "report"
    proc = subprocess.Popen(
        [sys.executable, "-m", "gateprobe", "run", "--suites", "conformance", "--report-dir",
         str(report)], cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True, preexec_fn=default_sigint)
    deadline = time.monotonic() + 60
    while not report.exists() and time.monotonic() < deadline:  # made just before the phases
        time.sleep(0.1)
    time.sleep(3)  # the suite is under way by now (the whole of it takes half a minute or more)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, out[-2000:] + err[-2000:]
    assert err == "gateprobe: interrupted\n", err[-2000:]
    assert not re.search(r"!+ KeyboardInterrupt !+", out)  # pytest's banner
    assert phases_of(report) == []


def test_ctrl_c_during_compare_reports_the_mirrors_that_finished(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def probe(name: str, target: Any, options: Any, stop: Any,
              upstream_url: Any = None) -> MirrorResult:
        if name.endswith(":2"):
            raise KeyboardInterrupt  # Ctrl-C while this mirror is probed
        return MirrorResult(name, target.base_url)

    monkeypatch.setattr(compare, "probe_mirror", probe)
    monkeypatch.setenv("GATEPROBE_API_KEY", "gp-vip-0001")
    out, err = io.StringIO(), io.StringIO()
    code = main(["compare", "--base-url", "http://127.0.0.1:1", "--base-url",
                 "http://127.0.0.1:2", "--report-dir", str(tmp_path)], Console(out, err))
    assert code == 130 and err.getvalue() == "gateprobe: interrupted\n"
    assert phases_of(tmp_path) == ["mirror 127.0.0.1:1"]


@pytest.mark.slow
def test_a_stopped_mirror_sends_nothing_more(make_gateway: MakeGateway) -> None:
    gateway = make_gateway()
    stop = threading.Event()
    stop.set()
    result = compare.probe_mirror("a", Target(gateway.base_url, "ohmygpt", "gp-vip-0001"),
                                  compare.CompareOptions(samples=3), stop)
    assert result.probes == [] and result.ttft_ms == []
    assert result.long_request["verdict"] == "not run"


def test_a_ctrl_c_python_dropped_still_stops_the_run_after_the_phase(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A Ctrl-C landing in a garbage-collector callback is printed as "unraisable" and dropped
    by Python (it happened in hypothesis's gc callback during the fuzz tests); the SIGINT
    handler's flag stops the run where the phase ends."""
    def conformance(*_: Any) -> Phase:
        INTERRUPT.set()  # what the handler did before its exception was dropped
        return Phase("conformance", PASSED, "")

    monkeypatch.setattr(pipeline, "conformance_phase", conformance)
    monkeypatch.setattr(pipeline, "load_phase", lambda *_: pytest.fail("ran past Ctrl-C"))
    err = io.StringIO()
    code = main(["run", "--suites", "conformance,latency", "--report-dir", str(tmp_path)],
                Console(io.StringIO(), err))
    assert code == 130 and err.getvalue() == "gateprobe: interrupted\n"
    assert phases_of(tmp_path) == ["conformance"]
    assert not INTERRUPT.is_set()  # handled: the next run in this process is not stopped


@pytest.mark.slow
def test_the_suite_stops_on_a_dropped_ctrl_c(gateway: RunningGateway, tmp_path: Path) -> None:
    INTERRUPT.set()
    try:
        with pytest.raises(KeyboardInterrupt):
            run_conformance(Target(gateway.base_url, "ohmygpt", "gp-vip-0001"),
                            ConformanceOptions(select="endpoint", report_dir=tmp_path))
    finally:
        INTERRUPT.clear()


def test_sigint_sets_the_flag_and_raises(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[bool] = []

    def command(*_: Any) -> int:
        try:
            signal.raise_signal(signal.SIGINT)
        finally:
            seen.append(INTERRUPT.is_set())
        return 0

    monkeypatch.setitem(COMMANDS, "run", command)
    # Python's own handler, as in a terminal (a background job starts with SIGINT ignored).
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        err = io.StringIO()
        assert main(["run"], Console(io.StringIO(), err)) == 130
        assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # restored
    finally:
        signal.signal(signal.SIGINT, previous)
    assert seen == [True] and err.getvalue() == "gateprobe: interrupted\n"
