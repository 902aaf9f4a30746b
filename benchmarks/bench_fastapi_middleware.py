"""Benchmark: NoukaiTraceMiddleware overhead on a trivial route (target ratio >= 0.95).

One uvicorn server (a subprocess) serves the same trivial Starlette app twice:
bare at `/bare/ping`, wrapped in `NoukaiTraceMiddleware` at `/nkmw/ping`
(paths of one length; a dict lookup picks the app, so neither side pays for
routing the other does not). A lean asyncio HTTP/1.1 client (keep-alive
connections, so the client is not the bottleneck) sends the same number of
requests to each in many short alternating rounds. Two ratios are printed:

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

from starlette.types import Receive, Scope, Send

CONNECTIONS = 16
REQUESTS = 1_600
ROUNDS = 15
# Same length, so the two request lines cost the server the same to parse.
BARE = "/bare/ping"
TRACED = "/nkmw/ping"


def serve() -> None:
    import socket

    import uvicorn
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import PlainTextResponse
    from starlette.routing import Route

    from noukai_fastapi import NoukaiTraceMiddleware

    async def ping(request: Request) -> PlainTextResponse:
        return PlainTextResponse("pong")

    bare = Starlette(routes=[Route(BARE, ping)])
    traced = NoukaiTraceMiddleware(Starlette(routes=[Route(TRACED, ping)]))
    by_path = {BARE: bare, TRACED: traced}

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        # One dict lookup for either side (the lifespan goes to `traced`,
        # which passes it through). A router of mounts made the side listed
        # second also pay for the first mount's failed match: about 6,000
        # interpreter instructions, some 0.5 us, a request, charged to the
        # middleware.
        await by_path.get(scope.get("path", ""), traced)(scope, receive, send)

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


async def measure(port: int, pid: int) -> dict[str, tuple[list[float], float]]:
    """Per path: the requests/s of each round and the server CPU-seconds of all rounds."""
    await _round(port, BARE, pid)  # warm-up
    await _round(port, TRACED, pid)
    results: dict[str, tuple[list[float], float]] = {}
    for index in range(ROUNDS):
        # alternate which goes first, so neither always follows the other
        for path in [BARE, TRACED][:: 1 if index % 2 else -1]:
            rate, cpu = await _round(port, path, pid)
            rates, total = results.get(path, ([], 0.0))
            results[path] = ([*rates, rate], total + cpu)
    return results


def main() -> int:
    server = subprocess.Popen([sys.executable, __file__, "--serve"], stdout=subprocess.PIPE,
                              env={**os.environ, "PYTHONUNBUFFERED": "1"})
    try:
        assert server.stdout is not None
        port = int(server.stdout.readline())
        time.sleep(0.5)
        results = asyncio.run(measure(port, server.pid))
    finally:
        server.terminate()
        server.wait(10)
    (bare, bare_cpu), (traced, traced_cpu) = results[BARE], results[TRACED]
    ratio = statistics.median(t / b for t, b in zip(traced, bare, strict=True))
    per_cpu = {name: REQUESTS * ROUNDS / cpu for name, cpu in
               [("bare", bare_cpu), ("traced", traced_cpu)]}
    print(f"bare route:      {statistics.median(bare):8.0f} requests/s (median round), "
          f"{per_cpu['bare']:8.0f} requests per server CPU-second")
    print(f"with middleware: {statistics.median(traced):8.0f} requests/s (median round), "
          f"{per_cpu['traced']:8.0f} requests per server CPU-second")
    print(f"ratio (with / without middleware): {ratio:.3f} in requests/s, "
          f"{per_cpu['traced'] / per_cpu['bare']:.3f} per server CPU-second  (target >= 0.95)")
    added = (traced_cpu - bare_cpu) / (REQUESTS * ROUNDS) * 1e6
    print(f"server CPU added by the middleware: {added:.1f} us per request")
    return 0


if __name__ == "__main__":
    if sys.argv[1:] == ["--serve"]:
        serve()
    else:
        raise SystemExit(main())
