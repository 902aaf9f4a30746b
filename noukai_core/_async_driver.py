"""The asyncio driver: the twin of `_sync_driver` over `AsyncTransport`.

Tool handlers may be sync or async here; an async generator is returned for
streams so `aclose()` (or leaving `async for` early) closes the HTTP stream.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable
from typing import Any

from noukai_core._config import FlowTarget
from noukai_core._errors import APIConnectionError
from noukai_core._models._events import StepCompleted, StreamEvent, ToolCallsRequired
from noukai_core._protocol._cursor import StepStream, completed_step
from noukai_core._protocol._execute import Protocol, ensure_loaded
from noukai_core._protocol._polling import LiveTraceState
from noukai_core._protocol._replay import replayed_events
from noukai_core._protocol._requests import step_spec
from noukai_core._protocol._wire import Send
from noukai_core._scope import SessionPlan, concurrent_call_guard
from noukai_core._transport._async import AsyncTransport

AsyncToolHandler = Callable[
    [list[dict[str, Any]]], list[dict[str, Any]] | Awaitable[list[dict[str, Any]]]
]


async def call_handler(
    handler: AsyncToolHandler | None, calls: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    if handler is None:
        raise RuntimeError("tool calls requested without a tool_handler")
    results = handler(calls)
    if inspect.isawaitable(results):
        results = await results
    return results


async def drive(
    protocol: Protocol, transport: AsyncTransport, handler: AsyncToolHandler | None = None
) -> Any:
    value: Any = None
    while True:
        try:
            action = protocol.send(value)
        except StopIteration as stop:
            return stop.value
        if isinstance(action, Send):
            value = await transport.send(action.spec)
        else:
            value = await call_handler(handler, action.calls)


async def stream_events(
    transport: AsyncTransport,
    target: FlowTarget,
    version_path: str,
    stream: StepStream,
    plan: SessionPlan,
    handler: AsyncToolHandler | None,
    timeout: float | None,
) -> AsyncGenerator[StreamEvent, None]:
    with concurrent_call_guard(target.slug):
        if plan.cassette is not None:
            await drive(ensure_loaded(plan.cassette, timeout), transport)
            for event in replayed_events(plan.cassette.take(target.slug, "step")):
                yield event
            return
        while (step_body := stream.next_body()) is not None:
            spec = step_spec(
                target, version_path, step_body, session_id=plan.session_id, timeout=timeout
            )
            try:
                async with transport.stream(spec) as body:
                    stream.opened(body.request_id)
                    feed = stream.iter_feed
                    async for chunk in body.chunks:
                        if handler is None:
                            for event in feed(chunk):  # no per-event work beyond the yield
                                yield event
                        else:
                            for event in feed(chunk):
                                if isinstance(event, ToolCallsRequired):
                                    stream.resume(await call_handler(handler, event.tool_calls))
                                yield event
                        if stream.stream_done:
                            if stream.body_ends:
                                await transport.read_to_end(body)
                            break
            except APIConnectionError as exc:
                exc.execution_id = exc.execution_id or stream.execution_id
                raise
            stream.stream_ended()


async def stream_steps(
    events: AsyncGenerator[StreamEvent, None], has_tool_handler: bool
) -> AsyncGenerator[StepCompleted, None]:
    try:
        async for event in events:
            step = completed_step(event, has_tool_handler=has_tool_handler)
            if step is not None:
                yield step
    finally:
        await events.aclose()


async def live_trace(
    transport: AsyncTransport, state: LiveTraceState, timeout: float | None
) -> AsyncIterator[StreamEvent]:
    while True:
        state.connect()
        try:
            async with transport.stream(state.spec(timeout)) as body:
                async for chunk in body.chunks:
                    for event in state.feed(chunk):
                        yield event
                    if state.finished:
                        return
            if not state.resume_after_clean_close():
                return  # the server ended the stream on purpose
        except APIConnectionError as exc:
            delay = state.reconnect_delay(exc)
            if delay is None:
                raise
            await asyncio.sleep(delay)
