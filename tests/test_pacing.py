"""A gateway that rate-limits as documented is not a failing gateway: a conformance run with a
key allowed 12 requests per window on every route waits out each 429 as its ``Retry-After``
says and judges every case as if nothing had been limited."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from gateprobe.cli import main
from gateprobe.core.console import Console
from gateprobe.reference.config import Tier
from gateway_fixtures import FAST, MakeGateway


@pytest.mark.slow
def test_a_free_tier_key_over_a_hundred_cases_gets_no_finding_from_a_429(
        make_gateway: MakeGateway, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("GP_FREE_KEY", "gp-free-0001")
    # The free tier's 12 per (scaled) window, on every model: real gateways limit every route.
    gateway = make_gateway(timing=FAST, rate_window_s=2.0,
                           tiers={"free": Tier("free", {"*": 12})})
    code = main(["conformance", "--base-url", gateway.base_url, "--api-key-env", "GP_FREE_KEY",
                 "--select", "not fuzz", "--report-dir", str(tmp_path)],
                Console(io.StringIO(), io.StringIO()))
    printed = capsys.readouterr().out
    report = json.loads((tmp_path / "conformance.json").read_text())
    assert code == 0, printed[-3000:]
    assert report["findings"] == []
    assert sum(report["cases_per_endpoint"].values()) >= 100
    assert gateway.state.rate_limited > 0  # the limit was met, and waited out


def latency(*argv: str) -> tuple[int, str]:
    out, err = io.StringIO(), io.StringIO()
    code = main(["load", "latency", "--duration", "4", "--users", "4", "--max-tokens", "8",
                 *argv], Console(out, err))
    return code, out.getvalue() + err.getvalue()


@pytest.mark.slow
def test_a_latency_run_the_target_limits_is_no_slo_miss(make_gateway: MakeGateway,
                                                         tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """Undeclared, a limit that refuses most requests ends the run without a verdict (exit 4),
    not as an error-rate miss; declared, the run paces under it and passes."""
    monkeypatch.setenv("GP_FREE_KEY", "gp-free-0001")
    gateway = make_gateway(timing=FAST, rate_window_s=2.0,
                           tiers={"free": Tier("free", {"*": 12})})
    code, output = latency("--base-url", gateway.base_url, "--api-key-env", "GP_FREE_KEY",
                           "--report-dir", str(tmp_path / "undeclared"))
    assert code == 4, output[-2000:]
    assert "limited by the target's rate limit" in output
    verdict = json.loads((tmp_path / "undeclared" / "verdict.json").read_text())
    assert verdict["limited_by_target"]["refused"] > verdict["requests"] / 2
    assert verdict["failed_checks"] == []
    targets = tmp_path / "targets.yaml"
    targets.write_text(f"targets:\n  gw:\n    base_url: {gateway.base_url}\n"
                       "    profile: ohmygpt\n    api_key_env: GP_FREE_KEY\n"
                       "    api_key_tier: free\n    limits: {window_s: 2, rpm: {free: 12}}\n")
    gateway.state.reset()
    code, output = latency("--target", "gw", "--targets", str(targets), "--report-dir",
                           str(tmp_path / "declared"))
    assert code == 0, output[-2000:]
    plan = json.loads((tmp_path / "declared" / "plan.json").read_text())
    assert plan["paced"] and plan["max_rps"] == pytest.approx(0.8 * 12 / 2)


@pytest.mark.slow
def test_a_declared_limit_paces_conformance_under_it(make_gateway: MakeGateway, tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    """With the key's limit declared, the run spreads its requests and never meets the
    limiter: not one 429, where the undeclared run above waits out several."""
    monkeypatch.setenv("GP_FREE_KEY", "gp-free-0001")
    gateway = make_gateway(timing=FAST, rate_window_s=2.0,
                           tiers={"free": Tier("free", {"*": 12})})
    targets = tmp_path / "targets.yaml"
    targets.write_text(f"targets:\n  gw:\n    base_url: {gateway.base_url}\n"
                       "    profile: ohmygpt\n    api_key_env: GP_FREE_KEY\n"
                       "    api_key_tier: free\n    limits: {window_s: 2, rpm: {free: 12}}\n")
    code = main(["conformance", "--target", "gw", "--targets", str(targets), "--select",
                 "endpoint or errors or auth", "--report-dir", str(tmp_path / "r")],
                Console(io.StringIO(), io.StringIO()))
    printed = capsys.readouterr().out
    report = json.loads((tmp_path / "r" / "conformance.json").read_text())
    assert code == 0 and report["findings"] == [], printed[-2000:]
    assert sum(report["cases_per_endpoint"].values()) > 12  # more than one window's worth
    assert gateway.state.rate_limited == 0
