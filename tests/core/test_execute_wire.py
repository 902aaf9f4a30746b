"""`execute()`, tool loops, jobs and live traces on the wire, against a scripted socket server."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from misbehaving_server import Conn, ScriptedServer, SeenRequest

import noukai_core as nk

KEY = "nk_exec_test"
Frame = Callable[..., bytes]

PAUSED = {
    "status": "tool_calls_required",
    "executionId": "E",
    "pausedAtStep": "llm",
    "iterationsUsed": 1,
    "toolCallMessages": [{"role": "user", "content": "Tokyo?"}],
    "toolCalls": [
        {"id": "c1", "type": "function", "function": {"name": "w", "arguments": '{"l": "Tokyo"}'}}
    ],
    "accumulatedOutputs": {"first": 1},
    "flowId": "F",
    "blockCount": 2,
}
DONE = {
    "status": "completed",
    "result": {"answer": "sunny"},
    "executionId": "E",
    "flowId": "F",
    "blockCount": 2,
}


def replies(*bodies: dict[str, Any]) -> list[Callable[[Any, Any], None]]:
    def make(body: dict[str, Any]) -> Callable[[Any, Any], None]:
        return lambda request, conn: conn.respond(200, body)

    return [make(b) for b in bodies]


def handler(calls: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [
        {"tool_call_id": c["id"], "output": json.loads(c["function"]["arguments"])["l"]}
        for c in calls
    ]


def test_tool_handler_auto_resumes(scripted_server: ScriptedServer) -> None:
    scripted_server.responders = replies(PAUSED, DONE)
    with (
        nk.Noukai(api_key=KEY, base_url=scripted_server.base_url) as c,
        nk.trace_scope_sync() as scope,
    ):
        result = c.flow("o/p/f").execute(
            message="Tokyo?", tools=[{"type": "function"}], tool_handler=handler
        )
    assert isinstance(result, nk.ExecuteResult) and result.output == {"answer": "sunny"}
    assert result.session_id == scope.session_id
    fresh, resume = scripted_server.posts("/execute")
    assert fresh.headers["x-session-id"] == scope.session_id
    assert "x-session-id" not in resume.headers
    body = resume.json()
    assert (
        body["executionId"] == "E" and body["pausedAtStep"] == "llm" and body["iterationsUsed"] == 1
    )
    assert body["accumulatedOutputs"] == {"first": 1} and "message" not in body
    assert body["toolCallMessages"] == [
        {"role": "user", "content": "Tokyo?"},
        {"role": "tool", "toolCallId": "c1", "content": "Tokyo"},
    ]


async def test_async_handler_and_round_limit(scripted_server: ScriptedServer) -> None:
    scripted_server.responders = replies(PAUSED, PAUSED)

    async def async_handler(calls: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return handler(calls)

    async with nk.AsyncNoukai(api_key=KEY, base_url=scripted_server.base_url) as c:
        with pytest.raises(nk.ToolCallLimitError) as info:
            await c.flow("o/p/f").execute(
                message="x",
                tools=[{"type": "function"}],
                tool_handler=async_handler,
                max_tool_rounds=1,
            )
    assert info.value.code == "TOOL_CALL_LIMIT_CLIENT" and info.value.execution_id == "E"
    assert len(scripted_server.posts()) == 2


async def test_manual_resume_async_and_wrong_twin(scripted_server: ScriptedServer) -> None:
    scripted_server.responders = replies(PAUSED, DONE)
    async with nk.AsyncNoukai(api_key=KEY, base_url=scripted_server.base_url) as c:
        result = await c.flow("o/p/f").execute(message="x", tools=[{"type": "function"}])
        assert isinstance(result, nk.PausedResult) and result.tool_calls[0]["id"] == "c1"
        with pytest.raises(TypeError, match=r"await result\.resume"):
            result.resume_sync(tool_results=[])
        final = await result.resume(tool_results=handler(result.tool_calls))
    assert isinstance(final, nk.ExecuteResult) and final.result == {"answer": "sunny"}


def test_manual_resume_sync_and_wrong_twin(scripted_server: ScriptedServer) -> None:
    scripted_server.responders = replies(PAUSED, DONE)
    with nk.Noukai(api_key=KEY, base_url=scripted_server.base_url) as c:
        result = c.flow("o/p/f").execute(message="x", tools=[{"type": "function"}])
        assert isinstance(result, nk.PausedResult)
        with pytest.raises(TypeError, match="resume_sync"):
            result.resume(tool_results=[])
        final = result.resume_sync(tool_results=handler(result.tool_calls))
    assert final.status == "completed"


def test_failed_run_is_a_result_with_the_error(scripted_server: ScriptedServer) -> None:
    failed = {
        "status": "failed",
        "result": None,
        "executionId": "E",
        "flowId": "F",
        "blockCount": 1,
        "error": {"code": "BLOCK_FAILED", "message": "nope", "stepId": "s1"},
    }
    scripted_server.responders = replies(failed)
    with nk.Noukai(api_key=KEY, base_url=scripted_server.base_url) as c:
        result = c.flow("o/p/f").execute(message="x")
    assert isinstance(result, nk.ExecuteResult) and result.status == "failed"
    assert result.error is not None
    assert (result.error.code, result.error.message, result.error.step_id) == (
        "BLOCK_FAILED",
        "nope",
        "s1",
    )


def test_messages_are_sent_instead_of_message(scripted_server: ScriptedServer) -> None:
    scripted_server.responders = replies(DONE)
    turns = [{"role": "user", "content": "hi"}]
    with nk.Noukai(api_key=KEY, base_url=scripted_server.base_url) as c:
        c.flow("o/p/f").execute(
            messages=turns, block_overrides={"s": {"temperature": 0.5}}, tool_choice="auto"
        )
    body = scripted_server.posts()[0].json()
    assert body["messages"] == turns and "message" not in body
    assert body["blockOverrides"] == {"s": {"temperature": 0.5}} and body["toolChoice"] == "auto"


def test_session_precedence(scripted_server: ScriptedServer) -> None:
    scripted_server.responders = replies(*[DONE] * 4)
    with nk.Noukai(
        api_key=KEY, base_url=scripted_server.base_url, session_id="client-default"
    ) as c:
        flow = c.flow("o/p/f")
        assert flow.execute(message="x").session_id == "client-default"
        assert flow.execute(message="x", session_id="explicit").session_id == "explicit"
        with nk.trace_scope_sync() as scope:
            assert flow.execute(message="x").session_id == scope.session_id
            assert flow.execute(message="x", session_id="explicit").session_id == "explicit"
    sent = [r.headers.get("x-session-id") for r in scripted_server.requests]
    assert sent == ["client-default", "explicit", scope.session_id, "explicit"]


def test_outside_any_scope_session_id_is_none(scripted_server: ScriptedServer) -> None:
    scripted_server.responders = replies(DONE)
    with nk.Noukai(api_key=KEY, base_url=scripted_server.base_url) as c:
        assert c.flow("o/p/f").execute(message="x").session_id is None


def test_job_wait_times_out_and_polls_unversioned(scripted_server: ScriptedServer) -> None:
    accepted = {"executionId": "J1", "status": "pending", "flowId": "F", "blockCount": 1}
    pending = {"executionId": "J1", "status": "pending"}
    scripted_server.responders = [
        lambda r, conn: conn.respond(200, accepted),
        *replies(*[pending] * 50),
    ]
    log: list[dict[str, Any]] = []
    with nk.Noukai(api_key=KEY, base_url=scripted_server.base_url, log_handler=log.append) as c:
        job = c.flow("o/p/f").execute_async(message="x", version=2)
        assert job.execution_id == "J1"
        # One poll answered, so the server has recorded it whatever the load.
        assert job.poll().status == "pending"
        # Every answer is "pending": however few polls fit in 50 ms, it can only run out.
        with pytest.raises(nk.APITimeoutError) as info:
            job.wait(timeout=0.05, poll_interval=0.01)
    assert info.value.execution_id == "J1"
    seen = list(scripted_server.requests)  # the wait's last polls may still be arriving
    assert [r.path for r in seen[:2]] == ["/seq/o/p/f/v2/jobs", "/seq/o/p/f/jobs/J1"]
    assert {r.path for r in seen[1:]} == {"/seq/o/p/f/jobs/J1"}
    sent = [e["path"] for e in log if e["phase"] == "request"]
    assert len(sent) >= 3, "wait() never polled"
    assert set(sent[1:]) == {"/seq/o/p/f/jobs/J1"}
    # The wait gave up on its last poll; under load the server may not have accepted
    # that connection yet. Connections are accepted in order, so once a last request
    # is answered every earlier one has been taken up, and teardown finds none half-begun.
    assert httpx.get(f"{scripted_server.base_url}/probe").status_code == 200


async def test_async_job_completes(scripted_server: ScriptedServer) -> None:
    accepted = {"executionId": "J1", "status": "pending", "flowId": "F", "blockCount": 1}
    done = {"executionId": "J1", "status": "completed", "result": {"r": 1}, "error": None}
    scripted_server.responders = [
        lambda r, conn: conn.respond(200, accepted),
        lambda r, conn: conn.respond(404, {"detail": {"code": "JOB_NOT_FOUND", "message": "race"}}),
        *replies(done),
    ]
    async with nk.AsyncNoukai(api_key=KEY, base_url=scripted_server.base_url) as c:
        job = await c.flow("o/p/f").execute_async(message="x")
        assert (
            await job.poll()
        ).status == "pending"  # a 404 right after submission is a queue race
        status = await job.wait(timeout=5, poll_interval=0.01)
    assert status.status == "completed" and status.result == {"r": 1}


def test_live_trace_reconnects_with_last_event_id_and_never_repeats(
    scripted_server: ScriptedServer, frame: Frame
) -> None:
    def with_id(event_id: str, body: bytes) -> bytes:
        return f"id: {event_id}\n".encode() + body

    first = with_id("1", frame("run_started", runId="E", executionId="E")) + with_id(
        "2", frame("step_started", executionId="E", stepId="a")
    )

    def drop(request: SeenRequest, conn: Conn) -> None:
        conn.start_stream()
        conn.send(first)
        conn.reset()

    def resume(request: SeenRequest, conn: Conn) -> None:
        conn.start_stream()
        # A server that replays from the start must not make us yield twice.
        conn.send(
            first + with_id("3", frame("step_completed", executionId="E", stepId="a", output=1))
        )
        conn.send(with_id("4", frame("flow_completed", executionId="E", result=1)))

    scripted_server.responders = [drop, resume]
    with nk.Noukai(api_key=KEY, base_url=scripted_server.base_url) as c:
        events = list(c.flow("o/p/f").run("E").live_trace())
    assert [e.type for e in events] == [
        "run_started",
        "step_started",
        "step_completed",
        "flow_completed",
    ]
    first_req, second_req = scripted_server.requests
    assert (
        first_req.path == "/seq/o/p/f/runs/E/trace/stream"
        and "last-event-id" not in first_req.headers
    )
    assert second_req.headers["last-event-id"] == "2"


def test_step_trace_query_parameters(scripted_server: ScriptedServer) -> None:
    step = {
        "stepId": "s",
        "attempt": 2,
        "status": "completed",
        "tokens": {"prompt": 1, "completion": 2, "total": 3},
    }
    attempts = {"stepId": "s", "attempts": [dict(step, attempt=1), step]}
    scripted_server.responders = replies(step, attempts)
    with nk.Noukai(api_key=KEY, base_url=scripted_server.base_url) as c:
        run = c.flow("o/p/f").run("E")
        one = run.step_trace("s", attempt=2, loop_index=0)
        every = run.step_trace("s", attempt="all")
    assert isinstance(one, nk.StepTrace) and one.tokens is not None and one.tokens.total == 3
    assert isinstance(every, nk.StepAttempts) and [a.attempt for a in every.attempts] == [1, 2]
    assert (
        scripted_server.requests[0].path == "/seq/o/p/f/runs/E/steps/s/trace?attempt=2&loop_index=0"
    )
    assert scripted_server.requests[1].path == "/seq/o/p/f/runs/E/steps/s/trace?attempt=all"


def test_resume_takes_a_per_call_timeout(scripted_server: ScriptedServer) -> None:
    scripted_server.responders = [*replies(PAUSED), lambda request, conn: conn.stall()]
    with nk.Noukai(api_key=KEY, base_url=scripted_server.base_url, timeout=30) as c:
        result = c.flow("o/p/f").execute(message="x", tools=[{"type": "function"}])
        assert isinstance(result, nk.PausedResult)
        with pytest.raises(nk.APITimeoutError):
            result.resume_sync(tool_results=handler(result.tool_calls), timeout=0.2)
    assert len(scripted_server.posts()) == 2


def never_answered_polls(server: Any) -> None:
    accepted = {"executionId": "J1", "status": "pending", "flowId": "F", "blockCount": 1}
    server.responders = [
        lambda r, conn: conn.respond(200, accepted),
        *[lambda r, conn: conn.stall(20)] * 3,
    ]


def test_job_wait_is_bounded_even_when_a_poll_is_never_answered(
    scripted_server: ScriptedServer,
) -> None:
    """`wait(timeout=0.3)` must not hang for the client's 30 s request timeout."""
    never_answered_polls(scripted_server)
    with nk.Noukai(api_key=KEY, base_url=scripted_server.base_url, timeout=30) as c:
        job = c.flow("o/p/f").execute_async(message="x")
        with pytest.raises(nk.APITimeoutError) as info:
            job.wait(timeout=0.3, poll_interval=0.05)
    assert (info.value.code, info.value.execution_id) == ("JOB_WAIT_TIMEOUT", "J1")
    assert len(scripted_server.requests) >= 2  # the submission, then at least one poll


async def test_async_job_wait_is_bounded_even_when_a_poll_is_never_answered(
    scripted_server: ScriptedServer,
) -> None:
    never_answered_polls(scripted_server)
    async with nk.AsyncNoukai(api_key=KEY, base_url=scripted_server.base_url, timeout=30) as c:
        job = await c.flow("o/p/f").execute_async(message="x")
        with pytest.raises(nk.APITimeoutError) as info:
            await job.wait(timeout=0.3, poll_interval=0.05)
    assert (info.value.code, info.value.execution_id) == ("JOB_WAIT_TIMEOUT", "J1")


def _stalled_poll_script(server: ScriptedServer) -> None:
    accepted = {"executionId": "J1", "status": "pending", "flowId": "F", "blockCount": 1}
    server.responders = [
        lambda r, conn: conn.respond(200, accepted),
        *[lambda r, conn: conn.stall(10.0)] * 4,  # every poll goes unanswered
    ]


def _poll_attempts(log: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [e for e in log if e["path"] == "/seq/o/p/f/jobs/J1" and e["phase"] != "response"]


def test_job_wait_never_retries_a_stalled_poll_past_its_timeout(
    scripted_server: ScriptedServer,
) -> None:
    """A retry (and its sleep) would start after the wait's budget is spent: none is made."""
    _stalled_poll_script(scripted_server)
    log: list[dict[str, Any]] = []
    with nk.Noukai(api_key=KEY, base_url=scripted_server.base_url, max_retries=3,
                   log_handler=log.append) as c:
        job = c.flow("o/p/f").execute_async(message="x")
        with pytest.raises(nk.APITimeoutError) as info:
            job.wait(timeout=0.3, poll_interval=0.01)
    assert info.value.code == "JOB_WAIT_TIMEOUT"
    assert [e["phase"] for e in _poll_attempts(log)] == ["request"]  # one attempt, no retry


async def test_async_job_wait_never_retries_a_stalled_poll_past_its_timeout(
    scripted_server: ScriptedServer,
) -> None:
    _stalled_poll_script(scripted_server)
    log: list[dict[str, Any]] = []
    async with nk.AsyncNoukai(api_key=KEY, base_url=scripted_server.base_url, max_retries=3,
                              log_handler=log.append) as c:
        job = await c.flow("o/p/f").execute_async(message="x")
        with pytest.raises(nk.APITimeoutError) as info:
            await job.wait(timeout=0.3, poll_interval=0.01)
    assert info.value.code == "JOB_WAIT_TIMEOUT"
    assert [e["phase"] for e in _poll_attempts(log)] == ["request"]
