"""Timed event streams: the reference gateway as the ground truth for latency measurement.

A streaming answer is planned in full before the first byte is sent (the fake model is
deterministic and instant), each event with the offset from the request's arrival at which it is
due. ``EventStreamResponse`` plays the plan: it sleeps until each deadline (absolute, so errors do
not accumulate), sends, and records the monotonic time right after the send returned. Those
records are the truth a measuring client is compared with: ``time.perf_counter_ns`` is
CLOCK_MONOTONIC on Linux, shared by every process on the machine.

A planned event may also carry a transport fault's action (reset, hang, repeat), which the
player carries out at its due time; ``hostile.py`` plans those and builds on this module, never
the other way round.
"""

from __future__ import annotations

import asyncio
import json
import socket
import struct
import time
from array import array
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from gateprobe.reference.capacity import Capacity


@dataclass(frozen=True, slots=True)
class PlannedEvent:
    """One SSE event of a planned stream."""

    data: bytes
    """The event's bytes on the wire, blank-line terminator included."""
    offset_ns: int
    """When it is due, counted from the request's arrival."""
    content: bool
    """Whether it carries generated content (counts for TTFT and inter-token latency)."""
    action: str = ""
    """For transport faults (``hostile.py``): ``reset`` the connection here, ``hang`` here
    (open, silent), or ``repeat`` this event's data forever (every ``REPEAT_EVERY_S``)."""


REPEAT_EVERY_S = 0.05
"""How often a ``repeat`` action sends its event again."""


@dataclass(slots=True)
class Trace:
    """What the server did for one request, in monotonic nanoseconds."""

    request_id: str
    endpoint: str
    t0_ns: int
    """When the request arrived: its first bytes were read (``server.ArrivalStampingProtocol``)."""
    # Arrays, not lists: thousands of kept traces stay out of the garbage collector's walk.
    scheduled_ns: array[int] = field(default_factory=lambda: array("q"))
    sent_ns: array[int] = field(default_factory=lambda: array("q"))
    content: array[int] = field(default_factory=lambda: array("b"))
    status: str = "open"
    """``open`` while streaming, then ``complete`` or ``disconnected``."""
    queued_ns: int = 0
    """How long it waited for a slot of the gateway's capacity (``reference/capacity.py``):
    its schedule starts that much after its arrival."""

    def as_json(self) -> dict[str, Any]:
        """JSON form served at ``/_gateprobe/traces/{request_id}``."""
        return {
            "request_id": self.request_id,
            "endpoint": self.endpoint,
            "t0_ns": self.t0_ns,
            "status": self.status,
            "queued_ns": self.queued_ns,
            "events": [
                {"scheduled_ns": s, "sent_ns": t, "content": bool(c)}
                for s, t, c in zip(self.scheduled_ns, self.sent_ns, self.content, strict=False)
            ],
        }


class TraceStore:
    """The traces of the most recent requests, bounded so a long load run cannot grow memory."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._traces: OrderedDict[str, Trace] = OrderedDict()

    def add(self, trace: Trace) -> None:
        """Keep ``trace``, dropping the oldest beyond capacity."""
        if self.capacity <= 0:
            return
        self._traces[trace.request_id] = trace
        while len(self._traces) > self.capacity:
            self._traces.popitem(last=False)

    def get(self, request_id: str) -> Trace | None:
        """The trace of a recent request."""
        return self._traces.get(request_id)

    def clear(self) -> None:
        """Forget every trace."""
        self._traces.clear()


def sse(data: str, event: str | None = None) -> bytes:
    """Frame one server-sent event: optional ``event:`` line, one ``data:`` line, blank line."""
    head = f"event: {event}\n" if event else ""
    return f"{head}data: {data}\n\n".encode()


HOLE = "\x00gateprobe-hole\x00"
"""Stands for the one varying string of a ``Template`` payload."""


class Template:
    """An SSE event whose JSON payload varies in one string value only (the token text).

    A 40-token stream has 40 nearly identical chunks; serializing the whole payload for each
    costs more than sending it. The payload is serialized once around ``HOLE``, and each event
    is then the two halves with the JSON-encoded value between them: byte for byte what
    ``sse(json.dumps(payload_with_value))`` would give.
    """

    def __init__(self, payload: Any, event: str | None = None) -> None:
        text = sse(json.dumps(payload, ensure_ascii=False), event).decode()
        before, marker, after = text.partition(json.dumps(HOLE, ensure_ascii=False))
        if not marker or marker in after:
            raise ValueError("a template payload holds HOLE exactly once")
        self._before, self._after = before.encode(), after.encode()

    def fill(self, value: str) -> bytes:
        """The event with ``value`` in the hole."""
        return self._before + json.dumps(value, ensure_ascii=False).encode() + self._after


def reset_connection(scope: Scope) -> None:
    """Abort the connection with a TCP reset (SO_LINGER 0), as a crashing proxy does.

    ASGI has no way to say this; uvicorn's ``send`` (kept in the scope by ``GatewayApp``) is a
    bound method of its request cycle, whose transport we reach for. A test double may lean on
    its server's internals.
    """
    cycle = getattr(scope.get("gateprobe.server_send"), "__self__", None)
    transport = getattr(cycle, "transport", None)
    if transport is None:
        raise RuntimeError("cannot reach the connection to reset it")
    sock = transport.get_extra_info("socket")
    if sock is not None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    transport.abort()


async def sleep_until(due_ns: int, spin_ns: int = 0) -> None:
    """Sleep until ``time.perf_counter_ns() >= due_ns``: never early, rarely more than a loop
    iteration late.

    Event-loop timers have millisecond resolution (uvloop's run on libuv's cached millisecond
    clock and were measured firing up to 1.3 ms *early*; asyncio rounds epoll timeouts up to the
    next millisecond). A latency ground truth needs better, so a timer covers the wait up to
    ``spin_ns`` before the deadline and the rest is waited by yielding one loop iteration at a
    time, during which every other stream and request keeps being served. That costs CPU (about
    a third more at 200 streams, measured): ``spin_ns=0`` relies on timers alone, re-checking
    after each wake-up so that nothing is ever sent early.
    """
    clock = time.perf_counter_ns
    while (wait := due_ns - clock()) > spin_ns:
        await asyncio.sleep((wait - spin_ns) / 1e9)
    while due_ns > clock():
        await asyncio.sleep(0)


class EventStreamResponse(Response):
    """Sends a planned event stream on schedule and records when each event left."""

    media_type = "text/event-stream"

    def __init__(
        self,
        plan: Sequence[PlannedEvent],
        trace: Trace,
        headers: Mapping[str, str] | None = None,
        on_close: Callable[[], None] | None = None,
        spin_ns: int = 0,
        gate: Capacity | None = None,
    ) -> None:
        self.plan = plan
        self.gate = gate
        """The gateway's serving capacity: the stream waits for a slot before its headers, and
        its schedule starts when it has one (``reference/capacity.py``)."""
        self._scope: Scope = {}
        self.spin_ns = spin_ns
        self.trace = trace
        self.status_code = 200
        self.background = None
        self._on_close = on_close
        # No compression and no proxy buffering: a buffered stream has no latency to measure.
        self.init_headers(
            {"cache-control": "no-cache", "x-accel-buffering": "no", **dict(headers or {})}
        )

    def abandon(self) -> None:
        """It will not be played (a fault answers instead): give back what it holds."""
        if self._on_close is not None:
            self._on_close()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        player = asyncio.current_task()
        disconnected = playing = False

        async def watch() -> None:
            # The body was read before the response started, so the next message is the
            # disconnect. uvicorn's spec-2.3 send() drops data after one instead of raising, and
            # the player may be asleep until a far deadline: wake it by cancelling it, but only
            # while it is inside _play, where the cancellation is caught.
            nonlocal disconnected
            while (await receive())["type"] != "http.disconnect":
                pass
            disconnected = True
            if playing and player is not None:
                player.cancel()

        watcher = asyncio.create_task(watch())
        holding = False
        try:
            if self.gate is not None and self.gate.slots:
                playing = True  # a client that leaves while queued leaves the queue
                queued_at = time.perf_counter_ns()
                await self.gate.acquire()
                holding = True
                self.trace.queued_ns = time.perf_counter_ns() - queued_at
                playing = False
            await send(
                {"type": "http.response.start", "status": 200, "headers": self.raw_headers}
            )
            playing = True
            self._scope = scope
            await self._play(send)
            playing = False
        except asyncio.CancelledError:
            playing = False
            if not disconnected or player is None:
                raise  # cancelled from outside (server shutdown): not ours to swallow
            player.uncancel()
            self.trace.status = "disconnected"
        finally:
            watcher.cancel()
            if holding and self.gate is not None:
                self.gate.release()
            if self._on_close is not None:
                self._on_close()

    async def _play(self, send: Send) -> None:
        trace = self.trace
        clock = time.perf_counter_ns
        plan = self.plan
        i = 0
        while i < len(plan):
            if plan[i].action:
                await self._act(plan[i], send)
                return
            # Events due at the same instant leave in one write, as a real server's do.
            j = i + 1
            while j < len(plan) and plan[j].offset_ns == plan[i].offset_ns \
                    and not plan[j].action:
                j += 1
            due = trace.t0_ns + trace.queued_ns + plan[i].offset_ns
            await sleep_until(due, self.spin_ns)
            body = plan[i].data if j == i + 1 else b"".join(e.data for e in plan[i:j])
            await send({"type": "http.response.body", "body": body, "more_body": True})
            sent = clock()
            for event in plan[i:j]:
                trace.scheduled_ns.append(due)
                trace.sent_ns.append(sent)
                trace.content.append(event.content)
            i = j
        await send({"type": "http.response.body", "body": b"", "more_body": False})
        trace.status = "complete"

    async def _act(self, event: PlannedEvent, send: Send) -> None:
        """A transport fault's action; ``hang`` and ``repeat`` end when the client leaves."""
        await sleep_until(self.trace.t0_ns + self.trace.queued_ns + event.offset_ns)
        self.trace.status = event.action
        if event.action == "reset":
            reset_connection(self._scope)
        elif event.action == "hang":
            await asyncio.Event().wait()
        elif event.action == "repeat":
            while True:
                await send({"type": "http.response.body", "body": event.data,
                            "more_body": True})
                await asyncio.sleep(REPEAT_EVERY_S)
