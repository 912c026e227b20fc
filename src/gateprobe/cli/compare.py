"""``gateprobe compare``: the same probes against every mirror, side by side.

Exit codes: 0 every mirror passed, 1 a mirror failed a check or was unreachable, 2 usage or
configuration error, 3 no mirror reachable.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from gateprobe.cli._flags import add_target_flags, choice_from
from gateprobe.cli._help import Help, command_parser
from gateprobe.commands.compare import (
    CompareOptions,
    check_reference,
    dry_run,
    mirror_names,
    run_compare,
)
from gateprobe.core.console import Console
from gateprobe.core.errors import UsageError
from gateprobe.core.targets import Target, check_base_url, resolve_target

HELP = Help(
    "the same probes against every mirror, side by side",
    "Probe every mirror of a gateway at once: every endpoint the target serves (its cases, a "
    "stream per streaming endpoint, a bad key, an unknown model), a latency sample and a "
    "long-request probe. Prints the verdict matrix, the latencies and what the mirrors "
    "disagree on with each mirror's answer and a curl to replay it; --reference names the "
    "mirror taken as right (otherwise a strict majority is, when there is one).",
    ("compare --target ohmygpt                     # every mirror of the target",
     "compare --base-url https://a.example --base-url https://b.example --reference a.example"
     "   # (real gateway)",
     "compare --target ohmygpt --dry-run           # what would be sent"),
    (0, 1, 2, 3, 130))
"""The command's help text."""


def add_parser(sub: Any) -> None:
    """The ``compare`` command's flags."""
    comp = command_parser(sub, "compare", HELP)
    add_target_flags(comp, several_urls=True,
                     title="mirrors (a target with mirrors, or --base-url at least twice)")
    comp.add_argument("--reference", metavar="NAME",
                      help="the mirror taken as right in the differences (default: the "
                           "majority)")
    comp.add_argument("--samples", type=int, default=10, help="streams per mirror (10)")
    comp.add_argument("--long-request-s", type=float, default=120.0, metavar="S",
                      help="how long the long-request probe asks to run (120: past a 100 s "
                           "CDN limit; 0 skips it)")
    comp.add_argument("--dry-run", action="store_true",
                      help="print what would be sent, send nothing")
    comp.add_argument("--report-dir", metavar="DIR", help="instead of reports/<time>-compare/")


def options_from(args: argparse.Namespace) -> CompareOptions:
    """The comparison's options from its flags (checked)."""
    return CompareOptions(samples=args.samples, long_request_s=args.long_request_s,
                          report_dir=Path(args.report_dir) if args.report_dir else None,
                          reference=args.reference).check()


def mirrors_from(args: argparse.Namespace) -> tuple[Target, dict[str, str]]:
    """The target whose settings every mirror is probed with, and the mirrors (name -> URL):
    a target's ``mirrors:`` section, or every ``--base-url`` (at least two)."""
    choice = choice_from(args)
    if args.target:
        base = resolve_target(choice, read_keys=not args.dry_run)
        mirrors = {name: check_base_url(url) for name, url in base.mirrors.items()}
        if not mirrors:
            raise UsageError(f"target {args.target!r} has no mirrors: add a mirrors: section "
                             "or give --base-url several times")
        return base, mirrors
    if len(args.base_url) >= 2:
        urls = [check_base_url(url) for url in args.base_url]
        return resolve_target(choice, read_keys=not args.dry_run), mirror_names(urls)
    raise UsageError("compare needs --target NAME (with mirrors) or --base-url at least twice")


def command(args: argparse.Namespace, console: Console) -> int:
    """Compare the mirrors (or describe what would be sent, ``--dry-run``); the exit code.
    An unreachable mirror is a row of the comparison, not an error."""
    options = options_from(args)
    base, mirrors = mirrors_from(args)
    check_reference(options.reference, mirrors)
    if args.dry_run:
        return dry_run(base, mirrors, options, console)
    return run_compare(base, mirrors, options, console).exit_code
