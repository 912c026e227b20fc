"""Tool calls in every family and stream grammar: the rules on hand-made answers, the reference
gateway's calls judged clean, and the official SDKs running them (the SDKs reassemble streamed
arguments themselves: if they parse what the reference sends, the wire is right)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import httpx
import pytest

from gateprobe.core.checks import Context, Exchange, run_checks
from gateprobe.core.targets import DEFAULT_MODELS, Target
from gateprobe.engine.cases import TIME_TOOL, WEATHER_TOOL, all_cases, anthropic_tools, tool_bodies
from gateprobe.engine.probe import send
from gateprobe.engine.runstate import RunState
from gateprobe.protocols.conformance import checks_for
from gateprobe.protocols.streams import check_stream_bytes, grammar_for
from gateprobe.protocols.tools import argument_problems, declared_tools
from gateprobe.reference import RunningGateway
from gateway_fixtures import FAST, MakeGateway

KEY = "gp-vip-0001"
CHAT, MESSAGES = tool_bodies(DEFAULT_MODELS)
TOOLS = declared_tools("/v1/chat/completions", CHAT)


def test_arguments_are_judged_as_a_client_runs_them() -> None:
    assert argument_problems("get_weather", '{"city": "Paris"}', TOOLS) == []
    assert argument_problems("get_weather", {"city": "Paris", "unit": "c"}, TOOLS) == []
    assert "not JSON" in argument_problems("get_weather", '{"city": "Par', TOOLS)[0]
    assert "not an object" in argument_problems("get_weather", "[1]", TOOLS)[0]
    assert "'city' is a required property" in argument_problems("get_weather", "{}", TOOLS)[0]
    assert "at /unit" in argument_problems("get_weather", '{"city": "x", "unit": "k"}',
                                           TOOLS)[0]
    assert "did not declare" in argument_problems("rm_rf", "{}", TOOLS)[0]
    assert declared_tools("/v1/messages", MESSAGES).keys() == {"get_weather", "get_time"}


def sse_chunks(*deltas: dict[str, Any], finish: str = "tool_calls") -> bytes:
    head = {"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1, "model": "m"}
    out = [{**head, "choices": [{"index": 0, "delta": d, "finish_reason": None}]}
           for d in deltas]
    out.append({**head, "choices": [{"index": 0, "delta": {}, "finish_reason": finish}]})
    return b"".join(f"data: {json.dumps(p)}\n\n".encode() for p in out) + b"data: [DONE]\n\n"


def opening(index: int, ident: str, name: str) -> dict[str, Any]:
    return {"tool_calls": [{"index": index, "id": ident, "type": "function",
                            "function": {"name": name, "arguments": ""}}]}


def piece(index: int, text: str, **extra: Any) -> dict[str, Any]:
    return {"tool_calls": [{"index": index, "function": {"arguments": text}, **extra}]}


def chat_stream_findings(body: bytes, request: dict[str, Any] = CHAT) -> list[str]:
    grammar = grammar_for("/v1/chat/completions", request)
    return [f"{f.check_id}: {f.observed}"
            for f in check_stream_bytes(grammar, body, "/v1/chat/completions")]


def test_a_parallel_chat_stream_reassembles_cleanly() -> None:
    body = sse_chunks({"role": "assistant", "content": None, **opening(0, "call_a", "get_weather")},
                      piece(0, '{"city": '), piece(0, '"Paris"}'),
                      opening(1, "call_b", "get_time"), piece(1, '{"zone": "UTC"}'))
    assert chat_stream_findings(body) == []


@pytest.mark.parametrize(("deltas", "finish", "said"), [
    ((opening(0, "call_a", "get_weather"), piece(0, '{"city": "Par')), "tool_calls", "not JSON"),
    ((opening(0, "call_a", "get_weather"), piece(0, '{"city": "Paris"}', id="call_z")),
     "tool_calls", "id 'call_z' after 'call_a'"),
    ((opening(0, "call_a", "get_weather"), opening(2, "call_c", "get_time")), "tool_calls",
     "index 2"),
    (({"tool_calls": [{"index": 0, "function": {"arguments": "{}"}}]},), "tool_calls",
     "opens with ['function', 'index']"),
    ((opening(0, "call_a", "get_weather"), piece(0, '{"city": "Paris"}')), "content_filter",
     "finish_reason 'content_filter'"),
    (({"content": "I would rather not."},), "stop", "none, finish_reason 'stop'"),
])
def test_each_way_a_chat_tool_stream_breaks_is_named(deltas: tuple[dict[str, Any], ...],
                                                     finish: str, said: str) -> None:
    found = chat_stream_findings(sse_chunks(*deltas, finish=finish))
    assert any(said in f and f.startswith("stream.tool_calls") for f in found), found


def test_cut_short_arguments_are_not_judged_and_auto_may_answer_in_words() -> None:
    cut = sse_chunks({"role": "assistant", **opening(0, "call_a", "get_weather")},
                     piece(0, '{"ci'), finish="length")
    assert chat_stream_findings(cut) == []
    auto = {**CHAT, "tool_choice": "auto"}
    words = sse_chunks({"role": "assistant", "content": "Sunny."}, finish="stop")
    assert chat_stream_findings(words, auto) == []


@pytest.fixture(scope="module")
def gateway(make_module_gateway: Any) -> RunningGateway:
    gw: RunningGateway = make_module_gateway(timing=FAST)
    return gw


@pytest.fixture(scope="module")
def make_module_gateway() -> Iterator[Any]:
    import contextlib

    from gateprobe.reference import running_gateway
    from gateway_fixtures import base_config

    with contextlib.ExitStack() as stack:
        yield lambda **kw: stack.enter_context(running_gateway(base_config(**kw)))


def tool_cases(target: Target) -> list[Any]:
    return [c for c in all_cases(target) if "tool" in c.name]


@pytest.mark.slow
def test_the_reference_calls_tools_and_passes_every_check(gateway: RunningGateway) -> None:
    target = Target(gateway.base_url, "ohmygpt", KEY)
    cases = tool_cases(target)
    assert {(c.category, c.path) for c in cases} >= {
        ("endpoint", "/v1/chat/completions"), ("stream", "/v1/chat/completions"),
        ("endpoint", "/v1/messages"), ("stream", "/v1/messages"),
        ("errors", "/v1/chat/completions"), ("errors", "/v1/messages")}
    run = RunState()
    with httpx.Client(timeout=30) as http:
        for case in cases:
            exchange = send(http, target, case, run)
            ctx = Context.of(target, case.family, case.expect, run.seen_ids)
            assert run_checks(ctx, exchange, checks_for(ctx, exchange)) == [], case.id
            if case.category == "endpoint" and "needing no tool" not in case.name:
                assert b"get_weather" in exchange.body and b"get_time" in exchange.body


def test_a_target_not_serving_messages_gets_no_anthropic_tool_case() -> None:
    target = Target("http://127.0.0.1:1", "openai", KEY)
    assert {c.path for c in tool_cases(target)} == {"/v1/chat/completions"}


def test_the_openai_sdk_runs_streamed_parallel_calls(gateway: RunningGateway) -> None:
    openai = pytest.importorskip("openai")
    client = openai.OpenAI(base_url=gateway.base_url + "/v1", api_key=KEY, max_retries=0)
    with client.chat.completions.stream(**CHAT) as stream:
        final = stream.get_final_completion()
    calls = final.choices[0].message.tool_calls or []
    assert [c.function.name for c in calls] == ["get_weather", "get_time"]
    assert json.loads(calls[0].function.arguments)["city"] == "Paris"
    assert final.choices[0].finish_reason == "tool_calls"
    plain = client.chat.completions.create(**CHAT)
    assert plain.choices[0].message.tool_calls[0].id.startswith("call_")


def test_the_anthropic_sdk_reassembles_tool_input(gateway: RunningGateway) -> None:
    anthropic = pytest.importorskip("anthropic")
    client = anthropic.Anthropic(base_url=gateway.base_url, auth_token=KEY, api_key=None,
                                 max_retries=0)
    body = {**MESSAGES, "tools": anthropic_tools(WEATHER_TOOL, TIME_TOOL)}
    with client.messages.stream(**body) as stream:
        final = stream.get_final_message()
    uses = [b for b in final.content if b.type == "tool_use"]
    assert [b.name for b in uses] == ["get_weather", "get_time"]
    assert uses[0].input == {"city": "Paris", "unit": "c"}
    assert final.stop_reason == "tool_use"


def test_a_forced_tool_is_the_one_called(make_gateway: MakeGateway) -> None:
    gateway = make_gateway(timing=FAST)
    forced = {**CHAT, "tool_choice": {"type": "function", "function": {"name": "get_time"}}}
    answer = httpx.post(gateway.base_url + "/v1/chat/completions", json=forced,
                        headers={"authorization": f"Bearer {KEY}"}).json()
    [call] = answer["choices"][0]["message"]["tool_calls"]
    assert call["function"]["name"] == "get_time"
    none = httpx.post(gateway.base_url + "/v1/chat/completions",
                      json={**CHAT, "tool_choice": "none"},
                      headers={"authorization": f"Bearer {KEY}"}).json()
    assert none["choices"][0]["message"]["content"] and \
        "tool_calls" not in none["choices"][0]["message"]
    exchange = Exchange("/v1/chat/completions", "POST", forced, 200,
                        {"content-type": "application/json"}, json.dumps(
        {**answer, "choices": [{**answer["choices"][0], "finish_reason": "stop"}]}).encode())
    ctx = Context("openai", "ohmygpt")
    assert run_checks(ctx, exchange) == []  # forced: OpenAI may end with stop
    auto = Exchange("/v1/chat/completions", "POST", {**forced, "tool_choice": "auto"}, 200,
                    exchange.headers, exchange.body)
    assert [f.check_id for f in run_checks(ctx, auto)] == ["tool.calls"]
    # required forces a call but names none: OpenAI ends it with tool_calls, not stop
    required = replace(auto, request={**forced, "tool_choice": "required"})
    assert [f.check_id for f in run_checks(ctx, required)] == ["tool.calls"]
