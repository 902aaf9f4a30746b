"""Contract checks, part 6: the `messages` fresh-call mode (§12, item 28) and the
input spellings the server must accept inside conversations (§8.3, Q2).

Helpers for pauses and resumes come from `test_contract_tools` (imported by
name; conftest puts this directory on `sys.path`).
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

sys.path.insert(0, str(Path(__file__).parent))

from test_contract_sse_parser import check_error, execute_body, flow_path, open_client
from test_contract_tools import SHAPES, TOOLS, check_paused, resume_body, tool_locations

from noukai_devserver.pytest_plugin import DevServer


@pytest.fixture
def client(noukai_devserver: DevServer) -> Iterator[httpx.Client]:
    with open_client(noukai_devserver.base_url, noukai_devserver.api_key) as c:
        yield c


def test_messages_mode_uses_only_the_last_user_turn(client: httpx.Client) -> None:
    conversation = [
        {"role": "user", "content": "What is the weather in Paris?"},
        {"role": "assistant", "content": "It is sunny in Paris."},
        {"role": "user", "content": "And what is the weather in Oslo?"},
    ]
    response = client.post(flow_path("agent-tools", "execute"),
                           json=execute_body(None, messages=conversation, tools=TOOLS))
    paused = response.json()
    check_paused(paused)
    assert tool_locations(paused["toolCalls"]) == ["Oslo"]
    done = client.post(flow_path("agent-tools", "execute"),
                       json=resume_body(paused, SHAPES["snake-role-content"])).json()
    assert done["status"] == "completed" and isinstance(done["result"]["message"], str)


def test_messages_without_tools_completes(client: httpx.Client) -> None:
    body = execute_body(None, messages=[{"role": "user", "content": "Hello agent"}])
    done = client.post(flow_path("agent-tools", "execute"), json=body).json()
    assert done["status"] == "completed" and isinstance(done["result"]["message"], str)


@pytest.mark.parametrize("turn", [
    {"role": "system", "content": "x"}, {"role": "developer", "content": "x"},
    {"role": "function", "content": "x"}, {"content": "no role"}, {"role": 3, "content": "x"},
])
def test_messages_role_is_checked(client: httpx.Client, turn: dict[str, Any]) -> None:
    body = execute_body(None, messages=[turn, {"role": "user", "content": "hi"}])
    check_error(client.post(flow_path("agent-tools", "execute"), json=body),
                400, "MESSAGES_ROLE_INVALID")


def test_messages_over_one_megabyte_are_413(client: httpx.Client) -> None:
    body = execute_body(None, messages=[{"role": "user", "content": "y" * 1_000_100}])
    check_error(client.post(flow_path("agent-tools", "execute"), json=body),
                413, "MESSAGES_TOO_LARGE")


def test_plain_message_on_a_chat_flow_and_empty_messages(client: httpx.Client) -> None:
    """§12: a plain `message` is a one-turn conversation; `messages: []` is absent."""
    for body in (execute_body("Hello agent"), execute_body("Hello agent", messages=[])):
        response = client.post(flow_path("agent-tools", "execute"), json=body)
        assert response.status_code == 200, response.text
        assert isinstance(response.json()["result"]["message"], str)


def test_paused_conversation_starts_with_the_supplied_messages(client: httpx.Client) -> None:
    """§12: toolCallMessages starts with the caller's conversation."""
    conversation = [{"role": "user", "content": "Hi"},
                    {"role": "assistant", "content": "Hello! How can I help?"},
                    {"role": "user", "content": "What is the weather in Lisbon?"}]
    paused = client.post(flow_path("agent-tools", "execute"),
                         json=execute_body(None, messages=conversation, tools=TOOLS)).json()
    check_paused(paused)
    prefix = paused["toolCallMessages"][: len(conversation)]
    assert [(m["role"], m["content"]) for m in prefix] == \
        [(m["role"], m["content"]) for m in conversation]


def test_snake_case_tool_turns_are_accepted(client: httpx.Client) -> None:
    """§8.3 / Q2: assistant `tool_calls` and tool `tool_call_id` (as @noukai/agent
    0.1.0 sends them) are accepted in a resume and in a `messages` history."""
    paused = client.post(flow_path("agent-tools", "execute"), json=execute_body(
        None, messages=[{"role": "user", "content": "Weather in Quito?"}], tools=TOOLS)).json()
    check_paused(paused)
    body = resume_body(paused, SHAPES["snake-role-content"])
    snake: list[dict[str, Any]] = []
    for message in body["toolCallMessages"]:
        if "toolCalls" in message:
            message = {k: v for k, v in message.items() if k != "toolCalls"}
            message["tool_calls"] = paused["toolCalls"]
        snake.append(message)
    body["toolCallMessages"] = snake
    done = client.post(flow_path("agent-tools", "execute"), json=body)
    assert done.status_code == 200 and done.json()["status"] == "completed", done.text
    history = [*snake, {"role": "assistant", "content": "It is sunny in Quito."},
               {"role": "user", "content": "And what is the weather in Oslo?"}]
    again = client.post(flow_path("agent-tools", "execute"),
                        json=execute_body(None, messages=history, tools=TOOLS))
    assert again.status_code == 200, again.text
    check_paused(again.json())
    assert tool_locations(again.json()["toolCalls"]) == ["Oslo"]


def test_tools_on_step_for_a_flow_without_tools_is_a_json_error(client: httpx.Client) -> None:
    """§5.2 / §8.4: a pre-stream refusal on /step is a JSON error, not a stream."""
    body = {"stepIndex": 0, "message": "Weather in Oslo?", "parameters": {},
            "accumulatedOutputs": {}, "inputOverrides": {}, "runRemaining": False,
            "iterationsUsed": 0, "trace": False, "tools": TOOLS}
    check_error(client.post(flow_path("hello-world", "step"), json=body),
                400, "TOOLS_NOT_ENABLED")


@pytest.mark.parametrize("content,status", [
    ("y" * 990_000, 200), ("\u00e9" * 450_000, 200), ("\u6771" * 300_000, 200),
    ("\u00e9" * 500_010, 413),
])
def test_size_cap_counts_utf8_json_bytes(client: httpx.Client, content: str,
                                         status: int) -> None:
    """§8.4: the 1,000,000-byte cap is on UTF-8 JSON, so 900 kB of non-ASCII text
    (which \\u-escaping would inflate past the cap) is accepted."""
    body = execute_body(None, messages=[{"role": "user", "content": content}])
    response = client.post(flow_path("agent-tools", "execute"), json=body)
    if status == 413:
        check_error(response, 413, "MESSAGES_TOO_LARGE")
    else:
        assert response.status_code == 200, response.text[:300]
