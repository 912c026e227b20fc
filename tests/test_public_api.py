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
        "GatewayConfig", "RunningGateway", "Timing", "build_app", "running_gateway", "serve"]


def test_error_exit_codes() -> None:
    assert gateprobe.ConfigError.exit_code == 2
    assert gateprobe.UsageError.exit_code == 2
    assert gateprobe.TargetUnreachable.exit_code == 3


def test_changelog_has_the_current_version() -> None:
    changelog = (ROOT / "CHANGELOG.md").read_text(encoding="utf-8")
    versions = re.findall(r"^## (\d+\.\d+\.\d+)", changelog, flags=re.MULTILINE)
    assert versions and versions[0] == gateprobe.__version__
