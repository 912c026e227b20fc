"""What every stream grammar shares: finding construction, JSON decoding, SSE notes."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from typing import Any

from gateprobe.core.findings import Finding, Severity
from gateprobe.core.sse import Event, Note

Redact = Callable[[str], str]

EVIDENCE_CHARS = 600
"""Enough of an event to show the field a finding points at (usage comes last in a chunk)."""

_NOTE_SEVERITY = {
    "sse.invalid_utf8": Severity.MEDIUM,
    "sse.incomplete_event": Severity.MEDIUM,
    "sse.empty_data": Severity.MEDIUM,  # the SDKs fail on it
    "sse.event_without_data": Severity.LOW,
    "sse.bom": Severity.LOW,
    "sse.unknown_field": Severity.LOW,
}


def _same(text: str) -> str:
    return text


class GrammarBase:
    """Holds the endpoint, the redaction function and the findings so far."""

    def __init__(self, endpoint: str, redact: Redact = _same) -> None:
        self.endpoint = endpoint
        self._redact = redact
        self.done = False
        """Whether the terminator has been seen."""
        self.errored = False
        """Whether an error event ended the stream: what it then never sent is not reported."""
        self.decoded: tuple[Event, dict[str, Any]] | None = None
        """The last event decoded and its payload, so a runner timing the stream does not
        parse every event's JSON a second time."""

    def finding(self, check_id: str, severity: Severity, expected: str, observed: str,
                event: Event | None = None, pointer: str = "") -> Finding:
        """A finding on this grammar's endpoint, with the event's data as evidence;
        ``pointer``: the field at fault in that event's JSON data."""
        evidence = ""
        if event is not None:
            head = f"event: {event.type}\n" if event.type != "message" else ""
            evidence = self._redact(head + "data: " + event.data[:EVIDENCE_CHARS])
        return Finding(check_id, self.endpoint, severity, expected, self._redact(observed),
                       evidence, pointer=pointer)

    def decode(self, event: Event, out: list[Finding]) -> dict[str, Any] | None:
        """The event's data as a JSON object, or None with a ``stream.json`` finding."""
        try:
            payload = json.loads(event.data)
        except ValueError:
            out.append(self.finding("stream.json", Severity.HIGH, "data is a JSON object",
                                    "data is not valid JSON", event))
            return None
        if not isinstance(payload, dict):
            out.append(self.finding("stream.json", Severity.HIGH, "data is a JSON object",
                                    f"data is a JSON {type(payload).__name__}", event))
            return None
        self.decoded = (event, payload)
        return payload

    def after_end(self, event: Event) -> Finding:
        """An event that arrived after the terminator."""
        return self.finding("stream.order", Severity.HIGH, "nothing after the terminator",
                            "an event after the terminator", event)


def framing_findings(notes: Iterable[Note], endpoint: str) -> list[Finding]:
    """The SSE parser's notes as ``stream.framing`` findings."""
    return [
        Finding("stream.framing", endpoint, _NOTE_SEVERITY.get(note.rule, Severity.LOW),
                f"strict SSE framing ({note.rule})", note.detail)
        for note in notes
    ]


def is_int(value: object) -> bool:
    """A JSON integer (booleans are not)."""
    return isinstance(value, int) and not isinstance(value, bool)
