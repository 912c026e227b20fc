"""The tasks scenario: Midjourney imagine tasks polled to their end under concurrency, judged
by time to SUCCESS, failure rate and the lifecycle grammar, only on a target declaring them."""

from __future__ import annotations

import io
import json
import re
from pathlib import Path
from typing import Any

import pytest

from gateprobe.cli import main
from gateprobe.commands.load.results import LiveSamples
from gateprobe.commands.load.runner import LoadOptions, plan_load
from gateprobe.commands.load.scenarios import verdict
from gateprobe.commands.load.slo import evaluate_tasks, validate
from gateprobe.core.console import Console
from gateprobe.core.targets import Target
from gateway_fixtures import MakeGateway

STEP_MS = 5.0
"""The reference's task stage: a task takes a few stages, so tens of ms."""
SLO = "task_success_p95_ms: 5000\ntask_failure_rate_max: 0\ntask_findings_max: 0\n"
MJ = ["--endpoints", "models,midjourney"]


@pytest.fixture(autouse=True)
def key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GP_TEST_KEY", "gp-vip-0001")


def tasks_load(base_url: str, report: Path, *extra: str,
               slo: str | None = SLO) -> tuple[int, str, str]:
    """A 2 s run of 3 users; ``slo`` None: the shipped ``load/slo.yaml``."""
    report.mkdir(parents=True, exist_ok=True)
    slo_flags = []
    if slo is not None:
        (report / "slo.yaml").write_text(slo)
        slo_flags = ["--slo", str(report / "slo.yaml")]
    out, err = io.StringIO(), io.StringIO()
    code = main(["load", "tasks", "--base-url", base_url, "--api-key-env", "GP_TEST_KEY",
                 "--profile", "ohmygpt", "--duration", "2", "--users", "3",
                 "--poll-interval", "0.01", "--report-dir", str(report), *slo_flags, *extra],
                Console(out, err))
    return code, out.getvalue(), err.getvalue()


def samples(report: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (report / "samples.jsonl").read_text().splitlines()]


@pytest.mark.slow
def test_a_clean_gateway_meets_the_task_objectives(make_gateway: MakeGateway,
                                                   tmp_path: Path) -> None:
    gateway = make_gateway(task_step_ms=STEP_MS)
    code, out, err = tasks_load(gateway.base_url, tmp_path, *MJ)
    assert code == 0, out + err
    result = json.loads((tmp_path / "verdict.json").read_text())["tasks"]
    assert result["tasks"] >= 3 and result["succeeded"] == result["tasks"]
    assert result["failure_rate"] == 0 and result["lifecycle_findings"] == {}
    # Never before the reference's stages are due: at least two stages past the id.
    assert result["time_to_success_ms"]["p50"] >= 2 * STEP_MS
    judged = [s for s in samples(tmp_path) if s["gave_up"] != "budget"]
    assert all(s["final"] == "SUCCESS" and s["polls"] >= 2 and s["ok"] for s in judged)
    assert f"PASS: every objective met ({result['tasks'] + result['cut_by_run']} tasks)" in out
    assert "time to SUCCESS" in (tmp_path / "locust_stats.csv").read_text()


@pytest.mark.slow
def test_tasks_that_never_finish_fail_the_run(make_gateway: MakeGateway,
                                              tmp_path: Path) -> None:
    gateway = make_gateway(task_step_ms=STEP_MS, faults=("mj-task-never-finishes",))
    code, out, err = tasks_load(gateway.base_url, tmp_path, *MJ, "--task-deadline", "0.3")
    assert code == 1, out + err
    result = json.loads((tmp_path / "verdict.json").read_text())
    assert {b["slo"] for b in result["breaches"]} == {
        "task_success_p95_ms", "task_failure_rate_max", "task_findings_max"}
    assert result["tasks"]["by_outcome"].keys() == {"deadline"}
    assert "task.deadline" in result["failed_checks"]
    assert "FAIL:" in out


@pytest.mark.slow
def test_the_shipped_objectives_fail_a_gateway_whose_tasks_never_finish(
        make_gateway: MakeGateway, tmp_path: Path) -> None:
    gateway = make_gateway(task_step_ms=STEP_MS, faults=("mj-task-never-finishes",))
    code, out, err = tasks_load(gateway.base_url, tmp_path, *MJ, "--task-deadline", "0.2",
                                slo=None)
    assert code == 1, out + err
    reasons = json.loads((tmp_path / "verdict.json").read_text())["reasons"]
    assert "task_failure_rate_max: 1 > 0.01" in reasons


def test_tasks_are_refused_on_a_target_that_does_not_declare_them(tmp_path: Path) -> None:
    code, _, err = tasks_load("http://127.0.0.1:9", tmp_path)
    assert code == 2
    assert err.strip().splitlines() == [
        "gateprobe: tasks sends to /api/v1/ai/draw/mj/imagine, which the target does not "
        "serve (declare midjourney in its endpoints, or --endpoints ...,midjourney)"]


@pytest.mark.parametrize(("flags", "message"), [
    (["--poll-interval", "0"], "--poll-interval must be > 0"),
    (["--weight", "chat=1"], "--weight is for the latency scenario"),
    (["--arrival", "poisson", "--rate", "1"], "tasks runs closed-loop users"),
])
def test_task_flags_that_cannot_work_are_one_line(tmp_path: Path, flags: list[str],
                                                  message: str) -> None:
    code, _, err = tasks_load("http://127.0.0.1:9", tmp_path, *MJ, *flags)
    assert code == 2 and message in err and "Traceback" not in err


def test_dry_run_names_the_polling_and_sends_nothing(tmp_path: Path) -> None:
    code, out, _ = tasks_load("http://127.0.0.1:9", tmp_path, *MJ, "--dry-run",
                              "--task-deadline", "1")
    assert code == 0
    assert "3 users, each creating a Midjourney imagine task and querying it every 0.01 s" \
        in out
    assert "at most 101 queries and 1 s a task" in out and "nothing was sent" in out


def test_the_poll_interval_defaults_to_the_targets_pace() -> None:
    options = LoadOptions("tasks").check()
    near = Target("http://127.0.0.1:9", "ohmygpt", "k", endpoints=frozenset({"midjourney"}))
    far = Target("https://gw.example", "ohmygpt", "k", endpoints=frozenset({"midjourney"}),
                 allow_load=True)
    assert plan_load(near, options).poll_interval_s == 0.02
    assert (plan_load(far, options).poll_interval_s,
            plan_load(far, options).task_deadline_s) == (5.0, 300.0)


def test_tasks_cut_by_the_run_are_judged_nowhere() -> None:
    plan = plan_load(Target("http://127.0.0.1:9", "ohmygpt", "k",
                            endpoints=frozenset({"midjourney"})),
                     LoadOptions("tasks", slo={"task_failure_rate_max": 0}))
    done = {"final": "SUCCESS", "gave_up": None, "time_to_success_ms": 40.0, "polls": 3}
    cut = {"final": "IN_PROGRESS", "gave_up": "budget", "polls": 2}
    result = verdict(plan, [done, cut], 1.0)
    assert result["ok"] and result["tasks"]["cut_by_run"] == 1
    failed = verdict(plan, [done, {**cut, "gave_up": "deadline"}], 1.0)
    assert failed["reasons"][0] == "task_failure_rate_max: 0.5 > 0"


def test_task_slos_are_known_and_a_success_percentile_without_data_is_missed() -> None:
    slo = validate({"task_success_p95_ms": 100, "task_failure_rate_max": 0.1}, "slo")
    missed = evaluate_tasks({"time_to_success_ms": {"p95": None}, "failure_rate": 0.0}, slo)
    assert [b.slo for b in missed] == ["task_success_p95_ms"]


@pytest.mark.slow
def test_run_has_an_opt_in_tasks_phase(make_gateway: MakeGateway, tmp_path: Path) -> None:
    gateway = make_gateway(task_step_ms=STEP_MS)
    out, err = io.StringIO(), io.StringIO()
    code = main(["run", "--suites", "tasks", "--base-url", gateway.base_url, "--api-key-env",
                 "GP_TEST_KEY", "--profile", "ohmygpt", *MJ, "--report-dir", str(tmp_path)],
                Console(out, err))
    assert code == 0, out.getvalue() + err.getvalue()
    phases = json.loads((tmp_path / "summary.json").read_text())["phases"]
    assert [(p["name"], p["status"]) for p in phases] == [("tasks", "passed")]
    assert "SUCCESS, time to SUCCESS p95" in phases[0]["reason"]
    assert (tmp_path / "tasks" / "verdict.json").exists()


@pytest.mark.slow
def test_run_skips_the_tasks_phase_on_a_target_without_midjourney(tmp_path: Path) -> None:
    out = io.StringIO()
    code = main(["run", "--suites", "conformance,tasks", "--base-url", "http://127.0.0.1:9",
                 "--api-key-env", "GP_TEST_KEY", "--dry-run"], Console(out, io.StringIO()))
    assert code == 0
    said = re.search(r"^tasks: skipped \(tasks sends to (\S+), which the target does not "
                     r"serve \(declare midjourney", out.getvalue(), re.MULTILINE)
    assert said and said.group(1).endswith("/imagine"), out.getvalue()


def test_the_live_line_counts_tasks_and_not_those_the_run_cut(tmp_path: Path) -> None:
    path = tmp_path / "samples.jsonl"
    path.write_text("".join(json.dumps(s) + "\n" for s in (
        {"final": "SUCCESS", "ok": True, "polls": 3, "gave_up": None},
        {"final": "IN_PROGRESS", "ok": False, "polls": 9, "gave_up": "deadline"},
        {"final": "IN_PROGRESS", "ok": False, "polls": 2, "gave_up": "budget"})))
    live = LiveSamples(path)
    live.poll()
    assert live.text() == "2 tasks, 1 errors"


@pytest.mark.slow
def test_a_time_to_success_objective_below_the_gateways_stages_fails_the_run(
        make_gateway: MakeGateway, tmp_path: Path) -> None:
    gateway = make_gateway(task_step_ms=STEP_MS)
    code, out, err = tasks_load(gateway.base_url, tmp_path, *MJ,
                                slo="task_success_p95_ms: 5\ntask_failure_rate_max: 0\n")
    assert code == 1, out + err
    result = json.loads((tmp_path / "verdict.json").read_text())
    assert [b["slo"] for b in result["breaches"]] == ["task_success_p95_ms"]
    assert result["breaches"][0]["observed"] >= 2 * STEP_MS
    assert result["failed_checks"] == ["slo.task_success_p95_ms"]
