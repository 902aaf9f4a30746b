"""Contract checks, part 3: tool pauses and resumes (§8) and `messages` mode (§12).

Resumes are sent the way the SDKs send them: to the same path, without
`X-Session-Id`, echoing `iterationsUsed`/`accumulatedOutputs`, with the paused
`toolCallMessages` followed by one result per call, in each of the four
tool-result shapes of §8.3.
"""

from __future__ import annotations

import json
import sys
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

from noukai_devserver.pytest_plugin import DevServer

WEATHER_TOOL = {"type": "function", "function": {
    "name": "get_weather", "description": "Get the current weather for a location.",
    "parameters": {"type": "object", "properties": {"location": {"type": "string"}},
                   "required": ["location"]}}}
TOOLS = [WEATHER_TOOL]
ResultShape = Callable[[str], dict[str, Any]]
SHAPES: dict[str, ResultShape] = {
    "camel-role-content": lambda i: {"role": "tool", "toolCallId": i, "content": "Sunny, 22C."},
    "snake-role-content": lambda i: {"role": "tool", "tool_call_id": i, "content": "Rain."},
    "snake-output-no-role": lambda i: {"tool_call_id": i, "output": "Fog."},
    "camel-output-no-role": lambda i: {"toolCallId": i, "output": {"tempC": 22}},
}


@pytest.fixture
def client(noukai_devserver: DevServer) -> Iterator[httpx.Client]:
    with open_client(noukai_devserver.base_url, noukai_devserver.api_key) as c:
        yield c


def tool_locations(calls: list[dict[str, Any]]) -> list[str]:
    return [json.loads(c["function"]["arguments"]).get("location") for c in calls]


def check_paused(body: dict[str, Any]) -> None:
    """Item 9 / §4.3: every PausedResult field, with its JSON type."""
    assert body["status"] == "tool_calls_required", body
    for key in ("executionId", "pausedAtStep", "flowId"):
        assert isinstance(body[key], str) and body[key], key
    assert is_int(body["iterationsUsed"]) and is_int(body["blockCount"])
    assert isinstance(body["toolCallMessages"], list)
    assert isinstance(body.get("accumulatedOutputs", {}), dict)
    assert body["toolCalls"], "a pause has at least one tool call"
    for call in body["toolCalls"]:
        assert call["type"] == "function" and isinstance(call["id"], str) and call["id"]
        assert isinstance(call["function"]["arguments"], str)  # item 27: a JSON string
        json.loads(call["function"]["arguments"])
    last = body["toolCallMessages"][-1]
    assert last["role"] == "assistant" and "toolCalls" in last, last  # §8.3 camelCase out
    assert [c["id"] for c in last["toolCalls"]] == [c["id"] for c in body["toolCalls"]]


def resume_body(paused: dict[str, Any], shape: ResultShape, **extra: Any) -> dict[str, Any]:
    """§8.1 step 2, as Python sends it: no message, echoes, original tools."""
    results = [shape(call["id"]) for call in paused["toolCalls"]]
    return execute_body(None, executionId=paused["executionId"],
                        pausedAtStep=paused["pausedAtStep"],
                        iterationsUsed=paused["iterationsUsed"],
                        toolCallMessages=paused["toolCallMessages"] + results,
                        accumulatedOutputs=paused.get("accumulatedOutputs", {}),
                        tools=TOOLS, **extra)


def _pause(client: httpx.Client, message: str, slug: str = "tools-enabled",
           **extra: Any) -> dict[str, Any]:
    response = client.post(flow_path(slug, "execute"),
                           json=execute_body(message, tools=TOOLS, **extra))
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    check_paused(body)
    return body


# -- /execute pause and resume (items 9, 24, 26, 27) ---------------------------

@pytest.mark.parametrize("shape", list(SHAPES))
def test_execute_pauses_then_resumes_with_each_result_shape(client: httpx.Client,
                                                            shape: str) -> None:
    paused = _pause(client, "What is the weather in Tokyo?")
    assert paused["pausedAtStep"] == "weather" and paused["iterationsUsed"] == 1
    assert tool_locations(paused["toolCalls"]) == ["Tokyo"]
    assert all(m.get("role") != "system" for m in paused["toolCallMessages"])
    response = client.post(flow_path("tools-enabled", "execute"),
                           json=resume_body(paused, SHAPES[shape]))
    assert response.status_code == 200, response.text
    done = response.json()
    assert done["status"] == "completed" and done["result"] is not None
    assert done["executionId"] == paused["executionId"]


def test_ts_style_resume_with_explicit_nulls(client: httpx.Client) -> None:
    paused = _pause(client, "What is the weather in Lima?")
    body = resume_body(paused, SHAPES["camel-role-content"], messages=None,
                       blockOverrides=None, attachments=None, toolChoice=None)
    body["message"] = None
    done = client.post(flow_path("tools-enabled", "execute"), json=body)
    assert done.status_code == 200 and done.json()["status"] == "completed", done.text


def test_several_places_are_requested_one_per_round(client: httpx.Client) -> None:
    """Item 25: a second pause with a longer conversation and a fresh tool id."""
    first = _pause(client, "What is the weather in Paris and in Tokyo?")
    second = client.post(flow_path("tools-enabled", "execute"),
                         json=resume_body(first, SHAPES["camel-role-content"])).json()
    check_paused(second)
    assert second["executionId"] == first["executionId"]
    assert second["iterationsUsed"] == first["iterationsUsed"] + 1
    assert len(second["toolCallMessages"]) > len(first["toolCallMessages"])
    assert tool_locations(first["toolCalls"]) + tool_locations(second["toolCalls"]) == \
        ["Paris", "Tokyo"]
    ids = [c["id"] for c in first["toolCalls"] + second["toolCalls"]]
    assert len(set(ids)) == len(ids)
    third = client.post(flow_path("tools-enabled", "execute"),
                        json=resume_body(second, SHAPES["snake-output-no-role"])).json()
    assert third["status"] == "completed"


def test_tool_choice_required_and_none(client: httpx.Client) -> None:
    """§8.3: "required" asks for a tool every turn; "none" never pauses."""
    first = _pause(client, "Weather in Rome?", toolChoice="required")
    again = client.post(flow_path("tools-enabled", "execute"),
                        json=resume_body(first, SHAPES["camel-role-content"],
                                         toolChoice="required")).json()
    check_paused(again)
    never = client.post(flow_path("tools-enabled", "execute"),
                        json=execute_body("Weather in Rome?", tools=TOOLS, toolChoice="none"))
    assert never.json()["status"] == "completed", never.text


def test_tool_request_errors(client: httpx.Client) -> None:
    """§8.4 limits: not enabled, more than 64 tools, an invalid name."""
    path = flow_path("tools-enabled", "execute")
    check_error(client.post(flow_path("hello-world", "execute"),
                            json=execute_body("Weather in Oslo?", tools=TOOLS)),
                400, "TOOLS_NOT_ENABLED")
    many = [{"type": "function", "function": {"name": f"t{i}", "parameters": {}}}
            for i in range(65)]
    check_error(client.post(path, json=execute_body("Weather?", tools=many)),
                400, "TOOLS_INVALID")
    bad = [{"type": "function", "function": {"name": "bad name!", "parameters": {}}}]
    check_error(client.post(path, json=execute_body("Weather?", tools=bad)),
                400, "TOOL_NAME_INVALID")


def test_resume_validation(client: httpx.Client) -> None:
    """§8.1 table: bad execution id, wrong paused step, mismatched results, size."""
    path = flow_path("tools-enabled", "execute")
    paused = _pause(client, "What is the weather in Cairo?")
    shape = SHAPES["camel-role-content"]
    unknown = resume_body({**paused, "executionId": str(uuid.uuid4())}, shape)
    response = client.post(path, json=unknown)
    if response.status_code == 404:
        check_error(response, 404, "RUN_NOT_FOUND")
    else:
        check_error(response, 400, "EXECUTION_ID_INVALID")
    check_error(client.post(path, json=resume_body({**paused, "pausedAtStep": "nope"}, shape)),
                400, "PAUSED_STEP_INVALID")
    missing = resume_body(paused, shape)
    missing["toolCallMessages"] = paused["toolCallMessages"]
    check_error(client.post(path, json=missing), 400, "TOOL_RESULTS_MISMATCH")
    stranger = resume_body(paused, lambda _: shape("call_unknown"))
    check_error(client.post(path, json=stranger), 400, "TOOL_RESULTS_MISMATCH")
    huge = resume_body(paused, lambda i: {"toolCallId": i, "output": "x" * 1_000_100})
    check_error(client.post(path, json=huge), 413, "MESSAGES_TOO_LARGE")
    # The run is still paused after refused resumes, and a good one finishes it.
    done = client.post(path, json=resume_body(paused, shape)).json()
    assert done["status"] == "completed"


# -- /step pause and resume (items 15, 26; §8.2) -----------------------------------

def _step_pause(client: httpx.Client, message: str) -> dict[str, Any]:
    reply = read_stream(client, "POST", flow_path("tools-enabled", "step"),
                        step_body(message, tools=TOOLS))
    assert reply.response.status_code == 200, reply.raw
    assert reply.types[0] == "run_started"
    assert reply.types[-1] == "step_paused_for_tool_calls", reply.types
    assert "step_completed" not in reply.types
    paused = reply.events[-1]
    assert paused["stepId"] == "weather" and paused["stepIndex"] == 0
    assert paused["iterationsUsed"] == 1
    return paused


@pytest.mark.parametrize("shape", list(SHAPES))
def test_step_pauses_for_tools_and_resumes(client: httpx.Client, shape: str) -> None:
    paused = _step_pause(client, "What is the weather in Tokyo?")
    results = [SHAPES[shape](c["id"]) for c in paused["toolCalls"]]
    body = step_body(None, step_index=paused["stepIndex"], execution_id=paused["executionId"],
                     outputs=paused["accumulatedOutputs"], tools=TOOLS,
                     toolCallMessages=paused["toolCallMessages"] + results,
                     iterationsUsed=paused["iterationsUsed"])
    reply = read_stream(client, "POST", flow_path("tools-enabled", "step"), body)
    assert reply.response.status_code == 200, reply.raw
    assert "run_started" not in reply.types and "step_started" not in reply.types
    assert reply.types[-1] == "flow_completed" and reply.types.count("step_completed") == 1
    assert reply.events[-1]["result"] == reply.events[-2]["output"]


def test_step_second_tool_round_pauses_again_in_the_same_block(client: httpx.Client) -> None:
    """§8.2 step 3: a resumed block may pause again: same stepIndex, one more iteration,
    no run_started / step_started / step_completed in between."""
    paused = _step_pause(client, "What is the weather in Paris and in Tokyo?")
    results = [SHAPES["camel-role-content"](c["id"]) for c in paused["toolCalls"]]
    body = step_body(None, step_index=0, execution_id=paused["executionId"], tools=TOOLS,
                     toolCallMessages=paused["toolCallMessages"] + results,
                     iterationsUsed=paused["iterationsUsed"])
    again = read_stream(client, "POST", flow_path("tools-enabled", "step"), body)
    assert again.types == ["step_paused_for_tool_calls"], again.types
    second = again.events[-1]
    assert second["stepIndex"] == 0 and second["iterationsUsed"] == 2
    assert tool_locations(second["toolCalls"]) == ["Tokyo"]
    assert len(second["toolCallMessages"]) > len(body["toolCallMessages"])
    assert second["toolCallMessages"][0] == paused["toolCallMessages"][0]


def test_abandoned_step_pause_reruns_the_block(client: httpx.Client) -> None:
    """§8.2 step 4: the same cursor without toolCallMessages restarts block k."""
    paused = _step_pause(client, "What is the weather in Oslo?")
    body = step_body(None, step_index=0, execution_id=paused["executionId"], tools=TOOLS)
    reply = read_stream(client, "POST", flow_path("tools-enabled", "step"), body)
    assert reply.response.status_code == 200, reply.raw
    assert "run_started" not in reply.types
    assert reply.types[-1] == "step_paused_for_tool_calls"
    assert reply.events[-1]["iterationsUsed"] == 1


# -- session tags across resumes (item 27) ----------------------------------------

def test_resume_keeps_the_session_tag_of_the_fresh_call(noukai_devserver: DevServer,
                                                        client: httpx.Client) -> None:
    """§8.1 / item 27: the resume has no X-Session-Id; the run stays tagged, once."""
    session_id = str(uuid.uuid4())
    with open_client(noukai_devserver.base_url, noukai_devserver.api_key, session_id) as tagged:
        paused = tagged.post(flow_path("tools-enabled", "execute"),
                             json=execute_body("Weather in Kyoto?", tools=TOOLS)).json()
    check_paused(paused)
    done = client.post(flow_path("tools-enabled", "execute"),
                       json=resume_body(paused, SHAPES["camel-role-content"])).json()
    assert done["status"] == "completed"
    session = client.get(f"/seq/sessions/{session_id}")
    assert session.status_code == 200, session.text
    [execution] = session.json()["executions"]
    assert execution["executionId"] == paused["executionId"]
    assert execution["triggerType"] == "execute" and execution["status"] == "completed"
    assert execution["steps"][-1]["outputSnapshot"] == done["result"]


def test_server_iteration_cap_is_at_least_twenty(client: httpx.Client) -> None:
    """§8.4: the cap is ≥ 20 iterations, then 409 TOOL_ITERATION_LIMIT."""
    path = flow_path("tools-enabled", "execute")
    paused = _pause(client, "Weather in Bern?", toolChoice="required")
    for _ in range(60):
        response = client.post(path, json=resume_body(paused, SHAPES["camel-role-content"],
                                                       toolChoice="required"))
        if response.status_code != 200:
            break
        paused = response.json()
        check_paused(paused)
    check_error(response, 409, "TOOL_ITERATION_LIMIT")
    assert paused["iterationsUsed"] >= 20


LATE_TOOLS_FLOW = """message: required
blocks:
  - {id: prep, name: Prep, type: template, template: {text: "Forecast desk for Paris"}}
  - id: weather
    name: Weather
    type: llm
    model: local/echo-1
    prompt: "{{prep.text}}: {{message}}"
    tools: true
"""


@pytest.fixture(scope="module")
def late_tools(noukai_devserver_factory: Callable[..., DevServer],
               tmp_path_factory: pytest.TempPathFactory) -> DevServer:
    root = tmp_path_factory.mktemp("contract-late-tools")
    (root / "noukai.yaml").write_text(
        "orgs:\n  alpha: {credits: unlimited, capture: full, projects: {app: {}}}\n"
        "keys:\n  nk_alpha: {org: alpha}\n")
    (root / "flows" / "alpha" / "app").mkdir(parents=True)
    (root / "flows" / "alpha" / "app" / "late.yaml").write_text(LATE_TOOLS_FLOW)
    return noukai_devserver_factory(root)


def test_tool_block_after_another_block(late_tools: DevServer) -> None:
    """Items 15, 24: flow-absolute stepIndex, earlier outputs carried, places only
    from the caller's message (never from the flow's own "Paris" text)."""
    path = flow_path("late", "step", "alpha", "app")
    with open_client(late_tools.base_url, "nk_alpha") as c:
        reply = read_stream(c, "POST", path, step_body("What is the weather in Oslo?",
                                                       tools=TOOLS, run_remaining=True))
        assert reply.types[-1] == "step_paused_for_tool_calls", reply.types
        paused = reply.events[-1]
        assert paused["stepId"] == "weather" and paused["stepIndex"] == 1
        assert paused["accumulatedOutputs"] == {"prep": reply.events[
            reply.types.index("step_completed")]["output"]}
        assert tool_locations(paused["toolCalls"]) == ["Oslo"]
        results = [SHAPES["snake-output-no-role"](call["id"]) for call in paused["toolCalls"]]
        resume = step_body(None, step_index=1, execution_id=paused["executionId"],
                           outputs=paused["accumulatedOutputs"], tools=TOOLS,
                           run_remaining=True, iterationsUsed=paused["iterationsUsed"],
                           toolCallMessages=paused["toolCallMessages"] + results)
        done = read_stream(c, "POST", path, resume)
        assert done.types[-1] == "flow_completed"
        executed = c.post(flow_path("late", "execute", "alpha", "app"),
                          json=execute_body("What is the weather in Oslo?", tools=TOOLS))
    body = executed.json()
    check_paused(body)
    assert body["pausedAtStep"] == "weather" and list(body["accumulatedOutputs"]) == ["prep"]
    assert tool_locations(body["toolCalls"]) == ["Oslo"]


@pytest.mark.parametrize("text", ["", "What is the weather in Madrid?", "error: 500"])
def test_any_tool_result_text_finishes_the_block(client: httpx.Client, text: str) -> None:
    """Item 24: finish after the results, whatever they say (a place named in a tool
    result is not the caller's question)."""
    paused = _pause(client, "What is the weather in Accra?")
    body = resume_body(paused, lambda i: {"role": "tool", "toolCallId": i, "content": text})
    done = client.post(flow_path("tools-enabled", "execute"), json=body)
    assert done.status_code == 200 and done.json()["status"] == "completed", done.text


def test_resuming_a_finished_run_is_refused(client: httpx.Client) -> None:
    """§8.1: an executionId that is no longer paused: 400 EXECUTION_ID_INVALID
    (404 RUN_NOT_FOUND acceptable); the finished run is not re-run."""
    paused = _pause(client, "What is the weather in Hanoi?")
    body = resume_body(paused, SHAPES["camel-role-content"])
    path = flow_path("tools-enabled", "execute")
    assert client.post(path, json=body).json()["status"] == "completed"
    again = client.post(path, json=body)
    if again.status_code == 404:
        check_error(again, 404, "RUN_NOT_FOUND")
    else:
        check_error(again, 400, "EXECUTION_ID_INVALID")
