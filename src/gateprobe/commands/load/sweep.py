"""``gateprobe load sweep``: latency runs at rising loads, each one's goodput, and the knee.

A rate sweep (guidellm's "sweep" profile) runs a synchronous baseline (one closed-loop user:
the rate one stream at a time sustains), then the maximum throughput (closed-loop users at a
high concurrency: the rate the target gives when nobody waits between requests), then N
arrival rates (constant or Poisson) evenly above the first up to the second. A concurrency
sweep runs closed-loop users at each of the given concurrencies instead.

Each level is one latency run of its own (``runner.run_load``, its own folder under the
sweep's, with its own verdict and the generator's verdict on itself), bounded by its duration,
its request cap and its run budget. Per level: the achieved rate, the latency percentiles of
the one metric definition, output tokens/s, error and 429 shares, and the **goodput**: the
requests that met every latency objective of the SLO file read per request
(``slo.request_bounds``), per second and as a share.

The **knee** is the highest level whose goodput share reaches the threshold (95% unless told).
A level whose own generator saturated says nothing about the target and is left out; when such
a level lies above the knee, the knee may be higher than measured and the sweep says so. The
knee is gateable: ``max_sustainable_rps_min`` in the SLO file, judged into the exit code.
"""

from __future__ import annotations

import io
import json
import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from gateprobe.commands.load.plan import ARRIVALS, STREAM_ENDPOINTS
from gateprobe.commands.load.results import (
    SAMPLES_FILE,
    VERDICT_FILE,
    VERDICT_VERSION,
    findings_of,
    read_samples,
    summary_line,
)
from gateprobe.commands.load.runner import (
    STOP_TIMEOUT_S,
    LoadOptions,
    LoadResult,
    dry_run,
    plan_load,
    run_load,
)
from gateprobe.commands.load.scenarios import show
from gateprobe.commands.load.selfcheck import LAG_MARGIN
from gateprobe.commands.load.slo import evaluate_sweep, meets, request_bounds
from gateprobe.core.console import Console
from gateprobe.core.errors import SATURATED_EXIT, UsageError
from gateprobe.core.loadresult import LatencyResult, SweepResult
from gateprobe.core.metrics import finite
from gateprobe.core.redact import Redactor, redact_tree
from gateprobe.core.targets import Target
from gateprobe.engine.report import loadpage, new_run_dir

DEFAULT_LEVELS = 8
DEFAULT_LEVEL_S = 20.0
DEFAULT_MAX_USERS = 64
DEFAULT_THRESHOLD = 0.95
MAX_LEVELS = 50
LEVEL_OVERHEAD_S = 8.0
"""What a level adds to its duration, typically: Locust's start and its processes' end."""


@dataclass(frozen=True, slots=True)
class SweepOptions:
    """The shape of a sweep (the rest of each level's run is the ``LoadOptions``)."""

    levels: int = DEFAULT_LEVELS
    """Arrival rates between the synchronous and the throughput levels."""
    concurrency: tuple[int, ...] = ()
    """A concurrency sweep: closed-loop users at each of these (no rate levels then)."""
    level_s: float = DEFAULT_LEVEL_S
    """Each level's duration, also its cap."""
    max_users: int = DEFAULT_MAX_USERS
    """The throughput level's closed-loop users."""
    threshold: float = DEFAULT_THRESHOLD
    """The goodput share a level needs to be sustained."""
    arrival: str = "constant"
    """The rate levels' arrivals: ``constant`` or ``poisson``."""

    def check(self) -> SweepOptions:
        """Itself, every value usable (``UsageError`` naming the flag otherwise)."""
        if not 1 <= self.levels <= MAX_LEVELS:
            raise UsageError(f"--levels must be within 1..{MAX_LEVELS}")
        if self.concurrency and (len(self.concurrency) > MAX_LEVELS
                                 or min(self.concurrency) < 1):
            raise UsageError(f"--concurrency takes 1 to {MAX_LEVELS} numbers, each at least 1")
        if not (math.isfinite(self.level_s) and self.level_s > 0):
            raise UsageError("--level-duration must be > 0")
        if self.max_users < 2:
            raise UsageError("--max-users must be at least 2")
        if not 0 < self.threshold <= 1:
            raise UsageError("--goodput-threshold must be within 0..1 (0.95: 95%)")
        if self.arrival not in ARRIVALS or self.arrival == "closed":
            raise UsageError("a sweep's rate levels arrive constant or poisson")
        return self

    @property
    def count(self) -> int:
        """How many levels the sweep runs."""
        return len(self.concurrency) or self.levels + 2

    def bound_s(self, budget_s: float) -> float:
        """The longest the sweep can take: every level stopped at its own run budget."""
        return self.count * (self.level_s + budget_s)


def concurrency_list(text: str) -> tuple[int, ...]:
    """``--concurrency 1,4,16,64`` (``UsageError`` on anything else)."""
    try:
        values = tuple(int(part) for part in text.split(","))
    except ValueError:
        raise UsageError(f"--concurrency {text!r}: expected numbers such as 1,4,16,64") \
            from None
    if not values or min(values) < 1:
        raise UsageError(f"--concurrency {text!r}: each level needs at least 1 user")
    return tuple(sorted(set(values)))


@dataclass(frozen=True, slots=True)
class Level:
    """One level to run."""

    name: str
    arrival: str
    users: int
    rate: float | None = None


def run_sweep(target: Target, options: LoadOptions, sweep: SweepOptions,
              console: Console) -> LoadResult:
    """Run every level against ``target``, judge goodput and the knee, print the table and
    write ``verdict.json`` and ``report.html`` in the sweep's folder; the result."""
    sweep.check()
    first = _level_options(options, sweep, Level("synchronous", "closed", 1), Path("."))
    plan = plan_load(target, first)  # refuses what no level could run, before anything runs
    budget = STOP_TIMEOUT_S + 60
    out = new_run_dir("load-sweep", explicit=options.report_dir)
    console.line(f"gateprobe load sweep: {plan.base_url}, report in {out}")
    console.line(f"{sweep.count} levels of {sweep.level_s:g} s (about "
                 f"{_minutes(sweep.count * (sweep.level_s + LEVEL_OVERHEAD_S))}, at most "
                 f"{_minutes(sweep.bound_s(budget))}); each at most {plan.max_requests} "
                 f"requests; goodput: every objective met, knee at {sweep.threshold:.0%}")
    rows: list[dict[str, Any]] = []
    t0 = time.monotonic()
    todo = [Level(f"concurrency {c}", "closed", c) for c in sweep.concurrency] or \
        [Level("synchronous", "closed", 1), Level("throughput", "closed", sweep.max_users)]
    while todo:
        level = todo.pop(0)
        rows.append(_run_level(target, options, sweep, level, out, len(rows), plan.slo,
                               console))
        if not sweep.concurrency and len(rows) == 2:
            todo = _rate_levels(rows[0]["achieved_rps"], rows[1]["achieved_rps"], sweep,
                                plan.max_rps, options.users)
    # Shown by rising load: users (closed loops) after the arrival rates they outran.
    rows.sort(key=lambda r: (r["arrival"] == "closed" and r["users"] > 1, r["users"],
                             r["rate"] or 0.0))
    verdict = judge_sweep(rows, plan.slo, sweep, plan.base_url)
    verdict["wall_s"] = time.monotonic() - t0
    (out / VERDICT_FILE).write_text(json.dumps(finite(verdict), indent=2, allow_nan=False),
                                    encoding="utf-8")
    redact_tree(out, Redactor(target.secrets))
    loadpage.write(out)
    return _outcome(verdict, out, console)


def dry_run_sweep(target: Target, options: LoadOptions, sweep: SweepOptions,
                  console: Console) -> int:
    """Print what a sweep would send (one level's traffic and caps, then the sweep's bound);
    nothing is sent; 0."""
    sweep.check()
    level = _level_options(options, sweep, Level("synchronous", "closed", 1), Path("."))
    plan = plan_load(target, level, sending=False)
    levels = ", ".join(f"{c} users" for c in sweep.concurrency) if sweep.concurrency else \
        (f"synchronous (1 user), throughput ({sweep.max_users} users), {sweep.levels} "
         f"{sweep.arrival} rates up to the throughput's ({options.users} users)")
    console.line(f"a sweep of {sweep.count} levels ({levels}), each {sweep.level_s:g} s: "
                 f"at most {sweep.count * plan.request_bound} requests and "
                 f"{sweep.count * plan.request_bound * plan.max_tokens} generated tokens in "
                 f"all, within {_minutes(sweep.bound_s(STOP_TIMEOUT_S + 60))}; each level:")
    return dry_run(target, level, console)


def _minutes(seconds: float) -> str:
    return f"{seconds:.0f} s" if seconds < 120 else f"{seconds / 60:.0f} min"


def _level_options(options: LoadOptions, sweep: SweepOptions, level: Level,
                   folder: Path) -> LoadOptions:
    return replace(options, scenario="latency", users=level.users, arrival=level.arrival,
                   rate=level.rate or 0.0, duration_s=sweep.level_s, report_dir=folder,
                   spawn_rate=None).check()


def _rate_levels(low: float, high: float, sweep: SweepOptions, cap: float,
                 users: int) -> list[Level]:
    """``sweep.levels`` arrival rates evenly above the synchronous level's achieved rate up
    to the throughput level's (the last at it: can the target sustain, with arrivals that do
    not wait, what it gave users who did?), within the rate cap, each sent by ``users`` users
    (arrivals never wait for answers: users only share them)."""
    high = min(high, cap)
    if not (low > 0 and high > low):
        return []  # a target no faster with many users than with one: nothing between
    step = (high - low) / sweep.levels
    rates = [round(low + step * i, 3) for i in range(1, sweep.levels + 1)]
    return [Level(f"rate {r:g}/s", sweep.arrival, users, r) for r in rates]


def _run_level(target: Target, options: LoadOptions, sweep: SweepOptions, level: Level,
               out: Path, index: int, slo: Mapping[str, float],
               console: Console) -> dict[str, Any]:
    """Run one level (its tables kept in its folder, one line here); its row."""
    folder = out / f"level-{index + 1:02d}"
    text = io.StringIO()
    result = run_load(target, _level_options(options, sweep, level, folder),
                      Console(text, text))
    (folder / "console.txt").write_text(text.getvalue(), encoding="utf-8")
    row = level_row(level, result, list(read_samples(folder / SAMPLES_FILE)), slo,
                    sweep.threshold)
    row["dir"] = folder.name
    console.line(f"  {index + 1}. {level.name}: {row['achieved_rps']:.1f} requests/s, goodput "
                 f"{row['goodput_share']:.0%}" + (" SATURATED" if row["saturated"] else ""))
    return row


def level_row(level: Level, result: LoadResult, samples: Sequence[Mapping[str, Any]],
              slo: Mapping[str, float], threshold: float = DEFAULT_THRESHOLD) -> dict[str, Any]:
    """One level's numbers (``loadresult.SweepLevel``) from its latency run and its samples.

    A level whose generator was over its lag bound is still judged when the lag cannot
    decide it: when its goodput share is on the same side of ``threshold`` with every request
    within the lag's margin of a bound counted bad, and counted good (``goodput_range``)."""
    typed = result.result
    lagging = isinstance(typed, LatencyResult) and typed.generator.saturated
    streams = [s for s in samples if not s.get("dropped")]
    # Closed-loop users each start one request after another, all at once at first; the
    # open-loop users' arrivals interleave into one stream (``locustlib``: evenly phased).
    achieved = achieved_rps([float(s["t"]) for s in streams
                             if isinstance(s.get("t"), int | float)],
                            level.users if level.arrival == "closed" else 1)
    good = sum(1 for s in streams if meets(s, request_bounds(slo, _kind(s))))
    share = good / len(streams) if streams else 0.0
    low, high = _goodput_range(streams, slo, _margin(typed)
                               if lagging and isinstance(typed, LatencyResult) else 0.0)
    decided = (low >= threshold) == (high >= threshold)
    latency = (result.verdict or {}).get("latency") or {}
    return {"name": level.name, "arrival": level.arrival, "users": level.users,
            "rate": level.rate, "achieved_rps": achieved, "requests": len(streams),
            "latency": {k: v for k, v in latency.items() if k != "by_endpoint"},
            "output_tokens_per_s": latency.get("overall_tokens_per_s"),
            "rate_limited_share": sum(1 for s in streams if s.get("status") == 429)
            / len(streams) if streams else 0.0,
            "goodput_rps": achieved * share, "goodput_share": share,
            "goodput_range": [low, high],
            "saturated": (typed.generator.why or "saturated")
            if isinstance(typed, LatencyResult) and lagging and not decided else "",
            "limited_by_target": typed.limited_by_target if typed is not None else "",
            "exit_code": result.exit_code}


def _margin(typed: LatencyResult) -> float:
    """How far the generator's lag may have moved a request's times (``LAG_MARGIN`` lags)."""
    return LAG_MARGIN * max((p for p in typed.generator.lag_p99_ms.values()
                             if p is not None and math.isfinite(p)), default=0.0)


def _goodput_range(streams: Sequence[Mapping[str, Any]], slo: Mapping[str, float],
                   margin: float) -> tuple[float, float]:
    """The goodput share with every bound tightened by ``margin`` ms, and loosened by it (a
    TPOT's by twice the margin over the stream's gaps): what the lag leaves undecided."""
    if not streams:
        return 0.0, 0.0

    def moved(sample: Mapping[str, Any], by: float) -> dict[str, float]:
        gaps = max(1, int(sample.get("output_tokens") or 0) - 1)
        return {m: b + (2 * by / gaps if m == "tpot_ms" else by)
                for m, b in request_bounds(slo, _kind(sample)).items()}

    low = sum(1 for s in streams if meets(s, moved(s, -margin)))
    high = sum(1 for s in streams if meets(s, moved(s, margin)))
    return low / len(streams), high / len(streams)


def achieved_rps(starts: Sequence[float], streams: int = 1) -> float:
    """Requests started per second, over the span of their starts, from ``streams`` sequences
    that started together, each one request after another (closed-loop users). Each one's
    first start opens the span and adds no gap: ``(n - streams) / span`` counts the gaps
    inside it, where ``(n - 1) / span`` would overstate a short level's rate."""
    ordered = sorted(starts)
    span = ordered[-1] - ordered[0] if len(ordered) > 1 else 0.0
    gaps = len(ordered) - streams if len(ordered) > streams else len(ordered) - 1
    return gaps / span if span > 0 else 0.0


def _kind(sample: Mapping[str, Any]) -> str:
    """The endpoint kind (``chat``) of a sample, for its endpoint's own objectives."""
    endpoint = sample.get("endpoint")
    return next((k for k, path in STREAM_ENDPOINTS.items() if path == endpoint), "")


def judge_sweep(rows: Sequence[Mapping[str, Any]], slo: Mapping[str, float],
                sweep: SweepOptions, base_url: str) -> dict[str, Any]:
    """The sweep's verdict: its levels, the knee, and the knee's objective."""
    sustained = [i for i, r in enumerate(rows)
                 if not r["saturated"] and r["requests"] and r["goodput_share"] >= sweep.threshold]
    knee = max(sustained, key=lambda i: rows[i]["achieved_rps"], default=None)
    knee_rps = rows[knee]["achieved_rps"] if knee is not None else None
    above = [r for r in rows if r["saturated"] and _offered(r) > (knee_rps or 0.0)]
    names = [r["name"] for r in above]
    named = ", ".join(names) if len(names) <= 3 else \
        f"{len(names)} levels ({names[0]} to {names[-1]})"
    hidden = (f"the load generator saturated at {named} "
              f"({'above the knee' if knee is not None else 'and no level was sustained'}), "
              "where the target was not measured: the knee may be higher; rerun on a quieter "
              "machine or with more --processes or workers") if above else ""
    breaches = evaluate_sweep(knee_rps, slo)
    out: dict[str, Any] = {
        "version": VERDICT_VERSION, "scenario": "sweep", "base_url": base_url,
        "requests": sum(int(r["requests"]) for r in rows), "slo_names": sorted(slo),
        "wall_s": 0.0,
        "sweep": {"mode": "concurrency" if sweep.concurrency else "rate", "levels": list(rows),
                  "threshold": sweep.threshold, "knee": knee, "knee_hidden": hidden,
                  "max_sustainable_rps": knee_rps,
                  "request_bounds": request_bounds(slo)},
        "breaches": [{"slo": b.slo, "limit": b.limit, "observed": b.observed}
                     for b in breaches],
        "failed_checks": sorted(b.check_id for b in breaches),
        "reasons": [str(b) for b in breaches]}
    if hidden and breaches:  # the knee missed its bound, but may be higher: cannot tell
        out["saturated"] = {"why": hidden, "unjudged": ["max_sustainable_rps_min"]}
        out["reasons"], out["breaches"], out["failed_checks"] = [hidden], [], []
    elif hidden and "max_sustainable_rps_min" not in slo:
        out["saturated"] = {"why": hidden, "unjudged": []}
        out["reasons"] = [hidden]
    out["generator"] = {"saturated": bool(out.get("saturated")), "why": hidden}
    out["ok"] = not out["reasons"]
    return out


def _offered(row: Mapping[str, Any]) -> float:
    rate = row.get("rate")
    return float(rate) if isinstance(rate, int | float) else float(row["achieved_rps"])


def _outcome(verdict: Mapping[str, Any], out: Path, console: Console) -> LoadResult:
    """Print the table and the verdict line; the result and its exit code."""
    typed = show(verdict, console)
    result = LoadResult("sweep", 0, out, dict(verdict), findings_of(verdict),
                        summary_line(verdict))
    if isinstance(typed, SweepResult) and typed.saturated:
        result.exit_code = SATURATED_EXIT
        console.line(f"SATURATED (knee not judged): {typed.saturated}")
    elif verdict["ok"]:
        console.line(f"PASS: {result.reason}")
    else:
        result.exit_code = 1
        console.line(f"FAIL: {'; '.join(verdict['reasons'])}")
    return result
