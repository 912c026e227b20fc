"""The load engine: ``run_load(target, options)`` plans a Locust scenario (rate-limits,
latency or tasks) against a ``Target``, checks it is safe, runs Locust in a subprocess and turns its
verdict into tables, findings and an exit code.

Locust runs in a child process because importing it monkey-patches the process with gevent.
That child is the one place argv is built, and the only environment the keys are written to:
the plan names the variables, the child's environment holds their values, and ``os.environ``
of this process is never touched.

Exit codes: 0 the run met every objective, 1 it did not (or did not end within its budget),
4 the target's rate limit cut a latency run short, 5 the load generator saturated (its latency
unjudged: ``gateprobe.commands.load.selfcheck``); a refused run raises ``UsageError`` or
``ConfigError`` (exit 2).

Locust runs in its own process group, its master on a free port when it forks local workers
(``--processes auto``), and every Locust process ends with the one that started it.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from gateprobe.commands.load import metricsout
from gateprobe.commands.load.plan import (
    ARRIVALS,
    DEFAULT_MAX_RPS,
    MAX_DURATION_S,
    MAX_REQUESTS,
    MAX_RPS,
    OPT_IN_KINDS,
    PARENT_ENV,
    PLAN_ENV,
    STREAM_ENDPOINTS,
    TELLABLE_SHARE,
    LoadPlan,
)
from gateprobe.commands.load.results import (
    SAMPLES_FILE,
    VERDICT_FILE,
    LiveSamples,
    findings_of,
    summary_line,
)
from gateprobe.commands.load.scenarios import scenario, show, taking, windowed
from gateprobe.commands.load.slo import DEFAULT_SLO_FILE, load_slo, validate
from gateprobe.commands.load.soak import complete_windows
from gateprobe.commands.load.stages import Stage, peak, total_s
from gateprobe.commands.load.workloads import Workload
from gateprobe.core.console import Console
from gateprobe.core.errors import INCONCLUSIVE_EXIT, SATURATED_EXIT, ConfigError, UsageError
from gateprobe.core.findings import Finding
from gateprobe.core.loadresult import Generator, ScenarioResult, result_of
from gateprobe.core.redact import Redactor, redact_tree
from gateprobe.core.targets import Target, key_from_env
from gateprobe.engine import dryrun
from gateprobe.engine.report import loadpage, new_run_dir
from gateprobe.engine.tasks import polling_for

_PACKAGED = Path(__file__).resolve().parents[2] / "_load"
_SOURCE = Path(__file__).resolve().parents[4] / "load"
STOP_TIMEOUT_S = 5
RUN_TIME_MARGIN_S = 3
"""Locust's own ``--run-time`` is a backstop this much after the duration: the Locust side
ends the run at the duration itself, waiting for every worker's last samples."""


def load_dir() -> Path:
    """The scenarios: packaged inside a wheel, ``load/`` in a checkout."""
    return _PACKAGED if _PACKAGED.exists() else _SOURCE


@dataclass(frozen=True, slots=True)
class LoadOptions:
    """How to run one load scenario (the target is separate: ``gateprobe.core.targets.Target``)."""

    scenario: str
    """``rate-limits``, ``latency`` or ``tasks``."""
    users: int = 4
    """Latency: concurrent users (rate-limits runs one user per tier)."""
    spawn_rate: float | None = None
    """Users started per second (None: all at once)."""
    duration_s: float | None = None
    """Also the run's cap; None: latency 30 s, rate-limits 3 windows + 15 s."""
    arrival: str = "closed"
    rate: float = 0.0
    """Arrivals per second over all users, for ``constant`` and ``poisson`` arrivals."""
    weights: Mapping[str, float] = field(default_factory=dict)
    """Latency: endpoint (chat, messages, complete) -> weight; empty: 1 each."""
    max_tokens: int = 64
    max_requests: int | None = None
    """The request cap; None: 10,000, and for a soak the hard ceiling (``MAX_REQUESTS``): its
    hours are bounded by its duration and its rate cap."""
    max_rps: float | None = None
    """The rate cap; None: 200/s, and for rate-limits what sends every burst within
    ``plan.BURST_SHARE`` of the window (at most ``MAX_RPS``)."""
    slo: Path | Mapping[str, float] | None = None
    """An SLO file, inline thresholds, or None for ``load/slo.yaml``."""
    web: bool = False
    """Serve Locust's web UI on 127.0.0.1 too; the run starts and ends by itself."""
    web_wait: bool = False
    """With ``web``: wait for START in the UI (the duration counts from then)."""
    web_port: int = 8089
    processes: int | str | None = None
    """Local load processes: a number, ``auto`` (one per core, at most one per user), or
    None: ``auto`` for latency and tasks, one process for rate-limits (one user per tier)."""
    master: bool = False
    expect_workers: int = 1
    worker: bool = False
    master_host: str = "127.0.0.1"
    master_port: int | None = None
    """The master's port: a master without one takes a free port and prints it; a worker
    must be given its master's."""
    report_dir: Path | None = None
    """Write here instead of ``reports/<run>/``."""
    poll_interval_s: float | None = None
    """Tasks: the wait between two queries of a task (None: ``tasks.polling_for`` the target,
    fast on loopback, the seeds' clients' 5 s elsewhere)."""
    task_deadline_s: float | None = None
    """Tasks: creation to SUCCESS or FAILURE at most (None: ``tasks.polling_for``)."""
    lag_bound_ms: float | None = None
    """The generator's lag p99 above which the run is saturated (None: 2 ms, or 10% of the
    smallest latency objective if that is less; ``gateprobe.commands.load.selfcheck``)."""
    locustfile: Path | None = None
    """A locustfile of the user's own, in place of the scenario's (latency, tasks): its users
    are ``gateprobe.load.StreamingUser`` or ``TaskUser`` (the public load API)."""
    workload: Workload = field(default_factory=Workload)
    """Latency: what each request sends (``gateprobe.commands.load.workloads``): length
    distributions, a dataset, multi-turn sessions, a shared prefix."""
    stages: tuple[Stage, ...] = ()
    """Latency: ramps and stages (``--stages 30s:10,60s:50,30s:0``): closed-loop users, or
    with a constant or Poisson arrival the rate; they set the duration (``duration_s``, if
    given too, cuts them short)."""
    soak_window_s: float | None = None
    """Latency, soak: the windows the samples are cut into (soak: its drift is judged over
    them; None: 5 minutes for a soak, 10 s for what a latency run streams)."""
    metrics_url: str | None = None
    """Soak: the target's metrics URL (Prometheus text), in place of its entry's."""
    metrics_port: int | None = None
    """Latency, soak: serve the run's own metrics (Prometheus text) on this port while it
    runs (0: a free one, printed)."""
    metrics_host: str = "127.0.0.1"
    metrics_push: str | None = None
    """Latency, soak: a Prometheus Pushgateway the run's metrics are pushed to, each window."""
    csv: bool = False
    """Also write ``samples.csv`` (``windows.csv`` is written with every windowed run)."""

    def check(self) -> LoadOptions:
        """Itself, every value usable (``UsageError`` naming the flag otherwise)."""
        scenario(self.scenario)
        if self.arrival not in ARRIVALS:
            raise UsageError(f"--arrival must be one of {', '.join(ARRIVALS)}")
        if isinstance(self.processes, str) and self.processes != AUTO:
            raise UsageError(f"--processes must be a number or {AUTO}")
        for flag, value in (("--users", self.users), ("--max-tokens", self.max_tokens),
                            ("--max-requests", self.max_requests),
                            ("--processes", self.processes if isinstance(self.processes, int)
                             else None),
                            ("--expect-workers", self.expect_workers)):
            if value is not None and value < 1:
                raise UsageError(f"{flag} must be at least 1")
        if self.max_rps is not None and not self.max_rps > 0:
            raise UsageError("--max-rps must be > 0")
        if self.lag_bound_ms is not None and not (math.isfinite(self.lag_bound_ms)
                                                  and self.lag_bound_ms > 0):
            raise UsageError("--lag-bound-ms must be > 0")
        longest = scenario(self.scenario).max_duration_s
        if self.duration_s is not None and not 0 < self.duration_s <= longest:
            raise UsageError(f"--duration must be within 0..{longest:g} s")
        if (self.max_requests or 0) > MAX_REQUESTS:
            raise UsageError(f"--max-requests is capped at {MAX_REQUESTS}")
        if (self.max_rps or 0) > MAX_RPS:
            raise UsageError(f"--max-rps is capped at {MAX_RPS:g}")
        self._check_stages()
        if self.arrival != "closed" and not self.stages:
            if not self.rate > 0:
                raise UsageError(f"--arrival {self.arrival} needs --rate > 0")
            cap = self.max_rps or DEFAULT_MAX_RPS
            if self.rate > cap:
                raise UsageError(f"--rate {self.rate:g} is above --max-rps {cap:g}")
        if self.web_wait and not self.web:
            raise UsageError("--web-wait needs --web")
        if self.master and self.worker:
            raise UsageError("give --master or --worker, not both")
        if self.worker and self.master_port is None:
            raise UsageError("--worker needs --master-port (the port its master printed)")
        if self.processes and (self.master or self.worker):
            raise UsageError("--processes runs local workers: not with --master or --worker")
        _weights(self.weights)
        self._check_workload()
        self._check_tasks()
        self._check_locustfile()
        self._check_windows()
        return self

    def _check_workload(self) -> None:
        if not self.workload.active:
            return
        if "workload" not in scenario(self.scenario).takes:
            raise UsageError(f"workload flags are for the {taking('workload')}, not "
                             f"{self.scenario}")
        self.workload.check()
        if self.workload.multi_turn and self.arrival != "closed":
            raise UsageError("multi-turn sessions (--turns, --dataset) need closed-loop users: "
                             "each waits for its answer to send the next turn")

    def _check_stages(self) -> None:
        if not self.stages:
            return
        if "stages" not in scenario(self.scenario).takes:
            raise UsageError(f"--stages is for the {taking('stages')}, not {self.scenario}")
        if self.locustfile is not None:
            raise UsageError("--stages drives the latency scenario's own users: not with "
                             "--locustfile")
        if total_s(self.stages) > MAX_DURATION_S and self.duration_s is None:
            raise UsageError(f"--stages last {total_s(self.stages):g} s: above "
                             f"{MAX_DURATION_S:g} s")
        if self.arrival == "closed":
            if peak(self.stages) < 1:
                raise UsageError("--stages: no stage has a user (a target of at least 1)")
            return
        if self.rate:
            raise UsageError("--stages sets the arrival rate: not with --rate")
        cap = self.max_rps or DEFAULT_MAX_RPS
        if not 0 < peak(self.stages) <= cap:
            raise UsageError(f"--stages: the arrival rate must reach above 0 and stay within "
                             f"--max-rps {cap:g}")

    def _check_windows(self) -> None:
        """The soak's windows and the run's metrics out: each for the scenarios it serves."""
        spec = scenario(self.scenario)
        for flag, given in (("--windows", self.soak_window_s is not None),
                            ("--metrics-port", self.metrics_port is not None),
                            ("--metrics-push", self.metrics_push is not None),
                            ("--csv", self.csv)):
            if given and not spec.windowed:
                raise UsageError(f"{flag} is for the {windowed()}")
        if self.metrics_url is not None and "metrics_url" not in spec.takes:
            raise UsageError(f"--metrics-url is for the {taking('metrics_url')}")
        for flag, url in (("--metrics-url", self.metrics_url),
                          ("--metrics-push", self.metrics_push)):
            if url is not None and not re.match(r"https?://[^/]+", url):
                raise UsageError(f"{flag} {url[:60]!r}: not an http(s) URL")
        if self.metrics_port is not None and not 0 <= self.metrics_port <= 65535:
            raise UsageError("--metrics-port must be within 0..65535")
        if self.soak_window_s is not None and not (math.isfinite(self.soak_window_s)
                                                   and self.soak_window_s > 0):
            raise UsageError("--windows must be > 0")
        if spec.min_windows and spec.window_s is not None:
            duration = self.duration_s or spec.duration_s or MAX_DURATION_S
            window = self.soak_window_s or spec.window_s
            if complete_windows(duration, window) < spec.min_windows:
                raise UsageError(f"--windows {window:g} s cuts --duration {duration:g} s into "
                                 f"{complete_windows(duration, window)} windows: a trend needs "
                                 f"at least {spec.min_windows}")

    def _check_locustfile(self) -> None:
        if self.locustfile is None:
            return
        if scenario(self.scenario).tier_keys:
            raise UsageError(f"--locustfile is for latency and tasks, not {self.scenario}")
        if self.locustfile.suffix != ".py" or not self.locustfile.is_file():
            raise UsageError(f"--locustfile {self.locustfile}: no such Python file")

    def _check_tasks(self) -> None:
        for flag, value in (("--poll-interval", self.poll_interval_s),
                            ("--task-deadline", self.task_deadline_s)):
            if value is not None and not (math.isfinite(value) and value > 0):
                raise UsageError(f"{flag} must be > 0")
        if "polling" not in scenario(self.scenario).takes:
            if self.poll_interval_s is not None or self.task_deadline_s is not None:
                raise UsageError("--poll-interval and --task-deadline are for the tasks "
                                 "scenario")
            return
        if self.weights:
            raise UsageError("--weight is for the latency scenario: tasks creates imagine tasks")
        if self.arrival != "closed":
            raise UsageError("tasks runs closed-loop users: each polls its task to its end")


@dataclass(slots=True)
class LoadResult:
    """What one load run found."""

    scenario: str
    exit_code: int
    out_dir: Path
    verdict: dict[str, Any] | None
    """``verdict.json`` as the Locust side wrote it; None when the run ended without one (and
    for a ``worker``, whose master judges the run). Read it through ``result``."""
    findings: list[Finding]
    """One per failed tier check or missed SLO."""
    reason: str
    """The run in one line: each tier's accepted/limit or the latency headline, then the
    reasons it failed."""

    @property
    def ok(self) -> bool:
        """Whether the run met every objective."""
        return self.exit_code == 0

    @property
    def result(self) -> ScenarioResult | None:
        """The typed result (``LatencyResult``, ``RateLimitResult``, ``TasksResult``) of the
        verdict; None without one."""
        return result_of(self.verdict)


PACE_SHARE = 0.8
"""A latency run with a declared limit sends at most this share of it: a gateway's window may
start earlier than ours, and its limit is not ours to test here (the rate-limit scenario is)."""


def _weights(given: Mapping[str, float], target: Target | None = None) -> dict[str, float]:
    """Every endpoint's weight: 1 unless given; each known, not negative, not all 0. An
    endpoint the target does not serve (the Anthropic routes under ``openai``) weighs 0, and
    asking for it is refused: it is never loaded."""
    unserved = {k for k, path in STREAM_ENDPOINTS.items()
                if target is not None and not target.serves(path)}
    asked = sorted(k for k, w in given.items() if k in unserved and w > 0)
    if asked:
        raise UsageError(f"--weight {asked[0]}: the target does not serve "
                         f"{STREAM_ENDPOINTS[asked[0]]}")
    given = {**{k: 0.0 for k in unserved}, **given}
    unknown = set(given) - set(STREAM_ENDPOINTS)
    if unknown:
        raise UsageError(f"--weight: unknown endpoint {min(unknown)!r} "
                         f"(one of {', '.join(STREAM_ENDPOINTS)})")
    for name, value in given.items():
        if not (math.isfinite(value) and value >= 0):
            raise UsageError(f"--weight {name}={value:g}: must be positive")
    weights = {k: float(given.get(k, 0.0 if k in OPT_IN_KINDS else 1.0))
               for k in STREAM_ENDPOINTS}
    if not any(weights.values()):
        raise UsageError("--weight: every weight is 0")
    return weights


def _thresholds(slo: Path | Mapping[str, float] | None, embedded: bool = False,
                ) -> dict[str, float]:
    """The run's objectives: the shipped file's, a file's or inline ones (with their
    ``embedded`` section when the target is the embedded reference gateway)."""
    if slo is None:
        return load_slo(load_dir() / DEFAULT_SLO_FILE, embedded)
    if isinstance(slo, Path):
        return load_slo(slo, embedded)
    return validate(dict(slo), "SLO thresholds", embedded)


def _variable(tier: str) -> str:
    return "GATEPROBE_" + re.sub(r"\W", "_", tier.upper()) + "_KEY"


def plan_load(target: Target, options: LoadOptions, *, sending: bool = True) -> LoadPlan:
    """The plan of a run of ``options`` against ``target``, or the reason it may not run
    (``ConfigError``, ``UsageError``). ``sending=False`` (a dry run) skips the checks of the
    rate-limit burst against the caps: a dry run shows the plan whatever its caps.

    It needs no key: a target resolved without reading any (a dry run's) plans the same, so
    a command can refuse a run before it reads a key or starts a gateway."""
    options.check()
    if target.load_refusal:
        raise ConfigError(f"load against {target.base_url} refused: {target.load_refusal}")
    spec = scenario(options.scenario)
    slo = _thresholds(options.slo, target.embedded)
    tier_envs = {**{t: _variable(t) for t in target.tier_keys}, **target.tier_key_envs}
    limits = dict(target.limits)
    if spec.tier_keys:
        if not target.serves(STREAM_ENDPOINTS["chat"]):
            raise ConfigError(f"rate-limits sends to {STREAM_ENDPOINTS['chat']}, which the "
                              "target does not serve")
        if not tier_envs:
            raise UsageError("rate-limits needs tier keys: --tier-key TIER=VAR (or tier_keys "
                             "in the target)")
        for tier in tier_envs:
            if tier not in limits:
                raise UsageError(f"tier {tier!r} has a key but no limit: --limit {tier}=N")
        limits = {t: limits[t] for t in tier_envs}
        duration = options.duration_s or 3 * target.window_s + 15
        users = len(limits)
    else:
        # Stages set the duration; --duration, if given too, is the cap that cuts them short.
        duration = min(options.duration_s or math.inf, total_s(options.stages) or math.inf)
        duration = duration if math.isfinite(duration) else spec.duration_s or 30.0
        users = max(1, math.ceil(peak(options.stages))) \
            if options.stages and options.arrival == "closed" else options.users
    if not spec.tier_keys and spec.refusal(target):  # (a tier-keys run: just said, above)
        raise ConfigError(spec.refusal(target))
    interval, deadline = _polling(target, options)
    declared = limits.get(target.api_key_tier or "") if spec.windowed else None
    max_rps = options.max_rps or DEFAULT_MAX_RPS
    plan = LoadPlan(
        scenario=options.scenario, base_url=target.base_url, profile=target.profile,
        out_dir="", api_key_env=target.api_key_env or "GATEPROBE_API_KEY", tier_keys=tier_envs,
        limits=limits, window_s=target.window_s, models=dict(target.models),
        weights=_weights(options.weights, target) if "weights" in spec.takes else {},
        arrival=options.arrival, poll_interval_s=interval, task_deadline_s=deadline,
        rate=peak(options.stages) if options.stages and options.arrival != "closed"
        else options.rate, stages=[list(stage) for stage in options.stages],
        users=users, duration_s=duration,
        max_tokens=min(options.max_tokens, target.max_tokens or options.max_tokens),
        max_requests=options.max_requests or spec.max_requests,
        max_rps=min(max_rps, PACE_SHARE * declared / target.window_s)
        if declared else max_rps, paced=bool(declared),
        algorithm=target.rate_algorithm, envelopes=sorted(target.envelopes),
        rate_headers=target.rate_headers,
        processes=local_processes(options, users) or
        (options.expect_workers if options.master else 1),
        timeouts=target.timeouts, slo=slo, lag_bound_ms=_lag_bound(options),
        workload=_workload(options.workload, target),
        soak_window_s=_window_s(options),
        metrics_url=(options.metrics_url or target.metrics_url)
        if "metrics_url" in spec.takes else None)
    if spec.tier_keys and options.max_rps is None:  # the burst goes out at its own rate
        plan = replace(plan, max_rps=min(MAX_RPS, max(DEFAULT_MAX_RPS, plan.burst_rate())))
    elif not spec.tier_keys:
        # The rate cap over the duration is a bound on requests too: enforced as the request
        # cap, it is the number the dry run promises, not a forecast a run can overshoot.
        plan = replace(plan, max_requests=min(plan.max_requests,
                                              math.ceil(plan.max_rps * plan.duration_s)))
    if sending:
        _check_burst_rate(plan)
    return plan


def _workload(workload: Workload, target: Target) -> dict[str, Any]:
    """The plan's workload: {} for none; asked output lengths within the target's cap."""
    if not workload.active:
        return {}
    _, output = workload.lengths()
    if output is not None and target.max_tokens and output.high > target.max_tokens:
        raise UsageError(f"--output-tokens {workload.output_tokens}: up to {output.high} tokens, "
                         f"above the target's max_tokens {target.max_tokens} (add max=...)")
    if workload.dataset is not None:  # every load process reads it: from anywhere
        workload = replace(workload, dataset=str(Path(workload.dataset).resolve()))
    return workload.as_json()


AUTO = "auto"


def _window_s(options: LoadOptions) -> float | None:
    """The windows of a run: as asked, else a soak's 5 minutes or a latency run's 10 s."""
    return options.soak_window_s or scenario(options.scenario).window_s \
        if scenario(options.scenario).windowed else None


def local_processes(options: LoadOptions, users: int) -> int | None:
    """How many local Locust worker processes a run forks (None: it runs in one process):
    ``auto`` is one per core, never more than users (an idle worker measures nothing), and
    none at all on one core; it is the default of latency and tasks."""
    if options.master or options.worker:
        return None
    asked = options.processes
    if asked is None:
        asked = scenario(options.scenario).processes
    if asked == AUTO:
        n = min(len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity")
                else os.cpu_count() or 1, users)
        return n if n > 1 else None
    return asked if isinstance(asked, int) and asked > 1 else None  # 1: this one process


LAG_BOUND_ENV = "GATEPROBE_LAG_BOUND_MS"
"""The default of ``--lag-bound-ms`` where it is not given: for a machine known to be noisy (a
shared CI runner, the project's own test suite), set once rather than on every command."""


def _lag_bound(options: LoadOptions) -> float | None:
    """``--lag-bound-ms``, else ``GATEPROBE_LAG_BOUND_MS``, else None (the default bound)."""
    if options.lag_bound_ms is not None:
        return options.lag_bound_ms
    text = os.environ.get(LAG_BOUND_ENV)
    if not text:
        return None
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and value > 0):
        raise ConfigError(f"{LAG_BOUND_ENV}={text[:20]!r}: must be a number of ms > 0")
    return value


def _polling(target: Target, options: LoadOptions) -> tuple[float, float]:
    """The tasks' poll interval and deadline: as asked, else as the suite polls the target."""
    default = polling_for(target)
    return (options.poll_interval_s or default.interval_s,
            options.task_deadline_s or default.deadline_s)


def dry_run(target: Target, options: LoadOptions, console: Console) -> int:
    """Print what a run would send (nothing is sent, no key is needed); 0."""
    plan = plan_load(target, options, sending=False)
    if target.embedded:
        plan = replace(plan, base_url="(the embedded reference gateway)",
                       metrics_url="(its own metrics)" if plan.metrics_url else None)
    return dryrun.load(plan, scenario(plan.scenario).describe, console,
                       keys_from_env=not target.embedded)


def run_load(target: Target, options: LoadOptions, console: Console | None = None
             ) -> LoadResult:
    """Run the scenario against ``target`` (reachable: ``gateprobe.engine.embedded.open_target``
    checked it), print its tables and verdict; the result."""
    console = console or Console()
    plan = plan_load(target, options)
    if scenario(plan.scenario).tier_keys:
        for tier, variable in plan.tier_keys.items():
            if not target.tier_keys.get(tier):
                raise ConfigError(f"environment variable {variable} is not set: it must hold "
                                  f"the key of tier {tier}")
    elif not target.api_key:
        key_from_env(plan.api_key_env)
    out = new_run_dir(f"load-{plan.scenario}", explicit=options.report_dir)
    plan = replace(plan, out_dir=str(out))
    (out / VERDICT_FILE).unlink(missing_ok=True)  # a reused folder's old verdict is not ours
    plan.save(out / "plan.json")
    console.line(f"gateprobe load {plan.scenario}: {plan.base_url}, report in {out}")
    try:
        code = _locust(plan, options, _child_env(target, plan), console)
    finally:
        redact_tree(out, Redactor(target.secrets))
    if options.worker:
        return LoadResult(plan.scenario, code, out, None, [],
                          f"worker of {options.master_host}:{options.master_port}: "
                          f"Locust exit {code}")
    return _report(plan, code, console)


def _child_env(target: Target, plan: LoadPlan) -> dict[str, str]:
    """The Locust process's environment: ours, the plan's path, and the keys under the names
    the plan gives them."""
    keys = {plan.api_key_env: target.api_key} if target.api_key else {}
    keys.update({plan.tier_keys[t]: key for t, key in target.tier_keys.items() if key})
    return {**os.environ, **keys, PLAN_ENV: str(plan.out / "plan.json"),
            PARENT_ENV: str(os.getpid()), "PYTHONUNBUFFERED": "1"}


def _check_burst_rate(plan: LoadPlan) -> None:
    if not scenario(plan.scenario).tier_keys:
        return
    needed = plan.burst_rate(TELLABLE_SHARE)
    if needed > plan.max_rps:
        raise UsageError(f"the rate-limit burst needs {needed:.0f} requests/s to go out within "
                         f"{TELLABLE_SHARE:.0%} of the {plan.window_s:g} s window (what a "
                         f"limiter may refill meanwhile must stay a small share of the limit): "
                         f"raise --max-rps (now {plan.max_rps:g})")
    duration_needed = 3 * plan.window_s + 5
    if plan.duration_s < duration_needed:
        raise UsageError(f"--duration {plan.duration_s:g} s is too short for a "
                         f"{plan.window_s:g} s window (needs {duration_needed:g} s)")
    total = sum(plan.burst_size(t) + 1 for t in plan.limits)
    if total > plan.max_requests:
        raise UsageError(f"the rate-limit run sends {total} requests: above --max-requests "
                         f"{plan.max_requests}")


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nobody listens on now: a master's, so that two runs never meet on Locust's
    fixed 5557 (one master, both runs' workers, and orphans left behind)."""
    with socket.socket() as probe:
        probe.bind((host, 0))
        port: int = probe.getsockname()[1]
        return port


def _argv(plan: LoadPlan, options: LoadOptions, port: int | None = None) -> list[str]:
    """The Locust command line of a run (its report folder is ``plan.out``); ``port`` is the
    master's, for local processes or remote workers."""
    out = plan.out
    locustfile = options.locustfile.resolve() if options.locustfile else \
        load_dir() / scenario(plan.scenario).locustfile
    argv = [sys.executable, "-m", "locust", "-f", str(locustfile),
            "--host", plan.base_url, "--stop-timeout", str(STOP_TIMEOUT_S),
            "--loglevel", "INFO", "--logfile", str(out / "locust.log"), "--config", os.devnull]
    if options.worker:
        return [*argv, "--worker", "--master-host", options.master_host,
                "--master-port", str(options.master_port)]
    argv += ["--users", str(plan.users), "--spawn-rate", str(options.spawn_rate or plan.users),
             "--csv", str(out / "locust"), "--html", str(out / "locust.html")]
    if options.web:
        argv += ["--web-host", "127.0.0.1", "--web-port", str(options.web_port)]
        if not options.web_wait:  # as headless: started now, quit at the duration, UI too
            argv += ["--autostart", "--autoquit", "0",
                     "--run-time", f"{math.ceil(plan.duration_s + RUN_TIME_MARGIN_S)}s"]
    else:
        argv += ["--headless", "--run-time",
                 f"{math.ceil(plan.duration_s + RUN_TIME_MARGIN_S)}s", "--only-summary"]
    processes = local_processes(options, plan.users)
    if processes:  # the forked workers find their master on loopback, on a port of its own
        argv += ["--processes", str(processes), "--master-bind-host", "127.0.0.1",
                 "--master-bind-port", str(port), "--master-host", "127.0.0.1",
                 "--master-port", str(port)]
    if options.master:
        argv += ["--master", "--master-bind-port", str(port)]
        if not options.web_wait:  # it starts by itself: once its workers are there
            argv += ["--expect-workers", str(options.expect_workers)]
    return argv


def _locust(plan: LoadPlan, options: LoadOptions, env: Mapping[str, str],
            console: Console) -> int:
    """Run Locust to its end or its budget; its exit code (-1: stopped at the budget)."""
    budget = plan.duration_s + STOP_TIMEOUT_S + 60
    if options.master or options.worker or options.web_wait:
        budget += 600  # waiting for workers (or a human) to start it
    if options.web:
        console.line(f"Locust web UI: http://127.0.0.1:{options.web_port}/ ("
                     + ("press START there; " if options.web_wait else "the swarm starts now; ")
                     + f"the run ends {plan.duration_s:g} s after it starts)")
    port = None
    if options.master or local_processes(options, plan.users):
        port = options.master_port or free_port()
    if options.master:
        console.line(f"master on port {port}: start each worker with 'gateprobe load "
                     f"{plan.scenario} --worker --master-host <this host> --master-port "
                     f"{port}' (and the same target flags)")
    output = (plan.out / "locust.out").open("wb")
    try:
        # Its own process group: what it forks is ended with it, whatever ends this run.
        process = subprocess.Popen(_argv(plan, options, port), env=dict(env), stdout=output,
                                   stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                   start_new_session=True)
        try:
            with metricsout.watching(
                    plan, console, port=options.metrics_port, host=options.metrics_host,
                    push=options.metrics_push, samples_csv=options.csv) \
                    if not options.worker else contextlib.nullcontext(
                        LiveSamples(plan.out / SAMPLES_FILE)) as live:
                # Waiting for START, the time to go is not known: show the time so far only.
                return _watch(process, plan, budget, console,
                              None if options.web_wait else plan.duration_s, live)
        finally:
            end_group(process)
    finally:
        output.close()


GRACE_S = 10.0
"""How long Locust's processes get to end by themselves (writing the verdict) once told to."""


def end_group(process: subprocess.Popen[bytes]) -> None:
    """Leave nothing of a Locust run behind: its master and every worker it forked (its own
    process group) are told to stop, then killed after ``GRACE_S``. A no-op for a run that
    ended by itself with its workers."""
    if process.poll() is None:
        _signal_group(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=GRACE_S)
        except subprocess.TimeoutExpired:
            _signal_group(process.pid, signal.SIGKILL)
            process.wait()
    _signal_group(process.pid, signal.SIGKILL)  # a worker outliving its master


def _signal_group(pgid: int, signum: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signum)


WATCH_EVERY_S = 5.0
"""How often a load run's live line is brought up to date (plain output: at most this often)."""


def _watch(process: subprocess.Popen[bytes], plan: LoadPlan, budget: float,
           console: Console, duration_s: float | None, live: LiveSamples) -> int:
    """Wait for Locust, showing requests, errors and TTFT p50 so far (``live``, which also
    writes a windowed run's windows: ``metricsout``); its exit code (-1 when it had to be
    stopped at ``budget``)."""
    t0 = time.monotonic()
    with console.progress("s", every_s=WATCH_EVERY_S) as progress:
        while True:
            try:
                return process.wait(timeout=1.0)
            except subprocess.TimeoutExpired:
                elapsed = time.monotonic() - t0
                if elapsed >= budget:
                    break
                live.poll()
                progress.update(plan.scenario, round(min(elapsed, duration_s or elapsed)),
                                duration_s, live.text())
    end_group(process)
    console.error(f"the load run did not end within its budget of {budget:g} s: stopped")
    return -1


def _report(plan: LoadPlan, code: int, console: Console) -> LoadResult:
    result = _judged(plan, code, console)
    loadpage.write(plan.out)  # in the folder the run's first line named
    return result


def _judged(plan: LoadPlan, code: int, console: Console) -> LoadResult:
    path = plan.out / VERDICT_FILE
    if not path.exists():
        tail = _tail(plan.out / "locust.out") or _tail(plan.out / "locust.log")
        console.error(f"the load run ended without a verdict (Locust exit {code}); see "
                      f"{plan.out}" + (f": {tail}" if tail else ""))
        return LoadResult(plan.scenario, 1, plan.out, None, [],
                          f"the load run ended without a verdict (Locust exit {code})")
    verdict: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    typed = show(verdict, console)
    if typed is not None:
        _print_generator(typed.generator, console, scenario(plan.scenario).timed,
                         bool(verdict.get("lagged")))
    result = LoadResult(plan.scenario, 0, plan.out, verdict, findings_of(verdict),
                        summary_line(verdict))
    notes = (verdict.get("rate_limits") or {}).get("notes") or []
    if verdict.get("lagged"):
        notes = [*notes, verdict["lagged"]["why"]]
    if verdict["ok"] and code != -1:
        console.line(f"PASS: every objective met ({verdict['requests']} "
                     f"{scenario(plan.scenario).unit})"
                     + "".join(f"; information: {note}" for note in notes))
        return result
    if verdict.get("refused_key"):  # a wrong secret: one line, the user's mistake
        result.exit_code = ConfigError.exit_code
        console.error(verdict["refused_key"]["why"])
        return result
    if typed is not None and typed.limited_by_target:
        result.exit_code = INCONCLUSIVE_EXIT
        console.line(f"NO VERDICT: {typed.limited_by_target}")
        return result
    if typed is not None and typed.saturated and not verdict.get("breaches"):
        result.exit_code = SATURATED_EXIT
        console.line(f"SATURATED (no verdict): {typed.saturated}")
        return result
    if verdict.get("inconclusive") and code != -1:
        result.exit_code = INCONCLUSIVE_EXIT
        console.line(f"INCONCLUSIVE: {verdict['inconclusive']['why']}")
        return result
    result.exit_code = 1
    reasons = list(verdict["reasons"])
    if code == -1 and not reasons:  # judged fine, but the run had to be stopped
        result.reason += "; stopped at its budget"
    console.line(f"FAIL: {len(reasons)} objective{'s' if len(reasons) != 1 else ''} missed"
                 + (f": {'; '.join(reasons)}" if sum(map(len, reasons)) < 200 else ""))
    if sum(map(len, reasons)) >= 200:  # too long for one line: one line each
        for reason in reasons:
            console.line(f"  - {reason}")
    return result


def _print_generator(generator: Generator, console: Console, timed: bool,
                     lagged: bool = False) -> None:
    """One line on the generator's own lag and CPU (``gateprobe.commands.load.selfcheck``) when
    it was over its bound (``report.html`` and ``verdict.json`` always have it); a scenario that is
    not ``timed`` (rate limits count answers), or a run whose every latency objective is clear
    of the lag (``lagged``), shows it for information only."""
    if not generator.lag_p99_ms or not generator.saturated:
        return
    plural = "es" if generator.processes != 1 else ""
    console.line("generator lag p99: " + ", ".join(
        f"{kind} {'-' if p99 is None else f'{p99:.2f}'} ms"
        for kind, p99 in generator.lag_p99_ms.items())
        + f" (bound {generator.bound_ms or 0:g} ms); busiest process at "
        + f"{generator.busiest_cpu_share or 0:.0%} of a core; {generator.processes} "
        + f"process{plural}" + (
            " (over the bound; not judged: answers are counted)" if not timed else
            " (over the bound; every objective is clear of it, see below)" if lagged else
            ": SATURATED"))


def _tail(path: Path) -> str:
    try:
        lines = path.read_text(encoding="utf-8", errors="replace").strip().splitlines()
    except OSError:
        return ""
    return lines[-1][-300:] if lines else ""
