"""Transport failures, named by their symptom: one vocabulary for every runner.

httpx (conformance, compare) and geventhttpclient (Locust) raise different exceptions for the
same event; a finding must say what happened to the connection, not which library noticed.
Classification goes by exception type names and messages so that this base module imports
neither library.
"""

from __future__ import annotations

CONNECT = "transport.connect"
CONNECT_TIMEOUT = "transport.connect_timeout"
FIRST_BYTE_TIMEOUT = "transport.first_byte_timeout"
IDLE_TIMEOUT = "transport.idle_timeout"
STREAM_IDLE_TIMEOUT = "stream.idle_timeout"
TOTAL_TIMEOUT = "transport.total_timeout"
STREAM_TOTAL_TIMEOUT = "stream.total_timeout"
RESET = "transport.reset"
TOO_LARGE = "body.too_large"
OTHER = "transport.error"
SKIPPED = "transport.not_sent"
"""Not sent: earlier requests of the same kind to the same target timed out (a breaker)."""

KINDS = (CONNECT, CONNECT_TIMEOUT, FIRST_BYTE_TIMEOUT, IDLE_TIMEOUT, STREAM_IDLE_TIMEOUT,
         TOTAL_TIMEOUT, STREAM_TOTAL_TIMEOUT, RESET, TOO_LARGE, OTHER, SKIPPED)
"""Every id a transport failure is reported under."""

_RESET_WORDS = ("reset", "disconnected", "peer closed", "connection closed", "broken pipe",
                "incomplete", "without sending", "connection aborted", "eof")


def classify(exc: BaseException, *, got_headers: bool, streaming: bool) -> str:
    """The symptom ``exc`` stands for, given how far the exchange had come."""
    names = {t.__name__ for t in type(exc).__mro__}
    text = str(exc).lower()
    if "ConnectTimeout" in names:
        return CONNECT_TIMEOUT
    if names & {"ReadTimeout", "TimeoutError", "timeout", "Timeout", "PoolTimeout"} \
            or "timed out" in text:
        if not got_headers:
            return FIRST_BYTE_TIMEOUT
        return STREAM_IDLE_TIMEOUT if streaming else IDLE_TIMEOUT
    if names & {"ConnectionResetError", "BrokenPipeError", "RemoteProtocolError",
                "HTTPConnectionClosed", "IncompleteRead", "ConnectionAbortedError"} \
            or any(word in text for word in _RESET_WORDS):
        return RESET
    if "ConnectError" in names or "ConnectionRefusedError" in names or "refused" in text:
        return CONNECT
    return OTHER


def total_timeout(streaming: bool) -> str:
    """The id of a request that outlived its total budget."""
    return STREAM_TOTAL_TIMEOUT if streaming else TOTAL_TIMEOUT
