"""E9 sessions: tagging, cassette contents, and errors (contract §11)."""

from __future__ import annotations

import uuid

import httpx
from devserver_helpers import Api, assert_error, events, wait_for

from noukai_devserver.pytest_plugin import DevServer

TOOL = {"type": "function", "function": {"name": "get_weather"}}


def _session(api: Api, session_id: str) -> httpx.Response:
    return api.get(f"/seq/sessions/{session_id}")


def test_cassette_spans_execute_step_job_and_tool_resume(api: Api) -> None:
    sid = str(uuid.uuid4())
    tag = {"X-Session-Id": sid}
    executed = api.execute("two-step", {"message": "one"}, headers=tag)
    assert executed.headers["x-noukai-session"] == sid
    executed_body = executed.json()
    # A step-through run: two /step calls, one execution; the tag is bound at creation,
    # so a continuation without the header stays in the session.
    _r, first = api.step("two-step", {"message": "two", "stepIndex": 0}, headers=tag)
    step_id = events(first)[0]["executionId"]
    _r, second = api.step("two-step", {"executionId": step_id, "stepIndex": 1,
                                       "accumulatedOutputs": {"draft": events(first)[3]["output"]}})
    step_result = events(second)[-1]["result"]
    # A tool-resumed execute: the resume carries no X-Session-Id.
    paused = api.execute("tools-enabled", {"message": "Weather in Lima?", "tools": [TOOL]},
                         headers=tag).json()
    resumed = api.execute("tools-enabled", {
        "executionId": paused["executionId"], "pausedAtStep": paused["pausedAtStep"],
        "iterationsUsed": 1, "tools": [TOOL], "accumulatedOutputs": {},
        "toolCallMessages": paused["toolCallMessages"] + [
            {"role": "tool", "toolCallId": paused["toolCalls"][0]["id"], "content": "hot"}],
    }).json()
    job = api.http.post(api.flow("hello-world", "jobs"), json={"message": "job"},
                        headers=tag).json()
    wait_for(lambda: api.get(api.flow("hello-world", f"jobs/{job['executionId']}")).json()[
        "status"] == "completed")

    body = _session(api, sid).json()
    assert body["sessionId"] == sid
    runs = body["executions"]
    assert [(r["slug"], r["triggerType"]) for r in runs] == [
        ("two-step", "execute"), ("two-step", "step"), ("tools-enabled", "execute"),
        ("hello-world", "job")]
    assert [r["executionId"] for r in runs] == [executed_body["executionId"], step_id,
                                                paused["executionId"], job["executionId"]]
    for run in runs:
        assert run["status"] == "completed"
        assert run["snapshotsAvailable"] is True and run["traceCaptureMode"] == "full"
        assert run["errorAtStep"] is None
    assert [s["stepId"] for s in runs[0]["steps"]] == ["draft", "summarise"]
    assert runs[0]["steps"][-1]["outputSnapshot"] == executed_body["result"]
    assert runs[1]["steps"][-1]["outputSnapshot"] == step_result
    assert runs[1]["steps"][0]["outputSnapshot"] == events(first)[3]["output"]
    assert runs[2]["steps"][-1]["outputSnapshot"] == resumed["result"]
    for step in runs[0]["steps"]:
        assert isinstance(step["inputSnapshot"], dict)
        assert "__rendered_prompt__" not in step["outputSnapshot"]


def test_failed_run_records_error_at_step(api: Api) -> None:
    sid = str(uuid.uuid4())
    api.execute("always-fails", {"message": "x"}, headers={"X-Session-Id": sid})
    run = _session(api, sid).json()["executions"][0]
    assert run["status"] == "failed" and run["errorAtStep"] == "explode"
    failed = run["steps"][-1]
    assert failed["stepId"] == "explode" and failed["status"] == "failed"
    assert failed["errorSnapshot"]["code"] == "MODEL_ERROR"
    assert failed["attempt"] == 2


def test_loop_sessions_keep_one_entry_per_top_level_block(api: Api) -> None:
    sid = str(uuid.uuid4())
    result = api.execute("loop-list", {}, headers={"X-Session-Id": sid}).json()["result"]
    steps = _session(api, sid).json()["executions"][0]["steps"]
    assert [s["stepId"] for s in steps] == ["each"]
    assert steps[0]["outputSnapshot"] == result


def test_session_errors(api: Api, custom_server: DevServer) -> None:
    assert_error(_session(api, "not-a-uuid"), 400, "INVALID_SESSION_ID")
    assert_error(_session(api, str(uuid.uuid4())), 404, "SESSION_NOT_FOUND")
    # A session holding another org's execution is forbidden to this key.
    sid = str(uuid.uuid4())
    headers = {"Authorization": "Bearer nk_other_key", "X-Session-Id": sid}
    httpx.post(custom_server.base_url + "/seq/other/app/hello/execute",
               json={"message": "x"}, headers=headers)
    forbidden = httpx.get(f"{custom_server.base_url}/seq/sessions/{sid}",
                          headers={"Authorization": "Bearer nk_acme_key"})
    assert_error(forbidden, 403, "FORBIDDEN")


def test_expired_session_is_410(noukai_devserver_factory) -> None:  # type: ignore[no-untyped-def]
    server = noukai_devserver_factory(session_retention=0.2)
    client = Api(server)
    sid = str(uuid.uuid4())
    client.execute("hello-world", {"message": "x"}, headers={"X-Session-Id": sid})
    assert_error(wait_for(lambda: (lambda r: r if r.status_code == 410 else None)(
        _session(client, sid))), 410, "SESSION_EXPIRED")
    client.close()
    server.stop()


def test_any_spelling_of_a_uuid_finds_the_session_and_resumes_echo_it(api: Api) -> None:
    sid = uuid.uuid4()
    sent = str(sid).upper()
    paused = api.execute("tools-enabled", {"message": "Weather in Kyiv?", "tools": [TOOL]},
                         headers={"X-Session-Id": sent})
    assert paused.headers["x-noukai-session"] == sent
    body = paused.json()
    resumed = api.execute("tools-enabled", {
        "executionId": body["executionId"], "pausedAtStep": "weather", "tools": [TOOL],
        "toolCallMessages": body["toolCallMessages"] + [
            {"role": "tool", "toolCallId": body["toolCalls"][0]["id"], "content": "ok"}]})
    assert resumed.headers["x-noukai-session"] == str(sid)
    for spelling in (str(sid), sent, sid.hex):
        executions = _session(api, spelling).json()["executions"]
        assert [e["executionId"] for e in executions] == [body["executionId"]]

