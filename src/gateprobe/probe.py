"""Sending a case to a target and recording the exchange, bounded in size and time.

Streams are read chunk by chunk through the project's SSE parser as they arrive. Bodies are read
with a size cap: a gateway that answers with several hundred MB gets a finding, not our memory.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import httpx

from gateprobe import transport
from gateprobe.cases import BAD_KEY, Case
from gateprobe.checks import Exchange
from gateprobe.sse import Event, SSEParser
from gateprobe.targets import Target, credentials

MAX_BODY_BYTES = 16 * 1024 * 1024
DEFAULT_TIMEOUT = httpx.Timeout(60.0, connect=10.0)
"""Client-wide fallback; each request sets its own from ``Target.timeouts``."""


def auth_headers(target: Target, case: Case) -> dict[str, str]:
    """The credentials a case sends: the profile's convention, or a deliberate mistake."""
    if case.auth == "none":
        return {}
    key = {"bad": BAD_KEY, "no_permission": target.no_permission_key}.get(case.auth,
                                                                           target.api_key)
    assert key is not None, "no_permission cases exist only with a no-permission key"
    headers = credentials(target.profile, case.family, key)
    if case.auth == "wrong_style":  # the other convention, on purpose
        return {"authorization": f"Bearer {key}"} if "x-api-key" in headers \
            else {"x-api-key": key}
    return headers


MAX_RETRIES_429 = 2
MAX_RETRY_AFTER_S = 10.0
BREAKER_THRESHOLD = 3
"""After this many timeouts of one kind of request (streaming or not) against one target, the
rest of that kind is not sent: a gateway that hangs must not cost the whole run its timeouts."""


class Breaker:
    """Counts timeouts per (target, streaming) and opens after ``BREAKER_THRESHOLD``."""

    def __init__(self) -> None:
        self._timeouts: dict[tuple[str, bool], int] = {}
        self._limited: dict[str, int] = {}
        self._lock = threading.Lock()

    def still_waits_for_429(self, base_url: str) -> bool:
        """Whether an unasked 429 is still worth waiting out (not after it never helped)."""
        with self._lock:
            return self._limited.get(base_url, 0) < BREAKER_THRESHOLD

    def record_429(self, base_url: str) -> None:
        """A case stayed 429 after waiting ``Retry-After`` every time."""
        with self._lock:
            self._limited[base_url] = self._limited.get(base_url, 0) + 1

    def is_open(self, base_url: str, streaming: bool) -> bool:
        """Whether such requests are no longer sent."""
        with self._lock:
            return self._timeouts.get((base_url, streaming), 0) >= BREAKER_THRESHOLD

    def record(self, base_url: str, streaming: bool, kind: str) -> None:
        """Count a transport failure if it was a timeout."""
        if kind.endswith("timeout"):
            with self._lock:
                key = (base_url, streaming)
                self._timeouts[key] = self._timeouts.get(key, 0) + 1


BREAKER = Breaker()
"""Shared by every send of the process (one run, one target at a time, or mirrors by URL)."""


def send(client: httpx.Client, target: Target, case: Case,
         sleep: Callable[[float], None] = time.sleep) -> Exchange:
    """Send ``case``; a 429 it did not ask for is waited out (``Retry-After``, capped) and
    retried, because real gateways rate-limit every route and our own pace is not their fault.
    """
    for _ in range(MAX_RETRIES_429):
        exchange = _send_once(client, target, case)
        if exchange.status != 429 or case.expect.status == 429 or \
                not BREAKER.still_waits_for_429(target.base_url):
            return exchange
        sleep(min(_retry_after(exchange), MAX_RETRY_AFTER_S))
    exchange = _send_once(client, target, case)
    if exchange.status == 429:
        BREAKER.record_429(target.base_url)
    return exchange


def _retry_after(exchange: Exchange) -> float:
    try:
        return max(0.0, float(exchange.headers.get("retry-after", "1")))
    except ValueError:
        return 1.0


def is_streaming(case: Case) -> bool:
    """Whether the case asks for an event stream."""
    return isinstance(case.body, dict) and bool(case.body.get("stream"))


def _send_once(client: httpx.Client, target: Target, case: Case) -> Exchange:
    """Send ``case`` and record everything that came back, within the target's timeouts:
    connect, first byte (the headers), idle (between two reads) and total (checked at every
    read, so a run ends at most one idle period after its total)."""
    headers = {**auth_headers(target, case), **case.headers}
    if case.family == "anthropic":
        headers.setdefault("anthropic-version", "2023-06-01")
    kwargs: dict[str, Any] = {}
    if isinstance(case.body, bytes):
        kwargs["content"] = case.body
        headers["content-type"] = "application/json"
    elif case.body is not None:
        kwargs["json"] = case.body
    url = target.base_url + case.path
    t = target.timeouts
    streaming = is_streaming(case)
    if BREAKER.is_open(target.base_url, streaming):
        return Exchange(case.path, case.method, case.body, None,
                        transport_error=f"not sent: {BREAKER_THRESHOLD} earlier "
                                        f"{'streaming' if streaming else 'plain'} requests to "
                                        "this target timed out",
                        transport_kind=transport.SKIPPED)
    deadline = time.monotonic() + t.total_s
    timeout = httpx.Timeout(connect=t.connect_s, read=t.first_byte_s, write=t.idle_s,
                            pool=t.connect_s)
    got_headers = False
    try:
        with client.stream(case.method, url, headers=headers, timeout=timeout,
                           **kwargs) as response:
            got_headers = True
            # httpcore reads the read timeout when the body starts: from here on, idle.
            response.request.extensions.get("timeout", {})["read"] = t.idle_s
            body, events, parser = bytearray(), list[Event](), SSEParser()
            is_sse = response.headers.get("content-type", "").startswith("text/event-stream")
            for chunk in response.iter_bytes():
                body += chunk
                if is_sse:
                    events += parser.feed(chunk, time.perf_counter_ns())
                if len(body) > MAX_BODY_BYTES:
                    return _exchange(case, response, bytes(body[:MAX_BODY_BYTES]), events,
                                     parser, f"body larger than {MAX_BODY_BYTES} bytes: "
                                     "stopped reading", transport.TOO_LARGE)
                if time.monotonic() > deadline:
                    kind = transport.total_timeout(is_sse)
                    BREAKER.record(target.base_url, streaming, kind)
                    return _exchange(case, response, bytes(body), events, parser,
                                     f"still sending after the total timeout of "
                                     f"{t.total_s:g} s: stopped reading", kind)
            parser.finish()
            return _exchange(case, response, bytes(body), events, parser, None)
    except httpx.HTTPError as exc:
        kind = transport.classify(exc, got_headers=got_headers, streaming=streaming)
        BREAKER.record(target.base_url, streaming, kind)
        what = {transport.FIRST_BYTE_TIMEOUT: f"no answer within {t.first_byte_s:g} s",
                transport.IDLE_TIMEOUT: f"silent for {t.idle_s:g} s mid-answer",
                transport.STREAM_IDLE_TIMEOUT: f"silent for {t.idle_s:g} s mid-stream",
                transport.CONNECT_TIMEOUT: f"no connection within {t.connect_s:g} s",
                }.get(kind, "")
        detail = f"{type(exc).__name__}: {exc}"
        return Exchange(case.path, case.method, case.body, None,
                        transport_error=f"{what} ({detail})" if what else detail,
                        transport_kind=kind)


def _exchange(case: Case, response: httpx.Response, body: bytes, events: list[Event],
              parser: SSEParser, problem: str | None,
              kind: str = "transport.error") -> Exchange:
    headers = {k.lower(): v for k, v in response.headers.items()}
    return Exchange(case.path, case.method, case.body, response.status_code, headers, body,
                    events, parser.notes, problem, kind)
