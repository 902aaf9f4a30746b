"""NoukaiTraceMiddleware against the real dev server: sessions as Noukai records them."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from fastapi import Depends, FastAPI
from fastapi.responses import StreamingResponse

from noukai_core import Noukai
from noukai_fastapi import NoukaiDep, NoukaiTraceMiddleware, noukai_lifespan


def fetch_session(devserver: Any, session_id: str) -> dict[str, Any]:
    response = httpx.get(f"{devserver.base_url}/seq/sessions/{session_id}",
                         headers={"Authorization": f"Bearer {devserver.api_key}"})
    assert response.status_code == 200, response.text
    return dict(response.json())


def build_app(devserver: Any) -> FastAPI:
    options = dict(api_key=devserver.api_key, base_url=devserver.base_url,
                   org=devserver.org, project=devserver.project)
    sync_client = Noukai(**options)
    app = FastAPI(lifespan=noukai_lifespan(**options))
    app.add_middleware(NoukaiTraceMiddleware)

    @app.post("/greet")
    async def greet(message: str, noukai: NoukaiDep) -> dict[str, Any]:
        result = await noukai.flow("hello-world").execute(message=message)
        return {"execution_id": result.execution_id, "result": result.result}

    @app.post("/greet-sync")
    def greet_sync(message: str) -> dict[str, Any]:
        result = sync_client.flow("hello-world").execute(message=message)
        return {"execution_id": result.execution_id, "result": result.result}

    async def greeted_by_dependency(message: str, noukai: NoukaiDep) -> str:
        result = await noukai.flow("hello-world").execute(message=f"dependency {message}")
        return str(result.execution_id)

    @app.post("/greet-dependency")
    async def greet_dependency(
        message: str, noukai: NoukaiDep, first: str = Depends(greeted_by_dependency)
    ) -> list[str]:
        result = await noukai.flow("two-step").execute(message=message)
        return [first, str(result.execution_id)]

    @app.post("/greet-streamed")
    async def greet_streamed(message: str, noukai: NoukaiDep) -> StreamingResponse:
        async def body() -> Any:
            yield b"["
            result = await noukai.flow("hello-world").execute(message=message)
            yield f'"{result.execution_id}"]'.encode()

        return StreamingResponse(body(), media_type="application/json")

    return app


@pytest.fixture
def replay_on(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("NOUKAI_REPLAY_ENABLED", "true")
    yield


async def test_fifty_concurrent_requests_each_record_exactly_their_own_execution(
    serve_app: Any, noukai_devserver: Any
) -> None:
    # async endpoint, sync `def` endpoint with a sync client, a dependency plus
    # the endpoint, and a streaming generator, interleaved
    paths = ["/greet", "/greet-sync", "/greet-dependency", "/greet-streamed"]
    with serve_app(build_app(noukai_devserver)) as base:
        async with httpx.AsyncClient(base_url=base, timeout=60) as http:
            responses = await asyncio.gather(*(
                http.post(paths[n % 4], params={"message": f"hello {n}"}) for n in range(50)))
    sessions = [r.headers["x-noukai-session"] for r in responses]
    assert len(set(sessions)) == 50
    for n, response in enumerate(responses):
        assert response.status_code == 200, response.text
        body = response.json()
        own = [body["execution_id"]] if isinstance(body, dict) else body
        recorded = fetch_session(noukai_devserver, sessions[n])
        assert [e["executionId"] for e in recorded["executions"]] == own


@pytest.mark.usefixtures("replay_on")
def test_capture_then_replay_with_a_sync_client(
    serve_app: Any, noukai_devserver: Any
) -> None:
    with serve_app(build_app(noukai_devserver)) as base:
        captured = httpx.post(f"{base}/greet-sync", params={"message": "capture me"})
        session = captured.headers["x-noukai-session"]
        replayed = httpx.post(f"{base}/greet-sync", params={"message": "anything else"},
                              headers={"X-Noukai-Replay": session})
        again = httpx.post(f"{base}/greet", params={"message": "other"},
                           headers={"X-Noukai-Replay": session})
    assert replayed.status_code == 200, replayed.text
    assert replayed.json() == captured.json()
    assert replayed.headers["x-noukai-session"] == session
    assert again.json() == captured.json()
    # replay made no live call: the session still holds the one captured execution
    assert len(fetch_session(noukai_devserver, session)["executions"]) == 1


def test_gate_off_ignores_a_real_session(
    serve_app: Any, noukai_devserver: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("NOUKAI_REPLAY_ENABLED", raising=False)
    with serve_app(build_app(noukai_devserver)) as base:
        captured = httpx.post(f"{base}/greet", params={"message": "one"})
        session = captured.headers["x-noukai-session"]
        ignored = httpx.post(f"{base}/greet", params={"message": "two"},
                             headers={"X-Noukai-Replay": session})
    assert ignored.headers["x-noukai-session"] != session
    assert ignored.json()["execution_id"] != captured.json()["execution_id"]


@pytest.mark.usefixtures("replay_on")
def test_replay_errors_from_the_dev_server(serve_app: Any, noukai_devserver: Any) -> None:
    with serve_app(build_app(noukai_devserver)) as base:
        unknown = httpx.post(f"{base}/greet", params={"message": "x"},
                             headers={"X-Noukai-Replay": str(uuid.uuid4())})
        captured = httpx.post(f"{base}/greet", params={"message": "x"})
    session = captured.headers["x-noukai-session"]
    assert unknown.status_code == 404
    assert unknown.json()["error"]["code"] == "SESSION_NOT_FOUND"

    class OtherOrg:
        api_key = noukai_devserver.broke_api_key
        base_url = noukai_devserver.base_url
        org = "broke"
        project = "demo"

    with serve_app(build_app(OtherOrg)) as base:
        forbidden = httpx.post(f"{base}/greet", params={"message": "x"},
                               headers={"X-Noukai-Replay": session})
    assert forbidden.status_code == 403, forbidden.text
    assert forbidden.json()["error"]["code"] == "REPLAY_FORBIDDEN"
