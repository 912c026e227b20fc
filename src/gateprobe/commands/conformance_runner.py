"""The conformance suite (``conformance/``) as a typed entry point, run in-process by pytest.

``run_conformance(target, options)`` hands the target to the suite as an object (a pytest plugin
instance, never through environment variables or files) and returns a ``ConformanceResult``
with the findings as ``Finding`` objects. argv is built here only because ``pytest.main`` is
where the suite's run starts.

What people read is the live view (``gateprobe.engine.live``, on the run's ``Console``) and the
findings grouped at the end; pytest's own report, tracebacks included, goes to ``pytest.log``
in the run folder (a temporary file without one), and to the terminal too with ``verbose``.
"""

from __future__ import annotations

import contextlib
import difflib
import importlib.util
import io
import os
import random
import re
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Generator, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import pytest

from gateprobe.core.console import Console
from gateprobe.core.errors import INTERRUPT, ConfigError, UsageError
from gateprobe.core.findings import Finding
from gateprobe.core.redact import Redactor, redact_file, redact_tree
from gateprobe.core.targets import Target
from gateprobe.engine import dryrun
from gateprobe.engine.cases import MARKERS, all_cases, golden_cases
from gateprobe.engine.fuzz_guard import parse_phases
from gateprobe.engine.live import LiveConformance, findings_tree, outcome_line
from gateprobe.engine.pytest_plugin import (
    FINDINGS_KEY,
    INFORMATION_KEY,
    OUTCOMES_KEY,
    RUN_STATE_KEY,
    TESTS_KEY,
)
from gateprobe.engine.runstate import RunState
from gateprobe.engine.user_checks import load_check_modules

_PACKAGED = Path(__file__).resolve().parents[1] / "_conformance"
_SOURCE = Path(__file__).resolve().parents[3] / "conformance"


def suite_dir() -> Path:
    """The suite: packaged inside a wheel, ``conformance/`` in a checkout."""
    return _PACKAGED if _PACKAGED.exists() else _SOURCE


@dataclass(frozen=True, slots=True)
class ConformanceOptions:
    """How to run the suite (the target is separate: ``gateprobe.core.targets.Target``)."""

    select: str | None = None
    """Categories, as a pytest marker expression: ``'stream or errors'``."""
    record_golden: bool = False
    golden_dir: Path | None = None
    max_examples: int | None = None
    """fuzz: examples per operation (``--fuzz-examples``; 20 on loopback, 5 elsewhere)."""
    fuzz_seed: int | None = None
    """fuzz: the seed to generate from (``--fuzz-seed``); a fresh one when None. The same
    seed against the same gateway sends the same cases: the run prints it to replay it."""
    fuzz_phases: tuple[str, ...] | None = None
    """fuzz: schemathesis's phases to run (``--fuzz-phases``; ``GATEPROBE_FUZZ_PHASES`` when
    None, else every one on loopback and all but ``coverage`` elsewhere)."""
    fuzz_max_tokens: int | None = None
    fuzz_max_requests: int | None = None
    budget_s: float | None = 900.0
    """The whole run's budget: once spent, the rest is skipped and the run fails."""
    max_generated_tokens: int | None = None
    """The most tokens the run's requests may ask for in all (each counts its max_tokens)."""
    report_dir: Path | None = None
    """junit.xml, allure-results/ and conformance.json go here."""
    junit: Path | None = None
    verbose: bool = False
    """pytest's own output on the terminal too (it always goes to ``pytest.log``)."""
    checks: tuple[str, ...] = ()
    """Modules of user-defined checks (``--checks``): a module name or a ``.py`` path."""

    def check(self) -> ConformanceOptions:
        """Itself, every value usable (``UsageError`` naming the flag otherwise)."""
        if self.fuzz_seed is not None and not 0 <= self.fuzz_seed < 2 ** 64:
            raise UsageError("--fuzz-seed must be a whole number from 0 to 2**64 - 1")
        for flag, value in (("--fuzz-examples", self.max_examples),
                            ("--fuzz-max-tokens", self.fuzz_max_tokens),
                            ("--fuzz-max-requests", self.fuzz_max_requests),
                            ("--max-generated-tokens", self.max_generated_tokens)):
            if value is not None and value < 1:
                raise UsageError(f"{flag} must be at least 1")
        if self.budget_s is not None and not self.budget_s > 0:
            raise UsageError("--budget-s must be > 0")
        if self.fuzz_phases is not None:
            try:
                parse_phases(",".join(self.fuzz_phases), "--fuzz-phases")
            except ValueError as exc:
                raise UsageError(str(exc)) from None
        if self.select:
            check_selection(self.select)
        return self


@dataclass(slots=True)
class ConformanceResult:
    """What a run of the suite found."""

    exit_code: int
    findings: list[Finding] = field(default_factory=list)
    tests: list[tuple[str, str]] = field(default_factory=list)
    """(pytest node id, outcome) per test; schemathesis reports several under one id."""
    cases_per_endpoint: dict[str, int] = field(default_factory=dict)
    budget_spent: bool = False
    """The run's budget (of time, or of generated tokens) ran out: the tests after that point
    were not run."""
    not_served: list[str] = field(default_factory=list)
    """Known endpoints the target does not serve: nothing was sent to them."""
    tokens_asked: int = 0
    """Tokens the run's requests asked to generate, all together (each its max_tokens)."""
    budget_out: str = ""
    """Which budget ran out, as the user set it ('' when none did)."""
    uncapped: int = 0
    """Requests not sent under ``--max-generated-tokens``: nothing bounded their cost."""
    information: list[str] = field(default_factory=list)
    """What the target does that it does not declare either way: said, never judged."""
    log: Path | None = None
    """pytest's own output of the run (``pytest.log``)."""
    fuzz_seed: int | None = None
    """The seed the fuzz category generated from (None when it did not run): ``--fuzz-seed``
    with it sends the same cases again."""
    missing_extras: list[str] = field(default_factory=list)
    """Selected categories that could not run for a package not installed: one line each,
    with the command that installs it."""

    @property
    def ok(self) -> bool:
        """Whether every check passed."""
        return self.exit_code == 0

    @property
    def outcomes(self) -> Counter[str]:
        """Tests per outcome (passed, failed, skipped)."""
        return Counter(outcome for _, outcome in self.tests)


class SuiteRun:
    """The plugin object that carries the target into the suite and its results out."""

    def __init__(self, target: Target) -> None:
        self.gateprobe_target = target
        """Read by the plugin's ``pytest_configure`` instead of target flags."""
        self.result = ConformanceResult(exit_code=-1)
        self.interrupted = False
        """Ctrl-C stopped the suite: ``run_conformance`` raises ``KeyboardInterrupt``."""
        self.config: pytest.Config | None = None

    @pytest.hookimpl(wrapper=True)
    def pytest_keyboard_interrupt(
            self, excinfo: pytest.ExceptionInfo[BaseException]) -> Generator[None, None, None]:
        """Ctrl-C: gateprobe says so in one line and exits 130; pytest's exit 2 (a usage
        error's code) and its KeyboardInterrupt banner would say otherwise, so its terminal
        reporter is dropped before the session finishes and prints it. pytest sends its own
        ``Session.Interrupted`` (a collection error) through this hook too: that is no Ctrl-C,
        and its report (the error) stays in pytest.log.

        A wrapper, because the terminal reporter's own hook can fail while it formats the
        interrupt (a traceback entry without a line number when the signal lands between two
        bytecodes: ``TypeError`` in ``_pytest._code``, seen once in CI); that failure used to
        reach the user as pytest's traceback and exit 1. The interrupt is said all the same."""
        try:
            yield
        except Exception:  # the reporter's repr of the interrupt, not ours
            pass
        if isinstance(excinfo.value, pytest.Session.Interrupted) and not INTERRUPT.is_set():
            return
        self.interrupted = True
        if self.config is not None:
            reporter = self.config.pluginmanager.get_plugin("terminalreporter")
            if reporter is not None:
                self.config.pluginmanager.unregister(reporter)

    def pytest_configure(self, config: pytest.Config) -> None:
        """Kept for ``pytest_keyboard_interrupt``, which is not given the config."""
        self.config = config

    @pytest.hookimpl(trylast=True)
    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        """Take the run's findings and outcomes from its stash, as objects."""
        stash = session.config.stash
        findings = stash.get(FINDINGS_KEY, {})
        self.result.findings = [f for endpoint in sorted(findings) for f in findings[endpoint]]
        tests: list[tuple[str, str]] = stash[TESTS_KEY] if TESTS_KEY in stash else []
        self.result.tests = list(tests)
        self.result.cases_per_endpoint = dict(sorted(stash.get(OUTCOMES_KEY, {}).items()))
        state = stash.get(RUN_STATE_KEY, None)
        self.result.budget_spent = state is not None and (state.told or state.cap_told)
        self.result.tokens_asked = state.tokens_asked if state is not None else 0
        if state is not None:
            self.result.budget_out = budget_out(state)
            self.result.uncapped = state.uncapped
        information: list[str] = stash.get(INFORMATION_KEY, [])
        self.result.information = list(information)


def budget_out(state: RunState) -> str:
    """Which of the run's budgets ran out, named as the user set it ('' when none did)."""
    if state.cap_told:
        return (f"the generated-token budget (--max-generated-tokens {state.token_cap}) "
                "was reached")
    if state.told and state.budget_s is not None:
        return f"the time budget (--budget-s {state.budget_s:g}) ran out"
    return ""


def run_conformance(target: Target, options: ConformanceOptions,
                    console: Console | None = None) -> ConformanceResult:
    """Run the suite against ``target``, showing its progress and findings on ``console``
    (standard output by default); exit code 0 pass, 1 findings (``UsageError`` for a selection
    that matches nothing or a suite that cannot run)."""
    options.check()
    _check_selects_something(target, options)
    load_check_modules(options.checks)
    console = console or Console()
    if options.fuzz_seed is None:  # chosen here, so that it is known and said whatever happens
        seed = _seed_from_env()
        options = replace(options, fuzz_seed=random.getrandbits(32) if seed is None else seed)
    if options.fuzz_phases is None:
        options = replace(options, fuzz_phases=phases_from_env())
    run = SuiteRun(target)
    log = _log_path(options)
    console.line(f"conformance suite against {target.base_url} ({target.profile}); "
                 f"pytest's output in {log}")
    t0 = time.monotonic()
    try:
        with _no_plugin_autoload(), _fresh_suite_modules(), \
                _pytest_output(log, console if options.verbose else None), \
                _live(console, options.verbose) as live:
            code = int(pytest.main(_argv(target, options), plugins=[run, live]))
    finally:
        _redact_outputs(options, Redactor(target.secrets), log)
    # pytest caught Ctrl-C (or Python dropped one: INTERRUPT): pass it on as it came. Its
    # exit 2 alone is not one: pytest says "interrupted" for a collection error too.
    if run.interrupted or INTERRUPT.is_set():
        raise KeyboardInterrupt
    if code == 5:
        raise UsageError(f"--select {options.select!r} matches no conformance test")
    if code in (pytest.ExitCode.INTERRUPTED, 3, 4):
        raise UsageError(f"the conformance suite could not run (pytest exit {code}); "
                         f"see {log}")
    run.result.exit_code = code
    run.result.missing_extras = missing_extras(options.select)
    if dryrun.selected(options.select)("fuzz") and importlib.util.find_spec("schemathesis"):
        run.result.fuzz_seed = options.fuzz_seed
    run.result.not_served = target.not_served
    run.result.log = log
    show_result(run.result, console, time.monotonic() - t0)
    return run.result


def show_result(result: ConformanceResult, console: Console, seconds: float) -> None:
    """The closing lines: the outcome, then the findings grouped check → endpoint → case."""
    console.line(outcome_line(result.outcomes, result.findings, seconds))
    for line in findings_tree(result.findings, console.width):
        console.line(line)
    if result.budget_spent:
        console.line(f"{result.budget_out or 'the run budget ran out'}: the tests after that "
                     "point were not run")
    if result.uncapped:
        console.line(f"{result.uncapped} request{'s' if result.uncapped != 1 else ''} not "
                     "sent: each names no token cap and the target declares no max_tokens, "
                     "so its cost is unbounded under --max-generated-tokens")
    for line in result.missing_extras:
        console.line(line)
    if result.fuzz_seed is not None:
        console.line(f"fuzz seed {result.fuzz_seed}: --fuzz-seed {result.fuzz_seed} sends the "
                     f"same cases again")
    if result.not_served:
        console.line(f"not sent (the target does not serve them): "
                     f"{', '.join(result.not_served)}")
    for line in result.information:
        console.line(f"information (not judged): {line}")


EXTRAS: dict[str, tuple[str, tuple[str, ...]]] = {
    "sdk": ("sdk", ("openai", "anthropic")),
    "fuzz": ("fuzz", ("schemathesis",)),
}
"""Categories that need an optional extra: category -> (extra, the modules it installs)."""


def missing_extras(select: str | None,
                   installed: Callable[[str], bool] | None = None) -> list[str]:
    """A line per selected category whose extra is not installed: its tests skip, and only
    pytest.log would say why, so a gate would look complete without them."""
    has = installed or (lambda module: importlib.util.find_spec(module) is not None)
    chosen = dryrun.selected(select)
    lines = []
    for category, (extra, modules) in EXTRAS.items():
        missing = [m for m in modules if not has(m)]
        if chosen(category) and missing:
            lines.append(f"{category}: not run, {' and '.join(missing)} not installed "
                         f"(pip install 'gateprobe[{extra}]')")
    return lines


def _log_path(options: ConformanceOptions) -> Path:
    """``pytest.log`` in the run folder; without one, a temporary file the run names."""
    if options.report_dir is not None:
        options.report_dir.mkdir(parents=True, exist_ok=True)
        return options.report_dir / "pytest.log"
    handle, name = tempfile.mkstemp(prefix="gateprobe-pytest-", suffix=".log")
    os.close(handle)
    return Path(name)


class _Tee(io.TextIOBase):
    """pytest's output to the log and to the terminal at once (``verbose``)."""

    def __init__(self, *streams: io.TextIOBase | Any) -> None:
        super().__init__()
        self.streams = streams

    def write(self, text: str) -> int:
        for stream in self.streams:
            stream.write(text)
        return len(text)

    def flush(self) -> None:
        for stream in self.streams:
            stream.flush()


@contextmanager
def _pytest_output(log: Path, terminal: Console | None) -> Iterator[None]:
    """pytest's reporter writes to ``sys.stdout`` as it is when the run configures: point it
    at the log (and at the terminal too when asked)."""
    with log.open("w", encoding="utf-8") as file:
        stream: Any = _Tee(file, terminal.out) if terminal is not None else file
        with contextlib.redirect_stdout(stream):
            yield
        stream.flush()


@contextmanager
def _live(console: Console, verbose: bool) -> Iterator[LiveConformance]:
    """The live view's plugin; with ``verbose`` pytest's own lines are the progress."""
    if verbose:
        yield LiveConformance(None)
        return
    with console.progress("tests") as progress:
        yield LiveConformance(progress)


FUZZ_SEED_ENV = "GATEPROBE_FUZZ_SEED"
"""The fuzz seed of a run given no ``--fuzz-seed`` (a CI job that wants the same cases on
every run sets it; unset, each run draws its own and prints it)."""


def _seed_from_env() -> int | None:
    text = os.environ.get(FUZZ_SEED_ENV, "").strip()
    if not text:
        return None
    try:
        seed = int(text)
    except ValueError:
        seed = -1
    if not 0 <= seed < 2 ** 64:
        raise ConfigError(f"{FUZZ_SEED_ENV}={text[:24]!r}: must be a whole number from 0 to "
                          "2**64 - 1")
    return seed


FUZZ_PHASES_ENV = "GATEPROBE_FUZZ_PHASES"
"""The fuzz phases of a run given no ``--fuzz-phases`` (``examples,fuzzing``: a quick fuzz
on every pull request, the full depth nightly; this project's own test suite sets it, and its
tests of the fuzz category itself unset it)."""


def phases_from_env() -> tuple[str, ...] | None:
    """``GATEPROBE_FUZZ_PHASES`` as phases (None when unset; ``ConfigError`` when it names
    none or an unknown one)."""
    text = os.environ.get(FUZZ_PHASES_ENV, "").strip()
    if not text:
        return None
    try:
        return parse_phases(text, f"{FUZZ_PHASES_ENV}={text[:40]!r}")
    except ValueError as exc:
        raise ConfigError(str(exc)) from None


def _check_selects_something(target: Target, options: ConformanceOptions) -> None:
    """A selection with no case for this target (``golden`` under a profile without goldens,
    a category of endpoints it does not serve) is a usage error, not a green run of nothing."""
    if not options.select:
        return
    chosen = dryrun.selected(options.select)
    named = set(re.findall(r"[a-z_]+", options.select)) & {"management", "billing"}
    if any(chosen(category) for category in named):
        refusal = target.management_refusal if chosen("management") else target.spend_refusal
        if refusal:  # asked for by name: say why it cannot run (unnamed, it is left out)
            raise UsageError(f"--select {options.select!r}: {refusal}")
        return
    if chosen("sdk") or chosen("fuzz"):
        return
    if chosen("propagation") and "propagation" in options.select:
        if target.upstream is None:
            raise UsageError(f"--select {options.select!r}: the target declares no upstream "
                             "(upstream: {listen: 127.0.0.1:PORT, protocol: openai})")
        return
    golden = golden_cases(target, options.golden_dir) if chosen("golden") else []
    if not golden and not any(chosen(case.category) for case in all_cases(target)
                              if case.category != "golden"):
        served = ", ".join(sorted(target.served))
        raise UsageError(f"--select {options.select!r} selects no case for this target "
                         f"(profile {target.profile}, endpoints {served})")


def dry_run(target: Target, options: ConformanceOptions, console: Console) -> int:
    """What the suite would send (``--dry-run``); nothing is sent (a user's check modules
    are imported all the same: one that does not import is said now, not at the real run)."""
    options.check()
    load_check_modules(options.checks)
    return dryrun.conformance(target, options.select, options.fuzz_max_tokens or 64,
                              options.fuzz_max_requests, options.max_examples, console,
                              options.max_generated_tokens,
                              options.fuzz_phases or phases_from_env())


COSTLY_MODULES = {"test_fuzz.py": ("fuzz", "management"), "test_sdk.py": ("sdk",)}
"""Suite modules whose collection costs, and the categories that need them: schemathesis
builds every operation's strategies as it collects (about 5 s of CPU), and the SDK module
imports both official SDKs. A selection without those categories does not collect them
(``--select errors`` took 8.3 s of CPU, most of it collecting what ``-m`` then deselected).
The management category's stateful run needs the fuzz module too: it sends through that
module's schemathesis hook, the fuzz cost guard (its cap, pacing and breaker)."""


def _argv(target: Target, options: ConformanceOptions) -> list[str]:
    """pytest's command line for the suite (the target itself travels as ``SuiteRun``)."""
    suite = suite_dir()
    t = target.timeouts
    # importlib mode: the suite's modules (test_sdk...) must not collide with same-named
    # modules a calling process already imported (the project's own tests run this in-process).
    argv = [str(suite), "-c", str(suite / "pytest.ini"), "--rootdir", str(suite),
            # -v: the log names every test; the terminal shows it only with ``verbose``.
            "--import-mode=importlib", "-v",
            # Exactly the plugins the suite needs (autoload is off, see below).
            "-p", "gateprobe.engine.pytest_plugin",
            # A Ctrl-C Python cannot raise (in a gc callback) is the CLI's to handle
            # (``cli._unraisable``), not a warning with a traceback from pytest's hook.
            "-p", "no:unraisableexception",
            "--timeout-connect-s", str(t.connect_s), "--timeout-first-byte-s",
            str(t.first_byte_s), "--timeout-idle-s", str(t.idle_s),
            "--timeout-total-s", str(t.total_s)]
    if importlib.util.find_spec("schemathesis") is not None:
        argv += ["-p", "schemathesis.pytest.plugin"]  # the fuzz category's tests
    if options.record_golden:
        argv.append("--record-golden")
    for flag, value in (("--max-examples", options.max_examples),
                        ("--fuzz-seed", options.fuzz_seed),
                        ("--fuzz-max-tokens", options.fuzz_max_tokens),
                        ("--fuzz-max-requests", options.fuzz_max_requests),
                        ("--fuzz-phases", ",".join(options.fuzz_phases or ()) or None),
                        ("--golden-dir", options.golden_dir),
                        ("--budget-s", options.budget_s),
                        ("--max-generated-tokens", options.max_generated_tokens)):
        if value is not None:
            argv += [flag, str(value)]
    if options.select:
        argv += ["-m", options.select]
        chosen = dryrun.selected(options.select)
        argv += [f"--ignore={suite / module}" for module, needed_by in COSTLY_MODULES.items()
                 if not any(map(chosen, needed_by))]
    junit = options.junit or (options.report_dir / "junit.xml" if options.report_dir else None)
    if junit:
        argv += ["--junitxml", str(junit)]
    if options.report_dir:
        argv += ["-p", "allure_pytest.plugin",
                 "--alluredir", str(options.report_dir / "allure-results"),
                 "--findings-json", str(options.report_dir / "conformance.json"),
                 "--fuzz-log", str(options.report_dir / "fuzz-cases.jsonl")]
    return argv


@contextmanager
def _fresh_suite_modules() -> Iterator[None]:
    """The suite's modules imported anew for this run, and only for it.

    pytest's importlib mode names a test module by its file (``test_sdk``) and takes one of
    that name from ``sys.modules`` if it is there: the previous run's (the fuzz module builds
    its schema for its target at import, so a second run would fuzz the first run's target),
    or a caller's own module of the same name (a project's ``tests/test_sdk.py``)."""
    names = {path.stem for path in suite_dir().glob("*.py")}
    saved = {name: sys.modules.pop(name) for name in names if name in sys.modules}
    try:
        yield
    finally:
        for name in names:
            sys.modules.pop(name, None)
        sys.modules.update(saved)


@contextmanager
def _no_plugin_autoload() -> Iterator[None]:
    """Other installed plugins are not the suite's business, and autoloading them after the
    embedded gateway imported their modules makes pytest warn that it cannot rewrite them."""
    previous = os.environ.get("PYTEST_DISABLE_PLUGIN_AUTOLOAD")
    os.environ["PYTEST_DISABLE_PLUGIN_AUTOLOAD"] = "1"
    try:
        yield
    finally:
        if previous is None:
            del os.environ["PYTEST_DISABLE_PLUGIN_AUTOLOAD"]
        else:
            os.environ["PYTEST_DISABLE_PLUGIN_AUTOLOAD"] = previous


def _redact_outputs(options: ConformanceOptions, redactor: Redactor, log: Path) -> None:
    """Mask every key in what the suite wrote (JUnit, Allure, findings, pytest's log),
    whatever wrote it."""
    if options.report_dir and options.report_dir.exists():
        redact_tree(options.report_dir, redactor)
    for path in (options.junit, log):
        if path and path.exists():
            redact_file(path, redactor)


def check_selection(expression: str) -> None:
    """Every name in a ``--select`` expression is a category marker."""
    for word in re.findall(r"[A-Za-z_][A-Za-z0-9_]*", expression):
        if word not in {"and", "or", "not"} and word not in MARKERS:
            close = difflib.get_close_matches(word, list(MARKERS), n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise UsageError(f"--select: unknown category {word!r}{hint}; categories: "
                             f"{', '.join(MARKERS)}")


def summary_line(result: ConformanceResult) -> str:
    """One line: tests by outcome and the number of findings."""
    o = result.outcomes
    line = (f"{o['passed']} tests passed, {o['failed']} failed, {o['skipped']} skipped; "
            f"{len(result.findings)} findings")
    line += f"; not served: {', '.join(result.not_served)}" if result.not_served else ""
    said = len(result.information)
    return line + (f"; {said} information line{'s' if said > 1 else ''}" if said else "")

