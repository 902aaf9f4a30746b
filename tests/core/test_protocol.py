"""The sans-I/O protocol pieces, fed values directly: cursor, tool results, retries."""

from __future__ import annotations

import json
from typing import Any

import pytest

import noukai_core as nk
from noukai_core._protocol._cursor import Signal, StepStream
from noukai_core._protocol._requests import normalize_tool_results, run_options
from noukai_core._protocol._retry import Failure, retry_delay
from noukai_core._protocol._wire import RequestSpec


def frame(event: str, **payload: Any) -> bytes:
    payload["eventType"] = event
    return f"event: {event}\ndata: {json.dumps(payload)}\n\n".encode()


def new_stream(**kw: Any) -> StepStream:
    return StepStream(
        run_options(message="hi"),
        run_remaining=False,
        has_tool_handler=kw.pop("has_tool_handler", False),
        max_tool_rounds=kw.pop("max_tool_rounds", 10),
    )


def test_cursor_drives_a_two_block_run() -> None:
    stream = new_stream()
    first = stream.next_body()
    assert first is not None
    assert first["stepIndex"] == 0 and first["message"] == "hi" and "executionId" not in first
    events = stream.feed(
        frame("run_started", runId="E", executionId="E", stepCount=2)
        + frame("step_started", executionId="E", stepId="a", stepIndex=0)
        + frame("step_completed", executionId="E", stepId="a", output={"x": 1})
        + frame("step_paused", executionId="E", stepId="a", stepIndex=0)
        + frame("step_started", executionId="E", stepId="ignored-after-terminal")
    )
    assert [e.type for e in events] == [
        "run_started",
        "step_started",
        "step_completed",
        "step_paused",
    ]
    assert stream.stream_done
    second = stream.next_body()
    assert second is not None
    assert second["executionId"] == "E" and second["stepIndex"] == 1
    assert second["accumulatedOutputs"] == {"a": {"x": 1}} and "message" not in second
    events = stream.feed(
        frame("step_started", executionId="E", stepId="b", stepIndex=0)  # segment-local
        + frame("step_completed", executionId="E", stepId="b", output=2)
        + frame("flow_completed", executionId="E", result=2)
    )
    assert [e.step_index for e in events[:2]] == [1, 1]  # restamped flow-absolute
    assert stream.next_body() is None


def test_stream_end_without_terminal_frame_is_a_connection_error() -> None:
    stream = new_stream()
    stream.next_body()
    stream.feed(frame("run_started", executionId="E"))
    with pytest.raises(nk.APIConnectionError) as info:
        stream.stream_ended()
    assert info.value.execution_id == "E"


def test_unknown_and_malformed_frames_are_skipped(caplog: pytest.LogCaptureFixture) -> None:
    stream = new_stream()
    stream.next_body()
    events = stream.feed(
        frame("step_progress", stepId="a")
        + b"event: step_completed\ndata: {not json\n\n"
        + frame("step_completed", stepId="a", costUsd=0.5)  # number where a string is due
        + b"data: [1, 2]\n\n"
        + frame("flow_completed", executionId="E", result=1)
    )
    assert [e.type for e in events] == ["flow_completed"]
    assert len([r for r in caplog.records if r.levelname == "WARNING"]) == 2


def test_tool_pause_resume_builds_the_resume_body() -> None:
    stream = new_stream(has_tool_handler=True)
    stream.next_body()
    (event,) = stream.feed(
        frame(
            "step_paused_for_tool_calls",
            runId="E",
            executionId="E",
            stepId="llm",
            stepIndex=1,
            iterationsUsed=1,
            toolCallMessages=[{"role": "user", "content": "q"}],
            toolCalls=[{"id": "c1", "function": {"name": "f", "arguments": "{}"}}],
            accumulatedOutputs={"prev": 1},
        )
    )
    assert isinstance(event, nk.ToolCallsRequired) and event.type == "tool_calls_required"
    assert event.event_type == "step_paused_for_tool_calls"
    event.resume(tool_results=[{"tool_call_id": "c1", "output": {"t": 20}}])
    body = stream.next_body()
    assert body is not None
    assert body["stepIndex"] == 1 and body["iterationsUsed"] == 1
    assert body["accumulatedOutputs"] == {"prev": 1}
    assert body["toolCallMessages"][-1] == {
        "role": "tool",
        "toolCallId": "c1",
        "content": '{"t": 20}',
    }


def test_unresumed_tool_pause_ends_the_run() -> None:
    stream = new_stream()
    stream.next_body()
    stream.feed(
        frame(
            "step_paused_for_tool_calls",
            runId="E",
            executionId="E",
            stepId="llm",
            stepIndex=0,
            iterationsUsed=1,
            toolCallMessages=[],
            toolCalls=[{"id": "c"}],
        )
    )
    assert stream.next_body() is None


def test_tool_round_limit_on_streams() -> None:
    stream = new_stream(has_tool_handler=True, max_tool_rounds=0)
    stream.next_body()
    with pytest.raises(nk.ToolCallLimitError):
        stream.feed(
            frame(
                "step_paused_for_tool_calls",
                runId="E",
                executionId="E",
                stepId="llm",
                stepIndex=0,
                iterationsUsed=1,
                toolCallMessages=[],
                toolCalls=[{"id": "c"}],
            )
        )


def test_legacy_flow_started_arrives_as_run_started() -> None:
    stream = new_stream()
    stream.next_body()
    (event,) = stream.feed(frame("flow_started", executionId="E"))
    assert isinstance(event, nk.RunStarted) and event.event_type == event.type == "run_started"
    assert stream.cursor.observe(event) is Signal.CONTINUE


@pytest.mark.parametrize(
    "result",
    [
        {"role": "tool", "toolCallId": "c", "content": "x"},
        {"role": "tool", "tool_call_id": "c", "content": "x"},
        {"tool_call_id": "c", "output": "x"},
        {"toolCallId": "c", "output": "x"},
    ],
)
def test_the_four_tool_result_shapes_normalise_alike(result: dict[str, Any]) -> None:
    assert normalize_tool_results([result]) == [{"role": "tool", "toolCallId": "c", "content": "x"}]


def test_tool_result_without_id_is_refused() -> None:
    with pytest.raises(ValueError):
        normalize_tool_results([{"content": "x"}])


GET = RequestSpec("GET", "/x")
POST = RequestSpec("POST", "/x/execute", starts_work=True, idempotency_key="k")


@pytest.mark.parametrize(
    ("spec", "kwargs", "retried"),
    [
        (GET, {"status_code": 500}, True),
        (GET, {"status_code": 408}, True),
        (GET, {"status_code": 404}, False),
        (GET, {"failure": Failure.LOST}, True),
        (POST, {"failure": Failure.NOT_SENT}, True),
        (POST, {"failure": Failure.LOST}, False),
        (POST, {"status_code": 429}, True),
        (POST, {"status_code": 503, "headers": {"retry-after": "0"}}, True),
        (POST, {"status_code": 503}, False),
        (POST, {"status_code": 500}, False),
        (POST, {"status_code": 502, "headers": {"retry-after": "0"}}, False),
        (POST, {"status_code": 504}, False),
    ],
)
def test_retry_policy(spec: RequestSpec, kwargs: dict[str, Any], retried: bool) -> None:
    assert (retry_delay(spec, 1, 1, **kwargs) is not None) is retried
    assert retry_delay(spec, 2, 1, **kwargs) is None  # max_retries spent


def test_retry_after_is_honoured_up_to_a_cap() -> None:
    assert retry_delay(GET, 1, 3, status_code=429, headers={"retry-after": "2"}) == 2.0
    assert retry_delay(GET, 1, 3, status_code=429, headers={"retry-after": "60"}) == 60.0
    # Longer than the cap: no silent minute-long sleep; the caller sees RateLimitError.
    assert retry_delay(GET, 1, 3, status_code=429, headers={"retry-after": "9999"}) is None


def test_backoff_grows_with_jitter() -> None:
    low = [retry_delay(GET, n, 9, status_code=500, rand=lambda: 0.0) for n in (1, 2, 3)]
    high = [retry_delay(GET, n, 9, status_code=500, rand=lambda: 1.0) for n in (1, 2, 3)]
    assert low == [0.25, 0.5, 1.0] and high == [0.5, 1.0, 2.0]
