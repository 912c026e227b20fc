"""The one bounded exchange (``probe.exchange_once``), each bound tripped through it by the
reference's hostile faults: first byte, idle, total, the body cap, the breaker, an early
close; and the one evidence size and mapping of the four timeouts onto httpx that every
runner (probe, compare, discover, smoke, propagation) shares."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import httpx
import pytest

from gateprobe.core import transport
from gateprobe.core.checks import EVIDENCE_CAP, EVIDENCE_CHARS, Exchange, clip_evidence, evidence_of
from gateprobe.core.families import PATHS
from gateprobe.core.redact import Redactor
from gateprobe.core.targets import Target, Timeouts
from gateprobe.engine.cases import Case
from gateprobe.engine.probe import MAX_BODY_BYTES, exchange_once
from gateprobe.engine.runstate import BREAKER_THRESHOLD, Breaker
from gateway_fixtures import MakeGateway

BOUNDS = Timeouts(connect_s=1, first_byte_s=0.5, idle_s=0.5, total_s=1.5)
SAY = [{"role": "user", "content": "Say test"}]


def chat(stream: bool) -> Case:
    return Case("bounds", "stream" if stream else "endpoint", "POST", PATHS["chat"], "openai",
                {"model": "gpt-3.5-turbo", "messages": SAY, "max_tokens": 16,
                 "stream": stream})


@pytest.fixture
def http() -> Iterator[httpx.Client]:
    with httpx.Client() as client:
        yield client


@pytest.mark.parametrize(("fault", "stream", "kind"), [
    ("slow-headers", False, transport.FIRST_BYTE_TIMEOUT),
    ("body-stall", False, transport.IDLE_TIMEOUT),
    ("stream-hang-open", True, transport.STREAM_IDLE_TIMEOUT),
    ("stream-endless-pings", True, transport.STREAM_TOTAL_TIMEOUT),
    ("huge-body", False, transport.TOO_LARGE),
], ids=["first-byte", "idle", "stream-idle", "total", "body-cap"])
def test_each_bound_is_tripped_through_the_one_exchange(
        make_gateway: MakeGateway, http: httpx.Client, fault: str, stream: bool,
        kind: str) -> None:
    gateway = make_gateway(faults=(fault,))
    target = Target(gateway.base_url, "ohmygpt", "gp-vip-0001", timeouts=BOUNDS)
    exchange = exchange_once(http, target, chat(stream))
    assert exchange.transport_kind == kind, exchange.transport_error
    assert exchange.transport_error
    assert len(exchange.body) <= MAX_BODY_BYTES


def test_the_breaker_stops_a_kind_after_its_timeouts(make_gateway: MakeGateway,
                                                     http: httpx.Client) -> None:
    gateway = make_gateway(faults=("slow-headers",))
    target = Target(gateway.base_url, "ohmygpt", "gp-vip-0001", timeouts=BOUNDS)
    breaker = Breaker()
    kinds = [exchange_once(http, target, chat(True), breaker).transport_kind
             for _ in range(BREAKER_THRESHOLD + 1)]
    assert kinds == [transport.FIRST_BYTE_TIMEOUT] * BREAKER_THRESHOLD + [transport.SKIPPED]


def test_a_refused_connection_is_named(http: httpx.Client) -> None:
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    target = Target(f"http://127.0.0.1:{port}", "ohmygpt", "gp-vip-0001", timeouts=BOUNDS)
    assert exchange_once(http, target, chat(False)).transport_kind == transport.CONNECT


def test_stop_after_events_closes_early_without_a_symptom(make_gateway: MakeGateway,
                                                          http: httpx.Client) -> None:
    gateway = make_gateway(faults=("stream-endless-content",))
    target = Target(gateway.base_url, "ohmygpt", "gp-vip-0001", timeouts=BOUNDS)
    exchange = exchange_once(http, target, chat(True), stop_after_events=3)
    assert exchange.status == 200 and exchange.transport_error is None
    assert 3 <= len(exchange.events) < 50


def test_the_four_timeouts_map_onto_httpx_in_one_place() -> None:
    t = Timeouts(connect_s=1, first_byte_s=2, idle_s=3, total_s=4).for_httpx()
    assert (t.connect, t.read, t.write, t.pool) == (1, 2, 3, 1)


def test_evidence_has_one_size_and_is_redacted() -> None:
    secret = "sk-" + "x" * 40
    body = (f'{{"error": "{secret}"}}' + "y" * 5000).encode()
    evidence = evidence_of(Exchange(PATHS["chat"], "POST", None, 500, {}, body),
                           Redactor((secret,)))
    assert secret not in evidence and len(evidence) < EVIDENCE_CHARS + 100
    assert len(clip_evidence("z" * 10_000)) == EVIDENCE_CHARS
    assert len(clip_evidence("z" * 10_000, 10**6)) == EVIDENCE_CAP
