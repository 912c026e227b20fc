"""``gateprobe run``: conformance, a short rate-limit and a short latency run, the report."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from gateprobe.cli._flags import (
    add_selection_flags,
    add_target_flags,
    choice_from,
    fuzz_phases,
)
from gateprobe.cli._help import Help, command_parser
from gateprobe.commands.pipeline import EMBEDDED, SUITES, RunOptions, dry_run, run
from gateprobe.core.console import Console
from gateprobe.engine.embedded import Embedded, open_target
from gateprobe.engine.smoke import result_rows, run_smoke, summary_json
from gateprobe.engine.user_checks import load_check_modules

HELP = Help(
    "conformance, a short rate-limit and a short latency run, and the report (default: the "
    "embedded gateway)",
    "The everyday run: the conformance suite, a short rate-limit run and a short latency run "
    "against a gateway (the embedded reference gateway unless a target is named), a line per "
    "phase, a summary table, and the report folder reports/<time>-run/ with reports/latest "
    "pointing at it.",
    ("run                                           # the embedded gateway",
     "run --target staging --suites conformance --select stream",
     "run --smoke                                   # every endpoint once, no report"),
    (0, 1, 2, 3, 4, 130))
"""The command's help text."""


def add_parser(sub: Any) -> None:
    """The ``run`` command's flags."""
    parser = command_parser(sub, "run", HELP)
    add_target_flags(parser)
    parser.add_argument("--suites", default=",".join(SUITES),
                        help="comma-separated: conformance, rate-limits, latency (all), "
                             "tasks (Midjourney, only when named)")
    add_selection_flags(parser)
    parser.add_argument("--slo", metavar="FILE",
                        help="the load phases' objectives (default: load/slo.yaml, its "
                             "embedded section against the embedded gateway)")
    parser.add_argument("--max-generated-tokens", type=int, metavar="N",
                        help="the conformance phase stops sending once its requests have "
                             "asked for N tokens in all")
    parser.add_argument("--fuzz-seed", type=int, metavar="N",
                        help="the conformance phase's fuzz seed (each run prints the one it "
                             "used: the same seed sends the same cases again; "
                             "GATEPROBE_FUZZ_SEED pins it for every run)")
    parser.add_argument("--fuzz-phases", type=fuzz_phases, metavar="LIST",
                        help="the conformance phase's fuzz phases, comma-separated, of "
                             "examples, coverage, fuzzing (default: every one on loopback; "
                             "GATEPROBE_FUZZ_PHASES sets it for every run)")
    parser.add_argument("--dry-run", action="store_true",
                        help="print what would be sent, send nothing")
    parser.add_argument("--report-dir", metavar="DIR", help="instead of reports/<time>-run/")
    parser.add_argument("--smoke", action="store_true",
                        help="only a quick smoke probe of every endpoint, no report folder")
    parser.add_argument("--json", action="store_true", help="--smoke: print results as JSON")
    parser.add_argument("-v", "--verbose", action="store_true",
                        help="show pytest's own output of the conformance phase (always in "
                             "the run folder's pytest.log)")


def command(args: argparse.Namespace, console: Console) -> int:
    """Run the phases (or the smoke probe, or describe them); the exit code."""
    if args.smoke:
        return _smoke(args, console)
    options = RunOptions(suites=tuple(s.strip() for s in args.suites.split(",") if s.strip()),
                         select=args.select, checks=tuple(args.checks),
                         slo=Path(args.slo) if args.slo else None,
                         max_generated_tokens=args.max_generated_tokens, verbose=args.verbose,
                         fuzz_seed=args.fuzz_seed, fuzz_phases=args.fuzz_phases,
                         report_dir=Path(args.report_dir) if args.report_dir else None).check()
    load_check_modules(options.checks)  # a module that does not import: said before anything
    with open_target(choice_from(args), EMBEDDED, console, dry_run=args.dry_run,
                     preflight=True) as target:
        if args.dry_run:
            return dry_run(target, options, console)
        return run(target, options, console).exit_code


def _smoke(args: argparse.Namespace, console: Console) -> int:
    with open_target(choice_from(args), Embedded()) as target:
        results = run_smoke(target)
    if args.json:
        console.line(summary_json(results))
    else:
        where = f"embedded reference gateway at {target.base_url}" if target.embedded \
            else target.base_url
        console.line(f"gateprobe run: smoke run of every endpoint ({where})")
        console.table(["case", "endpoint", "status", "time", "verdict"], result_rows(results))
        failed = sum(not r.ok for r in results)
        console.line(f"{len(results) - failed} passed, {failed} failed")
    return 0 if all(r.ok for r in results) else 1
