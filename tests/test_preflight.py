"""A wrong setting is one line before anything runs: a refused key, a base URL ending in
``/v1``, a profile the target's answers contradict (exit 2, no category, no report)."""

from __future__ import annotations

import dataclasses
import io
from pathlib import Path

import pytest

from gateprobe.cli import main
from gateprobe.core.console import Console
from gateprobe.core.errors import ConfigError
from gateprobe.core.targets import Target
from gateprobe.engine.preflight import preflight
from gateway_fixtures import MakeGateway


@pytest.fixture(autouse=True)
def keys(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GP_PF_KEY", "gp-vip-0001")
    monkeypatch.setenv("GP_PF_WRONG", "gp-nobody-0001")


def gateprobe(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = main(list(argv), Console(out, err))
    return code, out.getvalue(), err.getvalue()


def one_line_before_anything(code: int, out: str, err: str, report: Path) -> str:
    assert code == 2, out + err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert not report.exists(), "a category ran (or a report was started)"
    assert "Traceback" not in out + err and "findings" not in out
    return lines[0]


@pytest.mark.parametrize("command", [
    ("conformance",), ("run", "--suites", "conformance,latency"), ("load", "latency")])
def test_a_refused_key_names_its_variable(make_gateway: MakeGateway, tmp_path: Path,
                                          command: tuple[str, ...]) -> None:
    gateway = make_gateway()
    report = tmp_path / "report"
    line = one_line_before_anything(*gateprobe(
        *command, "--base-url", gateway.base_url, "--api-key-env", "GP_PF_WRONG",
        "--report-dir", str(report)), report)
    assert "refused the key in GP_PF_WRONG" in line and "gp-nobody" not in line
    assert gateway.state.requests == 0


def test_a_base_url_ending_in_v1_gets_the_hint(make_gateway: MakeGateway,
                                               tmp_path: Path) -> None:
    gateway = make_gateway()
    report = tmp_path / "report"
    line = one_line_before_anything(*gateprobe(
        "conformance", "--base-url", gateway.base_url + "/v1", "--api-key-env", "GP_PF_KEY",
        "--report-dir", str(report)), report)
    assert "ends in /v1" in line and f"use {gateway.base_url} as the base URL" in line


@pytest.mark.parametrize(("served", "declared", "fits"), [
    ("ohmygpt", "anthropic", "--profile ohmygpt"),   # x-api-key refused, Bearer taken
    ("openai", "ohmygpt", "--profile openai"),       # /v1/messages not served
    ("openai", "anthropic", "--profile openai"),
])
def test_a_profile_the_target_contradicts_names_the_one_that_fits(
        make_gateway: MakeGateway, tmp_path: Path, served: str, declared: str,
        fits: str) -> None:
    gateway = make_gateway(profile=served)
    report = tmp_path / "report"
    line = one_line_before_anything(*gateprobe(
        "conformance", "--base-url", gateway.base_url, "--profile", declared,
        "--api-key-env", "GP_PF_KEY", "--report-dir", str(report)), report)
    assert f"profile {declared} " in line and fits in line


@pytest.mark.parametrize("profile", ["ohmygpt", "anthropic", "openai"])
def test_a_right_setting_passes_in_at_most_two_requests(make_gateway: MakeGateway,
                                                        profile: str) -> None:
    gateway = make_gateway(profile=profile)
    preflight(Target(gateway.base_url, profile, "gp-vip-0001", "GP_PF_KEY"))
    assert gateway.state.requests == 0  # invalid on purpose: nothing reached the model


def test_a_key_refused_everywhere_is_no_profile_hint(make_gateway: MakeGateway) -> None:
    gateway = make_gateway(profile="anthropic")
    target = Target(gateway.base_url, "anthropic", "gp-nobody-0001", "GP_PF_WRONG")
    with pytest.raises(ConfigError, match="refused the key in GP_PF_WRONG .*401 on POST "
                                          "/v1/chat/completions and 401 on POST /v1/messages"):
        preflight(target)
    with pytest.raises(ConfigError, match="refused"):
        preflight(dataclasses.replace(target, profile="ohmygpt"))
