"""`FlowEventsResponse`: a flow's events, filtered, as an SSE response.

The response start waits for the first upstream event (or error), so an
error before the run begins is a real HTTP status with a JSON body instead
of a 200 followed by an error frame. After the start:

- each event passes the `EventPolicy` and is written as one SSE frame with
  an increasing `id:`; events the policy drops are not written at all;
- a comment heartbeat goes out after every `heartbeat_interval` of silence,
  so proxies and browsers keep an idle stream open;
- an upstream error becomes one final `error` event, then the stream ends;
- a browser disconnect (noticed on `receive` or as a failed `send`) cancels
  the pending read and closes the upstream iterator, which closes the HTTP
  stream to Noukai, so the run is cancelled there too.

Only one event is held at a time: memory stays flat however long the stream.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Mapping
from typing import Any

from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from noukai_core.web import (
    SSE_HEADERS,
    EventPolicy,
    encode_comment,
    encode_event,
    upstream_error_response,
)
from noukai_fastapi._asgi import send_error_response

logger = logging.getLogger("noukai_fastapi")

DEFAULT_HEARTBEAT_INTERVAL = 15.0


class _Disconnected(Exception):
    """The browser went away; stop streaming and clean up."""


def _event_dict(event: Any) -> tuple[str, dict[str, Any]]:
    """(event type, wire-shaped dict) for a typed event or an already-plain dict."""
    if isinstance(event, Mapping):
        data = dict(event)
        return str(data.get("eventType") or data.get("event_type") or "message"), data
    data = event.model_dump(mode="json", by_alias=True, exclude_none=True)
    return str(event.event_type), data


class FlowEventsResponse(Response):
    """Stream `events` (an async iterator of flow events) to the browser as SSE."""

    def __init__(
        self,
        events: AsyncIterator[Any],
        *,
        policy: EventPolicy | None = None,
        heartbeat_interval: float = DEFAULT_HEARTBEAT_INTERVAL,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        if heartbeat_interval <= 0:
            raise ValueError("heartbeat_interval must be positive")
        self.events = events
        self.policy = policy or EventPolicy()
        self.heartbeat_interval = heartbeat_interval
        self.status_code = 200
        self.background = None
        self.media_type = None
        self.init_headers({**SSE_HEADERS, **(headers or {})})

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await _Pump(self, receive, send).run()


_END = object()  # the upstream iterator is exhausted
_IDLE = object()  # nothing arrived within the heartbeat interval


class _Pump:
    """Moves events from the upstream iterator to the browser, one at a time."""

    def __init__(self, response: FlowEventsResponse, receive: Receive, send: Send) -> None:
        self.response = response
        self.receive = receive
        self.send = send
        self.started = False
        self.pending: asyncio.Future[Any] | None = None
        self.disconnect: asyncio.Future[None] | None = None

    async def run(self) -> None:
        # The read of the next event runs as a task (it inherits this context,
        # so the request's Noukai session is active inside it) and is awaited
        # together with the disconnect watcher; a heartbeat timeout never
        # cancels it, because cancelling an async generator's `__anext__`
        # would end the stream.
        self.disconnect = asyncio.ensure_future(_wait_for_disconnect(self.receive))
        try:
            await self._stream()
        except _Disconnected:
            logger.info("browser disconnected; closing the upstream flow stream")
        finally:
            self.disconnect.cancel()
            if self.pending is not None:
                await _cancel(self.pending)
            await _close(self.response.events)

    async def _next(self) -> Any:
        """The next event, `_END`, `_IDLE`, or the upstream exception (returned)."""
        assert self.disconnect is not None
        if self.pending is None:
            self.pending = asyncio.ensure_future(anext(self.response.events))
        timeout = self.response.heartbeat_interval if self.started else None
        done, _ = await asyncio.wait(
            {self.disconnect, self.pending}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED
        )
        if self.disconnect in done:
            raise _Disconnected
        if self.pending not in done:
            return _IDLE
        finished, self.pending = self.pending, None
        exc = finished.exception()
        if isinstance(exc, StopAsyncIteration):
            return _END
        if exc is not None:
            return exc
        return finished.result()

    async def _start(self) -> None:
        if not self.started:
            self.started = True
            response = self.response
            await self.send(
                {"type": "http.response.start", "status": response.status_code,
                 "headers": response.raw_headers}
            )

    async def _body(self, body: bytes, *, more: bool = True) -> None:
        try:
            await self.send({"type": "http.response.body", "body": body, "more_body": more})
        except OSError as exc:  # how an ASGI server reports a closed connection
            raise _Disconnected from exc

    async def _stream(self) -> None:
        event_id = 0
        while True:
            item = await self._next()
            if item is _END:
                break
            if item is _IDLE:
                await self._body(encode_comment())
                continue
            if isinstance(item, BaseException):
                await self._fail(item)
                return
            await self._start()
            event_type, data = _event_dict(item)
            visible = self.response.policy.apply(event_type, data)
            if visible is not None:
                event_id += 1
                await self._body(encode_event(event_type, visible, event_id=event_id))
        await self._start()
        await self._body(b"", more=False)

    async def _fail(self, exc: BaseException) -> None:
        if isinstance(exc, asyncio.CancelledError):
            raise exc
        error = upstream_error_response(exc)
        logger.warning("noukai flow stream failed: %s (%s)", error.code, type(exc).__name__)
        if not self.started:
            await send_error_response(self.send, error)
            return
        await self._body(encode_event("error", error.event_data()), more=False)


async def _wait_for_disconnect(receive: Receive) -> None:
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return


async def _cancel(task: asyncio.Future[Any]) -> None:
    if task.done():
        if not task.cancelled():
            task.exception()  # mark retrieved: no "never retrieved" warning
        return
    task.cancel()
    # Wait for it to finish unwinding (the upstream stream closes in there)
    # without letting its CancelledError look like our own cancellation.
    await asyncio.wait({task})
    if not task.cancelled():
        task.exception()


async def _close(events: AsyncIterator[Any]) -> None:
    aclose = getattr(events, "aclose", None)
    if aclose is None:
        return
    try:
        await aclose()
    except Exception:  # closing must never mask what happened before
        logger.debug("closing the flow event iterator failed", exc_info=True)
