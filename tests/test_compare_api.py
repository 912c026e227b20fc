"""``gateprobe.commands.compare.run_compare`` called from Python: a typed result, no flags
involved."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from gateprobe.commands.compare import CompareOptions, CompareResult, MirrorResult, run_compare
from gateprobe.core.console import Console
from gateprobe.core.events import FAILED, PASSED
from gateprobe.core.findings import Finding
from gateprobe.core.targets import Target
from gateprobe.reference import Timing
from gateway_fixtures import MakeGateway


@pytest.mark.slow
def test_run_compare_returns_a_typed_result(make_gateway: MakeGateway, tmp_path: Path) -> None:
    clean = make_gateway(timing=Timing(ttft_ms=5, itl_ms=1))
    faulty = make_gateway(timing=Timing(ttft_ms=5, itl_ms=1),
                          faults=("stream-drop-terminator",))
    base = Target(clean.base_url, "ohmygpt", "gp-vip-0001")
    out = io.StringIO()
    result = run_compare(
        base,
        CompareOptions(samples=2, long_request_s=0.3, report_dir=tmp_path,
                       mirrors={"clean": clean.base_url, "faulty": faulty.base_url}),
        Console(out, io.StringIO()))
    assert isinstance(result, CompareResult)
    assert result.exit_code == 1 and result.run_dir == tmp_path.resolve()
    assert all(isinstance(m, MirrorResult) for m in result.mirrors)
    good, bad = result.mirrors
    assert (good.name, good.ok, good.findings) == ("clean", True, [])
    assert bad.name == "faulty" and not bad.ok and bad.findings
    assert all(isinstance(f, Finding) for f in bad.findings)
    assert {f.check_id for f in bad.findings} == {"stream.terminator"}
    assert all(f.case.startswith("stream:") for f in bad.findings)
    assert [(p.name, p.status) for p in result.phases] == [("mirror clean", PASSED),
                                                           ("mirror faulty", FAILED)]
    assert all(isinstance(f, Finding) and f.case for f in result.phases[1].findings)
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["exit_code"] == 1 and len(summary["compare"]["mirrors"]) == 2
    assert "gp-vip-0001" not in (tmp_path / "summary.json").read_text()
    assert "gateprobe compare: 2 mirrors" in out.getvalue()
    assert "FAIL: report in" in out.getvalue()


@pytest.mark.slow
def test_a_refused_long_request_is_no_cut(make_gateway: MakeGateway, tmp_path: Path) -> None:
    """A 4xx (a key without quota, a model's token limit) is the probe not being served, not
    a CDN cutting a long answer: no ``mirror.long_request_cut``."""
    gateway = make_gateway(timing=Timing(ttft_ms=5, itl_ms=1))
    base = Target(gateway.base_url, "ohmygpt", "gp-not-a-key-0000")
    result = run_compare(
        base,
        CompareOptions(samples=1, long_request_s=0.3, report_dir=tmp_path,
                       mirrors={"a": gateway.base_url, "b": gateway.base_url}),
        Console(io.StringIO(), io.StringIO()))
    for mirror in result.mirrors:
        assert not mirror.long_request["cut"]
        assert mirror.long_request["verdict"].startswith("inconclusive: refused with status 401")
    assert "mirror.long_request_cut" not in {f.check_id for p in result.phases
                                              for f in p.findings}
