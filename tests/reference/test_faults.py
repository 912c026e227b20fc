"""Proof that every check can fail, and that the clean gateway passes them all.

Each fault of the catalogue runs in its own reference gateway. Every conformance case is sent
to it and judged by every registered check, exactly as the suite does: the fault must trip the
checks it declares, and nothing may be reported on endpoints it does not touch.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from dataclasses import replace

import httpx
import pytest

from gateprobe.core import checks
from gateprobe.core.checks import Context, Exchange, run_checks
from gateprobe.core.families import canonical
from gateprobe.core.findings import Finding
from gateprobe.core.redact import Redactor
from gateprobe.core.targets import Target, Timeouts
from gateprobe.engine.cases import Case, all_cases
from gateprobe.engine.embedded import EMBEDDED_ENDPOINTS, reference_endpoints
from gateprobe.engine.probe import send
from gateprobe.engine.runstate import RunState
from gateprobe.protocols.conformance import checks_for
from gateprobe.reference import RunningGateway, Timing, faults
from gateprobe.reference.faults import (
    ACCEPT_ANY_KEY,
    CATALOGUE,
    LEGACY_PROMPT_UNCHECKED,
)
from gateway_fixtures import MakeGateway

INSTANT = Timing(ttft_ms=0, itl_ms=0)
NO_PERMISSION_KEY = "gp-nomodel-0001"


@pytest.fixture(scope="module")
def http() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=30) as client:
        yield client


def target_for(gateway: RunningGateway, profile: str = "ohmygpt") -> Target:
    """The reference gateway as a target declaring what it documents (Bearer only), so the
    wrong-auth-style case is judged too, and every opt-in family the reference serves."""
    return Target(gateway.base_url, profile, "gp-vip-0001", no_permission_key=NO_PERMISSION_KEY,
                  auth_styles=frozenset({"bearer"}),
                  endpoints=reference_endpoints(profile))


def judge(http: httpx.Client, target: Target, case: Case,
          run: RunState | None = None) -> list[Finding]:
    """As the suite judges a case: within one run's state (its breaker, the ids it saw); an
    unasked 429 only by the rate-limit checks."""
    run = run or RunState()
    exchange = send(http, target, case, run)
    ctx = Context.of(target, case.family, case.expect, run.seen_ids, run.input_tokens)
    return run_checks(ctx, exchange, checks_for(ctx, exchange))


CONFORMANCE_FAULTS = [n for n, f in CATALOGUE.items() if f.proven_by == "conformance"]
STRICT_UPSTREAM_FAULTS = frozenset({"count-tokens-extra-fields"})
"""Faults that are findings only against a target held to the upstream's letter (otherwise
information: tests/test_missing_checks.py)."""
LOAD_FAULTS = [n for n, f in CATALOGUE.items() if f.proven_by == "load"]
SEQUENCE_FAULTS = [n for n, f in CATALOGUE.items() if f.proven_by == "sequence"]
"""Proven by tests/test_gateway_apis.py and tests/test_realtime.py: only a sequence of answers
(polls, pages, a WebSocket session) shows them."""


@pytest.mark.slow
@pytest.mark.parametrize("name", CONFORMANCE_FAULTS)
def test_fault_trips_its_checks_and_nothing_elsewhere(make_gateway: MakeGateway,
                                                      http: httpx.Client, name: str) -> None:
    fault = CATALOGUE[name]
    # Every family the reference serves, the opt-in ones too: their faults are proven here.
    target = replace(target_for(make_gateway(faults=(name,), timing=INSTANT)),
                     endpoints=EMBEDDED_ENDPOINTS,
                     strictness="strict-upstream" if name in STRICT_UPSTREAM_FAULTS
                     else "documented")
    found: set[str] = set()
    run = RunState()  # one run: its breaker and the answer ids it saw
    for case in all_cases(target):
        ids = {f.check_id for f in judge(http, target, case, run)}
        # a page's query names no route; an alias family's route is its original's
        if canonical(case.path.split("?", 1)[0]) in fault.endpoints:
            found |= ids
        else:
            assert ids == set(), f"{name} leaked into {case.id}: {sorted(ids)}"
    assert set(fault.trips) <= found, f"{name} tripped {sorted(found)}"


def test_every_fault_is_a_constant_named_after_it() -> None:
    """Code asks ``FAULT.active(...)`` of a module constant, never looks a fault up by a string
    (a misspelt constant fails at import; a misspelt string was silently never on)."""
    for name, fault in CATALOGUE.items():
        assert getattr(faults, name.upper().replace("-", "_")) is fault, name
    assert not hasattr(faults, "has_fault")


def test_a_fault_is_active_when_enabled_and_only_on_its_endpoints() -> None:
    assert ACCEPT_ANY_KEY.active(("accept-any-key",), "/v1/models")
    assert not ACCEPT_ANY_KEY.active(("key-echoed",), "/v1/models")
    assert not ACCEPT_ANY_KEY.active(("accept-any-key",), "/_gateprobe/health")
    assert LEGACY_PROMPT_UNCHECKED.active(["legacy-prompt-unchecked"], "/v1/complete")
    assert not LEGACY_PROMPT_UNCHECKED.active(["legacy-prompt-unchecked"], "/v1/messages")


@pytest.mark.slow
@pytest.mark.parametrize("profile", ["ohmygpt", "anthropic", "openai"])
def test_clean_gateway_passes_every_check(make_gateway: MakeGateway, http: httpx.Client,
                                          profile: str) -> None:
    target = target_for(make_gateway(profile=profile, timing=INSTANT), profile)
    cases = all_cases(target)
    assert len(cases) >= (60 if target.serves_anthropic else 15)
    run = RunState()
    for case in cases:
        assert judge(http, target, case, run) == [], case.id


def test_load_faults_trip_load_verdicts() -> None:
    """Rate-limit and latency faults are proven by tests/load/test_load_cli.py, which runs
    every one of them; here: they name checks a load verdict can report."""
    from gateprobe.commands.load.ratelimits import CHECK_IDS
    from gateprobe.commands.load.slo import KNOWN

    verdict_ids = set(CHECK_IDS) | {f"slo.{name}" for name in KNOWN}
    assert LOAD_FAULTS
    for name in LOAD_FAULTS:
        assert set(CATALOGUE[name].trips) <= verdict_ids, name
    transport_faults = {n for n, f in CATALOGUE.items() if f.proven_by == "transport"}
    # management and billing faults: proven by tests/test_management_billing.py
    stateful = {n for n, f in CATALOGUE.items() if f.proven_by in ("management", "billing")}
    # soak faults: proven by tests/load/test_soak.py (a compressed soak fails its drift)
    soak = {n for n, f in CATALOGUE.items() if f.proven_by == "soak"}
    assert soak and all(set(CATALOGUE[n].trips) <= verdict_ids for n in soak)
    assert set(CATALOGUE) == set(CONFORMANCE_FAULTS) | set(LOAD_FAULTS) | transport_faults \
        | stateful | set(SEQUENCE_FAULTS) | soak


def test_every_rate_limit_verdict_is_proven_by_a_fault() -> None:
    """Each way a rate-limit run can fail has a fault of the gateway that makes it fail."""
    from gateprobe.commands.load.ratelimits import CHECK_IDS

    tripped = {t for name in LOAD_FAULTS for t in CATALOGUE[name].trips}
    assert set(CHECK_IDS) <= tripped, set(CHECK_IDS) - tripped
    # Latency objectives: every metric family, the error rate and the tokens/s floor. TTFB
    # has none of its own (a gateway that sends headers late delays TTFT as well), and
    # stream_findings_max is proven by the stream faults under load (test_transport_faults).
    assert {"slo.ttft_p95_ms", "slo.tpot_p95_ms", "slo.itl_p99_ms", "slo.e2e_p95_ms",
            "slo.error_rate_max", "slo.tokens_per_s_p50_min"} <= tripped


def test_every_check_is_proven_by_a_fault() -> None:
    proven = [n for n, f in CATALOGUE.items()
              if f.proven_by in ("conformance", "transport", "sequence")]
    tripped = {check_id for name in proven for check_id in CATALOGUE[name].trips}
    emitted = {i for c in checks.all_checks() for i in c.emits}
    # Proven without a fault of the gateway: nothing listening (transport.error,
    # transport.connect: below); the breaker (transport.not_sent) in tests/test_probe_bounds.py.
    # A connect timeout needs a listener that never accepts: below, not a fault.
    assert emitted - tripped == {"transport.error", "transport.connect", "transport.not_sent",
                                 "transport.connect_timeout"}


def test_transport_error_when_nothing_listens(http: httpx.Client) -> None:
    target = Target("http://127.0.0.1:9", "ohmygpt", "gp-vip-0001")
    ids = {f.check_id for f in judge(http, target, all_cases(target)[0])}
    assert ids == {"transport.connect"}


@pytest.mark.slow
def test_connect_timeout_when_the_listener_never_accepts(http: httpx.Client) -> None:
    """A listener whose accept queue is full: Linux drops further SYNs, so a connect neither
    succeeds nor is refused, as with a black-holed address, and only the connect timeout
    ends it."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(0)
        address = listener.getsockname()
        queued = []
        for _ in range(8):  # fill the queue; the connects that no longer complete time out
            sock = socket.socket()
            sock.setblocking(False)
            sock.connect_ex(address)
            queued.append(sock)
        time.sleep(0.1)
        try:
            target = Target(f"http://127.0.0.1:{address[1]}", "ohmygpt", "gp-vip-0001",
                            timeouts=Timeouts(connect_s=0.5, first_byte_s=5, idle_s=5,
                                              total_s=10))
            started = time.monotonic()
            ids = {f.check_id for f in judge(http, target, all_cases(target)[0])}
            took = time.monotonic() - started
        finally:
            for sock in queued:
                sock.close()
    assert ids == {"transport.connect_timeout"}
    assert took < 5


def test_a_crashing_check_is_a_finding_not_a_crash() -> None:
    state = checks.snapshot()
    try:
        @checks.check("test.boom", checks.Severity.LOW, "always raises")
        def boom(ctx: Context, ex: Exchange) -> checks.CheckResult:
            raise RuntimeError("gp-vip-0001 leaked into an exception")

        ex = Exchange("/v1/models", "GET", None, 200)
        [finding] = run_checks(Context("openai", "ohmygpt", Redactor(["gp-vip-0001"])), ex,
                               [checks.get("test.boom")])
        assert finding.check_id == "check.crashed"
        assert "gp-vip-0001" not in finding.observed
    finally:
        checks.restore(state)
    with pytest.raises(KeyError):
        checks.get("test.boom")


def test_registry_rules() -> None:
    with pytest.raises(ValueError, match="dotted"):
        checks.check("NoDot", checks.Severity.LOW, "x")
    with pytest.raises(KeyError, match="did you mean 'stream.order'"):
        checks.select(["stream.ordr"])
    selected = {c.id for c in checks.select(["stream.terminator", "error.envelope"])}
    assert selected == {"stream.grammar", "error.envelope"}
    state = checks.snapshot()
    try:
        with pytest.raises(ValueError, match="already registered"):
            checks.check("error.envelope", checks.Severity.LOW, "again")(lambda c, e: [])
    finally:
        checks.restore(state)
