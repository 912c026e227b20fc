"""gateprobe's pytest plugin: target options, case parametrization, findings, the summary.

Registered through the ``pytest11`` entry point, so it is loaded in every pytest run; it stays
inert unless a test asks for its fixtures. It never imports ``locust`` (which monkey-patches
gevent into the process) and imports ``allure`` only when installed and in use.

The conformance suite's tests take a ``case`` (parametrized here from ``gateprobe.engine.cases`` by
the test's marker) and call the ``judge`` fixture, which sends it, runs every check, records the
findings for the summary and fails the test with them.

PYTEST_DONT_REWRITE: the plugin makes no assertions of its own, and ``gateprobe.run_conformance``
imports it before it starts pytest in-process (pytest would warn that it cannot rewrite it).
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest

from gateprobe.core.errors import INTERRUPT, GateprobeError
from gateprobe.core.findings import Finding, collapse
from gateprobe.core.redact import Redactor, redact_file
from gateprobe.core.targets import (
    PROFILES,
    Target,
    TargetChoice,
    add_timeout_flags,
    check_endpoints,
    resolve_target,
    timeouts_of,
)
from gateprobe.engine.cases import (
    MARKERS,
    Case,
    auth_cases,
    category_cases,
    endpoint_cases,
    error_cases,
    golden_cases,
    legacy_prompt_cases,
    stream_cases,
)
from gateprobe.engine.runstate import RunState

CATEGORIES: dict[str, Callable[[Target], list[Case]]] = {
    "endpoint": lambda t: endpoint_cases(t) + category_cases("endpoint", t),
    "stream": lambda t: stream_cases(t) + category_cases("stream", t),  # opt-in, alias too
    "errors": lambda t: error_cases(t) + category_cases("errors", t),
    "auth": lambda t: auth_cases(t) + category_cases("auth", t),
    "legacy_prompt": legacy_prompt_cases,
    "golden": golden_cases,
}
TARGET_KEY = pytest.StashKey[Target | None]()
FINDINGS_KEY = pytest.StashKey[dict[str, list[Finding]]]()
OUTCOMES_KEY = pytest.StashKey[Counter[str]]()
RECORDED_KEY = pytest.StashKey[dict[Path, dict[str, tuple[int, Any]]]]()
RUN_STATE_KEY = pytest.StashKey[RunState]()
INFORMATION_KEY = pytest.StashKey[list[str]]()
"""What the run learnt about the target that it does not judge (``Case.information``)."""
_RUN: dict[str, pytest.Config] = {}
"""The configured run, for test modules that must build their tests at import (fuzz)."""


def current_target() -> Target | None:
    """The target of the configured run, or None (no --base-url, or no run)."""
    config = _RUN.get("config")
    return config.stash.get(TARGET_KEY, None) if config is not None else None


def current_config() -> pytest.Config | None:
    """The configured run's pytest config."""
    return _RUN.get("config")


def pytest_addoption(parser: pytest.Parser) -> None:
    """The target options, in a ``gateprobe`` group."""
    group = parser.getgroup("gateprobe", "gateprobe conformance target")
    group.addoption("--target", help="a target of the targets file, by name")
    group.addoption("--targets", default="targets.yaml",
                    help="the targets file (targets.yaml)")
    group.addoption("--base-url", help="the gateway to test, e.g. http://127.0.0.1:8080")
    group.addoption("--profile", choices=PROFILES, default="ohmygpt",
                    help="the gateway's conventions (ohmygpt)")
    group.addoption("--api-key-env", default="GATEPROBE_API_KEY",
                    help="environment variable holding the key (GATEPROBE_API_KEY)")
    group.addoption("--no-permission-key-env", default=None,
                    help="variable holding a key without permission for the claude-2-web "
                         "model (its test is skipped without it)")
    group.addoption("--model", action="append", default=[], metavar="ENDPOINT=NAME",
                    help="model per endpoint family (repeatable)")
    group.addoption("--endpoints", default=None, metavar="LIST",
                    help="the endpoints the target serves, comma-separated (default: its "
                         "profile's)")
    group.addoption("--record-golden", action="store_true",
                    help="record the golden cases' answers from this (trusted) target")
    group.addoption("--max-examples", type=int, default=None,
                    help="fuzz: examples per operation (20 on loopback, 5 elsewhere)")
    group.addoption("--fuzz-seed", type=int, default=None,
                    help="fuzz: the seed to generate from (the same seed sends the same cases)")
    group.addoption("--fuzz-phases", default=None, metavar="LIST",
                    help="fuzz: schemathesis's phases, comma-separated (every one on loopback: "
                         "examples,coverage,fuzzing; elsewhere all but coverage)")
    group.addoption("--fuzz-log", default=None, metavar="PATH",
                    help="fuzz: write each request sent (method, path, query, body) here as "
                         "JSON lines")
    group.addoption("--fuzz-max-tokens", type=int, default=64,
                    help="fuzz: cap on max_tokens-like values sent (64)")
    group.addoption("--fuzz-max-requests", type=int, default=None,
                    help="fuzz: stop after this many requests (2000 on loopback, 200 elsewhere)")
    group.addoption("--golden-dir", default=None,
                    help="golden files to use or record (default: the shipped ones)")
    group.addoption("--findings-json", default=None, metavar="PATH",
                    help="write the run's findings and test outcomes here as JSON")
    add_timeout_flags(group.addoption)
    group.addoption("--max-generated-tokens", type=int, default=None, metavar="N",
                    help="stop sending once the run's requests have asked for N tokens in all "
                         "(each request counts its max_tokens): the rest is skipped and the "
                         "run fails")
    group.addoption("--budget-s", type=float, default=None, metavar="S",
                    help="stop sending after this many seconds: the rest is skipped and the "
                         "run fails (a hostile gateway must not hold a CI job)")


def pytest_configure(config: pytest.Config) -> None:
    """Register the markers; read the target once, if one was given."""
    for name, doc in MARKERS.items():
        config.addinivalue_line("markers", f"{name}: {doc}")
    _RUN["config"] = config
    config.stash[TARGET_KEY] = None
    findings: dict[str, list[Finding]] = defaultdict(list)
    config.stash[FINDINGS_KEY] = findings
    config.stash[OUTCOMES_KEY] = Counter()
    config.stash[INFORMATION_KEY] = []
    recorded: dict[Path, dict[str, tuple[int, Any]]] = defaultdict(dict)
    config.stash[RECORDED_KEY] = recorded
    config.stash[RUN_STATE_KEY] = RunState(
        config.getoption("--budget-s", None),
        token_cap=config.getoption("--max-generated-tokens", None))
    target = _provided_target(config)
    if target is None:
        try:
            target = _target_from_options(config)
        except GateprobeError as exc:  # one line, as pytest usage errors are
            raise pytest.UsageError(str(exc)) from None
    config.stash[TARGET_KEY] = target
    if target is not None:
        config.stash[RUN_STATE_KEY].pace_s = target.pace_s


def _provided_target(config: pytest.Config) -> Target | None:
    """The target a caller handed over as an object (``gateprobe.run_conformance`` does; its
    keys never pass through the environment), timed by this run's timeout options."""
    for plugin in config.pluginmanager.get_plugins():
        target = getattr(plugin, "gateprobe_target", None)
        if isinstance(target, Target):
            return target
    return None


def _target_from_options(config: pytest.Config) -> Target | None:
    """The target of ``--target`` or ``--base-url`` (a user's own pytest run), or None."""
    base_url = config.getoption("--base-url", None)
    target_name = config.getoption("--target", None)
    if not base_url and not target_name:
        return None
    no_permission_env = config.getoption("--no-permission-key-env")
    return resolve_target(TargetChoice(
        target=target_name, targets_file=Path(config.getoption("--targets")),
        base_url=base_url, profile=config.getoption("--profile"),
        api_key_env=config.getoption("--api-key-env"),
        no_permission_key_env=no_permission_env, models=tuple(config.getoption("--model")),
        timeouts=timeouts_of(config.getoption), endpoints=_endpoints(config)))


def _endpoints(config: pytest.Config) -> frozenset[str] | None:
    value = config.getoption("--endpoints", None)
    if value is None:
        return None
    return check_endpoints((e.strip() for e in value.split(",") if e.strip()), "--endpoints")


def pytest_unconfigure(config: pytest.Config) -> None:
    """Forget the run: nothing of it is seen by the next run in this process."""
    if _RUN.get("config") is config:
        del _RUN["config"]


def run_state(config: pytest.Config) -> RunState:
    """The run's budget clock and breaker (made fresh by each run's ``pytest_configure``)."""
    return config.stash[RUN_STATE_KEY]


def _stop(told: bool, reason: str) -> None:
    """A run bound is reached: the first test to meet it fails saying so (the run must not
    pass on what it did not send), every later one is skipped."""
    if not told:
        pytest.fail(f"{reason}: the remaining requests are not sent", pytrace=False)
    pytest.skip(reason)


def admit_tokens(state: RunState, asked: int | None) -> None:
    """Count a request's tokens against the run's cap (a paid gateway's run must stop at its
    cost bound). A request nothing bounds (``asked`` None: no cap of its own, no declared
    maximum) is not sent under a cap: its cost could be anything."""
    if asked is None:
        if state.token_cap is None:
            return
        state.uncapped += 1
        pytest.skip(f"not sent: it names no token cap and the target declares no max_tokens, "
                    f"so it could exceed --max-generated-tokens {state.token_cap}")
    if not state.admit_tokens(asked):
        told, state.cap_told = state.cap_told, True
        _stop(told, f"the run's cap of {state.token_cap} generated tokens is reached")


def pytest_runtest_setup(item: pytest.Item) -> None:
    """The run's budget of time; a Ctrl-C Python dropped (``errors.INTERRUPT``) stops the
    suite before the next test, as one it raised would have."""
    if INTERRUPT.is_set():
        raise KeyboardInterrupt
    state = item.config.stash.get(RUN_STATE_KEY, None)
    if state is None or state.budget_s is None:
        return
    state.start()
    if state.spent():
        told, state.told = state.told, True
        _stop(told, f"the run's budget of {state.budget_s:g} s is spent")


def pytest_report_header(config: pytest.Config) -> list[str]:
    """Which target, which profile, and the *name* of the key's variable (never its value)."""
    target = config.stash.get(TARGET_KEY, None)
    if target is None:
        return []
    key = "the embedded gateway's test key" if target.embedded else \
        f"key from ${target.api_key_env}"
    return [f"gateprobe target: {target.base_url} (profile {target.profile}, {key})"]


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Parametrize ``case`` with the cases of the test's category marker.

    Tests without a category marker are not ours (schemathesis's tests take a ``case`` too).
    """
    if "case" not in metafunc.fixturenames:
        return
    categories = [m.name for m in metafunc.definition.iter_markers() if m.name in CATEGORIES]
    if not categories:
        return
    if len(categories) != 1:
        raise pytest.UsageError(f"{metafunc.function.__name__} has several of the markers "
                                f"{', '.join(CATEGORIES)}")
    target = metafunc.config.stash.get(TARGET_KEY, None)
    if target is None:
        raise pytest.UsageError("the conformance suite needs --base-url (or run it with "
                                "'gateprobe conformance', which can start a reference gateway)")
    try:
        golden_dir = metafunc.config.getoption("--golden-dir")
        if categories[0] == "golden" and golden_dir:
            cases = golden_cases(target, Path(golden_dir))
        else:
            cases = CATEGORIES[categories[0]](target)
    except GateprobeError as exc:
        raise pytest.UsageError(str(exc)) from None
    metafunc.parametrize("case", cases, ids=[c.id for c in cases])


@pytest.fixture(scope="session")
def gateprobe_target(pytestconfig: pytest.Config) -> Target:
    """The target under test."""
    target = pytestconfig.stash.get(TARGET_KEY, None)
    if target is None:
        pytest.skip("no --base-url given")
    return target


@pytest.fixture(scope="session")
def gateprobe_run(pytestconfig: pytest.Config) -> RunState:
    """This run's budget clock and breaker: every request of every category goes through it."""
    return run_state(pytestconfig)


@pytest.fixture(scope="session")
def gateprobe_http(gateprobe_target: Target) -> Iterator[httpx.Client]:
    """One HTTP client for the whole run (connection reuse), bounded by the target's
    timeouts and the body cap on every request (``probe.client_for``)."""
    from gateprobe.engine.probe import client_for

    with client_for(gateprobe_target) as client:
        yield client


@pytest.fixture
def judge(request: pytest.FixtureRequest, gateprobe_target: Target,
          gateprobe_http: httpx.Client, gateprobe_run: RunState) -> Callable[[Case], list[Finding]]:
    """Send a case, run every check, record and return the findings."""
    import gateprobe.protocols.conformance  # noqa: F401  (registers the built-in checks)
    from gateprobe.core.checks import Context, run_checks
    from gateprobe.core.redact import Redactor
    from gateprobe.engine.cases import information_line
    from gateprobe.engine.fuzz_guard import tokens_bound
    from gateprobe.engine.probe import curl_command, send
    from gateprobe.protocols.conformance import checks_for, normalized_answer

    def run(case: Case) -> list[Finding]:
        if case.auth == "no_permission" and gateprobe_target.no_permission_key is None:
            pytest.skip("no key without model permission given (--no-permission-key-env)")
        redactor = Redactor(gateprobe_target.secrets)
        admit_tokens(gateprobe_run,
                     tokens_bound(case.path, case.body, gateprobe_target.max_tokens))
        exchange = send(gateprobe_http, gateprobe_target, case, gateprobe_run)
        if case.expect.kind == "information":  # learnt, never judged
            request.config.stash[INFORMATION_KEY].append(information_line(case, exchange))
            return []
        if case.golden is not None and request.config.getoption("--record-golden"):
            if exchange.status is None:
                pytest.fail(f"cannot record {case.id}: {exchange.transport_error}")
            answer = normalized_answer(exchange)
            request.config.stash[RECORDED_KEY][case.golden.file][case.golden.name] = (
                exchange.status, answer)
            return []
        learnt: list[str] = []  # what a check says and does not judge
        ctx = Context.of(gateprobe_target, case.family, case.expect, gateprobe_run.seen_ids,
                         gateprobe_run.input_tokens, learnt)
        repro = curl_command(gateprobe_target, case)
        findings = collapse(replace(f, case=case.id, repro=repro)
                            for f in run_checks(ctx, exchange, checks_for(ctx, exchange)))
        request.config.stash[INFORMATION_KEY] += [f"{case.method} {case.id}: {line}"
                                                  for line in dict.fromkeys(learnt)]
        record(request.config, case.path, findings)
        request.config.stash[OUTCOMES_KEY][case.path] += 1
        _allure(case, repro, exchange.status, findings, attached_answer(exchange.body, redactor))
        return findings

    return run


def record(config: pytest.Config, endpoint: str, findings: list[Finding]) -> None:
    """Add findings to the run's summary, an identical one of the same case counted into the
    one already there (a fuzzed operation fails the same way on many examples)."""
    if findings:
        recorded = config.stash[FINDINGS_KEY][endpoint]
        recorded[:] = collapse([*recorded, *findings])


@pytest.fixture
def record_finding(request: pytest.FixtureRequest) -> Callable[[Finding], None]:
    """Add a finding made outside ``judge`` (the SDK tests) to the run's summary."""
    def add(finding: Finding) -> None:
        record(request.config, finding.endpoint, [finding])

    return add


@pytest.fixture
def count_case(request: pytest.FixtureRequest) -> Callable[[str], None]:
    """Count one case on an endpoint for the summary (tests that do not use ``judge``)."""
    def count(endpoint: str) -> None:
        request.config.stash[OUTCOMES_KEY][endpoint] += 1

    return count


def _allure(case: Case, repro: str, status: int | None, findings: list[Finding],
            body: str) -> None:
    """One Allure story per endpoint, the request (as its redacted ``curl`` command) attached
    next to the (redacted) answer, and the findings as JSON, when allure runs."""
    allure_story(case.family, case.path)
    attach_exchange(repro, status, body)
    attach_findings(findings)


def allure_story(family: str, endpoint: str) -> None:
    """File the current test under its API family and endpoint in Allure's behaviours view,
    whichever category it belongs to (a case, a fuzzed operation), when allure runs."""
    allure = _allure_module()
    if allure is not None:
        allure.dynamic.feature(family)
        allure.dynamic.story(endpoint)


ATTACHED_CHARS = 4000
"""How much of an answer an Allure attachment shows (a finding quotes less:
``checks.clip_evidence``)."""


def attached_answer(body: bytes, redactor: Redactor) -> str:
    """The head of an answer as an attachment shows it: redacted before it is cut (over twice
    the window, so a key straddling the edge is whole when it is masked), never a key's
    unmasked half."""
    window = body[:2 * ATTACHED_CHARS].decode("utf-8", "replace")
    return redactor.text(window)[:ATTACHED_CHARS]


def attach_exchange(repro: str, status: int | None, body: str) -> None:
    """The request (its redacted ``curl`` command) and the (redacted) answer, side by side in
    Allure, when allure runs."""
    allure = _allure_module()
    if allure is None:
        return
    allure.attach(repro, name="request", attachment_type=allure.attachment_type.TEXT)
    head = "status unknown" if status is None else f"status {status}"
    allure.attach(f"{head}\n\n{body}", name="answer",
                  attachment_type=allure.attachment_type.TEXT)


def _allure_module() -> Any:
    """allure-pytest's API when it is installed (None otherwise); its calls do nothing in a
    run without ``--alluredir``."""
    try:
        import allure
    except ImportError:
        return None
    return allure  # allure-pytest ships no type hints


def attach_findings(findings: list[Finding]) -> None:
    """The findings of a test as an Allure attachment, in ``as_json`` form (every field:
    pointer, evidence, repro, count), when allure runs."""
    allure = _allure_module()
    if allure is None or not findings:
        return
    allure.attach(json.dumps([f.as_json() for f in findings], indent=2), name="findings",
                  attachment_type=allure.attachment_type.JSON)


def describe(findings: list[Finding]) -> str:
    """Findings as the failure message of a test (and so of its JUnit and Allure results):
    every field a person needs to act on one, each finding once with its count."""
    return "\n".join(_describe_one(f) for f in findings)


def _describe_one(f: Finding) -> str:
    times = f" (x{f.count})" if f.count > 1 else ""
    lines = [f"[{f.check_id}] {f.endpoint}{times}: expected {f.expected}; got {f.observed}"]
    lines += [f"    {label}: {value}" for label, value in (
        ("case", f.case), ("pointer", f.pointer)) if value]
    if f.evidence:
        lines.append("    evidence: " + f.evidence[:EVIDENCE_SHOWN].replace("\n", "\n      "))
    if f.repro:
        lines.append(f"    repro: {f.repro}")
    return "\n".join(lines)


EVIDENCE_SHOWN = 400
"""How much evidence a failure message quotes (the reports have it whole)."""


TESTS_KEY = pytest.StashKey[list[tuple[str, str]]]()


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    """Each test's outcome, for ``--findings-json`` (a failed setup counts as failed).

    A list, not a mapping by node id: schemathesis reports each operation it fuzzes under
    its test's one node id."""
    config = current_config()
    if config is None:
        return
    if report.when == "call" or report.outcome != "passed":
        outcome = report.outcome if report.when == "call" or report.outcome == "skipped" \
            else "failed"
        config.stash.setdefault(TESTS_KEY, []).append((report.nodeid, outcome))


def pytest_sessionfinish(session: pytest.Session) -> None:
    """Write recorded golden answers back into their files; write ``--findings-json``."""
    from gateprobe.core.golden import rewrite

    target = session.config.stash.get(TARGET_KEY, None)
    for path, updates in session.config.stash.get(RECORDED_KEY, {}).items():
        rewrite(path, updates)
        if target is not None:  # an answer that quoted a key must not be committed with it
            redact_file(path, Redactor(target.secrets))
    alluredir = session.config.getoption("--alluredir", None)
    if alluredir and target is not None:
        write_allure_environment(Path(alluredir), target)
    out = session.config.getoption("--findings-json", None)
    if out:
        tests = session.config.stash.get(TESTS_KEY, [])
        findings = session.config.stash.get(FINDINGS_KEY, {})
        outcomes = session.config.stash.get(OUTCOMES_KEY, Counter())
        Path(out).write_text(json.dumps({
            "tests": [{"test": test, "outcome": outcome} for test, outcome in tests],
            "cases_per_endpoint": dict(sorted(outcomes.items())),
            "findings": [f.as_json() for endpoint in sorted(findings)
                         for f in findings[endpoint]],
        }, indent=2), encoding="utf-8")


def write_allure_environment(alluredir: Path, target: Target) -> Path:
    """``environment.properties`` in an Allure results folder: what was tested, under which
    profile, by which gateprobe (Allure shows it on the report's overview). The key's
    variable is named; no key is written, and a URL's user:password part is dropped."""
    from gateprobe import __version__

    parts = urlsplit(target.base_url)
    url = parts._replace(netloc=parts.netloc.rsplit("@", 1)[-1]).geturl()
    values = {"target": target.name or ("embedded" if target.embedded else url),
              "base_url": url, "profile": target.profile, "key_variable": target.api_key_env,
              "gateprobe": __version__}
    alluredir.mkdir(parents=True, exist_ok=True)
    path = alluredir / "environment.properties"
    text = "".join(f"{k}={_property(v)}\n" for k, v in values.items())
    path.write_text(Redactor(target.secrets).text(text), encoding="utf-8")
    return path


def _property(value: str) -> str:
    """A value as Java's properties format reads it back (backslash escapes, one line)."""
    return value.replace("\\", "\\\\").replace("\n", "\\n")


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    """Per endpoint: cases run and findings by check id."""
    recorded = config.stash.get(RECORDED_KEY, {})
    for path, updates in recorded.items():
        terminalreporter.write_line(f"gateprobe: recorded {len(updates)} golden answers in "
                                    f"{path}")
    target = config.stash.get(TARGET_KEY, None)
    if target is not None and target.not_served:
        terminalreporter.write_line(f"gateprobe: not sent (the target does not serve them): "
                                    f"{', '.join(target.not_served)}")
    for line in config.stash.get(INFORMATION_KEY, []):
        terminalreporter.write_line(f"gateprobe: information: {line}")
    outcomes: Counter[str] = config.stash.get(OUTCOMES_KEY, Counter())
    if not outcomes:
        return
    findings = config.stash[FINDINGS_KEY]
    terminalreporter.section("gateprobe: findings per endpoint")
    for endpoint in sorted(outcomes):
        by_check: Counter[str] = Counter()
        for f in findings.get(endpoint, []):
            by_check[f.check_id] += f.count
        verdict = ", ".join(f"{k} x{n}" for k, n in sorted(by_check.items())) or "ok"
        terminalreporter.write_line(f"{endpoint:30} {outcomes[endpoint]:3} cases  {verdict}")

