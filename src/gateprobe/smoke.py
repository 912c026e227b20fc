"""A smoke probe of every endpoint: one request each, concurrently, with the expected outcome.

This is what ``gateprobe run`` does until the full conformance, load and report pipeline exists:
it proves the target answers each endpoint in the right shape (status, content type, and for
streams the project's SSE parser and the endpoint's stream grammar), plus the basic error
cases. It is deliberately shallow; the conformance suite is where depth lives.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import httpx

from gateprobe.findings import Finding
from gateprobe.protocols.streams import framing_findings, grammar_for
from gateprobe.sse import Event, SSEParser

CHAT = [{"role": "user", "content": "Say test"}]
LEGACY_PROMPT = "\n\nHuman: Say test\n\nAssistant:"

Check = Callable[[httpx.Response, list[Event]], str | None]


@dataclass(frozen=True, slots=True)
class Probe:
    """One request and what a conformant gateway answers to it."""

    name: str
    method: str
    path: str
    body: dict[str, Any] | None = None
    status: int = 200
    family: str = "openai"
    stream: bool = False
    key: str | None = "default"
    """``default`` uses the target's key; ``None`` sends no credentials; else a literal bad key."""
    check: Check | None = None


@dataclass(frozen=True, slots=True)
class ProbeResult:
    """What happened to one probe."""

    probe: Probe
    status: int | None
    elapsed_ms: float
    problem: str | None
    """None when the answer was as expected."""

    @property
    def ok(self) -> bool:
        """Whether the probe passed."""
        return self.problem is None


def _json_has(*keys: str) -> Check:
    def check(response: httpx.Response, events: list[Event]) -> str | None:
        body = response.json()
        missing = [k for k in keys if k not in body]
        return f"missing {', '.join(missing)}" if missing else None

    return check


def _content_type_is_sse(response: httpx.Response, events: list[Event]) -> str | None:
    content_type = response.headers.get("content-type", "")
    return None if content_type.startswith("text/event-stream") else \
        f"content-type {content_type!r}"


def _error_envelope(family: str) -> Check:
    def check(response: httpx.Response, events: list[Event]) -> str | None:
        try:
            body = response.json()
        except ValueError:
            return "error body is not JSON"
        if family == "anthropic":
            ok = body.get("type") == "error" and isinstance(body.get("error"), dict)
        else:
            ok = isinstance(body.get("error"), dict) and "message" in body["error"]
        return None if ok else f"not the {family} error envelope"

    return check


def default_probes(models: dict[str, str] | None = None) -> list[Probe]:
    """Every endpoint once, streaming where it streams, plus bad key, unknown model, bad prompt."""
    m = {"chat": "gpt-3.5-turbo", "completions": "gpt-3.5-turbo-instruct",
         "embeddings": "text-embedding-3-small", "complete": "claude-2",
         "messages": "claude-3-sonnet", "legacy_chat": "claude-2-web", **(models or {})}
    chat = {"model": m["chat"], "messages": CHAT, "max_tokens": 16}
    comp = {"model": m["completions"], "prompt": "Say test", "max_tokens": 16}
    legacy = {"model": m["complete"], "prompt": LEGACY_PROMPT, "max_tokens_to_sample": 16}
    msgs = {"model": m["messages"], "messages": CHAT, "max_tokens": 16}
    anth = "anthropic"
    return [
        Probe("models", "GET", "/v1/models", check=_json_has("data")),
        Probe("chat", "POST", "/v1/chat/completions", chat, check=_json_has("choices", "usage")),
        Probe("chat stream", "POST", "/v1/chat/completions", {**chat, "stream": True},
              stream=True, check=_content_type_is_sse),
        Probe("claude-2-web chat", "POST", "/v1/chat/completions",
              {"model": m["legacy_chat"], "messages": CHAT}, check=_json_has("choices")),
        Probe("completions", "POST", "/v1/completions", comp, check=_json_has("choices")),
        Probe("completions stream", "POST", "/v1/completions", {**comp, "stream": True},
              stream=True, check=_content_type_is_sse),
        Probe("embeddings", "POST", "/v1/embeddings",
              {"model": m["embeddings"], "input": ["a", "b"]}, check=_json_has("data")),
        Probe("complete", "POST", "/v1/complete", legacy, family=anth,
              check=_json_has("completion", "stop_reason")),
        Probe("complete stream", "POST", "/v1/complete", {**legacy, "stream": True},
              family=anth, stream=True, check=_content_type_is_sse),
        Probe("messages", "POST", "/v1/messages", msgs, family=anth,
              check=_json_has("content", "usage")),
        Probe("messages stream", "POST", "/v1/messages", {**msgs, "stream": True}, family=anth,
              stream=True, check=_content_type_is_sse),
        Probe("count_tokens", "POST", "/v1/messages/count_tokens",
              {"model": m["messages"], "messages": CHAT}, family=anth,
              check=_json_has("input_tokens")),
        Probe("bad key", "POST", "/v1/chat/completions", chat, status=401,
              key="gp-not-a-key", check=_error_envelope("openai")),
        Probe("unknown model", "POST", "/v1/chat/completions",
              {**chat, "model": "no-such-model"}, status=404, check=_error_envelope("openai")),
        Probe("bad legacy prompt", "POST", "/v1/complete",
              {**legacy, "prompt": "Say test"}, status=400, family=anth,
              check=_error_envelope(anth)),
    ]


def auth_headers(profile: str, family: str, key: str | None) -> dict[str, str]:
    """Credentials as the profile sends them for a route family."""
    headers = {"anthropic-version": "2023-06-01"} if family == "anthropic" else {}
    if key is None:
        return headers
    if profile == "anthropic" and family == "anthropic":
        return {**headers, "x-api-key": key}
    return {**headers, "authorization": f"Bearer {key}"}


async def _run_one(client: httpx.AsyncClient, probe: Probe, profile: str, key: str) -> ProbeResult:
    headers = auth_headers(profile, probe.family, key if probe.key == "default" else probe.key)
    start = time.perf_counter_ns()
    try:
        async with client.stream(probe.method, probe.path, json=probe.body,
                                 headers=headers) as response:
            events: list[Event] = []
            findings: list[Finding] = []
            if probe.stream and response.status_code == 200:
                parser = SSEParser()
                grammar = grammar_for(probe.path, probe.body or {})
                async for chunk in response.aiter_raw():
                    for event in parser.feed(chunk, time.perf_counter_ns()):
                        events.append(event)
                        findings += grammar.feed(event)
                parser.finish()
                findings = framing_findings(parser.notes, probe.path) + findings
                findings += grammar.finish()
            else:
                await response.aread()
    except httpx.HTTPError as exc:
        elapsed = (time.perf_counter_ns() - start) / 1e6
        return ProbeResult(probe, None, elapsed, f"{type(exc).__name__}: {exc}")
    elapsed = (time.perf_counter_ns() - start) / 1e6
    if response.status_code != probe.status:
        detail = response.text[:120] if not probe.stream else ""
        return ProbeResult(probe, response.status_code, elapsed,
                           f"status {response.status_code}, expected {probe.status} {detail}")
    try:
        problem = probe.check(response, events) if probe.check else None
    except (ValueError, KeyError, TypeError) as exc:
        problem = f"unreadable answer ({type(exc).__name__})"
    if problem is None and findings:
        first = findings[0]
        more = f" (+{len(findings) - 1} more)" if len(findings) > 1 else ""
        problem = f"{first.check_id}: expected {first.expected}, got {first.observed}{more}"
    return ProbeResult(probe, response.status_code, elapsed, problem)


async def arun_smoke(base_url: str, key: str, profile: str, probes: Sequence[Probe],
                     timeout_s: float = 30.0) -> list[ProbeResult]:
    """Run all probes concurrently against ``base_url``."""
    timeout = httpx.Timeout(timeout_s, connect=5.0)
    async with httpx.AsyncClient(base_url=base_url, timeout=timeout) as client:
        return list(await asyncio.gather(*(_run_one(client, p, profile, key) for p in probes)))


def run_smoke(base_url: str, key: str, profile: str,
              probes: Sequence[Probe] | None = None) -> list[ProbeResult]:
    """Blocking wrapper of ``arun_smoke`` with the default probes."""
    return asyncio.run(arun_smoke(base_url, key, profile, probes or default_probes()))


def result_rows(results: Sequence[ProbeResult]) -> list[list[str]]:
    """Table rows: probe, endpoint, status, time, verdict."""
    return [
        [r.probe.name, f"{r.probe.method} {r.probe.path}",
         "-" if r.status is None else str(r.status), f"{r.elapsed_ms:.0f} ms",
         "ok" if r.ok else f"FAIL: {r.problem}"]
        for r in results
    ]


def summary_json(results: Sequence[ProbeResult]) -> str:
    """The results as JSON, for scripts."""
    return json.dumps([{"probe": r.probe.name, "path": r.probe.path, "status": r.status,
                        "elapsed_ms": round(r.elapsed_ms, 1), "problem": r.problem}
                       for r in results], indent=2)
