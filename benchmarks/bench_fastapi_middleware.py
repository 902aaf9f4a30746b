"""Benchmark: NoukaiTraceMiddleware overhead on a trivial route (target ratio >= 0.95).

One uvicorn server (a subprocess) serves a trivial route four times: a
FastAPI app (`@app.get` returning a string as plain text), bare and with
`app.add_middleware(NoukaiTraceMiddleware)`, and the same pair as plain
Starlette apps. The
FastAPI pair is the primary result: it is the app this package is for, and
the route every quick start writes. The Starlette pair is printed as
context: its bare request is about a third cheaper, so the same middleware
cost is a larger share of it. (Paths of one length; a dict lookup picks the
app, so neither side pays for routing the other does not.)

Where a traced request's extra cost goes (CPU instructions counted with
callgrind on uvicorn's h11 protocol driven in-process, GC off): about 15,000
are uvicorn and h11 writing and validating the one extra response header,
some 1,700 the extra ASGI layer any middleware adds, and the rest (about
20,000) the middleware itself: the session scope, the id, the header copy.
A bare Starlette request is about 590,000, a FastAPI one about 816,000.

A lean asyncio HTTP/1.1 client (keep-alive connections, so the client is
not the bottleneck) sends the same number of requests to each side of a pair
in many short alternating rounds. Two ratios are printed
per pair:

- requests/s: the median, over pairs of adjacent rounds, of traced
  requests/s over bare requests/s: on a shared machine a burst of outside
  load then spoils a pair or two, not the result;
- requests per server CPU-second: the server's own CPU time (user + system,
  from /proc) summed over each side's rounds. The server is CPU-bound, so
  this is the throughput it would reach on a core of its own, and load from
  other processes (which on a busy 2-core machine moves the wall-clock ratio
  by +-0.05 from run to run) does not enter it.
"""

from __future__ import annotations

import asyncio
import os
import statistics
import subprocess
import sys
import time

from starlette.types import ASGIApp, Receive, Scope, Send

CONNECTIONS = 16
REQUESTS = 1_600
ROUNDS = 15
# (bare path, traced path) per app kind; all of one length, so every request
# line costs the server the same to parse.
PAIRS = {
    "FastAPI": ("/fa/bare/ping", "/fa/nkmw/ping"),
    "Starlette": ("/st/bare/ping", "/st/nkmw/ping"),
}


def serve() -> None:
    import socket

    import uvicorn
    from fastapi import FastAPI
    from fastapi.responses import PlainTextResponse as FastAPIPlainText
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import PlainTextResponse
    from starlette.routing import Route

    from noukai_fastapi import NoukaiTraceMiddleware

    def fastapi_app(path: str, traced: bool) -> ASGIApp:
        app = FastAPI(openapi_url=None)

        @app.get(path, response_class=FastAPIPlainText)
        async def ping() -> str:
            return "pong"

        if traced:
            app.add_middleware(NoukaiTraceMiddleware)
        return app

    def starlette_app(path: str, traced: bool) -> ASGIApp:
        async def ping(request: Request) -> PlainTextResponse:
            return PlainTextResponse("pong")

        app = Starlette(routes=[Route(path, ping)])
        if traced:
            app.add_middleware(NoukaiTraceMiddleware)
        return app

    makers = {"FastAPI": fastapi_app, "Starlette": starlette_app}
    by_path = {
        path: makers[kind](path, traced)
        for kind, paths in PAIRS.items()
        for path, traced in zip(paths, (False, True), strict=True)
    }
    lifespan_app = by_path[PAIRS["FastAPI"][1]]

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        # One dict lookup for every side (the lifespan goes to a traced app,
        # which passes it through). A router of mounts made the side listed
        # second also pay for the first mount's failed match: about 6,000
        # interpreter instructions, some 0.5 us, a request, charged to the
        # middleware.
        await by_path.get(scope.get("path", ""), lifespan_app)(scope, receive, send)

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


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of process `pid` so far (Linux /proc)."""
    with open(f"/proc/{pid}/stat", encoding="ascii") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def _round(port: int, path: str, pid: int) -> tuple[float, float]:
    """(requests/s, server CPU-seconds) of one round."""
    cpu = cpu_seconds(pid)
    started = time.perf_counter()
    await asyncio.gather(*(_connection(port, path, REQUESTS // CONNECTIONS)
                           for _ in range(CONNECTIONS)))
    elapsed = time.perf_counter() - started
    return REQUESTS / elapsed, cpu_seconds(pid) - cpu


Rounds = tuple[list[float], float]  # requests/s of each round, server CPU-seconds of all


async def measure(port: int, pid: int, paths: tuple[str, str]) -> list[Rounds]:
    """Per path of `paths`: the requests/s of each round and the server CPU-seconds of all."""
    for path in paths:  # warm-up
        await _round(port, path, pid)
    results: dict[str, Rounds] = {path: ([], 0.0) for path in paths}
    for index in range(ROUNDS):
        # alternate which goes first, so neither always follows the other
        for path in paths[:: 1 if index % 2 else -1]:
            rate, cpu = await _round(port, path, pid)
            rates, total = results[path]
            results[path] = ([*rates, rate], total + cpu)
    return [results[path] for path in paths]


def report(kind: str, bare: Rounds, traced: Rounds) -> None:
    (bare_rates, bare_cpu), (traced_rates, traced_cpu) = bare, traced
    ratio = statistics.median(t / b for t, b in zip(traced_rates, bare_rates, strict=True))
    per_cpu = {name: REQUESTS * ROUNDS / cpu for name, cpu in
               [("bare", bare_cpu), ("traced", traced_cpu)]}
    context = "target >= 0.95" if kind == "FastAPI" else "context"
    print(f"[{kind} route] bare:            {statistics.median(bare_rates):8.0f} requests/s "
          f"(median round), {per_cpu['bare']:8.0f} requests per server CPU-second")
    print(f"[{kind} route] with middleware: {statistics.median(traced_rates):8.0f} requests/s "
          f"(median round), {per_cpu['traced']:8.0f} requests per server CPU-second")
    print(f"[{kind} route] ratio (with / without middleware): {ratio:.3f} in requests/s, "
          f"{per_cpu['traced'] / per_cpu['bare']:.3f} per server CPU-second  ({context})")
    added = (traced_cpu - bare_cpu) / (REQUESTS * ROUNDS) * 1e6
    print(f"[{kind} route] server CPU added by the middleware: {added:.1f} us per request")


def main() -> int:
    server = subprocess.Popen([sys.executable, __file__, "--serve"], stdout=subprocess.PIPE,
                              env={**os.environ, "PYTHONUNBUFFERED": "1"})
    try:
        assert server.stdout is not None
        port = int(server.stdout.readline())
        time.sleep(0.5)
        results = {kind: asyncio.run(measure(port, server.pid, paths))
                   for kind, paths in PAIRS.items()}
    finally:
        server.terminate()
        server.wait(10)
    for kind, (bare, traced) in results.items():
        report(kind, bare, traced)
    return 0


if __name__ == "__main__":
    if sys.argv[1:] == ["--serve"]:
        serve()
    else:
        raise SystemExit(main())
