"""Drives a run through its blocks for one HTTP call and keeps its record.

`drive()` is the only place that changes a run's lifecycle state:

- after a block completes: outputs and the completed count are saved; with
  more blocks and no `runRemaining`, the call ends with `step_paused` (never
  logged: it is protocol-only, contract §10.3);
- after the last block: the run is `completed` with `result` = last block
  output, a `flow_completed` frame is logged, and every write is flushed
  *before* the frame is yielded (sessions read right after, §11.1);
- a `step_error`: the run is `failed` with `errorAtStep`; the log gets a
  closing `flow_completed` with `result: null` so live traces end uniformly;
- a tool pause: the run waits (`paused_tools`) and the pause frame ends the call;
- cancellation (client gone, shutdown): the run is `cancelled`, logged the same way;
- a run a killed process left executing is `failed` (`SERVER_RESTARTED`) at the
  next start by `recover_interrupted`, logged the same way again.

Every run that ends therefore ends its event log with `flow_completed`, so a
live trace of any finished run closes with it (contract §10.3).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from typing import Any

from . import _store as db
from ._blocks import Resume
from ._engine import Engine
from ._models import money
from ._runs import Runs, RunState, utc_now

log = logging.getLogger("noukai_devserver")
_RESTARTED = "interrupted: the dev server stopped before this run finished; resubmit it"


def _summary(run: RunState) -> dict[str, Any]:
    return {"status": run.status, "stepCount": run.block_count,
            "durationMs": run.duration_ms, "tokens": {"total": run.tokens_total},
            "costUsd": money(run.cost)}


class Driver:
    """Owns every run's lifecycle state (see the module docstring); the engine
    below it only runs blocks and reports what happened as events."""

    def __init__(self, runs: Runs, engine: Engine) -> None:
        self.runs = runs
        self.engine = engine

    def start(self, run: RunState) -> dict[str, Any]:
        """Create the run record and return its logged `run_started` frame."""
        self.runs.create(run)
        return self.engine.emit(run, {"eventType": "run_started", "runId": run.id,
                                      "flowId": run.flow_id, "stepCount": run.block_count})

    def _finish(self, run: RunState, status: str) -> None:
        run.status = status
        run.state = "done"
        run.completed_at = utc_now()
        run.duration_ms = int(max(0.0, time.time() - run.started_ts) * 1000)

    async def drive(self, run: RunState, start: int, *, run_remaining: bool,
                    resume: Resume | None = None,
                    not_before: float | None = None) -> AsyncIterator[dict[str, Any]]:
        run.state = "active"
        run.last_index = start
        if run.saved != ("active", start):  # a run created just now is saved already
            self.runs.save(run)
        index = start
        try:
            while True:
                terminal: dict[str, Any] | None = None
                if index != start and not self.engine.balances.has_credit(run.org):
                    terminal = self._credits_exhausted(run, index)
                async for event in self._block_events(run, index, start, resume, terminal):
                    kind = event["eventType"]
                    if kind in ("step_error", "step_paused_for_tool_calls"):
                        terminal = event
                    elif kind == "step_completed":
                        run.outputs[event["stepId"]] = event.get("output")
                        run.completed_count = max(run.completed_count, index + 1)
                        terminal = event
                    else:
                        yield event
                assert terminal is not None, "a block always ends with a terminal event"
                kind = terminal["eventType"]
                if kind == "step_paused_for_tool_calls":
                    run.state, run.paused_step, run.paused_index = (
                        "paused_tools", terminal["stepId"], index)
                    await self._settle(run, not_before)
                    await self._persist(run)
                    yield terminal
                    return
                if kind == "step_error":
                    run.error = {**terminal["error"], "stepId": terminal["stepId"]}
                    run.error_at_step = terminal["stepId"]
                    run.job_error = f"{terminal['stepId']}: {terminal['error']['message']}"
                    await self._settle(run, not_before)
                    self._finish(run, "failed")
                    self._log_close(run)
                    await self._persist(run)
                    yield terminal
                    return
                run.paused_step, run.paused_index = None, None
                run.meta.pop("pause", None)
                if index + 1 >= run.block_count:
                    await self._settle(run, not_before)
                    yield terminal
                    run.result = terminal.get("output")
                    self._finish(run, "completed")
                    final = self.engine.emit(run, {
                        "eventType": "flow_completed", "runId": run.id,
                        "result": run.result, "summary": _summary(run)})
                    await self._persist(run)
                    yield final
                    return
                if not run_remaining:
                    run.state = "paused_step"
                    await self._persist(run)
                    yield terminal
                    yield {"eventType": "step_paused", "executionId": run.id,
                           "stepId": terminal["stepId"], "stepIndex": index,
                           "nextStepIndex": index + 1}
                    return
                yield terminal
                index += 1
                run.last_index = index
        except asyncio.CancelledError as exc:
            if run.state != "done":
                reason = str(exc.args[0]) if exc.args else "the client disconnected"
                self.cancel(run, index, "CANCELLED", f"run cancelled: {reason}")
            raise
        except Exception as exc:  # a bug must end the run cleanly, never hang it
            log.error("run %s failed internally: %s", run.id, type(exc).__name__)
            if run.state != "done":
                yield self.fail_internal(run, index)

    def cancel(self, run: RunState, index: int, code: str, message: str) -> None:
        """Record a run cancelled mid-block (synchronous: safe inside cancellation)."""
        self._abort(run, index, "cancelled", {"code": code, "message": message})

    def fail_internal(self, run: RunState, index: int) -> dict[str, Any]:
        """A bug ended the run: it fails in-band instead of hanging (the frame is returned)."""
        return self._abort(run, index, "failed", {
            "code": "INTERNAL_ERROR", "message": "internal error while running the block"})

    async def recover_interrupted(self) -> int:
        """Finish the runs a stopped process left executing or queued; return the count.

        Called once at start, before any request is served. Each such run ends
        exactly like a run failing in-band: its attempts left `running` become
        `failed`, its log gets a `step_error` (code `SERVER_RESTARTED`) and the
        closing `flow_completed`, so its summary, trace, live trace, session
        and job poll agree. A job still queued is failed at its first block the
        same way. Durations run until now, when the stop was noticed. Every
        write is durable before this returns.
        """
        interrupted = await self.runs.store.call(db.interrupted_runs)
        for row, last_seq in interrupted:
            run = RunState.from_row(row, last_seq)
            error = {"code": "SERVER_RESTARTED", "message": _RESTARTED}
            self.runs.store.submit(db.fail_running_attempts, run.id, error, utc_now())
            self._abort(run, run.last_index or 0, "failed", error)
        await self.runs.flush()
        return len(interrupted)

    def _abort(self, run: RunState, index: int, status: str,
               error: dict[str, str]) -> dict[str, Any]:
        """End a run that did not finish its block: `step_error` for the block at
        `index`, then the closing `flow_completed`; returns the `step_error` frame.

        Synchronous (it only queues writes), so it is safe inside cancellation.
        """
        block = run.flow.blocks[min(index, run.block_count - 1)]
        frame = self.engine.emit(run, {"eventType": "step_error", "stepId": block.id,
                                       "name": block.name, "stepIndex": index, "error": error})
        run.error = {**error, "stepId": block.id}
        run.error_at_step = block.id
        run.job_error = error["message"]
        self._finish(run, status)
        self._log_close(run)
        self.runs.save(run)
        return frame

    async def _block_events(self, run: RunState, index: int, start: int,
                            resume: Resume | None,
                            skip: dict[str, Any] | None) -> AsyncIterator[dict[str, Any]]:
        if skip is not None:
            yield skip
            return
        async for event in self.engine.run_block(run, index,
                                                 resume if index == start else None):
            yield event

    def _credits_exhausted(self, run: RunState, index: int) -> dict[str, Any]:
        """The balance ran out mid-run: the next block fails in-band (contract §13)."""
        block = run.flow.blocks[index]
        return self.engine.emit(run, {
            "eventType": "step_error", "stepId": block.id, "name": block.name,
            "stepIndex": index, "error": {"code": "CREDITS_EXHAUSTED",
                                          "message": f"org {run.org!r} ran out of credits"}})

    def _log_close(self, run: RunState) -> None:
        self.engine.emit(run, {"eventType": "flow_completed", "runId": run.id, "result": None,
                               "summary": {**_summary(run), "error": run.error}})

    async def _settle(self, run: RunState, not_before: float | None) -> None:
        """Jobs stay non-terminal until `not_before` so callers can observe them."""
        if not_before is not None:
            delay = not_before - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)

    async def _persist(self, run: RunState) -> None:
        self.runs.save(run)
        await self.runs.flush()
