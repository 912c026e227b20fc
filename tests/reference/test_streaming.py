"""The reference gateway as latency ground truth: schedules, traces and disconnects."""

from __future__ import annotations

import json
import socket
import time

import httpx
import pytest

from gateprobe.core.sse import SSEParser
from gateprobe.reference import Timing
from gateway_fixtures import MakeGateway, client_for

CHAT = {"model": "gpt-3.5-turbo", "messages": [{"role": "user", "content": "hi"}],
        "stream": True}


def trace(gw_url: str, request_id: str) -> dict:
    r = httpx.get(f"{gw_url}/_gateprobe/traces/{request_id}")
    assert r.status_code == 200
    return dict(r.json())


def test_trace_records_the_configured_schedule(make_gateway: MakeGateway) -> None:
    gw = make_gateway(timing=Timing(ttft_ms=30, itl_ms=4))
    with client_for(gw) as c:
        r = c.post("/v1/chat/completions", json=CHAT)
    t = trace(gw.base_url, r.headers["x-request-id"])
    assert t["status"] == "complete" and t["endpoint"] == "/v1/chat/completions"
    content = [e for e in t["events"] if e["content"]]
    offsets = [(e["scheduled_ns"] - t["t0_ns"]) / 1e6 for e in content]
    assert offsets == [30 + 4 * i for i in range(len(content))]
    # A server never sends before the time it scheduled.
    assert all(e["sent_ns"] >= e["scheduled_ns"] for e in t["events"])
    # One trace event per SSE event on the wire.
    assert len(t["events"]) == r.text.count("\n\n")


def test_client_arrival_times_never_precede_the_server_send_times(
    make_gateway: MakeGateway,
) -> None:
    """perf_counter_ns is one monotonic clock for client and server on this machine."""
    gw = make_gateway(timing=Timing(ttft_ms=20, itl_ms=3))
    parser = SSEParser()
    events = []
    with client_for(gw) as c, c.stream("POST", "/v1/chat/completions", json=CHAT) as r:
        for chunk in r.iter_raw():
            events += parser.feed(chunk, time.perf_counter_ns())
        request_id = r.headers["x-request-id"]
    t = trace(gw.base_url, request_id)
    assert len(events) == len(t["events"])
    for ev, sent in zip(events, t["events"], strict=True):
        assert ev.t_ns >= sent["scheduled_ns"]


def test_the_schedule_starts_when_the_requests_first_bytes_arrive(
    make_gateway: MakeGateway,
) -> None:
    """Not when the app gets round to it: the truth a client is measured against starts when
    the request reached the server. Here the request comes in two parts 80 ms apart, and the
    trace starts with the first."""
    gw = make_gateway(timing=Timing(ttft_ms=10, itl_ms=2))
    body = json.dumps(CHAT).encode()
    head = (f"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
            "Authorization: Bearer gp-vip-0001\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n\r\n").encode()
    port = int(gw.base_url.rsplit(":", 1)[1])
    with socket.create_connection(("127.0.0.1", port)) as sock:
        first = time.perf_counter_ns()
        sock.sendall(head[:20])
        time.sleep(0.08)
        sock.sendall(head[20:] + body)
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    request_id = next(line.split(b":", 1)[1].strip().decode()
                      for line in answer.split(b"\r\n") if line.lower().startswith(b"x-request-id"))
    t = trace(gw.base_url, request_id)
    assert first <= t["t0_ns"] < first + 40_000_000


@pytest.mark.slow
def test_jitter_is_bounded_and_reproducible_per_seed(make_gateway: MakeGateway) -> None:
    def offsets(seed: int) -> list[list[int]]:
        gw = make_gateway(timing=Timing(ttft_ms=10, itl_ms=5, jitter_ms=2), seed=seed)
        runs = []
        with client_for(gw) as c:
            for _ in range(2):
                t = trace(gw.base_url, c.post("/v1/chat/completions", json=CHAT
                                              ).headers["x-request-id"])
                runs.append([e["scheduled_ns"] - t["t0_ns"] for e in t["events"]
                             if e["content"]])
        return runs

    first, again, other = offsets(1), offsets(1), offsets(2)
    for due in first:
        assert 8e6 <= due[0] <= 12e6
        gaps = [(b - a) / 1e6 for a, b in zip(due, due[1:], strict=False)]
        assert all(3 <= g <= 7 for g in gaps) and len(set(gaps)) > 1
    assert first == again  # same seed, same request order: same schedule
    assert first[0] != first[1]  # but each request draws its own jitter
    assert first != other


def test_non_streaming_answer_waits_for_the_whole_generation(make_gateway: MakeGateway) -> None:
    gw = make_gateway(timing=Timing(ttft_ms=25, itl_ms=2))
    with client_for(gw) as c:
        r = c.post("/v1/chat/completions", json={**CHAT, "stream": False, "max_tokens": 5})
    [event] = trace(gw.base_url, r.headers["x-request-id"])["events"]
    t0 = trace(gw.base_url, r.headers["x-request-id"])["t0_ns"]
    assert (event["scheduled_ns"] - t0) / 1e6 == 25 + 2 * 4
    assert event["sent_ns"] >= event["scheduled_ns"]


def test_disconnect_mid_stream_stops_the_stream_and_frees_the_slot(
    make_gateway: MakeGateway,
) -> None:
    gw = make_gateway(timing=Timing(ttft_ms=1, itl_ms=2000))
    with client_for(gw) as c:
        with c.stream("POST", "/v1/messages", json={
                "model": "claude-2", "max_tokens": 50, "stream": True,
                "messages": [{"role": "user", "content": "hi"}]}) as r:
            first = next(r.iter_raw())
            assert b"message_start" in first
            request_id = r.headers["request-id"]
        # The client closed the connection; the server must notice long before its next token.
        for _ in range(200):
            if trace(gw.base_url, request_id)["status"] != "open":
                break
            time.sleep(0.01)
    t = trace(gw.base_url, request_id)
    assert t["status"] == "disconnected"
    assert sum(e["content"] for e in t["events"]) <= 1
    # The slot comes back in the handler's cleanup, just after the status is written.
    for _ in range(200):
        if httpx.get(gw.base_url + "/_gateprobe/health").json()["inflight"] == 0:
            break
        time.sleep(0.01)
    assert httpx.get(gw.base_url + "/_gateprobe/health").json()["inflight"] == 0


def test_unknown_trace_is_404(make_gateway: MakeGateway) -> None:
    gw = make_gateway()
    assert httpx.get(gw.base_url + "/_gateprobe/traces/req_nope").status_code == 404


@pytest.mark.slow
def test_trace_store_is_bounded(make_gateway: MakeGateway) -> None:
    gw = make_gateway(trace_capacity=3)
    with client_for(gw) as c:
        ids = [c.post("/v1/embeddings", json={"model": "text-embedding-3-small", "input": "x"}
                      ).headers["x-request-id"] for _ in range(5)]
    found = [httpx.get(f"{gw.base_url}/_gateprobe/traces/{i}").status_code for i in ids]
    assert found == [404, 404, 200, 200, 200]


def test_every_stream_event_is_valid_json_or_done(make_gateway: MakeGateway) -> None:
    gw = make_gateway()
    with client_for(gw) as c:
        for path, body in [("/v1/chat/completions", CHAT),
                           ("/v1/completions", {"model": "gpt-3.5-turbo-instruct",
                                                "prompt": "x", "stream": True}),
                           ("/v1/complete", {"model": "claude-2", "stream": True,
                                             "prompt": "\n\nHuman: x\n\nAssistant:",
                                             "max_tokens_to_sample": 9})]:
            for block in c.post(path, json=body).text.split("\n\n")[:-1]:
                data = block.split("data: ", 1)[1]
                assert data == "[DONE]" or isinstance(json.loads(data), dict)


def test_template_fill_is_byte_identical_to_full_serialization() -> None:
    from gateprobe.reference.streaming import HOLE, Template, sse

    payload = {"type": "content_block_delta", "index": 0,
               "delta": {"type": "text_delta", "text": HOLE}}
    template = Template(payload, "content_block_delta")
    for text in ["", " word", 'quote " and \\ backslash', "ünï ✓", "\n\x00"]:
        filled = {**payload, "delta": {"type": "text_delta", "text": text}}
        assert template.fill(text) == sse(json.dumps(filled, ensure_ascii=False),
                                          "content_block_delta")


def test_template_needs_exactly_one_hole() -> None:
    import pytest

    from gateprobe.reference.streaming import HOLE, Template

    with pytest.raises(ValueError, match="exactly once"):
        Template({"a": "no hole"})
    with pytest.raises(ValueError, match="exactly once"):
        Template({"a": HOLE, "b": HOLE})


def test_sleep_until_never_returns_early() -> None:
    import asyncio

    from gateprobe.reference.streaming import sleep_until

    async def check(spin_ns: int) -> None:
        for offset_ms in (0.0, 0.3, 1.7, 3.2):
            due = time.perf_counter_ns() + int(offset_ms * 1e6)
            await sleep_until(due, spin_ns)
            assert time.perf_counter_ns() >= due

    asyncio.run(check(0))
    asyncio.run(check(2_000_000))
