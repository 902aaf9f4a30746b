"""A real keep-alive HTTP/1.1 server that streams `/step` answers as SSE servers do.

`ScriptedServer` (misbehaving_server.py) answers one request per connection
and ends each stream by closing the socket. This one keeps connections open
across requests and frames each stream with `Transfer-Encoding: chunked`, one
chunk per event, like the dev server (uvicorn) and the hosted API. It counts
the connections it accepted, so a test can observe whether the client put a
finished stream's connection back in its pool. A stream may be gzipped (one
gzip member, flushed after every event so each chunk decodes on arrival), and
may be left open after its last frame.

Imported by name: `conftest.py` puts this directory on `sys.path`.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import zlib
from dataclasses import dataclass, field


@dataclass
class StreamPlan:
    """How to answer one request: these frames, then end the body or hold it open."""

    frames: list[bytes]
    gzip: bool = False
    # False: after the last frame the body is neither ended nor closed until
    # the server stops (a server that breaks contract §6.4).
    end: bool = True
    # After the last frame, close the connection without ending the body (a
    # FIN, not a reset: every frame sent is still read, whatever the timing).
    cut: bool = False
    # Bytes that are no valid continuation of the body's encoding, sent (as a
    # chunk of their own) after the last frame: with `gzip`, a corrupt stream.
    garbage: bytes = b""


@dataclass
class ChunkedStreamServer:
    plans: list[StreamPlan] = field(default_factory=list)
    connections: int = 0
    requests: list[bytes] = field(default_factory=list)
    # Streams whose connection the client closed before their body ended.
    closed_by_client: int = 0

    def __post_init__(self) -> None:
        self._sock = socket.socket()
        self._sock.bind(("127.0.0.1", 0))
        self._sock.listen(16)
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._threads: list[threading.Thread] = []
        self.port = self._sock.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/api/v1"

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self._sock.accept()
            except OSError:
                return
            with self._lock:
                self.connections += 1
            thread = threading.Thread(target=self._serve, args=(conn,), daemon=True)
            self._threads.append(thread)
            thread.start()

    def _read_request(self, conn: socket.socket, buffered: bytes) -> tuple[bytes, bytes] | None:
        """One request's head line, and the bytes read past its body."""
        data = buffered
        while b"\r\n\r\n" not in data:
            chunk = conn.recv(65536)
            if not chunk:
                return None
            data += chunk
        head, _, rest = data.partition(b"\r\n\r\n")
        length = 0
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        while len(rest) < length:
            chunk = conn.recv(65536)
            if not chunk:
                return None
            rest += chunk
        return head.split(b"\r\n", 1)[0], rest[length:]

    def _serve(self, conn: socket.socket) -> None:
        buffered = b""
        try:
            while not self._stop.is_set():
                request = self._read_request(conn, buffered)
                if request is None:
                    return
                line, buffered = request
                with self._lock:
                    self.requests.append(line)
                    plan = self.plans.pop(0) if self.plans else None
                if plan is None:
                    body = b'{"detail":{"code":"NO_PLAN","message":"unexpected request"}}'
                    conn.sendall(
                        b"HTTP/1.1 500 X\r\ncontent-type: application/json\r\n"
                        b"content-length: %d\r\n\r\n%s" % (len(body), body)
                    )
                    continue
                try:
                    self._stream(conn, plan)
                except OSError:  # a send failed: the client closed its end mid-stream
                    self._count_client_close()
                    return
                if plan.cut:
                    return
                if not plan.end:
                    self._hold_open(conn)
                    return
        except OSError:
            pass
        finally:
            with contextlib.suppress(OSError):
                conn.close()

    def _hold_open(self, conn: socket.socket) -> None:
        """Keep a stream open until the server stops (past pytest-timeout: a client
        that waits on it fails), noting when the client closes the connection."""
        conn.settimeout(0.05)
        while not self._stop.is_set():
            try:
                if not conn.recv(65536):
                    self._count_client_close()
                    return
            except TimeoutError:
                continue
            except OSError:  # reset rather than closed
                self._count_client_close()
                return

    def _count_client_close(self) -> None:
        with self._lock:
            self.closed_by_client += 1

    def _stream(self, conn: socket.socket, plan: StreamPlan) -> None:
        head = (
            b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream; charset=utf-8\r\n"
            b"cache-control: no-cache\r\nx-request-id: req_chunked\r\n"
            b"transfer-encoding: chunked\r\n"
        )
        # 31: one gzip member, as `gzip` writes; flushed per event so each chunk decodes.
        packer = zlib.compressobj(wbits=31) if plan.gzip else None
        if packer is not None:
            head += b"content-encoding: gzip\r\n"
        conn.sendall(head + b"\r\n")
        for frame in plan.frames:
            data = frame
            if packer is not None:
                data = packer.compress(frame) + packer.flush(zlib.Z_SYNC_FLUSH)
            conn.sendall(b"%x\r\n%s\r\n" % (len(data), data))
        if plan.garbage:
            conn.sendall(b"%x\r\n%s\r\n" % (len(plan.garbage), plan.garbage))
        if plan.end and not plan.cut:
            tail = packer.flush() if packer is not None else b""
            conn.sendall((b"%x\r\n%s\r\n" % (len(tail), tail) if tail else b"") + b"0\r\n\r\n")

    def close(self) -> None:
        self._stop.set()
        self._sock.close()
        for thread in self._threads:
            thread.join(timeout=2)
