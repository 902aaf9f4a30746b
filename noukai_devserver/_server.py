"""Binding sockets and running uvicorn with a shutdown that never hangs.

- `localhost` (the default host) binds both loopback families, 127.0.0.1 and
  ::1 when available, because `localhost` may resolve to ::1 first and the
  SDKs cannot change their base URL (contract §1.1).
- Port 0 picks a free port; the banner prints the real one. Tests (and the
  pytest plugin) read it from the `serving` line.
- On SIGTERM/SIGINT uvicorn stops accepting and then waits for open
  connections, forever for an SSE response. `_Server.handle_exit` therefore
  also tells every open stream to send its final frame and end, and
  `timeout_graceful_shutdown` bounds the wait.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import sys
from pathlib import Path
from types import FrameType

import uvicorn

from ._app import ServerOptions, ServerState, create_app
from ._store import Store
from ._workspace import Workspace

DEFAULT_DB = Path(".noukai-dev") / "demo.sqlite3"


def bind_sockets(host: str, port: int) -> list[socket.socket]:
    """Listening sockets; for `localhost`, IPv4 first, then IPv6 on the same port."""
    families: list[tuple[socket.AddressFamily, str]]
    if host == "localhost":
        families = [(socket.AF_INET, "127.0.0.1"), (socket.AF_INET6, "::1")]
    elif ":" in host:
        families = [(socket.AF_INET6, host)]
    else:
        families = [(socket.AF_INET, host)]
    sockets: list[socket.socket] = []
    for index, (family, address) in enumerate(families):
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        # Accepted sockets inherit this on Linux. Without it, a response written as
        # headers + body waits for the client's delayed ACK (~40 ms per request).
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        try:
            sock.bind((address, port))
        except OSError:
            sock.close()
            if index == 0:
                raise
            continue  # no IPv6 loopback here: IPv4 alone still serves
        sock.listen(2048)
        sock.set_inheritable(True)
        port = sock.getsockname()[1]
        sockets.append(sock)
    return sockets


class _Server(uvicorn.Server):
    def __init__(self, config: uvicorn.Config, state: ServerState) -> None:
        super().__init__(config)
        self.noukai_state = state

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        loop = asyncio.get_event_loop()
        loop.call_soon_threadsafe(self.noukai_state.begin_shutdown)
        super().handle_exit(sig, frame)


def configure_logging(level: str) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s %(message)s"))
    root = logging.getLogger("noukai_devserver")
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    root.propagate = False


def serve(workspace: Workspace, db_path: str, host: str, port: int, options: ServerOptions,
          *, log_level: str = "info", show_keys: bool = True) -> None:
    """Run until SIGTERM/SIGINT; prints the banner once listening."""
    configure_logging(log_level)
    sockets = bind_sockets(host, port)
    actual = sockets[0].getsockname()[1]
    store = Store(db_path)
    state = ServerState(workspace, store, options)
    app = create_app(state)
    config = uvicorn.Config(app, log_level="warning", access_log=False, lifespan="on",
                            timeout_graceful_shutdown=3, http="h11", ws="none")
    server = _Server(config, state)
    shown = "localhost" if host == "localhost" else (f"[{host}]" if ":" in host else host)
    print(f"noukai-dev serving http://{shown}:{actual}/api/v1", flush=True)
    listening = ", ".join(f"{s.getsockname()[0]}:{actual}" for s in sockets)
    print(f"  listening on {listening}", flush=True)
    print(f"  workspace: {workspace.root}", flush=True)
    print(f"  database:  {db_path}", flush=True)
    # The demo keys are public; a custom workspace's keys stay in its noukai.yaml.
    for key, info in workspace.keys.items():
        org = workspace.orgs[info.org]
        shown_key = key if show_keys else "(see noukai.yaml)"
        print(f"  org: {org.name}  project: {', '.join(org.projects)}  api key: {shown_key}",
              flush=True)
    try:
        server.run(sockets=sockets)
    finally:
        store.close()
        for sock in sockets:
            sock.close()
