"""Anthropic-compatible routes of the reference gateway, over HTTP on loopback.

The legacy ``/v1/complete`` stream is checked on its raw SSE bytes: the current anthropic SDK no
longer wraps that endpoint.
"""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from gateprobe.core.sse import Event, parse_all
from gateprobe.core.tokenizer import count_tokens
from gateprobe.reference.prompt import END_ERROR, START_ERROR

LEGACY = {"model": "claude-2", "prompt": "\n\nHuman: Say test\n\nAssistant:",
          "max_tokens_to_sample": 50}
MSG = {"model": "claude-3-sonnet", "max_tokens": 50,
       "messages": [{"role": "user", "content": "Say test"}]}


def events(response: httpx.Response) -> list[Event]:
    assert response.headers["content-type"].startswith("text/event-stream")
    found, notes = parse_all(response.content)
    assert notes == []
    return found


def test_complete_shape_as_the_gateway_documents(client: httpx.Client) -> None:
    r = client.post("/v1/complete", json=LEGACY)
    assert r.status_code == 200
    assert r.headers["request-id"].startswith("req_")
    body = r.json()
    assert body["type"] == "completion" and body["id"].startswith("compl_")
    assert body["model"] == "claude-2.0"  # more specific than the requested id, as documented
    assert body["stop_reason"] == "stop_sequence" and body["stop"] == "\n\nHuman:"
    assert len(body["log_id"]) == 64
    assert body["completion"].startswith(" ")


def test_complete_accepts_the_gateway_example_max_tokens(client: httpx.Client) -> None:
    r = client.post("/v1/complete", json={**LEGACY, "max_tokens_to_sample": 999999,
                                          "stream": False})
    assert r.status_code == 200


def test_complete_max_tokens_and_stop_sequences(client: httpx.Client) -> None:
    body = client.post("/v1/complete", json={**LEGACY, "max_tokens_to_sample": 3}).json()
    assert body["stop_reason"] == "max_tokens" and body["stop"] is None
    assert count_tokens(body["completion"]) == 3
    full = client.post("/v1/complete", json=LEGACY).json()["completion"]
    word = full.split()[2]
    body = client.post("/v1/complete", json={**LEGACY, "stop_sequences": [word]}).json()
    assert body["stop_reason"] == "stop_sequence" and body["stop"] == word
    assert body["completion"] == full[: full.find(word)]


def test_complete_stream_2023_06_01_events(client: httpx.Client) -> None:
    r = client.post("/v1/complete", json={**LEGACY, "stream": True},
                    headers={"anthropic-version": "2023-06-01"})
    evs = events(r)
    assert {e.type for e in evs} == {"ping", "completion"}
    completions = [json.loads(e.data) for e in evs if e.type == "completion"]
    assert all(c["type"] == "completion" for c in completions)
    assert all(c["stop_reason"] is None for c in completions[:-1])
    assert completions[-1]["stop_reason"] == "stop_sequence"
    full = client.post("/v1/complete", json=LEGACY).json()["completion"]
    assert "".join(c["completion"] for c in completions) == full  # deltas, not cumulative
    assert all(e.data != "[DONE]" for e in evs)


def test_complete_stream_before_2023_06_01_is_cumulative_with_done(client: httpx.Client) -> None:
    r = client.post("/v1/complete", json={**LEGACY, "stream": True},
                    headers={"anthropic-version": "2023-01-01"})
    evs = events(r)
    assert evs[-1].data == "[DONE]"
    texts = [json.loads(e.data)["completion"] for e in evs[:-1]]
    assert all(b.startswith(a) for a, b in zip(texts, texts[1:], strict=False))
    assert texts[-1] == client.post("/v1/complete", json=LEGACY).json()["completion"]


@pytest.mark.parametrize(
    ("prompt", "message"),
    [("Say test", START_ERROR), ("\n\nHuman: Say test", END_ERROR),
     ("\n\nHuman: Say test\nAssistant:", END_ERROR),
     ("\n\nAssistant: x\n\nHuman: y\n\nAssistant:", START_ERROR)],
)
def test_complete_rejects_bad_prompts_before_generating(
    client: httpx.Client, prompt: str, message: str
) -> None:
    r = client.post("/v1/complete", json={**LEGACY, "prompt": prompt, "stream": True})
    assert r.status_code == 400
    assert r.headers["content-type"] == "application/json"  # no stream was started
    body = r.json()
    assert body["type"] == "error"
    assert body["error"] == {"type": "invalid_request_error", "message": message}
    assert "completion" not in body


@pytest.mark.parametrize(
    ("field", "value", "fragment"),
    [("temperature", 1.5, "less than or equal to 1"), ("temperature", -0.1, "greater than"),
     ("top_p", 2, "less than or equal to 1"), ("top_k", 0, "greater than or equal to 1"),
     ("max_tokens_to_sample", 0, "greater than or equal to 1"),
     ("max_tokens_to_sample", "10", "Input should be an integer"),
     ("prompt", "", "at least 1"), ("stop_sequences", "x", "Input should be an array"),
     ("stop_sequences", [1], "stop_sequences.0"), ("stream", "yes", "a boolean"),
     ("unknown_param", 1, "Extra inputs are not permitted")],
)
def test_complete_parameter_ranges(client: httpx.Client, field: str, value: Any,
                                   fragment: str) -> None:
    r = client.post("/v1/complete", json={**LEGACY, field: value})
    assert r.status_code == 400
    error = r.json()["error"]
    assert error["type"] == "invalid_request_error"
    assert fragment in error["message"]


@pytest.mark.parametrize("missing", ["model", "prompt", "max_tokens_to_sample"])
def test_complete_required_fields(client: httpx.Client, missing: str) -> None:
    body = {k: v for k, v in LEGACY.items() if k != missing}
    r = client.post("/v1/complete", json=body)
    assert r.status_code == 400
    assert r.json()["error"]["message"] == f"{missing}: Field required"


def test_complete_refuses_messages_only_models(client: httpx.Client) -> None:
    r = client.post("/v1/complete", json={**LEGACY, "model": "claude-3-opus"})
    assert r.status_code == 400 and r.json()["error"]["type"] == "invalid_request_error"


def test_messages_shape(client: httpx.Client) -> None:
    r = client.post("/v1/messages", json={**MSG, "system": "Be brief."})
    body = r.json()
    assert r.status_code == 200
    assert body["id"].startswith("msg_") and body["type"] == "message"
    assert body["role"] == "assistant" and body["model"] == "claude-3-sonnet-20240229"
    [block] = body["content"]
    assert block["type"] == "text"
    assert body["stop_reason"] == "end_turn" and body["stop_sequence"] is None
    assert body["usage"]["output_tokens"] == count_tokens(block["text"])
    assert body["usage"]["input_tokens"] > 0


def test_messages_stop_reasons(client: httpx.Client) -> None:
    assert client.post("/v1/messages", json={**MSG, "max_tokens": 1}).json()[
        "stop_reason"] == "max_tokens"
    text = client.post("/v1/messages", json=MSG).json()["content"][0]["text"]
    word = text.split()[1]
    body = client.post("/v1/messages", json={**MSG, "stop_sequences": [word]}).json()
    assert body["stop_reason"] == "stop_sequence" and body["stop_sequence"] == word


def test_messages_stream_grammar(client: httpx.Client) -> None:
    evs = events(client.post("/v1/messages", json={**MSG, "stream": True}))
    payloads = [json.loads(e.data) for e in evs]
    assert all(e.type == p["type"] for e, p in zip(evs, payloads, strict=True))
    types = [p["type"] for p in payloads if p["type"] != "ping"]
    deltas = types.count("content_block_delta")
    assert types == (["message_start", "content_block_start"] + ["content_block_delta"] * deltas
                     + ["content_block_stop", "message_delta", "message_stop"])
    start = payloads[0]["message"]
    assert start["content"] == [] and start["stop_reason"] is None
    text = "".join(p["delta"]["text"] for p in payloads if p["type"] == "content_block_delta")
    whole = client.post("/v1/messages", json=MSG).json()
    assert text == whole["content"][0]["text"]
    final = next(p for p in payloads if p["type"] == "message_delta")
    assert final["delta"]["stop_reason"] == "end_turn"
    assert final["usage"]["output_tokens"] == whole["usage"]["output_tokens"] == deltas


def test_messages_content_blocks_and_validation(client: httpx.Client) -> None:
    blocks = {**MSG, "messages": [{"role": "user", "content": [
        {"type": "text", "text": "Say"}, {"type": "text", "text": " test"}]}]}
    assert client.post("/v1/messages", json=blocks).status_code == 200
    for bad, fragment in [
        ({"role": "robot", "content": "x"}, "messages.0.role"),
        ({"role": "user"}, "messages.0.content: Field required"),
        ({"role": "user", "content": [{"type": "text"}]}, "messages.0.content.0.text"),
        ({"role": "user", "content": [{"type": "nope"}]}, "messages.0.content.0.type"),
    ]:
        r = client.post("/v1/messages", json={**MSG, "messages": [bad]})
        assert r.status_code == 400, bad
        assert fragment in r.json()["error"]["message"]
    r = client.post("/v1/messages", json={**MSG, "messages": []})
    assert r.status_code == 400


def test_count_tokens(client: httpx.Client) -> None:
    body = {"model": MSG["model"], "messages": MSG["messages"]}
    r = client.post("/v1/messages/count_tokens", json=body)
    assert r.status_code == 200
    n = r.json()["input_tokens"]
    assert n == client.post("/v1/messages", json=MSG).json()["usage"]["input_tokens"]
    r = client.post("/v1/messages/count_tokens", json={**body, "max_tokens": 5})
    assert r.status_code == 400
    r = client.post("/v1/messages/count_tokens", json={**body, "model": "nope"})
    assert r.status_code == 404 and r.json()["error"]["type"] == "not_found_error"
