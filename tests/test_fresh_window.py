"""``gateprobe run`` gives its rate-limit phase a fresh window: a tier key the conformance phase
also sent with has spent part of its budget, and a correct limiter then "accepts only 38 of 60".
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from gateprobe.cli import main
from gateprobe.commands import pipeline
from gateprobe.core.console import Console
from gateway_fixtures import MakeGateway

WINDOW_S = 8
KEYS = {"GP_FW_KEY": "gp-vip-0001", "GP_FW_FREE": "gp-free-0002",
        "GP_FW_PREMIUM": "gp-premium-0002"}


@pytest.fixture(autouse=True)
def keys(monkeypatch: pytest.MonkeyPatch) -> None:
    for variable, key in KEYS.items():
        monkeypatch.setenv(variable, key)


def run(base_url: str, tmp_path: Path) -> tuple[int, str, dict[str, int]]:
    """``run`` of the legacy_prompt category (claude-2-web requests with the API key) and the
    rate-limit scenario, whose vip tier key is that same API key."""
    targets = tmp_path / "targets.yaml"
    targets.write_text(
        "targets:\n  t:\n"
        f"    base_url: {base_url}\n    profile: ohmygpt\n    api_key_env: GP_FW_KEY\n"
        "    tier_keys: {free: GP_FW_FREE, vip: GP_FW_KEY, premium: GP_FW_PREMIUM}\n"
        f"    limits: {{window_s: {WINDOW_S}, rpm: {{free: 12, vip: 60, premium: 90}}}}\n")
    out, err = io.StringIO(), io.StringIO()
    code = main(["run", "--targets", str(targets), "--target", "t", "--suites",
                 "conformance,rate-limits", "--select", "legacy_prompt", "--report-dir",
                 str(tmp_path / "run")], Console(out, err))
    verdict = json.loads((tmp_path / "run" / "rate-limits" / "verdict.json").read_text())
    accepted = {t["tier"]: t["accepted"] for t in verdict["rate_limits"]["tiers"]}
    return code, out.getvalue() + err.getvalue(), accepted


@pytest.mark.slow
def test_the_rate_limit_phase_waits_for_a_fresh_window(make_gateway: MakeGateway,
                                                       tmp_path: Path) -> None:
    gateway = make_gateway(rate_window_s=WINDOW_S)
    code, out, accepted = run(gateway.base_url, tmp_path)
    assert code == 0, out
    assert f"waiting {WINDOW_S + 1} s for a fresh window" in out and "tier vip" in out
    assert accepted["vip"] == 60


@pytest.mark.slow
def test_without_the_wait_the_conformance_phase_spends_the_window(
        make_gateway: MakeGateway, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The control: skip the wait, and the vip tier's budget is no longer full (a few
    requests short here, within the SLO's tolerance; a longer conformance phase spends more)."""
    monkeypatch.setattr(pipeline, "sleep", lambda seconds: None)
    gateway = make_gateway(rate_window_s=WINDOW_S)
    _, out, accepted = run(gateway.base_url, tmp_path)
    assert accepted["vip"] < 60, out


def test_only_the_tiers_whose_key_earlier_phases_used_are_waited_for() -> None:
    from gateprobe.core.targets import Target

    target = Target("http://127.0.0.1:1", "ohmygpt", "k-1", "V", {}, "k-2",
                    tier_keys={"free": "k-3", "vip": "k-1", "premium": "k-2"})
    assert pipeline.touched_tiers(target) == ["vip", "premium"]
