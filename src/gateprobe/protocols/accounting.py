"""Checks of what a gateway bills and names: usage that adds up, ids that are fresh and of the
right object, and no internal address leaking out of the gateway.

Each states only what holds for every OpenAI- or Anthropic-compatible gateway: totals are
sums, a capped generation stays under its cap, text costs tokens; an id is never another
object's (a ``chatcmpl-`` id on a legacy completion) and never repeats across answers. Which
prefix an id has otherwise is the gateway's business (OpenRouter answers ``gen-...``).
"""

from __future__ import annotations

import ipaddress
import json
import re
from collections.abc import Mapping
from typing import Any

from gateprobe.core.checks import NOT_APPLICABLE, CheckResult, Context, Exchange, check
from gateprobe.core.findings import Finding, Severity

EVIDENCE_CHARS = 300
ID_PREFIXES: Mapping[str, str] = {
    "/v1/chat/completions": "chatcmpl-",
    "/v1/completions": "cmpl-",
    "/v1/messages": "msg_",
    "/v1/complete": "compl_",
    "/v1/responses": "resp_",
}
"""The upstream id prefix of each endpoint's object; another endpoint's prefix is a mix-up."""
INTERNAL_SUFFIXES = (".internal", ".local", ".localdomain", ".lan", ".corp", ".svc",
                     ".cluster.local", ".consul")
_URL = re.compile(r"\b(https?)://\[?([A-Za-z0-9._:-]+?)\]?(?::(\d+))?(?=[/\s\"'<>,;)]|$)")
_IPV4_WITH_PORT = re.compile(r"\b(\d{1,3}(?:\.\d{1,3}){3}):(\d{2,5})\b")
DEFAULT_PORTS = {"http": 80, "https": 443}


def _finding(ctx: Context, ex: Exchange, check_id: str, severity: Severity, expected: str,
             observed: str, pointer: str = "") -> Finding:
    evidence = ex.body[:EVIDENCE_CHARS].decode("utf-8", "replace")
    return Finding(check_id, ex.endpoint, severity, expected, ctx.redactor.text(observed),
                   ctx.redactor.text(evidence), pointer=pointer)


def _success_json(ex: Exchange) -> dict[str, Any] | None:
    """The JSON object of a non-streaming 2xx answer, or None."""
    if ex.status is None or not 200 <= ex.status < 300 or ex.is_stream:
        return None
    try:
        payload = json.loads(ex.body)
    except ValueError:
        return None
    return payload if isinstance(payload, dict) else None


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _text_of(endpoint: str, payload: Mapping[str, Any]) -> str:
    """The generated text of an answer ('' when it has none)."""
    if endpoint == "/v1/messages":
        return "".join(b.get("text", "") for b in payload.get("content") or []
                       if isinstance(b, dict) and isinstance(b.get("text"), str))
    choices = payload.get("choices") or []
    first = choices[0] if choices and isinstance(choices[0], dict) else {}
    message = first.get("message")
    text = first.get("text") if endpoint == "/v1/completions" else \
        message.get("content") if isinstance(message, dict) else None
    return text if isinstance(text, str) else ""


def _has_input(request: Any) -> bool:
    """Whether an embeddings request had any text (or token ids) to embed."""
    given = request.get("input") if isinstance(request, dict) else None
    items = given if isinstance(given, list) else [given]
    return any(isinstance(x, str) and x or isinstance(x, list) and x or isinstance(x, int)
               and not isinstance(x, bool) for x in items)


def _cap(request: Any) -> int | None:
    """The generation cap the request set, if any."""
    if not isinstance(request, dict):
        return None
    return _int(request.get("max_completion_tokens")) or _int(request.get("max_tokens"))


def _stopped_at_cap(endpoint: str, payload: Mapping[str, Any]) -> int:
    """How many choices ended because they reached the cap (``finish_reason: length``,
    ``stop_reason: max_tokens``): each generated exactly the cap, so the output is at least
    that many caps — a gateway billing only the first of ``n`` choices bills less."""
    if endpoint == "/v1/messages":
        return int(payload.get("stop_reason") == "max_tokens")
    return sum(1 for c in payload.get("choices") or []
               if isinstance(c, dict) and c.get("finish_reason") == "length")


@check("usage.accounting", Severity.HIGH, "usage adds up and fits what was generated")
def usage_accounting(ctx: Context, ex: Exchange) -> CheckResult:
    """What a client is billed by: a total that is the sum of its parts, an output under the
    cap it asked for, and tokens for any text at all."""
    payload = _success_json(ex)
    usage = payload.get("usage") if payload else None
    if not isinstance(usage, dict) or ex.endpoint not in (
            "/v1/chat/completions", "/v1/completions", "/v1/messages", "/v1/embeddings"):
        return NOT_APPLICABLE
    assert payload is not None
    anthropic = ex.endpoint == "/v1/messages"
    prompt = _int(usage.get("input_tokens" if anthropic else "prompt_tokens"))
    output = _int(usage.get("output_tokens" if anthropic else "completion_tokens"))
    total = _int(usage.get("total_tokens"))
    output_field = "/usage/" + ("output_tokens" if anthropic else "completion_tokens")
    problems: list[tuple[str, str]] = []  # (what is wrong, the field at fault)
    if ex.endpoint == "/v1/embeddings":
        output = 0
    if total is not None and prompt is not None and output is not None and \
            total != prompt + output:
        problems.append((f"total_tokens {total} is not prompt {prompt} + output {output}",
                         "/usage/total_tokens"))
    cap = _cap(ex.request)
    # The cap is per choice: n choices, or one per prompt of a batch, may each use all of it.
    choices = 1 if anthropic else max(1, len(payload.get("choices") or []))
    if cap is not None and output is not None and output > cap * choices:
        problems.append((f"{output} output tokens for a cap of {cap}"
                         + (f" per choice ({choices} choices)" if choices > 1 else ""),
                         output_field))
    stopped = _stopped_at_cap(ex.endpoint, payload)
    if cap is not None and output is not None and output < cap * stopped:
        problems.append((f"{output} output tokens, but {stopped} "
                         f"{'choice' if stopped == 1 else 'choices'} stopped at the cap of "
                         f"{cap} (at least {cap * stopped}: every choice is billed)",
                         output_field))
    if output == 0 and _text_of(ex.endpoint, payload):
        problems.append(("0 output tokens for a non-empty text", output_field))
    if ex.endpoint == "/v1/embeddings" and prompt == 0 and _has_input(ex.request):
        problems.append(("0 prompt tokens for a non-empty input (embedding text costs "
                         "tokens)", "/usage/prompt_tokens"))
    return [_finding(ctx, ex, "usage.accounting", Severity.HIGH,
                     "usage that adds up and fits the generated text", problem, pointer)
            for problem, pointer in problems]


@check("response.id", Severity.MEDIUM, "each answer has a fresh id of its own object")
def response_id(ctx: Context, ex: Exchange) -> CheckResult:
    """Clients key caches, logs and billing disputes by id: one that repeats, or that names
    another kind of object, breaks them."""
    payload = _success_json(ex)
    own = ID_PREFIXES.get(ex.endpoint)
    answer_id = payload.get("id") if payload else None
    if own is None or not isinstance(answer_id, str) or not answer_id:
        return NOT_APPLICABLE
    out = []
    other = next((p for e, p in ID_PREFIXES.items() if e != ex.endpoint and p != own
                  and answer_id.startswith(p) and not answer_id.startswith(own)), None)
    if other is not None:
        out.append(_finding(ctx, ex, "response.id", Severity.MEDIUM,
                            f"an id of this endpoint's object (upstream: {own}...)",
                            f"id {answer_id[:40]!r} has the prefix of another object "
                            f"({other})", "/id"))
    if ctx.seen_ids is not None:
        if answer_id in ctx.seen_ids:
            out.append(_finding(ctx, ex, "response.id", Severity.MEDIUM,
                                "a fresh id per answer", f"id {answer_id[:40]!r} again",
                                "/id"))
        ctx.seen_ids.add(answer_id)
    return out


def _internal(host: str, port: int | None, ctx: Context) -> bool:
    """Whether ``host:port`` names a place only the gateway's own network reaches. The
    target's own address (host and port) is not; the same host at another port is another
    service (an upstream beside the gateway), judged like any other address."""
    host = host.strip("[]").lower().rstrip(".")
    if not host or host == ctx.target_host.lower() and (
            port is None or ctx.target_port is None or port == ctx.target_port):
        return False
    if host == "localhost" or host.endswith(INTERNAL_SUFFIXES):
        return True
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    return address.is_private or address.is_loopback or address.is_link_local


@check("security.internal_url", Severity.MEDIUM,
       "no internal host or URL in headers or error messages")
def internal_url(ctx: Context, ex: Exchange) -> CheckResult:
    """An upstream's private address in a header (``x-upstream``, ``via``) or an error message
    maps the gateway's network for anyone who asks."""
    if ex.status is None:
        return NOT_APPLICABLE
    places = [(f"header {name}", value) for name, value in ex.headers.items()]
    if ex.status >= 400:
        places.append(("error body", ex.body[:20_000].decode("utf-8", "replace")))
    for where, text in places:
        hosts = [(m.group(2), int(m.group(3)) if m.group(3) else DEFAULT_PORTS[m.group(1)])
                 for m in _URL.finditer(text)]
        if where.startswith("header"):
            hosts += [(m.group(1), int(m.group(2))) for m in _IPV4_WITH_PORT.finditer(text)]
        leaked = next((h for h in hosts if _internal(*h, ctx)), None)
        if leaked is not None:
            return [_finding(ctx, ex, "security.internal_url", Severity.MEDIUM,
                             "no internal address in an answer",
                             f"internal address {leaked[0]}:{leaked[1]} in the {where}")]
    return []


def _billed_input(ex: Exchange) -> int | None:
    """The input tokens an answer bills: its usage, or a stream's usage chunk (OpenAI) or
    ``message_start`` (Anthropic)."""
    if not ex.is_stream:
        payload = _success_json(ex)
        usage = payload.get("usage") if payload else None
        if not isinstance(usage, dict):
            return None
        return _int(usage.get("input_tokens", usage.get("prompt_tokens")))
    for event in ex.events:
        try:
            payload = json.loads(event.data)
        except ValueError:
            continue
        if not isinstance(payload, dict):
            continue
        message = payload.get("message") if payload.get("type") == "message_start" else \
            payload.get("response") if payload.get("type") == "response.completed" else None
        usage = message.get("usage") if isinstance(message, dict) else payload.get("usage")
        if isinstance(usage, dict):
            billed = _int(usage.get("input_tokens", usage.get("prompt_tokens")))
            if billed is not None:
                return billed
    return None


def _input_key(ex: Exchange) -> str | None:
    """What the model was given (endpoint, model, messages or prompt, system), as a key."""
    if not isinstance(ex.request, dict):
        return None
    given = {k: ex.request[k] for k in ("model", "messages", "prompt", "system", "input",
                                        "instructions", "tools") if k in ex.request}
    return ex.endpoint + " " + json.dumps(given, sort_keys=True) if given else None


@check("usage.stream_consistency", Severity.MEDIUM,
       "a stream bills the same input as the same request without streaming")
def usage_stream_consistency(ctx: Context, ex: Exchange) -> CheckResult:
    """The same input costs the same input tokens, streamed or not: what the model generates
    may differ between two calls, what it was given may not."""
    if ctx.input_tokens is None or ex.status != 200 or ex.endpoint not in ID_PREFIXES:
        return NOT_APPLICABLE
    billed, key = _billed_input(ex), _input_key(ex)
    if billed is None or key is None:
        return NOT_APPLICABLE
    earlier = ctx.input_tokens.setdefault(key, (billed, ex.is_stream))
    if earlier[1] == ex.is_stream or earlier[0] == billed:
        return []
    streamed, plain = (billed, earlier[0]) if ex.is_stream else (earlier[0], billed)
    return [_finding(ctx, ex, "usage.stream_consistency", Severity.MEDIUM,
                     "the same input tokens streamed and not",
                     f"{streamed} input tokens streamed, {plain} for the same input not "
                     "streamed")]
