"""A dev server served by a real uvicorn in a thread of the test process.

Most dev server tests drive a subprocess (the pytest plugin), which is what a
user runs. A few properties can only be observed on the server's own objects,
such as how many runs it holds in memory; for those, this module serves the
same app (`create_app` over a `ServerState`, the demo workspace, a SQLite
file) on a free loopback port, and hands the test both the base URL and the
state. Requests still go over real sockets.

Imported by name: conftest puts this directory on sys.path.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import uvicorn

from noukai_devserver._app import ServerOptions, ServerState, create_app
from noukai_devserver._server import bind_sockets
from noukai_devserver._store import Store
from noukai_devserver._workspace import DEMO_WORKSPACE, load_workspace

START_DEADLINE = 30.0


@contextmanager
def serve_in_process(db: Path, **options: float) -> Iterator[tuple[str, ServerState]]:
    """Serve the demo workspace until the block ends; yields (base URL, state).

    `options` are `ServerOptions` fields (fast time constants are up to the test).
    """
    state = ServerState(load_workspace(DEMO_WORKSPACE), Store(str(db)),
                        ServerOptions(**options))  # type: ignore[arg-type]
    sock = bind_sockets("127.0.0.1", 0)[0]
    server = uvicorn.Server(uvicorn.Config(create_app(state), log_level="warning",
                                           log_config=None, access_log=False,
                                           lifespan="on", http="h11", ws="none"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + START_DEADLINE
        while not server.started:
            if not thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the in-process dev server did not start")
            time.sleep(0.01)
        yield f"http://127.0.0.1:{sock.getsockname()[1]}/api/v1", state
    finally:
        server.should_exit = True
        thread.join(START_DEADLINE)
        state.store.close()
        sock.close()
