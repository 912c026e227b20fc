"""Every conformance run ends: whatever a gateway answers, and however many runs a process makes.

A gateway behind a maintenance page answers every model route 503 with ``Retry-After: 86400``;
the official SDKs would honour that (a day) if left to themselves. Runs here are in-process, as a
user's script or ``gateprobe gate`` makes them, so state left behind by one run would show in
the next.
"""

from __future__ import annotations

import io
import json
import time
from pathlib import Path

import pytest

from gateprobe.cli import main
from gateprobe.core.console import Console
from gateprobe.reference import Timing
from gateway_fixtures import MakeGateway

FAST = Timing(ttft_ms=5, itl_ms=1)


def conformance(*argv: str) -> tuple[int, str, float]:
    out, err = io.StringIO(), io.StringIO()
    start = time.monotonic()
    code = main(["conformance", "--api-key-env", "GP_BOUNDED_KEY", *argv], Console(out, err))
    return code, out.getvalue() + err.getvalue(), time.monotonic() - start


@pytest.fixture(autouse=True)
def key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GP_BOUNDED_KEY", "gp-vip-0001")


@pytest.mark.slow
def test_a_day_long_retry_after_on_every_route_ends_within_three_totals(
        make_gateway: MakeGateway, tmp_path: Path) -> None:
    total_s = 10.0
    gateway = make_gateway(faults=("retry-after-huge",), timing=FAST)
    code, output, took = conformance(
        "--base-url", gateway.base_url, "--timeout-first-byte-s", "5", "--timeout-idle-s", "5",
        "--timeout-total-s", str(total_s), "--report-dir", str(tmp_path))
    assert code == 1, output[-2000:]
    assert took < 3 * total_s, took
    findings = json.loads((tmp_path / "conformance.json").read_text())["findings"]
    named = [f for f in findings if f["check_id"] == "response.retry_after"]
    assert named and all("86400" in f["observed"] for f in named)
    tests = json.loads((tmp_path / "conformance.json").read_text())["tests"]
    ran = {t["test"].split("::")[0].split("/")[-1] for t in tests if t["outcome"] == "failed"}
    assert {"test_sdk.py", "test_fuzz.py"} <= ran, ran  # every category met the 503


@pytest.mark.slow
def test_a_second_run_in_the_process_starts_with_its_own_budget(
        make_gateway: MakeGateway, tmp_path: Path) -> None:
    """The first run spends its budget; the second, against a gateway that never answers,
    must fail on its own timeouts rather than inherit a spent clock and skip to exit 0."""
    clean = make_gateway(timing=FAST)
    code, output, _ = conformance("--base-url", clean.base_url, "--select", "endpoint",
                                  "--budget-s", "0.01", "--report-dir", str(tmp_path / "first"))
    printed = (tmp_path / "first" / "pytest.log").read_text()  # pytest's own report
    assert code == 1 and "budget of 0.01 s is spent" in printed, output + printed[-2000:]
    assert "the time budget (--budget-s 0.01) ran out" in output  # said, naming which
    hanging = make_gateway(faults=("slow-headers",), timing=FAST)
    code, output, took = conformance(
        "--base-url", hanging.base_url, "--select", "endpoint", "--budget-s", "60",
        "--timeout-first-byte-s", "0.5", "--timeout-total-s", "2",
        "--report-dir", str(tmp_path))
    assert code == 1, output[-2000:]
    found = {f["check_id"] for f in
             json.loads((tmp_path / "conformance.json").read_text())["findings"]}
    assert "transport.first_byte_timeout" in found, found
    assert took < 30


@pytest.mark.deep_fuzz
@pytest.mark.slow
def test_a_second_run_fuzzes_its_own_target(make_gateway: MakeGateway, tmp_path: Path) -> None:
    """The fuzz module builds its schema for its target at import: a second run in the same
    process must import it anew, not fuzz the first run's gateway."""
    clean = make_gateway(timing=FAST)
    code, output, _ = conformance("--base-url", clean.base_url, "--select", "fuzz",
                                  "--max-examples", "2", "--fuzz-max-requests", "40")
    assert code == 0, output[-2000:]
    faulty = make_gateway(faults=("error-plain-text",), timing=FAST)
    code, output, _ = conformance("--base-url", faulty.base_url, "--select", "fuzz",
                                  "--max-examples", "2", "--fuzz-max-requests", "40",
                                  "--report-dir", str(tmp_path))
    assert code == 1, output[-2000:]
    found = {f["check_id"] for f in
             json.loads((tmp_path / "conformance.json").read_text())["findings"]}
    assert "error.envelope" in found, found


@pytest.mark.slow
def test_recorded_golden_answers_hold_no_key(make_gateway: MakeGateway, tmp_path: Path) -> None:
    import shutil

    from gateprobe.core.golden import golden_dir

    shutil.copytree(golden_dir(), tmp_path / "golden")
    gateway = make_gateway(faults=("key-echoed-in-error",), timing=FAST)
    code, output, _ = conformance("--base-url", gateway.base_url, "--select", "golden",
                                  "--record-golden", "--golden-dir", str(tmp_path / "golden"),
                                  "--model", "chat=no-such-model")
    assert code == 0, output[-2000:]
    written = "".join(p.read_text() for p in (tmp_path / "golden").glob("*.yaml"))
    assert "no-such-model" in written  # the error answers were recorded...
    assert "gp-vip-0001" not in written  # ...without the key they quoted


def test_the_gate_fails_a_run_whose_budget_ran_out(tmp_path: Path) -> None:
    """Allowed findings must not hide tests the budget left unrun."""
    import datetime as dt

    from gateprobe.commands.gate import decide, load_config
    from gateprobe.core.events import FAILED, Phase
    from gateprobe.core.findings import Finding, Severity

    gate_file = tmp_path / "gate.yaml"
    gate_file.write_text("embedded: true\nsuites: [conformance]\nallow:\n  - check: error.type\n"
                         "    reason: known upstream quirk\n    expires: 2099-01-01\n")
    config = load_config(gate_file)
    finding = Finding("error.type", "/v1/messages", Severity.MEDIUM, "x", "y")
    phase = Phase("conformance", FAILED, "19 skipped", data={"budget_spent": True},
                  findings=[finding])
    decisions = decide(config, [phase], None, dt.date(2026, 1, 1))
    assert [d.kind for d in decisions if d.fails] == ["fail"]
    phase.data["budget_spent"] = False
    assert not any(d.fails for d in decide(config, [phase], None, dt.date(2026, 1, 1)))


@pytest.mark.parametrize("bad", ["timeouts: {total_s: .nan}", "timeouts: {first_byte_s: .inf}",
                                 "budget_s: .inf", "select: bogus"])
def test_a_gate_file_with_an_unusable_bound_is_refused(tmp_path: Path, bad: str) -> None:
    from gateprobe.commands.gate import load_config
    from gateprobe.core.errors import ConfigError

    gate_file = tmp_path / "gate.yaml"
    gate_file.write_text(f"embedded: true\nsuites: [conformance]\n{bad}\n")
    with pytest.raises(ConfigError, match=str(gate_file)):
        load_config(gate_file)


@pytest.mark.slow
def test_a_run_stops_sending_at_its_token_cap(make_gateway: MakeGateway,
                                              tmp_path: Path) -> None:
    gateway = make_gateway(timing=FAST)
    code, output, _ = conformance("--base-url", gateway.base_url, "--select",
                                  "endpoint or stream or sdk", "--max-generated-tokens", "100",
                                  "--report-dir", str(tmp_path))
    printed = (tmp_path / "pytest.log").read_text()  # pytest's own report
    assert code == 1, output + printed[-2000:]
    assert "cap of 100 generated tokens is reached" in printed
    assert "the generated-token budget (--max-generated-tokens 100) was reached" in output
    tests = json.loads((tmp_path / "conformance.json").read_text())["tests"]
    sent = [t for t in tests if t["outcome"] == "passed"]
    skipped = [t for t in tests if t["outcome"] == "skipped"]
    assert 0 < len(sent) <= 100 // 8 and len(skipped) > len(sent)  # each asked >= 8 tokens


def test_the_token_cap_counts_before_it_sends() -> None:
    from gateprobe.engine.runstate import RunState

    state = RunState(token_cap=40)
    assert state.admit_tokens(16) and state.admit_tokens(24)
    assert not state.admit_tokens(1) and state.tokens_asked == 40
    assert RunState().admit_tokens(10**9)


def test_a_request_without_a_token_cap_is_never_counted_as_free() -> None:
    """It costs the target's declared maximum; with none declared nothing bounds it; a
    request that generates nothing costs nothing; its own cap is clamped to the declared."""
    from gateprobe.core.targets import Target
    from gateprobe.engine.fuzz_guard import Guard, tokens_bound

    chat = {"model": "m", "messages": []}
    assert tokens_bound("/v1/chat/completions", chat, 200) == 200
    assert tokens_bound("/v1/chat/completions", chat, None) is None
    assert tokens_bound("/v1/chat/completions", {**chat, "max_tokens": 500}, 200) == 200
    assert tokens_bound("/v1/complete", {"max_tokens_to_sample": 9}, None) == 9
    assert tokens_bound("/v1/embeddings", {"model": "e", "input": "x"}, None) == 0
    guard = Guard.for_target(Target("http://127.0.0.1:1", "ohmygpt", "k"), max_tokens=16)
    fuzzed: dict[str, object] = {"model": "x", "prompt": "a"}
    guard.admit("/v1/complete", fuzzed)
    assert "max_tokens_to_sample" not in fuzzed  # no cap asked: the body as generated
    guard.cap("/v1/complete", fuzzed)  # under --max-generated-tokens: one carries a cap
    assert fuzzed["max_tokens_to_sample"] == 16


@pytest.mark.slow
def test_under_a_token_cap_a_request_nothing_bounds_is_not_sent_and_said_once(
        make_gateway: MakeGateway, tmp_path: Path) -> None:
    """The claude-2-web chat names no max_tokens (that model ignores it): against a target
    declaring no maximum it is not sent; declared, it counts as that maximum."""
    gateway = make_gateway(timing=FAST)
    code, output, _ = conformance("--base-url", gateway.base_url, "--select", "endpoint",
                                  "--max-generated-tokens", "100000", "--report-dir",
                                  str(tmp_path / "a"))
    assert output.count("not sent: each names no token cap") == 1, output
    report = json.loads((tmp_path / "a" / "conformance.json").read_text())
    skipped = [t["test"] for t in report["tests"] if t["outcome"] == "skipped"]
    assert any("claude-2-web chat" in t for t in skipped), skipped
    targets = tmp_path / "targets.yaml"
    targets.write_text(f"targets:\n  t:\n    base_url: {gateway.base_url}\n"
                       "    profile: ohmygpt\n    api_key_env: GP_BOUNDED_KEY\n"
                       "    max_tokens: 50\n")
    out, err = io.StringIO(), io.StringIO()
    main(["conformance", "--targets", str(targets), "--target", "t", "--select", "endpoint",
          "--max-generated-tokens", "100000", "--report-dir", str(tmp_path / "b")],
         Console(out, err))
    report = json.loads((tmp_path / "b" / "conformance.json").read_text())
    sent = [t["test"] for t in report["tests"] if t["outcome"] != "skipped"]
    assert any("claude-2-web chat" in t for t in sent), sent
    assert "not sent: each names no token cap" not in out.getvalue()
