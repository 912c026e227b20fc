"""The load generator measures itself: a run whose own lag is over the bound says it saturated,
judges no latency objective on it, and exits 5 (never PASS). The lag histograms, the bound
and the verdict on hand-made lines; then a real run whose Locust process is starved of its
event loop on purpose (``GATEPROBE_TEST_BURN_MS``, a test-only knob)."""

from __future__ import annotations

import io
import json
import math
from pathlib import Path
from typing import Any

import pytest

from gateprobe.cli import main
from gateprobe.commands.load.plan import LoadPlan
from gateprobe.commands.load.scenarios import verdict
from gateprobe.commands.load.selfcheck import LagHistogram, judge, lag_bound
from gateprobe.core.console import Console
from gateprobe.core.errors import EXIT_CODES, SATURATED_EXIT
from gateprobe.reference import Timing
from gateway_fixtures import MakeGateway


def histogram(*lags: float) -> dict[str, Any]:
    h = LagHistogram()
    for lag in lags:
        h.add(lag)
    return h.as_json()


def line(pid: int = 1, cpu: float = 0.2, **lags: list[float]) -> dict[str, Any]:
    """One interval of one process: a second, ``cpu`` of a core, these lags."""
    return {"t": 0.0, "pid": pid, "interval_s": 1.0, "cpu_ms": cpu * 1000, "cpu_share": cpu,
            "lag": {kind: histogram(*values) for kind, values in lags.items()}}


def test_the_histogram_percentile_is_within_a_bucket_and_merges() -> None:
    values = [0.1 * i for i in range(1, 101)]  # 0.1 .. 10 ms
    h = LagHistogram()
    h.merge(histogram(*values[:50]))
    h.merge(histogram(*values[50:]))
    assert h.n == 100 and h.max_ms == pytest.approx(10.0)
    assert h.percentile(50) == pytest.approx(5.0, rel=0.13)
    assert h.percentile(99) == pytest.approx(9.9, rel=0.13) and h.percentile(100) <= 10.0
    assert math.isnan(LagHistogram().percentile(99))
    assert histogram(-1.0)["buckets"] == {"0": 1}  # a clock's rounding is no lag


def test_the_bound_is_2_ms_or_a_tenth_of_the_smallest_objective() -> None:
    assert lag_bound({"ttft_p95_ms": 2000, "error_rate_max": 0.01}) == (2.0, "default")
    assert lag_bound({"ttft_p95_ms": 2000, "itl_p99_ms": 10}) == (1.0, "10% of itl_p99_ms")
    assert lag_bound({"itl_p99_ms": 10}, 7.5) == (7.5, "--lag-bound-ms")
    assert lag_bound({})[0] == 2.0


def test_judge_names_the_worst_lag_and_the_cause() -> None:
    calm = judge([line(loop=[0.1] * 99 + [1.5], receive=[0.2] * 100)], 2.0, "default")
    assert not calm.saturated and calm.worst is None and calm.why == ""
    busy = judge([line(cpu=0.95, loop=[0.1] * 90 + [30.0] * 10, receive=[3.0] * 100),
                  line(pid=2, cpu=0.9, receive=[0.1] * 100)], 2.0, "default")
    assert busy.saturated and busy.worst == "loop" and busy.processes == 2
    assert "--processes auto" in busy.why and "95% of a core" in busy.why
    starved = judge([line(cpu=0.1, schedule=[9.0] * 10)], 2.0, "default")
    assert starved.saturated and starved.worst == "schedule"
    assert "the machine" in starved.why and "--worker" in starved.why


def stream(ttft: float = 50.0, findings: tuple[str, ...] = ()) -> dict[str, Any]:
    return {"endpoint": "/v1/chat/completions", "ok": not findings, "status": 200,
            "ttfb_ms": ttft, "ttft_ms": ttft, "tpot_ms": 1.0, "e2e_ms": ttft + 10,
            "end_ms": ttft + 10, "itl_ms": [1.0] * 10, "output_tokens": 11,
            "tokens_per_s": 1000.0, "findings": list(findings),
            "error_kind": findings[0] if findings else None}


def plan(**slo: float) -> LoadPlan:
    return LoadPlan(scenario="latency", base_url="http://127.0.0.1:1", profile="ohmygpt",
                    out_dir="", slo=dict(slo))


def test_a_saturated_run_leaves_unjudged_what_its_lag_could_carry_across_a_limit() -> None:
    lag = [line(cpu=0.9, loop=[25.0] * 100)]  # lag p99 25 ms: figures may be 75 ms off
    close = verdict(plan(ttft_p95_ms=450), [stream(ttft=500)] * 5, 1.0, lag)
    assert not close["ok"] and close["saturated"]["unjudged"] == ["ttft_p95_ms"]
    assert close["breaches"] == [] and close["failed_checks"] == []
    # One short clause among the reasons (the phase table's cell); the whole sentence once.
    assert close["reasons"] == [
        "generator saturated: loop lag p99 25.0 ms > 2 ms (ttft_p95_ms unjudged)"]
    assert "--processes" in close["saturated"]["why"]
    # What a stream said is judged whatever the lag.
    broken = verdict(plan(ttft_p95_ms=450, stream_findings_max=0),
                     [stream(ttft=500, findings=("stream.terminator",))] * 5, 1.0, lag)
    assert broken["failed_checks"] == ["slo.stream_findings_max"] and broken["saturated"]
    # Far from the limit, either way, the lag cannot decide: judged, the lag said beside it.
    slow = verdict(plan(ttft_p95_ms=10), [stream(ttft=500)] * 5, 1.0, lag)
    assert not slow["ok"] and slow["failed_checks"] == ["slo.ttft_p95_ms"]
    assert "saturated" not in slow and "75 ms" in slow["lagged"]["why"]
    # (the tasks scenario's objective in the same file is not this run's)
    fast = verdict(plan(ttft_p95_ms=1000, task_success_p95_ms=60000,
                        **{"chat.e2e_p95_ms": 2000}), [stream()] * 5, 1.0, lag)
    assert fast["ok"] and fast["generator"]["saturated"] and "saturated" not in fast
    near_endpoint = verdict(plan(ttft_p95_ms=1000, **{"chat.e2e_p95_ms": 100}),
                            [stream()] * 5, 1.0, lag)
    assert near_endpoint["saturated"]["unjudged"] == ["chat.e2e_p95_ms"]
    # A TPOT spreads the lag over a stream's gaps (10 here): its margin is 2 x 75 / 10 ms.
    tpot_far = verdict(plan(tpot_p95_ms=20), [stream()] * 5, 1.0, lag)
    assert tpot_far["ok"] and "lagged" in tpot_far
    tpot_near = verdict(plan(tpot_p95_ms=10), [stream()] * 5, 1.0, lag)
    assert tpot_near["saturated"]["unjudged"] == ["tpot_p95_ms"]
    # Without a timing objective the numbers are the product: no verdict on them.
    bare = verdict(plan(error_rate_max=0), [stream()] * 5, 1.0, lag)
    assert not bare["ok"] and bare["saturated"]["unjudged"] == []
    calm = verdict(plan(ttft_p95_ms=1000), [stream()] * 5, 1.0, [line(loop=[0.2] * 100)])
    assert calm["ok"] and not calm["generator"]["saturated"] and "saturated" not in calm
    assert "lagged" not in calm


def test_a_saturated_rate_limit_run_keeps_its_verdict() -> None:
    """A rate-limit run counts answers, not times: the generator's lag is reported only."""
    rate = LoadPlan(scenario="rate-limits", base_url="http://127.0.0.1:1",
                    profile="ohmygpt", out_dir="", limits={"free": 4})
    result = verdict(rate, [], 1.0, [line(loop=[25.0] * 100)])
    assert result["generator"]["saturated"] and "saturated" not in result


def gateprobe(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = main(list(argv), Console(out, err))
    return code, out.getvalue(), err.getvalue()


@pytest.mark.slow
def test_a_starved_generator_ends_saturated_not_pass(make_gateway: MakeGateway, tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """The event loop of the Locust process is held 30 ms at a time: the same small run that
    passes otherwise ends saturated, exit 5, its latency unjudged, the fix named. The TTFT
    objective is within the lag's reach of any TTFT the run could see (a 20 ms first token,
    a 60 ms limit, a lag of 30 ms): a run can judge only what its lag cannot move."""
    gateway = make_gateway(timing=Timing(ttft_ms=20, itl_ms=2))
    slo = tmp_path / "slo.yaml"
    slo.write_text("ttft_p95_ms: 60\nerror_rate_max: 0\nstream_findings_max: 0\n")
    monkeypatch.delenv("GATEPROBE_LAG_BOUND_MS")
    monkeypatch.setenv("GP_TEST_KEY", "gp-vip-0001")
    monkeypatch.setenv("GATEPROBE_TEST_BURN_MS", "30")
    code, out, err = gateprobe(
        "load", "latency", "--base-url", gateway.base_url, "--api-key-env", "GP_TEST_KEY",
        "--duration", "3", "--users", "4", "--max-tokens", "24", "--slo", str(slo),
        "--processes", "1", "--report-dir", str(tmp_path / "run"))
    assert code == SATURATED_EXIT, out + err
    assert "SATURATED (no verdict)" in out and "PASS" not in out and "--processes" in out
    result = json.loads((tmp_path / "run" / "verdict.json").read_text())
    assert result["saturated"] and not result["ok"]
    assert result["generator"]["lag_ms"]["loop"]["p99"] > 20
    lines = (tmp_path / "run" / "lag.jsonl").read_text().splitlines()
    assert lines and all("cpu_share" in json.loads(x) for x in lines)
    samples = [json.loads(x) for x in (tmp_path / "run" / "samples.jsonl").read_text()
               .splitlines()]
    assert samples and all("schedule_lag_ms" in s and "receive_lag_ms" in s for s in samples)
    assert SATURATED_EXIT in EXIT_CODES
    page = (tmp_path / "run" / "report.html").read_text()  # the run's own page says so too
    assert "SATURATED (no verdict)" in page and "Load generator lag over time" in page


def test_a_run_whose_load_phase_saturated_is_no_pass() -> None:
    """``gateprobe run`` (and the gate) never exit 0 on a latency phase left unjudged."""
    from gateprobe.commands.pipeline import run_exit_code
    from gateprobe.core.events import Phase

    saturated = Phase("latency", "skipped", "saturated", "latency", {"saturated": {"why": "x"}})
    assert run_exit_code([Phase("conformance", "passed"), saturated]) == SATURATED_EXIT
    assert run_exit_code([Phase("conformance", "failed"), saturated]) == 1
    assert run_exit_code([Phase("conformance", "passed")]) == 0
