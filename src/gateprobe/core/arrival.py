"""When received bytes arrived: the kernel's stamp, in the clock of every measurement.

A load process shares its cores with whatever it measures, and on a virtual machine it also
loses its CPU to the hypervisor now and then (measured here: an idle 1 ms sleep overshoots by
more than 3 ms about once in 130 tries, by up to 20 ms). A stamp taken when ``recv`` returns
includes every such pause, and the pause is ours, not the gateway's. Linux stamps each packet
as it is received (``SO_TIMESTAMPNS``, software receive stamps, every NIC and loopback); that
stamp does not move when our process is late to read, so latencies measured with it are the
gateway's alone.

TCP hands over whatever has arrived, and a read that takes several packets at once carries the
stamp of the last one. A reader that keeps up reads each event on its own; one that falls
behind by more than the gap between two events stamps the earlier one late. That is the load
process's capacity, measured in ``benchmarks/load_accuracy.py``.

TLS hides the stamp: OpenSSL reads the socket itself and drops the ancillary data. For a TLS
socket we therefore first peek at the raw socket (one byte, ``MSG_PEEK``, which waits like a
read within the socket's timeout) and take the stamp of the bytes queued first, then let the
TLS layer read. That is when the first packet of the next record arrived: for an SSE event,
which fits in one packet, the moment it could be read. Two things would make it early: a record
spread over packets that arrive far apart (a record of up to 16 KiB on a slow link), and a
record that carries no data (TLS 1.3 session tickets: servers send them straight after the
handshake, so they are read with the response's headers, and a stamp from before the request
started is refused in any case). Bytes OpenSSL has already decrypted and holds are stamped
when we take them; undecrypted bytes it never holds past a record, because Python leaves its
read-ahead off, so the peek never waits while a whole record sits unread inside OpenSSL.

Linux switches stamping on for the whole system when the first socket asks, a moment later:
packets that arrive in between carry no stamp and get the read time (a sample says so, see
``stamps`` in the load runner's samples).

The kernel stamps in ``CLOCK_REALTIME``; they are moved into ``metrics.now_ns``'s monotonic
clock with the two clocks' offset read at the same moment as the data, so an NTP slew of the
realtime clock during a run does not leak in. Where there is no kernel stamp (other systems, a
stamp that makes no sense) the time ``recv`` returned is used instead.
"""

from __future__ import annotations

import _socket
import socket
import ssl
import struct
import sys
import time
from typing import Any

from gateprobe.core.metrics import now_ns

SO_TIMESTAMPNS: int | None = getattr(socket, "SO_TIMESTAMPNS",
                                     35 if sys.platform.startswith("linux") else None)
_TIMESPEC = struct.Struct("@qq")
_ANCILLARY_SIZE = socket.CMSG_SPACE(_TIMESPEC.size) if hasattr(socket, "CMSG_SPACE") else 0
_MAX_PLAUSIBLE_DELAY_NS = 60 * 1_000_000_000


def enable(sock: Any) -> bool:
    """Ask the kernel to stamp what ``sock`` receives; False where that cannot be used."""
    if SO_TIMESTAMPNS is None or not _ANCILLARY_SIZE or _plain_recvmsg(sock) is None:
        return False
    try:
        sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
    except OSError:
        return False
    return True


def recv(sock: Any, size: int, stamped: bool, not_before_ns: int = 0,
         ) -> tuple[bytes, int, bool]:
    """Up to ``size`` bytes from ``sock``, when they arrived (``now_ns`` clock), and whether
    that time is the kernel's. ``stamped`` says :func:`enable` succeeded for ``sock``; a stamp
    before ``not_before_ns`` (say, the request's start) cannot be these bytes' and is not used.
    """
    if not stamped:
        data = sock.recv(size)
        return data, now_ns(), False
    if _is_tls(sock):
        if sock.pending():  # decrypted already, from bytes read before
            return sock.recv(size), now_ns(), False
        _, ancillary, _, _ = _plain_recvmsg(sock)(sock, 1, _ANCILLARY_SIZE, socket.MSG_PEEK)
        data = sock.recv(size)
    else:
        data, ancillary, _, _ = sock.recvmsg(size, _ANCILLARY_SIZE)
    read_ns = now_ns()
    arrived_ns = _received_stamp(ancillary, read_ns)
    if arrived_ns is None or arrived_ns < not_before_ns:
        return data, read_ns, False
    return data, arrived_ns, True


def _received_stamp(ancillary: list[tuple[int, int, bytes]], read_ns: int) -> int | None:
    """The receive stamp among ``ancillary``, in the ``now_ns`` clock, if it is plausible."""
    offset_ns = time.time_ns() - now_ns()
    for level, kind, payload in ancillary:
        if level == socket.SOL_SOCKET and kind == SO_TIMESTAMPNS \
                and len(payload) >= _TIMESPEC.size:
            seconds, nanoseconds = _TIMESPEC.unpack_from(payload)
            arrived_ns: int = seconds * 1_000_000_000 + nanoseconds - offset_ns
            if 0 <= read_ns - arrived_ns < _MAX_PLAUSIBLE_DELAY_NS:
                return arrived_ns
            # A realtime step between the stamp and now: the read time is the honest bound.
    return None


def _is_tls(sock: Any) -> bool:
    """The standard library's and gevent's TLS sockets (gevent's is no ``ssl.SSLSocket``)."""
    return isinstance(sock, ssl.SSLSocket) or callable(getattr(sock, "pending", None))


def _plain_recvmsg(sock: Any) -> Any:
    """``sock``'s unencrypted ``recvmsg``, unbound: its own for a plain socket, for a TLS
    socket the one of the socket class under it (TLS sockets refuse ``recvmsg``, rightly:
    it would bypass decryption; we only peek with it). None where there is none."""
    for cls in type(sock).__mro__[1 if _is_tls(sock) else 0:]:
        method = cls.__dict__.get("recvmsg")
        if method is not None:
            return method
    return None


SO_TIMESTAMPING: int | None = getattr(socket, "SO_TIMESTAMPING",
                                      37 if sys.platform.startswith("linux") else None)
_TX_FLAGS = (1 << 1) | (1 << 4) | (1 << 11)  # TX_SOFTWARE | SOFTWARE | OPT_TSONLY
_MSG_ERRQUEUE = getattr(socket, "MSG_ERRQUEUE", 0x2000)
_SCM_TIMESTAMPING = SO_TIMESTAMPING


def enable_sent(sock: Any) -> bool:
    """Ask the kernel to stamp each send on ``sock`` as it leaves; False where it cannot."""
    if SO_TIMESTAMPING is None or not _ANCILLARY_SIZE:
        return False
    try:
        sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPING, _TX_FLAGS)
    except OSError:
        return False
    return True


def last_sent(sock: Any) -> int | None:
    """When the latest send on ``sock`` left (``now_ns`` clock), draining the stamps queued
    since the last call; None if there is none. Never blocks."""
    raw = getattr(sock, "_sock", sock)  # gevent wraps the real socket
    latest: int | None = None
    offset_ns = time.time_ns() - now_ns()
    while True:
        try:
            _, ancillary, _, _ = _socket.socket.recvmsg(
                raw, 0, 512, _MSG_ERRQUEUE | socket.MSG_DONTWAIT)
        except (BlockingIOError, InterruptedError):
            return latest
        except OSError:
            return latest
        for level, kind, payload in ancillary:
            if level == socket.SOL_SOCKET and kind == _SCM_TIMESTAMPING \
                    and len(payload) >= _TIMESPEC.size:
                seconds, nanoseconds = _TIMESPEC.unpack_from(payload)
                latest = seconds * 1_000_000_000 + nanoseconds - offset_ns
