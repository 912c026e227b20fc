"""The project's one Server-Sent-Events parser: push-style, over bytes, with arrival times.

It follows the WHATWG HTML standard, section 9.2.6 "Interpreting an event stream", and is a
validator as much as a parser: where a stream does something a strict reader copes with but a
lenient client (the official SDKs) would get wrong, it records a ``Note`` instead of silently
repairing it. It does no I/O and reads no clock: the caller passes the monotonic time each chunk
arrived, and every event is stamped with the arrival time of its first field line.

Usage::

    parser = SSEParser()
    for chunk in response.iter_raw():
        for event in parser.feed(chunk, time.perf_counter_ns()):
            ...
    parser.finish()          # notes an incomplete trailing event
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

BOM = b"\xef\xbb\xbf"
_LINE_END = re.compile(rb"\r\n|\r|\n")


@dataclass(frozen=True, slots=True)
class Event:
    """One dispatched event."""

    type: str
    """The ``event:`` name, ``message`` when none was given."""
    data: str
    """The ``data:`` lines joined with ``\\n``."""
    last_event_id: str
    t_ns: int
    """Monotonic time at which the first byte of the event's first field line arrived."""


@dataclass(frozen=True, slots=True)
class Note:
    """A deviation a strict reader tolerates but a client may not.

    ``rule`` is a stable id: ``sse.bom``, ``sse.invalid_utf8``, ``sse.unknown_field``,
    ``sse.event_without_data``, ``sse.empty_data``, ``sse.incomplete_event``.
    """

    rule: str
    detail: str
    t_ns: int


@dataclass(slots=True)
class SSEParser:
    """Incremental event-stream interpreter. Feed bytes as they arrive; collect events."""

    notes: list[Note] = field(default_factory=list)
    last_event_id: str = ""
    retry_ms: int | None = None
    _head: bytes = b""
    _bom_checked: bool = False
    _skip_lf: bool = False
    _line: bytearray = field(default_factory=bytearray)
    _line_t: int = 0
    _event_t: int | None = None
    _data: list[str] = field(default_factory=list)
    _type: str = ""
    _has_data: bool = False

    def feed(self, chunk: bytes, t_ns: int) -> list[Event]:
        """Parse ``chunk`` (which arrived at ``t_ns``) and return the events it completed."""
        out: list[Event] = []
        if not self._bom_checked:
            # "One leading U+FEFF BYTE ORDER MARK character must be ignored if any are present."
            self._head += chunk
            if len(self._head) < len(BOM) and BOM.startswith(self._head):
                return out
            chunk, self._head, self._bom_checked = self._head, b"", True
            if chunk.startswith(BOM):
                chunk = chunk[len(BOM):]
                self.notes.append(Note("sse.bom", "stream starts with a UTF-8 BOM", t_ns))
        if self._skip_lf and chunk:
            # A CR ended the previous read; an LF opening this one belongs to the same CRLF.
            if chunk[:1] == b"\n":
                chunk = chunk[1:]
            self._skip_lf = False
        pos = 0
        for match in _LINE_END.finditer(chunk):
            if self._line:
                self._line += chunk[pos:match.start()]
                line, start = bytes(self._line), self._line_t
                self._line.clear()
            else:
                line, start = chunk[pos:match.start()], t_ns
            self._process(line, start, out)
            pos = match.end()
            if match.end() == len(chunk) and match.group() == b"\r":
                self._skip_lf = True
        if pos < len(chunk):
            if not self._line:
                self._line_t = t_ns
            self._line += chunk[pos:]
        return out

    def finish(self) -> list[Event]:
        """Signal end of stream. An event without its closing blank line is discarded (spec)."""
        if self._head and not self._bom_checked:
            self._bom_checked = True
            self._line += self._head
        pending = bool(self._line) or self._has_data or bool(self._type)
        if pending:
            self.notes.append(
                Note("sse.incomplete_event", "stream ended without a blank line after the last "
                     "event; a conformant client discards that event", self._event_t or 0)
            )
        self._line.clear()
        self._reset_event()
        return []

    def _process(self, raw: bytes, t_ns: int, out: list[Event]) -> None:
        try:
            line = raw.decode("utf-8")
        except UnicodeDecodeError:
            # "Decode as UTF-8 ... with replacement": U+FFFD for each invalid sequence.
            line = raw.decode("utf-8", "replace")
            self.notes.append(Note("sse.invalid_utf8", f"invalid UTF-8 in line {line[:80]!r}",
                                   t_ns))
        if not line:
            self._dispatch(out, t_ns)
            return
        if line[0] == ":":
            return  # comment: keep-alive, no effect on the event
        name, colon, value = line.partition(":")
        if colon and value[:1] == " ":
            value = value[1:]  # "If value starts with a U+0020 SPACE character, remove it"
        if self._event_t is None:
            self._event_t = t_ns
        if name == "data":
            self._data.append(value)
            self._has_data = True
        elif name == "event":
            self._type = value
        elif name == "id":
            if "\x00" not in value:  # an id containing NULL is ignored
                self.last_event_id = value
        elif name == "retry":
            if value.isascii() and value.isdigit():
                self.retry_ms = int(value)
        else:
            self.notes.append(Note("sse.unknown_field", f"unknown field {name[:40]!r} ignored",
                                   t_ns))

    def _dispatch(self, out: list[Event], t_ns: int) -> None:
        if not self._has_data:
            # "If the data buffer is an empty string, set the data buffer and the event type
            # buffer to the empty string and return." Lenient clients emit such events anyway.
            if self._type:
                self.notes.append(Note("sse.event_without_data",
                                       f"event {self._type!r} has no data line", t_ns))
            self._reset_event()
            return
        data = "\n".join(self._data)
        if data == "":
            self.notes.append(Note("sse.empty_data", "event with an empty data field", t_ns))
        out.append(Event(self._type or "message", data, self.last_event_id,
                         self._event_t if self._event_t is not None else t_ns))
        self._reset_event()

    def _reset_event(self) -> None:
        self._data = []
        self._type = ""
        self._has_data = False
        self._event_t = None


def parse_all(body: bytes, t_ns: int = 0) -> tuple[list[Event], list[Note]]:
    """Parse a complete stream held in memory (tests, recorded fixtures)."""
    parser = SSEParser()
    events = parser.feed(body, t_ns)
    parser.finish()
    return events, parser.notes
