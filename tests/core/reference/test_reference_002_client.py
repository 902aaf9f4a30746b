"""002's examples of the client: quick start, configuration, execute, streams, jobs, tools."""

from __future__ import annotations

from typing import Any

import pytest
from reference_runner import TOOLS, get_weather, run, run_async, run_tools


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
