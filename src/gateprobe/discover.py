"""``gateprobe discover``: what a gateway serves, found cheaply, written down for a person to
review as a targets-file entry.

One request per known endpoint (``max_tokens`` 1: at most a token each; OpenAI's stateful
families get a body their routes refuse, or a list), plus one to learn whether the Anthropic
routes also take ``x-api-key``: twelve requests at most. Our reading of the
answers, since no gateway documents "not served" the same way: a route is served unless it
answers 404, 405 or 501 without naming a model (OpenAI answers 404 for an unknown *model*,
which says the route exists), or nothing answers at all.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import yaml

from gateprobe.cases import Case
from gateprobe.errors import ConfigError
from gateprobe.probe import send
from gateprobe.runstate import RunState
from gateprobe.targets import ENDPOINTS, TARGETS_SCHEMA, Target
from gateprobe.yamlfile import read_yaml

MAX_REQUESTS = 12
NOT_SERVED = (404, 405, 501)
HUMAN = "\n\nHuman: Say test\n\nAssistant:"


@dataclass(slots=True)
class Discovery:
    """What the probes found."""

    answers: dict[str, str] = field(default_factory=dict)
    """Endpoint name -> what it answered (a status, or the transport symptom)."""
    served: list[str] = field(default_factory=list)
    x_api_key: bool | None = None
    """Whether the Anthropic routes take ``x-api-key`` too (None: not tried)."""
    requests: int = 0


def _probes(t: Target) -> dict[str, Case]:
    m = t.models
    say = [{"role": "user", "content": "Say test"}]
    return {
        "models": Case("models", "endpoint", "GET", ENDPOINTS["models"], "openai"),
        "chat": Case("chat", "endpoint", "POST", ENDPOINTS["chat"], "openai",
                     {"model": m["chat"], "messages": say, "max_tokens": 1}),
        "completions": Case("completions", "endpoint", "POST", ENDPOINTS["completions"],
                            "openai", {"model": m["completions"], "prompt": "Say test",
                                       "max_tokens": 1}),
        "embeddings": Case("embeddings", "endpoint", "POST", ENDPOINTS["embeddings"], "openai",
                           {"model": m["embeddings"], "input": "test"}),
        "messages": Case("messages", "endpoint", "POST", ENDPOINTS["messages"], "anthropic",
                         {"model": m["messages"], "messages": say, "max_tokens": 1}),
        "count_tokens": Case("count_tokens", "endpoint", "POST", ENDPOINTS["count_tokens"],
                             "anthropic", {"model": m["messages"], "messages": say}),
        "complete": Case("complete", "endpoint", "POST", ENDPOINTS["complete"], "anthropic",
                         {"model": m["complete"], "prompt": HUMAN,
                          "max_tokens_to_sample": 1}),
        # OpenAI's stateful families, without spending: a body their routes refuse (400:
        # max_output_tokens below 16, items not a list), and the stored completions' list.
        "responses": Case("responses", "endpoint", "POST", ENDPOINTS["responses"], "openai",
                          {"model": m["responses"], "input": "Say test",
                           "max_output_tokens": 1}),
        "conversations": Case("conversations", "endpoint", "POST", ENDPOINTS["conversations"],
                              "openai", {"items": "not a list"}),
        "chat_store": Case("chat_store", "endpoint", "GET", ENDPOINTS["chat"] + "?limit=1",
                           "openai"),
    }


def _served(status: int | None, body: bytes) -> bool:
    if status is None:
        return False
    return status not in NOT_SERVED or b"model" in body.lower()


def discover(target: Target) -> Discovery:
    """Probe every known endpoint of ``target`` once (a target's declared endpoints are
    ignored: finding them is the point)."""
    probe_target = Target(target.base_url, target.profile, target.api_key, target.api_key_env,
                          target.models, timeouts=target.timeouts,
                          endpoints=frozenset(ENDPOINTS))
    found, state = Discovery(), RunState()
    with httpx.Client() as client:
        for name, case in _probes(probe_target).items():
            exchange = send(client, probe_target, case, state)
            found.requests += 1
            found.answers[name] = str(exchange.status) if exchange.status is not None \
                else exchange.transport_kind
            if _served(exchange.status, exchange.body):
                found.served.append(name)
        if "messages" in found.served and target.profile != "anthropic":
            other = Case("x-api-key", "endpoint", "POST", ENDPOINTS["messages"], "anthropic",
                         _probes(probe_target)["messages"].body, auth="none",
                         headers={"x-api-key": target.api_key})
            exchange = send(client, probe_target, other, state)
            found.requests += 1
            found.x_api_key = exchange.status is not None and 200 <= exchange.status < 300
    assert found.requests <= MAX_REQUESTS
    return found


def entry(target: Target, found: Discovery) -> dict[str, Any]:
    """The targets-file entry for what was found (names of variables, never keys)."""
    body: dict[str, Any] = {"base_url": target.base_url, "profile": target.profile,
                            "api_key_env": target.api_key_env, "endpoints": list(found.served)}
    if found.x_api_key is not None:
        body["auth"] = ["bearer", "x-api-key"] if found.x_api_key else ["bearer"]
    return body


def write_entry(path: Path, name: str, body: Mapping[str, Any]) -> None:
    """Add ``name`` to the targets file at ``path`` (made if missing), as text appended under
    ``targets:``, so the file's own comments stay; an entry of that name is never overwritten.
    """
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
