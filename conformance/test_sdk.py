"""The official SDKs, pointed at the target, complete and parse what they support.

The SDKs are lenient clients, so passing here is necessary, not sufficient: the other
categories are strict. A failure is an ``sdk.client`` finding naming the SDK's exception.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import pytest

from gateprobe.findings import Finding, Severity
from gateprobe.probe import BREAKER
from gateprobe.redact import Redactor
from gateprobe.targets import Target

pytestmark = pytest.mark.sdk
SAY = [{"role": "user", "content": "Say test"}]


def _openai_calls(t: Target) -> dict[str, tuple[str, Callable[[Any], Any]]]:
    m = t.models
    return {
        "chat": ("/v1/chat/completions", lambda c: c.chat.completions.create(
            model=m["chat"], messages=SAY, max_tokens=16).choices[0].message.content),
        "chat stream": ("/v1/chat/completions", lambda c: "".join(
            (k.choices[0].delta.content or "") if k.choices else ""
            for k in c.chat.completions.create(model=m["chat"], messages=SAY, max_tokens=16,
                                               stream=True,
                                               stream_options={"include_usage": True}))),
        "claude-2-web stream": ("/v1/chat/completions", lambda c: "".join(
            k.choices[0].delta.content or "" for k in c.chat.completions.create(
                model=m["legacy_chat"], messages=SAY, stream=True))),
        "completions": ("/v1/completions", lambda c: c.completions.create(
            model=m["completions"], prompt="Say test", max_tokens=16).choices[0].text),
        "completions stream": ("/v1/completions", lambda c: "".join(
            k.choices[0].text for k in c.completions.create(
                model=m["completions"], prompt="Say test", max_tokens=16, stream=True))),
        "embeddings": ("/v1/embeddings", lambda c: len(c.embeddings.create(
            model=m["embeddings"], input=["Say", "test"]).data[1].embedding)),
        "models": ("/v1/models", lambda c: [x.id for x in c.models.list()]),
    }


def _anthropic_calls(t: Target) -> dict[str, tuple[str, Callable[[Any], Any]]]:
    m = t.models

    def stream(c: Any) -> str:
        with c.messages.stream(model=m["messages"], max_tokens=16, messages=SAY) as s:
            text = "".join(s.text_stream)
            s.get_final_message()
        return text

    return {
        "messages": ("/v1/messages", lambda c: c.messages.create(
            model=m["messages"], max_tokens=16, messages=SAY).content[0].text),
        "messages stream": ("/v1/messages", stream),
        "count_tokens": ("/v1/messages/count_tokens", lambda c: c.messages.count_tokens(
            model=m["messages"], messages=SAY).input_tokens),
    }


OPENAI_CALLS = ["chat", "chat stream", "claude-2-web stream", "completions",
                "completions stream", "embeddings", "models"]
ANTHROPIC_CALLS = ["messages", "messages stream", "count_tokens"]


def _run(call: tuple[str, Callable[[Any], Any]], client: Any, target: Target,
         record: Callable[[Finding], None], count: Callable[[str], None], sdk: str,
         streaming: bool) -> None:
    endpoint, fn = call
    if BREAKER.is_open(target.base_url, streaming):
        pytest.skip("not sent: earlier requests of this kind to the target timed out")
    count(endpoint)
    # The SDKs have no total timeout, and skip SSE comments without returning control: a
    # stream that never ends (keep-alives forever) would hold the run. A watchdog closes the
    # client at the run's total timeout; the SDK then raises, and that is the finding.
    expired = threading.Event()

    def expire() -> None:
        expired.set()
        client.close()

    watchdog = threading.Timer(target.timeouts.total_s, expire)
    watchdog.start()
    try:
        result = fn(client)
    except Exception as exc:  # whatever the SDK raises is the finding
        why = f"total timeout of {target.timeouts.total_s:g} s; " if expired.is_set() else ""
        message = Redactor(target.secrets).text(
            f"{why}{type(exc).__name__}: {exc}")[:300]
        record(Finding("sdk.client", endpoint, Severity.HIGH,
                       f"the official {sdk} SDK completes and parses the answer", message))
        pytest.fail(f"[sdk.client] {endpoint}: {message}")
    finally:
        watchdog.cancel()
    assert result, f"[sdk.client] {endpoint}: the {sdk} SDK returned nothing"


@pytest.mark.parametrize("name", OPENAI_CALLS)
def test_openai_sdk(name: str, gateprobe_target: Target, record_finding: Any,
                    count_case: Any) -> None:
    openai = pytest.importorskip("openai", reason="the sdk category needs the openai package")
    with openai.OpenAI(api_key=gateprobe_target.api_key,
                       base_url=gateprobe_target.base_url + "/v1", max_retries=1,
                       timeout=_sdk_timeout(gateprobe_target)) as client:
        _run(_openai_calls(gateprobe_target)[name], client, gateprobe_target, record_finding,
             count_case, "openai", "stream" in name)


@pytest.mark.parametrize("name", ANTHROPIC_CALLS)
def test_anthropic_sdk(name: str, gateprobe_target: Target, record_finding: Any,
                       count_case: Any) -> None:
    if not gateprobe_target.serves_anthropic:
        pytest.skip("the openai profile serves no Anthropic routes")
    anthropic = pytest.importorskip("anthropic",
                                    reason="the sdk category needs the anthropic package")
    # The gateway wants Bearer (auth_token); upstream takes the SDK's api_key.
    credentials = ({"auth_token": gateprobe_target.api_key}
                   if gateprobe_target.profile == "ohmygpt"
                   else {"api_key": gateprobe_target.api_key})
    with anthropic.Anthropic(base_url=gateprobe_target.base_url, max_retries=1,
                             timeout=_sdk_timeout(gateprobe_target), **credentials) as client:
        _run(_anthropic_calls(gateprobe_target)[name], client, gateprobe_target,
             record_finding, count_case, "anthropic", "stream" in name)


def _sdk_timeout(target: Target) -> float:
    """The run's read timeout for the SDKs (their own default waits ten minutes); their
    total is bounded by ``_run``'s watchdog."""
    t = target.timeouts
    return max(t.first_byte_s, t.idle_s)
