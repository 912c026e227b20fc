"""Metrics out of a running load run, for a person watching a long run in Grafana.

While Locust runs, ``gateprobe load`` reads the samples the master appends (``samples.jsonl``,
through ``results.LiveSamples``) and cuts them into windows of ``--windows`` by their start
time, summarised by the soak's one window summary (``soak.summarize_window``, the one metric
definition). A window is written ``GRACE_S`` after its end (its last streams have ended and
been shipped by then), as a line of ``windows.jsonl`` and a row of ``windows.csv``; the rest
when the run ends. A soak's ``verdict.json`` recomputes its windows from every sample: a
stream recorded later than the grace counts there only.

Each window and the running totals are also:

- served in Prometheus' text format (OpenMetrics when the scraper asks for it) on
  ``--metrics-host``:``--metrics-port`` (127.0.0.1 unless told) while the run lasts;
- pushed to a Prometheus Pushgateway (``--metrics-push URL``) at each window's end and once
  at the run's end, grouped by ``job="gateprobe_load"`` and ``run``.

Latencies are exposed in seconds (Prometheus' base unit), from the same numbers as the report's
milliseconds. ``--csv`` also writes every sample as a row of ``samples.csv`` at the run's end.
"""

from __future__ import annotations

import csv
import json
import math
import time
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from prometheus_client import push_to_gateway, start_http_server
from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector, CollectorRegistry

from gateprobe.commands.load.plan import LoadPlan
from gateprobe.commands.load.results import SAMPLES_FILE, LiveSamples, read_samples
from gateprobe.commands.load.soak import SCRAPES_FILE, complete_windows, summarize_window, window_of
from gateprobe.core.console import Console
from gateprobe.core.errors import UsageError
from gateprobe.core.metrics import finite

WINDOWS_FILE = "windows.jsonl"
WINDOWS_CSV = "windows.csv"
SAMPLES_CSV = "samples.csv"
GRACE_S = 5.0
"""A window is written this long after its end: its streams have ended, and workers (which
ship samples every 3 s) have sent theirs."""
PUSH_JOB = "gateprobe_load"
PUSH_TIMEOUT_S = 5.0
QUANTILES = ("p50", "p90", "p95", "p99")

WINDOW_COLUMNS = (
    "index", "start_s", "end_s", "complete", "requests", "errors", "error_rate",
    "requests_per_s", "ttft_p50_ms", "ttft_p90_ms", "ttft_p99_ms", "itl_p50_ms", "itl_p99_ms",
    "tpot_p50_ms", "tpot_p95_ms", "e2e_p50_ms", "e2e_p95_ms", "e2e_p99_ms", "tokens_per_s_p50",
    "output_tokens", "memory_bytes", "open_connections")
"""The columns of ``windows.csv``, in order (times in ms from the run's start window)."""
SAMPLE_COLUMNS = (
    "t", "endpoint", "status", "ok", "error_kind", "ttfb_ms", "ttft_ms", "tpot_ms", "e2e_ms",
    "end_ms", "output_tokens", "tokens_source", "tokens_per_s", "content_events", "itl_count",
    "itl_max_ms", "request_id", "pid")
"""The columns of ``samples.csv``, in order: one request each (``t`` its start, Unix
seconds; ``itl_count`` and ``itl_max_ms`` summarise its inter-token gaps)."""


def window_csv_row(window: Mapping[str, Any]) -> list[Any]:
    """One window as a row of ``WINDOW_COLUMNS`` (empty cells where there is no value)."""
    def pick(column: str) -> Any:
        metric, _, rest = column.rpartition("_p")
        if metric and rest[:2].isdigit() and column not in window:
            quantile, _, unit = rest.partition("_")
            name = f"{metric}_{unit}" if unit else metric
            return (window.get(name) or {}).get(f"p{quantile}")
        return window.get(column)

    return ["" if (v := pick(c)) is None or (isinstance(v, float) and not math.isfinite(v))
            else v for c in WINDOW_COLUMNS]


def sample_csv_row(sample: Mapping[str, Any]) -> list[Any]:
    """One sample as a row of ``SAMPLE_COLUMNS``."""
    gaps = [g for g in sample.get("itl_ms") or () if isinstance(g, int | float)]
    extra = {"itl_count": len(gaps), "itl_max_ms": max(gaps, default=None)}
    return ["" if (v := extra.get(c, sample.get(c))) is None else v for c in SAMPLE_COLUMNS]


def write_samples_csv(out: Path) -> Path:
    """``samples.csv`` from the run's ``samples.jsonl`` (dropped arrivals left out)."""
    path = out / SAMPLES_CSV
    with path.open("w", newline="", encoding="utf-8") as file:
        writer = csv.writer(file)
        writer.writerow(SAMPLE_COLUMNS)
        writer.writerows(sample_csv_row(s) for s in read_samples(out / SAMPLES_FILE)
                         if not s.get("dropped"))
    return path


class WindowStream(LiveSamples):
    """The live samples of a run, cut into windows as they come; running totals besides."""

    def __init__(self, plan: LoadPlan, window_s: float) -> None:
        super().__init__(plan.out / SAMPLES_FILE)
        self.plan = plan
        self.window_s = window_s
        self.t0: float | None = None
        self.pending: dict[int, list[dict[str, Any]]] = {}
        self.closed: list[dict[str, Any]] = []
        self.next_index = 0
        self.by_endpoint: Counter[str] = Counter()
        self.errors_by_endpoint: Counter[str] = Counter()
        self.output_tokens = 0
        self.started = time.time()
        self.on_window: list[Any] = []
        """Called with each window as it is written."""

    def _take(self, sample: dict[str, Any]) -> None:
        """Count a sample and keep it for its window (one already written takes it into the
        next: a window is not rewritten)."""
        super()._take(sample)
        if sample.get("dropped") or not isinstance(sample.get("t"), int | float):
            return
        if self.t0 is None:
            self.t0 = float(sample["t"])
        endpoint = str(sample.get("endpoint") or "")
        self.by_endpoint[endpoint] += 1
        self.errors_by_endpoint[endpoint] += not sample.get("ok", True)
        self.output_tokens += int(sample.get("output_tokens") or 0)
        index = max(self.next_index, window_of(float(sample["t"]), self.t0, self.window_s))
        self.pending.setdefault(index, []).append(sample)

    def due(self, now: float) -> int:
        """How many windows are due to be written at wall time ``now``."""
        if self.t0 is None:
            return 0
        return max(0, math.floor((now - GRACE_S - self.t0) / self.window_s))

    def poll(self) -> None:
        """Take in the new samples; write the windows now due."""
        super().poll()
        self.close_due(time.time())

    def close_due(self, now: float, final: bool = False) -> list[dict[str, Any]]:
        """Write every window whose end is ``GRACE_S`` past; when ``final`` (the run has
        ended), every window of the run, as ``soak.windows`` counts them."""
        full = complete_windows(self.plan.duration_s, self.window_s)
        last = self.due(now)
        if final and self.t0 is not None:
            last = max(max(self.pending, default=-1) + 1, full)
        written = []
        scrape = self._last_scrape() if self.next_index < last else {}
        while self.next_index < last:
            k = self.next_index
            row = summarize_window(k, self.window_s, self.pending.pop(k, []), k < full)
            row["memory_bytes"] = scrape.get("memory_bytes")
            row["open_connections"] = scrape.get("open_connections")
            self.closed.append(row)
            written.append(row)
            self.next_index += 1
        for row in written:
            for listener in self.on_window:
                listener(row)
        return written

    def _last_scrape(self) -> Mapping[str, Any]:
        """The target's last usable scrape (a soak's; {} without)."""
        path = self.plan.out / SCRAPES_FILE
        if not path.exists():
            return {}
        usable = [s for s in read_samples(path) if s.get("error") is None]
        return usable[-1] if usable else {}


class RunCollector(Collector):
    """A running load run's metrics: totals, the last written window, the target's last
    scrape."""

    def __init__(self, stream: WindowStream) -> None:
        self.stream = stream

    def collect(self) -> Iterable[Metric]:
        """Every metric, read now."""
        s = self.stream
        labels = ["scenario"]
        scenario = [s.plan.scenario]
        requests = CounterMetricFamily("gateprobe_load_requests", "Requests recorded so far.",
                                       labels=[*labels, "endpoint"])
        errors = CounterMetricFamily("gateprobe_load_errors", "Failed requests so far.",
                                     labels=[*labels, "endpoint"])
        for endpoint, n in sorted(s.by_endpoint.items()):
            requests.add_metric([*scenario, endpoint], n)
            errors.add_metric([*scenario, endpoint], s.errors_by_endpoint[endpoint])
        yield requests
        yield errors
        yield _counter("gateprobe_load_output_tokens", "Output tokens so far.", scenario,
                       s.output_tokens)
        yield _gauge("gateprobe_load_elapsed_seconds", "Since the run's first request.",
                     scenario, time.time() - (s.t0 or s.started))
        if s.closed:
            yield from _window_metrics(s.closed[-1], scenario)


def _counter(name: str, doc: str, scenario: Sequence[str], value: float) -> Metric:
    family = CounterMetricFamily(name, doc, labels=["scenario"])
    family.add_metric(list(scenario), value)
    return family


def _gauge(name: str, doc: str, scenario: Sequence[str], value: float | None) -> Metric:
    family = GaugeMetricFamily(name, doc, labels=["scenario"])
    family.add_metric(list(scenario), math.nan if value is None else float(value))
    return family


def _window_metrics(window: Mapping[str, Any], scenario: Sequence[str]) -> Iterator[Metric]:
    """The last written window: its percentiles in seconds, rates and the target's numbers."""
    for metric in ("ttft", "itl", "tpot", "e2e"):
        family = GaugeMetricFamily(f"gateprobe_load_window_{metric}_seconds",
                                   f"{metric.upper()} percentiles of the last window.",
                                   labels=["scenario", "quantile"])
        for q in QUANTILES:
            value = (window.get(f"{metric}_ms") or {}).get(q)
            family.add_metric([*scenario, f"0.{q[1:]}"],
                              math.nan if value is None else value / 1000)
        yield family
    for name, doc, key in (
            ("gateprobe_load_window_index", "The last written window, from 0.", "index"),
            ("gateprobe_load_window_requests", "Requests started in the last window.",
             "requests"),
            ("gateprobe_load_window_requests_per_second", "Their rate.", "requests_per_s"),
            ("gateprobe_load_window_error_ratio", "Failed / all in the last window.",
             "error_rate"),
            ("gateprobe_load_target_resident_memory_bytes",
             "The target's resident memory, as last scraped (soak).", "memory_bytes"),
            ("gateprobe_load_target_open_connections",
             "The target's open connections, as last scraped (soak).", "open_connections")):
        yield _gauge(name, doc, scenario, window.get(key))


class Outputs:
    """Where a windowed run's windows go as they are written: ``windows.jsonl``,
    ``windows.csv`` and, when asked, a Pushgateway."""

    def __init__(self, stream: WindowStream, registry: CollectorRegistry,
                 push: str | None, console: Console) -> None:
        out = stream.plan.out
        self.jsonl = (out / WINDOWS_FILE).open("w", encoding="utf-8", buffering=1)
        self.csv_file = (out / WINDOWS_CSV).open("w", newline="", encoding="utf-8")
        self.csv = csv.writer(self.csv_file)
        self.csv.writerow(WINDOW_COLUMNS)
        self.csv_file.flush()
        self.registry, self.push_url, self.console = registry, push, console
        self.run = out.name
        self.push_failed = False

    def window(self, row: Mapping[str, Any]) -> None:
        """One window written: a line, a row, a push."""
        self.jsonl.write(json.dumps(finite(dict(row)), allow_nan=False) + "\n")
        self.csv.writerow(window_csv_row(row))
        self.csv_file.flush()
        self.push()

    def push(self) -> None:
        """Push the metrics now; a Pushgateway that fails is said once, never fatal."""
        if not self.push_url:
            return
        try:
            push_to_gateway(self.push_url, job=PUSH_JOB, registry=self.registry,
                            grouping_key={"run": self.run}, timeout=PUSH_TIMEOUT_S)
        except OSError as exc:  # urllib's errors (URLError, HTTPError) are OSErrors
            if not self.push_failed:
                self.console.error(f"--metrics-push {self.push_url}: {exc} (the run goes on; "
                                   "later pushes are tried, not reported)")
            self.push_failed = True

    def close(self) -> None:
        """Close the files."""
        self.jsonl.close()
        self.csv_file.close()


@contextmanager
def watching(plan: LoadPlan, console: Console, *, port: int | None = None,
             host: str = "127.0.0.1", push: str | None = None,
             samples_csv: bool = False) -> Iterator[LiveSamples]:
    """The live view of a run while Locust runs: plain ``LiveSamples`` for a run without
    windows; a ``WindowStream`` writing its windows (and serving, pushing them) otherwise.
    On leaving (the run has ended), every window is written and the server stopped."""
    if not plan.soak_window_s:
        yield LiveSamples(plan.out / SAMPLES_FILE)
        return
    stream = WindowStream(plan, plan.soak_window_s)
    registry = CollectorRegistry(auto_describe=False)
    registry.register(RunCollector(stream))
    outputs = Outputs(stream, registry, push, console)
    stream.on_window.append(outputs.window)
    server = None
    if port is not None:
        try:
            server, _ = start_http_server(port, host, registry)
        except OSError as exc:  # taken, or an address this host does not have
            outputs.close()
            raise UsageError(f"--metrics-port {port} on {host}: {exc.strerror or exc}") from None
        console.line(f"metrics: http://{host}:{server.server_address[1]}/metrics (Prometheus "
                     "text; OpenMetrics on request)")
    try:
        yield stream
    finally:
        stream.poll()
        stream.close_due(time.time(), final=True)
        outputs.push()
        outputs.close()
        if server is not None:
            server.shutdown()
            server.server_close()
        if samples_csv:
            write_samples_csv(plan.out)
