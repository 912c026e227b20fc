"""Asynchronous tasks (Midjourney): create one, poll it to its end, walk the pages of tasks.

Polling is bounded three ways: a total deadline (``Polling.deadline_s``), a number of polls, and
the run's budget (``RunState.left_s``), whichever comes first; it never loops unbounded. The
snapshots travel as the events of one ``Exchange`` of ``/query`` (see
``gateprobe.protocols.midjourney``), so the registered checks judge them like any answer.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

import httpx

from gateprobe.core.checks import Exchange, Expectation
from gateprobe.core.sse import Event
from gateprobe.core.targets import Target
from gateprobe.engine.cases import MJ, Case
from gateprobe.engine.probe import send
from gateprobe.engine.runstate import RunState
from gateprobe.protocols.midjourney import GAVE_UP, PAGES, QUERY, TERMINAL, snapshot_event

MODEL = {"model": "midjourney"}


@dataclass(frozen=True, slots=True)
class Polling:
    """How a task is polled: every ``interval_s``, for ``deadline_s`` at most in total."""

    interval_s: float = 1.0
    deadline_s: float = 120.0
    """The seeds' clients poll every ~5 s; a real task takes about a minute."""
    max_polls: int = 500


TASK_KINDS = ("imagine", "blend", "describe")
"""The tasks the suite creates and polls (``conformance/test_tasks.py``), plus one action."""
MAX_PAGES = 10


def polling_for(target: Target) -> Polling:
    """Fast against loopback (the reference gateway's tasks take well under a second), at the
    seeds' clients' pace (every ~5 s) elsewhere."""
    return Polling(interval_s=0.02, deadline_s=30.0) if target.is_loopback else \
        Polling(interval_s=5.0, deadline_s=300.0, max_polls=80)


def describe_traffic(target: Target) -> str:
    """What the suite's task tests send, for a dry run."""
    p = polling_for(target)
    polls = min(p.max_polls, int(p.deadline_s / p.interval_s) + 1)
    return (f"tasks: {len(TASK_KINDS)} Midjourney tasks created and polled to their end (a "
            f"query every {p.interval_s:g} s, at most {polls} per task and {p.deadline_s:g} s), "
            f"one follow-up action, at most {MAX_PAGES} pages of tasks")


def create(client: httpx.Client, target: Target, run: RunState, path: str = "imagine",
           body: dict[str, Any] | None = None) -> tuple[Exchange, int | None]:
    """Create a task: the exchange, and the task id it answered (None when it did not)."""
    body = body or {**MODEL, "prompt": "a lighthouse at dusk --ar 1:1"}
    exchange = send(client, target, Case(path, "endpoint", "POST", f"{MJ}/{path}", "gateway",
                                         body), run)
    payload = _json(exchange.body) if exchange.status == 200 else None
    task_id = payload.get("data") if isinstance(payload, dict) else None
    return exchange, task_id if isinstance(task_id, int) else None


def poll(client: httpx.Client, target: Target, run: RunState, task_id: int,
         polling: Polling = Polling(), sleep: Callable[[float], None] = time.sleep,
         clock: Callable[[], float] = time.monotonic) -> Exchange:
    """Query the task until it ends, the deadline passes or the run's budget runs out.

    The answer: the last query's exchange, its ``events`` every snapshot in order, then a
    ``gave_up`` event naming the bound that stopped the polling (``deadline`` or ``budget``)
    when the task had not ended. A query that fails is returned as it is: its own checks
    report it."""
    case = Case("poll", "endpoint", "POST", QUERY, "gateway", {**MODEL, "taskId": task_id})
    start = clock()
    events: list[Event] = []
    last: Exchange | None = None
    for _ in range(polling.max_polls):
        last = send(client, target, case, run)
        payload = _json(last.body) if last.status == 200 else None
        task = payload.get("data") if isinstance(payload, dict) else None
        if not isinstance(task, dict):
            return replace(last, events=events) if events else last
        events.append(snapshot_event(task, time.perf_counter_ns()))
        if task.get("status") in TERMINAL:
            return replace(last, events=events)
        waited = clock() - start + polling.interval_s
        bound = "deadline" if waited > polling.deadline_s else \
            "budget" if polling.interval_s > run.left_s() else None
        if bound is not None:
            return replace(last, events=[*events, Event(GAVE_UP, bound, "", 0)])
        sleep(polling.interval_s)
    assert last is not None
    return replace(last, events=[*events, Event(GAVE_UP, "deadline", "", 0)])


def walk_pages(client: httpx.Client, target: Target, run: RunState, page_size: int = 5,
               max_pages: int = 20) -> Exchange:
    """Ask page after page until one is short (the last) or ``max_pages``: the last page's
    exchange, with every page's answer as its events."""
    endpoint = f"{PAGES}?pageSize={page_size}"
    events: list[Event] = []
    last: Exchange | None = None
    for page in range(1, max_pages + 1):
        case = Case(f"page {page}", "endpoint", "POST",
                    f"{PAGES}?page={page}&pageSize={page_size}", "gateway", MODEL,
                    expect=Expectation())
        last = send(client, target, case, run)
        payload = _json(last.body) if last.status == 200 else None
        data = payload.get("data") if isinstance(payload, dict) else None
        if not isinstance(data, dict) or not isinstance(data.get("tasks"), list):
            break
        events.append(Event("page", last.body.decode("utf-8", "replace"), "", 0))
        if len(data["tasks"]) < page_size:
            break
    assert last is not None
    return replace(last, endpoint=endpoint, events=events)


def _json(body: bytes) -> Any:
    try:
        return json.loads(body)
    except ValueError:
        return None
