"""The checks registry: conformance checks as plain functions with stable ids.

A check looks at one ``Exchange`` (a request and what came back) in a ``Context`` (the target's
conventions and what this request is expected to get) and returns findings, or ``NOT_APPLICABLE``
when the exchange is none of its business. Every runner (the pytest suite, the schemathesis
adapter, ``compare``) runs checks through ``run_checks``, so a check is written once.

Registering::

    @check("error.envelope", Severity.HIGH, "error bodies use the family's envelope")
    def error_envelope(ctx: Context, ex: Exchange) -> CheckResult: ...

A check whose findings carry other ids (the stream grammars report ``stream.order``,
``stream.terminator``...) declares them with ``emits=``; ``select`` accepts either kind of id.
A check that raises becomes a ``check.crashed`` finding, never a crashed run.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Final, Literal
from urllib.parse import urlsplit

from gateprobe.core.findings import Finding, Severity
from gateprobe.core.redact import Redactor
from gateprobe.core.sse import Event, Note
from gateprobe.core.targets import Target

Family = Literal["openai", "anthropic", "gateway"]
"""A route's protocol family; ``gateway``: the seeds' gateway's own APIs (Midjourney, search),
whose envelope is its own on every target."""


class _NotApplicable:
    """The explicit outcome of a check that has nothing to say about an exchange."""

    def __repr__(self) -> str:
        return "NOT_APPLICABLE"


NOT_APPLICABLE: Final = _NotApplicable()

CheckResult = Iterable[Finding] | _NotApplicable


@dataclass(frozen=True, slots=True)
class Exchange:
    """One request and everything that came back for it."""

    endpoint: str
    """The path, e.g. ``/v1/messages``."""
    method: str
    request: Any
    """The JSON body sent (None for GET), or raw bytes for deliberately malformed bodies."""
    status: int | None
    """None when no response arrived (``transport_error`` says why)."""
    headers: Mapping[str, str] = field(default_factory=dict)
    """Response headers, names lower-cased."""
    body: bytes = b""
    events: Sequence[Event] = ()
    """Parsed SSE events when the response was a stream."""
    notes: Sequence[Note] = ()
    """The SSE parser's notes on the stream's framing."""
    transport_error: str | None = None
    transport_kind: str = "transport.error"
    """What happened to the connection (``gateprobe.core.transport``), when ``transport_error``."""
    sent_key: str = field(default="", repr=False)
    """The key the request carried, whatever it was (a deliberately invalid one too): no
    answer may quote it whole."""

    @property
    def content_type(self) -> str:
        """The media type, without parameters."""
        return self.headers.get("content-type", "").split(";")[0].strip().lower()

    @property
    def is_stream(self) -> bool:
        """Whether the answer was an event stream."""
        return self.content_type == "text/event-stream"


@dataclass(frozen=True, slots=True)
class Expectation:
    """What a conformant gateway answers to this particular request."""

    status: int | None = None
    """The expected status; None when any 2xx will do."""
    statuses: tuple[int, ...] = ()
    """Alternatives accepted instead of ``status`` (e.g. 401 or 403 for a missing permission)."""
    kind: str = ""
    """What the case is about: ``bad_key``, ``missing_key``, ``wrong_auth_style``,
    ``no_permission``, ``legacy_prompt_invalid``, ``legacy_prompt_valid``, ``bad_input``..."""
    stream_body: Mapping[str, Any] | None = None
    """For streams: the request body the grammar is chosen by."""
    anthropic_version: str = "2023-06-01"
    has_golden: bool = False
    golden: Any = None
    """The normalized answer (``gateprobe.core.golden``) a good gateway gives, when ``has_golden``."""


@dataclass(frozen=True, slots=True)
class Context:
    """The target's conventions and what this exchange should get."""

    family: Family
    profile: str
    redactor: Redactor = field(default_factory=Redactor)
    expect: Expectation = field(default_factory=Expectation)
    secrets: tuple[str, ...] = ()
    """The keys in use; a check looks for them in answers (``security.key_echoed``)."""
    target_host: str = ""
    """The host the run talks to: an address of its own is not an internal one leaking."""
    seen_ids: set[str] | None = None
    """The answer ids of the run so far (``response.id`` adds to it), None to not compare."""
    input_tokens: dict[str, tuple[int, bool]] | None = None
    """Input -> (input tokens billed, streamed?) so far in the run: a stream and a plain
    request of the same input must bill the same input (``usage.stream_consistency``)."""
    strict: bool = False
    """The target is held to the upstream API's letter (``strictness: strict-upstream``)."""
    envelopes: frozenset[str] = frozenset({"family"})
    """The error envelopes the target answers in (``Target.envelopes``)."""
    target_port: int | None = None
    """The port the run talks to (with ``target_host``: the target's own address)."""
    information: list[str] | None = None
    """Where a check says what it learnt and does not judge (an extra field a documented
    target may add): the report's information lines; None: not collected."""

    @classmethod
    def of(cls, target: Target, family: Family, expect: Expectation | None = None,
           seen_ids: set[str] | None = None,
           input_tokens: dict[str, tuple[int, bool]] | None = None,
           information: list[str] | None = None) -> Context:
        """The context of an exchange with ``target``: its profile, keys and host."""
        url = urlsplit(target.base_url)
        return cls(family, target.profile, Redactor(target.secrets), expect or Expectation(),
                   target.secrets, url.hostname or "", seen_ids,
                   input_tokens, target.strictness == "strict-upstream", target.envelopes,
                   url.port or {"http": 80, "https": 443}.get(url.scheme), information)


CheckFn = Callable[[Context, Exchange], CheckResult]


@dataclass(frozen=True, slots=True)
class Check:
    """A registered check."""

    id: str
    severity: Severity
    description: str
    fn: CheckFn
    emits: tuple[str, ...]
    """Every check id its findings may carry (its own id unless declared otherwise)."""
    module: str


_REGISTRY: dict[str, Check] = {}


def check(check_id: str, severity: Severity, description: str,
          emits: Sequence[str] = ()) -> Callable[[CheckFn], CheckFn]:
    """Register ``fn`` under ``check_id`` (a dotted ``family.aspect`` name)."""
    if "." not in check_id or check_id != check_id.lower():
        raise ValueError(f"check id {check_id!r} must be a lower-case dotted family.aspect")

    def register(fn: CheckFn) -> CheckFn:
        existing = _REGISTRY.get(check_id)
        if existing is not None and existing.module != fn.__module__:
            raise ValueError(f"check id {check_id!r} is already registered by "
                             f"{existing.module}")
        _REGISTRY[check_id] = Check(check_id, severity, description, fn,
                                    tuple(emits) or (check_id,), fn.__module__)
        return fn

    return register


def get(check_id: str) -> Check:
    """The check registered under ``check_id``."""
    return _REGISTRY[check_id]


def all_checks() -> list[Check]:
    """Every registered check, in registration order."""
    return list(_REGISTRY.values())


def select(ids: Iterable[str]) -> list[Check]:
    """The checks that own or emit any of ``ids``; an unknown id is a ``KeyError`` with a hint."""
    wanted = list(ids)
    known = {i for c in _REGISTRY.values() for i in (c.id, *c.emits)}
    for check_id in wanted:
        if check_id not in known:
            close = difflib.get_close_matches(check_id, sorted(known), n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise KeyError(f"unknown check {check_id!r}{hint}")
    return [c for c in _REGISTRY.values() if {c.id, *c.emits} & set(wanted)]


def snapshot() -> dict[str, Check]:
    """The registry's state, to ``restore`` after a test registers its own checks."""
    return dict(_REGISTRY)


def restore(state: Mapping[str, Check]) -> None:
    """Put back a ``snapshot``."""
    _REGISTRY.clear()
    _REGISTRY.update(state)


EVIDENCE_CHARS = 600
"""How much of an answer a finding quotes when its check quoted nothing itself."""
EVENT_EVIDENCE_CHARS = 400
"""How much of each of a stream's last events (a chunk's fields of interest come late)."""
STREAM_EVIDENCE_EVENTS = 3
"""A stream's last events: where a missing terminator, a missing finish or bad usage shows."""


def evidence_of(ex: Exchange, redactor: Redactor) -> str:
    """What came back, short and redacted, for a finding whose check quoted nothing (a stream
    that never ended, a golden diff, a framing note): the status, the content type and the
    answer's head, or a stream's last events. Never empty: a person reading the finding must
    see the answer, not take the check's word for it."""
    if ex.status is None:
        return redactor.text(f"no answer: {ex.transport_error or 'nothing received'}")
    head = f"HTTP {ex.status} {ex.headers.get('content-type', '(no content-type)')}"
    if ex.events:
        shown = ex.events[-STREAM_EVIDENCE_EVENTS:]
        skipped = len(ex.events) - len(shown)
        lines = [f"... {skipped} earlier events"] if skipped else []
        lines += [(f"event: {e.type}\n" if e.type != "message" else "") +
                  f"data: {e.data[:EVENT_EVIDENCE_CHARS]}" for e in shown]
        text = "\n".join([head, *lines])
    else:
        body = ex.body[:EVIDENCE_CHARS].decode("utf-8", "replace")
        text = f"{head}\n{body}" if body else f"{head} (empty body)"
    return redactor.text(text)


def run_checks(ctx: Context, exchange: Exchange,
               checks: Iterable[Check] | None = None) -> list[Finding]:
    """Run checks on one exchange; a check that raises is reported, not propagated. A finding
    its check left without evidence gets the exchange's (``evidence_of``)."""
    findings = _run(ctx, exchange, checks)
    if any(not f.evidence for f in findings):
        evidence = evidence_of(exchange, ctx.redactor)
        findings = [f if f.evidence else replace(f, evidence=evidence) for f in findings]
    return findings


def _run(ctx: Context, exchange: Exchange, checks: Iterable[Check] | None) -> list[Finding]:
    findings: list[Finding] = []
    for chk in all_checks() if checks is None else checks:
        try:
            result = chk.fn(ctx, exchange)
            if result is NOT_APPLICABLE:
                continue
            assert not isinstance(result, _NotApplicable)
            findings.extend(result)
        except Exception as exc:  # a broken check must not end the run
            findings.append(Finding(
                "check.crashed", exchange.endpoint, Severity.HIGH,
                f"check {chk.id} runs", ctx.redactor.text(f"{type(exc).__name__}: {exc}")))
    return findings
