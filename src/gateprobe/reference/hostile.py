"""Transport-level faults: the reference gateway misbehaving below the protocol.

These are what a broken deployment does to a client: resets, hangs, streams that never end,
bodies too large to hold, bytes that are not UTF-8, HTML where JSON belongs, compression that
buffers a stream, redirects elsewhere, absurd ``Retry-After`` values, endless 429s. Each is a
named fault of ``faults.CATALOGUE`` (``proven_by="transport"``); ``app`` consults them around
each API request, and ``tests/test_transport_faults.py`` proves every runner survives
each one with a finding, an exit code and a bounded run time.
"""

from __future__ import annotations

import asyncio
import gzip
import json
from collections.abc import Sequence
from typing import Any

from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from gateprobe.reference.streaming import (
    EventStreamResponse,
    PlannedEvent,
    reset_connection,
    sleep_until,
)

HUGE_BODY_BYTES = 300 * 1024 * 1024
HUGE_RETRY_AFTER = "86400"
REDIRECT_HOST = "http://gateway.invalid"
TRICKLE_EVERY_S = 0.25


async def until_disconnect(receive: Receive) -> None:
    """Wait for the client to give up (the request body was read already)."""
    while (await receive())["type"] != "http.disconnect":
        pass


class ResetResponse(Response):
    """No answer at all: the connection is reset before any header."""

    def __init__(self) -> None:
        self.status_code = 0
        self.background = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        reset_connection(scope)


class SilentResponse(Response):
    """Headers that never come: the request hangs until the client gives up."""

    def __init__(self) -> None:
        self.status_code = 0
        self.background = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await until_disconnect(receive)


class StallingResponse(Response):
    """An answer's headers and half its body, then silence until the client leaves: a worker
    that died mid-write behind a proxy that keeps the connection open."""

    def __init__(self, answer: Response) -> None:
        self.status_code = answer.status_code
        self.background = None
        self.body = bytes(answer.body)
        self.raw_headers = answer.raw_headers  # Content-Length promises the whole body

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": self.status_code,
                    "headers": self.raw_headers})
        await send({"type": "http.response.body", "body": self.body[:len(self.body) // 2],
                    "more_body": True})
        await until_disconnect(receive)


class TricklingResponse(Response):
    """An answer one byte every ``TRICKLE_EVERY_S``: never silent for an idle timeout, never
    done within a total one (a congested link, or a proxy flushing byte by byte)."""

    def __init__(self, answer: Response) -> None:
        self.status_code = answer.status_code
        self.background = None
        self.body = bytes(answer.body)
        self.raw_headers = answer.raw_headers

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def trickle() -> None:
            await send({"type": "http.response.start", "status": self.status_code,
                        "headers": self.raw_headers})
            for i in range(len(self.body)):
                await send({"type": "http.response.body", "body": self.body[i:i + 1],
                            "more_body": i + 1 < len(self.body)})
                await asyncio.sleep(TRICKLE_EVERY_S)

        tasks = {asyncio.ensure_future(trickle()), asyncio.ensure_future(
            until_disconnect(receive))}
        done, pending = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        for task in pending:
            task.cancel()
        for task in done:
            task.result()


class HugeResponse(Response):
    """An answer of ``HUGE_BODY_BYTES`` (a JSON string's padding, or a stream's first event),
    produced as it is sent: never held in memory."""

    def __init__(self, media_type: str, head: bytes, fill: bytes, tail: bytes) -> None:
        self.status_code = 200
        self.background = None
        self.parts = head, fill * (1024 * 1024), tail
        self.init_headers({"content-type": media_type, "cache-control": "no-cache"})

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        head, chunk, tail = self.parts
        await send({"type": "http.response.start", "status": 200, "headers": self.raw_headers})
        await send({"type": "http.response.body", "body": head, "more_body": True})
        for _ in range(HUGE_BODY_BYTES // len(chunk)):
            await send({"type": "http.response.body", "body": chunk, "more_body": True})
            await asyncio.sleep(0)
        await send({"type": "http.response.body", "body": tail, "more_body": False})


def huge_json() -> HugeResponse:
    """300 MB of JSON."""
    return HugeResponse("application/json", b'{"padding": "', b" ", b'"}')


def huge_stream() -> HugeResponse:
    """An event stream whose first event is 300 MB long."""
    return HugeResponse("text/event-stream", b"data: ", b"a", b"\n\n")


class BufferedGzipStream(Response):
    """The whole event stream gzip-compressed and sent at once, when it is complete: what a
    compressing proxy in front of a streaming API does."""

    def __init__(self, stream: EventStreamResponse) -> None:
        self.stream = stream
        self.status_code = 200
        self.background = None
        headers = {k: v for k, v in stream.headers.items()
                   if k.lower() not in ("content-length", "content-encoding")}
        self.init_headers({**headers, "content-encoding": "gzip"})

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        plan = self.stream.plan
        last_due = self.stream.trace.t0_ns + (plan[-1].offset_ns if plan else 0)
        await sleep_until(last_due)
        body = gzip.compress(b"".join(e.data for e in plan))
        await send({"type": "http.response.start", "status": 200, "headers": self.raw_headers})
        await send({"type": "http.response.body", "body": body, "more_body": False})
        if self.stream._on_close is not None:
            self.stream._on_close()


def error_answer(family: str, status: int, message: str,
                 headers: dict[str, str], kind: str | None = None) -> Response:
    """An error in the family's envelope (typed ``kind``, or as the status deserves)."""
    if family == "anthropic":
        etype = kind or {429: "rate_limit_error", 503: "overloaded_error"}.get(status,
                                                                               "api_error")
        payload: dict[str, Any] = {"type": "error", "error": {"type": etype,
                                                              "message": message}}
    else:
        etype = kind or {429: "rate_limit_exceeded", 503: "server_error"}.get(status,
                                                                               "server_error")
        payload = {"error": {"message": message, "type": etype, "param": None, "code": kind}}
    return Response(json.dumps(payload), status_code=status, headers=headers,
                    media_type="application/json")


HTML_ERROR_PAGE = ("<html><head><title>502 Bad Gateway</title></head><body><center><h1>502 Bad "
                   "Gateway</h1></center><hr><center>nginx</center></body></html>")


# -- planned-stream transforms (the stream is played, then misbehaves) -------------------------
def _content(plan: Sequence[PlannedEvent]) -> list[int]:
    return [i for i, e in enumerate(plan) if e.content]


def reset_mid_stream(plan: list[PlannedEvent]) -> list[PlannedEvent]:
    """Half the content, then a reset."""
    half = _content(plan)[len(_content(plan)) // 2]
    return [*plan[:half], PlannedEvent(b"", plan[half].offset_ns, False, action="reset")]


def hang_open(plan: list[PlannedEvent]) -> list[PlannedEvent]:
    """Half the content, then nothing, the connection left open."""
    half = _content(plan)[len(_content(plan)) // 2]
    return [*plan[:half], PlannedEvent(b"", plan[half].offset_ns, False, action="hang")]


def endless(plan: list[PlannedEvent], data: bytes) -> list[PlannedEvent]:
    """The first content, then ``data`` again and again, forever."""
    first = _content(plan)[0]
    return [*plan[:first + 1], PlannedEvent(data, plan[first].offset_ns, False,
                                            action="repeat")]


def invalid_utf8(plan: list[PlannedEvent]) -> list[PlannedEvent]:
    """The first content event's data with two bytes that are not UTF-8."""
    first = _content(plan)[0]
    event = plan[first]
    bent = event.data.replace(b"data: ", b"data: \xff\xfe", 1)
    return [*plan[:first], PlannedEvent(bent, event.offset_ns, True), *plan[first + 1:]]


def html_line(plan: list[PlannedEvent]) -> list[PlannedEvent]:
    """An upstream error page pasted into the stream as a data line, halfway."""
    half = _content(plan)[len(_content(plan)) // 2]
    line = PlannedEvent(b"data: <html><body>upstream error</body></html>\n\n",
                        plan[half].offset_ns, False)
    return [*plan[:half], line, *plan[half:]]
