"""SQLite persistence: one connection, one writer thread, WAL.

Invariants:
- Every statement runs on a single dedicated thread that owns the only
  connection, so statements are serialised: no "database is locked" between
  requests, and `:memory:` works (one connection sees one database). The
  thread runs whatever is queued in one transaction per batch.
- Statements are executed in submission order. `submit` (fire-and-forget)
  followed later by an awaited `call` therefore guarantees the earlier writes
  are durable before the awaited call returns; routes await one call before
  sending the response that finishes a run (contract §11.1).
- The event loop never waits on SQLite except through `await call(...)` (and
  the resolver's own read-only lookups of published versions, which take
  microseconds and never wait for the writer in WAL mode).

Tables: runs (one row per execution, jobs included), attempts (one row per
block attempt and loop index), events (append-only per-run log with a sequence
number, replayed by the live trace), versions (published flow snapshots),
balances, idempotency (stored outcomes of `Idempotency-Key` requests).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import queue
import sqlite3
import threading
from collections.abc import Callable
from concurrent.futures import Future
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")
log = logging.getLogger("noukai_devserver.store")

SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
  id TEXT PRIMARY KEY, org TEXT NOT NULL, project TEXT NOT NULL, slug TEXT NOT NULL,
  flow_id TEXT NOT NULL, version INTEGER NOT NULL, flow_json TEXT NOT NULL,
  trigger TEXT NOT NULL, session_id TEXT, capture TEXT NOT NULL,
  status TEXT NOT NULL, state TEXT NOT NULL, block_count INTEGER NOT NULL,
  -- pending_calls holds RunState.meta: pause ids, attempt counters, tokens so far
  paused_step TEXT, paused_index INTEGER, pending_calls TEXT, iterations INTEGER DEFAULT 0,
  completed_count INTEGER DEFAULT 0, last_index INTEGER, rerun_count INTEGER DEFAULT 0,
  inputs_json TEXT NOT NULL, outputs_json TEXT NOT NULL DEFAULT '{}',
  result_json TEXT, error_json TEXT, error_at_step TEXT, job_error TEXT,
  started_at TEXT NOT NULL, started_ts REAL NOT NULL, completed_at TEXT, duration_ms INTEGER,
  tokens_total INTEGER DEFAULT 0, cost TEXT DEFAULT '0.000000'
);
CREATE INDEX IF NOT EXISTS runs_session ON runs(session_id);
CREATE TABLE IF NOT EXISTS attempts (
  run_id TEXT NOT NULL, akey TEXT NOT NULL, ord INTEGER NOT NULL, step_id TEXT NOT NULL,
  top_level INTEGER NOT NULL, loop_index INTEGER, attempt INTEGER NOT NULL,
  status TEXT NOT NULL, started_at TEXT, completed_at TEXT, duration_ms INTEGER,
  model TEXT, prompt_tokens INTEGER, completion_tokens INTEGER, total_tokens INTEGER,
  cost TEXT, input_json TEXT, output_json TEXT, error_json TEXT,
  input_size INTEGER, output_size INTEGER, truncated INTEGER DEFAULT 0,
  PRIMARY KEY (run_id, akey)
);
CREATE TABLE IF NOT EXISTS events (
  run_id TEXT NOT NULL, seq INTEGER NOT NULL, payload TEXT NOT NULL,
  PRIMARY KEY (run_id, seq)
);
CREATE TABLE IF NOT EXISTS versions (
  org TEXT NOT NULL, project TEXT NOT NULL, slug TEXT NOT NULL, version INTEGER NOT NULL,
  flow_json TEXT NOT NULL, published_at TEXT NOT NULL,
  PRIMARY KEY (org, project, slug, version)
);
CREATE TABLE IF NOT EXISTS balances (org TEXT PRIMARY KEY, balance TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS idempotency (
  scope TEXT PRIMARY KEY, fingerprint TEXT NOT NULL, status INTEGER NOT NULL,
  body TEXT NOT NULL, created_ts REAL NOT NULL
);
"""

JSON_COLUMNS = frozenset({
    "flow_json", "pending_calls", "inputs_json", "outputs_json", "result_json", "error_json",
    "input_json", "output_json",
})


def connect(path: str) -> sqlite3.Connection:
    """Open a connection in autocommit mode with WAL and a busy timeout.

    The busy timeout only matters for a second process (the `publish` CLI)
    writing the same file while a server runs.
    """
    if path != ":memory:":
        Path(path).parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(path, check_same_thread=False, isolation_level=None, timeout=10)
    conn.row_factory = sqlite3.Row
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.executescript(SCHEMA)
    return conn


def _decode(row: sqlite3.Row | None) -> dict[str, Any] | None:
    if row is None:
        return None
    out = dict(row)
    for key in JSON_COLUMNS & out.keys():
        if out[key] is not None:
            out[key] = json.loads(out[key])
    return out


def _encode(values: dict[str, Any]) -> dict[str, Any]:
    return {k: (json.dumps(v) if k in JSON_COLUMNS and v is not None else v)
            for k, v in values.items()}


class Store:
    """Async facade over the writer thread. Create it, then `close()` at shutdown.

    Writes queued with `submit` during one event-loop iteration are handed to
    the thread together (one wake-up, not one per statement), and the thread
    runs whatever it has been handed in one transaction; awaited results are
    released only after that transaction commits. Under load this turns a
    dozen small commits and thread wake-ups per run into one or two.
    """

    def __init__(self, path: str) -> None:
        self.path = path
        self._queue: queue.SimpleQueue[list[_Item] | None] = queue.SimpleQueue()
        self._pending: list[_Item] = []
        self._handover_scheduled = False
        ready: Future[None] = Future()
        self._thread = threading.Thread(target=self._run, args=(ready,), name="noukai-db",
                                        daemon=True)
        self._thread.start()
        ready.result()  # re-raises a failure to open the database
        self._closed = False

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._hand_over()
        self._queue.put(None)
        self._thread.join()

    # -- execution plumbing -------------------------------------------------
    async def call(self, fn: Callable[..., T], *args: Any) -> T:
        """Run `fn(conn, *args)` on the writer thread and await its (committed) result.

        Everything submitted before runs first (same queue, same order).
        """
        future: Future[T] = Future()
        self._pending.append((fn, args, future))
        self._hand_over()
        return await asyncio.wrap_future(future)

    def submit(self, fn: Callable[..., Any], *args: Any) -> None:
        """Queue `fn(conn, *args)` without waiting; failures are logged.

        Call from the event loop's thread (or before/after the loop runs).
        """
        self._pending.append((fn, args, None))
        self._schedule_handover()

    def submit_then(self, fn: Callable[..., Any], args: tuple[Any, ...],
                    then: Callable[[], None]) -> None:
        """Queue `fn(conn, *args)` like `submit`; once it is committed, `then()` runs
        on the event loop's thread (never if the write failed: it is logged instead).

        Call from the event loop's thread. Callbacks run in submission order.
        """
        loop = asyncio.get_running_loop()
        future: Future[Any] = Future()

        def committed(done: Future[Any]) -> None:  # on the writer thread
            if done.exception() is not None:
                log.error("database write failed: %s", type(done.exception()).__name__)
                return
            with contextlib.suppress(RuntimeError):  # loop closed: nobody left to tell
                loop.call_soon_threadsafe(then)

        future.add_done_callback(committed)
        self._pending.append((fn, args, future))
        self._schedule_handover()

    def _schedule_handover(self) -> None:
        """Hand this loop iteration's writes over together, once it yields."""
        if self._handover_scheduled:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            self._hand_over()
            return
        self._handover_scheduled = True
        loop.call_soon(self._hand_over)

    def call_sync(self, fn: Callable[..., T], *args: Any) -> T:
        """Blocking variant for start-up and shutdown code outside the loop."""
        future: Future[T] = Future()
        self._pending.append((fn, args, future))
        self._hand_over()
        return future.result()

    def _hand_over(self) -> None:
        self._handover_scheduled = False
        if self._pending:
            batch, self._pending = self._pending, []
            self._queue.put(batch)

    def _run(self, ready: Future[None]) -> None:
        try:
            conn = connect(self.path)
        except BaseException as exc:  # reported to the constructor
            ready.set_exception(exc)
            return
        ready.set_result(None)
        try:
            while True:
                first = self._queue.get()
                batches = [first]
                while len(batches) < 100:
                    try:
                        batches.append(self._queue.get_nowait())
                    except queue.Empty:
                        break
                stop = any(b is None for b in batches)
                self._run_batch(conn, [item for b in batches if b is not None for item in b])
                if stop:
                    return
        finally:
            conn.close()

    @staticmethod
    def _run_batch(conn: sqlite3.Connection, batch: list[_Item]) -> None:
        outcomes: list[tuple[Future[Any], bool, Any]] = []
        conn.execute("BEGIN")
        for fn, args, future in batch:
            try:
                result = fn(conn, *args)
            except Exception as exc:
                if future is None:
                    log.error("database write failed: %s", type(exc).__name__)
                else:
                    outcomes.append((future, False, exc))
                continue
            if future is not None:
                outcomes.append((future, True, result))
        try:
            conn.execute("COMMIT")
        except sqlite3.Error as exc:  # e.g. disk full: report it, keep the thread alive
            log.error("database commit failed: %s", type(exc).__name__)
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            outcomes = [(future, False, exc) for future, _ok, _value in outcomes]
        for future, ok, value in outcomes:
            if ok:
                future.set_result(value)
            else:
                future.set_exception(value)


_Item = tuple[Callable[..., Any], tuple[Any, ...], "Future[Any] | None"]


# -- statements (each runs on the writer thread) ----------------------------
def insert(conn: sqlite3.Connection, table: str, values: dict[str, Any]) -> None:
    enc = _encode(values)
    cols = ", ".join(enc)
    marks = ", ".join("?" for _ in enc)
    conn.execute(f"INSERT OR REPLACE INTO {table} ({cols}) VALUES ({marks})", list(enc.values()))


def update_run(conn: sqlite3.Connection, run_id: str, values: dict[str, Any]) -> None:
    enc = _encode(values)
    sets = ", ".join(f"{k} = ?" for k in enc)
    conn.execute(f"UPDATE runs SET {sets} WHERE id = ?", [*enc.values(), run_id])


def get_run(conn: sqlite3.Connection, run_id: str) -> dict[str, Any] | None:
    return _decode(conn.execute("SELECT * FROM runs WHERE id = ?", (run_id,)).fetchone())


def session_runs(conn: sqlite3.Connection, session_id: str) -> list[dict[str, Any]]:
    rows = conn.execute(
        "SELECT * FROM runs WHERE session_id = ? ORDER BY started_ts, rowid", (session_id,))
    return [d for d in (_decode(r) for r in rows) if d is not None]


def run_attempts(conn: sqlite3.Connection, run_id: str) -> list[dict[str, Any]]:
    rows = conn.execute("SELECT * FROM attempts WHERE run_id = ? ORDER BY ord", (run_id,))
    return [d for d in (_decode(r) for r in rows) if d is not None]


def append_event(conn: sqlite3.Connection, run_id: str, seq: int, payload: str) -> None:
    conn.execute("INSERT OR IGNORE INTO events (run_id, seq, payload) VALUES (?, ?, ?)",
                 (run_id, seq, payload))


def events_after(conn: sqlite3.Connection, run_id: str, after: int) -> list[tuple[int, str]]:
    rows = conn.execute(
        "SELECT seq, payload FROM events WHERE run_id = ? AND seq > ? ORDER BY seq",
        (run_id, after))
    return [(int(r[0]), str(r[1])) for r in rows]


def last_event_seq(conn: sqlite3.Connection, run_id: str) -> int:
    row = conn.execute("SELECT MAX(seq) FROM events WHERE run_id = ?", (run_id,)).fetchone()
    return int(row[0] or 0)


def get_balance(conn: sqlite3.Connection, org: str) -> str | None:
    row = conn.execute("SELECT balance FROM balances WHERE org = ?", (org,)).fetchone()
    return None if row is None else str(row[0])


def set_balance(conn: sqlite3.Connection, org: str, balance: str) -> None:
    conn.execute("INSERT OR REPLACE INTO balances (org, balance) VALUES (?, ?)", (org, balance))


def latest_version(conn: sqlite3.Connection, org: str, project: str, slug: str,
                   version: int | None) -> tuple[int, dict[str, Any]] | None:
    """Published version `version`, or the newest one (production) if None."""
    if version is None:
        row = conn.execute(
            "SELECT version, flow_json FROM versions WHERE org=? AND project=? AND slug=? "
            "ORDER BY version DESC LIMIT 1", (org, project, slug)).fetchone()
    else:
        row = conn.execute(
            "SELECT version, flow_json FROM versions WHERE org=? AND project=? AND slug=? "
            "AND version=?", (org, project, slug, version)).fetchone()
    return None if row is None else (int(row[0]), json.loads(row[1]))


def publish_version(conn: sqlite3.Connection, org: str, project: str, slug: str,
                    flow: dict[str, Any], now: str) -> int:
    """Store the next numbered version atomically (safe against a concurrent publish)."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        row = conn.execute("SELECT MAX(version) FROM versions WHERE org=? AND project=? "
                           "AND slug=?", (org, project, slug)).fetchone()
        number = int(row[0] or 0) + 1
        conn.execute("INSERT INTO versions VALUES (?, ?, ?, ?, ?, ?)",
                     (org, project, slug, number, json.dumps(flow), now))
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    return number


def interrupted_runs(conn: sqlite3.Connection) -> list[tuple[dict[str, Any], int]]:
    """Runs a stopped process left executing or queued, each with its last event seq.

    Step-through runs waiting between blocks and runs paused for tools are not
    here: nothing was executing for them, so they stay resumable.
    """
    rows = conn.execute("SELECT * FROM runs WHERE status IN ('pending', 'running') "
                        "AND state IN ('active', 'queued') ORDER BY started_ts, rowid")
    return [(run, last_event_seq(conn, run["id"]))
            for run in (_decode(r) for r in rows) if run is not None]


def fail_running_attempts(conn: sqlite3.Connection, run_id: str, error: dict[str, Any],
                          now: str) -> None:
    """Close the attempts a stopped process left `running`: failed with `error`.

    The duration runs up to `now` (when the failure was noticed), measured from
    the attempt's own `started_at`.
    """
    ended = _parse_utc(now)
    rows = conn.execute("SELECT akey, started_at FROM attempts WHERE run_id = ? "
                        "AND status = 'running'", (run_id,)).fetchall()
    for akey, started_at in rows:
        duration = None
        if started_at:
            duration = max(0, int((ended - _parse_utc(started_at)).total_seconds() * 1000))
        conn.execute("UPDATE attempts SET status = 'failed', completed_at = ?, "
                     "duration_ms = ?, error_json = ? WHERE run_id = ? AND akey = ?",
                     (now, duration, json.dumps(error), run_id, akey))


def _parse_utc(stamp: str) -> datetime:
    """Our own `...Z` timestamps (Python 3.10's `fromisoformat` rejects the `Z`)."""
    return datetime.fromisoformat(stamp.replace("Z", "+00:00"))


def idempotency_get(conn: sqlite3.Connection, scope: str) -> dict[str, Any] | None:
    row = conn.execute("SELECT * FROM idempotency WHERE scope = ?", (scope,)).fetchone()
    return None if row is None else dict(row)


def idempotency_put(conn: sqlite3.Connection, scope: str, fingerprint: str, status: int,
                    body: str, ts: float) -> None:
    conn.execute("INSERT OR REPLACE INTO idempotency VALUES (?, ?, ?, ?, ?)",
                 (scope, fingerprint, status, body, ts))
