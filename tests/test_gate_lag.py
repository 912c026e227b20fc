"""``gateprobe gate``'s TTFT comparison with a baseline, on a run judged over its load
generator's lag: a change within the lag's margin of the allowed value could go either way, so
it is neither a regression nor a pass (``unjudged``; the gate exits 5)."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

from gateprobe.commands.gate import decide, load_config
from gateprobe.core.events import PASSED, Phase
from gateprobe.engine.report.summary import SCHEMA, VERSION


def decisions(tmp_path: Path, now_ms: float, margin_ms: float) -> list[tuple[str, str]]:
    baseline = tmp_path / "baseline.json"
    baseline.write_text(json.dumps({"schema": SCHEMA, "version": VERSION,
                                    "latency": {"all": {"ttft_p95_ms": 100.0}}}))
    gate_file = tmp_path / "gate.yaml"
    gate_file.write_text("embedded: true\nsuites: [latency]\nbaseline: baseline.json\n"
                         "regressions: {ttft_p95_pct: 20}\n")
    config = load_config(gate_file)
    lagged = {"lagged": {"why": "generator saturated: ...", "margin_ms": margin_ms}} \
        if margin_ms else {}
    phase = Phase("latency", PASSED, "ok", "latency", lagged)
    return [(d.kind, d.detail) for d in decide(config, [phase], {"all": {"ttft_p95_ms": now_ms}},
                                                dt.date(2026, 1, 1))]


def test_a_change_within_the_lag_of_the_allowed_value_is_unjudged(tmp_path: Path) -> None:
    # Allowed: 120 ms. Without lag, 125 ms is a regression and 115 ms is not.
    assert [k for k, _ in decisions(tmp_path, 125.0, 0.0)] == ["regression"]
    assert decisions(tmp_path, 115.0, 0.0) == []
    # With a 10 ms margin both are within reach of 120 ms: the lag could decide either way.
    (kind, detail), = decisions(tmp_path, 125.0, 10.0)
    assert kind == "unjudged" and "within the load generator's lag (10 ms)" in detail
    assert [k for k, _ in decisions(tmp_path, 115.0, 10.0)] == ["unjudged"]
    # Far from it, the lag cannot: judged as usual.
    assert [k for k, _ in decisions(tmp_path, 200.0, 10.0)] == ["regression"]
    assert decisions(tmp_path, 60.0, 10.0) == []
