"""The reference gateway's serving capacity: at most K answers generated at once, the rest
queued first come, first served.

A real upstream that is full does not refuse: it queues, and the wait shows up in the client's
time to first token (and first byte: the headers wait too, as behind a proxy that waits for its
upstream). That is the knee a rate sweep looks for, at a rate known in advance: K streams of
``d`` seconds each serve at most ``K / d`` requests per second (``gateprobe load sweep``).

``max_inflight`` is the other way to be full: it refuses (529/503) at once. The two are
independent; with both, a request over ``max_inflight`` is refused before it queues.
"""

from __future__ import annotations

import asyncio
from collections import deque


class Capacity:
    """A first-in, first-out counting gate for one event loop. The order is the point (a queue
    that lets late arrivals overtake would hide the wait in a few requests' tails), so it is
    spelled out here rather than left to ``asyncio.Semaphore``, whose fairness changed across
    Python versions."""

    def __init__(self, slots: int) -> None:
        self.slots = slots
        """How many answers are generated at once; 0: no limit (``acquire`` never waits)."""
        self.busy = 0
        self._waiters: deque[asyncio.Future[None]] = deque()

    @property
    def queued(self) -> int:
        """Requests waiting for a slot now."""
        return sum(1 for w in self._waiters if not w.done())

    async def acquire(self) -> None:
        """Take a slot, waiting in line for one (a cancelled waiter leaves the line, or hands
        on the slot it was just given)."""
        if not self.slots:
            return
        if self.busy < self.slots and not self.queued:
            self.busy += 1
            return
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        try:
            await waiter
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled():
                self.release()  # the slot came with the cancellation: pass it on
            else:
                self._waiters.remove(waiter)
            raise

    def release(self) -> None:
        """Give a slot back: to the first in line, or to the pool."""
        if not self.slots:
            return
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)  # the slot passes on: ``busy`` is unchanged
                return
        self.busy = max(0, self.busy - 1)

    def reset(self) -> None:
        """Forget every slot and waiter (tests reuse one gateway across cases)."""
        self.busy = 0
        self._waiters.clear()
