"""What the seeds' gateway's own APIs (Midjourney tasks, search proxies) share: Bearer auth
against the gateway's keys, bodies sent as JSON or as a form, and the ``{statusCode, message,
data}`` envelope (seeds-extra §2, §4, §5).

gateprobe's reading where the docs are silent: an error's HTTP status equals its
``statusCode``; a key may also come as ``?key=`` (third-party search clients send it so).
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from gateprobe.reference.config import ApiKey, GatewayConfig
from gateprobe.reference.faults import GATEWAY_ACCEPT_ANY_KEY, GATEWAY_ERROR_NOT_ENVELOPED

MISSING: Any = object()
"""An absent field (``fields.get(name, MISSING)``): a present one, null or empty, is checked."""
FORM = "\x00form"
"""A key ``read_fields`` adds to a form's fields: its values are all text."""
BAD_KEY_MESSAGE = ("Incorrect API key provided. You can get your API key at "
                   "https://www.ohmygpt.com/settings")
"""The gateway's own words for a bad key (seeds-extra §5, a real answer)."""


class ApiError(Exception):
    """An answer other than success, rendered in the gateway's envelope."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def ok(data: Any) -> Response:
    """A success in the envelope."""
    return JSONResponse({"statusCode": 200, "message": "Success", "data": data})


def error_response(config: GatewayConfig, path: str, error: ApiError) -> Response:
    """An error in the envelope (or, under a fault, in OpenAI's, as a misconfigured proxy
    would answer)."""
    if GATEWAY_ERROR_NOT_ENVELOPED.active(config.faults, path):
        return JSONResponse({"error": {"message": error.message, "type": "invalid_request_error",
                                       "code": None}}, status_code=error.status)
    return JSONResponse({"statusCode": error.status, "message": error.message, "data": None},
                        status_code=error.status)


def authenticate(request: Request, config: GatewayConfig) -> ApiKey:
    """The caller's key: ``Authorization: Bearer`` (or ``?key=``), known to the gateway."""
    header = request.headers.get("authorization", "")
    token = header[7:].strip() if header.lower().startswith("bearer ") else \
        request.query_params.get("key", "")
    key = config.keys.get(token)
    if key is not None:
        return key
    if GATEWAY_ACCEPT_ANY_KEY.active(config.faults, request.url.path):
        return ApiKey(token or "anonymous", "free", None)
    raise ApiError(401, BAD_KEY_MESSAGE)


async def read_fields(request: Request) -> dict[str, Any]:
    """The body's fields, from JSON or from a form (both are documented, §8)."""
    media = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media in ("application/x-www-form-urlencoded", "multipart/form-data"):
        try:
            form = await request.form()
        except Exception:  # a multipart body without its boundary, say: the client's mistake
            raise ApiError(400, "The form body cannot be read.") from None
        fields: dict[str, Any] = {FORM: True}
        for name in form:
            values = [v for v in form.getlist(name) if isinstance(v, str)]
            fields[name] = values if len(values) > 1 else values[0] if values else ""
        return fields
    raw = await request.body()
    if not raw.strip():
        return {}
    try:
        body = json.loads(raw)
    except ValueError:
        raise ApiError(400, "The request body is not valid JSON.") from None
    if not isinstance(body, dict):
        raise ApiError(400, "The request body must be a JSON object.")
    return body


def require_text(fields: dict[str, Any], name: str) -> str:
    """A required, non-empty string field."""
    value = fields.get(name)
    if not isinstance(value, str) or not value:
        raise ApiError(400, f"'{name}' is required and must be a non-empty string.")
    return value


def optional_text(fields: dict[str, Any], name: str) -> str | None:
    """An optional string field: absent, or a string."""
    value = fields.get(name)
    if name in fields and not isinstance(value, str):  # null too: it is not a string
        raise ApiError(400, f"'{name}' must be a string.")
    return value


def int_field(value: Any, name: str, low: int, high: int | None, default: int,
              text: bool = True) -> int:
    """An integer field within ``low..high``; as text only where ``text`` (a form or a query
    string sends every value so; JSON has numbers)."""
    if value is MISSING:
        return default
    if isinstance(value, float) and value.is_integer():
        value = int(value)  # JSON Schema: 3.0 is an integer
    if isinstance(value, bool) or not (isinstance(value, int) or text and isinstance(value, str)):
        raise ApiError(400, f"'{name}' must be an integer.")
    try:
        number = int(value)
    except ValueError:
        raise ApiError(400, f"'{name}' must be an integer.") from None
    if number < low or (high is not None and number > high):
        bound = f"between {low} and {high}" if high is not None else f"at least {low}"
        raise ApiError(400, f"'{name}' must be {bound}.")
    return number


Endpoint = Callable[[Request], Awaitable[Response]]


class AnyMethodRoute(Route):
    """A route every method reaches, so that a wrong one gets 405 in the envelope (Starlette's
    own 405 is an exception for middleware the reference gateway does without: a 500)."""

    def __init__(self, path: str, method: str, endpoint: Endpoint,
                 config: GatewayConfig) -> None:
        async def checked(request: Request) -> Response:
            if request.method != method:
                response = error_response(config, path, ApiError(
                    405, f"Method {request.method} is not allowed on {path}."))
                response.headers["allow"] = method
                return response
            return await endpoint(request)

        super().__init__(path, checked)
        self.methods = None  # Route takes None to mean GET for functions; here: any
