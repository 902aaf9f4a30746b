"""A real socket server that misbehaves on purpose, for conditions the dev server can't make.

Each test gives it a `responder(request, conn)` (or a list of them, one per
request); the responder writes raw HTTP to the socket and may stall, reset
or cut a stream. Every request is recorded as the server saw it, so tests
assert what happened on the wire (how many POSTs, which headers).

Imported by name: `conftest.py` puts this directory on `sys.path` (pytest
runs with `--import-mode=importlib`), so tests can annotate with its classes.
"""

from __future__ import annotations

import contextlib
import json
import socket
import struct
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any


@dataclass
class SeenRequest:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class Conn:
    sock: socket.socket
    stop: threading.Event

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def respond(self, status: int, body: Any = None, headers: dict[str, str] | None = None) -> None:
        payload = json.dumps(body if body is not None else {}).encode()
        head = {
            "Content-Type": "application/json",
            "Content-Length": str(len(payload)),
            "X-Request-ID": "req_test",
            "Connection": "close",
            **(headers or {}),
        }
        lines = "".join(f"{k}: {v}\r\n" for k, v in head.items())
        self.send(f"HTTP/1.1 {status} X\r\n{lines}\r\n".encode() + payload)

    def start_stream(self) -> None:
        self.send(
            b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
            b"X-Request-ID: req_stream\r\nConnection: close\r\n\r\n"
        )

    def stall(self, seconds: float = 5.0) -> None:
        self.stop.wait(seconds)

    def reset(self) -> None:
        # SO_LINGER 0: close() sends RST instead of FIN, as a crashed peer would.
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.sock.close()


Responder = Callable[[SeenRequest, Conn], None]


@dataclass
class ScriptedServer:
    responders: list[Responder] | Responder = field(default_factory=list)
    requests: list[SeenRequest] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._sock = socket.socket()
        self._sock.bind(("127.0.0.1", 0))
        self._sock.listen(64)
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._lock = threading.Lock()
        self.port = self._sock.getsockname()[1]
        self._accept = threading.Thread(target=self._serve, daemon=True)
        self._accept.start()

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/api/v1"

    def posts(self, suffix: str = "") -> list[SeenRequest]:
        return [r for r in self.requests if r.method == "POST" and r.path.endswith(suffix)]

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._sock.accept()
            except OSError:
                return
            thread = threading.Thread(target=self._handle, args=(conn,), daemon=True)
            thread.start()  # started before it is listed: close() may join any listed thread
            self._threads.append(thread)

    def _read_request(self, conn: socket.socket) -> SeenRequest | None:
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = conn.recv(65536)
            if not chunk:
                return None
            data += chunk
        head, _, body = data.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        method, target, _ = lines[0].split(" ", 2)
        headers = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        length = int(headers.get("content-length", "0"))
        while len(body) < length:
            chunk = conn.recv(65536)
            if not chunk:
                break
            body += chunk
        path = target.split("?", 1)[0]
        if path.startswith("/api/v1"):
            path = path[len("/api/v1") :]
        return SeenRequest(
            method, path + ("?" + target.split("?", 1)[1] if "?" in target else ""), headers, body
        )

    def _handle(self, conn: socket.socket) -> None:
        try:
            request = self._read_request(conn)
            if request is None:
                return
            with self._lock:
                self.requests.append(request)
                if callable(self.responders):
                    responder = self.responders
                elif self.responders:
                    responder = self.responders.pop(0)
                else:
                    responder = fail_everything
            responder(request, Conn(conn, self._stop))
        except OSError:
            pass
        finally:
            with contextlib.suppress(OSError):
                conn.close()

    def close(self) -> None:
        self._stop.set()
        self._sock.close()
        for thread in self._threads:
            thread.join(timeout=2)


def fail_everything(request: SeenRequest, conn: Conn) -> None:
    conn.respond(500, {"detail": {"code": "NO_LIVE_CALLS", "message": "unexpected request"}})


def sse(event: str, **payload: Any) -> bytes:
    payload["eventType"] = event
    return f"event: {event}\ndata: {json.dumps(payload)}\n\n".encode()
