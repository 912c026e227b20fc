"""The reference model's prefill: a prompt costs time before its first token, less for a prefix
the gateway has seen before (a prefix cache), so that a load run's TTFT by turn and by shared
prefix length has something true to show.

Off by default (``Timing.prefill_us_per_token`` 0): the schedule is then TTFT, ITL, as before.
The cache works as serving engines' do (vLLM's automatic prefix caching): the prompt's tokens
(``gateprobe.core.tokenizer``) in blocks of ``BLOCK_TOKENS``, each block known by a hash of itself
and every block before it, a block found in the cache costing nothing. Only whole blocks are
cached, so a prefix shorter than one block saves nothing.
"""

from __future__ import annotations

from collections import OrderedDict

from gateprobe.core.tokenizer import tokenize

BLOCK_TOKENS = 16
CAPACITY_BLOCKS = 65_536
"""Blocks kept (least recently used dropped): a long load run cannot grow memory."""


class PrefixCache:
    """Hashes of the prompt blocks seen, least recently used first."""

    def __init__(self, capacity: int = CAPACITY_BLOCKS) -> None:
        self.capacity = capacity
        self._blocks: OrderedDict[int, None] = OrderedDict()

    def lookup_and_add(self, pieces: list[str]) -> int:
        """How many leading tokens of ``pieces`` were cached; every whole block is cached
        from now on."""
        cached, chain, hit = 0, 0, True
        for start in range(0, len(pieces) - BLOCK_TOKENS + 1, BLOCK_TOKENS):
            chain = hash((chain, "".join(pieces[start:start + BLOCK_TOKENS])))
            if hit and chain in self._blocks:
                self._blocks.move_to_end(chain)
                cached += BLOCK_TOKENS
                continue
            hit = False
            self._blocks[chain] = None
        while len(self._blocks) > self.capacity:
            self._blocks.popitem(last=False)
        return cached

    def clear(self) -> None:
        """Forget every block."""
        self._blocks.clear()


def prefill_ns(prompt: str, us_per_token: float, cache: PrefixCache | None) -> int:
    """The time to read ``prompt`` before the first token: ``us_per_token`` for each token
    not found in ``cache`` (None: no cache)."""
    if us_per_token <= 0:
        return 0
    pieces = tokenize(prompt)
    cached = cache.lookup_and_add(pieces) if cache is not None else 0
    return int((len(pieces) - cached) * us_per_token * 1000)
