"""The hand-written specs: valid OpenAPI 3.1, covering exactly what the reference gateway
serves, and describing its real answers (success, every error, every stream event)."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
from openapi_spec_validator import validate
from starlette.routing import WebSocketRoute

from gateprobe.core.specs import (
    SPEC_NAMES,
    SpecName,
    event_payload_schemas,
    load_spec,
    schema_errors,
)
from gateprobe.core.sse import parse_all
from gateprobe.reference.server import RunningGateway
from gateway_fixtures import MakeGateway, client_for

SAY = [{"role": "user", "content": "Say test"}]
LEGACY = "\n\nHuman: Say test\n\nAssistant:"

# (spec, path, request schema, response schema, stream event schema, body)
OPERATIONS: list[tuple[SpecName, str, str, str, str | None, dict[str, Any]]] = [
    ("openai", "/v1/chat/completions", "CreateChatCompletionRequest", "ChatCompletion",
     "ChatCompletionStreamEvent", {"model": "gpt-3.5-turbo", "messages": SAY,
                                   "stream_options": {"include_usage": True}}),
    ("openai", "/v1/completions", "CreateCompletionRequest", "Completion",
     "CompletionStreamEvent", {"model": "gpt-3.5-turbo-instruct", "prompt": "Say test",
                               "n": 2, "stream_options": {"include_usage": True}}),
    ("openai", "/v1/embeddings", "CreateEmbeddingRequest", "EmbeddingList", None,
     {"model": "text-embedding-3-small", "input": ["a", "b"], "dimensions": 4}),
    ("anthropic", "/v1/complete", "CompleteRequest", "Completion", "CompletionStreamEvent",
     {"model": "claude-2", "prompt": LEGACY, "max_tokens_to_sample": 20}),
    ("anthropic", "/v1/messages", "MessagesRequest", "Message", "MessageStreamEvent",
     {"model": "claude-3-opus", "max_tokens": 20, "messages": SAY, "system": "Be brief."}),
    ("openai", "/v1/responses", "CreateResponseRequest", "Response", "ResponseStreamEvent",
     {"model": "gpt-4o-mini", "input": "Say test", "instructions": "Be brief.",
      "max_output_tokens": 64}),
]
IDS = [op[1] for op in OPERATIONS]


@pytest.mark.slow
@pytest.mark.parametrize("name", SPEC_NAMES)
def test_spec_is_valid_openapi_3_1(name: SpecName) -> None:
    spec = load_spec(name)
    assert spec["openapi"].startswith("3.1")
    validate(spec)


def test_specs_cover_exactly_the_reference_routes(gateway: RunningGateway) -> None:
    import gateprobe.reference.app as app_module

    app = app_module.build_app(gateway.config)
    # A WebSocket route (/v1/realtime) is no OpenAPI operation: tests/test_realtime.py has it.
    served = {r.path for r in app.router.routes if not r.path.startswith("/_gateprobe")
              and not isinstance(r, WebSocketRoute)}
    specified = {p.replace("{model}", "{model:path}") for name in SPEC_NAMES
                 for p in load_spec(name)["paths"]}
    assert specified == served


@pytest.mark.slow
@pytest.mark.parametrize(("spec", "path", "request_schema", "response_schema", "event_schema",
                          "body"), OPERATIONS, ids=IDS)
def test_reference_answers_match_the_spec(client: httpx.Client, spec: SpecName, path: str,
                                          request_schema: str, response_schema: str,
                                          event_schema: str | None,
                                          body: dict[str, Any]) -> None:
    plain = {k: v for k, v in body.items() if k != "stream_options"}
    assert schema_errors(spec, request_schema, plain) == []
    r = client.post(path, json=plain)
    assert r.status_code == 200
    assert schema_errors(spec, response_schema, r.json()) == []
    if event_schema is None:
        return
    streamed = client.post(path, json={**body, "stream": True})
    events, _ = parse_all(streamed.content)
    event_props = load_spec(spec)["components"]["schemas"][event_schema]["properties"]
    refs = event_payload_schemas(spec, event_schema)
    assert refs
    names = event_props.get("event", {}).get("enum")
    for event in events:
        if names is not None:
            assert event.type in names
        if event.data == "[DONE]":
            continue
        data = json.loads(event.data)
        assert [r for r in refs if not schema_errors(spec, r, data)], event.data[:120]


ERRORS: list[tuple[SpecName, str, dict[str, Any], dict[str, str], int]] = [
    ("openai", "/v1/chat/completions", {"model": "gpt-3.5-turbo"}, {}, 400),
    ("openai", "/v1/chat/completions", {"model": "nope", "messages": SAY}, {}, 404),
    ("openai", "/v1/chat/completions", {"model": "gpt-3.5-turbo", "messages": SAY},
     {"authorization": "Bearer wrong-key-1234"}, 401),
    ("openai", "/v1/embeddings", {"model": "text-embedding-3-small", "input": ""}, {}, 400),
    ("anthropic", "/v1/complete", {"model": "claude-2", "prompt": "hi",
                                   "max_tokens_to_sample": 5}, {}, 400),
    ("anthropic", "/v1/messages", {"model": "nope", "max_tokens": 5, "messages": SAY}, {}, 404),
    ("anthropic", "/v1/messages/count_tokens", {"model": "claude-2", "messages": SAY},
     {"authorization": "Bearer wrong-key-1234"}, 401),
]


@pytest.mark.parametrize(("spec", "path", "body", "headers", "status"), ERRORS,
                         ids=[f"{e[1]} {e[4]}" for e in ERRORS])
def test_reference_errors_match_the_spec(client: httpx.Client, spec: SpecName, path: str,
                                         body: dict[str, Any], headers: dict[str, str],
                                         status: int) -> None:
    r = client.post(path, json=body, headers=headers)
    assert r.status_code == status
    declared = load_spec(spec)["paths"][path]["post"]["responses"]
    assert str(status) in declared
    assert schema_errors(spec, "ErrorResponse", r.json()) == []


def test_rate_limited_answer_matches_the_spec(make_gateway: MakeGateway) -> None:
    from gateprobe.reference import Timing
    from gateway_fixtures import FakeClock

    gw = make_gateway(clock=FakeClock(), timing=Timing(0, 0))
    with client_for(gw, key="gp-free-0001") as c:
        for _ in range(13):
            r = c.post("/v1/chat/completions", json={"model": "claude-2-web", "messages": SAY})
    assert r.status_code == 429
    declared = load_spec("openai")["components"]["responses"]["RateLimited"]["headers"]
    for header in declared:
        assert header in r.headers, header


def test_models_match_the_spec(client: httpx.Client) -> None:
    assert schema_errors("openai", "ModelList", client.get("/v1/models").json()) == []
    assert schema_errors("openai", "Model", client.get("/v1/models/claude-2").json()) == []


def test_schema_errors_reports_paths() -> None:
    errors = schema_errors("anthropic", "CompleteRequest", {"model": 1, "prompt": ""})
    assert any(e.startswith("model:") for e in errors)
    assert any(e.startswith("prompt:") for e in errors)
    assert any("max_tokens_to_sample" in e for e in errors)
    with pytest.raises(KeyError, match="no schema"):
        schema_errors("openai", "Nope", {})
