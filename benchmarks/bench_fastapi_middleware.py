"""Benchmark: NoukaiTraceMiddleware overhead on a trivial route (target ratio >= 0.95).

One uvicorn server (a subprocess) serves the same trivial Starlette app twice:
bare under `/bare`, wrapped in `NoukaiTraceMiddleware` under `/traced`. A
lean asyncio HTTP/1.1 client (keep-alive connections, so the client is not
the bottleneck) sends the same number of requests to each in many short
alternating rounds. The printed ratio is the median, over pairs of adjacent
rounds, of traced requests/s over bare requests/s: on a shared machine a
burst of outside load then spoils a pair or two, not the result.
"""

from __future__ import annotations

import asyncio
import os
import statistics
import subprocess
import sys
import time

CONNECTIONS = 16
REQUESTS = 1_600
ROUNDS = 15


def serve() -> None:
    import socket

    import uvicorn
    from starlette.applications import Starlette
    from starlette.responses import PlainTextResponse
    from starlette.routing import Mount, Route

    from noukai_fastapi import NoukaiTraceMiddleware

    async def ping(request: object) -> PlainTextResponse:
        return PlainTextResponse("pong")

    def trivial() -> Starlette:
        return Starlette(routes=[Route("/ping", ping)])

    app = Starlette(routes=[
        Mount("/bare", app=trivial()),
        Mount("/traced", app=NoukaiTraceMiddleware(trivial())),
    ])
    sock = socket.socket()
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # inherited by connections
    sock.bind(("127.0.0.1", 0))
    print(sock.getsockname()[1], flush=True)
    uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False)).run(
        sockets=[sock])


async def _connection(port: int, path: str, count: int) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    request = f"GET {path} HTTP/1.1\r\nHost: bench\r\n\r\n".encode()
    for _ in range(count):
        writer.write(request)
        head = await reader.readuntil(b"\r\n\r\n")
        length = next(int(line.split(b":")[1]) for line in head.split(b"\r\n")
                      if line.lower().startswith(b"content-length"))
        await reader.readexactly(length)
    writer.close()


async def _round(port: int, path: str) -> float:
    started = time.perf_counter()
    await asyncio.gather(*(_connection(port, path, REQUESTS // CONNECTIONS)
                           for _ in range(CONNECTIONS)))
    return REQUESTS / (time.perf_counter() - started)


async def measure(port: int) -> tuple[list[float], list[float]]:
    await _round(port, "/bare/ping")  # warm-up
    await _round(port, "/traced/ping")
    bare, traced = [], []
    for index in range(ROUNDS):
        # alternate which goes first, so neither always follows the other
        order = ["/bare/ping", "/traced/ping"][:: 1 if index % 2 else -1]
        rates = {path: await _round(port, path) for path in order}
        bare.append(rates["/bare/ping"])
        traced.append(rates["/traced/ping"])
    return bare, traced


def main() -> int:
    server = subprocess.Popen([sys.executable, __file__, "--serve"], stdout=subprocess.PIPE,
                              env={**os.environ, "PYTHONUNBUFFERED": "1"})
    try:
        assert server.stdout is not None
        port = int(server.stdout.readline())
        time.sleep(0.5)
        bare, traced = asyncio.run(measure(port))
    finally:
        server.terminate()
        server.wait(10)
    ratio = statistics.median(t / b for t, b in zip(traced, bare, strict=True))
    print(f"bare route:      {statistics.median(bare):8.0f} requests/s (median round)")
    print(f"with middleware: {statistics.median(traced):8.0f} requests/s (median round)")
    print(f"ratio (with / without middleware): {ratio:.3f}  (target >= 0.95)")
    return 0


if __name__ == "__main__":
    if sys.argv[1:] == ["--serve"]:
        serve()
    else:
        raise SystemExit(main())
