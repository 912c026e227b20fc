"""``gateprobe load`` end to end: Locust in a subprocess against reference gateways on
loopback, clean and with each load fault of the catalogue; distributed mode; the refusals.

Every run here is short (a 4 s rate window, 3-4 s latency runs) and capped in requests.
"""

from __future__ import annotations

import io
import json
import os
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from gateprobe.cli import main
from gateprobe.core import arrival
from gateprobe.core.console import Console
from gateprobe.reference import Timing
from gateprobe.reference.faults import CATALOGUE
from gateway_fixtures import MakeGateway, TlsFiles

LOAD_FAULTS = [n for n, f in CATALOGUE.items() if f.proven_by == "load"]
RATE_FAULTS = [n for n in LOAD_FAULTS if any(t.startswith("ratelimit.")
                                             for t in CATALOGUE[n].trips)]
LATENCY_FAULTS = [n for n in LOAD_FAULTS if any(t.startswith("slo.") for t in CATALOGUE[n].trips)]
WINDOW_S = 4
TIERS = {"free": ("GP_TEST_FREE", "gp-free-0001", 12), "vip": ("GP_TEST_VIP", "gp-vip-0001", 60),
         "premium": ("GP_TEST_PREMIUM", "gp-premium-0001", 90)}
TIGHT_SLO = """\
ttft_p95_ms: 150
itl_p99_ms: 150
tpot_p95_ms: 30
e2e_p95_ms: 500
tokens_per_s_p50_min: 100
error_rate_max: 0
stream_findings_max: 0
"""


@pytest.fixture(autouse=True)
def keys(monkeypatch: pytest.MonkeyPatch) -> None:
    for variable, key, _ in TIERS.values():
        monkeypatch.setenv(variable, key)
    monkeypatch.setenv("GP_TEST_KEY", "gp-vip-0001")


def gateprobe(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = main(list(argv), Console(out, err))
    return code, out.getvalue(), err.getvalue()


def verdict(report: Path) -> dict[str, Any]:
    result: dict[str, Any] = json.loads((report / "verdict.json").read_text())
    return result


def rate_limits(base_url: str, report: Path, *extra: str) -> tuple[int, str, str]:
    args = ["load", "rate-limits", "--base-url", base_url, "--window-s", str(WINDOW_S),
            "--rate-algorithm", "sliding_window",
            "--report-dir", str(report)]
    for tier, (variable, _, limit) in TIERS.items():
        args += ["--tier-key", f"{tier}={variable}", "--limit", f"{tier}={limit}"]
    return gateprobe(*args, *extra)


def latency(base_url: str, report: Path, slo: Path, *extra: str) -> tuple[int, str, str]:
    return gateprobe("load", "latency", "--base-url", base_url, "--api-key-env", "GP_TEST_KEY",
                     "--duration", "3", "--users", "4", "--max-tokens", "24",
                     "--slo", str(slo), "--report-dir", str(report), *extra)


@pytest.fixture
def tight_slo(tmp_path: Path) -> Path:
    path = tmp_path / "slo.yaml"
    path.write_text(TIGHT_SLO)
    return path


@pytest.mark.slow
def test_rate_limits_pass_on_the_clean_gateway(make_gateway: MakeGateway,
                                               tmp_path: Path) -> None:
    gateway = make_gateway(rate_window_s=WINDOW_S)
    code, out, err = rate_limits(gateway.base_url, tmp_path)
    assert code == 0, out + err
    result = verdict(tmp_path)["rate_limits"]
    for row in result["tiers"]:
        assert row["accepted"] == row["limit"] and row["rejected"] > 0 and row["recovered"]
    assert {r["tier"] for r in result["timeline"]} == set(TIERS)
    assert "PASS" in out and "timeline" in out
    for artifact in ("samples.jsonl", "locust_stats.csv", "locust.html", "plan.json"):
        assert (tmp_path / artifact).exists(), artifact


@pytest.mark.slow
def test_a_token_bucket_passes_unless_declared_a_sliding_window(make_gateway: MakeGateway,
                                                                tmp_path: Path) -> None:
    """A continuous-refill limiter with right headers and Retry-After is a correct limiter:
    undeclared (unknown) or declared a token bucket it passes; declared a sliding window,
    what it accepts over the burst is more than the limit."""
    window = 20  # a bucket answers Retry-After of a token's refill: the run stays short
    gateway = make_gateway(rate_window_s=window, rate_algorithm="token_bucket")
    args = ["load", "rate-limits", "--base-url", gateway.base_url, "--window-s", str(window)]
    for tier, (variable, _, limit) in TIERS.items():
        args += ["--tier-key", f"{tier}={variable}", "--limit", f"{tier}={limit}"]
    code, out, err = gateprobe(*args, "--report-dir", str(tmp_path / "unknown"))
    assert code == 0, out + err
    tiers = verdict(tmp_path / "unknown")["rate_limits"]["tiers"]
    beyond = [t for t in tiers if t["accepted"] > t["limit"]]
    for row in beyond:  # what refilled is said, with the tolerance and how to judge strictly
        assert f"{row['accepted'] - row['limit']} accepted beyond the limit" in row["note"]
        assert f"refill tolerance of {row['refill_tolerance']}" in out
    if beyond:
        assert "information:" in out and "--rate-algorithm sliding_window" in out
    gateway.state.reset()
    code, out, err = gateprobe(*args, "--rate-algorithm", "sliding_window", "--report-dir",
                               str(tmp_path / "sliding"))
    assert code == 1, out + err
    assert "ratelimit.limit" in verdict(tmp_path / "sliding")["failed_checks"]


@pytest.mark.slow
@pytest.mark.parametrize("fault", ["ratelimit-not-enforced", "ratelimit-off-by-few"])
def test_a_short_window_never_lets_a_wrong_limiter_pass(make_gateway: MakeGateway,
                                                       tmp_path: Path, fault: str) -> None:
    """With a 5 s window and no algorithm declared, a gateway enforcing no limit (or 3 over
    it) fails, or at worst is inconclusive when the burst could not go out fast enough: what
    may refill during the burst never covers it, and it never passes."""
    gateway = make_gateway(rate_window_s=5, faults=(fault,))
    args = ["load", "rate-limits", "--base-url", gateway.base_url, "--window-s", "5",
            "--report-dir", str(tmp_path)]
    for tier, (variable, _, limit) in TIERS.items():
        args += ["--tier-key", f"{tier}={variable}", "--limit", f"{tier}={limit}"]
    code, out, err = gateprobe(*args)
    assert code in (1, 4), out + err
    result = verdict(tmp_path)
    assert not result["ok"]
    if code == 4:
        assert "INCONCLUSIVE" in out and result["inconclusive"]["why"]
    else:
        assert "ratelimit.limit" in result["failed_checks"], out


@pytest.mark.slow
@pytest.mark.parametrize("fault", RATE_FAULTS)
def test_each_rate_limit_fault_fails_the_run(make_gateway: MakeGateway, tmp_path: Path,
                                             fault: str) -> None:
    gateway = make_gateway(rate_window_s=WINDOW_S, faults=(fault,))
    code, out, err = rate_limits(gateway.base_url, tmp_path)
    assert code == 1, out + err
    failed = set(verdict(tmp_path)["failed_checks"])
    expected = {t for t in CATALOGUE[fault].trips if t.startswith("ratelimit.")}
    assert expected <= failed, failed
    assert "FAIL" in out and min(expected) in out


@pytest.mark.slow
def test_latency_passes_on_the_clean_gateway(make_gateway: MakeGateway, tmp_path: Path,
                                             tight_slo: Path) -> None:
    gateway = make_gateway(timing=Timing(ttft_ms=20, itl_ms=2))
    code, out, err = latency(gateway.base_url, tmp_path, tight_slo)
    assert code == 0, out + err
    result = verdict(tmp_path)["latency"]
    assert set(result["by_endpoint"]) == {"/v1/chat/completions", "/v1/messages",
                                          "/v1/complete"}
    assert result["errors"] == 0 and result["stream_findings"] == {}
    assert 20 <= result["ttft_ms"]["p50"] < 150
    lines = (tmp_path / "samples.jsonl").read_text().splitlines()
    assert len(lines) == result["requests"] > 0
    first = json.loads(lines[0])
    assert {"ttfb_ms", "ttft_ms", "tpot_ms", "e2e_ms", "itl_ms", "output_tokens",
            "tokens_per_s", "start_ns", "sent_ns"} <= set(first)
    if arrival.SO_TIMESTAMPING is not None:
        # The kernel's stamp of each request leaving: for every request but a connection's
        # first, after our start stamp and before its first token came back.
        samples = [json.loads(line) for line in lines]
        wired = [s for s in samples if s["sent_ns"] is not None]
        assert len(wired) >= len(samples) - 4 > 0
        assert all(s["start_ns"] <= s["sent_ns"] < s["start_ns"] + s["ttft_ms"] * 1e6
                   for s in wired)
    if arrival.SO_TIMESTAMPNS is not None:  # content timed by the kernel's receive stamps
        stamps = [json.loads(line)["stamps"] for line in lines]
        assert stamps.count("kernel") >= len(stamps) * 0.8, stamps
    # Locust shows the metrics as custom events too.
    stats = (tmp_path / "locust_stats.csv").read_text()
    assert "TTFT" in stats and "TPOT" in stats and "ITL max" in stats


@pytest.mark.slow
def test_latency_over_tls_stamps_in_the_kernel(
        make_gateway: MakeGateway, tmp_path: Path, tight_slo: Path, tls: TlsFiles,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Real gateways speak HTTPS: what arrives is still timed by the kernel's stamps."""
    gateway = make_gateway(timing=Timing(ttft_ms=20, itl_ms=2), tls=tls[0])
    assert gateway.base_url.startswith("https://127.0.0.1:")
    monkeypatch.delenv("SSL_CERT_FILE", raising=False)
    code, out, err = latency(gateway.base_url, tmp_path / "untrusted", tight_slo)
    assert code == 3 and "certificate verify failed" in err and "Traceback" not in out + err

    monkeypatch.setenv("SSL_CERT_FILE", str(tls[1]))
    code, out, err = latency(gateway.base_url, tmp_path / "trusted", tight_slo)
    assert code == 0, out + err
    result = verdict(tmp_path / "trusted")["latency"]
    assert result["errors"] == 0 and result["stream_findings"] == {}
    samples = [json.loads(line) for line in
               (tmp_path / "trusted" / "samples.jsonl").read_text().splitlines()]
    assert samples and all(s["ok"] for s in samples)
    if arrival.SO_TIMESTAMPNS is not None:
        stamps = [s["stamps"] for s in samples]
        assert stamps.count("kernel") >= len(stamps) * 0.8, stamps


LOCUST_TLS_PROBE = """
import sys
from locust.env import Environment
from gateprobe.commands.load.locustlib import StreamingUser, TierUser
for cls in (StreamingUser, TierUser):
    user = type("Probe", (cls,), {"host": sys.argv[1]})(Environment())
    answer = user.client.get("/v1/models")
    print(answer.status_code, type(answer.error).__name__)
"""


@pytest.mark.slow
def test_load_users_check_certificates(make_gateway: MakeGateway, tls: TlsFiles,
                                       ) -> None:
    """Locust's HTTP users do not check certificates unless told: ours are told, and trust
    what httpx (the preflight, every other runner) trusts, ``SSL_CERT_FILE`` included."""
    gateway = make_gateway(tls=tls[0])
    base_env = {k: v for k, v in os.environ.items() if k != "SSL_CERT_FILE"}
    outputs = [subprocess.run([sys.executable, "-c", LOCUST_TLS_PROBE, gateway.base_url],
                              env=env, capture_output=True, text=True, timeout=60,
                              check=True).stdout.split("\n")[:2]
               for env in (base_env, {**base_env, "SSL_CERT_FILE": str(tls[1])})]
    assert outputs[0] == ["0 SSLCertVerificationError"] * 2  # refused: an unknown issuer
    assert outputs[1] == ["401 LocustBadStatusCode"] * 2  # trusted: reached the gateway


@pytest.mark.slow
@pytest.mark.parametrize("fault", LATENCY_FAULTS)
def test_each_latency_fault_fails_the_run(make_gateway: MakeGateway, tmp_path: Path,
                                          tight_slo: Path, fault: str) -> None:
    early = fault == "stream-early-empty-chunk"
    # The early empty chunk only hides a slow first token: give it one to hide.
    gateway = make_gateway(timing=Timing(ttft_ms=250 if early else 20, itl_ms=2),
                           faults=(fault,))
    weights = ("--weight", "messages=0", "--weight", "complete=0") if early else ()
    code, out, err = latency(gateway.base_url, tmp_path, tight_slo, *weights)
    assert code == 1, out + err
    result = verdict(tmp_path)
    expected = {t for t in CATALOGUE[fault].trips if t.startswith("slo.")}
    assert expected <= set(result["failed_checks"]), result["failed_checks"]
    if early:  # what a harness timing the first byte would have reported
        assert result["latency"]["ttfb_ms"]["p95"] < 150 <= result["latency"]["ttft_ms"]["p50"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@pytest.mark.slow
def test_master_with_two_workers(make_gateway: MakeGateway, tmp_path: Path,
                                 tight_slo: Path) -> None:
    gateway = make_gateway(timing=Timing(ttft_ms=10, itl_ms=1))
    port = str(free_port())
    workers = [subprocess.Popen(
        [sys.executable, "-m", "gateprobe", "load", "latency", "--worker", "--master-port", port,
         "--base-url", gateway.base_url, "--api-key-env", "GP_TEST_KEY",
         "--report-dir", str(tmp_path / f"worker{i}")],
        env=os.environ.copy(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        for i in range(2)]
    try:
        code, out, err = latency(gateway.base_url, tmp_path / "master", tight_slo, "--master",
                                 "--expect-workers", "2", "--master-port", port)
        for worker in workers:
            assert worker.wait(timeout=60) == 0, worker.stdout.read() if worker.stdout else ""
    finally:
        for worker in workers:
            worker.kill()
            if worker.stdout:
                worker.stdout.close()
    assert code == 0, out + err
    lines = (tmp_path / "master" / "samples.jsonl").read_text().splitlines()
    pids = {json.loads(line)["pid"] for line in lines}
    assert len(pids) == 2, "samples from both workers reach the master"
    assert verdict(tmp_path / "master")["requests"] == len(lines)


@pytest.mark.slow
def test_local_processes_share_the_request_cap(make_gateway: MakeGateway, tmp_path: Path,
                                               tight_slo: Path) -> None:
    gateway = make_gateway(timing=Timing(ttft_ms=10, itl_ms=1))
    code, out, err = latency(gateway.base_url, tmp_path, tight_slo, "--processes", "2",
                             "--max-requests", "30")
    assert code == 0, out + err
    lines = (tmp_path / "samples.jsonl").read_text().splitlines()
    # Each process takes half the cap; the first to spend it ends the run for both.
    assert 15 <= len(lines) <= 30
    assert len({json.loads(line)["pid"] for line in lines}) == 2
    assert "request cap of 30 reached" in (tmp_path / "locust.log").read_text()


@pytest.mark.slow
def test_open_loop_arrivals(make_gateway: MakeGateway, tmp_path: Path,
                            tight_slo: Path) -> None:
    gateway = make_gateway(timing=Timing(ttft_ms=10, itl_ms=1))
    code, out, err = latency(gateway.base_url, tmp_path, tight_slo, "--arrival", "poisson",
                             "--rate", "20")
    assert code == 0, out + err
    requests = verdict(tmp_path)["requests"]
    # ~60 expected over 3 s; no arrival after the stop (Locust's grace period is 5 s more)
    assert 20 <= requests <= 100, requests


@pytest.mark.slow
def test_embedded_gateway_by_default(tmp_path: Path) -> None:
    code, out, err = gateprobe("load", "latency", "--duration", "2", "--users", "2",
                               "--max-tokens", "8", "--report-dir", str(tmp_path))
    assert code == 0, out + err
    assert "embedded reference gateway" in out and verdict(tmp_path)["requests"] > 0


LOOSE_SLO = "ttft_p95_ms: 5000\nerror_rate_max: 0\nstream_findings_max: 0\n"


@pytest.mark.slow
@pytest.mark.timeout(120)  # before the fix the run waited for a human, then its 710 s budget
def test_web_starts_the_swarm_and_ends_at_the_duration_with_a_verdict(
        make_gateway: MakeGateway, tmp_path: Path) -> None:
    gateway = make_gateway(timing=Timing(ttft_ms=5, itl_ms=1))
    slo = tmp_path / "slo.yaml"
    slo.write_text(LOOSE_SLO)
    port = free_port()
    code, out, err = latency(gateway.base_url, tmp_path / "run", slo, "--web", "--web-port",
                             str(port))
    assert code == 0, out + err
    assert f"Locust web UI: http://127.0.0.1:{port}/ (the swarm starts now" in out
    assert "PASS: every objective met" in out
    assert verdict(tmp_path / "run")["requests"] > 0
    assert (tmp_path / "run" / "locust.html").exists()


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_web_wait_runs_from_start_in_the_ui_to_the_duration(make_gateway: MakeGateway,
                                                           tmp_path: Path) -> None:
    import threading

    import httpx

    gateway = make_gateway(timing=Timing(ttft_ms=5, itl_ms=1))
    slo = tmp_path / "slo.yaml"
    slo.write_text(LOOSE_SLO)
    port = free_port()
    done: list[tuple[int, str, str]] = []
    run = threading.Thread(target=lambda: done.append(latency(
        gateway.base_url, tmp_path / "run", slo, "--web", "--web-wait", "--web-port",
        str(port))))
    run.start()
    for _ in range(300):  # the UI comes up; nothing is sent until START
        try:
            started = httpx.post(f"http://127.0.0.1:{port}/swarm",
                                 data={"user_count": 2, "spawn_rate": 2}, timeout=5)
            break
        except httpx.TransportError:
            run.join(timeout=0.1)
    assert started.json()["success"], started.text
    run.join(timeout=100)
    assert not run.is_alive(), "the run did not end after its duration"
    code, out, err = done[0]
    assert code == 0, out + err
    assert "press START there" in out and "PASS: every objective met" in out
    assert verdict(tmp_path / "run")["requests"] > 0


def test_web_wait_without_web_is_refused() -> None:
    code, _, err = gateprobe("load", "latency", "--web-wait")
    assert code == 2 and "--web-wait needs --web" in err


# -- refusals: one line, exit 2 (or 3), and nothing is sent -----------------------------------
@pytest.mark.parametrize(("argv", "message"), [
    (["latency", "--base-url", "http://example.com"], "refused: not loopback"),
    (["latency", "--base-url", "http://127.0.0.1:9", "--api-key-env", "GP_UNSET"],
     "GP_UNSET"),
    (["latency", "--arrival", "poisson"], "needs --rate"),
    (["latency", "--arrival", "constant", "--rate", "500"], "above --max-rps"),
    (["latency", "--duration", "99999"], "--duration must be within"),
    (["latency", "--max-requests", "0"], "--max-requests must be at least 1"),
    (["latency", "--max-rps", "5000"], "capped"),
    (["latency", "--weight", "embeddings=1"], "unknown endpoint 'embeddings'"),
    (["latency", "--weight", "chat=0", "--weight", "messages=0", "--weight", "complete=0"],
     "every weight is 0"),
    (["latency", "--master", "--worker"], "not both"),
    (["latency", "--slo", "/nonexistent/slo.yaml"], "slo.yaml"),
    (["rate-limits", "--base-url", "http://127.0.0.1:9"], "needs tier keys"),
    (["rate-limits", "--base-url", "http://127.0.0.1:9", "--tier-key", "free=GP_TEST_FREE"],
     "no limit"),
    (["rate-limits", "--base-url", "http://127.0.0.1:9", "--limit", "free=x"], "not a number"),
    (["rate-limits", "--limit", "free"], "NAME=VALUE"),
])
def test_usage_errors(argv: list[str], message: str) -> None:
    code, out, err = gateprobe("load", *argv)
    assert code == 2, out + err
    assert message in err and err.count("\n") == 1 and "Traceback" not in err


def test_rate_cap_too_low_for_the_burst(tmp_path: Path) -> None:
    code, _, err = gateprobe("load", "rate-limits", "--max-rps", "10",
                             "--report-dir", str(tmp_path))
    assert code == 2 and "raise --max-rps" in err


def test_unreachable_target_exits_3(tmp_path: Path) -> None:
    code, _, err = gateprobe("load", "latency", "--base-url", f"http://127.0.0.1:{free_port()}",
                             "--api-key-env", "GP_TEST_KEY", "--report-dir", str(tmp_path))
    assert code == 3 and "cannot connect" in err


def test_target_without_allow_load_is_refused(tmp_path: Path) -> None:
    targets = tmp_path / "targets.yaml"
    targets.write_text("targets:\n  paid:\n    base_url: https://gateway.example\n"
                       "    profile: ohmygpt\n    api_key_env: GP_TEST_KEY\n")
    code, _, err = gateprobe("load", "latency", "--target", "paid", "--targets", str(targets))
    assert code == 2 and "allow_load: true" in err
