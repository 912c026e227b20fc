"""OpenAI's stateful APIs as a client uses them: the flows ``state.flow`` judges.

Each flow is a few requests, each needing an id an earlier answer gave (see
``gateprobe.protocols.openai_stateful`` for what each holds a gateway to). Every request goes
through ``probe.send`` (paced, bounded, within the run's breaker); a flow stops at the first
step that does not answer 2xx where it needs an id. Waiting for a state to change (a stored
chat completion to be listed, a cancelled response to settle) is polled a bounded number of
times. Nothing is left behind on purpose: what a flow creates it deletes (a response created
with ``store: false`` or cancelled is the gateway's to forget).
"""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx

from gateprobe.core.checks import Exchange, Expectation
from gateprobe.core.sse import Event
from gateprobe.core.targets import Target
from gateprobe.engine.cases import Case
from gateprobe.engine.probe import send
from gateprobe.engine.runstate import RunState
from gateprobe.protocols.openai_stateful import FLOW, JUDGES, step_event

FAMILY_OF_FLOW = {"stored": "responses", "not_stored": "responses", "previous": "responses",
                  "cancel": "responses", "conversation": "conversations",
                  "chat_store": "chat_store"}
"""The opt-in family a target must declare for each flow."""
ENDPOINT_OF_FAMILY = {"responses": "/v1/responses", "conversations": "/v1/conversations",
                      "chat_store": "/v1/chat/completions"}
SETTLE_TRIES = 20
"""How many times a flow looks again for a state that may lag (a list, a cancellation)."""


@dataclass
class Flow:
    """One flow's requests so far: each step's exchange and its event."""

    name: str
    client: httpx.Client
    target: Target
    run: RunState
    events: list[Event] = field(default_factory=list)
    exchanges: list[Exchange] = field(default_factory=list)

    def step(self, name: str, method: str, path: str, body: Any = None,
             expect: Expectation | None = None) -> tuple[int | None, dict[str, Any]]:
        """Send one request; (status, its JSON object or {})."""
        case = Case(f"{self.name}: {name}", "endpoint", method, path, "openai", body,
                    expect=expect or Expectation())
        exchange = send(self.client, self.target, case, self.run)
        self.exchanges.append(exchange)
        self.events.append(step_event(name, exchange.status, exchange.body,
                                      time.perf_counter_ns()))
        try:
            decoded = json.loads(exchange.body) if exchange.body else {}
        except ValueError:
            decoded = {}
        return exchange.status, decoded if isinstance(decoded, dict) else {}

    def until(self, name: str, path: str, done: Callable[[dict[str, Any]], bool]) -> None:
        """GET ``path`` until ``done`` says so or ``SETTLE_TRIES`` (only the last is kept)."""
        pause = 0.05 if self.target.is_loopback else 1.0
        for attempt in range(SETTLE_TRIES):
            status, body = self.step(name, "GET", path)
            if status != 200 or done(body) or attempt == SETTLE_TRIES - 1:
                return
            self.events.pop()
            time.sleep(pause)

    def record(self) -> Exchange:
        """The flow as the one exchange ``state.flow`` judges."""
        endpoint = ENDPOINT_OF_FAMILY[FAMILY_OF_FLOW[self.name]]
        status = 200 if all(e.status is not None for e in self.exchanges) else None
        return Exchange(endpoint, FLOW, {"flow": self.name}, status, events=list(self.events))


def _ok(status: int | None) -> bool:
    return status is not None and 200 <= status < 300


def _cap(target: Target, wanted: int) -> int:
    """``wanted`` output tokens, within the target's cap (OpenAI's least is 16)."""
    return max(16, min(wanted, target.max_tokens)) if target.max_tokens else wanted


def _model(flow: Flow) -> dict[str, Any]:
    return {"model": flow.target.models["responses"],
            "max_output_tokens": _cap(flow.target, 64)}


def flow_tokens(name: str, target: Target) -> int:
    """The most output tokens flow ``name`` may ask for in all, within the target's cap (the
    run's token cap counts them)."""
    per = {"previous": 3, "cancel": 1}.get(name, 1)
    wanted = {"previous": 64, "cancel": 256, "chat_store": 16}.get(name, 64)
    return per * _cap(target, wanted)


def stored(flow: Flow) -> None:
    """Create, retrieve, list its input items, delete, retrieve again."""
    status, created = flow.step("create", "POST", "/v1/responses",
                                {**_model(flow), "input": "Say test", "store": True})
    rid = created.get("id")
    if not _ok(status) or not isinstance(rid, str):
        return
    flow.step("retrieve", "GET", f"/v1/responses/{rid}")
    flow.step("input_items", "GET", f"/v1/responses/{rid}/input_items")
    status, _ = flow.step("delete", "DELETE", f"/v1/responses/{rid}")
    if _ok(status):
        flow.step("after_delete", "GET", f"/v1/responses/{rid}", expect=Expectation(404))


def not_stored(flow: Flow) -> None:
    """``store: false``, then retrieve."""
    status, created = flow.step("create", "POST", "/v1/responses",
                                {**_model(flow), "input": "Say test", "store": False})
    if _ok(status) and isinstance(created.get("id"), str):
        flow.step("retrieve", "GET", f"/v1/responses/{created['id']}",
                  expect=Expectation(404))


def previous(flow: Flow) -> None:
    """A first turn, its continuation, and the continuation's input alone."""
    status, first = flow.step("first", "POST", "/v1/responses",
                              {**_model(flow), "input": "Say test"})
    if not _ok(status) or not isinstance(first.get("id"), str):
        return
    again = {**_model(flow), "input": "Now say it again."}
    flow.step("continued", "POST", "/v1/responses",
              {**again, "previous_response_id": first["id"]})
    flow.step("alone", "POST", "/v1/responses", again)
    flow.step("cleanup", "DELETE", f"/v1/responses/{first['id']}")


def cancel(flow: Flow) -> None:
    """A background response, cancelled at once, then looked at until it settles."""
    status, created = flow.step("create", "POST", "/v1/responses", {
        **_model(flow), "max_output_tokens": _cap(flow.target, 256), "background": True,
        "store": True,
        "input": "Write at least 200 words about how gateways proxy language models."})
    rid = created.get("id")
    if not _ok(status) or not isinstance(rid, str):
        return
    status, _ = flow.step("cancel", "POST", f"/v1/responses/{rid}/cancel")
    if _ok(status):
        time.sleep(0.6 if flow.target.is_loopback else 2.0)  # past a quick finish
        flow.until("after_cancel", f"/v1/responses/{rid}",
                   lambda body: body.get("status") not in ("queued", "in_progress"))
    flow.step("cleanup", "DELETE", f"/v1/responses/{rid}")


def conversation(flow: Flow) -> None:
    """Create with an item, respond in it, list, add, delete an item, delete it."""
    status, created = flow.step("create", "POST", "/v1/conversations", {
        "items": [{"role": "user", "content": "Hello from gateprobe"}]})
    cid = created.get("id")
    if not _ok(status) or not isinstance(cid, str):
        return
    base = f"/v1/conversations/{cid}"
    flow.step("respond", "POST", "/v1/responses",
              {**_model(flow), "input": "Say test", "conversation": cid, "store": False})
    flow.step("items", "GET", f"{base}/items?order=asc&limit=100")
    status, added = flow.step("add", "POST", f"{base}/items", {"items": [
        {"role": "user", "content": "Note added by gateprobe"}]})
    flow.step("items_after_add", "GET", f"{base}/items?order=asc&limit=100")
    new = added.get("data")
    if _ok(status) and isinstance(new, list) and new and isinstance(new[0], dict):
        flow.step("delete_item", "DELETE", f"{base}/items/{new[0].get('id')}")
        flow.step("items_after_delete", "GET", f"{base}/items?order=asc&limit=100")
    status, _ = flow.step("delete", "DELETE", base)
    if _ok(status):
        flow.step("after_delete", "GET", base, expect=Expectation(404))


def chat_store(flow: Flow) -> None:
    """A stored chat completion: listed by its metadata, retrieved, its messages, deleted."""
    tag = secrets.token_hex(6)
    status, created = flow.step("create", "POST", "/v1/chat/completions", {
        "model": flow.target.models["chat"], "max_tokens": _cap(flow.target, 16),
        "store": True,
        "metadata": {"gateprobe": tag}, "messages": [{"role": "user", "content": "Say test"}]})
    cid = created.get("id")
    if not _ok(status) or not isinstance(cid, str):
        return
    listing = f"/v1/chat/completions?metadata[gateprobe]={tag}&limit=100"
    flow.until("listed", listing, lambda body: cid in [
        i.get("id") for i in body.get("data") or [] if isinstance(i, dict)])
    flow.step("retrieve", "GET", f"/v1/chat/completions/{cid}")
    flow.step("messages", "GET", f"/v1/chat/completions/{cid}/messages")
    status, _ = flow.step("delete", "DELETE", f"/v1/chat/completions/{cid}")
    if _ok(status):
        flow.step("after_delete", "GET", f"/v1/chat/completions/{cid}",
                  expect=Expectation(404))
        flow.until("listed_after_delete", listing, lambda body: cid not in [
            i.get("id") for i in body.get("data") or [] if isinstance(i, dict)])


FLOWS: dict[str, Callable[[Flow], None]] = {
    "stored": stored, "not_stored": not_stored, "previous": previous, "cancel": cancel,
    "conversation": conversation, "chat_store": chat_store}
assert set(FLOWS) == set(JUDGES) == set(FAMILY_OF_FLOW)


def run_flow(name: str, client: httpx.Client, target: Target,
             run: RunState | None = None) -> Flow:
    """Run one flow against ``target``: its record (``Flow.record()``) and every step."""
    flow = Flow(name, client, target, run or RunState())
    FLOWS[name](flow)
    return flow


def flows_for(target: Target) -> list[str]:
    """The flows of the families ``target`` declares."""
    return [name for name, family in FAMILY_OF_FLOW.items() if family in target.served]


def describe_traffic(target: Target) -> str:
    """What the suite's flows send, for a dry run."""
    names = flows_for(target)
    return (f"stateful: {len(names)} flows ({', '.join(names)}), each a few requests "
            "(at most 64 output tokens each, 256 for the cancelled background response)"
            if names else "")
