"""Tests of the legacy prompt rules and the claude-2-web chat serialization."""

from __future__ import annotations

import pytest

from gateprobe.reference.prompt import (
    ALTERNATE_ERROR,
    END_ERROR,
    START_ERROR,
    normalize_prompt,
    prompt_error,
    serialize_chat,
)

CASES = [
    ("basic", "\n\nHuman: Hello\n\nAssistant:", None),
    ("system prompt before first turn", "Be brief.\n\nHuman: Hi\n\nAssistant:", None),
    ("multi turn", "\n\nHuman: a\n\nAssistant: b\n\nHuman: c\n\nAssistant:", None),
    ("prefill after last assistant", "\n\nHuman: a\n\nAssistant: {\"x\":", None),
    ("missing leading newlines repaired", "Human: Hi\n\nAssistant:", None),
    ("trailing space repaired", "\n\nHuman: Hi\n\nAssistant: ", None),
    ("no turns at all", "Hello there", START_ERROR),
    ("starts with assistant", "\n\nAssistant: Hi\n\nHuman: x\n\nAssistant:", START_ERROR),
    ("no assistant turn", "\n\nHuman: Hello", END_ERROR),
    ("ends with human", "\n\nHuman: a\n\nAssistant: b\n\nHuman: c", END_ERROR),
    ("single newline assistant", "\n\nHuman: Hello\nAssistant:", END_ERROR),
    ("single newline human", "\nHuman: Hello\n\nAssistant:", START_ERROR),
    ("two human turns", "\n\nHuman: a\n\nHuman: b\n\nAssistant:", ALTERNATE_ERROR),
    ("two assistant turns", "\n\nHuman: a\n\nAssistant: b\n\nAssistant:", ALTERNATE_ERROR),
    ("lowercase markers", "\n\nhuman: a\n\nassistant:", START_ERROR),
    ("marker without colon", "\n\nHuman a\n\nAssistant:", START_ERROR),
]


@pytest.mark.parametrize(("prompt", "error"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_prompt_rules(prompt: str, error: str | None) -> None:
    assert prompt_error(normalize_prompt(prompt)) == error


def test_repairs_are_exactly_the_two_documented_ones() -> None:
    assert normalize_prompt("Human: x\n\nAssistant: ") == "\n\nHuman: x\n\nAssistant:"
    assert normalize_prompt("\n\nHuman: x\n\nAssistant:  ") == "\n\nHuman: x\n\nAssistant:  "


def test_several_messages_serialize_into_one_legacy_prompt() -> None:
    prompt = serialize_chat([
        {"role": "system", "content": "You are Claude2."},
        {"role": "user", "content": "Who are you?"},
        {"role": "assistant", "content": "Claude."},
        {"role": "user", "content": [{"type": "text", "text": "Sure?"}]},
    ])
    assert prompt == ("You are Claude2.\n\nHuman: Who are you?\n\nAssistant: Claude."
                      "\n\nHuman: Sure?\n\nAssistant:")
    assert prompt_error(prompt) is None


def test_single_message_is_one_turn() -> None:
    assert serialize_chat([{"role": "user", "content": "Hi"}]) == "\n\nHuman: Hi\n\nAssistant:"
