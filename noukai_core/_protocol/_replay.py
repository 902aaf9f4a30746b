"""The replay matcher: a fetched session in, recorded results and events out.

Matching key (contract §11.4): (bare slug, trigger type, position). The n-th
`execute()` of slug X gets the n-th recorded `execute` execution of X; the
n-th `steps()`/`events()` the n-th `step` one. Message and org/project are not
compared, so a handler can be edited between replays. No I/O here: the
driver fetches the session once and calls `load`.
"""

from __future__ import annotations

import threading
from typing import Any

from pydantic import ValidationError

from noukai_core._errors import (
    ReplayInvalidSessionError,
    ReplayLeftoverError,
    ReplayMissError,
    ReplayNoSnapshotsError,
)
from noukai_core._models._events import (
    FlowCompleted,
    RunStarted,
    StepCompleted,
    StepFailed,
    StepStarted,
    StreamEvent,
)
from noukai_core._models._results import ExecuteResult, ExecutionFailure
from noukai_core._models._sessions import SessionExecution, SessionResponse
from noukai_core._protocol._responses import json_body, raise_for_status
from noukai_core._protocol._wire import RawResponse

_SIDECAR_KEYS = ("__rendered_prompt__",)
REPLAYABLE_TRIGGERS = ("execute", "step")


def parse_session(response: RawResponse) -> SessionResponse:
    raise_for_status(response, session_fetch=True)
    try:
        return SessionResponse.model_validate(json_body(response))
    except (ValidationError, ValueError, AttributeError) as exc:
        raise ReplayInvalidSessionError(
            f"the recorded session is malformed: {exc.__class__.__name__}",
            status_code=response.status_code,
            code="INVALID_SESSION_PAYLOAD",
            request_id=response.request_id,
        ) from None


class ReplayCassette:
    """One recorded session being replayed; thread-safe position counters.

    A scope's cassette may be consumed by an async client in the request task
    and a sync client in a worker thread at once, hence the lock.
    """

    def __init__(self, session_id: str) -> None:
        self.session_id = session_id
        self._session: SessionResponse | None = None
        self._positions: dict[tuple[str, str], int] = {}
        self._consumed: set[str] = set()
        self._lock = threading.Lock()

    @property
    def loaded(self) -> bool:
        return self._session is not None

    def load(self, session: SessionResponse) -> None:
        missing = [e.execution_id for e in session.executions if not e.snapshots_available]
        if missing:
            raise ReplayNoSnapshotsError(
                f"session {self.session_id} has executions recorded without snapshots "
                f"({', '.join(missing)}); capture needs trace mode full or redacted",
                code="NO_SNAPSHOTS",
                execution_id=missing[0],
            )
        with self._lock:
            if self._session is None:
                self._session = session

    def take(self, slug: str, trigger: str) -> SessionExecution:
        with self._lock:
            if self._session is None:
                raise RuntimeError("cassette used before it was loaded")
            matches = [
                e for e in self._session.executions if e.slug == slug and e.trigger_type == trigger
            ]
            position = self._positions.get((slug, trigger), 0)
            if position >= len(matches):
                raise ReplayMissError(
                    f"no recorded {trigger} #{position + 1} of flow {slug!r} "
                    f"in session {self.session_id}",
                    code="REPLAY_MISS",
                )
            self._positions[(slug, trigger)] = position + 1
            chosen = matches[position]
            self._consumed.add(chosen.execution_id)
            return chosen

    def leftovers(self) -> list[SessionExecution]:
        with self._lock:
            if self._session is None:
                return []
            return [
                e
                for e in self._session.executions
                if e.trigger_type in REPLAYABLE_TRIGGERS and e.execution_id not in self._consumed
            ]

    def check_leftovers(self) -> None:
        left = self.leftovers()
        if left:
            names = ", ".join(f"{e.trigger_type} of {e.slug}" for e in left)
            raise ReplayLeftoverError(
                f"replay session {self.session_id} ended with {len(left)} unconsumed "
                f"execution(s): {names}",
                code="REPLAY_LEFTOVER",
                execution_id=left[0].execution_id,
            )


def _strip_sidecars(output: Any) -> Any:
    if isinstance(output, dict) and any(key in output for key in _SIDECAR_KEYS):
        return {k: v for k, v in output.items() if k not in _SIDECAR_KEYS}
    return output


def _failure(execution: SessionExecution) -> ExecutionFailure | None:
    failed_step = execution.error_at_step
    if failed_step is None:
        failed_step = next((s.step_id for s in execution.steps if s.status == "failed"), None)
    if failed_step is None and execution.status != "failed":
        return None
    snapshot: dict[str, Any] = {}
    for step in execution.steps:
        if step.step_id == failed_step and step.error_snapshot:
            snapshot = step.error_snapshot
    code, message = snapshot.get("code"), snapshot.get("message")
    return ExecutionFailure(
        code=code if isinstance(code, str) else None,
        message=message if isinstance(message, str) else None,
        step_id=failed_step,
    )


def replayed_result(execution: SessionExecution, *, session_id: str | None) -> ExecuteResult:
    """The `ExecuteResult` the live call returned, rebuilt from its snapshots."""
    failure = _failure(execution)
    last = execution.steps[-1].output_snapshot if execution.steps else None
    return ExecuteResult(
        status="failed" if failure else "completed",
        result=None if failure else _strip_sidecars(last),
        execution_id=execution.execution_id,
        flow_id=execution.flow_id,
        block_count=len(execution.steps),
        error=failure,
        session_id=session_id,
    )


def replayed_events(execution: SessionExecution) -> list[StreamEvent]:
    """The events a live `events()` yielded, synthesised (contract §11.4)."""
    exec_id = execution.execution_id
    events: list[StreamEvent] = [
        RunStarted(
            execution_id=exec_id,
            run_id=exec_id,
            flow_id=execution.flow_id,
            step_count=len(execution.steps),
        )
    ]
    failure = _failure(execution)
    output: Any = None
    for index, step in enumerate(execution.steps):
        events.append(StepStarted(execution_id=exec_id, step_id=step.step_id, step_index=index))
        if failure is not None and step.step_id == failure.step_id:
            events.append(
                StepFailed(
                    execution_id=exec_id,
                    step_id=step.step_id,
                    error=step.error_snapshot,
                    step_index=index,
                )
            )
            return events
        output = _strip_sidecars(step.output_snapshot)
        events.append(
            StepCompleted(
                execution_id=exec_id,
                step_id=step.step_id,
                output=output,
                duration_ms=step.duration_ms,
                step_index=index,
            )
        )
    events.append(FlowCompleted(execution_id=exec_id, run_id=exec_id, result=output))
    return events
