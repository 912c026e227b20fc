"""Compare that helps choose a mirror: every endpoint the target declares is probed, a named
reference mirror is taken as right, and each difference shows every mirror's answer."""

from __future__ import annotations

import io
import re
from pathlib import Path

import pytest

from gateprobe.cli import main
from gateprobe.commands import compare
from gateprobe.commands.compare import (
    CompareOptions,
    MirrorResult,
    ProbeResult,
    compare_cases,
    differences,
    first_differing_event,
    run_compare,
)
from gateprobe.core.console import Console
from gateprobe.core.targets import ENDPOINTS, PROFILES, Target
from gateprobe.reference import Timing
from gateway_fixtures import MakeGateway

FAST = Timing(ttft_ms=5, itl_ms=1)
REPR = re.compile(r"\{'|\['|\bTrue\b|\bFalse\b|\bNone\b|object at 0x")


@pytest.mark.slow
@pytest.mark.parametrize("endpoints", [None, frozenset({"chat", "models"}),
                                       frozenset({"embeddings", "messages"})])
@pytest.mark.parametrize("profile", PROFILES)
def test_compare_probes_every_endpoint_the_target_declares(
        profile: str, endpoints: frozenset[str] | None) -> None:
    target = Target("http://127.0.0.1:1", profile, "k", endpoints=endpoints)
    cases = compare_cases(target)
    assert {c.path for c in cases} == {ENDPOINTS[name] for name in target.served}
    for name in target.served:  # each endpoint's plain request, not only goldens and streams
        assert any(c.category == "endpoint" and c.path == ENDPOINTS[name] for c in cases)
    if "chat" in target.served:
        assert any(c.path == "/v1/chat/completions" and not (c.body or {}).get("stream")
                   for c in cases)
        assert any(c.path == "/v1/chat/completions" and (c.body or {}).get("stream")
                   for c in cases)


@pytest.mark.slow
def test_compare_under_the_openai_profile_sends_models_embeddings_and_plain_chat(
        make_gateway: MakeGateway, tmp_path: Path) -> None:
    a, b = make_gateway(timing=FAST), make_gateway(timing=FAST)
    result = run_compare(
        Target(a.base_url, "openai", "gp-vip-0001"),
        CompareOptions(samples=1, long_request_s=0.2, report_dir=tmp_path,
                       mirrors={"a": a.base_url, "b": b.base_url}),
        Console(io.StringIO(), io.StringIO()))
    probes = [p.probe for p in result.mirrors[0].probes]
    for wanted in ("endpoint: models (/v1/models)", "endpoint: embeddings (/v1/embeddings)",
                   "endpoint: chat (/v1/chat/completions)"):
        assert wanted in probes, probes
    assert result.exit_code == 0, [p.verdict for p in result.mirrors[0].probes]


@pytest.mark.slow
def test_a_named_reference_is_right_and_answers_sit_side_by_side(
        make_gateway: MakeGateway, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """One correct mirror and two that drop the stream terminator: by majority the correct
    one would be the odd one out; with --reference it is the one taken as right."""
    good = make_gateway(timing=FAST)
    bad = [make_gateway(timing=FAST, faults=("stream-drop-terminator",)) for _ in range(2)]
    names = [f"127.0.0.1:{url.rsplit(':', 1)[1]}" for url in
             (good.base_url, bad[0].base_url, bad[1].base_url)]
    monkeypatch.setenv("GP_KEY", "gp-vip-0001")
    out, err = io.StringIO(), io.StringIO()
    code = main(["compare", "--base-url", good.base_url, "--base-url", bad[0].base_url,
                 "--base-url", bad[1].base_url, "--api-key-env", "GP_KEY", "--samples", "1",
                 "--long-request-s", "0.2", "--reference", names[0], "--report-dir",
                 str(tmp_path)], Console(out, err))
    assert code == 1, out.getvalue() + err.getvalue()
    import json

    summary = json.loads((tmp_path / "summary.json").read_text())["compare"]
    diffs = summary["differences"]
    assert diffs and summary["reference"] == names[0]
    for d in diffs:
        assert d["reference"] == names[0] and names[0] not in d["odd"] and d["odd"]
        assert set(d["answers"]) == set(names)
    stream = next(d for d in diffs if d["probe"].startswith("stream: chat"))
    assert "[DONE]" in stream["answers"][names[0]]
    assert all("[DONE]" not in stream["answers"][n] for n in names[1:])
    text = out.getvalue()
    assert f"{names[0]} (reference)" in text
    assert all(d["probe"] in text for d in diffs)  # no probe name cut short
    assert stream["answers"][names[1]] in text  # the faulty answer, whole, in the console
    assert not [line for line in text.splitlines() if REPR.search(line)]
    markdown = (tmp_path / "summary.md").read_text()
    assert f"Differences (taken as right: {names[0]})" in markdown
    assert "[DONE]" in markdown
    assert "gp-vip-0001" not in markdown + text


@pytest.mark.slow
def test_without_a_reference_the_majority_is_taken_as_right(make_gateway: MakeGateway,
                                                            tmp_path: Path) -> None:
    good = make_gateway(timing=FAST)
    bad = [make_gateway(timing=FAST, faults=("stream-drop-terminator",)) for _ in range(2)]
    result = run_compare(
        Target(good.base_url, "ohmygpt", "gp-vip-0001"),
        CompareOptions(samples=1, long_request_s=0.2, report_dir=tmp_path,
                       mirrors={"good": good.base_url, "bad1": bad[0].base_url,
                                "bad2": bad[1].base_url}),
        Console(io.StringIO(), io.StringIO()))
    majority = differences(result.mirrors)
    assert majority and all(d["odd"] == ["good"] and d["reference"] == "" and d["majority"]
                            for d in majority)
    named = differences(result.mirrors, "good")
    assert all(sorted(d["odd"]) == ["bad1", "bad2"] for d in named)


def test_an_unknown_reference_is_a_usage_error_with_a_suggestion(tmp_path: Path) -> None:
    out, err = io.StringIO(), io.StringIO()
    code = main(["compare", "--base-url", "http://127.0.0.1:1", "--base-url",
                 "http://127.0.0.1:2", "--reference", "127.0.0.1:3", "--dry-run"],
                Console(out, err))
    assert code == 2
    assert err.getvalue().startswith("gateprobe: --reference '127.0.0.1:3' is not one of the "
                                     "mirrors (did you mean")
    assert err.getvalue().count("\n") == 1


def _mirror(name: str, verdict_status: int, events: list[str] | None = None) -> MirrorResult:
    """A mirror that answered one probe with ``verdict_status`` (a synthetic result: the
    majority rule is about counting, not about sending)."""
    probe = ProbeResult("stream: chat (/v1/chat/completions)", verdict_status, [], {}, None,
                        f"{verdict_status} answer", events or [], f"curl {name}")
    return MirrorResult(name, f"http://{name}", probes=[probe])


@pytest.mark.parametrize(("statuses", "odd"), [
    ((200, 500), []),  # two that differ: neither is the odd one
    ((200, 200, 500), ["m3"]),  # two of three: a strict majority
    ((200, 200, 500, 500), []),  # a tie: no coin toss
    ((200, 200, 500, 500, 502), []),  # the most common, but not more than half
    ((200, 200, 200, 500, 502), ["m4", "m5"]),
])
def test_the_odd_ones_are_named_only_against_a_strict_majority(
        statuses: tuple[int, ...], odd: list[str]) -> None:
    mirrors = [_mirror(f"m{i + 1}", s) for i, s in enumerate(statuses)]
    status = next(d for d in differences(mirrors) if d["what"] == "status")
    assert status["odd"] == odd and status["majority"] == bool(odd)
    assert status["reference"] == ""
    assert status["curls"] == {m.name: f"curl {m.name}" for m in mirrors}
    named = next(d for d in differences(mirrors, "m1") if d["what"] == "status")
    assert named["odd"] == [m.name for m in mirrors if m.probes[0].status != statuses[0]]
    assert not named["majority"]


def test_the_first_differing_event_shows_each_streams_event_at_that_place() -> None:
    assert first_differing_event({"a": ["x", "y"], "b": ["x", "y"]}) == {}
    assert first_differing_event({"a": [], "b": []}) == {}
    assert first_differing_event({"a": ["x", "y", "[DONE]"], "b": ["x", "z"]}) == {
        "a": "#2: y", "b": "#2: z"}
    assert first_differing_event({"a": ["x", "[DONE]"], "b": ["x"]}) == {
        "a": "#2: [DONE]", "b": "#2: none (the stream ended after 1 events)"}


@pytest.mark.slow
def test_two_mirrors_that_differ_are_shown_as_differing_with_a_repro_each(
        make_gateway: MakeGateway, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """One correct mirror and one that drops the stream terminator, no --reference: a
    majority of two would be a coin toss (it once called the correct mirror the odd one), so
    neither is; the stream's difference shows where the answers part, and each mirror's
    curl replays the probe against that mirror."""
    good = make_gateway(timing=FAST)
    bad = make_gateway(timing=FAST, faults=("stream-drop-terminator",))

    def no_long_request(*args: object) -> None:
        raise AssertionError("--long-request-s 0 sends no long request")

    monkeypatch.setattr(compare, "_long_request", no_long_request)
    out = io.StringIO()
    result = run_compare(
        Target(good.base_url, "ohmygpt", "gp-vip-0001", "GP_CMP_KEY"),
        CompareOptions(samples=1, long_request_s=0, report_dir=tmp_path,
                       mirrors={"good": good.base_url, "bad": bad.base_url}),
        Console(out, io.StringIO()))
    assert all(m.long_request["verdict"] == "not run: --long-request-s 0"
               for m in result.mirrors)
    diffs = differences(result.mirrors)
    assert diffs and all(d["odd"] == [] and not d["majority"] for d in diffs)
    stream = next(d for d in diffs if d["probe"].startswith("stream: chat"))
    first = stream["first_event"]
    assert first["good"].endswith(": [DONE]") and "the stream ended after" in first["bad"]
    assert first["good"].split(":")[0] == first["bad"].split(":")[0]  # the same place
    for name, gateway in (("good", good), ("bad", bad)):
        curl = stream["curls"][name]
        assert curl.startswith("curl ") and gateway.base_url + "/v1/chat/completions" in curl
        assert "$GP_CMP_KEY" in curl and "gp-vip-0001" not in curl
    text = out.getvalue()
    assert "none: no reference and no strict majority" in text
    assert f"repro on bad: {stream['curls']['bad']}" in text
    assert first["bad"] in text and "no long-request probe" in text
    markdown = (tmp_path / "summary.md").read_text()
    assert stream["curls"]["good"] in markdown and "first differing event" in markdown
    page = (tmp_path / "report.html").read_text()
    assert "first differing event" in page and "repro" in page and "odd one out" in page


@pytest.mark.slow
def test_long_request_s_zero_in_the_dry_run_and_a_negative_one_refused() -> None:
    out, err = io.StringIO(), io.StringIO()
    argv = ["compare", "--base-url", "http://127.0.0.1:1", "--base-url", "http://127.0.0.1:2",
            "--dry-run", "--long-request-s"]
    assert main([*argv, "0"], Console(out, err)) == 0, err.getvalue()
    assert "none (--long-request-s 0)" in out.getvalue()
    assert "the long request is sized" not in out.getvalue()
    assert main([*argv, "-1"], Console(out, err)) == 2
    assert "--long-request-s >= 0" in err.getvalue() and err.getvalue().count("\n") == 1
