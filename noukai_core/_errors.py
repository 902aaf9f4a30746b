"""Every failure that reaches user code, and the one table mapping HTTP to it.

The hierarchy::

    NoukaiError
    ├── AuthenticationError            401 (and a missing / malformed key)
    ├── PermissionDeniedError          403
    ├── FlowNotFoundError              404 (flows, versions, runs, jobs, steps)
    ├── InsufficientCreditsError       402
    ├── RateLimitError                 429 (.retry_after)
    ├── FlowExecutionError             any other status >= 400; failed streams
    ├── APIConnectionError             no (complete) response; carries the idempotency key
    │   └── APITimeoutError            a request, a stream read or a job wait ran out of time
    ├── ToolCallLimitError             client side: max_tool_rounds exhausted
    └── ReplayError
        ├── ReplayMissError            no cassette entry for (slug, position)
        ├── ReplayLeftoverError        scope exited with unconsumed executions
        ├── ReplayForbiddenError       session fetch: 403
        ├── ReplaySessionNotFoundError session fetch: 404
        ├── ReplaySessionExpiredError  session fetch: 410
        ├── ReplayInvalidSessionError  session fetch: 400, a non-UUID id, a malformed payload
        ├── ReplayNoSnapshotsError     an execution was recorded without snapshots
        └── ReplayDisabledError        replay asked for while NOUKAI_REPLAY_ENABLED is off

Every error carries `status_code`, `code`, `execution_id`, `request_id` and
`response_body` (None where they do not apply), so callers branch on
attributes rather than parse messages. Messages never contain the API key:
they are built from the server's `detail.message` and our own words only.
"""

from __future__ import annotations

import email.utils
import json
import time
from collections.abc import Mapping
from typing import Any


class NoukaiError(Exception):
    """Base of every error this package raises on purpose."""

    def __init__(
        self,
        message: str,
        *,
        status_code: int | None = None,
        code: str | None = None,
        execution_id: str | None = None,
        request_id: str | None = None,
        response_body: Any = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status_code = status_code
        self.code = code
        self.execution_id = execution_id
        self.request_id = request_id
        self.response_body = response_body

    def __str__(self) -> str:
        facts = [
            f"{name}={value}"
            for name, value in (
                ("status", self.status_code),
                ("code", self.code),
                ("execution_id", self.execution_id),
                ("request_id", self.request_id),
            )
            if value is not None
        ]
        return f"{self.message} ({', '.join(facts)})" if facts else self.message

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}({self.message!r}, "
            f"status_code={self.status_code!r}, code={self.code!r})"
        )


class AuthenticationError(NoukaiError):
    """401, or no usable `nk_` key at construction."""

    def __init__(self, message: str, *, www_authenticate: str | None = None, **kw: Any) -> None:
        super().__init__(message, **kw)
        self.www_authenticate = www_authenticate


class PermissionDeniedError(NoukaiError):
    """403: the key may not touch this resource."""


class FlowNotFoundError(NoukaiError):
    """404: unknown flow, version, run, job or step."""


class InsufficientCreditsError(NoukaiError):
    """402: the org's balance cannot pay for the run."""


class RateLimitError(NoukaiError):
    """429; `retry_after` holds the server's `Retry-After` in seconds, when sent."""

    def __init__(self, message: str, *, retry_after: float | None = None, **kw: Any) -> None:
        super().__init__(message, **kw)
        self.retry_after = retry_after


class FlowExecutionError(NoukaiError):
    """Any other failure status, a `step_error` in `steps()`; branch on `.code`."""


class APIConnectionError(NoukaiError):
    """No complete response: DNS, refused, reset, or a stream cut before its end.

    `idempotency_key` is the key the lost request carried: pass it back as
    `execute(idempotency_key=...)` to retry without risking a second run.
    """

    def __init__(self, message: str, *, idempotency_key: str | None = None, **kw: Any) -> None:
        super().__init__(message, **kw)
        self.idempotency_key = idempotency_key


class APITimeoutError(APIConnectionError):
    """A request, a stream read, or `Job.wait` ran past its timeout."""


class ToolCallLimitError(NoukaiError):
    """The flow still asked for tools after `max_tool_rounds` handler rounds."""


class ReplayError(NoukaiError):
    """Base of the replay failures (reference: "Replay and session grouping")."""


class ReplayMissError(ReplayError):
    """No recorded execution for this (slug, position)."""


class ReplayLeftoverError(ReplayError):
    """The replay scope ended with recorded executions nobody asked for."""


class ReplayForbiddenError(ReplayError):
    """The session holds executions this key may not see."""


class ReplaySessionNotFoundError(ReplayError):
    """No execution is tagged with this session id."""


class ReplaySessionExpiredError(ReplayError):
    """The session is past its retention; its snapshots are gone."""


class ReplayInvalidSessionError(ReplayError):
    """The id is not a UUID, or the recorded payload is malformed."""


class ReplayNoSnapshotsError(ReplayError):
    """An execution of the session was recorded without snapshots."""


class ReplayDisabledError(ReplayError):
    """A replay was asked for programmatically while NOUKAI_REPLAY_ENABLED is off."""


# The status/code mapping of contract §1.5 and §13, in one place. Any status
# >= 400 not listed is a FlowExecutionError carrying the server's code.
STATUS_ERRORS: Mapping[int, type[NoukaiError]] = {
    401: AuthenticationError,
    402: InsufficientCreditsError,
    403: PermissionDeniedError,
    404: FlowNotFoundError,
    429: RateLimitError,
}
# On the session fetch (E9) the same statuses mean replay failures.
SESSION_STATUS_ERRORS: Mapping[int, type[NoukaiError]] = {
    400: ReplayInvalidSessionError,
    401: AuthenticationError,
    403: ReplayForbiddenError,
    404: ReplaySessionNotFoundError,
    410: ReplaySessionExpiredError,
    429: RateLimitError,
}


def parse_error_detail(content: bytes) -> tuple[str | None, str | None, Any]:
    """Read `(code, message, body)` from an error envelope (contract §1.5).

    Tolerant by design: a proxy's HTML page or an empty body still yields an
    error with a status, just without a code.
    """
    try:
        body: Any = json.loads(content) if content else None
    except ValueError:
        text = content.decode("utf-8", "replace")[:500]
        return None, None, text
    detail = body.get("detail") if isinstance(body, dict) else None
    if isinstance(detail, dict):
        code = detail.get("code")
        message = detail.get("message")
        return (
            code if isinstance(code, str) else None,
            message if isinstance(message, str) else None,
            body,
        )
    if isinstance(detail, str):
        return None, detail, body
    return None, None, body


def parse_retry_after_header(value: str | None, *, now: float | None = None) -> float | None:
    """`Retry-After` as seconds: an integer/float, or an HTTP date; None if absent/garbled."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when is None:
        return None
    reference = time.time() if now is None else now
    return max(0.0, when.timestamp() - reference)


def error_from_response(
    status_code: int,
    headers: Mapping[str, str],
    content: bytes,
    *,
    session_fetch: bool = False,
    execution_id: str | None = None,
) -> NoukaiError:
    """Map a failed HTTP response to its typed error (the only place that does).

    `headers` must have lower-case names.
    """
    code, message, body = parse_error_detail(content)
    table = SESSION_STATUS_ERRORS if session_fetch else STATUS_ERRORS
    cls = table.get(status_code, FlowExecutionError)
    if isinstance(body, dict) and isinstance(body.get("detail"), dict):
        detail_exec = body["detail"].get("executionId")
        if execution_id is None and isinstance(detail_exec, str):
            execution_id = detail_exec
    kwargs: dict[str, Any] = {
        "status_code": status_code,
        "code": code,
        "execution_id": execution_id,
        "request_id": headers.get("x-request-id") or None,
        "response_body": body,
    }
    if cls is AuthenticationError:
        kwargs["www_authenticate"] = headers.get("www-authenticate")
    if cls is RateLimitError:
        kwargs["retry_after"] = parse_retry_after_header(headers.get("retry-after"))
    text = message or f"HTTP {status_code} from the Noukai API"
    return cls(text, **kwargs)
