"""The reference gateway's own metrics endpoint, and the faults that degrade over time."""

from __future__ import annotations

import httpx
from prometheus_client.parser import text_string_to_metric_families

from gateprobe.reference.app import METRICS_ROUTE
from gateprobe.reference.faults import CREEP_MAX_MS, CREEP_MS, LEAK_BYTES, creep, creep_ns
from gateprobe.reference.procmetrics import CONNECTIONS, MEMORY, SERVED
from gateprobe.reference.server import RunningGateway
from gateprobe.reference.streaming import PlannedEvent
from gateway_fixtures import MakeGateway, client_for

CHAT = {"model": "gpt-4o-mini", "max_tokens": 4, "stream": True,
        "messages": [{"role": "user", "content": "Hi"}]}


def metrics_of(gateway: RunningGateway) -> dict[str, float]:
    response = httpx.get(gateway.base_url + METRICS_ROUTE, timeout=10)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain; version=")
    return {s.name: s.value for family in text_string_to_metric_families(response.text)
            for s in family.samples}


def serve(gateway: RunningGateway, n: int) -> list[str]:
    """``n`` chat streams read to their end; their request ids."""
    ids = []
    with client_for(gateway) as client:
        for _ in range(n):
            with client.stream("POST", "/v1/chat/completions", json=CHAT) as response:
                assert response.status_code == 200
                response.read()
                ids.append(response.headers["x-request-id"])
    return ids


def test_the_metrics_say_memory_connections_and_requests_served(
        make_gateway: MakeGateway) -> None:
    gateway = make_gateway()
    before = metrics_of(gateway)
    assert before[MEMORY] > 10 * 2**20  # a Python process: tens of MB at least
    assert before[SERVED + "_total"] == 0
    serve(gateway, 3)
    with httpx.Client(base_url=gateway.base_url) as held:  # one connection kept open
        held.get("/_gateprobe/health")
        after = metrics_of(gateway)
    assert after[SERVED + "_total"] == 3
    assert after[CONNECTIONS] >= 2  # the held one and the scrape's own
    assert after["gateprobe_reference_leaked_bytes"] == 0


def test_memory_leak_grows_the_reported_memory_by_each_request(
        make_gateway: MakeGateway) -> None:
    gateway = make_gateway(faults=("memory-leak",))
    serve(gateway, 4)
    metrics = metrics_of(gateway)
    assert metrics["gateprobe_reference_leaked_bytes"] == 4 * LEAK_BYTES
    assert metrics[MEMORY] >= 4 * LEAK_BYTES


def test_latency_creep_starts_each_stream_later_than_the_last(
        make_gateway: MakeGateway) -> None:
    gateway = make_gateway(faults=("latency-creep",))
    ids = serve(gateway, 5)
    firsts = []
    for request_id in ids:
        trace = httpx.get(f"{gateway.base_url}/_gateprobe/traces/{request_id}").json()
        firsts.append(trace["events"][0]["scheduled_ns"] - trace["t0_ns"])
    # the schedule, not the wall clock: each stream planned CREEP_MS later than the last
    steps = [b - a for a, b in zip(firsts, firsts[1:], strict=False)]
    assert steps == [creep_ns(1)] * 4


def test_creep_is_capped_and_shifts_the_whole_stream() -> None:
    assert creep_ns(0) == 0 and creep_ns(2) == round(2 * CREEP_MS * 1e6)
    assert creep_ns(10**9) == round(CREEP_MAX_MS * 1e6)
    plan = [PlannedEvent(b"data: {}\n\n", 1_000, False), PlannedEvent(b"data: x\n\n", 2_000, True)]
    assert [e.offset_ns for e in creep(plan, 4)] == [1_000 + creep_ns(4), 2_000 + creep_ns(4)]
