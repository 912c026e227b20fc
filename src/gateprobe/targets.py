"""A target: one gateway base URL, how to authenticate, which models to use.

Keys are read from environment variables when a command runs, never from files: a target holds
the variable's *name*, and the value only in memory.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from gateprobe.errors import ConfigError, UsageError

PROFILES = ("ohmygpt", "anthropic", "openai")

DEFAULT_MODELS: Mapping[str, str] = {
    "chat": "gpt-3.5-turbo",
    "legacy_chat": "claude-2-web",
    "completions": "gpt-3.5-turbo-instruct",
    "embeddings": "text-embedding-3-small",
    "complete": "claude-2",
    "messages": "claude-3-sonnet",
}
"""The models the seeds name, per endpoint family (override with ``--model ENDPOINT=NAME``)."""


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

    @property
    def secrets(self) -> tuple[str, ...]:
        """Every key value in use, for redaction and the key-echo check."""
        return tuple(k for k in (self.api_key, self.no_permission_key) if k)

    @property
    def is_loopback(self) -> bool:
        """Whether the target is on this machine (no cost guards needed)."""
        host = urlsplit(self.base_url).hostname or ""
        return host in {"localhost", "::1"} or host.startswith("127.")

    @property
    def serves_anthropic(self) -> bool:
        """Whether the profile has the Anthropic-native routes."""
        return self.profile != "openai"


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


def parse_models(pairs: list[str]) -> dict[str, str]:
    """``ENDPOINT=NAME`` flags over the defaults; an unknown endpoint is a ``UsageError``."""
    models = dict(DEFAULT_MODELS)
    for pair in pairs:
        name, sep, model = pair.partition("=")
        if not sep or name not in DEFAULT_MODELS or not model:
            raise UsageError(f"--model takes ENDPOINT=NAME with ENDPOINT one of "
                             f"{', '.join(DEFAULT_MODELS)}; got {pair!r}")
        models[name] = model
    return models
