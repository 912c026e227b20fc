"""The propagation category's proof: a minimal correct relay passes every case; each of its
faults fails exactly its check; both protocols."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from tests.propagation_relay import FAULTS, running_relay

from gateprobe.core.findings import Finding
from gateprobe.core.targets import Propagation, Target, Upstream
from gateprobe.engine.propagation import CASES, Inconclusive, Probe, UpstreamControl, run_case
from gateprobe.reference.upstream import running_upstream

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


@pytest.mark.slow
@pytest.mark.parametrize("protocol", ["openai", "anthropic"])
def test_correct_relay_passes_every_case(protocol: str, upstream: str) -> None:
    with running_relay(upstream) as relay:
        results = outcomes(relay_target(relay, upstream, protocol), upstream)
    assert tripped(results) == {}
    assert set(results) == set(FAULTS)


@pytest.mark.slow
@pytest.mark.parametrize("fault", list(FAULTS), ids=list(FAULTS))
def test_each_relay_fault_trips_exactly_its_check(fault: str, upstream: str) -> None:
    with running_relay(upstream, fault) as relay:
        results = outcomes(relay_target(relay, upstream, "openai"), upstream)
    assert list(tripped(results)) == [fault], tripped(results)
    assert all(f.check_id == fault and f.repro.startswith("curl ")
               for f in results[fault])  # type: ignore[union-attr]


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.mark.slow
@pytest.mark.parametrize("fault", ["", "propagation.header_leak"], ids=["clean", "faulty"])
def test_gateprobe_conformance_starts_the_declared_upstream(fault: str,
                                                            tmp_path: Path) -> None:
    """As a user runs it: the targets file declares the upstream; the run starts it there,
    and the category passes through the correct relay and fails through a faulty one."""
    port = _free_port()
    with running_relay(f"http://127.0.0.1:{port}", fault) as relay:
        targets = tmp_path / "targets.yaml"
        targets.write_text(
            f"targets:\n  relay:\n    base_url: {relay}\n    profile: openai\n"
            f"    api_key_env: RELAY_KEY\n    upstream: {{listen: 127.0.0.1:{port}, "
            "protocol: openai}\n    headers: {x-route: upstream, x-relay-token: {env: "
            "RELAY_TOKEN}}\n    propagation: {cancel_within_s: 3}\n")
        env = {**os.environ, "RELAY_KEY": CLIENT_KEY, "RELAY_TOKEN": "tok-secret-0001"}
        result = subprocess.run(
            [sys.executable, "-m", "gateprobe", "conformance", "--target", "relay",
             "--targets", str(targets), "--select", "propagation", "--report-dir",
             str(tmp_path / "r")], capture_output=True, text=True, env=env,
            timeout=300, cwd=tmp_path)
    assert (tmp_path / "r" / "conformance.json").exists(), result.stdout[-3000:] + result.stderr
    found = json.loads((tmp_path / "r" / "conformance.json").read_text())["findings"]
    if not fault:
        assert result.returncode == 0, result.stdout[-3000:] + result.stderr
        assert "9 passed" in result.stdout and found == []
    else:
        assert result.returncode == 1, result.stdout[-3000:] + result.stderr
        assert {f["check_id"] for f in found} == {fault}
        assert "tok-secret-0001" not in (tmp_path / "r" / "conformance.json").read_text()


@pytest.mark.slow
def test_compare_gives_each_propagation_check_a_row_per_mirror(upstream: str) -> None:
    from gateprobe.commands.compare import MirrorResult, _propagation

    with running_relay(upstream, "propagation.usage") as relay, httpx.Client() as http:
        result = MirrorResult("faulty", relay)
        _propagation(http, relay_target(relay, upstream, "openai"), upstream, result)
    verdicts = {p.probe: p.verdict for p in result.probes}
    assert verdicts == {f"propagation: {c}": "FAIL propagation.usage"
                        if c == "propagation.usage" else "pass" for c in FAULTS}
    assert {f.check_id for f in result.findings} == {"propagation.usage"}


@pytest.mark.parametrize(("fault", "declared"), [
    ("propagation.usage", {"documented": frozenset({"propagation.usage"})}),
    ("propagation.key_isolation", {"documented": frozenset({"forwards_client_key"})}),
    ("propagation.params", {"forwarded_params": ("model", "messages", "max_tokens", "stop")}),
], ids=["documented check", "forwards_client_key", "forwarded_params"])
def test_a_declared_deviation_is_information_not_a_finding(fault: str,
                                                           declared: dict[str, object],
                                                           upstream: str) -> None:
    with running_relay(upstream, fault) as relay, httpx.Client() as http:
        probe = Probe(http, relay_target(relay, upstream, "openai", **declared),
                      UpstreamControl(http, upstream))
        check = dict(CASES)[fault]
        assert run_case(probe, fault, check) == []
    if "documented" in declared and fault == "propagation.usage":
        assert any("propagation.usage (documented deviation)" in line
                   for line in probe.information)
