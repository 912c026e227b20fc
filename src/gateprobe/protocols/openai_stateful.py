"""What OpenAI's stateful APIs promise across requests: stored responses, continuations,
background cancellation, conversations' items, stored chat completions.

A flow (``gateprobe.engine.stateful`` runs it) is a short sequence of requests, each needing an id an
earlier answer gave. Its record travels as one ``Exchange`` with method ``FLOW``: each step an
event named after the step, whose data is ``{"status", "body"}`` (the body decoded when JSON).
The ``state.flow`` check judges it with the pure functions below, one per flow; a step whose
own request failed (no answer, a 5xx, a 429 the pacing could not wait out) makes the rest
of the flow unjudgeable, not wrong: those steps' own findings say why.

What each flow holds a gateway to (OpenAI's API reference):

- ``stored``: a response created with ``store`` (the default) is retrievable by its id with the
  same output, lists its input among its ``input_items``, and after ``DELETE`` answers 404
  (``responses.stored``, ``responses.deleted``);
- ``not_stored``: one created with ``store: false`` answers 404 (``responses.not_stored``);
- ``previous``: a response continuing another (``previous_response_id``) reads the prior turn;
  OpenAI bills the whole chain as input, so its ``input_tokens`` exceed those of the same
  input alone by at least half the prior turn's output (the half leaves room for tokenizers'
  boundaries; a gateway that drops the chain bills the same) (``responses.previous``);
- ``cancel``: a background response cancelled before it ended stays cancelled
  (``responses.cancel``); one that ended first is not judged;
- ``conversation``: a conversation's items hold what it was created with, the input and output
  of a response created in it, and the items added; a deleted item and a deleted conversation
  are gone (``conversations.items``);
- ``chat_store``: a chat completion created with ``store: true`` is listed (by its metadata),
  retrievable with the same message and its request's messages, and after ``DELETE`` answers
  404 and is no longer listed (``chat_store.stored``, ``chat_store.deleted``).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from gateprobe.core.checks import NOT_APPLICABLE, CheckResult, Context, Exchange, check
from gateprobe.core.findings import Finding, Severity
from gateprobe.core.sse import Event
from gateprobe.protocols.openai_responses import output_text

FLOW = "FLOW"
"""The method of a flow's exchange (no HTTP exchange has it)."""
STATE_IDS = ("responses.stored", "responses.deleted", "responses.not_stored",
             "responses.previous", "responses.cancel", "conversations.items",
             "chat_store.stored", "chat_store.deleted")
TERMINAL = frozenset({"completed", "failed", "incomplete", "cancelled"})
EVIDENCE_CHARS = 400

Steps = Mapping[str, tuple[int | None, Any]]
"""Step name -> (status, decoded body)."""
Problem = tuple[str, str, str]
"""(check id, expected, observed)."""


def step_event(name: str, status: int | None, body: bytes, t_ns: int = 0) -> Event:
    """One step of a flow as an event of its exchange."""
    try:
        decoded: Any = json.loads(body)
    except ValueError:
        decoded = body[:EVIDENCE_CHARS].decode("utf-8", "replace")
    return Event(name, json.dumps({"status": status, "body": decoded}), "", t_ns)


def steps_of(events: Sequence[Event]) -> dict[str, tuple[int | None, Any]]:
    """The recorded steps by name (the last of a repeated one)."""
    out: dict[str, tuple[int | None, Any]] = {}
    for event in events:
        try:
            record = json.loads(event.data)
        except ValueError:
            continue
        if isinstance(record, dict):
            out[event.type] = (record.get("status"), record.get("body"))
    return out


def _ok(steps: Steps, *names: str) -> bool:
    """Whether every named step ran and answered 2xx (else the flow cannot go on)."""
    statuses = [steps[name][0] if name in steps else None for name in names]
    return all(isinstance(s, int) and 200 <= s < 300 for s in statuses)


def _body(steps: Steps, name: str) -> dict[str, Any]:
    body = steps.get(name, (None, None))[1]
    return body if isinstance(body, dict) else {}


def _status(steps: Steps, name: str) -> int | None:
    return steps.get(name, (None, None))[0]


def _ids(listing: dict[str, Any]) -> list[Any]:
    data = listing.get("data")
    return [i.get("id") for i in data if isinstance(i, dict)] if isinstance(data, list) else []


def _texts(listing: dict[str, Any]) -> str:
    """Every text of a list of items or messages, joined (what a client would read)."""
    data = listing.get("data")
    out = []
    for item in data if isinstance(data, list) else []:
        content = item.get("content") if isinstance(item, dict) else None
        if isinstance(content, str):
            out.append(content)
        for part in content if isinstance(content, list) else []:
            if isinstance(part, dict) and isinstance(part.get("text"), str):
                out.append(part["text"])
    return "\n".join(out)


def judge_stored(steps: Steps) -> list[Problem]:
    """Created, retrieved the same, its input listed, deleted, then 404."""
    if not _ok(steps, "create"):
        return []
    created = _body(steps, "create")
    out: list[Problem] = []
    if not _ok(steps, "retrieve"):  # then its deletion cannot be judged
        return [("responses.stored", "a stored response retrievable by its id",
                 f"GET answered {_status(steps, 'retrieve')}")]
    if (_body(steps, "retrieve").get("id"), output_text(_body(steps, "retrieve"))) != \
            (created.get("id"), output_text(created)):
        out.append(("responses.stored", "the stored response with the same id and output",
                    f"GET gave {str(_body(steps, 'retrieve').get('id'))[:40]!r} with output "
                    f"{output_text(_body(steps, 'retrieve'))[:60]!r}"))
    if _ok(steps, "input_items") and "Say test" not in _texts(_body(steps, "input_items")):
        out.append(("responses.stored", "its input_items list the input it was given",
                    f"input_items {json.dumps(_body(steps, 'input_items'))[:120]}"))
    if not _ok(steps, "delete"):
        out.append(("responses.deleted", "DELETE of a stored response answers 200",
                    f"status {_status(steps, 'delete')}"))
    elif _status(steps, "after_delete") != 404:
        out.append(("responses.deleted", "404 for a deleted response",
                    f"GET after DELETE answered {_status(steps, 'after_delete')}"))
    return out


def judge_not_stored(steps: Steps) -> list[Problem]:
    """``store: false``: nothing to retrieve."""
    if not _ok(steps, "create") or _status(steps, "retrieve") == 404:
        return []
    return [("responses.not_stored", "404 for a response created with store: false",
             f"GET answered {_status(steps, 'retrieve')}")]


def _tokens(body: dict[str, Any], name: str) -> int | None:
    usage = body.get("usage")
    value = usage.get(name) if isinstance(usage, dict) else None
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def judge_previous(steps: Steps) -> list[Problem]:
    """The continuation bills (so reads) the prior turn."""
    if not _ok(steps, "first", "alone"):
        return []
    if not _ok(steps, "continued"):
        return [("responses.previous", "a continuation of a stored response is served",
                 f"previous_response_id answered {_status(steps, 'continued')}")]
    prior = _tokens(_body(steps, "first"), "output_tokens")
    alone = _tokens(_body(steps, "alone"), "input_tokens")
    continued = _tokens(_body(steps, "continued"), "input_tokens")
    if prior is None or alone is None or continued is None:
        return []  # usage is responses.usage's business
    if continued < alone + prior // 2:
        return [("responses.previous", "input_tokens that include the prior turn (at least "
                 f"{alone} + {prior // 2})", f"input_tokens {continued}: the prior turn "
                 "(previous_response_id) was not read")]
    return []


def judge_cancel(steps: Steps) -> list[Problem]:
    """Cancelled before it ended: it stays cancelled."""
    if not _ok(steps, "create", "cancel"):
        return []
    said = _body(steps, "cancel").get("status")
    now = _body(steps, "after_cancel").get("status")
    if said != "cancelled" or not _ok(steps, "after_cancel"):
        return [] if said in TERMINAL else [(
            "responses.cancel", "cancel answers the response cancelled (or as it ended)",
            f"status {said!r}")]
    return [] if now == "cancelled" else [(
        "responses.cancel", "a cancelled background response stays cancelled",
        f"cancel said cancelled, a later GET says {now!r}")]


def judge_conversation(steps: Steps) -> list[Problem]:
    """The conversation's items: created with, a response's input and output, added, deleted."""
    if not _ok(steps, "create", "respond", "items"):
        return []
    listed = _texts(_body(steps, "items"))
    wanted = {"the item it was created with": "Hello from gateprobe",
              "the response's input": "Say test",
              "the response's output": output_text(_body(steps, "respond"))}
    missing = [what for what, text in wanted.items() if text and text not in listed]
    out: list[Problem] = [("conversations.items", "a conversation's items hold " + what,
                           f"items: {listed[:120]!r}") for what in missing]
    if _ok(steps, "add") and _ok(steps, "items_after_add") and \
            "Note added by gateprobe" not in _texts(_body(steps, "items_after_add")):
        out.append(("conversations.items", "added items are listed",
                    "the added item is not listed"))
    if _ok(steps, "delete_item") and "Note added by gateprobe" in \
            _texts(_body(steps, "items_after_delete")):
        out.append(("conversations.items", "a deleted item is no longer listed",
                    "it still is"))
    if _ok(steps, "delete") and _status(steps, "after_delete") != 404:
        out.append(("conversations.items", "404 for a deleted conversation",
                    f"GET after DELETE answered {_status(steps, 'after_delete')}"))
    return out


def judge_chat_store(steps: Steps) -> list[Problem]:
    """Stored, listed by its metadata, retrieved the same, its messages, deleted."""
    if not _ok(steps, "create"):
        return []
    created = _body(steps, "create")
    cid, out = created.get("id"), list[Problem]()
    if cid not in _ids(_body(steps, "listed")):
        out.append(("chat_store.stored", "a completion created with store: true is listed",
                    f"the list (by its metadata) answered {_status(steps, 'listed')} without "
                    f"{str(cid)[:40]!r}"))
    if not _ok(steps, "retrieve") or _message(_body(steps, "retrieve")) != _message(created):
        out.append(("chat_store.stored", "the stored completion, retrievable with the same "
                    "message", f"GET answered {_status(steps, 'retrieve')}"))
    if _ok(steps, "messages") and "Say test" not in _texts(_body(steps, "messages")):
        out.append(("chat_store.stored", "its messages list the request's",
                    f"messages {json.dumps(_body(steps, 'messages'))[:120]}"))
    if _ok(steps, "delete"):
        if _status(steps, "after_delete") != 404:
            out.append(("chat_store.deleted", "404 for a deleted stored completion",
                        f"GET after DELETE answered {_status(steps, 'after_delete')}"))
        if cid in _ids(_body(steps, "listed_after_delete")):
            out.append(("chat_store.deleted", "a deleted completion is no longer listed",
                        "it still is"))
    return out


def _message(body: dict[str, Any]) -> Any:
    choices = body.get("choices")
    first = choices[0] if isinstance(choices, list) and choices else {}
    return first.get("message", {}).get("content") if isinstance(first, dict) else None


JUDGES: Mapping[str, Callable[[Steps], list[Problem]]] = {
    "stored": judge_stored, "not_stored": judge_not_stored, "previous": judge_previous,
    "cancel": judge_cancel, "conversation": judge_conversation,
    "chat_store": judge_chat_store}
"""Each flow's judge, by the flow's name (``Exchange.request["flow"]``)."""


@check("state.flow", Severity.HIGH, "stored responses, continuations, cancellation, "
       "conversations' items and stored chat completions hold across requests",
       emits=STATE_IDS)
def state_flow(ctx: Context, ex: Exchange) -> CheckResult:
    """A flow's record, through its judge."""
    flow = ex.request.get("flow") if ex.method == FLOW and isinstance(ex.request, dict) \
        else None
    if not isinstance(flow, str) or flow not in JUDGES:
        return NOT_APPLICABLE
    steps = steps_of(ex.events)
    evidence = ctx.redactor.text("\n".join(
        f"{name}: {status} {json.dumps(body)[:160]}" for name, (status, body) in steps.items()))
    return [Finding(cid, ex.endpoint, Severity.HIGH, expected, ctx.redactor.text(observed),
                    evidence) for cid, expected, observed in JUDGES[flow](steps)]
