"""Dataset files of a latency run's workload (``--dataset``): prompts, message lists and ShareGPT
conversations, each record read as a ``Conversation`` (``gateprobe.commands.load.workloads`` plays
them).

A bad file is refused before anything is sent, with one line that names the record's line and
what is wrong with it: a dataset is usually someone else's file, and a traceback from the
Locust process in the middle of a run would name neither.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gateprobe.core.errors import ConfigError
from gateprobe.core.tokenizer import count_tokens

MAX_DATASET_BYTES = 1 << 30
"""A dataset file is read whole by every load process: at most this big."""
MAX_OUTPUT_TOKENS = 100_000
"""The largest expected output length a record may give (as ``--output-tokens``' ceiling)."""


@dataclass(frozen=True, slots=True)
class Conversation:
    """One record of a dataset: an optional system prompt, a fixed context, and the user's
    turns (each with the answer length the dataset expects, if it says)."""

    system: str = ""
    context: tuple[tuple[str, str], ...] = ()
    """(role, text) messages before the first turn, as the record gave them."""
    turns: tuple[tuple[str, int | None], ...] = ()
    """(the user's text, the expected output tokens or None), in order."""


HUMAN_ROLES = frozenset({"human", "user"})
MODEL_ROLES = frozenset({"gpt", "assistant", "chatgpt", "bing", "bard", "model"})
SYSTEM_ROLES = frozenset({"system", "developer"})


def _text(value: Any, what: str) -> str:
    """A message's text: a string, or the text parts of a list of parts."""
    if isinstance(value, str):
        return value
    if isinstance(value, list) and all(isinstance(p, dict) for p in value):
        return "".join(str(p.get("text", "")) for p in value if isinstance(p.get("text"), str))
    raise ValueError(f"{what} is not text")


def _expected(record: Mapping[str, Any]) -> int | None:
    value = record.get("output_tokens")
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not \
            1 <= value <= MAX_OUTPUT_TOKENS:
        raise ValueError(f"output_tokens must be a whole number within 1..{MAX_OUTPUT_TOKENS}")
    return value


def conversation_of(record: Any) -> Conversation:
    """One dataset record as a ``Conversation`` (``ValueError`` saying what is wrong)."""
    if not isinstance(record, dict):
        raise ValueError("expected a JSON object with prompt, messages or conversations")
    known = {"prompt", "messages", "conversations"} & set(record)
    if len(known) != 1:
        raise ValueError("expected exactly one of prompt, messages, conversations")
    if "prompt" in record:
        prompt = _text(record["prompt"], "prompt")
        if not prompt.strip():
            raise ValueError("prompt is empty")
        return Conversation(turns=((prompt, _expected(record)),))
    if "messages" in record:
        return _messages(record["messages"], _expected(record))
    return _sharegpt(record["conversations"])


def _messages(messages: Any, expected: int | None) -> Conversation:
    """A ``messages`` record: one request, its last message the user's."""
    if not isinstance(messages, list) or not messages:
        raise ValueError("messages must be a non-empty list")
    system: list[str] = []
    context: list[tuple[str, str]] = []
    for i, message in enumerate(messages):
        if not isinstance(message, dict) or not isinstance(message.get("role"), str):
            raise ValueError(f"messages[{i}] needs a role")
        role, text = message["role"], _text(message.get("content"), f"messages[{i}].content")
        if role in SYSTEM_ROLES:
            system.append(text)
        elif role in ("user", "assistant"):
            want = "user" if not context or context[-1][0] == "assistant" else "assistant"
            if role != want:
                before = context[-1][0] if context else "nothing"
                raise ValueError(f"messages[{i}]: {role} after {before} (user and assistant "
                                 "alternate, user first)")
            context.append((role, text))
        else:
            raise ValueError(f"messages[{i}]: unknown role {role!r}")
    if not context or context[-1][0] != "user":
        raise ValueError("the last message must be the user's")
    return Conversation("\n".join(system), tuple(context[:-1]), ((context[-1][1], expected),))


def _sharegpt(turns: Any) -> Conversation:
    """A ShareGPT conversation: the human turns are the user's, each gpt answer the length
    expected of the one before it (what is sent back is the gateway's own answer)."""
    if not isinstance(turns, list) or not turns:
        raise ValueError("conversations must be a non-empty list")
    system: list[str] = []
    users: list[tuple[str, int | None]] = []
    for i, turn in enumerate(turns):
        if not isinstance(turn, dict) or not isinstance(turn.get("from"), str):
            raise ValueError(f"conversations[{i}] needs from and value")
        who, text = turn["from"].lower(), _text(turn.get("value"), f"conversations[{i}].value")
        if who in SYSTEM_ROLES:
            system.append(text)
        elif who in HUMAN_ROLES:
            users.append((text, None))
        elif who in MODEL_ROLES:
            if users and users[-1][1] is None:
                users[-1] = (users[-1][0], max(1, count_tokens(text)))
        else:
            raise ValueError(f"conversations[{i}]: unknown speaker {turn['from']!r}")
    if not users:
        raise ValueError("no human turn in conversations")
    return Conversation("\n".join(system), (), tuple(users))


def load_dataset(path: Path) -> list[Conversation]:
    """A dataset file: JSON lines (one record each), or one JSON array of records (how
    ShareGPT files ship). A bad file is a ``ConfigError`` naming its line and what is wrong."""
    try:
        if path.stat().st_size > MAX_DATASET_BYTES:
            raise ConfigError(f"--dataset {path}: larger than {MAX_DATASET_BYTES >> 20} MB")
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"--dataset {path}: cannot read it ({type(exc).__name__})") from None
    records = list(_records(path, text))
    if not records:
        raise ConfigError(f"--dataset {path}: no records")
    out: list[Conversation] = []
    for where, record in records:
        try:
            out.append(conversation_of(record))
        except ValueError as exc:
            raise ConfigError(f"--dataset {path}: {where}: {exc}") from None
    return out


def _records(path: Path, text: str) -> Iterator[tuple[str, Any]]:
    """(where, record) of each record of the file's text."""
    if text.lstrip().startswith("["):
        try:
            array = json.loads(text)
        except ValueError as exc:
            raise ConfigError(f"--dataset {path}: not JSON ({exc})") from None
        for i, record in enumerate(array):
            yield f"record {i + 1}", record
        return
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            yield f"line {number}", json.loads(line)
        except ValueError as exc:
            raise ConfigError(f"--dataset {path}: line {number}: not JSON ({exc.args[0]})") \
                from None
