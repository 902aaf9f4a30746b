"""002's examples of sessions and replay (the FastAPI adapter's too), run traces,
errors, logging and resource management."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from reference_runner import run, run_async, uvicorn_on_a_free_port

import noukai_core


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
