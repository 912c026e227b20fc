"""Upstream mode: the reference gateway behind the gateway under test, scripted per request.

A gateway is a proxy; what it does between its two sides (an upstream stream cut short, a 429's
``Retry-After``, a 529, usage, a client that hangs up) can only be judged by controlling the
upstream. ``UpstreamApp`` wraps the reference app: the same OpenAI and Anthropic routes, any
key accepted (a gateway sends its own upstream key, whatever it is), every request recorded,
and a control API on the same port:

- ``POST /_gateprobe/upstream/scripts`` ``{"marker": M, "action": ..., ...}``: the next
  request(s) carrying ``M`` (in the body, e.g. the prompt, since gateways drop unknown
  headers; or in an ``x-gateprobe-marker`` header) are answered as scripted (``Script``);
- ``GET /_gateprobe/upstream/requests?marker=M``: what arrived (method, path, headers, body,
  when the upstream side was closed by the gateway), with the upstream's clock (``now``);
- ``POST /_gateprobe/upstream/reset``: forget scripts and records; ``GET .../health``.

A script bends the answer the reference gateway plans, with its own machinery: the planned
event stream (``streaming``), the transport faults' actions (``hostile``), the families'
error envelopes (``envelopes``). The app consults it through ``app.SCRIPT_KEY``.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections import deque
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gateprobe.reference import hostile
from gateprobe.reference.app import SCRIPT_KEY, UPSTREAM_URL, build_app
from gateprobe.reference.call import Call
from gateprobe.reference.config import ApiKey, GatewayConfig, Tier, Timing
from gateprobe.reference.envelopes import GatewayError, Kind, render
from gateprobe.reference.faults import _map_payloads
from gateprobe.reference.streaming import EventStreamResponse, PlannedEvent

CONTROL = "/_gateprobe/upstream"
MARKER = re.compile(rb"gpmark-[0-9a-f]{8,32}")
"""What a case puts in its prompt to find its request upstream (and to script it)."""
MARKER_HEADER = "x-gateprobe-marker"
UPSTREAM_KEY = "gp-upstream-0000"
"""The one key of the wrapped reference app: every presented key is swapped for it."""
RECORDS_KEPT = 2000
BODY_KEPT = 256 * 1024
ACTIONS = ("pass", "cut", "reset", "hang", "malformed", "error")
"""``pass``: answer normally (usage, model, headers and delay still apply); ``cut``: end the
stream cleanly after ``after_events`` content events, without its terminator; ``reset``: a TCP
reset there (before the headers for a plain request); ``hang``: silence there, the connection
open, until the gateway closes it; ``malformed``: a chunk that is not JSON there, then the
rest; ``error``: ``status`` in the family's envelope (``retry_after`` as a header)."""
MALFORMED_CHUNK = b'data: {"choices": [{"delta": {"content": "trunc\n\n'
_KINDS: Mapping[int, Kind] = {400: "invalid_request", 401: "authentication", 403: "permission",
                              404: "not_found", 429: "rate_limit", 500: "api_error",
                              503: "overloaded", 529: "overloaded"}


class ScriptError(ValueError):
    """A script the control API cannot follow (answered 400, naming the field)."""


@dataclass(slots=True)
class Script:
    """How to answer the next ``times`` requests that carry ``marker`` (0: every one)."""

    marker: str
    action: str = "pass"
    after_events: int = 0
    status: int = 0
    retry_after: str | None = None
    delay_s: float = 0.0
    """Slow first byte: the headers wait this long."""
    usage: dict[str, int] | None = None
    """Usage values to report instead (keys present in the answer's usage objects)."""
    model: str | None = None
    """The model name to report instead."""
    headers: dict[str, str] = field(default_factory=dict)
    """Headers to add to the answer (upstream-only ones, an internal URL)."""
    message: str = ""
    times: int = 1
    used: int = 0

    @classmethod
    def of(cls, raw: Any) -> Script:
        """A checked script from the control API's JSON."""
        if not isinstance(raw, dict) or not isinstance(raw.get("marker"), str):
            raise ScriptError("a script is a JSON object with a string 'marker'")
        known = set(cls.__dataclass_fields__) - {"used"}
        unknown = sorted(set(raw) - known)
        if unknown:
            raise ScriptError(f"unknown field {unknown[0]!r}; fields: {', '.join(sorted(known))}")
        script = cls(**raw)
        if script.action not in ACTIONS:
            raise ScriptError(f"action must be one of {', '.join(ACTIONS)}")
        if script.action == "error" and script.status not in _KINDS:
            raise ScriptError(f"status must be one of {', '.join(map(str, _KINDS))}")
        if script.after_events < 0 or script.delay_s < 0 or script.times < 0:
            raise ScriptError("after_events, delay_s and times must be >= 0")
        return script

    async def before(self, call: Call) -> Response | None:
        """The answer instead of the gateway's (an error, a reset), after the delay."""
        if self.delay_s:
            await asyncio.sleep(self.delay_s)
        if self.action == "error":
            headers = dict(self.headers)
            if self.retry_after is not None:
                headers["retry-after"] = self.retry_after
            message = self.message or f"scripted upstream {self.status}"
            return render(call.family, GatewayError(_KINDS[self.status], message,
                                                    status=self.status, headers=headers),
                          call.request_id)
        return None

    def after(self, call: Call, response: Response) -> Response:
        """The gateway's answer as scripted: headers, usage, model, and the stream's fate."""
        response.headers.update(self.headers)
        if isinstance(response, EventStreamResponse):
            response.plan = self._bend(response.plan)
            return response
        if response.status_code >= 300:
            return response
        if self.action == "reset":
            return hostile.ResetResponse()
        if self.action == "hang":
            return hostile.SilentResponse()
        if self.usage or self.model:
            try:
                payload = json.loads(bytes(response.body))
            except ValueError:
                return response
            changed = self._rename(payload) or payload
            headers = {k: v for k, v in response.headers.items() if k != "content-length"}
            return Response(json.dumps(changed), response.status_code, headers)
        return response

    def _bend(self, planned: Sequence[PlannedEvent]) -> list[PlannedEvent]:
        plan = list(planned)
        if self.usage or self.model:
            plan = _map_payloads(plan, self._rename)
        if self.action in ("pass", "error"):
            return plan
        content = [i for i, e in enumerate(plan) if e.content]
        if not content:
            return plan
        at = content[min(self.after_events, len(content) - 1)]
        offset = plan[at].offset_ns
        if self.action == "cut":
            return plan[:at]
        if self.action == "malformed":
            return [*plan[:at], PlannedEvent(MALFORMED_CHUNK, offset, False), *plan[at:]]
        return [*plan[:at], PlannedEvent(b"", offset, False, action=self.action)]

    def _rename(self, payload: dict[str, Any]) -> dict[str, Any] | None:
        """The payload with the scripted model and usage values (None when unchanged)."""
        out = json.loads(json.dumps(payload))
        changed = False
        for holder in (out, out.get("message") if isinstance(out.get("message"), dict)
                       else None):
            if holder is None:
                continue
            if self.model and isinstance(holder.get("model"), str):
                holder["model"], changed = self.model, True
            usage = holder.get("usage")
            if self.usage and isinstance(usage, dict):
                for name, value in self.usage.items():
                    if name in usage:
                        usage[name], changed = value, True
        return out if changed else None


@dataclass(slots=True)
class Recorded:
    """One request the upstream received, as the gateway sent it."""

    id: int
    method: str
    path: str
    headers: dict[str, str]
    body: str
    marker: str | None
    script: str
    arrived_s: float
    """``time.monotonic()`` at arrival (the control API answers with its ``now``)."""
    status: int | None = None
    finished_s: float | None = None
    """When the answer was sent whole."""
    disconnected_s: float | None = None
    """When the gateway closed the upstream request before the answer was whole."""


@dataclass(slots=True)
class Control:
    """Scripts waiting for their requests, and the requests received."""

    scripts: list[Script] = field(default_factory=list)
    records: deque[Recorded] = field(default_factory=lambda: deque(maxlen=RECORDS_KEPT))
    count: int = 0

    def take(self, marker: str | None) -> Script | None:
        """The first script for ``marker`` still to be used (and count its use)."""
        for script in self.scripts:
            if marker and script.marker == marker and (not script.times
                                                       or script.used < script.times):
                script.used += 1
                return script
        return None


class UpstreamApp:
    """The reference app as an upstream: control API, recording, scripts, any key."""

    def __init__(self, inner: ASGIApp) -> None:
        self.inner = inner
        self.control = Control()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "")
        if scope["type"] != "http" or (path.startswith("/_gateprobe/")
                                       and not path.startswith(CONTROL)):
            await self.inner(scope, receive, send)
        elif path.startswith(CONTROL):
            await self._control(Request(scope, receive))(scope, receive, send)
        else:
            await self._relay(scope, receive, send)

    async def _relay(self, scope: Scope, receive: Receive, send: Send) -> None:
        body = bytearray()
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        headers = {k.decode("latin-1").lower(): v.decode("latin-1")
                   for k, v in scope["headers"]}
        found = headers.get(MARKER_HEADER) or _marker(bytes(body))
        script = self.control.take(found)
        self.control.count += 1
        record = Recorded(self.control.count, scope["method"], scope["path"], headers,
                          bytes(body[:BODY_KEPT]).decode("utf-8", "replace"), found,
                          script.action if script else "", time.monotonic())
        self.control.records.append(record)
        scope = {**scope, "headers": _as_upstream_key(scope["headers"]),
                 "gateprobe.server_send": send}
        if script is not None:
            scope[SCRIPT_KEY] = script
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": bytes(body), "more_body": False}
            message = await receive()
            if message["type"] == "http.disconnect" and record.finished_s is None:
                record.disconnected_s = time.monotonic()
            return message

        async def sent(message: Message) -> None:
            if message["type"] == "http.response.start":
                record.status = message["status"]
            await send(message)
            if message["type"] == "http.response.body" and not message.get("more_body"):
                record.finished_s = time.monotonic()

        await self.inner(scope, replay, sent)

    def _control(self, request: Request) -> Any:
        action = request.url.path.removeprefix(CONTROL).strip("/")
        routes = {("GET", "health"): self._health, ("POST", "scripts"): self._script,
                  ("GET", "requests"): self._requests, ("POST", "reset"): self._reset}
        handler = routes.get((request.method, action))
        if handler is None:
            return _control_answer({"error": f"no {request.method} {request.url.path}; "
                                    "routes: GET health, POST scripts, GET requests, "
                                    "POST reset"}, 404)

        async def app(scope: Scope, receive: Receive, send: Send) -> None:
            response = await handler(request)
            await response(scope, receive, send)

        return app

    async def _health(self, request: Request) -> Response:
        return _control_answer({"status": "ok", "upstream": True, "now": time.monotonic()})

    async def _script(self, request: Request) -> Response:
        try:
            script = Script.of(json.loads(await request.body()))
        except (ValueError, TypeError) as exc:
            return _control_answer({"error": str(exc)}, 400)
        self.control.scripts.append(script)
        return _control_answer({"scripted": script.marker, "action": script.action}, 201)

    async def _requests(self, request: Request) -> Response:
        marker = request.query_params.get("marker")
        records = [asdict(r) for r in self.control.records
                   if marker is None or r.marker == marker]
        return _control_answer({"now": time.monotonic(), "requests": records})

    async def _reset(self, request: Request) -> Response:
        self.control.scripts.clear()
        self.control.records.clear()
        return _control_answer({"status": "reset"})


def _control_answer(body: dict[str, Any], status: int = 200) -> Response:
    return JSONResponse(body, status_code=status)


def _marker(body: bytes) -> str | None:
    found = MARKER.search(body)
    return found.group().decode() if found else None


def _as_upstream_key(raw: list[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
    """The request's headers with whatever key it presented (any style) swapped for the
    wrapped app's one key: an upstream takes whatever key the gateway holds."""
    kept = [(k, v) for k, v in raw if k.lower() not in (b"authorization", b"x-api-key")]
    return [*kept, (b"authorization", f"Bearer {UPSTREAM_KEY}".encode())]


def upstream_config(timing: Timing | None = None) -> GatewayConfig:
    """The wrapped reference gateway: every route, one unlimited key, errors in the family's
    envelope, a quick schedule by default."""
    return GatewayConfig(profile="ohmygpt",
                         keys={UPSTREAM_KEY: ApiKey(UPSTREAM_KEY, "upstream", None)},
                         tiers={"upstream": Tier("upstream", {})},
                         timing=timing or Timing(ttft_ms=50.0, itl_ms=10.0))


def build_upstream_app(timing: Timing | None = None) -> UpstreamApp:
    """The upstream-mode application (``gateprobe serve --upstream``, the runner's)."""
    return UpstreamApp(build_app(upstream_config(timing)))


INTERNAL_URL = UPSTREAM_URL
"""The private address an upstream-only header names (the header-leak case adds it)."""


@dataclass(frozen=True, slots=True)
class RunningUpstream:
    """An upstream serving on loopback: its URL (the control API is under it)."""

    base_url: str
    app: UpstreamApp


@contextmanager
def running_upstream(host: str = "127.0.0.1", port: int = 0,
                     timing: Timing | None = None) -> Iterator[RunningUpstream]:
    """Serve the upstream in a thread on ``host:port`` (a target's declared ``listen``; 0 picks
    a free port) for the ``with`` block; a one-line ``ConfigError`` if it cannot listen."""
    import threading

    import uvicorn

    from gateprobe.reference.server import _url, _uvicorn_config, bind

    sock = bind(host, port)
    bound = sock.getsockname()[1]
    app = build_upstream_app(timing)
    server = uvicorn.Server(_uvicorn_config(app, "asyncio", "warning"))
    thread = threading.Thread(target=lambda: asyncio.run(server.serve(sockets=[sock])),
                              daemon=True, name=f"gateprobe-upstream-{bound}")
    thread.start()
    try:
        while not server.started:
            if not thread.is_alive():
                raise RuntimeError("the upstream failed to start")
            threading.Event().wait(0.01)
        yield RunningUpstream(_url(host, bound, None), app)
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()


def serve_upstream(host: str, port: int, timing: Timing | None = None,
                   announce: Callable[[str], None] | None = None) -> None:
    """Serve the upstream in the foreground until interrupted (``gateprobe serve
    --upstream``)."""
    import uvicorn

    from gateprobe.reference.server import _url, _uvicorn_config, bind

    sock = bind(host, port)
    if announce is not None:
        announce(_url(host, sock.getsockname()[1], None))
    uvicorn.Server(_uvicorn_config(build_upstream_app(timing), "auto", "warning")).run(
        sockets=[sock])
