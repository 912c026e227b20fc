"""The Realtime API over a WebSocket (seeds-extra §3.3; OpenAI's Realtime protocol, beta v1).

``/v1/realtime?model=...`` with ``Authorization: Bearer`` and ``OpenAI-Beta: realtime=v1``. A
bad key, a model that is not a realtime one, or a missing beta header is refused at the
handshake with an HTTP answer in OpenAI's envelope (401, 404, 400). Once open: ``session.created``
first; ``session.update`` -> ``session.updated``; ``conversation.item.create`` ->
``conversation.item.created``; ``response.create`` -> ``response.created``, an output item and a
content part, the text in ``response.text.delta`` events on the fake model's schedule, then
the ``.done`` events and ``response.done`` with usage; anything else -> an ``error`` event.
Text only (gateprobe's reading: no audio is synthesized; the grammar treats audio deltas alike).
"""

from __future__ import annotations

import asyncio
import itertools
import json
from typing import Any

from starlette.responses import JSONResponse
from starlette.routing import WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

from gateprobe.core.families import PATHS
from gateprobe.reference.config import GatewayConfig
from gateprobe.reference.faults import (
    REALTIME_ACCEPT_ANY_KEY,
    REALTIME_BARE_ERROR,
    REALTIME_DELTA_AFTER_DONE,
    REALTIME_NO_SESSION_CREATED,
)

PATH = PATHS["realtime"]
ANSWER = ["This", " is", " a", " test", "."]
_ids = itertools.count(1)


def is_realtime_model(model: str) -> bool:
    """gateprobe's reading: a realtime model names itself so (``gpt-4o-realtime-preview``,
    ``gpt-realtime-mini``: the models the seeds' clients use)."""
    return "realtime" in model


def _id(prefix: str) -> str:
    return f"{prefix}_{next(_ids):012d}"


def _refusal(config: GatewayConfig, ws: WebSocket) -> tuple[int, str, str] | None:
    """Why the handshake is refused (status, type, message), or None."""
    auth = ws.headers.get("authorization", "")
    key = config.keys.get(auth[7:].strip()) if auth.lower().startswith("bearer ") else None
    if key is None and not REALTIME_ACCEPT_ANY_KEY.active(config.faults, PATH):
        return 401, "invalid_request_error", "Incorrect API key provided."
    if ws.headers.get("openai-beta", "").replace(" ", "") != "realtime=v1":
        return 400, "invalid_request_error", "The OpenAI-Beta: realtime=v1 header is required."
    model = ws.query_params.get("model", "")
    if not is_realtime_model(model):
        return 404, "invalid_request_error", f"The model '{model}' is not a realtime model."
    return None


def route(config: GatewayConfig) -> WebSocketRoute:
    """The WebSocket route."""

    async def endpoint(ws: WebSocket) -> None:
        refused = _refusal(config, ws)
        if refused is not None:
            status, kind, message = refused
            await ws.send_denial_response(JSONResponse(
                {"error": {"message": message, "type": kind, "code": None, "param": None}},
                status_code=status))
            return
        await ws.accept()
        session = Session(config, ws, ws.query_params["model"])
        try:
            await session.run()
        except WebSocketDisconnect:
            return

    return WebSocketRoute(PATH, endpoint)


class Session:
    """One open connection."""

    def __init__(self, config: GatewayConfig, ws: WebSocket, model: str) -> None:
        self.config, self.ws, self.model = config, ws, model
        self.items: list[dict[str, Any]] = []

    async def send(self, type_: str, **fields: Any) -> None:
        """One server event."""
        await self.ws.send_text(json.dumps({"type": type_, "event_id": _id("event"),
                                            **fields}))

    async def run(self) -> None:
        """session.created, then one answer per client event, until the client leaves."""
        if not REALTIME_NO_SESSION_CREATED.active(self.config.faults, PATH):
            await self.send("session.created", session=self.session())
        while True:
            raw = await self.ws.receive_text()
            try:
                event = json.loads(raw)
            except ValueError:
                await self.error("invalid_json", "The event is not valid JSON.", None)
                continue
            if not isinstance(event, dict):
                await self.error("invalid_event", "An event is a JSON object.", None)
                continue
            await self.handle(event)

    def session(self) -> dict[str, Any]:
        return {"id": _id("sess"), "object": "realtime.session", "model": self.model,
                "modalities": ["text"], "voice": "alloy", "instructions": "",
                "input_audio_format": "pcm16", "output_audio_format": "pcm16",
                "turn_detection": None, "tools": [], "temperature": 0.8}

    async def handle(self, event: dict[str, Any]) -> None:
        """Answer one client event."""
        kind, event_id = event.get("type"), event.get("event_id")
        if kind == "session.update" and isinstance(event.get("session"), dict):
            await self.send("session.updated", session={**self.session(), **event["session"]})
        elif kind == "conversation.item.create" and isinstance(event.get("item"), dict):
            item = {"id": _id("item"), "object": "realtime.item", "status": "completed",
                    **event["item"]}
            self.items.append(item)
            await self.send("conversation.item.created", previous_item_id=None, item=item)
        elif kind == "response.create":
            await self.respond()
        else:
            await self.error("invalid_event", f"Unknown or malformed event {kind!r}.", event_id)

    async def error(self, code: str, message: str, event_id: Any) -> None:
        """An ``error`` event (the connection stays open)."""
        if REALTIME_BARE_ERROR.active(self.config.faults, PATH):
            await self.send("error", message=message)
            return
        await self.send("error", error={"type": "invalid_request_error", "code": code,
                                        "message": message, "param": None,
                                        "event_id": event_id})

    async def respond(self) -> None:
        """A text answer on the fake model's schedule."""
        rid, iid = _id("resp"), _id("item")
        where = {"response_id": rid, "item_id": iid, "output_index": 0, "content_index": 0}
        item = {"id": iid, "object": "realtime.item", "type": "message", "role": "assistant",
                "status": "in_progress", "content": []}
        await self.send("response.created", response={
            "id": rid, "object": "realtime.response", "status": "in_progress", "output": []})
        await self.send("response.output_item.added", response_id=rid, output_index=0,
                        item=item)
        await self.send("response.content_part.added", **where,
                        part={"type": "text", "text": ""})
        timing = self.config.timing
        await asyncio.sleep(timing.ttft_ms / 1000)
        for n, piece in enumerate(ANSWER):
            if n:
                await asyncio.sleep(timing.itl_ms / 1000)
            await self.send("response.text.delta", **where, delta=piece)
        text = "".join(ANSWER)
        await self.send("response.text.done", **where, text=text)
        await self.send("response.content_part.done", **where, part={"type": "text",
                                                                      "text": text})
        done_item = {**item, "status": "completed", "content": [{"type": "text", "text": text}]}
        await self.send("response.output_item.done", response_id=rid, output_index=0,
                        item=done_item)
        usage = {"total_tokens": 10 + len(ANSWER), "input_tokens": 10,
                 "output_tokens": len(ANSWER)}
        await self.send("response.done", response={
            "id": rid, "object": "realtime.response", "status": "completed",
            "output": [done_item], "usage": usage})
        if REALTIME_DELTA_AFTER_DONE.active(self.config.faults, PATH):
            await self.send("response.text.delta", **where, delta=" again")
