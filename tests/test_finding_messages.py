"""Findings say which field and which type, and an SDK failure is one line naming the SDK call
and, for a stream, the event it could not parse."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from gateprobe.core.checks import Context, Exchange
from gateprobe.protocols.conformance import error_envelope
from gateway_fixtures import MakeGateway

JSON = {"content-type": "application/json"}


def _envelope(family: str, body: object) -> tuple[str, str]:
    ex = Exchange("/v1/messages" if family == "anthropic" else "/v1/chat/completions", "POST",
                  {}, 400, JSON, json.dumps(body).encode())
    [finding] = error_envelope(Context(family, "openai"), ex)  # type: ignore[arg-type, misc]
    return finding.observed, finding.pointer


def test_an_envelope_finding_names_the_field_and_the_types() -> None:
    assert _envelope("openai", {"error": {"message": 5, "type": "x", "param": None,
                                          "code": None}}) == (
        "application/json body: error.message is an integer, not a string", "/error/message")
    assert _envelope("openai", {"detail": "bad request"}) == (
        "application/json body: no error (an object)", "/error")
    assert _envelope("anthropic", {"type": "err", "error": {"type": "x", "message": "m"}}) == (
        "application/json body: type is 'err', not 'error'", "/type")
    assert _envelope("anthropic", {"type": "error", "error": {"message": "m"}}) == (
        "application/json body: no error.type (a string)", "/error/type")


@pytest.mark.slow
def test_an_sdk_failure_is_one_line_naming_the_call_and_the_event(make_gateway: MakeGateway,
                                                                  tmp_path: Path) -> None:
    gateway = make_gateway(faults=("stream-bad-json",))
    proc = subprocess.run(
        [sys.executable, "-m", "gateprobe", "conformance", "--base-url", gateway.base_url,
         "--profile", "ohmygpt", "--api-key-env", "GP_MSG_KEY", "--select", "sdk",
         "--endpoints", "chat", "--report-dir", str(tmp_path)],
        env={**os.environ, "GP_MSG_KEY": "gp-vip-0001"}, capture_output=True, text=True,
        timeout=300, cwd=Path(__file__).parents[1])
    assert proc.returncode == 1, proc.stdout[-2000:] + proc.stderr[-1000:]
    findings = json.loads((tmp_path / "conformance.json").read_text())["findings"]
    stream = [f for f in findings if f["case"] == "openai SDK: chat stream"]
    assert stream, findings
    observed = stream[0]["observed"]
    assert "\n" not in observed
    assert observed.startswith("openai SDK chat.completions.create(stream=True) raised "), \
        observed
    assert "; at event #" in observed and "truncated" in observed, observed
