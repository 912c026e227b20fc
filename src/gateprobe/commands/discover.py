"""``gateprobe discover``: what a gateway serves, found without spending, written down for a
person to review as a targets-file entry.

One request per family gateprobe knows (``FAMILY_PROBES``: one per ``gateprobe.core.families``
entry, a special request only where the default one would not do). The
text routes get a served request of one token at most, which also tells whether the model is
known there and shows the limiter's headers; every family whose answer would cost (images,
speech, transcriptions, moderations, Midjourney, search) gets a request that is invalid on
purpose (a required field left out), so nothing is generated; the Realtime route is opened
and closed at once, asking nothing; the management API is asked for its public model rates.
The Anthropic routes are also asked with ``x-api-key``, which tells the auth style.

Our reading of the answers, since no gateway documents "not served" the same way: a route is
served unless it answers 404, 405 or 501 without naming the model we sent (OpenAI answers 404
for an unknown *model*, which says the route exists), or nothing answers at all; 401/403 say
only that the key was refused, not whether the route exists (but a WebSocket handshake refused
403 with no body is how an ASGI server says it has no such route). The profile follows from the
Anthropic routes: none served is ``openai``; ``/v1/models`` in Anthropic's shape, or
``x-api-key`` accepted, is ``anthropic``; Bearer only is ``ohmygpt`` (the seeds' gateway).
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import yaml

from gateprobe.core.checks import Exchange
from gateprobe.core.errors import ConfigError
from gateprobe.core.families import FAMILIES, EndpointFamily, Family
from gateprobe.core.targets import (
    ANTHROPIC_ENDPOINTS,
    ENDPOINTS,
    TARGETS_SCHEMA,
    Target,
    profile_envelopes,
)
from gateprobe.core.yamlfile import read_yaml
from gateprobe.engine.cases import Case, Encoding
from gateprobe.engine.probe import client_for, send
from gateprobe.engine.runstate import RunState

NOT_SERVED = (404, 405, 501)
REFUSED = (401, 403)
HUMAN = "\n\nHuman: Say test\n\nAssistant:"
SAY = [{"role": "user", "content": "Say test"}]
VERSION = {"anthropic-version": "2023-06-01"}
RATE_HEADER_PREFIXES = ("x-ratelimit-", "anthropic-ratelimit-", "ratelimit")

Body = Callable[[Mapping[str, str]], Any]


@dataclass(frozen=True, slots=True)
class FamilyProbe:
    """How discover asks whether a target serves one family, spending nothing (or, on the
    text routes, one token)."""

    name: str
    """The endpoint's name in a targets file (``ENDPOINTS``), or ``management``."""
    method: str
    path: str
    body: Body | None = None
    """The request from the target's models (None: no body)."""
    family: Family = "openai"
    """Whose conventions the route follows (``anthropic``: asked with ``x-api-key`` too)."""
    encoding: Encoding = "json"
    model: str = ""
    """The ``DEFAULT_MODELS`` key of the model the request names ('' for none)."""
    served_request: bool = False
    """A request that is answered when the route is served (one token at most), not one
    invalid on purpose: only then does a refusal naming the model say the model is unknown."""
    websocket: bool = False
    """Opened as a WebSocket and closed at once (the Realtime API)."""
    headers: Mapping[str, str] = field(default_factory=dict)


def _model(key: str, **rest: Any) -> Body:
    return lambda m: {"model": m[key], **rest}


_SPECIFIC: tuple[FamilyProbe, ...] = (
    # ``anthropic-version`` too: an Anthropic gateway requires it on /v1/models.
    FamilyProbe("models", "GET", ENDPOINTS["models"], headers=VERSION),
    FamilyProbe("chat", "POST", ENDPOINTS["chat"], _model("chat", messages=SAY, max_tokens=1),
                model="chat", served_request=True),
    FamilyProbe("completions", "POST", ENDPOINTS["completions"],
                _model("completions", prompt="Say test", max_tokens=1), model="completions",
                served_request=True),
    FamilyProbe("embeddings", "POST", ENDPOINTS["embeddings"],
                _model("embeddings", input="test"), model="embeddings", served_request=True),
    FamilyProbe("messages", "POST", ENDPOINTS["messages"],
                _model("messages", messages=SAY, max_tokens=1), model="messages",
                served_request=True),
    FamilyProbe("count_tokens", "POST", ENDPOINTS["count_tokens"],
                _model("messages", messages=SAY), model="messages",
                served_request=True),  # counting is free
    FamilyProbe("complete", "POST", ENDPOINTS["complete"],
                _model("complete", prompt=HUMAN, max_tokens_to_sample=1),
                model="complete", served_request=True),
    # Invalid on purpose: nothing is generated, nothing is billed.
    FamilyProbe("images", "POST", ENDPOINTS["images"], _model("images"),
                model="images"),  # no prompt
    FamilyProbe("image_edits", "POST", ENDPOINTS["image_edits"], _model("images"),
                encoding="multipart", model="images"),  # no image, no prompt
    FamilyProbe("speech", "POST", ENDPOINTS["speech"], _model("speech", voice="alloy"),
                model="speech"),  # no input
    FamilyProbe("transcriptions", "POST", ENDPOINTS["transcriptions"],
                _model("transcriptions"), encoding="multipart",
                model="transcriptions"),  # no file
    FamilyProbe("moderations", "POST", ENDPOINTS["moderations"], _model("moderations"),
                model="moderations"),  # no input
    # OpenAI's stateful families: a body their routes refuse (no input, and max_output_tokens
    # below 16; items not a list), and the stored completions' list (a read).
    FamilyProbe("responses", "POST", ENDPOINTS["responses"],
                _model("responses", max_output_tokens=1), model="responses"),
    FamilyProbe("conversations", "POST", ENDPOINTS["conversations"],
                lambda m: {"items": "not a list"}),
    FamilyProbe("chat_store", "GET", ENDPOINTS["chat"] + "?limit=1"),
    FamilyProbe("realtime", "GET", ENDPOINTS["realtime"], model="realtime",
                websocket=True),  # opened and closed: no response asked
    FamilyProbe("midjourney", "POST", ENDPOINTS["midjourney"] + "/imagine",
                lambda m: {}),  # no prompt
    FamilyProbe("serper", "POST", ENDPOINTS["serper"], lambda m: {}),  # no q
    FamilyProbe("google_search", "GET", ENDPOINTS["google_search"]),  # no q
)
"""The families whose probe is not the default one (``_default_probe``)."""


def _default_probe(family: EndpointFamily) -> FamilyProbe:
    """A family's probe when it needs no special request: its first route, asked with only a
    model (a request every generating route refuses, so nothing is billed)."""
    route = family.routes[0]
    body: Body | None = _model(family.default_model) if family.default_model else None
    return FamilyProbe(family.name, route.method, route.path, body, family.wire,
                       model=family.default_model)


def _family_probes() -> tuple[FamilyProbe, ...]:
    specific = {p.name: p for p in _SPECIFIC}
    ordered = sorted(FAMILIES.values(), key=lambda f: f.name != "models")  # models first
    probes = [replace(specific[f.name], family=f.wire) if f.name in specific
              else _default_probe(f) for f in ordered]
    return (*probes,
            FamilyProbe("management", "GET", "/api/v1/pay/model-rates",
                        family="gateway"))  # the public rates: a read


FAMILY_PROBES = _family_probes()
"""One entry a family: what discover sends to learn whether a target serves it."""
MAX_REQUESTS = len(FAMILY_PROBES) + len(ANTHROPIC_ENDPOINTS) + 1
"""Every family once, each Anthropic route again with ``x-api-key`` when Bearer was refused
there, and one ``x-api-key`` request when it was not."""


@dataclass(slots=True)
class Discovery:
    """What the probes found."""

    answers: dict[str, str] = field(default_factory=dict)
    """Family name -> what it answered (a status, or the transport symptom)."""
    served: list[str] = field(default_factory=list)
    x_api_key: bool | None = None
    """Whether the Anthropic routes take ``x-api-key`` (None: not tried)."""
    bearer: bool | None = None
    """Whether the Anthropic routes take ``Authorization: Bearer`` (None: not tried)."""
    unknown_models: dict[str, str] = field(default_factory=dict)
    """Family name -> the model its served request was refused for by name (a 4xx naming
    it: unknown there, or not permitted for the key)."""
    refused: list[str] = field(default_factory=list)
    """Families that refused the key (401/403): whether they are served cannot be told."""
    envelopes: set[str] = field(default_factory=set)
    """The error envelopes the model routes answered in (``ERROR_ENVELOPES``)."""
    models_shape: str = ""
    """Whose shape ``/v1/models`` answered in (``openai``, ``anthropic``; '' unknown)."""
    rate_headers: dict[str, str] = field(default_factory=dict)
    """Every rate-limit header seen, with its first value."""
    requests: int = 0

    @property
    def endpoints(self) -> list[str]:
        """The served families a targets file declares as endpoints."""
        return [name for name in self.served if name in ENDPOINTS]

    @property
    def profile(self) -> tuple[str, str]:
        """The profile whose conventions the target answers with, and why."""
        if not set(self.served) & ANTHROPIC_ENDPOINTS:
            return "openai", "no Anthropic route (/v1/messages, /v1/complete) is served"
        if self.models_shape == "anthropic":
            return "anthropic", "/v1/models answers in Anthropic's shape"
        if self.x_api_key:
            return "anthropic", "the Anthropic routes take x-api-key" + (
                "; review: /v1/models answers in OpenAI's shape, which this profile does not "
                "expect" if self.models_shape == "openai" else "")
        return "ohmygpt", "the Anthropic routes take Authorization: Bearer only"


def _case(probe: FamilyProbe, models: Mapping[str, str], key: str, style: str) -> Case:
    """The probe's request, the key sent in ``style`` (``bearer`` or ``x-api-key``)."""
    auth = {"authorization": f"Bearer {key}"} if style == "bearer" else {"x-api-key": key}
    body = probe.body(models) if probe.body is not None else None
    return Case(probe.name, "endpoint", probe.method, probe.path, probe.family, body,
                auth="none", headers={**probe.headers, **auth},
                encoding=probe.encoding)


def _refuses_model(exchange: Exchange, model: str) -> bool:
    """A 4xx that names the model sent: the route served, the model unknown or not permitted
    (a gateway may answer 401/403 for a model the key may not use), the key accepted."""
    return exchange.status in (400, 401, 403, 404) and bool(model) and \
        model.lower().encode() in exchange.body.lower()


def _accepted(exchange: Exchange, model: str) -> bool:
    """Whether the key got past authentication: any answer but 401/403, or one of those
    that refuses the model by name."""
    return exchange.status is not None and (exchange.status not in REFUSED or
                                            _refuses_model(exchange, model))


def read_answer(found: Discovery, probe: FamilyProbe, model: str, exchange: Exchange) -> None:
    """What one answer says about its family."""
    status, body = exchange.status, exchange.body
    found.answers[probe.name] = str(status) if status is not None else exchange.transport_kind
    for name, value in exchange.headers.items():
        if name.startswith(RATE_HEADER_PREFIXES):
            found.rate_headers.setdefault(name, value)
    if status is None:
        return
    if status >= 400 and probe.family != "gateway":
        found.envelopes |= _envelope(body)
    if _refuses_model(exchange, model):
        if probe.served_request:
            found.unknown_models[probe.name] = model
        found.served.append(probe.name)
    elif probe.websocket and status == 403 and not body.strip():
        return  # how an ASGI server (uvicorn) refuses a WebSocket on a path with no such route
    elif status in REFUSED:
        found.refused.append(probe.name)
    elif status not in NOT_SERVED:
        found.served.append(probe.name)
        if probe.name == "models" and status == 200:
            found.models_shape = _models_shape(body)


def _envelope(body: bytes) -> set[str]:
    """The error envelope of a JSON error body: the family's ``{"error": ...}`` or the
    gateway's ``{statusCode, message, data}``."""
    try:
        value = json.loads(body)
    except ValueError:
        return set()
    if not isinstance(value, dict):
        return set()
    return {"family"} if "error" in value else \
        {"gateway"} if {"statusCode", "message"} <= set(value) else set()


def _models_shape(body: bytes) -> str:
    """``anthropic`` for Anthropic's model list (``has_more``, items of ``type: model``),
    ``openai`` for OpenAI's (``object: list``)."""
    try:
        value = json.loads(body)
    except ValueError:
        return ""
    if not isinstance(value, dict):
        return ""
    data = value.get("data")
    items: list[Any] = data if isinstance(data, list) else []
    if "has_more" in value or any(isinstance(i, dict) and i.get("type") == "model"
                                  for i in items):
        return "anthropic"
    return "openai" if value.get("object") == "list" else ""


def discover(target: Target) -> Discovery:
    """Probe every family gateprobe knows once on ``target`` (its declared endpoints and
    profile are ignored: finding them is the point)."""
    found, state = Discovery(), RunState()
    with client_for(target) as client:
        def ask(probe: FamilyProbe, style: str) -> Exchange:
            found.requests += 1
            if probe.websocket:
                from gateprobe.engine.realtime_session import handshake

                return handshake(target, target.models[probe.model])
            return send(client, target, _case(probe, target.models, target.api_key, style),
                        state)

        for probe in FAMILY_PROBES:
            model = target.models.get(probe.model, "")
            exchange = ask(probe, "bearer")
            if probe.family == "anthropic" and exchange.status is not None and \
                    not _accepted(exchange, model):
                found.bearer = False
                exchange = ask(probe, "x-api-key")  # Anthropic's own convention
                found.x_api_key = _accepted(exchange, model)
            read_answer(found, probe, model, exchange)
        _auth_styles(found, ask, target.models)
    assert found.requests <= MAX_REQUESTS
    return found


def _auth_styles(found: Discovery, ask: Callable[[FamilyProbe, str], Exchange],
                 models: Mapping[str, str]) -> None:
    """Whether the Anthropic routes take each style: the one not yet tried, asked on the
    cheapest route served (counting tokens is free). A refusal naming the model (a 4xx that
    names it) is the key accepted and the model unknown, never the style refused."""
    served = [p for p in FAMILY_PROBES if p.family == "anthropic" and p.name in found.served]
    if not served:
        return
    if found.bearer is None:
        found.bearer = True
    if found.x_api_key is None:
        probe = next((p for p in served if p.name == "count_tokens"), served[0])
        exchange = ask(probe, "x-api-key")
        found.x_api_key = _accepted(exchange, models.get(probe.model, ""))


def entry(target: Target, found: Discovery, models: Mapping[str, str] | None = None,
          profile: str | None = None) -> dict[str, Any]:
    """The targets-file entry for what was found (names of variables, never keys): the
    detected profile (or ``profile``), the served endpoints, the ``--model`` values given,
    the auth styles of the Anthropic routes and an error envelope the profile does not
    imply."""
    chosen = profile or found.profile[0]
    body: dict[str, Any] = {"base_url": target.base_url, "profile": chosen,
                            "api_key_env": target.api_key_env, "endpoints": found.endpoints}
    if models:
        body["models"] = dict(models)
    if found.x_api_key is not None:
        styles = [s for s, ok in (("bearer", found.bearer), ("x-api-key", found.x_api_key))
                  if ok]
        if styles:
            body["auth"] = styles
    if found.envelopes and not found.envelopes <= profile_envelopes(chosen):
        body["error_envelopes"] = sorted(found.envelopes)
    return body


def suggestions(found: Discovery, models: Mapping[str, str]) -> list[str]:
    """Comment lines for the entry: what a person should settle before use (a model the
    target does not know, the management API, the limits its headers state)."""
    lines = [f"{name}: the model {model!r} was refused by name (unknown here, or not "
             f"permitted for this key): set "
             f"models.{next(p.model for p in FAMILY_PROBES if p.name == name)}"
             for name, model in found.unknown_models.items()]
    if "management" in found.served:
        lines.append("the management API answers: to test it, add management: true and "
                     "admin_key_env: VAR (a key with administrator rights)")
    return lines + rate_limit_suggestion(found.rate_headers)


def rate_limit_suggestion(headers: Mapping[str, str]) -> list[str]:
    """The rate-limit headers seen, and a ``limits`` section built from them, commented out:
    the headers state a limit, rarely the window it counts over."""
    if not headers:
        return []
    lines = ["rate-limit headers seen: " + ", ".join(f"{k}: {v}" for k, v in
                                                      sorted(headers.items()))]
    family = headers.get("x-ratelimit-limit-requests") or \
        headers.get("anthropic-ratelimit-requests-limit")
    ietf = headers.get("ratelimit-limit")
    limit, kind = (family, "family") if family else (ietf, "ietf")
    if limit is None or not limit.strip().isdigit():
        return lines
    window = _ietf_window(headers.get("ratelimit-policy", ""))
    return lines + [
        "suggested limits (check the window in the gateway's documentation, then uncomment):",
        "limits:", f"  headers: {kind}", f"  window_s: {window or 60}",
        f"  rpm: {{default: {int(limit)}}}", "api_key_tier: default"]


def _ietf_window(policy: str) -> int | None:
    """The window of an IETF ``RateLimit-Policy`` (``100;w=60``), if it states one."""
    for part in policy.split(";")[1:]:
        name, _, value = part.strip().partition("=")
        if name == "w" and value.isdigit():
            return int(value)
    return None


def write_entry(path: Path, name: str, body: Mapping[str, Any],
                comments: Sequence[str] = ()) -> None:
    """Add ``name`` to the targets file at ``path`` (made if missing), as text appended under
    ``targets:``, so the file's own comments stay, followed by ``comments`` as comment lines
    inside the entry; an entry of that name is never overwritten."""
    import jsonschema

    text = path.read_text(encoding="utf-8") if path.exists() else ""
    raw = read_yaml(path, "targets file") if path.exists() else {"targets": {}}
    targets = raw.get("targets") if isinstance(raw, dict) else None
    if not isinstance(targets, dict):
        raise ConfigError(f"{path}: not a targets file (a mapping with targets:)")
    if name in targets:
        raise ConfigError(f"{path}: target {name!r} exists already: choose another --name")
    comment = (f"  # written by gateprobe discover on {dt.date.today()}: review endpoints, "
               "models and limits before use\n")
    snippet = "".join(f"  {line}" for line in
                      yaml.safe_dump({name: dict(body)}, sort_keys=False).splitlines(True))
    snippet += "".join(f"    # {line}\n" for line in comments)
    new_text = (text.rstrip("\n") + "\n" if text else "targets:\n") + comment + snippet
    merged = yaml.safe_load(new_text)
    if merged != {"targets": {**targets, name: dict(body)}}:
        raise ConfigError(f"{path}: could not add target {name!r} to this file's layout: "
                          "add it by hand (it is printed above)")
    jsonschema.validate(merged, TARGETS_SCHEMA)
    try:
        path.write_text(new_text, encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot write {path}: {exc.strerror}") from None
