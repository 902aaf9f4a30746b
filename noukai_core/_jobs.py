"""`Job` and `AsyncJob`: server-side queue jobs (contract §9), side by side."""

from __future__ import annotations

import asyncio
import time

from noukai_core._errors import APITimeoutError
from noukai_core._flow_base import JobBase
from noukai_core._models._jobs import JobStatus
from noukai_core._transport._async import AsyncTransport
from noukai_core._transport._sync import SyncTransport


class Job(JobBase[SyncTransport]):
    """A job submitted by `Flow.execute_async()`; its `execution_id` is known at once.

    Polls are unversioned GETs (contract §9.2), retried like any GET; a 404
    within 5 s of the submission counts as `pending` (the queue race).
    """

    def poll(self, *, timeout: float | None = None) -> JobStatus:
        """One look at the job's status."""
        return self._poller.interpret(self._transport.send(self._poller.spec(timeout)))

    def wait(self, timeout: float = 300.0, poll_interval: float = 2.0) -> JobStatus:
        """Poll until the job is completed or failed; `APITimeoutError` after `timeout` s.

        `timeout` bounds the whole wait, a poll left unanswered included.
        """
        deadline = self._poller.deadline(timeout)
        while True:
            try:
                # The deadline rides on the poll: no attempt and no retry sleep passes it.
                spec = self._poller.spec(None, deadline)
                status = self._poller.interpret(self._transport.send(spec))
            except APITimeoutError as exc:
                raise self._poller.poll_failed(exc, deadline) from None
            if status.is_terminal:
                return status
            time.sleep(self._poller.sleep_before_next(deadline, poll_interval, status))


class AsyncJob(JobBase[AsyncTransport]):
    """The asyncio twin of `Job` (from `AsyncFlow.execute_async()`)."""

    async def poll(self, *, timeout: float | None = None) -> JobStatus:
        """One look at the job's status."""
        return self._poller.interpret(await self._transport.send(self._poller.spec(timeout)))

    async def wait(self, timeout: float = 300.0, poll_interval: float = 2.0) -> JobStatus:
        """Poll until the job is completed or failed; `APITimeoutError` after `timeout` s.

        `timeout` bounds the whole wait, a poll left unanswered included.
        """
        deadline = self._poller.deadline(timeout)
        while True:
            try:
                spec = self._poller.spec(None, deadline)
                status = self._poller.interpret(await self._transport.send(spec))
            except APITimeoutError as exc:
                raise self._poller.poll_failed(exc, deadline) from None
            if status.is_terminal:
                return status
            await asyncio.sleep(self._poller.sleep_before_next(deadline, poll_interval, status))
