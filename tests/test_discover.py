"""What a target serves: found by ``gateprobe discover``, declared in the targets file or with
``--endpoints``, and honoured: nothing is sent outside it, and what is not served is said once,
never reported as a finding."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
import yaml

from gateprobe.cli import main
from gateprobe.console import Console
from gateprobe.discover import MAX_REQUESTS, discover
from gateprobe.errors import UsageError
from gateprobe.targets import Target, check_endpoints
from gateway_fixtures import FAST, MakeGateway

EXISTING = """# our gateways
targets:
  local:  # the one on this machine
    base_url: http://127.0.0.1:1
    profile: ohmygpt
    api_key_env: GP_DISCOVER_KEY
"""


def gateprobe(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    return main(list(argv), Console(out, err)), out.getvalue(), err.getvalue()


@pytest.fixture(autouse=True)
def key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GP_DISCOVER_KEY", "gp-vip-0001")


def test_discover_finds_an_openai_only_gateway(make_gateway: MakeGateway) -> None:
    gateway = make_gateway(profile="openai", timing=FAST)
    found = discover(Target(gateway.base_url, "openai", "gp-vip-0001"))
    assert found.served == ["models", "chat", "completions", "embeddings", "responses",
                            "conversations", "chat_store"]
    assert found.answers["messages"] == "404" and found.requests <= MAX_REQUESTS
    assert (found.answers["responses"], found.answers["conversations"]) == ("400", "400")
    ohmygpt = discover(Target(make_gateway(timing=FAST).base_url, "ohmygpt", "gp-vip-0001"))
    assert len(ohmygpt.served) == 10 and ohmygpt.x_api_key is False  # Bearer only, documented
    anthropic = discover(Target(make_gateway(profile="anthropic", timing=FAST).base_url,
                                "anthropic", "gp-vip-0001"))
    assert not {"responses", "conversations"} & set(anthropic.served)


def test_discover_writes_an_entry_the_suite_honours(make_gateway: MakeGateway,
                                                    tmp_path: Path) -> None:
    gateway = make_gateway(profile="openai", timing=FAST)
    targets = tmp_path / "targets.yaml"
    targets.write_text(EXISTING)
    code, out, err = gateprobe("discover", "--base-url", gateway.base_url, "--profile",
                               "openai", "--api-key-env", "GP_DISCOVER_KEY", "--write",
                               str(targets), "--name", "gw")
    assert code == 0, err
    text = targets.read_text()
    assert text.startswith(EXISTING) and "# the one on this machine" in text  # comments kept
    entry = yaml.safe_load(text)["targets"]["gw"]
    assert entry["endpoints"] == ["models", "chat", "completions", "embeddings",
                                  "responses", "conversations", "chat_store"]
    assert "gp-vip-0001" not in text
    code, _, err = gateprobe("discover", "--base-url", gateway.base_url, "--api-key-env",
                             "GP_DISCOVER_KEY", "--write", str(targets), "--name", "gw")
    assert code == 2 and "exists already" in err  # never overwritten
    code, out, err = gateprobe("conformance", "--target", "gw", "--targets", str(targets),
                               "--select", "endpoint or errors or auth or stream",
                               "--report-dir", str(tmp_path / "report"))
    printed = (tmp_path / "report" / "pytest.log").read_text()  # pytest's own report
    assert code == 0, printed[-2000:] + err
    assert "not sent (the target does not serve them): /v1/messages" in out  # on the console
    report = json.loads((tmp_path / "report" / "conformance.json").read_text())
    assert report["findings"] == []
    assert {p for p in report["cases_per_endpoint"] if not p.startswith((
        "/v1/responses", "/v1/conversations", "/v1/chat/completions/"))} <= {
        "/v1/models", "/v1/chat/completions", "/v1/completions", "/v1/embeddings"}


def test_endpoints_flag_narrows_every_category(make_gateway: MakeGateway, tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    gateway = make_gateway(timing=FAST)
    code, _, err = gateprobe("conformance", "--base-url", gateway.base_url, "--api-key-env",
                             "GP_DISCOVER_KEY", "--endpoints", "chat,models",
                             "--select", "not fuzz", "--report-dir", str(tmp_path))
    capsys.readouterr()
    assert code == 0, err
    report = json.loads((tmp_path / "conformance.json").read_text())
    assert set(report["cases_per_endpoint"]) == {"/v1/models", "/v1/chat/completions"}
    sdk = [t for t in report["tests"] if "test_sdk" in t["test"]]
    assert {t["outcome"] for t in sdk if "[completions]" in t["test"]} == {"skipped"}


def test_served_paths_and_names() -> None:
    t = Target("http://127.0.0.1:1", "ohmygpt", "k", endpoints=frozenset({"messages", "models"}))
    assert t.serves("/v1/messages") and t.serves("/v1/models/gpt-4")
    assert not t.serves("/v1/messages/count_tokens") and not t.serves("/v1/complete")
    assert Target("http://127.0.0.1:1", "openai", "k").not_served == [
        "/v1/messages", "/v1/messages/count_tokens", "/v1/complete"]
    with pytest.raises(UsageError, match="did you mean 'messages'"):
        check_endpoints(["mesages"])


@pytest.mark.parametrize(("auth", "flagged"), [(None, False), (["bearer", "x-api-key"], False),
                                               (["bearer"], True)])
def test_an_extra_auth_style_is_a_finding_only_when_declared_refused(
        make_gateway: MakeGateway, tmp_path: Path, capsys: pytest.CaptureFixture[str],
        auth: list[str] | None, flagged: bool) -> None:
    """A gateway that also takes x-api-key (with a valid key) is not wrong unless its entry
    says it takes Bearer only."""
    gateway = make_gateway(timing=FAST, faults=("accept-x-api-key",))
    targets = tmp_path / "targets.yaml"
    targets.write_text(f"targets:\n  gw:\n    base_url: {gateway.base_url}\n"
                       "    profile: ohmygpt\n    api_key_env: GP_DISCOVER_KEY\n"
                       + (f"    auth: {auth}\n" if auth else ""))
    code, _, err = gateprobe("conformance", "--target", "gw", "--targets", str(targets),
                             "--select", "auth", "--report-dir", str(tmp_path / "r"))
    capsys.readouterr()
    found = {f["check_id"] for f in
             json.loads((tmp_path / "r" / "conformance.json").read_text())["findings"]}
    assert (code, "auth.rejected" in found) == (int(flagged), flagged), (found, err)


def test_a_selection_with_no_case_for_the_target_is_one_line(make_gateway: MakeGateway) -> None:
    gateway = make_gateway(profile="openai", timing=FAST)
    # Legacy prompts go to the Anthropic routes and claude-2-web: neither is the openai
    # profile's.
    code, _, err = gateprobe("conformance", "--base-url", gateway.base_url, "--profile",
                             "openai", "--api-key-env", "GP_DISCOVER_KEY", "--select",
                             "legacy_prompt")
    assert code == 2
    assert err == ("gateprobe: --select 'legacy_prompt' selects no case for this target "
                   "(profile openai, endpoints chat, completions, embeddings, models)\n")
