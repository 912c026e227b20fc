"""Midjourney tasks (seeds-extra §2): imagine, action, blend, describe, query, paginated query.

A task's life is deterministic and fast: NOT_START -> SUBMITTED -> IN_PROGRESS ("0%", "25%",
"50%", "75%") -> SUCCESS ("100%", an image URL and follow-up ``actions``), one stage per
``GatewayConfig.task_step_ms``. A query never shows more than one stage past the last one it
showed for that task, so every poller, fast or slow, sees the whole life (a fast gateway must
not make a lifecycle check vacuous). A prompt containing ``FAIL_MARK`` ends in FAILURE with a
``failReason`` after "25%" (gateprobe's reading: the docs name no way to make a task fail).
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute

from gateprobe.core.families import PATHS
from gateprobe.reference.config import ApiKey, GatewayConfig
from gateprobe.reference.faults import (
    MJ_PAGE_SIZE_UNCHECKED,
    MJ_PROGRESS_DECREASING,
    MJ_STATUS_BACKWARDS,
    MJ_SUCCESS_WITHOUT_IMAGE,
    MJ_TASK_ID_AS_TEXT,
    MJ_TASK_NEVER_FINISHES,
    MJ_TOTALS_INCONSISTENT,
)
from gateprobe.reference.gateway_api import (
    MISSING,
    AnyMethodRoute,
    ApiError,
    authenticate,
    error_response,
    int_field,
    ok,
    optional_text,
    read_fields,
    require_text,
)

MJ = PATHS["midjourney"]
FAIL_MARK = "gateprobe-fail"
STAGES: tuple[tuple[str, str], ...] = (
    ("NOT_START", "0%"), ("SUBMITTED", "0%"), ("IN_PROGRESS", "0%"), ("IN_PROGRESS", "25%"),
    ("IN_PROGRESS", "50%"), ("IN_PROGRESS", "75%"), ("SUCCESS", "100%"))
FAIL_AFTER = 3
"""The stage ("25%") after which a task asked to fail fails."""
FAULTY_STAGE = 4
"""The stage the lifecycle faults bend ("50%")."""
PAGE_SIZES = (5, 20)
IMAGE_HOST = "https://cdn.discordapp.com/attachments/gateprobe"
DIMENSIONS = frozenset({"PORTRAIT", "SQUARE", "LANDSCAPE"})
EPOCH = datetime(2026, 1, 1, tzinfo=UTC)


@dataclass(slots=True)
class Task:
    """One task and how far queries have seen it."""

    id: int
    key: str
    action: str
    prompt: str
    task_type: str
    webhook: str | None
    submitted: float
    fails: bool
    shown: int = -1
    """The last stage a query showed (-1: none yet)."""


@dataclass(slots=True)
class TaskStore:
    """Every task of one gateway, per key; ids are global and increasing."""

    clock: Callable[[], float] = time.monotonic
    tasks: dict[int, Task] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def create(self, key: str, action: str, prompt: str, fields: dict[str, Any]) -> Task:
        """A new task, submitted now."""
        task_type = optional_text(fields, "type")
        task_type = "FAST" if task_type is None else task_type  # "" is no type: refused
        if task_type not in ("FAST", "NORMAL"):
            raise ApiError(400, "'type' must be FAST or NORMAL.")
        webhook = optional_text(fields, "webhook")
        with self.lock:
            task = Task(len(self.tasks) + 1, key, action, prompt, task_type,
                        webhook if isinstance(webhook, str) and webhook else None,
                        self.clock(), FAIL_MARK in prompt)
            self.tasks[task.id] = task
        return task

    def get(self, key: str, task_id: Any) -> Task:
        """The caller's task ``task_id``: another key's task is as unknown as a missing one."""
        if task_id is None:
            raise ApiError(400, "'taskId' is required.")
        if not isinstance(task_id, (str, int)) or isinstance(task_id, bool):
            raise ApiError(400, "'taskId' must be a string or an integer.")
        task = self.tasks.get(int(task_id)) if str(task_id).isdecimal() else None
        if task is None or task.key != key:  # an id that is no number names no task either
            raise ApiError(404, f"Task {task_id} not found.")
        return task

    def of_key(self, key: str) -> list[Task]:
        """The caller's tasks, newest first (gateprobe's reading)."""
        return sorted((t for t in self.tasks.values() if t.key == key), key=lambda t: -t.id)


def _stage(task: Task, now: float, config: GatewayConfig, advance: bool) -> int:
    """Where the task is: by time, but at most one stage past the last one shown."""
    step_s = max(config.task_step_ms, 0.001) / 1000
    stage = min(int((now - task.submitted) / step_s), len(STAGES) - 1, task.shown + 1)
    if task.fails:
        stage = min(stage, FAIL_AFTER + 1)
    if MJ_TASK_NEVER_FINISHES.active(config.faults, f"{MJ}/query"):
        stage = min(stage, len(STAGES) - 2)
    if advance:
        task.shown = max(task.shown, stage)
    return stage


def _time(task: Task, steps: int, config: GatewayConfig) -> str:
    """A wall-clock ISO time ``steps`` stages after submission (stable for a task)."""
    at = EPOCH + timedelta(seconds=task.id) + timedelta(milliseconds=steps * config.task_step_ms)
    return at.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _actions(task: Task) -> list[dict[str, str]]:
    digest = hashlib.sha256(f"{task.id}:{task.prompt}".encode()).hexdigest()[:32]
    return [{"customId": f"MJ::JOB::{kind}::{n}::{digest}", "emoji": emoji,
             "label": f"{label}{n}"}
            for kind, emoji, label in (("upsample", "", "U"), ("variation", "", "V"))
            for n in range(1, 5)]


def snapshot(task: Task, stage: int, config: GatewayConfig) -> dict[str, Any]:
    """The task as a query answers it at ``stage``."""
    faults, path = config.faults, f"{MJ}/query"
    failed = task.fails and stage > FAIL_AFTER
    status, progress = ("FAILURE", STAGES[FAIL_AFTER][1]) if failed else STAGES[stage]
    if stage == FAULTY_STAGE and MJ_STATUS_BACKWARDS.active(faults, path):
        status = "SUBMITTED"
    if stage == FAULTY_STAGE and MJ_PROGRESS_DECREASING.active(faults, path):
        progress = "10%"
    done = status in ("SUCCESS", "FAILURE")
    image = status == "SUCCESS" and not MJ_SUCCESS_WITHOUT_IMAGE.active(faults, path)
    return {
        "taskId": task.id, "taskType": task.task_type, "status": status,
        "action": task.action, "progress": progress,
        "description": f"/{task.action.lower()} {task.prompt}", "prompt": task.prompt,
        "failReason": "gateprobe: the prompt asked this task to fail" if failed else None,
        "submitTime": _time(task, 0, config),
        "startTime": _time(task, 2, config) if stage >= 2 else None,
        "finishTime": _time(task, stage, config) if done else None,
        "webhookUrl": task.webhook,
        "imageDcUrl": f"{IMAGE_HOST}/{task.id}/grid_0.png" if image else None,
        "imageS3Url": f"mj-generated/{task.id}.png" if image else None,
        "actions": _actions(task) if image else [],
    }


def _data_uri(value: Any, name: str) -> str:
    if not isinstance(value, str) or not value.startswith("data:image/"):
        raise ApiError(400, f"'{name}' must hold data:image/... URIs.")
    return value


def _images(value: Any) -> list[str]:
    """``base64Array``: a JSON array, repeated form fields, or one field holding JSON."""
    if isinstance(value, str) and value.startswith("["):
        try:
            value = json.loads(value)
        except ValueError:
            raise ApiError(400, "'base64Array' must be an array of data URIs.") from None
    values = value if isinstance(value, list) else [value] if value else []
    return [_data_uri(v, "base64Array") for v in values]


class Midjourney:
    """The routes, over one store."""

    def __init__(self, config: GatewayConfig, clock: Callable[[], float]) -> None:
        self.config = config
        self.store = TaskStore(clock)

    def routes(self) -> list[BaseRoute]:
        """Every route under ``/api/v1/ai/draw/mj``."""
        handlers: dict[str, Callable[[ApiKey, dict[str, Any], Request], Any]] = {
            "imagine": self.imagine, "action": self.action, "blend": self.blend,
            "describe": self.describe, "query": self.query, "query-mj-tasks": self.page}
        return [AnyMethodRoute(f"{MJ}/{name}", "POST", self._endpoint(fn), self.config)
                for name, fn in handlers.items()]

    def _endpoint(self, fn: Callable[[ApiKey, dict[str, Any], Request], Any],
                  ) -> Callable[[Request], Awaitable[Response]]:
        async def endpoint(request: Request) -> Response:
            try:
                key = authenticate(request, self.config)
                fields = await read_fields(request)
                if not key.may_use("midjourney"):
                    raise ApiError(401, "This key has no midjourney permission.")
                if fields.get("model") != "midjourney":
                    raise ApiError(400, "'model' must be midjourney.")
                data = fn(key, fields, request)
                if isinstance(data, int) and MJ_TASK_ID_AS_TEXT.active(self.config.faults,
                                                                       request.url.path):
                    data = str(data)
                return ok(data)
            except ApiError as error:
                return error_response(self.config, request.url.path, error)

        return endpoint

    def imagine(self, key: ApiKey, fields: dict[str, Any], request: Request) -> int:
        """A text-to-image task (its id)."""
        prompt = require_text(fields, "prompt")
        _images(fields.get("base64Array"))
        return self.store.create(key.key, "IMAGINE", prompt, fields).id

    def action(self, key: ApiKey, fields: dict[str, Any], request: Request) -> int:
        """A follow-up (U1..V4) of a finished task, named by one of its ``customId``s."""
        parent = self.store.get(key.key, fields.get("taskId"))
        custom = require_text(fields, "customId")
        stage = _stage(parent, self.store.clock(), self.config, advance=False)
        allowed = {a["customId"] for a in snapshot(parent, stage, self.config)["actions"]}
        if custom not in allowed:
            # A well-formed request the task's state refuses: 409 (our reading), not 400.
            raise ApiError(409, "'customId' is not an action of that task (is it finished?).")
        kind = "UPSCALE" if "::upsample::" in custom else "VARIATION"
        return self.store.create(key.key, kind, parent.prompt, fields).id

    def blend(self, key: ApiKey, fields: dict[str, Any], request: Request) -> int:
        """Two to five images blended into one."""
        images = _images(fields.get("base64Array"))
        if not 2 <= len(images) <= 5:
            raise ApiError(400, "'base64Array' must hold 2 to 5 images.")
        dimensions = optional_text(fields, "dimensions")
        dimensions = "SQUARE" if dimensions is None else dimensions  # "" is refused
        if dimensions not in DIMENSIONS:
            raise ApiError(400, "'dimensions' must be PORTRAIT, SQUARE or LANDSCAPE.")
        return self.store.create(key.key, "BLEND", f"blend of {len(images)} images",
                                 fields).id

    def describe(self, key: ApiKey, fields: dict[str, Any], request: Request) -> int:
        """Prompts read from one image."""
        _data_uri(fields.get("base64"), "base64")
        return self.store.create(key.key, "DESCRIBE", "described image", fields).id

    def query(self, key: ApiKey, fields: dict[str, Any], request: Request) -> dict[str, Any]:
        """One task as it is now."""
        task = self.store.get(key.key, fields.get("taskId"))
        return snapshot(task, _stage(task, self.store.clock(), self.config, advance=True),
                        self.config)

    def page(self, key: ApiKey, fields: dict[str, Any], request: Request) -> dict[str, Any]:
        """One page of the caller's tasks, newest first: ``{total, tasks}``."""
        params = request.query_params
        page = int_field(params.get("page", MISSING), "page", 1, None, 1)
        if "page" not in params:
            raise ApiError(400, "'page' is required.")
        if MJ_PAGE_SIZE_UNCHECKED.active(self.config.faults, request.url.path):
            size = int_field(params.get("pageSize", MISSING), "pageSize", 1, None, 10)
        else:
            size = int_field(params.get("pageSize", MISSING), "pageSize", *PAGE_SIZES, 10)
        tasks = self.store.of_key(key.key)
        now = self.store.clock()
        chosen = tasks[(page - 1) * size:page * size]
        total = len(tasks)
        if MJ_TOTALS_INCONSISTENT.active(self.config.faults, request.url.path):
            total += page - 1
        return {"total": total, "tasks": [
            snapshot(t, _stage(t, now, self.config, advance=False), self.config)
            for t in chosen]}
