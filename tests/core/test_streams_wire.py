"""`steps()` / `events()` on the wire, against a real socket server that misbehaves."""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable
from typing import Any

import pytest
from misbehaving_server import Conn, ScriptedServer, SeenRequest

import noukai_core as nk

Frame = Callable[..., bytes]
KEY = "nk_stream_test"


def streaming(*chunks: bytes, then: str = "close") -> Callable[[Any, Any], None]:
    def responder(request: SeenRequest, conn: Conn) -> None:
        conn.start_stream()
        for chunk in chunks:
            conn.send(chunk)
        if then == "reset":
            conn.reset()
        elif then == "stall":
            conn.stall()

    return responder


def client(server: Any, **kw: Any) -> nk.Noukai:
    return nk.Noukai(api_key=KEY, base_url=server.base_url, **kw)


def first_call(frame: Frame) -> bytes:
    return (
        frame("run_started", runId="E", executionId="E", stepCount=2)
        + frame("step_started", executionId="E", stepId="a", stepIndex=0)
        + frame("step_completed", executionId="E", stepId="a", output={"v": 1}, durationMs=3)
        + frame("step_paused", executionId="E", stepId="a", stepIndex=0)
    )


def second_call(frame: Frame) -> bytes:
    return (
        frame("step_started", executionId="E", stepId="b", stepIndex=0)
        + frame("step_completed", executionId="E", stepId="b", output={"v": 2})
        + frame("flow_completed", executionId="E", runId="E", result={"v": 2})
    )


def test_the_cursor_drives_step_calls_invisibly(
    scripted_server: ScriptedServer, frame: Frame
) -> None:
    scripted_server.responders = [streaming(first_call(frame)), streaming(second_call(frame))]
    with client(scripted_server) as c, nk.trace_scope_sync() as scope:
        steps = list(c.flow("o/p/f").steps(message="hi"))
    assert [(s.step_id, s.step_index, s.output) for s in steps] == [
        ("a", 0, {"v": 1}),
        ("b", 1, {"v": 2}),
    ]
    first, second = scripted_server.posts("/step")
    assert first.json()["stepIndex"] == 0 and first.json()["message"] == "hi"
    assert second.json()["executionId"] == "E" and second.json()["stepIndex"] == 1
    assert second.json()["accumulatedOutputs"] == {"a": {"v": 1}}
    assert first.headers["x-session-id"] == second.headers["x-session-id"] == scope.session_id


async def test_async_events_with_run_remaining(
    scripted_server: ScriptedServer, frame: Frame
) -> None:
    body = (
        frame("run_started", runId="E", executionId="E")
        + frame("step_completed", executionId="E", stepId="a", output=1)
        + frame("step_completed", executionId="E", stepId="b", output=2)
        + frame("flow_completed", executionId="E", result=2)
    )
    scripted_server.responders = [streaming(body)]
    async with nk.AsyncNoukai(api_key=KEY, base_url=scripted_server.base_url) as c:
        events = [e async for e in c.flow("o/p/f").events(message="hi", run_remaining=True)]
    assert [e.type for e in events] == [
        "run_started",
        "step_completed",
        "step_completed",
        "flow_completed",
    ]
    assert scripted_server.posts("/step")[0].json()["runRemaining"] is True


def test_reset_mid_stream_is_a_connection_error_and_no_second_post(
    scripted_server: ScriptedServer, frame: Frame
) -> None:
    part = frame("run_started", runId="E", executionId="E") + b"event: step_comp"
    scripted_server.responders = [streaming(part, then="reset")]
    with client(scripted_server, max_retries=3) as c, pytest.raises(nk.APIConnectionError) as info:
        list(c.flow("o/p/f").events(message="hi"))
    assert info.value.execution_id == "E" and info.value.request_id == "req_stream"
    assert len(scripted_server.posts()) == 1


def test_stream_ending_without_terminal_frame_is_never_reposted(
    scripted_server: ScriptedServer, frame: Frame
) -> None:
    scripted_server.responders = [streaming(frame("run_started", runId="E", executionId="E"))]
    seen: list[str] = []
    with client(scripted_server) as c, pytest.raises(nk.APIConnectionError) as info:
        for event in c.flow("o/p/f").events(message="hi"):
            seen.append(event.type)
    assert seen == ["run_started"] and info.value.execution_id == "E"
    assert info.value.code == "STREAM_INCOMPLETE" and info.value.request_id == "req_stream"
    assert len(scripted_server.posts()) == 1


async def test_stall_past_the_timeout_is_a_timeout_error(
    scripted_server: ScriptedServer, frame: Frame
) -> None:
    scripted_server.responders = [streaming(frame("run_started", executionId="E"), then="stall")]
    async with nk.AsyncNoukai(api_key=KEY, base_url=scripted_server.base_url, timeout=0.2) as c:
        with pytest.raises(nk.APITimeoutError) as info:
            async for _ in c.flow("o/p/f").events(message="hi"):
                pass
    assert info.value.execution_id == "E"


def test_malformed_frame_is_skipped_with_a_warning(
    scripted_server: ScriptedServer, frame: Frame, caplog: pytest.LogCaptureFixture
) -> None:
    body = (
        frame("run_started", executionId="E")
        + b'event: step_completed\ndata: {"stepId": \n\n'
        + frame("step_completed", executionId="E", stepId="a", output=1)
        + frame("flow_completed", executionId="E", result=1)
    )
    scripted_server.responders = [streaming(body)]
    with client(scripted_server) as c:
        steps = list(c.flow("o/p/f").steps(message="hi"))
    assert [s.output for s in steps] == [1]
    assert any(
        "malformed" in r.getMessage() for r in caplog.records if r.levelno == logging.WARNING
    )


def test_step_error_ends_events_and_makes_steps_raise(
    scripted_server: ScriptedServer, frame: Frame
) -> None:
    body = (
        frame("run_started", executionId="E")
        + frame("step_started", executionId="E", stepId="a")
        + frame(
            "step_error", executionId="E", stepId="a", error={"code": "BOOM", "message": "exploded"}
        )
    )
    scripted_server.responders = [streaming(body), streaming(body)]
    with client(scripted_server) as c:
        events = list(c.flow("o/p/f").events(message="hi"))
        assert events[-1].type == "step_error" and isinstance(events[-1], nk.StepFailed)
        with pytest.raises(nk.FlowExecutionError) as info:
            list(c.flow("o/p/f").steps(message="hi"))
    assert (info.value.code, info.value.message, info.value.execution_id) == (
        "BOOM",
        "exploded",
        "E",
    )


def endless_stream(frame: Frame, hung_up: threading.Event) -> Callable[[Any, Any], None]:
    """A first step, then keep-alives for seconds; notes when the client hangs up."""

    def responder(request: SeenRequest, conn: Conn) -> None:
        conn.start_stream()
        try:
            conn.send(frame("run_started", executionId="E"))
            conn.send(frame("step_completed", executionId="E", stepId="a", output=1))
            for _ in range(500):
                conn.send(b": keepalive\n\n")
                conn.stall(0.01)
        except OSError:
            hung_up.set()

    return responder


@pytest.mark.parametrize("method", ["events", "steps"])
def test_breaking_out_closes_the_http_stream(
    scripted_server: ScriptedServer, frame: Frame, method: str
) -> None:
    closed = threading.Event()
    scripted_server.responders = [endless_stream(frame, closed)]
    with client(scripted_server) as c:
        for item in getattr(c.flow("o/p/f"), method)(message="hi"):
            assert item.type in ("run_started", "step_completed")
            break
        assert closed.wait(5), "the server never saw the client hang up"


def tool_pause(frame: Frame, index: int = 0) -> bytes:
    return frame(
        "step_paused_for_tool_calls",
        runId="E",
        executionId="E",
        stepId="llm",
        stepIndex=index,
        iterationsUsed=1,
        toolCallMessages=[{"role": "user", "content": "weather?"}],
        toolCalls=[{"id": "c1", "type": "function", "function": {"name": "w", "arguments": "{}"}}],
        accumulatedOutputs={},
    )


def test_tool_handler_on_streams(scripted_server: ScriptedServer, frame: Frame) -> None:
    finish = frame("step_completed", executionId="E", stepId="llm", output="sunny") + frame(
        "flow_completed", executionId="E", result="sunny"
    )
    scripted_server.responders = [
        streaming(frame("run_started", executionId="E") + tool_pause(frame)),
        streaming(finish),
    ]
    calls_seen: list[list[dict[str, Any]]] = []

    def handler(calls: list[dict[str, Any]]) -> list[dict[str, Any]]:
        calls_seen.append(calls)
        return [{"tool_call_id": call["id"], "output": "sunny"} for call in calls]

    with client(scripted_server) as c:
        steps = list(
            c.flow("o/p/f").steps(
                message="weather?", tools=[{"type": "function"}], tool_handler=handler
            )
        )
    assert [s.output for s in steps] == ["sunny"]
    assert calls_seen[0][0]["function"]["name"] == "w"
    resume = scripted_server.posts("/step")[1].json()
    assert resume["toolCallMessages"][-1]["toolCallId"] == "c1" and resume["executionId"] == "E"


async def test_manual_resume_of_a_stream_event(
    scripted_server: ScriptedServer, frame: Frame
) -> None:
    finish = frame("step_completed", executionId="E", stepId="llm", output="ok") + frame(
        "flow_completed", executionId="E", result="ok"
    )
    scripted_server.responders = [
        streaming(frame("run_started", executionId="E") + tool_pause(frame)),
        streaming(finish),
    ]
    types = []
    async with nk.AsyncNoukai(api_key=KEY, base_url=scripted_server.base_url) as c:
        async for event in c.flow("o/p/f").events(message="q", tools=[{"type": "function"}]):
            types.append(event.type)
            if isinstance(event, nk.ToolCallsRequired):
                event.resume(tool_results=[{"toolCallId": "c1", "output": "ok"}])
    assert types == ["run_started", "tool_calls_required", "step_completed", "flow_completed"]


def test_steps_without_a_tool_handler_raise_at_a_tool_pause(
    scripted_server: ScriptedServer, frame: Frame
) -> None:
    scripted_server.responders = [
        streaming(frame("run_started", executionId="E") + tool_pause(frame))
    ]
    with client(scripted_server) as c, pytest.raises(nk.FlowExecutionError) as info:
        list(c.flow("o/p/f").steps(message="q", tools=[{"type": "function"}]))
    assert info.value.code == "TOOL_CALLS_REQUIRED" and info.value.execution_id == "E"
    assert len(scripted_server.posts()) == 1


def failing_then_more(frame: Frame, hung_up: threading.Event) -> Callable[[Any, Any], None]:
    """A server that keeps talking after `step_error`: the client must stop there."""

    def responder(request: SeenRequest, conn: Conn) -> None:
        conn.start_stream()
        conn.send(
            frame("run_started", executionId="E")
            + frame("step_error", executionId="E", stepId="a", error={"code": "BOOM"})
            + frame("step_completed", executionId="E", stepId="a", output="never seen")
        )
        try:
            for _ in range(500):
                conn.send(frame("flow_completed", executionId="E", result="never seen"))
                conn.stall(0.01)
        except OSError:
            hung_up.set()

    return responder


def test_step_error_ends_events_even_if_the_server_goes_on(
    scripted_server: ScriptedServer, frame: Frame
) -> None:
    hung_up = threading.Event()
    scripted_server.responders = [failing_then_more(frame, hung_up)]
    with client(scripted_server) as c:
        types = [e.type for e in c.flow("o/p/f").events(message="hi")]
    assert types == ["run_started", "step_error"]
    assert hung_up.wait(5), "the client kept the failed stream open"
    assert len(scripted_server.posts()) == 1


async def test_async_step_error_ends_events_even_if_the_server_goes_on(
    scripted_server: ScriptedServer, frame: Frame
) -> None:
    hung_up = threading.Event()
    scripted_server.responders = [failing_then_more(frame, hung_up)]
    async with nk.AsyncNoukai(api_key=KEY, base_url=scripted_server.base_url) as c:
        types = [e.type async for e in c.flow("o/p/f").events(message="hi")]
    assert types == ["run_started", "step_error"]
    assert await asyncio.to_thread(hung_up.wait, 5), "the client kept the failed stream open"
    assert len(scripted_server.posts()) == 1


@pytest.mark.parametrize("method", ["events", "steps"])
async def test_async_break_closes_the_http_stream(
    scripted_server: ScriptedServer, frame: Frame, method: str
) -> None:
    hung_up = threading.Event()
    scripted_server.responders = [endless_stream(frame, hung_up)]
    async with nk.AsyncNoukai(api_key=KEY, base_url=scripted_server.base_url) as c:
        async for item in getattr(c.flow("o/p/f"), method)(message="hi"):
            assert item.type in ("run_started", "step_completed")
            break
        assert await asyncio.to_thread(hung_up.wait, 5), "the server never saw the client hang up"


@pytest.mark.parametrize("method", ["events", "steps"])
def test_sync_streams_refuse_a_coroutine_tool_handler_at_call_time(method: str) -> None:
    async def handler(calls: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return []

    # A closed port: any request would be a connection error, not a TypeError.
    flow = nk.Noukai(api_key=KEY, base_url="http://127.0.0.1:9/api/v1").flow("o/p/f")
    with pytest.raises(TypeError, match="AsyncNoukai"):
        getattr(flow, method)(message="x", tool_handler=handler)
