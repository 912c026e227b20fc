"""A smoke run: one case per endpoint and stream, plus the basic error cases, concurrently.

This is ``gateprobe run --smoke``: a quick look at a gateway without the full pipeline.
It is a thin runner: the cases come from ``gateprobe.engine.cases``, are sent by
``gateprobe.engine.probe`` and judged by every registered check, exactly as in the conformance
suite, only fewer of them.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import httpx

from gateprobe.core.checks import Context, run_checks
from gateprobe.core.findings import Finding
from gateprobe.core.targets import Target
from gateprobe.engine.cases import (
    Case,
    auth_cases,
    endpoint_cases,
    error_cases,
    legacy_prompt_cases,
    media_cases,
    stream_cases,
)
from gateprobe.engine.probe import client_for, send

STREAMS = {"chat", "completions", "messages", "complete"}


@dataclass(frozen=True, slots=True)
class SmokeResult:
    """What happened to one case."""

    case: Case
    status: int | None
    elapsed_ms: float
    findings: list[Finding]

    @property
    def ok(self) -> bool:
        """Whether every check passed."""
        return not self.findings

    @property
    def verdict(self) -> str:
        """``ok``, or the first finding in one line."""
        if self.ok:
            return "ok"
        first = self.findings[0]
        more = f" (+{len(self.findings) - 1} more)" if len(self.findings) > 1 else ""
        return f"FAIL: {first.check_id}: expected {first.expected}, got {first.observed}{more}"


def smoke_cases(target: Target) -> list[Case]:
    """Every endpoint once, each stream once, and one bad key, unknown model, bad prompt."""
    streams = [c for c in stream_cases(target) if c.name in STREAMS]
    errors = [c for c in error_cases(target) if c.name == "unknown model"][:1]
    bad_key = [c for c in auth_cases(target) if c.name == "bad key"][:1]
    prompt = [c for c in legacy_prompt_cases(target) if c.name == "no turns"]
    media = [c for c in media_cases(target) if c.category == "endpoint"]
    once: dict[str, Case] = {}
    for case in media:  # a media family once, not in each of its formats
        once.setdefault(case.path, case)
    endpoints = [c for c in endpoint_cases(target) if c not in media]
    return endpoints + list(once.values()) + streams + errors + bad_key + prompt


def run_smoke(target: Target, cases: Sequence[Case] | None = None,
              workers: int = 8) -> list[SmokeResult]:
    """Send the cases concurrently (one shared client) and judge each with every check."""
    import gateprobe.protocols.conformance  # noqa: F401  (registers the built-in checks)

    def one(client: httpx.Client, case: Case) -> SmokeResult:
        start = time.perf_counter()
        exchange = send(client, target, case)
        elapsed = (time.perf_counter() - start) * 1000
        ctx = Context.of(target, case.family, case.expect)
        return SmokeResult(case, exchange.status, elapsed, run_checks(ctx, exchange))

    with client_for(target) as client, \
            ThreadPoolExecutor(max_workers=workers) as pool:
        return list(pool.map(lambda c: one(client, c), cases or smoke_cases(target)))


def label(case: Case) -> str:
    """The case's category and name: ``stream: chat``."""
    return f"{case.category}: {case.name}"


def result_rows(results: Sequence[SmokeResult]) -> list[list[str]]:
    """Table rows: case, endpoint, status, time, verdict."""
    return [[label(r.case), f"{r.case.method} {r.case.path}",
             "-" if r.status is None else str(r.status), f"{r.elapsed_ms:.0f} ms", r.verdict]
            for r in results]


def summary_json(results: Sequence[SmokeResult]) -> str:
    """The results as JSON, for scripts."""
    return json.dumps([{"case": label(r.case), "path": r.case.path, "status": r.status,
                        "elapsed_ms": round(r.elapsed_ms, 1),
                        "findings": [f.check_id for f in r.findings],
                        "problem": None if r.ok else r.verdict}
                       for r in results], indent=2)
