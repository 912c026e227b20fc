"""The gateway's own APIs: Midjourney tasks (lifecycle, polling, pages) and the search proxies.

Over real HTTP against the reference gateway with fast task stages. The faults only a sequence
of answers shows (``proven_by="sequence"``) are proven here; the others run through every case in
tests/reference/test_faults.py.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import httpx
import pytest

from gateprobe.core.checks import Context, Exchange, run_checks
from gateprobe.core.findings import Finding
from gateprobe.core.targets import Target
from gateprobe.engine.cases import all_cases, gateway_api_cases
from gateprobe.engine.embedded import EMBEDDED_ENDPOINTS
from gateprobe.engine.probe import send
from gateprobe.engine.runstate import RunState
from gateprobe.engine.tasks import Polling, create, poll, walk_pages
from gateprobe.protocols import conformance  # noqa: F401  (registers the checks)
from gateprobe.protocols.conformance import checks_for
from gateprobe.protocols.midjourney import GAVE_UP, TaskGrammar, judge_snapshots, snapshot_event
from gateprobe.reference import RunningGateway, Timing
from gateprobe.reference.faults import CATALOGUE
from gateprobe.reference.midjourney import FAIL_MARK
from gateway_fixtures import FakeClock, MakeGateway

STEP_MS = 10.0
FAST_POLL = Polling(interval_s=0.005, deadline_s=10.0)
TASK_FAULTS = [n for n, f in CATALOGUE.items() if f.proven_by == "sequence"
               and n.startswith("mj-")]


@pytest.fixture(scope="module")
def http() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=30) as client:
        yield client


def target_for(gateway: RunningGateway, endpoints: frozenset[str] = EMBEDDED_ENDPOINTS,
               ) -> Target:
    return Target(gateway.base_url, "ohmygpt", "gp-vip-0001",
                  no_permission_key="gp-nomodel-0001", auth_styles=frozenset({"bearer"}),
                  endpoints=endpoints)


def judged(target: Target, exchange: Exchange) -> list[Finding]:
    ctx = Context.of(target, "gateway")
    return run_checks(ctx, exchange, checks_for(ctx, exchange))


def lifecycle_findings(http: httpx.Client, target: Target, polling: Polling = FAST_POLL,
                       ) -> set[str]:
    """Create tasks of each kind, poll each to its end, run a follow-up and walk the pages."""
    run, found = RunState(), set[str]()
    pixel = "data:image/png;base64,AAAA"
    bodies = [("imagine", None),
              ("blend", {"model": "midjourney", "base64Array": [pixel, pixel]}),
              ("describe", {"model": "midjourney", "base64": pixel})]
    for path, body in bodies:
        created, task_id = create(http, target, run, path, body)
        found |= {f.check_id for f in judged(target, created)}
        assert task_id is not None, created.body
        polled = poll(http, target, run, task_id, polling)
        found |= {f.check_id for f in judged(target, polled)}
    for _ in range(3):  # six tasks: two pages of five
        create(http, target, run)
    found |= {f.check_id for f in judged(target, walk_pages(http, target, run))}
    return found


def test_clean_gateway_passes_every_gateway_case_and_lifecycle(make_gateway: MakeGateway,
                                                                http: httpx.Client) -> None:
    target = target_for(make_gateway(timing=Timing(0, 0), task_step_ms=STEP_MS))
    cases = gateway_api_cases(target)
    assert {c.category for c in cases} == {"endpoint", "errors", "auth"}
    run = RunState()
    for case in cases:
        exchange = send(http, target, case, run)
        ctx = Context.of(target, case.family, case.expect)
        assert run_checks(ctx, exchange, checks_for(ctx, exchange)) == [], case.id
    assert lifecycle_findings(http, target) == set()


def test_a_task_lives_through_every_stage_and_its_action_follows(
        make_gateway: MakeGateway, http: httpx.Client) -> None:
    target = target_for(make_gateway(task_step_ms=STEP_MS))
    run = RunState()
    _, task_id = create(http, target, run)
    assert task_id is not None
    polled = poll(http, target, run, task_id, FAST_POLL)
    snapshots = [json.loads(e.data) for e in polled.events]
    stages = list(dict.fromkeys((s["status"], s["progress"]) for s in snapshots))
    assert stages == [("NOT_START", "0%"), ("SUBMITTED", "0%"), ("IN_PROGRESS", "0%"),
                      ("IN_PROGRESS", "25%"), ("IN_PROGRESS", "50%"), ("IN_PROGRESS", "75%"),
                      ("SUCCESS", "100%")]
    done = snapshots[-1]
    assert done["imageDcUrl"].startswith("https://") and len(done["actions"]) == 8
    upscale = {"model": "midjourney", "taskId": task_id,
               "customId": done["actions"][0]["customId"]}
    created, child = create(http, target, run, "action", upscale)
    assert child is not None and child != task_id, created.body
    _, refused = create(http, target, run, "action", {**upscale, "customId": "MJ::nope"})
    assert refused is None


def test_a_prompt_asking_to_fail_ends_in_failure_with_its_reason(
        make_gateway: MakeGateway, http: httpx.Client) -> None:
    target = target_for(make_gateway(task_step_ms=STEP_MS))
    run = RunState()
    _, task_id = create(http, target, run, body={"model": "midjourney",
                                                 "prompt": f"a cat {FAIL_MARK}"})
    assert task_id is not None
    polled = poll(http, target, run, task_id, FAST_POLL)
    last = json.loads(polled.events[-1].data)
    assert last["status"] == "FAILURE" and last["failReason"]
    assert judged(target, polled) == []


@pytest.mark.parametrize("name", TASK_FAULTS)
def test_task_fault_trips_its_checks(make_gateway: MakeGateway, http: httpx.Client,
                                     name: str) -> None:
    target = target_for(make_gateway(faults=(name,), task_step_ms=STEP_MS))
    polling = replace(FAST_POLL, deadline_s=0.5)  # the never-finishing task: half a second
    found = lifecycle_findings(http, target, polling)
    assert set(CATALOGUE[name].trips) <= found, found


def test_polling_stops_at_its_deadline_without_looping(make_gateway: MakeGateway,
                                                       http: httpx.Client) -> None:
    """On a fake clock: each sleep moves it, so the deadline is met after a known count."""
    clock = FakeClock()
    target = target_for(make_gateway(faults=("mj-task-never-finishes",), task_step_ms=0.001))
    run = RunState()
    _, task_id = create(http, target, run)
    assert task_id is not None
    polled = poll(http, target, run, task_id, Polling(interval_s=1.0, deadline_s=30.0),
                  sleep=clock.advance, clock=clock)
    assert polled.events[-1].type == GAVE_UP and polled.events[-1].data == "deadline"
    assert len(polled.events) - 1 == 31  # polls at t=0..30 s; the next would pass 30 s
    assert {f.check_id for f in judged(target, polled)} == {"task.deadline"}


def test_polling_stops_at_the_runs_budget_and_blames_nobody(make_gateway: MakeGateway,
                                                            http: httpx.Client) -> None:
    clock = FakeClock()
    target = target_for(make_gateway(faults=("mj-task-never-finishes",), task_step_ms=0.001))
    run = RunState(budget_s=5.0, clock=clock)
    run.start()
    _, task_id = create(http, target, run)
    assert task_id is not None
    polled = poll(http, target, run, task_id, Polling(interval_s=1.0, deadline_s=300.0),
                  sleep=clock.advance, clock=clock)
    assert polled.events[-1].data == "budget"
    assert len(polled.events) - 1 <= 6
    assert judged(target, polled) == []  # the run ran out, not the gateway


def test_pages_hold_every_task_once_with_one_total(make_gateway: MakeGateway,
                                                   http: httpx.Client) -> None:
    target = target_for(make_gateway(task_step_ms=STEP_MS))
    run = RunState()
    ids = {create(http, target, run)[1] for _ in range(12)}
    walked = walk_pages(http, target, run, page_size=5)
    pages = [json.loads(e.data)["data"] for e in walked.events]
    assert [len(p["tasks"]) for p in pages] == [5, 5, 2]
    assert {t["taskId"] for p in pages for t in p["tasks"]} == ids
    assert {p["total"] for p in pages} == {12}
    assert judged(target, walked) == []


@pytest.mark.parametrize("size", ["2", "4", "21", "50", "ten"])
def test_a_page_size_outside_5_to_20_is_refused_in_the_envelope(gateway: RunningGateway,
                                                                size: str) -> None:
    with httpx.Client(base_url=gateway.base_url, timeout=10,
                      headers={"authorization": "Bearer gp-vip-0001"}) as client:
        answer = client.post(f"/api/v1/ai/draw/mj/query-mj-tasks?page=1&pageSize={size}",
                             data={"model": "midjourney"})
    assert answer.status_code == 400
    assert answer.json()["statusCode"] == 400 and answer.json()["data"] is None


def test_a_target_that_does_not_declare_a_family_gets_none_of_its_cases(
        gateway: RunningGateway) -> None:
    undeclared = Target(gateway.base_url, "ohmygpt", "gp-vip-0001")
    assert gateway_api_cases(undeclared) == []
    assert not any(c.family == "gateway" for c in all_cases(undeclared))
    assert not undeclared.serves("/api/v1/openapi/search/google-search/v1?q=x")
    only_search = replace(undeclared, endpoints=frozenset({"chat", "serper", "google_search"}))
    paths = {c.path.split("?")[0] for c in gateway_api_cases(only_search)}
    assert paths == {"/api/v1/openapi/search/serper/v1",
                     "/api/v1/openapi/search/google-search/v1"}
    only_mj = replace(undeclared, endpoints=frozenset({"midjourney"}))
    assert all(c.path.startswith("/api/v1/ai/draw/mj/") for c in gateway_api_cases(only_mj))
    assert gateway_api_cases(only_mj)


def _snapshots(*pairs: tuple[str, str], **last: object) -> list[dict[str, object]]:
    tasks: list[dict[str, object]] = [{"status": s, "progress": p, "failReason": None,
                                       "imageDcUrl": None, "actions": []} for s, p in pairs]
    tasks[-1].update(last)
    return tasks


@pytest.mark.parametrize(("tasks", "gave_up", "expected"), [
    (_snapshots(("NOT_START", "0%"), ("IN_PROGRESS", "50%"), ("SUCCESS", "100%"),
                imageDcUrl="https://cdn.example/x.png", actions=[{"customId": "a"}]),
     None, set()),
    (_snapshots(("IN_PROGRESS", "10%"), ("SUBMITTED", "20%")), None, {"task.order"}),
    (_snapshots(("IN_PROGRESS", "40%"), ("IN_PROGRESS", "30%")), None, {"task.progress"}),
    (_snapshots(("IN_PROGRESS", "40%"), ("IN_PROGRESS", "half")), None, {"task.progress"}),
    (_snapshots(("SUCCESS", "100%")), None, {"task.result"}),
    (_snapshots(("SUCCESS", "100%"), imageDcUrl="/relative.png",
                actions=[{"customId": "a"}]), None, {"task.result"}),
    (_snapshots(("FAILURE", "20%")), None, {"task.result"}),
    (_snapshots(("FAILURE", "20%"), failReason="banned"), None, set()),
    (_snapshots(("FAILURE", "20%"), ("IN_PROGRESS", "30%")), None,
     {"task.order", "task.result"}),  # and the FAILURE had no reason
    (_snapshots(("WAITING", "0%")), None, {"task.order"}),
    (_snapshots(("IN_PROGRESS", "50%")), "deadline", {"task.deadline"}),
    (_snapshots(("IN_PROGRESS", "50%")), "budget", set()),
], ids=["clean", "backwards", "progress-down", "progress-not-percent", "success-bare",
        "success-relative-url", "failure-bare", "failure-with-reason", "after-end",
        "unknown-status", "deadline", "budget"])
def test_the_task_grammar(tasks: list[dict[str, object]], gave_up: str | None,
                          expected: set[str]) -> None:
    events = [snapshot_event(t, n) for n, t in enumerate(tasks)]
    if gave_up is not None:
        events.append(replace(events[0], type=GAVE_UP, data=gave_up))
    assert {p[0] for p in judge_snapshots(events)} == expected
    assert TaskGrammar().finish(None) == []


def _conformance(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**{k: v for k, v in os.environ.items() if k != "SSL_CERT_FILE"},
           "GATEPROBE_API_KEY": "gp-vip-0001"}
    return subprocess.run([sys.executable, "-m", "gateprobe", "conformance", *args],
                          capture_output=True, text=True, env=env, timeout=300)


@pytest.mark.slow
def test_the_suite_polls_tasks_only_where_declared_and_reports_the_lifecycle(
        make_gateway: MakeGateway) -> None:
    gw = make_gateway(timing=Timing(0, 0), task_step_ms=STEP_MS,
                      faults=("mj-status-backwards",))
    declared = _conformance("--base-url", gw.base_url, "--select", "endpoint", "-v",
                            "--endpoints", "chat,models,midjourney")
    assert declared.returncode == 1, declared.stdout[-2000:]
    assert "[task.order]" in declared.stdout
    assert "test_task_lifecycle[imagine] FAILED" in declared.stdout
    undeclared = _conformance("--base-url", gw.base_url, "--select", "endpoint", "-v",
                              "--endpoints", "chat,models")
    assert undeclared.returncode == 0, undeclared.stdout[-2000:]
    assert "/api/v1/ai/draw/mj" not in undeclared.stdout
    assert "test_task_lifecycle[imagine] SKIPPED" in undeclared.stdout


@pytest.mark.deep_fuzz
@pytest.mark.slow
def test_fuzz_covers_the_gateway_apis_only_where_declared(make_gateway: MakeGateway) -> None:
    """specs/gateway.yaml is fuzzed with gateprobe's checks too (the clean embedded gateway's
    run, every family declared, is tests/test_conformance_cli.py's)."""
    gw = make_gateway(timing=Timing(0, 0), faults=("gateway-error-not-enveloped",))
    declared = _conformance("--base-url", gw.base_url, "--select", "fuzz", "--max-examples",
                            "3", "--endpoints", "models,midjourney,serper,google_search", "-v")
    assert declared.returncode == 1, declared.stdout[-2000:]
    assert "[gateway.envelope]" in declared.stdout
    undeclared = _conformance("--base-url", gw.base_url, "--select", "fuzz", "--max-examples",
                              "3", "--endpoints", "models", "-v")
    assert undeclared.returncode == 0, undeclared.stdout[-2000:]
    assert "/api/v1/" not in undeclared.stdout


@pytest.mark.slow
def test_a_dry_run_says_what_the_task_and_realtime_tests_send_where_declared() -> None:
    declared = _conformance("--dry-run", "--base-url", "http://127.0.0.1:9", "--endpoints",
                            "chat,midjourney,realtime")
    assert declared.returncode == 0, declared.stdout + declared.stderr
    assert "tasks: 3 Midjourney tasks" in declared.stdout
    assert "realtime: 4 WebSocket sessions" in declared.stdout
    undeclared = _conformance("--dry-run", "--base-url", "http://127.0.0.1:9", "--endpoints",
                              "chat")
    assert "tasks:" not in undeclared.stdout and "realtime:" not in undeclared.stdout
    assert "/api/v1/" not in undeclared.stdout


@pytest.mark.slow
def test_compare_probes_each_declared_family_on_every_mirror(make_gateway: MakeGateway,
                                                              tmp_path: Path) -> None:
    clean = make_gateway(timing=Timing(0, 0))
    wrapped = make_gateway(timing=Timing(0, 0), faults=("search-answer-wrapped",))
    result = subprocess.run(
        [sys.executable, "-m", "gateprobe", "compare", "--base-url", clean.base_url,
         "--base-url", wrapped.base_url, "--endpoints",
         "chat,models,midjourney,serper,google_search", "--samples", "1",
         "--long-request-s", "0.2", "--report-dir", str(tmp_path)],
        capture_output=True, text=True, timeout=300,
        env={**os.environ, "GATEPROBE_API_KEY": "gp-vip-0001"})
    assert result.returncode == 1, result.stdout[-2000:] + result.stderr[-1000:]
    mirrors = {m["base_url"]: m for m in
               json.loads((tmp_path / "summary.json").read_text())["compare"]["mirrors"]}
    probes = {name: p["verdict"] for name, p in mirrors[wrapped.base_url]["probes"].items()}
    failing = {name for name, verdict in probes.items() if verdict != "pass"}
    assert failing == {"endpoint: serper (/api/v1/openapi/search/serper/v1)",
                       "endpoint: google (/api/v1/openapi/search/google-search/v1?q=gateprobe)"}
    assert all("search.answer" in probes[name] for name in failing)
    assert "endpoint: imagine (/api/v1/ai/draw/mj/imagine)" in probes
    assert all(p["verdict"] == "pass" for p in mirrors[clean.base_url]["probes"].values())
