"""Benchmark: the SSE passthrough (router) against reading the same upstream directly.

Three measurements in one run, each against a canned upstream (a subprocess
serving a pre-rendered stream), so the dev server's own work hides nothing:

1. events/s through the passthrough router (a uvicorn subprocess; the
   benchmark reads the browser's SSE) over events/s read directly from the
   same upstream with `AsyncFlow.events()` (target ratio >= 0.8), as the
   median ratio of adjacent rounds;
2. the time to first event each way, and the time the passthrough adds;
3. 200 concurrent passthrough streams (a slow upstream keeps them all open
   at once): every one must end with `flow_completed` and no error; the
   passthrough process's peak resident memory above its idle level,
   divided by 200, is reported as memory per stream;
4. the same ratio as 1, measured in this one process: the router's response
   object (`FlowEventsResponse`: policy, framing, batching) fed from the same
   upstream and writing to an ASGI `send` that discards, against `events()`.
   Ratio 1 needs three busy processes (upstream, passthrough, reader), so on
   a small shared machine it also measures the scheduler; this one is the
   passthrough's own per-event cost (decoding excluded from neither side).
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import statistics
import subprocess
import sys
import time
from typing import Any

import httpx

FRAMES = 5_000  # step_output frames in the throughput stream
ROUNDS = 7
TTFE_RUNS = 15
CONCURRENT = 200
SLOW_FRAMES = 20
SLOW_DELAY = 0.05  # seconds between frames of the slow upstream
FLOW = "bench/bench/story"


def _frame(event: str, payload: dict[str, Any]) -> bytes:
    data = json.dumps({"eventType": event, "executionId": "exec-b", **payload},
                      separators=(",", ":"))
    return f"event: {event}\ndata: {data}\n\n".encode()


def render(frames: int) -> list[bytes]:
    chunk = "Partial output of a step, the size of one streamed model chunk. " * 2
    out = [_frame("run_started", {"runId": "exec-b", "flowId": "f", "stepCount": 1}),
           _frame("step_started", {"stepId": "s", "name": "Story", "stepIndex": 0})]
    out += [_frame("step_output", {"stepId": "s", "outputData": {"delta": chunk, "i": i}})
            for i in range(frames)]
    out += [_frame("step_completed", {"stepId": "s", "name": "Story", "output": {"ok": True},
                                      "durationMs": 1}),
            _frame("flow_completed", {"runId": "exec-b", "result": {"ok": True}})]
    return out


def serve_upstream(frames: int, delay: float) -> None:
    """A canned Noukai upstream: every request gets the same stream."""
    parts = render(frames)
    body = b"".join(parts)

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                for line in head.split(b"\r\n"):
                    if line.lower().startswith(b"content-length:"):
                        await reader.readexactly(int(line.split(b":", 1)[1]))
                if delay == 0:
                    writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
                                 + f"Content-Length: {len(body)}\r\n\r\n".encode() + body)
                    await writer.drain()
                    continue
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
                             b"Connection: close\r\n\r\n")
                for part in parts:
                    writer.write(part)
                    await writer.drain()
                    await asyncio.sleep(delay)
                break
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        writer.close()

    async def main() -> None:
        server = await asyncio.start_server(handle, "127.0.0.1", 0, backlog=1024)
        print(server.sockets[0].getsockname()[1], flush=True)
        await server.serve_forever()

    asyncio.run(main())


def serve_passthrough(upstream_url: str) -> None:
    import uvicorn
    from fastapi import FastAPI

    from noukai_fastapi import flow_stream_router, noukai_lifespan

    app = FastAPI(lifespan=noukai_lifespan(api_key="nk_bench", base_url=upstream_url,
                                           max_retries=0))
    app.include_router(flow_stream_router([FLOW]))
    sock = socket.socket()
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.bind(("127.0.0.1", 0))
    print(sock.getsockname()[1], flush=True)
    uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False,
                                  backlog=1024)).run(sockets=[sock])


def spawn(*args: str) -> tuple[subprocess.Popen[bytes], int]:
    process = subprocess.Popen([sys.executable, __file__, *args], stdout=subprocess.PIPE,
                               env={**os.environ, "PYTHONUNBUFFERED": "1"})
    assert process.stdout is not None
    return process, int(process.stdout.readline())


def rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError("no VmRSS")


async def read_direct(upstream: str) -> tuple[int, float, float]:
    """(events, seconds, seconds to first event) reading the upstream with events()."""
    from noukai_core import AsyncNoukai

    async with AsyncNoukai(api_key="nk_bench", base_url=upstream, max_retries=0) as client:
        started = time.perf_counter()
        first = 0.0
        count = 0
        async for _ in client.flow(FLOW).events(message="go", run_remaining=True):
            if count == 0:
                first = time.perf_counter() - started
            count += 1
        return count, time.perf_counter() - started, first


async def read_router(http: httpx.AsyncClient, url: str) -> tuple[int, float, float, str]:
    """(events, seconds, seconds to first event, last event type) through the router.

    Frames are counted on the raw bytes (each ends with a blank line), so the
    reading side costs about what `events()` costs on the direct side and the
    ratio shows the passthrough, not Python line splitting.
    """
    started = time.perf_counter()
    first = 0.0
    count = 0
    previous = b""
    tail = b""
    async with http.stream("POST", url, json={"message": "go"}) as response:
        response.raise_for_status()
        async for chunk in response.aiter_raw():
            frames = chunk.count(b"\n\n") + (previous == b"\n" and chunk[:1] == b"\n")
            if frames and count == 0:
                first = time.perf_counter() - started
            count += frames
            previous = chunk[-1:]
            tail = (tail + chunk)[-400:]
    last = tail.rsplit(b"event: ", 1)[-1].split(b"\n", 1)[0].decode()
    return count, time.perf_counter() - started, first, last


async def throughput(upstream: str, router_url: str) -> None:
    limits = httpx.Limits(max_connections=CONCURRENT + 50)
    async with httpx.AsyncClient(timeout=60, limits=limits) as http:
        await read_direct(upstream)
        await read_router(http, router_url)  # warm-up
        direct, routed = [], []
        for index in range(ROUNDS):
            # adjacent pairs, alternating which side goes first; the median of
            # the pair ratios shrugs off bursts of outside load on a shared box
            for side in (["direct", "router"] if index % 2 else ["router", "direct"]):
                if side == "direct":
                    count, seconds, _ = await read_direct(upstream)
                    direct.append(count / seconds)
                else:
                    count, seconds, _, _ = await read_router(http, router_url)
                    routed.append(count / seconds)
    ratio = statistics.median(r / d for r, d in zip(routed, direct, strict=True))
    print(f"direct events():      {statistics.median(direct):9.0f} events/s (median round)")
    print(f"through the router:   {statistics.median(routed):9.0f} events/s (median round)")
    print(f"ratio (router / direct): {ratio:.3f}  (target >= 0.8; median of {ROUNDS} pairs)")


async def first_event(small_upstream: str, small_router: str) -> None:
    async with httpx.AsyncClient(timeout=60) as http:
        direct, routed = [], []
        for _ in range(TTFE_RUNS):
            direct.append((await read_direct(small_upstream))[2])
            routed.append((await read_router(http, small_router))[2])
    d, r = statistics.median(direct) * 1000, statistics.median(routed) * 1000
    print(f"time to first event: direct {d:.2f} ms, router {r:.2f} ms, added {r - d:.2f} ms"
          " (medians)")


async def read_in_process(upstream: str) -> tuple[int, float]:
    """(events, seconds) through `FlowEventsResponse` in this process, sent nowhere."""
    from noukai_core import AsyncNoukai
    from noukai_fastapi import flow_events_response

    frames = 0
    never = asyncio.Event()

    async def receive() -> dict[str, Any]:
        await never.wait()  # the "browser" never disconnects
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        nonlocal frames
        frames += bytes(message.get("body", b"")).count(b"\n\n")

    async with AsyncNoukai(api_key="nk_bench", base_url=upstream, max_retries=0) as client:
        response = flow_events_response(client.flow(FLOW), message="go")
        started = time.perf_counter()
        await response({"type": "http"}, receive, send)
        return frames, time.perf_counter() - started


async def in_process(upstream: str) -> None:
    await read_in_process(upstream)  # warm-up
    ratios = []
    for _ in range(ROUNDS):
        count, seconds, _ = await read_direct(upstream)
        frames, routed = await read_in_process(upstream)
        ratios.append((frames / routed) / (count / seconds))
    print(f"in one process (FlowEventsResponse / events()): {statistics.median(ratios):.3f}"
          f"  (median of {ROUNDS} pairs)")


async def concurrency(router_url: str, pid: int) -> None:
    limits = httpx.Limits(max_connections=CONCURRENT + 50)
    async with httpx.AsyncClient(timeout=60, limits=limits) as http:
        await read_router(http, router_url)  # warm-up: imports, pools, caches
        idle = rss_kib(pid)
        peak = idle
        done = asyncio.Event()

        async def sample() -> None:
            nonlocal peak
            while not done.is_set():
                peak = max(peak, rss_kib(pid))
                await asyncio.sleep(0.02)

        sampler = asyncio.create_task(sample())
        results = await asyncio.gather(*(read_router(http, router_url)
                                         for _ in range(CONCURRENT)), return_exceptions=True)
        done.set()
        await sampler
    failures = [r for r in results if isinstance(r, BaseException) or r[3] != "flow_completed"]
    print(f"{CONCURRENT} concurrent streams: {CONCURRENT - len(failures)} completed, "
          f"{len(failures)} failed")
    for failure in failures[:3]:
        print("  failure:", repr(failure))
    print(f"memory per stream: {(peak - idle) / CONCURRENT:.1f} KiB "
          f"(passthrough RSS idle {idle / 1024:.1f} MiB, peak {peak / 1024:.1f} MiB)")
    if failures:
        raise SystemExit(1)


def main() -> int:
    processes: list[subprocess.Popen[bytes]] = []
    try:
        fast, fast_port = spawn("--upstream", str(FRAMES), "0")
        small, small_port = spawn("--upstream", "1", "0")
        slow, slow_port = spawn("--upstream", str(SLOW_FRAMES), str(SLOW_DELAY))
        processes += [fast, small, slow]
        urls = {name: f"http://127.0.0.1:{port}/api/v1"
                for name, port in [("fast", fast_port), ("small", small_port),
                                   ("slow", slow_port)]}
        routers = {}
        for name, url in urls.items():
            process, port = spawn("--passthrough", url)
            processes.append(process)
            routers[name] = (process, f"http://127.0.0.1:{port}/flows/story")
        time.sleep(1.0)
        asyncio.run(throughput(urls["fast"], routers["fast"][1]))
        asyncio.run(first_event(urls["small"], routers["small"][1]))
        asyncio.run(concurrency(routers["slow"][1], routers["slow"][0].pid))
        asyncio.run(in_process(urls["fast"]))
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            process.wait(10)
    return 0


if __name__ == "__main__":
    if sys.argv[1:2] == ["--upstream"]:
        serve_upstream(int(sys.argv[2]), float(sys.argv[3]))
    elif sys.argv[1:2] == ["--passthrough"]:
        serve_passthrough(sys.argv[2])
    else:
        raise SystemExit(main())
