"""Findings people can act on: case, pointer, evidence, a ``curl`` repro that works, counts.

The end-to-end test runs the conformance suite against a reference gateway with faults and
replays findings' repros with the real curl against it: a repro that does not reproduce the
answer is worse than none.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from gateprobe.commands.conformance_runner import ConformanceOptions, run_conformance
from gateprobe.core.checks import Context, Exchange, evidence_of, run_checks
from gateprobe.core.findings import Finding, Severity, collapse
from gateprobe.core.redact import Redactor
from gateprobe.core.sse import Event
from gateprobe.core.targets import Target
from gateprobe.engine.cases import Case
from gateprobe.engine.probe import curl_command, curl_of
from gateprobe.engine.pytest_plugin import describe
from gateprobe.reference import Timing, running_gateway
from gateway_fixtures import MakeGateway, base_config

KEY, KEY_ENV = "gp-vip-0001", "GP_FINDINGS_TEST_KEY"
NO_PERMISSION_KEY, NO_PERMISSION_ENV = "gp-nomodel-0001", "GP_FINDINGS_TEST_NOPERM"
CURL = shutil.which("curl") or "/usr/bin/curl"
FAULTS = ("error-wrong-type", "stream-drop-terminator", "response-missing-model",
          "ignore-model-permissions", "accept-any-key", "stream-named-chunks")


def _finding(**changes: object) -> Finding:
    base = Finding("stream.order", "/v1/messages", Severity.HIGH, "x", "y", "ev", "case a")
    return Finding(**{**{f: getattr(base, f) for f in Finding.__slots__}, **changes})


def test_json_round_trip_keeps_every_field_and_reads_older_files() -> None:
    finding = _finding(pointer="/error/type", repro="curl -X GET http://127.0.0.1:1/",
                       count=3)
    data = finding.as_json()
    assert {data["pointer"], data["repro"], data["count"]} == {
        "/error/type", "curl -X GET http://127.0.0.1:1/", 3}
    assert Finding.from_json(data) == finding
    older = {k: v for k, v in data.items() if k not in ("pointer", "repro", "count")}
    assert Finding.from_json(older) == _finding()


def test_identical_findings_of_one_case_collapse_into_one_with_a_count() -> None:
    first, again = _finding(evidence="first"), _finding(evidence="second")
    other_case, other_field = _finding(case="case b"), _finding(pointer="/usage")
    merged = collapse([first, other_case, again, other_field, again])
    assert merged == [_finding(evidence="first", count=3), other_case, other_field]


def test_a_finding_without_evidence_gets_the_exchanges_last_events() -> None:
    events = [Event("message", f'{{"n": {i}, "key": "{KEY}"}}', "", 0) for i in range(6)]
    exchange = Exchange("/v1/chat/completions", "POST", {}, 200,
                        {"content-type": "text/event-stream"}, b"...", events)
    redactor = Redactor([KEY])
    text = evidence_of(exchange, redactor)
    assert text.startswith("HTTP 200 text/event-stream") and "3 earlier events" in text
    assert '"n": 5' in text and '"n": 2' not in text and KEY not in text
    broken = Exchange("/v1/models", "GET", None, None, transport_error="reset by peer")
    assert evidence_of(broken, redactor) == "no answer: reset by peer"
    empty = Exchange("/v1/models", "GET", None, 502, {"content-type": "text/html"})
    assert evidence_of(empty, redactor) == "HTTP 502 text/html (empty body)"


def test_run_checks_fills_only_missing_evidence() -> None:
    import gateprobe.protocols.conformance  # noqa: F401  (registers the built-in checks)
    from gateprobe.core import checks

    exchange = Exchange("/v1/chat/completions", "POST", {"stream": True}, 200,
                        {"content-type": "text/event-stream"}, b"data: {}\n\n",
                        [Event("message", '{"id": "x"}', "", 0)])
    ctx = Context("openai", "ohmygpt", expect=checks.Expectation(stream_body={}))
    found = run_checks(ctx, exchange, checks.select(["stream.grammar"]))
    assert found and all(f.evidence for f in found)
    assert any(f.check_id == "stream.terminator" and '{"id": "x"}' in f.evidence for f in found)


@pytest.mark.parametrize("text", ['plain', 'with "quotes" and $HOME and `ls` and \\ and \'',
                                  "key in the middle: KEY123456xyz and after"])
def test_a_repro_word_reads_back_as_sent_with_the_key_from_its_variable(text: str) -> None:
    key = "KEY123456"
    sent = f"{text} {key}"
    command = curl_of("POST", "http://127.0.0.1:1/x", {"h": sent}, None, streaming=False,
                      key=key, variable="MY_KEY", redactor=Redactor([key]))
    assert key not in command and "$MY_KEY" in command
    word = command.split(" -H ", 1)[1]
    echoed = subprocess.run(["bash", "-c", f"printf '%s' {word}"], capture_output=True,
                            text=True, env={"MY_KEY": key, "HOME": "/nowhere"}, check=True)
    assert echoed.stdout == f"h: {sent}"


def test_failure_messages_carry_every_field() -> None:
    text = describe([_finding(pointer="/model", repro="curl -sS http://127.0.0.1:1/",
                              count=4, evidence="line 1\nline 2")])
    assert "[stream.order] /v1/messages (x4): expected x; got y" in text
    for part in ("case: case a", "pointer: /model", "evidence: line 1\n      line 2",
                 "repro: curl -sS http://127.0.0.1:1/"):
        assert part in text


@pytest.fixture(scope="module")
def faulty_run(tmp_path_factory: pytest.TempPathFactory,
               ) -> Iterator[tuple[Target, list[Finding]]]:
    """One conformance run against a gateway with several faults (module scope: it is
    judged by several tests, and the replays need it still running)."""
    with running_gateway(base_config(faults=FAULTS, timing=Timing(0, 0))) as gateway:
        target = Target(gateway.base_url, "ohmygpt", KEY, KEY_ENV,
                        no_permission_key=NO_PERMISSION_KEY,
                        no_permission_key_env=NO_PERMISSION_ENV,
                        auth_styles=frozenset({"bearer"}))
        result = run_conformance(target, ConformanceOptions(
            select="endpoint or stream or errors or auth or golden",
            report_dir=tmp_path_factory.mktemp("faulty")))
        assert result.exit_code == 1
        yield target, result.findings


def _of(findings: list[Finding], check_id: str, case: str = "") -> Finding:
    return next(f for f in findings if f.check_id == check_id and case in f.case)


@pytest.mark.slow
def test_every_finding_names_its_case_and_shows_redacted_evidence_and_a_repro(
        faulty_run: tuple[Target, list[Finding]]) -> None:
    _, findings = faulty_run
    assert findings
    for f in findings:
        assert f.case and f.evidence and f.count >= 1, f
        assert f.repro.startswith("curl -sS -i ") and KEY not in f.repro, f
        assert "[Filtered]" not in f.repro and NO_PERMISSION_KEY not in f.repro, f
        assert KEY not in f.evidence, f
    assert len({f.identity for f in findings}) == len(findings)
    assert any(f.count > 1 for f in findings if f.check_id == "stream.event_name")


@pytest.mark.slow
def test_a_field_at_fault_is_named_by_its_json_pointer(
        faulty_run: tuple[Target, list[Finding]]) -> None:
    _, findings = faulty_run
    assert _of(findings, "error.type").pointer == "/error/type"
    assert _of(findings, "response.schema", "/v1/chat/completions chat").pointer == "/model"
    assert _of(findings, "stream.terminator").pointer == ""
    assert _of(findings, "golden.match", "/v1/chat/completions").pointer == "/model"


def _replay(repro: str) -> tuple[int, str]:
    """Run a repro as a person would (its variables set), return the status and the body."""
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), KEY_ENV: KEY,
           NO_PERMISSION_ENV: NO_PERMISSION_KEY}
    command = repro.replace("curl ", f"{CURL} ", 1) + " -o - -w '\\n%{http_code}'"
    out = subprocess.run(["bash", "-c", command], capture_output=True, text=True, env=env,
                         timeout=60, check=True).stdout
    body, _, status = out.rpartition("\n")
    return int(status), body


@pytest.mark.slow
@pytest.mark.skipif(not Path(CURL).exists(), reason="curl is not installed")
@pytest.mark.parametrize(("check_id", "case"), [
    ("error.type", ""),  # a 400 with the wrong type
    ("stream.terminator", "/v1/chat/completions chat"),  # a stream, -N
    ("auth.permission", ""),  # the no-permission key, from its own variable
    ("auth.rejected", "bad key"),  # a deliberately wrong key, written as it is
])
def test_a_repro_run_with_curl_gets_the_same_answer(
        faulty_run: tuple[Target, list[Finding]], check_id: str, case: str) -> None:
    target, findings = faulty_run
    finding = _of(findings, check_id, case)
    expected_status = int(finding.evidence.split()[1]) if finding.evidence.startswith(
        "HTTP ") else None
    status, body = _replay(finding.repro)
    if expected_status is not None:
        assert status == expected_status
    if check_id == "error.type":
        assert status == 400 and '"api_error"' in body
    elif check_id == "stream.terminator":
        assert " -N " in finding.repro and status == 200
        assert "data:" in body and "[DONE]" not in body
    elif check_id == "auth.permission":
        assert f"${NO_PERMISSION_ENV}" in finding.repro and status == 200
    else:
        assert "gp-invalid-key" in finding.repro and status == 200


def test_the_repro_of_a_case_is_what_the_probe_sends() -> None:
    target = Target("http://127.0.0.1:1", "anthropic", KEY, KEY_ENV, max_tokens=8)
    case = Case("m", "endpoint", "POST", "/v1/messages", "anthropic",
                {"model": "claude", "max_tokens": 100, "stream": True,
                 "messages": [{"role": "user", "content": "it's"}]})
    repro = curl_command(target, case)
    assert repro.startswith("curl -sS -i -N -X POST http://127.0.0.1:1/v1/messages ")
    assert f'-H "x-api-key: ${KEY_ENV}"' in repro
    assert "-H 'anthropic-version: 2023-06-01'" in repro
    assert '"max_tokens": 8' in repro and "it'\"'\"'s" in repro


@pytest.mark.slow
def test_sdk_findings_name_their_call_and_replay_what_the_sdk_sent(
        make_gateway: MakeGateway, tmp_path: Path) -> None:
    pytest.importorskip("openai")
    pytest.importorskip("anthropic")
    gateway = make_gateway(faults=("flaky-500",), timing=Timing(0, 0))
    target = Target(gateway.base_url, "ohmygpt", KEY, KEY_ENV)
    result = run_conformance(target, ConformanceOptions(select="sdk", report_dir=tmp_path))
    assert result.exit_code == 1 and result.findings
    for f in result.findings:
        assert f.case.split(" SDK: ")[0] in ("openai", "anthropic") and f.evidence, f
    replayable = [f for f in result.findings if f.repro]
    assert replayable, result.findings
    for f in replayable:
        assert f.repro.startswith("curl -sS -i ") and f"${KEY_ENV}" in f.repro
        assert KEY not in f.repro and "HTTP 500" in f.evidence
    results = [json.loads(p.read_text()) for p in (tmp_path / "allure-results").glob(
        "*-result.json")]
    attached = [[a["name"] for a in r["attachments"]] for r in results if r["status"] == "failed"]
    assert attached and all(names == ["request", "answer", "findings"] for names in attached)


def test_a_golden_mismatch_points_at_the_first_field_that_differs() -> None:
    from gateprobe.protocols.conformance import first_difference, json_pointer

    golden = {"choices": [{"message": {"role": "assistant"}, "finish_reason": "stop"}],
              "model": "<model>"}
    extra_keys = {"choices": [{"message": {"role": "assistant", "x": 1},
                               "finish_reason": "length"}], "model": "<model>", "y": 2}
    assert json_pointer(first_difference(golden, extra_keys)) == "/choices/0/finish_reason"
    assert json_pointer(first_difference(golden, {"choices": []})) == "/choices"
    assert json_pointer(first_difference(golden, {"choices": golden["choices"]})) == "/model"
    assert json_pointer(["a/b", "c~d", 0]) == "/a~1b/c~0d/0"


@pytest.mark.slow
def test_a_stream_finding_points_into_the_event_it_quotes(make_gateway: MakeGateway,
                                                           tmp_path: Path) -> None:
    faults = ("stream-usage-mismatch", "stream-wrong-object", "stream-id-changes",
              "stream-block-index-gap")
    gateway = make_gateway(faults=faults, timing=Timing(0, 0))
    target = Target(gateway.base_url, "ohmygpt", KEY, KEY_ENV)
    result = run_conformance(target, ConformanceOptions(select="stream", report_dir=tmp_path))
    pointers = {(f.check_id, f.endpoint, f.pointer) for f in result.findings}
    for expected in [("stream.usage", "/v1/chat/completions", "/usage/total_tokens"),
                     ("stream.usage", "/v1/messages", "/usage/output_tokens"),
                     ("stream.schema", "/v1/chat/completions", "/object"),
                     ("stream.consistency", "/v1/chat/completions", "/id"),
                     ("stream.block_index", "/v1/messages", "/index")]:
        assert expected in pointers, sorted(pointers)
    for f in result.findings:
        if f.pointer:  # the field it names is in the event it quotes
            assert f'"{f.pointer.rsplit("/", 1)[1]}"' in f.evidence, f


def test_a_form_or_multipart_repro_sends_each_field_as_curl_would() -> None:
    target = Target("http://127.0.0.1:9", "ohmygpt", "gp-vip-0001", "GP_KEY")
    form = Case("form", "endpoint", "POST", "/v1/images/generations", "openai",
                {"prompt": "a red fox", "n": 1}, encoding="form")
    command = curl_command(target, form)
    assert "--data-urlencode 'prompt=a red fox' --data-urlencode n=1" in command
    assert '"Authorization: Bearer $GP_KEY"' in command.replace("authorization", "Authorization")
    upload = Case("edit", "endpoint", "POST", "/v1/images/edits", "openai",
                  {"prompt": "x", "image": b"\x89PNG"}, encoding="multipart")
    assert "-F prompt=x -F image=@image.png" in curl_command(target, upload)
