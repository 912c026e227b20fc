"""What a request costs, and who pays: the rate table applied to a served request's usage.

A served request (2xx, stream or not) is billed once, when it is answered, by its usage and its
model's rate: ``(input x rate.input + output x rate.output) / 1000`` credits, debited from the
key's ``used_fee`` and the account's balance. A refused request (4xx, 429, 5xx) costs nothing.
The unit and the per-1,000 reading are ours: the gateway does not document them.
"""

from __future__ import annotations

from dataclasses import dataclass

from gateprobe.reference.config import FALLBACK_RATE, GatewayConfig
from gateprobe.reference.faults import (
    BILLING_429,
    BILLING_FAILED,
    BILLING_OVERCHARGE,
    BILLING_STREAM_TWICE,
    OVERCHARGE,
    REFUSED_CHARGE,
)
from gateprobe.reference.management import KeyStore


@dataclass(frozen=True, slots=True)
class Usage:
    """What one served request consumed."""

    model: str
    input_tokens: int
    output_tokens: int
    streamed: bool = False


def price(config: GatewayConfig, usage: Usage) -> float:
    """Credits for ``usage`` at the rate table's price."""
    rate = config.rates.get(usage.model, FALLBACK_RATE)
    return (usage.input_tokens * rate.input + usage.output_tokens * rate.output) / 1000


def bill_served(store: KeyStore, key: str, usage: Usage, endpoint: str) -> None:
    """Debit a served request (bent by the billing faults, the harness's proof)."""
    faults = store.config.faults
    credits = price(store.config, usage)
    if BILLING_OVERCHARGE.active(faults, endpoint):
        credits *= OVERCHARGE
    if usage.streamed and BILLING_STREAM_TWICE.active(faults, endpoint):
        credits *= 2
    store.debit(key, credits)


def bill_refused(store: KeyStore, key: str, status: int, endpoint: str) -> None:
    """A refused request is free, unless a fault bills it."""
    faults = store.config.faults
    if (status == 429 and BILLING_429.active(faults, endpoint)) or \
            (status != 429 and BILLING_FAILED.active(faults, endpoint)):
        store.debit(key, REFUSED_CHARGE)
