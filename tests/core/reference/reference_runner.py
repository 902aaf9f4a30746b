"""How the reference examples run: the harness shared by the tests beside it.

Every Python example of references 002 and 000 runs against the dev server.

Each example is the reference's text with its indentation restored (the
reference files lost it) and only these changes: the import names
`noukai_core` instead of `noukai_sdk`; flow slugs, execution ids, step ids,
session ids and the key of a call that really goes out point at the dev
server's demo workspace; and the placeholders that cannot run as printed
(`...` inside a dict or list literal, and the undefined `my_logger`,
`get_weather`, `run_tools`, `logger`) are given a definition. One message
changes: the manual tool loop asks a real weather question, because the dev
server's deterministic model calls a tool only for a weather question naming a
place, and with `"..."` the loop under test would never run.
`NOUKAI_API_KEY` and `NOUKAI_BASE_URL` point at the dev server, as a user's
environment would. Fragments that use `await` run inside a coroutine.

002's FastAPI adapter example imports `noukai_fastapi` and runs under a real
uvicorn. Its Flask twin (`init_noukai_trace`) is not run here: `noukai_flask`
has no public names yet; it belongs with the Flask integration's tests.

This module is imported by name (`conftest.py` puts this directory on
`sys.path`; pytest runs with `--import-mode=importlib`).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import textwrap
import threading
import time
from collections.abc import Iterator
from typing import Any

import uvicorn

TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "Get the current weather for a location.",
            "parameters": {
                "type": "object",
                "properties": {"location": {"type": "string"}},
                "required": ["location"],
            },
        },
    }
]


def get_weather(arguments: str) -> str:
    return f"Sunny in {json.loads(arguments)['location']}"


async def run_tools(tool_calls: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [
        {"toolCallId": c["id"], "output": get_weather(c["function"]["arguments"])}
        for c in tool_calls
    ]


def run(code: str, **names: Any) -> dict[str, Any]:
    namespace: dict[str, Any] = {"__name__": "reference_example", **names}
    exec(textwrap.dedent(code), namespace)
    return namespace


def run_async(code: str, **names: Any) -> dict[str, Any]:
    """Run an `await`-using fragment of the reference inside a coroutine."""
    body = textwrap.indent(textwrap.dedent(code), "    ")
    namespace = run(f"async def _example():\n{body}\n    return locals()\n", **names)
    return asyncio.run(namespace["_example"]())  # type: ignore[no-any-return]


@contextlib.contextmanager
def uvicorn_on_a_free_port(app: Any) -> Iterator[str]:
    """Serve `app` with a real uvicorn in a thread; yields its base URL."""
    sock = socket.socket()
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # no 40 ms delayed-ACK waits
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", log_config=None))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 15
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()
