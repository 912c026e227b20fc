"""A deterministic fake language model.

The same (model, prompt, seed, choice index) always yields the same text, so golden responses can
be recorded from the reference gateway and hold on every run. The text is built from token pieces
of ``gp-pretok-v1``, so the usage it reports is exactly what the tokenizer counts and a chunk can
carry one token at a time.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from gateprobe.tokenizer import tokenize

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


def _natural_text(rng: random.Random) -> str:
    """Plain sentences of a natural length, each word with its leading space (as Claude's are)."""
    target = rng.randint(MIN_NATURAL_TOKENS, MAX_NATURAL_TOKENS)
    out: list[str] = []
    count = 0
    sentence_left = rng.randint(4, 9)
    capital = True
    while count < target - 1:
        word = rng.choice(_WORDS)
        out.append(" " + (word.capitalize() if capital else word))
        count += len(tokenize(out[-1]))
        capital = False
        sentence_left -= 1
        if sentence_left == 0 and count + 1 < target - 1:  # a word always follows
            out.append(rng.choice((".", ".", ".", ",", "!")))
            count += 1
            capital = out[-1] != ","
            sentence_left = rng.randint(4, 9)
    out.append(".")
    return "".join(out)


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
    text = _natural_text(_rng(model, prompt, seed, index))
    cause: StopCause = "natural"
    hit: str | None = None
    cut = len(text)
    for seq in stop:
        if seq:
            pos = text.find(seq)
            if 0 <= pos < cut:
                cut, hit = pos, seq
    if hit is not None:
        text, cause = text[:cut], "stop_sequence"
    pieces = tokenize(text)
    if max_tokens is not None and len(pieces) > max_tokens:
        pieces, cause, hit = pieces[:max_tokens], "max_tokens", None
    return Generation(tuple(pieces), cause, hit)
