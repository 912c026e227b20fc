"""Sending a case to a target and recording the exchange, bounded in size and time.

Streams are read chunk by chunk through the project's SSE parser as they arrive. Bodies are read
with a size cap: a gateway that answers with several hundred MB gets a finding, not our memory.

This module is also the one place every other client to a target gets its bounds from
(``Bounds``: the four timeouts, the body cap): ``client_for`` (the httpx client of compare,
discover, smoke, preflight and the suite), ``bounded_transport`` (under the official SDKs'
own httpx), ``bounded_session`` (under schemathesis's requests) and the Realtime session's
WebSocket (``Bounds.open_s``, ``Bounds.max_body``).
"""

from __future__ import annotations

import json
import shlex
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from functools import cache
from typing import Any, TypeVar

import httpx

from gateprobe.core import transport
from gateprobe.core.checks import Exchange
from gateprobe.core.redact import Redactor
from gateprobe.core.sse import Event, SSEParser
from gateprobe.core.targets import Target, Timeouts, credentials
from gateprobe.engine.cases import BAD_KEY, Case
from gateprobe.engine.fuzz_guard import clamp_tokens
from gateprobe.engine.runstate import BREAKER_THRESHOLD, Breaker, RunState

MAX_BODY_BYTES = 16 * 1024 * 1024
"""The most of one answer (a body, a stream, a WebSocket message) any runner reads."""


class OutOfBounds(httpx.TransportError):
    """An answer stopped by the run's bounds (larger than the body cap, past the total
    timeout, silent past the idle timeout), with the symptom it is reported under (``kind``,
    one of ``gateprobe.core.transport.KINDS``). An ``httpx.TransportError``: whoever catches
    httpx's errors catches it, and the SDKs wrap it as a connection error (its cause)."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind

    @property  # type: ignore[override]
    def request(self) -> httpx.Request | None:
        """The request, once httpx set it; None where no httpx request exists (under
        requests: schemathesis reads the attribute of whatever a send raised)."""
        return self._request

    @request.setter
    def request(self, request: httpx.Request) -> None:
        self._request = request


@dataclass(slots=True)
class Bounds:
    """One exchange's bounds, as every runner reads an answer: started when the request is
    sent, it counts the bytes received and says when the answer went past the body cap or
    the total timeout (the connect, first-byte and idle timeouts are the client library's
    per-read ones: ``httpx_timeout``)."""

    timeouts: Timeouts
    max_body: int = MAX_BODY_BYTES
    started: float = field(default_factory=time.monotonic)
    received: int = 0

    @property
    def open_s(self) -> float:
        """How long an opening may take: the connection, then the first byte of the answer
        (a WebSocket handshake's ``open_timeout``)."""
        return self.timeouts.connect_s + self.timeouts.first_byte_s

    def left_s(self) -> float:
        """Seconds left of the total timeout (negative once it passed)."""
        return self.started + self.timeouts.total_s - time.monotonic()

    def take(self, size: int, streaming: bool) -> None:
        """Count ``size`` more bytes received; ``OutOfBounds`` once they pass the body cap
        or the total timeout has passed."""
        self.received += size
        if self.received > self.max_body:
            raise OutOfBounds(transport.TOO_LARGE, f"body larger than {self.max_body} bytes: "
                              "stopped reading")
        if self.left_s() < 0:
            raise OutOfBounds(transport.total_timeout(streaming), "still sending after the "
                              f"total timeout of {self.timeouts.total_s:g} s: stopped reading")


def _tighter(asked: float | None, own: float) -> float:
    """A caller may ask for a tighter bound than the target's, never a looser one."""
    return own if asked is None else min(asked, own)


def httpx_timeout(timeouts: Timeouts, asked: Mapping[str, float | None] | None = None,
                  ) -> dict[str, float]:
    """httpx's per-request timeout (its ``timeout`` extension) under ``timeouts``: connect,
    first byte as the read timeout, idle between writes (``Timeouts.for_httpx``), each
    tightened by what the request ``asked`` for."""
    own = timeouts.for_httpx().as_dict()
    return {name: _tighter((asked or {}).get(name), value)  # type: ignore[arg-type]
            for name, value in own.items()}


def client_for(target: Target, **options: Any) -> httpx.Client:
    """The httpx client every runner talks to ``target`` with: its four timeouts and the body
    cap on every request (``bounded_transport``), redirects not followed (a redirect is the
    gateway's answer). ``options`` go to ``httpx.Client`` (tests pass ``transport=``, which
    is then wrapped)."""
    inner = options.pop("transport", None)
    return httpx.Client(timeout=None, follow_redirects=False,  # the transport's timeouts
                        transport=bounded_transport(target.timeouts, inner=inner), **options)


def bounded_transport(timeouts: Timeouts, http: Any = httpx, inner: Any = None,
                      max_body: int = MAX_BODY_BYTES) -> Any:
    """An ``http.BaseTransport`` (``http``: httpx, or the httpx fork an official SDK is built
    on, whose clients take only their own transports) that bounds every exchange it carries:
    the connect, first-byte and write timeouts; the idle timeout once the headers are in; the
    total timeout and the body cap at every chunk (``OutOfBounds``). ``inner`` sends (a plain
    ``http.HTTPTransport()`` by default)."""
    return _bounded_classes(http)(inner if inner is not None else http.HTTPTransport(),
                                  timeouts, max_body)


def bounded_session(timeouts: Timeouts, max_body: int = MAX_BODY_BYTES) -> Any:
    """A ``requests.Session`` (what schemathesis sends with) bounded like ``client_for``:
    connect and first byte as requests' ``(connect, read)`` timeout, the idle timeout once the
    headers are in, the total timeout and the body cap at every read (``OutOfBounds``);
    redirects not followed. schemathesis asks for ``stream=True`` and then reads a JSON body
    whole, and an event stream until its own deadline, neither with a size cap: here a JSON
    body is read before it is handed back, an event stream through a bounded reader."""
    import requests

    class BoundedSession(requests.Session):
        def request(self, method: Any, url: Any, *args: Any, **kwargs: Any) -> Any:
            bounds = Bounds(timeouts, max_body)
            response = super().request(method, url, *args, **{
                **kwargs, "stream": True, "allow_redirects": False,
                "timeout": (timeouts.connect_s, timeouts.first_byte_s)})
            sock = getattr(getattr(response.raw, "connection", None), "sock", None)
            if sock is not None:  # from here on, idle between two reads
                sock.settimeout(timeouts.idle_s)
            sse = "text/event-stream" in response.headers.get("content-type", "")
            response.raw = _BoundedRaw(response.raw, bounds, sse)
            if sse:  # schemathesis reads it, and stops at its own deadline or event count
                return response
            body = bytearray()
            try:
                while chunk := response.raw.read1(64 * 1024, decode_content=True):
                    body += chunk
            finally:
                response.close()
            response._content = bytes(body)
            return response

    return BoundedSession()


class _BoundedRaw:
    """A urllib3 response whose ``read1`` counts against ``bounds``: a silence past the idle
    timeout, the body cap or the total timeout is ``OutOfBounds``."""

    def __init__(self, raw: Any, bounds: Bounds, streaming: bool) -> None:
        self._raw, self._bounds, self._streaming = raw, bounds, streaming

    def read1(self, amt: int = -1, decode_content: bool | None = None) -> bytes:
        """Up to ``amt`` bytes, as urllib3 reads them, within the bounds (the connection
        closed once a bound is passed: nobody reads the rest)."""
        try:
            chunk: bytes = self._raw.read1(amt, decode_content=decode_content)
            self._bounds.take(len(chunk), self._streaming)
        except OutOfBounds:
            self._raw.close()
            raise
        except Exception as exc:
            self._raw.close()
            if transport.classify(exc, got_headers=True, streaming=self._streaming) in \
                    (transport.IDLE_TIMEOUT, transport.STREAM_IDLE_TIMEOUT):
                kind = transport.STREAM_IDLE_TIMEOUT if self._streaming else \
                    transport.IDLE_TIMEOUT
                raise OutOfBounds(kind, f"silent for {self._bounds.timeouts.idle_s:g} s "
                                  f"mid-answer ({type(exc).__name__})") from exc
            raise
        return chunk

    def __getattr__(self, name: str) -> Any:
        return getattr(self._raw, name)


@cache
def _bounded_classes(http: Any) -> Any:
    """The bounded transport's class for the httpx-like module ``http``, built once."""

    class BoundedStream(http.SyncByteStream):  # type: ignore[misc]
        def __init__(self, inner: Any, bounds: Bounds, streaming: bool) -> None:
            self.inner, self.bounds, self.streaming = inner, bounds, streaming

        def __iter__(self) -> Iterator[bytes]:
            for chunk in self.inner:
                self.bounds.take(len(chunk), self.streaming)  # before the chunk is passed on
                yield chunk

        def close(self) -> None:
            self.inner.close()

    class BoundedTransport(http.BaseTransport):  # type: ignore[misc]
        def __init__(self, inner: Any, timeouts: Timeouts, max_body: int) -> None:
            self.inner, self.timeouts, self.max_body = inner, timeouts, max_body

        def handle_request(self, request: Any) -> Any:
            t, bounds = self.timeouts, Bounds(self.timeouts, self.max_body)
            asked = request.extensions.get("timeout") or {}
            timeout = httpx_timeout(t, asked)
            request.extensions["timeout"] = timeout
            response = self.inner.handle_request(request)
            # httpcore reads the read timeout when the body starts: from here on, idle.
            timeout["read"] = _tighter(asked.get("read"), t.idle_s)
            sse = response.headers.get("content-type", "").startswith("text/event-stream")
            response.stream = BoundedStream(response.stream, bounds, sse)
            return response

        def close(self) -> None:
            self.inner.close()

    return BoundedTransport


def sent_key(target: Target, case: Case) -> str:
    """The key a case sends ('' for none): the target's, or a deliberate mistake."""
    if case.auth == "none":
        return ""
    key = {"bad": BAD_KEY, "no_permission": target.no_permission_key}.get(case.auth,
                                                                           target.api_key)
    assert key is not None, "no_permission cases exist only with a no-permission key"
    return key


def auth_headers(target: Target, case: Case) -> dict[str, str]:
    """The credentials a case sends: the profile's convention, or a deliberate mistake."""
    key = sent_key(target, case)
    if not key:
        return {}
    headers = credentials(target.profile, case.family, key)
    if case.auth == "wrong_style":  # the other convention, on purpose
        return {"authorization": f"Bearer {key}"} if "x-api-key" in headers \
            else {"x-api-key": key}
    return headers


def key_variable(target: Target, case: Case) -> str:
    """The environment variable the key a case sends came from ('' for none, or for a
    deliberately wrong key, which is no secret and is written as it is)."""
    if case.auth in ("none", "bad"):
        return ""
    if case.auth == "no_permission":
        return target.no_permission_key_env or "GATEPROBE_NO_PERMISSION_KEY"
    return target.api_key_env


def curl_command(target: Target, case: Case) -> str:
    """A ``curl`` command that sends exactly what ``send`` sends for ``case``: the method, the
    URL, every header and the body (token caps applied), the key as ``$VARIABLE`` so the
    command can be pasted into a bug report and run by whoever holds the key."""
    parts = _request_parts(target, case)
    headers: dict[str, str] = parts["headers"]
    form: list[str] = []
    if "json" in parts:
        body: str | bytes | None = json.dumps(parts["json"], ensure_ascii=False)
        headers = {**headers, "content-type": "application/json"}
    elif case.encoding != "json" and isinstance(case.body, dict):  # a form, field by field
        body = None
        form = _form_words(case.body, multipart=case.encoding == "multipart")
    else:
        body = parts.get("content")
    redactor = Redactor(target.secrets)
    command = curl_of(case.method, target.base_url + case.path, headers, body,
                      streaming=is_streaming(case), key=sent_key(target, case),
                      variable=key_variable(target, case), redactor=redactor)
    return redactor.text(" ".join([command, *form]))


def _form_words(body: Mapping[str, Any], multipart: bool) -> list[str]:
    """curl's form flags for ``body`` (``-F`` parts or ``--data-urlencode`` fields); an upload
    is named by the file name it was sent under: whoever runs the repro supplies one."""
    flag = "-F" if multipart else "--data-urlencode"
    words = []
    for name, value in body.items():
        for item in value if isinstance(value, list) else [value]:
            text = f"@{UPLOAD_NAMES.get(name, name)}" if isinstance(item, bytes) else str(item)
            words.append(f"{flag} {shlex.quote(f'{name}={text}')}")
    return words


CURL_SETS_ITSELF = frozenset({"host", "content-length", "connection", "accept-encoding"})
"""Headers a client library sent that curl sets itself (an ``accept-encoding`` copied over
would make curl print the compressed bytes)."""


def curl_of(method: str, url: str, headers: Mapping[str, str], body: str | bytes | None, *,
            streaming: bool, key: str, variable: str, redactor: Redactor) -> str:
    """A ``curl`` command for one request as it was sent (any runner's: the suite's, the
    fuzzer's), with ``key`` written as ``$variable`` wherever it appears and any other secret
    masked. Streams get ``-N``: curl would otherwise buffer the events it shows."""
    words = ["curl", "-sS", "-i", *(["-N"] if streaming else []),
             "-X", method.upper(), _shell_word(url, key, variable)]
    for name, value in headers.items():
        if name.lower() not in CURL_SETS_ITSELF:
            words += ["-H", _shell_word(f"{name}: {value}", key, variable)]
    if body is not None:
        text = body.decode("utf-8", "replace") if isinstance(body, bytes) else body
        words += ["--data-binary", _shell_word(text, key, variable)]
    return redactor.text(" ".join(words))


def _shell_word(text: str, key: str, variable: str) -> str:
    """``text`` as one shell word, the key in it replaced by a reference to its variable."""
    if not key or not variable or key not in text:
        return shlex.quote(text)

    def escaped(part: str) -> str:  # inside double quotes, only these four are special
        return "".join("\\" + c if c in '\\"$`' else c for c in part)

    first, *rest = text.split(key)
    word = escaped(first)
    for part in rest:  # $VAR, or ${VAR} where the text goes on with a name's character
        braced = bool(part) and (part[0].isalnum() or part[0] == "_")
        word += (f"${{{variable}}}" if braced else f"${variable}") + escaped(part)
    return f'"{word}"'


MAX_RETRIES_429 = 2


T = TypeVar("T")


def paced(attempt: Callable[[], T], wait_of: Callable[[T], float | None], state: RunState,
          base_url: str, request_s: float, sleep: Callable[[float], None] = time.sleep) -> T:
    """``attempt()``, and again after each unasked 429 while the run can afford its wait.

    ``wait_of`` gives an outcome's ``Retry-After`` when it is a 429 the caller did not ask for,
    None otherwise. A wait is honoured in full (``RunState.affords_wait``), at most
    ``MAX_RETRIES_429`` times; a ``Retry-After`` the run cannot afford is not waited for, and a
    target that stays 429 is no longer waited on once that has never helped. Every runner
    that retries a 429 (the probe, the SDK category) paces through here."""
    result = attempt()
    for _ in range(MAX_RETRIES_429):
        wait = wait_of(result)
        if wait is None or not state.breaker.still_waits_for_429(base_url) or \
                not state.affords_wait(wait, request_s):
            return result
        sleep(wait)
        result = attempt()
    if wait_of(result) is not None:
        state.breaker.record_429(base_url)
    return result


def send(client: httpx.Client, target: Target, case: Case, state: RunState | None = None,
         sleep: Callable[[float], None] = time.sleep) -> Exchange:
    """Send ``case``, waiting out a 429 it did not ask for (``paced``): real gateways
    rate-limit every route, and our own pace is not their fault."""
    run = state or RunState()
    key = sent_key(target, case)

    def once() -> Exchange:
        run.pace(sleep)
        return replace(_send_once(client, target, case, run.breaker), sent_key=key)

    def wait_of(exchange: Exchange) -> float | None:
        unasked = exchange.status == 429 and case.expect.status != 429
        return retry_after_s(exchange.headers) if unasked else None

    return paced(once, wait_of, run, target.base_url, target.timeouts.total_s, sleep)


def retry_after_s(headers: Mapping[str, str], default: float = 1.0) -> float:
    """The wait a ``Retry-After`` header asks for, in seconds (``default`` when absent or an
    HTTP date, which a gateway's limiter does not send in practice)."""
    try:
        return max(0.0, float(headers.get("retry-after", default)))
    except ValueError:
        return default


def is_streaming(case: Case) -> bool:
    """Whether the case asks for an event stream."""
    return isinstance(case.body, dict) and bool(case.body.get("stream"))


Observe = Callable[[bytes, int], None]
"""Told each chunk of a body as it arrives, with its ``metrics.now_ns()`` receive time."""


def exchange_once(client: httpx.Client, target: Target, case: Case,
                  breaker: Breaker | None = None, observe: Observe | None = None,
                  stop_after_events: int | None = None) -> Exchange:
    """One bounded exchange (the target's timeouts, the body cap, the breaker), neither
    paced nor retried: what a measurement sends (``compare``'s latency sample and long
    request), where waiting out a 429 would falsify the figure. ``observe`` sees every chunk
    as it arrives (a ``StreamObserver`` times a stream with it); ``stop_after_events`` closes
    the connection once that many events came (a client that gives up: ``propagation``)."""
    return replace(_send_once(client, target, case, breaker or Breaker(), observe,
                              stop_after_events), sent_key=sent_key(target, case))


def _send_once(client: httpx.Client, target: Target, case: Case, breaker: Breaker,
               observe: Observe | None = None, stop_after: int | None = None) -> Exchange:
    """Send ``case`` and record everything that came back, within the target's timeouts:
    connect, first byte (the headers), idle (between two reads) and total (checked at every
    read, so a run ends at most one idle period after its total)."""
    kwargs = _request_parts(target, case)
    url = target.base_url + case.path
    t = target.timeouts
    streaming = is_streaming(case)
    if breaker.is_open(target.base_url, streaming):
        return Exchange(case.path, case.method, case.body, None,
                        transport_error=f"not sent: {BREAKER_THRESHOLD} earlier "
                                        f"{'streaming' if streaming else 'plain'} requests to "
                                        "this target timed out",
                        transport_kind=transport.SKIPPED)
    bounds = Bounds(t)
    got_headers = False
    try:
        with client.stream(case.method, url, timeout=t.for_httpx(), **kwargs) as response:
            got_headers = True
            # httpcore reads the read timeout when the body starts: from here on, idle.
            response.request.extensions.get("timeout", {})["read"] = t.idle_s
            body, events, parser = bytearray(), list[Event](), SSEParser()
            is_sse = response.headers.get("content-type", "").startswith("text/event-stream")
            try:
                for chunk in response.iter_bytes():
                    body += chunk
                    t_ns = time.perf_counter_ns()
                    if is_sse:
                        events += parser.feed(chunk, t_ns)
                    if observe is not None:
                        observe(chunk, t_ns)
                    bounds.take(len(chunk), is_sse)
                    if stop_after is not None and len(events) >= stop_after:
                        return _exchange(case, response, bytes(body), events, parser, None)
            except OutOfBounds as exc:  # ours, or the client's bounded transport's
                if exc.kind != transport.TOO_LARGE:
                    breaker.record(target.base_url, streaming, exc.kind)
                return _exchange(case, response, bytes(body[:bounds.max_body]), events,
                                 parser, str(exc), exc.kind)
            parser.finish()
            return _exchange(case, response, bytes(body), events, parser, None)
    except httpx.HTTPError as exc:
        kind = exc.kind if isinstance(exc, OutOfBounds) else \
            transport.classify(exc, got_headers=got_headers, streaming=streaming)
        breaker.record(target.base_url, streaming, kind)
        what = {transport.FIRST_BYTE_TIMEOUT: f"no answer within {t.first_byte_s:g} s",
                transport.IDLE_TIMEOUT: f"silent for {t.idle_s:g} s mid-answer",
                transport.STREAM_IDLE_TIMEOUT: f"silent for {t.idle_s:g} s mid-stream",
                transport.CONNECT_TIMEOUT: f"no connection within {t.connect_s:g} s",
                }.get(kind, "")
        detail = f"{type(exc).__name__}: {exc}"
        return Exchange(case.path, case.method, case.body, None,
                        transport_error=f"{what} ({detail})" if what else detail,
                        transport_kind=kind)


def _request_parts(target: Target, case: Case) -> dict[str, Any]:
    """httpx's keyword arguments for ``case``: its headers (credentials, version) and body."""
    headers = {**auth_headers(target, case), **target.headers, **case.headers}
    if case.family == "anthropic":
        headers.setdefault("anthropic-version", "2023-06-01")
    kwargs: dict[str, Any] = {"headers": headers}
    if isinstance(case.body, bytes):
        kwargs["content"] = case.body
        headers["content-type"] = "application/json"
    elif case.encoding != "json" and isinstance(case.body, dict):
        kwargs.update(form_parts(case.body, multipart=case.encoding == "multipart"))
    elif case.body is not None:
        kwargs["json"] = clamp_tokens(case.body, target.max_tokens)
    return kwargs


UPLOAD_NAMES = {"image": "image.png", "mask": "mask.png", "file": "audio.wav"}
"""The file names multipart parts are sent under (servers read the type from them)."""


def form_parts(body: Mapping[str, Any], multipart: bool) -> dict[str, Any]:
    """httpx's ``data``/``files`` for a form body: values as text, ``bytes`` as file parts."""
    data = {k: v if isinstance(v, list) else str(v) for k, v in body.items()
            if not isinstance(v, bytes)}
    files = {k: (UPLOAD_NAMES.get(k, k), v) for k, v in body.items() if isinstance(v, bytes)}
    if not multipart:
        return {"data": data}
    if not files:  # httpx would send the fields alone form-urlencoded: parts without a file
        return {"files": [(k, (None, v)) for k, v in data.items() if isinstance(v, str)]}
    return {"data": data, "files": files}


def _exchange(case: Case, response: httpx.Response, body: bytes, events: list[Event],
              parser: SSEParser, problem: str | None,
              kind: str = "transport.error") -> Exchange:
    headers = {k.lower(): v for k, v in response.headers.items()}
    return Exchange(case.path, case.method, case.body, response.status_code, headers, body,
                    events, parser.notes, problem, kind)

