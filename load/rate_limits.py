"""Locust scenario: tier rate limits (run it with ``gateprobe load rate-limits``).

One user per tier key, all tiers at once: each sends more than its tier's limit within one
window, waits the ``Retry-After`` it was given, and tries once more. The verdict
(``gateprobe.commands.load.ratelimits``) is judged from the raw samples when the run ends.
"""

from __future__ import annotations

from gateprobe.commands.load.locustlib import TierUser, session, tier_users

PLAN = session().plan


def run_tier(user: TierUser) -> None:
    """The whole of a tier user's work: one pass, then it stops."""
    user.run_tier()


globals().update(tier_users(PLAN, run_tier))
