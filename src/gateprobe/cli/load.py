"""``gateprobe load``: a Locust scenario (rate-limits, latency, tasks, a sweep of latency
runs to the knee, or soak).

Flags in, ``LoadOptions`` and a ``Target`` to ``gateprobe.commands.load.runner``, an exit code out:
0 the run met every objective, 1 it did not, 2 usage or configuration error, 3 target
unreachable, 4 cut short by the target's rate limit, 5 the load generator saturated (a
``--worker`` run returns Locust's own exit code).
"""

from __future__ import annotations

import argparse
from dataclasses import replace
from pathlib import Path
from typing import Any

from gateprobe.cli._flags import add_target_flags, choice_from, pairs, seconds
from gateprobe.cli._help import Help, command_parser
from gateprobe.commands.load.plan import ARRIVALS, MAX_REQUESTS, STREAM_ENDPOINTS
from gateprobe.commands.load.runner import LoadOptions, dry_run, plan_load, run_load
from gateprobe.commands.load.scenarios import SCENARIOS
from gateprobe.commands.load.stages import parse_stages
from gateprobe.commands.load.sweep import (
    DEFAULT_LEVEL_S,
    DEFAULT_LEVELS,
    DEFAULT_MAX_USERS,
    DEFAULT_THRESHOLD,
    SweepOptions,
    concurrency_list,
    dry_run_sweep,
    run_sweep,
)
from gateprobe.commands.load.workloads import Workload, parse_duration, parse_prefixes
from gateprobe.core.console import Console
from gateprobe.core.errors import UsageError
from gateprobe.core.targets import TargetChoice
from gateprobe.engine.embedded import Embedded, open_target

EMBEDDED_WINDOW_S = 10.0
"""The embedded gateway's rate window unless ``--window-s`` says otherwise."""


HELP = Help(
    "run a Locust load scenario (rate-limits, latency, tasks or soak)",
    "Run a Locust scenario against a gateway: rate-limits (a burst per tier key, judged "
    "against the declared limits), latency (streams timed by TTFT, inter-token latency and "
    "e2e, judged against the SLO file) or tasks (Midjourney imagine tasks polled to their "
    "end: time to SUCCESS, failure rate and lifecycle findings, judged against the SLO file; "
    "only on a target declaring midjourney) or soak (latency over hours, cut into --windows: "
    "TTFT and error-rate drift per hour and the target's memory growth, judged against the "
    "SLO file). Headless by default; --web serves Locust's UI. "
    "A target that is not loopback needs allow_load: true in its entry.",
    ("load latency                                  # the embedded gateway, 30 s",
     "load latency --users 8 --duration 60 --slo load/slo.yaml",
     "load rate-limits --target staging             # needs the target's tier_keys",
     "load tasks --users 8 --poll-interval 2        # Midjourney time to SUCCESS",
     "load sweep --levels 8 --level-duration 20     # rates to the knee (goodput >= 95%)",
     "load sweep --concurrency 1,4,16               # closed-loop users at each",
     "load soak --target staging --duration 2h --windows 5m   # drift over two hours"),
    (0, 1, 2, 3, 4, 5, 130))
"""The command's help text."""


def add_parser(sub: Any) -> None:
    """The ``load`` command's flags."""
    load = command_parser(sub, "load", HELP)
    load.add_argument("scenario", choices=list(SCENARIOS), help="which scenario")
    add_target_flags(load, tiers=True)
    shape = load.add_argument_group("shape of the run")
    shape.add_argument("--users", type=int, default=4, help="latency, tasks: concurrent users (4)")
    shape.add_argument("--spawn-rate", type=float, help="users started per second (all at once)")
    shape.add_argument("--duration", type=seconds, metavar="TIME",
                       help="90, 90s, 5m, 2h; also the run's cap (latency 30 s; rate-limits 3 "
                            "windows+15 s; soak 2h)")
    shape.add_argument("--arrival", choices=ARRIVALS, default="closed",
                       help="closed-loop users, or a constant / Poisson arrival --rate")
    shape.add_argument("--rate", type=float, default=0.0, help="arrivals per second (all users)")
    shape.add_argument("--stages", metavar="D:N,...",
                       help="latency: ramps, k6-style (30s:10,60s:50,30s:0): to N users (or "
                            "with --arrival, N arrivals/s) over each duration; their sum is the "
                            "duration (--duration cuts them short)")
    shape.add_argument("--weight", action="append", default=[], metavar="ENDPOINT=W",
                       help="latency: chat, messages, complete weights (1 each); "
                            "speech (0 unless given: time to first audio byte)")
    shape.add_argument("--max-tokens", type=int, default=64, help="tokens asked per stream (64)")
    shape.add_argument("--max-requests", type=int,
                       help=f"request cap (10000; soak {MAX_REQUESTS})")
    shape.add_argument("--max-rps", type=float,
                       help="request rate cap (200; rate-limits: what sends the bursts within "
                            "2.5%% of the window, at most 2000)")
    shape.add_argument("--slo", metavar="FILE", help="SLO thresholds (default: load/slo.yaml)")
    shape.add_argument("--lag-bound-ms", type=float, metavar="MS",
                       help="the generator's own lag p99 above which the run is saturated and "
                            "its latency not judged (2, or 10%% of the smallest objective)")
    shape.add_argument("--poll-interval", type=float, metavar="S",
                       help="tasks: seconds between two queries of a task (loopback 0.02, "
                            "else 5)")
    shape.add_argument("--task-deadline", type=float, metavar="S",
                       help="tasks: a task's creation to SUCCESS/FAILURE at most (loopback 30, "
                            "else 300)")
    _add_workload_flags(load)
    _add_sweep_flags(load)
    over_time = load.add_argument_group("over time (latency, soak)")
    over_time.add_argument("--windows", type=seconds, metavar="TIME",
                           help="cut the run into windows this long: soak judges its drift "
                                "over them (5m), both stream them (latency 10s)")
    over_time.add_argument("--metrics-url", metavar="URL",
                           help="soak: the target's metrics (Prometheus text), scraped for "
                                "its memory and open connections (default: its entry's "
                                "metrics_url)")
    over_time.add_argument("--metrics-port", type=int, metavar="PORT",
                           help="serve the run's own metrics (Prometheus text) on this port "
                                "while it runs (0: a free one, printed)")
    over_time.add_argument("--metrics-host", default="127.0.0.1",
                           help="the address --metrics-port listens on (127.0.0.1)")
    over_time.add_argument("--metrics-push", metavar="URL",
                           help="push the run's metrics to this Prometheus Pushgateway at "
                                "each window's end")
    over_time.add_argument("--csv", action="store_true",
                           help="also write samples.csv (windows.csv is always written)")
    mode = load.add_argument_group("Locust")
    mode.add_argument("--locustfile", metavar="FILE",
                      help="latency, tasks: your own locustfile, its users gateprobe.load's "
                           "StreamingUser or TaskUser (see docs/howto/load-at-scale.md)")
    mode.add_argument("--web", action="store_true",
                      help="serve Locust's web UI on 127.0.0.1 too (its URL is printed); the "
                           "swarm starts now and ends at --duration")
    mode.add_argument("--web-wait", action="store_true",
                      help="with --web: wait for START in the UI; the run ends --duration after")
    mode.add_argument("--web-port", type=int, default=8089)
    mode.add_argument("--processes", type=_processes, metavar="N|auto",
                      help="local load processes: auto (latency, tasks: one per core) or N")
    mode.add_argument("--master", action="store_true", help="be the master of remote workers")
    mode.add_argument("--expect-workers", type=int, default=1, help="master: workers to wait for")
    mode.add_argument("--worker", action="store_true", help="be a worker of --master-host")
    mode.add_argument("--master-host", default="127.0.0.1")
    mode.add_argument("--master-port", type=int,
                      help="master: its port (a free one, printed); worker: the master's")
    load.add_argument("--dry-run", action="store_true",
                      help="print what would be sent, send nothing")
    load.add_argument("--report-dir", metavar="DIR", help="write here instead of reports/<run>/")


def _add_workload_flags(load: Any) -> None:
    """Latency: what each request sends (docs/howto/workloads.md)."""
    work = load.add_argument_group("workload (latency; see docs/howto/workloads.md)")
    work.add_argument("--prompt-tokens", metavar="DIST",
                      help="each new user message's length in tokens: fixed:N, "
                           "uniform:min=A,max=B, normal:mean=M,sd=S[,min=,max=], "
                           "lognormal:mean=M,sd=S[,min=,max=] (sd of the log)")
    work.add_argument("--output-tokens", metavar="DIST",
                      help="each request's max_tokens, drawn likewise (the only output "
                           "control the protocols offer: a model may stop sooner)")
    work.add_argument("--workload-seed", type=int, default=0, metavar="N",
                      help="seed of every draw: the same seed replays the same prompts (0)")
    work.add_argument("--dataset", metavar="FILE",
                      help="JSONL of prompts or messages (optional output_tokens), or "
                           "ShareGPT conversations (read as multi-turn)")
    work.add_argument("--turns", type=int, metavar="N",
                      help="turns per conversation, each sending the history with the "
                           "gateway's answers (1; a dataset's: its own)")
    work.add_argument("--think-time", metavar="DURATION", default="0",
                      help="a user's pause between two turns: 1s, 500ms (0)")
    work.add_argument("--shared-prefix-tokens", metavar="N[,N...]",
                      help="a system prompt of N tokens every user shares (several: one per "
                           "conversation, in turn): TTFT by prefix length")
    work.add_argument("--mix", metavar="KIND=W,...",
                      help="endpoint mix in one flag, e.g. chat=3,messages=1,complete=1,"
                           "speech=1 (as repeated --weight)")


def _workload(args: argparse.Namespace) -> Workload:
    """The workload the flags describe (checked by ``LoadOptions.check``)."""
    return Workload(
        prompt_tokens=args.prompt_tokens, output_tokens=args.output_tokens,
        seed=args.workload_seed, dataset=args.dataset, turns=args.turns,
        think_time_s=parse_duration(args.think_time, "--think-time"),
        shared_prefix_tokens=parse_prefixes(args.shared_prefix_tokens)
        if args.shared_prefix_tokens else ())
def _add_sweep_flags(load: argparse.ArgumentParser) -> None:
    """``gateprobe load sweep``'s own flags (``gateprobe.commands.load.sweep``)."""
    sweep = load.add_argument_group("sweep (gateprobe load sweep)")
    sweep.add_argument("--levels", type=int, default=DEFAULT_LEVELS, metavar="N",
                       help=f"arrival rates between the synchronous and the throughput levels "
                            f"({DEFAULT_LEVELS}; --arrival constant or poisson)")
    sweep.add_argument("--concurrency", metavar="N,N,...",
                       help="a concurrency sweep instead: closed-loop users at each (1,4,16,64)")
    sweep.add_argument("--level-duration", type=float, default=DEFAULT_LEVEL_S, metavar="S",
                       help=f"seconds per level, also its cap ({DEFAULT_LEVEL_S:g})")
    sweep.add_argument("--max-users", type=int, default=DEFAULT_MAX_USERS, metavar="N",
                       help=f"the throughput level's closed-loop users ({DEFAULT_MAX_USERS})")
    sweep.add_argument("--goodput-threshold", type=float, default=DEFAULT_THRESHOLD,
                       metavar="SHARE",
                       help="the goodput share of a sustained level: the knee is the highest "
                            f"({DEFAULT_THRESHOLD:g})")


def sweep_options_from(args: argparse.Namespace) -> SweepOptions:
    """The sweep's shape from its flags (checked)."""
    if args.duration is not None or args.stages is not None:
        raise UsageError("a sweep's levels last --level-duration each: not --duration or "
                         "--stages")
    if args.master or args.worker or args.web:
        raise UsageError("a sweep starts a run per level by itself: not with --master, "
                         "--worker or --web")
    return SweepOptions(
        levels=args.levels,
        concurrency=concurrency_list(args.concurrency) if args.concurrency else (),
        level_s=args.level_duration, max_users=args.max_users,
        threshold=args.goodput_threshold,
        arrival="constant" if args.arrival == "closed" else args.arrival).check()


def _processes(text: str) -> int | str:
    """``--processes``: ``auto`` or a number."""
    if text == "auto":
        return text
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number or auto") from None


def _weights(values: list[str], mix: str | None = None) -> dict[str, float]:
    out: dict[str, float] = {}
    given = pairs(values, "--weight")
    if mix is not None:  # the mix is whole: a kind it does not name is not sent
        named = pairs([m.strip() for m in mix.split(",") if m.strip()] or [mix], "--mix")
        given = {**{k: "0" for k in STREAM_ENDPOINTS}, **given, **named}
    for name, text in given.items():
        try:
            out[name] = float(text)
        except ValueError:
            raise UsageError(f"--weight {name}={text}: not a number") from None
    return out


def options_from(args: argparse.Namespace) -> LoadOptions:
    """The run's options from its flags (checked)."""
    return LoadOptions(
        scenario=args.scenario, users=args.users, spawn_rate=args.spawn_rate,
        duration_s=args.duration,
        # A sweep's --arrival is its rate levels' (``sweep_options_from``), each level's own.
        arrival="closed" if SCENARIOS[args.scenario].sweep else args.arrival, rate=args.rate,
        weights=_weights(args.weight, args.mix), max_tokens=args.max_tokens,
        max_requests=args.max_requests, max_rps=args.max_rps,
        slo=Path(args.slo) if args.slo else None, web=args.web, web_wait=args.web_wait,
        web_port=args.web_port,
        processes=args.processes, master=args.master, expect_workers=args.expect_workers,
        worker=args.worker, master_host=args.master_host, master_port=args.master_port,
        report_dir=Path(args.report_dir) if args.report_dir else None,
        poll_interval_s=args.poll_interval, task_deadline_s=args.task_deadline,
        lag_bound_ms=args.lag_bound_ms,
        locustfile=Path(args.locustfile) if args.locustfile else None,
        workload=_workload(args),
        stages=parse_stages(args.stages) if args.stages is not None else (),
        soak_window_s=args.windows, metrics_url=args.metrics_url,
        metrics_port=args.metrics_port, metrics_host=args.metrics_host,
        metrics_push=args.metrics_push, csv=args.csv).check()


def _choice(args: argparse.Namespace) -> TargetChoice:
    """The target the flags name; rate-limits sends only tier keys, so the API key is read only
    if it is set."""
    if args.window_s is not None and not args.window_s > 0:
        raise UsageError("--window-s must be > 0")
    return replace(choice_from(args), api_key_optional=SCENARIOS[args.scenario].tier_keys)


def command(args: argparse.Namespace, console: Console) -> int:
    """Run the scenario (or describe it, ``--dry-run``); its exit code."""
    options = options_from(args)
    choice = _choice(args)
    embedded = Embedded(rate_window_s=args.window_s or EMBEDDED_WINDOW_S)
    if not args.dry_run:
        # Everything the run would refuse is refused now, before a key is read, the embedded
        # gateway started or the target contacted.
        with open_target(choice, embedded, console, dry_run=True) as planned:
            plan_load(planned, options)
    sweep = sweep_options_from(args) if SCENARIOS[args.scenario].sweep else None
    with open_target(choice, embedded, console, dry_run=args.dry_run,
                     preflight=True) as target:
        if args.dry_run:
            return dry_run(target, options, console) if sweep is None else \
                dry_run_sweep(target, options, sweep, console)
        if sweep is not None:
            return run_sweep(target, options, sweep, console).exit_code
        return run_load(target, options, console).exit_code
