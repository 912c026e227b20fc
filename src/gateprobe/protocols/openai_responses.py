"""OpenAI's Responses API: ``POST /v1/responses`` and its stream of typed semantic events.

Grammar (OpenAI's API reference, "Streaming events"): ``response.created`` (or
``response.queued``) -> ``response.in_progress`` -> per output item, ``output_index`` 0, 1, ...:
``response.output_item.added`` -> for a message, per content part, ``content_index`` 0, 1,
...: ``response.content_part.added`` -> ``response.output_text.delta``* ->
``response.output_text.done`` -> ``response.content_part.done``; for a function call,
``response.function_call_arguments.delta``* -> ``.done`` -> ``response.output_item.done``;
then ``response.completed`` (or ``response.incomplete``; ``response.failed`` and ``error`` end
it too). Every event's SSE ``event:`` name equals its JSON ``type``; ``sequence_number`` counts
the events from 0, one by one; ``item_id``/``output_index``/``content_index`` name the open
item and part. The deltas reassemble into the ``.done`` text (or arguments), the part and item
done, and the final response's output; a function call's arguments are JSON valid against the
tool's schema; usage (``total_tokens`` = ``input_tokens`` + ``output_tokens``) is on the final
response only. Event types this grammar does not know (reasoning, hosted tools) are checked for
their name and number only, as OpenAI tells clients to ignore what they do not know.

Check ids (through ``stream.grammar`` for streams, ``responses.answer`` for plain answers):
``responses.event_name``, ``responses.sequence``, ``responses.order``, ``responses.items``,
``responses.text``, ``responses.usage``, ``responses.tool_args``, ``responses.format``,
``responses.terminator``; an ``error`` event or ``response.failed`` is ``stream.error_event``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, TypeGuard

import jsonschema

from gateprobe.core.checks import NOT_APPLICABLE, CheckResult, Context, Exchange, check
from gateprobe.core.findings import Finding, Severity
from gateprobe.core.sse import Event
from gateprobe.protocols._openai import ERROR_SCHEMA, ApiError, parse_error
from gateprobe.protocols._stream import GrammarBase, Redact, _same
from gateprobe.protocols._stream import is_int as _is_json_int
from gateprobe.protocols.tools import Tools, argument_problems

__all__ = ["ENDPOINT", "ERROR_SCHEMA", "STREAM_IDS", "ApiError", "StreamGrammar",
           "content_of", "output_text", "parse_error", "response_tools"]

ENDPOINT = "/v1/responses"
STREAM_IDS = ("responses.event_name", "responses.sequence", "responses.order",
              "responses.items", "responses.text", "responses.usage", "responses.tool_args",
              "responses.format", "responses.terminator")
"""The ids the Responses stream grammar reports (``stream.grammar`` emits them)."""
TERMINALS = frozenset({"response.completed", "response.incomplete", "response.failed"})
OPENING = frozenset({"response.created", "response.queued", "response.in_progress"})
EVIDENCE_CHARS = 300


def is_int(value: object) -> TypeGuard[int]:
    """A JSON integer (booleans are not)."""
    return _is_json_int(value)


def response_tools(body: Any) -> dict[str, Any]:
    """The function tools a request declared (name -> parameters schema), in the Responses
    API's flat form (``{"type": "function", "name", "parameters"}``)."""
    tools = body.get("tools") if isinstance(body, Mapping) else None
    out: dict[str, Any] = {}
    for tool in tools if isinstance(tools, list) else []:
        if isinstance(tool, dict) and tool.get("type") == "function" and \
                isinstance(tool.get("name"), str):
            schema = tool.get("parameters")
            out[tool["name"]] = schema if isinstance(schema, dict) else {"type": "object"}
    return out


def format_schema(body: Any) -> dict[str, Any] | None:
    """The JSON schema ``text.format`` asked the output to follow, if it asked."""
    text = body.get("text") if isinstance(body, Mapping) else None
    fmt = text.get("format") if isinstance(text, dict) else None
    if isinstance(fmt, dict) and fmt.get("type") == "json_schema" and \
            isinstance(fmt.get("schema"), dict):
        schema: dict[str, Any] = fmt["schema"]
        return schema
    return None


def output_text(response: Any) -> str:
    """What the SDKs call ``output_text``: every ``output_text`` part of every message item,
    in order (not a wire field: the client computes it from ``output``)."""
    output = response.get("output") if isinstance(response, dict) else None
    texts = []
    for item in output if isinstance(output, list) else []:
        if not isinstance(item, dict) or item.get("type") != "message":
            continue
        texts += [part["text"] for part in item.get("content") or []
                  if isinstance(part, dict) and part.get("type") == "output_text"
                  and isinstance(part.get("text"), str)]
    return "".join(texts)


def usage_problems(usage: Any) -> list[str]:
    """What is wrong with a final response's usage; [] when it adds up."""
    if not isinstance(usage, dict):
        return [f"usage is {type(usage).__name__}, not an object"]
    names = ("input_tokens", "output_tokens", "total_tokens")
    missing = [k for k in names if not is_int(usage.get(k))]
    if missing:
        return [f"usage without integer {', '.join(missing)}"]
    given, made, total = (int(usage[k]) for k in names)
    if total != given + made:
        return [f"total_tokens {total} != input_tokens {given} + output_tokens {made}"]
    return []


def answer_problems(response: Any, tools: Tools, schema: dict[str, Any] | None
                    ) -> list[tuple[str, str, str]]:
    """(check id, expected, observed) for a final response: usage, function calls, format."""
    out: list[tuple[str, str, str]] = []
    status = response.get("status") if isinstance(response, dict) else None
    if status in ("completed", "incomplete"):
        out += [("responses.usage", "usage with total_tokens = input_tokens + output_tokens",
                 p) for p in usage_problems(response.get("usage"))]
    if status != "completed":
        return out  # a cut answer may hold half arguments or half JSON
    for item in response.get("output") or []:
        if isinstance(item, dict) and item.get("type") == "function_call":
            out += [("responses.tool_args", "function call arguments valid against the "
                     "tool's schema", p)
                    for p in argument_problems(item.get("name"), item.get("arguments"), tools)]
    if schema is not None:
        out += [("responses.format", "output_text that is JSON valid against text.format's "
                 "schema", p) for p in format_problems(output_text(response), schema)]
    return out


def format_problems(text: str, schema: dict[str, Any]) -> list[str]:
    """Whether ``text`` is JSON valid against ``schema`` (a client parses it as such)."""
    try:
        value = json.loads(text)
    except ValueError:
        return [f"output_text is not JSON: {text[:80]!r}"]
    try:
        errors = list(jsonschema.Draft202012Validator(schema).iter_errors(value))
    except jsonschema.SchemaError:
        return []
    return [f"output_text breaks the schema: {errors[0].message[:120]}"] if errors else []


@dataclass(slots=True)
class _Item:
    """One output item as the stream built it."""

    id: Any
    kind: Any
    name: Any = None
    parts: list[list[str]] = field(default_factory=list)
    """Per content part, its deltas."""
    parts_open: set[int] = field(default_factory=set)
    text_done: set[int] = field(default_factory=set)
    done_text: dict[int, Any] = field(default_factory=dict)
    arguments: list[str] = field(default_factory=list)
    open: bool = True
    disordered: bool = False
    """An order finding was reported on it: its text is not compared again."""


class StreamGrammar(GrammarBase):
    """The Responses event stream (see the module)."""

    def __init__(self, endpoint: str = ENDPOINT, redact: Redact = _same,
                 tools: Tools | None = None, schema: dict[str, Any] | None = None) -> None:
        super().__init__(endpoint, redact)
        self.tools: Tools = tools or {}
        self.schema = schema
        self._next_seq = 0
        self._seq_reported = False
        self._started = False
        self._created = False
        self._items: list[_Item] = []

    def feed(self, event: Event) -> list[Finding]:
        """Check one event."""
        out: list[Finding] = []
        payload = self.decode(event, out)
        if payload is None:
            return out
        kind = payload.get("type")
        if event.type != kind:
            out.append(self.finding("responses.event_name", Severity.MEDIUM,
                                    "the event: name equals the data's type",
                                    f"event {event.type[:40]!r}, type {kind!r}", event))
        out += self._sequence(payload, event)
        if self.done:
            return out + [self.finding("responses.order", Severity.HIGH,
                                       "nothing after the response's last event",
                                       f"{kind} after it", event)]
        if kind == "error" or kind == "response.failed":
            self.done = self.errored = True
            return out + [self.finding("stream.error_event", Severity.HIGH,
                                       "no error inside a 200 stream", f"a {kind} event", event)]
        if not self._started and kind not in OPENING:
            out.append(self.finding("responses.order", Severity.HIGH,
                                    "response.created first", f"{kind} first", event))
        self._started = True
        handler = getattr(self, "_on_" + str(kind).replace("response.", "").replace(".", "_"),
                          None)
        return out + (handler(payload, event) if handler is not None else [])

    def _sequence(self, payload: dict[str, Any], event: Event) -> list[Finding]:
        number = payload.get("sequence_number")
        expected, self._next_seq = self._next_seq, (number + 1 if is_int(number)
                                                    else self._next_seq + 1)
        if number == expected or self._seq_reported:
            return []
        self._seq_reported = True  # one finding names the problem; the rest follow from it
        return [self.finding("responses.sequence", Severity.HIGH,
                             f"sequence_number {expected} (from 0, one by one)",
                             f"sequence_number {number!r}", event, "/sequence_number")]

    # -- lifecycle -----------------------------------------------------------------------
    def _opening(self, payload: dict[str, Any], event: Event) -> list[Finding]:
        kind, response = payload.get("type"), payload.get("response")
        out: list[Finding] = []
        if self._items or kind == "response.created" and self._created:
            out.append(self.finding("responses.order", Severity.HIGH,
                                    "one response.created, then in_progress, before any item",
                                    f"{kind} after {len(self._items)} items", event))
        self._created = True
        if isinstance(response, dict) and response.get("usage") is not None:
            out.append(self.finding("responses.usage", Severity.MEDIUM,
                                    "usage only on the final response",
                                    f"usage on {kind}", event, "/response/usage"))
        return out

    _on_created = _on_queued = _on_in_progress = _opening

    def _terminal(self, payload: dict[str, Any], event: Event) -> list[Finding]:
        self.done = True
        out: list[Finding] = []
        still = [i.id for i in self._items if i.open]
        if still:
            out.append(self.finding("responses.order", Severity.HIGH,
                                    "every output item done before the response ends",
                                    f"items {still} never done", event))
        response = payload.get("response")
        if not isinstance(response, dict):
            return out + [self.finding("responses.usage", Severity.MEDIUM,
                                       "the final response, with its usage",
                                       "no response object", event, "/response")]
        out += self._final_output(response, event)
        wanted = "completed" if payload["type"] == "response.completed" else "incomplete"
        if response.get("status") != wanted:
            out.append(self.finding("responses.order", Severity.MEDIUM,
                                    f"{payload['type']} carries status {wanted}",
                                    f"status {response.get('status')!r}", event,
                                    "/response/status"))
        out += [self.finding(cid, Severity.HIGH if cid != "responses.usage" else
                             Severity.MEDIUM, expected, observed, event)
                for cid, expected, observed in answer_problems(response, self.tools,
                                                               self.schema)]
        return out

    _on_completed = _on_incomplete = _terminal

    def _final_output(self, response: dict[str, Any], event: Event) -> list[Finding]:
        """The final response's output says what the deltas said."""
        streamed = "".join("".join(p) for i in self._items if i.kind == "message"
                           and not i.disordered for p in i.parts)
        if any(i.disordered for i in self._items):
            return []
        final = output_text(response)
        out = [] if final == streamed else [self.finding(
            "responses.text", Severity.HIGH, "the deltas add up to the final output_text",
            f"deltas {streamed[:60]!r}, final {final[:60]!r}", event)]
        calls = [o for o in response.get("output") or []
                 if isinstance(o, dict) and o.get("type") == "function_call"]
        sent = ["".join(i.arguments) for i in self._items if i.kind == "function_call"]
        if [c.get("arguments") for c in calls] != sent:
            out.append(self.finding("responses.text", Severity.HIGH,
                                    "argument deltas add up to the final function calls",
                                    f"{len(sent)} streamed, final {len(calls)} differ", event))
        return out

    # -- items and parts ------------------------------------------------------------------
    def _item_at(self, payload: dict[str, Any], event: Event, out: list[Finding]
                 ) -> _Item | None:
        """The open item an event names by ``output_index`` (and ``item_id``), or None with
        a finding."""
        index, ident = payload.get("output_index"), payload.get("item_id")
        if not is_int(index) or not 0 <= index < len(self._items):
            out.append(self.finding("responses.items", Severity.HIGH,
                                    "an output_index of an added item",
                                    f"output_index {index!r} ({len(self._items)} added)", event))
            return None
        item = self._items[index]
        if "item_id" in payload and ident != item.id:
            out.append(self.finding("responses.items", Severity.HIGH,
                                    f"item_id {item.id!r} of output_index {index}",
                                    f"item_id {ident!r}", event, "/item_id"))
        if not item.open:
            out.append(self.finding("responses.order", Severity.HIGH,
                                    "events of an item before its output_item.done",
                                    f"{payload.get('type')} after it", event))
            item.disordered = True
            return None
        return item

    def _on_output_item_added(self, payload: dict[str, Any], event: Event) -> list[Finding]:
        item, index = payload.get("item"), payload.get("output_index")
        out: list[Finding] = []
        if index != len(self._items):
            out.append(self.finding("responses.items", Severity.HIGH,
                                    f"the next item at output_index {len(self._items)}",
                                    f"output_index {index!r}", event, "/output_index"))
        if not isinstance(item, dict) or not isinstance(item.get("id"), str):
            out.append(self.finding("responses.items", Severity.HIGH,
                                    "an item with its id and type", "no item id", event, "/item"))
            item = item if isinstance(item, dict) else {}
        self._items.append(_Item(item.get("id"), item.get("type"), item.get("name")))
        return out

    def _on_content_part_added(self, payload: dict[str, Any], event: Event) -> list[Finding]:
        out: list[Finding] = []
        item = self._item_at(payload, event, out)
        if item is None:
            return out
        if payload.get("content_index") != len(item.parts):
            out.append(self.finding("responses.items", Severity.HIGH,
                                    f"the next part at content_index {len(item.parts)}",
                                    f"content_index {payload.get('content_index')!r}", event))
        item.parts_open.add(len(item.parts))
        item.parts.append([])
        return out

    def _part(self, payload: dict[str, Any], event: Event, out: list[Finding]
              ) -> tuple[_Item, int] | None:
        item = self._item_at(payload, event, out)
        index = payload.get("content_index")
        if item is None:
            return None
        if not is_int(index) or index not in item.parts_open:
            out.append(self.finding("responses.order", Severity.HIGH,
                                    "text events inside their added content part",
                                    f"{payload.get('type')} for content_index {index!r}, "
                                    "which is not open", event))
            item.disordered = True
            return None
        return item, index

    def _on_output_text_delta(self, payload: dict[str, Any], event: Event) -> list[Finding]:
        out: list[Finding] = []
        found = self._part(payload, event, out)
        if found is None:
            return out
        item, index = found
        if index in item.text_done:
            item.disordered = True
            return out + [self.finding("responses.order", Severity.HIGH,
                                       "every delta before its output_text.done",
                                       "a delta after it", event)]
        delta = payload.get("delta")
        item.parts[index].append(delta if isinstance(delta, str) else "")
        return out

    def _on_output_text_done(self, payload: dict[str, Any], event: Event) -> list[Finding]:
        out: list[Finding] = []
        found = self._part(payload, event, out)
        if found is None:
            return out
        item, index = found
        item.text_done.add(index)
        item.done_text[index] = payload.get("text")  # compared when the part is done
        return out

    def _same_text(self, item: _Item, index: int, text: Any, where: str,
                   event: Event) -> list[Finding]:
        joined = "".join(item.parts[index])
        if item.disordered or text == joined:
            return []
        return [self.finding("responses.text", Severity.HIGH, f"the deltas add up to the "
                             f"{where} text", f"deltas {joined[:60]!r}, {where} "
                             f"{str(text)[:60]!r}", event)]

    def _on_content_part_done(self, payload: dict[str, Any], event: Event) -> list[Finding]:
        out: list[Finding] = []
        found = self._part(payload, event, out)
        if found is None:
            return out
        item, index = found
        if index not in item.text_done and item.kind == "message" and not item.disordered:
            out.append(self.finding("responses.order", Severity.HIGH,
                                    "output_text.done before content_part.done",
                                    "content_part.done without it", event))
        item.parts_open.discard(index)
        part = payload.get("part")
        text = part.get("text") if isinstance(part, dict) else None
        if not out and index in item.text_done:
            out += self._same_text(item, index, item.done_text.get(index), "output_text.done",
                                   event) or \
                self._same_text(item, index, text, "content_part.done", event)
        return out

    def _on_function_call_arguments_delta(self, payload: dict[str, Any], event: Event
                                          ) -> list[Finding]:
        out: list[Finding] = []
        item = self._item_at(payload, event, out)
        if item is not None:
            delta = payload.get("delta")
            item.arguments.append(delta if isinstance(delta, str) else "")
        return out

    def _on_function_call_arguments_done(self, payload: dict[str, Any], event: Event
                                         ) -> list[Finding]:
        out: list[Finding] = []
        item = self._item_at(payload, event, out)
        if item is not None and "".join(item.arguments) != payload.get("arguments"):
            out.append(self.finding("responses.text", Severity.HIGH,
                                    "argument deltas add up to the .done arguments",
                                    f"deltas {''.join(item.arguments)[:60]!r}, done "
                                    f"{str(payload.get('arguments'))[:60]!r}", event))
        return out

    def _on_output_item_done(self, payload: dict[str, Any], event: Event) -> list[Finding]:
        out: list[Finding] = []
        item = self._item_at(payload, event, out)
        if item is None:
            return out
        if item.parts_open:
            out.append(self.finding("responses.order", Severity.HIGH,
                                    "every content part done before its item",
                                    f"parts {sorted(item.parts_open)} open", event))
        item.open = False
        return out

    def finish(self) -> list[Finding]:
        """The stream ended: did it end with its response's last event?"""
        if self.done or self.errored:
            return []
        return [self.finding("responses.terminator", Severity.HIGH,
                             "the stream ends with response.completed (or .incomplete, "
                             ".failed)", "no final response event")]


def content_of(payload: dict[str, Any]) -> str:
    """The generated text an event carries: text and function-argument deltas."""
    if payload.get("type") in ("response.output_text.delta",
                               "response.function_call_arguments.delta"):
        delta = payload.get("delta")
        return delta if isinstance(delta, str) else ""
    return ""


def usage_tokens(payload: dict[str, Any]) -> int | None:
    """The output tokens of the final response's usage, on its terminal event."""
    response = payload.get("response") if payload.get("type") in TERMINALS else None
    usage = response.get("usage") if isinstance(response, dict) else None
    tokens = usage.get("output_tokens") if isinstance(usage, dict) else None
    return tokens if is_int(tokens) else None


@check("responses.answer", Severity.HIGH, "a plain Responses answer's usage adds up, its "
       "function calls and text.format JSON are valid",
       emits=("responses.usage", "responses.tool_args", "responses.format"))
def responses_answer(ctx: Context, ex: Exchange) -> CheckResult:
    """``POST /v1/responses`` answered whole: what the grammar checks of the final response."""
    if ex.endpoint != ENDPOINT or ex.method != "POST" or ex.is_stream or ex.status != 200:
        return NOT_APPLICABLE
    try:
        response = json.loads(ex.body)
    except ValueError:
        return NOT_APPLICABLE  # response.schema says so
    evidence = ctx.redactor.text(ex.body[:EVIDENCE_CHARS].decode("utf-8", "replace"))
    return [Finding(cid, ex.endpoint, Severity.HIGH if cid != "responses.usage"
                    else Severity.MEDIUM, expected, ctx.redactor.text(observed), evidence)
            for cid, expected, observed in answer_problems(
                response, response_tools(ex.request), format_schema(ex.request))]
