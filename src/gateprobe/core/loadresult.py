"""Typed results of load runs, read from ``verdict.json`` in this one place.

A load run's outcome is written once, as JSON, by the Locust master (``gateprobe.commands.load``);
the report, the gate, the pipeline and the Python API read it back through these classes, by
attribute, never by key. ``result_of(verdict)`` gives the result of a verdict's scenario:
``LatencyResult`` (``SoakResult`` for a soak), ``RateLimitResult``, ``TasksResult`` or
``SweepResult``. Each carries what every load run has (``LoadOutcome``: ok, reasons, the generator's
verdict on itself) and its own numbers.

It is base layer (the report reads it, and the report cannot import the load commands).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return None if math.isnan(value) else float(value)


def _ms(value: float | None) -> str:
    return "nan" if value is None else f"{value:.0f}"


@dataclass(frozen=True, slots=True)
class Percentiles:
    """One metric's distribution (``metrics.summarize``): None where there were no samples."""

    count: int = 0
    mean: float | None = None
    p50: float | None = None
    p90: float | None = None
    p95: float | None = None
    p99: float | None = None
    max: float | None = None

    @classmethod
    def of(cls, raw: Mapping[str, Any] | None) -> Percentiles:
        """From ``summarize``'s JSON (NaN and missing values are None)."""
        raw = raw or {}
        return cls(int(_number(raw.get("count")) or 0),
                   *(_number(raw.get(k)) for k in ("mean", "p50", "p90", "p95", "p99", "max")))


@dataclass(frozen=True, slots=True)
class StreamStats:
    """The numbers of a set of streams (one endpoint's, or all of a run's)."""

    requests: int
    errors: int
    error_rate: float
    ttfb_ms: Percentiles
    ttft_ms: Percentiles
    tpot_ms: Percentiles
    itl_ms: Percentiles
    e2e_ms: Percentiles
    tokens_per_s: Percentiles

    METRICS = ("ttfb_ms", "ttft_ms", "tpot_ms", "itl_ms", "e2e_ms", "tokens_per_s")
    """Every distribution, in the order tables show them; each ends in its unit."""

    @classmethod
    def of(cls, raw: Mapping[str, Any]) -> StreamStats:
        """From ``metrics.aggregate``'s JSON."""
        return cls(int(raw.get("requests") or 0), int(raw.get("errors") or 0),
                   float(raw.get("error_rate") or 0.0),
                   *(Percentiles.of(raw.get(m)) for m in cls.METRICS))

    def metric(self, name: str) -> Percentiles:
        """One of ``METRICS`` by name."""
        if name not in self.METRICS:
            raise KeyError(name)
        value: Percentiles = getattr(self, name)
        return value


@dataclass(frozen=True, slots=True)
class Generator:
    """The load generator's verdict on itself (``gateprobe.commands.load.selfcheck``)."""

    saturated: bool = False
    bound_ms: float | None = None
    lag_p99_ms: dict[str, float | None] = field(default_factory=dict)
    """Lag kind (schedule, receive, loop) -> its p99 over the run, in ms."""
    busiest_cpu_share: float | None = None
    processes: int = 0
    why: str = ""

    @classmethod
    def of(cls, raw: Mapping[str, Any] | None) -> Generator:
        """From ``verdict.json``'s ``generator``."""
        raw = raw or {}
        cpu = [c.get("max_share") for c in (raw.get("cpu") or {}).values()]
        return cls(bool(raw.get("saturated")), _number(raw.get("bound_ms")),
                   {kind: _number(m.get("p99")) for kind, m in (raw.get("lag_ms") or {}).items()
                    if m.get("n")},
                   max((c for c in cpu if c is not None), default=None),
                   int(raw.get("processes") or 0), str(raw.get("why") or ""))


@dataclass(frozen=True, slots=True)
class LoadOutcome:
    """What every load run's verdict says, whatever its scenario."""

    scenario: str
    ok: bool
    requests: int
    reasons: tuple[str, ...]
    failed_checks: tuple[str, ...]
    slo_names: tuple[str, ...]
    generator: Generator
    saturated: str
    """Why the run is inconclusive because its generator saturated ('' when not)."""
    limited_by_target: str
    """Why the run is inconclusive because the target's rate limit cut it ('' when not)."""
    could_not_tell: str
    """Why the scenario's own judge could not tell (``verdict.json``'s ``inconclusive``)."""
    lagged: str
    """Why the verdict stands though the generator was over its lag bound: every latency
    objective was further from its limit than the lag could move it ('' when not so)."""

    @staticmethod
    def fields_of(raw: Mapping[str, Any]) -> dict[str, Any]:
        """The common fields of a verdict."""
        scenario = raw.get("scenario") or next(
            (n for n, part in SCENARIO_PARTS.items() if isinstance(raw.get(part), Mapping)), "")
        return {"scenario": str(scenario), "ok": bool(raw.get("ok", not raw.get("reasons"))),
                "requests": int(raw.get("requests") or 0),
                "reasons": tuple(raw.get("reasons") or ()),
                "failed_checks": tuple(raw.get("failed_checks") or ()),
                "slo_names": tuple(raw.get("slo_names") or ()),
                "generator": Generator.of(raw.get("generator")),
                "saturated": str((raw.get("saturated") or {}).get("why") or ""),
                "limited_by_target": str((raw.get("limited_by_target") or {}).get("why") or ""),
                "could_not_tell": str((raw.get("inconclusive") or {}).get("why") or ""),
                "lagged": str((raw.get("lagged") or {}).get("why") or "")}

    @property
    def inconclusive(self) -> str:
        """Why the run gave no verdict on its objectives ('' when it gave one)."""
        return self.limited_by_target or self.saturated or self.could_not_tell

    def headline(self) -> str:
        """The run's numbers in a few words."""
        return f"{self.requests} requests"


@dataclass(frozen=True, slots=True)
class TurnStats:
    """The requests of one turn (or one shared-prefix length) of a workload."""

    requests: int
    errors: int
    ttft_ms: Percentiles
    prompt_tokens: Percentiles

    @classmethod
    def of(cls, raw: Mapping[str, Any]) -> TurnStats:
        """From one group of ``workload_summary``."""
        return cls(int(raw.get("requests") or 0), int(raw.get("errors") or 0),
                   Percentiles.of(raw.get("ttft_ms")), Percentiles.of(raw.get("prompt_tokens")))


@dataclass(frozen=True, slots=True)
class WorkloadStats:
    """A latency run's workload (``gateprobe.commands.load.workloads.workload_summary``): TTFT by
    turn and by shared-prefix length, how TTFT grows with the prompt, the tokens asked and
    got."""

    by_turn: dict[str, TurnStats]
    by_prefix_tokens: dict[str, TurnStats]
    ttft_ms_per_1k_prompt_tokens: float | None
    """Least-squares slope of TTFT over the prompt's tokens (our tokenizer), per 1,000."""
    ttft_ms_per_1k_prefix_tokens: float | None
    tokens: dict[str, Percentiles]
    """``prompt_tokens_asked``, ``prompt_tokens``, ``prompt_tokens_usage``,
    ``output_tokens_asked``, ``output_tokens_expected``, ``output_tokens``."""
    output_shorter_than_asked: float | None
    """The share of answers with fewer tokens than ``max_tokens`` asked."""
    sessions: int

    @classmethod
    def of(cls, raw: Mapping[str, Any] | None) -> WorkloadStats | None:
        """From ``verdict.json``'s ``workload`` (None: the run had none)."""
        if not raw:
            return None
        return cls({k: TurnStats.of(v) for k, v in (raw.get("by_turn") or {}).items()},
                   {k: TurnStats.of(v) for k, v in (raw.get("by_prefix_tokens") or {}).items()},
                   _number(raw.get("ttft_ms_per_1k_prompt_tokens")),
                   _number(raw.get("ttft_ms_per_1k_prefix_tokens")),
                   {k: Percentiles.of(v) for k, v in (raw.get("tokens") or {}).items()},
                   _number(raw.get("output_shorter_than_asked")),
                   int(raw.get("sessions") or 0))


@dataclass(frozen=True, slots=True)
class LatencyResult(LoadOutcome):
    """A latency run: streams timed by TTFT, TPOT, ITL, e2e, tokens/s."""

    overall: StreamStats
    by_endpoint: dict[str, StreamStats]
    dropped_arrivals: int
    stream_findings: dict[str, int]
    errors_by_symptom: dict[str, int]
    overall_tokens_per_s: float | None
    workload: WorkloadStats | None = None
    """The workload's numbers (None: the run sent the one prompt)."""

    @classmethod
    def of(cls, raw: Mapping[str, Any]) -> LatencyResult:
        """From a latency run's ``verdict.json``."""
        m = raw.get("latency") or {}
        return cls(**cls.fields_of(raw), overall=StreamStats.of(m),
                   by_endpoint={e: StreamStats.of(s)
                                for e, s in (m.get("by_endpoint") or {}).items()},
                   dropped_arrivals=int(m.get("dropped_arrivals") or 0),
                   stream_findings=dict(m.get("stream_findings") or {}),
                   errors_by_symptom=dict(m.get("errors_by_symptom") or {}),
                   overall_tokens_per_s=_number(m.get("overall_tokens_per_s")),
                   workload=WorkloadStats.of(raw.get("workload")))

    def headline(self) -> str:
        """Streams, TTFT p95 and errors."""
        p95 = self.overall.ttft_ms.p95
        ttft = "no TTFT sample" if p95 is None or p95 != p95 else f"TTFT p95 {p95:.0f} ms"
        return f"{self.overall.requests} streams, {ttft}, errors {self.overall.errors}"


@dataclass(frozen=True, slots=True)
class TierResult:
    """One tier of a rate-limit run."""

    tier: str
    limit: int
    sent: int
    accepted: int
    rejected: int
    failed: int
    retry_after_s: float | None
    recovered: bool | None
    ok: bool
    problems: tuple[str, ...]
    outcome: str = ""
    """The tier's verdict word (``ok``, ``FAIL``, ``INCONCLUSIVE``, ...) as the judge put it."""

    @classmethod
    def of(cls, raw: Mapping[str, Any]) -> TierResult:
        """From one row of ``verdict.json``'s ``rate_limits.tiers``."""
        return cls(str(raw["tier"]), int(raw.get("limit") or 0), int(raw.get("sent") or 0),
                   int(raw.get("accepted") or 0), int(raw.get("rejected") or 0),
                   int(raw.get("failed") or 0), _number(raw.get("retry_after_s")),
                   raw.get("recovered"), bool(raw.get("ok")),
                   tuple(str(p) for p in raw.get("problems") or ()),
                   str(raw.get("outcome") or ("ok" if raw.get("ok") else "FAIL")))


@dataclass(frozen=True, slots=True)
class RateLimitResult(LoadOutcome):
    """A rate-limit run: each tier's burst, refusals and recovery."""

    tiers: tuple[TierResult, ...]
    timeline: tuple[Mapping[str, Any], ...]
    """Per second and tier: ``{"second", "tier", "accepted", "rejected", "failed"}``."""

    @classmethod
    def of(cls, raw: Mapping[str, Any]) -> RateLimitResult:
        """From a rate-limit run's ``verdict.json``."""
        m = raw.get("rate_limits") or {}
        return cls(**cls.fields_of(raw), tiers=tuple(TierResult.of(t) for t in m.get("tiers")
                                                     or ()),
                   timeline=tuple(m.get("timeline") or ()))

    def headline(self) -> str:
        """Each tier's accepted/limit."""
        return ", ".join(f"{t.tier} {t.accepted}/{t.limit}{'' if t.ok else ' ' + t.outcome}"
                         for t in self.tiers)


@dataclass(frozen=True, slots=True)
class TasksResult(LoadOutcome):
    """A tasks run: Midjourney tasks polled to their end."""

    tasks: int
    succeeded: int
    failure_rate: float
    cut_by_run: int
    by_outcome: dict[str, int]
    time_to_success_ms: Percentiles
    create_ms: Percentiles
    polls: Percentiles
    lifecycle_findings: dict[str, int]

    @classmethod
    def of(cls, raw: Mapping[str, Any]) -> TasksResult:
        """From a tasks run's ``verdict.json``."""
        m = raw.get("tasks") or {}
        return cls(**cls.fields_of(raw), tasks=int(m.get("tasks") or 0),
                   succeeded=int(m.get("succeeded") or 0),
                   failure_rate=float(m.get("failure_rate") or 0.0),
                   cut_by_run=int(m.get("cut_by_run") or 0),
                   by_outcome=dict(m.get("by_outcome") or {}),
                   time_to_success_ms=Percentiles.of(m.get("time_to_success_ms")),
                   create_ms=Percentiles.of(m.get("create_ms")),
                   polls=Percentiles.of(m.get("polls")),
                   lifecycle_findings=dict(m.get("lifecycle_findings") or {}))

    def headline(self) -> str:
        """Tasks, SUCCESS, time to SUCCESS p95 and the failure rate."""
        return (f"{self.tasks} tasks, {self.succeeded} SUCCESS, time to SUCCESS p95 "
                f"{_ms(self.time_to_success_ms.p95)} ms, failure rate {self.failure_rate:.0%}")


@dataclass(frozen=True, slots=True)
class SweepLevel:
    """One level of a sweep: a latency run at one load, and what it sustained."""

    name: str
    """``synchronous``, ``throughput``, ``rate 12.5/s`` or ``concurrency 16``."""
    arrival: str
    """``closed`` (users in a loop) or ``constant`` / ``poisson`` (arrivals at ``rate``)."""
    users: int
    rate: float | None
    """The offered arrival rate (None for closed-loop users: they offer what they get)."""
    achieved_rps: float
    """Requests started per second, over the span of their starts."""
    requests: int
    stats: StreamStats
    """TTFT, ITL, TPOT, e2e and the rest, by the one metric definition."""
    output_tokens_per_s: float | None
    rate_limited_share: float
    """Answers that were 429, over all requests."""
    goodput_rps: float
    """Requests per second that met every objective (``gateprobe.commands.load.slo.meets``)."""
    goodput_share: float
    saturated: str
    """Why its generator's lag leaves it unjudged ('' when it does not: within its bound, or
    over it with the goodput on the same side of the threshold whatever the lag moved)."""
    limited_by_target: str
    dir: str
    """Its own run folder, relative to the sweep's."""

    @classmethod
    def of(cls, raw: Mapping[str, Any]) -> SweepLevel:
        """From one row of ``verdict.json``'s ``sweep.levels``."""
        return cls(str(raw.get("name") or ""), str(raw.get("arrival") or "closed"),
                   int(raw.get("users") or 0), _number(raw.get("rate")),
                   _number(raw.get("achieved_rps")) or 0.0, int(raw.get("requests") or 0),
                   StreamStats.of(raw.get("latency") or {}),
                   _number(raw.get("output_tokens_per_s")),
                   _number(raw.get("rate_limited_share")) or 0.0,
                   _number(raw.get("goodput_rps")) or 0.0,
                   _number(raw.get("goodput_share")) or 0.0, str(raw.get("saturated") or ""),
                   str(raw.get("limited_by_target") or ""), str(raw.get("dir") or ""))

    @property
    def offered_rps(self) -> float:
        """The load offered: the arrival rate, or what closed-loop users achieved."""
        return self.rate if self.rate is not None else self.achieved_rps


@dataclass(frozen=True, slots=True)
class SweepResult(LoadOutcome):
    """A sweep: latency runs at rising loads, each one's goodput, and the knee."""

    mode: str
    """``rate`` (synchronous, throughput, rates between) or ``concurrency``."""
    levels: tuple[SweepLevel, ...]
    threshold: float
    """The goodput share a level needs to count as sustained."""
    knee: int | None
    """The index in ``levels`` of the highest sustained level (None: none was)."""
    knee_hidden: str
    """Why a saturated level may hide a higher knee ('' when none can)."""
    request_bounds: dict[str, float]
    """The per-request bounds goodput was judged on (metric -> ms)."""

    @classmethod
    def of(cls, raw: Mapping[str, Any]) -> SweepResult:
        """From a sweep's ``verdict.json``."""
        m = raw.get("sweep") or {}
        knee = m.get("knee")
        return cls(**cls.fields_of(raw), mode=str(m.get("mode") or "rate"),
                   levels=tuple(SweepLevel.of(level) for level in m.get("levels") or ()),
                   threshold=_number(m.get("threshold")) or 0.0,
                   knee=int(knee) if isinstance(knee, int) else None,
                   knee_hidden=str(m.get("knee_hidden") or ""),
                   request_bounds={str(k): float(v)
                                   for k, v in (m.get("request_bounds") or {}).items()})

    @property
    def knee_level(self) -> SweepLevel | None:
        """The highest level whose goodput share met the threshold."""
        return self.levels[self.knee] if self.knee is not None else None

    @property
    def max_sustainable_rps(self) -> float | None:
        """The knee's achieved request rate (None: no level was sustained)."""
        level = self.knee_level
        return level.achieved_rps if level is not None else None

    def headline(self) -> str:
        """The knee and its goodput."""
        level = self.knee_level
        if level is None:
            return f"{len(self.levels)} levels, no level met {self.threshold:.0%} goodput"
        return (f"{len(self.levels)} levels, knee at {level.achieved_rps:.1f} requests/s "
                f"({level.name}, goodput {level.goodput_share:.0%})")


@dataclass(frozen=True, slots=True)
class SoakWindow:
    """One window of a soak: the streams that started in it, and the target's memory and
    connections as last scraped in it."""

    index: int
    start_s: float
    """From the run's start."""
    end_s: float
    complete: bool
    """A whole window (a cut last one is shown, not judged)."""
    requests: int
    errors: int
    error_rate: float
    requests_per_s: float
    ttft_ms: Percentiles
    itl_ms: Percentiles
    e2e_ms: Percentiles
    memory_bytes: float | None
    open_connections: float | None

    @classmethod
    def of(cls, raw: Mapping[str, Any]) -> SoakWindow:
        """From one row of ``verdict.json``'s ``soak.windows``."""
        return cls(int(raw.get("index") or 0), float(raw.get("start_s") or 0.0),
                   float(raw.get("end_s") or 0.0), bool(raw.get("complete")),
                   int(raw.get("requests") or 0), int(raw.get("errors") or 0),
                   float(raw.get("error_rate") or 0.0), float(raw.get("requests_per_s") or 0.0),
                   Percentiles.of(raw.get("ttft_ms")), Percentiles.of(raw.get("itl_ms")),
                   Percentiles.of(raw.get("e2e_ms")), _number(raw.get("memory_bytes")),
                   _number(raw.get("open_connections")))


@dataclass(frozen=True, slots=True)
class Drift:
    """One trend of a soak (``gateprobe.commands.load.soak``): its slope per hour with the 95%
    interval, and its objective's outcome."""

    slo: str
    value: float | None
    low: float | None
    high: float | None
    unit: str
    """``%/h`` (of the fitted start) or ``/h`` (absolute)."""
    points: int
    limit: float | None
    outcome: str
    """``pass``, ``fail``, ``inconclusive``, or ``-`` (no objective)."""
    why: str

    @classmethod
    def of(cls, raw: Mapping[str, Any]) -> Drift:
        """From one row of ``verdict.json``'s ``soak.drifts``."""
        return cls(str(raw.get("slo") or ""), _number(raw.get("value")), _number(raw.get("low")),
                   _number(raw.get("high")), str(raw.get("unit") or ""),
                   int(raw.get("points") or 0), _number(raw.get("limit")),
                   str(raw.get("outcome") or "-"), str(raw.get("why") or ""))


@dataclass(frozen=True, slots=True, kw_only=True)
class SoakResult(LatencyResult):
    """A soak: a latency run over hours, cut into windows, judged on its drift."""

    window_s: float
    windows: tuple[SoakWindow, ...]
    drifts: tuple[Drift, ...]
    metrics_url: str
    """The target's metrics URL it scraped ('' when none was declared)."""
    scrapes: int
    notes: tuple[str, ...]

    @classmethod
    def of(cls, raw: Mapping[str, Any]) -> SoakResult:
        """From a soak's ``verdict.json``: the latency part, then the soak's own."""
        latency = LatencyResult.of(raw)
        m = raw.get("soak") or {}
        return cls(**{name: getattr(latency, name) for name in latency.__dataclass_fields__},
                   window_s=float(m.get("window_s") or 0.0),
                   windows=tuple(SoakWindow.of(w) for w in m.get("windows") or ()),
                   drifts=tuple(Drift.of(d) for d in m.get("drifts") or ()),
                   metrics_url=str(m.get("metrics_url") or ""), scrapes=int(m.get("scrapes") or 0),
                   notes=tuple(str(n) for n in m.get("notes") or ()))

    def drift(self, slo: str) -> Drift | None:
        """The drift of one objective name (``ttft_p99_drift_pct_per_hour``), if measured."""
        return next((d for d in self.drifts if d.slo == slo), None)

    def headline(self) -> str:
        """The latency headline, the windows and TTFT p99's drift."""
        p99 = self.drift("ttft_p99_drift_pct_per_hour")
        drift = "-" if p99 is None or p99.value is None else f"{p99.value:+.1f} %/h"
        return (f"{LatencyResult.headline(self)}, {len(self.windows)} windows of "
                f"{self.window_s:g} s, TTFT p99 drift {drift}")


ScenarioResult = LatencyResult | RateLimitResult | TasksResult | SweepResult
ResultType = type[LatencyResult] | type[RateLimitResult] | type[TasksResult] | type[SweepResult]
RESULT_TYPES: dict[str, ResultType] = {
    "latency": LatencyResult, "rate-limits": RateLimitResult, "tasks": TasksResult,
    "sweep": SweepResult, "soak": SoakResult}
"""Scenario name -> its result type (the load scenario registry,
``gateprobe.commands.load.scenarios``, names the same type for each; a test holds the two
together)."""


def result_of(verdict: Mapping[str, Any] | None) -> ScenarioResult | None:
    """The typed result of a verdict (None: no verdict, or a scenario this version does not
    know)."""
    if not verdict:
        return None
    name = verdict.get("scenario") or next(  # a verdict that does not name it: by its part
        (n for n, part in SCENARIO_PARTS.items() if isinstance(verdict.get(part), Mapping)),
        None)
    kind = RESULT_TYPES.get(str(name))
    return kind.of(verdict) if kind is not None else None


SCENARIO_PARTS = {"soak": "soak", "latency": "latency", "rate-limits": "rate_limits",
                  "tasks": "tasks", "sweep": "sweep"}
"""Scenario name -> the key of its part in ``verdict.json``."""
