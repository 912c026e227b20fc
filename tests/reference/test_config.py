"""Tests of the keys file: the shipped one, and one clear line per mistake."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateprobe.core.errors import ConfigError
from gateprobe.reference.config import default_keys_path, load_keys_file


def test_shipped_keys_file_has_the_documented_keys() -> None:
    loaded = load_keys_file(default_keys_path())
    keys, tiers = loaded.keys, loaded.tiers
    assert {k: keys[k].tier for k in ("gp-free-0001", "gp-vip-0001", "gp-premium-0001")} == {
        "gp-free-0001": "free", "gp-vip-0001": "vip", "gp-premium-0001": "premium"}
    assert {t: tiers[t].limits["claude-2-web"] for t in tiers} == {
        "free": 12, "vip": 60, "premium": 90}
    assert keys["gp-vip-0001"].may_use("claude-2-web")
    nomodel = keys["gp-nomodel-0001"]
    assert nomodel.tier == "vip"
    assert not nomodel.may_use("claude-2-web") and nomodel.may_use("claude-2")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("keys: [", "not valid YAML"),
        ("- a\n- b\n", "expected a mapping"),
        ("tiers: {}\nkeys: {}\n", "'keys' is empty"),
        ("tiers: {free: {limits: {}}}\nkeys: {k: {tier: fre}}\n",
         "unknown tier 'fre' (did you mean 'free'?)"),
        ("tiers: {free: {limits: {}}}\nkeys: {k: {tier: free, model: '*'}}\n",
         "keys.k.model: unknown field (did you mean 'models'?)"),
        ("tiers: {free: {limits: {m: -1}}}\nkeys: {k: {tier: free}}\n",
         "tiers.free.limits.m: expected an integer >= 0"),
        ("tiers: {free: {limits: {}}}\nkeys: {k: {tier: free, models: 3}}\n",
         "keys.k.models: expected '*' or a list"),
        ("tier: {}\nkeys: {}\n", "tier: unknown field (did you mean 'tiers'?)"),
        ("models: {m: {apis: [chatt]}}\nkeys: {}\n", "models.m.apis: expected a non-empty"),
        ("models: {m: {apis: [chat], max_input_tokens: -5}}\nkeys: {}\n",
         "models.m.max_input_tokens: expected an integer >= 0"),
        ("models: {m: {apis: [chat], servd_as: x}}\nkeys: {}\n",
         "models.m.servd_as: unknown field (did you mean 'served_as'?)"),
    ],
)
def test_mistakes_give_one_line_naming_the_place(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "keys.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as info:
        load_keys_file(path)
    assert message in str(info.value)
    assert "\n" not in str(info.value)
    assert str(path) in str(info.value)


def test_missing_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read keys file"):
        load_keys_file(tmp_path / "nope.yaml")


def test_extra_models_extend_the_defaults(tmp_path: Path) -> None:
    path = tmp_path / "keys.yaml"
    path.write_text(
        "models:\n"
        "  my-chat: {apis: [chat, messages], served_as: my-chat-v2, max_input_tokens: 10}\n"
        "  my-embed: {apis: [embeddings], embedding_dims: 8}\n"
        "tiers: {t: {limits: {}}}\n"
        "keys: {k: {tier: t, exclude_models: [my-embed]}}\n")
    loaded = load_keys_file(path)
    assert {"gpt-3.5-turbo", "my-chat", "my-embed"} <= set(loaded.models)
    chat = loaded.models["my-chat"]
    assert chat.apis == {"chat", "messages"} and chat.served_as == "my-chat-v2"
    assert chat.max_input_tokens == 10
    assert loaded.models["my-embed"].embedding_dims == 8
    assert loaded.keys["k"].may_use("my-chat") and not loaded.keys["k"].may_use("my-embed")
