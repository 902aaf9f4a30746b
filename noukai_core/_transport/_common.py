"""What the sync and async transports share: headers, URLs, logging, error translation."""

from __future__ import annotations

import json
import logging
import platform
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import httpx

from noukai_core._constants import (
    API_VERSION,
    DEFAULT_MAX_CONNECTIONS,
    DEFAULT_MAX_KEEPALIVE,
    HEADER_IDEMPOTENCY_KEY,
)
from noukai_core._errors import APIConnectionError, APITimeoutError, NoukaiError
from noukai_core._protocol._retry import Failure
from noukai_core._protocol._wire import RequestSpec
from noukai_core._version import __version__

_stdlib_logger = logging.getLogger("noukai_core")

LogHandler = Callable[[dict[str, Any]], None]

USER_AGENT = (
    f"noukai-python/{__version__} (httpx/{httpx.__version__}; "
    f"python/{platform.python_version()}; {platform.system() or 'unknown'})"
)


@dataclass(frozen=True)
class TransportSettings:
    base_url: str
    api_key: str
    timeout: float
    max_retries: int
    log_handler: LogHandler | None = None
    log_payloads: bool = False
    max_connections: int | None = DEFAULT_MAX_CONNECTIONS

    def __repr__(self) -> str:
        # The key never appears in a repr (issue 5 item 10).
        return f"TransportSettings(base_url={self.base_url!r}, timeout={self.timeout!r})"


def limits(settings: TransportSettings) -> httpx.Limits:
    return httpx.Limits(
        max_connections=settings.max_connections,
        max_keepalive_connections=DEFAULT_MAX_KEEPALIVE,
    )


class RequestBuilder:
    """Turns a `RequestSpec` into an `httpx.Request`, doing the per-client work once.

    The static headers (key, API version, User-Agent, Accept, and those of a
    caller-supplied client) and the default timeout are computed at
    construction: per request only the URL, body and a few headers remain,
    which keeps the client's overhead over raw httpx small (benchmarks/).
    """

    def __init__(self, settings: TransportSettings, client_headers: httpx.Headers) -> None:
        self._base_url = settings.base_url
        merged = httpx.Headers(client_headers)  # case-insensitive: ours replace httpx's
        merged.update(
            {
                "Authorization": f"Bearer {settings.api_key}",
                "X-Noukai-API-Version": API_VERSION,
                "User-Agent": USER_AGENT,
                "Accept": "application/json",
            }
        )
        self._headers = dict(merged.items())
        self._timeout = settings.timeout
        self._default_timeout = httpx.Timeout(settings.timeout).as_dict()

    def __repr__(self) -> str:
        return f"RequestBuilder(base_url={self._base_url!r})"

    def build(self, spec: RequestSpec) -> httpx.Request:
        headers = self._headers
        if spec.headers or spec.idempotency_key:
            headers = {**headers, **spec.headers}
            if spec.idempotency_key:
                headers[HEADER_IDEMPOTENCY_KEY] = spec.idempotency_key
        if spec.deadline is not None:  # each attempt gets only what is left
            seconds = self._timeout if spec.timeout is None else spec.timeout
            left = max(0.001, min(seconds, spec.deadline - time.monotonic()))
            timeout = httpx.Timeout(left).as_dict()
        elif spec.timeout is None:
            timeout = self._default_timeout
        else:
            timeout = httpx.Timeout(spec.timeout).as_dict()
        return httpx.Request(
            spec.method,
            self._base_url + spec.path,
            json=spec.json if spec.method != "GET" else None,
            params=dict(spec.params) if spec.params else None,
            headers=headers,
            extensions={"timeout": timeout},
        )


# Failures are caught as `httpx.RequestError`, not only `TransportError`: a
# body whose Content-Encoding cannot be undone raises `DecodingError` (and a
# caller's client that follows redirects, `TooManyRedirects`), siblings of
# `TransportError` that would otherwise reach the caller untyped.


def classify(exc: httpx.RequestError) -> Failure:
    """Could the server have seen this request? Only connect-phase failures say no."""
    if isinstance(exc, httpx.ConnectError | httpx.ConnectTimeout | httpx.PoolTimeout):
        return Failure.NOT_SENT
    return Failure.LOST


def connection_error(exc: httpx.RequestError, spec: RequestSpec) -> NoukaiError:
    kind = APITimeoutError if isinstance(exc, httpx.TimeoutException) else APIConnectionError
    what = "timed out" if kind is APITimeoutError else "failed"
    sent = "" if classify(exc) is Failure.NOT_SENT else " after the request was sent"
    return kind(
        f"{spec.method} {spec.path} {what}{sent} ({type(exc).__name__})",
        code="TIMEOUT" if kind is APITimeoutError else "CONNECTION_ERROR",
        idempotency_key=spec.idempotency_key,
    )


def stream_error(exc: httpx.RequestError, spec: RequestSpec, request_id: str | None) -> NoukaiError:
    kind = APITimeoutError if isinstance(exc, httpx.TimeoutException) else APIConnectionError
    return kind(
        f"the stream of {spec.method} {spec.path} broke off ({type(exc).__name__}); "
        "it is not re-sent",
        code="TIMEOUT" if kind is APITimeoutError else "STREAM_INTERRUPTED",
        request_id=request_id,
        idempotency_key=spec.idempotency_key,
    )


def raw_body(response: httpx.Response) -> httpx.SyncByteStream | httpx.AsyncByteStream | None:
    """The response's own byte stream, if it is the body as sent and still unread; else None.

    A transport then iterates it directly instead of `iter_bytes()`, whose
    extra layers cost a few hundred ns per chunk and pass identity-encoded
    bytes on unchanged. Not when httpx must undo a Content-Encoding (gzip...),
    nor when something (a caller's response hook) already read the body:
    `iter_bytes()` then replays the content it kept. What reading it
    directly skips is httpx's bookkeeping of a consumed body
    (`num_bytes_downloaded`, `is_stream_consumed`), on a response no caller
    holds by then; closing it still goes through `response.close()`.
    """
    if response.is_stream_consumed:
        return None
    encoding = response.headers.get("content-encoding")
    if encoding is None or encoding.strip().lower() in ("", "identity"):
        return response.stream
    return None


ChunksT = TypeVar("ChunksT")


def keeps_alive(response: httpx.Response) -> bool:
    """Whether the connection may serve another request once this response's body ends."""
    tokens = {token.strip().lower() for token in response.headers.get("connection", "").split(",")}
    if response.http_version == "HTTP/1.0":
        return "keep-alive" in tokens
    return "close" not in tokens


@dataclass(frozen=True)
class StreamBody(Generic[ChunksT]):
    """An open streamed response: its byte chunks, and its request id for errors.

    `reusable`: its connection can go back to the pool once the body ends,
    so reading on to that end after the last frame that matters pays off.
    """

    chunks: ChunksT
    request_id: str | None
    reusable: bool


def _body_for_log(content: bytes) -> Any:
    try:
        return json.loads(content)
    except ValueError:
        return content.decode("utf-8", "replace")


class Logger:
    """Builds the structured log events of 002 ("Logging"); never includes headers."""

    def __init__(self, settings: TransportSettings) -> None:
        self.handler = settings.log_handler
        self.payloads = settings.log_payloads

    def _emit(self, event: dict[str, Any]) -> None:
        """Call the user's hook; a broken hook is reported, never fails the request.

        (The stdlib's logging makes the same choice for a failing handler.)
        """
        assert self.handler is not None
        try:
            self.handler(event)
        except Exception as exc:
            _stdlib_logger.warning(
                "noukai: log_handler raised %s; the request goes on", type(exc).__name__
            )

    @staticmethod
    def _event(
        phase: str, spec: RequestSpec, attempt: int, status_code: int | None, request_id: str | None
    ) -> dict[str, Any]:
        """The keys every event has, in 002's order."""
        return {
            "phase": phase,
            "method": spec.method,
            "path": spec.path,
            "attempt": attempt,
            "status_code": status_code,
            "request_id": request_id,
        }

    def request(self, spec: RequestSpec, attempt: int) -> None:
        if self.handler is None:
            return
        event = self._event("request", spec, attempt, None, None)
        if self.payloads and spec.json is not None:
            event["request_body"] = spec.json
        self._emit(event)

    def response(
        self,
        spec: RequestSpec,
        attempt: int,
        status_code: int,
        request_id: str | None,
        content: bytes | None,
    ) -> None:
        if self.handler is None:
            return
        event = self._event("response", spec, attempt, status_code, request_id)
        if self.payloads and content is not None:
            event["response_body"] = _body_for_log(content)
        self._emit(event)

    def status_retry(
        self,
        spec: RequestSpec,
        attempt: int,
        delay: float,
        status_code: int,
        request_id: str | None,
    ) -> None:
        """An error status that will be retried: its response event, then the retry."""
        self.response(spec, attempt, status_code, request_id, None)
        self.retry(spec, attempt, delay, status_code, request_id, "status")

    def retry(
        self,
        spec: RequestSpec,
        attempt: int,
        delay: float,
        status_code: int | None,
        request_id: str | None,
        reason: str,
    ) -> None:
        if self.handler is None:
            return
        event = self._event("retry", spec, attempt, status_code, request_id)
        event["delay"] = delay
        event["reason"] = reason
        self._emit(event)
