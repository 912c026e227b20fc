"""A deterministic fake language model.

The same (model, prompt, seed, choice index) always yields the same text, so golden responses can
be recorded from the reference gateway and hold on every run. The text is built from token pieces
of ``gp-pretok-v1``, so the usage it reports is exactly what the tokenizer counts and a chunk can
carry one token at a time.
"""

from __future__ import annotations

import hashlib
import random
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from gateprobe.core.tokenizer import tokenize

StopCause = Literal["natural", "max_tokens", "stop_sequence"]

_WORDS = (
    "the a gateway model request stream token answer protocol server client latency test "
    "tier limit window mirror response event chunk header value field prompt human assistant "
    "message content block usage error status key route path reply number time first last "
    "fast slow clear simple steady honest strict quiet bright plain small large open"
).split()

MIN_NATURAL_TOKENS = 12
MAX_NATURAL_TOKENS = 48


@dataclass(frozen=True, slots=True)
class Generation:
    """What the model produced for one choice."""

    pieces: tuple[str, ...]
    """Token pieces, in order; their concatenation is ``text``."""
    cause: StopCause
    stop_sequence: str | None
    """The stop sequence that ended generation (``cause == "stop_sequence"``)."""

    @property
    def text(self) -> str:
        """The generated text, excluding any stop sequence."""
        return "".join(self.pieces)

    @property
    def tokens(self) -> int:
        """Number of output tokens (one per piece)."""
        return len(self.pieces)


def _rng(model: str, prompt: str, seed: int, index: int) -> random.Random:
    digest = hashlib.blake2b(
        f"{model}\x00{seed}\x00{index}\x00{prompt}".encode("utf-8", "surrogatepass"), digest_size=8
    ).digest()
    return random.Random(int.from_bytes(digest, "big"))


# Each word's token pieces with its leading space, lower and capitalized, computed once: the
# hot path of a request then joins tuples instead of running the tokenizer per word.
_LOWER = tuple(tuple(tokenize(" " + w)) for w in _WORDS)
_UPPER = tuple(tuple(tokenize(" " + w.capitalize())) for w in _WORDS)
_ENDS = (".", ".", ".", ",", "!")


ASKED_LENGTH = re.compile(r"at least (\d{1,5}) words")
MAX_ASKED_TOKENS = 20_000


def _natural_pieces(rng: random.Random, asked: int | None = None) -> list[str]:
    """Token pieces of plain sentences of a natural length (a word always precedes an end), or
    of about the asked length: a prompt asking for "at least N words" gets that many tokens,
    as a real model asked for a long answer gives one (the long-request probe relies on it)."""
    target = rng.randint(MIN_NATURAL_TOKENS, MAX_NATURAL_TOKENS)
    if asked:
        target = max(target, min(asked, MAX_ASKED_TOKENS))
    words = rng.choices(range(len(_WORDS)), k=target)
    lengths = rng.choices(range(4, 10), k=target)
    ends = rng.choices(_ENDS, k=target)
    pieces: list[str] = []
    capital = True
    sentence_left = lengths[0]
    for i, w in enumerate(words):
        if len(pieces) >= target - 1:
            break
        pieces += _UPPER[w] if capital else _LOWER[w]
        capital = False
        sentence_left -= 1
        if sentence_left == 0 and len(pieces) + 1 < target - 1:
            pieces.append(ends[i])
            capital = ends[i] != ","
            sentence_left = lengths[i]
    pieces.append(".")
    return pieces


def generate(
    model: str,
    prompt: str,
    *,
    max_tokens: int | None,
    stop: Sequence[str] = (),
    seed: int = 0,
    index: int = 0,
) -> Generation:
    """Generate the deterministic completion of ``prompt``.

    Stop sequences are matched on the text as it grows, as a real model's are: the earliest
    occurrence of any of them ends the text just before it, and the sequence itself is not part
    of the output.
    """
    asked = ASKED_LENGTH.search(prompt)
    pieces = _natural_pieces(_rng(model, prompt, seed, index),
                             int(asked.group(1)) if asked else None)
    cause: StopCause = "natural"
    hit: str | None = None
    if stop:
        text = "".join(pieces)
        cut = len(text)
        for seq in stop:
            if seq:
                pos = text.find(seq)
                if 0 <= pos < cut:
                    cut, hit = pos, seq
        if hit is not None:
            pieces, cause = tokenize(text[:cut]), "stop_sequence"
    if max_tokens is not None and len(pieces) > max_tokens:
        pieces, cause, hit = pieces[:max_tokens], "max_tokens", None
    return Generation(tuple(pieces), cause, hit)
