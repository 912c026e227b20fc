"""OpenAI's Conversations API and the store of chat completions.

Conversations: ``/v1/conversations`` (create), ``/{id}`` (retrieve, update its metadata,
delete), ``/{id}/items`` (add, list) and ``/{id}/items/{item_id}`` (retrieve, delete). A
response created with ``conversation`` adds its input and output items (``responses.py``).

Stored chat completions: a chat completion created with ``store: true`` is kept; ``GET
/v1/chat/completions`` lists them (oldest first), ``/{id}`` retrieves, updates (metadata) and
deletes one, ``/{id}/messages`` lists the messages it was asked with.
"""

from __future__ import annotations

import time
from typing import Any

from starlette.responses import Response

from gateprobe.core.families import PATHS
from gateprobe.reference.call import Call
from gateprobe.reference.envelopes import GatewayError
from gateprobe.reference.faults import CHAT_STORE_DELETED_SERVED, CHAT_STORE_IGNORED
from gateprobe.reference.responses import (
    Handler,
    dispatch,
    input_items,
    json_answer,
    new_id,
    page,
)
from gateprobe.reference.validate import check_body, f, invalid

CONVERSATIONS = PATHS["conversations"]
ONE = CONVERSATIONS + "/{conversation_id}"
ITEMS = ONE + "/items"
ITEM = ITEMS + "/{item_id}"
CHAT = PATHS["chat"]
CHAT_ONE = CHAT + "/{completion_id}"
CHAT_MESSAGES = CHAT_ONE + "/messages"

CONVERSATION_FIELDS = (f("items", "array", "null", max_items=20), f("metadata", "object", "null"))
ITEMS_FIELDS = (f("items", "array", required=True, min_items=1, max_items=20),)
UPDATE_FIELDS = (f("metadata", "object", required=True),)


def check_metadata(value: Any) -> dict[str, str]:
    """At most 16 string values (OpenAI's limit on metadata, wherever a request carries it)."""
    if value is None:
        return {}
    if len(value) > 16 or not all(isinstance(v, str) for v in value.values()):
        invalid("openai", "metadata", "Invalid 'metadata': at most 16 string values.", "")
    return dict(value)


# -- conversations ---------------------------------------------------------------------------
def _conversation(call: Call) -> dict[str, Any]:
    call.authenticate()
    cid = call.request.path_params["conversation_id"]
    record = call.state.stored.conversations.get(cid)
    if record is None or record["deleted"]:
        raise GatewayError("not_found", f"Conversation with id '{cid}' not found.")
    return dict(record)


async def create_conversation(call: Call) -> Response:
    """``POST /v1/conversations``."""
    call.authenticate()
    body = await call.json_body()
    check_body("openai", body, CONVERSATION_FIELDS)
    cid = new_id("conv")
    conversation = {"id": cid, "object": "conversation", "created_at": int(time.time()),
                    "metadata": check_metadata(body.get("metadata"))}
    call.state.stored.conversations[cid] = {
        "body": conversation, "items": input_items(body.get("items")), "deleted": False}
    return json_answer(call, conversation)


async def retrieve_conversation(call: Call) -> Response:
    """``GET /v1/conversations/{conversation_id}``."""
    return json_answer(call, _conversation(call)["body"])


async def update_conversation(call: Call) -> Response:
    """``POST /v1/conversations/{conversation_id}``: its metadata replaced."""
    record = _conversation(call)
    body = await call.json_body()
    check_body("openai", body, UPDATE_FIELDS)
    record["body"]["metadata"] = check_metadata(body["metadata"])
    return json_answer(call, record["body"])


async def delete_conversation(call: Call) -> Response:
    """``DELETE /v1/conversations/{conversation_id}``."""
    record = _conversation(call)
    call.state.stored.conversations[record["body"]["id"]]["deleted"] = True
    return json_answer(call, {"id": record["body"]["id"], "object": "conversation.deleted",
                              "deleted": True})


async def add_items(call: Call) -> Response:
    """``POST /v1/conversations/{conversation_id}/items``: the items added, as a list."""
    record = _conversation(call)
    body = await call.json_body()
    check_body("openai", body, ITEMS_FIELDS)
    added = input_items(body["items"])
    record["items"] += added
    return json_answer(call, {"object": "list", "data": added, "first_id": added[0]["id"],
                              "last_id": added[-1]["id"], "has_more": False})


async def list_items(call: Call) -> Response:
    """``GET /v1/conversations/{conversation_id}/items`` (newest first unless ``order=asc``)."""
    return json_answer(call, page(call, _conversation(call)["items"], "desc"))


def _item(call: Call) -> tuple[dict[str, Any], dict[str, Any]]:
    record = _conversation(call)
    wanted = call.request.path_params["item_id"]
    item = next((i for i in record["items"] if i.get("id") == wanted), None)
    if item is None:
        raise GatewayError("not_found", f"Item with id '{wanted}' not found.")
    return record, item


async def retrieve_item(call: Call) -> Response:
    """``GET /v1/conversations/{conversation_id}/items/{item_id}``."""
    return json_answer(call, _item(call)[1])


async def delete_item(call: Call) -> Response:
    """``DELETE /v1/conversations/{conversation_id}/items/{item_id}``: the conversation."""
    record, item = _item(call)
    record["items"].remove(item)
    return json_answer(call, record["body"])


# -- stored chat completions -----------------------------------------------------------------
def store_chat(call: Call, body: dict[str, Any], completion: dict[str, Any]) -> None:
    """Keep a chat completion created with ``store: true`` (its messages with ids)."""
    if not body.get("store") or CHAT_STORE_IGNORED.active(call.config.faults, CHAT):
        return
    cid = completion["id"]
    messages = [{"id": f"{cid}-{i}", "role": m.get("role"), "content": m.get("content"),
                 "name": m.get("name"), "content_parts": None}
                for i, m in enumerate(body["messages"])]
    call.state.stored.chat[cid] = {
        "body": {**completion, "metadata": check_metadata(body.get("metadata")),
                 "request_id": call.request_id},
        "messages": messages, "deleted": False}


def _completion(call: Call, route: str) -> dict[str, Any]:
    call.authenticate()
    cid = call.request.path_params["completion_id"]
    record = call.state.stored.chat.get(cid)
    if record is None or record["deleted"] and \
            not CHAT_STORE_DELETED_SERVED.active(call.config.faults, route):
        raise GatewayError("not_found", f"Chat completion with id '{cid}' not found.")
    return dict(record)


def _public(body: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in body.items() if k != "request_id"}


async def list_chat(call: Call) -> Response:
    """``GET /v1/chat/completions``: the stored ones, oldest first; ``model`` and
    ``metadata[key]=value`` filter them."""
    call.authenticate()
    query = call.request.query_params
    faults = call.config.faults
    kept = [_public(r["body"]) for r in call.state.stored.chat.values()
            if not r["deleted"] or CHAT_STORE_DELETED_SERVED.active(faults, CHAT)]
    model = query.get("model")
    kept = [c for c in kept if model is None or c["model"] == model or
            c["model"].startswith(model + "-")]
    for key, value in query.multi_items():
        if key.startswith("metadata[") and key.endswith("]"):
            kept = [c for c in kept if c["metadata"].get(key[9:-1]) == value]
    return json_answer(call, page(call, kept, "asc"))


async def retrieve_chat(call: Call) -> Response:
    """``GET /v1/chat/completions/{completion_id}``."""
    return json_answer(call, _public(_completion(call, CHAT_ONE)["body"]))


async def update_chat(call: Call) -> Response:
    """``POST /v1/chat/completions/{completion_id}``: its metadata replaced."""
    record = _completion(call, CHAT_ONE)
    body = await call.json_body()
    check_body("openai", body, UPDATE_FIELDS)
    record["body"]["metadata"] = check_metadata(body["metadata"])
    return json_answer(call, _public(record["body"]))


async def delete_chat(call: Call) -> Response:
    """``DELETE /v1/chat/completions/{completion_id}``."""
    record = _completion(call, CHAT_ONE)
    call.state.stored.chat[record["body"]["id"]]["deleted"] = True
    return json_answer(call, {"id": record["body"]["id"], "object": "chat.completion.deleted",
                              "deleted": True})


async def list_chat_messages(call: Call) -> Response:
    """``GET /v1/chat/completions/{completion_id}/messages`` (oldest first)."""
    return json_answer(call, page(call, _completion(call, CHAT_MESSAGES)["messages"], "asc"))


def routes() -> list[tuple[str, Handler]]:
    """(path, handler) of every route here (``app.py`` joins ``list_chat`` to the chat
    route's POST)."""
    return [
        (CONVERSATIONS, dispatch({"POST": create_conversation})),
        (ONE, dispatch({"GET": retrieve_conversation, "POST": update_conversation,
                        "DELETE": delete_conversation})),
        (ITEMS, dispatch({"GET": list_items, "POST": add_items})),
        (ITEM, dispatch({"GET": retrieve_item, "DELETE": delete_item})),
        (CHAT_ONE, dispatch({"GET": retrieve_chat, "POST": update_chat,
                             "DELETE": delete_chat})),
        (CHAT_MESSAGES, dispatch({"GET": list_chat_messages})),
    ]
