"""What the commands print is words and numbers, never a Python repr (a dict of counts, a
list, True/None, an object's address)."""

from __future__ import annotations

import io
import json
import re
from pathlib import Path

import pytest

from gateprobe.cli import main
from gateprobe.core.console import Console
from gateprobe.reference import Timing
from gateway_fixtures import MakeGateway

REPR = re.compile(r"\{'|\['|': |\bTrue\b|\bFalse\b|\bNone\b|object at 0x|Counter\(")


def assert_no_repr(text: str) -> None:
    found = [line for line in text.splitlines() if REPR.search(line)]
    assert not found, "\n".join(found)


def test_the_repr_pattern_catches_what_run_printed_before() -> None:
    with pytest.raises(AssertionError):
        assert_no_repr("stream findings: {'stream.terminator': 908}")
    assert_no_repr("stream findings: stream.terminator x908")


@pytest.mark.slow
def test_a_run_with_a_stream_fault_prints_no_repr(make_gateway: MakeGateway, tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """Conformance and a short latency run against a gateway that drops the stream
    terminator: findings in both phases, every line of the output free of reprs."""
    gateway = make_gateway(faults=("stream-drop-terminator",), rate_window_s=4,
                           timing=Timing(ttft_ms=5, itl_ms=1))
    monkeypatch.setenv("GP_KEY", "gp-vip-0001")
    out, err = io.StringIO(), io.StringIO()
    code = main(["run", "--base-url", gateway.base_url, "--api-key-env", "GP_KEY", "--suites",
                 "conformance,latency", "--select", "stream", "--report-dir",
                 str(tmp_path / "r")], Console(out, err))
    assert code == 1, out.getvalue() + err.getvalue()
    assert "stream.terminator" in out.getvalue()
    assert_no_repr(out.getvalue() + err.getvalue())
    summary = json.loads((tmp_path / "r" / "summary.json").read_text())
    table = out.getvalue()[out.getvalue().rindex("phase "):]
    for phase in summary["phases"]:  # the closing table cuts no reason short
        assert phase["reason"] in table, phase["reason"]
    assert len(summary["phases"][1]["reason"]) > 110
