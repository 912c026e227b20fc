"""OpenAI's stateful APIs across requests: stored responses (retrieved, listed, deleted), a
response created with ``store: false``, a continuation (``previous_response_id``), a cancelled
background response, a conversation's items, a stored chat completion.

Each flow needs ids earlier answers gave, so these are not static cases: ``gateprobe.engine.stateful``
runs them (every request paced and bounded by the run) and ``state.flow`` judges them. In the
``endpoint`` category, only against a target that declares the family (``responses``,
``conversations``, ``chat_store``); the plain and streamed requests of the Responses API are
cases of ``gateprobe.engine.cases`` (``responses_cases``).
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import httpx
import pytest

from gateprobe.core.findings import Finding
from gateprobe.core.targets import Target
from gateprobe.engine.pytest_plugin import admit_tokens, describe
from gateprobe.engine.runstate import RunState
from gateprobe.engine.stateful import FAMILY_OF_FLOW, FLOWS, flow_tokens, run_flow

pytestmark = pytest.mark.endpoint


def _judge(target: Target, record: Any, flow: Any, label: str) -> list[Finding]:
    import gateprobe.protocols.conformance  # noqa: F401  (registers the built-in checks)
    from gateprobe.core.checks import Context, run_checks, select

    ctx = Context.of(target, "openai")
    exchange = flow.record()
    checks = select(["state.flow", "transport.error", "security.key_echoed"])
    found = [replace(f, case=label) for f in run_checks(ctx, exchange, checks)]
    for step in flow.exchanges:  # a step that broke says why the flow could not be judged
        found += [replace(f, case=label) for f in run_checks(
            ctx, step, select(["transport.error", "security.key_echoed"]))]
    for finding in found:
        record(finding)
    return found


@pytest.mark.parametrize("name", list(FLOWS))
def test_state_flow(name: str, gateprobe_target: Target, gateprobe_http: httpx.Client,
                    gateprobe_run: RunState, record_finding: Any, count_case: Any) -> None:
    """The flow's requests in order; what they promise across requests holds."""
    family = FAMILY_OF_FLOW[name]
    if family not in gateprobe_target.served:
        pytest.skip(f"the target does not declare {family} (its entry's endpoints:)")
    admit_tokens(gateprobe_run, flow_tokens(name, gateprobe_target))  # the run's token cap
    flow = run_flow(name, gateprobe_http, gateprobe_target, gateprobe_run)
    for step in flow.exchanges:
        count_case(step.endpoint.split("?", 1)[0])
    found = _judge(gateprobe_target, record_finding, flow, f"state flow: {name}")
    if found:
        pytest.fail(describe(found), pytrace=False)
