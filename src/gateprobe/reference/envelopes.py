"""Error envelopes of the two API families, rendered from one exception type.

Handlers raise ``GatewayError`` with a family-neutral *kind*; the app renders it in the envelope,
type names and headers of the route's family (PROTOCOL.md, "Anthropic errors" and
"OpenAI-compatible"), so no handler spells an envelope by hand.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Literal

from starlette.responses import Response

from gateprobe.core.families import ModelWire

Family = ModelWire
"""The envelope a route answers in (the gateway's own APIs render theirs by hand)."""
Kind = Literal[
    "invalid_request",
    "authentication",
    "permission",
    "not_found",
    "request_too_large",
    "rate_limit",
    "api_error",
    "overloaded",
]

# kind -> (HTTP status, Anthropic error type)
_ANTHROPIC: dict[Kind, tuple[int, str]] = {
    "invalid_request": (400, "invalid_request_error"),
    "authentication": (401, "authentication_error"),
    "permission": (403, "permission_error"),
    "not_found": (404, "not_found_error"),
    "request_too_large": (413, "request_too_large"),
    "rate_limit": (429, "rate_limit_error"),
    "api_error": (500, "api_error"),
    "overloaded": (529, "overloaded_error"),
}

# kind -> (HTTP status, OpenAI error type). OpenAI has no 529: overload is 503.
_OPENAI: dict[Kind, tuple[int, str]] = {
    "invalid_request": (400, "invalid_request_error"),
    "authentication": (401, "invalid_request_error"),
    "permission": (403, "invalid_request_error"),
    "not_found": (404, "invalid_request_error"),
    "request_too_large": (413, "invalid_request_error"),
    "rate_limit": (429, "requests"),
    "api_error": (500, "server_error"),
    "overloaded": (503, "server_error"),
}


class GatewayError(Exception):
    """An error answer of the reference gateway, independent of the route's family."""

    def __init__(
        self,
        kind: Kind,
        message: str,
        *,
        param: str | None = None,
        code: str | None = None,
        status: int | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.kind: Kind = kind
        self.message = message
        self.param = param
        self.code = code
        self.status = status
        """Overrides the kind's usual status (the gateway answers 401 for a missing permission)."""
        self.headers = dict(headers or {})


def render(family: Family, error: GatewayError, request_id: str,
           envelope: str = "family") -> Response:
    """The error response in the family's envelope (or the gateway's own, ``envelope``
    ``gateway``: same status, ``{statusCode, message, data: null}``)."""
    if envelope == "gateway":
        status = (_ANTHROPIC if family == "anthropic" else _OPENAI)[error.kind][0]
        status = error.status or status
        body_: dict[str, object] = {"statusCode": status, "message": error.message}
        if status == 402 and error.code:  # the documented insufficient-balance body
            body_["errorType"] = error.code
        body_["data"] = None
        return Response(json.dumps(body_, ensure_ascii=False),
                        status_code=status, headers=error.headers,
                        media_type="application/json")
    if family == "anthropic":
        status, etype = _ANTHROPIC[error.kind]
        body: dict[str, object] = {
            "type": "error",
            "error": {"type": etype, "message": error.message},
            "request_id": request_id,
        }
    else:
        status, etype = _OPENAI[error.kind]
        body = {
            "error": {
                "message": error.message,
                "type": etype,
                "param": error.param,
                "code": error.code,
            }
        }
    return Response(
        json.dumps(body, ensure_ascii=False),
        status_code=error.status or status,
        headers=error.headers,
        media_type="application/json",
    )
