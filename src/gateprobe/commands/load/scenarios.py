"""The load scenarios, as objects: one registry of what each is and how it is judged and shown.

A ``Scenario`` names its locustfile, its typed result (``gateprobe.core.loadresult``), its defaults
(local processes, the unit it counts), whether it is timed (a saturated generator leaves a
timed scenario unjudged), whether it sends tier keys only, how its part of the verdict is
judged and how its result is printed. The runner, the CLI and the verdict read these
attributes; nothing else compares scenario names.

``verdict()`` and ``write_verdict()`` judge a finished run: the scenario's own judge, then
what can make any run inconclusive (the target's rate limit, the generator's saturation).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from gateprobe.commands.load.plan import LoadPlan
from gateprobe.commands.load.results import (
    SAMPLES_FILE,
    VERDICT_FILE,
    VERDICT_VERSION,
    inconclusive,
    judge_latency,
    judge_rate_limits,
    judge_tasks,
    read_samples,
)
from gateprobe.commands.load.selfcheck import LAG_FILE
from gateprobe.core.console import Console
from gateprobe.core.errors import UsageError
from gateprobe.core.loadresult import (
    RESULT_TYPES,
    LatencyResult,
    RateLimitResult,
    ScenarioResult,
    StreamStats,
    TasksResult,
    result_of,
)
from gateprobe.core.metrics import finite

Judge = Callable[[dict[str, Any], LoadPlan, Sequence[dict[str, Any]], float], None]
"""Fills a verdict's scenario part: its numbers, ``reasons`` and ``failed_checks``."""


@dataclass(frozen=True, slots=True)
class Scenario:
    """One load scenario."""

    name: str
    """As the command line names it: ``gateprobe load <name>``."""
    locustfile: str
    """Its Locust user classes: a file of ``load/``."""
    result_type: type[LatencyResult] | type[RateLimitResult] | type[TasksResult]
    judge: Judge
    show: Callable[[Any, Console], None]
    """Prints its result's table(s) on the console."""
    title: str
    """The heading of its section in reports."""
    unit: str = "requests"
    """What its runs count."""
    processes: str | None = "auto"
    """Local processes unless asked otherwise: ``auto`` (one per core) or None (one)."""
    timed: bool = True
    """Its objectives are times: a run whose own generator saturated is not judged."""
    tier_keys: bool = False
    """It sends tier keys only (the target's own key is not needed)."""


def _fmt(value: float | None, digits: int = 1) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def counts_text(counts: Mapping[str, int]) -> str:
    """``{'stream.terminator': 908}`` as people write it: ``stream.terminator x908``."""
    return ", ".join(f"{name} x{n}" for name, n in counts.items()) or "none"


def show_rate_limits(result: RateLimitResult, console: Console) -> None:
    """Each tier's counts and verdict, then accepted/429 per second."""
    console.table(
        ["tier", "limit", "sent", "accepted", "429", "failed", "retry-after", "recovered",
         "verdict"],
        [[t.tier, str(t.limit), str(t.sent), str(t.accepted), str(t.rejected), str(t.failed),
          _fmt(t.retry_after_s, 0) + (" s" if t.retry_after_s else ""),
          {True: "yes", False: "NO", None: "-"}[t.recovered], "ok" if t.ok else "FAIL"]
         for t in result.tiers])
    console.line("timeline (accepted/429 per second):")
    tiers = [t.tier for t in result.tiers]
    seconds = sorted({row["second"] for row in result.timeline})
    cells = {(row["second"], row["tier"]): row for row in result.timeline}
    console.table(["s", *tiers], [
        [str(s), *(f"{cells[s, t]['accepted']}/{cells[s, t]['rejected']}"
                   if (s, t) in cells else "" for t in tiers)] for s in seconds])


def _latency_row(endpoint: str, m: StreamStats) -> list[str]:
    return [endpoint, str(m.requests), str(m.errors), _fmt(m.ttfb_ms.p50), _fmt(m.ttft_ms.p50),
            _fmt(m.ttft_ms.p95), _fmt(m.tpot_ms.p50, 2), _fmt(m.tpot_ms.p95, 2),
            _fmt(m.itl_ms.p99), _fmt(m.e2e_ms.p95), _fmt(m.tokens_per_s.p50)]


def show_latency(result: LatencyResult, console: Console) -> None:
    """Per endpoint and over all: TTFB, TTFT, TPOT, ITL, e2e in ms and tokens/s."""
    console.table(["endpoint", "requests", "errors", "ttfb p50", "ttft p50", "ttft p95",
                   "tpot p50", "tpot p95", "itl p99", "e2e p95", "tok/s p50"],
                  [_latency_row(e, m) for e, m in
                   [*result.by_endpoint.items(), ("all", result.overall)]])
    console.line(f"times in ms; overall output {_fmt(result.overall_tokens_per_s)} tokens/s; "
                 f"{result.dropped_arrivals} arrivals dropped; stream findings: "
                 f"{counts_text(result.stream_findings)}")


def show_tasks(result: TasksResult, console: Console) -> None:
    """Tasks, outcomes, time to SUCCESS and polls."""
    success, polls = result.time_to_success_ms, result.polls
    console.table(["tasks", "SUCCESS", "failure rate", "to SUCCESS p50", "p95", "max",
                   "create p50", "polls mean", "polls max"],
                  [[str(result.tasks), str(result.succeeded), f"{result.failure_rate:.1%}",
                    _fmt(success.p50), _fmt(success.p95), _fmt(success.max),
                    _fmt(result.create_ms.p50), _fmt(polls.mean), _fmt(polls.max, 0)]])
    console.line(f"times in ms, from the task's id to the answer showing SUCCESS; outcomes: "
                 f"{counts_text(result.by_outcome)}; lifecycle findings: "
                 f"{counts_text(result.lifecycle_findings)}; {result.cut_by_run} cut by the "
                 "run's end (not judged)")


SCENARIOS: dict[str, Scenario] = {s.name: s for s in (
    Scenario("rate-limits", "rate_limits.py", RateLimitResult, judge_rate_limits,
             show_rate_limits, "Rate limits", processes=None, timed=False, tier_keys=True),
    Scenario("latency", "streaming_latency.py", LatencyResult, judge_latency, show_latency,
             "Latency"),
    Scenario("tasks", "mj_tasks.py", TasksResult, judge_tasks, show_tasks,
             "Midjourney tasks", unit="tasks"),
)}
"""Every load scenario, by name, in the order help lists them."""
assert {n: s.result_type for n, s in SCENARIOS.items()} == RESULT_TYPES


def scenario(name: str) -> Scenario:
    """The scenario called ``name`` (``UsageError`` naming the known ones otherwise)."""
    try:
        return SCENARIOS[name]
    except KeyError:
        raise UsageError(f"unknown load scenario {name!r} (one of "
                         f"{', '.join(SCENARIOS)})") from None


def verdict(plan: LoadPlan, samples: Sequence[dict[str, Any]], wall_s: float,
            lag: Sequence[Mapping[str, Any]] = ()) -> dict[str, Any]:
    """The verdict of a finished run: ``ok``, the reasons when not, and the numbers; ``lag``
    holds the load processes' measurements of themselves (``lag.jsonl``)."""
    spec = scenario(plan.scenario)
    out: dict[str, Any] = {"version": VERDICT_VERSION, "scenario": plan.scenario,
                           "base_url": plan.base_url, "wall_s": wall_s,
                           "requests": len(samples), "slo_names": sorted(plan.slo)}
    spec.judge(out, plan, samples, wall_s)
    inconclusive(out, plan, samples, lag, spec.timed)
    return out


def write_verdict(plan: LoadPlan, wall_s: float) -> dict[str, Any]:
    """Judge the samples on disk and write ``verdict.json`` next to them."""
    samples = list(read_samples(plan.out / SAMPLES_FILE))
    result = verdict(plan, samples, wall_s, list(read_samples(plan.out / LAG_FILE)))
    (plan.out / VERDICT_FILE).write_text(json.dumps(finite(result), indent=2, allow_nan=False,
                                                    default=str), encoding="utf-8")
    return result


def show(verdict_json: Mapping[str, Any], console: Console) -> ScenarioResult | None:
    """Print a verdict's result with its scenario's tables; the typed result."""
    result = result_of(verdict_json)
    if result is not None:
        SCENARIOS[result.scenario].show(result, console)
    return result
