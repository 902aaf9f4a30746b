"""Contract checks, part 2: the `/step` stream and its cursor protocol (§5-§7).

Every stream is read to EOF and parsed by the strict reader of
`test_contract_sse_parser`, and every payload is checked against §6.3, so
each test here also checks checklist items 12, 16 and 17 on its stream. `drive`
and `post_step` are reused by `test_contract_live_trace`.
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
    check_tokens,
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


def post_step(client: httpx.Client, slug: str, body: dict[str, Any]) -> StreamReply:
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
        reply = post_step(client, slug, body)
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
    [reply] = [post_step(client, slug, step_body("x"))]
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
    once = post_step(client, "slow-steps", cursor)
    twice = post_step(client, "slow-steps", cursor)
    for reply in (once, twice):
        assert reply.types[-1] == "step_paused" and "run_started" not in reply.types
        assert [e["stepId"] for e in reply.events if e["eventType"] == "step_completed"] == \
            ["second"]
    outputs["second"] = next(e["output"] for e in twice.events
                             if e["eventType"] == "step_completed")
    last = post_step(client, "slow-steps",
                     step_body(None, step_index=2, execution_id=execution_id, outputs=outputs))
    assert last.types[-1] == "flow_completed"


def test_continuation_uses_client_accumulated_outputs(client: httpx.Client) -> None:
    """§7.2 / item 20: the client's accumulatedOutputs feed later blocks."""
    execution_id, _ = _first(client, "two-step")
    supplied = {"draft": {"response": "CLIENT-SUPPLIED-DRAFT"}}
    reply = post_step(client, "two-step",
                      step_body(None, step_index=1, execution_id=execution_id, outputs=supplied))
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


def test_input_overrides_reach_the_named_block(client: httpx.Client) -> None:
    """§5.1 [inferred semantics]: a stepId key is merged into that block's input;
    any other key into the input of the block about to run."""
    def outputs(overrides: dict[str, Any]) -> dict[str, str]:
        reply = post_step(client, "two-step",
                          step_body("hi", run_remaining=True, inputOverrides=overrides))
        return {e["stepId"]: str(e["output"]) for e in reply.events
                if e["eventType"] == "step_completed"}
    plain = outputs({})
    assert "ZZ-OVERRIDE" not in str(plain)
    targeted = outputs({"summarise": {"draft": {"response": "ZZ-OVERRIDE"}}})
    assert "ZZ-OVERRIDE" not in targeted["draft"] and "ZZ-OVERRIDE" in targeted["summarise"]
    current = outputs({"message": "ZZ-OVERRIDE"})
    assert "ZZ-OVERRIDE" in current["draft"]
