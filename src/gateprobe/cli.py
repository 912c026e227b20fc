"""The ``gateprobe`` command: thin, delegating to the library.

Each subcommand parses its flags, calls one library function and maps the result to an exit code.
``GateprobeError`` is caught here and only here: one line on stderr, its exit code, no traceback.

Exit codes: 0 pass, 1 findings (the target failed a check), 2 usage or configuration error,
3 target unreachable, 130 interrupted.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from gateprobe import __version__
from gateprobe.console import Console
from gateprobe.errors import GateprobeError, UsageError
from gateprobe.targets import (
    PROFILES,
    TIMEOUT_FIELDS,
    Target,
    Timeouts,
    add_timeout_flags,
    check_base_url,
    check_reachable,
    key_from_env,
    timeouts_of,
)

DEFAULT_EMBEDDED_KEY = "gp-vip-0001"


class _Parser(argparse.ArgumentParser):
    """argparse that raises ``UsageError`` instead of printing usage and exiting by itself."""

    def error(self, message: str) -> None:  # type: ignore[override]
        raise UsageError(f"{self.prog}: {message}")


def timeouts_from(args: argparse.Namespace,
                  fields: tuple[str, ...] = TIMEOUT_FIELDS) -> Timeouts:
    """The ``Timeouts`` of the parsed timeout flags."""
    return timeouts_of(lambda dest: getattr(args, dest), fields)


def build_parser() -> argparse.ArgumentParser:
    """The full command-line grammar."""
    parser = _Parser(prog="gateprobe", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"gateprobe {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    serve = sub.add_parser("serve", help="run the reference gateway in the foreground")
    serve.add_argument("--host", default="127.0.0.1", help="address to listen on (127.0.0.1)")
    serve.add_argument("--port", type=int, default=8080, help="port; 0 picks a free one (8080)")
    serve.add_argument("--keys", type=Path, help="keys YAML (default: fixtures/keys.yaml)")
    serve.add_argument("--profile", choices=PROFILES, default="ohmygpt",
                       help="auth conventions (ohmygpt)")
    serve.add_argument("--rate-window-s", type=float, default=60.0,
                       help="rate-limit window in seconds (60)")
    serve.add_argument("--ttft-ms", type=float, default=200.0, help="time to first token (200)")
    serve.add_argument("--itl-ms", type=float, default=20.0, help="inter-token latency (20)")
    serve.add_argument("--jitter-ms", type=float, default=0.0, help="+- jitter per token (0)")
    serve.add_argument("--spin-ms", type=float, default=2.0,
                       help="wait the last ms before each send by yielding, for sub-ms send "
                       "precision at some CPU cost; 0 uses timers only (2)")
    serve.add_argument("--seed", type=int, default=0, help="fake model seed (0)")
    serve.add_argument("--max-inflight", type=int, default=0,
                       help="answer 529/503 above this many requests in progress (0: no limit)")
    serve.add_argument("--cut-after-s", type=float, default=0.0, metavar="S",
                       help="answer non-streaming requests longer than S with a CDN's 524 page "
                            "at S seconds (0: never)")
    serve.add_argument("--fault", action="append", default=[], metavar="NAME",
                       help="enable a named deviation (repeatable; see --list-faults)")
    serve.add_argument("--list-faults", action="store_true",
                       help="print the fault catalogue and exit")
    serve.add_argument("--loop", choices=("auto", "asyncio", "uvloop"), default="auto",
                       help="event loop (auto: uvloop where installed)")
    serve.add_argument("--log-level", default="warning",
                       choices=("critical", "error", "warning", "info", "debug"))
    serve.add_argument("--tls-cert", type=Path, metavar="PEM",
                       help="serve HTTPS with this certificate chain (needs --tls-key)")
    serve.add_argument("--tls-key", type=Path, metavar="PEM", help="the certificate's key")

    conf = sub.add_parser("conformance", help="run the conformance suite against a gateway "
                          "(default: the embedded reference gateway)")
    conf.add_argument("--target", metavar="NAME", help="a target of the targets file")
    conf.add_argument("--targets", metavar="FILE", default="targets.yaml",
                      help="the targets file (targets.yaml; see targets.example.yaml)")
    conf.add_argument("--base-url", help="the gateway to test (default: start the embedded one)")
    conf.add_argument("--profile", choices=PROFILES, default="ohmygpt")
    conf.add_argument("--api-key-env", default="GATEPROBE_API_KEY",
                      help="environment variable holding the key (GATEPROBE_API_KEY)")
    conf.add_argument("--no-permission-key-env", metavar="VAR",
                      help="variable holding a key without the claude-2-web permission")
    conf.add_argument("--model", action="append", default=[], metavar="ENDPOINT=NAME")
    conf.add_argument("--select", metavar="EXPR",
                      help="categories, as a pytest marker expression: 'stream or errors'")
    conf.add_argument("--record-golden", action="store_true",
                      help="record the golden answers from this trusted target (into "
                           "fixtures/golden) instead of comparing")
    conf.add_argument("--max-examples", type=int, metavar="N",
                      help="fuzz: examples per operation (20 on loopback, 5 elsewhere)")
    conf.add_argument("--fuzz-max-tokens", type=int, metavar="N",
                      help="fuzz: cap on max_tokens-like values sent (64)")
    conf.add_argument("--fuzz-max-requests", type=int, metavar="N",
                      help="fuzz: stop after N requests (2000 on loopback, 200 elsewhere)")
    conf.add_argument("--golden-dir", metavar="DIR",
                      help="golden files to compare with or record into (default: shipped)")
    conf.add_argument("--junit", metavar="PATH", help="write JUnit XML here")
    conf.add_argument("--dry-run", action="store_true",
                     help="print what would be sent, send nothing")
    conf.add_argument("--report-dir", metavar="DIR",
                      help="write junit.xml and allure-results/ into this folder")
    conf.add_argument("-v", "--verbose", action="store_true", help="one line per case")
    add_timeout_flags(conf.add_argument)
    conf.add_argument("--budget-s", type=float, default=900.0, metavar="S",
                      help="the whole run's budget: once spent, the rest is skipped and the "
                           "run fails (900)")

    from gateprobe.load.runner import add_parser as add_load_parser

    add_load_parser(sub)

    comp = sub.add_parser("compare", help="the same probes against every mirror, side by side")
    comp.add_argument("--target", metavar="NAME", help="a target whose mirrors to compare")
    comp.add_argument("--targets", metavar="FILE", default="targets.yaml")
    comp.add_argument("--base-url", action="append", default=[], metavar="URL",
                      help="a mirror (repeat: at least two)")
    comp.add_argument("--profile", choices=PROFILES, default="ohmygpt")
    comp.add_argument("--api-key-env", default="GATEPROBE_API_KEY", metavar="VAR")
    comp.add_argument("--model", action="append", default=[], metavar="ENDPOINT=NAME")
    comp.add_argument("--samples", type=int, default=10, help="streams per mirror (10)")
    comp.add_argument("--long-request-s", type=float, default=120.0, metavar="S",
                      help="how long the long-request probe asks to run (120: past a 100 s "
                           "CDN limit)")
    add_timeout_flags(comp.add_argument)
    comp.add_argument("--dry-run", action="store_true",
                     help="print what would be sent, send nothing")
    comp.add_argument("--report-dir", metavar="DIR", help="instead of reports/<time>-compare/")

    gate = sub.add_parser("gate", help="the CI entry point: run the suites of a gate file and "
                                       "decide (allow-list, baseline)")
    gate.add_argument("--config", required=True, metavar="FILE", help="the gate file (YAML)")
    gate.add_argument("--dry-run", action="store_true",
                     help="print what would be sent, send nothing")
    gate.add_argument("--report-dir", metavar="DIR", help="instead of reports/<time>-gate/")

    run = sub.add_parser("run", help="conformance, a short rate-limit and a short latency run, "
                                     "and the report (default: the embedded gateway)")
    run.add_argument("--target", metavar="NAME", help="a target of the targets file")
    run.add_argument("--targets", metavar="FILE", default="targets.yaml")
    run.add_argument("--base-url", help="this gateway instead of the embedded one")
    run.add_argument("--profile", choices=PROFILES, default="ohmygpt")
    run.add_argument("--api-key-env", default="GATEPROBE_API_KEY",
                     help="environment variable holding the key (GATEPROBE_API_KEY)")
    run.add_argument("--suites", default="conformance,rate-limits,latency",
                     help="comma-separated: conformance, rate-limits, latency (all)")
    run.add_argument("--select", metavar="EXPR", help="conformance categories (see conformance)")
    run.add_argument("--dry-run", action="store_true",
                     help="print what would be sent, send nothing")
    run.add_argument("--report-dir", metavar="DIR", help="instead of reports/<time>-run/")
    add_timeout_flags(run.add_argument)
    run.add_argument("--smoke", action="store_true",
                     help="only a quick smoke probe of every endpoint, no report folder")
    run.add_argument("--json", action="store_true", help="--smoke: print results as JSON")
    return parser


def main(argv: Sequence[str] | None = None, console: Console | None = None) -> int:
    """Entry point of the console script; returns the exit code."""
    console = console or Console()
    try:
        args = build_parser().parse_args(argv)
        if args.command == "serve":
            return _serve(args, console)
        if args.command == "conformance":
            from gateprobe.conformance_runner import run_conformance

            return run_conformance(args, console)
        if args.command == "compare":
            from gateprobe.compare import run_compare

            return run_compare(args, console)
        if args.command == "gate":
            from gateprobe.gate import run_gate

            return run_gate(args, console)
        if args.command == "load":
            from gateprobe.load.runner import run_load

            return run_load(args, console)
        return _run(args, console)
    except GateprobeError as exc:
        console.error(str(exc))
        return exc.exit_code
    except KeyboardInterrupt:
        console.error("interrupted")
        return 130


def _serve(args: argparse.Namespace, console: Console) -> int:
    from gateprobe.reference import faults
    from gateprobe.reference.config import Timing, default_keys_path, load_keys_file
    from gateprobe.reference.server import Tls, serve

    if args.list_faults:
        console.table(["fault", "endpoints", "trips", "what it does"], [
            [f.name, ", ".join(sorted(f.endpoints)), ", ".join(f.trips), f.description]
            for f in faults.CATALOGUE.values()])
        return 0

    for flag in ("ttft_ms", "itl_ms", "jitter_ms", "spin_ms", "max_inflight", "cut_after_s"):
        if getattr(args, flag) < 0:
            raise UsageError(f"--{flag.replace('_', '-')} must be >= 0")
    if args.rate_window_s <= 0:
        raise UsageError("--rate-window-s must be > 0")
    if not 0 <= args.port <= 65535:
        raise UsageError("--port must be between 0 and 65535")
    if (args.tls_cert is None) != (args.tls_key is None):
        raise UsageError("--tls-cert and --tls-key go together")
    tls = Tls(args.tls_cert, args.tls_key).check() if args.tls_cert else None
    config = load_keys_file(args.keys or default_keys_path()).config(
        profile=args.profile, rate_window_s=args.rate_window_s,
        timing=Timing(args.ttft_ms, args.itl_ms, args.jitter_ms, args.spin_ms), seed=args.seed,
        max_inflight=args.max_inflight, faults=faults.validate(args.fault),
        cut_after_s=args.cut_after_s,
    )
    try:
        serve(config, args.host, args.port, log_level=args.log_level, loop=args.loop, tls=tls,
              announce=lambda url: console.line(
                  f"gateprobe reference gateway ({args.profile}) listening on {url}"))
    except KeyboardInterrupt:
        pass  # uvicorn re-raises the SIGINT it shut down on: Ctrl-C is how a server stops
    return 0


def _run(args: argparse.Namespace, console: Console) -> int:
    if args.smoke:
        return _smoke(args, console)
    import time
    from contextlib import ExitStack

    from gateprobe import pipeline
    from gateprobe.report import new_run_dir

    suites = pipeline.check_suites([s.strip() for s in args.suites.split(",") if s.strip()])
    if args.target and args.base_url:
        raise UsageError("give --target or --base-url, not both")
    if args.dry_run:
        flags = ["--target", args.target, "--targets", args.targets] if args.target else \
            ["--base-url", args.base_url, "--profile", args.profile, "--api-key-env",
             args.api_key_env] if args.base_url else []
        if args.base_url and "rate-limits" in suites:
            suites.remove("rate-limits")  # it needs tier keys: skipped in a real run too
        return pipeline.dry_run(suites, flags, console, args.select)
    with ExitStack() as stack:
        if args.target:
            target = pipeline.from_targets_file(args.target, Path(args.targets).resolve())
        elif args.base_url:
            key_from_env(args.api_key_env)
            target = pipeline.from_flags(check_base_url(args.base_url), args.profile,
                                         args.api_key_env)
        else:
            target = stack.enter_context(pipeline.embedded(console))
        check_reachable(target.base_url)
        run_dir = new_run_dir("run", explicit=Path(args.report_dir) if args.report_dir
                              else None)
        console.line(f"gateprobe run: {', '.join(suites)} against {target.base_url}; "
                     f"report folder {run_dir}")
        started, t0 = pipeline.utc_now(), time.monotonic()
        phases = pipeline.run_phases(target, suites, run_dir, console, args.select,
                                     timeouts=timeouts_from(args))
        return pipeline.finish("run", target, phases, run_dir, started, t0,
                               pipeline.exit_code_of(phases), console, target.redactor)


def _smoke(args: argparse.Namespace, console: Console) -> int:
    from gateprobe.smoke import result_rows, run_smoke, summary_json

    if args.base_url:
        key = key_from_env(args.api_key_env)
        base_url = check_base_url(args.base_url)
        check_reachable(base_url)
        results = run_smoke(Target(base_url, args.profile, key, args.api_key_env))
        where = args.base_url
    else:
        from gateprobe.reference.config import default_keys_path, load_keys_file
        from gateprobe.reference.server import running_gateway

        with running_gateway(load_keys_file(default_keys_path()).config()) as gateway:
            results = run_smoke(Target(gateway.base_url, "ohmygpt", DEFAULT_EMBEDDED_KEY))
            where = f"embedded reference gateway at {gateway.base_url}"
    if args.json:
        console.line(summary_json(results))
    else:
        console.line(f"gateprobe run: smoke run of every endpoint ({where})")
        console.table(["case", "endpoint", "status", "time", "verdict"], result_rows(results))
        failed = sum(not r.ok for r in results)
        console.line(f"{len(results) - failed} passed, {failed} failed")
    return 0 if all(r.ok for r in results) else 1


def entrypoint() -> None:
    """Console-script wrapper."""
    sys.exit(main())
