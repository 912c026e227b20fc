"""A minimal correct gateway relay (Starlette + httpx), and one fault per propagation check.

The proof of the ``propagation`` category: the relay as written passes every case with no
finding; each fault, one small bend of it, fails exactly its check (tests/test_propagation.py).
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager

import httpx
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from gateprobe.reference.server import bind

UPSTREAM_KEY = "sk-relay-upstream-key-0001"
FAULTS = {
    "propagation.truncation": "an upstream stream that breaks is ended with a terminator",
    "propagation.retry_after": "Retry-After is not forwarded",
    "propagation.status": "every upstream 5xx becomes a bare 500",
    "propagation.key_isolation": "the client's Authorization is forwarded upstream",
    "propagation.header_leak": "every upstream header is forwarded",
    "propagation.usage": "usage gets ten more input tokens",
    "propagation.params": "temperature is forced to 1",
    "propagation.cancel": "the upstream stream is drained after the client left",
    "propagation.retries": "a broken stream is retried and the new one appended",
}
"""Fault (named by the check it must trip) -> what it does."""
KEPT = ("content-type", "retry-after", "x-request-id", "request-id")
TERMINATORS = {
    "/v1/chat/completions": b'data: {"id": "x", "object": "chat.completion.chunk", '
                            b'"created": 0, "model": "m", "choices": [{"index": 0, "delta": '
                            b'{}, "finish_reason": "stop"}]}\n\ndata: [DONE]\n\n',
    "/v1/messages": b'event: message_delta\ndata: {"type": "message_delta", "delta": '
                    b'{"stop_reason": "end_turn", "stop_sequence": null}, "usage": '
                    b'{"output_tokens": 1}}\n\nevent: message_stop\ndata: {"type": '
                    b'"message_stop"}\n\n',
}


def make_relay(upstream: str, fault: str = "") -> Starlette:
    """The relay in front of ``upstream``; ``fault`` names the check it must trip."""
    client = httpx.AsyncClient(timeout=httpx.Timeout(30.0))

    async def relay(request: Request) -> Response:
        body = await request.body()
        if fault == "propagation.params":
            body = json.dumps({**json.loads(body), "temperature": 1}).encode()
        headers = {"content-type": "application/json",
                   "authorization": request.headers.get("authorization", "")
                   if fault == "propagation.key_isolation" else f"Bearer {UPSTREAM_KEY}"}
        if "anthropic-version" in request.headers:
            headers["anthropic-version"] = request.headers["anthropic-version"]
        upstream_request = client.build_request("POST", upstream + request.url.path,
                                                content=body, headers=headers)
        answer = await client.send(upstream_request, stream=True)
        if answer.headers.get("content-type", "").startswith("text/event-stream"):
            return StreamingResponse(_stream(answer, upstream_request, request.url.path),
                                     headers=_headers(answer))
        content = await answer.aread()
        await answer.aclose()
        return _plain(answer, content)

    async def _stream(answer: httpx.Response, again: httpx.Request,
                      path: str) -> AsyncIterator[bytes]:
        if fault == "propagation.cancel":  # read upstream apart: a client's leaving stops
            queue: asyncio.Queue[bytes | Exception | None] = asyncio.Queue()
            pumps.add(asyncio.get_running_loop().create_task(_pump(answer, queue)))
            while (item := await queue.get()) is not None:
                if isinstance(item, Exception):
                    raise item
                yield item
            return
        try:
            async for chunk in answer.aiter_raw():
                yield chunk
        except httpx.HTTPError:
            if fault == "propagation.retries":
                retry = await client.send(again, stream=True)
                async for chunk in retry.aiter_raw():
                    yield chunk
                return
            if fault != "propagation.truncation":
                raise
        finally:  # the client left (Starlette cancels the generator), or the end
            await answer.aclose()
        if fault == "propagation.truncation":
            yield TERMINATORS[path]

    pumps: set[asyncio.Task[None]] = set()

    async def _pump(answer: httpx.Response,
                    queue: asyncio.Queue[bytes | Exception | None]) -> None:
        try:
            async for chunk in answer.aiter_raw():
                await queue.put(chunk)
        except httpx.HTTPError as exc:
            await queue.put(exc)
        await queue.put(None)

    def _headers(answer: httpx.Response) -> dict[str, str]:
        if fault == "propagation.header_leak":
            return {k: v for k, v in answer.headers.items()
                    if k not in ("content-length", "content-encoding", "transfer-encoding",
                                 "connection")}
        kept = KEPT if fault != "propagation.retry_after" else KEPT[:1] + KEPT[2:]
        return {k: v for k, v in answer.headers.items() if k in kept}

    def _plain(answer: httpx.Response, content: bytes) -> Response:
        if fault == "propagation.status" and answer.status_code >= 500:
            return JSONResponse({"detail": "Internal Server Error"}, status_code=500)
        if fault == "propagation.usage" and answer.status_code < 300:
            payload = json.loads(content)
            usage = payload.get("usage", {})
            for name in ("prompt_tokens", "input_tokens"):
                if name in usage:
                    usage[name] += 10
            content = json.dumps(payload).encode()
        return Response(content, answer.status_code, _headers(answer))

    async def models(request: Request) -> Response:
        return JSONResponse({"object": "list", "data": []})

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        yield
        for pump in pumps:
            pump.cancel()
        await client.aclose()

    return Starlette(lifespan=lifespan, routes=[
        Route("/v1/chat/completions", relay, methods=["POST"]),
        Route("/v1/messages", relay, methods=["POST"]), Route("/v1/models", models)])


@contextmanager
def running_relay(upstream: str, fault: str = "") -> Iterator[str]:
    """The relay on a free loopback port for the block (its URL)."""
    sock = bind("127.0.0.1", 0)
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(make_relay(upstream, fault), log_level="error",
                                           lifespan="on", timeout_graceful_shutdown=2))
    thread = threading.Thread(target=lambda: asyncio.run(server.serve(sockets=[sock])),
                              daemon=True)
    thread.start()
    try:
        while not server.started:
            threading.Event().wait(0.01)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()
