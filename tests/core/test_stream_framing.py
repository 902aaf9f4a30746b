"""`events()` over the framings real servers use: chunked one event per chunk, and gzip.

The transport reads a stream's bytes through the fewest httpx layers it can
(see `SyncTransport._chunks`): a gzipped stream must still arrive decoded,
and the key redactor must still see the decoded bytes, whatever the chunking.
"""

from __future__ import annotations

import asyncio
import itertools
import random
import time
from collections.abc import Callable

import httpx
import pytest
from chunked_server import ChunkedStreamServer, StreamPlan
from misbehaving_server import Conn, Responder, ScriptedServer, SeenRequest

import noukai_core as nk
from noukai_core._transport._redact import MASK, Redactor

Frame = Callable[..., bytes]
KEY = "nk_framing_secret_42"


def run_frames(frame: Frame, outputs: int) -> list[bytes]:
    return [
        frame("run_started", executionId="E", runId="E", stepCount=1),
        frame("step_started", executionId="E", stepId="a", stepIndex=0),
        *(
            frame("step_output", executionId="E", stepId="a", outputData={"delta": f"é{i}"})
            for i in range(outputs)
        ),
        frame("step_completed", executionId="E", stepId="a", output={"text": "done"}),
        frame("flow_completed", executionId="E", runId="E", result={"text": "done"}),
    ]


def describe(events: list[nk.StreamEvent]) -> list[tuple[str, object]]:
    return [
        (e.type, e.output_data if isinstance(e, nk.StepOutput) else getattr(e, "output", None))
        for e in events
    ]


EXPECTED = [
    ("run_started", None),
    ("step_started", None),
    *(("step_output", {"delta": f"é{i}"}) for i in range(5)),
    ("step_completed", {"text": "done"}),
    ("flow_completed", {"text": "done"}),
]


@pytest.mark.parametrize("gzip", [False, True], ids=["plain", "gzip"])
def test_sync_events_over_a_chunked_stream(
    chunked_server: ChunkedStreamServer, frame: Frame, gzip: bool
) -> None:
    chunked_server.plans = [StreamPlan(run_frames(frame, 5), gzip=gzip)]
    with nk.Noukai(api_key=KEY, base_url=chunked_server.base_url) as client:
        events = list(client.flow("o/p/f").events(message="hi"))
    assert describe(events) == EXPECTED
    assert all(e.step_index == 0 for e in events if isinstance(e, nk.StepOutput))


@pytest.mark.parametrize("gzip", [False, True], ids=["plain", "gzip"])
async def test_async_events_over_a_chunked_stream(
    chunked_server: ChunkedStreamServer, frame: Frame, gzip: bool
) -> None:
    chunked_server.plans = [StreamPlan(run_frames(frame, 5), gzip=gzip)]
    async with nk.AsyncNoukai(api_key=KEY, base_url=chunked_server.base_url) as client:
        events = [e async for e in client.flow("o/p/f").events(message="hi")]
    assert describe(events) == EXPECTED


def failing_frames(frame: Frame) -> list[bytes]:
    error = {"code": "BOOM", "message": f"upstream echoed Bearer {KEY}"}
    return [
        frame("run_started", executionId="E", runId="E"),
        frame("step_error", executionId="E", stepId="a", error=error),
    ]


def test_a_key_echoed_in_a_gzipped_stream_is_redacted(
    chunked_server: ChunkedStreamServer, frame: Frame
) -> None:
    # The compressed bytes never hold the key; the redactor must read the decoded ones.
    chunked_server.plans = [StreamPlan(failing_frames(frame), gzip=True)]
    with nk.Noukai(api_key=KEY, base_url=chunked_server.base_url) as client:
        events = list(client.flow("o/p/f").events(message="hi"))
    assert isinstance(events[-1], nk.StepFailed)
    assert events[-1].message == f"upstream echoed Bearer {MASK}"
    assert KEY not in repr(events)


async def test_a_key_echoed_in_a_gzipped_stream_is_redacted_async(
    chunked_server: ChunkedStreamServer, frame: Frame
) -> None:
    chunked_server.plans = [StreamPlan(failing_frames(frame), gzip=True)]
    async with nk.AsyncNoukai(api_key=KEY, base_url=chunked_server.base_url) as client:
        events = [e async for e in client.flow("o/p/f").events(message="hi")]
    assert isinstance(events[-1], nk.StepFailed)
    assert events[-1].message == f"upstream echoed Bearer {MASK}"


def test_the_chunk_redactor_catches_keys_across_random_chunkings() -> None:
    rng = random.Random("redact")
    pieces = [KEY, KEY[:-1], KEY[:3], "nk_", "n", "k", "_", "\n", "\n\n", "data: ", "xyz"]
    for _ in range(400):
        stream = "".join(rng.choice(pieces) for _ in range(rng.randrange(1, 30))).encode()
        expected = stream.replace(KEY.encode(), MASK.encode())
        cuts = sorted(rng.randrange(len(stream) + 1) for _ in range(rng.randrange(0, 12)))
        bounds = [0, *cuts, len(stream)]
        redact = Redactor(KEY).chunks()
        out = b""
        for start, end in itertools.pairwise(bounds):
            out += redact.feed(stream[start:end])
            if stream[:end].endswith(b"\n"):
                # Nothing is held back at a line end (no key holds one): no event is delayed.
                assert out == stream[:end].replace(KEY.encode(), MASK.encode())
        assert out + redact.flush() == expected, (stream, bounds)


def paused_then_done(frame: Frame) -> list[StreamPlan]:
    """A two-segment run: the first /step ends with `step_paused`, the second finishes."""
    return [
        StreamPlan(
            [
                frame("run_started", executionId="E", runId="E", stepCount=2),
                frame("step_completed", executionId="E", stepId="a", output={"v": 1}),
                frame("step_paused", executionId="E", stepId="a", nextStepIndex=1),
            ]
        ),
        StreamPlan(
            [
                frame("step_completed", executionId="E", stepId="b", output={"v": 2}),
                frame("flow_completed", executionId="E", runId="E", result={"v": 2}),
            ]
        ),
    ]


def test_finished_streams_give_their_connection_back_to_the_pool(
    chunked_server: ChunkedStreamServer, frame: Frame
) -> None:
    # Two /step calls of one run, then a second run: three streams, one connection.
    chunked_server.plans = [*paused_then_done(frame), StreamPlan(run_frames(frame, 2))]
    with nk.Noukai(api_key=KEY, base_url=chunked_server.base_url) as client:
        steps = list(client.flow("o/p/f").steps(message="hi"))
        events = list(client.flow("o/p/f").events(message="again"))
    assert [s.output for s in steps] == [{"v": 1}, {"v": 2}]
    assert events[-1].type == "flow_completed"
    assert len(chunked_server.requests) == 3
    assert chunked_server.connections == 1


async def test_finished_streams_give_their_connection_back_to_the_pool_async(
    chunked_server: ChunkedStreamServer, frame: Frame
) -> None:
    chunked_server.plans = [*paused_then_done(frame), StreamPlan(run_frames(frame, 2))]
    async with nk.AsyncNoukai(api_key=KEY, base_url=chunked_server.base_url) as client:
        steps = [s async for s in client.flow("o/p/f").steps(message="hi")]
        events = [e async for e in client.flow("o/p/f").events(message="again")]
    assert [s.output for s in steps] == [{"v": 1}, {"v": 2}]
    assert events[-1].type == "flow_completed"
    assert len(chunked_server.requests) == 3
    assert chunked_server.connections == 1


def test_a_gzipped_finished_stream_gives_its_connection_back(
    chunked_server: ChunkedStreamServer, frame: Frame
) -> None:
    chunked_server.plans = [StreamPlan(run_frames(frame, 2), gzip=True) for _ in range(2)]
    with nk.Noukai(api_key=KEY, base_url=chunked_server.base_url) as client:
        for _ in range(2):
            assert list(client.flow("o/p/f").events(message="hi"))[-1].type == "flow_completed"
    assert chunked_server.connections == 1


def failed_and_held_open(frame: Frame) -> StreamPlan:
    # After `step_error` the client must not wait on the body: this one never ends.
    return StreamPlan(failing_frames(frame), end=False)


def test_a_failed_stream_is_closed_without_waiting_for_its_end(
    chunked_server: ChunkedStreamServer, frame: Frame
) -> None:
    # A read timeout past pytest's own limit: waiting on this body would fail the test.
    chunked_server.plans = [failed_and_held_open(frame), StreamPlan(run_frames(frame, 1))]
    with nk.Noukai(api_key=KEY, base_url=chunked_server.base_url, timeout=120) as client:
        events = list(client.flow("o/p/f").events(message="hi"))
        assert isinstance(events[-1], nk.StepFailed)
        assert list(client.flow("o/p/f").events(message="hi"))[-1].type == "flow_completed"
    assert chunked_server.connections == 2  # the failed stream's connection was dropped


async def test_a_failed_stream_is_closed_without_waiting_for_its_end_async(
    chunked_server: ChunkedStreamServer, frame: Frame
) -> None:
    chunked_server.plans = [failed_and_held_open(frame), StreamPlan(run_frames(frame, 1))]
    async with nk.AsyncNoukai(api_key=KEY, base_url=chunked_server.base_url, timeout=120) as client:
        events = [e async for e in client.flow("o/p/f").events(message="hi")]
        assert isinstance(events[-1], nk.StepFailed)
        again = [e async for e in client.flow("o/p/f").events(message="hi")]
        assert again[-1].type == "flow_completed"
    assert chunked_server.connections == 2


def test_a_break_closes_the_stream_and_its_connection(
    chunked_server: ChunkedStreamServer, frame: Frame
) -> None:
    chunked_server.plans = [
        StreamPlan(run_frames(frame, 3), end=False),
        StreamPlan(run_frames(frame, 1)),
    ]
    with nk.Noukai(api_key=KEY, base_url=chunked_server.base_url, timeout=120) as client:
        for event in client.flow("o/p/f").events(message="hi"):
            if event.type == "step_output":
                break
        # closed at the break, not when the client closes its pool
        deadline = time.monotonic() + 5
        while chunked_server.closed_by_client < 1:
            assert time.monotonic() < deadline, "the stream was never closed"
            time.sleep(0.01)
        assert list(client.flow("o/p/f").events(message="hi"))[-1].type == "flow_completed"
    assert chunked_server.connections == 2


async def test_a_break_closes_the_stream_and_its_connection_async(
    chunked_server: ChunkedStreamServer, frame: Frame
) -> None:
    chunked_server.plans = [
        StreamPlan(run_frames(frame, 3), end=False),
        StreamPlan(run_frames(frame, 1)),
    ]
    async with nk.AsyncNoukai(api_key=KEY, base_url=chunked_server.base_url, timeout=120) as client:
        async for event in client.flow("o/p/f").events(message="hi"):
            if event.type == "step_output":
                break
        # An abandoned async generator is closed by the event loop's finalizer
        # hook, a task of its own: the connection closes soon, not at once.
        deadline = asyncio.get_running_loop().time() + 5
        while chunked_server.closed_by_client < 1:
            assert asyncio.get_running_loop().time() < deadline, "the stream was never closed"
            await asyncio.sleep(0.01)
        again = [e async for e in client.flow("o/p/f").events(message="hi")]
        assert again[-1].type == "flow_completed"
    assert chunked_server.connections == 2


async def test_a_finished_stream_held_open_by_a_broken_server_ends_the_iteration_async(
    chunked_server: ChunkedStreamServer, frame: Frame
) -> None:
    # Contract §6.4 says the body ends after `flow_completed`; this server holds
    # it open and silent. The async client waits a bounded moment, then drops it.
    chunked_server.plans = [
        StreamPlan(run_frames(frame, 1), end=False),
        StreamPlan(run_frames(frame, 1)),
    ]
    async with nk.AsyncNoukai(api_key=KEY, base_url=chunked_server.base_url, timeout=120) as client:
        first = [e async for e in client.flow("o/p/f").events(message="hi")]
        again = [e async for e in client.flow("o/p/f").events(message="hi")]
    assert first[-1].type == again[-1].type == "flow_completed"
    assert chunked_server.connections == 2


def test_a_finished_stream_held_open_by_a_broken_server_costs_only_the_read_timeout(
    chunked_server: ChunkedStreamServer, frame: Frame
) -> None:
    # The sync client can wait on it only up to its read timeout, and raises nothing:
    # every event of the run was delivered.
    chunked_server.plans = [
        StreamPlan(run_frames(frame, 1), end=False),
        StreamPlan(run_frames(frame, 1)),
    ]
    with nk.Noukai(api_key=KEY, base_url=chunked_server.base_url, timeout=1.0) as client:
        first = list(client.flow("o/p/f").events(message="hi"))
        again = list(client.flow("o/p/f").events(message="hi"))
    assert first[-1].type == again[-1].type == "flow_completed"
    assert chunked_server.connections == 2


def test_a_body_cut_after_the_terminal_frame_is_no_error_and_nothing_is_resent(
    chunked_server: ChunkedStreamServer, frame: Frame
) -> None:
    # Every event of the run arrived; only reading the body's end failed.
    chunked_server.plans = [StreamPlan(run_frames(frame, 1), cut=True)]
    with nk.Noukai(api_key=KEY, base_url=chunked_server.base_url) as client:
        events = list(client.flow("o/p/f").events(message="hi"))
    assert events[-1].type == "flow_completed"
    assert len(chunked_server.requests) == 1


async def test_a_body_cut_after_the_terminal_frame_is_no_error_and_nothing_is_resent_async(
    chunked_server: ChunkedStreamServer, frame: Frame
) -> None:
    chunked_server.plans = [StreamPlan(run_frames(frame, 1), cut=True)]
    async with nk.AsyncNoukai(api_key=KEY, base_url=chunked_server.base_url) as client:
        events = [e async for e in client.flow("o/p/f").events(message="hi")]
    assert events[-1].type == "flow_completed"
    assert len(chunked_server.requests) == 1


def test_a_body_already_read_by_a_callers_response_hook_still_yields_every_event(
    chunked_server: ChunkedStreamServer, frame: Frame
) -> None:
    # A caller-supplied client whose hook reads each body (say, to log it):
    # the stream's bytes are then replayed from what httpx kept.
    chunked_server.plans = [StreamPlan(run_frames(frame, 5))]
    with (
        httpx.Client(event_hooks={"response": [lambda response: response.read()]}) as http,
        nk.Noukai(api_key=KEY, base_url=chunked_server.base_url, http_client=http) as client,
    ):
        events = list(client.flow("o/p/f").events(message="hi"))
    assert describe(events) == EXPECTED


async def test_a_body_already_read_by_a_callers_response_hook_still_yields_every_event_async(
    chunked_server: ChunkedStreamServer, frame: Frame
) -> None:
    async def read(response: httpx.Response) -> None:
        await response.aread()

    chunked_server.plans = [StreamPlan(run_frames(frame, 5))]
    async with (
        httpx.AsyncClient(event_hooks={"response": [read]}) as http,
        nk.AsyncNoukai(api_key=KEY, base_url=chunked_server.base_url, http_client=http) as client,
    ):
        events = [e async for e in client.flow("o/p/f").events(message="hi")]
    assert describe(events) == EXPECTED


def held_after_finishing(frame: Frame) -> Responder:
    """A `Connection: close` stream (no reuse possible) held open after its last frame."""

    def responder(request: SeenRequest, conn: Conn) -> None:
        conn.start_stream()
        conn.send(b"".join(run_frames(frame, 1)))
        conn.stall(120)  # past pytest-timeout: a client that waits on it fails

    return responder


def test_a_stream_whose_connection_cannot_be_reused_is_not_read_to_its_end(
    scripted_server: ScriptedServer, frame: Frame
) -> None:
    scripted_server.responders = [held_after_finishing(frame)]
    with nk.Noukai(api_key=KEY, base_url=scripted_server.base_url, timeout=120) as client:
        events = list(client.flow("o/p/f").events(message="hi"))
    assert events[-1].type == "flow_completed"


async def test_a_stream_whose_connection_cannot_be_reused_is_not_read_to_its_end_async(
    scripted_server: ScriptedServer, frame: Frame
) -> None:
    scripted_server.responders = [held_after_finishing(frame)]
    async with nk.AsyncNoukai(api_key=KEY, base_url=scripted_server.base_url) as client:
        events = [e async for e in client.flow("o/p/f").events(message="hi")]
    assert events[-1].type == "flow_completed"
