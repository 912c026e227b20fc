"""Tests of the one metric definition: percentiles, one stream's timings, and aggregates."""

from __future__ import annotations

import math

import pytest

from gateprobe.core.metrics import NS_PER_MS, StreamMeter, aggregate, percentile, summarize
from gateprobe.core.sse import Event
from gateprobe.protocols.streams import ContentReader, StreamObserver


@pytest.mark.parametrize(("q", "expected"), [(0, 1), (25, 1.75), (50, 2.5), (90, 3.7),
                                             (100, 4)])
def test_linear_interpolation_between_ranks(q: float, expected: float) -> None:
    assert percentile([4, 1, 3, 2], q) == pytest.approx(expected)


def test_single_sample_and_empty() -> None:
    assert percentile([7.0], 99) == 7.0
    assert math.isnan(percentile([], 50))


def test_out_of_range_percentile_is_an_error() -> None:
    with pytest.raises(ValueError, match="0..100"):
        percentile([1.0], 101)


def test_summarize() -> None:
    s = summarize(range(1, 101))
    assert s["count"] == 100 and s["mean"] == 50.5 and s["max"] == 100
    assert s["p50"] == pytest.approx(50.5) and s["p99"] == pytest.approx(99.01)


MS = NS_PER_MS


def test_ttft_ignores_events_without_content_but_ttfb_does_not() -> None:
    meter = StreamMeter(start_ns=0)
    meter.first_byte(1 * MS)
    meter.event(1 * MS, "")  # role-only / empty chunk flushed early
    meter.event(2 * MS, "", usage_output_tokens=None)  # ping, message_start
    meter.event(100 * MS, "Hello")
    meter.event(110 * MS, " world")
    meter.event(130 * MS, " again")
    meter.event(140 * MS, "")  # finish chunk
    meter.end(150 * MS)
    m = meter.result()
    assert m.ttfb_ms == 1 and m.ttft_ms == 100 and m.e2e_ms == 130 and m.end_ms == 150
    assert m.itl_ms == [10, 20] and m.content_events == 3


def test_tokens_come_from_usage_when_given_else_from_the_tokenizer() -> None:
    counted = StreamMeter(0)
    counted.event(10 * MS, "Hello world, again")  # one chunk, several tokens
    counted.event(20 * MS, " and again")
    m = counted.result()
    assert m.tokens_source == "gp-pretok-v1"
    assert m.output_tokens == 6  # Hello, " world", ",", " again", " and", " again"
    assert m.tpot_ms == pytest.approx((20 - 10) / 5)

    reported = StreamMeter(0)
    reported.event(10 * MS, "Hello")
    reported.event(20 * MS, " world")
    reported.event(25 * MS, "", usage_output_tokens=11)  # a trailing usage chunk
    m = reported.result()
    assert m.tokens_source == "usage" and m.output_tokens == 11 and m.e2e_ms == 20
    assert m.tpot_ms == pytest.approx(1.0) and m.tokens_per_s == pytest.approx(550)


def test_one_token_or_no_content_has_no_tpot() -> None:
    one = StreamMeter(0)
    one.event(5 * MS, "Hi")
    assert one.result().tpot_ms is None and one.result().ttft_ms == 5
    empty = StreamMeter(0).result()
    assert empty.ttft_ms is None and empty.tokens_per_s is None and empty.output_tokens == 0


def test_aggregate_uses_raw_samples() -> None:
    samples = [{"ttft_ms": float(v), "itl_ms": [1.0, 2.0], "output_tokens": 10, "ok": v != 4,
                "ttfb_ms": None, "tpot_ms": None, "e2e_ms": None, "tokens_per_s": None}
               for v in range(1, 5)]
    out = aggregate(samples, wall_s=2.0)
    assert out["ttft_ms"]["p50"] == pytest.approx(2.5) and out["ttft_ms"]["count"] == 4
    assert out["ttfb_ms"]["count"] == 0 and math.isnan(out["ttfb_ms"]["p50"])
    assert out["itl_ms"]["count"] == 8 and out["errors"] == 1 and out["error_rate"] == 0.25
    assert out["overall_tokens_per_s"] == 20


def ev(data: str, event: str = "message") -> Event:
    return Event(event, data, "", 0)


@pytest.mark.parametrize(("path", "data", "expected"), [
    ("/v1/chat/completions", '{"choices":[{"delta":{"role":"assistant","content":""}}]}',
     ("", None)),
    ("/v1/chat/completions", '{"choices":[{"delta":{"content":"Hi"}}],"usage":null}',
     ("Hi", None)),
    ("/v1/chat/completions", '{"choices":[],"usage":{"completion_tokens":7}}', ("", 7)),
    ("/v1/chat/completions", "[DONE]", ("", None)),
    ("/v1/completions", '{"choices":[{"text":"Hi"}]}', ("Hi", None)),
    ("/v1/messages", '{"type":"content_block_delta","delta":{"type":"text_delta","text":"Hi"}}',
     ("Hi", None)),
    ("/v1/messages", '{"type":"content_block_delta","delta":{"partial_json":"{\\"a\\""}}',
     ('{"a"', None)),
    ("/v1/messages", '{"type":"message_start","message":{"usage":{"output_tokens":1}}}',
     ("", None)),
    ("/v1/messages", '{"type":"message_delta","usage":{"output_tokens":12}}', ("", 12)),
    ("/v1/complete", '{"type":"completion","completion":" Hi"}', (" Hi", None)),
    ("/v1/complete", "{broken", ("", None)),
])
def test_content_reader_per_protocol(path: str, data: str,
                                     expected: tuple[str, int | None]) -> None:
    assert ContentReader(path).read(ev(data)) == expected


def test_content_reader_makes_cumulative_completions_incremental() -> None:
    reader = ContentReader("/v1/complete", anthropic_version="2023-01-01")
    texts = [reader.read(ev(f'{{"completion":"{t}"}}'))[0] for t in ("Hel", "Hello", "Hello!")]
    assert texts == ["Hel", "lo", "!"]


def test_observer_times_parses_and_checks_a_real_stream(client: object) -> None:
    import httpx

    from gateprobe.core.metrics import now_ns

    assert isinstance(client, httpx.Client)
    body = {"model": "gpt-3.5-turbo", "stream": True, "max_tokens": 8,
            "stream_options": {"include_usage": True},
            "messages": [{"role": "user", "content": "Hello"}]}
    start = now_ns()
    observer = StreamObserver("/v1/chat/completions", body, start)
    with client.stream("POST", "/v1/chat/completions", json=body) as response:
        for chunk in response.iter_raw():
            observer.feed(chunk, now_ns())
    m = observer.finish(now_ns())
    assert observer.findings == []
    assert m.tokens_source == "usage" and m.output_tokens == 8 and m.content_events == 8
    assert m.ttfb_ms is not None and m.ttft_ms is not None and m.e2e_ms is not None
    assert 5 <= m.ttft_ms < m.e2e_ms <= (m.end_ms or 0)  # FAST timing: TTFT 5 ms


def test_observer_reports_grammar_findings() -> None:
    observer = StreamObserver("/v1/chat/completions", {"stream": True}, 0)
    observer.feed(b'data: {"object":"chat.completion.chunk","id":"x","created":1,"model":"m",'
                  b'"choices":[{"index":0,"delta":{"content":"Hi"},"finish_reason":null}]}\n\n',
                  5 * MS)
    m = observer.finish(6 * MS)
    assert "stream.terminator" in {f.check_id for f in observer.findings}
    assert m.ttft_ms == 5
