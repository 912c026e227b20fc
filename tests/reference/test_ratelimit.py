"""Tests of the sliding-window rate limiter, on a fake clock."""

from __future__ import annotations

import pytest

from gateprobe.reference.ratelimit import RateLimiter


class Clock:
    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


def test_accepts_exactly_the_limit_per_window() -> None:
    clock = Clock()
    rl = RateLimiter(60, clock)
    decisions = [rl.hit("k", "m", 12) for _ in range(15)]
    assert [d.allowed for d in decisions] == [True] * 12 + [False] * 3
    assert [d.remaining for d in decisions[:12]] == list(range(11, -1, -1))
    assert all(d.limit == 12 for d in decisions)


def test_window_slides_one_request_at_a_time() -> None:
    clock = Clock()
    rl = RateLimiter(10, clock)
    for i in range(3):
        clock.t = 100 + i  # accepted at 100, 101, 102
        assert rl.hit("k", "m", 3).allowed
    clock.t = 105
    refused = rl.hit("k", "m", 3)
    assert not refused.allowed
    assert refused.retry_after_s == pytest.approx(5.0)  # the request at 100 leaves at 110
    assert refused.retry_after_header == "5"
    clock.t = 110
    assert rl.hit("k", "m", 3).allowed
    assert not rl.hit("k", "m", 3).allowed  # 101 and 102 are still inside


def test_retry_after_header_rounds_up_and_is_at_least_one() -> None:
    clock = Clock()
    rl = RateLimiter(1.5, clock)
    rl.hit("k", "m", 1)
    clock.t += 1.4
    refused = rl.hit("k", "m", 1)
    assert refused.retry_after_s == pytest.approx(0.1)
    assert refused.retry_after_header == "1"


def test_keys_and_groups_never_share_a_budget() -> None:
    rl = RateLimiter(60, Clock())
    assert all(rl.hit("a", "m", 2).allowed for _ in range(2))
    assert not rl.hit("a", "m", 2).allowed
    assert rl.hit("b", "m", 2).allowed
    assert rl.hit("a", "other", 2).allowed


def test_zero_limit_refuses_everything() -> None:
    d = RateLimiter(60, Clock()).hit("k", "m", 0)
    assert not d.allowed and d.retry_after_s == 60


def test_reset_forgets_budgets() -> None:
    rl = RateLimiter(60, Clock())
    rl.hit("k", "m", 1)
    rl.reset()
    assert rl.hit("k", "m", 1).allowed


def test_window_must_be_positive() -> None:
    with pytest.raises(ValueError, match="positive"):
        RateLimiter(0)


def test_a_token_bucket_takes_its_capacity_then_refills_at_the_rate() -> None:
    from gateprobe.reference.ratelimit import TokenBucket

    now = [0.0]
    bucket = TokenBucket(window_s=10.0, clock=lambda: now[0])  # 12 per 10 s: 1.2 a second
    taken = [bucket.hit("k", "g", 12) for _ in range(13)]
    assert [d.allowed for d in taken] == [True] * 12 + [False]
    assert [d.remaining for d in taken[:3]] == [11, 10, 9]
    refused = taken[-1]
    assert refused.retry_after_s == pytest.approx(10 / 12) and refused.retry_after_header == "1"
    now[0] += refused.retry_after_s
    assert bucket.hit("k", "g", 12).allowed  # exactly what Retry-After promised
    assert not bucket.hit("k", "g", 12).allowed
    assert bucket.hit("other", "g", 12).allowed  # one bucket per key
