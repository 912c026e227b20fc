"""``report.html`` of a load run folder (``gateprobe.engine.report.loadpage``), in headless Chromium
at a desktop and a phone width: every metric in its own unit, latency and the generator's lag
over time, the saturation verdict; nothing wider than the screen, every mark in its frame.

The folders are judged by the real verdict code from samples and lag lines made here (a real
run is in ``tests/load/test_saturation.py``, which checks the page of a saturated run)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, sync_playwright
from test_browser import CHROMIUM, MEASURE, WIDTHS, samples

from gateprobe.commands.load.plan import LoadPlan
from gateprobe.commands.load.scenarios import verdict
from gateprobe.commands.load.selfcheck import LagHistogram
from gateprobe.engine.report import loadpage


def lag_lines(loop_ms: float, seconds: int = 8) -> list[dict[str, Any]]:
    """Two load processes' intervals, their loop lag around ``loop_ms``."""
    out = []
    for pid in (101, 102):
        for second in range(seconds):
            h = LagHistogram()
            for i in range(100):
                h.add(loop_ms * (0.5 + i / 100))
            receive = LagHistogram()
            receive.add(0.2)
            out.append({"t": 1.0 + second, "pid": pid, "interval_s": 1.0, "cpu_ms": 400.0,
                        "cpu_share": 0.4, "lag": {"loop": h.as_json(),
                                                  "receive": receive.as_json()}})
    return out


def folder(root: Path, name: str, loop_ms: float, ttft_p95_ms: float = 800.0) -> Path:
    out = root / name
    out.mkdir()
    rows = samples("/v1/chat/completions", 120, 20, 78) + samples("/v1/messages", 120, 25, 90)
    lag = lag_lines(loop_ms)
    (out / "samples.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (out / "lag.jsonl").write_text("".join(json.dumps(r) + "\n" for r in lag))
    plan = LoadPlan(scenario="latency", base_url="http://127.0.0.1:1", profile="ohmygpt",
                    out_dir=str(out), slo={"ttft_p95_ms": ttft_p95_ms, "error_rate_max": 0.01})
    (out / "verdict.json").write_text(json.dumps(verdict(plan, rows, 8.0, lag)))
    loadpage.write(out)
    return out


@pytest.fixture(scope="module")
def pages(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("load-reports")
    # Saturated: a TTFT of about 30 ms against 60 is within the lag's reach (3 x ~30 ms);
    # lagged: the same lag against 800 ms cannot carry it across, so it is judged.
    return {"calm": folder(root, "calm", 0.5),
            "saturated": folder(root, "saturated", 20.0, ttft_p95_ms=60.0),
            "lagged": folder(root, "lagged", 20.0)}


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if CHROMIUM is None:
        pytest.skip("no Chromium on PATH (apt-get install chromium)")
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM)
        yield chromium
        chromium.close()


UNITS = """() => [...document.querySelectorAll('table tr')].map(
  tr => [...tr.querySelectorAll('td')].map(td => td.textContent))"""


def test_the_page_says_pass_or_saturated(pages: dict[str, Path]) -> None:
    calm = (pages["calm"] / "report.html").read_text()
    assert "gateprobe load latency: <span class='ok'>PASS</span>" in calm
    assert "Load generator: <span class='ok'>within bound</span>" in calm
    saturated = (pages["saturated"] / "report.html").read_text()
    assert "SATURATED (no verdict)" in saturated and "--processes" in saturated
    assert "PASS" not in saturated and "ttft_p95_ms unjudged" in saturated
    lagged = (pages["lagged"] / "report.html").read_text()
    assert "gateprobe load latency: <span class='ok'>PASS</span>" in lagged
    assert "Load generator: <span class='fail'>SATURATED</span>" in lagged
    assert "<p class='load-lagged'>generator saturated: loop lag p99" in lagged
    assert "every latency objective is further than that from its limit" in lagged


@pytest.mark.slow
@pytest.mark.parametrize("width", WIDTHS)
@pytest.mark.parametrize("kind", ["calm", "saturated"])
def test_every_metric_in_its_unit_and_the_page_fits(browser: Browser, pages: dict[str, Path],
                                                    kind: str, width: int) -> None:
    page = browser.new_page(viewport={"width": width, "height": 900})
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto((pages[kind] / "report.html").as_uri())
    seen = page.evaluate(MEASURE)
    rows = page.evaluate(UNITS)
    page.screenshot(path=str(pages[kind] / f"report-{width}.png"), full_page=True)
    page.close()
    units = {row[0]: row[1] for row in rows if len(row) >= 2}
    assert units == {"TTFB": "ms", "TTFT": "ms", "TPOT": "ms/token", "ITL (each gap)": "ms",
                     "e2e": "ms", "output rate": "tokens/s", "loop": units.get("loop"),
                     "receive": units.get("receive")}
    assert units["loop"] not in ("ms", "tokens/s")  # the lag table: its p99, not a unit
    output_rates = [row for row in rows if row and row[0] == "output rate"]
    assert output_rates and all(row[2] == "250.0" for row in output_rates)  # tokens/s, as is
    titles = page_titles(pages[kind])
    assert "TTFT over time" in titles and "Load generator lag over time" in titles
    assert seen["scrollWidth"] <= seen["innerWidth"], seen["wide"][:10]
    assert not seen["outside"], seen["outside"][:10]
    assert not seen["overlaps"], seen["overlaps"][:10]
    assert seen["links"] and all((pages[kind] / href).exists() for href in seen["links"])
    assert not errors


def page_titles(where: Path) -> str:
    return (where / "report.html").read_text()
