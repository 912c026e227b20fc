"""Midjourney tasks: the lifecycle grammar over polled snapshots, and the paginated query.

A task is created (its id in the envelope), then polled with ``/query`` until it is SUCCESS or
FAILURE. ``TaskGrammar`` is fed those snapshots in order, like a stream grammar is fed events:
status moves forward only (NOT_START < SUBMITTED < IN_PROGRESS < SUCCESS | FAILURE, and nothing
after an end), progress never decreases, SUCCESS carries an image URL and actions, FAILURE a
``failReason``. The poller (``gateprobe.engine.tasks``) hands the snapshots over as the events of one
``Exchange``, each as an SSE-shaped ``Event`` of type ``snapshot``, plus a final ``gave_up``
event when it stopped at its deadline: so a registered check judges them, with every runner's
redaction and reporting. The status order is gateprobe's reading (the docs show SUCCESS only).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import urlsplit

from gateprobe.core.checks import NOT_APPLICABLE, CheckResult, Context, Exchange, check
from gateprobe.core.findings import Finding, Severity
from gateprobe.core.specs import schema_errors
from gateprobe.core.sse import Event
from gateprobe.protocols.gateway_apis import (
    MJ_PREFIX,
    finding,
    json_of,
    path_of,
    query_of,
)

QUERY = MJ_PREFIX + "query"
PAGES = MJ_PREFIX + "query-mj-tasks"
CREATING = frozenset(MJ_PREFIX + n for n in ("imagine", "action", "blend", "describe"))
RANK: Mapping[str, int] = {"NOT_START": 0, "SUBMITTED": 1, "IN_PROGRESS": 2, "SUCCESS": 3,
                           "FAILURE": 3}
TERMINAL = frozenset({"SUCCESS", "FAILURE"})
PAGE_SIZES = (5, 20)
_PERCENT = re.compile(r"^(100|[1-9]?[0-9])%$")
LIFECYCLE_IDS = ("task.order", "task.progress", "task.deadline")
PAGE_IDS = ("task.page_size", "task.page_total")
SNAPSHOT = "snapshot"
GAVE_UP = "gave_up"
"""The poller's last event when it stopped before an end; its data says why (``deadline`` or
``budget``: only the first is the gateway's fault)."""

Problem = tuple[str, str, str]
"""(check id, expected, observed)."""


def percent(progress: Any) -> int | None:
    """``"25%"`` as 25; None for anything else."""
    return int(progress[:-1]) if isinstance(progress, str) and _PERCENT.match(progress) \
        else None


def result_problems(task: Mapping[str, Any]) -> list[Problem]:
    """What one snapshot alone shows wrong: an end without its result."""
    status, out = task.get("status"), []
    if status == "SUCCESS":
        url = task.get("imageDcUrl")
        parts = urlsplit(url) if isinstance(url, str) else None
        if parts is None or parts.scheme not in ("http", "https") or not parts.netloc:
            out.append(("task.result", "SUCCESS with an absolute image URL (imageDcUrl)",
                        f"imageDcUrl {str(url)[:80]}"))
        actions = task.get("actions")
        if not isinstance(actions, list) or not actions:
            out.append(("task.result", "SUCCESS with its follow-up actions",
                        f"actions {actions!r}"[:80]))
        if task.get("progress") != "100%":
            out.append(("task.result", "SUCCESS at 100%", f"progress {task.get('progress')}"))
    if status == "FAILURE" and not (isinstance(task.get("failReason"), str)
                                    and task["failReason"].strip()):
        out.append(("task.result", "FAILURE with a failReason", "no failReason"))
    return out


class TaskGrammar:
    """The lifecycle of one task, fed its snapshots in the order they were polled."""

    def __init__(self) -> None:
        self.status: str | None = None
        self.progress = -1
        self.ended = False
        self.seen: list[str] = []

    def feed(self, task: Mapping[str, Any]) -> list[Problem]:
        """One snapshot: what it breaks of the order so far."""
        status, out = task.get("status"), []
        if not isinstance(status, str) or status not in RANK:
            return [("task.order", f"a status of {', '.join(RANK)}", f"status {status!r}")]
        if self.ended and status != self.status:
            out.append(("task.order", f"nothing after {self.status}", f"then {status}"))
        elif self.status is not None and RANK[status] < RANK[self.status]:
            out.append(("task.order", "status moving forward only",
                        f"{self.status} then {status}"))
        value = percent(task.get("progress"))
        if value is None:
            out.append(("task.progress", "progress as N% (0-100)",
                        f"progress {task.get('progress')!r}"))
        elif value < self.progress:
            out.append(("task.progress", "progress never decreasing",
                        f"{self.progress}% then {value}%"))
        else:
            self.progress = value
        out += result_problems(task)
        self.status, self.ended = status, self.ended or status in TERMINAL
        self.seen.append(status)
        return out

    def finish(self, gave_up: str | None) -> list[Problem]:
        """The end of polling: a task still running at the deadline is a finding."""
        if self.ended or gave_up != "deadline":
            return []
        return [("task.deadline", "SUCCESS or FAILURE within the polling deadline",
                 f"still {self.status} at {self.progress}% after "
                 f"{len(self.seen)} polls ({' > '.join(dict.fromkeys(self.seen))})")]


def judge_snapshots(events: Sequence[Event]) -> list[Problem]:
    """The grammar over a poller's events."""
    grammar, out, gave_up = TaskGrammar(), list[Problem](), None
    for event in events:
        if event.type == GAVE_UP:
            gave_up = event.data
            continue
        task = json_of(event.data.encode())
        out += grammar.feed(task if isinstance(task, dict) else {})
    return out + grammar.finish(gave_up)


def _findings(ctx: Context, ex: Exchange, problems: list[Problem],
              severity: Severity) -> list[Finding]:
    unique = list(dict.fromkeys(problems))  # the same problem on every poll: said once
    return [finding(ctx, ex, cid, severity, expected, observed)
            for cid, expected, observed in unique]


def _mj_success(ctx: Context, ex: Exchange) -> Any:
    """The envelope of a 2xx Midjourney answer (None: not one, or not judged)."""
    if ctx.family != "gateway" or ex.transport_error is not None or ex.status is None \
            or not 200 <= ex.status < 300 or not path_of(ex.endpoint).startswith(MJ_PREFIX):
        return None
    return json_of(ex.body)


SCHEMAS = {QUERY: "TaskAnswer", PAGES: "TaskPageAnswer",
           **{path: "TaskCreatedAnswer" for path in CREATING}}


@check("task.schema", Severity.MEDIUM, "Midjourney answers match specs/gateway.yaml")
def task_schema(ctx: Context, ex: Exchange) -> CheckResult:
    """A task id, a task, a page of tasks: each in the documented fields (for the poller's
    and the page walker's exchanges, the last answer)."""
    schema = SCHEMAS.get(path_of(ex.endpoint))
    if schema is None or ctx.family != "gateway" or ex.transport_error is not None \
            or ex.status is None or not 200 <= ex.status < 300:
        return NOT_APPLICABLE
    payload = json_of(ex.body)
    errors = schema_errors("gateway", schema, payload) if payload is not None else [
        "(root): not JSON"]
    return [finding(ctx, ex, "task.schema", Severity.MEDIUM, f"a {schema}",
                    "; ".join(errors[:3]))] if errors else []


@check("task.result", Severity.HIGH, "SUCCESS carries an image URL and actions, FAILURE a "
       "failReason")
def task_result(ctx: Context, ex: Exchange) -> CheckResult:
    """Every task a query or a page shows: an end must carry its result."""
    payload = _mj_success(ctx, ex)
    path = path_of(ex.endpoint)
    if not isinstance(payload, dict) or path not in (QUERY, PAGES) or ex.events:
        return NOT_APPLICABLE  # the poller's snapshots: task.lifecycle judges them
    data = payload.get("data")
    tasks = [data] if path == QUERY else (data or {}).get("tasks") \
        if isinstance(data, dict) else []
    problems = [p for t in tasks or [] if isinstance(t, dict) for p in result_problems(t)]
    return _findings(ctx, ex, problems, Severity.HIGH)


@check("task.lifecycle", Severity.HIGH, "a polled task moves forward to SUCCESS or FAILURE in "
       "time", emits=(*LIFECYCLE_IDS, "task.result"))
def task_lifecycle(ctx: Context, ex: Exchange) -> CheckResult:
    """The poller's snapshots through ``TaskGrammar``."""
    if ctx.family != "gateway" or path_of(ex.endpoint) != QUERY or not ex.events:
        return NOT_APPLICABLE
    return _findings(ctx, ex, judge_snapshots(ex.events), Severity.HIGH)


def _page_size(endpoint: str) -> int:
    """The pageSize a page asked for (10 when absent: gateprobe's reading of the default)."""
    try:
        return int(query_of(endpoint).get("pageSize", "10"))
    except ValueError:
        return -1


def page_problems(endpoint: str, status: int, payload: Any) -> list[Problem]:
    """One page alone: no more tasks than asked, a total that can hold them, and a pageSize
    outside 5-20 refused."""
    size = _page_size(endpoint)
    low, high = PAGE_SIZES
    if not 200 <= status < 300:
        return []
    if not low <= size <= high:
        return [("task.page_size", f"pageSize {size} refused (400): it must be {low}-{high}",
                 f"status {status}")]
    data = payload.get("data") if isinstance(payload, dict) else None
    if not isinstance(data, dict) or not isinstance(data.get("tasks"), list):
        return []  # task.schema reports it
    tasks, total = data["tasks"], data.get("total")
    out = []
    if len(tasks) > size:
        out.append(("task.page_size", f"at most {size} tasks", f"{len(tasks)} tasks"))
    if not isinstance(total, int) or total < len(tasks):
        out.append(("task.page_total", f"a total of at least {len(tasks)}", f"total {total}"))
    return out


def walk_problems(events: Sequence[Event], size: int) -> list[Problem]:
    """Pages of ``size`` walked in order: one total, no task twice, and all of them by the
    last page (one shorter than ``size``)."""
    totals, ids, done = [], list[Any](), False
    for event in events:
        page = json_of(event.data.encode())
        data = page.get("data") if isinstance(page, dict) else None
        if not isinstance(data, dict) or not isinstance(data.get("tasks"), list):
            return []
        totals.append(data.get("total"))
        ids += [t.get("taskId") for t in data["tasks"] if isinstance(t, dict)]
        done = len(data["tasks"]) < size
    out = []
    if len(set(map(str, totals))) > 1:
        out.append(("task.page_total", "the same total on every page", f"totals {totals}"))
    if len(set(ids)) != len(ids):
        out.append(("task.page_total", "no task on two pages", "a task twice"))
    elif done and totals and totals[-1] != len(ids):
        out.append(("task.page_total", f"total {totals[-1]} tasks across the pages",
                    f"{len(ids)} tasks"))
    return out


@check("task.pages", Severity.MEDIUM, "pages of tasks: pageSize 5-20 enforced, totals "
       "consistent", emits=PAGE_IDS)
def task_pages(ctx: Context, ex: Exchange) -> CheckResult:
    """One page (its own size and total), or a walk over pages (``gateprobe.engine.tasks``)."""
    if ctx.family != "gateway" or path_of(ex.endpoint) != PAGES or ex.status is None \
            or ex.transport_error is not None:
        return NOT_APPLICABLE
    problems = walk_problems(ex.events, _page_size(ex.endpoint)) if ex.events else \
        page_problems(ex.endpoint, ex.status, json_of(ex.body))
    return _findings(ctx, ex, problems, Severity.MEDIUM)


def snapshot_event(task: Any, t_ns: int) -> Event:
    """A polled snapshot as the grammar reads it."""
    return Event(SNAPSHOT, json.dumps(task), "", t_ns)
