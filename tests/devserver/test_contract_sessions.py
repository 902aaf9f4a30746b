"""Contract checks, part 7: sessions (§11, checklist items 35-37).

The demo server covers tagging and shapes; extra servers from the plugin's
`noukai_devserver_factory` (each with a small workspace written here) produce
what the demo cannot: a session spanning two orgs (403), sessions past
retention (410) and a `metadata_only` capture mode.
"""

from __future__ import annotations

import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

sys.path.insert(0, str(Path(__file__).parent))

from test_contract_sse_parser import (
    check_error,
    execute_body,
    flow_path,
    is_int,
    open_client,
    read_stream,
    step_body,
)
from test_contract_traces import (
    RUN_STATUSES,
    STEP_STATUSES,
    check_run_summary,
    check_time,
    fetch_trace,
)

from noukai_devserver.pytest_plugin import DevServer

FLOW = """message: required
blocks:
  - {id: respond, name: Respond, type: llm, model: local/echo-1, prompt: "{{message}}"}
"""


@pytest.fixture
def client(noukai_devserver: DevServer) -> Iterator[httpx.Client]:
    with open_client(noukai_devserver.base_url, noukai_devserver.api_key) as c:
        yield c


def check_session_execution(execution: dict[str, Any]) -> None:
    """§11.2 SessionExecution / SessionStep field types (models the SDK validates)."""
    assert isinstance(execution["executionId"], str)
    assert execution["status"] in RUN_STATUSES, execution
    assert isinstance(execution["snapshotsAvailable"], bool)
    assert execution.get("triggerType") in (None, "execute", "step", "job")
    assert execution.get("traceCaptureMode") in (None, "full", "redacted", "metadata_only",
                                                 "off")
    assert execution.get("slug") is None or "/" not in execution["slug"]
    check_time(execution.get("startedAt"))
    check_time(execution.get("completedAt"))
    for step in execution.get("steps", []):
        assert isinstance(step["stepId"], str)
        assert is_int(step.get("attempt", 1)) and step.get("attempt", 1) >= 1
        assert step.get("loopIndex") is None or is_int(step["loopIndex"])
        assert step.get("status", "completed") in STEP_STATUSES
        assert step.get("durationMs") is None or is_int(step["durationMs"])
        for key in ("inputSnapshot", "errorSnapshot"):
            assert step.get(key) is None or isinstance(step[key], dict), (key, step)
        assert isinstance(step.get("truncated", False), bool)
        check_time(step.get("startedAt"))
        check_time(step.get("completedAt"))


# -- sessions (items 35-37) ---------------------------------------------------------

def _session(client: httpx.Client, session_id: str) -> dict[str, Any]:
    response = client.get(f"/seq/sessions/{session_id}")
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    assert body["sessionId"] == session_id
    for execution in body["executions"]:
        check_session_execution(execution)
    return body


def _check_session_steps(execution: dict[str, Any], live_outputs: list[Any]) -> None:
    """The last `len(live_outputs)` snapshots equal the live outputs, in order."""
    assert execution["snapshotsAvailable"] is True
    assert execution.get("traceCaptureMode") == "full"
    snapshots = [s["outputSnapshot"] for s in execution["steps"]]
    assert snapshots[-len(live_outputs):] == live_outputs
    for step in execution["steps"]:
        assert step.get("inputSnapshot") is None or isinstance(step["inputSnapshot"], dict)
        assert step.get("status", "completed") in STEP_STATUSES
        assert step.get("truncated", False) is False
        assert "__rendered_prompt__" not in str(step["outputSnapshot"])


def test_session_collects_execute_step_and_job_runs(noukai_devserver: DevServer) -> None:
    """Items 35, 36: one execution per run, start order, bare slug, live outputs."""
    session_id = str(uuid.uuid4())
    with open_client(noukai_devserver.base_url, noukai_devserver.api_key, session_id) as c:
        done = c.post(flow_path("two-step", "execute"), json=execute_body("s1")).json()
        # Fetched immediately: snapshots are persisted before the response.
        [execution] = _session(c, session_id)["executions"]
        first = read_stream(c, "POST", flow_path("two-step", "step"), step_body("s2"))
        draft = first.events[-2]["output"]
        eid = first.events[0]["executionId"]
        second = read_stream(c, "POST", flow_path("two-step", "step"), step_body(
            None, step_index=1, execution_id=eid, outputs={"draft": draft}))
        job = c.post(flow_path("hello-world", "jobs"), json=execute_body("s3")).json()
        deadline = time.monotonic() + 30
        while c.get(flow_path("hello-world", f"jobs/{job['executionId']}")).json()[
                "status"] not in ("completed", "failed") and time.monotonic() < deadline:
            time.sleep(0.05)
        executions = _session(c, session_id)["executions"]
        job_result = c.get(flow_path("hello-world", f"jobs/{job['executionId']}")).json()[
            "result"]
    assert execution["executionId"] == done["executionId"]
    _check_session_steps(execution, [done["result"]])
    assert [s["stepId"] for s in execution["steps"]] == ["draft", "summarise"]
    assert [e["executionId"] for e in executions] == [done["executionId"], eid,
                                                      job["executionId"]]
    assert [e["triggerType"] for e in executions] == ["execute", "step", "job"]
    assert [e["slug"] for e in executions] == ["two-step", "two-step", "hello-world"]
    assert executions[2]["steps"][-1]["outputSnapshot"] == job_result
    assert all(e["status"] == "completed" for e in executions)
    _check_session_steps(executions[1], [draft, second.events[-2]["output"]])
    assert len(executions[1]["steps"]) == 2
    assert executions[1]["steps"][-1]["outputSnapshot"] == second.events[-1]["result"]
    starts = [e.get("startedAt") for e in executions]
    assert starts == sorted(starts)


def test_session_records_the_failed_step(noukai_devserver: DevServer) -> None:
    session_id = str(uuid.uuid4())
    with open_client(noukai_devserver.base_url, noukai_devserver.api_key, session_id) as c:
        c.post(flow_path("always-fails", "execute"), json=execute_body("x"))
        [execution] = _session(c, session_id)["executions"]
    assert execution["status"] == "failed" and execution["errorAtStep"] == "explode"
    error = execution["steps"][-1]["errorSnapshot"]
    assert isinstance(error["code"], str) and isinstance(error["message"], str)


def test_session_fetch_errors_on_the_demo_server(noukai_devserver: DevServer,
                                                 client: httpx.Client) -> None:
    """Item 37: malformed id 400, unknown 404; another org's session is hidden."""
    check_error(client.get("/seq/sessions/not-a-uuid"), 400, "INVALID_SESSION_ID")
    check_error(client.get(f"/seq/sessions/{uuid.uuid4()}"), 404, "SESSION_NOT_FOUND")
    session_id = str(uuid.uuid4())
    client.post(flow_path("hello-world", "execute"), json=execute_body("mine"),
                headers={"X-Session-Id": session_id})
    with open_client(noukai_devserver.base_url, noukai_devserver.broke_api_key) as other:
        response = other.get(f"/seq/sessions/{session_id}")
    if response.status_code == 403:
        check_error(response, 403, "FORBIDDEN")
    else:
        check_error(response, 404, "SESSION_NOT_FOUND")


def _workspace(root: Path, retention: float | None = None) -> Path:
    lines = ["orgs:",
             "  alpha: {credits: unlimited, capture: full, projects: {app: {}}}",
             "  beta: {credits: unlimited, capture: full, projects: {app: {}}}",
             "  gamma: {credits: unlimited, capture: metadata_only, projects: {app: {}}}",
             "keys:", "  nk_alpha: {org: alpha}", "  nk_beta: {org: beta}",
             "  nk_gamma: {org: gamma}"]
    if retention is not None:
        lines.append(f"sessionRetentionSeconds: {retention}")
    (root / "noukai.yaml").write_text("\n".join(lines) + "\n")
    for org in ("alpha", "beta", "gamma"):
        (root / "flows" / org / "app").mkdir(parents=True)
        (root / "flows" / org / "app" / "hello.yaml").write_text(FLOW)
    return root


@pytest.fixture(scope="module")
def multi_org(noukai_devserver_factory: Callable[..., DevServer],
              tmp_path_factory: pytest.TempPathFactory) -> DevServer:
    return noukai_devserver_factory(_workspace(tmp_path_factory.mktemp("contract-ws")))


def _tag(server: DevServer, key: str, org: str, session_id: str, **extra: Any) -> None:
    with open_client(server.base_url, key, session_id) as c:
        response = c.post(flow_path("hello", "execute", org, "app"),
                          json=execute_body("tagged", **extra))
        assert response.status_code == 200, response.text


def test_session_spanning_an_inaccessible_org_is_403(multi_org: DevServer) -> None:
    session_id = str(uuid.uuid4())
    _tag(multi_org, "nk_alpha", "alpha", session_id)
    _tag(multi_org, "nk_beta", "beta", session_id)
    with open_client(multi_org.base_url, "nk_alpha") as c:
        check_error(c.get(f"/seq/sessions/{session_id}"), 403, "FORBIDDEN")


def test_metadata_only_capture_and_trace_flag(multi_org: DevServer) -> None:
    """§11.3: metadata_only stores no snapshots; trace: true forces full."""
    plain, traced = str(uuid.uuid4()), str(uuid.uuid4())
    _tag(multi_org, "nk_gamma", "gamma", plain)
    _tag(multi_org, "nk_gamma", "gamma", traced, trace=True)
    with open_client(multi_org.base_url, "nk_gamma") as c:
        [meta] = _session(c, plain)["executions"]
        [full] = _session(c, traced)["executions"]
    assert meta["snapshotsAvailable"] is False and meta["traceCaptureMode"] == "metadata_only"
    assert all(s.get("outputSnapshot") is None for s in meta["steps"])
    assert full["snapshotsAvailable"] is True and full["traceCaptureMode"] == "full"


def test_session_past_retention_is_410(noukai_devserver_factory: Callable[..., DevServer],
                                       tmp_path: Path) -> None:
    server = noukai_devserver_factory(_workspace(tmp_path, retention=0.2))
    session_id = str(uuid.uuid4())
    _tag(server, "nk_alpha", "alpha", session_id)
    with open_client(server.base_url, "nk_alpha") as c:
        deadline = time.monotonic() + 20
        response = c.get(f"/seq/sessions/{session_id}")
        while response.status_code == 200 and time.monotonic() < deadline:
            time.sleep(0.05)
            response = c.get(f"/seq/sessions/{session_id}")
    check_error(response, 410, "SESSION_EXPIRED")
    server.stop()


@pytest.mark.parametrize("slug,message", [
    ("two-step", "y"), ("loop-list", None), ("flaky-retry", "x"), ("stream-story", "a fox"),
])
def test_session_steps_replay_exactly_the_live_run(noukai_devserver: DevServer, slug: str,
                                                   message: str | None) -> None:
    """§11.4 / item 36: replay makes one step_completed per session step, so the
    session's (stepId, outputSnapshot) list must equal the live step_completed list,
    and its last snapshot the live result (loops and retries included)."""
    session_id = str(uuid.uuid4())
    with open_client(noukai_devserver.base_url, noukai_devserver.api_key, session_id) as c:
        live = read_stream(c, "POST", flow_path(slug, "step"),
                           step_body(message, run_remaining=True))
        [execution] = _session(c, session_id)["executions"]
    completed = [(e["stepId"], e["output"]) for e in live.events
                 if e["eventType"] == "step_completed"]
    assert execution["triggerType"] == "step" and execution["slug"] == slug
    assert [(s["stepId"], s["outputSnapshot"]) for s in execution["steps"]] == completed
    assert execution["steps"][-1]["outputSnapshot"] == live.events[-1]["result"]
    for step in [execution, *execution["steps"]]:
        check_time(step.get("startedAt"))
        check_time(step.get("completedAt"))


def test_a_run_paused_for_tools_in_traces_and_sessions(noukai_devserver: DevServer) -> None:
    """A never-resumed tool pause still reads as valid models everywhere (§10.1, §11.2)."""
    session_id = str(uuid.uuid4())
    tools = [{"type": "function", "function": {"name": "get_weather", "parameters": {}}}]
    with open_client(noukai_devserver.base_url, noukai_devserver.api_key, session_id) as c:
        paused = c.post(flow_path("tools-enabled", "execute"),
                        json=execute_body("Weather in Tokyo?", tools=tools)).json()
        assert paused["status"] == "tool_calls_required"
        trace = fetch_trace(c, "tools-enabled", paused["executionId"])
        [execution] = _session(c, session_id)["executions"]
        summary = c.get(flow_path("tools-enabled", f"runs/{paused['executionId']}"))
    assert trace["flowRun"]["status"] not in ("completed", "failed")
    assert execution["status"] not in ("completed", "failed")
    check_run_summary(summary.json())


def test_snapshots_exist_when_flow_completed_arrives(noukai_devserver: DevServer) -> None:
    """§11.1: snapshots are persisted *before* the finishing frame is sent: a fetch made
    the moment `flow_completed` arrives (stream still open) sees the whole run."""
    session_id = str(uuid.uuid4())
    url, key = noukai_devserver.base_url, noukai_devserver.api_key
    with open_client(url, key, session_id) as c, open_client(url, key) as reader, \
            c.stream("POST", flow_path("slow-steps", "step"),
                     json=step_body("persist", run_remaining=True)) as live:
        buffer = b""
        chunks = live.iter_raw()
        while b"event: flow_completed" not in buffer or not buffer.endswith(b"\n\n"):
            buffer += next(chunks)
        [execution] = _session(reader, session_id)["executions"]
    assert execution["status"] == "completed"
    assert [s["stepId"] for s in execution["steps"]] == ["first", "second", "third"]
    assert all(s["outputSnapshot"] is not None for s in execution["steps"])


def test_another_orgs_run_is_invisible(multi_org: DevServer) -> None:
    """§7.2 / §10.2: a run of another org is RUN_NOT_FOUND for cursors and run routes."""
    with open_client(multi_org.base_url, "nk_alpha") as alpha, \
            open_client(multi_org.base_url, "nk_beta") as beta:
        first = read_stream(alpha, "POST", flow_path("hello", "step", "alpha", "app"),
                            step_body("mine"))
        execution_id = first.events[0]["executionId"]
        cursor = step_body(None, step_index=0, execution_id=execution_id)
        check_error(beta.post(flow_path("hello", "step", "beta", "app"), json=cursor),
                    404, "RUN_NOT_FOUND")
        for route in (f"runs/{execution_id}/trace", f"runs/{execution_id}"):
            check_error(beta.get(flow_path("hello", route, "beta", "app")), 404)
