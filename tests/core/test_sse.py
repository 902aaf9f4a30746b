"""The SSE decoder, fed exactly as a network would: any split, any line ending."""

from __future__ import annotations

import pytest

from noukai_core._protocol._sse import ServerSentEvent, SSEDecoder

STREAM = (
    b": comment first\n"
    b"event: step_completed\n"
    b'data: {"a":1}\n'
    b"\n"
    b"id: 7\n"
    b"retry: 1500\n"
    b"data: line one\n"
    b"data: line two\n"
    b"\n"
    b"data\n"
    b"\n"
    b"event: only-type\n"
    b"\n"
    b"data:no-space\n"
    b"data:  two-spaces\n"
    b"\n"
    b"data: caf\xc3\xa9\n"
    b"\n"
)
EXPECTED = [
    ServerSentEvent("step_completed", '{"a":1}', None, None),
    ServerSentEvent("", "line one\nline two", "7", 1500),
    ServerSentEvent("", "", "7", None),
    ServerSentEvent("", "no-space\n two-spaces", "7", None),
    ServerSentEvent("", "café", "7", None),
]


def decode(chunks: list[bytes]) -> list[ServerSentEvent]:
    decoder = SSEDecoder()
    return [event for chunk in chunks for event in decoder.feed(chunk)]


@pytest.mark.parametrize("ending", [b"\n", b"\r\n", b"\r"], ids=["LF", "CRLF", "CR"])
def test_every_line_ending_gives_the_same_events(ending: bytes) -> None:
    stream = STREAM.replace(b"\n", ending)
    assert decode([stream]) == EXPECTED


@pytest.mark.parametrize("ending", [b"\n", b"\r\n", b"\r"], ids=["LF", "CRLF", "CR"])
def test_a_stream_split_at_every_byte_gives_the_same_events(ending: bytes) -> None:
    stream = STREAM.replace(b"\n", ending)
    for cut in range(len(stream) + 1):
        assert decode([stream[:cut], stream[cut:]]) == EXPECTED, f"split at byte {cut}"
    assert decode([bytes([b]) for b in stream]) == EXPECTED


def test_crlf_split_between_cr_and_lf_is_one_line_end() -> None:
    assert decode([b"data: x\r", b"\n\r", b"\n"]) == [ServerSentEvent("", "x", None, None)]


def test_unterminated_last_event_is_discarded() -> None:
    assert decode([b"data: done\n\ndata: partial\n"]) == [ServerSentEvent("", "done", None, None)]


def test_id_with_nul_is_ignored_and_ids_persist() -> None:
    events = decode([b"id: a\ndata: 1\n\nid: b\x00c\ndata: 2\n\n"])
    assert [e.id for e in events] == ["a", "a"]


def test_non_digit_retry_is_ignored() -> None:
    assert decode([b"retry: 1x\ndata: 1\n\n"])[0].retry is None


def test_last_event_id_is_readable_for_reconnects() -> None:
    decoder = SSEDecoder()
    decoder.feed(b"id: 42\ndata: x\n\n")
    assert decoder.last_event_id == "42"
