"""The ``propagation`` category: what a gateway does between its two sides.

The target's gateway is configured (by a person) to send its model to gateprobe's reference
upstream (``gateprobe serve --upstream``, or started by the run on the target's declared
``upstream.listen``). Each case puts a fresh marker in its prompt, scripts the upstream's answer
to that marker through the control API (HTTP only: the harness learns nothing from the
reference's internals), sends the request to the gateway as a client, then judges what reached
the client against what the upstream did and received. One function per check id:

- ``propagation.truncation``: a stream the upstream cut (cleanly, or by a reset) reaches the
  client as an error, a reset or an unterminated stream: never as a clean end;
- ``propagation.retry_after``: an upstream 429 with ``Retry-After: N`` reaches the client as a
  429 with ``Retry-After`` >= N (a gateway that retried and succeeded: information);
- ``propagation.status``: 529 -> 529 or 503, 503 -> 503, 500 -> a 5xx, an upstream slower than
  the gateway's declared timeout -> 504 or 408; every error in the family's envelope;
- ``propagation.key_isolation``: the client's key does not reach the upstream, the upstream's
  key does not reach the client;
- ``propagation.header_leak``: headers the upstream adds for itself (an internal URL among
  them) do not reach the client;
- ``propagation.usage``: the client's usage is the upstream's (plain and streamed);
- ``propagation.params``: what the client asked arrives upstream unchanged;
- ``propagation.cancel``: a client that hangs up closes the upstream request within N s;
- ``propagation.retries``: a stream retried after partial output is not spliced.

A case that cannot tell (the gateway relays no stream at all, say) is ``Inconclusive``: never
a pass, never a finding. A deviation the target documents (``propagation.documented``) turns
its findings into information lines.
"""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from typing import Any

import httpx

from gateprobe.core.checks import Exchange, Expectation
from gateprobe.core.findings import Finding, Severity
from gateprobe.core.redact import Redactor
from gateprobe.core.sse import SSEParser
from gateprobe.core.targets import Target
from gateprobe.engine.cases import Case
from gateprobe.engine.probe import auth_headers, curl_command, send
from gateprobe.engine.runstate import RunState

CONTROL = "/_gateprobe/upstream"
CHAT = "/v1/chat/completions"
MESSAGES = "/v1/messages"
INTERNAL_URL = "http://10.20.0.7:8080"
"""The private address the upstream names in the header-leak case."""
UPSTREAM_ONLY = "x-upstream-internal"
UPSTREAM_URL_HEADER = "x-upstream-url"
CUT_AFTER = 3
"""Content events the upstream sends before a cut, reset or hang."""
RETRY_AFTER_S = 5
MAX_TOKENS = 24
POLL_S = 0.1


class Inconclusive(Exception):
    """The case cannot tell (and says why): neither a pass nor a finding."""


class UpstreamUnavailable(Exception):
    """The upstream's control API did not answer (the run is misconfigured, not the gateway)."""


@dataclass(slots=True)
class UpstreamControl:
    """The reference upstream's control API, as a client."""

    http: httpx.Client
    base_url: str

    def _call(self, method: str, path: str, **kwargs: Any) -> Any:
        try:
            response = self.http.request(method, self.base_url + CONTROL + path, timeout=10.0,
                                         **kwargs)
        except httpx.HTTPError as exc:
            raise UpstreamUnavailable(f"upstream control API at {self.base_url}: "
                                      f"{type(exc).__name__}") from None
        if response.status_code >= 300:
            raise UpstreamUnavailable(f"upstream control API: {response.status_code} "
                                      f"{response.text[:200]}")
        return response.json()

    def health(self) -> None:
        """Raise ``UpstreamUnavailable`` unless an upstream-mode reference answers."""
        if not self._call("GET", "/health").get("upstream"):
            raise UpstreamUnavailable(f"{self.base_url} is not a reference in upstream mode")

    def script(self, marker: str, **fields: Any) -> None:
        """Script the next request(s) carrying ``marker`` (``reference.upstream.Script``)."""
        self._call("POST", "/scripts", json={"marker": marker, **fields})

    def received(self, marker: str) -> list[dict[str, Any]]:
        """The requests carrying ``marker`` the upstream received, oldest first."""
        return list(self._call("GET", "/requests", params={"marker": marker})["requests"])


@dataclass(slots=True)
class Probe:
    """One case's means: the gateway as a client, the upstream's control API, the run."""

    http: httpx.Client
    target: Target
    upstream: UpstreamControl
    state: RunState = field(default_factory=RunState)
    information: list[str] = field(default_factory=list)
    sleep: Callable[[float], None] = time.sleep

    @property
    def family(self) -> str:
        """The route family the gateway forwards to the upstream in."""
        upstream = self.target.upstream
        return "anthropic" if upstream is not None and upstream.protocol == "anthropic" \
            else "openai"

    @property
    def path(self) -> str:
        """The route the cases send to."""
        return MESSAGES if self.family == "anthropic" else CHAT

    def body(self, marker: str, stream: bool, **extra: Any) -> dict[str, Any]:
        """A request of the family whose prompt carries ``marker``."""
        model = self.target.models["messages" if self.family == "anthropic" else "chat"]
        messages = [{"role": "user", "content": f"Say test. ({marker})"}]
        body: dict[str, Any] = {"model": model, "max_tokens": MAX_TOKENS, "messages": messages}
        if stream:
            body["stream"] = True
        return {**body, **extra}

    def case(self, name: str, body: dict[str, Any], status: int | None = None) -> Case:
        """The request as a conformance case (so ``probe.send`` sends and bounds it)."""
        return Case(name, "endpoint", "POST", self.path, self.family,  # type: ignore[arg-type]
                    body, expect=Expectation(status=status))

    def send(self, case: Case) -> Exchange:
        """Send through the gateway, bounded by the target's timeouts."""
        return send(self.http, self.target, case, self.state, self.sleep)

    def finding(self, check_id: str, severity: Severity, case: Case, expected: str,
                observed: str, evidence: str = "") -> Finding:
        """A finding of this case, with its repro, redacted."""
        redactor = Redactor(self.target.secrets)
        return Finding(check_id, self.path, severity, expected, redactor.text(observed),
                       redactor.text(evidence[:1500]), case=f"propagation {case.name}",
                       repro=curl_command(self.target, case))


def marker() -> str:
    """A fresh marker for one case's prompt."""
    return "gpmark-" + secrets.token_hex(8)


# -- reading what reached the client ---------------------------------------------------------
def payloads(ex: Exchange) -> Iterator[tuple[str, Any]]:
    """(event name, parsed JSON or the raw text) of each event of a streamed answer."""
    for event in ex.events:
        try:
            yield event.type, json.loads(event.data)
        except ValueError:
            yield event.type, event.data


def clean_end(family: str, ex: Exchange) -> bool:
    """Whether the client saw a stream end as a finished one: ``[DONE]``, a finish reason,
    ``message_stop``, a stop reason (an unterminated or failed stream is no clean end)."""
    if ex.status is None or ex.status >= 300 or ex.transport_error:
        return False
    for name, data in payloads(ex):
        if data == "[DONE]" or name == "message_stop" or (
                isinstance(data, dict) and data.get("type") == "message_stop"):
            return True
        if isinstance(data, dict) and family == "openai" and any(
                isinstance(c, dict) and c.get("finish_reason") for c in data.get("choices", [])):
            return True
        delta = data.get("delta") if isinstance(data, dict) else None
        if isinstance(delta, dict) and delta.get("stop_reason"):
            return True
    return False


def has_error_event(ex: Exchange) -> bool:
    """Whether the stream carried an error event (Anthropic's ``error``, OpenAI's
    ``{"error": ...}`` data)."""
    return any(name == "error" or (isinstance(data, dict) and "error" in data)
               for name, data in payloads(ex))


def stream_text(ex: Exchange) -> str:
    """The generated text a client reassembles from a stream."""
    parts = []
    for _, data in payloads(ex):
        if not isinstance(data, dict):
            continue
        for choice in data.get("choices") or []:
            delta = choice.get("delta") if isinstance(choice, dict) else None
            if isinstance(delta, dict) and isinstance(delta.get("content"), str):
                parts.append(delta["content"])
        delta = data.get("delta")
        if isinstance(delta, dict) and isinstance(delta.get("text"), str):
            parts.append(delta["text"])
    return "".join(parts)


def json_body(ex: Exchange) -> Any:
    """The answer's JSON (None if it is not JSON)."""
    try:
        return json.loads(ex.body)
    except ValueError:
        return None


def usage_seen(family: str, ex: Exchange) -> dict[str, int]:
    """The usage the client was told: the plain answer's, or a stream's last values."""
    seen: dict[str, int] = {}
    blobs = [json_body(ex)] if not ex.is_stream else [d for _, d in payloads(ex)]
    for blob in blobs:
        if not isinstance(blob, dict):
            continue
        for holder in (blob, blob.get("message")):
            usage = holder.get("usage") if isinstance(holder, dict) else None
            if isinstance(usage, dict):
                seen.update({k: v for k, v in usage.items() if isinstance(v, int)})
    return seen


def describe(ex: Exchange) -> str:
    """What came back, in a few words (a finding's ``observed``)."""
    if ex.status is None:
        return f"no answer ({ex.transport_error})"
    how = f"status {ex.status}"
    if ex.is_stream:
        how += f", {len(ex.events)} events"
        how += ", ending clean" if clean_end("openai", ex) or clean_end("anthropic", ex) \
            else ""
        if ex.transport_error:
            how += f", then {ex.transport_error}"
    return how


def evidence(ex: Exchange) -> str:
    """The answer's head, or a stream's last events."""
    if ex.is_stream and ex.events:
        return "\n".join(f"{e.type}: {e.data}" for e in ex.events[-4:])
    return ex.body[:600].decode("utf-8", "replace")


def family_error(family: str, ex: Exchange) -> str | None:
    """The error type of an answer in the family's envelope, None if it is not one."""
    from gateprobe.protocols import anthropic_messages, openai_chat

    parse = anthropic_messages.parse_error if family == "anthropic" else openai_chat.parse_error
    error = parse(json_body(ex))
    return error.type if error is not None else None


# -- the cases ---------------------------------------------------------------------------------
Check = Callable[[Probe], list[Finding]]


def relays_streams(p: Probe) -> None:
    """``Inconclusive`` unless the gateway relays an unscripted stream to a clean end: a
    gateway that fails every stream would pass the truncation case for nothing."""
    case = p.case("stream baseline", p.body(marker(), stream=True))
    ex = p.send(case)
    if not clean_end(p.family, ex):
        raise Inconclusive(f"the gateway does not relay an uncut upstream stream either "
                           f"({describe(ex)}: {evidence(ex)[:160]!r})")


def truncation(p: Probe) -> list[Finding]:
    """An upstream stream cut short (cleanly, or by a reset) never ends clean at the client."""
    relays_streams(p)
    out = []
    for action in ("cut", "reset"):
        mark = marker()
        p.upstream.script(mark, action=action, after_events=CUT_AFTER)
        case = p.case(f"upstream stream {action} after {CUT_AFTER} events",
                      p.body(mark, stream=True))
        ex = p.send(case)
        if len(p.upstream.received(mark)) > 1:
            continue  # retried: the retries case judges what the client saw
        if clean_end(p.family, ex):
            out.append(p.finding(
                "propagation.truncation", Severity.HIGH, case,
                "an error event, a reset, a non-2xx or an unterminated stream (the upstream "
                f"{'closed' if action == 'cut' else 'reset'} its stream before its end)",
                f"{describe(ex)}: the client sees a finished answer", evidence(ex)))
        elif action == "reset" and quiet_end(ex):
            out.append(p.finding(
                "propagation.truncation", Severity.MEDIUM, case,
                "an error the client can see (an error event, a reset, a non-2xx): the "
                "upstream failed mid-stream",
                f"{describe(ex)}: the stream just stops, as if the upstream had closed it (a "
                "client that does not require the terminator, the openai SDK among them, "
                "takes the partial text as the whole answer)", evidence(ex)))
    return out


def quiet_end(ex: Exchange) -> bool:
    """Whether a stream ended by a normal close, without a terminator or any error."""
    return ex.status is not None and ex.status < 300 and not ex.transport_error \
        and not has_error_event(ex)


def retry_after(p: Probe) -> list[Finding]:
    """An upstream 429 with ``Retry-After: N`` reaches the client with ``Retry-After`` >= N."""
    mark = marker()
    p.upstream.script(mark, action="error", status=429, retry_after=str(RETRY_AFTER_S))
    case = p.case("upstream 429 with Retry-After", p.body(mark, stream=False), status=429)
    ex = p.send(case)
    received = len(p.upstream.received(mark))
    if ex.status is not None and ex.status < 300 and received > 1:
        p.information.append(f"{p.path}: an upstream 429 was retried by the gateway "
                             f"({received} upstream requests) and served")
        return []
    if ex.status != 429:
        return [p.finding("propagation.retry_after", Severity.MEDIUM, case,
                          "429 (the upstream's status: the client must know to wait)",
                          describe(ex), evidence(ex))]
    value = ex.headers.get("retry-after", "")
    try:
        seconds = float(value)
    except ValueError:
        seconds = -1.0
    if seconds < RETRY_AFTER_S:
        return [p.finding("propagation.retry_after", Severity.MEDIUM, case,
                          f"Retry-After >= {RETRY_AFTER_S} (the upstream's)",
                          f"Retry-After {value!r}" if value else "no Retry-After",
                          evidence(ex))]
    return []


STATUS_MAP: tuple[tuple[int, frozenset[int]], ...] = (
    (529, frozenset({529, 503})), (503, frozenset({503})),
    (500, frozenset({500, 502, 503})))
"""Upstream status -> what the client may see."""


def status(p: Probe) -> list[Finding]:
    """Upstream 529/503/500 (and a timeout, when declared) keep their meaning, enveloped."""
    out = []
    for upstream_status, allowed in STATUS_MAP:
        mark = marker()
        p.upstream.script(mark, action="error", status=upstream_status, times=0)
        case = p.case(f"upstream {upstream_status}", p.body(mark, stream=False),
                      status=upstream_status)
        out += _judge_status(p, case, p.send(case), allowed, f"upstream {upstream_status}")
    timeout = p.target.propagation.timeout_s
    if timeout is not None:
        mark = marker()
        p.upstream.script(mark, delay_s=timeout + 3.0, times=0)
        case = p.case("upstream slower than the gateway's timeout",
                      p.body(mark, stream=False), status=504)
        started = time.monotonic()
        ex = p.send(case)
        out += _judge_status(p, case, ex, frozenset({504, 408}), "an upstream timeout")
        if time.monotonic() - started > timeout + 2.0 and ex.status is not None:
            out.append(p.finding("propagation.status", Severity.MEDIUM, case,
                                 f"an answer within the declared timeout of {timeout:g} s",
                                 f"answered after {time.monotonic() - started:.1f} s"))
    return out


def _judge_status(p: Probe, case: Case, ex: Exchange, allowed: frozenset[int],
                  what: str) -> list[Finding]:
    out = []
    if ex.status not in allowed:
        out.append(p.finding("propagation.status", Severity.MEDIUM, case,
                             f"{' or '.join(map(str, sorted(allowed, reverse=True)))} for "
                             f"{what}", describe(ex), evidence(ex)))
    if ex.status is not None and ex.status >= 400 and family_error(p.family, ex) is None:
        out.append(p.finding("propagation.status", Severity.MEDIUM, case,
                             f"the error in the {p.family} family's envelope, with its type",
                             f"status {ex.status} with a body in no family envelope",
                             evidence(ex)))
    return out


def key_isolation(p: Probe) -> list[Finding]:
    """The client's key stays at the gateway; the upstream's key never reaches the client."""
    mark = marker()
    case = p.case("key isolation", p.body(mark, stream=False))
    ex = p.send(case)
    records = p.upstream.received(mark)
    if not records:
        raise Inconclusive(f"the request never reached the upstream ({describe(ex)}): is the "
                           "gateway routing this model to it?")
    out = []
    client_key = p.target.api_key
    upstream_keys = {_presented_key(r["headers"]) for r in records} - {"", client_key}
    forwarded = [r for r in records if client_key in json.dumps(r["headers"]) + r["body"]]
    if forwarded and "forwards_client_key" not in p.target.propagation.documented:
        out.append(p.finding("propagation.key_isolation", Severity.HIGH, case,
                             "the gateway's own key upstream, never the client's",
                             "the client's key arrived at the upstream",
                             "upstream request headers: " + ", ".join(
                                 sorted(forwarded[0]["headers"]))))
    seen = json.dumps(dict(ex.headers)) + ex.body.decode("utf-8", "replace")
    for key in upstream_keys:
        if key in seen:
            out.append(p.finding("propagation.key_isolation", Severity.HIGH, case,
                                 "the upstream's key never in an answer to the client",
                                 "the key the gateway sends upstream reached the client",
                                 Redactor((*p.target.secrets, key)).text(seen[:600])))
    return out


def _presented_key(headers: dict[str, str]) -> str:
    auth = headers.get("authorization", "")
    return auth[7:].strip() if auth[:7].lower() == "bearer " else headers.get("x-api-key", "")


def header_leak(p: Probe) -> list[Finding]:
    """Headers the upstream adds for its own side (an internal URL) stay behind the gateway."""
    mark = marker()
    token = secrets.token_hex(8)
    p.upstream.script(mark, headers={UPSTREAM_ONLY: token,
                                     UPSTREAM_URL_HEADER: INTERNAL_URL + p.path})
    case = p.case("upstream-only headers", p.body(mark, stream=False))
    ex = p.send(case)
    if ex.status is None or ex.status >= 300:
        raise Inconclusive(f"the gateway did not serve the request ({describe(ex)})")
    leaked = [name for name in (UPSTREAM_ONLY, UPSTREAM_URL_HEADER) if name in ex.headers]
    text = json.dumps(dict(ex.headers)) + ex.body.decode("utf-8", "replace")
    if leaked or token in text or INTERNAL_URL in text:
        return [p.finding("propagation.header_leak", Severity.MEDIUM, case,
                          "no upstream-only header and no internal URL in the client's answer",
                          f"forwarded: {', '.join(leaked) or 'their values'}",
                          "; ".join(f"{k}: {ex.headers[k]}" for k in leaked))]
    return []


USAGE = {"openai": {"prompt_tokens": 321, "completion_tokens": 17, "total_tokens": 338},
         "anthropic": {"input_tokens": 321, "output_tokens": 17}}
"""The usage the upstream reports in the usage case (no tokenizer would give these)."""


def usage(p: Probe) -> list[Finding]:
    """The client is told the usage the upstream reported, plain and streamed."""
    out = []
    told = USAGE[p.family]
    for stream in (False, True):
        mark = marker()
        p.upstream.script(mark, usage=told)
        extra = {"stream_options": {"include_usage": True}} if stream and \
            p.family == "openai" else {}
        case = p.case(f"upstream usage ({'streamed' if stream else 'plain'})",
                      p.body(mark, stream=stream, **extra))
        ex = p.send(case)
        if ex.status is None or ex.status >= 300:
            if stream:  # the gateway's streams are the truncation case's baseline
                p.information.append(f"{p.path}: streamed usage not judged: the gateway "
                                     f"did not serve the stream ({describe(ex)})")
                continue
            raise Inconclusive(f"the gateway did not serve the request ({describe(ex)})")
        seen = usage_seen(p.family, ex)
        differ = {k: seen.get(k) for k, v in told.items() if seen.get(k) != v}
        if differ:
            out.append(p.finding("propagation.usage", Severity.HIGH, case,
                                 f"the upstream's usage {told}",
                                 f"the client was told {seen or 'no usage'}", evidence(ex)))
    return out


def params(p: Probe) -> list[Finding]:
    """What the client asked arrives upstream unchanged (or as the gateway declares)."""
    out = []
    for stream in (False, True):
        mark = marker()
        body = p.body(mark, stream=stream, **_asked(p.family, stream))
        case = p.case(f"parameters ({'streamed' if stream else 'plain'})", body)
        ex = p.send(case)
        records = p.upstream.received(mark)
        if not records:
            raise Inconclusive(f"the request never reached the upstream ({describe(ex)})")
        try:
            arrived = json.loads(records[0]["body"])
        except ValueError:
            arrived = {}
        fields = p.target.propagation.forwarded_params or tuple(body)
        changed = [name for name in fields if name in body and name != "model"
                   and arrived.get(name) != body[name]]
        if changed:
            out.append(p.finding(
                "propagation.params", Severity.MEDIUM, case,
                f"{', '.join(changed)} upstream as the client sent them",
                "; ".join(f"{n}: sent {json.dumps(body[n])[:80]}, arrived "
                          f"{json.dumps(arrived.get(n))[:80]}" for n in changed)))
    return out


def _asked(family: str, stream: bool) -> dict[str, Any]:
    from gateprobe.engine.cases import WEATHER_TOOL, anthropic_tools, openai_tools

    if family == "anthropic":
        return {"max_tokens": 7, "stop_sequences": ["zzz"], "temperature": 0.3,
                "tools": anthropic_tools(WEATHER_TOOL)}
    asked: dict[str, Any] = {"max_tokens": 7, "stop": ["zzz"], "temperature": 0.3,
                             "tools": openai_tools(WEATHER_TOOL)}
    if stream:
        asked["stream_options"] = {"include_usage": True}
    return asked


def cancel(p: Probe) -> list[Finding]:
    """A client that hangs up mid-stream closes the upstream request within N seconds."""
    within = p.target.propagation.cancel_within_s
    mark = marker()
    p.upstream.script(mark, action="hang", after_events=CUT_AFTER)
    case = p.case("client hangs up mid-stream", p.body(mark, stream=True))
    got = _read_then_close(p, case)
    deadline = time.monotonic() + within
    records = p.upstream.received(mark)
    while records and records[0]["disconnected_s"] is None and time.monotonic() < deadline:
        p.sleep(POLL_S)
        records = p.upstream.received(mark)
    if not records:
        raise Inconclusive(f"the request never reached the upstream ({got})")
    if records[0]["disconnected_s"] is None and records[0]["finished_s"] is None:
        return [p.finding("propagation.cancel", Severity.HIGH, case,
                          f"the upstream request closed within {within:g} s of the client's "
                          "(a generation nobody reads still costs)",
                          f"still open {within:g} s after the client left ({got})")]
    return []


def _read_then_close(p: Probe, case: Case) -> str:
    """Read a stream through the gateway until ``CUT_AFTER`` events (or a few seconds),
    then close the connection: a client that gave up."""
    headers = {**auth_headers(p.target, case), **p.target.headers}
    if p.family == "anthropic":
        headers.setdefault("anthropic-version", "2023-06-01")
    t = p.target.timeouts
    timeout = httpx.Timeout(connect=t.connect_s, read=min(t.first_byte_s, 10.0), write=t.idle_s,
                            pool=t.connect_s)
    events, parser = 0, SSEParser()
    try:
        with p.http.stream("POST", p.target.base_url + p.path, json=case.body, headers=headers,
                           timeout=timeout) as response:
            if response.status_code >= 300:
                return f"status {response.status_code}"
            for chunk in response.iter_bytes():
                events += len(parser.feed(chunk, time.perf_counter_ns()))
                if events >= CUT_AFTER:
                    break
    except httpx.HTTPError as exc:
        return f"{type(exc).__name__} after {events} events"
    return f"status 200, closed after {events} events"


def retries(p: Probe) -> list[Finding]:
    """A stream the gateway retried after partial output is not duplicated or spliced."""
    relays_streams(p)
    mark = marker()
    p.upstream.script(mark, action="reset", after_events=CUT_AFTER)
    case = p.case("upstream reset mid-stream (retried?)", p.body(mark, stream=True))
    ex = p.send(case)
    if len(p.upstream.received(mark)) < 2 or not clean_end(p.family, ex):
        return []  # not retried (the truncation case judges what the client saw)
    clean = replace(case, name="the same request, answered whole")
    whole = stream_text(p.send(clean))
    text = stream_text(ex)
    if text != whole:
        return [p.finding("propagation.retries", Severity.HIGH, case,
                          "the text of one whole answer after a retry",
                          "the client's text differs from one whole answer (duplicated or "
                          "spliced)", f"client: {text[:300]!r}\nwhole: {whole[:300]!r}")]
    return []


CASES: tuple[tuple[str, Check], ...] = (
    ("propagation.truncation", truncation), ("propagation.retry_after", retry_after),
    ("propagation.status", status), ("propagation.key_isolation", key_isolation),
    ("propagation.header_leak", header_leak), ("propagation.usage", usage),
    ("propagation.params", params), ("propagation.cancel", cancel),
    ("propagation.retries", retries))
"""The category, one case per check id, in this order."""


def run_case(p: Probe, check_id: str, check: Check) -> list[Finding]:
    """One case's findings, those of a documented deviation as information lines."""
    findings = check(p)
    if check_id in p.target.propagation.documented:
        p.information += [f"{f.endpoint}: {f.check_id} (documented deviation): expected "
                          f"{f.expected}; got {f.observed}" for f in findings]
        return []
    return findings


REQUESTS_PER_CASE = {"propagation.truncation": 3, "propagation.retry_after": 1,
                     "propagation.status": 4, "propagation.key_isolation": 1,
                     "propagation.header_leak": 1, "propagation.usage": 2,
                     "propagation.params": 2, "propagation.cancel": 1,
                     "propagation.retries": 3}
"""Requests each case sends to the gateway at most (``--dry-run`` counts them; the status
case's fourth only with a declared timeout)."""
