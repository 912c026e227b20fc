"""The everyday run: the conformance suite, a short rate-limit run and a short latency run
against one target, then the report folder. ``gateprobe run`` and ``gateprobe gate`` are both
this, with different targets, suites and verdict rules.

Each phase is the corresponding command (``gateprobe conformance``, ``gateprobe load``) called
with flags built here, so a phase behaves exactly as when a user runs it alone.
"""

from __future__ import annotations

import json
import os
import time
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from gateprobe.console import Console
from gateprobe.errors import ConfigError
from gateprobe.redact import Redactor, redact_tree
from gateprobe.report import html as report_html
from gateprobe.report import summary as report_summary
from gateprobe.report.summary import ERROR, FAILED, PASSED, SKIPPED, Phase
from gateprobe.targets import TIMEOUT_FIELDS, Timeouts, flag_of, is_loopback_url, target_entry

SUITES = ("conformance", "rate-limits", "latency")
EMBEDDED_KEYS = {
    # Test keys of the embedded reference gateway (fixtures/keys.yaml): they grant nothing
    # anywhere else. The rate-limit phase uses the second key of each tier, so the budget the
    # conformance phase used is not the one it measures.
    "GATEPROBE_EMBEDDED_KEY": "gp-vip-0001",
    "GATEPROBE_EMBEDDED_NO_PERMISSION_KEY": "gp-nomodel-0001",
    "GATEPROBE_EMBEDDED_FREE_KEY": "gp-free-0002",
    "GATEPROBE_EMBEDDED_VIP_KEY": "gp-vip-0002",
    "GATEPROBE_EMBEDDED_PREMIUM_KEY": "gp-premium-0002",
}
EMBEDDED_WINDOW_S = 5.0
SHORT_LATENCY = ["--duration", "8", "--users", "8", "--max-tokens", "32"]


@dataclass(slots=True)
class RunTarget:
    """How each phase addresses the target: flags for its command, or why it is skipped."""

    name: str
    base_url: str
    profile: str
    conformance_args: list[str]
    load_args: list[str]
    rate_args: list[str] | None
    """Flags for ``gateprobe load rate-limits``; None when the target has no tier keys."""
    rate_skip: str = ""
    load_skip: str = ""
    """Why load phases do not run against this target ('' when they do)."""
    key_envs: list[str] = field(default_factory=list)

    def describe(self) -> dict[str, Any]:
        """The target as the summary shows it."""
        return {"name": self.name, "base_url": self.base_url, "profile": self.profile}

    @property
    def redactor(self) -> Redactor:
        """Masks every key this run may have used."""
        return Redactor(os.environ.get(v, "") for v in self.key_envs)


@contextmanager
def embedded(console: Console) -> Iterator[RunTarget]:
    """The reference gateway on a free loopback port with its test keys, for the block."""
    from gateprobe.reference.config import Timing, default_keys_path, load_keys_file
    from gateprobe.reference.server import running_gateway

    os.environ.update(EMBEDDED_KEYS)
    config = load_keys_file(default_keys_path()).config(
        rate_window_s=EMBEDDED_WINDOW_S, timing=Timing(ttft_ms=20, itl_ms=2, jitter_ms=1))
    with running_gateway(config) as gateway:
        url = gateway.base_url
        console.line(f"embedded reference gateway at {url} (TTFT 20 ms, ITL 2 ms, rate window "
                     f"{EMBEDDED_WINDOW_S:g} s)")
        base = ["--base-url", url, "--profile", "ohmygpt"]
        tiers = []
        for tier, limit in (("free", 12), ("vip", 60), ("premium", 90)):
            tiers += ["--tier-key", f"{tier}=GATEPROBE_EMBEDDED_{tier.upper()}_KEY",
                      "--limit", f"{tier}={limit}"]
        yield RunTarget(
            "embedded", url, "ohmygpt",
            [*base, "--api-key-env", "GATEPROBE_EMBEDDED_KEY", "--no-permission-key-env",
             "GATEPROBE_EMBEDDED_NO_PERMISSION_KEY"],
            [*base, "--api-key-env", "GATEPROBE_EMBEDDED_KEY"],
            [*base, *tiers, "--window-s", str(EMBEDDED_WINDOW_S)],
            key_envs=list(EMBEDDED_KEYS))


def from_targets_file(name: str, targets: Path) -> RunTarget:
    """A named target of a targets file."""
    entry = target_entry(targets, name)
    flags = ["--target", name, "--targets", str(targets)]
    load_skip = "" if is_loopback_url(entry.base_url) or entry.allow_load else \
        f"not loopback and target {name!r} does not set allow_load: true"
    return RunTarget(name, entry.base_url, entry.profile, flags, flags,
                     flags if entry.tier_keys else None,
                     "" if entry.tier_keys else f"target {name!r} has no tier_keys",
                     load_skip,
                     [entry.api_key_env, *filter(None, [entry.no_permission_key_env]),
                      *entry.tier_keys.values()])


def from_flags(base_url: str, profile: str, api_key_env: str) -> RunTarget:
    """A gateway given by flags: conformance and, on loopback, latency."""
    base = ["--base-url", base_url, "--profile", profile, "--api-key-env", api_key_env]
    return RunTarget("", base_url, profile, base, base, None,
                     "rate-limits needs tier keys: give the target a tier_keys entry and "
                     "use --target",
                     "" if is_loopback_url(base_url) else
                     "not loopback: load needs a target entry with allow_load: true",
                     [api_key_env])


def _parse(argv: list[str]) -> Any:
    from gateprobe.cli import build_parser

    return build_parser().parse_args(argv)


def conformance_phase(target: RunTarget, run_dir: Path, console: Console,
                      select: str | None = None) -> Phase:
    """The conformance suite, writing junit.xml, allure-results/ and conformance.json."""
    from gateprobe.conformance_runner import run_conformance

    argv = ["conformance", *target.conformance_args, "--report-dir", str(run_dir)]
    if select:
        argv += ["--select", select]
    code = run_conformance(_parse(argv), console)
    path = run_dir / "conformance.json"
    data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8")) if path.exists() else {}
    tests = data.get("tests", [])
    outcomes = Counter(t["outcome"] for t in tests)
    findings = data.get("findings", [])
    reason = (f"{outcomes['passed']} tests passed, {outcomes['failed']} failed, "
              f"{outcomes['skipped']} skipped; {len(findings)} findings")
    status = PASSED if code == 0 else FAILED
    return Phase("conformance", status, reason, "",
                 {"tests": dict(outcomes), "cases_per_endpoint":
                  data.get("cases_per_endpoint", {}), "failed_tests":
                  sorted({t["test"] for t in tests if t["outcome"] == "failed"})},
                 findings)


def load_phase(target: RunTarget, scenario: str, run_dir: Path, console: Console,
               extra: Sequence[str] = (), slo: str | None = None) -> Phase:
    """One load scenario into ``run_dir/<scenario>/``."""
    from gateprobe.load.runner import run_load

    if target.load_skip:
        return Phase(scenario, SKIPPED, target.load_skip)
    flags = target.load_args if scenario == "latency" else target.rate_args
    if flags is None:
        return Phase(scenario, SKIPPED, target.rate_skip)
    sub = run_dir / scenario
    argv = ["load", scenario, *flags, *extra, "--report-dir", str(sub)]
    if slo:
        argv += ["--slo", slo]
    code = run_load(_parse(argv), console)
    path = sub / "verdict.json"
    if not path.exists():
        return Phase(scenario, ERROR, f"the load run ended without a verdict (exit {code})",
                     scenario)
    verdict = json.loads(path.read_text(encoding="utf-8"))
    findings = [_load_finding(scenario, item) for item in
                (verdict.get("rate_limits", {}).get("problems") or verdict.get("breaches")
                 or [])]
    if scenario == "rate-limits":
        tiers = verdict["rate_limits"]["tiers"]
        reason = ", ".join(f"{t['tier']} {t['accepted']}/{t['limit']}"
                           f"{'' if t['ok'] else ' FAIL'}" for t in tiers)
    else:
        m = verdict["latency"]
        reason = (f"{m['requests']} streams, TTFT p95 "
                  f"{(m['ttft_ms'].get('p95') or float('nan')):.0f} ms, errors {m['errors']}")
    if verdict.get("reasons"):
        reason += "; " + "; ".join(verdict["reasons"])
    return Phase(scenario, PASSED if code == 0 and verdict.get("ok") else FAILED, reason,
                 scenario, verdict, findings)


def _load_finding(scenario: str, item: Mapping[str, Any]) -> dict[str, Any]:
    if "tier" in item:
        return {"check_id": item["check_id"], "endpoint": f"tier {item['tier']}",
                "severity": "high", "expected": "the tier limited as documented",
                "observed": item["message"], "evidence": ""}
    return {"check_id": f"slo.{item['slo']}", "endpoint": "all", "severity": "high",
            "expected": f"{item['slo']} within {item['limit']:g}",
            "observed": f"{item['observed']:.4g}" if item["observed"] is not None else "no data",
            "evidence": ""}


def timeout_flags(t: Timeouts) -> list[str]:
    """The flags that hand ``t`` to a phase's command."""
    return [part for name in TIMEOUT_FIELDS for part in (flag_of(name), str(getattr(t, name)))]


def run_phases(target: RunTarget, suites: Sequence[str], run_dir: Path, console: Console,
               select: str | None = None, latency_extra: Sequence[str] = SHORT_LATENCY,
               slo: str | None = None, timeouts: Timeouts | None = None,
               budget_s: float | None = None) -> list[Phase]:
    """Each requested suite in order, with a progress line before each."""
    if timeouts is not None:
        target = replace(target, conformance_args=[*target.conformance_args,
                                                   *timeout_flags(timeouts)],
                         load_args=[*target.load_args, *timeout_flags(timeouts)],
                         rate_args=None if target.rate_args is None else
                         [*target.rate_args, *timeout_flags(timeouts)])
    if budget_s is not None:
        target = replace(target, conformance_args=[*target.conformance_args, "--budget-s",
                                                   str(budget_s)])
    phases: list[Phase] = []
    steps: list[tuple[str, Callable[[], Phase]]] = []
    if "conformance" in suites:
        steps.append(("conformance suite",
                      lambda: conformance_phase(target, run_dir, console, select)))
    if "rate-limits" in suites:
        steps.append(("short rate-limit run",
                      lambda: load_phase(target, "rate-limits", run_dir, console, slo=slo)))
    if "latency" in suites:
        steps.append(("short latency run",
                      lambda: load_phase(target, "latency", run_dir, console,
                                         latency_extra, slo=slo)))
    for i, (title, step) in enumerate(steps, 1):
        console.line(f"[{i}/{len(steps)}] {title} ...")
        phase = step()
        console.line(f"[{i}/{len(steps)}] {phase.name}: {phase.status}"
                     + (f" ({phase.reason})" if phase.reason else ""))
        phases.append(phase)
    return phases


def utc_now() -> str:
    """A timestamp for the summary."""
    return datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def finish(command: str, target: RunTarget | Mapping[str, Any], phases: Sequence[Phase],
           run_dir: Path, started: str, t0: float, exit_code: int, console: Console,
           redactor: Redactor, extra: Mapping[str, Any] | None = None) -> int:
    """Write the report folder (summary.json, summary.md, report.html, junit.xml), mask every
    key in it, print the summary table and where the report is; return ``exit_code``."""
    described = target.describe() if isinstance(target, RunTarget) else dict(target)
    summary = report_summary.build(command, described, phases, started, utc_now(),
                                   time.monotonic() - t0, exit_code, extra)
    report_summary.write_json(run_dir, summary)
    (run_dir / "summary.md").write_text(report_summary.markdown(summary), encoding="utf-8")
    (run_dir / "report.html").write_text(report_html.render(summary, run_dir),
                                         encoding="utf-8")
    report_summary.merge_junit(run_dir, phases)
    redact_tree(run_dir, redactor)
    console.line("")
    console.table(["phase", "result", "details"],
                  [[p.name, p.status, p.reason[:110]] for p in phases])
    console.line(f"{'PASS' if exit_code == 0 else 'FAIL'}: report in {run_dir / 'report.html'}")
    return exit_code


def exit_code_of(phases: Sequence[Phase]) -> int:
    """0 when every phase passed or was skipped, else 1."""
    return 0 if all(p.status in (PASSED, SKIPPED) for p in phases) else 1


def check_suites(suites: Sequence[str]) -> list[str]:
    """The suites named, each known."""
    unknown = [s for s in suites if s not in SUITES]
    if unknown:
        raise ConfigError(f"unknown suite {unknown[0]!r} (one of {', '.join(SUITES)})")
    if not suites:
        raise ConfigError("no suite to run")
    return list(dict.fromkeys(suites))


def dry_run(suites: Sequence[str], target_flags: list[str], console: Console,
            select: str | None = None, latency_extra: Sequence[str] = SHORT_LATENCY) -> int:
    """What each phase would send (``--dry-run`` of ``run`` and ``gate``)."""
    from gateprobe import dryrun
    from gateprobe.conformance_runner import run_conformance
    from gateprobe.load.runner import run_load

    dryrun.phases(suites, console)
    for suite in suites:
        console.line("")
        if suite == "conformance":
            run_conformance(_parse(["conformance", *target_flags, "--dry-run",
                                    *(["--select", select] if select else [])]), console)
        else:
            extra = list(latency_extra) if suite == "latency" else []
            run_load(_parse(["load", suite, *target_flags, *extra, "--dry-run"]), console)
    return 0
