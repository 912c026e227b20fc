"""``report.html`` of a ``gateprobe load`` run folder: one self-contained page from its
``verdict.json``, ``samples.jsonl`` and ``lag.jsonl``.

The same sections as the load phases of ``gateprobe run``'s report (``report.html`` of the
run, ``gateprobe.engine.report.html``): the verdict, a percentile table per endpoint with each metric
in its own unit, latency and the generator's lag over time, the saturation verdict. Locust's
own ``locust.html`` stays beside it as an extra (its one column of "response times" mixes
TTFT, TPOT and tokens/s).
"""

from __future__ import annotations

import json
from pathlib import Path

from gateprobe.core.loadresult import TasksResult, result_of
from gateprobe.engine.report.html import STYLE, _e, load_sections, verdict_text

PAGE = "report.html"


def render(folder: Path) -> str:
    """The page of the load run in ``folder``."""
    try:
        verdict = json.loads((folder / "verdict.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        verdict = None
    result = result_of(verdict)
    word, css = verdict_text(result) if result is not None else ("NO VERDICT", "fail")
    title = f"gateprobe load {result.scenario if result else ''}".strip()
    body = load_sections({"data": verdict or {}, "dir": ""}, folder) if result else \
        ["<p>The run ended without a verdict: see locust.log in this folder.</p>"]
    links = [name for name in ("samples.jsonl", "lag.jsonl", "verdict.json", "plan.json",
                               "locust.html", "locust.log") if (folder / name).exists()]
    return "\n".join([
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>",
        "<meta name='viewport' content='width=device-width, initial-scale=1'>",
        f"<title>{_e(title)}: {_e(word)}</title>", f"<style>{STYLE}</style></head><body>",
        f"<h1>{_e(title)}: <span class='{css}'>{_e(word)}</span></h1>",
        f"<p>Target <code>{_e((verdict or {}).get('base_url', ''))}</code>, "
        f"{(verdict or {}).get('wall_s', 0):.0f} s, {result.requests if result else 0} "
        f"{'tasks' if isinstance(result, TasksResult) else 'requests'}.</p>",
        *body,
        "<h2>Files</h2><ul>",
        *(f"<li><a href='{_e(name)}'>{_e(name)}</a></li>" for name in links),
        "</ul></body></html>"])


def write(folder: Path) -> Path:
    """Write the page into ``folder``; its path."""
    path = folder / PAGE
    path.write_text(render(folder), encoding="utf-8")
    return path
