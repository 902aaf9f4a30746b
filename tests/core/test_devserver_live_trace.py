"""`live_trace()` across a dev server that dies mid-run: it reconnects, never repeats."""

from __future__ import annotations

from typing import Any

import noukai_core as nk


def test_live_trace_survives_a_server_crash_without_repeats(noukai_devserver_factory: Any) -> None:
    # The crash must land while a block runs, however long this process lags before it
    # reads `step_started` (a lagging client could otherwise read the whole finished run
    # from its socket buffer). Nothing waits for a block to end: the kill ends the run,
    # and the restarted server fails it at once. So blocks are made longer than any lag
    # (the test's own timeout), and the end of the trace proves the kill landed mid-block.
    server = noukai_devserver_factory(slow_seconds=120.0)
    log: list[dict[str, Any]] = []
    with nk.Noukai(
        api_key=server.api_key, base_url=server.base_url, timeout=10, log_handler=log.append
    ) as client:
        flow = client.flow("local/demo/slow-steps")
        job = flow.execute_async(message="go")
        seen: list[tuple[str | None, str]] = []
        crashed = False
        for event in flow.run(job.execution_id).live_trace():
            seen.append((event.event_id, event.type))
            if event.type == "step_started" and not crashed:
                crashed = True
                server.kill()  # SIGKILL: the open stream is cut mid-run
                server.start()  # same port and database; the run is marked interrupted
    ids = [event_id for event_id, _ in seen]
    assert crashed and seen[0][1] == "run_started"
    assert [kind for _, kind in seen][-2:] == ["step_error", "flow_completed"]
    assert "step_completed" not in {kind for _, kind in seen}
    assert None not in ids and len(ids) == len(set(ids)), f"an event came twice: {seen}"
    connections = [
        e for e in log if e["phase"] == "response" and e["path"].endswith("/trace/stream")
    ]
    assert len(connections) >= 2, "the client never reconnected"
