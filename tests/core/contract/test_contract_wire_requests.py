"""Contract checks of the client: what `noukai_core` sends to start and resume runs.

§2 (paths and version routing), §1.2/§4.1 (headers and the fresh execute
body), §12 (`messages`) and §8.1 (tool resumes on `/execute`), against the
fake Noukai of `core_contract_fake`.
"""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from core_contract_checks import (
    FLOW,
    check_body_style,
    check_headers,
    check_resume,
    tool_results,
)
from core_contract_fake import (
    CALL,
    EXEC_ID,
    KEY,
    TOOLS,
    FakeNoukai,
)

from noukai_core import (
    AsyncNoukai,
    Noukai,
)

# -- §2: paths and version routing ------------------------------------------------


@pytest.mark.parametrize(
    "version,prefix",
    [
        (None, FLOW),
        ("production", FLOW),
        ("draft", f"{FLOW}/v0"),
        (0, f"{FLOW}/v0"),
        (3, f"{FLOW}/v3"),
    ],
)
def test_version_is_routed_by_path_only(
    client: Noukai, fake: FakeNoukai, version: str | int | None, prefix: str
) -> None:
    flow = client.flow("hello")
    kwargs: dict[str, Any] = {} if version is None else {"version": version}
    flow.execute("hi", **kwargs)
    job = flow.execute_async("hi", **kwargs)
    job.poll()
    paths = [r.path for r in fake.requests]
    assert paths == [f"{prefix}/execute", f"{prefix}/jobs", f"{FLOW}/jobs/{EXEC_ID}"]
    assert all("version" not in r.json for r in fake.requests if r.method == "POST")


def test_step_versions(client: Noukai, fake: FakeNoukai) -> None:
    """§2: steps on /vN; draft (`/v0`) and negative versions refused before any request."""
    list(client.flow("hello").steps("hi", version=2, run_remaining=True))
    assert [r.path for r in fake.requests] == [f"{FLOW}/v2/step"]
    for bad in ("draft", 0, -1):
        with pytest.raises(ValueError):
            list(client.flow("hello").events("hi", version=bad))
    with pytest.raises(ValueError):
        client.flow("hello").execute("hi", version=-2)
    assert len(fake.requests) == 1


# -- §1.2 / §4.1: headers and the fresh execute body -------------------------------


def test_fresh_execute_body_and_headers(client: Noukai, fake: FakeNoukai) -> None:
    client.flow("hello").execute("hi")
    [request] = fake.requests
    check_headers(request)
    assert request.json == {
        "message": "hi",
        "parameters": {},
        "iterationsUsed": 0,
        "accumulatedOutputs": {},
        "trace": False,
    }


def test_async_client_sends_the_same_requests(fake: FakeNoukai) -> None:
    """The async twin: same fresh body, headers, job submit and unversioned poll."""
    import asyncio

    session_id = str(uuid.uuid4())

    async def run() -> None:
        async with AsyncNoukai(KEY, base_url=fake.base_url, session_id=session_id) as client:
            flow = client.flow("acme/app/hello")
            await flow.execute("hi", version="draft")
            job = await flow.execute_async("hi", version=2)
            await job.poll()

    asyncio.run(run())
    execute, submit, poll = fake.requests
    assert (execute.path, submit.path, poll.path) == (
        f"{FLOW}/v0/execute",
        f"{FLOW}/v2/jobs",
        f"{FLOW}/jobs/{EXEC_ID}",
    )
    check_headers(execute, session_id)
    check_headers(submit, session_id)
    check_headers(poll, None)
    expected = {
        "message": "hi",
        "parameters": {},
        "iterationsUsed": 0,
        "accumulatedOutputs": {},
        "trace": False,
    }
    assert execute.json == expected and submit.json == expected


def test_execute_options_are_camel_case(client: Noukai, fake: FakeNoukai) -> None:
    overrides = {"step-1": {"model": "anthropic/claude-haiku-4-5", "temperature": 0.5}}
    attachment = {"url": "https://example.test/a.png", "mime_type": "image/png"}
    client.flow("hello").execute(
        "hi",
        parameters={"k": "v"},
        block_overrides=overrides,
        attachments=[attachment],
        trace=True,
        tools=TOOLS,
        tool_choice="auto",
    )
    body = check_body_style(fake.requests[0])
    assert body["blockOverrides"] == overrides and body["attachments"] == [attachment]
    assert body["parameters"] == {"k": "v"} and body["trace"] is True
    assert body["tools"] == TOOLS and body["toolChoice"] == "auto"


def test_messages_mode_body(client: Noukai, fake: FakeNoukai) -> None:
    """§12: `messages` replaces `message`; an empty list is omitted."""
    turns = [{"role": "user", "content": "Hi"}]
    client.flow("hello").execute(messages=turns)
    client.flow("hello").execute("plain", messages=[])
    first, second = (check_body_style(r) for r in fake.requests)
    assert first["messages"] == turns and "message" not in first
    assert second["message"] == "plain" and "messages" not in second


# -- §8.1: tool resumes on /execute ---------------------------------------------------


def test_auto_resume_body_and_no_session_header(fake: FakeNoukai) -> None:
    """§8.1 + §1.2: same versioned path, echoes, originals, and no X-Session-Id."""
    session_id = str(uuid.uuid4())
    with Noukai(KEY, base_url=fake.base_url, session_id=session_id) as client:
        result = client.flow("acme/app/hello").execute(
            "Weather in Tokyo?",
            parameters={"p": 1},
            block_overrides={"w": {"t": 0}},
            attachments=[{"url": "https://example.test/a.png", "mimeType": "image/png"}],
            tools=TOOLS,
            tool_choice="required",
            trace=True,
            version=4,
            tool_handler=tool_results,
        )
    assert result.status == "completed"
    fresh, resume = fake.requests
    assert fresh.path == resume.path == f"{FLOW}/v4/execute"
    check_headers(fresh, session_id)
    check_headers(resume, None)
    body = check_resume(resume, [CALL])
    assert body["parameters"] == {"p": 1} and body["blockOverrides"] == {"w": {"t": 0}}
    assert body["tools"] == TOOLS and body["toolChoice"] == "required"
    assert body["trace"] is True and body["attachments"] == fresh.json["attachments"]


def test_manual_resume_sync_and_async(fake: FakeNoukai) -> None:
    import asyncio

    with Noukai(KEY, base_url=fake.base_url, session_id=str(uuid.uuid4())) as client:
        paused = client.flow("acme/app/hello").execute("Weather in Tokyo?", tools=TOOLS)
        assert paused.status == "tool_calls_required"
        paused.resume_sync(tool_results=tool_results(paused.tool_calls))

    async def run_async() -> None:
        async with AsyncNoukai(
            KEY, base_url=fake.base_url, session_id=str(uuid.uuid4())
        ) as aclient:
            result = await aclient.flow("acme/app/hello").execute("Weather?", tools=TOOLS)
            await result.resume(tool_results=tool_results(result.tool_calls))

    asyncio.run(run_async())
    assert len(fake.requests) == 4
    for resume in (fake.requests[1], fake.requests[3]):
        check_headers(resume, None)
        check_resume(resume, [CALL])


def test_free_form_session_id_and_message_conflict(client: Noukai, fake: FakeNoukai) -> None:
    """§1.2: a user-supplied session id may be any string and is sent verbatim;
    §4.1: `message` with `messages` is refused client-side, before any request."""
    client.flow("hello").execute("hi", session_id="my own session #1")
    [request] = fake.requests
    check_headers(request, "my own session #1")
    with pytest.raises(ValueError):
        client.flow("hello").execute("hi", messages=[{"role": "user", "content": "hi"}])
    assert len(fake.requests) == 1
