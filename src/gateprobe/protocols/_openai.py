"""The OpenAI family's error envelope and the chunk-stream rules chat and completions share.

Stream (PROTOCOL.md, "OpenAI-compatible"): unnamed ``data:`` events, each a chunk with the same
``id`` and ``created``; per choice, chunks until one with a non-null ``finish_reason``; with
``stream_options.include_usage`` a final chunk with ``choices: []`` and ``usage`` (earlier chunks
``usage: null``); then ``data: [DONE]``. An ``{"error": ...}`` payload inside a 200 stream is an
error event.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import jsonschema

from gateprobe.core.findings import Finding, Severity
from gateprobe.core.sse import Event
from gateprobe.protocols._stream import GrammarBase, Redact, _same, is_int

ERROR_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {
            "type": "object",
            "required": ["message", "type", "param", "code"],
            "properties": {
                "message": {"type": "string"},
                "type": {"type": "string"},
                "param": {"type": ["string", "null"]},
                "code": {"type": ["string", "null"]},
            },
        }
    },
}
"""OpenAI's ``{"error": {message, type, param, code}}``."""

_ERROR_VALIDATOR = jsonschema.Draft202012Validator(ERROR_SCHEMA)


@dataclass(frozen=True, slots=True)
class ApiError:
    """An error answer's envelope, read."""

    type: str
    message: str
    code: str | None = None
    param: str | None = None


def parse_error(payload: object) -> ApiError | None:
    """The error in an OpenAI envelope, or None if ``payload`` is not one."""
    if not _ERROR_VALIDATOR.is_valid(payload):
        return None
    assert isinstance(payload, dict)
    error = payload["error"]
    return ApiError(error["type"], error["message"], error["code"], error["param"])


class OpenAIChunkGrammar(GrammarBase):
    """Chunk-stream rules of the OpenAI family; subclasses check each choice's fields."""

    OBJECT = ""
    FINISH_REASONS: frozenset[str] = frozenset()

    def __init__(self, endpoint: str, *, expect_usage: bool = False,
                 strict_usage: bool = False, redact: Redact = _same) -> None:
        super().__init__(endpoint, redact)
        self.expect_usage = expect_usage
        self.strict_usage = strict_usage
        """OpenAI's own wire: ``usage: null`` on every chunk before the usage chunk. Many
        compatible gateways omit the key instead; only a strict-upstream target is held to it."""
        self._first: dict[str, Any] | None = None
        self._seen: set[int] = set()
        self._finished: set[int] = set()
        self._usage_seen = False

    def feed(self, event: Event) -> list[Finding]:
        """Check one event."""
        out: list[Finding] = []
        if self.done:
            return [self.after_end(event)]
        if event.type != "message":
            out.append(self.finding(
                "stream.event_name", Severity.MEDIUM, "chunks without an event: name",
                f"event: {event.type[:40]}", event))
        if event.data == "[DONE]":
            self.done = True
            return out
        payload = self.decode(event, out)
        if payload is None:
            return out
        if "error" in payload and "object" not in payload:
            self.errored = True
            out.append(self.finding("stream.error_event", Severity.HIGH,
                                    "no error inside a 200 stream", "an error payload", event))
            return out
        if self._usage_seen:
            out.append(self.finding("stream.order", Severity.HIGH,
                                    "the usage chunk is the last before [DONE]",
                                    "a chunk after the usage chunk", event))
        out += self._check_chunk(payload, event)
        return out

    def _check_chunk(self, payload: dict[str, Any], event: Event) -> list[Finding]:
        out: list[Finding] = []
        if payload.get("object") != self.OBJECT:
            out.append(self.finding("stream.schema", Severity.MEDIUM,
                                    f"object {self.OBJECT!r}",
                                    f"object {payload.get('object')!r}", event, "/object"))
        if not isinstance(payload.get("id"), str) or not is_int(payload.get("created")):
            out.append(self.finding("stream.schema", Severity.MEDIUM,
                                    "id (string) and created (integer) on every chunk",
                                    "id or created missing or mistyped", event,
                                    "/created" if isinstance(payload.get("id"), str) else "/id"))
        if self._first is None:
            self._first = payload
        else:
            for name in ("id", "created", "model"):
                if payload.get(name) != self._first.get(name):
                    out.append(self.finding(
                        "stream.consistency", Severity.MEDIUM, f"the same {name} on every chunk",
                        f"{name} changed from {self._first.get(name)!r} to "
                        f"{payload.get(name)!r}", event, f"/{name}"))
        choices = payload.get("choices")
        if not isinstance(choices, list):
            out.append(self.finding("stream.schema", Severity.MEDIUM, "choices is an array",
                                    f"choices is {type(choices).__name__}", event, "/choices"))
            return out
        if not choices:
            return out + self._check_usage_chunk(payload, event)
        absent_ok = not self.strict_usage and "usage" not in payload
        if self.expect_usage and not absent_ok and payload.get("usage", "absent") is not None:
            out.append(self.finding("stream.usage", Severity.LOW,
                                    "usage: null on chunks before the usage chunk",
                                    f"usage: {payload.get('usage', 'absent')!r}", event,
                                    "/usage"))
        for position, choice in enumerate(choices):
            out += self._check_choice(choice, event, f"/choices/{position}")
        return out

    def _check_choice(self, choice: Any, event: Event, at: str) -> list[Finding]:
        if not isinstance(choice, dict) or not is_int(choice.get("index")):
            return [self.finding("stream.schema", Severity.MEDIUM, "choices[] with an index",
                                 "a choice without an integer index", event, f"{at}/index")]
        out: list[Finding] = []
        index = choice["index"]
        if index in self._finished:
            out.append(self.finding("stream.order", Severity.HIGH,
                                    f"nothing for choice {index} after its finish_reason",
                                    f"another chunk for choice {index}", event))
        first = index not in self._seen
        self._seen.add(index)
        out += self.check_choice_fields(choice, first, event)
        finish = choice.get("finish_reason")
        if finish is not None:
            if finish not in self.FINISH_REASONS:
                out.append(self.finding("stream.schema", Severity.MEDIUM,
                                        f"finish_reason one of {sorted(self.FINISH_REASONS)}",
                                        f"finish_reason {finish!r}", event,
                                        f"{at}/finish_reason"))
            self._finished.add(index)
        return out

    def check_choice_fields(self, choice: dict[str, Any], first: bool,
                            event: Event) -> list[Finding]:
        """Family-specific fields of one choice (``first``: the choice's first chunk)."""
        raise NotImplementedError

    def _check_usage_chunk(self, payload: dict[str, Any], event: Event) -> list[Finding]:
        self._usage_seen = True
        usage = payload.get("usage")
        if not isinstance(usage, dict):
            return [self.finding("stream.schema", Severity.MEDIUM,
                                 "a chunk with empty choices carries usage",
                                 "empty choices and no usage", event, "/usage")]
        parts = [usage.get(k) for k in ("prompt_tokens", "completion_tokens", "total_tokens")]
        if not all(is_int(p) for p in parts):
            return [self.finding("stream.usage", Severity.MEDIUM,
                                 "integer prompt, completion and total tokens",
                                 f"usage {usage!r}"[:200], event, "/usage")]
        prompt, completion, total = parts
        if total != prompt + completion:  # type: ignore[operator]
            return [self.finding("stream.usage", Severity.MEDIUM,
                                 "total_tokens = prompt_tokens + completion_tokens",
                                 f"{total} != {prompt} + {completion}", event,
                                 "/usage/total_tokens")]
        return []

    def finish(self) -> list[Finding]:
        """Check what the stream, now ended, never sent."""
        out: list[Finding] = []
        if self.errored:
            return out
        if not self.done:
            out.append(self.finding("stream.terminator", Severity.HIGH,
                                    "the stream ends with data: [DONE]", "no [DONE]"))
        unfinished = sorted(self._seen - self._finished)
        if unfinished:  # a client reads why the choice ended (and that it did) from it
            out.append(self.finding("stream.finish_reason", Severity.HIGH,
                                    "the last chunk of each choice carries a non-null "
                                    "finish_reason",
                                    f"no finish_reason for choice"
                                    f"{'s' if len(unfinished) > 1 else ''} "
                                    f"{', '.join(map(str, unfinished))}"))
        if not self._seen:
            out.append(self.finding("stream.order", Severity.HIGH, "at least one choice chunk",
                                    "no choice chunks"))
        if self.expect_usage and not self._usage_seen:
            out.append(self.finding("stream.usage", Severity.MEDIUM,
                                    "a usage chunk (stream_options.include_usage)",
                                    "no usage chunk"))
        return out
