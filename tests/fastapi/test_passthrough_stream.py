"""The passthrough's stream over a real uvicorn server, against a canned upstream.

What a browser receives once a run started, asserted on the raw bytes: the
frames and ids, what the event policy hides, heartbeats, the final error
event, a slow reader, and events leaving as soon as they arrive.
"""

from __future__ import annotations

import json
import threading
import time
from typing import Any

import httpx

from noukai_core.web import EventPolicy
from noukai_fastapi import StreamedFlow


def post(base_url: str, path: str, body: Any = None, **kwargs: Any) -> httpx.Response:
    return httpx.post(f"{base_url}{path}", json=body, timeout=10, **kwargs)


def test_streams_forwarded_events_as_sse(
    canned_upstream: Any, serve_passthrough: Any, sse_frames: Any
) -> None:
    with serve_passthrough() as base:
        response = post(base, "/noukai/flows/hello-world", {"message": "hi"})
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/event-stream")
    assert response.headers["cache-control"] == "no-cache, no-transform"
    assert response.headers["x-accel-buffering"] == "no"
    frames = sse_frames(response.content)
    assert [f[0] for f in frames] == [
        "run_started", "step_started", "step_output", "step_completed",
        "step_started", "step_output", "step_completed", "flow_completed",
    ]
    assert [f[2] for f in frames] == [str(i) for i in range(1, 9)]
    assert frames[-1][1]["result"] == {"response": "out 1"}
    method, path, _headers, body = canned_upstream.requests[0]
    assert (method, path) == ("POST", "/api/v1/seq/acme/demo/hello-world/step")
    assert json.loads(body)["message"] == "hi"


def run_with_every_hidden_field(upstream: Any) -> list[list[bytes]]:
    """The upstream replies of a run that carries everything a browser must not see.

    Three `/step` replies (a block ending in `step_paused`, a tool-call pause,
    the resumed rest), with the API key's text inside the prompt, the tool
    messages and the error message, so "absent from the bytes" can fail.
    """
    frame = upstream.frame
    ids = {"executionId": "exec-hidden"}
    usage = {"tokens": {"prompt": 3, "completion": 4, "total": 7}, "costUsd": "0.000007"}
    first_block = [
        frame("run_started", {**ids, "runId": "exec-hidden", "stepCount": 2}),
        frame("step_started", {**ids, "stepId": "s0", "name": "Draft", "stepIndex": 0}),
        frame("step_input", {**ids, "stepId": "s0",
                             "inputData": {"prompt": "PROMPT signed nk_test_key"}}),
        frame("step_output", {**ids, "stepId": "s0", "outputData": "visible draft"}),
        frame("step_completed", {**ids, "stepId": "s0", "output": {"response": "draft"},
                                 "durationMs": 5, **usage}),
        frame("step_paused", {**ids, "stepId": "s0", "stepIndex": 0, "nextStepIndex": 1}),
    ]
    tool_pause = [
        frame("step_started", {**ids, "stepId": "s1", "name": "Check", "stepIndex": 1}),
        frame("step_paused_for_tool_calls", {
            **ids, "runId": "exec-hidden", "stepId": "s1", "stepIndex": 1,
            "iterationsUsed": 1,
            "toolCallMessages": [{"role": "assistant", "content": "TOOL-MESSAGES nk_test_key"}],
            "toolCalls": [{"id": "call-1", "type": "function",
                           "function": {"name": "lookup", "arguments": "{}"}}],
            "accumulatedOutputs": {"s0": "ACCUMULATED"}}),
    ]
    resumed = [
        frame("step_output", {**ids, "stepId": "s1", "outputData": "visible check"}),
        frame("step_completed", {**ids, "stepId": "s1", "output": {"response": "checked"},
                                 "durationMs": 5, **usage}),
        frame("flow_completed", {**ids, "runId": "exec-hidden",
                                 "result": {"response": "checked"},
                                 "summary": {"status": "completed", **usage}}),
    ]
    failing = [
        frame("run_started", {**ids, "runId": "exec-hidden", "stepCount": 1}),
        frame("step_started", {**ids, "stepId": "s0", "name": "Draft", "stepIndex": 0}),
        frame("step_error", {**ids, "stepId": "s0", "error": {
            "code": "PROVIDER_ERROR", "message": "provider rejected nk_test_key"}}),
    ]
    return [first_block, tool_pause, resumed, failing]


HIDDEN = [b"step_input", b"inputData", b"input_data", b"PROMPT", b"step_paused",
          b"tool_calls_required", b"toolCallMessages", b"tool_call_messages", b"TOOL-MESSAGES",
          b"toolCalls", b"tool_calls", b"call-1", b"accumulatedOutputs", b"accumulated_outputs",
          b"ACCUMULATED", b"iterationsUsed", b"tokens", b"costUsd", b"cost_usd", b"nk_",
          b"provider rejected"]


def test_dropped_fields_and_key_never_reach_the_browser(
    canned_upstream: Any, serve_passthrough: Any, sse_frames: Any
) -> None:
    handled: list[list[dict[str, Any]]] = []

    def tool_handler(calls: list[dict[str, Any]]) -> list[dict[str, Any]]:
        handled.append(calls)
        return [{"tool_call_id": call["id"], "output": "found"} for call in calls]

    canned_upstream.replies = [canned_upstream.Reply(frames=frames)
                               for frames in run_with_every_hidden_field(canned_upstream)]
    flow = StreamedFlow("hello-world", tool_handler=tool_handler)
    with serve_passthrough(flows=[flow]) as base:
        completed = post(base, "/noukai/flows/hello-world", {"message": "hi"}).content
        failed = post(base, "/noukai/flows/hello-world", {"message": "hi"}).content
    # the upstream really sent all of it: three calls for the run, one for the failure
    assert len(canned_upstream.requests) == 4 and len(handled) == 1
    for hidden in HIDDEN:
        assert hidden not in completed + failed, hidden
    assert [kind for kind, _, _ in sse_frames(completed)] == [
        "run_started", "step_started", "step_output", "step_completed",
        "step_started", "step_output", "step_completed", "flow_completed"]
    assert sse_frames(completed)[-1][1]["summary"] == {"status": "completed"}
    last = sse_frames(failed)[-1]
    assert (last[0], last[1]["error"]) == ("step_error", {"code": "PROVIDER_ERROR"})


def test_event_policy_is_configurable(serve_passthrough: Any, sse_frames: Any) -> None:
    policy = EventPolicy().without("step_output").forwarding("step_input").keeping(
        "step_input", ["inputData"])
    with serve_passthrough(event_policy=policy) as base:
        frames = sse_frames(post(base, "/noukai/flows/hello-world", {"message": "x"}).content)
    types = [f[0] for f in frames]
    assert "step_output" not in types
    assert types.count("step_input") == 2
    assert frames[2][1]["inputData"] == {"secret": "PROMPT"}


def test_heartbeats_while_upstream_is_quiet(
    canned_upstream: Any, serve_passthrough: Any, sse_frames: Any
) -> None:
    frames = canned_upstream.run_frames(1, extra=False)
    canned_upstream.reply = canned_upstream.Reply(frames=frames, frame_delay=0.3)
    with serve_passthrough(heartbeat_interval=0.05) as base:
        raw = post(base, "/noukai/flows/hello-world", {"message": "x"}).content
    assert raw.count(b": keepalive\n\n") >= 2
    assert not raw.startswith(b":"), "no heartbeat before the first event (start waits for it)"
    assert sse_frames(raw)[-1][0] == "flow_completed"
    # heartbeats carry no id, events keep consecutive ids
    assert [f[2] for f in sse_frames(raw)] == ["1", "2", "3", "4"]


def test_error_after_first_event_is_a_final_error_event(
    canned_upstream: Any, serve_passthrough: Any, sse_frames: Any
) -> None:
    canned_upstream.reply = canned_upstream.Reply(
        frames=canned_upstream.run_frames(2), drop_after=3)
    with serve_passthrough() as base:
        response = post(base, "/noukai/flows/hello-world", {"message": "x"})
    assert response.status_code == 200
    frames = sse_frames(response.content)
    assert [f[0] for f in frames][-1] == "error"
    assert frames[-1][2] is None, "the error frame is not a real event: no id"
    assert set(frames[-1][1]) == {"code", "message"}
    assert b"Traceback" not in response.content and b"nk_" not in response.content


def test_a_slow_reader_gets_every_event_in_order(
    canned_upstream: Any, serve_passthrough: Any, sse_frames: Any
) -> None:
    # ~600 KB of events against a browser that reads slowly: the passthrough's
    # bounded buffer fills and pauses the upstream read, then resumes
    text = "x" * 250
    frames = [canned_upstream.frame("run_started", {"runId": "e", "executionId": "e"})]
    frames += [canned_upstream.frame("step_output", {"executionId": "e", "stepId": "s",
                                                     "outputData": {"i": i, "t": text}})
               for i in range(2_000)]
    frames.append(canned_upstream.frame("flow_completed", {"executionId": "e", "result": 1}))
    canned_upstream.reply = canned_upstream.Reply(frames=frames)
    received = bytearray()
    with serve_passthrough() as base, httpx.stream(
        "POST", f"{base}/noukai/flows/hello-world", json={"message": "x"}, timeout=30
    ) as response:
        for chunk in response.iter_bytes(chunk_size=16 * 1024):
            received += chunk
            time.sleep(0.002)
    events = sse_frames(bytes(received))
    outputs = [data["outputData"]["i"] for kind, data, _ in events if kind == "step_output"]
    assert outputs == list(range(2_000))
    assert [int(event_id) for _, _, event_id in events] == list(range(1, 2_003))
    assert events[-1][0] == "flow_completed"


def test_each_event_reaches_the_browser_before_the_upstream_sends_more(
    canned_upstream: Any, serve_passthrough: Any
) -> None:
    # The upstream sends one event at a time and waits for this test to have
    # seen it before sending the next. A passthrough that held an event back
    # for more input would stall until the upstream gave up waiting.
    frames = canned_upstream.run_frames(1, extra=False)
    seen_by_browser = [threading.Event() for _ in frames]
    reply = canned_upstream.Reply(frames=frames, holds=dict(enumerate(seen_by_browser[:-1], 1)))
    canned_upstream.reply = reply
    seen: list[str] = []
    sent_when_seen: list[int] = []
    with serve_passthrough() as base, httpx.stream(
        "POST", f"{base}/noukai/flows/hello-world", json={"message": "x"}, timeout=30
    ) as response:
        for line in response.iter_lines():
            if line.startswith("event: "):
                seen.append(line.removeprefix("event: "))
                sent_when_seen.append(reply.frames_sent)
                seen_by_browser[len(seen) - 1].set()
    assert seen == ["run_started", "step_started", "step_completed", "flow_completed"]
    # each event arrived while the upstream was still waiting to send the next
    assert sent_when_seen == [1, 2, 3, 4]


def test_a_first_event_the_browser_may_not_see_still_starts_the_response(
    canned_upstream: Any, serve_passthrough: Any, sse_frames: Any
) -> None:
    # The upstream's first event is one the policy drops; it then waits until
    # this test has the response status. The start waits for the first
    # upstream event, not for the first event the browser is sent.
    hidden = canned_upstream.frame("step_input", {"executionId": "e", "stepId": "s0",
                                                  "inputData": {"secret": "PROMPT"}})
    status_seen = threading.Event()
    reply = canned_upstream.Reply(frames=[hidden, *canned_upstream.run_frames(1, extra=False)],
                                  holds={1: status_seen})
    canned_upstream.reply = reply
    with serve_passthrough() as base, httpx.stream(
        "POST", f"{base}/noukai/flows/hello-world", json={"message": "x"}, timeout=30
    ) as response:
        assert response.status_code == 200
        sent_when_started = reply.frames_sent
        status_seen.set()
        raw = response.read()
    assert sent_when_started == 1
    frames = sse_frames(raw)
    assert [f[0] for f in frames] == ["run_started", "step_started", "step_completed",
                                      "flow_completed"]
    assert [f[2] for f in frames] == ["1", "2", "3", "4"]
    assert b"PROMPT" not in raw
