"""Proof: every stream fault trips the checks it declares, and only where it applies.

Each fault runs in its own reference gateway; every streaming endpoint is requested from it and
the stream is checked by the project's parser and grammars, exactly as the harness does.
"""

from __future__ import annotations

from typing import Any

import pytest

from gateprobe.protocols.streams import STREAM_CHECK_IDS, check_stream_bytes, grammar_for
from gateprobe.reference.faults import ALL_STREAMS, CATALOGUE
from gateway_fixtures import MakeGateway, client_for

SAY = [{"role": "user", "content": "Say test"}]
BODIES: dict[str, dict[str, Any]] = {
    "/v1/chat/completions": {"model": "gpt-3.5-turbo", "messages": SAY,
                             "stream_options": {"include_usage": True}},
    "/v1/completions": {"model": "gpt-3.5-turbo-instruct", "prompt": "Say test",
                        "stream_options": {"include_usage": True}},
    "/v1/messages": {"model": "claude-3-sonnet", "max_tokens": 64, "messages": SAY},
    "/v1/complete": {"model": "claude-2", "max_tokens_to_sample": 64,
                     "prompt": "\n\nHuman: Say test\n\nAssistant:"},
}


def findings_for(gateway: Any, path: str) -> set[str]:
    body = BODIES[path]
    with client_for(gateway) as c:
        r = c.post(path, json={**body, "stream": True})
    assert r.status_code == 200
    return {f.check_id for f in check_stream_bytes(grammar_for(path, body), r.content, path)}


@pytest.mark.parametrize("name", list(CATALOGUE), ids=list(CATALOGUE))
def test_fault_trips_its_checks_only_where_it_applies(make_gateway: MakeGateway,
                                                      name: str) -> None:
    fault = CATALOGUE[name]
    gateway = make_gateway(faults=(name,))
    for path in sorted(ALL_STREAMS):
        found = findings_for(gateway, path)
        if path in fault.endpoints:
            assert set(fault.trips) <= found, f"{name} on {path}: {sorted(found)}"
        else:
            assert found == set(), f"{name} leaked into {path}: {sorted(found)}"


def test_every_stream_check_is_tripped_by_some_fault() -> None:
    tripped = {check for fault in CATALOGUE.values() for check in fault.trips}
    assert set(STREAM_CHECK_IDS) <= tripped, sorted(set(STREAM_CHECK_IDS) - tripped)


def test_clean_gateway_streams_have_no_findings(make_gateway: MakeGateway) -> None:
    gateway = make_gateway()
    for path in sorted(ALL_STREAMS):
        assert findings_for(gateway, path) == set(), path


def test_faults_touch_only_streams(make_gateway: MakeGateway) -> None:
    gateway = make_gateway(faults=tuple(CATALOGUE))
    with client_for(gateway) as c:
        r = c.post("/v1/chat/completions", json={"model": "gpt-3.5-turbo", "messages": SAY})
    assert r.status_code == 200 and r.json()["object"] == "chat.completion"
