"""Load processes: ``--processes auto`` spreads users over a worker per core on ports of its
own, two runs at once never meet (Locust's fixed 5557 joined them into one master), and no
Locust process outlives its run, however the run ends (Ctrl-C, or ``gateprobe`` killed)."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from gateprobe.commands.load.runner import LoadOptions, local_processes
from gateprobe.reference import Timing
from gateway_fixtures import MakeGateway

LOOSE_SLO = "ttft_p95_ms: 5000\nerror_rate_max: 0\nstream_findings_max: 0\n"


def test_auto_is_one_process_per_core_and_never_more_than_users(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(os, "sched_getaffinity", lambda _: {0, 1, 2, 3})
    assert local_processes(LoadOptions("latency", users=8), 8) == 4
    assert local_processes(LoadOptions("latency", users=3, processes="auto"), 3) == 3
    assert local_processes(LoadOptions("tasks", users=1), 1) is None  # one user: one process
    assert local_processes(LoadOptions("rate-limits"), 3) is None  # one user per tier
    assert local_processes(LoadOptions("latency", processes=2), 8) == 2
    assert local_processes(LoadOptions("latency", processes=1), 8) is None  # no forked one
    assert local_processes(LoadOptions("latency", master=True), 8) is None
    monkeypatch.setattr(os, "sched_getaffinity", lambda _: {0})
    assert local_processes(LoadOptions("latency", users=8), 8) is None


def command(base_url: str, report: Path, slo: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "gateprobe", "load", "latency", "--base-url", base_url,
            "--api-key-env", "GP_TEST_KEY", "--users", "4", "--max-tokens", "16",
            "--slo", str(slo), "--report-dir", str(report), *extra]


def environment() -> dict[str, str]:
    return {**os.environ, "GP_TEST_KEY": "gp-vip-0001"}


@pytest.mark.slow
def test_two_runs_at_once_each_finish_with_their_own_results(make_gateway: MakeGateway,
                                                            tmp_path: Path) -> None:
    gateway = make_gateway(timing=Timing(ttft_ms=10, itl_ms=1))
    slo = tmp_path / "slo.yaml"
    slo.write_text(LOOSE_SLO)
    runs = [subprocess.Popen(command(gateway.base_url, tmp_path / name, slo, "--processes",
                                     "2", "--duration", "4"),
                             env=environment(), stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT, text=True)
            for name in ("one", "two")]
    outputs = [run.communicate(timeout=120)[0] for run in runs]
    pids = []
    for run, name, out in zip(runs, ("one", "two"), outputs, strict=True):
        assert run.returncode == 0, out
        log = (tmp_path / name / "locust.log").read_text()
        connected = [int(n) for n in re.findall(r"(\d+) workers connected", log)]
        assert max(connected) == 2, log  # its own two, never the other run's
        samples = [json.loads(x) for x in (tmp_path / name / "samples.jsonl").read_text()
                   .splitlines()]
        verdict = json.loads((tmp_path / name / "verdict.json").read_text())
        assert verdict["requests"] == len(samples) > 0
        pids.append({s["pid"] for s in samples})
        assert len(pids[-1]) == 2, f"{name}: samples from its own two workers"
    assert not pids[0] & pids[1]


def plan_path_of(pid: int) -> str | None:
    """The ``GATEPROBE_LOAD_PLAN`` in a process's environment (None: none, or gone)."""
    try:
        env = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    except OSError:
        return None
    for item in env:
        if item.startswith(b"GATEPROBE_LOAD_PLAN="):
            return item.split(b"=", 1)[1].decode()
    return None


def left_behind(report: Path) -> list[int]:
    """Processes still running with this run's plan."""
    mine = str(report / "plan.json")
    return [int(p.name) for p in Path("/proc").iterdir()
            if p.name.isdigit() and plan_path_of(int(p.name)) == mine]


def started(report: Path, run: subprocess.Popen[str]) -> None:
    """Wait until the run's workers have sent their first samples."""
    for _ in range(600):
        lag = report / "lag.jsonl"
        if lag.exists() and lag.stat().st_size and len(left_behind(report)) >= 3:
            return
        assert run.poll() is None, run.communicate()[0]
        time.sleep(0.1)
    raise AssertionError("the run did not start")


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/environ").exists(), reason="needs Linux /proc")
@pytest.mark.parametrize("how", [signal.SIGINT, signal.SIGKILL], ids=["ctrl-c", "kill-9"])
def test_a_run_ended_midway_leaves_no_process(make_gateway: MakeGateway, tmp_path: Path,
                                              how: signal.Signals) -> None:
    gateway = make_gateway(timing=Timing(ttft_ms=10, itl_ms=1))
    slo = tmp_path / "slo.yaml"
    slo.write_text(LOOSE_SLO)
    report = tmp_path / "run"
    run = subprocess.Popen(command(gateway.base_url, report, slo, "--processes", "2",
                                   "--duration", "60"),
                           env=environment(), stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, text=True)
    try:
        started(report, run)
        run.send_signal(how)
        out = run.communicate(timeout=60)[0]
        if how == signal.SIGINT:
            assert run.returncode == 130, out
        for _ in range(200):  # a master told by the kernel ends its workers, then itself
            if not left_behind(report):
                break
            time.sleep(0.1)
        assert left_behind(report) == []
    finally:
        run.kill()
        run.communicate()
        for pid in left_behind(report):
            os.kill(pid, signal.SIGKILL)
