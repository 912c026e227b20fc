"""The billing category: the gateway charges what it served, at its own rates.

The table (per request kind: tokens served, charge expected, charge seen, difference) goes to
``billing.json`` next to the run's findings, to Allure, and to the terminal with ``-v``.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from gateprobe.core.findings import Finding
from gateprobe.engine.billing import Reconciliation, reconcile
from gateprobe.engine.management import BALANCE, KeyAdmin, ManagementUnavailable
from gateprobe.engine.pytest_plugin import describe

pytestmark = pytest.mark.billing


def test_billing_reconciles(management_admin: KeyAdmin, request: pytest.FixtureRequest,
                            record_finding: Callable[[Finding], None],
                            count_case: Callable[[str], None]) -> None:
    """Plain and streamed requests of every family, a refused one, a 429 burst, a max_fee."""
    refusal = management_admin.target.spend_refusal
    if refusal:
        pytest.skip(refusal)
    try:
        result = reconcile(management_admin)
    except ManagementUnavailable as exc:
        pytest.fail(f"the management API did not answer as documented: {exc}", pytrace=False)
    count_case(BALANCE)
    _publish(result, request.config)
    for found in result.findings:
        record_finding(found)
    if result.findings:
        pytest.fail(describe(result.findings), pytrace=False)
    if result.stopped:
        pytest.fail(f"billing stopped early: {result.stopped}", pytrace=False)


def _publish(result: Reconciliation, config: pytest.Config) -> None:
    """The table as JSON beside the findings file, and as an Allure attachment."""
    table = [row.as_json() for row in result.rows]
    out = config.getoption("--findings-json", None)
    if out:
        Path(out).with_name("billing.json").write_text(
            json.dumps({"rows": table, "stopped": result.stopped}, indent=2), encoding="utf-8")
    lines = [f"{'kind':18} {'status':>6} {'in':>5} {'out':>5} {'expected':>10} {'seen':>10} "
             f"{'diff':>8}"]
    lines += [f"{r['kind']:18} {r['status']:>6} {r['input_tokens']:>5} {r['output_tokens']:>5} "
              f"{r['expected']:>10.2f} {r['seen']:>10.2f} {r['difference']:>8.2f}"
              for r in table]
    print("\n".join(lines))  # noqa: T201  (pytest captures it; -v -s shows it)
    try:
        import allure  # type: ignore[import-untyped]
    except ImportError:
        return
    allure.attach("\n".join(lines), name="billing", attachment_type=allure.attachment_type.TEXT)
