"""Regenerate the report screenshots the docs show (``docs/images/report-*.png``).

The runs are the ones ``tests/report/test_browser.py`` checks in headless Chromium (a
passing run, a failing run against the reference gateway with two faults, a compare run),
built by that module's own functions; the pictures are the top of each ``report.html`` at
1400 and 420 pixels wide, as a reader first sees it (the tests' own screenshots are of the
whole page with every section open, far taller than a screen). Needs Chromium on PATH
(``apt-get install chromium``), as the tests do::

    python scripts/screenshots.py
"""

from __future__ import annotations

import importlib.util
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
IMAGES = ROOT / "docs" / "images"
WIDTHS = {1400: 1000, 420: 1400}
"""Width -> height of each picture, in CSS pixels."""


def browser_tests() -> Any:
    """``tests/report/test_browser.py`` as a module (its report builders)."""
    sys.path[:0] = [str(ROOT / "tests")]
    spec = importlib.util.spec_from_file_location(
        "test_browser", ROOT / "tests" / "report" / "test_browser.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def main() -> int:
    tests = browser_tests()
    if tests.CHROMIUM is None:
        sys.stderr.write("no Chromium on PATH (apt-get install chromium)\n")
        return 1
    from playwright.sync_api import sync_playwright

    from gateprobe.reference import running_gateway

    os.environ["GATEPROBE_API_KEY"] = tests.KEY
    config = tests.base_config(timing=tests.TIMING)
    faulty = tests.base_config(timing=tests.TIMING,
                               faults=("stream-drop-terminator", "response-missing-model"))
    with tempfile.TemporaryDirectory(prefix="gateprobe-screens-") as tmp, \
            running_gateway(config) as clean, running_gateway(faulty) as broken:
        root = Path(tmp)
        tests.passing_run(root / "pass")
        tests.failing_run(root / "fail", broken.base_url)
        tests.compare_run(root / "compare", clean.base_url, broken.base_url)
        IMAGES.mkdir(parents=True, exist_ok=True)
        with sync_playwright() as playwright:
            chromium = playwright.chromium.launch(executable_path=tests.CHROMIUM)
            for kind in ("pass", "fail", "compare"):
                for width, height in WIDTHS.items():
                    page = chromium.new_page(viewport={"width": width, "height": height})
                    page.goto((root / kind / "report.html").as_uri())
                    page.screenshot(path=str(IMAGES / f"report-{kind}-{width}.png"))
                    page.close()
            chromium.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
