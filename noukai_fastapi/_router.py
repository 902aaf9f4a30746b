"""`flow_stream_router`: the SSE passthrough as a FastAPI `APIRouter`.

The endpoints are the Starlette ones of `_passthrough`; this module only
registers them with FastAPI so they appear in the OpenAPI schema, with the
request body the browser may send and the `text/event-stream` response.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

from fastapi import APIRouter

from noukai_core import AsyncNoukai
from noukai_core.web import BrowserInputPolicy, EventPolicy
from noukai_fastapi._lifespan import ClientSource
from noukai_fastapi._passthrough import (
    SCRIPT_ROUTE,
    Authorize,
    PassthroughOptions,
    StreamedFlow,
    as_streamed_flows,
    make_endpoint,
    make_script_endpoint,
)
from noukai_fastapi._response import DEFAULT_HEARTBEAT_INTERVAL

_ERROR_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "error": {
            "type": "object",
            "properties": {"code": {"type": "string"}, "message": {"type": "string"}},
            "required": ["code", "message"],
        }
    },
}


def _body_schema(inputs: BrowserInputPolicy) -> dict[str, Any]:
    """The JSON schema of the body a browser may POST, derived from its policy."""
    properties: dict[str, Any] = {}
    if inputs.allow_message:
        properties["message"] = {"type": "string", "maxLength": inputs.max_message_chars}
    params: dict[str, Any] = {"type": "object"}
    if inputs.parameters != "*":
        params["properties"] = {name: {} for name in sorted(inputs.parameters)}
        params["additionalProperties"] = False
    properties["parameters"] = params
    if inputs.allow_version:
        properties["version"] = {"anyOf": [{"type": "string"}, {"type": "integer"}]}
    if inputs.allow_block_overrides:
        properties["block_overrides"] = {"type": "object"}
    if inputs.allow_tools:
        properties["tools"] = {"type": "array", "items": {"type": "object"}}
        properties["tool_choice"] = {}
    schema: dict[str, Any] = {
        "type": "object", "properties": properties, "additionalProperties": False,
    }
    if inputs.allow_message and inputs.require_message:
        schema["required"] = ["message"]
    return schema


_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {"description": "Server-Sent Events", "content": {"text/event-stream": {}}},
    401: {"description": "Refused by the authorize hook",
          "content": {"application/json": {"schema": _ERROR_SCHEMA}}},
    403: {"description": "Refused by the authorize hook",
          "content": {"application/json": {"schema": _ERROR_SCHEMA}}},
    422: {"description": "A field the browser may not set, or bad input",
          "content": {"application/json": {"schema": _ERROR_SCHEMA}}},
    429: {"description": "Rate limited (see Retry-After)"},
    502: {"description": "The flow could not be run"},
    504: {"description": "The flow did not answer in time"},
}


def _query_parameters(inputs: BrowserInputPolicy) -> list[dict[str, Any]]:
    """The query parameters of the GET form: `message`, then each allowed parameter."""
    params: list[dict[str, Any]] = []
    if inputs.allow_message:
        params.append({"name": "message", "in": "query", "required": inputs.require_message,
                       "schema": {"type": "string"}})
    if inputs.parameters != "*":
        params += [{"name": name, "in": "query", "required": False, "schema": {"type": "string"}}
                   for name in sorted(inputs.parameters)]
    return params


def _closing(clients: ClientSource) -> Callable[[Any], AbstractAsyncContextManager[None]]:
    """A router lifespan closing the client the routes built from the environment.

    FastAPI merges a router's lifespan into the app's when the router is
    included, so this runs at the app's shutdown whatever lifespan the app has.
    """

    @asynccontextmanager
    async def lifespan(app: Any) -> AsyncIterator[None]:
        try:
            yield
        finally:
            await clients.aclose_built()

    return lifespan


def flow_stream_router(
    flows: Iterable[str | StreamedFlow],
    *,
    client: AsyncNoukai | None = None,
    authorize: Authorize | None = None,
    inputs: BrowserInputPolicy | None = None,
    event_policy: EventPolicy | None = None,
    heartbeat_interval: float = DEFAULT_HEARTBEAT_INTERVAL,
    allow_get: bool = False,
    serve_script: bool = True,
    prefix: str = "",
    tags: Sequence[str] = ("noukai",),
) -> APIRouter:
    """An `APIRouter` streaming each allowlisted flow to browsers as SSE.

    - `flows`: the allowlist (slugs or `StreamedFlow`s); each gets
      `POST {prefix}/flows/{name}` with a JSON body (`message`, `parameters`);
    - `client`: default the `noukai_lifespan` client, else one built from the
      environment on first use and closed at the app's shutdown;
    - `authorize(request)`: sync or async; `False` / `PermissionError` gives
      403, a raised `HTTPException` its own status (401 / 403);
    - `inputs`: which request fields the browser may set (default: the message);
    - `event_policy`: which events and fields reach the browser;
    - `heartbeat_interval`: seconds of silence before a `: keepalive` comment;
    - `allow_get`: also `GET` (query parameters, for `EventSource`); off by
      default because any page can make a browser send a GET;
    - `serve_script`: serve the JavaScript module at `{prefix}/noukai-stream.js`.
    """
    inputs = inputs or BrowserInputPolicy()
    options = PassthroughOptions(
        client, authorize, inputs, event_policy or EventPolicy(), heartbeat_interval, allow_get
    )
    clients = ClientSource(client)
    router = APIRouter(prefix=prefix, tags=list(tags), lifespan=_closing(clients))
    for flow in as_streamed_flows(flows):
        flow_inputs = flow.inputs or inputs
        endpoint = make_endpoint(flow, options, clients)
        path = f"/flows/{flow.route_name}"
        router.add_api_route(
            path,
            endpoint,
            methods=["POST"],
            name=f"noukai_stream_{flow.route_name}",
            summary=f"Stream the events of flow {flow.route_name!r} (SSE)",
            openapi_extra={
                "requestBody": {
                    "required": True,
                    "content": {"application/json": {"schema": _body_schema(flow_inputs)}},
                }
            },
            responses={**_RESPONSES, 413: {"description": "The body is too large"},
                       415: {"description": "The body is not JSON"}},
        )
        if allow_get:
            router.add_api_route(
                path,
                endpoint,
                methods=["GET"],
                name=f"noukai_stream_{flow.route_name}_get",
                summary=f"Stream the events of flow {flow.route_name!r} (SSE, EventSource)",
                openapi_extra={"parameters": _query_parameters(flow_inputs)},
                responses={**_RESPONSES, 204: {
                    "description": "A reconnect (Last-Event-ID): the run is not restarted"}},
            )
    if serve_script:
        router.add_api_route(
            SCRIPT_ROUTE, make_script_endpoint(), methods=["GET"], include_in_schema=False,
            name="noukai_stream_script",
        )
    return router
