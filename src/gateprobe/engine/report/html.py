"""``report.html``: one self-contained file (inline CSS and SVG, no script, nothing fetched),
so a CI artifact opens anywhere, offline.

It shows the verdict, the phases, the findings grouped check -> endpoint -> case (collapsible,
each with its field, expectation, answer, evidence and curl repro), latency tables with a TTFT
CDF and an e2e histogram per endpoint (or per mirror), and the rate-limit timeline per tier.
Everything shown was redacted where it was made; ``redact_tree`` runs over the folder
afterwards as well.

The page must read on a phone as well as on a wide screen: a viewport meta, a max-width, SVGs
that scale with their ``viewBox``, and tables that turn into one card per row on a narrow
screen (a table wider than the screen hides its last columns). ``tests/report/test_browser.py``
checks all of it in a real browser.
"""

from __future__ import annotations

import json
import math
from collections import Counter
from collections.abc import Mapping, Sequence
from html import escape
from pathlib import Path
from typing import Any

from gateprobe.core.errors import SATURATED_EXIT
from gateprobe.core.loadresult import (
    Generator,
    LatencyResult,
    RateLimitResult,
    ScenarioResult,
    TasksResult,
    WorkloadStats,
    result_of,
)
from gateprobe.core.metrics import percentile
from gateprobe.engine.report import svg
from gateprobe.engine.report.summary import cell, grouped_findings, notes

STYLE = """
*{box-sizing:border-box}
body{font-family:system-ui,sans-serif;margin:2em auto;max-width:1100px;color:#222;
padding:0 1em;overflow-wrap:break-word}
h1 .pass{color:#1a7f37}h1 .fail{color:#cf222e}
table{border-collapse:collapse;margin:.5em 0 1.5em;max-width:100%}
td,th{border:1px solid #ccc;padding:3px 8px;text-align:left;vertical-align:top;font-size:13px}
th{background:#f3f3f3}.passed,.ok{color:#1a7f37}.failed,.error,.FAIL,.fail{color:#cf222e}
.skipped{color:#9a6700}code,pre{font-size:12px;background:#f6f8fa}
pre{white-space:pre-wrap;overflow-wrap:anywhere;max-width:100%;padding:4px 6px;margin:.3em 0}
.plots{display:flex;flex-wrap:wrap;gap:1em}
figure{margin:0 0 1em;flex:0 1 520px;min-width:0}
figure svg{display:block;width:100%;height:auto}
p.no-plot{font-style:italic;color:#555}
details{margin:.2em 0}summary{cursor:pointer}
details.check{border:1px solid #ddd;border-radius:4px;padding:.3em .6em;margin:.4em 0}
details.endpoint{margin-left:1em}
.finding{margin:.3em 0 .6em 1em;padding-left:.6em;border-left:3px solid #eee}
.finding dl{display:grid;grid-template-columns:max-content minmax(0,1fr);gap:.1em .8em;
margin:.2em 0}
.finding dt{color:#555}.finding dd{margin:0;min-width:0}
.count{font-weight:bold}.sev-high{color:#cf222e}.sev-medium{color:#9a6700}
.answers{display:grid;grid-template-columns:repeat(auto-fit,minmax(16em,1fr));gap:.5em}
.answers>div{min-width:0}
@media (max-width:700px){
body{margin:1em auto;padding:0 .5em}
table.cards,table.cards tbody,table.cards tr,table.cards td{display:block;width:100%}
table.cards tr:first-child{display:none}
table.cards tr{border:1px solid #ccc;margin:0 0 .5em}
table.cards td{border:0;border-bottom:1px solid #eee}
table.cards td::before{content:attr(data-label) ": ";font-weight:bold}
.finding dl{grid-template-columns:minmax(0,1fr)}
}
"""


def _e(value: object) -> str:
    return escape(str(value), quote=True)


def _table(header: Sequence[str], rows: Sequence[Sequence[object]],
           classes: Sequence[str] | None = None) -> str:
    """A table; on a narrow screen each row becomes a card whose cells name their column."""
    head = "".join(f"<th>{_e(h)}</th>" for h in header)
    body = []
    for i, row in enumerate(rows):
        css = f' class="{_e(classes[i])}"' if classes else ""
        body.append(f"<tr{css}>" + "".join(
            f'<td data-label="{_e(header[j])}">{_e(cell(c))}</td>'
            for j, c in enumerate(row)) + "</tr>")
    return f"<table class='cards'><tr>{head}</tr>{''.join(body)}</table>"


def _ms(value: Any) -> str:
    return "-" if value is None else f"{value:.1f}"


def _text(value: object) -> str:
    """A value as inline text, or as a preformatted block when it has lines of its own (a
    golden diff, a traceback): squashed into a paragraph, a diff is unreadable."""
    text = cell(value)
    return f"<pre>{_e(text)}</pre>" if "\n" in text else _e(text)


def read_samples(path: Path) -> list[dict[str, Any]]:
    """Raw samples of a load phase (``samples.jsonl``), or none."""
    if not path.exists():
        return []
    out = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            out.append(json.loads(line))
        except ValueError:
            continue
    return out


def render(summary: Mapping[str, Any], run_dir: Path) -> str:
    """The whole page."""
    ok = summary["ok"]
    target = summary["target"]
    verdict = "PASS" if ok else "NO VERDICT" if summary.get("exit_code") == SATURATED_EXIT \
        else "FAIL"
    parts = [
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>",
        "<meta name='viewport' content='width=device-width, initial-scale=1'>",
        f"<title>gateprobe {_e(summary['command'])}: {verdict}</title>",
        f"<style>{STYLE}</style></head><body>",
        f"<h1>gateprobe {_e(summary['command'])}: "
        f"<span class='{'pass' if ok else 'fail'}'>{verdict}</span></h1>",
        f"<p>Target <b>{_e(target.get('name') or '')}</b> <code>{_e(target.get('base_url'))}"
        f"</code> ({_e(target.get('profile'))}), started {_e(summary['started'])}, "
        f"{summary['duration_s']:.0f} s, exit code {summary['exit_code']}, gateprobe "
        f"{_e(summary['gateprobe'])}.</p>",
        "<h2>Phases</h2>",
        _table(["phase", "result", "details"],
               [[p["name"], p["status"], p["reason"]] for p in summary["phases"]],
               [p["status"] for p in summary["phases"]]),
    ]
    if summary.get("gate"):
        parts += _gate(summary["gate"])
    parts += _findings(summary["findings"])
    said = notes(summary)
    if said:
        parts += ["<h2>Information (not judged)</h2>", "<ul>",
                  *(f"<li>{_e(line)}</li>" for line in said), "</ul>"]
    parts += _billing(run_dir)
    if summary.get("compare"):
        parts += _compare(summary["compare"])
    for phase in summary["phases"]:
        parts += load_sections(phase, run_dir)
    parts += [_files(summary, run_dir), "</body></html>"]
    return "\n".join(parts)


# -- findings ---------------------------------------------------------------------------------
def _findings(findings: Sequence[Mapping[str, Any]]) -> list[str]:
    if not findings:
        return ["<h2>Findings</h2><p class='ok'>None.</p>"]
    groups = grouped_findings(findings)
    total = sum(int(f.get("count") or 1) for f in findings)
    out = [f"<h2>Findings ({total})</h2>",
           f"<p>{len(groups)} checks failed. Each check opens onto its endpoints, each "
           "endpoint onto its cases; identical findings of one case are shown once, with "
           "their count.</p>"]
    if len(groups) > 200:
        out.append(f"<p>The first 200 checks; {len(groups) - 200} more in summary.json.</p>")
    for check, endpoints in list(groups.items())[:200]:
        items = [f for fs in endpoints.values() for f in fs]
        count = sum(f["count"] for f in items)
        severity = items[0].get("severity", "")
        out.append(f"<details class='check' open><summary><code>{_e(check)}</code> "
                   f"<span class='sev-{_e(severity)}'>{_e(severity)}</span>: "
                   f"<span class='count'>{count}</span> on {len(endpoints)} "
                   f"endpoint{'s' if len(endpoints) != 1 else ''}</summary>")
        for endpoint, fs in endpoints.items():
            n = sum(f["count"] for f in fs)
            out.append(f"<details class='endpoint'{' open' if len(groups) <= 3 else ''}>"
                       f"<summary>{_e(endpoint)}: <span class='count'>{n}</span></summary>")
            out += [_finding(f) for f in fs[:100]]
            if len(fs) > 100:
                out.append(f"<p>{len(fs) - 100} more cases in summary.json.</p>")
            out.append("</details>")
        out.append("</details>")
    return out


def _finding(f: Mapping[str, Any]) -> str:
    """One collapsed finding: its case and count, then what a reader needs to act on it."""
    rows = []
    if f.get("pointer"):
        rows.append(("field", f"<code>{_e(f['pointer'])}</code>"))
    rows += [("expected", _text(f.get("expected", ""))),
             ("observed", _text(f.get("observed", "")))]
    dl = "".join(f"<dt>{name}</dt><dd>{value}</dd>" for name, value in rows)
    extra = ""
    if f.get("evidence"):
        extra += f"<details><summary>evidence</summary><pre>{_e(f['evidence'])}</pre></details>"
    if f.get("repro"):
        extra += (f"<details open><summary>reproduce</summary><pre>{_e(f['repro'])}</pre>"
                  "</details>")
    times = f" <span class='count'>&times;{f['count']}</span>" if f["count"] > 1 else ""
    return (f"<div class='finding'><div><b>{_e(f.get('case') or '(no case)')}</b>{times} "
            f"<small>({_e(f.get('phase', ''))})</small></div><dl>{dl}</dl>{extra}</div>")


def _billing(run_dir: Path) -> list[str]:
    """The billing category's table (``billing.json``), when the run had one."""
    path = run_dir / "billing.json"
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return []
    rows = [[r["kind"], r["status"], r["input_tokens"], r["output_tokens"],
             f"{r['expected']:.2f}", f"{r['seen']:.2f}", f"{r['difference']:.2f}"]
            for r in data.get("rows", [])]
    stopped = f"<p>Stopped early: {_e(data['stopped'])}</p>" if data.get("stopped") else ""
    return ["<h2>Billing (credits)</h2>", _table(
        ["request kind", "status", "input tokens", "output tokens", "charge expected",
         "charge seen", "difference"], rows), stopped]


# -- latency ----------------------------------------------------------------------------------
METRIC_ROWS = (("ttfb_ms", "TTFB", "ms"), ("ttft_ms", "TTFT", "ms"),
               ("tpot_ms", "TPOT", "ms/token"), ("itl_ms", "ITL (each gap)", "ms"),
               ("e2e_ms", "e2e", "ms"), ("tokens_per_s", "output rate", "tokens/s"))
"""The rows of a latency table: each metric with its own unit (a rate is no time)."""


def load_sections(phase: Mapping[str, Any], run_dir: Path) -> list[str]:
    """A load phase's sections (its verdict's typed result decides which), or none."""
    result = result_of(phase.get("data"))
    folder = run_dir / str(phase.get("dir") or "")
    if isinstance(result, LatencyResult):
        return latency_section(result, read_samples(folder / "samples.jsonl"),
                               read_samples(folder / "lag.jsonl"))
    if isinstance(result, RateLimitResult):
        return rate_limit_section(result)
    if isinstance(result, TasksResult):
        return [*tasks_section(result),
                *generator_section(result.generator, read_samples(folder / "lag.jsonl"))]
    return []


def verdict_text(result: ScenarioResult) -> tuple[str, str]:
    """(the word, its CSS class) of a load run's outcome."""
    if result.saturated:
        return "SATURATED (no verdict)", "skipped"
    if result.limited_by_target:
        return "NO VERDICT", "skipped"
    return ("PASS", "ok") if result.ok else ("FAIL", "fail")


def latency_section(result: LatencyResult, samples: Sequence[Mapping[str, Any]],
                    lag: Sequence[Mapping[str, Any]]) -> list[str]:
    """A latency run: its verdict, the generator's own lag, one percentile table per endpoint
    (each metric in its unit), latency and lag over time, TTFT CDF and e2e histograms."""
    word, css = verdict_text(result)
    reasons = "; ".join(result.reasons)
    out = ["<h2>Latency</h2>",
           f"<p class='load-verdict'>Verdict: <b class='{css}'>{_e(word)}</b>"
           + (f": {_e(reasons)}" if reasons else "") + "</p>"]
    if result.lagged:  # judged all the same: said where the verdict is
        out.append(f"<p class='load-lagged'>{_e(result.lagged)}.</p>")
    for endpoint, m in [*result.by_endpoint.items(), ("all endpoints", result.overall)]:
        out.append(f"<h3>{_e(endpoint)}: {m.requests} requests, {m.errors} errors</h3>")
        out.append(_table(["metric", "unit", "p50", "p90", "p95", "p99", "max", "samples"],
                          [[name, unit, *(_num(getattr(m.metric(key), q)) for q in
                                          ("p50", "p90", "p95", "p99", "max")),
                            m.metric(key).count] for key, name, unit in METRIC_ROWS]))
    out.append("<p>From raw samples; TPOT is per output token after the first, ITL every gap "
               "between content events, the output rate a stream's tokens over its time. "
               + ("Objectives: not judged." if result.inconclusive else
                  "SLOs missed: " + (_e(reasons) if reasons else "none") + ".") + "</p>")
    out += workload_section(result.workload)
    out += generator_section(result.generator, lag)
    out += ["<div class='plots'>", *_over_time(samples), "</div>"]
    return [*out, *_latency_plots(samples)]


def workload_section(work: WorkloadStats | None) -> list[str]:
    """A latency run's workload (``gateprobe.commands.load.workloads``): TTFT by turn and by shared
    prefix length, and the tokens asked, sent, reported and received."""
    if work is None:
        return []
    out = ["<h3>Workload</h3>"]
    for title, groups in (("turn", work.by_turn), ("prefix tokens", work.by_prefix_tokens)):
        if len(groups) > 1:
            out.append(_table([title, "requests", "errors", "prompt tokens p50", "TTFT p50 (ms)",
                               "TTFT p95 (ms)"],
                              [[k, g.requests, g.errors, _num(g.prompt_tokens.p50),
                                _num(g.ttft_ms.p50), _num(g.ttft_ms.p95)]
                               for k, g in groups.items()]))
    out.append(_table(["tokens", "p50", "p95", "max", "requests"],
                      [[name, _num(p.p50), _num(p.p95), _num(p.max), p.count]
                       for name, p in work.tokens.items()]))
    short = work.output_shorter_than_asked
    out.append("<p>Output length is only capped (<code>max_tokens</code>): no protocol asks a "
               "model for at least N tokens; "
               + ("" if short is None else f"{short:.0%} of the answers were shorter than asked; ")
               + "TTFT grew "
               + _num(work.ttft_ms_per_1k_prompt_tokens) + " ms per 1,000 prompt tokens.</p>")
    return out


def _num(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}" if abs(value) < 10 else f"{value:.1f}"


def _over_time(samples: Sequence[Mapping[str, Any]]) -> list[str]:
    """TTFT p50 and p95 of the requests started in each second of the run."""
    timed = [s for s in samples if _is_valid(s, "ttft_ms") and isinstance(s.get("t"), float)]
    if not timed:
        return []
    t0 = min(s["t"] for s in timed)
    seconds: dict[int, list[float]] = {}
    for s in timed:
        seconds.setdefault(int(s["t"] - t0), []).append(s["ttft_ms"])
    series = {f"TTFT p{q}": [(float(sec), percentile(v, q))
                             for sec, v in sorted(seconds.items())] for q in (50, 95)}
    chart = svg.lines(series, "TTFT over time", "seconds since the first request", "TTFT (ms)")
    return [f"<figure>{chart}</figure>"]


def generator_section(generator: Generator, lag: Sequence[Mapping[str, Any]]) -> list[str]:
    """The load generator's verdict on itself: lag p99 of each kind against the bound, CPU per
    process, and the lag over time (the worst process each interval)."""
    if not generator.lag_p99_ms:
        return []
    word = "SATURATED" if generator.saturated else "within bound"
    out = [f"<h3>Load generator: <span class='{'fail' if generator.saturated else 'ok'}'>"
           f"{word}</span></h3>",
           _table(["lag", "p99 (ms)", "bound (ms)"],
                  [[kind, _num(p99), _num(generator.bound_ms)]
                   for kind, p99 in generator.lag_p99_ms.items()]),
           f"<p>{generator.processes} load process{'es' if generator.processes != 1 else ''}, "
           f"the busiest at {(generator.busiest_cpu_share or 0):.0%} of a core. "
           + (_e(generator.why) if generator.saturated else
              "Schedule: a request's intended send to its start; receive: the kernel's stamp "
              "of a read to its handling; loop: a 10 ms timer's delay.") + "</p>"]
    if lag:
        t0 = min(float(line.get("t") or 0) for line in lag)
        series: dict[str, dict[float, float]] = {}
        for line in lag:
            for kind, h in (line.get("lag") or {}).items():
                p99 = h.get("p99_ms")
                if h.get("n") and isinstance(p99, int | float) and math.isfinite(p99):
                    at = round(float(line["t"]) - t0)
                    points = series.setdefault(f"{kind} p99", {})
                    points[at] = max(points.get(at, 0.0), p99)
        chart = svg.lines({k: sorted(v.items()) for k, v in series.items()},
                          "Load generator lag over time", "seconds", "lag p99 (ms)",
                          bound=generator.bound_ms)
        out.append(f"<div class='plots'><figure>{chart}</figure></div>")
    return out


def _is_valid(sample: Mapping[str, Any], metric: str) -> bool:
    """A sample a latency plot may show: a request that succeeded, with that number (a failed
    request's TTFT measures how fast it failed, not the gateway's latency)."""
    value = sample.get(metric)
    return bool(sample.get("ok", True)) and isinstance(value, int | float) \
        and math.isfinite(value)


def _why_no_plot(samples: Sequence[Mapping[str, Any]], what: str) -> str:
    """The sentence shown instead of a plot without valid samples."""
    if not samples:
        return f"<p class='no-plot'>No {_e(what)} plot: no request was recorded.</p>"
    failed = [s for s in samples if not s.get("ok", True)]
    kinds = Counter(str(s.get("error_kind") or s.get("status") or "error") for s in failed)
    symptoms = ", ".join(f"{k} &times;{n}" for k, n in kinds.most_common(3))
    if len(failed) == len(samples):
        why = f"all {len(samples)} requests failed ({symptoms})"
    else:
        why = f"none of the {len(samples)} requests has this measurement"
    return f"<p class='no-plot'>No {_e(what)} plot: {why}, so there is no latency to show.</p>"


def _latency_plots(samples: Sequence[Mapping[str, Any]]) -> list[str]:
    endpoints = sorted({str(s.get("endpoint")) for s in samples})
    by_endpoint = {e: [s for s in samples if str(s.get("endpoint")) == e] for e in endpoints}
    ttft = {e: [s["ttft_ms"] for s in ss if _is_valid(s, "ttft_ms")]
            for e, ss in by_endpoint.items()}
    if not any(ttft.values()):
        return [_why_no_plot(samples, "TTFT or e2e")]
    out = ["<div class='plots'>",
           f"<figure>{svg.cdf(ttft, 'TTFT per endpoint (CDF)', 'TTFT (ms)')}</figure>"]
    missing = []
    for endpoint, ss in by_endpoint.items():
        e2e = [s["e2e_ms"] for s in ss if _is_valid(s, "e2e_ms")]
        if e2e:
            chart = svg.histogram(e2e, f"End-to-end latency: {endpoint}", "e2e (ms)")
            out.append(f"<figure>{chart}</figure>")
        else:
            missing.append(_why_no_plot(ss, f"{endpoint} e2e"))
    return [*out, "</div>", *missing]


# -- rate limits ------------------------------------------------------------------------------
def rate_limit_section(result: RateLimitResult) -> list[str]:
    """Each tier's counts and verdict, and its accepted / 429 / failed per second."""
    rows = [[t.tier, t.limit, t.sent, t.accepted, t.rejected, t.failed, t.retry_after_s,
             t.recovered, "ok" if t.ok else "FAIL", list(t.problems)] for t in result.tiers]
    out = ["<h2>Rate limits</h2>",
           _table(["tier", "limit", "sent", "accepted", "429", "failed", "Retry-After (s)",
                   "recovered", "result", "problems"], rows), "<div class='plots'>"]
    timeline = result.timeline
    seconds = sorted({r["second"] for r in timeline})
    labels = [str(s) for s in range(seconds[-1] + 1)] if seconds else []
    for tier in [t.tier for t in result.tiers]:
        rows_of = {r["second"]: r for r in timeline if r["tier"] == tier}
        stacks = {kind: [float(rows_of.get(s, {}).get(kind, 0)) for s in range(len(labels))]
                  for kind in ("accepted", "rejected", "failed")}
        if not rows_of:
            out.append(f"<p class='no-plot'>No timeline for tier {_e(tier)}: it sent "
                       "nothing.</p>")
            continue
        out.append("<figure>" + svg.bars(
            labels, stacks, f"Tier {tier}: accepted / 429 / failed per second",
            "seconds since the first request", "requests",
            colours=("#2ca02c", "#d62728", "#7f7f7f")) + "</figure>")
    return [*out, "</div>"]


def tasks_section(result: TasksResult) -> list[str]:
    """A tasks run: outcomes and time to SUCCESS."""
    word, css = verdict_text(result)
    m = result.time_to_success_ms
    return ["<h2>Midjourney tasks</h2>",
            f"<p class='load-verdict'>Verdict: <b class='{css}'>{_e(word)}</b>"
            + (f": {_e('; '.join(result.reasons))}" if result.reasons else "") + "</p>",
            _table(["tasks", "SUCCESS", "failure rate", "to SUCCESS p50 (ms)", "p95 (ms)",
                    "max (ms)", "polls mean", "cut by the run's end"],
                   [[result.tasks, result.succeeded, f"{result.failure_rate:.1%}",
                     _num(m.p50), _num(m.p95), _num(m.max), _num(result.polls.mean),
                     result.cut_by_run]])]


# -- compare ----------------------------------------------------------------------------------
def _compare(compare: Mapping[str, Any]) -> list[str]:
    mirrors = compare["mirrors"]
    names = [m["name"] for m in mirrors]
    out = ["<h2>Mirrors</h2>",
           _table(["mirror", "base URL", "reachable", "TTFT p50", "TTFT p95", "e2e p50",
                   "e2e p95", "errors", "timeouts", "long request"],
                  [[m["name"], m["base_url"], m["reason"] or "yes",
                    _ms(m["latency"].get("ttft_p50_ms")), _ms(m["latency"].get("ttft_p95_ms")),
                    _ms(m["latency"].get("e2e_p50_ms")), _ms(m["latency"].get("e2e_p95_ms")),
                    m["latency"].get("errors", 0), m["latency"].get("timeouts", 0),
                    m["long_request"]["verdict"]] for m in mirrors])]
    matrix = compare.get("matrix") or {}
    if matrix:
        out.append("<h3>Checks per mirror</h3>")
        out.append(_table(["probe", *names],
                          [[probe, *(cells.get(n, "-") for n in names)]
                           for probe, cells in matrix.items()]))
    out += _differences(compare.get("differences") or [], names)
    series = {m["name"]: m.get("ttft_samples") or [] for m in mirrors}
    if any(series.values()):
        out.append(f"<div class='plots'><figure>"
                   f"{svg.cdf(series, 'TTFT per mirror (CDF)', 'TTFT (ms)')}</figure></div>")
    else:
        out.append("<p class='no-plot'>No TTFT plot: no mirror completed a stream.</p>")
    return out


def _differences(differences: Sequence[Mapping[str, Any]], names: Sequence[str]) -> list[str]:
    """What the mirrors disagree on; each mirror's own answer side by side when the
    comparison kept them (``answers``), so a reader sees which one is right."""
    out = ["<h3>Differences between mirrors</h3>"]
    if not differences:
        return [*out, "<p>None.</p>"]
    out.append(_table(["what", "probe", *names, "odd one out"],
                      [[d["what"], d["probe"], *(d["values"].get(n, "-") for n in names),
                        ", ".join(d.get("odd") or []) or "none"] for d in differences]))
    for d in differences:
        answers = d.get("answers") or {}
        if not answers:
            continue
        out.append(f"<details class='difference' open><summary>{_e(d['what'])}: "
                   f"{_e(d['probe'])}</summary><div class='answers'>")
        first, curls = d.get("first_event") or {}, d.get("curls") or {}
        out += [f"<div><b>{_e(name)}</b><pre>{_e(cell(answers[name]))}</pre>"
                + (f"<p>first differing event</p><pre>{_e(first[name])}</pre>"
                   if name in first else "")
                + (f"<p>repro</p><pre>{_e(curls[name])}</pre>" if curls.get(name) else "")
                + "</div>"
                for name in [*(n for n in names if n in answers),
                             *(n for n in answers if n not in names)]]
        out.append("</div></details>")
    return out


# -- gate and files ---------------------------------------------------------------------------
def _gate(gate: Mapping[str, Any]) -> list[str]:
    decisions = gate.get("decisions", [])
    rows = [[d["kind"], d["what"], d["detail"]] for d in decisions]
    kinds = Counter(d["kind"] for d in decisions)
    tally = ", ".join(f"{n} {k}" for k, n in kinds.most_common())
    return ["<h2>Gate</h2>", f"<p>{_e(tally)}.</p>" if tally else "",
            _table(["decision", "what", "detail"], rows,
                   ["fail" if d["kind"] in ("fail", "regression") else "ok"
                    for d in decisions]) if rows else "<p>Nothing to decide.</p>"]


FILES = (("summary.json", "the summary, for machines (a gate's baseline)"),
         ("summary.md", "the summary as Markdown (a CI job summary)"),
         ("junit.xml", "JUnit"),
         ("allure-results", "Allure results (allure serve allure-results)"),
         ("conformance.json", "the conformance suite's findings and outcomes"))


def _files(summary: Mapping[str, Any], run_dir: Path) -> str:
    """Links to the files of this run that exist (a link to nothing is worse than none)."""
    links = [f"<li><a href='{_e(name)}{'/' if (run_dir / name).is_dir() else ''}'>"
             f"<code>{_e(name)}</code></a>: {_e(what)}</li>"
             for name, what in FILES if (run_dir / name).exists()]
    for phase in summary["phases"]:
        folder = run_dir / phase["dir"] if phase.get("dir") else None
        if folder is None or not folder.is_dir():
            continue
        inside = [f"<a href='{_e(phase['dir'])}/{_e(p.name)}'><code>{_e(p.name)}</code></a>"
                  for p in sorted(folder.iterdir())
                  if p.name in ("locust.html", "samples.jsonl", "verdict.json", "plan.json")]
        links.append(f"<li><a href='{_e(phase['dir'])}/'><code>{_e(phase['dir'])}/</code></a>"
                     f": the {_e(phase['name'])} phase ({', '.join(inside) or 'its files'})"
                     "</li>")
    if not links:
        return ""
    return f"<h2>Files of this run</h2><ul>{''.join(links)}</ul>"
