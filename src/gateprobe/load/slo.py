"""Service-level objectives of a load run: a flat YAML mapping of thresholds.

Latency thresholds are named ``<metric>_p<q>_ms`` (metric: ``ttfb``, ``ttft``, ``tpot``,
``itl``, ``e2e``; q: 50, 90, 95, 99) and are upper bounds on that percentile of the raw samples.
``tokens_per_s_p50_min`` is a lower bound. ``error_rate_max`` bounds failed requests over all
requests; ``stream_findings_max`` bounds grammar findings; ``rate_limit_tolerance`` is how far
below its limit (a fraction of the limit) a tier's accepted count may fall.

The tasks scenario has its own: ``task_success_p<q>_ms`` bounds that percentile of the tasks'
times to SUCCESS, ``task_failure_rate_max`` the share of tasks that did not reach SUCCESS (a
FAILURE, the task deadline, a failed request), ``task_findings_max`` the lifecycle findings.
"""

from __future__ import annotations

import difflib
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gateprobe.errors import ConfigError

DEFAULT_SLO_FILE = "slo.yaml"

_PERCENTILE = re.compile(r"(ttfb|ttft|tpot|itl|e2e)_p(50|90|95|99)_ms")
_TASK_PERCENTILE = re.compile(r"task_success_p(50|90|95|99)_ms")
OTHER_KEYS = ("tokens_per_s_p50_min", "error_rate_max", "stream_findings_max",
              "rate_limit_tolerance", "task_failure_rate_max", "task_findings_max")
KNOWN = tuple(f"{m}_p{q}_ms" for m in ("ttfb", "ttft", "tpot", "itl", "e2e", "task_success")
              for q in (50, 90, 95, 99)) + OTHER_KEYS


@dataclass(frozen=True, slots=True)
class Breach:
    """One objective a run missed."""

    slo: str
    limit: float
    observed: float

    @property
    def check_id(self) -> str:
        """The finding id: ``slo.<name>``."""
        return f"slo.{self.slo}"

    def __str__(self) -> str:
        relation = "<" if self.slo.endswith("_min") else ">"
        return f"{self.slo}: {self.observed:.4g} {relation} {self.limit:g}"


def validate(raw: Any, source: str) -> dict[str, float]:
    """The thresholds of ``raw``, each name known and each value a non-negative number
    (every mistake at once, one ``ConfigError`` line each)."""
    found = mistakes(raw, source)
    if found:
        raise ConfigError("\n".join(found))
    return {str(name): float(value) for name, value in (raw or {}).items()}


def mistakes(raw: Any, source: str) -> list[str]:
    """Every mistake of a set of thresholds, each a line starting with ``source``."""
    if raw is None:
        return []
    if not isinstance(raw, Mapping):
        return [f"{source}: SLOs must be a mapping of name: threshold"]
    out: list[str] = []
    for name, value in raw.items():
        if name not in KNOWN:
            close = difflib.get_close_matches(str(name), KNOWN, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            out.append(f"{source}: unknown SLO {name!r}{hint}")
        elif isinstance(value, bool) or not isinstance(value, int | float) or value < 0 \
                or not math.isfinite(value):
            out.append(f"{source}: SLO {name} must be a number >= 0, got {value!r}")
        elif name == "rate_limit_tolerance" and value >= 1:
            out.append(f"{source}: rate_limit_tolerance is a fraction of the limit, below 1")
    return out


def load_slo(path: Path) -> dict[str, float]:
    """Read an SLO file."""
    from gateprobe.yamlfile import read_yaml

    return validate(read_yaml(path, "SLO file"), str(path))


def evaluate_latency(summary: Mapping[str, Any], slo: Mapping[str, float],
                     stream_findings: int) -> list[Breach]:
    """The objectives a latency run's summary (``metrics.aggregate``) misses.

    A percentile with no samples at all (every request failed) is a breach of its objective,
    never a silent pass.
    """
    breaches: list[Breach] = []
    for name, limit in slo.items():
        if match := _PERCENTILE.fullmatch(name):
            metric, q = match.groups()
            value = summary.get(f"{metric}_ms", {}).get(f"p{q}", math.nan)
            if math.isnan(value) or value > limit:
                breaches.append(Breach(name, limit, value))
        elif name == "tokens_per_s_p50_min":
            value = summary.get("tokens_per_s", {}).get("p50", math.nan)
            if math.isnan(value) or value < limit:
                breaches.append(Breach(name, limit, value))
        elif name == "error_rate_max" and summary.get("error_rate", 0.0) > limit:
            breaches.append(Breach(name, limit, summary["error_rate"]))
        elif name == "stream_findings_max" and stream_findings > limit:
            breaches.append(Breach(name, limit, float(stream_findings)))
    return breaches


def evaluate_tasks(summary: Mapping[str, Any], slo: Mapping[str, float]) -> list[Breach]:
    """The objectives a tasks run's summary (``results.task_summary``) misses; the latency
    objectives of the same file are not this scenario's.

    A percentile with no task that succeeded is a breach, never a silent pass."""
    breaches: list[Breach] = []
    for name, limit in slo.items():
        if match := _TASK_PERCENTILE.fullmatch(name):
            value = summary.get("time_to_success_ms", {}).get(f"p{match.group(1)}", math.nan)
            value = math.nan if value is None else value
            if math.isnan(value) or value > limit:
                breaches.append(Breach(name, limit, value))
        elif name == "task_failure_rate_max" and summary.get("failure_rate", 0.0) > limit:
            breaches.append(Breach(name, limit, summary["failure_rate"]))
        elif name == "task_findings_max" and summary.get("findings", 0) > limit:
            breaches.append(Breach(name, limit, float(summary["findings"])))
    return breaches
