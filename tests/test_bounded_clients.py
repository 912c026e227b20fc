"""Every client gateprobe talks to a target with is bounded by the one ``probe.Bounds``: the
httpx client of compare, discover, smoke, preflight and the suite (``client_for``), the
official SDKs' transport (``bounded_transport`` on their httpx fork, as the ``sdk`` category
builds it), schemathesis's requests session (``bounded_session``) and the Realtime
WebSocket session. Each bound is tripped by the reference gateway's hostile faults (the
WebSocket ones by a small server here: the reference has no hostile Realtime front), one
request each, with bounds of a second or so."""

from __future__ import annotations

import importlib.util
import re
import socket
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import httpx
import pytest

from gateprobe.core import transport
from gateprobe.core.families import PATHS
from gateprobe.core.targets import Target, Timeouts
from gateprobe.engine import realtime_session
from gateprobe.engine.cases import Case
from gateprobe.engine.probe import (
    MAX_BODY_BYTES,
    Bounds,
    OutOfBounds,
    auth_headers,
    bounded_session,
    client_for,
    exchange_once,
)
from gateway_fixtures import MakeGateway

BOUNDS = Timeouts(connect_s=1, first_byte_s=0.5, idle_s=0.5, total_s=1.5)
ROOMY = Timeouts(connect_s=5, first_byte_s=5, idle_s=5, total_s=10)
"""For what must come through whole (a loaded CPU must not make it a timeout)."""
LOOSE_S = 30.0
"""A timeout a caller asks for (the SDKs' own): the target's bounds win over it."""
SAY = [{"role": "user", "content": "Say test"}]
KEY = "gp-vip-0001"

FAULTS = [
    ("slow-headers", False, transport.FIRST_BYTE_TIMEOUT),
    ("body-stall", False, transport.IDLE_TIMEOUT),
    ("body-trickle", False, transport.TOTAL_TIMEOUT),
    ("stream-hang-open", True, transport.STREAM_IDLE_TIMEOUT),
    ("stream-endless-pings", True, transport.STREAM_TOTAL_TIMEOUT),
    ("huge-body", False, transport.TOO_LARGE),
    ("huge-body", True, transport.TOO_LARGE),
]
IDS = ["first-byte", "idle", "total", "stream-idle", "stream-total", "body-cap",
       "stream-body-cap"]


def chat(stream: bool) -> Case:
    return Case("bounds", "stream" if stream else "endpoint", "POST", PATHS["chat"], "openai",
                {"model": "gpt-3.5-turbo", "messages": SAY, "max_tokens": 16,
                 "stream": stream})


def target_with(make_gateway: MakeGateway, fault: str) -> Target:
    gateway = make_gateway(faults=(fault,))
    return Target(gateway.base_url, "ohmygpt", KEY, timeouts=BOUNDS)


def kind_of(exc: BaseException, got_headers: bool, streaming: bool) -> str:
    """The symptom a runner reports ``exc`` under (the SDKs wrap the transport's error)."""
    while getattr(exc, "kind", None) is None and exc.__cause__ is not None:
        exc = exc.__cause__
    kind = getattr(exc, "kind", None)
    return kind if isinstance(kind, str) else \
        transport.classify(exc, got_headers=got_headers, streaming=streaming)


# -- the httpx client every runner gets (client_for) -------------------------------------------
def test_a_plain_request_through_client_for_is_answered(make_gateway: MakeGateway) -> None:
    target = Target(make_gateway().base_url, "ohmygpt", KEY, timeouts=ROOMY)
    with client_for(target) as client:
        response = client.post(target.base_url + PATHS["chat"], json=chat(False).body,
                               headers=auth_headers(target, chat(False)))
    assert response.status_code == 200 and response.json()["choices"]


@pytest.mark.parametrize(("fault", "stream", "kind"), FAULTS, ids=IDS)
def test_client_for_bounds_a_request_that_asks_for_looser_timeouts(
        make_gateway: MakeGateway, fault: str, stream: bool, kind: str) -> None:
    """Not through ``exchange_once``: a bare ``client.stream`` (what propagation's control
    requests, the key admin and a caller's own request send) is bounded by the client."""
    target = target_with(make_gateway, fault)
    case = chat(stream)
    got_headers, received = False, 0
    with client_for(target) as client, pytest.raises(httpx.TransportError) as raised:
        with client.stream("POST", target.base_url + case.path, json=case.body,
                           headers=auth_headers(target, case), timeout=LOOSE_S) as response:
            got_headers = True
            for chunk in response.iter_raw():
                received += len(chunk)
    assert kind_of(raised.value, got_headers, stream) == kind, raised.value
    assert received <= MAX_BODY_BYTES


def test_exchange_once_through_client_for_keeps_the_partial_body(
        make_gateway: MakeGateway) -> None:
    """The transport's cut reaches the one exchange as its symptom, with what had come."""
    target = target_with(make_gateway, "huge-body")
    with client_for(target) as client:
        exchange = exchange_once(client, target, chat(False))
    assert exchange.transport_kind == transport.TOO_LARGE and exchange.status == 200
    assert 0 < len(exchange.body) <= MAX_BODY_BYTES


# -- the official SDKs, over the sdk category's own transport -----------------------------------
def _sdk_category() -> ModuleType:
    """``conformance/test_sdk.py`` as a module (its client builder and symptom reader)."""
    path = Path(__file__).parents[1] / "conformance" / "test_sdk.py"
    spec = importlib.util.spec_from_file_location("gateprobe_sdk_category", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def sdk_category() -> ModuleType:
    return _sdk_category()


@pytest.mark.parametrize(("fault", "stream", "kind"), FAULTS, ids=IDS)
def test_the_openai_sdk_is_bounded_by_the_targets_timeouts_and_body_cap(
        make_gateway: MakeGateway, sdk_category: ModuleType, fault: str, stream: bool,
        kind: str) -> None:
    openai = pytest.importorskip("openai")
    target = target_with(make_gateway, fault)
    recorder = sdk_category._Recorder()
    outcome = sdk_category._Outcome()
    with openai.OpenAI(api_key=KEY, base_url=target.base_url + "/v1", max_retries=0,
                       timeout=LOOSE_S, http_client=recorder.client(openai, target)) as client:
        try:  # no watchdog (the category's _bounded): the transport alone bounds the call
            if stream:
                for _ in client.chat.completions.create(model="gpt-3.5-turbo", messages=SAY,
                                                        max_tokens=16, stream=True):
                    pass
            else:
                client.chat.completions.create(model="gpt-3.5-turbo", messages=SAY,
                                               max_tokens=16)
        except Exception as exc:  # what the category judges
            outcome.error = exc
    assert outcome.error is not None
    got = sdk_category._transport_kind(outcome, stream)
    if fault in ("body-stall", "stream-hang-open"):  # the SDK wraps a read timeout alike
        assert got in (kind, transport.FIRST_BYTE_TIMEOUT), outcome.error
        assert kind_of(outcome.error, True, stream) == kind
    else:
        assert got == kind, outcome.error
    sent = recorder.sent.extensions["timeout"]
    assert sent["connect"] == BOUNDS.connect_s and sent["write"] == BOUNDS.idle_s
    assert sent["read"] == (BOUNDS.first_byte_s if fault == "slow-headers" else BOUNDS.idle_s)


def test_the_anthropic_sdk_runs_over_the_same_bounds(make_gateway: MakeGateway,
                                                     sdk_category: ModuleType) -> None:
    anthropic = pytest.importorskip("anthropic")
    target = target_with(make_gateway, "huge-body")
    outcome = sdk_category._Outcome()
    with anthropic.Anthropic(auth_token=KEY, base_url=target.base_url, max_retries=0,
                             timeout=LOOSE_S,
                             http_client=sdk_category._Recorder().client(anthropic, target),
                             ) as client:
        try:
            client.messages.create(model="claude-3-opus", max_tokens=16,
                                   messages=SAY)
        except Exception as exc:
            outcome.error = exc
    assert sdk_category._transport_kind(outcome, False) == transport.TOO_LARGE, outcome.error


# -- schemathesis's requests session (the fuzz category) ----------------------------------------
@pytest.mark.parametrize(("fault", "stream", "kind"), FAULTS, ids=IDS)
def test_the_fuzz_session_is_bounded_like_every_other_runner(
        make_gateway: MakeGateway, fault: str, stream: bool, kind: str) -> None:
    """As schemathesis sends: ``stream=True``, its own request timeout, then an event stream
    read with ``raw.read1`` (a JSON body the session reads itself)."""
    pytest.importorskip("requests")
    target = target_with(make_gateway, fault)
    case = chat(stream)
    got_headers = False
    with bounded_session(target.timeouts) as session, pytest.raises(Exception) as raised:
        response = session.request("POST", target.base_url + case.path, json=case.body,
                                   headers=auth_headers(target, case), timeout=LOOSE_S,
                                   stream=True)
        got_headers = True
        while response.raw.read1(64 * 1024, decode_content=True):
            pass
    assert kind_of(raised.value, got_headers, stream) == kind, raised.value


@pytest.mark.parametrize(("fault", "stream", "kinds"), [
    ("huge-body", False, {transport.TOO_LARGE}),
    # schemathesis rescans a growing event for its end at every read: a 300 MB event may
    # pass the total timeout before the cap; either bound ends it.
    ("huge-body", True, {transport.TOO_LARGE, transport.STREAM_TOTAL_TIMEOUT}),
    ("stream-endless-pings", True, {transport.STREAM_TOTAL_TIMEOUT}),
], ids=["body-cap", "stream-body-cap", "stream-total"])
def test_schemathesis_sending_through_the_fuzz_session_meets_the_bounds(
        make_gateway: MakeGateway, fault: str, stream: bool, kinds: set[str]) -> None:
    """Through schemathesis's own ``case.call``, which reads an event stream itself and
    looks at whatever a send raised (an error must survive that, and come out whole)."""
    schemathesis = pytest.importorskip("schemathesis")
    from gateprobe.core.specs import spec_path

    target = target_with(make_gateway, fault)
    operation = schemathesis.openapi.from_path(str(spec_path("openai")))[PATHS["chat"]]["POST"]
    case = operation.Case(body=chat(stream).body)
    with bounded_session(target.timeouts) as session, pytest.raises(OutOfBounds) as raised:
        case.call(session=session, base_url=target.base_url,
                  headers=auth_headers(target, chat(stream)))
    assert raised.value.kind in kinds


def test_the_fuzz_session_hands_back_a_whole_answer(make_gateway: MakeGateway) -> None:
    pytest.importorskip("requests")
    target = Target(make_gateway().base_url, "ohmygpt", KEY, timeouts=ROOMY)
    with bounded_session(target.timeouts) as session:
        response = session.post(target.base_url + PATHS["chat"], json=chat(False).body,
                                headers=auth_headers(target, chat(False)))
    assert response.status_code == 200 and response.json()["choices"]


# -- the Realtime WebSocket session --------------------------------------------------------------
@pytest.fixture
def ws_server() -> Iterator[Any]:
    """Start a WebSocket server on 127.0.0.1 whose handler the test gives; its URL."""
    from websockets.sync.server import serve

    servers: list[Any] = []

    def start(handler: Any) -> str:
        server = serve(handler, "127.0.0.1", 0)
        servers.append(server)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        return f"http://127.0.0.1:{server.socket.getsockname()[1]}"

    yield start
    for server in servers:
        server.shutdown()


def test_a_realtime_handshake_nobody_answers_ends_at_the_first_byte_timeout() -> None:
    with socket.socket() as sock:  # accepts connections (its backlog), never answers
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        target = Target(f"http://127.0.0.1:{sock.getsockname()[1]}", "openai", KEY,
                        timeouts=BOUNDS)
        exchange = realtime_session.handshake(target, "gpt-4o-realtime-preview")
    assert exchange.status is None
    assert exchange.transport_kind == transport.FIRST_BYTE_TIMEOUT, exchange.transport_error


def test_a_realtime_message_over_the_body_cap_is_too_large(ws_server: Any) -> None:
    def huge(ws: Any) -> None:
        ws.send("x" * (MAX_BODY_BYTES + 1))
        for _ in ws:
            pass

    target = Target(ws_server(huge), "openai", KEY, timeouts=ROOMY)  # 16 MB on a loaded CPU
    result = realtime_session.run_session(target, "gpt-4o-realtime-preview")
    assert result.exchange.transport_kind == transport.TOO_LARGE, result.exchange.transport_error


def test_a_realtime_session_silent_mid_answer_is_an_idle_timeout(ws_server: Any) -> None:
    def silent(ws: Any) -> None:
        ws.send('{"type": "session.created"}')
        for _ in ws:  # then nothing, until the client leaves
            pass

    target = Target(ws_server(silent), "openai", KEY, timeouts=BOUNDS)
    result = realtime_session.run_session(target, "gpt-4o-realtime-preview")
    assert result.exchange.transport_kind == transport.STREAM_IDLE_TIMEOUT
    assert result.exchange.status == 101


def test_a_realtime_session_that_never_ends_is_cut_at_the_total_timeout(
        ws_server: Any) -> None:
    def endless(ws: Any) -> None:
        import time

        while True:  # never idle, never done
            ws.send('{"type": "response.text.delta", "delta": "."}')
            time.sleep(0.05)

    target = Target(ws_server(endless), "openai", KEY, timeouts=BOUNDS)
    result = realtime_session.run_session(target, "gpt-4o-realtime-preview")
    assert result.exchange.transport_kind == transport.STREAM_TOTAL_TIMEOUT


def test_bounds_count_every_read_against_the_cap_and_the_total() -> None:
    bounds = Bounds(BOUNDS, max_body=10)
    bounds.take(10, streaming=False)
    with pytest.raises(OutOfBounds) as raised:
        bounds.take(1, streaming=False)
    assert raised.value.kind == transport.TOO_LARGE
    late = Bounds(BOUNDS, started=0.0)  # began long ago: past its total
    with pytest.raises(OutOfBounds) as raised:
        late.take(1, streaming=True)
    assert raised.value.kind == transport.STREAM_TOTAL_TIMEOUT
    assert Bounds(BOUNDS).open_s == BOUNDS.connect_s + BOUNDS.first_byte_s


def test_an_attached_answer_is_redacted_before_it_is_cut() -> None:
    """A key straddling the attachment's edge: masked, not shown in half."""
    from gateprobe.core.redact import Redactor
    from gateprobe.engine.pytest_plugin import ATTACHED_CHARS, attached_answer

    secret = "sk-live-" + "k" * 40
    body = ("x" * (ATTACHED_CHARS - 20) + secret + "y" * 100).encode()
    shown = attached_answer(body, Redactor([secret]))
    assert len(shown) <= ATTACHED_CHARS and "sk-live-kkkk" not in shown
    assert shown.startswith("x" * 100)


CLIENT_BUILDING = re.compile(r"httpx\.(Client|AsyncClient|Timeout|stream|get|post|request)\(|"
                             r"HTTPTransport\(|requests\.(Session|get|post)\(|"
                             r"open_timeout=(?!bounds\.)|max_size=(?!bounds\.)")
OWN_CLIENTS = {
    "src/gateprobe/engine/probe.py": "the one place (client_for, bounded_transport, "
                                     "bounded_session)",
    "src/gateprobe/core/targets.py": "Timeouts.for_httpx; check_reachable's 5 s look before "
                                     "any exchange (the base layer cannot import the engine)",
    "src/gateprobe/engine/embedded.py": "the embedded upstream's health, a double of ours",
    "src/gateprobe/commands/load/soak.py": "a soak run's metrics scrape, bounded on its own",
}
"""Who may build an HTTP client or its timeouts, and why; every other runner takes them from
``gateprobe.engine.probe``."""


def test_no_runner_builds_its_own_client_or_timeouts() -> None:
    root = Path(__file__).parents[1]
    files = [*root.glob("src/gateprobe/**/*.py"), *root.glob("conformance/*.py")]
    building = {str(p.relative_to(root)) for p in files
                if "reference" not in p.parts and CLIENT_BUILDING.search(p.read_text())}
    assert building <= set(OWN_CLIENTS), sorted(building - set(OWN_CLIENTS))


def test_the_management_workflow_names_the_symptom_of_an_answer_past_a_bound() -> None:
    """An answer past a bound in the stateful management run (sent through the bounded
    session) is a finding under its symptom, not an unknown ``fuzz.outofbounds``."""
    from gateprobe.core.redact import Redactor
    from gateprobe.engine import management

    found = management._stateful_finding(
        OutOfBounds("body.too_large", "body larger than 16 bytes: stopped reading"),
        Redactor(()))
    assert found.check_id == "body.too_large" and "stopped reading" in found.observed
