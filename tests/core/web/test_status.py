"""The two status tables: replay errors and upstream errors, as a browser sees them."""

from __future__ import annotations

import json

import pytest

import noukai_core as nk
from noukai_core.web import (
    BrowserInputError,
    ErrorResponse,
    InvalidReplayHeader,
    replay_error_response,
    upstream_error_response,
)

REPLAY_CASES = [
    (InvalidReplayHeader("bad"), 400),
    (nk.ReplayInvalidSessionError("bad payload", status_code=400), 400),
    (nk.ReplayForbiddenError("other org", status_code=403), 403),
    (nk.ReplaySessionNotFoundError("gone", status_code=404), 404),
    (nk.ReplayNoSnapshotsError("no snapshots"), 409),
    (nk.ReplayMissError("miss"), 409),
    (nk.ReplayLeftoverError("leftover"), 409),
    (nk.ReplaySessionExpiredError("expired", status_code=410), 410),
]


@pytest.mark.parametrize(("exc", "status"), REPLAY_CASES)
def test_replay_table(exc: Exception, status: int) -> None:
    error = replay_error_response(exc)
    assert error.status == status
    body = json.loads(error.body())
    assert set(body["error"]) == {"code", "message"}
    assert str(exc) not in body["error"]["message"], "messages are fixed, never the exception's"


def test_replay_table_refuses_other_errors() -> None:
    with pytest.raises(TypeError):
        replay_error_response(ValueError("x"))


UPSTREAM_CASES = [
    (BrowserInputError("FIELD_NOT_ALLOWED", "no"), 422, "FIELD_NOT_ALLOWED"),
    (
        nk.FlowExecutionError("need message", status_code=400, code="MISSING_MESSAGE"),
        422,
        "MISSING_MESSAGE",
    ),
    (
        nk.FlowExecutionError("bad", status_code=422, code="VALIDATION_ERROR"),
        422,
        "VALIDATION_ERROR",
    ),
    (nk.RateLimitError("slow", status_code=429, retry_after=2.5), 429, "RATE_LIMITED"),
    (nk.AuthenticationError("bad key nk_abc", status_code=401), 502, "UPSTREAM_CONFIGURATION"),
    (nk.PermissionDeniedError("no", status_code=403), 502, "UPSTREAM_CONFIGURATION"),
    (nk.InsufficientCreditsError("pay", status_code=402), 502, "UPSTREAM_CONFIGURATION"),
    (nk.FlowNotFoundError("no flow", status_code=404), 502, "UPSTREAM_CONFIGURATION"),
    (nk.APITimeoutError("slow"), 504, "UPSTREAM_TIMEOUT"),
    (nk.APIConnectionError("refused"), 502, "UPSTREAM_ERROR"),
    (nk.FlowExecutionError("tree", status_code=400, code="INVALID_TREE"), 502, "FLOW_FAILED"),
    (nk.FlowExecutionError("boom", status_code=500, code="INTERNAL_ERROR"), 502, "FLOW_FAILED"),
    (RuntimeError("Traceback: secret"), 502, "UPSTREAM_ERROR"),
]


@pytest.mark.parametrize(("exc", "status", "code"), UPSTREAM_CASES)
def test_upstream_table(exc: Exception, status: int, code: str) -> None:
    error = upstream_error_response(exc)
    assert (error.status, error.code) == (status, code)
    body = error.body()
    assert b"nk_" not in body and b"Traceback" not in body and b"secret" not in body


def test_rate_limit_carries_retry_after_rounded_up() -> None:
    error = upstream_error_response(nk.RateLimitError("slow", retry_after=2.5))
    assert error.headers == {"Retry-After": "3"}
    assert upstream_error_response(nk.RateLimitError("slow")).headers == {}


def test_misconfiguration_codes_are_indistinguishable() -> None:
    errors = [
        nk.AuthenticationError("a"),
        nk.PermissionDeniedError("b"),
        nk.InsufficientCreditsError("c"),
        nk.FlowNotFoundError("d"),
    ]
    bodies = {upstream_error_response(e).body() for e in errors}
    assert len(bodies) == 1


def test_event_data_for_a_started_stream() -> None:
    error = ErrorResponse(502, "FLOW_FAILED", "The flow failed.")
    assert error.event_data() == {"code": "FLOW_FAILED", "message": "The flow failed."}
