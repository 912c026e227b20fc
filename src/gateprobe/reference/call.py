"""One request's journey through the reference gateway: auth, body, model, budget, answer.

Every endpoint handler gets a ``Call`` and uses its steps in the order the upstream APIs apply
them (auth -> version -> body -> model -> permission -> overload -> rate limit), so the status a
client sees for a request with several faults is the one the real API would give.
"""

from __future__ import annotations

import json
import math
import random
import re
import secrets
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, timedelta
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from gateprobe.reference.billing import Usage
from gateprobe.reference.capacity import Capacity
from gateprobe.reference.config import ApiKey, GatewayConfig, Model, Timing
from gateprobe.reference.envelopes import Family, GatewayError
from gateprobe.reference.faults import (
    ACCEPT_ANY_KEY,
    ACCEPT_X_API_KEY,
    FLAKY_500,
    FLAKY_EVERY,
    IGNORE_MODEL_PERMISSIONS,
    INVALID_KEY_QUOTED,
    LATENCY_CREEP,
    OFF_BY,
    RATELIMIT_NEVER_RECOVERS,
    RATELIMIT_NO_RETRY_AFTER,
    RATELIMIT_NOT_ENFORCED,
    RATELIMIT_OFF_BY_FEW,
    RATELIMIT_SHARED_BUDGET,
    RATELIMIT_TOO_STRICT,
    RATELIMIT_WRONG_LIMIT_HEADER,
    STRICT_SHARE,
    WRONG_LIMIT_FACTOR,
    apply_stream_faults,
    creep,
)
from gateprobe.reference.management import CapReached, KeyStore
from gateprobe.reference.prefill import PrefixCache, prefill_ns
from gateprobe.reference.ratelimit import Decision, Limiter
from gateprobe.reference.stored import Stored
from gateprobe.reference.streaming import (
    EventStreamResponse,
    PlannedEvent,
    Trace,
    TraceStore,
    sleep_until,
)

LEGACY_ANTHROPIC_VERSION = "2023-01-01"
"""The one version before 2023-06-01 with different behaviour (cumulative legacy stream)."""
LATEST_ANTHROPIC_VERSION = "2023-06-01"
"""The newest version PROTOCOL.md documents; the gateway's default when the header is absent."""
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")


@dataclass(slots=True)
class GatewayState:
    """Mutable state shared by all requests of one gateway instance."""

    config: GatewayConfig
    limiter: Limiter
    traces: TraceStore
    inflight: int = 0
    requests: int = 0
    """Requests that drew jitter so far (seeds the next one)."""
    refused: set[tuple[str, str]] = field(default_factory=set)
    """(key, budget group) pairs refused once: only the ``ratelimit-never-recovers`` fault
    reads it."""
    admitted: int = 0
    """Requests past the rate limiter: only the ``flaky-500`` fault counts them."""
    rate_limited: int = 0
    """Requests refused with 429 by the limiter (tests read it: a run that met the limit)."""
    capacity: Capacity = field(init=False)
    """The serving capacity every answer waits for (``GatewayConfig.capacity``)."""
    served: int = 0
    """API requests answered with a success (the metrics endpoint's ``requests served``; the
    ``latency-creep`` and ``memory-leak`` faults grow with it)."""
    store: KeyStore = field(init=False)
    """Every key and balance, shared by the model routes and the management API."""
    stored: Stored = field(default_factory=Stored)
    """Stored responses, conversations and chat completions (``reference/responses.py``)."""
    prefixes: PrefixCache = field(default_factory=PrefixCache)
    """Prompt blocks seen (``Timing.prefix_cache``: a prefix seen before costs no prefill)."""

    def __post_init__(self) -> None:
        self.store = KeyStore(self.config)
        self.capacity = Capacity(self.config.capacity)

    def reset(self) -> None:
        """Forget budgets, traces and created keys (tests reuse one gateway across cases)."""
        self.capacity.reset()
        self.store.reset()
        self.stored.clear()
        self.limiter.reset()
        self.traces.clear()
        self.prefixes.clear()
        self.refused.clear()
        self.requests = 0
        self.admitted = 0
        self.rate_limited = 0
        self.served = 0


@dataclass(slots=True)
class Call:
    """The context of one request: who asked, for what, and the headers every answer carries."""

    request: Request
    family: Family
    state: GatewayState
    endpoint: str
    t0_ns: int
    request_id: str = field(default_factory=lambda: "req_" + secrets.token_hex(12))
    key: ApiKey | None = None
    anthropic_version: str = LATEST_ANTHROPIC_VERSION
    headers: dict[str, str] = field(default_factory=dict)
    """Headers for the answer, success or error: request id, rate-limit state."""
    counted: bool = False
    """Whether this call holds an in-flight slot that must be released."""
    usage: Usage | None = None
    """What the request consumed, set by its handler once it is served: the app bills it."""

    def __post_init__(self) -> None:
        name = "request-id" if self.family == "anthropic" else "x-request-id"
        self.headers[name] = self.request_id

    @property
    def config(self) -> GatewayConfig:
        """The gateway's configuration."""
        return self.state.config

    # -- auth ------------------------------------------------------------------------------
    def authenticate(self) -> ApiKey:
        """Find the caller's key by the profile's auth convention, or raise 401."""
        h = self.request.headers
        auth = h.get("authorization", "")
        bearer = auth[7:].strip() if auth[:7].lower() == "bearer " else None
        x_api_key = h.get("x-api-key")
        if self.family == "anthropic" and self.config.profile == "anthropic":
            # x-api-key is the documented header; the anthropic SDK 2.x sends its api_key as a
            # Bearer token instead, so upstream accepts both.
            presented = x_api_key or bearer
            missing = "x-api-key header is required"
        else:
            presented = bearer
            if not presented and ACCEPT_X_API_KEY.active(self.config.faults, self.endpoint):
                presented = x_api_key
            if self.family == "openai":
                missing = (
                    "You didn't provide an API key. You need to provide your API key in an "
                    "Authorization header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY)."
                )
            elif x_api_key is not None:
                missing = (
                    "This gateway reads the key from 'Authorization: Bearer KEY', not from "
                    "x-api-key."
                )
            else:
                missing = "Authorization header is required (Authorization: Bearer KEY)."
        if not presented:
            raise GatewayError("authentication", missing)
        try:
            key = self.state.store.model_key(presented, self.endpoint)
        except CapReached:
            raise GatewayError("permission", CapReached.message, code="insufficient_balance_error",
                               status=402) from None
        if key is None and ACCEPT_ANY_KEY.active(self.config.faults, self.endpoint):
            key = next(iter(self.config.keys.values()))
        if key is None:
            if self.family == "anthropic":
                raise GatewayError("authentication", "invalid x-api-key"
                                   if self.config.profile == "anthropic" else "invalid api key")
            shown = presented if INVALID_KEY_QUOTED.active(self.config.faults, self.endpoint) \
                else mask_key(presented)
            raise GatewayError("authentication", f"Incorrect API key provided: {shown}.",
                               code="invalid_api_key")
        self.key = key
        return key

    def check_anthropic_version(self) -> None:
        """Require (profile anthropic) or default (gateway) the ``anthropic-version`` header."""
        version = self.request.headers.get("anthropic-version")
        if version is None:
            if self.config.profile == "anthropic":
                raise GatewayError("invalid_request", "anthropic-version: header is required")
            return
        if not is_known_anthropic_version(version):
            shown = version if len(version) <= 40 else version[:40] + "..."
            raise GatewayError(
                "invalid_request", f"anthropic-version: invalid version {shown!r}"
            )
        self.anthropic_version = version

    # -- body ------------------------------------------------------------------------------
    async def json_body(self) -> dict[str, Any]:
        """Read the body within the size cap and decode it as one JSON object."""
        cap = self.config.max_body_bytes
        declared = self.request.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > cap:
            raise self._too_large()
        chunks: list[bytes] = []
        size = 0
        async for chunk in self.request.stream():
            size += len(chunk)
            if size > cap:
                raise self._too_large()
            chunks.append(chunk)
        raw = b"".join(chunks)
        try:
            # JSON Schema (and so the specs) counts 5.0 as an integer: so does the gateway.
            body = json.loads(raw, parse_float=_number)
        except (ValueError, UnicodeDecodeError):
            if self.family == "anthropic":
                raise GatewayError("invalid_request", "There was an error parsing the body of "
                                   "your request as JSON.") from None
            raise GatewayError(
                "invalid_request",
                "We could not parse the JSON body of your request. (HINT: This likely means you "
                "aren't using your HTTP library correctly. The OpenAI API expects a JSON payload, "
                "but what was sent was not valid JSON.)",
            ) from None
        if not isinstance(body, dict):
            raise GatewayError("invalid_request", "The request body must be a JSON object.")
        return body

    def _too_large(self) -> GatewayError:
        cap = self.config.max_body_bytes
        return GatewayError(
            "request_too_large",
            f"Request exceeds the maximum allowed number of bytes ({cap}).",
        )

    # -- model and budget ------------------------------------------------------------------
    def resolve_model(self, name: str, api: str) -> Model:
        """The model a request names, checked against the API and the key's permissions."""
        model = self.config.models.get(name)
        if model is None:
            raise self._unknown_model(name)
        if api not in model.apis:
            raise GatewayError(
                "invalid_request",
                f"{name} is not supported on this API ({self.endpoint}).",
                param="model",
                code="model_not_supported",
            )
        assert self.key is not None, "authenticate() first"
        if not self.key.may_use(name) and not IGNORE_MODEL_PERMISSIONS.active(
                self.config.faults, self.endpoint):
            profile = self.config.profile
            if profile == "openai":
                raise self._unknown_model(name)  # OpenAI does not reveal models you cannot use
            if profile == "anthropic":
                raise GatewayError("permission", f"Your API key does not have permission to use "
                                   f"the specified resource: model {name}")
            # The gateway documents 401 for "the key does not have the model permission".
            raise GatewayError(
                "authentication",
                f"This key does not have permission for model {name}: add it to the key's "
                "permission list.",
                code="model_not_permitted",
                status=401,
            )
        return model

    def _unknown_model(self, name: str) -> GatewayError:
        if self.family == "anthropic":
            return GatewayError("not_found", f"model: {name}")
        return GatewayError(
            "not_found",
            f"The model `{name}` does not exist or you do not have access to it.",
            param="model",
            code="model_not_found",
        )

    def admit(self, model: Model) -> None:
        """Take an in-flight slot and one request from the key's budget, or raise 529/503/429."""
        state = self.state
        if self.config.max_inflight and state.inflight >= self.config.max_inflight:
            raise GatewayError("overloaded", "Overloaded" if self.family == "anthropic"
                               else "The server is overloaded. Please retry your request later.")
        assert self.key is not None
        tier = self.config.tiers.get(self.key.tier)
        limit = tier.limit_for(model.id) if tier else None
        if limit is not None:
            decision = self._budget(*limit)
            self.headers.update(rate_limit_headers(self.family, decision))
            if not decision.allowed:
                state.rate_limited += 1
                raise self._rate_limited(model, decision)
        if FLAKY_500.active(self.config.faults, self.endpoint):
            state.admitted += 1
            if state.admitted % FLAKY_EVERY == 0:
                raise GatewayError("api_error", "Internal server error")
        state.inflight += 1
        self.counted = True

    def _budget(self, group: str, n: int) -> Decision:
        """The limiter's decision, bent by whichever rate-limit fault is enabled."""
        assert self.key is not None
        faults, endpoint, state = self.config.faults, self.endpoint, self.state
        budget_key = "*shared*" if RATELIMIT_SHARED_BUDGET.active(faults, endpoint) \
            else self.key.key
        enforced = n + OFF_BY if RATELIMIT_OFF_BY_FEW.active(faults, endpoint) else \
            math.ceil(n * STRICT_SHARE) if RATELIMIT_TOO_STRICT.active(faults, endpoint) \
            else n
        decision = state.limiter.hit(budget_key, group, enforced)
        if enforced != n:  # the headers still state the documented limit
            decision = replace(decision, limit=n,
                               remaining=max(0, min(n - 1, decision.remaining + n - enforced))
                               if decision.allowed else 0)
        if RATELIMIT_WRONG_LIMIT_HEADER.active(faults, endpoint):
            decision = replace(decision, limit=n * WRONG_LIMIT_FACTOR)
        if not decision.allowed and RATELIMIT_NOT_ENFORCED.active(faults, endpoint):
            decision = replace(decision, allowed=True, retry_after_s=0.0)
        if RATELIMIT_NEVER_RECOVERS.active(faults, endpoint):
            if not decision.allowed:
                state.refused.add((budget_key, group))
            elif (budget_key, group) in state.refused:
                decision = replace(decision, allowed=False, remaining=0,
                                   retry_after_s=state.limiter.window_s)
        return decision

    def release(self) -> None:
        """Give back the in-flight slot (when the answer is fully sent)."""
        if self.counted:
            self.counted = False
            self.state.inflight -= 1

    def _rate_limited(self, model: Model, d: Decision) -> GatewayError:
        window = self.state.limiter.window_s
        headers = {"retry-after": d.retry_after_header}
        if self.family == "anthropic":
            message = (
                f"Number of requests has exceeded your rate limit ({d.limit} requests per "
                f"{window:g} s for {model.id}). Please try again later or contact sales."
            )
        else:
            headers["retry-after-ms"] = str(math.ceil(d.retry_after_s * 1000))
            message = (
                f"Rate limit reached for {model.id} on requests per {window:g} s: Limit "
                f"{d.limit}, Used {d.limit}, Requested 1. Please try again in "
                f"{duration(d.retry_after_s)}."
            )
        if RATELIMIT_NO_RETRY_AFTER.active(self.config.faults, self.endpoint):
            headers = {}
        return GatewayError("rate_limit", message, code="rate_limit_exceeded", headers=headers)

    # -- answers ---------------------------------------------------------------------------
    def rng(self) -> random.Random:
        """Per-request jitter source: the n-th request of a gateway started with the same seed
        gets the same jitter, so a sequential run is reproducible."""
        self.state.requests += 1
        return random.Random(self.config.seed * 1_000_003 + self.state.requests)

    def content_offsets(self, count: int, prompt: str = "") -> list[int]:
        """Due times of ``count`` content events: TTFT (plus the prefill of ``prompt``, when
        the timing charges one), then one ITL apart, with jitter."""
        timing = self.config.timing
        offsets = schedule(count, timing, self.rng() if timing.jitter_ms else None)
        extra = prefill_ns(prompt, timing.prefill_us_per_token,
                           self.state.prefixes if timing.prefix_cache else None)
        return [o + extra for o in offsets] if extra else offsets

    async def respond_json(self, body: Mapping[str, Any], done_offset_ns: int) -> Response:
        """A JSON answer, sent when the whole generation would have finished."""
        trace = Trace(self.request_id, self.endpoint, self.t0_ns)
        self.state.traces.add(trace)
        cut_ns = int(self.config.cut_after_s * 1e9)
        gate, queued_at = self.state.capacity, time.perf_counter_ns()
        await gate.acquire()  # a full gateway queues this answer, as it queues streams
        try:
            return await self._json_answer(body, trace, done_offset_ns, cut_ns,
                                           time.perf_counter_ns() - queued_at
                                           if gate.slots else 0)
        finally:
            gate.release()

    async def _json_answer(self, body: Mapping[str, Any], trace: Trace, done_offset_ns: int,
                           cut_ns: int, queued_ns: int) -> Response:
        """The JSON answer once it has a slot: due ``queued_ns`` later than planned."""
        trace.queued_ns = queued_ns
        done_offset_ns += queued_ns
        if cut_ns and done_offset_ns > cut_ns:
            # What a CDN in front does to a long non-streaming request: its own error page.
            await sleep_until(self.t0_ns + cut_ns)
            trace.status = "cut"
            self.release()
            return Response(CDN_TIMEOUT_PAGE, status_code=524, media_type="text/html")
        due = self.t0_ns + done_offset_ns
        await sleep_until(due, int(self.config.timing.spin_ms * 1e6))
        trace.scheduled_ns.append(due)
        trace.sent_ns.append(time.perf_counter_ns())
        trace.content.append(True)
        trace.status = "complete"
        self.release()
        return Response(json.dumps(body, ensure_ascii=False), headers=self.headers,
                        media_type="application/json")

    def respond_stream(self, plan: Sequence[PlannedEvent]) -> Response:
        """A planned SSE answer; the in-flight slot is released when the stream ends."""
        if self.config.faults:
            plan = apply_stream_faults(self.config.faults, self.endpoint, list(plan))
            if LATENCY_CREEP.active(self.config.faults, self.endpoint):
                plan = creep(list(plan), self.state.served)
        trace = Trace(self.request_id, self.endpoint, self.t0_ns)
        self.state.traces.add(trace)
        return EventStreamResponse(plan, trace, headers=self.headers, on_close=self.release,
                                   spin_ns=int(self.config.timing.spin_ms * 1e6),
                                   gate=self.state.capacity)


CDN_TIMEOUT_PAGE = (
    "<!DOCTYPE html><html><head><title>api.example | 524: A timeout occurred</title></head>"
    "<body><h1>A timeout occurred</h1><p>Error code 524</p><p>The origin web server timed out "
    "responding to this request.</p></body></html>")


def _number(text: str) -> float | int:
    value = float(text)
    return int(value) if value.is_integer() else value


def is_known_anthropic_version(version: str) -> bool:
    """2023-01-01, or any real date from 2023-06-01 on.

    Newer versions than the documented 2023-06-01 exist (the anthropic SDK 2.x sends
    2026-10-21); they keep the 2023-06-01 wire behaviour for every route served here, and a
    double that refused the current official client would be useless.
    """
    if version == LEGACY_ANTHROPIC_VERSION:
        return True
    if not _DATE.fullmatch(version):
        return False
    try:
        date.fromisoformat(version)
    except ValueError:
        return False
    return version >= LATEST_ANTHROPIC_VERSION


def schedule(count: int, timing: Timing, rng: random.Random | None) -> list[int]:
    """Content due offsets in ns: first at TTFT, each next one ITL later, each +- jitter."""
    ttft, itl, jitter = timing.ttft_ms * 1e6, timing.itl_ms * 1e6, timing.jitter_ms * 1e6
    if not jitter or rng is None:
        return [int(ttft + itl * i) for i in range(count)]
    offsets: list[int] = []
    t = max(0.0, ttft + rng.uniform(-jitter, jitter))
    for i in range(count):
        if i:
            t += max(0.0, itl + rng.uniform(-jitter, jitter))
        offsets.append(int(t))
    return offsets


def rate_limit_headers(family: Family, d: Decision) -> dict[str, str]:
    """The family's request-budget headers for a decision."""
    if family == "anthropic":
        reset = datetime.now(UTC) + timedelta(seconds=d.reset_s)
        return {
            "anthropic-ratelimit-requests-limit": str(d.limit),
            "anthropic-ratelimit-requests-remaining": str(d.remaining),
            "anthropic-ratelimit-requests-reset": reset.isoformat(timespec="seconds").replace(
                "+00:00", "Z"
            ),
        }
    return {
        "x-ratelimit-limit-requests": str(d.limit),
        "x-ratelimit-remaining-requests": str(d.remaining),
        "x-ratelimit-reset-requests": duration(d.reset_s),
    }


def duration(seconds: float) -> str:
    """OpenAI's duration format: ``17ms``, ``1.5s``, ``6m0s``."""
    if seconds < 1:
        return f"{max(1, round(seconds * 1000))}ms"
    minutes, rest = divmod(seconds, 60)
    text = f"{rest:.3f}".rstrip("0").rstrip(".") + "s"
    return f"{int(minutes)}m{text}" if minutes else text


def mask_key(key: str) -> str:
    """Show a key as OpenAI does in errors: the ends only, never the whole value."""
    if len(key) <= 8:
        return "*" * len(key)
    return f"{key[:3]}{'*' * min(len(key) - 7, 20)}{key[-4:]}"

