"""The Anthropic family's error envelope, shared by Messages and legacy Text Completions."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import jsonschema

ERROR_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["type", "error"],
    "properties": {
        "type": {"const": "error"},
        "error": {
            "type": "object",
            "required": ["type", "message"],
            "properties": {"type": {"type": "string"}, "message": {"type": "string"}},
        },
        "request_id": {"type": "string"},
    },
}
"""Anthropic's ``{"type": "error", "error": {type, message}}`` (``request_id`` optional)."""

_ERROR_VALIDATOR = jsonschema.Draft202012Validator(ERROR_SCHEMA)


@dataclass(frozen=True, slots=True)
class ApiError:
    """An error answer's envelope, read."""

    type: str
    message: str
    request_id: str | None = None


def parse_error(payload: object) -> ApiError | None:
    """The error in an Anthropic envelope, or None if ``payload`` is not one."""
    if not _ERROR_VALIDATOR.is_valid(payload):
        return None
    assert isinstance(payload, dict)
    return ApiError(payload["error"]["type"], payload["error"]["message"],
                    payload.get("request_id"))
