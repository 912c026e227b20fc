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
from gateprobe.commands.discover import (
    FAMILY_PROBES,
    MAX_REQUESTS,
    Discovery,
    discover,
    entry,
    rate_limit_suggestion,
    read_answer,
)
from gateprobe.core.checks import Exchange
from gateprobe.core.console import Console
from gateprobe.core.errors import UsageError
from gateprobe.core.targets import DEFAULT_MODELS, ENDPOINTS, Target, check_endpoints, load_targets
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
    found = discover(Target(gateway.base_url, "ohmygpt", "gp-vip-0001"))
    assert found.endpoints[:4] == ["models", "chat", "completions", "embeddings"]
    assert not set(found.endpoints) & {"messages", "count_tokens", "complete"}
    assert found.answers["messages"] == "404" and found.requests <= MAX_REQUESTS
    assert found.profile[0] == "openai"
    ohmygpt = discover(Target(make_gateway(timing=FAST).base_url, "openai", "gp-vip-0001"))
    assert ohmygpt.x_api_key is False  # Bearer only, as documented
    assert ohmygpt.profile[0] == "ohmygpt"


# What each reference profile serves (reference/app.py builds its routes by profile): the
# core routes, the media families everywhere, the Anthropic routes except under openai,
# Realtime except under anthropic, the gateway's own APIs under ohmygpt only.
MEDIA = ["images", "image_edits", "speech", "transcriptions", "moderations"]
STATEFUL = ["responses", "conversations", "chat_store"]  # OpenAI's, not under anthropic
SERVED = {
    "ohmygpt": ["models", "chat", "completions", "embeddings", "messages", "count_tokens",
                "complete", *MEDIA, *STATEFUL, "realtime", "midjourney", "serper",
                "google_search", "azure_chat"],
    "anthropic": ["models", "chat", "completions", "embeddings", "messages", "count_tokens",
                  "complete", *MEDIA, "chat_store"],  # GET lists, under every profile
    "openai": ["models", "chat", "completions", "embeddings", *MEDIA, *STATEFUL, "realtime"],
}


@pytest.mark.parametrize("profile", list(SERVED))
def test_discover_writes_every_family_and_the_profile_of_each_reference_profile(
        make_gateway: MakeGateway, tmp_path: Path, profile: str) -> None:
    """Against ``gateprobe serve --profile P``, without --profile: the entry names P and every
    family that profile serves, and nothing it does not; the --model values given are kept.
    """
    gateway = make_gateway(profile=profile, timing=FAST)
    targets = tmp_path / "targets.yaml"
    code, out, err = gateprobe("discover", "--base-url", gateway.base_url, "--api-key-env",
                               "GP_DISCOVER_KEY", "--model", "chat=gpt-4o-mini",
                               "--write", str(targets), "--name", "gw")
    assert code == 0, err
    entry = yaml.safe_load(targets.read_text())["targets"]["gw"]
    assert entry["profile"] == profile, out
    assert entry["endpoints"] == SERVED[profile], out
    assert entry["models"] == {"chat": "gpt-4o-mini"}
    assert "management API answers" in targets.read_text()  # served under every profile
    assert entry.get("auth") == {"ohmygpt": ["bearer"], "anthropic": ["bearer", "x-api-key"],
                                 "openai": None}[profile]


def test_every_family_gateprobe_knows_has_one_probe() -> None:
    """Adding a family to ``ENDPOINTS`` is adding one ``FAMILY_PROBES`` entry; each probe
    that could cost is a request invalid on purpose."""
    names = [p.name for p in FAMILY_PROBES]
    assert sorted(names) == sorted([*ENDPOINTS, "management"]) and len(set(names)) == len(names)
    models = dict(DEFAULT_MODELS)
    for probe in FAMILY_PROBES:
        body = probe.body(models) if probe.body else None
        if probe.served_request:
            assert probe.name in {"chat", "completions", "embeddings", "messages",
                                  "count_tokens", "complete"}
            assert body is not None and (body.get("max_tokens", 1) <= 1 and
                                         body.get("max_tokens_to_sample", 1) <= 1)
        elif body is not None:  # what would make it served is left out
            assert not {"prompt", "input", "file", "image", "q"} & set(body), probe.name


@pytest.mark.parametrize("profile", ["ohmygpt", "anthropic"])
def test_an_unknown_model_is_not_a_refused_auth_style(make_gateway: MakeGateway,
                                                      profile: str) -> None:
    """A model the target does not know is answered 400/404 naming it, with either key
    style: that is the route served and the model unknown, never x-api-key refused."""
    gateway = make_gateway(profile=profile, timing=FAST)
    models = {**DEFAULT_MODELS, "messages": "gateprobe-no-such-model"}
    found = discover(Target(gateway.base_url, "ohmygpt", "gp-vip-0001", models=models))
    assert found.unknown_models["messages"] == "gateprobe-no-such-model"
    assert "messages" in found.served
    assert found.x_api_key is (profile == "anthropic")
    assert found.profile[0] == profile


def test_discover_with_a_refused_key_is_one_line(make_gateway: MakeGateway,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    gateway = make_gateway(timing=FAST)
    monkeypatch.setenv("GP_DISCOVER_KEY", "gp-not-a-key-0000")
    code, _, err = gateprobe("discover", "--base-url", gateway.base_url, "--api-key-env",
                             "GP_DISCOVER_KEY")
    assert code == 2 and err.count("\n") == 1
    assert "refused the key" in err and "GP_DISCOVER_KEY" in err


def test_discover_suggests_limits_from_the_rate_limit_headers(make_gateway: MakeGateway,
                                                              tmp_path: Path) -> None:
    """claude-2-web is limited to 60 a window for the vip key: the entry carries the headers
    seen and a commented limits section that, uncommented, is a valid targets entry."""
    gateway = make_gateway(timing=FAST)
    targets = tmp_path / "targets.yaml"
    code, out, err = gateprobe("discover", "--base-url", gateway.base_url, "--api-key-env",
                               "GP_DISCOVER_KEY", "--model", "chat=claude-2-web",
                               "--write", str(targets), "--name", "gw")
    assert code == 0, err
    text = targets.read_text()
    assert "# rate-limit headers seen: " in text and "x-ratelimit-limit-requests: 60" in text
    assert "limits" not in yaml.safe_load(text)["targets"]["gw"]  # a suggestion only
    lines = text.splitlines()
    at = lines.index("    # limits:")
    uncommented = [line.replace("# ", "", 1) for line in lines[at:at + 5]]
    assert uncommented == ["    limits:", "      headers: family", "      window_s: 60",
                           "      rpm: {default: 60}", "    api_key_tier: default"]
    (tmp_path / "uncommented.yaml").write_text("\n".join(lines[:at] + uncommented) + "\n")
    assert load_targets(tmp_path / "uncommented.yaml")["gw"].rpm == {"default": 60}
    assert "x-ratelimit-limit-requests: 60" in out


def test_rate_limit_suggestion_reads_ietf_headers() -> None:
    lines = rate_limit_suggestion({"ratelimit-limit": "100", "ratelimit-policy": "100;w=10"})
    assert "  headers: ietf" in lines and "  window_s: 10" in lines
    assert "  rpm: {default: 100}" in lines
    assert rate_limit_suggestion({}) == []
    assert rate_limit_suggestion({"x-ratelimit-limit-requests": "many"}) == [
        "rate-limit headers seen: x-ratelimit-limit-requests: many"]


def test_discover_detects_the_gateway_error_envelope(make_gateway: MakeGateway) -> None:
    gateway = make_gateway(profile="openai", timing=FAST, error_envelope="gateway")
    found = discover(Target(gateway.base_url, "ohmygpt", "gp-vip-0001"))
    target = Target(gateway.base_url, "openai", "gp-vip-0001")
    assert found.envelopes == {"gateway"}
    assert entry(target, found)["error_envelopes"] == ["gateway"]


@pytest.mark.slow
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
    assert entry["endpoints"] == SERVED["openai"]
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
        "/v1/responses/", "/v1/conversations/", "/v1/chat/completions/"))} <= {
        ENDPOINTS[n] for n in SERVED["openai"]}


@pytest.mark.slow
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


@pytest.mark.slow
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


@pytest.mark.slow
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


def test_a_profile_given_is_kept_and_a_contradiction_said(make_gateway: MakeGateway) -> None:
    gateway = make_gateway(profile="openai", timing=FAST)
    code, out, err = gateprobe("discover", "--base-url", gateway.base_url, "--profile",
                               "ohmygpt", "--api-key-env", "GP_DISCOVER_KEY")
    assert code == 0, err
    assert "profile: openai (no Anthropic route" in out
    assert "kept --profile ohmygpt as given" in out
    assert yaml.safe_load(out[out.index("targets:"):out.index("    #")])[
        "targets"]["127-0-0-1"]["profile"] == "ohmygpt"


def test_a_model_the_key_may_not_use_is_a_model_refused_not_a_key(
        make_gateway: MakeGateway) -> None:
    """The seeds' gateway answers 401 naming the model for a key without its permission: the
    route is served and the model is the problem, not the key."""
    gateway = make_gateway(timing=FAST)
    found = discover(Target(gateway.base_url, "ohmygpt", "gp-nomodel-0001",
                            models={**DEFAULT_MODELS, "chat": "claude-2-web"}))
    assert found.answers["chat"] == "401"
    assert found.unknown_models == {"chat": "claude-2-web"} and "chat" in found.served
    assert "chat" not in found.refused


@pytest.mark.parametrize(("status", "body", "served", "refused"), [
    (101, b"", True, False),
    (403, b"", False, False),  # uvicorn's refusal of a path without a WebSocket route
    (403, b'{"error": {"message": "bad key"}}', False, True),
    (404, b'{"error": {"message": "Unknown request URL"}}', False, False),
])
def test_how_a_realtime_handshake_is_read(status: int, body: bytes, served: bool,
                                          refused: bool) -> None:
    probe = next(p for p in FAMILY_PROBES if p.websocket)
    found = Discovery()
    read_answer(found, probe, "gpt-4o-realtime-preview", Exchange("/v1/realtime", "GET", None,
                                                            status, body=body))
    assert ("realtime" in found.served, "realtime" in found.refused) == (served, refused)
