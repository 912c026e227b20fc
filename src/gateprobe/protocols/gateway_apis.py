"""The seeds' gateway's own APIs: its envelope, and the search proxies' answers.

These routes are not OpenAI's or Anthropic's: their errors (and every Midjourney answer) are in
the gateway's own ``{statusCode, message, data}`` (seeds-extra §5), whatever envelope the
target's model routes use, so ``error.envelope`` leaves them to ``gateway.envelope``. A search
success is the upstream's answer passed through (§4): Serper's or Google Custom Search's shape,
as ``specs/gateway.yaml`` reads them.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import parse_qs, urlsplit

from gateprobe.core.checks import NOT_APPLICABLE, CheckResult, Context, Exchange, check
from gateprobe.core.findings import Finding, Severity
from gateprobe.core.specs import schema_errors
from gateprobe.protocols import _gateway

MJ_PREFIX = "/api/v1/ai/draw/mj/"
SERPER = "/api/v1/openapi/search/serper/v1"
GOOGLE = "/api/v1/openapi/search/google-search/v1"
SEARCH_SCHEMAS = {SERPER: "SerperAnswer", GOOGLE: "GoogleSearchAnswer"}
EVIDENCE_CHARS = 300


def path_of(endpoint: str) -> str:
    """The endpoint without its query string (cases name pages as ``...?page=1``)."""
    return endpoint.split("?", 1)[0]


def query_of(endpoint: str) -> dict[str, str]:
    """The endpoint's query parameters (the first value of each)."""
    return {k: v[0] for k, v in parse_qs(urlsplit(endpoint).query).items()}


def is_gateway_api(endpoint: str) -> bool:
    """Whether the endpoint is one of the gateway's own APIs."""
    path = path_of(endpoint)
    return path.startswith(MJ_PREFIX) or path in SEARCH_SCHEMAS


def finding(ctx: Context, ex: Exchange, check_id: str, severity: Severity, expected: str,
            observed: str) -> Finding:
    """A finding with the answer's start as evidence, redacted."""
    evidence = ex.body[:EVIDENCE_CHARS].decode("utf-8", "replace")
    return Finding(check_id, path_of(ex.endpoint), severity, expected,
                   ctx.redactor.text(observed), ctx.redactor.text(evidence))


def json_of(body: bytes) -> Any:
    """The body as JSON, None when it is not."""
    try:
        return json.loads(body)
    except ValueError:
        return None


def _judged(ctx: Context, ex: Exchange) -> bool:
    return ctx.family == "gateway" and ex.status is not None and ex.transport_error is None \
        and is_gateway_api(ex.endpoint)


@check("gateway.envelope", Severity.HIGH,
       "the gateway's own APIs answer in {statusCode, message, data}")
def gateway_envelope(ctx: Context, ex: Exchange) -> CheckResult:
    """Errors (and every Midjourney answer) in the gateway's envelope: a client of these routes
    reads ``statusCode`` and ``message``, and nothing else. gateprobe's reading: an error's
    ``statusCode`` is its HTTP status."""
    if not _judged(ctx, ex):
        return NOT_APPLICABLE
    assert ex.status is not None
    payload = json_of(ex.body)
    if ex.status >= 400:
        error = _gateway.parse_error(payload)
        if error is None:
            return [finding(ctx, ex, "gateway.envelope", Severity.HIGH,
                            "{statusCode, message, data: null}",
                            f"status {ex.status} with a body that is not the envelope")]
        if error.status_code != ex.status:
            return [finding(ctx, ex, "gateway.envelope", Severity.MEDIUM,
                            f"statusCode {ex.status} (the HTTP status)",
                            f"statusCode {error.status_code}")]
        return []
    if path_of(ex.endpoint).startswith(MJ_PREFIX) and not (
            isinstance(payload, dict) and payload.get("statusCode") == 200
            and isinstance(payload.get("message"), str) and "data" in payload):
        return [finding(ctx, ex, "gateway.envelope", Severity.HIGH,
                        "{statusCode: 200, message, data}", "a success without the envelope")]
    return []


@check("search.answer", Severity.MEDIUM, "a search proxy passes its upstream's answer through")
def search_answer(ctx: Context, ex: Exchange) -> CheckResult:
    """The Serper or Google Custom Search shape, for the query that was asked: a proxy that
    re-wraps or trims it breaks every client written against the upstream."""
    schema = SEARCH_SCHEMAS.get(path_of(ex.endpoint))
    if schema is None or not _judged(ctx, ex) or not 200 <= (ex.status or 0) < 300:
        return NOT_APPLICABLE
    payload = json_of(ex.body)
    errors = schema_errors("gateway", schema, payload) if payload is not None else [
        "(root): not JSON"]
    if errors:
        return [finding(ctx, ex, "search.answer", Severity.MEDIUM, f"a {schema}",
                        "; ".join(errors[:3]))]
    asked = ex.request.get("q") if isinstance(ex.request, dict) else \
        query_of(ex.endpoint).get("q")
    echoed = payload["searchParameters"]["q"] if schema == "SerperAnswer" else \
        ((payload.get("queries") or {}).get("request") or [{}])[0].get("searchTerms", asked)
    if asked is not None and echoed != asked:
        return [finding(ctx, ex, "search.answer", Severity.MEDIUM, f"the answer for {asked!r}",
                        f"the answer for {echoed!r}")]
    return []
