import json
from typing import Any

import pytest
from pydantic import BaseModel

import noukai_core as nk
from noukai_core.web import DEFAULT_FORWARDED_EVENTS, EventPolicy

COMPLETED: dict[str, Any] = {
    "eventType": "step_completed",
    "executionId": "e1",
    "stepId": "draft",
    "name": "Draft",
    "output": {"response": "hi", "tokens": "user data named tokens stays"},
    "durationMs": 12,
    "tokens": {"prompt": 1, "completion": 2, "total": 3},
    "costUsd": "0.000003",
}


def test_default_forwards_exactly_the_progress_events() -> None:
    assert {
        "run_started",
        "step_started",
        "step_output",
        "step_completed",
        "step_error",
        "flow_completed",
    } == DEFAULT_FORWARDED_EVENTS
    policy = EventPolicy()
    for hidden in [
        "step_input",
        "step_paused",
        "step_paused_for_tool_calls",
        "tool_calls_required",
        "some_future_event",
    ]:
        assert policy.apply(hidden, {"stepId": "a"}) is None


def test_tokens_and_cost_are_dropped_but_output_is_untouched() -> None:
    out = EventPolicy().apply("step_completed", COMPLETED)
    assert out is not None
    assert "tokens" not in out and "costUsd" not in out
    assert out["output"] == COMPLETED["output"]
    assert out["durationMs"] == 12
    assert "tokens" in COMPLETED, "the input must not be modified"


def test_snake_case_spellings_are_dropped_too() -> None:
    out = EventPolicy().apply(
        "step_completed",
        {"step_id": "a", "cost_usd": "1", "tool_call_messages": [], "accumulated_outputs": {}},
    )
    assert out == {"step_id": "a"}


def test_summary_figures_are_dropped_from_flow_completed() -> None:
    data = {
        "result": "done",
        "summary": {
            "status": "completed",
            "durationMs": 5,
            "tokens": {"total": 3},
            "costUsd": "0.1",
        },
    }
    out = EventPolicy().apply("flow_completed", data)
    assert out == {"result": "done", "summary": {"status": "completed", "durationMs": 5}}
    assert data["summary"]["tokens"] == {"total": 3}


def test_error_message_is_replaced_by_its_code() -> None:
    data = {"stepId": "a", "error": {"code": "BYOK_KEY_REJECTED", "message": "key sk-123 bad"}}
    assert EventPolicy().apply("step_error", data) == {
        "stepId": "a",
        "error": {"code": "BYOK_KEY_REJECTED"},
    }
    assert EventPolicy().apply("step_error", {"error": "boom"}) == {
        "error": {"code": "STEP_FAILED"}
    }
    exposed = EventPolicy(expose_error_messages=True).apply("step_error", data)
    assert exposed is not None and exposed["error"]["message"] == "key sk-123 bad"


def test_policy_is_configurable_per_event_type_and_field() -> None:
    policy = (
        EventPolicy()
        .forwarding("step_input")
        .keeping("step_input", ["inputData"])
        .dropping("step_input", ["inputData.secret"])
        .dropping("step_completed", ["name"])
        .without("step_output")
    )
    step_input = policy.apply("step_input", {"inputData": {"q": 1, "secret": "s"}, "tokens": 1})
    assert step_input == {"inputData": {"q": 1}}
    completed = policy.apply("step_completed", COMPLETED)
    assert completed is not None and "name" not in completed and "tokens" not in completed
    assert policy.apply("step_output", {"outputData": "x"}) is None
    # the default policy is unchanged by building variants
    assert EventPolicy().apply("step_output", {"outputData": "x"}) == {"outputData": "x"}


TYPED_EVENTS: list[BaseModel] = [
    nk.RunStarted(execution_id="e", run_id="e", flow_id="f", step_count=2),
    nk.StepStarted(execution_id="e", step_id="a", name="A", step_index=0),
    nk.StepInput(execution_id="e", step_id="a", input_data={"secret": "p", "q": 1}),
    nk.StepOutput(execution_id="e", step_id="a", output_data={"tokens": "kept", "v": 1.5}),
    nk.StepOutput(execution_id="e", step_id="a", output_data=[float("nan"), "é\n\u2028"]),
    nk.StepCompleted(execution_id="e", step_id="a", name="A", output={"r": "x"},
                     duration_ms=3, tokens={"prompt": 1, "completion": 2, "total": 3},
                     cost_usd="0.1", step_index=0),
    nk.StepFailed(execution_id="e", step_id="a", error={"code": "X", "message": "secret"}),
    nk.StepFailed(execution_id="e", step_id="a"),
    nk.StepPaused(execution_id="e", step_id="a", step_index=0, next_step_index=1),
    nk.ToolCallsRequired(execution_id="e", run_id="e", step_id="a", step_index=0,
                         iterations_used=1, tool_call_messages=[{"role": "user"}],
                         tool_calls=[{"id": "c"}], accumulated_outputs={"a": 1}),
    nk.FlowCompleted(execution_id="e", run_id="e", result={"tokens": 1},
                     summary={"status": "completed", "tokens": {"total": 3}, "costUsd": "1",
                              "nested": {"deep": 1}}),
]

POLICIES = [
    EventPolicy(),
    EventPolicy(expose_error_messages=True),
    EventPolicy().forwarding("step_input", "step_paused", "step_paused_for_tool_calls")
    .keeping("step_input", ["inputData"]).dropping("step_input", ["inputData.secret"]),
    EventPolicy().keeping("step_completed", ["tokens"]).dropping("*", ["name"]),
    EventPolicy().dropping("flow_completed", ["summary.nested.deep"]),
]


@pytest.mark.parametrize("policy", POLICIES)
@pytest.mark.parametrize("event", TYPED_EVENTS, ids=lambda e: type(e).__name__)
def test_typed_fast_path_equals_the_dict_path(policy: EventPolicy, event: BaseModel) -> None:
    event_type = str(event.event_type)
    expected = policy.apply(event_type, event.model_dump(mode="json", by_alias=True,
                                                         exclude_none=True))
    encoded = policy.dump_json(event)
    assert (None if encoded is None else json.loads(encoded)) == expected
    # twice: the second call uses the cached plan
    again = policy.dump_json(event)
    assert (None if again is None else json.loads(again)) == expected
