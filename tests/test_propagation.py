"""The propagation category's proof: a minimal correct relay passes every case; each of its
faults fails exactly its check; both protocols."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from tests.propagation_relay import FAULTS, running_relay

from gateprobe.findings import Finding
from gateprobe.propagation import CASES, Inconclusive, Probe, UpstreamControl, run_case
from gateprobe.reference.upstream import running_upstream
from gateprobe.targets import Propagation, Target, Upstream

CLIENT_KEY = "sk-client-key-0001"


@pytest.fixture(scope="module")
def upstream() -> Iterator[str]:
    with running_upstream() as running:
        yield running.base_url


def relay_target(relay: str, upstream: str, protocol: str, **propagation: object) -> Target:
    host, _, port = upstream.removeprefix("http://").rpartition(":")
    return Target(relay, "openai" if protocol == "openai" else "anthropic", CLIENT_KEY,
                  upstream=Upstream(host, int(port), protocol),
                  propagation=Propagation(**{"cancel_within_s": 3.0,  # type: ignore[arg-type]
                                             **propagation}))


def outcomes(target: Target, upstream: str) -> dict[str, list[Finding] | str]:
    """Every case's findings, or 'inconclusive: why'."""
    out: dict[str, list[Finding] | str] = {}
    with httpx.Client() as http:
        probe = Probe(http, target, UpstreamControl(http, upstream))
        for check_id, check in CASES:
            try:
                out[check_id] = run_case(probe, check_id, check)
            except Inconclusive as exc:
                out[check_id] = f"inconclusive: {exc}"
    return out


def tripped(results: dict[str, list[Finding] | str]) -> dict[str, list[str]]:
    return {k: [f"{f.expected} / {f.observed}" for f in v] if isinstance(v, list) else [v]
            for k, v in results.items() if v}


@pytest.mark.parametrize("protocol", ["openai", "anthropic"])
def test_correct_relay_passes_every_case(protocol: str, upstream: str) -> None:
    with running_relay(upstream) as relay:
        results = outcomes(relay_target(relay, upstream, protocol), upstream)
    assert tripped(results) == {}
    assert set(results) == set(FAULTS)


@pytest.mark.parametrize("fault", list(FAULTS), ids=list(FAULTS))
def test_each_relay_fault_trips_exactly_its_check(fault: str, upstream: str) -> None:
    with running_relay(upstream, fault) as relay:
        results = outcomes(relay_target(relay, upstream, "openai"), upstream)
    assert list(tripped(results)) == [fault], tripped(results)
    assert all(f.check_id == fault and f.repro.startswith("curl ")
               for f in results[fault])  # type: ignore[union-attr]
