"""A target: one gateway base URL, how to authenticate, which models to use.

Keys are read from environment variables when a command runs, never from files: a target holds
the variable's *name*, and the value only in memory.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from gateprobe.core.errors import ConfigError, TargetUnreachable, UsageError

PROFILES = ("ohmygpt", "anthropic", "openai")

DEFAULT_MODELS: Mapping[str, str] = {
    "chat": "gpt-3.5-turbo",
    "legacy_chat": "claude-2-web",
    "completions": "gpt-3.5-turbo-instruct",
    "embeddings": "text-embedding-3-small",
    "complete": "claude-2",
    "messages": "claude-3-sonnet",
    "realtime": "gpt-4o-realtime-preview",  # the seeds' realtime clients' (seeds-extra §3.3)
    "images": "dall-e-2",
    "speech": "tts-1",
    "transcriptions": "whisper-1",
    "moderations": "omni-moderation-latest",
    "responses": "gpt-4o-mini",
}
"""The models the seeds name, per endpoint family (override with ``--model ENDPOINT=NAME``)."""


ENDPOINTS: Mapping[str, str] = {
    "chat": "/v1/chat/completions",
    "completions": "/v1/completions",
    "embeddings": "/v1/embeddings",
    "models": "/v1/models",
    "messages": "/v1/messages",
    "count_tokens": "/v1/messages/count_tokens",
    "complete": "/v1/complete",
    "images": "/v1/images/generations",
    "image_edits": "/v1/images/edits",
    "speech": "/v1/audio/speech",
    "transcriptions": "/v1/audio/transcriptions",
    "moderations": "/v1/moderations",
    "realtime": "/v1/realtime",
    "midjourney": "/api/v1/ai/draw/mj",
    "serper": "/api/v1/openapi/search/serper/v1",
    "google_search": "/api/v1/openapi/search/google-search/v1",
    "responses": "/v1/responses",
    "conversations": "/v1/conversations",
    "chat_store": "/v1/chat/completions/{completion_id}",
}
"""The model endpoints gateprobe knows, by the name a targets file declares them with (a
family of routes by their common prefix: ``midjourney`` is every ``/api/v1/ai/draw/mj/*``;
``chat_store`` is the stored chat completions: ``GET /v1/chat/completions`` and
``/v1/chat/completions/{completion_id}[/messages]``, judged only when declared)."""
ANTHROPIC_ENDPOINTS = frozenset({"messages", "count_tokens", "complete"})
OPT_IN_ENDPOINTS = frozenset({"images", "image_edits", "speech", "transcriptions",
                              "moderations", "realtime", "midjourney", "serper",
                              "google_search", "responses", "conversations", "chat_store"})
"""Families no profile implies: only a target whose entry (or ``--endpoints``) declares one
gets its cases, probes and load; one that does not is not told they are "not served"."""
CORE_ENDPOINTS = frozenset(ENDPOINTS) - OPT_IN_ENDPOINTS
STRICTNESS = ("documented", "strict-upstream")
"""``documented``: what the target's documentation (or the APIs it copies) promises;
``strict-upstream``: the upstream APIs' letter too, where compatible gateways commonly differ
harmlessly (``usage: null`` on every stream chunk)."""
AUTH_STYLES = ("bearer", "x-api-key")
"""How a key may be sent: ``Authorization: Bearer KEY``, or Anthropic's ``x-api-key``."""
ERROR_ENVELOPES = ("family", "gateway")
"""The error bodies a target answers in: its route family's (``{"error": ...}``), or the seeds'
gateway's own ``{statusCode, message, errorType?, data}``."""
RATE_HEADERS = ("family", "ietf", "none")
"""The request-budget headers a target's limiter states: its route family's
(``x-ratelimit-*-requests``, ``anthropic-ratelimit-requests-*``), the IETF draft's
``RateLimit-Limit``/``-Remaining``/``-Reset``, or none (then not judged)."""
RATE_ALGORITHMS = ("unknown", "fixed_window", "sliding_window", "token_bucket")
"""How a target's limiter counts: the rate-limit verdicts allow what each may accept (a token
bucket, or an unknown limiter, what refills during the burst too)."""


def profile_envelopes(profile: str) -> frozenset[str]:
    """The error envelopes a target of ``profile`` may answer in when it does not say: the
    documented gateway's own as well as the family's (its model routes' 401s use it)."""
    return frozenset(ERROR_ENVELOPES) if profile == "ohmygpt" else frozenset({"family"})


def profile_endpoints(profile: str) -> frozenset[str]:
    """What a target of ``profile`` is assumed to serve when it does not say: the OpenAI
    routes under ``openai``, every route under the others."""
    return CORE_ENDPOINTS - ANTHROPIC_ENDPOINTS if profile == "openai" else CORE_ENDPOINTS


def check_endpoints(names: Iterable[str], where: str = "--endpoints") -> frozenset[str]:
    """Known endpoint names, at least one (``UsageError`` with a did-you-mean otherwise)."""
    import difflib

    chosen = frozenset(names)
    for name in sorted(chosen - set(ENDPOINTS)):
        close = difflib.get_close_matches(name, list(ENDPOINTS), n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise UsageError(f"{where}: unknown endpoint {name!r}{hint}; endpoints: "
                         f"{', '.join(ENDPOINTS)}")
    if not chosen:
        raise UsageError(f"{where}: name at least one endpoint")
    return chosen


@dataclass(frozen=True, slots=True)
class Timeouts:
    """Per-request bounds in seconds, used by every runner that sends requests."""

    connect_s: float = 10.0
    first_byte_s: float = 60.0
    """From sending to the first byte of the answer (the headers)."""
    idle_s: float = 30.0
    """Longest silence between two reads of a body or stream."""
    total_s: float = 300.0
    """One whole exchange, however the bytes trickle in."""

    def check(self) -> Timeouts:
        """Itself, every value positive and finite (``UsageError`` otherwise)."""
        import math

        for name in TIMEOUT_FIELDS:
            value = getattr(self, name)
            if not (isinstance(value, int | float) and math.isfinite(value) and value > 0):
                raise UsageError(f"timeout {name.removesuffix('_s').replace('_', '-')} must "
                                 f"be a positive number of seconds, got {value!r}")
        return self


TIMEOUT_FIELDS = ("connect_s", "first_byte_s", "idle_s", "total_s")


def flag_of(field: str) -> str:
    """The command-line flag of one field of ``Timeouts``: ``--timeout-first-byte-s``."""
    return "--timeout-" + field.removesuffix("_s").replace("_", "-") + "-s"


def add_timeout_flags(add: Callable[..., Any], fields: tuple[str, ...] = TIMEOUT_FIELDS) -> None:
    """Declare the flags of ``fields`` of ``Timeouts`` (``--timeout-first-byte-s`` and so on)
    with ``add``: argparse's ``add_argument`` or pytest's ``addoption``, which take the same
    arguments, so the CLI and the pytest plugin spell them once."""
    defaults = Timeouts()
    for name in fields:
        default = getattr(defaults, name)
        add(flag_of(name), dest="timeout_" + name, type=float, default=default, metavar="S",
            help=f"per request ({default:g})")


def timeouts_of(value: Callable[[str], Any], fields: tuple[str, ...] = TIMEOUT_FIELDS) -> Timeouts:
    """The checked ``Timeouts`` of parsed timeout flags; ``value(dest)`` reads one (argparse's
    ``getattr`` on its namespace, pytest's ``config.getoption``); fields not flagged keep
    their defaults."""
    return Timeouts(**{name: value("timeout_" + name) for name in fields}).check()


UPSTREAM_PROTOCOLS = ("openai", "anthropic")
"""The wire a target's gateway speaks to its upstream: the reference serves both; the
protocol picks the routes the ``propagation`` category sends (chat completions, messages)."""


@dataclass(frozen=True, slots=True)
class Upstream:
    """Where the reference upstream listens for a target's gateway (its ``upstream:``)."""

    host: str
    port: int
    protocol: str = "openai"

    @property
    def base_url(self) -> str:
        """The upstream's URL (its control API is under ``/_gateprobe/upstream``)."""
        return f"http://{self.host}:{self.port}"


PROPAGATION_CHECKS = ("propagation.truncation", "propagation.retry_after",
                      "propagation.status", "propagation.key_isolation",
                      "propagation.header_leak", "propagation.usage", "propagation.params",
                      "propagation.cancel", "propagation.retries")
"""The ``propagation`` category's check ids (``gateprobe.engine.propagation`` judges them)."""
PROPAGATION_DEVIATIONS = ("forwards_client_key",)
"""Named documented deviations: ``forwards_client_key``, the client's key is the upstream key
(bring-your-own-key gateways such as Portkey's open-source one)."""


@dataclass(frozen=True, slots=True)
class Propagation:
    """A gateway's documented deviations from the ``propagation`` expectations."""

    documented: frozenset[str] = frozenset()
    """Named deviations (``PROPAGATION_DEVIATIONS``) and check ids whose expectation the
    gateway documents otherwise: their findings become information lines."""
    forwarded_params: tuple[str, ...] | None = None
    """The request fields the gateway forwards (None: all of them), e.g. the seeds'
    ``claude-2-web``'s model, messages and stream."""
    timeout_s: float | None = None
    """Its declared upstream timeout (the slow-upstream status case runs only then)."""
    cancel_within_s: float = 5.0
    """How soon a client's hang-up must close the upstream request."""


@dataclass(frozen=True, slots=True)
class Target:
    """Where and how to reach one gateway."""

    base_url: str
    profile: str
    api_key: str = field(repr=False)
    api_key_env: str = "GATEPROBE_API_KEY"
    models: Mapping[str, str] = field(default_factory=lambda: dict(DEFAULT_MODELS))
    no_permission_key: str | None = field(default=None, repr=False)
    """A key that lacks the permission for ``models['legacy_chat']`` (auth tests skip without)."""
    timeouts: Timeouts = field(default_factory=Timeouts)
    name: str = ""
    """The target's name in the targets file ('' for one given by flags)."""
    tier_keys: Mapping[str, str] = field(default_factory=dict, repr=False)
    """Tier name -> key of that tier (the rate-limit scenario's keys)."""
    tier_key_envs: Mapping[str, str] = field(default_factory=dict)
    """Tier name -> the variable its key came from (named in reports, never the value)."""
    limits: Mapping[str, int] = field(default_factory=dict)
    """Tier name -> requests per window, as the target documents them."""
    window_s: float = 60.0
    allow_load: bool = False
    """Whether load may be sent to it when it is not on loopback (its targets-file entry)."""
    mirrors: Mapping[str, str] = field(default_factory=dict)
    embedded: bool = False
    """The reference gateway this process started (its keys are test keys, not secrets)."""
    endpoints: frozenset[str] | None = None
    """The endpoints it serves (names of ``ENDPOINTS``); None: its profile's."""
    api_key_tier: str | None = None
    """The tier of ``api_key`` (of ``limits``): a latency run paces under its limit."""
    rate_algorithm: str = "unknown"
    """How its limiter counts (``RATE_ALGORITHMS``)."""
    auth_styles: frozenset[str] | None = None
    """The ways it takes a key (``AUTH_STYLES``) on its Anthropic routes; None: undeclared, and
    a style beyond the profile's documented one is then not judged either way."""
    strictness: str = "documented"
    """How strictly it is held to the upstream APIs (``STRICTNESS``)."""
    max_tokens: int | None = None
    """The most tokens one request may ask it for (its entry's ``max_tokens``): every case and
    probe is clamped to it."""
    error_envelopes: frozenset[str] | None = None
    """The error envelopes it answers in (``ERROR_ENVELOPES``); None: its profile's."""
    rate_headers: str = "family"
    """The budget headers its limiter states (``RATE_HEADERS``)."""
    declared_models: frozenset[str] | None = None
    """The model roles its entry's ``models:`` names (None: it names none, and the profile's
    defaults are its models): a case needing a role it leaves out is not sent."""

    @property
    def envelopes(self) -> frozenset[str]:
        """The error envelopes accepted from it, as declared or as its profile implies."""
        return self.error_envelopes if self.error_envelopes is not None \
            else profile_envelopes(self.profile)
    no_permission_key_env: str = ""
    """The variable ``no_permission_key`` came from (a finding's ``curl`` repro names it)."""
    management: bool = False
    """Whether it serves the gateway's management API (keys, balance, model rates): the
    ``management`` and ``billing`` categories run only then."""
    admin_key: str | None = field(default=None, repr=False)
    """A key with administrator rights (the management API takes no other)."""
    admin_key_env: str | None = None
    other_admin_key: str | None = field(default=None, repr=False)
    """An admin key of another account (the listing-isolation case is narrower without)."""
    allow_management: bool = False
    """Whether keys may be created and deleted on it when it is not on loopback."""
    allow_spend: float | None = None
    """Credits the billing category may spend on it when it is not on loopback."""
    upstream: Upstream | None = None
    """The reference upstream it routes to, as configured by a person (the ``propagation``
    category runs only then)."""
    headers: Mapping[str, str] = field(default_factory=dict, repr=False)
    """Extra headers every request carries (a gateway's routing headers); values may be
    secrets (from environment variables), so they are redacted like keys."""
    propagation: Propagation = field(default_factory=lambda: Propagation())
    """Its documented deviations from the propagation expectations."""

    @property
    def management_refusal(self) -> str:
        """Why the management and billing categories may not run ('' when they may)."""
        if not self.management or not self.admin_key:
            return "the target declares no management API (management: true, admin_key_env)"
        if self.is_loopback or self.allow_management:
            return ""
        return f"not loopback and target {self.name or self.base_url!r} does not set " \
               "allow_management: true"

    @property
    def spend_refusal(self) -> str:
        """Why the billing category may not spend on it ('' when it may)."""
        refusal = self.management_refusal
        if refusal or self.is_loopback or self.allow_spend:
            return refusal
        return f"not loopback and target {self.name or self.base_url!r} does not set " \
               "allow_spend: <credits>"

    @property
    def served(self) -> frozenset[str]:
        """The names of the endpoints it serves, as declared or as its profile implies."""
        return self.endpoints if self.endpoints is not None else profile_endpoints(self.profile)

    def serves(self, path: str) -> bool:
        """Whether a request to ``path`` is for an endpoint the target serves: nothing is
        sent, judged or loaded outside them."""
        served = {ENDPOINTS[name] for name in self.served}
        path = path.split("?", 1)[0]  # a query string names no other endpoint
        if path in _KNOWN_PATHS:
            return path in served
        parents = [known for known in _KNOWN_PATHS if path.startswith(known + "/")]
        return not parents or max(parents, key=len) in served  # /v1/models/{id}: models

    @property
    def not_served(self) -> list[str]:
        """The known endpoints it does not serve (said once in a report, never a finding);
        the opt-in families it does not declare are not listed."""
        return [path for name, path in ENDPOINTS.items()
                if name not in self.served and name not in OPT_IN_ENDPOINTS]

    @property
    def secrets(self) -> tuple[str, ...]:
        """Every key value in use, for redaction and the key-echo check."""
        return tuple(k for k in (self.api_key, self.no_permission_key, self.admin_key,
                                 self.other_admin_key, *self.tier_keys.values(),
                                 *self.secret_headers) if k)

    @property
    def secret_headers(self) -> tuple[str, ...]:
        """The values of extra headers taken from environment variables."""
        return tuple(self.headers[name] for name in self.header_envs if name in self.headers)

    header_envs: Mapping[str, str] = field(default_factory=dict)
    """Extra header name -> the variable its value came from."""

    @property
    def pace_s(self) -> float:
        """Seconds between two requests that keep its key under its declared limit
        (``api_key_tier`` and ``limits``), 0 when none is declared."""
        limit = self.limits.get(self.api_key_tier or "")
        return self.window_s / limit if limit else 0.0

    @property
    def load_refusal(self) -> str:
        """Why load may not be sent to this target ('' when it may): only loopback, or an
        entry that says ``allow_load: true``, is ever loaded."""
        if self.is_loopback or self.allow_load:
            return ""
        if self.name:
            return f"not loopback and target {self.name!r} does not set allow_load: true"
        return "not loopback: load needs a target entry with allow_load: true"

    def describe(self) -> dict[str, str]:
        """The target as reports show it (no key, no variable's value)."""
        return {"name": self.name or ("embedded" if self.embedded else ""),
                "base_url": self.base_url, "profile": self.profile}

    @property
    def is_loopback(self) -> bool:
        """Whether the target is on this machine (no cost guards needed)."""
        return is_loopback_url(self.base_url)

    @property
    def serves_anthropic(self) -> bool:
        """Whether it serves any of the Anthropic-native routes."""
        return bool(self.served & ANTHROPIC_ENDPOINTS)


@dataclass(frozen=True, slots=True)
class TargetChoice:
    """Which target a command is pointed at, as the user said it: a targets-file entry, a
    URL with flags, or neither (the embedded reference gateway)."""

    target: str | None = None
    targets_file: Path = Path("targets.yaml")
    base_url: str | None = None
    profile: str = "ohmygpt"
    api_key_env: str = "GATEPROBE_API_KEY"
    no_permission_key_env: str | None = None
    models: tuple[str, ...] = ()
    """``ENDPOINT=NAME`` overrides."""
    tier_key_envs: Mapping[str, str] = field(default_factory=dict)
    """``TIER=VAR`` from flags, over the entry's."""
    limits: Mapping[str, int] = field(default_factory=dict)
    window_s: float | None = None
    timeouts: Timeouts = field(default_factory=Timeouts)
    api_key_optional: bool = False
    """The command sends only tier keys (rate-limits): the API key is read if it is set."""
    endpoints: frozenset[str] | None = None
    """The endpoints the target serves, over its entry's (``--endpoints``)."""
    rate_algorithm: str | None = None
    """How its limiter counts, over its entry's (``--rate-algorithm``)."""
    rate_headers: str | None = None
    """The budget headers its limiter states, over its entry's (``--rate-headers``)."""

    @property
    def is_embedded(self) -> bool:
        """Neither a target nor a URL: the command starts the reference gateway."""
        return not self.target and not self.base_url


def resolve_target(choice: TargetChoice, *, read_keys: bool = True) -> Target:
    """The one resolution of flags or a targets-file entry into a ``Target``, keys read from
    the environment once (``read_keys=False`` for dry runs: placeholders, nothing read).
    The embedded gateway is not resolved here: ``gateprobe.engine.embedded`` starts it."""
    if choice.target and choice.base_url:
        raise UsageError("give --target or --base-url, not both")
    if choice.is_embedded:
        raise UsageError("no target: give --target or --base-url")
    models = model_overrides(list(choice.models))
    key = key_from_env if read_keys else (lambda variable: "dry-run")
    if choice.target:
        entry = target_entry(choice.targets_file.resolve(), choice.target)
        target = entry.resolve(models, read_keys=read_keys, timeouts=choice.timeouts,
                               api_key_optional=choice.api_key_optional)
    else:
        assert choice.base_url is not None
        no_permission = choice.no_permission_key_env
        api_key = os.environ.get(choice.api_key_env, "") \
            if choice.api_key_optional and read_keys else key(choice.api_key_env)
        target = Target(check_base_url(choice.base_url), choice.profile,
                        api_key, choice.api_key_env,
                        {**DEFAULT_MODELS, **models},
                        key(no_permission) if no_permission else None, choice.timeouts,
                        no_permission_key_env=no_permission or "")
    if choice.endpoints is not None:
        target = replace(target, endpoints=check_endpoints(choice.endpoints))
    if choice.rate_algorithm is not None:
        target = replace(target, rate_algorithm=choice.rate_algorithm)
    if choice.rate_headers is not None:
        target = replace(target, rate_headers=choice.rate_headers)
    if choice.tier_key_envs or choice.limits or choice.window_s:
        envs = {**target.tier_key_envs, **choice.tier_key_envs}
        target = replace(target, tier_key_envs=envs,
                         tier_keys=tier_keys_of(envs, read_keys),
                         limits={**target.limits, **choice.limits},
                         window_s=choice.window_s or target.window_s)
    return target


def tier_keys_of(envs: Mapping[str, str], read_keys: bool = True) -> dict[str, str]:
    """The tier keys whose variables are set (placeholders for all without ``read_keys``).
    Only the rate-limit scenario sends them, and it refuses to run while one is missing; other
    commands must not fail for a variable they never use."""
    if not read_keys:
        return {t: "dry-run" for t in envs}
    return {t: os.environ[v] for t, v in envs.items() if os.environ.get(v)}


_KNOWN_PATHS = frozenset(ENDPOINTS.values())


def is_loopback_url(url: str) -> bool:
    """Whether ``url`` names this machine: the only place load and fuzzing need no opt-in."""
    host = urlsplit(url).hostname or ""
    return host in {"localhost", "::1"} or host.startswith("127.")


def trusted_cas() -> tuple[str | None, str | None]:
    """The CA file and directory to trust instead of the default bundle, as httpx (and so the
    SDKs) read them: ``SSL_CERT_FILE``, ``SSL_CERT_DIR``. The runners on other HTTP clients
    (Locust's, schemathesis's requests) are told the same, so every runner trusts alike."""
    return os.environ.get("SSL_CERT_FILE") or None, os.environ.get("SSL_CERT_DIR") or None


def credentials(profile: str, family: str, key: str) -> dict[str, str]:
    """The header a gateway of ``profile`` expects a key in, for a route of ``family``:
    ``x-api-key`` on Anthropic's own API, a bearer token everywhere else (the seeds' gateway
    takes bearer tokens on its Anthropic-compatible routes too)."""
    if family == "anthropic" and profile == "anthropic":
        return {"x-api-key": key}
    return {"authorization": f"Bearer {key}"}


def key_from_env(variable: str) -> str:
    """The key held by ``variable``; a ``ConfigError`` naming the variable (never a value)."""
    value = os.environ.get(variable, "")
    if not value:
        raise ConfigError(f"environment variable {variable} is not set: it must hold the "
                          "target's API key")
    return value


def check_base_url(url: str) -> str:
    """An http(s) URL without a trailing slash, or a ``UsageError``."""
    parts = urlsplit(url)
    if parts.scheme not in {"http", "https"} or not parts.hostname:
        raise UsageError(f"--base-url must be an http(s) URL, got {url!r}")
    return url.rstrip("/")


def check_reachable(base_url: str) -> None:
    """``TargetUnreachable`` when nothing answers at ``base_url`` (any answer will do: the
    headers are enough, and the body is not read, so a gateway that trickles it cannot hold
    the run up)."""
    import httpx

    try:
        with httpx.stream("GET", base_url.rstrip("/") + "/v1/models",
                          timeout=httpx.Timeout(5.0)):
            pass
    except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
        text = str(exc)
        if "SSL" in text or "certificate" in text.lower():
            raise TargetUnreachable(f"TLS handshake with {base_url} failed: "
                                    f"{text.split(' (_ssl.c')[0][:160]}") from None
        raise TargetUnreachable(f"cannot connect to {base_url} ({type(exc).__name__})") \
            from None
    except httpx.HTTPError:
        pass  # it answered something: reachable; the probes judge what


def model_overrides(pairs: list[str]) -> dict[str, str]:
    """Only the models ``ENDPOINT=NAME`` flags name."""
    models: dict[str, str] = {}
    for pair in pairs:
        name, sep, model = pair.partition("=")
        if not sep or name not in DEFAULT_MODELS or not model:
            raise UsageError(f"--model takes ENDPOINT=NAME with ENDPOINT one of "
                             f"{', '.join(DEFAULT_MODELS)}; got {pair!r}")
        models[name] = model
    return models


# -- the targets file -------------------------------------------------------------------------
_ENV_NAME = r"^[A-Za-z_][A-Za-z0-9_]*$"
_ENV = {"type": "string", "pattern": _ENV_NAME}
_LISTEN = r"^(127\.[0-9]+\.[0-9]+\.[0-9]+|localhost):[0-9]{1,5}$"
TARGETS_SCHEMA: dict[str, object] = {
    "type": "object",
    "required": ["targets"],
    "additionalProperties": False,
    "properties": {
        "targets": {
            "type": "object",
            "minProperties": 1,
            "additionalProperties": {
                "type": "object",
                "required": ["base_url", "profile", "api_key_env"],
                "additionalProperties": False,
                "properties": {
                    "base_url": {"type": "string", "pattern": "^https?://[^/]+"},
                    "profile": {"enum": list(PROFILES)},
                    "api_key_env": _ENV,
                    "no_permission_key_env": _ENV,
                    "models": {"type": "object", "additionalProperties": False,
                               "properties": {k: {"type": "string", "minLength": 1}
                                              for k in DEFAULT_MODELS}},
                    "tier_keys": {"type": "object", "additionalProperties": _ENV},
                    "limits": {"type": "object", "additionalProperties": False,
                               "properties": {
                                   "window_s": {"type": "number", "exclusiveMinimum": 0},
                                   "algorithm": {"enum": list(RATE_ALGORITHMS)},
                                   "headers": {"enum": list(RATE_HEADERS)},
                                   "rpm": {"type": "object", "additionalProperties": {
                                       "type": "integer", "minimum": 0}}}},
                    "allow_load": {"type": "boolean"},
                    "api_key_tier": {"type": "string", "minLength": 1},
                    "auth": {"type": "array", "minItems": 1, "uniqueItems": True,
                             "items": {"enum": list(AUTH_STYLES)}},
                    "strictness": {"enum": list(STRICTNESS)},
                    "error_envelopes": {"type": "array", "minItems": 1, "uniqueItems": True,
                                        "items": {"enum": list(ERROR_ENVELOPES)}},
                    "max_tokens": {"type": "integer", "minimum": 1},
                    "endpoints": {"type": "array", "minItems": 1, "uniqueItems": True,
                                  "items": {"enum": list(ENDPOINTS)}},
                    "mirrors": {"type": "object", "additionalProperties": {
                        "type": "string", "pattern": "^https?://[^/]+"}},
                    "management": {"type": "boolean"},
                    "admin_key_env": _ENV,
                    "other_admin_key_env": _ENV,
                    "allow_management": {"type": "boolean"},
                    "allow_spend": {"type": "number", "exclusiveMinimum": 0},
                    "upstream": {"type": "object", "required": ["listen"],
                                 "additionalProperties": False, "properties": {
                                     "listen": {"type": "string",
                                                "pattern": _LISTEN},
                                     "protocol": {"enum": list(UPSTREAM_PROTOCOLS)}}},
                    "headers": {"type": "object", "propertyNames": {
                        "pattern": "^[A-Za-z0-9-]+$"}, "additionalProperties": {
                        "oneOf": [{"type": "string"},
                                  {"type": "object", "required": ["env"],
                                   "additionalProperties": False,
                                   "properties": {"env": _ENV}}]}},
                    "propagation": {"type": "object", "additionalProperties": False,
                                    "properties": {
                                        "documented": {"type": "array", "uniqueItems": True,
                                                       "items": {"enum": [
                                                           *PROPAGATION_CHECKS,
                                                           *PROPAGATION_DEVIATIONS]}},
                                        "forwarded_params": {"type": "array", "minItems": 1,
                                                             "items": {"type": "string"}},
                                        "timeout_s": {"type": "number",
                                                      "exclusiveMinimum": 0},
                                        "cancel_within_s": {"type": "number",
                                                            "exclusiveMinimum": 0}}},
                },
            },
        }
    },
}
"""The documented schema of ``targets.yaml`` (see ``targets.example.yaml``)."""

_SECRETISH = ("key", "api_key", "token", "secret", "password")
_MANAGEMENT_KEYS = ("management", "admin_key_env", "other_admin_key_env", "allow_management",
                    "allow_spend")


@dataclass(frozen=True, slots=True)
class TargetEntry:
    """One target as written in the file: names of variables, never keys."""

    name: str
    base_url: str
    profile: str
    api_key_env: str
    no_permission_key_env: str | None = None
    models: Mapping[str, str] = field(default_factory=dict)
    tier_keys: Mapping[str, str] = field(default_factory=dict)
    window_s: float = 60.0
    rpm: Mapping[str, int] = field(default_factory=dict)
    allow_load: bool = False
    mirrors: Mapping[str, str] = field(default_factory=dict)
    endpoints: frozenset[str] | None = None
    api_key_tier: str | None = None
    rate_algorithm: str = "unknown"
    auth: frozenset[str] | None = None
    strictness: str = "documented"
    max_tokens: int | None = None
    error_envelopes: frozenset[str] | None = None
    rate_headers: str = "family"
    management: Mapping[str, Any] = field(default_factory=dict)
    """``management``, ``admin_key_env``, ``other_admin_key_env``, ``allow_management``,
    ``allow_spend`` as written."""
    upstream: Upstream | None = None
    headers: Mapping[str, Any] = field(default_factory=dict)
    """Extra headers as written: a value, or ``{env: VAR}``."""
    propagation: Propagation = field(default_factory=Propagation)

    def resolve(self, models: Mapping[str, str] | None = None, *, read_keys: bool = True,
                timeouts: Timeouts | None = None, api_key_optional: bool = False) -> Target:
        """The target, with its keys read from the environment now (placeholders when
        ``read_keys`` is false: a dry run needs no key; an optional API key is '' when its
        variable is unset)."""
        key = key_from_env if read_keys else (lambda variable: "dry-run")
        no_permission = key(self.no_permission_key_env) if self.no_permission_key_env \
            else None
        api_key = os.environ.get(self.api_key_env, "") if api_key_optional and read_keys \
            else key(self.api_key_env)
        return Target(check_base_url(self.base_url), self.profile, api_key,
                      self.api_key_env, {**DEFAULT_MODELS, **self.models, **(models or {})},
                      no_permission, timeouts or Timeouts(), name=self.name,
                      tier_keys=tier_keys_of(self.tier_keys, read_keys),
                      tier_key_envs=dict(self.tier_keys), limits=dict(self.rpm),
                      window_s=self.window_s, allow_load=self.allow_load,
                      mirrors=dict(self.mirrors), endpoints=self.endpoints,
                      api_key_tier=self.api_key_tier, rate_algorithm=self.rate_algorithm,
                      auth_styles=self.auth, strictness=self.strictness,
                      max_tokens=self.max_tokens, error_envelopes=self.error_envelopes,
                      rate_headers=self.rate_headers,
                      declared_models=frozenset({**self.models, **(models or {})})
                      if self.models else None,
                      no_permission_key_env=self.no_permission_key_env or "",
                      upstream=self.upstream, propagation=self.propagation,
                      headers=headers_of(self.headers, key),
                      header_envs={k: v["env"] for k, v in self.headers.items()
                                   if isinstance(v, dict)},
                      **_management_fields(self.management, key))


def headers_of(raw: Mapping[str, Any], key: Callable[[str], str]) -> dict[str, str]:
    """The extra headers' values, those from environment variables read now."""
    return {name: key(value["env"]) if isinstance(value, dict) else str(value)
            for name, value in raw.items()}


def upstream_of(raw: Mapping[str, Any] | None) -> Upstream | None:
    """The ``upstream:`` of an entry (already validated by the schema)."""
    if raw is None:
        return None
    host, _, port = raw["listen"].rpartition(":")
    return Upstream(host, int(port), raw.get("protocol", "openai"))


def propagation_of(raw: Mapping[str, Any]) -> Propagation:
    """The ``propagation:`` deviations of an entry."""
    params = raw.get("forwarded_params")
    return Propagation(frozenset(raw.get("documented", ())),
                       tuple(params) if params is not None else None,
                       raw.get("timeout_s"), float(raw.get("cancel_within_s", 5.0)))


def _management_fields(raw: Mapping[str, Any], key: Callable[[str], str]) -> dict[str, Any]:
    """The Target fields of an entry's management switches (admin keys read now)."""
    if not raw.get("management"):
        return {}
    other = raw.get("other_admin_key_env")
    return {"management": True, "admin_key": key(raw["admin_key_env"]),
            "admin_key_env": raw["admin_key_env"],
            "other_admin_key": key(other) if other else None,
            "allow_management": bool(raw.get("allow_management", False)),
            "allow_spend": raw.get("allow_spend")}


def load_targets(path: Path) -> dict[str, TargetEntry]:
    """Read and validate a targets file; every mistake is reported at once, one
    ``ConfigError`` line each (a user fixes them in one go, not one a run)."""
    import jsonschema

    from gateprobe.core.yamlfile import read_yaml

    raw = read_yaml(path, "targets file")
    mistakes = _literal_keys(raw)
    errors = sorted(jsonschema.Draft202012Validator(TARGETS_SCHEMA).iter_errors(raw),
                    key=lambda e: list(map(str, e.absolute_path)))
    mistakes += [line for e in errors for line in _describe(e)
                 if not any(line.startswith(m.split(":")[0] + ":") for m in mistakes)]
    if not errors:
        mistakes += _unlimited_tiers(raw["targets"])
    if mistakes:
        raise ConfigError("\n".join(f"{path}: {m}" for m in dict.fromkeys(mistakes)))
    entries = {}
    for name, body in raw["targets"].items():
        limits = body.get("limits", {})
        if body.get("management") and "admin_key_env" not in body:
            raise ConfigError(f"{path}: targets.{name}.management: true needs admin_key_env "
                              "(the variable holding a key with administrator rights)")
        entries[name] = TargetEntry(
            name, body["base_url"], body["profile"], body["api_key_env"],
            body.get("no_permission_key_env"), body.get("models", {}),
            body.get("tier_keys", {}), float(limits.get("window_s", 60.0)),
            limits.get("rpm", {}), bool(body.get("allow_load", False)),
            body.get("mirrors", {}),
            frozenset(body["endpoints"]) if "endpoints" in body else None,
            body.get("api_key_tier"), limits.get("algorithm", "unknown"),
            frozenset(body["auth"]) if "auth" in body else None,
            body.get("strictness", "documented"), body.get("max_tokens"),
            frozenset(body["error_envelopes"]) if "error_envelopes" in body else None,
            limits.get("headers", "family"),
            {k: body[k] for k in _MANAGEMENT_KEYS if k in body},
            upstream_of(body.get("upstream")), body.get("headers", {}),
            propagation_of(body.get("propagation", {})))
    return entries


def _unlimited_tiers(targets: Mapping[str, Any]) -> list[str]:
    """A declared key tier without a limit: nothing to pace under."""
    out = []
    for name, body in targets.items():
        tier = body.get("api_key_tier")
        if tier is not None and tier not in body.get("limits", {}).get("rpm", {}):
            out.append(f"targets.{name}.api_key_tier: tier {tier!r} has no limit in "
                       "limits.rpm")
    return out


def target_entry(path: Path, name: str) -> TargetEntry:
    """One named target of a file, with a did-you-mean when the name is unknown."""
    import difflib

    entries = load_targets(path)
    if name not in entries:
        close = difflib.get_close_matches(name, list(entries), n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else \
            f" (known: {', '.join(sorted(entries))})"
        raise ConfigError(f"{path}: no target {name!r}{hint}")
    return entries[name]


def _literal_keys(raw: object) -> list[str]:
    """A key written into a file ends up in git; refuse it, naming the field, never the value
    (each such field is one mistake, reported before the schema's)."""
    out: list[str] = []
    targets = raw.get("targets") if isinstance(raw, dict) else None
    for name, body in (targets or {}).items() if isinstance(targets, dict) else ():
        if not isinstance(body, dict):
            continue
        out += [f"targets.{name}.{field_name}: keys are never written in files; put it in an "
                "environment variable and name that with api_key_env"
                for field_name in body if field_name in _SECRETISH]
        headers = body.get("headers")
        out += [f"targets.{name}.headers.{header}: a credential is never written in files; "
                "write {env: VARIABLE} and put the value in that environment variable"
                for header, value in (headers.items() if isinstance(headers, dict) else ())
                if isinstance(value, str) and _is_credential_header(header)]
        for field_name in ("api_key_env", "no_permission_key_env", "admin_key_env",
                           "other_admin_key_env"):
            value = body.get(field_name)
            if isinstance(value, str) and not re.fullmatch(_ENV_NAME, value):
                out.append(f"targets.{name}.{field_name}: must name an environment variable "
                           "(this value looks like a key itself; it is not shown)")
    return out


def _is_credential_header(name: str) -> bool:
    """Whether a header carries a credential by its name (its value must come from the
    environment)."""
    words = set(name.lower().replace("_", "-").split("-"))
    return bool(words & {"authorization", "cookie", "key", "apikey", "token", "secret",
                         "password", "auth"})


def _describe(error: Any) -> list[str]:
    """The lines of one schema error: where, what, and a did-you-mean for each unknown
    field."""
    import difflib

    where = "/".join(map(str, error.absolute_path)).replace("/", ".") or "(top level)"
    if error.validator == "additionalProperties" and isinstance(error.instance, dict):
        allowed = list(error.schema.get("properties", {}))
        extra = [k for k in error.instance if k not in allowed]
        lines = []
        for key in extra:
            close = difflib.get_close_matches(str(key), allowed, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            lines.append(f"{where}.{key}: unknown field{hint}")
        if lines:
            return lines
    if where.endswith(".upstream.listen") and error.validator == "pattern":
        return [f"{where}: must be 127.0.0.1:PORT (or localhost:PORT): the upstream listens "
                "on loopback only"]
    if ".headers" in where and error.validator in ("pattern", "propertyNames", "oneOf"):
        return [f"{where}: a header is a name of letters, digits and '-' with a string value "
                "or {env: VARIABLE}"]
    if error.validator == "pattern" and "://" in str(error.validator_value):
        return [f"{where}: must be an http(s) URL"]
    if error.validator == "pattern":
        return [f"{where}: must name an environment variable"]
    return [f"{where}: {error.message}"]
