"""``gateprobe load rate-limits|latency``: build the plan, check it is safe, run Locust in a
subprocess, and turn its verdict into tables and an exit code.

Locust runs in a child process because importing it monkey-patches the process with gevent.
Exit codes: 0 the run met every objective, 1 it did not (or did not end within its budget), 2
usage or configuration error, 3 target unreachable.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any

from gateprobe.console import Console
from gateprobe.errors import ConfigError, UsageError
from gateprobe.load.plan import (
    ARRIVALS,
    MAX_DURATION_S,
    MAX_REQUESTS,
    MAX_RPS,
    PLAN_ENV,
    STREAM_ENDPOINTS,
    LoadPlan,
)
from gateprobe.load.results import VERDICT_FILE
from gateprobe.load.slo import load_slo
from gateprobe.redact import Redactor, redact_tree
from gateprobe.report import new_run_dir
from gateprobe.targets import (
    DEFAULT_MODELS,
    PROFILES,
    add_timeout_flags,
    check_base_url,
    check_reachable,
    is_loopback_url,
    key_from_env,
    model_overrides,
    target_entry,
    timeouts_of,
)

_PACKAGED = Path(__file__).resolve().parent.parent / "_load"
_SOURCE = Path(__file__).resolve().parents[3] / "load"
LOCUSTFILES = {"rate-limits": "rate_limits.py", "latency": "streaming_latency.py"}
STOP_TIMEOUT_S = 5
EMBEDDED_TIERS = {"free": "gp-free-0001", "vip": "gp-vip-0001", "premium": "gp-premium-0001"}
EMBEDDED_LIMITS = {"free": 12, "vip": 60, "premium": 90}
EMBEDDED_WINDOW_S = 10.0


def load_dir() -> Path:
    """The scenarios: packaged inside a wheel, ``load/`` in a checkout."""
    return _PACKAGED if _PACKAGED.exists() else _SOURCE


def add_parser(sub: Any) -> None:
    """The ``load`` command's flags."""
    load = sub.add_parser("load", help="run a Locust load scenario (rate-limits or latency)")
    load.add_argument("scenario", choices=list(LOCUSTFILES), help="which scenario")
    where = load.add_argument_group("target (default: the embedded reference gateway)")
    where.add_argument("--target", metavar="NAME", help="a target of the targets file")
    where.add_argument("--targets", metavar="FILE", default="targets.yaml")
    where.add_argument("--base-url", help="the gateway to load (loopback only without --target)")
    where.add_argument("--profile", choices=PROFILES, default="ohmygpt")
    where.add_argument("--api-key-env", default="GATEPROBE_API_KEY", metavar="VAR",
                       help="latency: variable holding the key (GATEPROBE_API_KEY)")
    where.add_argument("--tier-key", action="append", default=[], metavar="TIER=VAR",
                       help="rate-limits: a tier's key variable (repeatable)")
    where.add_argument("--limit", action="append", default=[], metavar="TIER=N",
                       help="rate-limits: requests per window of a tier (repeatable)")
    where.add_argument("--window-s", type=float, metavar="S",
                       help="rate-limits: the window of the limits (target's, or 60)")
    where.add_argument("--model", action="append", default=[], metavar="ENDPOINT=NAME")
    shape = load.add_argument_group("shape of the run")
    shape.add_argument("--users", type=int, default=4, help="latency: concurrent users (4)")
    shape.add_argument("--spawn-rate", type=float, help="users started per second (all at once)")
    shape.add_argument("--duration", type=float, metavar="S",
                       help="seconds; also the run's cap (latency 30; rate-limits 3 windows+15)")
    shape.add_argument("--arrival", choices=ARRIVALS, default="closed",
                       help="closed-loop users, or a constant / Poisson arrival --rate")
    shape.add_argument("--rate", type=float, default=0.0, help="arrivals per second (all users)")
    shape.add_argument("--weight", action="append", default=[], metavar="ENDPOINT=W",
                       help="latency: chat, messages, complete weights (1 each)")
    shape.add_argument("--max-tokens", type=int, default=64, help="tokens asked per stream (64)")
    shape.add_argument("--max-requests", type=int, default=10_000, help="request cap (10000)")
    shape.add_argument("--max-rps", type=float, default=200.0, help="request rate cap (200)")
    shape.add_argument("--slo", metavar="FILE", help="SLO thresholds (default: load/slo.yaml)")
    add_timeout_flags(shape.add_argument)
    mode = load.add_argument_group("Locust")
    mode.add_argument("--web", action="store_true", help="serve Locust's web UI (127.0.0.1)")
    mode.add_argument("--web-port", type=int, default=8089)
    mode.add_argument("--processes", type=int, help="local worker processes (Locust --processes)")
    mode.add_argument("--master", action="store_true", help="be the master of remote workers")
    mode.add_argument("--expect-workers", type=int, default=1, help="master: workers to wait for")
    mode.add_argument("--worker", action="store_true", help="be a worker of --master-host")
    mode.add_argument("--master-host", default="127.0.0.1")
    mode.add_argument("--master-port", type=int, default=5557)
    load.add_argument("--dry-run", action="store_true",
                      help="print what would be sent, send nothing")
    load.add_argument("--report-dir", metavar="DIR", help="write here instead of reports/<run>/")


def _pairs(values: list[str], flag: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for value in values:
        name, sep, rest = value.partition("=")
        if not sep or not name or not rest:
            raise UsageError(f"{flag} takes NAME=VALUE, got {value!r}")
        out[name] = rest
    return out


def _numbers(values: Mapping[str, str], flag: str, kind: type[int] | type[float],
             ) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, text in values.items():
        try:
            out[name] = kind(text)
        except ValueError:
            raise UsageError(f"{flag} {name}={text}: not a number") from None
        if out[name] < 0 or (kind is int and out[name] < 1):
            raise UsageError(f"{flag} {name}={text}: must be positive")
    return out


def _check_shape(args: argparse.Namespace) -> None:
    for flag in ("users", "max_tokens", "max_requests", "processes", "expect_workers"):
        value = getattr(args, flag)
        if value is not None and value < 1:
            raise UsageError(f"--{flag.replace('_', '-')} must be at least 1")
    if not args.max_rps > 0:
        raise UsageError("--max-rps must be > 0")
    timeouts_of(lambda dest: getattr(args, dest))
    if args.duration is not None and not 0 < args.duration <= MAX_DURATION_S:
        raise UsageError(f"--duration must be within 0..{MAX_DURATION_S:g} s")
    if args.max_requests > MAX_REQUESTS:
        raise UsageError(f"--max-requests is capped at {MAX_REQUESTS}")
    if args.max_rps > MAX_RPS:
        raise UsageError(f"--max-rps is capped at {MAX_RPS:g}")
    if args.arrival != "closed":
        if not args.rate > 0:
            raise UsageError(f"--arrival {args.arrival} needs --rate > 0")
        if args.rate > args.max_rps:
            raise UsageError(f"--rate {args.rate:g} is above --max-rps {args.max_rps:g}")
    if args.window_s is not None and not args.window_s > 0:
        raise UsageError("--window-s must be > 0")
    if args.master and args.worker:
        raise UsageError("give --master or --worker, not both")
    if args.processes and (args.master or args.worker):
        raise UsageError("--processes runs local workers: not with --master or --worker")


def _weights(args: argparse.Namespace) -> dict[str, float]:
    weights = {k: 1.0 for k in STREAM_ENDPOINTS}
    given = _numbers(_pairs(args.weight, "--weight"), "--weight", float)
    unknown = set(given) - set(weights)
    if unknown:
        raise UsageError(f"--weight: unknown endpoint {min(unknown)!r} "
                         f"(one of {', '.join(STREAM_ENDPOINTS)})")
    weights.update(given)
    if not any(weights.values()):
        raise UsageError("--weight: every weight is 0")
    return weights


def run_load(args: argparse.Namespace, console: Console) -> int:
    """Check everything, run the scenario, report; the exit code."""
    _check_shape(args)
    slo = load_slo(Path(args.slo) if args.slo else load_dir() / "slo.yaml")
    models = {**DEFAULT_MODELS, **model_overrides(args.model)}
    if args.target and args.base_url:
        raise UsageError("give --target or --base-url, not both")
    with _where(args, console) as (plan_args, embedded):
        plan = _plan(args, plan_args, models, slo)
        if args.dry_run:
            from gateprobe import dryrun

            return dryrun.load(plan, console)
        if not embedded:
            check_reachable(plan.base_url)
        _check_burst_rate(plan)
        out = new_run_dir(f"load-{args.scenario}",
                          explicit=Path(args.report_dir) if args.report_dir else None)
        plan = replace(plan, out_dir=str(out))
        (out / VERDICT_FILE).unlink(missing_ok=True)  # a reused folder's old verdict is not ours
        plan.save(out / "plan.json")
        console.line(f"gateprobe load {plan.scenario}: {plan.base_url}, report in {out}")
        code = _locust(args, plan, console)
        redact_tree(out, Redactor(os.environ.get(v, "") for v in plan.secret_envs))
    if args.worker:
        return code
    return _report(plan, code, console)


@contextmanager
def _where(args: argparse.Namespace, console: Console,
           ) -> Iterator[tuple[dict[str, Any], bool]]:
    """The target's part of the plan, and whether it is the embedded gateway (started here
    for the run's duration when neither --target nor --base-url is given)."""
    tier_keys = _pairs(args.tier_key, "--tier-key")
    limits = _numbers(_pairs(args.limit, "--limit"), "--limit", int)
    if args.target:
        entry = target_entry(Path(args.targets).resolve(), args.target)
        if not is_loopback_url(entry.base_url) and not entry.allow_load:
            raise ConfigError(f"load against {entry.base_url} refused: it is not loopback and "
                              f"target {entry.name!r} does not set allow_load: true")
        yield {"base_url": check_base_url(entry.base_url), "profile": entry.profile,
               "api_key_env": entry.api_key_env,
               "tier_keys": {**entry.tier_keys, **tier_keys},
               "limits": {**entry.rpm, **limits},
               "window_s": args.window_s or entry.window_s,
               "models": {**entry.models}}, False
        return
    if args.base_url:
        base_url = check_base_url(args.base_url)
        if not is_loopback_url(base_url):
            raise ConfigError(f"load against {base_url} refused: only loopback targets can be "
                              "loaded from flags; use --target with allow_load: true")
        yield {"base_url": base_url, "profile": args.profile, "api_key_env": args.api_key_env,
               "tier_keys": tier_keys, "limits": limits, "window_s": args.window_s or 60.0,
               "models": {}}, False
        return
    window = args.window_s or EMBEDDED_WINDOW_S
    if args.dry_run:
        yield {"base_url": "(the embedded reference gateway)", "profile": "ohmygpt",
               "api_key_env": "GATEPROBE_EMBEDDED_KEY",
               "tier_keys": {t: f"GATEPROBE_EMBEDDED_{t.upper()}_KEY" for t in EMBEDDED_TIERS},
               "limits": dict(EMBEDDED_LIMITS), "window_s": window, "models": {}}, True
        return
    from gateprobe.reference.config import default_keys_path, load_keys_file
    from gateprobe.reference.server import running_gateway

    config = load_keys_file(default_keys_path()).config(rate_window_s=window)
    env = {f"GATEPROBE_EMBEDDED_{t.upper()}_KEY": k for t, k in EMBEDDED_TIERS.items()}
    env["GATEPROBE_EMBEDDED_KEY"] = EMBEDDED_TIERS["vip"]  # test keys of the fake gateway
    os.environ.update(env)
    with running_gateway(config) as gateway:
        console.line(f"embedded reference gateway at {gateway.base_url} "
                     f"(rate window {window:g} s)")
        yield {"base_url": gateway.base_url, "profile": "ohmygpt",
               "api_key_env": "GATEPROBE_EMBEDDED_KEY",
               "tier_keys": {t: f"GATEPROBE_EMBEDDED_{t.upper()}_KEY" for t in EMBEDDED_TIERS},
               "limits": dict(EMBEDDED_LIMITS), "window_s": window, "models": {}}, True


def _plan(args: argparse.Namespace, where: dict[str, Any], models: dict[str, str],
          slo: dict[str, float]) -> LoadPlan:
    scenario = args.scenario
    tier_keys, limits = where["tier_keys"], where["limits"]
    if scenario == "rate-limits":
        if not tier_keys:
            raise UsageError("rate-limits needs tier keys: --tier-key TIER=VAR (or tier_keys "
                             "in the target)")
        for tier in tier_keys:
            if tier not in limits:
                raise UsageError(f"tier {tier!r} has a key but no limit: --limit {tier}=N")
        limits = {t: limits[t] for t in tier_keys}
        for variable in tier_keys.values():
            if not args.dry_run:
                key_from_env(variable)
        window = where["window_s"]
        duration = args.duration or 3 * window + 15
        users = len(limits)
    else:
        if not args.dry_run:
            key_from_env(where["api_key_env"])
        duration = args.duration or 30.0
        users = args.users
    processes = args.processes or (args.expect_workers if args.master else 1)
    return LoadPlan(
        scenario=scenario, base_url=where["base_url"], profile=where["profile"], out_dir="",
        api_key_env=where["api_key_env"], tier_keys=dict(tier_keys), limits=dict(limits),
        window_s=where["window_s"], models={**models, **where["models"],
                                            **model_overrides(args.model)},
        weights=_weights(args), arrival=args.arrival, rate=args.rate, users=users,
        max_tokens=args.max_tokens, duration_s=duration, max_requests=args.max_requests,
        max_rps=args.max_rps, processes=processes,
        timeouts=timeouts_of(lambda dest: getattr(args, dest)),
        slo=slo)


def _check_burst_rate(plan: LoadPlan) -> None:
    if plan.scenario != "rate-limits":
        return
    needed = sum(plan.burst_size(t) for t in plan.limits) / plan.burst_spread_s
    if needed > plan.max_rps:
        raise UsageError(f"the rate-limit burst needs {needed:.0f} requests/s to exceed every "
                         f"limit within half a window: raise --max-rps (now {plan.max_rps:g})")
    duration_needed = 3 * plan.window_s + 5
    if plan.duration_s < duration_needed:
        raise UsageError(f"--duration {plan.duration_s:g} s is too short for a "
                         f"{plan.window_s:g} s window (needs {duration_needed:g} s)")
    total = sum(plan.burst_size(t) + 1 for t in plan.limits)
    if total > plan.max_requests:
        raise UsageError(f"the rate-limit run sends {total} requests: above --max-requests "
                         f"{plan.max_requests}")


def _locust(args: argparse.Namespace, plan: LoadPlan, console: Console) -> int:
    out = plan.out
    command = [sys.executable, "-m", "locust", "-f", str(load_dir() / LOCUSTFILES[plan.scenario]),
               "--host", plan.base_url, "--stop-timeout", str(STOP_TIMEOUT_S),
               "--loglevel", "INFO", "--logfile", str(out / "locust.log"),
               "--config", os.devnull]
    if args.worker:
        command += ["--worker", "--master-host", args.master_host,
                    "--master-port", str(args.master_port)]
    else:
        spawn = args.spawn_rate or plan.users
        command += ["--users", str(plan.users), "--spawn-rate", str(spawn),
                    "--csv", str(out / "locust"), "--html", str(out / "locust.html")]
        if args.web:
            command += ["--web-host", "127.0.0.1", "--web-port", str(args.web_port)]
        else:
            command += ["--headless", "--run-time", f"{math.ceil(plan.duration_s)}s",
                        "--only-summary"]
        if args.processes:
            command += ["--processes", str(args.processes)]
        if args.master:
            command += ["--master", "--master-bind-port", str(args.master_port)]
            if not args.web:
                command += ["--expect-workers", str(args.expect_workers)]
    env = {**os.environ, PLAN_ENV: str(out / "plan.json"), "PYTHONUNBUFFERED": "1"}
    budget = plan.duration_s + STOP_TIMEOUT_S + 60
    if args.master or args.worker or args.web:
        budget += 600  # waiting for workers (or a human) to start it
    output = None if args.web else (out / "locust.out").open("wb")
    try:
        process = subprocess.Popen(command, env=env, stdout=output, stderr=subprocess.STDOUT,
                                   stdin=subprocess.DEVNULL)
        try:
            return process.wait(timeout=budget)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
            console.error(f"the load run did not end within its budget of {budget:g} s: "
                          "stopped")
            return -1
        except KeyboardInterrupt:
            process.terminate()
            process.wait(timeout=30)
            raise
    finally:
        if output is not None:
            output.close()


def _report(plan: LoadPlan, code: int, console: Console) -> int:
    path = plan.out / VERDICT_FILE
    if not path.exists():
        tail = _tail(plan.out / "locust.out") or _tail(plan.out / "locust.log")
        console.error(f"the load run ended without a verdict (Locust exit {code}); see "
                      f"{plan.out}" + (f": {tail}" if tail else ""))
        return 1
    verdict = json.loads(path.read_text(encoding="utf-8"))
    if plan.scenario == "rate-limits":
        _print_rate_limits(verdict, console)
    else:
        _print_latency(verdict, console)
    if code == -1:
        verdict["ok"] = False
    if verdict["ok"]:
        console.line(f"PASS: every objective met ({verdict['requests']} requests)")
        return 0
    console.line(f"FAIL: {len(verdict['reasons'])} objective(s) missed")
    for reason in verdict["reasons"]:
        console.line(f"  - {reason}")
    return 1


def _tail(path: Path) -> str:
    try:
        lines = path.read_text(encoding="utf-8", errors="replace").strip().splitlines()
    except OSError:
        return ""
    return lines[-1][-300:] if lines else ""


def _fmt(value: float | None, digits: int = 1) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def _print_rate_limits(verdict: dict[str, Any], console: Console) -> None:
    result = verdict["rate_limits"]
    console.table(
        ["tier", "limit", "sent", "accepted", "429", "failed", "retry-after", "recovered",
         "verdict"],
        [[t["tier"], str(t["limit"]), str(t["sent"]), str(t["accepted"]), str(t["rejected"]),
          str(t["failed"]), _fmt(t["retry_after_s"], 0) + (" s" if t["retry_after_s"] else ""),
          {True: "yes", False: "NO", None: "-"}[t["recovered"]],
          "ok" if t["ok"] else "FAIL"] for t in result["tiers"]])
    console.line("timeline (accepted/429 per second):")
    tiers = [t["tier"] for t in result["tiers"]]
    seconds = sorted({row["second"] for row in result["timeline"]})
    cells = {(row["second"], row["tier"]): row for row in result["timeline"]}
    console.table(["s", *tiers], [
        [str(s), *(f"{cells[s, t]['accepted']}/{cells[s, t]['rejected']}"
                   if (s, t) in cells else "" for t in tiers)] for s in seconds])


def _print_latency(verdict: dict[str, Any], console: Console) -> None:
    summary = verdict["latency"]
    rows = []
    for endpoint, m in [*summary["by_endpoint"].items(), ("all", summary)]:
        rows.append([endpoint, str(m["requests"]), str(m["errors"]),
                     _fmt(m["ttfb_ms"]["p50"]), _fmt(m["ttft_ms"]["p50"]),
                     _fmt(m["ttft_ms"]["p95"]), _fmt(m["tpot_ms"]["p50"], 2),
                     _fmt(m["tpot_ms"]["p95"], 2), _fmt(m["itl_ms"]["p99"]),
                     _fmt(m["e2e_ms"]["p95"]), _fmt(m["tokens_per_s"]["p50"])])
    console.table(["endpoint", "requests", "errors", "ttfb p50", "ttft p50", "ttft p95",
                   "tpot p50", "tpot p95", "itl p99", "e2e p95", "tok/s p50"], rows)
    overall = summary.get("overall_tokens_per_s")
    console.line(f"times in ms; overall output {_fmt(overall)} tokens/s; "
                 f"{summary['dropped_arrivals']} arrivals dropped; stream findings: "
                 f"{summary['stream_findings'] or 'none'}")
