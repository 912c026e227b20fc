"""The one place gateprobe writes to the terminal.

Library code returns data; commands hand it to a ``Console``. Tests capture a console into a
buffer instead of patching ``print``.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import TextIO


class Console:
    """Writes user-facing lines: results to ``out``, diagnostics to ``err``."""

    def __init__(self, out: TextIO | None = None, err: TextIO | None = None) -> None:
        self.out = out or sys.stdout
        self.err = err or sys.stderr

    def line(self, text: str = "") -> None:
        """A line of normal output."""
        self.out.write(text + "\n")
        self.out.flush()

    def error(self, text: str) -> None:
        """A one-line diagnostic on standard error."""
        self.err.write(f"gateprobe: {text}\n")
        self.err.flush()

    def table(self, header: Sequence[str], rows: Sequence[Sequence[str]]) -> None:
        """A plain-text table with columns padded to fit (readable in CI logs and terminals)."""
        widths = [len(h) for h in header]
        for row in rows:
            widths = [max(w, len(c)) for w, c in zip(widths, row, strict=True)]
        self.line("  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)).rstrip())
        self.line("  ".join("-" * w for w in widths))
        for row in rows:
            self.line("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())
