"""Restart persistence and job recovery after SIGKILL (issue 3 item 8, issue 4 item 4)."""

from __future__ import annotations

import uuid
from collections.abc import Callable

from devserver_helpers import Api, events, wait_for

from noukai_devserver.pytest_plugin import DevServer


def test_runs_traces_and_sessions_read_the_same_after_a_restart(
        noukai_devserver_factory: Callable[..., DevServer]) -> None:
    server = noukai_devserver_factory()
    api = Api(server)
    sid = str(uuid.uuid4())
    run_id = api.execute("flaky-retry", {"message": "keep"},
                         headers={"X-Session-Id": sid}).json()["executionId"]
    _r, frames = api.step("two-step", {"message": "later", "stepIndex": 0},
                          headers={"X-Session-Id": sid})
    step_run = events(frames)[0]["executionId"]
    paths = [f"/seq/local/demo/flaky-retry/runs/{run_id}",
             f"/seq/local/demo/flaky-retry/runs/{run_id}/trace",
             f"/seq/local/demo/flaky-retry/runs/{run_id}/steps/flaky/trace?attempt=all",
             f"/seq/local/demo/flaky-retry/runs/{run_id}/trace/stream",
             f"/seq/sessions/{sid}"]
    before = [api.get(p).content for p in paths]
    server.restart()
    after = [api.get(p).content for p in paths]
    assert after == before
    # The step-through run waiting between blocks continues after the restart.
    _r, rest = api.step("two-step", {"executionId": step_run, "stepIndex": 1,
                                     "accumulatedOutputs": {"draft": events(frames)[3]["output"]}},
                        headers={"X-Session-Id": sid})
    assert events(rest)[-1]["eventType"] == "flow_completed"
    session = api.get(f"/seq/sessions/{sid}").json()
    assert [e["status"] for e in session["executions"]] == ["completed", "completed"]
    api.close()
    server.stop()


def test_a_job_running_when_the_server_is_killed_is_failed_on_restart(
        noukai_devserver_factory: Callable[..., DevServer]) -> None:
    server = noukai_devserver_factory(slow_seconds=5)
    api = Api(server)
    job_id = api.http.post(api.flow("slow-steps", "jobs"), json={"message": "x"}).json()[
        "executionId"]
    poll = api.flow("slow-steps", f"jobs/{job_id}")
    wait_for(lambda: api.get(poll).json()["status"] == "running")
    server.kill()
    server.start()
    body = api.get(poll).json()
    assert body["status"] == "failed"
    assert "stopped while this run was executing" in body["error"]
    summary = api.get(f"/seq/local/demo/slow-steps/runs/{job_id}").json()
    assert summary["status"] == "failed"
    # The restarted server runs new jobs normally.
    fresh = api.http.post(api.flow("hello-world", "jobs"), json={"message": "y"}).json()
    wait_for(lambda: api.get(api.flow("hello-world", f"jobs/{fresh['executionId']}")).json()[
        "status"] == "completed")
    api.close()
    server.stop()
