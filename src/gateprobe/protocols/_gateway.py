"""The seeds' gateway's own error envelope: ``{"statusCode", "message", "errorType"?, "data"}``.

Its documentation shows it on the management API and, in real answers, on the model routes too
(a 401 on ``/v1/chat/completions``: ``{"statusCode":401,"message":"Incorrect API key
provided...","data":null}``). Under the ``ohmygpt`` profile it is accepted wherever the family's
envelope is; under the others it is not the documented shape.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import jsonschema

ERROR_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["statusCode", "message"],
    "properties": {
        "statusCode": {"type": "integer"},
        "message": {"type": "string"},
        "errorType": {"type": "string"},
        "data": {"type": "null"},
    },
}
_VALIDATOR = jsonschema.Draft202012Validator(ERROR_SCHEMA)


@dataclass(frozen=True, slots=True)
class GatewayError:
    """The parts of a gateway error."""

    status_code: int
    message: str
    type: str | None
    """``errorType`` when the gateway names one (``insufficient_balance_error``...)."""


def parse_error(payload: object) -> GatewayError | None:
    """The error in the gateway's envelope, or None if ``payload`` is not one."""
    if not _VALIDATOR.is_valid(payload):
        return None
    assert isinstance(payload, dict)
    return GatewayError(payload["statusCode"], payload["message"], payload.get("errorType"))
