"""The asyncio transport: the twin of `_sync.SyncTransport` over `httpx.AsyncClient`."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterable, AsyncIterator
from contextlib import asynccontextmanager

import httpx

from noukai_core._errors import NoukaiError
from noukai_core._protocol._retry import retry_plan
from noukai_core._protocol._wire import RawResponse, RequestSpec
from noukai_core._transport._base import TransportBase
from noukai_core._transport._common import (
    StreamBody,
    TransportSettings,
    connection_error,
    keeps_alive,
    limits,
    raw_body,
    stream_error,
)

# A conforming server has ended the body when its terminal frame arrives, or
# within a few milliseconds (its last chunk is a separate write).
END_OF_BODY_WAIT = 0.25


class AsyncTransport(TransportBase[httpx.AsyncClient]):
    """Use from one event loop at a time, like `httpx.AsyncClient`."""

    def __init__(
        self, settings: TransportSettings, http_client: httpx.AsyncClient | None = None
    ) -> None:
        client = http_client or httpx.AsyncClient(limits=limits(settings), timeout=settings.timeout)
        super().__init__(settings, client, owns_client=http_client is None)

    async def _open(self, spec: RequestSpec, *, stream: bool) -> tuple[httpx.Response, int]:
        """Send as `retry_plan` says; returns the accepted response (maybe an error status)."""
        plan = retry_plan(spec, self.settings.max_retries)
        attempt = self._attempt(spec, next(plan))
        while True:
            try:
                response = await self._client.send(self._builder.build(spec), stream=stream)
            except httpx.RequestError as exc:
                delay = self._retry_after_failure(plan, spec, attempt, exc)
            else:
                if response.status_code < 400:
                    return response, attempt
                retry_in = self._retry_after_status(plan, spec, attempt, response)
                if retry_in is None:
                    return response, attempt
                await response.aclose()
                delay = retry_in
            await asyncio.sleep(delay)
            attempt = self._attempt(spec, next(plan))

    async def send(self, spec: RequestSpec) -> RawResponse:
        response, attempt = await self._open(spec, stream=False)
        return self._raw(spec, attempt, response, response.content)

    @asynccontextmanager
    async def stream(self, spec: RequestSpec) -> AsyncIterator[StreamBody[AsyncIterator[bytes]]]:
        """Open a streamed response; yields its byte chunks; always closes it."""
        response, attempt = await self._open(spec, stream=True)
        try:
            if response.status_code >= 400:
                try:
                    content = await response.aread()
                except httpx.RequestError as exc:
                    raise connection_error(exc, spec) from None
                raise self._stream_refused(spec, attempt, response, content)
            request_id = self._stream_opened(spec, attempt, response)
            chunks = self._chunks(response, spec, request_id)
            yield StreamBody(chunks, request_id, reusable=keeps_alive(response))
        finally:
            await response.aclose()

    async def _chunks(
        self, response: httpx.Response, spec: RequestSpec, request_id: str | None
    ) -> AsyncIterator[bytes]:
        """The body's chunks as they arrive, redacted; transport failures typed.

        As in `SyncTransport._chunks`: the response's byte stream, or
        `aiter_bytes` when it would change something (see `raw_body`).
        """
        redact = self._redact.chunks()
        feed = redact.feed
        raw = raw_body(response)
        source: AsyncIterable[bytes] = (
            raw if isinstance(raw, httpx.AsyncByteStream) else response.aiter_bytes()
        )
        try:
            async for chunk in source:
                if out := feed(chunk):
                    yield out
        except httpx.RequestError as exc:
            raise stream_error(exc, spec, request_id) from None
        if tail := redact.flush():
            yield tail

    @staticmethod
    async def read_to_end(body: StreamBody[AsyncIterator[bytes]]) -> None:
        """After a terminal frame: read the body to its end, so its connection is reused.

        `SyncTransport.read_to_end`, with one difference: the wait is bounded
        by `END_OF_BODY_WAIT`, so even a server that breaks contract §6.4
        (holding a finished stream open and silent) cannot stall the caller;
        its connection is then dropped, as after a `break`.
        """

        if not body.reusable:
            return

        async def next_or_end() -> None:
            async for _ in body.chunks:
                return

        with contextlib.suppress(NoukaiError, asyncio.TimeoutError):
            await asyncio.wait_for(next_or_end(), END_OF_BODY_WAIT)

    async def aclose(self) -> None:
        if self._owns_client:
            await self._client.aclose()
