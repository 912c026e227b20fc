"""OpenAI chat completions: ``POST /v1/chat/completions``, ``chat.completion.chunk`` streams.

Beyond the shared chunk rules: each choice's first delta carries ``role: "assistant"``; content
deltas are strings (or null).
"""

from __future__ import annotations

from typing import Any

from gateprobe.core.findings import Finding, Severity
from gateprobe.core.sse import Event
from gateprobe.protocols._openai import ERROR_SCHEMA, ApiError, OpenAIChunkGrammar, parse_error
from gateprobe.protocols._stream import Redact, _same, is_int
from gateprobe.protocols.tools import CUT_SHORT, OPENAI_TOOL_FINISH, Tools, argument_problems

__all__ = ["ERROR_SCHEMA", "ApiError", "StreamGrammar", "parse_error"]


class StreamGrammar(OpenAIChunkGrammar):
    """The chat chunk stream, its tool calls included: each call opens (at the next index of
    its choice) with its id, ``type: function`` and ``function.name``; later fragments of it
    carry ``arguments`` pieces and no other id; the pieces reassemble into the JSON a client
    runs (``gateprobe.protocols.tools``)."""

    OBJECT = "chat.completion.chunk"
    FINISH_REASONS = frozenset({"stop", "length", "tool_calls", "content_filter",
                                "function_call"})

    def __init__(self, endpoint: str, *, expect_usage: bool = False,
                 strict_usage: bool = False, redact: Redact = _same,
                 tools: Tools | None = None, forced: bool = False,
                 named: bool = False) -> None:
        super().__init__(endpoint, expect_usage=expect_usage, strict_usage=strict_usage,
                         redact=redact)
        self.tools: Tools = tools or {}
        self.forced = forced
        self.named = named
        """``tool_choice`` named the function: only then may the turn end with ``stop``."""
        self._calls: dict[int, list[dict[str, Any]]] = {}
        self._finish: dict[int, str] = {}

    def check_choice_fields(self, choice: dict[str, Any], first: bool,
                            event: Event) -> list[Finding]:
        """``delta`` is an object; the first one of a choice says ``role: assistant``."""
        delta = choice.get("delta")
        if not isinstance(delta, dict):
            return [self.finding("stream.schema", Severity.MEDIUM, "delta is an object",
                                 f"delta is {type(delta).__name__}", event)]
        out: list[Finding] = []
        if first and delta.get("role") != "assistant":
            out.append(self.finding("stream.order", Severity.MEDIUM,
                                    f"choice {choice['index']} opens with role: assistant",
                                    f"first delta {sorted(delta)}", event))
        content = delta.get("content")
        if content is not None and not isinstance(content, str):
            out.append(self.finding("stream.schema", Severity.MEDIUM,
                                    "delta.content is a string or null",
                                    f"delta.content is {type(content).__name__}", event))
        if delta.get("tool_calls") is not None:
            out += self._tool_fragments(choice["index"], delta["tool_calls"], event)
        if isinstance(choice.get("finish_reason"), str):
            self._finish[choice["index"]] = choice["finish_reason"]
        return out

    def _tool_fragments(self, choice: int, fragments: Any, event: Event) -> list[Finding]:
        if not isinstance(fragments, list):
            return [self.finding("stream.schema", Severity.MEDIUM,
                                 "delta.tool_calls is an array",
                                 f"delta.tool_calls is {type(fragments).__name__}", event)]
        out: list[Finding] = []
        made = self._calls.setdefault(choice, [])
        for fragment in fragments:
            if not isinstance(fragment, dict) or not is_int(fragment.get("index")):
                out.append(self.finding("stream.schema", Severity.MEDIUM,
                                        "tool_calls[] with an integer index",
                                        "a tool call fragment without one", event))
                continue
            out += self._tool_fragment(made, fragment, event)
        return out

    def _tool_fragment(self, made: list[dict[str, Any]], fragment: dict[str, Any],
                       event: Event) -> list[Finding]:
        index, ident = fragment["index"], fragment.get("id")
        raw = fragment.get("function")
        function: dict[str, Any] = raw if isinstance(raw, dict) else {}
        out: list[Finding] = []
        if index == len(made):
            if not isinstance(ident, str) or not ident or fragment.get("type") != "function" \
                    or not isinstance(function.get("name"), str):
                out.append(self.finding(
                    "stream.tool_calls", Severity.HIGH,
                    "a new tool call opens with its id, type function and function.name",
                    f"tool call {index} opens with {sorted(fragment)}", event))
            made.append({"id": ident, "name": function.get("name"), "arguments": []})
        elif index > len(made):
            return [self.finding("stream.tool_calls", Severity.HIGH,
                                 f"tool call index {len(made)} next (indexes count from 0)",
                                 f"index {index}", event)]
        elif ident not in (None, made[index]["id"]):
            out.append(self.finding("stream.tool_calls", Severity.HIGH,
                                    f"one id on every fragment of tool call {index}",
                                    f"id {ident!r} after {made[index]['id']!r}", event))
        arguments = function.get("arguments")
        if arguments is not None and not isinstance(arguments, str):
            out.append(self.finding("stream.schema", Severity.MEDIUM,
                                    "function.arguments is a string",
                                    f"function.arguments is {type(arguments).__name__}", event))
        elif arguments:
            made[index]["arguments"].append(arguments)
        return out

    def finish(self) -> list[Finding]:
        """The shared end rules, then each choice's tool calls as a client would run them."""
        out = super().finish()
        for choice, finish in sorted(self._finish.items()):
            calls = self._calls.get(choice, [])
            if finish == "tool_calls" and not calls:
                out.append(self.finding("stream.tool_calls", Severity.HIGH,
                                        "finish_reason tool_calls after tool calls",
                                        f"choice {choice}: no tool call"))
            if self.forced and not calls and finish not in CUT_SHORT:
                out.append(self.finding("stream.tool_calls", Severity.HIGH,
                                        "a tool call, as tool_choice required",
                                        f"choice {choice}: none, finish_reason {finish!r}"))
            if not calls or finish in CUT_SHORT:
                continue
            if finish not in OPENAI_TOOL_FINISH or finish == "stop" and not self.named:
                out.append(self.finding("stream.tool_calls", Severity.HIGH,
                                        "finish_reason tool_calls after tool calls",
                                        f"choice {choice}: {len(calls)} tool calls, "
                                        f"finish_reason {finish!r}"))
            out += [self.finding("stream.tool_calls", Severity.HIGH,
                                 "fragments that reassemble into arguments a client can run",
                                 f"choice {choice}: {problem}")
                    for call in calls
                    for problem in argument_problems(call["name"], "".join(call["arguments"]),
                                                     self.tools)]
        return out


def content_of(payload: dict[str, Any]) -> str:
    """The generated text a chunk carries, tool-call arguments included (empty for role-only,
    finish and usage chunks)."""
    deltas = [c["delta"] for c in payload.get("choices") or []
              if isinstance(c, dict) and isinstance(c.get("delta"), dict)]
    text = "".join(d.get("content") or "" for d in deltas if isinstance(d.get("content"), str))
    return text + "".join(
        str(t["function"].get("arguments") or "") for d in deltas
        for t in d.get("tool_calls") or [] if isinstance(t, dict)
        and isinstance(t.get("function"), dict))
