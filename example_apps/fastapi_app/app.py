"""The example app, built by `create_app()` so tests can start it on any port.

- `GET /`: a page whose form streams a flow's steps into a live timeline,
  through the passthrough router mounted at `/noukai` (the browser never sees
  the API key, and can start only the flows listed in `STREAMED_FLOWS`);
- `POST /api/two-flows`: runs two flows in one request with the injected
  client (`NoukaiDep`); both runs share the request's Noukai session, which
  the middleware returns as `X-Noukai-Session`.

Configuration comes from the environment and defaults to the local dev
server (`python -m noukai_devserver`): `NOUKAI_BASE_URL` (default
`http://127.0.0.1:8080/api/v1`), `NOUKAI_API_KEY` (default its demo key
`nk_local_dev`), `NOUKAI_ORG` / `NOUKAI_PROJECT` (default `local` / `demo`).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import HTMLResponse
from pydantic import BaseModel

from noukai_core import AsyncNoukai
from noukai_core.web import BrowserInputPolicy
from noukai_fastapi import (
    NoukaiDep,
    NoukaiTraceMiddleware,
    flow_stream_router,
    noukai_lifespan,
)

PAGE = Path(__file__).parent / "static" / "index.html"

DEV_SERVER_URL = "http://127.0.0.1:8080/api/v1"
DEV_SERVER_KEY = "nk_local_dev"

#: The flows the page may start (the passthrough's allowlist).
STREAMED_FLOWS = ["hello-world", "two-step", "stream-story", "slow-steps"]


class TwoFlowsRequest(BaseModel):
    message: str = "Hello from the example app"


def create_app(client: AsyncNoukai | None = None, *, heartbeat_interval: float = 15.0) -> FastAPI:
    """The app. `client`: use this client instead of one built from the environment."""
    if client is None:
        lifespan = noukai_lifespan(
            api_key=os.environ.get("NOUKAI_API_KEY", DEV_SERVER_KEY),
            base_url=os.environ.get("NOUKAI_BASE_URL", DEV_SERVER_URL),
            org=os.environ.get("NOUKAI_ORG", "local"),
            project=os.environ.get("NOUKAI_PROJECT", "demo"),
        )
    else:
        lifespan = noukai_lifespan(client=client)
    app = FastAPI(title="Noukai FastAPI example", lifespan=lifespan)
    app.add_middleware(NoukaiTraceMiddleware)
    # Browser code on another origin can read the session id only if CORS exposes it.
    app.add_middleware(
        CORSMiddleware,
        allow_origins=["http://127.0.0.1:8000", "http://localhost:8000"],
        allow_methods=["GET", "POST"],
        allow_headers=["Content-Type"],
        expose_headers=["X-Noukai-Session"],
    )
    app.include_router(
        flow_stream_router(
            STREAMED_FLOWS,
            inputs=BrowserInputPolicy(max_message_chars=2_000),
            heartbeat_interval=heartbeat_interval,
        ),
        prefix="/noukai",
    )

    # Read once here: a file read inside the async endpoint would block the
    # event loop on every page view.
    page_html = PAGE.read_text(encoding="utf-8")

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    async def page() -> HTMLResponse:
        return HTMLResponse(page_html)

    @app.post("/api/two-flows")
    async def two_flows(body: TwoFlowsRequest, noukai: NoukaiDep) -> dict[str, Any]:
        greeting = await noukai.flow("hello-world").execute(message=body.message)
        refined = await noukai.flow("two-step").execute(message=body.message)
        return {
            "hello_world": {"execution_id": greeting.execution_id, "result": greeting.result},
            "two_step": {"execution_id": refined.execution_id, "result": refined.result},
            "session_id": greeting.session_id,
        }

    return app
