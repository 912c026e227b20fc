"""One run's state: its budget clock and its breaker.

A run object, not module globals: a second run in the same process (a test suite, a user's
script, ``gateprobe gate`` running the suite twice) starts with a fresh clock and a closed
breaker, so a spent budget or an open breaker never leaks from one run into the next.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

BREAKER_THRESHOLD = 3
"""After this many costly failures (timeouts, oversized answers) of one kind of request
(streaming or not) against one target, the rest of that kind is not sent: a gateway that hangs,
or answers with hundreds of MB, must not cost the whole run a timeout or a download per case."""
COSTLY = ("body.too_large",)
"""Symptoms the breaker counts besides timeouts (ids of ``gateprobe.core.transport``)."""
MAX_WAIT_S = 60.0
"""The longest single ``Retry-After`` a run honours, budget permitting: one minute, the window
of the documented tiers. A longer one is reported, never waited for."""


class Breaker:
    """Counts costly failures per (target, streaming); opens after ``BREAKER_THRESHOLD``."""

    def __init__(self) -> None:
        self._timeouts: dict[tuple[str, bool], int] = {}
        self._limited: dict[str, int] = {}
        self._lock = threading.Lock()

    def still_waits_for_429(self, base_url: str) -> bool:
        """Whether an unasked 429 is still worth waiting out (not after it never helped)."""
        with self._lock:
            return self._limited.get(base_url, 0) < BREAKER_THRESHOLD

    def record_429(self, base_url: str) -> None:
        """A case stayed 429 after waiting ``Retry-After`` every time."""
        with self._lock:
            self._limited[base_url] = self._limited.get(base_url, 0) + 1

    def is_open(self, base_url: str, streaming: bool) -> bool:
        """Whether such requests are no longer sent."""
        with self._lock:
            return self._timeouts.get((base_url, streaming), 0) >= BREAKER_THRESHOLD

    def record(self, base_url: str, streaming: bool, kind: str) -> None:
        """Count a transport failure if it was a timeout or an oversized answer."""
        if kind.endswith("timeout") or kind in COSTLY:
            with self._lock:
                key = (base_url, streaming)
                self._timeouts[key] = self._timeouts.get(key, 0) + 1


@dataclass(slots=True)
class RunState:
    """The budget clock and breaker of one run; its clock starts at the first request."""

    budget_s: float | None = None
    """The whole run's budget in seconds; None: unbounded (the caller bounds it otherwise)."""
    breaker: Breaker = field(default_factory=Breaker)
    clock: Callable[[], float] = time.monotonic
    started: float | None = None
    told: bool = False
    """Whether the test that found the budget spent has said so (once per run)."""
    seen_ids: set[str] = field(default_factory=set)
    """The answer ids seen so far: an id that comes back is a ``response.id`` finding."""
    input_tokens: dict[str, tuple[int, bool]] = field(default_factory=dict)
    """Input tokens billed per input so far, and whether streamed (``Context.input_tokens``)."""
    token_cap: int | None = None
    """The most tokens the run's requests may ask to generate, all together (None: no cap)."""
    tokens_asked: int = 0
    cap_told: bool = False
    """Whether the test that found the token cap reached has said so (once per run)."""
    uncapped: int = 0
    """Requests not sent under the token cap because nothing bounded their cost."""

    def admit_tokens(self, asked: int) -> bool:
        """Count a request that may generate ``asked`` tokens; False (and nothing counted)
        when it would take the run past its cap: that request is not sent."""
        if self.token_cap is not None and self.tokens_asked + asked > self.token_cap:
            return False
        self.tokens_asked += asked
        return True

    pace_s: float = 0.0
    """The least time between two requests: a declared limit spread evenly (0: unpaced)."""
    next_send: float = 0.0

    def pace(self, sleep: Callable[[float], None] = time.sleep) -> None:
        """Wait for this request's turn, so a run stays under its key's declared limit
        instead of meeting the limiter and waiting out its 429s."""
        if self.pace_s <= 0:
            return
        now = self.clock()
        if self.next_send > now:
            sleep(self.next_send - now)
            now = self.next_send
        self.next_send = now + self.pace_s

    def start(self) -> None:
        """Start the budget clock (idempotent)."""
        if self.started is None:
            self.started = self.clock()

    def left_s(self) -> float:
        """Seconds of budget left (infinite without a budget; the full budget before start)."""
        if self.budget_s is None:
            return math.inf
        used = 0.0 if self.started is None else self.clock() - self.started
        return self.budget_s - used

    def spent(self) -> bool:
        """Whether the budget is used up."""
        return self.left_s() < 0

    def affords_wait(self, wait_s: float, request_s: float) -> bool:
        """Whether waiting ``wait_s`` and then one more request of up to ``request_s`` fits in
        what is left: a ``Retry-After`` longer than that is reported at once, never waited."""
        return wait_s <= MAX_WAIT_S and wait_s + request_s <= self.left_s()
