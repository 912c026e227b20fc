"""The gateprobe command: exit codes, one-line errors, serve as a real process, run."""

from __future__ import annotations

import io
import json
import os
import re
import signal
import ssl
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from gateprobe.cli import main
from gateprobe.core.console import Console
from gateway_fixtures import MakeGateway, TlsFiles


def run_cli(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = main(list(argv), Console(out, err))
    return code, out.getvalue(), err.getvalue()


def assert_one_line_error(err: str, fragment: str) -> None:
    assert err.count("\n") == 1, err
    assert err.startswith("gateprobe: ")
    assert fragment in err
    assert "Traceback" not in err


@pytest.mark.parametrize(
    ("argv", "fragment"),
    [
        ((), "a command is required (gateprobe --help lists them)"),
        (("serve", "--ttft-ms", "-1"), "--ttft-ms must be >= 0"),
        (("serve", "--rate-window-s", "0"), "--rate-window-s must be > 0"),
        (("serve", "--port", "70000"), "--port must be between 0 and 65535"),
        (("serve", "--profile", "azure"), "--profile: unknown 'azure'; one of "),
        (("serve", "--keys", "/nonexistent/keys.yaml"), "cannot read keys file"),
        (("serve", "--bogus"), "unrecognized arguments: --bogus"),
        (("serve", "--tls-cert", "c.pem"), "--tls-cert and --tls-key go together"),
        (("serve", "--tls-cert", "/nonexistent/c.pem", "--tls-key", "/nonexistent/k.pem"),
         "cannot use TLS certificate /nonexistent/c.pem with key /nonexistent/k.pem"),
        (("run", "--base-url", "ftp://x"), "environment variable GATEPROBE_API_KEY is not set"),
    ],
)
def test_usage_and_config_errors_exit_2_with_one_line(
    argv: tuple[str, ...], fragment: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("GATEPROBE_API_KEY", raising=False)
    code, out, err = run_cli(*argv)
    assert code == 2
    assert_one_line_error(err, fragment)


def test_bad_keys_file_names_the_problem(tmp_path: Path) -> None:
    keys = tmp_path / "keys.yaml"
    keys.write_text("tiers: {free: {limits: {}}}\nkeys: {k: {tier: gold}}\n")
    code, _, err = run_cli("serve", "--keys", str(keys))
    assert code == 2
    assert_one_line_error(err, "keys.k.tier: unknown tier 'gold'")


def test_run_against_a_non_http_url_is_a_usage_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GP_TEST_KEY", "gp-vip-0001")
    code, _, err = run_cli("run", "--base-url", "ftp://example", "--api-key-env", "GP_TEST_KEY")
    assert code == 2
    assert_one_line_error(err, "--base-url must be an http(s) URL")


def test_run_against_an_unreachable_target_exits_3(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GP_TEST_KEY", "gp-vip-0001")
    code, _, err = run_cli("run", "--base-url", "http://127.0.0.1:9", "--api-key-env",
                           "GP_TEST_KEY")
    assert code == 3
    assert_one_line_error(err, "cannot connect to http://127.0.0.1:9")


def test_run_smoke_embedded_passes_every_probe() -> None:
    code, out, err = run_cli("run", "--smoke")
    assert code == 0, out + err
    assert "embedded reference gateway" in out
    passed = re.search(r"^(\d+) passed, 0 failed$", out, re.MULTILINE)
    assert passed, out
    rows = [line for line in out.splitlines() if line.rstrip().endswith(" ok")]
    # every core probe, and one per opt-in route the embedded gateway declares
    assert int(passed.group(1)) == len(rows) >= 23, out
    assert "FAIL" not in out


def test_run_against_a_gateway_missing_routes_fails_and_names_them(
    make_gateway: MakeGateway, monkeypatch: pytest.MonkeyPatch
) -> None:
    gw = make_gateway(profile="openai")  # serves no Anthropic routes
    monkeypatch.setenv("GP_TEST_KEY", "gp-vip-0001")
    code, out, _ = run_cli("run", "--smoke", "--base-url", gw.base_url, "--api-key-env",
                           "GP_TEST_KEY", "--json")
    assert code == 1
    results = {r["case"]: r for r in json.loads(out)}
    assert results["stream: chat"]["problem"] is None
    for case in ("endpoint: complete", "stream: messages", "endpoint: count_tokens"):
        assert results[case]["status"] == 404
        assert "response.status" in results[case]["findings"]
        assert "expected a 2xx status" in results[case]["problem"]
    assert "gp-vip-0001" not in out


def test_version() -> None:
    with pytest.raises(SystemExit) as info:
        main(["--version"])
    assert info.value.code == 0


@pytest.mark.slow
def test_serve_as_a_process_on_a_free_port() -> None:
    """`gateprobe serve --port 0` announces its URL, answers, and stops on SIGINT."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    with subprocess.Popen(
        [sys.executable, "-c", "from gateprobe.cli import entrypoint; entrypoint()", "serve",
         "--port", "0", "--profile", "anthropic", "--ttft-ms", "0", "--itl-ms", "0"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
    ) as proc:
        _exercise_and_stop(proc)
    assert proc.returncode == 0


@pytest.mark.slow
def test_serve_https_as_a_process(tls: TlsFiles) -> None:
    """`gateprobe serve --tls-cert --tls-key`: the same gateway over HTTPS, for runners that
    must be tried against TLS the way real gateways speak it."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    with subprocess.Popen(
        [sys.executable, "-c", "from gateprobe.cli import entrypoint; entrypoint()", "serve",
         "--port", "0", "--profile", "anthropic", "--ttft-ms", "0", "--itl-ms", "0",
         "--tls-cert", str(tls[0].cert), "--tls-key", str(tls[0].key)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
    ) as proc:
        _exercise_and_stop(proc, verify=str(tls[1]))
    assert proc.returncode == 0


def _exercise_and_stop(proc: subprocess.Popen[str], verify: str | bool = True) -> None:
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        scheme = "https" if isinstance(verify, str) else "http"
        assert f"listening on {scheme}://127.0.0.1:" in line, line
        url = line.rsplit(" ", 1)[1].strip()
        verify_ = ssl.create_default_context(cafile=verify) if isinstance(verify, str) else True
        health = httpx.get(url + "/_gateprobe/health", timeout=10, verify=verify_).json()
        assert health["profile"] == "anthropic"
        r = httpx.post(url + "/v1/messages", timeout=10, verify=verify_, json={
            "model": "claude-2", "max_tokens": 3, "messages": [{"role": "user", "content": "x"}]},
            headers={"x-api-key": "gp-premium-0001", "anthropic-version": "2023-06-01"})
        assert r.status_code == 200
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=15)


def test_list_faults_is_a_table_of_kind_name_and_what_it_breaks_in_100_columns() -> None:
    from gateprobe.reference.faults import CATALOGUE

    code, out, _ = run_cli("serve", "--list-faults")
    assert code == 0
    lines = out.splitlines()
    assert lines[0].split() == ["kind", "fault", "what", "it", "breaks"]
    assert max(map(len, lines)) <= 100, max(lines, key=len)
    starts = {line.split()[1]: line.split()[0] for line in lines[2:] if not line[0].isspace()}
    assert list(starts) == list(CATALOGUE)  # one row per fault, in the catalogue's order
    flat = " ".join(out.split())
    for fault in CATALOGUE.values():
        assert starts[fault.name] == fault.proven_by
        assert " ".join(fault.description.split()) in flat
        assert f"trips {', '.join(fault.trips)};" in flat


def test_list_faults_json_is_the_catalogue_for_machines() -> None:
    from gateprobe.reference.faults import CATALOGUE

    code, out, _ = run_cli("serve", "--list-faults", "--json")
    assert code == 0
    listed = json.loads(out)
    assert [f["name"] for f in listed] == list(CATALOGUE)
    for entry, fault in zip(listed, CATALOGUE.values(), strict=True):
        assert entry == {"name": fault.name, "kind": fault.proven_by,
                         "description": fault.description,
                         "endpoints": sorted(fault.endpoints), "trips": list(fault.trips)}


def test_json_without_list_faults_is_a_usage_error() -> None:
    code, _, err = run_cli("serve", "--json")
    assert code == 2
    assert_one_line_error(err, "--json goes with --list-faults")


@pytest.mark.slow
@pytest.mark.parametrize("argv", [["serve", "--list-faults"], ["serve", "--list-faults", "--json"],
                                  ["--version"], ["serve", "--help"]])
def test_a_closed_pipe_ends_the_listing_quietly(argv: list[str]) -> None:
    """``gateprobe serve --list-faults | head``: the reader is gone before anything is written
    (its end is closed at once), so every write meets a broken pipe: no traceback, no Python
    "Exception ignored" at exit, the code shells give a process a pipe stopped (or 0 where
    argparse had already given up writing its help)."""
    with subprocess.Popen([sys.executable, "-m", "gateprobe", *argv], stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE) as proc:
        assert proc.stdout is not None and proc.stderr is not None
        proc.stdout.close()
        err = proc.stderr.read()
        assert proc.wait(timeout=60) in (0, 141)
    assert err == b""


def test_unknown_fault_is_a_config_error_with_a_suggestion() -> None:
    code, _, err = run_cli("serve", "--fault", "stream-bad-jsn")
    assert code == 2
    assert_one_line_error(err, "unknown fault 'stream-bad-jsn' (did you mean 'stream-bad-json'?)")


def test_a_mistyped_command_gets_one_line_and_a_suggestion() -> None:
    out, err = io.StringIO(), io.StringIO()
    assert main(["confromance"], Console(out, err)) == 2
    assert err.getvalue() == ("gateprobe: unknown command 'confromance' (did you mean "
                              "'conformance'?); commands: serve, conformance, load, compare, "
                              "gate, run, discover\n")
    err = io.StringIO()
    assert main(["load", "latency", "--users", "x"], Console(out, err)) == 2
    assert err.getvalue().startswith("gateprobe: load: argument --users")
