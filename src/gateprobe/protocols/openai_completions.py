"""OpenAI legacy completions: ``POST /v1/completions``, ``text_completion`` streams.

Beyond the shared chunk rules: each choice carries ``text`` (a string); there is no role chunk.
"""

from __future__ import annotations

from typing import Any

from gateprobe.core.findings import Finding, Severity
from gateprobe.core.sse import Event
from gateprobe.protocols._openai import ERROR_SCHEMA, ApiError, OpenAIChunkGrammar, parse_error

__all__ = ["ERROR_SCHEMA", "ApiError", "StreamGrammar", "parse_error"]


class StreamGrammar(OpenAIChunkGrammar):
    """The legacy completion chunk stream."""

    OBJECT = "text_completion"
    FINISH_REASONS = frozenset({"stop", "length", "content_filter"})

    def check_choice_fields(self, choice: dict[str, Any], first: bool,
                            event: Event) -> list[Finding]:
        """``text`` is a string on every chunk."""
        if not isinstance(choice.get("text"), str):
            return [self.finding("stream.schema", Severity.MEDIUM, "choices[].text is a string",
                                 f"text is {type(choice.get('text')).__name__}", event)]
        return []


def content_of(payload: dict[str, Any]) -> str:
    """The generated text a chunk carries (empty for finish and usage chunks)."""
    return "".join(
        c.get("text") or "" for c in payload.get("choices") or []
        if isinstance(c, dict) and isinstance(c.get("text"), str)
    )
