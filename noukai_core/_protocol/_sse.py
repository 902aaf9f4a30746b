"""An incremental Server-Sent Events decoder (WHATWG "event stream interpretation").

Feed it byte chunks exactly as they arrive; it returns the complete events
they finish. It holds at most one partial line and one pending event, so
memory stays flat however long the stream. Rules kept:

- lines end with LF, CRLF or CR; a CR at the end of one chunk and an LF at the
  start of the next are one line end, not two (hence `_pending_cr`);
- bytes are decoded as UTF-8 per line, so a multi-byte character split across
  chunks is never mangled;
- `:` lines are comments; a field without a colon is a field with an empty
  value; one leading space after the colon is stripped;
- `data` lines join with "\n"; `event` sets the type; `id` (unless it holds a
  NUL) sets the last event id, which persists across events; `retry` takes
  only ASCII digits;
- a blank line dispatches; an event with no data is not dispatched;
- at end of stream an unterminated event is discarded (contract §6.1 rule 5).
"""

from __future__ import annotations

from typing import NamedTuple


class ServerSentEvent(NamedTuple):
    """One dispatched event. A NamedTuple: built per frame, so construction must be cheap."""

    event: str
    data: str
    id: str | None
    retry: int | None


class SSEDecoder:
    def __init__(self) -> None:
        self._buffer = bytearray()
        self._pending_cr = False
        self._event = ""
        self._data: list[str] = []
        self._has_data = False
        self._retry: int | None = None
        self.last_event_id: str | None = None

    def feed(self, chunk: bytes) -> list[ServerSentEvent]:
        """Consume `chunk`; return the events it completed, in order."""
        events: list[ServerSentEvent] = []
        if not chunk:
            return events
        if not self._pending_cr and b"\r" not in chunk:
            return self._feed_lf(chunk, events)
        return self._feed_general(chunk, events)

    def _feed_general(self, chunk: bytes, events: list[ServerSentEvent]) -> list[ServerSentEvent]:
        """Any line endings, including a CR at a chunk's end whose LF comes next."""
        start = 0
        if self._pending_cr:
            self._pending_cr = False
            if chunk[:1] == b"\n":
                start = 1
        self._buffer += chunk[start:] if start else chunk
        buf = self._buffer
        pos = 0
        length = len(buf)
        # Each search result is reused until `pos` passes it, so a chunk of many
        # lines costs one scan per terminator kind, not one scan per line.
        lf = buf.find(b"\n")
        cr = buf.find(b"\r")
        while pos < length:
            if lf != -1 and lf < pos:
                lf = buf.find(b"\n", pos)
            if cr != -1 and cr < pos:
                cr = buf.find(b"\r", pos)
            if lf == -1 and cr == -1:
                break
            if cr == -1 or (lf != -1 and lf < cr):
                end, after = lf, lf + 1
            elif cr == length - 1:
                # A lone CR at the end: the line has ended, but an LF may follow
                # in the next chunk and must not count as a second (blank) line.
                end, after = cr, cr + 1
                self._pending_cr = True
            else:
                end = cr
                after = cr + 2 if buf[cr + 1 : cr + 2] == b"\n" else cr + 1
            event = self._line(buf[pos:end].decode("utf-8", "replace"))
            if event is not None:
                events.append(event)
            pos = after
        del buf[:pos]
        return events

    def _feed_lf(self, chunk: bytes, events: list[ServerSentEvent]) -> list[ServerSentEvent]:
        """The common case, LF-only framing: split in C, decode once, inline the hot fields."""
        if self._buffer:
            if b"\r" in self._buffer:
                return self._feed_general(chunk, events)
            chunk = bytes(self._buffer) + chunk
        end = chunk.rfind(b"\n")
        if end == -1:
            self._buffer = bytearray(chunk)
            return events
        self._buffer = bytearray(chunk[end + 1 :])
        for line in chunk[:end].decode("utf-8", "replace").split("\n"):
            # One slice per line: payloads can be large, and each slice is a copy.
            if line.startswith("data:"):
                self._data.append(line[6:] if line.startswith("data: ") else line[5:])
                self._has_data = True
            elif line.startswith("event:"):
                self._event = line[7:] if line.startswith("event: ") else line[6:]
            elif not line:
                event = self._dispatch()
                if event is not None:
                    events.append(event)
            else:
                self._line(line)
        return events

    def _line(self, line: str) -> ServerSentEvent | None:
        if not line:
            return self._dispatch()
        if line.startswith(":"):
            return None
        name, sep, value = line.partition(":")
        if sep and value.startswith(" "):
            value = value[1:]
        if name == "data":
            self._data.append(value)
            self._has_data = True
        elif name == "event":
            self._event = value
        elif name == "id":
            if "\x00" not in value:
                self.last_event_id = value
        elif name == "retry" and value.isascii() and value.isdigit():
            self._retry = int(value)
        return None

    def _dispatch(self) -> ServerSentEvent | None:
        if not self._has_data:
            self._event = ""
            return None
        event = ServerSentEvent(
            event=self._event,
            data="\n".join(self._data),
            id=self.last_event_id,
            retry=self._retry,
        )
        self._event = ""
        self._data = []
        self._has_data = False
        self._retry = None
        return event
