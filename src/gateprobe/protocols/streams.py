"""Choosing the grammar for a streaming request, and checking a whole stream with it."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any, Protocol

from gateprobe.core.findings import Finding
from gateprobe.core.metrics import StreamMeter, StreamMetrics
from gateprobe.core.sse import Event, SSEParser
from gateprobe.protocols import (
    anthropic_complete,
    anthropic_messages,
    openai_chat,
    openai_completions,
    openai_responses,
)
from gateprobe.protocols._stream import Redact, _same, framing_findings
from gateprobe.protocols.tools import declared_tools, forced, named

__all__ = ["STREAM_CHECK_IDS", "ContentReader", "StreamGrammar", "StreamObserver",
           "check_events", "check_stream_bytes", "framing_findings", "grammar_for"]


STREAM_CHECK_IDS = ("stream.json", "stream.schema", "stream.event_name", "stream.order",
                    "stream.block_index", "stream.terminator", "stream.error_event",
                    "stream.usage", "stream.consistency", "stream.framing", "stream.delta",
                    "stream.tool_calls", "stream.finish_reason",
                    *openai_responses.STREAM_IDS)
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
                strict: bool = False, redact: Redact = _same) -> StreamGrammar:
    """The grammar a streaming answer to ``body`` sent to ``path`` must follow.

    ``claude-2-web`` is not special here: the gateway ignores ``stream_options`` for it, so a
    caller that asks for usage from it should not pass ``stream_options`` in ``body``.
    ``strict``: hold the stream to the upstream API's letter where compatible gateways commonly
    differ harmlessly (``usage: null`` on every chunk rather than no ``usage`` key).
    """
    expect_usage = bool((body.get("stream_options") or {}).get("include_usage"))
    if path.endswith("/responses"):
        return openai_responses.StreamGrammar(path, redact=redact,
                                              tools=openai_responses.response_tools(body),
                                              schema=openai_responses.format_schema(body))
    if path.endswith("/chat/completions"):
        return openai_chat.StreamGrammar(path, expect_usage=expect_usage, strict_usage=strict,
                                         redact=redact, tools=declared_tools(path, body),
                                         forced=forced(body), named=named(body))
    if path.endswith("/completions"):
        return openai_completions.StreamGrammar(path, expect_usage=expect_usage,
                                                strict_usage=strict, redact=redact)
    if path.endswith("/messages"):
        return anthropic_messages.StreamGrammar(path, redact=redact,
                                                tools=declared_tools(path, body),
                                                forced=forced(body))
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


class ContentReader:
    """Reads the generated text and any output-token usage out of each event of one stream.

    The metric definitions (``gateprobe.core.metrics``) know nothing of wire formats; this is where
    each protocol says which events carry content: chat ``delta.content``, completions
    ``choices[].text``, Messages text / thinking / tool-input deltas, legacy ``completion``
    (made incremental when the pre-2023-06-01 stream sends the whole text so far).
    """

    __slots__ = ("_kind", "_so_far", "cumulative")

    def __init__(self, path: str, *, anthropic_version: str = "2023-06-01") -> None:
        for suffix in ("/chat/completions", "/completions", "/messages", "/complete",
                       "/responses"):
            if path.endswith(suffix):
                self._kind = suffix
                break
        else:
            raise ValueError(f"no content reader for {path}")
        self.cumulative = anthropic_version == "2023-01-01"
        self._so_far = ""

    def read(self, event: Event) -> tuple[str, int | None]:
        """(generated text, output tokens so far if the event reports usage)."""
        data = event.data
        if not data or data[0] != "{":
            return "", None  # [DONE], pings with no payload, garbage: no content
        try:
            payload = json.loads(data)
        except ValueError:
            return "", None
        return self.read_payload(payload) if isinstance(payload, dict) else ("", None)

    def read_payload(self, payload: dict[str, Any]) -> tuple[str, int | None]:
        """``read`` for an event whose data is already decoded."""
        kind = self._kind
        if kind == "/responses":
            return openai_responses.content_of(payload), openai_responses.usage_tokens(payload)
        if kind == "/chat/completions" or kind == "/completions":
            usage = payload.get("usage")
            tokens = usage.get("completion_tokens") if isinstance(usage, dict) else None
            text = openai_chat.content_of(payload) if kind == "/chat/completions" \
                else openai_completions.content_of(payload)
            return text, tokens if isinstance(tokens, int) else None
        if kind == "/messages":
            tokens = None
            if payload.get("type") == "message_delta" and isinstance(payload.get("usage"), dict):
                value = payload["usage"].get("output_tokens")
                tokens = value if isinstance(value, int) else None
            return anthropic_messages.content_of(payload), tokens
        completion = payload.get("completion")
        if not isinstance(completion, str):
            return "", None
        text = completion
        if self.cumulative:
            text, self._so_far = text.removeprefix(self._so_far), text
        return text, None


class StreamObserver:
    """Everything a runner does with a stream as its bytes arrive, in one place: parse with the
    project's SSE parser, check with the protocol's grammar, and time with the one metric
    definition. Feed it chunks stamped with ``metrics.now_ns()`` at receipt."""

    __slots__ = ("findings", "grammar", "meter", "parser", "path", "reader")

    def __init__(self, path: str, body: Mapping[str, Any], start_ns: int, *,
                 anthropic_version: str = "2023-06-01", redact: Redact = _same) -> None:
        self.path = path
        self.parser = SSEParser()
        self.grammar = grammar_for(path, body, anthropic_version=anthropic_version,
                                   redact=redact)
        self.reader = ContentReader(path, anthropic_version=anthropic_version)
        self.meter = StreamMeter(start_ns)
        self.findings: list[Finding] = []

    def feed(self, chunk: bytes, t_ns: int) -> None:
        """Bytes that arrived at ``t_ns``."""
        if chunk:
            self.meter.first_byte(t_ns)
            self._events(self.parser.feed(chunk, t_ns))

    def finish(self, t_ns: int) -> StreamMetrics:
        """The stream ended at ``t_ns``: the grammar's last word, and the metrics."""
        self._events(self.parser.finish())
        self.meter.end(t_ns)
        self.findings += framing_findings(self.parser.notes, self.path)
        self.findings += self.grammar.finish()
        return self.meter.result()

    def _events(self, events: list[Event]) -> None:
        grammar, reader, meter = self.grammar, self.reader, self.meter
        for event in events:
            self.findings += grammar.feed(event)
            decoded = getattr(grammar, "decoded", None)
            text, usage = reader.read_payload(decoded[1]) \
                if decoded is not None and decoded[0] is event else reader.read(event)
            meter.event(event.t_ns, text, usage)
