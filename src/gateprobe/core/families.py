"""The endpoint families gateprobe knows, each defined once: the registry everything reads.

A family is one group of routes with one wire convention (``chat``: OpenAI's chat
completions; ``messages``: Anthropic's Messages API; ``serper``: the seeds' gateway's search
proxy). Its record says what the targets file calls it, which routes it has, whose
conventions it follows (auth header, error envelope, stream grammar), which profiles have it,
whether a target must opt in to it, which spec documents it, and where the pieces that serve
or probe it live. Every other module asks here instead of spelling a path: ``targets`` (what a
target serves), ``reference.app`` (what the reference mounts), ``load`` (a route's wire),
``discover``, ``cases``, ``probe``, ``compare``.

The pieces in higher layers (a cases builder, a load request builder, the reference's
handler, an SDK call) are named as ``"module:attribute"`` strings and imported only when
``resolve`` is called, so this base module imports nothing above it.

Adding a family: one ``EndpointFamily`` entry below, its protocol module, its reference
module, its spec and its tests (``docs/reference/families.md``).
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

Wire = Literal["openai", "anthropic", "gateway"]
"""Whose conventions a route follows: OpenAI's (Bearer, ``{"error": {...}}``), Anthropic's
(``x-api-key`` or Bearer, ``anthropic-version``, ``{"type": "error", ...}``) or the seeds'
gateway's own envelope (``{statusCode, message, data}``)."""
ModelWire = Literal["openai", "anthropic"]
"""The two upstream model APIs' conventions: the envelopes the reference renders."""
Family = Wire
"""The wire a check or case is judged by (the older name, kept for its many readers)."""

PROFILES = ("ohmygpt", "anthropic", "openai")
"""The gateway conventions a target can follow (``targets.PROFILES``)."""
ALL_PROFILES = frozenset(PROFILES)
NOT_ANTHROPIC = frozenset({"ohmygpt", "openai"})
NOT_OPENAI = frozenset({"ohmygpt", "anthropic"})
SEEDS_GATEWAY = frozenset({"ohmygpt"})


@dataclass(frozen=True, slots=True)
class Route:
    """One method on one path (a ``{name}`` is a path parameter)."""

    method: str
    path: str


@dataclass(frozen=True, slots=True)
class EndpointFamily:
    """One endpoint family: everything gateprobe needs to know about it, in one record."""

    name: str
    """Its name in a targets file (``endpoints: [chat, messages]``) and on the command line."""
    path: str
    """The family's route: every path below it (``path/...``) belongs to it too, unless a
    family with a longer path claims it (``chat_store`` under ``chat``)."""
    wire: Wire
    """Whose conventions it follows."""
    routes: tuple[Route, ...]
    """The methods and paths it serves (the reference mounts them; the spec documents them)."""
    spec: str
    """The spec in ``specs/`` that documents it (``specs.SpecName``)."""
    profiles: frozenset[str] = ALL_PROFILES
    """The profiles whose gateways have it (the reference serves it under these)."""
    opt_in: bool = False
    """No profile implies it: only a target that declares it gets its cases, probes, load."""
    cases: str = ""
    """``module:function`` building its conformance cases from a ``Target`` ('' for none)."""
    load_request: str = ""
    """``module:function`` building its load request (``stream_body(plan, name)``) when the
    load runner can stream it ('' for none)."""
    reference: str = ""
    """``module:attribute``: the reference gateway's handler of its main route."""
    sdk: str = ""
    """``package: method``: the official SDK call ``conformance/test_sdk.py`` makes on it
    ('' for none)."""
    default_model: str = ""
    """The ``targets.DEFAULT_MODELS`` key of the model its requests name ('' for none)."""
    alias_of: str = ""
    """The family whose requests and answers it carries on its own route ('' for none): a
    gateway's copy of an API under another path (``/azure/v1/chat/completions``). Its cases
    are the original's sent to the copy, its answers judged by the original's schemas, and
    the reference serves it with the original's handler."""

    @property
    def implied_by(self) -> frozenset[str]:
        """The profiles that assume a target serves it when the target does not say."""
        return frozenset() if self.opt_in else self.profiles

    def operations(self) -> list[tuple[str, str, str]]:
        """``(method, path, operationId)`` of every operation its spec documents under it."""
        from gateprobe.core.specs import load_spec

        ops: list[tuple[str, str, str]] = []
        for path, item in load_spec(self.spec)["paths"].items():
            if owner(path) is not self:
                continue
            ops += [(method.upper(), path, op["operationId"]) for method, op in item.items()
                    if isinstance(op, dict) and "operationId" in op]
        return ops


STREAM_BODY = "gateprobe.commands.load.locustlib:stream_body"


def _post(path: str) -> tuple[Route, ...]:
    return (Route("POST", path),)


FAMILIES: Mapping[str, EndpointFamily] = {f.name: f for f in (
    EndpointFamily("chat", "/v1/chat/completions", "openai", _post("/v1/chat/completions"),
                   "openai", cases="gateprobe.engine.cases:endpoint_cases",
                   load_request=STREAM_BODY,
                   reference="gateprobe.reference.openai_api:chat_completions",
                   sdk="openai: chat.completions.create", default_model="chat"),
    EndpointFamily("completions", "/v1/completions", "openai", _post("/v1/completions"),
                   "openai", cases="gateprobe.engine.cases:endpoint_cases",
                   reference="gateprobe.reference.openai_api:completions",
                   default_model="completions",
                   sdk="openai: completions.create"),
    EndpointFamily("embeddings", "/v1/embeddings", "openai", _post("/v1/embeddings"),
                   "openai", cases="gateprobe.engine.cases:endpoint_cases",
                   reference="gateprobe.reference.openai_api:embeddings",
                   default_model="embeddings",
                   sdk="openai: embeddings.create"),
    EndpointFamily("models", "/v1/models", "openai",
                   (Route("GET", "/v1/models"), Route("GET", "/v1/models/{model}")), "openai",
                   cases="gateprobe.engine.cases:endpoint_cases",
                   reference="gateprobe.reference.openai_api:list_models",
                   sdk="openai: models.list"),
    EndpointFamily("messages", "/v1/messages", "anthropic", _post("/v1/messages"),
                   "anthropic", NOT_OPENAI, cases="gateprobe.engine.cases:endpoint_cases",
                   reference="gateprobe.reference.anthropic_api:messages",
                   default_model="messages",
                   load_request=STREAM_BODY, sdk="anthropic: messages.create"),
    EndpointFamily("count_tokens", "/v1/messages/count_tokens", "anthropic",
                   _post("/v1/messages/count_tokens"), "anthropic", NOT_OPENAI,
                   cases="gateprobe.engine.cases:endpoint_cases",
                   reference="gateprobe.reference.anthropic_api:count_message_tokens",
                   default_model="messages",
                   sdk="anthropic: messages.count_tokens"),
    EndpointFamily("complete", "/v1/complete", "anthropic", _post("/v1/complete"),
                   "anthropic", NOT_OPENAI, cases="gateprobe.engine.cases:endpoint_cases",
                   reference="gateprobe.reference.anthropic_api:complete",
                   default_model="complete",
                   load_request=STREAM_BODY, sdk="anthropic: completions.create"),
    EndpointFamily("images", "/v1/images/generations", "openai",
                   _post("/v1/images/generations"), "openai", opt_in=True,
                   cases="gateprobe.engine.cases:media_cases",
                   reference="gateprobe.reference.images:generations", default_model="images"),
    EndpointFamily("image_edits", "/v1/images/edits", "openai", _post("/v1/images/edits"),
                   "openai", opt_in=True, cases="gateprobe.engine.cases:media_cases",
                   reference="gateprobe.reference.images:edits", default_model="images"),
    EndpointFamily("speech", "/v1/audio/speech", "openai", _post("/v1/audio/speech"),
                   "openai", opt_in=True, cases="gateprobe.engine.cases:media_cases",
                   reference="gateprobe.reference.audio:speech", default_model="speech",
                   load_request=STREAM_BODY),
    EndpointFamily("transcriptions", "/v1/audio/transcriptions", "openai",
                   _post("/v1/audio/transcriptions"), "openai", opt_in=True,
                   cases="gateprobe.engine.cases:media_cases",
                   reference="gateprobe.reference.audio:transcriptions",
                   default_model="transcriptions"),
    EndpointFamily("moderations", "/v1/moderations", "openai", _post("/v1/moderations"),
                   "openai", opt_in=True, cases="gateprobe.engine.cases:media_cases",
                   reference="gateprobe.reference.moderations:moderations",
                   default_model="moderations"),
    EndpointFamily("responses", "/v1/responses", "openai", _post("/v1/responses"), "openai",
                   NOT_ANTHROPIC, opt_in=True, cases="gateprobe.engine.cases:responses_cases",
                   reference="gateprobe.reference.responses:routes",
                   default_model="responses",
                   load_request=STREAM_BODY, sdk="openai: responses.create"),
    EndpointFamily("conversations", "/v1/conversations", "openai",
                   _post("/v1/conversations"), "openai", NOT_ANTHROPIC, opt_in=True,
                   reference="gateprobe.reference.conversations:routes"),
    EndpointFamily("chat_store", "/v1/chat/completions/{completion_id}", "openai",
                   (Route("GET", "/v1/chat/completions"),
                    Route("GET", "/v1/chat/completions/{completion_id}")), "openai",
                   NOT_ANTHROPIC, opt_in=True,
                   reference="gateprobe.reference.conversations:routes"),
    EndpointFamily("realtime", "/v1/realtime", "openai", (Route("GET", "/v1/realtime"),),
                   "openai", NOT_ANTHROPIC, opt_in=True,
                   reference="gateprobe.reference.realtime:route", default_model="realtime"),
    EndpointFamily("midjourney", "/api/v1/ai/draw/mj", "gateway",
                   _post("/api/v1/ai/draw/mj/imagine"), "gateway", SEEDS_GATEWAY, opt_in=True,
                   cases="gateprobe.engine.cases:gateway_api_cases",
                   reference="gateprobe.reference.midjourney:Midjourney"),
    EndpointFamily("serper", "/api/v1/openapi/search/serper/v1", "gateway",
                   _post("/api/v1/openapi/search/serper/v1"), "gateway", SEEDS_GATEWAY,
                   opt_in=True, cases="gateprobe.engine.cases:gateway_api_cases",
                   reference="gateprobe.reference.search:routes"),
    EndpointFamily("google_search", "/api/v1/openapi/search/google-search/v1", "gateway",
                   (Route("GET", "/api/v1/openapi/search/google-search/v1"),), "gateway",
                   SEEDS_GATEWAY, opt_in=True, cases="gateprobe.engine.cases:gateway_api_cases",
                   reference="gateprobe.reference.search:routes"),
    # The seeds' gateway's Azure OpenAI copy of chat completions (seeds-extra §3.4: the
    # request URL is /azure/v1/chat/completions; its headers and api-version: not found).
    EndpointFamily("azure_chat", "/azure/v1/chat/completions", "openai",
                   _post("/azure/v1/chat/completions"), "openai", SEEDS_GATEWAY, opt_in=True,
                   cases="gateprobe.engine.cases:alias_cases",
                   reference="gateprobe.reference.openai_api:chat_completions",
                   default_model="chat", alias_of="chat"),
)}
"""Every family, by name, in the order reports list them."""


def canonical(path: str) -> str:
    """The route whose shapes a request path follows: an alias family's original route for
    a path under an alias (``/azure/v1/chat/completions`` -> ``/v1/chat/completions``), the
    path itself otherwise."""
    f = owner(path)
    if f is None or not f.alias_of:
        return path
    return FAMILIES[f.alias_of].path + path.split("?", 1)[0][len(f.path):]


def served_under(profile: str) -> frozenset[str]:
    """The families a gateway following ``profile`` has (what the reference serves)."""
    return frozenset(name for name, f in FAMILIES.items() if profile in f.profiles)


def family(name: str) -> EndpointFamily:
    """The family called ``name`` (``KeyError`` for an unknown one)."""
    return FAMILIES[name]


PATHS: Mapping[str, str] = {name: f.path for name, f in FAMILIES.items()}
"""Each family's route by name: ``PATHS["messages"]`` is the one spelling of
``/v1/messages`` in the source."""
OPT_IN = frozenset(name for name, f in FAMILIES.items() if f.opt_in)
CORE = frozenset(FAMILIES) - OPT_IN


def of_wire(wire: Wire) -> frozenset[str]:
    """The names of the families following ``wire``'s conventions."""
    return frozenset(name for name, f in FAMILIES.items() if f.wire == wire)


def implied_by(profile: str) -> frozenset[str]:
    """The families a target of ``profile`` is assumed to serve when it does not say."""
    return frozenset(name for name, f in FAMILIES.items() if profile in f.implied_by)


def owner(path: str) -> EndpointFamily | None:
    """The family a request path belongs to: the one with the longest route it is, or is
    under (a query string is ignored; ``{param}`` segments match any one segment)."""
    path = path.split("?", 1)[0]
    best: EndpointFamily | None = None
    for f in FAMILIES.values():
        if _under(path, f.path) and (best is None or len(f.path) > len(best.path)):
            best = f
    return best


def _under(path: str, prefix: str) -> bool:
    got, want = path.rstrip("/").split("/"), prefix.split("/")
    if len(got) < len(want):
        return False
    return all(w == g or (w.startswith("{") and w.endswith("}"))
               for w, g in zip(want, got, strict=False))


def wire_of(path: str, default: Wire = "openai") -> Wire:
    """Whose conventions a request path follows (``default`` for a path no family owns)."""
    f = owner(path)
    return f.wire if f is not None else default


def resolve(reference: str) -> Any:
    """The object a ``module:attribute`` reference names, imported now (not at import time,
    so this module stays in the base layer)."""
    module, _, attribute = reference.partition(":")
    return getattr(importlib.import_module(module), attribute)

