"""The SSE decoder's fast path (LF frames read whole) and general path (any line end) agree.

Every stream here is checked against `reference_decode`, a plain line-by-line
reading of the same rules written independently of the decoder, over the
whole stream at once. The decoder gets the stream cut into random chunks, so
frames, lines, CRLF pairs and UTF-8 characters are split at random points.
"""

from __future__ import annotations

import itertools
import random
import re
import tracemalloc

import pytest

from noukai_core._protocol._sse import ServerSentEvent, SSEDecoder

_LINE_END = re.compile(rb"\r\n|\r|\n")
BOM = b"\xef\xbb\xbf"


def reference_decode(stream: bytes) -> list[ServerSentEvent]:
    events: list[ServerSentEvent] = []
    stream = stream.removeprefix(BOM)  # WHATWG: one leading BOM is not part of the stream
    event_type, data, has_data = "", [], False
    last_id: str | None = None
    retry: int | None = None
    for raw in _LINE_END.split(stream)[:-1]:  # the last piece has no line end yet
        line = raw.decode("utf-8", "replace")
        if not line:
            if has_data:
                events.append(ServerSentEvent(event_type, "\n".join(data), last_id, retry))
                data, has_data, retry = [], False, None
            event_type = ""
            continue
        if line.startswith(":"):
            continue
        name, colon, value = line.partition(":")
        if colon and value.startswith(" "):
            value = value[1:]
        if name == "data":
            data.append(value)
            has_data = True
        elif name == "event":
            event_type = value
        elif name == "id" and "\x00" not in value:
            last_id = value
        elif name == "retry" and value.isascii() and value.isdigit():
            retry = int(value)
    return events


def decode_in_chunks(stream: bytes, rng: random.Random, pieces: int) -> list[ServerSentEvent]:
    cuts = sorted(rng.randrange(len(stream) + 1) for _ in range(pieces - 1))
    bounds = [0, *cuts, len(stream)]
    decoder = SSEDecoder()
    events: list[ServerSentEvent] = []
    for start, end in itertools.pairwise(bounds):
        events += decoder.feed(stream[start:end])
    return events


# Lines a server might send, the odd ones included: no space after the colon,
# two spaces, fields without a colon, unknown fields, ids with a NUL, bad
# retries, multi-byte and invalid UTF-8, comments, lone blank lines.
_LINES = [
    b"event: step_output",
    b"event:step_completed",
    b"event: ",
    b"event",
    b'data: {"eventType":"step_output","stepId":"s","outputData":"caf\xc3\xa9 \xe2\x82\xac"}',
    b"data:no-space",
    b"data:  two-spaces",
    b"data: ",
    b"data",
    b"data: \xff\xfe broken \xe2\x82",
    b"id: 7",
    b"id: a\x00b",
    b"id",
    b"retry: 1500",
    b"retry: 1x",
    b": keepalive",
    b":",
    b"other: field",
    b"",
]


def _fast_frame(rng: random.Random) -> list[bytes]:
    text = "".join(rng.choice('ab é€"\\{}:') for _ in range(rng.randrange(0, 40)))
    return [b"event: step_output", b"data: " + text.encode(), b""]


def random_stream(rng: random.Random, endings: list[bytes]) -> bytes:
    lines: list[bytes] = []
    for _ in range(rng.randrange(1, 30)):
        if rng.random() < 0.5:
            lines += _fast_frame(rng)
        else:
            lines += [rng.choice(_LINES) for _ in range(rng.randrange(1, 5))] + [b""]
    out = bytearray()
    for line in lines:
        out += line + rng.choice(endings)
    if rng.random() < 0.3:
        out += rng.choice(_LINES)  # an unterminated tail, discarded
    return bytes(out)


@pytest.mark.parametrize(
    "endings",
    [[b"\n"], [b"\r\n"], [b"\r"], [b"\n", b"\r\n", b"\r"]],
    ids=["LF", "CRLF", "CR", "mixed"],
)
def test_random_streams_split_at_random_points_match_the_reference(endings: list[bytes]) -> None:
    rng = random.Random(f"sse-{endings!r}")
    for _ in range(150):
        stream = random_stream(rng, endings)
        expected = reference_decode(stream)
        for pieces in (1, 2, rng.randrange(3, 12), len(stream) or 1):
            got = decode_in_chunks(stream, rng, pieces)
            assert got == expected, f"stream {stream!r} in {pieces} pieces"


def test_a_cr_after_lf_frames_switches_paths_without_losing_the_pending_frame() -> None:
    rng = random.Random("switch")
    for _ in range(150):
        stream = random_stream(rng, [b"\n"]) + random_stream(rng, [b"\r\n", b"\r", b"\n"])
        expected = reference_decode(stream)
        for pieces in (2, rng.randrange(3, 12)):
            assert decode_in_chunks(stream, rng, pieces) == expected, f"stream {stream!r}"


def test_a_long_unfinished_frame_is_read_line_by_line() -> None:
    # Thousands of comment lines with no blank line between two data lines: the
    # decoder folds the unfinished frame's lines as they come, and the event is intact.
    stream = b"event: x\ndata: 1\n" + b": keepalive\n" * 20_000 + b"data: 2\n\n" + b"data: 3\n\n"
    expected = [
        ServerSentEvent("x", "1\n2", None, None),
        ServerSentEvent("", "3", None, None),
    ]
    assert reference_decode(stream) == expected
    rng = random.Random("long")
    for pieces in (1, 7, 300, 5_000):
        assert decode_in_chunks(stream, rng, pieces) == expected


def test_a_fast_shape_frame_larger_than_the_buffer_limit_arrives_in_small_chunks() -> None:
    # Past the limit the frame's lines are folded and its one long data line
    # is carried over as a partial line: same event as when read in one piece.
    payload = b'{"eventType":"step_output","stepId":"s","outputData":"' + b"x\xc3\xa9" * 100_000
    stream = b"event: step_output\ndata: " + payload + b'"}\n\n' + b"event: a\ndata: 2\n\n"
    expected = reference_decode(stream)
    assert len(expected) == 2 and len(expected[0].data) == len(payload.decode()) + 2
    decoder = SSEDecoder()
    events: list[ServerSentEvent] = []
    for start in range(0, len(stream), 4093):
        events += decoder.feed(stream[start : start + 4093])
    assert events == expected


@pytest.mark.parametrize("first", [b"", b"event: step_output\n"], ids=["comments", "typed"])
def test_memory_stays_flat_over_a_long_frame_that_never_ends(first: bytes) -> None:
    decoder = SSEDecoder()
    decoder.feed(first)
    chunk = b": keepalive with no blank line\n" * 2_000  # ~62 KB
    tracemalloc.start()
    try:
        for _ in range(40):  # ~2.5 MB in all
            assert decoder.feed(chunk) == []
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 1_000_000, f"the decoder held {peak} bytes"


def decode_frame_by_frame(stream: bytes) -> list[ServerSentEvent]:
    """One chunk per frame (cut after every blank line), as SSE servers send them."""
    decoder = SSEDecoder()
    events: list[ServerSentEvent] = []
    start = 0
    for match in re.finditer(rb"(?:\r\n|\r|\n)(?:\r\n|\r|\n)", stream):
        events += decoder.feed(stream[start : match.end()])
        start = match.end()
    return events + decoder.feed(stream[start:])


@pytest.mark.parametrize(
    "endings",
    [[b"\n"], [b"\r\n"], [b"\n", b"\r\n", b"\r"]],
    ids=["LF", "CRLF", "mixed"],
)
def test_streams_fed_one_frame_per_chunk_match_the_reference(endings: list[bytes]) -> None:
    # The shape the one-frame-chunk path reads inline, and every near miss of
    # it (a CR inside, a second data line, an id, a comment) next to it.
    rng = random.Random(f"frames-{endings!r}")
    for _ in range(300):
        stream = random_stream(rng, endings)
        assert decode_frame_by_frame(stream) == reference_decode(stream), f"stream {stream!r}"


def test_a_one_frame_chunk_carries_the_last_id_and_a_pending_retry() -> None:
    decoder = SSEDecoder()
    assert decoder.feed(b"id: 7\nretry: 250\n\n") == []  # no data: not dispatched
    assert decoder.feed(b"event: a\ndata: 1\n\n") == [ServerSentEvent("a", "1", "7", 250)]
    assert decoder.feed(b"event: b\ndata: 2\n\n") == [ServerSentEvent("b", "2", "7", None)]
    # Mid-frame (a `data` line folded, nothing buffered), the next chunk is not a frame start.
    assert decoder.feed(b"data: x\n") == []
    assert decoder.feed(b"event: c\ndata: 3\n\n") == [ServerSentEvent("c", "x\n3", "7", None)]


@pytest.mark.parametrize("ending", [b"\n", b"\r\n"], ids=["LF", "CRLF"])
def test_a_byte_order_mark_opening_the_stream_is_skipped_wherever_it_is_split(
    ending: bytes,
) -> None:
    # WHATWG decodes the stream with "UTF-8 decode", which drops one leading
    # BOM: the first line is then `event: ...`, not an unknown field.
    stream = BOM + b"event: run_started" + ending + b"data: {}" + ending + ending
    stream += BOM + b"event: late" + ending + b"data: 1" + ending + ending  # not at the start
    expected = [
        ServerSentEvent("run_started", "{}", None, None),
        ServerSentEvent("", "1", None, None),  # a BOM later on is an unknown field name
    ]
    assert reference_decode(stream) == expected
    for cut in range(len(stream) + 1):
        decoder = SSEDecoder()
        assert decoder.feed(stream[:cut]) + decoder.feed(stream[cut:]) == expected, cut
    decoder = SSEDecoder()
    assert [e for i in range(len(stream)) for e in decoder.feed(stream[i : i + 1])] == expected


def test_a_stream_opening_with_part_of_a_byte_order_mark_keeps_those_bytes() -> None:
    stream = b"\xef\xbbdata: 1\n\n" + b"data: 2\n\n"
    expected = reference_decode(stream)
    assert [e.data for e in expected] == ["2"]  # the first line's name is not `data`
    for cut in range(len(stream) + 1):
        decoder = SSEDecoder()
        assert decoder.feed(stream[:cut]) + decoder.feed(stream[cut:]) == expected, cut
