"""NoukaiTraceMiddleware over real uvicorn servers, observed at a canned upstream.

The upstream records the `X-Session-Id` of every call, so each test compares
what Noukai saw with the `X-Noukai-Session` the app's caller saw.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from fastapi import Depends, FastAPI
from fastapi.responses import JSONResponse, StreamingResponse
from pydantic import BaseModel
from starlette.requests import Request

import noukai_core
from noukai_core import AsyncNoukai, Noukai
from noukai_fastapi import NoukaiTraceMiddleware

EXECUTE_RESULT = {"status": "completed", "result": {"response": "canned"},
                  "executionId": "exec-1", "flowId": "flow-1", "blockCount": 1}


class Body(BaseModel):
    """Module level: FastAPI resolves string annotations in the route's module."""

    text: str


def make_client(upstream: Any, cls: type = AsyncNoukai) -> Any:
    return cls(api_key="nk_test_key", base_url=upstream.base_url, org="acme", project="demo",
               max_retries=0)


def upstream_sessions(upstream: Any) -> dict[str, str]:
    """message -> X-Session-Id, for every execute the upstream received."""
    seen = {}
    for method, path, headers, body in upstream.requests:
        if method == "POST" and path.endswith("/execute"):
            lowered = {k.lower(): v for k, v in headers.items()}
            seen[json.loads(body)["message"]] = lowered.get("x-session-id", "")
    return seen


@pytest.fixture
def app_and_upstream(canned_upstream: Any) -> tuple[FastAPI, Any]:
    canned_upstream.reply = canned_upstream.Reply(json=EXECUTE_RESULT)
    client = make_client(canned_upstream)
    sync_client = make_client(canned_upstream, Noukai)
    app = FastAPI()
    app.add_middleware(NoukaiTraceMiddleware, client=client)

    async def dependency(request: Request) -> str:
        await client.flow("hello-world").execute(message=f"dep-{request.query_params['n']}")
        return "ok"

    @app.get("/plain")
    async def plain(n: int) -> dict[str, Any]:
        await client.flow("hello-world").execute(message=f"plain-{n}")
        return {"n": n}

    @app.get("/sync")
    def sync_endpoint(n: int) -> dict[str, Any]:
        sync_client.flow("hello-world").execute(message=f"sync-{n}")
        return {"n": n}

    @app.get("/with-dependency")
    async def with_dependency(n: int, dep: str = Depends(dependency)) -> dict[str, Any]:
        await client.flow("hello-world").execute(message=f"endpoint-{n}")
        return {"n": n}

    @app.get("/streaming")
    async def streaming(n: int) -> StreamingResponse:
        async def body() -> AsyncIterator[bytes]:
            yield b"first\n"
            await asyncio.sleep(0.01)
            # runs after the endpoint returned: the session must still be active
            await client.flow("hello-world").execute(message=f"generator-{n}")
            yield b"second\n"

        return StreamingResponse(body(), media_type="text/plain")

    @app.post("/traced")
    @noukai_core.trace
    async def traced(req: Request, body: Body) -> dict[str, Any]:
        await client.flow("hello-world").execute(message=f"traced-{body.text}")
        return {"session": noukai_core.current_session_id(), "path": req.url.path}

    return app, canned_upstream


def test_plain_request_gets_a_session_shared_with_its_calls(
    serve_app: Any, app_and_upstream: tuple[FastAPI, Any]
) -> None:
    app, upstream = app_and_upstream
    with serve_app(app) as base:
        response = httpx.get(f"{base}/plain", params={"n": 1})
    session = response.headers["x-noukai-session"]
    assert uuid.UUID(session).version == 4
    assert upstream_sessions(upstream) == {"plain-1": session}


def test_sync_endpoint_with_sync_client(
    serve_app: Any, app_and_upstream: tuple[FastAPI, Any]
) -> None:
    app, upstream = app_and_upstream
    with serve_app(app) as base:
        response = httpx.get(f"{base}/sync", params={"n": 2})
    assert upstream_sessions(upstream) == {"sync-2": response.headers["x-noukai-session"]}


def test_dependency_and_endpoint_share_the_session(
    serve_app: Any, app_and_upstream: tuple[FastAPI, Any]
) -> None:
    app, upstream = app_and_upstream
    with serve_app(app) as base:
        response = httpx.get(f"{base}/with-dependency", params={"n": 3})
    session = response.headers["x-noukai-session"]
    assert upstream_sessions(upstream) == {"dep-3": session, "endpoint-3": session}


def test_streaming_generator_runs_inside_the_session(
    serve_app: Any, app_and_upstream: tuple[FastAPI, Any]
) -> None:
    app, upstream = app_and_upstream
    with serve_app(app) as base, httpx.stream("GET", f"{base}/streaming?n=4") as response:
        body = response.read()
    assert body == b"first\nsecond\n"
    assert upstream_sessions(upstream) == {"generator-4": response.headers["x-noukai-session"]}


async def test_concurrent_requests_never_share_a_session(
    serve_app: Any, app_and_upstream: tuple[FastAPI, Any]
) -> None:
    app, upstream = app_and_upstream
    with serve_app(app) as base:
        async with httpx.AsyncClient(base_url=base, timeout=30) as http:
            paths = [("/plain", f"plain-{n}") if n % 2 else ("/streaming", f"generator-{n}")
                     for n in range(50)]
            responses = await asyncio.gather(
                *(http.get(path, params={"n": n}) for n, (path, _) in enumerate(paths)))
    seen = upstream_sessions(upstream)
    sessions = [r.headers["x-noukai-session"] for r in responses]
    assert len(set(sessions)) == 50
    for (_, message), session in zip(paths, sessions, strict=True):
        assert seen[message] == session


def test_traced_route_validates_and_joins_the_request_scope(
    serve_app: Any, app_and_upstream: tuple[FastAPI, Any]
) -> None:
    app, upstream = app_and_upstream
    with serve_app(app) as base:
        invalid = httpx.post(f"{base}/traced", json={"wrong": 1})
        response = httpx.post(f"{base}/traced", json={"text": "t"})
    assert invalid.status_code == 422
    session = response.headers["x-noukai-session"]
    assert response.json() == {"session": session, "path": "/traced"}
    assert upstream_sessions(upstream) == {"traced-t": session}


async def test_websocket_and_lifespan_scopes_pass_through_untouched() -> None:
    seen: list[tuple[Any, Any, Any, str | None]] = []

    async def inner(scope: Any, receive: Any, send: Any) -> None:
        seen.append((scope, receive, send, noukai_core.current_session_id()))
        await send({"type": "inner-was-here"})

    middleware = NoukaiTraceMiddleware(inner)
    sent: list[Any] = []

    async def receive() -> dict[str, Any]:
        return {"type": "websocket.connect"}

    async def send(message: Any) -> None:
        sent.append(message)

    for scope_type in ["websocket", "lifespan"]:
        scope = {"type": scope_type, "headers": [(b"x-noukai-replay", b"not-a-uuid")]}
        await middleware(scope, receive, send)
        inner_scope, inner_receive, inner_send, session = seen[-1]
        # no session, no replay check: the same scope and receive reach the app
        assert (inner_scope, inner_receive, session) == (scope, receive, None)
        assert inner_scope is scope and inner_receive is receive
        if scope_type == "websocket":
            assert inner_send is send
    # lifespan messages go out unchanged (the middleware only watches for the
    # shutdown, to close a replay client it built itself)
    assert sent == [{"type": "inner-was-here"}] * 2


def test_one_session_header_even_when_the_app_or_a_second_layer_sets_one(
    serve_app: Any, canned_upstream: Any
) -> None:
    canned_upstream.reply = canned_upstream.Reply(json=EXECUTE_RESULT)
    client = make_client(canned_upstream)
    app = FastAPI()
    app.add_middleware(NoukaiTraceMiddleware, client=client)
    app.add_middleware(NoukaiTraceMiddleware, client=client)  # e.g. a sub-app's own copy

    @app.get("/spoofed")
    async def spoofed() -> JSONResponse:
        await client.flow("hello-world").execute(message="spoofed")
        return JSONResponse({}, headers={"X-Noukai-Session": "set-by-the-app"})

    with serve_app(app) as base:
        response = httpx.get(f"{base}/spoofed")
    sessions = response.headers.get_list("x-noukai-session")
    assert len(sessions) == 1
    # the inner layer joined the outer one's scope: the header names the real session
    assert upstream_sessions(canned_upstream) == {"spoofed": sessions[0]}


def test_an_app_set_session_header_in_any_case_or_headers_from_an_iterator_are_handled(
    serve_app: Any,
) -> None:
    """A raw ASGI app may name headers in capitals and give them as a one-time iterator."""

    async def raw_app(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        headers = iter([(b"X-Noukai-Session", b"set-by-the-app"), (b"content-type", b"text/plain")])
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": b"ok"})

    with serve_app(NoukaiTraceMiddleware(raw_app)) as base:
        response = httpx.get(f"{base}/")
    sessions = response.headers.get_list("x-noukai-session")
    assert len(sessions) == 1
    assert str(uuid.UUID(sessions[0])) == sessions[0]  # ours, not the app's
    assert response.headers["content-type"] == "text/plain"
    assert response.text == "ok"
