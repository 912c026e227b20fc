"""Typed load results (``gateprobe.core.loadresult``) read from real verdicts, and the scenario
registry (``gateprobe.commands.load.scenarios``) naming one result type per scenario."""

from __future__ import annotations

import io
from typing import Any

import pytest

from gateprobe.commands.load.plan import LoadPlan
from gateprobe.commands.load.scenarios import SCENARIOS, scenario, show, verdict
from gateprobe.core.console import Console
from gateprobe.core.errors import UsageError
from gateprobe.core.loadresult import (
    RESULT_TYPES,
    LatencyResult,
    RateLimitResult,
    TasksResult,
    result_of,
)


def plan(name: str, **extra: Any) -> LoadPlan:
    return LoadPlan(scenario=name, base_url="http://127.0.0.1:1", profile="ohmygpt",
                    out_dir="", **extra)


def stream(ttft: float) -> dict[str, Any]:
    return {"endpoint": "/v1/messages", "ok": True, "status": 200, "ttfb_ms": ttft,
            "ttft_ms": ttft, "tpot_ms": 2.0, "e2e_ms": ttft + 20, "end_ms": ttft + 20,
            "itl_ms": [2.0] * 10, "output_tokens": 11, "tokens_per_s": 500.0, "findings": [],
            "error_kind": None}


def test_a_latency_verdict_reads_by_attribute() -> None:
    raw = verdict(plan("latency", slo={"ttft_p95_ms": 100.0}), [stream(40), stream(60)], 1.0)
    result = result_of(raw)
    assert isinstance(result, LatencyResult) and result.ok and not result.inconclusive
    assert result.overall.requests == 2 and result.by_endpoint["/v1/messages"].errors == 0
    assert result.overall.ttft_ms.p50 == pytest.approx(50.0)
    assert result.overall.metric("tokens_per_s").p50 == 500.0
    assert result.generator.processes == 0 and not result.generator.saturated
    assert result.headline() == "2 streams, TTFT p95 59 ms, errors 0"
    out = io.StringIO()
    assert show(raw, Console(out)) == result
    assert "/v1/messages" in out.getvalue() and "tok/s p50" in out.getvalue()


def test_tasks_and_rate_limit_verdicts_are_their_types() -> None:
    tasks = result_of(verdict(plan("tasks"), [], 1.0))
    assert isinstance(tasks, TasksResult) and tasks.tasks == 0 and not tasks.ok
    assert tasks.time_to_success_ms.p95 is None and "no task ended" in tasks.reasons[-1]
    limits = result_of(verdict(plan("rate-limits", limits={"free": 4}), [], 1.0))
    assert isinstance(limits, RateLimitResult) and [t.tier for t in limits.tiers] == ["free"]


def test_one_registry_names_each_scenario_and_its_result() -> None:
    assert list(SCENARIOS) == ["rate-limits", "latency", "tasks"]
    assert {n: s.result_type for n, s in SCENARIOS.items()} == RESULT_TYPES
    assert [n for n, s in SCENARIOS.items() if s.timed] == ["latency", "tasks"]
    assert scenario("tasks").unit == "tasks" and scenario("rate-limits").tier_keys
    with pytest.raises(UsageError, match="one of rate-limits, latency, tasks"):
        scenario("soak")
    assert result_of(None) is None and result_of({"scenario": "soak"}) is None
