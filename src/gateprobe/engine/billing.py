"""Billing reconciliation: does the gateway charge what it served, at its own rates?

A fresh key sends a few deterministic requests per family (plain and streamed); after each,
the key's ``used_fee`` (from the listing) says what it was charged, and the usage in the answer
times the rate from ``/api/v1/pay/model-rates`` says what it should have been charged. Checks:

- ``billing.charge``: a plain request costs usage x rate, within ``tolerance``; the account's
  balance moves as the key's ``used_fee`` does;
- ``billing.stream``: a stream costs what the same request costs unstreamed (judged against the
  plain request's own charge ratio, so an overcharge is reported once, under ``charge``);
- ``billing.refused``: a refused request (400, 429) costs nothing;
- ``billing.max_fee``: a key is stopped (402) once its ``used_fee`` reaches its ``max_fee``,
  and not before.

Rates are our reading of an undocumented endpoint: credits per 1,000 tokens, input and output
(``specs/management.yaml``). Families without usage in the answer (legacy complete) are counted
with the project's tokenizer.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import httpx

from gateprobe.core.families import PATHS
from gateprobe.core.findings import Finding
from gateprobe.core.sse import parse_all
from gateprobe.core.targets import ENDPOINTS, Target, credentials
from gateprobe.core.tokenizer import count_tokens
from gateprobe.engine.cases import documented_extras
from gateprobe.engine.management import (
    BALANCE,
    MODEL_RATES,
    KeyAdmin,
    ManagementUnavailable,
    finding,
)

ABS_TOLERANCE = 0.02
"""Credits: two readings of a two-decimal ``used_fee``, each rounded."""
REL_TOLERANCE = 0.02
"""Of the expected charge: room for a gateway's own rounding of rates."""
MAX_TOKENS = 16
BURST = 13
"""Concurrent requests that meet a 12-per-window tier (the documented free tier) with a 429."""
CAP_REQUESTS = 2.5
"""The ``max_fee`` case's cap, in plain chat requests: two are served, the third or fourth is
refused."""
SAY = [{"role": "user", "content": "Say test"}]
PROMPT = "\n\nHuman: Say test\n\nAssistant:"


@dataclass(frozen=True, slots=True)
class Kind:
    """One kind of billed request."""

    name: str
    endpoint: str
    family: str
    body: dict[str, Any]

    @property
    def model(self) -> str:
        """The model it bills."""
        return str(self.body["model"])

    @property
    def streamed(self) -> bool:
        """Whether it streams."""
        return bool(self.body.get("stream"))


def kinds(target: Target) -> list[Kind]:
    """The plain and streamed requests of every family the target serves."""
    m = target.models
    plain = [
        Kind("chat", "chat", "openai", {"model": m["chat"], "messages": SAY,
                                         "max_tokens": MAX_TOKENS}),
        Kind("completions", "completions", "openai", {
            "model": m["completions"], "prompt": "Say test", "max_tokens": MAX_TOKENS}),
        Kind("messages", "messages", "anthropic", {"model": m["messages"], "messages": SAY,
                                                   "max_tokens": MAX_TOKENS}),
        Kind("complete", "complete", "anthropic", {
            "model": m["complete"], "prompt": PROMPT, "max_tokens_to_sample": MAX_TOKENS}),
    ]
    every = [k for p in plain for k in (p, Kind(
        p.name + " stream", p.endpoint, p.family, {
            **p.body, "stream": True,
            **({"stream_options": {"include_usage": True}} if p.family == "openai" else {})}))]
    every.append(Kind("embeddings", "embeddings", "openai",
                      {"model": m["embeddings"], "input": ["Say", "test"]}))
    return [k for k in every if k.endpoint in target.served]


def worst_case_tokens(target: Target) -> int:
    """The most tokens the category asks for in all (``--dry-run``)."""
    per = MAX_TOKENS + 16
    return per * (len(kinds(target)) + 4) + BURST * 512


@dataclass(slots=True)
class Row:
    """One line of the billing table."""

    kind: str
    endpoint: str = PATHS["chat"]
    """The path it was sent to."""
    input_tokens: int = 0
    output_tokens: int = 0
    expected: float = 0.0
    seen: float = 0.0
    status: int = 0

    @property
    def difference(self) -> float:
        """Seen minus expected."""
        return round(self.seen - self.expected, 4) + 0.0  # never -0.0

    def as_json(self) -> dict[str, Any]:
        """The row for ``billing.json`` and the report."""
        return {"kind": self.kind, "status": self.status, "input_tokens": self.input_tokens,
                "output_tokens": self.output_tokens, "expected": round(self.expected, 4),
                "seen": round(self.seen, 4), "difference": self.difference}


def tolerance(expected: float) -> float:
    """How far a charge may be from the expected one."""
    return ABS_TOLERANCE + REL_TOLERANCE * abs(expected)


class Biller:
    """Requests sent with one key, each charged as its ``used_fee`` moved."""

    def __init__(self, admin: KeyAdmin, key: str, rates: dict[str, tuple[float, float]]):
        self.admin, self.key, self.rates = admin, key, rates
        self.target = admin.target

    def used_fee(self) -> float:
        """The key's ``used_fee``, as listed."""
        row = self.admin.record(self.key)
        if row is None:
            raise ManagementUnavailable("a created key is missing from the listing")
        return float(row.get("used_fee", 0) or 0)

    def send(self, kind: Kind) -> httpx.Response:
        """One request of ``kind`` with this key, read whole."""
        headers = credentials(self.target.profile, kind.family, self.key)
        if kind.family == "anthropic":
            headers["anthropic-version"] = "2023-06-01"
        try:
            return self.admin.http.post(self.target.base_url + ENDPOINTS[kind.endpoint],
                                        json=kind.body, headers=headers)
        except httpx.HTTPError as exc:
            raise ManagementUnavailable(f"{kind.name}: {type(exc).__name__}") from None

    def price(self, model: str, input_tokens: int, output_tokens: int) -> float:
        """Credits at the gateway's own rates."""
        rate_in, rate_out = self.rates.get(model, (0.0, 0.0))
        return (input_tokens * rate_in + output_tokens * rate_out) / 1000

    def row(self, kind: Kind) -> Row:
        """Send ``kind`` and read what it was charged."""
        before = self.used_fee()
        response = self.send(kind)
        row = Row(kind.name, ENDPOINTS[kind.endpoint], status=response.status_code)
        if response.status_code == 200:
            row.input_tokens, row.output_tokens = usage_of(kind, response.content)
            row.expected = self.price(kind.model, row.input_tokens, row.output_tokens)
        row.seen = self.used_fee() - before
        return row


def usage_of(kind: Kind, body: bytes) -> tuple[int, int]:
    """(input, output) tokens of an answer: its usage, or counted where it has none."""
    if kind.streamed:
        return _stream_usage(kind, body)
    payload = json.loads(body)
    usage = payload.get("usage") or {}
    if kind.family == "openai":
        return int(usage.get("prompt_tokens", 0)), int(usage.get("completion_tokens", 0))
    if kind.endpoint == "messages":
        return int(usage.get("input_tokens", 0)), int(usage.get("output_tokens", 0))
    return count_tokens(PROMPT), count_tokens(str(payload.get("completion", "")))


def _payloads(body: bytes) -> Iterator[dict[str, Any]]:
    events, _ = parse_all(body)
    for event in events:
        try:
            payload = json.loads(event.data)
        except ValueError:
            continue
        if isinstance(payload, dict):
            yield payload


def _stream_usage(kind: Kind, body: bytes) -> tuple[int, int]:
    inp = out = 0
    text = ""
    for payload in _payloads(body):
        usage = payload.get("usage") or {}
        if kind.family == "openai" and usage:
            inp, out = int(usage.get("prompt_tokens", 0)), int(usage.get("completion_tokens", 0))
        elif payload.get("type") == "message_start":
            inp = int(payload["message"]["usage"].get("input_tokens", 0))
        elif payload.get("type") == "message_delta":
            out = int(usage.get("output_tokens", 0))
        elif kind.endpoint == "complete":
            text += str(payload.get("completion") or "")
    if kind.endpoint == "complete":
        return count_tokens(PROMPT), count_tokens(text)
    return inp, out


def fetch_rates(admin: KeyAdmin) -> dict[str, tuple[float, float]]:
    """The gateway's rate table (our reading of its shape, see the module docstring)."""
    answer = admin.call("GET", MODEL_RATES)
    rates = (answer.data or {}).get("rates") if isinstance(answer.data, dict) else None
    if answer.status != 200 or not isinstance(rates, dict):
        raise ManagementUnavailable(f"model rates answered {answer.status}")
    return {m: (float(r["input"]), float(r["output"])) for m, r in rates.items()
            if isinstance(r, dict) and "input" in r and "output" in r}


def balance(admin: KeyAdmin) -> float:
    """The account's balance."""
    answer = admin.call("POST", BALANCE)
    if answer.status != 200 or not isinstance(answer.data, dict):
        raise ManagementUnavailable(f"balance answered {answer.status}")
    return float(answer.data.get("balance", 0))


@dataclass(slots=True)
class Reconciliation:
    """What the billing category saw: its table and its findings."""

    rows: list[Row]
    findings: list[Finding]
    stopped: str = ""
    """Why it stopped early ('' when it did not): the spend allowed was reached."""


def spend_cap(target: Target) -> float | None:
    """Credits the category may spend: ``allow_spend`` off loopback, no cap on loopback."""
    return None if target.is_loopback else target.allow_spend


def reconcile(admin: KeyAdmin, spend: float | None = None) -> Reconciliation:
    """The billing category: every kind, a refused request, a 429 burst, the ``max_fee``
    cap; stops once ``spend`` (default: ``spend_cap``) is reached (the keys carry it as
    max_fee)."""
    target = admin.target
    spend = spend if spend is not None else spend_cap(target)
    rates = fetch_rates(admin)
    cap = f"{spend:.2f}" if spend else "0"
    _, key = admin.create(remark="gateprobe billing", max_fee=cap)
    if key is None:
        raise ManagementUnavailable("the billing key could not be created")
    biller = Biller(admin, key, rates)
    start = balance(admin)
    rows: list[Row] = []
    stopped = ""
    for kind in kinds(target):
        if spend is not None and sum(r.seen for r in rows) >= spend:
            stopped = f"the spend allowed ({spend:g} credits) is reached"
            break
        rows.append(biller.row(kind))
    refused = biller.send(Kind("refused (400)", "chat", "openai",
                               {"model": target.models["chat"], "messages": "not a list"}))
    rows.append(Row("refused (400)", status=refused.status_code))  # sent to chat
    rows[-1].seen = biller.used_fee() - sum(r.seen for r in rows[:-1])
    moved = start - balance(admin)
    findings = judge(rows, moved)
    ratio = charge_ratio(rows)
    left = None if spend is None else spend - sum(r.seen for r in rows)
    if left is not None and left <= 0:
        stopped = stopped or f"the spend allowed ({spend:g} credits) is reached"
    if not stopped:
        if documented_extras(target) and "chat" in target.served:  # its documented tiers
            rows.append(burst(admin, rates, ratio, findings, left))
        rows.append(cap_case(admin, rates, ratio, rows, findings))
    return Reconciliation(rows, findings, stopped)


def charge_ratio(rows: list[Row]) -> float:
    """What the gateway charges per credit the rate table asks (1.0 when it bills right),
    from the plain chat request."""
    plain = next((r for r in rows if r.kind == "chat" and r.expected > 0), None)
    return plain.seen / plain.expected if plain else 1.0


def judge(rows: list[Row], balance_moved: float) -> list[Finding]:
    """Plain requests at the rates; streams like their plain twin; refused ones free."""
    found = []
    ratios = {r.kind: r.seen / r.expected for r in rows if r.expected > 0}
    for r in rows:
        if r.status != 200:
            if abs(r.seen) > ABS_TOLERANCE:
                found.append(finding("billing.refused", f"{r.kind} ({r.status}) not billed",
                                     f"charged {r.seen:.2f}", r.endpoint, case=r.kind))
        elif r.kind.endswith(" stream"):
            twin = ratios.get(r.kind.removesuffix(" stream"), 1.0)
            want = r.expected * twin
            if abs(r.seen - want) > tolerance(want):
                found.append(finding("billing.stream", f"{r.kind} billed like the same "
                                     f"request unstreamed: {want:.2f}", f"{r.seen:.2f}",
                                     r.endpoint, case=r.kind))
        elif abs(r.seen - r.expected) > tolerance(r.expected):
            found.append(finding("billing.charge", f"{r.kind}: usage x rate = "
                                 f"{r.expected:.2f}", f"{r.seen:.2f}", r.endpoint,
                                 case=r.kind))
    billed = sum(r.seen for r in rows)
    if abs(balance_moved - billed) > tolerance(billed):
        found.append(finding("billing.charge", f"the balance moves as used_fee: {billed:.2f}",
                             f"{balance_moved:.2f}", BALANCE))
    return found


def burst(admin: KeyAdmin, rates: dict[str, tuple[float, float]], ratio: float,
          found: list[Finding], left: float | None = None) -> Row:
    """``BURST`` concurrent requests on a fresh key (capped at the spend ``left``): the ones
    refused with 429 cost nothing."""
    _, key = admin.create(remark="gateprobe billing burst",
                          max_fee=f"{left:.2f}" if left is not None else "0")
    if key is None:
        raise ManagementUnavailable("the burst key could not be created")
    biller = Biller(admin, key, rates)
    kind = Kind("429 burst", "chat", "openai",
                {"model": admin.target.models["legacy_chat"], "messages": SAY})
    before = biller.used_fee()
    with ThreadPoolExecutor(BURST) as pool:
        answers = list(pool.map(lambda _: biller.send(kind), range(BURST)))
    row = Row(kind.name, status=429 if any(a.status_code == 429 for a in answers) else 200)
    for answer in answers:
        if answer.status_code == 200:
            inp, out = usage_of(kind, answer.content)
            row.input_tokens += inp
            row.output_tokens += out
            row.expected += biller.price(kind.model, inp, out)
    row.seen = biller.used_fee() - before
    want = row.expected * ratio
    if row.status == 429 and row.seen - want > tolerance(want):
        refused = sum(a.status_code == 429 for a in answers)
        found.append(finding("billing.refused", f"{refused} requests refused with 429 not "
                             f"billed: {want:.2f} for the served ones", f"{row.seen:.2f}",
                             row.endpoint, case=kind.name))
    return row


def cap_case(admin: KeyAdmin, rates: dict[str, tuple[float, float]], ratio: float,
             rows: list[Row], found: list[Finding]) -> Row:
    """A key whose ``max_fee`` allows ``CAP_REQUESTS`` chat requests: served while under it,
    refused (402) once at it."""
    chat = next((r for r in rows if r.kind == "chat" and r.expected > 0), None)
    row = Row("max_fee cap")
    if chat is None:
        return row
    cap = max(0.01, round(CAP_REQUESTS * chat.expected * ratio, 2))
    _, key = admin.create(remark="gateprobe billing cap", max_fee=f"{cap:.2f}")
    if key is None:
        raise ManagementUnavailable("the capped key could not be created")
    biller = Biller(admin, key, rates)
    kind = next(k for k in kinds(admin.target) if k.name == "chat")
    # A gateway checks the cap before it serves, so the last request served below it takes
    # used_fee past it: the key stops at the first whole number of requests over the cap.
    per_request = chat.expected * ratio
    row.expected = math.ceil(cap / per_request - 1e-9) * per_request
    for _ in range(int(CAP_REQUESTS) + 3):
        fee = biller.used_fee()
        row.status = biller.send(kind).status_code
        if row.status == 200 and fee >= cap:
            found.append(finding("billing.max_fee", f"402 once used_fee reaches max_fee "
                                 f"{cap:.2f}", f"served at used_fee {fee:.2f}", row.endpoint,
                                 case=row.kind))
            break
        if row.status != 200:
            if fee < cap - tolerance(cap):
                found.append(finding("billing.max_fee", f"served below max_fee {cap:.2f}",
                                     f"{row.status} at used_fee {fee:.2f}", row.endpoint,
                                     case=row.kind))
            break
    row.seen = biller.used_fee()
    return row
