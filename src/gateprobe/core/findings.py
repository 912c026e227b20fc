"""Findings: what gateprobe reports about a gateway.

A finding is data about the target, never an exception (``errors.py`` holds those, for the user
and the tool). Check ids are dotted ``family.aspect`` names (``stream.terminator``) and stable:
reports, allow-lists and baselines refer to them.

A finding is meant to be acted on by someone who was not there: it names its case, the field at
fault (``pointer``), what was expected and what came back, shows redacted evidence and carries
a ``curl`` command that sends the same request again (``repro``). The same expectation failing
several times within one case (every event of a stream, every example of a fuzzed operation)
is one finding with a ``count``, not a wall of identical rows.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from enum import StrEnum
from typing import Any


class Severity(StrEnum):
    """How much a finding matters to a client of the gateway."""

    LOW = "low"
    """A deviation strict clients notice; common clients cope."""
    MEDIUM = "medium"
    """Some clients misbehave or lose information."""
    HIGH = "high"
    """Clients fail or get a wrong answer."""


@dataclass(frozen=True, slots=True)
class Finding:
    """One failed expectation."""

    check_id: str
    endpoint: str
    severity: Severity
    expected: str
    observed: str
    evidence: str = ""
    """An excerpt of what was received (already redacted by whoever created the finding)."""
    case: str = ""
    """The case that produced it (a conformance case id, a tier, a mirror's probe)."""
    pointer: str = ""
    """The JSON pointer (RFC 6901) of the field at fault in the answer (in a stream: in the
    data of the event quoted as evidence), '' when no one field is (a status, a missing
    terminator)."""
    repro: str = ""
    """A ``curl`` command that sends the request again, the key as ``$VARIABLE``, '' when the
    request cannot be replayed (an SDK call, a load run)."""
    count: int = 1
    """How many times this same expectation failed within its case."""

    def as_json(self) -> dict[str, Any]:
        """JSON form for report files (the evidence was redacted when the finding was made)."""
        return {"check_id": self.check_id, "endpoint": self.endpoint,
                "severity": str(self.severity), "expected": self.expected,
                "observed": self.observed, "evidence": self.evidence, "case": self.case,
                "pointer": self.pointer, "repro": self.repro, "count": self.count}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Finding:
        """The finding of an ``as_json`` dict (a baseline's, a subprocess's verdict; one
        written before ``pointer``, ``repro`` and ``count`` existed too)."""
        return cls(data["check_id"], data["endpoint"], Severity(data["severity"]),
                   data["expected"], data["observed"], data.get("evidence", ""),
                   data.get("case", ""), data.get("pointer", ""), data.get("repro", ""),
                   max(1, int(data.get("count", 1))))

    @property
    def key(self) -> tuple[str, str, str]:
        """Deduplication key: the same expectation failing twice on one endpoint is one issue."""
        return self.check_id, self.endpoint, self.expected

    @property
    def identity(self) -> tuple[str, str, str, str, str, str, str]:
        """What makes two findings the same one (``collapse``): everything but the evidence,
        the repro and the count, which differ from one occurrence to the next."""
        return (self.check_id, self.endpoint, self.case, str(self.severity), self.expected,
                self.observed, self.pointer)


def collapse(findings: Iterable[Finding]) -> list[Finding]:
    """Identical findings (same ``identity``) as one, with the occurrences added up; the first
    occurrence's evidence and repro are kept, and the order of first occurrence too."""
    merged: dict[tuple[str, ...], Finding] = {}
    for finding in findings:
        seen = merged.get(finding.identity)
        merged[finding.identity] = finding if seen is None else \
            replace(seen, count=seen.count + finding.count)
    return list(merged.values())
