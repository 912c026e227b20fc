"""Ramps and stages (``--stages 30s:10,60s:50,30s:0``, as k6 writes them).

A stage is a duration and a target: over its duration the load moves in a straight line from
where the last stage left it (0 at the start) to its target. The target is closed-loop users
(a Locust ``LoadTestShape`` sets the user count each second: ``locustlib.StagesShape``) or,
with ``--arrival constant|poisson``, the arrival rate over all users (each user's arrivals
follow the rate of the moment). The stages' durations add up to the run's duration.

Pure functions over the plan's numbers: the CLI parses, the runner checks, the Locust side
asks ``target_at`` where the load should be now.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence

from gateprobe.core.errors import UsageError

Stage = tuple[float, float]
"""(duration in seconds, target at its end)."""

_STAGE = re.compile(r"\s*(\d+(?:\.\d+)?)(ms|s|m|h)?\s*:\s*(\d+(?:\.\d+)?)\s*")
_UNIT_S = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, None: 1.0}
MAX_STAGES = 100


def parse_stages(text: str) -> tuple[Stage, ...]:
    """``30s:10,60s:50,30s:0`` as stages (``UsageError`` naming the bad one otherwise); a
    duration is a number of ``ms``, ``s`` (the default), ``m`` or ``h``."""
    parts = text.split(",")
    if not text.strip() or len(parts) > MAX_STAGES:
        raise UsageError(f"--stages {text!r}: expected 1 to {MAX_STAGES} stages such as "
                         "30s:10,60s:50,30s:0")
    stages: list[Stage] = []
    for part in parts:
        match = _STAGE.fullmatch(part)
        if match is None:
            raise UsageError(f"--stages: {part.strip()!r} is not DURATION:TARGET (e.g. 30s:10)")
        number, unit, target = match.groups()
        seconds = float(number) * _UNIT_S[unit]
        if not seconds > 0:
            raise UsageError(f"--stages: {part.strip()!r} lasts no time")
        stages.append((seconds, float(target)))
    return tuple(stages)


def total_s(stages: Sequence[Sequence[float]]) -> float:
    """How long the stages last together."""
    return sum(float(stage[0]) for stage in stages)


def peak(stages: Sequence[Sequence[float]]) -> float:
    """The highest target of any stage."""
    return max((float(stage[1]) for stage in stages), default=0.0)


def target_at(stages: Sequence[Sequence[float]], elapsed_s: float) -> float | None:
    """Where the load should be ``elapsed_s`` into the run: on the line from the last stage's
    target to this one's; None once every stage is over."""
    start, before = 0.0, 0.0
    for duration, target in ((float(s[0]), float(s[1])) for s in stages):
        if elapsed_s < start + duration:
            share = max(0.0, elapsed_s - start) / duration
            return before + (target - before) * share
        start, before = start + duration, target
    return None


def users_at(stages: Sequence[Sequence[float]], elapsed_s: float) -> int | None:
    """Closed-loop users ``elapsed_s`` into the run (rounded to the nearest; None: over)."""
    target = target_at(stages, elapsed_s)
    return None if target is None else int(math.floor(target + 0.5))
