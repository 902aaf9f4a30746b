"""`TransportBase`: every step of a transport that is neither sending nor sleeping.

`SyncTransport` and `AsyncTransport` differ only where bytes move or time
passes (`send`, `read`, `sleep`, `close`); what they make of a response (its
redaction, its log events, its error, the retry decision reported to
`retry_plan`) is written here once.
"""

from __future__ import annotations

from typing import Generic, TypeVar

import httpx

from noukai_core._errors import APIConnectionError, NoukaiError, error_from_response
from noukai_core._protocol._retry import Answered, Attempt, RetryPlan, RetryStep, Sleep
from noukai_core._protocol._wire import RawResponse, RequestSpec
from noukai_core._transport._common import (
    Logger,
    RequestBuilder,
    TransportSettings,
    classify,
    connection_error,
)
from noukai_core._transport._redact import Redactor

ClientT = TypeVar("ClientT", httpx.Client, httpx.AsyncClient)


class TransportBase(Generic[ClientT]):
    def __init__(self, settings: TransportSettings, client: ClientT, *, owns_client: bool) -> None:
        self.settings = settings
        self._owns_client = owns_client
        self._client: ClientT = client
        self._log = Logger(settings)
        self._builder = RequestBuilder(settings, client.headers)
        # Everything built from a response passes through it: no echoed key gets out.
        self._redact = Redactor(settings.api_key)

    def _attempt(self, spec: RequestSpec, step: RetryStep) -> int:
        """Start the attempt the plan asked for (it only asks for one after a sleep)."""
        assert isinstance(step, Attempt)
        if self._client.is_closed:
            # httpx would raise a bare RuntimeError; callers get a typed error.
            raise APIConnectionError(
                f"{spec.method} {spec.path} was not sent: the client is closed",
                code="CLIENT_CLOSED",
            )
        self._log.request(spec, step.number)
        return step.number

    def _retry_after_failure(
        self, plan: RetryPlan, spec: RequestSpec, attempt: int, exc: httpx.RequestError
    ) -> float:
        """Seconds to sleep before trying again; raises the typed error when the plan gives up."""
        step = plan.send(classify(exc))
        if not isinstance(step, Sleep):
            raise connection_error(exc, spec) from None
        self._log.retry(spec, attempt, step.seconds, None, None, type(exc).__name__)
        return step.seconds

    def _retry_after_status(
        self, plan: RetryPlan, spec: RequestSpec, attempt: int, response: httpx.Response
    ) -> float | None:
        """Seconds to sleep before trying again, or None: this error response stands."""
        headers = self._redact.headers(response.headers.items())
        step = plan.send(Answered(response.status_code, headers))
        if not isinstance(step, Sleep):
            return None
        self._log.status_retry(
            spec, attempt, step.seconds, response.status_code, headers.get("x-request-id")
        )
        return step.seconds

    def _raw(
        self, spec: RequestSpec, attempt: int, response: httpx.Response, content: bytes
    ) -> RawResponse:
        """A read response as the protocol sees it (redacted), logged."""
        raw = RawResponse(
            response.status_code,
            self._redact.headers(response.headers.items()),
            self._redact.content(content),
        )
        self._log.response(spec, attempt, raw.status_code, raw.request_id, raw.content)
        return raw

    def _stream_refused(
        self, spec: RequestSpec, attempt: int, response: httpx.Response, content: bytes
    ) -> NoukaiError:
        """The error for a stream answered with an error status (its body already read)."""
        raw = self._raw(spec, attempt, response, content)
        return error_from_response(raw.status_code, raw.headers, raw.content)

    def _stream_opened(
        self, spec: RequestSpec, attempt: int, response: httpx.Response
    ) -> str | None:
        """Log an accepted stream; its request id, for the errors of its chunks."""
        request_id = self._redact.headers(response.headers.items()).get("x-request-id") or None
        self._log.response(spec, attempt, response.status_code, request_id, None)
        return request_id
