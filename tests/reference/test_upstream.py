"""Upstream mode of the reference: scripts per marker, any key, every request recorded."""

from __future__ import annotations

import json
from collections.abc import Iterator

import httpx
import pytest

from gateprobe.core.sse import parse_all
from gateprobe.reference.upstream import running_upstream

MARK = "gpmark-00112233445566aa"


@pytest.fixture(scope="module")
def up() -> Iterator[str]:
    with running_upstream() as running:
        yield running.base_url


def chat(up: str, stream: bool, mark: str = MARK, **headers: str) -> httpx.Response:
    return httpx.post(up + "/v1/chat/completions", timeout=10, headers={
        "authorization": "Bearer whatever-key-the-gateway-holds", **headers}, json={
        "model": "gpt-3.5-turbo", "max_tokens": 12, "stream": stream,
        "messages": [{"role": "user", "content": f"Say test {mark}"}]})


def script(up: str, **fields: object) -> httpx.Response:
    return httpx.post(up + "/_gateprobe/upstream/scripts", json=fields)


def test_any_key_is_served_and_every_request_recorded(up: str) -> None:
    mark = "gpmark-0000000000000001"
    answer = httpx.post(up + "/v1/messages", headers={"x-api-key": "sk-ant-anything"}, json={
        "model": "claude-3-sonnet", "max_tokens": 8,
        "messages": [{"role": "user", "content": mark}]})
    assert answer.status_code == 200 and answer.json()["type"] == "message"
    [record] = httpx.get(up + "/_gateprobe/upstream/requests",
                         params={"marker": mark}).json()["requests"]
    assert record["headers"]["x-api-key"] == "sk-ant-anything"
    assert json.loads(record["body"])["max_tokens"] == 8
    assert record["status"] == 200 and record["finished_s"] is not None


def test_a_cut_stream_ends_early_without_its_terminator(up: str) -> None:
    assert script(up, marker=MARK, action="cut", after_events=2).status_code == 201
    events, _ = parse_all(chat(up, stream=True).content)
    assert [e.data for e in events][-1] != "[DONE]"
    texts = [c["delta"].get("content") for e in events if e.data != "[DONE]"
             for c in json.loads(e.data)["choices"]]
    assert len([t for t in texts if t]) == 2
    whole, _ = parse_all(chat(up, stream=True).content)  # the script was for one request
    assert whole[-1].data == "[DONE]"


def test_errors_usage_model_headers_and_the_marker_header(up: str) -> None:
    script(up, marker="gpmark-0000000000000002", action="error", status=529,
           retry_after="9")
    refused = chat(up, False, "none", **{"x-gateprobe-marker": "gpmark-0000000000000002"})
    assert refused.status_code == 529 and refused.headers["retry-after"] == "9"
    assert refused.json()["error"]["type"] == "server_error"
    script(up, marker="gpmark-0000000000000003", usage={"prompt_tokens": 99},
           model="renamed", headers={"x-upstream-url": "http://10.20.0.7:8080/v1"})
    answer = chat(up, False, "gpmark-0000000000000003")
    assert answer.json()["usage"]["prompt_tokens"] == 99 and answer.json()["model"] == "renamed"
    assert answer.headers["x-upstream-url"] == "http://10.20.0.7:8080/v1"


def test_a_reset_mid_stream_breaks_the_connection(up: str) -> None:
    script(up, marker="gpmark-0000000000000004", action="reset", after_events=2)
    with pytest.raises(httpx.TransportError):
        chat(up, True, "gpmark-0000000000000004")


def test_a_hang_ends_when_the_client_leaves_and_that_is_recorded(up: str) -> None:
    mark = "gpmark-0000000000000005"
    script(up, marker=mark, action="hang", after_events=1)
    with httpx.stream("POST", up + "/v1/chat/completions", timeout=10, json={
            "model": "gpt-3.5-turbo", "stream": True,
            "messages": [{"role": "user", "content": mark}]}) as response:
        next(response.iter_bytes())
    for _ in range(50):
        [record] = httpx.get(up + "/_gateprobe/upstream/requests",
                             params={"marker": mark}).json()["requests"]
        if record["disconnected_s"] is not None:
            break
        httpx.get(up + "/_gateprobe/upstream/health")  # a beat for the server's loop
    assert record["disconnected_s"] is not None and record["finished_s"] is None


@pytest.mark.parametrize(("fields", "message"), [
    ({"action": "cut"}, "'marker'"),
    ({"marker": MARK, "action": "explode"}, "action must be one of"),
    ({"marker": MARK, "action": "error", "status": 418}, "status must be one of"),
    ({"marker": MARK, "after": 3}, "unknown field 'after'"),
])
def test_a_script_it_cannot_follow_is_a_400_naming_why(up: str, fields: dict[str, object],
                                                        message: str) -> None:
    answer = script(up, **fields)
    assert answer.status_code == 400 and message in answer.json()["error"]


def test_a_malformed_chunk_and_a_slow_first_byte(up: str) -> None:
    mark = "gpmark-0000000000000006"
    script(up, marker=mark, action="malformed", after_events=1, delay_s=0.3)
    events, _ = parse_all(chat(up, True, mark).content)
    bad = [e.data for e in events if e.data.startswith("{") and not e.data.endswith("}")]
    assert len(bad) == 1 and events[-1].data == "[DONE]"  # the rest follows it
    [record] = httpx.get(up + "/_gateprobe/upstream/requests",
                         params={"marker": mark}).json()["requests"]
    # a lower bound only: a sleep never ends early
    assert record["finished_s"] - record["arrived_s"] >= 0.3
