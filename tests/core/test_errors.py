"""The status/code mapping (contract §1.5, §13) and what an error shows."""

from __future__ import annotations

import json
import re

import pytest

import noukai_core as nk
from noukai_core._errors import error_from_response, parse_retry_after_header


def envelope(code: str, message: str) -> bytes:
    return json.dumps({"detail": {"code": code, "message": message}}).encode()


@pytest.mark.parametrize(
    ("status", "cls"),
    [
        (401, nk.AuthenticationError),
        (402, nk.InsufficientCreditsError),
        (403, nk.PermissionDeniedError),
        (404, nk.FlowNotFoundError),
        (429, nk.RateLimitError),
        (400, nk.FlowExecutionError),
        (409, nk.FlowExecutionError),
        (413, nk.FlowExecutionError),
        (500, nk.FlowExecutionError),
        (502, nk.FlowExecutionError),
    ],
)
def test_flow_statuses_map_to_their_class(status: int, cls: type[nk.NoukaiError]) -> None:
    err = error_from_response(status, {"x-request-id": "req_1"}, envelope("SOME_CODE", "why"))
    assert type(err) is cls
    assert (err.status_code, err.code, err.request_id, err.message) == (
        status,
        "SOME_CODE",
        "req_1",
        "why",
    )


@pytest.mark.parametrize(
    ("status", "cls"),
    [
        (400, nk.ReplayInvalidSessionError),
        (403, nk.ReplayForbiddenError),
        (404, nk.ReplaySessionNotFoundError),
        (410, nk.ReplaySessionExpiredError),
    ],
)
def test_session_fetch_statuses_map_to_replay_errors(
    status: int, cls: type[nk.NoukaiError]
) -> None:
    err = error_from_response(status, {}, envelope("X", "y"), session_fetch=True)
    assert type(err) is cls
    assert isinstance(err, nk.ReplayError) and isinstance(err, nk.NoukaiError)


def test_authentication_error_keeps_www_authenticate() -> None:
    err = error_from_response(401, {"www-authenticate": 'Bearer error="invalid_token"'}, b"{}")
    assert isinstance(err, nk.AuthenticationError)
    assert err.www_authenticate == 'Bearer error="invalid_token"'


def test_rate_limit_error_reads_retry_after() -> None:
    err = error_from_response(429, {"retry-after": "3"}, envelope("RATE_LIMIT", "slow"))
    assert isinstance(err, nk.RateLimitError) and err.retry_after == 3.0


def test_string_detail_and_non_json_bodies_still_give_typed_errors() -> None:
    err = error_from_response(400, {}, json.dumps({"detail": "plain"}).encode())
    assert (err.code, err.message) == (None, "plain")
    err = error_from_response(502, {}, b"<html>bad gateway</html>")
    assert isinstance(err, nk.FlowExecutionError) and err.response_body.startswith("<html>")


def test_execution_id_in_detail_is_surfaced() -> None:
    body = json.dumps({"detail": {"code": "C", "message": "m", "executionId": "e1"}}).encode()
    assert error_from_response(500, {}, body).execution_id == "e1"


def test_str_names_status_code_and_request_id() -> None:
    err = error_from_response(404, {"x-request-id": "req_9"}, envelope("FLOW_NOT_FOUND", "no flow"))
    assert str(err) == "no flow (status=404, code=FLOW_NOT_FOUND, request_id=req_9)"


def test_retry_after_accepts_seconds_and_http_dates() -> None:
    assert parse_retry_after_header("2") == 2.0
    assert parse_retry_after_header("Thu, 01 Jan 1970 00:00:10 GMT", now=4.0) == 6.0
    assert parse_retry_after_header("soon") is None
    assert parse_retry_after_header(None) is None


def test_timeout_is_a_connection_error() -> None:
    assert issubclass(nk.APITimeoutError, nk.APIConnectionError)


def test_the_docstring_tree_shows_every_error_and_every_error_carries_the_five_facts() -> None:
    import noukai_core._errors as errors_module

    tree = errors_module.__doc__ or ""
    public_errors = [
        value
        for value in vars(nk).values()
        if isinstance(value, type) and issubclass(value, nk.NoukaiError)
    ]
    assert len(public_errors) == 19  # NoukaiError, 9 flow errors, ReplayError and 8 replays
    for cls in public_errors:
        node = re.compile(rf"^[\s│├└─]*{cls.__name__}\b", re.MULTILINE)  # a line of the tree
        assert node.search(tree), f"{cls.__name__} is missing from the hierarchy tree"
        err = cls("why")
        facts = (err.status_code, err.code, err.execution_id, err.request_id, err.response_body)
        assert facts == (None, None, None, None, None), cls.__name__
