"""``gateprobe gate --config gate.yaml``: the CI entry point.

It runs the configured suites against the configured target (``gateprobe run``'s pipeline),
then decides:

- every finding fails the gate unless an allow-list entry matches it (check id, optionally the
  endpoint) and has not expired; an expired entry is reported and no longer applies;
- with a baseline (an earlier run's ``summary.json``) the gate is a ratchet: a finding the
  baseline also had is "known" and does not fail it, a new one is a regression and does; and
  p95 TTFT worse than the baseline's by more than ``regressions.ttft_p95_pct`` percent, per
  endpoint, is a regression too;
- a phase that could not run (an error, or a requested suite skipped) fails it.

Exit codes: 0 pass, 1 fail, 2 configuration error, 3 target unreachable.
"""

from __future__ import annotations

import datetime as dt
import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import jsonschema

from gateprobe.commands.conformance_runner import check_selection
from gateprobe.commands.load.runner import LoadOptions
from gateprobe.commands.load.slo import mistakes as slo_mistakes
from gateprobe.commands.pipeline import (
    EMBEDDED,
    SHORT_LATENCY,
    Interrupted,
    RunOptions,
    RunResult,
    load_refusal,
    run_phases,
)
from gateprobe.commands.pipeline import dry_run as pipeline_dry_run
from gateprobe.core.console import Console
from gateprobe.core.errors import INTERRUPTED_EXIT, SATURATED_EXIT, ConfigError, UsageError
from gateprobe.core.events import ERROR, SKIPPED, Phase
from gateprobe.core.findings import Finding
from gateprobe.core.redact import Redactor
from gateprobe.core.targets import Target, TargetChoice, Timeouts
from gateprobe.core.yamlfile import read_yaml
from gateprobe.engine.embedded import open_target
from gateprobe.engine.report import new_run_dir
from gateprobe.engine.report.folder import finish, handlers_for, utc_now
from gateprobe.engine.report.summary import latency_digest
from gateprobe.engine.report.summary import load as load_summary

GATE_SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "target": {"type": "string", "minLength": 1},
        "targets": {"type": "string", "minLength": 1},
        "embedded": {"type": "boolean"},
        "suites": {"type": "array", "minItems": 1, "uniqueItems": True,
                   "items": {"enum": ["conformance", "rate-limits", "latency", "tasks"]}},
        "select": {"type": "string"},
        "slo": {"type": ["string", "object"]},
        "latency": {"type": "object", "additionalProperties": False, "properties": {
            "duration_s": {"type": "number", "exclusiveMinimum": 0},
            "users": {"type": "integer", "minimum": 1},
            "max_tokens": {"type": "integer", "minimum": 1}}},
        "allow": {"type": "array", "items": {
            "type": "object", "additionalProperties": False,
            "required": ["check", "reason", "expires"],
            "properties": {"check": {"type": "string", "minLength": 1},
                           "endpoint": {"type": "string"},
                           "reason": {"type": "string", "minLength": 3},
                           "expires": {}}}},
        "baseline": {"type": "string", "minLength": 1},
        "regressions": {"type": "object", "additionalProperties": False, "properties": {
            "ttft_p95_pct": {"type": "number", "minimum": 0}}},
        "report_dir": {"type": "string"},
        "timeouts": {"type": "object", "additionalProperties": False, "properties": {
            name: {"type": "number", "exclusiveMinimum": 0}
            for name in ("connect_s", "first_byte_s", "idle_s", "total_s")}},
        "budget_s": {"type": "number", "exclusiveMinimum": 0},
    },
}
DEFAULT_TTFT_P95_PCT = 20.0


@dataclass(frozen=True, slots=True)
class Allowance:
    """One allow-list entry."""

    check: str
    endpoint: str | None
    reason: str
    expires: dt.date

    def matches(self, finding: Finding) -> bool:
        """Whether it covers ``finding`` (expired or not)."""
        return finding.check_id == self.check and \
            (self.endpoint is None or finding.endpoint == self.endpoint)


@dataclass(frozen=True, slots=True)
class GateConfig:
    """A validated gate file."""

    path: Path
    target: str | None
    targets: Path
    embedded: bool
    suites: list[str]
    select: str | None
    slo: Path | Mapping[str, float] | None
    """The SLO file the gate names, or the thresholds it holds itself."""
    latency: LoadOptions
    allow: list[Allowance]
    baseline: dict[str, Any] | None
    ttft_p95_pct: float
    report_dir: Path | None
    timeouts: Timeouts = field(default_factory=Timeouts)
    budget_s: float | None = None


def load_config(path: Path) -> GateConfig:
    """Read and validate a gate file; every mistake is reported at once, one ``ConfigError``
    line each."""
    raw = read_yaml(path, "gate file")
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: a gate file is a mapping (target, suites, allow, ...)")
    mistakes = _mistakes(raw)
    if mistakes:
        raise ConfigError("\n".join(f"{path}: {m}" for m in dict.fromkeys(mistakes)))
    here = path.resolve().parent

    def relative(value: str) -> Path:
        p = Path(value)
        return p if p.is_absolute() else here / p

    allow = [Allowance(entry["check"], entry.get("endpoint"), entry["reason"],
                       _date(entry["expires"]) or dt.date.min)
             for entry in raw.get("allow", [])]
    slo: Path | Mapping[str, float] | None = None
    if isinstance(raw.get("slo"), dict):
        slo = dict(raw["slo"])
    elif raw.get("slo"):
        slo = relative(raw["slo"])
    latency = replace(SHORT_LATENCY, **raw.get("latency", {}))
    return GateConfig(
        path=path, target=raw.get("target"),
        targets=relative(raw.get("targets", "targets.yaml")),
        embedded=bool(raw.get("embedded")),
        suites=raw.get("suites", ["conformance", "rate-limits", "latency"]),
        select=raw.get("select"), slo=slo, latency=latency, allow=allow,
        baseline=load_summary(relative(raw["baseline"])) if raw.get("baseline") else None,
        ttft_p95_pct=float(raw.get("regressions", {}).get("ttft_p95_pct",
                                                           DEFAULT_TTFT_P95_PCT)),
        report_dir=relative(raw["report_dir"]) if raw.get("report_dir") else None,
        timeouts=Timeouts(**raw.get("timeouts", {})), budget_s=raw.get("budget_s"))


def _mistakes(raw: Mapping[str, Any]) -> list[str]:
    """Every mistake of a gate file (schema first; the rest only where the schema let the
    value through, so one mistake is never said twice)."""
    errors = sorted(jsonschema.Draft202012Validator(GATE_SCHEMA).iter_errors(raw),
                    key=lambda e: list(map(str, e.absolute_path)))
    out = [f"{'.'.join(map(str, e.absolute_path)) or '(top level)'}: {e.message}"
           for e in errors]
    bad = {str(e.absolute_path[0]) for e in errors if e.absolute_path}
    if raw.get("select") and "select" not in bad:
        try:
            check_selection(raw["select"])
        except UsageError as exc:
            out.append(f"select: {str(exc).removeprefix('--select: ')}")
    if bool(raw.get("target")) == bool(raw.get("embedded")) and not bad & {"target",
                                                                              "embedded"}:
        out.append("give either target: NAME or embedded: true")
    if "allow" not in bad:
        out += [f"allow.{i}.expires: {entry['expires']!r} is not a date (YYYY-MM-DD)"
                for i, entry in enumerate(raw.get("allow", [])) if not _date(entry["expires"])]
    if isinstance(raw.get("slo"), dict) and "slo" not in bad:
        out += slo_mistakes(raw["slo"], "slo")
    if "timeouts" not in bad:
        try:
            Timeouts(**raw.get("timeouts", {})).check()
        except UsageError as exc:
            out.append(f"timeouts: {exc}")
    budget = raw.get("budget_s")
    if "budget_s" not in bad and budget is not None and not math.isfinite(budget):
        out.append("budget_s: must be a finite number of seconds")
    return out


def _date(value: Any) -> dt.date | None:
    """An allow entry's expiry as a date (YAML reads an unquoted date as one), or None."""
    if isinstance(value, str):
        try:
            return dt.date.fromisoformat(value)
        except ValueError:
            return None
    return value if isinstance(value, dt.date) else None


@dataclass(frozen=True, slots=True)
class Decision:
    """One line of the gate's reasoning."""

    kind: str
    """``fail``, ``regression``, ``allowed``, ``known``, ``expired``, ``note`` or
    ``unjudged`` (a latency comparison the load generator's lag could decide either way)."""
    what: str
    detail: str

    @property
    def fails(self) -> bool:
        """Whether it fails the gate."""
        return self.kind in ("fail", "regression")

    def as_json(self) -> dict[str, str]:
        """JSON form for the summary."""
        return {"kind": self.kind, "what": self.what, "detail": self.detail}


def decide(config: GateConfig, phases: Sequence[Phase], latency: Mapping[str, Any] | None,
           today: dt.date) -> list[Decision]:
    """The gate's decisions over a finished run."""
    decisions: list[Decision] = []
    for entry in config.allow:
        if entry.expires < today:
            decisions.append(Decision("expired", f"allow {entry.check}"
                                      + (f" on {entry.endpoint}" if entry.endpoint else ""),
                                      f"expired {entry.expires}: no longer applies "
                                      f"({entry.reason})"))
    for phase in phases:
        if phase.status == ERROR or (phase.status == SKIPPED and phase.name in config.suites):
            decisions.append(Decision("fail", f"phase {phase.name}",
                                      f"{phase.status}: {phase.reason}"))
        elif phase.status == "failed" and not phase.findings:
            decisions.append(Decision("fail", f"phase {phase.name}", phase.reason))
        elif phase.data.get("budget_spent"):  # allowed findings must not hide tests not run
            decisions.append(Decision("fail", f"phase {phase.name}",
                                      f"the run's budget was spent: tests were not run "
                                      f"({phase.reason})"))
    # One de-duplication everywhere: a finding's ``key`` (check, endpoint, expectation).
    baseline_keys = {Finding.from_json(f).key
                     for f in (config.baseline or {}).get("findings", [])}
    seen: set[tuple[str, str, str]] = set()
    for f in (f for p in phases for f in p.findings):
        if f.key in seen:
            continue
        seen.add(f.key)
        key = f.key
        what = f"{f.check_id} {f.endpoint}"
        allowed = next((a for a in config.allow if a.matches(f) and a.expires >= today), None)
        if allowed is not None:
            decisions.append(Decision("allowed", what, f"{allowed.reason} (until "
                                                       f"{allowed.expires})"))
        elif config.baseline is not None and key in baseline_keys:
            decisions.append(Decision("known", what, "also failed in the baseline"))
        elif config.baseline is not None:
            decisions.append(Decision("regression", what, f"passed in the baseline, fails now: "
                                                          f"{f.observed}"))
        else:
            decisions.append(Decision("fail", what, f"expected {f.expected}; got "
                                                    f"{f.observed}"))
    if config.baseline is not None and latency:
        margin = max((float((p.data.get("lagged") or {}).get("margin_ms") or 0.0)
                      for p in phases if p.name == "latency" and p.data), default=0.0)
        decisions += _latency_regressions(config, config.baseline.get("latency") or {}, latency,
                                          margin)
    return decisions


def _latency_regressions(config: GateConfig, before: Mapping[str, Any],
                         now: Mapping[str, Any], margin: float = 0.0) -> list[Decision]:
    """TTFT p95 against the baseline's, per endpoint. ``margin``: how far the run's own
    generator lag may have moved it (``lagged``); within that of the allowed value, the
    comparison could go either way, so it is not made."""
    out = []
    for endpoint, m in now.items():
        old = (before.get(endpoint) or {}).get("ttft_p95_ms")
        new = m.get("ttft_p95_ms")
        if old is None or new is None or old <= 0:
            continue
        change = (new - old) / old * 100
        allowed = old * (1 + config.ttft_p95_pct / 100)
        detail = (f"{old:.1f} -> {new:.1f} ms ({change:+.0f}%, allowed "
                  f"+{config.ttft_p95_pct:g}%)")
        if margin and abs(new - allowed) <= margin:
            out.append(Decision("unjudged", f"ttft_p95 {endpoint}",
                                f"{detail}: within the load generator's lag ({margin:.0f} ms) "
                                "of the allowed value"))
        elif change > config.ttft_p95_pct:
            out.append(Decision("regression", f"ttft_p95 {endpoint}", detail))
    return out


@dataclass(slots=True)
class GateResult:
    """The run the gate made, and what it decided."""

    exit_code: int
    run: RunResult
    decisions: list[Decision]


def _gate_args_of_0_1(console: Any, report_dir: Any, rest: tuple[Any, ...],
                      old: dict[str, Any]) -> tuple[GateOptions, Console | None]:
    """``(options, console)`` of a call in the 0.1 shape ``(config, console, report_dir,
    today, *, verbose)``."""
    import warnings

    warnings.warn("run_gate(config, console, report_dir, today, verbose=...) is deprecated: "
                  "use run_gate(config, GateOptions(...), console=None)", DeprecationWarning,
                  stacklevel=3)
    today = rest[0] if rest else old.get("today")
    return GateOptions(report_dir or old.get("report_dir"), today,
                       bool(old.get("verbose", False))), console


@dataclass(frozen=True, slots=True)
class GateOptions:
    """How a gate runs beyond its file: where the report goes, the day, verbosity."""

    report_dir: Path | None = None
    """The report folder (None: the file's ``report_dir``, else a fresh one)."""
    today: dt.date | None = None
    """The day waivers expire against (None: today; a test seam)."""
    verbose: bool = False
    """Show pytest's own output too."""


def run_gate(config: GateConfig, options: GateOptions | None = None,
             console: Console | None = None, *deprecated: Any, **old: Any) -> GateResult:
    """Run the gate file's suites against its target, decide, write the report.

    The 0.1 shape ``run_gate(config, console, report_dir, today, verbose=...)`` still works,
    with a ``DeprecationWarning``."""
    if isinstance(options, Console) or deprecated or old:
        options, console = _gate_args_of_0_1(options, console, deprecated, old)
    options = options or GateOptions()
    console = console or Console()
    report_dir, verbose = options.report_dir, options.verbose
    today = options.today or dt.date.today()
    with open_target(_choice(config), EMBEDDED, console, preflight=True) as target:
        _check_runnable(config, target)
        run_options = RunOptions(suites=tuple(config.suites), select=config.select,
                             latency=config.latency, slo=config.slo, budget_s=config.budget_s,
                             verbose=verbose)
        run_dir = new_run_dir("gate", explicit=report_dir or config.report_dir)
        handlers = handlers_for(run_dir, Redactor(target.secrets), console)
        console.line(f"gateprobe gate ({config.path.name}): {', '.join(config.suites)} "
                     f"against {target.base_url}; report folder {run_dir}")
        started, t0 = utc_now(), time.monotonic()
        try:
            phases = run_phases(target, run_options, run_dir, console, handlers)
        except Interrupted as stop:  # no decision on part of the suites: the report only
            finish("gate", target.describe(), stop.phases, started, t0, INTERRUPTED_EXIT,
                   handlers, {"gate": {"config": str(config.path), "decisions": [],
                                       "baseline": (config.baseline or {}).get("started")}})
            raise
        latency = next((latency_digest(p.data) for p in phases  # a saturated run: no numbers
                        if p.name == "latency" and p.data and not p.data.get("saturated")), None)
        decisions = decide(config, phases, latency, today)
        console.line("")
        if decisions:
            console.table(["decision", "what", "detail"],
                          [[d.kind, d.what, d.detail] for d in decisions])
        code = 1 if any(d.fails for d in decisions) else 0
        if code == 0 and (any(p.data.get("saturated") for p in phases)
                          or any(d.kind == "unjudged" for d in decisions)):
            code = SATURATED_EXIT  # latency unjudged: no pass, no regression either
        extra = {"gate": {"config": str(config.path), "decisions":
                          [d.as_json() for d in decisions],
                          "baseline": (config.baseline or {}).get("started")}}
        finish("gate", target.describe(), phases, started, t0, code, handlers, extra)
        return GateResult(code, RunResult(code, phases, run_dir), decisions)


def dry_run(config: GateConfig, console: Console) -> int:
    """What the gate's suites would send; nothing is sent."""
    with open_target(_choice(config), EMBEDDED, console, dry_run=True) as target:
        return pipeline_dry_run(target, RunOptions(suites=tuple(config.suites),
                                                   select=config.select,
                                                   latency=config.latency), console)


def _choice(config: GateConfig) -> TargetChoice:
    if config.embedded:
        return TargetChoice(timeouts=config.timeouts)
    return TargetChoice(target=config.target, targets_file=config.targets,
                        timeouts=config.timeouts)


def _check_runnable(config: GateConfig, target: Target) -> None:
    """Every suite the gate asks for can run against the target (a gate that silently skips
    a suite would pass on nothing)."""
    for suite in config.suites:
        why_not = "" if suite == "conformance" else load_refusal(target, suite)
        if why_not:
            raise ConfigError(f"{config.path}: suite {suite} cannot run: {why_not}")
