"""E2 `/step`: the step protocol of contract §7 over real HTTP."""

from __future__ import annotations

import httpx
from devserver_helpers import Api, assert_error, events, parse_sse, wait_for

from noukai_devserver.pytest_plugin import DevServer


def _types(frames: list) -> list[str]:
    return [e["eventType"] for e in events(frames)]


def _leave_after(server: DevServer, slug: str, body: dict, event: str) -> str:
    """Open a /step stream, hang up once `event` arrives; returns the execution id."""
    with httpx.stream("POST", f"{server.base_url}/seq/local/demo/{slug}/step", json=body,
                      headers={"Authorization": f"Bearer {server.api_key}"},
                      timeout=30) as response:
        buffer = b""
        for chunk in response.iter_bytes():
            buffer += chunk
            if f"event: {event}".encode() in buffer:
                break
    return str(events(parse_sse(buffer[: buffer.rindex(b"\n\n") + 2]))[0]["executionId"])


def test_one_block_flow_starts_with_run_started_and_ends_with_flow_completed(api: Api) -> None:
    response, frames = api.step("hello-world", {"message": "hi", "stepIndex": 0,
                                                "accumulatedOutputs": {}, "parameters": {},
                                                "inputOverrides": {}, "runRemaining": False},
                                headers={"Accept": "application/json"})
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/event-stream")
    assert response.headers["x-request-id"]
    got = events(frames)
    assert _types(frames) == ["run_started", "step_started", "step_input", "step_completed",
                              "flow_completed"]
    started = got[0]
    assert started["runId"] == started["executionId"]
    assert started["stepCount"] == 1 and started["flowId"]
    assert got[-1]["result"] == got[-2]["output"] == {"response": "Echo: hi"}


def test_two_block_flow_steps_one_block_per_call(api: Api) -> None:
    _r, first = api.step("two-step", {"message": "go", "stepIndex": 0})
    assert _types(first) == ["run_started", "step_started", "step_input", "step_completed",
                             "step_paused"]
    paused = events(first)[-1]
    execution = events(first)[0]["executionId"]
    assert paused["stepId"] == "draft" and paused["stepIndex"] == 0
    outputs = {"draft": events(first)[3]["output"]}
    _r, second = api.step("two-step", {"executionId": execution, "stepIndex": 1,
                                       "accumulatedOutputs": outputs, "message": None})
    assert _types(second) == ["step_started", "step_input", "step_completed", "flow_completed"]
    done = events(second)
    assert done[0]["stepId"] == "summarise" and done[0]["stepIndex"] == 1
    assert done[-1]["result"] == done[-2]["output"]
    assert {e["executionId"] for e in done} == {execution}


def test_run_remaining_runs_every_block_without_step_paused(api: Api) -> None:
    _r, frames = api.step("two-step", {"message": "all", "stepIndex": 0, "runRemaining": True})
    types = _types(frames)
    assert "step_paused" not in types
    assert types.count("step_completed") == 2
    assert types[0] == "run_started" and types[-1] == "flow_completed"
    completed = [e for e in events(frames) if e["eventType"] == "step_completed"]
    assert [c["stepId"] for c in completed] == ["draft", "summarise"]


def test_continuation_uses_the_clients_accumulated_outputs(api: Api) -> None:
    _r, first = api.step("two-step", {"message": "go", "stepIndex": 0})
    execution = events(first)[0]["executionId"]
    _r, second = api.step("two-step", {"executionId": execution, "stepIndex": 1,
                                       "accumulatedOutputs": {"draft": {"response": "client"}}})
    assert events(second)[-1]["result"] == {"response": "Echo: Summarise: client"}


def test_streamed_block_sends_several_step_output_events(api: Api) -> None:
    _r, frames = api.step("stream-story", {"message": "a robot", "stepIndex": 0})
    outputs = [e for e in events(frames) if e["eventType"] == "step_output"]
    assert len(outputs) >= 3
    final = next(e for e in events(frames) if e["eventType"] == "step_completed")
    assert outputs[-1]["outputData"] == final["output"]
    assert final["output"]["response"].startswith("Once upon a time there was a robot.")


def test_failing_block_ends_with_step_error(api: Api) -> None:
    _r, frames = api.step("always-fails", {"message": "x", "stepIndex": 0,
                                           "runRemaining": True})
    types = _types(frames)
    assert types[-1] == "step_error"
    assert "flow_completed" not in types
    error = events(frames)[-1]
    assert error["stepId"] == "explode"
    assert error["error"]["code"] == "MODEL_ERROR"


def test_first_call_with_a_non_zero_index_is_rejected(api: Api) -> None:
    response, _ = api.step("two-step", {"message": "x", "stepIndex": 1})
    assert_error(response, 400, "INVALID_FIRST_CALL")


def test_unknown_execution_is_run_not_found(api: Api) -> None:
    response, _ = api.step("two-step", {"executionId": "nope", "stepIndex": 1})
    assert_error(response, 404, "RUN_NOT_FOUND")


def test_skipping_ahead_is_invalid_step_index(api: Api) -> None:
    _r, frames = api.step("slow-steps", {"message": "x", "stepIndex": 0})
    execution = events(frames)[0]["executionId"]
    response, _ = api.step("slow-steps", {"executionId": execution, "stepIndex": 2})
    assert_error(response, 400, "INVALID_STEP_INDEX")


def test_step_on_the_draft_path_is_invalid_version(api: Api) -> None:
    response = api.http.post("/seq/local/demo/hello-world/v0/step",
                             json={"message": "x", "stepIndex": 0})
    assert_error(response, 400, "INVALID_VERSION")


def test_rerunning_the_same_cursor_is_bounded(api: Api) -> None:
    _r, frames = api.step("two-step", {"message": "loop", "stepIndex": 0})
    execution = events(frames)[0]["executionId"]
    statuses = []
    for _ in range(25):
        response, _f = api.step("two-step", {"executionId": execution, "stepIndex": 0})
        statuses.append(response.status_code)
        if response.status_code != 200:
            assert_error(response, 409, "STEP_RERUN_LIMIT")
            break
    assert statuses[-1] == 409
    assert statuses.count(200) >= 20


def test_heartbeats_are_comments_while_a_block_runs(slow_server: DevServer) -> None:
    api = Api(slow_server)  # a 1 s block against 0.1 s heartbeats: room to spare under load
    _r, frames = api.step("slow-steps", {"message": "beat", "stepIndex": 0})
    assert any("keepalive" in c for f in frames for c in f.comments)
    assert _types(frames)[-1] == "step_paused"
    api.close()


def test_client_disconnect_cancels_the_run_before_the_next_block(
        slow_server: DevServer) -> None:
    server = slow_server
    api = Api(server)
    execution = _leave_after(server, "slow-steps", {"message": "bye", "stepIndex": 0,
                                                    "runRemaining": True}, "step_started")
    run_path = f"/seq/local/demo/slow-steps/runs/{execution}"
    summary = wait_for(lambda: (lambda b: b if b["status"] == "cancelled" else None)(
        api.get(run_path).json()))
    assert summary["errorAtStep"] == "first"
    trace = api.get(f"{run_path}/trace").json()
    assert [s["stepId"] for s in trace["steps"]] == ["first"]
    assert trace["steps"][0]["status"] == "failed"
    assert trace["steps"][0]["errorContext"]["code"] == "CANCELLED"
    # The recorded event log ends the run: no step of block 2 ever appears in it.
    replay = events(parse_sse(api.get(f"{run_path}/trace/stream").content))
    assert [e["eventType"] for e in replay][-2:] == ["step_error", "flow_completed"]
    assert replay[-1]["summary"]["status"] == "cancelled"
    assert "second" not in {e.get("stepId") for e in replay}
    api.close()


def test_loop_inner_steps_use_only_drop_safe_events(api: Api) -> None:
    _r, frames = api.step("loop-list", {"stepIndex": 0, "parameters": {"items": ["x", "y"]}})
    got = events(frames)
    assert [e["eventType"] for e in got].count("step_completed") == 1
    progress = [e for e in got if e["eventType"] == "step_progress"]
    assert [(p["stepId"], p["loopIndex"]) for p in progress] == [("describe", 0),
                                                                 ("describe", 1)]
    loop_done = next(e for e in got if e["eventType"] == "loop_completed")
    assert loop_done["stepId"] == "each" and loop_done["iterations"] == 2
    assert got[-1]["result"] == {"items": [{"response": "Echo: Item 0: x"},
                                           {"response": "Echo: Item 1: y"}]}


def test_disconnect_while_output_streams_records_the_attempt_failed(
        noukai_devserver_factory) -> None:  # type: ignore[no-untyped-def]
    server = noukai_devserver_factory(stream_delay=2.0)
    api = Api(server)
    run_id = _leave_after(server, "stream-story", {"message": "cut", "stepIndex": 0},
                          "step_output")
    path = f"/seq/local/demo/stream-story/runs/{run_id}"
    wait_for(lambda: api.get(path).json()["status"] == "cancelled")
    step = api.get(f"{path}/steps/story/trace").json()
    assert step["status"] == "failed" and step["errorContext"]["code"] == "CANCELLED"
    api.close()
    server.stop()
