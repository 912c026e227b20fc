"""``gateprobe discover``: what a gateway serves, as a targets-file entry to review."""

from __future__ import annotations

import argparse
import re
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml

from gateprobe.cli._flags import add_target_flags, choice_from
from gateprobe.cli._help import Help, command_parser
from gateprobe.commands.discover import (
    MAX_REQUESTS,
    Discovery,
    discover,
    entry,
    suggestions,
    write_entry,
)
from gateprobe.core.console import Console
from gateprobe.core.errors import ConfigError
from gateprobe.core.targets import model_overrides
from gateprobe.engine.embedded import Embedded, open_target

HELP = Help(
    f"find what a gateway serves and which profile it answers as (at most {MAX_REQUESTS} "
    "requests, nothing generated beyond one token a text route) and write it as a "
    "targets-file entry to review",
    f"Find what a gateway serves with at most {MAX_REQUESTS} requests: every family "
    "gateprobe knows (the text routes with one token each; images, speech, "
    "transcriptions, moderations, Midjourney and search with a request invalid on purpose, "
    "so nothing is generated; the Realtime route opened and closed; the management API's "
    "public rates). Detects the profile (auth style of the Anthropic routes, shape of "
    "/v1/models) and the error envelope, tells a model the target does not know from a "
    "refused key, keeps the --model values given, and suggests limits from the rate-limit "
    "headers seen. Prints a targets-file entry, and adds it to a targets file with --write, "
    "for you to review before use.",
    ("discover --base-url https://gw.example                 # (real gateway)",
     "discover --base-url https://gw.example --model chat=gpt-4o-mini --write targets.yaml "
     "--name staging   # (real gateway)",
     "discover --write discovered.yaml --name reference     # the embedded gateway"),
    (0, 2, 3, 130))
"""The command's help text."""


def add_parser(sub: Any) -> None:
    """The ``discover`` command's flags (``--profile``: detected unless given)."""
    parser = command_parser(sub, "discover", HELP)
    add_target_flags(parser)
    parser.set_defaults(profile=None)
    parser.add_argument("--write", metavar="FILE",
                        help="add the entry to this targets file (made if missing)")
    parser.add_argument("--name", metavar="NAME",
                        help="the entry's name (default: from the host name)")


def command(args: argparse.Namespace, console: Console) -> int:
    """Probe, print the table and the entry, write it if asked; 0."""
    given = args.profile
    args.profile = given or "ohmygpt"  # probing does not depend on it
    models = model_overrides(args.model)
    with open_target(choice_from(args), Embedded(ttft_ms=5, itl_ms=1), console) as target:
        found = discover(target)
    console.table(["family", "answered", "served"],
                  [[name, answer, _served_cell(found, name)]
                   for name, answer in found.answers.items()])
    if not found.served and found.refused:
        raise ConfigError(f"every route refused the key (401/403): check "
                          f"{target.api_key_env}; nothing could be found")
    profile, why = found.profile
    console.line(f"profile: {profile} ({why})" + (
        f"; kept --profile {given} as given" if given and given != profile else ""))
    if found.x_api_key is not None:
        console.line(f"x-api-key on the Anthropic routes: "
                     f"{'accepted' if found.x_api_key else 'refused'}")
    if found.envelopes:
        console.line("error envelope of the model routes: " + ", ".join(sorted(found.envelopes)))
    body = entry(target, found, models, given)
    notes = suggestions(found, target.models)
    name = args.name or _name_of(target.base_url)
    console.line(f"{found.requests} requests sent; the entry:")
    console.line(yaml.safe_dump({"targets": {name: body}}, sort_keys=False).rstrip())
    for line in notes:
        console.line(f"    # {line}")
    if args.write:
        write_entry(Path(args.write), name, body, notes)
        console.line(f"added target {name!r} to {args.write}: review it before use")
    return 0


def _served_cell(found: Discovery, name: str) -> str:
    if name in found.unknown_models:
        return f"yes, but not the model {found.unknown_models[name]!r}"
    if name in found.refused:
        return "cannot tell: the key was refused"
    return "yes" if name in found.served else "no"


def _name_of(base_url: str) -> str:
    host = urlsplit(base_url).hostname or "gateway"
    return re.sub(r"[^A-Za-z0-9]+", "-", host).strip("-") or "gateway"
