"""Tests of golden normalization, comparison and files."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml

from gateprobe.errors import ConfigError
from gateprobe.golden import (
    diff,
    fill_models,
    golden_dir,
    load_dir,
    normalize,
    normalize_events,
    rewrite,
)
from gateprobe.sse import Event


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
    difference = diff(golden, {"data": [{"index": 1}]})
    assert "-object: list" in difference and "+- index: 1" in difference
    assert diff([1, 2], [1]) != ""


def test_fill_models() -> None:
    assert fill_models({"model": "$chat", "x": 1}, {"chat": "m1"}) == {"model": "m1", "x": 1}
    assert fill_models({"model": "literal"}, {}) == {"model": "literal"}


def test_shipped_goldens_cover_every_endpoint_at_least_three_times() -> None:
    goldens = load_dir(golden_dir())
    per_endpoint: dict[str, int] = {}
    for g in goldens:
        per_endpoint[g.endpoint] = per_endpoint.get(g.endpoint, 0) + 1
        assert g.response is not None, f"{g.file.name}: {g.name} was never recorded"
    assert set(per_endpoint) == {"/v1/chat/completions", "/v1/completions", "/v1/embeddings",
                                 "/v1/complete", "/v1/messages", "/v1/messages/count_tokens"}
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


def test_optional_events_match_wherever_they_occur() -> None:
    from gateprobe.golden import diff

    golden = [{"event": "message_start", "data": {}}, {"event": "ping", "data": {}},
              {"event": "message_stop", "data": {}}]
    moved = [{"event": "message_start", "data": {}}, {"event": "message_stop", "data": {}},
             {"event": "ping", "data": {}}]
    assert diff(golden, moved) == ""
    assert diff(golden, [{"event": "message_start", "data": {}}]) != ""
