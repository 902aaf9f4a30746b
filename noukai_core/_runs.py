"""`Run` and `AsyncRun`: traces of a past execution (reference 000), side by side."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

from noukai_core import _async_driver, _sync_driver
from noukai_core._flow_base import RunBase
from noukai_core._models._events import StreamEvent
from noukai_core._models._traces import StepAttempts, StepTrace, Trace
from noukai_core._protocol._responses import parse_model
from noukai_core._transport._async import AsyncTransport
from noukai_core._transport._sync import SyncTransport


class Run(RunBase[SyncTransport]):
    """A past (or running) execution of a flow, by id; no request until a method is called."""

    def trace(self, *, timeout: float | None = None) -> Trace:
        """The whole run: its summary and the latest attempt of each step."""
        return parse_model(self._transport.send(self._trace_spec(timeout)), Trace)

    def step_trace(
        self,
        step_id: str,
        *,
        attempt: str | int = "latest",
        loop_index: int | None = None,
        timeout: float | None = None,
    ) -> StepTrace | StepAttempts:
        """One step: the latest attempt, attempt N (`StepTrace`) or all (`StepAttempts`)."""
        spec, model = self._step_trace_spec(step_id, attempt, loop_index, timeout)
        return parse_model(self._transport.send(spec), model)

    def live_trace(self, *, timeout: float | None = None) -> Iterator[StreamEvent]:
        """Recorded events, then live ones until the run ends; resumes after a drop."""
        return _sync_driver.live_trace(self._transport, self._live_state(timeout), timeout)


class AsyncRun(RunBase[AsyncTransport]):
    """The asyncio twin of `Run`; `live_trace()` is an async iterator."""

    async def trace(self, *, timeout: float | None = None) -> Trace:
        """The whole run: its summary and the latest attempt of each step."""
        return parse_model(await self._transport.send(self._trace_spec(timeout)), Trace)

    async def step_trace(
        self,
        step_id: str,
        *,
        attempt: str | int = "latest",
        loop_index: int | None = None,
        timeout: float | None = None,
    ) -> StepTrace | StepAttempts:
        """One step: the latest attempt, attempt N (`StepTrace`) or all (`StepAttempts`)."""
        spec, model = self._step_trace_spec(step_id, attempt, loop_index, timeout)
        return parse_model(await self._transport.send(spec), model)

    def live_trace(self, *, timeout: float | None = None) -> AsyncIterator[StreamEvent]:
        """Recorded events, then live ones until the run ends; resumes after a drop."""
        return _async_driver.live_trace(self._transport, self._live_state(timeout), timeout)
