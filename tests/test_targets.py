"""The targets file: the shipped example, and one clear line per mistake."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from gateprobe.cli import main
from gateprobe.core.console import Console
from gateprobe.core.errors import ConfigError
from gateprobe.core.targets import load_targets, target_entry

ROOT = Path(__file__).resolve().parents[1]


def test_example_describes_the_gateway_and_its_five_mirrors() -> None:
    entries = load_targets(ROOT / "targets.example.yaml")
    gateway = entries["ohmygpt"]
    assert gateway.profile == "ohmygpt" and not gateway.allow_load
    assert sorted(gateway.mirrors.values()) == sorted([
        "https://api.ohmygpt.com", "https://apic.ohmygpt.com",
        "https://c-z0-api-01.hash070.com", "https://www.aigptx.top",
        "https://cn2us02.opapi.win"])
    assert gateway.rpm == {"free": 12, "vip": 60, "premium": 90}
    assert entries["local"].allow_load


def test_resolve_reads_keys_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    entry = load_targets(ROOT / "targets.example.yaml")["local"]
    monkeypatch.setenv("GATEPROBE_API_KEY", "gp-vip-0001")
    monkeypatch.setenv("GATEPROBE_NOMODEL_KEY", "gp-nomodel-0001")
    target = entry.resolve({"chat": "gpt-4o-mini"})
    assert target.api_key == "gp-vip-0001" and target.no_permission_key == "gp-nomodel-0001"
    assert target.models["chat"] == "gpt-4o-mini" and target.models["complete"] == "claude-2"
    assert "gp-vip-0001" not in repr(target)
    monkeypatch.delenv("GATEPROBE_API_KEY")
    with pytest.raises(ConfigError, match="GATEPROBE_API_KEY is not set"):
        entry.resolve()


GOOD = ("targets:\n  t:\n    base_url: http://127.0.0.1:1\n    profile: ohmygpt\n"
        "    api_key_env: K\n")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("targets: [", "not valid YAML"),
        ("targets: {}\n", "targets: {} should be non-empty"),
        (GOOD + "    api_key: sk-live-abcdefghijklmnop\n",
         "targets.t.api_key: keys are never written in files"),
        (GOOD.replace("api_key_env: K", "api_key_env: sk-live-abc.def-123"),
         "targets.t.api_key_env: must name an environment variable"),
        (GOOD + "    allow_lod: true\n", "targets.t.allow_lod: unknown field (did you mean "
         "'allow_load'?)"),
        (GOOD.replace("ohmygpt", "azure"), "targets.t.profile: 'azure' is not one of"),
        (GOOD.replace("http://127.0.0.1:1", "ftp://x"), "targets.t.base_url: must be an http"),
        (GOOD + "    limits: {rpm: {free: -1}}\n", "targets.t.limits.rpm.free"),
        ("targets:\n  t: {profile: ohmygpt, api_key_env: K}\n", "'base_url' is a required"),
    ],
)
def test_mistakes_are_one_line_naming_the_place(tmp_path: Path, text: str,
                                                message: str) -> None:
    path = tmp_path / "targets.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as info:
        load_targets(path)
    assert message in str(info.value), str(info.value)
    assert "\n" not in str(info.value)
    assert "sk-live" not in str(info.value)


def test_unknown_target_name_suggests(tmp_path: Path) -> None:
    path = tmp_path / "targets.yaml"
    path.write_text(GOOD)
    with pytest.raises(ConfigError, match="no target 'tt' \\(did you mean 't'\\?\\)"):
        target_entry(path, "tt")
    with pytest.raises(ConfigError, match="cannot read targets file"):
        target_entry(tmp_path / "missing.yaml", "t")


def test_a_key_tier_needs_its_limit(tmp_path: Path) -> None:
    path = tmp_path / "targets.yaml"
    path.write_text(GOOD + "    api_key_tier: vip\n    limits: {rpm: {free: 12}}\n")
    with pytest.raises(ConfigError, match="api_key_tier: tier 'vip' has no limit"):
        load_targets(path)
    path.write_text(GOOD + "    api_key_tier: vip\n    limits: {rpm: {vip: 60}}\n")
    assert load_targets(path)["t"].api_key_tier == "vip"


def test_envelopes_and_budget_headers_are_capabilities_of_the_entry(tmp_path: Path) -> None:
    path = tmp_path / "targets.yaml"
    path.write_text("targets:\n  t:\n    base_url: http://127.0.0.1:1\n    profile: openai\n"
                    "    api_key_env: K\n    error_envelopes: [family, gateway]\n"
                    "    limits: {rpm: {free: 12}, headers: ietf}\n  u:\n"
                    "    base_url: http://127.0.0.1:1\n    profile: ohmygpt\n"
                    "    api_key_env: K\n")
    entries = load_targets(path)
    t = entries["t"].resolve(read_keys=False)
    assert t.envelopes == {"family", "gateway"} and t.rate_headers == "ietf"
    u = entries["u"].resolve(read_keys=False)  # undeclared: as the profile implies
    assert u.envelopes == {"family", "gateway"} and u.rate_headers == "family"
    path.write_text("targets:\n  t:\n    base_url: http://127.0.0.1:1\n    profile: openai\n"
                    "    api_key_env: K\n    error_envelopes: [gatway]\n")
    with pytest.raises(ConfigError, match="error_envelopes"):
        load_targets(path)


def test_every_mistake_of_a_targets_file_is_reported_at_once(tmp_path: Path) -> None:
    """Three mistakes in two targets: three lines, each naming the file and the place, and
    the command exits 2 with each line prefixed (not a traceback, not the first alone)."""
    path = tmp_path / "targets.yaml"
    path.write_text(GOOD.replace("ohmygpt", "azure") + "    allow_lod: true\n"
                    "  u:\n    base_url: ftp://x\n    profile: openai\n    api_key_env: K\n"
                    "    api_key: sk-live-abcdefghijklmnop\n")
    with pytest.raises(ConfigError) as info:
        load_targets(path)
    lines = str(info.value).splitlines()
    assert [line.split(": ")[1] for line in lines] == [
        "targets.u.api_key", "targets.t.allow_lod", "targets.t.profile", "targets.u.base_url"]
    assert all(line.startswith(f"{path}: ") for line in lines)
    assert "sk-live" not in str(info.value)
    out, err = io.StringIO(), io.StringIO()
    assert main(["run", "--dry-run", "--target", "t", "--targets", str(path)],
                Console(out, err)) == 2
    assert err.getvalue().count("\n") == 4
    assert all(line.startswith("gateprobe: ") for line in err.getvalue().splitlines())
    assert "Traceback" not in err.getvalue()


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ("    upstream: {listen: 10.0.0.1:9100}\n",
         "targets.t.upstream.listen: must be 127.0.0.1:PORT"),
        ("    upstream: {listen: 127.0.0.1:9100, protocol: grpc}\n",
         "targets.t.upstream.protocol: 'grpc' is not one of"),
        ("    upstream: {listen: 127.0.0.1:9100, protocl: openai}\n",
         "targets.t.upstream.protocl: unknown field (did you mean 'protocol'?)"),
        ("    headers: {x-api-key: sk-live-abcdefghijkl}\n",
         "targets.t.headers.x-api-key: a credential is never written in files"),
        ("    headers: {x-route: {env: sk-live-abc.def}}\n",
         "targets.t.headers.x-route: a header is a name"),
        ("    propagation: {documented: [propagation.trunc]}\n",
         "targets.t.propagation.documented.0: 'propagation.trunc' is not one of"),
        ("    propagation: {timeout: 3}\n",
         "targets.t.propagation.timeout: unknown field (did you mean 'timeout_s'?)"),
    ],
)
def test_upstream_headers_and_propagation_mistakes(tmp_path: Path, extra: str,
                                                   message: str) -> None:
    path = tmp_path / "targets.yaml"
    path.write_text(GOOD + extra)
    with pytest.raises(ConfigError) as info:
        load_targets(path)
    assert message in str(info.value), str(info.value)
    assert "\n" not in str(info.value) and "sk-live" not in str(info.value)


def test_upstream_headers_and_propagation_resolve(tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "targets.yaml"
    path.write_text(GOOD + "    upstream: {listen: 127.0.0.1:9100, protocol: anthropic}\n"
                    "    headers: {x-portkey-provider: anthropic, x-gw-token: {env: TOK}}\n"
                    "    propagation: {documented: [forwards_client_key, propagation.usage],"
                    " forwarded_params: [model, messages, stream], timeout_s: 2}\n")
    monkeypatch.setenv("K", "gp-key-0001")
    monkeypatch.setenv("TOK", "tok-secret-0001")
    target = load_targets(path)["t"].resolve()
    assert target.upstream is not None and target.upstream.base_url == "http://127.0.0.1:9100"
    assert target.upstream.protocol == "anthropic"
    assert target.headers == {"x-portkey-provider": "anthropic", "x-gw-token": "tok-secret-0001"}
    assert "tok-secret-0001" in target.secrets and "tok-secret-0001" not in repr(target)
    assert target.propagation.documented == {"forwards_client_key", "propagation.usage"}
    assert target.propagation.forwarded_params == ("model", "messages", "stream")
    assert target.propagation.timeout_s == 2
