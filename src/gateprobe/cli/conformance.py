"""``gateprobe conformance``: the conformance suite against a gateway.

Exit codes: 0 every check passed, 1 findings, 2 usage or configuration error (including a
selection that matches no test), 3 target unreachable.
"""

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
from gateprobe.commands.conformance_runner import ConformanceOptions, dry_run, run_conformance
from gateprobe.core.console import Console
from gateprobe.engine.embedded import Embedded, open_target

EMBEDDED = Embedded(ttft_ms=5, itl_ms=1)
"""A fast schedule: conformance is about shapes, not latency."""


HELP = Help(
    "run the conformance suite against a gateway (default: the embedded reference gateway)",
    "Run the conformance suite (endpoints, streams, errors, auth, legacy prompts, goldens, "
    "fuzzing) against a gateway, judged by every registered check. Only the endpoints the "
    "target serves are probed. Writes junit.xml, allure-results/ and conformance.json into "
    "the report folder.",
    ("conformance                                      # the embedded reference gateway",
     "conformance --target staging --select 'stream or errors'",
     "conformance --base-url http://127.0.0.1:8080 --profile openai --dry-run"),
    (0, 1, 2, 3, 130))
"""The command's help text."""


def add_parser(sub: Any) -> None:
    """The ``conformance`` command's flags."""
    conf = command_parser(sub, "conformance", HELP)
    add_target_flags(conf, no_permission=True)
    add_selection_flags(conf)
    conf.add_argument("--record-golden", action="store_true",
                      help="record the golden answers from this trusted target (into "
                           "fixtures/golden) instead of comparing")
    conf.add_argument("--fuzz-examples", "--max-examples", dest="max_examples", type=int,
                      metavar="N", help="fuzz: examples per operation, its depth (20 on "
                                        "loopback, 5 elsewhere)")
    conf.add_argument("--fuzz-seed", type=int, metavar="N",
                      help="fuzz: generate from this seed (every run prints the one it used; "
                           "the same seed sends the same cases again; "
                           "GATEPROBE_FUZZ_SEED pins it for every run)")
    conf.add_argument("--fuzz-phases", type=fuzz_phases, metavar="LIST",
                      help="fuzz: schemathesis's phases, comma-separated, of examples, "
                           "coverage, fuzzing (every one on loopback, all but coverage "
                           "elsewhere; GATEPROBE_FUZZ_PHASES sets it for every run)")
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
    conf.add_argument("-v", "--verbose", action="store_true",
                      help="show pytest's own output, one line per test (always in pytest.log: "
                           "in --report-dir, else a temporary file the run names)")
    conf.add_argument("--max-generated-tokens", type=int, metavar="N",
                      help="stop sending once the run's requests have asked for N tokens in "
                           "all (each counts its max_tokens); the run then fails")
    conf.add_argument("--budget-s", type=float, default=900.0, metavar="S",
                      help="the whole run's budget: once spent, the rest is skipped and the "
                           "run fails (900)")


def options_from(args: argparse.Namespace) -> ConformanceOptions:
    """The run's options from its flags (checked)."""
    return ConformanceOptions(
        select=args.select, record_golden=args.record_golden,
        golden_dir=Path(args.golden_dir) if args.golden_dir else None,
        max_examples=args.max_examples, fuzz_seed=args.fuzz_seed, fuzz_phases=args.fuzz_phases,
        fuzz_max_tokens=args.fuzz_max_tokens,
        fuzz_max_requests=args.fuzz_max_requests, budget_s=args.budget_s,
        report_dir=Path(args.report_dir) if args.report_dir else None,
        junit=Path(args.junit) if args.junit else None, verbose=args.verbose,
        checks=tuple(args.checks), max_generated_tokens=args.max_generated_tokens).check()


def command(args: argparse.Namespace, console: Console) -> int:
    """Run the suite (or describe it, ``--dry-run``); its exit code."""
    options = options_from(args)
    with open_target(choice_from(args), EMBEDDED, console, dry_run=args.dry_run,
                     preflight=True) as target:
        if args.dry_run:
            return dry_run(target, options, console)
        return run_conformance(target, options, console).exit_code
