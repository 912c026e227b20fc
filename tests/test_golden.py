"""Tests of golden normalization, comparison and files."""

from __future__ import annotations

import copy
import json
import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml

from gateprobe.core.checks import Context
from gateprobe.core.errors import ConfigError
from gateprobe.core.golden import (
    diff,
    fill_models,
    golden_dir,
    load_dir,
    normalize,
    normalize_events,
    rewrite,
    stream_mismatch,
)
from gateprobe.core.sse import Event
from gateprobe.core.targets import Target
from gateprobe.engine.cases import Case, golden_cases
from gateprobe.engine.probe import send
from gateprobe.engine.runstate import RunState
from gateprobe.protocols.conformance import checks_for
from gateprobe.reference import Timing
from gateway_fixtures import MakeGateway


def test_rules_replace_volatile_values_with_typed_placeholders() -> None:
    answer = {"id": "chatcmpl-abc", "created": 1700000000, "model": "gpt-x-0125",
              "system_fingerprint": "fp_1", "service_tier": "default",
              "choices": [{"message": {"role": "assistant", "content": "Hi", "refusal": None},
                           "logprobs": None, "finish_reason": "stop"}],
              "usage": {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5}}
    assert normalize(answer) == {
        "id": "<id:chatcmpl->", "created": "<timestamp>", "model": "<model>",
        "choices": [{"message": {"role": "assistant", "content": "<text>"},
                     "finish_reason": "stop"}],
        "usage": {"prompt_tokens": "<int>", "completion_tokens": "<int>",
                  "total_tokens": "<int>"}}


def test_values_of_the_wrong_type_are_kept_so_the_difference_shows() -> None:
    assert normalize({"created": "yesterday", "model": 7}) == {"created": "yesterday",
                                                                "model": 7}
    assert normalize({"content": ""}) == {"content": ""}  # empty text is meaningful
    assert normalize({"embedding": [0.1, 0.2]}) == {"embedding": "<vector[2]>"}
    assert normalize({"embedding": "AAAA"}) == {"embedding": "<base64>"}


def test_rules_can_be_switched_off() -> None:
    assert normalize({"id": "msg_1", "text": "x"}, rules=["text"]) == {"id": "msg_1",
                                                                      "text": "<text>"}


def test_stream_runs_collapse() -> None:
    events = [Event("content_block_delta", f'{{"type": "x", "text": "{t}"}}', "", 0)
              for t in ("a", "b", "c")] + [Event("message", "[DONE]", "", 0)]
    assert normalize_events(events) == [
        {"event": "content_block_delta", "data": {"type": "x", "text": "<text>"},
         "repeated": True},
        {"event": "message", "data": "[DONE]"}]


def test_golden_is_a_pattern_extra_keys_allowed_missing_ones_not() -> None:
    golden = {"object": "list", "data": [{"index": 0}]}
    assert diff(golden, {"object": "list", "data": [{"index": 0, "extra": 1}], "more": 2}) == ""
    assert diff(golden, {"data": [{"index": 0}]}).startswith("at /object: expected a required")
    assert diff(golden, {"object": "list", "data": [{"index": 1}]}).startswith(
        "at /data/0/index: expected 0, got 1")
    assert diff([1, 2], [1]) != ""


def test_fill_models() -> None:
    assert fill_models({"model": "$chat", "x": 1}, {"chat": "m1"}) == {"model": "m1", "x": 1}
    assert fill_models({"model": "literal"}, {}) == {"model": "literal"}


@pytest.mark.slow
def test_shipped_goldens_cover_every_endpoint_at_least_three_times() -> None:
    goldens = load_dir(golden_dir())
    per_endpoint: dict[str, int] = {}
    for g in goldens:
        per_endpoint[g.endpoint] = per_endpoint.get(g.endpoint, 0) + 1
        assert g.response is not None, f"{g.file.name}: {g.name} was never recorded"
    assert set(per_endpoint) == {"/v1/chat/completions", "/v1/completions", "/v1/embeddings",
                                 "/v1/complete", "/v1/messages", "/v1/messages/count_tokens",
                                 "/v1/images/generations", "/v1/moderations",
                                 "/v1/audio/transcriptions", "/v1/responses",
                                 "/v1/conversations"}
    assert min(per_endpoint.values()) >= 3
    assert sum(g.stream for g in goldens) >= 6


def test_bad_golden_files_are_one_line_config_errors(tmp_path: Path) -> None:
    (tmp_path / "x.yaml").write_text("cases: [")
    with pytest.raises(ConfigError, match=r"x.yaml: line \d+ not valid YAML"):
        load_dir(tmp_path)
    (tmp_path / "x.yaml").write_text("endpoint: /v1/x\ncases: [{name: a}]\n")
    with pytest.raises(ConfigError, match="lacks"):
        load_dir(tmp_path)


def test_rewrite_keeps_requests_and_order(tmp_path: Path) -> None:
    path = tmp_path / "g.yaml"
    shutil.copy(golden_dir() / "embeddings.yaml", path)
    before = yaml.safe_load(path.read_text())
    assert rewrite(path, {before["cases"][1]["name"]: (200, {"new": True})}) == 1
    after = yaml.safe_load(path.read_text())
    assert [c["request"] for c in after["cases"]] == [c["request"] for c in before["cases"]]
    assert after["cases"][1]["response"] == {"new": True}
    assert after["cases"][0]["response"] == before["cases"][0]["response"]
    text = path.read_text()
    assert "profiles: [" in text  # the header stays as written


def test_rewrite_writes_a_shared_request_twice_not_as_an_alias(tmp_path: Path) -> None:
    path = tmp_path / "g.yaml"
    request = {"model": "$chat", "messages": [{"role": "user", "content": "x"}]}
    path.write_text(yaml.safe_dump({"endpoint": "/v1/x", "family": "openai", "cases": [
        {"name": "a", "request": request, "status": 200, "response": None},
        {"name": "b", "request": {**request, "stream": True}, "status": 200,
         "response": None}]}))
    rewrite(path, {"a": (200, {}), "b": (200, [])})
    assert "&id" not in path.read_text() and "*id" not in path.read_text()
    assert yaml.safe_load(path.read_text())["cases"][1]["request"]["stream"] is True


def test_optional_events_match_wherever_they_occur() -> None:
    from gateprobe.core.golden import diff

    golden = [{"event": "message_start", "data": {}}, {"event": "ping", "data": {}},
              {"event": "message_stop", "data": {}}]
    moved = [{"event": "message_start", "data": {}}, {"event": "message_stop", "data": {}},
             {"event": "ping", "data": {}}]
    assert diff(golden, moved) == ""
    assert diff(golden, [{"event": "message_start", "data": {}}]) != ""


def test_tool_calls_normalize_ids_and_arguments() -> None:
    call = {"id": "call_abc", "type": "function",
            "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'}}
    assert normalize(call) == {"id": "<id:call_>", "type": "function", "function": {
        "name": "get_weather", "arguments": "<json:object>"}}
    # a stream's fragment is text; an empty first fragment stays; non-JSON text shows as text
    assert normalize({"arguments": '{"ci'})["arguments"] == "<text>"
    assert normalize({"arguments": ""})["arguments"] == ""
    assert normalize({"arguments": '"Paris"'})["arguments"] == "<text>"
    block = {"type": "tool_use", "id": "toolu_01", "name": "get_time", "input": {"zone": "x"}}
    assert normalize(block) == {"type": "tool_use", "id": "<id:toolu_>", "name": "get_time",
                                "input": "<json:object>"}
    assert normalize({"input": {}}) == {"input": {}}  # content_block_start's empty input


def test_media_and_moderation_rules() -> None:
    assert normalize({"data": [{"b64_json": "iVBOR", "revised_prompt": "a red square"},
                               {"url": "https://cdn.example/x.png"}, {"url": "/x.png"}]}) == {
        "data": [{"b64_json": "<base64>", "revised_prompt": "<text>"}, {"url": "<url>"},
                 {"url": "/x.png"}]}  # a relative URL is kept: the difference shows
    result = {"flagged": True, "categories": {"violence": True, "hate": "no"},
              "category_scores": {"violence": 0.9, "hate": 1, "sexual": "low"}}
    assert normalize(result) == {
        "flagged": True, "categories": {"violence": "<bool>", "hate": "no"},
        "category_scores": {"violence": "<number>", "hate": "<number>", "sexual": "low"}}
    segment = {"id": 0, "start": 0.0, "end": 0.5, "tokens": [50364, 2], "avg_logprob": -0.2,
               "text": " hi"}
    assert normalize({"duration": 1.0, "segments": [segment]}) == {
        "duration": "<number>", "segments": [{"id": 0, "start": "<number>", "end": "<number>",
                                              "tokens": "<tokens>",
                                              "avg_logprob": "<number>", "text": "<text>"}]}
    assert normalize({"duration": "1s"}) == {"duration": "1s"}


GOOD_ANSWERS: dict[str, Any] = {
    "images_generations.yaml": {"created": 1, "data": [{"url": "http://h/x.png"}]},
    "moderations.yaml": {"id": "modr-1", "model": "omni-moderation-latest", "results": [
        {"flagged": False, "categories": {}, "category_scores": {},
         "category_applied_input_types": {}}]},
    "transcriptions.yaml": {"text": "hello"},
}
"""A good answer to the first case of each new file, before normalization (only the keys
its golden names are compared; the moderation categories are filled from the golden)."""


def _changed(name: str, answer: Any) -> Any:
    """The same answer changed as a faulty gateway would change it."""
    changed = copy.deepcopy(answer)
    if name == "images_generations.yaml":
        changed["data"][0]["url"] = "/files/x.png"  # not absolute
    elif name == "moderations.yaml":
        changed["results"][0]["flagged"] = True
    else:
        changed["text"] = 7
    return changed


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(GOOD_ANSWERS))
def test_each_new_golden_file_matches_a_good_answer_and_fails_a_changed_one(name: str,
                                                                             ) -> None:
    golden = next(g for g in load_dir(golden_dir()) if g.file.name == name)
    answer = GOOD_ANSWERS[name]
    if name == "moderations.yaml":
        want = golden.response["results"][0]
        result = answer["results"][0]
        result["categories"] = {k: False for k in want["categories"]}
        result["category_scores"] = {k: 0.01 for k in want["category_scores"]}
        result["category_applied_input_types"] = want["category_applied_input_types?"]
    assert diff(golden.response, normalize(answer)) == ""
    assert diff(golden.response, normalize(_changed(name, answer))) != ""


@pytest.mark.slow
def test_tool_call_goldens_fail_on_changed_arguments() -> None:
    goldens = {(g.file.name, g.name): g for g in load_dir(golden_dir())}
    chat = goldens["chat_completions.yaml", "tool calls"]
    answer = {"id": "chatcmpl-1", "created": 1, "model": "m", "object": "chat.completion",
              "choices": [{"index": 0, "finish_reason": "tool_calls", "message": {
                  "role": "assistant", "content": None, "tool_calls": [
                      {"id": f"call_{i}", "type": "function",
                       "function": {"name": name, "arguments": json.dumps(args)}}
                      for i, (name, args) in enumerate([("get_weather", {"city": "Paris"}),
                                                        ("get_time", {"zone": "CET"})])]}}],
              "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}}
    assert diff(chat.response, normalize(answer)) == ""
    answer["choices"][0]["message"]["tool_calls"][1]["function"]["arguments"] = "zone=CET"
    assert "<json:object>" in diff(chat.response, normalize(answer))


@pytest.mark.slow
def test_opt_in_goldens_go_only_to_targets_declaring_their_family() -> None:
    core = Target("http://127.0.0.1:9", "ohmygpt", "k")
    assert not {c.path for c in golden_cases(core)} & {
        "/v1/images/generations", "/v1/moderations", "/v1/audio/transcriptions"}
    media = Target("http://127.0.0.1:9", "ohmygpt", "k",
                   endpoints=frozenset({"chat", "moderations", "transcriptions"}))
    paths = {c.path for c in golden_cases(media)}
    assert paths == {"/v1/chat/completions", "/v1/moderations", "/v1/audio/transcriptions"}
    heard = [c for c in golden_cases(media) if c.path == "/v1/audio/transcriptions"]
    assert all(c.encoding == "multipart" and c.body["file"][:4] == b"RIFF" for c in heard)


def _golden_findings(base_url: str, endpoints: frozenset[str], path: str) -> dict[str, set[str]]:
    """Each golden case of ``path`` sent to the gateway and judged: its check ids by name."""
    import httpx

    target = Target(base_url, "ohmygpt", "gp-vip-0001", endpoints=endpoints)
    out: dict[str, set[str]] = {}
    run = RunState()
    with httpx.Client(timeout=30) as http:
        case: Case
        for case in (c for c in golden_cases(target) if c.path == path):
            exchange = send(http, target, case, run)
            ctx = Context.of(target, case.family, case.expect, run.seen_ids, run.input_tokens)
            from gateprobe.core.checks import run_checks
            out[case.name] = {f.check_id for f in run_checks(ctx, exchange,
                                                              checks_for(ctx, exchange))}
    return out


@pytest.mark.slow
def test_tool_call_goldens_trip_on_a_gateway_dropping_the_model(make_gateway: MakeGateway,
                                                               ) -> None:
    gateway = make_gateway(faults=("response-missing-model",), timing=Timing(0, 0))
    for path in ("/v1/chat/completions", "/v1/messages"):
        found = _golden_findings(gateway.base_url, frozenset({"chat", "messages"}), path)
        assert "golden.match" in found["tool calls"], (path, found)


def test_a_group_may_hold_a_group() -> None:
    """A content block's deltas as a group inside the block's group: matched, not a crash."""
    block = {"group": [{"event": "start"},
                       {"group": [{"event": "delta"}, {"event": "mark"}], "times": "+"},
                       {"event": "stop"}], "times": "+"}
    pattern = [{"event": "open"}, block, {"event": "end"}]

    def events(*names: str) -> list[dict[str, Any]]:
        return [{"event": n} for n in names]

    fits = events("open", "start", "delta", "mark", "delta", "mark", "stop",
                  "start", "delta", "mark", "stop", "end")
    assert stream_mismatch(pattern, fits) is None
    index, what = stream_mismatch(pattern, events("open", "start", "delta", "stop", "end")) \
        or (None, "")
    assert index == 3 and "'mark'" in what
