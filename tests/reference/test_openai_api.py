"""OpenAI-compatible routes of the reference gateway, over HTTP on loopback."""

from __future__ import annotations

import base64
import json
import struct
from typing import Any

import httpx
import pytest

from gateprobe.core.sse import parse_all
from gateprobe.core.tokenizer import count_tokens

CHAT = {"model": "gpt-3.5-turbo", "messages": [{"role": "user", "content": "Say test"}]}


def chunks(response: httpx.Response) -> list[Any]:
    events, notes = parse_all(response.content)
    assert notes == []
    assert all(e.type == "message" for e in events)  # OpenAI chunks carry no event name
    assert events[-1].data == "[DONE]"
    return [json.loads(e.data) for e in events[:-1]]


def test_chat_completion_shape(client: httpx.Client) -> None:
    r = client.post("/v1/chat/completions", json=CHAT)
    assert r.status_code == 200
    assert r.headers["content-type"] == "application/json"
    assert r.headers["x-request-id"].startswith("req_")
    body = r.json()
    assert body["object"] == "chat.completion"
    assert body["id"].startswith("chatcmpl-")
    assert isinstance(body["created"], int)
    assert body["model"] == "gpt-3.5-turbo-0125"
    [choice] = body["choices"]
    assert choice["index"] == 0 and choice["finish_reason"] == "stop"
    assert choice["message"]["role"] == "assistant"
    text = choice["message"]["content"]
    usage = body["usage"]
    assert usage["completion_tokens"] == count_tokens(text)
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]


def test_chat_is_deterministic_and_honours_seed(client: httpx.Client) -> None:
    def text(**extra: Any) -> str:
        return str(client.post("/v1/chat/completions", json={**CHAT, **extra})
                   .json()["choices"][0]["message"]["content"])

    assert text() == text()
    assert text(seed=7) == text(seed=7) != text()


def test_chat_max_tokens_gives_length(client: httpx.Client) -> None:
    body = client.post("/v1/chat/completions", json={**CHAT, "max_tokens": 2}).json()
    assert body["choices"][0]["finish_reason"] == "length"
    assert body["usage"]["completion_tokens"] == 2


def test_chat_stop_sequence(client: httpx.Client) -> None:
    full = client.post("/v1/chat/completions", json=CHAT).json()["choices"][0]["message"]
    word = full["content"].split()[2]
    body = client.post("/v1/chat/completions", json={**CHAT, "stop": [word]}).json()
    choice = body["choices"][0]
    assert choice["finish_reason"] == "stop"
    assert choice["message"]["content"] == full["content"][: full["content"].find(word)]


def test_chat_n_choices(client: httpx.Client) -> None:
    body = client.post("/v1/chat/completions", json={**CHAT, "n": 3}).json()
    assert [c["index"] for c in body["choices"]] == [0, 1, 2]
    assert len({c["message"]["content"] for c in body["choices"]}) == 3


def test_chat_stream_grammar(client: httpx.Client) -> None:
    r = client.post("/v1/chat/completions", json={**CHAT, "stream": True})
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/event-stream")
    assert "content-encoding" not in r.headers
    cs = chunks(r)
    assert {c["object"] for c in cs} == {"chat.completion.chunk"}
    assert len({c["id"] for c in cs}) == 1 and len({c["created"] for c in cs}) == 1
    assert cs[0]["choices"][0]["delta"]["role"] == "assistant"
    assert cs[-1]["choices"][0]["delta"] == {}
    assert cs[-1]["choices"][0]["finish_reason"] == "stop"
    assert all(c["choices"][0]["finish_reason"] is None for c in cs[:-1])
    assert all("usage" not in c for c in cs)
    text = "".join(c["choices"][0]["delta"].get("content", "") for c in cs)
    full = client.post("/v1/chat/completions", json=CHAT).json()
    assert text == full["choices"][0]["message"]["content"]


def test_chat_stream_include_usage(client: httpx.Client) -> None:
    r = client.post("/v1/chat/completions", json={
        **CHAT, "stream": True, "stream_options": {"include_usage": True}})
    cs = chunks(r)
    *content, usage = cs
    assert usage["choices"] == [] and usage["usage"]["total_tokens"] > 0
    assert all(c["usage"] is None for c in content)
    pieces = [c for c in content if c["choices"][0]["delta"].get("content")]
    assert usage["usage"]["completion_tokens"] == len(pieces)


def test_chat_stream_n_interleaves_choices(client: httpx.Client) -> None:
    cs = chunks(client.post("/v1/chat/completions", json={**CHAT, "stream": True, "n": 2}))
    finals = [c["choices"][0] for c in cs if c["choices"][0]["finish_reason"]]
    assert sorted(f["index"] for f in finals) == [0, 1]


def test_stream_options_without_stream_is_refused(client: httpx.Client) -> None:
    r = client.post("/v1/chat/completions",
                    json={**CHAT, "stream_options": {"include_usage": True}})
    assert r.status_code == 400
    assert r.json()["error"]["param"] == "stream_options"


@pytest.mark.parametrize("path", ["/v1/chat/completions", "/v1/completions"])
def test_include_usage_must_be_a_boolean(client: httpx.Client, path: str) -> None:
    """schemathesis once found ``include_usage: -3.4`` served: OpenAI refuses it."""
    body = CHAT if path.endswith("chat/completions") else {
        "model": "gpt-3.5-turbo-instruct", "prompt": "x"}
    r = client.post(path, json={**body, "stream": True, "stream_options": {"include_usage": -3.4}})
    assert r.status_code == 400
    assert r.json()["error"]["param"] == "stream_options.include_usage"


def test_completions_legacy_shape_and_stream(client: httpx.Client) -> None:
    req = {"model": "gpt-3.5-turbo-instruct", "prompt": "Say test", "max_tokens": 5}
    body = client.post("/v1/completions", json=req).json()
    assert body["object"] == "text_completion" and body["id"].startswith("cmpl-")
    [choice] = body["choices"]
    assert choice["finish_reason"] == "length" and choice["logprobs"] is None
    assert body["usage"]["completion_tokens"] == 5
    cs = chunks(client.post("/v1/completions", json={**req, "stream": True}))
    assert {c["object"] for c in cs} == {"text_completion"}
    assert "".join(c["choices"][0]["text"] for c in cs) == choice["text"]
    assert cs[-1]["choices"][0]["finish_reason"] == "length"


def test_completions_default_max_tokens_is_16_and_batches(client: httpx.Client) -> None:
    body = client.post("/v1/completions", json={
        "model": "gpt-3.5-turbo-instruct", "prompt": ["a", "b"], "n": 2}).json()
    assert [c["index"] for c in body["choices"]] == [0, 1, 2, 3]
    assert all(count_tokens(c["text"]) <= 16 for c in body["choices"])


def test_completions_echo_and_token_prompts(client: httpx.Client) -> None:
    body = client.post("/v1/completions", json={
        "model": "gpt-3.5-turbo-instruct", "prompt": "Echo me", "echo": True}).json()
    assert body["choices"][0]["text"].startswith("Echo me")
    body = client.post("/v1/completions", json={
        "model": "gpt-3.5-turbo-instruct", "prompt": [1, 2, 3]}).json()
    assert body["usage"]["prompt_tokens"] == 3


def test_embeddings_float_and_base64_agree(client: httpx.Client) -> None:
    req = {"model": "text-embedding-3-small", "input": ["one", "two", "three"]}
    floats = client.post("/v1/embeddings", json=req).json()
    assert floats["object"] == "list"
    assert [d["index"] for d in floats["data"]] == [0, 1, 2]
    vectors = [d["embedding"] for d in floats["data"]]
    assert all(len(v) == 1536 for v in vectors)
    assert all(abs(sum(x * x for x in v) - 1) < 1e-4 for v in vectors)
    encoded = client.post("/v1/embeddings", json={**req, "encoding_format": "base64"}).json()
    decoded = [list(struct.unpack("<1536f", base64.b64decode(d["embedding"])))
               for d in encoded["data"]]
    assert decoded == vectors
    assert floats["usage"]["prompt_tokens"] == floats["usage"]["total_tokens"] == 3


def test_embeddings_dimensions_and_determinism(client: httpx.Client) -> None:
    req = {"model": "text-embedding-3-small", "input": "x", "dimensions": 8}
    a = client.post("/v1/embeddings", json=req).json()["data"][0]["embedding"]
    assert len(a) == 8
    assert a == client.post("/v1/embeddings", json=req).json()["data"][0]["embedding"]
    assert client.post("/v1/embeddings", json={**req, "dimensions": 4000}).status_code == 400


@pytest.mark.parametrize("bad_input", ["", [], [""], [1.5]])
def test_embeddings_bad_input_is_400(client: httpx.Client, bad_input: Any) -> None:
    r = client.post("/v1/embeddings", json={"model": "text-embedding-3-small",
                                            "input": bad_input})
    assert r.status_code == 400 and r.json()["error"]["param"] == "input"


def test_models_list_and_get(client: httpx.Client) -> None:
    body = client.get("/v1/models").json()
    assert body["object"] == "list"
    ids = {m["id"] for m in body["data"]}
    assert {"gpt-3.5-turbo", "gpt-4o-mini", "gpt-3.5-turbo-instruct", "text-embedding-3-small",
            "claude-2", "claude-instant-1", "claude-2-web", "claude-3-opus",
            "claude-3-sonnet"} <= ids
    assert all(m["object"] == "model" and isinstance(m["created"], int) for m in body["data"])
    assert client.get("/v1/models/claude-2").json()["id"] == "claude-2"
    r = client.get("/v1/models/nope")
    assert r.status_code == 404 and r.json()["error"]["code"] == "model_not_found"


# -- claude-2-web, as the gateway documents it -------------------------------------------------
WEB = {"model": "claude-2-web", "messages": [
    {"role": "system", "content": "You are Claude2, a large language model."},
    {"role": "user", "content": "Who are you?"}]}


def test_claude_2_web_ignores_everything_but_model_messages_stream(client: httpx.Client) -> None:
    plain = client.post("/v1/chat/completions", json=WEB).json()
    noisy = client.post("/v1/chat/completions", json={
        **WEB, "max_tokens": 1, "temperature": 99, "n": 5, "stop": ["x"], "bogus": True,
        "stream_options": {"include_usage": True}}).json()
    assert noisy["choices"] == plain["choices"]
    assert noisy["usage"] == plain["usage"]


def test_claude_2_web_serializes_messages_into_one_prompt(client: httpx.Client) -> None:
    body = client.post("/v1/chat/completions", json=WEB).json()
    prompt = ("You are Claude2, a large language model.\n\nHuman: Who are you?"
              "\n\nAssistant:")
    assert body["usage"]["prompt_tokens"] == count_tokens(prompt)
    assert body["object"] == "chat.completion"


def test_claude_2_web_refuses_input_over_90k_tokens(client: httpx.Client) -> None:
    words = " word" * 90_000  # 90,000 tokens, plus the turn markers
    r = client.post("/v1/chat/completions", json={
        "model": "claude-2-web", "messages": [{"role": "user", "content": words}]})
    assert r.status_code == 400
    error = r.json()["error"]
    assert error["code"] == "context_length_exceeded" and "90000" in error["message"]
    ok = client.post("/v1/chat/completions", json={
        "model": "claude-2-web", "messages": [{"role": "user", "content": " word" * 89_000}]})
    assert ok.status_code == 200


def test_claude_2_web_stream_has_no_usage_chunk_even_if_asked(client: httpx.Client) -> None:
    cs = chunks(client.post("/v1/chat/completions", json={
        **WEB, "stream": True, "stream_options": {"include_usage": True}}))
    assert all(c["choices"] for c in cs)
