"""The built-in conformance checks, registered in ``gateprobe.checks`` on import.

Each check owns one expectation and names it by a stable id. Case-specific checks (``auth.*``,
``legacy.*``) own their cases, so ``response.status`` stays silent on them and no deviation is
reported twice. A 429 the harness did not ask for is not judged: real gateways rate-limit every
route, and the runner, not the gateway, is at fault for provoking it.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import replace
from typing import Any

from gateprobe.core import transport
from gateprobe.core.checks import (
    NOT_APPLICABLE,
    Check,
    CheckResult,
    Context,
    Exchange,
    check,
    finding_of,
    select,
)
from gateprobe.core.families import PATHS, canonical
from gateprobe.core.findings import Finding, Severity
from gateprobe.core.golden import diff, mismatch, normalize, normalize_events
from gateprobe.core.specs import (
    SpecName,
    conforms,
    event_payload_schemas,
    schema_errors,
    validator,
)
from gateprobe.protocols import (
    _anthropic,
    _gateway,
    _openai,
    accounting,  # noqa: F401  (registers its checks too)
    gateway_apis,  # noqa: F401  (the gateway's own APIs: envelope, search)
    media,
    midjourney,  # noqa: F401  (Midjourney tasks: lifecycle, pages)
    openai_responses,  # noqa: F401  (the Responses API: plain answers; streams via grammar_for)
    openai_stateful,  # noqa: F401  (stored responses, conversations, stored chat: flows)
    realtime,  # noqa: F401  (the Realtime API: event grammar, handshake)
    tools,  # noqa: F401  (registers its checks too)
)
from gateprobe.protocols.streams import (
    STREAM_CHECK_IDS,
    check_events,
    framing_findings,
    grammar_for,
)

ANTHROPIC_ERROR_TYPES = {400: "invalid_request_error", 401: "authentication_error",
                         403: "permission_error", 404: "not_found_error",
                         413: "request_too_large", 429: "rate_limit_error", 500: "api_error",
                         529: "overloaded_error"}
OPENAI_429_NAMES = frozenset({"rate_limit_exceeded", "insufficient_quota", "requests", "tokens",
                              "rate_limit_error"})
"""What OpenAI (and gateways copying Anthropic's name) call a 429, as its type or code."""
OPENAI_OTHER_ERRORS = frozenset({"invalid_request_error", "authentication_error",
                                 "invalid_api_key", "permission_error", "not_found_error",
                                 "model_not_found", "server_error", "api_error",
                                 "context_length_exceeded", "invalid_value"})
"""Error types and codes of other statuses: a 429 naming one misleads its client."""
OTHER_ERROR_WORDS = ("server", "internal", "invalid", "auth", "permission", "not_found",
                     "bad_request", "context_length")
"""Words of other error classes in a 429's type or code (``internal_server_error``: a client
reads a server fault, not a limit, and may not back off)."""
SPECIFIC_KINDS = frozenset({"bad_key", "missing_key", "wrong_auth_style", "no_permission",
                            "legacy_prompt_invalid", "legacy_prompt_valid"})
AUTH_KINDS = frozenset({"bad_key", "missing_key", "wrong_auth_style"})

# endpoint -> (spec, success schema, stream event schema)
RESPONSE_SCHEMAS: dict[str, tuple[SpecName, str, str | None]] = {
    PATHS["chat"]: ("openai", "ChatCompletion", "ChatCompletionStreamEvent"),
    PATHS["completions"]: ("openai", "Completion", "CompletionStreamEvent"),
    PATHS["embeddings"]: ("openai", "EmbeddingList", None),
    PATHS["models"]: ("openai", "ModelList", None),
    PATHS["complete"]: ("anthropic", "Completion", "CompletionStreamEvent"),
    PATHS["messages"]: ("anthropic", "Message", "MessageStreamEvent"),
    **media.RESPONSE_SCHEMAS,
    PATHS["responses"]: ("openai", "Response", "ResponseStreamEvent"),
}
METHOD_SCHEMAS: dict[tuple[str, str], tuple[SpecName, str, str | None]] = {
    ("GET", PATHS["chat"]): ("openai", "StoredChatCompletionList", None),
}
"""An endpoint whose other method answers another object (its stored completions' list)."""
EVIDENCE_CHARS = 300


_finding = finding_of


def json_pointer(path: Iterable[str | int]) -> str:
    """RFC 6901: ``["choices", 0, "message"]`` is ``/choices/0/message``."""
    return "".join("/" + str(part).replace("~", "~0").replace("/", "~1") for part in path)


def schema_pointer(spec: SpecName, component: str, instance: object) -> str:
    """The pointer of the first field ``instance`` gets wrong (in ``schema_errors``' order); a
    missing required field is named itself, not the object that lacks it."""
    errors = sorted(validator(spec, component).iter_errors(instance), key=str)
    if not errors:
        return ""
    error = errors[0]
    path: list[str | int] = list(error.absolute_path)
    if error.validator == "required" and isinstance(error.instance, dict):
        missing = [name for name in error.validator_value if name not in error.instance]
        path += missing[:1]
    return json_pointer(path)


def _json(ex: Exchange) -> Any:
    try:
        return json.loads(ex.body)
    except ValueError:
        return None


def _unasked_429(ctx: Context, ex: Exchange) -> bool:
    return ex.status == 429 and 429 not in (ctx.expect.status, *ctx.expect.statuses)


@check("transport.error", Severity.HIGH, "a whole response arrives, in time and in size",
       emits=transport.KINDS)
def transport_error(ctx: Context, ex: Exchange) -> CheckResult:
    """The exchange broke: reset, timed out (connect, first byte, idle, total), too large."""
    if ex.transport_error is None:
        return NOT_APPLICABLE
    return [_finding(ctx, ex, ex.transport_kind, Severity.HIGH, "a whole response in time",
                     ex.transport_error)]


@check("transport.redirect", Severity.HIGH, "no redirect to another host")
def transport_redirect(ctx: Context, ex: Exchange) -> CheckResult:
    """An API answering 3xx sends clients elsewhere, their key in hand if they follow."""
    if ex.status is None or not 300 <= ex.status < 400:
        return NOT_APPLICABLE
    location = ex.headers.get("location", "")
    return [_finding(ctx, ex, "transport.redirect", Severity.HIGH, "an answer, not a redirect",
                     f"status {ex.status} to {location[:120] or 'nowhere'}")]


MAX_SANE_RETRY_AFTER_S = 600


@check("response.retry_after", Severity.MEDIUM, "Retry-After a client can honour")
def response_retry_after(ctx: Context, ex: Exchange) -> CheckResult:
    """Retry-After on every 429, in seconds (or an HTTP date), no longer than ten minutes:
    without it a client can only guess, and retries too early or waits too long."""
    value = ex.headers.get("retry-after")
    if value is None and ex.status == 429:
        return [_finding(ctx, ex, "response.retry_after", Severity.MEDIUM,
                         "a Retry-After on every 429 (when to try again)",
                         "429 without Retry-After")]
    if value is None:
        return NOT_APPLICABLE
    try:
        seconds = float(value)
    except ValueError:
        return []  # an HTTP date: allowed by RFC 9110
    if not 0 <= seconds <= MAX_SANE_RETRY_AFTER_S:
        return [_finding(ctx, ex, "response.retry_after", Severity.MEDIUM,
                         f"Retry-After within 0..{MAX_SANE_RETRY_AFTER_S} s",
                         f"Retry-After: {value[:40]}")]
    return []


@check("response.rate_limited", Severity.MEDIUM, "a request that is not about limits is served")
def response_rate_limited(ctx: Context, ex: Exchange) -> CheckResult:
    """Still 429 after waiting Retry-After twice: the case could not be checked at all."""
    if not _unasked_429(ctx, ex):
        return NOT_APPLICABLE
    return [_finding(ctx, ex, "response.rate_limited", Severity.MEDIUM,
                     "an answer after honouring Retry-After",
                     "still 429 after waiting as Retry-After said (or a Retry-After longer "
                     "than the run can afford): the case was not judged")]


UNASKED_429_CHECKS = ("response.rate_limited", "response.retry_after", "error.type",
                      "security.key_echoed", "security.internal_url")
"""What an unasked 429 is judged by: the limit itself, never what the case was about."""


def checks_for(ctx: Context, ex: Exchange) -> list[Check] | None:
    """The checks an exchange is judged by (None: every one). A 429 the case did not ask for
    says nothing of what the case was about: only the rate-limit answer itself is judged."""
    return select(UNASKED_429_CHECKS) if _unasked_429(ctx, ex) else None


@check("stream.compressed", Severity.MEDIUM, "event streams are not compressed")
def stream_compressed(ctx: Context, ex: Exchange) -> CheckResult:
    """A compressed event stream is buffered by compressors and proxies: events arrive late."""
    if not ex.is_stream:
        return NOT_APPLICABLE
    encoding = ex.headers.get("content-encoding", "identity").strip().lower()
    if encoding not in ("", "identity"):
        return [_finding(ctx, ex, "stream.compressed", Severity.MEDIUM,
                         "an uncompressed event stream", f"content-encoding: {encoding}")]
    return []


@check("response.status", Severity.HIGH, "the status the request deserves")
def response_status(ctx: Context, ex: Exchange) -> CheckResult:
    """Expected statuses; without an expectation, any 2xx. Never a 5xx for bad input."""
    if ex.status is None or ctx.expect.kind in SPECIFIC_KINDS or _unasked_429(ctx, ex):
        return NOT_APPLICABLE
    allowed = {s for s in (ctx.expect.status, *ctx.expect.statuses) if s is not None}
    if allowed and ex.status not in allowed:
        bad_input = all(400 <= s < 500 for s in allowed)
        severity = Severity.HIGH if ex.status >= 500 or not bad_input else Severity.MEDIUM
        return [_finding(ctx, ex, "response.status", severity,
                         f"status {' or '.join(map(str, sorted(allowed)))}",
                         f"status {ex.status}")]
    if not allowed and not 200 <= ex.status < 300:
        return [_finding(ctx, ex, "response.status", Severity.HIGH, "a 2xx status",
                         f"status {ex.status}")]
    return []


@check("error.envelope", Severity.HIGH, "error bodies use the family's envelope")
def error_envelope(ctx: Context, ex: Exchange) -> CheckResult:
    """A 4xx/5xx body parses as the family's error envelope (the gateway's own APIs have
    theirs on every target: ``gateway.envelope``)."""
    if ex.status is None or ex.status < 400 or ctx.family == "gateway":
        return NOT_APPLICABLE
    parse = _anthropic.parse_error if ctx.family == "anthropic" else _openai.parse_error
    family = "family" in ctx.envelopes and parse(_json(ex)) is not None
    if not family and not _gateway_envelope(ctx, ex):
        wanted = [f"the {ctx.family} error envelope"] if "family" in ctx.envelopes else []
        wanted += ["the gateway's own {statusCode, message, data}"] \
            if "gateway" in ctx.envelopes else []
        schema = (_anthropic if ctx.family == "anthropic" else _openai).ERROR_SCHEMA \
            if "family" in ctx.envelopes else _gateway.ERROR_SCHEMA
        problem, pointer = envelope_problem(schema, _json(ex), ex.body)
        return [_finding(ctx, ex, "error.envelope", Severity.HIGH, " or ".join(wanted),
                         f"{ex.content_type or 'no content-type'} body: {problem}", pointer)]
    return []


_JSON_TYPES = {dict: "an object", list: "an array", str: "a string", bool: "a boolean",
               int: "an integer", float: "a number", type(None): "null"}


def envelope_problem(schema: dict[str, Any], payload: Any, body: bytes) -> tuple[str, str]:
    """What keeps an error body from being the envelope ``schema`` describes, naming the field
    and the types (``error.message is an integer, not a string``), and its JSON pointer."""
    if payload is None:
        return ("not JSON" if body.strip() else "empty"), ""
    import jsonschema

    errors = list(jsonschema.Draft202012Validator(schema).iter_errors(payload))
    if not errors:
        return "an envelope of another kind", ""
    error = min(errors, key=lambda e: (len(e.absolute_path), str(e.message)))
    path: list[str | int] = list(error.absolute_path)
    if error.validator == "required" and isinstance(error.instance, dict):
        missing = [n for n in error.validator_value if n not in error.instance][0]
        path.append(missing)
        wanted = _wanted_type(schema, path)
        return (f"no {_dotted(path)}{f' ({wanted})' if wanted else ''}",
                json_pointer(path))
    got = _JSON_TYPES.get(type(error.instance), type(error.instance).__name__)
    if error.validator == "type":
        wanted = _type_words(error.validator_value)
        return f"{_dotted(path) or 'the body'} is {got}, not {wanted}", json_pointer(path)
    if error.validator == "const":
        return f"{_dotted(path)} is {error.instance!r}, not {error.validator_value!r}", \
            json_pointer(path)
    return f"{_dotted(path) or 'the body'}: {error.message[:120]}", json_pointer(path)


def _dotted(path: list[str | int]) -> str:
    return ".".join(str(p) for p in path)


def _type_words(value: Any) -> str:
    names = value if isinstance(value, list) else [value]
    words = {"object": "an object", "array": "an array", "string": "a string",
             "integer": "an integer", "number": "a number", "boolean": "a boolean",
             "null": "null"}
    return " or ".join(words.get(n, str(n)) for n in names)


def _wanted_type(schema: dict[str, Any], path: list[str | int]) -> str:
    """The type ``schema`` wants at ``path`` ('' when it says none)."""
    node: Any = schema
    for part in path:
        node = (node.get("properties") or {}).get(part) if isinstance(node, dict) else None
    if not isinstance(node, dict):
        return ""
    if "type" in node:
        return _type_words(node["type"])
    return f"{node['const']!r}" if "const" in node else ""


def _gateway_envelope(ctx: Context, ex: Exchange) -> bool:
    """Whether the answer is in the seeds' gateway's own envelope and the target answers in
    it (declared, or its profile: ``{"statusCode", "message", "data"}`` on the documented
    gateway's model routes' 401s)."""
    return "gateway" in ctx.envelopes and _gateway.parse_error(_json(ex)) is not None


@check("error.type", Severity.MEDIUM, "the error type fits the status")
def error_type(ctx: Context, ex: Exchange) -> CheckResult:
    """Anthropic names one error type per status (PROTOCOL.md, "Anthropic errors"); an
    OpenAI-family 429 must not call itself another kind of error."""
    if ctx.family == "gateway":
        return NOT_APPLICABLE  # its envelope's errorType is optional and names no status
    if ctx.family == "openai":
        return _openai_429_type(ctx, ex)
    if ex.status not in ANTHROPIC_ERROR_TYPES:
        return NOT_APPLICABLE
    error = _anthropic.parse_error(_json(ex))
    if error is None:
        return NOT_APPLICABLE  # error.envelope reports it (or it is the gateway's own)
    wanted = ANTHROPIC_ERROR_TYPES[ex.status]
    if error.type != wanted:
        return [_finding(ctx, ex, "error.type", Severity.MEDIUM, f"type {wanted}",
                         f"type {error.type} with status {ex.status}", "/error/type")]
    return []


def _openai_429_type(ctx: Context, ex: Exchange) -> CheckResult:
    """OpenAI answers a 429 with code ``rate_limit_exceeded`` (type ``requests``/``tokens``)
    or ``insufficient_quota``; compatible gateways often name neither (LiteLLM: code "429"),
    and clients retry on the status alone, so only a type or code of another error class —
    one a client would act on wrongly (``invalid_request_error``: do not retry) — is wrong.
    Under ``strict-upstream`` the upstream code itself is required."""
    error = _openai.parse_error(_json(ex)) if ex.status == 429 else None
    if error is None:
        return NOT_APPLICABLE
    named = {error.type, error.code or ""}
    if named & OPENAI_429_NAMES:
        return []
    if ctx.strict or named & OPENAI_OTHER_ERRORS or any(
            word in name.lower() for name in named for word in OTHER_ERROR_WORDS):
        return [_finding(ctx, ex, "error.type", Severity.MEDIUM,
                         "a rate-limit error (code rate_limit_exceeded or insufficient_quota)",
                         f"type {error.type}, code {error.code} with status 429")]
    return []


@check("response.content_type", Severity.MEDIUM, "JSON as application/json, streams as SSE")
def response_content_type(ctx: Context, ex: Exchange) -> CheckResult:
    """Streams asked for are ``text/event-stream``; everything else is ``application/json``."""
    if ex.status is None or _unasked_429(ctx, ex) or \
            (ex.endpoint in media.OWN_CONTENT_TYPE and 200 <= ex.status < 300):
        return NOT_APPLICABLE
    stream = ctx.expect.stream_body is not None and 200 <= ex.status < 300
    wanted = "text/event-stream" if stream else "application/json"
    if ex.content_type != wanted:
        return [_finding(ctx, ex, "response.content_type", Severity.MEDIUM, wanted,
                         ex.content_type or "no content-type")]
    return []


@check("response.schema", Severity.MEDIUM, "success bodies and stream events match the spec")
def response_schema(ctx: Context, ex: Exchange) -> CheckResult:
    """A 2xx answer validates against its endpoint's schema in ``specs/``."""
    endpoint = canonical(ex.endpoint)  # an alias family's answers are its original's
    known = METHOD_SCHEMAS.get((ex.method, endpoint)) or RESPONSE_SCHEMAS.get(endpoint)
    if known is None or ex.status is None or not 200 <= ex.status < 300 or \
            known[0] != ctx.family:  # Anthropic's /v1/models is not in our specs
        return NOT_APPLICABLE
    spec, body_schema, event_schema = known
    if not ex.is_stream:
        if ex.transport_error is not None:
            return NOT_APPLICABLE  # a body cut short (stall, trickle, size): its own finding
        payload = _json(ex)
        errors = schema_errors(spec, body_schema, payload) if payload is not None else [
            "(root): not JSON"]
        pointer = schema_pointer(spec, body_schema, payload) if payload is not None else ""
        return [_finding(ctx, ex, "response.schema", Severity.MEDIUM,
                         f"a {body_schema} ({spec} spec)", "; ".join(errors[:3]), pointer)
                ] if errors else []
    if event_schema is None or (ex.endpoint == PATHS["complete"] and
                                ctx.expect.anthropic_version < "2023-06-01"):
        return NOT_APPLICABLE  # the older legacy format is its grammar's (cumulative) business
    refs = event_payload_schemas(spec, event_schema)
    out = []
    for event in ex.events:
        if event.data == "[DONE]":
            continue
        try:
            data = json.loads(event.data)
        except ValueError:
            continue  # stream.json reports it
        if not any(conforms(spec, ref, data) for ref in refs):
            finding = _finding(ctx, ex, "response.schema", Severity.MEDIUM,
                               f"each event one of {', '.join(refs)}",
                               f"event {event.type!r}: {event.data[:120]}")
            # The event itself, not the stream's first bytes, is what is wrong.
            out.append(replace(finding, evidence=ctx.redactor.text(
                f"event: {event.type}\ndata: {event.data[:EVIDENCE_CHARS]}")))
            break  # one is enough to name the problem
    return out


@check("stream.grammar", Severity.HIGH, "streams follow their protocol's grammar",
       emits=STREAM_CHECK_IDS)
def stream_grammar(ctx: Context, ex: Exchange) -> CheckResult:
    """The stream, through ``gateprobe.protocols``' grammar for its endpoint."""
    body = ctx.expect.stream_body
    if body is None or not ex.is_stream or ex.status != 200:
        return NOT_APPLICABLE
    grammar = grammar_for(ex.endpoint, body, anthropic_version=ctx.expect.anthropic_version,
                          strict=ctx.strict,
                          redact=ctx.redactor.text)
    return framing_findings(ex.notes, ex.endpoint) + check_events(grammar, ex.events)


@check("security.key_echoed", Severity.HIGH, "no answer contains a key it was sent")
def key_echoed(ctx: Context, ex: Exchange) -> CheckResult:
    """A key in a body or a header ends up in logs, reports and screenshots."""
    haystacks = [("body", ex.body.decode("utf-8", "replace"))]
    haystacks += [(f"header {name}", value) for name, value in ex.headers.items()]
    # Every key the request carried, a mistyped or revoked one too; a masked form (OpenAI's
    # ``sk-abc***xyz``) is not the key.
    for secret in dict.fromkeys((*ctx.secrets, ex.sent_key)):
        if len(secret) < 6:
            continue
        for where, text in haystacks:
            if secret in text:
                return [_finding(ctx, ex, "security.key_echoed", Severity.HIGH,
                                 "the key never in an answer", f"the key in the {where}")]
    return []


@check("auth.rejected", Severity.HIGH, "bad, missing or wrongly sent keys get 401")
def auth_rejected(ctx: Context, ex: Exchange) -> CheckResult:
    """Credentials that must not work do not, and say so in the family's envelope."""
    if ctx.expect.kind not in AUTH_KINDS or ex.status is None:
        return NOT_APPLICABLE
    if ex.status != 401:
        severity = Severity.HIGH if 200 <= ex.status < 300 or ex.status >= 500 else \
            Severity.MEDIUM
        return [_finding(ctx, ex, "auth.rejected", severity,
                         f"401 for a {ctx.expect.kind.replace('_', ' ')}",
                         f"status {ex.status}")]
    return []


@check("auth.permission", Severity.HIGH, "a key without the model's permission is refused")
def auth_permission(ctx: Context, ex: Exchange) -> CheckResult:
    """The profile's status for a missing model permission (gateway: 401)."""
    if ctx.expect.kind != "no_permission" or ex.status is None:
        return NOT_APPLICABLE
    allowed = {s for s in (ctx.expect.status, *ctx.expect.statuses) if s is not None}
    if ex.status not in allowed:
        return [_finding(ctx, ex, "auth.permission", Severity.HIGH,
                         f"status {' or '.join(map(str, sorted(allowed)))}",
                         f"status {ex.status}")]
    return []


def _generated(ex: Exchange) -> bool:
    if ex.is_stream:
        return any(e.type == "completion" or '"completion"' in e.data for e in ex.events)
    payload = _json(ex)
    return isinstance(payload, dict) and bool(payload.get("completion"))


@check("legacy.prompt_rejected", Severity.HIGH,
       "an invalid \\n\\nHuman:/\\n\\nAssistant: prompt gets 400 and nothing generated")
def legacy_prompt_rejected(ctx: Context, ex: Exchange) -> CheckResult:
    """Anthropic validated legacy prompts before generating; a gateway must answer the same."""
    if ctx.expect.kind != "legacy_prompt_invalid" or ex.status is None:
        return NOT_APPLICABLE
    out = []
    error = _anthropic.parse_error(_json(ex))
    typed = error is not None and error.type == "invalid_request_error" or \
        error is None and _gateway_envelope(ctx, ex)  # its envelope may name no type
    if ex.status != 400 or not typed:
        out.append(_finding(ctx, ex, "legacy.prompt_rejected", Severity.HIGH,
                            "400 invalid_request_error",
                            f"status {ex.status}" + (f", type {error.type}" if error else "")))
    if _generated(ex):
        out.append(_finding(ctx, ex, "legacy.prompt_rejected", Severity.HIGH,
                            "nothing generated for an invalid prompt", "a completion"))
    return out


@check("legacy.prompt_accepted", Severity.HIGH, "a valid legacy prompt gets a completion")
def legacy_prompt_accepted(ctx: Context, ex: Exchange) -> CheckResult:
    """Valid prompts, including the two that Anthropic silently repairs, are served."""
    if ctx.expect.kind != "legacy_prompt_valid" or ex.status is None:
        return NOT_APPLICABLE
    if ex.status != 200:
        return [_finding(ctx, ex, "legacy.prompt_accepted", Severity.HIGH,
                         "200 with a completion", f"status {ex.status}")]
    return []


GOLDEN_DIFF_CHARS = 2000


def normalized_answer(ex: Exchange) -> Any:
    """The exchange's answer as ``gateprobe.core.golden`` stores it."""
    if ex.is_stream:
        return normalize_events(ex.events)
    payload = _json(ex)
    return normalize(payload) if payload is not None else ex.body.decode("utf-8", "replace")


@check("golden.match", Severity.MEDIUM, "the answer matches its golden, once normalized")
def golden_match(ctx: Context, ex: Exchange) -> CheckResult:
    """The golden's required fields, the values the protocol fixes (its ``pins``: finish
    reasons, object names), the types of the values a model may vary, and the event grammar of
    a stream (``gateprobe.core.golden``)."""
    if not ctx.expect.has_golden or ex.status is None or ex.status != ctx.expect.status \
            or ex.transport_error is not None:
        return NOT_APPLICABLE  # a wrong status or a broken transfer has its own finding
    answer = normalized_answer(ex)
    difference = diff(ctx.expect.golden, answer)
    if not difference:
        return []
    pointer = "" if ex.is_stream else json_pointer(first_difference(ctx.expect.golden, answer))
    return [Finding("golden.match", ex.endpoint, Severity.MEDIUM,
                    "the golden's fields, types, pinned values and event order",
                    ctx.redactor.text(difference[:GOLDEN_DIFF_CHARS]), pointer=pointer)]


def first_difference(pattern: Any, actual: Any) -> tuple[str | int, ...]:
    """Where ``actual`` first departs from the golden ``pattern`` (``golden.mismatch``), as a
    path; ``()`` when it fits or differs as a whole."""
    found = mismatch(pattern, actual)
    return found[0] if found is not None else ()


STRICT_SHAPES: dict[str, frozenset[str]] = {
    PATHS["count_tokens"]: frozenset({"input_tokens"}),
}
"""Answers whose every top-level field the upstream API names: Anthropic's count_tokens is
``{"input_tokens": N}`` and nothing else."""


@check("response.strict_shape", Severity.LOW,
       "strict-upstream: no top-level field the upstream answer does not have")
def response_strict_shape(ctx: Context, ex: Exchange) -> CheckResult:
    """Fields beyond a strict shape's: a finding under ``strictness: strict-upstream`` (a
    client that validates the answer strictly refuses it); otherwise information, not judged
    (gateways add fields, and a lenient client ignores them)."""
    allowed = STRICT_SHAPES.get(ex.endpoint)
    if allowed is None or ex.status is None or not 200 <= ex.status < 300:
        return NOT_APPLICABLE
    payload = _json(ex)
    if not isinstance(payload, dict):
        return NOT_APPLICABLE
    extra = sorted(set(payload) - allowed)
    if not extra:
        return []
    said = f"top-level field{'s' if len(extra) > 1 else ''} {', '.join(extra)} beyond " \
           f"{', '.join(sorted(allowed))}"
    if not ctx.strict:
        if ctx.information is not None:
            ctx.information.append(f"{said} (judged only under strictness: "
                                   "strict-upstream)")
        return []
    return [_finding(ctx, ex, "response.strict_shape", Severity.LOW,
                     f"only {', '.join(sorted(allowed))} (the upstream answer's fields)", said,
                     json_pointer([extra[0]]))]
