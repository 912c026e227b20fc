"""Before any category or load: a request or two with the configured key tell a wrong setting
from a gateway's findings.

A refused key, a base URL that ends in ``/v1`` (the SDKs' habit; gateprobe adds ``/v1/...``
itself) or a profile whose auth style or routes the target does not answer would otherwise come
out as pages of ``response.status`` findings, and in CI a bad secret would look like a gateway
regression. Each is one ``ConfigError`` line (exit 2) instead, naming the variable, the URL or
the profile that fits.

Every request here is invalid on purpose (a body without ``model``): a gateway checks the key
before the body, so the answer says whether the key and route are good, and nothing reaches an
upstream model or spends a token.
"""

from __future__ import annotations

from dataclasses import replace

import httpx

from gateprobe.core.errors import ConfigError
from gateprobe.core.families import PATHS
from gateprobe.core.targets import Target
from gateprobe.engine.cases import Case
from gateprobe.engine.probe import client_for, send

ROUTES = {"openai": PATHS["chat"], "anthropic": PATHS["messages"]}
"""One route of each family: a profile's auth style shows on its own family's route."""
REFUSED = frozenset({401, 403})
WAIT_S = 10.0
"""The longest the preflight waits for an answer: a target that hangs is the run's to report
(as a transport finding), not worth a second wait here."""


def _status(client: httpx.Client, target: Target, family: str, auth: str = "default",
            ) -> int | None:
    """The status of the invalid-on-purpose request to ``family``'s route (None: no answer,
    which the run itself will report)."""
    case = Case("preflight", "endpoint", "POST", ROUTES[family], family,  # type: ignore[arg-type]
                {}, auth=auth)  # type: ignore[arg-type]
    return send(client, target, case).status


def _accepted(status: int | None) -> bool:
    """The key and route were good (the body's mistake, or anything but refused/not found)."""
    return status is not None and status not in REFUSED and status != 404


def preflight(target: Target) -> None:
    """``ConfigError`` (one line) when the target refuses the key everywhere, when the base
    URL's ``/v1`` suffix is the problem, or when its answers fit another profile."""
    families = [f for f, path in ROUTES.items() if target.serves(path)]
    if target.embedded or not target.api_key or not families:
        return
    t = target.timeouts
    target = replace(target, timeouts=replace(t, first_byte_s=min(t.first_byte_s, WAIT_S),
                                              idle_s=min(t.idle_s, WAIT_S),
                                              total_s=min(t.total_s, WAIT_S)))
    with client_for(target) as client:
        statuses: dict[str, int | None] = {}
        for family in families:
            statuses[family] = _status(client, target, family)
            if statuses[family] is None:
                return  # no answer: the run reports how the exchange broke
        if all(_accepted(s) for s in statuses.values()):
            return
        _base_url_suffix(client, target, statuses)
        _profile(client, target, statuses)
    if all(s in REFUSED for s in statuses.values()):
        said = " and ".join(f"{s} on POST {ROUTES[f]}" for f, s in statuses.items())
        raise ConfigError(f"the target refused the key in {target.api_key_env} ({said}, in "
                          f"every auth style): set {target.api_key_env} to a key it accepts")


def _base_url_suffix(client: httpx.Client, target: Target,
                     statuses: dict[str, int | None]) -> None:
    """A base URL ending in ``/v1`` whose routes answer once the suffix is dropped."""
    if not target.base_url.rstrip("/").endswith("/v1"):
        return
    stripped = replace(target, base_url=target.base_url.rstrip("/")[:-3])
    family = next(iter(statuses))
    if _accepted(_status(client, stripped, family)):
        raise ConfigError(
            f"the base URL {target.base_url} ends in /v1, and gateprobe adds /v1/... itself "
            f"(POST {target.base_url}{ROUTES[family]} answered {statuses[family]}): use "
            f"{stripped.base_url} as the base URL (--base-url, or base_url in its entry)")


def _profile(client: httpx.Client, target: Target, statuses: dict[str, int | None]) -> None:
    """A route that refuses the profile's auth style but takes the other, or Anthropic's
    routes not served where the profile assumes them: the profile that fits."""
    for family, status in statuses.items():
        if status not in REFUSED or not _accepted(_status(client, target, family,
                                                          "wrong_style")):
            continue
        sent_as = "x-api-key" if target.profile == "anthropic" and family == "anthropic" \
            else "Bearer"
        other = "Bearer" if sent_as == "x-api-key" else "x-api-key"
        fits = {"x-api-key": "anthropic", "Bearer": "ohmygpt"}[other] \
            if family == "anthropic" else ""
        raise ConfigError(
            f"the target refused the key sent as {sent_as} on POST {ROUTES[family]} ({status}) "
            f"but accepted it as {other}: profile {target.profile} does not fit it"
            + (f"; use --profile {fits} (or profile: {fits} in its entry)" if fits else ""))
    if target.endpoints is None and statuses.get("anthropic") == 404 \
            and _accepted(statuses.get("openai")):
        raise ConfigError(
            f"the target does not serve POST {ROUTES['anthropic']} (404), which profile "
            f"{target.profile} assumes: use --profile openai (or profile: openai in its "
            "entry), or declare its endpoints")
