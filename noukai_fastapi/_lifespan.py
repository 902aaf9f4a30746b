"""One `AsyncNoukai` per application: built at startup, closed at shutdown.

`noukai_lifespan(...)` wraps (composes with) the app's own lifespan. The
client is published twice, for the two ways code reaches it:

- in the lifespan *state* (`scope["state"]["noukai"]`, i.e. `request.state.noukai`),
  which Starlette copies into every request, including mounted sub-apps;
- on `app.state.noukai`, for code that has the app but no request.

`noukai_client(request)` (plain Starlette) and the `get_noukai` dependency
(FastAPI) read it back, and fail with a message that names the missing
setup step instead of an `AttributeError`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

from starlette.requests import HTTPConnection
from starlette.types import Scope

from noukai_core import AsyncNoukai

STATE_KEY = "noukai"

AppLifespan = Callable[[Any], AbstractAsyncContextManager[Mapping[str, Any] | None]]

_MISSING_SETUP = (
    "No Noukai client is set up for this app. Pass the lifespan helper to the app: "
    "FastAPI(lifespan=noukai_lifespan()) or Starlette(lifespan=noukai_lifespan()); "
    "to keep your own lifespan, wrap it: noukai_lifespan(your_lifespan)."
)


class NoukaiNotConfiguredError(RuntimeError):
    """The app asked for its Noukai client, but `noukai_lifespan` was not installed."""


def noukai_lifespan(
    app_lifespan: AppLifespan | None = None,
    *,
    client: AsyncNoukai | None = None,
    **client_options: Any,
) -> Callable[[Any], AbstractAsyncContextManager[dict[str, Any]]]:
    """A lifespan that opens one `AsyncNoukai` for the app and closes it at shutdown.

    `client_options` go to `AsyncNoukai(...)` (omitted ones come from the
    environment: `NOUKAI_API_KEY`, `NOUKAI_BASE_URL`, ...). A `client=` you
    pass is used as is and left open: whoever created it closes it.
    `app_lifespan` (your own lifespan) runs inside, so it can already use the
    client, and its state is merged with ours.
    """
    if client is not None and client_options:
        raise TypeError("pass either client= or AsyncNoukai options, not both")

    @asynccontextmanager
    async def lifespan(app: Any) -> AsyncIterator[dict[str, Any]]:
        noukai = client if client is not None else AsyncNoukai(**client_options)
        app.state.noukai = noukai
        try:
            if app_lifespan is None:
                yield {STATE_KEY: noukai}
            else:
                async with app_lifespan(app) as inner_state:
                    yield {**(inner_state or {}), STATE_KEY: noukai}
        finally:
            if client is None:
                await noukai.aclose()

    return lifespan


def client_from_scope(scope: Scope) -> AsyncNoukai | None:
    """The lifespan's client for a request, or `None` when there is none."""
    state = scope.get("state")
    if isinstance(state, Mapping):
        candidate = state.get(STATE_KEY)
        if isinstance(candidate, AsyncNoukai):
            return candidate
    app = scope.get("app")
    found = getattr(getattr(app, "state", None), STATE_KEY, None)
    return found if isinstance(found, AsyncNoukai) else None


class ClientSource:
    """Where the middleware and the passthrough routes get their client.

    An explicit `client=` first, else the `noukai_lifespan` client of the
    request's app, else one `AsyncNoukai()` built from the environment on
    first use. Only that last one is ours to close: `aclose_built()` closes
    it at the app's shutdown (the middleware and the FastAPI router call it;
    plain Starlette routes have no shutdown hook, so there it lives as long
    as the process). After it, the next use builds a fresh client, so an app
    served again (a second `TestClient` block) still works.
    """

    def __init__(self, client: AsyncNoukai | None) -> None:
        self.client = client
        self._from_env: AsyncNoukai | None = None

    async def aclose_built(self) -> None:
        """Close the client built from the environment, if one was built."""
        built, self._from_env = self._from_env, None
        if built is not None:
            await built.aclose()

    def get(self, scope: Scope) -> AsyncNoukai:
        if self.client is not None:
            return self.client
        found = client_from_scope(scope)
        if found is not None:
            return found
        if self._from_env is None:
            self._from_env = AsyncNoukai()
        return self._from_env


def noukai_client(connection: HTTPConnection) -> AsyncNoukai:
    """The app's `AsyncNoukai`, from a Starlette `Request` (or websocket).

    Raises `NoukaiNotConfiguredError` when `noukai_lifespan` is not installed.
    """
    found = client_from_scope(connection.scope)
    if found is None:
        raise NoukaiNotConfiguredError(_MISSING_SETUP)
    return found


async def get_noukai(request: HTTPConnection) -> AsyncNoukai:
    """FastAPI dependency: `Depends(get_noukai)`, or `NoukaiDep` as a parameter type.

    Override it in tests with `app.dependency_overrides[get_noukai] = ...`.
    An `async def`, so FastAPI calls it on the event loop, not in a thread.
    """
    return noukai_client(request)
