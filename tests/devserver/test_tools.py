"""Tool-call pauses and resumes on /execute and /step (contract §8, §12, §14.2 items 24-28)."""

from __future__ import annotations

import asyncio
import json
import uuid
from typing import Any

import httpx
import pytest
from devserver_helpers import Api, assert_error, events

WEATHER_TOOL = {"type": "function", "function": {
    "name": "get_weather", "description": "Get the current weather for a location.",
    "parameters": {"type": "object", "properties": {"location": {"type": "string"}},
                   "required": ["location"]}}}


def _fresh(message: str, **extra: Any) -> dict[str, Any]:
    return {"message": message, "parameters": {}, "tools": [WEATHER_TOOL],
            "iterationsUsed": 0, "accumulatedOutputs": {}, "trace": False, **extra}


def _location(call: dict[str, Any]) -> str:
    assert isinstance(call["function"]["arguments"], str)
    return str(json.loads(call["function"]["arguments"])["location"])


RESULT_SHAPES = [
    lambda call_id, text: {"role": "tool", "toolCallId": call_id, "content": text},
    lambda call_id, text: {"role": "tool", "tool_call_id": call_id, "content": text},
    lambda call_id, text: {"tool_call_id": call_id, "output": text},
    lambda call_id, text: {"toolCallId": call_id, "output": text},
]


def _resume(paused: dict[str, Any], results: list[dict[str, Any]]) -> dict[str, Any]:
    return {"executionId": paused["executionId"], "pausedAtStep": paused["pausedAtStep"],
            "iterationsUsed": paused["iterationsUsed"],
            "toolCallMessages": paused["toolCallMessages"] + results,
            "accumulatedOutputs": paused["accumulatedOutputs"], "tools": [WEATHER_TOOL],
            "parameters": {}, "message": None}


def test_weather_question_pauses_with_one_call(api: Api) -> None:
    body = api.execute("tools-enabled", _fresh("What is the weather in Tokyo?")).json()
    assert body["status"] == "tool_calls_required"
    assert body["pausedAtStep"] == "weather"
    assert body["iterationsUsed"] == 1
    assert body["accumulatedOutputs"] == {}
    assert [_location(c) for c in body["toolCalls"]] == ["Tokyo"]
    call = body["toolCalls"][0]
    assert call["type"] == "function" and call["function"]["name"] == "get_weather"
    assert call["id"].startswith("call_")
    assert body["toolCallMessages"][0] == {"role": "user",
                                           "content": "What is the weather in Tokyo?"}
    assert body["toolCallMessages"][-1]["toolCalls"] == body["toolCalls"]
    assert all(m["role"] != "system" for m in body["toolCallMessages"])


@pytest.mark.parametrize("shape", range(4))
def test_resume_accepts_every_tool_result_shape(api: Api, shape: int) -> None:
    paused = api.execute("tools-enabled", _fresh("What is the weather in Tokyo?")).json()
    result = RESULT_SHAPES[shape](paused["toolCalls"][0]["id"], "blue skies 7")
    done = api.execute("tools-enabled", _resume(paused, [result])).json()
    assert done["status"] == "completed"
    assert done["executionId"] == paused["executionId"]
    assert done["result"] == {"response": "Weather report: Tokyo: blue skies 7."}


def test_several_cities_take_one_round_each_matched_by_id(api: Api) -> None:
    message = "Weather for these cities: Tokyo, Paris, London."
    paused = api.execute("tools-enabled", _fresh(message)).json()
    seen = []
    texts = {"Tokyo": "rainy", "Paris": "foggy", "London": "sunny"}
    rounds = 0
    while paused["status"] == "tool_calls_required":
        rounds += 1
        assert len(paused["toolCalls"]) == 1
        call = paused["toolCalls"][0]
        seen.append(_location(call))
        result = {"role": "tool", "toolCallId": call["id"], "content": texts[seen[-1]]}
        paused = api.execute("tools-enabled", _resume(paused, [result])).json()
        assert rounds <= 3
    assert seen == ["Tokyo", "Paris", "London"]
    assert paused["result"] == {
        "response": "Weather report: Tokyo: rainy; Paris: foggy; London: sunny."}


def test_tool_choice_none_never_pauses(api: Api) -> None:
    body = api.execute("tools-enabled", _fresh("Weather in Tokyo?", toolChoice="none")).json()
    assert body["status"] == "completed"


def test_tool_choice_required_calls_a_tool_every_turn_up_to_the_limit(api: Api) -> None:
    paused = api.execute("tools-enabled", _fresh("Weather in Oslo?",
                                                 toolChoice="required")).json()
    for _ in range(40):
        assert paused["status"] == "tool_calls_required"
        result = {"role": "tool", "toolCallId": paused["toolCalls"][0]["id"], "content": "ok"}
        body = {**_resume(paused, [result]), "toolChoice": "required"}
        response = api.execute("tools-enabled", body)
        if response.status_code != 200:
            assert_error(response, 409, "TOOL_ITERATION_LIMIT")
            assert paused["iterationsUsed"] >= 20
            return
        paused = response.json()
    pytest.fail("the iteration limit never triggered")


def test_named_tool_choice_forces_that_tool(api: Api) -> None:
    time_tool = {"type": "function", "function": {"name": "get_time", "parameters": {}}}
    body = api.execute("tools-enabled", {
        "message": "Hello there", "tools": [WEATHER_TOOL, time_tool],
        "toolChoice": {"type": "function", "function": {"name": "get_time"}}}).json()
    assert body["status"] == "tool_calls_required"
    assert body["toolCalls"][0]["function"]["name"] == "get_time"


def test_non_weather_question_answers_without_tools(api: Api) -> None:
    body = api.execute("tools-enabled", _fresh("Tell me a joke")).json()
    assert body == {**body, "status": "completed",
                    "result": {"response": "Echo: Tell me a joke"}}


def test_resume_errors(api: Api) -> None:
    paused = api.execute("tools-enabled", _fresh("Weather in Tokyo?")).json()
    call_id = paused["toolCalls"][0]["id"]
    good = [{"role": "tool", "toolCallId": call_id, "content": "x"}]
    assert_error(api.execute("tools-enabled", {**_resume(paused, good), "pausedAtStep": "no"}),
                 400, "PAUSED_STEP_INVALID")
    assert_error(api.execute("tools-enabled", {**_resume(paused, good), "executionId": "zz"}),
                 400, "EXECUTION_ID_INVALID")
    assert_error(api.execute("tools-enabled", _resume(paused, [])), 400,
                 "TOOL_RESULTS_MISMATCH")
    wrong = [{"role": "tool", "toolCallId": "call_other", "content": "x"}]
    assert_error(api.execute("tools-enabled", _resume(paused, wrong)), 400,
                 "TOOL_RESULTS_MISMATCH")
    huge = [{"role": "tool", "toolCallId": call_id, "content": "x" * 1_000_001}]
    assert_error(api.execute("tools-enabled", _resume(paused, huge)), 413,
                 "MESSAGES_TOO_LARGE")
    # After all the rejected attempts the pause is intact and resumable.
    assert api.execute("tools-enabled", _resume(paused, good)).json()["status"] == "completed"


def test_tool_configuration_errors(api: Api) -> None:
    assert_error(api.execute("hello-world", _fresh("Weather in Tokyo?")), 400,
                 "TOOLS_NOT_ENABLED")
    bad_name = {"type": "function", "function": {"name": "get weather!"}}
    assert_error(api.execute("tools-enabled", {"message": "x", "tools": [bad_name]}), 400,
                 "TOOL_NAME_INVALID")
    many = [{"type": "function", "function": {"name": f"t{i}"}} for i in range(65)]
    assert_error(api.execute("tools-enabled", {"message": "x", "tools": many}), 400,
                 "TOOLS_INVALID")
    response = api.http.post(api.flow("tools-enabled", "jobs"), json=_fresh("Weather?"))
    assert_error(response, 400, "TOOLS_REQUIRE_SYNC_EXECUTE")


def test_step_stream_pauses_for_tools_and_resumes_on_the_stream(api: Api) -> None:
    sid = str(uuid.uuid4())
    _r, frames = api.step("tools-enabled", {"message": "Weather in Tokyo and Paris?",
                                            "stepIndex": 0, "tools": [WEATHER_TOOL]},
                          headers={"X-Session-Id": sid})
    pause = events(frames)[-1]
    assert pause["eventType"] == "step_paused_for_tool_calls"
    assert pause["runId"] == pause["executionId"]
    assert pause["stepId"] == "weather" and pause["stepIndex"] == 0
    assert pause["iterationsUsed"] == 1 and pause["accumulatedOutputs"] == {}
    execution = pause["executionId"]
    for expected in ("Paris", None):
        result = {"toolCallId": pause["toolCalls"][0]["id"], "output": "warm"}
        _r, frames = api.step("tools-enabled", {
            "executionId": execution, "stepIndex": 0, "accumulatedOutputs": {},
            "toolCallMessages": pause["toolCallMessages"] + [result],
            "iterationsUsed": pause["iterationsUsed"], "tools": [WEATHER_TOOL]})
        types = [e["eventType"] for e in events(frames)]
        assert "run_started" not in types and "step_started" not in types
        pause = events(frames)[-1]
        if expected:
            assert [_location(c) for c in pause["toolCalls"]] == [expected]
    assert types[-2:] == ["step_completed", "flow_completed"]
    assert pause["result"] == {"response": "Weather report: Tokyo: warm; Paris: warm."}
    # The resumes carried no X-Session-Id: the run is still the session's one step run.
    [tagged] = api.get(f"/seq/sessions/{sid}").json()["executions"]
    assert (tagged["executionId"], tagged["triggerType"]) == (execution, "step")
    assert tagged["status"] == "completed"
    assert tagged["steps"][-1]["outputSnapshot"] == pause["result"]


def test_messages_mode_uses_only_the_last_user_turn_for_places(api: Api) -> None:
    messages = [
        {"role": "user", "content": "I used to live in Paris."},
        {"role": "assistant", "content": "Nice."},
        {"role": "user", "content": "What is the weather in Tokyo?"},
    ]
    paused = api.execute("agent-tools", {"messages": messages, "tools": [WEATHER_TOOL]}).json()
    assert [_location(c) for c in paused["toolCalls"]] == ["Tokyo"]
    assert paused["toolCallMessages"][:2] == messages[:2]
    result = {"role": "tool", "tool_call_id": paused["toolCalls"][0]["id"], "content": "mild"}
    done = api.execute("agent-tools", _resume(paused, [result])).json()
    assert done["result"] == {"message": "Weather report: Tokyo: mild."}


def test_messages_mode_errors(api: Api) -> None:
    for role in ("system", "function", "developer", 3):
        response = api.execute("agent-tools", {"messages": [{"role": role, "content": "x"}]})
        assert_error(response, 400, "MESSAGES_ROLE_INVALID")
    huge = [{"role": "user", "content": "x" * 1_000_001}]
    assert_error(api.execute("agent-tools", {"messages": huge}), 413, "MESSAGES_TOO_LARGE")


def test_plain_message_on_a_chat_flow_is_one_turn(api: Api) -> None:
    body = api.execute("agent-tools", {"message": "hi", "messages": []}).json()
    assert body["result"] == {"message": "Echo: hi"}


def test_odd_resume_bodies_never_give_a_500(api: Api) -> None:
    paused = api.execute("tools-enabled", _fresh("Weather in Tokyo?")).json()
    call_id = paused["toolCalls"][0]["id"]
    odd_tails: list[list[Any]] = [
        [{"role": "assistant", "toolCalls": "nope"}],
        [{"role": "assistant", "toolCalls": [1, 2]}],
        [{"role": "assistant", "toolCalls": [{"id": call_id, "function": {"arguments": "[]"}}]},
         {"role": "tool", "toolCallId": call_id, "content": {"nested": [1]}}],
        [{"role": "tool", "toolCallId": None, "content": None}],
        [{"toolCallId": call_id}],
        [{"role": "tool", "toolCallId": call_id, "output": ["a", 1]}],
        [None], ["text"], [{"role": None}],
    ]
    for tail in odd_tails:
        body = {**_resume(paused, []), "toolCallMessages": paused["toolCallMessages"] + tail}
        for path in ("execute", "step"):
            extra = {"stepIndex": 0} if path == "step" else {}
            response = api.http.post(api.flow("tools-enabled", path), json={**body, **extra})
            assert response.status_code < 500, (tail, response.text)
    history = [{"role": "assistant", "content": None,
                "toolCalls": [{"id": "x", "function": {"arguments": "[1]"}}]},
               {"role": "tool", "toolCallId": "x", "content": "r"},
               {"role": "user", "content": "Weather in Oslo?"}]
    response = api.execute("agent-tools", {"messages": history, "tools": [WEATHER_TOOL]})
    assert response.status_code == 200


PLACE_CASES = [
    ("What is the weather in Tokyo?", ["Tokyo"]),
    ("Weather for these cities: Tokyo, Paris, London.", ["Tokyo", "Paris", "London"]),
    ("How is the weather in New York and Los Angeles?", ["New York", "Los Angeles"]),
    ("weather in Paris, Rome and Berlin", ["Paris", "Rome", "Berlin"]),
    ("Is it sunny in Lisbon today?", ["Lisbon"]),
    ("I am in a hurry: what is the weather in Oslo?", ["Oslo"]),
    ("Weather in Tokyo. Also in Paris, please.", ["Tokyo", "Paris"]),
    ("What's the weather like?", []),
]


@pytest.mark.parametrize(("message", "places"), PLACE_CASES)
def test_one_round_per_place_named_by_the_caller(api: Api, message: str,
                                                 places: list[str]) -> None:
    body = api.execute("tools-enabled", _fresh(message)).json()
    asked = []
    while body["status"] == "tool_calls_required":
        assert len(body["toolCalls"]) == 1 and len(asked) < 10
        asked.append(_location(body["toolCalls"][0]))
        result = {"role": "tool", "toolCallId": body["toolCalls"][0]["id"], "content": "r"}
        body = api.execute("tools-enabled", _resume(body, [result])).json()
    assert asked == places
    assert body["status"] == "completed"


async def test_two_concurrent_resumes_of_one_pause_run_the_block_once(api: Api) -> None:
    paused = api.execute("tools-enabled", _fresh("Weather in Tokyo?")).json()
    body = _resume(paused, [{"role": "tool", "toolCallId": paused["toolCalls"][0]["id"],
                             "content": "x"}])
    async with httpx.AsyncClient(base_url=api.server.base_url, headers=dict(api.http.headers),
                                 timeout=30) as client:
        responses = await asyncio.gather(*[
            client.post(api.flow("tools-enabled", "execute"), json=body) for _ in range(4)])
    statuses = sorted(r.status_code for r in responses)
    assert statuses == [200, 400, 400, 400]
    for response in responses:
        if response.status_code == 400:
            assert_error(response, 400, "EXECUTION_ID_INVALID")
    attempts = api.get(f"/seq/local/demo/tools-enabled/runs/{paused['executionId']}"
                       "/steps/weather/trace", params={"attempt": "all"}).json()["attempts"]
    assert [a["status"] for a in attempts] == ["completed"]
