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

Batching, and why it never delays an event: frames decoded from data already
received leave together in one body message, sent the moment the reader
would wait for more upstream data. An event is never held for a later
upstream read, a timer or a size threshold; only a browser slower than the
upstream holds frames back, and then about `_Pump.MAX_BUFFER` bytes of JSON
(the reader pauses), so memory stays flat however long the stream. One body
message per event would be simpler but costs an ASGI send, an HTTP chunk and
a socket write per event: measured five times slower on a fast stream
(`benchmarks/bench_fastapi_passthrough.py`).
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
    BrowserFrameEncoder,
    EventPolicy,
    encode_comment,
    encode_event,
    upstream_error_response,
)
from noukai_fastapi._asgi import send_error_response

logger = logging.getLogger("noukai_fastapi")

DEFAULT_HEARTBEAT_INTERVAL = 15.0
HEARTBEAT = encode_comment()
# One default policy for every response given none: a policy is immutable
# but caches what it works out per event class, which a fresh one per
# response would work out again for every stream.
_DEFAULT_POLICY = EventPolicy()


class _Disconnected(Exception):
    """The browser went away; stop streaming and clean up."""


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
        # Response.__init__ is not called: with no body it would add
        # `content-length: 0`; a stream has no length (like StreamingResponse).
        self.events = events
        self.policy = policy or _DEFAULT_POLICY
        self.heartbeat_interval = heartbeat_interval
        self.status_code = 200
        self.background = None
        self.media_type = None
        self.init_headers({**SSE_HEADERS, **(headers or {})})

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await _Pump(self, receive, send).run()


class _Pump:
    """Moves events from the upstream iterator to the browser.

    Four tasks, so the per-event path is a plain `async for` plus the
    encoder's append (a task, a wait or an ASGI send per event would cost
    more than decoding the event did):

    - the *reader* turns upstream events into frames and appends them to a
      buffer, waking the writer; it is the only task that appends to it;
    - the *writer* sends whatever the buffer holds as one body message. The
      reader wakes it when the buffer turns non-empty, and it runs as soon
      as the reader waits for the network (before that read can complete),
      so a frame waits at most for the decoding of data already received.
      The buffer is bounded (`MAX_BUFFER`): a slow browser pauses the
      reader, so memory stays flat;
    - the *heartbeat* asks the writer for a comment after each quiet interval;
    - the *disconnect watcher* waits for `http.disconnect`.

    Only the writer sends, so frames never interleave. When the writer ends
    (stream done) or the watcher does (browser gone), the others are
    cancelled; cancelling the reader raises `CancelledError` inside the
    upstream iterator's pending read, which closes its HTTP stream, and
    `aclose()` then makes sure it is closed.
    """

    MAX_BUFFER = 64 * 1024

    def __init__(self, response: FlowEventsResponse, receive: Receive, send: Send) -> None:
        self.response = response
        self.receive = receive
        self.send = send
        self.buffer: list[bytes] = []  # frames (in pieces) the writer has yet to send
        self.beat = False  # a heartbeat is due
        self.ready = asyncio.Event()  # the writer has something to do
        self.room = asyncio.Event()  # the buffer is below MAX_BUFFER
        self.room.set()
        self.got_event = False  # upstream produced an event: the response may start
        self.ended = False  # the reader is done (end of stream or failure)
        self.failure: Exception | None = None
        self.started = False
        self.last_write = 0.0

    async def run(self) -> None:
        # Tasks inherit this context: the request's Noukai session stays
        # active inside the upstream reads.
        reader = asyncio.ensure_future(self._read())
        writer = asyncio.ensure_future(self._write())
        heartbeat = asyncio.ensure_future(self._heartbeat())
        watcher = asyncio.ensure_future(_wait_for_disconnect(self.receive))
        try:
            await asyncio.wait({writer, watcher}, return_when=asyncio.FIRST_COMPLETED)
            if not writer.done():
                logger.info("browser disconnected; closing the upstream flow stream")
        finally:
            await _cancel((heartbeat, watcher, writer, reader))
            await _close(self.response.events)
        if writer.done() and not writer.cancelled():
            exc = writer.exception()
            if exc is not None and not isinstance(exc, _Disconnected):
                raise exc

    async def _read(self) -> None:
        # The per-event path: one `encode_into`, which appends the frame's
        # pieces to the buffer, and one size check. The writer is woken only
        # by an event that finds the buffer empty; it runs as soon as this
        # task waits for the network, i.e. once the data already received
        # has been decoded. Only this task appends to the buffer, and the
        # writer only ever empties it whole, so an empty buffer means
        # "everything counted in `size` has been sent".
        encode_into = BrowserFrameEncoder(self.response.policy).encode_into
        buffer = self.buffer
        ready = self.ready
        limit = self.MAX_BUFFER
        size = 0  # JSON bytes in `buffer`
        try:
            async for event in self.response.events:
                if not buffer:
                    # also the response start's signal on the first event,
                    # even one the policy drops (the writer then sends nothing)
                    self.got_event = True
                    ready.set()
                    size = 0
                size += encode_into(event, buffer)
                if size >= limit:
                    self.room.clear()
                    await self.room.wait()
        except Exception as exc:  # reported to the browser by the writer
            self.failure = exc
        self.ended = True
        ready.set()

    async def _heartbeat(self) -> None:
        interval = self.response.heartbeat_interval
        loop = asyncio.get_running_loop()
        while True:
            quiet = loop.time() - self.last_write
            if self.started and quiet >= interval and not self.buffer:
                self.beat = True  # the writer sends it: only the writer sends
                self.ready.set()
                quiet = 0.0
            await asyncio.sleep(interval - quiet if 0.0 <= quiet < interval else interval)

    async def _write(self) -> None:
        while True:
            await self.ready.wait()
            self.ready.clear()
            if self.got_event and not self.started:
                await self._start()
            # A beat is cleared when it is consumed, never after a send: one
            # asked for during a slow send still goes out.
            if self.buffer:
                data = b"".join(self.buffer)
                self.buffer.clear()
                self.room.set()
                self.beat = False  # these frames keep the connection alive too
                await self._body(data)
            elif self.beat:
                self.beat = False
                await self._body(HEARTBEAT)
            if self.ended and not self.buffer:
                break
        if self.failure is not None:
            await self._fail(self.failure)
            return
        if not self.started:
            await self._start()
        await self._body(b"", more=False)

    async def _start(self) -> None:
        response = self.response
        message = {"type": "http.response.start", "status": response.status_code,
                   "headers": response.raw_headers}
        self.started = True
        try:
            await self.send(message)
        except OSError as exc:
            raise _Disconnected from exc
        self.last_write = asyncio.get_running_loop().time()

    async def _body(self, body: bytes, *, more: bool = True) -> None:
        try:
            await self.send({"type": "http.response.body", "body": body, "more_body": more})
        except OSError as exc:  # how an ASGI server reports a closed connection
            raise _Disconnected from exc
        self.last_write = asyncio.get_running_loop().time()

    async def _fail(self, exc: Exception) -> None:
        error = upstream_error_response(exc)
        logger.warning("noukai flow stream failed: %s (%s)", error.code, type(exc).__name__)
        if not self.started:
            self.started = True
            await send_error_response(self.send, error)
            return
        await self._body(encode_event("error", error.event_data()), more=False)


async def _wait_for_disconnect(receive: Receive) -> None:
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return


async def _cancel(tasks: tuple[asyncio.Future[Any], ...]) -> None:
    """Cancel the tasks still running and wait for all of them to finish unwinding.

    All are cancelled before any is waited for, so they unwind together (one
    wait, not one per task) and a cancellation of our own during the wait
    cannot leave one uncancelled. Waiting matters: the reader closes the
    upstream stream as it unwinds. `asyncio.wait` does not raise the tasks'
    `CancelledError`, which would look like our own cancellation.
    """
    pending = [task for task in tasks if not task.done()]
    for task in pending:
        task.cancel()
    if pending:
        await asyncio.wait(pending)
    for task in tasks:
        if not task.cancelled():
            task.exception()  # mark retrieved: no "never retrieved" warning


async def _close(events: AsyncIterator[Any]) -> None:
    aclose = getattr(events, "aclose", None)
    if aclose is None:
        return
    try:
        await aclose()
    except Exception:  # closing must never mask what happened before
        logger.debug("closing the flow event iterator failed", exc_info=True)
