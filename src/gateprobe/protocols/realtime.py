"""OpenAI's Realtime API (beta v1) over a WebSocket: the server event grammar and the handshake.

A session's server events arrive as the events of one ``Exchange`` of ``/v1/realtime`` (each an
SSE-shaped ``Event`` whose type is the event's ``type`` and whose data is its JSON), recorded
by ``gateprobe.engine.realtime_session``. The grammar: ``session.created`` first; every event a JSON
object with a ``type``; a response's events (``response.output_item.*``,
``response.content_part.*``, ``response.*.delta``/``.done``) only between its
``response.created`` and ``response.done``, and every response done by the end; an ``error``
event carries ``error: {type, message}``. The handshake: a bad key or a model that is not a
realtime one is refused there, with an HTTP status, not after the upgrade (status 101).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from gateprobe.core.checks import NOT_APPLICABLE, CheckResult, Context, Exchange, check
from gateprobe.core.findings import Finding, Severity
from gateprobe.core.sse import Event

ENDPOINT = "/v1/realtime"
SWITCHING = 101
REFUSED_KINDS = frozenset({"bad_key", "missing_key", "bad_model"})
DELTAS = frozenset({"response.text.delta", "response.audio.delta",
                    "response.audio_transcript.delta", "response.function_call_arguments.delta"})
EVIDENCE_CHARS = 300
SESSION_CHECKS = ("realtime.session", "realtime.handshake", "security.key_echoed")
"""What an upgraded session is judged by (an HTTP answer's checks do not apply to a 101)."""
HANDSHAKE_CHECKS = ("realtime.handshake", "auth.rejected", "error.envelope",
                    "security.key_echoed")
"""What a refused handshake is judged by: refused in time, with the right status and body."""

Problem = tuple[str, str, str]


class RealtimeGrammar:
    """The server events of one session, fed in arrival order."""

    def __init__(self) -> None:
        self.count = 0
        self.open: set[str] = set()
        self.done: set[str] = set()

    def feed(self, event: Mapping[str, Any]) -> list[Problem]:
        """One server event: what it breaks of the order so far."""
        kind, out = event.get("type"), list[Problem]()
        self.count += 1
        if not isinstance(kind, str):
            return [("realtime.order", "an event with a type", f"{str(event)[:80]}")]
        if self.count == 1 and kind != "session.created":
            out.append(("realtime.order", "session.created first", f"{kind} first"))
        if kind == "error":
            error = event.get("error")
            if not (isinstance(error, dict) and isinstance(error.get("type"), str)
                    and isinstance(error.get("message"), str)):
                out.append(("realtime.error", "an error event with error: {type, message}",
                            f"{json.dumps(event)[:120]}"))
            return out
        return out + self._response_order(kind, event)

    def _response_order(self, kind: str, event: Mapping[str, Any]) -> list[Problem]:
        response = event.get("response")
        rid = response.get("id") if isinstance(response, dict) else event.get("response_id")
        if kind == "response.created" and isinstance(rid, str):
            self.open.add(rid)
        elif kind == "response.done" and isinstance(rid, str):
            if rid not in self.open:
                return [("realtime.order", "response.done after its response.created",
                         f"response.done of {rid} not open")]
            self.open.discard(rid)
            self.done.add(rid)
        elif kind.startswith("response.") and rid not in self.open:
            when = "after its response.done" if rid in self.done else \
                "before its response.created"
            return [("realtime.order", "a response's events between response.created and "
                     "response.done", f"{kind} {when}")]
        return []

    def finish(self) -> list[Problem]:
        """The end of the session: every response done."""
        return [("realtime.order", "response.done for every response.created",
                 f"{len(self.open)} response(s) never done")] if self.open else []


def judge_events(events: Sequence[Event]) -> list[Problem]:
    """The grammar over a session's recorded events."""
    grammar, out = RealtimeGrammar(), list[Problem]()
    for event in events:
        try:
            payload = json.loads(event.data)
        except ValueError:
            out.append(("realtime.order", "JSON events", f"{event.data[:80]!r}"))
            continue
        out += grammar.feed(payload if isinstance(payload, dict) else {})
    return out + grammar.finish()


def first_delta_ns(events: Sequence[Event]) -> int | None:
    """When the first text or audio delta arrived (None: none did)."""
    return next((e.t_ns for e in events if e.type in DELTAS), None)


def _finding(ctx: Context, ex: Exchange, check_id: str, expected: str,
             observed: str) -> Finding:
    evidence = ex.body[:EVIDENCE_CHARS].decode("utf-8", "replace")
    return Finding(check_id, ENDPOINT, Severity.HIGH, expected, ctx.redactor.text(observed),
                   ctx.redactor.text(evidence))


@check("realtime.session", Severity.HIGH, "a Realtime session's server events follow the "
       "protocol", emits=("realtime.order", "realtime.error"))
def realtime_session(ctx: Context, ex: Exchange) -> CheckResult:
    """The session's events through ``RealtimeGrammar``."""
    if ex.endpoint.split("?", 1)[0] != ENDPOINT or ex.status != SWITCHING:
        return NOT_APPLICABLE
    problems = list(dict.fromkeys(judge_events(ex.events)))
    return [_finding(ctx, ex, cid, expected, observed) for cid, expected, observed in problems]


@check("realtime.handshake", Severity.HIGH, "a bad key or model is refused at the handshake, a "
       "good one opens")
def realtime_handshake(ctx: Context, ex: Exchange) -> CheckResult:
    """Refused before the upgrade, with an HTTP status a client can act on: once upgraded, a
    client has paid for a connection the gateway should never have opened."""
    if ex.endpoint.split("?", 1)[0] != ENDPOINT or ex.status is None:
        return NOT_APPLICABLE
    if ctx.expect.kind not in REFUSED_KINDS:
        return [] if ex.status == SWITCHING else [_finding(
            ctx, ex, "realtime.handshake", "the session opened (101 Switching Protocols)",
            f"status {ex.status}")]
    if not 400 <= ex.status < 500:
        return [_finding(ctx, ex, "realtime.handshake",
                         f"a 4xx at the handshake for a {ctx.expect.kind.replace('_', ' ')}",
                         f"status {ex.status}")]
    return []
