"""The reference gateway as an ASGI application built on Starlette's router.

``build_app(config)`` is all a server, a test or a benchmark needs. Handlers raise
``GatewayError``; one wrapper renders it in the route family's envelope with the request id and
rate-limit headers, and turns any unexpected exception into the family's 500 (never a traceback to
the client, never a 500 for bad input: bad input is a ``GatewayError`` raised by validation).

Besides the API routes, ``/_gateprobe/*`` serves the gateway's own truth for tests and benchmarks:
``health``, ``traces/{request_id}`` (when each event was scheduled and sent), ``reset`` and
``metrics`` (resident memory, open connections, requests served: Prometheus text format).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable

from starlette.datastructures import State
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import BaseRoute, Route, Router
from starlette.types import Receive, Scope, Send

from gateprobe.core.families import FAMILIES, PATHS, canonical, resolve, wire_of
from gateprobe.reference import (
    anthropic_api,
    audio,
    conversations,
    hostile,
    images,
    management,
    moderations,
    openai_api,
    procmetrics,
    realtime,
    responses,
    search,
)
from gateprobe.reference.billing import bill_refused, bill_served
from gateprobe.reference.call import Call, GatewayState
from gateprobe.reference.config import GatewayConfig
from gateprobe.reference.envelopes import Family, GatewayError, render
from gateprobe.reference.faults import (
    BODY_STALL,
    BODY_TRICKLE,
    ENDLESS_429,
    HTML_200,
    HUGE_BODY,
    INVALID_JSON_LINE,
    INVALID_UTF8,
    KEY_ECHOED,
    KEY_ECHOED_IN_ERROR,
    NO_RETRY_AFTER_429,
    REDIRECT_OTHER_HOST,
    RESET_BEFORE_HEADERS,
    RESET_MID_STREAM,
    RETRY_AFTER_HUGE,
    SERVER_ERROR_TYPE_429,
    SLOW_HEADERS,
    STREAM_ENDLESS_CONTENT,
    STREAM_ENDLESS_PINGS,
    STREAM_GZIP_BUFFERED,
    STREAM_HANG_OPEN,
    STREAM_NO_CONTENT_TYPE,
    STREAM_WRONG_CONTENT_TYPE,
    UPSTREAM_SAME_HOST_LEAK,
    UPSTREAM_URL_LEAK,
    WRONG_TYPE_429,
    apply_response_faults,
)
from gateprobe.reference.midjourney import Midjourney
from gateprobe.reference.ratelimit import ALGORITHMS, Clock
from gateprobe.reference.streaming import EventStreamResponse, TraceStore

UPSTREAM_URL = "http://10.20.0.7:8080"
"""The private upstream the ``upstream-url-leak`` fault names."""

ARRIVAL_KEY = "gateprobe.arrival_ns"
"""Scope key of a request's arrival: ``perf_counter_ns`` when its first bytes were read (set by
``server.ArrivalStampingProtocol``; absent under other servers, where the app's call is used)."""

METRICS_ROUTE = "/_gateprobe/metrics"
"""The gateway's own metrics in Prometheus' text format (``procmetrics``): what a soak
scrapes."""
SCRIPT_KEY = "gateprobe.upstream_script"
"""Scope key of a request's script in upstream mode (``upstream.Script``): awaited ``before``
the handler (an answer instead of the gateway's), and ``after`` it (the answer bent)."""

log = logging.getLogger("gateprobe.reference")

Handler = Callable[[Call], Awaitable[Response]]

class GatewayApp:
    """The ASGI application: Starlette's router, without the application's middleware stack.

    ``starlette.applications.Starlette`` wraps every ``send`` in two middleware layers (server
    errors, exception handlers). Here every endpoint already turns every exception into an
    envelope, so those layers only add cost to each streamed event, and with 200 streams whose
    events fall due together that cost is the send-time error. 404 and 405 are answered by this
    module, in the family's envelope.
    """

    def __init__(self, router: Router, state: GatewayState) -> None:
        self.router = router
        self.state = State({"gateway": state})

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        scope["app"] = self  # what Request.app reads
        # the server's own, for transport faults (upstream mode set it before wrapping send)
        scope.setdefault("gateprobe.server_send", send)
        await self.router(scope, receive, send)


class _AnyMethod(Route):
    """A route every method reaches: its endpoint answers 405 itself, in the family's envelope.

    (Starlette's own 405 is an exception for the application middleware we do without.)
    """

    def __init__(self, path: str, endpoint: Callable[[Request], Awaitable[Response]]) -> None:
        super().__init__(path, endpoint)
        self.methods = None  # Route takes None to mean GET for functions; here it means any


def build_app(config: GatewayConfig, clock: Clock = time.monotonic) -> GatewayApp:
    """A reference gateway for ``config``; ``clock`` drives the rate limiter (a test seam)."""
    state = GatewayState(
        config=config,
        limiter=ALGORITHMS[config.rate_algorithm](config.rate_window_s, clock),
        traces=TraceStore(config.trace_capacity),
    )
    anthropic_models = config.profile == "anthropic"
    models: tuple[Family, Handler, Handler] = (
        ("anthropic", anthropic_api.list_models, anthropic_api.get_model) if anthropic_models
        else ("openai", openai_api.list_models, openai_api.get_model))
    api: list[tuple[str, str, Family, Handler]] = [  # path, method, family, handler
        # POST creates; GET lists the stored ones (store: true; conversations.py). Under every
        # profile: the route's methods are the spec's (schemathesis checks OPTIONS' Allow).
        (PATHS["chat"], "*", "openai", responses.dispatch(
            {"POST": openai_api.chat_completions, "GET": conversations.list_chat})),
        (PATHS["completions"], "POST", "openai", openai_api.completions),
        (PATHS["embeddings"], "POST", "openai", openai_api.embeddings),
        (PATHS["models"], "GET", models[0], models[1]),
        (PATHS["models"] + "/{model:path}", "GET", models[0], models[2]),
        # The media families (OpenAI's shapes under every profile; targets opt in to them).
        (PATHS["images"], "POST", "openai", images.generations),
        (PATHS["image_edits"], "POST", "openai", images.edits),
        (PATHS["speech"], "POST", "openai", audio.speech),
        (PATHS["transcriptions"], "POST", "openai", audio.transcriptions),
        (PATHS["moderations"], "POST", "openai", moderations.moderations),
    ]
    if config.profile != "anthropic":  # OpenAI's stateful APIs (targets opt in to them)
        api += [(path, "*", "openai", handler)
                for path, handler in responses.routes() + conversations.routes()]
    if config.profile != "openai":  # a pure OpenAI-compatible gateway has no Anthropic routes
        api += [
            (PATHS["complete"], "POST", "anthropic", anthropic_api.complete),
            (PATHS["messages"], "POST", "anthropic", anthropic_api.messages),
            (PATHS["count_tokens"], "POST", "anthropic",
             anthropic_api.count_message_tokens),
        ]
    api += [(f.path, f.routes[0].method, "openai" if f.wire == "openai" else "anthropic",
             resolve(f.reference)) for f in FAMILIES.values()
            if f.alias_of and config.profile in f.profiles]  # a gateway's copy of a route
    routes: list[BaseRoute] = [_AnyMethod(path, _endpoint(family, method, handler))
                               for path, method, family, handler in api]
    routes += [_AnyMethod(path, management.endpoint(method, handler))
               for path, method, handler in management.routes()]
    if config.profile != "anthropic":  # OpenAI's Realtime API, over a WebSocket
        routes.append(realtime.route(config))
    if config.profile == "ohmygpt":  # the seeds' gateway's own APIs (seeds-extra §2, §4)
        routes += Midjourney(config, clock).routes() + search.routes(config)
    routes += [
        _AnyMethod(images.FILE_ROUTE, images.image_file),
        _AnyMethod("/_gateprobe/health", _debug("GET", _health)),
        _AnyMethod("/_gateprobe/traces/{request_id}", _debug("GET", _trace)),
        _AnyMethod("/_gateprobe/reset", _debug("POST", _reset)),
        _AnyMethod(METRICS_ROUTE, _debug("GET", procmetrics.metrics)),
    ]
    return GatewayApp(Router(routes, default=_not_found, redirect_slashes=False), state)


def _endpoint(family: Family, method: str,
              handler: Handler) -> Callable[[Request], Awaitable[Response]]:
    async def endpoint(request: Request) -> Response:
        t0 = request.scope.get(ARRIVAL_KEY) or time.perf_counter_ns()
        # an alias family's copy is its original for every step and fault (families.py)
        call = Call(request, family, request.app.state.gateway, canonical(request.url.path),
                    t0)
        if method != "*" and request.method != method:  # "*": the handler dispatches
            return _error(call, _method_not_allowed(request, method))
        if call.config.faults:
            early = hostile_front(call)
            if early is not None:
                return early
        script = request.scope.get(SCRIPT_KEY)
        if script is not None:
            instead: Response | None = await script.before(call)
            if instead is not None:
                return instead
        try:
            response = await handler(call)
        except GatewayError as error:
            call.release()
            response = _error(call, error)
        except Exception:
            call.release()
            log.exception("unhandled error in %s (request %s)", call.endpoint, call.request_id)
            response = _error(call, GatewayError("api_error", "Internal server error"))
        if not isinstance(response, EventStreamResponse):
            call.release()
        if response.status_code < 400:
            call.state.served += 1
        _bill(call, response.status_code)
        if script is not None:
            response = script.after(call, response)
        return _with_faults(call, response) if call.config.faults else response

    return endpoint


def _bill(call: Call, status: int) -> None:
    """Bill the answer to its key: a served request by its usage, a refused one not at all."""
    if call.key is None:
        return
    store = call.state.store
    if status < 300 and call.usage is not None:
        bill_served(store, call.key.key, call.usage, call.endpoint)
    elif status >= 400:
        bill_refused(store, call.key.key, status, call.endpoint)


def hostile_front(call: Call) -> Response | None:
    """What a broken front (proxy, CDN, crashed worker) answers instead of the gateway."""
    faults, endpoint, family = call.config.faults, call.endpoint, call.family
    if RESET_BEFORE_HEADERS.active(faults, endpoint):
        return hostile.ResetResponse()
    if SLOW_HEADERS.active(faults, endpoint):
        return hostile.SilentResponse()
    if REDIRECT_OTHER_HOST.active(faults, endpoint):
        return Response(status_code=302, headers={"location": hostile.REDIRECT_HOST + endpoint})
    if RETRY_AFTER_HUGE.active(faults, endpoint):
        return hostile.error_answer(family, 503, "Service temporarily unavailable",
                                    {"retry-after": hostile.HUGE_RETRY_AFTER})
    if ENDLESS_429.active(faults, endpoint):
        return hostile.error_answer(family, 429, "Too many requests", {"retry-after": "1"})
    if NO_RETRY_AFTER_429.active(faults, endpoint):
        return hostile.error_answer(family, 429, "Too many requests", {})
    if WRONG_TYPE_429.active(faults, endpoint):
        return hostile.error_answer(family, 429, "Too many requests", {"retry-after": "0"},
                                    kind="invalid_request_error")
    if SERVER_ERROR_TYPE_429.active(faults, endpoint):
        return hostile.error_answer(family, 429, "Too many requests", {"retry-after": "0"},
                                    kind="internal_server_error")
    if HTML_200.active(faults, endpoint):
        return Response(hostile.HTML_ERROR_PAGE, media_type="text/html")
    return None


def _hostile_stream(call: Call, response: EventStreamResponse) -> Response:
    faults, endpoint = call.config.faults, call.endpoint
    if HUGE_BODY.active(faults, endpoint):
        response.abandon()
        return hostile.huge_stream()
    plan = list(response.plan)
    if not any(e.content for e in plan):
        return response
    for fault, bend in ((RESET_MID_STREAM, hostile.reset_mid_stream),
                        (STREAM_HANG_OPEN, hostile.hang_open),
                        (INVALID_UTF8, hostile.invalid_utf8),
                        (INVALID_JSON_LINE, hostile.html_line)):
        if fault.active(faults, endpoint):
            plan = bend(plan)
    if STREAM_ENDLESS_PINGS.active(faults, endpoint):
        plan = hostile.endless(plan, b": ping\n\n")
    if STREAM_ENDLESS_CONTENT.active(faults, endpoint):
        plan = hostile.endless(plan, plan[[e.content for e in plan].index(True)].data)
    response.plan = plan
    if STREAM_WRONG_CONTENT_TYPE.active(faults, endpoint):
        response.headers["content-type"] = "application/json"
    if STREAM_NO_CONTENT_TYPE.active(faults, endpoint):
        del response.headers["content-type"]
    if STREAM_GZIP_BUFFERED.active(faults, endpoint):
        return hostile.BufferedGzipStream(response)  # it releases the stream's slot itself
    return response


def _with_faults(call: Call, response: Response) -> Response:
    """The answer as the enabled faults bend it (the harness's proof; see faults.py)."""
    faults = call.config.faults
    if KEY_ECHOED.active(faults, call.endpoint) and call.key is not None:
        response.headers["x-gateway-key"] = call.key.key
    if UPSTREAM_URL_LEAK.active(faults, call.endpoint):
        response.headers["x-upstream"] = UPSTREAM_URL + call.endpoint
    if UPSTREAM_SAME_HOST_LEAK.active(faults, call.endpoint):
        url = call.request.url
        response.headers["x-upstream"] = \
            f"{url.scheme}://{url.hostname}:{(url.port or 80) + 1}{call.endpoint}"
    if isinstance(response, EventStreamResponse):
        return _hostile_stream(call, response)  # otherwise streams are bent in their plan
    if isinstance(response, StreamingResponse):
        return response  # speech audio: its faults are its handler's
    if HUGE_BODY.active(faults, call.endpoint) and response.status_code == 200:
        return hostile.huge_json()
    if KEY_ECHOED_IN_ERROR.active(faults, call.endpoint) and response.status_code >= 400 \
            and call.key is not None:
        response = Response(bytes(response.body).replace(
            b'"message": "', f'"message": "(key {call.key.key}) '.encode(), 1),
            status_code=response.status_code, headers={
                k: v for k, v in response.headers.items() if k.lower() != "content-length"})
    headers = {k: v for k, v in response.headers.items() if k.lower() != "content-length"}
    status, headers, body = apply_response_faults(
        faults, call.endpoint, (response.status_code, headers, bytes(response.body)))
    response = Response(body, status_code=status, headers=headers)
    if BODY_STALL.active(faults, call.endpoint):
        return hostile.StallingResponse(response)
    if BODY_TRICKLE.active(faults, call.endpoint):
        return hostile.TricklingResponse(response)
    return response


def _method_not_allowed(request: Request, allowed: str) -> GatewayError:
    return GatewayError("invalid_request", f"Method {request.method} is not allowed on "
                        f"{request.url.path}.", status=405, headers={"allow": allowed})


def _error(call: Call, error: GatewayError) -> Response:
    response = render(call.family, error, call.request_id, call.config.error_envelope)
    response.headers.update(call.headers)
    return response


def _family_of_path(request: Request) -> Family:
    path = request.url.path
    if wire_of(path) == "anthropic" and request.app.state.gateway.config.profile != "openai":
        return "anthropic"
    return "openai"


async def _not_found(scope: Scope, receive: Receive, send: Send) -> None:
    """Unknown URLs, in the envelope of the family the path looks like."""
    if scope["type"] == "websocket":  # a handshake on a route this profile lacks: a 404
        from starlette.websockets import WebSocket

        await WebSocket(scope, receive, send).send_denial_response(JSONResponse(
            {"error": {"message": f"Unknown request URL: GET {scope['path']}.",
                       "type": "invalid_request_error", "param": None,
                       "code": "unknown_url"}}, status_code=404))
        return
    request = Request(scope, receive)
    call = Call(request, _family_of_path(request), request.app.state.gateway,
                request.url.path, time.perf_counter_ns())
    response = _error(call, GatewayError(
        "not_found", f"Unknown request URL: {request.method} {request.url.path}.",
        code="unknown_url"))
    await response(scope, receive, send)


def _debug(method: str, handler: Callable[[Request], Awaitable[Response]]
           ) -> Callable[[Request], Awaitable[Response]]:
    async def endpoint(request: Request) -> Response:
        if request.method != method:
            return JSONResponse({"error": f"use {method}"}, status_code=405,
                                headers={"allow": method})
        return await handler(request)

    return endpoint


async def _health(request: Request) -> Response:
    config: GatewayConfig = request.app.state.gateway.config
    return JSONResponse({"status": "ok", "profile": config.profile,
                         "rate_window_s": config.rate_window_s,
                         "inflight": request.app.state.gateway.inflight})


async def _trace(request: Request) -> Response:
    trace = request.app.state.gateway.traces.get(request.path_params["request_id"])
    if trace is None:
        return JSONResponse({"error": "no trace for that request id"}, status_code=404)
    return JSONResponse(trace.as_json())


async def _reset(request: Request) -> Response:
    request.app.state.gateway.reset()
    return JSONResponse({"status": "reset"})
