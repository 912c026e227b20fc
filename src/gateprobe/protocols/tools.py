"""Tool calls: what a client that runs the model's tool calls depends on, in either family.

A client reassembles each call's arguments (OpenAI: ``function.arguments`` fragments of one
``tool_calls[].index``; Anthropic: ``input_json_delta.partial_json`` fragments of one
``tool_use`` block), parses them as JSON and hands them to the tool the call names. So: every
call names a tool the request declared, its arguments are a JSON object valid against that
tool's schema, and the stop reason says the turn ended for the tools (OpenAI ``tool_calls``,
or ``stop`` when ``tool_choice`` named the function, as OpenAI answers then, never after
``required``; Anthropic ``tool_use``, its ids ``toolu_...``). A forced call (``required``,
``any``, a named tool) must come whatever the prompt. A turn cut at its cap (``length``,
``max_tokens``) may carry half arguments and is not judged on them. The streams'
structure (indexes, ids, fragments) is judged by the grammars (``stream.tool_calls``);
this module holds the rules both use, and the ``tool.calls`` check of plain answers.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import jsonschema

from gateprobe.core.checks import NOT_APPLICABLE, CheckResult, Context, Exchange, check
from gateprobe.core.findings import Finding, Severity

Tools = Mapping[str, Any]
"""Tool name -> the JSON schema of its input, as the request declared them."""

CUT_SHORT = frozenset({"length", "max_tokens"})
OPENAI_TOOL_FINISH = frozenset({"tool_calls", "stop"})
EVIDENCE_CHARS = 300


def declared_tools(path: str, body: Any) -> dict[str, Any]:
    """The tools a request declared (name -> input schema), in either family's form."""
    tools = body.get("tools") if isinstance(body, Mapping) else None
    out: dict[str, Any] = {}
    for tool in tools if isinstance(tools, list) else []:
        if not isinstance(tool, dict):
            continue
        if path.endswith("/messages"):
            name, schema = tool.get("name"), tool.get("input_schema")
        else:
            raw = tool.get("function")
            function: dict[str, Any] = raw if isinstance(raw, dict) else {}
            name, schema = function.get("name"), function.get("parameters")
        if isinstance(name, str):
            out[name] = schema if isinstance(schema, dict) else {"type": "object"}
    return out


def argument_problems(name: Any, arguments: Any, tools: Tools) -> list[str]:
    """What is wrong with one call's name and arguments (JSON text, or an object already
    parsed, as Anthropic's plain answers carry it); [] when a client can run it."""
    if not isinstance(name, str) or name not in tools:
        return [f"a call of {name!r}, which the request did not declare "
                f"(declared: {', '.join(sorted(tools)) or 'none'})"]
    value = arguments
    if isinstance(arguments, str):
        try:
            value = json.loads(arguments or "{}")
        except ValueError:
            return [f"{name}: arguments that are not JSON: {arguments[:80]!r}"]
    if not isinstance(value, dict):
        return [f"{name}: arguments that are a JSON {type(value).__name__}, not an object"]
    try:
        validator = jsonschema.Draft202012Validator(tools[name])
        errors = sorted(validator.iter_errors(value), key=lambda e: list(e.path))
    except jsonschema.SchemaError:
        return []  # the request's own schema is broken: nothing to hold the answer to
    return [f"{name}: arguments {_path(e)}{e.message}" for e in errors[:2]]


def _path(error: Any) -> str:
    where = "/".join(map(str, error.absolute_path))
    return f"at /{where}: " if where else ""


def forced(body: Any) -> bool:
    """Whether ``tool_choice`` forced a call (a named function, or ``required``): the answer
    must then carry one, whatever the prompt."""
    choice = body.get("tool_choice") if isinstance(body, Mapping) else None
    return choice == "required" or isinstance(choice, dict) and \
        choice.get("type") in ("function", "tool", "any")


def named(body: Any) -> bool:
    """Whether ``tool_choice`` named the function to call: OpenAI then ends the turn with
    ``stop`` (it prefills the call); after ``required`` or a call the model chose it ends with
    ``tool_calls``."""
    choice = body.get("tool_choice") if isinstance(body, Mapping) else None
    return isinstance(choice, dict) and choice.get("type") == "function"


ANTHROPIC_TOOL_ID_PREFIX = "toolu_"
"""Anthropic's ``tool_use`` ids (clients and logs tell a tool call by it)."""


def _finding(ctx: Context, ex: Exchange, expected: str, observed: str) -> Finding:
    evidence = ex.body[:EVIDENCE_CHARS].decode("utf-8", "replace")
    return Finding("tool.calls", ex.endpoint, Severity.HIGH, expected,
                   ctx.redactor.text(observed), ctx.redactor.text(evidence))


@check("tool.calls", Severity.HIGH,
       "tool calls name a declared tool, with JSON arguments valid against its schema")
def tool_calls(ctx: Context, ex: Exchange) -> CheckResult:
    """A plain (non-streaming) answer's tool calls, as a client would run them."""
    if ex.is_stream or ex.status is None or not 200 <= ex.status < 300 or \
            ex.endpoint not in ("/v1/chat/completions", "/v1/messages"):
        return NOT_APPLICABLE
    try:
        payload = json.loads(ex.body)
    except ValueError:
        return NOT_APPLICABLE
    if not isinstance(payload, dict):
        return NOT_APPLICABLE
    tools = declared_tools(ex.endpoint, ex.request)
    problems = _messages_problems(payload, tools, forced(ex.request)) \
        if ex.endpoint == "/v1/messages" else _chat_problems(payload, tools, forced(ex.request),
                                                             named(ex.request))
    return [_finding(ctx, ex, "tool calls a client can run, and a stop reason that fits them",
                     problem) for problem in problems]


def _chat_problems(payload: dict[str, Any], tools: Tools, was_forced: bool,
                   was_named: bool = False) -> list[str]:
    out: list[str] = []
    for choice in payload.get("choices") or []:
        if not isinstance(choice, dict) or not isinstance(choice.get("message"), dict):
            continue
        calls = choice["message"].get("tool_calls") or []
        finish = choice.get("finish_reason")
        if finish == "tool_calls" and not calls:
            out.append("finish_reason tool_calls without any tool call")
        if was_forced and not calls and finish not in CUT_SHORT:
            out.append(f"no tool call, though tool_choice required one (finish_reason "
                       f"{finish!r})")
        if not calls or finish in CUT_SHORT:
            continue
        if finish not in OPENAI_TOOL_FINISH or (finish == "stop" and not was_named):
            out.append(f"{len(calls)} tool calls ending with finish_reason {finish!r} "
                       "(tool_calls; stop only after a named function choice)")
        for call in calls:
            function = call.get("function") if isinstance(call, dict) else None
            if not isinstance(function, dict) or not isinstance(call.get("id"), str) or \
                    call.get("type") != "function":
                out.append("a tool call without an id, type function and function")
                continue
            out += argument_problems(function.get("name"), function.get("arguments"), tools)
    return out


def _messages_problems(payload: dict[str, Any], tools: Tools, was_forced: bool) -> list[str]:
    blocks = [b for b in payload.get("content") or []
              if isinstance(b, dict) and b.get("type") == "tool_use"]
    reason = payload.get("stop_reason")
    out = []
    if reason == "tool_use" and not blocks:
        out.append("stop_reason tool_use without a tool_use block")
    if was_forced and not blocks and reason not in CUT_SHORT:
        out.append(f"no tool_use block, though tool_choice required one (stop_reason "
                   f"{reason!r})")
    if not blocks or reason in CUT_SHORT:
        return out
    if reason != "tool_use":
        out.append(f"{len(blocks)} tool_use blocks ending with stop_reason {reason!r}")
    for block in blocks:
        if not isinstance(block.get("id"), str):
            out.append("a tool_use block without an id")
        elif not block["id"].startswith(ANTHROPIC_TOOL_ID_PREFIX):
            out.append(f"a tool_use id {block['id'][:40]!r} without Anthropic's "
                       f"{ANTHROPIC_TOOL_ID_PREFIX} prefix")
        out += argument_problems(block.get("name"), block.get("input"), tools)
    return out
