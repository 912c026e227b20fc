"""Tests of the server runner: binding, address errors, in-thread lifecycle."""

from __future__ import annotations

import socket

import httpx
import pytest

from gateprobe.core.errors import ConfigError
from gateprobe.reference.server import bind, running_gateway
from gateway_fixtures import base_config


def test_bound_socket_is_tcp_so_accepted_connections_get_nodelay() -> None:
    """asyncio sets TCP_NODELAY only when the accepted socket's proto is IPPROTO_TCP.

    Without it every response waits for a delayed ACK (40 ms on Linux) and stream events sit in
    the kernel after the trace says they were sent.
    """
    sock = bind("127.0.0.1", 0)
    try:
        assert sock.proto == socket.IPPROTO_TCP
        client = socket.create_connection(sock.getsockname())
        conn, _ = sock.accept()
        assert conn.proto == socket.IPPROTO_TCP
        conn.close()
        client.close()
    finally:
        sock.close()


def test_address_in_use_is_a_one_line_config_error() -> None:
    first = bind("127.0.0.1", 0)
    try:
        with pytest.raises(ConfigError, match=r"cannot listen on 127\.0\.0\.1:\d+: already in use"):
            bind("127.0.0.1", first.getsockname()[1])
    finally:
        first.close()


def test_running_gateway_serves_then_stops() -> None:
    with running_gateway(base_config()) as gw:
        assert gw.base_url.startswith("http://127.0.0.1:")
        assert httpx.get(gw.base_url + "/_gateprobe/health").json()["status"] == "ok"
        url = gw.base_url
    with pytest.raises(httpx.ConnectError):
        httpx.get(url + "/_gateprobe/health", timeout=2)
