"""The reference gateway as a Starlette application.

``build_app(config)`` is all a server, a test or a benchmark needs. Handlers raise
``GatewayError``; one wrapper renders it in the route family's envelope with the request id and
rate-limit headers, and turns any unexpected exception into the family's 500 (never a traceback to
the client, never a 500 for bad input: bad input is a ``GatewayError`` raised by validation).

Besides the API routes, ``/_gateprobe/*`` serves the gateway's own truth for tests and benchmarks:
``health``, ``traces/{request_id}`` (when each event was scheduled and sent) and ``reset``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from gateprobe.reference import anthropic_api, openai_api
from gateprobe.reference.call import Call, GatewayState
from gateprobe.reference.config import GatewayConfig
from gateprobe.reference.envelopes import Family, GatewayError, render
from gateprobe.reference.ratelimit import Clock, RateLimiter
from gateprobe.reference.streaming import EventStreamResponse, TraceStore

log = logging.getLogger("gateprobe.reference")

Handler = Callable[[Call], Awaitable[Response]]

ANTHROPIC_PATHS = ("/v1/complete", "/v1/messages")


def build_app(config: GatewayConfig, clock: Clock = time.monotonic) -> Starlette:
    """A reference gateway for ``config``; ``clock`` drives the rate limiter (a test seam)."""
    state = GatewayState(
        config=config,
        limiter=RateLimiter(config.rate_window_s, clock),
        traces=TraceStore(config.trace_capacity),
    )
    anthropic_models = config.profile == "anthropic"
    routes = [
        Route("/v1/chat/completions", _endpoint("openai", openai_api.chat_completions),
              methods=["POST"]),
        Route("/v1/completions", _endpoint("openai", openai_api.completions), methods=["POST"]),
        Route("/v1/embeddings", _endpoint("openai", openai_api.embeddings), methods=["POST"]),
        Route("/v1/models", _endpoint(*(
            ("anthropic", anthropic_api.list_models) if anthropic_models
            else ("openai", openai_api.list_models))), methods=["GET"]),
        Route("/v1/models/{model:path}", _endpoint(*(
            ("anthropic", anthropic_api.get_model) if anthropic_models
            else ("openai", openai_api.get_model))), methods=["GET"]),
        Route("/_gateprobe/health", _health, methods=["GET"]),
        Route("/_gateprobe/traces/{request_id}", _trace, methods=["GET"]),
        Route("/_gateprobe/reset", _reset, methods=["POST"]),
    ]
    if config.profile != "openai":  # a pure OpenAI-compatible gateway has no Anthropic routes
        routes += [
            Route("/v1/complete", _endpoint("anthropic", anthropic_api.complete),
                  methods=["POST"]),
            Route("/v1/messages", _endpoint("anthropic", anthropic_api.messages),
                  methods=["POST"]),
            Route("/v1/messages/count_tokens",
                  _endpoint("anthropic", anthropic_api.count_message_tokens), methods=["POST"]),
        ]
    app = Starlette(
        routes=routes,
        exception_handlers={404: _http_error, 405: _http_error},
    )
    app.state.gateway = state
    return app


def _endpoint(family: Family, handler: Handler) -> Callable[[Request], Awaitable[Response]]:
    async def endpoint(request: Request) -> Response:
        t0 = time.perf_counter_ns()
        call = Call(request, family, request.app.state.gateway, request.url.path, t0)
        try:
            response = await handler(call)
        except GatewayError as error:
            call.release()
            return _error(call, error)
        except Exception:
            call.release()
            log.exception("unhandled error in %s (request %s)", call.endpoint, call.request_id)
            return _error(call, GatewayError("api_error", "Internal server error"))
        if not isinstance(response, EventStreamResponse):
            call.release()
        return response

    return endpoint


def _error(call: Call, error: GatewayError) -> Response:
    response = render(call.family, error, call.request_id)
    response.headers.update(call.headers)
    return response


def _family_of_path(request: Request) -> Family:
    path = request.url.path
    if path.startswith(ANTHROPIC_PATHS) and request.app.state.gateway.config.profile != "openai":
        return "anthropic"
    return "openai"


async def _http_error(request: Request, exc: Exception) -> Response:
    """404 and 405 in the family's envelope, not Starlette's plain text."""
    status = exc.status_code if isinstance(exc, HTTPException) else 500
    call = Call(request, _family_of_path(request), request.app.state.gateway,
                request.url.path, time.perf_counter_ns())
    if status == 405:
        error = GatewayError("invalid_request", f"Method {request.method} is not allowed on "
                             f"{request.url.path}.", status=405)
        allow = exc.headers.get("Allow") if isinstance(exc, HTTPException) and exc.headers else None
        if allow:
            error.headers["allow"] = allow
        return _error(call, error)
    return _error(call, GatewayError("not_found", f"Unknown request URL: {request.method} "
                                     f"{request.url.path}.", code="unknown_url"))


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
