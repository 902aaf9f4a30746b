"""Benchmark: hello-world `/execute` on the dev server vs a bare FastAPI JSON route.

Both servers run as subprocesses under uvicorn with the same settings (h11, one
worker, loopback); the same asyncio httpx client drives each with 1 and 16
concurrent clients. Prints throughput, p50/p99 latency and the throughput
ratio dev server / bare route, measured in this one run (target >= 0.25).

    python benchmarks/bench_devserver_execute.py [--requests 400]
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


async def measure(base_url: str, concurrency: int, total: int) -> tuple[float, list[float]]:
    headers = {"Authorization": "Bearer nk_local_dev"}
    latencies: list[float] = []
    path = "/seq/local/demo/hello-world/execute"
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=base_url, headers=headers, limits=limits,
                                 timeout=60) as client:
        for _ in range(20):  # warm-up
            (await client.post(path, json={"message": "warm"})).raise_for_status()
        remaining = total

        async def worker() -> None:
            nonlocal remaining
            while remaining > 0:
                remaining -= 1
                started = time.perf_counter()
                response = await client.post(path, json={"message": "bench"})
                latencies.append(time.perf_counter() - started)
                assert response.status_code == 200 and response.json()["status"] == "completed"

        began = time.perf_counter()
        await asyncio.gather(*[worker() for _ in range(concurrency)])
        elapsed = time.perf_counter() - began
    return total / elapsed, latencies


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=400)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        dev, dev_url = start([sys.executable, "-m", "noukai_devserver", "--host", "127.0.0.1",
                              "--port", "0", "--db", str(root / "bench.sqlite3")],
                             root / "dev.log")
        bare, bare_url = start([sys.executable, "-c", BARE_APP], root / "bare.log")
        try:
            print(f"{'server':<12}{'clients':>8}{'req/s':>10}{'p50 ms':>10}{'p99 ms':>10}")
            ratios = []
            for concurrency in (1, 16):
                results = {}
                for name, url in (("bare", bare_url), ("devserver", dev_url)):
                    rps, lat = asyncio.run(measure(url, concurrency, args.requests))
                    results[name] = rps
                    print(f"{name:<12}{concurrency:>8}{rps:>10.0f}{pct(lat, 0.5):>10.2f}"
                          f"{pct(lat, 0.99):>10.2f}")
                ratio = results["devserver"] / results["bare"]
                ratios.append(ratio)
                print(f"throughput ratio devserver/bare at {concurrency} client(s): "
                      f"{ratio:.2f} (target >= 0.25)")
            print(f"median throughput ratio: {statistics.median(ratios):.2f}")
        finally:
            for proc in (dev, bare):
                proc.terminate()
                proc.wait(30)


if __name__ == "__main__":
    main()
