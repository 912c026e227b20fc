"""Each stream grammar finds each deviation it owns, on hand-made streams.

A good stream of each family is built here, then bent one way per case; the grammar must name
exactly the expected check id(s).
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from gateprobe.protocols import (
    anthropic_complete,
    anthropic_messages,
    openai_chat,
    openai_completions,
)
from gateprobe.protocols._anthropic import parse_error as anthropic_error
from gateprobe.protocols._openai import parse_error as openai_error
from gateprobe.protocols.streams import check_stream_bytes, grammar_for


def ev(payload: Any, name: str | None = None) -> bytes:
    data = payload if isinstance(payload, str) else json.dumps(payload)
    return (f"event: {name}\n" if name else "").encode() + f"data: {data}\n\n".encode()


# -- OpenAI chat ----------------------------------------------------------------------------
HEAD = {"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1, "model": "m"}


def chunk(delta: dict[str, Any], finish: str | None = None, index: int = 0,
          **extra: Any) -> dict[str, Any]:
    return {**HEAD, "choices": [{"index": index, "delta": delta, "finish_reason": finish}],
            **extra}


CHAT_OK = [chunk({"role": "assistant", "content": ""}), chunk({"content": "Hi"}),
           chunk({"content": " there"}), chunk({}, "stop")]
USAGE = {**HEAD, "choices": [], "usage": {"prompt_tokens": 3, "completion_tokens": 2,
                                          "total_tokens": 5}}


def chat_findings(events: list[Any], names: dict[int, str] | None = None,
                  done: bool = True, **body: Any) -> list[str]:
    raw = b"".join(ev(e, (names or {}).get(i)) for i, e in enumerate(events))
    raw += b"data: [DONE]\n\n" if done else b""
    grammar = grammar_for("/v1/chat/completions", body)
    return sorted({f.check_id for f in check_stream_bytes(grammar, raw, "/v1/chat/completions")})


def test_chat_good_stream_and_usage() -> None:
    assert chat_findings(CHAT_OK) == []
    usage_ok = [chunk(c["choices"][0]["delta"], c["choices"][0]["finish_reason"], usage=None)
                for c in CHAT_OK] + [USAGE]
    assert chat_findings(usage_ok, stream_options={"include_usage": True}) == []


CHAT_CASES: list[tuple[str, list[Any], dict[str, Any], list[str]]] = [
    ("missing [DONE]", CHAT_OK, {"done": False}, ["stream.terminator"]),
    ("named chunks", CHAT_OK, {"names": {1: "chunk"}}, ["stream.event_name"]),
    ("bad json", [CHAT_OK[0], "{not json", *CHAT_OK[2:]], {}, ["stream.json"]),
    ("json array", [CHAT_OK[0], "[1, 2]", *CHAT_OK[2:]], {}, ["stream.json"]),
    ("error in 200 stream", [CHAT_OK[0], {"error": {"message": "boom", "type": "x"}}], {},
     ["stream.error_event"]),
    ("no role first", CHAT_OK[1:], {}, ["stream.order"]),
    ("no finish_reason", CHAT_OK[:-1], {}, ["stream.finish_reason"]),
    ("chunk after finish", [*CHAT_OK, chunk({"content": "late"})], {}, ["stream.order"]),
    ("bad finish_reason", [*CHAT_OK[:-1], chunk({}, "done")], {}, ["stream.schema"]),
    ("wrong object", [CHAT_OK[0], {**CHAT_OK[1], "object": "chat.completion"}, *CHAT_OK[2:]],
     {}, ["stream.schema"]),
    ("content not a string", [CHAT_OK[0], chunk({"content": 5}), CHAT_OK[-1]], {},
     ["stream.schema"]),
    ("id changes", [CHAT_OK[0], {**CHAT_OK[1], "id": "chatcmpl-2"}, *CHAT_OK[2:]], {},
     ["stream.consistency"]),
    ("usage asked, not sent", CHAT_OK, {"stream_options": {"include_usage": True}},
     ["stream.usage"]),
    ("usage does not add up", [*CHAT_OK, {**USAGE, "usage": {
        "prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 6}}], {}, ["stream.usage"]),
    ("chunk after usage", [*CHAT_OK[:-1], USAGE, CHAT_OK[-1]], {}, ["stream.order"]),
    ("empty stream", [], {}, ["stream.order"]),
]


@pytest.mark.parametrize(("events", "kw", "expected"), [c[1:] for c in CHAT_CASES],
                         ids=[c[0] for c in CHAT_CASES])
def test_chat_deviation(events: list[Any], kw: dict[str, Any], expected: list[str]) -> None:
    assert chat_findings(events, **kw) == expected


def test_event_after_done_and_framing() -> None:
    raw = b"".join(ev(e) for e in CHAT_OK) + b"data: [DONE]\n\n" + ev(CHAT_OK[1])
    grammar = grammar_for("/v1/chat/completions", {})
    assert [f.check_id for f in check_stream_bytes(grammar, raw, "x")] == ["stream.order"]
    unterminated = b"".join(ev(e) for e in CHAT_OK) + b"data: [DONE]\n"
    grammar = grammar_for("/v1/chat/completions", {})
    ids = [f.check_id for f in check_stream_bytes(grammar, unterminated, "x")]
    assert ids == ["stream.framing", "stream.terminator"]


def test_findings_carry_redacted_evidence() -> None:
    grammar = openai_chat.StreamGrammar("/v1/chat/completions",
                                        redact=lambda s: s.replace("SECRET", "[REDACTED]"))
    raw = ev({"error": {"message": "key SECRET invalid", "type": "x"}}) + b"data: [DONE]\n\n"
    [finding, *_] = check_stream_bytes(grammar, raw, "/v1/chat/completions")
    assert finding.check_id == "stream.error_event"
    assert "SECRET" not in finding.evidence and "[REDACTED]" in finding.evidence
    assert finding.endpoint == "/v1/chat/completions"


# -- OpenAI legacy completions ------------------------------------------------------------------
def comp(text: Any, finish: str | None = None) -> dict[str, Any]:
    return {"id": "cmpl-1", "object": "text_completion", "created": 1, "model": "m",
            "choices": [{"text": text, "index": 0, "logprobs": None, "finish_reason": finish}]}


@pytest.mark.parametrize(("events", "expected"), [
    ([comp("a"), comp(" b"), comp("", "length")], []),
    ([comp("a"), comp(None), comp("", "length")], ["stream.schema"]),
    ([comp("a"), comp("", "tool_calls")], ["stream.schema"]),
    ([comp("a")], ["stream.finish_reason"]),
], ids=["good", "text not a string", "chat-only finish reason", "no finish"])
def test_completions(events: list[Any], expected: list[str]) -> None:
    raw = b"".join(ev(e) for e in events) + b"data: [DONE]\n\n"
    grammar = openai_completions.StreamGrammar("/v1/completions")
    assert sorted({f.check_id for f in check_stream_bytes(grammar, raw, "x")}) == expected


# -- Anthropic Messages -------------------------------------------------------------------------
START = {"type": "message_start", "message": {
    "id": "msg_1", "type": "message", "role": "assistant", "content": [], "model": "m",
    "stop_reason": None, "stop_sequence": None, "usage": {"input_tokens": 3,
                                                          "output_tokens": 1}}}
BLOCK = {"type": "content_block_start", "index": 0, "content_block": {"type": "text",
                                                                      "text": ""}}
DELTA = {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta",
                                                              "text": "Hi"}}
STOP = {"type": "content_block_stop", "index": 0}
MDELTA = {"type": "message_delta", "delta": {"stop_reason": "end_turn", "stop_sequence": None},
          "usage": {"output_tokens": 2}}
MSTOP = {"type": "message_stop"}
PING = {"type": "ping"}
MSG_OK = [START, BLOCK, PING, DELTA, DELTA, STOP, MDELTA, MSTOP]


def msg_findings(events: list[Any], names: dict[int, str] | None = None) -> list[str]:
    raw = b"".join(ev(e, (names or {}).get(i, e.get("type") if isinstance(e, dict) else "x"))
                   for i, e in enumerate(events))
    grammar = anthropic_messages.StreamGrammar()
    return sorted({f.check_id for f in check_stream_bytes(grammar, raw, "/v1/messages")})


def with_index(event: dict[str, Any], i: int) -> dict[str, Any]:
    return {**event, "index": i}


MSG_CASES: list[tuple[str, list[Any], dict[int, str] | None, list[str]]] = [
    ("good", MSG_OK, None, []),
    ("two blocks", [START, BLOCK, DELTA, STOP, with_index(BLOCK, 1), with_index(DELTA, 1),
                    with_index(STOP, 1), MDELTA, MSTOP], None, []),
    ("unknown event type ignored", [START, {"type": "future_thing"}, *MSG_OK[1:]], None, []),
    ("no message_stop", MSG_OK[:-1], None, ["stream.terminator"]),
    ("name differs from type", MSG_OK, {3: "delta"}, ["stream.event_name"]),
    ("delta before block start", [START, DELTA, BLOCK, DELTA, STOP, MDELTA, MSTOP], None,
     ["stream.order"]),
    ("index gap", [START, with_index(BLOCK, 1), with_index(DELTA, 1), with_index(STOP, 1),
                   MDELTA, MSTOP], None, ["stream.block_index"]),
    ("block never stopped", [START, BLOCK, DELTA, MDELTA, MSTOP], None, ["stream.order"]),
    ("message_start not first", [BLOCK, START, DELTA, STOP, MDELTA, MSTOP], None,
     ["stream.order"]),
    ("error event", [START, BLOCK, DELTA, {"type": "error", "error": {
        "type": "overloaded_error", "message": "Overloaded"}}], None, ["stream.error_event"]),
    ("event after message_stop", [*MSG_OK, PING], None, ["stream.order"]),
    ("bad stop_reason", [*MSG_OK[:-2], {**MDELTA, "delta": {"stop_reason": None}}, MSTOP],
     None, ["stream.schema"]),
    ("usage missing", [*MSG_OK[:-2], {**MDELTA, "usage": {}}, MSTOP], None, ["stream.usage"]),
    ("usage decreases", [START, BLOCK, DELTA, STOP, MDELTA, {**MDELTA, "usage": {
        "output_tokens": 1}}, MSTOP], None, ["stream.usage"]),
    ("wrong delta type", [START, BLOCK, {**DELTA, "delta": {"type": "input_json_delta",
                                                             "partial_json": "{"}},
                          STOP, MDELTA, MSTOP], None, ["stream.schema"]),
    ("message_start with content", [{**START, "message": {**START["message"],
                                                          "content": [{"type": "text"}]}},
                                    *MSG_OK[1:]], None, ["stream.schema"]),
    ("stop without delta", [START, BLOCK, DELTA, STOP, MSTOP], None, ["stream.order"]),
]


@pytest.mark.parametrize(("events", "names", "expected"), [c[1:] for c in MSG_CASES],
                         ids=[c[0] for c in MSG_CASES])
def test_messages(events: list[Any], names: dict[int, str] | None,
                  expected: list[str]) -> None:
    assert msg_findings(events, names) == expected


# -- Anthropic legacy complete -----------------------------------------------------------------
def compl(text: str, reason: str | None = None, **extra: Any) -> dict[str, Any]:
    return {"type": "completion", "completion": text, "stop_reason": reason, "model": "claude-2.0",
            **extra}


@pytest.mark.parametrize(("raw", "expected"), [
    (ev(PING, "ping") + ev(compl(" Hi"), "completion") + ev(compl("", "stop_sequence"),
                                                            "completion"), []),
    (ev(compl(" Hi"), "completion"), ["stream.terminator"]),
    (ev(compl(" Hi")) + ev(compl("", "max_tokens"), "completion"), ["stream.event_name"]),
    (ev(compl(" Hi", "end_turn"), "completion"), ["stream.schema"]),
    (ev(compl(" Hi", "max_tokens"), "completion") + ev(compl(" more"), "completion"),
     ["stream.order"]),
    (ev(compl(" Hi", "max_tokens"), "completion") + b"data: [DONE]\n\n",
     ["stream.order"]),
    (ev(compl(" Hi"), "completion") + b"data: [DONE]\n\n", ["stream.terminator"]),
    (ev({"type": "error", "error": {"type": "api_error", "message": "x"}}, "error"),
     ["stream.error_event"]),
], ids=["good", "no stop_reason", "unnamed event", "messages stop reason", "after stop",
        "done after stop", "done instead of stop", "error"])
def test_complete(raw: bytes, expected: list[str]) -> None:
    grammar = anthropic_complete.StreamGrammar()
    assert sorted({f.check_id for f in check_stream_bytes(grammar, raw, "x")}) == expected


def test_complete_cumulative_before_2023_06_01() -> None:
    good = ev(compl(" Hi")) + ev(compl(" Hi there")) + ev(compl(" Hi there", "stop_sequence")) \
        + b"data: [DONE]\n\n"
    grammar = anthropic_complete.StreamGrammar(cumulative=True)
    assert check_stream_bytes(grammar, good, "x") == []
    assert grammar.text == " Hi there"
    bad = ev(compl(" Hi")) + ev(compl(" Bye", "stop_sequence"))
    grammar = anthropic_complete.StreamGrammar(cumulative=True)
    assert sorted({f.check_id for f in check_stream_bytes(grammar, bad, "x")}) == [
        "stream.schema", "stream.terminator"]


def test_complete_cumulative_text_under_the_2023_06_01_names() -> None:
    """Completion events that each repeat the text so far (the old format) under the new
    names: a client appending deltas would print it all again."""
    def stream(*texts: str) -> bytes:
        return b"".join(ev(compl(t), "completion") for t in texts[:-1]) + \
            ev(compl(texts[-1], "stop_sequence"), "completion")

    grammar = anthropic_complete.StreamGrammar()
    found = check_stream_bytes(grammar, stream(" Hi", " Hi there", " Hi there you", "!"), "x")
    assert [f.check_id for f in found] == ["stream.delta"]
    # Genuine deltas that once begin with the previous one are deltas all the same.
    grammar = anthropic_complete.StreamGrammar()
    assert check_stream_bytes(grammar, stream(" the", " theory", " holds", "."), "x") == []


# -- error envelopes ----------------------------------------------------------------------------
def test_parse_error_envelopes() -> None:
    openai = {"error": {"message": "m", "type": "invalid_request_error", "param": None,
                        "code": "c"}}
    assert openai_error(openai) is not None and openai_error(openai).code == "c"  # type: ignore[union-attr]
    assert openai_error({"error": {"message": "m"}}) is None
    assert openai_error({"type": "error", "error": {"type": "x", "message": "m"}}) is None
    anthropic = {"type": "error", "error": {"type": "not_found_error", "message": "model: x"},
                 "request_id": "req_1"}
    parsed = anthropic_error(anthropic)
    assert parsed is not None and parsed.type == "not_found_error" and parsed.request_id == "req_1"
    assert anthropic_error(openai) is None
    assert anthropic_error({"type": "error", "error": "flat string"}) is None


def test_grammar_for_rejects_unknown_paths() -> None:
    with pytest.raises(ValueError, match="no stream grammar"):
        grammar_for("/v1/embeddings", {})


def test_usage_key_left_out_before_the_usage_chunk_is_strict_upstream_only() -> None:
    """OpenAI sends ``usage: null`` on every chunk before the usage chunk; many compatible
    gateways leave the key out. Only a target held to the upstream letter is told so."""
    events = [*CHAT_OK, USAGE]  # no usage key on the chunks, then the usage chunk
    raw = b"".join(ev(e) for e in events) + b"data: [DONE]\n\n"
    body = {"stream_options": {"include_usage": True}}
    lenient = grammar_for("/v1/chat/completions", body)
    assert check_stream_bytes(lenient, raw, "x") == []
    strict = grammar_for("/v1/chat/completions", body, strict=True)
    assert {f.check_id for f in check_stream_bytes(strict, raw, "x")} == {"stream.usage"}
