"""The HTTP status and JSON body a browser gets when a flow or a replay fails.

Two tables, each the single place its mapping is written:

- replay errors (the app's caller asked to replay a session that cannot be
  replayed): the status says whose problem it is, and the body is the
  error's code with a fixed message;
- upstream errors raised before a passthrough stream has started: the
  browser's own bad input is 422, rate limiting is 429 with `Retry-After`,
  timeouts are 504, and everything else is 502. Authentication, permission,
  credit and flow-not-found errors are the *app's* misconfiguration, not the
  browser's, so they become a 502 with one generic code: a browser must not
  learn whether the app's key is wrong or its credit ran out.

Messages are fixed strings chosen here, never the exception's text, which
may quote an upstream body; so no secret or traceback can reach a browser.
The body shape is `{"error": {"code": ..., "message": ...}}`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from noukai_core import (
    APITimeoutError,
    AuthenticationError,
    FlowExecutionError,
    FlowNotFoundError,
    InsufficientCreditsError,
    PermissionDeniedError,
    RateLimitError,
    ReplayError,
    ReplayForbiddenError,
    ReplayInvalidSessionError,
    ReplayLeftoverError,
    ReplayMissError,
    ReplayNoSnapshotsError,
    ReplaySessionExpiredError,
    ReplaySessionNotFoundError,
)
from noukai_core.web._browser_input import BrowserInputError
from noukai_core.web._replay_header import InvalidReplayHeader
from noukai_core.web._sse import encode_json


@dataclass(frozen=True)
class ErrorResponse:
    """What to send: a status, a stable code, a safe message, extra headers."""

    status: int
    code: str
    message: str
    headers: dict[str, str] = field(default_factory=dict)

    def body(self) -> bytes:
        """The JSON body, `{"error": {"code", "message"}}`."""
        return encode_json({"error": {"code": self.code, "message": self.message}}).encode()

    def event_data(self) -> dict[str, str]:
        """The payload of the final `error` event once a stream has started."""
        return {"code": self.code, "message": self.message}


# (class, status, code, message); the first matching row wins, so a subclass
# must come before its base.
_REPLAY_TABLE: tuple[tuple[type[BaseException], int, str, str], ...] = (
    (InvalidReplayHeader, 400, "INVALID_SESSION_ID", "The replay session id is not valid."),
    (ReplayInvalidSessionError, 400, "INVALID_SESSION_ID", "The replay session is not valid."),
    (ReplayForbiddenError, 403, "REPLAY_FORBIDDEN", "This replay session is not accessible."),
    (ReplaySessionNotFoundError, 404, "SESSION_NOT_FOUND", "The replay session was not found."),
    (ReplayNoSnapshotsError, 409, "REPLAY_NO_SNAPSHOTS", "The session has no replayable data."),
    (ReplayMissError, 409, "REPLAY_MISS", "A flow call has no match in the replay session."),
    (ReplayLeftoverError, 409, "REPLAY_LEFTOVER", "The replay session has unused recorded calls."),
    (ReplaySessionExpiredError, 410, "SESSION_EXPIRED", "The replay session has expired."),
)

#: Codes of upstream 4xx errors that describe the request's own content (the
#: message or parameters the browser sent), as opposed to the app's setup.
_BROWSER_INPUT_CODES = frozenset(
    {
        "MISSING_MESSAGE",
        "VALIDATION_ERROR",
        "MESSAGES_TOO_LARGE",
        "MESSAGES_ROLE_INVALID",
    }
)

_MISCONFIGURED = ErrorResponse(502, "UPSTREAM_CONFIGURATION", "The service is not available.")


def replay_error_response(exc: BaseException) -> ErrorResponse:
    """The response for a replay failure (`ReplayError` or a malformed replay header)."""
    for cls, status, code, message in _REPLAY_TABLE:
        if isinstance(exc, cls):
            return ErrorResponse(status, code, message)
    if isinstance(exc, ReplayError):
        return ErrorResponse(409, "REPLAY_FAILED", "The session could not be replayed.")
    raise TypeError(f"not a replay error: {type(exc).__name__}")


def upstream_error_response(exc: BaseException) -> ErrorResponse:
    """The response for a failure of a flow run started for a browser."""
    if isinstance(exc, (ReplayError, InvalidReplayHeader)):
        return replay_error_response(exc)
    if isinstance(exc, BrowserInputError):
        return ErrorResponse(422, exc.code, exc.message)
    if isinstance(exc, RateLimitError):
        headers = {}
        if exc.retry_after is not None:
            headers["Retry-After"] = str(max(0, math.ceil(exc.retry_after)))
        return ErrorResponse(429, "RATE_LIMITED", "Too many requests; retry later.", headers)
    if isinstance(
        exc,
        (AuthenticationError, PermissionDeniedError, InsufficientCreditsError, FlowNotFoundError),
    ):
        return _MISCONFIGURED
    if isinstance(exc, APITimeoutError):
        return ErrorResponse(504, "UPSTREAM_TIMEOUT", "The flow did not answer in time.")
    if (
        isinstance(exc, FlowExecutionError)
        and exc.status_code in (400, 413, 422)
        and exc.code in _BROWSER_INPUT_CODES
    ):
        return ErrorResponse(422, exc.code or "INVALID_INPUT", "The request was not accepted.")
    if isinstance(exc, FlowExecutionError) and exc.code:
        return ErrorResponse(502, "FLOW_FAILED", "The flow failed.")
    return ErrorResponse(502, "UPSTREAM_ERROR", "The flow could not be run.")
