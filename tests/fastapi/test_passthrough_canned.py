"""The SSE passthrough over a real uvicorn server, against a canned upstream.

The canned upstream is a real HTTP server that streams a fixed run (or fails
on demand), so each test controls exactly what the passthrough receives and
asserts on the raw bytes a browser would get.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import pytest
from fastapi import FastAPI, HTTPException
from starlette.requests import Request

from noukai_core.web import BrowserInputPolicy, EventPolicy
from noukai_fastapi import StreamedFlow, flow_stream_router, noukai_lifespan


def parse_sse(raw: bytes) -> list[tuple[str, Any, str | None]]:
    """(event type, data, id) per frame; comment frames are skipped."""
    frames = []
    for block in raw.decode().split("\n\n"):
        fields: dict[str, str] = {}
        for line in block.split("\n"):
            if line and not line.startswith(":"):
                name, _, value = line.partition(": ")
                fields[name] = value
        if "data" in fields:
            frames.append((fields.get("event", "message"), json.loads(fields["data"]),
                           fields.get("id")))
    return frames


@contextmanager
def passthrough(
    serve_app: Callable[..., Any], upstream: Any, **router_options: Any
) -> Iterator[str]:
    flows = router_options.pop("flows", ["hello-world"])
    app = FastAPI(lifespan=noukai_lifespan(
        api_key="nk_test_key", base_url=upstream.base_url, org="acme", project="demo",
        max_retries=0,
    ))
    app.include_router(flow_stream_router(flows, **router_options), prefix="/noukai")
    with serve_app(app) as base_url:
        yield base_url


def post(base_url: str, path: str, body: Any = None, **kwargs: Any) -> httpx.Response:
    return httpx.post(f"{base_url}{path}", json=body, timeout=10, **kwargs)


def test_streams_forwarded_events_as_sse(serve_app: Any, canned_upstream: Any) -> None:
    with passthrough(serve_app, canned_upstream) as base:
        response = post(base, "/noukai/flows/hello-world", {"message": "hi"})
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/event-stream")
    assert response.headers["cache-control"] == "no-cache, no-transform"
    assert response.headers["x-accel-buffering"] == "no"
    frames = parse_sse(response.content)
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
    serve_app: Any, canned_upstream: Any
) -> None:
    handled: list[list[dict[str, Any]]] = []

    def tool_handler(calls: list[dict[str, Any]]) -> list[dict[str, Any]]:
        handled.append(calls)
        return [{"tool_call_id": call["id"], "output": "found"} for call in calls]

    canned_upstream.replies = [canned_upstream.Reply(frames=frames)
                               for frames in run_with_every_hidden_field(canned_upstream)]
    flow = StreamedFlow("hello-world", tool_handler=tool_handler)
    with passthrough(serve_app, canned_upstream, flows=[flow]) as base:
        completed = post(base, "/noukai/flows/hello-world", {"message": "hi"}).content
        failed = post(base, "/noukai/flows/hello-world", {"message": "hi"}).content
    # the upstream really sent all of it: three calls for the run, one for the failure
    assert len(canned_upstream.requests) == 4 and len(handled) == 1
    for hidden in HIDDEN:
        assert hidden not in completed + failed, hidden
    assert [kind for kind, _, _ in parse_sse(completed)] == [
        "run_started", "step_started", "step_output", "step_completed",
        "step_started", "step_output", "step_completed", "flow_completed"]
    assert parse_sse(completed)[-1][1]["summary"] == {"status": "completed"}
    last = parse_sse(failed)[-1]
    assert (last[0], last[1]["error"]) == ("step_error", {"code": "PROVIDER_ERROR"})


def test_allowlist_only(serve_app: Any, canned_upstream: Any) -> None:
    with passthrough(serve_app, canned_upstream) as base:
        assert post(base, "/noukai/flows/always-fails", {"message": "x"}).status_code == 404
        assert post(base, "/noukai/flows/../flows/x", {"message": "x"}).status_code == 404
    assert canned_upstream.requests == []


def test_json_only_and_get_off_by_default(serve_app: Any, canned_upstream: Any) -> None:
    with passthrough(serve_app, canned_upstream) as base:
        form = httpx.post(f"{base}/noukai/flows/hello-world", data={"message": "x"})
        assert form.status_code == 415
        assert form.json()["error"]["code"] == "UNSUPPORTED_MEDIA_TYPE"
        plain = httpx.post(f"{base}/noukai/flows/hello-world", content=b'{"message":"x"}',
                           headers={"content-type": "text/plain"})
        assert plain.status_code == 415
        assert httpx.get(f"{base}/noukai/flows/hello-world?message=x").status_code == 405
    assert canned_upstream.requests == []


def test_get_endpoint_and_last_event_id(serve_app: Any, canned_upstream: Any) -> None:
    with passthrough(serve_app, canned_upstream, allow_get=True) as base:
        response = httpx.get(f"{base}/noukai/flows/hello-world", params={"message": "hi"})
        assert response.status_code == 200
        assert parse_sse(response.content)[-1][0] == "flow_completed"
        assert len(canned_upstream.requests) == 1
        again = httpx.get(f"{base}/noukai/flows/hello-world", params={"message": "hi"},
                          headers={"Last-Event-ID": "8"})
        assert again.status_code == 204
    assert len(canned_upstream.requests) == 1, "a reconnect must not start a second run"


def test_field_policy(serve_app: Any, canned_upstream: Any) -> None:
    options = {"inputs": BrowserInputPolicy(parameters=frozenset({"tone"}))}
    with passthrough(serve_app, canned_upstream, **options) as base:
        for body in [{"message": "x", "tools": []}, {"message": "x", "version": 2},
                     {"message": "x", "block_overrides": {}},
                     {"message": "x", "parameters": {"model": "gpt"}}, {}, [1]]:
            response = post(base, "/noukai/flows/hello-world", body)
            assert response.status_code == 422, body
            assert set(response.json()["error"]) == {"code", "message"}
        bad_json = httpx.post(f"{base}/noukai/flows/hello-world", content=b"{",
                              headers={"content-type": "application/json"})
        assert bad_json.status_code == 422
        assert not canned_upstream.requests
        ok = post(base, "/noukai/flows/hello-world",
                  {"message": "x", "parameters": {"tone": "dry"}})
        assert ok.status_code == 200
    sent = json.loads(canned_upstream.requests[0][3])
    assert sent["parameters"] == {"tone": "dry"}
    assert "tools" not in sent and "version" not in sent


def test_oversized_body_is_413_before_any_run(serve_app: Any, canned_upstream: Any) -> None:
    inputs = BrowserInputPolicy(max_message_chars=10)
    with passthrough(serve_app, canned_upstream, inputs=inputs) as base:
        huge = post(base, "/noukai/flows/hello-world", {"message": "x" * 200_000})

        def chunks() -> Any:  # no Content-Length: the cap applies while reading
            yield b'{"message": "'
            for _ in range(100):
                yield b"x" * 10_000
            yield b'"}'

        streamed = httpx.post(f"{base}/noukai/flows/hello-world", content=chunks(),
                              headers={"content-type": "application/json"})
    assert huge.status_code == 413 and streamed.status_code == 413
    assert huge.json()["error"]["code"] == "BODY_TOO_LARGE"
    assert canned_upstream.requests == []


def test_server_side_parameters_win(serve_app: Any, canned_upstream: Any) -> None:
    flow = StreamedFlow("hello-world", parameters={"tone": "formal"},
                        inputs=BrowserInputPolicy(parameters="*"))
    with passthrough(serve_app, canned_upstream, flows=[flow]) as base:
        post(base, "/noukai/flows/hello-world", {"message": "x", "parameters": {"tone": "rude"}})
    assert json.loads(canned_upstream.requests[0][3])["parameters"] == {"tone": "formal"}


def test_authorize_hook_sync_and_async(serve_app: Any, canned_upstream: Any) -> None:
    def sync_hook(request: Request) -> bool:
        if "authorization" not in request.headers:
            raise HTTPException(401, "Sign in first.", headers={"WWW-Authenticate": "Bearer"})
        return request.headers["authorization"] == "Bearer good"

    async def async_hook(request: Request) -> None:
        if request.headers.get("x-user") != "alice":
            raise PermissionError

    for hook in [sync_hook, async_hook]:
        with passthrough(serve_app, canned_upstream, authorize=hook) as base:
            url = "/noukai/flows/hello-world"
            if hook is sync_hook:
                anonymous = post(base, url, {"message": "x"})
                assert anonymous.status_code == 401
                assert anonymous.headers["www-authenticate"] == "Bearer"
                assert anonymous.json()["error"]["code"] == "UNAUTHORIZED"
                denied = post(base, url, {"message": "x"}, headers={"Authorization": "Bearer x"})
                allowed = post(base, url, {"message": "x"},
                               headers={"Authorization": "Bearer good"})
            else:
                denied = post(base, url, {"message": "x"}, headers={"X-User": "bob"})
                allowed = post(base, url, {"message": "x"}, headers={"X-User": "alice"})
            assert denied.status_code == 403
            assert denied.json()["error"]["code"] == "FORBIDDEN"
            assert allowed.status_code == 200
    assert len(canned_upstream.requests) == 2


def test_event_policy_is_configurable(serve_app: Any, canned_upstream: Any) -> None:
    policy = EventPolicy().without("step_output").forwarding("step_input").keeping(
        "step_input", ["inputData"])
    with passthrough(serve_app, canned_upstream, event_policy=policy) as base:
        frames = parse_sse(post(base, "/noukai/flows/hello-world", {"message": "x"}).content)
    types = [f[0] for f in frames]
    assert "step_output" not in types
    assert types.count("step_input") == 2
    assert frames[2][1]["inputData"] == {"secret": "PROMPT"}


def test_heartbeats_while_upstream_is_quiet(serve_app: Any, canned_upstream: Any) -> None:
    frames = canned_upstream.run_frames(1, extra=False)
    canned_upstream.reply = canned_upstream.Reply(frames=frames, frame_delay=0.3)
    with passthrough(serve_app, canned_upstream, heartbeat_interval=0.05) as base:
        raw = post(base, "/noukai/flows/hello-world", {"message": "x"}).content
    assert raw.count(b": keepalive\n\n") >= 2
    assert not raw.startswith(b":"), "no heartbeat before the first event (start waits for it)"
    assert parse_sse(raw)[-1][0] == "flow_completed"
    # heartbeats carry no id, events keep consecutive ids
    assert [f[2] for f in parse_sse(raw)] == ["1", "2", "3", "4"]


STATUS_CASES = [
    (400, {"detail": {"code": "MISSING_MESSAGE", "message": "need a message"}}, {}, 422,
     "MISSING_MESSAGE"),
    (429, {"detail": {"code": "RATE_LIMIT", "message": "slow down"}}, {"Retry-After": "7"}, 429,
     "RATE_LIMITED"),
    (401, {"detail": {"code": "UNAUTHENTICATED", "message": "bad key nk_test_key"}}, {}, 502,
     "UPSTREAM_CONFIGURATION"),
    (403, {"detail": {"code": "FORBIDDEN", "message": "no"}}, {}, 502, "UPSTREAM_CONFIGURATION"),
    (402, {"detail": {"code": "INSUFFICIENT_CREDITS", "message": "pay"}}, {}, 502,
     "UPSTREAM_CONFIGURATION"),
    (404, {"detail": {"code": "FLOW_NOT_FOUND", "message": "no flow"}}, {}, 502,
     "UPSTREAM_CONFIGURATION"),
    (500, {"detail": {"code": "INTERNAL_ERROR", "message": "Traceback (most recent"}}, {}, 502,
     "FLOW_FAILED"),
]


def test_status_mapping_before_the_first_event(serve_app: Any, canned_upstream: Any) -> None:
    with passthrough(serve_app, canned_upstream) as base:
        for status, body, headers, expected, code in STATUS_CASES:
            canned_upstream.reply = canned_upstream.Reply(status=status, json=body,
                                                          headers=headers)
            response = post(base, "/noukai/flows/hello-world", {"message": "x"})
            assert response.status_code == expected, (status, response.text)
            assert response.headers["content-type"] == "application/json"
            assert response.json()["error"]["code"] == code
            assert b"nk_" not in response.content and b"Traceback" not in response.content
            if expected == 429:
                assert response.headers["retry-after"] == "7"


def test_timeout_before_first_event_is_504(serve_app: Any, canned_upstream: Any) -> None:
    canned_upstream.reply = canned_upstream.Reply(stall=1.0)
    app = FastAPI(lifespan=noukai_lifespan(
        api_key="nk_test_key", base_url=canned_upstream.base_url, org="acme", project="demo",
        timeout=0.2, max_retries=0))
    app.include_router(flow_stream_router(["hello-world"]), prefix="/noukai")
    with serve_app(app) as base:
        response = post(base, "/noukai/flows/hello-world", {"message": "x"})
    assert response.status_code == 504
    assert response.json()["error"]["code"] == "UPSTREAM_TIMEOUT"


def test_error_after_first_event_is_a_final_error_event(
    serve_app: Any, canned_upstream: Any
) -> None:
    canned_upstream.reply = canned_upstream.Reply(
        frames=canned_upstream.run_frames(2), drop_after=3)
    with passthrough(serve_app, canned_upstream) as base:
        response = post(base, "/noukai/flows/hello-world", {"message": "x"})
    assert response.status_code == 200
    frames = parse_sse(response.content)
    assert [f[0] for f in frames][-1] == "error"
    assert frames[-1][2] is None, "the error frame is not a real event: no id"
    assert set(frames[-1][1]) == {"code", "message"}
    assert b"Traceback" not in response.content and b"nk_" not in response.content


def test_openapi_lists_the_endpoints(serve_app: Any, canned_upstream: Any) -> None:
    flows = ["hello-world", StreamedFlow("local/demo/two-step", name="two")]
    with passthrough(serve_app, canned_upstream, flows=flows) as base:
        schema = httpx.get(f"{base}/openapi.json").json()
    paths = schema["paths"]
    assert set(paths) >= {"/noukai/flows/hello-world", "/noukai/flows/two"}
    post_op = paths["/noukai/flows/hello-world"]["post"]
    body = post_op["requestBody"]["content"]["application/json"]["schema"]
    assert body["required"] == ["message"]
    assert "text/event-stream" in post_op["responses"]["200"]["content"]
    assert "get" not in paths["/noukai/flows/hello-world"]


def test_openapi_documents_the_get_form_when_enabled(
    serve_app: Any, canned_upstream: Any
) -> None:
    inputs = BrowserInputPolicy(parameters=frozenset({"tone"}))
    with passthrough(serve_app, canned_upstream, allow_get=True, inputs=inputs) as base:
        operation = httpx.get(f"{base}/openapi.json").json()["paths"][
            "/noukai/flows/hello-world"]["get"]
    assert "requestBody" not in operation
    assert [(p["name"], p["in"]) for p in operation["parameters"]] == [
        ("message", "query"), ("tone", "query")]
    assert "204" in operation["responses"]


def test_script_is_served(serve_app: Any, canned_upstream: Any) -> None:
    with passthrough(serve_app, canned_upstream) as base:
        response = httpx.get(f"{base}/noukai/noukai-stream.js")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/javascript")
    assert b"export function streamFlow" in response.content


def test_a_slow_reader_gets_every_event_in_order(serve_app: Any, canned_upstream: Any) -> None:
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
    with passthrough(serve_app, canned_upstream) as base, httpx.stream(
        "POST", f"{base}/noukai/flows/hello-world", json={"message": "x"}, timeout=30
    ) as response:
        for chunk in response.iter_bytes(chunk_size=16 * 1024):
            received += chunk
            time.sleep(0.002)
    events = parse_sse(bytes(received))
    outputs = [data["outputData"]["i"] for kind, data, _ in events if kind == "step_output"]
    assert outputs == list(range(2_000))
    assert [int(event_id) for _, _, event_id in events] == list(range(1, 2_003))
    assert events[-1][0] == "flow_completed"


def test_a_router_without_lifespan_uses_a_client_from_the_environment(
    serve_app: Any, canned_upstream: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NOUKAI_API_KEY", "nk_from_env")
    monkeypatch.setenv("NOUKAI_BASE_URL", canned_upstream.base_url)
    app = FastAPI()  # no noukai_lifespan, no client=
    app.include_router(flow_stream_router(["acme/demo/hello-world"]), prefix="/noukai")
    # served twice: the router closes its client at shutdown, and the
    # restarted app builds a fresh one instead of using the closed one
    for _ in range(2):
        with serve_app(app) as base:
            response = post(base, "/noukai/flows/hello-world", {"message": "hi"})
        assert response.status_code == 200, response.text
        assert parse_sse(response.content)[-1][0] == "flow_completed"
    keys = [{k.lower(): v for k, v in headers.items()}["authorization"]
            for _, _, headers, _ in canned_upstream.requests]
    assert keys == ["Bearer nk_from_env"] * 2


def test_each_event_reaches_the_browser_before_the_upstream_sends_more(
    serve_app: Any, canned_upstream: Any
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
    with passthrough(serve_app, canned_upstream) as base, httpx.stream(
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
