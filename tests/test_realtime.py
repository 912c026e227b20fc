"""The Realtime API: a real WebSocket client against the reference gateway's endpoint, the
server event grammar, refusals at the handshake, and the faults that trip each check."""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

import pytest

from gateprobe.core.sse import Event
from gateprobe.core.targets import Target
from gateprobe.engine.realtime_session import SessionResult, judge, run_session
from gateprobe.protocols.realtime import judge_events
from gateprobe.reference import RunningGateway, Timing
from gateprobe.reference.faults import CATALOGUE
from gateway_fixtures import MakeGateway

MODEL = "gpt-4o-realtime-preview"
REALTIME_FAULTS = [n for n, f in CATALOGUE.items() if n.startswith("realtime-")]


def target_for(gateway: RunningGateway) -> Target:
    return Target(gateway.base_url, "ohmygpt", "gp-vip-0001",
                  endpoints=frozenset({"chat", "realtime"}))


def sessions(target: Target) -> list[tuple[SessionResult, str]]:
    """A good session, a bad key, no key, a model that is not a realtime one."""
    return [(run_session(target, MODEL), ""), (run_session(target, MODEL, "bad"), "bad_key"),
            (run_session(target, MODEL, "none"), "missing_key"),
            (run_session(target, "gpt-4o"), "bad_model")]


def test_a_session_follows_the_protocol_and_its_first_delta_is_measured(
        make_gateway: MakeGateway) -> None:
    target = target_for(make_gateway(timing=Timing(ttft_ms=5, itl_ms=1)))
    result = run_session(target, MODEL)
    types = [e.type for e in result.exchange.events]
    assert result.exchange.status == 101
    assert types[0] == "session.created"
    assert types.index("response.created") < types.index("response.text.delta") \
        < types.index("response.done") < types.index("error")
    text = "".join(json.loads(e.data)["delta"] for e in result.exchange.events
                   if e.type == "response.text.delta")
    assert text == "This is a test."
    assert result.first_delta_ms is not None and result.first_delta_ms > 0
    assert judge(target, result) == []


def test_bad_key_no_key_and_bad_model_are_refused_at_the_handshake(
        make_gateway: MakeGateway) -> None:
    target = target_for(make_gateway(timing=Timing(0, 0)))
    for result, kind in sessions(target)[1:]:
        exchange = result.exchange
        assert exchange.status == (404 if kind == "bad_model" else 401), kind
        assert json.loads(exchange.body)["error"]["message"]
        assert exchange.events == []
        assert judge(target, result, kind) == [], kind


@pytest.mark.parametrize("name", REALTIME_FAULTS)
def test_realtime_fault_trips_its_checks(make_gateway: MakeGateway, name: str) -> None:
    target = target_for(make_gateway(timing=Timing(0, 0), faults=(name,)))
    found = {f.check_id for result, kind in sessions(target) for f in judge(target, result, kind)}
    assert set(CATALOGUE[name].trips) <= found, found


# The SDK opens its WebSocket in a way websockets 16+ deprecates (its code, not ours).
@pytest.mark.slow
@pytest.mark.filterwarnings(
    "ignore:connect\\(\\) must be used as a context manager:DeprecationWarning")
def test_the_official_openai_sdk_runs_a_realtime_session(make_gateway: MakeGateway) -> None:
    openai = pytest.importorskip("openai")
    gateway = make_gateway(timing=Timing(0, 0))
    # The SDK assumes wss:// unless told the WebSocket base (the gateway is plain HTTP here).
    client = openai.OpenAI(api_key="gp-vip-0001", base_url=gateway.base_url + "/v1",
                           websocket_base_url=gateway.base_url.replace("http", "ws") + "/v1")
    seen: list[str] = []
    with client.beta.realtime.connect(model=MODEL) as connection:
        connection.conversation.item.create(item={
            "type": "message", "role": "user",
            "content": [{"type": "input_text", "text": "Say test"}]})
        connection.response.create()
        for event in connection:
            seen.append(event.type)
            if event.type == "response.done":
                assert event.response.status == "completed"
                break
    assert seen[0] == "session.created" and "response.text.delta" in seen


def _events(*payloads: dict[str, Any]) -> list[Event]:
    return [Event(str(p.get("type")), json.dumps(p), "", n) for n, p in enumerate(payloads)]


CREATED = {"type": "session.created", "session": {}}
R_CREATED = {"type": "response.created", "response": {"id": "r1"}}
DELTA = {"type": "response.text.delta", "response_id": "r1", "delta": "x"}
R_DONE = {"type": "response.done", "response": {"id": "r1"}}


@pytest.mark.parametrize(("events", "expected"), [
    ((CREATED, R_CREATED, DELTA, R_DONE), set()),
    ((R_CREATED, DELTA, R_DONE), {"realtime.order"}),
    ((CREATED, DELTA, R_CREATED, R_DONE), {"realtime.order"}),
    ((CREATED, R_CREATED, DELTA, R_DONE, DELTA), {"realtime.order"}),
    ((CREATED, R_CREATED, DELTA), {"realtime.order"}),
    ((CREATED, {"type": "error", "message": "x"}), {"realtime.error"}),
    ((CREATED, {"type": "error", "error": {"type": "invalid_request_error", "message": "x"}}),
     set()),
], ids=["clean", "no-session-created", "delta-before-created", "delta-after-done",
        "never-done", "bare-error", "error"])
def test_the_realtime_grammar(events: tuple[dict[str, Any], ...], expected: set[str]) -> None:
    assert {p[0] for p in judge_events(_events(*events))} == expected


def test_a_session_that_does_not_open_is_a_finding(make_gateway: MakeGateway) -> None:
    target = target_for(make_gateway(timing=Timing(0, 0)))
    refused = run_session(replace(target, api_key="gp-not-a-key"), MODEL)
    assert {f.check_id for f in judge(target, refused)} == {"realtime.handshake"}


def test_without_the_beta_header_the_handshake_is_refused(make_gateway: MakeGateway) -> None:
    from websockets.exceptions import InvalidStatus
    from websockets.sync.client import connect

    gateway = make_gateway(timing=Timing(0, 0))
    url = gateway.base_url.replace("http://", "ws://") + f"/v1/realtime?model={MODEL}"
    with pytest.raises(InvalidStatus) as refused:
        connect(url, additional_headers={"Authorization": "Bearer gp-vip-0001"}).close()
    assert refused.value.response.status_code == 400
    with connect(url, additional_headers={"Authorization": "Bearer gp-vip-0001",
                                          "OpenAI-Beta": "realtime=v1"}) as ws:
        assert json.loads(ws.recv(timeout=5))["type"] == "session.created"
