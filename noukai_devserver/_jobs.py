"""Queue-backed jobs (E3/E4): a bounded pool of worker tasks.

Invariants:
- A job's run row exists (status `pending`) before E3 answers, so a poll
  never 404s for a job we accepted (contract §9.2).
- A job stays non-terminal until `submitted + min_latency` (configurable,
  ~1 s by default), however fast its blocks are, so callers can observe it.
- At most `workers` jobs execute at once; the rest wait as `pending`.
- On shutdown, jobs still executing or queued are cancelled (the run reads
  `cancelled`, the poll `failed` with a clear error); on the next start,
  `Driver.recover_interrupted` fails the jobs a killed process left behind.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

from ._driver import Driver
from ._runs import Runs, RunState

log = logging.getLogger("noukai_devserver")


class JobQueue:
    """FIFO of submitted jobs, drained by `workers` tasks (see the module invariants)."""

    def __init__(self, driver: Driver, runs: Runs, workers: int) -> None:
        self.driver = driver
        self.runs = runs
        self.workers = max(1, workers)
        self.min_latency = 1.0
        self._queue: asyncio.Queue[tuple[RunState, float]] = asyncio.Queue()
        self._tasks: list[asyncio.Task[None]] = []
        self._current: dict[int, RunState] = {}

    def start(self, min_latency: float) -> None:
        self.min_latency = min_latency
        self._tasks = [asyncio.create_task(self._work(i)) for i in range(self.workers)]

    def submit(self, run: RunState) -> None:
        self._queue.put_nowait((run, time.monotonic() + self.min_latency))

    async def _work(self, worker: int) -> None:
        while True:
            run, not_before = await self._queue.get()
            self._current[worker] = run
            try:
                run.status = "running"
                async for _event in self.driver.drive(run, 0, run_remaining=True,
                                                      not_before=not_before):
                    pass
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.error("job %s failed internally: %s", run.id, type(exc).__name__)
            finally:
                self._current.pop(worker, None)

    def cancel(self) -> None:
        """Shutdown begins: cancel executing jobs and end queued ones (idempotent)."""
        for task in self._tasks:
            task.cancel(msg="the dev server shut down while the job was running")
        while not self._queue.empty():
            run, _ = self._queue.get_nowait()
            self.driver.cancel(run, 0, "SERVER_SHUTTING_DOWN",
                               "the dev server shut down before the job started")

    async def stop(self) -> None:
        """Cancel (if not yet) and wait until every worker has recorded its run."""
        self.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []


def job_status(run: RunState) -> str:
    """Map a run to the four strict job statuses (contract §9.2)."""
    if run.status in ("completed", "failed", "running", "pending"):
        return run.status
    return "failed"
