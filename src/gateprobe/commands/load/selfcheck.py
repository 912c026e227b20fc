"""The load generator's measurement of itself, and the verdict on it: saturated or not.

A load process that falls behind does not crash: it sends late, reads late, and reports the
gateway slower than it is (at 400 streams on two cores, TTFT p99 was off by 104 ms and
inter-token gaps read 0: several events came in one late read). Every load process therefore
measures, through the run, how late it is:

- ``schedule``: a request's intended send time (its arrival on the schedule, or the slot the
  rate cap gave it) to the moment its clock started;
- ``receive``: the kernel's receive stamp of a read (``gateprobe.core.arrival``) to the moment the
  process handled it; late reads merge events and shift their stamps;
- ``loop``: how late a 10 ms timer fires in the process's event loop (gevent's hub), whatever
  the process is doing;
- CPU time of the process per interval (a share of one core).

Each is kept as a histogram per process and interval (``lag.jsonl`` next to the samples: a
mergeable histogram of log-spaced buckets, so the run's p99 is exact to a bucket, about 12%),
and the run is **saturated** when the p99 of any lag exceeds the bound: 2 ms by default, less
when 10% of the smallest latency objective is smaller. On a saturated run, a latency objective
whose figure is within ``LAG_MARGIN`` lags of its limit is not judged (the numbers describe
the generator as much as the gateway there); one far from its limit is, since no lag of that
size carries it across (a 22 ms TTFT against a 500 ms objective, on a machine whose timers
fire 3 ms late).
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

LAG_FILE = "lag.jsonl"
LAG_KINDS = ("schedule", "receive", "loop")
DEFAULT_LAG_BOUND_MS = 2.0
OBJECTIVE_SHARE = 0.1
"""The bound is at most this share of the smallest latency objective: a generator 2 ms late
is harmless against a 2 s objective and not against a 10 ms one."""
TIMING_OBJECTIVE = re.compile(r"(ttfb|ttft|tpot|itl|e2e|task_success)_p\d+_ms")
"""The objectives a saturated run leaves unjudged (their numbers carry our own lag)."""
UNTIMED_OBJECTIVES = frozenset({"stream_findings_max", "task_findings_max",
                                "memory_growth_pct_per_hour"})
"""The objectives still judged on a saturated run: what a stream or a task said, not when (and
a soak's target memory, which the generator's delay does not move)."""
LAG_MARGIN = 3.0
"""On a saturated run, a latency figure more than this many times the generator's worst lag
p99 from its objective's limit is judged all the same: the lag cannot carry it across. In
``benchmarks/load_accuracy.py --scale`` (5 to 400 streams, two runs), the error of a TTFT,
per-gap ITL or e2e p99 against the server's truth was at most 1.7 times the run's worst lag
p99; 3 leaves room for a machine noisier than that one."""
BUSY_SHARE = 0.7
"""A load process using this share of a core or more over an interval is itself the
bottleneck; below it, lag comes from the machine around it."""
BUCKETS_PER_DECADE = 20
FLOOR_MS = 0.01
"""Lags below this (10 µs) all fall into bucket 0."""


def _bucket(ms: float) -> int:
    if not ms > FLOOR_MS:
        return 0
    return max(0, math.ceil(BUCKETS_PER_DECADE * math.log10(ms / FLOOR_MS)))


def _upper(bucket: int) -> float:
    return float(FLOOR_MS * 10 ** (bucket / BUCKETS_PER_DECADE))


@dataclass(slots=True)
class LagHistogram:
    """Lags in milliseconds, counted in log-spaced buckets (mergeable across processes)."""

    counts: dict[int, int] = field(default_factory=dict)
    n: int = 0
    max_ms: float = 0.0

    def add(self, ms: float) -> None:
        """Count one lag (a negative one, a clock's rounding, counts as 0)."""
        b = _bucket(ms)
        self.counts[b] = self.counts.get(b, 0) + 1
        self.n += 1
        self.max_ms = max(self.max_ms, ms)

    def merge(self, raw: Mapping[str, Any]) -> None:
        """Add a histogram written by ``as_json``."""
        for bucket, count in (raw.get("buckets") or {}).items():
            self.counts[int(bucket)] = self.counts.get(int(bucket), 0) + int(count)
        self.n += int(raw.get("n") or 0)
        self.max_ms = max(self.max_ms, float(raw.get("max_ms") or 0.0))

    def percentile(self, q: float) -> float:
        """The upper edge of the bucket holding the ``q``-th percentile (never above the
        largest lag seen); NaN when empty."""
        if not self.n:
            return math.nan
        rank, seen = q / 100 * self.n, 0
        for bucket in sorted(self.counts):
            seen += self.counts[bucket]
            if seen >= rank:
                return min(_upper(bucket), self.max_ms)
        return self.max_ms

    def as_json(self) -> dict[str, Any]:
        """The histogram as a sample line holds it (with its p50 and p99, for people)."""
        return {"n": self.n, "max_ms": self.max_ms, "p50_ms": self.percentile(50),
                "p99_ms": self.percentile(99),
                "buckets": {str(b): c for b, c in sorted(self.counts.items())}}


def lag_bound(slo: Mapping[str, float], explicit: float | None = None) -> tuple[float, str]:
    """The lag bound of a run and where it comes from: ``explicit`` if given, else 2 ms or
    10% of the smallest latency objective, whichever is smaller."""
    if explicit is not None:
        return explicit, "--lag-bound-ms"
    timed = sorted((limit, name) for name, limit in slo.items()
                   if TIMING_OBJECTIVE.fullmatch(name) and limit > 0)
    if timed and OBJECTIVE_SHARE * timed[0][0] < DEFAULT_LAG_BOUND_MS:
        return OBJECTIVE_SHARE * timed[0][0], f"10% of {timed[0][1]}"
    return DEFAULT_LAG_BOUND_MS, "default"


@dataclass(frozen=True, slots=True)
class Saturation:
    """The generator's verdict on itself over one run."""

    saturated: bool
    bound_ms: float
    bound_from: str
    lag_ms: dict[str, dict[str, float]]
    """Kind -> ``{"p50", "p99", "max", "n"}`` over every process and the whole run."""
    cpu: dict[str, dict[str, float]]
    """Pid -> ``{"mean_share", "max_share", "cpu_ms"}``: CPU per process, one core = 1.0."""
    processes: int
    worst: str | None
    """The lag kind furthest over the bound (None when none is)."""

    @property
    def busiest(self) -> float:
        """The largest CPU share (one core = 1.0) a load process had over an interval."""
        return max((c["max_share"] for c in self.cpu.values()), default=0.0)

    @property
    def why(self) -> str:
        """The verdict in one sentence, naming the cause and the fix."""
        if not self.saturated or self.worst is None:
            return ""
        p99 = self.lag_ms[self.worst]["p99"]
        plural = "es" if self.processes != 1 else ""
        if self.busiest >= BUSY_SHARE:
            cause = (f"its busiest process used {self.busiest:.0%} of a core "
                     f"({self.processes} process{plural})")
            fix = ("spread the users over more processes (--processes auto: one per core) or "
                   "hosts (--master and --worker), or run fewer --users")
        else:
            cause = (f"its processes used at most {self.busiest:.0%} of a core: the machine "
                     "(other processes, or the hypervisor) kept them waiting")
            fix = ("run it on a quieter machine or on worker hosts (--master and --worker), "
                   "with --processes no more than the free cores")
        return (f"the load generator saturated: its {self.worst} lag p99 was {p99:.1f} ms, "
                f"above the bound of {self.bound_ms:g} ms ({self.bound_from}); {cause}, so "
                f"its latency figures carry its own delay and the objectives within that delay's "
                f"reach of their limit were not judged; {fix}")

    @property
    def margin_ms(self) -> float:
        """How far the generator's lag may have moved a latency figure (``LAG_MARGIN`` times
        its worst lag p99)."""
        worst = max((m["p99"] for m in self.lag_ms.values()
                     if m.get("n") and math.isfinite(m["p99"])), default=0.0)
        return LAG_MARGIN * worst

    @property
    def brief(self) -> str:
        """The verdict as a clause for a table cell or a list of reasons (``why`` is said
        once, in full, beside it)."""
        if not self.saturated or self.worst is None:
            return ""
        return (f"generator saturated: {self.worst} lag p99 "
                f"{self.lag_ms[self.worst]['p99']:.1f} ms > {self.bound_ms:g} ms")

    def as_json(self) -> dict[str, Any]:
        """For ``verdict.json``."""
        return {"saturated": self.saturated, "bound_ms": self.bound_ms,
                "bound_from": self.bound_from, "lag_ms": self.lag_ms, "cpu": self.cpu,
                "processes": self.processes, "worst": self.worst, "why": self.why}


def judge(lines: Iterable[Mapping[str, Any]], bound_ms: float, bound_from: str) -> Saturation:
    """The saturation verdict of a run from its ``lag.jsonl`` lines."""
    merged = {kind: LagHistogram() for kind in LAG_KINDS}
    cpu: dict[str, list[tuple[float, float]]] = {}
    for line in lines:
        for kind in LAG_KINDS:
            merged[kind].merge((line.get("lag") or {}).get(kind) or {})
        cpu.setdefault(str(line.get("pid")), []).append(
            (float(line.get("cpu_ms") or 0.0), float(line.get("interval_s") or 0.0)))
    lag = {kind: {"p50": h.percentile(50), "p99": h.percentile(99), "max": h.max_ms,
                  "n": float(h.n)} for kind, h in merged.items()}
    over = [(lag[k]["p99"] / bound_ms, k) for k in LAG_KINDS
            if merged[k].n and lag[k]["p99"] > bound_ms]
    return Saturation(
        saturated=bool(over), bound_ms=bound_ms, bound_from=bound_from, lag_ms=lag,
        cpu={pid: _cpu(rows) for pid, rows in cpu.items()},
        processes=len(cpu), worst=max(over)[1] if over else None)


def _cpu(rows: Sequence[tuple[float, float]]) -> dict[str, float]:
    """A process's CPU over its intervals (cpu ms, interval s): the share of a core over the
    run, and the largest over an interval of at least half a second (the last interval of a
    run can be a few ms long, and its share noise)."""
    used, wall = sum(c for c, _ in rows), sum(i for _, i in rows)
    shares = [c / 1000 / i for c, i in rows if i >= MIN_INTERVAL_S]
    return {"cpu_ms": used, "mean_share": used / 1000 / wall if wall else 0.0,
            "max_share": max(shares, default=used / 1000 / wall if wall else 0.0)}


MIN_INTERVAL_S = 0.5
