"""``gateprobe load sweep``: goodput per request, the knee, its objective, saturated levels,
the achieved rate; the flags; and (slow) a sweep against a reference gateway with a capacity
limit, whose knee must be within 10% of that capacity's rate."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pytest

from gateprobe.cli import main
from gateprobe.commands.load.runner import LoadResult
from gateprobe.commands.load.scenarios import show
from gateprobe.commands.load.slo import evaluate_sweep, meets, request_bounds, validate
from gateprobe.commands.load.sweep import (
    Level,
    SweepOptions,
    achieved_rps,
    concurrency_list,
    judge_sweep,
    level_row,
)
from gateprobe.core.console import Console
from gateprobe.core.errors import UsageError
from gateprobe.core.loadresult import SweepResult, result_of
from gateprobe.reference import Timing
from gateway_fixtures import MakeGateway


def row(name: str, rps: float, share: float, saturated: str = "", rate: float | None = None,
        users: int = 4) -> dict[str, Any]:
    """One level's row as ``sweep.level_row`` writes it."""
    return {"name": name, "arrival": "closed" if rate is None else "constant", "users": users,
            "rate": rate, "achieved_rps": rps, "requests": 100, "latency": {
                "requests": 100, "errors": 0, "error_rate": 0.0,
                "ttft_ms": {"count": 100, "p50": 50.0, "p99": 60.0 + 1000 * (1 - share)}},
            "output_tokens_per_s": rps * 16, "rate_limited_share": 0.0,
            "goodput_rps": rps * share, "goodput_share": share, "saturated": saturated,
            "limited_by_target": "", "dir": f"level-{name}"}


LEVELS = [row("synchronous", 5.0, 1.0, users=1), row("rate 10/s", 10.0, 1.0, rate=10.0),
          row("rate 15/s", 15.0, 0.97, rate=15.0), row("rate 18/s", 17.5, 0.80, rate=18.0),
          row("throughput", 20.0, 0.05, users=64)]


def judged(rows: list[dict[str, Any]], slo: dict[str, float] | None = None,
           threshold: float = 0.95) -> SweepResult:
    verdict = judge_sweep(rows, slo or {}, SweepOptions(threshold=threshold), "http://x")
    result = result_of(json.loads(json.dumps(verdict)))  # as read back from verdict.json
    assert isinstance(result, SweepResult)
    return result


def test_the_knee_is_the_highest_level_meeting_the_goodput_threshold() -> None:
    result = judged(LEVELS)
    assert result.knee_level is not None and result.knee_level.name == "rate 15/s"
    assert result.max_sustainable_rps == 15.0 and result.ok and not result.knee_hidden
    assert judged(LEVELS, threshold=0.8).max_sustainable_rps == 17.5
    assert judged(LEVELS, threshold=1.0).max_sustainable_rps == 10.0


def test_a_saturated_level_is_not_judged_and_may_hide_the_knee() -> None:
    rows = [*LEVELS[:2], row("rate 15/s", 15.0, 1.0, "loop lag 40 ms", rate=15.0), *LEVELS[3:]]
    result = judged(rows)
    # Its perfect goodput measured nothing: the knee stays below it, and says it may be higher.
    assert result.max_sustainable_rps == 10.0
    assert "saturated at rate 15/s" in result.knee_hidden and result.saturated
    assert not result.ok
    # Saturated only above a knee that already meets the objective: the objective holds.
    met = judged(rows, {"max_sustainable_rps_min": 8.0})
    assert met.ok and not met.saturated and met.knee_hidden


def test_the_knee_is_gated_by_max_sustainable_rps_min() -> None:
    assert judged(LEVELS, {"max_sustainable_rps_min": 12.0}).ok
    failed = judged(LEVELS, {"max_sustainable_rps_min": 16.0})
    assert not failed.ok and failed.failed_checks == ("slo.max_sustainable_rps_min",)
    assert failed.reasons == ("max_sustainable_rps_min: 15 < 16",)
    # Below its bound but a saturated level above might have passed: no verdict, not a FAIL.
    hidden = [*LEVELS[:3], row("rate 18/s", 17.5, 1.0, "lag", rate=18.0), LEVELS[4]]
    unjudged = judged(hidden, {"max_sustainable_rps_min": 16.0})
    assert unjudged.saturated and not unjudged.failed_checks
    assert evaluate_sweep(None, {"max_sustainable_rps_min": 1.0})[0].observed == 0.0


def test_no_level_sustained_is_a_knee_of_none() -> None:
    result = judged([row("synchronous", 5.0, 0.5, users=1)], {"max_sustainable_rps_min": 1.0})
    assert result.knee is None and result.max_sustainable_rps is None and not result.ok


def test_the_sweep_table_marks_the_knee_and_saturated_levels() -> None:
    rows = [*LEVELS[:3], row("rate 18/s", 17.5, 1.0, "lag", rate=18.0), LEVELS[4]]
    verdict = judge_sweep(rows, {"ttft_p99_ms": 150.0}, SweepOptions(), "http://x")
    out = io.StringIO()
    show(json.loads(json.dumps(verdict)), Console(out, io.StringIO()))
    text = out.getvalue()
    lines = {line.split("  ")[0]: line for line in text.splitlines()}
    assert lines["rate 15/s"].rstrip().endswith("knee")
    assert lines["rate 18/s"].rstrip().endswith("SATURATED")
    assert "ttft_ms <= 150" in text and "knee (goodput >= 95%): 15.0 requests/s" in text


def test_goodput_reads_each_objective_per_request() -> None:
    slo = validate({"ttft_p50_ms": 100, "ttft_p99_ms": 300, "itl_p99_ms": 50,
                    "error_rate_max": 0.01, "endpoints": {"chat": {"ttft_p95_ms": 200}}},
                   "test")
    assert request_bounds(slo) == {"ttft_ms": 300.0, "itl_ms": 50.0}
    assert request_bounds(slo, "chat") == {"ttft_ms": 200.0, "itl_ms": 50.0}
    bounds = request_bounds(slo)
    good = {"ok": True, "ttft_ms": 250.0, "itl_ms": [10.0, 49.0], "tpot_ms": None}
    assert meets(good, bounds)
    assert not meets({**good, "ttft_ms": 301.0}, bounds)
    assert not meets({**good, "itl_ms": [10.0, 51.0]}, bounds)
    assert not meets({**good, "ok": False}, bounds)
    assert not meets({**good, "ttft_ms": None}, bounds)  # no content: not a good answer
    assert not meets({**good, "ttft_ms": 250.0}, request_bounds(slo, "chat"))


def lagging_level(ttfts: list[float], lag_p99_ms: float) -> LoadResult:
    verdict = {"scenario": "latency", "requests": len(ttfts), "latency": {},
               "generator": {"saturated": True, "why": "the load generator saturated: ...",
                             "bound_ms": 2.0, "lag_ms": {"loop": {"p99": lag_p99_ms,
                                                                  "n": 100.0}}}}
    return LoadResult("latency", 0, Path("."), verdict, [], "")


def stream_at(t: float, ttft: float) -> dict[str, Any]:
    return {"t": t, "endpoint": "/v1/chat/completions", "ok": True, "status": 200,
            "ttft_ms": ttft, "itl_ms": [2.0], "tpot_ms": 2.0, "output_tokens": 11}


def test_a_lagging_level_is_judged_where_its_lag_cannot_move_the_goodput() -> None:
    """Lag p99 5 ms: a request's times may be 15 ms off. Requests far under the 300 ms bound
    are good whatever the lag; one 10 ms under it might not be."""
    slo = {"ttft_p99_ms": 300.0}
    level = Level("rate 10/s", "constant", 4, 10.0)
    far = [stream_at(i / 10, 100.0) for i in range(100)]
    clear = level_row(level, lagging_level([100.0] * 100, 5.0), far, slo, 0.95)
    assert clear["saturated"] == "" and clear["goodput_range"] == [1.0, 1.0]
    near = [stream_at(i / 10, 100.0 if i < 90 else 290.0) for i in range(100)]
    undecided = level_row(level, lagging_level([100.0] * 100, 5.0), near, slo, 0.95)
    assert undecided["goodput_share"] == 1.0 and undecided["goodput_range"] == [0.9, 1.0]
    assert undecided["saturated"].startswith("the load generator saturated")
    # The same level is decided against a threshold both ends of the range meet.
    assert level_row(level, lagging_level([100.0] * 100, 5.0), near, slo, 0.9)["saturated"] == ""


def test_the_achieved_rate_counts_the_gaps_of_each_user() -> None:
    # Four closed-loop users, each starting every 0.25 s for 3 s: 4/s each, 16/s together.
    starts = [u * 0.001 + 0.25 * i for u in range(4) for i in range(12)]
    assert achieved_rps(starts, 4) == pytest.approx(16.0, rel=0.02)
    # Arrivals phased evenly: one stream of 16/s.
    assert achieved_rps([i / 16 for i in range(48)]) == pytest.approx(16.0)
    assert achieved_rps([1.0], 1) == 0.0


@pytest.mark.parametrize(("argv", "message"), [
    (["--levels", "0"], "--levels must be within 1..50"),
    (["--concurrency", "1,x"], "--concurrency '1,x': expected numbers"),
    (["--concurrency", "0,4"], "each level needs at least 1 user"),
    (["--goodput-threshold", "1.5"], "--goodput-threshold must be within 0..1"),
    (["--level-duration", "0"], "--level-duration must be > 0"),
    (["--duration", "10"], "levels last --level-duration each"),
    (["--web"], "not with --master, --worker or --web"),
])
def test_bad_sweep_flags_are_one_line_and_exit_2(argv: list[str], message: str) -> None:
    out, err = io.StringIO(), io.StringIO()
    assert main(["load", "sweep", *argv], Console(out, err)) == 2
    assert message in err.getvalue() and len(err.getvalue().strip().splitlines()) == 1


def test_the_dry_run_bounds_the_whole_sweep() -> None:
    out, err = io.StringIO(), io.StringIO()
    assert main(["load", "sweep", "--dry-run", "--levels", "3", "--level-duration", "5",
                 "--max-rps", "10"], Console(out, err)) == 0
    text = out.getvalue()
    assert "a sweep of 5 levels (synchronous (1 user), throughput (64 users), 3 constant " \
           "rates" in text
    assert "at most 250 requests and 16000 generated tokens in all" in text
    assert "nothing was sent" in text


def test_concurrency_list_is_sorted_and_unique() -> None:
    assert concurrency_list("16,1,4,4") == (1, 4, 16)
    with pytest.raises(UsageError):
        SweepOptions(arrival="closed").check()


SLO = "ttft_p99_ms: {ttft}\nerror_rate_max: 0.05\n"


@pytest.mark.slow
def test_the_sweep_finds_the_knee_of_a_capacity_limited_gateway(
        make_gateway: MakeGateway, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Done when: K streams at once of d seconds each serve K/d requests per second; the
    knee is within 10% of it. The objective allows a queue of one stream at most; the
    throughput level's 16 users queue far longer."""
    capacity, timing, tokens = 2, Timing(ttft_ms=20, itl_ms=5), 16
    stream_s = (timing.ttft_ms + (tokens - 1) * timing.itl_ms) / 1000
    gw = make_gateway(timing=timing, capacity=capacity)
    slo = tmp_path / "slo.yaml"
    slo.write_text(SLO.format(ttft=timing.ttft_ms + 1000 * stream_s))
    monkeypatch.setenv("GP_TEST_KEY", "gp-vip-0001")
    out, err = io.StringIO(), io.StringIO()
    code = main(["load", "sweep", "--base-url", gw.base_url, "--api-key-env", "GP_TEST_KEY",
                 "--max-tokens", str(tokens), "--levels", "5", "--level-duration", "2",
                 "--max-users", "16", "--goodput-threshold", "0.9", "--processes", "1",
                 "--slo", str(slo), "--report-dir", str(tmp_path / "sweep")],
                Console(out, err))
    result = result_of(json.loads((tmp_path / "sweep" / "verdict.json").read_text()))
    assert isinstance(result, SweepResult), out.getvalue() + err.getvalue()
    assert code == 0, out.getvalue() + err.getvalue()
    assert [lv.name for lv in result.levels][0] == "synchronous"
    assert result.levels[-1].name == "throughput" and result.knee != len(result.levels) - 1
    expected = capacity / stream_s
    assert result.max_sustainable_rps is not None, out.getvalue()
    assert abs(result.max_sustainable_rps - expected) <= 0.1 * expected, out.getvalue()
    assert "knee (goodput >= 90%)" in out.getvalue()
    page = (tmp_path / "sweep" / "report.html").read_text()
    assert "Goodput against offered load" in page and "Latency against throughput" in page


@pytest.mark.slow
def test_a_concurrency_sweep_below_its_knee_objective_exits_1(
        make_gateway: MakeGateway, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """One stream at a time (capacity 1) of about 0.1 s sustains about 10 requests/s: an
    objective of 40 is missed, named, and the exit code says so; 8 users queue 7 deep."""
    gw = make_gateway(timing=Timing(ttft_ms=20, itl_ms=5), capacity=1)
    slo = tmp_path / "slo.yaml"
    slo.write_text("ttft_p99_ms: 150\nmax_sustainable_rps_min: 40\n")
    monkeypatch.setenv("GP_TEST_KEY", "gp-vip-0001")
    out, err = io.StringIO(), io.StringIO()
    code = main(["load", "sweep", "--base-url", gw.base_url, "--api-key-env", "GP_TEST_KEY",
                 "--max-tokens", "16", "--concurrency", "1,8", "--level-duration", "2",
                 "--processes", "1", "--slo", str(slo), "--report-dir", str(tmp_path / "s")],
                Console(out, err))
    assert code == 1, out.getvalue() + err.getvalue()
    result = result_of(json.loads((tmp_path / "s" / "verdict.json").read_text()))
    assert isinstance(result, SweepResult) and result.mode == "concurrency"
    assert [lv.name for lv in result.levels] == ["concurrency 1", "concurrency 8"]
    assert result.knee == 0 and result.levels[1].goodput_share < 0.5
    assert result.failed_checks == ("slo.max_sustainable_rps_min",)
    assert "FAIL: max_sustainable_rps_min:" in out.getvalue()
