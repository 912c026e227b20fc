"""``gateprobe.core.arrival``: the kernel's stamps of bytes received and sent, moved into the clock
of every measurement, and the fallbacks where there are none."""

from __future__ import annotations

import socket
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator

import pytest
import trustme

from gateprobe.core import arrival
from gateprobe.core.metrics import now_ns

linux_only = pytest.mark.skipif(arrival.SO_TIMESTAMPNS is None, reason="Linux socket stamps")


@pytest.fixture(scope="module", autouse=True)
def stamping_switched_on() -> Iterator[None]:
    """Linux switches receive stamping on for the whole system when the first socket asks,
    and does so a moment later (a deferred static-key flip): packets in between carry no
    stamp, and a reader rightly falls back to the read time. The tests measure the stamped
    path, so one socket asks first and stays open until they are done."""
    if arrival.SO_TIMESTAMPNS is None:
        yield
        return
    with socket.create_server(("127.0.0.1", 0)) as server, \
            socket.create_connection(server.getsockname()) as client:
        peer, _ = server.accept()
        with peer:
            assert arrival.enable(client)
            deadline = time.monotonic() + 5
            while time.monotonic() < deadline:
                peer.sendall(b"x")
                if arrival.recv(client, 64, stamped=True)[2]:
                    break
                time.sleep(0.01)
            yield


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


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


def tls_pair(ca: trustme.CA, client_context: ssl.SSLContext,
             connect: Callable[[tuple[str, int]], socket.socket],
             ) -> tuple[ssl.SSLSocket, ssl.SSLSocket]:
    """A TLS connection on loopback: (client, server side), handshake done, and the session
    tickets a TLS 1.3 server sends after it already read, as an HTTP client reads them with
    the response's headers."""
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(server_context)
    ca.configure_trust(client_context)
    accepted: list[ssl.SSLSocket] = []
    with socket.create_server(("127.0.0.1", 0)) as listener:
        def accept() -> None:
            conn, _ = listener.accept()
            accepted.append(server_context.wrap_socket(conn, server_side=True))
        thread = threading.Thread(target=accept)
        thread.start()
        client = client_context.wrap_socket(connect(listener.getsockname()),
                                            server_hostname="127.0.0.1")
        thread.join(10)
    server = accepted[0]
    server.sendall(b"HTTP/1.1 200 OK\r\n\r\n")
    assert client.recv(64).startswith(b"HTTP/1.1")
    return client, server


def stdlib_tls(ca: trustme.CA) -> tuple[ssl.SSLSocket, ssl.SSLSocket]:
    return tls_pair(ca, ssl.create_default_context(), socket.create_connection)


def gevent_tls(ca: trustme.CA) -> tuple[ssl.SSLSocket, ssl.SSLSocket]:
    """gevent's TLS socket (what the load runner reads from) is no ``ssl.SSLSocket``."""
    import gevent.socket
    import gevent.ssl
    return tls_pair(ca, gevent.ssl.create_default_context(), gevent.socket.create_connection)


@linux_only
@pytest.mark.parametrize("make", [stdlib_tls, gevent_tls], ids=["stdlib", "gevent"])
def test_tls_reads_carry_the_kernels_arrival_time(
        ca: trustme.CA, make: Callable[[trustme.CA], tuple[ssl.SSLSocket, ssl.SSLSocket]],
        ) -> None:
    client, server = make(ca)
    with client, server:
        assert arrival.enable(client)
        start = now_ns()
        before = now_ns()
        server.sendall(b"data: 1\n\n")
        after = now_ns()
        time.sleep(0.05)  # we read late; the stamp must not move with us
        data, t_ns, by_kernel = arrival.recv(client, 4096, True, not_before_ns=start)
        read = now_ns()
        assert data == b"data: 1\n\n" and by_kernel
        assert before - 1_000_000 <= t_ns <= after + 1_000_000
        assert read - t_ns >= 40_000_000
        # Two events in one read: decrypted together, stamped by the first one's packet.
        server.sendall(b"data: 2\n\n")
        server.sendall(b"data: 3\n\n")
        time.sleep(0.05)
        data, t_ns, by_kernel = arrival.recv(client, 4096, True, not_before_ns=start)
        assert data.startswith(b"data: 2\n\n") and by_kernel and now_ns() - t_ns >= 40_000_000
        server.sendall(b"\n")  # sent, and still stamped in the kernel
        assert arrival.enable_sent(client)
        client.sendall(b"x")
        time.sleep(0.01)
        assert arrival.last_sent(client) is not None


@linux_only
def test_a_stamp_from_before_the_request_is_not_taken(
        pair: tuple[socket.socket, socket.socket]) -> None:
    """A TLS record without data (a session ticket) queued before the request would lend its
    stamp to the answer read with it: a stamp older than the request is refused."""
    client, peer = pair
    assert arrival.enable(client)
    peer.sendall(b"data: 1\n\n")
    time.sleep(0.02)
    start = now_ns()
    data, t_ns, by_kernel = arrival.recv(client, 4096, True, not_before_ns=start)
    assert data == b"data: 1\n\n" and not by_kernel and t_ns >= start


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


@pytest.mark.slow
def test_the_pooled_connection_check_never_yields() -> None:
    """geventhttpclient's own check yields to the hub (gevent's zero-timeout select), which put
    other greenlets' work between a request's start stamp and its send; ours must not."""
    code = """
import socket, gevent
from gateprobe.commands.load import locustlib
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
