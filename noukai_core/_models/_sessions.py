"""The recorded-session (cassette) models of `GET /seq/sessions/{id}` (contract §11.2)."""

from __future__ import annotations

from typing import Any, Literal

from noukai_core._models._base import WireModel


class SessionStep(WireModel):
    """One executed block of a recorded execution (final attempt per loop index)."""

    step_id: str
    attempt: int = 1
    loop_index: int | None = None
    status: Literal["running", "completed", "failed", "skipped"] = "completed"
    started_at: str | None = None
    completed_at: str | None = None
    duration_ms: int | None = None
    input_snapshot: dict[str, Any] | None = None
    output_snapshot: Any = None
    error_snapshot: dict[str, Any] | None = None
    truncated: bool = False


class SessionExecution(WireModel):
    """One recorded execution; replay matches it by (slug, trigger_type, position)."""

    execution_id: str
    flow_id: str | None = None
    slug: str | None = None
    trigger_type: str | None = None
    status: Literal["pending", "running", "completed", "failed", "cancelled"]
    started_at: str | None = None
    completed_at: str | None = None
    trace_capture_mode: str | None = None
    snapshots_available: bool
    steps: list[SessionStep] = []
    error_at_step: str | None = None


class SessionResponse(WireModel):
    """A whole recorded session, executions in start order."""

    session_id: str
    executions: list[SessionExecution]
