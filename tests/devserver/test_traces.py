"""E5-E8: run summary, full trace, step traces, live trace stream (contract §10)."""

from __future__ import annotations

import re
import threading
from decimal import Decimal

import httpx
from devserver_helpers import Api, Frame, assert_error, events, parse_sse, wait_for

from noukai_devserver.pytest_plugin import DevServer

TIMESTAMP = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
STATUSES = {"running", "completed", "failed", "skipped"}


def _run(api: Api, slug: str, run_id: str, suffix: str = "") -> httpx.Response:
    return api.get(f"/seq/local/demo/{slug}/runs/{run_id}{suffix}")


def test_run_summary_of_an_execute(api: Api) -> None:
    run_id = api.execute("two-step", {"message": "sum"}).json()["executionId"]
    summary = _run(api, "two-step", run_id).json()
    assert summary["id"] == run_id and summary["status"] == "completed"
    assert summary["triggerType"] == "execute" and summary["stepCount"] == 2
    assert isinstance(summary["durationMs"], int)
    assert TIMESTAMP.match(summary["startedAt"]) and TIMESTAMP.match(summary["completedAt"])


def test_full_trace_has_latest_attempt_per_block_in_order(api: Api) -> None:
    run_id = api.execute("two-step", {"message": "trace me"}).json()["executionId"]
    trace = _run(api, "two-step", run_id, "/trace").json()
    assert trace["flowRun"]["id"] == run_id and trace["flowRun"]["status"] == "completed"
    assert trace["flowRun"]["flowId"]
    steps = trace["steps"]
    assert [s["stepId"] for s in steps] == ["draft", "summarise"]
    for step in steps:
        assert step["status"] in STATUSES and step["attempt"] == 1
        assert step["tokens"]["total"] > 0 and Decimal(step["costUsd"]) > 0
        assert isinstance(step["inputContext"], dict)
        assert isinstance(step["durationMs"], int) and step["modelUsed"] == "local/echo-1"
        assert TIMESTAMP.match(step["startedAt"])
    assert steps[1]["outputContext"] == {"response": "Echo: Summarise: Echo: trace me"}


def test_step_trace_attempts_of_a_retried_block(api: Api) -> None:
    run_id = api.execute("flaky-retry", {"message": "again"}).json()["executionId"]
    base = "/steps/flaky/trace"
    latest = _run(api, "flaky-retry", run_id, base).json()
    assert latest["stepId"] == "flaky" and latest["attempt"] == 2
    named = api.get(f"/seq/local/demo/flaky-retry/runs/{run_id}{base}",
                    params={"attempt": "latest"}).json()
    assert named == latest
    assert latest["status"] == "completed"
    every = api.get(f"/seq/local/demo/flaky-retry/runs/{run_id}{base}",
                    params={"attempt": "all"}).json()
    assert every["stepId"] == "flaky"
    assert [(a["attempt"], a["status"]) for a in every["attempts"]] == [(1, "failed"),
                                                                         (2, "completed")]
    first = api.get(f"/seq/local/demo/flaky-retry/runs/{run_id}{base}",
                    params={"attempt": "1"}).json()
    assert first["errorContext"]["code"] == "MODEL_UNAVAILABLE"
    missing = api.get(f"/seq/local/demo/flaky-retry/runs/{run_id}{base}",
                      params={"attempt": "3"})
    assert_error(missing, 404, "STEP_NOT_FOUND")
    assert_error(_run(api, "flaky-retry", run_id, "/steps/nope/trace"), 404, "STEP_NOT_FOUND")


def test_loop_index_appears_in_traces(api: Api) -> None:
    body = api.execute("loop-list", {"parameters": {"items": ["a", "b", "c"]}}).json()
    assert body["result"] == {"items": [{"response": "Echo: Item 0: a"},
                                        {"response": "Echo: Item 1: b"},
                                        {"response": "Echo: Item 2: c"}]}
    run_id = body["executionId"]
    trace = _run(api, "loop-list", run_id, "/trace").json()
    assert [(s["stepId"], s["loopIndex"]) for s in trace["steps"]] == [
        ("each", None), ("describe", 0), ("describe", 1), ("describe", 2)]
    # Costs sum once: on the inner attempts, not again on the loop.
    assert trace["steps"][0]["costUsd"] is None
    inner = sum(Decimal(s["costUsd"]) for s in trace["steps"][1:])
    assert inner > 0
    _r, frames = api.step("loop-list", {"stepIndex": 0,
                                        "parameters": {"items": ["a", "b", "c"]}})
    done = next(e for e in events(frames) if e["eventType"] == "step_completed")
    assert Decimal(done["costUsd"]) == inner
    one = api.get(f"/seq/local/demo/loop-list/runs/{run_id}/steps/describe/trace",
                  params={"loop_index": "1"}).json()
    assert one["loopIndex"] == 1 and one["inputContext"]["item"] == "b"
    alias = api.get(f"/seq/local/demo/loop-list/runs/{run_id}/steps/describe/trace",
                    params={"loopIndex": "2", "attempt": "all"}).json()
    assert [a["loopIndex"] for a in alias["attempts"]] == [2]
    bad = api.get(f"/seq/local/demo/loop-list/runs/{run_id}/steps/describe/trace",
                  params={"loop_index": "x"})
    assert_error(bad, 422, "VALIDATION_ERROR")


def test_runs_belong_to_the_flow_in_the_path(api: Api) -> None:
    run_id = api.execute("hello-world", {"message": "x"}).json()["executionId"]
    assert_error(_run(api, "two-step", run_id), 404, "RUN_NOT_FOUND")
    assert_error(_run(api, "hello-world", "missing", "/trace"), 404, "RUN_NOT_FOUND")
    assert_error(_run(api, "hello-world", "missing", "/trace/stream"), 404, "RUN_NOT_FOUND")


def test_live_trace_of_a_finished_execute_replays_and_closes(api: Api) -> None:
    run_id = api.execute("two-step", {"message": "replay"}).json()["executionId"]
    response = _run(api, "two-step", run_id, "/trace/stream")
    assert response.headers["content-type"].startswith("text/event-stream")
    frames = [f for f in parse_sse(response.content) if f.data]
    types = [f.data["eventType"] for f in frames]
    assert types[0] == "run_started" and types[-1] == "flow_completed"
    assert frames[0].data["runId"] == run_id
    assert types.count("step_completed") == 2 and "step_paused" not in types
    assert [f.id for f in frames] == list(range(1, len(frames) + 1))
    assert frames[-1].data["result"] == {"response": "Echo: Summarise: Echo: replay"}


def test_live_trace_of_a_step_run_has_no_protocol_frames(api: Api) -> None:
    _r, first = api.step("two-step", {"message": "s", "stepIndex": 0})
    run_id = events(first)[0]["executionId"]
    api.step("two-step", {"executionId": run_id, "stepIndex": 1,
                          "accumulatedOutputs": {"draft": events(first)[3]["output"]}})
    frames = parse_sse(_run(api, "two-step", run_id, "/trace/stream").content)
    types = [e["eventType"] for e in events(frames)]
    assert types.count("run_started") == 1 and "step_paused" not in types
    assert types[-1] == "flow_completed"


def test_live_trace_of_a_failed_run_ends_with_a_null_flow_completed(api: Api) -> None:
    run_id = api.execute("always-fails", {"message": "x"}).json()["executionId"]
    replay = events(parse_sse(_run(api, "always-fails", run_id, "/trace/stream").content))
    assert [e["eventType"] for e in replay][-2:] == ["step_error", "flow_completed"]
    assert replay[-1]["result"] is None and replay[-1]["summary"]["status"] == "failed"


def test_live_trace_of_a_tool_pause_ends_with_the_pause_frame(api: Api) -> None:
    tool = {"type": "function", "function": {"name": "get_weather"}}
    paused = api.execute("tools-enabled", {"message": "Weather in Rome?",
                                           "tools": [tool]}).json()
    replay = events(parse_sse(_run(api, "tools-enabled", paused["executionId"],
                                   "/trace/stream").content))
    assert replay[-1]["eventType"] == "step_paused_for_tool_calls"


def _read(server: DevServer, path: str, limit: int | None = None,
          last_id: int | None = None) -> list[Frame]:
    """Read a live trace; stop after `limit` data frames (closing the connection)."""
    headers = {"Authorization": f"Bearer {server.api_key}"}
    if last_id is not None:
        headers["Last-Event-ID"] = str(last_id)
    buffer = b""
    with httpx.stream("GET", server.base_url + path, headers=headers, timeout=30) as response:
        assert response.status_code == 200
        for chunk in response.iter_bytes():
            buffer += chunk
            complete = buffer[: buffer.rfind(b"\n\n") + 2] if b"\n\n" in buffer else b""
            if limit is not None and sum(f.data is not None
                                         for f in parse_sse(complete)) >= limit:
                buffer = complete
                break
    frames = [f for f in parse_sse(buffer) if f.data is not None]
    return frames[:limit] if limit is not None else frames


class _Follower(threading.Thread):
    """Reads a live trace in the background; `frames` grows as data frames arrive."""

    def __init__(self, server: DevServer, path: str, last_id: int | None = None) -> None:
        super().__init__(daemon=True)
        self.server, self.path, self.last_id = server, path, last_id
        self.frames: list[Frame] = []
        self.error: BaseException | None = None

    def run(self) -> None:
        headers = {"Authorization": f"Bearer {self.server.api_key}"}
        if self.last_id is not None:
            headers["Last-Event-ID"] = str(self.last_id)
        buffer = b""
        try:
            with httpx.stream("GET", self.server.base_url + self.path, headers=headers,
                              timeout=30) as response:
                for chunk in response.iter_bytes():
                    buffer += chunk
                    end = buffer.rfind(b"\n\n")
                    if end >= 0:
                        self.frames += [f for f in parse_sse(buffer[: end + 2]) if f.data]
                        buffer = buffer[end + 2:]
        except BaseException as exc:  # re-raised by `result()` in the test's thread
            self.error = exc

    def wait_frames(self, count: int) -> None:
        wait_for(lambda: self.error is not None or len(self.frames) >= count)
        assert self.error is None, self.error

    def result(self) -> list[tuple[int | None, dict | None]]:
        self.join(30)
        assert not self.is_alive() and self.error is None, self.error
        return [(f.id, f.data) for f in self.frames]


def test_live_trace_tails_a_running_run_and_resumes_with_last_event_id(
        server: DevServer, api: Api) -> None:
    # A step-through run between blocks is running but idle: every subscriber
    # below is provably attached before the second block produces live events.
    _r, first = api.step("two-step", {"message": "tail", "stepIndex": 0})
    run_id = events(first)[0]["executionId"]
    stored = len(events(first)) - 1  # all but the protocol-only step_paused
    path = f"/seq/local/demo/two-step/runs/{run_id}/trace/stream"
    followers = [_Follower(server, path) for _ in range(3)]
    for follower in followers:
        follower.start()
    for follower in followers:
        follower.wait_frames(stored)
    cut = _read(server, path, limit=2)  # a subscriber cut after 2 events...
    resumed = _Follower(server, path, last_id=cut[-1].id)  # ...reconnects with its last id
    resumed.start()
    resumed.wait_frames(stored - 2)
    _r, second = api.step("two-step", {"executionId": run_id, "stepIndex": 1,
                                       "accumulatedOutputs": {"draft": events(first)[3]["output"]}})
    full = followers[0].result()
    assert [data["eventType"] for _id, data in full] == [
        "run_started", "step_started", "step_input", "step_completed",
        "step_started", "step_input", "step_completed", "flow_completed"]
    assert full[-1][1] == events(second)[-1]
    assert [(f.id, f.data) for f in cut] + resumed.result() == full
    assert followers[1].result() == full and followers[2].result() == full


def test_any_last_event_id_is_answered_cleanly(server: DevServer, api: Api) -> None:
    run_id = api.execute("hello-world", {"message": "ids"}).json()["executionId"]
    path = f"/seq/local/demo/hello-world/runs/{run_id}/trace/stream"
    whole = [f.data for f in parse_sse(api.get(path).content) if f.data]
    for sent, expected in (("99999999999999999999999", []), ("1", whole[1:]),
                           ("-1", whole), ("x", whole), ("02", whole[2:])):
        response = api.get(path, headers={"Last-Event-ID": sent})
        assert response.status_code == 200
        assert [f.data for f in parse_sse(response.content) if f.data] == expected, sent
    assert "OverflowError" not in server.log_text


def test_live_trace_of_a_waiting_step_run_heartbeats_then_closes_when_idle(
        noukai_devserver_factory) -> None:  # type: ignore[no-untyped-def]
    server = noukai_devserver_factory(live_idle_timeout=0.5)
    api = Api(server)
    _r, first = api.step("two-step", {"message": "idle", "stepIndex": 0})
    run_id = events(first)[0]["executionId"]
    path = f"/seq/local/demo/two-step/runs/{run_id}/trace/stream"
    frames = parse_sse(api.get(path).content)
    assert any("keepalive" in c for f in frames for c in f.comments)
    assert frames[-1].data is None and "idle" in frames[-1].comments[-1]
    seen = [f for f in frames if f.data]
    assert seen[-1].data["eventType"] == "step_completed"
    api.step("two-step", {"executionId": run_id, "stepIndex": 1,
                          "accumulatedOutputs": {"draft": events(first)[3]["output"]}})
    rest = [f for f in parse_sse(api.get(path, headers={"Last-Event-ID": str(seen[-1].id)})
                                 .content) if f.data]
    assert rest[0].id == seen[-1].id + 1
    assert [f.data["eventType"] for f in rest][-1] == "flow_completed"
    api.close()
    server.stop()


def test_run_and_job_routes_also_answer_under_a_version_segment(api: Api) -> None:
    run_id = api.execute("two-step", {"message": "v"}).json()["executionId"]
    base = f"/seq/local/demo/two-step/runs/{run_id}"
    versioned = f"/seq/local/demo/two-step/v0/runs/{run_id}"
    for suffix in ("", "/trace", "/steps/draft/trace", "/trace/stream"):
        assert api.get(versioned + suffix).content == api.get(base + suffix).content
    assert_error(api.get(f"/seq/local/demo/two-step/latest/runs/{run_id}"), 404, "NOT_FOUND")
    job = api.http.post(api.flow("hello-world", "jobs"), json={"message": "j"}).json()
    polled = api.get(f"/seq/local/demo/hello-world/v3/jobs/{job['executionId']}")
    assert polled.json()["executionId"] == job["executionId"]
