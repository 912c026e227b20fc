"""The Realtime API over a real WebSocket: a session's server events through their grammar, and
a bad key, no key and a model that is not a realtime one refused at the handshake.

In the ``stream`` category (a session is an event stream), only against a target that declares
``realtime``; the model is the target's ``realtime`` model (``--model realtime=NAME``;
``gpt-4o-realtime-preview`` by default). The time from ``response.create`` to the first
delta is said among the run's information lines.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from gateprobe.core.targets import Target
from gateprobe.engine.pytest_plugin import INFORMATION_KEY, describe
from gateprobe.engine.realtime_session import judge, run_session

pytestmark = pytest.mark.stream

REFUSALS = {"bad key": ("bad", "bad_key"), "missing key": ("none", "missing_key"),
            "not a realtime model": ("default", "bad_model")}


def _model(target: Target) -> str:
    return target.models["realtime"]


def _served(target: Target) -> None:
    if "realtime" not in target.served:
        pytest.skip("the target does not declare realtime (its entry's endpoints:)")


def _report(target: Target, found: list[Any], label: str, record: Any) -> None:
    found = [replace(f, case=label) for f in found]
    for finding in found:
        record(finding)
    if found:
        pytest.fail(describe(found), pytrace=False)


def test_realtime_session(gateprobe_target: Target, record_finding: Any, count_case: Any,
                          request: pytest.FixtureRequest) -> None:
    """session.created first, response.created -> deltas -> response.done, error events with
    their error object."""
    _served(gateprobe_target)
    result = run_session(gateprobe_target, _model(gateprobe_target))
    count_case(result.exchange.endpoint)
    if result.first_delta_ms is not None:  # a measurement, said with the run's information
        request.config.stash[INFORMATION_KEY].append(
            f"realtime: the first delta came {result.first_delta_ms:.1f} ms after "
            "response.create")
    _report(gateprobe_target, judge(gateprobe_target, result), "realtime session",
            record_finding)


@pytest.mark.parametrize("name", list(REFUSALS))
def test_realtime_handshake_refused(name: str, gateprobe_target: Target, record_finding: Any,
                                    count_case: Any) -> None:
    """Refused before the upgrade, with a 4xx (401 for a key) in OpenAI's envelope."""
    _served(gateprobe_target)
    auth, kind = REFUSALS[name]
    model = "gpt-3.5-turbo" if kind == "bad_model" else _model(gateprobe_target)
    result = run_session(gateprobe_target, model, auth)
    count_case(result.exchange.endpoint)
    _report(gateprobe_target, judge(gateprobe_target, result, kind),
            f"realtime handshake: {name}", record_finding)
