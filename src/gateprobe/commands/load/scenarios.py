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
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from gateprobe.commands.load import soak
from gateprobe.commands.load.plan import (
    MAX_DURATION_S,
    MAX_REQUESTS,
    MAX_SOAK_DURATION_S,
    STREAM_ENDPOINTS,
    LoadPlan,
)
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
from gateprobe.commands.load.workloads import workload_summary
from gateprobe.core.console import Console
from gateprobe.core.errors import UsageError
from gateprobe.core.loadresult import (
    RESULT_TYPES,
    LatencyResult,
    Percentiles,
    RateLimitResult,
    ResultType,
    ScenarioResult,
    SoakResult,
    StreamStats,
    SweepResult,
    TasksResult,
    WorkloadStats,
    result_of,
)
from gateprobe.core.metrics import finite
from gateprobe.core.targets import Target
from gateprobe.core.tokenizer import NAME as TOKENIZER
from gateprobe.protocols.gateway_apis import MJ_PREFIX

Judge = Callable[[dict[str, Any], LoadPlan, Sequence[dict[str, Any]], float], None]
"""Fills a verdict's scenario part: its numbers, ``reasons`` and ``failed_checks``."""


DEFAULT_MAX_REQUESTS = 10_000
"""A run's request cap unless ``--max-requests`` says otherwise (a soak's: ``MAX_REQUESTS``)."""
SOAK_DURATION_S = 7200.0
"""A soak's duration unless ``--duration`` says otherwise: two hours."""
LIVE_WINDOW_S = 10.0
"""The windows a latency run streams (``--metrics-port``, ``windows.jsonl``) unless given."""
TASK_PATHS = (MJ_PREFIX + "imagine", MJ_PREFIX + "query")
"""What the tasks scenario sends to: only a target that declares ``midjourney`` serves them."""


@dataclass(frozen=True, slots=True)
class Scenario:
    """One load scenario."""

    name: str
    """As the command line names it: ``gateprobe load <name>``."""
    locustfile: str
    """Its Locust user classes: a file of ``load/``."""
    result_type: ResultType
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
    describe: Callable[[LoadPlan, Console], None] = lambda plan, console: None
    """``--dry-run``: the traffic a run would send and its caps."""
    sweep: bool = False
    """It runs a series of latency runs at rising loads (``gateprobe.commands.load.sweep``), each of
    them judged by the latency scenario, the sweep over them."""
    duration_s: float | None = 30.0
    """Its duration unless ``--duration`` or ``--stages`` say otherwise (None: three of the
    target's rate windows and 15 s, the rate-limit burst's)."""
    max_duration_s: float = MAX_DURATION_S
    max_requests: int = DEFAULT_MAX_REQUESTS
    """Its request cap unless ``--max-requests`` says otherwise."""
    window_s: float | None = None
    """Its streams are cut into windows of this many seconds unless ``--windows`` says
    otherwise (live metrics, ``windows.jsonl``, a soak's drift); None: not windowed."""
    min_windows: int = 0
    """The fewest complete windows a run may have (a trend needs points)."""
    takes: frozenset[str] = frozenset()
    """The option groups of its own: ``workload`` (lengths, turns, datasets), ``stages``,
    ``weights`` (endpoints), ``polling`` (tasks), ``metrics_url`` (the target's memory)."""
    refusal: Callable[[Target], str] = lambda target: ""
    """Why it cannot run against ``target`` ('' when it can): what it needs of a target."""

    @property
    def windowed(self) -> bool:
        """Whether its streams are cut into windows."""
        return self.window_s is not None


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
    if result.workload is not None:
        show_workload(result.workload, console)


def show_workload(work: WorkloadStats, console: Console) -> None:
    """TTFT by turn and by shared-prefix length (when there are several), and the tokens
    asked against those received."""
    for title, groups in (("turn", work.by_turn), ("prefix tokens", work.by_prefix_tokens)):
        if len(groups) > 1:
            console.table([title, "requests", "errors", "prompt tokens p50", "ttft p50",
                           "ttft p95"],
                          [[k, str(g.requests), str(g.errors), _fmt(g.prompt_tokens.p50, 0),
                            _fmt(g.ttft_ms.p50), _fmt(g.ttft_ms.p95)]
                           for k, g in groups.items()])
    def p50(name: str) -> str:
        return _fmt(work.tokens.get(name, Percentiles()).p50, 0)

    console.line(
        f"tokens p50: prompt asked {p50('prompt_tokens_asked')}, sent {p50('prompt_tokens')} "
        f"({TOKENIZER}), usage {p50('prompt_tokens_usage')}; output asked "
        f"{p50('output_tokens_asked')} (max_tokens: a cap, not a length), received "
        f"{p50('output_tokens')}; TTFT +{_fmt(work.ttft_ms_per_1k_prompt_tokens)} ms per 1k "
        "prompt tokens")


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


def describe_rate_limits(plan: LoadPlan, console: Console) -> None:
    """Each tier's burst and recovery, the one endpoint and model, how fast it is sent."""
    rows: list[list[str]] = []
    total = 0
    for tier, limit in plan.limits.items():
        n = plan.burst_size(tier)
        total += n + 1
        rows.append([tier, str(limit), str(n), "1", plan.tier_keys.get(tier, "?")])
    console.table(["tier", "limit", "burst", "recovery", "key variable"], rows)
    path = STREAM_ENDPOINTS["chat"]
    console.line(f"{total} requests to {path} ({plan.models['legacy_chat']}, "
                 f"max_tokens 1, which that model ignores: its answers are as long as "
                 f"the gateway makes them), every burst at once, at most {plan.max_rps:g}/s "
                 f"(all out within {plan.burst_total / plan.max_rps:.2g} s of a "
                 f"{plan.window_s:g} s window)")


def describe_tasks(plan: LoadPlan, console: Console) -> None:
    """Users, polling and the task's deadline, the caps."""
    polls = math.ceil(plan.task_deadline_s / plan.poll_interval_s) + 1
    console.line(f"{plan.users} users, each creating a Midjourney imagine task and querying "
                 f"it every {plan.poll_interval_s:g} s until SUCCESS or FAILURE (at most "
                 f"{polls} queries and {plan.task_deadline_s:g} s a task), for "
                 f"{plan.duration_s:g} s; at most {plan.request_bound} requests (caps: "
                 f"{plan.max_requests} requests, {plan.max_rps:g}/s)")


def describe_latency(plan: LoadPlan, console: Console) -> None:
    """The endpoint mix, users or arrivals, the workload's flags, the request and token
    bounds."""
    weights = {k: w for k, w in plan.weights.items() if w > 0}
    share = sum(weights.values())
    how = "closed-loop users" if plan.arrival == "closed" else \
        f"{plan.arrival} arrivals at {plan.rate:g}/s"
    work = plan.workload or {}
    each = work.get("output_tokens") or str(plan.max_tokens)
    console.table(["endpoint", "share", "max tokens each"],
                  [[k, f"{w / share:.0%}", each] for k, w in weights.items()])
    console.line(f"{plan.users} users, {how}, for {plan.duration_s:g} s")
    if work:  # gateprobe.commands.load.workloads: its flags as given
        console.line("workload: " + " ".join(_workload_flags(work)))
    bound = plan.request_bound
    console.line(f"at most {bound} streaming requests (caps: {plan.max_requests} "
                 f"requests, {plan.max_rps:g}/s), at most "
                 + (f"{bound * plan.max_tokens} generated tokens" if not
                    work.get("output_tokens") else "max_tokens as drawn each"))


def _workload_flags(work: dict[str, Any]) -> list[str]:
    """A plan's workload (``gateprobe.commands.load.workloads.Workload.as_json``) as its flags."""
    flags = []
    for name, value in work.items():
        if value in (None, [], 0, 0.0) and name != "seed":
            continue
        flag = {"seed": "workload-seed", "think_time_s": "think-time"}.get(
            name, name.replace("_", "-"))
        text = ",".join(map(str, value)) if isinstance(value, list) else \
            f"{value:g}s" if name == "think_time_s" else str(value)
        flags.append(f"--{flag} {text}")
    return flags


def _percent(share: float) -> str:
    return f"{share:.0%}" if share < 0.995 or share == 1 else f"{share:.1%}"


def show_sweep(result: SweepResult, console: Console) -> None:
    """Each level's load, latency, errors, goodput and saturation; then the knee."""
    rows = []
    for i, level in enumerate(result.levels):
        m = level.stats
        mark = "SATURATED" if level.saturated else "knee" if i == result.knee else ""
        rows.append([level.name, _fmt(level.rate) if level.rate is not None else "-",
                     _fmt(level.achieved_rps), str(level.requests), _fmt(m.ttft_ms.p50),
                     _fmt(m.ttft_ms.p99), _fmt(m.itl_ms.p99), _fmt(m.tpot_ms.p50, 2),
                     _fmt(m.e2e_ms.p99), _fmt(level.output_tokens_per_s),
                     f"{m.error_rate:.1%}", f"{level.rate_limited_share:.1%}",
                     _fmt(level.goodput_rps), _percent(level.goodput_share), mark])
    console.table(["level", "offered/s", "achieved/s", "requests", "ttft p50", "ttft p99",
                   "itl p99", "tpot p50", "e2e p99", "tok/s", "errors", "429", "goodput/s",
                   "goodput", ""], rows)
    bounds = ", ".join(f"{k} <= {v:g}" for k, v in result.request_bounds.items()) or "none"
    console.line(f"times in ms; goodput: requests that succeeded with {bounds} (each request, "
                 f"from the SLO file's objectives); saturated levels are not judged")
    knee = result.knee_level
    console.line(f"knee (goodput >= {result.threshold:.0%}): " + (
        f"{knee.achieved_rps:.1f} requests/s at {knee.name}, goodput "
        f"{knee.goodput_rps:.1f}/s ({_percent(knee.goodput_share)})" if knee is not None
        else "none: no level met it") + (f"; {result.knee_hidden}" if result.knee_hidden
                                          else ""))


def _mb(value: float | None) -> str:
    return "-" if value is None else f"{value / 2**20:.1f}"


def show_soak(result: SoakResult, console: Console) -> None:
    """The latency tables over the whole run, then each window and each drift."""
    show_latency(result, console)
    console.line(f"windows of {result.window_s:g} s (* cut short: shown, not judged)"
                 + (f"; target metrics from {result.metrics_url} ({result.scrapes} scrapes)"
                    if result.metrics_url else ""))
    console.table(["window", "from s", "requests", "req/s", "errors", "ttft p50", "ttft p99",
                   "itl p99", "e2e p95", "memory MB", "connections"],
                  [[f"{w.index}{'' if w.complete else '*'}", f"{w.start_s:g}",
                    str(w.requests), _fmt(w.requests_per_s), f"{w.error_rate:.1%}",
                    _fmt(w.ttft_ms.p50), _fmt(w.ttft_ms.p99), _fmt(w.itl_ms.p99),
                    _fmt(w.e2e_ms.p95), _mb(w.memory_bytes), _fmt(w.open_connections, 0)]
                   for w in result.windows])
    console.table(["drift", "per hour", "95% interval", "points", "objective", "outcome"],
                  [[d.slo, "-" if d.value is None else f"{d.value:+.4g} {d.unit}",
                    "-" if d.low is None or d.high is None
                    else f"{d.low:+.4g}..{d.high:+.4g}", str(d.points),
                    "-" if d.limit is None else f"<= {d.limit:g}", d.outcome]
                   for d in result.drifts])
    for note in result.notes:
        console.line(f"note: {note}")


def describe_soak(plan: LoadPlan, console: Console) -> None:
    """The latency run's traffic, then its windows and what the drift is judged on."""
    describe_latency(plan, console)
    window = plan.soak_window_s or soak.DEFAULT_WINDOW_S
    console.line(f"{soak.complete_windows(plan.duration_s, window)} windows of {window:g} s; "
                 "drift judged on TTFT p50/p99 and the error rate; target metrics: "
                 f"{plan.metrics_url or 'none declared (memory growth not run)'}")


def needs_tier_keys(target: Target) -> str:
    """What the rate-limit scenario needs of a target: a key per tier, each set."""
    if not (target.tier_key_envs or target.tier_keys):
        if target.name:
            return f"target {target.name!r} has no tier_keys"
        return ("rate-limits needs tier keys: give the target a tier_keys entry and use "
                "--target")
    unset = [f"{v} (tier {t})" for t, v in target.tier_key_envs.items()
             if not target.tier_keys.get(t)]
    return f"the tier key variable {unset[0]} is not set" if unset else ""


def needs_tasks(target: Target) -> str:
    """What the tasks scenario needs of a target: its Midjourney routes."""
    unserved = [p for p in TASK_PATHS if not target.serves(p)]
    return (f"tasks sends to {unserved[0]}, which the target does not serve (declare "
            "midjourney in its endpoints, or --endpoints ...,midjourney)") if unserved else ""


SCENARIOS: dict[str, Scenario] = {s.name: s for s in (
    Scenario("rate-limits", "rate_limits.py", RateLimitResult, judge_rate_limits,
             show_rate_limits, "Rate limits", processes=None, timed=False, tier_keys=True,
             describe=describe_rate_limits, duration_s=None, takes=frozenset({"weights"}),
             refusal=needs_tier_keys),
    Scenario("latency", "streaming_latency.py", LatencyResult, judge_latency, show_latency,
             "Latency", describe=describe_latency, window_s=LIVE_WINDOW_S,
             takes=frozenset({"workload", "stages", "weights"})),
    Scenario("tasks", "mj_tasks.py", TasksResult, judge_tasks, show_tasks,
             "Midjourney tasks", unit="tasks", describe=describe_tasks,
             takes=frozenset({"polling"}), refusal=needs_tasks),
    # Each level is a latency run, judged as one; the sweep over them: ``load.sweep``.
    Scenario("sweep", "streaming_latency.py", SweepResult, judge_latency, show_sweep,
             "Sweep", sweep=True, takes=frozenset({"weights"})),
    Scenario("soak", "streaming_latency.py", SoakResult, soak.judge, show_soak, "Soak",
             describe=describe_soak, duration_s=SOAK_DURATION_S,
             max_duration_s=MAX_SOAK_DURATION_S, max_requests=MAX_REQUESTS,
             window_s=soak.DEFAULT_WINDOW_S, min_windows=soak.MIN_POINTS,
             takes=frozenset({"weights", "metrics_url"})),
)}
"""Every load scenario, by name, in the order help lists them."""
assert {n: s.result_type for n, s in SCENARIOS.items()} == RESULT_TYPES


def taking(group: str) -> str:
    """The scenarios that take an option group, as a message names them."""
    names = [name for name, spec in SCENARIOS.items() if group in spec.takes]
    return " and ".join(names) + (" scenarios" if len(names) > 1 else " scenario")


def windowed() -> str:
    """The windowed scenarios, as a message names them."""
    return " and ".join(name for name, spec in SCENARIOS.items() if spec.windowed) + \
        " scenarios"


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
    if plan.workload:
        out["workload"] = workload_summary(samples)
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
