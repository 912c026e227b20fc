"""What the reference gateway keeps between requests for OpenAI's stateful APIs: stored
responses and their input items, conversations and their items, stored chat completions.

Bounded like the trace store: a long load run (the Responses API stores by default) drops the
oldest entries rather than growing without end. ``GatewayState`` holds one; ``reset`` empties it.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

CAPACITY = 10_000
"""Entries kept per kind before the oldest is dropped."""


class Bounded(OrderedDict[str, Any]):
    """An insertion-ordered map that forgets its oldest entries beyond ``CAPACITY``."""

    def __setitem__(self, key: str, value: Any) -> None:
        super().__setitem__(key, value)
        while len(self) > CAPACITY:
            self.popitem(last=False)


@dataclass(slots=True)
class StoredResponse:
    """One response as ``GET /v1/responses/{id}`` serves it, and what it was asked."""

    body: dict[str, Any]
    input_items: list[dict[str, Any]]
    history: str
    """The conversation so far as the fake model read it (a continuation prepends it)."""
    ready_ns: int = 0
    """A background response's due time (``perf_counter_ns``): queued until then."""
    final: dict[str, Any] | None = None
    """A background response's body once done (``body`` says queued until ``ready_ns``)."""
    deleted: bool = False


@dataclass(slots=True)
class Stored:
    """Every kind the stateful routes keep, each bounded."""

    responses: Bounded = field(default_factory=Bounded)
    conversations: Bounded = field(default_factory=Bounded)
    """id -> {"body": conversation object, "items": [item, ...], "deleted": bool}"""
    chat: Bounded = field(default_factory=Bounded)
    """id -> {"body": chat.completion, "messages": [...], "deleted": bool}"""

    def clear(self) -> None:
        """Forget everything (``/_gateprobe/reset``)."""
        self.responses.clear()
        self.conversations.clear()
        self.chat.clear()
