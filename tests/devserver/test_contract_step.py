"""Contract checks, part 2: the `/step` stream (§5-§7) and the live trace (§10.3).

Every stream is read to EOF and parsed by the strict reader of
`test_contract_sse_parser`, and every payload is checked against §6.3, so
each test here also checks checklist items 12, 16 and 17 on its stream.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

sys.path.insert(0, str(Path(__file__).parent))

from test_contract_sse_parser import (
    TERMINAL_TYPES,
    StreamReply,
    check_error,
    check_event,
    check_tokens,
    execute_body,
    flow_path,
    open_client,
    parse_stream,
    read_stream,
    step_body,
)

from noukai_devserver.pytest_plugin import DevServer


@pytest.fixture
def client(noukai_devserver: DevServer) -> Iterator[httpx.Client]:
    with open_client(noukai_devserver.base_url, noukai_devserver.api_key) as c:
        yield c


def _step(client: httpx.Client, slug: str, body: dict[str, Any]) -> StreamReply:
    reply = read_stream(client, "POST", flow_path(slug, "step"), body)
    assert reply.response.status_code == 200, reply.raw
    assert reply.response.headers.get("x-request-id")
    return reply


def _check_ends_at_terminal(reply: StreamReply) -> None:
    """Items 19, 23: exactly one terminal frame, and it is the last data frame."""
    terminal = [t for t in reply.types if t in TERMINAL_TYPES]
    assert len(terminal) == 1 and reply.types[-1] == terminal[0], reply.types


def drive(client: httpx.Client, slug: str, message: str | None,
          run_remaining: bool = False, ts_nulls: bool = False) -> list[StreamReply]:
    """Run a flow step by step exactly as the §7.1 client algorithm does."""
    outputs: dict[str, Any] = {}
    completed = 0
    execution_id: str | None = None
    replies: list[StreamReply] = []
    for _ in range(10):
        if execution_id is None:
            body = step_body(message, run_remaining=run_remaining)
        else:
            body = step_body(None, step_index=completed, execution_id=execution_id,
                             outputs=dict(outputs), run_remaining=run_remaining)
            if ts_nulls:  # §1.4: the TS SDK sends these as explicit nulls
                body.update(message=None, toolCallMessages=None, attachments=None,
                            tools=None, toolChoice=None, blockOverrides=None)
        reply = _step(client, slug, body)
        replies.append(reply)
        _check_ends_at_terminal(reply)
        for event in reply.events:
            if event["eventType"] == "run_started":
                execution_id = event["executionId"]
            if event["eventType"] == "step_completed":
                outputs[event["stepId"]] = event["output"]
                completed += 1
        if reply.types[-1] != "step_paused":
            return replies
    raise AssertionError("more than 10 /step calls for a demo flow")


def _all_events(replies: list[StreamReply]) -> list[dict[str, Any]]:
    return [e for r in replies for e in r.events]


def test_one_block_flow_is_run_started_to_flow_completed(client: httpx.Client) -> None:
    """Items 13, 18, 19, 21: one call, no step_paused after the last block."""
    [reply] = drive(client, "hello-world", "hi there")
    types = reply.types
    assert types[0] == "run_started" and types[-1] == "flow_completed", types
    assert types.count("run_started") == 1 and "step_paused" not in types
    assert types.count("step_completed") == 1
    done = next(e for e in reply.events if e["eventType"] == "step_completed")
    check_tokens(done["tokens"])
    assert done["tokens"]["total"] > 0 and float(done["costUsd"]) >= 0
    assert reply.events[-1]["result"] == done["output"] is not None
    assert {e["executionId"] for e in reply.events} == {reply.events[0]["executionId"]}


@pytest.mark.parametrize("ts_nulls", [False, True])
def test_two_block_flow_step_by_step(client: httpx.Client, ts_nulls: bool) -> None:
    """Items 14, 19, 20, 21: step_paused between blocks, cursor continuation."""
    first, second = drive(client, "two-step", "hello", ts_nulls=ts_nulls)
    assert first.types[0] == "run_started" and first.types[-1] == "step_paused"
    assert first.types.count("step_completed") == 1
    paused = first.events[-1]
    assert paused["stepId"] == "draft" and paused["stepIndex"] == 0
    assert "run_started" not in second.types and second.types[-1] == "flow_completed"
    assert second.types.count("step_completed") == 1
    events = _all_events([first, second])
    completed = [e for e in events if e["eventType"] == "step_completed"]
    assert [e["stepId"] for e in completed] == ["draft", "summarise"]
    started = [e for e in events if e["eventType"] == "step_started"]
    assert [e.get("stepIndex", i) for i, e in enumerate(started)] == [0, 1]
    assert events[-1]["result"] == completed[-1]["output"]
    assert len({e["executionId"] for e in events}) == 1


def test_run_remaining_streams_every_block_without_pauses(client: httpx.Client) -> None:
    """Item 19: runRemaining: all blocks in one stream, no step_paused, one run_started."""
    [reply] = drive(client, "slow-steps", "go", run_remaining=True)
    types = reply.types
    assert types[0] == "run_started" and types[-1] == "flow_completed"
    assert "step_paused" not in types and types.count("run_started") == 1
    ids = [e["stepId"] for e in reply.events if e["eventType"] == "step_completed"]
    assert ids == ["first", "second", "third"]


def test_step_by_step_equals_run_remaining(client: httpx.Client) -> None:
    """Items 20, 21: the cursor protocol yields the same outputs as one stream."""
    steps = _all_events(drive(client, "slow-steps", "same input"))
    whole = _all_events(drive(client, "slow-steps", "same input", run_remaining=True))

    def outputs(events: list[dict[str, Any]]) -> list[Any]:
        return [(e["stepId"], e["output"]) for e in events
                if e["eventType"] == "step_completed"]
    assert outputs(steps) == outputs(whole) and len(outputs(steps)) == 3
    assert steps[-1]["result"] == whole[-1]["result"]
    assert [e["eventType"] for e in steps].count("step_paused") == 2


def test_loop_block_has_exactly_one_step_completed(client: httpx.Client) -> None:
    """Items 17, 18: loop iterations never surface as extra step_completed frames."""
    [reply] = drive(client, "loop-list", None)
    completed = [e for e in reply.events if e["eventType"] == "step_completed"]
    assert [e["stepId"] for e in completed] == ["each"]
    for event in reply.events:
        assert event["eventType"] not in ("step_started", "step_completed") or \
            event["stepId"] == "each"
    assert reply.events[-1]["result"] == completed[0]["output"]


def test_streamed_block_emits_step_output_then_completes(client: httpx.Client) -> None:
    [reply] = drive(client, "stream-story", "a fox")
    assert "step_output" in reply.types
    assert reply.types.index("step_output") < reply.types.index("step_completed")


def test_failing_block_ends_with_step_error(client: httpx.Client) -> None:
    """Item 22: mid-stream failure is a step_error frame, then end of stream."""
    [reply] = drive(client, "always-fails", "x", run_remaining=True)
    assert reply.types[-1] == "step_error" and "flow_completed" not in reply.types
    error = reply.events[-1]
    assert error["stepId"] == "explode"
    assert isinstance(error["error"], dict) and isinstance(error["error"].get("code"), str)


def test_slow_block_stream_carries_heartbeat_comments(client: httpx.Client) -> None:
    """Item 12: comment frames keep the connection alive while a block runs."""
    [reply] = drive(client, "slow-steps", "tick", run_remaining=True)
    assert any(f.data is None and f.comments for f in reply.frames)


# -- pre-stream failures are JSON errors (item 22, §7.2) -----------------------

def _first(client: httpx.Client, slug: str = "slow-steps") -> tuple[str, dict[str, Any]]:
    [reply] = [_step(client, slug, step_body("x"))]
    outputs = {e["stepId"]: e["output"] for e in reply.events
               if e["eventType"] == "step_completed"}
    return reply.events[0]["executionId"], outputs


def test_fresh_call_with_nonzero_index_is_invalid_first_call(client: httpx.Client) -> None:
    check_error(client.post(flow_path("two-step", "step"), json=step_body("x", step_index=1)),
                400, "INVALID_FIRST_CALL")


def test_continuation_cursor_validation(client: httpx.Client) -> None:
    """§7.2: unknown id 404 RUN_NOT_FOUND; skipping ahead / out of range 400."""
    execution_id, outputs = _first(client)
    unknown = step_body(None, step_index=1, execution_id="00000000-0000-4000-8000-000000000000")
    check_error(client.post(flow_path("slow-steps", "step"), json=unknown), 404, "RUN_NOT_FOUND")
    other_flow = step_body(None, step_index=1, execution_id=execution_id, outputs=outputs)
    check_error(client.post(flow_path("two-step", "step"), json=other_flow),
                404, "RUN_NOT_FOUND")
    for index in (2, 3, -1):
        body = step_body(None, step_index=index, execution_id=execution_id, outputs=outputs)
        check_error(client.post(flow_path("slow-steps", "step"), json=body),
                    400, "INVALID_STEP_INDEX")


def test_rerunning_the_current_block_is_legal(client: httpx.Client) -> None:
    """§7.2: the same cursor twice re-runs the block; then the run goes on."""
    execution_id, outputs = _first(client)
    cursor = step_body(None, step_index=1, execution_id=execution_id, outputs=outputs)
    once = _step(client, "slow-steps", cursor)
    twice = _step(client, "slow-steps", cursor)
    for reply in (once, twice):
        assert reply.types[-1] == "step_paused" and "run_started" not in reply.types
        assert [e["stepId"] for e in reply.events if e["eventType"] == "step_completed"] == \
            ["second"]
    outputs["second"] = next(e["output"] for e in twice.events
                             if e["eventType"] == "step_completed")
    last = _step(client, "slow-steps", step_body(None, step_index=2, execution_id=execution_id,
                                                  outputs=outputs))
    assert last.types[-1] == "flow_completed"


def test_continuation_uses_client_accumulated_outputs(client: httpx.Client) -> None:
    """§7.2 / item 20: the client's accumulatedOutputs feed later blocks."""
    execution_id, _ = _first(client, "two-step")
    supplied = {"draft": {"response": "CLIENT-SUPPLIED-DRAFT"}}
    reply = _step(client, "two-step", step_body(None, step_index=1, execution_id=execution_id,
                                                 outputs=supplied))
    done = [e for e in reply.events if e["eventType"] == "step_completed"]
    assert "CLIENT-SUPPLIED-DRAFT" in str(done[0]["output"])


def test_next_call_may_overlap_the_previous_connection(noukai_devserver: DevServer) -> None:
    """Item 8 / §6.4: /step for the same run while the last stream is still open."""
    url, key = noukai_devserver.base_url, noukai_devserver.api_key
    with open_client(url, key) as first, open_client(url, key) as second, \
            first.stream("POST", flow_path("two-step", "step"), json=step_body("o")) as held:
        buffer = b""
        for chunk in held.iter_raw():
            buffer += chunk
            if b"event: step_paused" in buffer and buffer.endswith(b"\n\n"):
                break
        frames = parse_stream(buffer)
        events = [f.data for f in frames if f.data is not None]
        outputs = {e["stepId"]: e["output"] for e in events
                   if e["eventType"] == "step_completed"}
        body = step_body(None, step_index=1, execution_id=events[0]["executionId"],
                         outputs=outputs)
        # `held` is still open here; a run lock bound to it would hang this call.
        reply = read_stream(second, "POST", flow_path("two-step", "step"), body)
        assert reply.response.status_code == 200
        assert reply.types[-1] == "flow_completed"


# -- §10.3 / item 33: the live trace stream -------------------------------------

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
    first = _step(client, "two-step", step_body("wait"))
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
        second = _step(client, "two-step", step_body(None, step_index=1,
                                                     execution_id=execution_id,
                                                     outputs=outputs))
        tail = [f.data for f in parse_stream(head + b"".join(chunks)) if f.data is not None]
    for payload in tail:
        check_event(payload)
    types = [e["eventType"] for e in tail]
    assert types[-1] == "flow_completed" and types.count("run_started") == 1
    assert [e["stepId"] for e in tail if e["eventType"] == "step_completed"] == \
        ["draft", "summarise"]
    assert tail[-1]["result"] == second.events[-1]["result"]


def test_input_overrides_reach_the_named_block(client: httpx.Client) -> None:
    """§5.1 [inferred semantics]: a stepId key is merged into that block's input;
    any other key into the input of the block about to run."""
    def outputs(overrides: dict[str, Any]) -> dict[str, str]:
        reply = _step(client, "two-step", step_body("hi", run_remaining=True,
                                                    inputOverrides=overrides))
        return {e["stepId"]: str(e["output"]) for e in reply.events
                if e["eventType"] == "step_completed"}
    plain = outputs({})
    assert "ZZ-OVERRIDE" not in str(plain)
    targeted = outputs({"summarise": {"draft": {"response": "ZZ-OVERRIDE"}}})
    assert "ZZ-OVERRIDE" not in targeted["draft"] and "ZZ-OVERRIDE" in targeted["summarise"]
    current = outputs({"message": "ZZ-OVERRIDE"})
    assert "ZZ-OVERRIDE" in current["draft"]


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
