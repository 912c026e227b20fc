"""The command lines people copy: every ``--help`` example and every ``gateprobe`` line of a
shell block in README.md and docs/, found, and run against reference gateways on loopback.

A line (or a whole block, by its first line) whose comment says ``(real gateway)`` needs a
gateway this machine does not have (a public URL, a paid account): it is parsed with the real
parser, never run. Every other line runs in a folder laid out as the docs assume (``World``):
``targets.yaml`` whose ``staging``, ``local`` and ``ohmygpt`` (with two mirrors) are reference
gateways, ``gate.yaml``, ``load/slo.yaml``, the keys' variables set. A few flags bound what a
line costs (``BOUNDS``: a 3 s load run instead of 60 s, the ``endpoint`` category instead of
every category); the example's own flags and values are what the run proves.
"""

from __future__ import annotations

import contextlib
import dataclasses
import importlib
import io
import re
import shlex
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

import gateprobe.protocols.conformance  # noqa: F401  (the built-in checks, before a snapshot)
from gateprobe.cli import COMMANDS, EXAMPLES, main
from gateprobe.cli._help import Help
from gateprobe.core import checks
from gateprobe.core.console import Console
from gateprobe.reference import RunningGateway, running_gateway
from gateway_fixtures import base_config

ROOT = Path(__file__).resolve().parents[1]
MARK = "(real gateway)"
"""A comment containing this marks a command line (or, first in a block, the block) as needing
a real gateway: parsed, not run."""

BOUNDS: dict[tuple[str, ...], list[str]] = {
    ("conformance",): ["--select", "endpoint"],
    ("run",): ["--suites", "conformance", "--select", "endpoint"],
    ("gate",): [],
    ("compare",): ["--samples", "2", "--long-request-s", "0.5"],
    ("load", "latency"): ["--duration", "3"],
    ("load", "tasks"): ["--duration", "8", "--poll-interval", "0.05"],
    ("load", "rate-limits"): [],
    ("load", "sweep"): ["--level-duration", "2", "--levels", "1", "--max-users", "4"],
    # a soak's hours as 20 s in 2 s windows, judged by bounds scaled to that (the how-to's
    # soak-compressed.yaml): the shipped 10 %/h cannot be told in 20 s
    ("load", "soak"): ["--duration", "20", "--windows", "2", "--slo", "soak-compressed.yaml"],
}
"""Flags added to a run example of the command (or command and scenario), each only where the
example does not set it, except the load runs' ``--duration`` and ``--poll-interval`` (and a
sweep's ``--level-duration`` and ``--levels``, a soak's ``--windows``), which always shorten the
run: the README's first command, a whole ``gateprobe run``, is run in full by
``tests/test_run_gate_compare.py``."""
ALWAYS = {"--duration", "--poll-interval", "--level-duration", "--levels", "--windows"}

KEYS = {"GATEPROBE_API_KEY": "gp-vip-0001", "GATEPROBE_NOMODEL_KEY": "gp-nomodel-0001",
        "GATEPROBE_FREE_KEY": "gp-free-0002", "GATEPROBE_VIP_KEY": "gp-vip-0002",
        "GATEPROBE_PREMIUM_KEY": "gp-premium-0002"}
WINDOW_S = 3.0


@dataclass(frozen=True)
class Example:
    """One ``gateprobe`` command line, where it was found and whether it may run here."""

    source: str
    """``README.md:12`` or ``serve --help``."""
    argv: tuple[str, ...]
    """The arguments after ``gateprobe``."""
    real: bool
    """Marked as needing a real gateway: parsed only."""
    expect: int = 0
    """The exit code it must end with (a comment saying ``exit N`` changes it)."""

    @property
    def id(self) -> str:
        return f"{self.source}: gateprobe {shlex.join(self.argv)}"


def helps() -> dict[str, Help]:
    """Every command's ``Help``, found through the command table (so a new command's examples
    are run without a change here)."""
    return {name: importlib.import_module(fn.__module__).HELP for name, fn in COMMANDS.items()}


def help_examples() -> list[Example]:
    """The examples of every ``--help``, the top-level one's included."""
    found = [("gateprobe --help", line) for line in EXAMPLES]
    found += [(f"{name} --help", line) for name, help_ in helps().items()
              for line in help_.examples]
    return [Example(source, tuple(shlex.split(line, comments=True)), MARK in line,
                    expected_exit(line)) for source, line in found]


def expected_exit(line: str) -> int:
    """The exit code a line's comment announces (``# exit 1: the gate fails``), else 0."""
    comment = line.partition(" #")[2]
    match = re.search(r"\bexit (\d+)\b", comment)
    return int(match.group(1)) if match else 0


FENCE = re.compile(r"^```(sh|bash|shell|console)\s*$")


def shell_blocks(path: Path) -> Iterator[tuple[int, list[str]]]:
    """The shell blocks of a markdown file: the first line's number, and the logical lines
    (continuations joined)."""
    lines = path.read_text(encoding="utf-8").splitlines()
    i = 0
    while i < len(lines):
        if not FENCE.match(lines[i].strip()):
            i += 1
            continue
        start, block, pending = i + 2, [], ""
        i += 1
        while i < len(lines) and lines[i].strip() != "```":
            text = lines[i].strip()
            if text.endswith("\\"):
                pending += text[:-1] + " "
            else:
                block.append(pending + text)
                pending = ""
            i += 1
        yield start, block
        i += 1


def command_of(segment: str) -> tuple[str, ...] | None:
    """The arguments of a ``gateprobe`` (or ``.venv/bin/gateprobe``) command, after any
    ``VAR=value`` prefix; None when the segment runs another program."""
    try:
        words = shlex.split(segment, comments=True)
    except ValueError:
        return None
    while words and re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*=.*", words[0]):
        words = words[1:]
    if not words or Path(words[0]).name != "gateprobe":
        return None
    return tuple(words[1:])


def doc_examples(path: Path) -> list[Example]:
    """Every ``gateprobe`` command of the shell blocks of one markdown file."""
    found = []
    for start, block in shell_blocks(path):
        block_real = bool(block) and block[0].startswith("#") and MARK in block[0]
        for offset, line in enumerate(block):
            for segment in re.split(r"&&|;", line.split(" | ")[0]):
                argv = command_of(segment)
                if argv is not None:
                    found.append(Example(f"{path.relative_to(ROOT)}:{start + offset}", argv,
                                         block_real or MARK in line, expected_exit(line)))
    return found


FILE_MARK = re.compile(r"^<!-- file: ([\w./-]+) -->\n```\w*\n(.*?)^```$", re.MULTILINE | re.DOTALL)


def doc_written_files() -> dict[str, str]:
    """The files a page tells the reader to save (a block right after ``<!-- file: NAME
    -->``), by name: the runs of the later lines use them."""
    return {m.group(1): m.group(2) for path in doc_files()
            for m in FILE_MARK.finditer(path.read_text(encoding="utf-8"))}


def doc_files() -> list[Path]:
    """README.md and every page of the docs site."""
    return [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]


def bounded(argv: tuple[str, ...]) -> list[str]:
    """``argv`` with the flags that bound its cost in a test."""
    key = argv[:2] if argv[:1] == ("load",) else argv[:1]
    extra: list[str] = []
    bounds = BOUNDS.get(key, [])
    for flag, value in zip(bounds[::2], bounds[1::2], strict=True):
        if flag == "--duration" and "--processes" in argv:
            value = "12"  # worker processes start first: a 3 s run would end before them
        if flag in ALWAYS or flag not in argv:
            extra += [flag, value]
    return [*argv, *extra]


@dataclass(frozen=True)
class World:
    """The folder a reader is assumed to be in, and the gateways it names."""

    cwd: Path
    staging: RunningGateway
    mirrors: tuple[RunningGateway, RunningGateway]
    broken: RunningGateway


BROKEN_FAULTS = ("stream-drop-terminator", "response-missing-model")
"""The faults of the tutorial's ``broken`` target (``gateprobe serve --fault ...``)."""


def _targets_yaml(staging: str, mirror_a: str, mirror_b: str, broken: str) -> str:
    entry = ("    profile: ohmygpt\n    api_key_env: GATEPROBE_API_KEY\n"
             "    no_permission_key_env: GATEPROBE_NOMODEL_KEY\n"
             "    tier_keys: {free: GATEPROBE_FREE_KEY, vip: GATEPROBE_VIP_KEY, "
             "premium: GATEPROBE_PREMIUM_KEY}\n"
             f"    limits: {{window_s: {WINDOW_S}, rpm: {{free: 12, vip: 60, premium: 90}}}}\n")
    return (f"targets:\n  staging:\n    base_url: {staging}\n{entry}"
            f"  local:\n    base_url: {staging}\n{entry}"
            f"  ohmygpt:\n    base_url: {mirror_a}\n{entry}"
            f"    mirrors: {{main: {mirror_a}, backup: {mirror_b}}}\n"
            f"  broken:\n    base_url: {broken}\n    profile: ohmygpt\n"
            "    api_key_env: GATEPROBE_API_KEY\n")


GATE_YAML = """target: staging
suites: [conformance]
select: endpoint
"""


@contextlib.contextmanager
def world(root: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[World]:
    """Reference gateways, the files the docs name, the keys' variables, the folder."""
    # A large account: some hundred examples share it, and a soak's or a sweep's thousands of
    # streams (legacy complete is claude-2, 24,000 credits per 1,000 tokens) would otherwise
    # spend the default balance and leave the examples after them a 402.
    config = dataclasses.replace(base_config(), rate_window_s=WINDOW_S, balance=1e10)
    with running_gateway(config) as staging, running_gateway(base_config()) as a, \
            running_gateway(base_config()) as b, \
            running_gateway(base_config(faults=BROKEN_FAULTS)) as broken:
        (root / "targets.yaml").write_text(_targets_yaml(staging.base_url, a.base_url,
                                                         b.base_url, broken.base_url))
        (root / "gate.yaml").write_text(GATE_YAML)
        for name, text in doc_written_files().items():
            (root / name).parent.mkdir(parents=True, exist_ok=True)
            (root / name).write_text(text)
        (root / "load").mkdir()
        shutil.copy(ROOT / "load" / "slo.yaml", root / "load" / "slo.yaml")
        for variable, key in KEYS.items():
            monkeypatch.setenv(variable, key)
        monkeypatch.chdir(root)
        yield World(root, staging, (a, b), broken)


def run_example(example: Example) -> tuple[int, str]:
    """Run one example in the current folder: exit code and what it printed."""
    argv = bounded(example.argv)
    if argv[:1] == ["serve"] and "--list-faults" not in argv:
        return serve_example(argv)
    out, err = io.StringIO(), io.StringIO()
    registered = checks.snapshot()  # --checks registers a user's checks for the process
    try:
        code = main(argv, Console(out, err))
    except SystemExit as exit_:  # --help and --version print and exit, as argparse does
        code = int(exit_.code or 0)
    finally:
        checks.restore(registered)
        for name in [m for m in sys.modules if m.startswith("gateprobe_user_checks.")]:
            del sys.modules[name]
    return code, out.getvalue() + err.getvalue()


def healthy(url: str) -> None:
    """Wait until the server answers (its signal handlers are in place by then)."""
    for _ in range(100):
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(url + "/_gateprobe/health", timeout=2).status_code == 200:
                return
        time.sleep(0.1)


def serve_example(argv: list[str]) -> tuple[int, str]:
    """A ``serve`` line starts a server: it must say where it listens, then stop on Ctrl-C."""
    with subprocess.Popen([sys.executable, "-m", "gateprobe", *argv], stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True) as proc:
        assert proc.stdout is not None
        first = proc.stdout.readline()
        if "listening on" in first:
            healthy(first.split("listening on ")[1].strip())
            proc.send_signal(signal.SIGINT)
        try:
            rest = proc.communicate(timeout=30)[0]
        except subprocess.TimeoutExpired:
            proc.kill()
            rest = proc.communicate()[0]
        code = proc.returncode if "listening on" in first else -1
    return code, first + (rest or "")
