"""``gateprobe.arrival``: the kernel's stamps of bytes received and sent, moved into the clock
of every measurement, and the fallbacks where there are none."""

from __future__ import annotations

import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator

import pytest

from gateprobe import arrival
from gateprobe.metrics import now_ns

linux_only = pytest.mark.skipif(arrival.SO_TIMESTAMPNS is None, reason="Linux socket stamps")


@pytest.fixture
def pair() -> Iterator[tuple[socket.socket, socket.socket]]:
    """A connected TCP pair on loopback (socketpair would be AF_UNIX: no packet stamps)."""
    with socket.create_server(("127.0.0.1", 0)) as server:
        client = socket.create_connection(server.getsockname())
        peer, _ = server.accept()
    yield client, peer
    client.close()
    peer.close()


@linux_only
def test_received_bytes_carry_the_kernels_arrival_time(
        pair: tuple[socket.socket, socket.socket]) -> None:
    client, peer = pair
    assert arrival.enable(client)
    before = now_ns()
    peer.sendall(b"data: 1\n\n")
    after = now_ns()
    time.sleep(0.05)  # we read late; the stamp must not move with us
    data, t_ns, by_kernel = arrival.recv(client, 4096, stamped=True)
    read = now_ns()
    assert data == b"data: 1\n\n" and by_kernel
    assert before - 1_000_000 <= t_ns <= after + 1_000_000  # the realtime/monotonic move
    assert read - t_ns >= 40_000_000


def test_without_stamps_the_read_time_is_used(pair: tuple[socket.socket, socket.socket]) -> None:
    client, peer = pair
    peer.sendall(b"x")
    time.sleep(0.02)
    before = now_ns()
    data, t_ns, by_kernel = arrival.recv(client, 16, stamped=False)
    assert data == b"x" and not by_kernel and t_ns >= before


def test_tls_sockets_are_not_stamped() -> None:
    context = ssl.create_default_context()
    with socket.socket() as plain, context.wrap_socket(plain, do_handshake_on_connect=False,
                                                       server_hostname="localhost") as wrapped:
        assert not arrival.enable(wrapped)
        assert not arrival.enable_sent(wrapped)


@linux_only
def test_sent_bytes_carry_the_kernels_departure_time(
        pair: tuple[socket.socket, socket.socket]) -> None:
    client, peer = pair
    assert arrival.last_sent(client) is None  # nothing asked for, nothing queued, no wait
    assert arrival.enable_sent(client)
    before = now_ns()
    client.sendall(b"POST / HTTP/1.1\r\n\r\n")
    after = now_ns()
    time.sleep(0.05)
    sent = arrival.last_sent(client)
    assert sent is not None and before - 1_000_000 <= sent <= after + 1_000_000
    assert arrival.last_sent(client) is None  # drained
    assert peer.recv(64).startswith(b"POST")


def test_the_pooled_connection_check_never_yields() -> None:
    """geventhttpclient's own check yields to the hub (gevent's zero-timeout select), which put
    other greenlets' work between a request's start stamp and its send; ours must not."""
    code = """
import socket, gevent
from gateprobe.load import locustlib
from geventhttpclient.connectionpool import ConnectionPool
a, b = socket.socketpair()
ran = []
gevent.spawn(ran.append, 1)
idle = ConnectionPool._is_socket_alive(None, a)
b.send(b"x")
dirty = ConnectionPool._is_socket_alive(None, a)
print(idle, dirty, ran)
"""
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            timeout=60, check=True)
    assert result.stdout.split("\n")[0] == "True False []"
