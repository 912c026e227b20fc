"""The everyday run: the conformance suite, a short rate-limit run and a short latency run
against one target, then the report folder. ``gateprobe run`` and ``gateprobe gate`` are both
this, with different targets, suites and verdict rules.

Each phase calls the typed entry point of its command (``run_conformance``, ``run_load``) with
options, so a phase behaves exactly as when a user runs that command alone; what comes back is
a ``Phase`` with ``Finding`` objects, handed to the run's handlers as events.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from gateprobe.commands.conformance_runner import (
    ConformanceOptions,
    check_selection,
    run_conformance,
    summary_line,
)
from gateprobe.commands.conformance_runner import dry_run as conformance_dry_run
from gateprobe.commands.load.runner import LoadOptions, run_load
from gateprobe.commands.load.runner import dry_run as load_dry_run
from gateprobe.commands.load.scenarios import scenario as load_scenario
from gateprobe.commands.load.slo import load_slo
from gateprobe.core.console import Console
from gateprobe.core.errors import (
    INCONCLUSIVE_EXIT,
    INTERRUPT,
    INTERRUPTED_EXIT,
    SATURATED_EXIT,
    ConfigError,
)
from gateprobe.core.events import (
    ERROR,
    FAILED,
    PASSED,
    SKIPPED,
    Handler,
    Phase,
    PhaseFinished,
    PhaseStarted,
    RunStarted,
    emit,
    exit_code_of,
)
from gateprobe.core.findings import Finding
from gateprobe.core.redact import Redactor
from gateprobe.core.targets import Target
from gateprobe.engine import dryrun
from gateprobe.engine.embedded import Embedded
from gateprobe.engine.report import new_run_dir
from gateprobe.engine.report.folder import finish, handlers_for, utc_now

SUITES = ("conformance", "rate-limits", "latency")
OPT_IN_SUITES = ("tasks",)
"""Suites run only when named (``--suites ...,tasks``): Midjourney tasks, on a target that
declares them."""
EMBEDDED = Embedded(ttft_ms=20, itl_ms=2, jitter_ms=1, rate_window_s=5.0, tier_key_number=2)
"""The embedded gateway of ``run`` and ``gate``: a fast schedule and a 5 s rate window; the
rate-limit phase uses the second key of each tier, so the budget the conformance phase used
is not the one it measures."""
SHORT_LATENCY = LoadOptions(scenario="latency", duration_s=8, users=8, max_tokens=32)
SHORT_TASKS = LoadOptions(scenario="tasks", duration_s=8, users=4)


class Interrupted(KeyboardInterrupt):
    """Ctrl-C during the phases, carrying the phases that finished before it: the command
    writes them as its (partial) report, then lets the interrupt reach the CLI (exit 130)."""

    def __init__(self, phases: Sequence[Phase]) -> None:
        super().__init__()
        self.phases = list(phases)


@dataclass(frozen=True, slots=True)
class RunOptions:
    """Which suites, and how each runs."""

    suites: tuple[str, ...] = SUITES
    select: str | None = None
    """Conformance categories (see ``gateprobe conformance --select``)."""
    checks: tuple[str, ...] = ()
    """Modules of user-defined checks for the conformance phase."""
    latency: LoadOptions = SHORT_LATENCY
    slo: Path | Mapping[str, float] | None = None
    budget_s: float | None = None
    """The conformance phase's budget (its command's default when None)."""
    max_generated_tokens: int | None = None
    """The conformance phase's cap on the tokens its requests ask for in all."""
    report_dir: Path | None = None
    verbose: bool = False
    """pytest's own output of the conformance phase on the terminal too (``-v``)."""
    fuzz_seed: int | None = None
    """The conformance phase's fuzz seed (a fresh one, printed, when None)."""
    fuzz_phases: tuple[str, ...] | None = None
    """The conformance phase's fuzz phases (``ConformanceOptions.fuzz_phases``)."""

    def check(self) -> RunOptions:
        """Itself, with known suites, each once, and a selection of known categories: what a
        run would refuse is refused before a gateway starts or a report folder exists."""
        if self.select:
            check_selection(self.select)
        if isinstance(self.slo, Path):  # a mistake in it is said now, not after conformance
            load_slo(self.slo)
        return replace(self, suites=tuple(check_suites(self.suites)))


@dataclass(slots=True)
class RunResult:
    """A finished run: its phases (with their findings) and where its report is."""

    exit_code: int
    phases: list[Phase]
    run_dir: Path

    @property
    def findings(self) -> list[Finding]:
        """Every phase's findings, in phase order."""
        return [f for p in self.phases for f in p.findings]


def run(target: Target, options: RunOptions, console: Console | None = None,
        handlers: Sequence[Handler] | None = None) -> RunResult:
    """``gateprobe run``: the phases, then the report folder; exit code 0 when every phase
    passed or was skipped. ``handlers`` replace the report folder's writers of run events."""
    console = console or Console()
    options = options.check()
    run_dir = new_run_dir("run", explicit=options.report_dir)
    handlers = list(handlers) if handlers is not None else \
        handlers_for(run_dir, Redactor(target.secrets), console)
    console.line(f"gateprobe run: {', '.join(options.suites)} against {target.base_url}; "
                 f"report folder {run_dir}")
    started, t0 = utc_now(), time.monotonic()
    try:
        phases = run_phases(target, options, run_dir, console, handlers)
    except Interrupted as stop:
        finish("run", target.describe(), stop.phases, started, t0, INTERRUPTED_EXIT, handlers)
        raise
    code = finish("run", target.describe(), phases, started, t0, run_exit_code(phases),
                  handlers)
    return RunResult(code, phases, run_dir)


def run_exit_code(phases: Sequence[Phase]) -> int:
    """``exit_code_of`` the phases, but a run whose only shortfall is a phase that could not
    tell is never reported as a pass: ``SATURATED_EXIT`` when a load phase's own generator
    saturated (its latency unjudged), else ``INCONCLUSIVE_EXIT`` (a verdict that could not
    tell, or a run the target's rate limit cut short)."""
    code = exit_code_of(phases)
    if code == 0 and any(p.data.get("saturated") for p in phases):
        return SATURATED_EXIT
    if code == 0 and any(p.data.get("inconclusive") or p.data.get("limited_by_target")
                         for p in phases):
        return INCONCLUSIVE_EXIT
    return code


def run_phases(target: Target, options: RunOptions, run_dir: Path, console: Console,
               handlers: Sequence[Handler]) -> list[Phase]:
    """Each requested suite in order, announced to the handlers before and after."""
    steps: list[tuple[str, Callable[[], Phase]]] = []
    if "conformance" in options.suites:
        steps.append(("conformance suite",
                      lambda: conformance_phase(target, options, run_dir, console)))
    if "rate-limits" in options.suites:
        rate = LoadOptions(scenario="rate-limits", slo=options.slo)
        earlier = bool(steps)
        steps.append(("short rate-limit run",
                      lambda: rate_limit_phase(target, rate, run_dir, console, earlier)))
    if "latency" in options.suites:
        latency = replace(options.latency, slo=options.slo or options.latency.slo)
        steps.append(("short latency run",
                      lambda: load_phase(target, latency, run_dir, console)))
    if "tasks" in options.suites:
        tasks = replace(SHORT_TASKS, slo=options.slo)
        steps.append(("short Midjourney tasks run",
                      lambda: load_phase(target, tasks, run_dir, console)))
    emit(handlers, RunStarted("run", target.describe(), str(run_dir),
                              tuple(title for title, _ in steps)))
    phases: list[Phase] = []
    for i, (title, step) in enumerate(steps, 1):
        emit(handlers, PhaseStarted(i, len(steps), title))
        try:
            phases.append(step())
        except KeyboardInterrupt:
            raise Interrupted(phases) from None  # the phase under way is dropped, not judged
        emit(handlers, PhaseFinished(i, len(steps), phases[-1]))
        if INTERRUPT.is_set():  # a Ctrl-C that Python dropped: stop here all the same
            raise Interrupted(phases)
    return phases


def conformance_phase(target: Target, options: RunOptions, run_dir: Path,
                      console: Console) -> Phase:
    """The conformance suite, writing junit.xml, allure-results/ and conformance.json."""
    conformance = ConformanceOptions(select=options.select, report_dir=run_dir,
                                     checks=options.checks, verbose=options.verbose,
                                     max_generated_tokens=options.max_generated_tokens,
                                     fuzz_seed=options.fuzz_seed,
                                     fuzz_phases=options.fuzz_phases)
    if options.budget_s is not None:
        conformance = replace(conformance, budget_s=options.budget_s)
    result = run_conformance(target, conformance, console)
    return Phase("conformance", PASSED if result.ok else FAILED, summary_line(result), "",
                 {"tests": dict(result.outcomes), "budget_spent": result.budget_spent,
                  "cases_per_endpoint": result.cases_per_endpoint,
                  "not_served": result.not_served, "information": result.information,
                  "fuzz_seed": result.fuzz_seed, "missing_extras": result.missing_extras,
                  "failed_tests": sorted({t for t, o in result.tests if o == "failed"})},
                 result.findings)


def load_phase(target: Target, options: LoadOptions, run_dir: Path, console: Console) -> Phase:
    """One load scenario into ``run_dir/<scenario>/``, or why it cannot run."""
    scenario = options.scenario
    why_not = load_refusal(target, scenario)
    if why_not:
        return Phase(scenario, SKIPPED, why_not)
    result = run_load(target, replace(options, report_dir=run_dir / scenario), console)
    if result.verdict and result.verdict.get("refused_key"):  # a wrong secret: said once
        raise ConfigError(result.verdict["refused_key"]["why"])
    if result.exit_code == INCONCLUSIVE_EXIT:  # could not tell: not a finding either
        return Phase(scenario, SKIPPED, f"inconclusive: {result.reason}", scenario,
                     result.verdict or {})
    if result.exit_code == SATURATED_EXIT:
        # no verdict on latency (our own generator was measured): no finding either
        return Phase(scenario, SKIPPED, result.reason, scenario, result.verdict or {})
    if result.verdict is None:
        return Phase(scenario, ERROR,
                     f"the load run ended without a verdict (exit {result.exit_code})",
                     scenario)
    return Phase(scenario, PASSED if result.ok else FAILED, result.reason, scenario,
                 result.verdict, result.findings)


def rate_limit_phase(target: Target, options: LoadOptions, run_dir: Path, console: Console,
                     after_others: bool) -> Phase:
    """The rate-limit scenario, each tier's budget full: a tier key the earlier phases also
    sent with has spent part of its window, so the phase waits for a fresh one first (else a
    correct limiter "accepts only 38 of 60")."""
    touched = touched_tiers(target) if after_others else []
    if touched and not load_refusal(target, "rate-limits"):
        wait = target.window_s + 1
        console.line(f"rate-limits: waiting {wait:g} s for a fresh window: the earlier phases "
                     f"sent with the key of tier {', '.join(touched)}")
        sleep(wait)
    return load_phase(target, options, run_dir, console)


def touched_tiers(target: Target) -> list[str]:
    """The tiers whose key the conformance phase also sends with (its API key, the
    no-permission key, the admin keys)."""
    used = {target.api_key, target.no_permission_key, target.admin_key, target.other_admin_key}
    return [tier for tier, key in target.tier_keys.items() if key and key in used]


sleep = time.sleep
"""The wait for a fresh window (a seam for tests)."""


def load_refusal(target: Target, scenario: str) -> str:
    """Why a load scenario does not run against ``target`` ('' when it does): the target's
    own refusal of load, else what the scenario needs of a target (``Scenario.refusal``)."""
    return target.load_refusal or load_scenario(scenario).refusal(target)


def check_suites(suites: Sequence[str]) -> list[str]:
    """The suites named, each known."""
    known = SUITES + OPT_IN_SUITES
    unknown = [s for s in suites if s not in known]
    if unknown:
        raise ConfigError(f"unknown suite {unknown[0]!r} (one of {', '.join(known)})")
    if not suites:
        raise ConfigError("no suite to run")
    return list(dict.fromkeys(suites))


def dry_run(target: Target, options: RunOptions, console: Console) -> int:
    """What each phase would send (``--dry-run`` of ``run`` and ``gate``)."""
    options = options.check()
    skipped = {s: load_refusal(target, s) for s in options.suites if s != "conformance"}
    suites = [s for s in options.suites if not skipped.get(s)]
    dryrun.phases(suites, console)
    for suite, why in skipped.items():
        if why:
            console.line(f"{suite}: skipped ({why})")
    for suite in suites:
        console.line("")
        if suite == "conformance":
            conformance_dry_run(target, ConformanceOptions(select=options.select,
                                                           fuzz_phases=options.fuzz_phases),
                                console)
        elif suite == "latency":
            load_dry_run(target, options.latency, console)
        else:
            load_dry_run(target, LoadOptions(scenario=suite), console)
    return 0

