"""The passthrough against the real dev server: tools, disconnects, real runs."""

from __future__ import annotations

import json
import time
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from noukai_core import Noukai
from noukai_fastapi import (
    NoukaiTraceMiddleware,
    StreamedFlow,
    flow_stream_router,
    noukai_lifespan,
)

WEATHER_TOOL = {"type": "function", "function": {
    "name": "get_weather", "description": "Get the current weather for a location.",
    "parameters": {"type": "object", "properties": {"location": {"type": "string"}},
                   "required": ["location"]}}}


def sse_events(raw: bytes) -> list[tuple[str, dict[str, Any]]]:
    events = []
    for block in raw.decode().split("\n\n"):
        lines = dict(line.split(": ", 1) for line in block.split("\n") if ": " in line
                     and not line.startswith(":"))
        if "data" in lines:
            events.append((lines["event"], json.loads(lines["data"])))
    return events


def build_app(devserver: Any, flows: list[Any], **options: Any) -> FastAPI:
    app = FastAPI(lifespan=noukai_lifespan(
        api_key=devserver.api_key, base_url=devserver.base_url, org=devserver.org,
        project=devserver.project))
    app.include_router(flow_stream_router(flows, **options), prefix="/noukai")
    return app


def test_stream_story_streams_partial_output_in_order(
    serve_app: Any, noukai_devserver: Any
) -> None:
    with serve_app(build_app(noukai_devserver, ["stream-story"])) as base:
        response = httpx.post(f"{base}/noukai/flows/stream-story",
                              json={"message": "a lighthouse"}, timeout=30)
    events = sse_events(response.content)
    types = [t for t, _ in events]
    assert types[0] == "run_started" and types[-1] == "flow_completed"
    assert types.count("step_output") >= 2
    assert "step_paused" not in types and "step_input" not in types
    completed = [d for t, d in events if t == "step_completed"]
    assert events[-1][1]["result"] == completed[-1]["output"]
    assert b"tokens" not in response.content and b"costUsd" not in response.content


def test_server_side_tool_handler_resolves_calls_and_the_stream_continues(
    serve_app: Any, noukai_devserver: Any
) -> None:
    asked: list[str] = []

    async def weather(calls: list[dict[str, Any]]) -> list[dict[str, Any]]:
        results = []
        for call in calls:
            location = json.loads(call["function"]["arguments"])["location"]
            asked.append(location)
            results.append({"tool_call_id": call["id"], "output": f"sunny in {location}"})
        return results

    flow = StreamedFlow("tools-enabled", tools=[WEATHER_TOOL], tool_handler=weather)
    with serve_app(build_app(noukai_devserver, [flow])) as base:
        response = httpx.post(f"{base}/noukai/flows/tools-enabled",
                              json={"message": "What is the weather in Tokyo?"}, timeout=30)
    events = sse_events(response.content)
    assert asked == ["Tokyo"]
    assert events[-1][0] == "flow_completed"
    assert "sunny in Tokyo" in json.dumps(events[-1][1]["result"])
    for internal in [b"toolCallMessages", b"accumulatedOutputs", b"toolCalls",
                     b"tool_calls_required", b"step_paused"]:
        assert internal not in response.content


def test_a_failing_flow_ends_with_its_step_error(serve_app: Any, noukai_devserver: Any) -> None:
    with serve_app(build_app(noukai_devserver, ["always-fails"])) as base:
        response = httpx.post(f"{base}/noukai/flows/always-fails", json={"message": "x"},
                              timeout=30)
    events = sse_events(response.content)
    assert response.status_code == 200
    assert events[-1][0] == "step_error"
    assert set(events[-1][1]["error"]) == {"code"}


def run_status(devserver: Any, execution_id: str) -> tuple[str, list[str]]:
    with Noukai(api_key=devserver.api_key, base_url=devserver.base_url,
                org=devserver.org, project=devserver.project) as client:
        trace = client.flow("slow-steps").run(execution_id).trace()
    return trace.flow_run.status, [step.step_id for step in trace.steps]


def wait_for_cancelled(devserver: Any, execution_id: str) -> list[str]:
    deadline = time.monotonic() + 20
    status, steps = run_status(devserver, execution_id)
    while status != "cancelled" and time.monotonic() < deadline:
        time.sleep(0.05)
        status, steps = run_status(devserver, execution_id)
    assert status == "cancelled"
    return steps


def test_browser_disconnect_cancels_the_upstream_run(
    serve_app: Any, slow_devserver: Any
) -> None:
    with serve_app(build_app(slow_devserver, ["slow-steps"], heartbeat_interval=0.05)) as base:
        with httpx.stream("POST", f"{base}/noukai/flows/slow-steps", json={"message": "go"},
                          timeout=30) as response:
            execution_id = None
            for line in response.iter_lines():
                if line.startswith("data: ") and execution_id is None:
                    execution_id = json.loads(line[6:])["executionId"]
                if line == "event: step_started":
                    break  # the first block is running: hang up now
        assert execution_id is not None
        steps = wait_for_cancelled(slow_devserver, execution_id)
    assert "second" not in steps and "third" not in steps


def test_a_streamed_run_replays_through_the_middleware(
    serve_app: Any, noukai_devserver: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NOUKAI_REPLAY_ENABLED", "true")
    app = build_app(noukai_devserver, ["two-step"])
    app.add_middleware(NoukaiTraceMiddleware)
    with serve_app(app) as base:
        url = f"{base}/noukai/flows/two-step"
        live = httpx.post(url, json={"message": "record me"}, timeout=30)
        session = live.headers["x-noukai-session"]
        replayed = httpx.post(url, json={"message": "anything"}, timeout=30,
                              headers={"X-Noukai-Replay": session})
    assert replayed.status_code == 200
    assert replayed.headers["x-noukai-session"] == session

    def summary(raw: bytes) -> list[tuple[str, Any]]:
        return [(kind, data.get("stepId") or data.get("result"))
                for kind, data in sse_events(raw) if kind in ("step_completed", "flow_completed")]

    assert summary(replayed.content) == summary(live.content)
    recorded = httpx.get(f"{noukai_devserver.base_url}/seq/sessions/{session}",
                         headers={"Authorization": f"Bearer {noukai_devserver.api_key}"}).json()
    assert len(recorded["executions"]) == 1, "the replay made no live run"
