"""OpenAI chat completions: ``POST /v1/chat/completions``, ``chat.completion.chunk`` streams.

Beyond the shared chunk rules: each choice's first delta carries ``role: "assistant"``; content
deltas are strings (or null).
"""

from __future__ import annotations

from typing import Any

from gateprobe.findings import Finding, Severity
from gateprobe.protocols._openai import ERROR_SCHEMA, ApiError, OpenAIChunkGrammar, parse_error
from gateprobe.sse import Event

__all__ = ["ERROR_SCHEMA", "ApiError", "StreamGrammar", "parse_error"]


class StreamGrammar(OpenAIChunkGrammar):
    """The chat chunk stream."""

    OBJECT = "chat.completion.chunk"
    FINISH_REASONS = frozenset({"stop", "length", "tool_calls", "content_filter",
                                "function_call"})

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
        return out


def content_of(payload: dict[str, Any]) -> str:
    """The generated text a chunk carries (empty for role-only, finish and usage chunks)."""
    return "".join(
        c.get("delta", {}).get("content") or "" for c in payload.get("choices") or []
        if isinstance(c, dict) and isinstance(c.get("delta"), dict)
    )
