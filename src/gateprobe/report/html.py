"""``report.html``: one self-contained file (inline CSS and SVG, no script, nothing fetched),
so a CI artifact opens anywhere, offline.

It shows the verdict, the phases, every finding, latency tables with a TTFT CDF per endpoint
(or per mirror) and an e2e histogram, and the rate-limit timeline per tier. Everything shown
was redacted where it was made; ``redact_tree`` runs over the folder afterwards as well.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from html import escape
from pathlib import Path
from typing import Any

from gateprobe.report import svg

STYLE = """
body{font-family:system-ui,sans-serif;margin:2em auto;max-width:1100px;color:#222;padding:0 1em}
h1 .pass{color:#1a7f37}h1 .fail{color:#cf222e}
table{border-collapse:collapse;margin:.5em 0 1.5em}
td,th{border:1px solid #ccc;padding:3px 8px;text-align:left;vertical-align:top;font-size:13px}
th{background:#f3f3f3}.passed,.ok{color:#1a7f37}.failed,.error,.FAIL{color:#cf222e}
.skipped{color:#9a6700}code,pre{font-size:12px;background:#f6f8fa}
pre{white-space:pre-wrap;max-width:1000px;padding:4px}figure{margin:0 0 1em}
"""


def _e(value: object) -> str:
    return escape(str(value), quote=True)


def _table(header: Sequence[str], rows: Sequence[Sequence[object]],
           classes: Sequence[str] | None = None) -> str:
    head = "".join(f"<th>{_e(h)}</th>" for h in header)
    body = []
    for i, row in enumerate(rows):
        css = f' class="{_e(classes[i])}"' if classes else ""
        body.append(f"<tr{css}>" + "".join(f"<td>{_e(c)}</td>" for c in row) + "</tr>")
    return f"<table><tr>{head}</tr>{''.join(body)}</table>"


def _ms(value: Any) -> str:
    return "-" if value is None else f"{value:.1f}"


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
    parts = [
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>",
        f"<title>gateprobe {_e(summary['command'])}: {'PASS' if ok else 'FAIL'}</title>",
        f"<style>{STYLE}</style></head><body>",
        f"<h1>gateprobe {_e(summary['command'])}: "
        f"<span class='{'pass' if ok else 'fail'}'>{'PASS' if ok else 'FAIL'}</span></h1>",
        f"<p>Target <b>{_e(target.get('name') or '')}</b> <code>{_e(target.get('base_url'))}"
        f"</code> ({_e(target.get('profile'))}), started {_e(summary['started'])}, "
        f"{summary['duration_s']:.0f} s, exit code {summary['exit_code']}, gateprobe "
        f"{_e(summary['gateprobe'])}.</p>",
        "<h2>Phases</h2>",
        _table(["phase", "result", "details"],
               [[p["name"], p["status"], p["reason"]] for p in summary["phases"]],
               [p["status"] for p in summary["phases"]]),
    ]
    parts += _findings(summary["findings"])
    parts += _billing(run_dir)
    if summary.get("compare"):
        parts += _compare(summary["compare"])
    for phase in summary["phases"]:
        if phase["name"] == "latency" and phase["data"]:
            parts += _latency(phase, run_dir)
        if phase["name"] == "rate-limits" and phase["data"]:
            parts += _rate_limits(phase["data"])
    if summary.get("gate"):
        parts += _gate(summary["gate"])
    parts.append("<p>Files of this run: <code>summary.json</code>, <code>summary.md</code>, "
                 "<code>junit.xml</code>, <code>allure-results/</code>, and one folder per "
                 "load phase (raw samples, Locust's CSV and HTML).</p></body></html>")
    return "\n".join(parts)


def _findings(findings: Sequence[Mapping[str, Any]]) -> list[str]:
    if not findings:
        return ["<h2>Findings</h2><p class='ok'>None.</p>"]
    rows = [[f["phase"], f["check_id"], f["endpoint"], f["severity"], f["expected"],
             f["observed"]] for f in findings[:500]]
    more = f"<p>{len(findings) - 500} more in summary.json.</p>" if len(findings) > 500 else ""
    evidence = "".join(
        f"<details><summary>{_e(f['check_id'])} {_e(f['endpoint'])}</summary>"
        f"<pre>{_e(f['evidence'])}</pre></details>"
        for f in findings[:50] if f.get("evidence"))
    return [f"<h2>Findings ({len(findings)})</h2>",
            _table(["phase", "check", "endpoint", "severity", "expected", "observed"], rows),
            more, evidence]


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


def _latency(phase: Mapping[str, Any], run_dir: Path) -> list[str]:
    data = phase["data"]["latency"]
    rows = []
    for endpoint, m in [*data.get("by_endpoint", {}).items(), ("all", data)]:
        rows.append([endpoint, m["requests"], m["errors"], _ms(m["ttfb_ms"]["p50"]),
                     _ms(m["ttft_ms"]["p50"]), _ms(m["ttft_ms"]["p95"]),
                     _ms(m["tpot_ms"]["p50"]), _ms(m["itl_ms"]["p99"]),
                     _ms(m["e2e_ms"]["p95"]), _ms(m["tokens_per_s"]["p50"])])
    samples = read_samples(run_dir / phase["dir"] / "samples.jsonl")
    by_endpoint: dict[str, list[float]] = {}
    for s in samples:
        if s.get("ttft_ms") is not None:
            by_endpoint.setdefault(s["endpoint"], []).append(s["ttft_ms"])
    e2e = [s["e2e_ms"] for s in samples if s.get("e2e_ms") is not None]
    reasons = phase["data"].get("reasons") or []
    return ["<h2>Latency</h2>",
            _table(["endpoint", "requests", "errors", "TTFB p50", "TTFT p50", "TTFT p95",
                    "TPOT p50", "ITL p99", "e2e p95", "tokens/s p50"], rows),
            "<p>Milliseconds, from raw samples. SLOs missed: "
            + (_e("; ".join(reasons)) if reasons else "none") + ".</p>",
            f"<figure>{svg.cdf(by_endpoint, 'TTFT per endpoint (CDF)', 'TTFT (ms)')}</figure>",
            f"<figure>{svg.histogram(e2e, 'End-to-end latency', 'e2e (ms)')}</figure>"]


def _rate_limits(data: Mapping[str, Any]) -> list[str]:
    result = data["rate_limits"]
    rows = [[t["tier"], t["limit"], t["sent"], t["accepted"], t["rejected"], t["failed"],
             t["retry_after_s"], t["recovered"], "ok" if t["ok"] else "FAIL",
             "; ".join(t["problems"])] for t in result["tiers"]]
    out = ["<h2>Rate limits</h2>",
           _table(["tier", "limit", "sent", "accepted", "429", "failed", "Retry-After (s)",
                   "recovered", "result", "problems"], rows)]
    timeline = result.get("timeline") or []
    seconds = sorted({r["second"] for r in timeline})
    labels = [str(s) for s in range(seconds[-1] + 1)] if seconds else []
    for tier in [t["tier"] for t in result["tiers"]]:
        rows_of = {r["second"]: r for r in timeline if r["tier"] == tier}
        stacks = {kind: [float(rows_of.get(s, {}).get(kind, 0)) for s in range(len(labels))]
                  for kind in ("accepted", "rejected", "failed")}
        out.append("<figure>" + svg.bars(
            labels, stacks, f"Tier {tier}: accepted / 429 / failed per second",
            "seconds since the first request", "requests",
            colours=("#2ca02c", "#d62728", "#7f7f7f")) + "</figure>")
    return out


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
    differences = compare.get("differences") or []
    out.append("<h3>Differences between mirrors</h3>")
    out.append(_table(["what", "probe", *names],
                      [[d["what"], d["probe"], *(d["values"].get(n, "-") for n in names)]
                       for d in differences]) if differences else "<p>None.</p>")
    series = {m["name"]: m.get("ttft_samples") or [] for m in mirrors}
    out.append(f"<figure>{svg.cdf(series, 'TTFT per mirror (CDF)', 'TTFT (ms)')}</figure>")
    return out


def _gate(gate: Mapping[str, Any]) -> list[str]:
    rows = [[d["kind"], d["what"], d["detail"]] for d in gate.get("decisions", [])]
    return ["<h2>Gate</h2>", _table(["decision", "what", "detail"], rows) if rows
            else "<p>Nothing to decide.</p>"]
