"""`AsyncFlow`: the asyncio twin of `_flow.Flow`, line for line."""

from __future__ import annotations

import time
from collections.abc import AsyncGenerator, Mapping, Sequence
from dataclasses import replace
from typing import Any

from noukai_core import _async_driver as driver
from noukai_core._async_driver import AsyncToolHandler
from noukai_core._config import Version
from noukai_core._constants import DEFAULT_MAX_TOOL_ROUNDS
from noukai_core._flow_base import FlowBase
from noukai_core._jobs import AsyncJob
from noukai_core._models._events import StepCompleted, StreamEvent
from noukai_core._models._results import ExecuteOutcome, PausedResult
from noukai_core._protocol._execute import (
    ExecuteCall,
    execute_protocol,
    resume_protocol,
    submit_job_protocol,
)
from noukai_core._runs import AsyncRun
from noukai_core._scope import concurrent_call_guard
from noukai_core._transport._async import AsyncTransport


class AsyncFlow(FlowBase[AsyncTransport]):
    """One flow of `AsyncNoukai`; tool handlers may be sync or async."""

    async def execute(
        self,
        message: str | None = None,
        *,
        messages: Sequence[Mapping[str, Any]] | None = None,
        parameters: Mapping[str, Any] | None = None,
        block_overrides: Mapping[str, Any] | None = None,
        attachments: Sequence[Mapping[str, Any]] | None = None,
        tools: Sequence[Mapping[str, Any]] | None = None,
        tool_choice: str | Mapping[str, Any] | None = None,
        tool_handler: AsyncToolHandler | None = None,
        max_tool_rounds: int = DEFAULT_MAX_TOOL_ROUNDS,
        trace: bool = False,
        version: Version = "production",
        timeout: float | None = None,
        session_id: str | None = None,
        idempotency_key: str | None = None,
    ) -> ExecuteOutcome:
        """Run the flow to completion, or until it pauses for tools without a handler."""
        call = self._execute_call(
            message=message,
            messages=messages,
            parameters=parameters,
            block_overrides=block_overrides,
            attachments=attachments,
            tools=tools,
            tool_choice=tool_choice,
            has_tool_handler=tool_handler is not None,
            max_tool_rounds=max_tool_rounds,
            trace=trace,
            version=version,
            timeout=timeout,
            session_id=session_id,
            idempotency_key=idempotency_key,
        )
        with concurrent_call_guard(self.slug):
            outcome = await driver.drive(execute_protocol(call), self._transport, tool_handler)
        return self._resumable(outcome, call)

    def _resumable(self, outcome: ExecuteOutcome, call: ExecuteCall) -> ExecuteOutcome:
        if isinstance(outcome, PausedResult):

            async def resume(
                paused: PausedResult, results: list[dict[str, Any]], timeout: float | None
            ) -> ExecuteOutcome:
                this_call = call if timeout is None else replace(call, timeout=timeout)
                nxt = await driver.drive(
                    resume_protocol(this_call, paused, results), self._transport
                )
                return self._resumable(nxt, call)

            outcome._async_resumer = resume
        return outcome

    def events(
        self,
        message: str | None = None,
        *,
        parameters: Mapping[str, Any] | None = None,
        block_overrides: Mapping[str, Any] | None = None,
        attachments: Sequence[Mapping[str, Any]] | None = None,
        tools: Sequence[Mapping[str, Any]] | None = None,
        tool_choice: str | Mapping[str, Any] | None = None,
        tool_handler: AsyncToolHandler | None = None,
        max_tool_rounds: int = DEFAULT_MAX_TOOL_ROUNDS,
        input_overrides: Mapping[str, Any] | None = None,
        run_remaining: bool = False,
        trace: bool = False,
        version: Version = "production",
        timeout: float | None = None,
        session_id: str | None = None,
    ) -> AsyncGenerator[StreamEvent, None]:
        """Every typed event of a step-through run, as an async generator.

        `await events.aclose()` closes the HTTP stream at once; leaving `async for`
        early closes it when the event loop finalises the generator.
        """
        version_path, stream, plan = self._step_stream(
            message=message,
            parameters=parameters,
            block_overrides=block_overrides,
            attachments=attachments,
            tools=tools,
            tool_choice=tool_choice,
            input_overrides=input_overrides,
            has_tool_handler=tool_handler is not None,
            max_tool_rounds=max_tool_rounds,
            run_remaining=run_remaining,
            trace=trace,
            version=version,
            timeout=timeout,
            session_id=session_id,
        )
        return driver.stream_events(
            self._transport, self._target, version_path, stream, plan, tool_handler, timeout
        )

    def steps(
        self,
        message: str | None = None,
        *,
        parameters: Mapping[str, Any] | None = None,
        block_overrides: Mapping[str, Any] | None = None,
        attachments: Sequence[Mapping[str, Any]] | None = None,
        tools: Sequence[Mapping[str, Any]] | None = None,
        tool_choice: str | Mapping[str, Any] | None = None,
        tool_handler: AsyncToolHandler | None = None,
        max_tool_rounds: int = DEFAULT_MAX_TOOL_ROUNDS,
        input_overrides: Mapping[str, Any] | None = None,
        run_remaining: bool = False,
        trace: bool = False,
        version: Version = "production",
        timeout: float | None = None,
        session_id: str | None = None,
    ) -> AsyncGenerator[StepCompleted, None]:
        """One `StepCompleted` per finished step; a failed step raises `FlowExecutionError`."""
        events = self.events(
            message,
            parameters=parameters,
            block_overrides=block_overrides,
            attachments=attachments,
            tools=tools,
            tool_choice=tool_choice,
            tool_handler=tool_handler,
            max_tool_rounds=max_tool_rounds,
            input_overrides=input_overrides,
            run_remaining=run_remaining,
            trace=trace,
            version=version,
            timeout=timeout,
            session_id=session_id,
        )
        return driver.stream_steps(events, tool_handler is not None)

    async def execute_async(
        self,
        message: str | None = None,
        *,
        parameters: Mapping[str, Any] | None = None,
        block_overrides: Mapping[str, Any] | None = None,
        trace: bool = False,
        version: Version = "production",
        timeout: float | None = None,
        session_id: str | None = None,
        idempotency_key: str | None = None,
    ) -> AsyncJob:
        """Submit a server-side queue job (not Python async); returns at once."""
        call = self._execute_call(
            message=message,
            messages=None,
            parameters=parameters,
            block_overrides=block_overrides,
            attachments=None,
            tools=None,
            tool_choice=None,
            has_tool_handler=False,
            max_tool_rounds=0,
            trace=trace,
            version=version,
            timeout=timeout,
            session_id=session_id,
            idempotency_key=idempotency_key,
        )
        accepted = await driver.drive(submit_job_protocol(call), self._transport)
        return AsyncJob(
            self._transport,
            self._target,
            accepted.execution_id,
            session_id=call.session_id,
            submitted_at=time.monotonic(),
        )

    def run(self, execution_id: str) -> AsyncRun:
        """A lazy proxy over a past execution's traces."""
        return AsyncRun(self._transport, self._target, execution_id)
