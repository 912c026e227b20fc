"""``gateprobe gate --config gate.yaml``: the CI entry point (see ``gateprobe.commands.gate``)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from gateprobe.cli._help import Help, command_parser
from gateprobe.commands.gate import dry_run, load_config, run_gate
from gateprobe.core.console import Console

HELP = Help(
    "the CI entry point: run the suites of a gate file and decide (allow-list, baseline)",
    "Run the suites a gate file names against its target and decide: every finding not on "
    "the allow-list fails the gate, or, with a baseline (an earlier summary.json), only "
    "regressions do. Writes the report folder with the decisions in summary.md and points "
    "reports/latest at it.",
    ("gate --config gate.yaml",
     "gate --config gate.yaml --dry-run             # what would be sent, nothing sent",
     "gate --config gate.yaml --report-dir gateprobe-report"),
    (0, 1, 2, 3, 130))
"""The command's help text."""


def add_parser(sub: Any) -> None:
    """The ``gate`` command's flags."""
    gate = command_parser(sub, "gate", HELP)
    gate.add_argument("--config", required=True, metavar="FILE", help="the gate file (YAML)")
    gate.add_argument("--dry-run", action="store_true",
                      help="print what would be sent, send nothing")
    gate.add_argument("--report-dir", metavar="DIR", help="instead of reports/<time>-gate/")
    gate.add_argument("-v", "--verbose", action="store_true",
                      help="show pytest's own output of the conformance phase (always in "
                           "the run folder's pytest.log)")


def command(args: argparse.Namespace, console: Console) -> int:
    """Run the gate (or describe it, ``--dry-run``); its exit code."""
    config = load_config(Path(args.config))
    if args.dry_run:
        return dry_run(config, console)
    report_dir = Path(args.report_dir) if args.report_dir else None
    return run_gate(config, console, report_dir, verbose=args.verbose).exit_code
