"""Tests of the fuzz cost guard."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from gateprobe.core.console import Console
from gateprobe.core.targets import Target
from gateprobe.engine.fuzz_guard import (
    VALID_PROMPT,
    Guard,
    RequestCapReached,
    ShareUsed,
    examples_for,
    parse_phases,
    phases_for,
)
from gateprobe.reference import RunningGateway

LOCAL = Target("http://127.0.0.1:8080", "ohmygpt", "k")
REMOTE = Target("https://api.example.com", "ohmygpt", "k")


def test_defaults_are_tighter_off_loopback() -> None:
    assert Guard.for_target(LOCAL).max_requests == 2000
    assert Guard.for_target(REMOTE).max_requests == 200
    assert Guard.for_target(REMOTE, max_requests=7).max_requests == 7
    assert (examples_for(LOCAL, None), examples_for(REMOTE, None), examples_for(REMOTE, 3)) == \
        (20, 5, 3)


def test_the_coverage_phase_runs_on_loopback_unless_the_phases_are_named() -> None:
    assert phases_for(LOCAL, None) == ("examples", "coverage", "fuzzing")
    assert phases_for(REMOTE, None) == ("examples", "fuzzing")
    assert phases_for(REMOTE, ("coverage",)) == ("coverage",)
    assert parse_phases(" fuzzing, examples,fuzzing ", "x") == ("examples", "fuzzing")
    for text, wrong in (("", "no phase"), ("examples,stateful", "stateful")):
        with pytest.raises(ValueError, match=f"^x: {wrong} is not a fuzz phase"):
            parse_phases(text, "x")


def test_valid_values_are_aimed_and_capped() -> None:
    guard = Guard.for_target(LOCAL, max_tokens=64)
    body = {"model": "random", "prompt": "junk", "max_tokens_to_sample": 10**9}
    guard.admit("/v1/complete", body)
    assert body == {"model": "claude-2", "prompt": VALID_PROMPT, "max_tokens_to_sample": 64}
    chat = {"model": "x", "max_tokens": 5, "max_completion_tokens": 100}
    guard.admit("/v1/chat/completions", chat)
    assert chat == {"model": "gpt-3.5-turbo", "max_tokens": 5, "max_completion_tokens": 64}


def test_violations_are_kept() -> None:
    guard = Guard.for_target(LOCAL)
    body = {"model": 5, "prompt": "", "max_tokens": -3, "max_tokens_to_sample": True}
    guard.admit("/v1/complete", dict(body))
    kept = dict(body)
    guard.admit("/v1/complete", kept)
    assert kept == body


def test_request_cap() -> None:
    guard = Guard.for_target(REMOTE, max_requests=2)
    guard.admit("/v1/models", None)
    guard.admit("/v1/models", None)
    with pytest.raises(RequestCapReached, match="cap reached"):
        guard.admit("/v1/models", None)


def test_each_operation_goes_deep_but_leaves_a_reserve_for_the_later_ones() -> None:
    """An early operation fed many examples stops where only the later operations' reserve
    (half a fair share each) is left; what it is refused is neither sent nor counted."""
    guard = Guard.for_target(REMOTE, max_requests=12)
    guard.operations = 3  # reserve: 12 // 6 = 2 for each later operation
    for _ in range(8):
        guard.admit("/v1/models", None)
    with pytest.raises(ShareUsed, match=r"/v1/models sent its share .* \(8 of 12\)"):
        guard.admit("/v1/models", None)
    guard.admit("/v1/embeddings", None)  # may use 12 - 8 - 2 = 2
    guard.admit("/v1/embeddings", None)
    with pytest.raises(ShareUsed):
        guard.admit("/v1/embeddings", None)
    guard.admit("/v1/messages", None)  # the last gets what is left: 2
    guard.admit("/v1/messages", None)
    with pytest.raises(ShareUsed):
        guard.admit("/v1/messages", None)
    assert guard.sent == 12


@pytest.mark.parametrize(("select", "ignored"), [
    (None, set()),
    ("errors", {"test_fuzz.py", "test_sdk.py"}),
    ("sdk or stream", {"test_fuzz.py"}),
    ("not sdk", {"test_sdk.py"}),
    # the management category's stateful run sends through the fuzz module's hook (the guard)
    ("management", {"test_sdk.py"}),
])
def test_a_selection_collects_the_costly_modules_only_when_it_needs_them(
        select: str | None, ignored: set[str]) -> None:
    from gateprobe.commands.conformance_runner import ConformanceOptions, _argv

    argv = _argv(LOCAL, ConformanceOptions(select=select))
    assert {Path(a.removeprefix("--ignore=")).name for a in argv
            if a.startswith("--ignore=")} == ignored


@pytest.mark.slow
def test_a_run_leaves_no_hook_or_check_in_schemathesis_for_later_callers(
        gateway: RunningGateway, tmp_path: Path) -> None:
    """schemathesis's hooks and checks are process-wide: a run's guard left there sent a later
    caller's requests through it (its open breaker skipped two of this suite's tests)."""
    from schemathesis.checks import CHECKS
    from schemathesis.hooks import GLOBAL_HOOK_DISPATCHER

    from gateprobe.commands.conformance_runner import ConformanceOptions, run_conformance

    target = Target(gateway.base_url, "ohmygpt", "gp-vip-0001",
                    endpoints=frozenset({"embeddings"}))
    result = run_conformance(target, ConformanceOptions(select="fuzz", max_examples=2,
                                                        report_dir=tmp_path),
                             Console(io.StringIO(), io.StringIO()))
    assert result.outcomes["passed"] >= 1, result.tests
    hooks = GLOBAL_HOOK_DISPATCHER.get_all_by_name("before_call")
    assert not [h for h in hooks if h.__module__.endswith("test_fuzz")], hooks
    assert "gateprobe" not in CHECKS.get_all_names()
