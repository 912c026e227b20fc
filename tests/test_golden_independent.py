"""Every golden holds for a second, independent implementation of the protocols.

``independent_gateway`` answers each golden request in another valid way than the reference
(one tool call, 4-dimension embeddings, no optional fields, other chunking and ids): the golden
category, judged by every check as the suite judges it, finds nothing there. A golden that
pinned the reference's habits instead of the protocol would.
"""

from __future__ import annotations

import copy
import socket
import threading
import time
from collections.abc import Iterator

import httpx
import pytest
import uvicorn

from gateprobe.core.checks import Context, run_checks
from gateprobe.core.golden import diff, golden_dir, load_dir, normalize, pinned_paths, unpinned
from gateprobe.core.targets import Target
from gateprobe.engine.cases import golden_cases
from gateprobe.engine.probe import send
from gateprobe.engine.runstate import RunState
from gateprobe.protocols.conformance import checks_for
from independent_gateway import make_app

CORE = frozenset({"chat", "completions", "embeddings", "models", "messages", "count_tokens",
                  "complete", "images", "moderations", "transcriptions", "responses",
                  "conversations"})


@pytest.fixture(scope="module")
def independent_url() -> Iterator[str]:
    """The independent gateway under uvicorn on a free loopback port (a real socket: the
    streams are judged as they arrive)."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(make_app(), log_level="warning"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.01)
    assert server.started
    yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    server.should_exit = True
    thread.join(10)
    sock.close()


@pytest.mark.slow
@pytest.mark.parametrize("profile", ["ohmygpt", "anthropic", "openai"])
def test_golden_category_finds_nothing_on_an_independent_implementation(
        independent_url: str, profile: str) -> None:
    target = Target(independent_url, profile, "sk-independent-0001", endpoints=CORE)
    cases = golden_cases(target)
    assert len(cases) >= (23 if profile == "openai" else 34)
    run = RunState()
    found = {}
    with httpx.Client() as client:
        for case in cases:
            exchange = send(client, target, case, run)
            ctx = Context.of(target, case.family, case.expect, run.seen_ids, run.input_tokens)
            findings = run_checks(ctx, exchange, checks_for(ctx, exchange))
            if findings:
                found[case.id] = [f"{f.check_id}: {f.observed[:300]}" for f in findings]
    assert found == {}


def test_every_golden_says_why_it_pins_each_value() -> None:
    """A literal value in a golden is a claim about the protocol: its case names it in
    ``pins`` with the reason; a pin naming nothing the golden fixes is stale."""
    for g in load_dir(golden_dir()):
        assert unpinned(g) == [], f"{g.file.name}: {g.name}"
        paths = pinned_paths(g.response)
        for pin, why in g.pins.items():
            assert why.strip(), f"{g.file.name}: {g.name}: pin {pin} without a reason"
            assert any(p == pin or p.startswith((pin + ".", pin + "[")) for p in paths), \
                f"{g.file.name}: {g.name}: stale pin {pin}"


def _golden(file: str, name: str) -> object:
    return next(g.response for g in load_dir(golden_dir())
                if g.file.name == file and g.name == name)


TOOL_ANSWER = {
    "id": "msg_1", "type": "message", "role": "assistant", "model": "claude",
    "content": [{"type": "tool_use", "id": "toolu_1", "name": "get_weather",
                 "input": {"city": "Paris"}}],
    "stop_reason": "tool_use", "stop_sequence": None,
    "usage": {"input_tokens": 5, "output_tokens": 9}}


@pytest.mark.slow
def test_a_golden_compares_no_count_a_model_chooses() -> None:
    """One tool call where the reference makes two; any vector length without
    ``dimensions``; no optional ``stop`` field: all fit."""
    assert diff(_golden("messages.yaml", "tool calls"), normalize(TOOL_ANSWER)) == ""
    embedding = {"object": "list", "model": "e", "usage": {"prompt_tokens": 1,
                                                           "total_tokens": 1},
                 "data": [{"object": "embedding", "index": 0, "embedding": [0.1] * 4}]}
    assert diff(_golden("embeddings.yaml", "one input"), normalize(embedding)) == ""
    embedding["data"][0]["embedding"] = [0.1] * 4  # 8 were asked for
    assert "<vector[8]>" in diff(_golden("embeddings.yaml", "three inputs, 8 dimensions"),
                                 normalize(embedding))


@pytest.mark.slow
def test_a_present_stop_reason_is_never_shown_as_missing() -> None:
    """The diff names the first field that differs, not a line-by-line YAML alignment that
    showed a present ``stop_reason: tool_use`` as removed."""
    answer = copy.deepcopy(TOOL_ANSWER)
    answer["content"][0]["type"] = "text"
    difference = diff(_golden("messages.yaml", "tool calls"), normalize(answer))
    assert difference.startswith("at /content/0/type: expected \"tool_use\", got \"text\"")
    assert "stop_reason" not in difference
    answer = copy.deepcopy(TOOL_ANSWER)
    answer["stop_reason"] = "end_turn"
    assert diff(_golden("messages.yaml", "tool calls"), normalize(answer)).startswith(
        "at /stop_reason: expected \"tool_use\", got \"end_turn\"")
