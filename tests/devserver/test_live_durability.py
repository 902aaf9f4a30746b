"""A live-trace follower never sees an event id the database does not hold yet.

If a follower saw event N before N was committed, a crash right then would let
the restarted server give id N to another event (the recovery's `step_error`),
and the follower's `Last-Event-ID: N` resume would skip it: a gap. The test
makes the server's writes wait for real, by holding SQLite's write lock from
this process, and checks every frame a follower receives against the file.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Callable
from typing import Any

import httpx
from devserver_helpers import Api, events, wait_for

from noukai_devserver.pytest_plugin import DevServer

HOLD = 1.0  # seconds the write lock is held unless a frame arrives first


def stored_event(db: str, run_id: str, seq: int) -> dict[str, Any] | None:
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        row = conn.execute("SELECT payload FROM events WHERE run_id = ? AND seq = ?",
                           (run_id, seq)).fetchone()
    finally:
        conn.close()
    return None if row is None else json.loads(row[0])


def test_followers_get_only_committed_events(
        noukai_devserver_factory: Callable[..., DevServer]) -> None:
    server = noukai_devserver_factory()
    api = Api(server)
    first = events(api.step("two-step", {"message": "durable", "stepIndex": 0})[1])
    execution = first[0]["executionId"]
    received: list[tuple[int, dict[str, Any], dict[str, Any] | None]] = []
    arrived = threading.Event()
    stream_path = f"/seq/local/demo/two-step/runs/{execution}/trace/stream"

    def follow() -> None:
        last_id = None
        with api.http.stream("GET", stream_path) as response:
            for line in response.iter_lines():
                if line.startswith("id: "):
                    last_id = int(line[4:])
                elif line.startswith("data: ") and last_id is not None:
                    payload = json.loads(line[6:])
                    # Checked at once, while the test may still hold the write lock.
                    received.append((last_id, payload, stored_event(server.db, execution,
                                                                    last_id)))
                    if last_id > len(first) - 1:  # past the stored log: a live event
                        arrived.set()
                    if payload["eventType"] == "flow_completed":
                        return

    follower = threading.Thread(target=follow)
    follower.start()
    # The stored log (run_started .. step_completed, no step_paused) is replayed first.
    wait_for(lambda: any(p["eventType"] == "step_completed" for _, p, _s in received))
    lock = sqlite3.connect(server.db, isolation_level=None, timeout=10)
    lock.execute("BEGIN IMMEDIATE")  # the server's writer now waits for us
    answer: dict[str, httpx.Response] = {}
    continuation = threading.Thread(target=lambda: answer.setdefault("r", api.http.post(
        api.flow("two-step", "step"), json={"executionId": execution, "stepIndex": 1,
                                            "accumulatedOutputs": {"draft": first[3]["output"]}})))
    continuation.start()
    try:
        arrived.wait(HOLD)  # an uncommitted event would arrive now; none may
    finally:
        lock.execute("ROLLBACK")
        lock.close()
    continuation.join(30)
    follower.join(30)
    assert answer["r"].status_code == 200
    kinds = [p["eventType"] for _, p, _s in received]
    assert kinds[-2:] == ["step_completed", "flow_completed"]
    assert [seq for seq, _p, _s in received] == list(range(1, len(received) + 1))
    for seq, payload, stored in received:
        assert stored == payload, f"event {seq} reached a follower before it was stored"
    api.close()
    server.stop()
