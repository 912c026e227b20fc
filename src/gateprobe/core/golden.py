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

A golden judges the protocol, not the gateway it was recorded from: it is a hand-generalized
pattern. Every key it has is a field the protocol requires (``key?``: judged only when
present); keys it lacks are allowed (gateways add fields, as this one adds ``log_id``); a
placeholder pins a type (``<string>``, ``<id>``, ``<vector>`` of any length, ``<int>``...), a
literal pins a value and the case's ``pins:`` says why; ``{<each>: P}`` is a non-empty list of
P (how many tool calls is the model's choice). A stream becomes its list of events, ``{event,
data}``, each run of identical normalized events collapsed into one marked ``repeated: true``;
the golden's entries are a grammar over it: each once, or as its ``times`` says (``?``, ``*``,
``+``), a ``group:`` repeated as a whole (a content block's start, deltas and stop). The
diff names the first place an answer departs (``mismatch``, ``stream_mismatch``).
Every shipped golden passes against a second, independent implementation of the protocols
(``tests/independent_gateway.py``).
"""

from __future__ import annotations

import difflib
import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from gateprobe.core.errors import ConfigError
from gateprobe.core.sse import Event
from gateprobe.core.yamlfile import read_yaml

_PACKAGED = Path(__file__).resolve().parents[1] / "_fixtures" / "golden"
_SOURCE = Path(__file__).resolve().parents[3] / "fixtures" / "golden"


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
    pins: Mapping[str, str] = field(default_factory=dict)
    """Path of a value the golden fixes (``pinned_paths``) -> why the protocol fixes it."""
    requires: tuple[str, ...] = ()
    """Preconditions (``gateprobe.engine.cases.PRECONDITIONS``) a target must meet to be sent it."""

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
                                      raw.get("encoding", doc.get("encoding", "json")),
                                      dict(raw.get("pins") or {}),
                                      tuple(raw.get("requires") or ())))
        except (KeyError, TypeError) as exc:
            raise ConfigError(f"{path}: a golden case lacks {exc} (needs endpoint, family, "
                              "and per case name, request, status, response)") from None
    return goldens


def pinned_paths(pattern: Any, at: str = "") -> set[str]:
    """The paths of the values a golden fixes (everything but a mapping, a list or a
    placeholder): ``choices[].finish_reason``; list elements and ``<each>`` are ``[]``, a
    key's ``?`` is dropped, a stream entry's ``times``/``repeated`` are not values."""
    if isinstance(pattern, Mapping):
        out: set[str] = set()
        for key, value in pattern.items():
            if key in ("times", "repeated") and at.endswith("[]"):
                continue
            if key == "group" and isinstance(value, list):  # its entries: stream entries
                out |= set().union(*(pinned_paths(v, at) for v in value))
                continue
            name = "[]" if key == EACH else "." + str(_bare(key))
            out |= pinned_paths(value, (at + name).lstrip(".") if name != "[]" else at + name)
        return out
    if isinstance(pattern, list):
        return set().union(*(pinned_paths(v, at + "[]") for v in pattern)) if pattern else {at}
    if isinstance(pattern, str) and pattern.startswith("<") and pattern.endswith(">"):
        return set()
    return {at}


def unpinned(golden: Golden) -> list[str]:
    """The values a golden fixes without saying why (a path no ``pins`` entry covers: the
    entry itself or a parent of it)."""
    def covered(path: str) -> bool:
        return any(path == pin or path.startswith(pin + ".") or path.startswith(pin + "[")
                   for pin in golden.pins)

    return sorted(p for p in pinned_paths(golden.response) if not covered(p))


def fill_models(request: Mapping[str, Any], models: Mapping[str, str]) -> dict[str, Any]:
    """The request with ``$endpoint`` model placeholders replaced by the target's models."""
    model = request.get("model")
    if isinstance(model, str) and model.startswith("$"):
        return {**request, "model": models[model[1:]]}
    return dict(request)


def prune(actual: Any, pattern: Any) -> Any:
    """``actual`` restricted to the keys ``pattern`` has (extra keys are allowed)."""
    if isinstance(pattern, Mapping) and isinstance(actual, Mapping):
        return {k: prune(actual[_bare(k)], pattern[k]) for k in pattern
                if _bare(k) in actual}
    if isinstance(pattern, list) and isinstance(actual, list):
        return [prune(a, p) for a, p in zip(actual, pattern, strict=False)] + actual[len(pattern):]
    return actual


OPTIONAL_EVENTS = frozenset({"ping"})
"""Stream events a server may send anywhere, or not at all (Anthropic's keep-alive ``ping``):
a stream is compared without them."""

EACH = "<each>"
"""A golden mapping ``{<each>: PATTERN}`` in place of a list: one or more elements, each
matching PATTERN (how many tool calls a model makes is its choice, not the protocol's)."""
TIMES = ("once", "?", "*", "+")
"""How often a golden stream entry occurs (its ``times:``; ``repeated: true`` is ``+``)."""
_NUMERIC_PLACEHOLDERS = frozenset({"<int>", "<number>", "<timestamp>", "<bool>", "<tokens>"})


def _bare(key: Any) -> Any:
    """A golden key without its ``?`` (an optional field: judged only when present)."""
    return key[:-1] if isinstance(key, str) and key.endswith("?") and len(key) > 1 else key


def _value_matches(pattern: Any, actual: Any) -> bool:
    """Whether one normalized value fits a golden's value: equal, or of the type a golden-only
    placeholder names (``<string>``, ``<id>``, ``<vector>``, ``<int>``, ``<number>``)."""
    if pattern == actual:
        return True
    if not isinstance(pattern, str) or not pattern.startswith("<"):
        return False
    if pattern == "<string>":
        return isinstance(actual, str) and actual not in _NUMERIC_PLACEHOLDERS
    if pattern == "<id>":
        return isinstance(actual, str) and bool(actual) and not actual.startswith("<") or \
            isinstance(actual, str) and actual.startswith("<id")
    if pattern == "<vector>":
        return isinstance(actual, str) and actual.startswith("<vector[")
    if pattern == "<int>":
        return isinstance(actual, int) and not isinstance(actual, bool)
    if pattern == "<number>":
        return isinstance(actual, int | float) and not isinstance(actual, bool)
    return False


Path_ = tuple[str | int, ...]


def mismatch(pattern: Any, actual: Any, at: Path_ = ()) -> tuple[Path_, str] | None:
    """Where ``actual`` first departs from the golden ``pattern``, and how (None: it fits).
    Keys the golden lacks are allowed; a key ending in ``?`` only when present; a list is
    matched element by element, ``{<each>: P}`` by every element."""
    if isinstance(pattern, Mapping) and set(pattern) == {EACH}:
        if not isinstance(actual, list) or not actual:
            return at, f"a non-empty list, got {_kind(actual)}"
        for index, item in enumerate(actual):
            found = mismatch(pattern[EACH], item, (*at, index))
            if found is not None:
                return found
        return None
    if isinstance(pattern, Mapping):
        if not isinstance(actual, Mapping):
            return at, f"an object, got {_kind(actual)}"
        for key, value in pattern.items():
            name = _bare(key)
            if name not in actual:
                if name == key:
                    return (*at, name), "a required field, missing"
                continue
            found = mismatch(value, actual[name], (*at, name))
            if found is not None:
                return found
        return None
    if isinstance(pattern, list):
        if not isinstance(actual, list):
            return at, f"a list, got {_kind(actual)}"
        if len(pattern) != len(actual):
            return at, f"{len(pattern)} elements, got {len(actual)}"
        for index, (want, got) in enumerate(zip(pattern, actual, strict=True)):
            found = mismatch(want, got, (*at, index))
            if found is not None:
                return found
        return None
    if _value_matches(pattern, actual):
        return None
    return at, f"{_show(pattern)}, got {_show(actual)}"


def _kind(value: Any) -> str:
    return "null" if value is None else f"{type(value).__name__} {_show(value)}"


def _show(value: Any) -> str:
    text = json.dumps(value, ensure_ascii=False, default=str)
    return text if len(text) <= 80 else text[:77] + "..."


def _is_event_list(value: Any) -> bool:
    return isinstance(value, list) and bool(value) and all(
        isinstance(e, Mapping) and ("event" in e or "group" in e) for e in value)


def _times(entry: Mapping[str, Any]) -> str:
    return "+" if entry.get("repeated") else str(entry.get("times", "once"))


def _entry_mismatch(want: Mapping[str, Any], got: Any) -> tuple[Path_, str] | None:
    """How one received stream event departs from one golden entry (None: it fits). A
    received run of identical events (``repeated``) fits only an entry that may repeat."""
    if not isinstance(got, Mapping) or "event" not in got:
        return (), f"an event, got {_kind(got)}"
    if got.get("repeated") and _times(want) in ("once", "?"):
        return ("repeated",), "one event here, got a run of identical ones"
    return mismatch({"event": want["event"], "data": want.get("data")},
                    {"event": got["event"], "data": got.get("data")})


MATCH_STEPS = 200_000
"""A bound on the stream matcher's backtracking (streams collapse to a few dozen entries)."""


class _Grammar:
    """A golden stream as a grammar over the received events: entries in order, each once
    or as its ``times`` says, ``group:`` entries a sequence repeated as a whole (a content
    block's start, deltas, stop). Backtracking, bounded by ``MATCH_STEPS``."""

    def __init__(self, got: list[Any]) -> None:
        self.got = got
        self.failures: dict[int, list[str]] = {}
        """Received index -> what each way of matching expected there."""
        self.steps = 0

    def seq(self, entries: list[Any], j: int, then: Any) -> bool:
        self.steps += 1
        if self.steps > MATCH_STEPS:
            return False
        if not entries:
            return bool(then(j))
        entry, rest = entries[0], entries[1:]

        def after(k: int) -> bool:
            return self.seq(rest, k, then)

        times = _times(entry)
        if times == "once":
            return self.one(entry, j, after)
        if times == "?":
            return self.one(entry, j, after) or after(j)
        if times == "*":
            return self.star(entry, j, after)
        return self.one(entry, j, lambda k: self.star(entry, k, after))

    def star(self, entry: Any, j: int, after: Any) -> bool:
        return self.one(entry, j, lambda k: k > j and self.star(entry, k, after)) or after(j)

    def one(self, entry: Mapping[str, Any], j: int, then: Any) -> bool:
        if "group" in entry:
            return self.seq(_wanted(entry["group"]), j, then)
        if j >= len(self.got):
            self.fail(j, f"event {entry['event']!r}, but the stream ended")
            return False
        found = _entry_mismatch(entry, self.got[j])
        if found is not None:
            where = json_path(found[0])
            self.fail(j, f"event {entry['event']!r}{' at ' + where if where else ''}: "
                         f"{found[1]}", where == "/event")
            return False
        return bool(then(j + 1))

    def end(self, j: int) -> bool:
        if j != len(self.got):
            self.fail(j, "the end of the stream, got another event", True)
        return j == len(self.got)

    def fail(self, j: int, what: str, other_event: bool = False) -> None:
        """Note what was expected at event ``j`` (an event of the right name first: its
        field is the likelier difference than another event altogether)."""
        said = self.failures.setdefault(j, [])
        if what not in said:
            said.insert(len(said) if other_event else 0, what)


def _visible(events: list[Any]) -> list[Any]:
    return [e for e in events if not (isinstance(e, Mapping) and e.get("event") in
                                      OPTIONAL_EVENTS)]


def _wanted(entries: list[Any]) -> list[Any]:
    """A grammar's entries but the optional events (a nested ``group:`` is an entry too)."""
    return [e for e in entries if "group" in e or e.get("event") not in OPTIONAL_EVENTS]


def stream_mismatch(pattern: list[Any], events: list[Any]) -> tuple[int, str] | None:
    """Where a normalized stream first departs from a golden event grammar (``_Grammar``):
    the index of the received event (optional events left out) and what was expected there;
    None when it fits."""
    grammar = _Grammar(_visible(events))
    if grammar.seq(_wanted(pattern), 0, grammar.end):
        return None
    if not grammar.failures:
        return 0, "a stream the golden's grammar describes (too many ways to try)"
    index = max(grammar.failures)
    return index, " or ".join(grammar.failures[index][:3])


def json_path(path: Path_) -> str:
    """A path as RFC 6901 pointer text: ``("choices", 0)`` is ``/choices/0``."""
    return "".join("/" + str(p).replace("~", "~0").replace("/", "~1") for p in path)


def _yaml(value: Any) -> list[str]:
    return yaml.safe_dump(value, sort_keys=True, allow_unicode=True).splitlines()


def diff(expected: Any, actual: Any) -> str:
    """What is wrong with an answer, judged against its golden (empty when it fits): the
    first place it departs, named by its path, then the golden and the received value there
    side by side. A stream is matched as an event grammar (``stream_mismatch``)."""
    if _is_event_list(expected) and isinstance(actual, list):
        found_event = stream_mismatch(expected, actual)
        if found_event is None:
            return ""
        index, how = found_event
        shown = _visible(actual)
        got = shown[index] if index < len(shown) else "(the end of the stream)"
        return "\n".join([f"received event #{index}: expected {how}", "received:",
                          *("  " + line for line in _yaml(got))])
    found = mismatch(expected, actual)
    if found is None:
        return ""
    path, how = found
    want, got = _at(expected, path), _at(actual, path)
    lines = [f"at {json_path(path) or '/'}: expected {how}"]
    if want is not _MISSING and got is not _MISSING and (isinstance(want, Mapping | list)):
        lines += difflib.unified_diff(_yaml(want), _yaml(prune(got, want)), "golden",
                                      "received", lineterm="", n=2)
    return "\n".join(lines)


_MISSING = object()


def _at(value: Any, path: Path_) -> Any:
    """The value at ``path`` (golden keys may carry their ``?``), or ``_MISSING``."""
    for part in path:
        if isinstance(value, Mapping):
            key = part if part in value else f"{part}?"
            if key not in value:
                if EACH in value and isinstance(part, int):
                    value = value[EACH]
                    continue
                return _MISSING
            value = value[key]
        elif isinstance(value, list) and isinstance(part, int) and part < len(value):
            value = value[part]
        else:
            return _MISSING
    return value


class _PlainDumper(yaml.SafeDumper):
    """A dumper that writes a value shared by two cases twice, not as an ``&id001`` anchor
    and ``*id001`` alias: a golden file is read and edited by people."""

    def ignore_aliases(self, data: Any) -> bool:
        return True


def rewrite(path: Path, updates: Mapping[str, tuple[int, Any]]) -> int:
    """Put newly recorded (status, normalized answer) pairs into a golden file, by case name,
    keeping its requests, pins, order and header comment. Returns how many cases were updated.
    A recorded answer pins every value it has: generalize it by hand (``<each>``, ``times``,
    ``?`` keys, placeholders) and say why each remaining value is pinned, or
    ``tests/test_golden_independent.py`` fails."""
    doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    changed = 0
    for case in doc["cases"]:
        if case["name"] in updates:
            case["status"], case["response"] = updates[case["name"]]
            changed += 1
    # The header keeps its lists on one line (``profiles: [ohmygpt, openai]``), as written.
    head = "".join(yaml.safe_dump({k: v}, default_flow_style=None if isinstance(v, list)
                                  else False) for k, v in doc.items() if k != "cases")
    text = path.read_text(encoding="utf-8")
    comments = "".join(line + "\n" for line in text.splitlines()[:20] if line.startswith("#")) \
        if text.startswith("#") else ""
    path.write_text((comments or "# Requests and patterns are hand-written (see "
                     "docs/reference/goldens.md).\n") + head
                    + yaml.dump({"cases": doc["cases"]}, Dumper=_PlainDumper,
                                sort_keys=False, allow_unicode=True, width=100),
                    encoding="utf-8")
    return changed
