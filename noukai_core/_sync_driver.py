"""The blocking driver: runs the sans-I/O protocols with `SyncTransport`.

Everything here moves bytes or calls the user's handler; decisions are made
by `_protocol`. `_async_driver` is the line-for-line asyncio twin.
"""

from __future__ import annotations

import contextlib
import inspect
import time
from collections.abc import Callable, Iterator
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
from noukai_core._transport._sync import SyncTransport

SyncToolHandler = Callable[[list[dict[str, Any]]], list[dict[str, Any]]]


def check_sync_handler(handler: Any) -> None:
    """`Flow` runs handlers inline: a coroutine function would never be awaited."""
    if handler is not None and (
        inspect.iscoroutinefunction(handler)
        or inspect.iscoroutinefunction(getattr(handler, "__call__", None))  # noqa: B004
    ):
        raise TypeError(
            "Flow accepts only a sync tool_handler; use AsyncNoukai/AsyncFlow for an async one"
        )


def call_handler(
    handler: SyncToolHandler | None, calls: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    if handler is None:
        raise RuntimeError("tool calls requested without a tool_handler")
    results = handler(calls)
    if inspect.isawaitable(results):
        raise TypeError("the tool_handler returned an awaitable; Flow needs a sync handler")
    return results


def drive(
    protocol: Protocol, transport: SyncTransport, handler: SyncToolHandler | None = None
) -> Any:
    value: Any = None
    while True:
        try:
            action = protocol.send(value)
        except StopIteration as stop:
            return stop.value
        if isinstance(action, Send):
            value = transport.send(action.spec)
        else:
            value = call_handler(handler, action.calls)


def stream_events(
    transport: SyncTransport,
    target: FlowTarget,
    version_path: str,
    stream: StepStream,
    plan: SessionPlan,
    handler: SyncToolHandler | None,
    timeout: float | None,
) -> Iterator[StreamEvent]:
    with concurrent_call_guard(target.slug):
        if plan.cassette is not None:
            drive(ensure_loaded(plan.cassette, timeout), transport)
            yield from replayed_events(plan.cassette.take(target.slug, "step"))
            return
        while (step_body := stream.next_body()) is not None:
            spec = step_spec(
                target, version_path, step_body, session_id=plan.session_id, timeout=timeout
            )
            try:
                with transport.stream(spec) as body:
                    stream.opened(body.request_id)
                    feed = stream.iter_feed
                    for chunk in body.chunks:
                        if handler is None:
                            for event in feed(chunk):  # no per-event work beyond the yield
                                yield event
                        else:
                            for event in feed(chunk):
                                if isinstance(event, ToolCallsRequired):
                                    stream.resume(call_handler(handler, event.tool_calls))
                                yield event
                        if stream.stream_done:
                            if stream.body_ends:
                                transport.read_to_end(body)
                            break
            except APIConnectionError as exc:
                exc.execution_id = exc.execution_id or stream.execution_id
                raise
            stream.stream_ended()


def stream_steps(events: Iterator[StreamEvent], has_tool_handler: bool) -> Iterator[StepCompleted]:
    with contextlib.closing(events):  # type: ignore[type-var]
        for event in events:
            step = completed_step(event, has_tool_handler=has_tool_handler)
            if step is not None:
                yield step


def live_trace(
    transport: SyncTransport, state: LiveTraceState, timeout: float | None
) -> Iterator[StreamEvent]:
    while True:
        state.connect()
        try:
            with transport.stream(state.spec(timeout)) as body:
                for chunk in body.chunks:
                    yield from state.feed(chunk)
                    if state.finished:
                        return
            if not state.resume_after_clean_close():
                return  # the server ended the stream on purpose (run over, or idle)
        except APIConnectionError as exc:
            delay = state.reconnect_delay(exc)
            if delay is None:
                raise
            time.sleep(delay)
