"""Capture a session from live dev-server calls, then replay it with no live call.

The replay runs against a real socket server that serves only
`GET /seq/sessions/{id}` (the body recorded by the dev server) and fails
every other request.
"""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
from misbehaving_server import Conn, ScriptedServer, SeenRequest

import noukai_core as nk


def serve_only_session(server: Any, session_id: str, body: bytes) -> None:
    def responder(request: SeenRequest, conn: Conn) -> None:
        if request.method == "GET" and request.path == f"/seq/sessions/{session_id}":
            conn.respond(200, json.loads(body))
        else:
            conn.respond(500, {"detail": {"code": "NO_LIVE_CALLS", "message": request.path}})

    server.responders = responder


async def capture(client: nk.AsyncNoukai) -> tuple[str, dict[str, Any]]:
    async with nk.trace_scope(client=client) as scope:
        assert scope.mode is nk.ScopeMode.CAPTURE
        hello = await client.flow("hello-world").execute(message="Hello replay")
        events = [e async for e in client.flow("two-step").events(message="a fox")]
        steps = [s async for s in client.flow("two-step").steps(message="a cat")]
        failed = await client.flow("always-fails").execute(message="boom")
        job = await client.flow("hello-world").execute_async(message="queued")
        await job.wait(timeout=30, poll_interval=0.05)
    assert hello.session_id == failed.session_id == job.session_id == scope.session_id
    return scope.session_id, {"hello": hello, "events": events, "steps": steps, "failed": failed}


def comparable(events: list[Any]) -> list[tuple[str, Any, Any]]:
    return [
        (e.type, getattr(e, "step_id", None), getattr(e, "output", getattr(e, "result", None)))
        for e in events
        if e.type
        in ("run_started", "step_started", "step_completed", "step_error", "flow_completed")
    ]


async def test_capture_then_replay_round_trip(
    noukai_devserver: Any, scripted_server: ScriptedServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    live = nk.AsyncNoukai(
        api_key=noukai_devserver.api_key,
        base_url=noukai_devserver.base_url,
        org=noukai_devserver.org,
        project=noukai_devserver.project,
    )
    async with live:
        session_id, recorded = await capture(live)
    headers = {"Authorization": f"Bearer {noukai_devserver.api_key}"}
    async with httpx.AsyncClient() as raw:
        response = await raw.get(
            f"{noukai_devserver.base_url}/seq/sessions/{session_id}", headers=headers
        )
    assert response.status_code == 200
    serve_only_session(scripted_server, session_id, response.content)

    monkeypatch.setenv("NOUKAI_REPLAY_ENABLED", "true")
    replayer = nk.AsyncNoukai(
        api_key="nk_any", base_url=scripted_server.base_url, org="x", project="y"
    )
    async with replayer, nk.trace_scope(client=replayer, replay_session_id=session_id) as scope:
        assert scope.mode is nk.ScopeMode.REPLAY and scope.session_id == session_id
        hello = await replayer.flow("hello-world").execute(message="different input")
        events = [e async for e in replayer.flow("two-step").events(message="ignored")]
        steps = [s async for s in replayer.flow("two-step").steps(message="ignored too")]
        failed = await replayer.flow("always-fails").execute(message="x")

    assert hello.result == recorded["hello"].result and hello.status == "completed"
    assert hello.execution_id == recorded["hello"].execution_id
    assert comparable(events) == comparable(recorded["events"])
    assert [(s.step_id, s.step_index, s.output) for s in steps] == [
        (s.step_id, s.step_index, s.output) for s in recorded["steps"]
    ]
    assert failed.status == "failed" and failed.error is not None
    assert failed.error == recorded["failed"].error  # code, message and failed step id
    assert failed.error.code and failed.error.message and failed.error.step_id
    assert failed.execution_id == recorded["failed"].execution_id
    paths = [r.path for r in scripted_server.requests]
    assert paths == [f"/seq/sessions/{session_id}"]


def test_sync_capture_tags_every_call(noukai_devserver: Any) -> None:
    with nk.Noukai(api_key=noukai_devserver.api_key, base_url=noukai_devserver.base_url) as client:
        flow = client.flow("local/demo/two-step")
        with nk.trace_scope_sync(client=client) as scope:
            result = flow.execute(message="one")
            steps = list(flow.steps(message="two"))
    assert result.session_id == scope.session_id and len(steps) == 2
    response = httpx.get(
        f"{noukai_devserver.base_url}/seq/sessions/{scope.session_id}",
        headers={"Authorization": f"Bearer {noukai_devserver.api_key}"},
    )
    executions = response.json()["executions"]
    assert [(e["slug"], e["triggerType"]) for e in executions] == [
        ("two-step", "execute"),
        ("two-step", "step"),
    ]


async def test_replay_from_the_dev_server_itself(
    noukai_devserver: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with nk.AsyncNoukai(
        api_key=noukai_devserver.api_key, base_url=noukai_devserver.base_url
    ) as client:
        async with nk.trace_scope(client=client) as scope:
            live = await client.flow("local/demo/hello-world").execute(message="hi")
        monkeypatch.setenv("NOUKAI_REPLAY_ENABLED", "1")
        async with nk.trace_scope(replay_session_id=scope.session_id):  # fetched lazily
            replayed = await client.flow("local/demo/hello-world").execute(message="hi")
        with pytest.raises(nk.ReplaySessionNotFoundError):
            async with nk.trace_scope(
                client=client, replay_session_id="00000000-0000-4000-8000-000000000000"
            ):
                pass
    assert replayed.result == live.result and replayed.session_id == scope.session_id
