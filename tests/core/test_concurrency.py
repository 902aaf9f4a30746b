"""Concurrency a user relies on: many open streams at once, one client shared by threads."""

from __future__ import annotations

import asyncio
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest
from misbehaving_server import Conn, ScriptedServer, SeenRequest

import noukai_core as nk

KEY = "nk_concurrency"


def gated_streams(server: Any, frame: Any, expected: int) -> threading.Event:
    """Each stream waits until `expected` streams are open at once, then finishes."""
    all_open = threading.Event()
    lock = threading.Lock()
    count = [0]

    def responder(request: SeenRequest, conn: Conn) -> None:
        conn.start_stream()
        conn.send(frame("run_started", runId="E", executionId="E"))
        with lock:
            count[0] += 1
            if count[0] >= expected:
                all_open.set()
        while not all_open.wait(0.05):
            if conn.stop.is_set():  # the test is over
                return
        conn.send(frame("flow_completed", executionId="E", result=1))

    server.responders = responder
    return all_open


async def test_more_than_100_concurrent_streams_do_not_stall(
    scripted_server: ScriptedServer, frame: Any
) -> None:
    streams = 101
    all_open = gated_streams(scripted_server, frame, streams)

    async with nk.AsyncNoukai(api_key=KEY, base_url=scripted_server.base_url, timeout=10) as c:

        async def one() -> list[str]:
            return [e.type async for e in c.flow("o/p/f").events(message="x", run_remaining=True)]

        results = await asyncio.gather(*(one() for _ in range(streams)))
    assert all_open.is_set()
    assert all(r == ["run_started", "flow_completed"] for r in results)


async def test_connection_limit_is_configurable(
    scripted_server: ScriptedServer, frame: Any
) -> None:
    gated_streams(scripted_server, frame, 3)  # never reached: only 2 connections allowed
    async with nk.AsyncNoukai(
        api_key=KEY,
        base_url=scripted_server.base_url,
        timeout=0.3,
        max_retries=0,
        max_connections=2,
    ) as c:

        async def one() -> list[str]:
            return [e.type async for e in c.flow("o/p/f").events(message="x")]

        results = await asyncio.gather(*(one() for _ in range(3)), return_exceptions=True)
    assert sum(isinstance(r, nk.APITimeoutError) for r in results) >= 1


def test_one_sync_client_shared_by_threads(noukai_devserver: Any) -> None:
    with nk.Noukai(api_key=noukai_devserver.api_key, base_url=noukai_devserver.base_url) as client:
        flow = client.flow("local/demo/hello-world")
        with ThreadPoolExecutor(max_workers=8) as pool:
            results = list(pool.map(lambda i: flow.execute(message=f"hello {i}"), range(16)))
    assert all(r.status == "completed" for r in results)
    assert len({r.execution_id for r in results}) == 16


def test_supplied_client_headers_reach_the_server(scripted_server: ScriptedServer) -> None:
    done = {"status": "completed", "result": 1, "executionId": "E", "flowId": "F", "blockCount": 1}
    scripted_server.responders = [lambda r, conn: conn.respond(200, done)]
    http = httpx.Client(headers={"X-Gateway-Token": "gw-1", "User-Agent": "theirs"})
    with nk.Noukai(api_key=KEY, base_url=scripted_server.base_url, http_client=http) as c:
        c.flow("o/p/f").execute(message="x")
    (request,) = scripted_server.requests
    assert request.headers["x-gateway-token"] == "gw-1"
    assert request.headers["user-agent"].startswith("noukai-python/")
    assert request.headers["authorization"] == f"Bearer {KEY}"
    http.close()


@pytest.mark.parametrize("bad", [0, -1, "10"])
def test_invalid_timeout_is_a_value_error(bad: object) -> None:
    with pytest.raises(ValueError):
        nk.Noukai(api_key=KEY, timeout=bad)  # type: ignore[arg-type]


async def test_concurrent_same_flow_calls_in_one_scope_warn(
    scripted_server: ScriptedServer,
) -> None:
    done = {"status": "completed", "result": 1, "executionId": "E", "flowId": "F", "blockCount": 1}
    both_arrived = threading.Barrier(2, timeout=5)

    def slow_ok(request: SeenRequest, conn: Conn) -> None:
        both_arrived.wait()  # answer only once both calls are in flight
        conn.respond(200, done)

    scripted_server.responders = slow_ok
    async with nk.AsyncNoukai(api_key=KEY, base_url=scripted_server.base_url) as c:
        flow = c.flow("o/p/f")
        with pytest.warns(UserWarning, match="concurrent calls to flow 'f'"):
            async with nk.trace_scope():
                await asyncio.gather(flow.execute(message="a"), flow.execute(message="b"))


def test_the_key_never_shows_in_reprs(scripted_server: ScriptedServer) -> None:
    secret = "nk_do_not_print_me"
    client = nk.Noukai(api_key=secret, base_url=scripted_server.base_url)
    flow = client.flow("o/p/f")
    things = [client, flow, flow.run("E"), client._transport, client._transport.settings]
    assert all(secret not in repr(thing) and secret not in str(thing) for thing in things)
    client.close()


async def test_concurrent_tasks_keep_their_own_scopes(scripted_server: ScriptedServer) -> None:
    done = {"status": "completed", "result": 1, "executionId": "E", "flowId": "F", "blockCount": 1}
    both_arrived = threading.Barrier(2, timeout=5)

    def ok_when_both_arrived(request: SeenRequest, conn: Conn) -> None:
        both_arrived.wait()  # the two scopes overlap in time
        conn.respond(200, done)

    scripted_server.responders = ok_when_both_arrived
    async with nk.AsyncNoukai(api_key=KEY, base_url=scripted_server.base_url) as c:

        async def request_in_own_scope() -> tuple[str, str | None]:
            async with nk.trace_scope() as scope:
                result = await c.flow("o/p/f").execute(message="x")
                return scope.session_id, result.session_id

        pairs = await asyncio.gather(request_in_own_scope(), request_in_own_scope())
    assert all(scope_id == result_id for scope_id, result_id in pairs)
    assert pairs[0][0] != pairs[1][0]
    sent = sorted(r.headers["x-session-id"] for r in scripted_server.requests)
    assert sent == sorted(scope_id for scope_id, _ in pairs)
    assert nk.current_session_id() is None
