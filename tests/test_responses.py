"""The Responses API, Conversations and stored chat completions end to end: the reference
serves them cleanly, each of their faults fails exactly its check (stream faults through the
cases, behaviour faults through the stateful flows), the grammar judges hand-made streams,
and a target that does not declare a family gets none of its cases, flows or fuzzing."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

import gateprobe.protocols.conformance  # noqa: F401  (registers the built-in checks)
from gateprobe.core import checks
from gateprobe.core.checks import Context, run_checks, select
from gateprobe.core.findings import Finding
from gateprobe.core.sse import Event
from gateprobe.core.targets import CORE_ENDPOINTS, Target
from gateprobe.engine.cases import Case, all_cases, responses_cases
from gateprobe.engine.embedded import RESPONSES_ENDPOINTS, reference_endpoints
from gateprobe.engine.probe import send
from gateprobe.engine.runstate import RunState
from gateprobe.engine.stateful import FAMILY_OF_FLOW, FLOWS, flows_for, run_flow
from gateprobe.protocols.conformance import checks_for
from gateprobe.protocols.openai_responses import StreamGrammar, output_text
from gateprobe.protocols.openai_stateful import judge_previous, judge_stored
from gateprobe.protocols.streams import check_events, grammar_for
from gateprobe.reference import RunningGateway, Timing
from gateprobe.reference.faults import (
    CATALOGUE,
    CHAT_STORE_ROUTES,
    CONVERSATION_ROUTES,
    RESPONSE_ROUTES,
)
from gateway_fixtures import MakeGateway

INSTANT = Timing(ttft_ms=0, itl_ms=0)
ROUTES = RESPONSE_ROUTES | CONVERSATION_ROUTES | CHAT_STORE_ROUTES
FAULTS = [n for n, f in CATALOGUE.items() if f.endpoints <= ROUTES and f.endpoints & (
    RESPONSE_ROUTES | CONVERSATION_ROUTES | (CHAT_STORE_ROUTES - {"/v1/chat/completions"}))]
STREAM_FAULTS = [n for n in FAULTS if CATALOGUE[n].proven_by == "conformance"]
FLOW_FAULTS = [n for n in FAULTS if CATALOGUE[n].proven_by == "sequence"]


@pytest.fixture(scope="module")
def http() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=30) as client:
        yield client


def target_of(gateway: RunningGateway, profile: str = "ohmygpt") -> Target:
    return Target(gateway.base_url, profile, "gp-vip-0001",
                  endpoints=reference_endpoints(profile))


def judge(http: httpx.Client, target: Target, case: Case, run: RunState) -> list[Finding]:
    exchange = send(http, target, case, run)
    ctx = Context.of(target, case.family, case.expect, run.seen_ids, run.input_tokens)
    return run_checks(ctx, exchange, checks_for(ctx, exchange))


def flow_ids(http: httpx.Client, target: Target, name: str) -> set[str]:
    record = run_flow(name, http, target).record()
    return {f.check_id for f in run_checks(Context.of(target, "openai"), record,
                                           select(["state.flow"]))}


def test_the_faults_are_the_ones_this_file_proves() -> None:
    assert len(STREAM_FAULTS) == 10 and len(FLOW_FAULTS) == 8


@pytest.mark.slow
@pytest.mark.parametrize("profile", ["ohmygpt", "openai"])
def test_clean_gateway_passes_every_case_and_flow(make_gateway: MakeGateway,
                                                  http: httpx.Client, profile: str) -> None:
    target = target_of(make_gateway(profile=profile, timing=INSTANT), profile)
    cases = responses_cases(target)
    assert {c.category for c in cases} == {"endpoint", "stream", "errors", "auth"}
    run = RunState()
    for case in cases:
        assert judge(http, target, case, run) == [], case.id
    for name in FLOWS:
        assert flow_ids(http, target, name) == set(), name


@pytest.mark.slow
@pytest.mark.parametrize("name", STREAM_FAULTS)
def test_stream_fault_fails_exactly_its_check(make_gateway: MakeGateway, http: httpx.Client,
                                              name: str) -> None:
    """Through every case of the families: the fault's check, and no other finding."""
    target = target_of(make_gateway(faults=(name,), timing=INSTANT))
    found: set[str] = set()
    run = RunState()
    for case in responses_cases(target):
        found |= {f.check_id for f in judge(http, target, case, run)}
    assert found == set(CATALOGUE[name].trips)


@pytest.mark.parametrize("name", FLOW_FAULTS)
def test_flow_fault_fails_exactly_its_check(make_gateway: MakeGateway, http: httpx.Client,
                                            name: str) -> None:
    """Through every flow: the fault's check, and no other finding."""
    target = target_of(make_gateway(faults=(name,), timing=INSTANT))
    found = set().union(*(flow_ids(http, target, flow) for flow in FLOWS))
    assert found == set(CATALOGUE[name].trips)


def test_every_check_of_the_families_has_a_fault() -> None:
    modules = ("gateprobe.protocols.openai_responses", "gateprobe.protocols.openai_stateful")
    emitted = {i for c in checks.all_checks() if c.module in modules for i in c.emits}
    emitted |= {i for i in checks.get("stream.grammar").emits if i.startswith("responses.")}
    tripped = {t for name in FAULTS for t in CATALOGUE[name].trips}
    assert emitted == tripped


@pytest.mark.slow
def test_a_target_gets_only_the_families_it_declares() -> None:
    undeclared = Target("http://127.0.0.1:9", "openai", "k")
    paths = {c.path for c in all_cases(undeclared)}
    assert not {p for p in paths if p.startswith(("/v1/responses", "/v1/conversations"))}
    assert not [c for c in all_cases(undeclared)
                if c.path == "/v1/chat/completions" and c.method == "GET"]
    assert flows_for(undeclared) == []
    only = Target("http://127.0.0.1:9", "openai", "k",
                  endpoints=CORE_ENDPOINTS | {"conversations"})
    assert {c.path.split("/")[2] for c in responses_cases(only)} == {"conversations"}
    assert flows_for(only) == ["conversation"]
    assert set(FAMILY_OF_FLOW.values()) == RESPONSES_ENDPOINTS
    assert RESPONSES_ENDPOINTS <= reference_endpoints("openai")
    assert not RESPONSES_ENDPOINTS & reference_endpoints("anthropic")


# -- the grammar on hand-made streams ---------------------------------------------------
def _stream(*payloads: dict[str, object], names: list[str] | None = None) -> list[Event]:
    numbered = [{"sequence_number": n, **p} for n, p in enumerate(payloads)]
    return [Event((names or [])[n] if names and n < len(names) else str(p["type"]),
                  json.dumps(p), "", 0) for n, p in enumerate(numbered)]


MESSAGE = {"id": "msg_1", "type": "message", "role": "assistant", "status": "completed",
           "content": [{"type": "output_text", "text": "Hi there", "annotations": []}]}
RESPONSE = {"id": "resp_1", "object": "response", "status": "completed", "output": [MESSAGE],
            "usage": {"input_tokens": 3, "output_tokens": 2, "total_tokens": 5}}
AT = {"item_id": "msg_1", "output_index": 0, "content_index": 0}
GOOD = [
    {"type": "response.created", "response": {**RESPONSE, "status": "in_progress",
                                              "output": [], "usage": None}},
    {"type": "response.in_progress", "response": {**RESPONSE, "status": "in_progress",
                                                  "output": [], "usage": None}},
    {"type": "response.output_item.added", "output_index": 0,
     "item": {**MESSAGE, "status": "in_progress", "content": []}},
    {"type": "response.content_part.added", **AT, "part": {"type": "output_text", "text": ""}},
    {"type": "response.output_text.delta", **AT, "delta": "Hi"},
    {"type": "response.output_text.delta", **AT, "delta": " there"},
    {"type": "response.output_text.done", **AT, "text": "Hi there"},
    {"type": "response.content_part.done", **AT, "part": MESSAGE["content"][0]},  # type: ignore[index]
    {"type": "response.output_item.done", "output_index": 0, "item": MESSAGE},
    {"type": "response.completed", "response": RESPONSE},
]


def ids(events: list[Event], **grammar: object) -> set[str]:
    return {f.check_id for f in check_events(StreamGrammar(**grammar), events)}  # type: ignore[arg-type]


def test_grammar_passes_a_good_stream_and_reads_its_text() -> None:
    assert ids(_stream(*GOOD)) == set()
    assert output_text(RESPONSE) == "Hi there"
    assert isinstance(grammar_for("/v1/responses", {}), StreamGrammar)


@pytest.mark.parametrize(("broken", "check_id"), [
    (GOOD[:-1], "responses.terminator"),
    ([GOOD[0], GOOD[2], *GOOD[1:2], *GOOD[3:]], "responses.order"),
    ([*GOOD[:4], GOOD[4], *GOOD[6:]], "responses.text"),
    ([*GOOD[:4], {**GOOD[4], "item_id": "msg_2"}, *GOOD[5:]], "responses.items"),
    ([*GOOD[:4], {**GOOD[4], "output_index": 3}, *GOOD[5:]], "responses.items"),
    ([*GOOD[:-1], {"type": "response.completed", "response": {
        **RESPONSE, "usage": {"input_tokens": 3, "output_tokens": 2, "total_tokens": 6}}}],
     "responses.usage"),
    ([{**GOOD[0], "response": RESPONSE}, *GOOD[1:]], "responses.usage"),
    ([*GOOD[:-1], {"type": "response.completed", "response": {
        **RESPONSE, "output": [{**MESSAGE, "content": [{"type": "output_text",
                                                        "text": "Hi", "annotations": []}]}]}}],
     "responses.text"),
    ([*GOOD[:5], {"type": "error", "message": "boom"}], "stream.error_event"),
])
def test_grammar_reports_a_broken_stream(broken: list[dict[str, object]],
                                         check_id: str) -> None:
    found = ids(_stream(*broken))
    assert check_id in found, found


def test_grammar_numbers_and_names() -> None:
    events = _stream(*GOOD)
    gap = [*events[:3], *[Event(e.type, json.dumps({**json.loads(e.data), "sequence_number":
                                                    json.loads(e.data)["sequence_number"] + 1}),
                                "", 0) for e in events[3:]]]
    assert ids(gap) == {"responses.sequence"}
    named = [Event("message" if i == 4 else e.type, e.data, "", 0) for i, e in enumerate(events)]
    assert ids(named) == {"responses.event_name"}
    late = _stream(*GOOD[:4], GOOD[6], GOOD[4], GOOD[5], *GOOD[7:])
    assert ids(late) == {"responses.order"}


def test_grammar_holds_function_calls_to_the_tool_schema() -> None:
    call = {"id": "fc_1", "type": "function_call", "call_id": "call_1", "name": "get_weather",
            "arguments": '{"city": "Paris"}', "status": "completed"}
    at = {"item_id": "fc_1", "output_index": 0}

    def stream(arguments: str, pieces: list[str]) -> list[Event]:
        done = {**call, "arguments": arguments}
        final = {**RESPONSE, "output": [done]}
        return _stream(GOOD[0], GOOD[1], {"type": "response.output_item.added",
                                          "output_index": 0, "item": {**call, "arguments": ""}},
                       *[{"type": "response.function_call_arguments.delta", **at, "delta": p}
                         for p in pieces],
                       {"type": "response.function_call_arguments.done", **at,
                        "arguments": arguments},
                       {"type": "response.output_item.done", "output_index": 0, "item": done},
                       {"type": "response.completed", "response": final})

    tools = {"get_weather": {"type": "object", "required": ["city"],
                             "properties": {"city": {"type": "string"}}}}
    assert ids(stream('{"city": "Paris"}', ['{"city": ', '"Paris"}']), tools=tools) == set()
    assert ids(stream("{}", ["{}"]), tools=tools) == {"responses.tool_args"}
    assert ids(stream('{"city": "Paris"}', ['{"city": ']), tools=tools) == {"responses.text"}


def test_stateful_judges_on_recorded_steps() -> None:
    created = (200, {"id": "resp_1", **{k: v for k, v in RESPONSE.items() if k != "id"}})
    steps = {"create": created, "retrieve": created,
             "input_items": (200, {"data": [{"content": [{"type": "input_text",
                                                          "text": "Say test"}]}]}),
             "delete": (200, {}), "after_delete": (404, {})}
    assert judge_stored(steps) == []
    assert [p[0] for p in judge_stored({**steps, "after_delete": (200, {})})] == \
        ["responses.deleted"]
    assert judge_stored({"create": (500, {})}) == []  # nothing to judge: its own finding

    def usage(given: int, made: int) -> tuple[int, dict[str, object]]:
        return 200, {"usage": {"input_tokens": given, "output_tokens": made}}

    assert judge_previous({"first": usage(5, 20), "alone": usage(6, 9),
                           "continued": usage(31, 9)}) == []
    assert [p[0] for p in judge_previous({"first": usage(5, 20), "alone": usage(6, 9),
                                          "continued": usage(6, 9)})] == ["responses.previous"]


def _fuzz(base_url: str, *extra: str) -> str:
    import os
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if k != "GATEPROBE_API_KEY"}
    env["GATEPROBE_API_KEY"] = "gp-vip-0001"
    done = subprocess.run([sys.executable, "-m", "gateprobe", "conformance", "--base-url",
                           base_url, "--select", "fuzz", "--max-examples", "2", "-v", *extra],
                          capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    return done.stdout


@pytest.mark.deep_fuzz
@pytest.mark.slow
def test_fuzz_reaches_the_families_only_when_declared(gateway: RunningGateway) -> None:
    """The reference serves them all, so only the declaration keeps fuzzing away (the stored
    completions' list shares the chat route's path: excluded by its method)."""
    undeclared = _fuzz(gateway.base_url, "--endpoints", "models,chat")
    assert "/v1/responses" not in undeclared and "/v1/conversations" not in undeclared
    assert "test_openai_get_v1_chat_completions " not in undeclared
    assert "/v1/chat/completions/{completion_id}" not in undeclared
    declared = _fuzz(gateway.base_url, "--endpoints", "models,chat,responses,conversations,"
                     "chat_store")
    for path in ("/v1/responses/{response_id}/cancel", "/v1/conversations/{conversation_id}",
                 "/v1/chat/completions/{completion_id}/messages"):
        assert path in declared
    assert "test_openai_get_v1_chat_completions " in declared


def test_a_stream_bills_the_input_a_plain_answer_bills() -> None:
    """``usage.stream_consistency`` reads a Responses stream's final usage: the same input
    streamed and not must bill the same input tokens."""
    request = {"model": "m", "input": "Say test"}

    def plain(tokens: int) -> checks.Exchange:
        body = json.dumps({"id": "resp_1", "usage": {"input_tokens": tokens}}).encode()
        return checks.Exchange("/v1/responses", "POST", request, 200,
                               {"content-type": "application/json"}, body)

    def streamed(tokens: int) -> checks.Exchange:
        final = {"type": "response.completed", "sequence_number": 0,
                 "response": {"usage": {"input_tokens": tokens}}}
        return checks.Exchange("/v1/responses", "POST", {**request, "stream": True}, 200,
                               {"content-type": "text/event-stream"},
                               events=[Event("response.completed", json.dumps(final), "", 0)])

    for billed, found in ((8, []), (13, ["usage.stream_consistency"])):
        seen: dict[str, tuple[int, bool]] = {}
        ctx = Context("openai", "openai", input_tokens=seen)
        select_ = select(["usage.stream_consistency"])
        assert run_checks(ctx, plain(8), select_) == []
        assert [f.check_id for f in run_checks(ctx, streamed(billed), select_)] == found


@pytest.mark.slow
def test_compare_probes_the_declared_families(make_gateway: MakeGateway,
                                              tmp_path: Path) -> None:
    """``gateprobe compare`` sends each family's plain request, its stream and its goldens:
    the clean mirror passes, the one whose stream numbers skip is told apart."""
    import io

    from gateprobe.commands.compare import CompareOptions, compare_cases, run_compare
    from gateprobe.core.console import Console

    timing = Timing(ttft_ms=5, itl_ms=1)
    clean = make_gateway(timing=timing)
    faulty = make_gateway(timing=timing, faults=("responses-sequence-gap",))
    base = target_of(clean)
    probes = {(c.method, c.path, c.category) for c in compare_cases(base)}
    assert {("POST", "/v1/responses", "stream"), ("POST", "/v1/responses", "endpoint"),
            ("POST", "/v1/conversations", "endpoint"),
            ("GET", "/v1/chat/completions", "endpoint")} <= probes
    result = run_compare(
        base,
        CompareOptions(samples=1, long_request_s=0.2, report_dir=tmp_path,
                       mirrors={"clean": clean.base_url, "faulty": faulty.base_url}),
        Console(io.StringIO(), io.StringIO()))
    good, bad = result.mirrors
    assert good.findings == []
    assert {(f.check_id, f.endpoint) for f in bad.findings} == {
        ("responses.sequence", "/v1/responses")}


def test_a_stream_billing_more_input_is_told(make_gateway: MakeGateway,
                                             http: httpx.Client) -> None:
    """``stream-more-input`` reaches the Responses streams: only the consistency check."""
    target = target_of(make_gateway(faults=("stream-more-input",), timing=INSTANT))
    run = RunState()
    found = {f.check_id for case in responses_cases(target)
             for f in judge(http, target, case, run)}
    assert found == {"usage.stream_consistency"}
