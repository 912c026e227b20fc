"""``gateprobe compare``: the same probes against every mirror of a gateway, side by side.

For each mirror, concurrently (one thread a mirror, requests sequential within it, so no mirror
is loaded harder than another):

1. reachability: an unreachable or TLS-broken mirror is a row with its reason, nothing more;
2. a conformance smoke over every endpoint the target serves (each one's plain request from the
   suite's own case builders, one golden case and one stream per endpoint, a bad key and an
   unknown model), judged by every registered check;
3. a latency sample: N streaming chat requests, timed by the one metric definition;
4. a long-request probe: one non-streaming request asked to run longer than ``--long-request-s``
   (sized from the mirror's own measured token rate), which shows a mirror that cuts long
   requests (the seeds document a CDN cutting at 100 s) and when.

The matrix shows each probe's verdict per mirror; the differences list what mirrors disagree
on: the checks' verdicts, status codes, the headers that matter (rate-limit headers, the
request-id header, content type) and the shape of normalized answers, each with every mirror's
answer side by side, the first event where streams part, and a ``curl`` per mirror to replay
the probe. The mirror taken as right is the one ``--reference`` names, or else a strict
majority (more than half of the reachable mirrors); with neither (two mirrors that differ, or a
tie) the mirrors are shown as differing and none is called the odd one.
"""

from __future__ import annotations

import difflib
import json
import math
import ssl
import threading
import time
from collections import Counter
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx

from gateprobe.core import transport
from gateprobe.core.checks import Context, Exchange, run_checks
from gateprobe.core.console import Console
from gateprobe.core.errors import INTERRUPTED_EXIT, GateprobeError, TargetUnreachable, UsageError
from gateprobe.core.events import ERROR, FAILED, PASSED, Phase, RunStarted, emit
from gateprobe.core.families import PATHS
from gateprobe.core.findings import Finding, Severity
from gateprobe.core.golden import normalize
from gateprobe.core.metrics import now_ns, percentile
from gateprobe.core.redact import Redactor
from gateprobe.core.sse import Event
from gateprobe.core.targets import ENDPOINTS, Target, check_base_url, check_reachable
from gateprobe.engine.cases import (
    Case,
    auth_cases,
    category_cases,
    endpoint_cases,
    error_cases,
    golden_cases,
    stream_cases,
)
from gateprobe.engine.probe import MAX_BODY_BYTES, client_for, curl_command, exchange_once, send
from gateprobe.engine.report import new_run_dir
from gateprobe.engine.report.folder import finish, handlers_for, utc_now
from gateprobe.engine.runstate import BREAKER_THRESHOLD, Breaker, RunState
from gateprobe.protocols.streams import StreamObserver

HEADERS_THAT_MATTER = ("content-type", "retry-after")
HEADER_FAMILIES = {"rate-limit headers": ("x-ratelimit-", "anthropic-ratelimit-"),
                   "request-id header": ("x-request-id", "request-id")}
ANSWER_CHARS = 200
"""How much of an answer a difference shows: enough to see what differs, short enough to sit
next to the other mirrors' answers."""


@dataclass(frozen=True, slots=True)
class CompareOptions:
    """How hard to probe each mirror, and where the report folder goes."""

    samples: int = 10
    """Streams of the latency sample, per mirror."""
    long_request_s: float = 120.0
    """How long the long-request probe asks to run (past a 100 s CDN limit by default);
    0 skips the probe."""
    max_tokens: int = 32
    """Of each stream of the latency sample."""
    max_long_tokens: int = 16_384
    """The most the long request may ask for, however fast the mirror (a mirror that answers
    in 0.1 ms a token would otherwise be asked for millions): what the dry run states too."""
    report_dir: Path | None = None
    """The report folder (None: a fresh ``reports/<time>-compare/``)."""
    reference: str | None = None
    """The mirror taken as right where mirrors differ (None: the majority)."""
    mirrors: Mapping[str, str] = field(default_factory=dict)
    """Mirror name -> base URL (empty: the target's own ``mirrors``, from its entry)."""

    def check(self) -> CompareOptions:
        """Itself, when every value can work (``UsageError`` otherwise)."""
        if self.samples < 1 or not self.long_request_s >= 0 or \
                not math.isfinite(self.long_request_s):
            raise UsageError("--samples must be >= 1 and --long-request-s >= 0 (0 skips the "
                             "long-request probe)")
        return self


@dataclass(slots=True)
class ProbeResult:
    """One probe (a case) against one mirror."""

    probe: str
    status: int | None
    findings: list[str]
    headers: dict[str, str]
    shape: Any
    answer: str = ""
    """A short, redacted text of what came back (``answer_text``)."""
    events: list[str] = field(default_factory=list)
    """A stream's events, each normalized and redacted (``event_text``): where two mirrors'
    streams part is shown from these."""
    curl: str = ""
    """A ``curl`` command that replays the probe against this mirror (the key as its
    variable)."""

    @property
    def verdict(self) -> str:
        """``pass``, or the failing check ids."""
        if self.status is None and not self.findings:
            return "no answer"
        return "pass" if not self.findings else "FAIL " + ", ".join(sorted(set(self.findings)))


@dataclass(slots=True)
class MirrorResult:
    """Everything measured on one mirror."""

    name: str
    base_url: str
    reason: str = ""
    """Why the mirror could not be probed ('' when it could)."""
    probes: list[ProbeResult] = field(default_factory=list)
    findings: list[Finding] = field(default_factory=list)
    """What the checks found in the smoke probes (``case``: the probe)."""
    ttft_ms: list[float] = field(default_factory=list)
    e2e_ms: list[float] = field(default_factory=list)
    tpot_ms: list[float] = field(default_factory=list)
    errors: int = 0
    timeouts: int = 0
    error_kinds: Counter[str] = field(default_factory=Counter)
    long_request: dict[str, Any] = field(default_factory=lambda: {"verdict": "not run"})

    @property
    def ok(self) -> bool:
        """Reachable, every check passed, no errors, no cut-off."""
        return not self.reason and not self.findings and not self.errors \
            and not self.timeouts and not self.long_request.get("cut")

    def latency(self) -> dict[str, Any]:
        """Percentiles of the latency sample."""
        def p(values: list[float], q: float) -> float | None:
            return None if not values else percentile(values, q)

        return {"ttft_p50_ms": p(self.ttft_ms, 50), "ttft_p95_ms": p(self.ttft_ms, 95),
                "e2e_p50_ms": p(self.e2e_ms, 50), "e2e_p95_ms": p(self.e2e_ms, 95),
                "tpot_p50_ms": p(self.tpot_ms, 50), "samples": len(self.ttft_ms),
                "errors": self.errors, "timeouts": self.timeouts,
                "error_kinds": dict(self.error_kinds)}

    def as_json(self) -> dict[str, Any]:
        """JSON form for the summary (TTFT samples kept for the report's CDF)."""
        return {"name": self.name, "base_url": self.base_url, "reason": self.reason,
                "ok": self.ok, "latency": self.latency(), "long_request": self.long_request,
                "probes": {r.probe: {"status": r.status, "verdict": r.verdict,
                                     "headers": r.headers} for r in self.probes},
                "ttft_samples": [round(v, 3) for v in self.ttft_ms]}


def compare_cases(target: Target) -> list[Case]:
    """Every endpoint the target serves, through the suite's own case builders (which send
    nothing outside them): each endpoint's plain request, one golden case and one stream per
    endpoint, a bad key, an unknown model. Driven by what the target declares, so no profile
    is compared on fewer endpoints than it serves. One plain request per opt-in family
    the target declares (images, speech, Midjourney...) too."""
    goldens: dict[str, Case] = {}
    for case in golden_cases(target):
        if case.golden is not None and not case.golden.stream:
            goldens.setdefault(case.path, case)
    streams: dict[str, Case] = {}
    for case in [*stream_cases(target), *category_cases("stream", target)]:  # opt-in too
        streams.setdefault(case.path, case)  # the first of each: the plain variant
    bad_key = [c for c in auth_cases(target) if c.name == "bad key"][:1]
    unknown = [c for c in error_cases(target) if c.name == "unknown model"][:1]
    return [*endpoint_cases(target), *goldens.values(), *streams.values(), *bad_key, *unknown,
            *_opt_in_probes(target)]


def answer_text(exchange: Exchange, redactor: Redactor) -> str:
    """What came back, in one short redacted line: the status and the normalized JSON body,
    or how a stream ended, or why nothing came back."""
    if exchange.status is None:
        text = f"no answer: {exchange.transport_error or exchange.transport_kind}"
    elif exchange.is_stream:  # how it ended is what streams differ in
        last = _compact(exchange.events[-1].data) if exchange.events else "none"
        text = f"{exchange.status}, {len(exchange.events)} events, the last: {last}"
    else:
        text = f"{exchange.status} {_compact(exchange.body.decode('utf-8', 'replace'))}"
    text = " ".join(redactor.text(text).split())
    return text if len(text) <= ANSWER_CHARS else text[:ANSWER_CHARS - 1] + "…"


EVENT_CHARS = 160
"""How much of one event a difference shows."""


def event_text(event: Event, redactor: Redactor) -> str:
    """One stream event in a short redacted line: its type (when named) and its data,
    normalized as answers are (ids and times replaced)."""
    data = _compact(event.data)
    text = " ".join(redactor.text(data if event.type == "message" else
                                  f"{event.type}: {data}").split())
    return text if len(text) <= EVENT_CHARS else text[:EVENT_CHARS - 1] + "…"


def _opt_in_probes(target: Target) -> list[Case]:
    """One plain request per opt-in family the target declares (Midjourney's imagine, each
    search proxy...): mirrors compared on those routes too."""
    first: dict[str, Case] = {}
    for case in category_cases("endpoint", target):
        path = case.path.split("?", 1)[0]
        family = next((p for p in ENDPOINTS.values() if path == p or path.startswith(p + "/")),
                      path)
        first.setdefault(family, case)
    return list(first.values())


def shape(value: Any) -> Any:
    """The structure of a JSON value: object keys with the shapes of their values, a list as
    the shape of its first item, a scalar as its type name."""
    if isinstance(value, dict):
        return {k: shape(v) for k, v in sorted(value.items())}
    if isinstance(value, list):
        return [shape(value[0])] if value else []
    return type(value).__name__


def _compact(text: str) -> str:
    """JSON normalized (ids and times replaced, so that only real differences remain) and
    without spaces; anything else as it is."""
    try:
        return json.dumps(normalize(json.loads(text)), ensure_ascii=False,
                          separators=(",", ":"))
    except ValueError:
        return text


def _headers_that_matter(headers: Mapping[str, str]) -> dict[str, str]:
    out = {name: headers[name].split(";")[0].strip() for name in HEADERS_THAT_MATTER
           if name in headers}
    for label, prefixes in HEADER_FAMILIES.items():
        names = sorted(n for n in headers if n.startswith(prefixes))
        out[label] = ", ".join(names) if names else "absent"
    return out


def _reason(exc: BaseException) -> str:
    """A one-line reason a mirror is unusable: TLS problems named as such."""
    text = str(exc)
    for e in (exc, exc.__cause__, exc.__context__):
        if isinstance(e, ssl.SSLError) or "SSL" in type(e).__name__ or "CERTIFICATE" in \
                str(e).upper():
            return f"TLS: {str(e)[:200]}"
    return text[:300]


def probe_mirror(name: str, target: Target, options: CompareOptions,
                 stop: threading.Event | None = None,
                 upstream_url: str | None = None) -> MirrorResult:
    """Every probe against one mirror (never raises: problems become the row's reason).
    Once ``stop`` is set (Ctrl-C), no further request is sent."""
    stop = stop or threading.Event()
    import gateprobe.protocols.conformance  # noqa: F401  (registers the built-in checks)

    result = MirrorResult(name, target.base_url)
    redactor = Redactor(target.secrets)
    try:
        check_reachable(target.base_url)
    except GateprobeError as exc:
        result.reason = redactor.text(str(exc))
        return result
    try:
        with client_for(target) as client:
            _smoke(client, target, redactor, result, stop)
            _latency(client, target, options, redactor, result, stop)
            if upstream_url and not stop.is_set():
                _propagation(client, target, upstream_url, result)
            if not options.long_request_s:
                result.long_request = {"cut": False, "verdict": "not run: --long-request-s 0"}
            elif not stop.is_set():
                result.long_request = _long_request(client, target, options, result)
    except (httpx.HTTPError, ssl.SSLError, OSError) as exc:
        result.reason = redactor.text(_reason(exc))
    return result


def _propagation(client: httpx.Client, target: Target, upstream_url: str,
                 result: MirrorResult) -> None:
    """The propagation category through this mirror (the target declares its upstream):
    one row per check, an inconclusive case named as such."""
    from gateprobe.engine.propagation import CASES, Inconclusive, Probe, UpstreamControl, run_case

    probe = Probe(client, target, UpstreamControl(client, upstream_url))
    for check_id, check in CASES:
        try:
            findings, answer = run_case(probe, check_id, check), ""
        except Inconclusive as exc:
            findings, answer = [], f"inconclusive: {exc}"
        result.probes.append(ProbeResult(f"propagation: {check_id}", 0 if not answer
                                         else None, [f.check_id for f in findings], {}, None,
                                         answer or "; ".join(f.observed for f in findings),
                                         curl=findings[0].repro if findings else ""))
        result.findings += findings


def _smoke(client: httpx.Client, target: Target, redactor: Redactor,
           result: MirrorResult, stop: threading.Event) -> None:
    # One run state per mirror: its breaker stops a hanging mirror's cases after three
    # timeouts, and its ids are compared across this mirror's answers only.
    state = RunState()
    for case in compare_cases(target):
        if stop.is_set():
            return
        exchange = send(client, target, case, state)
        ctx = Context.of(target, case.family, case.expect, state.seen_ids)
        findings = run_checks(ctx, exchange)
        label = f"{case.category}: {case.name} ({case.path})"
        body_shape: Any = None
        if exchange.status is not None and exchange.content_type == "application/json":
            try:
                body_shape = shape(normalize(json.loads(exchange.body)))
            except ValueError:
                body_shape = "not JSON"
        elif exchange.is_stream:
            body_shape = [e.type for e in exchange.events][:1] + \
                sorted({e.type for e in exchange.events})
        result.probes.append(ProbeResult(
            label, exchange.status, [f.check_id for f in findings],
            _headers_that_matter(exchange.headers), body_shape, answer_text(exchange, redactor),
            [event_text(e, redactor) for e in exchange.events], curl_command(target, case)))
        result.findings += [replace(f, case=f.case or label) for f in findings]


LONG_PROMPT = "Write a story of at least {tokens} words."


def _latency(client: httpx.Client, target: Target, options: CompareOptions, redactor: Redactor,
             result: MirrorResult, stop: threading.Event) -> None:
    """``samples`` streams through the one bounded exchange, each timed as it arrives by a
    ``StreamObserver`` (the one metric definition); a broken stream is counted by its kind."""
    body = {"model": target.models["chat"], "stream": True, "max_tokens": options.max_tokens,
            "stream_options": {"include_usage": True},
            "messages": [{"role": "user", "content": "Write a short paragraph about the sea."}]}
    case = Case("latency sample", "stream", "POST", PATHS["chat"], "openai", body)
    breaker = Breaker()  # this sample's own: three timeouts and the mirror gets no more
    for _ in range(options.samples):
        if result.timeouts >= BREAKER_THRESHOLD or stop.is_set():
            break  # a mirror that hangs gets no more of our time
        start = now_ns()
        observer = StreamObserver(PATHS["chat"], body, start, redact=redactor.text)
        exchange = exchange_once(client, target, case, breaker, observer.feed)
        m = observer.finish(now_ns())
        kind = exchange.transport_kind if exchange.transport_error else \
            f"status {exchange.status}" if exchange.status != 200 else \
            observer.findings[0].check_id if observer.findings else ""
        if kind:
            result.error_kinds[kind] += 1
            if kind.endswith("timeout"):
                result.timeouts += 1
            else:
                result.errors += 1  # a broken stream is an error; its timing is still true
        if m.ttft_ms is None:
            continue
        result.ttft_ms.append(m.ttft_ms)
        if m.e2e_ms is not None:
            result.e2e_ms.append(m.e2e_ms)
        if m.tpot_ms is not None:
            result.tpot_ms.append(m.tpot_ms)


def _long_request(client: httpx.Client, target: Target, options: CompareOptions,
                  result: MirrorResult) -> dict[str, Any]:
    """A non-streaming request sized to run ``long_request_s`` x 1.5, from this mirror's own
    measured TTFT and TPOT (100 tokens/s when it measured none, so that it still runs long
    enough on a fast model), sent through the one bounded exchange with its first-byte, idle
    and total timeouts widened to what the probe may take."""
    wanted = options.long_request_s
    if result.timeouts >= BREAKER_THRESHOLD:
        return {"cut": False, "verdict": "not run: this mirror's streams timed out"}
    ttft_s = (percentile(result.ttft_ms, 50) if result.ttft_ms else 0.0) / 1000
    tpot_s = (percentile(result.tpot_ms, 50) if result.tpot_ms else 10.0) / 1000
    tokens = min(options.max_long_tokens - 64,
                 max(16, math.ceil((wanted * 1.5 - ttft_s) / max(tpot_s, 1e-4))))
    body = {"model": target.models["chat"], "max_tokens": tokens + 64,
            "messages": [{"role": "user", "content": LONG_PROMPT.format(tokens=tokens)}]}
    limit = wanted * 1.5 + target.timeouts.idle_s
    long_target = replace(target, timeouts=replace(target.timeouts, first_byte_s=limit,
                                                   idle_s=limit, total_s=limit))
    start = time.monotonic()
    exchange = exchange_once(client, long_target, Case(
        "long request", "endpoint", "POST", PATHS["chat"], "openai", body))
    elapsed = time.monotonic() - start
    out: dict[str, Any] = {"asked_tokens": tokens, "probe_s": wanted, "cut": False}
    if exchange.status is not None:
        out.update(status=exchange.status, elapsed_s=round(elapsed, 3),
                   content_type=exchange.content_type)
    out["verdict"] = _long_verdict(exchange, elapsed, wanted, limit)
    out["cut"] = out["verdict"].startswith("cut")
    if out["cut"] and exchange.status is None:
        out["elapsed_s"] = round(elapsed, 3)
    return out


def _long_verdict(exchange: Exchange, elapsed: float, wanted: float, limit: float) -> str:
    """What the long request's answer says: ``cut ...`` only for an answer that ended early
    in a way no refusal explains (a 5xx, or the connection dropped)."""
    kind, status = exchange.transport_kind, exchange.status
    if kind == transport.TOO_LARGE and exchange.transport_error:
        return f"body over {MAX_BODY_BYTES} bytes: stopped reading"
    if exchange.transport_error and kind in (transport.TOTAL_TIMEOUT,
                                             transport.STREAM_TOTAL_TIMEOUT):
        return f"still sending after {limit:g} s: stopped reading"
    if exchange.transport_error and kind.endswith("timeout"):
        return f"no answer within {limit:g} s"
    if status is None:
        return f"cut after {elapsed:.1f} s ({exchange.transport_error or kind})"
    if status == 200:
        return f"ok: answered after {elapsed:.1f} s" if elapsed >= wanted else \
            f"inconclusive: answered in {elapsed:.1f} s (< {wanted:g} s)"
    if status < 500:
        # A refusal (the model's token limit, the key's quota, a 429) is not a cut: the
        # probe asked for something this mirror does not serve, so it says nothing.
        return f"inconclusive: refused with status {status} after {elapsed:.1f} s"
    return f"cut after {elapsed:.1f} s (status {status})" if elapsed < wanted * 1.5 else \
        f"status {status} after {elapsed:.1f} s"


class MirrorsInterrupted(KeyboardInterrupt):
    """Ctrl-C during a comparison, carrying the mirrors whose probes had all finished."""

    def __init__(self, results: Sequence[MirrorResult]) -> None:
        super().__init__()
        self.results = list(results)


def compare(mirrors: Mapping[str, str], base: Target,
            options: CompareOptions) -> list[MirrorResult]:
    """Probe every mirror concurrently; results in the order given. On Ctrl-C every mirror
    stops before its next request and ``MirrorsInterrupted`` carries those that finished."""
    stop = threading.Event()
    with ExitStack() as stack:
        upstream_url = None
        if base.upstream is not None:  # one upstream for every mirror: markers tell apart
            from gateprobe.engine.embedded import upstream_for

            upstream_url = stack.enter_context(upstream_for(base))
        return _compare_mirrors(mirrors, base, options, stop, upstream_url)


def _compare_mirrors(mirrors: Mapping[str, str], base: Target, options: CompareOptions,
                     stop: threading.Event, upstream_url: str | None) -> list[MirrorResult]:
    pool = ThreadPoolExecutor(max_workers=max(1, len(mirrors)))
    futures = [pool.submit(probe_mirror, name, replace(base, base_url=url), options, stop,
                           upstream_url) for name, url in mirrors.items()]
    try:
        return [f.result() for f in futures]
    except KeyboardInterrupt:
        stop.set()
        raise MirrorsInterrupted([f.result() for f in futures if f.done()
                                  and not f.exception()]) from None
    finally:
        pool.shutdown(wait=not stop.is_set(), cancel_futures=True)


def matrix(results: Sequence[MirrorResult]) -> dict[str, dict[str, str]]:
    """Probe -> mirror -> verdict, plus the long-request row."""
    rows: dict[str, dict[str, str]] = {}
    for r in results:
        for p in r.probes:
            rows.setdefault(p.probe, {})[r.name] = p.verdict
    for r in results:
        rows.setdefault("long request", {})[r.name] = r.reason and "unreachable" or \
            r.long_request["verdict"]
    return rows


def differences(results: Sequence[MirrorResult],
                reference: str | None = None) -> list[dict[str, Any]]:
    """What reachable mirrors disagree on, probe by probe. Each difference carries every
    mirror's value, answer (``answers``) and ``curl`` repro (``curls``), for a stream the
    event where the answers part (``first_event``), the mirror taken as right
    (``reference``: the one named, when it was reachable, else '') and the mirrors that
    differ from what is taken as right (``odd``: the reference's value, else a strict
    majority's; empty when there is neither, so that of two mirrors that differ neither is
    called the odd one)."""
    live = [r for r in results if not r.reason]
    right = reference if reference in {r.name for r in live} else None
    out: list[dict[str, Any]] = []
    for probe in dict.fromkeys(p.probe for r in live for p in r.probes):
        present = {r.name: p for r in live for p in r.probes if p.probe == probe}
        found: list[tuple[str, dict[str, str]]] = [
            ("checks", {n: p.verdict for n, p in present.items()}),
            ("status", {n: str(p.status) for n, p in present.items()})]
        for header in sorted({h for p in present.values() for h in p.headers}):
            found.append((f"header {header}",
                          {n: p.headers.get(header, "absent") for n, p in present.items()}))
        shapes = {n: repr(p.shape) for n, p in present.items()}
        if len(set(shapes.values())) > 1:
            found.append(("answer shape", _shape_values(present, shapes, right)))
        for what, values in found:
            if len(set(values.values())) > 1:
                out.append(_difference(what, probe, values, present, right, shapes))
    return out


def _right_value(values: Mapping[str, str], reference: str | None) -> str | None:
    """The value taken as right: the reference mirror's, or a strict majority's (more than
    half of the mirrors give it); None when there is neither (never a coin toss)."""
    if reference is not None:
        return values[reference]
    value, count = Counter(values.values()).most_common(1)[0]
    return value if count * 2 > len(values) else None


def _shape_values(present: Mapping[str, ProbeResult], shapes: Mapping[str, str],
                  reference: str | None) -> dict[str, str]:
    """Each mirror's answer shape in words: how it differs from the shape taken as right, or,
    with none taken as right, from the first other shape among the mirrors."""
    base = _right_value(shapes, reference)
    if base is not None:
        mine = next(p.shape for n, p in present.items() if shapes[n] == base)
        return {n: _shape_delta(p.shape, mine, reference) for n, p in present.items()}
    groups = {shapes[n]: p.shape for n, p in present.items()}
    first, second = list(groups)[:2]
    return {n: _shape_delta(p.shape, groups[second if shapes[n] == first else first], None)
            for n, p in present.items()}


def _difference(what: str, probe: str, values: Mapping[str, str],
                present: Mapping[str, ProbeResult], reference: str | None,
                shapes: Mapping[str, str]) -> dict[str, Any]:
    if what == "answer shape":  # the values are already relative to what is taken as right
        right = _right_value(shapes, reference)
        odd = [] if right is None else [n for n in values if shapes[n] != right]
    else:
        right = _right_value(values, reference)
        odd = [] if right is None else [n for n, v in values.items() if v != right]
    out = {"what": what, "probe": probe, "values": dict(values), "reference": reference or "",
           "odd": odd, "majority": reference is None and right is not None,
           "answers": {n: p.answer for n, p in present.items()},
           "curls": {n: p.curl for n, p in present.items()}}
    first = first_differing_event({n: p.events for n, p in present.items()})
    if first:
        out["first_event"] = first
    return out


def first_differing_event(streams: Mapping[str, Sequence[str]]) -> dict[str, str]:
    """Every mirror's event at the first position where the streams part ('#N: text', or
    that the stream had ended); empty when no mirror streamed or all streams are alike.
    Events are compared as ``event_text`` wrote them: normalized, so ids and times never
    count as a difference."""
    if not any(streams.values()) or len({tuple(e) for e in streams.values()}) == 1:
        return {}
    longest = max(len(e) for e in streams.values())
    at = next(i for i in range(longest)
              if len({e[i] if i < len(e) else None for e in streams.values()}) > 1)
    return {n: f"#{at + 1}: {e[at]}" if at < len(e) else
            f"#{at + 1}: none (the stream ended after {len(e)} events)"
            for n, e in streams.items()}


def _shape_delta(mine: Any, theirs: Any, reference: str | None) -> str:
    """A short description of how this shape differs from the one taken as right."""
    if repr(mine) == repr(theirs):
        return "as the reference" if reference else "as most"
    if isinstance(mine, dict) and isinstance(theirs, dict):
        missing = sorted(set(theirs) - set(mine))
        extra = sorted(set(mine) - set(theirs))
        changed = sorted(k for k in set(mine) & set(theirs) if mine[k] != theirs[k])
        parts = [f"missing {', '.join(missing)}" if missing else "",
                 f"extra {', '.join(extra)}" if extra else "",
                 f"differs in {', '.join(changed)}" if changed else ""]
        return "; ".join(p for p in parts if p) or "differs"
    return _shape_words(mine)


def _shape_words(value: Any) -> str:
    """A shape in words (never a Python repr): ``object with a, b``, ``list of str``."""
    if isinstance(value, dict):
        return "object with " + ", ".join(value) if value else "empty object"
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return "events " + ", ".join(value) if value else "empty list"  # a stream's types
    if isinstance(value, list):
        return "list of " + _shape_words(value[0])
    return "nothing" if value is None else str(value)


def mirror_names(urls: Sequence[str]) -> dict[str, str]:
    """Names for mirrors given as bare URLs: the host (and port), made unique."""
    out: dict[str, str] = {}
    for url in urls:
        parts = urlsplit(url)
        name = parts.netloc or url
        n, unique = 1, name
        while unique in out:
            n += 1
            unique = f"{name}#{n}"
        out[unique] = url
    return out


def markdown_rows(results: Sequence[MirrorResult],
                  diffs: Sequence[Mapping[str, Any]] = ()) -> list[str]:
    """The per-mirror table for ``summary.md``, then the differences with every mirror's
    answer side by side."""
    lines = ["| mirror | reachable | checks | TTFT p50 / p95 (ms) | e2e p95 (ms) | errors | "
             "long request |", "| --- | --- | --- | --- | --- | --- | --- |"]
    for r in results:
        lat = r.latency()

        def ms(v: float | None) -> str:
            return "-" if v is None else f"{v:.0f}"

        checks = "-" if r.reason else ("pass" if not r.findings else
                                       f"{len(r.findings)} findings")
        lines.append(f"| {r.name} | {r.reason or 'yes'} | {checks} | "
                     f"{ms(lat['ttft_p50_ms'])} / {ms(lat['ttft_p95_ms'])} | "
                     f"{ms(lat['e2e_p95_ms'])} | {r.errors + r.timeouts} | "
                     f"{r.long_request['verdict']} |")
    return lines + _markdown_differences([r.name for r in results], diffs)


def _markdown_differences(names: Sequence[str],
                          diffs: Sequence[Mapping[str, Any]]) -> list[str]:
    """One row per difference, a column per mirror (its value, its answer, for a stream the
    first event where the answers part), then each probe's ``curl`` per mirror."""
    if not diffs:
        return []

    def cell(text: str) -> str:
        return text.replace("|", "\\|").replace("`", "'")

    reference = diffs[0].get("reference") or ""
    lines = ["", f"Differences (taken as right: {taken_as_right(diffs)}):", "",
             "| difference | probe | " + " | ".join(
                 f"{n} (reference)" if n == reference else n for n in names) +
             " | odd one out |",
             "| --- | --- | " + " | ".join("---" for _ in names) + " | --- |"]
    for d in diffs:
        cells = [f"{cell(d['values'].get(n, '-'))}<br>`{cell(d['answers'].get(n, ''))}`" +
                 (f"<br>first differing event `{cell(d['first_event'][n])}`"
                  if n in d.get("first_event", {}) else "")
                 if n in d["values"] else "-" for n in names]
        lines.append(f"| {cell(d['what'])} | {cell(d['probe'])} | " + " | ".join(cells) +
                     f" | {cell(odd_cell(d))} |")
    lines += ["", "Repro of each probe that differs, per mirror:", ""]
    for probe in dict.fromkeys(d["probe"] for d in diffs):
        curls = next(d["curls"] for d in diffs if d["probe"] == probe)
        lines += [f"- {probe}, on {n}: `{curl}`" for n, curl in curls.items()]
    return lines


@dataclass(frozen=True, slots=True)
class CompareResult:
    """What a comparison found, as ``run_compare`` returns it."""

    exit_code: int
    """0 every mirror ok, 1 a mirror failed or was unreachable, 3 none was reachable."""
    mirrors: list[MirrorResult]
    """One a mirror, in the order given."""
    phases: list[Phase]
    """One a mirror (``mirror NAME``), as the summary lists them."""
    run_dir: Path
    """The report folder."""


def checked_mirrors(mirrors: Mapping[str, str]) -> dict[str, str]:
    """The mirrors, each an http(s) URL without a trailing slash, at least one
    (``UsageError`` otherwise)."""
    if not mirrors:
        raise UsageError("compare needs at least one mirror")
    return {name: check_base_url(url) for name, url in mirrors.items()}


def dry_run(base: Target, mirrors: Mapping[str, str], options: CompareOptions,
            console: Console) -> int:
    """What ``run_compare`` would send to each mirror, sending nothing; the exit code (0)."""
    from gateprobe.engine import dryrun

    options.check()
    return dryrun.compare(checked_mirrors(mirrors), len(compare_cases(base)), options.samples,
                          options.long_request_s, options.max_tokens, console,
                          options.max_long_tokens)


def _compare_args_of_0_1(mirrors: Any, options: Any,
                         rest: tuple[Any, ...]) -> tuple[CompareOptions, Console | None]:
    """``(options, console)`` of a call in the 0.1 shape ``(base, mirrors, options,
    console)``."""
    import warnings

    warnings.warn("run_compare(base, mirrors, options, console) is deprecated: use "
                  "run_compare(target, CompareOptions(mirrors=...), console=None)",
                  DeprecationWarning, stacklevel=3)
    return replace(options, mirrors=dict(mirrors)), (rest[0] if rest else None)


def run_compare(target: Target, options: CompareOptions, console: Console | None = None,
                *deprecated: Any) -> CompareResult:
    """Probe every mirror (``target`` with each mirror's URL: ``options.mirrors``, else the
    target's own), print the matrix, the latencies and the differences, write the report
    folder; an unreachable mirror is a row with its reason, never an exception.

    The 0.1 shape ``run_compare(base, mirrors, options, console)`` still works, with a
    ``DeprecationWarning``."""
    if not isinstance(options, CompareOptions):
        options, console = _compare_args_of_0_1(options, console, deprecated)
    console = console or Console()
    base = target
    options.check()
    mirrors = checked_mirrors(options.mirrors or target.mirrors)
    check_reference(options.reference, mirrors)
    run_dir = new_run_dir("compare", explicit=options.report_dir)
    long = f"a {options.long_request_s:g} s long-request probe" if options.long_request_s \
        else "no long-request probe"
    console.line(f"gateprobe compare: {len(mirrors)} mirrors, {options.samples} streams and "
                 f"{long} each; report folder {run_dir}")
    described = {**base.describe(), "base_url": ", ".join(mirrors.values())}
    handlers = handlers_for(run_dir, Redactor(base.secrets), console)
    emit(handlers, RunStarted("compare", described, str(run_dir),
                              tuple(f"mirror {name}" for name in mirrors)))
    started, t0 = utc_now(), time.monotonic()
    try:
        results = compare(mirrors, base, options)
    except MirrorsInterrupted as stopped:  # the mirrors that finished are the report
        finish("compare", described, [mirror_phase(r, options) for r in stopped.results],
               started, t0, INTERRUPTED_EXIT, handlers, _extra(stopped.results, options))
        raise
    rows, diffs = matrix(results), differences(results, options.reference)
    print_comparison(results, rows, diffs, console)
    phases = [mirror_phase(r, options) for r in results]
    code = exit_code_of(results)
    finish("compare", described, phases, started, t0, code, handlers, _extra(results, options))
    if code == TargetUnreachable.exit_code:
        console.error("no mirror could be reached: " + "; ".join(
            f"{r.name}: {r.reason}" for r in results))
    return CompareResult(code, results, phases, run_dir)


def _extra(results: Sequence[MirrorResult], options: CompareOptions) -> dict[str, Any]:
    """The summary's ``compare`` section."""
    rows, diffs = matrix(results), differences(results, options.reference)
    return {"compare": {"mirrors": [r.as_json() for r in results], "matrix": rows,
                        "differences": diffs, "markdown": markdown_rows(results, diffs),
                        "reference": options.reference or "",
                        "options": {"samples": options.samples,
                                    "long_request_s": options.long_request_s}}}


def check_reference(reference: str | None, mirrors: Mapping[str, str]) -> None:
    """A ``--reference`` must name one of the mirrors (``UsageError`` with a did-you-mean)."""
    if reference is None or reference in mirrors:
        return
    close = difflib.get_close_matches(reference, list(mirrors), n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    raise UsageError(f"--reference {reference!r} is not one of the mirrors{hint}; mirrors: "
                     + ", ".join(mirrors))


def exit_code_of(results: Sequence[MirrorResult]) -> int:
    """3 when no mirror was reachable, else 0 when every mirror is ok, else 1."""
    if all(r.reason for r in results):
        return TargetUnreachable.exit_code
    return 0 if all(r.ok for r in results) else 1


def print_comparison(results: Sequence[MirrorResult], rows: Mapping[str, Mapping[str, str]],
                     diffs: Sequence[Mapping[str, Any]], console: Console) -> None:
    """The matrix, each mirror's latency, and the differences with every mirror's answer
    side by side; no cell is cut short (a CI log has no width to fit)."""
    names = [r.name for r in results]
    console.table(["probe", *names], [[probe, *(cells.get(n, "-") for n in names)]
                                      for probe, cells in rows.items()])
    console.line("")
    console.table(["mirror", "reachable", "TTFT p50", "TTFT p95", "e2e p50", "e2e p95",
                   "errors", "timeouts"], [_latency_row(r) for r in results])
    console.line("")
    if diffs:
        _print_differences(names, diffs, console)
    elif sum(not r.reason for r in results) > 1:
        console.line("no differences between the reachable mirrors")


def taken_as_right(diffs: Sequence[Mapping[str, Any]]) -> str:
    """What the differences are judged against, in words."""
    reference = diffs[0].get("reference") or "" if diffs else ""
    return reference or "a strict majority of the mirrors where there is one, else none"


def odd_cell(d: Mapping[str, Any]) -> str:
    """Who differs from what is taken as right, or why nobody is called the odd one."""
    return ", ".join(d["odd"]) if d["odd"] else "none: no reference and no strict majority"


def _print_differences(names: Sequence[str], diffs: Sequence[Mapping[str, Any]],
                       console: Console) -> None:
    reference = diffs[0].get("reference") or ""
    live = [n for n in names if n in diffs[0]["values"]]
    console.line(f"differences (taken as right: {taken_as_right(diffs)}):")
    console.table(["difference", "probe", *(f"{n} (reference)" if n == reference else n
                                            for n in live), "odd one out"],
                  [[d["what"], d["probe"], *(d["values"].get(n, "-") for n in live),
                    odd_cell(d)] for d in diffs])
    for probe in dict.fromkeys(d["probe"] for d in diffs):
        first = next(d for d in diffs if d["probe"] == probe)
        console.line("")
        columns = ["mirror", f"answer to {probe}"] + \
            (["first differing event"] if "first_event" in first else [])
        console.table(columns, [[f"{n} (reference)" if n == reference else n,
                                 first["answers"].get(n, "-"),
                                 *([first["first_event"].get(n, "-")]
                                   if "first_event" in first else [])] for n in live])
        for n in live:
            console.line(f"repro on {n}: {first['curls'].get(n, '-')}")


def _latency_row(r: MirrorResult) -> list[str]:
    lat = r.latency()
    return [r.name, r.reason or "yes",
            *("-" if v is None else f"{v:.1f}" for v in (
                lat["ttft_p50_ms"], lat["ttft_p95_ms"], lat["e2e_p50_ms"], lat["e2e_p95_ms"])),
            str(r.errors), str(r.timeouts)]


def mirror_phase(r: MirrorResult, options: CompareOptions) -> Phase:
    """One mirror as a phase of the summary: its check findings, then a finding for a cut
    long request and one for each kind of broken stream in the latency sample."""
    reason = r.reason or "; ".join(filter(None, [
        ", ".join(sorted({f.check_id for f in r.findings})),
        f"{r.errors} stream errors" if r.errors else "",
        f"{r.timeouts} timeouts" if r.timeouts else "",
        f"long request: {r.long_request['verdict']}"]))
    findings = list(r.findings)
    if r.long_request.get("cut"):
        findings.append(Finding("mirror.long_request_cut", PATHS["chat"],
                                Severity.HIGH, f"a non-streaming answer after "
                                f"{options.long_request_s:g} s", r.long_request["verdict"],
                                case="long request"))
    for kind, count in sorted(r.error_kinds.items()):
        findings.append(Finding(kind if "." in kind else "response.status",
                                PATHS["chat"], Severity.HIGH,
                                "every sampled stream completes",
                                f"{count} of the latency sample's streams: {kind}",
                                case="latency sample"))
    status = ERROR if r.reason else PASSED if r.ok else FAILED
    return Phase(f"mirror {r.name}", status, reason, "", r.as_json(), findings)
