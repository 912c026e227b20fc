"""`gateprobe conformance` end to end, as a user runs it (a separate process)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from gateprobe.reference import Timing
from gateway_fixtures import MakeGateway, TlsFiles


def conformance(*args: str, key: str | None = "gp-vip-0001",
                tmp: Path | None = None, ca: Path | None = None,
                ) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("GATEPROBE_API_KEY", "SSL_CERT_FILE")}
    if key:
        env["GATEPROBE_API_KEY"] = key
    if ca:
        env["SSL_CERT_FILE"] = str(ca)
    return subprocess.run([sys.executable, "-m", "gateprobe", "conformance", *args],
                          capture_output=True, text=True, env=env, timeout=300,
                          cwd=tmp)


def log_of(result: subprocess.CompletedProcess[str]) -> str:
    """pytest's own output of a run: the file its first line names."""
    found = re.search(r"pytest's output in (\S+)", result.stdout)
    assert found, result.stdout[-2000:]
    return Path(found.group(1)).read_text()


@pytest.mark.slow
def test_embedded_reference_gateway_passes(tmp_path: Path) -> None:
    result = conformance("--report-dir", str(tmp_path / "report"), "--max-examples", "5",
                         key=None)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    assert " passed" in result.stdout and "failed" not in result.stdout
    assert "warning" not in result.stdout
    # A clean run reads in a few lines; pytest's report is in the run folder. (The live
    # progress lines, one every 10 s or more, depend on the machine's speed: not counted.)
    said = [line for line in result.stdout.splitlines()
            if not re.match(r"  [\w ]+:  \d+/\d+ tests", line)]
    assert len(said) <= 8, result.stdout
    assert "PASS: " in result.stdout and "; 0 findings" in result.stdout
    assert "findings per endpoint" in (tmp_path / "report" / "pytest.log").read_text()
    junit = (tmp_path / "report" / "junit.xml").read_text()
    assert 'failures="0"' in junit and "test_legacy_prompt" in junit
    assert any((tmp_path / "report" / "allure-results").iterdir())
    # The fuzz category ran and passed, the Anthropic routes fuzzed as well
    fuzzed = {json.loads(line)["path"] for line in
              (tmp_path / "report" / "fuzz-cases.jsonl").read_text().splitlines()}
    assert {"/v1/messages", "/v1/chat/completions"} <= fuzzed, sorted(fuzzed)


@pytest.mark.slow
def test_a_faulty_gateway_fails_naming_the_check(make_gateway: MakeGateway) -> None:
    gw = make_gateway(faults=("error-plain-text", "stream-drop-terminator"),
                      timing=Timing(0, 0))
    result = conformance("--base-url", gw.base_url, "--select", "errors or stream")
    assert result.returncode == 1
    assert "  error.envelope  x" in result.stdout
    assert "  stream.terminator  x" in result.stdout
    assert "[stream.terminator]" in log_of(result)  # pytest's failure messages, in its log
    assert "gp-vip-0001" not in result.stdout + result.stderr + log_of(result)


@pytest.mark.slow
def test_select_runs_only_that_category(make_gateway: MakeGateway) -> None:
    gw = make_gateway(timing=Timing(0, 0))
    result = conformance("--base-url", gw.base_url, "--select", "legacy_prompt", "-v")
    assert result.returncode == 0, result.stdout[-2000:]
    assert "test_legacy_prompt" in result.stdout and "test_stream" not in result.stdout
    assert "/v1/complete                    32 cases" in result.stdout


@pytest.mark.slow
def test_user_errors_exit_2_or_3_with_one_line(make_gateway: MakeGateway) -> None:
    unreachable = conformance("--base-url", "http://127.0.0.1:9")
    assert unreachable.returncode == 3
    assert unreachable.stderr.strip().startswith("gateprobe: cannot connect")
    gw = make_gateway()
    no_key = conformance("--base-url", gw.base_url, key=None)
    assert no_key.returncode == 2
    assert no_key.stderr.strip() == ("gateprobe: environment variable GATEPROBE_API_KEY is not "
                                     "set: it must hold the target's API key")
    unknown = conformance("--base-url", gw.base_url, "--select", "stream or streams")
    assert unknown.returncode == 2
    assert unknown.stderr.count("\n") == 1
    assert "unknown category 'streams' (did you mean 'stream'?)" in unknown.stderr
    nothing = conformance("--base-url", gw.base_url, "--select", "stream and auth")
    assert nothing.returncode == 2 and "selects no case for this target" in nothing.stderr
    bad_model = conformance("--base-url", gw.base_url, "--model", "chats=x")
    assert bad_model.returncode == 2 and "--model takes ENDPOINT=NAME" in bad_model.stderr
    phases = conformance("--base-url", gw.base_url, "--fuzz-phases", "examples,deep")
    assert phases.returncode == 2 and phases.stderr.count("\n") == 1, phases.stderr
    assert "deep is not a fuzz phase (choose from examples, coverage, fuzzing" in phases.stderr


@pytest.mark.slow
def test_sdk_category_passes_clean_and_fails_on_a_broken_stream(
    make_gateway: MakeGateway,
) -> None:
    clean = make_gateway(timing=Timing(0, 0))
    result = conformance("--base-url", clean.base_url, "--select", "sdk")
    assert result.returncode == 0, result.stdout[-2000:]
    assert "10 passed" in result.stdout
    broken = make_gateway(timing=Timing(0, 0), faults=("stream-bad-json",))
    result = conformance("--base-url", broken.base_url, "--select", "sdk")
    assert result.returncode == 1
    assert "[sdk.client] /v1/chat/completions" in log_of(result)
    assert "  sdk.client  x" in result.stdout  # counted in the closing findings
    assert "    /v1/chat/completions  x" in result.stdout


@pytest.mark.slow
def test_record_golden_round_trip(tmp_path: Path) -> None:
    """Recording from the reference gateway writes answers the shipped goldens' patterns
    accept (the patterns generalize what a good gateway answers), keeps each case's request,
    pins and preconditions, and the recorded goldens compare clean."""
    import shutil

    import yaml

    from gateprobe.core.golden import golden_dir

    blank = tmp_path / "golden"
    shutil.copytree(golden_dir(), blank)
    for path in blank.glob("*.yaml"):
        doc = yaml.safe_load(path.read_text())
        for case in doc["cases"]:
            case["response"] = None
        path.write_text(yaml.safe_dump(doc, sort_keys=False))
    record = conformance("--select", "golden", "--record-golden", "--golden-dir", str(blank),
                         key=None)
    assert record.returncode == 0, record.stdout[-2000:]
    from gateprobe.core.golden import diff

    for path in blank.glob("*.yaml"):
        shipped = yaml.safe_load((golden_dir() / path.name).read_text())
        recorded = yaml.safe_load(path.read_text())
        for want, got in zip(shipped["cases"], recorded["cases"], strict=True):
            assert {k: v for k, v in got.items() if k != "response"} == \
                {k: v for k, v in want.items() if k != "response"}, (path.name, want["name"])
            assert got["response"] is not None, (path.name, want["name"])
            assert diff(want["response"], got["response"]) == "", (path.name, want["name"])
    compare = conformance("--select", "golden", "--golden-dir", str(blank), key=None)
    assert compare.returncode == 0


@pytest.mark.slow
def test_golden_mismatch_prints_a_diff(make_gateway: MakeGateway) -> None:
    gw = make_gateway(faults=("response-missing-model",), timing=Timing(0, 0))
    result = conformance("--base-url", gw.base_url, "--select", "golden")
    assert result.returncode == 1
    log = log_of(result)
    assert "[golden.match]" in log and "at /model: expected a required field" in log
    assert "golden.match  x" in result.stdout


@pytest.mark.slow
def test_over_tls_every_category_trusts_ssl_cert_file(make_gateway: MakeGateway,
                                                       tls: TlsFiles) -> None:
    """A gateway behind a private CA: trusted once, by ``SSL_CERT_FILE``, in every category
    (httpx, the SDKs and schemathesis's requests alike); refused in one line otherwise."""
    gw = make_gateway(timing=Timing(0, 0), tls=tls[0])
    refused = conformance("--base-url", gw.base_url, "--select", "fuzz")
    assert refused.returncode == 3 and "certificate verify failed" in refused.stderr
    assert len(refused.stderr.strip().splitlines()) == 1
    result = conformance("--base-url", gw.base_url, "--select", "fuzz or sdk or stream",
                         "--max-examples", "3", ca=tls[1])
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    assert "FAILED" not in result.stdout  # no fuzzed operation failed
    assert " passed" in result.stdout and "failed" not in result.stdout


@pytest.mark.deep_fuzz
@pytest.mark.slow
def test_fuzz_stops_at_the_request_cap(make_gateway: MakeGateway) -> None:
    gw = make_gateway(timing=Timing(0, 0))
    capped = conformance("--base-url", gw.base_url, "--select", "fuzz", "--fuzz-max-requests",
                         "3", "-v")
    assert capped.returncode == 0, capped.stdout[-2000:]
    assert "fuzz request cap reached (3)" in capped.stdout


@pytest.mark.slow
def test_target_from_the_targets_file(make_gateway: MakeGateway, tmp_path: Path) -> None:
    gw = make_gateway(timing=Timing(0, 0))
    targets = tmp_path / "targets.yaml"
    targets.write_text(f"targets:\n  here:\n    base_url: {gw.base_url}\n    profile: ohmygpt\n"
                       "    api_key_env: GATEPROBE_API_KEY\n")
    result = conformance("--target", "here", "--targets", str(targets), "--select", "errors")
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr
    assert "15 passed" in result.stdout
    typo = conformance("--target", "hre", "--targets", str(targets))
    assert typo.returncode == 2 and "did you mean 'here'" in typo.stderr


@pytest.mark.deep_fuzz
@pytest.mark.slow
def test_fuzz_fails_on_a_faulty_gateway_and_schemathesis_failures_are_findings_too(
        make_gateway: MakeGateway, tmp_path: Path) -> None:
    """A plain-text error fails gateprobe's own check on fuzzed requests; an undocumented
    Content-Type is schemathesis's finding, not gateprobe's: it reaches the run's findings
    (and so reports and the gate) all the same, once per operation. (A clean gateway's fuzz
    run passes in test_embedded_reference_gateway_passes and test_fuzz_stops_at_the_request_cap.)"""
    faulty = make_gateway(timing=Timing(0, 0), faults=("error-plain-text",))
    bad = conformance("--base-url", faulty.base_url, "--select", "fuzz", "--max-examples",
                      "3", "--report-dir", str(tmp_path))
    assert bad.returncode == 1
    assert "  error.envelope  x" in bad.stdout and "[error.envelope]" in log_of(bad)
    assert "gp-vip-0001" not in bad.stdout
    findings = json.loads((tmp_path / "conformance.json").read_text())["findings"]
    fuzz = [(f["check_id"], f["endpoint"]) for f in findings if f["check_id"].startswith("fuzz.")]
    assert ("fuzz.content_type_conformance", "/v1/chat/completions") in fuzz
    assert len(fuzz) == len(set(fuzz))


@pytest.mark.deep_fuzz
@pytest.mark.slow
def test_fuzz_reaches_every_operation_and_the_stateful_run(tmp_path: Path) -> None:
    """At the default examples the request cap binds: every operation still gets its share,
    and the management category's stateful run (after them, through the same hook) too.
    Before, the first seven operations spent the whole cap and the rest were skipped."""
    result = conformance("--report-dir", str(tmp_path / "report"), "--select",
                         "fuzz or management", key=None)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    assert "skipped" not in result.stdout, result.stdout[-2000:]
    log = log_of(result)
    assert "test_management_stateful PASSED" in log
    assert "test_gateway_post_api_v1_ai_draw_mj_imagine PASSED" in log


@pytest.mark.slow
def test_a_category_whose_extra_is_missing_says_so_with_the_install_command(
        tmp_path: Path) -> None:
    # The SDKs hidden as if not installed: an import fails, find_spec finds nothing.
    hide = tmp_path / "hide"
    hide.mkdir()
    (hide / "sitecustomize.py").write_text(
        "import sys\nsys.modules['openai'] = None\nsys.modules['anthropic'] = None\n")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        [str(hide), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep)}
    result = subprocess.run([sys.executable, "-m", "gateprobe", "conformance", "--select",
                             "sdk or auth", "--report-dir", str(tmp_path / "r")],
                            capture_output=True, text=True, env=env, timeout=300)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    lines = [line for line in result.stdout.splitlines() if line.startswith("sdk: ")]
    assert lines == ["sdk: not run, openai and anthropic not installed "
                     "(pip install 'gateprobe[sdk]')"], result.stdout
    assert not any(line.startswith("fuzz: ") for line in result.stdout.splitlines())


@pytest.mark.deep_fuzz
@pytest.mark.slow
def test_a_fuzz_seed_sends_the_same_cases_again_and_each_run_prints_its_seed(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("GATEPROBE_FUZZ_SEED")  # the suite pins it: this test draws fresh ones

    def fuzz(seed: str | None, name: str, *flags: str) -> list[str]:
        seed_flags = ("--fuzz-seed", seed) if seed else ()
        result = conformance("--select", "fuzz", *seed_flags, *flags, "--fuzz-examples", "5",
                             "--endpoints", "embeddings", "--report-dir", str(tmp_path / name),
                             key=None)
        assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
        said = re.search(r"^fuzz seed (\d+): --fuzz-seed \1 sends the same cases again$",
                         result.stdout, re.MULTILINE)
        assert said and (seed is None or said.group(1) == seed), result.stdout
        cases = (tmp_path / name / "fuzz-cases.jsonl").read_text().splitlines()
        assert cases and all(json.loads(c)["path"] == "/v1/embeddings" for c in cases)
        return cases

    first, again, other = fuzz("7", "a"), fuzz("7", "b"), fuzz("8", "c")
    assert first == again
    assert first != other  # the seed is what decides: another one sends other cases
    assert fuzz(None, "d")  # without one, a fresh seed is chosen and printed
    monkeypatch.setenv("GATEPROBE_FUZZ_SEED", "8")  # a CI job's pinned seed: the same cases
    assert fuzz(None, "e") == other
    monkeypatch.setenv("GATEPROBE_FUZZ_SEED", "eight")
    bad = conformance("--select", "fuzz", "--endpoints", "embeddings", key=None)
    assert bad.returncode == 2 and "GATEPROBE_FUZZ_SEED='eight'" in bad.stderr, bad.stderr
    monkeypatch.setenv("GATEPROBE_FUZZ_SEED", "7")
    # On loopback every phase runs: the coverage phase's other methods (TRACE, QUERY...) too;
    # without it, only the operation's own.
    assert {json.loads(c)["method"] for c in first} > {"POST"}
    quick = fuzz(None, "q", "--fuzz-phases", "fuzzing,examples")
    assert {json.loads(c)["method"] for c in quick} == {"POST"} and len(quick) < len(first)
    monkeypatch.setenv("GATEPROBE_FUZZ_PHASES", "examples,fuzzing")  # a CI job's quick fuzz
    assert fuzz(None, "r") == quick
    monkeypatch.setenv("GATEPROBE_FUZZ_PHASES", "examples,depth")
    bad = conformance("--select", "fuzz", "--endpoints", "embeddings", key=None)
    assert bad.returncode == 2 and "depth is not a fuzz phase" in bad.stderr, bad.stderr


@pytest.mark.slow
def test_a_suite_that_cannot_be_collected_is_said_as_such_not_as_ctrl_c(tmp_path: Path) -> None:
    # schemathesis broken as an incompatible release would break it: test_fuzz.py does not
    # import. pytest reports that as "Interrupted", which once read as a Ctrl-C (exit 130).
    hook = tmp_path / "hook"
    hook.mkdir()
    (hook / "sitecustomize.py").write_text(
        "import schemathesis.openapi\n"
        "def broken(*a, **k):\n    raise TypeError('an incompatible schemathesis')\n"
        "schemathesis.openapi.from_path = broken\n")
    env = {**os.environ, "PYTHONPATH": str(hook), "GATEPROBE_API_KEY": "gp-vip-0001"}
    result = subprocess.run([sys.executable, "-m", "gateprobe", "conformance", "--select",
                             "fuzz"], capture_output=True, text=True, env=env, timeout=300,
                            cwd=tmp_path)
    assert result.returncode == 2, result.stdout[-2000:] + result.stderr[-2000:]
    assert "could not run (pytest exit 2)" in result.stderr + result.stdout
    assert "interrupted" not in (result.stderr + result.stdout).lower().replace(
        "pytest exit", "")
    assert "Traceback" not in result.stderr
    log = log_of(result)
    assert "an incompatible schemathesis" in log  # the error stays in pytest.log
