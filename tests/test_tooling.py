"""ruff and mypy (strict) are part of the test command, so CI enforces them unchanged."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def tool(name: str) -> str:
    found = BIN / name
    if found.exists():
        return str(found)
    on_path = shutil.which(name)
    if on_path is None:
        pytest.skip(f"{name} is not installed (bash scripts/install.sh)")
    return on_path


def test_ruff_is_clean() -> None:
    result = subprocess.run([tool("ruff"), "check", "src", "tests", "benchmarks"], cwd=ROOT,
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.slow
def test_mypy_strict_is_clean() -> None:
    result = subprocess.run([tool("mypy")], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def _lock_pins() -> dict[str, str]:
    """name -> version of every package requirements/dev.txt pins."""
    from packaging.utils import canonicalize_name

    pins = {}
    for line in (ROOT / "requirements" / "dev.txt").read_text().splitlines():
        if line and not line[0].isspace() and "==" in line and not line.startswith("#"):
            name, version = line.split(";")[0].strip().rstrip("\\").strip().split("==")
            pins[canonicalize_name(name)] = version.strip()
    return pins


def test_the_lock_pins_every_dependency_within_its_range() -> None:
    """A range changed (or a dependency added) without `bash scripts/lock.sh` would make CI
    install something else than pyproject.toml says: caught here, not on a fresh machine."""
    import tomllib

    from packaging.requirements import Requirement
    from packaging.utils import canonicalize_name

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    extras = project["optional-dependencies"]
    wanted = [Requirement(r) for r in project["dependencies"]]
    wanted += [Requirement(r) for group in extras.values() for r in group]
    pins = _lock_pins()
    for req in wanted:
        name = canonicalize_name(req.name)
        if name == "gateprobe" or (req.marker and not req.marker.evaluate()):
            continue
        assert name in pins, f"{req.name} is not in requirements/dev.txt: bash scripts/lock.sh"
        assert req.specifier.contains(pins[name], prereleases=True), \
            f"{req.name}=={pins[name]} in the lock is outside {req.specifier}: bash scripts/lock.sh"


def test_ci_and_the_readme_install_the_lock() -> None:
    readme_test = (ROOT / "README.md").read_text().split("```sh\n", 1)[1].splitlines()[1]
    assert (ROOT / ".ci" / "run").read_text().rstrip().splitlines()[-1] == readme_test
    assert readme_test.startswith("bash scripts/install.sh && ")
    install = (ROOT / "scripts" / "install.sh").read_text()
    assert "--require-hashes -r requirements/dev.txt" in install
    assert "--no-deps --no-build-isolation -e ." in install
