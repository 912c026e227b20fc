"""The reference gateway's serving capacity (``gateprobe serve --capacity K``): at most K
answers at once, the rest queued in arrival order, their wait in their time to first token.

Times are bounded from below where the queue forces them (a queued stream cannot start before
a slot frees), never asserted as wall-clock windows."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable

import httpx
import pytest

from gateprobe.cli import main
from gateprobe.reference import Timing
from gateprobe.reference.capacity import Capacity
from gateway_fixtures import MakeGateway, client_for

TIMING = Timing(ttft_ms=300, itl_ms=100)
"""Streams of a second: long beside the threads' start spread on a busy machine."""
TOKENS = 8
STREAM_MS = TIMING.ttft_ms + (TOKENS - 1) * TIMING.itl_ms
"""One stream's duration on the gateway: its first token, then one gap per further token."""
CHAT = {"model": "gpt-3.5-turbo", "messages": [{"role": "user", "content": "hi"}],
        "stream": True, "max_tokens": TOKENS}


def _stream(client: httpx.Client, out: list[tuple[float, str, float]],
            together: threading.Barrier) -> None:
    """One streaming request: (its start, its request id, its TTFT in ms) into ``out``."""
    together.wait(timeout=10)
    start = time.perf_counter()
    with client.stream("POST", "/v1/chat/completions", json=CHAT) as r:
        ttft = None
        for line in r.iter_lines():
            if ttft is None and '"content":"' in line.replace(" ", "") \
                    and '"content":""' not in line.replace(" ", ""):
                ttft = (time.perf_counter() - start) * 1000
        assert r.status_code == 200
        out.append((start, r.headers["x-request-id"], ttft or float("nan")))


def _burst(client: httpx.Client, n: int) -> list[tuple[float, str, float]]:
    out: list[tuple[float, str, float]] = []
    together = threading.Barrier(n)
    threads = [threading.Thread(target=_stream, args=(client, out, together))
               for _ in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert len(out) == n
    return sorted(out)


def _settles(condition: Callable[[], bool], within_s: float = 5.0) -> bool:
    """Whether ``condition`` holds within ``within_s`` seconds (polled)."""
    deadline = time.monotonic() + within_s
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


@pytest.mark.parametrize("capacity", [1, 2])
def test_requests_beyond_the_capacity_wait_one_stream_for_a_slot(
        make_gateway: MakeGateway, capacity: int) -> None:
    gw = make_gateway(timing=TIMING, capacity=capacity)
    with client_for(gw) as client:
        client.headers["accept-encoding"] = "identity"
        done = _burst(client, 2 * capacity)
    traces = [gw.state.traces.get(rid) for _, rid, _ in done]
    # Never more than K streams at once, by the server's own send times.
    spans = [(t.sent_ns[0], t.sent_ns[-1]) for t in traces]
    assert max(sum(1 for a, b in spans if a <= start <= b) for start, _ in spans) <= capacity
    queued_ms = sorted(t.queued_ns / 1e6 for t in traces)
    first, later = queued_ms[:capacity], queued_ms[capacity:]
    # The first K found a slot at once; each of the next K waited for one of them to end.
    assert all(q < STREAM_MS / 2 for q in first), queued_ms
    assert all(q > 0.7 * STREAM_MS for q in later), queued_ms
    # The client sees the wait in its TTFT: the queued ones' TTFT is about a stream longer.
    ttfts = sorted(ttft for _, _, ttft in done)
    assert min(ttfts[capacity:]) - max(ttfts[:capacity]) > 0.5 * STREAM_MS, ttfts
    # The server gives its slot back just after its last write, which the client may read
    # first: every slot is back within a moment, not necessarily at the client's last byte.
    assert _settles(lambda: gw.state.capacity.busy == 0 and gw.state.capacity.queued == 0)


def test_without_a_capacity_nothing_queues(make_gateway: MakeGateway) -> None:
    gw = make_gateway(timing=TIMING)
    with client_for(gw) as client:
        done = _burst(client, 4)
    assert [gw.state.traces.get(rid).queued_ns for _, rid, _ in done] == [0, 0, 0, 0]


def test_a_json_answer_queues_too(make_gateway: MakeGateway) -> None:
    gw = make_gateway(timing=TIMING, capacity=1)
    results: list[str] = []
    together = threading.Barrier(2)

    def one() -> None:
        with client_for(gw) as client:
            together.wait(timeout=10)
            r = client.post("/v1/chat/completions", json={**CHAT, "stream": False})
            results.append(r.headers["x-request-id"])

    threads = [threading.Thread(target=one) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    queued = sorted(gw.state.traces.get(rid).queued_ns / 1e6 for rid in results)
    assert queued[0] < STREAM_MS / 2 and queued[1] > 0.7 * STREAM_MS, queued


def test_the_queue_is_first_come_first_served_and_a_leaver_leaves_it() -> None:
    async def scenario() -> list[str]:
        gate, order = Capacity(1), []
        await gate.acquire()

        async def waiter(name: str) -> None:
            await gate.acquire()
            order.append(name)
            gate.release()

        tasks = {n: asyncio.create_task(waiter(n)) for n in "abc"}
        await asyncio.sleep(0)
        tasks["b"].cancel()  # a client that leaves while queued
        await asyncio.sleep(0)
        assert gate.queued == 2
        gate.release()
        await asyncio.gather(tasks["a"], tasks["c"])
        assert gate.busy == 0 and gate.queued == 0
        return order

    assert asyncio.run(scenario()) == ["a", "c"]


def test_zero_slots_never_waits() -> None:
    async def scenario() -> int:
        gate = Capacity(0)
        for _ in range(5):
            await gate.acquire()
        gate.release()
        return gate.busy

    assert asyncio.run(scenario()) == 0


def test_a_negative_capacity_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["serve", "--capacity", "-1"]) == 2
    assert "--capacity must be >= 0" in capsys.readouterr().err
