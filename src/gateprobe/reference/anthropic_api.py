"""Anthropic-compatible endpoints: legacy ``/v1/complete``, Messages, count_tokens, models.

Shapes follow PROTOCOL.md ("Anthropic legacy Text Completions", "Anthropic Messages") and the
seeds: the gateway's ``/v1/complete`` answer also carries ``stop`` and a ``log_id``.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from starlette.responses import Response

from gateprobe.core.tokenizer import count_tokens
from gateprobe.reference import tools
from gateprobe.reference.billing import Usage
from gateprobe.reference.call import LEGACY_ANTHROPIC_VERSION, Call
from gateprobe.reference.config import Model
from gateprobe.reference.envelopes import GatewayError
from gateprobe.reference.fakemodel import Generation, generate
from gateprobe.reference.faults import (
    LEGACY_PROMPT_NO_REPAIR,
    LEGACY_PROMPT_UNCHECKED,
    TOOL_REQUIRED_AS_AUTO,
)
from gateprobe.reference.prompt import ASSISTANT, HUMAN, normalize_prompt, prompt_error
from gateprobe.reference.streaming import HOLE, PlannedEvent, Template, sse
from gateprobe.reference.validate import Field, check_body, check_value, f, invalid

COMPLETE_FIELDS: tuple[Field, ...] = (
    f("model", "string", required=True),
    f("prompt", "string", required=True, min_len=1),
    f("max_tokens_to_sample", "integer", required=True, ge=1),
    f("stop_sequences", "array"),
    f("temperature", "number", ge=0, le=1),
    f("top_p", "number", ge=0, le=1),
    f("top_k", "integer", ge=1),
    f("metadata", "object"),
    f("stream", "boolean"),
)

_MESSAGE_COMMON = (
    f("model", "string", required=True),
    f("messages", "array", required=True, min_items=1),
    f("system", "string", "array"),
    f("tools", "array"),
    f("tool_choice", "object"),
    f("thinking", "object"),
    f("mcp_servers", "array"),
)

MESSAGES_FIELDS: tuple[Field, ...] = (
    *_MESSAGE_COMMON,
    f("max_tokens", "integer", required=True, ge=1),
    f("stop_sequences", "array"),
    f("stream", "boolean"),
    f("temperature", "number", ge=0, le=1),
    f("top_p", "number", ge=0, le=1),
    f("top_k", "integer", ge=0),
    f("metadata", "object"),
    f("service_tier", "string", enum=("auto", "standard_only")),
    f("container", "string", "object", "null"),
)

COUNT_FIELDS: tuple[Field, ...] = _MESSAGE_COMMON

DEFAULT_STOP = HUMAN
"""The legacy models stop on ``\\n\\nHuman:`` whatever ``stop_sequences`` says."""

_BLOCK_TYPES = (
    "text", "image", "document", "tool_use", "tool_result", "thinking", "redacted_thinking",
    "search_result", "server_tool_use", "web_search_tool_result", "container_upload",
)
_PING = sse('{"type": "ping"}', "ping")


# -- legacy text completions ---------------------------------------------------------------------
async def complete(call: Call) -> Response:
    """``POST /v1/complete``: legacy Text Completions with prompt validation."""
    call.authenticate()
    call.check_anthropic_version()
    body = await call.json_body()
    check_body("anthropic", body, COMPLETE_FIELDS)
    _check_metadata(body)
    stops = _string_list(body.get("stop_sequences", []), "stop_sequences")
    faults = call.config.faults
    prompt = body["prompt"]
    if not LEGACY_PROMPT_NO_REPAIR.active(faults, call.endpoint):
        prompt = normalize_prompt(prompt)
    problem = prompt_error(prompt)
    if problem is not None and not LEGACY_PROMPT_UNCHECKED.active(faults, call.endpoint):
        raise GatewayError("invalid_request", problem, param="prompt")
    model = call.resolve_model(body["model"], "complete")
    call.admit(model)
    gen = generate(model.id, prompt, max_tokens=body["max_tokens_to_sample"],
                   stop=[DEFAULT_STOP, *stops], seed=call.config.seed)
    stop_reason, stop = _legacy_stop(gen)
    ident = "compl_" + call.request_id[4:28]
    extra = {"log_id": _log_id(call)} if call.config.profile == "ohmygpt" else {}
    offsets = call.content_offsets(gen.tokens)
    end = offsets[-1] if offsets else int(call.config.timing.ttft_ms * 1e6)
    call.usage = Usage(model.id, count_tokens(prompt), gen.tokens, bool(body.get("stream")))
    if not body.get("stream"):
        return await call.respond_json(
            {"type": "completion", "id": ident, "completion": gen.text,
             "stop_reason": stop_reason, "model": model.served_as, "stop": stop, **extra},
            end,
        )

    def event(text: str, reason: str | None, stop_seq: str | None) -> dict[str, Any]:
        return {"type": "completion", "id": ident, "completion": text, "stop_reason": reason,
                "model": model.served_as, "stop": stop_seq, **extra}

    plan: list[PlannedEvent] = []
    if call.anthropic_version == LEGACY_ANTHROPIC_VERSION:
        # Before 2023-06-01: unnamed events, cumulative completions, a final [DONE].
        cumulative = Template(event(HOLE, None, None))
        so_far = ""
        for piece, offset in zip(gen.pieces, offsets, strict=True):
            so_far += piece
            plan.append(PlannedEvent(cumulative.fill(so_far), offset, True))
        plan.append(PlannedEvent(sse(_dumps(event(so_far, stop_reason, stop))), end, False))
        plan.append(PlannedEvent(b"data: [DONE]\n\n", end, False))
        return call.respond_stream(plan)
    delta = Template(event(HOLE, None, None), "completion")
    plan.append(PlannedEvent(_PING, 0, False))
    plan.extend(PlannedEvent(delta.fill(piece), offset, True)
                for piece, offset in zip(gen.pieces, offsets, strict=True))
    plan.append(PlannedEvent(sse(_dumps(event("", stop_reason, stop)), "completion"), end, False))
    return call.respond_stream(plan)


def _legacy_stop(gen: Generation) -> tuple[str, str | None]:
    if gen.cause == "max_tokens":
        return "max_tokens", None
    if gen.cause == "stop_sequence":
        return "stop_sequence", gen.stop_sequence
    return "stop_sequence", DEFAULT_STOP  # the model ended its turn: it "emitted" Human:


def _log_id(call: Call) -> str:
    return hashlib.sha256(call.request_id.encode()).hexdigest()


# -- messages ------------------------------------------------------------------------------------
async def messages(call: Call) -> Response:
    """``POST /v1/messages``: Messages API, with the full streaming event grammar."""
    call.authenticate()
    call.check_anthropic_version()
    body = await call.json_body()
    check_body("anthropic", body, MESSAGES_FIELDS)
    _check_metadata(body)
    prompt = _render(body)
    stops = _string_list(body.get("stop_sequences", []), "stop_sequences")
    model = call.resolve_model(body["model"], "messages")
    call.admit(model)
    input_tokens = count_tokens(prompt)
    calls = tools.calls_for("anthropic", body, _last_user_text(body), call.request_id,
                            TOOL_REQUIRED_AS_AUTO.active(call.config.faults, call.endpoint))
    if calls:
        return await _tool_use(call, body, model, calls, input_tokens)
    gen = generate(model.id, prompt, max_tokens=body["max_tokens"], stop=stops,
                   seed=call.config.seed)
    stop_reason = {"natural": "end_turn", "max_tokens": "max_tokens",
                   "stop_sequence": "stop_sequence"}[gen.cause]
    message = {
        "id": "msg_" + call.request_id[4:28],
        "type": "message",
        "role": "assistant",
        "model": model.served_as,
        "content": [{"type": "text", "text": gen.text}],
        "stop_reason": stop_reason,
        "stop_sequence": gen.stop_sequence,
        "usage": {"input_tokens": input_tokens, "output_tokens": gen.tokens},
    }
    offsets = call.content_offsets(gen.tokens)
    end = offsets[-1] if offsets else int(call.config.timing.ttft_ms * 1e6)
    call.usage = Usage(model.id, input_tokens, gen.tokens, bool(body.get("stream")))
    if not body.get("stream"):
        return await call.respond_json(message, end)
    start = {**message, "content": [], "stop_reason": None, "stop_sequence": None,
             "usage": {"input_tokens": input_tokens, "output_tokens": 1}}

    def ev(payload: dict[str, Any]) -> bytes:
        return sse(_dumps(payload), str(payload["type"]))

    plan = [
        PlannedEvent(ev({"type": "message_start", "message": start}), 0, False),
        PlannedEvent(ev({"type": "content_block_start", "index": 0,
                         "content_block": {"type": "text", "text": ""}}), 0, False),
        PlannedEvent(_PING, 0, False),
    ]
    delta = Template({"type": "content_block_delta", "index": 0,
                      "delta": {"type": "text_delta", "text": HOLE}}, "content_block_delta")
    plan.extend(PlannedEvent(delta.fill(piece), offset, True)
                for piece, offset in zip(gen.pieces, offsets, strict=True))
    plan += [
        PlannedEvent(ev({"type": "content_block_stop", "index": 0}), end, False),
        PlannedEvent(ev({"type": "message_delta",
                         "delta": {"stop_reason": stop_reason,
                                   "stop_sequence": gen.stop_sequence},
                         "usage": {"output_tokens": gen.tokens}}), end, False),
        PlannedEvent(ev({"type": "message_stop"}), end, False),
    ]
    return call.respond_stream(plan)


def _last_user_text(body: dict[str, Any]) -> str:
    users = [m for m in body["messages"] if m.get("role") == "user"]
    content = users[-1]["content"] if users else ""
    return content if isinstance(content, str) else "".join(
        str(b.get("text", "")) for b in content if isinstance(b, dict))


async def _tool_use(call: Call, body: dict[str, Any], model: Model,
                    calls: Sequence[tools.ToolCall], input_tokens: int) -> Response:
    """The answer when the model calls tools: one ``tool_use`` block per call and
    ``stop_reason: tool_use``; a stream opens each block with ``input: {}`` and sends the
    input as ``input_json_delta`` fragments, a token at a time."""
    tokens = sum(len(c.pieces) for c in calls)
    call.usage = Usage(model.id, input_tokens, tokens, bool(body.get("stream")))
    message = {
        "id": "msg_" + call.request_id[4:28], "type": "message", "role": "assistant",
        "model": model.served_as,
        "content": [{"type": "tool_use", "id": c.id, "name": c.name,
                     "input": json.loads(c.arguments)} for c in calls],
        "stop_reason": "tool_use", "stop_sequence": None,
        "usage": {"input_tokens": input_tokens, "output_tokens": tokens},
    }
    offsets = call.content_offsets(tokens + len(calls))
    end = offsets[-1] if offsets else int(call.config.timing.ttft_ms * 1e6)
    if not body.get("stream"):
        return await call.respond_json(message, end)

    def ev(payload: dict[str, Any], at: int, content: bool = False) -> PlannedEvent:
        return PlannedEvent(sse(_dumps(payload), str(payload["type"])), at, content)

    start = {**message, "content": [], "stop_reason": None,
             "usage": {"input_tokens": input_tokens, "output_tokens": 1}}
    plan = [ev({"type": "message_start", "message": start}, 0), PlannedEvent(_PING, 0, False)]
    k = 0
    for index, c in enumerate(calls):
        plan.append(ev({"type": "content_block_start", "index": index, "content_block": {
            "type": "tool_use", "id": c.id, "name": c.name, "input": {}}}, offsets[k], True))
        k += 1
        for piece in c.pieces:
            plan.append(ev({"type": "content_block_delta", "index": index, "delta": {
                "type": "input_json_delta", "partial_json": piece}}, offsets[k], True))
            k += 1
        plan.append(ev({"type": "content_block_stop", "index": index}, offsets[k - 1]))
    plan += [ev({"type": "message_delta", "delta": {"stop_reason": "tool_use",
                                                    "stop_sequence": None},
                 "usage": {"output_tokens": tokens}}, end),
             ev({"type": "message_stop"}, end)]
    return call.respond_stream(plan)


async def count_message_tokens(call: Call) -> Response:
    """``POST /v1/messages/count_tokens``."""
    call.authenticate()
    call.check_anthropic_version()
    body = await call.json_body()
    check_body("anthropic", body, COUNT_FIELDS)
    prompt = _render(body)
    call.resolve_model(body["model"], "messages")
    return Response(_dumps({"input_tokens": count_tokens(prompt)}), headers=call.headers,
                    media_type="application/json")


def _render(body: dict[str, Any]) -> str:
    """Validate system and messages, and render them as one prompt for the fake model."""
    system = body.get("system", "")
    if isinstance(system, list):
        system = "".join(_block_text(b, f"system.{i}") for i, b in enumerate(system))
    turns: list[str] = []
    for i, message in enumerate(body["messages"]):
        where = f"messages.{i}"
        if not isinstance(message, dict):
            invalid("anthropic", where, "", f"{where}: Input should be a valid dictionary")
        check_body("anthropic", message, (
            f("role", "string", required=True, enum=("user", "assistant")),
            f("content", "string", "array", required=True),
        ), where=f"{where}.")
        content = message["content"]
        if isinstance(content, list):
            content = "".join(_block_text(b, f"{where}.content.{j}")
                              for j, b in enumerate(content))
        marker = HUMAN if message["role"] == "user" else ASSISTANT
        turns.append(f"{marker} {content}")
    return str(system) + "".join(turns) + ASSISTANT


def _block_text(block: Any, where: str) -> str:
    if not isinstance(block, dict):
        invalid("anthropic", where, "", f"{where}: Input should be a valid dictionary")
    kind = block.get("type")
    if kind not in _BLOCK_TYPES:
        check_value("anthropic", Field(f"{where}.type", ("string",), enum=_BLOCK_TYPES), kind)
        invalid("anthropic", where, "", f"{where}.type: Field required")
    if kind == "text":
        text = block.get("text")
        check_value("anthropic", Field(f"{where}.text", ("string",)), text)
        return str(text)
    return ""


def _check_metadata(body: dict[str, Any]) -> None:
    """``metadata`` holds at most a ``user_id`` (a string, or null)."""
    metadata = body.get("metadata")
    if isinstance(metadata, dict):
        check_body("anthropic", metadata, (f("user_id", "string", "null", max_len=256),),
                   where="metadata.")


def _string_list(value: Any, name: str) -> list[str]:
    for i, item in enumerate(value):
        check_value("anthropic", Field(f"{name}.{i}", ("string",)), item)
    return list(value)


def _dumps(payload: Any) -> str:
    return json.dumps(payload, ensure_ascii=False)


# -- models --------------------------------------------------------------------------------------
async def list_models(call: Call) -> Response:
    """``GET /v1/models`` in Anthropic's shape (profile ``anthropic``)."""
    call.authenticate()
    call.check_anthropic_version()
    data = [_model_json(m) for m in call.config.models.values()]
    body = {"data": data, "has_more": False,
            "first_id": data[0]["id"] if data else None,
            "last_id": data[-1]["id"] if data else None}
    return Response(_dumps(body), headers=call.headers, media_type="application/json")


async def get_model(call: Call) -> Response:
    """``GET /v1/models/{model}`` in Anthropic's shape."""
    call.authenticate()
    call.check_anthropic_version()
    name = call.request.path_params["model"]
    model = call.config.models.get(name)
    if model is None:
        raise GatewayError("not_found", f"model: {name}")
    return Response(_dumps(_model_json(model)), headers=call.headers,
                    media_type="application/json")


def _model_json(model: Any) -> dict[str, Any]:
    created = datetime.fromtimestamp(model.created, UTC).isoformat().replace("+00:00", "Z")
    return {"type": "model", "id": model.id, "display_name": model.id, "created_at": created}

