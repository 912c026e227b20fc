"""Anthropic legacy Text Completions: ``POST /v1/complete`` and its event stream.

From 2023-06-01: events named ``completion`` whose data has ``type: completion`` and an
incremental ``completion`` delta, ``stop_reason`` null until the last one, which has a non-null
one (``stop_sequence`` or ``max_tokens``); ``ping`` anywhere; ``error`` ends the stream; no
``[DONE]``. Before 2023-06-01 (``cumulative=True``): unnamed events, each ``completion`` the
whole text so far, and a final ``data: [DONE]``.
"""

from __future__ import annotations

from gateprobe.core.findings import Finding, Severity
from gateprobe.core.sse import Event
from gateprobe.protocols._anthropic import ERROR_SCHEMA, ApiError, parse_error
from gateprobe.protocols._stream import GrammarBase, Redact, _same

__all__ = ["ERROR_SCHEMA", "STOP_REASONS", "ApiError", "StreamGrammar", "parse_error"]

STOP_REASONS = frozenset({"stop_sequence", "max_tokens"})


class StreamGrammar(GrammarBase):
    """The legacy completion event stream."""

    def __init__(self, endpoint: str = "/v1/complete", *, cumulative: bool = False,
                 redact: Redact = _same) -> None:
        super().__init__(endpoint, redact)
        self.cumulative = cumulative
        self._stopped = False
        self._text = ""
        self._last = ""
        self._repeats = 0
        """Completion events in a row that began with the whole previous completion."""

    def feed(self, event: Event) -> list[Finding]:
        """Check one event."""
        if self.done:
            return [self.after_end(event)]
        out: list[Finding] = []
        if event.data == "[DONE]":
            if not self.cumulative:
                out.append(self.finding("stream.terminator", Severity.MEDIUM,
                                        "no [DONE] from version 2023-06-01 on",
                                        "data: [DONE]", event))
            self.done = True
            return out
        payload = self.decode(event, out)
        if payload is None:
            return out
        kind = payload.get("type")
        expected_name = "message" if self.cumulative else kind
        if event.type != expected_name:
            out.append(self.finding("stream.event_name", Severity.MEDIUM,
                                    f"event name {expected_name!r}",
                                    f"event {event.type[:40]!r}, type {kind!r}", event))
        if kind == "ping":
            return out
        if kind == "error" or "error" in payload and kind is None:
            self.done = self.errored = True
            out.append(self.finding("stream.error_event", Severity.HIGH,
                                    "no error inside a 200 stream", "an error event", event))
            return out
        if kind != "completion" and not self.cumulative:
            return out  # unknown event types are ignored
        return out + self._on_completion(payload, event)

    def _on_completion(self, payload: dict[str, object], event: Event) -> list[Finding]:
        out: list[Finding] = []
        text, reason = payload.get("completion"), payload.get("stop_reason")
        if not isinstance(text, str):
            return [self.finding("stream.schema", Severity.MEDIUM, "completion is a string",
                                 f"completion is {type(text).__name__}", event,
                                 "/completion")]
        if self._stopped:
            out.append(self.finding("stream.order", Severity.HIGH,
                                    "nothing after the event with a stop_reason",
                                    "another completion event", event))
        if self.cumulative:
            if not text.startswith(self._text):
                out.append(self.finding("stream.schema", Severity.MEDIUM,
                                        "cumulative completions (each extends the last)",
                                        "a completion that does not extend the previous one",
                                        event, "/completion"))
            self._text = text
        else:
            out += self._check_delta(text, event)
            self._text += text
        if reason is not None:
            if reason not in STOP_REASONS:
                out.append(self.finding("stream.schema", Severity.MEDIUM,
                                        f"stop_reason one of {sorted(STOP_REASONS)}",
                                        f"stop_reason {reason!r}", event, "/stop_reason"))
            self._stopped = True
            if not self.cumulative:
                self.done = True
        return out

    def _check_delta(self, text: str, event: Event) -> list[Finding]:
        """From 2023-06-01 each ``completion`` is the new text only; one that starts with the
        whole previous completion, twice in a row, is the older cumulative format under the new
        version's name (a client that appends would print everything again)."""
        last, self._last = self._last, text
        if len(last) >= 2 and len(text) > len(last) and text.startswith(last):
            self._repeats += 1
            if self._repeats == 2:
                return [self.finding("stream.delta", Severity.HIGH,
                                     "completion deltas (anthropic-version 2023-06-01)",
                                     "each completion repeats the text so far (the "
                                     "cumulative pre-2023-06-01 format)", event)]
        else:
            self._repeats = 0
        return []

    def finish(self) -> list[Finding]:
        """Check what the stream, now ended, never sent."""
        if self.errored:
            return []
        if self.cumulative and not self.done:
            return [self.finding("stream.terminator", Severity.HIGH,
                                 "the stream ends with data: [DONE]", "no [DONE]")]
        if not self._stopped:
            return [self.finding("stream.terminator", Severity.HIGH,
                                 "a last completion event with a stop_reason",
                                 "no stop_reason")]
        return []

    @property
    def text(self) -> str:
        """The completion assembled so far."""
        return self._text
