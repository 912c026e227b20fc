"""Errors in the right family envelope, and each profile's auth conventions."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from gateprobe.reference.server import RunningGateway
from gateway_fixtures import MakeGateway, client_for

CHAT = {"model": "gpt-3.5-turbo", "messages": [{"role": "user", "content": "hi"}]}
LEGACY = {"model": "claude-2", "prompt": "\n\nHuman: hi\n\nAssistant:", "max_tokens_to_sample": 5}
MSG = {"model": "claude-2", "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}]}

ROUTES = [("/v1/chat/completions", CHAT, "openai"), ("/v1/completions",
          {"model": "gpt-3.5-turbo-instruct", "prompt": "hi"}, "openai"),
          ("/v1/embeddings", {"model": "text-embedding-3-small", "input": "hi"}, "openai"),
          ("/v1/complete", LEGACY, "anthropic"), ("/v1/messages", MSG, "anthropic")]
ROUTE_IDS = [r[0] for r in ROUTES]


def assert_envelope(r: httpx.Response, family: str, status: int, etype: str) -> dict[str, Any]:
    assert r.status_code == status, r.text
    assert r.headers["content-type"] == "application/json"
    body = r.json()
    if family == "anthropic":
        assert body["type"] == "error"
        assert set(body["error"]) == {"type", "message"}
        assert body["error"]["type"] == etype
        assert body["request_id"] == r.headers["request-id"]
        return dict(body["error"])
    assert set(body) == {"error"}
    assert set(body["error"]) == {"message", "type", "param", "code"}
    assert body["error"]["type"] == etype
    return dict(body["error"])


@pytest.mark.parametrize(("path", "body", "family"), ROUTES, ids=ROUTE_IDS)
def test_malformed_json_is_400(gateway: RunningGateway, path: str, body: Any,
                               family: str) -> None:
    with client_for(gateway) as c:
        r = c.post(path, content=b'{"model": ', headers={"content-type": "application/json"})
    assert_envelope(r, family, 400, "invalid_request_error")


@pytest.mark.parametrize(("path", "body", "family"), ROUTES, ids=ROUTE_IDS)
def test_non_object_json_and_wrong_types_are_400(gateway: RunningGateway, path: str, body: Any,
                                                 family: str) -> None:
    with client_for(gateway) as c:
        assert_envelope(c.post(path, json=[body]), family, 400, "invalid_request_error")
        error = assert_envelope(c.post(path, json={**body, "model": 42}), family, 400,
                                "invalid_request_error")
    if family == "openai":
        assert error["param"] == "model"
    else:
        assert error["message"].startswith("model:")


@pytest.mark.parametrize(("path", "body", "family"), ROUTES, ids=ROUTE_IDS)
def test_unknown_model_is_404(gateway: RunningGateway, path: str, body: Any,
                              family: str) -> None:
    with client_for(gateway) as c:
        r = c.post(path, json={**body, "model": "no-such-model"})
    error = assert_envelope(r, family, 404,
                            "not_found_error" if family == "anthropic" else
                            "invalid_request_error")
    if family == "openai":
        assert error["code"] == "model_not_found"


@pytest.mark.parametrize(("path", "body", "family"), ROUTES, ids=ROUTE_IDS)
def test_bad_and_missing_key_are_401_and_never_echo_the_key(
    gateway: RunningGateway, path: str, body: Any, family: str
) -> None:
    key = "gp-wrong-key-123456"
    with client_for(gateway, key=key) as c:
        r = c.post(path, json=body)
    etype = "authentication_error" if family == "anthropic" else "invalid_request_error"
    error = assert_envelope(r, family, 401, etype)
    assert key not in r.text and key not in str(r.headers)
    if family == "openai":
        assert error["code"] == "invalid_api_key"
    with client_for(gateway, key=None) as c:
        assert_envelope(c.post(path, json=body), family, 401, etype)


def test_ohmygpt_profile_refuses_x_api_key_on_anthropic_routes(gateway: RunningGateway) -> None:
    with client_for(gateway, key=None, **{"x-api-key": "gp-vip-0001"}) as c:
        r = c.post("/v1/messages", json=MSG)
    error = assert_envelope(r, "anthropic", 401, "authentication_error")
    assert "Bearer" in error["message"]


def test_ohmygpt_profile_anthropic_version_is_optional_but_checked(
    gateway: RunningGateway,
) -> None:
    with client_for(gateway) as c:
        assert c.post("/v1/complete", json=LEGACY).status_code == 200
        for ok in ("2023-01-01", "2023-06-01", "2026-10-21"):
            assert c.post("/v1/complete", json=LEGACY,
                          headers={"anthropic-version": ok}).status_code == 200, ok
        for bad in ("latest", "2022-12-31", "2023-02-30", "2023-6-1"):
            r = c.post("/v1/complete", json=LEGACY, headers={"anthropic-version": bad})
            assert_envelope(r, "anthropic", 400, "invalid_request_error")


def test_key_without_model_permission_is_401_on_the_gateway(gateway: RunningGateway) -> None:
    with client_for(gateway, key="gp-nomodel-0001") as c:
        r = c.post("/v1/chat/completions", json={**CHAT, "model": "claude-2-web"})
        assert c.post("/v1/chat/completions", json=CHAT).status_code == 200
    error = assert_envelope(r, "openai", 401, "invalid_request_error")
    assert error["code"] == "model_not_permitted"
    assert "claude-2-web" in error["message"]


def test_anthropic_profile_conventions(make_gateway: MakeGateway) -> None:
    gw = make_gateway(profile="anthropic")
    v = {"anthropic-version": "2023-06-01"}
    with client_for(gw, key=None) as c:
        ok = c.post("/v1/messages", json=MSG, headers={"x-api-key": "gp-vip-0001", **v})
        assert ok.status_code == 200
        # Bearer too: the anthropic SDK 2.x sends its api_key that way.
        bearer = c.post("/v1/messages", json=MSG,
                        headers={"authorization": "Bearer gp-vip-0001", **v})
        assert bearer.status_code == 200
        none = c.post("/v1/messages", json=MSG, headers=v)
        assert_envelope(none, "anthropic", 401, "authentication_error")
        no_version = c.post("/v1/messages", json=MSG, headers={"x-api-key": "gp-vip-0001"})
        error = assert_envelope(no_version, "anthropic", 400, "invalid_request_error")
        assert "anthropic-version" in error["message"]
        denied = c.post("/v1/messages", json=MSG,
                        headers={"x-api-key": "gp-nomodel-0001", **v})
        assert denied.status_code == 200  # claude-2 is allowed
        models = c.get("/v1/models", headers={"x-api-key": "gp-vip-0001", **v}).json()
        assert models["has_more"] is False and models["data"][0]["type"] == "model"
        # OpenAI routes keep Bearer auth.
        chat = c.post("/v1/chat/completions", json=CHAT,
                      headers={"authorization": "Bearer gp-vip-0001"})
        assert chat.status_code == 200


def test_anthropic_profile_missing_permission_is_403(make_gateway: MakeGateway) -> None:
    gw = make_gateway(profile="anthropic",
                      models={m: gwm for m, gwm in _models_with_web_on_messages().items()})
    with client_for(gw, key=None) as c:
        r = c.post("/v1/messages", json={**MSG, "model": "claude-2-web"},
                   headers={"x-api-key": "gp-nomodel-0001", "anthropic-version": "2023-06-01"})
    assert_envelope(r, "anthropic", 403, "permission_error")


def _models_with_web_on_messages() -> dict[str, Any]:
    import dataclasses

    from gateprobe.reference.config import DEFAULT_MODELS

    return {m.id: dataclasses.replace(m, apis=m.apis | {"messages"}) for m in DEFAULT_MODELS}


def test_openai_profile_has_no_anthropic_routes_and_hides_denied_models(
    make_gateway: MakeGateway,
) -> None:
    gw = make_gateway(profile="openai")
    with client_for(gw) as c:
        assert_envelope(c.post("/v1/messages", json=MSG), "openai", 404,
                        "invalid_request_error")
    with client_for(gw, key="gp-nomodel-0001") as c:
        r = c.post("/v1/chat/completions", json={**CHAT, "model": "claude-2-web"})
    assert assert_envelope(r, "openai", 404, "invalid_request_error")["code"] == \
        "model_not_found"


def test_unknown_route_and_wrong_method_use_the_envelope(client: httpx.Client) -> None:
    assert_envelope(client.get("/v1/nothing"), "openai", 404, "invalid_request_error")
    r = client.put("/v1/chat/completions")  # GET lists the stored completions
    assert_envelope(r, "openai", 405, "invalid_request_error")
    assert r.headers["allow"] == "POST, GET"
    r = client.get("/v1/completions")
    assert_envelope(r, "openai", 405, "invalid_request_error")
    assert r.headers["allow"] == "POST"
    assert_envelope(client.get("/v1/messages"), "anthropic", 405, "invalid_request_error")


def test_oversize_body_is_413(make_gateway: MakeGateway) -> None:
    gw = make_gateway(max_body_bytes=1000)
    big = {**MSG, "messages": [{"role": "user", "content": "x" * 2000}]}
    with client_for(gw) as c:
        assert_envelope(c.post("/v1/messages", json=big), "anthropic", 413, "request_too_large")
        assert_envelope(c.post("/v1/chat/completions", json={**CHAT, **big, "model": CHAT[
            "model"]}), "openai", 413, "invalid_request_error")

        def chunked() -> Any:  # no content-length: the cap holds while reading
            yield b'{"model": "claude-2", "pad": "'
            yield b"x" * 2000
            yield b'"}'

        r = c.post("/v1/messages", content=chunked())
        assert_envelope(r, "anthropic", 413, "request_too_large")


def test_overload_is_529_on_anthropic_routes_and_503_on_openai(
    make_gateway: MakeGateway,
) -> None:
    from gateprobe.reference import Timing

    gw = make_gateway(max_inflight=1, timing=Timing(ttft_ms=10_000, itl_ms=1))
    with client_for(gw) as c, c.stream("POST", "/v1/messages",
                                       json={**MSG, "stream": True}) as held:
        assert held.status_code == 200
        assert_envelope(c.post("/v1/messages", json=MSG), "anthropic", 529, "overloaded_error")
        assert_envelope(c.post("/v1/chat/completions", json=CHAT), "openai", 503,
                        "server_error")


def test_unexpected_exception_is_a_500_envelope_not_a_traceback(
    client: httpx.Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    def boom(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("secret internals")

    monkeypatch.setattr("gateprobe.reference.openai_api.generate", boom)
    monkeypatch.setattr("gateprobe.reference.anthropic_api.generate", boom)
    r = client.post("/v1/chat/completions", json=CHAT)
    error = assert_envelope(r, "openai", 500, "server_error")
    assert "secret internals" not in r.text and "Traceback" not in r.text
    assert error["message"] == "Internal server error"
    assert_envelope(client.post("/v1/messages", json=MSG), "anthropic", 500, "api_error")
    assert client.get("/_gateprobe/health").json()["inflight"] == 0


@pytest.mark.parametrize("store", [True, False])
def test_chat_metadata_is_16_string_values_stored_or_not(client: httpx.Client,
                                                         store: bool) -> None:
    """As specs/openai.yaml says (OpenAI's Metadata): a fuzzed request with a number in its
    metadata was refused only when stored, so the spec's looser schema made a refusal of a
    'valid' request (ST202 on /azure/v1/chat/completions, fuzz seed 2322204905)."""
    error = assert_envelope(client.post("/v1/chat/completions", json={
        **CHAT, "store": store, "metadata": {"n": 1}}), "openai", 400, "invalid_request_error")
    assert error["param"] == "metadata"
    too_many = {f"k{i}": "v" for i in range(17)}
    assert client.post("/v1/chat/completions", json={**CHAT, "metadata": too_many}
                       ).status_code == 400
    assert client.post("/v1/chat/completions", json={**CHAT, "metadata": {"team": "a"}}
                       ).status_code == 200
