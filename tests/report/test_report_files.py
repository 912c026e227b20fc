"""The report folder's pieces on their own: SVG charts, summary, Markdown, JUnit merge."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from gateprobe.core.errors import ConfigError
from gateprobe.core.events import Phase
from gateprobe.core.findings import Finding, Severity
from gateprobe.engine.report import new_run_dir, svg
from gateprobe.engine.report.summary import build, load, markdown, merge_junit, write_json

SVG = "{http://www.w3.org/2000/svg}"


def test_cdf_is_well_formed_with_one_line_per_series() -> None:
    chart = svg.cdf({"a": [1.0, 2.0, 3.0], "b": [2.0, 4.0], "empty": []}, "TTFT", "ms")
    root = ET.fromstring(chart)
    lines = list(root.iter(f"{SVG}polyline"))
    assert len(lines) == 2
    for line in lines:
        for point in line.get("points", "").split():
            x, y = map(float, point.split(","))
            assert 0 <= x <= svg.WIDTH and 0 <= y <= svg.HEIGHT
    assert "no samples" in svg.cdf({}, "TTFT", "ms")


def test_bars_stack_and_histogram_counts_every_value() -> None:
    root = ET.fromstring(svg.bars(["0", "1"], {"ok": [3.0, 0.0], "429": [1.0, 2.0]}, "t",
                                  "s", "n"))
    assert len(list(root.iter(f"{SVG}rect"))) >= 3  # three non-zero segments (+ legend, frame)
    hist = ET.fromstring(svg.histogram([1.0, 1.5, 9.0, 10.0], "h", "ms", buckets=4))
    assert hist.get("aria-label") == "h"
    assert svg.nice_ticks(0, 97) == [0, 20, 40, 60, 80, 100]


def test_text_in_charts_is_escaped() -> None:
    chart = svg.cdf({"<script>": [1.0]}, "a & b", "ms")
    assert "<script>" not in chart and "&lt;script&gt;" in chart
    ET.fromstring(chart)


def summary_of(phases: list[Phase], code: int = 0) -> dict[str, object]:
    return build("run", {"name": "t", "base_url": "http://127.0.0.1:1", "profile": "ohmygpt"},
                 phases, "2026-01-01T00:00:00Z", "2026-01-01T00:01:00Z", 60.0, code)


def test_summary_round_trips_and_is_versioned(tmp_path: Path) -> None:
    finding = Finding("stream.order", "/v1/messages", Severity.HIGH, "x | y", "z",
                      case="/v1/messages stream")
    phases = [Phase("conformance", "failed", "1 finding", "", {}, [finding]),
              Phase("latency", "skipped", "not loopback")]
    path = write_json(tmp_path, summary_of(phases, 1))
    loaded = load(path)
    assert loaded["version"] == 1 and loaded["ok"] is False
    assert loaded["findings"][0]["phase"] == "conformance"
    assert Finding.from_json(loaded["findings"][0]) == finding
    md = markdown(loaded)
    assert md.startswith("## gateprobe run: FAIL") and "x \\| y" in md and "skipped" in md
    path.write_text(json.dumps({**loaded, "version": 99}))
    with pytest.raises(ConfigError, match="version 99"):
        load(path)
    path.write_text("[]")
    with pytest.raises(ConfigError, match="not a gateprobe summary"):
        load(path)


def test_junit_merges_pytest_output_with_phase_verdicts(tmp_path: Path) -> None:
    (tmp_path / "junit.xml").write_text(
        '<?xml version="1.0"?><testsuites><testsuite name="pytest" tests="1">'
        '<testcase classname="c" name="t"/></testsuite></testsuites>')
    verdict = {"rate_limits": {"tiers": [
        {"tier": "free", "problems": ["ratelimit.limit [free]: accepted 15"]},
        {"tier": "vip", "problems": []}]}}
    merge_junit(tmp_path, [Phase("rate-limits", "failed", "", "rate-limits", verdict),
                           Phase("latency", "skipped", "not loopback")])
    root = ET.parse(tmp_path / "junit.xml").getroot()
    names = [s.get("name") for s in root]
    assert names == ["pytest", "gateprobe.rate-limits", "gateprobe.latency"]
    rate = root[1]
    assert rate.get("tests") == "2" and rate.get("failures") == "1"
    assert root[2].find("testcase/skipped") is not None


def test_run_folders_and_latest(tmp_path: Path) -> None:
    first = new_run_dir("run", root=tmp_path)
    second = new_run_dir("run", root=tmp_path)
    assert first != second and first.name.endswith("-run")
    assert (tmp_path / "latest").resolve() == second
    with pytest.raises(ConfigError, match="report folder"):
        new_run_dir("run", explicit=Path("/proc/forbidden/x"))
