"""Job polling and live-trace resumption: the state, not the waiting.

`JobPoller` interprets polls (a 404 shortly after submission is a queue race,
reported as `pending`, contract §9.2) and says how long to sleep or that the
budget is spent. `LiveTraceState` decodes a trace stream across reconnects:
it remembers the last SSE id for `Last-Event-ID` and the events already
yielded, so a reconnect never yields an event twice. When to reconnect: after
a dropped connection (up to `MAX_RECONNECTS` in a row without progress), and
after a clean close that came mid-run right after new events (a server
restarting gracefully); a clean close with no new event means the server
ended the stream on purpose (an idle step-through run), so iteration ends.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

from noukai_core._config import FlowTarget
from noukai_core._errors import APIConnectionError, APITimeoutError
from noukai_core._models._events import FlowCompleted, StreamEvent
from noukai_core._models._jobs import JobStatus
from noukai_core._protocol._requests import get_spec
from noukai_core._protocol._responses import parse_model, parse_stream_event
from noukai_core._protocol._retry import backoff
from noukai_core._protocol._sse import SSEDecoder
from noukai_core._protocol._wire import RawResponse, RequestSpec

JOB_404_GRACE = 5.0


class JobPoller:
    """What one job's polls mean, and how long a `wait()` may still take; no I/O."""

    def __init__(
        self,
        target: FlowTarget,
        execution_id: str,
        *,
        submitted_at: float | None,
    ) -> None:
        self.target = target
        self.execution_id = execution_id
        self.submitted_at = submitted_at  # a `time.monotonic()` reading

    def spec(self, timeout: float | None, deadline: float | None = None) -> RequestSpec:
        return get_spec(
            f"{self.target.base_path}/jobs/{self.execution_id}", timeout=timeout, deadline=deadline
        )

    def interpret(self, response: RawResponse) -> JobStatus:
        if (
            response.status_code == 404
            and self.submitted_at is not None
            and time.monotonic() - self.submitted_at < JOB_404_GRACE
        ):
            return JobStatus(execution_id=self.execution_id, status="pending")
        return parse_model(response, JobStatus)

    def deadline(self, timeout: float) -> float:
        """The wait's end on `time.monotonic()`, the clock the transport's deadline reads."""
        return time.monotonic() + timeout

    def poll_failed(self, exc: APITimeoutError, deadline: float) -> APITimeoutError:
        """The error for a poll that timed out: the wait's own once its budget is spent."""
        if time.monotonic() >= deadline:
            return self.ran_out("unanswered")
        exc.execution_id = exc.execution_id or self.execution_id
        return exc

    def ran_out(self, last_status: str) -> APITimeoutError:
        return APITimeoutError(
            f"job {self.execution_id} still {last_status} when the wait ran out",
            code="JOB_WAIT_TIMEOUT",
            execution_id=self.execution_id,
        )

    def sleep_before_next(self, deadline: float, poll_interval: float, last: JobStatus) -> float:
        """Seconds to sleep before the next poll; raises when the budget is spent."""
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise self.ran_out(last.status)
        return min(poll_interval, remaining)


class LiveTraceState:
    """One `live_trace()` across its connections (see the module docstring).

    Invariant: an event is yielded at most once, by SSE id when the server
    sends ids, else by counting the frames already passed on.
    """

    MAX_RECONNECTS = 5

    def __init__(self, target: FlowTarget, execution_id: str) -> None:
        self.target = target
        self.execution_id = execution_id
        self.last_event_id: str | None = None
        self.finished = False
        self._seen_ids: set[str] = set()
        self._frames = 0  # data frames passed on, for servers that send no ids
        self._skip = 0
        self._decoder = SSEDecoder()
        self.failures = 0
        self.progressed = False

    def spec(self, timeout: float | None) -> RequestSpec:
        headers = {"Last-Event-ID": self.last_event_id} if self.last_event_id else {}
        path = f"{self.target.base_path}/runs/{self.execution_id}/trace/stream"
        return RequestSpec("GET", path, headers=headers, timeout=timeout)

    def connect(self) -> None:
        """A new connection: fresh decoder; without ids, skip what was yielded."""
        self._decoder = SSEDecoder()
        self._skip = 0 if self.last_event_id else self._frames
        self.progressed = False

    def feed(self, chunk: bytes) -> Iterator[StreamEvent]:
        """The new events of a chunk, typed one at a time as the caller asks.

        Lazy like `StepStream.iter_feed`: a consumer that drops each event
        holds one, not a chunk's worth, so memory and the garbage collector's
        work stay flat on a long live trace. Consume it fully before feeding
        the next chunk: the dedup state advances as events are pulled.
        """
        for frame in self._decoder.feed(chunk):
            if self.finished:
                return
            if frame.id is not None:
                if frame.id in self._seen_ids:
                    continue
                self._seen_ids.add(frame.id)
                self.last_event_id = frame.id
            elif self._skip > 0:
                self._skip -= 1
                continue
            self._frames += 1
            self.progressed = True
            self.failures = 0
            event = parse_stream_event(frame)
            if event is None:
                continue
            if isinstance(event, FlowCompleted):
                self.finished = True
            yield event

    def may_reconnect(self) -> bool:
        """After a dropped connection: try again unless the run ended or we keep failing."""
        self.failures += 1
        return not self.finished and self.failures <= self.MAX_RECONNECTS

    def reconnect_delay(self, exc: APIConnectionError) -> float | None:
        """After the connection failed: seconds to wait before reconnecting, or None.

        None means the failure stands (an error status, the run over, or too
        many failures in a row); the error then names this run.
        """
        if exc.status_code is not None or not self.may_reconnect():
            exc.execution_id = exc.execution_id or self.execution_id
            return None
        return backoff(self.failures)

    def resume_after_clean_close(self) -> bool:
        """After a clean end of stream: reconnect only if it came mid-run, after progress."""
        return not self.finished and self.progressed and self.may_reconnect()
