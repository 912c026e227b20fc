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
from gateprobe.console import Console
from gateprobe.discover import MAX_REQUESTS, discover, entry, write_entry
from gateprobe.embedded import Embedded, open_target

HELP = Help(
    f"find what a gateway serves (at most {MAX_REQUESTS} requests, one token each) and write "
    "it as a targets-file entry to review",
    f"Find what a gateway serves with at most {MAX_REQUESTS} requests of one token each: "
    "which endpoints answer, whether /v1/messages takes x-api-key. Prints a targets-file "
    "entry, and adds it to a targets file with --write, for you to review before use.",
    ("discover --base-url https://gw.example --profile openai            # (real gateway)",
     "discover --base-url https://gw.example --write targets.yaml --name staging"
     "   # (real gateway)"),
    (0, 2, 3, 130))
"""The command's help text."""


def add_parser(sub: Any) -> None:
    """The ``discover`` command's flags."""
    parser = command_parser(sub, "discover", HELP)
    add_target_flags(parser)
    parser.add_argument("--write", metavar="FILE",
                        help="add the entry to this targets file (made if missing)")
    parser.add_argument("--name", metavar="NAME",
                        help="the entry's name (default: from the host name)")


def command(args: argparse.Namespace, console: Console) -> int:
    """Probe, print the table and the entry, write it if asked; 0."""
    with open_target(choice_from(args), Embedded(ttft_ms=5, itl_ms=1), console) as target:
        found = discover(target)
    console.table(["endpoint", "answered", "served"],
                  [[name, answer, "yes" if name in found.served else "no"]
                   for name, answer in found.answers.items()])
    if found.x_api_key is not None:
        console.line(f"x-api-key on /v1/messages: "
                     f"{'accepted' if found.x_api_key else 'refused'}")
    body = entry(target, found)
    name = args.name or _name_of(target.base_url)
    console.line(f"{found.requests} requests sent; the entry:")
    console.line(yaml.safe_dump({"targets": {name: body}}, sort_keys=False).rstrip())
    if args.write:
        write_entry(Path(args.write), name, body)
        console.line(f"added target {name!r} to {args.write}: review it before use")
    return 0


def _name_of(base_url: str) -> str:
    host = urlsplit(base_url).hostname or "gateway"
    return re.sub(r"[^A-Za-z0-9]+", "-", host).strip("-") or "gateway"
