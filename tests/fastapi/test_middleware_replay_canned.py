"""Replay through NoukaiTraceMiddleware, against a canned upstream.

The upstream serves only `GET /seq/sessions/{id}` (a recorded session, or a
replay error status); any `/execute` reaching it would show as a recorded
request, so "served from the cassette" is observable.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from fastapi.responses import StreamingResponse
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from noukai_core import AsyncNoukai, Noukai
from noukai_fastapi import NoukaiTraceMiddleware, noukai_lifespan

SESSION_ID = str(uuid.uuid4())


def recorded_session(slugs: list[str], *, snapshots: bool = True) -> dict[str, Any]:
    return {
        "sessionId": SESSION_ID,
        "executions": [
            {"executionId": f"exec-{i}", "flowId": "flow-1", "slug": slug,
             "triggerType": "execute", "status": "completed", "snapshotsAvailable": snapshots,
             "steps": [{"stepId": "only", "status": "completed",
                        "outputSnapshot": {"response": f"recorded {i}"}}]}
            for i, slug in enumerate(slugs)
        ],
    }


@pytest.fixture
def replay_on(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NOUKAI_REPLAY_ENABLED", "true")


def make_app(upstream: Any, calls: int = 1, *, pass_client: bool = True) -> FastAPI:
    options = dict(api_key="nk_test_key", base_url=upstream.base_url, org="acme",
                   project="demo", max_retries=0)
    client = AsyncNoukai(**options)
    sync_client = Noukai(**options)
    app = FastAPI(lifespan=None if pass_client else noukai_lifespan(**options))
    if pass_client:
        app.add_middleware(NoukaiTraceMiddleware, client=client)
    else:
        app.add_middleware(NoukaiTraceMiddleware)

    @app.get("/grade")
    async def grade(request: Request) -> dict[str, Any]:
        noukai = client if pass_client else request.state.noukai
        results = [await noukai.flow("hello-world").execute(message="anything")
                   for _ in range(calls)]
        return {"results": [r.result for r in results]}

    @app.get("/sync-grade")
    def sync_grade() -> dict[str, Any]:
        return {"result": sync_client.flow("hello-world").execute(message="x").result}

    @app.get("/stream")
    async def stream() -> StreamingResponse:
        async def body() -> AsyncIterator[bytes]:
            yield b"started\n"
            for _ in range(calls):
                await client.flow("hello-world").execute(message="x")
            yield b"done\n"

        return StreamingResponse(body())

    return app


def calls_to(upstream: Any, suffix: str) -> int:
    return sum(1 for _, path, _, _ in upstream.requests if suffix in path)


def test_gate_off_ignores_the_header(serve_app: Any, canned_upstream: Any) -> None:
    canned_upstream.reply = canned_upstream.Reply(json={
        "status": "completed", "result": "live", "executionId": "e", "flowId": "f",
        "blockCount": 1})
    with serve_app(make_app(canned_upstream)) as base:
        response = httpx.get(f"{base}/grade", headers={"X-Noukai-Replay": SESSION_ID})
        malformed = httpx.get(f"{base}/grade", headers={"X-Noukai-Replay": "../../x"})
    assert response.status_code == 200 and malformed.status_code == 200
    assert response.json() == {"results": ["live"]}
    assert response.headers["x-noukai-session"] != SESSION_ID
    assert calls_to(canned_upstream, f"/sessions/{SESSION_ID}") == 0


@pytest.mark.usefixtures("replay_on")
@pytest.mark.parametrize("pass_client", [True, False])
def test_gate_on_serves_from_the_cassette(
    serve_app: Any, canned_upstream: Any, pass_client: bool
) -> None:
    canned_upstream.routes = [("/sessions/", canned_upstream.Reply(
        json=recorded_session(["hello-world"])))]
    canned_upstream.reply = canned_upstream.Reply(status=500, json={"detail": {
        "code": "NO_LIVE_CALLS", "message": "replay must not call"}})
    with serve_app(make_app(canned_upstream, pass_client=pass_client)) as base:
        response = httpx.get(f"{base}/grade", headers={"X-Noukai-Replay": SESSION_ID})
    assert response.status_code == 200, response.text
    assert response.json() == {"results": [{"response": "recorded 0"}]}
    assert response.headers["x-noukai-session"] == SESSION_ID
    assert calls_to(canned_upstream, "/execute") == 0
    assert calls_to(canned_upstream, f"/sessions/{SESSION_ID}") == 1


@pytest.mark.usefixtures("replay_on")
def test_sync_client_in_def_endpoint_uses_the_fetched_cassette(
    serve_app: Any, canned_upstream: Any
) -> None:
    canned_upstream.routes = [("/sessions/", canned_upstream.Reply(
        json=recorded_session(["hello-world"])))]
    canned_upstream.reply = canned_upstream.Reply(status=500, json={})
    with serve_app(make_app(canned_upstream)) as base:
        response = httpx.get(f"{base}/sync-grade", headers={"X-Noukai-Replay": SESSION_ID})
    assert response.json() == {"result": {"response": "recorded 0"}}
    assert calls_to(canned_upstream, "/execute") == 0
    assert calls_to(canned_upstream, "/sessions/") == 1


@pytest.mark.usefixtures("replay_on")
def test_invalid_header_is_400(serve_app: Any, canned_upstream: Any) -> None:
    with serve_app(make_app(canned_upstream)) as base:
        response = httpx.get(f"{base}/grade", headers={"X-Noukai-Replay": "abc-123-def"})
    assert response.status_code == 400
    assert response.json() == {"error": {"code": "INVALID_SESSION_ID",
                                         "message": "The replay session id is not valid."}}
    assert canned_upstream.requests == []


FETCH_ERRORS = [
    (403, "FORBIDDEN", 403),
    (404, "SESSION_NOT_FOUND", 404),
    (410, "SESSION_EXPIRED", 410),
    (400, "INVALID_SESSION_ID", 400),
]


@pytest.mark.usefixtures("replay_on")
def test_session_fetch_errors_map_to_statuses(serve_app: Any, canned_upstream: Any) -> None:
    with serve_app(make_app(canned_upstream)) as base:
        for upstream_status, code, expected in FETCH_ERRORS:
            canned_upstream.reply = canned_upstream.Reply(
                status=upstream_status, json={"detail": {"code": code, "message": "m"}})
            response = httpx.get(f"{base}/grade", headers={"X-Noukai-Replay": SESSION_ID})
            assert response.status_code == expected, (upstream_status, response.text)
            assert set(response.json()["error"]) == {"code", "message"}
            assert response.headers["x-noukai-session"] == SESSION_ID


@pytest.mark.usefixtures("replay_on")
def test_no_snapshots_miss_and_leftover_are_409(serve_app: Any, canned_upstream: Any) -> None:
    cases = [
        (recorded_session(["hello-world"], snapshots=False), 1, "REPLAY_NO_SNAPSHOTS"),
        (recorded_session(["two-step"]), 1, "REPLAY_MISS"),
        (recorded_session(["hello-world", "hello-world"]), 1, "REPLAY_LEFTOVER"),
    ]
    for session, calls, code in cases:
        canned_upstream.reply = canned_upstream.Reply(json=session)
        with serve_app(make_app(canned_upstream, calls=calls)) as base:
            response = httpx.get(f"{base}/grade", headers={"X-Noukai-Replay": SESSION_ID})
        assert response.status_code == 409, (code, response.text)
        assert response.json()["error"]["code"] == code
        assert calls_to(canned_upstream, "/execute") == 0


@pytest.mark.usefixtures("replay_on")
def test_error_after_the_response_started_ends_it_cleanly(
    serve_app: Any, canned_upstream: Any, caplog: pytest.LogCaptureFixture
) -> None:
    canned_upstream.reply = canned_upstream.Reply(json=recorded_session(["hello-world"]))
    caplog.set_level(logging.WARNING, logger="noukai_fastapi")
    with serve_app(make_app(canned_upstream, calls=2)) as base:
        with httpx.stream("GET", f"{base}/stream",
                          headers={"X-Noukai-Replay": SESSION_ID}) as response:
            body = response.read()
        assert response.status_code == 200
        assert body == b"started\n"
        # the same miss on a non-streamed route is still a clean 409 (held response)
        held = httpx.get(f"{base}/grade", headers={"X-Noukai-Replay": SESSION_ID})
        assert held.status_code == 409
        assert held.json()["error"]["code"] == "REPLAY_MISS"
    assert any("REPLAY_MISS" in r.getMessage() for r in caplog.records)


@pytest.mark.usefixtures("replay_on")
def test_leftover_after_streamed_response_is_logged_not_resent(
    serve_app: Any, canned_upstream: Any, caplog: pytest.LogCaptureFixture
) -> None:
    canned_upstream.reply = canned_upstream.Reply(
        json=recorded_session(["hello-world", "hello-world"]))
    caplog.set_level(logging.WARNING, logger="noukai_fastapi")
    with serve_app(make_app(canned_upstream, calls=1)) as base:
        response = httpx.get(f"{base}/stream", headers={"X-Noukai-Replay": SESSION_ID})
    assert response.status_code == 200
    assert response.content == b"started\ndone\n"
    assert any("REPLAY_LEFTOVER" in r.getMessage() for r in caplog.records)


@pytest.mark.usefixtures("replay_on")
def test_plain_starlette_app(serve_app: Any, canned_upstream: Any) -> None:
    canned_upstream.reply = canned_upstream.Reply(json=recorded_session(["hello-world"]))
    options = dict(api_key="nk_test_key", base_url=canned_upstream.base_url, org="acme",
                   project="demo")

    async def grade(request: Request) -> JSONResponse:
        result = await request.state.noukai.flow("hello-world").execute(message="x")
        return JSONResponse({"result": result.result})

    app = Starlette(routes=[Route("/grade", grade)], lifespan=noukai_lifespan(**options))
    app.add_middleware(NoukaiTraceMiddleware)
    with serve_app(app) as base:
        response = httpx.get(f"{base}/grade", headers={"X-Noukai-Replay": SESSION_ID})
    assert response.json() == {"result": {"response": "recorded 0"}}
    assert response.headers["x-noukai-session"] == SESSION_ID
    assert calls_to(canned_upstream, "/execute") == 0


@pytest.mark.usefixtures("replay_on")
def test_no_arguments_builds_a_client_from_the_environment(
    serve_app: Any, canned_upstream: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    canned_upstream.reply = canned_upstream.Reply(json=recorded_session(["hello-world"]))
    monkeypatch.setenv("NOUKAI_API_KEY", "nk_from_env")
    monkeypatch.setenv("NOUKAI_BASE_URL", canned_upstream.base_url)
    served = AsyncNoukai(api_key="nk_test_key", base_url=canned_upstream.base_url,
                         org="acme", project="demo")
    app = FastAPI()
    app.add_middleware(NoukaiTraceMiddleware)

    @app.get("/grade")
    async def grade() -> Any:
        return (await served.flow("hello-world").execute(message="x")).result

    with serve_app(app) as base:
        response = httpx.get(f"{base}/grade", headers={"X-Noukai-Replay": SESSION_ID})
    assert response.json() == {"response": "recorded 0"}
    fetch = [h for _, path, h, _ in canned_upstream.requests if "/sessions/" in path]
    assert len(fetch) == 1
    assert {k.lower(): v for k, v in fetch[0].items()}["authorization"] == "Bearer nk_from_env"


@pytest.mark.usefixtures("replay_on")
def test_unreachable_noukai_during_replay_is_a_generic_502(
    serve_app: Any, canned_upstream: Any
) -> None:
    canned_upstream.stop()  # nothing listens on its port any more
    with serve_app(make_app(canned_upstream)) as base:
        response = httpx.get(f"{base}/grade", headers={"X-Noukai-Replay": SESSION_ID})
    assert response.status_code == 502
    assert response.json()["error"]["code"] == "UPSTREAM_ERROR"
    assert b"nk_" not in response.content


def wait_until(condition: Callable[[], bool], what: str, limit: float = 10.0) -> None:
    """Poll `condition`; raise if it is still false after `limit` seconds (not a timing test)."""
    give_up = time.monotonic() + limit
    while not condition():
        if time.monotonic() > give_up:
            raise AssertionError(f"never happened: {what}")
        time.sleep(0.02)


@pytest.mark.usefixtures("replay_on")
def test_a_client_built_from_the_environment_is_closed_at_shutdown(
    serve_app: Any, canned_upstream: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    canned_upstream.reply = canned_upstream.Reply(json=recorded_session([]))
    monkeypatch.setenv("NOUKAI_API_KEY", "nk_from_env")
    monkeypatch.setenv("NOUKAI_BASE_URL", canned_upstream.base_url)
    app = FastAPI()  # no lifespan helper, no client=: the middleware builds its own
    app.add_middleware(NoukaiTraceMiddleware)

    @app.get("/ok")
    async def ok() -> str:
        return "ok"

    for run in range(2):  # served twice: after the first shutdown a fresh client is built
        with serve_app(app) as base:
            for _ in range(2):
                response = httpx.get(f"{base}/ok", headers={"X-Noukai-Replay": SESSION_ID})
                assert response.status_code == 200, response.text
                assert response.headers["x-noukai-session"] == SESSION_ID
            # the session fetches share one keep-alive connection, open while the app runs
            assert canned_upstream.open_connections == 1
        wait_until(lambda: canned_upstream.open_connections == 0,
                   f"the replay client closed its connection at shutdown {run + 1}")
    assert calls_to(canned_upstream, f"/sessions/{SESSION_ID}") == 4


@pytest.mark.usefixtures("replay_on")
@pytest.mark.parametrize("mode", ["capture", "replay"])
def test_a_streamed_body_is_never_held_back(
    serve_app: Any, canned_upstream: Any, mode: str
) -> None:
    # The body's second part waits for the caller to have read the first: a
    # middleware that buffered the body would make it wait for its limit.
    canned_upstream.reply = canned_upstream.Reply(json=recorded_session([]))
    release = threading.Event()
    app = FastAPI()
    app.add_middleware(NoukaiTraceMiddleware, client=AsyncNoukai(
        api_key="nk_test_key", base_url=canned_upstream.base_url, max_retries=0))

    @app.get("/lock-step")
    async def lock_step() -> StreamingResponse:
        async def body() -> AsyncIterator[bytes]:
            yield b"first\n"
            released = await asyncio.to_thread(release.wait, 5.0)
            yield b"second\n" if released else b"the caller never saw the first part\n"

        return StreamingResponse(body(), media_type="text/plain")

    headers = {"X-Noukai-Replay": SESSION_ID} if mode == "replay" else {}
    with serve_app(app) as base, httpx.stream("GET", f"{base}/lock-step", headers=headers,
                                              timeout=30) as response:
        lines = response.iter_lines()
        assert next(lines) == "first"
        release.set()
        assert list(lines) == ["second"]
    session = response.headers["x-noukai-session"]
    assert (session == SESSION_ID) is (mode == "replay")
