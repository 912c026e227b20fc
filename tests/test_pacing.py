"""A gateway that rate-limits as documented is not a failing gateway: a conformance run with a
key allowed 12 requests per window on every route waits out each 429 as its ``Retry-After``
says and judges every case as if nothing had been limited."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from gateprobe.cli import main
from gateprobe.console import Console
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
