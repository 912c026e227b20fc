"""``gateprobe load``: a Locust scenario (rate-limits, latency or tasks).

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

from gateprobe.cli._flags import add_target_flags, choice_from, pairs
from gateprobe.cli._help import Help, command_parser
from gateprobe.commands.load.plan import ARRIVALS
from gateprobe.commands.load.runner import LoadOptions, dry_run, plan_load, run_load
from gateprobe.commands.load.scenarios import SCENARIOS
from gateprobe.core.console import Console
from gateprobe.core.errors import UsageError
from gateprobe.core.targets import TargetChoice
from gateprobe.engine.embedded import Embedded, open_target

EMBEDDED_WINDOW_S = 10.0
"""The embedded gateway's rate window unless ``--window-s`` says otherwise."""


HELP = Help(
    "run a Locust load scenario (rate-limits, latency or tasks)",
    "Run a Locust scenario against a gateway: rate-limits (a burst per tier key, judged "
    "against the declared limits), latency (streams timed by TTFT, inter-token latency and "
    "e2e, judged against the SLO file) or tasks (Midjourney imagine tasks polled to their "
    "end: time to SUCCESS, failure rate and lifecycle findings, judged against the SLO file; "
    "only on a target declaring midjourney). Headless by default; --web serves Locust's UI. "
    "A target that is not loopback needs allow_load: true in its entry.",
    ("load latency                                  # the embedded gateway, 30 s",
     "load latency --users 8 --duration 60 --slo load/slo.yaml",
     "load rate-limits --target staging             # needs the target's tier_keys",
     "load tasks --users 8 --poll-interval 2        # Midjourney time to SUCCESS"),
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
    shape.add_argument("--duration", type=float, metavar="S",
                       help="seconds; also the run's cap (latency 30; rate-limits 3 windows+15)")
    shape.add_argument("--arrival", choices=ARRIVALS, default="closed",
                       help="closed-loop users, or a constant / Poisson arrival --rate")
    shape.add_argument("--rate", type=float, default=0.0, help="arrivals per second (all users)")
    shape.add_argument("--weight", action="append", default=[], metavar="ENDPOINT=W",
                       help="latency: chat, messages, complete weights (1 each); "
                            "speech (0 unless given: time to first audio byte)")
    shape.add_argument("--max-tokens", type=int, default=64, help="tokens asked per stream (64)")
    shape.add_argument("--max-requests", type=int, default=10_000, help="request cap (10000)")
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
    mode = load.add_argument_group("Locust")
    mode.add_argument("--locustfile", metavar="FILE",
                      help="latency, tasks: your own locustfile, its users gateprobe.commands.load's "
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


def _processes(text: str) -> int | str:
    """``--processes``: ``auto`` or a number."""
    if text == "auto":
        return text
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number or auto") from None


def _weights(values: list[str]) -> dict[str, float]:
    out: dict[str, float] = {}
    for name, text in pairs(values, "--weight").items():
        try:
            out[name] = float(text)
        except ValueError:
            raise UsageError(f"--weight {name}={text}: not a number") from None
    return out


def options_from(args: argparse.Namespace) -> LoadOptions:
    """The run's options from its flags (checked)."""
    return LoadOptions(
        scenario=args.scenario, users=args.users, spawn_rate=args.spawn_rate,
        duration_s=args.duration, arrival=args.arrival, rate=args.rate,
        weights=_weights(args.weight), max_tokens=args.max_tokens,
        max_requests=args.max_requests, max_rps=args.max_rps,
        slo=Path(args.slo) if args.slo else None, web=args.web, web_wait=args.web_wait,
        web_port=args.web_port,
        processes=args.processes, master=args.master, expect_workers=args.expect_workers,
        worker=args.worker, master_host=args.master_host, master_port=args.master_port,
        report_dir=Path(args.report_dir) if args.report_dir else None,
        poll_interval_s=args.poll_interval, task_deadline_s=args.task_deadline,
        lag_bound_ms=args.lag_bound_ms,
        locustfile=Path(args.locustfile) if args.locustfile else None).check()


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
    with open_target(choice, embedded, console, dry_run=args.dry_run,
                     preflight=True) as target:
        if args.dry_run:
            return dry_run(target, options, console)
        return run_load(target, options, console).exit_code
