"""A small fake Noukai for the contract checks of the client (the wire of `noukai_core`).

A threaded `http.server` on a free loopback port, written here from the HTTP
contract: it records every raw request and answers with contract-shaped canned
responses. The test modules beside it drive it through the public API of
`noukai_core` and compare the recorded requests with §1.2 (headers), §2 (paths
and version routing), §4.1/§8.1 (execute and resume bodies), §5.1/§7.1/§8.2
(the `/step` cursor), §9 (jobs), §10 (traces) and §11.2 (session fetches).

The fake's `/step` deliberately sends segment-local `stepIndex` values (0 in
every call, as the hosted service does, §6.3): a client must derive its next
`stepIndex` by counting `step_completed` frames, never from those values.

Misbehaviours are chosen by the org/project segments of the path (see
`_variant`). This module is imported by name (`conftest.py` puts this
directory on `sys.path`; pytest runs with `--import-mode=importlib`).
"""

from __future__ import annotations

import json
import re
import threading
import uuid
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

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


def block_output(block: str) -> dict[str, str]:
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
            output=block_output(block),
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
                    accumulatedOutputs={"a": block_output("a"), "server-side": {"k": 1}},
                )
            )
            return _sse(*frames)
        resuming = False
        frames += _run_block(index)
        index += 1
        if index == len(BLOCKS):
            frames.append(_event("flow_completed", runId=EXEC_ID, result=block_output("c")))
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
                _event("flow_completed", result=block_output("b")),
            ]
        return 200, "text/event-stream", b": hi\n\n" + _sse(*frames), {}
    if "/legacy/" in path and path.endswith("/step"):
        started = json.dumps(_event("flow_started", runId=EXEC_ID, flowId=FLOW_ID, stepCount=1))
        (done,) = [e for e in _run_block(0) if e["eventType"] == "step_completed"]
        multi = "".join(f"data: {line}\n" for line in json.dumps(done, indent=1).split("\n"))
        end = json.dumps(_event("flow_completed", runId=EXEC_ID, result=block_output("a")))
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
                "result": block_output("c"),
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
            _event("flow_completed", runId=EXEC_ID, result=block_output("a")),
        ]
        return 200, "text/event-stream", _sse(*frames), {}
    elif path.endswith("/jobs"):
        reply = {"executionId": EXEC_ID, "status": "pending", "flowId": FLOW_ID, "blockCount": 1}
    elif "/jobs/" in path:
        reply = {
            "executionId": path.rsplit("/", 1)[1],
            "status": "completed",
            "result": block_output("a"),
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
                    "steps": [{"stepId": "a", "outputSnapshot": block_output("a")}],
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
