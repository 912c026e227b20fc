"""The public names of gateprobe and gateprobe.reference, and version consistency."""

from __future__ import annotations

import re
from pathlib import Path

import gateprobe
import gateprobe.reference

ROOT = Path(__file__).resolve().parents[1]


def test_top_level_exports() -> None:
    assert gateprobe.__all__ == ["ConfigError", "GateprobeError", "TargetUnreachable",
                                 "UsageError", "__version__"]
    for name in gateprobe.__all__:
        assert hasattr(gateprobe, name)


def test_reference_exports() -> None:
    assert sorted(gateprobe.reference.__all__) == [
        "GatewayConfig", "RunningGateway", "Timing", "Tls", "build_app", "running_gateway",
        "serve"]


def test_error_exit_codes() -> None:
    assert gateprobe.ConfigError.exit_code == 2
    assert gateprobe.UsageError.exit_code == 2
    assert gateprobe.TargetUnreachable.exit_code == 3


def test_changelog_has_the_current_version() -> None:
    changelog = (ROOT / "CHANGELOG.md").read_text(encoding="utf-8")
    versions = re.findall(r"^## (\d+\.\d+\.\d+)", changelog, flags=re.MULTILINE)
    assert versions and versions[0] == gateprobe.__version__


def test_readme_fault_table_matches_the_catalogue() -> None:
    from gateprobe.reference.faults import CATALOGUE

    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    table = readme.split("<!-- faults-table:", 1)[1].split("<!-- /faults-table -->", 1)[0]
    rows = [line for line in table.splitlines() if line.startswith("| `")]
    assert [row.split("`")[1] for row in rows] == list(CATALOGUE)
    for row, fault in zip(rows, CATALOGUE.values(), strict=True):
        assert all(f"`{t}`" in row for t in fault.trips) and fault.description in row
