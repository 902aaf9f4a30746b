"""What `Flow` and `AsyncFlow` share: turning a method's arguments into a protocol call.

Validation happens here, before any request: an invalid version, both
`message` and `messages`, too many tools or attachments are `ValueError`s
raised at call time, never after a run was started.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Generic, TypeVar

from noukai_core._config import (
    FlowTarget,
    Version,
    check_call_timeout,
    validate_segment,
    version_segment,
)
from noukai_core._models._traces import StepAttempts, StepTrace
from noukai_core._protocol._cursor import StepStream
from noukai_core._protocol._execute import ExecuteCall
from noukai_core._protocol._polling import JobPoller, LiveTraceState
from noukai_core._protocol._requests import get_spec, run_options
from noukai_core._protocol._wire import RequestSpec
from noukai_core._scope import SessionPlan, plan_session


def _check_rounds(max_tool_rounds: int) -> int:
    if (
        isinstance(max_tool_rounds, bool)
        or not isinstance(max_tool_rounds, int)
        or max_tool_rounds < 0
    ):
        raise ValueError(f"max_tool_rounds must be a non-negative int, not {max_tool_rounds!r}")
    return max_tool_rounds


# The transport a proxy sends through: `SyncTransport` for the sync classes,
# `AsyncTransport` for their twins. Unbounded so this module needs neither.
TransportT = TypeVar("TransportT")


class FlowBase(Generic[TransportT]):
    """A flow address plus the client's defaults; no I/O."""

    def __init__(
        self, transport: TransportT, target: FlowTarget, *, default_session_id: str | None = None
    ) -> None:
        self._transport = transport
        self._target = target
        self._default_session_id = default_session_id

    @property
    def org(self) -> str:
        return self._target.org

    @property
    def project(self) -> str:
        return self._target.project

    @property
    def slug(self) -> str:
        return self._target.slug

    def __repr__(self) -> str:
        return f"{type(self).__name__}({str(self._target)!r})"

    def _execute_call(
        self,
        *,
        message: str | None,
        messages: Sequence[Mapping[str, Any]] | None,
        parameters: Mapping[str, Any] | None,
        block_overrides: Mapping[str, Any] | None,
        attachments: Sequence[Mapping[str, Any]] | None,
        tools: Sequence[Mapping[str, Any]] | None,
        tool_choice: str | Mapping[str, Any] | None,
        has_tool_handler: bool,
        max_tool_rounds: int,
        trace: bool,
        version: Version,
        timeout: float | None,
        session_id: str | None,
        idempotency_key: str | None,
    ) -> ExecuteCall:
        options = run_options(
            message=message,
            messages=messages,
            parameters=parameters,
            block_overrides=block_overrides,
            attachments=attachments,
            tools=tools,
            tool_choice=tool_choice,
            trace=trace,
        )
        version_path = version_segment(version)
        plan = plan_session(session_id, self._default_session_id)
        return ExecuteCall(
            target=self._target,
            version_path=version_path,
            options=options,
            session_id=plan.session_id,
            cassette=plan.cassette,
            timeout=timeout,
            has_tool_handler=has_tool_handler,
            max_tool_rounds=_check_rounds(max_tool_rounds),
            idempotency_key=idempotency_key,
        )

    def _step_stream(
        self,
        *,
        message: str | None,
        parameters: Mapping[str, Any] | None,
        block_overrides: Mapping[str, Any] | None,
        attachments: Sequence[Mapping[str, Any]] | None,
        tools: Sequence[Mapping[str, Any]] | None,
        tool_choice: str | Mapping[str, Any] | None,
        input_overrides: Mapping[str, Any] | None,
        has_tool_handler: bool,
        max_tool_rounds: int,
        run_remaining: bool,
        trace: bool,
        version: Version,
        timeout: float | None,
        session_id: str | None,
    ) -> tuple[str, StepStream, SessionPlan]:
        """The pieces of one `events()` / `steps()` call, every argument checked.

        Called when the method is called, not when it is first iterated: a
        bad `timeout=` or version fails where the caller wrote it.
        """
        check_call_timeout(timeout)
        options = run_options(
            message=message,
            parameters=parameters,
            block_overrides=block_overrides,
            attachments=attachments,
            tools=tools,
            tool_choice=tool_choice,
            trace=trace,
            input_overrides=input_overrides,
        )
        version_path = version_segment(version, streaming=True)
        stream = StepStream(
            options,
            run_remaining=run_remaining,
            has_tool_handler=has_tool_handler,
            max_tool_rounds=_check_rounds(max_tool_rounds),
        )
        return version_path, stream, plan_session(session_id, self._default_session_id)


class RunBase(Generic[TransportT]):
    """A past execution of a flow; methods are lazy (no request at construction)."""

    def __init__(self, transport: TransportT, target: FlowTarget, execution_id: str) -> None:
        self._transport = transport
        self._target = target
        self.execution_id = validate_segment("execution id", execution_id)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({str(self._target)!r}, {self.execution_id!r})"

    def _trace_spec(self, timeout: float | None) -> RequestSpec:
        return get_spec(f"{self._target.base_path}/runs/{self.execution_id}/trace", timeout=timeout)

    def _step_trace_spec(
        self, step_id: str, attempt: str | int, loop_index: int | None, timeout: float | None
    ) -> tuple[RequestSpec, type[StepTrace] | type[StepAttempts]]:
        """The E7 request, and the model of its answer (`StepAttempts` for attempt="all")."""
        validate_segment("step id", step_id)
        params: dict[str, str] = {}
        if attempt == "all":
            params["attempt"] = "all"
        elif isinstance(attempt, int) and not isinstance(attempt, bool) and attempt >= 1:
            params["attempt"] = str(attempt)
        elif attempt != "latest":
            raise ValueError(f"attempt must be 'latest', 'all' or an int >= 1, not {attempt!r}")
        if loop_index is not None:
            if isinstance(loop_index, bool) or not isinstance(loop_index, int) or loop_index < 0:
                raise ValueError(f"loop_index must be an int >= 0, not {loop_index!r}")
            params["loop_index"] = str(loop_index)
        path = f"{self._target.base_path}/runs/{self.execution_id}/steps/{step_id}/trace"
        model = StepAttempts if attempt == "all" else StepTrace
        return get_spec(path, timeout=timeout, params=params), model

    def _live_state(self, timeout: float | None) -> LiveTraceState:
        """The state of one `live_trace()`; checks `timeout=` at call time, not on iteration."""
        check_call_timeout(timeout)
        return LiveTraceState(self._target, self.execution_id)


class JobBase(Generic[TransportT]):
    """A submitted queue job; `execution_id` is known at once."""

    def __init__(
        self,
        transport: TransportT,
        target: FlowTarget,
        execution_id: str,
        *,
        session_id: str | None = None,
        submitted_at: float | None = None,
    ) -> None:
        self._transport = transport
        self._target = target
        self.execution_id = validate_segment("execution id", execution_id)
        self.session_id = session_id
        self._poller = JobPoller(target, self.execution_id, submitted_at=submitted_at)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({str(self._target)!r}, {self.execution_id!r})"
