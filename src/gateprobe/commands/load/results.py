"""From a load run's raw samples to its verdict: written by the Locust master (or the only
process) when the run ends, read back by ``gateprobe load``.

``verdict.json`` is the one place a run's outcome lives; the exit code, the printed tables, the
findings and the one-line summary of ``gateprobe load`` (``findings_of``, ``summary_line``) are
all derived from it.
"""

from __future__ import annotations

import json
import math
import re
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from gateprobe.commands.load import ratelimits
from gateprobe.commands.load.plan import STREAM_ENDPOINTS, LoadPlan
from gateprobe.commands.load.selfcheck import UNTIMED_OBJECTIVES, Saturation, judge, lag_bound
from gateprobe.commands.load.slo import evaluate_endpoints, evaluate_latency, evaluate_tasks
from gateprobe.core.findings import Finding, Severity
from gateprobe.core.loadresult import result_of
from gateprobe.core.metrics import aggregate, percentile, summarize

SAMPLES_FILE = "samples.jsonl"
VERDICT_FILE = "verdict.json"
VERDICT_VERSION = 1


def read_samples(path: Path) -> Iterator[dict[str, Any]]:
    """The samples of a run, in the order they were written (a torn last line is skipped)."""
    if not path.exists():
        return
    with path.open(encoding="utf-8") as lines:
        for line in lines:
            try:
                yield json.loads(line)
            except ValueError:
                continue


class LiveSamples:
    """The samples file read as the run writes it, for the live line: requests, errors and
    TTFT p50 so far (the Locust master appends a line per request; a line not yet finished
    is left for the next read)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.offset = 0
        self.requests = 0
        self.errors = 0
        self.refused = 0
        self.ttft_ms: list[float] = []
        self.noun = "requests"
        """``tasks`` once a task's sample is read: a tasks run's line counts tasks."""

    def poll(self) -> None:
        """Take in the lines written since the last call."""
        try:
            with self.path.open("rb") as file:
                file.seek(self.offset)
                data = file.read()
        except OSError:
            return
        complete = data[:data.rfind(b"\n") + 1]
        self.offset += len(complete)
        for line in complete.splitlines():
            try:
                self._take(json.loads(line))
            except ValueError:
                continue

    def _take(self, sample: dict[str, Any]) -> None:
        if sample.get("dropped") or sample.get("gave_up") == "budget":
            return  # a task the run's end cut is no error of the gateway's
        if "polls" in sample:
            self.noun = "tasks"
        self.requests += 1
        if sample.get("status") == 429:
            self.refused += 1
        elif sample.get("ok") is False or sample.get("error"):
            self.errors += 1
        if isinstance(sample.get("ttft_ms"), int | float):
            self.ttft_ms.append(float(sample["ttft_ms"]))

    def text(self) -> str:
        """What the run has seen so far, in a few words."""
        line = f"{self.requests} {self.noun}, {self.errors} errors"
        if self.refused:
            line += f", {self.refused} refused (429)"
        if self.ttft_ms:
            line += f", TTFT p50 {percentile(self.ttft_ms, 50):.0f} ms"
        return line


LIMITED_SHARE = 0.5
"""A latency run whose requests were refused with 429 more often than this measured the
target's rate limit, not its latency."""


def _limited_by_target(plan: LoadPlan, samples: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """When a latency run with no declared limit was mostly refused with 429: the numbers
    that say so ({} otherwise). With a declared limit the run paced under it, and 429s stay
    errors of the gateway."""
    if plan.scenario not in ("latency", "soak") or plan.paced or not samples:
        return {}
    refused = sum(1 for s in samples if s.get("status") == 429)
    if refused <= LIMITED_SHARE * len(samples):
        return {}
    return {"refused": refused, "requests": len(samples),
            "why": f"limited by the target's rate limit: {refused} of {len(samples)} requests "
                   "were refused with 429, so this run measured the limiter, not latency; "
                   "declare the key's limit (api_key_tier and limits in its targets-file "
                   "entry) to pace under it"}


def refused_key(plan: LoadPlan, samples: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """When every answer with the key of a variable was 401/403: the variable, to be named
    as a user's mistake ({} otherwise)."""
    by_variable: dict[str, list[Any]] = {}
    for s in samples:
        if s.get("status"):
            variable = plan.tier_keys.get(s["tier"], "?") if "tier" in s else plan.api_key_env
            by_variable.setdefault(variable, []).append(s["status"])
    for variable, statuses in sorted(by_variable.items()):
        if all(status in (401, 403) for status in statuses):
            return {"variable": variable, "answers": len(statuses),
                    "why": f"the target refused the key in {variable}: all {len(statuses)} "
                           f"answers were 401/403; set {variable} to a key it accepts"}
    return {}


def judge_rate_limits(out: dict[str, Any], plan: LoadPlan,
                      samples: Sequence[dict[str, Any]], wall_s: float) -> None:
    """The rate-limit scenario's part of a verdict (``ratelimits.judge``)."""
    tolerance = plan.slo.get("rate_limit_tolerance", 0.0)
    result = ratelimits.judge(samples, plan.limits, plan.window_s, tolerance,
                              plan.algorithm, plan.rate_headers)
    out["rate_limits"] = result.as_json()
    out["reasons"] = [str(p) for p in result.problems]
    out["failed_checks"] = sorted({p.check_id for p in result.problems})
    if result.inconclusive and not result.problems:  # cannot tell: no finding either
        out["inconclusive"] = {"why": "; ".join(result.inconclusive)}
        out["reasons"] = list(result.inconclusive)


def judge_latency(out: dict[str, Any], plan: LoadPlan, samples: Sequence[dict[str, Any]],
                  wall_s: float) -> None:
    """The latency scenario's part of a verdict: its numbers, breaches and reasons."""
    streams = [s for s in samples if not s.get("dropped")]
    summary = aggregate(streams, wall_s)
    summary["dropped_arrivals"] = len(samples) - len(streams)
    findings = Counter(f for s in streams for f in s.get("findings") or ())
    summary["stream_findings"] = dict(findings.most_common())
    summary["by_endpoint"] = {
        endpoint: aggregate([s for s in streams if s["endpoint"] == endpoint])
        for endpoint in sorted({s["endpoint"] for s in streams})}
    breaches = evaluate_latency(summary, plan.slo, sum(findings.values()))
    breaches += evaluate_endpoints(summary["by_endpoint"], plan.slo,
                                   [k for k, w in plan.weights.items() if w > 0])
    kinds = Counter(s["error_kind"] for s in streams if s.get("error_kind"))
    summary["errors_by_symptom"] = dict(kinds.most_common())
    out["latency"] = summary
    out["reasons"] = [str(b) for b in breaches]
    if breaches and kinds:
        out["reasons"].append("failed requests by symptom: " + ", ".join(
            f"{k} x{n}" for k, n in kinds.most_common()))
    out["breaches"] = [{"slo": b.slo, "limit": b.limit, "observed": b.observed}
                       for b in breaches]
    out["failed_checks"] = sorted({b.check_id for b in breaches}
                                  | (set(kinds) if breaches else set()))
    if not streams:
        out["reasons"].append("no request completed")
        out["failed_checks"].append("load.no_samples")


def inconclusive(out: dict[str, Any], plan: LoadPlan, samples: Sequence[dict[str, Any]],
                 lag: Sequence[Mapping[str, Any]], timed: bool) -> None:
    """Mark a judged verdict inconclusive where it cannot stand: a latency run the target's
    rate limit cut, or a ``timed`` scenario whose own generator saturated."""
    refused = refused_key(plan, samples)
    if refused:  # a wrong secret, not the gateway: no finding, and said as such
        out["refused_key"] = refused
        out["reasons"], out["failed_checks"], out["breaches"] = [refused["why"]], [], []
        out.get("rate_limits", {})["problems"] = []
    saturation = judge(lag, *lag_bound(plan.slo, plan.lag_bound_ms))
    out["generator"] = saturation.as_json()
    limited = _limited_by_target(plan, samples)
    if limited:
        out["limited_by_target"] = limited
        out["reasons"] = [limited["why"]]  # not an SLO miss: the limiter is what was measured
        out["failed_checks"] = []
    elif saturation.saturated and timed:
        _saturated(out, saturation, plan.slo, _fewest_gaps(samples))
    out["ok"] = not out["reasons"]


def _fewest_gaps(samples: Sequence[Mapping[str, Any]]) -> int:
    """The fewest token gaps a TPOT was taken over (1 when none was)."""
    return max(1, min((int(s.get("output_tokens") or 0) - 1 for s in samples
                       if s.get("tpot_ms") is not None), default=1))


def _saturated(out: dict[str, Any], saturation: Saturation, slo: Mapping[str, float],
               gaps: int = 1) -> None:
    """A saturated run: the timing objectives its generator's lag could carry across their
    limit unjudged (those numbers carry its own delay); the others, and what a stream or task
    said (grammar, lifecycle), still judged. With every timing objective clear of the lag the
    verdict stands, said with the lag beside it; with no timing objective at all the numbers
    are the product, so the run has no verdict. A rate-limit run counts answers, not times: its
    verdict stands, its generator's lag is only reported."""
    margin = saturation.margin_ms
    timing = {name: _observed(out, name) for name in slo if _timing(name, out)}
    # A TPOT is the first-to-last time over the gaps between: each end off by the margin at
    # most, it is off by twice that over its fewest gaps.
    close = {name for name, x in timing.items() if not math.isfinite(x) or abs(x - slo[name])
             <= (2 * margin / gaps if "tpot_" in name else margin)}
    close |= {name for name in slo if name.endswith("tokens_per_s_p50_min")}  # a rate: no ms
    if timing and not close:
        out["lagged"] = {"why": f"{saturation.brief}, so its figures may be off by up to "
                                f"{margin:.0f} ms; every latency objective is further than "
                                "that from its limit and was judged", "margin_ms": margin}
        return
    # The error rate is unjudged too: a generator this late may time its own requests out.
    decided = set(timing) - close
    breaches = out.get("breaches", [])
    kept = [b for b in breaches if b["slo"] in UNTIMED_OBJECTIVES or b["slo"] in decided]
    unjudged = sorted(close | {b["slo"] for b in breaches if b not in kept})
    out["saturated"] = {"why": saturation.why, "unjudged": unjudged, "margin_ms": margin}
    said = [n for n in unjudged if n in close] or unjudged
    out["reasons"] = [saturation.brief + (f" ({', '.join(said)} unjudged)" if said else ""),
                      *(f"{b['slo']}: {b['observed']:.4g} > {b['limit']:g}"
                                        for b in kept)]
    out["breaches"] = kept
    out["failed_checks"] = sorted(f"slo.{b['slo']}" for b in kept)


_TIMING = re.compile(r"(?:(\w+)\.)?(ttfb|ttft|tpot|itl|e2e|task_success)_p(\d+)_ms")


def _timing(name: str, out: Mapping[str, Any]) -> bool:
    """Whether an objective is a time the generator's lag moves (``chat.ttft_p95_ms`` too),
    and this run's (one SLO file serves the latency and the tasks scenarios)."""
    match = _TIMING.fullmatch(name)
    if match is None or name in UNTIMED_OBJECTIVES:
        return False
    return isinstance(out.get("tasks" if match.group(2) == "task_success" else "latency"),
                      Mapping)


def _observed(out: Mapping[str, Any], name: str) -> float:
    """A timing objective's figure in a verdict (NaN when it has none)."""
    match = _TIMING.fullmatch(name)
    if match is None:
        return math.nan
    kind, metric, q = match.groups()
    if metric == "task_success":
        summary = (out.get("tasks") or {}).get("time_to_success_ms") or {}
    else:
        latency = out.get("latency") or {}
        if kind:
            latency = (latency.get("by_endpoint") or {}).get(STREAM_ENDPOINTS.get(kind, ""), {})
        summary = latency.get(f"{metric}_ms") or {}
    value = summary.get(f"p{q}")
    return float(value) if isinstance(value, (int, float)) else math.nan


def task_summary(samples: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """A tasks run's numbers. A task the run's own end (or its caps) cut short is counted
    apart and judged nowhere: that bound is ours, not the gateway's."""
    judged = [s for s in samples if s.get("gave_up") != "budget"]
    succeeded = sum(1 for s in judged if s.get("final") == "SUCCESS")
    problems = Counter(p for s in judged for p in s.get("problems") or ())
    return {"tasks": len(judged), "succeeded": succeeded,
            "failure_rate": (len(judged) - succeeded) / len(judged) if judged else 0.0,
            "cut_by_run": len(samples) - len(judged),
            "by_outcome": dict(Counter(_outcome(s) for s in judged).most_common()),
            "time_to_success_ms": summarize(s["time_to_success_ms"] for s in judged
                                            if s.get("time_to_success_ms") is not None),
            "create_ms": summarize(s["create_ms"] for s in judged
                                   if s.get("create_ms") is not None),
            "polls": summarize(float(s.get("polls") or 0) for s in judged),
            "findings": sum(problems.values()), "lifecycle_findings": dict(problems.most_common()),
            "errors_by_symptom": dict(Counter(s["error_kind"] for s in judged
                                              if s.get("error_kind")).most_common())}


def _outcome(sample: Mapping[str, Any]) -> str:
    """How one task ended, in a word: its end status, ``deadline``, or its failed request."""
    if sample.get("gave_up") == "deadline":
        return "deadline"
    return str(sample.get("final") or sample.get("error_kind") or "no answer")


def judge_tasks(out: dict[str, Any], plan: LoadPlan, samples: Sequence[dict[str, Any]],
                wall_s: float) -> None:
    """The tasks scenario's part of a verdict: its summary, breaches and reasons."""
    summary = task_summary(samples)
    breaches = evaluate_tasks(summary, plan.slo)
    out["tasks"] = summary
    out["reasons"] = [str(b) for b in breaches]
    if breaches and summary["by_outcome"]:
        out["reasons"].append("tasks by outcome: " + ", ".join(
            f"{k} x{n}" for k, n in summary["by_outcome"].items()))
    out["breaches"] = [{"slo": b.slo, "limit": b.limit, "observed": b.observed}
                       for b in breaches]
    out["failed_checks"] = sorted({b.check_id for b in breaches}
                                  | (set(summary["lifecycle_findings"]) if breaches else set()))
    if not summary["tasks"]:
        out["reasons"].append("no task ended within the run")
        out["failed_checks"].append("load.no_samples")


def findings_of(result: Mapping[str, Any]) -> list[Finding]:
    """One finding per failed tier check or missed SLO of a verdict."""
    items = result.get("rate_limits", {}).get("problems") or result.get("breaches") or []
    return [_finding(item) for item in items]


def _finding(item: Mapping[str, Any]) -> Finding:
    if "tier" in item:
        return Finding(item["check_id"], f"tier {item['tier']}", Severity.HIGH,
                       "the tier limited as documented", item["message"],
                       case=f"tier {item['tier']}")
    observed = item.get("observed")
    kind, dot, _ = str(item["slo"]).partition(".")
    return Finding(f"slo.{item['slo']}", STREAM_ENDPOINTS[kind] if dot else "all", Severity.HIGH,
                   f"{item['slo']} within {item['limit']:g}",
                   "no data" if observed is None else f"{observed:.4g}",
                   case=f"slo {item['slo']}")


def summary_line(result: Mapping[str, Any]) -> str:
    """A verdict in one line: its scenario's headline (``LoadOutcome.headline``), then the
    reasons it failed, if any."""
    typed = result_of(result)
    line = typed.headline() if typed is not None else str(result.get("scenario") or "load")
    if result.get("reasons"):
        line += "; " + "; ".join(result["reasons"])
    if result.get("lagged"):  # judged, but said: its figures carry the generator's lag
        line += (f"; information: generator lag over its bound (figures within "
                 f"{result['lagged']['margin_ms']:.0f} ms)")
    notes = (result.get("rate_limits") or {}).get("notes") or []
    if notes:  # accepted beyond a limit within the refill tolerance: said, not judged
        line += "; information: " + "; ".join(notes)
    return line
