"""Retries, timeouts, headers and logging against a real misbehaving socket server."""

from __future__ import annotations

import logging
import socket
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from misbehaving_server import Conn, ScriptedServer, SeenRequest

import noukai_core as nk

KEY = "nk_secret_test_key"
DONE = {
    "status": "completed",
    "result": {"ok": 1},
    "executionId": "E1",
    "flowId": "F",
    "blockCount": 1,
}


def ok(request: SeenRequest, conn: Conn) -> None:
    conn.respond(200, DONE)


def status(code: int, headers: dict[str, str] | None = None) -> Callable[[SeenRequest, Conn], None]:
    def responder(request: SeenRequest, conn: Conn) -> None:
        conn.respond(code, {"detail": {"code": f"E{code}", "message": f"status {code}"}}, headers)

    return responder


def stall(request: SeenRequest, conn: Conn) -> None:
    conn.stall()


def client(server: ScriptedServer, **kw: Any) -> nk.Noukai:
    return nk.Noukai(api_key=KEY, base_url=server.base_url, **kw)


def aclient(server: ScriptedServer, **kw: Any) -> nk.AsyncNoukai:
    return nk.AsyncNoukai(api_key=KEY, base_url=server.base_url, **kw)


def test_503_with_retry_after_then_200_is_one_success_two_requests(
    scripted_server: ScriptedServer,
) -> None:
    scripted_server.responders = [status(503, {"Retry-After": "0"}), ok]
    with client(scripted_server) as c:
        result = c.flow("o/p/f").execute(message="hi")
    assert isinstance(result, nk.ExecuteResult) and result.result == {"ok": 1}
    posts = scripted_server.posts("/execute")
    assert len(posts) == 2
    keys = {p.headers["idempotency-key"] for p in posts}
    assert len(keys) == 1 and keys != {""}


async def test_429_with_retry_after_is_retried_async(scripted_server: ScriptedServer) -> None:
    scripted_server.responders = [status(429, {"Retry-After": "0"}), ok]
    async with aclient(scripted_server) as c:
        result = await c.flow("o/p/f").execute(message="hi")
    assert result.status == "completed"
    assert len(scripted_server.posts("/execute")) == 2


@pytest.mark.parametrize("code", [500, 502, 504])
def test_work_starting_post_is_never_retried_after_5xx(
    scripted_server: ScriptedServer, code: int
) -> None:
    scripted_server.responders = [status(code, {"Retry-After": "0"}), ok]
    with client(scripted_server, max_retries=3) as c, pytest.raises(nk.FlowExecutionError) as info:
        c.flow("o/p/f").execute(message="hi")
    assert info.value.status_code == code and info.value.code == f"E{code}"
    assert info.value.request_id == "req_test"
    assert len(scripted_server.posts()) == 1


def test_503_without_retry_after_is_not_retried_on_post(scripted_server: ScriptedServer) -> None:
    scripted_server.responders = [status(503), ok]
    with client(scripted_server) as c, pytest.raises(nk.FlowExecutionError):
        c.flow("o/p/f").execute(message="hi")
    assert len(scripted_server.posts()) == 1


def test_rate_limit_error_after_retries_are_spent(scripted_server: ScriptedServer) -> None:
    scripted_server.responders = status(429, {"Retry-After": "0"})
    with client(scripted_server, max_retries=2) as c, pytest.raises(nk.RateLimitError) as info:
        c.flow("o/p/f").execute(message="hi")
    assert info.value.retry_after == 0.0
    assert len(scripted_server.posts()) == 3


def test_get_is_retried_after_5xx(scripted_server: ScriptedServer) -> None:
    trace = {"flowRun": {"id": "E1", "flowId": "F", "status": "completed"}, "steps": []}

    def trace_ok(request: SeenRequest, conn: Conn) -> None:
        conn.respond(200, trace)

    scripted_server.responders = [status(500), trace_ok]
    with client(scripted_server) as c:
        result = c.flow("o/p/f").run("E1").trace()
    assert result.flow_run.id == "E1" and result.summary is result.flow_run
    assert [r.method for r in scripted_server.requests] == ["GET", "GET"]


def test_stalled_post_times_out_and_is_not_resent(scripted_server: ScriptedServer) -> None:
    scripted_server.responders = [stall, ok]
    with (
        client(scripted_server, timeout=0.2, max_retries=3) as c,
        pytest.raises(nk.APITimeoutError) as info,
    ):
        c.flow("o/p/f").execute(message="hi")
    assert info.value.idempotency_key == scripted_server.posts()[0].headers["idempotency-key"]
    assert len(scripted_server.posts()) == 1


async def test_per_call_timeout_overrides_the_client_default(
    scripted_server: ScriptedServer,
) -> None:
    scripted_server.responders = [stall]
    async with aclient(scripted_server, timeout=30) as c:
        with pytest.raises(nk.APITimeoutError):
            await c.flow("o/p/f").execute(message="hi", timeout=0.2)


def test_caller_idempotency_key_is_sent(scripted_server: ScriptedServer) -> None:
    scripted_server.responders = [ok]
    with client(scripted_server) as c:
        c.flow("o/p/f").execute(message="hi", idempotency_key="my-key-1")
    assert scripted_server.posts()[0].headers["idempotency-key"] == "my-key-1"


def test_connection_refused_is_an_api_connection_error() -> None:
    probe = socket.socket()
    probe.bind(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()  # a port nobody listens on any more
    url = f"http://127.0.0.1:{port}/api/v1"
    with (
        nk.Noukai(api_key=KEY, base_url=url, max_retries=0) as c,
        pytest.raises(nk.APIConnectionError) as info,
    ):
        c.flow("o/p/f").execute(message="hi")
    assert KEY not in str(info.value) and KEY not in repr(info.value)


def test_standard_headers_on_every_request(scripted_server: ScriptedServer) -> None:
    scripted_server.responders = [ok]
    with client(scripted_server) as c:
        c.flow("o/p/f").execute(message="hi")
    (request,) = scripted_server.requests
    assert request.path == "/seq/o/p/f/execute"
    assert request.headers["authorization"] == f"Bearer {KEY}"
    assert request.headers["x-noukai-api-version"] == "2026-05-31"
    assert request.headers["accept"] == "application/json"
    assert request.headers["user-agent"].startswith(f"noukai-python/{nk.__version__} (httpx/")
    assert "x-session-id" not in request.headers
    assert request.json() == {
        "message": "hi",
        "parameters": {},
        "iterationsUsed": 0,
        "accumulatedOutputs": {},
        "trace": False,
    }


def test_version_routing_on_the_wire(scripted_server: ScriptedServer) -> None:
    scripted_server.responders = ok
    with client(scripted_server) as c:
        flow = c.flow("o/p/f")
        flow.execute(message="a")
        flow.execute(message="a", version="production")
        flow.execute(message="a", version="draft")
        flow.execute(message="a", version=0)
        flow.execute(message="a", version=3)
    assert [r.path for r in scripted_server.requests] == [
        "/seq/o/p/f/execute",
        "/seq/o/p/f/execute",
        "/seq/o/p/f/v0/execute",
        "/seq/o/p/f/v0/execute",
        "/seq/o/p/f/v3/execute",
    ]


def test_log_handler_sees_request_response_retry_and_never_the_key(
    scripted_server: ScriptedServer,
) -> None:
    events: list[dict[str, Any]] = []
    scripted_server.responders = [status(503, {"Retry-After": "0"}), ok]
    with client(scripted_server, log_handler=events.append) as c:
        c.flow("o/p/f").execute(message="hi")
    assert [e["phase"] for e in events] == ["request", "response", "retry", "request", "response"]
    assert [e["attempt"] for e in events] == [1, 1, 1, 2, 2]
    assert events[-1]["status_code"] == 200 and events[-1]["request_id"] == "req_test"
    assert events[0]["method"] == "POST" and events[0]["path"] == "/seq/o/p/f/execute"
    assert all("request_body" not in e and "response_body" not in e for e in events)
    assert KEY not in repr(events)


def test_log_payloads_adds_bodies(scripted_server: ScriptedServer) -> None:
    events: list[dict[str, Any]] = []
    scripted_server.responders = [ok]
    with client(scripted_server, log_handler=events.append, log_payloads=True) as c:
        c.flow("o/p/f").execute(message="hi")
    assert events[0]["request_body"]["message"] == "hi"
    assert events[1]["response_body"] == DONE
    assert KEY not in repr(events)


def test_supplied_http_client_is_left_open(scripted_server: ScriptedServer) -> None:
    scripted_server.responders = ok
    http = httpx.Client()
    with nk.Noukai(api_key=KEY, base_url=scripted_server.base_url, http_client=http) as c:
        c.flow("o/p/f").execute(message="hi")
    assert not http.is_closed
    http.close()


async def test_supplied_async_http_client_is_left_open(scripted_server: ScriptedServer) -> None:
    scripted_server.responders = ok
    http = httpx.AsyncClient()
    async with nk.AsyncNoukai(
        api_key=KEY, base_url=scripted_server.base_url, http_client=http
    ) as c:
        await c.flow("o/p/f").execute(message="hi")
    assert not http.is_closed
    await http.aclose()


def test_non_json_success_body_is_a_typed_error(scripted_server: ScriptedServer) -> None:
    def garbage(request: SeenRequest, conn: Conn) -> None:
        conn.send(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello")

    scripted_server.responders = [garbage]
    with client(scripted_server) as c, pytest.raises(nk.FlowExecutionError) as info:
        c.flow("o/p/f").execute(message="hi")
    assert info.value.code == "INVALID_RESPONSE" and info.value.status_code == 200


def test_logging_never_shows_the_key(
    scripted_server: ScriptedServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    scripted_server.responders = [ok]
    with client(scripted_server) as c:
        c.flow("o/p/f").execute(message="hi")
    assert KEY not in caplog.text


def test_retry_after_beyond_the_cap_is_raised_not_slept(scripted_server: ScriptedServer) -> None:
    scripted_server.responders = [status(429, {"Retry-After": "3600"}), ok]
    with client(scripted_server, max_retries=3) as c, pytest.raises(nk.RateLimitError) as info:
        c.flow("o/p/f").execute(message="hi")
    assert info.value.retry_after == 3600.0
    assert len(scripted_server.posts()) == 1


def test_retry_after_as_an_http_date(scripted_server: ScriptedServer) -> None:
    scripted_server.responders = [status(503, {"Retry-After": "Thu, 01 Jan 1970 00:00:00 GMT"}), ok]
    with client(scripted_server) as c:
        assert c.flow("o/p/f").execute(message="hi").status == "completed"
    assert len(scripted_server.posts()) == 2


def test_a_failing_log_handler_does_not_fail_the_request(
    scripted_server: ScriptedServer, caplog: pytest.LogCaptureFixture
) -> None:
    def broken(event: dict[str, Any]) -> None:
        raise RuntimeError("handler bug")

    scripted_server.responders = [ok]
    with client(scripted_server, log_handler=broken) as c:
        assert c.flow("o/p/f").execute(message="hi").status == "completed"
    assert "log_handler raised RuntimeError" in caplog.text


def test_jobs_and_step_posts_carry_a_key_that_their_retry_reuses(
    scripted_server: ScriptedServer,
) -> None:
    accepted = {"executionId": "J1", "status": "pending", "flowId": "F", "blockCount": 1}

    def stream(request: SeenRequest, conn: Conn) -> None:
        conn.start_stream()
        conn.send(
            b'event: run_started\ndata: {"executionId": "E"}\n\n'
            b'event: flow_completed\ndata: {"executionId": "E", "result": 1}\n\n'
        )

    rate_limited = status(429, {"Retry-After": "0"})
    scripted_server.responders = [
        rate_limited,
        lambda r, conn: conn.respond(200, accepted),
        rate_limited,
        stream,
    ]
    with client(scripted_server) as c:
        assert c.flow("o/p/f").execute_async(message="x").execution_id == "J1"
        assert [e.type for e in c.flow("o/p/f").events(message="x", run_remaining=True)] == [
            "run_started",
            "flow_completed",
        ]
    for suffix in ("/jobs", "/step"):
        first, retry = scripted_server.posts(suffix)
        assert first.headers["idempotency-key"]
        assert first.headers["idempotency-key"] == retry.headers["idempotency-key"]
    keys = {p.headers["idempotency-key"] for p in scripted_server.posts()}
    assert len(keys) == 2  # one key per call, never shared between calls


def test_a_refused_connection_is_retried_up_to_max_retries() -> None:
    """Nothing was sent, so even a work-starting POST may be tried again."""
    probe = socket.socket()
    probe.bind(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()
    events: list[dict[str, Any]] = []
    with (
        nk.Noukai(
            api_key=KEY,
            base_url=f"http://127.0.0.1:{port}/api/v1",
            max_retries=2,
            log_handler=events.append,
        ) as c,
        pytest.raises(nk.APIConnectionError) as info,
    ):
        c.flow("o/p/f").execute(message="hi")
    assert [(e["phase"], e["attempt"]) for e in events] == [
        ("request", 1),
        ("retry", 1),
        ("request", 2),
        ("retry", 2),
        ("request", 3),
    ]
    assert info.value.code == "CONNECTION_ERROR" and info.value.idempotency_key
