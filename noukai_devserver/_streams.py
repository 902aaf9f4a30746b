"""SSE responses: the `/step` stream (E2) and the live trace stream (E8).

`/step`: the run is driven by a producer task that feeds a queue; the response
body waits on the queue with the heartbeat interval as timeout (comment
frames while a block runs). If the client disconnects, Starlette cancels the
body; the `finally` cancels the producer, and the driver records the run
`cancelled` before any later block starts. On server shutdown the body sends a
final `step_error` frame (code `SERVER_SHUTTING_DOWN`) and ends.

E8: subscribe first, then replay the stored log after `Last-Event-ID`, then
tail live events, de-duplicated by sequence number. Ends after the run's
final frame, on a tool pause, or after the idle limit. On shutdown, a run
that is executing is cancelled and so still ends on its final frame; the
stream of an idle run ends with a comment (see `ServerState.begin_shutdown`).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

from fastapi.responses import StreamingResponse

from . import _store as db
from ._app import SHUTDOWN, ServerState
from ._runs import RunState
from ._sse import HEARTBEAT, SSE_HEADERS, comment, frame

log = logging.getLogger("noukai_devserver")
_END = object()


def step_stream(state: ServerState, run: RunState, prelude: list[dict[str, Any]],
                events: AsyncIterator[dict[str, Any]], headers: dict[str, str],
                on_close: Callable[[], None] | None = None) -> StreamingResponse:
    """The /step response; `on_close` runs when the body ends, however it ends."""
    queue: asyncio.Queue[Any] = asyncio.Queue()

    async def produce() -> None:
        try:
            async for event in events:
                queue.put_nowait(event)
        finally:
            queue.put_nowait(_END)

    async def body() -> AsyncIterator[bytes]:
        task = asyncio.create_task(produce())
        task.add_done_callback(lambda t: _cancelled_before_start(state, run, t))
        state.streams.add(queue)
        if state.shutting_down:  # shutdown began between the route and this body
            queue.put_nowait(SHUTDOWN)
        try:
            for event in prelude:
                yield frame(event)
            while True:
                try:
                    item = await asyncio.wait_for(queue.get(), state.options.heartbeat)
                except asyncio.TimeoutError:
                    yield HEARTBEAT
                    continue
                if item is _END:
                    return
                if item is SHUTDOWN:
                    task.cancel(msg="the dev server is shutting down")
                    with contextlib.suppress(asyncio.CancelledError):
                        await task
                    block = run.flow.blocks[min(run.last_index or 0, run.block_count - 1)]
                    yield frame({"eventType": "step_error", "executionId": run.id,
                                 "stepId": block.id, "name": block.name,
                                 "error": {"code": "SERVER_SHUTTING_DOWN",
                                           "message": "the dev server is shutting down"}})
                    return
                yield frame(item)
        finally:
            state.streams.discard(queue)
            if not task.done():
                task.cancel()
            if on_close is not None:
                on_close()

    return StreamingResponse(body(), media_type="text/event-stream",
                             headers={**SSE_HEADERS, **headers})


def _cancelled_before_start(state: ServerState, run: RunState,
                            task: asyncio.Task[None]) -> None:
    """A producer cancelled before its first step leaves the run `active`: close it."""
    if task.cancelled() and run.state == "active":
        state.driver.cancel(run, run.last_index or 0, "CANCELLED",
                            "run cancelled: the client disconnected")


def live_trace_stream(state: ServerState, run: RunState,
                      last_event_id: int) -> StreamingResponse:
    queue = state.broker.subscribe(run.id)

    async def body() -> AsyncIterator[bytes]:
        last = last_event_id
        try:
            if state.shutting_down:
                yield comment("server shutting down")
                return
            stored = await state.store.call(db.events_after, run.id, last)
            for seq, raw in stored:
                payload = json.loads(raw)
                yield frame(payload, event_id=seq)
                last = seq
                if payload.get("eventType") == "flow_completed":
                    return
            if run.state in ("paused_tools", "done"):
                # Events published between our read and now are already queued.
                while not queue.empty():
                    item = queue.get_nowait()
                    if item is not None and item[0] > last:
                        yield frame(item[1], event_id=item[0])
                        last = item[0]
                return
            idle_since = time.monotonic()
            while True:
                try:
                    item = await asyncio.wait_for(queue.get(), state.options.heartbeat)
                except asyncio.TimeoutError:
                    if time.monotonic() - idle_since > state.options.live_idle_timeout:
                        yield comment("idle limit reached; reconnect with Last-Event-ID")
                        return
                    yield HEARTBEAT
                    continue
                if item is None:
                    yield comment("server shutting down")
                    return
                seq, payload = item
                if seq <= last:
                    continue
                idle_since = time.monotonic()
                yield frame(payload, event_id=seq)
                last = seq
                if payload.get("eventType") in ("flow_completed", "step_paused_for_tool_calls"):
                    return
        finally:
            state.broker.unsubscribe(run.id, queue)

    return StreamingResponse(body(), media_type="text/event-stream", headers=SSE_HEADERS)
