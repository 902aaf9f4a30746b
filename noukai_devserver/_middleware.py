"""Outermost ASGI middleware: request ids, the access log, and last-resort errors.

- Every response gets `X-Request-ID`: the client's value when it is sane
  (printable, at most 128 characters), else `req_` + 24 hex characters.
- One access-log line per request: method, path, status, duration, request id.
  Never headers, never bodies (so never a key).
- An exception that escapes the app becomes a 500 `INTERNAL_ERROR` envelope if
  the response has not started; it is logged as one line, without traceback.
"""

from __future__ import annotations

import json
import logging
import random
import re
import time
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

access_log = logging.getLogger("noukai_devserver.access")
error_log = logging.getLogger("noukai_devserver")
_SANE_ID = re.compile(r"^[\x21-\x7e]{1,128}$")
_random = random.Random(random.SystemRandom().getrandbits(128))


def _new_request_id() -> str:
    """`req_` + 24 hex characters; unique, not secret (no `os.urandom` per request)."""
    return f"req_{_random.getrandbits(96):024x}"


class RequestContextMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        supplied = ""
        for name, value in scope.get("headers", []):
            if name == b"x-request-id":
                supplied = value.decode("latin-1")
        request_id = supplied if _SANE_ID.match(supplied) else _new_request_id()
        scope.setdefault("state", {})["request_id"] = request_id
        started = time.perf_counter()
        status: dict[str, Any] = {"code": 0, "started": False}

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
                status["started"] = True
                headers = [(k, v) for k, v in message.get("headers", [])
                           if k.lower() != b"x-request-id"]
                headers.append((b"x-request-id", request_id.encode("latin-1")))
                message = {**message, "headers": headers}
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        except Exception as exc:
            error_log.error("unhandled %s on %s %s (request %s)", type(exc).__name__,
                            scope.get("method"), scope.get("path"), request_id)
            if not status["started"]:
                body = json.dumps({"detail": {"code": "INTERNAL_ERROR",
                                              "message": "internal server error"}}).encode()
                await send_with_id({"type": "http.response.start", "status": 500,
                                    "headers": [(b"content-type", b"application/json"),
                                                (b"content-length", str(len(body)).encode())]})
                await send_with_id({"type": "http.response.body", "body": body})
        finally:
            access_log.info('%s %s %s %.1fms %s', scope.get("method"), scope.get("path"),
                            status["code"] or 500, (time.perf_counter() - started) * 1000,
                            request_id)
