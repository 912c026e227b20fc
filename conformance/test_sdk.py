"""The official SDKs, pointed at the target, complete and parse what they support.

The SDKs are lenient clients, so passing here is necessary, not sufficient: the other
categories are strict. A failure is an ``sdk.client`` finding naming the SDK's exception.
"""

from __future__ import annotations

import importlib
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from typing import Any

import pytest

import gateprobe.protocols.conformance  # noqa: F401  (registers the built-in checks)
from gateprobe.core import checks, transport
from gateprobe.core.checks import Context, Exchange, Family, clip_evidence
from gateprobe.core.findings import Finding, Severity
from gateprobe.core.redact import Redactor
from gateprobe.core.sse import parse_all
from gateprobe.core.targets import Target
from gateprobe.engine.cases import CLAUDE_2_WEB, unmet
from gateprobe.engine.dryrun import SDK_MAX_TOKENS
from gateprobe.engine.probe import bounded_transport, curl_of, paced, retry_after_s
from gateprobe.engine.pytest_plugin import admit_tokens, attach_exchange, attach_findings, describe
from gateprobe.engine.runstate import RunState

pytestmark = pytest.mark.sdk
SAY = [{"role": "user", "content": "Say test"}]
ANSWER_CHECKS = ["response.retry_after", "security.key_echoed"]


REQUIRES: dict[str, tuple[str, ...]] = {
    "claude-2-web stream": CLAUDE_2_WEB,
    "openai SDK: models": ("openai_models",),  # Anthropic's /v1/models wants its version
    "anthropic SDK: models": ("anthropic_models",),  # header: the anthropic SDK sends it
}
"""The preconditions of the SDK calls that have any (``gateprobe.engine.cases.PRECONDITIONS``):
each call goes through the SDK of its route's family under the target's profile."""


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
        # The Responses API (a target that declares responses): plain, and through the
        # SDK's stream helper, whose events must add up to the final response.
        "responses": ("/v1/responses", lambda c: c.responses.create(
            model=m["responses"], input="Say test", max_output_tokens=64).output_text),
        "responses stream": ("/v1/responses", _responses_stream(m["responses"])),
    }


def _responses_stream(model: str) -> Callable[[Any], Any]:
    def call(c: Any) -> Any:
        # 64: room to complete (the SDK's helper wants response.completed, not .incomplete)
        with c.responses.stream(model=model, input="Say test", max_output_tokens=64) as s:
            deltas = [e.delta for e in s if e.type == "response.output_text.delta"]
            final = s.get_final_response()
        if "".join(deltas) != final.output_text:
            raise ValueError(f"the deltas {''.join(deltas)[:60]!r} do not add up to the "
                             f"final output_text {final.output_text[:60]!r}")
        return final.output_text

    return call


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
        "models": ("/v1/models", lambda c: [x.id for x in c.models.list()]),
    }


OPENAI_CALLS = ["chat", "chat stream", "claude-2-web stream", "completions",
                "completions stream", "embeddings", "models", "responses", "responses stream"]
ANTHROPIC_CALLS = ["messages", "messages stream", "count_tokens", "models"]


SDK_METHODS = {
    "chat": "chat.completions.create", "chat stream": "chat.completions.create(stream=True)",
    "claude-2-web stream": "chat.completions.create(stream=True)",
    "completions": "completions.create", "completions stream": "completions.create(stream=True)",
    "embeddings": "embeddings.create", "models": "models.list",
    "messages": "messages.create", "messages stream": "messages.stream",
    "count_tokens": "messages.count_tokens",
    "responses": "responses.create", "responses stream": "responses.stream",
}
"""The SDK method each call uses: what a failure names."""


class _Recorder:
    """What the SDK sent and received, kept beside it: the last request exactly as it went
    out (its transport sees it after every hook and auth step), so the repro is the wire's,
    not what an SDK version keeps on its answer objects (openai 3.x keeps no Authorization
    on ``response.request``); and the answer's body, byte for byte (a response hook tees it),
    so a failure can name the event the SDK could not parse."""

    def __init__(self) -> None:
        self.body = bytearray()
        self.sent: Any = None

    def client(self, sdk: Any, target: Target) -> Any:
        """The SDK's own kind of HTTP client (``http_client=``; each SDK checks it is of the
        httpx package it was built with), teeing what it receives, over the one bounded
        transport (``probe.bounded_transport``, built on that package): the target's four
        timeouts and the body cap, as every other runner."""
        base = sdk.DefaultHttpxClient
        http = importlib.import_module(base.__mro__[1].__module__.split(".")[0])
        body = self.body

        def hook(response: Any) -> None:
            inner = response.stream
            body.clear()

            class Tee(http.SyncByteStream):  # type: ignore[name-defined, misc]
                def __iter__(self) -> Iterator[bytes]:
                    for chunk in inner:
                        body.extend(chunk)
                        yield chunk

                def close(self) -> None:
                    inner.close()

            response.stream = Tee()

        recorder = self

        class WireLog(http.BaseTransport):  # type: ignore[name-defined, misc]
            def __init__(self) -> None:
                self.inner = bounded_transport(target.timeouts, http)

            def handle_request(self, request: Any) -> Any:
                request.read()  # the SDKs send bytes bodies: this makes .content available
                recorder.sent = request
                return self.inner.handle_request(request)

            def close(self) -> None:
                self.inner.close()

        return base(timeout=_sdk_timeout(target), transport=WireLog(),
                    event_hooks={"response": [hook]})

    def last_event(self) -> str:
        """The last event received, as ``#N 'name': data`` ('' when none)."""
        events, _ = parse_all(bytes(self.body))
        if not events:
            return ""
        last = events[-1]
        return f"event #{len(events)} {last.type!r}: {last.data[:80]!r}"


def explain(sdk: str, name: str, error: BaseException, recorder: _Recorder | None,
            streaming: bool) -> str:
    """An SDK failure in one line: which SDK call, what it raised, and for a stream that
    broke while being read, the event it could not parse (the last one received)."""
    first = (str(error).splitlines() or [""])[0][:200]
    line = f"{sdk} SDK {SDK_METHODS.get(name, name)} raised {type(error).__name__}: {first}"
    if streaming and recorder is not None and _response_of(error) is None:
        event = recorder.last_event()
        if event:
            line += f"; at {event}"
    return line


@dataclass(slots=True)
class _Outcome:
    value: Any = None
    error: Exception | None = None
    timed_out: bool = False


def _bounded(fn: Callable[[Any], Any], client: Any, total_s: float) -> _Outcome:
    """Call ``fn(client)`` and give up at ``total_s``, whatever the SDK does meanwhile.

    The SDKs have no total timeout, skip SSE comments without returning control, and sleep
    through a ``Retry-After`` on their own: a watchdog that only closes the client cannot end
    a sleep. So the call runs in a daemon thread; at the deadline its client is closed (which
    ends any read it is in) and the thread is abandoned: the run goes on either way.
    """
    outcome, done = _Outcome(), threading.Event()

    def work() -> None:
        try:
            outcome.value = fn(client)
        except Exception as exc:  # whatever the SDK raises is judged by the caller
            outcome.error = exc
        finally:
            done.set()

    threading.Thread(target=work, name="gateprobe-sdk-call", daemon=True).start()
    if not done.wait(total_s):
        outcome.timed_out = True
        client.close()
    return outcome


def _response_of(exc: BaseException) -> Any:
    """The HTTP answer behind an SDK's status error (both SDKs keep it as ``.response``)."""
    response = getattr(exc, "response", None)
    return response if getattr(response, "status_code", None) is not None else None


def _transport_kind(outcome: _Outcome, streaming: bool) -> str | None:
    """The transport symptom of a failed call, or None when an answer came back."""
    if outcome.timed_out:
        return transport.total_timeout(streaming)
    if outcome.error is None or _response_of(outcome.error) is not None:
        return None
    cause: BaseException = outcome.error
    while cause.__cause__ is not None and getattr(cause, "kind", None) is None:
        cause = cause.__cause__  # the SDKs wrap httpx's exception
    kind = getattr(cause, "kind", None)  # a bound passed (probe.OutOfBounds)
    return kind if isinstance(kind, str) else \
        transport.classify(cause, got_headers=False, streaming=streaming)


def _call(fn: Callable[[Any], Any], client: Any, target: Target, state: RunState,
          streaming: bool) -> _Outcome:
    """One bounded call, paced like every other request: an unasked 429 is waited out when
    the run can afford it (the SDKs' own retries are off: they would wait a day if told to)."""
    def wait_of(outcome: _Outcome) -> float | None:
        response = _response_of(outcome.error) if outcome.error is not None else None
        if response is None or response.status_code != 429:
            return None
        return retry_after_s(response.headers)

    def attempt() -> _Outcome:
        state.pace()
        return _bounded(fn, client, target.timeouts.total_s)

    return paced(attempt, wait_of, state, target.base_url, target.timeouts.total_s)


def _judge_answer(response: Any, endpoint: str, family: Family, target: Target) -> list[Finding]:
    """What the project's checks say of an error answer the SDK raised on: a Retry-After no
    client can honour, a key quoted back."""
    exchange = Exchange(endpoint, "POST", None, response.status_code,
                        {k.lower(): v for k, v in response.headers.items()},
                        response.content if response.is_stream_consumed or
                        not response.is_stream else b"")
    return checks.run_checks(Context.of(target, family), exchange, checks.select(ANSWER_CHECKS))


def _answer_evidence(response: Any, redactor: Redactor) -> str:
    """The answer the SDK gave up on, short and redacted ('' when none arrived)."""
    if response is None:
        return ""
    body = response.content.decode("utf-8", "replace") \
        if response.is_stream_consumed or not response.is_stream else ""
    kind = response.headers.get("content-type", "(no content-type)")
    return clip_evidence(redactor.text(f"HTTP {response.status_code} {kind}\n{body}".rstrip()))


def _repro(request: Any, target: Target) -> str:
    """The ``curl`` command of the last request the SDK sent, as the wire saw it, the key as
    ``$VARIABLE``; '' when nothing was sent."""
    if request is None:
        return ""
    headers = dict(request.headers.items())
    body = request.content or None
    return curl_of(request.method, str(request.url), headers, body,
                   streaming=b'"stream":true' in (body or b"").replace(b" ", b""),
                   key=target.api_key, variable=target.api_key_env,
                   redactor=Redactor(target.secrets))


Call = tuple[str, tuple[str, Callable[[Any], Any]]]
"""A named SDK call: (name, (endpoint, the call on a client))."""


def _run(call: Call, client: Any, target: Target, state: RunState,
         record: Callable[[Finding], None], count: Callable[[str], None], sdk: str,
         streaming: bool, recorder: _Recorder | None = None) -> None:
    name, (endpoint, fn) = call
    missing = unmet(REQUIRES.get(name, REQUIRES.get(f"{sdk} SDK: {name}", ())), target)
    if missing:
        pytest.skip(f"not sent: it needs {missing}")
    if not target.serves(endpoint):
        pytest.skip(f"not sent: the target does not serve {endpoint}")
    if state.breaker.is_open(target.base_url, streaming):
        pytest.skip("not sent: earlier requests of this kind to the target timed out")
    # The claude-2-web stream names no cap (that model ignores it): it costs what the target
    # declares one request may, and is not sent under a token cap when it declares nothing.
    admit_tokens(state, target.max_tokens if name.startswith("claude-2-web")
                 else SDK_MAX_TOKENS)
    count(endpoint)
    outcome = _call(fn, client, target, state, streaming)
    kind = _transport_kind(outcome, streaming)
    if kind is not None:
        state.breaker.record(target.base_url, streaming, kind)
    if outcome.timed_out or outcome.error is not None:
        redactor = Redactor(target.secrets)
        response = _response_of(outcome.error) if outcome.error is not None else None
        found = _judge_answer(response, endpoint, "anthropic" if sdk == "anthropic"
                              else "openai", target) if response is not None else []
        why = (f"{sdk} SDK {SDK_METHODS.get(name, name)}: no whole answer within the total "
               f"timeout of {target.timeouts.total_s:g} s" if outcome.error is None
               else explain(sdk, name, outcome.error, recorder, streaming))
        message = redactor.text(why)[:300]
        evidence = found[0].evidence if found else _answer_evidence(response, redactor) \
            or message
        found.append(Finding("sdk.client", endpoint, Severity.HIGH,
                             f"the official {sdk} SDK completes and parses the answer", message,
                             evidence))
        repro = _repro(recorder.sent if recorder is not None else None, target)
        found = [replace(f, case=f"{sdk} SDK: {name}", repro=repro) for f in found]
        for finding in found:
            record(finding)
        attach_exchange(repro or "(nothing was sent)",
                        response.status_code if response is not None else None, evidence)
        attach_findings(found)
        pytest.fail(describe(found), pytrace=False)
    assert outcome.value, f"[sdk.client] {endpoint}: the {sdk} SDK returned nothing"


@pytest.mark.parametrize("name", OPENAI_CALLS)
def test_openai_sdk(name: str, gateprobe_target: Target, gateprobe_run: RunState,
                    record_finding: Any, count_case: Any) -> None:
    if name.startswith("responses") and "responses" not in gateprobe_target.served:
        pytest.skip("the target does not declare responses (its entry's endpoints:)")
    openai = pytest.importorskip("openai", reason="the sdk category needs the openai package")
    recorder = _Recorder()
    with openai.OpenAI(api_key=gateprobe_target.api_key,
                       base_url=gateprobe_target.base_url + "/v1", max_retries=0,
                       timeout=_sdk_timeout(gateprobe_target),
                       http_client=recorder.client(openai, gateprobe_target)) as client:
        _run((name, _openai_calls(gateprobe_target)[name]), client, gateprobe_target,
             gateprobe_run, record_finding, count_case, "openai", "stream" in name, recorder)


@pytest.mark.parametrize("name", ANTHROPIC_CALLS)
def test_anthropic_sdk(name: str, gateprobe_target: Target, gateprobe_run: RunState,
                       record_finding: Any, count_case: Any) -> None:
    if not gateprobe_target.serves_anthropic:
        pytest.skip("the openai profile serves no Anthropic routes")
    anthropic = pytest.importorskip("anthropic",
                                    reason="the sdk category needs the anthropic package")
    # The gateway wants Bearer (auth_token); upstream takes the SDK's api_key.
    credentials = ({"auth_token": gateprobe_target.api_key}
                   if gateprobe_target.profile == "ohmygpt"
                   else {"api_key": gateprobe_target.api_key})
    recorder = _Recorder()
    with anthropic.Anthropic(base_url=gateprobe_target.base_url, max_retries=0,
                             timeout=_sdk_timeout(gateprobe_target),
                             http_client=recorder.client(anthropic, gateprobe_target),
                             **credentials) as client:
        _run((name, _anthropic_calls(gateprobe_target)[name]), client, gateprobe_target,
             gateprobe_run, record_finding, count_case, "anthropic", "stream" in name,
             recorder)


def _sdk_timeout(target: Target) -> float:
    """The read timeout the SDKs are told (their own default waits ten minutes): the looser
    of first byte and idle, which their transport (``probe.bounded_transport``) tightens to
    each in turn; their total is bounded there at every chunk, and by ``_bounded``."""
    t = target.timeouts
    return max(t.first_byte_s, t.idle_s)
