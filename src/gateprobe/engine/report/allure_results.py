"""The phases pytest does not run (load scenarios, mirrors) as Allure results, beside the
conformance suite's own in ``allure-results/``.

Without them an Allure report of a ``run`` shows the conformance suite alone, and a rate-limit
or latency verdict that failed the run is missing from the page CI links to. Each verdict item
(a tier, an SLO, a mirror's finding) becomes one result, exactly the items ``junit.xml`` lists
for the same phase, so Allure and JUnit count the same tests. The format is Allure 2's plain
result JSON (what allure-pytest writes), so no Allure library is needed for it.
"""

from __future__ import annotations

import hashlib
import json
import time
import uuid
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from gateprobe.core.events import ERROR, SKIPPED, Phase

# The same verdict items junit.xml lists: one definition, so the two never disagree.
from gateprobe.engine.report.summary import _junit_cases as verdict_items


def write_phases(results_dir: Path, phases: Sequence[Phase]) -> list[Path]:
    """One Allure result per verdict item of every phase but the conformance suite (which
    allure-pytest reported itself); returns the files written."""
    written: list[Path] = []
    now_ms = int(time.time() * 1000)
    for phase in phases:
        seen: Counter[str] = Counter()
        for name, failure, skip in verdict_items(phase):
            seen[name] += 1  # two items of one name (a check failing twice on a mirror) are
            # two tests in JUnit: two historyIds here, or Allure would fold them into one
            full_name = f"gateprobe.{phase.name}#{name}" + \
                (f" ({seen[name]})" if seen[name] > 1 else "")
            written.append(_write(results_dir, phase, full_name, name, (failure, skip), now_ms))
    return written


def _write(results_dir: Path, phase: Phase, full_name: str, name: str,
           outcome: tuple[str, str], now_ms: int) -> Path:
    results_dir.mkdir(parents=True, exist_ok=True)
    suite = f"gateprobe.{phase.name}"
    failure, skip = outcome
    status = "failed" if failure or phase.status == ERROR else \
        "skipped" if skip or phase.status == SKIPPED else "passed"
    result_id = str(uuid.uuid4())
    history = hashlib.md5(full_name.encode(), usedforsecurity=False).hexdigest()
    result: dict[str, Any] = {
        "uuid": result_id, "historyId": history, "testCaseId": history,
        "fullName": full_name, "name": name, "status": status,
        "statusDetails": {"message": failure or skip or phase.reason},
        "stage": "finished", "start": now_ms, "stop": now_ms,
        "labels": [{"name": "suite", "value": suite},
                   {"name": "feature", "value": phase.name},
                   {"name": "framework", "value": "gateprobe"}],
        "attachments": [],
    }
    if phase.data:  # the verdict behind the item (keys are masked by the folder afterwards)
        source = f"{uuid.uuid4()}-attachment.json"
        (results_dir / source).write_text(json.dumps(phase.data, indent=2, default=str),
                                          encoding="utf-8")
        result["attachments"].append({"name": "verdict", "source": source,
                                      "type": "application/json"})
    path = results_dir / f"{result_id}-result.json"
    path.write_text(json.dumps(result, indent=2), encoding="utf-8")
    return path
