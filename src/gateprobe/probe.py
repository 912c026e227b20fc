"""Sending a case to a target and recording the exchange, bounded in size and time.

Streams are read chunk by chunk through the project's SSE parser as they arrive. Bodies are read
with a size cap: a gateway that answers with several hundred MB gets a finding, not our memory.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import httpx

from gateprobe.cases import BAD_KEY, Case
from gateprobe.checks import Exchange
from gateprobe.sse import Event, SSEParser
from gateprobe.targets import Target, credentials

MAX_BODY_BYTES = 16 * 1024 * 1024
DEFAULT_TIMEOUT = httpx.Timeout(60.0, connect=10.0)


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


def send(client: httpx.Client, target: Target, case: Case,
         sleep: Callable[[float], None] = time.sleep) -> Exchange:
    """Send ``case``; a 429 it did not ask for is waited out (``Retry-After``, capped) and
    retried, because real gateways rate-limit every route and our own pace is not their fault.
    """
    for _ in range(MAX_RETRIES_429):
        exchange = _send_once(client, target, case)
        if exchange.status != 429 or case.expect.status == 429:
            return exchange
        sleep(min(_retry_after(exchange), MAX_RETRY_AFTER_S))
    return _send_once(client, target, case)


def _retry_after(exchange: Exchange) -> float:
    try:
        return max(0.0, float(exchange.headers.get("retry-after", "1")))
    except ValueError:
        return 1.0


def _send_once(client: httpx.Client, target: Target, case: Case) -> Exchange:
    """Send ``case`` and record everything that came back."""
    headers = {**auth_headers(target, case), **case.headers}
    if case.family == "anthropic":
        headers.setdefault("anthropic-version", "2023-06-01")
    kwargs: dict[str, object] = {}
    if isinstance(case.body, bytes):
        kwargs["content"] = case.body
        headers["content-type"] = "application/json"
    elif case.body is not None:
        kwargs["json"] = case.body
    url = target.base_url + case.path
    try:
        with client.stream(case.method, url, headers=headers, **kwargs) as response:  # type: ignore[arg-type]
            body, events, parser = bytearray(), list[Event](), SSEParser()
            streaming = response.headers.get("content-type", "").startswith("text/event-stream")
            for chunk in response.iter_bytes():
                body += chunk
                if streaming:
                    events += parser.feed(chunk, time.perf_counter_ns())
                if len(body) > MAX_BODY_BYTES:
                    return _exchange(case, response, bytes(body[:MAX_BODY_BYTES]), events,
                                     parser, f"body larger than {MAX_BODY_BYTES} bytes")
            parser.finish()
            return _exchange(case, response, bytes(body), events, parser, None)
    except httpx.HTTPError as exc:
        return Exchange(case.path, case.method, case.body, None,
                        transport_error=f"{type(exc).__name__}: {exc}")


def _exchange(case: Case, response: httpx.Response, body: bytes, events: list[Event],
              parser: SSEParser, problem: str | None) -> Exchange:
    headers = {k.lower(): v for k, v in response.headers.items()}
    return Exchange(case.path, case.method, case.body, response.status_code, headers, body,
                    events, parser.notes, problem)
