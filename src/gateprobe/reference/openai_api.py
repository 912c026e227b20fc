"""OpenAI-compatible endpoints: chat completions, legacy completions, embeddings, models.

Shapes follow PROTOCOL.md "OpenAI-compatible" and the upstream response schemas in
``shared/reference``. ``claude-2-web`` follows its gateway document instead: only ``model``,
``messages`` and ``stream`` are read, the messages are serialized into one legacy prompt, and
input above 90,000 tokens is refused.
"""

from __future__ import annotations

import base64
import hashlib
import json
import math
import struct
import time
from collections.abc import Callable, Sequence
from typing import Any

from starlette.responses import Response

from gateprobe.core.tokenizer import count_tokens
from gateprobe.reference import tools
from gateprobe.reference.billing import Usage
from gateprobe.reference.call import Call
from gateprobe.reference.config import Model
from gateprobe.reference.conversations import check_metadata, store_chat
from gateprobe.reference.envelopes import GatewayError
from gateprobe.reference.fakemodel import Generation, generate
from gateprobe.reference.faults import TOOL_REQUIRED_AS_AUTO
from gateprobe.reference.prompt import content_text, serialize_chat
from gateprobe.reference.streaming import HOLE, PlannedEvent, Template, sse
from gateprobe.reference.validate import (
    Field,
    JsonType,
    check_body,
    check_value,
    f,
    invalid,
)

FINISH = {"natural": "stop", "stop_sequence": "stop", "max_tokens": "length"}
FINGERPRINT = "fp_gateprobe"
DONE = b"data: [DONE]\n\n"

_COMMON = (
    f("model", "string", required=True),
    f("stream", "boolean", "null"),
    f("stream_options", "object", "null"),
    f("temperature", "number", "null", ge=0, le=2),
    f("top_p", "number", "null", ge=0, le=1),
    f("n", "integer", "null", ge=1, le=8),
    f("stop", "string", "array", "null", max_items=4),
    f("max_tokens", "integer", "null", ge=1),
    f("presence_penalty", "number", "null", ge=-2, le=2),
    f("frequency_penalty", "number", "null", ge=-2, le=2),
    f("logit_bias", "object", "null"),
    f("seed", "integer", "null"),
    f("user", "string"),
)

CHAT_FIELDS: tuple[Field, ...] = (
    *_COMMON,
    f("messages", "array", required=True, min_items=1),
    f("max_completion_tokens", "integer", "null", ge=1),
    f("logprobs", "boolean", "null"),
    f("top_logprobs", "integer", "null", ge=0, le=20),
    f("response_format", "object"),
    f("tools", "array"),
    f("tool_choice", "string", "object"),
    f("parallel_tool_calls", "boolean"),
    f("functions", "array"),
    f("function_call", "string", "object"),
    f("service_tier", "string", "null"),
    f("store", "boolean", "null"),
    f("metadata", "object", "null"),
    f("modalities", "array", "null"),
    f("reasoning_effort", "string", "null", enum=("minimal", "low", "medium", "high")),
    f("prediction", "object", "null"),
    f("audio", "object", "null"),
    f("web_search_options", "object"),
    f("verbosity", "string", "null", enum=("low", "medium", "high")),
    f("prompt_cache_key", "string"),
    f("safety_identifier", "string"),
)

BASIC_FIELDS: tuple[Field, ...] = (
    f("model", "string", required=True),
    f("messages", "array", required=True, min_items=1),
    f("stream", "boolean", "null"),
)

COMPLETION_FIELDS: tuple[Field, ...] = (
    *_COMMON,
    f("prompt", "string", "array", required=True),
    f("echo", "boolean", "null"),
    f("logprobs", "integer", "null", ge=0, le=5),
    f("best_of", "integer", "null", ge=1, le=20),
    f("suffix", "string", "null"),
)

EMBEDDING_FIELDS: tuple[Field, ...] = (
    f("model", "string", required=True),
    f("input", "string", "array", required=True),
    f("encoding_format", "string", enum=("float", "base64")),
    f("dimensions", "integer", ge=1),
    f("user", "string"),
)

_ROLES = ("system", "developer", "user", "assistant", "tool", "function")
_MESSAGE_FIELDS: tuple[tuple[str, tuple[JsonType, ...]], ...] = (
    ("name", ("string",)), ("tool_call_id", ("string",)), ("tool_calls", ("array",)))


# -- chat ----------------------------------------------------------------------------------
async def chat_completions(call: Call) -> Response:
    """``POST /v1/chat/completions``."""
    call.authenticate()
    body = _checked_chat_body(call, await call.json_body())
    stream = bool(body.get("stream"))
    _check_stream_options(body, stream)
    model = call.resolve_model(body["model"], "chat")
    prompt, prompt_tokens = _chat_prompt(model, body["messages"])
    call.admit(model)
    max_tokens = body.get("max_completion_tokens") or body.get("max_tokens")
    seed = call.config.seed + (body.get("seed") or 0)
    gens = [
        generate(model.id, prompt, max_tokens=max_tokens, stop=_stops(body), seed=seed, index=i)
        for i in range(body.get("n") or 1)
    ]
    completion_tokens = sum(g.tokens for g in gens)
    usage = _usage(prompt_tokens, completion_tokens)
    head = {
        "id": "chatcmpl-" + call.request_id[4:28],
        "created": int(time.time()),
        "model": model.served_as,
        "system_fingerprint": FINGERPRINT,
    }
    calls = tools.calls_for("openai", body, _last_user_text(body["messages"]),
                            call.request_id,
                            TOOL_REQUIRED_AS_AUTO.active(call.config.faults, call.endpoint))
    if calls:
        call.usage = Usage(model.id, prompt_tokens,
                           (body.get("n") or 1) * sum(len(c.pieces) for c in calls), stream)
        return await _chat_tool_calls(call, body, head, calls, prompt_tokens, stream)
    offsets = call.content_offsets(max((g.tokens for g in gens), default=0), prompt)
    call.usage = Usage(model.id, prompt_tokens, completion_tokens, stream)
    plain = {
        **head,
        "object": "chat.completion",
        "choices": [
            {
                "index": i,
                "message": {"role": "assistant", "content": g.text, "refusal": None},
                "logprobs": None,
                "finish_reason": FINISH[g.cause],
            }
            for i, g in enumerate(gens)
        ],
        "usage": usage,
        "service_tier": "default",
    }
    store_chat(call, body, plain)  # store: true keeps it (streamed or not)
    if not stream:
        return await call.respond_json(plain, _last(offsets, call))
    return call.respond_stream(_chat_stream(call, body, head, gens, offsets, usage))


def _last_user_text(messages: list[Any]) -> str:
    users = [m for m in messages if isinstance(m, dict) and m.get("role") == "user"]
    return content_text(users[-1].get("content")) if users else ""


async def _chat_tool_calls(call: Call, body: dict[str, Any], head: dict[str, Any],
                           calls: Sequence[tools.ToolCall], prompt_tokens: int,
                           stream: bool) -> Response:
    """The answer when the model calls tools: every choice makes the same calls (content
    null, ``finish_reason: tool_calls``); a stream opens each call with its id, type and name,
    then sends its arguments a token at a time."""
    n = body.get("n") or 1
    tokens = sum(len(c.pieces) for c in calls)
    usage = _usage(prompt_tokens, tokens * n)
    offsets = call.content_offsets(tokens + len(calls))
    if stream:
        return call.respond_stream(_tool_call_stream(call, body, head, calls, n, offsets,
                                                     usage))
    message = {"role": "assistant", "content": None, "refusal": None,
               "tool_calls": [{"id": c.id, "type": "function",
                               "function": {"name": c.name, "arguments": c.arguments}}
                              for c in calls]}
    choices = [{"index": i, "message": message, "logprobs": None,
                "finish_reason": "tool_calls"} for i in range(n)]
    plain = {**head, "object": "chat.completion", "choices": choices, "usage": usage,
             "service_tier": "default"}
    store_chat(call, body, plain)
    return await call.respond_json(plain, _last(offsets, call))


def _tool_call_stream(call: Call, body: dict[str, Any], head: dict[str, Any],
                      calls: Sequence[tools.ToolCall], n: int, offsets: Sequence[int],
                      usage: dict[str, int]) -> list[PlannedEvent]:
    head, include_usage, chunk = _chunker(head, body)

    plan: list[PlannedEvent] = []
    for i in range(n):
        k = 0
        for j, c in enumerate(calls):
            opening: dict[str, Any] = {"role": "assistant", "content": None} if j == 0 \
                else {}
            opening["tool_calls"] = [{"index": j, "id": c.id, "type": "function",
                                      "function": {"name": c.name, "arguments": ""}}]
            plan.append(PlannedEvent(chunk(i, opening), offsets[k], True))
            k += 1
            for piece in c.pieces:
                fragment = {"tool_calls": [{"index": j, "function": {"arguments": piece}}]}
                plan.append(PlannedEvent(chunk(i, fragment), offsets[k], True))
                k += 1
    end = _last(offsets, call)
    plan += [PlannedEvent(chunk(i, {}, "tool_calls"), end, False) for i in range(n)]
    if include_usage:
        plan.append(PlannedEvent(sse(json.dumps({**head, "choices": [], "usage": usage})),
                                 end, False))
    plan.append(PlannedEvent(DONE, end, False))
    return plan


def _checked_chat_body(call: Call, body: dict[str, Any]) -> dict[str, Any]:
    """The body checked against the fields its model reads, its messages checked too."""
    name = body.get("model")
    model_cfg = call.config.models.get(name) if isinstance(name, str) else None
    if model_cfg is not None and model_cfg.honours_only_basic:
        # claude-2-web: "only the model, messages, and stream parameters are meaningful".
        body = {k: body[k] for k in ("model", "messages", "stream") if k in body}
        check_body("openai", body, BASIC_FIELDS)
    else:
        check_body("openai", body, CHAT_FIELDS)
        check_metadata(body.get("metadata"))  # stored or not, as OpenAI checks it
    _check_messages(body["messages"])
    return body


def _chat_prompt(model: Model, messages: list[Any]) -> tuple[str, int]:
    """The prompt the model sees and its token count, refused beyond the model's input limit."""
    if model.honours_only_basic:
        prompt = serialize_chat(messages)
    else:
        prompt = "".join(f"{m['role']}: {content_text(m.get('content'))}\n" for m in messages)
    prompt_tokens = count_tokens(prompt)
    if model.max_input_tokens is not None and prompt_tokens > model.max_input_tokens:
        raise GatewayError(
            "invalid_request",
            f"This model's input is limited to {model.max_input_tokens} tokens. However, your "
            f"messages resulted in {prompt_tokens} tokens. Please reduce the length of the "
            "messages.",
            param="messages",
            code="context_length_exceeded",
        )
    return prompt, prompt_tokens


def _chat_stream(call: Call, body: dict[str, Any], head: dict[str, Any],
                 gens: Sequence[Generation], offsets: Sequence[int],
                 usage: dict[str, int]) -> list[PlannedEvent]:
    """The planned ``chat.completion.chunk`` stream of the generations."""
    head, include_usage, chunk = _chunker(head, body)

    def first(i: int) -> bytes | None:
        return chunk(i, {"role": "assistant", "content": "", "refusal": None})

    holes = [Template(_chunk_payload(head, i, {"content": HOLE}, None, include_usage))
             for i in range(len(gens))]

    def piece(i: int, text: str) -> bytes:
        return holes[i].fill(text)

    def last(i: int, g: Generation) -> bytes:
        return chunk(i, {}, FINISH[g.cause])

    usage_chunk = None
    if include_usage:
        usage_chunk = sse(json.dumps({**head, "choices": [], "usage": usage}))
    return _plan(gens, offsets, call, first, piece, last, usage_chunk)


def _chunker(head: dict[str, Any], body: dict[str, Any],
             ) -> tuple[dict[str, Any], bool, Callable[..., bytes]]:
    """A chat stream's chunk head, whether it ends with usage, and the function that writes
    one chunk ``(choice index, delta, finish_reason=None)``."""
    include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
    head = {**head, "object": "chat.completion.chunk"}

    def chunk(index: int, delta: dict[str, Any], finish: str | None = None) -> bytes:
        payload = _chunk_payload(head, index, delta, finish, include_usage)
        return sse(json.dumps(payload, ensure_ascii=False))

    return head, include_usage, chunk


def _chunk_payload(head: dict[str, Any], index: int, delta: dict[str, Any], finish: str | None,
                   include_usage: bool) -> dict[str, Any]:
    choice = {"index": index, "delta": delta, "logprobs": None, "finish_reason": finish}
    extra = {"usage": None} if include_usage else {}
    return {**head, "choices": [choice], **extra}


def _check_messages(messages: list[Any]) -> None:
    for i, message in enumerate(messages):
        where = f"messages[{i}]"
        if not isinstance(message, dict):
            invalid("openai", where, f"Invalid type for '{where}': expected an object.", "")
        role = message.get("role")
        if role not in _ROLES:
            check_value("openai", Field(f"{where}.role", ("string",), enum=_ROLES), role)
            invalid("openai", f"{where}.role", f"Missing required parameter: '{where}.role'.", "")
        for name, types in _MESSAGE_FIELDS:
            if name in message:
                check_value("openai", Field(f"{where}.{name}", types), message[name])
        for k, call in enumerate(message.get("tool_calls") or []):
            check_value("openai", Field(f"{where}.tool_calls[{k}]", ("object",)), call)
        content = message.get("content")
        if content is None and role in {"assistant", "tool", "function"}:
            continue
        check_value("openai", Field(f"{where}.content", ("string", "array")), content)
        for j, part in enumerate(content if isinstance(content, list) else []):
            part_at = f"{where}.content[{j}]"
            check_value("openai", Field(part_at, ("object",)), part)
            check_value("openai", Field(f"{part_at}.type", ("string",)), part.get("type"))
            if "text" in part:
                check_value("openai", Field(f"{part_at}.text", ("string",)), part["text"])


def _check_stream_options(body: dict[str, Any], stream: bool) -> None:
    options = body.get("stream_options")
    if isinstance(options, dict) and "include_usage" in options:
        check_value("openai", Field("stream_options.include_usage", ("boolean",)),
                    options["include_usage"])
    if options is not None and not stream:
        invalid(
            "openai",
            "stream_options",
            "The 'stream_options' parameter is only allowed when 'stream' is enabled.",
            "",
        )


def _stops(body: dict[str, Any]) -> list[str]:
    stop = body.get("stop")
    if isinstance(stop, str):
        return [stop]
    if isinstance(stop, list):
        for s in stop:
            check_value("openai", Field("stop[]", ("string",)), s)
        return list(stop)
    return []


def _usage(prompt_tokens: int, completion_tokens: int) -> dict[str, int]:
    return {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
    }


def _last(offsets: Sequence[int], call: Call) -> int:
    return offsets[-1] if offsets else int(call.config.timing.ttft_ms * 1e6)


def _plan(
    gens: Sequence[Generation],
    offsets: Sequence[int],
    call: Call,
    first: Callable[[int], bytes | None],
    piece: Callable[[int, str], bytes],
    last: Callable[[int, Generation], bytes],
    usage_chunk: bytes | None,
) -> list[PlannedEvent]:
    """Interleave choices token by token on the shared schedule, then close each, then [DONE]."""
    start = offsets[0] if offsets else int(call.config.timing.ttft_ms * 1e6)
    # The role chunk leaves with the first token, not before: a gateway that flushes an empty
    # chunk early makes time-to-first-byte look like time-to-first-token.
    plan = [PlannedEvent(data, start, False) for i in range(len(gens)) if (data := first(i))]
    for k, offset in enumerate(offsets):
        for i, g in enumerate(gens):
            if k < g.tokens:
                plan.append(PlannedEvent(piece(i, g.pieces[k]), offset, True))
    end = _last(offsets, call)
    plan.extend(PlannedEvent(last(i, g), end, False) for i, g in enumerate(gens))
    if usage_chunk is not None:
        plan.append(PlannedEvent(usage_chunk, end, False))
    plan.append(PlannedEvent(DONE, end, False))
    return plan


# -- legacy completions ----------------------------------------------------------------------
async def completions(call: Call) -> Response:
    """``POST /v1/completions`` (legacy ``text_completion``)."""
    call.authenticate()
    body = await call.json_body()
    check_body("openai", body, COMPLETION_FIELDS)
    prompts = _prompts(body["prompt"])
    stream = bool(body.get("stream"))
    _check_stream_options(body, stream)
    model = call.resolve_model(body["model"], "completions")
    call.admit(model)
    n = body.get("n") or 1
    max_tokens = body.get("max_tokens") or 16
    seed = call.config.seed + (body.get("seed") or 0)
    echo = bool(body.get("echo"))
    gens: list[Generation] = []
    prompt_tokens = 0
    for text, tokens in prompts:
        prompt_tokens += tokens
        gens.extend(
            generate(model.id, text, max_tokens=max_tokens, stop=_stops(body), seed=seed, index=j)
            for j in range(n)
        )
    usage = _usage(prompt_tokens, sum(g.tokens for g in gens))
    call.usage = Usage(model.id, prompt_tokens, usage["completion_tokens"], stream)
    head = {
        "id": "cmpl-" + call.request_id[4:28],
        "object": "text_completion",
        "created": int(time.time()),
        "model": model.served_as,
        "system_fingerprint": FINGERPRINT,
    }
    offsets = call.content_offsets(max((g.tokens for g in gens), default=0),
                                   "".join(text for text, _ in prompts))

    def prefix(i: int) -> str:
        return prompts[i // n][0] if echo else ""

    if not stream:
        choices = [
            {"text": prefix(i) + g.text, "index": i, "logprobs": None,
             "finish_reason": FINISH[g.cause]}
            for i, g in enumerate(gens)
        ]
        return await call.respond_json(
            {**head, "choices": choices, "usage": usage}, _last(offsets, call)
        )
    return call.respond_stream(_completion_stream(call, body, head, gens, offsets, usage,
                                                  prefix if echo else None))


def _completion_stream(call: Call, body: dict[str, Any], head: dict[str, Any],
                       gens: Sequence[Generation], offsets: Sequence[int],
                       usage: dict[str, int], prefix: Callable[[int], str] | None,
                       ) -> list[PlannedEvent]:
    """The planned ``text_completion`` stream; ``prefix`` is a choice's echoed prompt."""
    include_usage = bool((body.get("stream_options") or {}).get("include_usage"))

    def payload(i: int, text: str, finish: str | None = None) -> dict[str, Any]:
        choice = {"text": text, "index": i, "logprobs": None, "finish_reason": finish}
        extra = {"usage": None} if include_usage else {}
        return {**head, "choices": [choice], **extra}

    def chunk(i: int, text: str, finish: str | None = None) -> bytes:
        return sse(json.dumps(payload(i, text, finish), ensure_ascii=False))

    holes = [Template(payload(i, HOLE)) for i in range(len(gens))]

    return _plan(
        gens,
        offsets,
        call,
        # Without echo there is nothing to open a choice with: the first token opens it.
        (lambda i: chunk(i, prefix(i))) if prefix is not None else (lambda i: None),
        lambda i, text: holes[i].fill(text),
        lambda i, g: chunk(i, "", FINISH[g.cause]),
        sse(json.dumps({**head, "choices": [], "usage": usage})) if include_usage else None,
    )


def _is_token(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _prompts(prompt: Any, param: str = "prompt") -> list[tuple[str, int]]:
    """(text, token count) per prompt; token-id prompts count one token per id."""
    if isinstance(prompt, str):
        return [(prompt, count_tokens(prompt))]
    if not prompt:
        invalid("openai", param, f"Invalid '{param}': expected a non-empty array.", "")
    if all(isinstance(p, str) for p in prompt):
        return [(p, count_tokens(p)) for p in prompt]
    if all(_is_token(t) for t in prompt):
        return [(" ".join(map(str, prompt)), len(prompt))]
    if all(isinstance(p, list) and all(_is_token(t) for t in p) for p in prompt):
        return [(" ".join(map(str, p)), len(p)) for p in prompt]
    invalid(
        "openai",
        param,
        f"Invalid type for '{param}': expected a string, an array of strings, an array of "
        "tokens or an array of token arrays.",
        "",
    )


# -- embeddings ------------------------------------------------------------------------------
async def embeddings(call: Call) -> Response:
    """``POST /v1/embeddings``: deterministic unit vectors, float or base64 float32."""
    call.authenticate()
    body = await call.json_body()
    check_body("openai", body, EMBEDDING_FIELDS)
    inputs = _embedding_inputs(body["input"])
    model = call.resolve_model(body["model"], "embeddings")
    dims = body.get("dimensions") or model.embedding_dims
    if dims > model.embedding_dims:
        invalid("openai", "dimensions", f"Invalid 'dimensions': this model supports at most "
                f"{model.embedding_dims}.", "")
    call.admit(model)
    b64 = body.get("encoding_format") == "base64"
    data = []
    for i, (text, _) in enumerate(inputs):
        vector = embed(f"{model.id}\x00{call.config.seed}\x00{text}", dims)
        value: Any = (
            base64.b64encode(struct.pack(f"<{dims}f", *vector)).decode() if b64 else vector
        )
        data.append({"object": "embedding", "index": i, "embedding": value})
    tokens = sum(t for _, t in inputs)
    call.usage = Usage(model.id, tokens, 0)
    return await call.respond_json(
        {
            "object": "list",
            "data": data,
            "model": model.served_as,
            "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
        },
        0,
    )


def _embedding_inputs(value: Any) -> list[tuple[str, int]]:
    if isinstance(value, str):
        if not value:
            invalid("openai", "input", "'$.input' is invalid: it must not be empty.", "")
        return [(value, count_tokens(value))]
    if not value or len(value) > 2048:
        invalid("openai", "input", "'$.input' is invalid: expected 1 to 2048 inputs.", "")
    if any(v == "" or v == [] for v in value):
        invalid("openai", "input", "'$.input' is invalid: inputs must not be empty.", "")
    return _prompts(value, "input")


def embed(text: str, dims: int) -> list[float]:
    """A deterministic unit vector for ``text`` (float32 precision, as the API returns)."""
    raw = hashlib.shake_256(text.encode("utf-8", "surrogatepass")).digest(4 * dims)
    ints = struct.unpack(f"<{dims}I", raw)
    centred = [i / 2**31 - 1.0 for i in ints]
    norm = math.sqrt(sum(x * x for x in centred)) or 1.0
    # Round through float32 so float and base64 encodings carry the same numbers.
    return list(struct.unpack(f"<{dims}f", struct.pack(f"<{dims}f", *(x / norm for x in centred))))


# -- models ----------------------------------------------------------------------------------
async def list_models(call: Call) -> Response:
    """``GET /v1/models`` in the OpenAI shape."""
    call.authenticate()
    data = [_model_json(m) for m in call.config.models.values()]
    return Response(
        json.dumps({"object": "list", "data": data}), headers=call.headers,
        media_type="application/json",
    )


async def get_model(call: Call) -> Response:
    """``GET /v1/models/{model}`` in the OpenAI shape."""
    call.authenticate()
    name = call.request.path_params["model"]
    model = call.config.models.get(name)
    if model is None:
        raise call._unknown_model(name)
    return Response(json.dumps(_model_json(model)), headers=call.headers,
                    media_type="application/json")


def _model_json(model: Any) -> dict[str, Any]:
    return {"id": model.id, "object": "model", "created": model.created,
            "owned_by": model.owned_by}
