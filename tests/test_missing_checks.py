"""The checks issue 24 found missing, each tripped by its fault of the reference gateway, and
exactly its checks: nothing else on the fault's endpoints, nothing at all elsewhere.

A stream without finish_reason, an upstream on the gateway's own host at another port, a
count_tokens answer with extra fields (strict-upstream: a finding; otherwise information),
embeddings that bill 0 tokens, a 429 typed as a server error, Anthropic tool ids without
``toolu_``, ``tool_choice: required`` treated as ``auto``, ``stop`` after a required call.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace

import httpx
import pytest

from gateprobe.core.checks import Context, Exchange, run_checks
from gateprobe.core.families import canonical
from gateprobe.core.targets import Target
from gateprobe.engine.cases import all_cases
from gateprobe.engine.embedded import reference_endpoints
from gateprobe.engine.probe import send
from gateprobe.engine.runstate import RunState
from gateprobe.protocols.conformance import checks_for, response_strict_shape
from gateprobe.reference import Timing
from gateprobe.reference.faults import CATALOGUE
from gateway_fixtures import MakeGateway

INSTANT = Timing(ttft_ms=0, itl_ms=0)
NEW_FAULTS = {
    "stream-no-finish-reason": "documented",
    "upstream-same-host-leak": "documented",
    "count-tokens-extra-fields": "strict-upstream",
    "embeddings-zero-usage": "documented",
    "server-error-type-429": "documented",
    "tool-id-unprefixed": "documented",
    "tool-required-as-auto": "documented",
    "tool-calls-stop": "documented",
}


@pytest.fixture(scope="module")
def http() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=30) as client:
        yield client


def _run(http: httpx.Client, target: Target, trips: tuple[str, ...] = (),
         ) -> tuple[dict[str, set[str]], list[str]]:
    """Every case judged as the suite judges it: check ids per endpoint, information. A
    golden case may also say ``golden.match`` (it pins the value the fault bends), nothing
    else beyond ``trips``."""
    run, found, learnt = RunState(), dict[str, set[str]](), list[str]()
    for case in all_cases(target):
        exchange = send(http, target, case, run)
        ctx = Context.of(target, case.family, case.expect, run.seen_ids, run.input_tokens,
                         learnt)
        ids = {f.check_id for f in run_checks(ctx, exchange, checks_for(ctx, exchange))}
        if case.category == "golden":  # a golden pins the same value: its own witness
            assert ids - {"golden.match"} <= set(trips), (case.id, ids)
            continue
        # an alias family's route (Azure's) is its original's: the same handler, the same faults
        found.setdefault(canonical(case.path.split("?")[0]), set()).update(ids)
    return found, learnt


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(NEW_FAULTS))
def test_each_new_fault_trips_exactly_its_checks(make_gateway: MakeGateway,
                                                 http: httpx.Client, name: str) -> None:
    fault = CATALOGUE[name]
    gateway = make_gateway(faults=(name,), timing=INSTANT)
    target = Target(gateway.base_url, "ohmygpt", "gp-vip-0001",
                    no_permission_key="gp-nomodel-0001", auth_styles=frozenset({"bearer"}),
                    endpoints=reference_endpoints("ohmygpt") - {"realtime"},
                    strictness=NEW_FAULTS[name])
    found, _ = _run(http, target, fault.trips)
    on_fault = set().union(*(ids for path, ids in found.items() if path in fault.endpoints))
    elsewhere = {path: ids for path, ids in found.items()
                 if path not in fault.endpoints and ids}
    assert on_fault == set(fault.trips), on_fault
    assert elsewhere == {}


@pytest.mark.slow
def test_extra_count_tokens_fields_are_information_unless_strict(make_gateway: MakeGateway,
                                                                 http: httpx.Client) -> None:
    gateway = make_gateway(faults=("count-tokens-extra-fields",), timing=INSTANT)
    target = Target(gateway.base_url, "ohmygpt", "gp-vip-0001",
                    no_permission_key="gp-nomodel-0001", endpoints=frozenset({"count_tokens"}))
    found, learnt = _run(http, target)
    assert found == {"/v1/messages/count_tokens": set()}
    assert learnt and "cache_read_input_tokens" in learnt[0]
    strict = replace(target, strictness="strict-upstream")
    found, _ = _run(http, strict, ("response.strict_shape",))
    assert found == {"/v1/messages/count_tokens": {"response.strict_shape"}}


def _internal_url_ids(target: str, header: str) -> set[str]:
    ctx = Context.of(Target(target, "openai", "k"), "openai")
    ex = Exchange("/v1/models", "GET", None, 200, {"x-upstream": header})
    return {f.check_id for f in run_checks(ctx, ex)
            if f.check_id == "security.internal_url"}


def test_internal_urls_are_judged_by_host_and_port() -> None:
    assert _internal_url_ids("http://127.0.0.1:8080", "http://127.0.0.1:8081/v1") == {
        "security.internal_url"}
    assert _internal_url_ids("http://127.0.0.1:8080", "http://127.0.0.1:8080/v1") == set()
    assert _internal_url_ids("http://10.0.0.5", "http://10.0.0.5/v1") == set()  # port 80
    assert _internal_url_ids("http://10.0.0.5", "10.0.0.5:9000") == {"security.internal_url"}
    assert _internal_url_ids("https://gw.example.com", "https://gw.example.com:8443/") == set()


def test_a_strict_shape_names_the_extra_field() -> None:
    ctx = Context.of(Target("http://127.0.0.1:9", "anthropic", "k",
                            strictness="strict-upstream"), "anthropic")
    ex = Exchange("/v1/messages/count_tokens", "POST", {}, 200,
                  {"content-type": "application/json"}, b'{"input_tokens": 3, "model": "x"}')
    [finding] = response_strict_shape(ctx, ex)  # type: ignore[misc]
    assert finding.pointer == "/model" and "model" in finding.observed
