"""The seeds' gateway answers errors on its model routes in its own envelope,
``{"statusCode", "message", "data"}``: under its profile that is conformant; under the
``openai`` profile it is not the documented shape."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from gateprobe.cli import main
from gateprobe.core.console import Console
from gateway_fixtures import FAST, MakeGateway

PLAIN = "endpoint or errors or auth or legacy_prompt or stream"


def findings_of(gateway_url: str, profile: str, tmp_path: Path) -> tuple[int, set[str]]:
    code = main(["conformance", "--base-url", gateway_url, "--profile", profile,
                 "--api-key-env", "GP_ENVELOPE_KEY", "--select", PLAIN,
                 "--report-dir", str(tmp_path)], Console(io.StringIO(), io.StringIO()))
    report = json.loads((tmp_path / "conformance.json").read_text())
    return code, {f["check_id"] for f in report["findings"]}


@pytest.mark.slow
def test_the_gateways_own_envelope_is_conformant_under_its_profile(
        make_gateway: MakeGateway, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("GP_ENVELOPE_KEY", "gp-vip-0001")
    gateway = make_gateway(timing=FAST, error_envelope="gateway")
    assert findings_of(gateway.base_url, "ohmygpt", tmp_path / "ohmygpt") == (0, set())
    openai = make_gateway(timing=FAST, error_envelope="gateway", profile="openai")
    code, found = findings_of(openai.base_url, "openai", tmp_path / "openai")
    capsys.readouterr()
    assert code == 1 and "error.envelope" in found


@pytest.mark.slow
def test_a_target_that_declares_the_gateways_envelope_is_judged_by_it(
        make_gateway: MakeGateway, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    """The envelope is a capability of the target, not of its profile: an ``openai``-profile
    entry declaring ``error_envelopes: [gateway]`` passes on those answers, and one declaring
    only the family's envelope is told it got the gateway's instead."""
    monkeypatch.setenv("GP_ENVELOPE_KEY", "gp-vip-0001")
    openai = make_gateway(timing=FAST, error_envelope="gateway", profile="openai")
    targets = tmp_path / "targets.yaml"
    targets.write_text(
        "targets:\n"
        f"  declared:\n    base_url: {openai.base_url}\n    profile: openai\n"
        "    api_key_env: GP_ENVELOPE_KEY\n    error_envelopes: [gateway]\n"
        f"  family:\n    base_url: {openai.base_url}\n    profile: openai\n"
        "    api_key_env: GP_ENVELOPE_KEY\n    error_envelopes: [family]\n")
    results = {}
    for name in ("declared", "family"):
        out = tmp_path / name
        code = main(["conformance", "--target", name, "--targets", str(targets),
                     "--select", PLAIN, "--report-dir", str(out)],
                    Console(io.StringIO(), io.StringIO()))
        report = json.loads((out / "conformance.json").read_text())
        results[name] = code, {f["check_id"] for f in report["findings"]}
    capsys.readouterr()
    assert results["declared"] == (0, set())
    assert results["family"][0] == 1 and "error.envelope" in results["family"][1]
