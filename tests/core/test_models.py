"""The wire models: camelCase in, snake_case out, unknown fields ignored, strict where due."""

from __future__ import annotations

import pydantic
import pytest

import noukai_core as nk


def test_camel_case_wire_to_snake_case_attributes() -> None:
    step = nk.StepTrace.model_validate(
        {
            "stepId": "s",
            "attempt": 1,
            "status": "completed",
            "costUsd": "0.000150",
            "tokens": {"prompt": 1, "completion": 2, "total": 3},
            "inputContext": {"a": 1},
            "someFutureField": [1, 2, 3],
        }
    )
    assert (step.step_id, step.cost_usd, step.tokens and step.tokens.total) == ("s", "0.000150", 3)
    assert step.input_context == {"a": 1} and not step.truncated


def test_models_accept_snake_case_construction_too() -> None:
    summary = nk.RunSummary(id="e", flow_id="f", status="completed", step_count=2)
    assert summary.model_dump(by_alias=True)["stepCount"] == 2


def test_token_counts_default_to_zero() -> None:
    assert nk.TokenBreakdown.model_validate({}).total == 0


def test_job_status_is_strict() -> None:
    with pytest.raises(pydantic.ValidationError):
        nk.JobStatus.model_validate({"executionId": "j", "status": "queued"})
    assert nk.JobStatus.model_validate(
        {"executionId": "j", "status": "failed", "error": "x"}
    ).is_terminal


def test_step_trace_status_is_strict() -> None:
    with pytest.raises(pydantic.ValidationError):
        nk.StepTrace.model_validate({"stepId": "s", "attempt": 1, "status": "done"})


def test_event_type_and_type() -> None:
    paused = nk.ToolCallsRequired(
        step_id="s", step_index=0, iterations_used=1, tool_call_messages=[], tool_calls=[]
    )
    assert (
        paused.event_type == "step_paused_for_tool_calls" and paused.type == "tool_calls_required"
    )
    failed = nk.StepFailed(step_id="s", error={"code": "X", "message": "m"})
    assert (failed.type, failed.code, failed.message) == ("step_error", "X", "m")
    done = nk.FlowCompleted(result={"r": 1})
    assert done.output == done.result and done.type == "flow_completed"


def test_execute_result_output_alias_and_failure() -> None:
    result = nk.ExecuteResult.model_validate(
        {
            "status": "failed",
            "result": None,
            "executionId": "e",
            "flowId": "f",
            "blockCount": 1,
            "error": {"code": "C", "message": "m", "stepId": "s"},
        }
    )
    assert result.error == nk.ExecutionFailure(code="C", message="m", step_id="s")
    assert result.output is None and result.session_id is None


def test_a_paused_result_built_by_hand_cannot_resume() -> None:
    paused = nk.PausedResult(
        status="tool_calls_required",
        execution_id="e",
        paused_at_step="s",
        iterations_used=1,
        tool_call_messages=[],
        tool_calls=[],
    )
    with pytest.raises(TypeError):
        paused.resume(tool_results=[])
    with pytest.raises(TypeError):
        paused.resume_sync(tool_results=[])
