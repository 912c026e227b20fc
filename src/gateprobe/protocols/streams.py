"""Choosing the grammar for a streaming request, and checking a whole stream with it."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, Protocol

from gateprobe.findings import Finding
from gateprobe.protocols import (
    anthropic_complete,
    anthropic_messages,
    openai_chat,
    openai_completions,
)
from gateprobe.protocols._stream import Redact, _same, framing_findings
from gateprobe.sse import Event, SSEParser

__all__ = ["STREAM_CHECK_IDS", "StreamGrammar", "check_events", "check_stream_bytes",
           "framing_findings", "grammar_for"]


STREAM_CHECK_IDS = ("stream.json", "stream.schema", "stream.event_name", "stream.order",
                    "stream.block_index", "stream.terminator", "stream.error_event",
                    "stream.usage", "stream.consistency", "stream.framing")
"""Every check id the stream grammars and the SSE framing notes can report."""


class StreamGrammar(Protocol):
    """What every protocol module's ``StreamGrammar`` provides."""

    def feed(self, event: Event) -> list[Finding]:
        """Check one event."""
        ...

    def finish(self) -> list[Finding]:
        """Check what the ended stream never sent."""
        ...


def grammar_for(path: str, body: Mapping[str, Any], *, anthropic_version: str = "2023-06-01",
                redact: Redact = _same) -> StreamGrammar:
    """The grammar a streaming answer to ``body`` sent to ``path`` must follow.

    ``claude-2-web`` is not special here: the gateway ignores ``stream_options`` for it, so a
    caller that asks for usage from it should not pass ``stream_options`` in ``body``.
    """
    expect_usage = bool((body.get("stream_options") or {}).get("include_usage"))
    if path.endswith("/chat/completions"):
        return openai_chat.StreamGrammar(path, expect_usage=expect_usage, redact=redact)
    if path.endswith("/completions"):
        return openai_completions.StreamGrammar(path, expect_usage=expect_usage, redact=redact)
    if path.endswith("/messages"):
        return anthropic_messages.StreamGrammar(path, redact=redact)
    if path.endswith("/complete"):
        cumulative = anthropic_version == "2023-01-01"
        return anthropic_complete.StreamGrammar(path, cumulative=cumulative, redact=redact)
    raise ValueError(f"no stream grammar for {path}")


def check_events(grammar: StreamGrammar, events: Iterable[Event]) -> list[Finding]:
    """Feed parsed events through ``grammar`` and finish it."""
    findings = [f for event in events for f in grammar.feed(event)]
    return findings + grammar.finish()


def check_stream_bytes(grammar: StreamGrammar, body: bytes, endpoint: str) -> list[Finding]:
    """Parse a whole recorded stream and check it: framing notes, then the grammar."""
    parser = SSEParser()
    events = parser.feed(body, 0)
    parser.finish()
    return framing_findings(parser.notes, endpoint) + check_events(grammar, events)
