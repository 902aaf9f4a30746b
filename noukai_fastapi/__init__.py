"""noukai_fastapi: Noukai for FastAPI and plain Starlette apps.

- `noukai_lifespan(...)`: one `AsyncNoukai` per app, opened at startup and
  closed at shutdown; composes with your own lifespan.
- `get_noukai` / `NoukaiDep` (FastAPI) and `noukai_client(request)` (Starlette):
  reach that client.
- `NoukaiTraceMiddleware`: one Noukai session per request (`X-Noukai-Session`),
  gated replay through `X-Noukai-Replay`.
- `flow_stream_router(...)` (FastAPI) / `flow_stream_routes(...)` (Starlette)
  and `flow_events_response(...)`: stream allowlisted flows to browsers as SSE.

The middleware, the Starlette routes and the lifespan need Starlette only;
`NoukaiDep` and `flow_stream_router` need FastAPI and are imported on first
use, so a Starlette-only app can import this package.
"""



try:
    import starlette  # noqa: F401
except ImportError as exc:  # pragma: no cover - exercised in a subprocess test
    raise ImportError(
        "noukai_fastapi needs Starlette (and FastAPI for its dependencies); "
        "install the extra: pip install 'noukai[fastapi]'"
    ) from exc

from noukai_fastapi._lifespan import (
    NoukaiNotConfiguredError,
    get_noukai,
    noukai_client,
    noukai_lifespan,
)
from noukai_fastapi._middleware import NoukaiTraceMiddleware
from noukai_fastapi._passthrough import StreamedFlow, flow_events_response, flow_stream_routes
from noukai_fastapi._response import FlowEventsResponse

_FASTAPI_ONLY = {
    "NoukaiDep": "noukai_fastapi._dependencies",
    "flow_stream_router": "noukai_fastapi._router",
}


def __getattr__(name: str) -> object:
    """Import the FastAPI-only names on first use, naming the extra if FastAPI is missing."""
    module_name = _FASTAPI_ONLY.get(name)
    if module_name is None:
        raise AttributeError(f"module 'noukai_fastapi' has no attribute {name!r}")
    import importlib

    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ImportError(
            f"noukai_fastapi.{name} needs FastAPI; install the extra: pip install 'noukai[fastapi]'"
        ) from exc
    value = getattr(module, name)
    globals()[name] = value
    return value


__all__ = [
    "FlowEventsResponse",
    "NoukaiDep",
    "NoukaiNotConfiguredError",
    "NoukaiTraceMiddleware",
    "StreamedFlow",
    "flow_events_response",
    "flow_stream_router",
    "flow_stream_routes",
    "get_noukai",
    "noukai_client",
    "noukai_lifespan",
]
