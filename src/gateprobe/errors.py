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


RATE_LIMITED_EXIT = 4
"""Exit code of a load run the target's rate limit cut short of a verdict: not a finding about
the gateway (it limited as a gateway may), not a mistake of the user's."""
