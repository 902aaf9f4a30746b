"""Restart persistence and job recovery after SIGKILL (issue 3 item 8, issue 4 item 4)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable

import httpx
from devserver_helpers import Api, Frame, events, parse_sse, wait_for
from test_contract_sse_parser import check_event

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
    server.restart()  # SIGTERM, then start on the same database
    assert [api.get(p).content for p in paths] == before
    server.kill()  # and a crash loses nothing that was answered either
    server.start()
    assert [api.get(p).content for p in paths] == before
    # The step-through run waiting between blocks continues after the restart.
    _r, rest = api.step("two-step", {"executionId": step_run, "stepIndex": 1,
                                     "accumulatedOutputs": {"draft": events(frames)[3]["output"]}},
                        headers={"X-Session-Id": sid})
    assert events(rest)[-1]["eventType"] == "flow_completed"
    session = api.get(f"/seq/sessions/{sid}").json()
    assert [e["status"] for e in session["executions"]] == ["completed", "completed"]
    api.close()
    server.stop()


def live_trace(server: DevServer, slug: str, run_id: str) -> list[Frame]:
    """The whole live trace of a run, read with plain httpx until the server closes it."""
    response = httpx.get(f"{server.base_url}/seq/local/demo/{slug}/runs/{run_id}/trace/stream",
                         headers={"Authorization": f"Bearer {server.api_key}"}, timeout=30)
    assert response.status_code == 200
    return parse_sse(response.content)


def test_a_job_running_when_the_server_is_killed_ends_like_any_failed_run(
        noukai_devserver_factory: Callable[..., DevServer]) -> None:
    server = noukai_devserver_factory(slow_seconds=30, job_workers=1)
    api = Api(server)
    sid = str(uuid.uuid4())
    job_id = api.http.post(api.flow("slow-steps", "jobs"), json={"message": "x"},
                           headers={"X-Session-Id": sid}).json()["executionId"]
    queued_id = api.http.post(api.flow("slow-steps", "jobs"), json={"message": "q"}).json()[
        "executionId"]
    poll = api.flow("slow-steps", f"jobs/{job_id}")
    run_path = f"/seq/local/demo/slow-steps/runs/{job_id}"
    # Killed while its first block's attempt is recorded as running.
    wait_for(lambda: [s["status"] for s in api.get(f"{run_path}/trace").json()["steps"]]
             == ["running"])
    server.kill()
    server.restart()
    frames = [f for f in live_trace(server, "slow-steps", job_id) if f.data is not None]
    ids = [f.id for f in frames]
    assert ids == list(range(1, len(frames) + 1))  # every frame has its sequence id
    replay = events(frames)
    assert [e["eventType"] for e in replay] == [
        "run_started", "step_started", "step_input", "step_error", "flow_completed"]
    for payload in replay:
        check_event(payload)  # the frames recovery adds satisfy §6.3 like live ones
    assert replay[-2]["stepId"] == "first"
    assert replay[-2]["error"]["code"] == "SERVER_RESTARTED"
    assert replay[-1]["result"] is None
    assert replay[-1]["summary"]["status"] == "failed"
    assert replay[-1]["summary"]["error"]["code"] == "SERVER_RESTARTED"
    # Summary, trace, session and job poll tell the same story.
    summary = api.get(run_path).json()
    assert summary["status"] == "failed" and summary["errorAtStep"] == "first"
    assert summary["completedAt"] is not None
    trace = api.get(f"{run_path}/trace").json()
    assert trace["flowRun"] == summary
    [attempt] = trace["steps"]
    assert attempt["stepId"] == "first" and attempt["status"] == "failed"
    assert attempt["errorContext"]["code"] == "SERVER_RESTARTED"
    assert attempt["completedAt"] is not None and attempt["durationMs"] >= 0
    [execution] = api.get(f"/seq/sessions/{sid}").json()["executions"]
    assert execution["status"] == "failed" and execution["errorAtStep"] == "first"
    assert execution["steps"][-1]["status"] == "failed"
    assert execution["steps"][-1]["errorSnapshot"]["code"] == "SERVER_RESTARTED"
    body = api.get(poll).json()
    assert body["status"] == "failed"
    assert "stopped before this run finished" in body["error"]
    # The job still waiting for the one worker is failed too, at its first block.
    queued = api.get(api.flow("slow-steps", f"jobs/{queued_id}")).json()
    assert queued["status"] == "failed" and "stopped before" in queued["error"]
    assert [e["eventType"] for e in events(live_trace(server, "slow-steps", queued_id))] == [
        "run_started", "step_error", "flow_completed"]
    # A second restart finds nothing left to recover and changes nothing.
    server.restart()
    assert events(live_trace(server, "slow-steps", job_id)) == replay
    # The restarted server runs new jobs normally.
    fresh = api.http.post(api.flow("hello-world", "jobs"), json={"message": "y"}).json()
    wait_for(lambda: api.get(api.flow("hello-world", f"jobs/{fresh['executionId']}")).json()[
        "status"] == "completed")
    api.close()
    server.stop()


async def test_two_continuations_of_a_reloaded_run_run_its_block_once(
        noukai_devserver_factory: Callable[..., DevServer]) -> None:
    """After a restart the run is loaded from the database: by the first of two
    overlapping calls only, so the second finds it busy or already finished."""
    server = noukai_devserver_factory()
    api = Api(server)
    _r, frames = api.step("two-step", {"message": "both", "stepIndex": 0})
    run_id = events(frames)[0]["executionId"]
    server.restart()
    cursor = {"executionId": run_id, "stepIndex": 1,
              "accumulatedOutputs": {"draft": events(frames)[3]["output"]}}
    async with httpx.AsyncClient(base_url=server.base_url, timeout=30, headers={
            "Authorization": f"Bearer {server.api_key}"}) as client:
        replies = await asyncio.gather(*[
            client.post("/seq/local/demo/two-step/step", json=cursor) for _ in range(2)])
    assert sorted(r.status_code for r in replies) == [200, 409]
    attempts = api.get(f"/seq/local/demo/two-step/runs/{run_id}/steps/summarise/trace",
                       params={"attempt": "all"}).json()["attempts"]
    assert len(attempts) == 1
    api.close()
    server.stop()
