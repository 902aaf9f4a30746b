"""`/execute` results (contract §4.2, §4.3).

`session_id` is not read from the wire: the client stamps the session id it
sent (contract §15 Q8: the response header is never relied on).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, Literal, Union

from pydantic import PrivateAttr

from noukai_core._models._base import WireModel


class ExecutionFailure(WireModel):
    """Why a run came back `status == "failed"` (the server's extra `error` object)."""

    code: str | None = None
    message: str | None = None
    step_id: str | None = None


class ExecuteResult(WireModel):
    """A finished run. `status` is "completed" or "failed" (a block failed)."""

    status: Literal["completed", "failed"]
    result: Any = None
    execution_id: str | None = None
    flow_id: str | None = None
    block_count: int | None = None
    error: ExecutionFailure | None = None
    session_id: str | None = None

    @property
    def output(self) -> Any:
        """The flow reference's name for `result`."""
        return self.result


ExecuteOutcome = Union[ExecuteResult, "PausedResult"]
SyncResumer = Callable[["PausedResult", list[dict[str, Any]], "float | None"], ExecuteOutcome]
AsyncResumer = Callable[
    ["PausedResult", list[dict[str, Any]], "float | None"], Awaitable[ExecuteOutcome]
]


class PausedResult(WireModel):
    """The flow paused for tool calls; run them and `resume` (or `resume_sync`)."""

    status: Literal["tool_calls_required"]
    execution_id: str
    paused_at_step: str
    iterations_used: int
    tool_call_messages: list[dict[str, Any]]
    tool_calls: list[dict[str, Any]]
    accumulated_outputs: dict[str, Any] = {}
    flow_id: str | None = None
    block_count: int | None = None
    session_id: str | None = None

    # Set by the flow that produced this result: exactly one of the two, so a
    # result knows which twin (sync or async) may resume it.
    _sync_resumer: SyncResumer | None = PrivateAttr(default=None)
    _async_resumer: AsyncResumer | None = PrivateAttr(default=None)

    def resume(
        self, *, tool_results: list[dict[str, Any]], timeout: float | None = None
    ) -> Awaitable[ExecuteOutcome]:
        """Send tool results for a result from `AsyncNoukai`: `await result.resume(...)`.

        A plain method returning an awaitable, so calling it on a result from
        the sync client fails at once, not only when (or if) it is awaited.
        """
        if self._async_resumer is None:
            raise TypeError(
                "this PausedResult came from the sync client Noukai: "
                "call result.resume_sync(tool_results=...)"
            )
        return self._async_resumer(self, list(tool_results), timeout)

    def resume_sync(
        self, *, tool_results: list[dict[str, Any]], timeout: float | None = None
    ) -> ExecuteOutcome:
        """Send tool results for a result from `Noukai`; returns the next outcome."""
        if self._sync_resumer is None:
            raise TypeError(
                "this PausedResult came from AsyncNoukai: "
                "call `await result.resume(tool_results=...)`"
            )
        return self._sync_resumer(self, list(tool_results), timeout)
