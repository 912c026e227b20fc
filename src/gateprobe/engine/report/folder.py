"""The handlers that turn a run's events into what people read: the report folder's files and
the console's progress and closing table."""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from gateprobe.core.console import Console
from gateprobe.core.errors import INTERRUPTED_EXIT, SATURATED_EXIT
from gateprobe.core.events import (
    Event,
    Handler,
    Phase,
    PhaseFinished,
    PhaseStarted,
    RunFinished,
    emit,
)
from gateprobe.core.redact import Redactor, redact_tree
from gateprobe.engine.report import allure_results
from gateprobe.engine.report import html as report_html
from gateprobe.engine.report import summary as report_summary


class ReportFolder:
    """Writes summary.json, summary.md, report.html and the merged junit.xml when the run
    finishes, then masks every key in the folder (whatever wrote it)."""

    def __init__(self, run_dir: Path, redactor: Redactor) -> None:
        self.run_dir = run_dir
        self.redactor = redactor

    def __call__(self, event: Event) -> None:
        if not isinstance(event, RunFinished):
            return
        summary = report_summary.build(event.command, event.target, event.phases,
                                       event.started, event.finished, event.duration_s,
                                       event.exit_code, event.extra)
        report_summary.write_json(self.run_dir, summary)
        (self.run_dir / "summary.md").write_text(report_summary.markdown(summary),
                                                 encoding="utf-8")
        # The files the page links to first: it links only those that exist.
        report_summary.merge_junit(self.run_dir, event.phases)
        allure_results.write_phases(self.run_dir / "allure-results", event.phases)
        (self.run_dir / "report.html").write_text(report_html.render(summary, self.run_dir),
                                                  encoding="utf-8")
        redact_tree(self.run_dir, self.redactor)


class ConsoleProgress:
    """A line before and after each phase; at the end, the phase table and the verdict."""

    def __init__(self, console: Console, report: Path | None = None) -> None:
        self.console = console
        self.report = report

    def __call__(self, event: Event) -> None:
        if isinstance(event, PhaseStarted):
            self.console.line(f"[{event.index}/{event.total}] {event.title} ...")
        elif isinstance(event, PhaseFinished):
            phase = event.phase
            self.console.line(f"[{event.index}/{event.total}] {phase.name}: {phase.status}"
                              + (f" ({phase.reason})" if phase.reason else ""))
        elif isinstance(event, RunFinished):
            self.console.line("")
            self.console.table(["phase", "result", "details"],
                               [[p.name, p.status, p.reason] for p in event.phases])
            where = f": report in {self.report}" if self.report else ""
            verdict = "PASS" if event.exit_code == 0 else "INTERRUPTED: the phases that " \
                "finished" if event.exit_code == INTERRUPTED_EXIT else "NO VERDICT (the load " \
                "generator saturated)" if event.exit_code == SATURATED_EXIT else "FAIL"
            self.console.line(f"{verdict}{where}")


def utc_now() -> str:
    """A timestamp for the summary."""
    return datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def handlers_for(run_dir: Path, redactor: Redactor, console: Console) -> list[Handler]:
    """The usual handlers of a command that writes a report folder: the folder first, then
    the console (which points at the report the folder wrote)."""
    return [ReportFolder(run_dir, redactor), ConsoleProgress(console, run_dir / "report.html")]


def finish(command: str, target: Mapping[str, str], phases: Sequence[Phase], started: str,
           t0: float, exit_code: int, handlers: Sequence[Handler],
           extra: Mapping[str, Any] | None = None) -> int:
    """Emit the run's ``RunFinished`` (``t0``: its ``time.monotonic()`` start); return
    ``exit_code``."""
    emit(handlers, RunFinished(command, target, tuple(phases), started, utc_now(),
                               time.monotonic() - t0, exit_code, dict(extra or {})))
    return exit_code
