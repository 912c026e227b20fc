"""The legacy ``\\n\\nHuman:`` / ``\\n\\nAssistant:`` prompt format (PROTOCOL.md, Text Completions).

Anthropic validated legacy prompts before generating anything; a gateway that passes them through
must answer the same. The rules, in the order Anthropic applied them:

1. Repairs, silently: a prompt that starts with ``Human:`` gets the missing ``\\n\\n``; a trailing
   space after the final ``\\n\\nAssistant:`` is dropped.
2. The first turn marker must be ``\\n\\nHuman:`` (text before it is a system prompt).
3. Turns alternate: two ``\\n\\nHuman:`` or two ``\\n\\nAssistant:`` in a row are refused.
4. The last turn marker must be ``\\n\\nAssistant:``; text after it is prefill, continued by the
   model.

A single-newline marker (``\\nAssistant:``) is not a turn marker, so such prompts fail rule 2 or 4.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

HUMAN = "\n\nHuman:"
ASSISTANT = "\n\nAssistant:"

START_ERROR = 'prompt must start with "\\n\\nHuman:" turn after an optional system prompt'
END_ERROR = 'prompt must end with "\\n\\nAssistant:" turn'
ALTERNATE_ERROR = 'prompt must alternate between "\\n\\nHuman:" and "\\n\\nAssistant:" turns'

_MARKER = re.compile(r"\n\n(Human|Assistant):")


def normalize_prompt(prompt: str) -> str:
    """Apply Anthropic's two silent repairs."""
    if prompt.startswith("Human:"):
        prompt = "\n\n" + prompt
    if prompt.endswith(ASSISTANT + " "):
        prompt = prompt[:-1]
    return prompt


def prompt_error(prompt: str) -> str | None:
    """The 400 message for an invalid (already normalized) prompt, or None if it is valid."""
    roles = [m.group(1) for m in _MARKER.finditer(prompt)]
    if not roles or roles[0] != "Human":
        return START_ERROR
    if any(a == b for a, b in zip(roles, roles[1:], strict=False)):
        return ALTERNATE_ERROR
    if roles[-1] != "Assistant":
        return END_ERROR
    return None


def serialize_chat(messages: Sequence[Mapping[str, Any]]) -> str:
    """Serialize OpenAI chat messages into one legacy prompt, as the gateway does for claude-2-web.

    The gateway documents only that several messages become one string "to meet the requirements
    of the Claude interface". We use the legacy format itself: system messages form the system
    prompt, user turns become ``Human``, assistant turns ``Assistant``, and the prompt ends with an
    open ``Assistant`` turn. A single message is sent as it is, wrapped in one turn, as the gateway
    promises not to serialize it.
    """
    if len(messages) == 1:
        return f"{HUMAN} {content_text(messages[0].get('content'))}{ASSISTANT}"
    system: list[str] = []
    turns: list[str] = []
    for message in messages:
        text = content_text(message.get("content"))
        role = message.get("role")
        if role in {"system", "developer"}:
            system.append(text)
        elif role == "assistant":
            turns.append(f"{ASSISTANT} {text}")
        else:
            turns.append(f"{HUMAN} {text}")
    return "\n".join(system) + "".join(turns) + ASSISTANT


def content_text(content: Any) -> str:
    """The text of a message content: a string, or the text parts of a list of parts."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(
            part.get("text", "")
            for part in content
            if isinstance(part, dict) and isinstance(part.get("text"), str)
        )
    return ""
