"""Allure and JUnit tell what the terminal tells: the same tests, the same totals.

Allure folds results that share a ``historyId`` into one test: when every fuzzed operation of a
spec shared one, Allure showed fewer tests than the terminal and JUnit, and a spec with four
failing operations as passed. These tests count the three for a failing run.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import xml.etree.ElementTree as ET
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from gateprobe.core.events import Phase
from gateprobe.core.findings import Finding, Severity
from gateprobe.core.targets import Target
from gateprobe.engine.pytest_plugin import write_allure_environment
from gateprobe.engine.report.allure_results import write_phases
from gateprobe.engine.report.summary import merge_junit
from gateprobe.reference import Timing
from gateway_fixtures import MakeGateway

KEY = "gp-vip-0001"


def allure_results(folder: Path) -> list[dict[str, Any]]:
    return [json.loads(p.read_text()) for p in folder.glob("*-result.json")]


def allure_totals(folder: Path) -> Counter[str]:
    """Tests per status as Allure's report counts them: one per historyId, the latest."""
    latest: dict[str, dict[str, Any]] = {}
    for result in sorted(allure_results(folder), key=lambda r: r["stop"]):
        latest[result["historyId"]] = result
    return Counter(r["status"] for r in latest.values())


def junit_totals(path: Path) -> Counter[str]:
    totals: Counter[str] = Counter()
    for case in ET.parse(path).getroot().iter("testcase"):
        kinds = {child.tag for child in case}
        totals["failed" if kinds & {"failure", "error"} else
               "skipped" if "skipped" in kinds else "passed"] += 1
    return totals


def terminal_totals(output: str) -> Counter[str]:
    """The counts of the run's closing line(s): ``N failed, M passed, K skipped``."""
    totals: Counter[str] = Counter()
    for status in ("passed", "failed", "skipped"):
        found = re.findall(rf"(\d+) (?:tests )?{status}\b", output)
        if found:
            totals[status] = int(found[-1])
    return totals


@pytest.mark.slow
def test_terminal_junit_and_allure_count_the_same_tests_of_a_failing_run(
        make_gateway: MakeGateway, tmp_path: Path) -> None:
    gateway = make_gateway(faults=("stream-drop-terminator",), timing=Timing(0, 0))
    report = tmp_path / "report"
    env = {k: v for k, v in os.environ.items()  # the suite's lag bound stays (conftest)
           if not k.startswith("GATEPROBE_") or k == "GATEPROBE_LAG_BOUND_MS"}
    # auth: its no-permission case is skipped (no such key given): a skip to count too.
    proc = subprocess.run(
        [sys.executable, "-m", "gateprobe", "conformance", "--base-url", gateway.base_url,
         "--select", "stream or auth or fuzz", "--max-examples", "2",
         "--report-dir", str(report)],
        env={**env, "GATEPROBE_API_KEY": KEY}, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 1, proc.stdout[-3000:] + proc.stderr[-2000:]
    terminal = terminal_totals(proc.stdout + proc.stderr)
    junit = junit_totals(report / "junit.xml")
    results = allure_results(report / "allure-results")
    allure = allure_totals(report / "allure-results")
    assert terminal["failed"] > 0 and terminal["skipped"] > 0 and terminal["passed"] > 0
    assert terminal == junit == allure, (terminal, junit, allure)

    names = [c.get("name") for c in ET.parse(report / "junit.xml").getroot().iter("testcase")
             if "fuzz" in (c.get("classname") or "")]
    assert len(names) == len(set(names)) >= 6, names  # one per fuzzed operation
    assert "test_openai_post_v1_chat_completions" in names
    fuzz = [r for r in results if r["fullName"].startswith("test_fuzz#")]
    assert len({r["historyId"] for r in fuzz}) == len(fuzz) == len(names)
    failed_fuzz = {r["name"].split("[")[0] for r in fuzz if r["status"] == "failed"}
    assert "test_openai_post_v1_chat_completions" in failed_fuzz
    stories = {label["value"] for r in fuzz for label in r["labels"] if label["name"] == "story"}
    assert "/v1/chat/completions" in stories  # filed beside the cases of its endpoint

    # schemathesis's own reproductions in the failure texts mask credentials, and only them
    # (by default it masks max_tokens too: "token" is one of its markers).
    junit_text = (report / "junit.xml").read_text()
    assert "Reproduce with" in junit_text
    assert "[Filtered]" not in re.sub(r"(authorization|x-api-key): \[Filtered\]", "",
                                      junit_text)


@pytest.mark.slow
def test_the_request_is_attached_next_to_the_answer_and_no_key_anywhere(
        make_gateway: MakeGateway, tmp_path: Path) -> None:
    from gateprobe.commands.conformance_runner import ConformanceOptions, run_conformance

    gateway = make_gateway(faults=("error-wrong-type",), timing=Timing(0, 0))
    target = Target(gateway.base_url, "ohmygpt", KEY, "GP_ALLURE_KEY")
    run_conformance(target, ConformanceOptions(select="errors", report_dir=tmp_path))
    folder = tmp_path / "allure-results"
    failed = [r for r in allure_results(folder) if r["status"] == "failed"]
    assert failed
    for result in failed:
        attachments = {a["name"]: (folder / a["source"]).read_text() for a in
                       result["attachments"]}
        assert list(attachments)[:2] == ["request", "answer"], list(attachments)
        assert attachments["request"].startswith("curl -sS -i -X POST ")
        assert "$GP_ALLURE_KEY" in attachments["request"]
        assert re.match(r"status 4\d\d\n\n\{", attachments["answer"])
        findings = json.loads(attachments["findings"])
        assert findings[0]["check_id"] == "error.type" and findings[0]["repro"]
        assert findings[0]["pointer"] == "/error/type"
        assert "case: " in result["statusDetails"]["message"]
    for path in folder.iterdir():
        assert KEY not in path.read_text(errors="replace"), path.name
    # JUnit carries the same content, in the failure text of each test
    failures = list(ET.parse(tmp_path / "junit.xml").getroot().iter("failure"))
    assert len(failures) == len(failed)
    for failure in failures:
        text = failure.get("message", "") + (failure.text or "")
        for part in ("[error.type]", "case: ", "pointer: /error/type", "evidence: {",
                     "repro: curl -sS -i -X POST ", "$GP_ALLURE_KEY"):
            assert part in text, (part, text)
        assert KEY not in text
    environment = (folder / "environment.properties").read_text()
    assert f"base_url={gateway.base_url}\n" in environment
    assert "profile=ohmygpt\n" in environment and "gateprobe=" in environment
    assert "key_variable=GP_ALLURE_KEY\n" in environment


def test_environment_properties_never_carry_a_key_or_a_password(tmp_path: Path) -> None:
    target = Target("https://user:sekrit-pass@gw.example:8443/api", "anthropic",
                    "sk-the-real-key-123", "GW_KEY", name="staging")
    text = write_allure_environment(tmp_path, target).read_text()
    assert "target=staging\n" in text and "base_url=https://gw.example:8443/api\n" in text
    assert "sekrit" not in text and "sk-the-real-key-123" not in text


def test_load_phases_are_allure_tests_as_junit_lists_them(tmp_path: Path) -> None:
    verdict = {"rate_limits": {"tiers": [
        {"tier": "free", "problems": ["ratelimit.limit [free]: accepted 15"]},
        {"tier": "vip", "problems": []}]}}
    latency = {"slo_names": ["ttft_p95_ms", "e2e_p95_ms"],
               "reasons": ["ttft_p95_ms: 900 > 800"]}
    twice = Finding("response.status", "/v1/models", Severity.HIGH, "200", "status 502")
    phases = [Phase("rate-limits", "failed", "", "rate-limits", verdict),
              Phase("latency", "failed", "", "latency", latency),
              Phase("compare", "skipped", "not loopback"),
              Phase("mirror b", "failed", "", "", {}, [twice, twice])]
    merge_junit(tmp_path, phases)
    write_phases(tmp_path / "allure-results", phases)
    results = allure_results(tmp_path / "allure-results")
    by_name = {(r["labels"][0]["value"], r["name"]): r["status"] for r in results}
    assert by_name == {("gateprobe.rate-limits", "tier free"): "failed",
                       ("gateprobe.rate-limits", "tier vip"): "passed",
                       ("gateprobe.latency", "slo ttft_p95_ms"): "failed",
                       ("gateprobe.latency", "slo e2e_p95_ms"): "passed",
                       ("gateprobe.compare", "compare"): "skipped",
                       ("gateprobe.mirror b", "response.status /v1/models"): "failed"}
    assert len(results) == 7 and len({r["historyId"] for r in results}) == 7
    assert allure_totals(tmp_path / "allure-results") == junit_totals(tmp_path / "junit.xml")
    failed = next(r for r in results if r["name"] == "slo ttft_p95_ms")
    assert failed["statusDetails"]["message"] == "ttft_p95_ms: 900 > 800"
    attached = tmp_path / "allure-results" / failed["attachments"][0]["source"]
    assert json.loads(attached.read_text()) == latency


def test_a_run_folder_gets_its_load_phases_beside_the_suites_allure_results(
        tmp_path: Path) -> None:
    from gateprobe.core.events import RunFinished
    from gateprobe.core.redact import Redactor
    from gateprobe.engine.report.folder import ReportFolder

    phases = (Phase("conformance", "passed"), Phase("latency", "skipped", "not loopback"))
    ReportFolder(tmp_path, Redactor())(RunFinished(
        "run", {"name": "embedded", "base_url": "http://127.0.0.1:1", "profile": "ohmygpt"},
        phases, "2026-01-01T00:00:00Z", "2026-01-01T00:00:01Z", 1.0, 0))
    assert (tmp_path / "report.html").exists()  # the folder's other files, as before
    results = allure_results(tmp_path / "allure-results")
    assert [(r["fullName"], r["status"]) for r in results] == [
        ("gateprobe.latency#latency", "skipped")]
