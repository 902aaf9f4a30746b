"""Contract checks, part 8: the live trace stream (§10.3, checklist item 33).

Replays of finished runs (execute, step, failed, tool-paused), tailing of
running and idle runs, stream headers, and resuming after `Last-Event-ID`.
Every stream goes through the strict reader of `test_contract_sse_parser`.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

sys.path.insert(0, str(Path(__file__).parent))

from test_contract_sse_parser import (
    StreamReply,
    check_event,
    execute_body,
    flow_path,
    open_client,
    parse_stream,
    read_stream,
    step_body,
)
from test_contract_step import drive, post_step

from noukai_devserver.pytest_plugin import DevServer


@pytest.fixture
def client(noukai_devserver: DevServer) -> Iterator[httpx.Client]:
    with open_client(noukai_devserver.base_url, noukai_devserver.api_key) as c:
        yield c


def _trace_stream(client: httpx.Client, slug: str, execution_id: str) -> StreamReply:
    reply = read_stream(client, "GET", flow_path(slug, f"runs/{execution_id}/trace/stream"))
    assert reply.response.status_code == 200, reply.raw
    return reply


def test_trace_stream_replays_an_execute_run(client: httpx.Client) -> None:
    done = client.post(flow_path("two-step", "execute"), json=execute_body("replay me")).json()
    reply = _trace_stream(client, "two-step", done["executionId"])
    assert reply.types[0] == "run_started" and reply.types[-1] == "flow_completed"
    assert reply.events[0]["runId"] == done["executionId"]
    assert "step_paused" not in reply.types
    ids = [e["stepId"] for e in reply.events if e["eventType"] == "step_completed"]
    assert ids == ["draft", "summarise"]
    assert reply.events[-1]["result"] == done["result"]


def test_trace_stream_replays_a_step_run_without_protocol_pauses(client: httpx.Client) -> None:
    replies = drive(client, "two-step", "by steps")
    execution_id = replies[0].events[0]["executionId"]
    reply = _trace_stream(client, "two-step", execution_id)
    assert reply.types[0] == "run_started" and reply.types[-1] == "flow_completed"
    assert reply.types.count("run_started") == 1 and "step_paused" not in reply.types
    assert reply.events[-1]["result"] == replies[-1].events[-1]["result"]


def test_trace_stream_of_a_failed_run_ends_with_flow_completed(client: httpx.Client) -> None:
    """§10.3: step_error, then a final flow_completed with result null."""
    failed = client.post(flow_path("always-fails", "execute"), json=execute_body("x"))
    execution_id = failed.json()["executionId"] if failed.status_code == 200 else \
        failed.json()["detail"]["executionId"]
    reply = _trace_stream(client, "always-fails", execution_id)
    assert "step_error" in reply.types
    assert reply.types[-1] == "flow_completed" and reply.events[-1]["result"] is None


def test_trace_stream_tails_a_running_run_until_it_ends(client: httpx.Client,
                                                         noukai_devserver: DevServer) -> None:
    """§10.3: replay, then live frames, then close once the run is terminal."""
    with client.stream("POST", flow_path("slow-steps", "step"),
                       json=step_body("live", run_remaining=True)) as live_run:
        chunks = live_run.iter_raw()
        head = b""
        while b"\n\n" not in head:
            head += next(chunks)
        first_frame = parse_stream(head[: head.index(b"\n\n") + 2])[0]
        assert first_frame.data is not None
        with open_client(noukai_devserver.base_url, noukai_devserver.api_key) as tracer:
            reply = _trace_stream(tracer, "slow-steps", first_frame.data["executionId"])
        rest = head + b"".join(chunks)
    assert reply.types[0] == "run_started" and reply.types[-1] == "flow_completed"
    live = [f.data for f in parse_stream(rest) if f.data is not None]
    for payload in live:
        check_event(payload)
    assert reply.events[-1]["result"] == live[-1]["result"]
    traced = [e["stepId"] for e in reply.events if e["eventType"] == "step_completed"]
    assert traced == ["first", "second", "third"]


def test_trace_stream_of_a_tool_paused_run_ends_with_the_pause(client: httpx.Client) -> None:
    """§10.3 / Q13: a run paused for tools: replay up to the pause frame, then close."""
    tools = [{"type": "function", "function": {"name": "get_weather", "parameters": {}}}]
    paused = client.post(flow_path("tools-enabled", "execute"),
                         json=execute_body("Weather in Tokyo?", tools=tools)).json()
    reply = _trace_stream(client, "tools-enabled", paused["executionId"])
    assert reply.types[0] == "run_started"
    assert reply.types[-1] == "step_paused_for_tool_calls"
    assert reply.events[-1]["toolCalls"] == paused["toolCalls"]


def test_trace_stream_tails_a_step_run_waiting_between_blocks(
        client: httpx.Client, noukai_devserver: DevServer) -> None:
    """§10.3: not terminal between /step calls; tails the next call live, then closes."""
    first = post_step(client, "two-step", step_body("wait"))
    execution_id = first.events[0]["executionId"]
    with open_client(noukai_devserver.base_url, noukai_devserver.api_key) as tracer, \
            tracer.stream("GET", flow_path("two-step", f"runs/{execution_id}/trace/stream")) \
            as live:
        assert live.status_code == 200
        chunks = live.iter_raw()
        head = b""
        while b"event: step_completed" not in head or not head.endswith(b"\n\n"):
            head += next(chunks)
        replayed = [f.data for f in parse_stream(head) if f.data is not None]
        # Idle between /step calls: heartbeat comments keep the tail alive.
        while not parse_stream(head)[-1].comments:
            head += next(chunks)
            while not head.endswith(b"\n\n"):
                head += next(chunks)
        assert replayed[0]["eventType"] == "run_started"
        assert "step_paused" not in [e["eventType"] for e in replayed]
        outputs = {"draft": first.events[-2]["output"]}
        second = post_step(client, "two-step", step_body(
            None, step_index=1, execution_id=execution_id, outputs=outputs))
        tail = [f.data for f in parse_stream(head + b"".join(chunks)) if f.data is not None]
    for payload in tail:
        check_event(payload)
    types = [e["eventType"] for e in tail]
    assert types[-1] == "flow_completed" and types.count("run_started") == 1
    assert [e["stepId"] for e in tail if e["eventType"] == "step_completed"] == \
        ["draft", "summarise"]
    assert tail[-1]["result"] == second.events[-1]["result"]


def test_stream_headers_forbid_caching_and_compression(client: httpx.Client) -> None:
    """§5.2 recommended: no-cache, X-Accel-Buffering: no, never compressed (even when
    the client offers gzip, as httpx does by default)."""
    [first] = drive(client, "hello-world", "hdr")
    execution_id = first.events[0]["executionId"]
    live = _trace_stream(client, "hello-world", execution_id)
    for reply in (first, live):
        headers = reply.response.headers
        assert "no-cache" in headers.get("cache-control", "")
        assert headers.get("x-accel-buffering") == "no"
        assert "content-encoding" not in headers
    assert "gzip" in first.response.request.headers.get("accept-encoding", "")


def test_trace_stream_resumes_after_last_event_id(client: httpx.Client) -> None:
    """§10.3: a client may reconnect with Last-Event-ID: it gets exactly the rest."""
    done = client.post(flow_path("two-step", "execute"), json=execute_body("resume")).json()
    full = _trace_stream(client, "two-step", done["executionId"])
    framed = [f for f in full.frames if f.data is not None]
    assert all(f.id for f in framed), "replayed frames carry ids to resume from"
    cut = 2
    rest = read_stream(client, "GET",
                       flow_path("two-step", f"runs/{done['executionId']}/trace/stream"),
                       headers={"Last-Event-ID": str(framed[cut].id)})
    assert rest.response.status_code == 200
    assert rest.events == [f.data for f in framed[cut + 1:]]
