"""Contract checks of the client: what `noukai_core` puts on the wire.

A small fake Noukai (threaded `http.server` on a free loopback port, written
here from the HTTP contract) records every raw request and answers with
contract-shaped canned responses. The public API of `noukai_core` drives it;
the assertions compare the recorded requests with §1.2 (headers), §2 (paths
and version routing), §4.1/§8.1 (execute and resume bodies), §5.1/§7.1/§8.2
(the `/step` cursor), §9 (jobs), §10 (traces) and §11.2 (session fetches).

The fake's `/step` deliberately sends segment-local `stepIndex` values (0 in
every call, as the hosted service does, §6.3): a client must derive its next
`stepIndex` by counting `step_completed` frames, never from those values.
"""

from __future__ import annotations

import contextlib
import json
import re
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from noukai_core import (
    AsyncNoukai,
    AuthenticationError,
    FlowExecutionError,
    FlowNotFoundError,
    InsufficientCreditsError,
    Noukai,
    NoukaiError,
    PermissionDeniedError,
    RateLimitError,
    ReplayForbiddenError,
    ReplayInvalidSessionError,
    ReplayLeftoverError,
    ReplayMissError,
    ReplayNoSnapshotsError,
    ReplaySessionExpiredError,
    ReplaySessionNotFoundError,
    ToolCallLimitError,
    replay_scope_sync,
    trace_scope_sync,
)

KEY = "nk_contract_test"
BLOCKS = ["a", "b", "c"]
EXEC_ID = "5b0c2f8e-6a8e-4a7e-9d0c-0f1e2d3c4b5a"
FLOW_ID = "0d9a3c1e-2b4f-4e6a-8c7d-1a2b3c4d5e6f"
CALL = {
    "id": "call_7f3a",
    "type": "function",
    "function": {"name": "get_weather", "arguments": '{"location": "Tokyo"}'},
}
TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "parameters": {"type": "object", "properties": {"location": {"type": "string"}}},
        },
    }
]
PAUSED_MESSAGES = [
    {"role": "user", "content": "Weather in Tokyo?"},
    {"role": "assistant", "content": None, "toolCalls": [CALL]},
]
CASSETTE = [
    {
        "executionId": "e-1",
        "flowId": FLOW_ID,
        "slug": "hello",
        "triggerType": "execute",
        "status": "completed",
        "snapshotsAvailable": True,
        "traceCaptureMode": "full",
        "steps": [
            {"stepId": "a", "outputSnapshot": {"x": 1}},
            {"stepId": "b", "outputSnapshot": {"y": 2, "__rendered_prompt__": "P"}},
        ],
    },
    {
        "executionId": "e-2",
        "flowId": FLOW_ID,
        "slug": "hello",
        "triggerType": "step",
        "status": "completed",
        "snapshotsAvailable": True,
        "traceCaptureMode": "full",
        "steps": [{"stepId": "a", "outputSnapshot": {"z": 3}}],
    },
    {
        "executionId": "e-3",
        "flowId": FLOW_ID,
        "slug": "other",
        "triggerType": "execute",
        "status": "failed",
        "snapshotsAvailable": True,
        "traceCaptureMode": "full",
        "errorAtStep": "s1",
        "steps": [
            {
                "stepId": "s1",
                "status": "failed",
                "outputSnapshot": None,
                "errorSnapshot": {"code": "BOOM", "message": "it broke"},
            }
        ],
    },
]
# §1.2: informational, but in the Python SDK's documented shape.
USER_AGENT = r"noukai-python/\S+ \(httpx/\S+; python/\d+\.\d+\.\d+; [^)]+\)"
SESSION_HEADER_ALLOWED = re.compile(r"/(execute|step|jobs)$")


@dataclass(frozen=True)
class Recorded:
    method: str
    path: str
    headers: dict[str, str]  # lower-cased names
    raw_header_names: list[str]
    body: bytes

    @property
    def json(self) -> dict[str, Any]:
        value: dict[str, Any] = json.loads(self.body)
        return value


def _output(block: str) -> dict[str, str]:
    return {"response": f"out-{block}"}


def _sse(*payloads: dict[str, Any]) -> bytes:
    frames = [
        f"event: {p['eventType']}\ndata: {json.dumps(p, separators=(',', ':'))}\n\n"
        for p in payloads
    ]
    return "".join(frames).encode()


def _event(kind: str, **fields: Any) -> dict[str, Any]:
    # §1.4: the server MAY add fields freely; every canned reply carries one.
    return {"eventType": kind, "executionId": EXEC_ID, "serverExtra": {"v": 1}, **fields}


def _run_block(index: int) -> list[dict[str, Any]]:
    block = BLOCKS[index]
    return [
        _event("step_started", stepId=block, name=block.upper(), stepIndex=0),
        _event(
            "step_completed",
            stepId=block,
            name=block.upper(),
            output=_output(block),
            durationMs=3,
            tokens={"prompt": 1, "completion": 2, "total": 3},
            costUsd="0.000003",
        ),
    ]


def _step_reply(body: dict[str, Any]) -> bytes:
    """The §7.2 server: one block per call (or all with runRemaining); tool pause on b."""
    frames: list[dict[str, Any]] = []
    if body.get("executionId") is None:
        frames.append(_event("run_started", runId=EXEC_ID, flowId=FLOW_ID, stepCount=3))
    index = body["stepIndex"]
    resuming = body.get("toolCallMessages") is not None
    while True:
        if BLOCKS[index] == "b" and body.get("tools") and not resuming:
            frames.append(
                _event(
                    "step_paused_for_tool_calls",
                    runId=EXEC_ID,
                    stepId="b",
                    stepIndex=index,
                    iterationsUsed=1,
                    toolCallMessages=PAUSED_MESSAGES,
                    toolCalls=[CALL],
                    accumulatedOutputs={"a": _output("a"), "server-side": {"k": 1}},
                )
            )
            return _sse(*frames)
        resuming = False
        frames += _run_block(index)
        index += 1
        if index == len(BLOCKS):
            frames.append(_event("flow_completed", runId=EXEC_ID, result=_output("c")))
            return _sse(*frames)
        if not body.get("runRemaining"):
            frames.append(_event("step_paused", stepId=BLOCKS[index - 1], stepIndex=0))
            return _sse(*frames)


Answer = tuple[int, str, bytes, dict[str, str]]


def _json(status: int, reply: Any, **headers: str) -> Answer:
    if isinstance(reply, dict) and status < 400:
        reply = {**reply, "serverExtra": {"v": 1}}
    return status, "application/json", json.dumps(reply).encode(), headers


def _variant(request: Recorded, path: str, earlier: int) -> Answer | None:
    """Misbehaviours selected by the org/project segments of the path.

    `err<status>` orgs answer that status; `errstr` a plain-string detail;
    project `hosted` streams the hosted service's sparser frames; `noterm`
    ends a stream without a terminal frame; `late` hides a job for two polls;
    `loop` pauses for tools on every call. `earlier` counts earlier requests.
    """
    coded = re.fullmatch(r"/api/v1/seq/sessions/00000000-0000-4000-8000-000000000(\d{3})", path)
    if coded and coded.group(1) == "777":  # a cassette of three runs (§11.4)
        return _json(200, {"sessionId": path.rsplit("/", 1)[1], "executions": CASSETTE})
    if coded and coded.group(1) == "299":  # a session recorded without snapshots
        execution = {
            "executionId": EXEC_ID,
            "slug": "hello",
            "triggerType": "execute",
            "status": "completed",
            "snapshotsAvailable": False,
            "steps": [],
        }
        return _json(200, {"sessionId": path.rsplit("/", 1)[1], "executions": [execution]})
    if coded:
        status = int(coded.group(1))
        return _json(status, {"detail": {"code": f"CODE_{status}", "message": "session"}})
    match = re.match(r"/api/v1/seq/err(\d+|str)/", path)
    if match and match.group(1) == "str":
        return _json(400, {"detail": "plain text problem"})
    if match:
        status = int(match.group(1))
        extra = {"WWW-Authenticate": 'Bearer error="invalid_token"'} if status == 401 else {}
        if status == 429:  # past any sane retry cap: surfaced at once, with the value
            extra["Retry-After"] = "120"
        detail = {"code": f"CODE_{status}", "message": f"status {status}"}
        return _json(status, {"detail": detail}, **extra)
    if "/hosted/" in path and path.endswith("/step"):
        frames = [
            _event("run_started", flowId=FLOW_ID, stepCount=3),
            *_run_block(0),
            {"eventType": "step_progress", "executionId": EXEC_ID, "stepId": "x"},
            _event("step_paused", stepIndex=0),
        ]
        if request.json.get("executionId") is not None:
            frames = [
                *_run_block(request.json["stepIndex"]),
                _event("flow_completed", result=_output("b")),
            ]
        return 200, "text/event-stream", b": hi\n\n" + _sse(*frames), {}
    if "/legacy/" in path and path.endswith("/step"):
        started = json.dumps(_event("flow_started", runId=EXEC_ID, flowId=FLOW_ID, stepCount=1))
        (done,) = [e for e in _run_block(0) if e["eventType"] == "step_completed"]
        multi = "".join(f"data: {line}\n" for line in json.dumps(done, indent=1).split("\n"))
        end = json.dumps(_event("flow_completed", runId=EXEC_ID, result=_output("a")))
        body = (
            f"id: 1\nretry: 1000\ndata:{started}\n\n"  # no event: line, no space
            f"event: step_completed\n{multi}\n"  # JSON over several data: lines
            f"event: flow_completed\ndata: {end}\n\n"
        )
        return 200, "text/event-stream", body.encode(), {}
    if "/noterm/" in path and path.endswith("/step"):
        frames = [_event("run_started", runId=EXEC_ID, flowId=FLOW_ID, stepCount=3), *_run_block(0)]
        return 200, "text/event-stream", _sse(*frames), {}
    if "/late/" in path and "/jobs/" in path and earlier < 3:
        return _json(404, {"detail": {"code": "JOB_NOT_FOUND", "message": "not yet"}})
    if "/loop/" in path and path.endswith("/execute"):
        call = {**CALL, "id": f"call_{earlier}"}
        return _json(
            200,
            {
                "status": "tool_calls_required",
                "executionId": EXEC_ID,
                "pausedAtStep": "weather",
                "iterationsUsed": earlier + 1,
                "toolCallMessages": PAUSED_MESSAGES,
                "toolCalls": [call],
                "accumulatedOutputs": {},
                "flowId": FLOW_ID,
                "blockCount": 1,
            },
        )
    return None


def _answer(request: Recorded, earlier: int) -> Answer:
    path = request.path.split("?")[0]
    if "/down/" in path:
        reply = {"detail": {"code": "BILLING_UNAVAILABLE", "message": "billing is down"}}
        return _json(503, reply)
    variant = _variant(request, path, earlier)
    if variant is not None:
        return variant
    if path.endswith("/execute"):
        body = request.json
        if body.get("tools") and body.get("toolCallMessages") is None:
            reply: Any = {
                "status": "tool_calls_required",
                "executionId": EXEC_ID,
                "pausedAtStep": "weather",
                "iterationsUsed": 1,
                "toolCallMessages": PAUSED_MESSAGES,
                "toolCalls": [CALL],
                "accumulatedOutputs": {"prep": {"x": 1}},
                "flowId": FLOW_ID,
                "blockCount": 2,
            }
        else:
            reply = {
                "status": "completed",
                "result": _output("c"),
                "executionId": EXEC_ID,
                "flowId": FLOW_ID,
                "blockCount": 2,
            }
    elif path.endswith("/step"):
        return 200, "text/event-stream", _step_reply(request.json), {}
    elif path.endswith("/trace/stream"):
        frames = [
            _event("run_started", runId=EXEC_ID, flowId=FLOW_ID, stepCount=1),
            *_run_block(0),
            _event("flow_completed", runId=EXEC_ID, result=_output("a")),
        ]
        return 200, "text/event-stream", _sse(*frames), {}
    elif path.endswith("/jobs"):
        reply = {"executionId": EXEC_ID, "status": "pending", "flowId": FLOW_ID, "blockCount": 1}
    elif "/jobs/" in path:
        reply = {
            "executionId": path.rsplit("/", 1)[1],
            "status": "completed",
            "result": _output("a"),
            "error": None,
        }
    elif path.endswith("/steps/a/trace"):
        attempt = {"stepId": "a", "attempt": 1, "status": "completed", "loopIndex": None}
        reply = {"stepId": "a", "attempts": [attempt]} if "attempt=all" in request.path else attempt
    elif path.endswith("/trace"):
        reply = {
            "flowRun": {"id": EXEC_ID, "flowId": FLOW_ID, "status": "completed"},
            "steps": [{"stepId": "a", "attempt": 1, "status": "completed"}],
        }
    elif path.startswith("/api/v1/seq/sessions/"):
        reply = {
            "sessionId": path.rsplit("/", 1)[1],
            "executions": [
                {
                    "executionId": EXEC_ID,
                    "flowId": FLOW_ID,
                    "slug": "hello",
                    "triggerType": "execute",
                    "status": "completed",
                    "snapshotsAvailable": True,
                    "traceCaptureMode": "full",
                    "steps": [{"stepId": "a", "outputSnapshot": _output("a")}],
                }
            ],
        }
    else:
        return _json(404, {"detail": {"code": "FLOW_NOT_FOUND", "message": f"no {path}"}})
    return _json(200, reply)


class FakeNoukai:
    """A threaded HTTP server on 127.0.0.1:<free port> that records every request."""

    def __init__(self) -> None:
        self.requests: list[Recorded] = []
        lock = threading.Lock()
        recorded = self.requests

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _handle(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                request = Recorded(
                    self.command,
                    self.path,
                    {k.lower(): v for k, v in self.headers.items()},
                    list(self.headers.keys()),
                    self.rfile.read(length),
                )
                with lock:
                    earlier = len(recorded)
                    recorded.append(request)
                status, content_type, payload, extra = _answer(request, earlier)
                self.send_response(status)
                for name, value in extra.items():
                    self.send_header(name, value)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(payload)))
                self.send_header("X-Request-ID", f"req_{uuid.uuid4().hex[:24]}")
                self.send_header("Connection", "close")
                self.end_headers()
                self.wfile.write(payload)

            do_GET = do_POST = _handle

            def log_message(self, format: str, *args: Any) -> None:
                return

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(
            target=self._server.serve_forever, args=(0.05,), daemon=True
        )
        self._thread.start()

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}/api/v1"

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)


@pytest.fixture
def fake() -> Iterator[FakeNoukai]:
    server = FakeNoukai()
    yield server
    server.close()


@pytest.fixture
def client(fake: FakeNoukai) -> Iterator[Noukai]:
    with Noukai(KEY, base_url=fake.base_url, org="acme", project="app") as c:
        yield c


FLOW = "/api/v1/seq/acme/app/hello"


def check_headers(request: Recorded, session_id: str | None = None) -> None:
    """§1.2: auth, pinned version, Accept everywhere, Content-Type iff a body."""
    headers = request.headers
    assert headers["authorization"] == f"Bearer {KEY}"
    assert headers["x-noukai-api-version"] == "2026-05-31"
    assert headers["accept"] == "application/json"
    if request.method == "POST":
        assert headers["content-type"] == "application/json"
    else:
        assert not request.body and "content-type" not in headers
    assert "x-request-id" not in headers and "cookie" not in headers
    assert re.fullmatch(USER_AGENT, headers["user-agent"]), headers["user-agent"]
    assert headers.get("x-session-id") == session_id, (request.path, headers)
    if session_id is not None:
        assert SESSION_HEADER_ALLOWED.search(request.path), request.path


def check_body_style(request: Recorded) -> dict[str, Any]:
    """§1.4: camelCase top-level keys, nulls omitted (Python), defaults present."""
    body = request.json
    assert all("_" not in key for key in body), body
    assert all(v is not None for v in body.values()), body
    assert isinstance(body["parameters"], dict)
    assert isinstance(body["iterationsUsed"], int) and not isinstance(body["iterationsUsed"], bool)
    assert isinstance(body["accumulatedOutputs"], dict) and isinstance(body["trace"], bool)
    return body


# -- §2: paths and version routing ------------------------------------------------


@pytest.mark.parametrize(
    "version,prefix",
    [
        (None, FLOW),
        ("production", FLOW),
        ("draft", f"{FLOW}/v0"),
        (0, f"{FLOW}/v0"),
        (3, f"{FLOW}/v3"),
    ],
)
def test_version_is_routed_by_path_only(
    client: Noukai, fake: FakeNoukai, version: str | int | None, prefix: str
) -> None:
    flow = client.flow("hello")
    kwargs: dict[str, Any] = {} if version is None else {"version": version}
    flow.execute("hi", **kwargs)
    job = flow.execute_async("hi", **kwargs)
    job.poll()
    paths = [r.path for r in fake.requests]
    assert paths == [f"{prefix}/execute", f"{prefix}/jobs", f"{FLOW}/jobs/{EXEC_ID}"]
    assert all("version" not in r.json for r in fake.requests if r.method == "POST")


def test_step_versions(client: Noukai, fake: FakeNoukai) -> None:
    """§2: steps on /vN; draft (`/v0`) and negative versions refused before any request."""
    list(client.flow("hello").steps("hi", version=2, run_remaining=True))
    assert [r.path for r in fake.requests] == [f"{FLOW}/v2/step"]
    for bad in ("draft", 0, -1):
        with pytest.raises(ValueError):
            list(client.flow("hello").events("hi", version=bad))
    with pytest.raises(ValueError):
        client.flow("hello").execute("hi", version=-2)
    assert len(fake.requests) == 1


# -- §1.2 / §4.1: headers and the fresh execute body -------------------------------


def test_fresh_execute_body_and_headers(client: Noukai, fake: FakeNoukai) -> None:
    client.flow("hello").execute("hi")
    [request] = fake.requests
    check_headers(request)
    assert request.json == {
        "message": "hi",
        "parameters": {},
        "iterationsUsed": 0,
        "accumulatedOutputs": {},
        "trace": False,
    }


def test_async_client_sends_the_same_requests(fake: FakeNoukai) -> None:
    """The async twin: same fresh body, headers, job submit and unversioned poll."""
    import asyncio

    session_id = str(uuid.uuid4())

    async def run() -> None:
        async with AsyncNoukai(KEY, base_url=fake.base_url, session_id=session_id) as client:
            flow = client.flow("acme/app/hello")
            await flow.execute("hi", version="draft")
            job = await flow.execute_async("hi", version=2)
            await job.poll()

    asyncio.run(run())
    execute, submit, poll = fake.requests
    assert (execute.path, submit.path, poll.path) == (
        f"{FLOW}/v0/execute",
        f"{FLOW}/v2/jobs",
        f"{FLOW}/jobs/{EXEC_ID}",
    )
    check_headers(execute, session_id)
    check_headers(submit, session_id)
    check_headers(poll, None)
    expected = {
        "message": "hi",
        "parameters": {},
        "iterationsUsed": 0,
        "accumulatedOutputs": {},
        "trace": False,
    }
    assert execute.json == expected and submit.json == expected


def test_execute_options_are_camel_case(client: Noukai, fake: FakeNoukai) -> None:
    overrides = {"step-1": {"model": "anthropic/claude-haiku-4-5", "temperature": 0.5}}
    attachment = {"url": "https://example.test/a.png", "mime_type": "image/png"}
    client.flow("hello").execute(
        "hi",
        parameters={"k": "v"},
        block_overrides=overrides,
        attachments=[attachment],
        trace=True,
        tools=TOOLS,
        tool_choice="auto",
    )
    body = check_body_style(fake.requests[0])
    assert body["blockOverrides"] == overrides and body["attachments"] == [attachment]
    assert body["parameters"] == {"k": "v"} and body["trace"] is True
    assert body["tools"] == TOOLS and body["toolChoice"] == "auto"


def test_messages_mode_body(client: Noukai, fake: FakeNoukai) -> None:
    """§12: `messages` replaces `message`; an empty list is omitted."""
    turns = [{"role": "user", "content": "Hi"}]
    client.flow("hello").execute(messages=turns)
    client.flow("hello").execute("plain", messages=[])
    first, second = (check_body_style(r) for r in fake.requests)
    assert first["messages"] == turns and "message" not in first
    assert second["message"] == "plain" and "messages" not in second


# -- §8.1: tool resumes on /execute ---------------------------------------------------


def _results(calls: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{"role": "tool", "toolCallId": c["id"], "content": "Sunny"} for c in calls]


def _check_resume(request: Recorded, results_for: list[dict[str, Any]]) -> dict[str, Any]:
    body = check_body_style(request)
    assert body["executionId"] == EXEC_ID and body["pausedAtStep"] == "weather"
    assert body["iterationsUsed"] == 1 and body["accumulatedOutputs"] == {"prep": {"x": 1}}
    messages = body["toolCallMessages"]
    assert messages[: len(PAUSED_MESSAGES)] == PAUSED_MESSAGES
    added = messages[len(PAUSED_MESSAGES) :]
    assert [m.get("toolCallId", m.get("tool_call_id")) for m in added] == [
        c["id"] for c in results_for
    ]
    assert "message" not in body and "messages" not in body
    return body


def test_auto_resume_body_and_no_session_header(fake: FakeNoukai) -> None:
    """§8.1 + §1.2: same versioned path, echoes, originals, and no X-Session-Id."""
    session_id = str(uuid.uuid4())
    with Noukai(KEY, base_url=fake.base_url, session_id=session_id) as client:
        result = client.flow("acme/app/hello").execute(
            "Weather in Tokyo?",
            parameters={"p": 1},
            block_overrides={"w": {"t": 0}},
            attachments=[{"url": "https://example.test/a.png", "mimeType": "image/png"}],
            tools=TOOLS,
            tool_choice="required",
            trace=True,
            version=4,
            tool_handler=_results,
        )
    assert result.status == "completed"
    fresh, resume = fake.requests
    assert fresh.path == resume.path == f"{FLOW}/v4/execute"
    check_headers(fresh, session_id)
    check_headers(resume, None)
    body = _check_resume(resume, [CALL])
    assert body["parameters"] == {"p": 1} and body["blockOverrides"] == {"w": {"t": 0}}
    assert body["tools"] == TOOLS and body["toolChoice"] == "required"
    assert body["trace"] is True and body["attachments"] == fresh.json["attachments"]


def test_manual_resume_sync_and_async(fake: FakeNoukai) -> None:
    import asyncio

    with Noukai(KEY, base_url=fake.base_url, session_id=str(uuid.uuid4())) as client:
        paused = client.flow("acme/app/hello").execute("Weather in Tokyo?", tools=TOOLS)
        assert paused.status == "tool_calls_required"
        paused.resume_sync(tool_results=_results(paused.tool_calls))

    async def run_async() -> None:
        async with AsyncNoukai(
            KEY, base_url=fake.base_url, session_id=str(uuid.uuid4())
        ) as aclient:
            result = await aclient.flow("acme/app/hello").execute("Weather?", tools=TOOLS)
            await result.resume(tool_results=_results(result.tool_calls))

    asyncio.run(run_async())
    assert len(fake.requests) == 4
    for resume in (fake.requests[1], fake.requests[3]):
        check_headers(resume, None)
        _check_resume(resume, [CALL])


# -- §5.1 / §7.1 / §8.2: the /step cursor ----------------------------------------------


def _step_bodies(fake: FakeNoukai, session_id: str | None = None) -> list[dict[str, Any]]:
    for request in fake.requests:
        check_headers(request, session_id)
        assert request.path == f"{FLOW}/step"
    return [check_body_style(r) for r in fake.requests]


def test_step_cursor_counts_step_completed_frames(fake: FakeNoukai) -> None:
    session_id = str(uuid.uuid4())
    with Noukai(KEY, base_url=fake.base_url, org="acme", project="app") as client:
        steps = list(
            client.flow("hello").steps(
                "hi", parameters={"p": 1}, block_overrides={"a": {"t": 1}}, session_id=session_id
            )
        )
    assert [s.step_id for s in steps] == BLOCKS
    first, second, third = _step_bodies(fake, session_id)
    assert first == {
        "stepIndex": 0,
        "accumulatedOutputs": {},
        "message": "hi",
        "parameters": {"p": 1},
        "inputOverrides": {},
        "runRemaining": False,
        "iterationsUsed": 0,
        "trace": False,
        "blockOverrides": {"a": {"t": 1}},
    }
    for body, index in ((second, 1), (third, 2)):
        assert body["executionId"] == EXEC_ID and body["stepIndex"] == index
        assert body["accumulatedOutputs"] == {b: _output(b) for b in BLOCKS[:index]}
        assert "message" not in body and body["parameters"] == {}
        assert body["runRemaining"] is False and body["blockOverrides"] == {"a": {"t": 1}}
        assert "toolCallMessages" not in body and "pausedAtStep" not in body


def test_step_cursor_repeats_overrides_but_not_first_call_inputs(fake: FakeNoukai) -> None:
    """§5.1: attachments and parameters on the first call only; inputOverrides,
    blockOverrides, trace and runRemaining on every call."""
    attachment = {"url": "https://example.test/a.png", "mime_type": "image/png"}
    with Noukai(KEY, base_url=fake.base_url, org="acme", project="app") as client:
        list(
            client.flow("hello").steps(
                "hi",
                attachments=[attachment],
                trace=True,
                parameters={"p": 1},
                input_overrides={"b": {"x": 1}},
            )
        )
    first, *rest = _step_bodies(fake)
    assert first["attachments"] == [attachment] and first["parameters"] == {"p": 1}
    assert len(rest) == 2
    for body in [first, *rest]:
        assert body["inputOverrides"] == {"b": {"x": 1}} and body["trace"] is True
    for body in rest:
        assert "attachments" not in body and body["parameters"] == {}


def test_manual_resume_of_a_stream_tool_pause(fake: FakeNoukai) -> None:
    """§8.2 via `ToolCallsRequired.resume`: the resume /step keeps X-Session-Id."""
    session_id = str(uuid.uuid4())
    seen: list[str] = []
    with Noukai(KEY, base_url=fake.base_url, session_id=session_id) as client:
        for event in client.flow("acme/app/hello").events("Weather in Tokyo?", tools=TOOLS):
            seen.append(event.type)
            if event.type == "tool_calls_required":
                event.resume(tool_results=_results([CALL]))
    assert seen[-1] == "flow_completed" and "tool_calls_required" in seen
    bodies = _step_bodies(fake, session_id)
    assert [b["stepIndex"] for b in bodies] == [0, 1, 1, 2]
    assert bodies[2]["toolCallMessages"][:2] == PAUSED_MESSAGES
    assert bodies[2]["iterationsUsed"] == 1 and "message" not in bodies[2]


def test_run_remaining_is_one_request(client: Noukai, fake: FakeNoukai) -> None:
    events = list(client.flow("hello").events("hi", run_remaining=True))
    assert [e.type for e in events][-1] == "flow_completed"
    [body] = _step_bodies(fake)
    assert body["runRemaining"] is True and body["stepIndex"] == 0


def test_step_tool_resume_body(fake: FakeNoukai) -> None:
    """§8.2: resume with executionId, paused stepIndex, results; header still sent."""
    session_id = str(uuid.uuid4())
    with Noukai(KEY, base_url=fake.base_url, session_id=session_id) as client:
        steps = list(
            client.flow("acme/app/hello").steps(
                "Weather in Tokyo?", tools=TOOLS, tool_choice="auto", tool_handler=_results
            )
        )
    assert [s.step_id for s in steps] == BLOCKS
    bodies = _step_bodies(fake, session_id)
    assert [b["stepIndex"] for b in bodies] == [0, 1, 1, 2]
    resume = bodies[2]
    assert resume["executionId"] == EXEC_ID and resume["iterationsUsed"] == 1
    assert resume["toolCallMessages"][:2] == PAUSED_MESSAGES
    assert len(resume["toolCallMessages"]) == 3 and resume["tools"] == TOOLS
    # §6.3: the pause frame's accumulatedOutputs are merged into the cursor.
    assert resume["accumulatedOutputs"] == {"a": _output("a"), "server-side": {"k": 1}}
    assert "message" not in resume and "pausedAtStep" not in resume
    assert all(b["tools"] == TOOLS and b["toolChoice"] == "auto" for b in bodies)
    assert "toolCallMessages" not in bodies[3] and bodies[3]["iterationsUsed"] == 0


def test_async_steps_send_the_same_cursor(fake: FakeNoukai) -> None:
    import asyncio

    async def run() -> list[str]:
        async with AsyncNoukai(KEY, base_url=fake.base_url, org="acme", project="app") as client:
            return [s.step_id async for s in client.flow("hello").steps("hi")]

    assert asyncio.run(run()) == BLOCKS
    bodies = _step_bodies(fake)
    assert [b["stepIndex"] for b in bodies] == [0, 1, 2]
    assert [b.get("executionId") for b in bodies] == [None, EXEC_ID, EXEC_ID]
    assert bodies[2]["accumulatedOutputs"] == {"a": _output("a"), "b": _output("b")}


# -- §9, §10, §11.2: jobs, traces, session fetches -------------------------------------


def test_job_submit_and_poll(fake: FakeNoukai) -> None:
    session_id = str(uuid.uuid4())
    with Noukai(KEY, base_url=fake.base_url, session_id=session_id) as client:
        job = client.flow("acme/app/hello").execute_async(
            "long", trace=True, version=5, block_overrides={"a": {"t": 2}}
        )
        assert job.wait(timeout=10, poll_interval=0.05).status == "completed"
    submit, poll = fake.requests[0], fake.requests[-1]
    assert submit.path == f"{FLOW}/v5/jobs" and poll.path == f"{FLOW}/jobs/{EXEC_ID}"
    check_headers(submit, session_id)
    check_headers(poll, None)
    body = check_body_style(submit)
    assert body == {
        "message": "long",
        "parameters": {},
        "blockOverrides": {"a": {"t": 2}},
        "iterationsUsed": 0,
        "accumulatedOutputs": {},
        "trace": True,
    }


def test_trace_routes(client: Noukai, fake: FakeNoukai) -> None:
    """§10: unversioned paths, `attempt`/`loop_index` query, Accept json on the stream."""
    run = client.flow("hello").run(EXEC_ID)
    run.trace()
    run.step_trace("a")
    run.step_trace("a", attempt="all")
    run.step_trace("a", attempt=2, loop_index=1)
    events = list(run.live_trace())
    assert events[-1].type == "flow_completed"
    base = f"{FLOW}/runs/{EXEC_ID}"
    paths = [r.path for r in fake.requests]
    assert paths[:4] == [
        f"{base}/trace",
        f"{base}/steps/a/trace",  # absent `attempt` means latest (§10.2)
        f"{base}/steps/a/trace?attempt=all",
        f"{base}/steps/a/trace?attempt=2&loop_index=1",
    ]
    assert paths[4] == f"{base}/trace/stream"
    for request in fake.requests:
        check_headers(request)


def test_session_fetch_has_no_session_header(
    fake: FakeNoukai, monkeypatch: pytest.MonkeyPatch
) -> None:
    """§1.2/§11.4: replay makes one GET /seq/sessions/{id} and no flow calls."""
    monkeypatch.setenv("NOUKAI_REPLAY_ENABLED", "true")
    session_id = str(uuid.uuid4())
    with (
        Noukai(KEY, base_url=fake.base_url, org="acme", project="app") as client,
        replay_scope_sync(replay_session_id=session_id, client=client),
    ):
        result = client.flow("hello").execute("anything")
    assert result.result == _output("a")
    [fetch] = fake.requests
    assert fetch.method == "GET" and fetch.path == f"/api/v1/seq/sessions/{session_id}"
    check_headers(fetch, None)


def test_capture_scope_tags_only_creating_calls(client: Noukai, fake: FakeNoukai) -> None:
    """§1.2: a capture scope's id goes on execute/step/jobs, not on polls or traces."""
    with trace_scope_sync() as scope:
        flow = client.flow("hello")
        flow.execute("hi")
        list(flow.steps("hi", run_remaining=True))
        flow.execute_async("hi").poll()
        flow.run(EXEC_ID).trace()
    for request in fake.requests:
        creating = bool(SESSION_HEADER_ALLOWED.search(request.path))
        check_headers(request, scope.session_id if creating else None)
    assert len(fake.requests) == 5
    assert uuid.UUID(scope.session_id).version == 4  # §1.2: SDK-made ids are UUID v4


def test_post_is_never_retried_get_is_retried_once(client: Noukai, fake: FakeNoukai) -> None:
    """§1.5: a POST is not retried after a 503 without Retry-After; a GET is, once."""
    with pytest.raises(FlowExecutionError) as failed:
        client.flow("acme/down/hello").execute("hi")
    assert failed.value.status_code == 503 and failed.value.code == "BILLING_UNAVAILABLE"
    assert failed.value.request_id and len(fake.requests) == 1
    with pytest.raises(FlowExecutionError):
        client.flow("acme/down/hello").run(EXEC_ID).trace()
    assert [r.method for r in fake.requests] == ["POST", "GET", "GET"]


# -- §1.5, §7.1, §7.4, §8.4, §9.2: how the client reads what comes back -------------


@pytest.mark.parametrize(
    "status,error",
    [
        (401, AuthenticationError),
        (402, InsufficientCreditsError),
        (403, PermissionDeniedError),
        (404, FlowNotFoundError),
        (429, RateLimitError),
        (400, FlowExecutionError),
        (409, FlowExecutionError),
        (413, FlowExecutionError),
        (422, FlowExecutionError),
    ],
)
def test_error_statuses_map_to_typed_errors(
    client: Noukai, fake: FakeNoukai, status: int, error: type[NoukaiError]
) -> None:
    """§1.5: status → class, `.code`/`.request_id`; 401 and 429 headers are kept."""
    with pytest.raises(error) as raised:
        client.flow(f"err{status}/app/hello").execute("hi")
    assert raised.value.status_code == status and raised.value.code == f"CODE_{status}"
    assert raised.value.request_id and raised.value.request_id.startswith("req_")
    if status == 401:
        assert raised.value.www_authenticate == 'Bearer error="invalid_token"'
    if status == 429:
        assert raised.value.retry_after == 120.0
    assert len(fake.requests) == 1


def test_plain_string_detail_becomes_the_message(client: Noukai) -> None:
    with pytest.raises(FlowExecutionError) as raised:
        client.flow("errstr/app/hello").execute("hi")
    assert "plain text problem" in str(raised.value) and raised.value.code in (None, "")


def test_hosted_style_sparse_frames_do_not_stall_steps(client: Noukai, fake: FakeNoukai) -> None:
    """§7.4: no runId on run_started, no stepId on step_paused, drop-safe extra types."""
    steps = list(client.flow("acme/hosted/hello").steps("hi"))
    assert [s.step_id for s in steps] == ["a", "b"]
    second = fake.requests[1].json
    assert second["executionId"] == EXEC_ID and second["stepIndex"] == 1


def test_tolerated_frame_variants_of_section_6_1(client: Noukai) -> None:
    """§6.1: `flow_started` alias, type from `eventType` alone, `data:` without a
    space, `id:`/`retry:` fields and multi-line data are all read."""
    events = list(client.flow("acme/legacy/hello").events("hi"))
    assert [e.event_type for e in events] == ["run_started", "step_completed", "flow_completed"]
    assert events[1].output == _output("a")


def test_stream_without_terminal_frame_is_not_reissued(client: Noukai, fake: FakeNoukai) -> None:
    """§7.1 rule 5: Python treats an unterminated run as finished: no re-issue loop."""
    with contextlib.suppress(NoukaiError):
        list(client.flow("acme/noterm/hello").steps("hi"))
    assert len(fake.requests) == 1


def test_job_404_right_after_submission_counts_as_pending(client: Noukai, fake: FakeNoukai) -> None:
    """§9.2: a 404 within 5 s of submission is the queue race, not an error."""
    job = client.flow("acme/late/hello").execute_async("hi")
    assert job.wait(timeout=10, poll_interval=0.05).status == "completed"
    assert [r.method for r in fake.requests].count("GET") == 3


def test_client_round_limit_stops_resuming(client: Noukai, fake: FakeNoukai) -> None:
    """§8.4: max_tool_rounds=1 and a second pause: ToolCallLimitError, nothing sent."""
    with pytest.raises(ToolCallLimitError) as raised:
        client.flow("acme/loop/hello").execute(
            "Weather?", tools=TOOLS, max_tool_rounds=1, tool_handler=_results
        )
    assert raised.value.code == "TOOL_CALL_LIMIT_CLIENT"
    assert len(fake.requests) == 2


def test_bad_key_and_bad_session_id_fail_before_any_request(
    fake: FakeNoukai, monkeypatch: pytest.MonkeyPatch
) -> None:
    """§1.2: keys must start with nk_; §1.4: only UUID session ids are fetched."""
    with pytest.raises(AuthenticationError):
        Noukai("sk_not_noukai", base_url=fake.base_url)
    monkeypatch.setenv("NOUKAI_REPLAY_ENABLED", "true")
    with (
        Noukai(KEY, base_url=fake.base_url) as client,
        pytest.raises((NoukaiError, ValueError)),
        replay_scope_sync(replay_session_id="not-a-uuid", client=client),
    ):
        pass
    assert fake.requests == []


@pytest.mark.parametrize(
    "suffix,error",
    [
        ("400", ReplayInvalidSessionError),
        ("403", ReplayForbiddenError),
        ("404", ReplaySessionNotFoundError),
        ("410", ReplaySessionExpiredError),
        ("299", ReplayNoSnapshotsError),
    ],
)
def test_session_fetch_statuses_map_to_replay_errors(
    fake: FakeNoukai, monkeypatch: pytest.MonkeyPatch, suffix: str, error: type[NoukaiError]
) -> None:
    """§1.5 / §11.2: 400/403/404/410 on E9 become the Replay* errors; a session with
    `snapshotsAvailable: false` is refused as a whole (no flow call is made)."""
    monkeypatch.setenv("NOUKAI_REPLAY_ENABLED", "true")
    session_id = f"00000000-0000-4000-8000-000000000{suffix}"
    with (
        Noukai(KEY, base_url=fake.base_url, org="acme", project="app", max_retries=0) as c,
        pytest.raises(error),
        replay_scope_sync(replay_session_id=session_id, client=c),
    ):
        c.flow("hello").execute("anything")
    assert {r.path for r in fake.requests} == {f"/api/v1/seq/sessions/{session_id}"}


@pytest.mark.parametrize("operation", ["steps", "job", "trace"])
def test_errors_on_streams_jobs_and_traces_are_typed(
    client: Noukai, fake: FakeNoukai, operation: str
) -> None:
    """§5.2 / §1.5: a pre-stream JSON error, a job submit error and a trace read error
    surface as the typed error with code and request id."""
    flow = client.flow("err404/app/hello")
    with pytest.raises(FlowNotFoundError) as raised:
        if operation == "steps":
            list(flow.steps("hi"))
        elif operation == "job":
            flow.execute_async("hi")
        else:
            flow.run(EXEC_ID).trace()
    assert raised.value.code == "CODE_404" and raised.value.request_id
    assert len(fake.requests) == 1


def _failure_code(call: Any) -> str | None:
    """The recorded error's code, however the client reports a failed run: §11.4's
    FlowExecutionError, or (issue 5 item 3, mirroring the live 200 `failed` reply
    of §4.4) an ExecuteResult with status "failed" and its `error`."""
    try:
        outcome = call()
    except FlowExecutionError as exc:
        return exc.code
    assert outcome.status == "failed" and outcome.result is None, outcome
    return str(outcome.error.code)


def test_replay_serves_calls_by_slug_trigger_and_position(
    fake: FakeNoukai, monkeypatch: pytest.MonkeyPatch
) -> None:
    """§11.4: execute() gets the last snapshot (or the recorded error), events() the
    synthesised run; only E9 goes on the wire; a call with no entry is a miss."""
    monkeypatch.setenv("NOUKAI_REPLAY_ENABLED", "true")
    session_id = "00000000-0000-4000-8000-000000000777"
    with Noukai(KEY, base_url=fake.base_url, org="acme", project="app") as client:
        with replay_scope_sync(replay_session_id=session_id, client=client):
            events = list(client.flow("hello").events("any input"))
            result = client.flow("hello").execute("different input")
            replayed_failure = _failure_code(lambda: client.flow("other").execute("x"))
            with pytest.raises(ReplayMissError):
                client.flow("hello").execute("one too many")
        with (
            pytest.raises(ReplayLeftoverError),
            replay_scope_sync(replay_session_id=session_id, client=client),
        ):
            client.flow("hello").execute("only one of three")
    # §11.2: the reserved sidecar key is stripped (SDK >= 0.3.0); blockCount = steps.
    assert result.status == "completed" and result.result == {"y": 2}
    assert result.execution_id == "e-1" and result.block_count == 2
    assert [e.event_type for e in events] == [
        "run_started",
        "step_started",
        "step_completed",
        "flow_completed",
    ]
    assert events[2].output == {"z": 3} and events[-1].result == {"z": 3}
    assert replayed_failure == "BOOM"
    assert {r.path for r in fake.requests} == {f"/api/v1/seq/sessions/{session_id}"}


def test_free_form_session_id_and_message_conflict(client: Noukai, fake: FakeNoukai) -> None:
    """§1.2: a user-supplied session id may be any string and is sent verbatim;
    §4.1: `message` with `messages` is refused client-side, before any request."""
    client.flow("hello").execute("hi", session_id="my own session #1")
    [request] = fake.requests
    check_headers(request, "my own session #1")
    with pytest.raises(ValueError):
        client.flow("hello").execute("hi", messages=[{"role": "user", "content": "hi"}])
    assert len(fake.requests) == 1
