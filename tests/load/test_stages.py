"""Ramps and stages (``--stages 30s:10,60s:50,30s:0``): parsed as k6 writes them, ramped in
straight lines, refused in one line when wrong; and (slow) a closed-loop ramp and an arrival
ramp against a reference gateway, the load following the stages."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from gateprobe.cli import main
from gateprobe.commands.load.runner import LoadOptions, plan_load
from gateprobe.commands.load.stages import parse_stages, peak, target_at, total_s, users_at
from gateprobe.core.console import Console
from gateprobe.core.errors import UsageError
from gateprobe.core.targets import Target
from gateprobe.reference import Timing
from gateway_fixtures import MakeGateway


def test_stages_parse_as_k6_writes_them() -> None:
    stages = parse_stages("30s:10, 1m:50,500ms:0,2:3")
    assert stages == ((30.0, 10.0), (60.0, 50.0), (0.5, 0.0), (2.0, 3.0))
    assert total_s(stages) == 92.5 and peak(stages) == 50.0


def test_each_stage_ramps_in_a_straight_line_from_the_last() -> None:
    stages = parse_stages("10s:10,10s:50,10s:0")
    assert [target_at(stages, t) for t in (0, 5, 10, 15, 20, 25)] == [0, 5, 10, 30, 50, 25]
    assert target_at(stages, 30) is None
    assert users_at(stages, 4.6) == 5 and users_at(stages, 31) is None


@pytest.mark.parametrize(("text", "message"), [
    ("30s", "'30s' is not DURATION:TARGET"),
    ("30x:10", "'30x:10' is not DURATION:TARGET"),
    ("0s:10", "'0s:10' lasts no time"),
    ("", "expected 1 to 100 stages"),
    ("10s:-1", "'10s:-1' is not DURATION:TARGET"),
])
def test_a_bad_stage_is_named(text: str, message: str) -> None:
    with pytest.raises(UsageError, match=message):
        parse_stages(text)


@pytest.mark.parametrize(("argv", "message"), [
    (["--stages", "10s:abc"], "--stages: '10s:abc' is not DURATION:TARGET"),
    (["--stages", "10s:0"], "no stage has a user"),
    (["--stages", "10s:5", "--arrival", "constant", "--rate", "5"], "not with --rate"),
    (["--stages", "10s:500", "--arrival", "poisson"], "stay within --max-rps 200"),
    (["--stages", "2h:5"], "above 3600 s"),
])
def test_bad_stages_are_one_line_and_exit_2(argv: list[str], message: str) -> None:
    out, err = io.StringIO(), io.StringIO()
    assert main(["load", "latency", *argv], Console(out, err)) == 2
    assert message in err.getvalue() and len(err.getvalue().strip().splitlines()) == 1


def test_stages_are_for_the_latency_scenario() -> None:
    with pytest.raises(UsageError, match="--stages is for the latency scenario, not tasks"):
        LoadOptions("tasks", stages=((1.0, 1.0),)).check()


def test_the_plan_takes_its_duration_users_and_rate_from_the_stages() -> None:
    target = Target("http://127.0.0.1:9", "ohmygpt", "sk-key")
    closed = plan_load(target, LoadOptions("latency", stages=parse_stages("5s:3,5s:8,2s:0")))
    assert (closed.duration_s, closed.users, closed.stages) == (12.0, 8, [[5.0, 3.0],
                                                                         [5.0, 8.0],
                                                                         [2.0, 0.0]])
    rate = plan_load(target, LoadOptions("latency", arrival="poisson",
                                         stages=parse_stages("5s:20,5s:40")))
    assert (rate.duration_s, rate.rate, rate.users) == (10.0, 40.0, 4)
    cut = plan_load(target, LoadOptions("latency", duration_s=3.0,
                                        stages=parse_stages("5s:3,5s:8")))
    assert cut.duration_s == 3.0  # --duration is the cap, the stages cut short


def _starts(report: Path) -> list[float]:
    rows = [json.loads(line) for line in (report / "samples.jsonl").read_text().splitlines()]
    t = sorted(r["t"] for r in rows if not r.get("dropped"))
    return [x - t[0] for x in t]


@pytest.mark.slow
@pytest.mark.parametrize("arrival", ["closed", "constant"])
def test_the_load_follows_the_stages(make_gateway: MakeGateway, tmp_path: Path,
                                     monkeypatch: pytest.MonkeyPatch, arrival: str) -> None:
    """A step up, then hold: the second half carries several times the first's requests
    (closed: 1 user, then 6; constant: 4/s, then 24/s)."""
    gw = make_gateway(timing=Timing(ttft_ms=20, itl_ms=5))
    monkeypatch.setenv("GP_TEST_KEY", "gp-vip-0001")
    stages = "0.1s:1,2s:1,0.1s:6,2s:6" if arrival == "closed" else "0.1s:4,2s:4,0.1s:24,2s:24"
    out, err = io.StringIO(), io.StringIO()
    code = main(["load", "latency", "--base-url", gw.base_url, "--api-key-env", "GP_TEST_KEY",
                 "--max-tokens", "8", "--arrival", arrival, "--stages", stages,
                 "--processes", "1", "--report-dir", str(tmp_path)], Console(out, err))
    assert code == 0, out.getvalue() + err.getvalue()
    plan = json.loads((tmp_path / "plan.json").read_text())
    assert plan["duration_s"] == pytest.approx(4.2) and len(plan["stages"]) == 4
    starts = _starts(tmp_path)
    first = sum(1 for t in starts if t < 2.0)
    second = sum(1 for t in starts if 2.2 <= t < 4.2)
    assert first >= 3 and second > 3 * first, (first, second)
