"""The embedded reference gateway, and the one way every command gets its target.

Every command (conformance, load, run, gate, compare) defaults to the reference gateway on a
free loopback port. It is started here and nowhere else, and described by a ``Target`` that
carries its test keys in memory: nothing is written to the environment of this process. (The
Locust subprocess gets its keys in its own environment; see ``gateprobe.commands.load.runner``.)
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass

from gateprobe.core.console import Console
from gateprobe.core.errors import UsageError
from gateprobe.core.targets import (
    DEFAULT_MODELS,
    Target,
    TargetChoice,
    check_endpoints,
    check_reachable,
    model_overrides,
    profile_endpoints,
    resolve_target,
)
from gateprobe.reference import Timing, running_gateway
from gateprobe.reference.config import default_keys_path, load_keys_file

KEY = "gp-vip-0001"
NO_PERMISSION_KEY = "gp-nomodel-0001"
ADMIN_KEYS = ("gp-admin-0001", "gp-admin-0002")
"""Admin keys of two accounts (``fixtures/keys.yaml``): the management API's callers."""
TIER_LIMITS: Mapping[str, int] = {"free": 12, "vip": 60, "premium": 90}
MEDIA_ENDPOINTS = frozenset({"images", "image_edits", "speech", "transcriptions", "moderations"})
GATEWAY_API_ENDPOINTS = frozenset({"midjourney", "serper", "google_search"})
RESPONSES_ENDPOINTS = frozenset({"responses", "conversations", "chat_store"})
"""OpenAI's stateful APIs: the Responses API, Conversations, stored chat completions."""


def reference_endpoints(profile: str) -> frozenset[str]:
    """What the reference gateway serves under ``profile``: its profile's model routes, the
    media families under every profile, the Realtime API beside OpenAI's routes, and the
    seeds' gateway's own APIs under its profile."""
    served = profile_endpoints(profile) | MEDIA_ENDPOINTS
    served |= frozenset({"realtime"}) | RESPONSES_ENDPOINTS if profile != "anthropic" \
        else frozenset()
    return served | (GATEWAY_API_ENDPOINTS if profile == "ohmygpt" else frozenset())


EMBEDDED_ENDPOINTS = reference_endpoints("ohmygpt")
"""Every family the reference gateway serves: the embedded target declares them all (the
opt-in families included, as each lands in the reference gateway)."""
"""The documented tiers (requests per window), as ``fixtures/keys.yaml`` configures them."""


@dataclass(frozen=True, slots=True)
class Embedded:
    """How a command runs the reference gateway: its schedule, its rate window, and which key
    of each tier the rate-limit scenario uses (``gateprobe run`` uses the second, so the budget
    its conformance phase spent is not the one it measures)."""

    ttft_ms: float = 200.0
    itl_ms: float = 20.0
    jitter_ms: float = 0.0
    rate_window_s: float = 60.0
    tier_key_number: int = 1

    @property
    def timing(self) -> Timing:
        """The fake model's schedule."""
        return Timing(self.ttft_ms, self.itl_ms, self.jitter_ms)

    def describe(self) -> str:
        """The schedule, for the line that says where the gateway listens."""
        return (f"TTFT {self.ttft_ms:g} ms, ITL {self.itl_ms:g} ms, rate window "
                f"{self.rate_window_s:g} s")


def _target(base_url: str, embedded: Embedded, choice: TargetChoice) -> Target:
    tiers = {t: f"gp-{t}-{embedded.tier_key_number:04d}" for t in TIER_LIMITS}
    return Target(
        base_url, "ohmygpt", KEY, "GATEPROBE_EMBEDDED_KEY",
        {**DEFAULT_MODELS, **model_overrides(list(choice.models))}, NO_PERMISSION_KEY,
        choice.timeouts, name="embedded", tier_keys=tiers,
        tier_key_envs={t: f"GATEPROBE_EMBEDDED_{t.upper()}_KEY" for t in tiers},
        limits=dict(TIER_LIMITS), window_s=embedded.rate_window_s, embedded=True,
        rate_algorithm=choice.rate_algorithm or "sliding_window",
        auth_styles=frozenset({"bearer"}),  # as the documented gateway: Bearer only
        strictness="strict-upstream",  # our double follows the upstream wire to the letter
        management=True, admin_key=ADMIN_KEYS[0], admin_key_env="GATEPROBE_EMBEDDED_ADMIN_KEY",
        other_admin_key=ADMIN_KEYS[1],
        endpoints=check_endpoints(choice.endpoints) if choice.endpoints is not None
        else EMBEDDED_ENDPOINTS,
        no_permission_key_env="GATEPROBE_EMBEDDED_NO_PERMISSION_KEY")


@contextmanager
def embedded_target(embedded: Embedded, choice: TargetChoice | None = None,
                    console: Console | None = None) -> Iterator[Target]:
    """The reference gateway with the shipped test keys, running for the block."""
    choice = choice or TargetChoice()
    config = load_keys_file(default_keys_path()).config(
        timing=embedded.timing, rate_window_s=embedded.rate_window_s)
    with running_gateway(config) as gateway:
        if console is not None:
            console.line(f"embedded reference gateway at {gateway.base_url} "
                         f"({embedded.describe()})")
        yield _target(gateway.base_url, embedded, choice)


@contextmanager
def open_target(choice: TargetChoice, embedded: Embedded, console: Console | None = None, *,
                dry_run: bool = False, preflight: bool = False) -> Iterator[Target]:
    """The command's target for the block: the one a user named (keys read now, reachability
    checked, and with ``preflight`` a wrong key, base URL or profile refused in one line), or
    the embedded gateway started for it. A dry run reads no key, starts nothing and contacts
    nobody."""
    if not choice.is_embedded:
        target = resolve_target(choice, read_keys=not dry_run)
        if not dry_run:
            check_reachable(target.base_url)
            if preflight:
                from gateprobe.engine.preflight import preflight as check_settings

                check_settings(target)
        yield target
    elif dry_run:
        yield _target("http://127.0.0.1:0", embedded, choice)
    else:
        with embedded_target(embedded, choice, console) as target:
            yield target



@contextmanager
def upstream_for(target: Target) -> Iterator[str]:
    """The URL of the target's declared upstream for the block: the reference already
    listening at its ``listen`` address (``gateprobe serve --upstream``), or one started
    there now (the gateway was configured to send its model to that address)."""
    import httpx

    from gateprobe.reference.upstream import running_upstream

    upstream = target.upstream
    if upstream is None:
        raise UsageError(f"target {target.name or target.base_url!r} declares no upstream")
    try:
        httpx.get(upstream.base_url + "/_gateprobe/upstream/health", timeout=2.0)
    except httpx.HTTPError:
        with running_upstream(upstream.host, upstream.port) as running:
            yield running.base_url
        return
    yield upstream.base_url
