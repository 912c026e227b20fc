"""Locust scenario: streaming latency (run it with ``gateprobe load latency``).

Streaming requests to ``/v1/chat/completions``, ``/v1/messages`` and ``/v1/complete`` by the
plan's weights; every stream is parsed and checked by its grammar while under load, and timed
by the one metric definition (TTFB, TTFT, TPOT, ITL, e2e, tokens/s), reported as Locust custom
events and as raw samples. Closed-loop users, or a constant or Poisson arrival rate.
"""

from __future__ import annotations

from locust import constant, task

from gateprobe.commands.load.locustlib import StreamingUser, session

PLAN = session().plan


class LatencyUser(StreamingUser):
    """One user of the latency scenario."""

    wait_time = constant(0)

    @task
    def go(self) -> None:
        """Closed loop: the next request when the last ended; otherwise arrivals run alone."""
        if PLAN.arrival == "closed":
            self.closed_loop()
        else:
            self.open_loop()
