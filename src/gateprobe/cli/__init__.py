"""The ``gateprobe`` command: flags in, typed options to the library, an exit code out.

Each subcommand lives in its own module here with its argparse table and a ``command`` that
turns flags into options, calls one entry point of the library and maps its result to an exit
code. ``GateprobeError`` is caught here and only here: one line on stderr, its exit code, no
traceback.

Exit codes: 0 pass, 1 findings (the target failed a check), 2 usage or configuration error,
3 target unreachable, 4 a load run cut short by the target's rate limit (no verdict), 130
interrupted.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence

from gateprobe import __version__
from gateprobe.cli import compare, conformance, discover, gate, load, run, serve
from gateprobe.cli._flags import Parser
from gateprobe.console import Console
from gateprobe.errors import GateprobeError

COMMANDS: dict[str, Callable[[argparse.Namespace, Console], int]] = {
    "serve": serve.command, "conformance": conformance.command, "load": load.command,
    "compare": compare.command, "gate": gate.command, "run": run.command,
    "discover": discover.command,
}


def build_parser() -> argparse.ArgumentParser:
    """The full command-line grammar."""
    parser = Parser(prog="gateprobe", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"gateprobe {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=Parser)
    for module in (serve, conformance, load, compare, gate, run, discover):
        module.add_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None, console: Console | None = None) -> int:
    """Entry point of the console script; returns the exit code."""
    console = console or Console()
    try:
        args = build_parser().parse_args(argv)
        return COMMANDS[args.command](args, console)
    except GateprobeError as exc:
        console.error(str(exc))
        return exc.exit_code
    except KeyboardInterrupt:
        console.error("interrupted")
        return 130


def entrypoint() -> None:
    """Console-script wrapper."""
    sys.exit(main())
