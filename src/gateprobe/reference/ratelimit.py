"""Per-key request budgets over a sliding window.

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
