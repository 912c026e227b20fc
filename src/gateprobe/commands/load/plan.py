"""The plan of one load run: everything the Locust processes need, as one JSON file.

``gateprobe.commands.load.runner`` builds it from a ``Target`` and ``LoadOptions``, writes it into the
run's folder and hands its path to Locust in ``GATEPROBE_LOAD_PLAN``; every Locust process (the
master and each worker, local or remote) reads the same file. Keys are never in it: only the
names of the environment variables that hold them in the Locust process's environment.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from gateprobe.core.targets import Timeouts

PLAN_ENV = "GATEPROBE_LOAD_PLAN"
PARENT_ENV = "GATEPROBE_LOAD_PARENT"
"""The pid of the ``gateprobe load`` that started a Locust process: it ends with it."""

ARRIVALS = ("closed", "constant", "poisson")
STREAM_ENDPOINTS = {"chat": "/v1/chat/completions", "messages": "/v1/messages",
                    "complete": "/v1/complete", "speech": "/v1/audio/speech",
                    "responses": "/v1/responses"}
AUDIO_KINDS = frozenset({"speech"})
"""Kinds whose answer is audio bytes, not an event stream: timed to their first audio byte.
Opt-in: weight 0 unless asked (``--weight speech=1``), and only on a target declaring it."""
OPT_IN_KINDS = AUDIO_KINDS | {"responses"}
"""Kinds of opt-in families: weight 0 unless asked (``--weight responses=1``). A Responses
stream's TTFT is its first ``response.output_text.delta``."""

# Hard ceilings: no flag goes beyond them, whatever the target.
MAX_DURATION_S = 3600.0
MAX_REQUESTS = 1_000_000
MAX_RPS = 2000.0
DEFAULT_MAX_RPS = 200.0
"""The rate cap of a latency or tasks run unless ``--max-rps`` says otherwise."""
BURST_SHARE = 0.025
"""A rate-limit burst goes out within this share of the window unless ``--max-rps`` holds it
back: what a refilling limiter (a token bucket) may accept meanwhile stays this small a share
of its limit, whatever the window, so a limiter can be told from no limit at all."""
TELLABLE_SHARE = 0.1
"""Above this share of the limit, what a refilling limiter may accept during the burst is
too large to tell it from a wrong limit or none: the verdict is inconclusive."""


@dataclass(frozen=True, slots=True)
class LoadPlan:
    """One load run, as every Locust process sees it."""

    scenario: str
    base_url: str
    profile: str
    out_dir: str
    """The run's report folder: samples, verdict and Locust's files go here."""
    api_key_env: str = "GATEPROBE_API_KEY"
    tier_keys: dict[str, str] = field(default_factory=dict)
    """Tier -> the environment variable holding a key of that tier."""
    limits: dict[str, int] = field(default_factory=dict)
    """Tier -> requests per window."""
    window_s: float = 60.0
    models: dict[str, str] = field(default_factory=dict)
    weights: dict[str, float] = field(default_factory=lambda: {"chat": 1.0, "messages": 1.0,
                                                               "complete": 1.0})
    arrival: str = "closed"
    rate: float = 0.0
    """Arrivals per second over all users, for ``constant`` and ``poisson``."""
    users: int = 1
    max_tokens: int = 64
    prompt: str = "Write a short paragraph about the sea."
    overdrive: float = 1.5
    """Rate limits: each tier is sent this many times its limit within one window."""
    duration_s: float = 30.0
    max_requests: int = 10_000
    max_rps: float = 200.0
    processes: int = 1
    """Load processes sharing the caps (each takes its share)."""
    timeouts: Timeouts = field(default_factory=Timeouts)
    slo: dict[str, float] = field(default_factory=dict)
    algorithm: str = "unknown"
    """How the target's limiter counts (``gateprobe.core.targets.RATE_ALGORITHMS``)."""
    paced: bool = False
    """Its rate cap comes from the key's declared limit: 429s are then the gateway's doing."""
    envelopes: list[str] = field(default_factory=lambda: ["family"])
    """The error envelopes the target answers in (``Target.envelopes``)."""
    rate_headers: str = "family"
    """The budget headers its limiter states (``gateprobe.core.targets.RATE_HEADERS``)."""
    poll_interval_s: float = 1.0
    """Tasks: the wait between two queries of one task."""
    task_deadline_s: float = 120.0
    """Tasks: how long one task may take from its creation to SUCCESS or FAILURE."""
    lag_bound_ms: float | None = None
    """The generator's lag (p99) above which the run is saturated; None: 2 ms or 10% of the
    smallest latency objective (``gateprobe.commands.load.selfcheck.lag_bound``)."""

    @property
    def out(self) -> Path:
        """The report folder."""
        return Path(self.out_dir)

    @property
    def secret_envs(self) -> list[str]:
        """The environment variables holding the keys this run uses."""
        if self.scenario == "rate-limits":
            return sorted(set(self.tier_keys.values()))
        return [self.api_key_env]

    def share(self, total: float) -> float:
        """One process's share of a cap."""
        return total / max(1, self.processes)

    @property
    def request_cap_per_process(self) -> int:
        """This process's share of ``max_requests``."""
        return max(1, math.ceil(self.share(self.max_requests)))

    @property
    def request_bound(self) -> int:
        """The most requests the run can start: each process's cap, enforced (a share is
        rounded up, so a run split over processes may start a few more than
        ``max_requests``)."""
        return self.request_cap_per_process * max(1, self.processes)

    def burst_size(self, tier: str) -> int:
        """Requests sent to ``tier`` in its one-window burst: over the limit by a margin."""
        limit = self.limits[tier]
        return max(limit + 3, math.ceil(limit * self.overdrive))

    @property
    def burst_total(self) -> int:
        """Requests of every tier's burst together."""
        return sum(self.burst_size(t) for t in self.limits)

    def burst_rate(self, share: float = BURST_SHARE) -> float:
        """Requests per second for every burst to go out within ``share`` of the window (the
        bursts go out together: keys that share one budget show it)."""
        return self.burst_total / (share * self.window_s)

    def save(self, path: Path) -> None:
        """Write the plan as JSON."""
        path.write_text(json.dumps(asdict(self), indent=2), encoding="utf-8")

    @classmethod
    def load(cls, path: Path) -> LoadPlan:
        """Read a plan written by ``save``."""
        raw: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
        raw["timeouts"] = Timeouts(**raw.get("timeouts", {}))
        return cls(**raw)

    @classmethod
    def from_env(cls) -> LoadPlan:
        """The plan named by ``GATEPROBE_LOAD_PLAN`` (set by ``gateprobe load``)."""
        where = os.environ.get(PLAN_ENV)
        if not where:
            raise RuntimeError(f"{PLAN_ENV} is not set: start load runs with 'gateprobe load'")
        return cls.load(Path(where))
