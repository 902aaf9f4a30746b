"""A decorator-style table of plain Starlette routes.

Handlers receive the request and the path parameters (plain strings) as
keyword arguments. Plain routes skip FastAPI's per-request parameter
machinery, which cost a noticeable share of a hello-world `/execute`; the
bodies are parsed and validated by `_requests` anyway, with the contract's
error codes.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

Handler = Callable[..., Awaitable[Response]]


class RouteTable:
    def __init__(self, prefix: str) -> None:
        self.prefix = prefix
        self.routes: list[Route] = []

    def get(self, path: str) -> Callable[[Handler], Handler]:
        return self._add(path, ["GET"])

    def post(self, path: str) -> Callable[[Handler], Handler]:
        return self._add(path, ["POST"])

    def _add(self, path: str, methods: list[str]) -> Callable[[Handler], Handler]:
        def decorator(handler: Handler) -> Handler:
            async def endpoint(request: Request) -> Response:
                params: dict[str, Any] = request.path_params
                return await handler(request, **params)

            self.routes.append(Route(self.prefix + path, endpoint, methods=methods))
            return handler

        return decorator
