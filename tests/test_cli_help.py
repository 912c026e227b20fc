"""Each subcommand's --help: a description, examples that parse, and the exit codes of the one
table in ``gateprobe.core.errors``; the docs' exit-code table is that table."""

from __future__ import annotations

import argparse
import io
import re
from pathlib import Path

import pytest

from gateprobe.cli import (
    COMMANDS,
    build_parser,
    compare,
    conformance,
    discover,
    gate,
    load,
    main,
    run,
    serve,
)
from gateprobe.cli._help import Help, example_argvs
from gateprobe.core.console import Console
from gateprobe.core.errors import EXIT_CODES, exit_codes_markdown

DOCS_EXIT_CODES = Path(__file__).resolve().parents[1] / "docs" / "reference" / "exit-codes.md"
HELPS: dict[str, Help] = {"serve": serve.HELP, "conformance": conformance.HELP,
                          "load": load.HELP, "compare": compare.HELP, "gate": gate.HELP,
                          "run": run.HELP, "discover": discover.HELP}


def help_of(capsys: pytest.CaptureFixture[str], *argv: str) -> str:
    with pytest.raises(SystemExit) as exit_:  # argparse prints the help itself, and exits
        main([*argv, "--help"], Console(io.StringIO(), io.StringIO()))
    assert exit_.value.code == 0
    return capsys.readouterr().out


def test_every_command_has_a_help_text() -> None:
    assert set(HELPS) == set(COMMANDS)


@pytest.mark.parametrize("name", sorted(HELPS))
def test_a_commands_help_has_its_description_examples_and_exit_codes(
    name: str, capsys: pytest.CaptureFixture[str]
) -> None:
    text = help_of(capsys, name)
    help_ = HELPS[name]
    assert " ".join(help_.description.split()[:6]) in " ".join(text.split())
    examples = text[text.index("\nexamples:\n"):text.index("\nexit codes:\n")]
    assert examples.count("\n  gateprobe ") == len(help_.examples) >= 2
    codes = re.findall(r"^  (\d+) ", text[text.index("\nexit codes:\n"):], re.MULTILINE)
    assert [int(c) for c in codes] == list(help_.exits)
    assert {0, 2, 130} <= set(help_.exits) <= set(EXIT_CODES)


@pytest.mark.parametrize("name", sorted(HELPS))
def test_every_example_parses_with_the_real_parser(name: str) -> None:
    parser = build_parser()
    for argv in example_argvs(HELPS[name]):
        args = parser.parse_args(argv)  # a flag that does not exist raises UsageError
        assert isinstance(args, argparse.Namespace) and args.command == name


def test_the_top_level_help_describes_the_tool_not_the_module(
    capsys: pytest.CaptureFixture[str]
) -> None:
    text = help_of(capsys)
    assert "Protocol conformance and load testing for LLM API gateways" in text
    assert "flags in, typed options" not in text  # the module docstring stays a docstring
    assert re.findall(r"^  (\d+) ", text[text.index("\nexit codes:\n"):], re.MULTILINE) == \
        [str(code) for code in EXIT_CODES]


def test_the_docs_exit_code_table_is_the_codes_table() -> None:
    """The docs page is generated from the table as the site builds (tests/test_docs.py
    builds it): its marker is all the page holds of it."""
    page = DOCS_EXIT_CODES.read_text(encoding="utf-8")
    assert "<!-- gen:exit-codes -->" in page and "| code | meaning |" not in page
    assert exit_codes_markdown().startswith("| code | meaning |")


@pytest.mark.parametrize(("argv", "line"), [
    (["runn"], "gateprobe: unknown command 'runn' (did you mean 'run'?); commands: serve, "
               "conformance, load, compare, gate, run, discover\n"),
    (["load", "latncy"], "gateprobe: load: scenario: unknown 'latncy' (did you mean "
                         "'latency'?); one of rate-limits, latency, tasks\n"),
    (["run", "--profile", "opnai"], "gateprobe: run: --profile: unknown 'opnai' (did you "
                                    "mean 'openai'?); one of ohmygpt, anthropic, openai\n"),
    ([], "gateprobe: a command is required (gateprobe --help lists them)\n"),
])
def test_a_mistyped_choice_gets_one_line_and_the_closest(argv: list[str], line: str) -> None:
    err = io.StringIO()
    assert main(argv, Console(io.StringIO(), err)) == 2
    assert err.getvalue() == line
