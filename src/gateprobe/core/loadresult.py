"""Typed results of load runs, read from ``verdict.json`` in this one place.

A load run's outcome is written once, as JSON, by the Locust master (``gateprobe.commands.load``); the
report, the gate, the pipeline and the Python API read it back through these classes, by
attribute, never by key. ``result_of(verdict)`` gives the result of a verdict's scenario:
``LatencyResult``, ``RateLimitResult`` or ``TasksResult``. Each carries what every load run
has (``LoadOutcome``: ok, reasons, the generator's verdict on itself) and its own numbers.

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
                "could_not_tell": str((raw.get("inconclusive") or {}).get("why") or "")}

    @property
    def inconclusive(self) -> str:
        """Why the run gave no verdict on its objectives ('' when it gave one)."""
        return self.limited_by_target or self.saturated or self.could_not_tell

    def headline(self) -> str:
        """The run's numbers in a few words."""
        return f"{self.requests} requests"


@dataclass(frozen=True, slots=True)
class LatencyResult(LoadOutcome):
    """A latency run: streams timed by TTFT, TPOT, ITL, e2e, tokens/s."""

    overall: StreamStats
    by_endpoint: dict[str, StreamStats]
    dropped_arrivals: int
    stream_findings: dict[str, int]
    errors_by_symptom: dict[str, int]
    overall_tokens_per_s: float | None

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
                   overall_tokens_per_s=_number(m.get("overall_tokens_per_s")))

    def headline(self) -> str:
        """Streams, TTFT p95 and errors."""
        return (f"{self.overall.requests} streams, TTFT p95 "
                f"{_ms(self.overall.ttft_ms.p95)} ms, errors {self.overall.errors}")


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


ScenarioResult = LatencyResult | RateLimitResult | TasksResult
RESULT_TYPES: dict[str, type[LatencyResult] | type[RateLimitResult] | type[TasksResult]] = {
    "latency": LatencyResult, "rate-limits": RateLimitResult, "tasks": TasksResult}
"""Scenario name -> its result type (the load scenario registry, ``gateprobe.commands.load.scenarios``,
names the same type for each; a test holds the two together)."""


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


SCENARIO_PARTS = {"latency": "latency", "rate-limits": "rate_limits", "tasks": "tasks"}
"""Scenario name -> the key of its part in ``verdict.json``."""
