"""The reference gateway refuses what the specs refuse: every ``required``, ``enum`` (and
``const``) and ``minLength`` (and ``maxLength``, ``minimum``, ``maximum``) of every operation's
request in ``specs/*.yaml``, walked from the specs themselves, each broken once from a valid
base request.

Fuzzing finds such gaps only by chance (an empty ``model`` on ``/v1/images/generations`` was
accepted in 1 run of 2 of ``gateprobe run``); this walk finds all of them, and a new route or
field in a spec is walked as soon as it is written. A new operation (or a new media type of
one) that has constraints fails ``test_every_constrained_operation_has_a_base`` until a base
request is added to ``BASES`` below.

What the walk follows: ``$ref`` (inlined), ``properties``, ``items`` (the base's first item),
``allOf`` (every member), and ``oneOf``/``anyOf`` through the branches the base request itself
takes (a branch the base does not take has no valid instance here to break; give the operation
a second base that takes it, as ``dall-e-3`` does for images). It skips ``if``/``then`` (a
conditional requirement is a relation between fields, not a single field's constraint),
header parameters (the only one, ``anthropic-version``, is documented as open: later dates are
served as 2023-06-01) and ``required`` on path parameters (a URL without its segment is
another route). Each mutation must break the whole request schema (checked with jsonschema):
one that another ``oneOf`` branch still accepts is no refusal the spec asks for, and is dropped.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from jsonschema import Draft202012Validator

from gateprobe.core.specs import SPEC_NAMES, SpecName, load_spec
from gateprobe.engine.cases import tiny_png, tiny_wav
from gateprobe.reference import RunningGateway
from gateway_fixtures import client_for

VIP, ADMIN = "gp-vip-0001", "gp-admin-0001"
MEDIA = {"json": "application/json", "form": "application/x-www-form-urlencoded",
         "multipart": "multipart/form-data"}
METHODS = ("get", "post", "put", "patch", "delete")
DROP: Any = object()
"""A mutation's value that removes the field."""
Setup = Callable[[httpx.Client], dict[str, Any]]
"""Fields a base needs from the running gateway (a finished task's id, a created key, a stored
response's or conversation's id)."""


# --- the specs, with every $ref inlined ------------------------------------------------------

def _pointer(root: dict[str, Any], ref: str) -> Any:
    node: Any = root
    for part in ref.removeprefix("#/").split("/"):
        node = node[part.replace("~1", "/").replace("~0", "~")]
    return node


def inline(node: Any, root: dict[str, Any], chain: tuple[str, ...] = ()) -> Any:
    """``node`` with every local ``$ref`` replaced by its target (siblings of the ``$ref``
    kept). A recursive schema is cut where it recurs: the inner copy becomes ``{}`` (anything
    goes), so the walk reaches every constraint once and validation stays finite."""
    if isinstance(node, list):
        return [inline(item, root, chain) for item in node]
    if not isinstance(node, dict):
        return node
    rest = {k: inline(v, root, chain) for k, v in node.items() if k != "$ref"}
    if "$ref" not in node:
        return rest
    ref = node["$ref"]
    if ref in chain:
        return rest
    return {**inline(_pointer(root, ref), root, (*chain, ref)), **rest}


@functools.cache
def spec(name: SpecName) -> dict[str, Any]:
    """The spec with its ``$ref``s inlined (the YAML merge keys are already resolved)."""
    root = load_spec(name)
    resolved: dict[str, Any] = {**root, "paths": inline(root["paths"], root)}
    return resolved


def _with_item_parameters(item: dict[str, Any], op: dict[str, Any]) -> dict[str, Any]:
    """The operation with its path item's parameters too (OpenAPI: the operation's own win,
    by name and place)."""
    own = {(p["name"], p["in"]) for p in op.get("parameters", [])}
    shared = [p for p in item.get("parameters", []) if (p["name"], p["in"]) not in own]
    return {**op, "parameters": [*shared, *op.get("parameters", [])]}


def operations() -> Iterator[tuple[SpecName, str, str, dict[str, Any]]]:
    """(spec, METHOD, path, operation) for every operation of every spec."""
    for name in SPEC_NAMES:
        for path, item in spec(name)["paths"].items():
            for method in METHODS:
                if method in item:
                    yield name, method.upper(), path, _with_item_parameters(item, item[method])


def valid(schema: dict[str, Any], instance: Any) -> bool:
    return Draft202012Validator(schema).is_valid(instance)


# --- the walk -----------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class Mutation:
    """One constraint broken: ``where`` (body, query, path), the field's place, how."""

    where: str
    place: tuple[str | int, ...]
    kind: str
    value: Any

    @property
    def label(self) -> str:
        name = ".".join(map(str, self.place))
        return f"{name} {self.kind}" if self.where == "body" else \
            f"{self.where} {name} {self.kind}"


def _outside(schema: dict[str, Any], sample: Any) -> list[tuple[str, Any]]:
    """Values of the allowed values' type outside ``enum``/``const``: for text, the empty
    string (an ``x or default`` reading lets it through) and a near miss."""
    kind = "const" if "const" in schema else "enum"
    allowed = [schema["const"]] if "const" in schema else list(schema["enum"])
    probe = sample if sample is not None else allowed[0]
    if isinstance(probe, str):
        out = [("", f"{kind} ''"), (f"{allowed[0]}-gateprobe", kind)]
        return [(label, value) for value, label in out if value not in allowed]
    if isinstance(probe, int) and not isinstance(probe, bool):
        return [(kind, max(a for a in allowed if isinstance(a, int)) + 1)]
    return []  # booleans, numbers: no spec here enumerates them


def _scalar_constraints(schema: dict[str, Any], sample: Any, where: str,
                        place: tuple[str | int, ...]) -> Iterator[Mutation]:
    if "enum" in schema or "const" in schema:
        for label, value in _outside(schema, sample):
            yield Mutation(where, place, label, value)
    text = sample is None or isinstance(sample, str)
    if schema.get("minLength") and text:
        yield Mutation(where, place, "minLength", "x" * (schema["minLength"] - 1))
    if "maxLength" in schema and text:  # beyond the brief's three, as cheap to prove
        yield Mutation(where, place, "maxLength", "x" * (schema["maxLength"] + 1))
    number = sample is None or isinstance(sample, int | float) and not isinstance(sample, bool)
    if "minimum" in schema and number:
        yield Mutation(where, place, "minimum", schema["minimum"] - 1)
    if "maximum" in schema and number:
        yield Mutation(where, place, "maximum", schema["maximum"] + 1)


def constraints(schema: dict[str, Any], instance: Any, where: str,
                place: tuple[str | int, ...] = ()) -> Iterator[Mutation]:
    """Every required, enum/const, length and bound constraint that ``instance`` (valid
    against ``schema``) meets, each as the mutation that breaks it."""
    for member in schema.get("allOf", []):
        yield from constraints(member, instance, where, place)
    for key in ("oneOf", "anyOf"):
        for branch in schema.get(key, []):
            if valid(branch, instance):  # the branches the base takes (module docstring)
                yield from constraints(branch, instance, where, place)
    if isinstance(instance, dict):
        for name in schema.get("required", []):
            if not (where == "path"):  # no URL lacks its path segment
                yield Mutation(where, (*place, name), "required", DROP)
        for name, sub in schema.get("properties", {}).items():
            if name in instance:
                yield from constraints(sub, instance[name], where, (*place, name))
            else:  # an optional field the base leaves out: send it, wrong
                yield from _scalar_constraints(sub, None, where, (*place, name))
    if isinstance(instance, list) and instance and isinstance(schema.get("items"), dict):
        yield from constraints(schema["items"], instance[0], where, (*place, 0))
    if place and not isinstance(instance, dict | list):
        yield from _scalar_constraints(schema, instance, where, place)


def mutated(value: Any, place: tuple[str | int, ...], new: Any) -> Any:
    """A deep copy of ``value`` with ``place`` set to ``new`` (or removed, for DROP)."""
    if not place:
        return new
    head, rest = place[0], place[1:]
    if isinstance(value, list):
        out_list = list(value)
        out_list[int(head)] = mutated(value[int(head)], rest, new)
        return out_list
    out = dict(value)
    if not rest and new is DROP:
        out.pop(head, None)
    else:
        out[head] = mutated(value.get(head), rest, new)
    return out


# --- the base requests --------------------------------------------------------------------------

@dataclass(frozen=True)
class Base:
    """A valid request of one operation in one media type, the mutations' starting point.

    ``files`` are a multipart body's uploads (a real PNG or WAV: the reference decodes them);
    ``setup`` fills values from the running gateway (a path parameter or query parameter of
    that name, else a body field), before a mutation, so a mutation of such a value still
    wins. The values written here stand in for them when the base is validated."""

    spec: SpecName
    method: str
    path: str
    media: str = "none"
    body: dict[str, Any] | None = None
    query: dict[str, Any] = field(default_factory=dict)
    path_params: dict[str, str] = field(default_factory=dict)
    files: dict[str, tuple[str, bytes, str]] = field(default_factory=dict)
    key: str = VIP
    label: str = ""
    setup: Setup | None = None

    @property
    def name(self) -> str:
        return " ".join(p for p in (self.method, self.path, self.label and f"[{self.label}]") if p)


SAY = [{"role": "user", "content": "Say test"}]
MJ = "/api/v1/ai/draw/mj"
ADMIN_PATH = "/api/v1/user/admin"
PNG = ("in.png", tiny_png(), "image/png")
DATA_URI = "data:image/png;base64,iVBORw0KGgo="
IMAGE_NAME = "0123456789abcdef01234567-256x256.png"


@functools.cache
def _finished_task(base_url: str) -> tuple[int, str]:
    """A SUCCESS Midjourney task of the VIP key and one of its actions (tasks outlive the
    per-test reset, so one per gateway serves every action test)."""
    mj = {"model": "midjourney"}
    with httpx.Client(base_url=base_url, headers={"authorization": f"Bearer {VIP}"}) as c:
        task_id = c.post(f"{MJ}/imagine", json={**mj, "prompt": "a lighthouse"}).json()["data"]
        for _ in range(200):
            task = c.post(f"{MJ}/query", json={**mj, "taskId": task_id}).json()["data"]
            if task["status"] == "SUCCESS":
                return task_id, task["actions"][0]["customId"]
            time.sleep(0.02)
    raise AssertionError("the task never finished")


def _task_action(c: httpx.Client) -> dict[str, Any]:
    task_id, custom_id = _finished_task(str(c.base_url))
    return {"taskId": task_id, "customId": custom_id}


def _task(c: httpx.Client) -> dict[str, Any]:
    return {"taskId": _task_action(c)["taskId"]}


def _new_key(c: httpx.Client) -> dict[str, Any]:
    r = c.post(f"{ADMIN_PATH}/new-api-token", data={"expired_at": "2099-01-01T00:00:00Z",
                                                     "max_fee": "0"})
    assert r.status_code == 200, r.text
    return {"key": r.json()["data"]}


def _mj(path: str, body: dict[str, Any], setup: Setup | None = None,
        **kw: Any) -> list[Base]:
    """A Midjourney route takes JSON and forms alike: one base of each."""
    full = {"model": "midjourney", **body}
    return [Base("gateway", "POST", f"{MJ}/{path}", "json", full, setup=setup, **kw),
            Base("gateway", "POST", f"{MJ}/{path}", "form", full, setup=setup, label="form",
                 **kw)]


def _admin(path: str, body: dict[str, Any], setup: Setup | None = None) -> Base:
    return Base("management", "POST", f"{ADMIN_PATH}/{path}", "form", body, key=ADMIN,
                setup=setup)


RESPONSE = {"model": "gpt-4o-mini", "input": "Say test"}
ITEM = {"type": "message", "role": "user", "content": "Say test"}


def _created(c: httpx.Client, path: str, body: dict[str, Any]) -> dict[str, Any]:
    """The object a create route answers (a stateful base's resource, fresh per request:
    the per-test reset forgets it, and a DELETE base consumes it)."""
    r = c.post(path, json=body)
    assert r.status_code == 200, r.text
    created: dict[str, Any] = r.json()
    return created


def _response(c: httpx.Client) -> dict[str, Any]:
    return {"response_id": _created(c, "/v1/responses", RESPONSE)["id"]}


def _background_response(c: httpx.Client) -> dict[str, Any]:
    """A queued response (only a background one can be cancelled)."""
    return {"response_id": _created(c, "/v1/responses", {**RESPONSE, "background": True})["id"]}


def _conversation(c: httpx.Client) -> dict[str, Any]:
    return {"conversation_id": _created(c, "/v1/conversations", {"items": [ITEM]})["id"]}


def _conversation_item(c: httpx.Client) -> dict[str, Any]:
    cid = _conversation(c)["conversation_id"]
    listed = c.get(f"/v1/conversations/{cid}/items")
    assert listed.status_code == 200, listed.text
    return {"conversation_id": cid, "item_id": listed.json()["data"][0]["id"]}


def _stored_chat(c: httpx.Client) -> dict[str, Any]:
    body = {"model": "gpt-3.5-turbo", "messages": SAY, "store": True}
    return {"completion_id": _created(c, "/v1/chat/completions", body)["id"]}


def _chat_stored_first(c: httpx.Client) -> dict[str, Any]:
    """One stored chat completion for the list to show; no field of the request to fill."""
    _stored_chat(c)
    return {}


NEW_KEY = {"expired_at": "2099-01-01T00:00:00Z", "max_fee": "0"}

BASES: list[Base] = [
    # Extend this table when a spec gains an operation (or a media type of one): a valid,
    # accepted request; add a labelled second base where a oneOf branch needs its own.
    Base("openai", "POST", "/v1/chat/completions", "json",
         {"model": "gpt-3.5-turbo", "messages": SAY}),
    Base("openai", "POST", "/v1/chat/completions", "json",
         {"model": "gpt-3.5-turbo",
          "messages": [{"role": "user", "content": [{"type": "text", "text": "Say test"}]}],
          "tools": [{"type": "function", "function": {"name": "get_weather",
                                                      "parameters": {"type": "object"}}}]},
         label="parts"),
    # the Azure route, an alias family: chat's request, refused as chat refuses it
    Base("openai", "POST", "/azure/v1/chat/completions", "json",
         {"model": "gpt-3.5-turbo", "messages": SAY}),
    Base("openai", "GET", "/v1/chat/completions", query={"limit": 20, "order": "asc"},
         setup=_chat_stored_first),
    Base("openai", "GET", "/v1/chat/completions/{completion_id}",
         path_params={"completion_id": "chatcmpl-1"}, setup=_stored_chat),
    Base("openai", "POST", "/v1/chat/completions/{completion_id}", "json",
         {"metadata": {"topic": "test"}}, path_params={"completion_id": "chatcmpl-1"},
         setup=_stored_chat),
    Base("openai", "DELETE", "/v1/chat/completions/{completion_id}",
         path_params={"completion_id": "chatcmpl-1"}, setup=_stored_chat),
    Base("openai", "GET", "/v1/chat/completions/{completion_id}/messages",
         query={"limit": 20, "order": "asc"}, path_params={"completion_id": "chatcmpl-1"},
         setup=_stored_chat),
    Base("openai", "POST", "/v1/responses", "json", RESPONSE),
    Base("openai", "POST", "/v1/responses", "json",
         {"model": "gpt-4o-mini", "instructions": "Be brief",
          "input": [{"type": "message", "role": "user",
                     "content": [{"type": "input_text", "text": "Say test"}]}],
          "tools": [{"type": "function", "name": "get_weather",
                     "parameters": {"type": "object"}}],
          "tool_choice": {"type": "function", "name": "get_weather"},
          "text": {"format": {"type": "json_schema", "name": "answer",
                              "schema": {"type": "object"}}},
          "max_output_tokens": 64, "temperature": 1, "top_p": 1, "truncation": "auto"},
         label="items"),
    Base("openai", "POST", "/v1/responses", "json",
         {"model": "gpt-4o-mini", "conversation": {"id": "conv_1"},
          "input": [{"type": "function_call", "call_id": "call_1", "name": "get_weather",
                     "arguments": "{}"},
                    {"type": "function_call_output", "call_id": "call_1", "output": "sunny"}]},
         label="tool turn", setup=lambda c: {"conversation": {"id": _conversation(c)[
             "conversation_id"]}}),
    Base("openai", "POST", "/v1/responses", "json",  # the walk reads only input.0
         {"model": "gpt-4o-mini",
          "input": [{"type": "function_call_output", "call_id": "call_1", "output": "sunny"}]},
         label="tool output"),
    Base("openai", "GET", "/v1/responses/{response_id}", path_params={"response_id": "resp_1"},
         setup=_response),
    Base("openai", "DELETE", "/v1/responses/{response_id}",
         path_params={"response_id": "resp_1"}, setup=_response),
    Base("openai", "POST", "/v1/responses/{response_id}/cancel",
         path_params={"response_id": "resp_1"}, setup=_background_response),
    Base("openai", "GET", "/v1/responses/{response_id}/input_items",
         query={"limit": 20, "order": "asc"}, path_params={"response_id": "resp_1"},
         setup=_response),
    Base("openai", "POST", "/v1/conversations", "json",
         {"items": [ITEM], "metadata": {"topic": "test"}}),
    Base("openai", "GET", "/v1/conversations/{conversation_id}",
         path_params={"conversation_id": "conv_1"}, setup=_conversation),
    Base("openai", "POST", "/v1/conversations/{conversation_id}", "json",
         {"metadata": {"topic": "test"}}, path_params={"conversation_id": "conv_1"},
         setup=_conversation),
    Base("openai", "DELETE", "/v1/conversations/{conversation_id}",
         path_params={"conversation_id": "conv_1"}, setup=_conversation),
    Base("openai", "GET", "/v1/conversations/{conversation_id}/items",
         query={"limit": 20, "order": "asc"}, path_params={"conversation_id": "conv_1"},
         setup=_conversation),
    Base("openai", "POST", "/v1/conversations/{conversation_id}/items", "json",
         {"items": [ITEM]}, path_params={"conversation_id": "conv_1"}, setup=_conversation),
    Base("openai", "GET", "/v1/conversations/{conversation_id}/items/{item_id}",
         path_params={"conversation_id": "conv_1", "item_id": "msg_1"},
         setup=_conversation_item),
    Base("openai", "DELETE", "/v1/conversations/{conversation_id}/items/{item_id}",
         path_params={"conversation_id": "conv_1", "item_id": "msg_1"},
         setup=_conversation_item),
    Base("openai", "POST", "/v1/completions", "json",
         {"model": "gpt-3.5-turbo-instruct", "prompt": "Say test"}),
    Base("openai", "POST", "/v1/embeddings", "json",
         {"model": "text-embedding-3-small", "input": "Say test"}),
    Base("openai", "GET", "/v1/models/{model}", path_params={"model": "gpt-3.5-turbo"}),
    Base("openai", "POST", "/v1/images/generations", "json", {"prompt": "A lighthouse"}),
    Base("openai", "POST", "/v1/images/generations", "json",
         {"prompt": "A lighthouse", "model": "dall-e-3", "size": "1792x1024"},
         label="dall-e-3"),
    Base("openai", "POST", "/v1/images/generations", "form",
         {"prompt": "A lighthouse", "size": "256x256"}, label="form"),
    Base("openai", "POST", "/v1/images/edits", "multipart",
         {"prompt": "Add a frame", "size": "256x256"}, files={"image": PNG}),
    Base("openai", "GET", "/v1/images/generations/files/{name}",
         path_params={"name": IMAGE_NAME}),
    Base("openai", "POST", "/v1/audio/speech", "json",
         {"model": "tts-1", "input": "Say test", "voice": "alloy"}),
    Base("openai", "POST", "/v1/audio/transcriptions", "multipart",
         {"model": "whisper-1", "response_format": "verbose_json",
          "timestamp_granularities": ["word"]},
         files={"file": ("speech.wav", tiny_wav(0.5), "audio/wav")}),
    Base("openai", "POST", "/v1/moderations", "json", {"input": "Say test"}),
    Base("openai", "POST", "/v1/moderations", "json",
         {"input": [{"type": "text", "text": "Say test"}]}, label="parts"),
    Base("anthropic", "POST", "/v1/complete", "json",
         {"model": "claude-2", "prompt": "\n\nHuman: Say test\n\nAssistant:",
          "max_tokens_to_sample": 8}),
    Base("anthropic", "POST", "/v1/messages", "json",
         {"model": "claude-3-opus", "max_tokens": 8, "messages": SAY}),
    Base("anthropic", "POST", "/v1/messages", "json",
         {"model": "claude-3-opus", "max_tokens": 8, "system": [{"type": "text", "text": "Hi"}],
          "messages": [{"role": "user", "content": [{"type": "text", "text": "Say test"}]}],
          "tools": [{"name": "get_weather", "input_schema": {"type": "object"}}]},
         label="blocks"),
    Base("anthropic", "POST", "/v1/messages/count_tokens", "json",
         {"model": "claude-3-opus", "messages": SAY}),
    *_mj("imagine", {"prompt": "a lighthouse"}),
    *_mj("action", {"taskId": "1", "customId": "MJ::JOB::upsample::1::0"}, _task_action),
    *_mj("blend", {"base64Array": [DATA_URI, DATA_URI]}),
    *_mj("describe", {"base64": DATA_URI}),
    *_mj("query", {"taskId": "1"}, _task),
    *_mj("query-mj-tasks", {}, query={"page": 1}),
    Base("gateway", "POST", "/api/v1/openapi/search/serper/v1", "form", {"q": "gateprobe"}),
    Base("gateway", "POST", "/api/v1/openapi/search/serper/v1", "json", {"q": "gateprobe"},
         label="json"),
    Base("gateway", "GET", "/api/v1/openapi/search/google-search/v1", query={"q": "gateprobe"}),
    _admin("new-api-token", NEW_KEY),
    _admin("create-api-token", NEW_KEY),
    _admin("update-api-token", {"key": "sk-placeholder", "remark": "updated"}, _new_key),
    _admin("del-api-token", {"key": "sk-placeholder"}, _new_key),
    _admin("delete-api-token", {"key": "sk-placeholder"}, _new_key),
]


# --- from a base and the spec to requests -------------------------------------------------------

def _operation(base: Base) -> dict[str, Any]:
    item: dict[str, Any] = spec(base.spec)["paths"][base.path]
    return _with_item_parameters(item, item[base.method.lower()])


def _body_schema(base: Base) -> dict[str, Any] | None:
    content = _operation(base).get("requestBody", {}).get("content", {})
    schema = content.get(MEDIA.get(base.media, ""), {}).get("schema")
    return schema


def _parameters_schema(op: dict[str, Any], where: str) -> dict[str, Any]:
    params = [p for p in op.get("parameters", []) if p["in"] == where]
    return {"type": "object", "properties": {p["name"]: p["schema"] for p in params},
            "required": [p["name"] for p in params if p.get("required")]}


def _instance(base: Base) -> dict[str, Any]:
    """The body as its schema sees it: uploads stand as text (``contentMediaType``)."""
    return {**(base.body or {}), **{name: "(file)" for name in base.files}}


def mutations(base: Base) -> list[Mutation]:
    """Every constraint of the base's operation that the base meets, broken one at a time,
    keeping only the requests the spec itself refuses."""
    op, out, seen = _operation(base), [], set()
    parts: list[tuple[str, dict[str, Any] | None, dict[str, Any]]] = [
        ("body", _body_schema(base), _instance(base)),
        ("query", _parameters_schema(op, "query"), base.query),
        ("path", _parameters_schema(op, "path"), base.path_params)]
    for where, schema, instance in parts:
        if schema is None:
            continue
        for m in constraints(schema, instance, where):
            if m.label in seen or valid(schema, mutated(instance, m.place, m.value)):
                continue
            seen.add(m.label)
            out.append(m)
    return out


def send(c: httpx.Client, base: Base, mutation: Mutation | None = None) -> httpx.Response:
    """The base request (its setup fields filled in), with ``mutation`` applied."""
    body = dict(base.body or {})
    files, query, params = dict(base.files), dict(base.query), dict(base.path_params)
    for name, value in (base.setup(c) if base.setup is not None else {}).items():
        (params if name in params else query if name in query else body)[name] = value
    if mutation is not None:
        if mutation.where == "body" and mutation.place[0] in files:
            files.pop(str(mutation.place[0]))  # an upload is only ever dropped here
        elif mutation.where == "body":
            body = mutated(body, mutation.place, mutation.value)
        elif mutation.where == "query":
            query = mutated(query, mutation.place, mutation.value)
        else:
            params = mutated(params, mutation.place, mutation.value)
    url = base.path.format(**params)
    if base.media == "json":
        return c.request(base.method, url, params=query, json=body)
    if base.media in ("form", "multipart"):
        return c.request(base.method, url, params=query, data=body, files=files or None)
    return c.request(base.method, url, params=query)


def _declared(op: dict[str, Any], status: int) -> dict[str, Any] | None:
    """The JSON schema the operation declares for ``status``, or None if it declares none."""
    answer = op.get("responses", {}).get(str(status))
    if answer is None:
        return None
    schema: dict[str, Any] = answer.get("content", {}).get("application/json", {}).get(
        "schema", {})
    return schema


CASES = [(base, m) for base in BASES for m in mutations(base)]


# --- the tests ------------------------------------------------------------------------------

def missing_bases() -> list[str]:
    """The operations (per media type) with a constraint to walk and no base in BASES."""
    have = {(b.spec, b.method, b.path, b.media) for b in BASES}
    missing = []
    for name, method, path, op in operations():
        content = op.get("requestBody", {}).get("content", {})
        media = [m for m, mime in MEDIA.items() if mime in content] or ["none"]
        path_params = {**_parameters_schema(op, "path"), "required": []}  # see constraints()
        params = _has_constraints(_parameters_schema(op, "query")) or \
            _has_constraints(path_params)
        for medium in media:
            schema = _body_schema(Base(name, method, path, medium))
            walkable = params or (schema is not None and _has_constraints(schema))
            if walkable and (name, method, path, medium) not in have:
                missing.append(f"{method} {path} ({medium})")
    return missing


def test_every_constrained_operation_has_a_base() -> None:
    """A spec operation (per media type) with a constraint to walk and no base fails here:
    add one to BASES."""
    assert missing_bases() == []
    assert len({b.name for b in BASES}) == len(BASES), "two bases share a name: label one"


def _has_constraints(schema: Any) -> bool:
    if isinstance(schema, list):
        return any(_has_constraints(s) for s in schema)
    if not isinstance(schema, dict):
        return False
    walked = {"enum", "const", "maxLength", "minimum", "maximum"} & schema.keys()
    return bool(walked or schema.get("minLength") or schema.get("required")) or any(
        _has_constraints(v) for v in schema.values())


def test_the_walk_finds_the_constraints_it_was_written_for() -> None:
    """The walker itself: the gap that started this test, a oneOf branch's enum, allOf
    members, items, query parameters and uploads are all walked."""
    labels = {f"{b.name} {m.label}" for b, m in CASES}
    for expected in ("POST /v1/images/generations model enum ''",
                     "POST /v1/images/generations [dall-e-3] n enum",
                     "POST /v1/images/generations [form] model enum ''",
                     "POST /api/v1/ai/draw/mj/imagine model const",
                     "POST /api/v1/ai/draw/mj/imagine prompt minLength",
                     "POST /v1/chat/completions messages.0.role enum",
                     "POST /v1/messages [blocks] messages.0.content.0.type const",
                     "POST /v1/chat/completions [parts] messages.0.content.0.type required",
                     "POST /v1/moderations [parts] input.0.text required",
                     "POST /api/v1/ai/draw/mj/query-mj-tasks query page required",
                     "GET /v1/models/{model} path model minLength",
                     "POST /v1/images/edits image required",
                     "POST /v1/audio/transcriptions timestamp_granularities.0 enum",
                     "POST /v1/responses [items] text.format.name required",
                     "POST /v1/responses [items] input.0.content.0.type enum",
                     "POST /v1/responses [tool turn] conversation.id required",
                     "POST /v1/responses [tool output] input.0.output required",
                     "POST /v1/conversations/{conversation_id}/items items.0.role enum",
                     "GET /v1/conversations/{conversation_id}/items query limit maximum",
                     "GET /v1/chat/completions/{completion_id}/messages query order enum",
                     "DELETE /v1/responses/{response_id} path response_id minLength"):
        assert expected in labels
    assert "POST /v1/chat/completions temperature maximum" in labels
    assert "POST /v1/images/generations [dall-e-3] prompt maxLength" in labels
    assert len(CASES) < 500  # a few hundred requests at most


@pytest.fixture(scope="module")
def clients(_session_gateway: RunningGateway) -> Iterator[dict[str, httpx.Client]]:
    """One client per key for the whole module (a client's TLS context costs more to build
    than most of these requests take)."""
    made = {key: client_for(_session_gateway, key=key) for key in (VIP, ADMIN)}
    yield made
    for c in made.values():
        c.close()


@pytest.mark.parametrize("base", BASES, ids=[b.name for b in BASES])
def test_base_is_valid_and_accepted(gateway: RunningGateway, clients: dict[str, httpx.Client],
                                    base: Base) -> None:
    schema = _body_schema(base)
    if schema is not None:
        assert Draft202012Validator(schema).is_valid(_instance(base))
    for where, values in (("query", base.query), ("path", base.path_params)):
        assert valid(_parameters_schema(_operation(base), where), values)
    r = send(clients[base.key], base)
    assert 200 <= r.status_code < 300, r.text[:300]


@pytest.mark.parametrize(("base", "mutation"), CASES,
                         ids=[f"{b.name} {m.label}" for b, m in CASES])
def test_reference_refuses_what_the_spec_refuses(gateway: RunningGateway,
                                                 clients: dict[str, httpx.Client], base: Base,
                                                 mutation: Mutation) -> None:
    r = send(clients[base.key], base, mutation)
    assert 400 <= r.status_code < 500 and r.status_code not in (401, 403, 429), \
        f"{r.status_code} {r.text[:300]}"
    schema = _declared(_operation(base), r.status_code)
    assert schema is not None, f"{r.status_code} is not declared for this operation"
    assert valid(schema, r.json()), r.text[:300]
