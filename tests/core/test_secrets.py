"""A server or proxy that echoes the API key back: the key reaches no error, event or log.

The socket server below copies the request's `Authorization` header into
error bodies, into response headers and into a streamed frame (split across
two TCP writes, the way a key can straddle two chunks).
"""

from __future__ import annotations

import json
import logging
import time
from typing import Any

import pytest
from misbehaving_server import Conn, ScriptedServer, SeenRequest, sse

import noukai_core as nk

KEY = "nk_echoed_secret_0123456789"


def echo_400(request: SeenRequest, conn: Conn) -> None:
    auth = request.headers["authorization"]
    conn.respond(
        400,
        {"detail": {"code": "BAD_HEADER", "message": f"rejected {auth}", "got": auth}},
        {"X-Request-ID": f"req_{auth}"},
    )


def echo_401(request: SeenRequest, conn: Conn) -> None:
    auth = request.headers["authorization"]
    conn.respond(
        401,
        {"detail": {"code": "UNAUTHORIZED", "message": f"unknown key {auth}"}},
        {"WWW-Authenticate": f'Bearer realm="{auth}"'},
    )


def echo_500_html(request: SeenRequest, conn: Conn) -> None:
    page = f"<html>proxy error; you sent {request.headers['authorization']}</html>".encode()
    conn.send(
        b"HTTP/1.1 500 Oops\r\nContent-Type: text/html\r\nConnection: close\r\n"
        + f"X-Request-ID: {request.headers['authorization']}\r\n".encode()
        + f"Content-Length: {len(page)}\r\n\r\n".encode()
        + page
    )


def echo_in_stream(request: SeenRequest, conn: Conn) -> None:
    auth = request.headers["authorization"]
    conn.start_stream()
    conn.send(sse("run_started", executionId="E1"))
    failed = sse(
        "step_error",
        executionId="E1",
        stepId="a",
        error={"code": "BOOM", "message": f"upstream said {auth}"},
    )
    cut = failed.index(KEY.encode()) + 7  # inside the key
    conn.send(failed[:cut])
    time.sleep(0.05)  # two TCP segments: the client reads the key in two chunks
    conn.send(failed[cut:])


def assert_clean(exc: nk.NoukaiError, log: list[dict[str, Any]]) -> None:
    for text in (str(exc), repr(exc), exc.message, json.dumps(exc.response_body)):
        assert KEY not in text
    assert KEY not in str(exc.request_id) and KEY not in str(vars(exc))
    assert KEY not in repr(log)


@pytest.mark.parametrize("responder", [echo_400, echo_401, echo_500_html])
def test_an_echoed_key_is_redacted_from_errors_and_logs(
    scripted_server: ScriptedServer, responder: Any, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    scripted_server.responders = [responder]
    log: list[dict[str, Any]] = []
    with (
        nk.Noukai(
            api_key=KEY,
            base_url=scripted_server.base_url,
            max_retries=0,
            log_handler=log.append,
            log_payloads=True,
        ) as client,
        pytest.raises(nk.NoukaiError) as info,
    ):
        client.flow("o/p/f").execute(message="hi")
    assert_clean(info.value, log)
    # Our own logger (httpcore's DEBUG log of raw headers is httpx's, not ours).
    assert KEY not in " ".join(r.getMessage() for r in caplog.records if r.name == "noukai_core")
    # Redacted, not dropped: the user still sees where the echo was.
    assert "nk_***" in str(vars(info.value))
    assert any("nk_***" in json.dumps(e.get("response_body")) for e in log)


async def test_an_echoed_key_on_a_refused_stream_is_redacted(
    scripted_server: ScriptedServer,
) -> None:
    scripted_server.responders = [echo_400]
    log: list[dict[str, Any]] = []
    async with nk.AsyncNoukai(
        api_key=KEY, base_url=scripted_server.base_url, log_handler=log.append, log_payloads=True
    ) as client:
        with pytest.raises(nk.FlowExecutionError) as info:
            async for _ in client.flow("o/p/f").events(message="hi"):
                pass
    assert_clean(info.value, log)
    assert info.value.request_id == "req_Bearer nk_***"


def test_an_echoed_key_in_a_streamed_frame_is_redacted(scripted_server: ScriptedServer) -> None:
    scripted_server.responders = [echo_in_stream, echo_in_stream]
    log: list[dict[str, Any]] = []
    with nk.Noukai(
        api_key=KEY, base_url=scripted_server.base_url, log_handler=log.append, log_payloads=True
    ) as client:
        events = list(client.flow("o/p/f").events(message="hi"))
        with pytest.raises(nk.FlowExecutionError) as info:
            list(client.flow("o/p/f").steps(message="hi"))
    failed = events[-1]
    assert isinstance(failed, nk.StepFailed)
    assert failed.message == "upstream said Bearer nk_***"
    assert KEY not in repr(events)
    assert_clean(info.value, log)
    assert info.value.code == "BOOM" and "nk_***" in info.value.message


async def test_an_echoed_key_in_a_streamed_frame_is_redacted_async(
    scripted_server: ScriptedServer,
) -> None:
    scripted_server.responders = [echo_in_stream]
    async with nk.AsyncNoukai(api_key=KEY, base_url=scripted_server.base_url) as client:
        events = [e async for e in client.flow("o/p/f").events(message="hi")]
    assert isinstance(events[-1], nk.StepFailed)
    assert events[-1].message == "upstream said Bearer nk_***"
    assert KEY not in repr(events)


def test_the_chunk_redactor_catches_a_key_split_at_every_byte() -> None:
    from noukai_core._transport._redact import Redactor

    stream = f"data: n nk_ {KEY}{KEY} tail nk_echo\n\n".encode()
    expected = stream.replace(KEY.encode(), b"nk_***")
    for cut in range(len(stream) + 1):
        redact = Redactor(KEY).chunks()
        out = redact.feed(stream[:cut]) + redact.feed(stream[cut:]) + redact.flush()
        assert out == expected, cut
    # A chunk that ends a frame is passed on whole: the event is not delayed.
    assert Redactor(KEY).chunks().feed(b"data: {}\n\n") == b"data: {}\n\n"
