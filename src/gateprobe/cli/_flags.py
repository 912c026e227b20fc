"""Flags several commands share, declared once, and their translation into a ``TargetChoice``."""

from __future__ import annotations

import argparse
import difflib
import re
from pathlib import Path
from typing import Any

from gateprobe.core.console import OutputClosed
from gateprobe.core.errors import UsageError
from gateprobe.core.targets import (
    ENDPOINTS,
    PROFILES,
    RATE_ALGORITHMS,
    RATE_HEADERS,
    TIMEOUT_FIELDS,
    TargetChoice,
    Timeouts,
    add_timeout_flags,
    check_endpoints,
    timeouts_of,
)


class Parser(argparse.ArgumentParser):
    """argparse that raises ``UsageError`` instead of printing usage and exiting by itself
    (the console prefixes "gateprobe: "; a subcommand's errors name the subcommand)."""

    def _print_message(self, message: str, file: Any = None) -> None:
        """argparse's own printing (``--help``, ``--version``): a reader that closed the pipe
        ends the command quietly, as for every other output."""
        try:
            super()._print_message(message, file)  # argparse ignores a failed write...
            if message and file is not None:
                file.flush()  # ...but the flush at exit would print a traceback-like warning
        except BrokenPipeError as exc:
            raise OutputClosed from exc

    def error(self, message: str) -> None:  # type: ignore[override]
        choice = re.match(r"argument ([^:]+): invalid choice: '([^']*)' \(choose from (.*)\)",
                          message)
        if choice:  # a mistyped command, scenario or flag value: say the closest
            what, value = choice.group(1), choice.group(2)
            known = re.findall(r"'([^']*)'", choice.group(3))
            close = difflib.get_close_matches(value, known, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            if what in ("command", "COMMAND"):
                message = f"unknown command {value!r}{hint}; commands: {', '.join(known)}"
            else:
                message = f"{what}: unknown {value!r}{hint}; one of {', '.join(known)}"
        if message == "the following arguments are required: COMMAND":
            message = "a command is required (gateprobe --help lists them)"
        where = self.prog.removeprefix("gateprobe").strip()
        raise UsageError(f"{where}: {message}" if where else message)


def add_target_flags(parser: Any, *, no_permission: bool = False, tiers: bool = False,
                     several_urls: bool = False, timeouts: bool = True,
                     title: str = "target (default: the embedded reference gateway)") -> None:
    """``--target``/``--targets``, ``--base-url``, ``--profile``, ``--api-key-env``,
    ``--model`` (and, where the command uses them, the no-permission key, the tier keys and
    limits, several URLs, the four timeouts)."""
    group = parser.add_argument_group(title)
    group.add_argument("--target", metavar="NAME", help="a target of the targets file")
    group.add_argument("--targets", metavar="FILE", default="targets.yaml",
                       help="the targets file (targets.yaml; see targets.example.yaml)")
    if several_urls:
        group.add_argument("--base-url", action="append", default=[], metavar="URL",
                           help="a mirror (repeat: at least two)")
    else:
        group.add_argument("--base-url", help="this gateway instead of the embedded one")
    group.add_argument("--profile", choices=PROFILES, default="ohmygpt",
                       help="the gateway's conventions (ohmygpt)")
    group.add_argument("--api-key-env", default="GATEPROBE_API_KEY", metavar="VAR",
                       help="environment variable holding the key (GATEPROBE_API_KEY)")
    if no_permission:
        group.add_argument("--no-permission-key-env", metavar="VAR",
                           help="variable holding a key without the claude-2-web permission")
    group.add_argument("--model", action="append", default=[], metavar="ENDPOINT=NAME",
                       help="model per endpoint family (repeatable)")
    group.add_argument("--endpoints", metavar="LIST",
                       help="the endpoints the target serves, comma-separated (default: the "
                            "target's, or its profile's): " + ", ".join(ENDPOINTS))
    if tiers:
        group.add_argument("--tier-key", action="append", default=[], metavar="TIER=VAR",
                           help="rate-limits: a tier's key variable (repeatable)")
        group.add_argument("--limit", action="append", default=[], metavar="TIER=N",
                           help="rate-limits: requests per window of a tier (repeatable)")
        group.add_argument("--window-s", type=float, metavar="S",
                           help="rate-limits: the window of the limits (target's, or 60)")
        group.add_argument("--rate-algorithm", choices=RATE_ALGORITHMS,
                           help="rate-limits: how the target's limiter counts (target's, or "
                                "unknown: a burst may also take what refills meanwhile)")
        group.add_argument("--rate-headers", choices=RATE_HEADERS,
                           help="rate-limits: the budget headers the target states (target's, "
                                "or family: x-ratelimit-* / anthropic-ratelimit-*; ietf: "
                                "RateLimit-*; none: not judged)")
    if timeouts:
        add_timeout_flags(group.add_argument)


def add_selection_flags(parser: Any) -> None:
    """``--select`` (conformance categories) and ``--checks`` (modules of one's own checks)."""
    parser.add_argument("--select", metavar="EXPR",
                        help="conformance categories, as a pytest marker expression: "
                             "'stream or errors'")
    parser.add_argument("--checks", action="append", default=[], metavar="MODULE",
                        help="a module of your own checks (@gateprobe.check), by dotted name "
                             "or .py path (repeatable)")


def timeouts_from(args: argparse.Namespace,
                  fields: tuple[str, ...] = TIMEOUT_FIELDS) -> Timeouts:
    """The ``Timeouts`` of the parsed timeout flags."""
    return timeouts_of(lambda dest: getattr(args, dest), fields)


def pairs(values: list[str], flag: str) -> dict[str, str]:
    """``NAME=VALUE`` flags as a mapping; a malformed one is a ``UsageError``."""
    out: dict[str, str] = {}
    for value in values:
        name, sep, rest = value.partition("=")
        if not sep or not name or not rest:
            raise UsageError(f"{flag} takes NAME=VALUE, got {value!r}")
        out[name] = rest
    return out


def numbers(values: dict[str, str], flag: str) -> dict[str, int]:
    """The values of ``NAME=N`` flags as positive whole numbers."""
    out: dict[str, int] = {}
    for name, value in values.items():
        try:
            out[name] = int(value)
        except ValueError:
            raise UsageError(f"{flag} {name}={value}: not a number") from None
        if out[name] < 1:
            raise UsageError(f"{flag} {name}={value}: must be positive")
    return out


def _endpoints(value: str | None) -> frozenset[str] | None:
    if value is None:
        return None
    return check_endpoints((e.strip() for e in value.split(",") if e.strip()), "--endpoints")


def choice_from(args: argparse.Namespace) -> TargetChoice:
    """The target the flags name (resolved later, by ``gateprobe.engine.embedded.open_target``)."""
    base_url = args.base_url
    if isinstance(base_url, list):  # compare's repeated --base-url: the first is the target
        base_url = base_url[0] if base_url else None
    return TargetChoice(
        target=args.target, targets_file=Path(args.targets), base_url=base_url,
        profile=args.profile, api_key_env=args.api_key_env,
        no_permission_key_env=getattr(args, "no_permission_key_env", None),
        models=tuple(args.model),
        tier_key_envs=pairs(getattr(args, "tier_key", []), "--tier-key"),
        limits=numbers(pairs(getattr(args, "limit", []), "--limit"), "--limit"),
        window_s=getattr(args, "window_s", None),
        endpoints=_endpoints(args.endpoints),
        rate_algorithm=getattr(args, "rate_algorithm", None),
        rate_headers=getattr(args, "rate_headers", None),
        timeouts=timeouts_from(args) if hasattr(args, "timeout_total_s") else Timeouts())


_UNITS = {"s": 1.0, "m": 60.0, "h": 3600.0}


def seconds(text: str) -> float:
    """A length of time as people write it: ``90``, ``90s``, ``5m``, ``2h``, ``1.5h``."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d*)?|\.\d+)\s*([smh]?)\s*", text)
    if not match:
        raise argparse.ArgumentTypeError(f"{text!r} is not a time (e.g. 90, 90s, 5m, 2h)")
    return float(match.group(1)) * _UNITS[match.group(2) or "s"]


def fuzz_phases(text: str) -> tuple[str, ...]:
    """``--fuzz-phases examples,fuzzing``: schemathesis's phases, in its order."""
    from gateprobe.engine.fuzz_guard import parse_phases

    try:
        return parse_phases(text, "--fuzz-phases")
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc).removeprefix("--fuzz-phases: ")) from None
