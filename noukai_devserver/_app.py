"""The FastAPI application: shared state, error handlers, lifecycle.

`create_app()` wires one `ServerState` (workspace, store, runs, engine, jobs)
into the app. Every error — ours, FastAPI's 404/405/422, or a bug — leaves as
the contract's envelope. `begin_shutdown()` is called from the signal handler
(see `_server`) so open streams end with a final frame instead of keeping
uvicorn waiting forever.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import Request

from . import _store as db
from ._auth import RateLimiter, authenticate
from ._blocks import EngineOptions
from ._driver import Driver
from ._engine import Engine
from ._errors import ApiError
from ._idempotency import Idempotency
from ._jobs import JobQueue
from ._resolver import FlowResolver
from ._runs import Balances, Broker, Runs
from ._workspace import Workspace

log = logging.getLogger("noukai_devserver")


@dataclass(frozen=True)
class ServerOptions:
    """Every time constant is an option so tests can run at ~0.1 s."""

    heartbeat: float = 5.0
    job_min_latency: float = 1.0
    slow_seconds: float = 2.0
    rate_limit_window: float = 60.0
    session_retention: float | None = None
    job_workers: int = 4
    stream_delay: float = 0.05
    max_body_bytes: int = 4 * 1024 * 1024
    live_idle_timeout: float = 600.0
    iteration_cap: int = 20
    rerun_limit: int = 20
    snapshot_limit: int = 256 * 1024
    openai_base_url: str | None = None
    reload_interval: float = 0.5
    idle_runs_in_memory: int = 256


@dataclass
class ServerState:
    workspace: Workspace
    store: db.Store
    options: ServerOptions
    broker: Broker = field(init=False)
    runs: Runs = field(init=False)
    balances: Balances = field(init=False)
    engine: Engine = field(init=False)
    driver: Driver = field(init=False)
    jobs: JobQueue = field(init=False)
    limiter: RateLimiter = field(init=False)
    resolver: FlowResolver = field(init=False)
    idempotency: Idempotency = field(init=False)
    streams: set[asyncio.Queue[Any]] = field(default_factory=set)
    shutting_down: bool = False
    shutdown_event: asyncio.Event = field(default_factory=asyncio.Event)

    def __post_init__(self) -> None:
        self.broker = Broker()
        self.runs = Runs(self.store, self.broker, self.options.idle_runs_in_memory)
        self.balances = Balances(self.store, {o.name: o.credits
                                              for o in self.workspace.orgs.values()})
        self.engine = Engine(self.runs, self.balances, EngineOptions(
            slow_seconds=self.options.slow_seconds, stream_delay=self.options.stream_delay,
            snapshot_limit=self.options.snapshot_limit,
            iteration_cap=self.options.iteration_cap,
            openai_base_url=self.options.openai_base_url))
        self.driver = Driver(self.runs, self.engine)
        self.jobs = JobQueue(self.driver, self.runs, self.options.job_workers)
        self.limiter = RateLimiter(self.options.rate_limit_window)
        self.resolver = FlowResolver(self.workspace, self.store, self.options.reload_interval)
        self.idempotency = Idempotency(self.store)

    @property
    def session_retention(self) -> float | None:
        return self.options.session_retention or self.workspace.session_retention_seconds

    def begin_shutdown(self) -> None:
        """Ask every open stream to send its final frame and end (idempotent).

        Every executing run is cancelled now (its `/step` stream, its
        `/execute`, its job), and a cancelled run logs `step_error` and
        `flow_completed`, so live traces of those runs end on that final frame
        like any finished run. Live traces of idle runs (waiting between
        `/step` calls) end at once with a comment; any stream still open after
        `SHUTDOWN_GRACE` is closed the same way.
        """
        if self.shutting_down:
            return
        self.shutting_down = True
        self.shutdown_event.set()
        for queue in list(self.streams):
            queue.put_nowait(SHUTDOWN)
        self.jobs.cancel()
        self.broker.close_all(keep=self.runs.executing)
        asyncio.get_running_loop().call_later(SHUTDOWN_GRACE, self.broker.close_all)


SHUTDOWN = object()
SHUTDOWN_GRACE = 1.0  # seconds; well inside uvicorn's graceful-shutdown timeout (3 s)


def get_state(request: Request) -> ServerState:
    state: ServerState = request.app.state.noukai
    return state


def _error_response(exc: ApiError) -> JSONResponse:
    return JSONResponse(exc.body(), status_code=exc.status, headers=exc.headers)


async def _api_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ApiError)
    return _error_response(exc)


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    """FastAPI/Starlette 404 and 405, authenticated first like every API route."""
    assert isinstance(exc, StarletteHTTPException)
    if request.url.path.startswith("/api/"):
        state = get_state(request)
        try:
            authenticate(state.workspace, state.limiter, request)
        except ApiError as auth_error:
            return _error_response(auth_error)
    codes = {404: "NOT_FOUND", 405: "METHOD_NOT_ALLOWED"}
    code = codes.get(exc.status_code, "HTTP_ERROR")
    message = {404: f"no route {request.method} {request.url.path}",
               405: f"method {request.method} not allowed here"}.get(exc.status_code,
                                                                      str(exc.detail))
    return JSONResponse({"detail": {"code": code, "message": message}},
                        status_code=exc.status_code, headers=getattr(exc, "headers", None))


async def _validation_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = exc.errors()
    where = ".".join(str(p) for p in errors[0].get("loc", ())) if errors else "request"
    return JSONResponse({"detail": {"code": "VALIDATION_ERROR",
                                    "message": f"invalid request at {where}"}}, status_code=422)


def create_app(state: ServerState) -> FastAPI:
    from ._middleware import RequestContextMiddleware
    from ._routes_flows import router as flow_router
    from ._routes_runs import router as run_router

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        recovered = await state.driver.recover_interrupted()
        if recovered:
            log.warning("marked %d run(s) interrupted by a previous stop as failed", recovered)
        state.jobs.start(state.options.job_min_latency)
        try:
            yield
        finally:
            state.begin_shutdown()
            await state.jobs.stop()
            await state.runs.flush()
            state.resolver.close()

    app = FastAPI(title="noukai-dev", docs_url=None, redoc_url=None, openapi_url=None,
                  lifespan=lifespan)
    app.state.noukai = state
    app.add_exception_handler(ApiError, _api_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_middleware(RequestContextMiddleware)
    app.router.routes.extend(flow_router.routes)
    app.router.routes.extend(run_router.routes)

    @app.get("/")
    async def index(request: Request) -> dict[str, Any]:
        base = str(request.base_url).rstrip("/")
        return {"name": "noukai-dev", "baseUrl": f"{base}/api/v1",
                "hint": "POST /api/v1/seq/{org}/{project}/{slug}/execute with a Bearer key"}

    return app
