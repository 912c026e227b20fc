"""Reference gateways on loopback for tests: a shared one reset per test, and a factory.

Streaming, timing and disconnects are only real over a socket (an in-process transport buffers
whole bodies), so every HTTP test talks to uvicorn on 127.0.0.1 through these fixtures.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import trustme

from gateprobe.reference import GatewayConfig, RunningGateway, Timing, Tls, running_gateway
from gateprobe.reference.config import default_keys_path, load_keys_file

FAST = Timing(ttft_ms=5.0, itl_ms=1.0)
"""A schedule fast enough for tests; timing is asserted by order, never by wall clock."""


class FakeClock:
    """A monotonic clock that moves only when a test says so."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def base_config(**overrides: Any) -> GatewayConfig:
    return dataclasses.replace(load_keys_file(default_keys_path()).config(timing=FAST),
                               **overrides)


MakeGateway = Callable[..., RunningGateway]


@pytest.fixture
def make_gateway() -> Iterator[MakeGateway]:
    """Start a gateway with config overrides (``clock=`` for the rate limiter, ``tls=`` to
    serve HTTPS); stopped after."""
    with contextlib.ExitStack() as stack:

        def make(*, clock: Any = None, tls: Tls | None = None, **overrides: Any,
                 ) -> RunningGateway:
            extra: dict[str, Any] = {"clock": clock} if clock is not None else {}
            return stack.enter_context(running_gateway(base_config(**overrides), tls=tls,
                                                       **extra))

        yield make


@pytest.fixture(scope="session")
def _session_gateway() -> Iterator[RunningGateway]:
    with running_gateway(base_config()) as gateway:
        yield gateway


@pytest.fixture
def gateway(_session_gateway: RunningGateway) -> RunningGateway:
    """The shared ``ohmygpt`` gateway with fast timing, budgets and traces reset for each test."""
    _session_gateway.state.reset()
    return _session_gateway


def client_for(gateway: RunningGateway, key: str | None = "gp-vip-0001",
               **headers: str) -> httpx.Client:
    auth = {"authorization": f"Bearer {key}"} if key else {}
    return httpx.Client(base_url=gateway.base_url, headers={**auth, **headers}, timeout=30)


@pytest.fixture
def client(gateway: RunningGateway) -> Iterator[httpx.Client]:
    """An httpx client of the shared gateway with the VIP key as Bearer."""
    with client_for(gateway) as c:
        yield c


TlsFiles = tuple[Tls, Path]
"""What to serve HTTPS with, and the CA file a client must be told to trust."""


def issue_certificate(where: Path) -> TlsFiles:
    """A certificate for 127.0.0.1 and its key, and the throw-away CA that issued it (trusted
    by nobody by default), written into ``where`` (the tests and the benchmarks use it)."""
    ca = trustme.CA()
    cert, key, ca_pem = where / "cert.pem", where / "key.pem", where / "ca.pem"
    issued = ca.issue_cert("127.0.0.1")
    issued.cert_chain_pems[0].write_to_path(str(cert))
    issued.private_key_pem.write_to_path(str(key))
    ca.cert_pem.write_to_path(str(ca_pem))
    return Tls(cert, key), ca_pem


@pytest.fixture
def tls(tmp_path: Path) -> TlsFiles:
    """What to serve HTTPS with, and the CA file a client must be told to trust."""
    return issue_certificate(tmp_path)
