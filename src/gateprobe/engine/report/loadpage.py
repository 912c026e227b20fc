"""``report.html`` of a ``gateprobe load`` run folder: one self-contained page from its
``verdict.json``, ``samples.jsonl`` and ``lag.jsonl``.

The same sections as the load phases of ``gateprobe run``'s report (``report.html`` of the
run, ``gateprobe.engine.report.html``): the verdict, a percentile table per endpoint with each
metric in its own unit, latency and the generator's lag over time, the saturation verdict. Locust's
own ``locust.html`` stays beside it as an extra (its one column of "response times" mixes
TTFT, TPOT and tokens/s).
"""

from __future__ import annotations

import json
import math
from pathlib import Path

from gateprobe.core.loadresult import SoakResult, SweepResult, TasksResult, result_of
from gateprobe.engine.report import svg
from gateprobe.engine.report.html import STYLE, _e, _num, _table, load_sections, verdict_text

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
    body = sweep_section(result) if isinstance(result, SweepResult) else \
        load_sections({"data": verdict or {}, "dir": ""}, folder) if result else \
        ["<p>The run ended without a verdict: see locust.log in this folder.</p>"]
    if isinstance(result, SoakResult):
        body += soak_section(result)
    links = [name for name in ("samples.jsonl", "windows.jsonl", "windows.csv", "samples.csv",
                               "target_metrics.jsonl", "lag.jsonl", "verdict.json", "plan.json",
                               "locust.html", "locust.log") if (folder / name).exists()]
    if isinstance(result, SweepResult):  # each level's own page
        links += [f"{level.dir}/{PAGE}" for level in result.levels
                  if level.dir and (folder / level.dir / PAGE).exists()]
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


LEVEL_COLUMNS = ("level", "offered (requests/s)", "achieved (requests/s)", "requests",
                 "TTFT p50 (ms)", "TTFT p99 (ms)", "ITL p99 (ms)", "TPOT p50 (ms/token)",
                 "e2e p99 (ms)", "output (tokens/s)", "errors", "429", "goodput (requests/s)",
                 "goodput share", "generator")
"""The sweep's table: each column in its own unit."""


def sweep_section(result: SweepResult) -> list[str]:
    """A sweep: the knee, every level's numbers, throughput against latency percentiles and
    goodput against offered load."""
    knee = result.knee_level
    word, css = verdict_text(result)
    said = (f"{knee.achieved_rps:.1f} requests/s ({_e(knee.name)}), goodput "
            f"{knee.goodput_rps:.1f} requests/s, {knee.goodput_share:.0%}"
            if knee is not None else "none: no level met the threshold")
    bounds = ", ".join(f"{_e(k)} &le; {v:g} ms" for k, v in result.request_bounds.items())
    out = ["<h2>Sweep</h2>",
           f"<p class='load-verdict'>Verdict: <b class='{css}'>{_e(word)}</b>"
           + (f": {_e('; '.join(result.reasons))}" if result.reasons else "") + "</p>",
           f"<p class='knee'>Knee (highest level with goodput &ge; {result.threshold:.0%}): "
           f"<b>{said}</b>." + (f" {_e(result.knee_hidden[:1].upper() + result.knee_hidden[1:])}."
              if result.knee_hidden else "")
           + "</p>",
           f"<p>Goodput: requests that succeeded with {bounds or 'no latency objective'} "
           "(the SLO file's objectives, read per request). A level whose load generator "
           "saturated measured its own delay, not the target's: it is shown, not judged.</p>",
           _table(LEVEL_COLUMNS, [_level_row(result, i) for i in range(len(result.levels))])]
    return [*out, "<div class='plots'>", *_sweep_charts(result), "</div>"]


def _level_row(result: SweepResult, i: int) -> list[object]:
    level = result.levels[i]
    m = level.stats
    state = "SATURATED" if level.saturated else "knee" if i == result.knee else "ok"
    return [level.name, _num(level.rate), _num(level.achieved_rps), level.requests,
            _num(m.ttft_ms.p50), _num(m.ttft_ms.p99), _num(m.itl_ms.p99), _num(m.tpot_ms.p50),
            _num(m.e2e_ms.p99), _num(level.output_tokens_per_s), f"{m.error_rate:.1%}",
            f"{level.rate_limited_share:.1%}", _num(level.goodput_rps),
            f"{level.goodput_share:.1%}", state]


def _sweep_charts(result: SweepResult) -> list[str]:
    """Latency percentiles over achieved throughput; goodput and throughput over the
    offered load (saturated levels left out of both: their numbers are the generator's)."""
    judged = sorted((lv for lv in result.levels if not lv.saturated),
                    key=lambda lv: lv.achieved_rps)
    latency = {f"{name} {q}": [(lv.achieved_rps, value) for lv in judged
                               if (value := getattr(lv.stats.metric(key), q)) is not None]
               for key, name in (("ttft_ms", "TTFT"), ("e2e_ms", "e2e"))
               for q in ("p50", "p99")}
    knee = result.knee_level
    chart = svg.lines(latency, "Latency against throughput", "achieved (requests/s)",
                      "latency (ms)")
    offered = sorted(judged, key=lambda lv: lv.offered_rps)
    goodput = {"achieved": [(lv.offered_rps, lv.achieved_rps) for lv in offered],
               "goodput": [(lv.offered_rps, lv.goodput_rps) for lv in offered]}
    chart2 = svg.lines(goodput, "Goodput against offered load", "offered (requests/s)",
                       "requests/s", bound=knee.achieved_rps if knee is not None else None,
                       bound_label="knee")
    return [f"<figure>{chart}</figure>", f"<figure>{chart2}</figure>"]


def soak_section(result: SoakResult) -> list[str]:
    """A soak over time: TTFT and the error rate per window, the target's memory, each drift
    with its interval and outcome, and the windows as a table."""
    done = [w for w in result.windows if w.complete]
    minutes = [(w.start_s + w.end_s) / 120 for w in done]
    ttft = svg.lines({"TTFT p50": list(zip(minutes, (w.ttft_ms.p50 or math.nan for w in done),
                                           strict=True)),
                      "TTFT p99": list(zip(minutes, (w.ttft_ms.p99 or math.nan for w in done),
                                           strict=True))},
                     "TTFT per window", "minutes into the run", "ms")
    errors = svg.lines({"error rate": [(m, w.error_rate * 100)
                                       for m, w in zip(minutes, done, strict=True)]},
                       "Errors per window", "minutes into the run", "% of requests")
    memory = svg.lines({"resident memory": [(m, w.memory_bytes / 2**20) for m, w in
                                            zip(minutes, done, strict=True)
                                            if w.memory_bytes is not None]},
                       "The target's memory", "minutes into the run", "MB") \
        if result.metrics_url else svg.empty("The target's memory",
                                             "the target declares no metrics URL")
    drifts = _table(["drift", "per hour", "95% interval", "points", "objective", "outcome"],
                    [[d.slo, "-" if d.value is None else f"{d.value:+.4g} {d.unit}",
                      "-" if d.low is None or d.high is None
                      else f"{d.low:+.4g} .. {d.high:+.4g}", d.points,
                      "-" if d.limit is None else f"<= {d.limit:g}", d.outcome]
                     for d in result.drifts])
    windows = _table(["window", "from s", "requests", "errors", "TTFT p50 ms", "TTFT p99 ms",
                      "ITL p99 ms", "e2e p95 ms", "memory MB", "connections"],
                     [[f"{w.index}{'' if w.complete else ' (cut)'}", f"{w.start_s:g}",
                       w.requests, f"{w.error_rate:.1%}", _num(w.ttft_ms.p50),
                       _num(w.ttft_ms.p99), _num(w.itl_ms.p99), _num(w.e2e_ms.p95),
                       "-" if w.memory_bytes is None else f"{w.memory_bytes / 2**20:.1f}",
                       "-" if w.open_connections is None else f"{w.open_connections:g}"]
                      for w in result.windows])
    notes = "".join(f"<p>{_e(note)}</p>" for note in result.notes)
    return ["<h2>Soak: windows over time</h2>",
            f"<p>{len(result.windows)} windows of {result.window_s:g} s; drift is the "
            "Theil–Sen slope over the whole windows, judged only when its 95% interval "
            "lies wholly on one side of the objective (else inconclusive).</p>",
            drifts, notes, ttft, errors, memory, windows]
