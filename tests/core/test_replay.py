"""Replay scopes against a real socket server that serves only the recorded session.

Every request other than `GET /seq/sessions/{id}` gets a 500, so a passing
replay test proves no live call was made.
"""

from __future__ import annotations

import asyncio
import contextvars
import uuid
from collections.abc import AsyncIterator, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from misbehaving_server import Conn, ScriptedServer, SeenRequest

import noukai_core as nk

KEY = "nk_replay_test"
SID = str(uuid.uuid4())
OTHER_SID = str(uuid.uuid4())


def execution(
    exec_id: str, slug: str, trigger: str, outputs: list[Any], **extra: Any
) -> dict[str, Any]:
    return {
        "executionId": exec_id,
        "flowId": "F",
        "slug": slug,
        "triggerType": trigger,
        "status": extra.pop("status", "completed"),
        "snapshotsAvailable": extra.pop("snapshotsAvailable", True),
        "steps": [
            {"stepId": f"s{i}", "outputSnapshot": out, "durationMs": 5}
            for i, out in enumerate(outputs)
        ],
        **extra,
    }


SESSION = {
    "sessionId": SID,
    "executions": [
        execution("E1", "hello-world", "execute", [{"response": "hi"}]),
        execution("E2", "two-step", "step", [{"draft": 1}, {"response": "final"}]),
        execution("E3", "hello-world", "job", [{"response": "job"}]),
    ],
}


@pytest.fixture
def replay_on(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NOUKAI_REPLAY_ENABLED", "true")


def serve(server: ScriptedServer, sessions: dict[str, tuple[int, Any]]) -> None:
    def responder(request: SeenRequest, conn: Conn) -> None:
        for session_id, (status, body) in sessions.items():
            if request.method == "GET" and request.path == f"/seq/sessions/{session_id}":
                conn.respond(status, body)
                return
        conn.respond(
            500, {"detail": {"code": "NO_LIVE_CALLS", "message": "live call during replay"}}
        )

    server.responders = responder


def live_requests(server: Any) -> list[str]:
    return [r.path for r in server.requests if not r.path.startswith("/seq/sessions/")]


async def test_replay_serves_execute_and_events_with_no_live_call(
    scripted_server: ScriptedServer, replay_on: None
) -> None:
    serve(scripted_server, {SID: (200, SESSION)})
    async with (
        nk.AsyncNoukai(api_key=KEY, base_url=scripted_server.base_url, org="o", project="p") as c,
        nk.trace_scope(client=c, replay_session_id=SID) as scope,
    ):
        assert scope.mode is nk.ScopeMode.REPLAY and scope.mode == "replay"
        assert nk.current_session_id() == SID
        result = await c.flow("hello-world").execute(message="anything")
        events = [e async for e in c.flow("two-step").events(message="whatever")]
    assert isinstance(result, nk.ExecuteResult)
    assert (result.status, result.result, result.execution_id, result.session_id) == (
        "completed",
        {"response": "hi"},
        "E1",
        SID,
    )
    assert [e.type for e in events] == [
        "run_started",
        "step_started",
        "step_completed",
        "step_started",
        "step_completed",
        "flow_completed",
    ]
    assert events[-1].result == {"response": "final"}  # type: ignore[union-attr]
    assert live_requests(scripted_server) == []
    assert len(scripted_server.requests) == 1


def test_sync_scope_fetches_lazily_and_replays_steps(
    scripted_server: ScriptedServer, replay_on: None
) -> None:
    serve(scripted_server, {SID: (200, SESSION)})
    with (
        nk.Noukai(api_key=KEY, base_url=scripted_server.base_url) as c,
        nk.replay_scope_sync(replay_session_id=SID),
    ):
        assert c.flow("o/p/hello-world").execute(message="x").result == {"response": "hi"}
        steps = list(c.flow("o/p/two-step").steps(message="y"))
    assert [s.output for s in steps] == [{"draft": 1}, {"response": "final"}]
    assert [s.step_index for s in steps] == [0, 1]
    assert live_requests(scripted_server) == []


async def test_sync_client_in_a_thread_uses_the_async_scopes_cassette(
    scripted_server: ScriptedServer, replay_on: None
) -> None:
    serve(scripted_server, {SID: (200, SESSION)})
    sync_client = nk.Noukai(api_key=KEY, base_url=scripted_server.base_url)
    async with (
        nk.AsyncNoukai(api_key=KEY, base_url=scripted_server.base_url) as c,
        nk.trace_scope(client=c, replay_session_id=SID),
    ):
        result = await asyncio.to_thread(sync_client.flow("o/p/hello-world").execute, message="x")
        steps = await asyncio.to_thread(lambda: list(sync_client.flow("o/p/two-step").steps()))
    sync_client.close()
    assert result.result == {"response": "hi"} and len(steps) == 2
    assert len(scripted_server.requests) == 1  # fetched once, by the async scope


def test_miss_and_leftover(scripted_server: ScriptedServer, replay_on: None) -> None:
    serve(scripted_server, {SID: (200, SESSION)})
    with nk.Noukai(api_key=KEY, base_url=scripted_server.base_url) as c:
        with (
            pytest.raises(nk.ReplayLeftoverError) as info,
            nk.trace_scope_sync(client=c, replay_session_id=SID),
        ):
            c.flow("o/p/hello-world").execute(message="x")
            with pytest.raises(nk.ReplayMissError):
                c.flow("o/p/hello-world").execute(message="second call: not recorded")
        assert info.value.execution_id == "E2"  # the unconsumed step run; jobs are not replayable
        with (
            pytest.raises(nk.ReplayMissError),
            nk.trace_scope_sync(client=c, replay_session_id=SID),
        ):
            c.flow("o/p/hello-world").execute_async(message="jobs are not replayed")
    assert live_requests(scripted_server) == []


@pytest.mark.parametrize(
    ("status", "error"),
    [
        (403, nk.ReplayForbiddenError),
        (404, nk.ReplaySessionNotFoundError),
        (410, nk.ReplaySessionExpiredError),
        (400, nk.ReplayInvalidSessionError),
    ],
)
async def test_session_fetch_failures(
    scripted_server: ScriptedServer, replay_on: None, status: int, error: type[nk.ReplayError]
) -> None:
    serve(scripted_server, {SID: (status, {"detail": {"code": "X", "message": "no"}})})
    async with nk.AsyncNoukai(api_key=KEY, base_url=scripted_server.base_url) as c:
        with pytest.raises(error) as info:
            async with nk.trace_scope(client=c, replay_session_id=SID):
                pass
    assert info.value.status_code == status


def test_no_snapshots_and_malformed_payloads(
    scripted_server: ScriptedServer, replay_on: None
) -> None:
    no_snaps = {
        "sessionId": SID,
        "executions": [execution("E1", "f", "execute", [], snapshotsAvailable=False)],
    }
    serve(scripted_server, {SID: (200, no_snaps), OTHER_SID: (200, {"executions": "nope"})})
    with nk.Noukai(api_key=KEY, base_url=scripted_server.base_url) as c:
        with (
            pytest.raises(nk.ReplayNoSnapshotsError),
            nk.trace_scope_sync(client=c, replay_session_id=SID),
        ):
            pass
        with (
            pytest.raises(nk.ReplayInvalidSessionError),
            nk.trace_scope_sync(client=c, replay_session_id=OTHER_SID),
        ):
            pass


def test_replay_disabled_by_the_env_var(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NOUKAI_REPLAY_ENABLED", "false")
    assert nk.replay_enabled() is False
    with pytest.raises(nk.ReplayDisabledError), nk.trace_scope_sync(replay_session_id=SID):
        pass


def test_non_uuid_replay_id_never_reaches_a_url(replay_on: None) -> None:
    with (
        pytest.raises(nk.ReplayInvalidSessionError),
        nk.trace_scope_sync(replay_session_id="../../x"),
    ):
        pass


def test_failed_run_replays_as_a_failed_result(
    scripted_server: ScriptedServer, replay_on: None
) -> None:
    failed = execution("E9", "always-fails", "execute", [None], status="failed", errorAtStep="s0")
    failed["steps"][0]["status"] = "failed"
    failed["steps"][0]["errorSnapshot"] = {"code": "BLOCK_FAILED", "message": "always"}
    serve(scripted_server, {SID: (200, {"sessionId": SID, "executions": [failed]})})
    with (
        nk.Noukai(api_key=KEY, base_url=scripted_server.base_url) as c,
        nk.trace_scope_sync(client=c, replay_session_id=SID),
    ):
        result = c.flow("o/p/always-fails").execute(message="x")
    assert result.status == "failed" and result.error is not None
    assert (result.error.code, result.error.message, result.error.step_id) == (
        "BLOCK_FAILED",
        "always",
        "s0",
    )


def test_explicit_session_id_in_a_replay_scope_replays_that_session(
    scripted_server: ScriptedServer, replay_on: None
) -> None:
    other = {
        "sessionId": OTHER_SID,
        "executions": [execution("X1", "hello-world", "execute", ["other"])],
    }
    serve(scripted_server, {SID: (200, SESSION), OTHER_SID: (200, other)})
    # The scope's own session is never consumed: its exit reports the leftover.
    with (
        nk.Noukai(api_key=KEY, base_url=scripted_server.base_url) as c,
        pytest.raises(nk.ReplayLeftoverError),
        nk.trace_scope_sync(client=c, replay_session_id=SID),
    ):
        result = c.flow("o/p/hello-world").execute(message="x", session_id=OTHER_SID)
    assert result.result == "other" and result.session_id == OTHER_SID
    assert live_requests(scripted_server) == []


async def test_nested_scopes_join_and_different_replay_ids_conflict(
    scripted_server: ScriptedServer, replay_on: None
) -> None:
    serve(scripted_server, {SID: (200, {"sessionId": SID, "executions": []})})
    async with (
        nk.AsyncNoukai(api_key=KEY, base_url=scripted_server.base_url) as c,
        nk.trace_scope(client=c, replay_session_id=SID) as outer,
    ):
        async with nk.trace_scope() as inner:
            assert inner is outer and inner.mode is nk.ScopeMode.REPLAY
        with nk.trace_scope_sync(replay_session_id=SID) as inner_sync:
            assert inner_sync is outer
        conflicting = nk.trace_scope(replay_session_id=OTHER_SID)
        with pytest.raises(ValueError):
            await conflicting.__aenter__()
    assert nk.current_session_id() is None


async def test_trace_decorator_joins_the_active_scope_and_captures_alone() -> None:
    @nk.trace
    async def handler() -> str | None:
        return nk.current_session_id()

    @nk.replay
    def sync_handler() -> str | None:
        return nk.current_session_id()

    alone = await handler()
    assert alone is not None and uuid.UUID(alone).version == 4
    assert sync_handler() not in (None, alone)
    async with nk.trace_scope() as scope:
        assert scope.mode is nk.ScopeMode.CAPTURE
        assert await handler() == scope.session_id
        assert sync_handler() == scope.session_id


async def test_a_decorated_handler_under_a_replay_scope_replays_and_never_forks(
    scripted_server: ScriptedServer, replay_on: None
) -> None:
    """A `@trace` route under a middleware's replay scope: same session, same cassette.

    Only the outermost scope checks leftovers: the handler consumes one of the
    two recorded runs and returns normally; the middleware's scope, at its
    exit, reports the other.
    """
    serve(scripted_server, {SID: (200, SESSION)})
    async with nk.AsyncNoukai(api_key=KEY, base_url=scripted_server.base_url) as c:

        @nk.trace
        async def handler() -> tuple[str | None, Any]:
            result = await c.flow("o/p/hello-world").execute(message="x")
            return nk.current_session_id(), result

        with pytest.raises(nk.ReplayLeftoverError) as info:
            async with nk.trace_scope(client=c, replay_session_id=SID):
                session_id, result = await handler()
                assert session_id == SID
                assert (result.result, result.session_id) == ({"response": "hi"}, SID)
    assert info.value.execution_id == "E2"
    assert live_requests(scripted_server) == [] and len(scripted_server.requests) == 1


async def test_trace_keeps_its_scope_while_an_async_generator_is_iterated() -> None:
    """A decorated streaming body runs after the view returned: its scope must still hold."""

    @nk.trace
    async def body() -> AsyncIterator[str | None]:
        yield nk.current_session_id()
        yield nk.current_session_id()

    alone = [item async for item in body()]
    assert alone[0] is not None and alone == [alone[0]] * 2
    async with nk.trace_scope() as scope:
        assert [item async for item in body()] == [scope.session_id] * 2
    early = body()
    assert await early.__anext__() is not None
    await early.aclose()
    assert nk.current_session_id() is None


def test_trace_keeps_its_scope_while_a_generator_is_advanced_from_threads() -> None:
    """Starlette advances a sync body in a worker thread, with a fresh context copy per step."""

    @nk.trace
    def body() -> Iterator[str | None]:
        yield nk.current_session_id()
        yield nk.current_session_id()

    def advance_like_starlette(iterator: Iterator[str | None]) -> list[str | None]:
        items, outside = [], nk.current_session_id()
        with ThreadPoolExecutor(max_workers=2) as pool:
            while True:
                step = pool.submit(contextvars.copy_context().run, next, iterator, _END)
                item = step.result()
                if item is _END:
                    return items
                items.append(item)
                assert nk.current_session_id() == outside  # nothing leaks between steps

    items = advance_like_starlette(body())
    assert items[0] is not None and items == [items[0]] * 2
    with nk.trace_scope_sync() as scope:
        assert advance_like_starlette(body()) == [scope.session_id] * 2
        assert list(body()) == [scope.session_id] * 2


_END: Any = object()


async def test_a_scope_block_is_entered_only_once() -> None:
    """Reusing one block would end the outer block's session at the inner exit."""
    block = nk.trace_scope_sync()
    with block as scope:
        with pytest.raises(RuntimeError, match="entered only once"), block:
            pass
        assert nk.current_session_id() == scope.session_id  # still the outer session
    assert nk.current_session_id() is None
    async_block = nk.trace_scope()
    async with async_block:
        pass
    with pytest.raises(RuntimeError, match="entered only once"):
        async with async_block:
            pass
