"""The multi-host load recipes in ``docs/load/``: the Compose file against the Compose
specification's schema (vendored by check-jsonschema), the Kubernetes manifests against
Kubernetes' own schemas (kubernetes-validate), each check shown to fail on a broken copy; and
the commands they run are the ones ``gateprobe load`` accepts (the recipe itself is run, on
one host, by ``tests/load/test_load_cli.py::test_master_with_two_workers``)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from gateprobe.cli import build_parser

DOCS = Path(__file__).resolve().parents[1] / "docs" / "load"
COMPOSE = DOCS / "compose.yaml"
KUBERNETES = DOCS / "kubernetes.yaml"
KUBERNETES_VERSION = "1.30.0"


def compose_errors(path: Path) -> str:
    """What the Compose specification's schema says of ``path`` ('' when valid)."""
    done = subprocess.run([sys.executable, "-m", "check_jsonschema", "--builtin-schema",
                           "vendor.compose-spec", str(path)], capture_output=True, text=True,
                          timeout=120)
    return "" if done.returncode == 0 else done.stdout + done.stderr


def kubernetes_errors(documents: list[dict[str, Any]]) -> list[str]:
    out = []
    for doc in documents:
        try:
            kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)
        except kubernetes_validate.ValidationError as error:
            out.append(f"{doc.get('kind')}: {error.message}")
    return out


@pytest.mark.slow
def test_the_compose_file_follows_the_compose_schema(tmp_path: Path) -> None:
    assert compose_errors(COMPOSE) == ""
    broken = tmp_path / "compose.yaml"
    broken.write_text(COMPOSE.read_text().replace("    deploy:", "    deplyo:", 1))
    assert "deplyo" in compose_errors(broken)


def test_the_kubernetes_manifests_follow_kubernetes_schemas() -> None:
    documents = list(yaml.safe_load_all(KUBERNETES.read_text()))
    assert [d["kind"] for d in documents] == ["Service", "Job", "Job"]
    assert kubernetes_errors(documents) == []
    documents[1]["spec"]["template"]["spec"]["containers"][0]["imagePullPolcy"] = "Always"
    documents[2]["spec"]["parallelism"] = "two"
    assert len(kubernetes_errors(documents)) == 2


def commands() -> list[list[str]]:
    compose = yaml.safe_load(COMPOSE.read_text())["services"]
    pods = [d["spec"]["template"]["spec"]["containers"][0]
            for d in yaml.safe_load_all(KUBERNETES.read_text()) if d["kind"] == "Job"]
    return [s["command"] for s in compose.values()] + [p["args"] for p in pods]


@pytest.mark.parametrize("argv", commands(), ids=lambda a: " ".join(a[2:5]))
def test_each_recipe_command_is_a_gateprobe_load_command(argv: list[str]) -> None:
    assert argv[:2] == ["gateprobe", "load"]
    args = build_parser().parse_args(argv[1:])
    assert args.scenario == "latency" and args.master_port == 5601
    assert args.master or (args.worker and args.master_host in ("master", "gateprobe-master"))
