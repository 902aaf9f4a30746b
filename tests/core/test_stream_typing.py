"""Typed events from a `/step` stream look exactly as if built and assigned the ordinary way.

The stream path validates each frame with its type's compiled validator and
stamps `step_index` without pydantic's generic `__setattr__` (both for speed,
see benchmarks/bench_core_events.py). What a user can observe of an event
(its fields, `model_fields_set`, its dumps) must not show the difference.
"""

from __future__ import annotations

import json
import logging
from typing import Any

import pytest

import noukai_core as nk
from noukai_core._protocol._cursor import StepStream
from noukai_core._protocol._requests import run_options


def frame(event: str, **payload: Any) -> bytes:
    return f"event: {event}\ndata: {json.dumps(payload)}\n\n".encode()


def new_stream() -> StepStream:
    stream = StepStream(
        run_options(message="hi"), run_remaining=False, has_tool_handler=False, max_tool_rounds=3
    )
    assert stream.next_body() is not None
    return stream


@pytest.mark.parametrize("sent_index", [None, 7], ids=["index-absent", "index-segment-local"])
def test_a_stamped_event_equals_one_built_and_assigned_by_hand(sent_index: int | None) -> None:
    payload: dict[str, Any] = {"eventType": "step_output", "executionId": "E", "stepId": "s"}
    payload["outputData"] = {"delta": "hé", "n": [1, 2.5, None]}
    if sent_index is not None:
        payload["stepIndex"] = sent_index
    stream = new_stream()
    stream.feed(frame("run_started", eventType="run_started", executionId="E", runId="E"))
    stream.feed(
        frame("step_completed", eventType="step_completed", executionId="E", stepId="a", output=1)
    )
    (event,) = stream.feed(frame("step_output", **payload))

    by_hand = nk.StepOutput.model_validate(payload)
    by_hand.step_index = 1
    assert type(event) is nk.StepOutput
    assert event == by_hand
    assert event.step_index == 1
    assert event.model_fields_set == by_hand.model_fields_set
    assert event.model_dump(exclude_unset=True) == by_hand.model_dump(exclude_unset=True)
    assert event.model_dump_json(by_alias=True) == by_hand.model_dump_json(by_alias=True)


def test_the_event_line_picks_the_model_and_the_wire_name_is_canonical() -> None:
    stream = new_stream()
    events = stream.feed(
        frame("flow_started", eventType="flow_started", executionId="E", runId="E")
        + frame("step_started", executionId="E", stepId="a", futureField={"x": 1})
        + frame("step_input", eventType="step_output", executionId="E", stepId="a")
        + frame("brand_new_event", eventType="step_output", executionId="E", stepId="a")
        + frame("flow_completed", executionId="E", result={"ok": True})
    )
    assert [type(e).__name__ for e in events] == [
        "RunStarted",
        "StepStarted",
        "StepInput",
        "FlowCompleted",
    ]
    assert [e.event_type for e in events] == [
        "run_started",
        "step_started",
        "step_input",
        "flow_completed",
    ]


def test_a_malformed_frame_is_skipped_with_a_warning_and_the_stream_goes_on(
    caplog: pytest.LogCaptureFixture,
) -> None:
    stream = new_stream()
    with caplog.at_level(logging.WARNING, logger="noukai_core"):
        events = stream.feed(
            b'event: step_output\ndata: {"stepId": "a", "outputData": \n\n'
            + frame("step_output", executionId="E")  # stepId missing
            + frame("step_output", executionId="E", stepId="a", outputData=1)
        )
    assert [e.output_data for e in events] == [1]  # type: ignore[union-attr]
    assert len(caplog.records) == 2
