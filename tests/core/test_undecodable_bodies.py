"""A body whose Content-Encoding cannot be undone is a typed error, never an httpx one.

httpx reports such a body as `httpx.DecodingError`, which is not an
`httpx.TransportError`: a transport that only translates the latter lets a
raw httpx exception reach the caller. Each test here has a real server send
a corrupt gzip body where a response body is read: a JSON answer, an error
answer to a stream, and a stream (before and after its terminal frame).
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
from chunked_server import ChunkedStreamServer, StreamPlan
from misbehaving_server import Conn, ScriptedServer, SeenRequest

import noukai_core as nk

Frame = Callable[..., bytes]
KEY = "nk_undecodable_secret"
# Not a valid continuation of a deflate stream: a stored block whose length
# and its complement disagree, so zlib fails at once.
GARBAGE = b"\x00not deflate data\xff" * 4


def corrupt_gzip_answer(status: int) -> Callable[[SeenRequest, Conn], None]:
    def responder(request: SeenRequest, conn: Conn) -> None:
        conn.send(
            b"HTTP/1.1 %d X\r\ncontent-type: application/json\r\ncontent-encoding: gzip\r\n"
            b"x-request-id: req_gz\r\ncontent-length: %d\r\nconnection: close\r\n\r\n%s"
            % (status, len(GARBAGE), GARBAGE)
        )

    return responder


@pytest.mark.parametrize("status", [200, 500])
def test_a_corrupt_gzip_json_answer_is_a_typed_connection_error(
    scripted_server: ScriptedServer, status: int
) -> None:
    scripted_server.responders = corrupt_gzip_answer(status)
    with (
        nk.Noukai(api_key=KEY, base_url=scripted_server.base_url, max_retries=0) as client,
        pytest.raises(nk.APIConnectionError) as info,
    ):
        client.flow("o/p/f").execute("hi")
    assert info.value.code == "CONNECTION_ERROR"
    assert "DecodingError" in str(info.value)


@pytest.mark.parametrize("status", [200, 500])
async def test_a_corrupt_gzip_json_answer_is_a_typed_connection_error_async(
    scripted_server: ScriptedServer, status: int
) -> None:
    scripted_server.responders = corrupt_gzip_answer(status)
    async with nk.AsyncNoukai(
        api_key=KEY, base_url=scripted_server.base_url, max_retries=0
    ) as client:
        with pytest.raises(nk.APIConnectionError) as info:
            await client.flow("o/p/f").execute("hi")
    assert info.value.code == "CONNECTION_ERROR"


@pytest.mark.parametrize("status", [200, 500])
def test_a_stream_refused_with_a_corrupt_gzip_body_is_a_typed_error(
    scripted_server: ScriptedServer, status: int
) -> None:
    # 200: the stream's first read fails; 500: reading the error body fails.
    scripted_server.responders = corrupt_gzip_answer(status)
    with (
        nk.Noukai(api_key=KEY, base_url=scripted_server.base_url, max_retries=0) as client,
        pytest.raises(nk.APIConnectionError),
    ):
        list(client.flow("o/p/f").events(message="hi"))
    assert len(scripted_server.posts("/step")) == 1  # a stream is never re-sent


def opening_frames(frame: Frame) -> list[bytes]:
    return [
        frame("run_started", executionId="E", runId="E", stepCount=1),
        frame("step_started", executionId="E", stepId="a", stepIndex=0),
    ]


def test_a_stream_turning_corrupt_mid_run_raises_a_typed_error_after_its_events(
    chunked_server: ChunkedStreamServer, frame: Frame
) -> None:
    chunked_server.plans = [StreamPlan(opening_frames(frame), gzip=True, garbage=GARBAGE)]
    seen: list[str] = []
    with (
        nk.Noukai(api_key=KEY, base_url=chunked_server.base_url) as client,
        pytest.raises(nk.APIConnectionError) as info,
    ):
        for event in client.flow("o/p/f").events(message="hi"):
            seen.append(event.type)
    assert seen == ["run_started", "step_started"]
    assert info.value.code == "STREAM_INTERRUPTED"
    assert info.value.request_id == "req_chunked"
    assert len(chunked_server.requests) == 1


async def test_a_stream_turning_corrupt_mid_run_raises_a_typed_error_async(
    chunked_server: ChunkedStreamServer, frame: Frame
) -> None:
    chunked_server.plans = [StreamPlan(opening_frames(frame), gzip=True, garbage=GARBAGE)]
    seen: list[str] = []
    async with nk.AsyncNoukai(api_key=KEY, base_url=chunked_server.base_url) as client:
        with pytest.raises(nk.APIConnectionError) as info:
            async for event in client.flow("o/p/f").events(message="hi"):
                seen.append(event.type)
    assert seen == ["run_started", "step_started"]
    assert info.value.code == "STREAM_INTERRUPTED"


def finished_then_corrupt(frame: Frame) -> StreamPlan:
    finish = frame("flow_completed", executionId="E", runId="E", result={"v": 1})
    return StreamPlan([*opening_frames(frame), finish], gzip=True, garbage=GARBAGE)


def test_corruption_after_the_terminal_frame_is_no_error_of_the_run(
    chunked_server: ChunkedStreamServer, frame: Frame
) -> None:
    # Every event arrived; only reading on to the body's end failed.
    chunked_server.plans = [finished_then_corrupt(frame)]
    with nk.Noukai(api_key=KEY, base_url=chunked_server.base_url) as client:
        events = list(client.flow("o/p/f").events(message="hi"))
    assert [e.type for e in events] == ["run_started", "step_started", "flow_completed"]
    assert len(chunked_server.requests) == 1


async def test_corruption_after_the_terminal_frame_is_no_error_of_the_run_async(
    chunked_server: ChunkedStreamServer, frame: Frame
) -> None:
    chunked_server.plans = [finished_then_corrupt(frame)]
    async with nk.AsyncNoukai(api_key=KEY, base_url=chunked_server.base_url) as client:
        events = [e async for e in client.flow("o/p/f").events(message="hi")]
    assert [e.type for e in events] == ["run_started", "step_started", "flow_completed"]
    assert len(chunked_server.requests) == 1
