"""Typed stream events (contract §6).

Every event has `event_type` (the wire name, with the legacy `flow_started`
normalised to `run_started`) and `type` (002's name: equal to `event_type`
except `ToolCallsRequired.type == "tool_calls_required"`). `step_index` is
flow-absolute: the step cursor stamps it, whatever the server sent.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from pydantic import PrivateAttr

from noukai_core._models._base import WireModel
from noukai_core._models._traces import TokenBreakdown


class _Event(WireModel):
    # `event_type` is a plain field (not a Literal) so a frame is parsed and
    # validated in one pass from its JSON text; the parser then sets it to the
    # canonical wire name, whatever the payload's own `eventType` said.
    event_type: str = ""
    execution_id: str | None = None
    # The SSE `id:` of the frame, when the server sent one (live-trace resumes).
    event_id: str | None = None

    @property
    def type(self) -> str:
        return self.event_type


class RunStarted(_Event):
    event_type: str = "run_started"
    run_id: str | None = None
    flow_id: str | None = None
    step_count: int | None = None


class StepStarted(_Event):
    event_type: str = "step_started"
    step_id: str
    name: str | None = None
    step_index: int | None = None


class StepInput(_Event):
    event_type: str = "step_input"
    step_id: str
    input_data: dict[str, Any] | None = None
    step_index: int | None = None


class StepOutput(_Event):
    event_type: str = "step_output"
    step_id: str
    output_data: Any = None
    step_index: int | None = None


class StepCompleted(_Event):
    event_type: str = "step_completed"
    step_id: str
    name: str | None = None
    output: Any = None
    duration_ms: int | None = None
    tokens: TokenBreakdown | None = None
    cost_usd: str | None = None
    step_index: int | None = None


class StepFailed(_Event):
    event_type: str = "step_error"
    step_id: str
    name: str | None = None
    error: dict[str, Any] | None = None
    step_index: int | None = None
    # The X-Request-ID of the HTTP stream that carried this frame, stamped by
    # the step stream, so the error `steps()` raises for it can name it.
    _request_id: str | None = PrivateAttr(default=None)

    @property
    def code(self) -> str | None:
        value = (self.error or {}).get("code")
        return value if isinstance(value, str) else None

    @property
    def message(self) -> str:
        value = (self.error or {}).get("message")
        return value if isinstance(value, str) else f"step {self.step_id!r} failed"


class StepPaused(_Event):
    event_type: str = "step_paused"
    step_id: str | None = None
    step_index: int | None = None
    next_step_index: int | None = None


class ToolCallsRequired(_Event):
    """The run paused for tools mid-stream.

    Call `resume(tool_results=...)` before asking the iterator for its next
    event: the same iteration then continues with the resumed run. Without it
    the stream ends after this event.
    """

    event_type: str = "step_paused_for_tool_calls"
    run_id: str | None = None
    step_id: str
    step_index: int
    iterations_used: int
    tool_call_messages: list[dict[str, Any]]
    tool_calls: list[dict[str, Any]]
    accumulated_outputs: dict[str, Any] = {}

    _resumer: Callable[[list[dict[str, Any]]], None] | None = PrivateAttr(default=None)

    @property
    def type(self) -> str:
        return "tool_calls_required"

    def resume(self, *, tool_results: list[dict[str, Any]]) -> None:
        if self._resumer is None:
            raise RuntimeError("this event is not attached to a live stream")
        self._resumer(list(tool_results))


class FlowCompleted(_Event):
    event_type: str = "flow_completed"
    run_id: str | None = None
    result: Any = None
    summary: dict[str, Any] | None = None

    @property
    def output(self) -> Any:
        return self.result


StreamEvent = (
    RunStarted
    | StepStarted
    | StepInput
    | StepOutput
    | StepCompleted
    | StepFailed
    | StepPaused
    | ToolCallsRequired
    | FlowCompleted
)
"""Any typed stream event; switch on `.type` (or `event_type`, the wire name)."""

EVENT_TYPES: dict[str, type[_Event]] = {
    "run_started": RunStarted,
    "flow_started": RunStarted,  # legacy alias (contract §6.2)
    "step_started": StepStarted,
    "step_input": StepInput,
    "step_output": StepOutput,
    "step_completed": StepCompleted,
    "step_error": StepFailed,
    "step_paused": StepPaused,
    "step_paused_for_tool_calls": ToolCallsRequired,
    "flow_completed": FlowCompleted,
}


def stamp_step_index(event: StreamEvent, index: int) -> None:
    """Set `step_index` as plain assignment would, without pydantic's `__setattr__` dispatch.

    The step cursor stamps nearly every event of a stream, and the generic
    `__setattr__` costs more than the rest of that bookkeeping. This does what
    pydantic does for a plain field (no `validate_assignment`, not frozen):
    store the value and mark the field as set, so `model_dump(exclude_unset=True)`
    and `model_fields_set` see it exactly as after `event.step_index = index`.
    """
    event.__dict__["step_index"] = index
    event.__pydantic_fields_set__.add("step_index")
