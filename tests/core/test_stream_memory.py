"""`events()` and `live_trace()` hold one event at a time, however big a network read.

A server's writes often arrive as one chunk of hundreds of frames. The
drivers type each frame only when the caller asks for the next event, so a
consumer that drops events as it goes never has a chunk's worth of models
alive (design: "streaming never buffers"). Counted with `gc.get_objects()`:
what a user would see in a memory profile.
"""

from __future__ import annotations

import gc
from collections.abc import Callable
from typing import Any

import noukai_core as nk

KEY = "nk_stream_memory"
FRAMES = 400


def one_write(frame: Callable[..., bytes]) -> Callable[[Any, Any], None]:
    body = frame("run_started", runId="E", executionId="E", stepCount=1)
    body += b"".join(
        frame("step_output", executionId="E", stepId="s", outputData={"i": i})
        for i in range(FRAMES)
    )
    body += frame("flow_completed", executionId="E", runId="E", result={"ok": True})

    def responder(request: Any, conn: Any) -> None:
        conn.start_stream()
        conn.send(body)

    return responder


def live_step_outputs() -> int:
    return sum(1 for obj in gc.get_objects() if type(obj) is nk.StepOutput)


def baseline() -> int:
    """StepOutputs other tests of this process still hold: not this stream's."""
    gc.collect()
    return live_step_outputs()


def test_sync_events_hold_one_event_at_a_time(scripted_server: Any, frame: Any) -> None:
    scripted_server.responders = [one_write(frame)]
    peak = seen = 0
    before = baseline()
    with nk.Noukai(api_key=KEY, base_url=scripted_server.base_url) as client:
        for event in client.flow("o/p/f").events(message="hi"):
            if isinstance(event, nk.StepOutput):
                seen += 1
                if seen % 50 == 1:
                    peak = max(peak, live_step_outputs() - before)
    assert seen == FRAMES
    assert peak <= 2, f"{peak} StepOutput events alive at once"


async def test_async_events_hold_one_event_at_a_time(scripted_server: Any, frame: Any) -> None:
    scripted_server.responders = [one_write(frame)]
    peak = seen = 0
    before = baseline()
    async with nk.AsyncNoukai(api_key=KEY, base_url=scripted_server.base_url) as client:
        async for event in client.flow("o/p/f").events(message="hi"):
            if isinstance(event, nk.StepOutput):
                seen += 1
                if seen % 50 == 1:
                    peak = max(peak, live_step_outputs() - before)
    assert seen == FRAMES
    assert peak <= 2, f"{peak} StepOutput events alive at once"


def test_sync_live_trace_holds_one_event_at_a_time(scripted_server: Any, frame: Any) -> None:
    scripted_server.responders = [one_write(frame)]
    peak = seen = 0
    before = baseline()
    with nk.Noukai(api_key=KEY, base_url=scripted_server.base_url) as client:
        for event in client.flow("o/p/f").run("E").live_trace():
            if isinstance(event, nk.StepOutput):
                seen += 1
                if seen % 50 == 1:
                    peak = max(peak, live_step_outputs() - before)
    assert seen == FRAMES
    assert peak <= 2, f"{peak} StepOutput events alive at once"


async def test_async_live_trace_holds_one_event_at_a_time(scripted_server: Any, frame: Any) -> None:
    scripted_server.responders = [one_write(frame)]
    peak = seen = 0
    before = baseline()
    async with nk.AsyncNoukai(api_key=KEY, base_url=scripted_server.base_url) as client:
        async for event in client.flow("o/p/f").run("E").live_trace():
            if isinstance(event, nk.StepOutput):
                seen += 1
                if seen % 50 == 1:
                    peak = max(peak, live_step_outputs() - before)
    assert seen == FRAMES
    assert peak <= 2, f"{peak} StepOutput events alive at once"
