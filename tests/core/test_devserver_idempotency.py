"""A repeated `Idempotency-Key` runs the flow once (issue 5 item 9), against the dev server."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import httpx
import pytest
from misbehaving_server import Conn, ScriptedServer, SeenRequest

import noukai_core as nk


def session_executions(server: Any, session_id: str) -> list[dict[str, Any]]:
    response = httpx.get(
        f"{server.base_url}/seq/sessions/{session_id}",
        headers={"Authorization": f"Bearer {server.api_key}"},
    )
    assert response.status_code == 200
    return response.json()["executions"]  # type: ignore[no-any-return]


def test_a_repeated_key_runs_the_flow_once(noukai_devserver: Any) -> None:
    key = f"test-{uuid.uuid4()}"
    with nk.Noukai(api_key=noukai_devserver.api_key, base_url=noukai_devserver.base_url) as client:
        flow = client.flow("local/demo/hello-world")
        with nk.trace_scope_sync() as scope:
            first = flow.execute(message="once", idempotency_key=key)
            again = flow.execute(message="once", idempotency_key=key)
            other = flow.execute(message="once")
    assert first.execution_id == again.execution_id != other.execution_id
    assert first.result == again.result
    assert len(session_executions(noukai_devserver, scope.session_id)) == 2


async def test_a_repeat_while_the_first_runs_is_refused(noukai_devserver: Any) -> None:
    key = f"test-{uuid.uuid4()}"
    headers = {"Authorization": f"Bearer {noukai_devserver.api_key}"}
    async with (
        nk.AsyncNoukai(
            api_key=noukai_devserver.api_key, base_url=noukai_devserver.base_url
        ) as client,
        httpx.AsyncClient(headers=headers) as raw,
    ):
        flow = client.flow("local/demo/slow-steps")
        async with nk.trace_scope() as scope:
            first = asyncio.ensure_future(flow.execute(message="slow", idempotency_key=key))
            # Wait (under a deadline) until the server has started the first run.
            url = f"{noukai_devserver.base_url}/seq/sessions/{scope.session_id}"
            deadline = asyncio.get_running_loop().time() + 10
            while (await raw.get(url)).status_code != 200:
                assert asyncio.get_running_loop().time() < deadline, "first run never started"
                await asyncio.sleep(0.01)
            with (
                pytest.raises(nk.FlowExecutionError) as info,
                pytest.warns(UserWarning, match="concurrent calls"),  # two calls in one scope
            ):
                await flow.execute(message="slow", idempotency_key=key)
            assert (await first).status == "completed"
    assert info.value.status_code == 409 and info.value.code == "IDEMPOTENCY_IN_PROGRESS"


def test_a_lost_response_can_be_retried_safely_with_its_key(
    noukai_devserver: Any, scripted_server: ScriptedServer
) -> None:
    """A proxy forwards the POST to the dev server, then drops the answer on the floor."""

    def forward_then_drop(request: SeenRequest, conn: Conn) -> None:
        headers = {k: v for k, v in request.headers.items() if k not in ("host", "content-length")}
        httpx.post(noukai_devserver.base_url + request.path, content=request.body, headers=headers)
        conn.reset()

    scripted_server.responders = forward_then_drop
    lossy = nk.Noukai(api_key=noukai_devserver.api_key, base_url=scripted_server.base_url)
    direct = nk.Noukai(api_key=noukai_devserver.api_key, base_url=noukai_devserver.base_url)
    with lossy, direct, nk.trace_scope_sync() as scope:
        with pytest.raises(nk.APIConnectionError) as lost:
            lossy.flow("local/demo/hello-world").execute(message="pay once")
        assert len(scripted_server.posts()) == 1  # never re-sent after the request went out
        key = lost.value.idempotency_key
        assert key
        result = direct.flow("local/demo/hello-world").execute(
            message="pay once", idempotency_key=key
        )
    assert result.status == "completed"
    assert len(session_executions(noukai_devserver, scope.session_id)) == 1
