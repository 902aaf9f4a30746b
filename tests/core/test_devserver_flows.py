"""Every flow operation, sync and async, against the real dev server over HTTP."""

from __future__ import annotations

import json
from typing import Any

import pytest

import noukai_core as nk

WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Get the current weather for a location.",
        "parameters": {
            "type": "object",
            "properties": {"location": {"type": "string"}},
            "required": ["location"],
        },
    },
}


def weather(calls: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [
        {
            "tool_call_id": call["id"],
            "output": f"Sunny in {json.loads(call['function']['arguments'])['location']}",
        }
        for call in calls
    ]


@pytest.fixture
def client(noukai_devserver: Any) -> Any:
    with nk.Noukai(
        api_key=noukai_devserver.api_key,
        base_url=noukai_devserver.base_url,
        org=noukai_devserver.org,
        project=noukai_devserver.project,
        timeout=30,
    ) as c:
        yield c


@pytest.fixture
async def aclient(noukai_devserver: Any) -> Any:
    async with nk.AsyncNoukai(
        api_key=noukai_devserver.api_key,
        base_url=noukai_devserver.base_url,
        org=noukai_devserver.org,
        project=noukai_devserver.project,
        timeout=30,
    ) as c:
        yield c


def test_execute_sync(client: nk.Noukai) -> None:
    result = client.flow("hello-world").execute(message="Hello there")
    assert isinstance(result, nk.ExecuteResult)
    assert result.status == "completed" and result.result is not None
    assert result.output == result.result and result.execution_id and result.block_count == 1


async def test_execute_async_client_two_step(aclient: nk.AsyncNoukai) -> None:
    result = await aclient.flow("two-step").execute(message="a fox", trace=True)
    assert isinstance(result, nk.ExecuteResult) and result.block_count == 2


def test_steps_equal_execute_result(client: nk.Noukai) -> None:
    steps = list(client.flow("two-step").steps(message="a fox"))
    assert [s.step_id for s in steps] == ["draft", "summarise"]
    assert [s.step_index for s in steps] == [0, 1]
    assert all(s.tokens is not None and s.tokens.total > 0 and s.cost_usd for s in steps)


async def test_events_async_and_run_remaining(aclient: nk.AsyncNoukai) -> None:
    flow = aclient.flow("two-step")
    stepped = [e async for e in flow.events(message="a fox")]
    remaining = [e async for e in flow.events(message="a fox", run_remaining=True)]
    for events in (stepped, remaining):
        assert events[0].type == "run_started" and events[-1].type == "flow_completed"
        completed = [e for e in events if isinstance(e, nk.StepCompleted)]
        assert events[-1].result == completed[-1].output  # type: ignore[union-attr]
    assert any(e.type == "step_paused" for e in stepped)
    assert not any(e.type == "step_paused" for e in remaining)


def test_events_early_break_then_next_call_works(client: nk.Noukai) -> None:
    for event in client.flow("slow-steps").events(message="go"):
        assert event.type == "run_started"
        break
    assert client.flow("hello-world").execute(message="still fine").status == "completed"


async def test_async_early_close(aclient: nk.AsyncNoukai) -> None:
    events = aclient.flow("slow-steps").events(message="go")
    first = await events.__anext__()
    await events.aclose()
    assert first.type == "run_started"


def test_failed_block_is_a_failed_result(client: nk.Noukai) -> None:
    result = client.flow("always-fails").execute(message="x")
    assert isinstance(result, nk.ExecuteResult) and result.status == "failed"
    assert result.error is not None and result.error.step_id == "explode"
    assert result.error.code and result.error.message


def test_failed_block_makes_steps_raise(client: nk.Noukai) -> None:
    seen: list[str] = []
    with pytest.raises(nk.FlowExecutionError) as info:
        for step in client.flow("always-fails").steps(message="x", run_remaining=True):
            seen.append(step.step_id)
    assert seen == ["prepare"] and info.value.execution_id and info.value.code


def step_stream_request_ids(log: list[dict[str, Any]]) -> list[str]:
    return [
        e["request_id"] for e in log if e["phase"] == "response" and e["path"].endswith("/step")
    ]


def test_a_failed_step_error_names_its_stream_request_and_run(noukai_devserver: Any) -> None:
    log: list[dict[str, Any]] = []
    with nk.Noukai(
        api_key=noukai_devserver.api_key,
        base_url=noukai_devserver.base_url,
        log_handler=log.append,
    ) as c:
        flow = c.flow(f"{noukai_devserver.org}/{noukai_devserver.project}/always-fails")
        with pytest.raises(nk.FlowExecutionError) as info:
            list(flow.steps(message="x"))  # one /step stream per step: the last one failed
    ids = step_stream_request_ids(log)
    assert len(ids) >= 2 and len(set(ids)) == len(ids)
    assert info.value.request_id == ids[-1] and info.value.request_id.startswith("req_")
    assert info.value.execution_id and info.value.execution_id in str(info.value)


async def test_a_failed_step_error_names_its_stream_request_and_run_async(
    noukai_devserver: Any,
) -> None:
    log: list[dict[str, Any]] = []
    async with nk.AsyncNoukai(
        api_key=noukai_devserver.api_key,
        base_url=noukai_devserver.base_url,
        log_handler=log.append,
    ) as c:
        flow = c.flow(f"{noukai_devserver.org}/{noukai_devserver.project}/always-fails")
        with pytest.raises(nk.FlowExecutionError) as info:
            async for _ in flow.steps(message="x", run_remaining=True):
                pass
    (request_id,) = step_stream_request_ids(log)
    assert info.value.request_id == request_id and request_id.startswith("req_")
    assert info.value.execution_id


def test_tool_handler_sync(client: nk.Noukai) -> None:
    result = client.flow("tools-enabled").execute(
        message="What is the weather in Tokyo?", tools=[WEATHER_TOOL], tool_handler=weather
    )
    assert isinstance(result, nk.ExecuteResult) and result.status == "completed"


async def test_manual_resume_async(aclient: nk.AsyncNoukai) -> None:
    result = await aclient.flow("tools-enabled").execute(
        message="What is the weather in Tokyo?", tools=[WEATHER_TOOL]
    )
    rounds = 0
    while isinstance(result, nk.PausedResult):
        assert result.tool_calls[0]["function"]["name"] == "get_weather"
        result = await result.resume(tool_results=weather(result.tool_calls))
        rounds += 1
    assert rounds == 1 and result.status == "completed"


def test_tool_round_limit(client: nk.Noukai) -> None:
    with pytest.raises(nk.ToolCallLimitError):
        client.flow("tools-enabled").execute(
            message="Weather in Paris, Tokyo and Lima?",
            tools=[WEATHER_TOOL],
            tool_handler=weather,
            max_tool_rounds=1,
        )


def test_tools_on_streams(client: nk.Noukai) -> None:
    steps = list(
        client.flow("tools-enabled").steps(
            message="What is the weather in Tokyo?", tools=[WEATHER_TOOL], tool_handler=weather
        )
    )
    assert [s.step_id for s in steps] == ["weather"]


def test_messages_mode(client: nk.Noukai) -> None:
    result = client.flow("hello-world").execute(messages=[{"role": "user", "content": "hi"}])
    assert result.status == "completed"


def test_versions_draft_and_missing(client: nk.Noukai) -> None:
    assert client.flow("hello-world").execute(message="x", version="draft").status == "completed"
    with pytest.raises(nk.FlowNotFoundError) as info:
        client.flow("hello-world").execute(message="x", version=99)
    assert info.value.status_code == 404


def test_jobs_sync(client: nk.Noukai) -> None:
    # slow-steps sleeps in each step (0.3 s under the fixture): it cannot finish in 0.01 s.
    job = client.flow("slow-steps").execute_async(message="queued")
    with pytest.raises(nk.APITimeoutError):
        job.wait(timeout=0.01, poll_interval=0.005)
    status = job.wait(timeout=30, poll_interval=0.05)
    assert status.status == "completed" and status.execution_id == job.execution_id
    assert status.result is not None


async def test_jobs_async(aclient: nk.AsyncNoukai) -> None:
    job = await aclient.flow("hello-world").execute_async(message="queued")
    assert (await job.poll()).status in ("pending", "running")
    assert (await job.wait(timeout=30, poll_interval=0.05)).status == "completed"


def test_traces_sync(client: nk.Noukai) -> None:
    flow = client.flow("two-step")
    result = flow.execute(message="trace me", trace=True)
    assert isinstance(result, nk.ExecuteResult) and result.execution_id
    run = flow.run(result.execution_id)
    trace = run.trace()
    assert trace.flow_run.id == result.execution_id and trace.summary.status == "completed"
    assert [s.step_id for s in trace.steps] == ["draft", "summarise"]
    step = run.step_trace("draft")
    assert isinstance(step, nk.StepTrace) and step.step_id == "draft" and step.attempt >= 1
    history = run.step_trace("draft", attempt="all")
    assert isinstance(history, nk.StepAttempts) and len(history.attempts) >= 1
    live = list(run.live_trace())
    assert live[0].type == "run_started" and live[-1].type == "flow_completed"
    assert [e.step_id for e in live if isinstance(e, nk.StepCompleted)] == ["draft", "summarise"]


async def test_traces_async_with_retries(aclient: nk.AsyncNoukai) -> None:
    flow = aclient.flow("flaky-retry")
    result = await flow.execute(message="x")
    assert isinstance(result, nk.ExecuteResult) and result.execution_id
    run = flow.run(result.execution_id)
    trace = await run.trace()
    history = await run.step_trace(trace.steps[-1].step_id, attempt="all")
    assert isinstance(history, nk.StepAttempts)
    events = [e async for e in run.live_trace()]
    assert events[-1].type == "flow_completed"


def test_errors_from_the_server(noukai_devserver: Any, client: nk.Noukai) -> None:
    with pytest.raises(nk.FlowNotFoundError) as info:
        client.flow("no-such-flow").execute(message="x")
    assert info.value.code == "FLOW_NOT_FOUND" and info.value.request_id
    with (
        nk.Noukai(api_key="nk_unknown", base_url=noukai_devserver.base_url) as bad,
        pytest.raises(nk.AuthenticationError) as auth,
    ):
        bad.flow("local/demo/hello-world").execute(message="x")
    assert auth.value.status_code == 401 and auth.value.www_authenticate
    with (
        nk.Noukai(
            api_key=noukai_devserver.broke_api_key, base_url=noukai_devserver.base_url
        ) as broke,
        pytest.raises(nk.InsufficientCreditsError),
    ):
        broke.flow("broke/demo/hello-world").execute(message="x")
    with pytest.raises(nk.FlowNotFoundError):
        client.flow("hello-world").run("00000000-0000-4000-8000-000000000000").trace()


def test_manual_resume_sync(client: nk.Noukai) -> None:
    result = client.flow("tools-enabled").execute(
        message="What is the weather in Tokyo?", tools=[WEATHER_TOOL]
    )
    assert isinstance(result, nk.PausedResult)
    final = result.resume_sync(tool_results=weather(result.tool_calls))
    assert isinstance(final, nk.ExecuteResult) and final.status == "completed"


async def test_async_tool_handler_and_stream_resume(aclient: nk.AsyncNoukai) -> None:
    async def async_weather(calls: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return weather(calls)

    flow = aclient.flow("tools-enabled")
    result = await flow.execute(
        message="Weather in Paris and Lima?", tools=[WEATHER_TOOL], tool_handler=async_weather
    )
    assert result.status == "completed"
    types = []
    async for event in flow.events(message="What is the weather in Tokyo?", tools=[WEATHER_TOOL]):
        types.append(event.type)
        if isinstance(event, nk.ToolCallsRequired):
            assert event.step_index == 0
            event.resume(tool_results=weather(event.tool_calls))
    assert types.count("tool_calls_required") == 1 and types[-1] == "flow_completed"


def test_manual_resume_of_a_sync_stream(client: nk.Noukai) -> None:
    types = []
    for event in client.flow("tools-enabled").events(
        message="What is the weather in Tokyo?", tools=[WEATHER_TOOL]
    ):
        types.append(event.type)
        if isinstance(event, nk.ToolCallsRequired):
            assert event.tool_calls[0]["function"]["name"] == "get_weather"
            event.resume(tool_results=weather(event.tool_calls))
    assert types.count("tool_calls_required") == 1
    assert types[-2:] == ["step_completed", "flow_completed"]
