"""Every case states what it needs of a target, and is not sent where that does not hold.

The endpoint is one precondition; the others (``gateprobe.engine.cases.PRECONDITIONS``) are the
profile, a declared model, a model family, the shape of a route: the ``claude-2-web`` cases go
only to the documented gateway's profile with that model declared, the ``output_format`` image
cases only to gpt-image models, the SDK's ``/v1/models`` call through the SDK of the profile.
The proof at scale: ``gateprobe conformance`` under each profile against the reference served
under that profile, every category, finds nothing.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest

from gateprobe.core.targets import Target, TargetEntry
from gateprobe.engine.cases import PRECONDITIONS, Case, all_cases, golden_cases, unmet
from gateway_fixtures import MakeGateway

EVERYTHING = frozenset({"chat", "completions", "embeddings", "models", "messages",
                        "count_tokens", "complete", "images"})


def _models(cases: list[Case]) -> set[str]:
    """The models the cases ask for; the no-permission key's case names the model that key
    lacks (``legacy_chat`` by definition, under any profile): it is sent only with that key."""
    return {c.body.get("model") for c in cases
            if isinstance(c.body, dict) and c.expect.kind != "no_permission"}


@pytest.mark.slow
def test_claude_2_web_goes_only_to_the_documented_profile_declaring_it() -> None:
    documented = Target("http://127.0.0.1:9", "ohmygpt", "k", endpoints=EVERYTHING)
    assert "claude-2-web" in _models(all_cases(documented))
    for profile in ("openai", "anthropic"):
        other = replace(documented, profile=profile)
        assert "claude-2-web" not in _models(all_cases(other)), profile
    # A targets-file entry whose models: names no legacy_chat: no claude-2-web case either
    entry = TargetEntry("gw", "http://127.0.0.1:9", "ohmygpt", "GP_TEST_KEY",
                        models={"chat": "gpt-4o-mini"})
    undeclared = replace(entry.resolve(read_keys=False), endpoints=EVERYTHING)
    assert undeclared.declared_models == frozenset({"chat"})
    assert "claude-2-web" not in _models(all_cases(undeclared))
    assert not [c for c in golden_cases(undeclared) if "claude-2-web" in c.name]
    assert "needs" not in unmet(("legacy_chat",), documented)


@pytest.mark.slow
def test_output_format_only_with_gpt_image_models() -> None:
    dalle = Target("http://127.0.0.1:9", "openai", "k", endpoints=frozenset({"images"}))
    sent = [c.body for c in all_cases(dalle) if c.path == "/v1/images/generations"]
    assert sent and not [b for b in sent if "output_format" in b]
    assert [b for b in sent if b.get("response_format") == "b64_json"]  # PNG answers judged
    gpt_image = replace(dalle, models={**dalle.models, "images": "gpt-image-1"})
    formats = {c.body.get("output_format") for c in all_cases(gpt_image)
               if c.path == "/v1/images/generations"}
    assert {"webp", "jpeg"} <= formats


def test_every_precondition_says_what_it_needs() -> None:
    target = Target("http://127.0.0.1:9", "openai", "k")
    for name, (holds, needs) in PRECONDITIONS.items():
        assert needs and unmet((name,), target) in ("", needs), name
        assert isinstance(holds(target), bool)


@pytest.mark.slow
@pytest.mark.parametrize("profile", ["ohmygpt", "anthropic", "openai"])
def test_conformance_under_each_profile_finds_nothing_on_the_reference_of_that_profile(
        make_gateway: MakeGateway, profile: str, tmp_path: Path) -> None:
    """Every category, fuzzing bounded: a wrong precondition (a claude-2-web case under
    openai, the openai SDK on Anthropic's /v1/models) shows here as a finding."""
    gateway = make_gateway(profile=profile)
    env = {**os.environ, "GP_PROFILE_KEY": "gp-vip-0001", "GP_NOMODEL_KEY": "gp-nomodel-0001"}
    proc = subprocess.run(
        [sys.executable, "-m", "gateprobe", "conformance", "--base-url", gateway.base_url,
         "--profile", profile, "--api-key-env", "GP_PROFILE_KEY",
         "--no-permission-key-env", "GP_NOMODEL_KEY", "--max-examples", "2",
         "--fuzz-max-requests", "60", "--report-dir", str(tmp_path)],
        env=env, capture_output=True, text=True, timeout=600, cwd=Path(__file__).parents[1])
    out = proc.stdout[-3000:] + proc.stderr[-2000:]
    assert proc.returncode == 0, out
    result = json.loads((tmp_path / "conformance.json").read_text())
    assert result["findings"] == [], out
    ran = {t["test"].split("::")[0] for t in result["tests"] if t["outcome"] == "passed"}
    assert {"test_conformance.py", "test_fuzz.py", "test_sdk.py"} <= \
        {Path(r).name for r in ran}, ran
