"""A sweep's ``report.html`` (``gateprobe.engine.report.loadpage``) in headless Chromium at a
desktop and a phone width: the knee, every level's numbers each in its unit, latency against
throughput and goodput against offered load; nothing wider than the screen, every mark in its
frame. The folder is judged by the real sweep verdict code from level rows made here (a real
sweep writes one in ``tests/load/test_sweep.py``)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, sync_playwright
from test_browser import CHROMIUM, MEASURE, WIDTHS

from gateprobe.commands.load.sweep import SweepOptions, judge_sweep
from gateprobe.engine.report import loadpage


def row(name: str, rps: float, share: float, saturated: str = "",
        rate: float | None = None) -> dict[str, Any]:
    """One level's row as ``sweep.level_row`` writes it, its latency growing as its goodput
    falls."""
    late = 1000 * (1 - share)
    return {"name": name, "arrival": "closed" if rate is None else "constant", "users": 4,
            "rate": rate, "achieved_rps": rps, "requests": 100, "latency": {
                "requests": 100, "errors": 0, "error_rate": 0.0,
                "ttft_ms": {"count": 100, "p50": 50.0 + late / 4, "p99": 60.0 + late},
                "e2e_ms": {"count": 100, "p50": 200.0 + late / 4, "p99": 260.0 + late},
                "tpot_ms": {"count": 100, "p50": 10.0}, "itl_ms": {"count": 1500, "p99": 20.0}},
            "output_tokens_per_s": rps * 16, "rate_limited_share": 0.0,
            "goodput_rps": rps * share, "goodput_share": share, "saturated": saturated,
            "limited_by_target": "", "dir": ""}


LEVELS = [row("synchronous", 5.0, 1.0), row("rate 10/s", 10.0, 1.0, rate=10.0),
          row("rate 15/s", 15.0, 0.97, rate=15.0), row("rate 18/s", 17.5, 0.80, rate=18.0),
          row("throughput", 20.0, 0.05)]

CELLS = """() => [...document.querySelectorAll('table tr')].map(
  tr => [...tr.querySelectorAll('th, td')].map(td => td.textContent))"""


@pytest.fixture(scope="module")
def sweep_page(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("sweep-report")
    rows = [*LEVELS[:3], row("rate 18/s", 17.5, 1.0, "loop lag 40 ms", rate=18.0), LEVELS[4]]
    verdict = judge_sweep(rows, {"ttft_p99_ms": 300.0, "max_sustainable_rps_min": 12.0},
                          SweepOptions(), "http://127.0.0.1:1")
    (out / "verdict.json").write_text(json.dumps(verdict))
    loadpage.write(out)
    return out


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if CHROMIUM is None:
        pytest.skip("no Chromium on PATH (apt-get install chromium)")
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM)
        yield chromium
        chromium.close()


def test_the_page_names_the_knee_and_draws_both_curves(sweep_page: Path) -> None:
    page = (sweep_page / "report.html").read_text()
    assert "gateprobe load sweep: <span class='ok'>PASS</span>" in page
    assert "<b>15.0 requests/s (rate 15/s), goodput 14.5 requests/s, 97%</b>" in page
    assert "saturated at rate 18/s" in page  # shown, not judged, and said
    assert "Latency against throughput" in page and "Goodput against offered load" in page
    assert "ttft_ms &le; 300 ms" in page


@pytest.mark.parametrize("width", WIDTHS)
def test_every_level_in_its_unit_and_the_page_fits(browser: Browser, sweep_page: Path,
                                                   width: int) -> None:
    page = browser.new_page(viewport={"width": width, "height": 900})
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto((sweep_page / "report.html").as_uri())
    seen = page.evaluate(MEASURE)
    cells = page.evaluate(CELLS)
    page.screenshot(path=str(sweep_page / f"report-{width}.png"), full_page=True)
    page.close()
    header, *rows = cells
    assert header[:3] == ["level", "offered (requests/s)", "achieved (requests/s)"]
    assert "TPOT p50 (ms/token)" in header and "output (tokens/s)" in header
    states = {r[0]: r[-1] for r in rows}
    assert states["rate 15/s"] == "knee" and states["rate 18/s"] == "SATURATED"
    assert seen["svgs"] == 2 and seen["marks"] >= 6
    assert seen["scrollWidth"] <= seen["innerWidth"], seen["wide"][:10]
    assert not seen["outside"], seen["outside"][:10]
    assert not seen["overlaps"], seen["overlaps"][:10]
    assert not errors
