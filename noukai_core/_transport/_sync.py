"""The blocking transport: retries, timeouts, headers and logging over `httpx.Client`."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager

import httpx

from noukai_core._errors import error_from_response
from noukai_core._protocol._retry import Answered, Attempt, Sleep, retry_plan
from noukai_core._protocol._wire import RawResponse, RequestSpec
from noukai_core._transport._common import (
    Logger,
    RequestBuilder,
    StreamBody,
    TransportSettings,
    classify,
    connection_error,
    limits,
    stream_error,
)
from noukai_core._transport._redact import Redactor


class SyncTransport:
    """Safe to share across threads: `httpx.Client` is, and nothing here mutates."""

    def __init__(
        self, settings: TransportSettings, http_client: httpx.Client | None = None
    ) -> None:
        self.settings = settings
        self._owns_client = http_client is None
        self._client = http_client or httpx.Client(
            limits=limits(settings), timeout=settings.timeout
        )
        self._log = Logger(settings)
        self._builder = RequestBuilder(settings, self._client.headers)
        # Everything built from a response passes through it: no echoed key gets out.
        self._redact = Redactor(settings.api_key)

    def _open(self, spec: RequestSpec, *, stream: bool) -> tuple[httpx.Response, int]:
        """Send as `retry_plan` says; returns the accepted response (maybe an error status)."""
        plan = retry_plan(spec, self.settings.max_retries)
        step = next(plan)
        while True:
            assert isinstance(step, Attempt)
            attempt = step.number
            self._log.request(spec, attempt)
            try:
                response = self._client.send(self._builder.build(spec), stream=stream)
            except httpx.TransportError as exc:
                step = plan.send(classify(exc))
                if not isinstance(step, Sleep):
                    raise connection_error(exc, spec) from None
                self._log.retry(spec, attempt, step.seconds, None, None, type(exc).__name__)
            else:
                if response.status_code < 400:
                    return response, attempt
                headers = self._redact.headers(response.headers.items())
                step = plan.send(Answered(response.status_code, headers))
                if not isinstance(step, Sleep):
                    return response, attempt
                response.close()
                self._log.status_retry(
                    spec, attempt, step.seconds, response.status_code, headers.get("x-request-id")
                )
            time.sleep(step.seconds)
            step = next(plan)

    def send(self, spec: RequestSpec) -> RawResponse:
        response, attempt = self._open(spec, stream=False)
        raw = RawResponse(
            response.status_code,
            self._redact.headers(response.headers.items()),
            self._redact.content(response.content),
        )
        self._log.response(spec, attempt, raw.status_code, raw.request_id, raw.content)
        return raw

    @contextmanager
    def stream(self, spec: RequestSpec) -> Iterator[StreamBody[Iterator[bytes]]]:
        """Open a streamed response; yields its byte chunks; always closes it."""
        response, attempt = self._open(spec, stream=True)
        try:
            headers = self._redact.headers(response.headers.items())
            if response.status_code >= 400:
                try:
                    content = self._redact.content(response.read())
                except httpx.TransportError as exc:
                    raise connection_error(exc, spec) from None
                self._log.response(
                    spec, attempt, response.status_code, headers.get("x-request-id"), content
                )
                raise error_from_response(response.status_code, headers, content)
            self._log.response(
                spec, attempt, response.status_code, headers.get("x-request-id"), None
            )
            request_id = headers.get("x-request-id") or None
            yield StreamBody(self._chunks(response, spec, request_id), request_id)
        finally:
            response.close()

    def _chunks(
        self, response: httpx.Response, spec: RequestSpec, request_id: str | None
    ) -> Iterator[bytes]:
        redact = self._redact.chunks()
        try:
            for chunk in response.iter_bytes():
                if out := redact.feed(chunk):
                    yield out
        except httpx.TransportError as exc:
            raise stream_error(exc, spec, request_id) from None
        if tail := redact.flush():
            yield tail

    def close(self) -> None:
        if self._owns_client:
            self._client.close()
