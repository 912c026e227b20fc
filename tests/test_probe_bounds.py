"""The probe's bounds: timeouts by phase, the breaker, transport symptoms by name."""

from __future__ import annotations

import time

import httpx
import pytest

from gateprobe.core import transport
from gateprobe.core.targets import Target, Timeouts
from gateprobe.engine.cases import endpoint_cases, stream_cases
from gateprobe.engine.probe import send
from gateprobe.engine.runstate import BREAKER_THRESHOLD, MAX_WAIT_S, Breaker, RunState
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


@pytest.mark.slow
def test_first_byte_timeout_then_breaker(make_gateway: MakeGateway) -> None:
    state = RunState()
    gateway = make_gateway(faults=("slow-headers",))
    target = Target(gateway.base_url, "ohmygpt", "gp-vip-0001",
                    timeouts=Timeouts(connect_s=1, first_byte_s=0.3, idle_s=0.3, total_s=1))
    streams = [c for c in stream_cases(target) if c.path == "/v1/chat/completions"]
    kinds = []
    start = time.monotonic()
    with httpx.Client() as client:
        for case in (streams * 3)[:BREAKER_THRESHOLD + 2]:
            kinds.append(send(client, target, case, state).transport_kind)
    assert kinds == [transport.FIRST_BYTE_TIMEOUT] * BREAKER_THRESHOLD + \
        [transport.SKIPPED] * 2
    assert time.monotonic() - start < BREAKER_THRESHOLD * 0.3 + 1.5
    plain = endpoint_cases(target)[0]
    with httpx.Client() as client:  # other kinds of request are still sent
        assert send(client, target, plain, state).transport_kind == \
            transport.FIRST_BYTE_TIMEOUT
    assert not RunState().breaker.is_open(gateway.base_url, True)  # a new run starts closed


def test_timeouts_must_be_positive() -> None:
    from gateprobe.core.errors import UsageError

    with pytest.raises(UsageError, match="idle must be a positive"):
        Timeouts(idle_s=0).check()


class _Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_run_state_budget_and_affordable_waits() -> None:
    clock = _Clock()
    state = RunState(budget_s=30, clock=clock)
    assert state.left_s() == 30 and not state.spent()  # the clock starts with the run
    state.start()
    clock.now += 20
    assert state.left_s() == pytest.approx(10)
    assert state.affords_wait(5, request_s=4) and not state.affords_wait(7, request_s=4)
    clock.now += 11
    assert state.spent()
    unbounded = RunState()
    assert unbounded.affords_wait(MAX_WAIT_S, 10) and not unbounded.affords_wait(86400, 1)


def _always_429(retry_after: str) -> tuple[httpx.Client, list[int]]:
    sent: list[int] = []

    def answer(request: httpx.Request) -> httpx.Response:
        sent.append(1)
        return httpx.Response(429, headers={"retry-after": retry_after},
                              json={"error": {"type": "rate_limit_error", "message": "slow"}})

    return httpx.Client(transport=httpx.MockTransport(answer)), sent


@pytest.mark.parametrize(("retry_after", "budget_s", "waits"), [
    ("86400", None, []),  # no run can afford a day: returned at once, never waited for
    ("40", 30, []),  # longer than what is left of this run
    ("2", 30, [2.0, 2.0]),  # honoured in full, each time
])
def test_a_429_is_waited_out_only_when_the_run_can_afford_it(
        retry_after: str, budget_s: float | None, waits: list[float]) -> None:
    target = Target("http://127.0.0.1:9", "ohmygpt", "gp-vip-0001",
                    timeouts=Timeouts(connect_s=1, first_byte_s=1, idle_s=1, total_s=5))
    client, sent = _always_429(retry_after)
    slept: list[float] = []
    with client:
        exchange = send(client, target, endpoint_cases(target)[0], RunState(budget_s),
                        sleep=slept.append)
    assert exchange.status == 429
    assert slept == waits and len(sent) == len(waits) + 1


@pytest.mark.slow
def test_no_request_asks_more_than_the_targets_cap() -> None:
    """A target that declares ``max_tokens`` is never asked for more by any case."""
    from gateprobe.engine.cases import all_cases
    from gateprobe.engine.fuzz_guard import Guard, max_tokens_of

    asked: list[int] = []

    def answer(request: httpx.Request) -> httpx.Response:
        import json

        asked.append(max_tokens_of(json.loads(request.content or b"null")))
        return httpx.Response(200, json={})

    target = Target("http://127.0.0.1:9", "ohmygpt", "gp-vip-0001", max_tokens=20,
                    no_permission_key="gp-nomodel-0001")
    with httpx.Client(transport=httpx.MockTransport(answer)) as client:
        for case in all_cases(target):
            if not isinstance(case.body, bytes):
                send(client, target, case, RunState())
    assert max(asked) == 20 and len(asked) > 50
    assert Guard.for_target(target, 64).max_tokens == 20
