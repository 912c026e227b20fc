"""The propagation category: gateprobe's reference behind the gateway, as its upstream.

Each case scripts the upstream's answer to a fresh marker, sends the request through the
gateway and judges what reached the client (``gateprobe.engine.propagation``). The tests exist only
for a target that declares ``upstream:``; the upstream is the one already listening at its
``listen`` address, or one the run starts there.
"""

from __future__ import annotations

from collections.abc import Callable

import httpx
import pytest

from gateprobe.core.findings import Finding
from gateprobe.core.targets import Target
from gateprobe.engine.propagation import (
    CASES,
    Check,
    Inconclusive,
    Probe,
    UpstreamControl,
    run_case,
)
from gateprobe.engine.pytest_plugin import INFORMATION_KEY, describe
from gateprobe.engine.runstate import RunState

pytestmark = pytest.mark.propagation


@pytest.mark.parametrize(("check_id", "check"), CASES, ids=[c[0] for c in CASES])
def test_propagation(check_id: str, check: Check, gateprobe_target: Target,
                     gateprobe_http: httpx.Client, gateprobe_run: RunState,
                     propagation_upstream: UpstreamControl, request: pytest.FixtureRequest,
                     record_finding: Callable[[Finding], None],
                     count_case: Callable[[str], None]) -> None:
    """One expectation of what a gateway passes on from its upstream to its client."""
    probe = Probe(gateprobe_http, gateprobe_target, propagation_upstream, gateprobe_run)
    try:
        findings = run_case(probe, check_id, check)
    except Inconclusive as exc:
        pytest.skip(f"inconclusive: {exc}")
    finally:
        request.config.stash[INFORMATION_KEY].extend(probe.information)
    count_case(probe.path)
    for found in findings:
        record_finding(found)
    if findings:
        pytest.fail(describe(findings), pytrace=False)
