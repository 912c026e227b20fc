"""Tests of gateprobe.core.sse: one per WHATWG rule, then every split of every fixture stream."""

from __future__ import annotations

import pytest

from gateprobe.core.sse import BOM, Event, SSEParser, parse_all


def kinds(events: list[Event]) -> list[tuple[str, str]]:
    return [(e.type, e.data) for e in events]


def rules(body: bytes) -> list[str]:
    return [n.rule for n in parse_all(body)[1]]


# (id, stream bytes, expected (type, data) events, expected note rules)
CASES: list[tuple[str, bytes, list[tuple[str, str]], list[str]]] = [
    ("lf", b"data: a\n\ndata: b\n\n", [("message", "a"), ("message", "b")], []),
    ("crlf", b"data: a\r\n\r\ndata: b\r\n\r\n", [("message", "a"), ("message", "b")], []),
    ("cr", b"data: a\r\rdata: b\r\r", [("message", "a"), ("message", "b")], []),
    ("mixed line ends", b"data: a\r\n\ndata: b\r\r\n", [("message", "a"), ("message", "b")],
     []),
    ("event name", b"event: completion\ndata: {}\n\n", [("completion", "{}")], []),
    ("multi-line data joined with LF", b"data: a\ndata: b\ndata:\n\n",
     [("message", "a\nb\n")], []),
    ("only one leading space stripped", b"data:  two\n\n", [("message", " two")], []),
    ("no space after colon", b"data:x\n\n", [("message", "x")], []),
    ("comment ignored", b": keep-alive\ndata: a\n\n", [("message", "a")], []),
    ("comment only dispatches nothing", b": ping\n\n", [], []),
    ("field without colon is empty value", b"data\n\n", [("message", "")], ["sse.empty_data"]),
    ("event without data not dispatched", b"event: ping\n\ndata: a\n\n", [("message", "a")],
     ["sse.event_without_data"]),
    ("event type reset after dispatch", b"event: x\ndata: 1\n\ndata: 2\n\n",
     [("x", "1"), ("message", "2")], []),
    ("unknown field ignored", b"foo: bar\ndata: a\n\n", [("message", "a")],
     ["sse.unknown_field"]),
    ("leading BOM stripped once", BOM + b"data: a\n\n", [("message", "a")], ["sse.bom"]),
    ("second BOM is data", BOM + BOM + b"data: a\n\n", [], ["sse.bom", "sse.unknown_field"]),
    ("invalid utf-8 replaced", b"data: \xff\xfe\n\n", [("message", "\ufffd\ufffd")],
     ["sse.invalid_utf8"]),
    ("incomplete trailing event discarded", b"data: a\n\ndata: b\n", [("message", "a")],
     ["sse.incomplete_event"]),
    ("unicode data", "data: héllo ✓\n\n".encode(), [("message", "héllo ✓")], []),
    ("done terminator", b"data: {\"x\":1}\n\ndata: [DONE]\n\n",
     [("message", '{"x":1}'), ("message", "[DONE]")], []),
]


@pytest.mark.parametrize(("body", "expected", "notes"), [c[1:] for c in CASES],
                         ids=[c[0] for c in CASES])
def test_rule(body: bytes, expected: list[tuple[str, str]], notes: list[str]) -> None:
    events, found = parse_all(body)
    assert kinds(events) == expected
    assert [n.rule for n in found] == notes


@pytest.mark.parametrize(("body", "expected", "notes"), [c[1:] for c in CASES],
                         ids=[c[0] for c in CASES])
def test_every_two_way_split_gives_the_same_events(
    body: bytes, expected: list[tuple[str, str]], notes: list[str]
) -> None:
    for cut in range(len(body) + 1):
        parser = SSEParser()
        events = parser.feed(body[:cut], 1) + parser.feed(body[cut:], 2)
        parser.finish()
        assert kinds(events) == expected, f"split at {cut}"
        assert [n.rule for n in parser.notes] == notes, f"split at {cut}"


@pytest.mark.parametrize(("body", "expected", "notes"), [c[1:] for c in CASES],
                         ids=[c[0] for c in CASES])
def test_byte_at_a_time(body: bytes, expected: list[tuple[str, str]], notes: list[str]) -> None:
    parser = SSEParser()
    events = [e for i in range(len(body)) for e in parser.feed(body[i:i + 1], i)]
    parser.finish()
    assert kinds(events) == expected
    assert [n.rule for n in parser.notes] == notes


def test_cr_at_end_of_read_then_lf_is_one_line_end() -> None:
    parser = SSEParser()
    assert parser.feed(b"data: a\r", 0) == []
    events = parser.feed(b"\n\r\n", 1)
    assert kinds(events) == [("message", "a")]


def test_event_time_is_arrival_of_its_first_field_line() -> None:
    parser = SSEParser()
    assert parser.feed(b": keep-alive\n", 10) == []
    assert parser.feed(b"da", 20) == []
    assert parser.feed(b"ta: x\n", 30) == []
    [event] = parser.feed(b"\n", 40)
    assert event.t_ns == 20


def test_id_sets_last_event_id_and_is_kept() -> None:
    events, _ = parse_all(b"id: 7\ndata: a\n\ndata: b\n\n")
    assert [e.last_event_id for e in events] == ["7", "7"]


def test_id_with_nul_is_ignored() -> None:
    events, _ = parse_all(b"id: 1\ndata: a\n\nid: x\x00y\ndata: b\n\n")
    assert [e.last_event_id for e in events] == ["1", "1"]


@pytest.mark.parametrize(("line", "retry"), [(b"retry: 1500", 1500), (b"retry: 15x", None),
                                             (b"retry: -1", None), (b"retry: \xd9\xa3", None)])
def test_retry_only_when_all_ascii_digits(line: bytes, retry: int | None) -> None:
    parser = SSEParser()
    parser.feed(line + b"\n\n", 0)
    assert parser.retry_ms == retry


def test_short_stream_that_is_a_bom_prefix_is_not_lost() -> None:
    parser = SSEParser()
    assert parser.feed(b"\xef", 0) == []
    parser.finish()
    assert [n.rule for n in parser.notes] == ["sse.incomplete_event"]
