"""The public load API, for a locustfile of your own (``gateprobe load latency --locustfile
my.py``, or ``tasks``). The load command itself lives in ``gateprobe.commands.load``.

The names below are resolved on first use, so importing ``gateprobe.load`` never imports
Locust (which monkey-patches the process with gevent); a locustfile importing them is already
inside Locust.

- ``session()``: call it once at the top of the locustfile; it reads the run's plan (target,
  keys, caps) and hooks the samples, the self-measurement and the verdict into Locust.
- ``StreamingUser``: a Locust user whose ``stream(kind)`` sends one streaming request to an
  endpoint kind (``chat``, ``messages``, ``complete``, ``speech``; None: the run's workload
  decides, ``gateprobe.commands.load.workloads``) and times it with
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
    raise AttributeError(f"module 'gateprobe.load' has no attribute {name!r}")
