"""Named, deliberate deviations the reference gateway can be started with.

Every check in the harness must be proven able to fail: for each check id there is a fault here
that trips it, and ``tests/reference/test_faults.py`` runs the harness against the faulty gateway
and asserts the finding. Each fault is a small function over a planned event stream (the list of
``PlannedEvent`` the gateway is about to play), declares the endpoints it applies to and the
check ids it must trip there, and leaves every other endpoint untouched.

``gateprobe serve --fault NAME`` (repeatable) enables faults; ``--list-faults`` prints this
catalogue.
"""

from __future__ import annotations

import difflib
import json
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, replace
from types import MappingProxyType
from typing import Any

from gateprobe.core.errors import ConfigError
from gateprobe.core.sse import parse_all
from gateprobe.reference.hostile import TRICKLE_EVERY_S
from gateprobe.reference.streaming import PlannedEvent, sse

Plan = list[PlannedEvent]
Transform = Callable[[str, Plan], Plan]

CHAT = "/v1/chat/completions"
COMPLETIONS = "/v1/completions"
MESSAGES = "/v1/messages"
COMPLETE = "/v1/complete"
OPENAI_STREAMS = frozenset({CHAT, COMPLETIONS})
ALL_STREAMS = frozenset({CHAT, COMPLETIONS, MESSAGES, COMPLETE})


OFF_BY = 3
"""How many requests ``ratelimit-off-by-few`` lets through beyond each limit."""
STRICT_SHARE = 0.75
"""The share of each limit ``ratelimit-too-strict`` accepts (below the default 10% tolerance)."""
WRONG_LIMIT_FACTOR = 10
"""``ratelimit-wrong-limit-header`` states this many times the tier's limit (an account-wide
figure, say, instead of the key's)."""
FLAKY_EVERY = 5
"""``flaky-500`` fails every this-many-th admitted request."""

Answer = tuple[int, dict[str, str], bytes]
ResponseTransform = Callable[[str, Answer], Answer]


@dataclass(frozen=True, slots=True)
class Fault:
    """One named deviation, with where it applies and what it must trip.

    A fault transforms a planned stream (``transform``), or a non-streaming answer
    (``response``), or neither: a *behaviour* fault, which the gateway's own logic consults
    where it decides (auth, permissions, prompt validation, transport), through the fault's
    module constant: ``if ACCEPT_ANY_KEY.active(config.faults, endpoint):``.
    """

    name: str
    description: str
    endpoints: frozenset[str]
    trips: tuple[str, ...]
    """Check ids a conformant harness reports against this fault."""
    transform: Transform | None = None
    response: ResponseTransform | None = None
    proven_by: str = "conformance"
    """The runner whose verdict it trips: ``conformance`` (every case, every check) or ``load``
    (a rate-limit or latency run: these faults are about budgets and time, not shapes), or
    ``sequence`` (what only a sequence of answers shows: the Midjourney poller and page
    walker of ``gateprobe.engine.tasks``, a Realtime session of ``gateprobe.engine.realtime_session``)."""

    def active(self, enabled: Collection[str], endpoint: str) -> bool:
        """Whether this fault is among the ``enabled`` names and applies to ``endpoint``."""
        return self.name in enabled and endpoint in self.endpoints


_declared: dict[str, Fault] = {}


def _declare(fault: Fault) -> Fault:
    """Add ``fault`` to the catalogue (in declaration order) and return it."""
    if fault.name in _declared:
        raise ValueError(f"fault {fault.name!r} is declared twice")
    _declared[fault.name] = fault
    return fault


# -- helpers over planned events ------------------------------------------------------------
def _read(event: PlannedEvent) -> tuple[str | None, str]:
    """(event name or None, data) of a planned event."""
    [parsed], _ = parse_all(event.data)
    return (None if parsed.type == "message" else parsed.type), parsed.data


def _rewrite(event: PlannedEvent, data: str | None = None, name: str | None = "",
             ) -> PlannedEvent:
    """The event with new data and/or name (``name=""`` keeps it, None removes it)."""
    old_name, old_data = _read(event)
    new_name = old_name if name == "" else name
    return replace(event, data=sse(old_data if data is None else data, new_name))


def _payload(event: PlannedEvent) -> dict[str, Any] | None:
    _, data = _read(event)
    try:
        value = json.loads(data)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def _map_payloads(plan: Plan, fn: Callable[[dict[str, Any]], dict[str, Any] | None]) -> Plan:
    out = []
    for event in plan:
        payload = _payload(event)
        changed = fn(payload) if payload is not None else None
        out.append(event if changed is None else _rewrite(event, json.dumps(changed)))
    return out


def _content_positions(plan: Plan) -> list[int]:
    return [i for i, e in enumerate(plan) if e.content]


# -- the faults -----------------------------------------------------------------------------
def _drop_terminator(endpoint: str, plan: Plan) -> Plan:
    return plan[:-1]


def _named_chunks(endpoint: str, plan: Plan) -> Plan:
    return [e if _read(e)[1] == "[DONE]" else _rewrite(e, name="chunk") for e in plan]


def _misnamed_events(endpoint: str, plan: Plan) -> Plan:
    return [_rewrite(e, name="delta") if _read(e)[0] == "content_block_delta" else e
            for e in plan]


def _bad_json(endpoint: str, plan: Plan) -> Plan:
    first = _content_positions(plan)[0]
    out = list(plan)
    out[first] = _rewrite(plan[first], data='{"truncated": ')
    return out


def _error_in_stream(endpoint: str, plan: Plan) -> Plan:
    middle = _content_positions(plan)[len(_content_positions(plan)) // 2]
    error: dict[str, Any]
    if endpoint in OPENAI_STREAMS:
        error = {"error": {"message": "The server had an error while processing your request.",
                           "type": "server_error", "param": None, "code": None}}
        name = None
    else:
        error = {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}
        name = "error"
    # The stream ends with the error, as upstream streams do.
    return [*plan[:middle], _rewrite(plan[middle], json.dumps(error), name)]


def _delta_before_start(endpoint: str, plan: Plan) -> Plan:
    start = next(i for i, e in enumerate(plan) if _read(e)[0] == "content_block_start")
    first = _content_positions(plan)[0]
    out = list(plan)
    out.insert(first, out.pop(start))
    return out


def _block_index_gap(endpoint: str, plan: Plan) -> Plan:
    def shift(p: dict[str, Any]) -> dict[str, Any] | None:
        return {**p, "index": p["index"] + 1} if "index" in p and "type" in p else None

    return _map_payloads(plan, shift)


def _no_role_chunk(endpoint: str, plan: Plan) -> Plan:
    return [e for e in plan if '"role": "assistant"' not in _read(e)[1]]


def _usage_mismatch(endpoint: str, plan: Plan) -> Plan:
    def bend(p: dict[str, Any]) -> dict[str, Any] | None:
        if p.get("choices") == [] and isinstance(p.get("usage"), dict):
            return {**p, "usage": {**p["usage"], "total_tokens": p["usage"]["total_tokens"] + 1}}
        if p.get("type") == "message_delta":
            return {**p, "usage": {"output_tokens": 0}}  # below message_start's count
        return None

    return _map_payloads(plan, bend)


def _no_finish_reason(endpoint: str, plan: Plan) -> Plan:
    def clear(p: dict[str, Any]) -> dict[str, Any] | None:
        choices = p.get("choices") or []
        if choices and choices[0].get("finish_reason"):
            return {**p, "choices": [{**choices[0], "finish_reason": None}]}
        return None

    return _map_payloads(plan, clear)


def _id_changes(endpoint: str, plan: Plan) -> Plan:
    half = len(plan) // 2
    return plan[:half] + _map_payloads(
        plan[half:], lambda p: {**p, "id": p["id"] + "x"} if "id" in p else None)


def _event_after_end(endpoint: str, plan: Plan) -> Plan:
    return [*plan, plan[_content_positions(plan)[-1]]]


def _unterminated_event(endpoint: str, plan: Plan) -> Plan:
    last = plan[-1]
    return [*plan[:-1], replace(last, data=last.data[:-1])]  # no blank line after it


def _more_input_streamed(endpoint: str, plan: Plan) -> Plan:
    """Streams bill 5 more input tokens than the same request does without streaming (their
    own usage still adds up)."""
    def more(payload: dict[str, Any]) -> dict[str, Any] | None:
        message = payload.get("message") if payload.get("type") == "message_start" else \
            payload.get("response") if payload.get("type") == "response.completed" else None
        usage = message.get("usage") if isinstance(message, dict) else payload.get("usage")
        if not isinstance(usage, dict):
            return None
        for name in ("prompt_tokens", "input_tokens", "total_tokens"):
            if isinstance(usage.get(name), int):
                usage[name] += 5
        return payload

    return _map_payloads(plan, more)


def _cumulative_completions(endpoint: str, plan: Plan) -> Plan:
    """Each ``completion`` event carries the whole text so far (the old format), still under
    the 2023-06-01 event names."""
    text = ""

    def grow(payload: dict[str, Any]) -> dict[str, Any] | None:
        nonlocal text
        if payload.get("type") != "completion" or not isinstance(payload.get("completion"), str):
            return None
        text += payload["completion"]
        return {**payload, "completion": text}

    return _map_payloads(plan, grow)


def _wrong_object(endpoint: str, plan: Plan) -> Plan:
    return _map_payloads(plan, lambda p: {**p, "object": "chat.completion"}
                         if p.get("object") == "chat.completion.chunk" else None)


def _bom(endpoint: str, plan: Plan) -> Plan:
    return [replace(plan[0], data=b"\xef\xbb\xbf" + plan[0].data), *plan[1:]]


def _f(name: str, description: str, endpoints: frozenset[str], trips: Sequence[str],
       transform: Transform, proven_by: str = "conformance") -> Fault:
    return _declare(Fault(name, description, endpoints, tuple(trips), transform=transform,
                          proven_by=proven_by))


def _tool_fragment(payload: dict[str, Any]) -> bool:
    """Whether an event carries a piece of a tool call's arguments."""
    delta = payload.get("delta") if payload.get("type") == "content_block_delta" else None
    if isinstance(delta, dict):
        return delta.get("type") == "input_json_delta"
    choices = payload.get("choices") or [{}]
    calls = (choices[0].get("delta") or {}).get("tool_calls") or [{}]
    return "id" not in calls[0] and bool((calls[0].get("function") or {}).get("arguments"))


def _tool_args_truncated(endpoint: str, plan: Plan) -> Plan:
    pieces = [i for i, e in enumerate(plan) if (p := _payload(e)) and _tool_fragment(p)]
    return [e for i, e in enumerate(plan) if not pieces or i != pieces[-1]]


def _tool_call_id_changes(endpoint: str, plan: Plan) -> Plan:
    def later_id(p: dict[str, Any]) -> dict[str, Any] | None:
        if not _tool_fragment(p) or "choices" not in p:
            return None
        [call] = p["choices"][0]["delta"]["tool_calls"]
        return {**p, "choices": [{**p["choices"][0], "delta": {"tool_calls": [
            {**call, "id": "call_another"}]}}]}

    return _map_payloads(plan, later_id)


# -- latency faults: the same events, later -----------------------------------------------------
SLOW_FIRST_TOKEN_MS = 600
STALL_MS = 1000


def _shift(plan: Plan, start: int, delta_ns: int) -> Plan:
    """Every event from index ``start`` on, ``delta_ns`` later."""
    return [*plan[:start], *(replace(e, offset_ns=e.offset_ns + delta_ns) for e in plan[start:])]


SLOW_TOKEN_MS = 40


def _slow_tokens(endpoint: str, plan: Plan) -> Plan:
    """Every token after the first ``SLOW_TOKEN_MS`` later than the one before it would have
    been: the first token on time, the stream as a whole slow."""
    later = set(_content_positions(plan)[1:])
    out, delay_ns = [], 0
    for i, event in enumerate(plan):
        delay_ns += SLOW_TOKEN_MS * 1_000_000 if i in later else 0
        out.append(replace(event, offset_ns=event.offset_ns + delay_ns) if delay_ns else event)
    return out


def _slow_first_token(endpoint: str, plan: Plan) -> Plan:
    first = _content_positions(plan)[0]
    due = plan[first].offset_ns
    start = next(i for i, e in enumerate(plan) if e.offset_ns >= due)
    return _shift(plan, start, SLOW_FIRST_TOKEN_MS * 1_000_000)


def _stall(endpoint: str, plan: Plan) -> Plan:
    positions = _content_positions(plan)
    return _shift(plan, positions[len(positions) // 2], STALL_MS * 1_000_000)


def _early_empty_chunk(endpoint: str, plan: Plan) -> Plan:
    """An empty chunk flushed the moment the request arrives, tokens on schedule: the chat
    role chunk (``content: ""``) moved to the start, or an empty ``text`` chunk inserted."""
    first = _content_positions(plan)[0]
    if endpoint == CHAT and first > 0:
        return [replace(plan[0], offset_ns=0), *plan[1:]]

    def empty(p: dict[str, Any]) -> dict[str, Any] | None:
        return {**p, "choices": [{**c, "text": ""} for c in p.get("choices") or []]}

    [blank] = _map_payloads([plan[first]], empty)
    return [replace(blank, offset_ns=0, content=False), *plan]


# -- answer faults ----------------------------------------------------------------------------
API = frozenset({CHAT, COMPLETIONS, "/v1/embeddings", "/v1/models", MESSAGES, COMPLETE,
                 "/v1/messages/count_tokens"})
ANTHROPIC_API = frozenset({MESSAGES, COMPLETE, "/v1/messages/count_tokens"})
OPENAI_API = API - ANTHROPIC_API
GENERATING = frozenset({CHAT, COMPLETIONS, "/v1/embeddings", MESSAGES, COMPLETE})


def _with_type(headers: dict[str, str], media_type: str) -> dict[str, str]:
    return {**{k: v for k, v in headers.items() if k.lower() != "content-type"},
            "content-type": media_type}


def _error_plain_text(endpoint: str, answer: Answer) -> Answer:
    status, headers, body = answer
    if status < 400:
        return answer
    return status, _with_type(headers, "text/plain; charset=utf-8"), b"Bad Request"


def _error_wrong_type(endpoint: str, answer: Answer) -> Answer:
    status, headers, body = answer
    payload = json.loads(body) if status >= 400 else None
    if not isinstance(payload, dict) or not isinstance(payload.get("error"), dict):
        return answer
    wrong = "invalid_request_error" if status != 400 else "api_error"
    return status, headers, json.dumps({**payload, "error": {**payload["error"],
                                                            "type": wrong}}).encode()


def _bad_input_500(endpoint: str, answer: Answer) -> Answer:
    status, headers, body = answer
    return (500 if status == 400 else status), headers, body


def _json_wrong_content_type(endpoint: str, answer: Answer) -> Answer:
    status, headers, body = answer
    return (status, _with_type(headers, "text/html; charset=utf-8"), body) if status == 200 \
        else answer


def _on_success(edit: Callable[[str, dict[str, Any]], bool]) -> ResponseTransform:
    """A transform that edits a 200 answer's JSON object in place (``edit`` says whether it
    changed anything) and leaves every other answer alone."""
    def transform(endpoint: str, answer: Answer) -> Answer:
        status, headers, body = answer
        payload = json.loads(body) if status == 200 else None
        if not isinstance(payload, dict) or not edit(endpoint, payload):
            return answer
        return status, headers, json.dumps(payload).encode()

    return transform


def _missing_model(endpoint: str, payload: dict[str, Any]) -> bool:
    payload.pop("model", None)
    return True


def _usage_inconsistent(endpoint: str, payload: dict[str, Any]) -> bool:
    usage = payload.get("usage")
    if not isinstance(usage, dict):
        return False
    if "output_tokens" in usage:
        usage["output_tokens"] = 0  # text generated, none billed
    elif "total_tokens" in usage:
        usage["total_tokens"] = usage["total_tokens"] + 7  # billed more than was used
    return True


def _usage_first_choice_only(endpoint: str, payload: dict[str, Any]) -> bool:
    usage, choices = payload.get("usage"), payload.get("choices")
    if not isinstance(usage, dict) or not isinstance(choices, list) or len(choices) < 2:
        return False
    billed = usage["completion_tokens"] // len(choices)  # the first choice's share
    usage["total_tokens"] -= usage["completion_tokens"] - billed
    usage["completion_tokens"] = billed
    return True


def _wrong_type_429(endpoint: str, answer: Answer) -> Answer:
    status, headers, body = answer
    payload = json.loads(body) if status == 429 else None
    if not isinstance(payload, dict) or not isinstance(payload.get("error"), dict):
        return answer
    wrong = {"type": "invalid_request_error"} if "param" not in payload["error"] else \
        {"type": "invalid_request_error", "code": "invalid_request_error"}
    return status, headers, json.dumps({**payload, "error": {**payload["error"],
                                                            **wrong}}).encode()


def _tool_args_off_schema(endpoint: str, payload: dict[str, Any]) -> bool:
    changed = False
    for choice in payload.get("choices") or []:
        for call in (choice.get("message") or {}).get("tool_calls") or []:
            call["function"]["arguments"], changed = "{}", True  # the required field dropped
    for block in payload.get("content") or []:
        if block.get("type") == "tool_use":
            block["input"], changed = {}, True
    return changed


def _tool_stop_reason_wrong(endpoint: str, payload: dict[str, Any]) -> bool:
    if not any(b.get("type") == "tool_use" for b in payload.get("content") or []):
        return False
    payload["stop_reason"] = "end_turn"
    return True


_CONSTANT_IDS = {CHAT: "chatcmpl-0000", COMPLETIONS: "cmpl-0000", MESSAGES: "msg_0000",
                 COMPLETE: "compl_0000"}


def _constant_id(endpoint: str, payload: dict[str, Any]) -> bool:
    if "id" not in payload:
        return False
    payload["id"] = _CONSTANT_IDS[endpoint]
    return True


def _chat_id_on_completions(endpoint: str, payload: dict[str, Any]) -> bool:
    if not str(payload.get("id", "")).startswith("cmpl-"):
        return False
    payload["id"] = "chatcmpl-" + str(payload["id"]).removeprefix("cmpl-")
    return True


def _r(name: str, description: str, endpoints: frozenset[str], trips: Sequence[str],
       response: ResponseTransform, proven_by: str = "conformance") -> Fault:
    return _declare(Fault(name, description, endpoints, tuple(trips), response=response,
                          proven_by=proven_by))


def _bare_429(endpoint: str, answer: Answer) -> Answer:
    status, headers, body = answer
    if status != 429:
        return answer
    return status, _with_type(headers, "text/plain; charset=utf-8"), b"Too Many Requests"


def _b(name: str, description: str, endpoints: frozenset[str], trips: Sequence[str],
       proven_by: str = "conformance") -> Fault:
    return _declare(Fault(name, description, endpoints, tuple(trips), proven_by=proven_by))


# The catalogue, in the order ``--list-faults`` and the docs' fault reference show it: declaring a
# fault adds it (see ``_declare``).
STREAM_DROP_TERMINATOR = _f(
    "stream-drop-terminator", "the last event ([DONE], message_stop, the stop completion) "
    "is never sent", ALL_STREAMS, ["stream.terminator"], _drop_terminator)
STREAM_NAMED_CHUNKS = _f(
    "stream-named-chunks", "OpenAI chunks carry an 'event: chunk' line", OPENAI_STREAMS,
    ["stream.event_name"], _named_chunks)
STREAM_MISNAMED_EVENTS = _f(
    "stream-misnamed-events", "content_block_delta events are named 'delta'",
    frozenset({MESSAGES}), ["stream.event_name"], _misnamed_events)
STREAM_BAD_JSON = _f(
    "stream-bad-json", "the first content event's data is cut off mid-JSON", ALL_STREAMS,
    ["stream.json"], _bad_json)
STREAM_ERROR_EVENT = _f(
    "stream-error-event", "the stream breaks off with an error event inside the 200",
    ALL_STREAMS, ["stream.error_event"], _error_in_stream)
STREAM_DELTA_BEFORE_START = _f(
    "stream-delta-before-start", "the first delta comes before its content_block_start",
    frozenset({MESSAGES}), ["stream.order"], _delta_before_start)
STREAM_BLOCK_INDEX_GAP = _f(
    "stream-block-index-gap", "content block indices start at 1", frozenset({MESSAGES}),
    ["stream.block_index"], _block_index_gap)
STREAM_NO_ROLE_CHUNK = _f(
    "stream-no-role-chunk", "no role: assistant delta opens the choice", frozenset({CHAT}),
    ["stream.order"], _no_role_chunk)
STREAM_USAGE_MISMATCH = _f(
    "stream-usage-mismatch", "usage does not add up (total +1; output_tokens falls)",
    frozenset({CHAT, COMPLETIONS, MESSAGES}), ["stream.usage"], _usage_mismatch)
STREAM_NO_FINISH_REASON = _f(
    "stream-no-finish-reason", "no chunk carries a finish_reason", OPENAI_STREAMS,
    ["stream.finish_reason"], _no_finish_reason)
STREAM_ID_CHANGES = _f(
    "stream-id-changes", "the chunk id changes halfway", OPENAI_STREAMS,
    ["stream.consistency"], _id_changes)
STREAM_EVENT_AFTER_END = _f(
    "stream-event-after-end", "a content event repeats after the terminator", ALL_STREAMS,
    ["stream.order"], _event_after_end)
STREAM_UNTERMINATED_EVENT = _f(
    "stream-unterminated-event", "the last event has no closing blank line", ALL_STREAMS,
    ["stream.framing"], _unterminated_event)
STREAM_TOOL_ARGS_TRUNCATED = _f(
    "stream-tool-args-truncated", "a tool call's last arguments fragment is never sent",
    frozenset({CHAT, MESSAGES}), ["stream.tool_calls"], _tool_args_truncated)
STREAM_TOOL_CALL_ID_CHANGES = _f(
    "stream-tool-call-id-changes", "a tool call's argument fragments carry another id",
    frozenset({CHAT}), ["stream.tool_calls"], _tool_call_id_changes)
STREAM_WRONG_OBJECT = _f(
    "stream-wrong-object", "chunks say object chat.completion", frozenset({CHAT}),
    ["stream.schema"], _wrong_object)
STREAM_MORE_INPUT = _f(
    "stream-more-input", "streams bill 5 more input tokens than the same request unstreamed",
    frozenset({CHAT, COMPLETIONS, MESSAGES, "/v1/responses"}), ["usage.stream_consistency"],
    _more_input_streamed)
STREAM_CUMULATIVE_COMPLETIONS = _f(
    "stream-cumulative-completions", "legacy completion events carry the whole text so far "
    "(the pre-2023-06-01 format) under the 2023-06-01 names", frozenset({COMPLETE}),
    ["stream.delta"], _cumulative_completions)
STREAM_BOM = _f(
    "stream-bom", "the stream starts with a UTF-8 byte order mark", ALL_STREAMS,
    ["stream.framing"], _bom)
ERROR_PLAIN_TEXT = _r(
    "error-plain-text", "errors are a text/plain 'Bad Request', not an envelope", API,
    ["error.envelope", "response.content_type"], _error_plain_text)
ERROR_WRONG_TYPE = _r(
    "error-wrong-type", "Anthropic errors carry another status's error type", ANTHROPIC_API,
    ["error.type"], _error_wrong_type)
BAD_INPUT_500 = _r(
    "bad-input-500", "bad input gets 500 instead of 400", API, ["response.status"],
    _bad_input_500)
JSON_WRONG_CONTENT_TYPE = _r(
    "json-wrong-content-type", "JSON answers say text/html", API,
    ["response.content_type"], _json_wrong_content_type)
RESPONSE_MISSING_MODEL = _r(
    "response-missing-model", "success bodies lack their model field", GENERATING,
    ["response.schema", "golden.match"], _on_success(_missing_model))
USAGE_INCONSISTENT = _r(
    "usage-inconsistent", "usage does not add up: total_tokens over the sum; 0 output tokens "
    "for Anthropic text", frozenset({CHAT, COMPLETIONS, MESSAGES}), ["usage.accounting"],
    _on_success(_usage_inconsistent))
USAGE_FIRST_CHOICE_ONLY = _r(
    "usage-first-choice-only", "with n > 1 choices, usage bills only the first one",
    frozenset({CHAT, COMPLETIONS}), ["usage.accounting"],
    _on_success(_usage_first_choice_only))
TOOL_ARGS_OFF_SCHEMA = _r(
    "tool-args-off-schema", "tool calls come without their required arguments ({})",
    frozenset({CHAT, MESSAGES}), ["tool.calls"], _on_success(_tool_args_off_schema))
TOOL_STOP_REASON_WRONG = _r(
    "tool-stop-reason-wrong", "a turn of tool_use blocks ends with stop_reason end_turn",
    frozenset({MESSAGES}), ["tool.calls"], _on_success(_tool_stop_reason_wrong))
CONSTANT_ID = _r(
    "constant-id", "every answer carries the same id", frozenset(_CONSTANT_IDS),
    ["response.id"], _on_success(_constant_id))
CHAT_ID_ON_COMPLETIONS = _r(
    "chat-id-on-completions", "legacy completions carry chat.completion ids (chatcmpl-)",
    frozenset({COMPLETIONS}), ["response.id"], _on_success(_chat_id_on_completions))
UPSTREAM_URL_LEAK = _b(
    "upstream-url-leak", "every answer names its upstream in an x-upstream header "
    "(http://10.20.0.7:8080)", API, ["security.internal_url"])
INVALID_KEY_QUOTED = _b(
    "invalid-key-quoted", "a 401 quotes the wrong key it was sent, whole, not masked",
    OPENAI_API, ["security.key_echoed"])
NO_RETRY_AFTER_429 = _b(
    "no-retry-after-429", "every request gets 429 without Retry-After", API,
    ["response.retry_after", "response.rate_limited"])
WRONG_TYPE_429 = _b(
    "wrong-type-429", "every request gets 429 (Retry-After: 0) typed invalid_request_error",
    API, ["error.type", "response.rate_limited"])
KEY_ECHOED = _b(
    "key-echoed", "every answer echoes the caller's key in an x-gateway-key header", API,
    ["security.key_echoed"])
ACCEPT_X_API_KEY = _b(
    "accept-x-api-key", "the Anthropic routes also take the key in x-api-key (the gateway "
    "documents Bearer only)", ANTHROPIC_API, ["auth.rejected"])
ACCEPT_ANY_KEY = _b(
    "accept-any-key", "unknown keys are served as if they were the first valid key", API,
    ["auth.rejected"])
IGNORE_MODEL_PERMISSIONS = _b(
    "ignore-model-permissions", "keys may use models outside their permission list", API,
    ["auth.permission"])
LEGACY_PROMPT_UNCHECKED = _b(
    "legacy-prompt-unchecked", "legacy prompts are not validated", frozenset({COMPLETE}),
    ["legacy.prompt_rejected"])
LEGACY_PROMPT_NO_REPAIR = _b(
    "legacy-prompt-no-repair", "prompts Anthropic silently repairs are refused",
    frozenset({COMPLETE}), ["legacy.prompt_accepted"])
RATELIMIT_NOT_ENFORCED = _b(
    "ratelimit-not-enforced", "tier limits are counted in the headers but never refused",
    GENERATING, ["ratelimit.limit"], "load")
RATELIMIT_OFF_BY_FEW = _b(
    "ratelimit-off-by-few", f"each tier accepts {OFF_BY} more than its limit",
    GENERATING, ["ratelimit.limit"], "load")
RATELIMIT_NO_RETRY_AFTER = _b(
    "ratelimit-no-retry-after", "429 answers lack Retry-After", GENERATING,
    ["ratelimit.retry_after"], "load")
RATELIMIT_SHARED_BUDGET = _b(
    "ratelimit-shared-budget", "all keys draw on one budget per model", GENERATING,
    ["ratelimit.isolation"], "load")
RATELIMIT_NEVER_RECOVERS = _b(
    "ratelimit-never-recovers", "a key refused once is refused for good", GENERATING,
    ["ratelimit.recovery"], "load")
RATELIMIT_TOO_STRICT = _b(
    "ratelimit-too-strict", f"each tier refuses after {STRICT_SHARE:.0%} of its limit "
    "(the headers state the documented limit)", GENERATING, ["ratelimit.under_limit"],
    "load")
RATELIMIT_BARE_429 = _r(
    "ratelimit-bare-429", "429 answers are a text/plain 'Too Many Requests', not an "
    "envelope", GENERATING, ["ratelimit.envelope"], _bare_429, "load")
RATELIMIT_WRONG_TYPE = _r(
    "ratelimit-wrong-type", "429 answers are typed invalid_request_error (a client would "
    "not retry)", GENERATING, ["ratelimit.envelope"], _wrong_type_429, "load")
RATELIMIT_WRONG_LIMIT_HEADER = _b(
    "ratelimit-wrong-limit-header", f"the limit header states {WRONG_LIMIT_FACTOR}x the "
    "tier's limit", GENERATING, ["ratelimit.headers"], "load")
FLAKY_500 = _b(
    "flaky-500", f"every {FLAKY_EVERY}th admitted request fails with a 500 envelope",
    GENERATING, ["ratelimit.errors", "slo.error_rate_max"], "load")
STREAM_SLOW_TOKENS = _f(
    "stream-slow-tokens", f"every token after the first comes {SLOW_TOKEN_MS} ms late",
    ALL_STREAMS, ["slo.tpot_p95_ms", "slo.e2e_p95_ms", "slo.tokens_per_s_p50_min"],
    _slow_tokens, "load")
STREAM_SLOW_FIRST_TOKEN = _f(
    "stream-slow-first-token", f"the first token comes {SLOW_FIRST_TOKEN_MS} ms late",
    ALL_STREAMS, ["slo.ttft_p95_ms"], _slow_first_token, "load")
STREAM_STALL = _f(
    "stream-stall", f"the stream stalls {STALL_MS} ms halfway", ALL_STREAMS,
    ["slo.itl_p99_ms"], _stall, "load")
RESET_BEFORE_HEADERS = _b(
    "reset-before-headers", "the connection is reset before any header (TCP RST)", API,
    ["transport.reset"], "transport")
RESET_MID_STREAM = _b(
    "reset-mid-stream", "streams are reset halfway", ALL_STREAMS, ["transport.reset"],
    "transport")
STREAM_HANG_OPEN = _b(
    "stream-hang-open", "streams stop halfway, without a terminator, and stay open",
    ALL_STREAMS, ["stream.idle_timeout"], "transport")
STREAM_ENDLESS_PINGS = _b(
    "stream-endless-pings", "after the first token, keep-alive comments forever",
    ALL_STREAMS, ["stream.total_timeout"], "transport")
STREAM_ENDLESS_CONTENT = _b(
    "stream-endless-content", "after the first token, the same content again, forever",
    ALL_STREAMS, ["stream.total_timeout"], "transport")
SLOW_HEADERS = _b(
    "slow-headers", "no header ever comes: the request hangs until the client leaves", API,
    ["transport.first_byte_timeout"], "transport")
BODY_STALL = _b(
    "body-stall", "JSON answers stop halfway through their body and stay open", API,
    ["transport.idle_timeout"], "transport")
BODY_TRICKLE = _b(
    "body-trickle", f"JSON answers come one byte every {TRICKLE_EVERY_S:g} s: never idle, "
    "never done", API,
    ["transport.total_timeout"], "transport")
HUGE_BODY = _b(
    "huge-body", "answers are 300 MB: JSON, or a stream's first event", GENERATING,
    ["body.too_large"], "transport")
INVALID_UTF8 = _b(
    "invalid-utf8", "a stream line carries bytes that are not UTF-8", ALL_STREAMS,
    ["stream.framing"], "transport")
INVALID_JSON_LINE = _b(
    "invalid-json-line", "an HTML error page pasted into a stream's data line",
    ALL_STREAMS, ["stream.json"], "transport")
HTML_200 = _b(
    "html-200", "every answer is a 200 HTML error page (a proxy's)", API,
    ["response.content_type"], "transport")
STREAM_WRONG_CONTENT_TYPE = _b(
    "stream-wrong-content-type", "streams say application/json", ALL_STREAMS,
    ["response.content_type"], "transport")
STREAM_NO_CONTENT_TYPE = _b(
    "stream-no-content-type", "streams carry no Content-Type", ALL_STREAMS,
    ["response.content_type"], "transport")
STREAM_GZIP_BUFFERED = _b(
    "stream-gzip-buffered", "streams are gzip-compressed and sent in one piece at the end",
    ALL_STREAMS, ["stream.compressed"], "transport")
REDIRECT_OTHER_HOST = _b(
    "redirect-other-host", "every request is redirected (302) to another host", API,
    ["transport.redirect"], "transport")
RETRY_AFTER_HUGE = _b(
    "retry-after-huge", "every request gets 503 with Retry-After: 86400", API,
    ["response.retry_after"], "transport")
ENDLESS_429 = _b(
    "endless-429", "every request gets 429 with Retry-After: 1, forever", API,
    ["response.rate_limited"], "transport")
KEY_ECHOED_IN_ERROR = _b(
    "key-echoed-in-error", "error messages quote the caller's whole key", API,
    ["security.key_echoed"], "transport")
STREAM_EARLY_EMPTY_CHUNK = _f(
    "stream-early-empty-chunk", "an empty content chunk is flushed at once, tokens come "
    "on schedule (TTFB looks fast, TTFT is not)", OPENAI_STREAMS, ["slo.ttft_p95_ms"],
    _early_empty_chunk, "load")

# -- the gateway's own API: key management and billing (proven by tests/test_management_billing.py)
ADMIN = "/api/v1/user/admin/"
KEY_CREATE = frozenset({ADMIN + "new-api-token", ADMIN + "create-api-token"})
KEY_UPDATE = ADMIN + "update-api-token"
KEY_LIST = ADMIN + "get-api-tokens"
KEY_DELETE = frozenset({ADMIN + "del-api-token", ADMIN + "delete-api-token"})
MODEL_RATES = "/api/v1/pay/model-rates"
MANAGEMENT = KEY_CREATE | KEY_DELETE | frozenset({
    KEY_UPDATE, KEY_LIST, ADMIN + "balance", ADMIN + "get-membership-expire-date"})
OVERCHARGE = 1.10
"""``billing-overcharge`` bills this many times the rate table's price."""
REFUSED_CHARGE = 10.0
"""Credits ``billing-429`` and ``billing-failed`` debit for a refused request."""


def _m(name: str, description: str, endpoints: frozenset[str], trips: Sequence[str],
       proven_by: str = "management") -> Fault:
    return _declare(Fault(name, description, endpoints, tuple(trips), proven_by=proven_by))


CREATED_KEY_INERT = _m(
    "created-key-inert", "keys created through the management API are unknown to the model "
    "routes", GENERATING, ["management.created_key"])
MANAGED_PERMISSIONS_IGNORED = _m(
    "managed-permissions-ignored", "a created key's permissions are stored but not enforced",
    GENERATING, ["management.permissions"])
DISABLED_KEY_WORKS = _m(
    "disabled-key-works", "a key updated with is_disabled=true still works", GENERATING,
    ["management.disabled_key"])
EXPIRED_KEY_WORKS = _m(
    "expired-key-works", "a key past its expired_at still works", GENERATING,
    ["management.expired_key"])
DELETED_KEY_WORKS = _m(
    "deleted-key-works", "a deleted key still works on the model routes", GENERATING,
    ["management.deleted_key"])
ADMIN_GRANTABLE = _m(
    "admin-grantable", "is_admin=true in a create or update body is honoured",
    KEY_CREATE | {KEY_UPDATE}, ["management.admin_grant"])
LIST_OTHER_USERS = _m(
    "list-other-users", "the key listing shows every account's keys, in full",
    frozenset({KEY_LIST}), ["management.list_isolation"])
MANAGEMENT_ANY_KEY = _m(
    "management-any-key", "the management routes take any valid key, admin or not",
    MANAGEMENT, ["management.admin_only"])
BILLING_OVERCHARGE = _m(
    "billing-overcharge", f"every request is billed {OVERCHARGE - 1:.0%} over the rate table",
    GENERATING, ["billing.charge"], "billing")
BILLING_STREAM_TWICE = _m(
    "billing-stream-twice", "streams are billed twice", GENERATING, ["billing.stream"],
    "billing")
BILLING_429 = _m(
    "billing-429", f"requests refused with 429 are billed {REFUSED_CHARGE:g} credits",
    GENERATING, ["billing.refused"], "billing")
BILLING_FAILED = _m(
    "billing-failed", f"requests refused with another 4xx or a 5xx are billed "
    f"{REFUSED_CHARGE:g} credits", GENERATING, ["billing.refused"], "billing")
MAX_FEE_IGNORED = _m(
    "max-fee-ignored", "a key at its max_fee keeps being served", GENERATING,
    ["billing.max_fee"], "billing")
# -- the gateway's own APIs: Midjourney tasks, search proxies ------------------------------
MJ_ROUTES = frozenset(f"/api/v1/ai/draw/mj/{name}" for name in (
    "imagine", "action", "blend", "describe", "query", "query-mj-tasks"))
MJ_QUERY = frozenset({"/api/v1/ai/draw/mj/query"})
MJ_PAGES = frozenset({"/api/v1/ai/draw/mj/query-mj-tasks"})
SEARCH_ROUTES = frozenset({"/api/v1/openapi/search/serper/v1",
                           "/api/v1/openapi/search/google-search/v1"})
GATEWAY_ROUTES = MJ_ROUTES | SEARCH_ROUTES

GATEWAY_ERROR_NOT_ENVELOPED = _b(
    "gateway-error-not-enveloped", "the gateway's own APIs answer errors in OpenAI's "
    "{error: {...}} instead of {statusCode, message, data}", GATEWAY_ROUTES,
    ["gateway.envelope"])
GATEWAY_ACCEPT_ANY_KEY = _b(
    "gateway-accept-any-key", "the Midjourney and search routes accept any key, or none",
    GATEWAY_ROUTES, ["auth.rejected"])
SEARCH_ANSWER_WRAPPED = _b(
    "search-answer-wrapped", "the search proxies wrap the upstream's answer in the envelope "
    "instead of passing it through", SEARCH_ROUTES, ["search.answer"])
MJ_PAGE_SIZE_UNCHECKED = _b(
    "mj-page-size-unchecked", "the paginated task query takes any pageSize (50 gives 50)",
    MJ_PAGES, ["task.page_size"])
MJ_TASK_ID_AS_TEXT = _b(
    "mj-task-id-as-text", "task creation answers the id as a string (\"12\"), not an integer",
    MJ_ROUTES - MJ_QUERY - MJ_PAGES, ["task.schema"])
MJ_TOTALS_INCONSISTENT = _b(
    "mj-totals-inconsistent", "the paginated task query's total grows with the page number",
    MJ_PAGES, ["task.page_total"], "sequence")
MJ_STATUS_BACKWARDS = _b(
    "mj-status-backwards", "a task at 50% says SUBMITTED again", MJ_QUERY, ["task.order"],
    "sequence")
MJ_PROGRESS_DECREASING = _b(
    "mj-progress-decreasing", "a task's progress goes from 25% back to 10%", MJ_QUERY,
    ["task.progress"], "sequence")
MJ_SUCCESS_WITHOUT_IMAGE = _b(
    "mj-success-without-image", "a task succeeds without an image URL or actions", MJ_QUERY,
    ["task.result"], "sequence")
MJ_TASK_NEVER_FINISHES = _b(
    "mj-task-never-finishes", "tasks stay IN_PROGRESS at 75% forever", MJ_QUERY,
    ["task.deadline"], "sequence")

# -- the Realtime API (a WebSocket session) ------------------------------------------------------
REALTIME = frozenset({"/v1/realtime"})
REALTIME_ACCEPT_ANY_KEY = _b(
    "realtime-accept-any-key", "the Realtime handshake accepts any key, or none", REALTIME,
    ["auth.rejected", "realtime.handshake"], "sequence")
REALTIME_NO_SESSION_CREATED = _b(
    "realtime-no-session-created", "a Realtime session never says session.created", REALTIME,
    ["realtime.order"], "sequence")
REALTIME_DELTA_AFTER_DONE = _b(
    "realtime-delta-after-done", "a text delta comes after its response.done", REALTIME,
    ["realtime.order"], "sequence")
REALTIME_BARE_ERROR = _b(
    "realtime-bare-error", "error events carry a bare message, no error object", REALTIME,
    ["realtime.error"], "sequence")
# -- media faults (images, speech, transcriptions, moderations): behaviour faults, each asked
# by its route's handler where it decides.
IMAGES = frozenset({"/v1/images/generations", "/v1/images/edits"})
SPEECH = frozenset({"/v1/audio/speech"})
TRANSCRIPTIONS = frozenset({"/v1/audio/transcriptions"})
MODERATIONS = frozenset({"/v1/moderations"})
IMAGE_WRONG_SIZE = _b(
    "image-wrong-size", "images are drawn half as wide as the asked size", IMAGES,
    ["image.data"])
IMAGE_RELATIVE_URL = _b(
    "image-relative-url", "url answers are paths without a scheme and host", IMAGES,
    ["image.url"])
SPEECH_WRONG_CONTENT_TYPE = _b(
    "speech-wrong-content-type", "speech is labelled audio/mpeg whatever the asked "
    "response_format", SPEECH, ["speech.content_type"])
SPEECH_WAV_ALWAYS = _b(
    "speech-wav-always", "speech bytes are WAV whatever the asked response_format (the label "
    "is right)", SPEECH, ["speech.audio"])
TRANSCRIPTION_SRT_AS_VTT = _b(
    "transcription-srt-as-vtt", "an srt transcription is answered in WebVTT",
    TRANSCRIPTIONS, ["transcription.format"])
MODERATION_REVERSED = _b(
    "moderation-reversed", "moderation results come in the reverse order of the inputs",
    MODERATIONS, ["moderation.order"])
MODERATION_SCORE_PERCENT = _b(
    "moderation-score-percent", "category scores are percentages (0-100), not 0-1",
    MODERATIONS, ["moderation.results"])


# -- issue 24: checks that were missing ------------------------------------------------------
def _embeddings_zero_usage(endpoint: str, payload: dict[str, Any]) -> bool:
    usage = payload.get("usage")
    if not isinstance(usage, dict):
        return False
    usage["prompt_tokens"] = usage["total_tokens"] = 0
    return True


def _count_tokens_extra(endpoint: str, payload: dict[str, Any]) -> bool:
    payload["cache_read_input_tokens"] = 0
    return True


def _foreign_tool_id(tool_id: str) -> str:
    return "call_" + tool_id.removeprefix("toolu_")


def _tool_ids_unprefixed(endpoint: str, payload: dict[str, Any]) -> bool:
    blocks = [b for b in payload.get("content") or [] if b.get("type") == "tool_use"]
    for block in blocks:
        block["id"] = _foreign_tool_id(block["id"])
    return bool(blocks)


def _tool_ids_unprefixed_stream(endpoint: str, plan: Plan) -> Plan:
    def edit(p: dict[str, Any]) -> dict[str, Any] | None:
        block = p.get("content_block")
        if p.get("type") != "content_block_start" or not isinstance(block, dict) or \
                block.get("type") != "tool_use":
            return None
        return {**p, "content_block": {**block, "id": _foreign_tool_id(block["id"])}}

    return _map_payloads(plan, edit)


def _tool_calls_stop(endpoint: str, payload: dict[str, Any]) -> bool:
    changed = False
    for choice in payload.get("choices") or []:
        if choice.get("finish_reason") == "tool_calls":
            choice["finish_reason"], changed = "stop", True
    return changed


def _tool_calls_stop_stream(endpoint: str, plan: Plan) -> Plan:
    def edit(p: dict[str, Any]) -> dict[str, Any] | None:
        choices = p.get("choices") or []
        if not any(c.get("finish_reason") == "tool_calls" for c in choices):
            return None
        return {**p, "choices": [{**c, "finish_reason": "stop"}
                                 if c.get("finish_reason") == "tool_calls" else c
                                 for c in choices]}

    return _map_payloads(plan, edit)


# -- the Responses API, Conversations and stored chat completions -----------------------------
RESPONSES = "/v1/responses"
RESPONSE_ROUTES = frozenset({RESPONSES, RESPONSES + "/{response_id}",
                             RESPONSES + "/{response_id}/cancel",
                             RESPONSES + "/{response_id}/input_items"})
CONVERSATION_ROUTES = frozenset({"/v1/conversations", "/v1/conversations/{conversation_id}",
                                 "/v1/conversations/{conversation_id}/items",
                                 "/v1/conversations/{conversation_id}/items/{item_id}"})
CHAT_STORE_ROUTES = frozenset({CHAT, CHAT + "/{completion_id}",
                               CHAT + "/{completion_id}/messages"})


def _typed(event: PlannedEvent, *types: str) -> bool:
    payload = _payload(event)
    return payload is not None and payload.get("type") in types


def _renumbered(plan: Plan) -> Plan:
    """Sequence numbers 0, 1, 2... in the plan's order (a fault that moves an event must not
    also trip the sequence check)."""
    counter = iter(range(len(plan)))
    return _map_payloads(plan, lambda p: {**p, "sequence_number": next(counter)}
                         if "sequence_number" in p else None)


def _responses_no_completed(endpoint: str, plan: Plan) -> Plan:
    return [e for e in plan if not _typed(e, "response.completed", "response.incomplete")]


def _responses_sequence_gap(endpoint: str, plan: Plan) -> Plan:
    return plan[:3] + _map_payloads(plan[3:], lambda p: {
        **p, "sequence_number": p["sequence_number"] + 1} if "sequence_number" in p else None)


def _responses_deltas_short(endpoint: str, plan: Plan) -> Plan:
    deltas = [i for i, e in enumerate(plan) if _typed(e, "response.output_text.delta")]
    drop = deltas[1] if len(deltas) > 1 else deltas[0] if deltas else -1
    return _renumbered([e for i, e in enumerate(plan) if i != drop])


def _responses_no_usage(endpoint: str, plan: Plan) -> Plan:
    return _map_payloads(plan, lambda p: {**p, "response": {**p["response"], "usage": None}}
                         if p.get("type") == "response.completed" else None)


def _responses_done_first(endpoint: str, plan: Plan) -> Plan:
    deltas = [i for i, e in enumerate(plan) if _typed(e, "response.output_text.delta")]
    done = [i for i, e in enumerate(plan) if _typed(e, "response.output_text.done")]
    if not deltas or not done:
        return plan
    moved = replace(plan[done[0]], offset_ns=plan[deltas[0]].offset_ns)
    rest = [e for i, e in enumerate(plan) if i != done[0]]
    return _renumbered(rest[:deltas[0]] + [moved] + rest[deltas[0]:])


def _responses_misnamed(endpoint: str, plan: Plan) -> Plan:
    return [_rewrite(e, name="delta") if _typed(e, "response.output_text.delta") else e
            for e in plan]


def _responses_item_id_changes(endpoint: str, plan: Plan) -> Plan:
    seen = iter(range(len(plan)))
    return _map_payloads(plan, lambda p: {**p, "item_id": "msg_gateprobe_other"}
                         if p.get("type") == "response.output_text.delta" and next(seen) == 1
                         else None)


def _responses_tool_args_off_schema(endpoint: str, plan: Plan) -> Plan:
    """Every trace of the call's arguments says ``{}`` (consistent, but the schema's required
    properties are missing)."""
    started: set[Any] = set()

    def edit(p: dict[str, Any]) -> dict[str, Any] | None:
        kind = p.get("type")
        if kind == "response.function_call_arguments.delta":
            first = p.get("item_id") not in started
            started.add(p.get("item_id"))
            return {**p, "delta": "{}" if first else ""}
        if kind == "response.function_call_arguments.done":
            return {**p, "arguments": "{}"}
        if kind == "response.output_item.done" and p["item"].get("type") == "function_call":
            return {**p, "item": {**p["item"], "arguments": "{}"}}
        if kind == "response.completed":
            output = [{**o, "arguments": "{}"} if o.get("type") == "function_call" else o
                      for o in p["response"]["output"]]
            return {**p, "response": {**p["response"], "output": output}}
        return None

    return _map_payloads(plan, edit)


UPSTREAM_SAME_HOST_LEAK = _b(
    "upstream-same-host-leak", "every answer names its upstream on the gateway's own host, "
    "one port up, in an x-upstream header", API, ["security.internal_url"])
COUNT_TOKENS_EXTRA_FIELDS = _r(
    "count-tokens-extra-fields", "count_tokens answers carry a field beyond input_tokens "
    "(a finding under strictness: strict-upstream only)",
    frozenset({"/v1/messages/count_tokens"}), ["response.strict_shape"],
    _on_success(_count_tokens_extra))
EMBEDDINGS_ZERO_USAGE = _r(
    "embeddings-zero-usage", "embeddings bill 0 prompt tokens for a non-empty input",
    frozenset({"/v1/embeddings"}), ["usage.accounting"], _on_success(_embeddings_zero_usage))
SERVER_ERROR_TYPE_429 = _b(
    "server-error-type-429", "every request gets 429 (Retry-After: 0) typed "
    "internal_server_error", OPENAI_API, ["error.type", "response.rate_limited"])
TOOL_ID_UNPREFIXED = _declare(Fault(
    "tool-id-unprefixed", "tool_use ids lack Anthropic's toolu_ prefix (call_...)",
    frozenset({MESSAGES}), ("tool.calls", "stream.tool_calls"),
    transform=_tool_ids_unprefixed_stream, response=_on_success(_tool_ids_unprefixed)))
TOOL_REQUIRED_AS_AUTO = _b(
    "tool-required-as-auto", "tool_choice required (Anthropic any) is treated as auto: no "
    "call unless the prompt names a tool", frozenset({CHAT, MESSAGES}),
    ["tool.calls", "stream.tool_calls"])
TOOL_CALLS_STOP = _declare(Fault(
    "tool-calls-stop", "a turn of tool calls ends with finish_reason stop (right only after "
    "a named function choice)", frozenset({CHAT}), ("tool.calls", "stream.tool_calls"),
    transform=_tool_calls_stop_stream, response=_on_success(_tool_calls_stop)))

_RESPONSES_STREAM = frozenset({RESPONSES})
RESPONSES_NO_COMPLETED = _f(
    "responses-no-completed", "a Responses stream never sends response.completed",
    _RESPONSES_STREAM, ["responses.terminator"], _responses_no_completed)
RESPONSES_SEQUENCE_GAP = _f(
    "responses-sequence-gap", "a Responses stream's sequence_number skips one after the "
    "third event", _RESPONSES_STREAM, ["responses.sequence"], _responses_sequence_gap)
RESPONSES_DELTAS_SHORT = _f(
    "responses-deltas-short", "one response.output_text.delta is never sent (the done text "
    "is whole)", _RESPONSES_STREAM, ["responses.text"], _responses_deltas_short)
RESPONSES_NO_USAGE = _f(
    "responses-no-usage", "response.completed carries usage: null", _RESPONSES_STREAM,
    ["responses.usage"], _responses_no_usage)
RESPONSES_DONE_BEFORE_DELTAS = _f(
    "responses-done-before-deltas", "response.output_text.done comes before its deltas",
    _RESPONSES_STREAM, ["responses.order"], _responses_done_first)
RESPONSES_MISNAMED_EVENTS = _f(
    "responses-misnamed-events", "response.output_text.delta events are named 'delta'",
    _RESPONSES_STREAM, ["responses.event_name"], _responses_misnamed)
RESPONSES_ITEM_ID_CHANGES = _f(
    "responses-item-id-changes", "the second text delta names another item_id",
    _RESPONSES_STREAM, ["responses.items"], _responses_item_id_changes)
RESPONSES_TOOL_ARGS_OFF_SCHEMA = _f(
    "responses-tool-args-off-schema", "a streamed function call's arguments are {} (its "
    "schema's required properties missing)", _RESPONSES_STREAM, ["responses.tool_args"],
    _responses_tool_args_off_schema)
RESPONSES_USAGE_INCONSISTENT = _b(
    "responses-usage-inconsistent", "a response's usage.total_tokens is one more than input + "
    "output", _RESPONSES_STREAM, ["responses.usage"])
RESPONSES_FORMAT_IGNORED = _b(
    "responses-format-ignored", "text.format json_schema is ignored: the output is prose",
    _RESPONSES_STREAM, ["responses.format"])
RESPONSES_NOT_STORED = _b(
    "responses-not-stored", "a stored response is not retrievable (GET answers 404)",
    RESPONSE_ROUTES, ["responses.stored"], "sequence")
RESPONSES_DELETED_SERVED = _b(
    "responses-deleted-served", "a deleted response is still served by GET",
    RESPONSE_ROUTES, ["responses.deleted"], "sequence")
RESPONSES_PREVIOUS_IGNORED = _b(
    "responses-previous-ignored", "previous_response_id is accepted but the prior turn is not "
    "read (nor billed)", RESPONSE_ROUTES, ["responses.previous"], "sequence")
RESPONSES_CANCEL_IGNORED = _b(
    "responses-cancel-ignored", "cancelling a background response answers cancelled, but it "
    "completes anyway", RESPONSE_ROUTES, ["responses.cancel"], "sequence")
RESPONSES_STORE_FALSE_KEPT = _b(
    "responses-store-false-kept", "a response created with store: false is retrievable",
    RESPONSE_ROUTES, ["responses.not_stored"], "sequence")
CONVERSATION_ITEMS_LOST = _b(
    "conversation-items-lost", "a response in a conversation does not add its output to the "
    "conversation's items", CONVERSATION_ROUTES | RESPONSE_ROUTES, ["conversations.items"],
    "sequence")
CHAT_STORE_IGNORED = _b(
    "chat-store-ignored", "a chat completion created with store: true is neither listed nor "
    "retrievable", CHAT_STORE_ROUTES, ["chat_store.stored"], "sequence")
CHAT_STORE_DELETED_SERVED = _b(
    "chat-store-deleted-served", "a deleted stored chat completion is still listed and served",
    CHAT_STORE_ROUTES, ["chat_store.deleted"], "sequence")

CATALOGUE: Mapping[str, Fault] = MappingProxyType(_declared)
"""Every fault by name, in declaration order."""


def validate(names: Sequence[str]) -> tuple[str, ...]:
    """The fault names, each checked against the catalogue (``ConfigError`` naming a fix)."""
    for name in names:
        if name not in CATALOGUE:
            close = difflib.get_close_matches(name, list(CATALOGUE), n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else " (see --list-faults)"
            raise ConfigError(f"unknown fault {name!r}{hint}")
    return tuple(names)


def apply_stream_faults(names: Sequence[str], endpoint: str, plan: Plan) -> Plan:
    """The plan with every enabled fault that applies to ``endpoint`` applied, in order."""
    for name in names:
        fault = CATALOGUE[name]
        if fault.transform and endpoint in fault.endpoints and _content_positions(plan):
            plan = fault.transform(endpoint, plan)
    return plan


def apply_response_faults(names: Sequence[str], endpoint: str, answer: Answer) -> Answer:
    """A non-streaming answer with every enabled answer fault for ``endpoint`` applied."""
    for name in names:
        fault = CATALOGUE[name]
        if fault.response and endpoint in fault.endpoints:
            answer = fault.response(endpoint, answer)
    return answer


def endpoints_text(fault: Fault, code: str = "`") -> str:
    """Where ``fault`` applies, in words where a named set of routes says it shorter."""
    return "every API route" if fault.endpoints == API else "every generating route" \
        if fault.endpoints == GENERATING else "every stream" if fault.endpoints == ALL_STREAMS \
        else "every management route" if fault.endpoints == MANAGEMENT \
        else "every Midjourney and search route" if fault.endpoints == GATEWAY_ROUTES \
        else "both search proxies" if fault.endpoints == SEARCH_ROUTES \
        else ", ".join(f"{code}{e}{code}" for e in sorted(fault.endpoints))


def catalogue_json() -> list[dict[str, Any]]:
    """The catalogue for machines (``gateprobe serve --list-faults --json``), in order."""
    return [{"name": f.name, "kind": f.proven_by, "description": f.description,
             "endpoints": sorted(f.endpoints), "trips": list(f.trips)}
            for f in CATALOGUE.values()]
