"""Real servers for the FastAPI/Starlette tests.

- `serve_app(app)`: runs an ASGI app under uvicorn on a free loopback port
  (its own thread and event loop, as in production) and yields its base URL;
- `canned_upstream`: a real HTTP server speaking the Noukai API badly or
  well on demand (fixed SSE streams, error statuses, stalls, a dropped
  connection), for the conditions the dev server cannot produce;
- `serve_passthrough(**router_options)`: a FastAPI app with the passthrough
  router at `/noukai` in front of `canned_upstream`, served by uvicorn;
- `sse_frames(raw)`: the (event type, data, id) frames of raw SSE bytes.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
import uvicorn
from fastapi import FastAPI

from noukai_fastapi import flow_stream_router, noukai_lifespan


def sse_frame(event_type: str, data: dict[str, Any]) -> bytes:
    payload = {"eventType": event_type, **data}
    return f"event: {event_type}\ndata: {json.dumps(payload)}\n\n".encode()


def render_run(steps: int = 2, *, execution_id: str = "exec-canned", extra: bool = True,
               fail_at: int | None = None) -> list[bytes]:
    """A complete run as the server streams it with `runRemaining` (contract §6)."""
    frames = [sse_frame("run_started", {"runId": execution_id, "executionId": execution_id,
                                        "flowId": "flow-canned", "stepCount": steps})]
    for index in range(steps):
        step = {"executionId": execution_id, "stepId": f"s{index}", "name": f"Step {index}"}
        frames.append(sse_frame("step_started", {**step, "stepIndex": index}))
        if extra:
            frames.append(sse_frame("step_input", {**step, "inputData": {"secret": "PROMPT"}}))
            frames.append(sse_frame("step_output", {**step, "outputData": f"part {index}"}))
        if fail_at == index:
            frames.append(sse_frame("step_error", {**step, "error": {
                "code": "PROVIDER_ERROR", "message": "provider said sk-live-SECRET"}}))
            return frames
        frames.append(sse_frame("step_completed", {
            **step, "stepIndex": index, "output": {"response": f"out {index}"},
            "durationMs": 5, "tokens": {"prompt": 3, "completion": 4, "total": 7},
            "costUsd": "0.000007"}))
    frames.append(sse_frame("flow_completed", {
        "executionId": execution_id, "runId": execution_id,
        "result": {"response": f"out {steps - 1}"},
        "summary": {"status": "completed", "tokens": {"total": 7}, "costUsd": "0.1"}}))
    return frames


@dataclass
class Reply:
    """What the canned upstream answers to every request."""

    status: int = 200
    json: Any = None
    frames: list[bytes] = field(default_factory=list)
    frame_delay: float = 0.0
    stall: float = 0.0  # sleep before answering at all
    drop_after: int | None = None  # close the socket after this many frames
    headers: dict[str, str] = field(default_factory=dict)
    # Lock-step streaming: before frame i, wait (at most `hold_limit` s) for
    # the test to set `holds[i]`; `frames_sent` counts what went out.
    holds: dict[int, threading.Event] = field(default_factory=dict)
    hold_limit: float = 5.0
    frames_sent: int = 0


class CannedUpstream:
    """A real HTTP server on a free port that answers with `self.reply`.

    Tests set `upstream.reply = upstream.Reply(...)` (or queue one reply per
    request in `upstream.replies`); `upstream.run_frames(...)` renders a run's
    SSE frames; `requests` records what arrived and `open_connections` counts
    the client connections still open.
    """

    Reply = Reply
    run_frames = staticmethod(render_run)
    frame = staticmethod(sse_frame)

    def __init__(self) -> None:
        self.reply = Reply(frames=render_run())
        # (path substring, reply): the first match wins over `reply`.
        self.routes: list[tuple[str, Reply]] = []
        self.requests: list[tuple[str, str, dict[str, str], bytes]] = []
        self.disconnects = 0
        self.open_connections = 0  # client connections not yet closed (keep-alive included)
        self.replies: list[Reply] = []  # answered in order, before `routes` and `reply`
        lock = threading.Lock()
        upstream = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def setup(self) -> None:
                super().setup()
                with lock:
                    upstream.open_connections += 1

            def finish(self) -> None:
                with lock:
                    upstream.open_connections -= 1
                super().finish()

            def _answer(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                body = self.rfile.read(length) if length else b""
                upstream.requests.append(
                    (self.command, self.path, dict(self.headers.items()), body))
                with lock:
                    queued = upstream.replies.pop(0) if upstream.replies else None
                reply = queued or next((r for part, r in upstream.routes if part in self.path),
                                       upstream.reply)
                if reply.stall:
                    time.sleep(reply.stall)
                if reply.json is not None or reply.status != 200:
                    data = json.dumps(reply.json if reply.json is not None else {}).encode()
                    self.send_response(reply.status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    self.send_header("X-Request-ID", "req_canned")
                    for name, value in reply.headers.items():
                        self.send_header(name, value)
                    self.end_headers()
                    self.wfile.write(data)
                    return
                self.send_response(200)
                self.send_header("Content-Type", "text/event-stream")
                self.send_header("X-Request-ID", "req_canned")
                self.send_header("Connection", "close")
                self.end_headers()
                self.close_connection = True
                try:
                    for count, frame in enumerate(reply.frames):
                        if reply.drop_after is not None and count >= reply.drop_after:
                            return
                        if count in reply.holds:
                            reply.holds[count].wait(reply.hold_limit)
                        # counted before the write, so a reader that sees
                        # frame n never reads a count below n
                        reply.frames_sent = count + 1
                        self.wfile.write(frame)
                        self.wfile.flush()
                        if reply.frame_delay:
                            time.sleep(reply.frame_delay)
                except OSError:
                    upstream.disconnects += 1

            do_GET = do_POST = _answer

        class Server(ThreadingHTTPServer):
            request_queue_size = 256  # the default backlog (5) resets concurrent clients

        self.server = Server(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.base_url = f"http://127.0.0.1:{self.server.server_address[1]}/api/v1"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def start(self) -> None:
        self.thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@contextmanager
def _serve(app: Any, **config: Any) -> Iterator[str]:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    # Accepted sockets inherit this; without it a pre-bound socket handed to
    # uvicorn gets Nagle's algorithm, and every small response waits ~40 ms.
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(
        uvicorn.Config(app, log_level="warning", log_config=None, lifespan="on",
                       timeout_graceful_shutdown=2, **config)
    )
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 15
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()


@pytest.fixture
def serve_app() -> Callable[..., Any]:
    """`with serve_app(app) as base_url:` runs `app` under a real uvicorn server."""
    return _serve


@pytest.fixture(scope="session")
def slow_devserver(noukai_devserver_factory: Any) -> Any:
    """A dev server whose slow blocks last 1 s: long enough that a disconnect
    during the first block surely lands before the second would start."""
    return noukai_devserver_factory(slow_seconds=1.0)


@pytest.fixture
def canned_upstream() -> Iterator[CannedUpstream]:
    upstream = CannedUpstream()
    upstream.start()
    try:
        yield upstream
    finally:
        upstream.stop()


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


@pytest.fixture
def sse_frames() -> Callable[[bytes], list[tuple[str, Any, str | None]]]:
    return parse_sse


@contextmanager
def _passthrough(upstream: CannedUpstream, **router_options: Any) -> Iterator[str]:
    flows = router_options.pop("flows", ["hello-world"])
    app = FastAPI(lifespan=noukai_lifespan(
        api_key="nk_test_key", base_url=upstream.base_url, org="acme", project="demo",
        max_retries=0,
    ))
    app.include_router(flow_stream_router(flows, **router_options), prefix="/noukai")
    with _serve(app) as base_url:
        yield base_url


@pytest.fixture
def serve_passthrough(canned_upstream: CannedUpstream) -> Callable[..., Any]:
    """`with serve_passthrough(**router_options) as base_url:` (routes under `/noukai`)."""

    def serve(**router_options: Any) -> Any:
        return _passthrough(canned_upstream, **router_options)

    return serve
