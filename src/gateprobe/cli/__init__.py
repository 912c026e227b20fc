"""The ``gateprobe`` command: flags in, typed options to the library, an exit code out.

Each subcommand lives in its own module here with its argparse table and a ``command`` that
turns flags into options, calls one entry point of the library and maps its result to an exit
code. ``GateprobeError`` is caught here and only here: one line on stderr, its exit code, no
traceback.

Exit codes: ``gateprobe.core.errors.EXIT_CODES`` (rendered into every ``--help``).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import sys
import textwrap
import threading
from collections.abc import Callable, Iterator, Sequence
from types import FrameType
from typing import Any

from gateprobe import __version__
from gateprobe.cli import compare, conformance, discover, gate, load, run, serve
from gateprobe.cli._flags import Parser
from gateprobe.cli._help import Help, epilog
from gateprobe.core.console import Console, OutputClosed
from gateprobe.core.errors import (
    EXIT_CODES,
    INTERRUPT,
    INTERRUPTED_EXIT,
    OUTPUT_CLOSED_EXIT,
    GateprobeError,
)

COMMANDS: dict[str, Callable[[argparse.Namespace, Console], int]] = {
    "serve": serve.command, "conformance": conformance.command, "load": load.command,
    "compare": compare.command, "gate": gate.command, "run": run.command,
    "discover": discover.command,
}


DESCRIPTION = (
    "Protocol conformance and load testing for LLM API gateways (OpenAI- and "
    "Anthropic-compatible HTTP APIs): does every endpoint still speak the protocol, do the "
    "golden answers still match, do the tier limits hold, is streaming fast enough? Without a "
    "target, every command runs against the embedded reference gateway.")
"""What the top-level ``--help`` says first (not this module's docstring: that is for us)."""

EXAMPLES = (
    "run                                   # everything, against the embedded gateway",
    "run --target staging                  # a target of targets.yaml",
    "gate --config gate.yaml               # the CI entry point",
    "compare --target ohmygpt              # every mirror, side by side",
    "conformance --help                    # a command's flags, examples, exit codes",
)
"""The top-level help's examples."""


def build_parser() -> argparse.ArgumentParser:
    """The full command-line grammar."""
    parser = Parser(prog="gateprobe", description=textwrap.fill(DESCRIPTION, 79),
                    epilog=epilog(Help("", "", EXAMPLES, tuple(EXIT_CODES))),
                    formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"gateprobe {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=Parser,
                                metavar="COMMAND", title="commands")
    for module in (serve, conformance, load, compare, gate, run, discover):
        module.add_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None, console: Console | None = None) -> int:
    """Entry point of the console script; returns the exit code."""
    console = console or Console()
    INTERRUPT.clear()
    try:
        args = build_parser().parse_args(argv)
        with _remembering_interrupts():
            return COMMANDS[args.command](args, console)
    except GateprobeError as exc:
        for line in str(exc).splitlines() or [type(exc).__name__]:
            console.error(line)  # a file with three mistakes: three lines, each prefixed
        return exc.exit_code
    except KeyboardInterrupt:
        console.error("interrupted")
        return INTERRUPTED_EXIT
    except OutputClosed:
        _discard_output(console)
        return OUTPUT_CLOSED_EXIT
    finally:
        INTERRUPT.clear()  # handled here: a later run in this process starts without it


def _discard_output(console: Console) -> None:
    """Point the closed output's descriptor at /dev/null, so that Python's own flush at exit
    finds no broken pipe either (it would print "Exception ignored ... BrokenPipeError")."""
    try:
        fd = console.out.fileno()
    except (AttributeError, OSError, ValueError):
        return  # not a file (a test's buffer): nothing is flushed at exit
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, fd)
    os.close(devnull)


def _on_sigint(signum: int, frame: FrameType | None) -> None:
    INTERRUPT.set()  # kept even where Python drops the exception (see errors.INTERRUPT)
    raise KeyboardInterrupt


@contextlib.contextmanager
def _remembering_interrupts() -> Iterator[None]:
    """Ctrl-C raises ``KeyboardInterrupt`` as usual and also sets ``INTERRUPT``, in the main
    thread of a process that has Python's default handler (one that ignores SIGINT keeps
    ignoring it)."""
    if threading.current_thread() is not threading.main_thread() or \
            signal.getsignal(signal.SIGINT) is not signal.default_int_handler:
        yield
        return
    signal.signal(signal.SIGINT, _on_sigint)
    previous_hook = sys.unraisablehook
    sys.unraisablehook = _unraisable
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, signal.default_int_handler)
        sys.unraisablehook = previous_hook


def _unraisable(unraisable: Any) -> None:
    """A Ctrl-C that Python cannot raise (it landed in a garbage-collector callback, as in
    hypothesis's) is remembered in ``INTERRUPT`` and printed nowhere: the user sees the one
    "interrupted" line, not Python's "Exception ignored in" traceback."""
    if isinstance(unraisable.exc_value, KeyboardInterrupt):
        INTERRUPT.set()
        return
    sys.__unraisablehook__(unraisable)


def entrypoint() -> None:
    """Console-script wrapper."""
    sys.exit(main())
