"""Request bodies of the media routes: JSON, form-urlencoded and multipart, read as one.

The gateway documents a form-urlencoded body for image generation (its curl example sends
``--data-urlencode`` fields) where OpenAI documents JSON; edits and transcriptions are
multipart upstream. Every encoding ends in the same dict, checked by the same field table, so a
form value is judged exactly as its JSON twin: ``n=2`` is the integer 2, ``n=two`` is the
400 that ``{"n": "two"}`` gets. A body labelled as a form that is a JSON object is read as JSON
(``curl -d '{...}'`` labels it so, and the chat routes read JSON whatever the label).
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl

from starlette.datastructures import UploadFile

from gateprobe.reference.call import Call
from gateprobe.reference.envelopes import GatewayError
from gateprobe.reference.validate import Field, check_body

_INT = re.compile(r"[+-]?\d+")
_NUMBER = re.compile(r"[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?")
MAX_FILES_BYTES = 4 * 1024 * 1024
"""Upload cap per file (OpenAI: 4 MB for image edits; audio allows 25 MB, a double needs less)."""


@dataclass(frozen=True, slots=True)
class MediaBody:
    """A request's fields (typed as their JSON twins) and its uploaded files."""

    fields: dict[str, Any]
    files: dict[str, bytes] = field(default_factory=dict)
    encoding: str = "json"
    """``json``, ``form`` or ``multipart``."""


async def read_body(call: Call, table: Sequence[Field], file_fields: Sequence[str] = (),
                    ) -> MediaBody:
    """The body in whichever encoding it came, checked against ``table``; file fields are
    taken from multipart parts only (a JSON body cannot carry them)."""
    media_type = call.request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media_type == "application/x-www-form-urlencoded":
        raw = await _raw(call)
        if raw.lstrip()[:1] == b"{":  # curl -d '{...}' without a JSON content type
            body = MediaBody(_json_object(raw))
        else:
            pairs = parse_qsl(raw.decode("utf-8", "replace"), keep_blank_values=True)
            body = MediaBody(_typed(pairs, table), {}, "form")
    elif media_type == "multipart/form-data":
        body = await _multipart(call, table, file_fields)
    else:
        body = MediaBody(await call.json_body())
    check_body("openai", body.fields, [fd for fd in table if fd.name not in file_fields])
    return body


def _json_object(raw: bytes) -> dict[str, Any]:
    """A form-labelled body that is a JSON object, read as JSON (as every other route of the
    gateway reads its body whatever the label: ``curl -d`` labels JSON as a form)."""
    try:
        body = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise GatewayError("invalid_request", "We could not parse the JSON body of your "
                           "request.") from None
    if not isinstance(body, dict):
        raise GatewayError("invalid_request", "The request body must be a JSON object.")
    return body


async def _raw(call: Call) -> bytes:
    cap = call.config.max_body_bytes
    chunks, size = [], 0
    async for chunk in call.request.stream():
        size += len(chunk)
        if size > cap:
            raise GatewayError("request_too_large",
                               f"Request exceeds the maximum allowed number of bytes ({cap}).")
        chunks.append(chunk)
    return b"".join(chunks)


async def _multipart(call: Call, table: Sequence[Field], file_fields: Sequence[str],
                     ) -> MediaBody:
    try:
        form = await call.request.form(max_part_size=MAX_FILES_BYTES)
    except Exception:  # python-multipart's parse errors have no common base class
        raise GatewayError("invalid_request", "Could not parse the multipart form body.") \
            from None
    pairs: list[tuple[str, str]] = []
    files: dict[str, bytes] = {}
    try:
        for name, value in form.multi_items():
            if isinstance(value, UploadFile):
                if name not in file_fields:
                    raise GatewayError("invalid_request", f"Unexpected file field: '{name}'.",
                                       param=name)
                files[name] = await value.read()
            elif name in file_fields:
                raise GatewayError("invalid_request", f"'{name}' must be a file upload.",
                                   param=name)
            else:
                pairs.append((name, value))
    finally:
        await form.close()  # its spooled temporary files
    return MediaBody(_typed(pairs, table), files, "multipart")


def _typed(pairs: list[tuple[str, str]], table: Sequence[Field]) -> dict[str, Any]:
    """Form values as the JSON values they stand for: numbers, booleans, repeated keys (or
    ``name[]``) as arrays; a value that is not what its field wants stays a string, so the
    field table reports it as it would a JSON string."""
    types = {fd.name: fd.types for fd in table}
    out: dict[str, Any] = {}
    for raw_name, value in pairs:
        name = raw_name.removesuffix("[]")
        wanted = types.get(name, ("string",))
        if "array" in wanted:
            out.setdefault(name, []).append(value)
            continue
        out[name] = _scalar(value, wanted)
    return out


def _scalar(value: str, wanted: Sequence[str]) -> Any:
    if "integer" in wanted and _INT.fullmatch(value):
        return int(value)
    if "number" in wanted and _NUMBER.fullmatch(value):
        number = float(value)
        return int(number) if number.is_integer() else number
    if "boolean" in wanted and value in ("true", "false"):
        return value == "true"
    return value
