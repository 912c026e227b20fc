"""What report.html and summary.md show, checked on their text (the layout is checked in a real
browser by ``test_browser.py``)."""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest

from gateprobe.core.events import Phase
from gateprobe.core.findings import Finding, Severity
from gateprobe.engine.report import html, svg
from gateprobe.engine.report.summary import build, cell, grouped_findings, markdown

SVG = "{http://www.w3.org/2000/svg}"
DIFF = "--- golden\n+++ received\n@@ -1,3 +1,2 @@\n id: <id>\n-model: <model>\n object: x"


@pytest.mark.parametrize("high", [0.3, 1, 8, 9, 97, 101, 499, 501, 1042, 7.5e6])
def test_the_last_tick_is_never_below_the_highest_value(high: float) -> None:
    ticks = svg.nice_ticks(0, high)
    assert ticks[-1] >= high and ticks[0] <= 0
    assert len(ticks) <= 7


def plot_marks(chart: str) -> tuple[ET.Element, list[ET.Element]]:
    root = ET.fromstring(chart)
    frame = next(r for r in root.iter(f"{SVG}rect") if r.get("class") == "frame")
    plot = next(g for g in root.iter(f"{SVG}g") if g.get("class") == "plot")
    return frame, list(plot)


def test_every_bar_stays_inside_its_frame() -> None:
    """The tallest bar used to stick out when its count lay just above a round tick (101 on
    an axis that ended at 100)."""
    chart = svg.bars([str(i) for i in range(300)], {"a": [101.0] * 150 + [3.0] * 150,
                                                     "b": [0.0] * 299 + [1.0]}, "t", "s", "n")
    frame, marks = plot_marks(chart)
    fx, fy = float(frame.get("x", 0)), float(frame.get("y", 0))
    fw, fh = float(frame.get("width", 0)), float(frame.get("height", 0))
    assert len(marks) == 301
    for rect in marks:
        x, y = float(rect.get("x", 0)), float(rect.get("y", 0))
        w, h = float(rect.get("width", 0)), float(rect.get("height", 0))
        assert fx - 0.01 <= x and x + w <= fx + fw + 0.01
        assert fy - 0.01 <= y and y + h <= fy + fh + 0.01


def test_charts_scale_and_histograms_label_few_buckets() -> None:
    chart = svg.histogram([float(i) for i in range(1000)], "h", "ms", buckets=40)
    root = ET.fromstring(chart)
    assert root.get("viewBox") == f"0 0 {svg.WIDTH} {svg.HEIGHT}"
    ticks = [t for t in root.iter(f"{SVG}text") if t.get("class") == "tick"]
    x_ticks = {t.get("y") for t in ticks if t.get("text-anchor") == "middle"}
    assert len([t for t in ticks if t.get("y") in x_ticks]) <= 8
    assert not [r for r in root.iter(f"{SVG}g") if r.get("class") == "legend"]  # one series


@pytest.mark.parametrize(("value", "text"), [
    (True, "yes"), (False, "no"), (None, "-"), (3.0, "3"), (0.125, "0.125"),
    ({"stream.terminator": 908}, "stream.terminator: 908"), (["a", "b"], "a; b"),
    (float("nan"), "-")])
def test_cells_are_never_python_reprs(value: object, text: str) -> None:
    assert cell(value) == text


def finding(check: str, endpoint: str, case: str, observed: str = "no [DONE]",
            **extra: Any) -> dict[str, Any]:
    return {"phase": "conformance", "check_id": check, "endpoint": endpoint,
            "severity": "high", "expected": "a [DONE]", "observed": observed,
            "evidence": "data: {}", "case": case, **extra}


def test_identical_findings_of_a_case_collapse_with_their_count() -> None:
    findings = [finding("stream.terminator", "/v1/chat/completions", "chat stream")] * 7 + [
        finding("stream.terminator", "/v1/chat/completions", "chat stream with usage",
                count=3),
        finding("golden.match", "/v1/messages", "basic", DIFF, severity="medium"),
        finding("stream.terminator", "/v1/messages", "messages stream")]
    groups = grouped_findings(findings)
    assert list(groups) == ["stream.terminator", "golden.match"]
    chat = groups["stream.terminator"]["/v1/chat/completions"]
    assert [(f["case"], f["count"]) for f in chat] == [("chat stream", 7),
                                                       ("chat stream with usage", 3)]


def run_summary(tmp_path: Path, findings: list[Finding], phases: list[Phase] | None = None,
                **extra: Any) -> dict[str, Any]:
    phases = phases or [Phase("conformance", "failed" if findings else "passed", "", "", {},
                              findings)]
    return build("gate", {"name": "gw", "base_url": "http://127.0.0.1:1", "profile": "openai"},
                 phases, "2026-01-01T00:00:00Z", "2026-01-01T00:01:00Z", 60.0,
                 1 if findings else 0, extra)


def test_summary_md_groups_findings_shows_gate_decisions_and_no_repr(tmp_path: Path) -> None:
    findings = [Finding("stream.terminator", "/v1/chat/completions", Severity.HIGH,
                        "data: [DONE]", "no [DONE]", case="chat stream")] * 7
    findings.append(Finding("golden.match", "/v1/messages", Severity.MEDIUM, "the golden",
                            DIFF, case="basic"))
    rate = Phase("rate-limits", "passed", "", "rate-limits", {"rate_limits": {"tiers": [
        {"tier": "free", "limit": 12, "sent": 18, "accepted": 12, "rejected": 6,
         "recovered": True, "ok": True}]}})
    gate = {"config": "gate.yaml", "baseline": "2025-12-31T00:00:00Z", "decisions": [
        {"kind": "allowed", "what": "golden.match /v1/messages", "detail": "known (until x)"},
        {"kind": "regression", "what": "stream.terminator /v1/chat/completions",
         "detail": "passed in the baseline, fails now: no [DONE]"}]}
    summary = run_summary(tmp_path, findings, [Phase("conformance", "failed", "", "", {},
                                                     findings), rate], gate=gate)
    md = markdown(json.loads(json.dumps(summary)))
    assert "True" not in md and "{'" not in md and "None" not in md
    assert "### Gate: FAIL (1 allowed, 1 regression)" in md
    assert md.index("**regression**") < md.index("| allowed |")  # what fails comes first
    assert "Baseline: the run of 2025-12-31T00:00:00Z." in md
    assert "| `stream.terminator` | /v1/chat/completions | 7 | chat stream x7 |" in md
    assert md.count("stream.terminator` |") == 1
    assert "-model: <model> (more in report.html)" in md
    assert "| free | 12 | 18 | 12 | 6 | yes | ok |" in md


def test_summary_md_of_a_passing_gate_says_so(tmp_path: Path) -> None:
    md = markdown(run_summary(tmp_path, [], gate={"decisions": []}))
    assert "### Gate: PASS" in md and "Nothing to decide" in md


def write_samples(folder: Path, samples: list[dict[str, Any]]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "samples.jsonl").write_text("".join(json.dumps(s) + "\n" for s in samples))


def latency_phase(reasons: list[str]) -> Phase:
    m = {k: {"p50": 1.0, "p95": 2.0, "p99": 3.0} for k in
         ("ttfb_ms", "ttft_ms", "tpot_ms", "itl_ms", "e2e_ms", "tokens_per_s")}
    data = {"latency": {**m, "requests": 4, "errors": 2, "by_endpoint": {}},
            "reasons": reasons}
    return Phase("latency", "failed" if reasons else "passed", "", "latency", data)


def test_html_plots_per_endpoint_only_valid_samples(tmp_path: Path) -> None:
    ok = {"ok": True, "ttft_ms": 20.0, "e2e_ms": 50.0}
    bad = {"ok": False, "ttft_ms": 21.0, "e2e_ms": 40.0, "error_kind": "transport.reset"}
    write_samples(tmp_path / "latency", [
        {**ok, "endpoint": "/v1/chat/completions"}, {**ok, "endpoint": "/v1/messages"},
        {**ok, "endpoint": "/v1/messages", "e2e_ms": 900.0},
        {**bad, "endpoint": "/v1/complete"}, {**bad, "endpoint": "/v1/complete"}])
    page = html.render(run_summary(tmp_path, [], [latency_phase([])]), tmp_path)
    assert "End-to-end latency: /v1/chat/completions" in page
    assert "End-to-end latency: /v1/messages" in page
    assert "End-to-end latency: /v1/complete" not in page
    assert ("No /v1/complete e2e plot: all 2 requests failed (transport.reset &times;2)"
            in page)


def test_html_replaces_plots_without_valid_samples_by_a_sentence(tmp_path: Path) -> None:
    write_samples(tmp_path / "latency", [
        {"ok": False, "endpoint": "/v1/messages", "ttft_ms": 20.0, "e2e_ms": 40.0,
         "error_kind": "transport.reset"}] * 3)
    page = html.render(run_summary(tmp_path, [], [latency_phase(["error_rate_max"])]),
                       tmp_path)
    assert "<svg" not in page
    assert "No TTFT or e2e plot: all 3 requests failed (transport.reset &times;3)" in page


def test_html_findings_are_grouped_with_case_pointer_diff_and_repro(tmp_path: Path) -> None:
    findings = [finding("stream.terminator", "/v1/chat/completions", "chat stream",
                        pointer="", repro="curl -N -H 'Authorization: Bearer $KEY' x")] * 7
    findings += [finding("golden.match", "/v1/messages", "basic", DIFF,
                         pointer="/model")]
    summary = run_summary(tmp_path, [])
    summary["findings"] = findings
    page = html.render(summary, tmp_path)
    assert "<meta name='viewport'" in page
    assert page.count("<details class='check'") == 2
    assert page.count("class='finding'") == 2  # seven identical findings shown once
    assert "chat stream</b> <span class='count'>&times;7</span>" in page
    assert "<pre>--- golden\n+++ received\n" in page  # a diff keeps its lines
    assert "<code>/model</code>" in page
    assert "curl -N -H &#x27;Authorization: Bearer $KEY&#x27; x</pre>" in page


def test_html_links_only_files_that_exist(tmp_path: Path) -> None:
    (tmp_path / "summary.json").write_text("{}")
    (tmp_path / "latency").mkdir()
    (tmp_path / "latency" / "locust.html").write_text("")
    phases = [Phase("conformance", "passed"), latency_phase([]),
              Phase("rate-limits", "skipped", "no tier keys", "rate-limits")]
    page = html.render(run_summary(tmp_path, [], phases), tmp_path)
    hrefs = re.findall(r"href='([^']+)'", page)
    assert hrefs == ["summary.json", "latency/", "latency/locust.html"]
    for href in hrefs:
        assert (tmp_path / href).exists()


def test_compare_differences_side_by_side_when_answers_are_kept(tmp_path: Path) -> None:
    mirror = {"latency": {}, "long_request": {"verdict": "ok"}, "reason": ""}
    compare = {"mirrors": [{**mirror, "name": "a", "base_url": "http://127.0.0.1:1"},
                           {**mirror, "name": "b", "base_url": "http://127.0.0.1:2"}],
               "matrix": {}, "differences": [
                   {"what": "status", "probe": "errors: unknown model",
                    "values": {"a": "404", "b": "400"},
                    "answers": {"a": '{"error": {"type": "not_found"}}',
                                "b": '{"error": "bad"}'}}]}
    page = html.render(run_summary(tmp_path, [], compare=compare), tmp_path)
    assert re.search(r"<div class='answers'>\s*<div><b>a</b><pre>\{&quot;error&quot;: \{", page)
    assert "<div><b>b</b><pre>{&quot;error&quot;: &quot;bad&quot;}</pre></div>" in page
    assert "No TTFT plot: no mirror completed a stream." in page
    without = {**compare, "differences": [{**compare["differences"][0], "answers": {}}]}
    assert "class='answers'" not in html.render(run_summary(tmp_path, [], compare=without),
                                                tmp_path)


def test_information_and_not_served_are_said_not_judged(tmp_path: Path) -> None:
    line = ("POST /v1/messages x-api-key instead of Bearer: accepted (status 200); not judged, "
            "as the target does not declare it (its entry's `auth:` list)")
    phase = Phase("conformance", "passed", "", "", {"not_served": ["/v1/complete"],
                                                    "information": [line]})
    summary = json.loads(json.dumps(run_summary(tmp_path, [], [phase])))
    md = markdown(summary)
    assert "### Information (not judged)" in md and "accepted (status 200)" in md
    assert "not sent (the target does not serve them): /v1/complete" in md
    page = html.render(summary, tmp_path)
    assert "Information (not judged)" in page and "x-api-key instead of Bearer" in page
    assert "Information" not in markdown(json.loads(json.dumps(run_summary(
        tmp_path, [], [Phase("conformance", "passed", "", "", {})]))))


def test_the_fuzz_seed_and_missing_extras_are_in_summary_and_page(tmp_path: Path) -> None:
    missing = "sdk: not run, openai not installed (pip install 'gateprobe[sdk]')"
    phase = Phase("conformance", "passed", "", "", {"fuzz_seed": 4242,
                                                    "missing_extras": [missing]})
    summary = json.loads(json.dumps(run_summary(tmp_path, [], [phase])))
    assert summary["phases"][0]["data"]["fuzz_seed"] == 4242  # summary.json keeps it
    replay = "fuzz seed 4242 (--fuzz-seed 4242 sends the same cases again)"
    assert replay in markdown(summary) and missing in markdown(summary)
    page = html.render(summary, tmp_path)
    assert replay in page and "gateprobe[sdk]" in page
