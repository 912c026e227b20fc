"""The fuzz cost guard: what every fuzzed request may cost, and how it is aimed.

schemathesis reaches every phase through one global ``before_call`` hook; the suite's hook
calls ``Guard.admit`` with the case's body, which it may change in place before it is sent.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from gateprobe.core.families import PATHS, canonical
from gateprobe.core.targets import Target

MODEL_FOR_PATH = {PATHS["chat"]: "chat", PATHS["completions"]: "completions",
                  PATHS["embeddings"]: "embeddings", PATHS["complete"]: "complete",
                  PATHS["messages"]: "messages", PATHS["count_tokens"]: "messages",
                  PATHS["responses"]: "responses"}
VALID_PROMPT = "\n\nHuman: Say test\n\nAssistant:"
TOKEN_FIELDS = ("max_tokens", "max_completion_tokens", "max_tokens_to_sample",
                "max_output_tokens")


def clamp_tokens(body: Any, cap: int | None) -> Any:
    """``body`` with every ``max_tokens``-like value at most ``cap`` (unchanged without one):
    no request asks a target for more than it declares it may be asked."""
    if cap is None or not isinstance(body, dict):
        return body
    return {k: min(v, cap) if k in TOKEN_FIELDS and isinstance(v, int) and
            not isinstance(v, bool) else v for k, v in body.items()}


GENERATING_PATHS = {PATHS["chat"]: "max_tokens", PATHS["completions"]: "max_tokens",
                    PATHS["messages"]: "max_tokens", PATHS["complete"]: "max_tokens_to_sample"}
"""The routes whose answers are generated tokens, and the field that caps them there."""


def tokens_bound(path: str, body: Any, declared_max: int | None) -> int | None:
    """The most tokens a request may cost: its own cap (clamped to what the target declares
    it may be asked), or, on a generating route without one, the target's declared maximum;
    None when nothing bounds it (a generating request with no cap, to a target declaring
    none). A request that generates nothing costs 0. An alias family's route costs what its
    original's does."""
    if canonical(path) not in GENERATING_PATHS or not isinstance(body, dict):
        return 0
    if any(isinstance(body.get(name), int) for name in TOKEN_FIELDS):
        return max_tokens_of(clamp_tokens(body, declared_max))
    return declared_max


def max_tokens_of(body: Any) -> int:
    """The most tokens a request body may generate (0 when it names none)."""
    if not isinstance(body, dict):
        return 0
    return max((v for k, v in body.items() if k in TOKEN_FIELDS and isinstance(v, int)),
               default=0)
LOOPBACK_MAX_REQUESTS = 2000
REMOTE_MAX_REQUESTS = 200
LOOPBACK_EXAMPLES = 20
REMOTE_EXAMPLES = 5
PHASES = ("examples", "coverage", "fuzzing")
"""schemathesis's phases of a fuzzed operation, in its order: the spec's own examples, the
coverage phase (boundary and invalid values of every field, about 90 requests per operation
whatever the example count: chat's large schema makes some 450), then random generation."""
REMOTE_PHASES = ("examples", "fuzzing")


class RequestCapReached(Exception):
    """The run has sent as many fuzz requests as it may."""


class ShareUsed(Exception):
    """This operation has sent its share of the run's cap: its test ends there, passed on
    what it sent (the run's later operations get theirs)."""


@dataclass
class Guard:
    """Caps for one run, and the count of requests sent so far."""

    target: Target
    max_tokens: int = 64
    max_requests: int = LOOPBACK_MAX_REQUESTS
    sent: int = 0
    operations: int = 0
    """Operations the run fuzzes (0: unknown). An operation may then use what is left of the
    cap but a reserve for each later one: an early operation that schemathesis feeds many
    examples (chat's coverage phase) goes deep, yet cannot leave the later ones (the
    gateway's own APIs, say) unfuzzed."""
    _path: str | None = None
    _seen: int = 0
    _share: int = 0
    _path_sent: int = 0

    @property
    def reserve(self) -> int:
        """Requests kept for each operation not yet fuzzed: half a fair share."""
        return max(1, self.max_requests // (2 * self.operations)) if self.operations else 0

    @classmethod
    def for_target(cls, target: Target, max_tokens: int = 64,
                   max_requests: int | None = None) -> Guard:
        """Defaults by where the target is: a paid remote gateway gets a tight request cap."""
        default = LOOPBACK_MAX_REQUESTS if target.is_loopback else REMOTE_MAX_REQUESTS
        cap = min(max_tokens, target.max_tokens) if target.max_tokens else max_tokens
        return cls(target, cap, max_requests or default)

    def admit(self, path: str, body: Any) -> None:
        """Count one request (``RequestCapReached`` past the cap) and aim its body.

        Only values that are already schema-valid are changed, and only to other valid
        values: a string model becomes the target's model for the endpoint (a random name
        would only test the gateway's 404, and ``claude-2-web`` ignores every other field),
        a non-empty legacy prompt becomes a valid one, and token counts above the cap come
        down to it. Negative cases keep their violation.
        """
        if path != self._path:  # the suite fuzzes one operation after another
            self._path, self._path_sent, self._seen = path, 0, self._seen + 1
            later = max(0, self.operations - self._seen)
            self._share = max(1, self.max_requests - self.sent - self.reserve * later)
        if self.operations and self._path_sent >= self._share:  # not sent, not counted
            raise ShareUsed(f"{path} sent its share of the fuzz request cap "
                            f"({self._share} of {self.max_requests})")
        self.sent += 1
        self._path_sent += 1
        if self.sent > self.max_requests:
            raise RequestCapReached(f"fuzz request cap reached ({self.max_requests})")
        if not isinstance(body, dict):
            return
        family = MODEL_FOR_PATH.get(canonical(path))
        if family and isinstance(body.get("model"), str):
            body["model"] = self.target.models[family]
        if path == PATHS["complete"] and isinstance(body.get("prompt"), str) and body["prompt"]:
            body["prompt"] = VALID_PROMPT
        for name in TOKEN_FIELDS:
            value = body.get(name)
            if isinstance(value, int) and not isinstance(value, bool) and value > self.max_tokens:
                body[name] = self.max_tokens

    def cap(self, path: str, body: Any) -> None:
        """Give a generating request that names no token cap this run's (under
        ``--max-generated-tokens`` every request carries one: its cost is then bounded)."""
        route = canonical(path)
        if route in GENERATING_PATHS and isinstance(body, dict) and \
                not any(name in body for name in TOKEN_FIELDS):
            body[GENERATING_PATHS[route]] = self.max_tokens


def phases_for(target: Target, requested: tuple[str, ...] | None) -> tuple[str, ...]:
    """The phases to run: as requested, else every one on loopback and all but the coverage
    phase elsewhere (its hundreds of requests per operation are a cost on a real gateway)."""
    return requested or (PHASES if target.is_loopback else REMOTE_PHASES)


def parse_phases(text: str, source: str) -> tuple[str, ...]:
    """``examples,fuzzing`` as phases (``ValueError`` naming ``source`` and the known ones)."""
    names = tuple(dict.fromkeys(p.strip() for p in text.split(",") if p.strip()))
    unknown = [n for n in names if n not in PHASES]
    if unknown or not names:
        raise ValueError(f"{source}: {', '.join(unknown) or 'no phase'} is not a fuzz phase "
                         f"(choose from {', '.join(PHASES)}, comma-separated)")
    return tuple(p for p in PHASES if p in names)


def examples_for(target: Target, requested: int | None) -> int:
    """Examples per operation: as requested, else by where the target is."""
    return requested or (LOOPBACK_EXAMPLES if target.is_loopback else REMOTE_EXAMPLES)
