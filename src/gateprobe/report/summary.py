"""A run's summary: ``summary.json`` (versioned, for machines: the gate's baseline, dashboards),
``summary.md`` (a CI job summary or PR comment) and the merged ``junit.xml``.

``summary.json`` schema, version 1 (additions keep the version; a removal or a change of
meaning bumps it)::

    schema: "gateprobe.summary", version: 1, gateprobe: <version>
    command, started, finished (UTC ISO 8601), duration_s
    target: {name, base_url, profile}
    ok: bool, exit_code: int
    phases: [{name, status: passed|failed|skipped|error, reason, dir, data}]
    findings: [{phase, check_id, endpoint, severity, expected, observed, evidence}]
    latency: {endpoint or "all": {ttft_p50_ms, ttft_p95_ms, e2e_p95_ms, ...}} (when measured)
"""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from gateprobe import __version__
from gateprobe.errors import ConfigError
from gateprobe.events import ERROR, SKIPPED, Phase
from gateprobe.metrics import finite

SCHEMA = "gateprobe.summary"
VERSION = 1


def latency_digest(verdict: Mapping[str, Any]) -> dict[str, dict[str, float | None]]:
    """The latency numbers a reader compares between runs, per endpoint and over all."""
    latency = verdict.get("latency") or {}

    def digest(m: Mapping[str, Any]) -> dict[str, float | None]:
        out: dict[str, float | None] = {"requests": m.get("requests"),
                                        "error_rate": m.get("error_rate")}
        for metric in ("ttfb_ms", "ttft_ms", "tpot_ms", "itl_ms", "e2e_ms"):
            for q in ("p50", "p95", "p99"):
                out[f"{metric.removesuffix('_ms')}_{q}_ms"] = (m.get(metric) or {}).get(q)
        out["tokens_per_s_p50"] = (m.get("tokens_per_s") or {}).get("p50")
        return out

    result = {endpoint: digest(m) for endpoint, m in (latency.get("by_endpoint") or {}).items()}
    if latency:
        result["all"] = digest(latency)
    return result


def build(command: str, target: Mapping[str, Any], phases: Sequence[Phase], started: str,
          finished: str, duration_s: float, exit_code: int,
          extra: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The summary document."""
    summary: dict[str, Any] = {
        "schema": SCHEMA, "version": VERSION, "gateprobe": __version__, "command": command,
        "started": started, "finished": finished, "duration_s": round(duration_s, 3),
        "target": dict(target), "ok": exit_code == 0, "exit_code": exit_code,
        "phases": [p.as_json() for p in phases],
        "findings": [{"phase": p.name, **f.as_json()} for p in phases for f in p.findings],
    }
    for phase in phases:
        if phase.name == "latency" and phase.data:
            summary["latency"] = latency_digest(phase.data)
    summary.update(extra or {})
    return summary


def write_json(run_dir: Path, summary: Mapping[str, Any]) -> Path:
    """``summary.json``."""
    path = run_dir / "summary.json"
    path.write_text(json.dumps(finite(summary), indent=2, allow_nan=False, default=str) + "\n",
                    encoding="utf-8")
    return path


def load(path: Path) -> dict[str, Any]:
    """A ``summary.json`` (a baseline), checked for its schema and version."""
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"cannot read summary {path}: {exc.strerror}") from None
    except ValueError as exc:
        raise ConfigError(f"{path}: not JSON ({exc})") from None
    if not isinstance(raw, dict) or raw.get("schema") != SCHEMA:
        raise ConfigError(f"{path}: not a gateprobe summary.json")
    if raw.get("version") != VERSION:
        raise ConfigError(f"{path}: summary version {raw.get('version')}; this gateprobe "
                          f"reads version {VERSION}")
    return raw


# -- Markdown ---------------------------------------------------------------------------------
def _md(text: object) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def _ms(value: Any) -> str:
    return "-" if value is None else f"{value:.1f}"


def markdown(summary: Mapping[str, Any], report_name: str = "report.html") -> str:
    """``summary.md``: the verdict first, then what a reviewer needs to act on it."""
    verdict = "PASS" if summary["ok"] else "FAIL"
    target = summary["target"]
    lines = [f"## gateprobe {summary['command']}: {verdict}", "",
             f"Target: {_md(target.get('name') or '')} `{_md(target.get('base_url', ''))}` "
             f"({_md(target.get('profile', ''))}); {summary['started']}; "
             f"{summary['duration_s']:.0f} s; gateprobe {summary['gateprobe']}.", "",
             "| phase | result | details |", "| --- | --- | --- |"]
    for phase in summary["phases"]:
        lines.append(f"| {phase['name']} | {phase['status']} | {_md(phase['reason'])} |")
    findings = summary["findings"]
    if findings:
        counts = Counter((f["phase"], f["check_id"], f["endpoint"]) for f in findings)
        lines += ["", f"### Findings ({len(findings)})", "",
                  "| phase | check | endpoint | count | expected | observed |",
                  "| --- | --- | --- | --- | --- | --- |"]
        seen: set[tuple[str, str, str]] = set()
        for f in findings:
            key = (f["phase"], f["check_id"], f["endpoint"])
            if key in seen:
                continue
            seen.add(key)
            lines.append(f"| {f['phase']} | `{f['check_id']}` | {_md(f['endpoint'])} | "
                         f"{counts[key]} | {_md(f['expected'])[:120]} | "
                         f"{_md(f['observed'])[:120]} |")
            if len(seen) == 30:
                lines.append(f"| ... | {len(counts) - 30} more | | | | |")
                break
    if summary.get("latency"):
        lines += ["", "### Latency (ms)", "",
                  "| endpoint | requests | TTFT p50 | TTFT p95 | TPOT p50 | e2e p95 | errors |",
                  "| --- | --- | --- | --- | --- | --- | --- |"]
        for endpoint, m in summary["latency"].items():
            lines.append(f"| {endpoint} | {m['requests']} | {_ms(m['ttft_p50_ms'])} | "
                         f"{_ms(m['ttft_p95_ms'])} | {_ms(m['tpot_p50_ms'])} | "
                         f"{_ms(m['e2e_p95_ms'])} | {_ms((m['error_rate'] or 0) * 100)}% |")
    for phase in summary["phases"]:
        tiers = (phase.get("data") or {}).get("rate_limits", {}).get("tiers")
        if tiers:
            lines += ["", "### Rate limits", "",
                      "| tier | limit | sent | accepted | 429 | recovered | result |",
                      "| --- | --- | --- | --- | --- | --- | --- |"]
            for t in tiers:
                lines.append(f"| {t['tier']} | {t['limit']} | {t['sent']} | {t['accepted']} | "
                             f"{t['rejected']} | {t['recovered']} | "
                             f"{'ok' if t['ok'] else 'FAIL'} |")
    if summary.get("compare"):
        lines += ["", "### Mirrors", "", *summary["compare"].get("markdown", [])]
    lines += ["", f"Full report: `{report_name}` in the run folder.", ""]
    return "\n".join(lines)


# -- JUnit ------------------------------------------------------------------------------------
def merge_junit(run_dir: Path, phases: Sequence[Phase]) -> Path:
    """One ``junit.xml``: the conformance suite's own (pytest's) plus a suite per other phase,
    one test case per verdict item (a tier, an SLO, a mirror check)."""
    path = run_dir / "junit.xml"
    root = ET.Element("testsuites")
    if path.exists():
        try:
            existing = ET.parse(path).getroot()
            suites = [existing] if existing.tag == "testsuite" else list(existing)
            root.extend(suites)
        except ET.ParseError:
            pass
    for phase in phases:
        cases = _junit_cases(phase)
        if not cases:
            continue
        suite = ET.SubElement(root, "testsuite", name=f"gateprobe.{phase.name}",
                              tests=str(len(cases)),
                              failures=str(sum(1 for _, failure, _ in cases if failure)),
                              skipped=str(sum(1 for _, _, skip in cases if skip)))
        for name, failure, skip in cases:
            case = ET.SubElement(suite, "testcase", classname=f"gateprobe.{phase.name}",
                                 name=name)
            if failure:
                ET.SubElement(case, "failure", message=failure[:500]).text = failure
            elif skip:
                ET.SubElement(case, "skipped", message=skip)
    ET.ElementTree(root).write(path, encoding="utf-8", xml_declaration=True)
    return path


def _junit_cases(phase: Phase) -> list[tuple[str, str, str]]:
    """(name, failure message or '', skip reason or '') per verdict item of a non-pytest
    phase."""
    if phase.name == "conformance":
        return []
    if phase.status in (SKIPPED, ERROR):
        return [(phase.name, phase.reason if phase.status == ERROR else "",
                 phase.reason if phase.status == SKIPPED else "")]
    data = phase.data
    if phase.name == "rate-limits":
        return [(f"tier {t['tier']}", "; ".join(t["problems"]), "")
                for t in data.get("rate_limits", {}).get("tiers", [])]
    if phase.name == "latency":
        reasons = data.get("reasons", [])
        slos = sorted(data.get("slo_names", [])) or ["objectives"]
        failing = {r.split(":", 1)[0]: r for r in reasons}
        cases = [(f"slo {name}", failing.pop(name, ""), "") for name in slos]
        cases += [(f"slo {name}", reason, "") for name, reason in failing.items()]
        return cases
    return [(f"{f.check_id} {f.endpoint}", f.observed, "") for f in phase.findings] \
        or [(phase.name, "", "")]
