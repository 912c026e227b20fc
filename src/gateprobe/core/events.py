"""Typed events a run emits, and the phases they carry; reporters are handlers of them.

A command (run, gate, compare) emits ``RunStarted``, then ``PhaseStarted``/``PhaseFinished``
for each phase, then ``RunFinished``. Handlers (the console's progress and summary, the report
folder's writers) consume them and nothing else: JSON exists only inside the writers.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from gateprobe.core.findings import Finding

PASSED, FAILED, SKIPPED, ERROR = "passed", "failed", "skipped", "error"


@dataclass(slots=True)
class Phase:
    """One part of a run: the conformance suite, a load scenario, a mirror of a comparison."""

    name: str
    status: str
    reason: str = ""
    dir: str = ""
    """Its folder inside the run folder ('' when it wrote into the run folder itself)."""
    data: dict[str, Any] = field(default_factory=dict)
    findings: list[Finding] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        """JSON form (findings are listed once, at the top of the summary)."""
        return {"name": self.name, "status": self.status, "reason": self.reason,
                "dir": self.dir, "data": self.data}


@dataclass(frozen=True, slots=True)
class RunStarted:
    command: str
    target: Mapping[str, str]
    """``Target.describe()``: name, base URL, profile."""
    run_dir: str
    phases: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class PhaseStarted:
    index: int
    total: int
    title: str


@dataclass(frozen=True, slots=True)
class PhaseFinished:
    index: int
    total: int
    phase: Phase


@dataclass(frozen=True, slots=True)
class RunFinished:
    command: str
    target: Mapping[str, str]
    phases: Sequence[Phase]
    started: str
    """UTC ISO 8601."""
    finished: str
    duration_s: float
    exit_code: int
    extra: Mapping[str, Any] = field(default_factory=dict)
    """Command-specific additions to the summary (compare's matrix, the gate's decisions)."""

    @property
    def findings(self) -> list[Finding]:
        """Every phase's findings, in phase order."""
        return [f for p in self.phases for f in p.findings]


Event = RunStarted | PhaseStarted | PhaseFinished | RunFinished
Handler = Callable[[Event], None]


def emit(handlers: Iterable[Handler], event: Event) -> None:
    """Hand ``event`` to every handler, in order."""
    for handler in handlers:
        handler(event)


def exit_code_of(phases: Sequence[Phase]) -> int:
    """0 when every phase passed or was skipped, else 1."""
    return 0 if all(p.status in (PASSED, SKIPPED) for p in phases) else 1
