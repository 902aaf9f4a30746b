"""`NoukaiTraceMiddleware`: one Noukai session per HTTP request.

A pure ASGI middleware (never `BaseHTTPMiddleware`, which runs streamed
bodies in another task and would lose the session's context variable). For
each `http` request it opens a session scope that stays active until the
whole response has been sent, streamed bodies included, so every Noukai call
made while handling the request shares one `X-Session-Id`. The response gets
`X-Noukai-Session`. Websocket and lifespan scopes pass through untouched (the
same scope, every message unchanged, no session); the lifespan's shutdown is
only where a replay client the middleware built from the environment gets
closed. The body is never read or buffered.

Replay (only when `NOUKAI_REPLAY_ENABLED` is true): an `X-Noukai-Replay: <uuid>`
header makes the scope serve the calls from that recorded session. A replay
failure becomes a JSON error (status from `noukai_core.web`) while the
response has not started. In replay mode a single-message response is held
back until the handler and the scope have finished, so a leftover cassette
entry (detected at scope exit) is still a 409. Once a response has started,
an error ends it cleanly and is logged: there is never a second response start.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from noukai_core import (
    HEADER_REPLAY,
    HEADER_RESPONSE_SESSION,
    AsyncNoukai,
    NoukaiError,
    ReplayError,
    trace_scope,
    trace_scope_sync,
)
from noukai_core.web import (
    InvalidReplayHeader,
    replay_error_response,
    replay_session_id,
    upstream_error_response,
)
from noukai_fastapi._asgi import send_error_response
from noukai_fastapi._lifespan import ClientSource

logger = logging.getLogger("noukai_fastapi")

_SESSION_HEADER = HEADER_RESPONSE_SESSION.lower().encode("latin-1")


def _with_session_header(message: Message, header: tuple[bytes, bytes]) -> Message:
    """A copy of a response start carrying `header` (`X-Noukai-Session`).

    A copy, never an in-place edit: the headers list can belong to a
    response object the app reuses. An existing session header (set by the
    app, in any case, or by an outer copy of this middleware) is replaced,
    never doubled. One pass over the headers, which ASGI allows to be any
    iterable, a one-time iterator included.
    """
    headers = [item for item in message.get("headers", ()) if item[0].lower() != _SESSION_HEADER]
    headers.append(header)
    return {**message, "headers": headers}


_REPLAY_HEADER = HEADER_REPLAY.lower().encode("latin-1")


class NoukaiTraceMiddleware:
    """Group every Noukai call of a request under one session; honour gated replay.

    `client`: the client that fetches a replayed session. Optional: capture
    needs none, and for replay the middleware falls back to the client of
    `noukai_lifespan`, then to an `AsyncNoukai()` built from the environment
    on first use, which the middleware closes at the app's shutdown (when
    the server runs the lifespan protocol, as uvicorn and hypercorn do by
    default; with it turned off nothing tells the app it is shutting down).
    """

    def __init__(self, app: ASGIApp, *, client: AsyncNoukai | None = None) -> None:
        self.app = app
        self.clients = ClientSource(client)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            if scope["type"] == "lifespan":
                send = self._closing_at_shutdown(send)
            await self.app(scope, receive, send)
            return
        # Everything below runs on every request, so it is kept flat: one
        # scan of the headers, the scope's own `with`, one closure.
        for name, value in scope.get("headers", ()):
            if name == _REPLAY_HEADER:  # ASGI servers lowercase header names
                # The gate (an environment read) is only consulted when the
                # header is there.
                if await self._replay(scope, receive, send, bytes(value).decode("latin-1")):
                    return
                break
        # The common request: a fresh session, nothing held back, nothing to
        # map. Capture does no I/O, so the sync twin of the scope serves (the
        # same context variable) at a fraction of the async one's cost.
        with trace_scope_sync() as session:
            header = (_SESSION_HEADER, session.session_id.encode("latin-1"))

            def send_with_session(message: Message) -> Awaitable[None]:
                # A plain function returning the server's awaitable, not a
                # coroutine: every message would otherwise pay for one more
                # coroutine frame. Callers only ever `await send(message)`.
                if message["type"] == "http.response.start":
                    message = _with_session_header(message, header)
                return send(message)

            await self.app(scope, receive, send_with_session)

    async def _replay(self, scope: Scope, receive: Receive, send: Send, header: str) -> bool:
        """Answer a request carrying a replay header; False when it is to be ignored."""
        try:
            replay_id = replay_session_id(header)
        except InvalidReplayHeader as exc:
            await send_error_response(send, replay_error_response(exc))
            return True
        if replay_id is None:
            return False  # replay is off: the header is ignored
        await _RequestSession(self, scope, receive, send, replay_id).run()
        return True

    def _closing_at_shutdown(self, send: Send) -> Send:
        """`send` for the lifespan scope: close our own client before shutdown completes.

        Every message still reaches the server unchanged. The client is
        closed before the completion goes out because the server stops the
        event loop soon after it, which could cut a later close short.
        """

        async def send_closing(message: Message) -> None:
            if message["type"] in ("lifespan.shutdown.complete", "lifespan.shutdown.failed"):
                try:
                    await self.clients.aclose_built()
                except Exception:  # a failed close must not fail the app's shutdown
                    logger.warning("closing the noukai replay client failed", exc_info=True)
            await send(message)

        return send_closing


class _RequestSession:
    """One replayed request: its scope, and what has been sent or held so far."""

    def __init__(
        self,
        middleware: NoukaiTraceMiddleware,
        scope: Scope,
        receive: Receive,
        send: Send,
        replay_id: str,
    ) -> None:
        self.middleware = middleware
        self.scope = scope
        self.receive = receive
        self.send = send
        self.replay_id = replay_id
        self.session_id = replay_id
        self.started = False  # a response start has gone to the server
        self.finished = False  # the last body message has gone to the server
        self.held: list[Message] = []  # the start (+ a single body message) held back

    async def run(self) -> None:
        entered = False
        try:
            client = self.middleware.clients.get(self.scope)
            # The async scope fetches the recorded session at entry, so a bad
            # session is answered before the app runs.
            async with trace_scope(client=client, replay_session_id=self.replay_id) as scope:
                entered = True
                self.session_id = scope.session_id
                await self.middleware.app(self.scope, self.receive, self._send)
        except ReplayError as exc:
            await self._replay_failed(exc)
            return
        except NoukaiError as exc:
            if entered:
                raise  # the app's own error: the app (or the server) answers it
            # Building the replay client or fetching the session failed (a
            # missing key, an unreachable server): the app's setup, not the
            # caller's request, so a generic 502 / 504 with no details.
            error = upstream_error_response(exc)
            logger.warning("noukai replay could not start: %s (%s)", error.code,
                           type(exc).__name__)
            await send_error_response(self.send, error, {HEADER_RESPONSE_SESSION: self.replay_id})
            return
        for message in self.held:
            await self._forward(message)
        self.held.clear()

    async def _send(self, message: Message) -> None:
        kind = message["type"]
        if kind == "http.response.start":
            header = (_SESSION_HEADER, self.session_id.encode("latin-1"))
            self.held.append(_with_session_header(message, header))
            return
        elif self.held:
            if (
                kind == "http.response.body"
                and not message.get("more_body", False)
                and len(self.held) == 1
            ):
                self.held.append(message)
                return  # a single-message body: wait for the scope to exit cleanly
            # A streamed body (or a pathsend / trailers extension) cannot be
            # held without buffering it, so the response starts now.
            held, self.held = self.held, []
            for item in held:
                await self._forward(item)
        await self._forward(message)

    async def _forward(self, message: Message) -> None:
        if message["type"] == "http.response.start":
            self.started = True
        elif message["type"] == "http.response.body" and not message.get("more_body", False):
            self.finished = True
        await self.send(message)

    async def _replay_failed(self, exc: ReplayError) -> None:
        error = replay_error_response(exc)
        if not self.started:
            self.held.clear()
            await send_error_response(self.send, error, {HEADER_RESPONSE_SESSION: self.session_id})
            return
        logger.warning(
            "noukai replay failed after the response started (%s, session %s); "
            "ending the response",
            error.code,
            self.session_id,
        )
        if not self.finished:
            await self._forward({"type": "http.response.body", "body": b"", "more_body": False})
