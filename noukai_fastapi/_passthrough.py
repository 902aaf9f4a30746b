"""SSE passthrough endpoints, framework-level but FastAPI-free.

`flow_stream_routes(...)` builds plain Starlette routes; the FastAPI router
(`flow_stream_router`) registers the same endpoint functions, so both
frameworks share one implementation. Per request an endpoint:

1. (GET only) answers 204 to an `EventSource` reconnect (`Last-Event-ID`),
   which would otherwise start a second run;
2. (POST only) refuses anything but a JSON body with 415, which keeps
   cross-site HTML form posts (which cannot send `application/json`) out;
3. runs the `authorize` hook (sync or async): `False` or `PermissionError`
   is 403, a raised `HTTPException` keeps its status (401 / 403);
4. reads the body up to the policy's `max_body_bytes` (413 past it), and turns
   it (or the query) into `events()` arguments through the
   `BrowserInputPolicy`: a field the browser may not set is a 422;
5. streams the allowlisted flow's events through `FlowEventsResponse`.

A browser can only reach flows listed when the routes are built: the flow
is fixed per route, never taken from the request.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from noukai_core import AsyncFlow, AsyncNoukai
from noukai_core.web import (
    STREAM_SCRIPT_PATH,
    BrowserInputError,
    BrowserInputPolicy,
    ErrorResponse,
    EventPolicy,
    is_json_media_type,
    upstream_error_response,
)
from noukai_fastapi._lifespan import ClientSource
from noukai_fastapi._response import DEFAULT_HEARTBEAT_INTERVAL, FlowEventsResponse

logger = logging.getLogger("noukai_fastapi")

Authorize = Callable[[Request], "bool | Awaitable[bool | None] | None"]
ToolHandler = Callable[[list[dict[str, Any]]], Any]

SCRIPT_ROUTE = "/noukai-stream.js"


@dataclass(frozen=True)
class StreamedFlow:
    """One allowlisted flow and how a browser may start it.

    `slug`: the flow identifier for `client.flow()` (short or `org/project/slug`).
    `name`: the URL segment (default: the slug's last part). `inputs` and
    `event_policy` override the router's. `parameters` are fixed server-side
    values merged over the browser's (the server wins). `tools` and
    `tool_handler` resolve tool calls in the app, so the stream continues.
    """

    slug: str
    name: str | None = None
    inputs: BrowserInputPolicy | None = None
    event_policy: EventPolicy | None = None
    parameters: Mapping[str, Any] = field(default_factory=dict)
    tools: Sequence[Mapping[str, Any]] | None = None
    tool_handler: ToolHandler | None = None

    @property
    def route_name(self) -> str:
        return self.name or self.slug.rsplit("/", 1)[-1]


@dataclass(frozen=True)
class PassthroughOptions:
    """Router-wide settings (see `flow_stream_router`)."""

    client: AsyncNoukai | None = None
    authorize: Authorize | None = None
    inputs: BrowserInputPolicy = field(default_factory=BrowserInputPolicy)
    event_policy: EventPolicy = field(default_factory=EventPolicy)
    heartbeat_interval: float = DEFAULT_HEARTBEAT_INTERVAL
    allow_get: bool = False


def as_streamed_flows(flows: Iterable[str | StreamedFlow]) -> list[StreamedFlow]:
    result = [f if isinstance(f, StreamedFlow) else StreamedFlow(f) for f in flows]
    names = [f.route_name for f in result]
    if len(set(names)) != len(names):
        raise ValueError(f"two streamed flows share a route name: {names}")
    if not result:
        raise ValueError("flow_stream_router needs at least one flow (an explicit allowlist)")
    return result


def flow_events_response(
    flow: AsyncFlow,
    *,
    policy: EventPolicy | None = None,
    heartbeat_interval: float = DEFAULT_HEARTBEAT_INTERVAL,
    headers: Mapping[str, str] | None = None,
    **events_kwargs: Any,
) -> FlowEventsResponse:
    """Stream `flow.events(**events_kwargs)` as SSE from any route of yours.

    The same streaming as the router's endpoints (event policy, heartbeats,
    status mapping, disconnect handling), without its request parsing: the
    caller decides the arguments, so never pass browser input unchecked.
    `run_remaining` defaults to true: the whole run streams over one
    connection, so a browser disconnect during any block cancels the run
    (step by step, a disconnect between two blocks would leave it paused).
    """
    events_kwargs.setdefault("run_remaining", True)
    return FlowEventsResponse(
        flow.events(**events_kwargs),
        policy=policy,
        heartbeat_interval=heartbeat_interval,
        headers=headers,
    )


def error_response(error: ErrorResponse) -> Response:
    return Response(error.body(), status_code=error.status, headers=error.headers,
                    media_type="application/json")


def _client_error(status: int, code: str, message: str) -> Response:
    return error_response(ErrorResponse(status, code, message))


async def _authorize(hook: Authorize | None, request: Request) -> Response | None:
    if hook is None:
        return None
    try:
        verdict = hook(request)
        if inspect.isawaitable(verdict):
            verdict = await verdict
    except HTTPException as exc:
        code = {401: "UNAUTHORIZED", 403: "FORBIDDEN"}.get(exc.status_code, "REFUSED")
        message = exc.detail if isinstance(exc.detail, str) else "Not allowed."
        error = ErrorResponse(exc.status_code, code, message, dict(exc.headers or {}))
        return error_response(error)
    except PermissionError:
        return _client_error(403, "FORBIDDEN", "Not allowed.")
    if verdict is False:
        return _client_error(403, "FORBIDDEN", "Not allowed.")
    return None


async def _read_capped(request: Request, limit: int) -> bytes | None:
    """The request body, or `None` as soon as it grows past `limit` bytes."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        return None
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
    return b"".join(chunks)


def make_endpoint(
    flow: StreamedFlow, options: PassthroughOptions, clients: ClientSource
) -> Callable[[Request], Awaitable[Response]]:
    """The endpoint function for one flow (POST, and GET when enabled)."""
    inputs = flow.inputs or options.inputs
    policy = flow.event_policy or options.event_policy

    async def endpoint(request: Request) -> Response:
        if request.method == "GET":
            if "last-event-id" in request.headers:
                # EventSource reconnects on its own after a stream ends; a run
                # is not resumable, and starting a second one would double-charge.
                return Response(status_code=204)
        elif not is_json_media_type(request.headers.get("content-type")):
            return _client_error(415, "UNSUPPORTED_MEDIA_TYPE", "Send a JSON body.")
        denied = await _authorize(options.authorize, request)
        if denied is not None:
            return denied
        try:
            if request.method == "GET":
                kwargs = inputs.parse_query(dict(request.query_params))
            else:
                body = await _read_capped(request, inputs.max_body_bytes)
                if body is None:
                    return _client_error(413, "BODY_TOO_LARGE", "The request body is too large.")
                kwargs = inputs.parse_json(body)
        except BrowserInputError as exc:
            return error_response(upstream_error_response(exc))
        kwargs["parameters"] = {**kwargs.get("parameters", {}), **flow.parameters}
        if flow.tools is not None:
            kwargs["tools"] = [dict(tool) for tool in flow.tools]
        if flow.tool_handler is not None:
            kwargs["tool_handler"] = flow.tool_handler
        try:
            target = clients.get(request.scope).flow(flow.slug)
        except Exception as exc:  # a misconfigured client or slug: the app's problem
            logger.error("noukai passthrough for %r is misconfigured: %s", flow.slug, exc)
            return error_response(upstream_error_response(exc))
        return flow_events_response(
            target, policy=policy, heartbeat_interval=options.heartbeat_interval, **kwargs
        )

    endpoint.__name__ = f"stream_{flow.route_name.replace('-', '_').replace('.', '_')}"
    return endpoint


def make_script_endpoint() -> Callable[[Request], Awaitable[Response]]:
    """An endpoint serving the JavaScript client module (`noukai-stream.js`).

    The file is read once, here, so serving it never blocks the event loop.
    """
    source = STREAM_SCRIPT_PATH.read_bytes()

    async def stream_script(request: Request) -> Response:
        return Response(source, media_type="text/javascript",
                        headers={"Cache-Control": "no-cache"})

    return stream_script


def flow_stream_routes(
    flows: Iterable[str | StreamedFlow],
    *,
    client: AsyncNoukai | None = None,
    authorize: Authorize | None = None,
    inputs: BrowserInputPolicy | None = None,
    event_policy: EventPolicy | None = None,
    heartbeat_interval: float = DEFAULT_HEARTBEAT_INTERVAL,
    allow_get: bool = False,
    serve_script: bool = True,
) -> list[BaseRoute]:
    """Starlette routes streaming the allowlisted `flows` (mount them under a prefix).

    Each flow gets `POST /flows/{name}` (and `GET` when `allow_get`), and the
    JavaScript module is served at `/noukai-stream.js` unless `serve_script`
    is false. The options are those of `flow_stream_router`, with one
    difference: routes have no shutdown hook, so a client they build from
    the environment (no `client=`, no `noukai_lifespan`) is never closed;
    give the app `noukai_lifespan` (or pass `client=`) to have it closed.
    """
    options = PassthroughOptions(
        client, authorize, inputs or BrowserInputPolicy(), event_policy or EventPolicy(),
        heartbeat_interval, allow_get,
    )
    clients = ClientSource(client)
    methods = ["POST", "GET"] if allow_get else ["POST"]
    routes: list[BaseRoute] = [
        Route(f"/flows/{flow.route_name}", make_endpoint(flow, options, clients), methods=methods)
        for flow in as_streamed_flows(flows)
    ]
    if serve_script:
        routes.append(Route(SCRIPT_ROUTE, make_script_endpoint(), methods=["GET"]))
    return routes
