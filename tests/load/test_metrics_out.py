"""Metrics out of a running load run: windows written as they close (``windows.jsonl``,
``windows.csv``), a Prometheus endpoint scraped mid-run, a Pushgateway pushed to, and the
CSV exports' columns as documented."""

from __future__ import annotations

import csv
import io
import json
import re
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from gateprobe.cli import main
from gateprobe.commands.load.metricsout import (
    GRACE_S,
    SAMPLE_COLUMNS,
    WINDOW_COLUMNS,
    WindowStream,
    sample_csv_row,
    window_csv_row,
)
from gateprobe.commands.load.plan import LoadPlan
from gateprobe.core.console import Console
from gateprobe.reference import Timing
from gateway_fixtures import MakeGateway

HOWTO = Path(__file__).resolve().parents[2] / "docs" / "howto" / "soak-and-metrics.md"


def test_a_window_is_a_csv_row_of_the_documented_columns() -> None:
    window = {"index": 3, "start_s": 6.0, "end_s": 8.0, "complete": True, "requests": 2,
              "errors": 1, "error_rate": 0.5, "requests_per_s": 1.0,
              "ttft_ms": {"p50": 10.0, "p90": 11.0, "p99": float("nan")},
              "tokens_per_s": {"p50": 40.0}, "memory_bytes": None}
    row = dict(zip(WINDOW_COLUMNS, window_csv_row(window), strict=True))
    assert (row["index"], row["ttft_p50_ms"], row["ttft_p90_ms"]) == (3, 10.0, 11.0)
    assert row["ttft_p99_ms"] == "" and row["memory_bytes"] == "" and row["e2e_p95_ms"] == ""
    assert (row["tokens_per_s_p50"], row["requests_per_s"], row["error_rate"]) == (40.0, 1.0,
                                                                                   0.5)
    sample = {"t": 1.5, "endpoint": "/v1/messages", "ok": False, "itl_ms": [3.0, 9.0, 4.0]}
    cells = dict(zip(SAMPLE_COLUMNS, sample_csv_row(sample), strict=True))
    assert (cells["itl_count"], cells["itl_max_ms"], cells["ok"], cells["ttft_ms"]) == (
        3, 9.0, False, "")


def test_every_csv_column_is_documented() -> None:
    text = HOWTO.read_text(encoding="utf-8")
    missing = [c for c in (*WINDOW_COLUMNS, *SAMPLE_COLUMNS) if f"`{c}`" not in text]
    assert not missing, missing


def test_windows_are_written_after_their_grace_and_all_at_the_end(tmp_path: Path) -> None:
    plan = LoadPlan("latency", "http://127.0.0.1:9", "ohmygpt", str(tmp_path),
                    duration_s=6.0, soak_window_s=2.0)
    lines = [{"t": 100.0 + i * 0.5, "ttft_ms": 10.0 + i, "ok": True, "endpoint": "/v1/x"}
             for i in range(12)]
    (tmp_path / "samples.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines))
    stream = WindowStream(plan, 2.0)
    seen: list[dict[str, Any]] = []
    stream.on_window.append(seen.append)
    super(WindowStream, stream).poll()  # read, without closing by the wall clock
    assert stream.close_due(100.0 + 2.0 + GRACE_S - 0.01) == []
    [first] = stream.close_due(100.0 + 2.0 + GRACE_S)
    assert (first["index"], first["requests"], first["ttft_ms"]["p50"]) == (0, 4, 11.5)
    rest = stream.close_due(100.0 + 3.0, final=True)
    assert [w["index"] for w in rest] == [1, 2] and [w["requests"] for w in rest] == [4, 4]
    assert seen == [first, *rest] and stream.requests == 12


class FakePushgateway(BaseHTTPRequestHandler):
    """Records what is pushed (PUT or POST /metrics/job/...), answers 200."""

    pushed: list[tuple[str, str]] = []

    def do_PUT(self) -> None:  # http.server calls do_<METHOD>
        body = self.rfile.read(int(self.headers.get("content-length") or 0))
        self.pushed.append((self.path, body.decode()))
        self.send_response(200)
        self.end_headers()

    do_POST = do_PUT

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def pushgateway() -> Iterator[tuple[str, list[tuple[str, str]]]]:
    FakePushgateway.pushed = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), FakePushgateway)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", FakePushgateway.pushed
    server.shutdown()
    server.server_close()


def families(text: str) -> dict[str, Any]:
    return {f.name: f for f in text_string_to_metric_families(text)}


@pytest.mark.slow
def test_a_running_load_run_is_scraped_pushed_and_exported(
        make_gateway: MakeGateway, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        pushgateway: tuple[str, list[tuple[str, str]]]) -> None:
    monkeypatch.setenv("GP_TEST_KEY", "gp-vip-0001")
    gateway = make_gateway(timing=Timing(ttft_ms=10, itl_ms=2))
    push_url, pushed = pushgateway
    out, err = io.StringIO(), io.StringIO()
    codes: list[int] = []
    argv = ["load", "latency", "--base-url", gateway.base_url, "--api-key-env", "GP_TEST_KEY",
            "--duration", "12", "--windows", "1", "--users", "2", "--max-tokens", "8",
            "--metrics-port", "0", "--metrics-push", push_url, "--csv",
            "--report-dir", str(tmp_path)]
    run = threading.Thread(target=lambda: codes.append(main(argv, Console(out, err))))
    run.start()
    try:
        mid_run = scrape_mid_run(out, run)
    finally:
        run.join(timeout=120)
    assert codes == [0], out.getvalue() + err.getvalue()
    requests = mid_run["gateprobe_load_requests"].samples
    assert sum(s.value for s in requests if s.name.endswith("_total")) > 0
    ttft = {s.labels["quantile"]: s.value
            for s in mid_run["gateprobe_load_window_ttft_seconds"].samples}
    assert set(ttft) == {"0.50", "0.90", "0.95", "0.99"} and 0 < ttft["0.50"] < 5
    # the Pushgateway got each window and the end, grouped by job and run
    assert len(pushed) >= 2
    assert all(path == f"/metrics/job/gateprobe_load/run/{tmp_path.name}"
               for path, _ in pushed)
    assert "gateprobe_load_window_index" in families(pushed[-1][1])
    # the exports: windows as they closed, and every sample
    windows = [json.loads(x) for x in (tmp_path / "windows.jsonl").read_text().splitlines()]
    with (tmp_path / "windows.csv").open(newline="") as file:
        rows = list(csv.reader(file))
    assert tuple(rows[0]) == WINDOW_COLUMNS and len(rows) == len(windows) + 1 >= 10
    assert [int(r[0]) for r in rows[1:]] == list(range(len(windows)))
    with (tmp_path / "samples.csv").open(newline="") as file:
        samples = list(csv.reader(file))
    recorded = (tmp_path / "samples.jsonl").read_text().splitlines()
    assert tuple(samples[0]) == SAMPLE_COLUMNS and len(samples) == len(recorded) + 1
    assert sum(w["requests"] for w in windows) == len(recorded)


def scrape_mid_run(out: io.StringIO, run: threading.Thread) -> dict[str, Any]:
    """The run's endpoint, read once a window has been written (the run still going)."""
    deadline = time.monotonic() + 60
    url = None
    while time.monotonic() < deadline and run.is_alive():
        found = re.search(r"metrics: (http://127\.0\.0\.1:\d+/metrics)", out.getvalue())
        if found:
            url = found.group(1)
            got = families(httpx.get(url, timeout=5).text)
            if "gateprobe_load_window_index" in got:
                assert run.is_alive()  # mid-run
                return got
        time.sleep(0.2)
    raise AssertionError(f"no window served by {url} while the run went: {out.getvalue()}")


def test_the_dashboard_asks_only_for_metrics_a_run_exposes(tmp_path: Path) -> None:
    from prometheus_client.exposition import generate_latest

    from gateprobe.commands.load.metricsout import RunCollector

    plan = LoadPlan("soak", "http://127.0.0.1:9", "ohmygpt", str(tmp_path), duration_s=4.0,
                    soak_window_s=2.0)
    lines = [{"t": 100.0, "ttft_ms": 10.0, "e2e_ms": 20.0, "itl_ms": [1.0], "ok": True,
              "endpoint": "/v1/x", "output_tokens": 3}]
    (tmp_path / "samples.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines))
    (tmp_path / "target_metrics.jsonl").write_text(json.dumps(
        {"t": 100.0, "memory_bytes": 5e7, "open_connections": 3.0, "error": None}) + "\n")
    stream = WindowStream(plan, 2.0)
    super(WindowStream, stream).poll()
    stream.close_due(200.0, final=True)
    exposed = {s.name for f in text_string_to_metric_families(
        generate_latest(RunCollector(stream)).decode()) for s in f.samples}
    assert {"gateprobe_load_target_resident_memory_bytes",
            "gateprobe_load_window_ttft_seconds"} <= exposed
    dashboard = json.loads((HOWTO.parents[1] / "load" / "grafana-dashboard.json").read_text())
    asked = {name for panel in dashboard["panels"] for target in panel["targets"]
             for name in re.findall(r"gateprobe_load_\w+", target["expr"])}
    assert asked and asked <= exposed, asked - exposed
    documented = HOWTO.read_text(encoding="utf-8")
    assert not [n for n in exposed if f"`{n}" not in documented]


def test_a_taken_metrics_port_is_one_line(make_gateway: MakeGateway, tmp_path: Path,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    import socket

    monkeypatch.setenv("GP_TEST_KEY", "gp-vip-0001")
    gateway = make_gateway()
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        out, err = io.StringIO(), io.StringIO()
        code = main(["load", "latency", "--base-url", gateway.base_url, "--api-key-env",
                     "GP_TEST_KEY", "--duration", "2", "--metrics-port", str(port),
                     "--report-dir", str(tmp_path)], Console(out, err))
    assert code == 2, out.getvalue() + err.getvalue()
    assert f"--metrics-port {port} on 127.0.0.1: Address already in use" in err.getvalue()
    assert "Traceback" not in err.getvalue()
