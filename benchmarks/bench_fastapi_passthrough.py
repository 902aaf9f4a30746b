"""Benchmark: the SSE passthrough (router) against reading the same upstream directly.

Every measurement runs against a canned upstream (a subprocess serving a
pre-rendered stream), so the dev server's own work hides nothing.

The upstream's wire shape. Real upstreams (the dev server, the hosted API)
answer `/step` with `Transfer-Encoding: chunked`, one HTTP chunk per SSE
event (`curl --raw` shows it), and that is what the canned upstream sends
for the primary measurements. An earlier version of this benchmark sent the
whole stream as one `Content-Length` body instead. That lets the HTTP
client hand the SSE decoder 64 KiB reads rather than one chunk per event,
so the direct reader paid less per event than it does against any real
server, and the ratio overstated what the passthrough costs. The
`Content-Length` stream is still measured, on one context line. The chunked
body is written in one go (the upstream is as fast as it can be, so only the
readers' costs count); each event is still its own HTTP chunk on the wire.

Measurements, in one run:

1. events/s through the passthrough router (a uvicorn subprocess; the
   benchmark reads the browser's SSE) over events/s read directly from the
   same upstream with `AsyncFlow.events()` (target ratio >= 0.8), as the
   median ratio of adjacent rounds. The same comparison per CPU-second is
   printed next to it: events per CPU-second of the passthrough process
   (user + system, from /proc) over events per CPU-second of the direct
   reader (this process, also from /proc). The passthrough decodes with
   `events()` too, so the CPU ratio is the share of its work that decoding
   is. It moves much less than the wall-clock ratio when other processes
   compete for the 2 cores: that one needs three busy processes (upstream,
   passthrough, reader) and so also measures the scheduler;
2. the time to first event each way, and the time the passthrough adds;
3. 200 concurrent passthrough streams (a slow upstream keeps them all open
   at once): every one must end with `flow_completed` and no error; the
   passthrough process's peak resident memory above its idle level,
   divided by 200, is reported as memory per stream;
4. the ratio of 1 measured in this one process: the router's response
   object (`FlowEventsResponse`: policy, framing, batching) fed from the same
   upstream and writing to an ASGI `send` that discards, against `events()`,
   per CPU-second of this process. This is the passthrough's own per-event
   cost with neither the scheduler nor the socket to the browser in it.
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

FRAMES = 20_000  # step_output frames in the throughput stream
ROUNDS = 7
TTFE_RUNS = 15
CONCURRENT = 200
SLOW_FRAMES = 20
SLOW_DELAY = 0.05  # seconds between frames of the slow upstream
FLOW = "bench/bench/story"  # the upstream answers chunked, one chunk per event
FLOW_CL = "bench/bench/story-cl"  # the upstream answers with one Content-Length body
ROUTES = {FLOW: "story", FLOW_CL: "story-cl"}


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
                                      "durationMs": 1, "tokens": {"total": 3},
                                      "costUsd": "0.000001"}),
            _frame("flow_completed", {"runId": "exec-b", "result": {"ok": True}})]
    return out


def http_chunk(part: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(part), part)


def serve_upstream(frames: int, delay: float) -> None:
    """A canned Noukai upstream: every request gets the same stream.

    Chunked (one chunk per event) unless the request names `FLOW_CL`; with a
    `delay`, each chunk is written and flushed on its own, `delay` apart.
    """
    parts = render(frames)
    head = b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
    chunked = head + b"Transfer-Encoding: chunked\r\n\r\n"
    chunked_body = chunked + b"".join(map(http_chunk, parts)) + b"0\r\n\r\n"
    body = b"".join(parts)
    length_body = head + b"Content-Length: %d\r\n\r\n%s" % (len(body), body)

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                request = await reader.readuntil(b"\r\n\r\n")
                for line in request.split(b"\r\n"):
                    if line.lower().startswith(b"content-length:"):
                        await reader.readexactly(int(line.split(b":", 1)[1]))
                if delay == 0:
                    whole = FLOW_CL.encode() in request.split(b"\r\n", 1)[0]
                    writer.write(length_body if whole else chunked_body)
                    await writer.drain()
                    continue
                writer.write(chunked)
                for part in parts:
                    writer.write(http_chunk(part))
                    await writer.drain()
                    await asyncio.sleep(delay)
                writer.write(b"0\r\n\r\n")
                await writer.drain()
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

    from noukai_fastapi import StreamedFlow, flow_stream_router, noukai_lifespan

    app = FastAPI(lifespan=noukai_lifespan(api_key="nk_bench", base_url=upstream_url,
                                           max_retries=0))
    app.include_router(flow_stream_router([StreamedFlow(slug, name=name)
                                           for slug, name in ROUTES.items()]))
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


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of process `pid` so far (Linux /proc)."""
    with open(f"/proc/{pid}/stat", encoding="ascii") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def direct_client(upstream: str) -> Any:
    """One client per measurement, like the passthrough's one per app: its
    construction (an SSL context, ~20 ms of CPU) is then never counted."""
    from noukai_core import AsyncNoukai

    return AsyncNoukai(api_key="nk_bench", base_url=upstream, max_retries=0)


async def read_direct(client: Any, flow: str = FLOW) -> tuple[int, float, float]:
    """(events, seconds, seconds to first event) reading the upstream with events()."""
    started = time.perf_counter()
    first = 0.0
    count = 0
    async for _ in client.flow(flow).events(message="go", run_remaining=True):
        if count == 0:
            first = time.perf_counter() - started
        count += 1
    return count, time.perf_counter() - started, first


async def read_router(http: httpx.AsyncClient, url: str) -> tuple[int, float, float, str]:
    """(events, seconds, seconds to first event, last event type) through the router.

    Frames are counted on the raw bytes (each ends with a blank line), so the
    reading side costs less than `events()` does on the direct side and the
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


async def throughput(upstream: str, router: str, pid: int, flow: str) -> dict[str, float]:
    """Wall-clock and per-CPU-second rates of both sides, over `ROUNDS` adjacent pairs."""
    url = f"{router}/{ROUTES[flow]}"
    me = os.getpid()
    async with httpx.AsyncClient(timeout=60) as http, direct_client(upstream) as client:
        await read_direct(client, flow)
        await read_router(http, url)  # warm-up
        direct, routed = [], []
        cpu = {"direct": 0.0, "router": 0.0}
        events = {"direct": 0, "router": 0}
        for index in range(ROUNDS):
            # adjacent pairs, alternating which side goes first; the median of
            # the pair ratios shrugs off bursts of outside load on a shared box
            for side in (["direct", "router"] if index % 2 else ["router", "direct"]):
                who = me if side == "direct" else pid
                before = cpu_seconds(who)
                if side == "direct":
                    count, seconds, _ = await read_direct(client, flow)
                    direct.append(count / seconds)
                else:
                    count, seconds, _, _ = await read_router(http, url)
                    routed.append(count / seconds)
                cpu[side] += cpu_seconds(who) - before
                events[side] += count
    return {
        "direct": statistics.median(direct),
        "router": statistics.median(routed),
        "ratio": statistics.median(r / d for r, d in zip(routed, direct, strict=True)),
        "direct_cpu": events["direct"] / cpu["direct"],
        "router_cpu": events["router"] / cpu["router"],
    }


def report_throughput(rates: dict[str, float], label: str) -> None:
    print(f"[{label}] direct events():    {rates['direct']:9.0f} events/s, "
          f"{rates['direct_cpu']:9.0f} per reader CPU-second")
    print(f"[{label}] through the router: {rates['router']:9.0f} events/s, "
          f"{rates['router_cpu']:9.0f} per passthrough CPU-second")
    print(f"[{label}] ratio router / direct: {rates['ratio']:.3f} wall clock "
          f"(median of {ROUNDS} pairs), {rates['router_cpu'] / rates['direct_cpu']:.3f}"
          " per CPU-second  (target >= 0.8)")


async def first_event(upstream: str, router: str) -> None:
    async with httpx.AsyncClient(timeout=60) as http, direct_client(upstream) as client:
        await read_direct(client)  # warm-up: both sides then reuse a pooled connection
        await read_router(http, f"{router}/{ROUTES[FLOW]}")
        direct, routed = [], []
        for _ in range(TTFE_RUNS):
            direct.append((await read_direct(client))[2])
            routed.append((await read_router(http, f"{router}/{ROUTES[FLOW]}"))[2])
    d, r = statistics.median(direct) * 1000, statistics.median(routed) * 1000
    print(f"time to first event: direct {d:.2f} ms, router {r:.2f} ms, added {r - d:.2f} ms"
          " (medians)")


async def read_in_process(client: Any, flow: str, *, count: bool = False) -> tuple[int, float]:
    """(bytes or, with `count`, frames; CPU-seconds) through `FlowEventsResponse`
    in this process, sent nowhere.

    The discarding `send` only adds up sizes in the timed rounds: counting
    frames costs about a third of what the passthrough itself does per event,
    so it is done once, untimed, to check the timed rounds sent the same.
    """
    from noukai_fastapi import flow_events_response

    sent = 0
    never = asyncio.Event()

    async def receive() -> dict[str, Any]:
        await never.wait()  # the "browser" never disconnects
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        nonlocal sent
        body = message.get("body", b"")
        sent += body.count(b"\n\n") if count else len(body)

    response = flow_events_response(client.flow(flow), message="go")
    started = time.process_time()
    await response({"type": "http"}, receive, send)
    return sent, time.process_time() - started


async def in_process(upstream: str, flow: str) -> float:
    """The median ratio of events per CPU-second, passthrough over `events()`, of
    adjacent rounds. CPU time, not wall clock: one process, so a burst of
    outside load that preempts it does not count against either side."""
    async with direct_client(upstream) as client:
        frames, _ = await read_in_process(client, flow, count=True)  # warm-up
        size, _ = await read_in_process(client, flow)
        ratios = []
        for index in range(ROUNDS):
            for side in (["direct", "router"] if index % 2 else ["router", "direct"]):
                if side == "direct":
                    cpu = time.process_time()
                    count, _, _ = await read_direct(client, flow)
                    direct = count / (time.process_time() - cpu)
                else:
                    sent, seconds = await read_in_process(client, flow)
                    assert sent == size, "every round sends the same stream"
                    routed = frames / seconds
            ratios.append(routed / direct)
    return statistics.median(ratios)


async def concurrency(router: str, pid: int) -> None:
    url = f"{router}/{ROUTES[FLOW]}"
    limits = httpx.Limits(max_connections=CONCURRENT + 50)
    async with httpx.AsyncClient(timeout=60, limits=limits) as http:
        await read_router(http, url)  # warm-up: imports, pools, caches
        idle = rss_kib(pid)
        peak = idle
        done = asyncio.Event()

        async def sample() -> None:
            nonlocal peak
            while not done.is_set():
                peak = max(peak, rss_kib(pid))
                await asyncio.sleep(0.02)

        sampler = asyncio.create_task(sample())
        results = await asyncio.gather(*(read_router(http, url) for _ in range(CONCURRENT)),
                                       return_exceptions=True)
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
            routers[name] = (process.pid, f"http://127.0.0.1:{port}/flows")
        time.sleep(1.0)
        print(f"load average before: {os.getloadavg()[0]:.2f} (2 cores; < 1 is quiet)")
        pid, router = routers["fast"]
        report_throughput(asyncio.run(throughput(urls["fast"], router, pid, FLOW)),
                          "chunked, one chunk per event")
        report_throughput(asyncio.run(throughput(urls["fast"], router, pid, FLOW_CL)),
                          "context: one Content-Length body")
        asyncio.run(first_event(urls["small"], routers["small"][1]))
        asyncio.run(concurrency(routers["slow"][1], routers["slow"][0]))
        chunked = asyncio.run(in_process(urls["fast"], FLOW))
        whole = asyncio.run(in_process(urls["fast"], FLOW_CL))
        print(f"in one process, per CPU-second (FlowEventsResponse / events()): {chunked:.3f}"
              f" chunked, {whole:.3f} one Content-Length body  (median of {ROUNDS} pairs)")
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
