"""The rate-limit verdict and the SLOs, on hand-made samples: each rule can fail alone."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from gateprobe.commands.load import ratelimits
from gateprobe.commands.load.slo import evaluate_latency, load_slo, validate
from gateprobe.core.errors import ConfigError
from gateprobe.core.metrics import aggregate


def sample(tier: str, t: float, status: int | None, remaining: int | None = None,
           limit: int = 4, phase: str = "burst", **extra: Any) -> dict[str, Any]:
    return {"tier": tier, "t": t, "status": status, "phase": phase,
            "limit": None if limit is None else str(limit),
            "remaining": None if remaining is None else str(remaining),
            "retry_after": "2" if status == 429 else None, "problems": [], **extra}


def good_tier(tier: str = "free", limit: int = 4, t0: float = 0.0) -> list[dict[str, Any]]:
    out = [sample(tier, t0 + i * 0.1, 200, limit - 1 - i, limit) for i in range(limit)]
    out += [sample(tier, t0 + 1 + i * 0.1, 429, 0, limit) for i in range(3)]
    # a sliding window frees its first request's place one window (10 s) after it
    out.append(sample(tier, t0 + 10.5, 200, limit - 1, limit, phase="recovery", waited_s=9.0))
    return out


def checks(samples: list[dict[str, Any]], limits: dict[str, int] | None = None,
           tolerance: float = 0.0, algorithm: str = "sliding_window") -> set[str]:
    verdict = ratelimits.judge(samples, limits or {"free": 4}, 10.0, tolerance, algorithm)
    return {p.check_id for p in verdict.problems}


def bucket(limit: int, window_s: float, span_s: float, t0: float = 100.0,
           tier: str = "free") -> list[dict[str, Any]]:
    """What a correct token bucket answers to a burst spread over ``span_s``: the bucket,
    then what refills (remaining repeats as it refills), then 429s."""
    n = limit + int(limit * span_s / window_s)
    out = [sample(tier, t0 + span_s * i / n, 200, max(0, limit - 1 - i), limit)
           for i in range(n)]
    out += [sample(tier, t0 + span_s, 429, 0, limit) for _ in range(3)]
    out.append(sample(tier, t0 + span_s + 1, 200, limit - 1, limit, phase="recovery",
                      waited_s=1.0))
    return out


def test_a_token_bucket_is_judged_by_what_it_may_accept() -> None:
    """Refilling during the burst is no excess for a token bucket (or a limiter nobody
    declared); a sliding window declared is held to its limit."""
    samples = bucket(limit=12, window_s=10.0, span_s=5.0)
    assert sum(1 for s in samples if s["status"] == 200 and s["phase"] == "burst") == 18
    assert checks(samples, {"free": 12}, algorithm="token_bucket") == set()
    assert checks(samples, {"free": 12}, algorithm="unknown") == set()
    assert "ratelimit.limit" in checks(samples, {"free": 12}, algorithm="sliding_window")


def test_a_refill_tolerance_over_a_tenth_of_the_limit_is_inconclusive_never_ok() -> None:
    """A burst spread over half the window: a bucket may add half the limit meanwhile, so 18
    accepted of 12 cannot be told from a limit of 18 or none. Not a finding, never ok."""
    samples = bucket(limit=12, window_s=10.0, span_s=5.0)
    verdict = ratelimits.judge(samples, {"free": 12}, 10.0, 0.1, "unknown")
    assert not verdict.problems and not verdict.ok
    [why] = verdict.inconclusive
    assert why.startswith("free: accepted 18 (limit 12)") and "up to 7" in why
    assert "--rate-algorithm sliding_window" in why
    assert verdict.tiers[0].outcome == "INCONCLUSIVE"


def test_within_a_small_refill_tolerance_is_information_and_beyond_it_fails() -> None:
    """A burst decided within 0.2 s of a 10 s window: a bucket may add 1 to 60; 61 accepted
    passes with a note naming the tolerance, the excess and how to judge strictly; 63 (and a
    no-limit gateway's all) fail."""
    def burst(accepted: int, sent: int = 90) -> list[dict[str, Any]]:
        out = [sample("vip", 100 + 0.2 * i / sent, 200, max(0, 59 - i), 60,
                      t_end=100.2) for i in range(accepted)]
        out += [sample("vip", 100.2, 429, 0, 60) for _ in range(sent - accepted)]
        return out + [sample("vip", 103, 200, 59, 60, phase="recovery", waited_s=2.0)]

    verdict = ratelimits.judge(burst(61), {"vip": 60}, 10.0, 0.1, "unknown")
    assert verdict.ok and not verdict.inconclusive
    [note] = verdict.notes
    assert "1 accepted beyond the limit of 60, within the refill tolerance of 2" in note
    assert "--rate-algorithm sliding_window" in note
    for accepted in (63, 90):
        verdict = ratelimits.judge(burst(accepted), {"vip": 60}, 10.0, 0.1, "unknown")
        assert "ratelimit.limit" in {p.check_id for p in verdict.problems}
    assert "not enforced" in str(ratelimits.judge(burst(90, 90), {"vip": 60}, 10.0, 0.1,
                                                  "unknown").problems[0])


def test_a_correct_tier_passes_and_the_timeline_counts_per_second() -> None:
    verdict = ratelimits.judge(good_tier(), {"free": 4}, 10.0)
    assert verdict.ok, verdict.problems
    [row] = verdict.tiers
    assert (row.sent, row.accepted, row.rejected, row.recovered) == (7, 4, 3, True)
    assert verdict.timeline[0] == {"second": 0, "tier": "free", "accepted": 4, "rejected": 0,
                                   "failed": 0}
    assert verdict.timeline[1]["rejected"] == 3


def test_over_the_limit() -> None:
    samples = good_tier()
    samples[4] = sample("free", 1.0, 200, 0)
    assert "ratelimit.limit" in checks(samples)


def test_under_the_limit_beyond_tolerance() -> None:
    samples = good_tier(limit=10)
    for s in samples[7:10]:
        s.update(status=429, remaining="0")
    assert "ratelimit.under_limit" in checks(samples, {"free": 10})
    assert "ratelimit.under_limit" not in checks(samples, {"free": 10}, tolerance=0.3)


def test_a_budget_shared_with_another_key_is_named_as_such() -> None:
    free = good_tier("free", 4)
    free[2:4] = [sample("free", 0.2, 429, 0), sample("free", 0.3, 429, 0)]
    free[1]["remaining"] = "0"  # the key's own count skipped what the other key used
    vip = [sample("vip", 0.05 * i, 200, 9 - i, 10) for i in range(3)]
    found = checks(free + vip, {"free": 4, "vip": 10}, tolerance=0.0)
    assert "ratelimit.isolation" in found
    # Without budget headers the counts decide: together no more than one budget.
    for s in free + vip:
        s["remaining"] = None
    assert "ratelimit.isolation" in checks(free + vip, {"free": 4, "vip": 10}, tolerance=0.0)


def test_every_key_limited_too_strictly_is_not_a_shared_budget() -> None:
    """Each tier refused at 75% of its own limit: together they accepted more than any one
    budget holds, so the keys are not sharing one; each is simply under its limit."""
    samples = []
    for tier, limit in (("free", 12), ("vip", 60)):
        strict = limit * 3 // 4
        samples += [sample(tier, i * 0.01, 200, limit - 1 - i, limit) for i in range(strict)]
        samples += [sample(tier, 1 + i * 0.01, 429, 0, limit) for i in range(limit - strict)]
    found = checks(samples, {"free": 12, "vip": 60}, tolerance=0.1)
    assert "ratelimit.under_limit" in found and "ratelimit.isolation" not in found


def test_missing_or_absurd_retry_after() -> None:
    samples = good_tier()
    samples[4]["retry_after"] = None
    assert "ratelimit.retry_after" in checks(samples)
    samples = good_tier()
    samples[4]["retry_after"] = "3600"
    assert "ratelimit.retry_after" in checks(samples)


def test_envelope_problems_are_reported() -> None:
    samples = good_tier()
    samples[5]["problems"] = ["error.envelope: text/plain body"]
    assert "ratelimit.envelope" in checks(samples)


@pytest.mark.parametrize("bend", ["no_limit", "wrong_limit", "stuck_remaining",
                                  "429_with_remaining"])
def test_budget_headers(bend: str) -> None:
    samples = good_tier()
    if bend == "no_limit":
        samples[0]["limit"] = None
    elif bend == "wrong_limit":
        samples[0]["limit"] = "60"
    elif bend == "stuck_remaining":
        samples[1]["remaining"] = samples[0]["remaining"]
    else:
        samples[5]["remaining"] = "2"
    assert "ratelimit.headers" in checks(samples)


def test_no_recovery() -> None:
    samples = good_tier()
    samples[-1]["status"] = 429
    assert "ratelimit.recovery" in checks(samples)
    assert "ratelimit.recovery" in checks(samples[:-1])  # refused, and never tried again


def test_transport_failures_and_silence() -> None:
    samples = good_tier()
    samples[4] = sample("free", 1.0, None, error="ConnectionResetError")
    assert "ratelimit.errors" in checks(samples)
    assert checks([], {"free": 4}) == {"ratelimit.errors"}


def test_slo_file_validation(tmp_path: Path) -> None:
    assert validate({"ttft_p95_ms": 100, "error_rate_max": 0}, "x") == {
        "ttft_p95_ms": 100.0, "error_rate_max": 0.0}
    with pytest.raises(ConfigError, match="did you mean 'ttft_p95_ms'"):
        validate({"ttft_p95": 1}, "x")
    with pytest.raises(ConfigError, match="must be a number"):
        validate({"ttft_p95_ms": "fast"}, "x")
    with pytest.raises(ConfigError, match="fraction"):
        validate({"rate_limit_tolerance": 2}, "x")
    shipped = Path(__file__).resolve().parents[2] / "load" / "slo.yaml"
    assert "ttft_p95_ms" in load_slo(shipped)
    bad = tmp_path / "slo.yaml"
    bad.write_text("- a list\n")
    with pytest.raises(ConfigError, match="mapping"):
        load_slo(bad)


def test_every_mistake_of_an_slo_file_is_reported_at_once() -> None:
    with pytest.raises(ConfigError) as info:
        validate({"ttft_p95": 1, "e2e_p95_ms": "fast", "rate_limit_tolerance": 2}, "slo.yaml")
    assert str(info.value).splitlines() == [
        "slo.yaml: unknown SLO 'ttft_p95' (did you mean 'ttft_p95_ms'?)",
        "slo.yaml: SLO e2e_p95_ms must be a number >= 0, got 'fast'",
        "slo.yaml: rate_limit_tolerance is a fraction of the limit, below 1"]


def test_latency_slos_are_judged_on_raw_percentiles() -> None:
    samples = [{"ttft_ms": float(v), "tpot_ms": 2.0, "itl_ms": [1.0], "ok": True,
                "output_tokens": 5, "tokens_per_s": 50.0} for v in range(1, 101)]
    summary = aggregate(samples)
    assert evaluate_latency(summary, {"ttft_p95_ms": 96}, 0) == []
    [breach] = evaluate_latency(summary, {"ttft_p95_ms": 95}, 0)
    assert breach.check_id == "slo.ttft_p95_ms" and "95.05 > 95" in str(breach)
    assert [b.slo for b in evaluate_latency(summary, {"tokens_per_s_p50_min": 60,
                                                      "stream_findings_max": 0}, 1)] == [
        "tokens_per_s_p50_min", "stream_findings_max"]
    # No samples at all is a breach, never a silent pass.
    assert evaluate_latency(aggregate([]), {"e2e_p95_ms": 1e9}, 0)[0].slo == "e2e_p95_ms"


def test_missing_budget_headers_name_the_ones_found() -> None:
    """A gateway with budget headers of other names is told which were found."""
    samples = [{**s, "limit": None, "budget_headers": "x-ratelimit-limit-tokens,ratelimit"}
               for s in good_tier()]
    verdict = ratelimits.judge(samples, {"free": 4}, 10.0, 0.0, "sliding_window")
    [problem] = [p for p in verdict.problems if p.check_id == "ratelimit.headers"]
    assert "headers found: ratelimit, x-ratelimit-limit-tokens" in problem.message
    assert ratelimits.budget_headers("openai", {"X-RateLimit-Limit-Requests": "4",
                                                "content-type": "x"})["budget_headers"] == \
        "X-RateLimit-Limit-Requests"


def test_ietf_budget_headers_are_read_when_declared() -> None:
    """A limiter stating the IETF draft's fields (separate, or folded into ``RateLimit``) is
    read by them when the target declares ``headers: ietf``; under the family's names the
    same answer lacks them, and says which were found."""
    separate = {"ratelimit-limit": "12", "ratelimit-remaining": "7", "ratelimit-reset": "30"}
    folded = {"ratelimit-policy": '"default";q=12;w=60', "ratelimit": '"default";r=7;t=30'}
    for headers in (separate, folded):
        read = ratelimits.budget_headers("openai", headers, "ietf")
        assert (read["limit"], read["remaining"], read["reset"]) == ("12", "7", "30")
        family = ratelimits.budget_headers("openai", headers)
        assert family["limit"] is None and family["remaining"] is None
        assert family["budget_headers"] == ",".join(sorted(headers))


def test_budget_headers_are_not_judged_when_the_target_states_none() -> None:
    samples = [{**s, "limit": None, "remaining": None} for s in good_tier()]
    assert "ratelimit.headers" in checks(samples)
    verdict = ratelimits.judge(samples, {"free": 4}, 10.0, 0.0, "sliding_window", "none")
    assert verdict.problems == []


def test_an_inconclusive_rate_limit_run_is_no_finding_and_never_ok(tmp_path: Path) -> None:
    """The run's verdict says why it cannot tell, fails no check (no finding), is not ok, and
    its one line names the tier as INCONCLUSIVE."""
    from gateprobe.commands.load.plan import LoadPlan
    from gateprobe.commands.load.results import findings_of, summary_line
    from gateprobe.commands.load.scenarios import verdict

    plan = LoadPlan("rate-limits", "http://127.0.0.1:1", "ohmygpt", str(tmp_path),
                    limits={"free": 12}, window_s=10.0, slo={"rate_limit_tolerance": 0.1})
    result = verdict(plan, bucket(limit=12, window_s=10.0, span_s=5.0), 7.0)
    assert not result["ok"] and result["failed_checks"] == [] and findings_of(result) == []
    assert result["inconclusive"]["why"].startswith("free: accepted 18 (limit 12)")
    assert summary_line(result).startswith("free 18/12 INCONCLUSIVE; free: accepted 18")


def test_a_recovery_served_inside_a_declared_sliding_window_is_over_the_limit() -> None:
    """With the burst sent at once, a refilling bucket and a window accept alike; what tells
    them apart is a recovery served before the window slid past the burst (Retry-After 5 s
    from a bucket, where a 10 s window was declared)."""
    samples = [s for s in good_tier() if s["phase"] != "recovery"]
    samples.append(sample("free", 5.0, 200, 0, 4, phase="recovery", waited_s=4.0))
    assert "ratelimit.limit" in checks(samples)  # declared sliding_window
    assert "ratelimit.limit" not in checks(samples, algorithm="token_bucket")
