"""The `/step` cursor (contract §7) and the per-call stream state around it.

`StepCursor` decides what the next `/step` body is from the events seen so
far: it takes the execution id from `run_started`, stores each
`step_completed` output, counts completed blocks (that count *is* the next
`stepIndex`) and stamps a flow-absolute `step_index` on every event, because
servers may send segment-local values (contract §15 Q4).

`StepStream` wraps one `events()` call: an SSE decoder per HTTP stream, the
cursor, the tool-round bound, and the rule that a stream which ends without a
terminal frame is an `APIConnectionError` and is never re-POSTed.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

from noukai_core._errors import APIConnectionError, FlowExecutionError
from noukai_core._models._events import (
    FlowCompleted,
    RunStarted,
    StepCompleted,
    StepFailed,
    StepInput,
    StepOutput,
    StepPaused,
    StepStarted,
    StreamEvent,
    ToolCallsRequired,
    stamp_step_index,
)
from noukai_core._protocol._requests import RunOptions, normalize_tool_results
from noukai_core._protocol._responses import parse_stream_event
from noukai_core._protocol._sse import ServerSentEvent, SSEDecoder
from noukai_core._protocol._tool_rounds import ToolRounds

# Exact types: the parser builds these classes and no subclass, and a set
# lookup is cheaper than `isinstance` against a tuple on every event.
_IN_STEP: frozenset[type] = frozenset((StepStarted, StepInput, StepOutput))


class Signal(enum.Enum):
    CONTINUE = "continue"  # keep reading this stream
    NEXT_CALL = "next_call"  # step_paused: close, call /step again
    TOOLS = "tools"  # paused for tools: needs results before the next call
    FINISHED = "finished"  # flow_completed
    FAILED = "failed"  # step_error


_CONTINUE = Signal.CONTINUE  # read per event: a module global is the cheapest lookup

# Terminal frames after which the server ends the body at once (contract §6.4)
# and the client reads on to that end, so the connection can be reused. Not
# `step_error`: a stream that failed is closed without waiting on it.
_BODY_ENDS = frozenset((Signal.NEXT_CALL, Signal.TOOLS, Signal.FINISHED))


class StepCursor:
    def __init__(self, options: RunOptions, *, run_remaining: bool) -> None:
        self.options = options
        self.run_remaining = run_remaining
        self.execution_id: str | None = None
        self.completed = 0
        self.accumulated: dict[str, Any] = {}
        self._first = True
        self._tool_messages: list[dict[str, Any]] | None = None
        self._iterations_used = 0
        self.pause: ToolCallsRequired | None = None

    def body(self) -> dict[str, Any]:
        """The next `/step` body; consumes a pending tool resume."""
        opts = self.options
        body: dict[str, Any] = {
            "stepIndex": self.completed,
            "accumulatedOutputs": dict(self.accumulated),
            "parameters": dict(opts.parameters) if self._first else {},
            "inputOverrides": dict(opts.input_overrides or {}),
            "runRemaining": self.run_remaining,
            "iterationsUsed": self._iterations_used,
            "trace": opts.trace,
        }
        if self._first:
            if opts.message is not None:
                body["message"] = opts.message
            if opts.attachments:
                body["attachments"] = opts.attachments
        elif self.execution_id is not None:
            body["executionId"] = self.execution_id
        if opts.block_overrides:
            body["blockOverrides"] = opts.block_overrides
        if opts.tools:
            body["tools"] = opts.tools
        if opts.tool_choice is not None:
            body["toolChoice"] = opts.tool_choice
        if self._tool_messages is not None:
            body["toolCallMessages"] = self._tool_messages
        self._first = False
        self._tool_messages = None
        self._iterations_used = 0
        return body

    def observe(self, event: StreamEvent) -> Signal:
        if self.execution_id is None:
            self.execution_id = event.execution_id or (
                event.run_id if isinstance(event, RunStarted) else None
            )
        if type(event) in _IN_STEP:  # the bulk of a stream: tested first, by exact type
            stamp_step_index(event, self.completed)
        elif isinstance(event, StepCompleted):
            stamp_step_index(event, self.completed)
            self.accumulated[event.step_id] = event.output
            self.completed += 1
        elif isinstance(event, StepPaused):
            stamp_step_index(event, max(self.completed - 1, 0))
            return Signal.NEXT_CALL
        elif isinstance(event, ToolCallsRequired):
            # The server's index is flow-absolute here (contract §6.3) and is
            # what it expects back on the resume.
            self.completed = event.step_index
            self.accumulated.update(event.accumulated_outputs)
            self.pause = event
            return Signal.TOOLS
        elif isinstance(event, StepFailed):
            stamp_step_index(event, self.completed)
            return Signal.FAILED
        elif isinstance(event, FlowCompleted):
            return Signal.FINISHED
        return _CONTINUE

    def resume(self, tool_results: Sequence[dict[str, Any]]) -> None:
        if self.pause is None:
            raise RuntimeError("nothing to resume: the run is not paused for tools")
        self._tool_messages = [
            *self.pause.tool_call_messages,
            *normalize_tool_results(tool_results),
        ]
        self._iterations_used = self.pause.iterations_used
        self.pause = None


class StepStream:
    """State of one `steps()`/`events()` call across its `/step` HTTP streams."""

    def __init__(
        self,
        options: RunOptions,
        *,
        run_remaining: bool,
        has_tool_handler: bool,
        max_tool_rounds: int,
    ) -> None:
        self.cursor = StepCursor(options, run_remaining=run_remaining)
        self.has_tool_handler = has_tool_handler
        self._rounds = ToolRounds(max_tool_rounds)
        self._decoder = SSEDecoder()
        self._signal = Signal.CONTINUE
        self._resumed = False
        self.request_id: str | None = None  # of the HTTP stream being read
        # True once this HTTP stream delivered its terminal frame: close it.
        # A plain attribute (not a property over `_signal`): drivers read it per chunk.
        self.stream_done = False

    @property
    def execution_id(self) -> str | None:
        return self.cursor.execution_id

    def next_body(self) -> dict[str, Any] | None:
        """The body of the next `/step` call, or None when the run is over."""
        if self._signal in (Signal.FINISHED, Signal.FAILED):
            return None
        if self._signal is Signal.TOOLS and not self._resumed:
            return None
        self._signal = Signal.CONTINUE
        self.stream_done = False
        self._resumed = False
        self._decoder = SSEDecoder()
        self.request_id = None
        return self.cursor.body()

    def opened(self, request_id: str | None) -> None:
        """The driver opened the HTTP stream for the last `next_body()`; its request id."""
        self.request_id = request_id

    @property
    def body_ends(self) -> bool:
        """This stream's terminal frame is one after which the body ends: read it to the end."""
        return self._signal in _BODY_ENDS

    def feed(self, chunk: bytes) -> list[StreamEvent]:
        """Decode a chunk into typed events, stopping at the terminal frame."""
        return list(self.iter_feed(chunk))

    def iter_feed(self, chunk: bytes) -> Iterable[StreamEvent]:
        """`feed`, one event at a time: what the drivers use.

        Each event is typed only when the caller asks for it, so a consumer
        that drops events as it goes holds one at a time, not a whole chunk's
        worth. That is "streaming never buffers", and it matters for speed
        too: a chunk's worth of live pydantic models survives into the
        garbage collector's older generations and makes its full collections
        run (measured: up to ~2 us per event on 350-byte frames).

        A chunk that completes exactly one frame (every SSE server sends one
        HTTP chunk per event) is typed at once and returned as a 1-tuple: one
        event held is what the lazy path holds too, and it saves a generator
        per chunk, which is a measurable share of the per-event cost.
        """
        if self._signal is not _CONTINUE:
            return ()
        frames = self._decoder.feed(chunk)
        if len(frames) != 1:
            return self._iter_typed(frames) if frames else ()
        event = self._typed(frames[0])
        return () if event is None else (event,)

    def _iter_typed(self, frames: list[ServerSentEvent]) -> Iterator[StreamEvent]:
        typed = self._typed
        for frame in frames:
            event = typed(frame)
            if event is not None:
                yield event
                if self._signal is not _CONTINUE:
                    # The terminal frame of this HTTP stream: frames after it
                    # are not part of the run and are dropped.
                    return

    def _typed(self, frame: ServerSentEvent) -> StreamEvent | None:
        """One frame as a typed event seen by the cursor, or None to skip it."""
        event = parse_stream_event(frame)
        if event is None:
            return None
        signal = self.cursor.observe(event)
        if signal is not _CONTINUE:
            self._terminal(event, signal)
        return event

    def _terminal(self, event: StreamEvent, signal: Signal) -> None:
        """`event` ends this HTTP stream: record why, and equip the event for its consumer."""
        self._signal = signal
        self.stream_done = True
        if signal is Signal.TOOLS:
            self._attach_resumer(event)
        elif signal is Signal.FAILED:
            self._stamp_failure(event)

    def _attach_resumer(self, event: StreamEvent) -> None:
        assert isinstance(event, ToolCallsRequired)
        if self.has_tool_handler:
            self._rounds.check(self.execution_id)
        event._resumer = self.resume

    def _stamp_failure(self, event: StreamEvent) -> None:
        """Give a `step_error` what its error needs: the run and the stream's request id."""
        assert isinstance(event, StepFailed)
        event._request_id = self.request_id
        if event.execution_id is None:
            event.execution_id = self.execution_id

    def resume(self, tool_results: list[dict[str, Any]]) -> None:
        self.cursor.resume(tool_results)
        self._rounds.count()
        self._resumed = True

    def stream_ended(self) -> None:
        """The HTTP stream closed; without a terminal frame that is a lost run."""
        if not self.stream_done:
            raise APIConnectionError(
                "the event stream ended before a terminal frame; the run was not re-sent",
                code="STREAM_INCOMPLETE",
                execution_id=self.execution_id,
                request_id=self.request_id,
            )


def completed_step(event: StreamEvent, *, has_tool_handler: bool) -> StepCompleted | None:
    """The `steps()` view of an event: a `StepCompleted`, None to skip, or an error.

    A failed step raises rather than ending the iteration early, so a caller
    never mistakes a failed run for a shorter successful one.
    """
    if isinstance(event, StepCompleted):
        return event
    if isinstance(event, StepFailed):
        raise FlowExecutionError(
            event.message,
            code=event.code or "STEP_FAILED",
            execution_id=event.execution_id,
            request_id=event._request_id,
        )
    if isinstance(event, ToolCallsRequired) and not has_tool_handler:
        # `steps()` never shows this event, so nobody could resume it: ending
        # quietly here would hand back a silently shorter list of steps.
        raise FlowExecutionError(
            "the flow paused for tool calls: pass tool_handler= to steps()",
            code="TOOL_CALLS_REQUIRED",
            execution_id=event.execution_id,
        )
    return None
