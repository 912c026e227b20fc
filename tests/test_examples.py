"""Every command line people copy works: each ``--help`` example and each ``gateprobe`` line
of README.md and docs/ is parsed by the real parser and, unless marked ``(real gateway)``, run
against reference gateways on loopback and must pass (``docs_examples``)."""

from __future__ import annotations

import argparse
import socket
from collections.abc import Iterator

import pytest

from docs_examples import (
    MARK,
    Example,
    World,
    doc_examples,
    doc_files,
    help_examples,
    run_example,
    world,
)
from gateprobe.cli import build_parser

HELP = help_examples()
DOCS = [e for path in doc_files() for e in doc_examples(path)]
WORLD_TARGETS = {"staging", "local", "ohmygpt", "broken"}


def unique_runs() -> list[pytest.ParameterSet]:
    """Each runnable command line once (the same line in several places runs once)."""
    seen: dict[tuple[tuple[str, ...], int], str] = {}
    for example in [*HELP, *DOCS]:
        if not example.real:
            seen.setdefault((example.argv, example.expect), example.id)
    return [pytest.param(argv, expect, id=source) for (argv, expect), source in seen.items()]


@pytest.mark.parametrize("example", [*HELP, *DOCS], ids=lambda e: e.id)
def test_every_example_parses_with_the_real_parser(example: Example) -> None:
    if {"--help", "--version"} & set(example.argv):
        return  # argparse prints and exits: run below, not parsed here
    args = build_parser().parse_args(list(example.argv))  # a flag that does not exist raises
    assert isinstance(args, argparse.Namespace)


def test_help_examples_are_found_for_every_command_and_most_run() -> None:
    sources = {e.source for e in HELP}
    assert {"serve --help", "run --help", "load --help", "gateprobe --help"} <= sources
    assert sum(not e.real for e in HELP) > len(HELP) // 2


@pytest.mark.parametrize("example", [e for e in [*HELP, *DOCS] if e.real], ids=lambda e: e.id)
def test_a_line_marked_real_gateway_names_what_this_machine_lacks(example: Example) -> None:
    """The mark is for a gateway or host that is not here (a public URL, a target or a gate
    file the docs' folder does not have, a load master on another host or one waiting for
    workers that other hosts start), not a way to skip a slow line."""
    args = vars(build_parser().parse_args(list(example.argv)))
    urls = args.get("base_url") or []
    urls = [urls] if isinstance(urls, str) else urls
    remote = any("127.0.0.1" not in u and "localhost" not in u for u in urls)
    elsewhere = args.get("target") not in (None, *WORLD_TARGETS) or \
        args.get("config") not in (None, "gate.yaml")
    hosts = args.get("master_host") not in (None, "127.0.0.1", "localhost") or \
        bool(args.get("master"))
    assert remote or elsewhere or hosts, f"{example.id}: marked {MARK} but runs here"


@pytest.fixture(scope="module")
def docs_world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    with pytest.MonkeyPatch.context() as mp, \
            world(tmp_path_factory.mktemp("docs-world"), mp) as w:
        yield w


@pytest.mark.slow
@pytest.mark.parametrize(("argv", "expect"), unique_runs())
def test_every_unmarked_example_ends_as_it_says_against_the_reference(
        argv: tuple[str, ...], expect: int, docs_world: World) -> None:
    if "--port" in argv and argv[argv.index("--port") + 1] != "0" and \
            not port_free(int(argv[argv.index("--port") + 1])):
        pytest.skip(f"port {argv[argv.index('--port') + 1]} is taken on this machine")
    code, output = run_example(Example("", argv, False))
    assert code == expect, output[-3000:]


def port_free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True
