"""The search proxies (seeds-extra §4): Serper (``POST``, form body) and Google Custom Search
(``GET ?q=``), each passing its upstream's answer through unchanged.

The answers are canned and deterministic: results built from the query, in the shapes the
third-party clients read (Serper: ``searchParameters`` and ``organic[]``; Google: the Custom
Search JSON API's ``items[]``). Both shapes are gateprobe's reading: the gateway documents
neither. Errors are in the gateway's own envelope.
"""

from __future__ import annotations

import hashlib
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import quote

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute

from gateprobe.core.families import PATHS
from gateprobe.reference.config import GatewayConfig
from gateprobe.reference.faults import SEARCH_ANSWER_WRAPPED
from gateprobe.reference.gateway_api import (
    FORM,
    MISSING,
    AnyMethodRoute,
    ApiError,
    authenticate,
    error_response,
    int_field,
    ok,
    optional_text,
    read_fields,
    require_text,
)

SERPER = PATHS["serper"]
GOOGLE = PATHS["google_search"]
MAX_RESULTS = 10


def _results(query: str, count: int, start: int = 1) -> list[dict[str, Any]]:
    """``count`` results for ``query``, the same every time."""
    out = []
    for n in range(start, start + count):
        slug = hashlib.sha256(f"{query}:{n}".encode()).hexdigest()[:10]
        out.append({"title": f"{query} — result {n}",
                    "link": f"https://example.com/{quote(query[:40])}/{slug}",
                    "snippet": f"What result {n} says about {query}.", "position": n})
    return out


def serper_answer(fields: dict[str, Any]) -> dict[str, Any]:
    """Serper's shape: the parameters echoed, then the organic results."""
    query, text = require_text(fields, "q"), FORM in fields
    num = int_field(fields.get("num", MISSING), "num", 1, 100, 10, text)
    page = int_field(fields.get("page", MISSING), "page", 1, None, 1, text)
    optional_text(fields, "cache")
    params = {"q": query, "gl": optional_text(fields, "gl") or "us",
              "hl": optional_text(fields, "hl") or "en", "type": "search", "num": num,
              "page": page, "engine": "google"}
    shown = min(num, MAX_RESULTS)
    return {"searchParameters": params,
            "organic": _results(query, shown, (page - 1) * shown + 1), "credits": 1}


def google_answer(params: dict[str, Any]) -> dict[str, Any]:
    """The Custom Search JSON API's shape: the request echoed, then ``items``."""
    query = require_text(params, "q")
    num = int_field(params.get("num", MISSING), "num", 1, 10, 10)
    start = int_field(params.get("start", MISSING), "start", 1, 100, 1)
    items = [{"kind": "customsearch#result", "title": r["title"], "link": r["link"],
              "displayLink": "example.com", "snippet": r["snippet"]}
             for r in _results(query, num, start)]
    return {"kind": "customsearch#search",
            "queries": {"request": [{"searchTerms": query, "count": num,
                                     "startIndex": start}]},
            "searchInformation": {"totalResults": "1000", "searchTime": 0.01},
            "items": items}


def routes(config: GatewayConfig) -> list[BaseRoute]:
    """Both proxies."""

    async def serper(request: Request) -> dict[str, Any]:
        return serper_answer(await read_fields(request))

    async def google(request: Request) -> dict[str, Any]:
        return google_answer(dict(request.query_params))

    return [AnyMethodRoute(SERPER, "POST", _endpoint(config, serper), config),
            AnyMethodRoute(GOOGLE, "GET", _endpoint(config, google), config)]


def _endpoint(config: GatewayConfig, answer: Callable[[Request], Awaitable[dict[str, Any]]],
              ) -> Callable[[Request], Awaitable[Response]]:
    async def endpoint(request: Request) -> Response:
        try:
            authenticate(request, config)
            body = await answer(request)
        except ApiError as error:
            return error_response(config, request.url.path, error)
        if SEARCH_ANSWER_WRAPPED.active(config.faults, request.url.path):
            return ok(body)  # the upstream's answer re-wrapped: clients read the wrong keys
        return JSONResponse(body)

    return endpoint
