"""Findings: what gateprobe reports about a gateway.

A finding is data about the target, never an exception (``errors.py`` holds those, for the user
and the tool). Check ids are dotted ``family.aspect`` names (``stream.terminator``) and stable:
reports, allow-lists and baselines refer to them.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


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

    def as_json(self) -> dict[str, str]:
        """JSON form for report files (the evidence was redacted when the finding was made)."""
        return {"check_id": self.check_id, "endpoint": self.endpoint,
                "severity": str(self.severity), "expected": self.expected,
                "observed": self.observed, "evidence": self.evidence, "case": self.case}

    @classmethod
    def from_json(cls, data: dict[str, str]) -> Finding:
        """The finding of an ``as_json`` dict (a baseline's, a subprocess's verdict)."""
        return cls(data["check_id"], data["endpoint"], Severity(data["severity"]),
                   data["expected"], data["observed"], data.get("evidence", ""),
                   data.get("case", ""))

    @property
    def key(self) -> tuple[str, str, str]:
        """Deduplication key: the same expectation failing twice on one endpoint is one issue."""
        return self.check_id, self.endpoint, self.expected

