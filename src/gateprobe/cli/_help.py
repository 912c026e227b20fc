"""Each subcommand's ``--help``: a description, examples and its exit codes.

The exit codes come from ``gateprobe.core.errors.EXIT_CODES``, the one table of them, so a help
text cannot drift from what the command returns; the examples are parsed by a test, so none
names a flag that does not exist.
"""

from __future__ import annotations

import argparse
import textwrap
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from gateprobe.core.errors import EXIT_CODES


@dataclass(frozen=True, slots=True)
class Help:
    """What a subcommand's help says beyond its flags."""

    summary: str
    """One line, in the top-level command list."""
    description: str
    """What the command does and what it writes."""
    examples: tuple[str, ...]
    """Command lines (without the leading ``gateprobe``), each with a ``#`` comment."""
    exits: tuple[int, ...]
    """The exit codes this command can return, each a key of ``EXIT_CODES``."""


def exit_codes_text(codes: Sequence[int]) -> str:
    """The exit-code lines of a help epilog (markdown backticks dropped, wrapped)."""
    lines = ["exit codes:"]
    for code in codes:
        meaning = EXIT_CODES[code].replace("`", "")
        lines += textwrap.wrap(meaning, 74, initial_indent=f"  {code:<5}",
                               subsequent_indent=" " * 7)
    return "\n".join(lines)


def epilog(help_: Help) -> str:
    """Examples, then exit codes."""
    examples = ["examples:", *(f"  gateprobe {line}" for line in help_.examples)]
    return "\n".join(examples) + "\n\n" + exit_codes_text(help_.exits)


def command_parser(sub: Any, name: str, help_: Help) -> argparse.ArgumentParser:
    """The subcommand's parser, its help text complete."""
    parser: argparse.ArgumentParser = sub.add_parser(
        name, help=help_.summary, description=textwrap.fill(help_.description, 79),
        epilog=epilog(help_), formatter_class=argparse.RawDescriptionHelpFormatter)
    return parser


def example_argvs(help_: Help) -> list[list[str]]:
    """The examples as argument lists (comments dropped), for the test that parses them."""
    import shlex

    return [shlex.split(line, comments=True) for line in help_.examples]
