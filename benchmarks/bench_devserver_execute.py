"""Benchmark: hello-world `/execute` on the dev server vs a bare FastAPI JSON route.

Both servers run as subprocesses under uvicorn with the same settings (h11, one
worker, loopback); the same asyncio httpx client drives each with 1 and 16
concurrent clients. Prints throughput, p50/p99 latency and the throughput
ratio dev server / bare route, measured in this one run (target >= 0.25).

    python benchmarks/bench_devserver_execute.py [--requests 400] [--rounds 5]
"""

from __future__ import annotations

import argparse
import asyncio
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

BARE_APP = """
import sys, socket, uvicorn
from fastapi import FastAPI
app = FastAPI()

@app.post("/api/v1/seq/local/demo/hello-world/execute")
async def execute(body: dict) -> dict:
    return {"status": "completed", "result": {"response": "Echo: " + str(body.get("message"))},
            "executionId": "x", "flowId": "y", "blockCount": 1}

sock = socket.socket()
sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # as the dev server does
sock.bind(("127.0.0.1", 0))
sock.listen(2048)
print(f"serving http://127.0.0.1:{sock.getsockname()[1]}/api/v1", flush=True)
config = uvicorn.Config(app, log_level="warning", access_log=False, http="h11", ws="none")
uvicorn.Server(config).run(sockets=[sock])
"""
READY = re.compile(r"serving http://[^\s]+:(\d+)/api/v1")


def start(cmd: list[str], log: Path) -> tuple[subprocess.Popen[bytes], str]:
    handle = log.open("wb")
    proc = subprocess.Popen(cmd, stdout=handle, stderr=handle)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        match = READY.search(log.read_text(errors="replace"))
        if match:
            return proc, f"http://127.0.0.1:{match.group(1)}/api/v1"
        time.sleep(0.05)
    proc.kill()
    raise SystemExit(f"server did not start: {log.read_text()}")


async def _connection(host: str, port: int, request: bytes, count: int,
                      latencies: list[float]) -> None:
    """One keep-alive connection sending `count` requests back to back.

    A minimal HTTP/1.1 client (pre-built request bytes, Content-Length framing)
    so the measurement is bound by the server, not by the client's own cost.
    """
    reader, writer = await asyncio.open_connection(host, port)
    try:
        for _ in range(count):
            started = time.perf_counter()
            writer.write(request)
            head = await reader.readuntil(b"\r\n\r\n")
            assert head.startswith(b"HTTP/1.1 200"), head[:80]
            length = int(re.search(rb"(?i)content-length: (\d+)", head).group(1))  # type: ignore[union-attr]
            body = await reader.readexactly(length)
            latencies.append(time.perf_counter() - started)
            assert b'"completed"' in body
    finally:
        writer.close()


async def measure(base_url: str, concurrency: int, total: int) -> tuple[float, list[float]]:
    url = httpx.URL(base_url + "/seq/local/demo/hello-world/execute")
    payload = b'{"message": "bench"}'
    request = (f"POST {url.raw_path.decode()} HTTP/1.1\r\nHost: {url.host}\r\n"
               "Authorization: Bearer nk_local_dev\r\nContent-Type: application/json\r\n"
               f"Content-Length: {len(payload)}\r\n\r\n").encode() + payload
    host, port = str(url.host), int(url.port or 80)
    await _connection(host, port, request, 20, [])  # warm-up
    latencies: list[float] = []
    began = time.perf_counter()
    await asyncio.gather(*[_connection(host, port, request, total // concurrency, latencies)
                           for _ in range(concurrency)])
    elapsed = time.perf_counter() - began
    return len(latencies) / elapsed, latencies


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=400,
                        help="requests per server, per round")
    parser.add_argument("--rounds", type=int, default=5,
                        help="alternating bare/devserver rounds (the machine may be shared: "
                             "alternating and taking medians keeps drift out of the ratio)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        dev, dev_url = start([sys.executable, "-m", "noukai_devserver", "--host", "127.0.0.1",
                              "--port", "0", "--db", str(root / "bench.sqlite3")],
                             root / "dev.log")
        bare, bare_url = start([sys.executable, "-c", BARE_APP], root / "bare.log")
        try:
            print(f"{'server':<12}{'clients':>8}{'req/s':>10}{'p50 ms':>10}{'p99 ms':>10}"
                  "   (median of rounds; latencies pooled)")
            for concurrency in (1, 16):
                rates: dict[str, list[float]] = {"bare": [], "devserver": []}
                latencies: dict[str, list[float]] = {"bare": [], "devserver": []}
                for _ in range(args.rounds):
                    for name, url in (("bare", bare_url), ("devserver", dev_url)):
                        rps, lat = asyncio.run(measure(url, concurrency, args.requests))
                        rates[name].append(rps)
                        latencies[name].extend(lat)
                for name in ("bare", "devserver"):
                    lat = latencies[name]
                    print(f"{name:<12}{concurrency:>8}{statistics.median(rates[name]):>10.0f}"
                          f"{pct(lat, 0.5):>10.2f}{pct(lat, 0.99):>10.2f}")
                ratios = [d / b for d, b in zip(rates["devserver"], rates["bare"], strict=True)]
                print(f"throughput ratio devserver/bare at {concurrency} client(s): "
                      f"{statistics.median(ratios):.2f} (median of {args.rounds} rounds, "
                      f"range {min(ratios):.2f}-{max(ratios):.2f}; target >= 0.25)")
        finally:
            for proc in (dev, bare):
                proc.terminate()
                proc.wait(30)


if __name__ == "__main__":
    main()
