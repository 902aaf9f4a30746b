"""Run state, the per-run event log, live subscribers, and credit balances.

Invariants:
- A run's events get strictly increasing sequence numbers starting at 1; the
  sequence is the SSE `id` of the live trace. An event is published to live
  subscribers only once its database write has committed (writes commit in
  order, on the single writer thread). So an id a follower has seen is never
  lost or given to another event by a crash (a `Last-Event-ID` resume after a
  restart has no gap), and a subscriber that subscribes and then reads the
  log misses nothing, and de-duplicates by sequence number.
- `RunState` mirrors one `runs` row; every change goes through `save()`.
- Memory holds no run that nothing is working on, beyond a bounded number of
  recently idle ones (see `Runs`): the database is the record of every run.
"""

from __future__ import annotations

import asyncio
import functools
import json
import random
import time
import uuid
import weakref
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from decimal import Decimal
from typing import Any

from . import _store as db
from ._capture import event_for_log
from ._flows import Flow, parse_flow
from ._models import money

TERMINAL_EVENTS = frozenset({"flow_completed", "step_paused_for_tool_calls"})
FINISHED = frozenset({"completed", "failed", "cancelled"})
IDLE_STATES = frozenset({"paused_step", "paused_tools"})
"""Waiting for a client that may never come back (contract §7.2, §8): resumable at
any time, from the database if need be."""


def utc_now() -> str:
    """ISO-8601 UTC with exactly 3 fractional digits (Python 3.10 `fromisoformat` safe)."""
    now = datetime.now(timezone.utc)
    return now.strftime("%Y-%m-%dT%H:%M:%S.") + f"{now.microsecond // 1000:03d}Z"


_id_random = random.Random(random.SystemRandom().getrandbits(128))


def new_execution_id() -> str:
    """A random UUID v4. Seeded once from the OS: ids must be unique, not secret,
    and `os.urandom` per request is measurably slow on small machines."""
    return str(uuid.UUID(int=_id_random.getrandbits(128), version=4))


def flow_id_for(org: str, project: str, slug: str) -> str:
    """Stable across versions and restarts."""
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"noukai-dev:{org}/{project}/{slug}"))


@dataclass
class RunState:
    """One execution. `inputs` holds the fresh call's inputs (message, tools...).

    `meta` holds engine bookkeeping that must survive a restart: attempt
    counters per block, the pending tool-call ids and attempt of a tool pause,
    and tokens accumulated across the rounds of a paused block.
    """

    id: str
    org: str
    project: str
    slug: str
    flow: Flow
    version: int
    trigger: str
    session_id: str | None
    capture: str
    inputs: dict[str, Any]
    status: str = "running"
    state: str = "active"
    outputs: dict[str, Any] = field(default_factory=dict)
    completed_count: int = 0
    paused_step: str | None = None
    paused_index: int | None = None
    meta: dict[str, Any] = field(default_factory=dict)
    iterations: int = 0
    last_index: int | None = 0
    rerun_count: int = 0
    started_at: str = field(default_factory=utc_now)
    started_ts: float = field(default_factory=time.time)
    tokens_total: int = 0
    cost: Decimal = Decimal(0)
    seq: int = 0
    result: Any = None
    error: dict[str, Any] | None = None
    error_at_step: str | None = None
    job_error: str | None = None
    completed_at: str | None = None
    duration_ms: int | None = None
    # (state, last_index) as last written: lets the driver skip a redundant save.
    saved: tuple[str, int | None] | None = field(default=None, repr=False, compare=False)

    @functools.cached_property
    def flow_id(self) -> str:
        return flow_id_for(self.org, self.project, self.slug)

    @property
    def block_count(self) -> int:
        return len(self.flow.blocks)

    def row(self) -> dict[str, Any]:
        return {
            "id": self.id, "org": self.org, "project": self.project, "slug": self.slug,
            "flow_id": self.flow_id, "version": self.version, "flow_json": self.flow.raw,
            "trigger": self.trigger, "session_id": self.session_id, "capture": self.capture,
            "status": self.status, "state": self.state, "block_count": self.block_count,
            "paused_step": self.paused_step, "paused_index": self.paused_index,
            "pending_calls": self.meta, "iterations": self.iterations,
            "completed_count": self.completed_count, "last_index": self.last_index,
            "rerun_count": self.rerun_count, "inputs_json": self.inputs,
            "outputs_json": self.outputs, "result_json": self.result,
            "error_json": self.error, "error_at_step": self.error_at_step,
            "job_error": self.job_error, "started_at": self.started_at,
            "started_ts": self.started_ts, "completed_at": self.completed_at,
            "duration_ms": self.duration_ms, "tokens_total": self.tokens_total,
            "cost": money(self.cost),
        }

    def changes(self) -> dict[str, Any]:
        """The columns that can change after creation (what `save()` writes)."""
        row = self.row()
        for key in _IMMUTABLE:
            del row[key]
        return row

    @classmethod
    def from_row(cls, row: dict[str, Any], seq: int) -> RunState:
        return cls(
            id=row["id"], org=row["org"], project=row["project"], slug=row["slug"],
            flow=parse_flow(row["flow_json"], row["slug"], "(stored run)"),
            version=row["version"], trigger=row["trigger"], session_id=row["session_id"],
            capture=row["capture"], inputs=row["inputs_json"], status=row["status"],
            state=row["state"], outputs=row["outputs_json"] or {},
            completed_count=row["completed_count"] or 0, paused_step=row["paused_step"],
            paused_index=row["paused_index"], meta=row["pending_calls"] or {},
            iterations=row["iterations"] or 0, last_index=row["last_index"],
            rerun_count=row["rerun_count"] or 0, started_at=row["started_at"],
            started_ts=row["started_ts"], tokens_total=row["tokens_total"] or 0,
            cost=Decimal(row["cost"] or "0"), seq=seq, result=row["result_json"],
            error=row["error_json"], error_at_step=row["error_at_step"],
            job_error=row["job_error"], completed_at=row["completed_at"],
            duration_ms=row["duration_ms"],
        )


_IMMUTABLE = ("id", "org", "project", "slug", "flow_id", "version", "flow_json", "trigger",
              "session_id", "capture", "block_count", "started_at", "started_ts")


class Broker:
    """Fan-out of logged events to live-trace subscribers, per run."""

    def __init__(self) -> None:
        self._subs: dict[str, set[asyncio.Queue[tuple[int, dict[str, Any]] | None]]] = {}

    def subscribe(self, run_id: str) -> asyncio.Queue[tuple[int, dict[str, Any]] | None]:
        queue: asyncio.Queue[tuple[int, dict[str, Any]] | None] = asyncio.Queue()
        self._subs.setdefault(run_id, set()).add(queue)
        return queue

    def unsubscribe(self, run_id: str, queue: asyncio.Queue[Any]) -> None:
        subs = self._subs.get(run_id)
        if subs is not None:
            subs.discard(queue)
            if not subs:
                del self._subs[run_id]

    def following(self, run_id: str) -> bool:
        """Whether any live trace follows the run right now."""
        return run_id in self._subs

    def publish(self, run_id: str, seq: int, payload: dict[str, Any]) -> None:
        for queue in self._subs.get(run_id, ()):
            queue.put_nowait((seq, payload))

    def close_all(self, keep: Callable[[str], bool] | None = None) -> None:
        """Shutdown: tell every subscriber to finish its stream, except those of
        runs `keep` names (they end on their run's own final frame)."""
        for run_id, subs in self._subs.items():
            if keep is not None and keep(run_id):
                continue
            for queue in subs:
                queue.put_nowait(None)


class Runs:
    """Creates, loads, saves runs and records their events.

    Memory. A run waiting for its client (between `/step` calls, at a tool
    pause) may wait forever: clients go away. So memory is an identity map,
    not a store. `_live` maps a run id to its one `RunState` for as long as
    anything in the process holds that object (a request, a stream, a job
    worker, a live trace), weakly, so that holding it is what keeps it; and
    `_idle` holds strong references to the `keep_idle` most recently idle
    runs only, so a client that continues promptly does not pay a reload.
    Past that bound an idle run lives in the database alone, and `get()`
    loads it again when it is continued. Finished runs are dropped from
    memory when they finish. Held in memory at any time: the runs being
    worked on, plus at most `keep_idle`.
    """

    def __init__(self, store: db.Store, broker: Broker, keep_idle: int = 256) -> None:
        self.store = store
        self.broker = broker
        self.keep_idle = max(0, keep_idle)
        self._live: weakref.WeakValueDictionary[str, RunState] = weakref.WeakValueDictionary()
        self._idle: OrderedDict[str, RunState] = OrderedDict()
        self._loading: dict[str, asyncio.Future[RunState | None]] = {}

    def in_memory(self) -> int:
        """How many unfinished runs have their `RunState` in memory right now."""
        return len(self._live)

    def create(self, run: RunState) -> None:
        self._live[run.id] = run
        run.saved = (run.state, run.last_index)
        self.store.submit(db.insert, "runs", run.row())

    def save(self, run: RunState) -> None:
        run.saved = (run.state, run.last_index)
        self.store.submit(db.update_run, run.id, run.changes())
        self._track(run)

    def _track(self, run: RunState) -> None:
        """Keep the memory rules of the class docstring after a state change."""
        if run.status in FINISHED:
            self._live.pop(run.id, None)
            self._idle.pop(run.id, None)
        elif run.state in IDLE_STATES:
            self._idle[run.id] = run
            self._idle.move_to_end(run.id)
            while len(self._idle) > self.keep_idle:
                self._idle.popitem(last=False)
        else:  # being worked on: whoever works on it holds it
            self._idle.pop(run.id, None)

    def executing(self, run_id: str) -> bool:
        """Whether a request or a job worker is driving the run right now (or will:
        a queued job), so that something will end it and log its final frame."""
        run = self._live.get(run_id)
        return run is not None and run.state in ("active", "queued")

    async def flush(self) -> None:
        """Wait until every queued write is durable."""
        await self.store.call(lambda _conn: None)

    async def get(self, run_id: str) -> RunState | None:
        """The run's one live `RunState` (loaded from the database if not in memory).

        An unfinished run has exactly one `RunState` however many requests ask
        for it at once: the state machine (`RUN_BUSY`, a claimed tool pause)
        lives on that object, so two objects for one run would let two calls
        run it. Concurrent loads of one id therefore share a single load
        (shielded: a caller that goes away does not cancel it for the others),
        and a row is never read from the database while its object is live.
        """
        run = self._live.get(run_id)
        if run is not None:
            if run_id in self._idle:
                self._idle.move_to_end(run_id)
            return run
        load = self._loading.get(run_id)
        if load is None:
            load = asyncio.ensure_future(self._load(run_id))
            self._loading[run_id] = load
            load.add_done_callback(lambda _done: self._loading.pop(run_id, None))
        return await asyncio.shield(load)

    async def _load(self, run_id: str) -> RunState | None:
        row = await self.store.call(db.get_run, run_id)
        if row is None:
            return None
        seq = await self.store.call(db.last_event_seq, run_id)
        run = RunState.from_row(row, seq)
        if run.status not in FINISHED:
            self._live[run_id] = run
            self._track(run)
        return run

    def record(self, run: RunState, payload: dict[str, Any]) -> None:
        """Append a live event to the run's log (capture-filtered); publish it to the
        run's followers once it is durable (see the module invariants)."""
        logged = event_for_log(payload, run.capture)
        if logged is None:
            return
        run.seq += 1
        seq, run_id = run.seq, run.id
        if not self.broker.following(run_id):
            # A follower arriving later reads this event from the log: its read
            # is queued behind this write.
            self.store.submit(db.append_event, run_id, seq, json.dumps(logged))
            return
        self.store.submit_then(db.append_event, (run_id, seq, json.dumps(logged)),
                               lambda: self.broker.publish(run_id, seq, logged))


class Balances:
    """Org credit balances: None = unlimited. Persisted; seeded from the workspace."""

    def __init__(self, store: db.Store, seeds: dict[str, Decimal | None]) -> None:
        self.store = store
        self._balances: dict[str, Decimal | None] = {}
        for org, seed in seeds.items():
            if seed is None:
                self._balances[org] = None
                continue
            stored = store.call_sync(db.get_balance, org)
            self._balances[org] = Decimal(stored) if stored is not None else seed
            if stored is None:
                store.call_sync(db.set_balance, org, money(seed))

    def has_credit(self, org: str) -> bool:
        balance = self._balances.get(org)
        return balance is None or balance > 0

    def charge(self, org: str, amount: Decimal) -> None:
        balance = self._balances.get(org)
        if balance is None or amount <= 0:
            return
        balance = max(Decimal(0), balance - amount)
        self._balances[org] = balance
        self.store.submit(db.set_balance, org, money(balance))
