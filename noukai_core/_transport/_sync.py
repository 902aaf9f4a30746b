"""The blocking transport: retries, timeouts, headers and logging over `httpx.Client`."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager

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


class SyncTransport(TransportBase[httpx.Client]):
    """Safe to share across threads: `httpx.Client` is, and nothing here mutates."""

    def __init__(
        self, settings: TransportSettings, http_client: httpx.Client | None = None
    ) -> None:
        client = http_client or httpx.Client(limits=limits(settings), timeout=settings.timeout)
        super().__init__(settings, client, owns_client=http_client is None)

    def _open(self, spec: RequestSpec, *, stream: bool) -> tuple[httpx.Response, int]:
        """Send as `retry_plan` says; returns the accepted response (maybe an error status)."""
        plan = retry_plan(spec, self.settings.max_retries)
        attempt = self._attempt(spec, next(plan))
        while True:
            try:
                response = self._client.send(self._builder.build(spec), stream=stream)
            except httpx.RequestError as exc:
                delay = self._retry_after_failure(plan, spec, attempt, exc)
            else:
                if response.status_code < 400:
                    return response, attempt
                retry_in = self._retry_after_status(plan, spec, attempt, response)
                if retry_in is None:
                    return response, attempt
                response.close()
                delay = retry_in
            time.sleep(delay)
            attempt = self._attempt(spec, next(plan))

    def send(self, spec: RequestSpec) -> RawResponse:
        response, attempt = self._open(spec, stream=False)
        return self._raw(spec, attempt, response, response.content)

    @contextmanager
    def stream(self, spec: RequestSpec) -> Iterator[StreamBody[Iterator[bytes]]]:
        """Open a streamed response; yields its byte chunks; always closes it."""
        response, attempt = self._open(spec, stream=True)
        try:
            if response.status_code >= 400:
                try:
                    content = response.read()
                except httpx.RequestError as exc:
                    raise connection_error(exc, spec) from None
                raise self._stream_refused(spec, attempt, response, content)
            request_id = self._stream_opened(spec, attempt, response)
            chunks = self._chunks(response, spec, request_id)
            yield StreamBody(chunks, request_id, reusable=keeps_alive(response))
        finally:
            response.close()

    def _chunks(
        self, response: httpx.Response, spec: RequestSpec, request_id: str | None
    ) -> Iterator[bytes]:
        """The body's chunks as they arrive, redacted; transport failures typed.

        Runs once per event (servers send a chunk per event), so it reads the
        fewest layers that keep httpx's behaviour: the response's own byte
        stream, which is what `iter_bytes` would pass on unchanged, minus two
        generator layers per chunk; `iter_bytes` itself when it would change
        something (see `raw_body`).
        """
        redact = self._redact.chunks()
        feed = redact.feed
        raw = raw_body(response)
        source: Iterable[bytes] = (
            raw if isinstance(raw, httpx.SyncByteStream) else response.iter_bytes()
        )
        try:
            for chunk in source:
                if out := feed(chunk):
                    yield out
        except httpx.RequestError as exc:
            raise stream_error(exc, spec, request_id) from None
        if tail := redact.flush():
            yield tail

    @staticmethod
    def read_to_end(body: StreamBody[Iterator[bytes]]) -> None:
        """After a terminal frame: read the body to its end, so its connection is reused.

        The server ends the body right after such a frame (contract §6.4), so
        this reads at most the chunked body's last bytes. It takes at most one
        more item: any data after the terminal frame means the body is not
        ending, and the caller closes the stream instead, as after a `break`.
        A failure here is no failure of the run (its last event was read):
        the connection is dropped and nothing is raised. A connection that
        cannot be reused (`Connection: close`) is not waited on at all.

        Unlike `AsyncTransport.read_to_end`, this wait is not bounded below the
        read timeout: a blocking read cannot be given a shorter deadline through
        httpx's API. Only a server that breaks §6.4 (holding a finished stream
        open and silent) makes it wait.
        """
        if not body.reusable:
            return
        with contextlib.suppress(NoukaiError):
            for _ in body.chunks:
                return

    def close(self) -> None:
        if self._owns_client:
            self._client.close()
