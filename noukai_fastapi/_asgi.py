"""Small ASGI writing helpers shared by the middleware and the passthrough."""

from __future__ import annotations

from starlette.types import Send

from noukai_core.web import ErrorResponse


async def send_error_response(
    send: Send, error: ErrorResponse, extra_headers: dict[str, str] | None = None
) -> None:
    """Send `error` as a complete JSON response (start + one body message)."""
    body = error.body()
    headers = {
        "content-type": "application/json",
        "content-length": str(len(body)),
        **{k.lower(): v for k, v in error.headers.items()},
        **{k.lower(): v for k, v in (extra_headers or {}).items()},
    }
    raw = [(k.encode("latin-1"), v.encode("latin-1")) for k, v in headers.items()]
    await send({"type": "http.response.start", "status": error.status, "headers": raw})
    await send({"type": "http.response.body", "body": body, "more_body": False})
