"""Errors about the user or the tool, never about the gateway.

gateprobe keeps two families of failure apart:

- a *finding* is something wrong with the gateway under test; it is data, reported and counted;
- a ``GateprobeError`` is something wrong with how gateprobe was asked to run (a bad flag, a bad
  config file, a target that cannot be reached). It stops the command with one line and a
  distinct exit code::

    GateprobeError            exit 2
    ├── ConfigError           exit 2   a file or value the user wrote is wrong
    ├── UsageError            exit 2   flags that do not fit together
    └── TargetUnreachable     exit 3   nothing answers at the target's address

``cli.py`` catches ``GateprobeError`` in exactly one place.
"""

from __future__ import annotations

import threading


class GateprobeError(Exception):
    """Root of the errors a user can cause; the message is one line, safe to print."""

    exit_code: int = 2


class ConfigError(GateprobeError):
    """A configuration file or value is invalid; the message names the path and the fix."""

    exit_code = 2


class UsageError(GateprobeError):
    """Command-line arguments that cannot work together."""

    exit_code = 2


class TargetUnreachable(GateprobeError):
    """The target's address refuses connections or does not resolve."""

    exit_code = 3


INCONCLUSIVE_EXIT = 4
"""Exit code of a run that could not tell (the verdict "inconclusive"): not a finding about the
gateway, not a mistake of the user's. A latency run the target's rate limit cut short, a
rate-limit burst that cannot tell the limiter from a looser one or none at this window."""
RATE_LIMITED_EXIT = INCONCLUSIVE_EXIT
"""The first inconclusive outcome (a latency run the target's rate limit cut short); kept as a
name for it."""


SATURATED_EXIT = 5
"""Exit code of a load run whose own generator fell behind (``gateprobe.commands.load.selfcheck``):
its latency numbers carry the generator's delay, so its timing objectives were not judged."""

INTERRUPTED_EXIT = 130
"""Exit code of a command stopped with Ctrl-C (128 + SIGINT, as shells report it)."""

OUTPUT_CLOSED_EXIT = 141
"""Exit code of a command whose standard output its reader closed (``gateprobe ... | head``):
128 + SIGPIPE, as shells report a process that pipe killed; it ends without a word."""

INTERRUPT = threading.Event()
"""Set by the CLI's SIGINT handler. A Ctrl-C that lands in a garbage-collector callback or a
``__del__`` is printed as "unraisable" and dropped by Python; the runners check this flag where
a phase ends, so such a Ctrl-C still stops the command (cleared when a command starts)."""

EXIT_CODES: dict[int, str] = {
    0: "pass",
    1: "the target failed a check (findings)",
    2: "usage or configuration error (one line on stderr per mistake)",
    TargetUnreachable.exit_code: "target unreachable",
    INCONCLUSIVE_EXIT: "inconclusive: the run could not tell, and says why (no finding): a "
                       "latency run cut short by the target's rate limit (more than half its "
                       "requests refused with 429 and no limit declared: declare `api_key_tier` "
                       "and `limits` to pace under it), or a rate-limit burst whose refill "
                       "tolerance is over 10% of a limit it exceeded (send it faster or judge "
                       "strictly with `--rate-algorithm sliding_window`)",
    SATURATED_EXIT: "a load run whose own generator saturated (its scheduling, receive or "
                    "event-loop lag p99 above the bound, 2 ms by default) and that left an "
                    "objective unjudged: one within 3 lags of its limit, or the bare numbers "
                    "of a run with no latency objective (no verdict; spread the users with "
                    "`--processes auto` or workers on more hosts, or run fewer `--users`)",
    INTERRUPTED_EXIT: "interrupted (Ctrl-C): one line on stderr; the phases that finished are "
                      "in the report folder",
    OUTPUT_CLOSED_EXIT: "standard output was closed by its reader (a pipe into `head`, say): "
                        "the command stopped there, without a word",
}
"""Every exit code of the ``gateprobe`` command, defined once: each subcommand's ``--help``
and the README's table are rendered from it (a test compares the README)."""


def exit_codes_markdown() -> str:
    """The README's exit-code table."""
    rows = [f"| {code} | {meaning} |" for code, meaning in EXIT_CODES.items()]
    return "\n".join(["| code | meaning |", "| --- | --- |", *rows])
