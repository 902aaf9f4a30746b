"""Contract checks, part 4: runs and traces (§10).

Everything here runs against the demo server; the model checkers
(`check_step_trace`, `check_run_summary`, `check_time`) are shared with
`test_contract_sessions`.
"""

from __future__ import annotations

import re
import sys
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

sys.path.insert(0, str(Path(__file__).parent))

from test_contract_sse_parser import (
    check_decimal,
    check_error,
    check_tokens,
    execute_body,
    flow_path,
    is_int,
    open_client,
    read_stream,
    step_body,
)

from noukai_devserver.pytest_plugin import DevServer

STEP_STATUSES = {"running", "completed", "failed", "skipped"}
RUN_STATUSES = {"pending", "running", "completed", "failed", "cancelled"}
# §1.4: UTC, "Z", 0, 3 or 6 fractional digits (Python 3.10 fromisoformat).
TIMESTAMP = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{3}|\.\d{6})?Z$")


@pytest.fixture
def client(noukai_devserver: DevServer) -> Iterator[httpx.Client]:
    with open_client(noukai_devserver.base_url, noukai_devserver.api_key) as c:
        yield c


def check_time(value: Any) -> None:
    assert value is None or (isinstance(value, str) and TIMESTAMP.match(value)), value


def check_step_trace(step: dict[str, Any]) -> None:
    """§10.1 StepTrace: strict status, int attempt, object-or-null contexts."""
    assert isinstance(step["stepId"], str) and step["stepId"]
    assert is_int(step["attempt"]) and step["attempt"] >= 1
    assert step["status"] in STEP_STATUSES, step
    assert step.get("loopIndex") is None or is_int(step["loopIndex"])
    for key in ("inputContext", "outputContext", "errorContext"):
        assert step.get(key) is None or isinstance(step[key], dict), (key, step)
    for key in ("durationMs", "inputSizeBytes", "outputSizeBytes"):
        assert step.get(key) is None or is_int(step[key]), (key, step)
    if step.get("tokens") is not None:
        check_tokens(step["tokens"])
    if step.get("costUsd") is not None:
        check_decimal(step["costUsd"])
    assert step.get("modelUsed") is None or isinstance(step["modelUsed"], str)
    assert isinstance(step.get("truncated", False), bool)
    check_time(step.get("startedAt"))
    check_time(step.get("completedAt"))


def check_run_summary(run: dict[str, Any]) -> None:
    """§10.1 RunSummary: required id/flowId/status; typed optional fields."""
    assert isinstance(run["id"], str) and isinstance(run["flowId"], str)
    assert run["status"] in RUN_STATUSES, run
    assert run.get("triggerType") in (None, "execute", "step", "job", "ad_hoc"), run
    for key in ("durationMs", "stepCount"):
        assert run.get(key) is None or is_int(run[key]), (key, run)
    if run.get("costUsd") is not None:
        check_decimal(run["costUsd"])
    check_time(run.get("startedAt"))
    check_time(run.get("completedAt"))


def fetch_trace(client: httpx.Client, slug: str, execution_id: str) -> dict[str, Any]:
    response = client.get(flow_path(slug, f"runs/{execution_id}/trace"))
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    check_run_summary(body["flowRun"])
    for step in body["steps"]:
        check_step_trace(step)
    return body


# -- traces (items 31, 32, 34) --------------------------------------------------

def test_run_trace_of_an_execute_run(client: httpx.Client) -> None:
    done = client.post(flow_path("two-step", "execute"), json=execute_body("trace me")).json()
    trace = fetch_trace(client, "two-step", done["executionId"])
    run = trace["flowRun"]
    assert run["id"] == done["executionId"] and run["flowId"] == done["flowId"]
    assert run["status"] == "completed" and run.get("triggerType") == "execute"
    assert run.get("stepCount") is None or is_int(run["stepCount"])
    check_time(run.get("startedAt"))
    assert [s["stepId"] for s in trace["steps"]] == ["draft", "summarise"]
    summary = client.get(flow_path("two-step", f"runs/{done['executionId']}"))
    assert summary.status_code == 200 and summary.json()["id"] == done["executionId"]
    assert summary.json()["status"] in RUN_STATUSES


def test_run_trace_of_a_step_run_and_a_failed_run(client: httpx.Client) -> None:
    reply = read_stream(client, "POST", flow_path("hello-world", "step"), step_body("s"))
    execution_id = reply.events[0]["executionId"]
    run = fetch_trace(client, "hello-world", execution_id)["flowRun"]
    assert run["triggerType"] == "step" and run["status"] == "completed"
    failed = client.post(flow_path("always-fails", "execute"), json=execute_body("x")).json()
    trace = fetch_trace(client, "always-fails", failed["executionId"])
    assert trace["flowRun"]["status"] == "failed"
    explode = trace["steps"][-1]
    assert explode["stepId"] == "explode" and explode["status"] == "failed"
    assert isinstance(explode["errorContext"], dict)


def test_step_trace_attempt_selection(client: httpx.Client) -> None:
    """Item 32: absent = latest, `all` = ordered attempts, integer = that attempt."""
    done = client.post(flow_path("flaky-retry", "execute"), json=execute_body("f")).json()
    base = flow_path("flaky-retry", f"runs/{done['executionId']}/steps/flaky/trace")
    latest = client.get(base).json()
    check_step_trace(latest)
    assert latest["stepId"] == "flaky" and latest["attempt"] == 2
    assert latest["status"] == "completed"
    every = client.get(base, params={"attempt": "all"}).json()
    assert every["stepId"] == "flaky"
    assert [a["attempt"] for a in every["attempts"]] == [1, 2]
    assert [a["status"] for a in every["attempts"]] == ["failed", "completed"]
    first = client.get(base, params={"attempt": "1"}).json()
    check_step_trace(first)
    assert first["attempt"] == 1 and first["status"] == "failed"
    assert client.get(base, params={"attempt": "9"}).status_code == 404
    [only] = fetch_trace(client, "flaky-retry", done["executionId"])["steps"]
    assert only["attempt"] == 2


def test_step_trace_loop_index(client: httpx.Client) -> None:
    done = client.post(flow_path("loop-list", "execute"), json=execute_body()).json()
    base = flow_path("loop-list", f"runs/{done['executionId']}/steps/describe/trace")
    for query in ({"loop_index": "1"}, {"loopIndex": "1"}):
        response = client.get(base, params=query)
        assert response.status_code == 200, response.text
        check_step_trace(response.json())
        assert response.json()["stepId"] == "describe" and response.json()["loopIndex"] == 1


def test_trace_route_errors(client: httpx.Client) -> None:
    """§10.2: unknown run / step 404 with codes; a run only under its own flow."""
    done = client.post(flow_path("hello-world", "execute"), json=execute_body("e")).json()
    eid = done["executionId"]
    check_error(client.get(flow_path("hello-world", f"runs/{uuid.uuid4()}/trace")),
                404, "RUN_NOT_FOUND")
    check_error(client.get(flow_path("hello-world", f"runs/{eid}/steps/nope/trace")),
                404, "STEP_NOT_FOUND")
    for route in (f"runs/{eid}/trace", f"runs/{eid}", f"runs/{eid}/steps/respond/trace",
                  f"runs/{eid}/trace/stream"):
        check_error(client.get(flow_path("two-step", route)), 404)


def test_loop_attempts_order_and_job_run_summary(client: httpx.Client) -> None:
    """§10.1: StepAttempts ordered by attempt then loopIndex; a job's run summary."""
    done = client.post(flow_path("loop-list", "execute"),
                       json=execute_body(parameters={"items": ["x", "y", "z"]})).json()
    every = client.get(flow_path("loop-list", f"runs/{done['executionId']}/steps/describe/trace"),
                       params={"attempt": "all"}).json()
    keys = [(a["attempt"], a["loopIndex"]) for a in every["attempts"]]
    assert keys == [(1, 0), (1, 1), (1, 2)]
    job = client.post(flow_path("hello-world", "jobs"), json=execute_body("j")).json()
    summary = client.get(flow_path("hello-world", f"runs/{job['executionId']}")).json()
    assert summary["id"] == job["executionId"] and summary["status"] in RUN_STATUSES
    assert summary.get("triggerType") == "job"


def test_live_trace_of_an_abandoned_step_run_closes_after_the_idle_limit(
        noukai_devserver_factory: Callable[..., DevServer]) -> None:
    """§10.3: an idle step run is tailed with heartbeats, then closed with a final
    comment once the (configured) idle limit passes with no new event."""
    server = noukai_devserver_factory(live_idle_timeout=0.5)
    with open_client(server.base_url, server.api_key) as c:
        first = read_stream(c, "POST", flow_path("two-step", "step"), step_body("idle"))
        execution_id = first.events[0]["executionId"]
        reply = read_stream(c, "GET", flow_path("two-step", f"runs/{execution_id}/trace/stream"))
    server.stop()
    assert reply.response.status_code == 200
    assert reply.types[0] == "run_started" and "flow_completed" not in reply.types
    assert "step_paused" not in reply.types
    assert reply.frames[-1].data is None and reply.frames[-1].comments


def test_unknown_run_on_every_run_route_is_run_not_found(client: httpx.Client) -> None:
    missing = str(uuid.uuid4())
    for route in (f"runs/{missing}", f"runs/{missing}/trace", f"runs/{missing}/trace/stream",
                  f"runs/{missing}/steps/respond/trace"):
        check_error(client.get(flow_path("hello-world", route)), 404, "RUN_NOT_FOUND")


def test_trace_stream_of_a_step_run_that_failed(client: httpx.Client) -> None:
    """§10.3: step_error replayed, then a final flow_completed with result null."""
    live = read_stream(client, "POST", flow_path("always-fails", "step"),
                       step_body("x", run_remaining=True))
    assert live.types[-1] == "step_error"
    execution_id = live.events[0]["executionId"]
    replay = read_stream(client, "GET",
                         flow_path("always-fails", f"runs/{execution_id}/trace/stream"))
    assert replay.types[0] == "run_started" and "step_error" in replay.types
    assert replay.types[-1] == "flow_completed" and replay.events[-1]["result"] is None
    assert fetch_trace(client, "always-fails", execution_id)["flowRun"]["status"] == "failed"
