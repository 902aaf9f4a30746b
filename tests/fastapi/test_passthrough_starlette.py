"""The same passthrough under plain Starlette, and `flow_events_response` in a custom route."""

from __future__ import annotations

import json
from typing import Any

import httpx
from fastapi import FastAPI
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Mount, Route

from noukai_core.web import EventPolicy
from noukai_fastapi import (
    flow_events_response,
    flow_stream_routes,
    get_noukai,
    noukai_client,
    noukai_lifespan,
)


def frame_types(raw: bytes) -> list[str]:
    return [line[len("event: "):] for line in raw.decode().split("\n")
            if line.startswith("event: ")]


def options(upstream: Any) -> dict[str, Any]:
    return dict(api_key="nk_test_key", base_url=upstream.base_url, org="acme", project="demo",
                max_retries=0)


def test_starlette_routes_stream_and_enforce_the_same_rules(
    serve_app: Any, canned_upstream: Any
) -> None:
    app = Starlette(
        routes=[Mount("/noukai", routes=flow_stream_routes(["hello-world"],
                                                           heartbeat_interval=0.05))],
        lifespan=noukai_lifespan(**options(canned_upstream)),
    )
    with serve_app(app) as base:
        ok = httpx.post(f"{base}/noukai/flows/hello-world", json={"message": "hi"})
        form = httpx.post(f"{base}/noukai/flows/hello-world", data={"message": "hi"})
        extra = httpx.post(f"{base}/noukai/flows/hello-world",
                           json={"message": "hi", "tools": []})
        unknown = httpx.post(f"{base}/noukai/flows/two-step", json={"message": "hi"})
        script = httpx.get(f"{base}/noukai/noukai-stream.js")
    assert ok.status_code == 200
    assert frame_types(ok.content)[0] == "run_started"
    assert frame_types(ok.content)[-1] == "flow_completed"
    assert b"step_input" not in ok.content and b"costUsd" not in ok.content
    assert (form.status_code, extra.status_code, unknown.status_code) == (415, 422, 404)
    assert script.status_code == 200
    assert len(canned_upstream.requests) == 1


def test_flow_events_response_in_custom_routes(serve_app: Any, canned_upstream: Any) -> None:
    async def starlette_story(request: Request) -> Response:
        flow = noukai_client(request).flow("hello-world")
        return flow_events_response(flow, message="fixed by the app",
                                    policy=EventPolicy().without("step_output"))

    app = FastAPI(lifespan=noukai_lifespan(**options(canned_upstream)),
                  routes=[Route("/starlette-story", starlette_story, methods=["POST"])])

    @app.post("/story")
    async def story(request: Request) -> Response:
        noukai = await get_noukai(request)
        return flow_events_response(noukai.flow("hello-world"), message="from fastapi",
                                    parameters={"tone": "dry"})

    with serve_app(app) as base:
        first = httpx.post(f"{base}/starlette-story")
        second = httpx.post(f"{base}/story")
    assert "step_output" not in frame_types(first.content)
    assert "step_output" in frame_types(second.content)
    assert first.headers["content-type"].startswith("text/event-stream")
    bodies = [json.loads(body) for _, _, _, body in canned_upstream.requests]
    assert [b["message"] for b in bodies] == ["fixed by the app", "from fastapi"]
    assert bodies[1]["parameters"] == {"tone": "dry"}


def test_explicit_client_needs_no_lifespan(serve_app: Any, canned_upstream: Any) -> None:
    from noukai_core import AsyncNoukai

    client = AsyncNoukai(**options(canned_upstream))
    app = Starlette(routes=[Mount("/noukai", routes=flow_stream_routes(["hello-world"],
                                                                       client=client))])
    with serve_app(app) as base:
        response = httpx.post(f"{base}/noukai/flows/hello-world", json={"message": "hi"})
    assert frame_types(response.content)[-1] == "flow_completed"
    assert canned_upstream.requests[0][1] == "/api/v1/seq/acme/demo/hello-world/step"
