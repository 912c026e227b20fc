"""One Realtime session, as a client runs it: handshake, a text turn, an error, bounded.

A real WebSocket client (``websockets``, sync API) opens ``/v1/realtime?model=...`` with the
target's Bearer key and ``OpenAI-Beta: realtime=v1``, asks one text answer, then sends one
malformed event so that the error event is seen too (and anything a gateway sends after a
``response.done`` arrives before it). Every server event is recorded with its arrival time; a
refused handshake is recorded with its HTTP status and body. The session is bounded as every
other exchange (``probe.Bounds``): the handshake by the connect and first-byte timeouts, each
read by the idle timeout, the whole session by the total timeout, and each message and all of
them together by the body cap.
"""

from __future__ import annotations

import json
import ssl
import time
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
from gateprobe.engine.probe import Bounds, OutOfBounds
from gateprobe.protocols.realtime import (
    ENDPOINT,
    HANDSHAKE_CHECKS,
    SESSION_CHECKS,
    first_delta_ns,
)

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
    bounds = Bounds(target.timeouts)
    events: list[Event] = []
    sent_ns = 0
    base = Exchange(ENDPOINT, "GET", {"model": model}, None, sent_key=key)
    try:
        with connect(_url(target, model), additional_headers=headers, ssl=_ssl(target),
                     open_timeout=bounds.open_s, max_size=bounds.max_body,
                     close_timeout=1) as ws:
            ws.send(json.dumps({"type": "conversation.item.create", "item": {
                "type": "message", "role": "user",
                "content": [{"type": "input_text", "text": prompt}]}}))
            ws.send(json.dumps({"type": "response.create",
                                "response": {"modalities": ["text"]}}))
            sent_ns = time.perf_counter_ns()
            _read_until(ws, events, {"response.done", "error"}, bounds)
            ws.send("{not json")
            _read_until(ws, events, {"error"}, bounds)
            response_headers = dict(ws.response.headers.raw_items()) if ws.response else {}
    except InvalidStatus as exc:
        return SessionResult(_refused(base, exc), None)
    except (TimeoutError, OSError, WebSocketException, OutOfBounds) as exc:
        return SessionResult(_with(base, 101 if events else None, events,
                                   transport_error=f"{type(exc).__name__}: {exc}",
                                   transport_kind=_kind(exc, bounds, bool(events))), None)
    first = first_delta_ns(events)
    return SessionResult(
        _with(base, 101, events, headers={k.lower(): v for k, v in response_headers.items()}),
        (first - sent_ns) / 1e6 if first is not None else None)


def handshake(target: Target, model: str) -> Exchange:
    """Open a session and close it at once, asking nothing (so nothing is generated): 101
    when the route takes the WebSocket, else the HTTP answer that refused it, or the
    transport symptom (``discover`` asks whether the Realtime API is served this way)."""
    headers = {"OpenAI-Beta": "realtime=v1", "Authorization": f"Bearer {target.api_key}"}
    bounds = Bounds(target.timeouts)
    base = Exchange(ENDPOINT, "GET", {"model": model}, None, sent_key=target.api_key)
    try:
        with connect(_url(target, model), additional_headers=headers, ssl=_ssl(target),
                     open_timeout=bounds.open_s, max_size=bounds.max_body,
                     close_timeout=1) as ws:
            response_headers = dict(ws.response.headers.raw_items()) if ws.response else {}
    except InvalidStatus as exc:
        return _refused(base, exc)
    except (TimeoutError, OSError, WebSocketException) as exc:
        return _with(base, None, [], transport_error=f"{type(exc).__name__}: {exc}",
                     transport_kind=transport.classify(exc, got_headers=False,
                                                       streaming=True))
    return _with(base, 101, [], headers={k.lower(): v for k, v in response_headers.items()})


def _read_until(ws: ClientConnection, events: list[Event], types: set[str],
                bounds: Bounds) -> None:
    """Record server events until one of ``types`` (``TimeoutError`` after a silence of the
    idle timeout, ``OutOfBounds`` past the total timeout or the body cap)."""
    while True:
        left = bounds.left_s()
        if left <= 0:
            raise OutOfBounds(transport.STREAM_TOTAL_TIMEOUT, "the session outlasted the total "
                              f"timeout of {bounds.timeouts.total_s:g} s")
        raw = ws.recv(timeout=min(left, bounds.timeouts.idle_s))
        bounds.take(len(raw), streaming=True)
        text = raw if isinstance(raw, str) else raw.decode("utf-8", "replace")
        try:
            kind = json.loads(text).get("type")
        except (ValueError, AttributeError):
            kind = None
        events.append(Event(kind if isinstance(kind, str) else "message", text, "",
                            time.perf_counter_ns()))
        if kind in types:
            return


MESSAGE_TOO_BIG = 1009
"""The WebSocket close code of a message over ``max_size`` (RFC 6455)."""


def _kind(exc: BaseException, bounds: Bounds, opened: bool) -> str:
    """The transport symptom a session ended by ``exc`` is reported under."""
    if isinstance(exc, OutOfBounds):
        return exc.kind
    if getattr(getattr(exc, "sent", None), "code", None) == MESSAGE_TOO_BIG:
        return transport.TOO_LARGE  # one message over the body cap
    if bounds.left_s() < 0:
        return transport.STREAM_TOTAL_TIMEOUT
    return transport.classify(exc, got_headers=opened, streaming=True)


def _refused(base: Exchange, exc: InvalidStatus) -> Exchange:
    response = exc.response
    headers = {k.lower(): v for k, v in response.headers.raw_items()}
    return _with(base, response.status_code, [], headers=headers, body=response.body or b"")


def _with(base: Exchange, status: int | None, events: list[Event], **changes: Any) -> Exchange:
    from dataclasses import replace

    return replace(base, status=status, events=events, **changes)
