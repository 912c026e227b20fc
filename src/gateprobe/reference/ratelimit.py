"""Per-key request budgets: a sliding window (the default), or a token bucket.

A sliding log rather than a fixed window or a token bucket, because it is the strictest reading of
"12 requests per minute": in *any* window-long interval at most ``limit`` requests are accepted,
so a load test can check the documented limit exactly, with no burst at a window boundary. The
cost is one timestamp per accepted request, bounded by the limit.
"""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

Clock = Callable[[], float]


@dataclass(frozen=True, slots=True)
class Decision:
    """The outcome of one request against its budget, with what the headers must say."""

    allowed: bool
    limit: int
    remaining: int
    """Requests still allowed in the current window after this one."""
    reset_s: float
    """Seconds until the budget is full again (the oldest accepted request leaves the window)."""
    retry_after_s: float
    """Seconds until one more request will be accepted; 0 when allowed."""

    @property
    def retry_after_header(self) -> str:
        """``Retry-After`` in whole seconds, rounded up so that honouring it always succeeds."""
        return str(max(1, math.ceil(self.retry_after_s)))


class RateLimiter:
    """Sliding-window request counters, one per (key, budget group)."""

    def __init__(self, window_s: float, clock: Clock = time.monotonic) -> None:
        if window_s <= 0:
            raise ValueError("window_s must be positive")
        self.window_s = window_s
        self._clock = clock
        self._log: dict[tuple[str, str], deque[float]] = {}

    def hit(self, key: str, group: str, limit: int) -> Decision:
        """Count one request for ``key`` in ``group`` if the budget allows it."""
        now = self._clock()
        log = self._log.setdefault((key, group), deque())
        horizon = now - self.window_s
        while log and log[0] <= horizon:
            log.popleft()
        if len(log) < limit:
            log.append(now)
            return Decision(True, limit, limit - len(log), log[0] + self.window_s - now, 0.0)
        wait = log[0] + self.window_s - now if log else self.window_s
        return Decision(False, limit, 0, wait, wait)

    def reset(self) -> None:
        """Forget every budget (tests reuse one gateway across cases)."""
        self._log.clear()


class TokenBucket:
    """Continuous refill: a bucket of ``limit`` tokens per (key, budget group), refilled at
    ``limit / window_s`` per second, one token a request. Many real gateways limit so; a burst
    may take the whole bucket and what refills while it runs."""

    def __init__(self, window_s: float, clock: Clock = time.monotonic) -> None:
        if window_s <= 0:
            raise ValueError("window_s must be positive")
        self.window_s = window_s
        self._clock = clock
        self._buckets: dict[tuple[str, str], tuple[float, float]] = {}
        """(key, group) -> (tokens, when they were counted)."""

    def hit(self, key: str, group: str, limit: int) -> Decision:
        """Take one token for ``key`` in ``group`` if there is one."""
        now = self._clock()
        rate = limit / self.window_s
        tokens, then = self._buckets.get((key, group), (float(limit), now))
        tokens = min(float(limit), tokens + (now - then) * rate)
        full_in = (limit - tokens) / rate
        if tokens >= 1.0:
            tokens -= 1.0
            self._buckets[(key, group)] = (tokens, now)
            return Decision(True, limit, int(tokens), full_in + 1.0 / rate, 0.0)
        self._buckets[(key, group)] = (tokens, now)
        wait = (1.0 - tokens) / rate
        return Decision(False, limit, 0, full_in, wait)

    def reset(self) -> None:
        """Forget every bucket (tests reuse one gateway across cases)."""
        self._buckets.clear()


class Limiter(Protocol):
    """What the gateway asks of a limiter."""

    window_s: float

    def hit(self, key: str, group: str, limit: int) -> Decision: ...

    def reset(self) -> None: ...


ALGORITHMS: dict[str, Callable[[float, Clock], Limiter]] = {
    "sliding_window": RateLimiter, "token_bucket": TokenBucket}
"""The limiters the reference gateway can run (``gateprobe serve --rate-algorithm``)."""
