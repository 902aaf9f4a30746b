"""The execute protocol and the tool-call loop, as generators of I/O requests.

Each function here is a generator that yields `Send` (a request to make) or
`RunTools` (tool calls for the caller's handler) and receives the answer; its
return value is the outcome. `Noukai` drives it with blocking calls,
`AsyncNoukai` with awaits; the protocol itself is written once (DESIGN).
"""

from __future__ import annotations

import typing
from collections.abc import Generator
from dataclasses import dataclass
from typing import Any

from noukai_core._config import FlowTarget
from noukai_core._errors import ReplayMissError
from noukai_core._models._jobs import JobAccepted
from noukai_core._models._results import ExecuteOutcome, PausedResult
from noukai_core._protocol._replay import ReplayCassette, parse_session, replayed_result
from noukai_core._protocol._requests import (
    RunOptions,
    execute_spec,
    jobs_spec,
    resume_spec,
    session_spec,
)
from noukai_core._protocol._responses import parse_execute, parse_model
from noukai_core._protocol._tool_rounds import ToolRounds
from noukai_core._protocol._wire import RawResponse, RequestSpec, RunTools, Send

Protocol = Generator["Send | RunTools", Any, Any]


class FreshSpec(typing.Protocol):
    """`execute_spec` or `jobs_spec`: the builders of a fresh, work-starting POST."""

    def __call__(
        self,
        target: FlowTarget,
        version_path: str,
        options: RunOptions,
        *,
        session_id: str | None,
        timeout: float | None,
        idempotency_key: str | None,
    ) -> RequestSpec: ...


@dataclass(frozen=True)
class ExecuteCall:
    """One `execute()` as the caller asked for it, validated."""

    target: FlowTarget
    version_path: str
    options: RunOptions
    session_id: str | None
    cassette: ReplayCassette | None
    timeout: float | None
    has_tool_handler: bool
    max_tool_rounds: int
    idempotency_key: str | None = None

    def fresh_request(self, build: FreshSpec) -> Send:
        """This call's fresh `/execute` or `/jobs` POST (the two take the same inputs)."""
        return Send(
            build(
                self.target,
                self.version_path,
                self.options,
                session_id=self.session_id,
                timeout=self.timeout,
                idempotency_key=self.idempotency_key,
            )
        )


def ensure_loaded(cassette: ReplayCassette, timeout: float | None) -> Protocol:
    """Fetch the recorded session once, unless the scope already did."""
    if not cassette.loaded:
        response: RawResponse = yield Send(session_spec(cassette.session_id, timeout=timeout))
        cassette.load(parse_session(response))


def _stamp(outcome: ExecuteOutcome, session_id: str | None) -> ExecuteOutcome:
    outcome.session_id = session_id
    return outcome


def execute_protocol(call: ExecuteCall) -> Protocol:
    if call.cassette is not None:
        yield from ensure_loaded(call.cassette, call.timeout)
        recorded = call.cassette.take(call.target.slug, "execute")
        return replayed_result(recorded, session_id=call.session_id)
    response: RawResponse = yield call.fresh_request(execute_spec)
    outcome = _stamp(parse_execute(response), call.session_id)
    rounds = ToolRounds(call.max_tool_rounds)
    while isinstance(outcome, PausedResult) and call.has_tool_handler:
        rounds.check(outcome.execution_id)
        results = yield RunTools(list(outcome.tool_calls))
        if not isinstance(results, list):
            raise TypeError(
                f"a tool handler must return a list of dicts, not {type(results).__name__}"
            )
        rounds.count()
        outcome = yield from resume_protocol(call, outcome, results)
    return outcome


def resume_protocol(
    call: ExecuteCall, paused: PausedResult, tool_results: list[dict[str, Any]]
) -> Protocol:
    """Send one round of tool results for a paused run (contract §8.1)."""
    response: RawResponse = yield Send(
        resume_spec(
            call.target,
            call.version_path,
            call.options,
            execution_id=paused.execution_id,
            paused_at_step=paused.paused_at_step,
            iterations_used=paused.iterations_used,
            tool_call_messages=paused.tool_call_messages,
            accumulated_outputs=paused.accumulated_outputs,
            tool_results=tool_results,
            timeout=call.timeout,
        )
    )
    return _stamp(parse_execute(response), call.session_id)


def submit_job_protocol(call: ExecuteCall) -> Protocol:
    if call.cassette is not None:
        raise ReplayMissError(
            "execute_async() jobs are captured but not replayed", code="REPLAY_JOBS_UNSUPPORTED"
        )
    response: RawResponse = yield call.fresh_request(jobs_spec)
    return parse_model(response, JobAccepted)
