"""Midjourney tasks over their whole life: create, poll to the end, follow up, walk the pages.

A task needs the id its creation answered, so these are not static cases: each test creates
its task and polls it through ``gateprobe.engine.tasks`` (bounded by a total deadline, a poll cap and
the run's budget). They run in the ``endpoint`` category, only against a target that declares
``midjourney``. Against the embedded gateway tasks end in well under a second; against any
other host each is polled every 5 s for at most 300 s (the seeds' clients poll every ~5 s).
"""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

import httpx
import pytest

from gateprobe.core.findings import Finding
from gateprobe.core.targets import Target
from gateprobe.engine.pytest_plugin import describe
from gateprobe.engine.runstate import RunState
from gateprobe.engine.tasks import MAX_PAGES, create, poll, polling_for, walk_pages

pytestmark = pytest.mark.endpoint

PIXEL = ("data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR4"
         "nGNgAAIAAAUAAXpeqz8AAAAASUVORK5CYII=")
CREATIONS: dict[str, dict[str, Any]] = {
    "imagine": {"model": "midjourney", "prompt": "a lighthouse at dusk --ar 1:1"},
    "blend": {"model": "midjourney", "base64Array": [PIXEL, PIXEL], "dimensions": "SQUARE"},
    "describe": {"model": "midjourney", "base64": PIXEL},
}


def _judge(target: Target, exchange: Any, record: Any, label: str) -> list[Finding]:
    import gateprobe.protocols.conformance  # noqa: F401  (registers the built-in checks)
    from gateprobe.core.checks import Context, run_checks
    from gateprobe.protocols.conformance import checks_for

    ctx = Context.of(target, "gateway")
    found = [replace(f, case=label) for f in run_checks(ctx, exchange, checks_for(ctx, exchange))]
    for finding in found:
        record(finding)
    return found


def _served(target: Target) -> None:
    if "midjourney" not in target.served:
        pytest.skip("the target does not declare midjourney (its entry's endpoints:)")


@pytest.mark.parametrize("kind", list(CREATIONS))
def test_task_lifecycle(kind: str, gateprobe_target: Target, gateprobe_http: httpx.Client,
                        gateprobe_run: RunState, record_finding: Any, count_case: Any) -> None:
    """Created, then polled: status forward only, progress monotonic, the end with its
    result, within the deadline; a finished imagine's first action is accepted."""
    _served(gateprobe_target)
    target, http, run = gateprobe_target, gateprobe_http, gateprobe_run
    label = f"task lifecycle: {kind}"
    created, task_id = create(http, target, run, kind, CREATIONS[kind])
    count_case(created.endpoint)
    found = _judge(target, created, record_finding, label)
    if task_id is not None:
        polled = poll(http, target, run, task_id, polling_for(target))
        count_case(polled.endpoint)
        found += _judge(target, polled, record_finding, label)
        last = json.loads(polled.events[-1].data) if polled.events and \
            polled.events[-1].type == "snapshot" else {}
        if kind == "imagine" and last.get("status") == "SUCCESS" and last.get("actions"):
            follow = {"model": "midjourney", "taskId": task_id,
                      "customId": last["actions"][0]["customId"]}
            action, _ = create(http, target, run, "action", follow)
            found += _judge(target, action, record_finding, f"{label} then action")
    if found:
        pytest.fail(describe(found), pytrace=False)
    assert task_id is not None, f"[task.schema] {kind}: no task id in {created.body[:200]!r}"


def test_task_pages(gateprobe_target: Target, gateprobe_http: httpx.Client,
                    gateprobe_run: RunState, record_finding: Any, count_case: Any) -> None:
    """Every page in turn: one total, no task twice, all of them by the last page."""
    _served(gateprobe_target)
    walked = walk_pages(gateprobe_http, gateprobe_target, gateprobe_run, page_size=5,
                        max_pages=MAX_PAGES)
    count_case(walked.endpoint)
    found = _judge(gateprobe_target, walked, record_finding, "task pages")
    if found:
        pytest.fail(describe(found), pytrace=False)
