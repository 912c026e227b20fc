"""A run's summary: ``summary.json`` (versioned, for machines: the gate's baseline, dashboards),
``summary.md`` (a CI job summary or PR comment) and the merged ``junit.xml``.

``summary.json`` schema, version 1 (additions keep the version; a removal or a change of
meaning bumps it)::

    schema: "gateprobe.summary", version: 1, gateprobe: <version>
    command, started, finished (UTC ISO 8601), duration_s
    target: {name, base_url, profile}
    ok: bool, exit_code: int
    phases: [{name, status: passed|failed|skipped|error, reason, dir, data}]
    findings: [{phase, check_id, endpoint, severity, expected, observed, evidence, case,
                and where the finding has them: pointer, repro, count}]
    latency: {endpoint or "all": {ttft_p50_ms, ttft_p95_ms, e2e_p95_ms, ...}} (when measured)
    gate: {config, baseline, decisions: [{kind, what, detail}]} (``gateprobe gate``)
    compare: {mirrors, matrix, differences, markdown, options} (``gateprobe compare``)

Readers take the optional keys with ``.get``: a summary written before they existed still loads.
"""

from __future__ import annotations

import json
import math
import xml.etree.ElementTree as ET
from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from gateprobe import __version__
from gateprobe.core.errors import ConfigError
from gateprobe.core.events import ERROR, SKIPPED, Phase
from gateprobe.core.loadresult import LatencyResult, RateLimitResult, StreamStats, result_of
from gateprobe.core.metrics import finite

SCHEMA = "gateprobe.summary"
VERSION = 1


def latency_digest(verdict: Mapping[str, Any]) -> dict[str, dict[str, float | None]]:
    """The latency numbers a reader compares between runs, per endpoint and over all ({} for
    a verdict that is not a latency run's)."""
    latency = result_of(verdict)
    if not isinstance(latency, LatencyResult):
        return {}

    def digest(m: StreamStats) -> dict[str, float | None]:
        out: dict[str, float | None] = {"requests": m.requests, "error_rate": m.error_rate}
        for metric in ("ttfb_ms", "ttft_ms", "tpot_ms", "itl_ms", "e2e_ms"):
            for q in ("p50", "p95", "p99"):
                out[f"{metric.removesuffix('_ms')}_{q}_ms"] = getattr(m.metric(metric), q)
        out["tokens_per_s_p50"] = m.tokens_per_s.p50
        return out

    result = {endpoint: digest(m) for endpoint, m in latency.by_endpoint.items()}
    result["all"] = digest(latency.overall)
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
        if isinstance(result_of(phase.data), LatencyResult):
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


def notes(summary: Mapping[str, Any]) -> list[str]:
    """What the run says without judging: endpoints not sent to (the target does not serve
    them) and information lines (what a target does that it does not declare)."""
    out: list[str] = []
    for phase in summary["phases"]:
        data = phase.get("data") or {}
        if data.get("not_served"):
            out.append(f"{phase['name']}: not sent (the target does not serve them): "
                       f"{', '.join(data['not_served'])}")
        out += [f"{phase['name']}: {line}" for line in data.get("missing_extras") or []]
        if data.get("fuzz_seed") is not None:
            out.append(f"{phase['name']}: fuzz seed {data['fuzz_seed']} (--fuzz-seed "
                       f"{data['fuzz_seed']} sends the same cases again)")
        out += [f"{phase['name']}: {line}" for line in data.get("information") or []]
    return out


# -- Markdown ---------------------------------------------------------------------------------
def _md(text: object) -> str:
    return cell(text).replace("|", "\\|").replace("\n", " ")


def _ms(value: Any) -> str:
    return "-" if value is None else f"{value:.1f}"


def cell(value: object) -> str:
    """A value as a person writes it: ``yes``/``no``, ``-`` for nothing, lists and mappings
    spelled out. A report never shows a Python repr (``True``, ``{'a': 1}``, ``None``)."""
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        if not math.isfinite(value):
            return "-"
        return str(int(value)) if value.is_integer() else f"{value:.3f}".rstrip("0")
    if isinstance(value, Mapping):
        return ", ".join(f"{k}: {cell(v)}" for k, v in value.items())
    if isinstance(value, list | tuple | set | frozenset):
        return "; ".join(cell(v) for v in value)
    return str(value)


SEVERITY_RANK = {"high": 0, "medium": 1, "low": 2}


def grouped_findings(findings: Sequence[Mapping[str, Any]],
                     ) -> dict[str, dict[str, list[dict[str, Any]]]]:
    """Findings as check -> endpoint -> one entry per distinct finding of a case, each with
    its ``count``: the same expectation failing 7 times on one case is one thing to fix.

    Checks come most severe first, then most frequent; endpoints and cases in run order.
    """
    groups: dict[str, dict[str, dict[tuple[str, ...], dict[str, Any]]]] = {}
    for f in findings:
        key = tuple(str(f.get(k) or "") for k in ("phase", "case", "pointer", "expected",
                                                    "observed"))
        cases = groups.setdefault(f["check_id"], {}).setdefault(f["endpoint"], {})
        if key in cases:
            cases[key]["count"] += int(f.get("count") or 1)
        else:
            cases[key] = {**f, "count": int(f.get("count") or 1)}

    def rank(item: tuple[str, dict[str, dict[tuple[str, ...], dict[str, Any]]]],
             ) -> tuple[int, int, str]:
        entries = [e for cases in item[1].values() for e in cases.values()]
        worst = min(SEVERITY_RANK.get(str(e.get("severity")), 3) for e in entries)
        return worst, -sum(e["count"] for e in entries), item[0]

    return {check: {endpoint: list(cases.values()) for endpoint, cases in endpoints.items()}
            for check, endpoints in sorted(groups.items(), key=rank)}


def markdown(summary: Mapping[str, Any], report_name: str = "report.html") -> str:
    """``summary.md``: the verdict first, then what a reviewer needs to act on it."""
    verdict = "PASS" if summary["ok"] else "FAIL"
    target = summary["target"]
    name = f"{_md(target['name'])} " if target.get("name") else ""
    lines = [f"## gateprobe {summary['command']}: {verdict}", "",
             f"Target: {name}`{_md(target.get('base_url', ''))}` "
             f"({_md(target.get('profile', ''))}); {summary['started']}; "
             f"{summary['duration_s']:.0f} s; gateprobe {summary['gateprobe']}.", "",
             "| phase | result | details |", "| --- | --- | --- |"]
    for phase in summary["phases"]:
        lines.append(f"| {_md(phase['name'])} | {phase['status']} | {_md(phase['reason'])} |")
    lines += _md_gate(summary.get("gate") or {})
    lines += _md_findings(summary["findings"])
    said = notes(summary)
    if said:
        lines += ["", "### Information (not judged)", "", *(f"- {_md(line)}" for line in said)]
    if summary.get("latency"):
        lines += ["", "### Latency (ms)", "",
                  "| endpoint | requests | TTFT p50 | TTFT p95 | TPOT p50 | e2e p95 | errors |",
                  "| --- | --- | --- | --- | --- | --- | --- |"]
        for endpoint, m in summary["latency"].items():
            lines.append(f"| {endpoint} | {_md(m['requests'])} | {_ms(m['ttft_p50_ms'])} | "
                         f"{_ms(m['ttft_p95_ms'])} | {_ms(m['tpot_p50_ms'])} | "
                         f"{_ms(m['e2e_p95_ms'])} | {_ms((m['error_rate'] or 0) * 100)}% |")
    for phase in summary["phases"]:
        tiers = (phase.get("data") or {}).get("rate_limits", {}).get("tiers")
        if tiers:
            lines += ["", "### Rate limits", "",
                      "| tier | limit | sent | accepted | 429 | recovered | result |",
                      "| --- | --- | --- | --- | --- | --- | --- |"]
            for t in tiers:
                lines.append(f"| {_md(t['tier'])} | {_md(t['limit'])} | {_md(t['sent'])} | "
                             f"{_md(t['accepted'])} | {_md(t['rejected'])} | "
                             f"{_md(t['recovered'])} | {'ok' if t['ok'] else 'FAIL'} |")
    if summary.get("compare"):
        lines += ["", "### Mirrors", "", *summary["compare"].get("markdown", [])]
    lines += ["", f"Full report: `{report_name}` in the run folder.", ""]
    return "\n".join(lines)


def _md_gate(gate: Mapping[str, Any]) -> list[str]:
    """The gate's decisions, right under the phases: in a CI job summary they are the answer
    to "why did the gate fail?"."""
    if not gate:
        return []
    decisions = gate.get("decisions") or []
    failing = sum(d["kind"] in ("fail", "regression") for d in decisions)
    tally = ", ".join(f"{n} {k}" for k, n in Counter(d["kind"] for d in decisions).items())
    lines = ["", f"### Gate: {'FAIL' if failing else 'PASS'}"
             + (f" ({tally})" if tally else ""), ""]
    if gate.get("baseline"):
        lines += [f"Baseline: the run of {_md(gate['baseline'])}.", ""]
    if not decisions:
        return [*lines, "Nothing to decide: no finding, every phase ran."]
    lines += ["| decision | what | detail |", "| --- | --- | --- |"]
    order = {"fail": 0, "regression": 0, "expired": 1, "known": 2, "allowed": 2}
    for d in sorted(decisions, key=lambda d: order.get(d["kind"], 3)):
        kind = f"**{d['kind']}**" if d["kind"] in ("fail", "regression") else d["kind"]
        lines.append(f"| {kind} | {_md(d['what'])} | {_md(d['detail'])[:200]} |")
    return lines


def _first_line(text: object, limit: int = 120) -> str:
    """A multi-line value (a golden diff) shortened to its first line: the full text is in
    report.html, where it keeps its lines."""
    lines = cell(text).splitlines() or [""]
    more = " (more in report.html)" if len(lines) > 1 else ""
    changed = [line for line in lines if line[:1] in ("-", "+")
               and not line.startswith(("---", "+++"))]
    first = _md("; ".join(changed[:2]) if lines[0].startswith("---") and changed else lines[0])
    return (first[:limit] + "...") if len(first) > limit else first + more


def _md_findings(findings: Sequence[Mapping[str, Any]]) -> list[str]:
    """Findings grouped check -> endpoint, one row each with its count and its cases."""
    if not findings:
        return []
    total = sum(int(f.get("count") or 1) for f in findings)
    lines = ["", f"### Findings ({total})", "",
             "| check | endpoint | count | cases | expected | observed |",
             "| --- | --- | --- | --- | --- | --- |"]
    rows = 0
    groups = grouped_findings(findings)
    for check, endpoints in groups.items():
        for endpoint, entries in endpoints.items():
            rows += 1
            if rows > 40:
                lines.append("| ... | more in report.html | | | | |")
                return lines
            count = sum(e["count"] for e in entries)
            cases = [_md(e.get("case") or "(no case)")
                     + (f" x{e['count']}" if e["count"] > 1 else "") for e in entries[:3]]
            if len(entries) > 3:
                cases.append(f"+{len(entries) - 3} more")
            where = _md(endpoint) + (f" ({_md(entries[0]['phase'])})"
                                     if entries[0].get("phase") not in (None, "", "conformance")
                                     else "")
            lines.append(f"| `{check}` | {where} | {count} | {'; '.join(cases)} | "
                         f"{_first_line(entries[0].get('expected'))} | "
                         f"{_first_line(entries[0].get('observed'))} |")
    return lines


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
    result = result_of({"scenario": phase.name, **phase.data})  # a load phase is its scenario
    if isinstance(result, RateLimitResult):
        return [(f"tier {t.tier}", "; ".join(t.problems), "") for t in result.tiers]
    if isinstance(result, LatencyResult):
        reasons = list(result.reasons)
        slos = sorted(result.slo_names) or ["objectives"]
        failing = {r.split(":", 1)[0]: r for r in reasons}
        cases = [(f"slo {name}", failing.pop(name, ""), "") for name in slos]
        cases += [(f"slo {name}", reason, "") for name, reason in failing.items()]
        return cases
    return [(f"{f.check_id} {f.endpoint}", f.observed, "") for f in phase.findings] \
        or [(phase.name, "", "")]
