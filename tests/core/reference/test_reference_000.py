"""000's examples: run traces, step traces and live traces, sync and async."""

from __future__ import annotations

from typing import Any

import pytest
from reference_runner import run, run_async

import noukai_core


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
