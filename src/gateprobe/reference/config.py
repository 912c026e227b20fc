"""Configuration of the reference gateway: models, keys, tiers, timing.

Everything a ``gateprobe serve`` flag or file can change lives in ``GatewayConfig``; the app reads
nothing else. Files are validated here and each mistake becomes one ``ConfigError`` line.
"""

from __future__ import annotations

import difflib
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from gateprobe.core.errors import ConfigError
from gateprobe.core.yamlfile import read_yaml

Profile = Literal["ohmygpt", "anthropic", "openai"]

Api = Literal["chat", "completions", "complete", "messages", "embeddings", "images",
              "speech", "transcriptions", "moderations"]
APIS: tuple[Api, ...] = ("chat", "completions", "complete", "messages", "embeddings",
                         "images", "speech", "transcriptions", "moderations")

_PACKAGED_KEYS = Path(__file__).resolve().parents[1] / "_fixtures" / "keys.yaml"
_SOURCE_KEYS = Path(__file__).resolve().parents[3] / "fixtures" / "keys.yaml"
"""``fixtures/keys.yaml``: packaged inside a wheel, read in place from a checkout."""


@dataclass(frozen=True, slots=True)
class Model:
    """One model id the gateway serves."""

    id: str
    """The id clients send."""
    apis: frozenset[Api]
    """The APIs that accept this model; any other API answers 400 (the model exists)."""
    served_as: str
    """The more specific id put in responses (``claude-2`` answers as ``claude-2.0``)."""
    owned_by: str
    created: int
    """Unix time shown by ``/v1/models``; fixed so the listing is deterministic."""
    max_input_tokens: int | None = None
    """Input above this many tokens is refused (``claude-2-web``: 90,000)."""
    honours_only_basic: bool = False
    """Only model, messages and stream are honoured (the deprecated ``claude-2-web``)."""
    embedding_dims: int = 0


def _m(id_: str, apis: set[Api], served_as: str, owned_by: str, created: int, **kw: Any) -> Model:
    return Model(id_, frozenset(apis), served_as, owned_by, created, **kw)


DEFAULT_MODELS: tuple[Model, ...] = (
    _m("gpt-3.5-turbo", {"chat"}, "gpt-3.5-turbo-0125", "openai", 1677610602),
    _m("gpt-4o-mini", {"chat"}, "gpt-4o-mini-2024-07-18", "system", 1721172741),
    _m("gpt-3.5-turbo-instruct", {"completions"}, "gpt-3.5-turbo-instruct", "system", 1692901427),
    _m("text-embedding-3-small", {"embeddings"}, "text-embedding-3-small", "system", 1705948997,
       embedding_dims=1536),
    _m("claude-2", {"complete", "messages", "chat"}, "claude-2.0", "anthropic", 1689120000),
    _m("claude-instant-1", {"complete", "messages", "chat"}, "claude-instant-1.2", "anthropic",
       1691971200),
    # The deprecated gateway route: OpenAI chat format, 100k capacity with input capped at 90k.
    _m("claude-2-web", {"chat"}, "claude-2-web", "anthropic", 1689120000,
       max_input_tokens=90_000, honours_only_basic=True),
    _m("claude-3-opus", {"messages", "chat"}, "claude-3-opus-20240229", "anthropic", 1709164800),
    _m("claude-3-sonnet", {"messages", "chat"}, "claude-3-sonnet-20240229", "anthropic",
       1709164800),
    # The media families (images, audio, moderations): OpenAI's model names.
    _m("dall-e-2", {"images"}, "dall-e-2", "system", 1698798177),
    _m("dall-e-3", {"images"}, "dall-e-3", "system", 1698785189),
    _m("tts-1", {"speech"}, "tts-1", "openai-internal", 1681940951),
    _m("tts-1-hd", {"speech"}, "tts-1-hd", "system", 1699046015),
    _m("whisper-1", {"transcriptions"}, "whisper-1", "openai-internal", 1677532384),
    _m("omni-moderation-latest", {"moderations"}, "omni-moderation-2024-09-26", "system",
       1731689265),
    _m("text-moderation-latest", {"moderations"}, "text-moderation-007", "system",
       1719852315),
)


@dataclass(frozen=True, slots=True)
class ApiKey:
    """A key the gateway accepts, with its tier and model permissions."""

    key: str
    tier: str
    models: frozenset[str] | None
    """Models this key may use; ``None`` means all."""
    admin: bool = False
    """Whether it may call the management API (``/api/v1/user/admin/*``); only a keys file
    can grant it, never the API itself (the gateway documents that, for security)."""
    user: str = "1"
    """The account it belongs to: balance and key listings are per account."""

    def may_use(self, model: str) -> bool:
        """Whether the key's permission list includes ``model``."""
        return self.models is None or model in self.models


@dataclass(frozen=True, slots=True)
class Rate:
    """What a model costs, in credits per 1,000 tokens (our reading: the gateway documents
    ``/api/v1/pay/model-rates`` but not its shape nor its unit; see specs/management.yaml)."""

    input: float
    output: float


DEFAULT_RATES: Mapping[str, Rate] = {
    "gpt-3.5-turbo": Rate(500, 1500), "gpt-4o-mini": Rate(150, 600),
    "gpt-3.5-turbo-instruct": Rate(1500, 2000), "text-embedding-3-small": Rate(20, 0),
    "claude-2": Rate(8000, 24000), "claude-instant-1": Rate(800, 2400),
    "claude-2-web": Rate(100, 100), "claude-3-opus": Rate(15000, 75000),
    "claude-3-sonnet": Rate(3000, 15000),
}
"""The reference gateway's rate table; a model not in it is billed ``FALLBACK_RATE``."""
FALLBACK_RATE = Rate(1000, 1000)


@dataclass(frozen=True, slots=True)
class Tier:
    """Requests per window, per model group, for the keys of one tier."""

    name: str
    limits: Mapping[str, int]
    """Model id (or ``*`` for every other model) -> requests per window."""

    def limit_for(self, model: str) -> tuple[str, int] | None:
        """The budget group and limit that apply to ``model``, or None if unlimited."""
        if model in self.limits:
            return model, self.limits[model]
        if "*" in self.limits:
            return "*", self.limits["*"]
        return None


SERVE_SPIN_MS = 2.0
"""The spin of a gateway that is a load benchmark's ground truth (``gateprobe serve``'s
``--spin-ms``, and the benchmarks that start one in process)."""


@dataclass(frozen=True, slots=True)
class Timing:
    """The fake model's stream schedule."""

    ttft_ms: float = 200.0
    itl_ms: float = 20.0
    jitter_ms: float = 0.0
    spin_ms: float = 0.0
    """The last stretch before each send is waited by yielding to the loop instead of on a
    millisecond-resolution timer (see ``streaming.sleep_until``): sub-millisecond sends for a
    core's worth of CPU wherever the gaps are as short as the spin. ``gateprobe serve``, the
    ground truth of load benchmarks, spins ``SERVE_SPIN_MS`` unless told (``--spin-ms``); a
    gateway run in the same process as a command or a test does not: with 1-2 ms gaps it spun
    through every stream, a core taken from the load generator measuring it (``gateprobe
    run``'s latency phase) and from the rest of the test suite. Without it a send is never
    early, at most about a millisecond late."""
    prefill_us_per_token: float = 0.0
    """Each prompt token adds this many microseconds before the first token (``prefill.py``):
    TTFT grows with the prompt, as a real model's does; 0 (the default): it does not."""
    prefix_cache: bool = False
    """With a prefill cost: a prompt prefix seen before (whole 16-token blocks) costs none."""


@dataclass(frozen=True, slots=True)
class GatewayConfig:
    """Everything that shapes the reference gateway's behaviour."""

    profile: Profile = "ohmygpt"
    keys: Mapping[str, ApiKey] = field(default_factory=dict)
    tiers: Mapping[str, Tier] = field(default_factory=dict)
    models: Mapping[str, Model] = field(default_factory=lambda: {m.id: m for m in DEFAULT_MODELS})
    rate_window_s: float = 60.0
    timing: Timing = field(default_factory=Timing)
    seed: int = 0
    max_body_bytes: int = 32 * 1024 * 1024
    """Bodies above this get 413 (Anthropic documents 32 MB for the Messages API)."""
    max_inflight: int = 0
    """Requests in progress above this get 529 / 503 (overloaded); 0 means no limit."""
    capacity: int = 0
    """Answers generated at once; above it requests queue, first come first served, and their
    wait shows in their time to first token (``reference/capacity.py``); 0 means no limit."""
    trace_capacity: int = 10_000
    """How many recent requests keep their send-time trace."""
    faults: tuple[str, ...] = ()
    """Names from ``faults.CATALOGUE`` to apply (the harness's own proof)."""
    rate_algorithm: str = "sliding_window"
    """``sliding_window`` (at most the limit in any window-long interval) or ``token_bucket``
    (continuous refill at limit / window)."""
    error_envelope: str = "family"
    """``family``: errors in the OpenAI or Anthropic envelope of the route; ``gateway``: in the
    seeds' gateway's own ``{statusCode, message, data}`` (its real model routes answer so)."""
    balance: float = 1_000_000.0
    """Each account's starting balance, in credits (the management API's ``balance``)."""
    rates: Mapping[str, Rate] = field(default_factory=lambda: dict(DEFAULT_RATES))
    management_qps: bool = False
    """Enforce the management API's documented QPS limits per account (429 past them; the
    docs show no such answer: ours is the envelope with ``Retry-After: 1``)."""
    cut_after_s: float = 0.0
    """Like a CDN in front (the seeds' Cloudflare mirror cuts at 100 s): a non-streaming answer
    that would take longer gets a 524 HTML page at this many seconds instead; 0: never."""
    task_step_ms: float = 40.0
    """How long a Midjourney task stays at each stage of its life (seven stages to SUCCESS)."""


@dataclass(frozen=True, slots=True)
class KeysFile:
    """What a keys file defines: keys, tiers, and the models served (defaults plus extras)."""

    keys: dict[str, ApiKey]
    tiers: dict[str, Tier]
    models: dict[str, Model]

    def config(self, **overrides: Any) -> GatewayConfig:
        """A gateway configuration with this file's keys, tiers and models."""
        return GatewayConfig(keys=self.keys, tiers=self.tiers, models=self.models, **overrides)


def load_keys_file(path: Path) -> KeysFile:
    """Read a keys YAML file: ``tiers``, ``keys`` and optional extra ``models``."""
    raw = read_yaml(path, "keys file")
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: expected a mapping with 'tiers' and 'keys'")
    _no_unknown(path, "", raw, {"tiers", "keys", "models"})
    models = {m.id: m for m in DEFAULT_MODELS}
    models.update(_parse_models(path, raw.get("models") or {}))
    tiers = _parse_tiers(path, raw.get("tiers") or {})
    keys = _parse_keys(path, raw.get("keys") or {}, tiers, models)
    if not keys:
        raise ConfigError(f"{path}: 'keys' is empty: the gateway would refuse every request")
    return KeysFile(keys, tiers, models)


def _parse_models(path: Path, raw: Any) -> dict[str, Model]:
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: models: expected a mapping of model id -> {{apis: [...]}}")
    models: dict[str, Model] = {}
    for name, body in raw.items():
        where = f"models.{name}"
        if not isinstance(body, dict):
            raise ConfigError(f"{path}: {where}: expected a mapping with 'apis'")
        _no_unknown(path, where, body, {"apis", "served_as", "owned_by", "created",
                                        "max_input_tokens", "embedding_dims"})
        apis = body.get("apis")
        if not isinstance(apis, list) or not apis or any(a not in APIS for a in apis):
            raise ConfigError(f"{path}: {where}.apis: expected a non-empty list of "
                              f"{', '.join(APIS)}")
        for field_name in ("max_input_tokens", "embedding_dims", "created"):
            value = body.get(field_name)
            if value is not None and (not isinstance(value, int) or isinstance(value, bool)
                                      or value < 0):
                raise ConfigError(f"{path}: {where}.{field_name}: expected an integer >= 0")
        dims = body.get("embedding_dims", 1536 if "embeddings" in apis else 0)
        models[str(name)] = Model(
            str(name), frozenset(apis), str(body.get("served_as", name)),
            str(body.get("owned_by", "gateprobe")), body.get("created", 0),
            max_input_tokens=body.get("max_input_tokens"), embedding_dims=dims,
        )
    return models


def _parse_tiers(path: Path, raw: Any) -> dict[str, Tier]:
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: tiers: expected a mapping of tier name -> {{limits: ...}}")
    tiers: dict[str, Tier] = {}
    for name, body in raw.items():
        where = f"tiers.{name}"
        if not isinstance(body, dict):
            raise ConfigError(f"{path}: {where}: expected a mapping with 'limits'")
        _no_unknown(path, where, body, {"limits"})
        limits = body.get("limits") or {}
        if not isinstance(limits, dict):
            raise ConfigError(f"{path}: {where}.limits: expected model -> requests per window")
        for model, n in limits.items():
            if not isinstance(n, int) or isinstance(n, bool) or n < 0:
                raise ConfigError(f"{path}: {where}.limits.{model}: expected an integer >= 0")
        tiers[str(name)] = Tier(str(name), dict(limits))
    return tiers


def _parse_keys(path: Path, raw: Any, tiers: Mapping[str, Tier],
                catalogue: Mapping[str, Model]) -> dict[str, ApiKey]:
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: keys: expected a mapping of key -> {{tier, models}}")
    keys: dict[str, ApiKey] = {}
    for key, body in raw.items():
        where = f"keys.{key}"
        if not isinstance(body, dict):
            raise ConfigError(f"{path}: {where}: expected a mapping with 'tier'")
        _no_unknown(path, where, body, {"tier", "models", "exclude_models", "admin", "user"})
        tier = body.get("tier")
        if tier not in tiers:
            hint = _did_you_mean(str(tier), tiers)
            raise ConfigError(f"{path}: {where}.tier: unknown tier {tier!r}{hint}")
        models = body.get("models", "*")
        allowed: frozenset[str] | None
        if models == "*":
            allowed = None
        elif isinstance(models, list) and all(isinstance(m, str) for m in models):
            allowed = frozenset(models)
        else:
            raise ConfigError(f"{path}: {where}.models: expected '*' or a list of model ids")
        excluded = body.get("exclude_models", [])
        if not isinstance(excluded, list):
            raise ConfigError(f"{path}: {where}.exclude_models: expected a list of model ids")
        if excluded:
            base = allowed if allowed is not None else frozenset(catalogue)
            allowed = base - frozenset(excluded)
        admin = body.get("admin", False)
        if not isinstance(admin, bool):
            raise ConfigError(f"{path}: {where}.admin: expected true or false")
        keys[str(key)] = ApiKey(str(key), str(tier), allowed, admin, str(body.get("user", "1")))
    return keys


def _no_unknown(path: Path, where: str, body: Mapping[str, Any], known: set[str]) -> None:
    for name in body:
        if name not in known:
            prefix = f"{where}." if where else ""
            hint = _did_you_mean(str(name), known)
            raise ConfigError(f"{path}: {prefix}{name}: unknown field{hint}")


def _did_you_mean(word: str, options: Any) -> str:
    close = difflib.get_close_matches(word, [str(o) for o in options], n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def default_keys_path() -> Path:
    """The keys file used when none is given: ``$GATEPROBE_KEYS`` or the shipped fixture."""
    env = os.environ.get("GATEPROBE_KEYS")
    if env:
        return Path(env)
    return _PACKAGED_KEYS if _PACKAGED_KEYS.exists() else _SOURCE_KEYS
