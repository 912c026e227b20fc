"""Running the reference gateway: in the foreground (``gateprobe serve``) or in a thread.

The thread runner binds the socket itself on ``127.0.0.1:0`` before uvicorn starts, so the port is
known without races and no test ever needs a fixed port.
"""

from __future__ import annotations

import asyncio
import errno
import gc
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import uvicorn
from starlette.types import ASGIApp
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from gateprobe.core.errors import ConfigError
from gateprobe.reference.app import ARRIVAL_KEY, build_app
from gateprobe.reference.call import GatewayState
from gateprobe.reference.config import GatewayConfig
from gateprobe.reference.ratelimit import Clock

LoopName = Literal["auto", "asyncio", "uvloop"]


class ArrivalStampingProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol, stamping each request with when its first bytes were read.

    The ASGI app is called a loop iteration or more later, after whatever callbacks were
    already due; under load that pickup costs milliseconds. A stream's schedule and its trace
    start from the arrival stamp, so the server's truth is the time a client's request reached
    it, not the time this process got round to it.
    """

    _received_ns = 0

    def data_received(self, data: bytes) -> None:
        self._received_ns = time.perf_counter_ns()
        super().data_received(data)

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self.scope[ARRIVAL_KEY] = self._received_ns  # type: ignore[literal-required]


@dataclass(frozen=True, slots=True)
class RunningGateway:
    """A reference gateway serving on loopback."""

    base_url: str
    state: GatewayState
    """Its live state: tests reset budgets and read traces through it."""

    @property
    def config(self) -> GatewayConfig:
        """The configuration it was started with."""
        return self.state.config


def bind(host: str, port: int) -> socket.socket:
    """A listening socket, or a one-line ``ConfigError`` if the address cannot be used."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # proto must say TCP explicitly: asyncio sets TCP_NODELAY only on accepted sockets whose
    # proto is IPPROTO_TCP, and accepted sockets inherit it from this one. With proto 0 every
    # response (headers and body are two writes) waits out a 40 ms delayed ACK.
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        reason = "already in use" if exc.errno == errno.EADDRINUSE else exc.strerror
        raise ConfigError(f"cannot listen on {host}:{port}: {reason}") from None
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


@dataclass(frozen=True)
class Tls:
    """A certificate chain and its key (PEM files) to serve HTTPS with."""

    cert: Path
    key: Path

    def check(self) -> Tls:
        """Itself, or a one-line ``ConfigError`` if the pair cannot be loaded."""
        try:
            ssl.create_default_context(ssl.Purpose.CLIENT_AUTH).load_cert_chain(
                self.cert, self.key)
        except (OSError, ssl.SSLError) as exc:
            reason = getattr(exc, "strerror", None) or getattr(exc, "reason", None) or exc
            raise ConfigError(f"cannot use TLS certificate {self.cert} with key {self.key}: "
                              f"{reason}") from None
        return self


def _url(host: str, port: int, tls: Tls | None) -> str:
    shown = f"[{host}]" if ":" in host else host
    return f"{'https' if tls else 'http'}://{shown}:{port}"


def _uvicorn_config(app: ASGIApp, loop: LoopName, log_level: str,
                    tls: Tls | None = None) -> uvicorn.Config:
    return uvicorn.Config(
        app,
        loop=loop,
        http=ArrivalStampingProtocol,
        log_level=log_level,
        access_log=False,
        proxy_headers=False,  # no proxy in front of a test double; saves a wrapper per send
        lifespan="off",
        timeout_keep_alive=30,
        # Open streams may be far from their end on shutdown; a test double need not wait long.
        timeout_graceful_shutdown=3,
        backlog=2048,
        ssl_certfile=tls.cert if tls else None,
        ssl_keyfile=tls.key if tls else None,
    )


def serve(
    config: GatewayConfig,
    host: str,
    port: int,
    log_level: str = "warning",
    announce: Callable[[str], None] | None = None,
    loop: LoopName = "auto",
    tls: Tls | None = None,
) -> None:
    """Serve in the foreground until interrupted; ``announce`` gets the URL once bound."""
    sock = bind(host, port)
    if announce is not None:
        bound_host, bound_port = sock.getsockname()[:2]
        announce(_url(bound_host, bound_port, tls))
    server = uvicorn.Server(_uvicorn_config(build_app(config), loop, log_level, tls))
    # Everything alive now (modules, the app) lives as long as the process: take it out of the
    # collector's reach, or each full collection walks it all and stalls every stream for tens
    # of milliseconds (measured: p99 request pickup 50 ms -> see benchmarks/load_accuracy.py).
    gc.collect()
    gc.freeze()
    server.run(sockets=[sock])


@contextmanager
def running_gateway(
    config: GatewayConfig,
    *,
    loop: LoopName = "asyncio",
    log_level: str = "warning",
    clock: Clock = time.monotonic,
    tls: Tls | None = None,
) -> Iterator[RunningGateway]:
    """Serve ``config`` on an ephemeral loopback port in a thread for the ``with`` block.

    The default loop is plain asyncio: uvloop's policy is process-wide and would leak into the
    caller (pytest, the CLI) from a helper thread. ``clock`` drives the rate limiter, so tests
    can move time forward instead of sleeping through a window.
    """
    sock = bind("127.0.0.1", 0)
    port = sock.getsockname()[1]
    app = build_app(config, clock)
    # uvicorn installs signal handlers only from the main thread: none are taken from the caller.
    server = uvicorn.Server(_uvicorn_config(app, loop, log_level, tls))
    thread = threading.Thread(
        target=lambda: asyncio.run(server.serve(sockets=[sock])), daemon=True,
        name=f"gateprobe-reference-{port}",
    )
    thread.start()
    try:
        while not server.started:
            if not thread.is_alive():
                raise RuntimeError("reference gateway failed to start")
            threading.Event().wait(0.01)
        yield RunningGateway(_url("127.0.0.1", port, tls), app.state.gateway)
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()

