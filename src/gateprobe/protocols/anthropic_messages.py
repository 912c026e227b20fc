"""Anthropic Messages: ``POST /v1/messages`` and its event stream.

Grammar (PROTOCOL.md, "Anthropic Messages"): ``message_start`` (content empty, stop_reason
null) -> per block, in index order from 0: ``content_block_start`` -> ``content_block_delta``*
(same index, a delta type that fits the block) -> ``content_block_stop`` -> ``message_delta``
(non-null stop_reason, cumulative usage) -> ``message_stop``. ``ping`` may come anywhere before
the end; an ``error`` event ends the stream. Each SSE ``event:`` name equals the JSON ``type``.
Unknown event types are ignored, as Anthropic tells clients to.
"""

from __future__ import annotations

from typing import Any

from gateprobe.core.findings import Finding, Severity
from gateprobe.core.sse import Event
from gateprobe.protocols._anthropic import ERROR_SCHEMA, ApiError, parse_error
from gateprobe.protocols._stream import GrammarBase, Redact, _same, is_int
from gateprobe.protocols.tools import (
    ANTHROPIC_TOOL_ID_PREFIX,
    CUT_SHORT,
    Tools,
    argument_problems,
)

__all__ = ["ERROR_SCHEMA", "STOP_REASONS", "ApiError", "StreamGrammar", "parse_error"]

STOP_REASONS = frozenset({"end_turn", "max_tokens", "stop_sequence", "tool_use", "pause_turn",
                          "refusal", "model_context_window_exceeded"})
DELTAS_FOR_BLOCK = {
    "text": {"text_delta", "citations_delta"},
    "tool_use": {"input_json_delta"},
    "server_tool_use": {"input_json_delta"},
    "thinking": {"thinking_delta", "signature_delta"},
}
KNOWN = {"message_start", "content_block_start", "content_block_delta", "content_block_stop",
         "message_delta", "message_stop", "ping", "error"}


class StreamGrammar(GrammarBase):
    """The Messages event stream."""

    def __init__(self, endpoint: str = "/v1/messages", redact: Redact = _same,
                 tools: Tools | None = None, forced: bool = False) -> None:
        super().__init__(endpoint, redact)
        self.tools: Tools = tools or {}
        self.forced = forced
        self._tool_blocks: dict[int, tuple[Any, list[str]]] = {}
        """Index -> (tool name, ``partial_json`` pieces) of each ``tool_use`` block."""
        self._started = False
        self._delta_seen = False
        self._next_index = 0
        self._open: dict[int, str] = {}
        self._output_tokens = 0

    def feed(self, event: Event) -> list[Finding]:
        """Check one event."""
        if self.done:
            return [self.after_end(event)]
        out: list[Finding] = []
        payload = self.decode(event, out)
        if payload is None:
            return out
        kind = payload.get("type")
        if event.type != kind:
            out.append(self.finding("stream.event_name", Severity.MEDIUM,
                                    "the event: name equals the data's type",
                                    f"event {event.type[:40]!r}, type {kind!r}", event))
        if kind not in KNOWN or kind == "ping":
            return out
        if kind == "error":
            self.done = self.errored = True
            out.append(self.finding("stream.error_event", Severity.HIGH,
                                    "no error inside a 200 stream", "an error event", event))
            return out
        if kind != "message_start" and not self._started:
            out.append(self.finding("stream.order", Severity.HIGH, "message_start first",
                                    f"{kind} before message_start", event))
            self._started = True
        handler = getattr(self, f"_on_{kind}")
        out += handler(payload, event)
        return out

    def _on_message_start(self, payload: dict[str, Any], event: Event) -> list[Finding]:
        out: list[Finding] = []
        if self._started:
            out.append(self.finding("stream.order", Severity.HIGH, "one message_start, first",
                                    "a second message_start", event))
        self._started = True
        message = payload.get("message")
        if not isinstance(message, dict) or message.get("content") != [] or \
                message.get("stop_reason") is not None or message.get("role") != "assistant":
            out.append(self.finding(
                "stream.schema", Severity.MEDIUM,
                "message_start carries the message with role assistant, empty content and "
                "null stop_reason", "a different message", event))
            return out
        usage = message.get("usage") or {}
        self._output_tokens = usage.get("output_tokens", 0) if is_int(
            usage.get("output_tokens")) else 0
        return out

    def _on_content_block_start(self, payload: dict[str, Any], event: Event) -> list[Finding]:
        out: list[Finding] = []
        if self._delta_seen:
            out.append(self.finding("stream.order", Severity.HIGH,
                                    "content blocks before message_delta",
                                    "content_block_start after message_delta", event))
        index, block = payload.get("index"), payload.get("content_block")
        if not is_int(index) or not isinstance(block, dict) or \
                not isinstance(block.get("type"), str):
            return out + [self.finding("stream.schema", Severity.MEDIUM,
                                       "an integer index and a content_block with a type",
                                       "index or content_block missing", event,
                                       "/content_block" if is_int(index) else "/index")]
        assert isinstance(index, int)  # is_int above; narrows for the type checker
        if index != self._next_index:
            out.append(self.finding("stream.block_index", Severity.HIGH,
                                    f"the next block has index {self._next_index}",
                                    f"content_block_start index {index}", event, "/index"))
        if self._open:
            out.append(self.finding("stream.order", Severity.HIGH,
                                    "a block starts after the previous one stopped",
                                    f"block {index} starts while {sorted(self._open)} open",
                                    event))
        self._open[index] = block["type"]
        self._next_index = max(self._next_index, index + 1)
        if block["type"] == "tool_use":
            if not isinstance(block.get("id"), str) or not isinstance(block.get("name"), str):
                out.append(self.finding("stream.tool_calls", Severity.HIGH,
                                        "a tool_use block opens with its id and name",
                                        f"content_block {sorted(block)}", event))
            elif not block["id"].startswith(ANTHROPIC_TOOL_ID_PREFIX):
                out.append(self.finding("stream.tool_calls", Severity.LOW,
                                        f"a tool_use id with Anthropic's "
                                        f"{ANTHROPIC_TOOL_ID_PREFIX} prefix",
                                        f"id {block['id'][:40]!r}", event,
                                        "/content_block/id"))
            self._tool_blocks[index] = (block.get("name"), [])
        return out

    def _on_content_block_delta(self, payload: dict[str, Any], event: Event) -> list[Finding]:
        index, delta = payload.get("index"), payload.get("delta")
        if not is_int(index) or not isinstance(delta, dict):
            return [self.finding("stream.schema", Severity.MEDIUM,
                                 "an integer index and a delta object",
                                 "index or delta missing", event,
                                 "/delta" if is_int(index) else "/index")]
        if index not in self._open:
            return [self.finding("stream.order", Severity.HIGH,
                                 "a delta inside its started block",
                                 f"delta for block {index}, which is not open", event)]
        allowed = DELTAS_FOR_BLOCK.get(self._open[index])
        if allowed is not None and delta.get("type") not in allowed:
            return [self.finding("stream.schema", Severity.MEDIUM,
                                 f"a {'/'.join(sorted(allowed))} in a {self._open[index]} block",
                                 f"delta type {delta.get('type')!r}", event, "/delta/type")]
        if delta.get("type") == "text_delta" and not isinstance(delta.get("text"), str):
            return [self.finding("stream.schema", Severity.MEDIUM, "text_delta.text is a string",
                                 "text missing or mistyped", event, "/delta/text")]
        if delta.get("type") == "input_json_delta":
            if not isinstance(delta.get("partial_json"), str):
                return [self.finding("stream.schema", Severity.MEDIUM,
                                     "input_json_delta.partial_json is a string",
                                     "partial_json missing or mistyped", event,
                                     "/delta/partial_json")]
            if index in self._tool_blocks:
                self._tool_blocks[index][1].append(delta["partial_json"])
        return []

    def _on_content_block_stop(self, payload: dict[str, Any], event: Event) -> list[Finding]:
        index = payload.get("index")
        if index not in self._open:
            return [self.finding("stream.order", Severity.HIGH, "stop an open block",
                                 f"content_block_stop for block {index}, which is not open",
                                 event)]
        del self._open[index]
        return []

    def _on_message_delta(self, payload: dict[str, Any], event: Event) -> list[Finding]:
        out: list[Finding] = []
        if self._open:
            out.append(self.finding("stream.order", Severity.HIGH,
                                    "every block stopped before message_delta",
                                    f"blocks {sorted(self._open)} still open", event))
        self._delta_seen = True
        delta = payload.get("delta")
        reason = delta.get("stop_reason") if isinstance(delta, dict) else None
        if reason not in STOP_REASONS:
            out.append(self.finding("stream.schema", Severity.MEDIUM,
                                    f"delta.stop_reason one of {sorted(STOP_REASONS)}",
                                    f"stop_reason {reason!r}", event, "/delta/stop_reason"))
        out += self._tool_use_findings(reason, event)
        usage = payload.get("usage")
        tokens = usage.get("output_tokens") if isinstance(usage, dict) else None
        if not isinstance(tokens, int) or isinstance(tokens, bool):
            out.append(self.finding("stream.usage", Severity.MEDIUM,
                                    "message_delta.usage.output_tokens (cumulative)",
                                    "no output_tokens", event, "/usage/output_tokens"))
        elif tokens < self._output_tokens:
            out.append(self.finding("stream.usage", Severity.MEDIUM,
                                    "cumulative output_tokens never decrease",
                                    f"{tokens} after {self._output_tokens}", event,
                                    "/usage/output_tokens"))
        else:
            self._output_tokens = tokens
        return out

    def _tool_use_findings(self, reason: Any, event: Event) -> list[Finding]:
        """At ``message_delta``: the turn's tool_use blocks as a client runs them, and a stop
        reason that fits them."""
        blocks = self._tool_blocks
        if self.forced and not blocks and reason not in CUT_SHORT:
            return [self.finding("stream.tool_calls", Severity.HIGH,
                                 "a tool_use block, as tool_choice required",
                                 f"none, stop_reason {reason!r}", event)]
        if reason == "tool_use" and not blocks:
            return [self.finding("stream.tool_calls", Severity.HIGH,
                                 "stop_reason tool_use after tool_use blocks",
                                 "stop_reason tool_use without one", event)]
        if not blocks or reason in CUT_SHORT:
            return []
        out = [] if reason == "tool_use" else [self.finding(
            "stream.tool_calls", Severity.HIGH, "stop_reason tool_use after tool_use blocks",
            f"{len(blocks)} tool_use blocks, stop_reason {reason!r}", event)]
        return out + [self.finding("stream.tool_calls", Severity.HIGH,
                                   "partial_json that reassembles into input a client can run",
                                   f"block {index}: {problem}", event)
                      for index, (name, pieces) in sorted(blocks.items())
                      for problem in argument_problems(name, "".join(pieces), self.tools)]

    def _on_message_stop(self, payload: dict[str, Any], event: Event) -> list[Finding]:
        self.done = True
        if not self._delta_seen:
            return [self.finding("stream.order", Severity.HIGH, "message_delta before "
                                 "message_stop", "message_stop without message_delta", event)]
        return []

    def finish(self) -> list[Finding]:
        """Check what the stream, now ended, never sent."""
        out: list[Finding] = []
        if self.errored:
            return out
        if not self.done:
            out.append(self.finding("stream.terminator", Severity.HIGH,
                                    "the stream ends with message_stop", "no message_stop"))
        if self._open:
            out.append(self.finding("stream.order", Severity.HIGH, "every block stopped",
                                    f"blocks {sorted(self._open)} never stopped"))
        return out


def content_of(payload: dict[str, Any]) -> str:
    """The generated text an event carries (text, thinking or tool-input deltas)."""
    if payload.get("type") != "content_block_delta":
        return ""
    delta = payload.get("delta") or {}
    for field in ("text", "thinking", "partial_json"):
        if isinstance(delta.get(field), str):
            return str(delta[field])
    return ""
