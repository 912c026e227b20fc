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

import argparse
import datetime as dt
import time
from collections.abc import Mapping, Sequence
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gateprobe.console import Console
from gateprobe.errors import ConfigError
from gateprobe.report.summary import ERROR, SKIPPED, Phase
from gateprobe.targets import Timeouts

GATE_SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "target": {"type": "string", "minLength": 1},
        "targets": {"type": "string", "minLength": 1},
        "embedded": {"type": "boolean"},
        "suites": {"type": "array", "minItems": 1, "uniqueItems": True,
                   "items": {"enum": ["conformance", "rate-limits", "latency"]}},
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

    def matches(self, finding: Mapping[str, Any]) -> bool:
        """Whether it covers ``finding`` (expired or not)."""
        return finding["check_id"] == self.check and \
            (self.endpoint is None or finding["endpoint"] == self.endpoint)


@dataclass(frozen=True, slots=True)
class GateConfig:
    """A validated gate file."""

    path: Path
    target: str | None
    targets: Path
    embedded: bool
    suites: list[str]
    select: str | None
    slo: Path | None
    inline_slo: dict[str, Any] | None
    """The thresholds when the gate file holds them itself, instead of naming a file."""
    latency_args: list[str]
    allow: list[Allowance]
    baseline: dict[str, Any] | None
    ttft_p95_pct: float
    report_dir: Path | None
    timeouts: Timeouts = field(default_factory=Timeouts)
    budget_s: float | None = None


def load_config(path: Path) -> GateConfig:
    """Read and validate a gate file; every mistake is one ``ConfigError`` line."""
    import jsonschema

    from gateprobe.load.slo import validate as validate_slo
    from gateprobe.pipeline import SHORT_LATENCY
    from gateprobe.report.summary import load as load_summary
    from gateprobe.yamlfile import read_yaml

    raw = read_yaml(path, "gate file")
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: a gate file is a mapping (target, suites, allow, ...)")
    errors = sorted(jsonschema.Draft202012Validator(GATE_SCHEMA).iter_errors(raw),
                    key=lambda e: list(map(str, e.absolute_path)))
    if errors:
        where = ".".join(map(str, errors[0].absolute_path)) or "(top level)"
        raise ConfigError(f"{path}: {where}: {errors[0].message}")
    if bool(raw.get("target")) == bool(raw.get("embedded")):
        raise ConfigError(f"{path}: give either target: NAME or embedded: true")
    here = path.resolve().parent

    def relative(value: str) -> Path:
        p = Path(value)
        return p if p.is_absolute() else here / p

    allow = []
    for i, entry in enumerate(raw.get("allow", [])):
        expires = entry["expires"]
        if isinstance(expires, str):
            try:
                expires = dt.date.fromisoformat(expires)
            except ValueError:
                raise ConfigError(f"{path}: allow.{i}.expires: {expires!r} is not a date "
                                  "(YYYY-MM-DD)") from None
        if not isinstance(expires, dt.date):
            raise ConfigError(f"{path}: allow.{i}.expires: not a date (YYYY-MM-DD)")
        allow.append(Allowance(entry["check"], entry.get("endpoint"), entry["reason"],
                               expires))
    slo: Path | None = None
    inline_slo: dict[str, Any] | None = None
    if isinstance(raw.get("slo"), dict):
        validate_slo(raw["slo"], f"{path}: slo")
        inline_slo = raw["slo"]  # written next to the run by the command, see _slo_file
    elif raw.get("slo"):
        slo = relative(raw["slo"])
    latency = raw.get("latency", {})
    latency_args = list(SHORT_LATENCY)
    for key, flag in (("duration_s", "--duration"), ("users", "--users"),
                      ("max_tokens", "--max-tokens")):
        if key in latency:
            i = latency_args.index(flag)
            latency_args[i + 1] = str(latency[key])
    return GateConfig(
        path=path, target=raw.get("target"),
        targets=relative(raw.get("targets", "targets.yaml")),
        embedded=bool(raw.get("embedded")),
        suites=raw.get("suites", ["conformance", "rate-limits", "latency"]),
        select=raw.get("select"), slo=slo, inline_slo=inline_slo, latency_args=latency_args,
        allow=allow,
        baseline=load_summary(relative(raw["baseline"])) if raw.get("baseline") else None,
        ttft_p95_pct=float(raw.get("regressions", {}).get("ttft_p95_pct",
                                                           DEFAULT_TTFT_P95_PCT)),
        report_dir=relative(raw["report_dir"]) if raw.get("report_dir") else None,
        timeouts=Timeouts(**raw.get("timeouts", {})), budget_s=raw.get("budget_s"))


@dataclass(frozen=True, slots=True)
class Decision:
    """One line of the gate's reasoning."""

    kind: str
    """``fail``, ``regression``, ``allowed``, ``known``, ``expired`` or ``note``."""
    what: str
    detail: str

    @property
    def fails(self) -> bool:
        """Whether it fails the gate."""
        return self.kind in ("fail", "regression")

    def as_json(self) -> dict[str, str]:
        """JSON form for the summary."""
        return {"kind": self.kind, "what": self.what, "detail": self.detail}


def _key(f: Mapping[str, Any]) -> tuple[str, str, str]:
    return f.get("phase", ""), f["check_id"], f["endpoint"]


def decide(config: GateConfig, phases: Sequence[Phase], findings: Sequence[Mapping[str, Any]],
           latency: Mapping[str, Any] | None, today: dt.date) -> list[Decision]:
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
    baseline_keys = {_key(f) for f in (config.baseline or {}).get("findings", [])}
    seen: set[tuple[str, str, str]] = set()
    for f in findings:
        key = _key(f)
        if key in seen:
            continue
        seen.add(key)
        what = f"{f['check_id']} {f['endpoint']}"
        allowed = next((a for a in config.allow if a.matches(f) and a.expires >= today), None)
        if allowed is not None:
            decisions.append(Decision("allowed", what, f"{allowed.reason} (until "
                                                       f"{allowed.expires})"))
        elif config.baseline is not None and key in baseline_keys:
            decisions.append(Decision("known", what, "also failed in the baseline"))
        elif config.baseline is not None:
            decisions.append(Decision("regression", what, f"passed in the baseline, fails now: "
                                                          f"{f['observed']}"))
        else:
            decisions.append(Decision("fail", what, f"expected {f['expected']}; got "
                                                    f"{f['observed']}"))
    if config.baseline is not None and latency:
        decisions += _latency_regressions(config, config.baseline.get("latency") or {}, latency)
    return decisions


def _latency_regressions(config: GateConfig, before: Mapping[str, Any],
                         now: Mapping[str, Any]) -> list[Decision]:
    out = []
    for endpoint, m in now.items():
        old = (before.get(endpoint) or {}).get("ttft_p95_ms")
        new = m.get("ttft_p95_ms")
        if old is None or new is None or old <= 0:
            continue
        change = (new - old) / old * 100
        if change > config.ttft_p95_pct:
            out.append(Decision("regression", f"ttft_p95 {endpoint}",
                                f"{old:.1f} -> {new:.1f} ms (+{change:.0f}%, allowed "
                                f"+{config.ttft_p95_pct:g}%)"))
    return out


def run_gate(args: argparse.Namespace, console: Console) -> int:
    """Load the gate file, run its suites, decide, write the report; the exit code."""
    from gateprobe import pipeline
    from gateprobe.report import new_run_dir
    from gateprobe.report.summary import latency_digest
    from gateprobe.targets import check_reachable

    config = load_config(Path(args.config))
    today = dt.date.today()
    if args.dry_run:
        flags = [] if config.embedded else ["--target", str(config.target), "--targets",
                                            str(config.targets)]
        return pipeline.dry_run(config.suites, flags, console, config.select,
                                config.latency_args)
    with ExitStack() as stack:
        if config.embedded:
            target = stack.enter_context(pipeline.embedded(console))
        else:
            assert config.target is not None
            target = pipeline.from_targets_file(config.target, config.targets)
        for suite in config.suites:
            if suite != "conformance" and target.load_skip:
                raise ConfigError(f"{config.path}: suite {suite} cannot run: "
                                  f"{target.load_skip}")
            if suite == "rate-limits" and target.rate_args is None:
                raise ConfigError(f"{config.path}: suite rate-limits cannot run: "
                                  f"{target.rate_skip}")
        check_reachable(target.base_url)
        explicit = Path(args.report_dir) if args.report_dir else config.report_dir
        run_dir = new_run_dir("gate", explicit=explicit)
        slo = _slo_file(config, run_dir)
        console.line(f"gateprobe gate ({config.path.name}): {', '.join(config.suites)} against "
                     f"{target.base_url}; report folder {run_dir}")
        started, t0 = pipeline.utc_now(), time.monotonic()
        phases = pipeline.run_phases(target, config.suites, run_dir, console, config.select,
                                     config.latency_args, slo, config.timeouts,
                                     config.budget_s)
        findings = [{"phase": p.name, **f} for p in phases for f in p.findings]
        latency = next((latency_digest(p.data) for p in phases
                        if p.name == "latency" and p.data), None)
        decisions = decide(config, phases, findings, latency, today)
        failing = [d for d in decisions if d.fails]
        console.line("")
        if decisions:
            console.table(["decision", "what", "detail"],
                          [[d.kind, d.what, d.detail[:100]] for d in decisions])
        code = 1 if failing else 0
        extra = {"gate": {"config": str(config.path), "decisions":
                          [d.as_json() for d in decisions],
                          "baseline": (config.baseline or {}).get("started")}}
        return pipeline.finish("gate", target, phases, run_dir, started, t0, code, console,
                               target.redactor, extra)


def _slo_file(config: GateConfig, run_dir: Path) -> str | None:
    """The SLO file the load phases use: the gate's own path, or its inline mapping written
    into the run folder (so the run records exactly what it was judged by)."""
    import yaml

    if config.inline_slo is not None:
        path = run_dir / "slo.yaml"
        path.write_text(yaml.safe_dump(config.inline_slo), encoding="utf-8")
        return str(path)
    return str(config.slo) if config.slo else None
