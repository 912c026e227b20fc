"""What a latency run sends: prompt and output lengths as distributions, datasets, multi-turn
sessions, a shared prefix, and the request bodies of every endpoint kind.

A workload is plain data in the run's plan (``Workload``); each simulated user turns it into its
own sequence of requests (``UserStream``), drawn from a generator seeded by the run's
``--workload-seed`` and the user's number, so a run with the same flags sends the same prompts.
This module is pure Python (no Locust): the parent process validates a workload with it before
anything starts, the Locust processes draw from it, and the verdict summarises the samples it
tagged (``workload_summary``).

Lengths are in tokens of the project's tokenizer (``gateprobe.core.tokenizer``). A prompt is built
to its drawn length exactly; the output length can only be *asked*, through what the protocol offers
(``max_tokens``, ``max_tokens_to_sample``, ``max_output_tokens``): no API makes a model write at
least N tokens, so every sample records what was asked and what came back.
"""

from __future__ import annotations

import difflib
import json
import math
import random
import re
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from gateprobe.commands.load.datasets import MAX_OUTPUT_TOKENS, Conversation, load_dataset
from gateprobe.core.errors import UsageError
from gateprobe.core.metrics import summarize
from gateprobe.core.tokenizer import count_tokens

SPEECH_FORMAT = "mp3"
"""What the speech load asks for (OpenAI's default format)."""

MAX_PROMPT_TOKENS = 200_000
MAX_TURNS = 1000
MAX_THINK_S = 3600.0
SUFFIX_TOKENS = "fixed:32"
"""The suffix after a shared prefix when no ``--prompt-tokens`` is given: distinct per request,
so that only the prefix is shared."""

LENGTH_KEYS: dict[str, tuple[set[str], set[str]]] = {
    "fixed": ({"value"}, set()),
    "uniform": ({"min", "max"}, set()),
    "normal": ({"mean", "sd"}, {"min", "max"}),
    "lognormal": ({"mean", "sd"}, {"min", "max"}),
}
"""Each distribution's required and optional keys."""

_WORDS = (
    "river stone window garden letter market silver forest orange yellow castle engine "
    "harbor island ladder mirror needle pocket rabbit saddle throne valley wagon anchor basket "
    "candle desert feather glacier hammer jacket kettle lantern meadow number orchard pencil "
    "quarry ribbon signal timber velvet wander answer bridge copper dinner eleven fabric "
    "gentle hollow invent jungle kindle little morning narrow office planet quiet rocket "
    "summer travel useful violet winter yonder zipper about blue cold dark early fair green"
).split()
"""Prompt words: each at most 8 letters, so each (with its leading space) is one token."""
assert all(len(w) <= 8 and w.isalpha() for w in _WORDS)


# -- lengths -------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Length:
    """A distribution of token counts, bounded: ``fixed``, ``uniform``, ``normal`` or
    ``lognormal`` (``mean`` in tokens, ``sd`` the spread of the logarithm)."""

    kind: str
    mean: float
    """fixed: the value; uniform: unused; normal: the mean; lognormal: the mean, in tokens."""
    sd: float
    """normal: the standard deviation in tokens; lognormal: sigma of the logarithm."""
    low: int
    high: int

    def draw(self, rng: random.Random) -> int:
        """One count within the bounds (a normal or lognormal draw outside them is drawn
        again, a few times, then clamped: the bounds cut the distribution, not pile on it)."""
        if self.kind == "fixed":
            return self.low
        if self.kind == "uniform":
            return rng.randint(self.low, self.high)
        value = 0.0
        for _ in range(32):
            if self.kind == "normal":
                value = rng.gauss(self.mean, self.sd)
            else:  # mu such that the distribution's mean is ``mean``
                value = rng.lognormvariate(math.log(self.mean) - self.sd ** 2 / 2, self.sd)
            if self.low <= value <= self.high:
                break
        return min(self.high, max(self.low, round(value)))


def parse_length(text: str, flag: str, ceiling: int) -> Length:
    """``fixed:N`` (or ``N``), ``uniform:min=A,max=B``, ``normal:mean=M,sd=S[,min=A,max=B]``,
    ``lognormal:mean=M,sd=S[,min=A,max=B]``; a ``UsageError`` naming the flag otherwise.

    Example: ``parse_length("lognormal:mean=200,sd=0.5,min=16,max=2000", "--prompt-tokens",
    MAX_PROMPT_TOKENS)``."""
    where = f"{flag} {text}"
    kind, sep, rest = text.strip().partition(":")
    if not sep and kind.isdigit():
        kind, rest = "fixed", kind
    if kind not in LENGTH_KEYS:
        close = difflib.get_close_matches(kind, list(LENGTH_KEYS), n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise UsageError(f"{where}: unknown distribution {kind!r}{hint}; one of "
                         f"{', '.join(LENGTH_KEYS)} (e.g. lognormal:mean=200,sd=0.5,max=2000)")
    if kind == "fixed" and rest and "=" not in rest:
        rest = f"value={rest}"
    values = _length_values(where, kind, rest)
    low = int(values.get("min", 1))
    high = int(values.get("max", ceiling))
    if kind == "fixed":
        low = high = int(values["value"])
    if not 1 <= low <= high <= ceiling:
        raise UsageError(f"{where}: needs 1 <= min <= max <= {ceiling}")
    mean, sd = values.get("mean", 0.0), values.get("sd", 0.0)
    if kind in ("normal", "lognormal") and not (mean > 0 and sd >= 0):
        raise UsageError(f"{where}: needs mean > 0 and sd >= 0")
    if kind == "lognormal" and sd > 5:
        raise UsageError(f"{where}: sd is the spread of the logarithm: at most 5")
    return Length(kind, mean, sd, low, high)


def _length_values(where: str, kind: str, rest: str) -> dict[str, float]:
    """The ``key=number`` pairs of a length spec, each known and finite."""
    required, optional = LENGTH_KEYS[kind]
    values: dict[str, float] = {}
    for item in filter(None, (p.strip() for p in rest.split(","))):
        key, sep, number = item.partition("=")
        if not sep:
            raise UsageError(f"{where}: {item!r} is not KEY=NUMBER")
        if key not in required | optional:
            close = difflib.get_close_matches(key, sorted(required | optional), n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise UsageError(f"{where}: {kind} has no {key!r}{hint}; its keys: "
                             f"{', '.join(sorted(required | optional))}")
        try:
            values[key] = float(number)
        except ValueError:
            raise UsageError(f"{where}: {key}={number} is not a number") from None
        if not math.isfinite(values[key]):
            raise UsageError(f"{where}: {key} must be finite")
        if key in ("min", "max", "value") and not values[key].is_integer():
            raise UsageError(f"{where}: {key} is a whole number of tokens")
    missing = sorted(required - set(values))
    if missing:
        raise UsageError(f"{where}: {kind} needs {', '.join(missing)}")
    return values


def prompt_text(tokens: int, rng: random.Random) -> str:
    """Words drawn by ``rng``, exactly ``tokens`` tokens long (``gateprobe.core.tokenizer``)."""
    words = rng.choices(_WORDS, k=tokens)
    return " ".join(words)


def parse_duration(text: str, flag: str) -> float:
    """``1s``, ``500ms``, ``2m`` or a number of seconds."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*(ms|s|m)?\s*", text)
    if not match:
        raise UsageError(f"{flag} {text}: not a duration (1s, 500ms, 2m)")
    value = float(match.group(1)) * {"ms": 0.001, "s": 1.0, "m": 60.0, None: 1.0}[match.group(2)]
    if value > MAX_THINK_S:
        raise UsageError(f"{flag} {text}: at most {MAX_THINK_S:g} s")
    return value


# -- the workload of a run ------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Workload:
    """What a latency run's users send, beyond the plan's one prompt: kept in the plan as
    JSON (``as_json``/``of``) and checked before the run (``check``)."""

    prompt_tokens: str | None = None
    """A length spec (``parse_length``) for each new user message; None: the plan's prompt."""
    output_tokens: str | None = None
    """A length spec for each request's ``max_tokens``; None: ``--max-tokens``."""
    seed: int = 0
    dataset: str | None = None
    """A dataset file (absolute path): its records are the conversations."""
    turns: int | None = None
    """Requests per conversation (None: 1, or each dataset conversation's own turns); a
    dataset's conversation ends with its last turn."""
    think_time_s: float = 0.0
    """A user's wait between two turns of a conversation."""
    shared_prefix_tokens: tuple[int, ...] = ()
    """System prompts every user shares, one length each (a conversation takes one of them, in
    turn): TTFT by prefix length shows what a prefix cache saves."""

    @property
    def active(self) -> bool:
        """Whether any request differs from the plan's one prompt."""
        return self != Workload(seed=self.seed)

    @property
    def multi_turn(self) -> bool:
        """Whether a conversation may have several turns (answers are then kept)."""
        return (self.turns or 1) > 1 or self.dataset is not None

    def as_json(self) -> dict[str, Any]:
        """Plain JSON, for the plan."""
        return {**asdict(self), "shared_prefix_tokens": list(self.shared_prefix_tokens)}

    @classmethod
    def of(cls, raw: Mapping[str, Any] | None) -> Workload:
        """From ``as_json``'s form ({} or None: no workload)."""
        raw = dict(raw or {})
        raw["shared_prefix_tokens"] = tuple(raw.get("shared_prefix_tokens") or ())
        return cls(**raw)

    def check(self) -> Workload:
        """Itself, every value usable (``UsageError``/``ConfigError`` naming the flag)."""
        self.lengths()
        if self.turns is not None and not 1 <= self.turns <= MAX_TURNS:
            raise UsageError(f"--turns must be within 1..{MAX_TURNS}")
        if not (math.isfinite(self.think_time_s) and 0 <= self.think_time_s <= MAX_THINK_S):
            raise UsageError(f"--think-time must be within 0..{MAX_THINK_S:g} s")
        if any(not 0 <= n <= MAX_PROMPT_TOKENS for n in self.shared_prefix_tokens):
            raise UsageError(f"--shared-prefix-tokens must be within 0..{MAX_PROMPT_TOKENS}")
        if self.dataset is not None and self.prompt_tokens is not None:
            raise UsageError("--prompt-tokens draws prompts; --dataset gives them: not both")
        if self.dataset is not None:
            load_dataset(Path(self.dataset))
        return self

    def lengths(self) -> tuple[Length | None, Length | None]:
        """The parsed prompt and output length specs."""
        return (parse_length(self.prompt_tokens, "--prompt-tokens", MAX_PROMPT_TOKENS)
                if self.prompt_tokens else None,
                parse_length(self.output_tokens, "--output-tokens", MAX_OUTPUT_TOKENS)
                if self.output_tokens else None)


def parse_prefixes(text: str) -> tuple[int, ...]:
    """``--shared-prefix-tokens 2000`` or ``0,512,2048``."""
    try:
        values = tuple(int(v) for v in text.split(","))
    except ValueError:
        raise UsageError(f"--shared-prefix-tokens {text}: whole numbers, comma-separated") \
            from None
    if not values or any(not 0 <= v <= MAX_PROMPT_TOKENS for v in values):
        raise UsageError(f"--shared-prefix-tokens {text}: each within 0..{MAX_PROMPT_TOKENS}")
    return values


# -- request bodies -------------------------------------------------------------------------
Message = tuple[str, str]
"""(role, text): ``user`` or ``assistant``."""


def body_for(kind: str, models: Mapping[str, str], messages: Sequence[Message],
             max_tokens: int, system: str = "") -> dict[str, Any]:
    """The streaming request of one endpoint kind for a conversation so far (user and
    assistant alternating, the user's last) and an optional system prompt: the one place the
    load side builds request bodies."""
    last = messages[-1][1]
    openai = [{"role": "system", "content": system}] if system else []
    openai += [{"role": r, "content": t} for r, t in messages]
    if kind == "chat":
        body: dict[str, Any] = {"model": models["chat"], "stream": True,
                                "max_tokens": max_tokens, "messages": openai}
        if models["chat"] != models.get("legacy_chat"):  # claude-2-web ignores it
            body["stream_options"] = {"include_usage": True}
        return body
    if kind == "messages":
        body = {"model": models["messages"], "stream": True, "max_tokens": max_tokens,
                "messages": [{"role": r, "content": t} for r, t in messages]}
        return {**body, "system": system} if system else body
    if kind == "speech":  # no conversation: the user's last words are what is spoken
        return {"model": models["speech"], "input": last, "voice": "alloy",
                "response_format": SPEECH_FORMAT}
    if kind == "responses":  # OpenAI's minimum max_output_tokens is 16
        body = {"model": models["responses"], "stream": True,
                "input": last if len(messages) == 1 else openai[1 if system else 0:],
                "max_output_tokens": max(16, max_tokens)}
        return {**body, "instructions": system} if system else body
    turns = "".join(f"\n\n{'Human' if r == 'user' else 'Assistant'}: {t}" for r, t in messages)
    return {"model": models["complete"], "stream": True, "max_tokens_to_sample": max_tokens,
            "prompt": f"{system}{turns}\n\nAssistant:"}


@dataclass(slots=True)
class Request:
    """One request a user sends: its kind, body (and its JSON) and what the sample records."""

    kind: str
    body: dict[str, Any]
    data: str
    meta: dict[str, Any] = field(default_factory=dict)
    """Session, turn, prefix length and the asked token counts: merged into the sample."""
    text: str = ""
    """The user's new message (kept in the history with the answer)."""


class UserStream:
    """One simulated user's requests, conversation after conversation: each new user message
    drawn (or read from the dataset), the history growing with the gateway's actual answers,
    a think time between turns. Deterministic for a given seed and user number."""

    def __init__(self, workload: Workload, models: Mapping[str, str], prompt: str,
                 max_tokens: int, weights: Mapping[str, float], user: int,
                 dataset: Sequence[Conversation] | None = None) -> None:
        self.workload = workload
        self.models, self.prompt, self.max_tokens = models, prompt, max_tokens
        self.kinds = [k for k, w in weights.items() if w > 0]
        self.weights = [weights[k] for k in self.kinds]
        self.user = user
        self.rng = random.Random(f"{workload.seed}/{user}")
        self.prompt_len, self.output_len = workload.lengths()
        if self.prompt_len is None and workload.shared_prefix_tokens and dataset is None:
            self.prompt_len = parse_length(SUFFIX_TOKENS, "suffix", MAX_PROMPT_TOKENS)
        self.dataset = dataset
        self.think_s = 0.0
        """How long to wait before the next request (a turn's think time; 0 for a new
        conversation)."""
        self.sessions = 0
        self._left: list[tuple[str, int | None]] = []
        self._history: list[Message] = []
        self._history_tokens = 0
        self._system, self._prefix, self._kind, self._turn = "", 0, "", 0
        self._static: dict[str, Request] = {}
        self._prefixes: dict[int, str] = {}

    @property
    def keeps_text(self) -> bool:
        """Whether answers are needed (to grow the history)."""
        return self.workload.multi_turn

    def pick(self) -> str:
        """An endpoint kind, by weight."""
        return self.rng.choices(self.kinds, self.weights)[0]

    def next(self, kind: str | None = None) -> Request:
        """The next request: the conversation's next turn, or a new conversation's first."""
        if not self.workload.active:
            return self._plain(kind or self.pick())
        if not self._left:
            self._start(kind)
        if kind:
            self._kind = kind
        text, expected = self._left.pop(0)
        self._turn += 1
        if self.prompt_len is not None and not self.dataset:
            asked = self.prompt_len.draw(self.rng)
            text = prompt_text(asked, self.rng)
        else:
            asked = count_tokens(text)
        max_tokens = self.output_len.draw(self.rng) if self.output_len else \
            expected or self.max_tokens
        messages = [*self._history, ("user", text)]
        body = body_for(self._kind, self.models, messages, max_tokens, self._system)
        spoken = self._kind == "speech"
        sent = count_tokens(text) if spoken else \
            count_tokens(self._system) + self._history_tokens + count_tokens(text)
        meta = {"session": f"{self.user}.{self.sessions}", "turn": self._turn,
                "prefix_tokens": 0 if spoken else self._prefix,
                "prompt_tokens_asked": asked, "prompt_tokens": sent,
                "output_tokens_asked": None if spoken else max_tokens,
                "output_tokens_expected": expected}
        return Request(self._kind, body, json.dumps(body), meta, text)

    def answered(self, request: Request, text: str, ok: bool) -> None:
        """The answer to ``request`` came back: kept in the history when the conversation
        goes on (a failed or empty answer, or a spoken one, ends it)."""
        if not (ok and text and request.kind != "speech" and self._left):
            self._left, self.think_s = [], 0.0
            return
        self._history += [("user", request.text), ("assistant", text)]
        self._history_tokens += count_tokens(request.text) + count_tokens(text)
        self.think_s = self.workload.think_time_s

    def _start(self, kind: str | None) -> None:
        """A new conversation: its endpoint, system prompt (a shared prefix) and turns."""
        self.sessions += 1
        self._kind, self._turn, self.think_s = kind or self.pick(), 0, 0.0
        conversation = Conversation(turns=((self.prompt, None),))
        if self.dataset:
            conversation = self.dataset[self.rng.randrange(len(self.dataset))]
        turns = list(conversation.turns)
        if not self.dataset:
            turns = turns * (self.workload.turns or 1)
        elif self.workload.turns:
            turns = turns[:self.workload.turns]
        self._left = turns
        self._history = list(conversation.context)
        self._history_tokens = sum(count_tokens(t) for _, t in self._history)
        prefixes = self.workload.shared_prefix_tokens
        self._prefix = prefixes[(self.user + self.sessions - 1) % len(prefixes)] \
            if prefixes else 0
        self._system = "\n".join(filter(None, (self._prefix_text(self._prefix),
                                               conversation.system)))

    def _prefix_text(self, tokens: int) -> str:
        """The shared system prompt of ``tokens`` tokens: the same for every user of a seed."""
        if tokens not in self._prefixes:
            self._prefixes[tokens] = prompt_text(
                tokens, random.Random(f"{self.workload.seed}/prefix/{tokens}"))
        return self._prefixes[tokens]

    def _plain(self, kind: str) -> Request:
        """The plan's one request of ``kind``, built once."""
        if kind not in self._static:
            body = body_for(kind, self.models, [("user", self.prompt)], self.max_tokens)
            self._static[kind] = Request(kind, body, json.dumps(body), {
                "turn": 1, "prompt_tokens": count_tokens(self.prompt),
                "output_tokens_asked": None if kind == "speech" else self.max_tokens})
        return self._static[kind]


# -- what a run's samples say about its workload --------------------------------------------
TOKEN_FIELDS = ("prompt_tokens_asked", "prompt_tokens", "prompt_tokens_usage",
                "output_tokens_asked", "output_tokens_expected", "output_tokens")
"""The token counts each sample of a latency run carries (asked, counted by our tokenizer,
reported by the usage block, received)."""


def slope_per_1k(points: Sequence[tuple[float, float]]) -> float | None:
    """Least-squares slope of y over x, per 1,000 of x (None: fewer than two distinct x)."""
    if len({x for x, _ in points}) < 2:
        return None
    mx = sum(x for x, _ in points) / len(points)
    my = sum(y for _, y in points) / len(points)
    var = sum((x - mx) ** 2 for x, _ in points)
    return 1000 * sum((x - mx) * (y - my) for x, y in points) / var


def _group(samples: Sequence[Mapping[str, Any]], key: str) -> dict[str, Any]:
    """TTFT and prompt tokens per value of ``key`` (turn, prefix length), in its order."""
    groups: dict[int, list[Mapping[str, Any]]] = {}
    for s in samples:
        if isinstance(s.get(key), int):
            groups.setdefault(s[key], []).append(s)
    return {str(k): {"requests": len(g), "errors": sum(not s.get("ok") for s in g),
                     "ttft_ms": summarize(s["ttft_ms"] for s in g
                                          if s.get("ok") and s.get("ttft_ms") is not None),
                     "prompt_tokens": summarize(s["prompt_tokens"] for s in g
                                                if s.get("prompt_tokens") is not None)}
            for k, g in sorted(groups.items())}


def workload_summary(samples: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """A latency run's workload numbers: TTFT by turn and by shared-prefix length, how TTFT
    grows per 1,000 prompt (and prefix) tokens, and each token count's distribution, with the
    share of answers shorter than asked (the protocols cap output; none sets its length)."""
    streams = [s for s in samples if not s.get("dropped")]
    timed = [s for s in streams if s.get("ok") and s.get("ttft_ms") is not None]
    short = [s for s in streams if s.get("ok") and s.get("output_tokens_asked")
             and (s.get("output_tokens") or 0) < s["output_tokens_asked"]]
    asked = [s for s in streams if s.get("ok") and s.get("output_tokens_asked")]
    return {
        "by_turn": _group(streams, "turn"),
        "by_prefix_tokens": _group(streams, "prefix_tokens"),
        "ttft_ms_per_1k_prompt_tokens": slope_per_1k(
            [(s["prompt_tokens"], s["ttft_ms"]) for s in timed
             if s.get("prompt_tokens") is not None]),
        "ttft_ms_per_1k_prefix_tokens": slope_per_1k(
            [(s["prefix_tokens"], s["ttft_ms"]) for s in timed
             if s.get("prefix_tokens") is not None]),
        "tokens": {name: summarize(float(s[name]) for s in streams
                                   if isinstance(s.get(name), int | float))
                   for name in TOKEN_FIELDS},
        "output_shorter_than_asked": len(short) / len(asked) if asked else None,
        "sessions": len({s["session"] for s in streams if s.get("session")}),
    }
