"""A second, independent implementation of the OpenAI and Anthropic wire protocols.

Written from the public API references (PROTOCOL.md), not from ``gateprobe.reference``: it
answers each golden request in another valid way than the reference does, so a golden that
pins the reference's habits instead of the protocol fails against it. Where the reference
calls two tools it calls one; its embeddings have 4 dimensions unless ``dimensions`` is asked;
it sends no optional field (no ``stop``, no ``id`` in legacy stream events, no ``logprobs``,
no ``system_fingerprint``, no ``ping``, no moderation ``category_applied_input_types``); a
chat stream's role chunk carries the first text, an Anthropic stream sends its text in one
delta; its ids have other prefixes (``gen-``); a transcription of silence is empty text, one
segment, language ``en``. A Responses answer opens with a reasoning item (``rs_``, empty
summary) before its message or call, streams its text or arguments in one delta and sends no
echoed settings; a conversation has no ``metadata`` unless some was sent.
"""

from __future__ import annotations

import base64
import itertools
import json
import struct
from collections.abc import Iterator
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from gateprobe.engine.cases import tiny_png

WORDS = ("test", ".", " Sure", " thing", " here", " it", " is")
_ids = itertools.count(1)


def _id(prefix: str) -> str:
    return f"{prefix}{next(_ids):08d}"


def _text(cap: int | None) -> tuple[str, int, bool]:
    """(text, tokens, cut) of an answer of one to seven one-token words under ``cap``."""
    n = 1 if cap is None else min(cap, len(WORDS))
    return "".join(WORDS[:n]), n, cap is not None and cap < 2


def _tokens(value: Any) -> int:
    return max(1, len(json.dumps(value)) // 4)


def _sse(items: list[tuple[str | None, str]]) -> StreamingResponse:
    def body() -> Iterator[bytes]:
        for name, data in items:
            yield ((f"event: {name}\n" if name else "") + f"data: {data}\n\n").encode()

    return StreamingResponse(body(), media_type="text/event-stream")


def _tool(body: dict[str, Any], family: str) -> tuple[str, dict[str, Any]] | None:
    """The one tool this model calls when a call is forced: the first declared."""
    tools = body.get("tools") or []
    if not tools or body.get("tool_choice") in (None, "auto", "none"):
        return None
    first = tools[0]["function"] if family == "openai" else tools[0]
    return first["name"], {"city": "Paris"} if first["name"] == "get_weather" else {}


async def chat(request: Request) -> Response:
    body = await request.json()
    cap = body.get("max_tokens")
    rid, created, model = _id("gen-"), 1_700_000_000, body["model"]
    prompt = _tokens(body["messages"])
    tool = _tool(body, "openai")
    if tool is not None:
        call = {"id": _id("fc-"), "type": "function",
                "function": {"name": tool[0], "arguments": json.dumps(tool[1])}}
        message: dict[str, Any] = {"role": "assistant", "content": None, "tool_calls": [call]}
        choices = [{"index": 0, "message": message, "finish_reason": "tool_calls"}]
        done = 9
    else:
        text, done, cut = _text(cap)
        choices = [{"index": i, "message": {"role": "assistant", "content": text},
                    "finish_reason": "length" if cut or cap is not None and cap <= done
                    else "stop"} for i in range(body.get("n", 1))]
        done *= body.get("n", 1)
    usage = {"prompt_tokens": prompt, "completion_tokens": done,
             "total_tokens": prompt + done}
    head = {"id": rid, "object": "chat.completion.chunk", "created": created, "model": model}
    if not body.get("stream"):
        return JSONResponse({**head, "object": "chat.completion", "choices": choices,
                             "usage": usage})
    first = choices[0]
    delta = {"role": "assistant", **({"content": first["message"]["content"]}
                                     if tool is None else {"tool_calls": [
                                         {"index": 0, **first["message"]["tool_calls"][0]}]})}
    events = [json.dumps({**head, "choices": [{"index": 0, "delta": delta,
                                               "finish_reason": None}]}),
              json.dumps({**head, "choices": [{"index": 0, "delta": {},
                                               "finish_reason": first["finish_reason"]}]})]
    if (body.get("stream_options") or {}).get("include_usage"):
        events.append(json.dumps({**head, "choices": [], "usage": usage}))
    return _sse([(None, e) for e in [*events, "[DONE]"]])


async def completions(request: Request) -> Response:
    body = await request.json()
    prompts = body["prompt"] if isinstance(body["prompt"], list) else [body["prompt"]]
    text, done, _ = _text(body.get("max_tokens"))
    finish = "length" if body.get("max_tokens") is not None else "stop"
    head = {"id": _id("gen-"), "object": "text_completion", "created": 1_700_000_000,
            "model": body["model"]}
    prompt = sum(_tokens(p) for p in prompts)
    usage = {"prompt_tokens": prompt, "completion_tokens": done * len(prompts),
             "total_tokens": prompt + done * len(prompts)}
    if not body.get("stream"):
        return JSONResponse({**head, "choices": [
            {"text": text, "index": i, "finish_reason": finish} for i in range(len(prompts))],
            "usage": usage})
    events = [{**head, "choices": [{"text": text, "index": 0, "finish_reason": None}]},
              {**head, "choices": [{"text": "", "index": 0, "finish_reason": finish}]}]
    if (body.get("stream_options") or {}).get("include_usage"):
        events.append({**head, "choices": [], "usage": usage})
    return _sse([(None, json.dumps(e)) for e in events] + [(None, "[DONE]")])


async def embeddings(request: Request) -> Response:
    body = await request.json()
    inputs = body["input"] if isinstance(body["input"], list) else [body["input"]]
    size = body.get("dimensions", 4)
    data = []
    for i, _ in enumerate(inputs):
        vector = [round(0.5 / (k + i + 1), 6) for k in range(size)]
        value: Any = base64.b64encode(struct.pack(f"<{size}f", *vector)).decode() \
            if body.get("encoding_format") == "base64" else vector
        data.append({"object": "embedding", "index": i, "embedding": value})
    tokens = sum(_tokens(x) for x in inputs)
    return JSONResponse({"object": "list", "data": data, "model": body["model"],
                         "usage": {"prompt_tokens": tokens, "total_tokens": tokens}})


async def count_tokens(request: Request) -> Response:
    body = await request.json()
    return JSONResponse({"input_tokens": _tokens([body.get("system"), body["messages"]])})


async def messages(request: Request) -> Response:
    body = await request.json()
    cap = body["max_tokens"]
    tool = _tool(body, "anthropic")
    if tool is not None:
        block: dict[str, Any] = {"type": "tool_use", "id": _id("toolu_"), "name": tool[0],
                                 "input": tool[1]}
        reason, out = "tool_use", 9
    else:
        text, out, _ = _text(cap)
        block, reason = {"type": "text", "text": text}, \
            "max_tokens" if cap <= out else "end_turn"
    usage = {"input_tokens": _tokens(body["messages"]), "output_tokens": out}
    message = {"id": _id("msg_"), "type": "message", "role": "assistant",
               "model": body["model"], "content": [block], "stop_reason": reason,
               "stop_sequence": None, "usage": usage}
    if not body.get("stream"):
        return JSONResponse(message)
    start = {**block, "input": {}} if tool is not None else {"type": "text", "text": ""}
    delta = {"type": "input_json_delta", "partial_json": json.dumps(block["input"])} \
        if tool is not None else {"type": "text_delta", "text": block["text"]}
    events: list[dict[str, Any]] = [
        {"type": "message_start", "message": {**message, "content": [], "stop_reason": None,
                                              "usage": {**usage, "output_tokens": 1}}},
        {"type": "content_block_start", "index": 0, "content_block": start},
        {"type": "content_block_delta", "index": 0, "delta": delta},
        {"type": "content_block_stop", "index": 0},
        {"type": "message_delta", "delta": {"stop_reason": reason, "stop_sequence": None},
         "usage": {"output_tokens": out}},
        {"type": "message_stop"}]
    return _sse([(e["type"], json.dumps(e)) for e in events])


async def complete(request: Request) -> Response:
    body = await request.json()
    cap = body["max_tokens_to_sample"]
    text, _, _ = _text(min(cap, 3))
    reason = "max_tokens" if cap <= 3 else "stop_sequence"
    answer: dict[str, Any] = {"type": "completion", "completion": text, "stop_reason": reason,
                              "model": body["model"]}
    if not body.get("stream"):
        if reason == "stop_sequence":  # the stop sequence that ended it, and an id
            answer.update(id=_id("compl_"), stop="\n\nHuman:")
        return JSONResponse(answer)
    pieces = [text[:2], text[2:]]
    if request.headers.get("anthropic-version", "2023-06-01") < "2023-06-01":
        return _sse([(None, json.dumps({**answer, "completion": pieces[0],
                                        "stop_reason": None})),
                     (None, json.dumps(answer)), (None, "[DONE]")])
    return _sse([("completion", json.dumps({**answer, "completion": pieces[0],
                                            "stop_reason": None})),
                 ("completion", json.dumps({**answer, "completion": pieces[1]}))])


CATEGORIES = ("harassment", "harassment/threatening", "hate", "hate/threatening", "illicit",
              "illicit/violent", "self-harm", "self-harm/intent", "self-harm/instructions",
              "sexual", "sexual/minors", "violence", "violence/graphic")
THREATS = ("kill", "burn")


async def _fields(request: Request) -> dict[str, Any]:
    """A JSON or form body as one mapping (an image request may come either way)."""
    if request.headers.get("content-type", "").startswith("application/json"):
        return dict(await request.json())
    async with request.form() as form:
        return dict(form)


async def images(request: Request) -> Response:
    body = await _fields(request)
    side = int(str(body.get("size", "1024x1024")).split("x")[0])
    n = int(body.get("n", 1))
    if body.get("response_format") == "b64_json":
        data = [{"b64_json": base64.b64encode(tiny_png(side)).decode()} for _ in range(n)]
    else:
        data = [{"url": f"https://images.independent.example/{_id('img-')}.png"}
                for _ in range(n)]
    return JSONResponse({"created": 1_700_000_000, "data": data})


async def moderations(request: Request) -> Response:
    body = await request.json()
    inputs = body["input"] if isinstance(body["input"], list) else [body["input"]]
    results = []
    for text in inputs:
        threat = any(word in text.lower() for word in THREATS)
        flags = {c: threat and c in ("violence", "harassment/threatening") for c in CATEGORIES}
        results.append({"flagged": threat, "categories": flags,
                        "category_scores": {c: 0.93 if flags[c] else 0.002
                                            for c in CATEGORIES}})
    return JSONResponse({"id": _id("modr-"), "model": body.get("model", "m"),
                         "results": results})


async def transcriptions(request: Request) -> Response:
    async with request.form() as form:  # closes the uploaded file
        fmt = str(form.get("response_format", "json"))
    if fmt == "verbose_json":  # one segment of silence, no optional fields
        return JSONResponse({"task": "transcribe", "language": "en", "duration": 1.0,
                             "text": "", "segments": [
                                 {"id": 0, "seek": 0, "start": 0.0, "end": 1.0, "text": "",
                                  "tokens": [], "temperature": 0.0, "avg_logprob": -0.5,
                                  "compression_ratio": 1.0, "no_speech_prob": 0.9}]})
    return JSONResponse({"text": ""})


def _response_usage(body: dict[str, Any], out: int) -> dict[str, Any]:
    given = _tokens(body["input"])
    return {"input_tokens": given, "input_tokens_details": {"cached_tokens": 0},
            "output_tokens": out, "output_tokens_details": {"reasoning_tokens": 1},
            "total_tokens": given + out}


def _response_items(body: dict[str, Any]) -> list[dict[str, Any]]:
    """A reasoning item, then the message or the one forced function call (done)."""
    items: list[dict[str, Any]] = [{"id": _id("rs_"), "type": "reasoning", "summary": []}]
    tools = body.get("tools") or []
    if tools and body.get("tool_choice") not in (None, "auto", "none"):
        items.append({"id": _id("fc_"), "type": "function_call", "status": "completed",
                      "call_id": _id("call_"), "name": tools[0]["name"],
                      "arguments": json.dumps({"city": "Paris"})})
    else:
        items.append({"id": _id("msg_"), "type": "message", "role": "assistant",
                      "status": "completed", "content": [
                          {"type": "output_text", "text": _text(1)[0], "annotations": []}]})
    return items


def _item_events(index: int, item: dict[str, Any]) -> list[dict[str, Any]]:
    """One output item's events: added, its one part or one argument delta, done."""
    at = {"output_index": index}
    if item["type"] == "reasoning":
        middle: list[dict[str, Any]] = []
        added = item
    elif item["type"] == "function_call":
        ref = {"item_id": item["id"], **at}
        middle = [{"type": "response.function_call_arguments.delta", **ref,
                   "delta": item["arguments"]},
                  {"type": "response.function_call_arguments.done", **ref,
                   "arguments": item["arguments"]}]
        added = {**item, "status": "in_progress", "arguments": ""}
    else:
        part = item["content"][0]
        ref = {"item_id": item["id"], **at, "content_index": 0}
        middle = [{"type": "response.content_part.added", **ref, "part": {**part, "text": ""}},
                  {"type": "response.output_text.delta", **ref, "delta": part["text"]},
                  {"type": "response.output_text.done", **ref, "text": part["text"]},
                  {"type": "response.content_part.done", **ref, "part": part}]
        added = {**item, "status": "in_progress", "content": []}
    return [{"type": "response.output_item.added", **at, "item": added}, *middle,
            {"type": "response.output_item.done", **at, "item": item}]


async def responses(request: Request) -> Response:
    body = await request.json()
    items = _response_items(body)
    head = {"id": _id("resp_"), "object": "response", "created_at": 1_700_000_000,
            "error": None, "incomplete_details": None, "instructions": None,
            "model": body["model"]}
    done = {**head, "status": "completed", "output": items,
            "usage": _response_usage(body, 9)}
    if not body.get("stream"):
        return JSONResponse(done)
    opening = {**head, "status": "in_progress", "output": []}
    events = [{"type": "response.created", "response": opening},
              {"type": "response.in_progress", "response": opening},
              *[e for i, item in enumerate(items) for e in _item_events(i, item)],
              {"type": "response.completed", "response": done}]
    return _sse([(e["type"], json.dumps({**e, "sequence_number": n}))
                 for n, e in enumerate(events)])


async def conversations(request: Request) -> Response:
    body = await request.json()
    answer: dict[str, Any] = {"id": _id("conv_"), "object": "conversation",
                              "created_at": 1_700_000_000}
    if body.get("metadata"):
        answer["metadata"] = body["metadata"]
    return JSONResponse(answer)


def make_app() -> Starlette:
    """The independent gateway: every route the goldens name, any key accepted."""
    return Starlette(routes=[
        Route("/v1/chat/completions", chat, methods=["POST"]),
        Route("/v1/completions", completions, methods=["POST"]),
        Route("/v1/embeddings", embeddings, methods=["POST"]),
        Route("/v1/messages/count_tokens", count_tokens, methods=["POST"]),
        Route("/v1/messages", messages, methods=["POST"]),
        Route("/v1/complete", complete, methods=["POST"]),
        Route("/v1/images/generations", images, methods=["POST"]),
        Route("/v1/moderations", moderations, methods=["POST"]),
        Route("/v1/audio/transcriptions", transcriptions, methods=["POST"]),
        Route("/v1/responses", responses, methods=["POST"]),
        Route("/v1/conversations", conversations, methods=["POST"]),
    ])
