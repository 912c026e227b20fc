"""The embedded target's tier limits are read from the keys file its gateway starts with,
not copied from it (``embedded.tier_limits``)."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateprobe.core.targets import TargetChoice
from gateprobe.engine.embedded import Embedded, open_target


def test_the_shipped_keys_file_gives_the_seeds_tiers() -> None:
    with open_target(TargetChoice(), Embedded(), dry_run=True) as target:
        assert dict(target.limits) == {"free": 12, "vip": 60, "premium": 90}
        assert set(target.tier_keys) == {"free", "vip", "premium"}


def test_a_keys_file_of_ones_own_sets_them(tmp_path: Path,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    keys = tmp_path / "keys.yaml"
    keys.write_text("tiers:\n  gold: {limits: {claude-2-web: 7}}\n"
                    "keys:\n  gp-gold-0001: {tier: gold, models: '*'}\n")
    monkeypatch.setenv("GATEPROBE_KEYS", str(keys))
    with open_target(TargetChoice(), Embedded(), dry_run=True) as target:
        assert dict(target.limits) == {"gold": 7}
        assert target.tier_keys == {"gold": "gp-gold-0001"}
