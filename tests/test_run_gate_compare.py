"""``gateprobe run``, ``gateprobe gate`` and ``gateprobe compare`` end to end, on loopback.

The report folder is checked as a newcomer would use it; every test that involves keys also
checks that none is written anywhere in the folder.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest

from gateprobe.cli import main
from gateprobe.core.console import Console
from gateprobe.reference import Timing
from gateway_fixtures import MakeGateway

KEYS = {"GP_T_KEY": "gp-vip-0001", "GP_T_NOPERM": "gp-nomodel-0001",
        "GP_T_FREE": "gp-free-0002", "GP_T_VIP": "gp-vip-0002", "GP_T_PREMIUM": "gp-premium-0002"}
EMBEDDED = ["gp-vip-0001", "gp-nomodel-0001", "gp-free-0002", "gp-vip-0002", "gp-premium-0002"]


@pytest.fixture(autouse=True)
def keys(monkeypatch: pytest.MonkeyPatch) -> None:
    for variable, key in KEYS.items():
        monkeypatch.setenv(variable, key)


def gateprobe(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = main(list(argv), Console(out, err))
    return code, out.getvalue(), err.getvalue()


def assert_no_key_in(folder: Path, keys: list[str]) -> None:
    files = [p for p in folder.rglob("*") if p.is_file()]
    assert files
    for path in files:
        data = path.read_bytes()
        for key in keys:
            assert key.encode() not in data, f"{key} in {path}"


def targets_file(tmp_path: Path, **gateways: str) -> Path:
    lines = ["targets:"]
    for name, url in gateways.items():
        lines += [f"  {name}:", f"    base_url: {url}", "    profile: ohmygpt",
                  "    api_key_env: GP_T_KEY", "    no_permission_key_env: GP_T_NOPERM",
                  "    tier_keys: {free: GP_T_FREE, vip: GP_T_VIP, premium: GP_T_PREMIUM}",
                  "    limits: {window_s: 4, rpm: {free: 12, vip: 60, premium: 90}}"]
    path = tmp_path / "targets.yaml"
    path.write_text("\n".join(lines) + "\n")
    return path


def summary(folder: Path) -> dict[str, Any]:
    result: dict[str, Any] = json.loads((folder / "summary.json").read_text())
    return result


# -- gateprobe run ------------------------------------------------------------------------------
@pytest.mark.slow
@pytest.mark.timeout(600)  # a whole run; its own subprocess bound is the one that counts
def test_run_embedded_as_a_newcomer_does(tmp_path: Path) -> None:
    """The README's first command, as a process in an empty folder: exit 0 and a complete,
    self-contained report under reports/latest, with no key in it."""
    env = {k: v for k, v in os.environ.items()  # the suite's lag bound stays (conftest)
           if not k.startswith("GATEPROBE_") or k == "GATEPROBE_LAG_BOUND_MS"}
    done = subprocess.run([sys.executable, "-m", "gateprobe", "run"], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "[1/3] conformance suite" in done.stdout and "PASS: report in" in done.stdout
    latest = tmp_path / "reports" / "latest"
    assert latest.is_symlink()
    result = summary(latest)
    assert result["schema"] == "gateprobe.summary" and result["ok"]
    assert [(p["name"], p["status"]) for p in result["phases"]] == [
        ("conformance", "passed"), ("rate-limits", "passed"), ("latency", "passed")]
    html = (latest / "report.html").read_text()
    assert html.count("<svg") >= 5  # TTFT CDF, e2e histogram, one timeline per tier
    assert "<script" not in html and 'src="http' not in html and 'href="http' not in html
    assert "## gateprobe run: PASS" in (latest / "summary.md").read_text()
    suites = {s.get("name") for s in ET.parse(latest / "junit.xml").getroot()}
    assert {"gateprobe.rate-limits", "gateprobe.latency"} <= suites and len(suites) >= 3
    assert any((latest / "allure-results").iterdir())
    assert (latest / "latency" / "samples.jsonl").stat().st_size > 0
    assert_no_key_in(tmp_path / "reports", EMBEDDED)


@pytest.mark.slow
def test_run_against_a_key_echoing_gateway_reports_it_and_writes_no_key(
        make_gateway: MakeGateway, tmp_path: Path) -> None:
    gateway = make_gateway(faults=("key-echoed",), rate_window_s=4,
                           timing=Timing(ttft_ms=5, itl_ms=1))
    targets = targets_file(tmp_path, echo=gateway.base_url)
    code, out, err = gateprobe("run", "--target", "echo", "--targets", str(targets),
                               "--suites", "conformance,latency", "--select", "endpoint",
                               "--report-dir", str(tmp_path / "report"))
    assert code == 1, out + err
    result = summary(tmp_path / "report")
    assert "security.key_echoed" in {f["check_id"] for f in result["findings"]}
    assert_no_key_in(tmp_path / "report", list(KEYS.values()))


def test_run_skips_load_against_a_remote_target_without_allow_load(tmp_path: Path) -> None:
    targets = tmp_path / "targets.yaml"
    targets.write_text("targets:\n  paid:\n    base_url: http://127.0.0.1:9\n"
                       "    profile: ohmygpt\n    api_key_env: GP_T_KEY\n")
    code, _, err = gateprobe("run", "--target", "paid", "--targets", str(targets))
    assert code == 3 and "cannot connect" in err  # checked before anything is sent


@pytest.mark.parametrize(("argv", "message"), [
    (["run", "--suites", "conformance,speed"], "unknown suite 'speed'"),
    (["run", "--target", "x", "--base-url", "http://127.0.0.1:9"], "not both"),
    (["run", "--target", "nope", "--targets", "/nonexistent.yaml"], "targets file"),
    (["compare", "--base-url", "http://127.0.0.1:9"], "at least twice"),
    (["compare", "--samples", "0", "--base-url", "http://a", "--base-url", "http://b"],
     "--samples"),
    (["gate", "--config", "/nonexistent/gate.yaml"], "gate file"),
])
def test_config_errors_are_one_line_and_exit_2(argv: list[str], message: str) -> None:
    code, out, err = gateprobe(*argv)
    assert code == 2, out + err
    assert message in err and err.count("\n") == 1 and "Traceback" not in err


# -- gateprobe gate -----------------------------------------------------------------------------
def gate_file(tmp_path: Path, name: str, body: str) -> Path:
    path = tmp_path / f"{name}.yaml"
    path.write_text(body)
    return path


GATE = """target: {target}
targets: targets.yaml
suites: [conformance, latency]
select: golden
latency: {{duration_s: 3, users: 2, max_tokens: 16}}
slo: {{error_rate_max: 0}}
"""


@pytest.mark.slow
def test_gate_fails_on_a_planted_regression_against_a_baseline(
        make_gateway: MakeGateway, tmp_path: Path) -> None:
    clean = make_gateway(timing=Timing(ttft_ms=10, itl_ms=1))
    broken = make_gateway(timing=Timing(ttft_ms=10, itl_ms=1),
                          faults=("response-missing-model", "stream-slow-first-token"))
    targets_file(tmp_path, clean=clean.base_url, broken=broken.base_url)
    base = gate_file(tmp_path, "base", GATE.format(target="clean"))
    code, out, err = gateprobe("gate", "--config", str(base), "--report-dir",
                               str(tmp_path / "baseline"))
    assert code == 0, out + err

    # The same gate with the baseline, against the gateway with the planted regression.
    gate = gate_file(tmp_path, "gate", GATE.format(target="broken")
                     + "baseline: baseline/summary.json\nregressions: {ttft_p95_pct: 50}\n")
    code, out, err = gateprobe("gate", "--config", str(gate), "--report-dir",
                               str(tmp_path / "now"))
    assert code == 1, out + err
    decisions = summary(tmp_path / "now")["gate"]["decisions"]
    regressions = {d["what"].split()[0] for d in decisions if d["kind"] == "regression"}
    assert "golden.match" in regressions and "ttft_p95" in regressions
    assert "regression" in (tmp_path / "now" / "report.html").read_text()
    md = (tmp_path / "now" / "summary.md").read_text()  # the CI job summary says why
    assert "### Gate: FAIL" in md and "| **regression** | golden.match " in md


@pytest.mark.slow
def test_gate_allow_list_with_expiry(make_gateway: MakeGateway, tmp_path: Path) -> None:
    broken = make_gateway(timing=Timing(ttft_ms=5, itl_ms=1),
                          faults=("response-missing-model",))
    targets_file(tmp_path, broken=broken.base_url)
    allow = ("allow:\n"
             "  - {check: golden.match, reason: model added in GW-12, expires: 2999-01-01}\n"
             "  - {check: response.schema, reason: same ticket GW-12, expires: 2999-01-01}\n")
    body = GATE.format(target="broken").replace("suites: [conformance, latency]",
                                                "suites: [conformance]")
    code, out, err = gateprobe("gate", "--config", str(gate_file(tmp_path, "g", body + allow)),
                               "--report-dir", str(tmp_path / "a"))
    assert code == 0, out + err
    assert {d["kind"] for d in summary(tmp_path / "a")["gate"]["decisions"]} == {"allowed"}
    expired = allow.replace("2999-01-01", "2020-01-01")
    code, out, _ = gateprobe("gate", "--config", str(gate_file(tmp_path, "e", body + expired)),
                             "--report-dir", str(tmp_path / "b"))
    assert code == 1
    kinds = {d["kind"] for d in summary(tmp_path / "b")["gate"]["decisions"]}
    assert {"expired", "fail"} <= kinds and "expired" in out


@pytest.mark.parametrize(("body", "message"), [
    ("- a list\n", "a mapping"),
    ("target: x\nembedded: true\n", "either target"),
    ("embedded: true\nsuites: [speed]\n", "suites.0"),
    ("embedded: true\ncolour: red\n", "colour"),
    ("embedded: true\nallow: [{check: a, reason: why not, expires: someday}]\n",
     "not a date"),
    ("embedded: true\nallow: [{check: a, expires: 2030-01-01}]\n", "'reason' is a required"),
    ("embedded: true\nbaseline: missing.json\n", "cannot read summary"),
    ("embedded: true\nslo: {ttft_p95: 3}\n", "did you mean 'ttft_p95_ms'"),
    ("target: t\n", "targets file"),
])
def test_gate_config_errors(tmp_path: Path, body: str, message: str) -> None:
    code, out, err = gateprobe("gate", "--config", str(gate_file(tmp_path, "gate", body)))
    assert code == 2, out + err
    assert message in err and err.count("\n") == 1


def test_every_mistake_of_a_gate_file_is_reported_at_once(tmp_path: Path) -> None:
    """An unknown field, a bad expiry, an unknown SLO and a negative one, neither target nor
    embedded: five lines, one per mistake, exit 2."""
    body = ("colour: red\nallow: [{check: a, reason: why, expires: someday}]\n"
            "slo: {ttft_p95: 3, e2e_p95_ms: -1}\n")
    code, out, err = gateprobe("gate", "--config", str(gate_file(tmp_path, "gate", body)))
    assert code == 2, out + err
    lines = err.splitlines()
    assert len(lines) == 5, err
    assert all(line.startswith("gateprobe: ") and "gate.yaml: " in line for line in lines)
    for fragment in ("colour", "allow.0.expires: 'someday' is not a date",
                     "unknown SLO 'ttft_p95'", "SLO e2e_p95_ms must be a number >= 0",
                     "either target"):
        assert sum(fragment in line for line in lines) == 1, (fragment, err)


def test_gate_refuses_a_suite_the_target_cannot_run(make_gateway: MakeGateway,
                                                    tmp_path: Path) -> None:
    gateway = make_gateway()
    (tmp_path / "targets.yaml").write_text(
        f"targets:\n  t:\n    base_url: {gateway.base_url}\n    profile: ohmygpt\n"
        "    api_key_env: GP_T_KEY\n")
    code, _, err = gateprobe("gate", "--config", str(gate_file(
        tmp_path, "gate", "target: t\nsuites: [rate-limits]\n")))
    assert code == 2 and "no tier_keys" in err


# -- gateprobe compare --------------------------------------------------------------------------
@pytest.mark.slow
def test_compare_shows_exactly_the_differences_of_three_mirrors(
        make_gateway: MakeGateway, tmp_path: Path) -> None:
    clean = make_gateway(timing=Timing(ttft_ms=20, itl_ms=2))
    faulty = make_gateway(timing=Timing(ttft_ms=20, itl_ms=2),
                          faults=("stream-drop-terminator",))
    slow = make_gateway(timing=Timing(ttft_ms=400, itl_ms=2), cut_after_s=1.0)
    code, out, err = gateprobe(
        "compare", "--base-url", clean.base_url, "--base-url", faulty.base_url,
        "--base-url", slow.base_url, "--base-url", "http://127.0.0.1:9",
        "--api-key-env", "GP_T_KEY", "--samples", "4", "--long-request-s", "1.5",
        "--report-dir", str(tmp_path))
    assert code == 1, out + err
    result = summary(tmp_path)["compare"]
    by_url = {m["base_url"]: m for m in result["mirrors"]}
    c, f, s, dead = (by_url[u] for u in (clean.base_url, faulty.base_url, slow.base_url,
                                         "http://127.0.0.1:9"))
    # The clean mirror: every check passes, the long request is answered.
    assert c["ok"] and all(p["verdict"] == "pass" for p in c["probes"].values())
    assert c["long_request"]["verdict"].startswith("ok")
    # The faulty one: exactly its streams fail, on stream.terminator.
    failing = {name for name, p in f["probes"].items() if p["verdict"] != "pass"}
    assert failing and all(name.startswith("stream:") for name in failing)
    assert all("stream.terminator" in f["probes"][n]["verdict"] for n in failing)
    assert not f["long_request"]["cut"]
    # The slow one: conformant, 400 ms slower to the first token, and cut at 1 s.
    assert all(p["verdict"] == "pass" for p in s["probes"].values())
    assert s["latency"]["ttft_p50_ms"] >= 380 > 100 >= c["latency"]["ttft_p50_ms"]
    assert s["long_request"]["cut"] and s["long_request"]["status"] == 524
    assert 0.9 <= s["long_request"]["elapsed_s"] < 1.5
    # The unreachable one is a row with its reason.
    assert "cannot connect" in dead["reason"]
    assert "long request" in result["matrix"]
    assert any(d["probe"].startswith("stream: messages") for d in result["differences"])
    assert "TTFT per mirror" in (tmp_path / "report.html").read_text()


@pytest.mark.slow
def test_compare_names_a_tls_broken_mirror(make_gateway: MakeGateway, tmp_path: Path) -> None:
    gateway = make_gateway()
    tls = gateway.base_url.replace("http://", "https://")
    code, out, err = gateprobe("compare", "--base-url", gateway.base_url, "--base-url", tls,
                               "--api-key-env", "GP_T_KEY", "--samples", "1",
                               "--long-request-s", "0.2", "--report-dir", str(tmp_path))
    mirrors = summary(tmp_path)["compare"]["mirrors"]
    assert mirrors[1]["reason"].startswith("TLS handshake"), mirrors[1]["reason"]
    assert code == 1


@pytest.mark.slow
def test_run_and_gate_hand_their_timeouts_to_every_phase(make_gateway: MakeGateway,
                                                         tmp_path: Path) -> None:
    gateway = make_gateway(faults=("slow-headers",))
    targets_file(tmp_path, hang=gateway.base_url)
    gate = gate_file(tmp_path, "gate", "target: hang\nsuites: [conformance, latency]\n"
                     "select: endpoint\nlatency: {duration_s: 2, users: 1}\n"
                     "timeouts: {connect_s: 1, first_byte_s: 0.5, idle_s: 0.5, total_s: 1}\n"
                     "budget_s: 60\n")
    code, out, err = gateprobe("gate", "--config", str(gate), "--report-dir",
                               str(tmp_path / "g"))
    assert code == 1, out + err
    found = {f["check_id"] for f in summary(tmp_path / "g")["findings"]}
    assert "transport.first_byte_timeout" in found
