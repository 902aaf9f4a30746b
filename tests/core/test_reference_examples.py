"""Every Python example of references 002 and 000, run against the dev server.

Each example is the reference's text with its indentation restored (the
reference files lost it) and only these changes: the import names
`noukai_core` instead of `noukai_sdk`; flow slugs, execution ids, step ids,
session ids and the key of a call that really goes out point at the dev
server's demo workspace; and the placeholders that cannot run as printed
(`...` inside a dict or list literal, and the undefined `my_logger`,
`get_weather`, `run_tools`, `logger`) are given a definition. One message
changes: the manual tool loop asks a real weather question, because the dev
server's deterministic model calls a tool only for a weather question naming a
place, and with `"..."` the loop under test would never run.
`NOUKAI_API_KEY` and `NOUKAI_BASE_URL` point at the dev server, as a user's
environment would. Fragments that use `await` run inside a coroutine.

002's FastAPI adapter example imports `noukai_fastapi` and runs under a real
uvicorn. Its Flask twin (`init_noukai_trace`) is not run here: `noukai_flask`
has no public names yet; it belongs with the Flask integration's tests.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import textwrap
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import uvicorn

import noukai_core

TOOLS = [
    {
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
]


def get_weather(arguments: str) -> str:
    return f"Sunny in {json.loads(arguments)['location']}"


async def run_tools(tool_calls: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [
        {"toolCallId": c["id"], "output": get_weather(c["function"]["arguments"])}
        for c in tool_calls
    ]


@pytest.fixture
def env(noukai_devserver: Any, monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.setenv("NOUKAI_API_KEY", noukai_devserver.api_key)
    monkeypatch.setenv("NOUKAI_BASE_URL", noukai_devserver.base_url)
    return noukai_devserver


def run(code: str, **names: Any) -> dict[str, Any]:
    namespace: dict[str, Any] = {"__name__": "reference_example", **names}
    exec(textwrap.dedent(code), namespace)
    return namespace


def run_async(code: str, **names: Any) -> dict[str, Any]:
    """Run an `await`-using fragment of the reference inside a coroutine."""
    body = textwrap.indent(textwrap.dedent(code), "    ")
    namespace = run(f"async def _example():\n{body}\n    return locals()\n", **names)
    return asyncio.run(namespace["_example"]())  # type: ignore[no-any-return]


def test_quick_start_sync(env: Any, capsys: pytest.CaptureFixture[str]) -> None:
    run(
        """
        from noukai_core import Noukai
        with Noukai() as client: # reads NOUKAI_API_KEY
            result = client.flow("local/demo/hello-world").execute(
                message="The cat sat on the mat.",
            )
            print(result.result)
        """
    )
    assert "response" in capsys.readouterr().out


def test_quick_start_async(env: Any, capsys: pytest.CaptureFixture[str]) -> None:
    run(
        """
        import asyncio
        from noukai_core import AsyncNoukai
        async def main() -> None:
            async with AsyncNoukai() as client:
                result = await client.flow("local/demo/hello-world").execute(
                    message="The cat sat on the mat.",
                )
                print(result.result)
        asyncio.run(main())
        """
    )
    assert "response" in capsys.readouterr().out


def test_authentication_and_configuration(env: Any) -> None:
    ns = run(
        """
        from noukai_core import Noukai
        client = Noukai(api_key="nk_...")
        client = Noukai(
            api_key="nk_...", # overrides NOUKAI_API_KEY
            env="production", # or "dev" — default "production"
            org="acme", # default org for short-form slugs
            project="spelling", # default project for short-form slugs
            timeout=300.0, # default per-request timeout (seconds)
            max_retries=1, # retries on retryable 5xx
            log_handler=my_logger, # structured logging hook
            log_payloads=False, # include request/response bodies in logs
        )
        client = Noukai(org="acme", project="spelling")
        client.flow("grade-3") # → acme/spelling/grade-3
        client.flow("other-org/x/grade-3") # fully qualified — wins
        client.flow(org="acme", project="spelling", slug="grade-3") # explicit
        client.flow("grade-3") # uses client defaults
        client.flow("acme/spelling/grade-3") # fully qualified
        client.flow(org="acme", project="spelling", slug="grade-3")
        """,
        my_logger=print,
    )
    assert ns["client"].default_org == "acme"


def test_execute_every_parameter(env: Any) -> None:
    ns = run(
        """
        from noukai_core import Noukai
        client = Noukai()
        result = client.flow("local/demo/hello-world").execute(
            message="Input text",
            parameters={"difficulty": "hard"}, # extra initial inputs
            block_overrides={"step-id": {"temperature": 0.5}},
            attachments=[{"url": "https://...", "mime_type": "image/png"}],
            trace=False, # capture full I/O for trace
            version="draft", # or an int published version
            timeout=60.0, # override client default
        )
        if result.status == "tool_calls_required":
            # PausedResult — see "Tool calls" below
            ...
        else:
            print(result.result) # ExecuteResult
        """
    )
    assert ns["result"].status == "completed"


def test_steps_and_events(env: Any, capsys: pytest.CaptureFixture[str]) -> None:
    ns = run(
        """
        from noukai_core import Noukai
        client = Noukai()
        flow = client.flow("local/demo/two-step")
        for step in flow.steps(message="..."):
            print(step.name, step.output, step.duration_ms, step.tokens)
        for event in flow.events(message="..."):
            match event.type:
                case "run_started": # RunStarted
                    ...
                case "step_started": # StepStarted
                    ...
                case "step_input": # StepInput
                    ...
                case "step_output": # StepOutput
                    ...
                case "step_completed": # StepCompleted
                    ...
                case "step_error": # StepFailed
                    ...
                case "step_paused": # StepPaused
                    ...
                case "tool_calls_required": # ToolCallsRequired (has .resume())
                    ...
                case "flow_completed": # FlowCompleted
                    ...
        """
    )
    assert len(capsys.readouterr().out.splitlines()) == 2  # one line per step of two-step
    assert ns["event"].type == "flow_completed"  # the loop ran to the end of the run


def test_async_steps(env: Any) -> None:
    ns = run_async(
        """
        from noukai_core import AsyncNoukai
        client = AsyncNoukai()
        flow = client.flow("local/demo/two-step")
        names = []
        async for step in flow.steps(message="..."):
            names.append(step.step_id)
        """
    )
    assert ns["names"] == ["draft", "summarise"]


def test_jobs_sync(env: Any) -> None:
    ns = run(
        """
        from noukai_core import Noukai
        client = Noukai()
        job = client.flow("local/demo/hello-world").execute_async(
            message="Long input that takes minutes...",
            trace=True,
        )
        print(job.execution_id) # persist this if you want to resume later
        # Block until done — polls under the hood (default: 2s interval, 5min timeout).
        status = job.wait(timeout=600.0, poll_interval=5.0)
        print(status.result)
        # Or one-shot:
        snapshot = job.poll()
        if snapshot.status == "completed":
            ...
        """
    )
    assert ns["snapshot"].status == "completed"


def test_jobs_async(env: Any) -> None:
    ns = run_async(
        """
        from noukai_core import AsyncNoukai
        client = AsyncNoukai()
        job = await client.flow("local/demo/hello-world").execute_async(message="...")
        status = await job.wait(timeout=600.0)
        """
    )
    assert ns["status"].status == "completed"


def test_tool_calls_auto_and_manual(env: Any, capsys: pytest.CaptureFixture[str]) -> None:
    ns = run(
        """
        from noukai_core import Noukai
        flow = Noukai().flow("local/demo/tools-enabled")
        def my_tools(tool_calls: list[dict]) -> list[dict]:
            return [
                {"tool_call_id": call["id"],
                 "output": get_weather(call["function"]["arguments"])}
                for call in tool_calls
            ]
        result = flow.execute(
            message="What's the weather in Paris?",
            tools=TOOLS,
            tool_handler=my_tools,
            max_tool_rounds=10, # default — raises ToolCallLimitError if exceeded
        )
        """,
        get_weather=get_weather,
        TOOLS=TOOLS,
    )
    assert ns["result"].status == "completed"
    manual = run_async(
        """
        from noukai_core import AsyncNoukai
        flow = AsyncNoukai().flow("local/demo/tools-enabled")
        result = await flow.execute(message="What's the weather in Lima?", tools=TOOLS)
        while result.status == "tool_calls_required":
            tool_results = await run_tools(result.tool_calls)
            result = await result.resume(tool_results=tool_results)
        print(result.result)
        """,
        run_tools=run_tools,
        TOOLS=TOOLS,
    )
    assert "tool_results" in manual  # the loop resumed at least once
    assert manual["result"].status == "completed" and capsys.readouterr().out


def test_capture_and_programmatic_replay(env: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    ns = run(
        """
        import asyncio
        import noukai_core
        from noukai_core import AsyncNoukai
        noukai = AsyncNoukai(api_key=KEY, org="local", project="demo")
        @noukai_core.trace
        async def handle(message: str) -> dict:
            result = await noukai.flow("hello-world").execute(message=message)
            return {"output": result.result, "session_id": result.session_id}
        answer = asyncio.run(handle("The cat sat on the mat."))
        """,
        KEY=env.api_key,
    )
    session_id = ns["answer"]["session_id"]
    assert session_id and ns["answer"]["output"]
    monkeypatch.setenv("NOUKAI_REPLAY_ENABLED", "true")
    run_async(
        """
        from noukai_core import trace_scope
        async with trace_scope(
            transport=noukai._transport,
            replay_session_id=SESSION_ID,
        ):
            await noukai.flow("hello-world").execute(message="any input")
        """,
        noukai=noukai_core.AsyncNoukai(api_key=env.api_key, org="local", project="demo"),
        SESSION_ID=session_id,
    )


def test_run_traces_002(env: Any) -> None:
    client = noukai_core.Noukai()
    flow = client.flow("local/demo/two-step")
    executed = flow.execute(message="trace me")
    run(
        """
        run = flow.run(EXECUTION_ID)
        # Whole-run trace (one attempt per step)
        trace = run.trace()
        print(trace.summary, trace.steps)
        # Single step, optionally a specific attempt
        step_trace = run.step_trace("draft", attempt="latest")
        all_attempts = run.step_trace("draft", attempt="all")
        # Live trace stream (replays from DB, then tails Redis)
        for event in run.live_trace():
            print(event)
        """,
        flow=flow,
        EXECUTION_ID=executed.execution_id,
    )


def test_errors_and_logging(env: Any) -> None:
    events: list[dict[str, Any]] = []
    run(
        """
        from noukai_core import FlowExecutionError, Noukai
        flow = Noukai().flow("local/demo/hello-world")
        try:
            flow.execute(message="...")
        except FlowExecutionError as err:
            if err.code == "BYOK_KEY_REJECTED":
                ...
            raise
        def log_handler(event: dict) -> None:
            # {"phase": "request" | "response" | "retry",
            # "method": ..., "path": ..., "attempt": ...,
            # "status_code": ..., "request_id": ...,
            # "request_body": ..., "response_body": ...}
            logger.info(event)
        client = Noukai(log_handler=log_handler, log_payloads=True)
        client.flow("local/demo/hello-world").execute(message="logged")
        """,
        logger=type("L", (), {"info": staticmethod(events.append)}),
    )
    assert [e["phase"] for e in events] == ["request", "response"]
    assert events[1]["response_body"]["status"] == "completed"


def test_resource_management(env: Any) -> None:
    run_async(
        """
        from noukai_core import AsyncNoukai, Noukai
        # Recommended — context manager:
        with Noukai() as client:
            ...
        async with AsyncNoukai() as client:
            ...
        # Or manually:
        client = Noukai()
        try:
            ...
        finally:
            client.close() # AsyncNoukai: await client.aclose()
        client.close()
        """
    )


def test_run_reference_000(env: Any, capsys: pytest.CaptureFixture[str]) -> None:
    flow = noukai_core.Noukai().flow("local/demo/two-step")
    result = flow.execute(message="trace", trace=True)
    run(
        """
        trace = flow.run(result.execution_id).trace()
        print(f"Run: {trace.flow_run.id}")
        print(f"Duration: {trace.flow_run.duration_ms}ms")
        # Aggregate cost across steps (cost_usd is a decimal string)
        total_cost = sum(float(s.cost_usd) for s in trace.steps if s.cost_usd)
        print(f"Total cost: ${total_cost:.6f}")
        # Latest attempt only
        step = flow.run(result.execution_id).step_trace("draft")
        print(f"Step {step.step_id}: {step.status}")
        # All attempts
        history = flow.run(result.execution_id).step_trace("draft", attempt="all")
        for attempt in history.attempts:
            print(f"  Attempt {attempt.attempt}: {attempt.status}")
        for event in flow.run(result.execution_id).live_trace():
            if event.event_type == "step_completed":
                print(f"Step {event.step_id}: {event.duration_ms}ms")
            elif event.event_type == "flow_completed":
                print(f"Done: {event.result}")
        # Run summary
        print(f"Flow: {trace.flow_run.flow_id}")
        print(f"Status: {trace.flow_run.status}")
        print(f"Duration: {trace.flow_run.duration_ms}ms")
        print(f"Steps: {trace.flow_run.step_count}")
        # Aggregate totals
        total_cost = sum(float(s.cost_usd) for s in trace.steps if s.cost_usd)
        total_duration = sum(s.duration_ms or 0 for s in trace.steps)
        print(f"Total: ${total_cost:.6f}, {total_duration}ms")
        for step in trace.steps:
            print(f"Step {step.step_id}:")
            print(f"  Attempt: {step.attempt}")
            print(f"  Status: {step.status}")
            print(f"  Duration: {step.duration_ms}ms")
            if step.model_used:
                print(f"  Model: {step.model_used}")
            if step.cost_usd:
                print(f"  Cost: ${float(step.cost_usd):.6f}")
            if step.tokens:
                print(f"  Tokens: {step.tokens.prompt} prompt + {step.tokens.completion} completion")
        if step.tokens:
            t = step.tokens
            print(f"Tokens: {t.prompt} prompt, {t.completion} completion, {t.total} total")
        """,  # noqa: E501 - the reference's line, unchanged
        flow=flow,
        result=result,
    )
    out = capsys.readouterr().out
    assert "Done:" in out and "Attempt 1: completed" in out


def test_run_reference_000_async(env: Any, capsys: pytest.CaptureFixture[str]) -> None:
    run_async(
        """
        from noukai_core import AsyncNoukai
        flow = AsyncNoukai().flow("local/demo/two-step")
        result = await flow.execute(message="trace")
        execution_id = result.execution_id
        trace = await flow.run(execution_id).trace()
        step = await flow.run(result.execution_id).step_trace("draft")
        history = await flow.run(execution_id).step_trace("draft", attempt="all")
        print(f"Step {history.step_id} had {len(history.attempts)} attempts:")
        for attempt in history.attempts:
            print(f"  Attempt {attempt.attempt}: {attempt.status} ({attempt.duration_ms}ms)")
            if attempt.error_context:
                print(f"    Error: {attempt.error_context}")
        async for event in flow.run(result.execution_id).live_trace():
            if event.event_type == "step_completed":
                print(f"Step done: {event.step_id}")
        """
    )
    assert "Step done: summarise" in capsys.readouterr().out


@contextlib.contextmanager
def uvicorn_on_a_free_port(app: Any) -> Iterator[str]:
    """Serve `app` with a real uvicorn in a thread; yields its base URL."""
    sock = socket.socket()
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # no 40 ms delayed-ACK waits
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", log_config=None))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 15
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()


def test_capture_with_the_fastapi_adapter(env: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """002's adapter example, served by uvicorn; its import line names `noukai_fastapi`
    and the undefined `Request` is given. Then 002's replay step: the same route
    called with `X-Noukai-Replay` answers from the recorded session."""
    from fastapi import Request

    ns = run(
        """
        import noukai_core
        from noukai_core import AsyncNoukai
        noukai = AsyncNoukai(api_key=KEY, org="local", project="demo")
        from fastapi import FastAPI
        from noukai_fastapi import NoukaiTraceMiddleware
        app = FastAPI()
        app.add_middleware(NoukaiTraceMiddleware, client=noukai)
        @app.post("/grade")
        @noukai_core.trace
        async def grade(req: Request) -> dict:
            body = await req.json()
            result = await noukai.flow("hello-world").execute(message=body["text"])
            return {"output": result.result}
        """,
        KEY=env.api_key,
        Request=Request,
    )
    with uvicorn_on_a_free_port(ns["app"]) as base_url:
        captured = httpx.post(f"{base_url}/grade", json={"text": "The cat sat on the mat."})
        session_id = captured.headers["X-Noukai-Session"]
        monkeypatch.setenv("NOUKAI_REPLAY_ENABLED", "true")
        replayed = httpx.post(
            f"{base_url}/grade",
            headers={"X-Noukai-Replay": session_id},
            json={"text": "anything — the body is not matched against the cassette"},
        )
    assert captured.status_code == 200 and captured.json()["output"]
    assert replayed.status_code == 200 and replayed.json() == captured.json()
    assert replayed.headers["X-Noukai-Session"] == session_id
