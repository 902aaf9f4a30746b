"""An incremental Server-Sent Events decoder (WHATWG "event stream interpretation").

Feed it byte chunks exactly as they arrive; it returns the complete events
they finish. Rules kept:

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
- at end of stream an unterminated event is discarded (contract §6.1 rule 5);
- one UTF-8 BOM opening the stream is skipped, even split across chunks.

Two paths, one behaviour. While the stream has shown no CR, the decoder works
on whole frames: it reads the frame shape every Noukai server sends (one
`event: ` line, one `data: ` line, a blank line) with two `bytes.find` calls
and two slices, building no per-line strings (the fast path). Any other
frame of an LF stream goes line by line through the general path's `_line`.
The first CR seen switches the decoder to the general path for the rest of
the stream: it splits lines on LF, CRLF and CR. In front of both, a chunk
that is exactly one fast-shape frame, arriving between frames, is read
inline in `feed`: servers send one HTTP chunk per event, so this is the
per-event path of a real stream, and every call and buffer it skips is
paid once per event. tests/core/test_sse_paths.py
checks both paths against a plain reference decoder on random streams split
at random points.

Memory and work stay linear: on the fast path the buffer holds an unfinished
frame only while it can still be the fast shape (an `event:` line and at most
one more) and is under `_MAX_BUFFERED_FRAME`; any other unfinished frame has
its complete lines folded into the pending event at once, as the general path
does, leaving one partial line.
"""

from __future__ import annotations

from typing import NamedTuple


class ServerSentEvent(NamedTuple):
    """One dispatched event. A NamedTuple: built per frame, so construction must be cheap."""

    event: str
    data: str
    id: str | None
    retry: int | None


# `ServerSentEvent(...)` goes through a generated Python `__new__`; building the
# tuple directly is the same object for a third of the cost, paid once per frame.
_new_event = tuple.__new__

_BOM = b"\xef\xbb\xbf"

# An unfinished fast-shape frame is kept whole up to this size; past it, its
# lines are folded like any other frame's, so a huge frame arriving in small
# chunks is not rescanned from its start on every chunk.
_MAX_BUFFERED_FRAME = 64 * 1024


def _frame_end(data: bytes | bytearray, pos: int) -> int:
    """Where the frame starting at `pos` ends: the LF before the blank line, or -1.

    Equal to `data.find(b"\\n\\n", pos)`, done with memchr-backed one-byte finds.
    """
    find = data.find
    size = len(data)
    while (nl := find(b"\n", pos)) != -1 and nl + 1 < size:
        if data[nl + 1] == 10:
            return nl
        pos = nl + 1
    return -1


class SSEDecoder:
    def __init__(self) -> None:
        # Fast path: the bytes of the unfinished frame (or of the unfinished
        # line, when `_mid_frame`). General path: the unfinished line.
        self._buffer = bytearray()
        self._lf_only = True
        # Fast path only: some lines of the current frame were already folded
        # into the pending fields below, so the buffer does not start a frame.
        self._mid_frame = False
        # `_lf_only`, nothing buffered and not `_mid_frame`: the decoder stands
        # between two frames of an LF stream. One flag, kept by `feed`, so the
        # one-frame-chunk check reads one attribute, not three. False until the
        # stream's first bytes are past `_skip_bom`.
        self._between_frames = False
        # The stream's opening bytes while they may still be a split UTF-8 BOM.
        self._opening: bytes | None = b""
        self._pending_cr = False
        self._event = ""
        self._data: list[str] = []
        self._has_data = False
        self._retry: int | None = None
        self.last_event_id: str | None = None

    def feed(self, chunk: bytes) -> list[ServerSentEvent]:
        """Consume `chunk`; return the events it completed, in order."""
        if (
            self._between_frames
            and chunk.startswith(b"event: ")
            and chunk[-1] == 10  # b"\n\n": the chunk ends a frame
            and chunk[-2] == 10
        ):
            # One whole fast-shape frame and nothing else: what an SSE server
            # sends as one HTTP chunk per event. Read inline, with no buffer,
            # no helper call and no scan beyond the two line ends.
            nl = chunk.find(b"\n", 7)
            end = len(chunk) - 2
            if (
                chunk.startswith(b"data: ", nl + 1)
                and chunk.find(b"\n", nl + 7) == end
                and 13 not in chunk  # b"\r": an int is found by memchr, a bytes needle is not
            ):
                retry, self._retry = self._retry, None
                return [
                    _new_event(
                        ServerSentEvent,
                        (
                            chunk[7:nl].decode("utf-8", "replace"),
                            chunk[nl + 7 : end].decode("utf-8", "replace"),
                            self.last_event_id,
                            retry,
                        ),
                    )
                ]
        events: list[ServerSentEvent] = []
        if self._opening is not None:
            chunk = self._skip_bom(chunk)
        if not chunk:
            return events
        if self._lf_only:
            if 13 not in chunk:  # b"\r"
                self._feed_lf(chunk, events)
                self._between_frames = not self._buffer and not self._mid_frame
                return events
            # The buffer holds either a frame's start (no pending fields) or
            # one partial line after folded ones: both are exactly the general
            # path's state, so switching needs no conversion.
            self._lf_only = False
            self._between_frames = False
            self._mid_frame = False
            return self._feed_general(chunk, events, 0)  # the buffer may hold whole lines
        # The general path's buffer is one partial line: no CR or LF in it.
        return self._feed_general(chunk, events, len(self._buffer))

    def _skip_bom(self, chunk: bytes) -> bytes:
        """The stream's opening bytes without a leading UTF-8 BOM, however it is split.

        WHATWG decodes an event stream with "UTF-8 decode", which drops one
        BOM at its start (and only there): kept, it would turn the first
        line's field name into an unknown one. Bytes that may still be the
        start of a BOM are held until they are known not to be.
        """
        assert self._opening is not None
        seen = self._opening + chunk
        if len(seen) < len(_BOM) and _BOM.startswith(seen):
            self._opening = seen
            return b""
        self._opening = None
        return seen[len(_BOM) :] if seen.startswith(_BOM) else seen

    def _feed_lf(self, chunk: bytes, events: list[ServerSentEvent]) -> list[ServerSentEvent]:
        """LF-only framing: whole frames found with `find`, the common shape read inline."""
        data: bytes | bytearray
        # Mid-frame, the buffer is one partial line: no LF in it, so the search
        # for its end starts at the new bytes (a long line costs linear time).
        clean = 0
        if self._buffer:
            clean = len(self._buffer) if self._mid_frame else 0
            self._buffer += chunk
            data = self._buffer
        else:
            data = chunk  # no copy when the last chunk ended on a frame boundary
        pos = 0
        size = len(data)
        find = data.find
        while True:
            if self._mid_frame:
                pos = self._fold_lines(data, pos, clean, events)
                if self._mid_frame:
                    break
            pos = self._fast_frames(data, pos, events)
            end = _frame_end(data, pos)
            if end == -1:
                # An unfinished frame stays buffered whole only while it is small
                # and can still be the fast shape; otherwise its complete lines
                # are folded now, so the buffer holds at most one partial line
                # beyond that and no byte is scanned more than a bounded number
                # of times, however slowly a long frame arrives.
                if find(b"\n", pos) != -1 and not (
                    size - pos <= _MAX_BUFFERED_FRAME
                    and data.startswith(b"event: ", pos)
                    and data.count(b"\n", pos) <= 2
                ):
                    self._mid_frame = True
                    continue
                break
            if data[pos] == 58 and find(b"\n", pos, end) == -1:  # b":", a lone comment
                pos = end + 2
                continue
            for line in data[pos:end].decode("utf-8", "replace").split("\n"):
                event = self._line(line)
                if event is not None:
                    events.append(event)
            event = self._dispatch()
            if event is not None:
                events.append(event)
            pos = end + 2
        if pos >= size:
            self._buffer = bytearray()
        elif data is self._buffer:
            del self._buffer[:pos]
        else:
            self._buffer = bytearray(data[pos:])
        return events

    def _fast_frames(self, data: bytes | bytearray, pos: int, events: list[ServerSentEvent]) -> int:
        """Read the fast-shape frames from `pos` on; return where the first other one starts.

        The shape: `event: <type>`, `data: <payload>`, a blank line. Such a
        frame sets no id, so the last event id is read once; a `retry` left
        pending by an earlier data-less frame goes with the first one only.
        Single-byte finds only: CPython's `find(b"\\n\\n")` is several times
        slower than its memchr-backed `find(b"\\n")`.
        """
        find = data.find
        startswith = data.startswith
        append = events.append
        size = len(data)
        last_id = self.last_event_id
        retry = self._retry
        while startswith(b"event: ", pos):
            nl = find(b"\n", pos + 7)
            if nl == -1 or not startswith(b"data: ", nl + 1):
                break
            end = find(b"\n", nl + 7)
            if end == -1 or end + 1 >= size or data[end + 1] != 10:  # 10: b"\n", the blank line
                break
            append(
                _new_event(
                    ServerSentEvent,
                    (
                        data[pos + 7 : nl].decode("utf-8", "replace"),
                        data[nl + 7 : end].decode("utf-8", "replace"),
                        last_id,
                        retry,
                    ),
                )
            )
            retry = None
            pos = end + 2
        self._retry = retry
        return pos

    def _fold_lines(
        self, data: bytes | bytearray, pos: int, clean: int, events: list[ServerSentEvent]
    ) -> int:
        """Mid-frame: read complete lines until a blank one ends the frame; return the new pos.

        `data[pos:clean]` is known to hold no LF (the partial line carried over).
        """
        nl = data.find(b"\n", max(pos, clean))
        while nl != -1:
            line = data[pos:nl].decode("utf-8", "replace")
            pos = nl + 1
            event = self._line(line)
            if not line:
                self._mid_frame = False
                if event is not None:
                    events.append(event)
                break
            nl = data.find(b"\n", pos)
        return pos

    def _feed_general(
        self, chunk: bytes, events: list[ServerSentEvent], clean: int
    ) -> list[ServerSentEvent]:
        """Any line endings, including a CR at a chunk's end whose LF comes next.

        `self._buffer[:clean]` is known to hold no line end, so the searches
        start after it: a long line arriving in small chunks costs linear time.
        """
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
        lf = buf.find(b"\n", clean)
        cr = buf.find(b"\r", clean)
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
        event: ServerSentEvent = _new_event(
            ServerSentEvent,
            (self._event, "\n".join(self._data), self.last_event_id, self._retry),
        )
        self._event = ""
        self._data = []
        self._has_data = False
        self._retry = None
        return event
