"""The management category: a key's life through the gateway's management API.

Each case creates at most two keys (at most ten in a run) and every key is deleted when the
module ends, pass or fail. See ``gateprobe.engine.management`` for what each case holds the gateway to.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from gateprobe.core.findings import Finding
from gateprobe.engine.management import ADMIN, LIFECYCLE, Check, KeyAdmin, ManagementUnavailable
from gateprobe.engine.pytest_plugin import describe

pytestmark = pytest.mark.management


@pytest.mark.parametrize("check", LIFECYCLE, ids=[c.__name__ for c in LIFECYCLE])
def test_management(check: Check, management_admin: KeyAdmin,
                    record_finding: Callable[[Finding], None],
                    count_case: Callable[[str], None]) -> None:
    """One documented promise of the management API, followed through one key."""
    try:
        findings = check(management_admin)
    except ManagementUnavailable as exc:
        pytest.fail(f"the management API did not answer as documented: {exc}", pytrace=False)
    count_case(ADMIN)
    for found in findings:
        record_finding(found)
    if findings:
        pytest.fail(describe(findings), pytrace=False)


def test_management_stateful(management_admin: KeyAdmin,
                             record_finding: Callable[[Finding], None],
                             count_case: Callable[[str], None]) -> None:
    """schemathesis's stateful testing over the spec's links (create -> list, update, delete),
    within the run's cap of created keys; every key it made is deleted with the others."""
    pytest.importorskip("schemathesis", reason="the stateful case needs gateprobe[fuzz]")
    from gateprobe.engine.management import run_workflow

    findings = run_workflow(management_admin)
    count_case(ADMIN)
    for found in findings:
        record_finding(found)
    if findings:
        pytest.fail(describe(findings), pytrace=False)
