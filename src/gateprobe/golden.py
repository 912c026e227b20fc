"""Golden cases: a request, and the normalized answer a good gateway gives to it.

Normalization swaps what legitimately differs between good gateways, or between two runs of
one, for typed placeholders, so a golden recorded from one gateway holds for another:

| rule | what | becomes |
| --- | --- | --- |
| ``ids`` | ``id``, ``request_id``, ``log_id``, ``item_id``, | ``<id:PREFIX>`` (``msg_``...) |
| | ``call_id`` strings; a Responses ``sequence_number`` | ``<int>`` |
| ``timestamps`` | ``created`` (``created_at``, ``completed_at``) | ``<timestamp>``, |
| | numbers, ``created_at`` strings | ``<datetime>`` |
| ``text`` | generated ``content``, ``text``, ``completion``, a | ``<text>`` (``""`` stays) |
| | string ``delta``... | |
| ``usage`` | integers under ``usage`` and ``input_tokens`` | ``<int>`` |
| ``vectors`` | ``embedding`` arrays / base64 strings | ``<vector[N]>`` / ``<base64>`` |
| ``model`` | ``model`` strings | ``<model>`` |
| ``arguments`` | tool-call ``arguments`` JSON text, a ``tool_use`` ``input`` | ``<json:object>`` |
| | (``<text>`` when not a JSON object: a stream's fragments; ``""``, ``{}`` stay) | |
| ``numbers`` | moderation ``category_scores``; a transcription's timings and | ``<number>`` |
| | confidences (``duration``, ``start``, ``avg_logprob``...); its ``tokens`` | ``<tokens>`` |
| ``media`` | ``b64_json``; absolute ``url`` strings; ``revised_prompt`` | ``<base64>``, |
| | | ``<url>``, ``<text>`` |
| ``flags`` | moderation ``categories`` booleans (``flagged`` stays: order shows) | ``<bool>`` |
| ``optional`` | ``service_tier``, ``system_fingerprint``, ``log_id``, ``request_id``; | dropped |
| | ``refusal``, ``logprobs``, ``usage`` when null; ``logprobs`` when ``[]``; a | |
| | Responses object's echoed settings (``temperature``, ``tools``, ``text``...) | |

A value of another type than the rule expects is left as it is, so the difference shows.
Comparison treats a golden as a pattern: every key it has must be in the answer with a matching
value, lists match element by element, and keys the golden lacks are allowed (gateways add
fields, as this one adds ``log_id``). A stream becomes its list of events, ``{event, data}``,
with each run of identical normalized events collapsed into one marked ``repeated: true``
(gateways chunk text differently).
"""

from __future__ import annotations

import difflib
import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from gateprobe.errors import ConfigError
from gateprobe.sse import Event
from gateprobe.yamlfile import read_yaml

_PACKAGED = Path(__file__).resolve().parent / "_fixtures" / "golden"
_SOURCE = Path(__file__).resolve().parents[2] / "fixtures" / "golden"


def golden_dir() -> Path:
    """The shipped goldens: packaged inside a wheel, ``fixtures/golden`` in a checkout."""
    return _PACKAGED if _PACKAGED.exists() else _SOURCE


RULES = ("ids", "timestamps", "text", "usage", "vectors", "model", "optional", "arguments",
         "numbers", "media", "flags")
_ALWAYS_OPTIONAL = {"service_tier", "system_fingerprint", "log_id", "request_id"}
_OPTIONAL_WHEN_NULL = {"refusal", "logprobs", "usage"}
_RESPONSE_ECHOES = frozenset({"background", "parallel_tool_calls", "reasoning", "store",
                              "temperature", "text", "tool_choice", "tools", "top_p",
                              "truncation", "user", "metadata", "conversation", "service_tier",
                              "prompt_cache_key", "safety_identifier", "top_logprobs",
                              "max_tool_calls", "billing", "prompt_cache_retention",
                              "max_output_tokens", "previous_response_id"})
"""A Responses object's echoed settings, optional in OpenAI's schema: their defaults vary by
model and account (OpenAI rewrites tools in strict mode), so a golden does not pin them."""
_ID_PREFIX = re.compile(r"^([A-Za-z]+[-_])")
_TEXT_KEYS = {"content", "text", "completion", "partial_json", "thinking"}
_NUMBER_KEYS = {"duration", "start", "end", "seek", "temperature", "avg_logprob",
                "compression_ratio", "no_speech_prob"}
"""A transcription's timings and confidences: what the model heard, not the shape."""


def normalize(value: Any, rules: Iterable[str] = RULES, *, _key: str = "",
              _in_usage: bool = False) -> Any:
    """``value`` with volatile parts replaced by typed placeholders (see the module table)."""
    on = set(rules)
    if isinstance(value, Mapping):
        if "arguments" in on and _key == "input" and value:
            return "<json:object>"  # a tool_use block's input: the model's arguments
        if _key in ("category_scores", "categories"):
            return {k: _judged(v, _key, on) for k, v in value.items()}
        echoes = _RESPONSE_ECHOES if value.get("object") == "response" else frozenset()
        return {k: normalize(v, on, _key=k, _in_usage=_in_usage or k == "usage")
                for k, v in value.items()
                if "optional" not in on or not (
                    k in _ALWAYS_OPTIONAL or (k in _OPTIONAL_WHEN_NULL and v is None)
                    or k in echoes or (k == "logprobs" and v == []))}
    if isinstance(value, list):
        if "vectors" in on and _key == "embedding" and all(
                isinstance(x, int | float) for x in value):
            return f"<vector[{len(value)}]>"
        if "numbers" in on and _key == "tokens" and all(isinstance(x, int) for x in value):
            return "<tokens>"
        return [normalize(v, on, _key=_key, _in_usage=_in_usage) for v in value]
    if isinstance(value, bool) or value is None:
        return value
    if "numbers" in on and _key in _NUMBER_KEYS and isinstance(value, int | float):
        return "<number>"
    if "usage" in on and isinstance(value, int) and (_in_usage or _key == "input_tokens"):
        return "<int>"
    if "timestamps" in on and _key in ("created", "created_at", "completed_at") and \
            isinstance(value, int | float):
        return "<timestamp>"  # the Responses API's created_at is a number
    if "ids" in on and _key == "sequence_number" and isinstance(value, int):
        return "<int>"  # a Responses stream's ordinal: its grammar checks it, not the golden
    if not isinstance(value, str):
        return value
    if "ids" in on and _key in {"id", "request_id", "log_id", "item_id", "call_id"}:
        match = _ID_PREFIX.match(value)
        return f"<id:{match.group(1)}>" if match else "<id>"
    if "timestamps" in on and _key == "created_at":
        return "<datetime>"
    if "text" in on and (_key in _TEXT_KEYS or _key == "delta") and value:  # a string delta
        return "<text>"
    if "vectors" in on and _key == "embedding":
        return "<base64>"
    if "model" in on and _key == "model":
        return "<model>"
    return _media_or_arguments(value, _key, on)


def _judged(value: Any, key: str, on: set[str]) -> Any:
    """One moderation category's flag or score: a model's judgement, so a placeholder of its
    type (a value of another type is kept, so the difference shows)."""
    if key == "categories" and "flags" in on and isinstance(value, bool):
        return "<bool>"
    if key == "category_scores" and "numbers" in on and isinstance(value, int | float) \
            and not isinstance(value, bool):
        return "<number>"
    return value


def _media_or_arguments(value: str, key: str, on: set[str]) -> str:
    """An image's payload or address, or a tool call's arguments: generated, so placeholders;
    arguments that parse as a JSON object say so (``<json:object>``), other text does not."""
    if "media" in on and key == "b64_json":
        return "<base64>"
    if "media" in on and key == "url" and value.startswith(("http://", "https://")):
        return "<url>"
    if "media" in on and key == "revised_prompt" and value:
        return "<text>"
    if "arguments" in on and key == "arguments" and value:
        try:
            return "<json:object>" if isinstance(json.loads(value), dict) else "<text>"
        except ValueError:
            return "<text>"
    return value


def normalize_events(events: Sequence[Event], rules: Iterable[str] = RULES) -> list[Any]:
    """A stream as its normalized event list, runs of identical events collapsed."""
    out: list[dict[str, Any]] = []
    for event in events:
        try:
            data: Any = json.loads(event.data)
        except ValueError:
            data = event.data
        entry = {"event": event.type, "data": normalize(data, rules)}
        if out and {k: v for k, v in out[-1].items() if k != "repeated"} == entry:
            out[-1]["repeated"] = True
            continue
        out.append(entry)
    return out


@dataclass(frozen=True, slots=True)
class Golden:
    """One golden case as stored."""

    name: str
    endpoint: str
    family: str
    profiles: tuple[str, ...]
    """The profiles it holds for: an upstream shape holds for every gateway that copies it;
    a case of one gateway's own documentation only for that gateway's profile."""
    request: dict[str, Any]
    status: int
    response: Any
    """The normalized body, or the normalized event list of a stream."""
    headers: dict[str, str]
    file: Path
    method: str = "POST"
    encoding: str = "json"
    """How the request is sent: ``json``, ``form`` or ``multipart`` (a transcription's audio
    file is named by a ``$wav`` placeholder, filled in when it is sent)."""

    @property
    def stream(self) -> bool:
        """Whether the request asks for a stream."""
        return bool(self.request.get("stream"))


def load_dir(directory: Path) -> list[Golden]:
    """Every golden case in ``directory`` (one YAML file per endpoint, a list of cases)."""
    goldens = []
    for path in sorted(directory.glob("*.yaml")):
        doc = read_yaml(path, "golden file") or {}
        try:
            for raw in doc.get("cases", []):
                profiles = raw.get("profiles") or doc.get("profiles") or \
                    [doc.get("profile", "ohmygpt")]
                goldens.append(Golden(raw["name"], doc["endpoint"], doc["family"],
                                      tuple(profiles), raw["request"], raw["status"],
                                      raw["response"], raw.get("headers", {}), path,
                                      doc.get("method", "POST"),
                                      raw.get("encoding", doc.get("encoding", "json"))))
        except (KeyError, TypeError) as exc:
            raise ConfigError(f"{path}: a golden case lacks {exc} (needs endpoint, family, "
                              "and per case name, request, status, response)") from None
    return goldens


def fill_models(request: Mapping[str, Any], models: Mapping[str, str]) -> dict[str, Any]:
    """The request with ``$endpoint`` model placeholders replaced by the target's models."""
    model = request.get("model")
    if isinstance(model, str) and model.startswith("$"):
        return {**request, "model": models[model[1:]]}
    return dict(request)


def prune(actual: Any, pattern: Any) -> Any:
    """``actual`` restricted to the keys ``pattern`` has (extra keys are allowed)."""
    if isinstance(pattern, Mapping) and isinstance(actual, Mapping):
        return {k: prune(actual[k], pattern[k]) for k in pattern if k in actual}
    if isinstance(pattern, list) and isinstance(actual, list):
        return [prune(a, p) for a, p in zip(actual, pattern, strict=False)] + actual[len(pattern):]
    return actual


OPTIONAL_EVENTS = frozenset({"ping"})
"""Stream events a server may send anywhere, or not at all (Anthropic's keep-alive ``ping``):
a stream is compared without them."""


def _without_optional_events(value: Any) -> Any:
    if isinstance(value, list) and value and all(
            isinstance(e, Mapping) and "event" in e for e in value):
        return [e for e in value if e["event"] not in OPTIONAL_EVENTS]
    return value


def diff(expected: Any, actual: Any) -> str:
    """A readable unified diff of a golden and a normalized answer (YAML), empty when the
    answer matches the golden as a pattern (a stream's optional events wherever they are)."""
    expected, actual = _without_optional_events(expected), _without_optional_events(actual)
    actual = prune(actual, expected)
    if expected == actual:
        return ""
    a = yaml.safe_dump(expected, sort_keys=True, allow_unicode=True).splitlines()
    b = yaml.safe_dump(actual, sort_keys=True, allow_unicode=True).splitlines()
    return "\n".join(difflib.unified_diff(a, b, "golden", "received", lineterm="", n=2))


class _PlainDumper(yaml.SafeDumper):
    """A dumper that writes a value shared by two cases twice, not as an ``&id001`` anchor
    and ``*id001`` alias: a golden file is read and edited by people."""

    def ignore_aliases(self, data: Any) -> bool:
        return True


def rewrite(path: Path, updates: Mapping[str, tuple[int, Any]]) -> int:
    """Put newly recorded (status, normalized answer) pairs into a golden file, by case name,
    keeping its requests and order. Returns how many cases were updated."""
    doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    changed = 0
    for case in doc["cases"]:
        if case["name"] in updates:
            case["status"], case["response"] = updates[case["name"]]
            changed += 1
    # The header keeps its lists on one line (``profiles: [ohmygpt, openai]``), as written.
    head = "".join(yaml.safe_dump({k: v}, default_flow_style=None if isinstance(v, list)
                                  else False) for k, v in doc.items() if k != "cases")
    path.write_text("# Requests are hand-written; answers recorded by\n"
                    "# 'gateprobe conformance --select golden --record-golden'.\n" + head
                    + yaml.dump({"cases": doc["cases"]}, Dumper=_PlainDumper,
                                sort_keys=False, allow_unicode=True, width=100),
                    encoding="utf-8")
    return changed
