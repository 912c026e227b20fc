"""One Realtime session, as a client runs it: handshake, a text turn, an error, bounded.

A real WebSocket client (``websockets``, sync API) opens ``/v1/realtime?model=...`` with the
target's Bearer key and ``OpenAI-Beta: realtime=v1``, asks one text answer, then sends one
malformed event so that the error event is seen too (and anything a gateway sends after a
``response.done`` arrives before it). Every server event is recorded with its arrival time; a
refused handshake is recorded with its HTTP status and body. The whole session is bounded by
the target's total timeout, each read by its idle timeout.
"""

from __future__ import annotations

import json
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import quote

from websockets.exceptions import InvalidStatus, WebSocketException
from websockets.sync.client import ClientConnection, connect

from gateprobe.core import transport
from gateprobe.core.checks import Context, Exchange, Expectation, run_checks, select
from gateprobe.core.findings import Finding
from gateprobe.core.sse import Event
from gateprobe.core.targets import Target, trusted_cas
from gateprobe.engine.cases import BAD_KEY
from gateprobe.protocols.realtime import (
    ENDPOINT,
    HANDSHAKE_CHECKS,
    SESSION_CHECKS,
    first_delta_ns,
)

MAX_MESSAGE_BYTES = 16 * 1024 * 1024
SessionAuth = Literal["default", "bad", "none"]


@dataclass(frozen=True, slots=True)
class SessionResult:
    """The session as an exchange (its events the server's), and the time to the first delta."""

    exchange: Exchange
    first_delta_ms: float | None
    """From sending ``response.create`` to the first text or audio delta (None: none came)."""


def judge(target: Target, result: SessionResult, kind: str = "") -> list[Finding]:
    """The session's findings: its events when it opened, its refusal when ``kind`` says it
    must be refused (``bad_key``, ``missing_key``, ``bad_model``)."""
    import gateprobe.protocols.conformance  # noqa: F401  (registers the built-in checks)

    exchange = result.exchange
    expect = Expectation(401 if kind.endswith("_key") else None, kind=kind)
    names = HANDSHAKE_CHECKS if kind else SESSION_CHECKS
    checks = [*select(names), *select(["transport.error"])]
    return run_checks(Context.of(target, "openai", expect), exchange, checks)


def _url(target: Target, model: str) -> str:
    base = target.base_url.replace("https://", "wss://", 1).replace("http://", "ws://", 1)
    return f"{base}{ENDPOINT}?model={quote(model)}"


def _ssl(target: Target) -> ssl.SSLContext | None:
    if not target.base_url.startswith("https://"):
        return None
    cafile, capath = trusted_cas()
    return ssl.create_default_context(cafile=cafile, capath=capath)


def run_session(target: Target, model: str, auth: SessionAuth = "default",
                prompt: str = "Say test") -> SessionResult:
    """Open a session, ask one answer, provoke one error; everything the server said."""
    key = {"default": target.api_key, "bad": BAD_KEY, "none": ""}[auth]
    headers = {"OpenAI-Beta": "realtime=v1", **({"Authorization": f"Bearer {key}"} if key
                                                 else {})}
    t = target.timeouts
    deadline = time.monotonic() + t.total_s
    events: list[Event] = []
    sent_ns = 0
    base = Exchange(ENDPOINT, "GET", {"model": model}, None, sent_key=key)
    try:
        with connect(_url(target, model), additional_headers=headers, ssl=_ssl(target),
                     open_timeout=t.connect_s + t.first_byte_s, max_size=MAX_MESSAGE_BYTES,
                     close_timeout=1) as ws:
            ws.send(json.dumps({"type": "conversation.item.create", "item": {
                "type": "message", "role": "user",
                "content": [{"type": "input_text", "text": prompt}]}}))
            ws.send(json.dumps({"type": "response.create",
                                "response": {"modalities": ["text"]}}))
            sent_ns = time.perf_counter_ns()
            _read_until(ws, events, {"response.done", "error"}, deadline, t.idle_s)
            ws.send("{not json")
            _read_until(ws, events, {"error"}, deadline, t.idle_s)
            response_headers = dict(ws.response.headers.raw_items()) if ws.response else {}
    except InvalidStatus as exc:
        return SessionResult(_refused(base, exc), None)
    except (TimeoutError, OSError, WebSocketException) as exc:
        kind = transport.STREAM_TOTAL_TIMEOUT if time.monotonic() > deadline else \
            transport.classify(exc, got_headers=bool(events), streaming=True)
        return SessionResult(_with(base, 101 if events else None, events,
                                   transport_error=f"{type(exc).__name__}: {exc}",
                                   transport_kind=kind), None)
    first = first_delta_ns(events)
    return SessionResult(
        _with(base, 101, events, headers={k.lower(): v for k, v in response_headers.items()}),
        (first - sent_ns) / 1e6 if first is not None else None)


def handshake(target: Target, model: str) -> Exchange:
    """Open a session and close it at once, asking nothing (so nothing is generated): 101
    when the route takes the WebSocket, else the HTTP answer that refused it, or the
    transport symptom (``discover`` asks whether the Realtime API is served this way)."""
    headers = {"OpenAI-Beta": "realtime=v1", "Authorization": f"Bearer {target.api_key}"}
    t = target.timeouts
    base = Exchange(ENDPOINT, "GET", {"model": model}, None, sent_key=target.api_key)
    try:
        with connect(_url(target, model), additional_headers=headers, ssl=_ssl(target),
                     open_timeout=t.connect_s + t.first_byte_s, max_size=MAX_MESSAGE_BYTES,
                     close_timeout=1) as ws:
            response_headers = dict(ws.response.headers.raw_items()) if ws.response else {}
    except InvalidStatus as exc:
        return _refused(base, exc)
    except (TimeoutError, OSError, WebSocketException) as exc:
        return _with(base, None, [], transport_error=f"{type(exc).__name__}: {exc}",
                     transport_kind=transport.classify(exc, got_headers=False,
                                                       streaming=True))
    return _with(base, 101, [], headers={k.lower(): v for k, v in response_headers.items()})


def _read_until(ws: ClientConnection, events: list[Event], types: set[str], deadline: float,
                idle_s: float, clock: Callable[[], float] = time.monotonic) -> None:
    """Record server events until one of ``types`` (or raise ``TimeoutError``)."""
    while True:
        left = deadline - clock()
        if left <= 0:
            raise TimeoutError("the session outlasted the total timeout")
        raw = ws.recv(timeout=min(left, idle_s))
        text = raw if isinstance(raw, str) else raw.decode("utf-8", "replace")
        try:
            kind = json.loads(text).get("type")
        except (ValueError, AttributeError):
            kind = None
        events.append(Event(kind if isinstance(kind, str) else "message", text, "",
                            time.perf_counter_ns()))
        if kind in types:
            return


def _refused(base: Exchange, exc: InvalidStatus) -> Exchange:
    response = exc.response
    headers = {k.lower(): v for k, v in response.headers.raw_items()}
    return _with(base, response.status_code, [], headers=headers, body=response.body or b"")


def _with(base: Exchange, status: int | None, events: list[Event], **changes: Any) -> Exchange:
    from dataclasses import replace

    return replace(base, status=status, events=events, **changes)
