"""report.html in a real browser: headless Chromium (Debian's ``chromium``, driven by
Playwright through ``executable_path``: Playwright's own browser download is not needed), at a
desktop width and a phone width, for a passing run, a failing run and a compare run.

Each page is checked with every ``<details>`` open (the worst case): nothing is wider than the
viewport, every plot mark lies inside its frame, no axis title touches a tick label, every link
points at a file of the folder, and the browser logs no error. A full-page screenshot of each
goes into the run folder's ``screenshots/`` for people to look at (``--basetemp DIR`` keeps
them).

The runs are quick but real where it matters: the failing run's findings come from the
conformance suite against the reference gateway with two faults, the compare run probes two
reference gateways; the load phases' verdicts are computed by ``gateprobe.commands.load.results``
from samples made here (a real load run takes tens of seconds).
"""

from __future__ import annotations

import io
import json
import random
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, sync_playwright

from gateprobe.cli import main
from gateprobe.commands.load.plan import LoadPlan
from gateprobe.commands.load.results import findings_of
from gateprobe.commands.load.scenarios import verdict
from gateprobe.core.console import Console
from gateprobe.core.events import Phase, RunFinished
from gateprobe.core.redact import Redactor
from gateprobe.engine.report import html as report_html
from gateprobe.engine.report import summary as report_summary
from gateprobe.engine.report.folder import ReportFolder
from gateprobe.reference import Timing, running_gateway
from gateway_fixtures import base_config

CHROMIUM = next((p for p in map(shutil.which, ("chromium", "chromium-browser",
                                               "google-chrome")) if p), None)
ROOT = Path(__file__).resolve().parents[2]
WIDTHS = (1400, 420)
KEY = "gp-vip-0001"
TIMING = Timing(ttft_ms=5, itl_ms=1)

MEASURE = """() => {
  document.querySelectorAll('details').forEach(d => { d.open = true; });
  const W = window.innerWidth, eps = 0.5, out = {wide: [], outside: [], overlaps: [],
    marks: 0, svgs: 0, links: []};
  const name = el => el.tagName.toLowerCase() + (el.getAttribute('class') ?
    '.' + el.getAttribute('class') : '') + ' "' + (el.textContent || '').slice(0, 40) + '"';
  for (const el of document.body.querySelectorAll('*')) {
    const r = el.getBoundingClientRect();
    if (r.width === 0 && r.height === 0) continue;
    if (r.left < -eps || r.right > W + eps) out.wide.push(name(el) + ' ' + r.left + '..' + r.right);
  }
  const inside = (r, f) => r.left >= f.left - eps && r.right <= f.right + eps &&
    r.top >= f.top - eps && r.bottom <= f.bottom + eps;
  const meet = (a, b) => a.left < b.right && b.left < a.right && a.top < b.bottom &&
    b.top < a.bottom;
  for (const svg of document.querySelectorAll('svg')) {
    out.svgs++;
    const frame = svg.querySelector('rect.frame');
    if (!frame) continue;
    const f = frame.getBoundingClientRect();
    for (const m of svg.querySelectorAll('g.plot rect, g.plot circle, g.plot line, ' +
                                         'g.plot path, g.plot polyline')) {
      out.marks++;
      if (!inside(m.getBoundingClientRect(), f)) out.outside.push(name(svg) + ' ' + name(m));
    }
    const ticks = [...svg.querySelectorAll('text.tick')].map(t => t.getBoundingClientRect());
    for (const t of svg.querySelectorAll('text.axis-title, text.title')) {
      const r = t.getBoundingClientRect();
      if (ticks.some(k => meet(k, r))) out.overlaps.push(name(t));
    }
  }
  out.links = [...document.querySelectorAll('a[href]')].map(a => a.getAttribute('href'));
  out.scrollWidth = document.documentElement.scrollWidth;
  out.innerWidth = W;
  return out;
}"""


def samples(endpoint: str, n: int, ttft: float, e2e: float, ok: bool = True,
            ) -> list[dict[str, Any]]:
    """Stream samples as the Locust side writes them, spread around a peak per endpoint."""
    rng = random.Random(endpoint)
    out = []
    for i in range(n):
        first = ttft + rng.expovariate(1 / 3)
        out.append({"t": 1.0 + i, "endpoint": endpoint, "status": 200, "ok": ok,
                    "error_kind": "" if ok else "transport.reset",
                    "findings": [] if ok else ["stream.terminator"],
                    "ttfb_ms": first - 0.3, "ttft_ms": first, "tpot_ms": 3.0,
                    "e2e_ms": e2e + rng.gauss(0, 2), "output_tokens": 32,
                    "tokens_per_s": 250.0, "itl_ms": [3.0] * 31})
    return out


def latency_phase(run_dir: Path, rows: list[dict[str, Any]]) -> Phase:
    """A latency phase judged by the real verdict code, its samples on disk."""
    folder = run_dir / "latency"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "samples.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    plan = LoadPlan(scenario="latency", base_url="http://127.0.0.1:1", profile="ohmygpt",
                    out_dir=str(folder), slo={"ttft_p95_ms": 800.0, "error_rate_max": 0.01})
    result = verdict(plan, rows, 8.0)
    status = "passed" if result["ok"] else "failed"
    return Phase("latency", status, "; ".join(result["reasons"]), "latency", result,
                 findings_of(result))


def rate_limits_phase() -> Phase:
    """A rate-limit verdict with the shape ``ratelimits.judge`` gives (a burst at twice each
    tier's limit, refused past it, one request after the window)."""
    tiers, timeline = [], []
    for tier, limit in (("free", 12), ("vip", 60), ("premium", 90)):
        tiers.append({"tier": tier, "limit": limit, "sent": limit * 3 // 2,
                      "accepted": limit, "rejected": limit // 2, "failed": 0,
                      "retry_after_s": 3.0, "recovered": True, "ok": True, "problems": []})
        timeline += [{"second": 0, "tier": tier, "accepted": limit * 3 // 4, "rejected": 0,
                      "failed": 0},
                     {"second": 1, "tier": tier, "accepted": limit - limit * 3 // 4,
                      "rejected": limit // 2, "failed": 0},
                     {"second": 4, "tier": tier, "accepted": 1, "rejected": 0, "failed": 0}]
    data = {"rate_limits": {"ok": True, "tiers": tiers, "problems": [], "timeline": timeline},
            "reasons": []}
    return Phase("rate-limits", "passed", "free 12/12, vip 60/60, premium 90/90",
                 "rate-limits", data)


def passing_run(run_dir: Path) -> None:
    run_dir.mkdir(parents=True)
    rows = (samples("/v1/chat/completions", 230, 20, 78) + samples("/v1/messages", 228, 20, 117)
            + samples("/v1/complete", 227, 20, 75))
    phases = [Phase("conformance", "passed", "112 tests passed, 0 failed, 0 skipped"),
              rate_limits_phase(), latency_phase(run_dir, rows)]
    ReportFolder(run_dir, Redactor([KEY]))(RunFinished(
        "run", {"name": "staging", "base_url": "http://127.0.0.1:8080", "profile": "ohmygpt"},
        tuple(phases), "2026-01-01T00:00:00Z", "2026-01-01T00:00:49Z", 49.0, 0, {}))


def gateprobe(*argv: str) -> int:
    return main(list(argv), Console(io.StringIO(), io.StringIO()))


def failing_run(run_dir: Path, base_url: str) -> None:
    """Conformance against a gateway whose streams lack their terminator and whose answers
    lack their model (golden diffs), then a latency phase in which every request failed."""
    code = gateprobe("run", "--base-url", base_url, "--suites", "conformance", "--select",
                     "stream or golden", "--report-dir", str(run_dir))
    assert code == 1
    summary = json.loads((run_dir / "summary.json").read_text())
    rows = samples("/v1/chat/completions", 40, 20, 45, ok=False)
    for phase in (rate_limits_phase(), latency_phase(run_dir, rows)):
        summary["phases"].append(phase.as_json())
        summary["findings"] += [{"phase": phase.name, **f.as_json()} for f in phase.findings]
    (run_dir / "report.html").write_text(report_html.render(summary, run_dir))
    (run_dir / "summary.md").write_text(report_summary.markdown(summary))


def compare_run(run_dir: Path, clean: str, faulty: str) -> None:
    """Two mirrors; the differences carry each mirror's answer (``answers``) as compare keeps
    them, so the side-by-side layout is what the browser sees."""
    code = gateprobe("compare", "--base-url", clean, "--base-url", faulty, "--samples", "3",
                     "--long-request-s", "0.3", "--report-dir", str(run_dir))
    assert code == 1
    summary = json.loads((run_dir / "summary.json").read_text())
    differences = summary["compare"]["differences"]
    assert differences
    for d in differences:
        d.setdefault("answers", {name: "event: message_start\ndata: " + json.dumps(
            {"type": "message_start", "message": {"id": "msg_" + "0" * 24, "usage": {
                "input_tokens": 12, "output_tokens": 1}}}) * 2 for name in d["values"]})
    (run_dir / "report.html").write_text(report_html.render(summary, run_dir))


@pytest.fixture(scope="module")
def reports(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Path]]:
    root = tmp_path_factory.mktemp("browser-reports")
    with pytest.MonkeyPatch.context() as mp, \
            running_gateway(base_config(timing=TIMING)) as clean, \
            running_gateway(base_config(timing=TIMING, faults=(
                "stream-drop-terminator", "response-missing-model"))) as faulty:
        mp.setenv("GATEPROBE_API_KEY", KEY)
        passing_run(root / "pass")
        failing_run(root / "fail", faulty.base_url)
        compare_run(root / "compare", clean.base_url, faulty.base_url)
        yield {"pass": root / "pass", "fail": root / "fail", "compare": root / "compare"}


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if CHROMIUM is None:
        pytest.skip("no Chromium on PATH: .ci/run installs Debian's chromium on CI; "
                    "elsewhere install chromium (apt-get install chromium) to run them")
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM)
        yield chromium
        chromium.close()


@pytest.mark.slow
@pytest.mark.parametrize("width", WIDTHS)
@pytest.mark.parametrize("kind", ["pass", "fail", "compare"])
def test_report_fits_the_screen_and_its_plots(browser: Browser, reports: dict[str, Path],
                                              kind: str, width: int) -> None:
    run_dir = reports[kind]
    page = browser.new_page(viewport={"width": width, "height": 900})
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto((run_dir / "report.html").as_uri())
    seen = page.evaluate(MEASURE)
    (run_dir / "screenshots").mkdir(exist_ok=True)
    page.screenshot(path=str(run_dir / "screenshots" / f"report-{width}.png"), full_page=True,
                    timeout=90_000)  # a tall page on a busy machine: not a render fault
    page.close()
    assert seen["scrollWidth"] <= seen["innerWidth"], seen["wide"][:10]
    assert not seen["wide"], seen["wide"][:10]
    assert seen["svgs"] >= 1 and seen["marks"] >= 1
    assert not seen["outside"], seen["outside"][:10]
    assert not seen["overlaps"], seen["overlaps"][:10]
    assert seen["links"] and all((run_dir / href).exists() for href in seen["links"])
    assert not errors
    assert (run_dir / "screenshots" / f"report-{width}.png").stat().st_size > 10_000


@pytest.mark.slow
def test_the_failing_report_says_why_a_plot_is_missing(browser: Browser,
                                                      reports: dict[str, Path]) -> None:
    page = (reports["fail"] / "report.html").read_text()
    assert "No TTFT or e2e plot: all 40 requests failed (transport.reset &times;40)" in page
    # a golden mismatch names the first field that differs (no longer a whole diff)
    assert "<details class='check'" in page and "golden.match" in page


def test_ci_installs_chromium_before_the_readme_test_command() -> None:
    """The browser tests run on CI only if ``.ci/run`` gets them a Chromium; its last line
    stays exactly the README's test command."""
    script = (ROOT / ".ci" / "run").read_text().strip().splitlines()
    readme = (ROOT / "README.md").read_text().splitlines()
    command = next(line for line in readme if line.endswith("python -m pytest"))
    assert script[-1] == command
    install = next(i for i, line in enumerate(script) if "apt-get install -y" in line)
    assert "chromium" in script[install] and install < len(script) - 1
    assert any('"${CI:-}" = "true"' in line and "command -v chromium" in line
               for line in script[:install])
