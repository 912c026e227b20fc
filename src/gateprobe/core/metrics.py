"""Latency metric definitions, written once and used by every runner and benchmark.

The clock is ``time.perf_counter_ns``; a request's start is stamped immediately before it is
sent. TTFT ends at the first event carrying generated content, e2e at the last one; TPOT is
``(e2e - TTFT) / (tokens - 1)``; ITL is the list of gaps between content events; output tokens
come from the response's usage when it has one, else from the offline tokenizer.

Percentiles are computed from raw samples (never from a bucketed histogram such as Locust's,
which rounds), by linear interpolation between the two nearest ranks: Hyndman and Fan's type 7,
the default of numpy and of most spreadsheets, so numbers can be checked by hand.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from gateprobe.core.tokenizer import NAME as TOKENIZER_NAME
from gateprobe.core.tokenizer import count_tokens

STANDARD_PERCENTILES = (50.0, 90.0, 95.0, 99.0)


def percentile(samples: Sequence[float], q: float) -> float:
    """The ``q``-th percentile (0..100) of ``samples``; NaN when there are none."""
    if not 0 <= q <= 100:
        raise ValueError(f"percentile must be within 0..100, got {q}")
    if not samples:
        return math.nan
    ordered = sorted(samples)
    rank = (len(ordered) - 1) * q / 100
    low = math.floor(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def summarize(samples: Iterable[float],
              qs: Sequence[float] = STANDARD_PERCENTILES) -> dict[str, float]:
    """Count, mean, the standard percentiles and the maximum of ``samples``."""
    data = sorted(samples)
    out: dict[str, float] = {"count": float(len(data))}
    out["mean"] = sum(data) / len(data) if data else math.nan
    for q in qs:
        out[f"p{q:g}"] = percentile(data, q)
    out["max"] = data[-1] if data else math.nan
    return out


# -- one streaming request ---------------------------------------------------------------------
NS_PER_MS = 1_000_000


def now_ns() -> int:
    """The one clock of every measurement: monotonic, nanoseconds, unaffected by NTP steps."""
    return time.perf_counter_ns()


@dataclass(slots=True)
class StreamMetrics:
    """What one streaming request measured, in milliseconds from the moment it was sent.

    Only content events count: events carrying generated text, reasoning or tool-call input.
    A role-only chunk, an empty-content chunk, a usage-only chunk, ``ping`` or
    ``message_start`` moves ``ttfb_ms`` but never ``ttft_ms``, so a gateway that flushes an
    empty chunk early to look fast is visible as a gap between the two.
    """

    ttfb_ms: float | None
    """Time to the first body byte."""
    ttft_ms: float | None
    """Time to the first content event."""
    e2e_ms: float | None
    """Time to the last content event (trailing usage chunk and terminator excluded)."""
    end_ms: float | None
    """Time to the end of the stream, terminator included."""
    output_tokens: int
    """Tokens generated: the response's usage when it reports them, else counted by the
    offline tokenizer (a chunk of several tokens counts as several)."""
    tokens_source: str
    """``usage`` (the response said) or the offline tokenizer's name (we counted)."""
    itl_ms: list[float]
    """Gaps between consecutive content events."""
    content_events: int
    """How many events carried generated content."""

    @property
    def tpot_ms(self) -> float | None:
        """(e2e - TTFT) / (tokens - 1): the mean time per output token after the first."""
        if self.ttft_ms is None or self.e2e_ms is None or self.output_tokens < 2:
            return None
        return (self.e2e_ms - self.ttft_ms) / (self.output_tokens - 1)

    @property
    def tokens_per_s(self) -> float | None:
        """Output tokens per second of this request, over its e2e time."""
        if not self.e2e_ms or not self.output_tokens:
            return None
        return self.output_tokens / (self.e2e_ms / 1000)

    def as_json(self) -> dict[str, Any]:
        """Flat JSON form: one line of the raw samples file."""
        return {"ttfb_ms": self.ttfb_ms, "ttft_ms": self.ttft_ms, "tpot_ms": self.tpot_ms,
                "e2e_ms": self.e2e_ms, "end_ms": self.end_ms,
                "output_tokens": self.output_tokens, "tokens_source": self.tokens_source,
                "tokens_per_s": self.tokens_per_s, "content_events": self.content_events,
                "itl_ms": self.itl_ms}


class StreamMeter:
    """Accumulates one stream's timings as its bytes and events arrive.

    Callers stamp ``start_ns`` with ``now_ns()`` immediately before sending the request, then
    report the first byte, every event's generated text (and usage, when the event carries it)
    with the receive time the SSE parser stamped, and the end of the stream.
    """

    __slots__ = ("_counted", "_first_byte", "_first", "_last", "_end", "_gaps", "_events",
                 "_usage", "start_ns")

    def __init__(self, start_ns: int) -> None:
        self.start_ns = start_ns
        self._first_byte: int | None = None
        self._first: int | None = None
        self._last: int | None = None
        self._end: int | None = None
        self._gaps: list[int] = []
        self._events = 0
        self._counted = 0
        self._usage: int | None = None

    def first_byte(self, t_ns: int) -> None:
        """A body byte arrived (only the first call counts)."""
        if self._first_byte is None:
            self._first_byte = t_ns

    def event(self, t_ns: int, text: str, usage_output_tokens: int | None = None) -> None:
        """One SSE event arrived carrying ``text`` (may be empty) and perhaps a usage count."""
        if usage_output_tokens is not None:
            self._usage = usage_output_tokens  # the last report wins: Anthropic's is cumulative
        if not text:
            return
        if self._first is None:
            self._first = t_ns
        elif self._last is not None:
            self._gaps.append(t_ns - self._last)
        self._last = t_ns
        self._events += 1
        # A chunk with several tokens counts as several: never "one token per chunk".
        self._counted += max(1, count_tokens(text))

    @property
    def content_events(self) -> int:
        """How many events carrying generated content have arrived."""
        return self._events

    def end(self, t_ns: int) -> None:
        """The stream ended (cleanly or not)."""
        self._end = t_ns

    def result(self) -> StreamMetrics:
        """The metrics of what arrived so far."""
        def ms(t: int | None) -> float | None:
            return None if t is None else (t - self.start_ns) / NS_PER_MS

        tokens, source = (self._usage, "usage") if self._usage is not None \
            else (self._counted, TOKENIZER_NAME)
        return StreamMetrics(ms(self._first_byte), ms(self._first), ms(self._last),
                             ms(self._end), tokens, source,
                             [g / NS_PER_MS for g in self._gaps], self._events)


# -- many requests -----------------------------------------------------------------------------
LATENCY_FIELDS = ("ttfb_ms", "ttft_ms", "tpot_ms", "e2e_ms", "tokens_per_s")


def aggregate(samples: Sequence[Mapping[str, Any]], wall_s: float | None = None,
              ) -> dict[str, Any]:
    """Summaries of raw sample lines (``StreamMetrics.as_json`` plus ``ok``): each metric's
    percentiles over the requests that have it, ITL over every gap of every request, and
    overall output tokens per second over ``wall_s`` when given."""
    out: dict[str, Any] = {}
    for name in LATENCY_FIELDS:
        out[name] = summarize(s[name] for s in samples if s.get(name) is not None)
    out["itl_ms"] = summarize(g for s in samples for g in s.get("itl_ms") or ())
    tokens = sum(int(s.get("output_tokens") or 0) for s in samples)
    out["output_tokens"] = tokens
    out["requests"] = len(samples)
    out["errors"] = sum(not s.get("ok", True) for s in samples)
    out["error_rate"] = out["errors"] / len(samples) if samples else 0.0
    if wall_s:
        out["overall_tokens_per_s"] = tokens / wall_s
    return out


def finite(value: Any) -> Any:
    """``value`` with every NaN or infinity (a percentile of no samples) as None, inside
    dicts and lists too: JSON has neither, and a reader must not mistake "no data" for a
    number."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [finite(v) for v in value]
    return value
