"""OpenAI's Responses API: ``POST /v1/responses`` (plain, streamed, background), and the stored
response's ``GET``/``DELETE``, ``/cancel`` and ``/input_items``.

Shapes follow OpenAI's API reference (the openai SDK's ``types/responses`` are generated from
it). The fake model reads the whole conversation: the chain of ``previous_response_id`` (or the
conversation's items), the instructions and this input, so a continuation answers differently
and bills the prior turns as input, as OpenAI documents. Function tools are called as the chat
route calls them (``reference/tools.py``); ``text.format`` ``json_schema`` is answered with the
smallest instance of the schema. A stream is the typed semantic events, each named by its
``type`` and numbered by ``sequence_number`` from 0.
"""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from starlette.responses import Response

from gateprobe.core.tokenizer import count_tokens, tokenize
from gateprobe.reference import tools
from gateprobe.reference.billing import Usage
from gateprobe.reference.call import Call
from gateprobe.reference.config import Model
from gateprobe.reference.envelopes import GatewayError
from gateprobe.reference.fakemodel import generate
from gateprobe.reference.faults import (
    CONVERSATION_ITEMS_LOST,
    RESPONSES_CANCEL_IGNORED,
    RESPONSES_DELETED_SERVED,
    RESPONSES_FORMAT_IGNORED,
    RESPONSES_NOT_STORED,
    RESPONSES_PREVIOUS_IGNORED,
    RESPONSES_STORE_FALSE_KEPT,
    RESPONSES_USAGE_INCONSISTENT,
)
from gateprobe.reference.prompt import content_text
from gateprobe.reference.stored import StoredResponse
from gateprobe.reference.streaming import PlannedEvent, sse
from gateprobe.reference.validate import check_body, f, invalid

Handler = Callable[[Call], Awaitable[Response]]

CREATE = "/v1/responses"
ONE = "/v1/responses/{response_id}"
CANCEL = "/v1/responses/{response_id}/cancel"
INPUT_ITEMS = "/v1/responses/{response_id}/input_items"
BACKGROUND_MIN_S = 0.5
"""A background response stays queued at least this long (time enough to cancel it)."""
TERMINAL = frozenset({"completed", "failed", "incomplete", "cancelled"})

RESPONSE_FIELDS = (
    f("model", "string", required=True),
    f("input", "string", "array"),
    f("instructions", "string", "null"),
    f("previous_response_id", "string", "null"),
    f("conversation", "string", "object", "null"),
    f("store", "boolean", "null"),
    f("stream", "boolean", "null"),
    f("stream_options", "object", "null"),
    f("background", "boolean", "null"),
    f("tools", "array"),
    f("tool_choice", "string", "object"),
    f("parallel_tool_calls", "boolean", "null"),
    f("max_output_tokens", "integer", "null", ge=16),
    f("max_tool_calls", "integer", "null", ge=1),
    f("text", "object"),
    f("temperature", "number", "null", ge=0, le=2),
    f("top_p", "number", "null", ge=0, le=1),
    f("top_logprobs", "integer", "null", ge=0, le=20),
    f("metadata", "object", "null"),
    f("include", "array", "null"),
    f("reasoning", "object", "null"),
    f("truncation", "string", "null", enum=("auto", "disabled")),
    f("service_tier", "string", "null"),
    f("user", "string"),
    f("prompt_cache_key", "string"),
    f("safety_identifier", "string"),
)


def new_id(prefix: str) -> str:
    """An id in OpenAI's form: a prefix and 48 hex digits."""
    return f"{prefix}_{secrets.token_hex(24)}"


def dispatch(methods: Mapping[str, Handler]) -> Handler:
    """One handler for a path several methods share; any other method is a 405."""
    async def handler(call: Call) -> Response:
        chosen = methods.get(call.request.method)
        if chosen is None:
            raise GatewayError("invalid_request", f"Method {call.request.method} is not "
                               f"allowed on {call.endpoint}.", status=405,
                               headers={"allow": ", ".join(methods)})
        return await chosen(call)

    return handler


def json_answer(call: Call, body: Any) -> Response:
    """A JSON answer with the call's headers, sent now (nothing is generated)."""
    return Response(json.dumps(body, ensure_ascii=False), headers=call.headers,
                    media_type="application/json")


# -- input ---------------------------------------------------------------------------------
def input_items(value: Any) -> list[dict[str, Any]]:
    """The request's input as stored items, each with an id: a string is one user message."""
    if value is None:
        return []
    if isinstance(value, str):
        value = [{"role": "user", "content": value}]
    return [_input_item(f"input[{i}]", item) for i, item in enumerate(value)]


ITEM_FIELDS: Mapping[str, tuple[str, ...]] = {
    "function_call_output": ("call_id", "output"),
    "function_call": ("call_id", "name", "arguments")}
"""The other input items a text gateway takes, and their required string fields."""


def _input_item(where: str, item: Any) -> dict[str, Any]:
    if not isinstance(item, dict):
        invalid("openai", where, f"Invalid type for '{where}': expected an object.", "")
    kind = item.get("type", "message")
    if isinstance(kind, str) and kind in ITEM_FIELDS:
        for name in ITEM_FIELDS[kind]:
            if not isinstance(item.get(name), str):
                invalid("openai", f"{where}.{name}", f"Missing required parameter: "
                        f"'{where}.{name}'.", "")
        return {**item, "id": item.get("id") or new_id("fc" if kind == "function_call"
                                                       else "fco")}
    role = item.get("role")
    if kind != "message" or role not in ("user", "assistant", "system", "developer"):
        invalid("openai", f"{where}.role", f"Invalid value for '{where}': expected a message "
                "with role 'user', 'assistant', 'system' or 'developer', or a function call "
                "or its output.", "")
    content = item.get("content")
    parts = [{"type": "output_text" if role == "assistant" else "input_text",
              "text": content}] if isinstance(content, str) else content
    if not isinstance(parts, list) or not all(
            isinstance(p, dict) and p.get("type") in ("input_text", "output_text")
            and isinstance(p.get("text"), str) for p in parts):
        invalid("openai", f"{where}.content", f"Invalid '{where}.content': expected a string "
                "or text parts.", "")
    return {"id": item.get("id") or new_id("msg"), "type": "message", "role": role,
            "status": "completed", "content": parts}


def _check_options(body: dict[str, Any]) -> None:
    """tool_choice, text and conversation as the spec describes them."""
    choice = body.get("tool_choice")
    if choice is not None and choice not in ("none", "auto", "required") and not (
            isinstance(choice, dict) and choice.get("type") == "function"
            and isinstance(choice.get("name"), str)):
        invalid("openai", "tool_choice", "Invalid 'tool_choice': expected 'none', 'auto', "
                "'required' or a function.", "")
    text = body.get("text") or {}
    fmt = text.get("format", {"type": "text"})
    if set(text) - {"format", "verbosity"} or text.get("verbosity") not in (
            None, "low", "medium", "high") or not isinstance(fmt, dict) or \
            fmt.get("type") not in ("text", "json_object", "json_schema"):
        invalid("openai", "text", "Invalid 'text': expected a format of type 'text', "
                "'json_object' or 'json_schema', and a verbosity.", "")
    _format_schema(body)  # checked here too: a turn that calls a tool never reads it
    if not all(isinstance(i, str) for i in body.get("include") or []):
        invalid("openai", "include", "Invalid 'include': expected an array of strings.", "")
    conversation = body.get("conversation")
    if isinstance(conversation, dict) and not isinstance(conversation.get("id"), str):
        invalid("openai", "conversation", "Missing required parameter: 'conversation.id'.", "")


def items_text(items: list[dict[str, Any]]) -> str:
    """The items as the fake model reads them: ``role: text`` lines, tool results too."""
    lines = []
    for item in items:
        if item.get("type") == "message":
            lines.append(f"{item.get('role')}: {content_text(item.get('content'))}\n")
        elif item.get("type") == "function_call":
            lines.append(f"assistant: call {item.get('name')} {item.get('arguments')}\n")
        elif item.get("type") == "function_call_output":
            lines.append(f"tool: {item.get('output')}\n")
    return "".join(lines)


def _history(call: Call, body: dict[str, Any]) -> tuple[str, str | None]:
    """(the conversation before this input, the conversation id it belongs to)."""
    previous, conversation = body.get("previous_response_id"), body.get("conversation")
    if previous is not None and conversation is not None:
        invalid("openai", "previous_response_id", "Mutually exclusive parameters: "
                "'previous_response_id' and 'conversation'.", "")
    stored = call.state.stored
    if previous is not None:
        prior = stored.responses.get(previous)
        if prior is None or prior.deleted:
            raise GatewayError("not_found", f"Previous response with id '{previous}' not "
                               "found.", param="previous_response_id")
        if RESPONSES_PREVIOUS_IGNORED.active(call.config.faults, CREATE):
            return "", None
        done = prior.final or prior.body
        return prior.history + items_text(prior.input_items) + items_text(done["output"]), None
    if conversation is None:
        return "", None
    conv_id = conversation.get("id") if isinstance(conversation, dict) else conversation
    record = stored.conversations.get(conv_id) if isinstance(conv_id, str) else None
    if record is None or record["deleted"]:
        raise GatewayError("not_found", f"Conversation with id '{conv_id}' not found.",
                           param="conversation")
    return items_text(record["items"]), conv_id


# -- output --------------------------------------------------------------------------------
def _chat_form(body: dict[str, Any]) -> dict[str, Any]:
    """The request's function tools and tool choice in the chat form ``tools.calls_for``
    reads (the Responses API declares them flat: ``{"type": "function", "name", ...}``)."""
    converted = []
    for i, tool in enumerate(body.get("tools") or []):
        if not isinstance(tool, dict) or tool.get("type") != "function":
            invalid("openai", f"tools[{i}]", f"Invalid 'tools[{i}]': this gateway serves "
                    "function tools only.", "")
        converted.append({"type": "function", "function": {
            k: tool[k] for k in ("name", "description", "parameters", "strict") if k in tool}})
    choice = body.get("tool_choice")
    if isinstance(choice, dict) and choice.get("type") == "function":
        choice = {"type": "function", "function": {"name": choice.get("name")}}
    return {"tools": converted, "tool_choice": choice,
            "parallel_tool_calls": body.get("parallel_tool_calls", True)}


def _message(text: str, status: str = "completed") -> dict[str, Any]:
    return {"id": new_id("msg"), "type": "message", "role": "assistant", "status": status,
            "content": [{"type": "output_text", "text": text, "annotations": [],
                         "logprobs": []}]}


def _format_schema(body: dict[str, Any]) -> dict[str, Any] | None:
    text = body.get("text")
    fmt = text.get("format") if isinstance(text, dict) else None
    if isinstance(fmt, dict) and fmt.get("type") == "json_schema":
        name, strict = fmt.get("name"), fmt.get("strict")
        if not isinstance(fmt.get("schema"), dict) or not isinstance(name, str) or \
                not tools.NAME.match(name) or not isinstance(strict, bool | None) or \
                not isinstance(fmt.get("description", ""), str):
            invalid("openai", "text.format", "Invalid 'text.format': a json_schema format "
                    "needs a name and a schema.", "")
        schema: dict[str, Any] = fmt["schema"]
        return schema
    return None


def usage_of(input_tokens: int, output_tokens: int, call: Call) -> dict[str, Any]:
    """The Responses API's usage object (``total_tokens`` their sum, unless a fault)."""
    extra = 1 if RESPONSES_USAGE_INCONSISTENT.active(call.config.faults, CREATE) else 0
    return {"input_tokens": input_tokens, "input_tokens_details": {"cached_tokens": 0},
            "output_tokens": output_tokens, "output_tokens_details": {"reasoning_tokens": 0},
            "total_tokens": input_tokens + output_tokens + extra}


def _generate(call: Call, model: Model, body: dict[str, Any], prompt: str,
              last_user: str) -> tuple[list[dict[str, Any]], list[tuple[str, ...]], str, int]:
    """(output items, each item's token pieces, status, output tokens) for the request."""
    calls = tools.calls_for("openai", _chat_form(body), last_user, call.request_id)
    if calls:
        items = [{"id": "fc_" + c.id.removeprefix("call_"), "type": "function_call",
                  "status": "completed", "arguments": c.arguments, "call_id": c.id,
                  "name": c.name} for c in calls]
        pieces = [c.pieces for c in calls]
        return items, pieces, "completed", sum(len(p) for p in pieces)
    cap = body.get("max_output_tokens")
    schema = _format_schema(body)
    if schema is not None and not RESPONSES_FORMAT_IGNORED.active(call.config.faults, CREATE):
        words = tuple(tokenize(json.dumps(tools.example_of(schema))))
        status = "incomplete" if cap is not None and len(words) > cap else "completed"
        words = words[:cap] if cap is not None else words
    else:
        gen = generate(model.id, prompt, max_tokens=cap, seed=call.config.seed)
        words = gen.pieces
        status = "incomplete" if gen.cause == "max_tokens" else "completed"
    return [_message("".join(words), status)], [words], status, len(words)


def _envelope(call: Call, model: Model, body: dict[str, Any], rid: str,
              conversation: str | None) -> dict[str, Any]:
    """Every field of the response object but its output, status and usage."""
    raw = body.get("text")
    text: dict[str, Any] = raw if isinstance(raw, dict) else {}
    return {
        "id": rid, "object": "response", "created_at": int(time.time()), "status": "completed",
        "background": bool(body.get("background")), "error": None,
        "incomplete_details": None, "instructions": body.get("instructions"),
        "max_output_tokens": body.get("max_output_tokens"), "model": model.served_as,
        "output": [], "parallel_tool_calls": body.get("parallel_tool_calls") is not False,
        "previous_response_id": body.get("previous_response_id"),
        "reasoning": {"effort": None, "summary": None},
        "store": body.get("store", True) is not False,
        "temperature": body.get("temperature", 1.0),
        "text": {"format": {"type": "text"}, **text},
        "tool_choice": body.get("tool_choice", "auto"), "tools": body.get("tools") or [],
        "top_p": body.get("top_p", 1.0), "truncation": body.get("truncation") or "disabled",
        "usage": None, "user": body.get("user"), "metadata": body.get("metadata") or {},
        "conversation": {"id": conversation} if conversation else None,
    }


# -- create --------------------------------------------------------------------------------
async def create(call: Call) -> Response:
    """``POST /v1/responses``."""
    call.authenticate()
    body = await call.json_body()
    check_body("openai", body, RESPONSE_FIELDS)
    _check_options(body)
    if body.get("input") is None and body.get("conversation") is None and \
            body.get("previous_response_id") is None:
        invalid("openai", "input", "Missing required parameter: 'input'.", "")
    store, stream = body.get("store", True) is not False, bool(body.get("stream"))
    if body.get("background") and not store:
        invalid("openai", "background", "Background responses require store: true.", "")
    model = call.resolve_model(body["model"], "chat")
    items = input_items(body.get("input"))
    history, conversation = _history(call, body)
    prompt = history + (f"system: {body['instructions']}\n" if body.get("instructions")
                        else "") + items_text(items)
    input_tokens = count_tokens(prompt)
    call.admit(model)
    users = [i for i in items if i.get("role") == "user"]
    output, pieces, status, output_tokens = _generate(
        call, model, body, prompt, content_text(users[-1]["content"]) if users else "")
    rid = new_id("resp")
    final = {**_envelope(call, model, body, rid, conversation), "output": output,
             "status": status, "usage": usage_of(input_tokens, output_tokens, call)}
    if status == "incomplete":
        final["incomplete_details"] = {"reason": "max_output_tokens"}
    call.usage = Usage(model.id, input_tokens, output_tokens, stream)
    offsets = call.content_offsets(sum(len(p) for p in pieces))
    end = offsets[-1] if offsets else int(call.config.timing.ttft_ms * 1e6)
    _remember(call, final, items, history, store, conversation)
    if body.get("background") and not stream:
        return _queued(call, final, end)
    if stream:
        return call.respond_stream(stream_plan(final, pieces, offsets, end))
    return await call.respond_json(final, end)


def _remember(call: Call, final: dict[str, Any], items: list[dict[str, Any]], history: str,
              store: bool, conversation: str | None) -> None:
    """Store the response (when asked, or a fault keeps it anyway) and add its turn to its
    conversation."""
    stored = call.state.stored
    if store or RESPONSES_STORE_FALSE_KEPT.active(call.config.faults, CREATE):
        stored.responses[final["id"]] = StoredResponse(final, items, history)
    if conversation is not None:
        kept = [] if CONVERSATION_ITEMS_LOST.active(call.config.faults, CREATE) \
            else final["output"]
        stored.conversations[conversation]["items"] += items + kept


def _queued(call: Call, final: dict[str, Any], end_ns: int) -> Response:
    """A background response: queued now, done at its generation's end (at least
    ``BACKGROUND_MIN_S`` from now), unless cancelled first."""
    record = call.state.stored.responses[final["id"]]
    queued = {**final, "status": "queued", "output": [], "usage": None,
              "incomplete_details": None}
    record.body, record.final = queued, final
    record.ready_ns = time.perf_counter_ns() + max(end_ns, int(BACKGROUND_MIN_S * 1e9))
    call.release()
    return json_answer(call, queued)


# -- the stream ----------------------------------------------------------------------------
def stream_plan(final: dict[str, Any], pieces: list[tuple[str, ...]], offsets: list[int],
                end: int) -> list[PlannedEvent]:
    """The typed events of ``final``: created, in_progress, each output item added, its
    content or arguments a token at a time, done; then completed (or incomplete)."""
    start = offsets[0] if offsets else end
    opening = {**final, "status": "in_progress", "output": [], "usage": None,
               "incomplete_details": None}
    events: list[tuple[dict[str, Any], int, bool]] = [
        ({"type": "response.created", "response": opening}, start, False),
        ({"type": "response.in_progress", "response": opening}, start, False)]
    clock = iter(offsets)
    for index, (item, words) in enumerate(zip(final["output"], pieces, strict=True)):
        events += _item_events(index, item, words, clock, start)
    closing = "response.incomplete" if final["status"] == "incomplete" else \
        "response.completed"
    events.append(({"type": closing, "response": final}, end, False))
    return [PlannedEvent(sse(json.dumps({"type": payload["type"], "sequence_number": n,
                                         **payload}, ensure_ascii=False), payload["type"]),
                         due, content)
            for n, (payload, due, content) in enumerate(events)]


def _item_events(index: int, item: dict[str, Any], words: tuple[str, ...], clock: Any,
                 start: int) -> list[tuple[dict[str, Any], int, bool]]:
    at = {"item_id": item["id"], "output_index": index}
    if item["type"] == "function_call":
        opened = {**item, "status": "in_progress", "arguments": ""}
        deltas = [({"type": "response.function_call_arguments.delta", **at, "delta": w},
                   next(clock, start), True) for w in words]
        due = deltas[-1][1] if deltas else start
        return [({"type": "response.output_item.added", "output_index": index, "item": opened},
                 start, False), *deltas,
                ({"type": "response.function_call_arguments.done", **at,
                  "arguments": item["arguments"]}, due, False),
                ({"type": "response.output_item.done", "output_index": index, "item": item},
                 due, False)]
    part = item["content"][0]
    at = {**at, "content_index": 0}
    empty = {**part, "text": ""}
    deltas = [({"type": "response.output_text.delta", **at, "delta": w, "logprobs": []},
               next(clock, start), True) for w in words]
    due = deltas[-1][1] if deltas else start
    return [({"type": "response.output_item.added", "output_index": index,
              "item": {**item, "status": "in_progress", "content": []}}, start, False),
            ({"type": "response.content_part.added", **at, "part": empty}, start, False),
            *deltas,
            ({"type": "response.output_text.done", **at, "text": part["text"],
              "logprobs": []}, due, False),
            ({"type": "response.content_part.done", **at, "part": part}, due, False),
            ({"type": "response.output_item.done", "output_index": index, "item": item},
             due, False)]


# -- the stored response -------------------------------------------------------------------
def _stored(call: Call, route: str) -> StoredResponse:
    """The stored response the path names, brought up to date (404 when none)."""
    call.authenticate()
    rid = call.request.path_params["response_id"]
    record = call.state.stored.responses.get(rid)
    faults = call.config.faults
    gone = record is None or record.deleted and \
        not RESPONSES_DELETED_SERVED.active(faults, route)
    if gone or RESPONSES_NOT_STORED.active(faults, route):
        raise GatewayError("not_found", f"Response with id '{rid}' not found.")
    assert isinstance(record, StoredResponse)
    if record.final is not None and record.body["status"] in ("queued", "in_progress") and \
            time.perf_counter_ns() >= record.ready_ns:
        record.body, record.final = record.final, None
    return record


async def retrieve(call: Call) -> Response:
    """``GET /v1/responses/{response_id}``."""
    return json_answer(call, _stored(call, ONE).body)


async def delete(call: Call) -> Response:
    """``DELETE /v1/responses/{response_id}``."""
    record = _stored(call, ONE)
    record.deleted = True
    return json_answer(call, {"id": record.body["id"], "object": "response", "deleted": True})


async def cancel(call: Call) -> Response:
    """``POST /v1/responses/{response_id}/cancel``: only a background response can be."""
    record = _stored(call, CANCEL)
    if not record.body.get("background"):
        invalid("openai", "response_id", "Only responses created with background: true can "
                "be cancelled.", "")
    if record.body["status"] in TERMINAL:
        return json_answer(call, record.body)
    cancelled = {**record.body, "status": "cancelled"}
    if not RESPONSES_CANCEL_IGNORED.active(call.config.faults, CANCEL):
        record.body, record.final = cancelled, None
    return json_answer(call, cancelled)


async def list_input_items(call: Call) -> Response:
    """``GET /v1/responses/{response_id}/input_items`` (newest first unless ``order=asc``)."""
    return json_answer(call, page(call, _stored(call, INPUT_ITEMS).input_items, "desc"))


def page(call: Call, items: list[dict[str, Any]], default_order: str) -> dict[str, Any]:
    """A cursor page of ``items``: ``limit`` (1-100, 20), ``order``, ``after`` an id."""
    query = call.request.query_params
    order = query.get("order", default_order)
    if order not in ("asc", "desc"):
        invalid("openai", "order", "Invalid value for 'order': expected one of 'asc', "
                "'desc'.", "")
    raw = query.get("limit", "20")
    if not raw.isdigit() or not 1 <= int(raw) <= 100:
        invalid("openai", "limit", "Invalid 'limit': expected an integer from 1 to 100.", "")
    ordered = list(items) if order == "asc" else list(reversed(items))
    after = query.get("after")
    ids = [i.get("id") for i in ordered]
    if after is not None:
        ordered = ordered[ids.index(after) + 1:] if after in ids else []
    shown = ordered[:int(raw)]
    return {"object": "list", "data": shown,
            "first_id": shown[0]["id"] if shown else None,
            "last_id": shown[-1]["id"] if shown else None,
            "has_more": len(ordered) > len(shown)}


def routes() -> list[tuple[str, Handler]]:
    """(path, handler) of every route here; each handler answers its own 405."""
    return [(CREATE, dispatch({"POST": create})),
            (ONE, dispatch({"GET": retrieve, "DELETE": delete})),
            (CANCEL, dispatch({"POST": cancel})),
            (INPUT_ITEMS, dispatch({"GET": list_input_items}))]
