"""What the contract checks assert about a recorded request, written once.

Headers (§1.2), body style (§1.4), a tool resume body (§8.1) and the `/step`
bodies of a run (§5.1); imported by name (`conftest.py` puts this directory
on `sys.path`).
"""

from __future__ import annotations

import re
from typing import Any

from core_contract_fake import EXEC_ID, KEY, PAUSED_MESSAGES, FakeNoukai, Recorded

# §1.2: informational, but in the Python SDK's documented shape.
USER_AGENT = r"noukai-python/\S+ \(httpx/\S+; python/\d+\.\d+\.\d+; [^)]+\)"
SESSION_HEADER_ALLOWED = re.compile(r"/(execute|step|jobs)$")


FLOW = "/api/v1/seq/acme/app/hello"


def check_headers(request: Recorded, session_id: str | None = None) -> None:
    """§1.2: auth, pinned version, Accept everywhere, Content-Type iff a body."""
    headers = request.headers
    assert headers["authorization"] == f"Bearer {KEY}"
    assert headers["x-noukai-api-version"] == "2026-05-31"
    assert headers["accept"] == "application/json"
    if request.method == "POST":
        assert headers["content-type"] == "application/json"
    else:
        assert not request.body and "content-type" not in headers
    assert "x-request-id" not in headers and "cookie" not in headers
    assert re.fullmatch(USER_AGENT, headers["user-agent"]), headers["user-agent"]
    assert headers.get("x-session-id") == session_id, (request.path, headers)
    if session_id is not None:
        assert SESSION_HEADER_ALLOWED.search(request.path), request.path


def check_body_style(request: Recorded) -> dict[str, Any]:
    """§1.4: camelCase top-level keys, nulls omitted (Python), defaults present."""
    body = request.json
    assert all("_" not in key for key in body), body
    assert all(v is not None for v in body.values()), body
    assert isinstance(body["parameters"], dict)
    assert isinstance(body["iterationsUsed"], int) and not isinstance(body["iterationsUsed"], bool)
    assert isinstance(body["accumulatedOutputs"], dict) and isinstance(body["trace"], bool)
    return body


def tool_results(calls: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{"role": "tool", "toolCallId": c["id"], "content": "Sunny"} for c in calls]


def check_resume(request: Recorded, results_for: list[dict[str, Any]]) -> dict[str, Any]:
    body = check_body_style(request)
    assert body["executionId"] == EXEC_ID and body["pausedAtStep"] == "weather"
    assert body["iterationsUsed"] == 1 and body["accumulatedOutputs"] == {"prep": {"x": 1}}
    messages = body["toolCallMessages"]
    assert messages[: len(PAUSED_MESSAGES)] == PAUSED_MESSAGES
    added = messages[len(PAUSED_MESSAGES) :]
    assert [m.get("toolCallId", m.get("tool_call_id")) for m in added] == [
        c["id"] for c in results_for
    ]
    assert "message" not in body and "messages" not in body
    return body


def step_bodies(fake: FakeNoukai, session_id: str | None = None) -> list[dict[str, Any]]:
    for request in fake.requests:
        check_headers(request, session_id)
        assert request.path == f"{FLOW}/step"
    return [check_body_style(r) for r in fake.requests]
