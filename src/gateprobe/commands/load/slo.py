"""Service-level objectives of a load run: a flat YAML mapping of thresholds.

Latency thresholds are named ``<metric>_p<q>_ms`` (metric: ``ttfb``, ``ttft``, ``tpot``,
``itl``, ``e2e``; q: 50, 90, 95, 99) and are upper bounds on that percentile of the raw samples.
``tokens_per_s_p50_min`` is a lower bound. ``error_rate_max`` bounds failed requests over all
requests; ``stream_findings_max`` bounds grammar findings; ``rate_limit_tolerance`` is how far
below its limit (a fraction of the limit) a tier's accepted count may fall.

A sweep (``gateprobe load sweep``) has one of its own: ``max_sustainable_rps_min`` is a lower
bound on its knee, the highest request rate whose goodput share met the threshold. Its goodput
reads the latency objectives per request (``request_bounds``).

The tasks scenario has its own: ``task_success_p<q>_ms`` bounds that percentile of the tasks'
times to SUCCESS, ``task_failure_rate_max`` the share of tasks that did not reach SUCCESS (a
FAILURE, the task deadline, a failed request), ``task_findings_max`` the lifecycle findings.

The soak scenario judges drift over its windows, each an upper bound on a Theil–Sen slope
per hour, met only when the slope's whole 95% interval is at or below it, failed only when the
whole interval is above it, and inconclusive in between (or with fewer than 5 windows):
``ttft_p50_drift_pct_per_hour`` and ``ttft_p99_drift_pct_per_hour`` (TTFT's percentile
growing, in % of its value at the run's start per hour), ``error_rate_drift_per_hour`` (the
error rate growing, as a share per hour: 0.01 is one point more every hour) and
``memory_growth_pct_per_hour`` (the target's resident memory, scraped from its metrics URL,
in % of its start per hour; not run when the target declares none).

Two sections refine them:

- ``endpoints: {chat: {ttft_p95_ms: 800}, ...}``: objectives of one endpoint's samples (the
  latency scenario's endpoints: chat, messages, complete, speech), held as
  ``chat.ttft_p95_ms``; an endpoint the run did not load is not judged;
- ``embedded: {...}``: objectives that replace the top-level ones when the target is the
  embedded reference gateway, whose schedule is known: tight enough that each latency fault
  of its catalogue fails them.
"""

from __future__ import annotations

import difflib
import math
import re
from collections.abc import Collection, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from gateprobe.commands.load.plan import STREAM_ENDPOINTS
from gateprobe.core.errors import ConfigError

DEFAULT_SLO_FILE = "slo.yaml"

_PERCENTILE = re.compile(r"(ttfb|ttft|tpot|itl|e2e)_p(50|90|95|99)_ms")
_TASK_PERCENTILE = re.compile(r"task_success_p(50|90|95|99)_ms")
OTHER_KEYS = ("tokens_per_s_p50_min", "error_rate_max", "stream_findings_max",
              "rate_limit_tolerance", "task_failure_rate_max", "task_findings_max",
              "max_sustainable_rps_min")
DRIFT_OBJECTIVES = ("ttft_p50_drift_pct_per_hour", "ttft_p99_drift_pct_per_hour",
                    "error_rate_drift_per_hour", "memory_growth_pct_per_hour")
"""The soak's objectives: upper bounds on trends over its windows
(``gateprobe.commands.load.soak``)."""
KNOWN = tuple(f"{m}_p{q}_ms" for m in ("ttfb", "ttft", "tpot", "itl", "e2e", "task_success")
              for q in (50, 90, 95, 99)) + OTHER_KEYS + DRIFT_OBJECTIVES
ENDPOINT_KNOWN = tuple(k for k in KNOWN if _PERCENTILE.fullmatch(k)) + (
    "tokens_per_s_p50_min", "error_rate_max")
"""What an endpoint's own objectives may bound (``endpoints: {chat: {...}}``)."""
SECTIONS = ("endpoints", "embedded")


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


def validate(raw: Any, source: str, embedded: bool = False) -> dict[str, float]:
    """The thresholds of ``raw``, each name known and each value a non-negative number
    (every mistake at once, one ``ConfigError`` line each), flat: an endpoint's as
    ``chat.ttft_p95_ms``, and the ``embedded`` section's in place of the top level's when
    ``embedded``."""
    found = mistakes(raw, source)
    if found:
        raise ConfigError("\n".join(found))
    return _flat(raw or {}, embedded)


def _flat(raw: Mapping[str, Any], embedded: bool) -> dict[str, float]:
    out: dict[str, float] = {}
    for name, value in raw.items():
        if name == "endpoints":
            out.update({f"{kind}.{k}": float(v) for kind, table in value.items()
                        for k, v in table.items()})
        elif name != "embedded":
            out[str(name)] = float(value)
    if embedded and raw.get("embedded"):
        out.update(_flat(raw["embedded"], False))
    return out


def mistakes(raw: Any, source: str, sections: bool = True) -> list[str]:
    """Every mistake of a set of thresholds, each a line starting with ``source``."""
    if raw is None:
        return []
    if not isinstance(raw, Mapping):
        return [f"{source}: SLOs must be a mapping of name: threshold"]
    out: list[str] = []
    for name, value in raw.items():
        if sections and name == "embedded":
            out += mistakes(value, f"{source}: embedded")
        elif name == "endpoints":
            out += _endpoint_mistakes(value, source)
        elif name not in KNOWN and not _is_endpoint_name(str(name)):
            out.append(_unknown(source, str(name), KNOWN + (SECTIONS if sections else ())))
        else:
            out += _value_mistakes(source, str(name), value)
    return out


def _is_endpoint_name(name: str) -> bool:
    """``chat.ttft_p95_ms``: an endpoint's objective, as held flat."""
    kind, dot, objective = name.partition(".")
    return bool(dot) and kind in STREAM_ENDPOINTS and objective in ENDPOINT_KNOWN


def _endpoint_mistakes(raw: Any, source: str) -> list[str]:
    if not isinstance(raw, Mapping):
        return [f"{source}: endpoints must map an endpoint to its objectives"]
    out: list[str] = []
    for kind, table in raw.items():
        where = f"{source}: endpoints.{kind}"
        if kind not in STREAM_ENDPOINTS:
            out.append(_unknown(f"{source}: endpoints", str(kind), tuple(STREAM_ENDPOINTS),
                                "endpoint"))
        elif not isinstance(table, Mapping):
            out.append(f"{where}: must be a mapping of name: threshold")
        else:
            for name, value in table.items():
                out += [_unknown(where, str(name), ENDPOINT_KNOWN)] \
                    if name not in ENDPOINT_KNOWN else _value_mistakes(where, str(name), value)
    return out


def _unknown(source: str, name: str, known: tuple[str, ...], what: str = "SLO") -> str:
    close = difflib.get_close_matches(name, known, n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    return f"{source}: unknown {what} {name!r}{hint}"


def _value_mistakes(source: str, name: str, value: Any) -> list[str]:
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0 \
            or not math.isfinite(value):
        return [f"{source}: SLO {name} must be a number >= 0, got {value!r}"]
    if name == "rate_limit_tolerance" and value >= 1:
        return [f"{source}: rate_limit_tolerance is a fraction of the limit, below 1"]
    return []


def load_slo(path: Path, embedded: bool = False) -> dict[str, float]:
    """Read an SLO file (its ``embedded`` section too when the target is the embedded
    reference gateway)."""
    from gateprobe.core.yamlfile import read_yaml

    return validate(read_yaml(path, "SLO file"), str(path), embedded)


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


def evaluate_endpoints(by_endpoint: Mapping[str, Mapping[str, Any]], slo: Mapping[str, float],
                       loaded: Collection[str]) -> list[Breach]:
    """The per-endpoint objectives (``chat.ttft_p95_ms``) each loaded endpoint's samples miss;
    an endpoint the run did not load (``loaded``: the kinds of weight > 0) is not judged, one
    loaded without a sample is a breach."""
    breaches: list[Breach] = []
    for name, limit in slo.items():
        kind, dot, objective = name.partition(".")
        if dot and kind in loaded:
            summary = by_endpoint.get(STREAM_ENDPOINTS[kind], {})
            breaches += [replace(b, slo=name)
                         for b in evaluate_latency(summary, {objective: limit}, 0)]
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


GOODPUT_METRICS = ("ttfb_ms", "ttft_ms", "tpot_ms", "itl_ms", "e2e_ms")
"""What a request's goodput is judged on: its own value of each (ITL: its longest gap)."""


def request_bounds(slo: Mapping[str, float], kind: str = "") -> dict[str, float]:
    """The latency objectives as bounds on one request (of endpoint ``kind``): per metric, the
    largest limit any percentile objective sets on it, and an endpoint's own where tighter.

    A percentile objective bounds a share of requests, not each one; read per request, the
    loosest percentile's limit is what no request of a run meeting its tail may exceed, and a
    request above it is one a user noticed (goodput: ``gateprobe load sweep``)."""
    bounds: dict[str, float] = {}
    for scope in ("", kind) if kind else ("",):
        own: dict[str, float] = {}
        for name, limit in slo.items():
            where, dot, objective = name.rpartition(".")
            match = _PERCENTILE.fullmatch(objective)
            if match and where == scope and (bool(dot) == bool(scope)):
                metric = f"{match.group(1)}_ms"
                own[metric] = max(own.get(metric, 0.0), limit)
        for metric, limit in own.items():
            bounds[metric] = min(bounds.get(metric, limit), limit)
    return bounds


def meets(sample: Mapping[str, Any], bounds: Mapping[str, float]) -> bool:
    """Whether one request succeeded with every metric ``bounds`` names within its bound (a
    metric the request lacks, such as the TTFT of a stream with no content, fails it)."""
    if not sample.get("ok", True) or sample.get("dropped"):
        return False
    for metric, limit in bounds.items():
        if metric == "itl_ms":
            gaps = sample.get("itl_ms") or ()
            if gaps and max(gaps) > limit:
                return False
            continue
        value = sample.get(metric)
        if metric == "tpot_ms" and value is None:
            continue  # a one-token answer has no time per output token: nothing to judge
        if not isinstance(value, int | float) or math.isnan(value) or value > limit:
            return False
    return True


def evaluate_sweep(max_sustainable_rps: float | None, slo: Mapping[str, float]) -> list[Breach]:
    """The sweep's own objective (``max_sustainable_rps_min``) its knee misses; a sweep with
    no knee (no level met the goodput threshold) sustained 0 requests per second."""
    limit = slo.get("max_sustainable_rps_min")
    observed = max_sustainable_rps or 0.0
    return [Breach("max_sustainable_rps_min", limit, observed)] \
        if limit is not None and observed < limit else []
