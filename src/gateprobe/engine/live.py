"""The live view of a conformance run, and the findings it closes with.

``LiveConformance`` is a pytest plugin object: ``conformance_runner`` registers it next to the
suite, and its hooks turn pytest's progress into ``Console.progress`` updates (the category
being run, tests done of the total, elapsed and expected time, findings so far). pytest's own
report goes to ``pytest.log``; what people read on the terminal is this module's.

``findings_tree`` is the closing view: check → endpoint → cases, each with its count, so that
the same failure on many cases reads as one group, not as a page per test.
"""

from __future__ import annotations

import time
from collections import Counter, defaultdict
from collections.abc import Callable, Sequence
from typing import Any

import pytest

from gateprobe.core.console import Progress
from gateprobe.core.findings import Finding
from gateprobe.engine.cases import MARKERS
from gateprobe.engine.pytest_plugin import FINDINGS_KEY


class LiveConformance:
    """Counts tests and findings as pytest reports them, and shows them on ``progress``."""

    def __init__(self, progress: Progress | None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.progress = progress
        self.clock = clock
        self.t0 = clock()
        self.config: pytest.Config | None = None
        self.total = 0
        self.done = 0
        self.failed: set[str] = set()
        self.phase = "collecting"
        self.phase_of: dict[str, str] = {}

    def pytest_configure(self, config: pytest.Config) -> None:
        """Keep the config: the findings live in its stash."""
        self.config = config

    def pytest_collection_finish(self, session: pytest.Session) -> None:
        """The total, and each test's category (its marker), for the phase shown."""
        self.total = len(session.items)
        for item in session.items:
            names = [m.name for m in item.iter_markers() if m.name in MARKERS]
            self.phase_of[item.nodeid] = names[0] if names else "other"
        self._show()

    def pytest_runtest_logstart(self, nodeid: str, location: Any) -> None:
        """A test starts: its category is the phase."""
        self.phase = self.phase_of.get(nodeid, self.phase)
        self._show()

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        """A result (a fuzzed operation reports several under one test): failures so far."""
        if report.failed:
            self.failed.add(report.nodeid)
        self._show()

    def pytest_runtest_logfinish(self, nodeid: str, location: Any) -> None:
        """A test is done."""
        self.done += 1
        self._show()

    @property
    def findings(self) -> int:
        """Findings recorded so far (the plugin keeps them per endpoint)."""
        if self.config is None:
            return 0
        return sum(len(found) for found in self.config.stash.get(FINDINGS_KEY, {}).values())

    def _show(self) -> None:
        if self.progress is None:
            return
        detail = f"findings {self.findings}"
        if self.failed:
            detail += f", {len(self.failed)} tests failed"
        self.progress.update(self.phase, self.done, self.total or None, detail)


def count_of(finding: Finding) -> int:
    """How many identical findings this one stands for (``count`` where the finding has it)."""
    count = getattr(finding, "count", 1)
    return count if isinstance(count, int) and count > 0 else 1


def _case_name(finding: Finding) -> str:
    """The case without the endpoint it repeats (the tree shows the endpoint already)."""
    case = finding.case or "(no case)"
    return case.removeprefix(finding.endpoint).strip() or case


def _what(findings: Sequence[Finding]) -> str:
    """The most common failure of a group, in words: what came back, and what was expected."""
    # A multi-line observation is a diff: every one differs, and none fits on the line.
    common = Counter(("" if "\n" in f.observed else f.observed, f.expected)
                     for f in findings).most_common()
    observed, expected = common[0][0]
    text = f"{observed}; expected {expected}" if observed else f"differs from {expected}"
    return text + (f" (+{len(common) - 1} other)" if len(common) > 1 else "")


def findings_tree(findings: Sequence[Finding], width: int = 100) -> list[str]:
    """Findings grouped check → endpoint → case, one count each; the cases of a group share
    wrapped lines, so a fault that fails thirty cases of four endpoints reads in a dozen."""
    groups: dict[str, dict[str, list[Finding]]] = defaultdict(lambda: defaultdict(list))
    for finding in findings:
        groups[finding.check_id][finding.endpoint].append(finding)
    lines: list[str] = []
    for check in sorted(groups, key=lambda c: (-sum(map(count_of, _all(groups[c]))), c)):
        by_endpoint = groups[check]
        lines.append(f"  {check}  x{sum(map(count_of, _all(by_endpoint)))}")
        for endpoint in sorted(by_endpoint):
            lines += _endpoint_lines(endpoint, by_endpoint[endpoint], width)
    return lines


def _endpoint_lines(endpoint: str, found: Sequence[Finding], width: int) -> list[str]:
    """What failed on one endpoint, then its cases (on the same line when they fit)."""
    head = f"    {endpoint}  x{sum(map(count_of, found))}  {_what(found)}"
    cases: Counter[str] = Counter()
    for finding in found:
        cases[_case_name(finding)] += count_of(finding)
    text = "; ".join(name + (f" x{n}" if n > 1 else "") for name, n in cases.items())
    if len(head) + 3 + len(text) <= width:
        return [f"{head}:  {text}"]
    return [head if len(head) <= width else head[:width - 3] + "...",
            *_wrap_items([name + (f" x{n}" if n > 1 else "") for name, n in cases.items()],
                         width, "      ")]


def _wrap_items(items: Sequence[str], width: int, indent: str) -> list[str]:
    """Items joined by '; ' into lines of at most ``width`` (an item longer than a line has
    one of its own), never breaking inside one: a case name split over two lines can be
    neither read nor searched for."""
    lines: list[str] = []
    line = ""
    for item in items:
        candidate = f"{line}; {item}" if line else item
        if line and len(indent) + len(candidate) + 1 > width:
            lines.append(f"{indent}{line};")
            candidate = item
        line = candidate
    return [*lines, f"{indent}{line}"] if line else lines


def _all(by_endpoint: dict[str, list[Finding]]) -> list[Finding]:
    return [f for found in by_endpoint.values() for f in found]


def outcome_line(outcomes: Counter[str], findings: Sequence[Finding], seconds: float) -> str:
    """The run in one line: tests by outcome (those that happened), time and findings."""
    verdict = "PASS" if not findings and not outcomes["failed"] else "FAIL"
    counts = ", ".join(f"{outcomes[o]} {o}" for o in ("passed", "failed", "skipped")
                       if outcomes[o])
    total = sum(map(count_of, findings))
    return (f"{verdict}: {counts or 'no test ran'} in {seconds:.1f} s; "
            f"{total} finding{'s' if total != 1 else ''}")
