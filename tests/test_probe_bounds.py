"""The probe's bounds: timeouts by phase, the breaker, transport symptoms by name."""

from __future__ import annotations

import time

import httpx
import pytest

from gateprobe import transport
from gateprobe.cases import endpoint_cases, stream_cases
from gateprobe.probe import BREAKER_THRESHOLD, Breaker, send
from gateprobe.targets import Target, Timeouts
from gateway_fixtures import MakeGateway


@pytest.mark.parametrize(("exc", "got_headers", "streaming", "kind"), [
    (httpx.ConnectTimeout("x"), False, False, transport.CONNECT_TIMEOUT),
    (httpx.ReadTimeout("x"), False, True, transport.FIRST_BYTE_TIMEOUT),
    (httpx.ReadTimeout("x"), True, True, transport.STREAM_IDLE_TIMEOUT),
    (httpx.ReadTimeout("x"), True, False, transport.IDLE_TIMEOUT),
    (httpx.RemoteProtocolError("Server disconnected without sending a response."), False,
     False, transport.RESET),
    (ConnectionResetError(104, "Connection reset by peer"), True, True, transport.RESET),
    (httpx.ConnectError("[Errno 111] Connection refused"), False, False, transport.CONNECT),
    (TimeoutError("timed out"), False, True, transport.FIRST_BYTE_TIMEOUT),
    (ValueError("odd"), True, True, transport.OTHER),
])
def test_symptoms_by_name(exc: BaseException, got_headers: bool, streaming: bool,
                          kind: str) -> None:
    assert transport.classify(exc, got_headers=got_headers, streaming=streaming) == kind


def test_breaker_opens_per_target_and_kind() -> None:
    breaker = Breaker()
    for _ in range(BREAKER_THRESHOLD):
        assert not breaker.is_open("http://a", True)
        breaker.record("http://a", True, transport.STREAM_IDLE_TIMEOUT)
    breaker.record("http://a", False, transport.RESET)  # not a timeout: not counted
    assert breaker.is_open("http://a", True)
    assert not breaker.is_open("http://a", False) and not breaker.is_open("http://b", True)


def test_first_byte_timeout_then_breaker(make_gateway: MakeGateway,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    from gateprobe import probe

    monkeypatch.setattr(probe, "BREAKER", Breaker())
    gateway = make_gateway(faults=("slow-headers",))
    target = Target(gateway.base_url, "ohmygpt", "gp-vip-0001",
                    timeouts=Timeouts(connect_s=1, first_byte_s=0.3, idle_s=0.3, total_s=1))
    streams = [c for c in stream_cases(target) if c.path == "/v1/chat/completions"]
    kinds = []
    start = time.monotonic()
    with httpx.Client() as client:
        for case in (streams * 3)[:BREAKER_THRESHOLD + 2]:
            kinds.append(send(client, target, case).transport_kind)
    assert kinds == [transport.FIRST_BYTE_TIMEOUT] * BREAKER_THRESHOLD + \
        [transport.SKIPPED] * 2
    assert time.monotonic() - start < BREAKER_THRESHOLD * 0.3 + 1.5
    plain = endpoint_cases(target)[0]
    with httpx.Client() as client:  # other kinds of request are still sent
        assert send(client, target, plain).transport_kind == transport.FIRST_BYTE_TIMEOUT


def test_timeouts_must_be_positive() -> None:
    from gateprobe.errors import UsageError

    with pytest.raises(UsageError, match="idle must be a positive"):
        Timeouts(idle_s=0).check()
