"""Contract checks of the client: the `/step` cursor, jobs, traces and session fetches.

§5.1/§7.1/§8.2 (every `/step` body of a run, tool resumes on streams), §9
(jobs), §10 (traces) and §11.2 (session fetches and capture tags), against
the fake Noukai of `core_contract_fake`.
"""

from __future__ import annotations

import uuid

import pytest
from core_contract_checks import (
    FLOW,
    SESSION_HEADER_ALLOWED,
    check_body_style,
    check_headers,
    step_bodies,
    tool_results,
)
from core_contract_fake import (
    BLOCKS,
    CALL,
    EXEC_ID,
    KEY,
    PAUSED_MESSAGES,
    TOOLS,
    FakeNoukai,
    block_output,
)

from noukai_core import (
    AsyncNoukai,
    FlowExecutionError,
    Noukai,
    replay_scope_sync,
    trace_scope_sync,
)

# -- §5.1 / §7.1 / §8.2: the /step cursor ----------------------------------------------


def test_step_cursor_counts_step_completed_frames(fake: FakeNoukai) -> None:
    session_id = str(uuid.uuid4())
    with Noukai(KEY, base_url=fake.base_url, org="acme", project="app") as client:
        steps = list(
            client.flow("hello").steps(
                "hi", parameters={"p": 1}, block_overrides={"a": {"t": 1}}, session_id=session_id
            )
        )
    assert [s.step_id for s in steps] == BLOCKS
    first, second, third = step_bodies(fake, session_id)
    assert first == {
        "stepIndex": 0,
        "accumulatedOutputs": {},
        "message": "hi",
        "parameters": {"p": 1},
        "inputOverrides": {},
        "runRemaining": False,
        "iterationsUsed": 0,
        "trace": False,
        "blockOverrides": {"a": {"t": 1}},
    }
    for body, index in ((second, 1), (third, 2)):
        assert body["executionId"] == EXEC_ID and body["stepIndex"] == index
        assert body["accumulatedOutputs"] == {b: block_output(b) for b in BLOCKS[:index]}
        assert "message" not in body and body["parameters"] == {}
        assert body["runRemaining"] is False and body["blockOverrides"] == {"a": {"t": 1}}
        assert "toolCallMessages" not in body and "pausedAtStep" not in body


def test_step_cursor_repeats_overrides_but_not_first_call_inputs(fake: FakeNoukai) -> None:
    """§5.1: attachments and parameters on the first call only; inputOverrides,
    blockOverrides, trace and runRemaining on every call."""
    attachment = {"url": "https://example.test/a.png", "mime_type": "image/png"}
    with Noukai(KEY, base_url=fake.base_url, org="acme", project="app") as client:
        list(
            client.flow("hello").steps(
                "hi",
                attachments=[attachment],
                trace=True,
                parameters={"p": 1},
                input_overrides={"b": {"x": 1}},
            )
        )
    first, *rest = step_bodies(fake)
    assert first["attachments"] == [attachment] and first["parameters"] == {"p": 1}
    assert len(rest) == 2
    for body in [first, *rest]:
        assert body["inputOverrides"] == {"b": {"x": 1}} and body["trace"] is True
    for body in rest:
        assert "attachments" not in body and body["parameters"] == {}


def test_manual_resume_of_a_stream_tool_pause(fake: FakeNoukai) -> None:
    """§8.2 via `ToolCallsRequired.resume`: the resume /step keeps X-Session-Id."""
    session_id = str(uuid.uuid4())
    seen: list[str] = []
    with Noukai(KEY, base_url=fake.base_url, session_id=session_id) as client:
        for event in client.flow("acme/app/hello").events("Weather in Tokyo?", tools=TOOLS):
            seen.append(event.type)
            if event.type == "tool_calls_required":
                event.resume(tool_results=tool_results([CALL]))
    assert seen[-1] == "flow_completed" and "tool_calls_required" in seen
    bodies = step_bodies(fake, session_id)
    assert [b["stepIndex"] for b in bodies] == [0, 1, 1, 2]
    assert bodies[2]["toolCallMessages"][:2] == PAUSED_MESSAGES
    assert bodies[2]["iterationsUsed"] == 1 and "message" not in bodies[2]


def test_run_remaining_is_one_request(client: Noukai, fake: FakeNoukai) -> None:
    events = list(client.flow("hello").events("hi", run_remaining=True))
    assert [e.type for e in events][-1] == "flow_completed"
    [body] = step_bodies(fake)
    assert body["runRemaining"] is True and body["stepIndex"] == 0


def test_step_tool_resume_body(fake: FakeNoukai) -> None:
    """§8.2: resume with executionId, paused stepIndex, results; header still sent."""
    session_id = str(uuid.uuid4())
    with Noukai(KEY, base_url=fake.base_url, session_id=session_id) as client:
        steps = list(
            client.flow("acme/app/hello").steps(
                "Weather in Tokyo?", tools=TOOLS, tool_choice="auto", tool_handler=tool_results
            )
        )
    assert [s.step_id for s in steps] == BLOCKS
    bodies = step_bodies(fake, session_id)
    assert [b["stepIndex"] for b in bodies] == [0, 1, 1, 2]
    resume = bodies[2]
    assert resume["executionId"] == EXEC_ID and resume["iterationsUsed"] == 1
    assert resume["toolCallMessages"][:2] == PAUSED_MESSAGES
    assert len(resume["toolCallMessages"]) == 3 and resume["tools"] == TOOLS
    # §6.3: the pause frame's accumulatedOutputs are merged into the cursor.
    assert resume["accumulatedOutputs"] == {"a": block_output("a"), "server-side": {"k": 1}}
    assert "message" not in resume and "pausedAtStep" not in resume
    assert all(b["tools"] == TOOLS and b["toolChoice"] == "auto" for b in bodies)
    assert "toolCallMessages" not in bodies[3] and bodies[3]["iterationsUsed"] == 0


def test_async_steps_send_the_same_cursor(fake: FakeNoukai) -> None:
    import asyncio

    async def run() -> list[str]:
        async with AsyncNoukai(KEY, base_url=fake.base_url, org="acme", project="app") as client:
            return [s.step_id async for s in client.flow("hello").steps("hi")]

    assert asyncio.run(run()) == BLOCKS
    bodies = step_bodies(fake)
    assert [b["stepIndex"] for b in bodies] == [0, 1, 2]
    assert [b.get("executionId") for b in bodies] == [None, EXEC_ID, EXEC_ID]
    assert bodies[2]["accumulatedOutputs"] == {"a": block_output("a"), "b": block_output("b")}


# -- §9, §10, §11.2: jobs, traces, session fetches -------------------------------------


def test_job_submit_and_poll(fake: FakeNoukai) -> None:
    session_id = str(uuid.uuid4())
    with Noukai(KEY, base_url=fake.base_url, session_id=session_id) as client:
        job = client.flow("acme/app/hello").execute_async(
            "long", trace=True, version=5, block_overrides={"a": {"t": 2}}
        )
        assert job.wait(timeout=10, poll_interval=0.05).status == "completed"
    submit, poll = fake.requests[0], fake.requests[-1]
    assert submit.path == f"{FLOW}/v5/jobs" and poll.path == f"{FLOW}/jobs/{EXEC_ID}"
    check_headers(submit, session_id)
    check_headers(poll, None)
    body = check_body_style(submit)
    assert body == {
        "message": "long",
        "parameters": {},
        "blockOverrides": {"a": {"t": 2}},
        "iterationsUsed": 0,
        "accumulatedOutputs": {},
        "trace": True,
    }


def test_trace_routes(client: Noukai, fake: FakeNoukai) -> None:
    """§10: unversioned paths, `attempt`/`loop_index` query, Accept json on the stream."""
    run = client.flow("hello").run(EXEC_ID)
    run.trace()
    run.step_trace("a")
    run.step_trace("a", attempt="all")
    run.step_trace("a", attempt=2, loop_index=1)
    events = list(run.live_trace())
    assert events[-1].type == "flow_completed"
    base = f"{FLOW}/runs/{EXEC_ID}"
    paths = [r.path for r in fake.requests]
    assert paths[:4] == [
        f"{base}/trace",
        f"{base}/steps/a/trace",  # absent `attempt` means latest (§10.2)
        f"{base}/steps/a/trace?attempt=all",
        f"{base}/steps/a/trace?attempt=2&loop_index=1",
    ]
    assert paths[4] == f"{base}/trace/stream"
    for request in fake.requests:
        check_headers(request)


def test_session_fetch_has_no_session_header(
    fake: FakeNoukai, monkeypatch: pytest.MonkeyPatch
) -> None:
    """§1.2/§11.4: replay makes one GET /seq/sessions/{id} and no flow calls."""
    monkeypatch.setenv("NOUKAI_REPLAY_ENABLED", "true")
    session_id = str(uuid.uuid4())
    with (
        Noukai(KEY, base_url=fake.base_url, org="acme", project="app") as client,
        replay_scope_sync(replay_session_id=session_id, client=client),
    ):
        result = client.flow("hello").execute("anything")
    assert result.result == block_output("a")
    [fetch] = fake.requests
    assert fetch.method == "GET" and fetch.path == f"/api/v1/seq/sessions/{session_id}"
    check_headers(fetch, None)


def test_capture_scope_tags_only_creating_calls(client: Noukai, fake: FakeNoukai) -> None:
    """§1.2: a capture scope's id goes on execute/step/jobs, not on polls or traces."""
    with trace_scope_sync() as scope:
        flow = client.flow("hello")
        flow.execute("hi")
        list(flow.steps("hi", run_remaining=True))
        flow.execute_async("hi").poll()
        flow.run(EXEC_ID).trace()
    for request in fake.requests:
        creating = bool(SESSION_HEADER_ALLOWED.search(request.path))
        check_headers(request, scope.session_id if creating else None)
    assert len(fake.requests) == 5
    assert uuid.UUID(scope.session_id).version == 4  # §1.2: SDK-made ids are UUID v4


def test_post_is_never_retried_get_is_retried_once(client: Noukai, fake: FakeNoukai) -> None:
    """§1.5: a POST is not retried after a 503 without Retry-After; a GET is, once."""
    with pytest.raises(FlowExecutionError) as failed:
        client.flow("acme/down/hello").execute("hi")
    assert failed.value.status_code == 503 and failed.value.code == "BILLING_UNAVAILABLE"
    assert failed.value.request_id and len(fake.requests) == 1
    with pytest.raises(FlowExecutionError):
        client.flow("acme/down/hello").run(EXEC_ID).trace()
    assert [r.method for r in fake.requests] == ["POST", "GET", "GET"]
