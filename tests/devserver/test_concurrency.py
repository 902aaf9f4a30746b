"""Concurrent requests: parallel executes and streams, no lost or mixed-up runs."""

from __future__ import annotations

import asyncio

import httpx
from devserver_helpers import events, parse_sse

from noukai_devserver.pytest_plugin import DevServer


async def test_fifty_parallel_executes(server: DevServer) -> None:
    headers = {"Authorization": f"Bearer {server.api_key}"}
    limits = httpx.Limits(max_connections=50)
    async with httpx.AsyncClient(base_url=server.base_url, headers=headers, timeout=60,
                                 limits=limits) as client:
        responses = await asyncio.gather(*[
            client.post("/seq/local/demo/two-step/execute", json={"message": f"n{i}"})
            for i in range(50)])
    bodies = [r.json() for r in responses]
    assert all(r.status_code == 200 for r in responses)
    assert [b["result"] for b in bodies] == [
        {"response": f"Echo: Summarise: Echo: n{i}"} for i in range(50)]
    assert len({b["executionId"] for b in bodies}) == 50
    assert "database is locked" not in server.log_text


async def test_twenty_parallel_streams(server: DevServer) -> None:
    headers = {"Authorization": f"Bearer {server.api_key}"}
    async with httpx.AsyncClient(base_url=server.base_url, headers=headers,
                                 timeout=60) as client:
        responses = await asyncio.gather(*[
            client.post("/seq/local/demo/stream-story/step",
                        json={"message": f"tale {i}", "stepIndex": 0, "runRemaining": True})
            for i in range(20)])
    ids = set()
    for i, response in enumerate(responses):
        got = events(parse_sse(response.content))
        assert got[0]["eventType"] == "run_started" and got[-1]["eventType"] == "flow_completed"
        assert got[-1]["result"]["response"].startswith(f"Once upon a time there was tale {i}.")
        assert len({e["executionId"] for e in got}) == 1
        ids.add(got[0]["executionId"])
    assert len(ids) == 20


async def test_next_step_call_overlapping_the_previous_stream(server: DevServer) -> None:
    """The client may open the next /step before the previous connection is torn down."""
    headers = {"Authorization": f"Bearer {server.api_key}"}
    first = httpx.AsyncClient(base_url=server.base_url, headers=headers, timeout=60)
    second = httpx.AsyncClient(base_url=server.base_url, headers=headers, timeout=60)
    async with first, second, first.stream("POST", "/seq/local/demo/two-step/step",
                                           json={"message": "o", "stepIndex": 0}) as response:
        buffer = b""
        async for chunk in response.aiter_bytes():
            buffer += chunk
            if b"event: step_paused" in buffer and buffer.endswith(b"\n\n"):
                break
        got = events(parse_sse(buffer))
        # The first connection is still open while the continuation runs.
        follow = await second.post("/seq/local/demo/two-step/step", json={
            "executionId": got[0]["executionId"], "stepIndex": 1,
            "accumulatedOutputs": {"draft": got[3]["output"]}})
    assert events(parse_sse(follow.content))[-1]["eventType"] == "flow_completed"
