"""``gateprobe serve``: the reference gateway in the foreground."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from gateprobe.cli._help import Help, command_parser
from gateprobe.core.console import Console
from gateprobe.core.errors import UsageError
from gateprobe.core.targets import PROFILES
from gateprobe.reference import faults
from gateprobe.reference.config import (
    SERVE_SPIN_MS,
    Timing,
    default_keys_path,
    load_keys_file,
)
from gateprobe.reference.server import Tls, serve

HELP = Help(
    "run the reference gateway in the foreground",
    "Run the reference gateway in the foreground until Ctrl-C: an OpenAI- and "
    "Anthropic-compatible gateway with the documented tier rate limits, a fake model with a "
    "latency profile and, on request, named faults. It is the embedded default target and a "
    "test double for your own clients.",
    ("serve --port 8080                               # http://127.0.0.1:8080",
     "serve --port 0 --fault stream-drop-terminator   # a free port, streams without [DONE]",
     "serve --list-faults                             # the fault catalogue",
     "serve --list-faults --json                      # the same, for machines"),
    (0, 2, 130))
"""The command's help text."""


def add_parser(sub: Any) -> None:
    """The ``serve`` command's flags."""
    serve = command_parser(sub, "serve", HELP)
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
    serve.add_argument("--spin-ms", type=float, default=SERVE_SPIN_MS,
                       help="wait the last ms before each send by yielding, for sub-ms send "
                       "precision at some CPU cost; 0 uses timers only (2)")
    serve.add_argument("--prefill-us-per-token", type=float, default=0.0, metavar="US",
                       help="each prompt token adds this many microseconds to TTFT (0)")
    serve.add_argument("--prefix-cache", action="store_true",
                       help="with --prefill-us-per-token: a prompt prefix seen before costs "
                            "no prefill (16-token blocks)")
    serve.add_argument("--seed", type=int, default=0, help="fake model seed (0)")
    serve.add_argument("--max-inflight", type=int, default=0,
                       help="answer 529/503 above this many requests in progress (0: no limit)")
    serve.add_argument("--capacity", type=int, default=0, metavar="K",
                       help="generate at most K answers at once; the rest queue, first come "
                            "first served, their wait in their TTFT (0: no limit)")
    serve.add_argument("--cut-after-s", type=float, default=0.0, metavar="S",
                       help="answer non-streaming requests longer than S with a CDN's 524 page "
                            "at S seconds (0: never)")
    serve.add_argument("--rate-algorithm", choices=("sliding_window", "token_bucket"),
                       default="sliding_window",
                       help="how tier limits count: a sliding window, or a token bucket "
                            "refilled at limit/window (sliding_window)")
    serve.add_argument("--error-envelope", choices=("family", "gateway"), default="family",
                       help="errors in the route's family envelope, or in the gateway's own "
                            "{statusCode, message, data} (family)")
    serve.add_argument("--fault", action="append", default=[], metavar="NAME",
                       help="enable a named deviation (repeatable; see --list-faults)")
    serve.add_argument("--list-faults", action="store_true",
                       help="print the fault catalogue (kind, name, what it breaks) and exit")
    serve.add_argument("--json", action="store_true",
                       help="with --list-faults: the catalogue as JSON (name, kind, "
                            "description, endpoints, trips)")
    serve.add_argument("--loop", choices=("auto", "asyncio", "uvloop"), default="auto",
                       help="event loop (auto: uvloop where installed)")
    serve.add_argument("--log-level", default="warning",
                       choices=("critical", "error", "warning", "info", "debug"))
    serve.add_argument("--tls-cert", type=Path, metavar="PEM",
                       help="serve HTTPS with this certificate chain (needs --tls-key)")
    serve.add_argument("--tls-key", type=Path, metavar="PEM", help="the certificate's key")
    serve.add_argument("--upstream", action="store_true",
                       help="upstream mode: the reference behind a gateway under test, any key "
                            "accepted, every request recorded, answers scripted through "
                            "/_gateprobe/upstream (see docs/howto/gateways-in-the-middle.md)")


LISTING_WIDTH = 100
"""The fault listing fits this many columns (fewer on a narrower terminal)."""


def list_faults(console: Console, *, as_json: bool) -> None:
    """The fault catalogue: a table that fits a terminal, or JSON for machines."""
    if as_json:
        console.line(json.dumps(faults.catalogue_json(), indent=2))
        return
    console.table(["kind", "fault", "what it breaks"], [
        [f.proven_by, f.name, f"{f.description} (trips {', '.join(f.trips)}; on "
                              f"{faults.endpoints_text(f, code='')})"]
        for f in faults.CATALOGUE.values()], max_width=min(console.width, LISTING_WIDTH))


def command(args: argparse.Namespace, console: Console) -> int:
    if args.list_faults:
        list_faults(console, as_json=args.json)
        return 0
    if args.json:
        raise UsageError("--json goes with --list-faults")

    for flag in ("ttft_ms", "itl_ms", "jitter_ms", "spin_ms", "max_inflight", "capacity",
                 "cut_after_s", "prefill_us_per_token"):
        if getattr(args, flag) < 0:
            raise UsageError(f"--{flag.replace('_', '-')} must be >= 0")
    if args.rate_window_s <= 0:
        raise UsageError("--rate-window-s must be > 0")
    if not 0 <= args.port <= 65535:
        raise UsageError("--port must be between 0 and 65535")
    if (args.tls_cert is None) != (args.tls_key is None):
        raise UsageError("--tls-cert and --tls-key go together")
    tls = Tls(args.tls_cert, args.tls_key).check() if args.tls_cert else None
    if args.upstream:
        return _upstream(args, console)
    config = load_keys_file(args.keys or default_keys_path()).config(
        profile=args.profile, rate_window_s=args.rate_window_s,
        timing=Timing(args.ttft_ms, args.itl_ms, args.jitter_ms, args.spin_ms,
                      prefill_us_per_token=args.prefill_us_per_token,
                      prefix_cache=args.prefix_cache), seed=args.seed,
        max_inflight=args.max_inflight, capacity=args.capacity,
        faults=faults.validate(args.fault),
        cut_after_s=args.cut_after_s, error_envelope=args.error_envelope,
        rate_algorithm=args.rate_algorithm,
    )
    try:
        serve(config, args.host, args.port, log_level=args.log_level, loop=args.loop, tls=tls,
              announce=lambda url: console.line(
                  f"gateprobe reference gateway ({args.profile}) listening on {url}"))
    except KeyboardInterrupt:
        pass  # uvicorn re-raises the SIGINT it shut down on: Ctrl-C is how a server stops
    return 0


def _upstream(args: argparse.Namespace, console: Console) -> int:
    """``serve --upstream``: loopback only (a test double that takes any key)."""
    from gateprobe.core.targets import is_loopback_url
    from gateprobe.reference.upstream import serve_upstream

    if not is_loopback_url(f"http://{args.host}"):
        raise UsageError("--upstream listens on loopback only (--host 127.0.0.1)")
    try:
        serve_upstream(args.host, args.port, Timing(args.ttft_ms, args.itl_ms, args.jitter_ms,
                                                    args.spin_ms),
                       announce=lambda url: console.line(
                           f"gateprobe upstream listening on {url} (control API: "
                           f"{url}/_gateprobe/upstream)"))
    except KeyboardInterrupt:
        pass
    return 0
