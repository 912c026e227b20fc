"""The docs site builds with warnings as errors, and its reference is the code's: every
command-line flag, check, finding id, fault, exit code, SLO key and targets-file key is on
the generated pages (``scripts/gen_docs.py`` fills them from the registries as MkDocs builds)."""

from __future__ import annotations

import html
import importlib.util
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[1]


def load_generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location("gen_docs", ROOT / "scripts" / "gen_docs.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


GEN = load_generator()


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    out = tmp_path_factory.mktemp("site")
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    done = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "-q", "-d",
                           str(out)], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    yield out


def page(site: Path, name: str) -> str:
    return html.unescape((site / name / "index.html").read_text(encoding="utf-8"))


@pytest.mark.slow
def test_the_site_builds_strict_with_every_section(site: Path) -> None:
    for name in ("tutorial/ci-in-ten-minutes", "howto/real-gateway", "reference/cli",
                 "reference/checks", "reference/faults", "explanation/architecture"):
        assert "<h1" in page(site, name)
    assert "<!-- gen:" not in "".join(p.read_text() for p in site.rglob("*.html"))


@pytest.mark.slow
def test_every_flag_of_every_command_is_in_the_cli_reference(site: Path) -> None:
    text = page(site, "reference/cli")
    options = GEN.cli_options()
    assert {"serve", "run", "conformance", "load", "compare", "gate"} <= set(options)
    for command, flags in options.items():
        assert f"gateprobe {command}" in text
        missing = [f for f in flags if f not in text]
        assert not missing, (command, missing)


@pytest.mark.slow
def test_every_check_and_finding_id_is_in_the_checks_reference(site: Path) -> None:
    text = page(site, "reference/checks")
    checks = GEN.registered_checks()
    assert len(checks) >= 30
    flat = " ".join(text.split())
    for check in checks:
        assert check.id in text and " ".join(check.description.split()) in flat, check.id
    missing = [i for i in GEN.finding_ids() if i not in text]
    assert not missing
    assert "stream.terminator" in text and "stream-drop-terminator" in text


@pytest.mark.slow
def test_every_fault_is_in_the_faults_reference(site: Path) -> None:
    from gateprobe.reference.faults import CATALOGUE

    text = page(site, "reference/faults")
    missing = [name for name, f in CATALOGUE.items() if name not in text
               or " ".join(f.description.split()) not in " ".join(text.split())]
    assert not missing


@pytest.mark.slow
def test_exit_codes_slo_keys_and_targets_keys_are_referenced(site: Path) -> None:
    from gateprobe.commands.load.slo import KNOWN
    from gateprobe.core.errors import EXIT_CODES
    from gateprobe.core.targets import TARGETS_SCHEMA

    exits = page(site, "reference/exit-codes")
    assert all(f"<td>{code}</td>" in exits for code in EXIT_CODES)
    slo = page(site, "reference/slo")
    assert all(key in slo for key in KNOWN)
    targets = page(site, "reference/targets")
    entry = TARGETS_SCHEMA["properties"]["targets"]["additionalProperties"]  # type: ignore[index]
    assert all(key in targets for key in entry["properties"])


@pytest.mark.slow
def test_metric_fields_and_the_other_tools_are_on_the_metrics_page(site: Path) -> None:
    from gateprobe.core.metrics import StreamMetrics

    text = page(site, "reference/metrics")
    fields = [*StreamMetrics.__dataclass_fields__, "tpot_ms", "tokens_per_s"]
    assert all(f in text for f in fields)
    assert all(tool in text for tool in ("guidellm", "vLLM", "AIPerf"))


def test_an_unknown_marker_is_an_error_not_a_silent_gap() -> None:
    with pytest.raises(KeyError, match="unknown docs marker gen:nope"):
        GEN.render("# x\n\n<!-- gen:nope -->\n")
    assert "stream-drop-terminator" in GEN.render("<!-- gen:faults -->")


def test_every_page_is_in_the_nav_or_says_it_is_not() -> None:
    """A page nobody can reach from the navigation is a page nobody reads."""
    nav = (ROOT / "mkdocs.yml").read_text(encoding="utf-8")
    pages = [p.relative_to(ROOT / "docs").as_posix() for p in (ROOT / "docs").rglob("*.md")]
    unreachable = [p for p in pages if p not in nav]
    assert not unreachable, f"add these pages to the nav of mkdocs.yml: {unreachable}"
