"""Soak: a long latency run cut into windows, judged on how it drifts over time.

``gateprobe load soak --duration 2h --windows 5m`` streams like the latency scenario; its
samples are cut into windows of ``--windows`` by their start time, each window summarised by
the one metric definition (``metrics.aggregate``: TTFT, ITL, TPOT, e2e percentiles, error
rate). Drift is a trend test over the complete windows: the Theil–Sen slope (the median of
pairwise slopes, which one outlying window cannot swing) of TTFT p50, TTFT p99 and the error
rate per hour, with Sen's 95% rank interval on it. When the target declares a metrics URL
(Prometheus text format), its process memory and open connections are scraped through the run
and their growth fitted the same way.

An objective ``<drift> <= X`` (``load.slo.DRIFT_OBJECTIVES``) is

- **failed** when the whole interval lies above X: the drift is real and too large;
- **met** when the whole interval lies at or below X;
- **inconclusive** otherwise, or with fewer than ``MIN_POINTS`` windows: a trend the noise can
  hide is not a pass (DESIGN.md's verdict rules).

TTFT drift is relative, in % of the fitted value at the run's start per hour; the error rate's
is absolute (a share per hour); memory growth is in % of the fitted start per hour.
"""

from __future__ import annotations

import math
import statistics
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import httpx
from prometheus_client.parser import text_string_to_metric_families

from gateprobe.commands.load.plan import LoadPlan
from gateprobe.commands.load.results import judge_latency, read_samples
from gateprobe.core.loadresult import Drift
from gateprobe.core.metrics import aggregate

SCRAPES_FILE = "target_metrics.jsonl"
"""What the run scraped from the target's metrics URL, a line per scrape."""
DEFAULT_WINDOW_S = 300.0
"""``--windows`` of a soak unless given: 5 minutes."""
MIN_POINTS = 5
"""Fewer complete windows (or scrapes) than this: no trend is judged (inconclusive)."""
MEMORY_METRIC = "process_resident_memory_bytes"
"""The resident memory a target's metrics report: the name every ``prometheus_client``
process exports (the reference gateway's ``/_gateprobe/metrics`` too)."""
CONNECTION_SUFFIXES = ("open_connections", "connections_open", "connections_active",
                       "active_connections")
"""A metric whose name ends so counts open connections (summed over its labels)."""
MAX_SCRAPE_BYTES = 4 * 1024 * 1024
SCRAPE_TIMEOUT_S = 5.0

Z95 = 1.959964
"""The two-sided 95% quantile of the normal distribution (Sen's interval is asymptotic)."""
MAX_FIT_POINTS = 600
"""A trend of more points is fitted through this many, evenly picked: the estimator compares
every pair (a 24-hour soak's 5,760 scrapes would be 16 million pairs)."""


@dataclass(frozen=True, slots=True)
class Trend:
    """A Theil–Sen line through (hours, value) points, with Sen's 95% interval on its slope."""

    slope: float
    """Units per hour."""
    low: float
    high: float
    start: float
    """The line's value at hour 0 (the run's start)."""
    mean: float
    points: int


def _tie_term(values: Iterable[float]) -> float:
    counts: dict[float, int] = {}
    for v in values:
        counts[v] = counts.get(v, 0) + 1
    return sum(k * (k - 1) * (2 * k + 5) for k in counts.values() if k > 1)


def fit(points: Sequence[tuple[float, float]]) -> Trend | None:
    """The Theil–Sen trend of ``(hours, value)`` points: the median of the slopes between
    every two points, and Sen's (1968) rank interval on it (None with fewer than 3 points or
    all at one time: no slope, or no doubt on it).

    Not least squares: a window's p99 of a few dozen streams is nearly its maximum, and one
    hiccup (a cold first request, a busy machine's pause) pulls a least-squares line and its
    interval anywhere, even wholly below a drift that is there. A median of pairwise slopes
    is moved by such a point no more than by any other (breakdown point 29%); its interval
    counts ranks, not residuals (as ``scipy.stats.theilslopes`` computes it)."""
    n = len(points)
    if n < 3:
        return None
    if n > MAX_FIT_POINTS:
        step = (n - 1) / (MAX_FIT_POINTS - 1)
        points = [points[round(i * step)] for i in range(MAX_FIT_POINTS)]
        n = MAX_FIT_POINTS
    slopes = sorted((y2 - y1) / (x2 - x1) for i, (x1, y1) in enumerate(points)
                    for x2, y2 in points[i + 1:] if x2 != x1)
    if not slopes:
        return None
    m = len(slopes)
    slope = (slopes[(m - 1) // 2] + slopes[m // 2]) / 2  # their median: already sorted
    variance = (n * (n - 1) * (2 * n + 5) - _tie_term(x for x, _ in points)
                - _tie_term(y for _, y in points)) / 18
    spread = Z95 * math.sqrt(max(variance, 0.0))
    low = slopes[max(round((m - spread) / 2) - 1, 0)]
    high = slopes[min(round((m + spread) / 2), m - 1)]
    start = statistics.median(y - slope * x for x, y in points)
    mean = sum(y for _, y in points) / n
    return Trend(slope, min(low, slope), max(high, slope), start, mean, n)


RELATIVE = "%/h"
ABSOLUTE = "/h"


def judge_trend(slo: str, trend: Trend | None, unit: str, limit: float | None,
                points: int) -> Drift:
    """A trend against ``slo <= limit``: failed only when the interval is wholly above it,
    met only when wholly at or below it, inconclusive otherwise."""
    if trend is None or points < MIN_POINTS:
        return Drift(slo, None, None, None, unit, points, limit,
                     "inconclusive" if limit is not None else "-",
                     f"{slo}: {points} points, at least {MIN_POINTS} needed to judge a "
                     "trend")
    scale = 1.0
    if unit == RELATIVE:
        base = trend.start if trend.start > 0 else trend.mean
        if base <= 0:
            return Drift(slo, None, None, None, unit, points, limit,
                         "inconclusive" if limit is not None else "-",
                         f"{slo}: no positive baseline to measure a drift from")
        scale = 100.0 / base
    value, low, high = trend.slope * scale, trend.low * scale, trend.high * scale
    said = f"{slo}: {value:+.4g} {unit} (95% interval {low:+.4g}..{high:+.4g}, {points} points)"
    if limit is None:
        return Drift(slo, value, low, high, unit, points, None, "-", said)
    if low > limit:
        return Drift(slo, value, low, high, unit, points, limit, "fail", f"{said} > {limit:g}")
    if high <= limit:
        return Drift(slo, value, low, high, unit, points, limit, "pass", said)
    return Drift(slo, value, low, high, unit, points, limit, "inconclusive",
                 f"{said}: the noise cannot tell it from {limit:g}; run longer or with "
                 "more windows")


# -- the target's own metrics ----------------------------------------------------------------
def read_metrics(text: str) -> dict[str, Any]:
    """Resident memory and open connections from a Prometheus text exposition (None for what
    it does not report; ``error`` when it is not the format)."""
    memory: float | None = None
    connections: float | None = None
    try:
        for family in text_string_to_metric_families(text):
            values = [s.value for s in family.samples if s.name == family.name]
            if family.name == MEMORY_METRIC and values:
                memory = sum(values)
            elif family.name.endswith(CONNECTION_SUFFIXES) and values:
                connections = (connections or 0.0) + sum(values)
    except (ValueError, TypeError, IndexError) as exc:
        return {"memory_bytes": None, "open_connections": None,
                "error": f"not Prometheus text format: {exc}"[:200]}
    return {"memory_bytes": memory, "open_connections": connections, "error": None}


def scrape(url: str) -> dict[str, Any]:
    """One scrape of a metrics URL, bounded in time and size, never raising: ``t``, the
    numbers of ``read_metrics`` or an ``error``. No key is sent: a metrics URL may be another
    host than the gateway's."""
    t = time.time()
    try:
        with httpx.stream("GET", url, timeout=SCRAPE_TIMEOUT_S, follow_redirects=False,
                          headers={"accept": "text/plain;version=0.0.4"}) as response:
            if response.status_code != 200:
                return {"t": t, "error": f"status {response.status_code}"}
            body = bytearray()
            for chunk in response.iter_bytes():
                body += chunk
                if len(body) > MAX_SCRAPE_BYTES:
                    return {"t": t, "error": f"larger than {MAX_SCRAPE_BYTES} bytes"}
    except httpx.HTTPError as exc:
        return {"t": t, "error": f"{type(exc).__name__}: {exc}"[:200]}
    return {"t": t, **read_metrics(body.decode("utf-8", errors="replace"))}


def scrape_every_s(window_s: float) -> float:
    """How often a soak scrapes: four times a window, at most every 15 s, at least every
    0.5 s (a compressed test soak)."""
    return min(15.0, max(0.5, window_s / 4))


# -- windows -------------------------------------------------------------------------------
def t0_of(samples: Iterable[Mapping[str, Any]],
          scrapes: Iterable[Mapping[str, Any]] = ()) -> float | None:
    """The run's start on the wall clock: its first sample's start (as the live windows of
    ``metricsout`` count it), else its first scrape's."""
    for group in (samples, scrapes):
        times = [float(s["t"]) for s in group if isinstance(s.get("t"), int | float)]
        if times:
            return min(times)
    return None


def window_of(t: float, t0: float, window_s: float) -> int:
    """The index of the window a time falls in."""
    return max(0, int((t - t0) // window_s))


def complete_windows(duration_s: float, window_s: float) -> int:
    """How many whole windows a run of ``duration_s`` holds (a last window cut to less than
    three quarters of its length is shown, not judged)."""
    return int((duration_s + 0.25 * window_s) // window_s)


def summarize_window(index: int, window_s: float, streams: Sequence[Mapping[str, Any]],
                     complete: bool) -> dict[str, Any]:
    """One window: its place in the run and ``metrics.aggregate`` of the streams that started
    in it."""
    out = {"index": index, "start_s": index * window_s, "end_s": (index + 1) * window_s,
           "complete": complete, **aggregate(streams, window_s)}
    out["requests_per_s"] = len(streams) / window_s
    return out


def windows(samples: Sequence[Mapping[str, Any]], window_s: float, duration_s: float,
            scrapes: Sequence[Mapping[str, Any]] = ()) -> list[dict[str, Any]]:
    """Every window of a run, in order, each with its streams' summary and the target's last
    scraped memory and connections within it."""
    streams = [s for s in samples if not s.get("dropped") and "t" in s]
    t0 = t0_of(streams, scrapes)
    if t0 is None:
        return []
    by_window: dict[int, list[Mapping[str, Any]]] = {}
    for s in streams:
        by_window.setdefault(window_of(float(s["t"]), t0, window_s), []).append(s)
    last_scrape: dict[int, Mapping[str, Any]] = {}
    for scrape in scrapes:
        if scrape.get("error") is None and isinstance(scrape.get("t"), int | float):
            last_scrape[window_of(float(scrape["t"]), t0, window_s)] = scrape
    full = complete_windows(duration_s, window_s)
    count = max([full, *(k + 1 for k in by_window)])
    out = []
    for k in range(count):
        row = summarize_window(k, window_s, by_window.get(k, []), k < full)
        scrape = last_scrape.get(k, {})
        row["memory_bytes"] = scrape.get("memory_bytes")
        row["open_connections"] = scrape.get("open_connections")
        out.append(row)
    return out


def _points(rows: Sequence[Mapping[str, Any]], value: Any) -> list[tuple[float, float]]:
    """(window midpoint in hours, value) of every complete window that has the value."""
    out = []
    for row in rows:
        y = value(row) if row.get("complete") else None
        if isinstance(y, int | float) and math.isfinite(y):
            out.append(((row["start_s"] + row["end_s"]) / 2 / 3600, float(y)))
    return out


DRIFTS = {
    "ttft_p50_drift_pct_per_hour": (RELATIVE, lambda r: (r.get("ttft_ms") or {}).get("p50")),
    "ttft_p99_drift_pct_per_hour": (RELATIVE, lambda r: (r.get("ttft_ms") or {}).get("p99")),
    "error_rate_drift_per_hour": (ABSOLUTE, lambda r: r["error_rate"] if r.get("requests")
                                  else None),
}
"""The drifts of the windows' numbers: objective name -> (unit, the window's value)."""
MEMORY_GROWTH = "memory_growth_pct_per_hour"
CONNECTIONS_GROWTH = "open_connections_drift_per_hour"
"""Shown, not an objective: connections come and go with the load itself."""


def drifts(rows: Sequence[Mapping[str, Any]], scrapes: Sequence[Mapping[str, Any]],
           slo: Mapping[str, float], metrics_url: str | None, t0: float = 0.0) -> list[Drift]:
    """Every drift of a run, each judged against its objective where the SLO file sets one.
    The target's memory and connections are fitted over every scrape (there are more scrapes
    than windows, ``t0`` the run's start); without a metrics URL they are not measured."""
    out = []
    for name, (unit, value) in DRIFTS.items():
        points = _points(rows, value)
        out.append(judge_trend(name, fit(points), unit, slo.get(name), len(points)))
    if metrics_url:
        out += [_scraped_drift(name, field, unit, scrapes, slo.get(name), metrics_url, t0)
                for name, field, unit in ((MEMORY_GROWTH, "memory_bytes", RELATIVE),
                                          (CONNECTIONS_GROWTH, "open_connections", ABSOLUTE))]
    return out


def _scraped_drift(name: str, field: str, unit: str, scrapes: Sequence[Mapping[str, Any]],
                   limit: float | None, url: str, t0: float) -> Drift:
    """The trend of one scraped number; with no usable scrape, why (the last error)."""
    points = [((float(s["t"]) - t0) / 3600, float(s[field])) for s in scrapes
              if s.get("error") is None and isinstance(s.get(field), int | float)
              and isinstance(s.get("t"), int | float)]
    drift = judge_trend(name, fit(points), unit, limit, len(points))
    if points:
        return drift
    errors = [str(s["error"]) for s in scrapes if s.get("error")]
    why = errors[-1] if errors else f"it reports no {field.replace('_', ' ')} metric"
    return Drift(name, None, None, None, unit, 0, limit, drift.outcome,
                 f"{name}: {len(scrapes)} scrapes of {url}, none usable: {why}")


def judge_soak(out: dict[str, Any], plan: LoadPlan, samples: Sequence[dict[str, Any]],
               scrapes: Sequence[Mapping[str, Any]]) -> None:
    """The soak's own part of a verdict (after the latency part): windows and drifts; drift
    breaches join the reasons, and when nothing failed, what could not be told makes the run
    inconclusive."""
    window_s = plan.soak_window_s or DEFAULT_WINDOW_S
    rows = windows(samples, window_s, plan.duration_s, scrapes)
    t0 = t0_of([s for s in samples if not s.get("dropped")], scrapes) or 0.0
    judged = drifts(rows, scrapes, plan.slo, plan.metrics_url, t0)
    not_run = [f"{MEMORY_GROWTH}: not run (the target declares no metrics URL)"] \
        if MEMORY_GROWTH in plan.slo and not plan.metrics_url else []
    failed = [d for d in judged if d.outcome == "fail"]
    undecided = [d.why for d in judged if d.outcome == "inconclusive"]
    out["soak"] = {"window_s": window_s, "windows": rows, "metrics_url": plan.metrics_url,
                   "scrapes": len(scrapes), "drifts": [asdict(d) for d in judged],
                   "notes": not_run}
    out["breaches"] = [*out.get("breaches", []),
                       *({"slo": d.slo, "limit": d.limit, "observed": d.value} for d in failed)]
    out["failed_checks"] = sorted({*out.get("failed_checks", []),
                                   *(f"slo.{d.slo}" for d in failed)})
    out["reasons"] = [*out.get("reasons", []), *(d.why for d in failed)]
    if undecided and not out["reasons"]:
        out["inconclusive"] = {"why": "; ".join(undecided)}
        out["reasons"] = list(undecided)
    elif undecided:
        out["soak"]["notes"] += [f"not judged: {why}" for why in undecided]


def judge(out: dict[str, Any], plan: LoadPlan, samples: Sequence[dict[str, Any]],
          wall_s: float) -> None:
    """The soak scenario's part of a verdict: the latency scenario's over the whole run, then
    the windows and their drifts (with what the run scraped, ``SCRAPES_FILE``)."""
    judge_latency(out, plan, samples, wall_s)
    judge_soak(out, plan, samples, list(read_samples(plan.out / SCRAPES_FILE)))
