"""A long-lived dev server does not keep abandoned runs in memory.

Clients go away: a step-through run left between blocks, or a run left at a
tool pause, may never be continued. The server holds in memory only the runs
something is working on plus a bounded number of recently idle ones; every
other run lives in SQLite alone, and is still continued, traced and followed
exactly as the contract says. These tests serve the app in this process (real
uvicorn, real sockets) so they can count the `RunState` objects it holds.
"""

from __future__ import annotations

import gc
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from devserver_helpers import events, parse_sse, wait_for
from inprocess_server import serve_in_process

from noukai_devserver._app import ServerState
from noukai_devserver._runs import RunState

KEEP_IDLE = 3
ABANDONED = 8  # of each kind, well past KEEP_IDLE
WEATHER_TOOL = {"type": "function", "function": {
    "name": "get_weather", "description": "Get the current weather for a location.",
    "parameters": {"type": "object", "properties": {"location": {"type": "string"}},
                   "required": ["location"]}}}


def run_states_alive() -> int:
    """Every `RunState` object in this process that is not garbage."""
    gc.collect()
    return sum(1 for obj in gc.get_objects() if isinstance(obj, RunState))


class Served:
    def __init__(self, base_url: str, state: ServerState) -> None:
        self.state = state
        self.http = httpx.Client(base_url=base_url, timeout=30.0,
                                 headers={"Authorization": "Bearer nk_local_dev"})

    def post(self, slug: str, suffix: str, body: dict[str, Any]) -> httpx.Response:
        return self.http.post(f"/seq/local/demo/{slug}/{suffix}", json=body)

    def step(self, slug: str, body: dict[str, Any]) -> list[dict[str, Any]]:
        response = self.post(slug, "step", body)
        assert response.status_code == 200, response.text
        return events(parse_sse(response.content))

    def get(self, slug: str, path: str, **kw: Any) -> httpx.Response:
        return self.http.get(f"/seq/local/demo/{slug}/{path}", **kw)

    def leave_mid_block(self, slug: str) -> str:
        """Start a step-through run, and drop its stream while its first block runs."""
        with self.http.stream("POST", f"/seq/local/demo/{slug}/step",
                              json={"message": "bye", "stepIndex": 0}) as response:
            execution = ""
            for line in response.iter_lines():
                if '"run_started"' in line:
                    execution = line.split('"executionId":"')[1].split('"')[0]
                if '"step_started"' in line:
                    return execution
        raise AssertionError("the stream ended before its first block started")


@pytest.fixture
def served(tmp_path: Path) -> Iterator[Served]:
    with serve_in_process(tmp_path / "memory.sqlite3", heartbeat=0.1, slow_seconds=0.3,
                          stream_delay=0.01, job_min_latency=0.1,
                          idle_runs_in_memory=KEEP_IDLE) as (base_url, state):
        served = Served(base_url, state)
        yield served
        served.http.close()


def abandon_runs(served: Served) -> dict[str, list[dict[str, Any]]]:
    """Leave runs of every abandonable kind behind; return the last frame of each."""
    left: dict[str, list[dict[str, Any]]] = {"between_steps": [], "execute_tools": [],
                                             "step_tools": []}
    for i in range(ABANDONED):
        frames = served.step("two-step", {"message": f"left {i}", "stepIndex": 0})
        assert frames[-1]["eventType"] == "step_paused"
        left["between_steps"].append(frames[-2])  # its step_completed
        paused = served.post("tools-enabled", "execute", {
            "message": "Weather in Tokyo?", "tools": [WEATHER_TOOL]}).json()
        assert paused["status"] == "tool_calls_required"
        left["execute_tools"].append(paused)
        frames = served.step("tools-enabled", {"message": "Weather in Oslo?", "stepIndex": 0,
                                               "tools": [WEATHER_TOOL]})
        assert frames[-1]["eventType"] == "step_paused_for_tool_calls"
        left["step_tools"].append(frames[-1])
    return left


def test_abandoned_runs_do_not_accumulate_in_memory(served: Served) -> None:
    assert run_states_alive() == 0
    abandon_runs(served)
    dropped = [served.leave_mid_block("slow-steps") for _ in range(3)]
    for execution in dropped:  # a dropped stream cancels its run: finished, not idle
        wait_for(lambda e=execution: served.get("slow-steps", f"runs/{e}").json()["status"]
                 == "cancelled")
    assert served.state.runs.in_memory() <= KEEP_IDLE
    assert run_states_alive() <= KEEP_IDLE
    # Reads of every run load it for the request only: memory stays bounded.
    for execution in dropped:
        assert served.get("slow-steps", f"runs/{execution}/trace").status_code == 200
    assert run_states_alive() <= KEEP_IDLE


def test_runs_evicted_from_memory_keep_every_contract_promise(served: Served) -> None:
    left = abandon_runs(served)
    assert run_states_alive() <= KEEP_IDLE
    oldest = left["between_steps"][0]  # long evicted: it lives in SQLite alone
    execution = oldest["executionId"]
    summary = served.get("two-step", f"runs/{execution}").json()
    assert summary["status"] == "running"
    trace = served.get("two-step", f"runs/{execution}/trace").json()
    assert [s["stepId"] for s in trace["steps"]] == ["draft"]
    # A follower of the waiting run sees its log, then tails the continuation live.
    followed: dict[str, bytes] = {}

    def follow() -> None:
        followed["raw"] = served.get("two-step", f"runs/{execution}/trace/stream").content

    follower = threading.Thread(target=follow)
    follower.start()
    wait_for(lambda: served.state.broker._subs.get(execution))
    done = served.step("two-step", {"executionId": execution, "stepIndex": 1,
                                    "accumulatedOutputs": {"draft": oldest["output"]}})
    assert [e["eventType"] for e in done][-2:] == ["step_completed", "flow_completed"]
    follower.join(30)
    tail = [e["eventType"] for e in events(parse_sse(followed["raw"]))]
    assert tail[0] == "run_started" and tail[-2:] == ["step_completed", "flow_completed"]
    assert served.get("two-step", f"runs/{execution}").json()["status"] == "completed"

    paused = left["execute_tools"][0]
    result = {"toolCallId": paused["toolCalls"][0]["id"], "output": "sunny"}
    resumed = served.post("tools-enabled", "execute", {
        "executionId": paused["executionId"], "pausedAtStep": paused["pausedAtStep"],
        "iterationsUsed": paused["iterationsUsed"], "tools": [WEATHER_TOOL],
        "toolCallMessages": paused["toolCallMessages"] + [result],
        "accumulatedOutputs": paused["accumulatedOutputs"]}).json()
    assert resumed["status"] == "completed", resumed
    assert "sunny" in resumed["result"]["response"]

    pause = left["step_tools"][0]
    result = {"toolCallId": pause["toolCalls"][0]["id"], "output": "cold"}
    frames = served.step("tools-enabled", {
        "executionId": pause["executionId"], "stepIndex": 0, "accumulatedOutputs": {},
        "toolCallMessages": pause["toolCallMessages"] + [result],
        "iterationsUsed": pause["iterationsUsed"], "tools": [WEATHER_TOOL]})
    assert frames[-1]["eventType"] == "flow_completed"
    assert run_states_alive() <= KEEP_IDLE


def test_concurrent_continuations_of_an_evicted_run_run_its_block_once(
        served: Served) -> None:
    left = abandon_runs(served)
    oldest = left["between_steps"][0]
    execution = oldest["executionId"]
    body = {"executionId": execution, "stepIndex": 1,
            "accumulatedOutputs": {"draft": oldest["output"]}}
    answers: list[httpx.Response] = []
    barrier = threading.Barrier(4)

    def continue_it() -> None:
        barrier.wait()
        answers.append(served.post("two-step", "step", body))

    threads = [threading.Thread(target=continue_it) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert sorted(r.status_code for r in answers) == [200, 409, 409, 409]
    attempts = served.get("two-step", f"runs/{execution}/steps/summarise/trace",
                          params={"attempt": "all"}).json()["attempts"]
    assert len(attempts) == 1
