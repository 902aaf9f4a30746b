"""Client lifecycle and injection: noukai_lifespan, get_noukai, NoukaiDep, noukai_client."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from noukai_core import AsyncNoukai
from noukai_fastapi import (
    NoukaiDep,
    NoukaiNotConfiguredError,
    get_noukai,
    noukai_client,
    noukai_lifespan,
)

EXECUTE_RESULT = {"status": "completed", "result": "from upstream", "executionId": "e",
                  "flowId": "f", "blockCount": 1}


def client_options(upstream: Any) -> dict[str, Any]:
    return dict(api_key="nk_test_key", base_url=upstream.base_url, org="acme", project="demo")


def build_app(upstream: Any, app_lifespan: Any = None) -> FastAPI:
    app = FastAPI(lifespan=noukai_lifespan(app_lifespan, **client_options(upstream)))

    @app.get("/run")
    async def run(noukai: NoukaiDep) -> dict[str, Any]:
        result = await noukai.flow("hello-world").execute(message="hi")
        return {"result": result.result, "client": id(noukai), "org": noukai.default_org}

    return app


def test_one_client_per_app_built_from_arguments(serve_app: Any, canned_upstream: Any) -> None:
    canned_upstream.reply = canned_upstream.Reply(json=EXECUTE_RESULT)
    with serve_app(build_app(canned_upstream)) as base:
        first = httpx.get(f"{base}/run").json()
        second = httpx.get(f"{base}/run").json()
    assert first["result"] == "from upstream"
    assert first["org"] == "acme"
    assert first["client"] == second["client"]
    paths = [path for _, path, _, _ in canned_upstream.requests]
    assert paths == ["/api/v1/seq/acme/demo/hello-world/execute"] * 2


def test_client_from_the_environment(
    serve_app: Any, canned_upstream: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    canned_upstream.reply = canned_upstream.Reply(json=EXECUTE_RESULT)
    monkeypatch.setenv("NOUKAI_API_KEY", "nk_env_key")
    monkeypatch.setenv("NOUKAI_BASE_URL", canned_upstream.base_url)
    app = FastAPI(lifespan=noukai_lifespan())

    @app.get("/run")
    async def run(noukai: NoukaiDep) -> Any:
        return (await noukai.flow("acme/demo/hello-world").execute(message="x")).result

    with serve_app(app) as base:
        assert httpx.get(f"{base}/run").json() == "from upstream"
    headers = {k.lower(): v for k, v in canned_upstream.requests[0][2].items()}
    assert headers["authorization"] == "Bearer nk_env_key"


def test_composes_with_the_apps_own_lifespan(serve_app: Any, canned_upstream: Any) -> None:
    canned_upstream.reply = canned_upstream.Reply(json=EXECUTE_RESULT)
    events: list[str] = []

    @asynccontextmanager
    async def own(app: FastAPI) -> AsyncIterator[dict[str, Any]]:
        # the Noukai client is already open when the app's own lifespan starts
        result = await app.state.noukai.flow("hello-world").execute(message="warm-up")
        events.append(f"startup:{result.result}")
        yield {"greeting": "hello"}
        events.append("shutdown")

    app = build_app(canned_upstream, own)

    @app.get("/state")
    async def state(request: Request) -> dict[str, Any]:
        return {"greeting": request.state.greeting,
                "same": request.state.noukai is request.app.state.noukai}

    with serve_app(app) as base:
        assert httpx.get(f"{base}/state").json() == {"greeting": "hello", "same": True}
    assert events == ["startup:from upstream", "shutdown"]


def test_dependency_override(serve_app: Any, canned_upstream: Any) -> None:
    canned_upstream.reply = canned_upstream.Reply(json={**EXECUTE_RESULT, "result": "other"})
    app = build_app(canned_upstream)
    other = AsyncNoukai(api_key="nk_other", base_url=canned_upstream.base_url,
                        org="other-org", project="p")
    app.dependency_overrides[get_noukai] = lambda: other
    with serve_app(app) as base:
        body = httpx.get(f"{base}/run").json()
    assert body["org"] == "other-org"
    assert canned_upstream.requests[0][1] == "/api/v1/seq/other-org/p/hello-world/execute"


def _logged_errors(caplog: pytest.LogCaptureFixture) -> list[BaseException]:
    return [r.exc_info[1] for r in caplog.records if r.exc_info and r.exc_info[1]]


def test_missing_setup_is_a_clear_error(
    serve_app: Any, caplog: pytest.LogCaptureFixture
) -> None:
    app = FastAPI()

    @app.get("/run")
    async def run(noukai: NoukaiDep) -> str:
        return "unreachable"

    with serve_app(app) as base:
        response = httpx.get(f"{base}/run")
    assert response.status_code == 500
    assert b"Traceback" not in response.content
    errors = _logged_errors(caplog)
    assert any(isinstance(e, NoukaiNotConfiguredError) and "noukai_lifespan" in str(e)
               for e in errors)


def test_plain_starlette_reaches_the_same_client(serve_app: Any, canned_upstream: Any) -> None:
    canned_upstream.reply = canned_upstream.Reply(json=EXECUTE_RESULT)

    async def run(request: Request) -> JSONResponse:
        noukai = noukai_client(request)
        result = await noukai.flow("hello-world").execute(message="x")
        return JSONResponse({"result": result.result,
                             "same": noukai is request.app.state.noukai})

    app = Starlette(routes=[Route("/run", run)],
                    lifespan=noukai_lifespan(**client_options(canned_upstream)))
    with serve_app(app) as base:
        assert httpx.get(f"{base}/run").json() == {"result": "from upstream", "same": True}


def test_starlette_without_setup_names_the_helper(
    serve_app: Any, caplog: pytest.LogCaptureFixture
) -> None:
    async def run(request: Request) -> JSONResponse:
        noukai_client(request)
        return JSONResponse({})

    with serve_app(Starlette(routes=[Route("/run", run)])) as base:
        assert httpx.get(f"{base}/run").status_code == 500
    assert any(isinstance(e, NoukaiNotConfiguredError) and "noukai_lifespan" in str(e)
               for e in _logged_errors(caplog))


def test_client_and_options_together_are_refused(canned_upstream: Any) -> None:
    client = AsyncNoukai(**client_options(canned_upstream))
    with pytest.raises(TypeError):
        noukai_lifespan(client=client, org="x")


def test_fastapi_only_names_name_the_extra_without_fastapi() -> None:
    import subprocess
    import sys

    script = (
        "import sys\nsys.modules['fastapi'] = None\n"
        "import noukai_fastapi\n"
        "assert noukai_fastapi.NoukaiTraceMiddleware\n"
        "try:\n    noukai_fastapi.NoukaiDep\nexcept ImportError as exc:\n"
        "    print(exc)\n    raise SystemExit(3)\n"
    )
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 3, proc.stderr
    assert "noukai[fastapi]" in proc.stdout


def test_built_client_is_closed_at_shutdown_a_passed_one_is_not(
    serve_app: Any, canned_upstream: Any
) -> None:
    import asyncio

    canned_upstream.reply = canned_upstream.Reply(json=EXECUTE_RESULT)
    built_app = build_app(canned_upstream)
    passed = AsyncNoukai(**client_options(canned_upstream))
    passed_app = FastAPI(lifespan=noukai_lifespan(client=passed))
    for app in (built_app, passed_app):
        with serve_app(app) as base:
            httpx.get(f"{base}/docs")
    built = built_app.state.noukai
    assert passed_app.state.noukai is passed

    async def call(client: AsyncNoukai) -> Any:
        return (await client.flow("hello-world").execute(message="after")).result

    with pytest.raises(Exception, match="closed"):
        asyncio.run(call(built))
    assert asyncio.run(call(passed)) == "from upstream"
