"""The verdict of a rate-limit run, from its raw samples (one JSON object per request).

Every tier's key is driven past its limit within one window, all tiers at once, then waits the
``Retry-After`` it was given and tries once more. A conformant gateway:

- accepts at most the limit within the window, and not fewer than ``limit * (1 - tolerance)``;
- refuses the rest with 429, ``Retry-After`` and the family's error envelope;
- states the tier's limit in its rate-limit headers, with ``remaining`` counting down;
- serves the key again once ``Retry-After`` has passed;
- keeps each key's budget its own: one tier's exhaustion never throttles another key.

The window is read as a sliding one (at most ``limit`` in *any* window-long interval), the
strictest reading of "N requests per minute". A fixed-window gateway whose window boundary falls
inside the burst can accept up to twice the limit; the finding says so.

A limiter that refills (a token bucket, or one whose algorithm is not declared) may also accept
what refills while the burst is decided: at most ``limit * span / window + 1``, the *refill
tolerance*. Accepted beyond it fails; accepted within it is said as information, with how to
judge strictly; and where that tolerance is over ``TELLABLE_SHARE`` of the limit, a burst that
got more than the limit through cannot be told from a looser limit or none: inconclusive.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from gateprobe.commands.load.plan import TELLABLE_SHARE

STRICTLY = ("--rate-algorithm sliding_window (or algorithm: sliding_window under the "
            "target's limits)")
"""How to judge a limiter with no refill tolerance: the note and the inconclusive reason say it."""

HEADER_NAMES = {
    "openai": ("x-ratelimit-limit-requests", "x-ratelimit-remaining-requests",
               "x-ratelimit-reset-requests"),
    "anthropic": ("anthropic-ratelimit-requests-limit", "anthropic-ratelimit-requests-remaining",
                  "anthropic-ratelimit-requests-reset"),
}

CHECK_IDS = ("ratelimit.limit", "ratelimit.under_limit", "ratelimit.isolation",
             "ratelimit.retry_after", "ratelimit.envelope", "ratelimit.headers",
             "ratelimit.recovery", "ratelimit.errors")


IETF_NAMES = ("ratelimit-limit", "ratelimit-remaining", "ratelimit-reset")
"""The IETF draft's separate fields; later drafts fold them into ``RateLimit-Policy: "p";q=N``
and ``RateLimit: "p";r=N;t=S`` (read by ``_ietf_field``)."""


def _ietf_field(headers: Mapping[str, str], name: str, *params: str) -> str | None:
    """A parameter of the draft's structured ``RateLimit``/``RateLimit-Policy`` field."""
    for item in (headers.get(name) or "").replace(",", ";").split(";"):
        key, _, value = item.strip().partition("=")
        if key in params and value:
            return value.strip().strip('"')
    return None


def budget_headers(family: str, headers: Mapping[str, str],
                   names: str = "family") -> dict[str, str | None]:
    """The request-budget headers of an answer, under family-neutral names: the route
    family's, or the IETF draft's (``names``, a ``RATE_HEADERS`` value)."""
    if names == "ietf":
        limit, remaining, reset = IETF_NAMES
        found = {"limit": headers.get(limit) or _ietf_field(headers, "ratelimit-policy", "q"),
                 "remaining": headers.get(remaining) or _ietf_field(headers, "ratelimit", "r"),
                 "reset": headers.get(reset) or _ietf_field(headers, "ratelimit", "t")}
    else:
        limit, remaining, reset = HEADER_NAMES[family]
        found = {"limit": headers.get(limit), "remaining": headers.get(remaining),
                 "reset": headers.get(reset)}
    return {**found, "retry_after": headers.get("retry-after"),
            "budget_headers": ",".join(sorted(
                name for name in headers if "ratelimit" in name.lower()
                or "rate-limit" in name.lower()))}


@dataclass(frozen=True, slots=True)
class Problem:
    """One way a tier's limiting is wrong."""

    check_id: str
    tier: str
    message: str

    def __str__(self) -> str:
        return f"{self.check_id} [{self.tier}]: {self.message}"


@dataclass(slots=True)
class TierResult:
    """One tier's row of the result table."""

    tier: str
    limit: int
    sent: int = 0
    accepted: int = 0
    rejected: int = 0
    failed: int = 0
    retry_after_s: float | None = None
    recovered: bool | None = None
    problems: list[Problem] = field(default_factory=list)
    refill_tolerance: int = 0
    """Accepted beyond the limit that a refilling limiter may explain (0 for a window)."""
    span_s: float = 0.0
    """From the burst's first request sent to its last accepted answer: when it was decided."""
    note: str = ""
    """Accepted beyond the limit, within the refill tolerance: information, not a finding."""
    inconclusive: str = ""
    """Why this burst cannot tell the limiter from a looser one or none ('' when it can)."""

    @property
    def ok(self) -> bool:
        """Whether the tier passed every check, and the run could tell."""
        return not self.problems and not self.inconclusive

    @property
    def outcome(self) -> str:
        """``ok``, ``FAIL`` (problems) or ``INCONCLUSIVE`` (no problem, but cannot tell)."""
        return "FAIL" if self.problems else "INCONCLUSIVE" if self.inconclusive else "ok"

    def as_json(self) -> dict[str, Any]:
        """JSON form for summary files."""
        return {"tier": self.tier, "limit": self.limit, "sent": self.sent,
                "accepted": self.accepted, "rejected": self.rejected, "failed": self.failed,
                "retry_after_s": self.retry_after_s, "recovered": self.recovered,
                "ok": self.ok, "outcome": self.outcome, "problems": [str(p) for p in self.problems],
                "refill_tolerance": self.refill_tolerance, "span_s": round(self.span_s, 3),
                "note": self.note, "inconclusive": self.inconclusive}


@dataclass(slots=True)
class RateLimitVerdict:
    """Every tier's result and the accepted / rejected timeline."""

    tiers: list[TierResult]
    timeline: list[dict[str, Any]]

    @property
    def problems(self) -> list[Problem]:
        """Every problem of every tier."""
        return [p for t in self.tiers for p in t.problems]

    @property
    def ok(self) -> bool:
        """Whether the gateway limited every tier correctly, as far as the run could tell."""
        return not self.problems and not self.inconclusive

    @property
    def inconclusive(self) -> list[str]:
        """Why tiers could not be judged, each naming its tier (empty when every one could)."""
        return [f"{t.tier}: {t.inconclusive}" for t in self.tiers if t.inconclusive]

    @property
    def notes(self) -> list[str]:
        """Accepted beyond a limit within the refill tolerance, per tier: information."""
        return [f"{t.tier}: {t.note}" for t in self.tiers if t.note]

    def as_json(self) -> dict[str, Any]:
        """JSON form for summary files."""
        return {"ok": self.ok, "tiers": [t.as_json() for t in self.tiers],
                "inconclusive": self.inconclusive, "notes": self.notes,
                "problems": [{"check_id": p.check_id, "tier": p.tier, "message": p.message}
                             for p in self.problems],
                "timeline": self.timeline}


def _number(text: str | None) -> float | None:
    try:
        value = float(text) if text is not None else math.nan
    except ValueError:
        return None
    return value if math.isfinite(value) and value >= 0 else None


STRICT_ALGORITHMS = ("sliding_window", "fixed_window")
"""Limiters that accept at most the limit in a burst (within one window) and whose remaining
count only goes down during it; a token bucket (or a limiter not declared) refills meanwhile."""


def judge(samples: Sequence[Mapping[str, Any]], limits: Mapping[str, int], window_s: float,
          tolerance: float = 0.0, algorithm: str = "unknown",
          rate_headers: str = "family") -> RateLimitVerdict:
    """The verdict on a rate-limit run's samples, allowing what the target's limiter may
    accept (``algorithm``: sliding/fixed window, token bucket, or unknown); budget headers
    are judged unless the target declares it states none (``rate_headers``)."""
    by_tier: dict[str, list[Mapping[str, Any]]] = defaultdict(list)
    for s in samples:
        by_tier[s["tier"]].append(s)
    burst_accepts = sorted(s["t"] for s in samples
                           if s["phase"] == "burst" and _accepted(s))
    # Keys drawing on one budget accept, all together, no more than one key's limit; keys
    # that are each merely limited too strictly accept more than that between them.
    one_budget = len(limits) > 1 and \
        len(burst_accepts) <= max(limits.values()) * (1 + tolerance) < sum(limits.values())
    results = [_judge_tier(tier, limit, by_tier.get(tier, []), window_s, tolerance,
                           burst_accepts if one_budget else [],
                           algorithm in STRICT_ALGORITHMS, rate_headers != "none",
                           algorithm == "sliding_window")
               for tier, limit in limits.items()]
    return RateLimitVerdict(results, timeline(samples))


def _accepted(s: Mapping[str, Any]) -> bool:
    return s.get("status") is not None and 200 <= s["status"] < 300


def _judge_tier(tier: str, limit: int, samples: list[Mapping[str, Any]], window_s: float,
                tolerance: float, shared_accepts: list[float], strict: bool = True,
                headers: bool = True, sliding: bool = False) -> TierResult:
    """One tier's result; ``shared_accepts`` are every key's accept times when the keys
    together accepted no more than one budget's worth (else empty)."""
    result = TierResult(tier, limit)
    burst = sorted((s for s in samples if s["phase"] == "burst"), key=lambda s: s["t"])
    if not burst:
        result.problems.append(Problem("ratelimit.errors", tier,
                                       "no request of the burst completed"))
        return result
    accepted = [s for s in burst if _accepted(s)]
    rejected = [s for s in burst if s.get("status") == 429]
    failed = [s for s in burst if not _accepted(s) and s.get("status") != 429]
    result.sent, result.accepted = len(burst), len(accepted)
    result.rejected, result.failed = len(rejected), len(failed)
    if failed:
        what = sorted({str(s.get("status") or s.get("error") or "?")[:80] for s in failed})
        result.problems.append(Problem("ratelimit.errors", tier,
                                       f"{len(failed)} of {len(burst)} requests failed: "
                                       f"{', '.join(what[:3])}"))
    # A refilling limiter may also accept what refills while the burst is decided.
    result.span_s = _decision_span(burst, accepted)
    result.refill_tolerance = 0 if strict else math.floor(limit * result.span_s / window_s) + 1
    ceiling = limit + result.refill_tolerance
    result.problems += _count_problems(tier, limit, ceiling, burst, accepted, rejected, failed,
                                       window_s, tolerance, shared_accepts)
    if limit < len(accepted) <= ceiling:
        _within_refill(result, window_s)
    result.problems += _refusal_problems(result, samples, window_s)
    if headers:
        result.problems += _header_problems(tier, limit, accepted, rejected, strict)
    result.problems += _recovery_problems(result, samples, rejected)
    if sliding and not any(p.check_id == "ratelimit.limit" for p in result.problems):
        result.problems += _recovered_inside_the_window(result, samples, accepted, window_s)
    return result


def _recovered_inside_the_window(result: TierResult, samples: list[Mapping[str, Any]],
                                 accepted: list[Mapping[str, Any]],
                                 window_s: float) -> list[Problem]:
    """Under a declared sliding window, a burst that used the whole budget leaves none for a
    request before the window has slid past the burst's first acceptance: a recovery served
    earlier (because the limiter's Retry-After said so) is one more than the limit in one
    window. With the burst sent at once, this is what tells a refilling bucket from a window.
    """
    if len(accepted) < result.limit or not accepted:
        return []
    first = min(float(s["t"]) for s in accepted)
    early = [s for s in samples if s["phase"] == "recovery" and _accepted(s)
             and float(s["t"]) < first + window_s]
    if not early:
        return []
    return [Problem("ratelimit.limit", result.tier,
                    f"accepted {len(accepted) + len(early)} within one {window_s:g} s window "
                    f"(limit {result.limit}): a recovery request {float(early[0]['t']) - first:.1f}"
                    f" s after the burst's first acceptance was served")]


def _decision_span(burst: list[Mapping[str, Any]], accepted: list[Mapping[str, Any]]) -> float:
    """How long the gateway may have taken deciding the burst: from the first request sent to
    the last accepted answer received (each decision falls between its request and its answer,
    so refill within this span bounds what a bucket may add; older samples without an answer
    time count to the last request sent)."""
    last: float = max((s.get("t_end", s["t"]) for s in accepted), default=burst[-1]["t"])
    return max(0.0, max(last, float(burst[-1]["t"])) - float(burst[0]["t"]))


def _within_refill(result: TierResult, window_s: float) -> None:
    """Accepted beyond the limit, but no more than a refilling limiter may: a note, or, where
    that tolerance is too large a share of the limit to tell, the reason it is inconclusive."""
    beyond, refill = result.accepted - result.limit, result.refill_tolerance
    if refill > TELLABLE_SHARE * result.limit:
        result.inconclusive = (
            f"accepted {result.accepted} (limit {result.limit}) over a {result.span_s:.2f} s "
            f"burst, which a limiter refilling over the {window_s:g} s window may stretch by "
            f"up to {refill} ({refill / result.limit:.0%} of the limit, over "
            f"{TELLABLE_SHARE:.0%}): cannot tell it from a looser limit or none; send the burst "
            f"faster (--max-rps) or judge strictly with {STRICTLY}")
        return
    result.note = (f"{beyond} accepted beyond the limit of {result.limit}, within the refill "
                   f"tolerance of {refill} for a {result.span_s:.2f} s burst (the limiter's "
                   f"algorithm is not a window); to judge strictly: {STRICTLY}")


def _count_problems(tier: str, limit: int, ceiling: int, burst: list[Mapping[str, Any]],
                    accepted: list[Mapping[str, Any]], rejected: list[Mapping[str, Any]],
                    failed: list[Mapping[str, Any]], window_s: float, tolerance: float,
                    shared_accepts: list[float]) -> list[Problem]:
    """How many got through: above the limit, below it, or below it because keys share."""
    floor = math.ceil(limit * (1 - tolerance))
    span = burst[-1]["t"] - burst[0]["t"]
    if len(accepted) > ceiling:
        never = " and none was refused: the limit is not enforced" if not rejected else ""
        refill = f", {ceiling} with what refills meanwhile" if ceiling > limit else ""
        return [Problem(
            "ratelimit.limit", tier,
            f"accepted {len(accepted)} of {len(burst)} requests sent within {span:.1f} s "
            f"(window {window_s:g} s), limit {limit}{refill}{never}"
            + ("" if never else "; a fixed window crossing a boundary can also do this"))]
    if len(accepted) >= floor or failed:
        return []
    first_429 = rejected[0]["t"] if rejected else burst[-1]["t"]
    everyone = sum(1 for t in shared_accepts if t <= first_429)
    if not accepted:
        return [Problem("ratelimit.under_limit", tier,
                        "the first request was refused: the key's budget was not full at the "
                        "start (used within the last window?)")]
    if _shared(accepted, everyone, floor):
        return [Problem("ratelimit.isolation", tier,
                        f"refused after {len(accepted)} accepted (limit {limit}) while all keys "
                        f"together had {everyone} accepted: keys seem to share one budget")]
    return [Problem("ratelimit.under_limit", tier,
                    f"accepted only {len(accepted)} of {len(burst)} (limit {limit}, "
                    f"at least {floor} expected)")]


def _refusal_problems(result: TierResult, samples: list[Mapping[str, Any]],
                      window_s: float) -> list[Problem]:
    """What the refusals said: a Retry-After on each, no longer than the window, an envelope."""
    tier, problems = result.tier, []
    refusals = [s for s in samples if s.get("status") == 429]
    waits = [_number(s.get("retry_after")) for s in refusals]
    missing = sum(w is None for w in waits)
    if missing:
        problems.append(Problem("ratelimit.retry_after", tier,
                                f"{missing} of {len(refusals)} 429 answers lack a valid "
                                f"Retry-After"))
    given = [w for w in waits if w is not None]
    if given:
        result.retry_after_s = max(given)
        if result.retry_after_s > window_s + 1:
            problems.append(Problem("ratelimit.retry_after", tier,
                                    f"Retry-After {result.retry_after_s:g} s is longer than "
                                    f"the {window_s:g} s window"))
    broken = [p for s in refusals for p in s.get("problems") or ()]
    if broken:
        problems.append(Problem("ratelimit.envelope", tier,
                                f"{len({id(s) for s in refusals if s.get('problems')})} of "
                                f"{len(refusals)} 429 answers: {broken[0]}"))
    return problems


def _recovery_problems(result: TierResult, samples: list[Mapping[str, Any]],
                       rejected: list[Mapping[str, Any]]) -> list[Problem]:
    """After waiting Retry-After, the key is served again."""
    recovery = [s for s in samples if s["phase"] == "recovery"]
    if recovery:
        result.recovered = _accepted(recovery[-1])
        if result.recovered:
            return []
        waited = recovery[-1].get("waited_s", 0.0)
        return [Problem("ratelimit.recovery", result.tier,
                        f"still refused ({recovery[-1].get('status') or recovery[-1].get('error')}"
                        f") after waiting {waited:.1f} s as Retry-After said")]
    if rejected:
        return [Problem("ratelimit.recovery", result.tier, "the recovery request never ran")]
    return []


def _shared(accepted: list[Mapping[str, Any]], everyone: int, floor: int) -> bool:
    """Whether a tier refused below its limit because other keys drew on its budget.

    Its own ``remaining`` header says it best: on a budget of its own it counts down by one
    per accepted request; on a shared one it skips the values other keys used. Without that
    header, the counts decide: all keys together accepted no more than one budget holds
    (``everyone`` is 0 otherwise), and enough of it before this tier's first refusal.
    """
    values = [_number(s.get("remaining")) for s in accepted]
    known = [int(v) for v in values if v is not None and v.is_integer()]
    if len(known) >= 2 and len(known) == len(values):
        return max(known) - min(known) + 1 > len(known)
    return everyone >= floor and everyone > len(accepted)


def _header_problems(tier: str, limit: int, accepted: list[Mapping[str, Any]],
                     rejected: list[Mapping[str, Any]], strict: bool = True) -> list[Problem]:
    problems: list[Problem] = []
    answered = accepted + rejected
    no_limit = sum(s.get("limit") is None for s in answered)
    no_remaining = sum(s.get("remaining") is None for s in answered)
    if no_limit or no_remaining:
        found = sorted({n for s in answered for n in (s.get("budget_headers") or "").split(",")
                        if n})
        problems.append(Problem("ratelimit.headers", tier,
                                f"budget headers missing: limit on {no_limit}, remaining on "
                                f"{no_remaining} of {len(answered)} answers; rate-limit "
                                f"headers found: {', '.join(found) or 'none'}"))
        return problems
    stated = sorted({s["limit"] for s in answered})
    if stated != [str(limit)]:
        problems.append(Problem("ratelimit.headers", tier,
                                f"limit header says {', '.join(stated)}; the tier's limit is "
                                f"{limit}"))
    remaining = [_number(s["remaining"]) for s in accepted]
    values = [int(r) for r in remaining if r is not None and r.is_integer()]
    if len(values) != len(remaining) or any(not 0 <= r < limit for r in values):
        problems.append(Problem("ratelimit.headers", tier,
                                "remaining is not a whole number within 0..limit-1 on every "
                                "accepted answer"))
    elif strict and len(set(values)) != len(values):  # a bucket refills: values may repeat
        problems.append(Problem("ratelimit.headers", tier,
                                f"remaining does not count down: {len(values)} accepted "
                                f"answers gave only {len(set(values))} distinct values"))
    if any(_number(s["remaining"]) != 0 for s in rejected):
        problems.append(Problem("ratelimit.headers", tier,
                                "a 429 answer says requests remain"))
    return problems


def timeline(samples: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Accepted / rejected / failed per whole second since the first request, per tier."""
    if not samples:
        return []
    t0 = min(s["t"] for s in samples)
    rows: dict[tuple[int, str], dict[str, Any]] = {}
    for s in samples:
        second = int(s["t"] - t0)
        row = rows.setdefault((second, s["tier"]), {"second": second, "tier": s["tier"],
                                                    "accepted": 0, "rejected": 0, "failed": 0})
        kind = "accepted" if _accepted(s) else "rejected" if s.get("status") == 429 \
            else "failed"
        row[kind] += 1
    return [rows[k] for k in sorted(rows)]
