"""Every stream the clean reference gateway sends passes its grammar with zero findings."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from gateprobe.protocols.streams import check_stream_bytes, grammar_for

SAY = [{"role": "user", "content": "Say test"}]
LEGACY = "\n\nHuman: Say test\n\nAssistant:"

VARIANTS: list[tuple[str, str, dict[str, Any], dict[str, str]]] = [
    ("chat", "/v1/chat/completions", {"model": "gpt-3.5-turbo", "messages": SAY}, {}),
    ("chat usage", "/v1/chat/completions", {"model": "gpt-4o-mini", "messages": SAY,
                                            "stream_options": {"include_usage": True}}, {}),
    ("chat n=3 max_tokens", "/v1/chat/completions", {"model": "gpt-3.5-turbo", "messages": SAY,
                                                     "n": 3, "max_tokens": 5}, {}),
    ("claude-2-web", "/v1/chat/completions", {"model": "claude-2-web", "messages": SAY}, {}),
    ("completions", "/v1/completions", {"model": "gpt-3.5-turbo-instruct", "prompt": "x"}, {}),
    ("completions echo usage batch", "/v1/completions", {
        "model": "gpt-3.5-turbo-instruct", "prompt": ["a", "b"], "echo": True,
        "stream_options": {"include_usage": True}}, {}),
    ("messages", "/v1/messages", {"model": "claude-3-opus", "max_tokens": 64,
                                  "messages": SAY}, {}),
    ("messages max_tokens", "/v1/messages", {"model": "claude-2", "max_tokens": 2,
                                             "messages": SAY}, {}),
    ("complete", "/v1/complete", {"model": "claude-2", "prompt": LEGACY,
                                  "max_tokens_to_sample": 64}, {}),
    ("complete 2023-01-01", "/v1/complete", {"model": "claude-instant-1", "prompt": LEGACY,
                                             "max_tokens_to_sample": 64},
     {"anthropic-version": "2023-01-01"}),
]


@pytest.mark.parametrize(("path", "body", "headers"), [v[1:] for v in VARIANTS],
                         ids=[v[0] for v in VARIANTS])
def test_clean_stream_has_no_findings(client: httpx.Client, path: str, body: dict[str, Any],
                                      headers: dict[str, str]) -> None:
    r = client.post(path, json={**body, "stream": True}, headers=headers)
    assert r.status_code == 200
    grammar = grammar_for(path, body,
                          anthropic_version=headers.get("anthropic-version", "2023-06-01"))
    assert check_stream_bytes(grammar, r.content, path) == []
