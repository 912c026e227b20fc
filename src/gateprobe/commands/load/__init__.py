"""Load runs: plans, verdicts and the command that drives Locust; and the public load API for a
locustfile of your own.

Everything here but ``locustlib`` is plain Python the pytest process may import; ``locustlib``
and the locustfiles in ``load/`` import Locust, which monkey-patches the process with gevent,
so they only ever run in the Locust subprocess that ``runner`` starts.

The public load API, for a user's own locustfile run with ``gateprobe load latency
--locustfile my.py`` (or ``tasks``): the names below are resolved on first use, so importing
``gateprobe.commands.load`` never imports Locust; a locustfile importing them is already inside Locust.

- ``session()``: call it once at the top of the locustfile; it reads the run's plan (target,
  keys, caps) and hooks the samples, the self-measurement and the verdict into Locust.
- ``StreamingUser``: a Locust user whose ``stream(kind)`` sends one streaming request to an
  endpoint kind (``chat``, ``messages``, ``complete``, ``speech``) and times it with
  gateprobe's metric definitions (TTFT, TPOT, ITL, e2e, tokens/s, the kernel's receive
  stamps), checks it with the protocol's stream grammar, and records it; ``pick()`` draws a
  kind by the run's ``--weight``s.
- ``TaskUser``: a Locust user whose ``run_task()`` creates a Midjourney task and polls it to its
  end.

The run's caps (duration, requests, rate) and its verdict are the scenario's, as with the
shipped locustfile.
"""

from __future__ import annotations

from typing import Any

PUBLIC = ("session", "StreamingUser", "TaskUser")


def __getattr__(name: str) -> Any:
    """``session``, ``StreamingUser`` and ``TaskUser``, imported (with Locust) on first use."""
    if name in PUBLIC:
        from gateprobe.commands.load import locustlib

        return getattr(locustlib, name)
    raise AttributeError(f"module 'gateprobe.commands.load' has no attribute {name!r}")
