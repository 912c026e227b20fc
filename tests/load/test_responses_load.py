"""The latency scenario on ``/v1/responses``: opt-in (``--weight responses=1`` on a target that
declares ``responses``), its TTFT the first ``response.output_text.delta`` (the lifecycle
events before it carry no text), its stream judged by the Responses grammar."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pytest

from gateprobe.cli import main
from gateprobe.commands.load.runner import _weights
from gateprobe.core.console import Console
from gateprobe.core.targets import CORE_ENDPOINTS, Target
from gateprobe.protocols.streams import StreamObserver
from gateprobe.reference import Timing
from gateprobe.reference.responses import stream_plan
from gateway_fixtures import MakeGateway

ONLY = ["--weight", "chat=0", "--weight", "messages=0", "--weight", "complete=0",
        "--weight", "responses=1"]
SLO = "ttft_p95_ms: 1000\nerror_rate_max: 0\n"


@pytest.fixture(autouse=True)
def key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GP_TEST_KEY", "gp-vip-0001")


def responses_load(base_url: str, report: Path, *extra: str) -> tuple[int, str, str]:
    slo = report / "slo.yaml"
    slo.parent.mkdir(parents=True, exist_ok=True)
    slo.write_text(SLO)
    out, err = io.StringIO(), io.StringIO()
    code = main(["load", "latency", "--base-url", base_url, "--api-key-env", "GP_TEST_KEY",
                 "--duration", "2", "--users", "2", "--slo", str(slo), "--report-dir",
                 str(report), *ONLY, *extra], Console(out, err))
    return code, out.getvalue(), err.getvalue()


def verdict(report: Path) -> dict[str, Any]:
    result: dict[str, Any] = json.loads((report / "verdict.json").read_text())
    return result


def test_ttft_is_the_first_output_text_delta() -> None:
    """Lifecycle and item events come at 0 ms; the first delta at 40 ms: TTFT is 40 ms."""
    final = {"id": "resp_1", "object": "response", "status": "completed", "output": [
        {"id": "msg_1", "type": "message", "role": "assistant", "status": "completed",
         "content": [{"type": "output_text", "text": "Hi there", "annotations": []}]}],
        "usage": {"input_tokens": 1, "output_tokens": 2, "total_tokens": 3}}
    plan = stream_plan(final, [("Hi", " there")], [40_000_000, 50_000_000], 50_000_000)
    observer = StreamObserver("/v1/responses", {"model": "m", "input": "x"}, 0)
    for event in plan:  # everything but the deltas arrives at once, at 1 ns
        observer.feed(event.data, event.offset_ns if event.content else 1)
    metrics = observer.finish(60_000_000)
    assert observer.findings == []
    assert metrics.ttfb_ms == pytest.approx(1e-6)
    assert metrics.ttft_ms == pytest.approx(40.0) and metrics.output_tokens == 2


def test_responses_weight_is_opt_in() -> None:
    assert _weights({})["responses"] == 0.0
    undeclared = Target("http://127.0.0.1:9", "openai", "k", endpoints=CORE_ENDPOINTS)
    with pytest.raises(Exception, match="does not serve /v1/responses"):
        _weights({"responses": 1.0}, undeclared)


@pytest.mark.slow
def test_responses_latency_run(make_gateway: MakeGateway, tmp_path: Path) -> None:
    gateway = make_gateway(timing=Timing(ttft_ms=30, itl_ms=2))
    code, out, err = responses_load(gateway.base_url, tmp_path, "--endpoints",
                                    "models,responses")
    assert code == 0, out + err
    result = verdict(tmp_path)["latency"]
    assert set(result["by_endpoint"]) == {"/v1/responses"}
    assert result["errors"] == 0 and result["requests"] > 0
    assert result["ttft_ms"]["p50"] >= 30  # never before the first delta is due


@pytest.mark.slow
def test_a_broken_responses_stream_fails_the_run(make_gateway: MakeGateway,
                                                 tmp_path: Path) -> None:
    gateway = make_gateway(timing=Timing(ttft_ms=5, itl_ms=1),
                           faults=("responses-no-completed",))
    code, out, err = responses_load(gateway.base_url, tmp_path, "--endpoints",
                                    "models,responses")
    assert code == 1, out + err
