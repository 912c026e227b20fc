"""``--dry-run`` on every command: it says what would be sent, and sends nothing."""

from __future__ import annotations

import io
import json
import re
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from gateprobe.cli import main
from gateprobe.commands.conformance_runner import ConformanceOptions, run_conformance
from gateprobe.core.console import Console
from gateprobe.core.targets import Target
from gateprobe.reference import Timing
from gateway_fixtures import MakeGateway


@pytest.fixture
def listener() -> Iterator[tuple[socket.socket, str]]:
    """A port that counts connections: anything sent would have to connect here first."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(16)
    sock.setblocking(False)
    yield sock, f"http://127.0.0.1:{sock.getsockname()[1]}"
    sock.close()


def nothing_connected(sock: socket.socket) -> bool:
    try:
        sock.accept()
    except BlockingIOError:
        return True
    return False


def gateprobe(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = main(list(argv), Console(out, err))
    return code, out.getvalue(), err.getvalue()


@pytest.mark.parametrize("argv", [
    ["conformance", "--base-url", "{url}"],
    ["load", "latency", "--base-url", "{url}"],
    ["load", "rate-limits", "--base-url", "{url}", "--tier-key", "free=GP_NONE",
     "--limit", "free=12"],
    ["compare", "--base-url", "{url}", "--base-url", "{url}/mirror"],
    ["run", "--base-url", "{url}"],
])
def test_dry_run_sends_nothing(listener: tuple[socket.socket, str], argv: list[str],
                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("GATEPROBE_API_KEY", raising=False)  # not needed to say what is sent
    sock, url = listener
    code, out, err = gateprobe(*(a.format(url=url) for a in argv), "--dry-run")
    assert code == 0, out + err
    assert "nothing was sent" in out and "max tokens" in out or "tokens" in out
    assert nothing_connected(sock)


def test_gate_dry_run(tmp_path: Path) -> None:
    gate = tmp_path / "gate.yaml"
    gate.write_text("embedded: true\nsuites: [conformance, latency]\n")
    code, out, _ = gateprobe("gate", "--config", str(gate), "--dry-run")
    assert code == 0 and out.count("nothing was sent") == 2
    assert not (tmp_path / "reports").exists()


def test_conformance_dry_run_counts_cases_and_tokens() -> None:
    code, out, _ = gateprobe("conformance", "--dry-run", "--fuzz-max-requests", "50")
    assert code == 0
    # 110 model-route cases (28 goldens; 4 of tool_choice required with a prompt needing no
    # tool), 20 of the gateway's own APIs, 51 of the media families, 9 goldens included
    # (dall-e-2: no output_format case), and 29 of the Responses API, Conversations and
    # stored chat completions, 7 goldens included (the embedded gateway serves them all), and
    # 10 of the Azure route (chat's 5 plain and 5 streamed cases, sent to the copy)
    assert "cases: 220 requests" in out and "at most 50 requests" in out


@pytest.mark.parametrize("command", ["conformance", "run"])
def test_a_dry_run_names_the_fuzz_phases_a_run_would_use(
        command: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("GATEPROBE_FUZZ_PHASES")  # the suite's quick fuzz: users get every phase
    _, out, _ = gateprobe(command, "--dry-run")
    assert "(phases: examples, coverage, fuzzing)" in out  # loopback: every one
    _, out, _ = gateprobe(command, "--dry-run", "--fuzz-phases", "fuzzing")
    assert "(phases: fuzzing)" in out
    monkeypatch.setenv("GATEPROBE_FUZZ_PHASES", "examples")
    _, out, _ = gateprobe(command, "--dry-run")
    assert "(phases: examples)" in out


@pytest.mark.slow
def test_conformance_dry_run_counts_only_the_selection() -> None:
    code, out, _ = gateprobe("conformance", "--dry-run", "--select", "endpoint")
    assert code == 0
    assert "sdk:" not in out and "fuzz:" not in out
    cases = int(out.split("cases: ", 1)[1].split(" requests", 1)[0])
    code, everything, _ = gateprobe("conformance", "--dry-run")
    assert 0 < cases < int(everything.split("cases: ", 1)[1].split(" requests", 1)[0])
    code, out, _ = gateprobe("conformance", "--dry-run", "--select", "sdk or fuzz")
    assert "cases: 0 requests" in out and "sdk:" in out and "fuzz:" in out


@pytest.mark.slow
def test_dry_run_bounds_hold_what_the_real_runs_ask(make_gateway: MakeGateway, tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """What a dry run says is the most a run asks for is at least what it then asks for."""
    monkeypatch.setenv("GATEPROBE_API_KEY", "gp-vip-0001")
    gateway = make_gateway(timing=Timing(ttft_ms=1, itl_ms=0))
    select = "endpoint or stream or errors or auth or legacy_prompt or golden"
    code, out, _ = gateprobe("conformance", "--base-url", gateway.base_url, "--dry-run",
                             "--select", select)
    bound = int(re.findall(r"at most (\d+) generated tokens in all", out)[0])
    target = Target(gateway.base_url, "ohmygpt", "gp-vip-0001")
    result = run_conformance(target, ConformanceOptions(select=select),
                             Console(io.StringIO(), io.StringIO()))
    assert 0 < result.tokens_asked <= bound
    # compare: the long request, sized from a very fast mirror's rate, stays within its bound
    code, out, _ = gateprobe("compare", "--base-url", gateway.base_url, "--base-url",
                             gateway.base_url.replace("127.0.0.1", "localhost"), "--dry-run")
    long_bound = int(re.findall(r"at most (\d+) tokens", out)[0])
    code, out, err = gateprobe("compare", "--base-url", gateway.base_url, "--base-url",
                               gateway.base_url.replace("127.0.0.1", "localhost"),
                               "--samples", "2", "--long-request-s", "0.5",
                               "--report-dir", str(tmp_path))
    mirrors = json.loads((tmp_path / "summary.json").read_text())["compare"]["mirrors"]
    asked = [m["long_request"]["asked_tokens"] + 64 for m in mirrors]
    assert asked and max(asked) <= long_bound, (asked, long_bound)


def test_propagation_dry_run_counts_its_requests_and_starts_nothing(
        listener: tuple[socket.socket, str], tmp_path: Path) -> None:
    sock, url = listener
    port = url.rsplit(":", 1)[1]
    targets = tmp_path / "targets.yaml"
    targets.write_text(f"targets:\n  gw:\n    base_url: {url}\n    profile: openai\n"
                       f"    api_key_env: GP_NONE\n    upstream: {{listen: 127.0.0.1:{port}}}\n")
    code, out, err = gateprobe("conformance", "--target", "gw", "--targets", str(targets),
                               "--select", "propagation", "--dry-run")
    assert code == 0, err
    assert f"propagation: 9 cases, at most 17 requests through the gateway to " \
           f"http://127.0.0.1:{port}" in out
    assert nothing_connected(sock)
