"""The latency scenario on ``/v1/audio/speech``: time to first audio byte under load, the
answer's label and magic bytes checked, and only on a target that declares speech."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pytest

from gateprobe.cli import main
from gateprobe.core.console import Console
from gateprobe.reference import Timing
from gateway_fixtures import MakeGateway

SPEECH_ONLY = ["--weight", "chat=0", "--weight", "messages=0", "--weight", "complete=0",
               "--weight", "speech=1"]
SLO = "ttft_p95_ms: 1000\nerror_rate_max: 0\n"


@pytest.fixture(autouse=True)
def key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GP_TEST_KEY", "gp-vip-0001")


def speech_load(base_url: str, report: Path, *extra: str) -> tuple[int, str, str]:
    slo = report / "slo.yaml"
    slo.parent.mkdir(parents=True, exist_ok=True)
    slo.write_text(SLO)
    out, err = io.StringIO(), io.StringIO()
    code = main(["load", "latency", "--base-url", base_url, "--api-key-env", "GP_TEST_KEY",
                 "--duration", "4", "--users", "2", "--slo", str(slo), "--report-dir",
                 str(report), *SPEECH_ONLY, *extra], Console(out, err))
    return code, out.getvalue(), err.getvalue()


def verdict(report: Path) -> dict[str, Any]:
    result: dict[str, Any] = json.loads((report / "verdict.json").read_text())
    return result


@pytest.mark.slow
def test_speech_latency_is_its_time_to_first_audio_byte(make_gateway: MakeGateway,
                                                        tmp_path: Path) -> None:
    gateway = make_gateway(timing=Timing(ttft_ms=30, itl_ms=2))
    code, out, err = speech_load(gateway.base_url, tmp_path, "--endpoints", "models,speech")
    assert code == 0, out + err
    result = verdict(tmp_path)["latency"]
    assert set(result["by_endpoint"]) == {"/v1/audio/speech"}
    assert result["errors"] == 0 and result["requests"] > 0
    assert result["ttft_ms"]["p50"] >= 30  # never before the gateway's first chunk is due
    assert "TTFT" in (tmp_path / "locust_stats.csv").read_text()


@pytest.mark.slow
def test_speech_with_the_wrong_bytes_fails_the_run(make_gateway: MakeGateway,
                                                   tmp_path: Path) -> None:
    gateway = make_gateway(timing=Timing(ttft_ms=5, itl_ms=1), faults=("speech-wav-always",))
    code, out, err = speech_load(gateway.base_url, tmp_path, "--endpoints", "models,speech")
    assert code == 1, out + err
    samples = [json.loads(line) for line in
               (tmp_path / "samples.jsonl").read_text().splitlines()]
    assert samples and {s["error_kind"] for s in samples} == {"speech.audio"}


def test_speech_is_refused_on_a_target_that_does_not_declare_it(tmp_path: Path) -> None:
    code, _, err = speech_load("http://127.0.0.1:9", tmp_path)
    assert code == 2
    assert "the target does not serve /v1/audio/speech" in err
