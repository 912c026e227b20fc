"""The one place gateprobe writes to the terminal.

Library code returns data; commands hand it to a ``Console``. Tests capture a console into a
buffer instead of patching ``print``.

A run's progress goes through ``Console.progress``: on a terminal an animated ``rich`` line that
redraws in place; anywhere else (CI logs, pipes, tests) a plain line now and then, because a log
full of redrawn frames is unreadable.
"""

from __future__ import annotations

import os
import shutil
import sys
import textwrap
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any, Protocol, TextIO


class OutputClosed(Exception):
    """Standard output was closed by its reader (``gateprobe ... | head``): nothing more can
    be written there. The CLI ends the command quietly (``errors.OUTPUT_CLOSED_EXIT``)."""


class Progress(Protocol):
    """Where a run reports how far it got (``Console.progress`` gives one)."""

    def update(self, phase: str, done: float, total: float | None, detail: str = "") -> None:
        """``done`` of ``total`` units in ``phase``; ``detail`` says what was seen so far."""


def clock_text(seconds: float) -> str:
    """``m:ss`` (``h:mm:ss`` past an hour): short enough for a progress line."""
    whole = max(0, round(seconds))
    hours, rest = divmod(whole, 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}" if hours else f"{rest // 60}:{rest % 60:02d}"


PROJECT_AFTER = 0.1
"""The share of the units done before a progress line projects the whole time: the first
ones carry the start-up (imports, collection), and 3 of 292 tests in 10 s read "of ~16:22"
for a run of a minute."""


def progress_text(phase: str, done: float, total: float | None, unit: str, elapsed_s: float,
                  detail: str) -> str:
    """One progress line: phase, counts, elapsed and expected time, and what was seen."""
    count = f"{done:g}/{total:g} {unit}" if total else f"{done:g} {unit}"
    parts = [f"{phase}:", count]
    if unit != "s":  # a load run counts seconds already; its expected time is its duration
        expected = elapsed_s * total / done if total and done >= PROJECT_AFTER * total else None
        parts.append(clock_text(elapsed_s) + (f" of ~{clock_text(expected)}"
                                              if expected is not None else ""))
    return "  ".join([*parts, detail] if detail else parts)


class PlainProgress:
    """Progress as plain lines, at most one every ``every_s`` seconds, and less often as the run
    grows long (every quarter of the time elapsed so far): a short run prints none, a long one
    a few dozen at most."""

    def __init__(self, console: Console, unit: str, every_s: float,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.console, self.unit, self.every_s, self.clock = console, unit, every_s, clock
        self.t0 = clock()
        self.last = self.t0

    def update(self, phase: str, done: float, total: float | None, detail: str = "") -> None:
        """Print the state if it is time to."""
        now = self.clock()
        if now - self.last < max(self.every_s, (now - self.t0) / 4):
            return
        self.last = now
        self.console.line("  " + progress_text(phase, done, total, self.unit, now - self.t0,
                                               detail))


class RichProgress:
    """Progress as one ``rich`` line redrawn in place (a terminal only)."""

    def __init__(self, bar: Any, unit: str, clock: Callable[[], float] = time.monotonic) -> None:
        self.bar, self.unit, self.clock = bar, unit, clock
        self.t0 = clock()
        self.task = bar.add_task("starting", total=None, line="")

    def update(self, phase: str, done: float, total: float | None, detail: str = "") -> None:
        """Redraw with the new state (the bar animates between updates by itself)."""
        line = progress_text(phase, done, total, self.unit, self.clock() - self.t0, detail)
        self.bar.update(self.task, completed=done, total=total, line=line)


class Console:
    """Writes user-facing lines: results to ``out``, diagnostics to ``err``."""

    def __init__(self, out: TextIO | None = None, err: TextIO | None = None) -> None:
        self.out = out or sys.stdout
        self.err = err or sys.stderr

    @property
    def is_terminal(self) -> bool:
        """Whether ``out`` is an interactive terminal (animations only there)."""
        isatty = getattr(self.out, "isatty", None)
        return bool(isatty and isatty())

    @property
    def width(self) -> int:
        """Columns to fit lines in: the terminal's, or 120 for logs (CI pages are wide)."""
        return shutil.get_terminal_size((100, 24)).columns if self.is_terminal else 120

    def line(self, text: str = "") -> None:
        """A line of normal output (``OutputClosed`` once its reader has gone)."""
        try:
            self.out.write(text + "\n")
            self.out.flush()
        except BrokenPipeError as exc:
            raise OutputClosed from exc

    def error(self, text: str) -> None:
        """A one-line diagnostic on standard error."""
        self.err.write(f"gateprobe: {text}\n")
        self.err.flush()

    def table(self, header: Sequence[str], rows: Sequence[Sequence[str]],
              max_width: int | None = None) -> None:
        """A plain-text table with columns padded to fit (readable in CI logs and terminals).

        With ``max_width``, the last column wraps so that no line is longer (a listing read
        in an 80- or 100-column terminal); the other columns keep their full width."""
        widths = [len(h) for h in header]
        for row in rows:
            widths = [max(w, len(c)) for w, c in zip(widths, row, strict=True)]
        if max_width is not None:
            indent = sum(widths[:-1]) + 2 * (len(widths) - 1)
            widths[-1] = min(widths[-1], max(20, max_width - indent))
        self.line("  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)).rstrip())
        self.line("  ".join("-" * w for w in widths))
        for row in rows:
            head = "".join(c.ljust(w) + "  " for c, w in zip(row[:-1], widths, strict=False))
            last = [row[-1]] if max_width is None else \
                textwrap.wrap(row[-1], widths[-1], break_on_hyphens=False) or [""]
            self.line((head + last[0]).rstrip())
            for more in last[1:]:
                self.line(" " * len(head) + more)

    @contextmanager
    def progress(self, unit: str, every_s: float = 10.0) -> Iterator[Progress]:
        """A progress display for the block: animated on a terminal, plain lines elsewhere.

        The animation writes to its own copy of the terminal's file descriptor: pytest captures
        descriptor 1 while a test runs, and the redraws must not end up in a test's output."""
        fd = self._terminal_fd()
        if fd is None:
            yield PlainProgress(self, unit, every_s)
            return
        from rich.console import Console as RichConsole
        from rich.progress import BarColumn, TextColumn
        from rich.progress import Progress as RichBar

        with os.fdopen(os.dup(fd), "w", encoding="utf-8") as terminal:
            bar = RichBar(BarColumn(bar_width=20), TextColumn("{task.fields[line]}"),
                          console=RichConsole(file=terminal, force_terminal=True),
                          transient=True, refresh_per_second=4,
                          redirect_stdout=False, redirect_stderr=False)
            with bar:
                yield RichProgress(bar, unit)

    def _terminal_fd(self) -> int | None:
        """The descriptor of ``out`` when it is a terminal (None: plain lines)."""
        if not self.is_terminal:
            return None
        try:
            return self.out.fileno()
        except (AttributeError, OSError, ValueError):
            return None
